"""The unet.cu U-Net in PyTorch: the same layers, parameter names, initialization,
loss and optimizer (engine/model/unet_config.h, engine/model/unet_model.cpp, kernels/loss.h).

Level l has start_filters * 2^l channels (at most max_filters); a convolution is
conv -> [norm] -> act (no conv bias under a norm); encoder blocks are followed by
a max-pool of the level's window (2x2(x2), or "pooling"'s); decoder level l
up-convolves (ConvTranspose, kernel and stride that window) and concatenates
[skip, up]; a 1x1 convolution makes the logits. Dropout (inverted) follows the
deepest encoder block and the bottleneck. Parameter names are those of a
unet.cu weights file ("enc0.conv0.weight", "up2.bias", "head.weight", ...), so
`load_unet_weights` reads one into this module as it is.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def activation(x, cfg):
    if cfg["activation"] == "relu":
        return F.relu(x)
    if cfg["activation"] == "leaky_relu":
        return F.leaky_relu(x, cfg["activation_slope"])
    return x


class ConvLayer(nn.Module):
    def __init__(self, cfg, ci, co):
        super().__init__()
        self.cfg, dims, k = cfg, cfg["dims"], cfg["kernel"]
        self.weight = nn.Parameter(torch.empty(co, ci, *([k] * dims)))
        self.bias = nn.Parameter(torch.zeros(co)) if cfg["norm"] == "none" else None
        if cfg["norm"] == "batch":
            self.norm = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(co, eps=1e-5, momentum=0.1)
        elif cfg["norm"] == "instance":
            self.norm = (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(co, eps=1e-5, affine=True)
        else:
            self.norm = None
        self.padding = k // 2 if cfg["padding"] == "same" else 0
        self.conv = F.conv2d if dims == 2 else F.conv3d

    def forward(self, x):
        x = self.conv(x, self.weight, self.bias, padding=self.padding)
        if self.norm is not None:
            x = self.norm(x)
        return activation(x, self.cfg)


class Block(nn.Sequential):
    def __init__(self, cfg, ci, co):
        super().__init__()
        for j in range(cfg["convs_per_level"]):
            self.add_module(f"conv{j}", ConvLayer(cfg, ci if j == 0 else co, co))


def centre_crop(x, like):
    """crop_forward: the crop starts at (in - out) / 2 on each spatial axis."""
    slices = [slice(None), slice(None)]
    for a in range(2, x.dim()):
        start = (x.shape[a] - like.shape[a]) // 2
        slices.append(slice(start, start + like.shape[a]))
    return x[tuple(slices)]


def pooling_windows(cfg):
    """Each level's pooling window in PyTorch's axis order ([D,] H, W): the
    configuration's "pooling" ("2x2x1,2x2x2": W x H [x D] per level), else 2s."""
    dims, depth = cfg["dims"], cfg["depth"]
    if "pooling" not in cfg:
        return [(2,) * dims] * depth
    return [tuple(int(v) for v in reversed(w.split("x"))) for w in cfg["pooling"].split(",")]


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        dims, depth = cfg["dims"], cfg["depth"]
        cap = cfg.get("max_filters", 0)
        f = [min(cfg["start_filters"] << l, cap) if cap > 0 else cfg["start_filters"] << l for l in range(depth + 1)]
        self.windows = pooling_windows(cfg)
        for l in range(depth):
            self.add_module(f"enc{l}", Block(cfg, cfg["in_channels"] if l == 0 else f[l - 1], f[l]))
        self.bottleneck = Block(cfg, f[depth - 1], f[depth])
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        for l in reversed(range(depth)):
            self.add_module(f"up{l}", up(f[l + 1], f[l], self.windows[l], stride=self.windows[l]))
            self.add_module(f"dec{l}", Block(cfg, 2 * f[l], f[l]))
        out = 1 if cfg["head"] == "sigmoid" else cfg["classes"]
        self.head = (nn.Conv2d if dims == 2 else nn.Conv3d)(f[0], out, 1)
        self.pool = F.max_pool2d if dims == 2 else F.max_pool3d
        self.dropout = nn.Dropout(cfg["dropout"]) if cfg["dropout"] > 0 else nn.Identity()
        self.he_init()

    def he_init(self):
        """Normal with std sqrt(2 / fan_in); biases 0, norm scales 1 (unet_model.cpp)."""
        for name, p in self.named_parameters():
            if not name.endswith(".weight") or ".norm." in name:
                continue
            if name.startswith("up"):
                fan_in = p.shape[0]  # an up-convolution output sees one tap of each input channel
            else:
                fan_in = p.shape[1] * math.prod(p.shape[2:])
            with torch.no_grad():
                p.normal_(0.0, math.sqrt(2.0 / fan_in))
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, x):
        depth, skips = self.cfg["depth"], []
        for l in range(depth):
            x = getattr(self, f"enc{l}")(x)
            if l == depth - 1:
                x = self.dropout(x)
            skips.append(x)
            x = self.pool(x, self.windows[l])
        x = self.dropout(self.bottleneck(x))
        for l in reversed(range(depth)):
            up = getattr(self, f"up{l}")(x)
            x = getattr(self, f"dec{l}")(torch.cat([centre_crop(skips[l], up), up], dim=1))
        return self.head(x)


def dice_ce_loss(logits, labels, smooth=1.0):
    """kernels/loss.h's dice_ce for the sigmoid head: mean binary cross-entropy +
    (1 - soft Dice of the foreground over the whole batch)."""
    g = labels.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, g)
    p = torch.sigmoid(logits)
    tp = (p * g).sum()
    fp = (p * (1 - g)).sum()
    fn = ((1 - p) * g).sum()
    return ce + (1 - (tp + smooth) / (tp + 0.5 * fp + 0.5 * fn + smooth))


def default_config(**overrides):
    cfg = {"dims": 2, "depth": 4, "start_filters": 64, "convs_per_level": 2, "kernel": 3, "norm": "none",
           "dropout": 0.0, "padding": "same", "in_channels": 1, "classes": 2, "head": "sigmoid",
           "activation": "relu", "activation_slope": 0.01, "seed": 0}
    cfg.update(overrides)
    return cfg


def load_unet_weights(path):
    """A unet.cu weights file as (model in eval mode, configuration, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    cfg = json.loads(metadata["unet.config"])
    model = UNet(cfg)
    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing}, unexpected {unexpected}")
    return model.eval(), cfg, metadata

#!/usr/bin/env python3
"""Times a training step and a forward pass of a U-Net in PyTorch and prints one
JSON object in the schema of `unet bench` (README, "Benchmarks").

  --net unet    the unet.cu U-Net (unet_torch.py): same layers, init, loss, Adam
  --net monai   MONAI's BasicUNet as close as it allows (depth 4 only; its convs
                keep their bias under a norm; features f, 2f, 4f, 8f, 16f, f)
  --mode eager  fp32 (TF32 off)
         tf32   eager with TF32 on (PyTorch's default for cuDNN convolutions)
         amp    bf16 autocast, channels-last
         compile torch.compile of the eager fp32 model
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_torch import UNet, default_config, dice_ce_loss  # noqa: E402


def parse_size(text):
    return [int(v) for v in text.lower().split("x")]


def monai_basicunet(cfg):
    from monai.networks.nets import BasicUNet

    if cfg["depth"] != 4:
        raise SystemExit("MONAI's BasicUNet has depth 4 only")
    f = cfg["start_filters"]
    norm = {"none": None, "batch": ("batch", {}), "instance": ("instance", {"affine": True})}[cfg["norm"]]
    return BasicUNet(spatial_dims=cfg["dims"], in_channels=cfg["in_channels"], out_channels=1,
                     features=(f, 2 * f, 4 * f, 8 * f, 16 * f, f), act=("relu", {"inplace": True}), norm=norm,
                     dropout=cfg["dropout"], upsample="deconv")


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {model}"


def timed(fn, steps, warmup, device):
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=["unet", "monai"], default="unet")
    ap.add_argument("--mode", choices=["eager", "tf32", "amp", "compile"], default="eager")
    ap.add_argument("--dims", type=int, default=2)
    ap.add_argument("--size", default="512x512", help="W x H[ x D]")
    ap.add_argument("--filters", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--norm", choices=["none", "batch", "instance"], default="none")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    a = ap.parse_args()

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = a.mode == "tf32"
    torch.backends.cudnn.allow_tf32 = a.mode == "tf32"
    torch.backends.cudnn.benchmark = True
    device = torch.device(a.device)
    size = parse_size(a.size)
    if len(size) != a.dims:
        raise SystemExit(f"--size {a.size} for --dims {a.dims}")
    cfg = default_config(dims=a.dims, depth=a.depth, start_filters=a.filters, norm=a.norm)
    torch.manual_seed(0)
    model = (UNet(cfg) if a.net == "unet" else monai_basicunet(cfg)).to(device)
    spatial = list(reversed(size))  # W x H[ x D] -> [D,] H, W
    x = torch.randn(a.batch_size, 1, *spatial, device=device)
    y = (torch.rand(a.batch_size, 1, *spatial, device=device) > 0.5).float()
    fmt = torch.channels_last if a.dims == 2 else torch.channels_last_3d
    if a.mode == "amp":
        model = model.to(memory_format=fmt)
        x = x.contiguous(memory_format=fmt)
    step_model = torch.compile(model) if a.mode == "compile" else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.mode == "amp")

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = step_model(x)
        loss = dice_ce_loss(logits.float(), y)
        loss.backward()
        opt.step()

    def infer():
        with torch.inference_mode(), autocast:
            torch.sigmoid(step_model(x))

    result = {"tool": "pytorch" if a.net == "unet" else "monai-basicunet", "mode": a.mode,
              "device": device_name(device), "threads": torch.get_num_threads() if device.type == "cpu" else None,
              "config": {"dims": a.dims, "size": size, "start_filters": a.filters, "depth": a.depth,
                         "norm": a.norm, "batch": a.batch_size},
              "parameters": sum(p.numel() for p in model.parameters()),
              "versions": {"torch": torch.__version__}}
    model.eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ms = timed(infer, a.steps, a.warmup, device) * 1e3
    result["inference"] = {"ms_per_batch": ms, "images_per_s": a.batch_size * 1e3 / ms}
    if device.type == "cuda":
        result["inference"]["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    ms = timed(train_step, a.steps, a.warmup, device) * 1e3
    result["train"] = {"ms_per_step": ms, "images_per_s": a.batch_size * 1e3 / ms}
    if device.type == "cuda":
        result["train"]["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Loads a unet.cu weights file into the PyTorch baseline (bench/baselines/
unet_torch.py) and compares its forward pass (eval mode, CPU, float32) with
the logits unet.cu computed for the same input (io.safetensors: "image",
"logits"). Exits 0 within the tolerance, 1 beyond it, 77 without PyTorch.

usage: check_torch.py WEIGHTS.safetensors IO.safetensors TOLERANCE
"""
import os
import sys

try:
    import torch
    from safetensors.torch import load_file
except ImportError as e:
    print(f"skip: {e} (PyTorch is optional: configure with -DUNET_TORCH_PYTHON=/path/to/python-with-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "baselines"))
from unet_torch import load_unet_weights  # noqa: E402

weights, io, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
model, cfg, _ = load_unet_weights(weights)
t = load_file(io)
worst = 0.0
for suffix in ["", "2"]:
    if "image" + suffix not in t:
        continue
    with torch.no_grad():
        logits = model(t["image" + suffix])
    d = float((logits - t["logits" + suffix]).abs().max())
    print(f"{'image' + suffix} {list(logits.shape)}: max abs diff logits {d:.3g} (torch {torch.__version__})")
    worst = max(worst, d)
sys.exit(0 if worst <= tol else 1)

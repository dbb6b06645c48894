#!/usr/bin/env python3
"""Runs an ONNX model written by `unet export` in onnxruntime (CPU) and compares
it with unet.cu's CPU forward pass: io.safetensors holds "image" and the
"logits" we computed (and, for a "same" U-Net, "image2"/"logits2" of another
size, which the graph's named dimensions must take). Prints the largest
differences; exits 0 when every one is within the tolerance, 1 otherwise, 77
when onnxruntime or safetensors is missing.

usage: check_onnx.py MODEL.onnx IO.safetensors TOLERANCE
"""
import json
import sys

try:
    import numpy as np
    import onnxruntime as ort
    from safetensors.numpy import load_file
except ImportError as e:
    print(f"skip: {e} (tools/setup.sh installs onnxruntime and safetensors into .venv)")
    sys.exit(77)

model, io, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
t = load_file(io)
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # our graph as written
session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
config = json.loads(meta["unet.config"])
names = [o.name for o in session.get_outputs()]
assert [i.name for i in session.get_inputs()] == ["image"] and names == ["logits", "probabilities"], names

worst = 0.0
for suffix in ["", "2"]:
    if "image" + suffix not in t:
        continue
    logits, probs = session.run(names, {"image": t["image" + suffix]})
    ours = t["logits" + suffix]
    assert logits.shape == ours.shape, (logits.shape, ours.shape)
    if config["head"] == "sigmoid":
        expected = 1 / (1 + np.exp(-ours.astype(np.float64)))
    else:
        e = np.exp(ours.astype(np.float64) - ours.max(axis=1, keepdims=True))
        expected = e / e.sum(axis=1, keepdims=True)
    d_logits = float(np.abs(logits - ours).max())
    d_probs = float(np.abs(probs - expected).max())
    print(f"{'image' + suffix} {list(ours.shape)}: max abs diff logits {d_logits:.3g} (max |logit| "
          f"{float(np.abs(ours).max()):.3g}, std {float(ours.std()):.3g}), probabilities {d_probs:.3g}")
    worst = max(worst, d_logits, d_probs)
sys.exit(0 if worst <= tol else 1)

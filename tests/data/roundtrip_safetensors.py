#!/usr/bin/env python3
"""Reads a unet.cu weights file with Python's safetensors (numpy) and writes
every tensor and the metadata back to a new file, which unet.cu must read as
the same weights. Exits 77 when safetensors is missing.

usage: roundtrip_safetensors.py IN.safetensors OUT.safetensors
"""
import sys

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file
except ImportError as e:
    print(f"skip: {e} (tools/setup.sh installs safetensors into .venv)")
    sys.exit(77)

src, dst = sys.argv[1], sys.argv[2]
tensors = {}
with safe_open(src, framework="np") as f:
    metadata = f.metadata()
    for name in f.keys():
        t = f.get_tensor(name)
        assert t.dtype == np.float32 and np.isfinite(t).all(), name
        tensors[name] = t
assert "unet.config" in metadata, sorted(metadata)
save_file(tensors, dst, metadata=metadata)
print(f"{len(tensors)} tensors, {sum(t.size for t in tensors.values())} values, metadata {sorted(metadata)}")

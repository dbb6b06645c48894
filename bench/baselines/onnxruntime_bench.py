#!/usr/bin/env python3
"""Times inference of an ONNX model written by `unet export` in onnxruntime on the
CPU and prints one JSON object in the schema of `unet bench` (inference only).

usage: onnxruntime_bench.py MODEL.onnx --size W x H[ x D] --batch-size N [--threads T]
"""
import argparse
import json
import resource
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--size", required=True)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's default)")
    a = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    config = json.loads(session.get_modelmeta().custom_metadata_map["unet.config"])
    size = [int(v) for v in a.size.lower().split("x")]
    x = np.random.default_rng(0).standard_normal((a.batch_size, config["in_channels"], *reversed(size)),
                                                 dtype=np.float32)
    for _ in range(a.warmup):
        session.run(["probabilities"], {"image": x})
    start = time.perf_counter()
    for _ in range(a.steps):
        session.run(["probabilities"], {"image": x})
    ms = (time.perf_counter() - start) / a.steps * 1e3
    print(json.dumps({
        "tool": "onnxruntime", "mode": "fp32", "device": "cpu", "threads": a.threads or None,
        "config": {"dims": config["dims"], "size": size, "start_filters": config["start_filters"],
                   "depth": config["depth"], "norm": config["norm"], "batch": a.batch_size},
        "versions": {"onnxruntime": ort.__version__},
        "inference": {"ms_per_batch": ms, "images_per_s": a.batch_size * 1e3 / ms},
        "train": None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()

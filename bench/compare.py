#!/usr/bin/env python3
"""unet.cu side by side with PyTorch and MONAI on this machine.

For each configuration it runs `unet bench` and the baselines (bench/baselines/
torch_bench.py: the same U-Net in PyTorch eager fp32, AMP bf16 channels-last and
torch.compile; MONAI's BasicUNet; on the CPU our own exported ONNX graph in
onnxruntime, inference only), each in its own process with the same threads,
and prints a Markdown table: training and inference images/s, ms per step,
memory (the device's peak on a GPU, the peak resident set on the CPU), and the
ratio of unet.cu's throughput to each row's, training and inference.
Every JSON object is appended to --json for the record.

  python3 bench/compare.py --device cpu --configs 2d-256-f32 --batch-size 2
  python3 bench/compare.py --device cuda            # every configuration
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = {  # name: (dims, size W x H[ x D], start filters, depth, batch)
    "2d-512-f64": (2, "512x512", 64, 4, 8),
    "2d-256-f32": (2, "256x256", 32, 4, 8),
    "3d-128x128x64-f32": (3, "128x128x64", 32, 4, 2),
    "3d-128-f32": (3, "128x128x128", 32, 4, 2),
}
BASELINES = [("unet", "eager"), ("unet", "tf32"), ("unet", "amp"), ("unet", "compile"), ("monai", "eager"),
             ("onnxruntime", "cpu")]
# The unet.cu precision a baseline's ratio is taken against, where that
# precision ran: PyTorch's AMP against bf16, TF32 against tf32, fp32 against fp32.
PAIRED = {"eager": "fp32", "tf32": "tf32", "amp": "bf16", "compile": "fp32"}


def run(cmd, env, timeout):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines()
        return None, lines[-1] if lines else f"exit status {p.returncode}"
    return json.loads(p.stdout.strip().splitlines()[-1]), None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated: " + ", ".join(CONFIGS))
    ap.add_argument("--batch-size", type=int, default=0, help="override every configuration's batch")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default="", help="unet.cu's --precision, or several comma-separated (default: "
                    "tf32 on a GPU, as PyTorch's cuDNN convolutions default to TF32; fp32 on the CPU)")
    ap.add_argument("--peak-tflops", type=float, default=0, help="the device's peak, for unet.cu's model FLOP "
                    "utilization (989 for an H100/H200's dense bf16)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for every process")
    ap.add_argument("--unet", default=os.path.join(HERE, "..", "build", "tools", "unet"))
    ap.add_argument("--python", default=sys.executable, help="python3 with PyTorch (and MONAI)")
    ap.add_argument("--baselines", default=",".join(f"{n}-{m}" for n, m in BASELINES),
                    help="comma-separated among " + ", ".join(f"{n}-{m}" for n, m in BASELINES))
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per process")
    ap.add_argument("--json", default="", help="append every result as a JSON line to this file")
    a = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    precisions = (a.precision or ("tf32" if a.device == "cuda" else "fp32")).split(",")
    tmp = tempfile.mkdtemp(prefix="unet_compare_")
    rows = []
    for name in a.configs.split(","):
        dims, size, filters, depth, batch = CONFIGS[name]
        batch = a.batch_size or batch
        common = ["--dims", str(dims), "--size", size, "--filters", str(filters), "--depth", str(depth),
                  "--batch-size", str(batch), "--steps", str(a.steps), "--warmup", str(a.warmup)]
        weights = os.path.join(tmp, name + ".safetensors")
        first = len(rows)
        for precision in precisions:
            device_args = ["--gpus", "1" if a.device == "cuda" else "0", "--precision", precision,
                           "--peak-tflops", str(a.peak_tflops)]
            ours, err = run([a.unet, "bench", *common, *device_args, "--save-weights", weights], env, a.timeout)
            rows.append((name, "unet.cu " + precision, ours, err))
        for spec in a.baselines.split(","):
            net, mode = spec.split("-")
            if net == "onnxruntime":
                if a.device != "cpu":
                    continue
                onnx = weights.replace(".safetensors", ".onnx")
                exported = ours and subprocess.run([a.unet, "export", "-w", weights, "--onnx", onnx],
                                                   capture_output=True).returncode == 0
                cmd = [a.python, os.path.join(HERE, "baselines", "onnxruntime_bench.py"), onnx, "--size", size,
                       "--batch-size", str(batch), "--steps", str(a.steps), "--warmup", str(a.warmup),
                       "--threads", str(a.threads)]
                result, err = run(cmd, env, a.timeout) if exported else (None, "unet export failed")
                rows.append((name, "onnxruntime (our ONNX)", result, err))
                continue
            cmd = [a.python, os.path.join(HERE, "baselines", "torch_bench.py"), "--net", net, "--mode", mode,
                   "--device", a.device, "--threads", str(a.threads), *common]
            result, err = run(cmd, env, a.timeout)
            rows.append((name, f"{'PyTorch' if net == 'unet' else 'MONAI BasicUNet'} {mode}", result, err))
        for r in rows[first:]:
            print(f"{r[0]:<20} {r[1]:<24} " + (json.dumps(r[2]) if r[2] else "FAILED: " + r[3]), file=sys.stderr)
            if a.json and r[2]:
                with open(a.json, "a") as f:
                    f.write(json.dumps(dict(r[2], row=r[1], config_name=r[0])) + "\n")

    device = next((r[2]["device"] for r in rows if r[2]), a.device)
    print(f"device: {device}, {a.threads} threads, {a.steps} timed steps after {a.warmup}\n")
    print("| configuration | batch | implementation | train img/s | ms/step | MFU | inference img/s | memory MiB | "
          "unet.cu speed-up, train | unet.cu speed-up, inference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ours = {}  # (configuration, precision): unet.cu's result
    for name, label, r, err in rows:
        if label.startswith("unet.cu") and r:
            ours[name, label.split()[1]] = r
    for name, label, r, err in rows:
        if not r:
            print(f"| {name} | | {label} | failed: {err} | | | | | | |")
            continue
        train, infer = r["train"], r["inference"]
        mode = label.split()[-1]
        base = None if label.startswith("unet.cu") else (
            ours.get((name, PAIRED.get(mode))) or next((v for k, v in ours.items() if k[0] == name), None))
        mem = (train or {}).get("peak_memory_mib") or r.get("peak_device_mib") or r.get("peak_rss_mib")
        mfu = (train or {}).get("mfu")
        cells = [f"{train['images_per_s']:.2f}" if train else "", f"{train['ms_per_step']:.0f}" if train else "",
                 f"{mfu:.3f}" if mfu else "", f"{infer['images_per_s']:.2f}", f"{mem:.0f}",
                 f"{base['train']['images_per_s'] / train['images_per_s']:.2f}" if base and train else "",
                 f"{base['inference']['images_per_s'] / infer['images_per_s']:.2f}" if base else ""]
        print(f"| {name} | {r['config']['batch']} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

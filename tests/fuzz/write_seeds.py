#!/usr/bin/env python3
"""Seed inputs for the safetensors, CSV and dataset.json fuzz targets, written
by other tools than ours (Python's safetensors, the csv and json modules):
valid files and near misses that reach deep into each parser.

usage: write_seeds.py OUT   (writes OUT/safetensors, OUT/csv, OUT/dataset_json)
"""
import csv
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

out = sys.argv[1]
for d in ("safetensors", "csv", "dataset_json"):
    os.makedirs(os.path.join(out, d), exist_ok=True)

config = {"activation": "relu", "classes": 2, "convs_per_level": 2, "depth": 2, "dims": 2, "head": "sigmoid",
          "in_channels": 1, "kernel": 3, "norm": "none", "padding": "same", "start_filters": 2}
save_file({"head.weight": np.ones((1, 2, 1, 1), np.float32), "head.bias": np.zeros((1,), np.float32)},
          os.path.join(out, "safetensors", "weights.safetensors"),
          metadata={"unet.config": json.dumps(config), "unet.step": "4"})
save_file({"optimizer.m": np.arange(6, dtype=np.float32), "optimizer.v": np.zeros((2, 3), np.float32)},
          os.path.join(out, "safetensors", "state.safetensors"), metadata={"step": "4"})
save_file({"empty": np.zeros((0, 3), np.float32)}, os.path.join(out, "safetensors", "empty.safetensors"))

def write_csv(name, rows):
    with open(os.path.join(out, "csv", name), "w", newline="") as f:
        csv.writer(f).writerows(rows)

write_csv("two_cases.csv", [["path", "pathmsk"], ["images/a.png", "labels/a.png"], ["/abs/b.nii.gz", "/abs/b_mask.nii.gz"]])
write_csv("quoted.csv", [["id", "path", "pathmsk"], ["1", "dir, with comma/x.png", 'y "quoted".png'], ["", "", ""]])
write_csv("no_label.csv", [["path"], ["a.png"]])

def write_json(name, value):
    with open(os.path.join(out, "dataset_json", name), "w") as f:
        json.dump(value, f, indent=1)

write_json("nnunet_v2.json", {"channel_names": {"0": "CT"}, "labels": {"background": 0, "lung": 1},
                              "numTraining": 1, "file_ending": ".nii.gz"})
write_json("msd.json", {"modality": {"0": "FLAIR", "1": "T1w"}, "labels": {"0": "background", "1": "edema"},
                        "training": [{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}]})
write_json("regions.json", {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "whole": [1, 2], "core": 2},
                            "file_ending": ".png"})

#!/usr/bin/python3
"""Checks that two flowlab experiment files hold the same trials with the same results, bit for bit: the same trial
ids, and for each its config, config_hash, seed and status (completed) and every dataset and table column under
/trials/<id>, and the /summary table. Only what measures time may differ (train_seconds, eval_seconds, the eval
table's seconds and samples_per_s, the rounds table's train_seconds and pair_seconds). h5py and NumPy only.
Usage: same_trials.py A.h5 B.h5; prints what differs and exits 1, or prints 'same N trials' and exits 0."""
import sys

import h5py
import numpy as np

TIMING_ATTRS = {"train_seconds", "eval_seconds"}
TIMING_COLUMNS = {"seconds", "samples_per_s", "train_seconds", "pair_seconds"}  # eval and rounds tables

a_path, b_path = sys.argv[1:3]
a, b = h5py.File(a_path, "r"), h5py.File(b_path, "r")
problems = []


def same_array(x, y):
    """Bit for bit (NaN equals NaN when its bits do)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if x.dtype.kind in "fiub":
        return np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes()
    return x.tolist() == y.tolist()


def compare_dataset(name, x, y):
    if x.dtype.names:  # a compound table: column by column
        if x.dtype.names != y.dtype.names:
            problems.append(f"{name}: columns {x.dtype.names} != {y.dtype.names}")
            return
        xs, ys = x[()], y[()]
        for col in x.dtype.names:
            if col in TIMING_COLUMNS:
                continue
            if not same_array(xs[col], ys[col]):
                problems.append(f"{name}: column {col} differs")
    elif not same_array(x[()], y[()]):
        problems.append(f"{name}: differs")


def compare_group(name, x, y):
    for key in sorted(set(x.attrs) | set(y.attrs)):
        if key in TIMING_ATTRS:
            continue
        if key not in x.attrs or key not in y.attrs:
            problems.append(f"{name}: attribute {key} only in one file")
        elif not same_array(x.attrs[key], y.attrs[key]):
            problems.append(f"{name}: attribute {key}: {x.attrs[key]!r} != {y.attrs[key]!r}")
    if set(x.keys()) != set(y.keys()):
        problems.append(f"{name}: members {sorted(x.keys())} != {sorted(y.keys())}")
    for key in sorted(set(x.keys()) & set(y.keys())):
        if isinstance(x[key], h5py.Group):
            compare_group(f"{name}/{key}", x[key], y[key])
        else:
            compare_dataset(f"{name}/{key}", x[key], y[key])


ids_a, ids_b = sorted(a["trials"].keys()), sorted(b["trials"].keys())
if ids_a != ids_b:
    problems.append(f"trials: {ids_a} != {ids_b}")
for tid in sorted(set(ids_a) & set(ids_b)):
    for f in (a, b):
        if f["trials"][tid].attrs["status"] != "completed":
            problems.append(f"{f.filename}: {tid} is {f['trials'][tid].attrs['status']}")
    compare_group(f"trials/{tid}", a["trials"][tid], b["trials"][tid])
compare_dataset("summary", a["summary"], b["summary"])

if problems:
    print(f"{a_path} and {b_path} differ:")
    for p in problems:
        print("  " + p)
    sys.exit(1)
print(f"same {len(ids_a)} trials")

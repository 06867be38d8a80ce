#!/usr/bin/python3
"""Class counts and pixel range of sklearn's digits.csv.gz, and flowlab's seeded 20% hold-out (holdout_split,
re-implemented here: SplitMix64 driving a Fisher-Yates shuffle), computed without flowlab.

Run: /usr/bin/python3 tests/data/make_digits_reference.py [/usr/local/share/flowlab/datasets/digits.csv.gz]
Prints the values that tests/test_datasets.cpp asserts.
"""
import gzip
import sys

import numpy as np

path = sys.argv[1] if len(sys.argv) > 1 else "/usr/local/share/flowlab/datasets/digits.csv.gz"
data = np.loadtxt(gzip.open(path, "rt"), delimiter=",")
pixels, labels = data[:, :64], data[:, 64].astype(int)
print("rows", len(data))
print("pixel_min", pixels.min(), "pixel_max", pixels.max(), "pixel_mean", repr(pixels.mean()))
print("class_counts", list(np.bincount(labels, minlength=10)))


def holdout_split(n, fraction=0.2, seed=0x666C6F776C6162):
    """flowlab::holdout_split: (training, held-out) indices, each ascending."""
    mask = (1 << 64) - 1
    state = seed

    def nxt():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    held = 0 if n < 2 else min(n - 1, -(-int(round(fraction * n * 1e9)) // 10**9))  # ceil(fraction * n)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = (nxt() * (i + 1)) >> 64
        order[i], order[j] = order[j], order[i]
    return sorted(order[held:]), sorted(order[:held])


train, heldout = holdout_split(len(data))
print("holdout", len(heldout), "train", len(train))
print("holdout_first", heldout[:8], "holdout_sum", sum(heldout))
print("holdout_class_counts", list(np.bincount(labels[heldout], minlength=10)))
print("holdout_split(4)", holdout_split(4), "holdout_split(3)", holdout_split(3))

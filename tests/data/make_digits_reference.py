#!/usr/bin/python3
"""Class counts and pixel range of sklearn's digits.csv.gz, computed without flowlab.

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

#!/usr/bin/python3
"""Reference for the minibatch OT coupling test: two seeded sets of 200 points in 2D and the optimal total squared
Euclidean cost of pairing them, by SciPy's linear_sum_assignment. Writes tests/data/coupling_reference.csv:
a header, 200 rows "x0_a,x0_b,x1_a,x1_b", then a row "cost,<total>,<perm as ;-joined column indices>,"."""
import os

import numpy as np
from scipy.optimize import linear_sum_assignment

rng = np.random.default_rng(20261123)
x0 = rng.normal(size=(200, 2))
x1 = rng.normal(size=(200, 2)) * np.array([2.0, 0.5]) + np.array([1.0, -1.0])
cost = ((x0[:, None, :] - x1[None, :, :]) ** 2).sum(-1)
rows, cols = linear_sum_assignment(cost)
total = cost[rows, cols].sum()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coupling_reference.csv")
with open(out, "w") as f:
    f.write("x0_a,x0_b,x1_a,x1_b\n")
    for a, b in zip(x0, x1):
        f.write(f"{a[0]!r},{a[1]!r},{b[0]!r},{b[1]!r}\n")
    f.write(f"cost,{total!r},{';'.join(str(c) for c in cols)},\n")
print(f"wrote {out}: optimal total cost {total!r}")

#!/usr/bin/python3
"""Reference 2-Wasserstein distances for metric/w2, from NumPy + SciPy (scipy.optimize.linear_sum_assignment),
without flowlab.

Run: /usr/bin/python3 tests/data/make_w2_reference.py > tests/data/w2_reference.csv
Each case: a generated set A [n, d] and a reference set B [m, d] (rows of the CSV, tagged A or B) and
W2 = sqrt(optimal transport cost with uniform weights on squared Euclidean distances).
For n == m that is the optimal assignment: sqrt(sum of assigned squared distances / n).
For n != m, each point of A is repeated m/g times and each point of B n/g times (g = gcd(n, m)); the assignment
between the two repeated sets of n m / g points is an optimal transport plan (the transportation polytope has
integer vertices), so W2^2 = assignment cost / (n m / g).
"""
import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist


def w2(a, b):
    g = math.gcd(len(a), len(b))
    ra, rb = np.repeat(a, len(b) // g, axis=0), np.repeat(b, len(a) // g, axis=0)
    cost = cdist(ra, rb, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return math.sqrt(cost[rows, cols].sum() / len(ra))


rng = np.random.RandomState(0)
print("# case,set,values...   and   # case,w2,value")
angles = rng.uniform(0, 2 * np.pi, 500)
cases = [
    # 500 x 500 in 2D: a Gaussian against a noisy ring.
    (rng.normal(size=(500, 2)),
     np.stack([3 * np.cos(angles), 3 * np.sin(angles)], 1) + 0.2 * rng.normal(size=(500, 2))),
    # 500 x 500 in 5D: two anisotropic Gaussians with different means.
    (rng.normal(size=(500, 5)) * [1.0, 2.0, 0.5, 1.0, 1.0],
     rng.normal(loc=[0.5, 0.0, -1.0, 0.0, 2.0], size=(500, 5))),
    # 150 generated x 100 reference points in 3D (N != M).
    (rng.normal(size=(150, 3)), rng.uniform(-2, 2, size=(100, 3))),
]
for k, (a, b) in enumerate(cases):
    for tag, x in (("A", a), ("B", b)):
        for row in x:
            print(f"{k},{tag}," + ",".join(repr(float(v)) for v in row))
    print(f"{k},w2,{w2(a, b)!r}")

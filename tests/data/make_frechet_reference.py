#!/usr/bin/python3
"""Reference Frechet distances for metric/frechet, from NumPy + SciPy (scipy.linalg.sqrtm), without flowlab.

Run: /usr/bin/python3 tests/data/make_frechet_reference.py > tests/data/frechet_reference.csv
Each case: two sample sets A [n, d] and B [m, d] (rows of the CSV, tagged A or B) and the distance
|mu_a - mu_b|^2 + tr(Ca + Cb - 2 sqrtm(Ca Cb)), with unbiased covariances (ddof = 1).
"""
import numpy as np
from scipy import linalg

rng = np.random.RandomState(0)
print("# case,set,values...   and   # case,distance,value")
cases = [
    (rng.normal(size=(200, 3)), rng.normal(loc=[1.0, -0.5, 0.0], scale=[1.0, 2.0, 0.5], size=(300, 3))),
    (rng.normal(size=(150, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]]), rng.uniform(-2, 2, size=(120, 2))),
    (rng.normal(size=(100, 5)), rng.normal(size=(100, 5))),
]
for k, (a, b) in enumerate(cases):
    for tag, x in (("A", a), ("B", b)):
        for row in x:
            print(f"{k},{tag}," + ",".join(repr(float(v)) for v in row))
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(ca @ cb).real
    d = float(mu @ mu + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean))
    print(f"{k},distance,{d!r}")

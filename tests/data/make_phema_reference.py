#!/usr/bin/env python3
"""Reference values for tests/test_phema.cpp, computed with NumPy from EDM2's post-hoc EMA formulas as its reference
code (NVlabs/edm2, training/phema.py) writes them: std_to_exp by np.roots (eq. 126, Algorithm 2), the profile inner
product (eq. 151), Algorithm 3's solve with np.linalg.solve, and the discrete step weights of eq. 127's update.

Run: /usr/bin/python3 tests/data/make_phema_reference.py > tests/data/phema_reference.csv
"""
import numpy as np


def std_to_exp(std):
    q = np.float64(std) ** -2
    return np.roots([1, 7, 16 - q, 12 - q]).real.max()


def exp_to_std(g):
    return np.sqrt((g + 1) / (g + 2) ** 2 / (g + 3))


def correlation(a_ofs, a_std, b_ofs, b_std):
    ga, gb = std_to_exp(a_std), std_to_exp(b_std)
    e = gb if a_ofs < b_ofs else -ga
    return (ga + 1) * (gb + 1) * (a_ofs / b_ofs) ** e / ((ga + gb + 1) * max(a_ofs, b_ofs))


def step_weights(t, std, last):
    g1 = std_to_exp(std) + 1
    s = np.arange(1, last + 1, dtype=np.float64)
    w = (s ** g1 - (s - 1) ** g1) / np.float64(t) ** g1
    w[s > t] = 0
    return w


print("kind,a,b,c,d,value")
for std in [0.01, 0.05, 0.08, 0.1, 0.15, 0.2, 0.28]:
    print(f"exponent,{std},0,0,0,{std_to_exp(std)!r}")
for a_ofs, a_std, b_ofs, b_std in [(100, 0.05, 300, 0.1), (300, 0.1, 100, 0.05), (300, 0.05, 300, 0.1), (57, 0.2, 1000, 0.01)]:
    print(f"correlation,{a_ofs},{a_std},{b_ofs},{b_std},{correlation(a_ofs, a_std, b_ofs, b_std)!r}")

# Algorithm 3 for 8 snapshot steps of a 300-step stage (flowlab's phema_snapshot_steps) at stds 0.05 and 0.1.
steps = [int(np.floor(300 * i / 8 + 0.5)) for i in range(1, 9)]  # halves away from zero, as std::llround
in_ofs = [s for s in steps for _ in (0.05, 0.1)]
in_std = [sd for _ in steps for sd in (0.05, 0.1)]
for target in [0.03, 0.08, 0.2]:
    A = np.array([[correlation(a, sa, b, sb) for b, sb in zip(in_ofs, in_std)] for a, sa in zip(in_ofs, in_std)])
    B = np.array([correlation(a, sa, 300, target) for a, sa in zip(in_ofs, in_std)])
    x = np.linalg.solve(A, B)
    x = x / x.sum()
    for i, c in enumerate(x):
        print(f"coefficient,{target},{i},{in_ofs[i]},{in_std[i]},{c!r}")
    w = sum(c * step_weights(o, sd, 300) for c, o, sd in zip(x, in_ofs, in_std))
    err = np.abs(w - step_weights(300, target, 300)).sum()
    print(f"profile_error,{target},0,0,0,{err!r}")

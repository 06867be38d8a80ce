#!/usr/bin/python3
"""Reference NFE, accepted steps and final states for flowlab's dopri5, from SciPy's RK45 (Debian python3-scipy).

Run: /usr/bin/python3 tests/data/make_dopri5_reference.py > tests/data/dopri5_reference.csv
Each problem is integrated on [0, 1]. States are flattened row-major, as flowlab's RMS error norm sees a [B, D] batch.
"""
import sys

import numpy as np
import scipy
from scipy.integrate import solve_ivp

A = 1.5  # growth rate of the linear problem
W = 2 * np.pi  # angular speed of the rotation problem

PROBLEMS = {
    # name: (f(t, y) on the flattened state, y0 flattened)
    "linear": (lambda t, y: A * y, np.array([1.0, -0.5])),
    "decay_t": (lambda t, y: -t * y, np.array([2.0, 0.3, -1.0])),
    "rotation": (lambda t, y: (W * np.stack([-y.reshape(-1, 2)[:, 1], y.reshape(-1, 2)[:, 0]], 1)).ravel(),
                 np.array([1.0, 0.0, 0.5, 0.5, -0.2, 0.9])),
}
CASES = [(1e-3, 1e-6), (1e-6, 1e-9), (1e-8, 1e-10)]
FIRST_STEPS = [0.0, 0.01]  # 0: SciPy selects it (Hairer); else given

print(f"# scipy {scipy.__version__}, RK45, t in [0, 1]")
print("problem,rtol,atol,first_step,nfev,naccepted,y")
for name, (f, y0) in PROBLEMS.items():
    for rtol, atol in CASES:
        for h0 in FIRST_STEPS:
            sol = solve_ivp(f, (0.0, 1.0), y0, method="RK45", rtol=rtol, atol=atol,
                            first_step=(h0 if h0 > 0 else None))
            assert sol.success, sol.message
            y = " ".join(repr(float(v)) for v in sol.y[:, -1])
            print(f"{name},{rtol!r},{atol!r},{h0!r},{sol.nfev},{len(sol.t) - 1},{y}")
sys.stdout.flush()

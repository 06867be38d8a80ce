#!/usr/bin/python3
"""Reference NFE, accepted/rejected steps and final states for flowlab's adaptive solvers (tests/test_solvers_adaptive.cpp).

  /usr/bin/python3 tests/data/make_solver_reference.py scipy > tests/data/solver_reference_scipy.csv
      SciPy's solve_ivp (Debian python3-scipy): RK23 for bosh3, DOP853 for dopri8 (controller scipy).
  PYTHONPATH=<torchdiffeq 0.2.5 + numpy + scipy> <python with torch> tests/data/make_solver_reference.py torchdiffeq \
      > tests/data/solver_reference_torchdiffeq.csv
      torchdiffeq's odeint (controller torchdiffeq) for dopri5, bosh3, fehlberg2, adaptive_heun, and tsit5, which
      torchdiffeq 0.2.5 lacks: it runs torchdiffeq's own RKAdaptiveStepsizeODESolver with the Tsit5 tableau below.
Each problem is integrated on [0, 1] on a [B, D] float64 state (flattened row-major for SciPy). `rejected` is -1
where the peer does not report it.
"""
import sys

import numpy as np

A = 1.5  # growth rate of the linear problem
W = 2 * np.pi  # angular speed of the rotation problem
Y0 = {"linear": [[1.0, -0.5]], "decay_t": [[2.0, 0.3, -1.0]], "rotation": [[1.0, 0.0], [0.5, 0.5], [-0.2, 0.9]]}
CASES = [(1e-3, 1e-6), (1e-6, 1e-9), (1e-8, 1e-10)]
LOW_ORDER_CASES = [(1e-3, 1e-6), (1e-5, 1e-8)]  # fehlberg2 and adaptive_heun: second order, many steps below
FIRST_STEPS = [0.0, 0.01]  # 0: the solver selects it (Hairer II.4)

print("method,problem,rtol,atol,first_step,nfe,accepted,rejected,y")


def row(method, name, rtol, atol, h0, nfe, acc, rej, y):
    print(f"{method},{name},{rtol!r},{atol!r},{h0!r},{nfe},{acc},{rej}," + " ".join(repr(float(v)) for v in y))


def scipy_rows():
    import scipy
    from scipy.integrate import solve_ivp
    print(f"# scipy {scipy.__version__}")
    fs = {"linear": lambda t, y: A * y, "decay_t": lambda t, y: -t * y,
          "rotation": lambda t, y: (W * np.stack([-y.reshape(-1, 2)[:, 1], y.reshape(-1, 2)[:, 0]], 1)).ravel()}
    for method, ivp in [("bosh3", "RK23"), ("dopri8", "DOP853")]:
        for name, f in fs.items():
            for rtol, atol in CASES:
                for h0 in FIRST_STEPS:
                    sol = solve_ivp(f, (0.0, 1.0), np.array(Y0[name]).ravel(), method=ivp, rtol=rtol, atol=atol,
                                    first_step=(h0 if h0 > 0 else None))
                    assert sol.success, sol.message
                    row(method, name, rtol, atol, h0, sol.nfev, len(sol.t) - 1, -1, sol.y[:, -1])


def torchdiffeq_rows():
    import torch
    import torchdiffeq
    odeint_module = sys.modules["torchdiffeq._impl.odeint"]  # the module, which its own function shadows
    from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver, _ButcherTableau
    print(f"# torchdiffeq {torchdiffeq.__version__}, torch {torch.__version__}")
    d = torch.float64

    class Tsit5(RKAdaptiveStepsizeODESolver):  # Tsitouras 2011, Table 1; as plugins/solver/tsit5.cpp
        order = 5
        tableau = _ButcherTableau(
            alpha=torch.tensor([0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0], dtype=d),
            beta=[torch.tensor(r, dtype=d) for r in [
                [0.161],
                [-0.008480655492356989, 0.335480655492357],
                [2.897153057105493, -6.359448489975075, 4.3622954328695815],
                [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
                [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
                [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
                 2.324710524099774]]],
            c_sol=torch.tensor([0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
                                2.324710524099774, 0.0], dtype=d),
            c_error=torch.tensor([-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995,
                                  -0.1447110071732629, 0.5823571654525552, -0.45808210592918697,
                                  0.015151515151515152], dtype=d))
        # The continuous extension b_i(1/2) (Tsitouras' interpolant polynomials).
        mid = torch.tensor([0.10741235230096878, 0.011356249999999998, 0.3956090305604531, -0.3447521435259353,
                            1.316185364958165, -1.0170608542936517, 0.03125], dtype=d)

    odeint_module.SOLVERS["tsit5"] = Tsit5

    def rot(y):
        return torch.stack([-y[:, 1], y[:, 0]], 1)

    fs = {"linear": lambda t, y: A * y, "decay_t": lambda t, y: -t * y, "rotation": lambda t, y: W * rot(y)}

    class Counted(torch.nn.Module):
        def __init__(self, f):
            super().__init__()
            self.f, self.nfe, self.accepted, self.rejected = f, 0, 0, 0

        def forward(self, t, y):
            self.nfe += 1
            return self.f(t, y)

        def callback_accept_step(self, t0, y0, dt):
            self.accepted += 1

        def callback_reject_step(self, t0, y0, dt):
            self.rejected += 1

    for method in ["dopri5", "bosh3", "tsit5", "fehlberg2", "adaptive_heun"]:
        cases = LOW_ORDER_CASES if method in ("fehlberg2", "adaptive_heun") else CASES
        for name, f in fs.items():
            for rtol, atol in cases:
                for h0 in FIRST_STEPS:
                    func = Counted(f)
                    options = {"first_step": h0} if h0 > 0 else {}
                    y = torchdiffeq.odeint(func, torch.tensor(Y0[name], dtype=d), torch.tensor([0.0, 1.0], dtype=d),
                                           rtol=rtol, atol=atol, method=method, options=options)
                    row(method, name, rtol, atol, h0, func.nfe, func.accepted, func.rejected, y[-1].flatten())


{"scipy": scipy_rows, "torchdiffeq": torchdiffeq_rows}[sys.argv[1]]()
sys.stdout.flush()

#!/usr/bin/env python3
"""Issue 25: what dopri5 (torchdiffeq, rtol = atol = 1e-5) spends on an exactly straight flow as TorchCFM's own MLP
learns it: TorchCFM's MLP (w = 64, SELU, time_varying=True: raw t beside x) fitted by Adam 1e-3 to the constant
field v(x, t) = (1.5, -0.5) on x ~ N(0, 4 I), t ~ U(0, 1), 1500 steps of batch 256 (the fit of
tests/test_architectures.cpp's "a straight field learned by the default mlp"), then integrated from 512 standard
normal points. Also the exact constant field (the controller's minimum) and SciPy's RK45 on the same fitted field.
Each learning-rate schedule: constant, cosine to 0, with and without an EMA of 0.99.
Run: build/torch-pip/venv/bin/python benchmarks/constant_field.py   (torch, torchcfm, torchdiffeq, scipy from PyPI:
     bash benchmarks/vs_torchcfm.sh installs the first three)
Results in benchmarks/results/time_features_mlp_2026-12-07.md."""
import copy
import math

import torch
import torchdiffeq
from scipy.integrate import solve_ivp
from torchcfm.models.models import MLP

torch.set_num_threads(1)
C = torch.tensor([1.5, -0.5])
TOL = 1e-5


def fit(seed, cosine, ema, steps=1500):
    torch.manual_seed(seed)
    model = MLP(dim=2, w=64, time_varying=True)
    average = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for s in range(steps):
        if cosine:
            for g in opt.param_groups:
                g["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * s / steps))
        opt.zero_grad()
        x, t = 2 * torch.randn(256, 2), torch.rand(256, 1)
        ((model(torch.cat([x, t], 1)) - C) ** 2).mean().backward()
        opt.step()
        with torch.no_grad():
            for pa, pm in zip(average.parameters(), model.parameters()):
                pa.mul_(ema).add_(pm, alpha=1 - ema)
    return average if ema > 0 else model


def nfe(field, x0):
    calls = [0]

    def f(t, x):
        calls[0] += 1
        return field(t, x)

    with torch.no_grad():
        torchdiffeq.odeint(f, x0, torch.tensor([0.0, 1.0]), method="dopri5", rtol=TOL, atol=TOL)
    return calls[0]


def main():
    torch.manual_seed(7)
    x0 = torch.randn(512, 2)
    print(f"exact constant field: torchdiffeq dopri5 {nfe(lambda t, x: C.expand_as(x).clone(), x0)} NFE")
    for cosine, ema in [(False, 0.0), (True, 0.0), (True, 0.99), (False, 0.99)]:
        row = []
        for seed in range(3):
            m = fit(seed, cosine, ema)
            field = lambda t, x: m(torch.cat([x, t.reshape(1, 1).expand(x.shape[0], 1)], 1))  # noqa: E731
            with torch.no_grad():
                g = lambda t, y: field(torch.tensor(t, dtype=torch.float32),  # noqa: E731
                                       torch.tensor(y, dtype=torch.float32).reshape(-1, 2)).double().numpy().ravel()
                scipy_nfe = solve_ivp(g, (0, 1), x0.double().numpy().ravel(), method="RK45", rtol=TOL, atol=TOL).nfev
            row.append(f"seed {seed}: torchdiffeq {nfe(field, x0)}, scipy RK45 {scipy_nfe}")
        print(f"TorchCFM MLP, lr {'cosine' if cosine else 'constant'}, EMA {ema}: " + "; ".join(row))


if __name__ == "__main__":
    main()

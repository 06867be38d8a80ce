"""Reference endpoints for solver/dpmpp_2m and solver/unipc from diffusers' own schedulers (tests/test_solvers_multistep.cpp).

Run with a PyPI torch and diffusers (diffusers 0.42.1 was used; its pure-Python dependencies installed --no-deps):
  PYTHONPATH=/tmp/pylib-multistep build/torch-pip/venv/bin/python tests/data/make_multistep_reference.py \
      > tests/data/multistep_reference.csv

Problem: Gaussian to Gaussian on the rectified path x_t = t x1 + (1 - t) x0 (flowlab time: noise at t = 0), with
x0 ~ N(0, I) and x1 ~ N(mu, diag(s^2)); the exact marginal velocity is
  v(x, t) = mu + (t s^2 - (1 - t)) / (t^2 s^2 + (1 - t)^2) (x - t mu),
and diffusers' flow models see sigma = 1 - t and the model output dx/dsigma = -v.

Schedulers: DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction") with its defaults
(dpmsolver++, midpoint, solver_order 2, final_sigmas_type zero) and UniPCMultistepScheduler(use_flow_sigmas=True,
prediction_type="flow_prediction") with its defaults (bh2, solver_order 2, predict_x0, lower_order_final). Each run
sets sigma_i = 1 - t_i on the grid (and 0 at the end) in float64, as set_timesteps would but without its float32 cast:
  * UniPC: set_timesteps(sigmas=...) computes the sigmas (including its sigma_0 = 1 -> 1 - 1e-6 shift); we recompute
    the same in float64 and check that they round to diffusers' float32 ones; then UniPCMultistepScheduler.step runs.
  * DPM-Solver++: step() casts the sample to float32 ("Upcast to avoid precision issues", scheduling_dpmsolver_
    multistep.py, step()), which caps agreement at ~1e-7; so the float64 reference calls the scheduler's own
    convert_model_output / dpm_solver_first_order_update / multistep_dpm_solver_second_order_update with step()'s
    order choice (first order when lower_order_nums < 1 or at the last step since final_sigmas_type == "zero"),
    and a float32 run of step() itself is checked against it to 1e-5.
Grids: uniform from t = 0 (steps 2, 4, 8) and DPMSolverMultistepScheduler's own flow grid with flow_shift 3 (steps 5, 10:
sigmas = shift s / (1 + (shift - 1) s) on s = 1 - linspace(1, 1/1000, N + 1), flipped, last dropped; t = 1 - sigma,
so t_0 = 3.3e-4 > 0).
Columns: method, grid, steps, times (space separated), x0 and x1 (row-major [3, 2], space separated).
"""
import sys

import numpy as np
import torch
import diffusers
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

MU = np.array([1.5, -0.5])
S = np.array([0.5, 2.0])
X0 = np.array([[0.3, -1.2], [1.1, 0.4], [-0.7, 2.0]])


def velocity(x, t):
    mu = torch.tensor(MU, dtype=torch.float64)
    s2 = torch.tensor(S * S, dtype=torch.float64)
    return mu + (t * s2 - (1 - t)) / (t * t * s2 + (1 - t) ** 2) * (x - t * mu)


def grids():
    for n in (2, 4, 8):
        yield "uniform", np.linspace(0.0, 1.0, n + 1)
    shift = 3.0
    for n in (5, 10):
        s = 1.0 - np.linspace(1, 1 / 1000, n + 1)  # DPMSolverMultistepScheduler.set_timesteps, use_flow_sigmas
        s = np.flip(shift * s / (1 + (shift - 1) * s))[:-1]
        yield "flow_shift3", np.concatenate([1.0 - s, [1.0]])


def run_unipc(t, dtype=torch.float64):
    n = len(t) - 1
    sched = UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction")
    sched.set_timesteps(sigmas=1.0 - t[:-1])
    sig = 1.0 - t[:-1]
    if abs(sig[0] - 1) < 1e-6:  # set_timesteps: "to avoid inf torch.log(alpha_si)"
        sig[0] -= 1e-6
    sig = np.concatenate([sig, [0.0]])
    assert np.array_equal(sig.astype(np.float32), sched.sigmas.numpy()), (sig, sched.sigmas)
    sched.sigmas = torch.tensor(sig, dtype=torch.float64)
    sched.set_begin_index(0)
    x = torch.tensor(X0, dtype=dtype)
    for i in range(n):
        v = velocity(x.double(), float(t[i])).to(dtype)
        x = sched.step(-v, sched.timesteps[i], x).prev_sample
    return x


def run_dpmpp(t):
    n = len(t) - 1
    sched = DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction")
    sched.set_timesteps(n)
    sched.sigmas = torch.tensor(np.concatenate([1.0 - t[:-1], [0.0]]), dtype=torch.float64)
    sched.set_begin_index(0)
    sched._step_index = 0
    x = torch.tensor(X0, dtype=torch.float64)
    for i in range(n):
        out = sched.convert_model_output(-velocity(x, float(t[i])), sample=x)
        sched.model_outputs[0] = sched.model_outputs[1]
        sched.model_outputs[1] = out
        if sched.lower_order_nums < 1 or i == n - 1:
            x = sched.dpm_solver_first_order_update(out, sample=x)
        else:
            x = sched.multistep_dpm_solver_second_order_update(sched.model_outputs, sample=x)
        sched.lower_order_nums = min(sched.lower_order_nums + 1, 2)
        sched._step_index += 1
    # step() itself, in float32, agrees to float32 accuracy.
    sched32 = DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction")
    sched32.set_timesteps(n)
    sched32.sigmas = torch.tensor(np.concatenate([1.0 - t[:-1], [0.0]]), dtype=torch.float32)
    sched32.set_begin_index(0)
    y = torch.tensor(X0, dtype=torch.float32)
    for i in range(n):
        y = sched32.step(-velocity(y.double(), float(t[i])).float(), sched32.timesteps[i], y).prev_sample
    assert torch.allclose(y.double(), x, atol=1e-5), (y, x)
    return x


def fmt(a):
    return " ".join(repr(float(v)) for v in np.asarray(a).ravel())


print(f"# make_multistep_reference.py, diffusers {diffusers.__version__}, torch {torch.__version__}")
print("method,grid,steps,times,x0,x1")
for method, run in (("dpmpp_2m", run_dpmpp), ("unipc", run_unipc)):
    for name, t in grids():
        x = run(t)
        print(f"{method},{name},{len(t) - 1},{fmt(t)},{fmt(X0)},{fmt(x.numpy())}")
    sys.stdout.flush()

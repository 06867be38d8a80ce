#!/usr/bin/python3
"""Exact moments of flowlab's euler_maruyama samples for a Gaussian-to-Gaussian problem, by the moment recursion.

Run: /usr/bin/python3 tests/data/sde_moment_recursion.py > tests/data/sde_moment_recursion.csv

Problem (per coordinate; coordinates are independent): x0 ~ N(0, 1) at t = 0, x1 ~ N(M, S^2), the rectified path
x_t = t x1 + (1 - t) x0. Its marginal is N(t M, V_t) with V_t = t^2 S^2 + (1 - t)^2, and the exact velocity and score
are affine in x:
    v(x, t) = M + k_t (x - t M),   k_t = (t S^2 - (1 - t)) / V_t,       score(x, t) = -(x - t M) / V_t.
One Euler-Maruyama step of solver/euler_maruyama (SiT's diffusion D = w / 2) is x' = x + h [v + D score] + sqrt(2 D h) z,
i.e. x' = A x + B + sqrt(2 D h) z with c = k_t - D / V_t, A = 1 + h c, B = h M (1 - t c). So the law stays Gaussian and
its mean and variance propagate exactly: mu' = A mu + B, var' = A^2 var + 2 D h. The last steps are affine too:
mean  x + l [v + D score] (no noise), euler x + l v, tweedie (x + (1 - t)^2 score) / t. The grid is the solver's:
`steps` uniform steps on [t_start, 1 - last_step_size] (t_start = eps for SBDM, else 0), the last step from its end.
The test compares the sample mean and variance of flowlab's samples to these within Monte Carlo standard errors.
"""
import math

M, S = 1.5, 0.3  # target mean and standard deviation


def diffusion(form, t, norm):
    """SiT's compute_diffusion for the rectified path (alpha = t, sigma = 1 - t, alpha' = 1, sigma' = -1)."""
    a, s, da, ds = t, 1 - t, 1.0, -1.0
    if form == "constant":
        return norm
    if form == "SBDM":
        return norm * (da / a * s * s - s * ds)
    if form == "sigma":
        return norm * s
    if form == "linear":
        return norm * (1 - t)
    if form == "decreasing":
        return 0.25 * (norm * math.cos(math.pi * t) + 1) ** 2
    if form == "increasing-decreasing":
        return norm * math.sin(math.pi * t) ** 2
    raise ValueError(form)


def affine_step(t, h, d):
    """x + h [v + d score] = A x + B."""
    V = t * t * S * S + (1 - t) ** 2
    c = (t * S * S - (1 - t)) / V - d / V
    return 1 + h * c, h * M * (1 - t * c)


def moments(form, norm, last_step, last_step_size, eps, steps):
    t_start = eps if form == "SBDM" else 0.0
    t_end = 1.0 - last_step_size if last_step != "none" else 1.0
    grid = [t_start + (t_end - t_start) * (i / steps) for i in range(steps + 1)]
    grid[-1] = t_end
    mu, var = 0.0, 1.0
    for i in range(steps):
        t, h = grid[i], grid[i + 1] - grid[i]
        d = diffusion(form, t, norm)
        A, B = affine_step(t, h, d)
        mu, var = A * mu + B, A * A * var + 2 * d * h
    t = t_end
    if last_step in ("mean", "euler"):
        A, B = affine_step(t, last_step_size, diffusion(form, t, norm) if last_step == "mean" else 0.0)
        mu, var = A * mu + B, A * A * var
    elif last_step == "tweedie":
        V = t * t * S * S + (1 - t) ** 2
        A, B = (1 - (1 - t) ** 2 / V) / t, (1 - t) ** 2 * M / V
        mu, var = A * mu + B, A * A * var
    return mu, var


# The convergence cases (last_step none, the error in the variance falls like 1/steps) with strengths that make the
# discretisation error of every form stand out of the Monte Carlo noise, then the last steps.
CASES = []
for form, norm in [("constant", 1.0), ("SBDM", 4.0), ("sigma", 4.0), ("linear", 4.0), ("decreasing", 1.0),
                   ("increasing-decreasing", 4.0)]:
    for steps in (25, 100, 400):
        CASES.append((form, norm, "none", 0.0, 1e-3, steps))
for form in ("sigma", "SBDM"):
    for last in ("mean", "euler", "tweedie"):
        CASES.append((form, 1.0, last, 0.04, 1e-3, 100))

print(f"# exact Euler-Maruyama moments at t = 1; x0 ~ N(0, 1), x1 ~ N(M, S^2), rectified path; M = {M}, S = {S}")
print("form,norm,last_step,last_step_size,eps,steps,mean,var,target_mean,target_var")
for form, norm, last, size, eps, steps in CASES:
    mu, var = moments(form, norm, last, size, eps, steps)
    print(f"{form},{norm!r},{last},{size!r},{eps!r},{steps},{mu!r},{var!r},{M!r},{S * S!r}")

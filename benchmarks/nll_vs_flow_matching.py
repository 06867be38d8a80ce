#!/usr/bin/env python3
"""Driver of benchmarks/nll_vs_flow_matching.sh: log-likelihood throughput of flowlab's metric/nll against Meta
flow_matching's ODESolver.compute_likelihood, on the same network and the same held-out samples, CPU.

Tasks: 8 Gaussians (2D, exact divergence) and sklearn's 8x8 digits (64 dimensions, Hutchinson's estimator with one
Rademacher probe per sample, kept for the whole solve: what compute_likelihood draws). Both sides integrate backward
from the data with dopri5 at rtol = atol = 1e-5 (flowlab's solver; torchdiffeq's for flow_matching) and add the
standard Gaussian's log density.

The network: a flowlab mlp, trained briefly by `flowlab run`, then rebuilt as a torch.nn.Module from the weights in
the results file (same layers, activations and sinusoidal time features; one t shared by the batch enters the first
layer as a bias, as flowlab's mlp does). Its field must match flowlab's to 1e-5 at the reference samples before
anything is timed. The flowlab side is benchmarks/nll_driver.cpp (build target flowlab_nll_driver): the nll plugin's
compute_model on the ModelAccess the engine builds, under the engine's NoGradGuard.

Timing: rounds of R timed calls on each side, the side that goes first alternating by round, one untimed warm-up
call per process (flowlab: per driver run; flow_matching: once); median seconds per call over all rounds;
samples/s = N / median. Same thread count on both sides (torch.set_num_threads, at::set_num_threads).
Usage: nll_vs_flow_matching.py BUILD_DIR [--quick] [--rounds K (5)] [--reps R (5)] [--threads T (1)] [--out FILE.md]"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flowlab_trial import run_experiment, text  # noqa: E402

RTOL = ATOL = 1e-5
SEED = 0
# (key, label, dataset, samples, mlp params, training steps, exact divergence)
TASKS = [
    ("2d", "8 Gaussians (2D), exact divergence", "eight_gaussians", 2000,
     "{width: 64, depth: 3}", 2000, True),
    ("digits", "8x8 digits held-out (64 dims), Hutchinson, 1 Rademacher probe", "digits", 360,
     "{width: 256, depth: 3}", 2000, False),
]

EXPERIMENT = """name: nll_{key}
devices: [cpu]
threads: {threads}
data: {{dataset: {dataset}}}
model: {{architecture: {{name: mlp, params: {params}}}}}
train: {{steps: {steps}, batch_size: 256, lr: 2.0e-3, warmup: 100, schedule: cosine, ema: 0, log_every: 100,
        checkpoint_every: 0}}
eval: {{samples: 16, metrics: [], solvers: [{{solver: euler, steps: [8]}}]}}
"""


class FlowlabMLP(torch.nn.Module):
    """flowlab's architecture/mlp (unconditional, sinusoidal time features) from its stored weights."""

    def __init__(self, weights, params, event_shape):
        super().__init__()
        assert params.get("time_embedding", "sinusoidal") == "sinusoidal", params
        self.act = {"silu": F.silu, "relu": F.relu, "gelu": F.gelu, "selu": F.selu}[params.get("activation", "silu")]
        self.shape = tuple(event_shape)
        self.d = int(np.prod(event_shape))
        self.time_dim = int(params.get("time_dim", 2))  # the stored params name it; 2 is the default since mlp 1.4.0
        max_frequency = float(params.get("max_frequency", 10))
        half = self.time_dim // 2
        k = np.arange(half, dtype=np.float64)
        f = np.full(1, np.pi) if half == 1 else np.pi * (max_frequency / np.pi) ** (k / (half - 1))
        self.register_buffer("freq", torch.tensor(f, dtype=torch.float32))
        depth = int(params.get("depth", 4))
        w = lambda key: torch.tensor(np.asarray(weights[key], dtype=np.float32))
        first = w("layers.0.weight")
        self.w_x = torch.nn.Parameter(first[:, : self.d].contiguous())
        self.w_t = torch.nn.Parameter(first[:, self.d:].contiguous())
        self.b0 = torch.nn.Parameter(w("layers.0.bias"))
        self.layers = torch.nn.ModuleList()
        for i in range(1, depth):
            lin = torch.nn.Linear(1, 1)
            lin.weight, lin.bias = torch.nn.Parameter(w(f"layers.{i}.weight")), torch.nn.Parameter(w(f"layers.{i}.bias"))
            self.layers.append(lin)
        self.out = torch.nn.Linear(1, 1)
        self.out.weight, self.out.bias = torch.nn.Parameter(w("out.weight")), torch.nn.Parameter(w("out.bias"))
        assert len(weights) == 2 * depth + 2, sorted(weights)

    def embed(self, t):
        args = t.reshape(-1, 1) * self.freq[None, :]
        parts = [torch.cos(args), torch.sin(args)]
        if self.time_dim % 2:
            parts.append(2 * t.reshape(-1, 1) - 1)
        return torch.cat(parts, 1)

    def forward(self, x, t):
        b = x.shape[0]
        xf = x.reshape(b, self.d)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.numel() == 1:  # one t for the batch (an ODE solve): emb(t) enters the first layer as a bias
            bias = torch.addmm(self.b0, self.embed(t.reshape(1)), self.w_t.t())
            h = self.act(torch.addmm(bias, xf, self.w_x.t()))
        else:
            h = self.act(F.linear(torch.cat([xf, self.embed(t.expand(b))], 1), torch.cat([self.w_x, self.w_t], 1),
                                  self.b0))
        for lin in self.layers:
            h = self.act(lin(h))
        return self.out(h).reshape(x.shape)


def gaussian_log_p0(x):
    flat = x.double().flatten(1)
    return -0.5 * flat.pow(2).sum(1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)


def run_driver(driver, results, trial, task, work, args, reps, dump=False):
    key, _, dataset, n, _, _, exact = task
    cmd = [driver, results, trial, dataset, str(n), work, "--reps", str(reps), "--threads", str(args.threads),
           "--seed", str(SEED), "--rtol", str(RTOL), "--atol", str(ATOL), "--probes", "1", "--probe", "rademacher",
           "--exact-max-dim", "16"]
    out = subprocess.run(cmd + (["--dump"] if dump else []), check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["exact"] == exact, r
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.reps = 1, 1
    flowlab = os.path.join(args.build, "bin", "flowlab")
    driver = os.path.join(args.build, "benchmarks", "flowlab_nll_driver")
    for exe in (flowlab, driver):
        if not os.access(exe, os.X_OK):
            sys.exit(f"nll_vs_flow_matching: {exe} is missing: build the targets flowlab and flowlab_nll_driver")
    from flow_matching.solver import ODESolver
    import importlib.metadata as md

    torch.set_num_threads(args.threads)
    env = dict(os.environ, FLOWLAB_PLUGIN_PATH="")
    work = tempfile.mkdtemp(prefix="nll_vs_flow_matching_")
    rows, notes = [], []
    load_start, t_start = os.getloadavg()[0], time.time()
    try:
        for task in TASKS:
            key, label, dataset, n, params, steps, exact = task
            if args.quick:
                steps = 50
            yaml, results = os.path.join(work, key + ".yaml"), os.path.join(work, key + ".h5")
            with open(yaml, "w") as f:
                f.write(EXPERIMENT.format(key=key, threads=args.threads, dataset=dataset, params=params, steps=steps))
            run_experiment(flowlab, yaml, results, env)
            with h5py.File(results) as f:
                (trial,) = f["trials"].keys()
                g = f["trials"][trial]
                assert text(g.attrs["status"]) == "completed", text(g.attrs["error"])
                wg = g["weights"]
                mparams = {k[len("param:"):]: text(v) for k, v in wg.attrs.items() if k.startswith("param:")}
                weights = {k: d[...] for k, d in wg.items()}
            # flowlab's side once with --dump: the reference samples, its field at them, its per-sample log p.
            first = run_driver(driver, results, trial, task, work, args, reps=0, dump=True)
            shape = first["shape"]
            x = torch.from_numpy(np.fromfile(os.path.join(work, "x.f32"), dtype=np.float32).reshape(shape))
            v_flowlab = np.fromfile(os.path.join(work, "v.f32"), dtype=np.float32).reshape([4] + shape)
            logp_flowlab = np.fromfile(os.path.join(work, "logp.f64"), dtype=np.float64)
            model = FlowlabMLP(weights, mparams, shape[1:]).eval()
            with torch.no_grad():
                field_err = max(float(np.abs(model(x, torch.tensor(t)).numpy() - v_flowlab[i]).max())
                                for i, t in enumerate([0.0, 0.25, 0.5, 1.0]))
            print(f"{key}: max |v_torch - v_flowlab| = {field_err:.2e} over {n} samples, t in {{0, .25, .5, 1}}",
                  file=sys.stderr)
            if not field_err <= 1e-5:
                sys.exit(f"nll_vs_flow_matching: {key}: the rebuilt network differs from flowlab's by {field_err:.3g}")

            calls = [0]

            class Counted(torch.nn.Module):
                def __init__(self, net):
                    super().__init__()
                    self.net = net

                def forward(self, x, t, **extras):
                    calls[0] += 1
                    return self.net(x, t)

            solver = ODESolver(velocity_model=Counted(model))

            def fm_call():
                calls[0] = 0
                s0 = time.perf_counter()
                _, logp = solver.compute_likelihood(x_1=x, log_p0=gaussian_log_p0, step_size=None, method="dopri5",
                                                    atol=ATOL, rtol=RTOL, exact_divergence=exact)
                return time.perf_counter() - s0, calls[0], logp.double().numpy()

            torch.manual_seed(SEED)
            fm_call()  # warm-up
            fl_s, fl_nfe, fl_nll, fl_net, fm_s, fm_nfe, fm_logp = [], [], [], [], [], [], []
            for rnd in range(args.rounds):
                def flowlab_side():
                    r = run_driver(driver, results, trial, task, work, args, reps=args.reps)
                    fl_s.extend(r["seconds"]), fl_nfe.extend(r["nfe"]), fl_nll.append(r["nll"])
                    fl_net.extend(r["network_seconds"])

                def fm_side():
                    for _ in range(args.reps):
                        s, nfe, logp = fm_call()
                        fm_s.append(s), fm_nfe.append(nfe), fm_logp.append(logp)

                for side in ((flowlab_side, fm_side) if rnd % 2 == 0 else (fm_side, flowlab_side)):
                    side()
                print(f"{key}: round {rnd + 1}/{args.rounds} ({time.time() - t_start:.0f} s)", file=sys.stderr)
            fl_med, fm_med = statistics.median(fl_s), statistics.median(fm_s)
            assert max(fl_nll) - min(fl_nll) == 0, fl_nll  # the metric is deterministic (seeded probes)
            nll_fl = fl_nll[0]
            assert abs(nll_fl + logp_flowlab.mean()) < 1e-9 * max(1, abs(nll_fl)), (nll_fl, logp_flowlab.mean())
            nll_fm = [-float(lp.mean()) for lp in fm_logp]
            # Per sample, flowlab's log p minus flow_matching's (its first timed call): exact divergence, the solvers'
            # error only; Hutchinson, also both estimators' noise (independent probes), so its mean is judged
            # against its standard error.
            diff = logp_flowlab - fm_logp[0]
            stderr = float(diff.std(ddof=1) / math.sqrt(len(diff)))
            rows.append(dict(key=key, label=label, n=n, dim=first["dim"], fl_sps=n / fl_med, fm_sps=n / fm_med,
                             ratio=fm_med / fl_med, per_call_ratios=[fm / fl for fm, fl in zip(fm_s, fl_s)],
                             fl_nfe=sorted(set(fl_nfe)), fm_nfe=sorted(set(fm_nfe)),
                             fl_nfe_med=statistics.median(fl_nfe), fm_nfe_med=statistics.median(fm_nfe), nll_fl=nll_fl,
                             nll_fm=statistics.median(nll_fm), nll_fm_range=(min(nll_fm), max(nll_fm)),
                             mean_diff=float(diff.mean()), max_abs_diff=float(np.abs(diff).max()), stderr=stderr,
                             field_err=field_err, exact=exact, fl_med=fl_med, fm_med=fm_med, net_share=statistics.median(fl_net) / fl_med, describe=first["describe"]))
    finally:
        subprocess.run(["rm", "-rf", work])
    load_end = os.getloadavg()[0]

    commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [f"# NLL throughput: flowlab metric/nll vs flow_matching compute_likelihood ({time.strftime('%Y-%m-%d')})",
             "",
             f"torch {torch.__version__} (PyPI wheel, both sides: flowlab built with the torch2 preset against it), "
             f"flow_matching {md.version('flow_matching')}, torchdiffeq {md.version('torchdiffeq')}, flowlab "
             f"{commit}{' (with uncommitted changes)' if dirty else ''}; {cpu}; {args.threads} thread(s) each side.",
             "",
             "| task | N | flowlab samples/s | flow_matching samples/s | flowlab / flow_matching (per call) | NFE flowlab | "
             "NFE flow_matching | ms per NFE, flowlab / flow_matching | NLL flowlab | NLL flow_matching | "
             "per-sample log p, flowlab - flow_matching |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        nfe = lambda v: "/".join(str(e) for e in v)
        pcr = r["per_call_ratios"]
        if r["exact"]:
            agree = f"max abs {r['max_abs_diff']:.1e} (mean {r['mean_diff']:+.1e})"
        else:
            agree = f"mean {r['mean_diff']:+.3f} +- {r['stderr']:.3f} (std. error; independent probes)"
        lines.append(f"| {r['label']} | {r['n']} | {r['fl_sps']:.0f} | {r['fm_sps']:.0f} | **{r['ratio']:.2f}x** "
                     f"({min(pcr):.2f}-{max(pcr):.2f}) | {nfe(r['fl_nfe'])} | {nfe(r['fm_nfe'])} | "
                     f"{1e3 * r['fl_med'] / r['fl_nfe_med']:.2f} / {1e3 * r['fm_med'] / r['fm_nfe_med']:.2f} "
                     f"({(r['fm_med'] / r['fm_nfe_med']) / (r['fl_med'] / r['fl_nfe_med']):.2f}x) | {r['nll_fl']:.4f} "
                     f"| {r['nll_fm']:.4f} | {agree} |")
    lines += ["",
              f"Method: the same flowlab mlp on both sides (trained {TASKS[0][5] if not args.quick else 50} steps by "
              "`flowlab run`, rebuilt in torch from the results file; fields agree to "
              + ", ".join(f"{r['field_err']:.1e} ({r['key']})" for r in rows) +
              "), the same reference samples (seeded `reference()` of flowlab's dataset: 2000 fresh 8 Gaussians "
              "points; the 360 held-out digits, no dequantization, nats per sample), dopri5 rtol = atol = "
              f"{RTOL:g} backward from t = 1 to 0, standard Gaussian base. flowlab: metric/nll's compute_model "
              "(benchmarks/nll_driver.cpp; its default dopri5 controller); flow_matching: "
              "`ODESolver(model).compute_likelihood(x_1, log_p0, step_size=None, method='dopri5', ...)` "
              "with `exact_divergence` True (2D) / False (digits: one Rademacher probe per sample, as flowlab's "
              "`probes: 1`). NFE: calls of the network per likelihood solve (each with its vector-Jacobian "
              "products: 2 per call exact in 2D, 1 Hutchinson); the two dopri5 controllers differ (flowlab's default is "
              "SciPy's, on the RMS norm of the whole augmented state [x, a]; torchdiffeq takes the larger of the RMS "
              "norms of x and of the log-density term), so the solves take different NFE: samples/s is the end-to-end "
              "number, ms per NFE the cost of one evaluation. "
              f"{args.rounds} rounds x {args.reps} timed calls a side, warm-up excluded, medians "
              f"(seconds per call: " + "; ".join(f"{r['key']} {r['fl_med']:.3f} vs {r['fm_med']:.3f}" for r in rows)
              + "). flowlab's time per call spent in the network (the same number of flowlab::divergence "
              "evaluations, field and vector-Jacobian products, timed alone): "
              + "; ".join(f"{r['key']} {100 * r['net_share']:.0f}%" for r in rows)
              + f". Load average {load_start:.2f} at the start, {load_end:.2f} at the end; "
              f"{time.time() - t_start:.0f} s.",
              ""]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Driver of benchmarks/peers_vs_flowlab.sh: the peers' own code from PyPI (TorchCFM's flow matchers, MLP and
samplers; torchdiffeq's odeint) against flowlab's engine (`flowlab run`, read back from the results file), on the
same torch, 1 thread, interleaved repetition by repetition in one run. Nothing of the peers is re-implemented: the
peer side imports them, and its loop is TorchCFM's 2D tutorial's. Prints a Markdown table of medians and ratios.
Usage: peers_vs_flowlab.py BUILD_DIR REPETITIONS [--quick]
       peers_vs_flowlab.py --peer {icfm,otcfm} STEPS POINTS   (one peer run in this process; prints one JSON line)"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

QUICK = "--quick" in sys.argv
STEPS = 20 if QUICK else 2000    # training steps per trial, both sides
POINTS = 500 if QUICK else 10000  # sampled points
BATCH = 256
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# TorchCFM's sample_8gaussians (preset torchcfm: radius 5, covariance sqrt(0.1) I), its MLP, plain Adam.
from flowlab_trial import PLAIN, TORCHCFM_8GAUSSIANS as EIGHT, TORCHCFM_MLP as MLP  # noqa: E402


def peer(kind, steps, points):
    """One peer run: TorchCFM's training loop for `steps` steps, then (icfm) torchdiffeq sampling of `points` points."""
    import numpy as np
    import torch
    import torchdiffeq
    from torchcfm.conditional_flow_matching import (ConditionalFlowMatcher,
                                                    ExactOptimalTransportConditionalFlowMatcher)
    from torchcfm.models.models import MLP
    from torchcfm.utils import sample_8gaussians, torch_wrapper

    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    model = MLP(dim=2, w=64, time_varying=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    FM = ConditionalFlowMatcher(sigma=0.0) if kind == "icfm" else ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    sampling = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):  # TorchCFM's 2D tutorial, with a Gaussian source and 8 Gaussians as data
        optimizer.zero_grad()
        s0 = time.perf_counter()
        x0 = torch.randn(BATCH, 2)
        x1 = sample_8gaussians(BATCH)
        sampling += time.perf_counter() - s0
        t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - t0
    out = {"steps_per_s": steps / seconds, "sampling_share": sampling / seconds}
    if kind == "icfm":
        calls = [0]

        class Counted(torch.nn.Module):  # counts network evaluations (NFE) under TorchCFM's torch_wrapper
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                calls[0] += 1
                return self.net(x)

        func = torch_wrapper(Counted(model))
        x0 = torch.randn(points, 2)
        with torch.no_grad():
            for key, t_span, kwargs in [("euler", torch.linspace(0, 1, 101), {"method": "euler"}),
                                        ("dopri5", torch.linspace(0, 1, 2),
                                         {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5})]:
                calls[0] = 0
                s0 = time.perf_counter()
                torchdiffeq.odeint(func, x0, t_span, **kwargs)
                s = time.perf_counter() - s0
                out[key] = calls[0] / s
                out[key + "_nfe"] = calls[0]
    return out


# ---------------------------------------------------------------------------------------------------------------
EXPERIMENTS = {  # flowlab's side: the closest network (the mlp's default sinusoidal time features, 2 since mlp 1.4.0, 64 before, in its first layer)
    "icfm": f"""name: icfm
devices: [cpu]
threads: 1
data: {EIGHT}
model: {{architecture: {MLP}}}
train: {{steps: {STEPS}, batch_size: {BATCH}, {PLAIN}}}
eval: {{samples: {POINTS}, metrics: [], solvers: [{{solver: euler, steps: [100]}},
        {{solver: dopri5, params: {{rtol: 1.0e-5, atol: 1.0e-5}}}}]}}
""",
    # OT-CFM as TorchCFM draws it (pairs sampled from the exact plan; draws random numbers, so no helper thread).
    "otcfm": f"""name: otcfm
devices: [cpu]
threads: 1
data: {EIGHT}
model: {{architecture: {MLP}, coupling: {{name: minibatch_ot, params: {{resample: true}}}}}}
train: {{steps: {STEPS}, batch_size: {BATCH}, {PLAIN}}}
eval: {{samples: 2, metrics: [], solvers: [{{solver: euler, steps: [1]}}]}}
""",
    # flowlab's default minibatch_ot: the permutation, paired two steps ahead on one helper thread.
    "otcfm_ahead": f"""name: otcfm_ahead
devices: [cpu]
threads: 1
data: {EIGHT}
model: {{architecture: {MLP}, coupling: minibatch_ot}}
train: {{steps: {STEPS}, batch_size: {BATCH}, {PLAIN}}}
eval: {{samples: 2, metrics: [], solvers: [{{solver: euler, steps: [1]}}]}}
""",
}
peer_results, flowlab_results = {}, {}


def add(table, key, value):
    table.setdefault(key, []).append(value)


def run_peer(kind, env):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--peer", kind, str(STEPS), str(POINTS)],
                         env=env, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    add(peer_results, "train_" + kind, r["steps_per_s"])
    add(peer_results, "sampling_share_" + kind, r["sampling_share"])
    for key in ("euler", "euler_nfe", "dopri5", "dopri5_nfe"):
        if key in r:
            add(peer_results, key, r[key])


def run_flowlab(flowlab, work, name, env):
    from flowlab_trial import run_single_trial  # needs h5py, installed into the venv by the .sh
    yaml, out = os.path.join(work, name + ".yaml"), os.path.join(work, name + ".h5")
    train_seconds, rows = run_single_trial(flowlab, yaml, out, env, name)
    add(flowlab_results, "train_" + name, STEPS / train_seconds)
    if name == "icfm":
        for solver, nfe, seconds in rows:
            add(flowlab_results, solver, nfe / seconds)
            if solver == "dopri5":
                add(flowlab_results, "dopri5_nfe", nfe)


def main():
    build, reps = sys.argv[1], int(sys.argv[2])
    flowlab = os.path.join(build, "bin", "flowlab")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               FLOWLAB_PLUGIN_PATH="")
    work = tempfile.mkdtemp(prefix="peers_vs_flowlab_")
    try:
        for name, text in EXPERIMENTS.items():
            path = os.path.join(work, name + ".yaml")
            with open(path, "w") as f:
                f.write(text)
            subprocess.run([flowlab, "validate", path], env=env, check=True, capture_output=True)
        load_start, t0 = os.getloadavg()[0], time.time()
        for rep in range(reps):
            for name in ("icfm", "otcfm"):
                # Alternate which side goes first, so neither always runs right after the other's warm-up.
                sides = [lambda n=name: run_flowlab(flowlab, work, n, env), lambda n=name: run_peer(n, env)]
                for side in (sides if rep % 2 == 0 else sides[::-1]):
                    side()
            run_flowlab(flowlab, work, "otcfm_ahead", env)
            print(f"repetition {rep + 1}/{reps} done ({time.time() - t0:.0f} s)", file=sys.stderr)
        load_end = os.getloadavg()[0]
    finally:
        subprocess.run(["rm", "-rf", work])

    med = lambda table, key: statistics.median(table[key])
    rows = [("train_icfm", "train_icfm",
             f"training, I-CFM (`ConditionalFlowMatcher(sigma=0.0)`), Gaussian -> 8 Gaussians, batch {BATCH}, Adam",
             "steps/s"),
            ("train_otcfm", "train_otcfm",
             f"training, OT-CFM (`ExactOptimalTransportConditionalFlowMatcher`; flowlab `minibatch_ot`, "
             f"`resample: true`: pairs drawn from the plan as TorchCFM does, 1 thread), batch {BATCH}", "steps/s"),
            ("train_otcfm", "train_otcfm_ahead",
             "training, OT-CFM; flowlab's default `minibatch_ot` (the permutation, paired two steps ahead on one "
             "helper thread: 2 threads)", "steps/s"),
            ("euler", "euler", f"sampling, Euler 100 steps, {POINTS} points (torchdiffeq `odeint`)", "NFE/s"),
            ("dopri5", "dopri5", f"sampling, dopri5 rtol = atol = 1e-5, {POINTS} points (torchdiffeq `odeint`)",
             "NFE/s")]
    print("| work | peer | flowlab | flowlab / peer (per repetition) |")
    print("|---|---|---|---|")
    for pkey, fkey, label, unit in rows:
        p, f = med(peer_results, pkey), med(flowlab_results, fkey)
        per_rep = [b / a for a, b in zip(peer_results[pkey], flowlab_results[fkey])]
        print(f"| {label} | {p:.1f} {unit} | {f:.1f} {unit} | {f / p:.2f} ({min(per_rep):.2f}-{max(per_rep):.2f}) |")
    print(f"| NFE of one dopri5 solve (the trained fields differ) | {med(peer_results, 'dopri5_nfe'):.0f} | "
          f"{med(flowlab_results, 'dopri5_nfe'):.0f} | |")
    print(f"\nTorchCFM's own samplers in its step (`torch.randn`, `sample_8gaussians`: a Python loop over the batch) "
          f"take {100 * med(peer_results, 'sampling_share_icfm'):.0f}% of the I-CFM step and "
          f"{100 * med(peer_results, 'sampling_share_otcfm'):.0f}% of the OT-CFM step.")
    print(f"\n{STEPS} training steps a trial; {reps} repetition(s), medians; 1 thread; load average {load_start:.2f} at "
          f"the start, {load_end:.2f} at the end; {time.time() - t0:.0f} s.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        print(json.dumps(peer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()

#!/usr/bin/env python3
"""Driver of benchmarks/vs_torchcfm.sh: TorchCFM's own 2D tasks, trained by TorchCFM's own classes and by flowlab,
sample quality side by side. Tasks: Gaussian -> 8 Gaussians and 8 Gaussians -> moons (the source, t = 0, is the
8 Gaussians), each with I-CFM (TorchCFM's ConditionalFlowMatcher; flowlab's independent coupling) and OT-CFM
(ExactOptimalTransportConditionalFlowMatcher; flowlab's minibatch_ot with resample: true, pairs drawn from the exact
plan as TorchCFM draws them). Both: sigma = 0 (flowlab's rectified path), t ~ U[0, 1], TorchCFM's MLP
(w = 64, 3 hidden layers, SELU) and flowlab's mlp of the same widths with its default time features (or --time-embedding's), Adam 1e-3,
batch 256, no EMA, 1 thread; TorchCFM's samplers (torchcfm.utils) and flowlab's `preset: torchcfm` datasets.
Sampling: the peer through torchdiffeq's odeint on TorchCFM's torch_wrapper, flowlab through its eval rows. W2: for
both, TorchCFM's torchcfm.optimal_transport.wasserstein (POT's ot.emd2 on torch.cdist(x, y) ** 2, then sqrt)
between the generated points and one reference set per task and seed drawn by TorchCFM's sampler.
Prints a Markdown table of mean +- std over the seeds.
The peer's runs are kept in --peer-cache DIR (default results/vs_torchcfm_peer), one subdirectory per versions, so a
rerun for another flowlab setting trains only flowlab.
Usage: vs_torchcfm.py BUILD_DIR [--quick] [--time-embedding NAME] [--peer-cache DIR] [--seeds N] [--only TASK:METHOD]
       vs_torchcfm.py --peer TASK METHOD SEED STEPS POINTS OUT.npz   (one peer run; prints one JSON line)"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flowlab_trial import (PLAIN, TORCHCFM_8GAUSSIANS, TORCHCFM_MLP, TORCHCFM_MOONS,  # noqa: E402
                           read_eval_samples, run_experiment)

QUICK = "--quick" in sys.argv
# --time-embedding NAME: flowlab's mlp with that time embedding; without it, the mlp's default.
EMBEDDING = sys.argv[sys.argv.index("--time-embedding") + 1] if "--time-embedding" in sys.argv else None
STEPS = 50 if QUICK else 5000    # training steps, both sides
# --seeds N: seeds 0 .. N-1 (default 3); --only TASK:METHOD: that pair alone (e.g. gauss_8gaussians:otcfm).
SEEDS = [0] if QUICK else list(range(int(sys.argv[sys.argv.index("--seeds") + 1]) if "--seeds" in sys.argv else 3))
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
POINTS = 2000                    # generated points and reference points for W2
BATCH = 256
TASKS = {"gauss_8gaussians": "Gaussian -> 8 Gaussians", "8gaussians_moons": "8 Gaussians -> moons"}
METHODS = {"icfm": "I-CFM", "otcfm": "OT-CFM"}
# (key, flowlab solver, steps, label): Euler 1/2/5/10/100 steps, RK4 5 steps, dopri5 rtol = atol = 1e-5.
SOLVERS = [(f"euler{n}", "euler", n, f"Euler {n}") for n in (1, 2, 5, 10, 100)] + [
    ("rk4_5", "rk4", 5, "RK4 5"), ("dopri5", "dopri5", 0, "dopri5 1e-5")]
TOL = 1e-5
if "--peer" not in sys.argv[1:2]:
    if not SEEDS:
        sys.exit("vs_torchcfm: --seeds must be at least 1")
    if QUICK and "--seeds" in sys.argv:
        sys.exit("vs_torchcfm: --quick runs seed 0 only; leave out --seeds")
    if ONLY is not None and ONLY not in [f"{t}:{m}" for t in TASKS for m in METHODS]:
        sys.exit(f"vs_torchcfm: --only {ONLY}: not a task:method (valid: "
                 + ", ".join(f"{t}:{m}" for t in TASKS for m in METHODS) + ")")
REFERENCE_SEED = 10_000  # the reference set of seed s is drawn after torch.manual_seed / np.random.seed(10000 + s)


def peer_cache():
    """The directory of the peer's runs: one per versions of torch, torchcfm, torchdyn, torchdiffeq, POT and numpy and
    per settings of the peer's run (batch, tolerance, solvers, reference seed, and the source of peer() itself), under
    --peer-cache DIR (vs_torchcfm.sh's default: results/vs_torchcfm_peer in the repository; without the option,
    relative to the working directory). A change of any of them starts a new directory: a cached run is never one of other
    settings."""
    import hashlib
    import importlib.metadata as m
    import inspect
    import torch
    base = (sys.argv[sys.argv.index("--peer-cache") + 1] if "--peer-cache" in sys.argv
            else os.path.join("results", "vs_torchcfm_peer"))
    versions = "_".join([f"torch{torch.__version__}"] +
                        [f"{p}{m.version(p)}" for p in ("torchcfm", "torchdyn", "torchdiffeq", "pot", "numpy")])
    settings = repr((BATCH, TOL, SOLVERS, REFERENCE_SEED)) + inspect.getsource(peer) + inspect.getsource(samplers)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:12]
    return os.path.join(base, versions.replace("+", "-") + "_" + digest)


def samplers(task):
    """(source, target) samplers of TorchCFM's tutorials: n -> [n, 2] float32."""
    import torch
    from torchcfm.utils import sample_8gaussians, sample_moons
    if task == "gauss_8gaussians":
        return (lambda n: torch.randn(n, 2)), sample_8gaussians
    return sample_8gaussians, sample_moons


def peer(task, method, seed, steps, points, out):
    """One TorchCFM run: its 2D tutorial's loop for `steps` steps, then torchdiffeq sampling of `points` points with
    each solver. Saves the samples to `out` (.npz, one array per solver key) and returns {key: NFE}."""
    import numpy as np
    import torch
    import torchdiffeq
    from torchcfm.conditional_flow_matching import (ConditionalFlowMatcher,
                                                    ExactOptimalTransportConditionalFlowMatcher)
    from torchcfm.models.models import MLP
    from torchcfm.utils import torch_wrapper

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)  # torchdyn's moons draw their shift with NumPy
    source, target = samplers(task)
    model = MLP(dim=2, w=64, time_varying=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    FM = (ConditionalFlowMatcher(sigma=0.0) if method == "icfm"
          else ExactOptimalTransportConditionalFlowMatcher(sigma=0.0))
    t0 = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        x0, x1 = source(BATCH), target(BATCH)
        t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        loss.backward()
        optimizer.step()
    train_seconds = time.perf_counter() - t0

    calls = [0]

    class Counted(torch.nn.Module):  # counts network evaluations (NFE) under TorchCFM's torch_wrapper
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            calls[0] += 1
            return self.net(x)

    func = torch_wrapper(Counted(model))
    x0 = source(points)
    nfe, samples = {}, {}
    with torch.no_grad():
        for key, solver, n, _ in SOLVERS:
            calls[0] = 0
            if solver == "dopri5":
                traj = torchdiffeq.odeint(func, x0, torch.tensor([0.0, 1.0]), method="dopri5", rtol=TOL, atol=TOL)
            else:
                traj = torchdiffeq.odeint(func, x0, torch.linspace(0, 1, n + 1), method=solver)
            samples[key] = traj[-1].numpy()
            nfe[key] = calls[0]
    np.savez(out, **samples)
    return {"nfe": nfe, "train_seconds": train_seconds}


def reference(task, seed):
    """The reference set of a task and seed: TorchCFM's target sampler, POINTS points, seeded apart from training."""
    import numpy as np
    import torch
    torch.manual_seed(REFERENCE_SEED + seed)
    np.random.seed(REFERENCE_SEED + seed)
    return samplers(task)[1](POINTS)


def w2(x, y):
    """TorchCFM's own W2 (torchcfm.optimal_transport.wasserstein: ot.emd2 on squared Euclidean cost, sqrt)."""
    import torch
    from torchcfm.optimal_transport import wasserstein
    return wasserstein(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32), power=2)


def experiment(task, method):
    """flowlab's side of one task and method: all seeds in one experiment file."""
    data, noise = ((TORCHCFM_8GAUSSIANS, "") if task == "gauss_8gaussians"
                   else (TORCHCFM_MOONS, f", noise: {TORCHCFM_8GAUSSIANS}"))
    coupling = "independent" if method == "icfm" else "{name: minibatch_ot, params: {resample: true}}"
    solvers = (f"{{solver: euler, steps: [{', '.join(str(n) for _, s, n, _ in SOLVERS if s == 'euler')}]}}, "
               f"{{solver: rk4, steps: [5]}}, {{solver: dopri5, params: {{rtol: {TOL:.1e}, atol: {TOL:.1e}}}}}")
    # Without --time-embedding: flowlab's default time features.
    # The learned time MLP at its textbook width, 64 (the mlp's time_dim default, 2, is the sinusoidal embedding's).
    extra = f", time_embedding: {EMBEDDING}" + (", time_dim: 64" if EMBEDDING == "mlp" else "")
    architecture = TORCHCFM_MLP if EMBEDDING is None else TORCHCFM_MLP.replace("}}", extra + "}}")
    return f"""name: vs_torchcfm_{task}_{method}
devices: [cpu]
threads: 1
data: {data}
model: {{architecture: {architecture}, coupling: {coupling}{noise}}}
train: {{steps: {STEPS}, batch_size: {BATCH}, {PLAIN}}}
eval: {{samples: {POINTS}, metrics: [], solvers: [{solvers}]}}
sweep: {{seeds: [{', '.join(str(s) for s in SEEDS)}]}}
"""


def main():
    import numpy as np
    build = sys.argv[1]
    flowlab = os.path.join(build, "bin", "flowlab")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               FLOWLAB_PLUGIN_PATH="")
    work = tempfile.mkdtemp(prefix="vs_torchcfm_")
    cache = peer_cache()
    os.makedirs(cache, exist_ok=True)
    # results[(task, method, tool, solver key)] = ([W2 per seed], [NFE per seed])
    results, floor = {}, {}
    t_start = time.time()
    try:
        for task in TASKS:
            for method in METHODS:
                if ONLY and ONLY != f"{task}:{method}":
                    continue
                refs = {seed: reference(task, seed) for seed in SEEDS}
                if task not in floor:  # the floor: W2 between two independent sets of the target, per seed
                    floor[task] = [w2(refs[seed], reference(task, seed + 3000)) for seed in SEEDS]  # 3000: as 3 seeds had it
                yaml, out = os.path.join(work, f"{task}_{method}.yaml"), os.path.join(work, f"{task}_{method}.h5")
                with open(yaml, "w") as f:
                    f.write(experiment(task, method))
                run_experiment(flowlab, yaml, out, env)
                trials = read_eval_samples(out)
                if sorted(trials) != SEEDS:
                    raise RuntimeError(f"{out}: trials for seeds {sorted(trials)}, expected {SEEDS}")
                for seed in SEEDS:  # in SEEDS' order, as the peer's below: the lists pair seed by seed
                    rows = trials[seed]
                    for key, solver, n, _ in SOLVERS:
                        (row,) = [r for r in rows if r["solver"] == solver and (solver == "dopri5" or r["steps"] == n)]
                        if row["error"]:
                            raise RuntimeError(f"flowlab {task} {method} seed {seed} {row['label']}: {row['error']}")
                        entry = results.setdefault((task, method, "flowlab", key), ([], []))
                        entry[0].append(w2(row["samples"], refs[seed]))
                        entry[1].append(row["nfe"])
                for seed in SEEDS:
                    # The peer's run depends only on its task, method, seed, sizes and versions: kept in the cache,
                    # so that a rerun for another flowlab setting only runs flowlab.
                    stem = os.path.join(cache, f"peer_{task}_{method}_{seed}_{STEPS}_{POINTS}")
                    npz, nfe_json = stem + ".npz", stem + ".json"
                    if not (os.path.exists(npz) and os.path.exists(nfe_json)):
                        line = subprocess.run([sys.executable, os.path.abspath(__file__), "--peer", task, method,
                                               str(seed), str(STEPS), str(POINTS), npz + ".tmp.npz"],
                                              env=env, check=True, capture_output=True, text=True).stdout
                        with open(nfe_json + ".tmp", "w") as f:
                            f.write(line.strip().splitlines()[-1])
                        os.replace(npz + ".tmp.npz", npz)
                        os.replace(nfe_json + ".tmp", nfe_json)
                    with open(nfe_json) as f:
                        r = json.load(f)
                    samples = np.load(npz)
                    for key, *_ in SOLVERS:
                        entry = results.setdefault((task, method, "torchcfm", key), ([], []))
                        entry[0].append(w2(samples[key], refs[seed]))
                        entry[1].append(r["nfe"][key])
                print(f"{TASKS[task]}, {METHODS[method]} done ({time.time() - t_start:.0f} s)", file=sys.stderr)
    finally:
        subprocess.run(["rm", "-rf", work])

    def stat(values, fmt):
        if len(values) == 1:
            return format(values[0], fmt)
        return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"

    def nfe(values):  # fixed-step NFE are the same for every seed; dopri5's mean and std get one decimal
        return str(values[0]) if len(set(values)) == 1 else stat(values, ".1f")

    def paired(flowlab_w2, peer_w2):
        # flowlab - TorchCFM seed by seed (same seed, same reference set): mean ± its standard error, std / sqrt(n).
        d = [f - p for f, p in zip(flowlab_w2, peer_w2)]
        if len(d) == 1:
            return format(d[0], "+.3f")
        return f"{statistics.mean(d):+.3f} ± {statistics.stdev(d) / len(d) ** 0.5:.3f}"

    print("| task | method | solver | W2 TorchCFM | W2 flowlab | W2 flowlab - TorchCFM, paired | NFE TorchCFM | "
          "NFE flowlab |")
    print("|---|---|---|---|---|---|---|---|")
    for task, task_name in TASKS.items():
        for method, method_name in METHODS.items():
            if (task, method, "flowlab", SOLVERS[0][0]) not in results:  # left out by --only
                continue
            for key, _, _, label in SOLVERS:
                (pw, pn), (fw, fn) = results[(task, method, "torchcfm", key)], results[(task, method, "flowlab", key)]
                print(f"| {task_name} | {method_name} | {label} | {stat(pw, '.3f')} | {stat(fw, '.3f')} | "
                      f"{paired(fw, pw)} | {nfe(pn)} | {nfe(fn)} |")
    print(f"\n{STEPS} training steps, batch {BATCH}, seeds {SEEDS} (mean ± sample std over the seeds; the paired "
          f"difference: mean ± standard error over the seeds); W2 between "
          f"{POINTS} generated points and {POINTS} reference points of TorchCFM's sampler (one set per task and "
          f"seed, the same for both tools); {time.time() - t_start:.0f} s in all.")
    print("The floor, W2 between two independent sets of " + f"{POINTS} points of the target (TorchCFM's sampler): " +
          "; ".join(f"{TASKS[task]} {stat(values, '.3f')}" for task, values in floor.items()) + ".")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        task, method, seed, steps, points, out = sys.argv[2:8]
        print(json.dumps(peer(task, method, int(seed), int(steps), int(points), out)))
    else:
        main()

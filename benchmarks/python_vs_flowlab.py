#!/usr/bin/python3
"""Driver of benchmarks/python_vs_flowlab.sh: the Python loops of python_loops.py and flowlab's engine (`flowlab run`,
its real training loop and evaluation, read back from the results file) on the same networks, batch and task,
1 thread, interleaved repetition by repetition in one run; then sgemm at the same shapes (the roofline) and
flowlab_bench's engine-vs-hand-written-loop pair. Prints a Markdown table of medians, ratios and roofline shares.
Python runs as it does by default; for the 4x256 rows it also runs with glibc's malloc thresholds raised in its
environment (as flowlab raises them at start-up), shown in the last column.
Usage: python_vs_flowlab.py BUILD_DIR REPETITIONS"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from flowlab_trial import run_single_trial

BUILD, REPS = sys.argv[1], int(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.environ.get("FLOWLAB_BENCH_PYTHON", "/usr/bin/python3")  # the Python whose torch is flowlab's LibTorch
ENV = dict(os.environ, OMP_NUM_THREADS="1", FLOWLAB_PLUGIN_PATH="")
# Python as it runs by default, and (an extra column) with glibc's malloc thresholds raised as flowlab raises them.
ENV_MALLOC = dict(ENV, MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(1 << 30))
MALLOC_KEYS = ["train_mlp256", "euler", "rk4"]
FLOWLAB = os.path.join(BUILD, "bin", "flowlab")
WORK = tempfile.mkdtemp(prefix="python_vs_flowlab_")

TRAIN_STEPS = {"mlp256": 600, "recipe": 600, "mlp64": 3000, "unet": 30}
PLAIN = "lr: 1.0e-3, warmup: 0, schedule: constant, ema: 0, grad_clip: 0, log_every: 100, checkpoint_every: 0"
RECIPE = "lr: 1.0e-3, warmup: 10, schedule: cosine, ema: 0.999, grad_clip: 1.0, log_every: 100, checkpoint_every: 0"
NO_EVAL = "eval: {samples: 2, metrics: [], solvers: [{solver: euler, steps: [1]}]}"
EXPERIMENTS = {
    # The 4x256 MLP: training, then Euler (100 steps) and RK4 (25 steps = 100 NFE) from 10 000 points.
    "mlp256": f"""name: mlp256
devices: [cpu]
threads: 1
data: {{dataset: ring_gaussians}}
model: {{architecture: {{name: mlp, params: {{width: 256, depth: 4, activation: silu, time_dim: 64}}}}}}
train: {{steps: {TRAIN_STEPS['mlp256']}, batch_size: 256, {PLAIN}}}
eval: {{samples: 10000, metrics: [], solvers: [{{solver: euler, steps: [100]}}, {{solver: rk4, steps: [25]}}]}}
""",
    "recipe": f"""name: recipe
devices: [cpu]
threads: 1
data: {{dataset: ring_gaussians}}
model: {{architecture: {{name: mlp, params: {{width: 256, depth: 4, activation: silu, time_dim: 64}}}}}}
train: {{steps: {TRAIN_STEPS['recipe']}, batch_size: 256, {RECIPE}}}
{NO_EVAL}
""",
    "mlp64": f"""name: mlp64
devices: [cpu]
threads: 1
data: {{dataset: ring_gaussians}}
model: {{architecture: {{name: mlp, params: {{width: 64, depth: 3, activation: selu, time_dim: 64}}}}}}
train: {{steps: {TRAIN_STEPS['mlp64']}, batch_size: 256, {PLAIN}}}
{NO_EVAL}
""",
    "unet": f"""name: unet
devices: [cpu]
threads: 1
data: {{dataset: fashion_mnist}}
model: {{architecture: unet}}
train: {{steps: {TRAIN_STEPS['unet']}, batch_size: 32, {PLAIN}}}
{NO_EVAL}
""",
}
PYTHON = {  # the Python side of each experiment: (key, python_loops.py arguments)
    "mlp256": [("train_mlp256", ["train_mlp", "256", "4", "silu", "256", str(TRAIN_STEPS["mlp256"])]),
               ("euler", ["sample", "euler", "10000", "100"]), ("rk4", ["sample", "rk4", "10000", "100"])],
    "recipe": [("train_recipe", ["train_mlp_recipe", "256", "4", "silu", "256", str(TRAIN_STEPS["recipe"])])],
    "mlp64": [("train_mlp64", ["train_mlp", "64", "3", "selu", "256", str(TRAIN_STEPS["mlp64"])])],
    "unet": [("train_unet", ["train_unet", "32", str(TRAIN_STEPS["unet"])])],
}
ROOFLINE = [("sgemm_train256", ["sgemm_train", "256", "4", "256", "51"]),
            ("sgemm_train64", ["sgemm_train", "64", "3", "256", "401"]),
            ("sgemm_sample", ["sgemm_sample", "256", "4", "10000", "7"])]

python_results = {}   # key -> list of rates (steps/s or NFE/s, or seconds for sgemm)
python_malloc_results = {}
flowlab_results = {}


def add(table, key, value):
    table.setdefault(key, []).append(value)


def run_python(key, args, env=ENV, table=python_results):
    out = subprocess.run([PY, os.path.join(HERE, "python_loops.py")] + args, env=env, check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    add(table, key, r.get("steps_per_s") or r.get("nfe_per_s") or r["seconds"])
    if "gflop" in r:
        add(python_results, key + "_gflop", r["gflop"])


def run_flowlab(name):
    yaml = os.path.join(WORK, name + ".yaml")
    with open(yaml, "w") as f:
        f.write(EXPERIMENTS[name])
    train_seconds, rows = run_single_trial(FLOWLAB, yaml, os.path.join(WORK, name + ".h5"), ENV, name)
    add(flowlab_results, {"mlp256": "train_mlp256", "recipe": "train_recipe", "mlp64": "train_mlp64",
                          "unet": "train_unet"}[name], TRAIN_STEPS[name] / train_seconds)
    if name == "mlp256":
        for solver, nfe, seconds in rows:
            add(flowlab_results, solver, nfe / seconds)


def run_bench():
    """flowlab_bench's BM_TrainEngine against the hand-written loops (torch::optim::AdamW; flowlab's flat
    optimizer), interleaved, REPS repetitions; steps per CPU second."""
    bench = os.path.join(BUILD, "benchmarks", "flowlab_bench")
    out = subprocess.run([bench, "--benchmark_filter=BM_Train(Engine|HandLoop|HandLoopFlat)/", f"--benchmark_repetitions={REPS}",
                          "--benchmark_enable_random_interleaving=true", "--benchmark_format=json"],
                         env=ENV, check=True, capture_output=True, text=True).stdout
    rates = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") == "iteration":
            rates.setdefault(b["run_name"].split("/")[0], []).append(b["steps_per_s"])
    return (statistics.median(rates["BM_TrainEngine"]), statistics.median(rates["BM_TrainHandLoop"]),
            statistics.median(rates["BM_TrainHandLoopFlat"]))


def load():
    return os.getloadavg()[0]


def main():
    load_start = load()
    t0 = time.time()
    for rep in range(REPS):
        for name in EXPERIMENTS:
            # Alternate which side goes first, so neither always runs right after the other's warm-up.
            sides = [lambda n=name: run_flowlab(n), lambda n=name: [run_python(k, a) for k, a in PYTHON[n]]]
            for side in (sides if rep % 2 == 0 else sides[::-1]):
                side()
            for k, a in PYTHON[name]:
                if k in MALLOC_KEYS:
                    run_python(k, a, ENV_MALLOC, python_malloc_results)
        for key, args in ROOFLINE:
            run_python(key, args)
        print(f"repetition {rep + 1}/{REPS} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    engine, hand, hand_flat = run_bench()
    load_end = load()

    med = lambda table, key: statistics.median(table[key])
    sgemm = {k: med(python_results, k) for k, _ in ROOFLINE}
    gflop = {k: med(python_results, k + "_gflop") for k, _ in ROOFLINE}
    # The roofline: the same products as the network, alone (no other op), per step or per network call.
    roofline = {"train_mlp256": 1 / sgemm["sgemm_train256"], "train_recipe": 1 / sgemm["sgemm_train256"],
                "train_mlp64": 1 / sgemm["sgemm_train64"], "euler": 1 / sgemm["sgemm_sample"],
                "rk4": 1 / sgemm["sgemm_sample"]}
    rows = [("train_mlp256", "training, 4x256 SiLU MLP, batch 256, plain Adam", "steps/s"),
            ("train_recipe", "training, 4x256 SiLU MLP, batch 256, AdamW + warmup/cosine + clip + EMA", "steps/s"),
            ("train_mlp64", "training, 3x64 SELU MLP, batch 256, plain Adam", "steps/s"),
            ("train_unet", "training, U-Net (32 ch, mult 1,2,2) on Fashion-MNIST 28x28, batch 32, plain Adam", "steps/s"),
            ("euler", "Euler sampling, 10 000 points x 100 NFE, 4x256 MLP", "NFE/s"),
            ("rk4", "RK4 sampling, 10 000 points x 25 steps (100 NFE), 4x256 MLP", "NFE/s")]
    print("| work | Python | flowlab | ratio (per repetition) | sgemm roofline | flowlab / roofline | "
          "Python, MALLOC_*_ raised: rate, flowlab ratio |")
    print("|---|---|---|---|---|---|---|")
    for key, label, unit in rows:
        p, f = med(python_results, key), med(flowlab_results, key)
        per_rep = [a / b for a, b in zip(flowlab_results[key], python_results[key])]
        ratio = f"{f / p:.2f} ({min(per_rep):.2f}-{max(per_rep):.2f})"
        roof = f"{roofline[key]:.1f} {unit}" if key in roofline else "-"
        share = f"{100 * f / roofline[key]:.0f}%" if key in roofline else "-"
        tuned = "-"
        if key in python_malloc_results:
            q = med(python_malloc_results, key)
            tuned = f"{q:.1f} {unit}, {f / q:.2f}"
        print(f"| {label} | {p:.1f} {unit} | {f:.1f} {unit} | {ratio} | {roof} | {share} | {tuned} |")
    for key, label in [("sgemm_train256", "sgemm at the 4x256 training step's shapes (batch 256)"),
                       ("sgemm_train64", "sgemm at the 3x64 training step's shapes (batch 256)"),
                       ("sgemm_sample", "sgemm at one 4x256 network call's shapes (10 000 rows)")]:
        print(f"| {label} | {gflop[key] / sgemm[key]:.1f} GFLOP/s ({1e3 * sgemm[key]:.2f} ms) | | | | | |")
    print(f"| framework overhead: engine vs a hand-written LibTorch loop with the same MLP plugin and flowlab's flat "
          f"optimizer (flowlab_bench, batch 512, AdamW + clip + EMA) | | {engine:.1f} vs {hand_flat:.1f} steps/s | "
          f"overhead {100 * (hand_flat / engine - 1):+.1f}% | | | |")
    print(f"| the same hand-written loop with torch::optim::AdamW, clip_grad_norm_ and a per-tensor EMA | | "
          f"{hand:.1f} steps/s | engine {engine / hand:.2f}x | | | |")
    paths = subprocess.run([FLOWLAB, "_devices"], env=ENV, capture_output=True, text=True).stdout.splitlines()
    print(f"\nflowlab's paths: {paths[-1].split('; ', 1)[-1] if paths else '?'}")
    print(f"\n{REPS} repetitions, medians; 1 thread; load average {load_start:.2f} at the start, {load_end:.2f} at "
          f"the end; {time.time() - t0:.0f} s.")


if __name__ == "__main__":
    try:
        main()
    finally:
        subprocess.run(["rm", "-rf", WORK])

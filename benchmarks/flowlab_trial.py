"""Running flowlab and reading its results back, for the benchmark drivers (python_vs_flowlab.py,
peers_vs_flowlab.py, vs_torchcfm.py), and the experiment pieces they share."""
import subprocess

import h5py

# The peers' recipe in flowlab's terms: TorchCFM's MLP (3 hidden layers of 64, SELU), plain Adam at 1e-3, no
# warm-up, schedule, EMA or clipping.
TORCHCFM_MLP = "{name: mlp, params: {width: 64, depth: 3, activation: selu}}"
PLAIN = "lr: 1.0e-3, warmup: 0, schedule: constant, ema: 0, grad_clip: 0, log_every: 100, checkpoint_every: 0"
# TorchCFM's sample_8gaussians (radius 5, covariance sqrt(0.1) I) and sample_moons (torchdyn's grid, x3 - 1).
TORCHCFM_8GAUSSIANS = "{dataset: eight_gaussians, params: {preset: torchcfm}}"
TORCHCFM_MOONS = "{dataset: moons, params: {preset: torchcfm}}"


def run_experiment(flowlab, yaml, out, env):
    """Runs `flowlab run YAML --out OUT`, replacing OUT and OUT.trials."""
    subprocess.run(["rm", "-rf", out, out + ".trials"], check=True)
    subprocess.run([flowlab, "run", yaml, "--out", out], env=env, check=True, capture_output=True)


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def run_single_trial(flowlab, yaml, out, env, name):
    """Runs `flowlab run YAML --out OUT` (replacing OUT and OUT.trials) for an experiment of one trial and returns
    (train_seconds, [(solver, nfe, seconds), ...] of its eval rows). Raises when the trial did not complete."""
    run_experiment(flowlab, yaml, out, env)
    with h5py.File(out) as f:
        (trial,) = f["trials"].values()
        status = text(trial.attrs["status"])
        if status != "completed":
            raise RuntimeError(f"flowlab trial {name}: {status}")
        rows = [(row["solver"].decode(), float(row["nfe"]), float(row["seconds"])) for row in trial["eval"][:]]
        return float(trial.attrs["train_seconds"]), rows


def read_eval_samples(out):
    """Each trial of the results file OUT, by seed: a list of its eval rows, each a dict of solver, steps (0 for
    adaptive solvers), label, nfe, error and samples (the stored generated samples, a NumPy array). Raises when a
    trial did not complete."""
    trials = {}
    with h5py.File(out) as f:
        for tid, g in f["trials"].items():
            status = text(g.attrs["status"])
            if status != "completed":
                raise RuntimeError(f"{out}: trial {tid}: {status}: {text(g.attrs['error'])}")
            table = g["eval"][:]
            rows = []
            for i, row in enumerate(table):
                rows.append({"solver": text(row["solver"]), "steps": int(row["steps"]), "label": text(row["label"]),
                             "nfe": int(row["nfe"]), "error": text(row["error"]),
                             "samples": g["rows"][f"{i:03d}"]["samples"][...]})
                assert int(g["rows"][f"{i:03d}"].attrs["row"]) == i
            trials[int(g.attrs["seed"])] = rows
    return trials

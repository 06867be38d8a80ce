"""One flowlab trial, run and read back, for the benchmark drivers (python_vs_flowlab.py, peers_vs_flowlab.py)."""
import subprocess

import h5py


def run_single_trial(flowlab, yaml, out, env, name):
    """Runs `flowlab run YAML --out OUT` (replacing OUT and OUT.trials) for an experiment of one trial and returns
    (train_seconds, [(solver, nfe, seconds), ...] of its eval rows). Raises when the trial did not complete."""
    subprocess.run(["rm", "-rf", out, out + ".trials"], check=True)
    subprocess.run([flowlab, "run", yaml, "--out", out], env=env, check=True, capture_output=True)
    with h5py.File(out) as f:
        (trial,) = f["trials"].values()
        status = trial.attrs["status"]
        status = status.decode() if isinstance(status, bytes) else str(status)
        if status != "completed":
            raise RuntimeError(f"flowlab trial {name}: {status}")
        rows = [(row["solver"].decode(), float(row["nfe"]), float(row["seconds"])) for row in trial["eval"][:]]
        return float(trial.attrs["train_seconds"]), rows

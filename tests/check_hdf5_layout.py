#!/usr/bin/python3
"""Reads an experiment file made from tests/data/experiments/layout.yaml with h5py and pandas only (no flowlab),
and checks the documented layout field by field. Usage: check_hdf5_layout.py FILE.h5 EXPERIMENT.yaml VERSION"""
import datetime
import math
import sys

import h5py
import numpy as np
import pandas as pd

path, yaml_path, version = sys.argv[1:4]
f = h5py.File(path, "r")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


# Root attributes
check(f.attrs["flowlab_version"] == version, f"flowlab_version {f.attrs['flowlab_version']!r}")
check(f.attrs["experiment_yaml"] == open(yaml_path).read(), "experiment_yaml is the file's text")
check(f.attrs["experiment_name"] == "layout", "experiment_name")
datetime.datetime.strptime(f.attrs["created"], "%Y-%m-%dT%H:%M:%SZ")

ids = ["lr=1.0e-2,seed=0", "lr=1.0e-3,seed=0"]
check(sorted(f["trials"].keys()) == sorted(ids), f"trial groups {list(f['trials'].keys())}")
for tid, lr in zip(ids, [1e-2, 1e-3]):
    g = f["trials"][tid]
    a = g.attrs
    check(a["status"] == "completed" and a["error"] == "", f"{tid}: status")
    check(len(a["config_hash"]) == 16 and all(c in "0123456789abcdef" for c in a["config_hash"]),
          f"{tid}: config_hash {a['config_hash']!r}")
    check(a["seed"] == 0 and a["device"] == "cpu" and a["diverged_step"] == -1, f"{tid}: seed/device/diverged_step")
    check(a["train_seconds"] > 0 and a["eval_seconds"] > 0, f"{tid}: timings")
    check(a["sweep:train.lr"] == tid.split(",")[0].split("=")[1], f"{tid}: sweep attribute")
    cfg = a["config"]
    for needle in ["name: ring_gaussians", "modes: 4", "name: mlp", "width: 16", "time_embedding: sinusoidal",
                   "name: rectified", "version: 1.0.0", "name: frechet"]:
        check(needle in cfg, f"{tid}: config lacks {needle!r}")
    # Train log: every 5 steps and the last; lr follows warmup (4 steps) then cosine.
    step = g["train/step"][:]
    check(list(step) == [0, 5, 10, 15, 20, 22], f"{tid}: steps {list(step)}")
    lrs = g["train/lr"][:]
    check(math.isclose(lrs[0], lr / 4, rel_tol=1e-12), f"{tid}: warmup lr {lrs[0]}")
    expect = [lr * 0.5 * (1 + math.cos(math.pi * (s - 4) / 19)) for s in step[1:]]
    check(np.allclose(lrs[1:], expect, rtol=1e-12), f"{tid}: cosine lr {lrs[1:]} vs {expect}")
    check(np.all(np.isfinite(g["train/loss"][:])) and np.all(g["train/grad_norm"][:] >= 0), f"{tid}: loss/grad_norm")
    # Eval table
    ev = pd.DataFrame(g["eval"][:])
    cols = ["round", "solver", "steps", "rtol", "atol", "nfe", "accepted_steps", "rejected_steps", "seconds",
            "samples_per_s", "frechet"]
    check(list(ev.columns) == cols, f"{tid}: eval columns {list(ev.columns)}")
    ev["solver"] = ev["solver"].str.decode("utf-8")
    check(list(ev["solver"]) == ["euler", "euler", "rk4", "dopri5", "dopri5"], f"{tid}: solvers")
    check(list(ev["steps"]) == [1, 4, 2, 0, 0], f"{tid}: steps column")
    check(list(ev["nfe"][:3]) == [1, 4, 8], f"{tid}: fixed-step NFE")
    d = ev[ev.solver == "dopri5"]
    check(list(d["rtol"]) == [1e-3, 1e-4] and list(d["atol"]) == [1e-5, 1e-5], f"{tid}: dopri5 tolerances")
    check(all(d["nfe"] == 2 + 6 * (d["accepted_steps"] + d["rejected_steps"])), f"{tid}: dopri5 NFE")
    check(ev["rtol"][:3].isna().all() and (ev["round"] == 0).all(), f"{tid}: rtol NaN for fixed steps, round 0")
    check(np.all(np.isfinite(ev["frechet"])) and np.all(ev["seconds"] > 0), f"{tid}: metrics and timings")

s = pd.DataFrame(f["summary"][:])
check(list(s.columns[:5]) == ["id", "status", "seed", "train.lr", "final_loss"], f"summary columns {list(s.columns)}")
check([x.decode() for x in s["id"]] == ids, "summary rows in sweep order")
check(list(s.columns[5:]) == ["frechet@euler:steps=1", "frechet@euler:steps=4", "frechet@rk4:steps=2",
                              "frechet@dopri5:rtol=0.001", "frechet@dopri5:rtol=0.0001"], "summary metric columns")
for i, tid in enumerate(ids):
    ev = f["trials"][tid]["eval"]["frechet"]
    check(np.allclose(s.iloc[i, 5:].astype(float).values, ev), f"summary metrics of {tid}")
    check(s["final_loss"][i] == f["trials"][tid]["train/loss"][-1], f"summary final_loss of {tid}")

if failures:
    print("HDF5 layout check FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("HDF5 layout check: all fields OK")

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
labels = ["euler:steps=1", "euler:steps=4", "rk4:steps=2", "dopri5:rtol=0.001,atol=1e-05",
          "dopri5:rtol=0.0001,atol=1e-05", "dopri5:rtol=0.001,atol=1e-07"]
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
    cols = ["round", "train_step", "solver", "label", "steps", "rtol", "atol", "nfe", "network_calls", "accepted_steps",
            "rejected_steps", "seconds", "samples_per_s", "straightness", "error", "frechet"]
    check(list(ev.columns) == cols, f"{tid}: eval columns {list(ev.columns)}")
    for c in ["solver", "label", "error"]:
        ev[c] = ev[c].str.decode("utf-8")
    check(list(ev["solver"]) == ["euler", "euler", "rk4", "dopri5", "dopri5", "dopri5"], f"{tid}: solvers")
    check(list(ev["label"]) == labels, f"{tid}: labels {list(ev['label'])}")
    check(list(ev["steps"]) == [1, 4, 2, 0, 0, 0], f"{tid}: steps column")
    check(list(ev["nfe"][:3]) == [1, 4, 8], f"{tid}: fixed-step NFE")
    check(list(ev["network_calls"]) == list(ev["nfe"]), f"{tid}: unguided: one network call per evaluation")
    d = ev[ev.solver == "dopri5"]
    check(list(d["rtol"]) == [1e-3, 1e-4, 1e-3] and list(d["atol"]) == [1e-5, 1e-5, 1e-7], f"{tid}: dopri5 tolerances")
    check(all(d["nfe"] == 2 + 6 * (d["accepted_steps"] + d["rejected_steps"])), f"{tid}: dopri5 NFE")
    check(ev["rtol"][:3].isna().all() and (ev["round"] == 0).all(), f"{tid}: rtol NaN for fixed steps, round 0")
    check((ev["train_step"] == 23).all(), f"{tid}: train_step: every row is the final evaluation's, after 23 steps")
    check("during_eval_seconds" not in a, f"{tid}: no during_eval_seconds without eval.every")
    check(np.all(np.isfinite(ev["frechet"])) and np.all(ev["seconds"] > 0), f"{tid}: metrics and timings")
    check(np.all(np.isfinite(ev["straightness"])) and np.all(ev["straightness"] >= -1e-9), f"{tid}: straightness")
    check((ev["error"] == "").all() and a["failed_rows"] == 0, f"{tid}: no failed rows")
    check(a["reference_source"] == "independent stream" and a["reference_count"] == 128, f"{tid}: reference")
    check(a["metric_features:frechet"] == "raw", f"{tid}: metric features")
    # Stored samples: the noise, the reference, each row's samples, times, mean speed and 3 trajectories.
    x0 = g["samples/x0"][...]
    check(x0.shape == (128, 2) and x0.dtype == np.float32, f"{tid}: x0 {x0.shape} {x0.dtype}")
    check(g["samples/reference"].shape == (128, 2), f"{tid}: reference shape")
    check(sorted(g["rows"].keys()) == ["000", "001", "002", "003", "004", "005"], f"{tid}: rows {list(g['rows'].keys())}")
    for i, name in enumerate(sorted(g["rows"].keys())):
        r = g["rows"][name]
        check(r.attrs["label"] == labels[i] and r.attrs["row"] == i and r.attrs["error"] == "", f"{tid}/{name}: attrs")
        check(r.attrs["round"] == 0 and r.attrs["train_step"] == 23, f"{tid}/{name}: round, train_step")
        check(r["samples"].shape == (128, 2), f"{tid}/{name}: samples")
        times = r["times"][...]
        check(times[0] == 0.0 and times[-1] == 1.0 and np.all(np.diff(times) > 0), f"{tid}/{name}: times")
        if ev["steps"][i] > 0:
            check(len(times) == ev["steps"][i] + 1, f"{tid}/{name}: one time per state")
        check(r["mean_speed"].shape == times.shape, f"{tid}/{name}: mean speed")
        traj = r["trajectory"][...]
        check(traj.shape == (3, len(times), 2), f"{tid}/{name}: trajectory {traj.shape}")
        check(np.array_equal(traj[:, 0], x0[:3]) and np.array_equal(traj[:, -1], r["samples"][:3]),
              f"{tid}/{name}: trajectories start at x0 and end at the samples")
    # Weights: one dataset per state-dict key, and the architecture's resolved parameters.
    w = g["weights"]
    check(sorted(w.keys()) == ["layers.0.bias", "layers.0.weight", "out.bias", "out.weight"], f"{tid}: weights {list(w.keys())}")
    # x (2), then the default time embedding's 2 features (cos pi t, sin pi t; mlp 1.4.0)
    check(w["layers.0.weight"].shape == (16, 2 + 2) and w["out.weight"].shape == (2, 16), f"{tid}: weight shapes")
    check(w.attrs["architecture"] == "mlp" and w.attrs["param:width"] == "16" and w.attrs["param:depth"] == "1"
          and w.attrs["param:time_dim"] == "2", f"{tid}: architecture attributes")
    check(list(w.attrs["event_shape"]) == [2] and w.attrs["condition"] == "none", f"{tid}: event shape, condition")

s = pd.DataFrame(f["summary"][:])
check(list(s.columns[:5]) == ["id", "status", "seed", "train.lr", "final_loss"], f"summary columns {list(s.columns)}")
check([x.decode() for x in s["id"]] == ids, "summary rows in sweep order")
check(list(s.columns[5:]) == ["frechet@" + l for l in labels], f"summary metric columns {list(s.columns[5:])}")
for i, tid in enumerate(ids):
    ev = f["trials"][tid]["eval"]["frechet"]
    check(np.allclose(s.iloc[i, 5:].astype(float).values, ev), f"summary metrics of {tid}")
    check(s["final_loss"][i] == f["trials"][tid]["train/loss"][-1], f"summary final_loss of {tid}")

if failures:
    print("HDF5 layout check FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("HDF5 layout check: all fields OK")

#!/usr/bin/python3
"""Reads an experiment file made from tests/data/experiments/layout_during.yaml with h5py and pandas only (no
flowlab), and checks the rows evaluated during training: the final rows first (train_step = the stage's steps), then
those of eval.during at every eval.every steps below each stage's end; rows/NNN in table order; the summary from the
final rows only. Usage: check_hdf5_during.py FILE.h5"""
import sys

import h5py
import numpy as np
import pandas as pd

f = h5py.File(sys.argv[1], "r")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


labels = ["euler:steps=1", "euler:steps=4", "rk4:steps=2", "dopri5:rtol=0.001", "dopri5:rtol=0.0001"]
during = ["euler:steps=4", "dopri5:rtol=0.0001"]
tid = "seed=0"
g = f["trials"][tid]
a = g.attrs
check(a["status"] == "completed", "status")
check(a["during_eval_seconds"] > 0 and a["eval_seconds"] > 0 and a["train_seconds"] > 0, "timings")
check("every: 10" in a["config"] and "during: [euler:steps=4, dopri5:rtol=0.0001]" in a["config"], "config")
rounds = pd.DataFrame(g["rounds"][:])
check(list(rounds["steps"]) == [23, 12], f"rounds steps {list(rounds['steps'])}")
ev = pd.DataFrame(g["eval"][:])
check(list(ev.columns[:3]) == ["round", "train_step", "solver"], f"eval columns {list(ev.columns)}")
for c in ["solver", "label", "error"]:
    ev[c] = ev[c].str.decode("utf-8")
expected = [(0, 23, l) for l in labels] + [(1, 12, l) for l in labels]
expected += [(0, 10, l) for l in during] + [(0, 20, l) for l in during] + [(1, 10, l) for l in during]
got = list(zip(ev["round"], ev["train_step"], ev["label"]))
check(got == expected, f"rows (round, train_step, label): {got}")
check(np.all(np.isfinite(ev["frechet"])) and (ev["error"] == "").all() and a["failed_rows"] == 0, "metrics")
check(ev["frechet"][12] != ev["frechet"][1], "the evaluation at step 10 differs from the final one")
check(sorted(g["rows"].keys()) == [f"{i:03d}" for i in range(len(expected))], f"rows {list(g['rows'].keys())}")
for i, (rnd, step, label) in enumerate(expected):
    r = g["rows"][f"{i:03d}"]
    check(r.attrs["row"] == i and r.attrs["round"] == rnd and r.attrs["train_step"] == step and r.attrs["label"] == label,
          f"rows/{i:03d} attributes")
    check(r["samples"].shape == (128, 2), f"rows/{i:03d} samples")
s = pd.DataFrame(f["summary"][:])
check(list(s.columns[3:]) == ["final_loss"] + ["frechet@" + l for l in labels], f"summary columns {list(s.columns)}")
check(np.array_equal(s.iloc[0, 4:].astype(float).values, ev["frechet"][:5].values), "summary: round 0's final rows")

if failures:
    print("HDF5 during-training check FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("HDF5 during-training check: all fields OK")

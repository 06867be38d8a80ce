#!/usr/bin/python3
"""What each trial's TensorBoard run must show, from its results file (h5py and numpy only, no flowlab).

    tensorboard_spec.py RESULTS.h5 LOGDIR METRIC...

For each trial of RESULTS.h5, writes LOGDIR/<stem>.json, the spec tests/check_tensorboard.py --spec checks the
run LOGDIR/<stem> against (<stem>: the trial's file stem, as trial_files.cpp names it), and prints "<run> <spec>":
- train/loss, train/grad_norm, train/lr: the train log, at the step over every stage (the rounds' steps before);
- eval/<label>/<metric> (each METRIC: the eval table's metric columns), eval/<label>/nfe, eval/<label>/straightness
  and the image samples/<label> (256 x 256: 2-D data): every row, during training (eval.every) first, in step order,
  then the final ones, stage by stage, which is the order the worker writes them in;
- vs_nfe/[round<R>/]<curve>/<metric>: each final row's metric at step = its NFE.
"""
import json
import os
import sys

import h5py
import numpy as np


def stem(trial_id):
    """trial_files.cpp's trial_file_stem: the id's first 80 bytes made file-safe, '-', 32 bits of its FNV-1a."""
    raw = trial_id.encode()
    prefix = "".join(c if (c.isascii() and (c.isalnum() or c in "._=,-")) else "_" for c in raw[:80].decode(errors="replace"))
    h = 0xCBF29CE484222325
    for b in raw:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{prefix}-{(h ^ (h >> 32)) & 0xFFFFFFFF:08x}"


def curve(label):
    """tensorboard_log.cpp's TensorBoardLog::curve: the label without its steps, rtol and atol."""
    solver, _, params = label.partition(":")
    kept = [p for p in params.split(",") if p and p.split("=")[0] not in ("steps", "rtol", "atol")] if params else []
    return f"{solver}:{','.join(kept)}" if kept else solver


def spec_of(trial, metrics):
    rounds = trial["rounds"][:]
    start, before = {}, 0
    for r in rounds:  # the step over every stage at which each round starts
        start[int(r["round"])] = before
        before += int(r["steps"])
    steps_of = {int(r["round"]): int(r["steps"]) for r in rounds}
    tr = trial["train"]
    steps = [start[int(r)] + int(s) for r, s in zip(tr["round"][()], tr["step"][()])]
    scalars = {f"train/{k}": {"steps": steps, "values": [float(v) for v in tr[k][()]]} for k in ("loss", "grad_norm", "lr")}
    images = {}
    ev = trial["eval"][:]
    rows = []
    for row in ev:
        if row["error"].decode():
            continue
        rnd, train_step = int(row["round"]), int(row["train_step"])
        final = train_step == steps_of[rnd]
        rows.append(((final, rnd if final else 0, start[rnd] + train_step), row))
    rows.sort(key=lambda kr: kr[0])
    for (final, rnd, step), row in rows:
        label = row["label"].decode()
        for name in list(metrics) + ["nfe", "straightness"]:
            tag = scalars.setdefault(f"eval/{label}/{name}", {"steps": [], "values": []})
            tag["steps"].append(step)
            tag["values"].append(float(row[name]))
        if final:  # its point of the quality-vs-NFE curve
            for name in metrics:
                prefix = f"vs_nfe/round{rnd}/" if rnd > 0 else "vs_nfe/"
                tag = scalars.setdefault(f"{prefix}{curve(label)}/{name}", {"steps": [], "values": []})
                tag["steps"].append(int(row["nfe"]))
                tag["values"].append(float(row[name]))
        images.setdefault(f"samples/{label}", {"steps": [], "width": 256, "height": 256})["steps"].append(step)
    return {"scalars": scalars, "images": images, "rtol": 1e-6, "only": True}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    results, logdir, metrics = sys.argv[1], sys.argv[2], sys.argv[3:]
    with h5py.File(results, "r") as f:
        for tid in f["trials"]:
            run = os.path.join(logdir, stem(tid))
            with open(run + ".json", "w") as out:
                json.dump(spec_of(f["trials"][tid], metrics), out)
            print(run, run + ".json")


if __name__ == "__main__":
    main()

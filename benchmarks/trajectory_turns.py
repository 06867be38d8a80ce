#!/usr/bin/env python3
"""How sharply a results file's flows still turn, round by round: where adaptive solvers spend their steps.

For every trial and round with stored trajectories (eval.store_trajectories) of a fixed-step run with at least 20
steps (Euler 100 by preference), the largest change of velocity over a tenth of the time, as a fraction of the
trajectory's length |x1 - x0| (0 for a straight path; the median and 90th percentile over the stored trajectories),
and the accepted step sizes of the round's adaptive run with the most accepted steps (its stored state times); of
rows evaluated during training (eval.every), only the round's final ones. Reads the file
with h5py (Debian's python3-h5py). A distilled student is the round after the last reflow round.

    /usr/bin/python3 benchmarks/trajectory_turns.py results/reflow_rounds.h5
"""
import sys

import h5py
import numpy as np


def turns(trajectory, times):
    """The largest |v(t + 0.1) - v(t)| / |x1 - x0| of each trajectory [n, steps + 1, d]."""
    velocity = np.diff(trajectory, axis=1) / np.diff(times)[None, :, None]
    lag = max(1, int(round(0.1 / float(np.mean(np.diff(times))))))
    length = np.linalg.norm(trajectory[:, -1] - trajectory[:, 0], axis=-1)
    change = np.linalg.norm(velocity[:, lag:] - velocity[:, :-lag], axis=-1).max(axis=1)
    return change / np.maximum(length, 1e-12)


def main(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        sys.exit(f"trajectory_turns: {path} is not a readable HDF5 file ({e})")
    with f:
        if "trials" not in f:
            sys.exit(f"trajectory_turns: {path} is not a flowlab results file (no /trials)")
        print("trial, round: velocity change over 0.1 of t / |x1 - x0| (median, p90 over stored trajectories); "
              "the adaptive run with the most accepted steps: their sizes")
        found = False
        for trial in sorted(f["trials"]):
            rows = f["trials"][trial].get("rows")
            if rows is None:
                continue
            by_round = {}
            for name in rows:
                row = rows[name]
                by_round.setdefault(int(row.attrs["round"]), []).append(row)
            for rnd in sorted(by_round):
                # The round's final rows: with eval.every, rows evaluated during training carry earlier train_steps.
                last = max(int(r.attrs.get("train_step", 0)) for r in by_round[rnd])
                final = [r for r in by_round[rnd] if int(r.attrs.get("train_step", 0)) == last]
                fixed = [r for r in final if "trajectory" in r and int(r.attrs["steps"]) >= 20]
                adaptive = [r for r in final if int(r.attrs["steps"]) == 0 and "times" in r]
                if not fixed:
                    continue
                found = True
                best = max(fixed, key=lambda r: (r.attrs["solver"] == "euler", int(r.attrs["steps"])))
                t = turns(best["trajectory"][:], best["times"][:])
                line = (f"{trial}, round {rnd}: {np.median(t):.3f}, {np.quantile(t, 0.9):.3f} "
                        f"({best.attrs['label']}, {len(t)} trajectories)")
                if adaptive:
                    a = max(adaptive, key=lambda r: len(r["times"]))
                    steps = np.diff(a["times"][:])
                    line += f"; {a.attrs['label']}: {len(steps)} accepted steps " + " ".join(f"{h:.3f}" for h in steps)
                print(line)
        if not found:
            sys.exit(f"trajectory_turns: {path} stores no trajectories of a fixed-step run with 20 or more steps "
                     "(set eval.store_trajectories and evaluate e.g. euler with 100 steps)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: trajectory_turns.py RESULTS.h5")
    main(sys.argv[1])

#!/usr/bin/env bash
# Writes tests/data/flow_matching_pin.csv: the training losses and gradient norms (as hex floats, exact) of the trials
# in tests/data/experiments/objective_pin.yaml, run by a flowlab from before the objective plugin kind (commit 2641062:
# `git worktree add /tmp/pin-src 2641062`, build it, then FLOWLAB=/tmp/pin-src/build/release/flowlab/flowlab).
# PYTHON must have h5py (the torch2 preset's venv has it: build/torch-pip/venv/bin/python).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${FLOWLAB:?set FLOWLAB to the flowlab binary that writes the pin}"
: "${PYTHON:=python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sed "s#^name: objective_pin#name: objective_pin\noutput: $work/pin.h5#" "$here/experiments/objective_pin.yaml" > "$work/exp.yaml"
"$FLOWLAB" run "$work/exp.yaml" > /dev/null
"$PYTHON" - "$work/pin.h5" "$here/flow_matching_pin.csv" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
with open(sys.argv[2], "w") as out:
    out.write("step,loss,grad_norm,trial\n")
    for tid in sorted(f["trials"].keys()):
        tr = f["trials"][tid]["train"]
        for s, l, g in zip(tr["step"][()], tr["loss"][()], tr["grad_norm"][()]):
            out.write(f"{int(s)},{float(l).hex()},{float(g).hex()},{tid}\n")
PY
echo "wrote $here/flow_matching_pin.csv"

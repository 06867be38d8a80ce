#!/usr/bin/env bash
# The export round trip in PyTorch (issue 29.2): a trial is run, `flowlab export` writes its field, and PyPI's torch
# loads it with torch.jit.load; a plain Euler loop from the trial's stored noise (samples/x0) reproduces the trial's
# stored Euler samples to 1e-5. Usage: check_export.sh FLOWLAB VENV_PYTHON WORKDIR
set -euo pipefail
flowlab=$1 py=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cat > "$work/exp.yaml" <<YAML
name: export_round_trip
output: $work/r.h5
devices: [cpu]
data: {dataset: moons}
model:
  architecture: {name: mlp, params: {width: 64, depth: 3}}
train: {steps: 200, batch_size: 128, lr: 3.0e-3}
eval:
  samples: 256
  store_samples: 256
  solvers: [{solver: euler, steps: [8]}]
YAML
FLOWLAB_PLUGIN_PATH= "$flowlab" run "$work/exp.yaml" > /dev/null
FLOWLAB_PLUGIN_PATH= "$flowlab" export "$work/r.h5" --trial seed=0 --out "$work/field.pt"
# The stored noise and samples, as JSON (Debian's h5py; the venv has only torch).
/usr/bin/python3 - "$work/r.h5" "$work/stored.json" <<'PY'
import json, sys, h5py
f = h5py.File(sys.argv[1], "r")
g = f["trials/seed=0"]
json.dump({"x0": g["samples/x0"][()].tolist(), "samples": g["rows/000/samples"][()].tolist()}, open(sys.argv[2], "w"))
PY
"$py" - "$work/field.pt" "$work/stored.json" <<'PY'
import json, sys, torch
field = torch.jit.load(sys.argv[1])
stored = json.load(open(sys.argv[2]))
x = torch.tensor(stored["x0"], dtype=torch.float32)
n = 8
with torch.no_grad():
    for i in range(n):
        t = torch.full((x.shape[0],), i / n)
        x = torch.add(x, field(x, t), alpha=(i + 1) / n - i / n)
err = (x - torch.tensor(stored["samples"], dtype=torch.float32)).abs().max().item()
print(f"torch {torch.__version__}: Euler 8 steps through the exported field, max |x - stored| = {err:.3g} over {x.shape[0]} samples")
sys.exit(0 if err <= 1e-5 else 1)
PY

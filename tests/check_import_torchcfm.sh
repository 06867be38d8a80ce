#!/usr/bin/env bash
# The import round trip (issue 29.3), the worked example of docs/plugins.md: a TorchCFM MLP (PyPI torchcfm) trained
# for 300 steps in PyTorch, scripted with torch.jit.script, is swept by flowlab over solvers with train.steps: 0
# (architecture/torchscript), and flowlab's stored Euler samples equal torchdiffeq's Euler solve of the same module
# from the same noise to 1e-5. torchcfm and torchdiffeq are installed into the venv from PyPI when missing, with the
# venv's torch held at its version. Usage: check_import_torchcfm.sh FLOWLAB VENV_PYTHON WORKDIR
set -euo pipefail
flowlab=$1 py=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
if ! "$py" -c "import torchcfm, torchdiffeq" 2>/dev/null; then
  echo "torch==$("$py" -c 'import torch; print(torch.__version__.split("+")[0])')" > "$work/pin.txt"
  "$py" -m pip install -q --disable-pip-version-check -c "$work/pin.txt" torchcfm torchdiffeq
fi
# From a file: torch.jit.script reads the module's source.
cat > "$work/train_torchcfm.py" <<'PY'
import sys, torch
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
from torchcfm.models.models import MLP
from torchcfm.utils import sample_8gaussians, sample_moons

torch.manual_seed(0)
net = MLP(dim=2, w=64, time_varying=True)
fm = ConditionalFlowMatcher(sigma=0.0)
opt = torch.optim.Adam(net.parameters(), 1e-3)
for step in range(300):
    x0, x1 = sample_8gaussians(256), sample_moons(256)
    t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
    loss = ((net(torch.cat([xt, t[:, None]], dim=-1)) - ut) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()

class Field(torch.nn.Module):  # flowlab's signature: forward(x, t) with t [B]
    def __init__(self, net):
        super().__init__()
        self.net = net
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=-1))

torch.jit.script(Field(net)).save(sys.argv[1])
print(f"torchcfm MLP trained 300 steps (last loss {loss.item():.3f}), scripted to {sys.argv[1]}")
PY
"$py" "$work/train_torchcfm.py" "$work/cfm.pt"
cat > "$work/exp.yaml" <<YAML
name: imported_torchcfm
output: $work/r.h5
devices: [cpu]
data: {dataset: moons, params: {preset: torchcfm}}
model:
  noise: {dataset: eight_gaussians, params: {preset: torchcfm}}
  architecture: {name: torchscript, params: {file: $work/cfm.pt}}
train: {steps: 0}
eval:
  samples: 512
  store_samples: 512
  solvers:
    - {solver: euler, steps: [10, 100]}
    - {solver: rk4, steps: [5]}
    - {solver: dopri5, params: {rtol: 1.0e-5, atol: 1.0e-5}}
  metrics: [w2]
YAML
FLOWLAB_PLUGIN_PATH= "$flowlab" run "$work/exp.yaml" | tail -6
/usr/bin/python3 - "$work/r.h5" "$work/stored.json" <<'PY'
import json, sys, h5py
g = h5py.File(sys.argv[1], "r")["trials/seed=0"]
labels = [l.decode() for l in g["eval"]["label"]]
json.dump({"x0": g["samples/x0"][()].tolist(),
           "euler10": g[f"rows/{labels.index('euler:steps=10'):03d}/samples"][()].tolist()}, open(sys.argv[2], "w"))
PY
"$py" - "$work/cfm.pt" "$work/stored.json" <<'PY'
import json, sys, torch
from torchdiffeq import odeint
field = torch.jit.load(sys.argv[1])
stored = json.load(open(sys.argv[2]))
x0 = torch.tensor(stored["x0"], dtype=torch.float32)
with torch.no_grad():
    x = odeint(lambda t, x: field(x, t.expand(x.shape[0])), x0, torch.linspace(0, 1, 11), method="euler")[-1]
err = (x - torch.tensor(stored["euler10"], dtype=torch.float32)).abs().max().item()
print(f"flowlab's Euler 10 against torchdiffeq's on the same noise: max |difference| = {err:.3g} over {len(x)} samples")
sys.exit(0 if err <= 1e-5 else 1)
PY

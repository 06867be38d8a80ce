#!/usr/bin/env python3
"""Reference for dataset/moons' `preset: torchcfm`: the deterministic part of TorchCFM's sample_moons(n), from
TorchCFM's and torchdyn's own code, without flowlab.

TorchCFM's sample_moons(n) is torchdyn's generate_moons(n, noise=0.2) * 3 - 1; torchdyn's noise is one uniform
scalar per point added to both coordinates. generate_moons(n, noise=None) skips that draw, so this prints the angle
grids alone (times 3 minus 1): the points that flowlab's preset gives before its uniform shift.
torchdyn returns float32 (torch.Tensor(X)), so the values are float32's.

Run (the venv of scripts/setup.sh --torch pip, with torchcfm installed, e.g. by benchmarks/vs_torchcfm.sh):
  build/torch-pip/venv/bin/python tests/data/make_torchcfm_moons_reference.py > tests/data/torchcfm_moons_reference.csv
Rows: n,index,label,x,y for n in 1, 2, 7, 256.
"""
import importlib.metadata as metadata

import torchcfm.utils  # noqa: F401  (the module whose sample_moons this reproduces; it imports torchdyn's generator)
from torchdyn.datasets import generate_moons

print(f"# torchdyn {metadata.version('torchdyn')}, torchcfm {metadata.version('torchcfm')}: "
      "generate_moons(n, noise=None)[0] * 3 - 1")
print("n,index,label,x,y")
for n in (1, 2, 7, 256):
    x, y = generate_moons(n, noise=None)
    x = x.double() * 3 - 1
    for i in range(n):
        print(f"{n},{i},{int(y[i])},{x[i, 0].item()!r},{x[i, 1].item()!r}")

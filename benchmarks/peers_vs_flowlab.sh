#!/usr/bin/env bash
# The peers' own code from PyPI against flowlab, on the same pip torch (build/torch-pip/venv, the wheel flowlab's
# torch2 build links), CPU, 1 thread, interleaved in one run (benchmarks/peers_vs_flowlab.py): training steps/s of
# TorchCFM's I-CFM and OT-CFM loops (its ConditionalFlowMatcher / ExactOptimalTransportConditionalFlowMatcher, MLP
# and 8-Gaussians sampler, the loop of its 2D tutorial) against `flowlab run`, and sampling NFE/s of torchdiffeq's
# odeint (Euler, dopri5) through TorchCFM's torch_wrapper against flowlab's eval rows. Prints a Markdown table.
#   benchmarks/peers_vs_flowlab.sh [--quick] [build dir, default build/torch2] [repetitions, default 3]
# --quick: a smoke test (20 steps, 500 points, 1 repetition). torchcfm, torchdiffeq, h5py and numpy are installed
# into the venv if missing, with the venv's torch held at its version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
quick=()
if [ "${1:-}" = --quick ]; then quick=(--quick); shift; fi
build=${1:-build/torch2}
reps=${2:-3}
[ ${#quick[@]} -eq 0 ] || reps=1
[ -x "$build/bin/flowlab" ] || { echo "peers_vs_flowlab: $build/bin/flowlab is missing: build the torch2 preset" >&2; exit 1; }
. "$here/peer_venv.sh"
peer_venv_require peers_vs_flowlab "torchcfm, torchdiffeq, h5py, numpy" torchcfm torchdiffeq h5py numpy
versions=$($py -c 'import importlib.metadata as m, torch
print("torch", torch.__version__ + ", torchcfm", m.version("torchcfm") + ", torchdiffeq", m.version("torchdiffeq"))')
echo "$(date -I), $(lscpu | sed -n 's/^Model name: *//p'), $versions; 1 thread (OMP_NUM_THREADS=1," \
     "torch.set_num_threads(1), FLOWLAB_PLUGIN_PATH=\"\")."
echo "The networks are near-equal, not identical: both are 3 hidden layers of 64 with SELU, but TorchCFM's MLP" \
     "concatenates the raw t to x (3 inputs), flowlab's mlp sinusoidal features of t (its default since 1.4.0: 2, so 4 inputs; 66 before; when" \
     "sampling, its t is shared by the batch and enters as a bias). Per-step cost is compared on these."
echo
exec "$py" "$here/peers_vs_flowlab.py" "$build" "$reps" "${quick[@]}"

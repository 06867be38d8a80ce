#!/usr/bin/env bash
# TorchCFM's own 2D tasks, in the tree: TorchCFM's classes from PyPI (ConditionalFlowMatcher for I-CFM,
# ExactOptimalTransportConditionalFlowMatcher for OT-CFM, its MLP w=64 with SELU, its samplers, its 2D tutorial's
# loop; torchdiffeq for sampling) against `flowlab run` with the same recipe (mlp 3x64 SELU with flowlab's default
# time features or --time-embedding's, independent vs minibatch_ot coupling, the `preset: torchcfm` datasets), on Gaussian -> 8 Gaussians
# and 8 Gaussians -> moons (the 8 Gaussians as flowlab's source: model.noise: {dataset: ...}), 5000 steps of batch
# 256, Adam 1e-3, no EMA, 3 seeds. Prints a Markdown table of W2 (TorchCFM's own torchcfm.optimal_transport
# .wasserstein, i.e. POT's ot.emd2 on squared Euclidean cost then sqrt, over 2000 points, for both tools' samples)
# and NFE for Euler 1/2/5/10/100, RK4 5 and dopri5 rtol = atol = 1e-5, mean ± std over the seeds
# (benchmarks/vs_torchcfm.py).
#   benchmarks/vs_torchcfm.sh [--quick] [--time-embedding NAME] [--peer-cache DIR] [--seeds N] [--only TASK:METHOD]
#                             [build dir, default build/torch2]
# --seeds N: seeds 0 .. N-1 (default 3). --only TASK:METHOD: one of gauss_8gaussians or 8gaussians_moons with icfm
# or otcfm.
# The peer's runs are kept in DIR (default results/vs_torchcfm_peer in the repository), one subdirectory per
# versions of the peer's packages and digest of its settings and code: a rerun for another flowlab setting trains
# only flowlab.
# --quick: a smoke run (50 steps, 1 seed). --time-embedding: flowlab's mlp with time_embedding NAME (sinusoidal, mlp
# or raw; raw is TorchCFM's own time input) instead of its default. torchcfm, torchdiffeq, pot, h5py and numpy are installed into
# build/torch-pip/venv (scripts/setup.sh --torch pip) from PyPI if missing, with the venv's torch held at its version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
quick=()
embedding=()
options=()
embedding_text="its default time features (sinusoidal)"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick); shift ;;
    --time-embedding)
      embedding=(--time-embedding "${2:?--time-embedding needs a value: sinusoidal, mlp or raw}")
      embedding_text="with time_embedding: $2"
      [ "$2" = raw ] && embedding_text="$embedding_text (the same layer shapes as TorchCFM's, flowlab's own initialisation and draws)"
      shift 2 ;;
    --peer-cache) options+=(--peer-cache "${2:?--peer-cache needs a directory}"); shift 2 ;;
    --seeds) options+=(--seeds "${2:?--seeds needs a number}"); shift 2 ;;
    --only) options+=(--only "${2:?--only needs TASK:METHOD, e.g. gauss_8gaussians:otcfm}"); shift 2 ;;
    --*) echo "vs_torchcfm: unknown option '$1' (valid: --quick, --time-embedding NAME, --peer-cache DIR, --seeds N, --only TASK:METHOD)" >&2; exit 2 ;;
    *) break ;;
  esac
done
build=${1:-build/torch2}
[ -x "$build/bin/flowlab" ] ||
  { echo "vs_torchcfm: $build/bin/flowlab is missing: build the torch2 preset (or name a build dir)" >&2; exit 1; }
. "$here/peer_venv.sh"
peer_venv_require vs_torchcfm "torchcfm, torchdiffeq, ot, h5py, numpy" torchcfm torchdiffeq pot h5py numpy
versions=$($py -c 'import importlib.metadata as m, torch
print("torch", torch.__version__ + ", torchcfm", m.version("torchcfm") + ", torchdyn", m.version("torchdyn") +
      ", torchdiffeq", m.version("torchdiffeq") + ", POT", m.version("pot"))')
libtorch=$(grep -m1 -o 'Torch_DIR:PATH=.*' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2 || true)
echo "$(date -I), $(lscpu | sed -n 's/^Model name: *//p'); $versions;" \
     "$("$build/bin/flowlab" --version) ($build, LibTorch from ${libtorch:-?}); 1 thread a side."
echo "Same recipe on both sides: sigma = 0, t ~ U[0, 1], 3 hidden layers of 64 with SELU, Adam 1e-3, batch 256, no" \
     "EMA. The networks: TorchCFM's MLP takes the raw t beside x (3 inputs); flowlab's mlp ${embedding_text}." \
     "OT-CFM: TorchCFM draws the batch's pairs from the exact plan (with replacement);" \
     "flowlab's minibatch_ot with resample: true does the same. Sampling: torchdiffeq's odeint on TorchCFM's" \
     "torch_wrapper (its rk4 is the 3/8 rule, flowlab's the classic tableau; both 4 NFE a step); dopri5 from t = 0" \
     "to 1 on both sides. W2 for both tools with TorchCFM's wasserstein() against the same reference sets."
echo
[[ " ${options[*]} " == *" --peer-cache "* ]] || options+=(--peer-cache "$root/results/vs_torchcfm_peer")
exec nice "$py" "$here/vs_torchcfm.py" "$build" "${quick[@]}" "${embedding[@]}" "${options[@]}"

#!/usr/bin/env bash
# Python against flowlab on the same networks, batch and task, 1 thread, interleaved in one run: the plain Adam loop
# (and the full recipe) for a 4x256 SiLU MLP, a 3x64 SELU MLP and the default U-Net, Euler and RK4 sampling from
# 10 000 points, sgemm at the same shapes (the roofline), and flowlab_bench's engine against a hand-written loop.
# Prints a Markdown table of medians, ratios and shares of the roofline (benchmarks/python_vs_flowlab.py).
#   benchmarks/python_vs_flowlab.sh [build dir, default build/release] [repetitions, default 3]
#     Debian's LibTorch 1.13: Python is Debian's python3-torch (the same LibTorch and OpenBLAS), installed with
#     apt-get if missing.
#   benchmarks/python_vs_flowlab.sh --torch pip [build dir, default build/torch2] [repetitions, default 3]
#     PyPI's torch 2.x: Python is build/torch-pip/venv's (the same wheel flowlab links; MKL inside); h5py and numpy
#     are installed into that venv if missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
if [ "${1:-}" = --torch ]; then
  flavour=${2:-}; shift 2
else
  flavour=debian
fi
case "$flavour" in
  debian)
    build=${1:-build/release}
    py=/usr/bin/python3
    if ! $py -c 'import torch, h5py' 2>/dev/null; then
      sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get install -y python3-torch python3-h5py >/dev/null
    fi
    blas="OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null || echo '?')" ;;
  pip)
    build=${1:-build/torch2}
    py=$root/build/torch-pip/venv/bin/python
    [ -x "$py" ] || { echo "python_vs_flowlab: $py is missing: run 'bash scripts/setup.sh --torch pip'" >&2; exit 1; }
    $py -c 'import h5py, numpy' 2>/dev/null || $py -m pip install -q --disable-pip-version-check h5py numpy
    blas="BLAS: $($py -c 'import torch; c = torch.__config__.show(); print("MKL" if "MKL" in c else "?")' 2>/dev/null) (in the wheel)" ;;
  *) echo "python_vs_flowlab: --torch '$flavour': valid values are debian, pip" >&2; exit 2 ;;
esac
reps=${2:-3}
echo "$(date -I), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
     "torch $($py -c 'import torch; print(torch.__version__)' 2>/dev/null), $blas"
FLOWLAB_BENCH_PYTHON=$py exec "$py" "$here/python_vs_flowlab.py" "$build" "$reps"

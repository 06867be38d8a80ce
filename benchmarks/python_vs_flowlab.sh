#!/usr/bin/env bash
# Python against flowlab on the same networks, batch and task, 1 thread, interleaved in one run: the plain Adam loop
# (and the full recipe) for a 4x256 SiLU MLP, a 3x64 SELU MLP and the default U-Net, Euler and RK4 sampling from
# 10 000 points, sgemm at the same shapes (the roofline), and flowlab_bench's engine against a hand-written loop.
# Prints a Markdown table of medians, ratios and shares of the roofline (benchmarks/python_vs_flowlab.py).
# Needs Debian's python3-torch (the same LibTorch and OpenBLAS as flowlab): installed here with apt-get if missing.
# Usage: benchmarks/python_vs_flowlab.sh [build dir, default build/release] [repetitions, default 3]
set -euo pipefail
build=${1:-build/release}
reps=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
if ! /usr/bin/python3 -c 'import torch, h5py' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y python3-torch python3-h5py >/dev/null
fi
echo "$(date -I), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
     "torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')," \
     "OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-openmp 2>/dev/null || echo '?')"
exec /usr/bin/python3 "$here/python_vs_flowlab.py" "$build" "$reps"

#!/usr/bin/env bash
# Data-loading throughput of flowlab's importers against Python on the same files, in one run: the first N
# Fashion-MNIST training images (Debian's dataset-fashion-mnist) written by PIL as N 28x28 PNGs in 10 class folders,
# and as .npy/.npz. flowlab: dataset/image_folder on the folder (walk, headers, stb_image decoding in parallel over
# LibTorch's intra-op threads, labels, the seeded split) and dataset/array on the .npy and the .npz (libzip), timed
# by the hidden test case "[importers_bench]" of flowlab_tests (dataset construction, best of R). Python: PIL
# decoding the PNGs one by one into one NumPy array, and NumPy's np.load on the .npy and .npz (best of R). Both
# print the pixel sum of what they read, which must agree. flowlab runs with 1 thread and with all threads.
# Python and its packages (PIL, NumPy) come from build/torch-pip/venv (scripts/setup.sh --torch pip), as for the
# other benchmarks that run peers' code (benchmarks/peer_venv.sh installs pillow from PyPI when it is missing).
# Usage: benchmarks/importers_vs_python.sh [build dir] [N] [R]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build/release}
n=${2:-10000}
repeats=${3:-3}
# shellcheck source=peer_venv.sh
source "$root/benchmarks/peer_venv.sh"
peer_venv_require importers_vs_python "PIL, numpy" pillow numpy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$root/benchmarks/importers_vs_python.py" write "$tmp" "$n"
echo "data: $n Fashion-MNIST images, 28x28 gray, as PNG files in 10 class folders ($(du -sh "$tmp/images" | cut -f1)), .npy and .npz"
echo "machine: $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$py" "$root/benchmarks/importers_vs_python.py" time "$tmp" "$repeats"
for threads in 1 "$(nproc)"; do
  FLOWLAB_IMPORTERS_BENCH_DIR=$tmp FLOWLAB_IMPORTERS_BENCH_REPEATS=$repeats OMP_NUM_THREADS=$threads \
    FLOWLAB_PLUGIN_PATH= "$build/tests/flowlab_tests" "[importers_bench]" 2>&1 \
    | grep '^flowlab' | sed "s/\$/  ($threads thread(s))/"
done

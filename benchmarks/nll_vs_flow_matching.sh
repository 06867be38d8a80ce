#!/usr/bin/env bash
# NLL throughput (issue 27): flowlab's metric/nll against Meta flow_matching's ODESolver.compute_likelihood from PyPI,
# on the same network (a flowlab mlp trained briefly, rebuilt in torch from the results file, fields checked equal
# to 1e-5) and the same held-out samples, on the same pip torch (build/torch-pip/venv, the wheel the torch2 build
# links), CPU: exact divergence on 8 Gaussians (2D) and Hutchinson's estimator (one Rademacher probe per sample) on
# the 8x8 digits, dopri5 at rtol = atol = 1e-5 on both sides. Prints a Markdown table (samples/s, the ratio, NFE,
# NLL on both sides) and writes it to benchmarks/results/nll_vs_flow_matching_<date>.md.
#   benchmarks/nll_vs_flow_matching.sh [--quick] [build dir, default build/torch2] [rounds, default 5] [threads, default 1]
# Needs the targets flowlab, flowlab_nll_driver and the plugins built in the build dir
#   (cmake --preset torch2 && cmake --build build/torch2 --target flowlab flowlab_nll_driver).
# --quick: a smoke test (50 training steps, 1 round of 1 call; the table goes to stdout only). flow_matching (and tqdm,
# which its solver module imports without declaring it), torchdiffeq, h5py and numpy are installed into the venv from
# PyPI if missing, with the venv's torch held at its version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
quick=()
if [ "${1:-}" = --quick ]; then quick=(--quick); shift; fi
build=${1:-build/torch2}
rounds=${2:-5}
threads=${3:-1}
. "$here/peer_venv.sh"
peer_venv_require nll_vs_flow_matching "flow_matching.solver, torchdiffeq, h5py, numpy" flow_matching torchdiffeq tqdm h5py numpy
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
out=()
[ ${#quick[@]} -ne 0 ] || out=(--out "$here/results/nll_vs_flow_matching_$(date -I).md")
exec "$py" "$here/nll_vs_flow_matching.py" "$build" --rounds "$rounds" --threads "$threads" "${quick[@]}" "${out[@]}"

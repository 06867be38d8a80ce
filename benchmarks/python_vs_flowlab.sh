#!/usr/bin/env bash
# flowlab's engine (BM_TrainEngine) against the same loop in Python (python_train.py), 1 thread each; prints
# both rates and the ratio. Needs Debian's python3-torch. Usage: benchmarks/python_vs_flowlab.sh [build dir]
set -euo pipefail
build=${1:-build/release}
here=$(dirname "$0")
fl=$(OMP_NUM_THREADS=1 "$build/benchmarks/flowlab_bench" --benchmark_filter=BM_TrainEngine --benchmark_format=json 2>/dev/null |
     /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["steps_per_s"])')
py=$(OMP_NUM_THREADS=1 /usr/bin/python3 "$here/python_train.py" 200 | sed 's/python: \([0-9.]*\) steps.*/\1/')
printf 'flowlab: %.2f steps/s\npython:  %.2f steps/s\nratio:   %.2fx\n' "$fl" "$py" "$(echo "$fl / $py" | bc -l)"

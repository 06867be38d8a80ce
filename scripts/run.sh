#!/usr/bin/env bash
# The main job: install what is missing, configure, build, then run the quickstart experiment
# (a fresh run each time: the previous results/quickstart.h5 is replaced).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
rm -rf results/quickstart.h5 results/quickstart.h5.trials
./build/release/bin/flowlab run experiments/quickstart.yaml

#!/usr/bin/env bash
# The whole test suite: install what is missing, configure, build, then ctest. Needs nothing run.sh did.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
ctest --preset release -j"$(nproc)"

#!/usr/bin/env bash
# The main job: install what is missing, configure, build, then run flowlab's main command.
# Until the experiment runner lands, the main job lists the plugins the registry finds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
./build/release/bin/flowlab plugins

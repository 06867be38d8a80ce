#!/usr/bin/env bash
# A 4-trial sweep run with 1 worker and with 2 workers (1 thread each); prints both wall times and the ratio.
# Usage: benchmarks/workers_speedup.sh [build dir, default build/release]
set -euo pipefail
build=${1:-build/release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/sweep.yaml" <<YAML
name: workers_speedup
devices: [cpu]
data: {dataset: ring_gaussians}
model:
  architecture: {name: mlp, params: {width: 256, depth: 4}}
train: {steps: 300, batch_size: 256, log_every: 50}
eval: {samples: 2}
sweep: {seeds: [0, 1, 2, 3]}
YAML
run() {
  local start end
  start=$(date +%s.%N)
  FLOWLAB_PLUGIN_PATH= "$build/bin/flowlab" run "$work/sweep.yaml" --out "$work/w$1.h5" --workers "$1" --threads 1 >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
one=$(run 1)
two=$(run 2)
printf '1 worker:  %.2f s\n2 workers: %.2f s\nspeedup:   %.2fx\n' "$one" "$two" "$(echo "$one / $two" | bc -l)"

#!/usr/bin/env bash
# `flowlab validate` time and peak memory against the trial count. Two sweeps of each size: every trial its own
# configuration (a grid over train.lr x train.batch_size, the worst case), and one configuration over many seeds
# (each distinct configuration is read once and shared by its seeds). 10^6 and 4*10^9 trials are over the default
# limits.trials (100 000): they are counted, not built, and refused with the count.
# Usage: benchmarks/validate_scaling.sh [build dir, default build/release]
set -euo pipefail
build=${1:-build/release}
flowlab=$(realpath "$build/bin/flowlab")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# list N STEP OFFSET: [OFFSET, OFFSET + STEP, ...], as integers where STEP and OFFSET are.
list() { python3 -c "import sys; n=int(sys.argv[1]); s=eval(sys.argv[2]); o=eval(sys.argv[3]); print('[' + ', '.join(repr(round(o + s*i, 9)) for i in range(n)) + ']')" "$@"; }
write() {  # name, sweep body
  cat > "$work/$1.yaml" <<YAML
name: $1
data: {dataset: eight_gaussians}
model:
  architecture: {name: mlp, params: {width: 64, depth: 2}}
train: {steps: 100}
eval:
  solvers:
    - {solver: euler, steps: [1, 2, 4]}
    - {solver: dopri5, params: {rtol: [0.001, 0.0001]}}
  metrics: [w2, energy]
sweep:
$2
YAML
}
write grid_100 "  grid: {train.lr: $(list 10 0.0001 0.0001), train.batch_size: $(list 10 1 8)}"
write grid_10000 "  grid: {train.lr: $(list 100 0.0001 0.0001), train.batch_size: $(list 100 1 8)}"
write seeds_100 "  seeds: $(list 100 1 0)"
write seeds_10000 "  seeds: $(list 10000 1 0)"
write grid_1000000 "  grid: {train.lr: $(list 1000 0.0001 0.0001), train.batch_size: $(list 1000 1 8)}"
write grid_4096000000 "  grid: {train.lr: $(list 40 0.0001 0.0001), train.batch_size: $(list 40 1 8), train.warmup: $(list 40 1 0), train.log_every: $(list 40 1 1), eval.samples: $(list 40 1 8), train.grad_clip: $(list 40 1 1)}"
printf '%-18s %-12s %-10s %-14s %s\n' sweep trials "time (s)" "peak RSS (MB)" result
for name in grid_100 seeds_100 grid_10000 seeds_10000 grid_1000000 grid_4096000000; do
  /usr/bin/time -f '%e %M' -o "$work/time" "$flowlab" validate "$work/$name.yaml" > "$work/out" 2>&1 || true
  read -r secs kb < <(tail -n 1 "$work/time")
  result=$(sed -e "s|$work/||" "$work/out" | cut -c1-60)
  printf '%-18s %-12s %-10s %-14s %s\n' "$name" "${name#*_}" "$secs" "$((kb / 1024))" "$result"
done

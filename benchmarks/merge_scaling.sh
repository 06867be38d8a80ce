#!/usr/bin/env bash
# Merging over a sweep of many tiny trials (1 training step, 8 eval samples, 2 CPU workers): the experiment file
# rebuilt after every trial (--merge-every 0, what the runner did before: O(n^2) in the trial count) against the
# batched default (at most every 5 s, and 4x the last rebuild's duration apart, and at the end), plus one
# `flowlab merge` of all the trial files (O(n)). Prints the wall times.
# Measured (release build, a shared 2-core machine under a load average of 3-4 from other builds, so +-10%):
#   trials   after every trial (s)  batched, default (s)   flowlab merge (s, incl. validating the sweep)
#   50       47.9                   49.6                   2.02
#   100      99.6                   105.6                  3.20
#   200      193.2                  66.4                   3.72
# Each tiny trial costs about 1 s of worker start-up, which dominates below ~100 trials; at 200 the rebuilds after
# every trial (each reading every trial file so far) take two thirds of the run.
# Usage: benchmarks/merge_scaling.sh [build dir, default build/release] [trial counts, default "50 100 200"]
set -euo pipefail
build=${1:-build/release}
counts=${2:-50 100 200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
printf '%-8s %-22s %-22s %-16s\n' trials "after every trial (s)" "batched, default (s)" "flowlab merge (s)"
for n in $counts; do
  seeds=$(seq -s, 0 $((n - 1)))
  cat > "$work/sweep.yaml" <<YAML
name: merge_scaling
devices: [cpu]
workers_per_device: 2
data: {dataset: ring_gaussians}
model:
  architecture: {name: mlp, params: {width: 8, depth: 1}}
train: {steps: 1, batch_size: 8, log_every: 1}
eval: {samples: 8, solvers: [{solver: euler, steps: [1]}]}
sweep: {seeds: [$seeds]}
YAML
  rm -rf "$work"/*.h5 "$work"/*.trials
  every=$(secs env FLOWLAB_PLUGIN_PATH= "$build/bin/flowlab" run "$work/sweep.yaml" --out "$work/every.h5" --merge-every 0)
  batched=$(secs env FLOWLAB_PLUGIN_PATH= "$build/bin/flowlab" run "$work/sweep.yaml" --out "$work/batched.h5")
  merge=$(secs env FLOWLAB_PLUGIN_PATH= "$build/bin/flowlab" merge "$work/merged.h5" "$work/batched.h5.trials")
  printf '%-8s %-22.1f %-22.1f %-16.2f\n' "$n" "$every" "$batched" "$merge"
done

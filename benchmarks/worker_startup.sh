#!/usr/bin/env bash
# What a worker pays to start, on a sweep of N seeds (default 400): `flowlab validate` of the whole sweep (what each
# worker did before: it re-read and re-validated the experiment) against a worker that reads only its trial's
# snapshot (what the runner hands it now). Both workers run the same 1-step trial with an 8-sample evaluation.
# Measured (release build, shared 2-core machine, 400 seeds):
#   flowlab validate (the whole sweep):         6.88 s
#   worker start, whole experiment (before):   10.51 s   (validation, then the 1-step trial)
#   worker start, its snapshot only (now):      0.79 s
# Usage: benchmarks/worker_startup.sh [build dir, default build/release] [seeds, default 400]
set -euo pipefail
build=${1:-build/release}
n=${2:-400}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flowlab() { FLOWLAB_PLUGIN_PATH= "$build/bin/flowlab" "$@"; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
cat > "$work/sweep.yaml" <<YAML
name: worker_startup
devices: [cpu]
data: {dataset: ring_gaussians}
model:
  architecture: {name: mlp, params: {width: 8, depth: 1}}
train: {steps: 1, batch_size: 8, log_every: 1}
eval: {samples: 8, solvers: [{solver: euler, steps: [1]}]}
sweep: {seeds: [$(seq -s, 0 $((n - 1)))]}
YAML
validate=$(secs flowlab validate "$work/sweep.yaml")
# Shard 0 of N runs trial seed=0 alone and leaves its snapshot in the .trials directory.
flowlab run "$work/sweep.yaml" --out "$work/out.h5" --shard "0/$n" >/dev/null
snapshot=$(ls "$work"/out.h5.trials/seed=0-*.trial.yaml)
whole=$(secs flowlab _trial "$work/sweep.yaml" --id seed=0 --out "$work/a.h5")
snap=$(secs flowlab _trial --snapshot "$snapshot" --id seed=0 --out "$work/b.h5")
printf 'sweep of %s seeds\nflowlab validate (the whole sweep):        %6.2f s\nworker start, whole experiment (before):  %6.2f s\nworker start, its snapshot only (now):    %6.2f s\n' \
  "$n" "$validate" "$whole" "$snap"

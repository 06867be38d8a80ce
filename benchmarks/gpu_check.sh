#!/usr/bin/env bash
# The whole GPU check, for a machine with an NVIDIA GPU (issue: build, test and measure flowlab on LibTorch 2.x with
# CUDA). In under 8 minutes on one H200 it:
#   1. builds the CUDA flavour (the `torch2` preset on PyPI's torch) unless BUILD already holds one;
#   2. prints `flowlab _devices` and runs the [cuda] tests;
#   3. runs a sweep with `devices: auto` and its report;
#   4. times training steps/s and sampling NFE/s for the 4x256 MLP and the U-Net against the same networks in
#      plain PyTorch on the same torch, for fp32 and bf16, CUDA graphs off and on (benchmarks/gpu_check.py).
# Logs and tables go to $OUT (default ./gpu_check_out). Every step runs even when one before it failed; the exit
# status says whether all passed.
# Usage: benchmarks/gpu_check.sh [BUILD, default build/torch2] [PYTHON, default: the venv's, else python3]
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/torch2}
py=${2:-}
out=${OUT:-$PWD/gpu_check_out}
mkdir -p "$out"
status=0
step() { echo "== $*" | tee -a "$out/gpu_check.log"; }
run() { "$@" 2>&1 | tee -a "$out/gpu_check.log"; local rc=${PIPESTATUS[0]}; [ "$rc" -eq 0 ] || { echo "!! exit $rc: $*" | tee -a "$out/gpu_check.log"; status=1; }; return 0; }

start=$SECONDS
if [ ! -x "$build/bin/flowlab" ]; then
  step "build: scripts/setup.sh --torch pip, then the torch2 preset"
  run bash scripts/setup.sh --torch pip
  run cmake --preset torch2
  run cmake --build --preset torch2 -j"$(nproc)"
fi
if [ -z "$py" ]; then
  if [ -x build/torch-pip/venv/bin/python ]; then py=build/torch-pip/venv/bin/python; else py=python3; fi
fi
step "$(date -Is) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
step "torch: $("$py" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "GPUs", torch.cuda.device_count())' 2>&1)"
step "flowlab _devices"
run "$build/bin/flowlab" _devices
step "[cuda] tests"
run "$build/tests/flowlab_tests" "[cuda]" --reporter console --success --durations yes
step "sweep with devices: auto"
sweep=$(mktemp -d)
cat > "$sweep/gpu_sweep.yaml" <<'YAML'
name: gpu_sweep
devices: auto
data: {dataset: eight_gaussians}
model: {architecture: {name: mlp, params: {width: 256, depth: 4}}}
train: {steps: 500, batch_size: 1024}
eval:
  samples: 4000                # w2 is exact optimal transport: at most 5000 points a set
  cuda_graph: true
  solvers: [{solver: euler, steps: [4, 16]}, {solver: rk4, steps: [4]}, {solver: dopri5, params: {rtol: [1.0e-4]}}]
  metrics: [w2]
sweep: {grid: {train.precision: [fp32, bf16]}, seeds: [0, 1]}
YAML
run env FLOWLAB_PLUGIN_PATH= "$build/bin/flowlab" run "$sweep/gpu_sweep.yaml" --out "$sweep/gpu_sweep.h5"
run env FLOWLAB_PLUGIN_PATH= "$build/bin/flowlab" report "$sweep/gpu_sweep.h5"
step "timings: flowlab against plain PyTorch"
run "$py" benchmarks/gpu_check.py "$build" "$out"
step "done in $((SECONDS - start)) s, status $status"
exit $status

#!/usr/bin/env bash
# log.tensorboard end to end: `flowlab run` writes one TensorBoard run per trial, and TensorBoard's own
# EventAccumulator (tests/check_tensorboard.py) shows exactly what the results file holds (tests/tensorboard_spec.py
# makes the spec from it): each train log entry and each evaluation row once, at its step over both stages.
# Then a run killed with SIGKILL mid-training and finished with --resume: its runs must show the same, every step
# once (the resumed files' SessionLog START drops what the killed ones wrote past the checkpoint).
#   check_tensorboard_run.sh FLOWLAB TOOLS_PYTHON WORKDIR TESTS_DIR
set -euo pipefail
flowlab="$1" tools_python="$2" work="$3" tests="$4"
if [ ! -x "$tools_python" ]; then
  echo "$tools_python is missing: run scripts/setup.sh, which makes build/tools-venv with TensorBoard" >&2
  exit 1
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work"
export FLOWLAB_PLUGIN_PATH=

experiment() {  # NAME STEPS REFLOW_STEPS EVERY CHECKPOINT_EVERY
  sed -e "s#OUTPUT#$1.h5#" -e "s#LOGDIR#$1_runs#" -e "s#REFLOW_STEPS#$3#" -e "s#CHECKPOINT_EVERY#$5#" \
      -e "s#STEPS#$2#" -e "s#EVERY#$4#" "$tests/data/experiments/tensorboard.yaml" > "$1.yaml"
}

check_runs() {  # NAME: every trial's run against its results
  local runs=0
  while read -r run spec; do
    "$tools_python" "$tests/check_tensorboard.py" "$run" --spec "$spec" > "$run.check" ||
      { cat "$run.check"; echo "FAILED: $run" >&2; exit 1; }
    runs=$((runs + 1))
  done < <(/usr/bin/python3 "$tests/tensorboard_spec.py" "$1.h5" "$1_runs" frechet)
  [ "$runs" -eq 2 ] || { echo "FAILED: $runs runs checked in $1_runs, expected 2" >&2; exit 1; }
  [ "$(ls "$1_runs" | grep -vc '\.json$\|\.check$')" -eq 2 ] || { ls -l "$1_runs"; echo "FAILED: not one run per trial" >&2; exit 1; }
}

# 1. A whole run.
experiment full 23 12 10 5
"$flowlab" run full.yaml > full.log
check_runs full
echo "full run: TensorBoard shows the results file's train log and eval rows"

# 2. Killed mid-training (SIGKILL to the runner and its worker), then --resume.
experiment killed 3000 600 500 100
"$flowlab" run --workers 1 killed.yaml > killed.log 2>&1 &
runner=$!
for _ in $(seq 1 1500); do
  compgen -G "killed.h5.trials/*.ckpt" > /dev/null && break
  sleep 0.02
done
sleep 0.2
kill -9 "$runner" 2> /dev/null || true
pkill -9 -f "killed.h5.trials" 2> /dev/null || true
wait "$runner" 2> /dev/null || true
compgen -G "killed.h5.trials/*.ckpt" > /dev/null || { cat killed.log; echo "FAILED: no checkpoint before the kill" >&2; exit 1; }
"$flowlab" run --resume killed.yaml > resumed.log
grep -q "resumes from its checkpoint" resumed.log || { cat resumed.log; echo "FAILED: nothing resumed" >&2; exit 1; }
check_runs killed
restarted=0
for run in killed_runs/*/; do
  [ "$(ls "$run" | wc -l)" -ge 2 ] && restarted=$((restarted + 1))
done
[ "$restarted" -ge 1 ] || { echo "FAILED: no run has the resumed trial's second event file" >&2; exit 1; }
echo "killed and resumed: every step once, $restarted run(s) across two event files"

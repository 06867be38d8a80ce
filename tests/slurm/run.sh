#!/usr/bin/env bash
# The `slurm` ctest: a one-node Slurm cluster on localhost (Debian's slurm-wlm), run by this script as the current
# user, with its own ports, configuration, state and logs under WORK_DIR/<pid>/. On it:
#   A. a 4-task array of a small experiment, submitted by `flowlab slurm --submit`, merged by `flowlab merge`, holds
#      the same trials (configs, seeds) with bit-identical CPU results as a local `flowlab run`;
#   B. one array task made to fail; `flowlab slurm --only-failed` resubmits exactly that index, and then the merge is
#      complete and again identical to the local run;
#   C. with --requeue: one task requeued by `scontrol requeue` (Slurm's SIGTERM) and one by the script itself on
#      SIGUSR1 (what --signal=B:USR1@S sends before the time limit), both mid-trial; each resumes from its
#      checkpoint at a step > 0 and ends with the uninterrupted run's results;
#   D. gres.conf declares 4 fake GPUs (links to /dev/null): each task of an array with --gpus-per-task 1 sees its
#      own CUDA_VISIBLE_DEVICES, and flowlab's runner reports it.
# Every daemon and job process it started is stopped on exit, also when a check fails. Exits 77 (ctest's
# SKIP_RETURN_CODE) with the reason when Slurm is not installed.
# Usage: run.sh FLOWLAB_EXECUTABLE WORK_DIR. FLOWLAB_SLURM_TEST_AUTH=none|munge chooses the authentication (default:
# auth/none where this Slurm has it, else munge); FLOWLAB_SLURM_TEST_STEPS the training steps of part C (6000).
set -euo pipefail

SKIP=77
for cmd in slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "SKIPPED: the slurm test needs '$cmd', which is not installed: Debian's slurm-wlm provides it" \
         "(bash scripts/setup.sh installs it)"
    exit $SKIP
  fi
done

FLOWLAB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")  # absolute: the script works in its own directory
WORK_ROOT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

T0=$(date +%s%N)
elapsed() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
say() { echo "[$(elapsed) s] $*"; }

W=$(mkdir -p "$WORK_ROOT" && cd "$WORK_ROOT" && pwd)/$$
rm -rf "$W"
mkdir -p "$W/state" "$W/spool" "$W/log" "$W/dev" "$W/run"
CONF=$W/slurm.conf
export SLURM_CONF=$CONF
unset SLURM_JOB_ID SLURM_ARRAY_TASK_ID SLURM_ARRAY_JOB_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN \
      SLURM_ARRAY_TASK_MAX CUDA_VISIBLE_DEVICES FLOWLAB_TEST_FAKE_GPUS
export FLOWLAB_PLUGIN_PATH=

# --- stopping everything we started, whatever happens -------------------------------------------------------------
CTLD_PID="" SLURMD_PID="" MUNGED_PID="" WATCHDOG_PID=""
# Processes that inherited this cluster's SLURM_CONF (slurmstepd, job scripts, flowlab), except this shell.
our_processes() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] || [ "${p#/proc/}" = "$BASHPID" ] && continue
    { tr '\0' '\n' < "$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$CONF" && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
    scancel --quiet $(squeue -h -o %F 2>/dev/null | sort -u) 2>/dev/null
    for i in $(seq 1 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  for pid in $SLURMD_PID $CTLD_PID $MUNGED_PID; do kill "$pid" 2>/dev/null; done
  for i in $(seq 1 20); do
    alive=0
    for pid in $SLURMD_PID $CTLD_PID $MUNGED_PID; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.25
  done
  kill "$WATCHDOG_PID" 2>/dev/null
  for pid in $SLURMD_PID $CTLD_PID $MUNGED_PID $(our_processes); do kill -9 "$pid" 2>/dev/null; done
  if [ $rc != 0 ]; then
    echo "FAILED after $(elapsed) s; logs in $W/log:"
    for f in "$W"/log/*.log; do echo "--- $f (last 30 lines)"; tail -n 30 "$f"; done
  else
    rm -rf "$W"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited with status $?"' ERR
trap 'exit 130' INT
trap 'echo "FAIL: stopped by SIGTERM (or the 540 s watchdog)"; exit 143' TERM
# Our own time limit, below ctest's 600 s: ctest's kill would leave the daemons running; ours cleans up.
( trap 'kill $sleeper 2>/dev/null; exit 0' TERM; sleep 540 & sleeper=$!; wait $sleeper && kill -TERM $$ ) &
WATCHDOG_PID=$!

fail() { echo "FAIL: $*"; exit 1; }
expect_eq() {  # expect_eq WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}
expect_grep() {  # expect_grep WHAT PATTERN FILE: an extended regular expression
  grep -qE -- "$2" "$3" || { echo "--- $3:"; cat "$3"; fail "$1: no line matches /$2/ in $3"; }
}

# --- the cluster --------------------------------------------------------------------------------------------------
read -r CTLD_PORT SLURMD_PORT < <($PY -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
NODE=$(hostname -s 2>/dev/null || hostname)
CPUS=$(nproc)
[ "$CPUS" -lt 4 ] && CPUS=4  # 4 tasks at once for part D; slurmd takes the configured count (config_overrides)
for i in 0 1 2 3; do ln -s /dev/null "$W/dev/gpu$i"; done

PLUGIN_DIR=/usr/lib/x86_64-linux-gnu/slurm-wlm
AUTH=${FLOWLAB_SLURM_TEST_AUTH:-}
if [ -z "$AUTH" ]; then
  if [ -e "$PLUGIN_DIR/auth_none.so" ]; then AUTH=none; else AUTH=munge; fi
fi
case $AUTH in
  none) AUTH_CONF="AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=10" ;;
  munge)
    command -v munged >/dev/null 2>&1 || { echo "SKIPPED: this Slurm has no auth/none and munged is not installed"; exit $SKIP; }
    mkdir -p "$W/munge" && chmod 700 "$W/munge"
    dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$W/munge/munge.key"
    # The key in a private directory, the socket where every user may reach it (munged checks both).
    munged --force --socket="$W/run/munge.socket" --key-file="$W/munge/munge.key" \
           --pid-file="$W/run/munged.pid" --log-file="$W/log/munged.log" --seed-file="$W/munge/munged.seed" \
      || fail "munged did not start"
    for i in $(seq 1 40); do [ -s "$W/run/munged.pid" ] && break; sleep 0.1; done
    MUNGED_PID=$(cat "$W/run/munged.pid")
    AUTH_CONF="AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$W/run/munge.socket,cred_expire=10" ;;
  *) fail "FLOWLAB_SLURM_TEST_AUTH='$AUTH': expected none or munge" ;;
esac

cat > "$CONF" <<EOF
# Written by flowlab's tests/slurm/run.sh: a one-node test cluster on localhost, everything under $W.
ClusterName=flowlabtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
$AUTH_CONF
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/run/slurmctld.pid
SlurmdPidFile=$W/run/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container: plain process tracking, no task binding (gres/gpu still sets CUDA_VISIBLE_DEVICES).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=15
MinJobAge=900
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=1000 Gres=gpu:4 State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$W/gres.conf" <<EOF
# 4 fake GPUs: gres/gpu needs device files; these are links to /dev/null.
NodeName=$NODE Name=gpu File=$W/dev/gpu[0-3]
EOF

slurmctld -D -f "$CONF" > "$W/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D -f "$CONF" -N "$NODE" > "$W/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
for i in $(seq 1 120); do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  kill -0 "$CTLD_PID" 2>/dev/null || fail "slurmctld exited at start"
  kill -0 "$SLURMD_PID" 2>/dev/null || fail "slurmd exited at start"
  sleep 0.25
done
[ "$state" = idle ] || fail "the node is '$state', not idle, 30 s after start"
say "cluster up: slurmctld on port $CTLD_PORT, slurmd on $SLURMD_PORT, node $NODE ($CPUS CPUs, 4 fake GPUs), auth/$AUTH"

# --- helpers ------------------------------------------------------------------------------------------------------
# submit LOG ARGS...: flowlab slurm ARGS --submit; prints the array job id (and fails the test when there is none).
submit() {
  local log=$1 job
  shift
  "$FLOWLAB" slurm "$@" --submit > "$log" 2>&1 || { cat "$log" >&2; fail "flowlab slurm $* --submit failed" >&2; }
  job=$(sed -n 's/^submitted array job \([0-9][0-9]*\);.*/\1/p' "$log")
  [ -n "$job" ] || { cat "$log" >&2; fail "no job id in the output of flowlab slurm $* --submit" >&2; }
  echo "$job"
}
# wait_job JOB SECONDS: until no task of JOB is pending or running.
wait_job() {
  local i
  for i in $(seq 1 $(($2 * 4))); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.25
  done
  squeue -j "$1"
  fail "array job $1 still queued or running after $2 s"
}
# task_states JOB: "<task>=<state>:<exit code>" for each task of array job JOB, sorted by task.
task_states() {
  scontrol -o show job "$1" | sed -n 's/.* ArrayTaskId=\([0-9]*\) .* JobState=\([A-Z_]*\) .* ExitCode=\([0-9:]*\) .*/\1=\2:\3/p' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
# experiment FILE NAME STEPS SEEDS [TRAIN_EXTRA]: a small CPU experiment.
experiment() {
  cat > "$1" <<EOF
name: $2
output: $W/$2.h5
devices: [cpu]
workers_per_device: 1
threads: 1
data: {dataset: ring_gaussians}
model:
  architecture: {name: mlp, params: {width: 16, depth: 1}}
train: {steps: $3, batch_size: 32, log_every: 10${5:+, $5}}
eval:
  samples: 64
  solvers: [{solver: euler, steps: [2, 4]}, {solver: rk4, steps: [2]}]
  metrics: [frechet]
sweep:
  seeds: [$4]
EOF
}

cd "$W"
experiment "$W/small.yaml" small 60 "0, 1, 2, 3"
"$FLOWLAB" run "$W/small.yaml" --out "$W/local.h5" --workers 2 > "$W/log/local.log" 2>&1 || { cat "$W/log/local.log"; fail "the local run failed"; }
say "local run of small.yaml done"

# --- A. 4 tasks, merged, equal the local run ----------------------------------------------------------------------
JOB=$(submit "$W/log/submit_a.log" "$W/small.yaml" --tasks 4 --out "$W/a/out.h5")
expect_grep "A: the script" '^#SBATCH --array=0-3$' "$W/a/out.h5.slurm/array.sbatch"
wait_job "$JOB" 120
expect_eq "A: task states" "$(task_states "$JOB")" "0=COMPLETED:0:0 1=COMPLETED:0:0 2=COMPLETED:0:0 3=COMPLETED:0:0"
for i in 0 1 2 3; do
  expect_grep "A: task $i's log" "^small: 4 trials, shard $i/4: 1 trial, 1 to run on 1 slot \(cpu\)$" "$W/a/out.h5.slurm/${JOB}_$i.log"
  expect_grep "A: task $i's log" '^1 trial: 1 completed$' "$W/a/out.h5.slurm/${JOB}_$i.log"
done
"$FLOWLAB" merge "$W/a/out.h5" "$W/a/out.h5.trials" > "$W/log/merge_a.log" 2>&1 || { cat "$W/log/merge_a.log"; fail "A: merge failed"; }
expect_eq "A: merge" "$(cat "$W/log/merge_a.log")" "merged 4 of 4 trials into $W/a/out.h5 (from 4 trial files)"
$PY "$HERE/same_trials.py" "$W/local.h5" "$W/a/out.h5" || fail "A: the merged file differs from the local run"
say "A: array job $JOB: 4 tasks completed, merged, same 4 trials as the local run, bit for bit"

# --- B. a failed task, --only-failed resubmits exactly it --------------------------------------------------------
# Task 2 runs trial seed=2; a directory where its result file goes makes writing the result fail.
STEM=$(basename "$(ls "$W"/local.h5.trials/seed=2-*.h5)" .h5)
mkdir -p "$W/b/out.h5.trials/$STEM.h5"
JOB=$(submit "$W/log/submit_b.log" "$W/small.yaml" --tasks 4 --out "$W/b/out.h5")
wait_job "$JOB" 120
expect_eq "B: task states" "$(task_states "$JOB")" "0=COMPLETED:0:0 1=COMPLETED:0:0 2=FAILED:1:0 3=COMPLETED:0:0"
expect_grep "B: task 2's log" '^1 trial: 1 failed$' "$W/b/out.h5.slurm/${JOB}_2.log"
rmdir "$W/b/out.h5.trials/$STEM.h5"
if "$FLOWLAB" merge "$W/b/out.h5" "$W/b/out.h5.trials" > "$W/log/merge_b1.log" 2>&1; then
  fail "B: merge with a trial missing exited 0"
fi
expect_grep "B: merge" '^missing 1 trial: seed=2$' "$W/log/merge_b1.log"
JOB2=$(submit "$W/log/submit_b2.log" "$W/small.yaml" --tasks 4 --out "$W/b/out.h5" --only-failed)
expect_grep "B: --only-failed" "^small: wrote $W/b/out.h5.slurm/only-failed.sbatch: 1 task of 4 \(array 2\), task I runs shard I/4; logs in $W/b/out.h5.slurm$" "$W/log/submit_b2.log"
expect_grep "B: the script" '^#SBATCH --array=2$' "$W/b/out.h5.slurm/only-failed.sbatch"
wait_job "$JOB2" 120
expect_eq "B: resubmitted task states" "$(task_states "$JOB2")" "2=COMPLETED:0:0"
"$FLOWLAB" merge "$W/b/out.h5" "$W/b/out.h5.trials" > "$W/log/merge_b2.log" 2>&1 || { cat "$W/log/merge_b2.log"; fail "B: merge failed"; }
$PY "$HERE/same_trials.py" "$W/local.h5" "$W/b/out.h5" || fail "B: the merged file differs from the local run"
"$FLOWLAB" slurm "$W/small.yaml" --tasks 4 --out "$W/b/out.h5" --only-failed > "$W/log/submit_b3.log" 2>&1
expect_eq "B: nothing left" "$(cat "$W/log/submit_b3.log")" "small: every trial has a result in $W/b/out.h5.trials: nothing to resubmit"
say "B: job $JOB's task 2 failed; --only-failed resubmitted array 2 only (job $JOB2); merged: same as the local run"

# --- C. requeue mid-trial: from Slurm (SIGTERM) and from the script (SIGUSR1); resumed from the checkpoints -------
C_STEPS=${FLOWLAB_SLURM_TEST_STEPS:-6000}
experiment "$W/long.yaml" long "$C_STEPS" "0, 1" "checkpoint_every: 200"
JOB=$(submit "$W/log/submit_c.log" "$W/long.yaml" --tasks 2 --out "$W/c/out.h5" --requeue)
expect_grep "C: the script" '^#SBATCH --requeue$' "$W/c/out.h5.slurm/array.sbatch"
# Both tasks past their first checkpoint, mid-trial.
for i in $(seq 1 240); do
  n=$({ find "$W/c/out.h5.trials" -name '*.ckpt' 2>/dev/null || true; } | wc -l)
  [ "$n" = 2 ] && break
  sleep 0.25
done
[ "$n" = 2 ] || fail "C: the two trials have no checkpoints after 60 s"
[ -z "$(find "$W/c/out.h5.trials" -name '*.h5')" ] || fail "C: a trial finished before it could be interrupted: raise FLOWLAB_SLURM_TEST_STEPS"
scontrol requeue "${JOB}_0"
scancel --batch --signal=USR1 "${JOB}_1"
say "C: array job $JOB: requeued task 0 (scontrol requeue), sent SIGUSR1 to task 1's script"
# A requeued task starts again after cred_expire + 1 s (AuthInfo=cred_expire=10 above; Slurm's default is 120 s).
wait_job "$JOB" 180
expect_eq "C: task states" "$(task_states "$JOB")" "0=COMPLETED:0:0 1=COMPLETED:0:0"
for i in 0 1; do
  log=$W/c/out.h5.slurm/${JOB}_$i.log
  restarts=$(scontrol -o show job "${JOB}_$i" | sed -n 's/.* Restarts=\([0-9]*\) .*/\1/p')
  expect_eq "C: task $i's restarts" "$restarts" 1
  # Slurm's own word for task 0; task 1's script requeued itself as it was ending, and may have exited before it.
  if [ $i = 0 ]; then
    expect_grep "C: task 0 requeued" '\*\*\* JOB [0-9]+ ON .* CANCELLED AT .* DUE TO JOB REQUEUE \*\*\*' "$log"
  fi
  expect_grep "C: task $i stopped" '^SIGTERM: stopping: the workers save their checkpoints' "$log"
  expect_grep "C: task $i stopped" "^\[cpu\] stopped seed=$i at step [0-9]+/$C_STEPS " "$log"
  step=$(sed -n "s/^\[cpu\] seed=$i resumes from its checkpoint at step \([0-9]*\)\/$C_STEPS$/\1/p" "$log")
  [ -n "$step" ] || { cat "$log"; fail "C: task $i's log does not say that it resumed from its checkpoint"; }
  [ "$step" -gt 0 ] && [ "$step" -lt "$C_STEPS" ] || fail "C: task $i resumed at step $step"
  expect_grep "C: task $i finished" '^1 trial: 1 completed$' "$log"
  say "C: task $i resumed from its checkpoint at step $step/$C_STEPS"
done
"$FLOWLAB" run "$W/long.yaml" --out "$W/long_local.h5" --workers 2 > "$W/log/long_local.log" 2>&1 || { cat "$W/log/long_local.log"; fail "C: the local run failed"; }
"$FLOWLAB" merge "$W/c/out.h5" "$W/c/out.h5.trials" > "$W/log/merge_c.log" 2>&1 || { cat "$W/log/merge_c.log"; fail "C: merge failed"; }
$PY "$HERE/same_trials.py" "$W/long_local.h5" "$W/c/out.h5" || fail "C: the resumed trials differ from the uninterrupted run"
say "C: merged: the same 2 trials as an uninterrupted local run, bit for bit"

# --- D. fake GPUs: each task of a --gpus-per-task 1 array sees its own CUDA_VISIBLE_DEVICES ------------------------
# Held until all 4 are queued, then released together, so all 4 hold a GPU at once.
JOB=$(submit "$W/log/submit_d.log" "$W/small.yaml" --tasks 4 --out "$W/d/out.h5" --gpus-per-task 1 --sbatch-arg=--hold)
expect_grep "D: the script" '^#SBATCH --gres=gpu:1$' "$W/d/out.h5.slurm/array.sbatch"
expect_grep "D: the script" '--devices auto &$' "$W/d/out.h5.slurm/array.sbatch"
scontrol release "$JOB"
wait_job "$JOB" 120
expect_eq "D: task states" "$(task_states "$JOB")" "0=COMPLETED:0:0 1=COMPLETED:0:0 2=COMPLETED:0:0 3=COMPLETED:0:0"
seen=""
for i in 0 1 2 3; do
  log=$W/d/out.h5.slurm/${JOB}_$i.log
  # What the runner reports: the GPU of its worker, or (a build without CUDA, as here) that auto runs on cpu.
  gpu=$(sed -n -e 's/^note: CUDA_VISIBLE_DEVICES=\([^ ]*\) is set, but .*: devices auto runs on cpu$/\1/p' \
               -e 's/^workers. CUDA_VISIBLE_DEVICES: .*; this process has CUDA_VISIBLE_DEVICES=\([^)]*\))$/\1/p' "$log")
  [ -n "$gpu" ] || { cat "$log"; fail "D: task $i's log does not show a CUDA_VISIBLE_DEVICES"; }
  case $gpu in 0|1|2|3) ;; *) fail "D: task $i got CUDA_VISIBLE_DEVICES=$gpu, not one of the 4 GPUs" ;; esac
  case " $seen " in *" $gpu "*) fail "D: task $i got CUDA_VISIBLE_DEVICES=$gpu, as another task did ($seen)" ;; esac
  seen="$seen $gpu"
  expect_grep "D: task $i finished" '^1 trial: 1 completed$' "$log"
done
say "D: array job $JOB: the 4 tasks saw CUDA_VISIBLE_DEVICES$seen"

say "slurm test passed"

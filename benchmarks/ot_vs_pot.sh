#!/usr/bin/env bash
# coupling/minibatch_ot against POT's ot.emd (Debian's python3-pot) on the same batches, in the same run, 1 thread:
# x0 and x1 standard normal, batch 256 and 1024, in 2D and 784-D. flowlab's time is the whole pair() call (cost
# matrix and exact assignment) and the assignment alone on the same cost matrix; POT's is ot.emd alone on the
# precomputed ot.dist matrix. Prints the times, the ratios (target: flowlab at least 5x faster at 256) and both
# coupled costs; then the training step with and without minibatch OT, paired in order and paired ahead on
# the engine's helper thread (the default), from 8 Gaussians and from a standard Gaussian to moons (target: at most
# 30% more at batch 256 for a width-64 MLP), and the reflow pair overhead (target: at most 5% over plain sampling).
# Usage: benchmarks/ot_vs_pot.sh [build dir]
set -euo pipefail
build=${1:-build/release}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'EOF2'
import sys
import numpy as np
rng = np.random.default_rng(0)
for b in (256, 1024):
    for d in (2, 784):
        x = rng.normal(size=(2 * b, d)).astype(np.float32)
        with open(f"{sys.argv[1]}/ot_{b}_{d}.txt", "w") as f:
            f.write(f"{b} {d}\n")
            np.savetxt(f, x, fmt="%.9g")
EOF2
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
FLOWLAB_OT_DIR=$tmp "$build/benchmarks/flowlab_bench" --benchmark_filter='^BM_MinibatchOT|^BM_AssignmentOnly' --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true --benchmark_format=json >"$tmp/ot.json" 2>/dev/null
/usr/bin/python3 - "$tmp" <<'EOF2'
import json, sys, time
import numpy as np
import ot
tmp = sys.argv[1]
bench = {b["run_name"].split("/min_time")[0]: b for b in json.load(open(f"{tmp}/ot.json"))["benchmarks"] if b.get("aggregate_name") == "median"}
print(f"{'batch':>6} {'dim':>4} {'pair() ms':>10} {'assign ms':>10} {'POT emd ms':>11} {'POT/pair()':>11} {'POT/assign':>11}"
      "  coupled cost flowlab / POT")
for b in (256, 1024):
    for d in (2, 784):
        with open(f"{tmp}/ot_{b}_{d}.txt") as f:
            f.readline()
            x = np.loadtxt(f, dtype=np.float64)
        x0, x1 = x[:b], x[b:]
        m = ot.dist(x0, x1)
        a = np.full(b, 1.0 / b)
        times = []
        for _ in range(3):
            reps, start = 0, time.perf_counter()
            while time.perf_counter() - start < 0.5 or reps < 3:
                plan = ot.emd(a, a, m, numItermax=10**9)
                reps += 1
            times.append((time.perf_counter() - start) / reps)
        pot_ms = 1000 * float(np.median(times))
        r = bench[f"BM_MinibatchOT/{b}/{d}"]
        fl_ms, as_ms = r["real_time"], bench[f"BM_AssignmentOnly/{b}/{d}"]["real_time"]
        pot_cost = float((plan * m).sum()) * b
        print(f"{b:>6} {d:>4} {fl_ms:>10.3f} {as_ms:>10.3f} {pot_ms:>11.3f} {pot_ms / fl_ms:>10.2f}x {pot_ms / as_ms:>10.2f}x"
              f"  {float(r['label']):.6g} / {pot_cost:.6g}")
EOF2
# Interleaved and 6 repetitions: on this machine one training run in four can take twice as long.
"$build/benchmarks/flowlab_bench" --benchmark_filter='^BM_TrainStepCoupling|^BM_ReflowPairs' --benchmark_repetitions=6 \
  --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true --benchmark_format=json \
  2>/dev/null >"$tmp/train.json"
/usr/bin/python3 - "$tmp/train.json" <<'EOF2'
import json, sys
b = {x["run_name"].split("/min_time")[0]: x for x in json.load(open(sys.argv[1]))["benchmarks"]
     if x.get("aggregate_name") == "median"}
for task, label in ((0, "8 Gaussians -> moons"), (1, "Gaussian -> moons")):
    rate = lambda mode: b[f"BM_TrainStepCoupling/{mode}/{task}"]["steps_per_s"]
    ind, in_order, ahead = rate(0), rate(1), rate(2)
    print(f"training step, width-64 MLP, batch 256, {label}: independent {ind:.1f} steps/s; minibatch_ot paired in "
          f"order {in_order:.1f} steps/s (+{100 * (ind / in_order - 1):.1f}% per step), paired ahead (the "
          f"default) {ahead:.1f} steps/s (+{100 * (ind / ahead - 1):.1f}% per step)")
p = b["BM_ReflowPairs"]
print(f"reflow pairs (4 x 256 MLP, Euler 20 steps): {p['pairs_per_s']:.0f} pairs/s = {p['pair_nfe_per_s']:.2f} NFE/s "
      f"of 8192 points; plain sampling {p['sample_nfe_per_s']:.2f} NFE/s; overhead {p['overhead_pct']:.1f}%")
EOF2

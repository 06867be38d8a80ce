#!/usr/bin/env bash
# flowlab's metric/w2 (LEMON network simplex) against POT's ot.emd2 (Debian's python3-pot, also a network simplex)
# on the same problem, in the same run, 1 thread each: 2D sets of N points (a Gaussian against an 8-mode ring),
# uniform weights, squared Euclidean costs. flowlab's time includes computing the cost matrix; POT's is emd2 alone
# on the precomputed ot.dist matrix (numItermax raised so that it reaches the optimum). Prints both times, both
# values and the ratio (target: flowlab within 2x of POT).
# Usage: benchmarks/w2_vs_pot.sh [build dir] [N]
set -euo pipefail
build=${1:-build/release}
n=${2:-2000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$n" "$tmp/points.txt" <<'EOF'
import sys
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(n, 2))
angle = rng.integers(0, 8, n) * np.pi / 4
y = 4 * np.stack([np.cos(angle), np.sin(angle)], 1) + 0.3 * rng.normal(size=(n, 2))
with open(sys.argv[2], "w") as f:
    f.write(f"{n} {n} 2\n")
    for row in np.vstack([x, y]):
        f.write(" ".join(repr(float(v)) for v in row) + "\n")
EOF
FLOWLAB_W2_POINTS=$tmp/points.txt OMP_NUM_THREADS=1 "$build/benchmarks/flowlab_bench" \
  --benchmark_filter='^BM_W2_File' --benchmark_format=json >"$tmp/flowlab.json" 2>/dev/null
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 - "$tmp/points.txt" "$tmp/flowlab.json" <<'EOF'
import json, sys, time
import numpy as np
import ot
with open(sys.argv[1]) as f:
    n, m, d = map(int, f.readline().split())
    pts = np.loadtxt(f)
x, y = pts[:n], pts[n:]
cost = ot.dist(x, y)  # squared Euclidean
a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
times, value = [], None
start = time.perf_counter()
while time.perf_counter() - start < 2.0 or len(times) < 3:
    t0 = time.perf_counter()
    value = ot.emd2(a, b, cost, numItermax=10**9)
    times.append(time.perf_counter() - t0)
pot_ms = 1000 * float(np.mean(times))
bench = json.load(open(sys.argv[2]))["benchmarks"][0]
assert bench["time_unit"] == "ms"
fl_ms, fl_value = bench["real_time"], float(bench["label"])
pot_value = float(np.sqrt(value))
print(f"problem:  {n} x {m} points in {d}D, uniform weights, squared Euclidean cost")
print(f"flowlab w2:    {fl_ms:9.1f} ms  (mean of {bench['iterations']}; cost matrix included)  W2 = {fl_value!r}")
print(f"POT ot.emd2:   {pot_ms:9.1f} ms  (mean of {len(times)}; on the ot.dist matrix)         W2 = {pot_value!r}")
print(f"ratio flowlab / POT: {fl_ms / pot_ms:.2f}x   relative difference of the values: {abs(fl_value - pot_value) / pot_value:.1e}")
EOF

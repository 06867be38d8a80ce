#!/usr/bin/env bash
# `flowlab merge` of N trial files (default 10^4) into one experiment file, with the SHA-256 checksum files beside
# the trial files (each verified before it is merged, and the experiment file written with its own) and without
# them (the trial files are then checked by reading them in full only). The trial files are copies of one real
# 1-step trial, renamed per seed with h5py (Debian's python3-h5py), so making 10^4 of them takes a minute, not the
# hours that 10^4 worker starts would. Prints the wall time of each merge.
# Usage: benchmarks/merge_checksums.sh [build dir, default build/release] [N, default 10000]
set -euo pipefail
build=${1:-build/release}
n=${2:-10000}
flowlab=$(realpath "$build/bin/flowlab")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seeds() { seq -s, 0 $(($1 - 1)); }
write_exp() {  # file, seed count
  cat > "$1" <<YAML
name: merge_checksums
devices: [cpu]
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 8, depth: 1}}}
train: {steps: 1, batch_size: 8, log_every: 1}
eval: {samples: 8, solvers: [{solver: euler, steps: [1]}], metrics: []}
sweep: {seeds: [$(seeds "$2")]}
YAML
}
write_exp "$work/two.yaml" 2
write_exp "$work/all.yaml" "$n"
"$flowlab" run "$work/two.yaml" --out "$work/two.h5" --threads 1 > /dev/null
mkdir -p "$work/all.trials"
/usr/bin/python3 - "$work/two.h5.trials" "$work/all.trials" "$n" <<'PY'
import hashlib, os, shutil, sys
import h5py
src_dir, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def stem(tid):  # worker::trial_file_stem: the id (80 characters at most) and a 32-bit fold of its FNV-1a 64
    h = 0xcbf29ce484222325
    for b in tid.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%s-%08x" % (tid[:80], (h ^ (h >> 32)) & 0xFFFFFFFF)
template = os.path.join(src_dir, stem("seed=1") + ".h5")
for k in range(n):
    tid = "seed=%d" % k
    path = os.path.join(dst, stem(tid) + ".h5")
    shutil.copyfile(template, path)
    if k != 1:
        with h5py.File(path, "r+") as f:
            f.move("trials/seed=1", "trials/" + tid)
            f["trials/" + tid].attrs["seed"] = k
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(path + ".sha256", "w") as f:
        f.write("%s  %s\n" % (digest, os.path.basename(path)))
PY
secs() { local s e; s=$(date +%s.%N); "$@" > "$work/merge.log" 2>&1 || { cat "$work/merge.log"; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
on=$(secs "$flowlab" merge "$work/on.h5" "$work/all.trials" --experiment "$work/all.yaml")
tail -n 1 "$work/merge.log"
rm -f "$work"/all.trials/*.sha256
off=$(secs "$flowlab" merge "$work/off.h5" "$work/all.trials" --experiment "$work/all.yaml")
printf '%-8s %-26s %-26s\n' trials "merge, checksums on (s)" "merge, checksums off (s)"
printf '%-8s %-26.2f %-26.2f\n' "$n" "$on" "$off"

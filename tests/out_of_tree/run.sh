#!/usr/bin/env bash
# Installs the build in BUILD_DIR to a scratch prefix, builds the out-of-tree plugin in SRC_DIR against it,
# and checks that the installed flowlab finds and describes it through FLOWLAB_PLUGIN_PATH.
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
export FLOWLAB_PLUGIN_PATH="$work/build"
out=$("$work/prefix/bin/flowlab" describe solver/ralston)
expected="solver/ralston 0.1.0: Ralston's method, order 2, 2 NFE per step
file: $work/build/libmy_solver.so
parameters:
  NAME   TYPE  DEFAULT  DOC
  steps  int   10       number of uniform steps on [0, 1]"
if [ "$out" != "$expected" ]; then
  echo "unexpected describe output:"; echo "$out"; exit 1
fi
# The installed binary also finds the installed in-tree plugins.
# (The listing is captured first: grep -q stops reading at its match, and under pipefail the writer's SIGPIPE would
# fail the pipeline.)
listing=$("$work/prefix/bin/flowlab" plugins solver)
grep -q "^solver  rk4 " <<<"$listing" || { echo "installed plugins not found"; echo "$listing"; exit 1; }
# The installed flowlab looks in its own prefix only, though the build tree still exists: no duplicate of any
# built-in plugin, no test plugin installed, and the quickstart runs with it.
unset FLOWLAB_PLUGIN_PATH
if ls "$work/prefix/lib/flowlab/plugins" | grep -q test_; then
  echo "test plugins were installed:"; ls "$work/prefix/lib/flowlab/plugins"; exit 1
fi
if [ -d "$work/prefix/include/flowlab" ] && ls "$work/prefix/include/flowlab" | grep -qE '^(registry|config|engine|results|runner|worker|records)\.hpp$'; then
  echo "non-SDK headers were installed"; exit 1
fi
# flowlab's internals (detail/: the blocked layout, CPU clones, assignment kernels) are not part of the SDK.
if [ -e "$work/prefix/include/flowlab/detail" ] || grep -rq "FLOWLAB_CPU_CLONES\|AssignmentKernel" "$work/prefix/include/flowlab"; then
  echo "flowlab's internal headers were installed:"; ls -R "$work/prefix/include/flowlab"; exit 1
fi
quick=$(cd "$src/../.." && pwd)/experiments/quickstart.yaml
set +e
"$work/prefix/bin/flowlab" run "$quick" --out "$work/quickstart.h5" --threads 1 >"$work/run.log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ] || grep -q "duplicate plugin\|warning" "$work/run.log"; then
  echo "the installed flowlab failed the quickstart (exit $rc):"; cat "$work/run.log"; exit 1
fi
grep -q "^results: $work/quickstart.h5" "$work/run.log" || { echo "no results line:"; cat "$work/run.log"; exit 1; }
echo "out-of-tree plugin built, found and described; installed flowlab ran the quickstart: OK"

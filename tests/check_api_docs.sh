#!/usr/bin/env bash
# The SDK API reference builds without a single doxygen warning: runs doxygen on docs/Doxyfile (the public headers
# framework/sdk/include/flowlab/*.hpp, not detail/) with WARN_AS_ERROR = FAIL_ON_WARNINGS, and also fails when
# doxygen prints any warning or error. Skipped (exit 77, with the reason) where doxygen is not installed.
# Usage: check_api_docs.sh SOURCE_DIR OUTPUT_DIR
set -euo pipefail
src=$1 out=$2
if ! command -v doxygen >/dev/null 2>&1; then
  echo "SKIP: doxygen is not installed (Debian package doxygen; scripts/setup.sh installs it)"
  exit 77
fi
rm -rf "$out" && mkdir -p "$out"
cd "$src"
rc=0
{ cat docs/Doxyfile; echo "OUTPUT_DIRECTORY = $out"; echo "WARN_AS_ERROR = FAIL_ON_WARNINGS"; echo "QUIET = YES"; } |
  doxygen - >"$out/doxygen.log" 2>"$out/warnings.txt" || rc=$?
n=$(grep -c . "$out/warnings.txt" || true)
if [ "$rc" -ne 0 ] || [ "$n" -ne 0 ]; then
  cat "$out/warnings.txt"
  echo "FAIL: doxygen $(doxygen --version) exited $rc with $n warning lines on docs/Doxyfile: document what it names (/// comments)"
  exit 1
fi
echo "OK: doxygen $(doxygen --version), no warnings; $(ls "$out/html" | wc -l) files in $out/html"

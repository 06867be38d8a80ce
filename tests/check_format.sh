#!/usr/bin/env bash
# The C++ of framework/ and plugins/ is as .clang-format formats it: clang-format --dry-run --Werror on every file
# git tracks there (and on new ones it does not ignore). Skipped (exit 77, with the reason) where clang-format 14
# (Debian 12's, which scripts/setup.sh installs) is missing: another version formats some lines otherwise.
# To format: clang-format -i $(git ls-files 'framework/*.[ch]pp' 'plugins/*.[ch]pp')
# Usage: check_format.sh SOURCE_DIR
set -euo pipefail
cd "$1"
if ! command -v clang-format >/dev/null 2>&1; then
  echo "SKIP: clang-format is not installed (Debian package clang-format; scripts/setup.sh installs it)"
  exit 77
fi
version=$(clang-format --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
if [ "$version" != "14" ]; then
  echo "SKIP: clang-format $version is not 14, the version .clang-format is applied with"
  exit 77
fi
mapfile -t files < <(git ls-files --cached --others --exclude-standard 'framework/*.cpp' 'framework/*.hpp' \
                       'plugins/*.cpp' 'plugins/*.hpp')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! clang-format --dry-run --Werror "${files[@]}" 2> "$log"; then
  grep -m 20 "error:" "$log" || true
  echo "FAIL: these files are not as .clang-format formats them: run clang-format -i on them"
  exit 1
fi
echo "ok: ${#files[@]} files formatted as .clang-format says"

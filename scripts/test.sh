#!/usr/bin/env bash
# The whole test suite: install what is missing, configure, build, then ctest. Needs nothing run.sh did.
#   bash scripts/test.sh               Debian's LibTorch 1.13 (CPU), preset `release`
#   bash scripts/test.sh --torch pip   PyPI's torch 2.x (a CUDA build; runs on CPU without a GPU), preset `torch2`
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=debian
case "${1:-}" in
  "") ;;
  --torch) flavour=${2:-} ;;
  --torch=*) flavour=${1#--torch=} ;;
  *) echo "flowlab test: unknown argument '$1' (valid: --torch debian|pip)" >&2; exit 2 ;;
esac
case "$flavour" in
  debian) preset=release ;;
  pip) preset=torch2 ;;
  *) echo "flowlab test: --torch '$flavour': valid values are debian, pip" >&2; exit 2 ;;
esac
bash scripts/setup.sh --torch "$flavour"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j"$(nproc)"
ctest --preset "$preset" -j"$(nproc)"

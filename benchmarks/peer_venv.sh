# Sourced by the benchmarks that run peers' code from PyPI (peers_vs_flowlab.sh, vs_torchcfm.sh).
# peer_venv_require NAME IMPORTS PACKAGE...: checks that build/torch-pip/venv (scripts/setup.sh --torch pip) exists,
# sets $py to its python, and installs PACKAGE... from PyPI with pip when `import IMPORTS` fails there, holding the
# venv's torch at its version (torchcfm's dependencies, torchdyn -> torchvision, would otherwise pull a newer one).
peer_venv_require() {
  local name=$1 imports=$2
  shift 2
  py=$root/build/torch-pip/venv/bin/python
  [ -x "$py" ] || { echo "$name: $py is missing: run 'bash scripts/setup.sh --torch pip'" >&2; exit 1; }
  if ! "$py" -c "import $imports" 2>/dev/null; then
    local pin
    pin=$(mktemp)
    echo "torch==$("$py" -c 'import torch; print(torch.__version__.split("+")[0])')" > "$pin"
    "$py" -m pip install -q --disable-pip-version-check -c "$pin" "$@" || { rm -f "$pin"; exit 1; }
    rm -f "$pin"
    "$py" -c "import $imports" || { echo "$name: 'import $imports' still fails after pip install $*" >&2; exit 1; }
  fi
}

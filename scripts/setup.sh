#!/usr/bin/env bash
# flowlab setup: installs the Debian packages flowlab needs (idempotent; names Debian packages only).
# Run as root, or with sudo available. Safe to run again: it installs only what is missing.
# Package sources: the machine's own. Catch2 v3 lives in <suite>-backports; when that suite is not configured,
# it is added with the same URIs as the suite already configured (one-line or deb822 format). No host is named here.
#
# --torch pip: also a second LibTorch, PyTorch 2.x from PyPI (a CUDA build, several GB): a virtual environment in
# build/torch-pip/venv with the pinned torch below, its CMake prefix written to build/torch-pip/prefix.txt for the
# `torch2` CMake preset. Debian's LibTorch (the default) needs none of it.
# Always: build/tools-venv, a virtual environment with the pinned PyPI TensorBoard below, for the tests that read
# flowlab's event files back with TensorBoard itself.
set -euo pipefail

TORCH_FLAVOUR=debian
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) TORCH_FLAVOUR=${2:-}; shift 2 || { echo "flowlab setup: --torch needs a value: debian or pip" >&2; exit 2; } ;;
    --torch=*) TORCH_FLAVOUR=${1#--torch=}; shift ;;
    *) echo "flowlab setup: unknown argument '$1' (valid: --torch debian|pip)" >&2; exit 2 ;;
  esac
done
case "$TORCH_FLAVOUR" in debian|pip) ;; *) echo "flowlab setup: --torch '$TORCH_FLAVOUR': valid values are debian, pip" >&2; exit 2 ;; esac
# The PyPI torch that the `torch2` preset builds against: 2.11.0, a CUDA 13.0 build (its runtime, cuBLAS and cuDNN
# come as nvidia-* wheels; /usr/local/cuda's 13.0 toolkit gives CMake its headers). Bump it here and nowhere else.
TORCH_PIP_VERSION=2.11.0
# The PyPI TensorBoard in build/tools-venv, whose EventAccumulator reads flowlab's event files back in the ctest
# tensorboard_event_accumulator (tests/check_tensorboard.py). Bump it here and nowhere else.
TENSORBOARD_VERSION=2.21.0

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libopenblas0-openmp            # LibTorch 1.13 (CPU) + a fast BLAS (else ~18x slower training)
  libblas-dev                                 # the BLAS interface LibTorch calls (sgemm_), for flowlab's fused MLP
  libdnnl-dev                                 # oneDNN 2.6 (the one LibTorch links): convolutions on blocked images
  libyaml-cpp-dev                             # experiment files
  libboost-dev libboost-filesystem-dev        # Boost.DLL plugin loading
  libfmt-dev                                  # formatting
  libelf-dev                                  # reading plugin records from .so files without loading them
  libhdf5-dev                                 # results files
  libssl-dev                                  # SHA-256 checksums of results and checkpoints (libcrypto)
  libbenchmark-dev                            # benchmarks/
  libcatch2-dev                               # tests (v3, bookworm-backports)
  libcli11-dev                                # CLI parsing
  libstb-dev                                  # PNG/JPEG read/write (image_density, image_folder, image grids)
  libzip-dev                                  # .npz (zip) archives: the `array` dataset, `frechet` statistics files
  libprotobuf-dev protobuf-compiler           # TensorBoard event files (protobuf-lite messages, protoc)
  liblemon-dev                                # exact optimal transport (NetworkSimplex): w2 metric, OT couplings
  gnuplot-nox                                 # flowlab plot (pngcairo terminal)
  doxygen                                     # the SDK API reference (docs/Doxyfile) and its ctest sdk_api_docs
  clang-format                                # .clang-format (version 14) and its ctest clang_format
  zlib1g-dev                                  # reading .gz data files (digits, Fashion-MNIST)
  dataset-fashion-mnist                       # Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist
  python3-scipy python3-numpy                 # reference values for tests (tests/data/*.py)
  python3-pot                                 # benchmarks/w2_vs_pot.sh: POT's ot.emd2 against metric/w2
  python3-h5py python3-pandas                 # the HDF5 layout test reads results as a user would
  python3-venv                                # build/tools-venv (TensorBoard, below) and --torch pip's venv
  slurm-wlm                                   # the `slurm` ctest: a one-node cluster on localhost (slurmctld, slurmd, munge)
)
BACKPORTS_PACKAGES=(libcatch2-dev)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Prints "URI COMPONENTS" of the configured suite $1, one per line, from one-line and deb822 sources.
configured_uris() {
  local suite=$1 f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                         if ($(i+1) == s) { c = ""; for (j = i+2; j <= NF; j++) c = c " " $j; print $i c } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v s="$suite" 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " s " "))
                           { n = split(uris, u, " "); for (k = 1; k <= n; k++) print u[k], comps }
                         types = uris = suites = comps = ""; enabled = "" }
                       /^[ \t]*$/ { flush(); next }
                       /^#/ { next }
                       { key = tolower($1); sub(/:$/, "", key); $1 = ""; v = $0; sub(/^ +/, "", v)
                         if (key == "types") types = v; else if (key == "uris") uris = v
                         else if (key == "suites") suites = v; else if (key == "components") comps = v
                         else if (key == "enabled") enabled = tolower(v) }
                       END { flush() }' "$f"
  done
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  needs_backports=0
  for p in "${missing[@]}"; do
    for b in "${BACKPORTS_PACKAGES[@]}"; do [ "$p" = "$b" ] && needs_backports=1; done
  done
  if [ "$codename" = bookworm ] && [ $needs_backports = 1 ] && [ -z "$(configured_uris bookworm-backports)" ]; then
    uris=$(configured_uris bookworm | awk '{print $1}' | sort -u)
    if [ -z "$uris" ]; then
      echo "flowlab setup: error: cannot read the configured Debian sources (no 'bookworm' suite found in" \
           "/etc/apt/sources.list or /etc/apt/sources.list.d/*.list|*.sources); add bookworm-backports by hand" >&2
      exit 1
    fi
    {
      echo "# Added by flowlab's scripts/setup.sh: bookworm-backports from the URIs already configured for bookworm."
      echo "Types: deb"
      echo "URIs: $(echo $uris)"
      echo "Suites: bookworm-backports"
      echo "Components: main"
      key=/usr/share/keyrings/debian-archive-keyring.gpg
      [ -r "$key" ] && echo "Signed-By: $key"
    } | $SUDO tee /etc/apt/sources.list.d/flowlab-backports.sources >/dev/null
  fi
  echo "flowlab setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  main=() backports=()
  for p in "${missing[@]}"; do
    bp=0
    for b in "${BACKPORTS_PACKAGES[@]}"; do [ "$p" = "$b" ] && bp=1; done
    if [ $bp = 1 ] && [ "$codename" = bookworm ]; then backports+=("$p"); else main+=("$p"); fi
  done
  if [ ${#main[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${main[@]}" >/dev/null
  fi
  if [ ${#backports[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${backports[@]}" >/dev/null
  fi
fi
# sklearn's 8x8 digits: digits.csv.gz from python3-sklearn's .deb (sklearn itself is not installed).
DIGITS_DIR=/usr/local/share/flowlab/datasets
if [ ! -s "$DIGITS_DIR/digits.csv.gz" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq python3-sklearn 2>/dev/null && dpkg-deb -x python3-sklearn_*.deb x)
  $SUDO mkdir -p "$DIGITS_DIR"
  $SUDO cp "$tmp/x/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz" "$DIGITS_DIR/"
  rm -rf "$tmp"
fi
echo "flowlab setup: packages OK"

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/build/tools-venv"
if [ ! -x "$tools/bin/python" ]; then
  py=$(command -v python3)
  "$py" -m venv "$tools" || { echo "flowlab setup: '$py -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
have=$("$tools/bin/python" -c 'import tensorboard; print(tensorboard.__version__)' 2>/dev/null || true)
if [ "$have" != "$TENSORBOARD_VERSION" ]; then
  echo "flowlab setup: installing tensorboard==$TENSORBOARD_VERSION from PyPI into $tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check "tensorboard==$TENSORBOARD_VERSION"
fi
echo "flowlab setup: tensorboard $TENSORBOARD_VERSION in $tools"

if [ "$TORCH_FLAVOUR" = pip ]; then
  venv="$root/build/torch-pip/venv"
  py=$(command -v python3)
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" || { echo "flowlab setup: '$py -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  fi
  have=$("$venv/bin/python" -W ignore -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
  if [ "${have%%+*}" != "$TORCH_PIP_VERSION" ]; then
    echo "flowlab setup: installing torch==$TORCH_PIP_VERSION from PyPI into $venv (several GB)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==$TORCH_PIP_VERSION"
  fi
  "$venv/bin/python" -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)' > "$root/build/torch-pip/prefix.txt"
  echo "flowlab setup: torch $("$venv/bin/python" -W ignore -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')" \
       "from PyPI; CMake prefix $(cat "$root/build/torch-pip/prefix.txt")"
fi

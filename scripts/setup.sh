#!/usr/bin/env bash
# flowlab setup: installs the Debian packages flowlab needs (idempotent; names Debian packages only).
# Run as root, or with sudo available. Safe to run again: it installs only what is missing.
set -euo pipefail

# Catch2 v3 lives in bookworm-backports; everything else is in bookworm main.
PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libopenblas0-openmp            # LibTorch 1.13 (CPU) + a fast BLAS (else ~18x slower training)
  libyaml-cpp-dev                             # experiment files
  libboost-dev libboost-filesystem-dev        # Boost.DLL plugin loading
  libfmt-dev                                  # formatting
  libelf-dev                                  # reading plugin records from .so files without loading them
  libhdf5-dev                                 # results files
  libbenchmark-dev                            # benchmarks/
  libcatch2-dev                               # tests (v3, bookworm-backports)
  libcli11-dev                                # CLI parsing
  libstb-dev                                  # PNG read/write (image_density, image grids)
  zlib1g-dev                                  # reading .gz data files (digits, Fashion-MNIST)
  dataset-fashion-mnist                       # Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist
  python3-scipy python3-numpy                 # reference values for tests (tests/data/*.py)
  python3-h5py python3-pandas                 # the HDF5 layout test reads results as a user would
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  if [ "$codename" = "bookworm" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/flowlab-backports.list >/dev/null
  fi
  echo "flowlab setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # libcatch2-dev (v3) comes from bookworm-backports; the rest from main.
  main=() backports=()
  for p in "${missing[@]}"; do
    if [ "$p" = libcatch2-dev ] && [ "$codename" = bookworm ]; then backports+=("$p"); else main+=("$p"); fi
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

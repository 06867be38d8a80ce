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
  libhdf5-dev                                 # results files
  libbenchmark-dev                            # benchmarks/
  libcatch2-dev                               # tests (v3, bookworm-backports)
  libcli11-dev                                # CLI parsing
  libstb-dev                                  # PNG read/write (image_density, image grids)
  python3-scipy python3-numpy                 # reference values for tests (tests/data/*.py)
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
  bp=()
  [ "$codename" = "bookworm" ] && bp=(-t bookworm-backports)
  # libcatch2-dev comes from backports; the rest from main (backports pinning only lifts what is asked for).
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]/libcatch2-dev/}" >/dev/null
  if printf '%s\n' "${missing[@]}" | grep -qx libcatch2-dev; then
    $SUDO apt-get install -y -qq --no-install-recommends "${bp[@]}" libcatch2-dev >/dev/null
  fi
fi
echo "flowlab setup: packages OK"

#!/usr/bin/env bash
# For a GPU machine that cannot install packages (this workplace's lent one): stages a built `torch2` tree and the
# shared libraries it needs beyond glibc and LibTorch into .gpu/ (git-ignored), so that the machine runs
# benchmarks/gpu_check.sh without building. Build here against the same torch wheel the machine has.
#   bash benchmarks/gpu_stage.sh            # here, after `bash scripts/test.sh --torch pip`
#   bash benchmarks/gpu_stage.sh --run      # there: links the tree in place, then runs benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --run ]; then
  # The binaries hold absolute paths of this checkout (/work/main): link it there.
  here=$PWD
  if [ "$here" != /work/main ]; then mkdir -p /work; [ -e /work/main ] || ln -s "$here" /work/main; cd /work/main; fi
  mkdir -p build && rm -rf build/torch2 && cp -a .gpu/torch2 build/torch2
  # Fashion-MNIST where Debian's dataset-fashion-mnist puts it (the U-Net rows read it).
  if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    mkdir -p /usr/share/datasets && cp -a .gpu/fashion-mnist /usr/share/datasets/fashion-mnist
  fi
  # The staged libraries only where this machine has none of that name: its own are newer.
  for f in .gpu/syslib/*; do
    if ldconfig -p | grep -q " $(basename "$f") "; then rm -f "$f"; fi
  done
  echo "staged libraries used: $(ls .gpu/syslib | tr '\n' ' ')"
  py=$(command -v python3)
  torch_lib=$("$py" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  nv=$("$py" -c 'import glob, os, torch; s = os.path.dirname(os.path.dirname(torch.__file__)); print(":".join(sorted(glob.glob(s + "/nvidia/*/lib"))))')
  export LD_LIBRARY_PATH="$PWD/.gpu/syslib:$torch_lib:$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  exec bash benchmarks/gpu_check.sh build/torch2 "$py"
fi
rm -rf .gpu && mkdir -p .gpu/syslib
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
cp -a build/torch2 .gpu/torch2
(cd .gpu/torch2 && rm -rf CMakeFiles Testing out_of_tree_work slurm_test flowlab_pch* ./*.h5* &&
   find . \( -name CMakeFiles -o -name '*.o' -o -name '*.gch' -o -name '*.h5*' \) -prune -exec rm -rf {} +)
# Every shared library the binaries and plugins need that is neither glibc's, the compiler's, nor LibTorch's/CUDA's.
find .gpu/torch2 -type f \( -name '*.so' -o -perm -u+x \) -exec file {} + | grep ELF | cut -d: -f1 |
  xargs -r ldd 2>/dev/null | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libnsl|libcrypt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|/torch/lib/|/nvidia/|/work/main/build/torch2/' |
  while read -r lib; do cp -L "$lib" .gpu/syslib/; done
strip --strip-unneeded .gpu/torch2/bin/* .gpu/torch2/tests/flowlab_tests .gpu/syslib/* 2>/dev/null || true
cp -a /usr/share/datasets/fashion-mnist .gpu/fashion-mnist
du -sh .gpu .gpu/syslib; ls .gpu/syslib

#!/usr/bin/env bash
# Installs what ferry builds and tests with, from Debian's packages; skips the network
# when everything is already there. Used by the README's commands and by CI.
set -euo pipefail

packages=(
  build-essential cmake pkg-config binutils
  libcmocka-dev
  libblis-dev libopenblas0-openmp
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo libclblast-dev
  openmpi-bin libopenmpi-dev
  # clang builds (presets clang-asan and fuzz): compiler-rt's sanitizers and libFuzzer,
  # clang's OpenMP runtime, and llvm-symbolizer for readable sanitizer stacks
  clang libclang-rt-dev libomp-dev llvm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Python packages for the module's tests, from PyPI: NumPy 2.x, pytest, JAX on CPU.
# The python3 on PATH is the one CMake builds the module for.
python=${PYTHON:-python3}
if ! "$python" -c 'import sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null \
   || ! "$python" -m pip --version >/dev/null 2>&1; then
  # Debian's own interpreter needs its headers and pip from Debian.
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends python3-dev python3-pip
fi
if ! "$python" -c 'import numpy, pytest, jax, safetensors; assert int(numpy.__version__.split(".")[0]) >= 2' 2>/dev/null; then
  echo "install-deps: installing numpy>=2, pytest, jax[cpu], safetensors for $python"
  # Debian marks its interpreter externally managed (PEP 668); a pyenv one is not.
  "$python" -m pip install --quiet "numpy>=2" pytest "jax[cpu]" safetensors \
    || "$python" -m pip install --quiet --break-system-packages "numpy>=2" pytest "jax[cpu]" safetensors
fi

# PyTorch, for python/tests/test_torch.py (DLPack both ways and the cross-checks of
# values and exception types against torch itself). PyPI's Linux wheel pulls in its
# CUDA libraries: measured on this machine kind, `pip install torch` (2.15) takes about
# 2 minutes and 5.2 GB (torch 1.2 GB, nvidia-* 3.0 GB, triton 1.0 GB); torch imports and
# runs on a CPU-only machine. With --no-deps it does not import (libcufile.so.0 missing),
# and PyPI has no CPU-only wheel. FERRY_SKIP_TORCH=1 skips it (test_torch.py then skips,
# saying why).
if [ "${FERRY_SKIP_TORCH:-0}" != 1 ] && ! "$python" -c 'import torch' 2>/dev/null; then
  echo "install-deps: installing torch for $python (about 2 minutes, 5 GB)"
  "$python" -m pip install --quiet torch \
    || "$python" -m pip install --quiet --break-system-packages torch
fi

#!/usr/bin/env bash
# Installs what ferry builds and tests with, from Debian's packages; skips the network
# when everything is already there. Used by the README's commands and by CI.
set -euo pipefail

packages=(
  build-essential cmake pkg-config binutils
  libcmocka-dev
  libblis-dev libopenblas0-openmp
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo libclblast-dev
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
if ! "$python" -c 'import numpy, pytest, jax; assert int(numpy.__version__.split(".")[0]) >= 2' 2>/dev/null; then
  echo "install-deps: installing numpy>=2, pytest, jax[cpu] for $python"
  # Debian marks its interpreter externally managed (PEP 668); a pyenv one is not.
  "$python" -m pip install --quiet "numpy>=2" pytest "jax[cpu]" \
    || "$python" -m pip install --quiet --break-system-packages "numpy>=2" pytest "jax[cpu]"
fi

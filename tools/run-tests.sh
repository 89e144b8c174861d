#!/usr/bin/env bash
# Every test: installs what is missing, then builds and runs the whole suite twice,
# as a release build and under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
export PATH="$PATH:/usr/local/cuda/bin"

# PoCL gives this machine a real OpenCL device: its absence is a broken setup, never a
# reason to skip the OpenCL tests.
if ! clinfo -l 2>/dev/null | grep -q "Device"; then
  echo "run-tests: no OpenCL device found (pocl-opencl-icd should provide one):" >&2
  clinfo -l >&2 || true
  exit 1
fi
export FERRY_TEST_REQUIRE="${FERRY_TEST_REQUIRE:-opencl}"

jobs="$(nproc)"
for preset in release asan; do
  echo "=== ${preset}: configure and build ==="
  cmake --preset "$preset"
  cmake --build --preset "$preset" -j"$jobs"
  if [ ! -f "build/${preset}/lib/ferry/libferry-backend-opencl.so" ]; then
    echo "run-tests: the OpenCL backend was not built (see the configure output)" >&2
    exit 1
  fi
  echo "=== ${preset}: ctest ==="
  ctest --preset "$preset" -j"$jobs"
done
echo "=== bench smoke runs (release) ==="
build/release/bin/bench_core --quick
build/release/bin/bench_ops --quick
build/release/bin/bench_opencl --quick

#!/usr/bin/env bash
# Every test: installs what is missing, then builds and runs the whole suite twice,
# as a release build and under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh

jobs="$(nproc)"
for preset in release asan; do
  echo "=== ${preset}: configure and build ==="
  cmake --preset "$preset"
  cmake --build --preset "$preset" -j"$jobs"
  echo "=== ${preset}: ctest ==="
  ctest --preset "$preset" -j"$jobs"
done
echo "=== bench smoke run (release) ==="
build/release/bin/bench_core --quick

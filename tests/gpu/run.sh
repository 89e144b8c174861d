#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build ferry with the CUDA backend, run every CUDA test
# (the plugin's own and the conformance suite on cuda:0) and the CUDA benchmarks, and
# print the figures. Fails when no CUDA device is usable.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/cuda/bin"
build="${FERRY_GPU_BUILD_DIR:-build/gpu}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFERRY_BUILD_PYTHON=OFF
cmake --build "$build" -j"$(nproc)"
"$build/bin/ferry" devices
if ! "$build/bin/ferry" devices | grep -q "^cuda: [0-9]* device"; then
  echo "tests/gpu/run.sh: no usable CUDA device" >&2
  exit 1
fi
export FERRY_TEST_REQUIRE=sim,cuda
ctest --test-dir "$build" -L 'cuda|sim' --output-on-failure
ctest --test-dir "$build" -R conformance --output-on-failure
if [ -x "$build/bin/bench_cuda" ]; then
  "$build/bin/bench_cuda"
fi

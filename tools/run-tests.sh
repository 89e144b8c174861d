#!/usr/bin/env bash
# Every test: installs what is missing, then builds and runs, each in its own tree:
#   release     every test (CMocka, conformance, Python, install, CLI, fault sweep)
#   asan        every test under gcc's AddressSanitizer + UBSan (LeakSanitizer at exit)
#   clang-asan  every test under clang's ASan + UBSan, and the fuzz corpus/regression replay
#   tsan        the tests that start threads, under ThreadSanitizer
#   fuzz        each libFuzzer harness for FERRY_FUZZ_SMOKE_SECONDS (60), plus the replay
# and the benchmarks' --quick runs. FERRY_TEST_STAGES="release asan" picks stages.
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
# The CUDA plugin must really be built: CI machines have the toolkit (no GPU), so a
# missing nvcc is a broken setup too. FERRY_TEST_NO_CUDA=1 opts out on machines that
# have no toolkit at all.
if [ "${FERRY_TEST_NO_CUDA:-0}" != 1 ] && ! command -v nvcc >/dev/null; then
  echo "run-tests: nvcc not found on PATH or in /usr/local/cuda/bin, so the CUDA backend" \
       "would not be built (install the CUDA toolkit, or set FERRY_TEST_NO_CUDA=1)" >&2
  exit 1
fi
if ! command -v clang >/dev/null; then
  echo "run-tests: clang not found (tools/install-deps.sh installs it)" >&2
  exit 1
fi

jobs="$(nproc)"
stages="${FERRY_TEST_STAGES:-release asan clang-asan fuzz tsan bench}"
start=$SECONDS
declare -A took

require_plugin() { # preset, backend
  if [ ! -f "build/$1/lib/ferry/libferry-backend-$2.so" ]; then
    echo "run-tests: $1: the $2 backend was not built (see the configure output)" >&2
    exit 1
  fi
}

build() { # preset
  echo "=== $1: configure and build ==="
  # The sanitizer trees compile the CUDA plugin for one architecture: its code is checked
  # by nvcc there, its tests skip without a GPU, and every family .cu costs minutes per
  # architecture on two cores. The release tree builds the shipped default set.
  if [ "$1" != release ] && [ -z "${CUDAARCHS:-}" ]; then
    CUDAARCHS=80-real cmake --preset "$1"
  else
    cmake --preset "$1"
  fi
  cmake --build --preset "$1" -j"$jobs"
}

for stage in $stages; do
  t0=$SECONDS
  case "$stage" in
  release | asan | clang-asan)
    build "$stage"
    require_plugin "$stage" opencl
    [ "${FERRY_TEST_NO_CUDA:-0}" = 1 ] || require_plugin "$stage" cuda
    if [ "$stage" = clang-asan ] && [ ! -x build/clang-asan/tests/fuzz/fuzz_device ]; then
      echo "run-tests: clang-asan: the fuzz harnesses were not built (see the configure output)" >&2
      exit 1
    fi
    echo "=== $stage: ctest ==="
    ctest --preset "$stage" -j"$jobs"
    ;;
  tsan)
    build tsan
    # The preset runs the cpu backend on one thread (FERRY_NUM_THREADS=1): libgomp is not
    # instrumented, so TSan cannot see the barrier that ends an OpenMP region and reports
    # the caller's later read of its output as a race.
    echo "=== tsan: the tests that start threads ==="
    ctest --preset tsan -j"$jobs"
    ;;
  fuzz)
    build fuzz
    echo "=== fuzz: smoke runs of every harness and the replay ==="
    ctest --preset fuzz -j"$jobs"
    ;;
  bench)
    [ -x build/release/bin/bench_core ] || build release
    echo "=== bench smoke runs (release) ==="
    build/release/bin/bench_core --quick
    build/release/bin/bench_ops --quick
    build/release/bin/bench_opencl --quick
    ;;
  *)
    echo "run-tests: unknown stage '$stage'" >&2
    exit 2
    ;;
  esac
  took[$stage]=$((SECONDS - t0))
done

echo "=== run-tests: all stages passed ==="
for stage in $stages; do
  printf '  %-11s %4d s\n' "$stage" "${took[$stage]}"
done
printf '  %-11s %4d s\n' total $((SECONDS - start))

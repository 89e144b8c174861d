#!/usr/bin/env bash
# Fuzzes ferry by hand, for longer than CI's smoke runs: builds the `fuzz` preset (clang,
# libFuzzer, ASan+UBSan) and runs each named harness (default: all) for SECONDS, one at a
# time. Corpora grow in build/fuzz/tests/fuzz/work/<name>/corpus across runs; a failing
# input is left in build/fuzz/tests/fuzz/work/<name>/ and the script exits non-zero.
#   tools/fuzz.sh [-t SECONDS] [-j JOBS] [-k] [device|dlpack|from_blob|views ...]
# -k keeps fuzzing past a failure (libFuzzer's fork mode) to collect all of them.
# Save a minimal reproducer of a finding under tests/fuzz/regressions/<name>/ (libFuzzer's
# -minimize_crash=1 shrinks it), so every build replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600 jobs=1
while getopts "t:j:k" opt; do
  case "$opt" in
  t) seconds=$OPTARG ;;
  j) jobs=$OPTARG ;;
  k) export FUZZ_KEEP_GOING=1 ;;
  *) echo "usage: $0 [-t SECONDS] [-j JOBS] [-k] [HARNESS ...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(device dlpack from_blob views)

export PATH="$PATH:/usr/local/cuda/bin"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$jobs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:intercept_tls_get_addr=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export FERRY_TEST_BUILD_DIR="$PWD/build/fuzz"
export FERRY_OPENCL_CACHE_DIR="$PWD/build/fuzz/tests/opencl-cache"
status=0
for h in "${harnesses[@]}"; do
  echo "=== fuzz_$h for ${seconds} s ==="
  tests/fuzz/run_fuzz.sh fuzz "build/fuzz/tests/fuzz/fuzz_$h" tests/fuzz "$h" "$seconds" \
    build/fuzz/tests/fuzz/work || status=1
  grep -h "stat::number_of_executed_units\|stat::new_units_added" \
    "build/fuzz/tests/fuzz/work/$h/log.txt" || true
done
exit $status

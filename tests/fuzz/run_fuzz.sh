#!/usr/bin/env bash
# Runs one libFuzzer harness.
#   run_fuzz.sh replay BINARY SRC_DIR NAME
#     runs every input of SRC_DIR/corpus/NAME and SRC_DIR/regressions/NAME once
#   run_fuzz.sh fuzz BINARY SRC_DIR NAME SECONDS WORK_DIR
#     fuzzes for SECONDS from the seed corpus; new inputs go to WORK_DIR/NAME/corpus, a
#     failing input to WORK_DIR/NAME/, and the run fails with its path. With
#     FUZZ_KEEP_GOING=1 it forks a worker per batch and carries on past failures, so a
#     long run collects every distinct one.
set -euo pipefail
mode=$1 bin=$2 src=$3 name=$4
dict=()
[ -f "$src/corpus/$name.dict" ] && dict=(-dict="$src/corpus/$name.dict")
# LeakSanitizer after every input, a 4 GiB budget (ASan and PoCL need more than the
# 2 GiB default), and no input may take more than 30 s.
opts=(-rss_limit_mb=4096 -timeout=30 -detect_leaks=1 -print_final_stats=1)

case "$mode" in
replay)
  inputs=()
  for d in "$src/corpus/$name" "$src/regressions/$name"; do
    [ -d "$d" ] || continue
    while IFS= read -r -d '' f; do inputs+=("$f"); done < <(find "$d" -type f ! -name README.md -print0 | sort -z)
  done
  if [ ${#inputs[@]} -eq 0 ]; then
    echo "run_fuzz: no inputs for $name under $src/corpus or $src/regressions" >&2
    exit 1
  fi
  echo "run_fuzz: replaying ${#inputs[@]} inputs through $name"
  # Given files rather than folders, libFuzzer runs each once and changes nothing.
  exec "$bin" "${opts[@]}" "${inputs[@]}"
  ;;
fuzz)
  seconds=$5 work=$6/$name
  mkdir -p "$work/corpus"
  # The seeds join what earlier runs in this build tree found.
  cp -n "$src/corpus/$name"/* "$work/corpus/" 2>/dev/null || true
  keep=()
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  set +e
  "$bin" "${opts[@]}" "${dict[@]}" "${keep[@]}" -max_total_time="$seconds" -artifact_prefix="$work/" \
    "$work/corpus" 2>&1 | tee "$work/log.txt" | grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)'
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    echo "run_fuzz: $name failed (exit $rc); reproducer(s):" >&2
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
      [ -e "$f" ] && echo "  $f" >&2
    done
    echo "run_fuzz: replay one with: $bin FILE" >&2
    exit 1
  fi
  ;;
*)
  echo "run_fuzz: unknown mode $mode" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# Runs one failure case of test_dist_fail under mpirun and checks that it ends within
# LIMIT seconds with every EXPECTED text in its output (a hang or a silent failure fails).
# usage: run_fail.sh LIMIT 'MPIRUN ARGS...' EXE MODE EXPECTED...
# An EXPECTED of the form 'a||b' is met by either text.
set -u
limit=$1 mpirun=$2 exe=$3 mode=$4
shift 4
start=$(date +%s)
# The outer timeout only stops a broken build; the case itself must end well before.
# -k: an mpirun hung in its own shutdown ignores SIGTERM (Open MPI 4.1's PMIx finalize).
out=$(timeout -k 5 $((limit * 3)) $mpirun "$exe" "$mode" 2>&1)
rc=$?
elapsed=$(( $(date +%s) - start ))
echo "$out"
echo "run_fail: '$mode' exited with $rc after ${elapsed}s (limit ${limit}s)"
fail=0
if [ "$rc" -eq 124 ] || [ "$elapsed" -gt "$limit" ]; then
  echo "run_fail: FAILED: '$mode' took ${elapsed}s, more than ${limit}s"
  fail=1
fi
for want in "$@"; do
  met=0
  IFS=$'\n' read -r -d '' -a alts < <(sed 's/||/\n/g' <<<"$want"; printf '\0')
  for alt in "${alts[@]}"; do
    [ -n "$alt" ] && grep -qF -- "$alt" <<<"$out" && met=1
  done
  if [ "$met" -eq 0 ]; then
    echo "run_fail: FAILED: the output lacks: $want"
    fail=1
  fi
done
[ "$fail" -eq 0 ] && echo "run_fail: '$mode' passed"
exit "$fail"

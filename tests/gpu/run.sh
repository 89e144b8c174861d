#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build ferry with the CUDA backend, run every CUDA test
# (the plugin's own, core.async's ordering tests and the conformance suite on cuda:0)
# and the CUDA benchmarks, and print the figures. Fails when no CUDA device is usable.
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

# NCCL: the several-process suite with backend nccl on cuda:0 (the other devices through
# MPI), then the data-parallel MLP on cuda:0. NCCL refuses two ranks on one GPU
# ("Duplicate GPU detected"), so one GPU runs ranks=1 (collectives on a world of one, the
# tests that need a peer skip, saying so); two or more GPUs run 2 ranks, one GPU each.
if [ -x "$build/tests/test_dist_collectives" ] && command -v mpirun >/dev/null; then
  "$build/bin/ferry" dist
  if ! "$build/bin/ferry" dist | grep -Eq "^nccl +usable"; then
    echo "tests/gpu/run.sh: the nccl communicator is not usable (see above)" >&2
    exit 1
  fi
  ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
  np=1
  if [ "${ngpu:-0}" -ge 2 ]; then np=2; fi
  echo "tests/gpu/run.sh: NCCL suite on $np rank(s) ($ngpu GPU(s))"
  # With 2 ranks each sees only its own GPU, as cuda:0; one rank keeps the caller's.
  wrap=()
  if [ "$np" -ge 2 ]; then
    wrap=(bash -c 'export CUDA_VISIBLE_DEVICES=${OMPI_COMM_WORLD_LOCAL_RANK:-0}; exec "$@"' rank)
  fi
  FERRY_DIST_BACKEND=nccl FERRY_DIST_TIMEOUT=120 FERRY_DIST_CHUNK_BYTES=65536 \
    FERRY_TEST_BUILD_DIR="$build" OMP_NUM_THREADS=1 \
    mpirun --allow-run-as-root --oversubscribe -np "$np" \
    "${wrap[@]}" "$build/tests/test_dist_collectives"
  FERRY_DIST_TIMEOUT=120 mpirun --allow-run-as-root --oversubscribe -np "$np" \
    "${wrap[@]}" "$build/bin/ferry-train-mlp-dist" --device cuda:0
else
  echo "tests/gpu/run.sh: no MPI (mpirun, libopenmpi-dev): the NCCL suite is not run" >&2
  exit 1
fi

/* all_reduce SUM of float32 across the ranks of `mpirun -np 2 bench_dist`: ferry on cpu
 * tensors against MPI_Allreduce called directly on the same bytes in the same run, once
 * in one call and once in calls of ferry's chunk (the three alternate call by call; each
 * ratio is the median of the per-round ratios). The first says whether chunking pays,
 * the second what ferry itself adds. Then
 * sim:0 and opencl:0 tensors (staged through host memory) against the cpu figure
 * (`--staged [MiB] [rounds]` runs only that, interleaved). Times are medians; bus
 * bandwidth is nccl-tests' algbw * 2 (n - 1) / n. On a machine shared with other work,
 * Open MPI's busy polling costs the most: OMPI_MCA_mpi_yield_when_idle=1 halved the cpu
 * all_reduce of 64 MiB at a load of 14 on 2 cores (3 runs each); the bench leaves MPI's
 * defaults alone, so its figures are those a user gets. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/distributed.h>

#include "bench_util.h"

static int iters_for(size_t bytes)
{
    size_t it = ((size_t)256 << 20) / (bytes ? bytes : 1);
    return it < 5 ? 5 : it > 200 ? 200 : (int)it;
}

/* Bytes per MPI_Allreduce of the chunked reference: ferry's own chunk (its default,
 * DIST_CHUNK in core/dist.c, or FERRY_DIST_CHUNK_BYTES as ferry_dist_init reads it). */
static size_t ref_chunk(void)
{
    const char *c = getenv("FERRY_DIST_CHUNK_BYTES");
    size_t v = c && *c ? strtoull(c, NULL, 10) : 0;
    return v >= 64 ? v : (size_t)2 << 20;
}

/* MPI_Allreduce on buf in calls of at most `chunk` bytes (0: one call), as ferry makes
 * them: the reference that differs from ferry by ferry's own overhead alone. */
static void mpi_reduce(float *buf, size_t n, size_t chunk)
{
    size_t c = chunk ? chunk / sizeof(float) : n;
    for (size_t off = 0; off < n; off += c) {
        size_t k = n - off < c ? n - off : c;
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

/* Median seconds of one all_reduce on t (or, t NULL, of MPI_Allreduce on buf in calls
 * of `chunk` bytes, 0: one call). */
static double time_one(ferry_tensor *t, float *buf, size_t n, int iters, size_t chunk)
{
    double *v = malloc((size_t)iters * sizeof *v);
    for (int i = -1; i < iters; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = bench_now_ns();
        if (t) {
            if (ferry_all_reduce(t, FERRY_DIST_SUM, NULL) != FERRY_OK) {
                fprintf(stderr, "ferry_all_reduce: %s\n", ferry_last_error());
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
        } else {
            mpi_reduce(buf, n, chunk);
        }
        double dt = (bench_now_ns() - t0) * 1e-9;
        /* The slowest rank's time is the collective's. */
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (i >= 0)
            v[i] = dt;
    }
    double m = bench_median(v, iters);
    free(v);
    return m;
}

/* --staged [MiB] [reps]: only the staged devices against cpu tensors, interleaved (cpu,
 * sim:0, opencl:0, cpu, ...), so load from other processes hits every kind alike; the
 * ratio is the median of the per-round ratios. */
static int staged_only(size_t bytes, int reps, int rank)
{
    size_t n = bytes / 4;
    int64_t shape[1] = {(int64_t)n};
    const char *devs[] = {"cpu", "sim:0", "opencl:0"};
    ferry_tensor *t[3];
    for (int d = 0; d < 3; d++)
        if (!(t[d] = ferry_ones(FERRY_FLOAT32, 1, shape, devs[d]))) {
            fprintf(stderr, "%s: %s\n", devs[d], ferry_last_error());
            return 1;
        }
    double *ratio[2] = {malloc((size_t)reps * sizeof(double)),
                        malloc((size_t)reps * sizeof(double))};
    double *tcs = malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        double tc = time_one(t[0], NULL, n, 3, 0);
        tcs[r] = tc;
        for (int d = 1; d < 3; d++)
            ratio[d - 1][r] = tc / time_one(t[d], NULL, n, 3, 0);
    }
    double tc = bench_median(tcs, reps);
    for (int d = 1; d < 3; d++) {
        double m = bench_median(ratio[d - 1], reps);
        if (rank == 0)
            printf("%-9s %zu bytes vs cpu (%.1f us): ratio %.3f (median of %d rounds)\n",
                   devs[d], bytes, tc * 1e6, m, reps);
    }
    for (int d = 0; d < 3; d++)
        ferry_tensor_release(t[d]);
    free(ratio[0]);
    free(ratio[1]);
    free(tcs);
    return 0;
}

/* ferry on t, MPI_Allreduce on the same bytes in one call, and MPI_Allreduce in calls of
 * ferry's chunk, alternating call by call so load from other processes hits all alike:
 * median times, and the medians of the per-round ratios (MPI time / ferry time). */
static void time_pair(ferry_tensor *t, size_t n, int iters, double *tf, double *tm,
                      double *ratio, double *tk, double *kratio)
{
    double *v = malloc(5 * (size_t)iters * sizeof *v);
    double *vf = v, *vm = v + iters, *vr = v + 2 * iters, *vk = v + 3 * iters,
           *vkr = v + 4 * iters;
    float *buf = ferry_tensor_host_data(t);
    size_t chunk = ref_chunk();
    for (int i = -1; i < iters; i++) {
        double f = time_one(t, NULL, n, 1, 0), m = time_one(NULL, buf, n, 1, 0),
               k = time_one(NULL, buf, n, 1, chunk);
        if (i < 0)
            continue;
        vf[i] = f;
        vm[i] = m;
        vr[i] = m / f;
        vk[i] = k;
        vkr[i] = k / f;
    }
    *tf = bench_median(vf, iters);
    *tm = bench_median(vm, iters);
    *ratio = bench_median(vr, iters);
    *tk = bench_median(vk, iters);
    *kratio = bench_median(vkr, iters);
    free(v);
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (ferry_dist_init("mpi") != FERRY_OK) {
        fprintf(stderr, "ferry_dist_init: %s\n", ferry_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rank = ferry_dist_rank(), size = ferry_dist_world_size();
    if (argc > 1 && strcmp(argv[1], "--staged") == 0) {
        size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
        int reps = argc > 3 ? atoi(argv[3]) : 5;
        int rc = staged_only((mib ? mib : 64) << 20, reps > 0 ? reps : 5, rank);
        ferry_dist_finalize();
        MPI_Finalize();
        return rc;
    }
    double bus = 2.0 * (size - 1) / size;
    /* --upto MiB: the table stops there (and the staged line below keeps 64 MiB). */
    size_t max = quick ? (size_t)1 << 20 : (size_t)256 << 20;
    if (argc > 2 && strcmp(argv[1], "--upto") == 0 && strtoul(argv[2], NULL, 10) > 0)
        max = (size_t)strtoul(argv[2], NULL, 10) << 20;
    if (rank == 0)
        printf("all_reduce SUM float32, %d ranks (median; busbw = algbw * %.2f; MPI: one "
               "MPI_Allreduce, MPI/k: calls of %zu bytes as ferry makes them)\n"
               "%10s %12s %12s %8s %12s %8s %12s %10s\n",
               size, bus, ref_chunk(), "bytes", "ferry us", "MPI us", "ratio", "MPI/k us",
               "ratio/k", "busbw GB/s", "extra us");
    for (size_t bytes = 4096; bytes <= max; bytes *= 4) {
        size_t n = bytes / 4;
        int64_t shape[1] = {(int64_t)n};
        ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, shape, "cpu");
        int it = quick ? 3 : iters_for(bytes);
        double tf, tm, ratio, tk, kratio;
        time_pair(t, n, it, &tf, &tm, &ratio, &tk, &kratio);
        if (rank == 0)
            printf("%10zu %12.1f %12.1f %8.3f %12.1f %8.3f %12.3f %10.1f\n", bytes, tf * 1e6,
                   tm * 1e6, ratio, tk * 1e6, kratio, bytes / tf * bus * 1e-9, (tf - tm) * 1e6);
        ferry_tensor_release(t);
    }
    /* Staged devices against cpu tensors at one size. */
    size_t bytes = quick ? (size_t)1 << 20 : (size_t)64 << 20, n = bytes / 4;
    int64_t shape[1] = {(int64_t)n};
    ferry_tensor *c = ferry_ones(FERRY_FLOAT32, 1, shape, "cpu");
    double tc = time_one(c, NULL, n, quick ? 3 : 7, 0);
    ferry_tensor_release(c);
    const char *devs[] = {"sim:0", "opencl:0"};
    for (int d = 0; d < 2; d++) {
        ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, shape, devs[d]);
        if (!t) {
            if (rank == 0)
                printf("%s: skipped: %s\n", devs[d], ferry_last_error());
            continue;
        }
        double td = time_one(t, NULL, n, quick ? 3 : 7, 0);
        if (rank == 0)
            printf("%-9s %zu bytes: %.1f us vs cpu %.1f us: ratio %.3f, busbw %.3f GB/s\n",
                   devs[d], bytes, td * 1e6, tc * 1e6, tc / td, bytes / td * bus * 1e-9);
        ferry_tensor_release(t);
    }
    ferry_dist_finalize();
    MPI_Finalize();
    return 0;
}

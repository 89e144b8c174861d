/* The failures of several processes, one per run (tests/dist/run_fail.sh checks what the
 * ranks print and how long it took):
 *   early_exit  the last rank leaves without ferry_dist_finalize; the others, in an
 *               all_reduce, fail naming it long before FERRY_DIST_TIMEOUT.
 *   timeout     the last rank stays busy outside any collective; the others fail after
 *               FERRY_DIST_TIMEOUT naming it (and which ranks wait with them).
 *   mismatch    under FERRY_DIST_DEBUG=1, ranks pass tensors of different shapes or
 *               dtypes; every rank gets the same error naming both ranks' tensors.
 *   map_fault   under FERRY_FAULT_INJECT=host_map=2 (or host_unmap=2), the second
 *               chunk's mapping (or unmapping) of an all_reduce on a mapped device
 *               (opencl:0 on PoCL) fails alike on every rank: each gets the error, and
 *               the next all_reduce works. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ferry/distributed.h>

static int check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "rank %d: FAILED: %s (last error: %s)\n", ferry_dist_rank(), what,
                ferry_last_error());
        return 1;
    }
    return 0;
}

static ferry_tensor *vec(ferry_dtype dt, int ndim, const int64_t *shape)
{
    return ferry_ones(dt, ndim, shape, getenv("FERRY_TEST_DEVICE"));
}

static int mismatch(int rank)
{
    int bad = 0;
    int64_t s23[2] = {2, 3}, s4[1] = {4};
    ferry_tensor *t = rank == 1 ? vec(FERRY_FLOAT32, 1, s4) : vec(FERRY_FLOAT32, 2, s23);
    ferry_status st = ferry_all_reduce(t, FERRY_DIST_SUM, NULL);
    bad |= check(st == FERRY_ERR_INVALID_ARGUMENT, "shape mismatch refused");
    bad |= check(strstr(ferry_last_error(), "ferry_all_reduce: ranks passed tensors of "
                                            "different shapes (FERRY_DIST_DEBUG)") != NULL,
                 "shape message");
    bad |= check(strstr(ferry_last_error(), "rank 0: all_reduce of float32 (2, 3)") != NULL &&
                     strstr(ferry_last_error(), "rank 1: all_reduce of float32 (4)") != NULL,
                 "both shapes named");
    ferry_tensor_release(t);

    t = vec(rank == 1 ? FERRY_FLOAT64 : FERRY_FLOAT32, 2, s23);
    st = ferry_broadcast(t, 0, NULL);
    bad |= check(st == FERRY_ERR_INVALID_ARGUMENT &&
                     strstr(ferry_last_error(), "tensors of different dtypes") &&
                     strstr(ferry_last_error(), "rank 1: broadcast of float64 (2, 3)"),
                 "dtype mismatch named");
    ferry_tensor_release(t);

    /* Point to point: the receiver compares the sender's description with its tensor. */
    if (rank < 2) {
        t = rank == 0 ? vec(FERRY_INT32, 2, s23) : vec(FERRY_INT32, 1, s4);
        st = rank == 0 ? ferry_send(t, 1, 3) : ferry_recv(t, 0, 3);
        if (rank == 0)
            bad |= check(st == FERRY_OK, "the send itself completes");
        else
            bad |= check(st == FERRY_ERR_INVALID_ARGUMENT &&
                             strstr(ferry_last_error(), "rank 0: send of int32 (2, 3)") &&
                             strstr(ferry_last_error(), "rank 1: send of int32 (4)"),
                         "recv names both tensors");
        ferry_tensor_release(t);
    }
    /* From any source: the sender is named with its tensor. */
    if (rank < 2) {
        t = rank == 0 ? vec(FERRY_INT32, 2, s23) : vec(FERRY_INT32, 1, s4);
        int src = -1;
        st = rank == 1 ? ferry_send(t, 0, 4) : ferry_recv_any(t, 4, &src);
        if (rank == 1)
            bad |= check(st == FERRY_OK, "the send to any-source completes");
        else
            bad |= check(st == FERRY_ERR_INVALID_ARGUMENT &&
                             strstr(ferry_last_error(), "ferry_recv_any: ranks passed") &&
                             strstr(ferry_last_error(), "rank 1: send of int32 (4)") &&
                             strstr(ferry_last_error(), "rank 0: send of int32 (2, 3)"),
                         "recv_any names both tensors");
        ferry_tensor_release(t);
    }
    /* Uneven all_to_all: rank 1 expects two rows from rank 0, which sends one; every
     * rank refuses alike. */
    int W = ferry_dist_world_size();
    int64_t in_rows[16], out_rows[16], sin[2] = {W, 3}, sout[2] = {W + 1, 3};
    for (int b = 0; b < W; b++)
        in_rows[b] = out_rows[b] = 1;
    if (rank == 1)
        out_rows[0] = 2;
    ferry_tensor *in = vec(FERRY_FLOAT32, 2, sin);
    ferry_tensor *out = vec(FERRY_FLOAT32, 2, rank == 1 ? sout : sin);
    st = ferry_all_to_all_v(out, out_rows, in, in_rows, NULL);
    bad |= check(st == FERRY_ERR_INVALID_ARGUMENT &&
                     strstr(ferry_last_error(), "ferry_all_to_all_v: rank 0 sends 1 rows to "
                                                "rank 1, which expects 2 (FERRY_DIST_DEBUG)"),
                 "uneven split mismatch named");
    ferry_tensor_release(in);
    ferry_tensor_release(out);
    /* After refusals the ranks still agree: a matching collective works. */
    t = vec(FERRY_FLOAT32, 2, s23);
    bad |= check(ferry_all_reduce(t, FERRY_DIST_SUM, NULL) == FERRY_OK, "matching all_reduce");
    float got[6];
    ferry_tensor_copy_to_host(t, got, sizeof got);
    bad |= check(got[5] == (float)ferry_dist_world_size(), "sum of ones");
    ferry_tensor_release(t);
    if (!bad)
        printf("rank %d: mismatch checks passed\n", rank);
    return bad;
}

static int map_fault(int rank)
{
    const char *dev = "opencl:0";
    if (!ferry_is_available("opencl")) {
        printf("rank %d: map_fault skipped: opencl: %s\n", rank, ferry_backend_status("opencl"));
        return 0;
    }
    int bad = 0, W = ferry_dist_world_size();
    /* FERRY_DIST_CHUNK_BYTES=1024: 256 floats a chunk, so 1000 take four. */
    int64_t n = 1000;
    ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &n, dev);
    bad |= check(t != NULL, "opencl tensor");
    if (!t)
        return bad;
    const char *inject = getenv("FERRY_FAULT_INJECT");
    bool unmap = inject && strstr(inject, "host_unmap");
    ferry_status st = ferry_all_reduce(t, FERRY_DIST_SUM, NULL);
    bad |= check(st == FERRY_ERR_BACKEND, "the failed mapping's status");
    char want[128];
    snprintf(want, sizeof want, "opencl:0: injected failure of %s call #2 (FERRY_FAULT_INJECT)",
             unmap ? "host_unmap" : "host_map");
    bad |= check(strstr(ferry_last_error(), want) != NULL, "the failed mapping's message");
    /* The chunks before the failure (the first; with unmap the second too) were reduced,
     * the rest not: the next call, with no fault left, reduces everything once more. */
    bad |= check(ferry_all_reduce(t, FERRY_DIST_SUM, NULL) == FERRY_OK, "the next all_reduce");
    float got[1000];
    int done = unmap ? 512 : 256;
    bad |= check(ferry_tensor_copy_to_host(t, got, sizeof got) == FERRY_OK, "read back");
    bad |= check(got[0] == (float)(W * W) && got[done - 1] == (float)(W * W),
                 "reduced chunks twice");
    bad |= check(got[done] == (float)W && got[999] == (float)W, "the rest once");
    ferry_tensor_release(t);
    if (!bad)
        printf("rank %d: map_fault checks passed\n", rank);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_dist_fail early_exit|timeout|mismatch|map_fault\n");
        return 2;
    }
    if (ferry_dist_init("mpi") != FERRY_OK) {
        fprintf(stderr, "ferry_dist_init: %s\n", ferry_last_error());
        return 1;
    }
    int rank = ferry_dist_rank(), last = ferry_dist_world_size() - 1;
    const char *mode = argv[1];
    if (strcmp(mode, "mismatch") == 0 || strcmp(mode, "map_fault") == 0) {
        int bad = mode[1] == 'i' ? mismatch(rank) : map_fault(rank);
        ferry_dist_finalize();
        return bad;
    }
    if (ferry_dist_barrier() != FERRY_OK)
        return 1;
    if (rank == last) {
        if (strcmp(mode, "timeout") == 0)
            sleep(60); /* mpirun ends it once another rank has reported */
        printf("rank %d: leaving without ferry_dist_finalize\n", rank);
        fflush(stdout);
        return 0;
    }
    int64_t n = 1000;
    ferry_tensor *t = vec(FERRY_FLOAT32, 1, &n);
    ferry_status st = ferry_all_reduce(t, FERRY_DIST_SUM, NULL);
    /* The call fails at once when the goodbye came first; otherwise the watchdog ends the
     * process with its own message. Either way the rank is named. */
    fprintf(stderr, "rank %d: ferry_all_reduce returned %s: %s\n", rank, ferry_status_name(st),
            ferry_last_error());
    ferry_tensor_release(t);
    return 3;
}

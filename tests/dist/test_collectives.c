/* Every collective x dtype x device under mpirun (2 and 3 ranks): each rank computes the
 * exact expected values itself; groups, send/recv ordering, ordering against queued device
 * work, and the argument errors. FERRY_DIST_CHUNK_BYTES makes small tensors take many
 * chunks, so the staged pipeline and the block loops run on every device.
 * FERRY_DIST_BACKEND (default mpi) picks the backend: tests/gpu/run.sh runs this suite
 * with nccl on cuda:0, on one rank with one GPU (the tests that need a peer skip). */
#include "dist_util.h"

static int R, W;

/* Element i of rank r's tensor: small integers, so every sum and product of up to 3
 * ranks is exact in every dtype (5 * 5 * 5 fits int8). */
static double val(ferry_dtype dt, int r, size_t i)
{
    if (dt == FERRY_BOOL)
        return (i + (size_t)r) % 3 == 0;
    return (double)((i + 2 * (size_t)r) % 5 + 1);
}

static ferry_tensor *rank_tensor(ferry_dtype dt, int r, size_t n, const char *device)
{
    double *v = malloc(n * sizeof *v + 8);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = val(dt, r, i);
    ferry_tensor *t = make(dt, v, n, device);
    free(v);
    return t;
}

static double avg_of(ferry_dtype dt, double sum, int w)
{
    switch (dt) {
    case FERRY_FLOAT64: return sum / w;
    case FERRY_FLOAT32: return (float)sum / (float)w;
    case FERRY_FLOAT16:
    case FERRY_BFLOAT16: return round_to(dt, (float)sum / (float)w);
    default: return (double)((int64_t)sum / w);
    }
}

/* op over the values of element i of every rank in ranks (n of them). */
static double reduced(ferry_dtype dt, ferry_dist_op op, const int *ranks, int n, size_t i)
{
    double acc = val(dt, ranks[0], i);
    double sum = acc;
    for (int k = 1; k < n; k++) {
        double x = val(dt, ranks[k], i);
        sum += x;
        if (dt == FERRY_BOOL) {
            acc = op == FERRY_DIST_SUM || op == FERRY_DIST_MAX ? (acc || x) : (acc && x);
            continue;
        }
        switch (op) {
        case FERRY_DIST_SUM: acc += x; break;
        case FERRY_DIST_PRODUCT: acc *= x; break;
        case FERRY_DIST_MIN: acc = x < acc ? x : acc; break;
        case FERRY_DIST_MAX: acc = x > acc ? x : acc; break;
        case FERRY_DIST_AVG: break;
        }
    }
    if (op == FERRY_DIST_AVG)
        return avg_of(dt, sum, n);
    return round_to(dt, acc);
}

static int world_ranks[16];

/* Point to point and groups of two need another rank (the GPU suite may run one). */
#define require_peers()                                                                     \
    do {                                                                                    \
        if (W < 2)                                                                          \
            skip_because("needs 2 ranks, the world has %d", W);                             \
    } while (0)

static size_t env_chunk(void)
{
    const char *c = getenv("FERRY_DIST_CHUNK_BYTES");
    return c ? (size_t)strtoull(c, NULL, 10) : ((size_t)8 << 20);
}

#define N 37

static void require_device(const char *device)
{
    char type[16];
    snprintf(type, sizeof type, "%s", device);
    char *colon = strchr(type, ':');
    if (colon)
        *colon = '\0';
    require_backend(type);
}

static void test_all_reduce_every_op_and_dtype(void **state)
{
    const char *dev = *state;
    require_device(dev);
    const ferry_dist_op ops[] = {FERRY_DIST_SUM, FERRY_DIST_AVG, FERRY_DIST_PRODUCT,
                                 FERRY_DIST_MIN, FERRY_DIST_MAX};
    double expected[N];
    for (size_t d = 0; d < N_DTYPES; d++)
        for (size_t o = 0; o < 5; o++) {
            ferry_dtype dt = all_dtypes[d];
            ferry_tensor *t = rank_tensor(dt, R, N, dev);
            if (dt == FERRY_BOOL && ops[o] == FERRY_DIST_AVG) {
                assert_status(ferry_all_reduce(t, ops[o], NULL), FERRY_ERR_UNSUPPORTED,
                              "Cannot use ReduceOp.AVG with boolean inputs");
                ferry_tensor_release(t);
                continue;
            }
            assert_ok(ferry_all_reduce(t, ops[o], NULL));
            for (size_t i = 0; i < N; i++)
                expected[i] = reduced(dt, ops[o], world_ranks, W, i);
            char what[96];
            snprintf(what, sizeof what, "all_reduce op %d of %s on %s", (int)ops[o],
                     ferry_dtype_name(dt), dev);
            assert_values(t, expected, N, what);
            ferry_tensor_release(t);
        }
}

static void test_broadcast_from_last_rank(void **state)
{
    const char *dev = *state;
    require_device(dev);
    double expected[N];
    for (size_t d = 0; d < N_DTYPES; d++) {
        ferry_dtype dt = all_dtypes[d];
        ferry_tensor *t = rank_tensor(dt, R, N, dev);
        assert_ok(ferry_broadcast(t, W - 1, NULL));
        for (size_t i = 0; i < N; i++)
            expected[i] = round_to(dt, val(dt, W - 1, i));
        assert_values(t, expected, N, ferry_dtype_name(dt));
        ferry_tensor_release(t);
    }
}

static void test_reduce_lands_on_root_only(void **state)
{
    const char *dev = *state;
    require_device(dev);
    int root = 1 % W;
    double expected[N];
    for (size_t d = 0; d < N_DTYPES; d++) {
        ferry_dtype dt = all_dtypes[d];
        for (int avg = 0; avg < 2; avg++) {
            ferry_dist_op op = avg ? FERRY_DIST_AVG : FERRY_DIST_SUM;
            if (dt == FERRY_BOOL && avg)
                continue;
            ferry_tensor *t = rank_tensor(dt, R, N, dev);
            assert_ok(ferry_reduce(t, root, op, NULL));
            for (size_t i = 0; i < N; i++)
                expected[i] = R == root ? reduced(dt, op, world_ranks, W, i)
                                        : round_to(dt, val(dt, R, i));
            assert_values(t, expected, N, ferry_dtype_name(dt));
            ferry_tensor_release(t);
        }
    }
}

static void test_all_gather_in_rank_order(void **state)
{
    const char *dev = *state;
    require_device(dev);
    double *expected = malloc(sizeof(double) * N * (size_t)W);
    assert_non_null(expected);
    for (size_t d = 0; d < N_DTYPES; d++) {
        ferry_dtype dt = all_dtypes[d];
        ferry_tensor *in = rank_tensor(dt, R, N, dev);
        int64_t shape[1] = {(int64_t)N * W};
        ferry_tensor *out = ferry_zeros(dt, 1, shape, dev);
        assert_tensor(out);
        assert_ok(ferry_all_gather(out, in, NULL));
        for (int r = 0; r < W; r++)
            for (size_t i = 0; i < N; i++)
                expected[(size_t)r * N + i] = round_to(dt, val(dt, r, i));
        assert_values(out, expected, (size_t)N * W, ferry_dtype_name(dt));
        ferry_tensor_release(in);
        ferry_tensor_release(out);
    }
    free(expected);
}

static void test_reduce_scatter_gives_each_rank_its_block(void **state)
{
    const char *dev = *state;
    require_device(dev);
    double expected[N];
    for (size_t d = 0; d < N_DTYPES; d++) {
        ferry_dtype dt = all_dtypes[d];
        for (int o = 0; o < 2; o++) {
            ferry_dist_op op = o ? FERRY_DIST_MAX : FERRY_DIST_SUM;
            ferry_tensor *in = rank_tensor(dt, R, (size_t)N * W, dev);
            int64_t shape[1] = {N};
            ferry_tensor *out = ferry_zeros(dt, 1, shape, dev);
            assert_tensor(out);
            assert_ok(ferry_reduce_scatter(out, in, op, NULL));
            for (size_t i = 0; i < N; i++)
                expected[i] = reduced(dt, op, world_ranks, W, (size_t)R * N + i);
            assert_values(out, expected, N, ferry_dtype_name(dt));
            ferry_tensor_release(in);
            ferry_tensor_release(out);
        }
    }
}

/* Element k of rank r's all_to_all input: says where it came from. */
static double code(ferry_dtype dt, int r, size_t k)
{
    if (dt == FERRY_BOOL)
        return (k + (size_t)r) % 2;
    return (double)(((size_t)r * 7 + k) % 11);
}

static void test_all_to_all_swaps_blocks(void **state)
{
    const char *dev = *state;
    require_device(dev);
    size_t n = (size_t)N * W;
    double *v = malloc(n * sizeof *v), *expected = malloc(n * sizeof *v);
    assert_non_null(v);
    assert_non_null(expected);
    for (size_t d = 0; d < N_DTYPES; d++) {
        ferry_dtype dt = all_dtypes[d];
        for (size_t k = 0; k < n; k++)
            v[k] = code(dt, R, k);
        ferry_tensor *in = make(dt, v, n, dev);
        int64_t shape[1] = {(int64_t)n};
        ferry_tensor *out = ferry_zeros(dt, 1, shape, dev);
        assert_tensor(out);
        assert_ok(ferry_all_to_all(out, in, NULL));
        for (int s = 0; s < W; s++)
            for (size_t i = 0; i < N; i++)
                expected[(size_t)s * N + i] = round_to(dt, code(dt, s, (size_t)R * N + i));
        assert_values(out, expected, n, ferry_dtype_name(dt));
        ferry_tensor_release(in);
        ferry_tensor_release(out);
    }
    free(v);
    free(expected);
}

/* Rows rank q sends to rank b in the uneven tests: none from rank 0 to itself, else
 * q + 2 b + 1, times `scale`. */
static int64_t uneven_rows(int q, int b, int64_t scale)
{
    return q == 0 && b == 0 ? 0 : ((int64_t)q + 2 * (int64_t)b + 1) * scale;
}

/* Element (row k, column c) of what rank q sends rank b. */
static double uneven_val(ferry_dtype dt, int q, int b, int64_t k, int c)
{
    if (dt == FERRY_BOOL)
        return (q + b + k + c) % 2;
    return (double)((10 * q + 3 * b + k + c) % 50);
}

/* all_to_all_v with rows x 3 tensors and blocks of their own sizes (`scale` times the
 * rows of uneven_rows); then equal input blocks with uneven output splits given. */
static void check_all_to_all_v(ferry_dtype dt, const char *dev, int64_t scale)
{
    int64_t in_splits[16], out_splits[16], nin = 0, nout = 0;
    for (int b = 0; b < W; b++) {
        nin += in_splits[b] = uneven_rows(R, b, scale);
        nout += out_splits[b] = uneven_rows(b, R, scale);
    }
    double *v = malloc((size_t)(nin + 1) * 3 * sizeof *v);
    double *expected = malloc((size_t)(nout + 1) * 3 * sizeof *expected);
    assert_non_null(v);
    assert_non_null(expected);
    size_t at = 0;
    for (int b = 0; b < W; b++)
        for (int64_t k = 0; k < in_splits[b]; k++)
            for (int c = 0; c < 3; c++)
                v[at++] = uneven_val(dt, R, b, k, c);
    ferry_tensor *flat = make(dt, v, (size_t)nin * 3, dev);
    ferry_tensor *in = ferry_reshape(flat, 2, (int64_t[]){nin, 3});
    assert_tensor(in);
    ferry_tensor *out = ferry_zeros(dt, 2, (int64_t[]){nout, 3}, dev);
    assert_tensor(out);
    assert_ok(ferry_all_to_all_v(out, out_splits, in, in_splits, NULL));
    at = 0;
    for (int q = 0; q < W; q++)
        for (int64_t k = 0; k < out_splits[q]; k++)
            for (int c = 0; c < 3; c++)
                expected[at++] = round_to(dt, uneven_val(dt, q, R, k, c));
    char what[96];
    snprintf(what, sizeof what, "all_to_all_v of %s on %s", ferry_dtype_name(dt), dev);
    assert_values(out, expected, (size_t)nout * 3, what);
    ferry_tensor_release(out);
    ferry_tensor_release(in);
    ferry_tensor_release(flat);
    free(v);
    free(expected);
}

static void test_all_to_all_v_uneven_blocks(void **state)
{
    const char *dev = *state;
    require_device(dev);
    const ferry_dtype dts[] = {FERRY_BOOL, FERRY_INT8, FERRY_FLOAT16, FERRY_FLOAT32,
                               FERRY_INT64};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        check_all_to_all_v(dts[d], dev, 1);
    /* Blocks of several chunks each: rounds of staging on the non-host devices. */
    int64_t scale = (int64_t)(env_chunk() / 8 / (size_t)W / 3) + 1;
    check_all_to_all_v(FERRY_FLOAT32, dev, scale);

    /* NULL in_splits: equal blocks of 2 rows; out_splits says the same explicitly. */
    size_t n = 2 * (size_t)W;
    double v[32], expected[32];
    for (size_t k = 0; k < n; k++)
        v[k] = 10.0 * R + (double)k;
    ferry_tensor *in = make(FERRY_INT32, v, n, dev);
    ferry_tensor *out = ferry_zeros(FERRY_INT32, 1, (int64_t[]){(int64_t)n}, dev);
    assert_tensor(out);
    int64_t two[16];
    for (int b = 0; b < W; b++)
        two[b] = 2;
    assert_ok(ferry_all_to_all_v(out, two, in, NULL, NULL));
    for (int q = 0; q < W; q++)
        for (int k = 0; k < 2; k++)
            expected[2 * q + k] = 10.0 * q + 2 * R + k;
    assert_values(out, expected, n, "all_to_all_v with equal input blocks");
    ferry_tensor_release(in);
    ferry_tensor_release(out);
}

/* Every rank but 0 sends rank 0 two messages on one tag; rank 0 takes them as they come,
 * learns each sender, and sees each sender's two in order. An empty tensor names its
 * sender too. */
static void test_recv_any_names_the_sender(void **state)
{
    const char *dev = *state;
    require_device(dev);
    require_peers();
    if (R == 0) {
        int next[16] = {0};
        for (int m = 0; m < 2 * (W - 1); m++) {
            ferry_tensor *t = ferry_zeros(FERRY_INT64, 1, (int64_t[]){N}, dev);
            assert_tensor(t);
            int src = -7;
            assert_ok(ferry_recv_any(t, 9, &src));
            assert_true(src > 0 && src < W);
            double expected[N];
            for (size_t i = 0; i < N; i++)
                expected[i] = val(FERRY_INT64, src + next[src], i);
            next[src]++;
            assert_values(t, expected, N, "recv_any");
            ferry_tensor_release(t);
        }
        for (int q = 1; q < W; q++)
            assert_int_equal(next[q], 2);
        ferry_tensor *e = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){0}, dev);
        assert_tensor(e);
        int src = -7;
        assert_ok(ferry_recv_any(e, 10, &src));
        assert_int_equal(src, W - 1);
        ferry_tensor_release(e);
    } else {
        for (int m = 0; m < 2; m++) {
            ferry_tensor *t = rank_tensor(FERRY_INT64, R + m, N, dev);
            assert_ok(ferry_send(t, 0, 9));
            ferry_tensor_release(t);
        }
        if (R == W - 1) {
            ferry_tensor *e = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){0}, dev);
            assert_tensor(e);
            assert_ok(ferry_send(e, 0, 10));
            ferry_tensor_release(e);
        }
    }
    assert_ok(ferry_dist_barrier());
}

/* A ring: rank r sends to r + 1 three messages, two on tag 5 and one on tag 6; each
 * tag's messages arrive in the order sent. Rank 0 sends first, the others receive first,
 * so blocking sends of any size complete. */
static void test_send_recv_keep_order_per_tag(void **state)
{
    const char *dev = *state;
    require_device(dev);
    require_peers();
    int next = (R + 1) % W, prev = (R + W - 1) % W;
    double expected[N];
    for (size_t d = 0; d < N_DTYPES; d++) {
        ferry_dtype dt = all_dtypes[d];
        ferry_tensor *a = rank_tensor(dt, R, N, dev), *b = rank_tensor(dt, R + 1, N, dev);
        ferry_tensor *c = rank_tensor(dt, R + 2, N, dev);
        ferry_tensor *ra = ferry_zeros(dt, 1, (int64_t[]){N}, dev);
        ferry_tensor *rb = ferry_zeros(dt, 1, (int64_t[]){N}, dev);
        ferry_tensor *rc = ferry_zeros(dt, 1, (int64_t[]){N}, dev);
        for (int turn = 0; turn < 2; turn++) {
            if ((turn == 0) == (R == 0)) {
                assert_ok(ferry_send(a, next, 5));
                assert_ok(ferry_send(b, next, 5));
                assert_ok(ferry_send(c, next, 6));
            } else {
                assert_ok(ferry_recv(ra, prev, 5));
                assert_ok(ferry_recv(rb, prev, 5));
                assert_ok(ferry_recv(rc, prev, 6));
            }
        }
        for (int m = 0; m < 3; m++) {
            for (size_t i = 0; i < N; i++)
                expected[i] = round_to(dt, val(dt, prev + m, i));
            assert_values(m == 0 ? ra : m == 1 ? rb : rc, expected, N, ferry_dtype_name(dt));
        }
        ferry_tensor *all[] = {a, b, c, ra, rb, rc};
        for (int k = 0; k < 6; k++)
            ferry_tensor_release(all[k]);
    }
}

/* Many chunks: 4.5 chunks of float32, so the reductions' three staging buffers each
 * take more than one chunk, and the rest's two. */
static void test_multi_chunk_tensors(void **state)
{
    const char *dev = *state;
    require_device(dev);
    size_t n = env_chunk() / 4 * 9 / 2 + 3;
    double *expected = malloc(n * (size_t)W * sizeof *expected);
    assert_non_null(expected);
    ferry_tensor *t = rank_tensor(FERRY_FLOAT32, R, n, dev);
    assert_ok(ferry_all_reduce(t, FERRY_DIST_SUM, NULL));
    for (size_t i = 0; i < n; i++)
        expected[i] = reduced(FERRY_FLOAT32, FERRY_DIST_SUM, world_ranks, W, i);
    assert_values(t, expected, n, "all_reduce");
    ferry_tensor_release(t);

    ferry_tensor *in = rank_tensor(FERRY_FLOAT32, R, n, dev);
    ferry_tensor *out = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){(int64_t)(n * (size_t)W)}, dev);
    assert_tensor(out);
    assert_ok(ferry_all_gather(out, in, NULL));
    for (int r = 0; r < W; r++)
        for (size_t i = 0; i < n; i++)
            expected[(size_t)r * n + i] = val(FERRY_FLOAT32, r, i);
    assert_values(out, expected, n * (size_t)W, "all_gather");
    ferry_tensor_release(in);
    ferry_tensor_release(out);

    t = rank_tensor(FERRY_FLOAT32, R, n, dev);
    assert_ok(ferry_broadcast(t, 0, NULL));
    for (size_t i = 0; i < n; i++)
        expected[i] = val(FERRY_FLOAT32, 0, i);
    assert_values(t, expected, n, "broadcast");
    ferry_tensor_release(t);
    free(expected);
}

/* Ranks whose tensors take different paths (host memory, staged through host buffers,
 * mapped in place: cpu, sim:0, opencl:0 on PoCL) make matching calls, chunk for chunk.
 * Each round shifts which rank has which device. */
static void test_mixed_paths(void **state)
{
    (void)state;
    for (size_t d = 0; d < N_DEVICES; d++)
        require_device(all_devices[d]);
    size_t n = env_chunk() / 4 * 5 / 2 + 1;
    double *expected = malloc(n * sizeof *expected);
    assert_non_null(expected);
    for (size_t k = 0; k < N_DEVICES; k++) {
        const char *dev = all_devices[((size_t)R + k) % N_DEVICES];
        ferry_tensor *t = rank_tensor(FERRY_FLOAT32, R, n, dev);
        assert_ok(ferry_all_reduce(t, FERRY_DIST_SUM, NULL));
        for (size_t i = 0; i < n; i++)
            expected[i] = reduced(FERRY_FLOAT32, FERRY_DIST_SUM, world_ranks, W, i);
        assert_values(t, expected, n, dev);
        ferry_tensor_release(t);

        int root = (int)k % W;
        t = rank_tensor(FERRY_INT32, R, n, dev);
        assert_ok(ferry_broadcast(t, root, NULL));
        for (size_t i = 0; i < n; i++)
            expected[i] = val(FERRY_INT32, root, i);
        assert_values(t, expected, n, dev);
        ferry_tensor_release(t);

        t = rank_tensor(FERRY_FLOAT16, R, n, dev);
        assert_ok(ferry_reduce(t, root, FERRY_DIST_MAX, NULL));
        for (size_t i = 0; i < n; i++)
            expected[i] = R == root ? reduced(FERRY_FLOAT16, FERRY_DIST_MAX, world_ranks, W, i)
                                    : val(FERRY_FLOAT16, R, i);
        assert_values(t, expected, n, dev);
        ferry_tensor_release(t);
    }
    free(expected);
}

/* Work queued on the device before the collective is in its input; work after sees its
 * result. */
static void test_ordering_with_device_work(void **state)
{
    const char *dev = *state;
    require_device(dev);
    ferry_tensor *base = rank_tensor(FERRY_FLOAT32, R, N, dev);
    ferry_tensor *t = ferry_add_scalar(base, 10.0);
    assert_tensor(t);
    assert_ok(ferry_all_reduce(t, FERRY_DIST_SUM, NULL));
    ferry_tensor *after = ferry_mul_scalar(t, 2.0);
    assert_tensor(after);
    double expected[N];
    for (size_t i = 0; i < N; i++)
        expected[i] = 2 * (reduced(FERRY_FLOAT32, FERRY_DIST_SUM, world_ranks, W, i) + 10.0 * W);
    assert_values(after, expected, N, "mul after all_reduce");
    ferry_tensor_release(base);
    ferry_tensor_release(t);
    ferry_tensor_release(after);
}

/* A group of the first and last rank (for 3 ranks rank 1 stays out), and one of rank 0
 * alone. Every rank makes both, as torch.distributed.new_group requires. */
static void test_groups(void **state)
{
    const char *dev = *state;
    require_device(dev);
    require_peers();
    int ends[2] = {W - 1, 0};
    ferry_dist_group *g = ferry_dist_new_group(ends, 2);
    assert_tensor(g);
    int solo_rank = 0;
    ferry_dist_group *solo = ferry_dist_new_group(&solo_rank, 1);
    assert_tensor(solo);
    assert_int_equal(ferry_dist_group_size(g), 2);
    bool member = R == 0 || R == W - 1;
    assert_int_equal(ferry_dist_group_rank(g), member ? (R == 0 ? 0 : 1) : -1);
    ferry_tensor *t = rank_tensor(FERRY_INT32, R, N, dev);
    if (member) {
        int sorted[2] = {0, W - 1};
        double expected[N];
        assert_ok(ferry_all_reduce(t, FERRY_DIST_SUM, g));
        for (size_t i = 0; i < N; i++)
            expected[i] = reduced(FERRY_INT32, FERRY_DIST_SUM, sorted, 2, i);
        assert_values(t, expected, N, "group all_reduce");
        /* Roots are world ranks. */
        ferry_tensor *b = rank_tensor(FERRY_FLOAT16, R, N, dev);
        assert_ok(ferry_broadcast(b, W - 1, g));
        for (size_t i = 0; i < N; i++)
            expected[i] = val(FERRY_FLOAT16, W - 1, i);
        assert_values(b, expected, N, "group broadcast");
        if (W > 2)
            assert_status(ferry_broadcast(b, 1, g), FERRY_ERR_INVALID_ARGUMENT,
                          "root 1 is not a member of the group");
        ferry_tensor_release(b);
        assert_ok(ferry_dist_group_barrier(g));
    } else {
        assert_status(ferry_all_reduce(t, FERRY_DIST_SUM, g), FERRY_ERR_INVALID_ARGUMENT,
                      "rank 1 is not a member of the group");
    }
    if (R == 0) {
        double expected[N];
        ferry_tensor *s = rank_tensor(FERRY_FLOAT64, R, N, dev);
        assert_ok(ferry_all_reduce(s, FERRY_DIST_PRODUCT, solo));
        for (size_t i = 0; i < N; i++)
            expected[i] = val(FERRY_FLOAT64, 0, i);
        assert_values(s, expected, N, "a group of one");
        ferry_tensor_release(s);
    }
    ferry_tensor_release(t);
    ferry_dist_group_release(g);
    ferry_dist_group_release(solo);
    assert_ok(ferry_dist_barrier());
}

static void test_new_group_rejects_bad_lists(void **state)
{
    (void)state;
    require_peers(); /* {0, 0} is too long a list for a world of one */
    int dup[2] = {0, 0}, out_of_range[1] = {W};
    assert_null(ferry_dist_new_group(dup, 2));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "rank 0 is listed twice");
    assert_null(ferry_dist_new_group(out_of_range, 1));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "is not a rank of the world");
    assert_null(ferry_dist_new_group(dup, 0));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "at least one rank");
}

/* Mistakes every rank makes alike are refused before anything travels. */
static void test_argument_errors(void **state)
{
    const char *dev = *state;
    require_device(dev);
    require_peers();
    int64_t shape[2] = {2, 3};
    ferry_tensor *m = ferry_zeros(FERRY_FLOAT32, 2, shape, dev);
    assert_tensor(m);
    ferry_tensor *tr = ferry_transpose(m, 0, 1);
    assert_tensor(tr);
    assert_status(ferry_all_reduce(tr, FERRY_DIST_SUM, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "ferry_all_reduce: Tensors must be contiguous");
    assert_status(ferry_all_reduce(m, (ferry_dist_op)9, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "invalid reduction op 9");
    assert_status(ferry_broadcast(m, W, NULL), FERRY_ERR_INVALID_ARGUMENT, "Invalid rank");
    assert_status(ferry_reduce(m, -1, FERRY_DIST_SUM, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "Invalid rank -1");
    assert_status(ferry_all_gather(m, m, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "output tensor size must be equal to world_size times input tensor size");
    ferry_tensor *wrong = ferry_zeros(FERRY_INT32, 1, (int64_t[]){6 * (int64_t)W}, dev);
    assert_status(ferry_all_gather(wrong, m, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "output tensor must have the same type as input tensor (int32 and float32)");
    ferry_tensor *big = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){5}, dev);
    assert_status(ferry_reduce_scatter(m, big, FERRY_DIST_SUM, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "input tensor must be the same size as output size times world size");
    ferry_tensor *odd = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){(int64_t)W + 1}, dev);
    ferry_tensor *odd2 = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){(int64_t)W + 1}, dev);
    assert_status(ferry_all_to_all(odd2, odd, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "does not divide equally across group size");
    assert_status(ferry_send(m, R, 0), FERRY_ERR_INVALID_ARGUMENT,
                  "should not be the same as rank of the current process.");
    assert_status(ferry_recv(m, W + 3, 0), FERRY_ERR_INVALID_ARGUMENT, "Invalid source rank");
    assert_status(ferry_send(m, (R + 1) % W, -2), FERRY_ERR_INVALID_ARGUMENT, "tag -2");
    assert_status(ferry_recv_any(m, -1, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "ferry_recv_any: tag -1 is negative");
    assert_status(ferry_recv_any(tr, 0, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "ferry_recv_any: Tensors must be contiguous");
    int64_t splits[16] = {0}, ok[16] = {0};
    splits[0] = 3; /* m has 2 rows */
    ok[0] = 2;
    assert_status(ferry_all_to_all_v(odd2, NULL, odd, NULL, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "does not divide equally across group size");
    assert_status(ferry_all_to_all_v(m, ok, m, ok, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "the output and input tensors overlap in memory");
    ferry_tensor *m2 = ferry_zeros(FERRY_FLOAT32, 2, shape, dev);
    assert_status(ferry_all_to_all_v(m2, splits, m, splits, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "ferry_all_to_all_v: Split sizes doesn't match total dim 0 size "
                  "(input_split_sizes adds up to 3 rows, dim 0 has 2)");
    splits[0] = -1;
    splits[W - 1] += 3;
    assert_status(ferry_all_to_all_v(m2, NULL, m, splits, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "input_split_sizes[0] is -1, negative");
    splits[0] = INT64_MAX;
    splits[W - 1] = INT64_MAX;
    assert_status(ferry_all_to_all_v(m2, splits, m, ok, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "output_split_sizes adds up to more than");
    ferry_tensor *wide = ferry_zeros(FERRY_FLOAT32, 2, (int64_t[]){2, 4}, dev);
    assert_status(ferry_all_to_all_v(wide, NULL, m, NULL, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "agree in every dimension but 0 ((2, 4) and (2, 3))");
    ferry_tensor_release(wide);
    ferry_tensor_release(m2);
    assert_status(ferry_all_reduce(NULL, FERRY_DIST_SUM, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "ferry_all_reduce: tensor is NULL");
    if (strcmp(dev, "cpu") != 0) {
        ferry_tensor *c = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){6 * (int64_t)W}, "cpu");
        assert_status(ferry_all_gather(c, m, NULL), FERRY_ERR_WRONG_DEVICE,
                      "Expected all tensors to be on the same device");
        ferry_tensor_release(c);
    }
    ferry_tensor *same = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){6 * (int64_t)W}, dev);
    ferry_tensor *part = ferry_slice(same, 0, 0, 6, 1);
    assert_tensor(part);
    assert_status(ferry_all_gather(same, part, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "the output and input tensors overlap in memory");
    ferry_tensor_release(part);
    ferry_tensor_release(same);
    ferry_tensor *all[] = {m, tr, wrong, big, odd, odd2};
    for (int k = 0; k < 6; k++)
        ferry_tensor_release(all[k]);
    assert_ok(ferry_dist_barrier());
}

static const char *backend(void)
{
    const char *b = getenv("FERRY_DIST_BACKEND");
    return b && *b ? b : "mpi";
}

/* Rank and size agree with the launcher's; a second init is refused. */
static void test_world(void **state)
{
    (void)state;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    assert_non_null(n);
    assert_int_equal(W, atoi(n));
    assert_int_equal(R, atoi(getenv("OMPI_COMM_WORLD_RANK")));
    assert_string_equal(ferry_dist_backend(), backend());
    assert_status(ferry_dist_init(backend()), FERRY_ERR_INVALID_ARGUMENT,
                  "trying to initialize the default process group twice!");
}

#define PER_DEVICE(fn)                                                                      \
    cmocka_unit_test_prestate(fn, (void *)"cpu"), cmocka_unit_test_prestate(fn, (void *)"sim:0"), \
        cmocka_unit_test_prestate(fn, (void *)"opencl:0"),                                  \
        cmocka_unit_test_prestate(fn, (void *)"cuda:0")

int main(void)
{
    ferry_status st = ferry_dist_init(backend());
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry_dist_init failed: %s\n", ferry_last_error());
        return 1;
    }
    R = ferry_dist_rank();
    W = ferry_dist_world_size();
    for (int r = 0; r < W && r < 16; r++)
        world_ranks[r] = r;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world),
        PER_DEVICE(test_all_reduce_every_op_and_dtype),
        PER_DEVICE(test_broadcast_from_last_rank),
        PER_DEVICE(test_reduce_lands_on_root_only),
        PER_DEVICE(test_all_gather_in_rank_order),
        PER_DEVICE(test_reduce_scatter_gives_each_rank_its_block),
        PER_DEVICE(test_all_to_all_swaps_blocks),
        PER_DEVICE(test_all_to_all_v_uneven_blocks),
        PER_DEVICE(test_send_recv_keep_order_per_tag),
        PER_DEVICE(test_recv_any_names_the_sender),
        PER_DEVICE(test_multi_chunk_tensors),
        cmocka_unit_test(test_mixed_paths),
        PER_DEVICE(test_ordering_with_device_work),
        PER_DEVICE(test_groups),
        cmocka_unit_test(test_new_group_rejects_bad_lists),
        PER_DEVICE(test_argument_errors),
    };
    char name[64];
    snprintf(name, sizeof name, "dist.collectives rank %d of %d", R, W);
    int failed = _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
    /* A failed rank leaves at once: a peer waiting for it then fails naming it. */
    if (failed)
        return 1;
    ferry_dist_finalize();
    return 0;
}

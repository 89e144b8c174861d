/* OpenCL kernel behaviour the conformance suite does not reach: float sums that must be
 * exact, float16/bfloat16 rounding bit for bit as ferry/half.h, multi-pass reductions
 * (chunk boundaries, ties, NaN), matmul through CLBlast in every layout it is handed,
 * and launches the kernels refuse (more than 8 dims) still giving the right answer;
 * sums, rows and columns in both reduction shapes (FERRY_OPENCL_REDUCE=thread and wg) at
 * work-group edges, and their accuracy against double sums; dense elementwise kernels in
 * both launch shapes (FERRY_OPENCL_DENSE=run and grid) at run edges, and the random
 * samplers in both shapes against the cpu's bits. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include <ferry/half.h>

#include "test_util.h"

static ferry_tensor *from_f32(const float *v, int ndim, const int64_t *shape)
{
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, ndim, shape, "opencl:0");
    assert_tensor(t);
    return t;
}

static void test_kernels_sum_of_16m_float32_ones_is_exact(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t n = (int64_t)1 << 24;
    ferry_tensor *ones = ferry_ones(FERRY_FLOAT32, 1, &n, "opencl:0");
    assert_tensor(ones);
    ferry_tensor *s = ferry_sum(ones, 0, NULL, false);
    ferry_tensor *m = ferry_mean(ones, 0, NULL, false);
    assert_tensor(s);
    assert_tensor(m);
    float sv = 0, mv = 0;
    assert_ok(ferry_tensor_copy_to_host(s, &sv, sizeof sv));
    assert_ok(ferry_tensor_copy_to_host(m, &mv, sizeof mv));
    assert_true(sv == 16777216.0f);
    assert_true(mv == 1.0f);
    /* And one more: a sequential float32 sum would stop at 2^24. */
    int64_t n1 = n + 1;
    ferry_tensor *more = ferry_ones(FERRY_FLOAT32, 1, &n1, "opencl:0");
    ferry_tensor *h = ferry_tensor_to_dtype(more, FERRY_FLOAT16);
    assert_tensor(h);
    ferry_tensor *hs = ferry_sum(h, 0, NULL, false); /* float16 accumulates in float32 */
    assert_tensor(hs);
    uint16_t bits;
    assert_ok(ferry_tensor_copy_to_host(hs, &bits, sizeof bits));
    assert_int_equal(bits, 0x7c00); /* 16777217 overflows float16: +inf */
    ferry_tensor *list[] = {ones, s, m, more, h, hs};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        ferry_tensor_release(list[i]);
}

/* float32 values around every float16/bfloat16 rounding hazard. */
static size_t hazards(float *v, size_t cap)
{
    size_t n = 0;
    const float base[] = {0.0f,     -0.0f,        1.0f,         65504.0f,  65519.99f,
                          65520.0f, 65536.0f,     6.1035156e-5f, 6.0e-8f,  5.96e-8f,
                          2.98e-8f, 2.9802322e-8f, 1e-10f,       3.0e38f,  INFINITY,
                          1.0009765625f, 1.00048828125f, 1.000732421875f, 0.1f, 1e-40f};
    for (size_t i = 0; i < sizeof base / sizeof base[0] && n + 2 <= cap; i++) {
        v[n++] = base[i];
        v[n++] = -base[i];
    }
    /* A sweep of bit patterns, ties to even included (low 13 / 16 bits at half). */
    for (uint32_t x = 0x33000000u; x < 0x48000000u && n < cap; x += 0x000fe001u) {
        v[n++] = ferry_bits_f32(x);
        if (n < cap)
            v[n++] = ferry_bits_f32((x & ~0x1fffu) | 0x1000u);
        if (n < cap)
            v[n++] = ferry_bits_f32((x & ~0xffffu) | 0x8000u);
    }
    return n;
}

static void test_kernels_half_and_bfloat16_round_as_half_h(void **state)
{
    (void)state;
    require_backend("opencl");
    float v[4096];
    int64_t n = (int64_t)hazards(v, 4000);
    v[n++] = NAN;
    v[n++] = -NAN;
    ferry_tensor *f = from_f32(v, 1, &n);
    ferry_tensor *h = ferry_tensor_to_dtype(f, FERRY_FLOAT16);
    ferry_tensor *b = ferry_tensor_to_dtype(f, FERRY_BFLOAT16);
    assert_tensor(h);
    assert_tensor(b);
    uint16_t hb[4096], bb[4096];
    assert_ok(ferry_tensor_copy_to_host(h, hb, (size_t)n * 2));
    assert_ok(ferry_tensor_copy_to_host(b, bb, (size_t)n * 2));
    for (int64_t i = 0; i < n; i++) {
        uint16_t wh = ferry_f32_to_f16(v[i]), wb = ferry_f32_to_bf16(v[i]);
        if (isnan(v[i])) {
            /* Any quiet NaN of the same sign. */
            assert_true((hb[i] & 0x7e00) == 0x7e00 && (hb[i] & 0x8000) == (wh & 0x8000));
            assert_true((bb[i] & 0x7fc0) == 0x7fc0 && (bb[i] & 0x8000) == (wb & 0x8000));
            continue;
        }
        if (hb[i] != wh)
            fail_msg("float16 of %a (0x%08x): 0x%04x, expected 0x%04x", (double)v[i],
                     ferry_f32_bits(v[i]), hb[i], wh);
        if (bb[i] != wb)
            fail_msg("bfloat16 of %a: 0x%04x, expected 0x%04x", (double)v[i], bb[i], wb);
    }
    /* Back to float32 exactly. */
    ferry_tensor *hf = ferry_tensor_to_dtype(h, FERRY_FLOAT32);
    assert_tensor(hf);
    float back[4096];
    assert_ok(ferry_tensor_copy_to_host(hf, back, (size_t)n * 4));
    for (int64_t i = 0; i < n; i++) {
        float want = ferry_f16_to_f32(hb[i]);
        assert_true(ferry_f32_bits(back[i]) == ferry_f32_bits(want) || (isnan(back[i]) && isnan(want)));
    }
    ferry_tensor_release(hf);
    ferry_tensor_release(b);
    ferry_tensor_release(h);
    ferry_tensor_release(f);
}

static void test_kernels_long_reductions_keep_first_max_and_nan(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t rows = 3, cols = ((int64_t)1 << 21) + 7; /* several passes and a ragged chunk */
    float *v = malloc((size_t)(rows * cols) * sizeof *v);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            v[r * cols + c] = (float)((c * 7919 + r) % 1000) * 0.25f;
    /* Row 0: the maximum twice, far apart; row 1: NaN twice; row 2: maximum at the end. */
    v[0 * cols + 5] = 1000.0f;
    v[0 * cols + 1900001] = 1000.0f;
    v[1 * cols + 700000] = NAN;
    v[1 * cols + 1800000] = NAN;
    v[2 * cols + cols - 1] = 2000.0f;
    int64_t shape[2] = {rows, cols};
    ferry_tensor *t = from_f32(v, 2, shape);
    int dim1[1] = {1};
    ferry_tensor *am = ferry_argmax(t, 1, dim1, false);
    ferry_tensor *mx = ferry_max(t, 1, dim1, false);
    ferry_tensor *mn = ferry_min(t, 1, dim1, false);
    ferry_tensor *s = ferry_sum(t, 1, dim1, false);
    assert_tensor(am);
    assert_tensor(mx);
    assert_tensor(mn);
    assert_tensor(s);
    int64_t ai[3];
    float mxv[3], mnv[3], sv[3];
    assert_ok(ferry_tensor_copy_to_host(am, ai, sizeof ai));
    assert_ok(ferry_tensor_copy_to_host(mx, mxv, sizeof mxv));
    assert_ok(ferry_tensor_copy_to_host(mn, mnv, sizeof mnv));
    assert_ok(ferry_tensor_copy_to_host(s, sv, sizeof sv));
    assert_int_equal(ai[0], 5);
    assert_int_equal(ai[1], 700000);
    assert_int_equal(ai[2], cols - 1);
    assert_true(mxv[0] == 1000.0f && isnan(mxv[1]) && mxv[2] == 2000.0f);
    assert_true(mnv[0] == 0.0f && isnan(mnv[1]) && mnv[2] == 0.0f);
    for (int r = 0; r < 3; r += 2) {
        double ref = 0;
        for (int64_t c = 0; c < cols; c++)
            ref += v[r * cols + c];
        if (fabs(sv[r] - ref) > 1e-6 * ref)
            fail_msg("row %d sums to %.9g, expected %.9g", r, (double)sv[r], ref);
    }
    assert_true(isnan(sv[1]));
    /* Over the other dim too (strided reads), and everything at once. */
    int dim0[1] = {0};
    ferry_tensor *am0 = ferry_argmax(t, 1, dim0, false);
    ferry_tensor *all = ferry_argmax(t, 0, NULL, false);
    assert_tensor(am0);
    assert_tensor(all);
    int64_t a0[8], aall;
    ferry_tensor *head = ferry_slice(am0, 0, 0, 8, 1);
    assert_ok(ferry_tensor_copy_to_host(head, a0, sizeof a0));
    assert_int_equal(a0[5], 0);
    assert_ok(ferry_tensor_copy_to_host(all, &aall, sizeof aall));
    assert_int_equal(aall, 1 * cols + 700000); /* the first NaN, row-major */
    ferry_tensor *list[] = {t, am, mx, mn, s, am0, all, head};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        ferry_tensor_release(list[i]);
    free(v);
}

static void test_kernels_integer_sums_are_exact_int64(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t n = 3000001;
    int32_t *v = malloc((size_t)n * sizeof *v);
    int64_t ref = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i] = (int32_t)((i * 2654435761u) % 2000000000u) - 1000000000;
        ref += v[i];
    }
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_INT32, 1, &n, "opencl:0");
    ferry_tensor *s = ferry_sum(t, 0, NULL, false);
    assert_tensor(s);
    assert_int_equal(ferry_tensor_dtype(s), FERRY_INT64);
    int64_t got;
    assert_ok(ferry_tensor_copy_to_host(s, &got, sizeof got));
    assert_int_equal(got, ref);
    ferry_tensor_release(s);
    ferry_tensor_release(t);
    free(v);
}

/* ---- matmul -------------------------------------------------------------------------- */

static int force_clblast(void **state)
{
    (void)state;
    setenv("FERRY_OPENCL_MATMUL", "clblast", 1);
    ferry_shutdown();
    return 0;
}

static int force_kernel(void **state)
{
    (void)state;
    setenv("FERRY_OPENCL_MATMUL", "kernel", 1);
    ferry_shutdown();
    return 0;
}

static int unforce_matmul(void **state)
{
    (void)state;
    unsetenv("FERRY_OPENCL_MATMUL");
    ferry_shutdown();
    return 0;
}

/* Values that float16 and bfloat16 hold exactly, so every dtype gets the same inputs. */
static float mm_value(int64_t i, unsigned salt)
{
    return (float)((int64_t)((i * 37 + salt * 11) % 17) - 8) * 0.25f;
}

/* matmul of a and b (host-side [B?, M, K] and [B?, K, N] row-major data), through the
 * layout `how` on the device, checked against a double reference. */
enum { PLAIN, TRANS_A, TRANS_B, TRANS_BOTH, OUT_TRANSPOSED, BATCHED, BROADCAST_B, SLICED };

static void check_matmul(ferry_dtype dt, int how)
{
    const int64_t B = how == BATCHED || how == BROADCAST_B ? 3 : 1, M = 33, K = 47, N = 29;
    int64_t na = B * M * K, nb = (how == BROADCAST_B ? 1 : B) * K * N;
    float *a = malloc((size_t)na * 4), *b = malloc((size_t)nb * 4);
    for (int64_t i = 0; i < na; i++)
        a[i] = mm_value(i, 1);
    for (int64_t i = 0; i < nb; i++)
        b[i] = mm_value(i, 2);
    ferry_tensor *ta, *tb;
    int64_t sa3[3] = {B, M, K}, sb3[3] = {B, K, N}, sa2[2] = {M, K}, sb2[2] = {K, N};
    int64_t sat[2] = {K, M}, sbt[2] = {N, K};
    if (how == TRANS_A || how == TRANS_BOTH) {
        /* Stored as [K, M] and transposed: a column-major view of A. */
        float *at = malloc((size_t)na * 4);
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++)
                at[k * M + i] = a[i * K + k];
        ferry_tensor *s = from_f32(at, 2, sat);
        ta = ferry_transpose(s, 0, 1);
        ferry_tensor_release(s);
        free(at);
    } else if (how == SLICED) {
        /* Every other column of a wider tensor: unit stride in neither dim. */
        float *w = calloc((size_t)(M * K * 2), 4);
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++)
                w[i * 2 * K + 2 * k] = a[i * K + k];
        int64_t sw[2] = {M, 2 * K};
        ferry_tensor *s = from_f32(w, 2, sw);
        ta = ferry_slice(s, 1, 0, 2 * K, 2);
        ferry_tensor_release(s);
        free(w);
    } else {
        ta = B > 1 ? from_f32(a, 3, sa3) : from_f32(a, 2, sa2);
    }
    if (how == TRANS_B || how == TRANS_BOTH) {
        float *bt = malloc((size_t)nb * 4);
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++)
                bt[j * K + k] = b[k * N + j];
        ferry_tensor *s = from_f32(bt, 2, sbt);
        tb = ferry_transpose(s, 0, 1);
        ferry_tensor_release(s);
        free(bt);
    } else {
        tb = how == BATCHED ? from_f32(b, 3, sb3) : from_f32(b, 2, sb2);
    }
    assert_tensor(ta);
    assert_tensor(tb);
    ferry_tensor *ca = ferry_tensor_to_dtype(ta, dt), *cb = ferry_tensor_to_dtype(tb, dt);
    assert_tensor(ca);
    assert_tensor(cb);
    ferry_tensor *out;
    if (how == OUT_TRANSPOSED) {
        int64_t so[2] = {N, M};
        ferry_tensor *base = ferry_zeros(dt, 2, so, "opencl:0");
        out = ferry_transpose(base, 0, 1);
        ferry_tensor_release(base);
        assert_ok(ferry_matmul_out(out, ca, cb));
    } else {
        out = ferry_matmul(ca, cb);
    }
    assert_tensor(out);
    ferry_tensor *of = ferry_tensor_to_dtype(out, FERRY_FLOAT64);
    assert_tensor(of);
    double *got = malloc((size_t)(B * M * N) * 8);
    assert_ok(ferry_tensor_copy_to_host(of, got, (size_t)(B * M * N) * 8));
    double tol = dt == FERRY_FLOAT64 ? 1e-12 : dt == FERRY_FLOAT32 ? 1e-5
               : dt == FERRY_FLOAT16 ? 2e-3 : 1e-2;
    for (int64_t bt = 0; bt < B; bt++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < K; k++) {
                    double x = a[(bt * M + i) * K + k];
                    double y = b[((how == BROADCAST_B ? 0 : bt) * K + k) * N + j];
                    ref += x * y;
                    mag += fabs(x * y);
                }
                double g = got[(bt * M + i) * N + j];
                if (fabs(g - ref) > tol * (mag + 1))
                    fail_msg("%s layout %d: [%lld, %lld, %lld] is %.9g, expected %.9g",
                             ferry_dtype_name(dt), how, (long long)bt, (long long)i,
                             (long long)j, g, ref);
            }
    free(got);
    ferry_tensor *list[] = {ta, tb, ca, cb, out, of};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        ferry_tensor_release(list[i]);
    free(a);
    free(b);
}

static void test_kernels_clblast_matmul_every_layout(void **state)
{
    (void)state;
    require_backend("opencl");
    const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_FLOAT16, FERRY_BFLOAT16};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (int how = PLAIN; how <= SLICED; how++)
            check_matmul(dts[d], how);
}

/* The same layouts through ferry's own kernel, which small products take. */
static void test_kernels_plain_matmul_every_layout(void **state)
{
    (void)state;
    require_backend("opencl");
    const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_FLOAT16, FERRY_BFLOAT16};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (int how = PLAIN; how <= SLICED; how++)
            check_matmul(dts[d], how);
}

static void test_kernels_integer_matmul_wraps(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t s[2] = {2, 2};
    int8_t a[4] = {100, 100, -128, 1}, b[4] = {2, 0, 1, 3};
    ferry_tensor *ta = ferry_tensor_from_data(a, FERRY_INT8, 2, s, "opencl:0");
    ferry_tensor *tb = ferry_tensor_from_data(b, FERRY_INT8, 2, s, "opencl:0");
    ferry_tensor *c = ferry_matmul(ta, tb);
    assert_tensor(c);
    int8_t got[4];
    assert_ok(ferry_tensor_copy_to_host(c, got, sizeof got));
    int8_t want[4] = {(int8_t)(uint8_t)300, (int8_t)(uint8_t)300, (int8_t)(uint8_t)(-255),
                      3};
    assert_memory_equal(got, want, sizeof want);
    ferry_tensor_release(c);
    ferry_tensor_release(tb);
    ferry_tensor_release(ta);
}

/* ---- what the kernels refuse still works -------------------------------------------- */

static void test_kernels_nine_dims_fall_back_correctly(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t shape[9] = {2, 2, 2, 2, 2, 2, 2, 2, 2};
    float v[512];
    for (int i = 0; i < 512; i++)
        v[i] = (float)i;
    ferry_tensor *t = from_f32(v, 9, shape);
    /* Reversed dims: no two neighbours merge, so 9 dims reach the kernel. */
    int perm[9] = {8, 7, 6, 5, 4, 3, 2, 1, 0};
    ferry_tensor *p = ferry_permute(t, 9, perm);
    ferry_tensor *c = ferry_tensor_contiguous(p);
    assert_tensor(c);
    float got[512];
    assert_ok(ferry_tensor_copy_to_host(c, got, sizeof got));
    for (int i = 0; i < 512; i++) {
        int r = 0;
        for (int bit = 0; bit < 9; bit++)
            r |= ((i >> bit) & 1) << (8 - bit);
        assert_true(got[i] == (float)r);
    }
    ferry_tensor_release(c);
    ferry_tensor_release(p);
    ferry_tensor_release(t);
}

/* ---- several threads on one device ------------------------------------------------ */

/* Each thread launches its own work on the one queue (kernel arguments are set under the
 * device lock) and checks every result. */
static void *worker(void *arg)
{
    intptr_t id = (intptr_t)arg;
    int64_t n = 4099 + id;
    for (int it = 0; it < 40; it++) {
        ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, &n, (double)id, "opencl:0");
        ferry_tensor *b = a ? ferry_add_scalar(a, (double)it) : NULL;
        ferry_tensor *s = b ? ferry_sum(b, 0, NULL, false) : NULL;
        float v = -1;
        bool ok = s && ferry_tensor_copy_to_host(s, &v, sizeof v) == FERRY_OK &&
                  v == (float)((double)(id + it) * (double)n);
        ferry_tensor_release(s);
        ferry_tensor_release(b);
        ferry_tensor_release(a);
        if (!ok)
            return (void *)1;
    }
    return NULL;
}

static void test_kernels_threads_launch_concurrently(void **state)
{
    (void)state;
    require_backend("opencl");
    ferry_shutdown(); /* the first launches, queue and program creation race too */
    pthread_t t[6];
    for (intptr_t i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < 6; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
}

/* ---- reductions in both shapes: one thread per chunk (CPUs) and work-groups (GPUs) ---- */

static const char *const reduce_modes[2] = {"thread", "wg"};

static uint32_t lcg_next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Sums of an r x c float32 matrix (values in [-1, 1)) over dim 0, dim 1 and both, and of
 * its transpose (a strided input), against double sums: within a pairwise sum's bound. */
static void check_sums(int64_t r, int64_t c, uint32_t seed)
{
    size_t n = (size_t)(r * c);
    float *v = malloc(n * sizeof *v + 4);
    double *ref = calloc((size_t)(r + c + 1), sizeof *ref), *mag = calloc((size_t)(r + c + 1), 8);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((double)lcg_next(&seed) / 8388608.0 - 1.0);
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) {
            double x = v[i * c + j];
            ref[j] += x; /* over dim 0: one per column */
            ref[c + i] += x; /* over dim 1: one per row */
            ref[c + r] += x;
            mag[j] += fabs(x);
            mag[c + i] += fabs(x);
            mag[c + r] += fabs(x);
        }
    int64_t shape[2] = {r, c};
    ferry_tensor *t = from_f32(v, 2, shape);
    int perm[2] = {1, 0};
    ferry_tensor *tt = ferry_permute(t, 2, perm);
    assert_tensor(tt);
    for (int which = 0; which < 3; which++) {
        int dims[1] = {which};
        /* dim 0 of t is dim 1 of tt: the same sums through the other strides */
        for (int view = 0; view < 2; view++) {
            ferry_tensor *src = view ? tt : t;
            int d[1] = {view ? 1 - dims[0] : dims[0]};
            ferry_tensor *s = ferry_sum(src, which == 2 ? 0 : 1, which == 2 ? NULL : d, false);
            assert_tensor(s);
            int64_t m = ferry_tensor_numel(s);
            assert_int_equal(m, which == 0 ? c : which == 1 ? r : 1);
            float *got = malloc((size_t)m * 4 + 4);
            assert_ok(ferry_tensor_copy_to_host(s, got, (size_t)m * 4));
            const double *want = ref + (which == 0 ? 0 : which == 1 ? c : c + r);
            const double *w = mag + (which == 0 ? 0 : which == 1 ? c : c + r);
            for (int64_t k = 0; k < m; k++) {
                double tol = 4e-7 * 26 * w[k] + 1e-30;
                if (fabs((double)got[k] - want[k]) > tol)
                    fail_msg("%s: sum of %lldx%lld over %d (view %d) [%lld]: %.9g, want %.9g",
                             getenv("FERRY_OPENCL_REDUCE"), (long long)r, (long long)c, which,
                             view, (long long)k, (double)got[k], want[k]);
            }
            free(got);
            ferry_tensor_release(s);
        }
    }
    ferry_tensor_release(tt);
    ferry_tensor_release(t);
    free(v);
    free(ref);
    free(mag);
}

static void test_kernels_reductions_at_work_group_edges(void **state)
{
    (void)state;
    require_backend("opencl");
    /* Partial work-groups and chunks: odd lengths, one less and one more than a power of
     * two, lengths shorter than a group and ones that take several passes. */
    static const int64_t sizes[][2] = {{1, 1},   {1, 7},     {3, 255},  {5, 256},  {2, 257},
                                       {129, 3}, {300, 129}, {1, 4097}, {17, 1023}, {1, 70001},
                                       {4099, 5}};
    for (int mode = 0; mode < 2; mode++) {
        setenv("FERRY_OPENCL_REDUCE", reduce_modes[mode], 1);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            check_sums(sizes[i][0], sizes[i][1], (uint32_t)(i * 7919 + 1));

        /* int32 sums are exact (int64), float16 accumulates in float32, mean divides. */
        int64_t n = 1001;
        int32_t *iv = malloc((size_t)n * 4);
        int64_t want = 0;
        for (int64_t k = 0; k < n; k++) {
            iv[k] = (int32_t)(k * 2654435761u) >> 3;
            want += iv[k];
        }
        ferry_tensor *it = ferry_tensor_from_data(iv, FERRY_INT32, 1, &n, "opencl:0");
        assert_tensor(it);
        ferry_tensor *is = ferry_sum(it, 0, NULL, false);
        assert_tensor(is);
        int64_t got = 0;
        assert_ok(ferry_tensor_copy_to_host(is, &got, 8));
        assert_true(got == want);
        ferry_tensor *ones = ferry_ones(FERRY_FLOAT16, 1, &n, "opencl:0");
        ferry_tensor *hs = ferry_sum(ones, 0, NULL, false);
        ferry_tensor *hm = ferry_mean(ones, 0, NULL, false);
        assert_tensor(hs);
        assert_tensor(hm);
        uint16_t bits[2];
        assert_ok(ferry_tensor_copy_to_host(hs, &bits[0], 2));
        assert_ok(ferry_tensor_copy_to_host(hm, &bits[1], 2));
        assert_int_equal(bits[0], ferry_f32_to_f16(1001.0f));
        assert_int_equal(bits[1], ferry_f32_to_f16(1.0f));
        ferry_tensor *list[] = {it, is, ones, hs, hm};
        for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
            ferry_tensor_release(list[k]);
        free(iv);

        /* Empty: a sum over an empty dim is 0, one with no output has no element. */
        int64_t e[2] = {0, 5};
        ferry_tensor *z = ferry_zeros(FERRY_FLOAT32, 2, e, "opencl:0");
        int d0[1] = {0}, d1[1] = {1};
        ferry_tensor *z0 = ferry_sum(z, 1, d0, false), *z1 = ferry_sum(z, 1, d1, false);
        assert_tensor(z0);
        assert_tensor(z1);
        assert_int_equal(ferry_tensor_numel(z0), 5);
        assert_int_equal(ferry_tensor_numel(z1), 0);
        float zs[5] = {1, 1, 1, 1, 1};
        assert_ok(ferry_tensor_copy_to_host(z0, zs, sizeof zs));
        for (int k = 0; k < 5; k++)
            assert_true(zs[k] == 0.0f);
        ferry_tensor_release(z0);
        ferry_tensor_release(z1);
        ferry_tensor_release(z);
    }
    unsetenv("FERRY_OPENCL_REDUCE");
}

/* 16M ones sum exactly and 16M random values in [0, 1) sum within 1e-6 of the double sum
 * (a float32 sum in order is off by about 1e-3 there), in both shapes. */
static void test_kernels_long_sums_are_accurate_in_both_shapes(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t n = (int64_t)1 << 24;
    float *v = malloc((size_t)n * 4);
    assert_non_null(v);
    uint32_t seed = 12345;
    double want = 0;
    for (int64_t i = 0; i < n; i++) {
        v[i] = (float)((double)lcg_next(&seed) / 16777216.0);
        want += v[i];
    }
    ferry_tensor *t = from_f32(v, 1, &n);
    ferry_tensor *ones = ferry_ones(FERRY_FLOAT32, 1, &n, "opencl:0");
    assert_tensor(ones);
    for (int mode = 0; mode < 2; mode++) {
        setenv("FERRY_OPENCL_REDUCE", reduce_modes[mode], 1);
        ferry_tensor *s = ferry_sum(t, 0, NULL, false), *s1 = ferry_sum(ones, 0, NULL, false);
        assert_tensor(s);
        assert_tensor(s1);
        float got = 0, got1 = 0;
        assert_ok(ferry_tensor_copy_to_host(s, &got, 4));
        assert_ok(ferry_tensor_copy_to_host(s1, &got1, 4));
        if (fabs((double)got - want) > 1e-6 * want)
            fail_msg("%s: sum of 16M values %.9g, double %.9g", reduce_modes[mode], (double)got,
                     want);
        assert_true(got1 == 16777216.0f);
        ferry_tensor_release(s);
        ferry_tensor_release(s1);
    }
    unsetenv("FERRY_OPENCL_REDUCE");
    ferry_tensor_release(ones);
    ferry_tensor_release(t);
    free(v);
}

/* Dense elementwise launches in both shapes (FERRY_OPENCL_DENSE=run: a run of elements
 * per work-item, as CPUs take them; =grid: one element per work-item, as GPUs do) at run
 * edges: lengths around the shortest run (512) and across many runs, from offset 0 and
 * from a slice's offset, out of place and in place, through the binary, unary, scalar,
 * compare, cast and overlapping-copy kernels. Every result is checked element by element
 * against the host's. */
static void check_dense(int64_t n, int64_t off, uint32_t seed)
{
    int64_t total = n + off;
    float *x = malloc((size_t)total * 4), *y = malloc((size_t)total * 4);
    float *got = malloc((size_t)total * 4);
    int32_t *gi = malloc((size_t)total * 4);
    uint8_t *gb = malloc((size_t)total);
    assert_true(x && y && got && gi && gb);
    for (int64_t i = 0; i < total; i++) {
        x[i] = (float)((double)lcg_next(&seed) / 8388608.0 - 1.0) * 100.0f;
        y[i] = (float)((double)lcg_next(&seed) / 8388608.0 - 1.0) * 100.0f;
    }
    ferry_tensor *xf = from_f32(x, 1, &total), *yf = from_f32(y, 1, &total);
    ferry_tensor *xs = ferry_slice(xf, 0, off, total, 1), *ys = ferry_slice(yf, 0, off, total, 1);
    assert_tensor(xs);
    assert_tensor(ys);
    const char *mode = getenv("FERRY_OPENCL_DENSE");
    const float *xv = x + off, *yv = y + off;

    ferry_tensor *sum = ferry_add(xs, ys);
    assert_tensor(sum);
    assert_ok(ferry_tensor_copy_to_host(sum, got, (size_t)n * 4));
    for (int64_t i = 0; i < n; i++)
        if (got[i] != xv[i] + yv[i])
            fail_msg("%s: add of %lld at offset %lld [%lld]: %g, want %g", mode, (long long)n,
                     (long long)off, (long long)i, (double)got[i], (double)(xv[i] + yv[i]));
    /* In place: the output is the first operand. */
    assert_ok(ferry_mul_out(sum, sum, ys));
    assert_ok(ferry_tensor_copy_to_host(sum, got, (size_t)n * 4));
    for (int64_t i = 0; i < n; i++)
        if (got[i] != (xv[i] + yv[i]) * yv[i])
            fail_msg("%s: in-place mul of %lld [%lld]: %g", mode, (long long)n, (long long)i,
                     (double)got[i]);

    ferry_tensor *neg = ferry_neg(xs), *sc = ferry_mul_scalar(xs, 2.5);
    ferry_tensor *lt = ferry_lt(xs, ys), *ci = ferry_tensor_to_dtype(xs, FERRY_INT32);
    assert_tensor(neg);
    assert_tensor(sc);
    assert_tensor(lt);
    assert_tensor(ci);
    assert_ok(ferry_tensor_copy_to_host(neg, got, (size_t)n * 4));
    for (int64_t i = 0; i < n; i++)
        if (got[i] != -xv[i])
            fail_msg("%s: neg of %lld [%lld]: %g", mode, (long long)n, (long long)i,
                     (double)got[i]);
    assert_ok(ferry_tensor_copy_to_host(sc, got, (size_t)n * 4));
    for (int64_t i = 0; i < n; i++)
        if (got[i] != xv[i] * 2.5f)
            fail_msg("%s: mul_scalar of %lld [%lld]: %g", mode, (long long)n, (long long)i,
                     (double)got[i]);
    assert_ok(ferry_tensor_copy_to_host(lt, gb, (size_t)n));
    for (int64_t i = 0; i < n; i++)
        if (gb[i] != (xv[i] < yv[i]))
            fail_msg("%s: lt of %lld [%lld]: %d", mode, (long long)n, (long long)i, gb[i]);
    assert_ok(ferry_tensor_copy_to_host(ci, gi, (size_t)n * 4));
    for (int64_t i = 0; i < n; i++)
        if (gi[i] != (int32_t)xv[i])
            fail_msg("%s: cast of %lld [%lld]: %d, want %d", mode, (long long)n, (long long)i,
                     gi[i], (int32_t)xv[i]);

    /* An overlapping copy runs the copy kernel (no clEnqueueCopyBuffer): x[0:n] = x[off:].
     * With off 0 it is a copy onto itself. */
    ferry_tensor *head = ferry_slice(xf, 0, 0, n, 1);
    assert_tensor(head);
    if (off == 0 || off >= n) {
        assert_ok(ferry_tensor_copy_from(head, xs));
        assert_ok(ferry_tensor_copy_to_host(head, got, (size_t)n * 4));
        for (int64_t i = 0; i < n; i++)
            if (got[i] != xv[i])
                fail_msg("%s: copy of %lld from offset %lld [%lld]: %g", mode, (long long)n,
                         (long long)off, (long long)i, (double)got[i]);
    }
    ferry_tensor *list[] = {xf, yf, xs, ys, sum, neg, sc, lt, ci, head};
    for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
        ferry_tensor_release(list[k]);
    free(x);
    free(y);
    free(got);
    free(gi);
    free(gb);
}

static void test_kernels_dense_elementwise_at_run_edges(void **state)
{
    (void)state;
    require_backend("opencl");
    static const char *const modes[2] = {"run", "grid"};
    static const int64_t sizes[][2] = {{1, 0},    {7, 3},      {511, 0},   {512, 1},
                                       {513, 64}, {4097, 0},   {100003, 5}, {(1 << 20) + 5, 0},
                                       {3000, 3000}};
    for (int mode = 0; mode < 2; mode++) {
        setenv("FERRY_OPENCL_DENSE", modes[mode], 1);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            /* New values per mode: a cached block holding the other mode's results
             * cannot pass for elements a launch skipped. */
            check_dense(sizes[i][0], sizes[i][1], (uint32_t)(i * 104729 + 3 + mode * 7919));
    }
    unsetenv("FERRY_OPENCL_DENSE");
}

/* One draw of sampler s (0 rand, 1 randn, 2 uniform_ into a slice, 3 normal_ into a
 * slice, 4 randint narrow, 5 randint wide, 6 randint over all of int64) of n elements
 * of dt on dev from a generator at (seed, goff); the bytes of what it wrote (for the
 * slices, the whole base: nothing outside the slice may change). */
static void *random_bytes(int s, ferry_dtype dt, int64_t n, uint64_t seed, uint64_t goff,
                          const char *dev, size_t *nbytes)
{
    ferry_generator *g = ferry_generator_create(seed);
    assert_ok(ferry_generator_set_state(g, seed, goff));
    ferry_tensor *r = NULL;
    if (s == 0)
        r = ferry_rand(dt, 1, &n, dev, g);
    else if (s == 1)
        r = ferry_randn(dt, 1, &n, dev, g);
    else if (s == 2 || s == 3) {
        int64_t total = n + 5;
        r = ferry_zeros(dt, 1, &total, dev);
        assert_tensor(r);
        ferry_tensor *v = ferry_slice(r, 0, 3, 3 + n, 1);
        assert_tensor(v);
        assert_ok(s == 2 ? ferry_tensor_uniform(v, -2.5, 3.0, g)
                         : ferry_tensor_normal(v, 1.5, 0.25, g));
        ferry_tensor_release(v);
    } else if (s == 4)
        r = ferry_randint(dt == FERRY_UINT8 ? 3 : -7, 100, dt, 1, &n, dev, g);
    else if (s == 5)
        r = ferry_randint(-((int64_t)1 << 40), (int64_t)1 << 40, dt, 1, &n, dev, g);
    else
        r = ferry_randint(INT64_MIN, INT64_MAX, dt, 1, &n, dev, g);
    assert_tensor(r);
    *nbytes = ferry_tensor_nbytes(r);
    void *b = malloc(*nbytes);
    assert_non_null(b);
    assert_ok(ferry_tensor_copy_to_host(r, b, *nbytes));
    ferry_tensor_release(r);
    ferry_generator_release(g);
    return b;
}

/* The samplers in both launch shapes (FERRY_OPENCL_DENSE=run: a run of Philox blocks
 * per work-item, as CPU devices take them, with the partial last block apart; =grid: a
 * block per work-item, as on GPUs) give the cpu backend's bits: lengths around the
 * shortest run (16 blocks) and across uneven runs, partial last blocks of every size,
 * outputs at an element offset, a block counter crossing 2^32, and none falling back. */
static void test_kernels_random_matches_cpu_in_both_shapes(void **state)
{
    (void)state;
    require_backend("opencl");
    static const char *const modes[2] = {"run", "grid"};
    static const int64_t sizes[] = {1, 2, 3, 5, 31, 63, 64, 65, 66, 127, 129, 4099,
                                    (1 << 18) + 3, (1 << 20) + 6};
    static const struct {
        int s;
        ferry_dtype dt;
    } draws[] = {{0, FERRY_FLOAT32}, {1, FERRY_FLOAT32}, {2, FERRY_FLOAT32},
                 {3, FERRY_FLOAT32}, {1, FERRY_FLOAT16}, {0, FERRY_BFLOAT16},
                 {1, FERRY_FLOAT64}, {2, FERRY_FLOAT64}, {4, FERRY_INT32},
                 {4, FERRY_UINT8},   {4, FERRY_FLOAT32}, {5, FERRY_INT64},
                 {6, FERRY_INT64}};
    for (int mode = 0; mode < 2; mode++) {
        setenv("FERRY_OPENCL_DENSE", modes[mode], 1);
        for (size_t d = 0; d < sizeof draws / sizeof draws[0]; d++)
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                int64_t n = sizes[i];
                /* A state just below 2^32 blocks: the counter's carry lands mid-draw. */
                uint64_t seed = 0x123456789abcdefull + i, goff = ((uint64_t)1 << 34) - 4 * 37;
                assert_ok(ferry_fallback_stats_reset("opencl:0"));
                size_t nc, no;
                void *c = random_bytes(draws[d].s, draws[d].dt, n, seed, goff, "cpu", &nc);
                void *o = random_bytes(draws[d].s, draws[d].dt, n, seed, goff, "opencl:0", &no);
                ferry_fallback_stats st;
                assert_ok(ferry_fallback_stats_get("opencl:0", &st));
                if (st.total != 0)
                    fail_msg("%s: sampler %d dtype %d of %lld fell back", modes[mode],
                             draws[d].s, (int)draws[d].dt, (long long)n);
                assert_int_equal(nc, no);
                if (memcmp(c, o, nc) != 0) {
                    size_t first = 0;
                    while (((char *)c)[first] == ((char *)o)[first])
                        first++;
                    fail_msg("%s: sampler %d dtype %d of %lld: byte %zu of %zu differs",
                             modes[mode], draws[d].s, (int)draws[d].dt, (long long)n, first,
                             nc);
                }
                free(c);
                free(o);
            }
    }
    unsetenv("FERRY_OPENCL_DENSE");
}

/* Column reductions number threads output fastest: argmax still takes the first maximum
 * of each column across chunk boundaries, and max and min propagate NaN. */
static void test_kernels_column_argmax_keeps_first_of_ties(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t r = 3000, c = 37, shape[2] = {r, c};
    float *v = malloc((size_t)(r * c) * 4);
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++)
            v[i * c + j] = (float)((i * 31 + j * 17) % 50); /* each column's 49s tie */
    v[2999 * c + 5] = NAN;
    ferry_tensor *t = from_f32(v, 2, shape);
    int d0[1] = {0};
    ferry_tensor *am = ferry_argmax(t, 1, d0, false), *mx = ferry_max(t, 1, d0, false),
                 *mn = ferry_min(t, 1, d0, false);
    assert_tensor(am);
    assert_tensor(mx);
    assert_tensor(mn);
    int64_t got[37];
    float gmax[37], gmin[37];
    assert_ok(ferry_tensor_copy_to_host(am, got, sizeof got));
    assert_ok(ferry_tensor_copy_to_host(mx, gmax, sizeof gmax));
    assert_ok(ferry_tensor_copy_to_host(mn, gmin, sizeof gmin));
    for (int64_t j = 0; j < c; j++) {
        int64_t first = 0;
        for (int64_t i = 1; i < r; i++) {
            float x = v[i * c + j], b = v[first * c + j];
            if (b == b && (x != x || x > b)) /* NaN counts as the maximum */
                first = i;
        }
        assert_int_equal(got[j], first);
        if (j == 5) {
            assert_true(isnan(gmax[j]) && isnan(gmin[j]));
        } else {
            assert_true(gmax[j] == 49.0f);
            assert_true(gmin[j] == 0.0f);
        }
    }
    ferry_tensor_release(am);
    ferry_tensor_release(mx);
    ferry_tensor_release(mn);
    ferry_tensor_release(t);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_sum_of_16m_float32_ones_is_exact),
        cmocka_unit_test(test_kernels_half_and_bfloat16_round_as_half_h),
        cmocka_unit_test(test_kernels_long_reductions_keep_first_max_and_nan),
        cmocka_unit_test(test_kernels_integer_sums_are_exact_int64),
        cmocka_unit_test_setup_teardown(test_kernels_clblast_matmul_every_layout, force_clblast,
                                        unforce_matmul),
        cmocka_unit_test_setup_teardown(test_kernels_plain_matmul_every_layout, force_kernel,
                                        unforce_matmul),
        cmocka_unit_test(test_kernels_integer_matmul_wraps),
        cmocka_unit_test(test_kernels_nine_dims_fall_back_correctly),
        cmocka_unit_test(test_kernels_threads_launch_concurrently),
        cmocka_unit_test(test_kernels_reductions_at_work_group_edges),
        cmocka_unit_test(test_kernels_long_sums_are_accurate_in_both_shapes),
        cmocka_unit_test(test_kernels_column_argmax_keeps_first_of_ties),
        cmocka_unit_test(test_kernels_dense_elementwise_at_run_edges),
        cmocka_unit_test(test_kernels_random_matches_cpu_in_both_shapes),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return rc;
}

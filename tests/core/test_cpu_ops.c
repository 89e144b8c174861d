/* The CPU backend's op kernels (unary, binary, reduce, matmul) through the public API, on
 * the cases that break naive kernels: exact float sums of many elements, float16
 * accumulation, NaN propagation, argmax ties, integer wrap and pow, transposed and
 * broadcast matmul operands, every dtype, non-contiguous and unaligned inputs, and sizes
 * large enough to take the multi-threaded paths. References are computed here. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include <ferry/half.h>

#include "test_util.h"

/* ---- helpers ---- */

/* A deterministic generator, so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Uniform in [-1, 1), a multiple of 2^-8, so small products and sums are exact in
 * float32 and float16. */
static double rng_small(void)
{
    return (double)((int)(rng_next() % 512) - 256) / 256.0;
}

static ferry_tensor *from_doubles(const double *v, ferry_dtype dtype, int ndim,
                                  const int64_t *shape)
{
    ferry_tensor *d = ferry_tensor_from_data(v, FERRY_FLOAT64, ndim, shape, "cpu");
    assert_tensor(d);
    ferry_tensor *t = ferry_tensor_to_dtype(d, dtype);
    assert_tensor(t);
    ferry_tensor_release(d);
    return t;
}

/* t's values as doubles, row-major; caller frees. */
static double *to_doubles(ferry_tensor *t)
{
    assert_tensor(t);
    ferry_tensor *d = ferry_tensor_to_dtype(t, FERRY_FLOAT64);
    assert_tensor(d);
    size_t n = (size_t)ferry_tensor_numel(d);
    double *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    assert_ok(ferry_tensor_copy_to_host(d, v, n * sizeof *v));
    ferry_tensor_release(d);
    return v;
}

/* Like to_doubles, and releases t. */
static double *take_doubles(ferry_tensor *t)
{
    double *v = to_doubles(t);
    ferry_tensor_release(t);
    return v;
}

static double scalar_of(ferry_tensor *t)
{
    assert_tensor(t);
    assert_int_equal(ferry_tensor_numel(t), 1);
    double *v = to_doubles(t);
    double x = v[0];
    free(v);
    ferry_tensor_release(t);
    return x;
}

static int64_t int64_of(ferry_tensor *t)
{
    assert_tensor(t);
    assert_int_equal(ferry_tensor_dtype(t), FERRY_INT64);
    int64_t x;
    assert_ok(ferry_tensor_copy_to_host(t, &x, sizeof x));
    ferry_tensor_release(t);
    return x;
}

/* Same value, or both NaN. */
static bool same(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static void assert_close(const double *got, const double *want, size_t n, double tol)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        if (!(err <= tol * (1.0 + fabs(want[i]))) && !same(got[i], want[i]))
            fail_msg("element %zu: got %.9g, want %.9g (tolerance %g)", i, got[i], want[i], tol);
    }
}

/* ---- reductions ---- */

static void test_sum_of_16m_float32_ones_is_exact(void **state)
{
    (void)state;
    int64_t n = 16 * 1024 * 1024;
    ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &n, "cpu");
    assert_tensor(t);
    float s;
    ferry_tensor *r = ferry_sum(t, 0, NULL, false);
    assert_tensor(r);
    assert_int_equal(ferry_tensor_dtype(r), FERRY_FLOAT32);
    assert_ok(ferry_tensor_copy_to_host(r, &s, sizeof s));
    assert_true(s == 16777216.0f);
    ferry_tensor_release(r);
    assert_true(scalar_of(ferry_mean(t, 0, NULL, false)) == 1.0);
    /* The same elements as 4096 rows: per-row sums, then a sum over the rows. */
    int64_t shape[2] = {4096, 4096};
    ferry_tensor *m = ferry_reshape(t, 2, shape);
    int dim1 = 1, dim0 = 0;
    ferry_tensor *rows = ferry_sum(m, 1, &dim1, false);
    double *rv = to_doubles(rows);
    for (int i = 0; i < 4096; i++)
        assert_true(rv[i] == 4096.0);
    free(rv);
    ferry_tensor *cols = ferry_sum(m, 1, &dim0, false);
    double *cv = to_doubles(cols);
    for (int i = 0; i < 4096; i++)
        assert_true(cv[i] == 4096.0);
    free(cv);
    /* Transposed: reduced as one run after the kernel reorders the dims. */
    ferry_tensor *mt = ferry_transpose(m, 0, 1);
    assert_true(scalar_of(ferry_sum(mt, 0, NULL, false)) == 16777216.0);
    ferry_tensor_release(mt);
    ferry_tensor_release(rows);
    ferry_tensor_release(cols);
    ferry_tensor_release(m);
    ferry_tensor_release(t);
}

static void test_sum_accumulates_float16_and_bfloat16_in_float32(void **state)
{
    (void)state;
    /* 2048 + 1 is not a float16: a float16 accumulator would stop at 2048. */
    int64_t n = 5000;
    ferry_tensor *h = ferry_ones(FERRY_FLOAT16, 1, &n, "cpu");
    ferry_tensor *r = ferry_sum(h, 0, NULL, false);
    assert_tensor(r);
    assert_int_equal(ferry_tensor_dtype(r), FERRY_FLOAT16);
    assert_true(scalar_of(r) == 5000.0);
    assert_true(scalar_of(ferry_mean(h, 0, NULL, false)) == 1.0);
    /* 256 + 1 is not a bfloat16. */
    int64_t nb = 300;
    ferry_tensor *b = ferry_ones(FERRY_BFLOAT16, 1, &nb, "cpu");
    assert_true(scalar_of(ferry_sum(b, 0, NULL, false)) == 300.0);
    /* A strided float16 view takes the strided path. */
    ferry_tensor *s = ferry_slice(h, 0, 0, 5000, 2);
    assert_true(scalar_of(ferry_sum(s, 0, NULL, false)) == 2500.0);
    ferry_tensor_release(s);
    ferry_tensor_release(h);
    ferry_tensor_release(b);
}

static void test_sum_is_accurate_on_mixed_magnitudes(void **state)
{
    (void)state;
    /* 1e8 followed by a million 1s: naive float32 summation loses every 1 (the ulp of
     * 1e8 is 8). Blocked pairwise summation loses only the ones that share 1e8's lane
     * and first pairwise level (about 127). */
    int64_t n = 1000001;
    double *v = malloc((size_t)n * sizeof *v);
    assert_non_null(v);
    v[0] = 1e8;
    for (int64_t i = 1; i < n; i++)
        v[i] = 1.0;
    ferry_tensor *t = from_doubles(v, FERRY_FLOAT32, 1, &n);
    double s = scalar_of(ferry_sum(t, 0, NULL, false));
    if (!(fabs(s - 101000000.0) <= 1000.0))
        fail_msg("sum %.1f, want 101000000", s);
    ferry_tensor_release(t);
    free(v);
}

static void test_integer_sums_are_int64_and_wrap(void **state)
{
    (void)state;
    int64_t n = 100000;
    ferry_tensor *t = ferry_full(FERRY_INT8, 1, &n, -3, "cpu");
    ferry_tensor *s = ferry_sum(t, 0, NULL, false);
    assert_int_equal(int64_of(s), -300000);
    ferry_tensor_release(t);
    ferry_tensor *b = ferry_ones(FERRY_BOOL, 1, &n, "cpu");
    assert_int_equal(int64_of(ferry_sum(b, 0, NULL, false)), 100000);
    ferry_tensor_release(b);
    int64_t big[3] = {INT64_MAX, 1, 1};
    int64_t three = 3;
    ferry_tensor *w = ferry_tensor_from_data(big, FERRY_INT64, 1, &three, "cpu");
    assert_int_equal(int64_of(ferry_sum(w, 0, NULL, false)), INT64_MIN + 1);
    ferry_tensor_release(w);
}

static void test_max_min_propagate_nan(void **state)
{
    (void)state;
    ferry_dtype types[3] = {FERRY_FLOAT32, FERRY_FLOAT16, FERRY_FLOAT64};
    for (int k = 0; k < 3; k++) {
        /* NaN in the middle of a long run, so the vector lanes and the tail both see
         * ordinary values after it. */
        int64_t n = 1000;
        double *v = malloc((size_t)n * sizeof *v);
        for (int64_t i = 0; i < n; i++)
            v[i] = (double)(i % 17);
        v[500] = NAN;
        ferry_tensor *t = from_doubles(v, types[k], 1, &n);
        assert_true(isnan(scalar_of(ferry_max(t, 0, NULL, false))));
        assert_true(isnan(scalar_of(ferry_min(t, 0, NULL, false))));
        assert_true(isnan(scalar_of(ferry_sum(t, 0, NULL, false))));
        v[500] = 3;
        ferry_tensor *u = from_doubles(v, types[k], 1, &n);
        assert_true(scalar_of(ferry_max(u, 0, NULL, false)) == 16.0);
        assert_true(scalar_of(ferry_min(u, 0, NULL, false)) == 0.0);
        ferry_tensor_release(t);
        ferry_tensor_release(u);
        free(v);
    }
    /* Along a dim: only the row holding the NaN gives NaN. */
    double m[6] = {1, NAN, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    ferry_tensor *t = from_doubles(m, FERRY_FLOAT32, 2, shape);
    int dim = 1;
    double *r = take_doubles(ferry_max(t, 1, &dim, false));
    assert_true(isnan(r[0]) && r[1] == 6.0);
    free(r);
    ferry_tensor_release(t);
}

static void test_maximum_minimum_propagate_nan(void **state)
{
    (void)state;
    double a[4] = {1, NAN, 3, NAN};
    double b[4] = {2, 1, NAN, NAN};
    int64_t n = 4;
    ferry_dtype types[3] = {FERRY_FLOAT32, FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int k = 0; k < 3; k++) {
        ferry_tensor *ta = from_doubles(a, types[k], 1, &n);
        ferry_tensor *tb = from_doubles(b, types[k], 1, &n);
        ferry_tensor *mx = ferry_maximum(ta, tb), *mn = ferry_minimum(ta, tb);
        double *x = to_doubles(mx), *y = to_doubles(mn);
        assert_true(x[0] == 2 && isnan(x[1]) && isnan(x[2]) && isnan(x[3]));
        assert_true(y[0] == 1 && isnan(y[1]) && isnan(y[2]) && isnan(y[3]));
        free(x);
        free(y);
        ferry_tensor_release(mx);
        ferry_tensor_release(mn);
        ferry_tensor_release(ta);
        ferry_tensor_release(tb);
    }
}

static void test_argmax_takes_first_occurrence_and_nan(void **state)
{
    (void)state;
    double v[6] = {1, 3, 2, 3, 0, 3};
    int64_t n = 6;
    for (int dt = FERRY_UINT8; dt < FERRY_NUM_DTYPES; dt++) {
        ferry_tensor *t = from_doubles(v, (ferry_dtype)dt, 1, &n);
        assert_int_equal(int64_of(ferry_argmax(t, 0, NULL, false)), 1);
        ferry_tensor_release(t);
    }
    double w[6] = {1, NAN, 5, NAN, 9, 2};
    ferry_tensor *t = from_doubles(w, FERRY_FLOAT32, 1, &n);
    assert_int_equal(int64_of(ferry_argmax(t, 0, NULL, false)), 1);
    ferry_tensor_release(t);
    /* A long run with its maximum only in a late block, tied in two places. */
    int64_t big = 100000;
    double *x = malloc((size_t)big * sizeof *x);
    for (int64_t i = 0; i < big; i++)
        x[i] = (double)(i % 1000) / 1000.0;
    x[70001] = 7;
    x[90001] = 7;
    ferry_tensor *l = from_doubles(x, FERRY_FLOAT32, 1, &big);
    assert_int_equal(int64_of(ferry_argmax(l, 0, NULL, false)), 70001);
    x[95000] = NAN;
    ferry_tensor *ln = from_doubles(x, FERRY_FLOAT32, 1, &big);
    assert_int_equal(int64_of(ferry_argmax(ln, 0, NULL, false)), 95000);
    ferry_tensor_release(l);
    ferry_tensor_release(ln);
    free(x);
    /* Along each dim of a matrix, and over all of a transposed one (row-major index of
     * the logical shape, not of memory). */
    double m[6] = {0, 5, 5, 7, 1, 7};
    int64_t shape[2] = {2, 3};
    ferry_tensor *mt = from_doubles(m, FERRY_INT32, 2, shape);
    int d0 = 0, d1 = 1;
    int64_t r1[2], r0[3];
    ferry_tensor *a1 = ferry_argmax(mt, 1, &d1, false), *a0 = ferry_argmax(mt, 1, &d0, false);
    assert_ok(ferry_tensor_copy_to_host(a1, r1, sizeof r1));
    assert_ok(ferry_tensor_copy_to_host(a0, r0, sizeof r0));
    assert_true(r1[0] == 1 && r1[1] == 0);
    assert_true(r0[0] == 1 && r0[1] == 0 && r0[2] == 1);
    ferry_tensor *tr = ferry_transpose(mt, 0, 1); /* [[0,7],[5,1],[5,7]] */
    assert_int_equal(int64_of(ferry_argmax(tr, 0, NULL, false)), 1);
    ferry_tensor_release(a1);
    ferry_tensor_release(a0);
    ferry_tensor_release(tr);
    ferry_tensor_release(mt);
}

static void test_reductions_of_strided_views_match_reference(void **state)
{
    (void)state;
    /* [6, 5, 4] permuted to [4, 6, 5], sliced with step 2 on the last dim; every single
     * dim, pairs of dims and all dims, for sum, mean, max and min. */
    int64_t shape[3] = {6, 5, 4};
    double v[120];
    for (int i = 0; i < 120; i++)
        v[i] = rng_small() * 64;
    ferry_tensor *t = from_doubles(v, FERRY_FLOAT64, 3, shape);
    int perm[3] = {2, 0, 1};
    ferry_tensor *p = ferry_permute(t, 3, perm);
    ferry_tensor *s = ferry_slice(p, 2, 0, 5, 2); /* [4, 6, 3] */
    assert_tensor(s);
    assert_false(ferry_tensor_is_contiguous(s));
    double *sv = to_doubles(s);
    int64_t e[3] = {4, 6, 3};
    for (int mask = 1; mask < 8; mask++) {
        int dims[3], nd = 0;
        for (int d = 0; d < 3; d++)
            if (mask & (1 << d))
                dims[nd++] = d;
        ferry_tensor *rs = ferry_sum(s, nd, dims, true), *rm = ferry_mean(s, nd, dims, true);
        ferry_tensor *rx = ferry_max(s, nd, dims, true), *rn = ferry_min(s, nd, dims, true);
        double *gs = to_doubles(rs), *gm = to_doubles(rm), *gx = to_doubles(rx),
               *gn = to_doubles(rn);
        int64_t oe[3];
        for (int d = 0; d < 3; d++)
            oe[d] = (mask & (1 << d)) ? 1 : e[d];
        for (int64_t i = 0; i < oe[0]; i++)
            for (int64_t j = 0; j < oe[1]; j++)
                for (int64_t k = 0; k < oe[2]; k++) {
                    double sum = 0, mx = -INFINITY, mn = INFINITY;
                    int cnt = 0;
                    for (int64_t a = 0; a < e[0]; a++)
                        for (int64_t b = 0; b < e[1]; b++)
                            for (int64_t c = 0; c < e[2]; c++) {
                                if ((!(mask & 1) && a != i) || (!(mask & 2) && b != j) ||
                                    (!(mask & 4) && c != k))
                                    continue;
                                double x = sv[(a * e[1] + b) * e[2] + c];
                                sum += x;
                                mx = fmax(mx, x);
                                mn = fmin(mn, x);
                                cnt++;
                            }
                    int64_t o = (i * oe[1] + j) * oe[2] + k;
                    assert_true(fabs(gs[o] - sum) < 1e-9);
                    assert_true(fabs(gm[o] - sum / cnt) < 1e-9);
                    assert_true(gx[o] == mx);
                    assert_true(gn[o] == mn);
                }
        free(gs), free(gm), free(gx), free(gn);
        ferry_tensor_release(rs), ferry_tensor_release(rm);
        ferry_tensor_release(rx), ferry_tensor_release(rn);
    }
    free(sv);
    ferry_tensor_release(s);
    ferry_tensor_release(p);
    ferry_tensor_release(t);
}

static void test_reductions_of_every_dtype(void **state)
{
    (void)state;
    double v[12] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
    int64_t shape[2] = {3, 4};
    int dim = 0;
    for (int dt = 0; dt < FERRY_NUM_DTYPES; dt++) {
        ferry_tensor *t = from_doubles(v, (ferry_dtype)dt, 2, shape);
        double want_sum = dt == FERRY_BOOL ? 12 : 52;
        assert_true(scalar_of(ferry_sum(t, 0, NULL, false)) == want_sum);
        assert_true(scalar_of(ferry_max(t, 0, NULL, false)) == (dt == FERRY_BOOL ? 1 : 9));
        assert_true(scalar_of(ferry_min(t, 0, NULL, false)) == 1);
        if (dt != FERRY_BOOL) /* argmax of bool is refused by the core, as by PyTorch */
            assert_int_equal(int64_of(ferry_argmax(t, 0, NULL, false)), 5);
        double *cs = take_doubles(ferry_sum(t, 1, &dim, false));
        if (dt != FERRY_BOOL)
            assert_true(cs[0] == 13 && cs[1] == 13 && cs[2] == 11 && cs[3] == 15);
        free(cs);
        ferry_tensor_release(t);
    }
}

static void test_reductions_over_outer_dims_match_reference(void **state)
{
    (void)state;
    /* [A, B, C] reduced over dims 0 and 1 (or 0 only), C kept and contiguous: the
     * outputs along C are computed together. Values from a small set make ties. */
    int64_t A = 9, B = 70, C = 300;
    int64_t shape[3] = {A, B, C};
    size_t n = (size_t)(A * B * C);
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (double)(rng_next() % 13) - 6;
    v[5 * B * C + 3 * C + 17] = NAN; /* column 17 */
    for (int dt = FERRY_INT8; dt < FERRY_NUM_DTYPES; dt++) {
        bool fl = dt >= FERRY_FLOAT16;
        ferry_tensor *t = from_doubles(v, (ferry_dtype)dt, 3, shape);
        for (int variant = 0; variant < 2; variant++) {
            int dims[2] = {0, 1};
            int nd = variant ? 1 : 2;
            int64_t rows = variant ? A : A * B, outs = variant ? B * C : C;
            ferry_tensor *rs = ferry_sum(t, nd, dims, false), *rx = ferry_max(t, nd, dims, false);
            ferry_tensor *rn = ferry_min(t, nd, dims, false);
            ferry_tensor *ra = variant ? NULL : ferry_argmax(t, 1, dims, false); /* dim 0 */
            double *gs = to_doubles(rs), *gx = to_doubles(rx), *gn = to_doubles(rn);
            double *gm = NULL;
            ferry_tensor *rm = NULL;
            if (fl) {
                rm = ferry_mean(t, nd, dims, false);
                gm = to_doubles(rm);
            }
            int64_t *ga = NULL;
            if (ra) {
                ga = malloc((size_t)(B * C) * sizeof *ga);
                assert_ok(ferry_tensor_copy_to_host(ra, ga, (size_t)(B * C) * sizeof *ga));
            }
            for (int64_t o = 0; o < outs; o++) {
                double sum = 0, mx = -INFINITY, mn = INFINITY;
                bool nan = false;
                for (int64_t r = 0; r < rows; r++) {
                    double x = v[r * outs + o];
                    if (isnan(x)) {
                        nan = true;
                        continue;
                    }
                    sum += x, mx = fmax(mx, x), mn = fmin(mn, x);
                }
                if (!fl && nan)
                    continue; /* NaN became 0 in the integer copy */
                double wsum = nan ? NAN : sum;
                if (!same(gs[o], wsum))
                    fail_msg("%s sum variant %d output %lld: got %g, want %g",
                             ferry_dtype_name((ferry_dtype)dt), variant, (long long)o, gs[o],
                             wsum);
                assert_true(same(gx[o], nan ? NAN : mx));
                assert_true(same(gn[o], nan ? NAN : mn));
                double mtol = (dt == FERRY_BFLOAT16 ? 8e-3 : 1e-3) * (1 + fabs(sum / rows));
                if (gm && !same(gm[o], nan ? NAN : sum / (double)rows) &&
                    !(fabs(gm[o] - sum / (double)rows) < mtol))
                    fail_msg("mean output %lld: got %g, want %g", (long long)o, gm[o],
                             sum / (double)rows);
            }
            if (ga)
                for (int64_t o = 0; o < B * C; o++) {
                    int64_t want = 0;
                    for (int64_t r = 1; r < A; r++) {
                        double x = v[r * B * C + o], best = v[want * B * C + o];
                        if (isnan(best))
                            break;
                        if (x > best || isnan(x))
                            want = r;
                    }
                    if (!fl && isnan(v[want * B * C + o]))
                        continue;
                    if (ga[o] != want)
                        fail_msg("%s argmax dim 0 output %lld: got %lld, want %lld",
                                 ferry_dtype_name((ferry_dtype)dt), (long long)o,
                                 (long long)ga[o], (long long)want);
                }
            free(gs), free(gx), free(gn), free(gm), free(ga);
            ferry_tensor_release(rs), ferry_tensor_release(rx), ferry_tensor_release(rn);
            ferry_tensor_release(rm), ferry_tensor_release(ra);
        }
        ferry_tensor_release(t);
    }
    free(v);
    /* float16 columns of 5000 ones: float32 accumulators. */
    int64_t hs[2] = {5000, 8};
    ferry_tensor *h = ferry_ones(FERRY_FLOAT16, 2, hs, "cpu");
    int d0 = 0;
    double *hv = take_doubles(ferry_sum(h, 1, &d0, false));
    for (int i = 0; i < 8; i++)
        assert_true(hv[i] == 5000.0);
    free(hv);
    ferry_tensor_release(h);
}

/* ---- elementwise ---- */

static void test_integer_arithmetic_wraps(void **state)
{
    (void)state;
    int32_t a[4] = {INT32_MAX, INT32_MIN, 65536, -7};
    int32_t b[4] = {1, -1, 65536, 3};
    int64_t n = 4;
    ferry_tensor *ta = ferry_tensor_from_data(a, FERRY_INT32, 1, &n, "cpu");
    ferry_tensor *tb = ferry_tensor_from_data(b, FERRY_INT32, 1, &n, "cpu");
    int32_t r[4];
    ferry_tensor *s = ferry_add(ta, tb);
    assert_ok(ferry_tensor_copy_to_host(s, r, sizeof r));
    assert_true(r[0] == INT32_MIN && r[1] == INT32_MAX && r[2] == 131072 && r[3] == -4);
    ferry_tensor *d = ferry_sub(ta, tb);
    assert_ok(ferry_tensor_copy_to_host(d, r, sizeof r));
    assert_true(r[0] == INT32_MAX - 1 && r[1] == INT32_MIN + 1 && r[2] == 0 && r[3] == -10);
    ferry_tensor *m = ferry_mul(ta, tb);
    assert_ok(ferry_tensor_copy_to_host(m, r, sizeof r));
    assert_true(r[0] == INT32_MAX && r[1] == INT32_MIN && r[2] == 0 && r[3] == -21);
    ferry_tensor *ng = ferry_neg(ta), *ab = ferry_abs(ta);
    assert_ok(ferry_tensor_copy_to_host(ng, r, sizeof r));
    assert_true(r[0] == -INT32_MAX && r[1] == INT32_MIN && r[2] == -65536 && r[3] == 7);
    assert_ok(ferry_tensor_copy_to_host(ab, r, sizeof r));
    assert_true(r[0] == INT32_MAX && r[1] == INT32_MIN && r[2] == 65536 && r[3] == 7);
    ferry_tensor_release(s), ferry_tensor_release(d), ferry_tensor_release(m);
    ferry_tensor_release(ng), ferry_tensor_release(ab);
    ferry_tensor_release(ta), ferry_tensor_release(tb);

    /* int16 * int16 is promoted to int by C; 300 * 300 must still wrap to int16. */
    int16_t h[2] = {300, INT16_MIN};
    int64_t two = 2;
    ferry_tensor *th = ferry_tensor_from_data(h, FERRY_INT16, 1, &two, "cpu");
    ferry_tensor *hh = ferry_mul(th, th), *hn = ferry_neg(th);
    int16_t hr[2];
    assert_ok(ferry_tensor_copy_to_host(hh, hr, sizeof hr));
    assert_true(hr[0] == (int16_t)(90000 - 65536 * 1) && hr[1] == 0);
    assert_ok(ferry_tensor_copy_to_host(hn, hr, sizeof hr));
    assert_true(hr[0] == -300 && hr[1] == INT16_MIN);
    ferry_tensor_release(hh), ferry_tensor_release(hn), ferry_tensor_release(th);

    /* uint8 wraps modulo 256, in both directions. */
    uint8_t u[2] = {250, 3};
    ferry_tensor *tu = ferry_tensor_from_data(u, FERRY_UINT8, 1, &two, "cpu");
    ferry_tensor *us = ferry_add_scalar(tu, 10), *un = ferry_neg(tu);
    uint8_t ur[2];
    assert_ok(ferry_tensor_copy_to_host(us, ur, sizeof ur));
    assert_true(ur[0] == 4 && ur[1] == 13);
    assert_ok(ferry_tensor_copy_to_host(un, ur, sizeof ur));
    assert_true(ur[0] == 6 && ur[1] == 253);
    ferry_tensor_release(us), ferry_tensor_release(un), ferry_tensor_release(tu);
}

static void test_integer_pow_squares_and_follows_the_negative_rule(void **state)
{
    (void)state;
    int32_t base[9] = {2, 3, -2, 1, -1, -1, 0, 5, 3};
    int32_t ex[9] = {10, 3, 3, -1, -3, -4, -2, 0, 40};
    int64_t n = 9;
    ferry_tensor *tb = ferry_tensor_from_data(base, FERRY_INT32, 1, &n, "cpu");
    ferry_tensor *te = ferry_tensor_from_data(ex, FERRY_INT32, 1, &n, "cpu");
    ferry_tensor *p = ferry_pow(tb, te);
    assert_tensor(p);
    assert_int_equal(ferry_tensor_dtype(p), FERRY_INT32);
    int32_t r[9];
    assert_ok(ferry_tensor_copy_to_host(p, r, sizeof r));
    uint32_t w = 1;
    for (int i = 0; i < 40; i++)
        w *= 3u;
    int32_t want[9] = {1024, 27, -8, 1, -1, 1, 0, 1, (int32_t)w};
    for (int i = 0; i < 9; i++)
        if (r[i] != want[i])
            fail_msg("pow element %d: got %d, want %d", i, r[i], want[i]);
    ferry_tensor_release(p), ferry_tensor_release(tb), ferry_tensor_release(te);

    /* int64 ** scalar stays int64 and exact up to 2^62. */
    int64_t b64[2] = {2, -3};
    int64_t two = 2;
    ferry_tensor *t64 = ferry_tensor_from_data(b64, FERRY_INT64, 1, &two, "cpu");
    ferry_tensor *p64 = ferry_pow_scalar(t64, 39);
    int64_t r64[2];
    assert_ok(ferry_tensor_copy_to_host(p64, r64, sizeof r64));
    assert_true(r64[0] == (int64_t)1 << 39 && r64[1] == -4052555153018976267LL);
    ferry_tensor_release(p64), ferry_tensor_release(t64);

    /* Bool arithmetic is logical (pow of bool is refused by the core, as by PyTorch). */
    uint8_t x[4] = {0, 0, 1, 1}, y[4] = {0, 1, 0, 1};
    int64_t four = 4;
    ferry_tensor *bx = ferry_tensor_from_data(x, FERRY_BOOL, 1, &four, "cpu");
    ferry_tensor *by = ferry_tensor_from_data(y, FERRY_BOOL, 1, &four, "cpu");
    ferry_tensor *ba = ferry_add(bx, by), *bm = ferry_mul(bx, by);
    ferry_tensor *bmax = ferry_maximum(bx, by), *bmin = ferry_minimum(bx, by);
    uint8_t rb[4];
    assert_ok(ferry_tensor_copy_to_host(ba, rb, 4));
    assert_true(rb[0] == 0 && rb[1] == 1 && rb[2] == 1 && rb[3] == 1);
    assert_ok(ferry_tensor_copy_to_host(bm, rb, 4));
    assert_true(rb[0] == 0 && rb[1] == 0 && rb[2] == 0 && rb[3] == 1);
    assert_ok(ferry_tensor_copy_to_host(bmax, rb, 4));
    assert_true(rb[0] == 0 && rb[1] == 1 && rb[2] == 1 && rb[3] == 1);
    assert_ok(ferry_tensor_copy_to_host(bmin, rb, 4));
    assert_true(rb[0] == 0 && rb[1] == 0 && rb[2] == 0 && rb[3] == 1);
    ferry_tensor_release(ba), ferry_tensor_release(bm);
    ferry_tensor_release(bmax), ferry_tensor_release(bmin);
    ferry_tensor_release(bx), ferry_tensor_release(by);
}

/* Reference for one binary op on doubles (as the kernels compute, before rounding to
 * the dtype). */
static double ref_binary(int op, double a, double b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case 5: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case 6: return a == b;
    case 7: return a != b;
    case 8: return a < b;
    case 9: return a <= b;
    case 10: return a > b;
    default: return a >= b;
    }
}

static ferry_tensor *run_binary(int op, ferry_tensor *a, ferry_tensor *b)
{
    switch (op) {
    case 0: return ferry_add(a, b);
    case 1: return ferry_sub(a, b);
    case 2: return ferry_mul(a, b);
    case 3: return ferry_div(a, b);
    case 4: return ferry_maximum(a, b);
    case 5: return ferry_minimum(a, b);
    case 6: return ferry_eq(a, b);
    case 7: return ferry_ne(a, b);
    case 8: return ferry_lt(a, b);
    case 9: return ferry_le(a, b);
    case 10: return ferry_gt(a, b);
    default: return ferry_ge(a, b);
    }
}

/* Every binary op on every float dtype over several geometries: contiguous, b a scalar,
 * a a scalar, a row broadcast, a column broadcast, a transposed operand, and negative
 * strides; sizes small (one thread) and large (OpenMP). Values are multiples of 2^-8
 * in [-1, 1), so +, -, * are exact in every float dtype but bfloat16's products. */
static void test_binary_ops_over_broadcast_and_strided_geometries(void **state)
{
    (void)state;
    int64_t sizes[2][2] = {{5, 7}, {300, 257}};
    ferry_dtype types[4] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int si = 0; si < 2; si++) {
        int64_t M = sizes[si][0], N = sizes[si][1];
        int64_t full[2] = {M, N}, rowv[2] = {1, N}, colv[2] = {M, 1}, tshape[2] = {N, M};
        size_t mn = (size_t)(M * N);
        double *av = malloc(mn * sizeof *av), *bv = malloc(mn * sizeof *bv);
        double *atv = malloc(mn * sizeof *atv);
        for (size_t i = 0; i < mn; i++) {
            av[i] = rng_small();
            bv[i] = rng_small();
            if (i % 5 == 0)
                bv[i] = av[i]; /* ties for the comparisons */
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                atv[j * M + i] = av[i * N + j];
        for (int ti = 0; ti < 4; ti++) {
            ferry_dtype dt = types[ti];
            ferry_tensor *a = from_doubles(av, dt, 2, full);
            ferry_tensor *b = from_doubles(bv, dt, 2, full);
            ferry_tensor *brow = from_doubles(bv, dt, 2, rowv);
            ferry_tensor *bcol = from_doubles(bv, dt, 2, colv);
            ferry_tensor *bsc = from_doubles(bv, dt, 0, NULL);
            ferry_tensor *at_store = from_doubles(atv, dt, 2, tshape);
            ferry_tensor *at = ferry_transpose(at_store, 0, 1); /* a's values, strided */
            /* b reversed along dim 1 through a blob with a negative stride. */
            ferry_tensor *bc = ferry_tensor_contiguous(b);
            int64_t negs[2] = {N, -1};
            ferry_tensor *brev = ferry_tensor_from_blob(
                (char *)ferry_tensor_host_data(bc) + (size_t)(N - 1) * ferry_dtype_size(dt), dt,
                2, full, negs, NULL, NULL);
            assert_tensor(brev);
            double *a_d = to_doubles(a), *b_d = to_doubles(b);
            for (int op = 0; op < 12; op++) {
                ferry_tensor *cases[6][2] = {{a, b},  {a, bsc}, {bsc, a},
                                             {a, brow}, {at, bcol}, {at, brev}};
                for (int c = 0; c < 6; c++) {
                    ferry_tensor *r = run_binary(op, cases[c][0], cases[c][1]);
                    assert_tensor(r);
                    assert_int_equal(ferry_tensor_dtype(r), op >= 6 ? FERRY_BOOL : dt);
                    double *g = to_doubles(r);
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < N; j++) {
                            double x = a_d[i * N + j], y;
                            switch (c) {
                            case 1: y = b_d[0]; break;
                            case 2: y = x, x = b_d[0]; break;
                            case 3: y = b_d[j]; break;
                            case 4: y = b_d[i]; break; /* bcol holds bv[0 .. M) */
                            case 5: y = b_d[i * N + (N - 1 - j)]; break;
                            default: y = b_d[i * N + j]; break;
                            }
                            double want = ref_binary(op, x, y);
                            double got = g[i * N + j];
                            double tol = (dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16)
                                             ? (dt == FERRY_BFLOAT16 ? 8e-3 : 1e-3)
                                             : (dt == FERRY_FLOAT32 ? 1e-7 : 1e-15);
                            if (op == 3 && y == 0)
                                continue;
                            if (!same(got, want) &&
                                !(fabs(got - want) <= tol * (1 + fabs(want))))
                                fail_msg("op %d case %d dtype %s [%lld, %lld]: %g op %g = %g, "
                                         "want %g",
                                         op, c, ferry_dtype_name(dt), (long long)i, (long long)j,
                                         x, y, got, want);
                        }
                    free(g);
                    ferry_tensor_release(r);
                }
            }
            free(a_d), free(b_d);
            ferry_tensor_release(a), ferry_tensor_release(b), ferry_tensor_release(brow);
            ferry_tensor_release(bcol), ferry_tensor_release(bsc), ferry_tensor_release(at);
            ferry_tensor_release(at_store), ferry_tensor_release(brev);
            ferry_tensor_release(bc);
        }
        free(av), free(bv), free(atv);
    }
}

static void test_binary_integer_dtypes_and_out_aliasing(void **state)
{
    (void)state;
    /* Every integer dtype, contiguous and with a scalar, large enough for threads. */
    int64_t n = 100003;
    for (int dt = FERRY_UINT8; dt <= FERRY_INT64; dt++) {
        ferry_tensor *a = ferry_arange(0, (double)n, 1, FERRY_INT64, "cpu");
        ferry_tensor *ad = ferry_tensor_to_dtype(a, (ferry_dtype)dt);
        ferry_tensor *r = ferry_add_scalar(ad, 3);
        ferry_tensor *c = ferry_lt_scalar(ad, 100);
        assert_tensor(r);
        assert_tensor(c);
        assert_int_equal(ferry_tensor_dtype(r), dt);
        double *rv = to_doubles(r), *cv = to_doubles(c);
        int bits = (int)ferry_dtype_size((ferry_dtype)dt) * 8;
        for (int64_t i = 0; i < n; i += 997) {
            int64_t stored = i, want = i + 3;
            if (bits < 64) {
                uint64_t mask = (1ull << bits) - 1;
                stored = (int64_t)((uint64_t)i & mask);
                want = (int64_t)(((uint64_t)i + 3) & mask);
                if (dt != FERRY_UINT8) {
                    if (stored >= (1ll << (bits - 1)))
                        stored -= 1ll << bits;
                    if (want >= (1ll << (bits - 1)))
                        want -= 1ll << bits;
                }
            }
            if (rv[i] != (double)want)
                fail_msg("%s add at %lld: got %g, want %lld", ferry_dtype_name((ferry_dtype)dt),
                         (long long)i, rv[i], (long long)want);
            assert_true(cv[i] == (stored < 100 ? 1.0 : 0.0));
        }
        free(rv), free(cv);
        /* out aliasing an input exactly: a += a in place. */
        assert_ok(ferry_add_out(ad, ad, ad));
        double *dv = to_doubles(ad);
        for (int64_t i = 0; i < 50; i++)
            assert_true(dv[i] == 2.0 * (double)i);
        free(dv);
        ferry_tensor_release(a), ferry_tensor_release(ad);
        ferry_tensor_release(r), ferry_tensor_release(c);
    }
}

/* The 16-bit float kernels convert tiles (with F16C instructions where the CPU has
 * them) instead of single elements: every bit pattern must give the bits that the
 * element-wise conversions of ferry/half.h give, subnormals, rounding ties and overflow
 * included. */
static uint16_t ref_half(ferry_dtype dt, float v)
{
    return dt == FERRY_FLOAT16 ? ferry_f32_to_f16(v) : ferry_f32_to_bf16(v);
}

static float ref_float(ferry_dtype dt, uint16_t h)
{
    return dt == FERRY_FLOAT16 ? ferry_f16_to_f32(h) : ferry_bf16_to_f32(h);
}

static void test_half_kernels_match_elementwise_conversion_bit_for_bit(void **state)
{
    (void)state;
    int64_t n = 65536;
    uint16_t *a = malloc((size_t)n * 2), *b = malloc((size_t)n * 2), *r = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) {
        a[i] = (uint16_t)i;
        b[i] = (uint16_t)(i * 40503u + 12345u); /* a permutation of all patterns */
    }
    ferry_dtype types[2] = {FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int ti = 0; ti < 2; ti++) {
        ferry_dtype dt = types[ti];
        ferry_tensor *ta = ferry_tensor_from_data(a, dt, 1, &n, "cpu");
        ferry_tensor *tb = ferry_tensor_from_data(b, dt, 1, &n, "cpu");
        for (int op = 0; op < 6; op++) {
            ferry_tensor *t = op == 0 ? ferry_add(ta, tb) : op == 1 ? ferry_mul(ta, tb)
                              : op == 2 ? ferry_div(ta, tb) : op == 3 ? ferry_maximum(ta, tb)
                              : op == 4 ? ferry_neg(ta) : ferry_sqrt(ta);
            assert_tensor(t);
            assert_ok(ferry_tensor_copy_to_host(t, r, (size_t)n * 2));
            for (int64_t i = 0; i < n; i++) {
                float x = ref_float(dt, a[i]), y = ref_float(dt, b[i]);
                float w = op == 0 ? x + y : op == 1 ? x * y : op == 2 ? x / y
                          : op == 3 ? ((x > y || x != x) ? x : y) : op == 4 ? -x : sqrtf(x);
                uint16_t want = ref_half(dt, w);
                /* Which operand's NaN payload an addition keeps is the hardware's (and
                 * the compiler's operand order's) choice: NaN only has to stay NaN. */
                if (w != w && ref_float(dt, r[i]) != ref_float(dt, r[i]))
                    continue;
                if (r[i] != want)
                    fail_msg("%s op %d: %04x, %04x -> %04x, want %04x", ferry_dtype_name(dt), op,
                             a[i], b[i], r[i], want);
            }
            ferry_tensor_release(t);
        }
        ferry_tensor *lt = ferry_lt(ta, tb);
        uint8_t *lv = malloc((size_t)n);
        assert_ok(ferry_tensor_copy_to_host(lt, lv, (size_t)n));
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(lv[i], ref_float(dt, a[i]) < ref_float(dt, b[i]));
        free(lv);
        ferry_tensor_release(lt);
        ferry_tensor_release(ta), ferry_tensor_release(tb);
    }
    free(a), free(b), free(r);
}

static void test_unary_ops_match_libm_on_strided_inputs(void **state)
{
    (void)state;
    int64_t shape[2] = {300, 200};
    size_t n = 60000;
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = rng_small() * 4;
    v[7] = NAN;
    ferry_dtype types[4] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int ti = 0; ti < 4; ti++) {
        ferry_tensor *t = from_doubles(v, types[ti], 2, shape);
        ferry_tensor *tt = ferry_transpose(t, 0, 1); /* [200, 300], strided */
        ferry_tensor *sl = ferry_slice(tt, 1, 1, 300, 3);  /* [200, 100] */
        double *x = to_doubles(sl);
        size_t m = (size_t)ferry_tensor_numel(sl);
        for (int op = 0; op < 10; op++) {
            ferry_tensor *r = NULL;
            switch (op) {
            case 0: r = ferry_neg(sl); break;
            case 1: r = ferry_abs(sl); break;
            case 2: r = ferry_exp(sl); break;
            case 3: r = ferry_log(sl); break;
            case 4: r = ferry_sqrt(sl); break;
            case 5: r = ferry_sin(sl); break;
            case 6: r = ferry_cos(sl); break;
            case 7: r = ferry_tanh(sl); break;
            case 8: r = ferry_sigmoid(sl); break;
            default: r = ferry_relu(sl); break;
            }
            assert_tensor(r);
            double *g = to_doubles(r);
            double tol = types[ti] == FERRY_FLOAT64 ? 1e-14
                         : types[ti] == FERRY_FLOAT32 ? 1e-6
                         : types[ti] == FERRY_FLOAT16 ? 1e-3 : 8e-3;
            for (size_t i = 0; i < m; i++) {
                double a = x[i], w;
                switch (op) {
                case 0: w = -a; break;
                case 1: w = fabs(a); break;
                case 2: w = exp(a); break;
                case 3: w = log(a); break;
                case 4: w = sqrt(a); break;
                case 5: w = sin(a); break;
                case 6: w = cos(a); break;
                case 7: w = tanh(a); break;
                case 8: w = 1 / (1 + exp(-a)); break;
                default: w = isnan(a) ? a : a > 0 ? a : 0; break;
                }
                if (isinf(w) && isinf(g[i]) && (w > 0) == (g[i] > 0))
                    continue;
                if (!same(g[i], w) && !(fabs(g[i] - w) <= tol * (1 + fabs(w))))
                    fail_msg("unary %d dtype %s element %zu: f(%g) = %g, want %g", op,
                             ferry_dtype_name(types[ti]), i, a, g[i], w);
            }
            free(g);
            ferry_tensor_release(r);
        }
        free(x);
        ferry_tensor_release(sl), ferry_tensor_release(tt), ferry_tensor_release(t);
    }
    free(v);
}

static void test_kernels_accept_unaligned_blobs(void **state)
{
    (void)state;
    /* float32 elements at an odd address: typed loads would be misaligned. */
    enum { N = 40 };
    unsigned char *raw = malloc(N * 4 + 8);
    float vals[N];
    for (int i = 0; i < N; i++)
        vals[i] = (float)i;
    memcpy(raw + 1, vals, sizeof vals);
    int64_t n = N, mshape[2] = {5, 8}, kshape[2] = {8, 5};
    ferry_tensor *t = ferry_tensor_from_blob(raw + 1, FERRY_FLOAT32, 1, &n, NULL, NULL, NULL);
    assert_tensor(t);
    ferry_tensor *s = ferry_add(t, t);
    double *sv = to_doubles(s);
    for (int i = 0; i < N; i++)
        assert_true(sv[i] == 2.0 * i);
    free(sv);
    assert_true(scalar_of(ferry_sum(t, 0, NULL, false)) == 780.0);
    assert_int_equal(int64_of(ferry_argmax(t, 0, NULL, false)), 39);
    ferry_tensor *a = ferry_tensor_from_blob(raw + 1, FERRY_FLOAT32, 2, mshape, NULL, NULL, NULL);
    ferry_tensor *b = ferry_tensor_from_blob(raw + 1, FERRY_FLOAT32, 2, kshape, NULL, NULL, NULL);
    ferry_tensor *mm = ferry_matmul(a, b);
    double *mv = to_doubles(mm);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            double w = 0;
            for (int k = 0; k < 8; k++)
                w += (double)vals[i * 8 + k] * vals[k * 5 + j];
            assert_true(mv[i * 5 + j] == w);
        }
    free(mv);
    ferry_tensor_release(mm), ferry_tensor_release(a), ferry_tensor_release(b);
    /* The same bytes as int32 (typed integer loops) and float16 (tile conversions) at
     * odd addresses: copied to aligned temporaries first. */
    int32_t ivals[N];
    for (int i = 0; i < N; i++)
        ivals[i] = i - 7;
    memcpy(raw + 1, ivals, sizeof ivals);
    ferry_tensor *ia = ferry_tensor_from_blob(raw + 1, FERRY_INT32, 2, mshape, NULL, NULL, NULL);
    ferry_tensor *ib = ferry_tensor_from_blob(raw + 1, FERRY_INT32, 2, kshape, NULL, NULL, NULL);
    ferry_tensor *im = ferry_matmul(ia, ib);
    double *iv = take_doubles(im);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            double w = 0;
            for (int k = 0; k < 8; k++)
                w += (double)ivals[i * 8 + k] * ivals[k * 5 + j];
            assert_true(iv[i * 5 + j] == w);
        }
    free(iv);
    ferry_tensor_release(ia), ferry_tensor_release(ib);
    uint16_t hv[N];
    for (int i = 0; i < N; i++)
        hv[i] = ferry_f32_to_f16((float)i);
    memcpy(raw + 1, hv, sizeof hv);
    ferry_tensor *h = ferry_tensor_from_blob(raw + 1, FERRY_FLOAT16, 1, &n, NULL, NULL, NULL);
    double *hs = take_doubles(ferry_add(h, h));
    for (int i = 0; i < N; i++)
        assert_true(hs[i] == 2.0 * i);
    free(hs);
    assert_true(scalar_of(ferry_sum(h, 0, NULL, false)) == 780.0);
    ferry_tensor *ha = ferry_tensor_from_blob(raw + 1, FERRY_FLOAT16, 2, mshape, NULL, NULL, NULL);
    ferry_tensor *hb = ferry_tensor_from_blob(raw + 1, FERRY_FLOAT16, 2, kshape, NULL, NULL, NULL);
    double *hm = take_doubles(ferry_matmul(ha, hb));
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            double w = 0;
            for (int k = 0; k < 8; k++)
                w += (double)vals[i * 8 + k] * vals[k * 5 + j];
            assert_true(hm[i * 5 + j] == (double)ferry_f16_to_f32(ferry_f32_to_f16((float)w)));
        }
    free(hm);
    ferry_tensor_release(ha), ferry_tensor_release(hb), ferry_tensor_release(h);
    ferry_tensor_release(s), ferry_tensor_release(t);
    free(raw);
}

/* ---- matmul ---- */

/* Reference [B?, M, N] product of row-major doubles; a_batch/b_batch 0 broadcast. */
static void ref_matmul(const double *a, const double *b, double *c, int64_t B, int64_t M,
                       int64_t N, int64_t K, bool a_batched, bool b_batched)
{
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += a[(a_batched ? bi * M * K : 0) + i * K + k] *
                         b[(b_batched ? bi * K * N : 0) + k * N + j];
                c[(bi * M + i) * N + j] = s;
            }
}

static double *random_doubles(size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = rng_small();
    return v;
}

static void test_matmul_of_transposed_operands_matches_reference(void **state)
{
    (void)state;
    /* Small (haswell-sized) and large (skx-sized) products; float32 and float64. */
    int64_t dims[3][3] = {{7, 5, 3}, {64, 33, 40}, {260, 250, 230}};
    ferry_dtype types[2] = {FERRY_FLOAT32, FERRY_FLOAT64};
    for (int di = 0; di < 3; di++) {
        int64_t M = dims[di][0], N = dims[di][1], K = dims[di][2];
        double *av = random_doubles((size_t)(M * K)), *bv = random_doubles((size_t)(K * N));
        double *atv = malloc((size_t)(M * K) * sizeof *atv), *btv = malloc((size_t)(K * N) * sizeof *btv);
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++)
                atv[k * M + i] = av[i * K + k];
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++)
                btv[j * K + k] = bv[k * N + j];
        double *want = malloc((size_t)(M * N) * sizeof *want);
        ref_matmul(av, bv, want, 1, M, N, K, false, false);
        for (int ti = 0; ti < 2; ti++) {
            int64_t as[2] = {M, K}, ats[2] = {K, M}, bs[2] = {K, N}, bts[2] = {N, K};
            ferry_tensor *a = from_doubles(av, types[ti], 2, as);
            ferry_tensor *b = from_doubles(bv, types[ti], 2, bs);
            ferry_tensor *at_s = from_doubles(atv, types[ti], 2, ats);
            ferry_tensor *bt_s = from_doubles(btv, types[ti], 2, bts);
            ferry_tensor *at = ferry_transpose(at_s, 0, 1), *bt = ferry_transpose(bt_s, 0, 1);
            /* a slice with a row step: neither row- nor column-unit-stride, copied. */
            int64_t bigs[2] = {M, 2 * K};
            double *wide = malloc((size_t)(M * 2 * K) * sizeof *wide);
            for (int64_t i = 0; i < M; i++)
                for (int64_t k = 0; k < K; k++)
                    wide[i * 2 * K + 2 * k] = av[i * K + k], wide[i * 2 * K + 2 * k + 1] = 99;
            ferry_tensor *w = from_doubles(wide, types[ti], 2, bigs);
            ferry_tensor *ag = ferry_slice(w, 1, 0, 2 * K, 2);
            ferry_tensor *pairs[5][2] = {{a, b}, {at, b}, {a, bt}, {at, bt}, {ag, bt}};
            for (int p = 0; p < 5; p++) {
                ferry_tensor *r = ferry_matmul(pairs[p][0], pairs[p][1]);
                assert_tensor(r);
                double *g = to_doubles(r);
                assert_close(g, want, (size_t)(M * N), types[ti] == FERRY_FLOAT32 ? 1e-5 : 1e-12);
                free(g);
                ferry_tensor_release(r);
            }
            free(wide);
            ferry_tensor_release(w), ferry_tensor_release(ag);
            ferry_tensor_release(a), ferry_tensor_release(b), ferry_tensor_release(at);
            ferry_tensor_release(bt), ferry_tensor_release(at_s), ferry_tensor_release(bt_s);
        }
        free(av), free(bv), free(atv), free(btv), free(want);
    }
}

static void test_matmul_vectors_and_dot(void **state)
{
    (void)state;
    double a[3] = {1, 2, 3}, b[3] = {4, 5, 6}, m[6] = {1, 2, 3, 4, 5, 6};
    int64_t three = 3, ms[2] = {2, 3};
    ferry_tensor *ta = from_doubles(a, FERRY_FLOAT32, 1, &three);
    ferry_tensor *tb = from_doubles(b, FERRY_FLOAT32, 1, &three);
    ferry_tensor *tm = from_doubles(m, FERRY_FLOAT32, 2, ms);
    assert_true(scalar_of(ferry_matmul(ta, tb)) == 32.0);
    double *mv = take_doubles(ferry_matmul(tm, tb)); /* [2] */
    assert_true(mv[0] == 32 && mv[1] == 77);
    free(mv);
    ferry_tensor *tmt = ferry_transpose(tm, 0, 1); /* [3, 2] */
    ferry_tensor *vm = ferry_matmul(ta, tmt);
    double *vv = to_doubles(vm);
    assert_true(vv[0] == 14 && vv[1] == 32);
    free(vv);
    ferry_tensor_release(vm);
    ferry_tensor_release(ta), ferry_tensor_release(tb), ferry_tensor_release(tm);
    ferry_tensor_release(tmt);
}

static void test_batched_matmul_broadcasts_the_batch(void **state)
{
    (void)state;
    int64_t B = 3, M = 9, N = 6, K = 5;
    double *av = random_doubles((size_t)(B * M * K)), *bv = random_doubles((size_t)(K * N));
    double *b3 = random_doubles((size_t)(B * K * N));
    double *want = malloc((size_t)(B * M * N) * sizeof *want);
    int64_t as[3] = {B, M, K}, bs[2] = {K, N}, b3s[3] = {B, K, N};
    for (int dt = FERRY_FLOAT32; dt <= FERRY_FLOAT64; dt++) {
        ferry_tensor *a = from_doubles(av, (ferry_dtype)dt, 3, as);
        ferry_tensor *b = from_doubles(bv, (ferry_dtype)dt, 2, bs);
        ferry_tensor *bb = from_doubles(b3, (ferry_dtype)dt, 3, b3s);
        /* [3, M, K] x [K, N]: b's batch stride is 0. */
        ferry_tensor *r = ferry_matmul(a, b);
        assert_tensor(r);
        assert_int_equal(ferry_tensor_ndim(r), 3);
        ref_matmul(av, bv, want, B, M, N, K, true, false);
        double *g = to_doubles(r);
        assert_close(g, want, (size_t)(B * M * N), 1e-6);
        free(g);
        /* [M, K] (a's first batch) x [3, K, N]. */
        ferry_tensor *a0 = ferry_slice(a, 0, 0, 1, 1);
        ferry_tensor *a2 = ferry_squeeze(a0, 0);
        ferry_tensor *r2 = ferry_matmul(a2, bb);
        ref_matmul(av, b3, want, B, M, N, K, false, true);
        g = to_doubles(r2);
        assert_close(g, want, (size_t)(B * M * N), 1e-6);
        free(g);
        /* [2, 1, M, K] x [3, K, N] -> [2, 3, M, N]: a broadcast next to a real dim. */
        int64_t a4s[4] = {2, 1, M, K};
        ferry_tensor *a2b = ferry_slice(a, 0, 0, 2, 1);
        ferry_tensor *a4 = ferry_reshape(a2b, 4, a4s);
        ferry_tensor *r4 = ferry_matmul(a4, bb);
        assert_tensor(r4);
        assert_int_equal(ferry_tensor_shape(r4)[0], 2);
        assert_int_equal(ferry_tensor_shape(r4)[1], 3);
        g = to_doubles(r4);
        for (int64_t x = 0; x < 2; x++) {
            ref_matmul(av + x * M * K, b3, want, B, M, N, K, false, true);
            assert_close(g + x * B * M * N, want, (size_t)(B * M * N), 1e-6);
        }
        free(g);
        ferry_tensor_release(r), ferry_tensor_release(r2), ferry_tensor_release(r4);
        ferry_tensor_release(a0), ferry_tensor_release(a2), ferry_tensor_release(a2b);
        ferry_tensor_release(a4);
        ferry_tensor_release(a), ferry_tensor_release(b), ferry_tensor_release(bb);
    }
    /* Many small products run one per thread. */
    int64_t NB = 64, sm[3] = {64, 8, 8};
    double *x = random_doubles(512 * 8);
    double *wx = malloc(512 * 8 * sizeof *wx);
    ferry_tensor *tx = from_doubles(x, FERRY_FLOAT32, 3, sm);
    ferry_tensor *tr = ferry_transpose(tx, 1, 2);
    ferry_tensor *rx = ferry_matmul(tx, tr);
    double *xt = malloc(512 * 8 * sizeof *xt);
    for (int64_t bi = 0; bi < NB; bi++)
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++)
                xt[bi * 64 + j * 8 + i] = x[bi * 64 + i * 8 + j];
    for (int64_t bi = 0; bi < NB; bi++)
        ref_matmul(x + bi * 64, xt + bi * 64, wx + bi * 64, 1, 8, 8, 8, false, false);
    double *g = to_doubles(rx);
    assert_close(g, wx, 512, 1e-6);
    free(g), free(x), free(wx), free(xt);
    ferry_tensor_release(tx), ferry_tensor_release(tr), ferry_tensor_release(rx);
    free(av), free(bv), free(b3), free(want);
}

static void test_integer_matmul_is_exact_and_wraps(void **state)
{
    (void)state;
    int64_t M = 13, N = 11, K = 17;
    int64_t as[2] = {M, K}, bs[2] = {K, N};
    int64_t *a = malloc((size_t)(M * K) * sizeof *a), *b = malloc((size_t)(K * N) * sizeof *b);
    for (int64_t i = 0; i < M * K; i++)
        a[i] = (int64_t)(rng_next() % 2000001) - 1000000;
    for (int64_t i = 0; i < K * N; i++)
        b[i] = (int64_t)(rng_next() % 2000001) - 1000000;
    ferry_dtype types[5] = {FERRY_INT64, FERRY_INT32, FERRY_INT16, FERRY_INT8, FERRY_UINT8};
    for (int ti = 0; ti < 5; ti++) {
        ferry_tensor *a64 = ferry_tensor_from_data(a, FERRY_INT64, 2, as, "cpu");
        ferry_tensor *b64 = ferry_tensor_from_data(b, FERRY_INT64, 2, bs, "cpu");
        ferry_tensor *ta = ferry_tensor_to_dtype(a64, types[ti]);
        ferry_tensor *tb = ferry_tensor_to_dtype(b64, types[ti]);
        ferry_tensor *tbtv = ferry_transpose(tb, 0, 1);
        ferry_tensor *tbt = ferry_tensor_contiguous(tbtv);
        ferry_tensor *tbv = ferry_transpose(tbt, 0, 1); /* b's values, column-major */
        ferry_tensor_release(tbtv);
        int bits = (int)ferry_dtype_size(types[ti]) * 8;
        for (int variant = 0; variant < 2; variant++) {
            ferry_tensor *r = ferry_matmul(ta, variant ? tbv : tb);
            assert_tensor(r);
            assert_int_equal(ferry_tensor_dtype(r), types[ti]);
            ferry_tensor *r64 = ferry_tensor_to_dtype(r, FERRY_INT64);
            int64_t *g = malloc((size_t)(M * N) * sizeof *g);
            assert_ok(ferry_tensor_copy_to_host(r64, g, (size_t)(M * N) * sizeof *g));
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    /* The reference wraps at the dtype's width, from wrapped inputs. */
                    uint64_t s = 0, mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
                    for (int64_t k = 0; k < K; k++)
                        s += ((uint64_t)a[i * K + k] & mask) * ((uint64_t)b[k * N + j] & mask);
                    s &= mask;
                    int64_t w = (int64_t)s;
                    if (bits < 64 && types[ti] != FERRY_UINT8 && w >= (1ll << (bits - 1)))
                        w -= 1ll << bits;
                    if (g[i * N + j] != w)
                        fail_msg("%s matmul [%lld, %lld]: got %lld, want %lld",
                                 ferry_dtype_name(types[ti]), (long long)i, (long long)j,
                                 (long long)g[i * N + j], (long long)w);
                }
            free(g);
            ferry_tensor_release(r64), ferry_tensor_release(r);
        }
        ferry_tensor_release(a64), ferry_tensor_release(b64), ferry_tensor_release(ta);
        ferry_tensor_release(tb), ferry_tensor_release(tbt), ferry_tensor_release(tbv);
    }
    free(a), free(b);
}

static void test_half_precision_matmul_accumulates_in_float32(void **state)
{
    (void)state;
    /* 4096 products of 1 * 1: exact in float32, but a float16 accumulator would stop
     * at 2048. */
    int64_t as[2] = {2, 4096}, bs[2] = {4096, 3};
    ferry_dtype types[2] = {FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int ti = 0; ti < 2; ti++) {
        ferry_tensor *a = ferry_ones(types[ti], 2, as, "cpu");
        ferry_tensor *b = ferry_ones(types[ti], 2, bs, "cpu");
        ferry_tensor *r = ferry_matmul(a, b);
        assert_tensor(r);
        assert_int_equal(ferry_tensor_dtype(r), types[ti]);
        double *g = to_doubles(r);
        for (int i = 0; i < 6; i++)
            assert_true(g[i] == 4096.0);
        free(g);
        ferry_tensor_release(r), ferry_tensor_release(a), ferry_tensor_release(b);
    }
    /* Random values against the reference, with a transposed float16 operand. */
    int64_t M = 40, N = 30, K = 50;
    double *av = random_doubles((size_t)(M * K)), *bv = random_doubles((size_t)(K * N));
    double *want = malloc((size_t)(M * N) * sizeof *want);
    ref_matmul(av, bv, want, 1, M, N, K, false, false);
    int64_t ms[2] = {M, K}, ns[2] = {K, N};
    for (int ti = 0; ti < 2; ti++) {
        ferry_tensor *a = from_doubles(av, types[ti], 2, ms);
        ferry_tensor *b = from_doubles(bv, types[ti], 2, ns);
        ferry_tensor *btv = ferry_transpose(b, 0, 1);
        ferry_tensor *bc = ferry_tensor_contiguous(btv);
        ferry_tensor *bt = ferry_transpose(bc, 0, 1);
        ferry_tensor_release(btv);
        ferry_tensor *r = ferry_matmul(a, bt);
        double *g = to_doubles(r);
        /* Inputs are exact in both formats; only the final rounding differs. */
        assert_close(g, want, (size_t)(M * N), types[ti] == FERRY_FLOAT16 ? 1e-3 : 8e-3);
        free(g);
        ferry_tensor_release(r), ferry_tensor_release(a), ferry_tensor_release(b);
        ferry_tensor_release(bc), ferry_tensor_release(bt);
    }
    free(av), free(bv), free(want);
}

static void test_matmul_out_with_strided_destination(void **state)
{
    (void)state;
    /* out is a transposed view: BLIS writes it column-major in place. */
    int64_t M = 6, N = 4, K = 5;
    double *av = random_doubles((size_t)(M * K)), *bv = random_doubles((size_t)(K * N));
    double *want = malloc((size_t)(M * N) * sizeof *want);
    ref_matmul(av, bv, want, 1, M, N, K, false, false);
    int64_t as[2] = {M, K}, bs[2] = {K, N}, os[2] = {N, M};
    ferry_tensor *a = from_doubles(av, FERRY_FLOAT32, 2, as);
    ferry_tensor *b = from_doubles(bv, FERRY_FLOAT32, 2, bs);
    ferry_tensor *o = ferry_zeros(FERRY_FLOAT32, 2, os, "cpu");
    ferry_tensor *ot = ferry_transpose(o, 0, 1);
    assert_ok(ferry_matmul_out(ot, a, b));
    double *g = to_doubles(ot);
    assert_close(g, want, (size_t)(M * N), 1e-6);
    free(g), free(av), free(bv), free(want);
    ferry_tensor_release(a), ferry_tensor_release(b), ferry_tensor_release(o);
    ferry_tensor_release(ot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_of_16m_float32_ones_is_exact),
        cmocka_unit_test(test_sum_accumulates_float16_and_bfloat16_in_float32),
        cmocka_unit_test(test_sum_is_accurate_on_mixed_magnitudes),
        cmocka_unit_test(test_integer_sums_are_int64_and_wrap),
        cmocka_unit_test(test_max_min_propagate_nan),
        cmocka_unit_test(test_maximum_minimum_propagate_nan),
        cmocka_unit_test(test_argmax_takes_first_occurrence_and_nan),
        cmocka_unit_test(test_reductions_of_strided_views_match_reference),
        cmocka_unit_test(test_reductions_of_every_dtype),
        cmocka_unit_test(test_reductions_over_outer_dims_match_reference),
        cmocka_unit_test(test_integer_arithmetic_wraps),
        cmocka_unit_test(test_integer_pow_squares_and_follows_the_negative_rule),
        cmocka_unit_test(test_binary_ops_over_broadcast_and_strided_geometries),
        cmocka_unit_test(test_binary_integer_dtypes_and_out_aliasing),
        cmocka_unit_test(test_half_kernels_match_elementwise_conversion_bit_for_bit),
        cmocka_unit_test(test_unary_ops_match_libm_on_strided_inputs),
        cmocka_unit_test(test_kernels_accept_unaligned_blobs),
        cmocka_unit_test(test_matmul_of_transposed_operands_matches_reference),
        cmocka_unit_test(test_matmul_vectors_and_dot),
        cmocka_unit_test(test_batched_matmul_broadcasts_the_batch),
        cmocka_unit_test(test_integer_matmul_is_exact_and_wraps),
        cmocka_unit_test(test_half_precision_matmul_accumulates_in_float32),
        cmocka_unit_test(test_matmul_out_with_strided_destination),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return failed;
}

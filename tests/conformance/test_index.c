/* Conformance of the indexing ops (gather, index_select, scatter, scatter_add) on every
 * device and dtype, input layouts and both index dtypes, against references computed
 * here; and their refusals, out-of-range indices included, with PyTorch's messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/backend.h>

#include "conformance.h"

static const conf_layout layouts[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED, CONF_SLICED};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])
static const ferry_dtype index_dtypes[] = {FERRY_INT64, FERRY_INT32};

/* An index tensor on device from int64 values, stored as idt. */
static ferry_tensor *make_index(const int64_t *v, int ndim, const int64_t *shape, ferry_dtype idt,
                                const char *device)
{
    int64_t n = conf_numel(ndim, shape);
    if (idt == FERRY_INT64)
        return ferry_tensor_from_data(n ? v : NULL, idt, ndim, shape, device);
    int32_t *w = malloc((size_t)(n ? n : 1) * sizeof *w);
    for (int64_t i = 0; i < n; i++)
        w[i] = (int32_t)v[i];
    ferry_tensor *t = ferry_tensor_from_data(n ? w : NULL, idt, ndim, shape, device);
    free(w);
    return t;
}

static int64_t wrap_index(int64_t i, int64_t size)
{
    return i < 0 ? i + size : i;
}


static void fallback_begin(const char *dev)
{
    if (conf_has_own_kernels(dev))
        ferry_fallback_stats_reset(dev);
}

static void fallback_end(const char *op, const char *dev)
{
    ferry_fallback_stats s;
    if (!conf_has_own_kernels(dev))
        return;
    conf_where w = {op, "any", "fallback counter", dev};
    if (ferry_fallback_stats_get(dev, &s) != FERRY_OK)
        conf_fail_call(&w, "ferry_fallback_stats_get");
    else if (s.by_kind[FERRY_OP_NAMED] != 0)
        conf_fail(&w, "%llu named ops ran through the CPU fallback",
                  (unsigned long long)s.by_kind[FERRY_OP_NAMED]);
}

/* Reads r and compares it with ref, then releases r. */
static void check(const conf_where *w, ferry_tensor *r, ferry_dtype dt, int ndim,
                  const int64_t *shape, const double *ref, const double *extra)
{
    if (!r) {
        conf_fail_call(w, w->op);
        return;
    }
    conf_array got;
    if (conf_read(w, r, dt, ndim, shape, w->device, &got)) {
        conf_compare(w, &got, ref, extra);
        conf_array_free(&got);
    }
    ferry_tensor_release(r);
}

/* A (3, 4) input in `layout`. */
static ferry_tensor *input(const conf_where *w, conf_layout layout, ferry_dtype dt, const char *dev,
                           unsigned salt, conf_array *logical)
{
    conf_operand spec = {.ndim = 2, .shape = {3, 4}, .layout = layout};
    conf_rng r = conf_rng_seed(w->op, w->dtype, w->kase, salt);
    return conf_make(w, &spec, dt, dev, &r, &conf_default_domain, logical);
}

static void test_index_gather_and_index_select_match_reference(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        fallback_begin(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            for (size_t li = 0; li < NLAYOUTS; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                for (int ii = 0; ii < 2; ii++) {
                    ferry_dtype idt = index_dtypes[ii];
                    char kase[96];
                    snprintf(kase, sizeof kase, "%s input, %s index", conf_layout_name(layouts[li]),
                             conf_dtype_name(idt));
                    conf_where w = {"gather", conf_dtype_name(dt), kase, dev};
                    conf_array a;
                    ferry_tensor *t = input(&w, layouts[li], dt, dev, 1, &a);
                    if (!t)
                        continue;
                    /* gather along each dim, with negative indices and an index smaller
                     * than the input in the other dim. */
                    for (int dim = -2; dim < 2; dim++) {
                        int d = dim < 0 ? dim + 2 : dim;
                        int64_t size = a.shape[d];
                        int64_t ishape[2] = {d == 0 ? 5 : 2, d == 0 ? 3 : 6};
                        int64_t iv[30];
                        double ref[30];
                        for (int64_t k = 0; k < ishape[0] * ishape[1]; k++)
                            iv[k] = (int64_t)((k * 7 + 3) % (2 * size)) - size;
                        for (int64_t p = 0; p < ishape[0]; p++)
                            for (int64_t q = 0; q < ishape[1]; q++) {
                                int64_t i = wrap_index(iv[p * ishape[1] + q], size);
                                ref[p * ishape[1] + q] = d == 0 ? a.v[i * 4 + q] : a.v[p * 4 + i];
                            }
                        ferry_tensor *index = make_index(iv, 2, ishape, idt, dev);
                        w.op = "gather";
                        check(&w, ferry_gather(t, dim, index), dt, 2, ishape, ref, NULL);
                        ferry_tensor_release(index);

                        /* index_select of a vector, repeats and negatives included. */
                        int64_t sv[5] = {-1, 0, size - 1, 1, -size};
                        int64_t rshape[2] = {d == 0 ? 5 : 3, d == 0 ? 4 : 5};
                        double sref[20];
                        for (int64_t p = 0; p < rshape[0]; p++)
                            for (int64_t q = 0; q < rshape[1]; q++) {
                                int64_t i = wrap_index(sv[d == 0 ? p : q], size);
                                sref[p * rshape[1] + q] = d == 0 ? a.v[i * 4 + q] : a.v[p * 4 + i];
                            }
                        index = make_index(sv, 1, (int64_t[]){5}, idt, dev);
                        w.op = "index_select";
                        check(&w, ferry_index_select(t, dim, index), dt, 2, rshape, sref, NULL);
                        ferry_tensor_release(index);
                    }
                    /* A 0-d index selects one slice and keeps the dim; an empty one
                     * gives an empty result. */
                    int64_t one = 2;
                    ferry_tensor *index = make_index(&one, 0, NULL, idt, dev);
                    w.op = "index_select 0-d index";
                    check(&w, ferry_index_select(t, 1, index), dt, 2, (int64_t[]){3, 1},
                          (double[]){a.v[2], a.v[6], a.v[10]}, NULL);
                    ferry_tensor_release(index);
                    index = make_index(NULL, 1, (int64_t[]){0}, idt, dev);
                    w.op = "index_select empty index";
                    check(&w, ferry_index_select(t, 0, index), dt, 2, (int64_t[]){0, 4}, NULL, NULL);
                    ferry_tensor_release(index);
                    index = make_index(NULL, 2, (int64_t[]){0, 4}, idt, dev);
                    w.op = "gather empty index";
                    check(&w, ferry_gather(t, 0, index), dt, 2, (int64_t[]){0, 4}, NULL, NULL);
                    ferry_tensor_release(index);
                    ferry_tensor_release(t);
                    conf_array_free(&a);
                }
            }
        }
        fallback_end("gather, index_select", dev);
    }
    conf_finish();
}

static void test_index_scatter_and_scatter_add_match_reference(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        fallback_begin(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            for (size_t li = 0; li < NLAYOUTS; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                for (int ii = 0; ii < 2; ii++) {
                    ferry_dtype idt = index_dtypes[ii];
                    char kase[96];
                    snprintf(kase, sizeof kase, "%s self and src, %s index",
                             conf_layout_name(layouts[li]), conf_dtype_name(idt));
                    conf_where w = {"scatter", conf_dtype_name(dt), kase, dev};
                    conf_array a, s;
                    ferry_tensor *t = input(&w, layouts[li], dt, dev, 1, &a);
                    /* src is larger than index, as PyTorch allows. */
                    ferry_tensor *src = t ? input(&w, layouts[li], dt, dev, 2, &s) : NULL;
                    if (!src) {
                        ferry_tensor_release(t);
                        if (t)
                            conf_array_free(&a);
                        continue;
                    }
                    for (int dim = 0; dim < 2; dim++) {
                        int64_t size = a.shape[dim];
                        /* scatter: distinct targets along dim, so any order is right. */
                        int64_t ishape[2] = {2, 3};
                        int64_t iv[6];
                        double ref[12];
                        memcpy(ref, a.v, sizeof ref);
                        for (int64_t p = 0; p < 2; p++)
                            for (int64_t q = 0; q < 3; q++) {
                                int64_t i = dim == 0 ? (q + 2 * p) % 3 : (p + 2 * q) % 4;
                                iv[p * 3 + q] = i - (p == 1 ? size : 0); /* some negative */
                                ref[dim == 0 ? i * 4 + q : p * 4 + i] = s.v[p * 4 + q];
                            }
                        ferry_tensor *index = make_index(iv, 2, ishape, idt, dev);
                        w.op = dim == 0 ? "scatter dim 0" : "scatter dim 1";
                        check(&w, ferry_scatter(t, dim, index, src), dt, 2, a.shape, ref, NULL);
                        ferry_tensor_release(index);

                        /* scatter_add: every target hit several times. */
                        int64_t av[12];
                        double aref[12], tol[12] = {0};
                        memcpy(aref, a.v, sizeof aref);
                        int64_t ashape[2] = {3, dim == 0 ? 4 : 3};
                        for (int64_t p = 0; p < ashape[0]; p++)
                            for (int64_t q = 0; q < ashape[1]; q++) {
                                int64_t i = (p * 5 + q * 3) % (dim == 0 ? 2 : 3);
                                av[p * ashape[1] + q] = i;
                                int64_t at = dim == 0 ? i * 4 + q : p * 4 + i;
                                double x = s.v[p * 4 + q];
                                if (dt == FERRY_BOOL)
                                    aref[at] = (aref[at] != 0 || x != 0) ? 1 : 0;
                                else
                                    aref[at] += x;
                                tol[at] += 4 * conf_rtol(dt) * (fabs(aref[at]) + fabs(x));
                            }
                        for (int k = 0; k < 12; k++)
                            if (conf_is_int(dt))
                                aref[k] = (double)conf_wrap(dt, (int64_t)aref[k]);
                        index = make_index(av, 2, ashape, idt, dev);
                        w.op = dim == 0 ? "scatter_add dim 0" : "scatter_add dim 1";
                        check(&w, ferry_scatter_add(t, dim, index, src), dt, 2, a.shape, aref, tol);
                        /* In place: t itself changes; a copy keeps the reference intact. */
                        ferry_tensor *c = ferry_tensor_clone(t);
                        w.op = "scatter_add_";
                        if (!c || ferry_scatter_add_(c, dim, index, src) != FERRY_OK)
                            conf_fail_call(&w, "ferry_scatter_add_");
                        check(&w, c, dt, 2, a.shape, aref, tol);
                        ferry_tensor_release(index);
                    }
                    ferry_tensor_release(src);
                    ferry_tensor_release(t);
                    conf_array_free(&a);
                    conf_array_free(&s);
                }
            }
        }
        fallback_end("scatter, scatter_add", dev);
    }
    conf_finish();
}

static void test_index_refuses_with_pytorch_messages_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"index", "float32", "", dev};
        fallback_begin(dev);
        ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){5}, dev);
        ferry_tensor *t2 = ferry_zeros(FERRY_FLOAT32, 2, (int64_t[]){2, 3}, dev);
        assert_tensor(t);
        assert_tensor(t2);
        ferry_tensor *bad = make_index((int64_t[]){1, 7}, 1, (int64_t[]){2}, FERRY_INT64, dev);
        ferry_tensor *neg = make_index((int64_t[]){-6}, 1, (int64_t[]){1}, FERRY_INT32, dev);
        ferry_tensor *fidx = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){1}, dev);
        ferry_tensor *i2 = ferry_zeros(FERRY_INT64, 2, (int64_t[]){1, 1}, dev);
        ferry_tensor *big = ferry_zeros(FERRY_INT64, 2, (int64_t[]){3, 1}, dev);
        ferry_tensor *src = ferry_ones(FERRY_FLOAT32, 1, (int64_t[]){2}, dev);
        ferry_tensor *dsrc = ferry_ones(FERRY_FLOAT64, 1, (int64_t[]){2}, dev);
        assert_tensor(bad);
        assert_tensor(neg);
        assert_tensor(fidx);
        assert_tensor(i2);
        assert_tensor(big);
        assert_tensor(src);
        assert_tensor(dsrc);
        ferry_tensor *r;
        const char *oob = "index 7 is out of bounds for dimension 0 with size 5";

        w.kase = "gather out of range";
        r = ferry_gather(t, 0, bad);
        conf_expect_error(&w, "ferry_gather", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, oob);
        ferry_tensor_release(r);
        w.kase = "index_select out of range";
        r = ferry_index_select(t, 0, bad);
        conf_expect_error(&w, "ferry_index_select", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, oob);
        ferry_tensor_release(r);
        w.kase = "index_select negative out of range";
        r = ferry_index_select(t, -1, neg);
        conf_expect_error(&w, "ferry_index_select", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "index -6 is out of bounds for dimension 0 with size 5");
        ferry_tensor_release(r);
        w.kase = "scatter out of range";
        r = ferry_scatter(t, 0, bad, src);
        conf_expect_error(&w, "ferry_scatter", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, oob);
        ferry_tensor_release(r);
        w.kase = "scatter_add out of range";
        r = ferry_scatter_add(t, 0, bad, src);
        conf_expect_error(&w, "ferry_scatter_add", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, oob);
        ferry_tensor_release(r);

        w.kase = "float index";
        r = ferry_gather(t, 0, fidx);
        conf_expect_error(&w, "ferry_gather", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "gather(): Expected dtype int32/int64 for index");
        ferry_tensor_release(r);
        r = ferry_index_select(t, 0, fidx);
        conf_expect_error(&w, "ferry_index_select", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "index_select(): Expected dtype int32 or int64 for index");
        ferry_tensor_release(r);
        r = ferry_scatter(t, 0, fidx, src);
        conf_expect_error(&w, "ferry_scatter", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "scatter(): Expected dtype int32/int64 for index");
        ferry_tensor_release(r);
        w.kase = "src of another dtype";
        r = ferry_scatter_add(t, 0, bad, dsrc);
        conf_expect_error(&w, "ferry_scatter_add", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "scatter_add(): Expected self.dtype to be equal to src.dtype");
        ferry_tensor_release(r);
        w.kase = "index of another ndim";
        r = ferry_gather(t, 0, i2);
        conf_expect_error(&w, "ferry_gather", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Index tensor must have the same number of dimensions as input tensor");
        ferry_tensor_release(r);
        r = ferry_index_select(t, 0, i2);
        conf_expect_error(&w, "ferry_index_select", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "index_select(): Index is supposed to be a vector");
        ferry_tensor_release(r);
        w.kase = "index larger than self";
        r = ferry_gather(t2, 1, big);
        conf_expect_error(&w, "ferry_gather", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Size does not match at dimension 0 expected index [3, 1] to be no "
                          "larger than self [2, 3] apart from dimension 1");
        ferry_tensor_release(r);
        r = ferry_scatter(t2, 1, big, t2);
        conf_expect_error(&w, "ferry_scatter", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Expected index [3, 1] to be no larger than self [2, 3] apart from "
                          "dimension 1 and to be no larger size than src [2, 3]");
        ferry_tensor_release(r);
        w.kase = "dim out of range";
        r = ferry_gather(t, 1, bad);
        conf_expect_error(&w, "ferry_gather", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-1, 0], but got 1)");
        ferry_tensor_release(r);

        ferry_tensor *list[] = {t, t2, bad, neg, fidx, i2, big, src, dsrc};
        for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
            ferry_tensor_release(list[k]);
        fallback_end("refusals", dev);
    }
    conf_finish();
}

/* ---- long gathers: the cpu's threaded, prefetching and typed-line paths ---- */

/* ferry_tensor -> float64 values on the host (n of them), or NULL. */
static double *values_of(ferry_tensor *r, int64_t n)
{
    ferry_tensor *d = r ? ferry_tensor_to_dtype(r, FERRY_FLOAT64) : NULL;
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!d || !v || ferry_tensor_copy_to_host(d, v, (size_t)n * sizeof *v) != FERRY_OK) {
        free(v);
        v = NULL;
    }
    ferry_tensor_release(d);
    return v;
}

static void compare_values(const conf_where *w, ferry_tensor *r, const double *ref, int64_t n)
{
    double *v = values_of(r, n);
    if (!v) {
        conf_fail_call(w, w->op);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        if (v[i] != ref[i]) {
            conf_fail(w, "element %lld is %g, want %g", (long long)i, v[i], ref[i]);
            break;
        }
    free(v);
}

/* Sizes the small tests never reach: index_select of 70000 rows of 16 and of 3 elements
 * (fixed-size and general row copies, rows fetched ahead), gather of (70000, 16) and of
 * a 1-d index of 200000 (a single line split between threads), every element size and
 * both index dtypes, negatives included; and an out-of-range index deep inside each. */
static void test_index_long_gathers_match_reference(void **state)
{
    (void)state;
    const int64_t R = 5000, M = 70000, N1 = 200000;
    const ferry_dtype dts[] = {FERRY_UINT8, FERRY_INT16, FERRY_FLOAT32, FERRY_FLOAT64};
    int64_t *iv = malloc((size_t)N1 * sizeof *iv);
    double *srcv = malloc((size_t)R * 16 * sizeof *srcv);
    double *ref = malloc((size_t)M * 16 * sizeof *ref);
    assert_non_null(iv);
    assert_non_null(srcv);
    assert_non_null(ref);
    uint64_t x = 12345;
    for (int64_t i = 0; i < N1; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        iv[i] = (int64_t)((x >> 33) % (uint64_t)(2 * R)) - R; /* [-R, R) */
    }
    for (int64_t i = 0; i < R * 16; i++)
        srcv[i] = (double)(i % 97);
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++)
            for (int ii = 0; ii < 2; ii++) {
                ferry_dtype dt = dts[di], idt = index_dtypes[ii];
                conf_where w = {"index_select", conf_dtype_name(dt), conf_dtype_name(idt), dev};
                ferry_tensor *s64 =
                    ferry_tensor_from_data(srcv, FERRY_FLOAT64, 2, (int64_t[]){R, 16}, dev);
                ferry_tensor *src = s64 ? ferry_tensor_to_dtype(s64, dt) : NULL;
                ferry_tensor *narrow = src ? ferry_narrow(src, 1, 0, 3) : NULL;
                ferry_tensor *narrowc = narrow ? ferry_tensor_contiguous(narrow) : NULL;
                ferry_tensor *flat = src ? ferry_reshape(src, 1, (int64_t[]){R * 16}) : NULL;
                ferry_tensor *sel = make_index(iv, 1, (int64_t[]){M}, idt, dev);
                ferry_tensor *g2 = NULL, *g1 = make_index(iv, 1, (int64_t[]){N1}, idt, dev);
                int64_t *gv = malloc((size_t)M * 16 * sizeof *gv);
                if (gv) {
                    for (int64_t i = 0; i < M * 16; i++)
                        gv[i] = iv[(i * 7) % N1];
                    g2 = make_index(gv, 2, (int64_t[]){M, 16}, idt, dev);
                }
                if (!narrowc || !flat || !sel || !g1 || !g2) {
                    conf_fail_call(&w, "setup");
                } else {
                    for (int64_t k = 0; k < M; k++)
                        for (int c = 0; c < 16; c++)
                            ref[k * 16 + c] = srcv[wrap_index(iv[k], R) * 16 + c];
                    ferry_tensor *r = ferry_index_select(src, 0, sel);
                    compare_values(&w, r, ref, M * 16);
                    ferry_tensor_release(r);
                    w.op = "index_select rows of 3";
                    for (int64_t k = 0; k < M; k++)
                        for (int c = 0; c < 3; c++)
                            ref[k * 3 + c] = srcv[wrap_index(iv[k], R) * 16 + c];
                    r = ferry_index_select(narrowc, 0, sel);
                    compare_values(&w, r, ref, M * 3);
                    ferry_tensor_release(r);
                    w.op = "gather (70000, 16)";
                    for (int64_t i = 0; i < M * 16; i++)
                        ref[i] = srcv[wrap_index(gv[i], R) * 16 + i % 16];
                    r = ferry_gather(src, 0, g2);
                    compare_values(&w, r, ref, M * 16);
                    ferry_tensor_release(r);
                    w.op = "gather 1-d of 200000";
                    double *ref1 = malloc((size_t)N1 * sizeof *ref1);
                    for (int64_t i = 0; ref1 && i < N1; i++)
                        ref1[i] = srcv[wrap_index(iv[i], R * 16)];
                    r = ferry_gather(flat, 0, g1);
                    if (ref1)
                        compare_values(&w, r, ref1, N1);
                    ferry_tensor_release(r);
                    free(ref1);
                }
                ferry_tensor_release(g1);
                ferry_tensor_release(g2);
                free(gv);
                /* One bad index in the middle (in the second thread's part). */
                if (dt == FERRY_FLOAT32 && flat && src) {
                    int64_t keep = iv[N1 / 2 + 17];
                    iv[N1 / 2 + 17] = R * 16;
                    g1 = make_index(iv, 1, (int64_t[]){N1}, idt, dev);
                    w.op = "gather 1-d, bad index";
                    ferry_tensor *r = g1 ? ferry_gather(flat, 0, g1) : NULL;
                    conf_expect_error(&w, "ferry_gather", r == NULL, FERRY_ERR_INDEX,
                                      FERRY_ERR_INDEX,
                                      "index 80000 is out of bounds for dimension 0 with size 80000");
                    ferry_tensor_release(r);
                    ferry_tensor_release(g1);
                    iv[N1 / 2 + 17] = keep;
                    keep = iv[M / 2 + 17];
                    iv[M / 2 + 17] = -R - 1;
                    ferry_tensor *b = make_index(iv, 1, (int64_t[]){M}, idt, dev);
                    w.op = "index_select, bad index";
                    r = b ? ferry_index_select(src, 0, b) : NULL;
                    conf_expect_error(&w, "ferry_index_select", r == NULL, FERRY_ERR_INDEX,
                                      FERRY_ERR_INDEX,
                                      "index -5001 is out of bounds for dimension 0 with size 5000");
                    ferry_tensor_release(r);
                    ferry_tensor_release(b);
                    iv[M / 2 + 17] = keep;
                }
                ferry_tensor_release(sel);
                ferry_tensor_release(flat);
                ferry_tensor_release(narrowc);
                ferry_tensor_release(narrow);
                ferry_tensor_release(src);
                ferry_tensor_release(s64);
            }
    }
    free(iv);
    free(srcv);
    free(ref);
    conf_finish();
}

/* 4-d inputs (extents 1 included), contiguous and permuted, so that the cpu's merging of
 * dims meets every arrangement: index_select and gather along each dim. */
static void test_index_four_dims_match_reference(void **state)
{
    (void)state;
    enum { A = 6, B = 1, C = 5, D = 4 };
    const int64_t ext[4] = {A, B, C, D};
    double v[A * B * C * D];
    for (int i = 0; i < A * B * C * D; i++)
        v[i] = (double)i;
    CONF_FOR_EACH_DEVICE(dev) {
        for (int perm = 0; perm < 2; perm++)
            for (int dim = 0; dim < 4; dim++)
                for (int ii = 0; ii < 2; ii++) {
                    ferry_dtype idt = index_dtypes[ii];
                    conf_where w = {"index_select 4-d", "float32",
                                    perm ? "permuted (3, 2, 1, 0)" : "contiguous", dev};
                    ferry_tensor *base =
                        ferry_tensor_from_data(v, FERRY_FLOAT64, 4, ext, dev);
                    ferry_tensor *b32 = base ? ferry_tensor_to_dtype(base, FERRY_FLOAT32) : NULL;
                    /* t's extents are ext (contiguous) or reversed (a permuted view). */
                    ferry_tensor *t = b32 && perm ? ferry_permute(b32, 4, (int[]){3, 2, 1, 0})
                                                  : ferry_tensor_retain(b32);
                    int64_t te[4];
                    for (int d = 0; d < 4; d++)
                        te[d] = perm ? ext[3 - d] : ext[d];
                    /* t[p0][p1][p2][p3] as a value of v. */
#define TV(q)                                                                               \
    (perm ? v[(((q)[3] * B + (q)[2]) * C + (q)[1]) * D + (q)[0]]                            \
          : v[(((q)[0] * B + (q)[1]) * C + (q)[2]) * D + (q)[3]])
                    int64_t sv[7] = {0, -1, 2, 1, 1, -2, 0};
                    for (int k = 0; k < 7; k++)
                        sv[k] = ((sv[k] % te[dim]) + te[dim]) % te[dim] - (k % 2 ? te[dim] : 0);
                    ferry_tensor *index = t ? make_index(sv, 1, (int64_t[]){7}, idt, dev) : NULL;
                    if (!index) {
                        conf_fail_call(&w, "setup");
                    } else {
                        int64_t rs[4] = {te[0], te[1], te[2], te[3]};
                        rs[dim] = 7;
                        int64_t rn = rs[0] * rs[1] * rs[2] * rs[3];
                        double ref[7 * A * B * C * D];
                        int64_t q[4];
                        for (int64_t k = 0; k < rn; k++) {
                            int64_t at = k;
                            for (int d = 3; d >= 0; d--) {
                                q[d] = at % rs[d];
                                at /= rs[d];
                            }
                            q[dim] = wrap_index(sv[q[dim]], te[dim]);
                            ref[k] = TV(q);
                        }
                        ferry_tensor *r = ferry_index_select(t, dim, index);
                        compare_values(&w, r, ref, rn);
                        ferry_tensor_release(r);
                        /* gather with an index of t's extents (3 along dim). */
                        int64_t gs[4] = {te[0], te[1], te[2], te[3]};
                        gs[dim] = 3;
                        int64_t gn = gs[0] * gs[1] * gs[2] * gs[3];
                        int64_t gv[3 * A * B * C * D];
                        for (int64_t k = 0; k < gn; k++) {
                            gv[k] = (k * 5 + 1) % te[dim] - (k % 3 == 0 ? te[dim] : 0);
                            int64_t at = k;
                            for (int d = 3; d >= 0; d--) {
                                q[d] = at % gs[d];
                                at /= gs[d];
                            }
                            q[dim] = wrap_index(gv[k], te[dim]);
                            ref[k] = TV(q);
                        }
#undef TV
                        ferry_tensor *gi = make_index(gv, 4, gs, idt, dev);
                        w.op = "gather 4-d";
                        r = gi ? ferry_gather(t, dim, gi) : NULL;
                        compare_values(&w, r, ref, gn);
                        ferry_tensor_release(r);
                        ferry_tensor_release(gi);
                    }
                    ferry_tensor_release(index);
                    ferry_tensor_release(t);
                    ferry_tensor_release(b32);
                    ferry_tensor_release(base);
                }
    }
    conf_finish();
}

int conf_group_index(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_gather_and_index_select_match_reference),
        cmocka_unit_test(test_index_scatter_and_scatter_add_match_reference),
        cmocka_unit_test(test_index_refuses_with_pytorch_messages_on_every_device),
        cmocka_unit_test(test_index_long_gathers_match_reference),
        cmocka_unit_test(test_index_four_dims_match_reference),
    };
    return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}

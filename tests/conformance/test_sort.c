/* Conformance group "sort": sort, argsort and topk on every dtype, layout and device
 * against a reference sort done here in double. Every ferry kernel orders equal keys by
 * index (PyTorch's stable order), so indices are compared exactly, not only values; NaN
 * is the largest value and -0.0 equals +0.0, as PyTorch. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conformance.h"

/* -1, 0, 1 as a < b, a == b, a > b with NaN above everything. */
static int ref_cmp(double a, double b)
{
    bool na = isnan(a), nb = isnan(b);
    if (na || nb)
        return na == nb ? 0 : na ? 1 : -1;
    return a < b ? -1 : a > b ? 1 : 0;
}

typedef struct ref_ctx {
    const double *v;
    int64_t stride;
    bool desc;
} ref_ctx;

/* Stable reference order of one row: insertion sort on (key, index). */
static void ref_row(const ref_ctx *c, int64_t n, int64_t *order)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i;
        while (j > 0) {
            int r = ref_cmp(c->v[order[j - 1] * c->stride], c->v[i * c->stride]);
            if (c->desc)
                r = -r;
            if (r <= 0)
                break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

/* Reference values and indices of sort/topk of `in` along dim, k of each row. */
static void reference(const conf_array *in, int dim, int64_t k, bool desc, double *rv,
                      double *ri)
{
    int nd = in->ndim;
    int64_t n = nd == 0 ? 1 : in->shape[dim];
    int64_t inner = 1, outer = 1;
    for (int d = dim + 1; d < nd; d++)
        inner *= in->shape[d];
    for (int d = 0; d < dim; d++)
        outer *= in->shape[d];
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t q = 0; q < inner; q++) {
            ref_ctx c = {in->v + o * n * inner + q, inner, desc};
            ref_row(&c, n, order);
            for (int64_t j = 0; j < k; j++) {
                int64_t at = o * k * inner + j * inner + q;
                rv[at] = c.v[order[j] * inner];
                ri[at] = (double)order[j];
            }
        }
    free(order);
}

typedef struct sort_case {
    const char *kase;
    int ndim;
    int64_t shape[4];
    int dim;
    int64_t k; /* -1: sort */
    conf_layout layout;
} sort_case;

static const sort_case cases[] = {
    {"(5, 37) dim -1", 2, {5, 37}, -1, -1, CONF_CONTIGUOUS},
    {"(37, 5) dim 0", 2, {37, 5}, 0, -1, CONF_CONTIGUOUS},
    {"(3, 70, 4) dim 1", 3, {3, 70, 4}, 1, -1, CONF_CONTIGUOUS},
    {"(6, 33) transposed dim -1", 2, {6, 33}, -1, -1, CONF_TRANSPOSED},
    {"(4, 9) sliced dim -1", 2, {4, 9}, -1, -1, CONF_SLICED},
    {"(2, 600) dim 1", 2, {2, 600}, 1, -1, CONF_CONTIGUOUS},
    {"(1, 1) dim 0", 2, {1, 1}, 0, -1, CONF_CONTIGUOUS},
    {"(7) dim 0", 1, {7}, 0, -1, CONF_CONTIGUOUS},
    {"0-d", 0, {0}, 0, -1, CONF_CONTIGUOUS},
    {"(3, 0) dim 1", 2, {3, 0}, 1, -1, CONF_CONTIGUOUS},
    {"(0, 4) dim 1", 2, {0, 4}, 1, -1, CONF_CONTIGUOUS},
    {"topk 3 of (5, 37)", 2, {5, 37}, -1, 3, CONF_CONTIGUOUS},
    {"topk 37 of (5, 37)", 2, {5, 37}, -1, 37, CONF_CONTIGUOUS},
    {"topk 0 of (5, 37)", 2, {5, 37}, -1, 0, CONF_CONTIGUOUS},
    {"topk 5 of (3, 900) dim 1", 2, {3, 900}, 1, 5, CONF_CONTIGUOUS},
    {"topk 2 of (40, 6) dim 0", 2, {40, 6}, 0, 2, CONF_TRANSPOSED},
    {"topk 1 of 0-d", 0, {0}, 0, 1, CONF_CONTIGUOUS},
    /* Around the devices' sorting tile (1024 elements) and their topk selection limit
     * (k <= 512): one tile, tiles and global steps of one and two distances, rows not a
     * power of two, candidates sorted once, twice and three times. */
    {"(2, 1023) dim -1", 2, {2, 1023}, -1, -1, CONF_CONTIGUOUS},
    {"(2, 1024) dim -1", 2, {2, 1024}, -1, -1, CONF_CONTIGUOUS},
    {"(2, 1025) dim -1", 2, {2, 1025}, -1, -1, CONF_CONTIGUOUS},
    {"(1, 4500) dim -1", 2, {1, 4500}, -1, -1, CONF_CONTIGUOUS},
    {"(2100, 2) transposed dim 0", 2, {2100, 2}, 0, -1, CONF_TRANSPOSED},
    {"topk 512 of (2, 3000)", 2, {2, 3000}, -1, 512, CONF_CONTIGUOUS},
    {"topk 513 of (2, 3000)", 2, {2, 3000}, -1, 513, CONF_CONTIGUOUS},
    {"topk 300 of (2, 3000)", 2, {2, 3000}, -1, 300, CONF_CONTIGUOUS},
    {"topk 1024 of (1, 2100)", 2, {1, 2100}, -1, 1024, CONF_CONTIGUOUS},
    {"topk 9 of (2500, 2) dim 0", 2, {2500, 2}, 0, 9, CONF_TRANSPOSED},
    {"topk 20 of (1, 9000)", 2, {1, 9000}, -1, 20, CONF_CONTIGUOUS},
};

static void check_one(const conf_where *w0, const sort_case *c, ferry_dtype dt, bool desc,
                      bool stable, const char *dev)
{
    conf_where w = *w0;
    conf_rng r = conf_rng_seed(w.op, w.dtype, w.kase, desc * 2 + stable);
    conf_domain dom = conf_default_domain;
    dom.nan = true;
    conf_operand spec = {c->ndim, {0}, c->layout, 0, {0}};
    for (int d = 0; d < c->ndim; d++)
        spec.shape[d] = c->shape[d];
    conf_array in;
    ferry_tensor *t = conf_make(&w, &spec, dt, dev, &r, &dom, &in);
    if (!t)
        return;
    int dim = c->dim < 0 ? c->dim + (c->ndim ? c->ndim : 1) : c->dim;
    int64_t n = c->ndim == 0 ? 1 : c->shape[dim];
    int64_t k = c->k < 0 ? n : c->k;
    int64_t oshape[4];
    for (int d = 0; d < c->ndim; d++)
        oshape[d] = c->shape[d];
    if (c->ndim)
        oshape[dim] = k;
    if (c->ndim == 0)
        k = 1;
    int64_t total = conf_numel(c->ndim, oshape);
    double *rv = calloc((size_t)(total ? total : 1), sizeof(double));
    double *ri = calloc((size_t)(total ? total : 1), sizeof(double));
    reference(&in, dim, k, desc, rv, ri);
    ferry_tensor *v = NULL, *ix = NULL;
    ferry_status st = c->k < 0 ? ferry_sort(t, c->dim, desc, stable, &v, &ix)
                               : ferry_topk(t, c->k, c->dim, desc, true, &v, &ix);
    conf_array gv, gi;
    if (st != FERRY_OK) {
        conf_fail_call(&w, c->k < 0 ? "ferry_sort" : "ferry_topk");
    } else {
        if (conf_read(&w, v, dt, c->ndim, oshape, dev, &gv)) {
            conf_compare(&w, &gv, rv, NULL);
            conf_array_free(&gv);
        }
        if (conf_read(&w, ix, FERRY_INT64, c->ndim, oshape, dev, &gi)) {
            conf_compare(&w, &gi, ri, NULL);
            conf_array_free(&gi);
        }
    }
    if (c->k < 0) {
        /* argsort: the same indices. */
        ferry_tensor *a = ferry_argsort(t, c->dim, desc, stable);
        w.op = "argsort";
        if (!a)
            conf_fail_call(&w, "ferry_argsort");
        else if (conf_read(&w, a, FERRY_INT64, c->ndim, oshape, dev, &gi)) {
            conf_compare(&w, &gi, ri, NULL);
            conf_array_free(&gi);
        }
        ferry_tensor_release(a);
    }
    ferry_tensor_release(v);
    ferry_tensor_release(ix);
    ferry_tensor_release(t);
    conf_array_free(&in);
    free(rv);
    free(ri);
}

static void test_sort_matches_reference_on_every_dtype_case_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            if (!conf_layout_runs_on(cases[c].layout, dev))
                continue;
            for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
                ferry_dtype dt = conf_all_dtypes[di];
                if (cases[c].k >= 0 && dt == FERRY_BOOL)
                    continue; /* topk refuses bool, tested in the errors below */
                for (int desc = 0; desc < 2; desc++)
                    for (int stable = 0; stable < 2; stable++) {
                        if (cases[c].k >= 0 && stable)
                            continue;
                        conf_where w = {cases[c].k < 0 ? (desc ? "sort descending" : "sort")
                                                       : (desc ? "topk largest" : "topk smallest"),
                                        conf_dtype_name(dt), cases[c].kase, dev};
                        check_one(&w, &cases[c], dt, desc, stable, dev);
                    }
            }
        }
    }
    conf_finish();
}

/* NaN, infinities and both zeros in one row: PyTorch's order, bit for bit. */
static void test_sort_nan_and_signed_zero(void **state)
{
    (void)state;
    const float x[] = {1.0f, NAN, -0.0f, 0.0f, -INFINITY, 2.0f, INFINITY, NAN, 0.0f, -0.0f};
    const int64_t n = 10;
    /* torch.sort(x, stable=True) and torch.sort(x, descending=True, stable=True). */
    const int64_t asc[] = {4, 2, 3, 8, 9, 0, 5, 6, 1, 7};
    const int64_t desc[] = {1, 7, 6, 5, 0, 2, 3, 8, 9, 4};
    CONF_FOR_EACH_DEVICE(dev) {
        const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_FLOAT16, FERRY_BFLOAT16};
        for (int di = 0; di < 4; di++) {
            conf_where w = {"sort", conf_dtype_name(dts[di]), "NaN, inf, -0.0", dev};
            ferry_tensor *f = ferry_tensor_from_data(x, FERRY_FLOAT32, 1, &n, dev);
            ferry_tensor *t = f ? ferry_tensor_to_dtype(f, dts[di]) : NULL;
            for (int d = 0; t && d < 2; d++) {
                ferry_tensor *v = NULL, *ix = NULL;
                if (ferry_sort(t, 0, d, true, &v, &ix) != FERRY_OK) {
                    conf_fail_call(&w, "ferry_sort");
                    continue;
                }
                int64_t got[10];
                ferry_tensor *v32 = ferry_tensor_to_dtype(v, FERRY_FLOAT32);
                float gv[10];
                if (ferry_tensor_copy_to_host(ix, got, sizeof got) != FERRY_OK || !v32 ||
                    ferry_tensor_copy_to_host(v32, gv, sizeof gv) != FERRY_OK)
                    conf_fail_call(&w, "ferry_tensor_copy_to_host");
                else
                    for (int i = 0; i < n; i++) {
                        int64_t want = d ? desc[i] : asc[i];
                        float wv = x[want];
                        bool same = isnan(wv) ? isnan(gv[i])
                                              : (gv[i] == wv && signbit(gv[i]) == signbit(wv));
                        if (got[i] != want || !same)
                            conf_fail(&w, "%s: element %d: index %lld value %g, expected %lld %g",
                                      d ? "descending" : "ascending", i, (long long)got[i],
                                      (double)gv[i], (long long)want, (double)wv);
                    }
                ferry_tensor_release(v32);
                ferry_tensor_release(v);
                ferry_tensor_release(ix);
            }
            ferry_tensor_release(t);
            ferry_tensor_release(f);
        }
    }
    conf_finish();
}

/* Rows of few distinct values (NaN, infinities, both zeros, +-1) longer than the devices'
 * tile: sort and topk below and above the selection limit, every float dtype, both
 * directions, against the stable reference order. */
static void test_sort_ties_nan_zero_long_rows(void **state)
{
    (void)state;
    const int64_t n = 2600;
    const double pool[] = {NAN, -0.0, 0.0, INFINITY, -INFINITY, 1.0, -1.0};
    double *x = malloc(sizeof(double) * (size_t)n);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)n);
    int64_t *got = malloc(sizeof(int64_t) * (size_t)n);
    double *gv = malloc(sizeof(double) * (size_t)n);
    uint64_t s = 7;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = pool[(s >> 33) % 7];
    }
    const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_FLOAT16, FERRY_BFLOAT16};
    const int64_t ks[] = {-1, 5, 700};
    CONF_FOR_EACH_DEVICE(dev) {
        for (int di = 0; di < 4; di++)
            for (int d = 0; d < 2; d++)
                for (int ki = 0; ki < 3; ki++) {
                    int64_t k = ks[ki] < 0 ? n : ks[ki];
                    conf_where w = {ks[ki] < 0 ? "sort" : "topk", conf_dtype_name(dts[di]),
                                    ki == 0   ? "2600 of 7 values"
                                    : ki == 1 ? "topk 5 of 2600 of 7 values"
                                              : "topk 700 of 2600 of 7 values",
                                    dev};
                    ferry_tensor *f = ferry_tensor_from_data(x, FERRY_FLOAT64, 1, &n, dev);
                    ferry_tensor *t = f ? ferry_tensor_to_dtype(f, dts[di]) : NULL;
                    ferry_tensor *v = NULL, *ix = NULL, *v64 = NULL;
                    ferry_status st = !t                ? FERRY_ERR_BACKEND
                                      : ks[ki] < 0 ? ferry_sort(t, 0, d, true, &v, &ix)
                                                   : ferry_topk(t, k, 0, d, true, &v, &ix);
                    if (st == FERRY_OK)
                        v64 = ferry_tensor_to_dtype(v, FERRY_FLOAT64);
                    if (st != FERRY_OK || !v64 ||
                        ferry_tensor_copy_to_host(ix, got, sizeof(int64_t) * (size_t)k) !=
                            FERRY_OK ||
                        ferry_tensor_copy_to_host(v64, gv, sizeof(double) * (size_t)k) !=
                            FERRY_OK) {
                        conf_fail_call(&w, ks[ki] < 0 ? "ferry_sort" : "ferry_topk");
                    } else {
                        ref_ctx c = {x, 1, d != 0};
                        ref_row(&c, n, order);
                        for (int64_t i = 0, bad = 0; i < k && bad < 3; i++) {
                            double wv = x[order[i]];
                            bool same = isnan(wv) ? isnan(gv[i])
                                                  : gv[i] == wv && signbit(gv[i]) == signbit(wv);
                            if (got[i] != order[i] || !same) {
                                conf_fail(&w, "%s: element %lld: index %lld value %g, expected "
                                              "%lld %g",
                                          d ? "descending" : "ascending", (long long)i,
                                          (long long)got[i], gv[i], (long long)order[i], wv);
                                bad++;
                            }
                        }
                    }
                    ferry_tensor_release(v64);
                    ferry_tensor_release(v);
                    ferry_tensor_release(ix);
                    ferry_tensor_release(t);
                    ferry_tensor_release(f);
                }
    }
    free(x);
    free(order);
    free(got);
    free(gv);
    conf_finish();
}

/* Rows long enough for the cpu's threaded radix and heap paths. */
static void test_sort_long_rows(void **state)
{
    (void)state;
    const int64_t n = 300000;
    float *x = malloc(sizeof(float) * (size_t)n);
    uint64_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((int64_t)(s >> 40) % 5000) * 0.25f; /* many ties */
    }
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"sort", "float32", "one row of 300000", dev};
        ferry_tensor *t = ferry_tensor_from_data(x, FERRY_FLOAT32, 1, &n, dev);
        ferry_tensor *v = NULL, *ix = NULL, *tv = NULL, *ti = NULL;
        float *gv = malloc(sizeof(float) * (size_t)n);
        int64_t *gi = malloc(sizeof(int64_t) * (size_t)n);
        if (!t || ferry_sort(t, 0, false, false, &v, &ix) != FERRY_OK ||
            ferry_tensor_copy_to_host(v, gv, sizeof(float) * (size_t)n) != FERRY_OK ||
            ferry_tensor_copy_to_host(ix, gi, sizeof(int64_t) * (size_t)n) != FERRY_OK) {
            conf_fail_call(&w, "ferry_sort");
        } else {
            int bad = 0;
            for (int64_t i = 0; i < n && bad < 3; i++) {
                bool ok = gi[i] >= 0 && gi[i] < n && x[gi[i]] == gv[i];
                if (i > 0)
                    ok = ok && (gv[i - 1] < gv[i] || (gv[i - 1] == gv[i] && gi[i - 1] < gi[i]));
                if (!ok) {
                    conf_fail(&w, "element %lld: value %g index %lld out of stable order",
                              (long long)i, (double)gv[i], (long long)gi[i]);
                    bad++;
                }
            }
            /* Values alone (the cpu's 32-bit path): the same values, and reversed when
             * descending. */
            w.kase = "one row of 300000, values only";
            float *ov = malloc(sizeof(float) * (size_t)n);
            for (int desc = 0; desc < 2; desc++) {
                ferry_tensor *vv = NULL;
                if (ferry_sort(t, 0, desc, false, &vv, NULL) != FERRY_OK ||
                    ferry_tensor_copy_to_host(vv, ov, sizeof(float) * (size_t)n) != FERRY_OK) {
                    conf_fail_call(&w, "ferry_sort(indices=NULL)");
                } else {
                    for (int64_t q = 0, bad2 = 0; q < n && bad2 < 3; q++)
                        if (ov[q] != gv[desc ? n - 1 - q : q]) {
                            conf_fail(&w, "%s element %lld: %g, expected %g",
                                      desc ? "descending" : "ascending", (long long)q,
                                      (double)ov[q], (double)gv[desc ? n - 1 - q : q]);
                            bad2++;
                        }
                }
                ferry_tensor_release(vv);
            }
            free(ov);
            w.kase = "one row of 300000";
            /* topk of the same row: the last 10 of the stable descending order. */
            w.op = "topk";
            float kv[10];
            int64_t ki[10];
            if (ferry_topk(t, 10, 0, true, true, &tv, &ti) != FERRY_OK ||
                ferry_tensor_copy_to_host(tv, kv, sizeof kv) != FERRY_OK ||
                ferry_tensor_copy_to_host(ti, ki, sizeof ki) != FERRY_OK) {
                conf_fail_call(&w, "ferry_topk");
            } else {
                /* Descending stable order: largest value, smallest index among ties. */
                int64_t j = n - 1;
                int64_t want[10];
                int m = 0;
                while (m < 10) {
                    int64_t e = j;
                    while (e > 0 && gv[e - 1] == gv[j])
                        e--;
                    for (int64_t q = e; q <= j && m < 10; q++)
                        want[m++] = gi[q];
                    j = e - 1;
                }
                for (int q = 0; q < 10; q++)
                    if (ki[q] != want[q] || kv[q] != x[want[q]])
                        conf_fail(&w, "element %d: index %lld value %g, expected %lld", q,
                                  (long long)ki[q], (double)kv[q], (long long)want[q]);
            }
        }
        free(gv);
        free(gi);
        ferry_tensor_release(v);
        ferry_tensor_release(ix);
        ferry_tensor_release(tv);
        ferry_tensor_release(ti);
        ferry_tensor_release(t);
    }
    free(x);
    conf_finish();
}

static void test_sort_errors(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        int64_t shape[1] = {3};
        ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, shape, dev);
        ferry_tensor *b = ferry_zeros(FERRY_BOOL, 1, shape, dev);
        ferry_tensor *z = ferry_zeros(FERRY_FLOAT32, 0, NULL, dev);
        ferry_tensor *v = NULL, *i = NULL;
        conf_where w = {"topk", "float32", "k out of range", dev};
        ferry_status st = ferry_topk(t, 4, 0, true, true, &v, &i);
        conf_expect_error(&w, "ferry_topk(k=4)", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "selected index k out of range");
        st = ferry_topk(t, -1, 0, true, true, &v, &i);
        conf_expect_error(&w, "ferry_topk(k=-1)", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "selected index k out of range");
        st = ferry_topk(z, 2, 0, true, true, &v, &i);
        conf_expect_error(&w, "ferry_topk(0-d, k=2)", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "selected index k out of range");
        w.kase = "dim out of range";
        st = ferry_sort(t, 1, false, false, &v, &i);
        conf_expect_error(&w, "ferry_sort(dim=1)", st != FERRY_OK, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-1, 0], but got 1)");
        st = ferry_topk(t, 1, -2, true, true, &v, &i);
        conf_expect_error(&w, "ferry_topk(dim=-2)", st != FERRY_OK, FERRY_ERR_INDEX,
                          FERRY_ERR_INDEX, "but got -2)");
        ferry_tensor *a = ferry_argsort(z, 1, false, false);
        conf_expect_error(&w, "ferry_argsort(0-d, dim=1)", a == NULL, FERRY_ERR_INDEX,
                          FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-1, 0], but got 1)");
        ferry_tensor_release(a);
        w.dtype = "bool";
        w.kase = "bool";
        st = ferry_topk(b, 1, 0, true, true, &v, &i);
        conf_expect_error(&w, "ferry_topk(bool)", st != FERRY_OK, FERRY_ERR_UNSUPPORTED,
                          FERRY_ERR_UNSUPPORTED, "topk does not support bool dtypes");
        w.kase = "NULL values";
        st = ferry_sort(t, 0, false, false, NULL, &i);
        conf_expect_error(&w, "ferry_sort(values=NULL)", st != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "values is NULL");
        if (v || i)
            conf_fail(&w, "a failed call left results");
        ferry_tensor_release(t);
        ferry_tensor_release(b);
        ferry_tensor_release(z);
    }
    conf_finish();
}

/* Order of the values-only sort: NaN last, -0.0 before +0.0 (the cpu's values-only
 * sorts keep that order; other devices may give zeros of either sign in either order). */
static int vals_cmp(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b);
    if (a != b)
        return a < b ? -1 : 1;
    return (int)(signbit(b) != 0) - (int)(signbit(a) != 0);
}

/* One long float32 row of mixed magnitudes with NaNs, infinities, zeros of both signs and
 * denormals, and one crowded into few distinct values, at lengths around the cpu's
 * thresholds (threaded sorts from 2^17, streamed stores from 2^20 and 2^21): values only,
 * both directions, against qsort here. */
static void test_sort_values_only_long_rows(void **state)
{
    (void)state;
    const int64_t lens[] = {131072, 131083, 1048583, 2097152 + 9};
    for (int li = 0; li < 4; li++) {
        const int64_t n = lens[li];
        float *x = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n),
              *got = malloc(sizeof(float) * (size_t)n);
        /* crowd 1: seven values; 2: one exponent, no special values (every key's top
         * bits are the same). */
        for (int crowd = 0; crowd < 3; crowd++) {
            uint64_t s = 99 + (uint64_t)n;
            for (int64_t i = 0; i < n; i++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                uint32_t r = (uint32_t)(s >> 32);
                float v = crowd ? (float)(r % 7) - 3.0f
                                : ldexpf((float)(r >> 8), (int)(r % 41) - 40);
                if (r & 1)
                    v = -v;
                if (crowd == 2)
                    v = 1.0f + ldexpf((float)(r >> 9), -23);
                switch (crowd == 2 ? 96 : r % 97) {
                case 0: v = NAN; break;
                case 1: v = -0.0f; break;
                case 2: v = 0.0f; break;
                case 3: v = INFINITY; break;
                case 4: v = -INFINITY; break;
                case 5: v = 1e-45f; break;
                default: break;
                }
                x[i] = v;
            }
            memcpy(want, x, sizeof(float) * (size_t)n);
            qsort(want, (size_t)n, sizeof(float), vals_cmp);
            CONF_FOR_EACH_DEVICE(dev) {
                char kase[64];
                snprintf(kase, sizeof kase, "one row of %lld%s, values only", (long long)n,
                         crowd == 1 ? " (7 values)" : crowd == 2 ? " (in [1, 2))" : "");
                conf_where w = {"sort", "float32", kase, dev};
                ferry_tensor *t = ferry_tensor_from_data(x, FERRY_FLOAT32, 1, &n, dev);
                for (int desc = 0; t && desc < 2; desc++) {
                    ferry_tensor *v = NULL;
                    if (ferry_sort(t, 0, desc, false, &v, NULL) != FERRY_OK ||
                        ferry_tensor_copy_to_host(v, got, sizeof(float) * (size_t)n) != FERRY_OK) {
                        conf_fail_call(&w, "ferry_sort(indices=NULL)");
                        ferry_tensor_release(v);
                        continue;
                    }
                    for (int64_t q = 0, bad = 0; q < n && bad < 3; q++) {
                        float e = want[desc ? n - 1 - q : q], g = got[q];
                        bool ok = isnan(e) ? isnan(g) : g == e;
                        if (ok && conf_is_cpu(dev) && !isnan(e))
                            ok = signbit(g) == signbit(e);
                        if (!ok) {
                            conf_fail(&w, "%s element %lld: %g, expected %g",
                                      desc ? "descending" : "ascending", (long long)q, (double)g,
                                      (double)e);
                            bad++;
                        }
                    }
                    ferry_tensor_release(v);
                }
                ferry_tensor_release(t);
            }
        }
        free(x);
        free(want);
        free(got);
    }
    conf_finish();
}

int conf_group_sort(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_matches_reference_on_every_dtype_case_and_device),
        cmocka_unit_test(test_sort_nan_and_signed_zero),
        cmocka_unit_test(test_sort_ties_nan_zero_long_rows),
        cmocka_unit_test(test_sort_long_rows),
        cmocka_unit_test(test_sort_values_only_long_rows),
        cmocka_unit_test(test_sort_errors),
    };
    return cmocka_run_group_tests_name("sort", tests, NULL, NULL);
}

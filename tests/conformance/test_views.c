/* View conformance: every view op's values on every dtype and device against index
 * arithmetic done here, whether it shares storage (writes through cpu views, in-place ops
 * on device views), and its refusals. */
#include "conformance.h"

/* ---- the reference: views as index maps on host arrays ------------------------------ */

static void unravel(int nd, const int64_t *shape, int64_t flat, int64_t *idx)
{
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
}

static int64_t ravel(int nd, const int64_t *shape, const int64_t *idx)
{
    int64_t flat = 0;
    for (int d = 0; d < nd; d++)
        flat = flat * shape[d] + idx[d];
    return flat;
}

static void ref_permute(const conf_array *s, const int *perm, conf_array *d)
{
    int64_t shape[CONF_MAX_DIMS], di[CONF_MAX_DIMS], si[CONF_MAX_DIMS];
    for (int i = 0; i < s->ndim; i++)
        shape[i] = s->shape[perm[i]];
    conf_array_init(d, s->dtype, s->ndim, shape);
    for (int64_t k = 0; k < d->numel; k++) {
        unravel(d->ndim, d->shape, k, di);
        for (int i = 0; i < s->ndim; i++)
            si[perm[i]] = di[i];
        d->v[k] = s->v[ravel(s->ndim, s->shape, si)];
    }
}

static void ref_transpose(const conf_array *s, int d0, int d1, conf_array *d)
{
    int perm[CONF_MAX_DIMS];
    for (int i = 0; i < s->ndim; i++)
        perm[i] = i;
    perm[d0] = d1;
    perm[d1] = d0;
    ref_permute(s, perm, d);
}

/* Row-major order is what reshape keeps, view or copy. */
static void ref_reshape(const conf_array *s, int nd, const int64_t *shape, conf_array *d)
{
    conf_array_init(d, s->dtype, nd, shape);
    assert_int_equal(d->numel, s->numel);
    memcpy(d->v, s->v, (size_t)s->numel * sizeof *s->v);
}

/* Python's slice: negative bounds count from the end, then both clamp to [0, n]. */
static void ref_slice(const conf_array *s, int dim, int64_t start, int64_t end, int64_t step,
                      conf_array *d)
{
    int64_t n = s->shape[dim];
    start = start < 0 ? start + n : start;
    end = end < 0 ? end + n : end;
    start = start < 0 ? 0 : start > n ? n : start;
    end = end < 0 ? 0 : end > n ? n : end;
    int64_t len = end > start ? (end - start + step - 1) / step : 0;
    int64_t shape[CONF_MAX_DIMS], idx[CONF_MAX_DIMS];
    memcpy(shape, s->shape, (size_t)s->ndim * sizeof *shape);
    shape[dim] = len;
    conf_array_init(d, s->dtype, s->ndim, shape);
    for (int64_t k = 0; k < d->numel; k++) {
        unravel(d->ndim, d->shape, k, idx);
        idx[dim] = start + idx[dim] * step;
        d->v[k] = s->v[ravel(s->ndim, s->shape, idx)];
    }
}

static void ref_expand(const conf_array *s, int nd, const int64_t *shape, conf_array *d)
{
    int64_t full[CONF_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int k = i - (nd - s->ndim);
        full[i] = shape[i] == -1 ? s->shape[k] : shape[i];
    }
    conf_array_init(d, s->dtype, nd, full);
    for (int64_t k = 0; k < d->numel; k++)
        d->v[k] = s->v[conf_bcast_index(s, nd, full, k)];
}

/* ---- the cases ---------------------------------------------------------------------- */

typedef struct view_case {
    const char *name;
    int nd;
    int64_t shape[6]; /* of the base */
    ferry_tensor *(*apply)(ferry_tensor *t);
    void (*ref)(const conf_array *s, conf_array *d);
    bool shares;   /* must be a view of the base's storage */
    bool writable; /* each element has its own memory location */
} view_case;

#define SHAPE(...) (int64_t[]){__VA_ARGS__}

static ferry_tensor *a_reshape_6_4(ferry_tensor *t) { return ferry_reshape(t, 2, SHAPE(6, 4)); }
static void r_reshape_6_4(const conf_array *s, conf_array *d) { ref_reshape(s, 2, SHAPE(6, 4), d); }

static ferry_tensor *a_reshape_4_m1(ferry_tensor *t) { return ferry_reshape(t, 2, SHAPE(4, -1)); }
static void r_reshape_4_6(const conf_array *s, conf_array *d) { ref_reshape(s, 2, SHAPE(4, 6), d); }

static ferry_tensor *a_reshape_transposed(ferry_tensor *t)
{
    ferry_tensor *x = ferry_transpose(t, 0, 2);
    ferry_tensor *r = x ? ferry_reshape(x, 1, SHAPE(-1)) : NULL;
    ferry_tensor_release(x);
    return r;
}
static void r_reshape_transposed(const conf_array *s, conf_array *d)
{
    conf_array x;
    ref_transpose(s, 0, 2, &x);
    ref_reshape(&x, 1, SHAPE(24), d);
    conf_array_free(&x);
}

/* Splitting a transposed dim whose stride allows it stays a view. */
static ferry_tensor *a_reshape_split_transposed(ferry_tensor *t)
{
    ferry_tensor *x = ferry_transpose(t, 1, 2);
    ferry_tensor *r = x ? ferry_reshape(x, 4, SHAPE(2, 2, 2, 3)) : NULL;
    ferry_tensor_release(x);
    return r;
}
static void r_reshape_split_transposed(const conf_array *s, conf_array *d)
{
    conf_array x;
    ref_transpose(s, 1, 2, &x);
    ref_reshape(&x, 4, SHAPE(2, 2, 2, 3), d);
    conf_array_free(&x);
}

static ferry_tensor *a_view_3_8(ferry_tensor *t) { return ferry_view(t, 2, SHAPE(3, 8)); }
static void r_view_3_8(const conf_array *s, conf_array *d) { ref_reshape(s, 2, SHAPE(3, 8), d); }

static ferry_tensor *a_transpose_0_2(ferry_tensor *t) { return ferry_transpose(t, 0, 2); }
static void r_transpose_0_2(const conf_array *s, conf_array *d) { ref_transpose(s, 0, 2, d); }

static ferry_tensor *a_transpose_neg(ferry_tensor *t) { return ferry_transpose(t, -1, -2); }
static void r_transpose_1_2(const conf_array *s, conf_array *d) { ref_transpose(s, 1, 2, d); }

static ferry_tensor *a_permute_201(ferry_tensor *t) { return ferry_permute(t, 3, (int[]){2, 0, 1}); }
static ferry_tensor *a_permute_neg(ferry_tensor *t) { return ferry_permute(t, 3, (int[]){-1, 0, 1}); }
static void r_permute_201(const conf_array *s, conf_array *d) { ref_permute(s, (int[]){2, 0, 1}, d); }

static ferry_tensor *a_slice_step2(ferry_tensor *t) { return ferry_slice(t, 1, 0, 3, 2); }
static void r_slice_step2(const conf_array *s, conf_array *d) { ref_slice(s, 1, 0, 3, 2, d); }

static ferry_tensor *a_slice_neg(ferry_tensor *t) { return ferry_slice(t, -1, -3, 100, 2); }
static void r_slice_neg(const conf_array *s, conf_array *d) { ref_slice(s, 2, -3, 100, 2, d); }

static ferry_tensor *a_slice_clamped(ferry_tensor *t) { return ferry_slice(t, 0, -100, 1, 1); }
static void r_slice_clamped(const conf_array *s, conf_array *d) { ref_slice(s, 0, -100, 1, 1, d); }

static ferry_tensor *a_slice_empty(ferry_tensor *t) { return ferry_slice(t, 2, 3, 1, 1); }
static void r_slice_empty(const conf_array *s, conf_array *d) { ref_slice(s, 2, 3, 1, 1, d); }

static ferry_tensor *a_expand(ferry_tensor *t) { return ferry_expand(t, 3, SHAPE(2, -1, 4)); }
static void r_expand(const conf_array *s, conf_array *d) { ref_expand(s, 3, SHAPE(2, -1, 4), d); }

static ferry_tensor *a_squeeze_1(ferry_tensor *t) { return ferry_squeeze(t, 1); }
static ferry_tensor *a_squeeze_m2(ferry_tensor *t) { return ferry_squeeze(t, -2); }
static void r_squeeze_to_2_4(const conf_array *s, conf_array *d) { ref_reshape(s, 2, SHAPE(2, 4), d); }

static ferry_tensor *a_squeeze_0(ferry_tensor *t) { return ferry_squeeze(t, 0); }
static void r_same(const conf_array *s, conf_array *d) { ref_reshape(s, s->ndim, s->shape, d); }

static ferry_tensor *a_squeeze_all(ferry_tensor *t) { return ferry_squeeze_all(t); }

static ferry_tensor *a_unsqueeze_0(ferry_tensor *t) { return ferry_unsqueeze(t, 0); }
static void r_unsqueeze_0(const conf_array *s, conf_array *d) { ref_reshape(s, 4, SHAPE(1, 2, 3, 4), d); }
static ferry_tensor *a_unsqueeze_m1(ferry_tensor *t) { return ferry_unsqueeze(t, -1); }
static void r_unsqueeze_m1(const conf_array *s, conf_array *d) { ref_reshape(s, 4, SHAPE(2, 3, 4, 1), d); }
static ferry_tensor *a_unsqueeze_2(ferry_tensor *t) { return ferry_unsqueeze(t, 2); }
static void r_unsqueeze_2(const conf_array *s, conf_array *d) { ref_reshape(s, 4, SHAPE(2, 3, 1, 4), d); }

static ferry_tensor *a_flatten_all(ferry_tensor *t) { return ferry_flatten(t, 0, -1); }
static void r_flatten_all(const conf_array *s, conf_array *d) { ref_reshape(s, 1, &s->numel, d); }
static ferry_tensor *a_flatten_1_2(ferry_tensor *t) { return ferry_flatten(t, 1, 2); }
static void r_flatten_1_2(const conf_array *s, conf_array *d) { ref_reshape(s, 2, SHAPE(2, 12), d); }

static ferry_tensor *a_flatten_transposed(ferry_tensor *t)
{
    ferry_tensor *x = ferry_transpose(t, 0, 1);
    ferry_tensor *r = x ? ferry_flatten(x, 1, 2) : NULL;
    ferry_tensor_release(x);
    return r;
}
static void r_flatten_transposed(const conf_array *s, conf_array *d)
{
    conf_array x;
    ref_transpose(s, 0, 1, &x);
    ref_reshape(&x, 2, SHAPE(3, 8), d);
    conf_array_free(&x);
}

static void r_to_1(const conf_array *s, conf_array *d) { ref_reshape(s, 1, SHAPE(1), d); }
static ferry_tensor *a_reshape_1_1(ferry_tensor *t) { return ferry_reshape(t, 2, SHAPE(1, 1)); }
static void r_to_1_1(const conf_array *s, conf_array *d) { ref_reshape(s, 2, SHAPE(1, 1), d); }
static ferry_tensor *a_transpose_0d(ferry_tensor *t) { return ferry_transpose(t, 0, -1); }

static ferry_tensor *a_chain(ferry_tensor *t)
{
    ferry_tensor *e = ferry_expand(t, 3, SHAPE(2, 3, 4));
    ferry_tensor *x = e ? ferry_transpose(e, 0, 2) : NULL;
    ferry_tensor *r = x ? ferry_slice(x, 0, 1, 4, 2) : NULL;
    ferry_tensor_release(e);
    ferry_tensor_release(x);
    return r;
}
static void r_chain(const conf_array *s, conf_array *d)
{
    conf_array e, x;
    ref_expand(s, 3, SHAPE(2, 3, 4), &e);
    ref_transpose(&e, 0, 2, &x);
    ref_slice(&x, 0, 1, 4, 2, d);
    conf_array_free(&e);
    conf_array_free(&x);
}

static ferry_tensor *a_permute_6d(ferry_tensor *t)
{
    return ferry_permute(t, 6, (int[]){5, 3, 1, 0, 4, 2});
}
static void r_permute_6d(const conf_array *s, conf_array *d)
{
    ref_permute(s, (int[]){5, 3, 1, 0, 4, 2}, d);
}

static ferry_tensor *a_reshape_zero(ferry_tensor *t) { return ferry_reshape(t, 2, SHAPE(3, -1)); }
static void r_reshape_zero(const conf_array *s, conf_array *d) { ref_reshape(s, 2, SHAPE(3, 0), d); }

#define BASE_234 3, {2, 3, 4}

static const view_case view_cases[] = {
    {"reshape as a view [6, 4]", BASE_234, a_reshape_6_4, r_reshape_6_4, true, true},
    {"reshape with -1 [4, -1]", BASE_234, a_reshape_4_m1, r_reshape_4_6, true, true},
    {"reshape of a transpose copies", BASE_234, a_reshape_transposed, r_reshape_transposed, false, true},
    {"reshape splitting a transposed dim stays a view", BASE_234, a_reshape_split_transposed,
     r_reshape_split_transposed, true, true},
    {"view [3, 8]", BASE_234, a_view_3_8, r_view_3_8, true, true},
    {"transpose 0, 2", BASE_234, a_transpose_0_2, r_transpose_0_2, true, true},
    {"transpose -1, -2", BASE_234, a_transpose_neg, r_transpose_1_2, true, true},
    {"permute 2, 0, 1", BASE_234, a_permute_201, r_permute_201, true, true},
    {"permute -1, 0, 1", BASE_234, a_permute_neg, r_permute_201, true, true},
    {"slice dim 1 step 2", BASE_234, a_slice_step2, r_slice_step2, true, true},
    {"slice -3 .. 100 step 2 on dim -1", BASE_234, a_slice_neg, r_slice_neg, true, true},
    {"slice clamped start -100", BASE_234, a_slice_clamped, r_slice_clamped, true, true},
    {"slice empty 3 .. 1", BASE_234, a_slice_empty, r_slice_empty, true, true},
    {"expand [3, 1] to [2, 3, 4]", 2, {3, 1}, a_expand, r_expand, true, false},
    {"squeeze a size-1 dim", 3, {2, 1, 4}, a_squeeze_1, r_squeeze_to_2_4, true, true},
    {"squeeze -2", 3, {2, 1, 4}, a_squeeze_m2, r_squeeze_to_2_4, true, true},
    {"squeeze a dim of size 2 keeps the shape", 3, {2, 1, 4}, a_squeeze_0, r_same, true, true},
    {"squeeze_all", 5, {1, 2, 1, 4, 1}, a_squeeze_all, r_squeeze_to_2_4, true, true},
    {"unsqueeze 0", BASE_234, a_unsqueeze_0, r_unsqueeze_0, true, true},
    {"unsqueeze -1", BASE_234, a_unsqueeze_m1, r_unsqueeze_m1, true, true},
    {"unsqueeze 2", BASE_234, a_unsqueeze_2, r_unsqueeze_2, true, true},
    {"flatten 0 .. -1", BASE_234, a_flatten_all, r_flatten_all, true, true},
    {"flatten 1 .. 2", BASE_234, a_flatten_1_2, r_flatten_1_2, true, true},
    {"flatten of a transpose copies", BASE_234, a_flatten_transposed, r_flatten_transposed, false,
     true},
    {"0-d unsqueeze 0", 0, {0}, a_unsqueeze_0, r_to_1, true, true},
    {"0-d flatten", 0, {0}, a_flatten_all, r_to_1, true, true},
    {"0-d reshape [1, 1]", 0, {0}, a_reshape_1_1, r_to_1_1, true, true},
    {"0-d transpose 0, -1", 0, {0}, a_transpose_0d, r_same, true, true},
    {"expand, transpose, slice chained", 2, {3, 1}, a_chain, r_chain, true, false},
    {"6-d permute", 6, {2, 1, 3, 1, 2, 2}, a_permute_6d, r_permute_6d, true, true},
    {"zero-size reshape [3, -1]", 2, {0, 3}, a_reshape_zero, r_reshape_zero, true, true},
};
#define N_VIEW_CASES (sizeof view_cases / sizeof view_cases[0])

/* ---- values ------------------------------------------------------------------------- */

static void check_view_values(const conf_where *w, const view_case *vc, ferry_tensor *base,
                              const conf_array *bv)
{
    ferry_tensor *v = vc->apply(base);
    if (!v) {
        conf_fail_call(w, "the view op");
        return;
    }
    conf_array want, got;
    vc->ref(bv, &want);
    if (conf_read(w, v, bv->dtype, want.ndim, want.shape, w->device, &got)) {
        for (int64_t i = 0; i < want.numel; i++)
            if (!(got.v[i] == want.v[i] || (isnan(got.v[i]) && isnan(want.v[i])))) {
                conf_fail(w, "element %lld is %g, expected %g", (long long)i, got.v[i], want.v[i]);
                break;
            }
        conf_array_free(&got);
    }
    conf_array_free(&want);
    ferry_tensor_release(v);
}

static void test_views_values_match_index_arithmetic_on_every_dtype_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t c = 0; c < N_VIEW_CASES; c++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
                const view_case *vc = &view_cases[c];
                ferry_dtype dt = conf_all_dtypes[d];
                conf_where w = {"view", conf_dtype_name(dt), vc->name, dev};
                conf_operand spec = {vc->nd, {0}, CONF_CONTIGUOUS, 0, {0}};
                memcpy(spec.shape, vc->shape, sizeof vc->shape);
                conf_rng r = conf_rng_seed("view", w.dtype, vc->name, 0);
                conf_array bv;
                ferry_tensor *base = conf_make(&w, &spec, dt, dev, &r, &conf_default_domain, &bv);
                if (!base)
                    continue;
                check_view_values(&w, vc, base, &bv);
                ferry_tensor_release(base);
                conf_array_free(&bv);
            }
    }
    conf_finish();
}

/* ---- sharing storage ---------------------------------------------------------------- */

/* A float32 base holding 1 .. n, and for the view the base index (0-based) each of its
 * elements reads, computed by the reference from an iota. */
static ferry_tensor *iota_base(const conf_where *w, const view_case *vc, const char *dev,
                               conf_array *vals, conf_array *index)
{
    conf_operand spec = {vc->nd, {0}, CONF_CONTIGUOUS, 0, {0}};
    memcpy(spec.shape, vc->shape, sizeof vc->shape);
    conf_array src, iota;
    conf_array_init(&src, FERRY_FLOAT32, vc->nd, vc->shape);
    conf_array_init(&iota, FERRY_FLOAT32, vc->nd, vc->shape);
    for (int64_t i = 0; i < src.numel; i++) {
        src.v[i] = (double)(i + 1);
        iota.v[i] = (double)i;
    }
    vc->ref(&iota, index);
    conf_array_free(&iota);
    ferry_tensor *t = conf_build(w, &spec, &src, dev, vals);
    conf_array_free(&src);
    if (!t)
        conf_array_free(index);
    return t;
}

static bool read_floats(const conf_where *w, ferry_tensor *t, float *out)
{
    ferry_status st = ferry_tensor_copy_to_host(t, out, ferry_tensor_nbytes(t));
    if (st != FERRY_OK)
        conf_fail_call(w, "ferry_tensor_copy_to_host");
    return st == FERRY_OK;
}

/* The address of logical element k of a cpu tensor, from its own strides. */
static float *element_at(ferry_tensor *t, int64_t k)
{
    int64_t idx[CONF_MAX_DIMS], off = 0;
    unravel(ferry_tensor_ndim(t), ferry_tensor_shape(t), k, idx);
    for (int d = 0; d < ferry_tensor_ndim(t); d++)
        off += idx[d] * ferry_tensor_strides(t)[d];
    return (float *)ferry_tensor_host_data(t) + off;
}

/* On cpu: a view's elements lie in the base's memory and writes go both ways; a copy's
 * do not. */
static void test_views_share_storage_on_cpu_and_copies_do_not(void **state)
{
    (void)state;
    for (size_t c = 0; c < N_VIEW_CASES; c++) {
        const view_case *vc = &view_cases[c];
        conf_where w = {"view", "float32", vc->name, "cpu"};
        conf_array bv, index;
        ferry_tensor *base = iota_base(&w, vc, "cpu", &bv, &index);
        if (!base)
            continue;
        ferry_tensor *v = vc->apply(base);
        if (!v) {
            conf_fail_call(&w, "the view op");
            goto next;
        }
        int64_t n = bv.numel, m = index.numel;
        float *b0 = ferry_tensor_host_data(base);
        float *bufb = malloc((size_t)(n ? n : 1) * sizeof *bufb);
        float *bufv = malloc((size_t)(m ? m : 1) * sizeof *bufv);
        for (int64_t k = 0; k < m; k++) {
            float *p = element_at(v, k);
            bool inside = p >= b0 && p < b0 + n;
            if (inside != vc->shares) {
                conf_fail(&w, "element %lld %s the base's memory", (long long)k,
                          inside ? "lies in" : "does not lie in");
                break;
            }
        }
        /* View to base: write through the view's own strides, read the base. */
        if (vc->writable) {
            for (int64_t k = 0; k < m; k++)
                *element_at(v, k) = (float)(1000 + k);
            if (read_floats(&w, base, bufb)) {
                for (int64_t j = 0; j < n; j++) {
                    double want = bv.v[j];
                    for (int64_t k = 0; vc->shares && k < m; k++)
                        if ((int64_t)index.v[k] == j)
                            want = 1000.0 + (double)k;
                    if (bufb[j] != want) {
                        conf_fail(&w, "after writing through the view, base element %lld is %g, "
                                  "expected %g",
                                  (long long)j, bufb[j], want);
                        break;
                    }
                }
            }
        }
        /* Base to view: write the base, read the view. */
        for (int64_t j = 0; j < n; j++)
            b0[j] = (float)(-j - 1);
        if (read_floats(&w, v, bufv)) {
            for (int64_t k = 0; vc->shares && k < m; k++) {
                float want = (float)(-index.v[k] - 1);
                if (bufv[k] != want) {
                    conf_fail(&w, "after writing the base, view element %lld is %g, expected %g",
                              (long long)k, bufv[k], want);
                    break;
                }
            }
        }
        free(bufb);
        free(bufv);
        ferry_tensor_release(v);
    next:
        ferry_tensor_release(base);
        conf_array_free(&bv);
        conf_array_free(&index);
    }
    conf_finish();
}

/* On every device: negating a view in place (out = the view itself) changes exactly the
 * base elements the view covers, or none when the "view" is a copy. */
static void test_views_in_place_op_on_a_view_reaches_the_base_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t c = 0; c < N_VIEW_CASES; c++) {
            const view_case *vc = &view_cases[c];
            if (!vc->writable)
                continue;
            conf_where w = {"neg_out on a view", "float32", vc->name, dev};
            conf_array bv, index;
            ferry_tensor *base = iota_base(&w, vc, dev, &bv, &index);
            if (!base)
                continue;
            ferry_tensor *v = vc->apply(base);
            if (!v)
                conf_fail_call(&w, "the view op");
            else if (ferry_neg_out(v, v) != FERRY_OK)
                conf_fail_call(&w, "ferry_neg_out(view, view)");
            else {
                float *got = malloc((size_t)(bv.numel ? bv.numel : 1) * sizeof *got);
                if (read_floats(&w, base, got)) {
                    for (int64_t j = 0; j < bv.numel; j++) {
                        double want = bv.v[j];
                        for (int64_t k = 0; vc->shares && k < index.numel; k++)
                            if ((int64_t)index.v[k] == j)
                                want = -bv.v[j];
                        if (got[j] != want) {
                            conf_fail(&w, "base element %lld is %g, expected %g", (long long)j,
                                      got[j], want);
                            break;
                        }
                    }
                }
                free(got);
            }
            ferry_tensor_release(v);
            ferry_tensor_release(base);
            conf_array_free(&bv);
            conf_array_free(&index);
        }
    }
    conf_finish();
}

/* ---- refusals ------------------------------------------------------------------------ */

static void test_views_refuse_with_pytorch_messages_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"view", "float32", "refusal", dev};
        int64_t shape[3] = {2, 3, 4};
        ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 3, shape, dev);
        assert_tensor(t);
        ferry_tensor *tt = ferry_transpose(t, 0, 2);
        assert_tensor(tt);
        ferry_tensor *r;

        w.kase = "view of a transpose";
        r = ferry_view(tt, 1, SHAPE(24));
        conf_expect_error(&w, "ferry_view", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "view size is not compatible with input tensor's size and stride (at "
                          "least one dimension spans across two contiguous subspaces). Use "
                          ".reshape(...) instead.");
        ferry_tensor_release(r);

        w.kase = "reshape to the wrong size";
        r = ferry_reshape(t, 2, SHAPE(5, 5));
        conf_expect_error(&w, "ferry_reshape", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "shape '[5, 5]' is invalid for input of size 24");
        ferry_tensor_release(r);

        w.kase = "reshape with two -1";
        r = ferry_reshape(t, 2, SHAPE(-1, -1));
        conf_expect_error(&w, "ferry_reshape", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "only one dimension can be inferred");
        ferry_tensor_release(r);

        w.kase = "expand a non-singleton dim";
        r = ferry_expand(t, 3, SHAPE(2, 5, 4));
        conf_expect_error(&w, "ferry_expand", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "The expanded size of the tensor (5) must match the existing size (3) "
                          "at non-singleton dimension 1");
        ferry_tensor_release(r);

        w.kase = "transpose dim out of range";
        r = ferry_transpose(t, 0, 3);
        conf_expect_error(&w, "ferry_transpose", r == NULL, FERRY_ERR_INDEX,
                          FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-3, 2], but got 3)");
        ferry_tensor_release(r);

        w.kase = "permute with a repeated dim";
        r = ferry_permute(t, 3, (int[]){0, 0, 1});
        conf_expect_error(&w, "ferry_permute", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "duplicate dims are not allowed");
        ferry_tensor_release(r);

        w.kase = "permute with too few dims";
        r = ferry_permute(t, 2, (int[]){0, 1});
        conf_expect_error(&w, "ferry_permute", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "number of dims don't match in permute");
        ferry_tensor_release(r);

        w.kase = "slice with step 0";
        r = ferry_slice(t, 0, 0, 2, 0);
        conf_expect_error(&w, "ferry_slice", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "slice step must be positive");
        ferry_tensor_release(r);

        w.kase = "squeeze dim out of range";
        r = ferry_squeeze(t, -4);
        conf_expect_error(&w, "ferry_squeeze", r == NULL, FERRY_ERR_INDEX,
                          FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-3, 2], but got -4)");
        ferry_tensor_release(r);

        w.kase = "unsqueeze dim out of range";
        r = ferry_unsqueeze(t, 4);
        conf_expect_error(&w, "ferry_unsqueeze", r == NULL, FERRY_ERR_INDEX,
                          FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-4, 3], but got 4)");
        ferry_tensor_release(r);

        w.kase = "flatten with start after end";
        r = ferry_flatten(t, 2, 1);
        conf_expect_error(&w, "ferry_flatten", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "flatten() has invalid args: start_dim cannot come after end_dim");
        ferry_tensor_release(r);

        ferry_tensor_release(tt);
        ferry_tensor_release(t);
    }
    conf_finish();
}

int conf_group_views(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_views_values_match_index_arithmetic_on_every_dtype_and_device),
        cmocka_unit_test(test_views_share_storage_on_cpu_and_copies_do_not),
        cmocka_unit_test(test_views_in_place_op_on_a_view_reaches_the_base_on_every_device),
        cmocka_unit_test(test_views_refuse_with_pytorch_messages_on_every_device),
    };
    return cmocka_run_group_tests_name("views", tests, NULL, NULL);
}

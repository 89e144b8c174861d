/* Conformance of advanced indexing (ferry_index, ferry_index_put) on every device and
 * dtype, input layouts, both index dtypes and a transposed index, against references
 * computed here from NumPy's rules (broadcast indices, their dims in place when the
 * indexed dims are adjacent, else first); and the refusals with PyTorch's messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/backend.h>

#include "conformance.h"

static const conf_layout layouts[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED, CONF_SLICED};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

/* One index entry: ndim -1 is NULL (the whole dim). */
typedef struct xidx {
    int ndim;
    int64_t shape[2];
    int64_t v[12];
} xidx;

typedef struct xcase {
    const char *name;
    int n;
    xidx idx[3];
    bool dups;       /* two positions name one element: assignment is not compared */
    bool transposed; /* the 2-D index is passed as a transposed view */
} xcase;

#define WHOLE {-1, {0, 0}, {0}}

/* Over a (3, 4, 5) input. */
static const xcase cases[] = {
    {"dim 0, negative", 1, {{1, {3}, {2, 0, -2}}}, false, false},
    {"dim 1, 2-D index", 2, {WHOLE, {2, {2, 2}, {0, 3, 1, -4}}}, false, false},
    {"dim 1, 2-D transposed index", 2, {WHOLE, {2, {2, 2}, {0, 3, 1, -4}}}, false, true},
    {"dims 0 and 2 apart", 3, {{1, {3}, {0, 2, 1}}, WHOLE, {1, {3}, {4, 0, -5}}}, false, false},
    {"dims 0 and 1 broadcast", 2, {{1, {1}, {1}}, {1, {3}, {3, 0, 2}}}, false, false},
    {"dims 1 and 2 broadcast 2-D", 3, {WHOLE, {1, {2}, {2, 1}}, {2, {2, 1}, {0, 4}}}, false, false},
    {"every dim", 3, {{1, {2}, {0, 1}}, {1, {2}, {1, 2}}, {1, {2}, {2, 3}}}, false, false},
    {"empty index", 2, {WHOLE, {1, {0}, {0}}}, false, false},
    {"0-d index", 2, {WHOLE, {0, {0}, {2}}}, false, false},
    {"duplicates", 1, {{1, {5}, {1, 1, -2, 0, 1}}}, true, false},
};
#define NCASES (sizeof cases / sizeof cases[0])

static const int64_t in_shape[3] = {3, 4, 5};

/* The plan of a case, as NumPy defines it. */
typedef struct xref {
    int k, dims[3], nb, bdim, nr;
    int64_t bshape[3], rshape[6];
    int64_t rnumel;
} xref;

static int64_t entry_at(const xidx *x, int nb, const int64_t *bshape, const int64_t *bpos)
{
    int64_t off = 0, stride = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        int bi = nb - x->ndim + i;
        int64_t p = x->shape[i] == 1 ? 0 : bpos[bi];
        (void)bshape;
        off += p * stride;
        stride *= x->shape[i];
    }
    return x->v[off];
}

static void plan_of(const xcase *c, xref *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < c->n; i++)
        if (c->idx[i].ndim >= 0)
            r->dims[r->k++] = i;
    for (int j = 0; j < r->k; j++) {
        const xidx *x = &c->idx[r->dims[j]];
        int nd = x->ndim > r->nb ? x->ndim : r->nb;
        int64_t out[3] = {0, 0, 0};
        for (int i = 0; i < nd; i++) {
            int ia = r->nb - nd + i, ib = x->ndim - nd + i;
            int64_t a = ia >= 0 ? r->bshape[ia] : 1, b = ib >= 0 ? x->shape[ib] : 1;
            out[i] = a == 1 ? b : a;
        }
        r->nb = nd;
        memcpy(r->bshape, out, sizeof out);
    }
    bool adjacent = r->dims[r->k - 1] - r->dims[0] + 1 == r->k;
    r->bdim = adjacent ? r->dims[0] : 0;
    int n = 0;
    for (int d = 0; d < 3; d++) {
        if (d == r->bdim)
            for (int q = 0; q < r->nb; q++)
                r->rshape[n++] = r->bshape[q];
        bool indexed = d < c->n && c->idx[d].ndim >= 0;
        if (!indexed)
            r->rshape[n++] = in_shape[d];
    }
    r->nr = n;
    r->rnumel = 1;
    for (int i = 0; i < n; i++)
        r->rnumel *= r->rshape[i];
}

/* The flat input element R's flat position `at` names. */
static int64_t source_of(const xcase *c, const xref *r, int64_t at)
{
    int64_t pos[6], rest = at;
    for (int i = r->nr - 1; i >= 0; i--) {
        pos[i] = rest % r->rshape[i];
        rest /= r->rshape[i];
    }
    int64_t coord[3];
    const int64_t *bpos = pos + r->bdim;
    int q = 0;
    for (int d = 0; d < 3; d++) {
        if (q == r->bdim)
            q += r->nb;
        bool indexed = d < c->n && c->idx[d].ndim >= 0;
        if (indexed) {
            int64_t i = entry_at(&c->idx[d], r->nb, r->bshape, bpos);
            coord[d] = i < 0 ? i + in_shape[d] : i;
        } else {
            coord[d] = pos[q++];
        }
    }
    return (coord[0] * in_shape[1] + coord[1]) * in_shape[2] + coord[2];
}

static ferry_tensor *make_idx(const xidx *x, ferry_dtype idt, bool transposed, const char *dev)
{
    int64_t n = 1;
    for (int i = 0; i < x->ndim; i++)
        n *= x->shape[i];
    int64_t v[12];
    int64_t shape[2] = {x->shape[0], x->shape[1]};
    if (transposed && x->ndim == 2) {
        /* Stored as the transpose, so the view shows x's values. */
        for (int64_t p = 0; p < x->shape[0]; p++)
            for (int64_t q = 0; q < x->shape[1]; q++)
                v[q * x->shape[0] + p] = x->v[p * x->shape[1] + q];
        shape[0] = x->shape[1];
        shape[1] = x->shape[0];
    } else {
        memcpy(v, x->v, sizeof v);
    }
    ferry_tensor *t;
    if (idt == FERRY_INT64) {
        t = ferry_tensor_from_data(n ? v : NULL, idt, x->ndim, shape, dev);
    } else {
        int32_t w[12];
        for (int i = 0; i < 12; i++)
            w[i] = (int32_t)v[i];
        t = ferry_tensor_from_data(n ? w : NULL, idt, x->ndim, shape, dev);
    }
    if (t && transposed && x->ndim == 2) {
        ferry_tensor *u = ferry_transpose(t, 0, 1);
        ferry_tensor_release(t);
        t = u;
    }
    return t;
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
}

static void run_case(const xcase *c, ferry_dtype dt, conf_layout layout, ferry_dtype idt,
                     const char *dev)
{
    char kase[160];
    snprintf(kase, sizeof kase, "%s, %s input, %s index", c->name, conf_layout_name(layout),
             conf_dtype_name(idt));
    conf_where w = {"index", conf_dtype_name(dt), kase, dev};
    conf_operand spec = {.ndim = 3, .shape = {3, 4, 5}, .layout = layout};
    conf_rng rng = conf_rng_seed("index", w.dtype, kase, 1);
    conf_array a;
    ferry_tensor *t = conf_make(&w, &spec, dt, dev, &rng, &conf_default_domain, &a);
    if (!t)
        return;
    xref r;
    plan_of(c, &r);
    ferry_tensor *idx[3] = {NULL, NULL, NULL};
    bool ok = true;
    for (int i = 0; i < c->n; i++)
        if (c->idx[i].ndim >= 0 && !(idx[i] = make_idx(&c->idx[i], idt, c->transposed, dev)))
            ok = false;
    double *ref = calloc((size_t)(r.rnumel + 1), sizeof *ref);
    double *acc = malloc(sizeof(double) * (size_t)a.numel);
    double *tol = calloc((size_t)a.numel, sizeof *tol);
    if (!ok) {
        conf_fail_call(&w, "ferry_tensor_from_data");
        goto done;
    }
    for (int64_t p = 0; p < r.rnumel; p++)
        ref[p] = a.v[source_of(c, &r, p)];
    ferry_tensor *res = ferry_index(t, c->n, (const ferry_tensor *const *)idx);
    check(&w, res, dt, r.nr, r.rshape, ref, NULL);
    ferry_tensor_release(res);

    /* index_put: values of R's shape, written into a copy (assign) and added. */
    w.op = "index_put";
    conf_operand vspec = {.ndim = r.nr, .layout = CONF_CONTIGUOUS};
    memcpy(vspec.shape, r.rshape, sizeof r.rshape);
    conf_array va;
    ferry_tensor *vals = conf_make(&w, &vspec, dt, dev, &rng, &conf_default_domain, &va);
    if (!vals)
        goto done;
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        if (!accumulate && c->dups)
            continue;
        w.op = accumulate ? "index_put accumulate" : "index_put";
        memcpy(acc, a.v, sizeof(double) * (size_t)a.numel);
        memset(tol, 0, sizeof(double) * (size_t)a.numel);
        for (int64_t p = 0; p < r.rnumel; p++) {
            int64_t at = source_of(c, &r, p);
            double x = va.v[p];
            if (!accumulate)
                acc[at] = x;
            else if (dt == FERRY_BOOL)
                acc[at] = (acc[at] != 0 || x != 0) ? 1 : 0;
            else
                acc[at] += x;
            tol[at] += 4 * conf_rtol(dt) * (fabs(acc[at]) + fabs(x));
        }
        for (int64_t k = 0; k < a.numel; k++)
            if (conf_is_int(dt))
                acc[k] = (double)conf_wrap(dt, (int64_t)acc[k]);
        ferry_tensor *copy = ferry_tensor_clone(t);
        if (copy && ferry_index_put(copy, c->n, (const ferry_tensor *const *)idx, vals,
                                    accumulate) != FERRY_OK) {
            conf_fail_call(&w, "ferry_index_put");
        } else if (copy) {
            check(&w, copy, dt, 3, in_shape, acc, accumulate ? tol : NULL);
        }
        ferry_tensor_release(copy);
    }
    /* values broadcast from one element, and from a value of another dtype. */
    w.op = "index_put broadcast scalar";
    {
        double one = 1;
        ferry_tensor *s = ferry_tensor_from_data(&one, FERRY_FLOAT64, 0, NULL, dev);
        ferry_tensor *copy = ferry_tensor_clone(t);
        memcpy(acc, a.v, sizeof(double) * (size_t)a.numel);
        for (int64_t p = 0; p < r.rnumel; p++)
            acc[source_of(c, &r, p)] = 1;
        if (!s || !copy ||
            ferry_index_put(copy, c->n, (const ferry_tensor *const *)idx, s, false) != FERRY_OK)
            conf_fail_call(&w, "ferry_index_put");
        else
            check(&w, copy, dt, 3, in_shape, acc, NULL);
        ferry_tensor_release(s);
        ferry_tensor_release(copy);
    }
    /* Into t itself: a transposed or sliced self keeps its strides. */
    if (!c->dups) {
        w.op = "index_put into the input's layout";
        memcpy(acc, a.v, sizeof(double) * (size_t)a.numel);
        for (int64_t p = 0; p < r.rnumel; p++)
            acc[source_of(c, &r, p)] = va.v[p];
        if (ferry_index_put(t, c->n, (const ferry_tensor *const *)idx, vals, false) != FERRY_OK)
            conf_fail_call(&w, "ferry_index_put");
        else
            check(&w, t, dt, 3, in_shape, acc, NULL);
    }
    ferry_tensor_release(vals);
    conf_array_free(&va);
done:
    for (int i = 0; i < 3; i++)
        ferry_tensor_release(idx[i]);
    free(ref);
    free(acc);
    free(tol);
    ferry_tensor_release(t);
    conf_array_free(&a);
}

static void test_index_adv_index_and_index_put_match_reference(void **state)
{
    (void)state;
    static const ferry_dtype idts[] = {FERRY_INT64, FERRY_INT32};
    CONF_FOR_EACH_DEVICE(dev) {
        fallback_begin(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++)
            for (size_t li = 0; li < NLAYOUTS; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                for (size_t ci = 0; ci < NCASES; ci++)
                    run_case(&cases[ci], conf_all_dtypes[di], layouts[li], idts[ci % 2], dev);
                /* the other index dtype on one case per layout */
                run_case(&cases[3], conf_all_dtypes[di], layouts[li], FERRY_INT32, dev);
            }
        fallback_end("index, index_put", dev);
    }
    conf_finish();
}

/* Bool and uint8 masks: a (3, 4) mask over dims 0 and 1 gives (count, 5); a (4, 5) mask
 * after a whole dim gives (3, count); t[mask] = values and += values. */
static void test_index_adv_masks_match_reference(void **state)
{
    (void)state;
    static const ferry_dtype mdts[] = {FERRY_BOOL, FERRY_UINT8};
    CONF_FOR_EACH_DEVICE(dev) {
        fallback_begin(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++)
            for (size_t li = 0; li < NLAYOUTS; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                ferry_dtype dt = conf_all_dtypes[di];
                ferry_dtype mdt = mdts[(di + li) % 2];
                char kase[96];
                snprintf(kase, sizeof kase, "%s input, %s mask", conf_layout_name(layouts[li]),
                         conf_dtype_name(mdt));
                conf_where w = {"index mask", conf_dtype_name(dt), kase, dev};
                conf_operand spec = {.ndim = 3, .shape = {3, 4, 5}, .layout = layouts[li]};
                conf_rng rng = conf_rng_seed("index mask", w.dtype, kase, 1);
                conf_array a;
                ferry_tensor *t = conf_make(&w, &spec, dt, dev, &rng, &conf_default_domain, &a);
                if (!t)
                    continue;
                uint8_t m01[12], m12[20];
                int64_t n01 = 0, n12 = 0;
                for (int i = 0; i < 12; i++)
                    n01 += m01[i] = (uint8_t)((i * 7) % 3 == 0);
                for (int i = 0; i < 20; i++)
                    n12 += m12[i] = (uint8_t)((i * 5) % 4 == 1);
                ferry_tensor *mk01 = ferry_tensor_from_data(m01, mdt, 2, (int64_t[]){3, 4}, dev);
                ferry_tensor *mk12 = ferry_tensor_from_data(m12, mdt, 2, (int64_t[]){4, 5}, dev);
                double ref[60], put[60], ptol[60];
                int64_t r = 0;
                for (int i = 0; i < 12; i++)
                    if (m01[i])
                        for (int c = 0; c < 5; c++)
                            ref[r++] = a.v[i * 5 + c];
                ferry_tensor *res = ferry_index(t, 1, (const ferry_tensor *[]){mk01});
                check(&w, res, dt, 2, (int64_t[]){n01, 5}, ref, NULL);
                ferry_tensor_release(res);
                r = 0;
                for (int p = 0; p < 3; p++)
                    for (int i = 0; i < 20; i++)
                        if (m12[i])
                            ref[r++] = a.v[p * 20 + i];
                w.op = "index mask after a whole dim";
                res = ferry_index(t, 2, (const ferry_tensor *[]){NULL, mk12});
                check(&w, res, dt, 2, (int64_t[]){3, n12}, ref, NULL);
                ferry_tensor_release(res);
                /* t[mask] = 1 and t[mask] += 1 */
                double one = 1;
                ferry_tensor *s1 = ferry_tensor_from_data(&one, FERRY_FLOAT64, 0, NULL, dev);
                for (int acc = 0; acc < 2; acc++) {
                    w.op = acc ? "index_put mask accumulate" : "index_put mask";
                    for (int i = 0; i < 60; i++) {
                        put[i] = a.v[i];
                        if (m01[i / 5])
                            put[i] = acc ? (dt == FERRY_BOOL ? 1 : a.v[i] + 1) : 1;
                        if (conf_is_int(dt))
                            put[i] = (double)conf_wrap(dt, (int64_t)put[i]);
                        ptol[i] = 4 * conf_rtol(dt) * (fabs(put[i]) + 1);
                    }
                    ferry_tensor *c = ferry_tensor_clone(t);
                    if (!c || !s1 ||
                        ferry_index_put(c, 1, (const ferry_tensor *[]){mk01}, s1, acc) != FERRY_OK)
                        conf_fail_call(&w, "ferry_index_put");
                    else
                        check(&w, c, dt, 3, in_shape, put, acc ? ptol : NULL);
                    ferry_tensor_release(c);
                }
                ferry_tensor_release(s1);
                ferry_tensor_release(mk01);
                ferry_tensor_release(mk12);
                ferry_tensor_release(t);
                conf_array_free(&a);
            }
        fallback_end("index masks", dev);
    }
    conf_finish();
}

static ferry_tensor *ints(const char *dev, int64_t n, const int64_t *v)
{
    return ferry_tensor_from_data(n ? v : NULL, FERRY_INT64, 1, (int64_t[]){n}, dev);
}

static void test_index_adv_refuses_with_pytorch_messages_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"index", "float32", "", dev};
        fallback_begin(dev);
        ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){5}, dev);
        ferry_tensor *t2 = ferry_zeros(FERRY_FLOAT32, 2, (int64_t[]){2, 5}, dev);
        ferry_tensor *bad = ints(dev, 2, (int64_t[]){1, 7});
        ferry_tensor *neg = ints(dev, 1, (int64_t[]){-6});
        ferry_tensor *two = ints(dev, 2, (int64_t[]){0, 1});
        ferry_tensor *three = ints(dev, 3, (int64_t[]){0, 1, 0});
        ferry_tensor *fidx = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){1}, dev);
        ferry_tensor *v3 = ferry_ones(FERRY_FLOAT32, 1, (int64_t[]){3}, dev);
        assert_tensor(t);
        assert_tensor(t2);
        assert_tensor(bad);
        assert_tensor(neg);
        assert_tensor(two);
        assert_tensor(three);
        assert_tensor(fidx);
        assert_tensor(v3);
        ferry_tensor *r;
        ferry_status st;
        const char *oob = "index 7 is out of bounds for dimension 0 with size 5";

        w.kase = "out of range";
        r = ferry_index(t, 1, (const ferry_tensor *[]){bad});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, oob);
        ferry_tensor_release(r);
        r = ferry_index(t, 1, (const ferry_tensor *[]){neg});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "index -6 is out of bounds for dimension 0 with size 5");
        ferry_tensor_release(r);
        w.kase = "out of range, whole rows";
        ferry_tensor *t53 = ferry_zeros(FERRY_FLOAT32, 2, (int64_t[]){5, 3}, dev);
        assert_tensor(t53);
        r = ferry_index(t53, 1, (const ferry_tensor *[]){bad});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, oob);
        ferry_tensor_release(r);
        ferry_tensor_release(t53);
        w.kase = "out of range in dim 1 after a valid index";
        r = ferry_index(t2, 2, (const ferry_tensor *[]){two, bad});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "index 7 is out of bounds for dimension 1 with size 5");
        ferry_tensor_release(r);
        ferry_tensor *one = ferry_ones(FERRY_FLOAT32, 0, NULL, dev);
        assert_tensor(one);
        /* As torch: the first index tensor is "dimension 0" though it indexes dim 1. */
        st = ferry_index_put(t2, 2, (const ferry_tensor *[]){NULL, bad}, one, false);
        conf_expect_error(&w, "ferry_index_put", st != FERRY_OK, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "index 7 is out of bounds for dimension 0 with size 5");
        st = ferry_index_put(t, 1, (const ferry_tensor *[]){bad}, t, true);
        conf_expect_error(&w, "ferry_index_put", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "shape mismatch: value tensor of shape [5] cannot be broadcast to "
                          "indexing result of shape [2]");
        st = ferry_index_put(t, 1, (const ferry_tensor *[]){bad}, one, true);
        conf_expect_error(&w, "ferry_index_put", st != FERRY_OK, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          oob);
        ferry_tensor_release(one);

        w.kase = "indices that do not broadcast";
        r = ferry_index(t2, 2, (const ferry_tensor *[]){two, three});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "shape mismatch: indexing tensors could not be broadcast together "
                          "with shapes [2], [3]");
        ferry_tensor_release(r);
        w.kase = "float index";
        r = ferry_index(t, 1, (const ferry_tensor *[]){fidx});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "tensors used as indices must be long, int, byte or bool tensors");
        ferry_tensor_release(r);
        st = ferry_index_put(t, 1, (const ferry_tensor *[]){fidx}, v3, false);
        conf_expect_error(&w, "ferry_index_put", st != FERRY_OK, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "tensors used as indices must be long, int, byte or bool tensors");
        w.kase = "too many indices";
        r = ferry_index(t2, 3, (const ferry_tensor *[]){two, two, two});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "too many indices for tensor of dimension 2");
        ferry_tensor_release(r);
        r = ferry_index(t2, 3, (const ferry_tensor *[]){NULL, NULL, two});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "too many indices for tensor of dimension 2");
        ferry_tensor_release(r);
        w.kase = "mask of another shape";
        ferry_tensor *m3 = ferry_ones(FERRY_BOOL, 1, (int64_t[]){3}, dev);
        assert_tensor(m3);
        r = ferry_index(t2, 1, (const ferry_tensor *[]){m3});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "The shape of the mask [3] at index 0 does not match the shape of the "
                          "indexed tensor [2, 5] at index 0");
        ferry_tensor_release(r);
        r = ferry_index(t2, 2, (const ferry_tensor *[]){NULL, m3});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "The shape of the mask [3] at index 0 does not match the shape of the "
                          "indexed tensor [2, 5] at index 1");
        ferry_tensor_release(r);
        ferry_tensor_release(m3);
        w.kase = "0-d mask";
        ferry_tensor *m0 = ferry_ones(FERRY_BOOL, 0, NULL, dev);
        assert_tensor(m0);
        r = ferry_index(t2, 1, (const ferry_tensor *[]){m0});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_UNSUPPORTED,
                          FERRY_ERR_UNSUPPORTED, "a 0-d mask is not supported by ferry_index");
        ferry_tensor_release(r);
        ferry_tensor_release(m0);
        w.kase = "values that do not broadcast";
        st = ferry_index_put(t2, 1, (const ferry_tensor *[]){two}, v3, false);
        conf_expect_error(&w, "ferry_index_put", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "shape mismatch: value tensor of shape [3] cannot be broadcast to "
                          "indexing result of shape [2, 5]");
        w.kase = "NULL tensor";
        r = ferry_index(NULL, 1, (const ferry_tensor *[]){two});
        conf_expect_error(&w, "ferry_index", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "index");

        w.kase = "leaf that requires grad";
        ferry_tensor *leaf = ferry_zeros(FERRY_FLOAT32, 1, (int64_t[]){5}, dev);
        assert_tensor(leaf);
        ferry_tensor_set_requires_grad(leaf, true);
        ferry_tensor *v2 = ferry_ones(FERRY_FLOAT32, 1, (int64_t[]){2}, dev);
        assert_tensor(v2);
        st = ferry_index_put(leaf, 1, (const ferry_tensor *[]){two}, v2, false);
        conf_expect_error(&w, "ferry_index_put", st != FERRY_OK, FERRY_ERR_UNSUPPORTED,
                          FERRY_ERR_UNSUPPORTED,
                          "a leaf Variable that requires grad is being used in an in-place "
                          "operation.");
        ferry_tensor_release(v2);
        ferry_tensor_release(leaf);

        ferry_tensor *list[] = {t, t2, bad, neg, two, three, fidx, v3};
        for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
            ferry_tensor_release(list[k]);
        fallback_end("refusals", dev);
    }
    conf_finish();
}

/* Accumulation with heavy duplicates: thousands of positions naming a few elements,
 * indices broadcast (2, N) with (N,), a dim before and after the indexed ones, every
 * dtype, against a double reference added in the cpu's (row-major) order; and bit for
 * bit equal to the cpu's result on every device, the order the kernels promise. */
typedef struct dupcase {
    const char *name;
    bool whole0;  /* t[:, i1] rather than t[i0, i1] */
    int64_t span; /* i1's values drawn from [-span, span) */
} dupcase;

static void run_dups(const dupcase *c, ferry_dtype dt, conf_layout layout, const char *dev)
{
    enum { N = 3000 };
    static const int64_t shape[3] = {3, 7, 2};
    conf_where w = {"index_put accumulate duplicates", conf_dtype_name(dt), c->name, dev};
    conf_rng rng = conf_rng_seed(w.op, w.dtype, c->name, (unsigned)layout);
    conf_operand spec = {.ndim = 3, .shape = {3, 7, 2}, .layout = layout};
    conf_array a, va;
    ferry_tensor *t = conf_make(&w, &spec, dt, dev, &rng, &conf_default_domain, &a);
    if (!t)
        return;
    /* whole0: t[:, i1] with i1 (N,), R (3, N, 2); else t[i0, i1], i0 (2, N), R (2, N, 2). */
    int64_t *i0 = malloc(sizeof(int64_t) * 2 * N), *i1 = malloc(sizeof(int64_t) * N);
    for (int64_t q = 0; q < 2 * N; q++)
        i0[q] = (int64_t)(conf_next(&rng) % 6) - 3;
    for (int64_t q = 0; q < N; q++)
        i1[q] = (int64_t)(conf_next(&rng) % (uint64_t)(2 * c->span)) - c->span;
    int64_t rshape[3] = {c->whole0 ? 3 : 2, N, 2};
    int64_t rnumel = rshape[0] * N * 2;
    conf_operand vspec = {.ndim = 3, .shape = {rshape[0], N, 2}, .layout = CONF_CONTIGUOUS};
    ferry_tensor *vals = conf_make(&w, &vspec, dt, dev, &rng, &conf_default_domain, &va);
    ferry_tensor *x0 = ferry_tensor_from_data(i0, FERRY_INT64, 2, (int64_t[]){2, N}, dev);
    ferry_tensor *x1 = ferry_tensor_from_data(i1, FERRY_INT64, 1, (int64_t[]){N}, dev);
    double *acc = malloc(sizeof(double) * (size_t)a.numel);
    double *tol = calloc((size_t)a.numel, sizeof *tol);
    ferry_tensor *copy = t ? ferry_tensor_clone(t) : NULL;
    if (!vals || !x0 || !x1 || !copy) {
        conf_fail_call(&w, "setup");
        goto done;
    }
    memcpy(acc, a.v, sizeof(double) * (size_t)a.numel);
    for (int64_t p = 0; p < rnumel; p++) {
        int64_t r0 = p / (2 * N), q = p / 2 % N, last = p % 2, d0, d1;
        if (c->whole0) {
            d0 = r0;
            d1 = i1[q] < 0 ? i1[q] + 7 : i1[q];
        } else {
            d0 = i0[r0 * N + q] < 0 ? i0[r0 * N + q] + 3 : i0[r0 * N + q];
            d1 = i1[q] < 0 ? i1[q] + 7 : i1[q];
        }
        int64_t at = (d0 * 7 + d1) * 2 + last;
        double x = va.v[p];
        if (dt == FERRY_BOOL)
            acc[at] = (acc[at] != 0 || x != 0) ? 1 : 0;
        else
            acc[at] += x;
        tol[at] += 4 * conf_rtol(dt) * (fabs(acc[at]) + fabs(x));
    }
    for (int64_t k = 0; k < a.numel; k++)
        if (conf_is_int(dt))
            acc[k] = (double)conf_wrap(dt, (int64_t)acc[k]);
    const ferry_tensor *idx[2] = {c->whole0 ? NULL : x0, x1};
    if (ferry_index_put(copy, 2, idx, vals, true) != FERRY_OK) {
        conf_fail_call(&w, "ferry_index_put");
        goto done;
    }
    check(&w, copy, dt, 3, shape, acc, tol);
    if (!conf_is_cpu(dev)) {
        /* The same op on the cpu, for the bits. */
        ferry_tensor *ct = ferry_tensor_to(t, "cpu"), *cv = ferry_tensor_to(vals, "cpu");
        ferry_tensor *c0 = ferry_tensor_to(x0, "cpu"), *c1 = ferry_tensor_to(x1, "cpu");
        size_t nbytes = (size_t)a.numel * conf_dtype_size(dt);
        unsigned char *hb = malloc(nbytes), *db = malloc(nbytes);
        const ferry_tensor *cidx[2] = {c->whole0 ? NULL : c0, c1};
        ferry_tensor *cc = ct ? ferry_tensor_contiguous(ct) : NULL;
        ferry_tensor *dc = ferry_tensor_contiguous(copy);
        if (!cc || !cv || !c0 || !c1 || !hb || !db || !dc ||
            ferry_index_put(cc, 2, cidx, cv, true) != FERRY_OK ||
            ferry_tensor_copy_to_host(cc, hb, nbytes) != FERRY_OK ||
            ferry_tensor_copy_to_host(dc, db, nbytes) != FERRY_OK)
            conf_fail_call(&w, "cpu reference");
        else if (memcmp(hb, db, nbytes) != 0)
            conf_fail(&w, "not bit for bit the cpu's sums");
        ferry_tensor *list[] = {ct, cv, c0, c1, cc, dc};
        for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
            ferry_tensor_release(list[k]);
        free(hb);
        free(db);
    }
done:
    ferry_tensor_release(copy);
    ferry_tensor_release(vals);
    ferry_tensor_release(x0);
    ferry_tensor_release(x1);
    ferry_tensor_release(t);
    conf_array_free(&a);
    if (vals)
        conf_array_free(&va);
    free(i0);
    free(i1);
    free(acc);
    free(tol);
}

static void test_index_adv_accumulate_heavy_duplicates(void **state)
{
    (void)state;
    static const dupcase dcases[] = {
        {"t[:, i] += v, i of 3000 in [-2, 2)", true, 2},
        {"t[i0, i1] += v broadcast, i1 of 3000 in [-7, 7)", false, 7},
        {"t[i0, i1] += v, every position on 12 elements", false, 1},
    };
    static const conf_layout dl[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED};
    CONF_FOR_EACH_DEVICE(dev) {
        fallback_begin(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++)
            for (size_t li = 0; li < 2; li++)
                for (size_t ci = 0; ci < sizeof dcases / sizeof dcases[0]; ci++)
                    run_dups(&dcases[ci], conf_all_dtypes[di], dl[li], dev);
        fallback_end("index_put accumulate duplicates", dev);
    }
    conf_finish();
}

/* index_put accumulate of n positions (around and past the device sort's tile of 1024,
 * powers of two and not) into 37 rows of 3, indices in [-37, 37): many duplicates a row,
 * runs of one row spread over every tile. A device must give the cpu's bits (both sum a
 * row's values in position order, half floats rounded at each add); a bad index fails
 * the op on both, which leave the same bits (today the valid positions' sums are still
 * added, on the cpu as on devices). */
static void run_acc_bits(ferry_dtype dt, int64_t n, const char *dev)
{
    char kase[64];
    snprintf(kase, sizeof kase, "%lld positions into 37 rows", (long long)n);
    conf_where w = {"index_put accumulate, the cpu's bits", conf_dtype_name(dt), kase, dev};
    const int64_t rows = 37, cols = 3;
    float *vf = malloc(sizeof(float) * (size_t)(n * cols));
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)n);
    float sf[37 * 3];
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    for (int64_t q = 0; q < n * cols; q++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        /* sevenths: float32 sums round too, so their order shows in the bits */
        vf[q] = (float)((int64_t)(h >> 40) % 2001 - 1000) / 7.0f;
    }
    for (int64_t q = 0; q < n; q++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        iv[q] = (int64_t)((h >> 33) % (uint64_t)(2 * rows)) - rows;
    }
    for (int q = 0; q < 37 * 3; q++)
        sf[q] = (float)(q % 7) - 3.0f;
    ferry_tensor *v32 = ferry_tensor_from_data(vf, FERRY_FLOAT32, 2, (int64_t[]){n, cols}, "cpu");
    ferry_tensor *s32 = ferry_tensor_from_data(sf, FERRY_FLOAT32, 2, (int64_t[]){rows, cols}, "cpu");
    ferry_tensor *vc = v32 ? ferry_tensor_to_dtype(v32, dt) : NULL;
    ferry_tensor *sc = s32 ? ferry_tensor_to_dtype(s32, dt) : NULL;
    ferry_tensor *ic = ferry_tensor_from_data(iv, FERRY_INT64, 1, (int64_t[]){n}, "cpu");
    ferry_tensor *vd = vc ? ferry_tensor_to(vc, dev) : NULL;
    ferry_tensor *id = ic ? ferry_tensor_to(ic, dev) : NULL;
    ferry_tensor *tc = sc ? ferry_tensor_clone(sc) : NULL;
    ferry_tensor *td = sc ? ferry_tensor_to(sc, dev) : NULL;
    size_t nb = (size_t)(rows * cols) * ferry_dtype_size(dt);
    unsigned char want[37 * 3 * 8], got[37 * 3 * 8];
    if (!vd || !id || !tc || !td) {
        conf_fail_call(&w, "ferry_tensor_to");
    } else if (ferry_index_put(tc, 1, (const ferry_tensor *const[]){ic}, vc, true) != FERRY_OK ||
               ferry_index_put(td, 1, (const ferry_tensor *const[]){id}, vd, true) != FERRY_OK) {
        conf_fail_call(&w, "ferry_index_put");
    } else if (ferry_tensor_copy_to_host(tc, want, nb) != FERRY_OK ||
               ferry_tensor_copy_to_host(td, got, nb) != FERRY_OK) {
        conf_fail_call(&w, "ferry_tensor_copy_to_host");
    } else {
        for (size_t b = 0; b < nb; b++)
            if (want[b] != got[b]) {
                conf_fail(&w, "byte %zu of the result is %u, the cpu's %u", b, got[b], want[b]);
                break;
            }
        /* one bad index among them: an error, and td as it was */
        iv[n / 2] = rows;
        ferry_tensor *bad = ferry_tensor_from_data(iv, FERRY_INT64, 1, (int64_t[]){n}, dev);
        ferry_tensor *badc = ferry_tensor_from_data(iv, FERRY_INT64, 1, (int64_t[]){n}, "cpu");
        w.op = "index_put accumulate, a bad index";
        if (!bad || !badc) {
            conf_fail_call(&w, "ferry_tensor_from_data");
        } else {
            ferry_status sd = ferry_index_put(td, 1, (const ferry_tensor *const[]){bad}, vd, true);
            ferry_status sc2 = ferry_index_put(tc, 1, (const ferry_tensor *const[]){badc}, vc, true);
            if (sd != FERRY_ERR_INDEX || sc2 != FERRY_ERR_INDEX)
                conf_fail(&w, "status %d (cpu %d), not FERRY_ERR_INDEX", (int)sd, (int)sc2);
            if (ferry_tensor_copy_to_host(tc, want, nb) != FERRY_OK ||
                ferry_tensor_copy_to_host(td, got, nb) != FERRY_OK)
                conf_fail_call(&w, "ferry_tensor_copy_to_host");
            else if (memcmp(got, want, nb) != 0)
                conf_fail(&w, "the tensor after the failed op differs from the cpu's");
        }
        ferry_tensor_release(bad);
        ferry_tensor_release(badc);
    }
    ferry_tensor *all[] = {v32, s32, vc, sc, ic, vd, id, tc, td};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ferry_tensor_release(all[i]);
    free(vf);
    free(iv);
}

static void test_index_adv_accumulate_bits_match_cpu_around_sort_tiles(void **state)
{
    (void)state;
    static const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT16, FERRY_BFLOAT16, FERRY_INT32,
                                      FERRY_INT64, FERRY_UINT8};
    static const int64_t ns[] = {1, 2, 1000, 1023, 1024, 1025, 2049, 3001, 4096, 9000};
    CONF_FOR_EACH_DEVICE(dev) {
        if (conf_is_cpu(dev))
            continue;
        fallback_begin(dev);
        for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                run_acc_bits(dts[di], ns[ni], dev);
        /* a row of many tiles: exercises every merge level and global step */
        run_acc_bits(FERRY_FLOAT32, 70001, dev);
        run_acc_bits(FERRY_FLOAT16, 70001, dev);
        fallback_end("index_put accumulate, the cpu's bits", dev);
    }
    conf_finish();
}

/* More index tensors than a device kernel takes as arguments (they are composed into
 * one first): k adjacent indexed dims from d0 of a 7-D input, each index of B's shape,
 * for index, index_put and index_put accumulate (with duplicates), on every device
 * with no fallback; and a bad value in the fifth index names dimension 4. */
typedef struct manycase {
    const char *name;
    int d0, k, nb;
    int64_t bshape[2];
} manycase;

static void run_many(const manycase *c, ferry_dtype dt, const char *dev)
{
    static const int64_t shape[7] = {2, 3, 2, 3, 2, 2, 3};
    conf_where w = {"index, many indices", conf_dtype_name(dt), c->name, dev};
    conf_rng rng = conf_rng_seed(w.op, w.dtype, c->name, 0);
    conf_operand spec = {.ndim = 7, .shape = {2, 3, 2, 3, 2, 2, 3}, .layout = CONF_CONTIGUOUS};
    conf_array a, va;
    ferry_tensor *t = conf_make(&w, &spec, dt, dev, &rng, &conf_default_domain, &a);
    if (!t)
        return;
    int64_t bn = c->nb == 1 ? c->bshape[0] : c->bshape[0] * c->bshape[1];
    int64_t iv[8][6];
    ferry_tensor *idx[8] = {0};
    bool ok = true;
    for (int j = 0; j < c->k; j++) {
        int64_t size = shape[c->d0 + j];
        for (int64_t q = 0; q < bn; q++)
            iv[j][q] = (int64_t)(conf_next(&rng) % (uint64_t)(2 * size)) - size;
        int32_t w32[6]; /* odd indices int32 */
        for (int64_t q = 0; q < bn; q++)
            w32[q] = (int32_t)iv[j][q];
        idx[j] = j % 2 ? ferry_tensor_from_data(w32, FERRY_INT32, c->nb, c->bshape, dev)
                       : ferry_tensor_from_data(iv[j], FERRY_INT64, c->nb, c->bshape, dev);
        ok = ok && idx[j];
    }
    /* R: shape[0, d0), B, shape[d0 + k, 7). */
    int64_t rshape[8], outer = 1, inner = 1;
    int nr = 0;
    for (int d = 0; d < c->d0; d++)
        outer *= rshape[nr++] = shape[d];
    for (int q = 0; q < c->nb; q++)
        rshape[nr++] = c->bshape[q];
    for (int d = c->d0 + c->k; d < 7; d++)
        inner *= rshape[nr++] = shape[d];
    int64_t rnumel = outer * bn * inner;
    double *ref = malloc(sizeof(double) * (size_t)rnumel);
    int64_t *src = malloc(sizeof(int64_t) * (size_t)rnumel);
    double *acc = malloc(sizeof(double) * (size_t)a.numel);
    double *tol = calloc((size_t)a.numel, sizeof *tol);
    ferry_tensor *vals = NULL;
    if (!ok) {
        conf_fail_call(&w, "ferry_tensor_from_data");
        goto done;
    }
    int64_t st[7];
    for (int d = 6, m = 1; d >= 0; d--) {
        st[d] = m;
        m *= shape[d];
    }
    for (int64_t p = 0; p < rnumel; p++) {
        int64_t o = p / (bn * inner), b = p / inner % bn, in = p % inner, at = 0;
        for (int d = c->d0 - 1; d >= 0; d--, o /= shape[d + 1])
            at += (o % shape[d]) * st[d];
        for (int j = 0; j < c->k; j++) {
            int64_t i = iv[j][b], size = shape[c->d0 + j];
            at += (i < 0 ? i + size : i) * st[c->d0 + j];
        }
        for (int d = 6; d >= c->d0 + c->k; d--, in /= shape[d + 1])
            at += (in % shape[d]) * st[d];
        src[p] = at;
        ref[p] = a.v[at];
    }
    /* NULL entries for the whole dims before d0. */
    const ferry_tensor *entries[8] = {0};
    for (int j = 0; j < c->k; j++)
        entries[c->d0 + j] = idx[j];
    ferry_tensor *res = ferry_index(t, c->d0 + c->k, entries);
    check(&w, res, dt, nr, rshape, ref, NULL);
    ferry_tensor_release(res);
    conf_operand vspec = {.ndim = nr, .layout = CONF_CONTIGUOUS};
    memcpy(vspec.shape, rshape, sizeof(int64_t) * (size_t)nr);
    vals = conf_make(&w, &vspec, dt, dev, &rng, &conf_default_domain, &va);
    if (!vals)
        goto done;
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        w.op = accumulate ? "index_put accumulate, many indices" : "index_put, many indices";
        memcpy(acc, a.v, sizeof(double) * (size_t)a.numel);
        memset(tol, 0, sizeof(double) * (size_t)a.numel);
        bool dup = false;
        for (int64_t p = 0; p < rnumel; p++) {
            int64_t at = src[p];
            double x = va.v[p];
            for (int64_t q = 0; q < p && !accumulate && !dup; q++)
                dup = src[q] == at;
            if (!accumulate)
                acc[at] = x;
            else if (dt == FERRY_BOOL)
                acc[at] = (acc[at] != 0 || x != 0) ? 1 : 0;
            else
                acc[at] += x;
            tol[at] += 4 * conf_rtol(dt) * (fabs(acc[at]) + fabs(x));
        }
        if (dup) /* assignment of duplicates: any one wins, not compared */
            continue;
        for (int64_t k = 0; k < a.numel; k++)
            if (conf_is_int(dt))
                acc[k] = (double)conf_wrap(dt, (int64_t)acc[k]);
        ferry_tensor *copy = ferry_tensor_clone(t);
        if (!copy || ferry_index_put(copy, c->d0 + c->k, entries, vals, accumulate) != FERRY_OK)
            conf_fail_call(&w, "ferry_index_put");
        else
            check(&w, copy, dt, 7, shape, acc, accumulate ? tol : NULL);
        ferry_tensor_release(copy);
    }
    /* A value out of range in the fifth index: torch names its place among the indices. */
    if (c->k >= 5 && c->d0 == 0) {
        w.op = "index, many indices, bad fifth index";
        int64_t badv[6] = {0, 0, 0, 0, 0, 0};
        badv[bn - 1] = 7;
        ferry_tensor *bad = ferry_tensor_from_data(badv, FERRY_INT64, c->nb, c->bshape, dev);
        entries[4] = bad;
        ferry_tensor *r2 = bad ? ferry_index(t, c->k, entries) : NULL;
        conf_expect_error(&w, "ferry_index", r2 == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "index 7 is out of bounds for dimension 4 with size 2");
        ferry_tensor_release(r2);
        ferry_tensor *copy = ferry_tensor_clone(t);
        for (int accumulate = 0; copy && bad && accumulate < 2; accumulate++) {
            ferry_status s2 = ferry_index_put(copy, c->k, entries, vals, accumulate);
            conf_expect_error(&w, "ferry_index_put", s2 != FERRY_OK, FERRY_ERR_INDEX,
                              FERRY_ERR_INDEX,
                              "index 7 is out of bounds for dimension 4 with size 2");
        }
        ferry_tensor_release(copy);
        ferry_tensor_release(bad);
    }
    conf_array_free(&va);
done:
    ferry_tensor_release(vals);
    for (int j = 0; j < c->k; j++)
        ferry_tensor_release(idx[j]);
    ferry_tensor_release(t);
    conf_array_free(&a);
    free(ref);
    free(src);
    free(acc);
    free(tol);
}

static void test_index_adv_many_indices_run_on_every_device(void **state)
{
    (void)state;
    static const manycase mcases[] = {
        {"t[i0, ..., i5], six (5,) indices", 0, 6, 1, {5, 0}},
        {"t[:, i1, ..., i5], five (2, 3) indices", 1, 5, 2, {2, 3}},
        {"t[i0, ..., i6], seven (6,) indices, every dim", 0, 7, 1, {6, 0}},
    };
    CONF_FOR_EACH_DEVICE(dev) {
        fallback_begin(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++)
            for (size_t ci = 0; ci < sizeof mcases / sizeof mcases[0]; ci++)
                run_many(&mcases[ci], conf_all_dtypes[di], dev);
        fallback_end("index, index_put with many indices", dev);
    }
    conf_finish();
}

int conf_group_index_adv(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_adv_index_and_index_put_match_reference),
        cmocka_unit_test(test_index_adv_masks_match_reference),
        cmocka_unit_test(test_index_adv_accumulate_heavy_duplicates),
        cmocka_unit_test(test_index_adv_accumulate_bits_match_cpu_around_sort_tiles),
        cmocka_unit_test(test_index_adv_many_indices_run_on_every_device),
        cmocka_unit_test(test_index_adv_refuses_with_pytorch_messages_on_every_device),
    };
    return cmocka_run_group_tests_name("index_adv", tests, NULL, NULL);
}

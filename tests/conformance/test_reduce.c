/* Reduction conformance: sum, mean, max, min and argmax (and their _out forms) over all
 * dims, one, two, negative and listed dims, with and without keepdim, on every dtype,
 * layout and device, against a reference accumulated in double. */
#include "conformance.h"

typedef enum rop { R_SUM, R_MEAN, R_MAX, R_MIN, R_ARGMAX } rop;

typedef struct red_op {
    const char *name;
    rop op;
    ferry_tensor *(*fn)(ferry_tensor *, int, const int *, bool);
    ferry_status (*ofn)(ferry_tensor *, ferry_tensor *, int, const int *, bool);
} red_op;

#define RED(name, op) {#name, op, ferry_##name, ferry_##name##_out}

static const red_op red_ops[] = {
    RED(sum, R_SUM), RED(mean, R_MEAN), RED(max, R_MAX), RED(min, R_MIN), RED(argmax, R_ARGMAX),
};
#define N_RED_OPS (sizeof red_ops / sizeof red_ops[0])

/* PyTorch's ScalarType names, which its mean() message uses. */
static const char *torch_name(ferry_dtype dt)
{
    static const char *const names[FERRY_NUM_DTYPES] = {
        "Bool", "Byte", "Char", "Short", "Int", "Long", "Half", "BFloat16", "Float", "Double",
    };
    return names[dt];
}

/* What PyTorch refuses: mean of a non-floating dtype (with its message), argmax of bool
 * ("argmax_cpu" not implemented for 'Bool'), and argmax over several dims (its dim is
 * one int or None). */
static const char *red_refusal(rop op, ferry_dtype dt, int ndims, char *buf, size_t cap)
{
    if (op == R_MEAN && !conf_is_float(dt)) {
        snprintf(buf, cap,
                 "mean(): could not infer output dtype. Input dtype must be either a floating "
                 "point or complex dtype. Got: %s",
                 torch_name(dt));
        return buf;
    }
    if (op == R_ARGMAX && (dt == FERRY_BOOL || ndims > 1))
        return "argmax";
    return NULL;
}

static ferry_dtype red_result_dtype(rop op, ferry_dtype dt)
{
    if (op == R_ARGMAX || (op == R_SUM && !conf_is_float(dt)))
        return FERRY_INT64;
    return dt;
}

typedef struct red_case {
    const char *name;
    conf_operand a;
    int ndims;
    int dims[6];
} red_case;

#define OPND(nd, ...) {nd, {__VA_ARGS__}, CONF_CONTIGUOUS, 0, {0}}
#define OPND_L(layout, nd, ...) {nd, {__VA_ARGS__}, layout, 0, {0}}
#define DIMS(n, ...) n, {__VA_ARGS__}

static const red_case red_cases[] = {
    {"all dims", OPND(3, 2, 3, 4), DIMS(0, 0)},
    {"dim 1", OPND(3, 2, 3, 4), DIMS(1, 1)},
    {"dims 0 and 2", OPND(3, 2, 3, 4), DIMS(2, 0, 2)},
    {"dim -1", OPND(3, 2, 3, 4), DIMS(1, -1)},
    {"dims -1 and 0", OPND(3, 2, 3, 4), DIMS(2, -1, 0)},
    {"every dim listed", OPND(3, 2, 3, 4), DIMS(3, 0, 1, 2)},
    {"transposed, dim 0", OPND_L(CONF_TRANSPOSED, 2, 3, 5), DIMS(1, 0)},
    {"transposed, all dims", OPND_L(CONF_TRANSPOSED, 3, 2, 3, 5), DIMS(0, 0)},
    {"permuted outer dims, dim 2", OPND_L(CONF_PERMUTED, 4, 2, 3, 2, 4), DIMS(1, 2)},
    {"permuted outer dims, dim 0", OPND_L(CONF_PERMUTED, 3, 3, 5, 4), DIMS(1, 0)},
    {"sliced step 2, dim 1", OPND_L(CONF_SLICED, 3, 2, 3, 4), DIMS(1, 1)},
    {"sliced step 2, dim -1", OPND_L(CONF_SLICED, 2, 3, 5), DIMS(1, -1)},
    {"expanded stride 0, dim 1", {3, {2, 3, 4}, CONF_EXPANDED, 3, {2, 1, 4}}, DIMS(1, 1)},
    {"expanded stride 0, all dims", {2, {3, 4}, CONF_EXPANDED, 1, {4}}, DIMS(0, 0)},
    {"negative strides, dim 0", OPND_L(CONF_NEGATIVE, 2, 3, 4), DIMS(1, 0)},
    {"negative strides, dims 0 and -1", OPND_L(CONF_NEGATIVE, 3, 2, 3, 4), DIMS(2, 0, -1)},
    {"zero-size, reducing a non-empty dim", OPND(2, 0, 3), DIMS(1, 1)},
    {"zero-size, reducing the empty dim", OPND(2, 0, 3), DIMS(1, 0)},
    {"zero-size, all dims", OPND(2, 0, 3), DIMS(0, 0)},
    {"0-d, all dims", OPND(0, 0), DIMS(0, 0)},
    {"0-d, dim 0", OPND(0, 0), DIMS(1, 0)},
    {"0-d, dim -1", OPND(0, 0), DIMS(1, -1)},
    {"6-d, dims 1 3 5", OPND(6, 2, 3, 1, 2, 2, 3), DIMS(3, 1, 3, 5)},
    {"6-d transposed, dims 0 and -1", OPND_L(CONF_TRANSPOSED, 6, 2, 1, 3, 2, 2, 3), DIMS(2, 0, -1)},
    {"long rows, dim 1", OPND(2, 3, 1000), DIMS(1, 1)},
    {"long columns, dim 0", OPND(2, 1000, 3), DIMS(1, 0)},
    {"long, all dims", OPND(1, 4099), DIMS(0, 0)},
};
#define N_RED_CASES (sizeof red_cases / sizeof red_cases[0])

/* Which dims a reduction covers (ndims == 0: all); false for a dim out of range. */
static bool reduced_dims(int nd, int ndims, const int *dims, bool *red)
{
    for (int d = 0; d < nd; d++)
        red[d] = ndims == 0;
    for (int k = 0; k < ndims; k++) {
        int d = dims[k] < 0 ? dims[k] + (nd ? nd : 1) : dims[k];
        if (d < 0 || d >= (nd ? nd : 1))
            return false;
        if (nd)
            red[d] = true;
    }
    return true;
}

typedef struct red_ref {
    int ndim;                     /* the result's */
    int64_t shape[CONF_MAX_DIMS]; /* the result's */
    int64_t numel;
    double *v;
    double *tol;  /* rounding bound of a sum or mean */
    bool empty;   /* some output reduces over nothing */
} red_ref;

static void red_reference(rop op, const conf_array *in, int ndims, const int *dims,
                          bool keepdim, red_ref *r)
{
    bool red[CONF_MAX_DIMS];
    assert_true(reduced_dims(in->ndim, ndims, dims, red));
    int64_t kshape[CONF_MAX_DIMS]; /* the keepdim shape, used for indexing */
    int64_t group = 1;
    r->ndim = 0;
    for (int d = 0; d < in->ndim; d++) {
        kshape[d] = red[d] ? 1 : in->shape[d];
        if (red[d])
            group *= in->shape[d];
        if (keepdim || !red[d])
            r->shape[r->ndim++] = kshape[d];
    }
    r->numel = conf_numel(in->ndim, kshape);
    r->empty = group == 0;
    size_t cap = (size_t)(r->numel ? r->numel : 1);
    r->v = calloc(cap, sizeof *r->v);
    r->tol = calloc(cap, sizeof *r->tol);
    double *abssum = calloc(cap, sizeof *abssum);
    int64_t *best = calloc(cap, sizeof *best); /* argmax: position within the group */
    bool *seen = calloc(cap, sizeof *seen);

    /* Row-major order visits each group's members in row-major order of the reduced
     * dims, so the first maximum met is the first occurrence. */
    for (int64_t i = 0; i < in->numel; i++) {
        int64_t rem = i, o = 0, pos = 0, ostride = 1, pstride = 1;
        for (int d = in->ndim - 1; d >= 0; d--) {
            int64_t idx = rem % in->shape[d];
            rem /= in->shape[d];
            if (red[d]) {
                pos += idx * pstride;
                pstride *= in->shape[d];
            } else {
                o += idx * ostride;
                ostride *= in->shape[d];
            }
        }
        double x = in->v[i];
        if (!seen[o]) {
            seen[o] = true;
            r->v[o] = op == R_SUM || op == R_MEAN ? 0 : x;
            best[o] = pos;
            if (op != R_SUM && op != R_MEAN)
                continue;
        }
        switch (op) {
        case R_SUM:
        case R_MEAN:
            r->v[o] += x;
            abssum[o] += fabs(x);
            break;
        case R_MAX:
            if (isnan(x) || x > r->v[o])
                r->v[o] = isnan(r->v[o]) ? r->v[o] : x;
            break;
        case R_MIN:
            if (isnan(x) || x < r->v[o])
                r->v[o] = isnan(r->v[o]) ? r->v[o] : x;
            break;
        case R_ARGMAX:
            if (!isnan(r->v[o]) && (isnan(x) || x > r->v[o])) {
                r->v[o] = x;
                best[o] = pos;
            }
            break;
        }
    }
    for (int64_t o = 0; o < r->numel; o++) {
        if (op == R_ARGMAX)
            r->v[o] = (double)best[o];
        if (op == R_SUM || op == R_MEAN) {
            /* Any summation order stays within (n-1) eps sum|x| of the exact sum. */
            r->tol[o] = (double)(group + 1) * conf_acc_eps(in->dtype) * abssum[o];
            if (op == R_MEAN) {
                r->v[o] = group ? r->v[o] / (double)group : NAN;
                r->tol[o] /= group ? (double)group : 1;
            }
        }
    }
    free(abssum);
    free(best);
    free(seen);
}

static void red_ref_free(red_ref *r)
{
    free(r->v);
    free(r->tol);
}

typedef struct red_ctx {
    const red_op *op;
    ferry_tensor *a;
    int ndims;
    const int *dims;
    bool keepdim;
} red_ctx;

static ferry_status red_write_out(ferry_tensor *out, void *ctx)
{
    red_ctx *c = ctx;
    return c->op->ofn(out, c->a, c->ndims, c->dims, c->keepdim);
}

static void check_reduction(const conf_where *w, const red_op *op, ferry_tensor *a,
                            const conf_array *av, int ndims, const int *dims, bool keepdim)
{
    char call[64];
    snprintf(call, sizeof call, "ferry_%s", op->name);
    char msg[256];
    const char *refusal = red_refusal(op->op, av->dtype, ndims, msg, sizeof msg);
    if (refusal) {
        ferry_tensor *t = op->fn(a, ndims, dims, keepdim);
        conf_expect_error(w, call, t == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_UNSUPPORTED, refusal);
        ferry_tensor_release(t);
        return;
    }
    red_ref r;
    red_reference(op->op, av, ndims, dims, keepdim, &r);
    ferry_dtype rt = red_result_dtype(op->op, av->dtype);

    /* max, min and argmax of nothing have no value: PyTorch refuses them, naming the
     * first empty dim when dims were given (an IndexError in PyTorch). */
    if (r.empty && op->op != R_SUM && op->op != R_MEAN) {
        ferry_tensor *t = op->fn(a, ndims, dims, keepdim);
        int empty_dim = -1;
        for (int i = 0; i < ndims && empty_dim < 0; i++) {
            int d = dims[i] < 0 ? dims[i] + av->ndim : dims[i];
            if (av->shape[d] == 0)
                empty_dim = d;
        }
        char want[128];
        ferry_status st = FERRY_ERR_INVALID_ARGUMENT;
        if (empty_dim >= 0) {
            st = FERRY_ERR_INDEX;
            snprintf(want, sizeof want, "%s(): Expected reduction dim %d to have non-zero size.",
                     op->name, empty_dim);
        } else if (op->op == R_ARGMAX) {
            st = FERRY_ERR_INDEX; /* PyTorch: IndexError for argmax, RuntimeError otherwise */
            snprintf(want, sizeof want,
                     "argmax(): Expected reduction dim to be specified for input.numel() == 0.");
        } else {
            snprintf(want, sizeof want,
                     "%s(): Expected reduction dim to be specified for input.numel() == 0. "
                     "Specify the reduction dim with the 'dim' argument.",
                     op->name);
        }
        conf_expect_error(w, call, t == NULL, st, st, want);
        ferry_tensor_release(t);
        red_ref_free(&r);
        return;
    }

    ferry_tensor *t = op->fn(a, ndims, dims, keepdim);
    conf_array got;
    if (!t)
        conf_fail_call(w, call);
    else if (conf_read(w, t, rt, r.ndim, r.shape, w->device, &got)) {
        conf_compare(w, &got, r.v, r.tol);
        conf_array_free(&got);
    }
    ferry_tensor_release(t);

    snprintf(call, sizeof call, "ferry_%s_out", op->name);
    red_ctx ctx = {op, a, ndims, dims, keepdim};
    conf_check_out_forms(w, call, rt, r.ndim, r.shape, r.numel, r.v, r.tol, red_write_out,
                         &ctx);
    red_ref_free(&r);
}

static void test_reduce_matches_reference_on_every_dtype_case_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_RED_OPS; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < N_RED_CASES; c++) {
                    const red_case *rc = &red_cases[c];
                    if (!conf_layout_runs_on(rc->a.layout, dev))
                        continue;
                    ferry_dtype dt = conf_all_dtypes[d];
                    conf_rng r = conf_rng_seed(red_ops[o].name, conf_dtype_name(dt), rc->name, 0);
                    conf_array av;
                    conf_where w0 = {red_ops[o].name, conf_dtype_name(dt), rc->name, dev};
                    ferry_tensor *a =
                        conf_make(&w0, &rc->a, dt, dev, &r, &conf_default_domain, &av);
                    if (!a)
                        continue;
                    for (int keep = 0; keep < 2; keep++) {
                        char kase[128];
                        snprintf(kase, sizeof kase, "%s, keepdim=%s", rc->name,
                                 keep ? "true" : "false");
                        conf_where w = w0;
                        w.kase = kase;
                        check_reduction(&w, &red_ops[o], a, &av, rc->ndims, rc->dims, keep);
                    }
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
    }
    conf_finish();
}

/* NaN propagates through sum, mean, max and min, and argmax takes the first NaN as the
 * maximum; infinities and ties (first occurrence) in every floating dtype. */
static void test_reduce_nan_inf_and_ties(void **state)
{
    (void)state;
    static const double rows[4][5] = {
        {1.0, NAN, 3.0, NAN, -1.0},
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
        {2.0, 5.0, 5.0, -7.0, 5.0},
        {INFINITY, -INFINITY, 0.0, 1.0, INFINITY},
    };
    int64_t shape[2] = {4, 5};
    const conf_operand spec = {2, {4, 5}, CONF_CONTIGUOUS, 0, {0}};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_RED_OPS; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
                ferry_dtype dt = conf_all_dtypes[d];
                if (!conf_is_float(dt))
                    continue;
                conf_where w = {red_ops[o].name, conf_dtype_name(dt), "NaN, inf and ties", dev};
                conf_array src, av;
                conf_array_init(&src, dt, 2, shape);
                for (int64_t i = 0; i < 20; i++)
                    src.v[i] = conf_round(dt, rows[i / 5][i % 5]);
                ferry_tensor *a = conf_build(&w, &spec, &src, dev, &av);
                conf_array_free(&src);
                if (!a)
                    continue;
                int dim1 = 1, dim0 = 0;
                char k1[64], k0[64], kall[64];
                snprintf(k1, sizeof k1, "%s, dim 1", w.kase);
                snprintf(k0, sizeof k0, "%s, dim 0", w.kase);
                snprintf(kall, sizeof kall, "%s, all dims", w.kase);
                conf_where w1 = w, w0 = w, wa = w;
                w1.kase = k1;
                w0.kase = k0;
                wa.kase = kall;
                check_reduction(&w1, &red_ops[o], a, &av, 1, &dim1, false);
                check_reduction(&w0, &red_ops[o], a, &av, 1, &dim0, true);
                check_reduction(&wa, &red_ops[o], a, &av, 0, NULL, false);
                ferry_tensor_release(a);
                conf_array_free(&av);
            }
    }
    conf_finish();
}

/* Sizes past the CPU backend's split across two threads, along and across rows. */
static void test_reduce_large_tensors_match_reference(void **state)
{
    (void)state;
    static const red_case large[] = {
        {"large, all dims", OPND(2, 257, 263), DIMS(0, 0)},
        {"large, dim 0", OPND(2, 257, 263), DIMS(1, 0)},
        {"large transposed, dim 1", OPND_L(CONF_TRANSPOSED, 2, 257, 263), DIMS(1, 1)},
        {"large, one long row", OPND(1, 70001), DIMS(1, 0)},
    };
    static const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT16, FERRY_FLOAT64, FERRY_INT32,
                                      FERRY_BOOL};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_RED_OPS; o++)
            for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
                for (size_t c = 0; c < sizeof large / sizeof large[0]; c++) {
                    const red_case *rc = &large[c];
                    ferry_dtype dt = dts[d];
                    conf_where w = {red_ops[o].name, conf_dtype_name(dt), rc->name, dev};
                    conf_rng r = conf_rng_seed(red_ops[o].name, w.dtype, rc->name, 0);
                    conf_array av;
                    ferry_tensor *a = conf_make(&w, &rc->a, dt, dev, &r, &conf_default_domain, &av);
                    if (!a)
                        continue;
                    check_reduction(&w, &red_ops[o], a, &av, rc->ndims, rc->dims, false);
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
    }
    conf_finish();
}

/* Where a sum accumulates: float16 and bfloat16 in float32 (4096 ones would stall at 2048
 * and 256 in their own types), integers in int64 (three int32 maxima overflow int32), and
 * a float16 result that overflows only at the end. */
static void test_reduce_accumulates_in_a_wide_type(void **state)
{
    (void)state;
    static const struct {
        const char *kase;
        ferry_dtype dt;
        int64_t n;
        double value;
        double sum;
    } cases[] = {
        {"4096 ones", FERRY_FLOAT16, 4096, 1.0, 4096.0},
        {"4096 ones", FERRY_BFLOAT16, 4096, 1.0, 4096.0},
        {"three int32 maxima", FERRY_INT32, 3, 2147483647.0, 6442450941.0},
        {"1000 int8 maxima", FERRY_INT8, 1000, 127.0, 127000.0},
        {"1000 uint8 maxima", FERRY_UINT8, 1000, 255.0, 255000.0},
        {"two float16 maxima", FERRY_FLOAT16, 2, 65504.0, INFINITY},
    };
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            ferry_dtype dt = cases[c].dt;
            conf_where w = {"sum", conf_dtype_name(dt), cases[c].kase, dev};
            ferry_tensor *t = ferry_full(dt, 1, &cases[c].n, cases[c].value, dev);
            if (!t) {
                conf_fail_call(&w, "ferry_full");
                continue;
            }
            ferry_dtype rt = conf_is_float(dt) ? dt : FERRY_INT64;
            ferry_tensor *s = ferry_sum(t, 0, NULL, false);
            conf_array got;
            if (!s)
                conf_fail_call(&w, "ferry_sum");
            else if (conf_read(&w, s, rt, 0, NULL, dev, &got)) {
                conf_compare(&w, &got, &cases[c].sum, NULL);
                conf_array_free(&got);
            }
            ferry_tensor_release(s);
            if (conf_is_float(dt)) {
                /* The mean of equal values is that value, however large. */
                w.op = "mean";
                ferry_tensor *m = ferry_mean(t, 0, NULL, false);
                if (!m)
                    conf_fail_call(&w, "ferry_mean");
                else if (conf_read(&w, m, dt, 0, NULL, dev, &got)) {
                    conf_compare(&w, &got, &cases[c].value, NULL);
                    conf_array_free(&got);
                }
                ferry_tensor_release(m);
            }
            ferry_tensor_release(t);
        }
    }
    conf_finish();
}

int conf_group_reduce(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_matches_reference_on_every_dtype_case_and_device),
        cmocka_unit_test(test_reduce_nan_inf_and_ties),
        cmocka_unit_test(test_reduce_large_tensors_match_reference),
        cmocka_unit_test(test_reduce_accumulates_in_a_wide_type),
    };
    return cmocka_run_group_tests_name("reduce", tests, NULL, NULL);
}

/* Elementwise conformance: every binary op (tensor, scalar and _out forms) and unary op,
 * on every dtype, layout case and device, against a double-precision reference; plus the
 * dtype promotion matrix and the combinations PyTorch refuses. */
#include "conformance.h"

/* ---- the binary ops ---------------------------------------------------------------- */

typedef enum bop {
    B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM,
    B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE,
} bop;

typedef struct bin_op {
    const char *name;
    bop op;
    ferry_tensor *(*fn)(ferry_tensor *, ferry_tensor *);
    ferry_tensor *(*sfn)(ferry_tensor *, double);
    ferry_status (*ofn)(ferry_tensor *, ferry_tensor *, ferry_tensor *);
    ferry_status (*sofn)(ferry_tensor *, ferry_tensor *, double);
    ferry_tensor *(*sxfn)(ferry_tensor *, ferry_scalar);
    conf_domain da, db;
    double scalars[3];
    int nscalars;
} bin_op;

/* Integer products stay inside int8; NaN is fed where the op's NaN rule is the point. */
#define D_PLAIN {-4.0, 4.0, -12, 12, false}
#define D_NAN {-4.0, 4.0, -12, 12, true}
#define D_MUL {-4.0, 4.0, -11, 11, true}
#define D_POW_BASE {0.25, 3.0, -3, 3, false}
#define D_POW_EXP {-2.0, 2.0, -1, 4, false}

#define BIN(name, op, da, db, ...)                                                          \
    {#name, op, ferry_##name, ferry_##name##_scalar, ferry_##name##_out,                    \
     ferry_##name##_scalar_out, ferry_##name##_scalar_ex, da, db, {__VA_ARGS__},            \
     (int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double))}

/* Scalars are exact in every floating dtype, so where the op converts one (to float16 or
 * float32) is invisible; the integral ones take the int-scalar promotion path, and the
 * uint8 cases wrap (0 - 3 is 253). Negative integral scalars are kept away from uint8. */
static const bin_op bin_ops[] = {
    BIN(add, B_ADD, D_NAN, D_NAN, 2.0, 2.5),
    BIN(sub, B_SUB, D_PLAIN, D_PLAIN, 3.0, -1.5),
    BIN(mul, B_MUL, D_MUL, D_MUL, 3.0, -0.5),
    BIN(div, B_DIV, D_PLAIN, D_PLAIN, 2.0, -2.5, 0.0),
    BIN(pow, B_POW, D_POW_BASE, D_POW_EXP, 2.0, 0.5, -2.0),
    BIN(maximum, B_MAXIMUM, D_NAN, D_NAN, 1.0, -0.5),
    BIN(minimum, B_MINIMUM, D_NAN, D_NAN, 1.0, -0.5),
    BIN(eq, B_EQ, D_NAN, D_NAN, 1.0, -1.5),
    BIN(ne, B_NE, D_NAN, D_NAN, 1.0, -1.5),
    BIN(lt, B_LT, D_NAN, D_NAN, 1.0, -1.5),
    BIN(le, B_LE, D_NAN, D_NAN, 1.0, -1.5),
    BIN(gt, B_GT, D_NAN, D_NAN, 1.0, -1.5),
    BIN(ge, B_GE, D_NAN, D_NAN, 1.0, -1.5),
};
#define N_BIN_OPS (sizeof bin_ops / sizeof bin_ops[0])

static bool is_comparison(bop op)
{
    return op >= B_EQ;
}

#define MSG_SUB_TWO_BOOLS                                                                   \
    "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or " \
    "`logical_xor()` operator instead."
#define MSG_SUB_BOOL                                                                        \
    "Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying " \
    "to invert a mask, use the `~` or `logical_not()` operator instead."
#define MSG_NEG_BOOL                                                                        \
    "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "  \
    "invert a mask, use the `~` or `logical_not()` operator instead."
#define MSG_RELU_BOOL "Boolean inputs not supported for relu"

/* What PyTorch refuses, with its message (NULL: the op runs). PyTorch's sub_check refuses
 * a bool on either side, a wrapped Python scalar included. b is
 * the scalar's dtype for the _scalar forms (int64 or float32 stand in for it). */
static const char *bin_refusal(bop op, ferry_dtype a, ferry_dtype b)
{
    if (op == B_SUB && a == FERRY_BOOL && b == FERRY_BOOL)
        return MSG_SUB_TWO_BOOLS;
    if (op == B_SUB && (a == FERRY_BOOL || b == FERRY_BOOL))
        return MSG_SUB_BOOL;
    return NULL;
}

/* PyTorch's integer pow: a negative exponent gives 0 unless the base is 1 or -1. */
static int64_t ref_powi(int64_t a, int64_t b)
{
    if (b < 0)
        return a == 1 ? 1 : a == -1 ? ((-b) % 2 ? -1 : 1) : 0;
    uint64_t r = 1;
    while (b-- > 0)
        r *= (uint64_t)a;
    return (int64_t)r;
}

/* One element: x, y already converted to the compute dtype ct; the result is for rt.
 * Integer arithmetic is exact in int64 and then wraps to rt, as storage in rt would. */
static double ref_binary(bop op, ferry_dtype ct, ferry_dtype rt, double x, double y)
{
    if (!conf_is_float(ct)) {
        int64_t a = (int64_t)x, b = (int64_t)y, r = 0;
        switch (op) {
        case B_ADD: r = (int64_t)((uint64_t)a + (uint64_t)b); break;
        case B_SUB: r = (int64_t)((uint64_t)a - (uint64_t)b); break;
        case B_MUL: r = (int64_t)((uint64_t)a * (uint64_t)b); break;
        case B_POW: r = ref_powi(a, b); break;
        case B_MAXIMUM: r = a > b ? a : b; break;
        case B_MINIMUM: r = a < b ? a : b; break;
        case B_EQ: return a == b;
        case B_NE: return a != b;
        case B_LT: return a < b;
        case B_LE: return a <= b;
        case B_GT: return a > b;
        case B_GE: return a >= b;
        case B_DIV: break; /* never integral: the caller computes it in float32 */
        }
        return (double)conf_wrap(rt, r);
    }
    switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_POW: return pow(x, y);
    case B_MAXIMUM: return isnan(x) || isnan(y) ? NAN : fmax(x, y);
    case B_MINIMUM: return isnan(x) || isnan(y) ? NAN : fmin(x, y);
    case B_EQ: return x == y;
    case B_NE: return x != y;
    case B_LT: return x < y;
    case B_LE: return x <= y;
    case B_GT: return x > y;
    case B_GE: return x >= y;
    }
    return NAN;
}

/* The dtype an op computes in and the dtype it returns, from the promoted dtype. */
static void bin_types(bop op, ferry_dtype promoted, ferry_dtype *ct, ferry_dtype *rt)
{
    *ct = op == B_DIV && !conf_is_float(promoted) ? FERRY_FLOAT32 : promoted;
    *rt = is_comparison(op) ? FERRY_BOOL : *ct;
}

static void check_result(const conf_where *w, ferry_tensor *t, ferry_dtype rt, int nd,
                         const int64_t *shape, const double *ref)
{
    conf_array got;
    if (!conf_read(w, t, rt, nd, shape, w->device, &got))
        return;
    conf_compare(w, &got, ref, NULL);
    conf_array_free(&got);
}

/* Runs an _out call into a fresh out (contiguous or a strided view of a sentinel-filled
 * base) and checks the values and that nothing outside the view was written. */
typedef ferry_status (*out_call)(ferry_tensor *out, void *ctx);

typedef enum out_kind { OUT_CONTIGUOUS, OUT_STRIDED, OUT_PERMUTED, OUT_OTHER_DTYPE } out_kind;

static void check_out(const conf_where *w, const char *call, ferry_dtype rt, int nd,
                      const int64_t *shape, const double *ref, out_kind kind, out_call fn,
                      void *ctx)
{
    static const char *const kinds[] = {"contiguous out", "strided out", "permuted out",
                                        "out of dtype"};
    ferry_dtype od = kind == OUT_OTHER_DTYPE ? conf_cast_out_dtype(rt) : rt;
    conf_where wo = *w;
    char kase[128];
    snprintf(kase, sizeof kase, "%s, %s%s%s", w->kase, kinds[kind],
             kind == OUT_OTHER_DTYPE ? " " : "", kind == OUT_OTHER_DTYPE ? conf_dtype_name(od) : "");
    wo.kase = kase;
    conf_out o;
    bool made = kind == OUT_PERMUTED
                    ? conf_out_make_permuted(&wo, od, nd, shape, w->device, &o)
                    : conf_out_make(&wo, od, nd, shape, w->device, kind == OUT_STRIDED, &o);
    if (!made)
        return;
    if (fn(o.view, ctx) != FERRY_OK)
        conf_fail_call(&wo, call);
    else if (kind != OUT_OTHER_DTYPE) {
        check_result(&wo, o.view, rt, nd, shape, ref);
        conf_out_check_gaps(&wo, &o);
    } else {
        /* The op computes in rt, then the value is cast into out's dtype. */
        int64_t n = conf_numel(nd, shape);
        double *ref_rt = malloc((size_t)(n ? n : 1) * sizeof *ref_rt);
        double *tol = malloc((size_t)(n ? n : 1) * sizeof *tol);
        conf_cast_reference(rt, ref, NULL, n, ref_rt, tol);
        conf_array got;
        if (conf_read(&wo, o.view, od, nd, shape, w->device, &got)) {
            conf_compare(&wo, &got, ref_rt, tol);
            conf_array_free(&got);
        }
        free(ref_rt);
        free(tol);
    }
    conf_out_free(&o);
}

typedef struct bin_ctx {
    const bin_op *op;
    ferry_tensor *a, *b;
    double s;
} bin_ctx;

static ferry_status call_bin_out(ferry_tensor *out, void *ctx)
{
    bin_ctx *c = ctx;
    return c->op->ofn(out, c->a, c->b);
}

static ferry_status call_bin_scalar_out(ferry_tensor *out, void *ctx)
{
    bin_ctx *c = ctx;
    return c->op->sofn(out, c->a, c->s);
}

/* a op b for tensors of any dtypes and shapes: refusal, or result and _out forms. */
static void check_binary(const conf_where *w, const bin_op *op, ferry_tensor *a,
                         const conf_array *av, ferry_tensor *b, const conf_array *bv)
{
    char call[64];
    snprintf(call, sizeof call, "ferry_%s", op->name);
    const char *refusal = bin_refusal(op->op, av->dtype, bv->dtype);
    if (refusal) {
        ferry_tensor *t = op->fn(a, b);
        conf_expect_error(w, call, t == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_UNSUPPORTED, refusal);
        ferry_tensor_release(t);
        return;
    }
    ferry_dtype ct, rt;
    bin_types(op->op, conf_promote(av->dtype, bv->dtype), &ct, &rt);
    int nd;
    int64_t shape[CONF_MAX_DIMS];
    assert_true(conf_bcast_shape(av->ndim, av->shape, bv->ndim, bv->shape, &nd, shape));
    int64_t n = conf_numel(nd, shape);
    double *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
    for (int64_t i = 0; i < n; i++)
        ref[i] = ref_binary(op->op, ct, rt, av->v[conf_bcast_index(av, nd, shape, i)],
                            bv->v[conf_bcast_index(bv, nd, shape, i)]);

    ferry_tensor *t = op->fn(a, b);
    if (!t)
        conf_fail_call(w, call);
    else
        check_result(w, t, rt, nd, shape, ref);
    ferry_tensor_release(t);

    bin_ctx ctx = {op, a, b, 0};
    snprintf(call, sizeof call, "ferry_%s_out", op->name);
    check_out(w, call, rt, nd, shape, ref, OUT_CONTIGUOUS, call_bin_out, &ctx);
    check_out(w, call, rt, nd, shape, ref, OUT_STRIDED, call_bin_out, &ctx);
    if (nd >= 3)
        check_out(w, call, rt, nd, shape, ref, OUT_PERMUTED, call_bin_out, &ctx);
    check_out(w, call, rt, nd, shape, ref, OUT_OTHER_DTYPE, call_bin_out, &ctx);
    free(ref);
}

/* a op scalar, with the scalar promoted as a Python scalar (category, never width). */
static void check_binary_scalar(const conf_where *w, const bin_op *op, ferry_tensor *a,
                                const conf_array *av, double s)
{
    char kase[96], call[64];
    snprintf(kase, sizeof kase, "%s, scalar %g", w->kase, s);
    conf_where ws = *w;
    ws.kase = kase;
    snprintf(call, sizeof call, "ferry_%s_scalar", op->name);

    ferry_dtype st = conf_scalar_is_int(s) ? FERRY_INT64 : FERRY_FLOAT32;
    const char *refusal = bin_refusal(op->op, av->dtype, st);
    /* NumPy's rule, which PyTorch's pow(Tensor, Scalar) keeps. */
    if (op->op == B_POW && !conf_is_float(av->dtype) && conf_scalar_is_int(s) && s < 0)
        refusal = "Integers to negative integer powers are not allowed.";
    if (refusal) {
        ferry_tensor *t = op->sfn(a, s);
        conf_expect_error(&ws, call, t == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_UNSUPPORTED, refusal);
        ferry_tensor_release(t);
        return;
    }
    ferry_dtype ct, rt;
    bin_types(op->op, conf_promote_scalar(av->dtype, s), &ct, &rt);
    /* An integral scalar is stored in the integral compute dtype, wrapping there. */
    double sv = conf_is_float(ct) ? s : (double)conf_wrap(ct, (int64_t)s);
    double *ref = malloc((size_t)(av->numel ? av->numel : 1) * sizeof *ref);
    for (int64_t i = 0; i < av->numel; i++)
        ref[i] = ref_binary(op->op, ct, rt, av->v[i], sv);

    ferry_tensor *t = op->sfn(a, s);
    if (!t)
        conf_fail_call(&ws, call);
    else
        check_result(&ws, t, rt, av->ndim, av->shape, ref);
    ferry_tensor_release(t);

    /* The explicit form with the kind the double stands for must agree. */
    ferry_scalar sx = {FERRY_SCALAR_FLOAT, {.f = s}};
    if (conf_scalar_is_int(s))
        sx = (ferry_scalar){FERRY_SCALAR_INT, {.i = (int64_t)s}};
    snprintf(call, sizeof call, "ferry_%s_scalar_ex", op->name);
    t = op->sxfn(a, sx);
    if (!t)
        conf_fail_call(&ws, call);
    else
        check_result(&ws, t, rt, av->ndim, av->shape, ref);
    ferry_tensor_release(t);

    bin_ctx ctx = {op, a, NULL, s};
    snprintf(call, sizeof call, "ferry_%s_scalar_out", op->name);
    check_out(&ws, call, rt, av->ndim, av->shape, ref, OUT_STRIDED, call_bin_scalar_out, &ctx);
    free(ref);
}

/* ---- binary cases ------------------------------------------------------------------- */

typedef struct bin_case {
    const char *name;
    conf_operand a, b;
} bin_case;

#define OPND(nd, ...) {nd, {__VA_ARGS__}, CONF_CONTIGUOUS, 0, {0}}
#define OPND_L(layout, nd, ...) {nd, {__VA_ARGS__}, layout, 0, {0}}

static const bin_case bin_cases[] = {
    {"contiguous", OPND(2, 3, 4), OPND(2, 3, 4)},
    {"transposed", OPND_L(CONF_TRANSPOSED, 2, 3, 5), OPND(2, 3, 5)},
    {"both transposed", OPND_L(CONF_TRANSPOSED, 3, 2, 3, 4), OPND_L(CONF_TRANSPOSED, 3, 2, 3, 4)},
    {"broadcast [3,1]+[1,4]", OPND(2, 3, 1), OPND(2, 1, 4)},
    {"broadcast rank [4]+[2,3,4]", OPND(1, 4), OPND(3, 2, 3, 4)},
    {"expanded stride 0", {2, {3, 4}, CONF_EXPANDED, 2, {3, 1}}, OPND_L(CONF_TRANSPOSED, 2, 3, 4)},
    {"expanded new dims", {3, {2, 3, 4}, CONF_EXPANDED, 1, {4}}, OPND_L(CONF_SLICED, 3, 2, 3, 4)},
    {"sliced step 2", OPND_L(CONF_SLICED, 2, 3, 4), OPND_L(CONF_SLICED, 2, 3, 4)},
    {"negative strides", OPND_L(CONF_NEGATIVE, 2, 3, 4), OPND(2, 3, 4)},
    {"negative strides broadcast", OPND_L(CONF_NEGATIVE, 2, 3, 1), OPND_L(CONF_NEGATIVE, 1, 4)},
    {"zero-size", OPND(2, 0, 3), OPND(2, 1, 3)},
    {"zero-size both", OPND(3, 2, 0, 4), OPND(3, 2, 0, 4)},
    {"0-d", OPND(0, 0), OPND(0, 0)},
    {"0-d with [2,3]", OPND(0, 0), OPND_L(CONF_TRANSPOSED, 2, 2, 3)},
    {"permuted outer dims", OPND_L(CONF_PERMUTED, 3, 2, 3, 4), OPND_L(CONF_PERMUTED, 3, 2, 3, 4)},
    {"6-d broadcast", OPND(6, 2, 1, 3, 1, 2, 2), OPND_L(CONF_TRANSPOSED, 5, 2, 1, 2, 2, 2)},
    {"6-d expanded", {6, {2, 2, 3, 2, 1, 3}, CONF_EXPANDED, 6, {2, 1, 3, 1, 1, 3}},
     OPND_L(CONF_SLICED, 6, 1, 2, 3, 2, 1, 3)},
    {"long contiguous", OPND(1, 1037), OPND(1, 1037)},
    {"long broadcast", OPND(2, 37, 29), OPND(1, 29)},
};
#define N_BIN_CASES (sizeof bin_cases / sizeof bin_cases[0])

static bool case_runs_on(const bin_case *c, const char *device)
{
    return conf_layout_runs_on(c->a.layout, device) && conf_layout_runs_on(c->b.layout, device);
}

static void run_binary_case(const bin_op *op, ferry_dtype dt, const bin_case *c,
                            const char *dev)
{
    conf_where w = {op->name, conf_dtype_name(dt), c->name, dev};
    conf_rng r = conf_rng_seed(op->name, w.dtype, c->name, 0);
    conf_array av, bv;
    ferry_tensor *a = conf_make(&w, &c->a, dt, dev, &r, &op->da, &av);
    if (!a)
        return;
    ferry_tensor *b = conf_make(&w, &c->b, dt, dev, &r, &op->db, &bv);
    if (b) {
        check_binary(&w, op, a, &av, b, &bv);
        for (int k = 0; k < op->nscalars; k++)
            check_binary_scalar(&w, op, a, &av, op->scalars[k]);
        ferry_tensor_release(b);
        conf_array_free(&bv);
    }
    ferry_tensor_release(a);
    conf_array_free(&av);
}

static void test_ops_binary_matches_reference_on_every_dtype_case_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_BIN_OPS; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < N_BIN_CASES; c++)
                    if (case_runs_on(&bin_cases[c], dev))
                        run_binary_case(&bin_ops[o], conf_all_dtypes[d], &bin_cases[c], dev);
    }
    conf_finish();
}

/* out may be a itself (backend.h allows exact aliasing): a += b in place, where the
 * result dtype is a's own. */
static void test_ops_binary_out_may_alias_an_input(void **state)
{
    (void)state;
    static const conf_operand sa = OPND_L(CONF_TRANSPOSED, 2, 3, 4);
    static const conf_operand sb = OPND(2, 1, 4);
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_BIN_OPS; o++) {
            const bin_op *op = &bin_ops[o];
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
                ferry_dtype dt = conf_all_dtypes[d], ct, rt;
                if (bin_refusal(op->op, dt, dt))
                    continue;
                bin_types(op->op, dt, &ct, &rt);
                if (rt != dt)
                    continue;
                conf_where w = {op->name, conf_dtype_name(dt), "in place, out = a", dev};
                conf_rng r = conf_rng_seed(op->name, w.dtype, w.kase, 0);
                conf_array av, bv;
                ferry_tensor *a = conf_make(&w, &sa, dt, dev, &r, &op->da, &av);
                ferry_tensor *b = a ? conf_make(&w, &sb, dt, dev, &r, &op->db, &bv) : NULL;
                if (b) {
                    double ref[12];
                    for (int64_t i = 0; i < 12; i++)
                        ref[i] = ref_binary(op->op, ct, rt, av.v[i],
                                            bv.v[conf_bcast_index(&bv, 2, sa.shape, i)]);
                    if (op->ofn(a, a, b) != FERRY_OK)
                        conf_fail_call(&w, "_out(a, a, b)");
                    else
                        check_result(&w, a, rt, 2, sa.shape, ref);
                    ferry_tensor_release(b);
                    conf_array_free(&bv);
                }
                if (a) {
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
            }
        }
    }
    conf_finish();
}

/* Every pair of dtypes through every binary op: the result dtype is torch.promote_types
 * (integer true division gives float32, comparisons bool) and the values follow. */
static void test_ops_binary_promotes_every_dtype_pair(void **state)
{
    (void)state;
    static const conf_operand sa = OPND(2, 2, 3);
    static const conf_operand sb = OPND_L(CONF_TRANSPOSED, 2, 2, 3);
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_BIN_OPS; o++) {
            const bin_op *op = &bin_ops[o];
            for (size_t i = 0; i < FERRY_NUM_DTYPES; i++)
                for (size_t j = 0; j < FERRY_NUM_DTYPES; j++) {
                    ferry_dtype da = conf_all_dtypes[i], db = conf_all_dtypes[j];
                    if (da == db)
                        continue; /* the main table has these */
                    char dts[40];
                    snprintf(dts, sizeof dts, "%s,%s", conf_dtype_name(da), conf_dtype_name(db));
                    conf_where w = {op->name, dts, "mixed dtypes", dev};
                    conf_rng r = conf_rng_seed(op->name, dts, w.kase, 0);
                    conf_array av, bv;
                    ferry_tensor *a = conf_make(&w, &sa, da, dev, &r, &op->da, &av);
                    ferry_tensor *b = a ? conf_make(&w, &sb, db, dev, &r, &op->db, &bv) : NULL;
                    if (b) {
                        check_binary(&w, op, a, &av, b, &bv);
                        ferry_tensor_release(b);
                        conf_array_free(&bv);
                    }
                    if (a) {
                        ferry_tensor_release(a);
                        conf_array_free(&av);
                    }
                }
        }
    }
    conf_finish();
}

/* ---- the promotion rules the issue names, one by one ------------------------------- */

static ferry_tensor *tensor_of(ferry_dtype dt, int nd, const int64_t *shape, const double *v,
                               const char *dev)
{
    conf_array a;
    conf_array_init(&a, dt, nd, shape);
    memcpy(a.v, v, (size_t)a.numel * sizeof *v);
    void *bytes = conf_encode(&a);
    ferry_tensor *t = ferry_tensor_from_data(bytes, dt, nd, shape, dev);
    free(bytes);
    conf_array_free(&a);
    return t;
}

/* Checks one result against its dtype and two expected values (shape [2] or 0-d). */
static void expect_values(const conf_where *w, ferry_tensor *t, ferry_dtype dt, int nd,
                          const double *ref)
{
    if (!t) {
        conf_fail_call(w, w->op);
        return;
    }
    int64_t two = 2;
    check_result(w, t, dt, nd, &two, ref);
    ferry_tensor_release(t);
}

static void test_ops_promotion_follows_pytorch(void **state)
{
    (void)state;
    int64_t two = 2;
    CONF_FOR_EACH_DEVICE(dev) {
        const double small[2] = {1, 2}, other[2] = {3, 4};
        ferry_tensor *i8 = tensor_of(FERRY_INT8, 1, &two, small, dev);
        ferry_tensor *u8 = tensor_of(FERRY_UINT8, 1, &two, other, dev);
        ferry_tensor *i32 = tensor_of(FERRY_INT32, 1, &two, small, dev);
        ferry_tensor *i64a = tensor_of(FERRY_INT64, 1, &two, (double[]){7, -7}, dev);
        ferry_tensor *i64b = tensor_of(FERRY_INT64, 1, &two, (double[]){2, 2}, dev);
        ferry_tensor *f16 = tensor_of(FERRY_FLOAT16, 1, &two, (double[]){0.5, 1.5}, dev);
        ferry_tensor *bf16 = tensor_of(FERRY_BFLOAT16, 1, &two, (double[]){0.25, 2}, dev);
        ferry_tensor *bl = tensor_of(FERRY_BOOL, 1, &two, (double[]){1, 0}, dev);
        ferry_tensor *bl2 = tensor_of(FERRY_BOOL, 1, &two, (double[]){1, 1}, dev);
        ferry_tensor *u8w = tensor_of(FERRY_UINT8, 1, &two, (double[]){1, 250}, dev);
        ferry_tensor *f32 = tensor_of(FERRY_FLOAT32, 1, &two, (double[]){1.5, -2}, dev);
        assert_non_null(i8 && u8 && i32 && i64a && i64b && f16 && bf16 && bl && bl2 && u8w && f32);

        conf_where w = {"add", "int8,uint8", "promotion", dev};
        expect_values(&w, ferry_add(i8, u8), FERRY_INT16, 1, (double[]){4, 6});
        w = (conf_where){"add", "int32,float16", "promotion", dev};
        expect_values(&w, ferry_add(i32, f16), FERRY_FLOAT16, 1, (double[]){1.5, 3.5});
        w = (conf_where){"add", "float16,bfloat16", "promotion", dev};
        expect_values(&w, ferry_add(f16, bf16), FERRY_FLOAT32, 1, (double[]){0.75, 3.5});
        w = (conf_where){"add", "bool,bool", "promotion: true + true is true", dev};
        expect_values(&w, ferry_add(bl, bl2), FERRY_BOOL, 1, (double[]){1, 1});
        w = (conf_where){"div", "int64,int64", "promotion: true division", dev};
        expect_values(&w, ferry_div(i64a, i64b), FERRY_FLOAT32, 1, (double[]){3.5, -3.5});
        w = (conf_where){"add_scalar", "int32", "promotion: + 2.5", dev};
        expect_values(&w, ferry_add_scalar(i32, 2.5), FERRY_FLOAT32, 1, (double[]){3.5, 4.5});
        w = (conf_where){"add_scalar", "int32", "promotion: + 2 keeps int32", dev};
        expect_values(&w, ferry_add_scalar(i32, 2.0), FERRY_INT32, 1, (double[]){3, 4});
        w = (conf_where){"add_scalar", "bool", "promotion: + 2 gives int64", dev};
        expect_values(&w, ferry_add_scalar(bl, 2.0), FERRY_INT64, 1, (double[]){3, 2});
        w = (conf_where){"mul_scalar", "bool", "promotion: * 0.5 gives float32", dev};
        expect_values(&w, ferry_mul_scalar(bl, 0.5), FERRY_FLOAT32, 1, (double[]){0.5, 0});
        w = (conf_where){"add_scalar", "float16", "promotion: + 1e10 overflows", dev};
        expect_values(&w, ferry_add_scalar(f16, 1e10), FERRY_FLOAT16, 1,
                      (double[]){INFINITY, INFINITY});
        w = (conf_where){"add_scalar", "bfloat16", "promotion: + 2 keeps bfloat16", dev};
        expect_values(&w, ferry_add_scalar(bf16, 2.0), FERRY_BFLOAT16, 1, (double[]){2.25, 4});
        w = (conf_where){"add_scalar", "uint8", "promotion: + 300 wraps", dev};
        expect_values(&w, ferry_add_scalar(u8w, 300.0), FERRY_UINT8, 1, (double[]){45, 38});
        w = (conf_where){"add_scalar", "uint8", "promotion: + -1 wraps to 255", dev};
        expect_values(&w, ferry_add_scalar(u8, -1.0), FERRY_UINT8, 1, (double[]){2, 3});
        w = (conf_where){"add_scalar", "int8", "promotion: + 200 wraps to -56", dev};
        expect_values(&w, ferry_add_scalar(i8, 200.0), FERRY_INT8, 1, (double[]){-55, -54});
        w = (conf_where){"add", "uint8,uint8", "wrap-around", dev};
        expect_values(&w, ferry_add(u8w, u8w), FERRY_UINT8, 1, (double[]){2, 244});
        w = (conf_where){"sub", "uint8,uint8", "wrap-around", dev};
        expect_values(&w, ferry_sub(u8, u8w), FERRY_UINT8, 1, (double[]){2, 10});
        w = (conf_where){"mul", "uint8,uint8", "wrap-around", dev};
        expect_values(&w, ferry_mul(u8w, u8w), FERRY_UINT8, 1, (double[]){1, 36});
        w = (conf_where){"neg", "uint8", "wrap-around", dev};
        expect_values(&w, ferry_neg(u8w), FERRY_UINT8, 1, (double[]){255, 6});
        w = (conf_where){"lt", "int8,float32", "comparison gives bool", dev};
        expect_values(&w, ferry_lt(i8, f32), FERRY_BOOL, 1, (double[]){1, 0});
        w = (conf_where){"ge_scalar", "float16", "comparison gives bool", dev};
        expect_values(&w, ferry_ge_scalar(f16, 1.5), FERRY_BOOL, 1, (double[]){0, 1});
        w = (conf_where){"eq", "uint8,int8", "comparison gives bool", dev};
        expect_values(&w, ferry_eq(u8, i8), FERRY_BOOL, 1, (double[]){0, 0});

        ferry_tensor *ts[] = {i8, u8, i32, i64a, i64b, f16, bf16, bl, bl2, u8w, f32};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            ferry_tensor_release(ts[i]);
    }
    conf_finish();
}

/* Reads an int64 result exactly (past 2^53 a double would not hold it). */
static void expect_int64(const conf_where *w, ferry_tensor *t, const int64_t *want, int64_t n)
{
    if (!t) {
        conf_fail_call(w, w->op);
        return;
    }
    int64_t got[4];
    if (ferry_tensor_dtype(t) != FERRY_INT64 || ferry_tensor_numel(t) != n)
        conf_fail(w, "result is %s with %lld elements, expected int64 with %lld",
                  conf_dtype_name(ferry_tensor_dtype(t)), (long long)ferry_tensor_numel(t),
                  (long long)n);
    else if (ferry_tensor_copy_to_host(t, got, (size_t)n * sizeof *got) != FERRY_OK)
        conf_fail_call(w, "ferry_tensor_copy_to_host");
    else
        for (int64_t i = 0; i < n; i++)
            if (got[i] != want[i])
                conf_fail(w, "element %lld is %lld, expected %lld", (long long)i,
                          (long long)got[i], (long long)want[i]);
    ferry_tensor_release(t);
}

#define SC_BOOL(v) ((ferry_scalar){FERRY_SCALAR_BOOL, {.b = (v)}})
#define SC_INT(v) ((ferry_scalar){FERRY_SCALAR_INT, {.i = (v)}})
#define SC_FLOAT(v) ((ferry_scalar){FERRY_SCALAR_FLOAT, {.f = (v)}})

/* The _scalar_ex forms say what kind a scalar is, as Python does: True is a bool (it
 * keeps any tensor's dtype), 2 an int (exact over all of int64, wrapping into narrower
 * integers), 2.0 a float (an integer tensor becomes float32). */
static void test_ops_scalar_kinds_promote_like_python_scalars(void **state)
{
    (void)state;
    int64_t two = 2;
    CONF_FOR_EACH_DEVICE(dev) {
        ferry_tensor *bl = tensor_of(FERRY_BOOL, 1, &two, (double[]){1, 0}, dev);
        ferry_tensor *i8 = tensor_of(FERRY_INT8, 1, &two, (double[]){1, 2}, dev);
        ferry_tensor *i32 = tensor_of(FERRY_INT32, 1, &two, (double[]){1, 2}, dev);
        ferry_tensor *u8 = tensor_of(FERRY_UINT8, 1, &two, (double[]){3, 4}, dev);
        ferry_tensor *f16 = tensor_of(FERRY_FLOAT16, 1, &two, (double[]){0.5, 1.5}, dev);
        int64_t big[2] = {INT64_MAX, (int64_t)1 << 62};
        ferry_tensor *i64 = ferry_tensor_from_data(big, FERRY_INT64, 1, &two, dev);
        assert_non_null(bl && i8 && i32 && u8 && f16 && i64);

        conf_where w = {"add_scalar_ex", "bool", "+ True stays bool", dev};
        expect_values(&w, ferry_add_scalar_ex(bl, SC_BOOL(true)), FERRY_BOOL, 1, (double[]){1, 1});
        w = (conf_where){"mul_scalar_ex", "bool", "* False stays bool", dev};
        expect_values(&w, ferry_mul_scalar_ex(bl, SC_BOOL(false)), FERRY_BOOL, 1, (double[]){0, 0});
        w = (conf_where){"add_scalar_ex", "int8", "+ True keeps int8", dev};
        expect_values(&w, ferry_add_scalar_ex(i8, SC_BOOL(true)), FERRY_INT8, 1, (double[]){2, 3});
        w = (conf_where){"add_scalar_ex", "float16", "+ True keeps float16", dev};
        expect_values(&w, ferry_add_scalar_ex(f16, SC_BOOL(true)), FERRY_FLOAT16, 1,
                      (double[]){1.5, 2.5});
        w = (conf_where){"add_scalar_ex", "bool", "+ 2 gives int64", dev};
        expect_values(&w, ferry_add_scalar_ex(bl, SC_INT(2)), FERRY_INT64, 1, (double[]){3, 2});
        w = (conf_where){"add_scalar_ex", "int32", "+ 2.0 (a float) gives float32", dev};
        expect_values(&w, ferry_add_scalar_ex(i32, SC_FLOAT(2.0)), FERRY_FLOAT32, 1,
                      (double[]){3, 4});
        w = (conf_where){"add_scalar_ex", "int32", "+ (2^32 + 5) wraps to + 5", dev};
        expect_values(&w, ferry_add_scalar_ex(i32, SC_INT(((int64_t)1 << 32) + 5)), FERRY_INT32,
                      1, (double[]){6, 7});
        w = (conf_where){"add_scalar_ex", "uint8", "+ -1 wraps to + 255", dev};
        expect_values(&w, ferry_add_scalar_ex(u8, SC_INT(-1)), FERRY_UINT8, 1, (double[]){2, 3});
        w = (conf_where){"div_scalar_ex", "int32", "/ 2 is true division", dev};
        expect_values(&w, ferry_div_scalar_ex(i32, SC_INT(2)), FERRY_FLOAT32, 1,
                      (double[]){0.5, 1});
        w = (conf_where){"lt_scalar_ex", "int8", "< True compares with 1", dev};
        expect_values(&w, ferry_lt_scalar_ex(i8, SC_BOOL(true)), FERRY_BOOL, 1, (double[]){0, 0});

        /* Exact beyond 2^53, where a double scalar would round. */
        w = (conf_where){"add_scalar_ex", "int64", "+ 1 wraps INT64_MAX, exact near 2^62", dev};
        expect_int64(&w, ferry_add_scalar_ex(i64, SC_INT(1)),
                     (int64_t[]){INT64_MIN, ((int64_t)1 << 62) + 1}, 2);
        w = (conf_where){"sub_scalar_ex", "int64", "- (2^62 + 1)", dev};
        expect_int64(&w, ferry_sub_scalar_ex(i64, SC_INT(((int64_t)1 << 62) + 1)),
                     (int64_t[]){INT64_MAX - ((int64_t)1 << 62) - 1, -1}, 2);
        w = (conf_where){"eq_scalar_ex", "int64", "== 2^62 + 1 is exact", dev};
        expect_values(&w, ferry_eq_scalar_ex(i64, SC_INT(((int64_t)1 << 62) + 1)), FERRY_BOOL, 1,
                      (double[]){0, 0});
        w = (conf_where){"eq_scalar_ex", "int64", "== 2^62 is exact", dev};
        expect_values(&w, ferry_eq_scalar_ex(i64, SC_INT((int64_t)1 << 62)), FERRY_BOOL, 1,
                      (double[]){0, 1});

        /* PyTorch's refusals, for scalars as for tensors. */
        ferry_tensor *r;
        w = (conf_where){"sub_scalar_ex", "float16", "- True", dev};
        r = ferry_sub_scalar_ex(f16, SC_BOOL(true));
        conf_expect_error(&w, "ferry_sub_scalar_ex", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_UNSUPPORTED, MSG_SUB_BOOL);
        ferry_tensor_release(r);
        w = (conf_where){"sub_scalar_ex", "bool", "- True", dev};
        r = ferry_sub_scalar_ex(bl, SC_BOOL(true));
        conf_expect_error(&w, "ferry_sub_scalar_ex", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_UNSUPPORTED, MSG_SUB_TWO_BOOLS);
        ferry_tensor_release(r);
        w = (conf_where){"pow_scalar_ex", "int32", "** -1", dev};
        r = ferry_pow_scalar_ex(i32, SC_INT(-1));
        conf_expect_error(&w, "ferry_pow_scalar_ex", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_UNSUPPORTED,
                          "Integers to negative integer powers are not allowed.");
        ferry_tensor_release(r);
        w = (conf_where){"pow_scalar_ex", "float16", "** -1 is allowed", dev};
        expect_values(&w, ferry_pow_scalar_ex(f16, SC_INT(-1)), FERRY_FLOAT16, 1,
                      (double[]){2, 1.0 / 1.5});

        /* The _out form, into a strided view. */
        w = (conf_where){"add_scalar_ex_out", "int8", "+ True into a strided out", dev};
        conf_out o;
        if (conf_out_make(&w, FERRY_INT8, 1, &two, dev, true, &o)) {
            if (ferry_add_scalar_ex_out(o.view, i8, SC_BOOL(true)) != FERRY_OK)
                conf_fail_call(&w, "ferry_add_scalar_ex_out");
            else {
                check_result(&w, o.view, FERRY_INT8, 1, &two, (double[]){2, 3});
                conf_out_check_gaps(&w, &o);
            }
            conf_out_free(&o);
        }

        ferry_tensor *ts[] = {bl, i8, i32, u8, f16, i64};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            ferry_tensor_release(ts[i]);
    }
    conf_finish();
}

/* PyTorch's result_type: a 0-d tensor counts only when its category is higher than the
 * dimensioned operands' (then it decides the dtype); between 0-d tensors, as usual. */
static void test_ops_zero_dim_tensors_promote_like_pytorch(void **state)
{
    (void)state;
    int64_t two = 2;
    CONF_FOR_EACH_DEVICE(dev) {
        ferry_tensor *i32 = tensor_of(FERRY_INT32, 1, &two, (double[]){1, 2}, dev);
        ferry_tensor *f32 = tensor_of(FERRY_FLOAT32, 1, &two, (double[]){0.5, 1}, dev);
        ferry_tensor *z64 = tensor_of(FERRY_INT64, 0, &two, (double[]){3}, dev);
        ferry_tensor *zf64 = tensor_of(FERRY_FLOAT64, 0, &two, (double[]){0.25}, dev);
        ferry_tensor *zi8 = tensor_of(FERRY_INT8, 0, &two, (double[]){2}, dev);
        assert_non_null(i32 && f32 && z64 && zf64 && zi8);

        conf_where w = {"add", "int32,int64 0-d", "promotion with 0-d", dev};
        expect_values(&w, ferry_add(i32, z64), FERRY_INT32, 1, (double[]){4, 5});
        w = (conf_where){"add", "float32,float64 0-d", "promotion with 0-d", dev};
        expect_values(&w, ferry_add(f32, zf64), FERRY_FLOAT32, 1, (double[]){0.75, 1.25});
        w = (conf_where){"add", "int32,float64 0-d", "promotion with 0-d", dev};
        expect_values(&w, ferry_add(i32, zf64), FERRY_FLOAT64, 1, (double[]){1.25, 2.25});
        w = (conf_where){"add", "int64 0-d,int8 0-d", "promotion between 0-d", dev};
        expect_values(&w, ferry_add(z64, zi8), FERRY_INT64, 0, (double[]){5});

        ferry_tensor *ts[] = {i32, f32, z64, zf64, zi8};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            ferry_tensor_release(ts[i]);
    }
    conf_finish();
}

/* ---- the unary ops ------------------------------------------------------------------ */

typedef enum uop {
    U_NEG, U_ABS, U_EXP, U_LOG, U_SQRT, U_SIN, U_COS, U_TANH, U_SIGMOID, U_RELU,
} uop;

typedef struct un_op {
    const char *name;
    uop op;
    ferry_tensor *(*fn)(ferry_tensor *);
    ferry_status (*ofn)(ferry_tensor *, ferry_tensor *);
    conf_domain dom;
    bool to_float; /* integer and bool inputs give float32 */
} un_op;

#define D_LOG {0.05, 8.0, 1, 12, false}
#define D_SQRT {0.0, 8.0, 0, 12, false}
#define D_SIGMOID {-6.0, 6.0, -12, 12, false}

#define UN(name, op, dom, to_float) {#name, op, ferry_##name, ferry_##name##_out, dom, to_float}

static const un_op un_ops[] = {
    UN(neg, U_NEG, D_PLAIN, false),
    UN(abs, U_ABS, D_PLAIN, false),
    UN(exp, U_EXP, D_PLAIN, true),
    UN(log, U_LOG, D_LOG, true),
    UN(sqrt, U_SQRT, D_SQRT, true),
    UN(sin, U_SIN, D_PLAIN, true),
    UN(cos, U_COS, D_PLAIN, true),
    UN(tanh, U_TANH, D_PLAIN, true),
    UN(sigmoid, U_SIGMOID, D_SIGMOID, true),
    UN(relu, U_RELU, D_PLAIN, false),
};
#define N_UN_OPS (sizeof un_ops / sizeof un_ops[0])

static const char *un_refusal(uop op, ferry_dtype dt)
{
    if (dt != FERRY_BOOL)
        return NULL;
    if (op == U_NEG)
        return MSG_NEG_BOOL;
    if (op == U_RELU)
        return MSG_RELU_BOOL;
    return NULL;
}

static double ref_unary(uop op, ferry_dtype rt, double x)
{
    if (!conf_is_float(rt)) {
        int64_t a = (int64_t)x;
        switch (op) {
        case U_NEG: return (double)conf_wrap(rt, (int64_t)(0 - (uint64_t)a));
        case U_ABS: return (double)conf_wrap(rt, a < 0 ? (int64_t)(0 - (uint64_t)a) : a);
        case U_RELU: return a > 0 ? (double)a : 0;
        default: break; /* the others never return integers */
        }
    }
    switch (op) {
    case U_NEG: return -x;
    case U_ABS: return fabs(x);
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_SQRT: return sqrt(x);
    case U_SIN: return sin(x);
    case U_COS: return cos(x);
    case U_TANH: return tanh(x);
    case U_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case U_RELU: return isnan(x) ? x : x > 0 ? x : 0.0;
    }
    return NAN;
}

typedef struct un_ctx {
    const un_op *op;
    ferry_tensor *a;
} un_ctx;

static ferry_status call_un_out(ferry_tensor *out, void *ctx)
{
    un_ctx *c = ctx;
    return c->op->ofn(out, c->a);
}

static void check_unary(const conf_where *w, const un_op *op, ferry_tensor *a,
                        const conf_array *av, bool with_out)
{
    char call[64];
    snprintf(call, sizeof call, "ferry_%s", op->name);
    const char *refusal = un_refusal(op->op, av->dtype);
    if (refusal) {
        ferry_tensor *t = op->fn(a);
        conf_expect_error(w, call, t == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_UNSUPPORTED, refusal);
        ferry_tensor_release(t);
        return;
    }
    ferry_dtype rt = op->to_float && !conf_is_float(av->dtype) ? FERRY_FLOAT32 : av->dtype;
    double *ref = malloc((size_t)(av->numel ? av->numel : 1) * sizeof *ref);
    for (int64_t i = 0; i < av->numel; i++)
        ref[i] = ref_unary(op->op, rt, av->v[i]);
    ferry_tensor *t = op->fn(a);
    if (!t)
        conf_fail_call(w, call);
    else
        check_result(w, t, rt, av->ndim, av->shape, ref);
    ferry_tensor_release(t);
    if (with_out) {
        un_ctx ctx = {op, a};
        snprintf(call, sizeof call, "ferry_%s_out", op->name);
        check_out(w, call, rt, av->ndim, av->shape, ref, OUT_CONTIGUOUS, call_un_out, &ctx);
        check_out(w, call, rt, av->ndim, av->shape, ref, OUT_STRIDED, call_un_out, &ctx);
        check_out(w, call, rt, av->ndim, av->shape, ref, OUT_OTHER_DTYPE, call_un_out, &ctx);
    }
    free(ref);
}

typedef struct un_case {
    const char *name;
    conf_operand a;
} un_case;

static const un_case un_cases[] = {
    {"contiguous", OPND(2, 3, 4)},
    {"transposed", OPND_L(CONF_TRANSPOSED, 2, 3, 5)},
    {"expanded stride 0", {2, {3, 4}, CONF_EXPANDED, 2, {3, 1}}},
    {"sliced step 2", OPND_L(CONF_SLICED, 3, 2, 3, 4)},
    {"negative strides", OPND_L(CONF_NEGATIVE, 2, 3, 4)},
    {"zero-size", OPND(2, 0, 3)},
    {"0-d", OPND(0, 0)},
    {"permuted outer dims", OPND_L(CONF_PERMUTED, 3, 2, 3, 4)},
    {"6-d transposed", OPND_L(CONF_TRANSPOSED, 6, 2, 1, 3, 2, 1, 2)},
    {"6-d expanded", {6, {2, 2, 3, 2, 2, 2}, CONF_EXPANDED, 6, {2, 1, 3, 1, 2, 1}}},
    {"long contiguous", OPND(1, 1037)},
};
#define N_UN_CASES (sizeof un_cases / sizeof un_cases[0])

static void test_ops_unary_matches_reference_on_every_dtype_case_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_UN_OPS; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < N_UN_CASES; c++) {
                    const un_case *uc = &un_cases[c];
                    if (!conf_layout_runs_on(uc->a.layout, dev))
                        continue;
                    const un_op *op = &un_ops[o];
                    ferry_dtype dt = conf_all_dtypes[d];
                    conf_where w = {op->name, conf_dtype_name(dt), uc->name, dev};
                    conf_rng r = conf_rng_seed(op->name, w.dtype, uc->name, 0);
                    conf_array av;
                    ferry_tensor *a = conf_make(&w, &uc->a, dt, dev, &r, &op->dom, &av);
                    if (!a)
                        continue;
                    check_unary(&w, op, a, &av, true);
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
    }
    conf_finish();
}

/* NaN, infinities, signed zeros and out-of-domain inputs in every floating dtype. */
static void test_ops_unary_special_values_follow_ieee(void **state)
{
    (void)state;
    static const double specials[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, -1.0, 0.5,
                                      -2.0, 20.0, -20.0, 1e-3};
    int64_t n = sizeof specials / sizeof specials[0];
    const conf_operand spec = {1, {n}, CONF_CONTIGUOUS, 0, {0}};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_UN_OPS; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
                ferry_dtype dt = conf_all_dtypes[d];
                if (!conf_is_float(dt))
                    continue;
                conf_where w = {un_ops[o].name, conf_dtype_name(dt), "special values", dev};
                conf_array src, av;
                conf_array_init(&src, dt, 1, &n);
                for (int64_t i = 0; i < n; i++)
                    src.v[i] = conf_round(dt, specials[i]);
                ferry_tensor *a = conf_build(&w, &spec, &src, dev, &av);
                conf_array_free(&src);
                if (!a)
                    continue;
                check_unary(&w, &un_ops[o], a, &av, false);
                ferry_tensor_release(a);
                conf_array_free(&av);
            }
    }
    conf_finish();
}

/* The same for the binary ops: NaN against everything, infinities, zero divisors,
 * pow's edge cases (0^0, negative bases, 1^NaN). */
static void test_ops_binary_special_values_follow_ieee(void **state)
{
    (void)state;
    static const double xs[] = {NAN, 1.0, INFINITY, -INFINITY, 0.0, -0.0, -2.0, 1.0, 0.0, 2.0, -8.0};
    static const double ys[] = {1.0, NAN, INFINITY, 2.0, 0.0, 0.0, 0.5, INFINITY, -1.0, -INFINITY, 1.0 / 3};
    int64_t n = sizeof xs / sizeof xs[0];
    const conf_operand spec = {1, {n}, CONF_CONTIGUOUS, 0, {0}};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t o = 0; o < N_BIN_OPS; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
                ferry_dtype dt = conf_all_dtypes[d];
                if (!conf_is_float(dt))
                    continue;
                conf_where w = {bin_ops[o].name, conf_dtype_name(dt), "special values", dev};
                conf_array sx, sy, av, bv;
                conf_array_init(&sx, dt, 1, &n);
                conf_array_init(&sy, dt, 1, &n);
                for (int64_t i = 0; i < n; i++) {
                    sx.v[i] = conf_round(dt, xs[i]);
                    sy.v[i] = conf_round(dt, ys[i]);
                }
                ferry_tensor *a = conf_build(&w, &spec, &sx, dev, &av);
                ferry_tensor *b = a ? conf_build(&w, &spec, &sy, dev, &bv) : NULL;
                if (b) {
                    check_binary(&w, &bin_ops[o], a, &av, b, &bv);
                    ferry_tensor_release(b);
                    conf_array_free(&bv);
                }
                if (a) {
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
                conf_array_free(&sx);
                conf_array_free(&sy);
            }
    }
    conf_finish();
}

/* Sizes just past the CPU backend's split across two threads (65536 elements; fewer for
 * libm functions), with odd tails for its vector loops, for the ops
 * whose kernels take the most distinct paths, on the dtypes with distinct loops. */
static void test_ops_large_tensors_match_reference(void **state)
{
    (void)state;
    static const bin_case large_bin[] = {
        {"large contiguous", OPND(1, 65599), OPND(1, 65599)},
        {"large transposed", OPND_L(CONF_TRANSPOSED, 2, 257, 263), OPND(2, 257, 263)},
        {"large broadcast row", OPND(2, 257, 263), OPND(1, 263)},
    };
    static const un_case large_un[] = {
        {"large contiguous", OPND(1, 65599)},
        {"large sliced", OPND_L(CONF_SLICED, 2, 257, 263)},
    };
    static const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT16, FERRY_INT32};
    static const bop bops[] = {B_ADD, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_LT};
    static const uop uops[] = {U_NEG, U_EXP, U_SQRT, U_SIGMOID, U_RELU};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
            ferry_dtype dt = dts[d];
            for (size_t o = 0; o < sizeof bops / sizeof bops[0]; o++)
                for (size_t c = 0; c < sizeof large_bin / sizeof large_bin[0]; c++) {
                    const bin_op *op = &bin_ops[bops[o]];
                    const bin_case *bc = &large_bin[c];
                    conf_where w = {op->name, conf_dtype_name(dt), bc->name, dev};
                    conf_rng r = conf_rng_seed(op->name, w.dtype, bc->name, 0);
                    conf_array av, bv;
                    ferry_tensor *a = conf_make(&w, &bc->a, dt, dev, &r, &op->da, &av);
                    ferry_tensor *b = a ? conf_make(&w, &bc->b, dt, dev, &r, &op->db, &bv) : NULL;
                    if (b) {
                        check_binary(&w, op, a, &av, b, &bv);
                        ferry_tensor_release(b);
                        conf_array_free(&bv);
                    }
                    if (a) {
                        ferry_tensor_release(a);
                        conf_array_free(&av);
                    }
                }
            for (size_t o = 0; o < sizeof uops / sizeof uops[0]; o++)
                for (size_t c = 0; c < sizeof large_un / sizeof large_un[0]; c++) {
                    const un_op *op = &un_ops[uops[o]];
                    const un_case *uc = &large_un[c];
                    conf_where w = {op->name, conf_dtype_name(dt), uc->name, dev};
                    conf_rng r = conf_rng_seed(op->name, w.dtype, uc->name, 0);
                    conf_array av;
                    ferry_tensor *a = conf_make(&w, &uc->a, dt, dev, &r, &op->dom, &av);
                    if (!a)
                        continue;
                    check_unary(&w, op, a, &av, true);
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
        }
    }
    conf_finish();
}

int conf_group_ops(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_binary_matches_reference_on_every_dtype_case_and_device),
        cmocka_unit_test(test_ops_binary_out_may_alias_an_input),
        cmocka_unit_test(test_ops_binary_promotes_every_dtype_pair),
        cmocka_unit_test(test_ops_promotion_follows_pytorch),
        cmocka_unit_test(test_ops_zero_dim_tensors_promote_like_pytorch),
        cmocka_unit_test(test_ops_scalar_kinds_promote_like_python_scalars),
        cmocka_unit_test(test_ops_unary_matches_reference_on_every_dtype_case_and_device),
        cmocka_unit_test(test_ops_unary_special_values_follow_ieee),
        cmocka_unit_test(test_ops_binary_special_values_follow_ieee),
        cmocka_unit_test(test_ops_large_tensors_match_reference),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}

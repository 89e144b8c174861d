/* The ELEM2 ops (floor .. logical_not, atan2 .. logical_xor, where, masked_fill, clamp)
 * on every device and dtype against references computed here in double precision, with
 * PyTorch's dtype rules and errors; on devices other than cpu and sim none may reach the
 * CPU fallback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

#define OPND(nd, ...) {nd, {__VA_ARGS__}, CONF_CONTIGUOUS, 0, {0}}
#define OPND_L(layout, nd, ...) {nd, {__VA_ARGS__}, layout, 0, {0}}

typedef struct e2_case {
    const char *name;
    conf_operand a, b;
} e2_case;

static const e2_case cases[] = {
    {"contiguous", OPND(2, 3, 4), OPND(2, 3, 4)},
    {"transposed", OPND_L(CONF_TRANSPOSED, 2, 3, 5), OPND(2, 3, 5)},
    {"broadcast", OPND(2, 3, 4), {2, {3, 4}, CONF_EXPANDED, 2, {1, 4}}},
    {"sliced", OPND_L(CONF_SLICED, 3, 2, 3, 4), OPND_L(CONF_SLICED, 3, 2, 3, 4)},
    {"negative strides", OPND_L(CONF_NEGATIVE, 2, 3, 4), OPND(2, 3, 4)},
    {"zero-size", OPND(2, 0, 3), OPND(2, 0, 3)},
    {"0-d", OPND(0, 0), OPND(0, 0)},
    {"long", OPND(1, 1037), OPND(1, 1037)},
};
#define NCASES (sizeof cases / sizeof cases[0])


/* Each rounding of the kernels' float arithmetic may differ from the double reference by
 * a few ulps of the result dtype. */
static void widen(ferry_dtype rt, const double *ref, int64_t n, double *tol)
{
    for (int64_t i = 0; i < n; i++)
        tol[i] = conf_is_float(rt) ? 8 * conf_rtol(rt) * fabs(ref[i]) + 8 * conf_atol(rt) + 1e-6 : 0;
}

static void compare(const conf_where *w, ferry_tensor *t, ferry_dtype rt, int nd,
                    const int64_t *shape, const double *ref, int64_t n)
{
    conf_array got;
    if (!conf_read(w, t, rt, nd, shape, w->device, &got))
        return;
    double *tol = malloc((size_t)(n ? n : 1) * sizeof *tol);
    widen(rt, ref, n, tol);
    conf_compare(w, &got, ref, tol);
    free(tol);
    conf_array_free(&got);
}

/* ---- unary ----------------------------------------------------------------------------- */

typedef enum { K_ROUNDING, K_SIGN, K_MATH, K_ACT, K_BITNOT, K_PRED } ukind;

typedef struct un_op {
    const char *name;
    ferry_tensor *(*fn)(ferry_tensor *);
    ukind kind;
    double lo, hi;
    const char *refusal; /* the message for a dtype it refuses */
} un_op;

static const un_op un_ops[] = {
    {"floor", ferry_floor, K_ROUNDING, -10, 10, "\"floor_vml_cpu\" not implemented for 'Bool'"},
    {"ceil", ferry_ceil, K_ROUNDING, -10, 10, "\"ceil_vml_cpu\" not implemented for 'Bool'"},
    {"round", ferry_round, K_ROUNDING, -10, 10, "\"round_vml_cpu\" not implemented for 'Bool'"},
    {"trunc", ferry_trunc, K_ROUNDING, -10, 10, "\"trunc_vml_cpu\" not implemented for 'Bool'"},
    {"sign", ferry_sign, K_SIGN, -10, 10, NULL},
    {"reciprocal", ferry_reciprocal, K_MATH, -10, 10, NULL},
    {"rsqrt", ferry_rsqrt, K_MATH, 0.1, 10, NULL},
    {"log1p", ferry_log1p, K_MATH, -0.9, 10, NULL},
    {"expm1", ferry_expm1, K_MATH, -5, 5, NULL},
    {"log2", ferry_log2, K_MATH, 0.1, 10, NULL},
    {"log10", ferry_log10, K_MATH, 0.1, 10, NULL},
    {"exp2", ferry_exp2, K_MATH, -5, 5, NULL},
    {"erf", ferry_erf, K_MATH, -3, 3, NULL},
    {"tan", ferry_tan, K_MATH, -1.2, 1.2, NULL},
    {"asin", ferry_asin, K_MATH, -1, 1, NULL},
    {"acos", ferry_acos, K_MATH, -1, 1, NULL},
    {"atan", ferry_atan, K_MATH, -10, 10, NULL},
    {"sinh", ferry_sinh, K_MATH, -5, 5, NULL},
    {"cosh", ferry_cosh, K_MATH, -5, 5, NULL},
    {"gelu", ferry_gelu, K_ACT, -5, 5, "\"GeluKernelImpl\" not implemented for '"},
    {"silu", ferry_silu, K_ACT, -10, 10, "\"silu_cpu\" not implemented for '"},
    {"softplus", ferry_softplus, K_ACT, -30, 30, "\"softplus_cpu\" not implemented for '"},
    {"leaky_relu", ferry_leaky_relu, K_ACT, -10, 10, "\"leaky_relu_cpu\" not implemented for '"},
    {"bitwise_not", ferry_bitwise_not, K_BITNOT, -10, 10, "\"bitwise_not_cpu\" not implemented for '"},
    {"isnan", ferry_isnan, K_PRED, -10, 10, NULL},
    {"isinf", ferry_isinf, K_PRED, -10, 10, NULL},
    {"isfinite", ferry_isfinite, K_PRED, -10, 10, NULL},
    {"logical_not", ferry_logical_not, K_PRED, -10, 10, NULL},
};
#define N_UN (sizeof un_ops / sizeof un_ops[0])

static double ref_un(const char *name, ferry_dtype dt, double x)
{
    if (!strcmp(name, "floor")) return floor(x);
    if (!strcmp(name, "ceil")) return ceil(x);
    if (!strcmp(name, "round")) return nearbyint(x);
    if (!strcmp(name, "trunc")) return trunc(x);
    if (!strcmp(name, "sign")) return dt == FERRY_BOOL ? x : (double)((x > 0) - (x < 0));
    if (!strcmp(name, "reciprocal")) return 1 / x;
    if (!strcmp(name, "rsqrt")) return 1 / sqrt(x);
    if (!strcmp(name, "log1p")) return log1p(x);
    if (!strcmp(name, "expm1")) return expm1(x);
    if (!strcmp(name, "log2")) return log2(x);
    if (!strcmp(name, "log10")) return log10(x);
    if (!strcmp(name, "exp2")) return exp2(x);
    if (!strcmp(name, "erf")) return erf(x);
    if (!strcmp(name, "tan")) return tan(x);
    if (!strcmp(name, "asin")) return asin(x);
    if (!strcmp(name, "acos")) return acos(x);
    if (!strcmp(name, "atan")) return atan(x);
    if (!strcmp(name, "sinh")) return sinh(x);
    if (!strcmp(name, "cosh")) return cosh(x);
    if (!strcmp(name, "gelu")) return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    if (!strcmp(name, "silu")) return x / (1 + exp(-x));
    if (!strcmp(name, "softplus")) return x > 20 ? x : log1p(exp(x));
    if (!strcmp(name, "leaky_relu")) return x > 0 ? x : 0.01 * x;
    if (!strcmp(name, "bitwise_not")) return dt == FERRY_BOOL ? !x : (double)conf_wrap(dt, ~(int64_t)x);
    if (!strcmp(name, "isnan")) return isnan(x);
    if (!strcmp(name, "isinf")) return isinf(x);
    if (!strcmp(name, "isfinite")) return isfinite(x);
    return x == 0; /* logical_not */
}

static const char *un_refuses(const un_op *op, ferry_dtype dt)
{
    switch (op->kind) {
    case K_ROUNDING: return dt == FERRY_BOOL ? op->refusal : NULL;
    case K_ACT: return conf_is_float(dt) ? NULL : op->refusal;
    case K_BITNOT: return conf_is_float(dt) ? op->refusal : NULL;
    default: return NULL;
    }
}

static ferry_dtype un_result(const un_op *op, ferry_dtype dt)
{
    if (op->kind == K_PRED)
        return FERRY_BOOL;
    if (op->kind == K_MATH && !conf_is_float(dt))
        return FERRY_FLOAT32;
    return dt;
}

static void test_elementwise2_unary_on_every_dtype_case_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        uint64_t before = conf_fallbacks(dev);
        conf_where wd = {"unary2", "-", "-", dev};
        for (size_t o = 0; o < N_UN; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < NCASES; c++) {
                    const un_op *op = &un_ops[o];
                    const e2_case *kc = &cases[c];
                    if (!conf_layout_runs_on(kc->a.layout, dev))
                        continue;
                    ferry_dtype dt = conf_all_dtypes[d];
                    conf_where w = {op->name, conf_dtype_name(dt), kc->name, dev};
                    conf_rng r = conf_rng_seed(op->name, w.dtype, kc->name, 0);
                    conf_domain dom = {op->lo, op->hi, -20, 20, op->kind != K_MATH || op->lo < 0};
                    if (op->kind == K_MATH && op->lo > 0)
                        dom.ilo = 1;
                    if (!strcmp(op->name, "asin") || !strcmp(op->name, "acos"))
                        dom.ilo = -1, dom.ihi = 1;
                    if (!strcmp(op->name, "log1p"))
                        dom.ilo = 0;
                    conf_array av;
                    ferry_tensor *a = conf_make(&w, &kc->a, dt, dev, &r, &dom, &av);
                    if (!a)
                        continue;
                    char call[64];
                    snprintf(call, sizeof call, "ferry_%s", op->name);
                    const char *refusal = un_refuses(op, dt);
                    ferry_tensor *t = op->fn(a);
                    if (refusal) {
                        conf_expect_error(&w, call, t == NULL, FERRY_ERR_UNSUPPORTED,
                                          FERRY_ERR_UNSUPPORTED, refusal);
                    } else if (!t) {
                        conf_fail_call(&w, call);
                    } else {
                        ferry_dtype rt = un_result(op, dt);
                        double *ref = malloc((size_t)(av.numel ? av.numel : 1) * sizeof *ref);
                        for (int64_t i = 0; i < av.numel; i++)
                            ref[i] = ref_un(op->name, dt, av.v[i]);
                        compare(&w, t, rt, av.ndim, av.shape, ref, av.numel);
                        free(ref);
                    }
                    ferry_tensor_release(t);
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
        conf_check_no_fallback(&wd, before);
    }
    conf_finish();
}

/* ---- binary ---------------------------------------------------------------------------- */

typedef enum { B_FLOAT, B_DIV, B_BIT, B_SHIFT, B_LOGIC } bkind;

typedef struct bin_op {
    const char *name;
    ferry_tensor *(*fn)(ferry_tensor *, ferry_tensor *);
    bkind kind;
    const char *impl;
} bin_op;

static const bin_op bin_ops[] = {
    {"atan2", ferry_atan2, B_FLOAT, NULL},
    {"hypot", ferry_hypot, B_FLOAT, "hypot_cpu"},
    {"remainder", ferry_remainder, B_DIV, "remainder_cpu"},
    {"fmod", ferry_fmod, B_DIV, "fmod_cpu"},
    {"floor_divide", ferry_floor_divide, B_DIV, "div_floor_cpu"},
    {"bitwise_and", ferry_bitwise_and, B_BIT, "bitwise_and_cpu"},
    {"bitwise_or", ferry_bitwise_or, B_BIT, "bitwise_or_cpu"},
    {"bitwise_xor", ferry_bitwise_xor, B_BIT, "bitwise_xor_cpu"},
    {"bitwise_left_shift", ferry_bitwise_left_shift, B_SHIFT, "lshift_cpu"},
    {"bitwise_right_shift", ferry_bitwise_right_shift, B_SHIFT, "rshift_cpu"},
    {"logical_and", ferry_logical_and, B_LOGIC, NULL},
    {"logical_or", ferry_logical_or, B_LOGIC, NULL},
    {"logical_xor", ferry_logical_xor, B_LOGIC, NULL},
};
#define N_BIN (sizeof bin_ops / sizeof bin_ops[0])

static double py_rem(double x, double y)
{
    double m = fmod(x, y);
    if (m != 0 && ((y < 0) != (m < 0)))
        m += y;
    return m;
}

static double py_floordiv(double x, double y)
{
    if (y == 0)
        return x / y;
    double m = fmod(x, y);
    double d = (x - m) / y;
    if (m != 0 && ((y < 0) != (m < 0)))
        d -= 1;
    if (d == 0)
        return copysign(0.0, x / y);
    double q = floor(d);
    return d - q > 0.5 ? q + 1 : q;
}

static double ref_bin(const bin_op *op, ferry_dtype ct, double x, double y)
{
    const char *n = op->name;
    bool fl = conf_is_float(ct);
    if (!strcmp(n, "atan2")) return atan2(x, y);
    if (!strcmp(n, "hypot")) return hypot(x, y);
    if (!strcmp(n, "remainder")) return fl ? py_rem(x, y) : conf_wrap(ct, (int64_t)py_rem(x, y));
    if (!strcmp(n, "fmod")) return fmod(x, y);
    if (!strcmp(n, "floor_divide")) return fl ? py_floordiv(x, y) : conf_wrap(ct, (int64_t)floor(x / y));
    if (!strcmp(n, "logical_and")) return x != 0 && y != 0;
    if (!strcmp(n, "logical_or")) return x != 0 || y != 0;
    if (!strcmp(n, "logical_xor")) return (x != 0) != (y != 0);
    /* Only integer and bool operands reach the bitwise ops (floats may be NaN). */
    int64_t a = (int64_t)x, b = (int64_t)y;
    int bits = (int)conf_dtype_size(ct) * 8;
    if (!strcmp(n, "bitwise_and")) return conf_wrap(ct, a & b);
    if (!strcmp(n, "bitwise_or")) return conf_wrap(ct, a | b);
    if (!strcmp(n, "bitwise_xor")) return conf_wrap(ct, a ^ b);
    if (!strcmp(n, "bitwise_left_shift"))
        return b < 0 || b >= bits ? 0 : conf_wrap(ct, (int64_t)((uint64_t)a << b));
    if (!strcmp(n, "bitwise_right_shift"))
        return b < 0 || b >= bits ? (a < 0 ? -1 : 0) : (double)(a >> b);
    return NAN;
}

static bool bin_refuses(const bin_op *op, ferry_dtype ct, char *msg, size_t cap)
{
    bool fl = conf_is_float(ct);
    bool refuse = false;
    switch (op->kind) {
    case B_FLOAT: refuse = !fl && op->impl; break;
    case B_DIV: refuse = ct == FERRY_BOOL; break;
    case B_BIT: refuse = fl; break;
    case B_SHIFT: refuse = fl || ct == FERRY_BOOL; break;
    case B_LOGIC: break;
    }
    if (refuse)
        snprintf(msg, cap, "\"%s\" not implemented for '", op->impl);
    return refuse;
}

static void test_elementwise2_binary_on_every_dtype_case_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        uint64_t before = conf_fallbacks(dev);
        conf_where wd = {"binary2", "-", "-", dev};
        for (size_t o = 0; o < N_BIN; o++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < NCASES; c++) {
                    const bin_op *op = &bin_ops[o];
                    const e2_case *kc = &cases[c];
                    if (!conf_layout_runs_on(kc->a.layout, dev) ||
                        !conf_layout_runs_on(kc->b.layout, dev))
                        continue;
                    ferry_dtype dt = conf_all_dtypes[d];
                    conf_where w = {op->name, conf_dtype_name(dt), kc->name, dev};
                    conf_rng r = conf_rng_seed(op->name, w.dtype, kc->name, 1);
                    conf_domain da = {-10, 10, -60, 60, true};
                    conf_domain db = da;
                    if (op->kind == B_DIV)
                        db.ilo = 1, db.ihi = 9; /* a zero divisor is the error test's */
                    if (op->kind == B_SHIFT)
                        db.ilo = -2, db.ihi = 70;
                    if (op->kind == B_SHIFT && conf_dtype_size(dt) == 1)
                        db.ihi = 10;
                    conf_array av, bv;
                    ferry_tensor *a = conf_make(&w, &kc->a, dt, dev, &r, &da, &av);
                    ferry_tensor *b = a ? conf_make(&w, &kc->b, dt, dev, &r, &db, &bv) : NULL;
                    if (!b) {
                        if (a) {
                            ferry_tensor_release(a);
                            conf_array_free(&av);
                        }
                        continue;
                    }
                    char call[64], msg[96];
                    snprintf(call, sizeof call, "ferry_%s", op->name);
                    ferry_tensor *t = op->fn(a, b);
                    if (bin_refuses(op, dt, msg, sizeof msg)) {
                        conf_expect_error(&w, call, t == NULL, FERRY_ERR_UNSUPPORTED,
                                          FERRY_ERR_UNSUPPORTED, msg);
                    } else if (!t) {
                        conf_fail_call(&w, call);
                    } else {
                        ferry_dtype ct = op->kind == B_FLOAT && !conf_is_float(dt) ? FERRY_FLOAT32 : dt;
                        ferry_dtype rt = op->kind == B_LOGIC ? FERRY_BOOL : ct;
                        int nd;
                        int64_t shape[CONF_MAX_DIMS];
                        conf_bcast_shape(av.ndim, av.shape, bv.ndim, bv.shape, &nd, shape);
                        int64_t n = conf_numel(nd, shape);
                        double *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
                        for (int64_t i = 0; i < n; i++)
                            ref[i] = ref_bin(op, ct, av.v[conf_bcast_index(&av, nd, shape, i)],
                                             bv.v[conf_bcast_index(&bv, nd, shape, i)]);
                        compare(&w, t, rt, nd, shape, ref, n);
                        free(ref);
                    }
                    ferry_tensor_release(t);
                    ferry_tensor_release(a);
                    ferry_tensor_release(b);
                    conf_array_free(&av);
                    conf_array_free(&bv);
                }
        conf_check_no_fallback(&wd, before);
    }
    conf_finish();
}

/* Python's signs on negative operands, the minimum value divided by -1 (wraps), and the
 * zero divisor PyTorch refuses. */
static void test_elementwise2_integer_division_edges(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"floor_divide/remainder", "int32", "edges", dev};
        int32_t av[] = {7, -7, 7, -7, INT32_MIN, INT32_MIN, 0};
        int32_t bv[] = {2, 2, -2, -2, -1, 3, 5};
        int32_t fd[] = {3, -4, -4, 3, INT32_MIN, -715827883, 0};
        int32_t rm[] = {1, 1, -1, -1, 0, 1, 0};
        int32_t fm[] = {1, -1, 1, -1, 0, -2, 0};
        int64_t shape[1] = {7};
        ferry_tensor *a = ferry_tensor_from_data(av, FERRY_INT32, 1, shape, dev);
        ferry_tensor *b = ferry_tensor_from_data(bv, FERRY_INT32, 1, shape, dev);
        ferry_tensor *r[3] = {ferry_floor_divide(a, b), ferry_remainder(a, b), ferry_fmod(a, b)};
        const int32_t *want[3] = {fd, rm, fm};
        for (int k = 0; k < 3; k++) {
            int32_t got[7] = {0};
            if (!r[k] || ferry_tensor_copy_to_host(r[k], got, sizeof got) != FERRY_OK)
                conf_fail_call(&w, "division");
            else
                for (int i = 0; i < 7; i++)
                    if (got[i] != want[k][i])
                        conf_fail(&w, "op %d element %d: %d, want %d", k, i, got[i], want[k][i]);
            ferry_tensor_release(r[k]);
        }
        int32_t zv[] = {1, 0, 1, 1, 1, 1, 1};
        ferry_tensor *z = ferry_tensor_from_data(zv, FERRY_INT32, 1, shape, dev);
        ferry_tensor *e = ferry_floor_divide(a, z);
        conf_expect_error(&w, "ferry_floor_divide", e == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "ZeroDivisionError");
        ferry_tensor_release(e);
        e = ferry_remainder_scalar(a, 0);
        conf_expect_error(&w, "ferry_remainder_scalar", e == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "ZeroDivisionError");
        ferry_tensor_release(e);
        ferry_tensor_release(z);
        ferry_tensor_release(a);
        ferry_tensor_release(b);
    }
    conf_finish();
}

/* ---- where, masked_fill, clamp --------------------------------------------------------- */

static void test_elementwise2_where_masked_fill_clamp(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        uint64_t before = conf_fallbacks(dev);
        for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
            ferry_dtype dt = conf_all_dtypes[d];
            conf_where w = {"where", conf_dtype_name(dt), "broadcast", dev};
            conf_rng r = conf_rng_seed("where", w.dtype, "b", 0);
            conf_operand sc = OPND(2, 3, 1), sa = OPND(1, 4), sb = OPND(2, 3, 4);
            conf_array cv, av, bv;
            ferry_tensor *c = conf_make(&w, &sc, FERRY_BOOL, dev, &r, &conf_default_domain, &cv);
            ferry_tensor *a = conf_make(&w, &sa, dt, dev, &r, &conf_default_domain, &av);
            ferry_tensor *b = conf_make(&w, &sb, dt, dev, &r, &conf_default_domain, &bv);
            if (!c || !a || !b) {
                conf_fail(&w, "inputs");
                continue;
            }
            int64_t shape[2] = {3, 4};
            double ref[12], mref[12], cref[12];
            for (int64_t i = 0; i < 12; i++) {
                double cc = cv.v[i / 4], x = av.v[i % 4], y = bv.v[i];
                ref[i] = cc != 0 ? x : y;
                mref[i] = cc != 0 ? conf_round(dt, 1.0) : y;
                /* clamp(b, 0, 5): NaN stays NaN */
                cref[i] = isnan(y) ? y : y < 0 ? 0 : y > 5 ? 5 : y;
            }
            ferry_tensor *t = ferry_where(c, a, b);
            if (!t)
                conf_fail_call(&w, "ferry_where");
            else
                compare(&w, t, dt, 2, shape, ref, 12);
            ferry_tensor_release(t);
            conf_where wm = {"masked_fill", w.dtype, "broadcast mask", dev};
            t = ferry_masked_fill(b, c, 1.0);
            if (!t)
                conf_fail_call(&wm, "ferry_masked_fill");
            else
                compare(&wm, t, dt, 2, shape, mref, 12);
            ferry_tensor_release(t);
            if (dt != FERRY_BOOL) {
                conf_where wc = {"clamp", w.dtype, "scalars", dev};
                ferry_scalar lo = {FERRY_SCALAR_INT, {.i = 0}}, hi = {FERRY_SCALAR_INT, {.i = 5}};
                t = ferry_clamp_scalar(b, &lo, &hi);
                if (!t)
                    conf_fail_call(&wc, "ferry_clamp_scalar");
                else
                    compare(&wc, t, dt, 2, shape, cref, 12);
                ferry_tensor_release(t);
            }
            if (dt == FERRY_INT64) {
                t = ferry_where(b, a, b);
                conf_expect_error(&w, "ferry_where", t == NULL, FERRY_ERR_INVALID_ARGUMENT,
                                  FERRY_ERR_INVALID_ARGUMENT,
                                  "where expected condition to be a boolean tensor, but got a "
                                  "tensor with dtype Long");
                ferry_tensor_release(t);
                t = ferry_clamp(b, NULL, NULL);
                conf_expect_error(&w, "ferry_clamp", t == NULL, FERRY_ERR_INVALID_ARGUMENT,
                                  FERRY_ERR_INVALID_ARGUMENT,
                                  "torch.clamp: At least one of 'min' or 'max' must not be None");
                ferry_tensor_release(t);
                t = ferry_masked_fill(b, b, 0);
                conf_expect_error(&w, "ferry_masked_fill", t == NULL, FERRY_ERR_INVALID_ARGUMENT,
                                  FERRY_ERR_INVALID_ARGUMENT,
                                  "masked_fill_ only supports boolean masks, but got mask with "
                                  "dtype int64");
                ferry_tensor_release(t);
            }
            ferry_tensor_release(c);
            ferry_tensor_release(a);
            ferry_tensor_release(b);
            conf_array_free(&cv);
            conf_array_free(&av);
            conf_array_free(&bv);
        }
        conf_where wd = {"where", "-", "-", dev};
        conf_check_no_fallback(&wd, before);
    }
    conf_finish();
}

int conf_group_elementwise2(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise2_unary_on_every_dtype_case_and_device),
        cmocka_unit_test(test_elementwise2_binary_on_every_dtype_case_and_device),
        cmocka_unit_test(test_elementwise2_integer_division_edges),
        cmocka_unit_test(test_elementwise2_where_masked_fill_clamp),
    };
    return cmocka_run_group_tests_name("elementwise2", tests, NULL, NULL);
}

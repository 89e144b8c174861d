/* The everyday elementwise ops beyond the built-in unary and binary entries: floor ..
 * leaky_relu, isnan .., atan2 .. shifts, logical ops, where, masked_fill and clamp. They
 * run as the named ops of ferry/ops/elementwise2.h; dtype rules, PyTorch's errors and
 * the backward formulas live here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ops/elementwise2.h>

#include "ops/ops_internal.h"

/* ---- unary ---------------------------------------------------------------------------- */

typedef enum { U_ROUNDING, U_SIGN, U_MATH, U_ACT, U_BITNOT, U_PRED } ukind;

static const struct {
    const char *name;  /* C and Python name */
    const char *impl;  /* PyTorch's kernel name in its dtype error */
    const char *node;  /* backward node name */
    ukind kind;
} uinfo[FERRY_UNARY2_COUNT] = {
    {"floor", "floor_vml_cpu", "FloorBackward0", U_ROUNDING},
    {"ceil", "ceil_vml_cpu", "CeilBackward0", U_ROUNDING},
    {"round", "round_vml_cpu", "RoundBackward0", U_ROUNDING},
    {"trunc", "trunc_vml_cpu", "TruncBackward0", U_ROUNDING},
    {"sign", "sign_cpu", "SignBackward0", U_SIGN},
    {"reciprocal", "reciprocal_cpu", "ReciprocalBackward0", U_MATH},
    {"rsqrt", "rsqrt_cpu", "RsqrtBackward0", U_MATH},
    {"log1p", "log1p_cpu", "Log1PBackward0", U_MATH},
    {"expm1", "expm1_cpu", "Expm1Backward0", U_MATH},
    {"log2", "log2_cpu", "Log2Backward0", U_MATH},
    {"log10", "log10_cpu", "Log10Backward0", U_MATH},
    {"exp2", "exp2_cpu", "Exp2Backward0", U_MATH},
    {"erf", "erf_cpu", "ErfBackward0", U_MATH},
    {"tan", "tan_cpu", "TanBackward0", U_MATH},
    {"asin", "asin_cpu", "AsinBackward0", U_MATH},
    {"acos", "acos_cpu", "AcosBackward0", U_MATH},
    {"atan", "atan_cpu", "AtanBackward0", U_MATH},
    {"sinh", "sinh_cpu", "SinhBackward0", U_MATH},
    {"cosh", "cosh_cpu", "CoshBackward0", U_MATH},
    {"gelu", "GeluKernelImpl", "GeluBackward0", U_ACT},
    {"gelu", "GeluKernelImpl", "GeluBackward0", U_ACT},
    {"silu", "silu_cpu", "SiluBackward0", U_ACT},
    {"softplus", "softplus_cpu", "SoftplusBackward0", U_ACT},
    {"leaky_relu", "leaky_relu_cpu", "LeakyReluBackward0", U_ACT},
    {"bitwise_not", "bitwise_not_cpu", NULL, U_BITNOT},
    {"isnan", NULL, NULL, U_PRED},
    {"isinf", NULL, NULL, U_PRED},
    {"isfinite", NULL, NULL, U_PRED},
    {"logical_not", NULL, NULL, U_PRED},
};

static ferry_status not_implemented(const char *impl, ferry_dtype dt)
{
    return ferry__error(FERRY_ERR_UNSUPPORTED, "\"%s\" not implemented for '%s'", impl,
                        ferry__torch_type_name(dt));
}

/* Copies src into dst (same shape and dtype), or returns a clone when dst is NULL. */
static ferry_status copy_result(ferry_tensor *out, ferry_tensor *a, ferry_tensor **result)
{
    if (out) {
        if (out == a)
            return FERRY_OK;
        ferry_status st = ferry__check_out("copy", out, a, a->ndim, a->shape, a->dtype);
        return st != FERRY_OK ? st : ferry_tensor_copy_from(out, a);
    }
    *result = ferry_tensor_clone(a);
    return *result ? FERRY_OK : ferry_last_status();
}

static ferry_status unary2_forward(ferry_unary2_op op, ferry_tensor *out, ferry_tensor *a,
                                   double p0, double p1, ferry_tensor **result)
{
    const char *fn = uinfo[op].name;
    ferry_status st = ferry__check_tensor(a, fn);
    if (st != FERRY_OK)
        return st;
    bool fl = ferry_dtype_is_floating(a->dtype);
    ferry_dtype ct = a->dtype, rt = a->dtype;
    switch (uinfo[op].kind) {
    case U_ROUNDING:
        if (a->dtype == FERRY_BOOL)
            return not_implemented(uinfo[op].impl, a->dtype);
        if (!fl) /* integers are their own floor, as PyTorch */
            return copy_result(out, a, result);
        break;
    case U_SIGN:
        if (a->dtype == FERRY_BOOL)
            return copy_result(out, a, result);
        break;
    case U_MATH:
        if (!fl)
            ct = rt = FERRY_FLOAT32;
        break;
    case U_ACT:
        if (!fl)
            return not_implemented(uinfo[op].impl, a->dtype);
        break;
    case U_BITNOT:
        if (fl)
            return not_implemented(uinfo[op].impl, a->dtype);
        if (a->dtype == FERRY_BOOL)
            op = FERRY_UNARY2_LOGICAL_NOT;
        break;
    case U_PRED: rt = FERRY_BOOL; break;
    }
    if (out && (st = ferry__check_out(fn, out, a, a->ndim, a->shape, rt)) != FERRY_OK)
        return st;
    ferry_tensor *ca = ferry__as_dtype(a, ct);
    if (!ca)
        return ferry_last_status();
    ferry_tensor *dst = (out && out->dtype == rt && !ferry__overlaps(out, a))
                            ? ferry_tensor_retain(out)
                            : ferry__new_like(a, rt, a->ndim, a->shape);
    if (!dst) {
        ferry_tensor_release(ca);
        return ferry_last_status();
    }
    if (ferry__numel(a->ndim, a->shape) > 0) {
        operand oo, oa;
        ferry__operand_of(&oo, dst);
        ferry__operand_of(&oa, ca);
        operand *all[2] = {&oo, &oa};
        ferry__collapse(all, 2);
        ferry_unary2_params p = {(int32_t)op, 0, p0, p1};
        st = ferry__launch_named("ferry.unary2", all, 2, 1, false, &p, sizeof p);
    }
    ferry_tensor_release(ca);
    return ferry__deliver(out, dst, st, result);
}

/* Saved: 0 = the input, 2 = the result; params op, then p0, p1 as bits. */
static ferry_status unary2_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *pp = ferry__node_params(n, NULL);
    ferry_unary2_op op = (ferry_unary2_op)pp[0];
    double p0, p1;
    memcpy(&p0, &pp[1], sizeof p0);
    memcpy(&p1, &pp[2], sizeof p1);
    ferry_tensor *a = ferry__saved_in(&s, n, 0), *r = ferry__saved_in(&s, n, 2);
    ferry_tensor *d = NULL; /* d(result)/d(input) */
    switch (op) {
    case FERRY_UNARY2_FLOOR:
    case FERRY_UNARY2_CEIL:
    case FERRY_UNARY2_ROUND:
    case FERRY_UNARY2_TRUNC:
    case FERRY_UNARY2_SIGN: grads[0] = keep(STEP(&s, ferry_mul_scalar(g, 0.0))); break;
    case FERRY_UNARY2_RECIPROCAL: { /* -r^2 */
        ferry_tensor *sq = STEP(&s, ferry_mul(r, r));
        d = STEP(&s, ferry_neg(sq));
        break;
    }
    case FERRY_UNARY2_RSQRT: { /* -r^3 / 2 */
        ferry_tensor *sq = STEP(&s, ferry_mul(r, r));
        ferry_tensor *cu = STEP(&s, ferry_mul(sq, r));
        d = STEP(&s, ferry_mul_scalar(cu, -0.5));
        break;
    }
    case FERRY_UNARY2_LOG1P: {
        ferry_tensor *a1 = STEP(&s, ferry_add_scalar(a, 1.0));
        grads[0] = keep(STEP(&s, ferry_div(g, a1)));
        break;
    }
    case FERRY_UNARY2_EXPM1: d = STEP(&s, ferry_add_scalar(r, 1.0)); break;
    case FERRY_UNARY2_LOG2:
    case FERRY_UNARY2_LOG10: {
        ferry_tensor *al = STEP(&s, ferry_mul_scalar(a, op == FERRY_UNARY2_LOG2 ? M_LN2 : M_LN10));
        grads[0] = keep(STEP(&s, ferry_div(g, al)));
        break;
    }
    case FERRY_UNARY2_EXP2: d = STEP(&s, ferry_mul_scalar(r, M_LN2)); break;
    case FERRY_UNARY2_ERF: { /* 2/sqrt(pi) exp(-a^2) */
        ferry_tensor *sq = STEP(&s, ferry_mul(a, a));
        ferry_tensor *ng = STEP(&s, ferry_neg(sq));
        ferry_tensor *e = STEP(&s, ferry_exp(ng));
        d = STEP(&s, ferry_mul_scalar(e, M_2_SQRTPI));
        break;
    }
    case FERRY_UNARY2_TAN: { /* 1 + r^2 */
        ferry_tensor *sq = STEP(&s, ferry_mul(r, r));
        d = STEP(&s, ferry_add_scalar(sq, 1.0));
        break;
    }
    case FERRY_UNARY2_ASIN:
    case FERRY_UNARY2_ACOS: { /* +-1 / sqrt(1 - a^2) */
        ferry_tensor *sq = STEP(&s, ferry_mul(a, a));
        ferry_tensor *ng = STEP(&s, ferry_neg(sq));
        ferry_tensor *om = STEP(&s, ferry_add_scalar(ng, 1.0));
        ferry_tensor *rs = STEP(&s, ferry_rsqrt(om));
        d = op == FERRY_UNARY2_ASIN ? rs : STEP(&s, ferry_neg(rs));
        break;
    }
    case FERRY_UNARY2_ATAN: {
        ferry_tensor *sq = STEP(&s, ferry_mul(a, a));
        ferry_tensor *op1 = STEP(&s, ferry_add_scalar(sq, 1.0));
        grads[0] = keep(STEP(&s, ferry_div(g, op1)));
        break;
    }
    case FERRY_UNARY2_SINH: d = STEP(&s, ferry_cosh(a)); break;
    case FERRY_UNARY2_COSH: d = STEP(&s, ferry_sinh(a)); break;
    case FERRY_UNARY2_GELU: { /* Phi(a) + a phi(a) */
        ferry_tensor *h = STEP(&s, ferry_mul_scalar(a, M_SQRT1_2));
        ferry_tensor *e = STEP(&s, ferry_erf(h));
        ferry_tensor *e1 = STEP(&s, ferry_add_scalar(e, 1.0));
        ferry_tensor *cdf = STEP(&s, ferry_mul_scalar(e1, 0.5));
        ferry_tensor *sq = STEP(&s, ferry_mul(a, a));
        ferry_tensor *ms = STEP(&s, ferry_mul_scalar(sq, -0.5));
        ferry_tensor *ex = STEP(&s, ferry_exp(ms));
        ferry_tensor *pdf = STEP(&s, ferry_mul_scalar(ex, 0.5 * M_2_SQRTPI * M_SQRT1_2));
        ferry_tensor *apdf = STEP(&s, ferry_mul(a, pdf));
        d = STEP(&s, ferry_add(cdf, apdf));
        break;
    }
    case FERRY_UNARY2_GELU_TANH: {
        /* u = k (a + c a^3), t = tanh u: 0.5 (1 + t) + 0.5 a (1 - t^2) k (1 + 3 c a^2) */
        const double k = 0.79788456080286535588, c = 0.044715;
        ferry_tensor *sq = STEP(&s, ferry_mul(a, a));
        ferry_tensor *cu = STEP(&s, ferry_mul(sq, a));
        ferry_tensor *ccu = STEP(&s, ferry_mul_scalar(cu, c));
        ferry_tensor *in = STEP(&s, ferry_add(a, ccu));
        ferry_tensor *u = STEP(&s, ferry_mul_scalar(in, k));
        ferry_tensor *t = STEP(&s, ferry_tanh(u));
        ferry_tensor *t1 = STEP(&s, ferry_add_scalar(t, 1.0));
        ferry_tensor *left = STEP(&s, ferry_mul_scalar(t1, 0.5));
        ferry_tensor *tt = STEP(&s, ferry_mul(t, t));
        ferry_tensor *nt = STEP(&s, ferry_neg(tt));
        ferry_tensor *sech = STEP(&s, ferry_add_scalar(nt, 1.0));
        ferry_tensor *q = STEP(&s, ferry_mul_scalar(sq, 3.0 * c));
        ferry_tensor *q1 = STEP(&s, ferry_add_scalar(q, 1.0));
        ferry_tensor *m1 = STEP(&s, ferry_mul(sech, q1));
        ferry_tensor *m2 = STEP(&s, ferry_mul(m1, a));
        ferry_tensor *right = STEP(&s, ferry_mul_scalar(m2, 0.5 * k));
        d = STEP(&s, ferry_add(left, right));
        break;
    }
    case FERRY_UNARY2_SILU: { /* s (1 + a (1 - s)) */
        ferry_tensor *sg = STEP(&s, ferry_sigmoid(a));
        ferry_tensor *ns = STEP(&s, ferry_neg(sg));
        ferry_tensor *om = STEP(&s, ferry_add_scalar(ns, 1.0));
        ferry_tensor *am = STEP(&s, ferry_mul(a, om));
        ferry_tensor *a1 = STEP(&s, ferry_add_scalar(am, 1.0));
        d = STEP(&s, ferry_mul(sg, a1));
        break;
    }
    case FERRY_UNARY2_SOFTPLUS: { /* sigmoid(beta a), 1 past the threshold */
        ferry_tensor *z = STEP(&s, ferry_mul_scalar(a, p0));
        ferry_tensor *sg = STEP(&s, ferry_sigmoid(z));
        ferry_tensor *m = STEP(&s, ferry_gt_scalar(z, p1));
        ferry_tensor *ms = STEP(&s, ferry_mul(m, sg));
        ferry_tensor *sm = STEP(&s, ferry_add(sg, m));
        d = STEP(&s, ferry_sub(sm, ms));
        break;
    }
    case FERRY_UNARY2_LEAKY_RELU: { /* 1 where a > 0, else the slope */
        /* the mask in a's dtype first: a bool times a float scalar would be float32 */
        ferry_tensor *mb = STEP(&s, ferry_gt_scalar(a, 0.0));
        ferry_tensor *m = STEP(&s, ferry_tensor_to_dtype(mb, a->dtype));
        ferry_tensor *ms = STEP(&s, ferry_mul_scalar(m, 1.0 - p0));
        d = STEP(&s, ferry_add_scalar(ms, p0));
        break;
    }
    default: return ferry__error(FERRY_ERR_UNSUPPORTED, "%s has no derivative", uinfo[op].name);
    }
    if (d)
        grads[0] = keep(STEP(&s, ferry_mul(g, d)));
    return ferry__scope_end(&s, grads, 1);
}

static ferry_status unary2(ferry_unary2_op op, ferry_tensor *out, ferry_tensor *a, double p0,
                           double p1, ferry_tensor **result)
{
    bool want = uinfo[op].node && ferry__grad_wanted(a, NULL);
    ferry_status st;
    if (out) {
        if ((st = ferry__inplace_check(uinfo[op].name, out, want)) != FERRY_OK)
            return st;
        st = unary2_forward(op, out, a, p0, p1, result);
        if (st == FERRY_OK)
            ferry__version_bump(out);
        return st;
    }
    if (!want)
        return unary2_forward(op, out, a, p0, p1, result);
    bool prev = pause_grad();
    st = unary2_forward(op, out, a, p0, p1, result);
    resume_grad(prev);
    if (st != FERRY_OK || !ferry_dtype_is_floating((*result)->dtype))
        return st;
    ferry_node *n = ferry__node_create(uinfo[op].node, unary2_backward, 1, &a);
    if (!n)
        return ferry__attach_or_fail(NULL, ferry_last_status(), result);
    int64_t *pp = ferry__node_params_alloc(n, 3);
    pp[0] = op;
    memcpy(&pp[1], &p0, sizeof p0);
    memcpy(&pp[2], &p1, sizeof p1);
    bool by_result = op == FERRY_UNARY2_RECIPROCAL || op == FERRY_UNARY2_RSQRT ||
                     op == FERRY_UNARY2_EXPM1 || op == FERRY_UNARY2_EXP2 || op == FERRY_UNARY2_TAN;
    st = FERRY_OK;
    if (!by_result && uinfo[op].kind != U_ROUNDING && op != FERRY_UNARY2_SIGN)
        st = ferry__node_save(n, 0, a, false);
    if (st == FERRY_OK && by_result)
        st = ferry__node_save(n, 2, *result, true);
    return ferry__attach_or_fail(n, st, result);
}

/* PyTorch's defaults: softplus beta 1 threshold 20, leaky_relu negative_slope 0.01. */
static double def_p0(ferry_unary2_op op)
{
    return op == FERRY_UNARY2_SOFTPLUS ? 1.0 : op == FERRY_UNARY2_LEAKY_RELU ? 0.01 : 0.0;
}

static double def_p1(ferry_unary2_op op)
{
    return op == FERRY_UNARY2_SOFTPLUS ? 20.0 : 0.0;
}

#define E2_UNARY_(name, OP)                                                                 \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *a)                                     \
    {                                                                                       \
        ferry_tensor *r = NULL;                                                             \
        unary2(FERRY_UNARY2_##OP, NULL, a, def_p0(FERRY_UNARY2_##OP), def_p1(FERRY_UNARY2_##OP), &r);                                   \
        return r;                                                                           \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *a)             \
    {                                                                                       \
        ferry_status st = ferry__check_tensor(out, #name "_out");                           \
        return st != FERRY_OK ? st : unary2(FERRY_UNARY2_##OP, out, a, def_p0(FERRY_UNARY2_##OP),    \
                                            def_p1(FERRY_UNARY2_##OP), NULL);     \
    }
FERRY_UNARY2_OPS_(E2_UNARY_)

FERRY_API ferry_tensor *ferry_gelu_ex(ferry_tensor *a, bool approximate_tanh)
{
    ferry_tensor *r = NULL;
    unary2(approximate_tanh ? FERRY_UNARY2_GELU_TANH : FERRY_UNARY2_GELU, NULL, a, 0, 0, &r);
    return r;
}

FERRY_API ferry_tensor *ferry_softplus_ex(ferry_tensor *a, double beta, double threshold)
{
    ferry_tensor *r = NULL;
    unary2(FERRY_UNARY2_SOFTPLUS, NULL, a, beta, threshold, &r);
    return r;
}

FERRY_API ferry_tensor *ferry_leaky_relu_ex(ferry_tensor *a, double negative_slope)
{
    ferry_tensor *r = NULL;
    unary2(FERRY_UNARY2_LEAKY_RELU, NULL, a, negative_slope, 0.0, &r);
    return r;
}

FERRY_API ferry_status ferry_unary2_out(ferry_tensor *out, ferry_tensor *a, int op, double p0,
                                        double p1)
{
    if (op < 0 || op >= FERRY_UNARY2_COUNT)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "unary op %d out of range", op);
    ferry_status st = ferry__check_tensor(out, "unary_out");
    return st != FERRY_OK ? st : unary2((ferry_unary2_op)op, out, a, p0, p1, NULL);
}

FERRY_API ferry_tensor *ferry_unary2(ferry_tensor *a, int op, double p0, double p1)
{
    if (op < 0 || op >= FERRY_UNARY2_COUNT) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "unary op %d out of range", op);
        return NULL;
    }
    ferry_tensor *r = NULL;
    unary2((ferry_unary2_op)op, NULL, a, p0, p1, &r);
    return r;
}

/* ---- binary --------------------------------------------------------------------------- */

typedef enum { B_FLOAT, B_DIVISION, B_BITWISE, B_SHIFT, B_LOGICAL } bkind;

static const struct {
    const char *name;
    const char *impl;
    const char *node;
    bkind kind;
} binfo[FERRY_BINARY2_COUNT] = {
    {"atan2", "atan2_cpu", "Atan2Backward0", B_FLOAT},
    {"remainder", "remainder_cpu", "RemainderBackward0", B_DIVISION},
    {"fmod", "fmod_cpu", "FmodBackward0", B_DIVISION},
    {"floor_divide", "div_floor_cpu", "FloorDivideBackward0", B_DIVISION},
    {"bitwise_and", "bitwise_and_cpu", NULL, B_BITWISE},
    {"bitwise_or", "bitwise_or_cpu", NULL, B_BITWISE},
    {"bitwise_xor", "bitwise_xor_cpu", NULL, B_BITWISE},
    {"bitwise_left_shift", "lshift_cpu", NULL, B_SHIFT},
    {"bitwise_right_shift", "rshift_cpu", NULL, B_SHIFT},
    {"hypot", "hypot_cpu", "HypotBackward0", B_FLOAT},
    {"logical_and", NULL, NULL, B_LOGICAL},
    {"logical_or", NULL, NULL, B_LOGICAL},
    {"logical_xor", NULL, NULL, B_LOGICAL},
};

/* PyTorch raises ZeroDivisionError for an integer divisor of 0, so the divisor is
 * checked before any kernel runs (one synchronising read). */
static ferry_status check_no_zero(ferry_tensor *b)
{
    if (ferry__numel(b->ndim, b->shape) == 0)
        return FERRY_OK;
    ferry_tensor *z = ferry_eq_scalar(b, 0.0);
    ferry_tensor *m = z ? ferry_max(z, 0, NULL, false) : NULL;
    ferry_tensor_release(z);
    if (!m)
        return ferry_last_status();
    uint8_t any = 0;
    ferry_status st = ferry_tensor_copy_to_host(m, &any, 1);
    ferry_tensor_release(m);
    if (st != FERRY_OK)
        return st;
    return any ? ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ZeroDivisionError") : FERRY_OK;
}

static ferry_status binary2_forward(ferry_binary2_op op, ferry_tensor *out, ferry_tensor *a,
                                    ferry_tensor *b, const ferry_scalar *scalar,
                                    ferry_tensor **result)
{
    const char *fn = binfo[op].name;
    ferry_dtype ct;
    ferry_status st = ferry__binary_operands(fn, a, b, scalar, &ct);
    if (st != FERRY_OK)
        return st;
    ferry_dtype rt = ct;
    bool fl = ferry_dtype_is_floating(ct);
    switch (binfo[op].kind) {
    case B_FLOAT:
        if (!fl) {
            if (op == FERRY_BINARY2_HYPOT)
                return not_implemented(binfo[op].impl, ct);
            ct = rt = FERRY_FLOAT32;
        }
        break;
    case B_DIVISION:
        if (ct == FERRY_BOOL)
            return not_implemented(binfo[op].impl, ct);
        break;
    case B_BITWISE:
        if (fl)
            return not_implemented(binfo[op].impl, ct);
        break;
    case B_SHIFT:
        if (fl || ct == FERRY_BOOL)
            return not_implemented(binfo[op].impl, ct);
        break;
    case B_LOGICAL: rt = FERRY_BOOL; break;
    }

    ferry_tensor *sb = NULL;
    if (scalar) {
        if (!(sb = ferry__scalar_tensor(a, ct, scalar)))
            return ferry_last_status();
        b = sb;
    }
    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    if ((st = ferry__broadcast_shape(a, b, &ndim, shape)) != FERRY_OK ||
        (out && (st = ferry__check_out(fn, out, a, ndim, shape, rt)) != FERRY_OK)) {
        ferry_tensor_release(sb);
        return st;
    }
    ferry_tensor *ca = ferry__as_dtype(a, ct);
    ferry_tensor *cb = ca ? ferry__as_dtype(b, ct) : NULL;
    ferry_tensor *dst = NULL;
    if (cb && binfo[op].kind == B_DIVISION && !ferry_dtype_is_floating(ct) &&
        (st = check_no_zero(cb)) != FERRY_OK)
        goto done;
    if (cb) {
        if (!out || out->dtype != rt || ferry__overlaps(out, a) || ferry__overlaps(out, b))
            dst = ferry__new_like(a, rt, ndim, shape);
        else
            dst = ferry_tensor_retain(out);
    }
    if (!dst) {
        st = ferry_last_status();
        goto done;
    }
    if (ferry__numel(ndim, shape) > 0) {
        operand oo, oa, ob;
        ferry__broadcast_operand(&oo, dst, ndim, shape);
        ferry__broadcast_operand(&oa, ca, ndim, shape);
        ferry__broadcast_operand(&ob, cb, ndim, shape);
        operand *all[3] = {&oo, &oa, &ob};
        ferry__collapse(all, 3);
        ferry_binary2_params p = {(int32_t)op, 0};
        st = ferry__launch_named("ferry.binary2", all, 3, 1, false, &p, sizeof p);
    }
    ferry_tensor_release(ca);
    ferry_tensor_release(cb);
    ferry_tensor_release(sb);
    return ferry__deliver(out, dst, st, result);
done:
    ferry_tensor_release(ca);
    ferry_tensor_release(cb);
    ferry_tensor_release(sb);
    return st;
}

/* Saved: 0 = a, 1 = b (tensor form), 2 = the result; the scalar in the node's scalar. */
static ferry_status binary2_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    ferry_binary2_op op = (ferry_binary2_op)p[0];
    bool has_scalar = p[1] != 0;
    double k = *ferry__node_scalar(n);
    bool na = ferry__node_needs(n, 0), nb = !has_scalar && ferry__node_needs(n, 1);
    ferry_tensor *a = ferry__saved_in(&s, n, 0), *b = has_scalar ? NULL : ferry__saved_in(&s, n, 1);
    ferry_tensor *r = ferry__saved_in(&s, n, 2);
    switch (op) {
    case FERRY_BINARY2_ATAN2: { /* (b, -a) / (a^2 + b^2) */
        ferry_tensor *a2 = STEP(&s, ferry_mul(a, a));
        ferry_tensor *den = b ? STEP(&s, ferry_add(a2, STEP(&s, ferry_mul(b, b))))
                              : STEP(&s, ferry_add_scalar(a2, k * k));
        ferry_tensor *q = STEP(&s, ferry_div(g, den));
        if (na)
            grads[0] = keep(STEP(&s, b ? ferry_mul(q, b) : ferry_mul_scalar(q, k)));
        if (nb) {
            ferry_tensor *m = STEP(&s, ferry_mul(q, a));
            grads[1] = keep(STEP(&s, ferry_neg(m)));
        }
        break;
    }
    case FERRY_BINARY2_HYPOT: { /* (a, b) / r */
        ferry_tensor *q = STEP(&s, ferry_div(g, r));
        if (na)
            grads[0] = keep(STEP(&s, ferry_mul(q, a)));
        if (nb)
            grads[1] = keep(STEP(&s, ferry_mul(q, b)));
        break;
    }
    case FERRY_BINARY2_REMAINDER:
    case FERRY_BINARY2_FMOD: { /* a - q b with q = floor (trunc) of a / b */
        if (na)
            grads[0] = keep(g);
        if (nb) {
            ferry_tensor *q = STEP(&s, ferry_div(a, b));
            ferry_tensor *iq = STEP(&s, op == FERRY_BINARY2_REMAINDER ? ferry_floor(q) : ferry_trunc(q));
            ferry_tensor *m = STEP(&s, ferry_mul(g, iq));
            grads[1] = keep(STEP(&s, ferry_neg(m)));
        }
        break;
    }
    case FERRY_BINARY2_FLOOR_DIVIDE:
        if (na)
            grads[0] = keep(STEP(&s, ferry_mul_scalar(g, 0.0)));
        if (nb)
            grads[1] = keep(STEP(&s, ferry_mul_scalar(g, 0.0)));
        break;
    default: return ferry__error(FERRY_ERR_UNSUPPORTED, "%s has no derivative", binfo[op].name);
    }
    return ferry__scope_end(&s, grads, 2);
}

static ferry_status binary2(ferry_binary2_op op, ferry_tensor *out, ferry_tensor *a,
                            ferry_tensor *b, const ferry_scalar *scalar, ferry_tensor **result)
{
    bool want = binfo[op].node && ferry__grad_wanted(a, scalar ? NULL : b);
    ferry_status st;
    if (out) {
        if ((st = ferry__inplace_check(binfo[op].name, out, want)) != FERRY_OK)
            return st;
        st = binary2_forward(op, out, a, b, scalar, result);
        if (st == FERRY_OK)
            ferry__version_bump(out);
        return st;
    }
    if (!want)
        return binary2_forward(op, out, a, b, scalar, result);
    bool prev = pause_grad();
    st = binary2_forward(op, out, a, b, scalar, result);
    resume_grad(prev);
    if (st != FERRY_OK || !ferry_dtype_is_floating((*result)->dtype))
        return st;
    ferry_tensor *inputs[2] = {a, scalar ? NULL : b};
    ferry_node *n = ferry__node_create(binfo[op].node, binary2_backward, scalar ? 1 : 2, inputs);
    if (!n)
        return ferry__attach_or_fail(NULL, ferry_last_status(), result);
    int64_t *p = ferry__node_params_alloc(n, 2);
    p[0] = op;
    p[1] = scalar != NULL;
    if (scalar)
        *ferry__node_scalar(n) = scalar->kind == FERRY_SCALAR_FLOAT ? scalar->value.f
                                 : scalar->kind == FERRY_SCALAR_INT ? (double)scalar->value.i
                                                                    : (double)scalar->value.b;
    st = ferry__node_save(n, 0, a, false);
    if (st == FERRY_OK && !scalar)
        st = ferry__node_save(n, 1, b, false);
    if (st == FERRY_OK && op == FERRY_BINARY2_HYPOT)
        st = ferry__node_save(n, 2, *result, true);
    return ferry__attach_or_fail(n, st, result);
}

#define E2_BINARY_(name, OP)                                                                \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *a, ferry_tensor *b)                    \
    {                                                                                       \
        ferry_tensor *r = NULL;                                                             \
        binary2(FERRY_BINARY2_##OP, NULL, a, b, NULL, &r);                                  \
        return r;                                                                           \
    }                                                                                       \
    FERRY_API ferry_tensor *ferry_##name##_scalar_ex(ferry_tensor *a, ferry_scalar b)         \
    {                                                                                       \
        ferry_tensor *r = NULL;                                                             \
        binary2(FERRY_BINARY2_##OP, NULL, a, NULL, &b, &r);                                 \
        return r;                                                                           \
    }                                                                                       \
    FERRY_API ferry_tensor *ferry_##name##_scalar(ferry_tensor *a, double b)                  \
    {                                                                                       \
        return ferry_##name##_scalar_ex(a, ferry__scalar_of_double(b));                     \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *a,             \
                                              ferry_tensor *b)                               \
    {                                                                                       \
        ferry_status st = ferry__check_tensor(out, #name "_out");                           \
        return st != FERRY_OK ? st : binary2(FERRY_BINARY2_##OP, out, a, b, NULL, NULL);    \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_scalar_ex_out(ferry_tensor *out, ferry_tensor *a,   \
                                                        ferry_scalar b)                     \
    {                                                                                       \
        ferry_status st = ferry__check_tensor(out, #name "_scalar_out");                    \
        return st != FERRY_OK ? st : binary2(FERRY_BINARY2_##OP, out, a, NULL, &b, NULL);   \
    }
FERRY_BINARY2_OPS_(E2_BINARY_)

/* ---- where, masked_fill, clamp -------------------------------------------------------- */

static ferry_status broadcast3(const ferry_tensor *x, const ferry_tensor *y, const ferry_tensor *z,
                               int *ndim, int64_t *shape)
{
    const ferry_tensor *ts[3] = {x, y, z};
    int nd = 0;
    for (int i = 0; i < 3; i++)
        nd = ts[i]->ndim > nd ? ts[i]->ndim : nd;
    for (int d = 0; d < nd; d++) {
        int64_t e = 1;
        for (int i = 0; i < 3; i++) {
            int k = d - (nd - ts[i]->ndim);
            if (k < 0)
                continue;
            int64_t v = ts[i]->shape[k];
            if (v == e || v == 1)
                continue;
            if (e != 1)
                return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                    "The size of tensor a (%lld) must match the size of tensor b "
                                    "(%lld) at non-singleton dimension %d",
                                    (long long)e, (long long)v, d);
            e = v;
        }
        shape[d] = e;
    }
    *ndim = nd;
    return FERRY_OK;
}

/* The forward of where; no recording (where's gradient is recorded by the caller). */
static ferry_status where_forward(ferry_tensor *cond, ferry_tensor *a, ferry_tensor *b,
                                  ferry_tensor **result)
{
    ferry_status st;
    if ((st = ferry__check_tensor(cond, "where")) != FERRY_OK ||
        (st = ferry__check_tensor(a, "where")) != FERRY_OK ||
        (st = ferry__check_tensor(b, "where")) != FERRY_OK ||
        (st = ferry__check_same_device(cond, a)) != FERRY_OK ||
        (st = ferry__check_same_device(a, b)) != FERRY_OK)
        return st;
    if (cond->dtype != FERRY_BOOL)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "where expected condition to be a boolean tensor, but got a tensor "
                            "with dtype %s",
                            ferry__torch_type_name(cond->dtype));
    ferry_dtype ct = ferry__promote_operands(a, b);
    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    if ((st = broadcast3(cond, a, b, &ndim, shape)) != FERRY_OK)
        return st;
    ferry_tensor *ca = ferry__as_dtype(a, ct);
    ferry_tensor *cb = ca ? ferry__as_dtype(b, ct) : NULL;
    ferry_tensor *dst = cb ? ferry__new_like(a, ct, ndim, shape) : NULL;
    st = dst ? FERRY_OK : ferry_last_status();
    if (dst && ferry__numel(ndim, shape) > 0) {
        operand oo, oc, oa, ob;
        ferry__broadcast_operand(&oo, dst, ndim, shape);
        ferry__broadcast_operand(&oc, cond, ndim, shape);
        ferry__broadcast_operand(&oa, ca, ndim, shape);
        ferry__broadcast_operand(&ob, cb, ndim, shape);
        operand *all[4] = {&oo, &oc, &oa, &ob};
        ferry__collapse(all, 4);
        st = ferry__launch_named("ferry.where", all, 4, 1, false, NULL, 0);
    }
    ferry_tensor_release(ca);
    ferry_tensor_release(cb);
    if (st != FERRY_OK) {
        ferry_tensor_release(dst);
        return st;
    }
    *result = dst;
    return FERRY_OK;
}

/* Inputs a, b (a node has at most two); saved: 0 = the condition. */
static ferry_status where_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    ferry_tensor *c = ferry__saved_in(&s, n, 0);
    ferry_tensor *z = STEP(&s, ferry_mul_scalar(g, 0.0));
    if (ferry__node_needs(n, 0))
        grads[0] = keep(STEP(&s, ferry_where(c, g, z)));
    if (ferry__node_needs(n, 1))
        grads[1] = keep(STEP(&s, ferry_where(c, z, g)));
    return ferry__scope_end(&s, grads, 2);
}

FERRY_API ferry_tensor *ferry_where(ferry_tensor *cond, ferry_tensor *a, ferry_tensor *b)
{
    ferry_tensor *r = NULL;
    bool want = a && b && ferry__grad_wanted(a, b);
    bool prev = want ? pause_grad() : false;
    ferry_status st = where_forward(cond, a, b, &r);
    if (want)
        resume_grad(prev);
    if (st != FERRY_OK || !want || !ferry_dtype_is_floating(r->dtype))
        return r;
    ferry_tensor *inputs[2] = {a, b};
    ferry_node *n = ferry__node_create("WhereBackward0", where_backward, 2, inputs);
    if (!n) {
        ferry__attach_or_fail(NULL, ferry_last_status(), &r);
        return NULL;
    }
    st = ferry__node_save(n, 0, cond, false);
    ferry__attach_or_fail(n, st, &r);
    return r;
}

FERRY_API ferry_tensor *ferry_where_scalar(ferry_tensor *cond, ferry_tensor *a, ferry_scalar b)
{
    if (ferry__check_tensor(a, "where") != FERRY_OK)
        return NULL;
    ferry_tensor *sb = ferry__scalar_tensor(a, ferry__promote_scalar(a->dtype, &b), &b);
    ferry_tensor *r = sb ? ferry_where(cond, a, sb) : NULL;
    ferry_tensor_release(sb);
    return r;
}

static ferry_status masked_fill_check(ferry_tensor *t, ferry_tensor *mask, int *ndim,
                                      int64_t *shape)
{
    ferry_status st;
    if ((st = ferry__check_tensor(t, "masked_fill")) != FERRY_OK ||
        (st = ferry__check_tensor(mask, "masked_fill")) != FERRY_OK)
        return st;
    if (mask->dtype != FERRY_BOOL)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "masked_fill_ only supports boolean masks, but got mask with dtype %s",
                            ferry_dtype_name(mask->dtype));
    if ((st = ferry__broadcast_shape(t, mask, ndim, shape)) != FERRY_OK)
        return st;
    if (*ndim != t->ndim || memcmp(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim) != 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "masked_fill: the mask must broadcast to the tensor's shape");
    return FERRY_OK;
}

/* The fill value as a 0-d tensor of t's dtype (PyTorch converts it to self's dtype). */
static ferry_tensor *fill_value(ferry_tensor *t, double value)
{
    ferry_scalar v = {FERRY_SCALAR_FLOAT, {.f = value}};
    return ferry__scalar_tensor(t, t->dtype, &v);
}

FERRY_API ferry_tensor *ferry_masked_fill(ferry_tensor *t, ferry_tensor *mask, double value)
{
    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    if (masked_fill_check(t, mask, &ndim, shape) != FERRY_OK)
        return NULL;
    ferry_tensor *v = fill_value(t, value);
    ferry_tensor *r = v ? ferry_where(mask, v, t) : NULL;
    ferry_tensor_release(v);
    return r;
}

FERRY_API ferry_status ferry_masked_fill_inplace(ferry_tensor *t, ferry_tensor *mask, double value)
{
    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    ferry_status st = masked_fill_check(t, mask, &ndim, shape);
    if (st != FERRY_OK)
        return st;
    if ((st = ferry__inplace_check("masked_fill_", t, ferry__grad_wanted(t, NULL))) != FERRY_OK)
        return st;
    bool prev = pause_grad();
    ferry_tensor *v = fill_value(t, value);
    ferry_tensor *r = v ? ferry_where(mask, v, t) : NULL;
    resume_grad(prev);
    ferry_tensor_release(v);
    if (!r)
        return ferry_last_status();
    st = ferry_tensor_copy_from(t, r);
    ferry_tensor_release(r);
    return st;
}

/* clamp is maximum then minimum, so its gradient and NaN handling are theirs; a lower
 * bound above the upper one gives the upper, as PyTorch. */
FERRY_API ferry_tensor *ferry_clamp(ferry_tensor *t, ferry_tensor *min, ferry_tensor *max)
{
    if (ferry__check_tensor(t, "clamp") != FERRY_OK)
        return NULL;
    if (!min && !max) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "torch.clamp: At least one of 'min' or 'max' must not be None");
        return NULL;
    }
    ferry_tensor *lo = min ? ferry_maximum(t, min) : ferry_tensor_retain(t);
    if (!lo || !max)
        return lo;
    ferry_tensor *r = ferry_minimum(lo, max);
    ferry_tensor_release(lo);
    return r;
}

FERRY_API ferry_tensor *ferry_clamp_scalar(ferry_tensor *t, const ferry_scalar *min,
                                           const ferry_scalar *max)
{
    if (ferry__check_tensor(t, "clamp") != FERRY_OK)
        return NULL;
    if (!min && !max) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "torch.clamp: At least one of 'min' or 'max' must not be None");
        return NULL;
    }
    ferry_tensor *lo = min ? ferry_maximum_scalar_ex(t, *min) : ferry_tensor_retain(t);
    if (!lo || !max)
        return lo;
    ferry_tensor *r = ferry_minimum_scalar_ex(lo, *max);
    ferry_tensor_release(lo);
    return r;
}

/* square is mul(a, a), so its gradient is mul's; bool squares in int64, as PyTorch's
 * pow(a, 2) does. */
static ferry_tensor *square_operand(ferry_tensor *a)
{
    if (a && ferry_tensor_dtype(a) == FERRY_BOOL)
        return ferry_tensor_to_dtype(a, FERRY_INT64);
    return a ? ferry_tensor_retain(a) : NULL;
}

FERRY_API ferry_tensor *ferry_square(ferry_tensor *a)
{
    if (!a)
        return ferry_mul(a, a); /* mul reports the missing operand */
    ferry_tensor *x = square_operand(a);
    if (!x)
        return NULL;
    ferry_tensor *r = ferry_mul(x, x);
    ferry_tensor_release(x);
    return r;
}

FERRY_API ferry_status ferry_square_out(ferry_tensor *out, ferry_tensor *a)
{
    if (!a)
        return ferry_mul_out(out, a, a);
    ferry_tensor *x = square_operand(a);
    if (!x)
        return ferry_last_status();
    ferry_status st = ferry_mul_out(out, x, x);
    ferry_tensor_release(x);
    return st;
}

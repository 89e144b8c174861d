/* Elementwise unary and binary ops: dispatch, scalar forms and backward formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/dtype_info.h>

#include "ops/ops_internal.h"

/* ---- elementwise binary ---- */

static const char *const binary_names[] = {"add", "sub",     "mul", "div", "pow", "maximum",
                                           "minimum", "eq", "ne",  "lt",  "le",  "gt", "ge"};

const char *ferry__binary_name(int op)
{
    return op >= 0 && op < (int)(sizeof binary_names / sizeof binary_names[0]) ? binary_names[op] : "?";
}

static bool is_comparison(ferry_binary_op op)
{
    return op >= FERRY_BINARY_EQ;
}

/* Whether t is dense with exactly the result's shape: then every operand collapses to
 * one run of numel elements, which is what ferry__collapse would make of them. */
static bool dense_as(const ferry_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim)
        return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return false;
    return ferry__is_contiguous(ndim, shape, t->strides);
}

static void flat_operand(operand *o, const ferry_tensor *t, int64_t numel)
{
    o->t = t;
    o->ndim = numel > 1;
    o->shape[0] = numel;
    o->strides[0] = 1;
}

static ferry_status launch_tensors(ferry_binary_op op, ferry_tensor *dst, ferry_tensor *a,
                                   ferry_tensor *b, int ndim, const int64_t *shape)
{
    operand oo, oa, ob;
    if (dense_as(dst, ndim, shape) && dense_as(a, ndim, shape) && dense_as(b, ndim, shape)) {
        int64_t numel = ferry__numel(ndim, shape);
        flat_operand(&oo, dst, numel);
        flat_operand(&oa, a, numel);
        flat_operand(&ob, b, numel);
        return ferry__launch(K_BINARY, op, &oo, &oa, &ob);
    }
    ferry__broadcast_operand(&oo, dst, ndim, shape);
    ferry__broadcast_operand(&oa, a, ndim, shape);
    ferry__broadcast_operand(&ob, b, ndim, shape);
    operand *all[3] = {&oo, &oa, &ob};
    ferry__collapse(all, 3);
    return ferry__launch(K_BINARY, op, &oo, &oa, &ob);
}

/* `a op scalar`: the scalar travels by value to a backend with binary_scalar; one
 * without it (or declining) gets it as a 0-d tensor of the compute dtype on a's device,
 * which is also how it reaches the cpu fallback. Either way it is the same element. */
static ferry_status launch_scalar(ferry_binary_op op, ferry_tensor *dst, ferry_tensor *a,
                                  ferry_dtype ct, const ferry_scalar *scalar, int ndim,
                                  const int64_t *shape)
{
    ferry_kernel_scalar ks;
    memset(&ks, 0, sizeof ks);
    ks.dtype = ct;
    ferry__scalar_element(ct, scalar, ks.value);
    ferry_status st = ferry__launch_binary_scalar(op, dst, a, &ks, ndim, shape);
    if (st != FERRY_ERR_UNSUPPORTED)
        return st;
    ferry_tensor *sb = ferry__scalar_tensor(a, ct, scalar);
    if (!sb)
        return ferry_last_status();
    st = launch_tensors(op, dst, a, sb, ndim, shape);
    ferry_tensor_release(sb);
    return st;
}

static bool same_shape(const ferry_tensor *x, const ferry_tensor *y)
{
    if (x->ndim != y->ndim)
        return false;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != y->shape[i])
            return false;
    return true;
}

/* The common case of a tensor-tensor op, without the general path's planning: live
 * operands of one dtype and one shape on one device, all dense, an out (if any) of the
 * result's dtype and shape that is writable and does not partly overlap an input. Then
 * every check of the general path passes, no conversion or broadcast is needed, and
 * the kernel sees what ferry__collapse would give it. False, with nothing done, when a
 * condition does not hold: the general path then runs (and says what is wrong). */
static bool binary_dense(ferry_binary_op op, ferry_tensor *out, ferry_tensor *a, ferry_tensor *b,
                         ferry_tensor **result, ferry_status *st)
{
    if (!a || !b || a->magic != FERRY_TENSOR_MAGIC || b->magic != FERRY_TENSOR_MAGIC ||
        a->dtype != b->dtype || a->dtype == FERRY_BOOL || !same_shape(a, b) ||
        a->storage->backend != b->storage->backend || a->storage->device != b->storage->device)
        return false;
    ferry_dtype ct = a->dtype;
    if (op == FERRY_BINARY_DIV && !ferry_dtype_info_is_floating(ct))
        return false;
    ferry_dtype rt = is_comparison(op) ? FERRY_BOOL : ct;
    if (!ferry__is_contiguous(a->ndim, a->shape, a->strides) ||
        !ferry__is_contiguous(b->ndim, b->shape, b->strides))
        return false;
    if (out && (out->dtype != rt || out->read_only || !same_shape(out, a) ||
                out->storage->backend != a->storage->backend ||
                out->storage->device != a->storage->device ||
                !ferry__is_contiguous(out->ndim, out->shape, out->strides) ||
                ferry__overlaps(out, a) || ferry__overlaps(out, b)))
        return false;
    ferry_tensor *dst = out ? out : ferry__new_like(a, rt, a->ndim, a->shape);
    if (!dst) {
        *st = ferry_last_status();
        return true;
    }
    int64_t numel = ferry__numel(a->ndim, a->shape);
    *st = FERRY_OK;
    if (numel > 0) {
        operand oo, oa, ob;
        flat_operand(&oo, dst, numel);
        flat_operand(&oa, a, numel);
        flat_operand(&ob, b, numel);
        *st = ferry__launch(K_BINARY, op, &oo, &oa, &ob);
    }
    if (!out)
        *st = ferry__deliver(NULL, dst, *st, result);
    return true;
}

static ferry_status binary_forward(ferry_binary_op op, ferry_tensor *out, ferry_tensor *a,
                                   ferry_tensor *b, const ferry_scalar *scalar,
                                   ferry_tensor **result)
{
    ferry_status st;
    if (!scalar && binary_dense(op, out, a, b, result, &st))
        return st;
    const char *fn = binary_names[op];
    ferry_dtype ct;
    st = ferry__binary_operands(fn, a, b, scalar, &ct);
    if (st != FERRY_OK)
        return st;
    if (op == FERRY_BINARY_SUB) { /* PyTorch's sub_check, both of its messages */
        bool a_bool = a->dtype == FERRY_BOOL;
        bool b_bool = scalar ? scalar->kind == FERRY_SCALAR_BOOL : b->dtype == FERRY_BOOL;
        if (a_bool && b_bool)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "Subtraction, the `-` operator, with two bool tensors is not "
                                "supported. Use the `^` or `logical_xor()` operator instead.");
        if (a_bool || b_bool)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "Subtraction, the `-` operator, with a bool tensor is not "
                                "supported. If you are trying to invert a mask, use the `~` or "
                                "`logical_not()` operator instead.");
    }
    /* For bools x ** y is x || !y, which is x >= y: every backend has that kernel. */
    if (op == FERRY_BINARY_POW && ct == FERRY_BOOL)
        op = FERRY_BINARY_GE;
    if (op == FERRY_BINARY_POW && scalar && !ferry_dtype_is_floating(ct) &&
        scalar->kind == FERRY_SCALAR_INT && scalar->value.i < 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "Integers to negative integer powers are not allowed.");
    if (op == FERRY_BINARY_DIV && !ferry_dtype_is_floating(ct))
        ct = FERRY_FLOAT32; /* true division */
    ferry_dtype rt = is_comparison(op) ? FERRY_BOOL : ct;

    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    /* A scalar broadcasts to a's shape. */
    if ((st = ferry__broadcast_shape(a, scalar ? a : b, &ndim, shape)) != FERRY_OK)
        return st;
    if (out && (st = ferry__check_out(fn, out, a, ndim, shape, rt)) != FERRY_OK)
        return st;
    /* Operands already of the compute dtype, and an out that takes the result as it is,
     * are used without taking references: each atomic count costs as much as dozens of
     * the instructions a 1-element op is made of. Only conversions are released. */
    ferry_tensor *ca = a->dtype == ct ? a : ferry__as_dtype(a, ct);
    ferry_tensor *cb = !ca || scalar ? NULL : b->dtype == ct ? b : ferry__as_dtype(b, ct);
    ferry_tensor *dst = NULL;
    if (ca && (cb || scalar)) {
        if (!out || out->dtype != rt || ferry__overlaps(out, a) ||
            (!scalar && ferry__overlaps(out, b)))
            dst = ferry__new_like(a, rt, ndim, shape);
        else
            dst = out;
    }
    if (dst) {
        st = FERRY_OK;
        if (ferry__numel(ndim, shape) > 0)
            st = scalar ? launch_scalar(op, dst, ca, ct, scalar, ndim, shape)
                        : launch_tensors(op, dst, ca, cb, ndim, shape);
    } else {
        st = ferry_last_status();
    }
    if (ca != a)
        ferry_tensor_release(ca);
    if (cb != b)
        ferry_tensor_release(cb);
    if (!dst || dst == out)
        return st;
    return ferry__deliver(out, dst, st, result);
}

/* ---- backward of elementwise binary ops ---- */

/* Saved slots: 0 = a, 1 = b, 2 = the result. */
static ferry_status binary_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    ferry_binary_op op = (ferry_binary_op)p[0];
    bool has_scalar = p[1] != 0;
    double k = *ferry__node_scalar(n);
    bool na = ferry__node_needs(n, 0), nb = ferry__node_needs(n, 1);
    ferry_tensor *a = ferry__saved_in(&s, n, 0), *b = ferry__saved_in(&s, n, 1), *r = ferry__saved_in(&s, n, 2);
    switch (op) {
    case FERRY_BINARY_ADD:
        if (na)
            grads[0] = keep(g);
        if (nb)
            grads[1] = keep(g);
        break;
    case FERRY_BINARY_SUB:
        if (na)
            grads[0] = keep(g);
        if (nb)
            grads[1] = keep(STEP(&s, ferry_neg(g)));
        break;
    case FERRY_BINARY_MUL:
        if (has_scalar) {
            grads[0] = keep(STEP(&s, ferry_mul_scalar(g, k)));
            break;
        }
        if (na)
            grads[0] = keep(STEP(&s, ferry_mul(g, b)));
        if (nb)
            grads[1] = keep(STEP(&s, ferry_mul(g, a)));
        break;
    case FERRY_BINARY_DIV: {
        if (has_scalar) {
            grads[0] = keep(STEP(&s, ferry_div_scalar(g, k)));
            break;
        }
        ferry_tensor *ga = STEP(&s, ferry_div(g, b));
        if (na)
            grads[0] = keep(ga);
        if (nb) {
            ferry_tensor *q = STEP(&s, ferry_div(a, b));
            ferry_tensor *m = STEP(&s, ferry_mul(ga, q));
            grads[1] = keep(STEP(&s, ferry_neg(m)));
        }
        break;
    }
    case FERRY_BINARY_POW: {
        if (has_scalar) {
            if (k == 0.0) {
                grads[0] = keep(STEP(&s, ferry_mul_scalar(g, 0.0)));
                break;
            }
            ferry_tensor *pw = STEP(&s, ferry_pow_scalar(a, k - 1.0));
            ferry_tensor *m = STEP(&s, ferry_mul_scalar(pw, k));
            grads[0] = keep(STEP(&s, ferry_mul(g, m)));
            break;
        }
        if (na) {
            ferry_tensor *e = STEP(&s, ferry_sub_scalar(b, 1.0));
            ferry_tensor *pw = STEP(&s, ferry_pow(a, e));
            ferry_tensor *m = STEP(&s, ferry_mul(pw, b));
            grads[0] = keep(STEP(&s, ferry_mul(g, m)));
        }
        if (nb) {
            /* PyTorch's mask: where a == 0 (and b >= 0) the gradient is 0, not NaN;
             * log(a + (a == 0)) is 0 there. */
            ferry_tensor *z = STEP(&s, ferry_eq_scalar(a, 0.0));
            ferry_tensor *a1 = STEP(&s, ferry_add(a, z));
            ferry_tensor *l = STEP(&s, ferry_log(a1));
            ferry_tensor *m = STEP(&s, ferry_mul(r, l));
            grads[1] = keep(STEP(&s, ferry_mul(g, m)));
        }
        break;
    }
    case FERRY_BINARY_MAXIMUM:
    case FERRY_BINARY_MINIMUM: {
        bool is_max = op == FERRY_BINARY_MAXIMUM;
        if (has_scalar) {
            /* clamp_min / clamp_max: the gradient passes where the input was kept. */
            ferry_tensor *m = STEP(&s, is_max ? ferry_ge_scalar(a, k) : ferry_le_scalar(a, k));
            grads[0] = keep(STEP(&s, ferry_mul(g, m)));
            break;
        }
        /* Ties split the gradient in halves, as PyTorch. */
        ferry_tensor *eq = STEP(&s, ferry_eq(a, b));
        ferry_tensor *half = STEP(&s, ferry_mul_scalar(eq, 0.5));
        if (na) {
            ferry_tensor *w = STEP(&s, is_max ? ferry_gt(a, b) : ferry_lt(a, b));
            ferry_tensor *m = STEP(&s, ferry_add(half, w));
            grads[0] = keep(STEP(&s, ferry_mul(g, m)));
        }
        if (nb) {
            ferry_tensor *w = STEP(&s, is_max ? ferry_lt(a, b) : ferry_gt(a, b));
            ferry_tensor *m = STEP(&s, ferry_add(half, w));
            grads[1] = keep(STEP(&s, ferry_mul(g, m)));
        }
        break;
    }
    default:
        return ferry__error(FERRY_ERR_UNSUPPORTED, "%s has no derivative", binary_names[op]);
    }
    return ferry__scope_end(&s, grads, 2);
}

static const char *binary_node_name(ferry_binary_op op, bool scalar)
{
    static const char *const tensor_names[] = {"AddBackward0", "SubBackward0", "MulBackward0",
                                               "DivBackward0", "PowBackward1",
                                               "MaximumBackward0", "MinimumBackward0"};
    /* PyTorch's Python operators wrap a number into a tensor, so `x * 2` is
     * MulBackward0 there too; only pow keeps its Tensor_Scalar node. */
    static const char *const scalar_names[] = {"AddBackward0", "SubBackward0", "MulBackward0",
                                               "DivBackward0", "PowBackward0",
                                               "ClampMinBackward0", "ClampMaxBackward0"};
    return scalar ? scalar_names[op] : tensor_names[op];
}

static ferry_status binary_record(ferry_binary_op op, ferry_tensor *a, ferry_tensor *b,
                                  const ferry_scalar *scalar, ferry_tensor **result)
{
    ferry_tensor *inputs[2] = {a, scalar ? NULL : b};
    ferry_node *n = ferry__node_create(binary_node_name(op, scalar != NULL), binary_backward,
                                       scalar ? 1 : 2, inputs);
    if (!n)
        return ferry__attach_or_fail(NULL, ferry_last_status(), result);
    int64_t *p = ferry__node_params_alloc(n, 2);
    p[0] = op;
    p[1] = scalar != NULL;
    if (scalar)
        *ferry__node_scalar(n) = scalar->kind == FERRY_SCALAR_FLOAT ? scalar->value.f
                                 : scalar->kind == FERRY_SCALAR_INT ? (double)scalar->value.i
                                                                    : (double)scalar->value.b;
    bool na = a->requires_grad, nb = !scalar && b->requires_grad;
    bool save_a = false, save_b = false, save_r = false;
    switch (op) {
    case FERRY_BINARY_MUL: save_a = nb, save_b = na && !scalar; break;
    case FERRY_BINARY_DIV: save_a = nb, save_b = !scalar; break;
    case FERRY_BINARY_POW: save_a = true, save_b = !scalar, save_r = nb; break;
    case FERRY_BINARY_MAXIMUM:
    case FERRY_BINARY_MINIMUM: save_a = true, save_b = !scalar; break;
    default: break;
    }
    ferry_status st = FERRY_OK;
    if (save_a)
        st = ferry__node_save(n, 0, a, false);
    if (st == FERRY_OK && save_b)
        st = ferry__node_save(n, 1, b, false);
    if (st == FERRY_OK && save_r)
        st = ferry__node_save(n, 2, *result, true);
    return ferry__attach_or_fail(n, st, result);
}

static ferry_status binary(ferry_binary_op op, ferry_tensor *out, ferry_tensor *a, ferry_tensor *b,
                           const ferry_scalar *scalar, ferry_tensor **result)
{
    bool want = ferry__grad_wanted(a, scalar ? NULL : b) && !is_comparison(op);
    ferry_status st;
    if (out) {
        if ((st = ferry__inplace_check(binary_names[op], out, want)) != FERRY_OK)
            return st;
        st = binary_forward(op, out, a, b, scalar, result);
        if (st == FERRY_OK)
            ferry__version_bump(out);
        return st;
    }
    if (!want)
        return binary_forward(op, out, a, b, scalar, result);
    bool prev = pause_grad();
    st = binary_forward(op, out, a, b, scalar, result);
    resume_grad(prev);
    if (st != FERRY_OK || !ferry_dtype_is_floating((*result)->dtype))
        return st;
    return binary_record(op, a, b, scalar, result);
}

#define FERRY_DEFINE_BINARY_(name)                                                          \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *a, ferry_tensor *b)                    \
    {                                                                                       \
        ferry_tensor *r = NULL;                                                             \
        binary(FERRY_BINARY_##name##_OP_, NULL, a, b, NULL, &r);                            \
        return r;                                                                           \
    }                                                                                       \
    FERRY_API ferry_tensor *ferry_##name##_scalar_ex(ferry_tensor *a, ferry_scalar b)         \
    {                                                                                       \
        ferry_tensor *r = NULL;                                                             \
        binary(FERRY_BINARY_##name##_OP_, NULL, a, NULL, &b, &r);                           \
        return r;                                                                           \
    }                                                                                       \
    FERRY_API ferry_tensor *ferry_##name##_scalar(ferry_tensor *a, double b)                  \
    {                                                                                       \
        return ferry_##name##_scalar_ex(a, ferry__scalar_of_double(b));                            \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *a,             \
                                              ferry_tensor *b)                               \
    {                                                                                       \
        ferry_status st = ferry__check_tensor(out, #name "_out");                           \
        return st != FERRY_OK ? st : binary(FERRY_BINARY_##name##_OP_, out, a, b, NULL, NULL); \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_scalar_ex_out(ferry_tensor *out, ferry_tensor *a,   \
                                                        ferry_scalar b)                     \
    {                                                                                       \
        ferry_status st = ferry__check_tensor(out, #name "_scalar_out");                    \
        return st != FERRY_OK ? st : binary(FERRY_BINARY_##name##_OP_, out, a, NULL, &b, NULL); \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_scalar_out(ferry_tensor *out, ferry_tensor *a,      \
                                                     double b)                              \
    {                                                                                       \
        return ferry_##name##_scalar_ex_out(out, a, ferry__scalar_of_double(b));                   \
    }

/* Lower-case names to the enum, for the generator above. */
#define FERRY_BINARY_add_OP_ FERRY_BINARY_ADD
#define FERRY_BINARY_sub_OP_ FERRY_BINARY_SUB
#define FERRY_BINARY_mul_OP_ FERRY_BINARY_MUL
#define FERRY_BINARY_div_OP_ FERRY_BINARY_DIV
#define FERRY_BINARY_pow_OP_ FERRY_BINARY_POW
#define FERRY_BINARY_maximum_OP_ FERRY_BINARY_MAXIMUM
#define FERRY_BINARY_minimum_OP_ FERRY_BINARY_MINIMUM
#define FERRY_BINARY_eq_OP_ FERRY_BINARY_EQ
#define FERRY_BINARY_ne_OP_ FERRY_BINARY_NE
#define FERRY_BINARY_lt_OP_ FERRY_BINARY_LT
#define FERRY_BINARY_le_OP_ FERRY_BINARY_LE
#define FERRY_BINARY_gt_OP_ FERRY_BINARY_GT
#define FERRY_BINARY_ge_OP_ FERRY_BINARY_GE

FERRY_BINARY_OPS_(FERRY_DEFINE_BINARY_)

/* ---- elementwise unary ---- */

static const char *const unary_names[] = {"neg",  "abs", "exp",  "log",     "sqrt",
                                          "sin",  "cos", "tanh", "sigmoid", "relu"};

const char *ferry__unary_name(int op)
{
    return op >= 0 && op < (int)(sizeof unary_names / sizeof unary_names[0]) ? unary_names[op] : "?";
}

static ferry_status unary_forward(ferry_unary_op op, ferry_tensor *out, ferry_tensor *a,
                                  ferry_tensor **result)
{
    const char *fn = unary_names[op];
    ferry_status st = ferry__check_tensor(a, fn);
    if (st != FERRY_OK)
        return st;
    if (op == FERRY_UNARY_NEG && a->dtype == FERRY_BOOL)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "Negation, the `-` operator, on a bool tensor is not supported. If "
                            "you are trying to invert a mask, use the `~` or `logical_not()` "
                            "operator instead.");
    if (op == FERRY_UNARY_RELU && a->dtype == FERRY_BOOL)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "Boolean inputs not supported for relu");
    bool transcendental = op != FERRY_UNARY_NEG && op != FERRY_UNARY_ABS && op != FERRY_UNARY_RELU;
    ferry_dtype ct = transcendental && !ferry_dtype_is_floating(a->dtype) ? FERRY_FLOAT32 : a->dtype;
    if (out && (st = ferry__check_out(fn, out, a, a->ndim, a->shape, ct)) != FERRY_OK)
        return st;
    ferry_tensor *ca = ferry__as_dtype(a, ct);
    if (!ca)
        return ferry_last_status();
    ferry_tensor *dst = (out && out->dtype == ct && !ferry__overlaps(out, a)) ? ferry_tensor_retain(out)
                                                                      : ferry__new_like(a, ct, a->ndim,
                                                                                 a->shape);
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
        st = ferry__launch(K_UNARY, op, &oo, &oa, NULL);
    }
    ferry_tensor_release(ca);
    return ferry__deliver(out, dst, st, result);
}

/* ---- backward of elementwise unary ops ---- */

/* Saved slots: 0 = the input, 2 = the result. */
static ferry_status unary_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    ferry_unary_op op = (ferry_unary_op)ferry__node_params(n, NULL)[0];
    ferry_tensor *a = ferry__saved_in(&s, n, 0), *r = ferry__saved_in(&s, n, 2);
    ferry_tensor *d = NULL; /* d(result)/d(input), when the formula is g * d */
    switch (op) {
    case FERRY_UNARY_NEG: grads[0] = keep(STEP(&s, ferry_neg(g))); break;
    case FERRY_UNARY_ABS: {
        ferry_tensor *pos = STEP(&s, ferry_gt_scalar(a, 0.0));
        ferry_tensor *neg = STEP(&s, ferry_lt_scalar(a, 0.0));
        ferry_tensor *gp = STEP(&s, ferry_mul(g, pos));
        ferry_tensor *gn = STEP(&s, ferry_mul(g, neg));
        grads[0] = keep(STEP(&s, ferry_sub(gp, gn)));
        break;
    }
    case FERRY_UNARY_EXP: d = r; break;
    case FERRY_UNARY_LOG: grads[0] = keep(STEP(&s, ferry_div(g, a))); break;
    case FERRY_UNARY_SQRT: {
        ferry_tensor *two_r = STEP(&s, ferry_mul_scalar(r, 2.0));
        grads[0] = keep(STEP(&s, ferry_div(g, two_r)));
        break;
    }
    case FERRY_UNARY_SIN: d = STEP(&s, ferry_cos(a)); break;
    case FERRY_UNARY_COS: {
        ferry_tensor *sn = STEP(&s, ferry_sin(a));
        d = STEP(&s, ferry_neg(sn));
        break;
    }
    case FERRY_UNARY_TANH: { /* 1 - r^2 */
        ferry_tensor *sq = STEP(&s, ferry_mul(r, r));
        ferry_tensor *ng = STEP(&s, ferry_neg(sq));
        d = STEP(&s, ferry_add_scalar(ng, 1.0));
        break;
    }
    case FERRY_UNARY_SIGMOID: { /* r (1 - r) */
        ferry_tensor *ng = STEP(&s, ferry_neg(r));
        ferry_tensor *om = STEP(&s, ferry_add_scalar(ng, 1.0));
        d = STEP(&s, ferry_mul(r, om));
        break;
    }
    case FERRY_UNARY_RELU: d = STEP(&s, ferry_gt_scalar(r, 0.0)); break;
    }
    if (d)
        grads[0] = keep(STEP(&s, ferry_mul(g, d)));
    return ferry__scope_end(&s, grads, 1);
}

static ferry_status unary(ferry_unary_op op, ferry_tensor *out, ferry_tensor *a,
                          ferry_tensor **result)
{
    static const char *const names[] = {"NegBackward0",  "AbsBackward0",  "ExpBackward0",
                                        "LogBackward0",  "SqrtBackward0", "SinBackward0",
                                        "CosBackward0",  "TanhBackward0", "SigmoidBackward0",
                                        "ReluBackward0"};
    bool want = ferry__grad_wanted(a, NULL);
    ferry_status st;
    if (out) {
        if ((st = ferry__inplace_check(unary_names[op], out, want)) != FERRY_OK)
            return st;
        st = unary_forward(op, out, a, result);
        if (st == FERRY_OK)
            ferry__version_bump(out);
        return st;
    }
    if (!want)
        return unary_forward(op, out, a, result);
    bool prev = pause_grad();
    st = unary_forward(op, out, a, result);
    resume_grad(prev);
    if (st != FERRY_OK || !ferry_dtype_is_floating((*result)->dtype))
        return st;
    ferry_node *n = ferry__node_create(names[op], unary_backward, 1, &a);
    if (!n)
        return ferry__attach_or_fail(NULL, ferry_last_status(), result);
    ferry__node_params_alloc(n, 1)[0] = op;
    bool by_input = op == FERRY_UNARY_ABS || op == FERRY_UNARY_LOG || op == FERRY_UNARY_SIN ||
                    op == FERRY_UNARY_COS;
    bool by_result = op == FERRY_UNARY_EXP || op == FERRY_UNARY_SQRT || op == FERRY_UNARY_TANH ||
                     op == FERRY_UNARY_SIGMOID || op == FERRY_UNARY_RELU;
    st = FERRY_OK;
    if (by_input)
        st = ferry__node_save(n, 0, a, false);
    if (st == FERRY_OK && by_result)
        st = ferry__node_save(n, 2, *result, true);
    return ferry__attach_or_fail(n, st, result);
}

#define FERRY_DEFINE_UNARY_(name)                                                           \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *a)                                     \
    {                                                                                       \
        ferry_tensor *r = NULL;                                                             \
        unary(FERRY_UNARY_##name##_OP_, NULL, a, &r);                                       \
        return r;                                                                           \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *a)             \
    {                                                                                       \
        ferry_status st = ferry__check_tensor(out, #name "_out");                           \
        return st != FERRY_OK ? st : unary(FERRY_UNARY_##name##_OP_, out, a, NULL);         \
    }

#define FERRY_UNARY_neg_OP_ FERRY_UNARY_NEG
#define FERRY_UNARY_abs_OP_ FERRY_UNARY_ABS
#define FERRY_UNARY_exp_OP_ FERRY_UNARY_EXP
#define FERRY_UNARY_log_OP_ FERRY_UNARY_LOG
#define FERRY_UNARY_sqrt_OP_ FERRY_UNARY_SQRT
#define FERRY_UNARY_sin_OP_ FERRY_UNARY_SIN
#define FERRY_UNARY_cos_OP_ FERRY_UNARY_COS
#define FERRY_UNARY_tanh_OP_ FERRY_UNARY_TANH
#define FERRY_UNARY_sigmoid_OP_ FERRY_UNARY_SIGMOID
#define FERRY_UNARY_relu_OP_ FERRY_UNARY_RELU

FERRY_UNARY_OPS_(FERRY_DEFINE_UNARY_)

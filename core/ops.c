/* Operation dispatch: the core owns broadcasting, type promotion, output allocation and
 * `_out` checks, collapsing of contiguous dims, and the CPU fallback; a backend only sees
 * plain descriptors (DESIGN.md, Kernels). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A tensor as one kernel call sees it: its memory, with geometry the dispatcher chose
 * (broadcast strides of 0, collapsed dims, reduced dims of extent 1). */
typedef struct operand {
    const ferry_tensor *t;
    int32_t ndim;
    int64_t shape[FERRY_MAX_DIMS];
    int64_t strides[FERRY_MAX_DIMS];
} operand;

typedef enum kernel_kind { K_UNARY, K_BINARY, K_REDUCE, K_MATMUL } kernel_kind;

static const ferry_op kind_op[] = {FERRY_OP_UNARY, FERRY_OP_BINARY, FERRY_OP_REDUCE,
                                   FERRY_OP_MATMUL};
static const char *const kind_name[] = {"unary", "binary", "reduce", "matmul"};

static void operand_of(operand *o, const ferry_tensor *t)
{
    o->t = t;
    o->ndim = t->ndim;
    memcpy(o->shape, t->shape, (size_t)t->ndim * sizeof o->shape[0]);
    memcpy(o->strides, t->strides, (size_t)t->ndim * sizeof o->strides[0]);
}

static void describe(const operand *o, const ferry_tensor *mem, ferry_kernel_tensor *k)
{
    k->buffer = mem->storage->buffer;
    k->byte_offset = mem->byte_offset;
    k->dtype = o->t->dtype;
    k->ndim = o->ndim;
    k->shape = o->shape;
    k->strides = o->strides;
}

static ferry_status call(ferry_backend *be, int32_t dev, kernel_kind kind, int subop,
                         const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                         const ferry_kernel_tensor *b)
{
    switch (kind) {
    case K_UNARY: return ferry__be_unary(be, dev, (ferry_unary_op)subop, out, a);
    case K_BINARY: return ferry__be_binary(be, dev, (ferry_binary_op)subop, out, a, b);
    case K_REDUCE: return ferry__be_reduce(be, dev, (ferry_reduce_op)subop, out, a);
    case K_MATMUL: return ferry__be_matmul(be, dev, out, a, b);
    }
    return FERRY_ERR_UNSUPPORTED;
}

/* Runs one kernel on out's device; when that backend lacks it, runs the CPU backend's
 * on host copies of the inputs and a host mirror of out (DESIGN.md: a new plugin works
 * as soon as it can allocate and copy). */
static ferry_status launch(kernel_kind kind, int subop, operand *out, operand *a, operand *b)
{
    ferry_backend *be = out->t->storage->backend;
    int32_t dev = out->t->storage->device;
    ferry_kernel_tensor ko, ka, kb;
    describe(out, out->t, &ko);
    describe(a, a->t, &ka);
    if (b)
        describe(b, b->t, &kb);
    ferry_status st = call(be, dev, kind, subop, &ko, &ka, b ? &kb : NULL);
    if (st != FERRY_ERR_UNSUPPORTED)
        return st;

    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return ferry_last_status();
    if (be == cpu)
        return ferry__error(FERRY_ERR_UNSUPPORTED, "the cpu backend has no %s kernel for %s",
                            kind_name[kind], ferry_dtype_name(a->t->dtype));
    unsigned bit = 1u << kind_op[kind];
    if (!(atomic_fetch_or(&be->fallback_logged, bit) & bit))
        ferry__debug("fallback", "%s has no %s kernel for %s: running it on the cpu through "
                     "staging", be->name, kind_name[kind], ferry_dtype_name(a->t->dtype));
    ferry_tensor *ha = ferry__stage_to_host(a->t);
    ferry_tensor *hb = b && ha ? ferry__stage_to_host(b->t) : NULL;
    ferry_tensor *ho = ha && (!b || hb) ? ferry__mirror_begin((ferry_tensor *)out->t) : NULL;
    if (!ho) {
        ferry_tensor_release(ha);
        ferry_tensor_release(hb);
        return ferry_last_status();
    }
    describe(out, ho, &ko);
    describe(a, ha, &ka);
    if (b)
        describe(b, hb, &kb);
    st = call(cpu, 0, kind, subop, &ko, &ka, b ? &kb : NULL);
    if (st == FERRY_ERR_UNSUPPORTED)
        st = ferry__error(st, "no %s kernel for %s on %s, nor on the cpu", kind_name[kind],
                          ferry_dtype_name(a->t->dtype), be->name);
    ferry_tensor_release(ha);
    ferry_tensor_release(hb);
    if (st == FERRY_OK)
        return ferry__mirror_end((ferry_tensor *)out->t, ho);
    ferry_tensor_release(ho);
    return st;
}

/* Merges adjacent dims that are contiguous with each other in every operand, and drops
 * size-1 dims, so the common case reaches a backend as one flat loop. */
static void collapse(operand **ops, int nops)
{
    int ndim = ops[0]->ndim;
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (ops[0]->shape[d] == 1)
            continue;
        if (n > 0) {
            bool merge = true;
            for (int k = 0; k < nops; k++)
                if (ops[k]->strides[n - 1] != ops[k]->strides[d] * ops[k]->shape[d])
                    merge = false;
            if (merge) {
                for (int k = 0; k < nops; k++) {
                    ops[k]->shape[n - 1] *= ops[k]->shape[d];
                    ops[k]->strides[n - 1] = ops[k]->strides[d];
                }
                continue;
            }
        }
        for (int k = 0; k < nops; k++) {
            ops[k]->shape[n] = ops[k]->shape[d];
            ops[k]->strides[n] = ops[k]->strides[d];
        }
        n++;
    }
    for (int k = 0; k < nops; k++)
        ops[k]->ndim = n;
}

/* ---- type promotion (PyTorch's promoteTypes) ---- */

static int category(ferry_dtype d)
{
    return d == FERRY_BOOL ? 0 : ferry_dtype_is_floating(d) ? 2 : 1;
}

ferry_dtype ferry__promote(ferry_dtype a, ferry_dtype b)
{
    if (a == b)
        return a;
    int ca = category(a), cb = category(b);
    if (ca != cb)
        return ca > cb ? a : b;
    if (ca == 2) {
        if ((a == FERRY_FLOAT16 && b == FERRY_BFLOAT16) || (a == FERRY_BFLOAT16 && b == FERRY_FLOAT16))
            return FERRY_FLOAT32;
        return ferry_dtype_size(a) >= ferry_dtype_size(b) ? a : b;
    }
    /* Integers: uint8 with a signed type needs the next signed width up. */
    if (a == FERRY_UINT8 || b == FERRY_UINT8) {
        ferry_dtype other = a == FERRY_UINT8 ? b : a;
        return other == FERRY_INT8 ? FERRY_INT16 : other;
    }
    return ferry_dtype_size(a) >= ferry_dtype_size(b) ? a : b;
}

/* PyTorch's result_type for two tensors: a 0-d operand beside a dimensioned one only
 * matters when it is of a higher category (float32 tensor + float64 0-d -> float32, but
 * int32 tensor + float64 0-d -> float64). */
static ferry_dtype promote_operands(const ferry_tensor *a, const ferry_tensor *b)
{
    bool a0 = a->ndim == 0, b0 = b->ndim == 0;
    if (a0 == b0)
        return ferry__promote(a->dtype, b->dtype);
    ferry_dtype dim = a0 ? b->dtype : a->dtype, zero = a0 ? a->dtype : b->dtype;
    return category(zero) > category(dim) ? ferry__promote(dim, zero) : dim;
}

/* A scalar as one element of the compute dtype: an int scalar wraps as PyTorch's
 * static_cast does (uint8 tensor + -1 adds 255), anything else converts as a cast. */
static void scalar_element(ferry_dtype dt, const ferry_scalar *v, void *out)
{
    if (v->kind == FERRY_SCALAR_FLOAT) {
        ferry__scalar_from_double(dt, v->value.f, out);
        return;
    }
    int64_t i = v->kind == FERRY_SCALAR_BOOL ? (int64_t)v->value.b : v->value.i;
    uint64_t u = (uint64_t)i;
    switch (dt) {
    case FERRY_BOOL: *(uint8_t *)out = i != 0; return;
    case FERRY_UINT8:
    case FERRY_INT8: *(uint8_t *)out = (uint8_t)u; return;
    case FERRY_INT16: *(uint16_t *)out = (uint16_t)u; return;
    case FERRY_INT32: *(uint32_t *)out = (uint32_t)u; return;
    case FERRY_INT64: *(uint64_t *)out = u; return;
    default: ferry__scalar_from_double(dt, (double)i, out); return;
    }
}

/* A Python-style scalar changes a tensor's category, never its width. */
static ferry_dtype promote_scalar(ferry_dtype t, const ferry_scalar *v)
{
    int cs = (int)v->kind;
    if (cs <= category(t))
        return t;
    return cs == 1 ? FERRY_INT64 : FERRY_FLOAT32;
}

/* What C's double means as a scalar: integral values are int scalars. */
static ferry_scalar scalar_of_double(double v)
{
    ferry_scalar s;
    if (isfinite(v) && v == trunc(v) && fabs(v) < 9.2e18) {
        s.kind = FERRY_SCALAR_INT;
        s.value.i = (int64_t)v;
    } else {
        s.kind = FERRY_SCALAR_FLOAT;
        s.value.f = v;
    }
    return s;
}

/* PyTorch's canCast: no float into an integer, no non-bool into bool. */
static bool can_cast(ferry_dtype from, ferry_dtype to)
{
    return category(from) <= category(to);
}

/* ---- shared checks ---- */

static ferry_status check_out(const char *fn, const ferry_tensor *out, const ferry_tensor *ref,
                              int ndim, const int64_t *shape, ferry_dtype result)
{
    ferry_status st = ferry__check_tensor(out, fn);
    if (st != FERRY_OK)
        return st;
    if ((st = ferry__check_same_device(ref, out)) != FERRY_OK)
        return st;
    if (out->read_only)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: out is read-only (it views memory of a read-only array); write "
                            "into a writable tensor",
                            fn);
    bool same = out->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = out->shape[i] == shape[i];
    if (!same) {
        char want[512], have[512];
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: out has shape %s, but the result has shape %s", fn,
                            ferry__shape_str(out->ndim, out->shape, have, sizeof have),
                            ferry__shape_str(ndim, shape, want, sizeof want));
    }
    if (!can_cast(result, out->dtype))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: result type %s can't be cast to the desired output type %s", fn,
                            ferry_dtype_name(result), ferry_dtype_name(out->dtype));
    return ferry__check_writable_once(out);
}

/* Whether writing out could change an input before the kernel reads it: shared memory
 * that is not the exact same view (an exact alias is fine elementwise). */
static bool overlaps(const ferry_tensor *out, const ferry_tensor *in)
{
    return in && ferry__shares_memory(out, in) && !ferry__same_view(out, in);
}

/* `t` converted to dtype on its device (t itself, retained, if already so). */
static ferry_tensor *as_dtype(ferry_tensor *t, ferry_dtype dtype)
{
    return ferry_tensor_to_dtype(t, dtype);
}

static ferry_tensor *new_like(const ferry_tensor *ref, ferry_dtype dtype, int ndim,
                              const int64_t *shape)
{
    return ferry__tensor_empty_on(ref->storage->backend, ref->storage->device, dtype, ndim, shape);
}

/* Hands the kernel's destination over: as the new result, or into the caller's out.
 * Where out could not take the result directly (another dtype, or overlapping an
 * input), the kernel wrote a temporary that is copied over now. */
static ferry_status deliver(ferry_tensor *out, ferry_tensor *dst, ferry_status st,
                            ferry_tensor **result)
{
    if (out) {
        if (st == FERRY_OK && dst != out)
            st = ferry__copy_into(out, dst);
        ferry_tensor_release(dst);
        return st;
    }
    if (st != FERRY_OK) {
        ferry_tensor_release(dst);
        return st;
    }
    *result = dst;
    return FERRY_OK;
}

/* ---- broadcasting ---- */

static ferry_status broadcast_shape(const ferry_tensor *a, const ferry_tensor *b, int *ndim,
                                    int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = a->ndim - n + i, ib = b->ndim - n + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char as[512], bs[512];
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "The size of tensor a (%lld) must match the size of tensor b "
                                "(%lld) at non-singleton dimension %d (shapes %s and %s)",
                                (long long)sa, (long long)sb, i,
                                ferry__shape_str(a->ndim, a->shape, as, sizeof as),
                                ferry__shape_str(b->ndim, b->shape, bs, sizeof bs));
        }
        shape[i] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return FERRY_OK;
}

/* t's geometry stretched to (ndim, shape): missing and size-1 dims get stride 0. */
static void broadcast_operand(operand *o, const ferry_tensor *t, int ndim, const int64_t *shape)
{
    o->t = t;
    o->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        int it = t->ndim - ndim + i;
        o->shape[i] = shape[i];
        o->strides[i] = (it >= 0 && t->shape[it] == shape[i]) ? t->strides[it] : 0;
    }
}

/* ---- autograd plumbing shared by the families below ---- */

/* Temporaries of a backward formula, released together; after the first failure the
 * following steps are skipped, so the first error's message is the one reported. */
typedef struct scope {
    ferry_tensor *t[24];
    int n;
    bool failed;
} scope;

static ferry_tensor *put(scope *s, ferry_tensor *r)
{
    if (!r)
        s->failed = true;
    else if (s->n < (int)(sizeof s->t / sizeof s->t[0]))
        s->t[s->n++] = r;
    return r;
}

/* One step of a formula: skipped once something failed. */
#define STEP(s, expr) ((s)->failed ? NULL : put((s), (expr)))

static ferry_tensor *saved_in(scope *s, ferry_node *n, int i)
{
    if (s->failed)
        return NULL;
    ferry_status st = FERRY_OK;
    ferry_tensor *t = ferry__node_saved(n, i, &st);
    if (st != FERRY_OK) {
        s->failed = true;
        return NULL;
    }
    return t ? put(s, t) : NULL;
}

/* A formula's result, outliving its scope. */
static ferry_tensor *keep(ferry_tensor *t)
{
    return ferry_tensor_retain(t);
}

static ferry_status scope_end(scope *s, ferry_tensor **grads, int n)
{
    ferry_status st = s->failed ? ferry_last_status() : FERRY_OK;
    if (s->failed)
        for (int i = 0; i < n; i++) {
            ferry_tensor_release(grads[i]);
            grads[i] = NULL;
        }
    for (int i = 0; i < s->n; i++)
        ferry_tensor_release(s->t[i]);
    return st;
}

/* Runs a forward with recording paused (conversions inside an op must not record
 * nodes of their own), then hands the result to `record` when grad is wanted. */
static bool pause_grad(void)
{
    return ferry_set_grad_enabled(false);
}

static void resume_grad(bool prev)
{
    ferry_set_grad_enabled(prev);
}

/* On a recording failure the op fails: a result must not silently lose its gradient. */
static ferry_status attach_or_fail(ferry_node *n, ferry_status st, ferry_tensor **result)
{
    if (st != FERRY_OK) {
        ferry__node_release(n);
        ferry_tensor_release(*result);
        *result = NULL;
        return st;
    }
    ferry__node_attach(n, *result);
    return FERRY_OK;
}

/* ---- elementwise binary ---- */

static const char *const binary_names[] = {"add", "sub",     "mul", "div", "pow", "maximum",
                                           "minimum", "eq", "ne",  "lt",  "le",  "gt", "ge"};

static bool is_comparison(ferry_binary_op op)
{
    return op >= FERRY_BINARY_EQ;
}

static ferry_status binary_forward(ferry_binary_op op, ferry_tensor *out, ferry_tensor *a,
                                   ferry_tensor *b, const ferry_scalar *scalar,
                                   ferry_tensor **result)
{
    const char *fn = binary_names[op];
    ferry_status st = ferry__check_tensor(a, fn);
    if (st != FERRY_OK)
        return st;
    if (!scalar) {
        if ((st = ferry__check_tensor(b, fn)) != FERRY_OK)
            return st;
        if ((st = ferry__check_same_device(a, b)) != FERRY_OK)
            return st;
    }
    if (scalar && (unsigned)scalar->kind > FERRY_SCALAR_FLOAT)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: invalid scalar kind %d", fn,
                            (int)scalar->kind);
    ferry_dtype ct = scalar ? promote_scalar(a->dtype, scalar) : promote_operands(a, b);
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

    /* The scalar becomes a 0-d tensor of the compute dtype on a's device. */
    ferry_tensor *sb = NULL;
    if (scalar) {
        unsigned char elem[8];
        scalar_element(ct, scalar, elem);
        sb = ferry__tensor_empty_on(a->storage->backend, a->storage->device, ct, 0, NULL);
        if (!sb)
            return ferry_last_status();
        st = ferry__be_copy_from_host(sb->storage->backend, sb->storage->device, sb->storage->buffer,
                                      sb->byte_offset, elem, ferry_dtype_size(ct));
        if (st != FERRY_OK) {
            ferry_tensor_release(sb);
            return st;
        }
        b = sb;
    }

    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    if ((st = broadcast_shape(a, b, &ndim, shape)) != FERRY_OK) {
        ferry_tensor_release(sb);
        return st;
    }
    if (out && (st = check_out(fn, out, a, ndim, shape, rt)) != FERRY_OK) {
        ferry_tensor_release(sb);
        return st;
    }
    ferry_tensor *ca = as_dtype(a, ct);
    ferry_tensor *cb = ca ? as_dtype(b, ct) : NULL;
    ferry_tensor *dst = NULL;
    if (cb) {
        if (!out)
            dst = new_like(a, rt, ndim, shape);
        else if (out->dtype != rt || overlaps(out, a) || overlaps(out, b))
            dst = new_like(a, rt, ndim, shape);
        else
            dst = ferry_tensor_retain(out);
    }
    if (!dst) {
        ferry_tensor_release(ca);
        ferry_tensor_release(cb);
        ferry_tensor_release(sb);
        return ferry_last_status();
    }
    st = FERRY_OK;
    if (ferry__numel(ndim, shape) > 0) {
        operand oo, oa, ob;
        broadcast_operand(&oo, dst, ndim, shape);
        broadcast_operand(&oa, ca, ndim, shape);
        broadcast_operand(&ob, cb, ndim, shape);
        operand *all[3] = {&oo, &oa, &ob};
        collapse(all, 3);
        st = launch(K_BINARY, op, &oo, &oa, &ob);
    }
    ferry_tensor_release(ca);
    ferry_tensor_release(cb);
    ferry_tensor_release(sb);
    return deliver(out, dst, st, result);
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
    ferry_tensor *a = saved_in(&s, n, 0), *b = saved_in(&s, n, 1), *r = saved_in(&s, n, 2);
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
    return scope_end(&s, grads, 2);
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
        return attach_or_fail(NULL, ferry_last_status(), result);
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
    return attach_or_fail(n, st, result);
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
        return ferry_##name##_scalar_ex(a, scalar_of_double(b));                            \
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
        return ferry_##name##_scalar_ex_out(out, a, scalar_of_double(b));                   \
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
    if (out && (st = check_out(fn, out, a, a->ndim, a->shape, ct)) != FERRY_OK)
        return st;
    ferry_tensor *ca = as_dtype(a, ct);
    if (!ca)
        return ferry_last_status();
    ferry_tensor *dst = (out && out->dtype == ct && !overlaps(out, a)) ? ferry_tensor_retain(out)
                                                                      : new_like(a, ct, a->ndim,
                                                                                 a->shape);
    if (!dst) {
        ferry_tensor_release(ca);
        return ferry_last_status();
    }
    if (ferry__numel(a->ndim, a->shape) > 0) {
        operand oo, oa;
        operand_of(&oo, dst);
        operand_of(&oa, ca);
        operand *all[2] = {&oo, &oa};
        collapse(all, 2);
        st = launch(K_UNARY, op, &oo, &oa, NULL);
    }
    ferry_tensor_release(ca);
    return deliver(out, dst, st, result);
}

/* ---- backward of elementwise unary ops ---- */

/* Saved slots: 0 = the input, 2 = the result. */
static ferry_status unary_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    ferry_unary_op op = (ferry_unary_op)ferry__node_params(n, NULL)[0];
    ferry_tensor *a = saved_in(&s, n, 0), *r = saved_in(&s, n, 2);
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
    return scope_end(&s, grads, 1);
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
        return attach_or_fail(NULL, ferry_last_status(), result);
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
    return attach_or_fail(n, st, result);
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

/* ---- reductions ---- */

static const char *const reduce_names[] = {"sum", "mean", "max", "min", "argmax"};

/* PyTorch's ScalarType names, used in its mean() message. */
static const char *torch_type_name(ferry_dtype d)
{
    static const char *const names[FERRY_NUM_DTYPES] = {"Bool", "Byte",     "Char",  "Short",
                                                        "Int",  "Long",     "Half",  "BFloat16",
                                                        "Float", "Double"};
    return ferry__dtype_valid(d) ? names[d] : "?";
}

static ferry_status reduce_forward(ferry_reduce_op op, ferry_tensor *out, ferry_tensor *t,
                                   int ndims, const int *dims, bool keepdim,
                                   ferry_tensor **result)
{
    const char *fn = reduce_names[op];
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    if (ndims < 0 || ndims > FERRY_MAX_DIMS || (ndims > 0 && !dims))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: invalid dims (ndims %d%s)", fn, ndims,
                            ndims > 0 && !dims ? ", dims NULL" : "");
    bool reduced[FERRY_MAX_DIMS] = {false};
    for (int i = 0; i < ndims; i++) {
        int d = dims[i];
        if ((st = ferry__wrap_dim(&d, t->ndim)) != FERRY_OK)
            return st;
        if (t->ndim == 0)
            continue;
        if (reduced[d])
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "dim %d appears multiple times in the list of dims", d);
        reduced[d] = true;
    }
    if (op == FERRY_REDUCE_ARGMAX && t->dtype == FERRY_BOOL)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "argmax(): not implemented for 'Bool' (cast to an integer dtype "
                            "first)");
    if (op == FERRY_REDUCE_ARGMAX && ndims > 1)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "argmax: reduces one dim or all of them (got %d dims), as "
                            "torch.argmax",
                            ndims);
    bool all = ndims == 0;
    for (int d = 0; all && d < t->ndim; d++)
        reduced[d] = true;

    ferry_dtype rt = t->dtype;
    if (op == FERRY_REDUCE_SUM && !ferry_dtype_is_floating(t->dtype))
        rt = FERRY_INT64;
    if (op == FERRY_REDUCE_ARGMAX)
        rt = FERRY_INT64;
    if (op == FERRY_REDUCE_MEAN && !ferry_dtype_is_floating(t->dtype))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "mean(): could not infer output dtype. Input dtype must be either a "
                            "floating point or complex dtype. Got: %s",
                            torch_type_name(t->dtype));

    /* Kernel geometry keeps every dim (extent 1 where reduced); the result's shape drops
     * reduced dims unless keepdim. */
    int64_t kshape[FERRY_MAX_DIMS], rshape[FERRY_MAX_DIMS];
    int rndim = 0;
    int64_t reduced_count = 1;
    for (int d = 0; d < t->ndim; d++) {
        kshape[d] = reduced[d] ? 1 : t->shape[d];
        /* Only compared with 0: it saturates where an empty tensor's other dims would
         * multiply past int64. */
        if (reduced[d] && reduced_count != 0 &&
            __builtin_mul_overflow(reduced_count, t->shape[d], &reduced_count))
            reduced_count = INT64_MAX;
        if (!reduced[d] || keepdim)
            rshape[rndim++] = kshape[d];
    }
    bool no_identity = op == FERRY_REDUCE_MAX || op == FERRY_REDUCE_MIN ||
                       op == FERRY_REDUCE_ARGMAX;
    for (int d = 0; no_identity && !all && d < t->ndim; d++)
        if (reduced[d] && t->shape[d] == 0)
            return ferry__error(FERRY_ERR_INDEX,
                                "%s(): Expected reduction dim %d to have non-zero size.", fn, d);
    if (reduced_count == 0 && no_identity)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s(): Expected reduction dim to be specified for input.numel() == 0. "
                            "cannot perform reduction function %s on tensor with no elements "
                            "because the operation does not have an identity",
                            fn, fn);
    if (out && (st = check_out(fn, out, t, rndim, rshape, rt)) != FERRY_OK)
        return st;
    ferry_tensor *dst = (out && out->dtype == rt && !overlaps(out, t)) ? ferry_tensor_retain(out)
                                                                      : new_like(t, rt, rndim,
                                                                                 rshape);
    if (!dst)
        return ferry_last_status();

    if (ferry__numel(rndim, rshape) > 0) {
        if (reduced_count == 0) {
            st = ferry__fill(dst, op == FERRY_REDUCE_MEAN ? NAN : 0.0);
        } else {
            operand oo, oi;
            operand_of(&oi, t);
            oo.t = dst;
            oo.ndim = t->ndim;
            for (int d = 0, r = 0; d < t->ndim; d++) {
                oo.shape[d] = kshape[d];
                oo.strides[d] = (!reduced[d] || keepdim) ? dst->strides[r++] : 0;
            }
            st = launch(K_REDUCE, op, &oo, &oi, NULL);
        }
    }
    return deliver(out, dst, st, result);
}

/* ---- backward of reductions ---- */

/* params: op, reduced-dims mask (bit d), keepdim; saved: 0 = input, 2 = result (max/min). */
static ferry_status reduce_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    ferry_reduce_op op = (ferry_reduce_op)p[0];
    int ndim = ferry__node_input_ndim(n, 0);
    const int64_t *shape = ferry__node_input_shape(n, 0);
    int64_t kshape[FERRY_MAX_DIMS];
    int dims[FERRY_MAX_DIMS], nd = 0;
    double count = 1.0;
    for (int d = 0; d < ndim; d++) {
        bool red = (p[1 + d / 63] >> (d % 63)) & 1;
        kshape[d] = red ? 1 : shape[d];
        if (red) {
            dims[nd++] = d;
            count *= (double)shape[d];
        }
    }
    ferry_tensor *gk = STEP(&s, ferry_reshape(g, ndim, kshape));
    switch (op) {
    case FERRY_REDUCE_SUM: grads[0] = keep(STEP(&s, ferry_expand(gk, ndim, shape))); break;
    case FERRY_REDUCE_MEAN: {
        ferry_tensor *q = STEP(&s, ferry_div_scalar(gk, count));
        grads[0] = keep(STEP(&s, ferry_expand(q, ndim, shape)));
        break;
    }
    case FERRY_REDUCE_MAX:
    case FERRY_REDUCE_MIN: {
        /* Every element equal to the result shares the gradient evenly (amax/amin, and
         * max()/min() over all elements, as PyTorch). */
        ferry_tensor *a = saved_in(&s, n, 0), *r = saved_in(&s, n, 2);
        ferry_tensor *rk = STEP(&s, ferry_reshape(r, ndim, kshape));
        ferry_tensor *mask = STEP(&s, ferry_eq(a, rk));
        ferry_tensor *cnt = STEP(&s, ferry_sum(mask, nd, dims, true));
        ferry_tensor *q = STEP(&s, ferry_div(gk, cnt));
        grads[0] = keep(STEP(&s, ferry_mul(mask, q)));
        break;
    }
    default: return ferry__error(FERRY_ERR_UNSUPPORTED, "%s has no derivative", reduce_names[op]);
    }
    return scope_end(&s, grads, 1);
}

static ferry_status reduce(ferry_reduce_op op, ferry_tensor *out, ferry_tensor *t, int ndims,
                           const int *dims, bool keepdim, ferry_tensor **result)
{
    bool want = ferry__grad_wanted(t, NULL) && op != FERRY_REDUCE_ARGMAX;
    ferry_status st;
    if (out) {
        if ((st = ferry__inplace_check(reduce_names[op], out, want)) != FERRY_OK)
            return st;
        st = reduce_forward(op, out, t, ndims, dims, keepdim, result);
        if (st == FERRY_OK)
            ferry__version_bump(out);
        return st;
    }
    if (!want)
        return reduce_forward(op, out, t, ndims, dims, keepdim, result);
    bool prev = pause_grad();
    st = reduce_forward(op, out, t, ndims, dims, keepdim, result);
    resume_grad(prev);
    if (st != FERRY_OK || !ferry_dtype_is_floating((*result)->dtype))
        return st;
    bool all = ndims == 0;
    const char *name = op == FERRY_REDUCE_SUM    ? (all ? "SumBackward0" : "SumBackward1")
                       : op == FERRY_REDUCE_MEAN ? (all ? "MeanBackward0" : "MeanBackward1")
                       : op == FERRY_REDUCE_MAX  ? (all ? "MaxBackward1" : "AmaxBackward0")
                                                 : (all ? "MinBackward1" : "AminBackward0");
    ferry_node *n = ferry__node_create(name, reduce_backward, 1, &t);
    if (!n)
        return attach_or_fail(NULL, ferry_last_status(), result);
    /* The forward validated dims; a 64-dim tensor needs two 63-bit words. */
    int64_t *p = ferry__node_params_alloc(n, 3);
    p[0] = op;
    p[1] = p[2] = 0;
    for (int d = 0; d < t->ndim; d++) {
        bool red = all;
        for (int i = 0; i < ndims && !red; i++)
            red = (dims[i] < 0 ? dims[i] + t->ndim : dims[i]) == d;
        if (red)
            p[1 + d / 63] |= (int64_t)1 << (d % 63);
    }
    st = FERRY_OK;
    if (op == FERRY_REDUCE_MAX || op == FERRY_REDUCE_MIN) {
        st = ferry__node_save(n, 0, t, false);
        if (st == FERRY_OK)
            st = ferry__node_save(n, 2, *result, true);
    }
    return attach_or_fail(n, st, result);
}

#define FERRY_DEFINE_REDUCE_(name, OP)                                                      \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *t, int ndims, const int *dims,         \
                                         bool keepdim)                                      \
    {                                                                                       \
        ferry_tensor *r = NULL;                                                             \
        reduce(OP, NULL, t, ndims, dims, keepdim, &r);                                      \
        return r;                                                                           \
    }                                                                                       \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *t, int ndims,  \
                                              const int *dims, bool keepdim)                \
    {                                                                                       \
        ferry_status st = ferry__check_tensor(out, #name "_out");                           \
        return st != FERRY_OK ? st : reduce(OP, out, t, ndims, dims, keepdim, NULL);        \
    }

FERRY_DEFINE_REDUCE_(sum, FERRY_REDUCE_SUM)
FERRY_DEFINE_REDUCE_(mean, FERRY_REDUCE_MEAN)
FERRY_DEFINE_REDUCE_(max, FERRY_REDUCE_MAX)
FERRY_DEFINE_REDUCE_(min, FERRY_REDUCE_MIN)
FERRY_DEFINE_REDUCE_(argmax, FERRY_REDUCE_ARGMAX)

/* ---- matmul ---- */

/* Whether dims [0, nb) of o fold into one batch dim. */
static bool batch_foldable(const operand *o, int nb)
{
    for (int i = 0; i + 1 < nb; i++)
        if (o->strides[i] != o->strides[i + 1] * o->shape[i + 1])
            return false;
    return true;
}

/* o's geometry [batch..., r, c] becomes [B, r, c]. */
static void fold_batch(operand *o, int nb)
{
    int64_t b = 1;
    for (int i = 0; i < nb; i++)
        b *= o->shape[i];
    int64_t bstride = nb > 0 ? o->strides[nb - 1] : 0;
    int64_t r = o->shape[nb], c = o->shape[nb + 1];
    int64_t rs = o->strides[nb], cs = o->strides[nb + 1];
    o->ndim = 3;
    o->shape[0] = b;
    o->shape[1] = r;
    o->shape[2] = c;
    o->strides[0] = b > 1 ? bstride : 0;
    o->strides[1] = rs;
    o->strides[2] = cs;
}

/* Copies the elements o describes into a new contiguous tensor on `like`'s device and
 * points o at it (kept alive through *keep). */
static ferry_status materialize(operand *o, const ferry_tensor *like, ferry_dtype dtype,
                                ferry_tensor **keep)
{
    *keep = new_like(like, dtype, o->ndim, o->shape);
    ferry_tensor *view = *keep ? ferry__tensor_restride(o->t, o->ndim, o->shape, o->strides) : NULL;
    if (!view)
        return ferry_last_status();
    ferry_status st = ferry__copy_into(*keep, view);
    ferry_tensor_release(view);
    if (st == FERRY_OK)
        operand_of(o, *keep);
    return st;
}

static ferry_status matmul_forward(ferry_tensor *out, ferry_tensor *a, ferry_tensor *b,
                                   ferry_tensor **result)
{
    ferry_status st;
    if ((st = ferry__check_tensor(a, "matmul")) != FERRY_OK ||
        (st = ferry__check_tensor(b, "matmul")) != FERRY_OK ||
        (st = ferry__check_same_device(a, b)) != FERRY_OK)
        return st;
    if (a->ndim == 0 || b->ndim == 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "both arguments to matmul need to be at least 1D, but they are %dD "
                            "and %dD",
                            a->ndim, b->ndim);
    ferry_dtype ct = ferry__promote(a->dtype, b->dtype);
    if (ct == FERRY_BOOL)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "matmul: bool tensors are not supported (cast to an integer or "
                            "floating dtype first)");
    /* 1-D operands become [1, K] and [K, 1]; those dims are dropped from the result. */
    int64_t m = a->ndim == 1 ? 1 : a->shape[a->ndim - 2];
    int64_t k = a->shape[a->ndim - 1];
    int64_t k2 = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    int64_t n = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    if (k != k2) {
        char as[512], bs[512];
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "matmul: shape mismatch %s x %s: inner dimensions %lld and %lld "
                            "differ",
                            ferry__shape_str(a->ndim, a->shape, as, sizeof as),
                            ferry__shape_str(b->ndim, b->shape, bs, sizeof bs), (long long)k,
                            (long long)k2);
    }
    int nba = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0;
    int nb = nba > nbb ? nba : nbb;
    int64_t batch[FERRY_MAX_DIMS];
    for (int i = 0; i < nb; i++) {
        int ia = nba - nb + i, ib = nbb - nb + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char as[512], bs[512];
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "matmul: batch dimensions of %s and %s cannot be broadcast "
                                "(%lld vs %lld at batch dim %d)",
                                ferry__shape_str(a->ndim, a->shape, as, sizeof as),
                                ferry__shape_str(b->ndim, b->shape, bs, sizeof bs),
                                (long long)sa, (long long)sb, i);
        }
        batch[i] = sa == 1 ? sb : sa;
    }
    /* A backend may pack any operand densely (an expanded one included): refuse products
     * whose dense operands could not be addressed, rather than let a size wrap. */
    int64_t nbatch = 1, dense;
    bool too_big = false;
    for (int i = 0; i < nb; i++)
        too_big |= __builtin_mul_overflow(nbatch, batch[i], &nbatch);
    const int64_t pairs[3][2] = {{m, k}, {k, n}, {m, n}};
    for (int i = 0; i < 3 && !too_big && nbatch > 0; i++)
        too_big = __builtin_mul_overflow(nbatch, pairs[i][0], &dense) ||
                  __builtin_mul_overflow(dense, pairs[i][1], &dense) ||
                  __builtin_mul_overflow(dense, (int64_t)sizeof(double), &dense);
    if (too_big) {
        char as[512], bs[512];
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                            "matmul: %s x %s needs operands of more bytes than fit in memory",
                            ferry__shape_str(a->ndim, a->shape, as, sizeof as),
                            ferry__shape_str(b->ndim, b->shape, bs, sizeof bs));
    }
    int rndim = 0;
    int64_t rshape[FERRY_MAX_DIMS];
    for (int i = 0; i < nb; i++)
        rshape[rndim++] = batch[i];
    if (a->ndim > 1)
        rshape[rndim++] = m;
    if (b->ndim > 1)
        rshape[rndim++] = n;
    if (out && (st = check_out("matmul", out, a, rndim, rshape, ct)) != FERRY_OK)
        return st;

    ferry_tensor *ca = as_dtype(a, ct);
    ferry_tensor *cb = ca ? as_dtype(b, ct) : NULL;
    /* matmul reads every input element many times: out may not share memory at all. */
    bool direct = out && out->dtype == ct && !ferry__shares_memory(out, a) &&
                  !ferry__shares_memory(out, b);
    ferry_tensor *dst = !cb ? NULL : direct ? ferry_tensor_retain(out) : new_like(a, ct, rndim, rshape);
    if (!dst) {
        ferry_tensor_release(ca);
        ferry_tensor_release(cb);
        return ferry_last_status();
    }
    st = FERRY_OK;
    ferry_tensor *xa = NULL, *xb = NULL, *xo = NULL;
    if (ferry__numel(rndim, rshape) > 0) {
        if (k == 0) {
            st = ferry__fill(dst, 0.0);
        } else {
            /* Full geometries [batch..., rows, cols]; missing dims get stride 0. */
            int64_t full_a[FERRY_MAX_DIMS], full_b[FERRY_MAX_DIMS], full_o[FERRY_MAX_DIMS];
            memcpy(full_a, batch, (size_t)nb * sizeof batch[0]);
            memcpy(full_b, batch, (size_t)nb * sizeof batch[0]);
            memcpy(full_o, batch, (size_t)nb * sizeof batch[0]);
            full_a[nb] = m, full_a[nb + 1] = k;
            full_b[nb] = k, full_b[nb + 1] = n;
            full_o[nb] = m, full_o[nb + 1] = n;
            operand oa, ob, oo;
            oa.t = ca;
            oa.ndim = nb + 2;
            memcpy(oa.shape, full_a, (size_t)(nb + 2) * sizeof full_a[0]);
            for (int i = 0; i < nb; i++) {
                int ia = nba - nb + i;
                oa.strides[i] = (ia >= 0 && ca->shape[ia] == batch[i]) ? ca->strides[ia] : 0;
            }
            oa.strides[nb] = ca->ndim == 1 ? 0 : ca->strides[ca->ndim - 2];
            oa.strides[nb + 1] = ca->strides[ca->ndim - 1];
            ob.t = cb;
            ob.ndim = nb + 2;
            memcpy(ob.shape, full_b, (size_t)(nb + 2) * sizeof full_b[0]);
            for (int i = 0; i < nb; i++) {
                int ib = nbb - nb + i;
                ob.strides[i] = (ib >= 0 && cb->shape[ib] == batch[i]) ? cb->strides[ib] : 0;
            }
            ob.strides[nb] = cb->ndim == 1 ? cb->strides[0] : cb->strides[cb->ndim - 2];
            ob.strides[nb + 1] = cb->ndim == 1 ? 0 : cb->strides[cb->ndim - 1];
            oo.t = dst;
            oo.ndim = nb + 2;
            memcpy(oo.shape, full_o, (size_t)(nb + 2) * sizeof full_o[0]);
            for (int i = 0; i < nb; i++)
                oo.strides[i] = dst->strides[i];
            oo.strides[nb] = a->ndim > 1 ? dst->strides[nb] : 0;
            oo.strides[nb + 1] = b->ndim > 1 ? dst->strides[rndim - 1] : 0;

            /* Batch dims that do not fold into one stride (a broadcast next to a real
             * dim, say) are materialised contiguously, once. */
            if (!batch_foldable(&oa, nb))
                st = materialize(&oa, a, ct, &xa);
            if (st == FERRY_OK && !batch_foldable(&ob, nb))
                st = materialize(&ob, b, ct, &xb);
            if (st == FERRY_OK && !batch_foldable(&oo, nb)) {
                xo = new_like(a, ct, nb + 2, full_o);
                if (xo)
                    operand_of(&oo, xo);
                else
                    st = ferry_last_status();
            }
            if (st == FERRY_OK) {
                fold_batch(&oa, nb);
                fold_batch(&ob, nb);
                fold_batch(&oo, nb);
                st = launch(K_MATMUL, 0, &oo, &oa, &ob);
            }
            if (st == FERRY_OK && xo) {
                ferry_tensor *back = ferry_reshape(xo, rndim, rshape);
                st = back ? ferry__copy_into(dst, back) : ferry_last_status();
                ferry_tensor_release(back);
            }
        }
    }
    ferry_tensor_release(xa);
    ferry_tensor_release(xb);
    ferry_tensor_release(xo);
    ferry_tensor_release(ca);
    ferry_tensor_release(cb);
    return deliver(out, dst, st, result);
}

/* ---- backward of matmul ---- */

/* grad_a = g @ b^T and grad_b = a^T @ g on operands promoted to >= 2-D (1-D ones as
 * [1, K] and [K, 1], as the forward does), summed over broadcast batch dims. */
static ferry_status matmul_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    bool na = ferry__node_needs(n, 0), nb = ferry__node_needs(n, 1);
    ferry_tensor *a = saved_in(&s, n, 0), *b = saved_in(&s, n, 1);
    int and_ = ferry__node_input_ndim(n, 0), bnd = ferry__node_input_ndim(n, 1);
    if (and_ == 1 && bnd == 1) {
        if (na)
            grads[0] = keep(STEP(&s, ferry_mul(g, b)));
        if (nb)
            grads[1] = keep(STEP(&s, ferry_mul(g, a)));
        return scope_end(&s, grads, 2);
    }
    ferry_tensor *G = g;
    if (and_ == 1)
        G = STEP(&s, ferry_unsqueeze(G, -2));
    if (bnd == 1)
        G = STEP(&s, ferry_unsqueeze(G, -1));
    if (na) {
        ferry_tensor *B = bnd == 1 ? STEP(&s, ferry_unsqueeze(b, -1)) : b;
        ferry_tensor *bt = STEP(&s, ferry_transpose(B, -1, -2));
        ferry_tensor *ga = STEP(&s, ferry_matmul(G, bt));
        int64_t ashape[FERRY_MAX_DIMS];
        int A = and_ == 1 ? 2 : and_;
        const int64_t *as = ferry__node_input_shape(n, 0);
        if (and_ == 1)
            ashape[0] = 1, ashape[1] = as[0];
        else
            memcpy(ashape, as, (size_t)and_ * sizeof ashape[0]);
        ferry_tensor *sa = ga ? STEP(&s, ferry__sum_to(ga, A, ashape)) : NULL;
        grads[0] = keep(STEP(&s, ferry_reshape(sa, and_, as)));
    }
    if (nb) {
        ferry_tensor *Am = and_ == 1 ? STEP(&s, ferry_unsqueeze(a, 0)) : a;
        ferry_tensor *at = STEP(&s, ferry_transpose(Am, -1, -2));
        ferry_tensor *gb = STEP(&s, ferry_matmul(at, G));
        int64_t bshape[FERRY_MAX_DIMS];
        int B = bnd == 1 ? 2 : bnd;
        const int64_t *bs = ferry__node_input_shape(n, 1);
        if (bnd == 1)
            bshape[0] = bs[0], bshape[1] = 1;
        else
            memcpy(bshape, bs, (size_t)bnd * sizeof bshape[0]);
        ferry_tensor *sb = gb ? STEP(&s, ferry__sum_to(gb, B, bshape)) : NULL;
        grads[1] = keep(STEP(&s, ferry_reshape(sb, bnd, bs)));
    }
    return scope_end(&s, grads, 2);
}

static ferry_status matmul(ferry_tensor *out, ferry_tensor *a, ferry_tensor *b,
                           ferry_tensor **result)
{
    bool want = ferry__grad_wanted(a, b);
    ferry_status st;
    if (out) {
        if ((st = ferry__inplace_check("matmul", out, want)) != FERRY_OK)
            return st;
        st = matmul_forward(out, a, b, result);
        if (st == FERRY_OK)
            ferry__version_bump(out);
        return st;
    }
    if (!want)
        return matmul_forward(out, a, b, result);
    bool prev = pause_grad();
    st = matmul_forward(out, a, b, result);
    resume_grad(prev);
    if (st != FERRY_OK || !ferry_dtype_is_floating((*result)->dtype))
        return st;
    const char *name = a->ndim == 1 && b->ndim == 1   ? "DotBackward0"
                       : a->ndim == 2 && b->ndim == 1 ? "MvBackward0"
                       : a->ndim <= 2 && b->ndim <= 2 ? "MmBackward0"
                                                      : "BmmBackward0";
    ferry_tensor *inputs[2] = {a, b};
    ferry_node *n = ferry__node_create(name, matmul_backward, 2, inputs);
    if (!n)
        return attach_or_fail(NULL, ferry_last_status(), result);
    st = FERRY_OK;
    if (b->requires_grad)
        st = ferry__node_save(n, 0, a, false);
    if (st == FERRY_OK && a->requires_grad)
        st = ferry__node_save(n, 1, b, false);
    return attach_or_fail(n, st, result);
}

FERRY_API ferry_tensor *ferry_matmul(ferry_tensor *a, ferry_tensor *b)
{
    ferry_tensor *r = NULL;
    matmul(NULL, a, b, &r);
    return r;
}

FERRY_API ferry_status ferry_matmul_out(ferry_tensor *out, ferry_tensor *a, ferry_tensor *b)
{
    ferry_status st = ferry__check_tensor(out, "matmul_out");
    return st != FERRY_OK ? st : matmul(out, a, b, NULL);
}

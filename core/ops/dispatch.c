/* Operation dispatch: the core owns broadcasting, type promotion, output allocation and
 * `_out` checks, collapsing of contiguous dims, and the CPU fallback; a backend only sees
 * plain descriptors (DESIGN.md, Kernels). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ops/index.h>

#include "ops/ops_internal.h"

static const ferry_op kind_op[] = {FERRY_OP_UNARY, FERRY_OP_BINARY, FERRY_OP_REDUCE,
                                   FERRY_OP_MATMUL};
static const char *const kind_name[] = {"unary", "binary", "reduce", "matmul"};

void ferry__operand_of(operand *o, const ferry_tensor *t)
{
    o->t = t;
    o->ndim = t->ndim;
    memcpy(o->shape, t->shape, (size_t)t->ndim * sizeof o->shape[0]);
    memcpy(o->strides, t->strides, (size_t)t->ndim * sizeof o->strides[0]);
}

void ferry__describe(const operand *o, const ferry_tensor *mem, ferry_kernel_tensor *k)
{
    k->buffer = mem->storage->buffer;
    k->byte_offset = mem->byte_offset;
    k->dtype = o->t->dtype;
    k->ndim = o->ndim;
    k->shape = o->shape;
    k->strides = o->strides;
    k->struct_size = sizeof *k;
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
ferry_status ferry__launch(kernel_kind kind, int subop, operand *out, operand *a, operand *b)
{
    ferry_backend *be = out->t->storage->backend;
    int32_t dev = out->t->storage->device;
    ferry_kernel_tensor ko, ka, kb;
    ferry__describe(out, out->t, &ko);
    ferry__describe(a, a->t, &ka);
    if (b)
        ferry__describe(b, b->t, &kb);
    ferry_status st = call(be, dev, kind, subop, &ko, &ka, b ? &kb : NULL);
    if (st != FERRY_ERR_UNSUPPORTED)
        return st;

    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return ferry_last_status();
    if (be == cpu)
        return ferry__error(FERRY_ERR_UNSUPPORTED, "the cpu backend has no %s kernel for %s",
                            kind_name[kind], ferry_dtype_name(a->t->dtype));
    /* "binary add": joined by hand, as this runs on every fallen-back op and snprintf
     * costs more than a 1-element kernel. */
    const char *sub = kind == K_UNARY    ? ferry__unary_name(subop)
                      : kind == K_BINARY ? ferry__binary_name(subop)
                      : kind == K_REDUCE ? ferry__reduce_name(subop)
                                         : "";
    char what[48];
    size_t nk = strlen(kind_name[kind]), ns = strlen(sub);
    if (nk + 1 + ns >= sizeof what)
        ns = sizeof what - 2 - nk;
    memcpy(what, kind_name[kind], nk);
    what[nk] = ' ';
    memcpy(what + nk + 1, sub, ns);
    what[nk + 1 + ns] = '\0';
    ferry_dtype types[3] = {a->t->dtype, b ? b->t->dtype : out->t->dtype, out->t->dtype};
    if ((st = ferry__fallback_begin(be, dev, kind_op[kind], what, types, b ? 3 : 2)) != FERRY_OK)
        return st;
    ferry_tensor *ha = ferry__stage_to_host(a->t);
    ferry_tensor *hb = b && ha ? ferry__stage_to_host(b->t) : NULL;
    ferry_tensor *ho = ha && (!b || hb) ? ferry__mirror_begin((ferry_tensor *)out->t) : NULL;
    if (!ho) {
        ferry_tensor_release(ha);
        ferry_tensor_release(hb);
        return ferry_last_status();
    }
    ferry__describe(out, ho, &ko);
    ferry__describe(a, ha, &ka);
    if (b)
        ferry__describe(b, hb, &kb);
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

ferry_status ferry__launch_binary_scalar(ferry_binary_op op, const ferry_tensor *out,
                                         const ferry_tensor *a, const ferry_kernel_scalar *b,
                                         int ndim, const int64_t *shape)
{
    operand oo, oa;
    ferry__broadcast_operand(&oo, out, ndim, shape);
    ferry__broadcast_operand(&oa, a, ndim, shape);
    operand *all[2] = {&oo, &oa};
    ferry__collapse(all, 2);
    ferry_kernel_tensor ko, ka;
    ferry__describe(&oo, out, &ko);
    ferry__describe(&oa, a, &ka);
    return ferry__be_binary_scalar(out->storage->backend, out->storage->device, op, &ko, &ka, b);
}

/* Tensors of one named op: an advanced index takes out, flag, t and one per index
 * (ferry/ops/index.h). Descriptors for up to NAMED_STACK_TENSORS live on the stack. */
#define NAMED_MAX_TENSORS (3 + FERRY_INDEX_MAX_INDICES)
#define NAMED_STACK_TENSORS 8

/* The descriptors as the plugin's header laid them out: one built before
 * ferry_kernel_tensor.struct_size existed (its table ends before binary_scalar) indexes
 * the array with the shorter stride, so it gets them packed at that stride. */
#define KT_STRIDE_1_1_EARLY offsetof(ferry_kernel_tensor, struct_size)

static ferry_status call_named(const ferry_backend *be, ferry_named_kernel k, int32_t dev,
                               operand **ops, ferry_tensor *const *mem, int n, int nout,
                               const void *params, size_t params_size)
{
    ferry_kernel_tensor stack_kt[NAMED_STACK_TENSORS];
    _Alignas(ferry_kernel_tensor) unsigned char stack_packed[sizeof stack_kt];
    ferry_kernel_tensor *kt = stack_kt;
    unsigned char *packed = stack_packed;
    if (n > NAMED_STACK_TENSORS) {
        kt = malloc((size_t)n * sizeof *kt * 2);
        if (!kt)
            return ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for %d descriptors",
                                n);
        packed = (unsigned char *)(kt + n);
    }
    for (int i = 0; i < n; i++)
        ferry__describe(ops[i], mem[i], &kt[i]);
    const ferry_kernel_tensor *tensors = kt;
    if (be->kt_stride_early) {
        for (int i = 0; i < n; i++)
            memcpy(packed + (size_t)i * KT_STRIDE_1_1_EARLY, &kt[i], KT_STRIDE_1_1_EARLY);
        tensors = (const ferry_kernel_tensor *)(void *)packed;
    }
    ferry_op_args args = {
        .struct_size = sizeof args,
        .ntensors = n,
        .noutputs = nout,
        .tensors = tensors,
        .params = params,
        .params_size = params_size,
        .ctx = be->v1 ? NULL : be->ctx,
    };
    ferry_status st;
    if (ferry__track_active(be)) {
        ferry_access acc[NAMED_MAX_TENSORS];
        for (int i = 0; i < n; i++)
            acc[i] = (ferry_access){(ferry_backend *)be, dev, kt[i].buffer, i < nout};
        st = ferry__track_begin((ferry_backend *)be, dev, acc, n);
        if (st == FERRY_OK && (st = k(dev, &args)) == FERRY_OK)
            ferry__track_end((ferry_backend *)be, dev, acc, n);
    } else {
        st = k(dev, &args);
    }
    if (kt != stack_kt)
        free(kt);
    return st;
}

ferry_status ferry__launch_named(const char *name, operand **ops, int n, int nout,
                                 bool outputs_read, const void *params, size_t params_size)
{
    if (n < 1 || n > NAMED_MAX_TENSORS || nout < 0 || nout > n)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: %d tensors with %d outputs (at most %d)",
                            name, n, nout, NAMED_MAX_TENSORS);
    ferry_backend *be = ops[0]->t->storage->backend;
    int32_t dev = ops[0]->t->storage->device;
    ferry_tensor *mem[NAMED_MAX_TENSORS];
    for (int i = 0; i < n; i++)
        mem[i] = (ferry_tensor *)ops[i]->t;
    ferry_named_kernel k = ferry__be_get_kernel(be, dev, name);
    ferry_status st = k ? call_named(be, k, dev, ops, mem, n, nout, params, params_size)
                        : FERRY_ERR_UNSUPPORTED;
    if (st != FERRY_ERR_UNSUPPORTED)
        return st;

    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return ferry_last_status();
    ferry_named_kernel ref = ferry__be_get_kernel(cpu, 0, name);
    if (be == cpu || !ref)
        return ferry__error(FERRY_ERR_UNSUPPORTED, "%s: no kernel for %s on %s%s", name,
                            ferry_dtype_name(ops[0]->t->dtype), be->name,
                            be == cpu ? "" : ", nor on the cpu");
    ferry_dtype types[NAMED_MAX_TENSORS];
    for (int i = 0; i < n; i++)
        types[i] = ops[i]->t->dtype;
    if ((st = ferry__fallback_begin(be, dev, FERRY_OP_NAMED, name, types, n)) != FERRY_OK)
        return st;
    ferry_tensor *host[NAMED_MAX_TENSORS] = {0};
    int made = 0;
    for (; made < n; made++) {
        bool staged = made >= nout || outputs_read;
        host[made] = staged ? ferry__stage_to_host(mem[made]) : ferry__mirror_begin(mem[made]);
        if (!host[made])
            break;
    }
    st = made == n ? call_named(cpu, ref, 0, ops, host, n, nout, params, params_size)
                   : ferry_last_status();
    for (int i = 0; i < made; i++) {
        if (i < nout && st == FERRY_OK)
            st = ferry__mirror_end(mem[i], host[i]);
        else
            ferry_tensor_release(host[i]);
    }
    return st;
}

/* Merges adjacent dims that are contiguous with each other in every operand, and drops
 * size-1 dims, so the common case reaches a backend as one flat loop. */
void ferry__collapse(operand **ops, int nops)
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

int ferry__category(ferry_dtype d)
{
    return d == FERRY_BOOL ? 0 : ferry_dtype_is_floating(d) ? 2 : 1;
}

ferry_dtype ferry__promote(ferry_dtype a, ferry_dtype b)
{
    if (a == b)
        return a;
    int ca = ferry__category(a), cb = ferry__category(b);
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
 * matters when it is of a higher ferry__category (float32 tensor + float64 0-d -> float32, but
 * int32 tensor + float64 0-d -> float64). */
ferry_dtype ferry__promote_operands(const ferry_tensor *a, const ferry_tensor *b)
{
    bool a0 = a->ndim == 0, b0 = b->ndim == 0;
    if (a0 == b0)
        return ferry__promote(a->dtype, b->dtype);
    ferry_dtype dim = a0 ? b->dtype : a->dtype, zero = a0 ? a->dtype : b->dtype;
    return ferry__category(zero) > ferry__category(dim) ? ferry__promote(dim, zero) : dim;
}

/* A scalar as one element of the compute dtype: an int scalar wraps as PyTorch's
 * static_cast does (uint8 tensor + -1 adds 255), anything else converts as a cast. */
void ferry__scalar_element(ferry_dtype dt, const ferry_scalar *v, void *out)
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

/* A scalar as a 0-d tensor of dtype dt on t's device: how a backend without
 * binary_scalar, and every named op, receives one. */
ferry_tensor *ferry__scalar_tensor(const ferry_tensor *t, ferry_dtype dt, const ferry_scalar *v)
{
    unsigned char elem[8];
    ferry__scalar_element(dt, v, elem);
    ferry_tensor *sb = ferry__tensor_empty_on(t->storage->backend, t->storage->device, dt, 0, NULL);
    if (!sb)
        return NULL;
    ferry_status st = ferry__be_copy_from_host(sb->storage->backend, sb->storage->device,
                                               sb->storage->buffer, sb->byte_offset, elem,
                                               ferry_dtype_size(dt));
    if (st != FERRY_OK) {
        ferry_tensor_release(sb);
        return NULL;
    }
    return sb;
}

/* A Python-style scalar changes a tensor's category, never its width. */
ferry_dtype ferry__promote_scalar(ferry_dtype t, const ferry_scalar *v)
{
    int cs = (int)v->kind;
    if (cs <= ferry__category(t))
        return t;
    return cs == 1 ? FERRY_INT64 : FERRY_FLOAT32;
}

/* What C's double means as a scalar: integral values are int scalars. */
ferry_scalar ferry__scalar_of_double(double v)
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
bool ferry__can_cast(ferry_dtype from, ferry_dtype to)
{
    return ferry__category(from) <= ferry__category(to);
}

/* ---- shared checks ---- */

ferry_status ferry__check_out(const char *fn, const ferry_tensor *out, const ferry_tensor *ref,
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
    if (!ferry__can_cast(result, out->dtype))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: result type %s can't be cast to the desired output type %s", fn,
                            ferry_dtype_name(result), ferry_dtype_name(out->dtype));
    return ferry__check_writable_once(out);
}

/* Whether writing out could change an input before the kernel reads it: shared memory
 * that is not the exact same view (an exact alias is fine elementwise). */
bool ferry__overlaps(const ferry_tensor *out, const ferry_tensor *in)
{
    if (!in || in == out)
        return false;
    /* Two storages of the allocator's own blocks never share a byte; only wrapped memory
     * (two blobs over one array) needs its addresses compared. */
    const ferry_storage *so = out->storage, *si = in->storage;
    if (so != si && !so->wrapped && !si->wrapped)
        return false;
    return ferry__shares_memory(out, in) && !ferry__same_view(out, in);
}

/* `t` converted to dtype on its device (t itself, retained, if already so). */
ferry_tensor *ferry__as_dtype(ferry_tensor *t, ferry_dtype dtype)
{
    return ferry_tensor_to_dtype(t, dtype);
}

ferry_tensor *ferry__new_like(const ferry_tensor *ref, ferry_dtype dtype, int ndim,
                              const int64_t *shape)
{
    return ferry__tensor_empty_on(ref->storage->backend, ref->storage->device, dtype, ndim, shape);
}

/* Hands the kernel's destination over: as the new result, or into the caller's out.
 * Where out could not take the result directly (another dtype, or overlapping an
 * input), the kernel wrote a temporary that is copied over now. */
ferry_status ferry__deliver(ferry_tensor *out, ferry_tensor *dst, ferry_status st,
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

ferry_status ferry__broadcast_shape(const ferry_tensor *a, const ferry_tensor *b, int *ndim,
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
void ferry__broadcast_operand(operand *o, const ferry_tensor *t, int ndim, const int64_t *shape)
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

ferry_tensor *ferry__scope_put(scope *s, ferry_tensor *r)
{
    if (!r)
        s->failed = true;
    else if (s->n < (int)(sizeof s->t / sizeof s->t[0]))
        s->t[s->n++] = r;
    return r;
}

ferry_tensor *ferry__saved_in(scope *s, ferry_node *n, int i)
{
    if (s->failed)
        return NULL;
    ferry_status st = FERRY_OK;
    ferry_tensor *t = ferry__node_saved(n, i, &st);
    if (st != FERRY_OK) {
        s->failed = true;
        return NULL;
    }
    return t ? ferry__scope_put(s, t) : NULL;
}

ferry_status ferry__scope_end(scope *s, ferry_tensor **grads, int n)
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

/* On a recording failure the op fails: a result must not silently lose its gradient. */
ferry_status ferry__attach_or_fail(ferry_node *n, ferry_status st, ferry_tensor **result)
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

ferry_status ferry__binary_operands(const char *fn, const ferry_tensor *a, const ferry_tensor *b,
                                    const ferry_scalar *scalar, ferry_dtype *compute)
{
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
    *compute = scalar ? ferry__promote_scalar(a->dtype, scalar) : ferry__promote_operands(a, b);
    return FERRY_OK;
}

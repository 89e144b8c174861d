/* Reductions over dims: dispatch and backward formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_internal.h"

/* ---- reductions ---- */

static const char *const reduce_names[] = {"sum", "mean", "max", "min", "argmax"};

const char *ferry__reduce_name(int op)
{
    return op >= 0 && op < (int)(sizeof reduce_names / sizeof reduce_names[0]) ? reduce_names[op] : "?";
}

/* PyTorch's ScalarType names, used in its mean() message. */
const char *ferry__torch_type_name(ferry_dtype d)
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
                            ferry__torch_type_name(t->dtype));

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
    /* PyTorch's words and exception types (IndexError for argmax). */
    if (reduced_count == 0 && no_identity && op == FERRY_REDUCE_ARGMAX)
        return ferry__error(FERRY_ERR_INDEX,
                            "%s(): Expected reduction dim to be specified for input.numel() == 0.",
                            fn);
    if (reduced_count == 0 && no_identity)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s(): Expected reduction dim to be specified for input.numel() == 0. "
                            "Specify the reduction dim with the 'dim' argument.",
                            fn);
    if (out && (st = ferry__check_out(fn, out, t, rndim, rshape, rt)) != FERRY_OK)
        return st;
    ferry_tensor *dst = (out && out->dtype == rt && !ferry__overlaps(out, t)) ? ferry_tensor_retain(out)
                                                                      : ferry__new_like(t, rt, rndim,
                                                                                 rshape);
    if (!dst)
        return ferry_last_status();

    if (ferry__numel(rndim, rshape) > 0) {
        if (reduced_count == 0) {
            st = ferry__fill(dst, op == FERRY_REDUCE_MEAN ? NAN : 0.0);
        } else {
            operand oo, oi;
            ferry__operand_of(&oi, t);
            oo.t = dst;
            oo.ndim = t->ndim;
            for (int d = 0, r = 0; d < t->ndim; d++) {
                oo.shape[d] = kshape[d];
                oo.strides[d] = (!reduced[d] || keepdim) ? dst->strides[r++] : 0;
            }
            st = ferry__launch(K_REDUCE, op, &oo, &oi, NULL);
        }
    }
    return ferry__deliver(out, dst, st, result);
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
        ferry_tensor *a = ferry__saved_in(&s, n, 0), *r = ferry__saved_in(&s, n, 2);
        ferry_tensor *rk = STEP(&s, ferry_reshape(r, ndim, kshape));
        ferry_tensor *mask = STEP(&s, ferry_eq(a, rk));
        ferry_tensor *cnt = STEP(&s, ferry_sum(mask, nd, dims, true));
        ferry_tensor *q = STEP(&s, ferry_div(gk, cnt));
        grads[0] = keep(STEP(&s, ferry_mul(mask, q)));
        break;
    }
    default: return ferry__error(FERRY_ERR_UNSUPPORTED, "%s has no derivative", reduce_names[op]);
    }
    return ferry__scope_end(&s, grads, 1);
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
        return ferry__attach_or_fail(NULL, ferry_last_status(), result);
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
    return ferry__attach_or_fail(n, st, result);
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

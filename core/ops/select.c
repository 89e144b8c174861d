/* Selection ops, whose output size depends on the data: nonzero, masked_select and
 * masked_scatter (ferry/ops/select.h). Each counts on the device first (cumsum of the
 * mask), reads the last count (the op's one synchronisation) and then runs one kernel
 * that moves every selected element to its row. */
#include <string.h>

#include <ferry/ops/select.h>

#include "ops/ops_internal.h"

/* The inclusive running count of mask's true elements (a bool tensor, any strides) in
 * row-major order, as a dense int64 vector of mask's element count; *count is its last
 * value (0 for an empty mask). No recording. */
static ferry_tensor *running_count(ferry_tensor *mask, int64_t *count)
{
    *count = 0;
    int64_t n = ferry_tensor_numel(mask);
    bool prev = pause_grad();
    ferry_tensor *flat = ferry_reshape(mask, 1, &n);
    ferry_tensor *pos = flat ? ferry_cumsum(flat, 0) : NULL;
    resume_grad(prev);
    ferry_tensor_release(flat);
    if (!pos || n == 0)
        return pos;
    ferry_tensor *last = ferry_narrow(pos, 0, n - 1, 1);
    ferry_status st = last ? ferry_tensor_copy_to_host(last, count, sizeof *count)
                           : ferry_last_status();
    ferry_tensor_release(last);
    if (st != FERRY_OK) {
        ferry_tensor_release(pos);
        return NULL;
    }
    return pos;
}

/* ---- nonzero ---- */

FERRY_API ferry_tensor *ferry_nonzero(ferry_tensor *t)
{
    if (ferry__check_tensor(t, "nonzero") != FERRY_OK)
        return NULL;
    if (t->ndim > FERRY_NONZERO_MAX_DIMS) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "nonzero is not supported for tensors with more than %d dimensions",
                     FERRY_NONZERO_MAX_DIMS);
        return NULL;
    }
    bool prev = pause_grad();
    ferry_tensor *mask = t->dtype == FERRY_BOOL ? ferry_tensor_retain(t) : ferry_ne_scalar(t, 0.0);
    int64_t count = 0;
    ferry_tensor *pos = mask ? running_count(mask, &count) : NULL;
    ferry_tensor_release(mask);
    ferry_tensor *out = NULL;
    if (pos) {
        int64_t shape[2] = {count, t->ndim};
        out = ferry__new_like(t, FERRY_INT64, 2, shape);
    }
    if (out && count > 0 && t->ndim > 0) {
        ferry_nonzero_params p;
        memset(&p, 0, sizeof p);
        p.ndim = t->ndim;
        memcpy(p.shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        operand oo, op;
        ferry__operand_of(&oo, out);
        ferry__operand_of(&op, pos);
        operand *ops[2] = {&oo, &op};
        if (ferry__launch_named(FERRY_OP_NONZERO, ops, 2, 1, false, &p, sizeof p) != FERRY_OK) {
            ferry_tensor_release(out);
            out = NULL;
        }
    }
    ferry_tensor_release(pos);
    resume_grad(prev);
    return out;
}

/* ---- masked_select ---- */

/* Moves the selected elements of src (an operand of the walked shape) to out, or from
 * source into self: one launch of `name` over (dense, strided, pos). */
static ferry_status launch_select(const char *name, const ferry_tensor *dense, operand *strided,
                                  const ferry_tensor *pos, bool scatter)
{
    operand od, op;
    ferry__operand_of(&od, dense);
    ferry__operand_of(&op, pos);
    operand *ops[3] = {scatter ? strided : &od, scatter ? &od : strided, &op};
    return ferry__launch_named(name, ops, 3, 1, scatter, NULL, 0);
}

/* The selected elements of t (broadcast to `shape`) in row-major order, given their
 * running count. No recording. */
static ferry_tensor *select_with(ferry_tensor *t, int ndim, const int64_t *shape,
                                 const ferry_tensor *pos, int64_t count)
{
    ferry_tensor *out = ferry__new_like(t, t->dtype, 1, &count);
    if (!out || count == 0)
        return out;
    operand os;
    ferry__broadcast_operand(&os, t, ndim, shape);
    if (launch_select(FERRY_OP_MASKED_SELECT, out, &os, pos, false) != FERRY_OK) {
        ferry_tensor_release(out);
        return NULL;
    }
    return out;
}

/* self (every element its own) gets source's first elements where pos counts up. */
static ferry_status scatter_with(ferry_tensor *self, ferry_tensor *source, const ferry_tensor *pos,
                                 int64_t count)
{
    if (count == 0)
        return FERRY_OK;
    int64_t n = ferry_tensor_numel(source);
    ferry_tensor *c = ferry_tensor_contiguous(source);
    ferry_tensor *flat = c ? ferry_reshape(c, 1, &n) : NULL;
    ferry_tensor_release(c);
    if (!flat)
        return ferry_last_status();
    operand oself;
    ferry__operand_of(&oself, self);
    ferry_status st = launch_select(FERRY_OP_MASKED_SCATTER, flat, &oself, pos, true);
    ferry_tensor_release(flat);
    return st;
}

/* Node params of both ops: the walked shape's ndim, the count, then the shape. */
enum { P_NDIM, P_COUNT, P_SHAPE };

static ferry_status masked_select_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    ferry_tensor *pos = ferry__saved_in(&s, n, 0);
    ferry_tensor *z = STEP(&s, ferry__new_like(g, g->dtype, (int)p[P_NDIM], p + P_SHAPE));
    if (!s.failed && ferry__fill(z, 0.0) != FERRY_OK)
        s.failed = true;
    if (!s.failed && scatter_with(z, g, pos, p[P_COUNT]) != FERRY_OK)
        s.failed = true;
    ferry_tensor *r = STEP(&s, ferry__sum_to(z, ferry__node_input_ndim(n, 0),
                                           ferry__node_input_shape(n, 0)));
    if (!s.failed)
        grads[0] = keep(r);
    return ferry__scope_end(&s, grads, 1);
}

/* Both live on one device; `shape` the broadcast of the two, or t's own when the mask
 * must broadcast onto t (an in-place op: t does not grow; expand's message otherwise). */
static ferry_status mask_operands(const char *fn, ferry_tensor *t, ferry_tensor *mask,
                                  bool onto_t, int *ndim, int64_t *shape)
{
    ferry_status st;
    if ((st = ferry__check_tensor(t, fn)) != FERRY_OK ||
        (st = ferry__check_tensor(mask, fn)) != FERRY_OK ||
        (st = ferry__check_same_device(t, mask)) != FERRY_OK)
        return st;
    if (!onto_t)
        return ferry__broadcast_shape(t, mask, ndim, shape);
    ferry_tensor *mb = ferry_broadcast_to(mask, t->ndim, t->shape);
    if (!mb)
        return ferry_last_status();
    ferry_tensor_release(mb);
    *ndim = t->ndim;
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return FERRY_OK;
}

/* Records node `name` on r with the running count, its total and the walked shape. */
static void record_select(const char *name, ferry_backward_fn fn, int nin, ferry_tensor **in,
                          ferry_tensor *pos, int64_t count, int ndim, const int64_t *shape,
                          ferry_tensor **r)
{
    ferry_node *n = ferry__node_create(name, fn, nin, in);
    int64_t *p = n ? ferry__node_params_alloc(n, P_SHAPE + ndim) : NULL;
    ferry_status st = p ? ferry__node_save(n, 0, pos, false) : ferry_last_status();
    if (p) {
        p[P_NDIM] = ndim;
        p[P_COUNT] = count;
        memcpy(p + P_SHAPE, shape, sizeof(int64_t) * (size_t)ndim);
    }
    ferry__attach_or_fail(n, st, r);
}

FERRY_API ferry_tensor *ferry_masked_select(ferry_tensor *t, ferry_tensor *mask)
{
    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    if (mask_operands("masked_select", t, mask, false, &ndim, shape) != FERRY_OK)
        return NULL;
    if (mask->dtype != FERRY_BOOL) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "masked_select: expected BoolTensor for mask");
        return NULL;
    }
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    bool prev = pause_grad();
    int64_t count = 0;
    ferry_tensor *mb = ferry_broadcast_to(mask, ndim, shape);
    ferry_tensor *pos = mb ? running_count(mb, &count) : NULL;
    ferry_tensor_release(mb);
    ferry_tensor *r = pos ? select_with(t, ndim, shape, pos, count) : NULL;
    resume_grad(prev);
    if (r && want)
        record_select("MaskedSelectBackward0", masked_select_backward, 1, &t, pos, count, ndim,
                      shape, &r);
    ferry_tensor_release(pos);
    return r;
}

/* ---- masked_scatter ---- */

static ferry_status masked_scatter_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    int64_t count = p[P_COUNT];
    ferry_tensor *pos = ferry__saved_in(&s, n, 0);
    if (!s.failed && ferry__node_needs(n, 0)) {
        /* What the scatter overwrote gets no gradient from self. */
        ferry_tensor *gs = STEP(&s, ferry_tensor_clone(g));
        ferry_tensor *zero = STEP(&s, ferry__new_like(g, g->dtype, 1, &count));
        if (!s.failed && (ferry__fill(zero, 0.0) != FERRY_OK ||
                          scatter_with(gs, zero, pos, count) != FERRY_OK))
            s.failed = true;
        ferry_tensor *r = STEP(&s, ferry__sum_to(gs, ferry__node_input_ndim(n, 0),
                                                ferry__node_input_shape(n, 0)));
        if (!s.failed)
            grads[0] = keep(r);
    }
    if (!s.failed && ferry__node_needs(n, 1)) {
        /* source's first `count` elements were read; the rest get zeros. */
        int sdim = ferry__node_input_ndim(n, 1);
        const int64_t *sshape = ferry__node_input_shape(n, 1);
        int64_t total = ferry__numel(sdim, sshape);
        ferry_tensor *picked = STEP(&s, select_with(g, (int)p[P_NDIM], p + P_SHAPE, pos, count));
        ferry_tensor *flat = STEP(&s, ferry__new_like(g, g->dtype, 1, &total));
        ferry_tensor *head = STEP(&s, flat ? ferry_narrow(flat, 0, 0, count) : NULL);
        if (!s.failed && (ferry__fill(flat, 0.0) != FERRY_OK ||
                          ferry_tensor_copy_from(head, picked) != FERRY_OK))
            s.failed = true;
        ferry_tensor *r = STEP(&s, ferry_reshape(flat, sdim, sshape));
        if (!s.failed)
            grads[1] = keep(r);
    }
    return ferry__scope_end(&s, grads, 2);
}

static ferry_tensor *masked_scatter_op(ferry_tensor *t, ferry_tensor *mask, ferry_tensor *source,
                                       bool inplace)
{
    const char *fn = inplace ? "masked_scatter_" : "masked_scatter";
    int ndim = 0;
    int64_t shape[FERRY_MAX_DIMS];
    ferry_status st;
    if ((st = mask_operands(fn, t, mask, inplace, &ndim, shape)) != FERRY_OK ||
        (st = ferry__check_tensor(source, fn)) != FERRY_OK ||
        (st = ferry__check_same_device(t, source)) != FERRY_OK)
        return NULL;
    if (mask->dtype != FERRY_BOOL)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "masked_scatter_ only supports boolean masks, but got mask with dtype %s",
                            ferry__torch_type_name(mask->dtype)),
               NULL;
    if (source->dtype != t->dtype)
        /* PyTorch's text, its missing space included. */
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "masked_scatter: expected self and source to have same dtypes but "
                            "got%s and %s",
                            ferry__torch_type_name(t->dtype), ferry__torch_type_name(source->dtype)),
               NULL;
    bool want = ferry__grad_wanted(t, source) && ferry_dtype_is_floating(t->dtype);
    if (inplace) {
        if (ferry__inplace_check(fn, t, want) != FERRY_OK)
            return NULL;
        if (want)
            return ferry__error(FERRY_ERR_UNSUPPORTED,
                                "masked_scatter_(): in-place masked_scatter does not record a "
                                "gradient yet; use masked_scatter"),
                   NULL;
    }
    bool prev = pause_grad();
    int64_t count = 0;
    ferry_tensor *mb = ferry_broadcast_to(mask, ndim, shape);
    ferry_tensor *pos = mb ? running_count(mb, &count) : NULL;
    ferry_tensor_release(mb);
    ferry_tensor *r = NULL;
    if (pos && count > ferry_tensor_numel(source)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "Number of elements of source < number of ones in mask");
    } else if (pos) {
        if (inplace) {
            r = ferry_tensor_retain(t);
        } else if ((r = ferry__new_like(t, t->dtype, ndim, shape)) &&
                   ferry_tensor_copy_from(r, t) != FERRY_OK) {
            ferry_tensor_release(r);
            r = NULL;
        }
        if (r && scatter_with(r, source, pos, count) != FERRY_OK) {
            ferry_tensor_release(r);
            r = NULL;
        } else if (r && inplace) {
            ferry__version_bump(r);
        }
    }
    resume_grad(prev);
    if (r && want && !inplace) {
        ferry_tensor *in[2] = {t, source};
        record_select("MaskedScatterBackward0", masked_scatter_backward, 2, in, pos, count, ndim,
                      shape, &r);
    }
    ferry_tensor_release(pos);
    return r;
}

FERRY_API ferry_tensor *ferry_masked_scatter(ferry_tensor *t, ferry_tensor *mask,
                                             ferry_tensor *source)
{
    return masked_scatter_op(t, mask, source, false);
}

FERRY_API ferry_status ferry_masked_scatter_(ferry_tensor *t, ferry_tensor *mask,
                                             ferry_tensor *source)
{
    ferry_tensor *r = masked_scatter_op(t, mask, source, true);
    ferry_tensor_release(r);
    return r ? FERRY_OK : ferry_last_status();
}

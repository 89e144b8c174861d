/* Indexing ops: gather, scatter, scatter_add, index_select, their checks with PyTorch's
 * messages, and their backward formulas. Two named kernels serve all of them
 * (ferry/ops/index.h): index_select is a gather whose index has stride 0 outside `dim`,
 * and the backwards are scatter-adds and gathers into zeros. Out-of-range indices come
 * back from the kernel in a two-element flag tensor, read when the op completes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <ferry/ops/index.h>

#include "ops/ops_internal.h"

/* A 0-d tensor as a kernel sees it: one dim of extent 1, so `dim` 0 names something. */
static void operand_1d(operand *o, const ferry_tensor *t)
{
    ferry__operand_of(o, t);
    if (o->ndim == 0) {
        o->ndim = 1;
        o->shape[0] = 1;
        o->strides[0] = 0;
    }
}

static ferry_status check_index_dtype(const char *fn, const ferry_tensor *index)
{
    if (index->dtype != FERRY_INT64 && index->dtype != FERRY_INT32)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s(): Expected dtype int32/int64 for index", fn);
    return FERRY_OK;
}

/* Runs `name` with the flag tensor second (ferry/ops/index.h), then reads the flag: the op's one
 * synchronisation, so a bad index fails here on every device. */
static ferry_status launch_flagged(const char *name, operand **ops, int n,
                                   const void *params, size_t psize, int dim,
                                   int64_t size)
{
    int64_t two = 2;
    ferry_tensor *flag = ferry__new_like(ops[0]->t, FERRY_INT64, 1, &two);
    if (!flag)
        return ferry_last_status();
    ferry_status st = ferry__fill(flag, 0.0);
    operand of;
    ferry__operand_of(&of, flag);
    operand *all[8] = {ops[0], &of};
    for (int i = 1; i < n; i++)
        all[i + 1] = ops[i];
    int64_t f[2] = {0, 0};
    if (st == FERRY_OK)
        st = ferry__launch_named(name, all, n + 1, 2, true, params, psize);
    if (st == FERRY_OK)
        st = ferry_tensor_copy_to_host(flag, f, sizeof f);
    ferry_tensor_release(flag);
    if (st == FERRY_OK && f[0])
        st = ferry__error(FERRY_ERR_INDEX, "index %" PRId64 " is out of bounds for dimension %d with size %" PRId64,
                          f[1], dim, size);
    return st;
}

/* out[p] = src[p with p[dim] = index[p]]; out, idx: operands of out's extents. */
static ferry_status gather_into(operand *out, const ferry_tensor *src, int dim, operand *idx)
{
    if (ferry__numel(out->ndim, out->shape) == 0)
        return FERRY_OK;
    operand os;
    operand_1d(&os, src);
    ferry_gather_params p = {.dim = dim, .size = os.shape[dim]};
    /* src's extents as the kernel walks them: out's, but its own in dim. */
    for (int d = 0; d < out->ndim; d++)
        if (d != dim)
            os.shape[d] = out->shape[d];
    operand *ops[3] = {out, &os, idx};
    return launch_flagged(FERRY_OP_GATHER, ops, 3, &p, sizeof p, dim, p.size);
}

/* self[p with p[dim] = index[p]] (+)= src[p]; idx and src: operands of index's extents. */
static ferry_status scatter_into(ferry_tensor *self, int dim, operand *idx, operand *src, bool add)
{
    if (ferry__numel(idx->ndim, idx->shape) == 0)
        return FERRY_OK;
    operand oself;
    operand_1d(&oself, self);
    ferry_scatter_params p = {.dim = dim, .reduce = add ? 1 : 0, .size = oself.shape[dim]};
    operand *ops[3] = {&oself, idx, src};
    return launch_flagged(FERRY_OP_SCATTER, ops, 3, &p, sizeof p, dim, p.size);
}

static ferry_tensor *zeros_like_shape(const ferry_tensor *ref, ferry_dtype dt, int ndim,
                                      const int64_t *shape)
{
    ferry_tensor *z = ferry__new_like(ref, dt, ndim, shape);
    if (z && ferry__fill(z, 0.0) != FERRY_OK) {
        ferry_tensor_release(z);
        return NULL;
    }
    return z;
}

/* "[2, 3]" as PyTorch prints sizes in these messages. */
static const char *sizes(const ferry_tensor *t, char *buf, size_t cap)
{
    size_t at = 0;
    buf[at++] = '[';
    for (int d = 0; d < t->ndim && at + 24 < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%" PRId64, d ? ", " : "", t->shape[d]);
    snprintf(buf + at, cap - at, "]");
    return buf;
}

static int ndim1(const ferry_tensor *t)
{
    return t->ndim ? t->ndim : 1;
}

static int64_t extent(const ferry_tensor *t, int d)
{
    return t->ndim ? t->shape[d] : 1;
}

/* ---- gather ---- */

static ferry_status gather_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int dim = (int)ferry__node_params(n, NULL)[0];
    ferry_tensor *index = ferry__saved_in(&s, n, 0);
    ferry_tensor *z = STEP(&s, zeros_like_shape(g, g->dtype, ferry__node_input_ndim(n, 0),
                                                ferry__node_input_shape(n, 0)));
    if (!s.failed) {
        operand oi, og;
        operand_1d(&oi, index);
        operand_1d(&og, g);
        if (scatter_into(z, dim, &oi, &og, true) != FERRY_OK)
            s.failed = true;
        else
            grads[0] = keep(z);
    }
    return ferry__scope_end(&s, grads, 1);
}

static ferry_status gather_forward(ferry_tensor *t, int dim, ferry_tensor *index,
                                   ferry_tensor **result)
{
    ferry_status st;
    if ((st = ferry__check_tensor(t, "gather")) != FERRY_OK ||
        (st = ferry__check_tensor(index, "gather")) != FERRY_OK ||
        (st = ferry__wrap_dim(&dim, t->ndim)) != FERRY_OK ||
        (st = check_index_dtype("gather", index)) != FERRY_OK)
        return st;
    if (ndim1(index) != ndim1(t) && !(index->ndim <= 1 && t->ndim <= 1))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "Index tensor must have the same number of dimensions as input tensor");
    for (int d = 0; d < ndim1(t); d++)
        if (d != dim && extent(index, d) > extent(t, d)) {
            char a[256], b[256];
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "Size does not match at dimension %d expected index %s to be no "
                                "larger than self %s apart from dimension %d",
                                d, sizes(index, a, sizeof a), sizes(t, b, sizeof b), dim);
        }
    ferry_tensor *out = ferry__new_like(t, t->dtype, index->ndim, index->shape);
    if (!out)
        return ferry_last_status();
    operand oo, oi;
    operand_1d(&oo, out);
    operand_1d(&oi, index);
    st = gather_into(&oo, t, dim, &oi);
    return ferry__deliver(NULL, out, st, result);
}

/* gather and index_select: the forward with recording paused, then node `name` with
 * the index saved and the wrapped dim as its parameter. */
typedef ferry_status (*index_forward_fn)(ferry_tensor *t, int dim, ferry_tensor *index,
                                         ferry_tensor **result);

static ferry_tensor *index_op(const char *name, index_forward_fn forward,
                              ferry_backward_fn backward, ferry_tensor *t, int dim,
                              ferry_tensor *index)
{
    bool want = ferry__grad_wanted(t, NULL);
    bool prev = pause_grad();
    ferry_tensor *r = NULL;
    ferry_status st = forward(t, dim, index, &r);
    resume_grad(prev);
    if (st != FERRY_OK || !want || !ferry_dtype_is_floating(r->dtype))
        return r;
    ferry__wrap_dim(&dim, t->ndim);
    ferry_node *n = ferry__node_create(name, backward, 1, &t);
    if (!n) {
        ferry__attach_or_fail(NULL, ferry_last_status(), &r);
        return r;
    }
    int64_t *p = ferry__node_params_alloc(n, 1);
    st = p ? ferry__node_save(n, 0, index, false) : ferry_last_status();
    if (p)
        p[0] = dim;
    ferry__attach_or_fail(n, st, &r);
    return r;
}

FERRY_API ferry_tensor *ferry_gather(ferry_tensor *t, int dim, ferry_tensor *index)
{
    return index_op("GatherBackward0", gather_forward, gather_backward, t, dim, index);
}

/* ---- index_select ---- */

/* An operand walking `shape` whose value at p is index[p[dim]]. */
static void select_index_operand(operand *o, const ferry_tensor *index, int ndim,
                                 const int64_t *shape, int dim)
{
    o->t = index;
    o->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        o->shape[d] = shape[d];
        o->strides[d] = 0;
    }
    o->strides[dim] = index->ndim ? index->strides[0] : 0;
}

static ferry_status index_select_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int dim = (int)ferry__node_params(n, NULL)[0];
    ferry_tensor *index = ferry__saved_in(&s, n, 0);
    ferry_tensor *z = STEP(&s, zeros_like_shape(g, g->dtype, ferry__node_input_ndim(n, 0),
                                                ferry__node_input_shape(n, 0)));
    if (!s.failed) {
        operand og, oi;
        operand_1d(&og, g);
        select_index_operand(&oi, index, og.ndim, og.shape, dim);
        if (scatter_into(z, dim, &oi, &og, true) != FERRY_OK)
            s.failed = true;
        else
            grads[0] = keep(z);
    }
    return ferry__scope_end(&s, grads, 1);
}

static ferry_status index_select_forward(ferry_tensor *t, int dim, ferry_tensor *index,
                                         ferry_tensor **result)
{
    ferry_status st;
    if ((st = ferry__check_tensor(t, "index_select")) != FERRY_OK ||
        (st = ferry__check_tensor(index, "index_select")) != FERRY_OK ||
        (st = ferry__wrap_dim(&dim, t->ndim)) != FERRY_OK)
        return st;
    if (index->ndim > 1)
        return ferry__error(FERRY_ERR_INDEX, "index_select(): Index is supposed to be a vector");
    if (index->dtype != FERRY_INT64 && index->dtype != FERRY_INT32)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "index_select(): Expected dtype int32 or int64 for index");
    int64_t shape[FERRY_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        shape[d] = t->shape[d];
    if (t->ndim)
        shape[dim] = ferry_tensor_numel(index);
    ferry_tensor *out = ferry__new_like(t, t->dtype, t->ndim, shape);
    if (!out)
        return ferry_last_status();
    operand oo, oi;
    operand_1d(&oo, out);
    select_index_operand(&oi, index, oo.ndim, oo.shape, dim);
    st = gather_into(&oo, t, dim, &oi);
    return ferry__deliver(NULL, out, st, result);
}

FERRY_API ferry_tensor *ferry_index_select(ferry_tensor *t, int dim, ferry_tensor *index)
{
    return index_op("IndexSelectBackward0", index_select_forward, index_select_backward, t, dim,
                    index);
}

/* ---- scatter, scatter_add ---- */

static ferry_status scatter_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    int dim = (int)p[0];
    bool add = p[1] != 0;
    ferry_tensor *index = ferry__saved_in(&s, n, 0);
    if (!s.failed && ferry__node_needs(n, 0)) {
        if (add) {
            grads[0] = keep(g);
        } else {
            /* What scatter overwrote gets no gradient from self. */
            ferry_tensor *gs = STEP(&s, ferry_tensor_clone(g));
            ferry_tensor *zero = STEP(&s, zeros_like_shape(g, g->dtype, 0, NULL));
            if (!s.failed) {
                operand oi, oz;
                operand_1d(&oi, index);
                operand_1d(&oz, zero);
                oz.ndim = oi.ndim;
                for (int d = 0; d < oi.ndim; d++) {
                    oz.shape[d] = oi.shape[d];
                    oz.strides[d] = 0;
                }
                if (scatter_into(gs, dim, &oi, &oz, false) != FERRY_OK)
                    s.failed = true;
                else
                    grads[0] = keep(gs);
            }
        }
    }
    if (!s.failed && ferry__node_needs(n, 1)) {
        /* src may be larger than index: its other elements get zeros. */
        ferry_tensor *gsrc = STEP(&s, zeros_like_shape(g, g->dtype, ferry__node_input_ndim(n, 1),
                                                       ferry__node_input_shape(n, 1)));
        if (!s.failed) {
            operand oo, oi;
            operand_1d(&oi, index);
            operand_1d(&oo, gsrc);
            for (int d = 0; d < oi.ndim; d++)
                oo.shape[d] = oi.shape[d];
            if (gather_into(&oo, g, dim, &oi) != FERRY_OK)
                s.failed = true;
            else
                grads[1] = keep(gsrc);
        }
    }
    return ferry__scope_end(&s, grads, 2);
}

static ferry_status scatter_check(const char *fn, ferry_tensor *t, int *dim, ferry_tensor *index,
                                  ferry_tensor *src)
{
    ferry_status st;
    if ((st = ferry__check_tensor(t, fn)) != FERRY_OK ||
        (st = ferry__check_tensor(index, fn)) != FERRY_OK ||
        (st = ferry__check_tensor(src, fn)) != FERRY_OK ||
        (st = ferry__wrap_dim(dim, t->ndim)) != FERRY_OK ||
        (st = check_index_dtype(fn, index)) != FERRY_OK)
        return st;
    if (src->dtype != t->dtype)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s(): Expected self.dtype to be equal to src.dtype", fn);
    if (ndim1(index) != ndim1(t) || ndim1(src) != ndim1(t))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "Index tensor must have the same number of dimensions as self tensor");
    for (int d = 0; d < ndim1(t); d++)
        if ((d != *dim && extent(index, d) > extent(t, d)) || extent(index, d) > extent(src, d)) {
            char a[256], b[256], c[256];
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "Expected index %s to be no larger than self %s apart from "
                                "dimension %d and to be no larger size than src %s",
                                sizes(index, a, sizeof a), sizes(t, b, sizeof b), *dim,
                                sizes(src, c, sizeof c));
        }
    return FERRY_OK;
}

/* Scatters into self itself (in place) or into a copy of it. */
static ferry_tensor *scatter_op(const char *fn, ferry_tensor *t, int dim, ferry_tensor *index,
                                ferry_tensor *src, bool add, bool inplace)
{
    ferry_status st = scatter_check(fn, t, &dim, index, src);
    if (st != FERRY_OK)
        return NULL;
    bool want = ferry__grad_wanted(t, src);
    if (inplace && ferry__inplace_check(fn, t, want) != FERRY_OK)
        return NULL;
    if (inplace && want)
        return ferry__error(FERRY_ERR_UNSUPPORTED, "%s_(): in-place scatter does not record a gradient yet", fn),
               NULL;
    bool prev = pause_grad();
    ferry_tensor *r = inplace ? ferry_tensor_retain(t) : ferry_tensor_clone(t);
    if (r) {
        operand oi, os;
        operand_1d(&oi, index);
        operand_1d(&os, src);
        for (int d = 0; d < oi.ndim; d++)
            os.shape[d] = oi.shape[d];
        st = scatter_into(r, dim, &oi, &os, add);
        if (st != FERRY_OK) {
            ferry_tensor_release(r);
            r = NULL;
        } else if (inplace) {
            ferry__version_bump(r);
        }
    }
    resume_grad(prev);
    if (!r || inplace || !want || !ferry_dtype_is_floating(r->dtype))
        return r;
    ferry_tensor *in[2] = {t, src};
    ferry_node *n = ferry__node_create(add ? "ScatterAddBackward0" : "ScatterBackward0",
                                       scatter_backward, 2, in);
    if (!n) {
        ferry__attach_or_fail(NULL, ferry_last_status(), &r);
        return r;
    }
    int64_t *p = ferry__node_params_alloc(n, 2);
    st = p ? ferry__node_save(n, 0, index, false) : ferry_last_status();
    if (p) {
        p[0] = dim;
        p[1] = add;
    }
    ferry__attach_or_fail(n, st, &r);
    return r;
}

FERRY_API ferry_tensor *ferry_scatter(ferry_tensor *t, int dim, ferry_tensor *index,
                                      ferry_tensor *src)
{
    return scatter_op("scatter", t, dim, index, src, false, false);
}

FERRY_API ferry_tensor *ferry_scatter_add(ferry_tensor *t, int dim, ferry_tensor *index,
                                          ferry_tensor *src)
{
    return scatter_op("scatter_add", t, dim, index, src, true, false);
}

FERRY_API ferry_status ferry_scatter_(ferry_tensor *t, int dim, ferry_tensor *index,
                                      ferry_tensor *src)
{
    ferry_tensor *r = scatter_op("scatter", t, dim, index, src, false, true);
    ferry_tensor_release(r);
    return r ? FERRY_OK : ferry_last_status();
}

FERRY_API ferry_status ferry_scatter_add_(ferry_tensor *t, int dim, ferry_tensor *index,
                                          ferry_tensor *src)
{
    ferry_tensor *r = scatter_op("scatter_add", t, dim, index, src, true, true);
    ferry_tensor_release(r);
    return r ? FERRY_OK : ferry_last_status();
}

/* Sorting: sort, argsort, topk and their backward (a scatter of the gradient to the
 * indices). Kernels see rows: the sorted dim is moved last and made contiguous here, so
 * every backend sorts (rows, n) and none needs an N-d walk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ops/sort.h"
#include "ops/ops_internal.h"

static void row_operand(operand *o, const ferry_tensor *t, int64_t rows, int64_t len)
{
    o->t = t;
    o->ndim = 2;
    o->shape[0] = rows;
    o->shape[1] = len;
    o->strides[0] = len;
    o->strides[1] = 1;
}

/* t with `dim` swapped to the last position, contiguous (t itself, retained, when it
 * already is); NULL with the error on failure. */
static ferry_tensor *rows_of(ferry_tensor *t, int dim)
{
    if (t->ndim == 0 || dim == t->ndim - 1)
        return ferry_tensor_contiguous(t);
    ferry_tensor *v = ferry_transpose(t, dim, t->ndim - 1);
    if (!v)
        return NULL;
    ferry_tensor *c = ferry_tensor_contiguous(v);
    ferry_tensor_release(v);
    return c;
}

/* The inverse of rows_of for a result computed in the swapped layout. */
static ferry_tensor *unrows(ferry_tensor *r, int dim, int ndim)
{
    if (!r || ndim == 0 || dim == ndim - 1)
        return r;
    ferry_tensor *v = ferry_transpose(r, dim, ndim - 1);
    ferry_tensor_release(r);
    if (!v)
        return NULL;
    ferry_tensor *c = ferry_tensor_contiguous(v);
    ferry_tensor_release(v);
    return c;
}

/* Values (and indices when want_idx) of the first k of each row's order along dim. */
static ferry_status sort_forward(const char *fn, ferry_tensor *t, int dim, int64_t k,
                                 bool descending, bool stable, bool want_idx,
                                 ferry_tensor **values, ferry_tensor **indices)
{
    int nd = t->ndim;
    int64_t n = nd == 0 ? 1 : t->shape[dim];
    /* The result in the swapped layout: dim last, extent k. */
    int64_t sshape[FERRY_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        sshape[d] = t->shape[d];
    if (nd > 0) {
        sshape[dim] = t->shape[nd - 1];
        sshape[nd - 1] = k;
    }
    ferry_tensor *vo = ferry__new_like(t, t->dtype, nd, sshape);
    ferry_tensor *io = want_idx ? ferry__new_like(t, FERRY_INT64, nd, sshape) : NULL;
    if (!vo || (want_idx && !io)) {
        ferry_tensor_release(vo);
        ferry_tensor_release(io);
        return ferry_last_status();
    }
    ferry_status st = FERRY_OK;
    int64_t total = ferry__numel(nd, sshape);
    if (total > 0 && n > 0) {
        ferry_tensor *c = rows_of(t, dim);
        if (!c) {
            st = ferry_last_status();
        } else {
            int64_t rows = total / k;
            operand ov, oi, oc;
            row_operand(&ov, vo, rows, k);
            row_operand(&oc, c, rows, n);
            ferry_sort_params p = {rows, n, k, descending, stable};
            if (want_idx) {
                row_operand(&oi, io, rows, k);
                operand *ops[3] = {&ov, &oi, &oc};
                st = ferry__launch_named(FERRY_OP_SORT, ops, 3, 2, false, &p, sizeof p);
            } else {
                operand *ops[2] = {&ov, &oc};
                st = ferry__launch_named(FERRY_OP_SORT, ops, 2, 1, false, &p, sizeof p);
            }
            ferry_tensor_release(c);
        }
    }
    (void)fn;
    if (st == FERRY_OK) {
        vo = unrows(vo, dim, nd);
        if (want_idx)
            io = unrows(io, dim, nd);
        if (!vo || (want_idx && !io))
            st = ferry_last_status();
    }
    if (st != FERRY_OK) {
        ferry_tensor_release(vo);
        ferry_tensor_release(io);
        return st;
    }
    *values = vo;
    if (indices)
        *indices = io;
    return FERRY_OK;
}

/* params: dim; saved: 0 = indices. grad_in = zeros scattered with grad at indices. */
static ferry_status sort_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    int dim = (int)p[0];
    int nd = ferry__node_input_ndim(n, 0);
    const int64_t *shape = ferry__node_input_shape(n, 0);
    ferry_tensor *idx = ferry__saved_in(&s, n, 0);
    if (s.failed)
        return ferry__scope_end(&s, grads, 1);
    if (nd == 0) {
        grads[0] = keep(STEP(&s, ferry_reshape(g, 0, NULL)));
        return ferry__scope_end(&s, grads, 1);
    }
    int64_t len = shape[dim], k = g->shape[dim];
    int64_t sshape[FERRY_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        sshape[d] = shape[d];
    sshape[dim] = shape[nd - 1];
    sshape[nd - 1] = len;
    ferry_tensor *gc = STEP(&s, rows_of(g, dim));
    ferry_tensor *ic = STEP(&s, rows_of(idx, dim));
    ferry_tensor *out = STEP(&s, ferry__new_like(g, g->dtype, nd, sshape));
    if (!s.failed) {
        int64_t total = ferry__numel(nd, sshape);
        if (total > 0) {
            int64_t rows = total / len;
            operand oo, og, oi;
            row_operand(&oo, out, rows, len);
            row_operand(&og, gc, rows, k);
            row_operand(&oi, ic, rows, k);
            operand *ops[3] = {&oo, &og, &oi};
            ferry_sort_params sp = {rows, len, k, 0, 0};
            if (ferry__launch_named(FERRY_OP_SORT_SCATTER, ops, 3, 1, false, &sp, sizeof sp) !=
                FERRY_OK)
                s.failed = true;
        }
    }
    if (!s.failed) {
        ferry_tensor_retain(out);
        grads[0] = unrows(out, dim, nd);
        if (!grads[0])
            s.failed = true;
    }
    return ferry__scope_end(&s, grads, 1);
}

static ferry_status sort_impl(const char *fn, const char *node_name, ferry_tensor *t, int dim,
                              int64_t k, bool topk, bool descending, bool stable,
                              ferry_tensor **values, ferry_tensor **indices)
{
    if (values)
        *values = NULL;
    if (indices)
        *indices = NULL;
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    if (!values)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: values is NULL", fn);
    if ((st = ferry__wrap_dim(&dim, t->ndim)) != FERRY_OK)
        return st;
    int64_t n = t->ndim == 0 ? 1 : t->shape[dim];
    if (topk) {
        if (t->dtype == FERRY_BOOL)
            return ferry__error(FERRY_ERR_UNSUPPORTED, "topk does not support bool dtypes");
        /* A 0-d tensor gives itself for k 0 or 1, as PyTorch. */
        if (k < 0 || k > n)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "selected index k out of range");
        if (t->ndim == 0)
            k = 1;
    } else {
        k = n;
    }
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    bool prev = pause_grad();
    /* The backward needs the indices even when the caller does not. */
    bool want_idx = indices != NULL || want;
    ferry_tensor *idx = NULL;
    st = sort_forward(fn, t, dim, k, descending, stable, want_idx, values, &idx);
    resume_grad(prev);
    if (st != FERRY_OK)
        return st;
    if (want) {
        ferry_node *nn = ferry__node_create(node_name, sort_backward, 1, &t);
        if (!nn) {
            st = ferry__attach_or_fail(NULL, ferry_last_status(), values);
        } else {
            int64_t *p = ferry__node_params_alloc(nn, 1);
            if (!p) {
                ferry__node_release(nn);
                st = ferry__attach_or_fail(NULL, ferry_last_status(), values);
            } else {
                p[0] = dim;
                st = ferry__attach_or_fail(nn, ferry__node_save(nn, 0, idx, false), values);
            }
        }
        if (st != FERRY_OK) {
            ferry_tensor_release(idx);
            return st;
        }
    }
    if (indices)
        *indices = idx;
    else
        ferry_tensor_release(idx);
    return FERRY_OK;
}

FERRY_API ferry_status ferry_sort(ferry_tensor *t, int dim, bool descending, bool stable,
                                  ferry_tensor **values, ferry_tensor **indices)
{
    return sort_impl("sort", "SortBackward0", t, dim, 0, false, descending, stable, values,
                     indices);
}

FERRY_API ferry_tensor *ferry_argsort(ferry_tensor *t, int dim, bool descending, bool stable)
{
    ferry_tensor *v = NULL, *i = NULL;
    bool prev = pause_grad();
    ferry_status st = sort_impl("argsort", "SortBackward0", t, dim, 0, false, descending, stable,
                                &v, &i);
    resume_grad(prev);
    ferry_tensor_release(v);
    return st == FERRY_OK ? i : NULL;
}

FERRY_API ferry_status ferry_topk(ferry_tensor *t, int64_t k, int dim, bool largest, bool sorted,
                                  ferry_tensor **values, ferry_tensor **indices)
{
    /* Results are always in order: PyTorch leaves the order unspecified when !sorted. */
    (void)sorted;
    return sort_impl("topk", "TopkBackward0", t, dim, k, true, largest, false, values, indices);
}

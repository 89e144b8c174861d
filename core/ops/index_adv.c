/* Advanced indexing: ferry_index (t[indices], PyTorch's aten::index) and ferry_index_put
 * (t[indices] = values, in place), their checks with PyTorch's messages, and their
 * backward formulas. One plan serves both: the int index tensors per dim of t (masks
 * expanded through nonzero), their broadcast shape B, and the iteration space R of the
 * result, where B stands in place of adjacent indexed dims or first otherwise. The
 * kernels ("ferry.index", "ferry.index_put", ferry/ops/index.h) walk R with t restrided
 * onto it, so any layout of t, of the indices and of values runs without copies. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ops/index.h>

#include "ops/ops_internal.h"

typedef struct plan {
    int ndim;                                /* t's */
    const ferry_tensor *full[FERRY_MAX_DIMS]; /* per dim of t: its index, or NULL */
    /* What the plan made: each index covers at least one dim of t and owns at most its
     * move to t's device, a mask's nonzero() and two views per dim it covers. */
    ferry_tensor *owned[4 * FERRY_MAX_DIMS];
    int nowned;
    int k;                    /* indexed dims */
    int dims[FERRY_MAX_DIMS]; /* which, ascending */
    int nb;                   /* B */
    int64_t bshape[FERRY_MAX_DIMS];
    int bdim; /* where B starts in R */
    int nr;   /* R */
    int64_t rshape[FERRY_MAX_DIMS];
} plan;

static void plan_free(plan *p)
{
    for (int i = 0; i < p->nowned; i++)
        ferry_tensor_release(p->owned[i]);
    p->nowned = 0;
}

static ferry_tensor *own(plan *p, ferry_tensor *t)
{
    if (t && p->nowned == (int)(sizeof p->owned / sizeof p->owned[0])) {
        ferry_tensor_release(t); /* unreachable by the bound above; never overrun */
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "index: too many index tensors");
        return NULL;
    }
    if (t)
        p->owned[p->nowned++] = t;
    return t;
}

/* "[2, 3]" as PyTorch prints sizes in these messages. */
static const char *sizes_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t at = 0;
    buf[at++] = '[';
    for (int d = 0; d < ndim && at + 24 < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%" PRId64, d ? ", " : "", shape[d]);
    snprintf(buf + at, cap - at, "]");
    return buf;
}

static const char *shape_of(const ferry_tensor *t, char *buf, size_t cap)
{
    return sizes_str(t->ndim, t->shape, buf, cap);
}

static ferry_status too_many(int ndim)
{
    return ferry__error(FERRY_ERR_INDEX, "too many indices for tensor of dimension %d", ndim);
}

/* A bool/uint8 mask over dims [*d, *d + mask->ndim) of t: its nonzero()'s columns. */
static ferry_status expand_mask(plan *p, const ferry_tensor *t, const ferry_tensor *mask, int *d)
{
    int m = mask->ndim;
    if (m == 0)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "index: a 0-d mask is not supported by ferry_index; unsqueeze the "
                            "tensor and use a one-element mask");
    for (int j = 0; j < m; j++) {
        if (*d + j >= t->ndim)
            return too_many(t->ndim);
        if (mask->shape[j] != t->shape[*d + j]) {
            char a[512], b[512];
            return ferry__error(FERRY_ERR_INDEX,
                                "The shape of the mask %s at index %d does not match the shape "
                                "of the indexed tensor %s at index %d",
                                shape_of(mask, a, sizeof a), j, shape_of(t, b, sizeof b), *d + j);
        }
    }
    ferry_tensor *nz = own(p, ferry_nonzero((ferry_tensor *)mask));
    if (!nz)
        return ferry_last_status();
    for (int j = 0; j < m; j++) {
        ferry_tensor *col = own(p, ferry_narrow(nz, 1, j, 1));
        ferry_tensor *v = col ? own(p, ferry_squeeze(col, 1)) : NULL;
        if (!v)
            return ferry_last_status();
        p->full[*d + j] = v;
    }
    *d += m;
    return FERRY_OK;
}

static ferry_status plan_build(plan *p, const ferry_tensor *t, int n,
                               const ferry_tensor *const *indices, const char *fn)
{
    memset(p, 0, sizeof *p);
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    p->ndim = t->ndim;
    if (n < 0 || (n > 0 && !indices))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: %d indices given", fn, n);
    int d = 0;
    for (int i = 0; i < n; i++) {
        const ferry_tensor *x = indices[i];
        if (!x) {
            if (d >= t->ndim)
                return too_many(t->ndim);
            d++;
            continue;
        }
        if ((st = ferry__check_tensor(x, fn)) != FERRY_OK)
            return st;
        if (x->dtype != FERRY_INT64 && x->dtype != FERRY_INT32 && x->dtype != FERRY_BOOL &&
            x->dtype != FERRY_UINT8)
            return ferry__error(FERRY_ERR_INDEX,
                                "tensors used as indices must be long, int, byte or bool tensors");
        if (ferry__check_same_device(t, x) != FERRY_OK) {
            /* PyTorch takes host indices for a device tensor: they move to it. */
            char dev[32];
            x = own(p, ferry_tensor_to((ferry_tensor *)x, ferry__tensor_device_str(t, dev)));
            if (!x)
                return ferry_last_status();
        }
        if (x->dtype == FERRY_BOOL || x->dtype == FERRY_UINT8) {
            if ((st = expand_mask(p, t, x, &d)) != FERRY_OK)
                return st;
            continue;
        }
        if (d >= t->ndim)
            return too_many(t->ndim);
        p->full[d++] = x;
    }
    for (int i = 0; i < t->ndim; i++)
        if (p->full[i])
            p->dims[p->k++] = i;
    /* B: the indices broadcast together. */
    for (int j = 0; j < p->k; j++) {
        const ferry_tensor *x = p->full[p->dims[j]];
        int nd = x->ndim > p->nb ? x->ndim : p->nb;
        int64_t out[FERRY_MAX_DIMS];
        for (int i = 0; i < nd; i++) {
            int ia = p->nb - nd + i, ib = x->ndim - nd + i;
            int64_t a = ia >= 0 ? p->bshape[ia] : 1, b = ib >= 0 ? x->shape[ib] : 1;
            if (a != b && a != 1 && b != 1) {
                char msg[2048];
                size_t at = 0;
                for (int q = 0; q < p->k && at + 600 < sizeof msg; q++) {
                    char s[512];
                    at += (size_t)snprintf(msg + at, sizeof msg - at, "%s%s", q ? ", " : "",
                                           shape_of(p->full[p->dims[q]], s, sizeof s));
                }
                return ferry__error(FERRY_ERR_INDEX,
                                    "shape mismatch: indexing tensors could not be broadcast "
                                    "together with shapes %s",
                                    msg);
            }
            out[i] = a == 1 ? b : a;
        }
        p->nb = nd;
        memcpy(p->bshape, out, (size_t)nd * sizeof out[0]);
    }
    bool adjacent = p->k == 0 || p->dims[p->k - 1] - p->dims[0] + 1 == p->k;
    p->bdim = adjacent && p->k ? p->dims[0] : 0;
    p->nr = t->ndim - p->k + p->nb;
    if (p->nr > FERRY_MAX_DIMS)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: the result would have %d dims (at most %d)", fn, p->nr,
                            FERRY_MAX_DIMS);
    int r = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == p->bdim && p->k)
            for (int q = 0; q < p->nb; q++)
                p->rshape[r++] = p->bshape[q];
        if (!p->full[i])
            p->rshape[r++] = t->shape[i];
    }
    if (p->k && p->bdim >= t->ndim) /* unreachable: bdim is an indexed dim or 0 */
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: bad plan", fn);
    int64_t numel = 1;
    for (int i = 0; i < p->nr; i++)
        if (__builtin_mul_overflow(numel, p->rshape[i], &numel))
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "numel: integer multiplication overflow");
    return FERRY_OK;
}

/* t restrided onto R: its own strides in its dims left in R, 0 across B. */
static void target_operand(operand *o, const ferry_tensor *t, const plan *p)
{
    o->t = t;
    o->ndim = p->nr;
    int r = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == p->bdim && p->k)
            for (int q = 0; q < p->nb; q++) {
                o->shape[r] = p->rshape[r];
                o->strides[r++] = 0;
            }
        if (!p->full[i]) {
            o->shape[r] = p->rshape[r];
            o->strides[r++] = t->strides[i];
        }
    }
}

/* Index j broadcast to B and placed at B's dims of R. */
static void index_operand(operand *o, const plan *p, int j)
{
    operand b;
    ferry__broadcast_operand(&b, p->full[p->dims[j]], p->nb, p->bshape);
    o->t = b.t;
    o->ndim = p->nr;
    for (int r = 0; r < p->nr; r++) {
        o->shape[r] = p->rshape[r];
        o->strides[r] = r >= p->bdim && r < p->bdim + p->nb ? b.strides[r - p->bdim] : 0;
    }
}

/* Runs the op over R with `first` (out or self) and `second` (src or values) as
 * operands 0 and 2, then reads the flag: the op's one synchronisation. */
static ferry_status launch(const char *name, const ferry_tensor *t, const plan *p, operand *first,
                           operand *second, bool accumulate)
{
    if (ferry__numel(p->nr, p->rshape) == 0)
        return FERRY_OK;
    ferry_index_params *prm = calloc(1, sizeof *prm);
    operand *store = calloc((size_t)p->k + 1, sizeof *store);
    operand **ops = calloc((size_t)p->k + 3, sizeof *ops);
    int64_t three = 3;
    ferry_tensor *flag = ferry__new_like(t, FERRY_INT64, 1, &three);
    ferry_status st = FERRY_OK;
    if (!prm || !store || !ops)
        st = ferry__error(FERRY_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    else if (!flag)
        st = ferry_last_status();
    else
        st = ferry__fill(flag, 0.0);
    int64_t f[3] = {0, 0, 0};
    if (st == FERRY_OK) {
        prm->k = p->k;
        prm->accumulate = accumulate;
        prm->bdim = p->bdim;
        prm->nbdims = p->nb;
        for (int j = 0; j < p->k; j++) {
            prm->stride[j] = t->strides[p->dims[j]];
            prm->size[j] = t->shape[p->dims[j]];
        }
        ferry__operand_of(&store[p->k], flag);
        ops[0] = first;
        ops[1] = &store[p->k];
        ops[2] = second;
        for (int j = 0; j < p->k; j++) {
            index_operand(&store[j], p, j);
            ops[3 + j] = &store[j];
        }
        st = ferry__launch_named(name, ops, p->k + 3, 2, true, prm, sizeof *prm);
    }
    if (st == FERRY_OK)
        st = ferry_tensor_copy_to_host(flag, f, sizeof f);
    if (st == FERRY_OK && f[0]) {
        int j = f[2] >= 0 && f[2] < p->k ? (int)f[2] : 0;
        /* torch's words: the dimension is the index tensor's place among the index
         * tensors (x[:, [5]] says dimension 0), not the indexed dim of t. */
        st = ferry__error(FERRY_ERR_INDEX,
                          "index %" PRId64 " is out of bounds for dimension %d with size %" PRId64,
                          f[1], j, p->k ? t->shape[p->dims[j]] : 0);
    }
    ferry_tensor_release(flag);
    free(prm);
    free(store);
    free(ops);
    return st;
}

static ferry_status index_core(const ferry_tensor *t, const plan *p, ferry_tensor **result)
{
    ferry_tensor *out = ferry__new_like(t, t->dtype, p->nr, p->rshape);
    if (!out)
        return ferry_last_status();
    operand oo, os;
    ferry__operand_of(&oo, out);
    target_operand(&os, t, p);
    ferry_status st = launch(FERRY_OP_INDEX, t, p, &oo, &os, false);
    return ferry__deliver(NULL, out, st, result);
}

/* values (any dtype, broadcastable to R) written or added into t at the plan's places. */
static ferry_status put_core(ferry_tensor *t, const plan *p, const ferry_tensor *values,
                             bool accumulate)
{
    int ok = values->ndim <= p->nr;
    for (int i = 0; ok && i < values->ndim; i++) {
        int64_t v = values->shape[values->ndim - 1 - i], r = p->rshape[p->nr - 1 - i];
        ok = v == r || v == 1;
    }
    if (!ok) {
        char a[512], b[512];
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "shape mismatch: value tensor of shape %s cannot be broadcast to "
                            "indexing result of shape %s",
                            shape_of(values, a, sizeof a),
                            sizes_str(p->nr, p->rshape, b, sizeof b));
    }
    if (ferry__numel(p->nr, p->rshape) == 0)
        return FERRY_OK;
    ferry_tensor *v = NULL;
    if (ferry__check_same_device(t, values) != FERRY_OK) {
        char dev[32];
        ferry_tensor *m = ferry_tensor_to((ferry_tensor *)values, ferry__tensor_device_str(t, dev));
        v = m ? ferry__as_dtype(m, t->dtype) : NULL;
        ferry_tensor_release(m);
    } else if (values->dtype != t->dtype) {
        v = ferry__as_dtype((ferry_tensor *)values, t->dtype);
    } else if (ferry__shares_memory(values, t)) {
        /* Read completely before any write. */
        v = ferry_tensor_clone((ferry_tensor *)values);
    } else {
        v = ferry_tensor_retain((ferry_tensor *)values);
    }
    if (!v)
        return ferry_last_status();
    operand ot, ov;
    target_operand(&ot, t, p);
    ferry__broadcast_operand(&ov, v, p->nr, p->rshape);
    ferry_status st = launch(FERRY_OP_INDEX_PUT, t, p, &ot, &ov, accumulate);
    ferry_tensor_release(v);
    return st;
}

/* ---- autograd: the indices saved as one int64 tensor [k, B...] ---- */

static ferry_tensor *pack(const plan *p)
{
    if (p->k == 0)
        return NULL;
    ferry_tensor *parts[FERRY_MAX_DIMS] = {0};
    ferry_tensor *r = NULL;
    int made = 0;
    for (; made < p->k; made++) {
        ferry_tensor *e = ferry_expand((ferry_tensor *)p->full[p->dims[made]], p->nb, p->bshape);
        parts[made] = e ? ferry__as_dtype(e, FERRY_INT64) : NULL;
        ferry_tensor_release(e);
        if (!parts[made])
            goto done;
    }
    r = ferry_stack((const ferry_tensor *const *)parts, p->k, 0);
done:
    for (int j = 0; j < made; j++)
        ferry_tensor_release(parts[j]);
    return r;
}

/* The per-dim indices back from pack: map[d] is the row of dim d, or -1. */
static ferry_status unpack(ferry_tensor *packed, int ndim, const int64_t *map,
                           const ferry_tensor **full, ferry_tensor **owned)
{
    for (int d = 0; d < ndim; d++) {
        full[d] = NULL;
        owned[d] = NULL;
        if (map[d] < 0)
            continue;
        ferry_tensor *row = ferry_narrow(packed, 0, map[d], 1);
        owned[d] = row ? ferry_squeeze(row, 0) : NULL;
        ferry_tensor_release(row);
        if (!owned[d])
            return ferry_last_status();
        full[d] = owned[d];
    }
    return FERRY_OK;
}

static void release_all(ferry_tensor **ts, int n)
{
    for (int i = 0; i < n; i++)
        ferry_tensor_release(ts[i]);
}

/* Saves the indices and their dims: params[0] = ndim, then map[ndim], then extra. */
static ferry_status save_plan(ferry_node *n, const plan *p, const int64_t *extra, int nextra)
{
    int64_t *prm = ferry__node_params_alloc(n, 1 + p->ndim + nextra);
    if (!prm)
        return ferry_last_status();
    prm[0] = p->ndim;
    int row = 0;
    for (int d = 0; d < p->ndim; d++)
        prm[1 + d] = p->full[d] ? row++ : -1;
    for (int i = 0; i < nextra; i++)
        prm[1 + p->ndim + i] = extra[i];
    if (p->k == 0)
        return FERRY_OK;
    ferry_tensor *packed = pack(p);
    if (!packed)
        return ferry_last_status();
    ferry_status st = ferry__node_save(n, 0, packed, false);
    ferry_tensor_release(packed);
    return st;
}

/* The saved plan of node n rebuilt over a tensor of `ref`'s ndim/shape. */
static ferry_status load_plan(scope *s, ferry_node *n, const ferry_tensor *ref, plan *p,
                              ferry_tensor **owned)
{
    int64_t *prm = ferry__node_params(n, NULL);
    int ndim = (int)prm[0];
    bool any = false;
    for (int d = 0; d < ndim; d++)
        any = any || prm[1 + d] >= 0;
    const ferry_tensor *full[FERRY_MAX_DIMS] = {0};
    for (int d = 0; d < ndim; d++)
        owned[d] = NULL;
    if (any) {
        ferry_tensor *packed = ferry__saved_in(s, n, 0);
        if (s->failed)
            return ferry_last_status();
        ferry_status st = unpack(packed, ndim, prm + 1, full, owned);
        if (st != FERRY_OK)
            return st;
    }
    return plan_build(p, ref, ndim, full, "index backward");
}

static ferry_status index_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    ferry_tensor *owned[FERRY_MAX_DIMS];
    int ndim = ferry__node_input_ndim(n, 0);
    ferry_tensor *z = STEP(&s, ferry__new_like(g, g->dtype, ndim, ferry__node_input_shape(n, 0)));
    if (!s.failed && ferry__fill(z, 0.0) != FERRY_OK)
        s.failed = true;
    if (!s.failed) {
        plan p;
        ferry_status st = load_plan(&s, n, z, &p, owned);
        if (st == FERRY_OK)
            st = put_core(z, &p, g, true);
        plan_free(&p);
        release_all(owned, (int)ferry__node_params(n, NULL)[0]);
        if (st != FERRY_OK)
            s.failed = true;
        else
            grads[0] = keep(z);
    }
    return ferry__scope_end(&s, grads, 1);
}

FERRY_API ferry_tensor *ferry_index(const ferry_tensor *t, int n, const ferry_tensor *const *indices)
{
    plan p;
    ferry_status st = plan_build(&p, t, n, indices, "index");
    if (st != FERRY_OK) {
        plan_free(&p);
        return NULL;
    }
    bool want = ferry__grad_wanted(t, NULL);
    bool prev = pause_grad();
    ferry_tensor *r = NULL;
    st = index_core(t, &p, &r);
    resume_grad(prev);
    if (st != FERRY_OK || !want || !ferry_dtype_is_floating(r->dtype)) {
        plan_free(&p);
        return r;
    }
    ferry_tensor *in = (ferry_tensor *)t;
    ferry_node *node = ferry__node_create("IndexBackward0", index_backward, 1, &in);
    st = node ? save_plan(node, &p, NULL, 0) : ferry_last_status();
    plan_free(&p);
    ferry__attach_or_fail(node, st, &r);
    return r;
}

static ferry_status index_put_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    ferry_tensor *owned[FERRY_MAX_DIMS];
    int64_t *prm = ferry__node_params(n, NULL);
    int ndim = (int)prm[0];
    bool acc = prm[1 + ndim] != 0;
    ferry_dtype vdt = (ferry_dtype)prm[2 + ndim];
    plan p;
    ferry_status st = load_plan(&s, n, g, &p, owned);
    if (st != FERRY_OK)
        s.failed = true;
    if (!s.failed && ferry__node_needs(n, 0)) {
        if (acc) {
            grads[0] = keep(g);
        } else {
            /* What the write replaced gets no gradient from self. */
            ferry_tensor *gs = STEP(&s, ferry_tensor_clone(g));
            ferry_tensor *zero = STEP(&s, ferry__new_like(g, g->dtype, 0, NULL));
            if (!s.failed && (ferry__fill(zero, 0.0) != FERRY_OK ||
                              put_core(gs, &p, zero, false) != FERRY_OK))
                s.failed = true;
            if (!s.failed)
                grads[0] = keep(gs);
        }
    }
    if (!s.failed && ferry__node_needs(n, 1)) {
        ferry_tensor *r = NULL;
        if (index_core(g, &p, &r) != FERRY_OK)
            s.failed = true;
        STEP(&s, r);
        ferry_tensor *summed =
            STEP(&s, ferry__sum_to(r, ferry__node_input_ndim(n, 1), ferry__node_input_shape(n, 1)));
        ferry_tensor *cast = summed && summed->dtype != vdt ? STEP(&s, ferry__as_dtype(summed, vdt))
                                                            : summed;
        if (!s.failed)
            grads[1] = keep(cast);
    }
    plan_free(&p);
    release_all(owned, ndim);
    return ferry__scope_end(&s, grads, 2);
}

FERRY_API ferry_status ferry_index_put(ferry_tensor *t, int n, const ferry_tensor *const *indices,
                                       const ferry_tensor *values, bool accumulate)
{
    plan p;
    ferry_status st = plan_build(&p, t, n, indices, "index_put_");
    if (st == FERRY_OK)
        st = ferry__check_tensor(values, "index_put_");
    if (st == FERRY_OK && t->read_only)
        st = ferry__error(FERRY_ERR_INVALID_ARGUMENT, "index_put_: the tensor is read-only");
    if (st == FERRY_OK)
        st = ferry__check_writable_once(t);
    bool want = st == FERRY_OK && ferry__grad_wanted(t, values) &&
                ferry_dtype_is_floating(t->dtype);
    if (want && t->requires_grad && !t->grad_fn)
        st = ferry__error(FERRY_ERR_UNSUPPORTED,
                          "a leaf Variable that requires grad is being used in an in-place "
                          "operation.");
    else if (want && ferry__is_view_output(t))
        st = ferry__error(FERRY_ERR_UNSUPPORTED,
                          "index_put_: in-place write into a view that requires grad: ferry's "
                          "autograd does not rebase a view's base yet; index the base tensor or "
                          "write out of place");
    if (st != FERRY_OK) {
        plan_free(&p);
        return st;
    }
    bool prev = pause_grad();
    st = put_core(t, &p, values, accumulate);
    resume_grad(prev);
    if (st == FERRY_OK)
        ferry__version_bump(t);
    if (st != FERRY_OK || !want) {
        plan_free(&p);
        return st;
    }
    /* The write becomes t's history: a node over t's previous history and values. */
    ferry_tensor *in[2] = {t, (ferry_tensor *)values};
    ferry_node *node = ferry__node_create("IndexPutBackward0", index_put_backward, 2, in);
    int64_t extra[2] = {accumulate, values->dtype};
    st = node ? save_plan(node, &p, extra, 2) : ferry_last_status();
    plan_free(&p);
    if (st != FERRY_OK) {
        ferry__node_release(node);
        return st;
    }
    ferry__node_attach(node, t);
    return FERRY_OK;
}

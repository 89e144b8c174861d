/* The reductions PyTorch users reach for beyond sum/mean/max/min/argmax: prod, scans and
 * softmax rows run the reduce2 named kernels (ferry/ops/reduce2.h) with their own
 * backward formulas; argmin, any, all, count_nonzero, logsumexp, var, std, norm and
 * max/min over a dim are composed of ops every device already runs, so they never reach
 * the CPU fallback and their gradients follow from the pieces (max_dim/min_dim record
 * their own node: the gradient goes to the index, as PyTorch). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ferry/ops/reduce2.h>

#include "ops/ops_internal.h"

/* ---- dims --------------------------------------------------------------------------- */

/* Validates dims like the built-in reductions and returns the reduced mask, the number
 * of reduced elements (saturating) and the result shape. */
static ferry_status reduced_dims(const char *fn, const ferry_tensor *t, int ndims, const int *dims,
                                 bool keepdim, bool *mask, int64_t *count, int *rndim,
                                 int64_t *rshape)
{
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    if (ndims < 0 || ndims > FERRY_MAX_DIMS || (ndims > 0 && !dims))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: invalid dims (ndims %d%s)", fn, ndims,
                            ndims > 0 && !dims ? ", dims NULL" : "");
    for (int d = 0; d < FERRY_MAX_DIMS; d++)
        mask[d] = ndims == 0;
    for (int i = 0; i < ndims; i++) {
        int d = dims[i];
        if ((st = ferry__wrap_dim(&d, t->ndim)) != FERRY_OK)
            return st;
        if (t->ndim == 0)
            continue;
        if (mask[d])
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "dim %d appears multiple times in the list of dims", d);
        mask[d] = true;
    }
    int64_t c = 1;
    int r = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (mask[d] && c != 0 && __builtin_mul_overflow(c, t->shape[d], &c))
            c = INT64_MAX;
        if (!mask[d] || keepdim)
            rshape[r++] = mask[d] ? 1 : t->shape[d];
    }
    *count = c;
    *rndim = r;
    return FERRY_OK;
}

/* The result shape with every reduced dim kept as 1. */
static void kept_shape(const ferry_tensor *t, const bool *mask, int64_t *kshape)
{
    for (int d = 0; d < t->ndim; d++)
        kshape[d] = mask[d] ? 1 : t->shape[d];
}

static void device_name(const ferry_tensor *t, char *buf, size_t cap)
{
    ferry_device_format(ferry_tensor_device(t), buf, cap);
}

/* ---- the line kernels ------------------------------------------------------------- */

/* Runs `name` along `dim` of t (validated, non-negative; 0 for a 0-d tensor) into a new
 * tensor of dtype rt: extent 1 along dim for prod, t's shape otherwise. */
static ferry_tensor *line_op(const char *name, ferry_tensor *t, int dim, ferry_dtype rt)
{
    bool prod = strcmp(name, FERRY_OP_PROD) == 0;
    int64_t shape[FERRY_MAX_DIMS];
    int64_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < t->ndim; d++) {
        shape[d] = t->shape[d];
        if (d < dim)
            outer *= t->shape[d];
        else if (d > dim)
            inner *= t->shape[d];
    }
    if (t->ndim > 0) {
        len = t->shape[dim];
        if (prod)
            shape[dim] = 1;
    }
    /* Only the kernel geometry multiplies extents: an empty tensor never reaches it. */
    ferry_tensor *dst = ferry__new_like(t, rt, t->ndim, shape);
    if (!dst)
        return NULL;
    int64_t n = ferry__numel(t->ndim, shape);
    if (n == 0)
        return dst;
    ferry_status st;
    if (len == 0) {
        st = ferry__fill(dst, 1.0);
    } else {
        ferry_tensor *src = ferry_tensor_contiguous(t);
        if (!src) {
            ferry_tensor_release(dst);
            return NULL;
        }
        operand oo, oi;
        ferry__operand_of(&oo, dst);
        ferry__operand_of(&oi, src);
        oo.ndim = oi.ndim = 3;
        oi.shape[0] = oo.shape[0] = outer;
        oi.shape[1] = len;
        oo.shape[1] = prod ? 1 : len;
        oi.shape[2] = oo.shape[2] = inner;
        oi.strides[0] = len * inner;
        oi.strides[1] = inner;
        oi.strides[2] = oo.strides[2] = 1;
        oo.strides[0] = oo.shape[1] * inner;
        oo.strides[1] = inner;
        operand *ops[2] = {&oo, &oi};
        st = ferry__launch_named(name, ops, 2, 1, false, NULL, 0);
        ferry_tensor_release(src);
    }
    if (st != FERRY_OK) {
        ferry_tensor_release(dst);
        return NULL;
    }
    return dst;
}

static ferry_dtype accumulated_dtype(ferry_dtype d)
{
    return ferry_dtype_is_floating(d) ? d : FERRY_INT64;
}

/* ---- prod ----------------------------------------------------------------------------- */

/* The product over the masked dims, as a tensor of the kept shape. No recording. */
static ferry_tensor *prod_kept(ferry_tensor *t, const bool *mask)
{
    ferry_dtype rt = accumulated_dtype(t->dtype);
    ferry_tensor *cur = ferry_tensor_retain(t);
    bool any = false;
    for (int d = 0; d < t->ndim && cur; d++) {
        if (!mask[d])
            continue;
        ferry_tensor *next = line_op(FERRY_OP_PROD, cur, d, rt);
        ferry_tensor_release(cur);
        cur = next;
        any = true;
    }
    if (cur && !any && t->ndim == 0) {
        ferry_tensor *next = line_op(FERRY_OP_PROD, cur, 0, rt);
        ferry_tensor_release(cur);
        cur = next;
    } else if (cur && !any && cur->dtype != rt) {
        ferry_tensor *next = ferry__as_dtype(cur, rt);
        ferry_tensor_release(cur);
        cur = next;
    }
    return cur;
}

/* d prod / d x_i is the product of the others: p / x_i without zeros; with one zero in
 * the line only that element gets the product of the rest, with two or more none does.
 * saved: 0 = input; params: reduced-dims mask (bit d, two 63-bit words). */
static ferry_status prod_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    int ndim = ferry__node_input_ndim(n, 0);
    bool mask[FERRY_MAX_DIMS] = {false};
    int dims[FERRY_MAX_DIMS], nd = 0;
    int64_t kshape[FERRY_MAX_DIMS];
    const int64_t *shape = ferry__node_input_shape(n, 0);
    for (int d = 0; d < ndim; d++) {
        mask[d] = (p[d / 63] >> (d % 63)) & 1;
        kshape[d] = mask[d] ? 1 : shape[d];
        if (mask[d])
            dims[nd++] = d;
    }
    ferry_tensor *x = ferry__saved_in(&s, n, 0);
    ferry_tensor *gk = STEP(&s, ferry_reshape(g, ndim, kshape));
    ferry_tensor *zero = STEP(&s, ferry_eq_scalar(x, 0.0));
    ferry_tensor *x1 = STEP(&s, ferry_add(x, zero));
    ferry_tensor *p1 = s.failed ? NULL : STEP(&s, prod_kept(x1, mask));
    ferry_tensor *zc = STEP(&s, nd ? ferry_sum(zero, nd, dims, true)
                                   : ferry__as_dtype(zero, FERRY_INT64));
    ferry_tensor *one = STEP(&s, ferry_eq_scalar(zc, 1.0));
    ferry_tensor *none = STEP(&s, ferry_eq_scalar(zc, 0.0));
    ferry_tensor *a = STEP(&s, ferry_mul(zero, one));
    ferry_tensor *b = STEP(&s, ferry_div(none, x1));
    ferry_tensor *w = STEP(&s, ferry_add(a, b));
    ferry_tensor *q = STEP(&s, ferry_mul(gk, p1));
    grads[0] = s.failed ? NULL : keep(STEP(&s, ferry_mul(q, w)));
    return ferry__scope_end(&s, grads, 1);
}

/* A node with the reduced-dims mask as params and t saved in slot 0. */
static ferry_status record_masked(const char *name, ferry_backward_fn fn, ferry_tensor *t,
                                  const bool *mask, ferry_tensor **result)
{
    ferry_node *n = ferry__node_create(name, fn, 1, &t);
    if (!n)
        return ferry__attach_or_fail(NULL, ferry_last_status(), result);
    int64_t *p = ferry__node_params_alloc(n, 2);
    ferry_status st = p ? FERRY_OK : ferry_last_status();
    if (p) {
        p[0] = p[1] = 0;
        for (int d = 0; d < t->ndim; d++)
            if (mask[d])
                p[d / 63] |= (int64_t)1 << (d % 63);
        st = ferry__node_save(n, 0, t, false);
    }
    return ferry__attach_or_fail(n, st, result);
}

FERRY_API ferry_tensor *ferry_prod(ferry_tensor *t, int ndims, const int *dims, bool keepdim)
{
    bool mask[FERRY_MAX_DIMS];
    int64_t count, rshape[FERRY_MAX_DIMS];
    int rndim;
    if (reduced_dims("prod", t, ndims, dims, keepdim, mask, &count, &rndim, rshape) != FERRY_OK)
        return NULL;
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    bool prev = pause_grad();
    ferry_tensor *k = prod_kept(t, mask);
    ferry_tensor *r = k ? ferry_reshape(k, rndim, rshape) : NULL;
    ferry_tensor_release(k);
    resume_grad(prev);
    if (!r || !want)
        return r;
    if (record_masked(ndims == 0 ? "ProdBackward0" : "ProdBackward1", prod_backward, t, mask,
                      &r) != FERRY_OK)
        return NULL;
    return r;
}

/* ---- compositions: any, all, count_nonzero, argmin --------------------------------- */

FERRY_API ferry_tensor *ferry_count_nonzero(ferry_tensor *t, int ndims, const int *dims,
                                            bool keepdim)
{
    if (ferry__check_tensor(t, "count_nonzero") != FERRY_OK)
        return NULL;
    bool prev = pause_grad();
    ferry_tensor *nz = ferry_ne_scalar(t, 0.0);
    ferry_tensor *r = nz ? ferry_sum(nz, ndims, dims, keepdim) : NULL;
    ferry_tensor_release(nz);
    resume_grad(prev);
    return r;
}

FERRY_API ferry_tensor *ferry_any(ferry_tensor *t, int ndims, const int *dims, bool keepdim)
{
    ferry_tensor *c = ferry_count_nonzero(t, ndims, dims, keepdim);
    ferry_tensor *r = c ? ferry_gt_scalar(c, 0.0) : NULL;
    ferry_tensor_release(c);
    return r;
}

FERRY_API ferry_tensor *ferry_all(ferry_tensor *t, int ndims, const int *dims, bool keepdim)
{
    if (ferry__check_tensor(t, "all") != FERRY_OK)
        return NULL;
    bool prev = pause_grad();
    ferry_tensor *z = ferry_eq_scalar(t, 0.0);
    ferry_tensor *c = z ? ferry_sum(z, ndims, dims, keepdim) : NULL;
    ferry_tensor *r = c ? ferry_eq_scalar(c, 0.0) : NULL;
    ferry_tensor_release(z);
    ferry_tensor_release(c);
    resume_grad(prev);
    return r;
}

/* An order-reversing map of t, so that argmax finds the first minimum: -x for floats
 * (NaN stays NaN, and counts as the minimum too, as PyTorch), -1 - x for integers,
 * which wraps onto the reversed order without overflow (~x). */
static ferry_tensor *reversed(ferry_tensor *t)
{
    if (ferry_dtype_is_floating(t->dtype))
        return ferry_neg(t);
    ferry_tensor *m = ferry_neg(t);
    ferry_tensor *r = m ? ferry_sub_scalar(m, 1.0) : NULL;
    ferry_tensor_release(m);
    return r;
}

/* The emptiness errors of argmin/max/min, PyTorch's words. */
static ferry_status no_identity_check(const char *fn, const ferry_tensor *t, int ndims,
                                      const int *dims)
{
    for (int i = 0; i < ndims; i++) {
        int d = dims[i];
        ferry_status st = ferry__wrap_dim(&d, t->ndim);
        if (st != FERRY_OK)
            return st;
        if (t->ndim > 0 && t->shape[d] == 0)
            return ferry__error(FERRY_ERR_INDEX,
                                "%s(): Expected reduction dim %d to have non-zero size.", fn, d);
    }
    if (ndims == 0 && ferry_tensor_numel(t) == 0)
        return ferry__error(FERRY_ERR_INDEX,
                            "%s(): Expected reduction dim to be specified for input.numel() == 0.",
                            fn);
    return FERRY_OK;
}

FERRY_API ferry_tensor *ferry_argmin(ferry_tensor *t, int ndims, const int *dims, bool keepdim)
{
    if (ferry__check_tensor(t, "argmin") != FERRY_OK)
        return NULL;
    if (t->dtype == FERRY_BOOL) {
        ferry__error(FERRY_ERR_UNSUPPORTED, "argmin(): does not support bool input");
        return NULL;
    }
    if (ndims < 0 || ndims > 1 || (ndims == 1 && !dims)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "argmin: reduces one dim or all of them (got %d dims), as torch.argmin",
                     ndims);
        return NULL;
    }
    if (no_identity_check("argmin", t, ndims, dims) != FERRY_OK)
        return NULL;
    bool prev = pause_grad();
    ferry_tensor *rev = reversed(t);
    ferry_tensor *r = rev ? ferry_argmax(rev, ndims, dims, keepdim) : NULL;
    ferry_tensor_release(rev);
    resume_grad(prev);
    return r;
}

/* ---- max/min over a dim, with indices --------------------------------------------- */

/* g to the index each value came from. params: dim, keepdim; saved: 0 = indices. */
static ferry_status index_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    int dim = (int)p[0];
    bool keepdim = p[1] != 0;
    int ndim = ferry__node_input_ndim(n, 0);
    const int64_t *shape = ferry__node_input_shape(n, 0);
    ferry_tensor *idx = ferry__saved_in(&s, n, 0);
    if (ndim == 0) {
        grads[0] = s.failed ? NULL : ferry_tensor_retain(g);
        return ferry__scope_end(&s, grads, 1);
    }
    char dev[32];
    device_name(g, dev, sizeof dev);
    int64_t ishape[FERRY_MAX_DIMS];
    for (int d = 0; d < ndim; d++)
        ishape[d] = d == dim ? shape[d] : 1;
    ferry_tensor *ik = STEP(&s, keepdim ? ferry_tensor_retain(idx) : ferry_unsqueeze(idx, dim));
    ferry_tensor *gk = STEP(&s, keepdim ? ferry_tensor_retain(g) : ferry_unsqueeze(g, dim));
    ferry_tensor *iota = STEP(&s, ferry_arange(0, (double)shape[dim], 1, FERRY_INT64, dev));
    ferry_tensor *io = STEP(&s, ferry_reshape(iota, ndim, ishape));
    ferry_tensor *hit = STEP(&s, ferry_eq(io, ik));
    ferry_tensor *r = STEP(&s, ferry_mul(hit, gk));
    grads[0] = s.failed ? NULL : keep(STEP(&s, ferry_expand(r, ndim, shape)));
    return ferry__scope_end(&s, grads, 1);
}

static ferry_status maxmin_dim(bool is_max, ferry_tensor *t, int dim, bool keepdim,
                               ferry_tensor **values, ferry_tensor **indices)
{
    const char *fn = is_max ? "max" : "min";
    if (values)
        *values = NULL;
    if (indices)
        *indices = NULL;
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    if (!values || !indices)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: values and indices must not be NULL",
                            fn);
    int d = dim;
    if ((st = ferry__wrap_dim(&d, t->ndim)) != FERRY_OK)
        return st;
    if ((st = no_identity_check(fn, t, 1, &d)) != FERRY_OK)
        return st;
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    bool prev = pause_grad();
    /* Bool has no argmax kernel: its order is uint8's. */
    ferry_tensor *src = t->dtype == FERRY_BOOL ? ferry__as_dtype(t, FERRY_UINT8)
                                               : ferry_tensor_retain(t);
    ferry_tensor *v = NULL, *i = NULL;
    if (src) {
        ferry_tensor *key = is_max ? ferry_tensor_retain(src) : reversed(src);
        i = key ? ferry_argmax(key, 1, &d, keepdim) : NULL;
        ferry_tensor_release(key);
        ferry_tensor *m = i ? (is_max ? ferry_max : ferry_min)(t, 1, &d, keepdim) : NULL;
        v = m;
    }
    ferry_tensor_release(src);
    resume_grad(prev);
    if (!v || !i) {
        st = ferry_last_status();
        ferry_tensor_release(v);
        ferry_tensor_release(i);
        return st;
    }
    if (want) {
        ferry_node *n = ferry__node_create(is_max ? "MaxBackward0" : "MinBackward0",
                                           index_backward, 1, &t);
        int64_t *p = n ? ferry__node_params_alloc(n, 2) : NULL;
        st = p ? FERRY_OK : ferry_last_status();
        if (p) {
            p[0] = t->ndim == 0 ? 0 : d;
            p[1] = keepdim;
            st = ferry__node_save(n, 0, i, false);
        }
        if ((st = ferry__attach_or_fail(n, st, &v)) != FERRY_OK) {
            ferry_tensor_release(i);
            return st;
        }
    }
    *values = v;
    *indices = i;
    return FERRY_OK;
}

FERRY_API ferry_status ferry_max_dim(ferry_tensor *t, int dim, bool keepdim, ferry_tensor **values,
                                     ferry_tensor **indices)
{
    return maxmin_dim(true, t, dim, keepdim, values, indices);
}

FERRY_API ferry_status ferry_min_dim(ferry_tensor *t, int dim, bool keepdim, ferry_tensor **values,
                                     ferry_tensor **indices)
{
    return maxmin_dim(false, t, dim, keepdim, values, indices);
}

/* ---- logsumexp, var, std, norm ------------------------------------------------------ */

/* The largest finite value of a floating dtype. */
static double finite_max(ferry_dtype d)
{
    return d == FERRY_FLOAT64 ? DBL_MAX : d == FERRY_FLOAT16 ? 65504.0 : d == FERRY_BFLOAT16 ? 3.3895313892515355e38 : FLT_MAX;
}

/* Backward formulas of the composed reductions, recorded as one node each with
 * PyTorch's names. params: reduced-dims mask (two 63-bit words), kind; scalar: the
 * divisor N - correction (var, std) or p (norm); saved: 0 = input, 2 = result. */
typedef enum comp_kind { C_LSE, C_VAR, C_STD, C_NORM } comp_kind;

static ferry_status comp_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    comp_kind kind = (comp_kind)p[2];
    double k = *ferry__node_scalar(n);
    int ndim = ferry__node_input_ndim(n, 0);
    const int64_t *shape = ferry__node_input_shape(n, 0);
    int64_t kshape[FERRY_MAX_DIMS];
    int dims[FERRY_MAX_DIMS], nd = 0;
    for (int d = 0; d < ndim; d++) {
        bool red = (p[d / 63] >> (d % 63)) & 1;
        kshape[d] = red ? 1 : shape[d];
        if (red)
            dims[nd++] = d;
    }
    ferry_tensor *x = ferry__saved_in(&s, n, 0), *r = ferry__saved_in(&s, n, 2);
    ferry_tensor *gk = STEP(&s, ferry_reshape(g, ndim, kshape));
    ferry_tensor *rk = STEP(&s, ferry_reshape(r, ndim, kshape));
    /* A 0-d input reduces over itself. */
    int all[FERRY_MAX_DIMS];
    int nall = nd;
    for (int i = 0; i < nd; i++)
        all[i] = dims[i];
    ferry_tensor *q = NULL;
    switch (kind) {
    case C_LSE: {
        ferry_tensor *d = STEP(&s, ferry_sub(x, rk));
        q = STEP(&s, ferry_exp(d));
        break;
    }
    case C_VAR:
    case C_STD: {
        ferry_tensor *mu = STEP(&s, nall ? ferry_mean(x, nall, all, true) : ferry_tensor_retain(x));
        ferry_tensor *d = STEP(&s, ferry_sub(x, mu));
        ferry_scalar sc = {.kind = FERRY_SCALAR_FLOAT, .value.f = kind == C_VAR ? 2.0 / k : 1.0 / k};
        ferry_tensor *d2 = STEP(&s, ferry_mul_scalar_ex(d, sc));
        q = kind == C_VAR ? d2 : STEP(&s, ferry_div(d2, rk));
        break;
    }
    case C_NORM: {
        /* sign(x) |x|^(p-1) / r^(p-1); 0 where r is 0 (as PyTorch), and for p = +-inf the
         * elements at the extreme share the gradient evenly. */
        ferry_tensor *a = STEP(&s, ferry_abs(x));
        ferry_tensor *az = STEP(&s, ferry_eq_scalar(x, 0.0));
        ferry_tensor *a1 = STEP(&s, ferry_add(a, az));
        ferry_tensor *sign = STEP(&s, ferry_div(x, a1));
        if (k == 0) {
            q = STEP(&s, ferry_mul_scalar(x, 0.0));
        } else if (isinf(k)) {
            ferry_tensor *hit = STEP(&s, ferry_eq(a, rk));
            ferry_tensor *cnt = STEP(&s, nall ? ferry_sum(hit, nall, all, true)
                                              : ferry__as_dtype(hit, FERRY_INT64));
            ferry_tensor *sh = STEP(&s, ferry_mul(sign, hit));
            q = STEP(&s, ferry_div(sh, cnt));
        } else if (k == 1) {
            q = sign;
        } else {
            ferry_tensor *rz = STEP(&s, ferry_eq_scalar(rk, 0.0));
            ferry_tensor *r1 = STEP(&s, ferry_add(rk, rz));
            ferry_tensor *ratio = STEP(&s, ferry_div(a, r1));
            ferry_scalar e = {.kind = FERRY_SCALAR_FLOAT, .value.f = k - 1};
            ferry_tensor *pw = k == 2 ? ratio : STEP(&s, ferry_pow_scalar_ex(ratio, e));
            q = STEP(&s, ferry_mul(sign, pw));
        }
        break;
    }
    }
    ferry_tensor *gq = STEP(&s, ferry_mul(gk, q));
    grads[0] = s.failed ? NULL : keep(STEP(&s, ferry_expand(gq, ndim, shape)));
    return ferry__scope_end(&s, grads, 1);
}

static ferry_tensor *record_comp(const char *name, comp_kind kind, ferry_tensor *t,
                                 const bool *mask, double scalar, ferry_tensor *r)
{
    ferry_node *n = ferry__node_create(name, comp_backward, 1, &t);
    int64_t *p = n ? ferry__node_params_alloc(n, 3) : NULL;
    ferry_status st = p ? FERRY_OK : ferry_last_status();
    if (p) {
        p[0] = p[1] = 0;
        for (int d = 0; d < t->ndim; d++)
            if (mask[d])
                p[d / 63] |= (int64_t)1 << (d % 63);
        p[2] = kind;
        *ferry__node_scalar(n) = scalar;
        st = ferry__node_save(n, 0, t, false);
        if (st == FERRY_OK)
            st = ferry__node_save(n, 2, r, true);
    }
    if (ferry__attach_or_fail(n, st, &r) != FERRY_OK)
        return NULL;
    return r;
}

static ferry_tensor *logsumexp_impl(ferry_tensor *t, int ndims, const int *dims, bool keepdim)
{
    bool mask[FERRY_MAX_DIMS];
    int64_t count, rshape[FERRY_MAX_DIMS], kshape[FERRY_MAX_DIMS];
    int rndim;
    if (reduced_dims("logsumexp", t, ndims, dims, keepdim, mask, &count, &rndim, rshape) != FERRY_OK)
        return NULL;
    scope s = {0};
    ferry_tensor *x = STEP(&s, ferry_dtype_is_floating(t->dtype) ? ferry_tensor_retain(t)
                                                                 : ferry__as_dtype(t, FERRY_FLOAT32));
    ferry_tensor *r = NULL;
    if (count == 0) {
        /* Nothing to shift by: log(0) = -inf, as PyTorch. */
        ferry_tensor *e = STEP(&s, ferry_exp(x));
        ferry_tensor *sm = STEP(&s, ferry_sum(e, ndims, dims, keepdim));
        r = s.failed ? NULL : ferry_log(sm);
    } else {
        /* The shift is a constant of the formula (no gradient through it); clamping it to
         * the finite range keeps -inf rows at -inf and +inf rows at +inf instead of NaN. */
        kept_shape(t, mask, kshape);
        ferry_tensor *xd = STEP(&s, ferry_tensor_detach(x));
        ferry_tensor *m = STEP(&s, ferry_max(xd, ndims, dims, true));
        double fm = x ? finite_max(x->dtype) : 0;
        ferry_tensor *m1 = STEP(&s, ferry_maximum_scalar(m, -fm));
        ferry_tensor *mc = STEP(&s, ferry_minimum_scalar(m1, fm));
        ferry_tensor *sh = STEP(&s, ferry_sub(x, mc));
        ferry_tensor *e = STEP(&s, ferry_exp(sh));
        ferry_tensor *sm = STEP(&s, ferry_sum(e, ndims, dims, keepdim));
        ferry_tensor *l = STEP(&s, ferry_log(sm));
        ferry_tensor *mr = STEP(&s, ferry_reshape(mc, rndim, rshape));
        r = s.failed ? NULL : ferry_add(l, mr);
    }
    for (int i = 0; i < s.n; i++)
        ferry_tensor_release(s.t[i]);
    return r;
}

FERRY_API ferry_tensor *ferry_logsumexp(ferry_tensor *t, int ndims, const int *dims, bool keepdim)
{
    bool mask[FERRY_MAX_DIMS];
    int64_t count, rshape[FERRY_MAX_DIMS];
    int rndim;
    if (reduced_dims("logsumexp", t, ndims, dims, keepdim, mask, &count, &rndim, rshape) != FERRY_OK)
        return NULL;
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    bool prev = pause_grad();
    ferry_tensor *r = logsumexp_impl(t, ndims, dims, keepdim);
    resume_grad(prev);
    return r && want ? record_comp("LogsumexpBackward0", C_LSE, t, mask, 0, r) : r;
}

static ferry_tensor *var_impl(const char *fn, ferry_tensor *t, int ndims, const int *dims,
                              bool keepdim, double correction, bool take_sqrt)
{
    bool mask[FERRY_MAX_DIMS];
    int64_t count, rshape[FERRY_MAX_DIMS];
    int rndim;
    if (reduced_dims(fn, t, ndims, dims, keepdim, mask, &count, &rndim, rshape) != FERRY_OK)
        return NULL;
    if (!ferry_dtype_is_floating(t->dtype)) {
        ferry__error(FERRY_ERR_UNSUPPORTED, "std and var only support floating point and complex "
                                            "dtypes");
        return NULL;
    }
    if (!isfinite(correction)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: correction must be finite", fn);
        return NULL;
    }
    /* PyTorch divides by max(0, N - correction): N <= correction gives inf or NaN. */
    double dof = (double)count - correction;
    if (dof < 0)
        dof = 0;
    bool want = ferry__grad_wanted(t, NULL);
    bool prev = pause_grad();
    scope s = {0};
    ferry_tensor *mu = STEP(&s, ferry_mean(t, ndims, dims, true));
    ferry_tensor *d = STEP(&s, ferry_sub(t, mu));
    ferry_tensor *d2 = STEP(&s, ferry_mul(d, d));
    ferry_tensor *ss = STEP(&s, ferry_sum(d2, ndims, dims, keepdim));
    ferry_tensor *v = STEP(&s, ferry_div_scalar_ex(ss, (ferry_scalar){.kind = FERRY_SCALAR_FLOAT,
                                                                      .value.f = dof}));
    ferry_tensor *r = s.failed ? NULL : take_sqrt ? ferry_sqrt(v) : ferry_tensor_retain(v);
    for (int i = 0; i < s.n; i++)
        ferry_tensor_release(s.t[i]);
    resume_grad(prev);
    if (!r || !want)
        return r;
    return record_comp(take_sqrt ? "StdBackward0" : "VarBackward0", take_sqrt ? C_STD : C_VAR, t,
                       mask, dof, r);
}

FERRY_API ferry_tensor *ferry_var(ferry_tensor *t, int ndims, const int *dims, bool keepdim,
                                  double correction)
{
    return var_impl("var", t, ndims, dims, keepdim, correction, false);
}

FERRY_API ferry_tensor *ferry_std(ferry_tensor *t, int ndims, const int *dims, bool keepdim,
                                  double correction)
{
    return var_impl("std", t, ndims, dims, keepdim, correction, true);
}

FERRY_API ferry_tensor *ferry_norm(ferry_tensor *t, double p, int ndims, const int *dims,
                                   bool keepdim)
{
    bool mask[FERRY_MAX_DIMS];
    int64_t count, rshape[FERRY_MAX_DIMS];
    int rndim;
    if (reduced_dims("norm", t, ndims, dims, keepdim, mask, &count, &rndim, rshape) != FERRY_OK)
        return NULL;
    if (!ferry_dtype_is_floating(t->dtype)) {
        ferry__error(FERRY_ERR_UNSUPPORTED,
                     "linalg.vector_norm: Expected a floating point or complex tensor as input. "
                     "Got %s",
                     ferry__torch_type_name(t->dtype));
        return NULL;
    }
    if (p != p) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "norm: p must not be NaN");
        return NULL;
    }
    if (isinf(p) && count == 0) {
        ferry__error(FERRY_ERR_INDEX,
                     "linalg.vector_norm cannot compute the %s norm on an empty tensor because "
                     "the operation does not have an identity",
                     p > 0 ? "inf" : "-inf");
        return NULL;
    }
    bool want = ferry__grad_wanted(t, NULL);
    bool prev = pause_grad();
    scope s = {0};
    ferry_tensor *r = NULL;
    if (p == 0) {
        ferry_tensor *nz = STEP(&s, ferry_ne_scalar(t, 0.0));
        ferry_tensor *c = STEP(&s, ferry_sum(nz, ndims, dims, keepdim));
        r = s.failed ? NULL : ferry__as_dtype(c, t->dtype);
    } else {
        ferry_tensor *a = STEP(&s, ferry_abs(t));
        if (isinf(p)) {
            r = s.failed ? NULL : (p > 0 ? ferry_max : ferry_min)(a, ndims, dims, keepdim);
        } else if (p == 1) {
            r = s.failed ? NULL : ferry_sum(a, ndims, dims, keepdim);
        } else if (p == 2) {
            ferry_tensor *sq = STEP(&s, ferry_mul(t, t));
            ferry_tensor *sm = STEP(&s, ferry_sum(sq, ndims, dims, keepdim));
            r = s.failed ? NULL : ferry_sqrt(sm);
        } else {
            ferry_tensor *pw = STEP(&s, ferry_pow_scalar_ex(a, (ferry_scalar){.kind = FERRY_SCALAR_FLOAT,
                                                                             .value.f = p}));
            ferry_tensor *sm = STEP(&s, ferry_sum(pw, ndims, dims, keepdim));
            r = s.failed ? NULL
                         : ferry_pow_scalar_ex(sm, (ferry_scalar){.kind = FERRY_SCALAR_FLOAT,
                                                                  .value.f = 1.0 / p});
        }
    }
    for (int i = 0; i < s.n; i++)
        ferry_tensor_release(s.t[i]);
    resume_grad(prev);
    if (!r || !want)
        return r;
    return record_comp("LinalgVectorNormBackward0", C_NORM, t, mask, p, r);
}

/* ---- scans and softmax ---------------------------------------------------------------- */

typedef enum line_kind { L_CUMSUM, L_CUMPROD, L_SOFTMAX, L_LOG_SOFTMAX } line_kind;

static const char *const line_names[] = {FERRY_OP_CUMSUM, FERRY_OP_CUMPROD, FERRY_OP_SOFTMAX,
                                         FERRY_OP_LOG_SOFTMAX};
static const char *const line_fns[] = {"cumsum", "cumprod", "softmax", "log_softmax"};
static const char *const line_nodes[] = {"CumsumBackward0", "CumprodBackward0",
                                         "SoftmaxBackward0", "LogSoftmaxBackward0"};

/* sum over j >= i along dim: the total minus the running sum before i. */
static ferry_tensor *reverse_cumsum(scope *s, ferry_tensor *g, int dim)
{
    ferry_tensor *c = STEP(s, ferry_cumsum(g, dim));
    ferry_tensor *tot = STEP(s, ferry_sum(g, 1, &dim, true));
    ferry_tensor *a = STEP(s, ferry_sub(tot, c));
    return STEP(s, ferry_add(a, g));
}

/* The gradient of y = cumprod(x) along dim, exact with zeros in x (PyTorch's result):
 * dL/dx_i = sum_{j >= i} g_j prod_{k <= j, k != i} x_k. Before a line's first zero that
 * is sum_{j >= i} g_j y_j / x_i; at the first zero z it is sum_{j >= z} g_j y'_j with
 * y' the cumprod of x with x_z replaced by 1; after it every product holds x_z, so 0.
 * Built from device ops without reading the data back (no synchronisation). */
static ferry_tensor *cumprod_grad(scope *s, ferry_tensor *g, ferry_tensor *x, ferry_tensor *y,
                                  int dim)
{
    /* Two scopes of their own: the steps outnumber one scope's slots. */
    scope l = {0}, m = {0};
    ferry_dtype dt = x->dtype;
    ferry_tensor *isz = STEP(&l, ferry_eq_scalar(x, 0.0));
    ferry_tensor *zc = STEP(&l, ferry_cumsum(isz, dim)); /* int64: zeros so far */
    ferry_tensor *before_b = STEP(&l, ferry_eq_scalar(zc, 0.0));
    ferry_tensor *one_b = STEP(&l, ferry_eq_scalar(zc, 1.0));
    ferry_tensor *first_b = STEP(&l, ferry_logical_and(one_b, isz));
    ferry_tensor *before = STEP(&l, ferry__as_dtype(before_b, dt));
    ferry_tensor *first = STEP(&l, ferry__as_dtype(first_b, dt));
    ferry_tensor *zf = STEP(&l, ferry__as_dtype(isz, dt));
    /* Before the first zero: divide by x where x != 0 (by 1 elsewhere, masked out). */
    ferry_tensor *gy = STEP(&l, ferry_mul(g, y));
    ferry_tensor *r = l.failed ? NULL : reverse_cumsum(&l, gy, dim);
    ferry_tensor *safe = STEP(&l, ferry_add(x, zf));
    ferry_tensor *a = STEP(&l, ferry_div(r, safe));
    ferry_tensor *am = STEP(&l, ferry_mul(a, before));
    /* At the first zero. */
    ferry_tensor *x1 = l.failed ? NULL : STEP(&m, ferry_add(x, first));
    ferry_tensor *y1 = STEP(&m, ferry_cumprod(x1, dim));
    ferry_tensor *gy1 = STEP(&m, ferry_mul(g, y1));
    ferry_tensor *b = m.failed ? NULL : reverse_cumsum(&m, gy1, dim);
    ferry_tensor *bm = STEP(&m, ferry_mul(b, first));
    ferry_tensor *res = l.failed || m.failed ? NULL : ferry_add(am, bm);
    ferry__scope_end(&l, NULL, 0);
    ferry__scope_end(&m, NULL, 0);
    return STEP(s, res);
}

/* params: kind, dim; saved: 0 = input, 2 = result. */
static ferry_status line_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    int64_t *p = ferry__node_params(n, NULL);
    line_kind kind = (line_kind)p[0];
    int dim = (int)p[1];
    ferry_tensor *x = ferry__saved_in(&s, n, 0), *y = ferry__saved_in(&s, n, 2);
    if (!s.failed && x->ndim == 0) {
        /* One element per line: the scans pass g on, softmax is constant 1 (or 0). */
        grads[0] = kind <= L_CUMPROD ? ferry_tensor_retain(g) : ferry_mul_scalar(g, 0.0);
        ferry__scope_end(&s, NULL, 0);
        return grads[0] ? FERRY_OK : ferry_last_status();
    }
    switch (kind) {
    case L_CUMSUM: grads[0] = s.failed ? NULL : keep(reverse_cumsum(&s, g, dim)); break;
    case L_CUMPROD: grads[0] = s.failed ? NULL : keep(cumprod_grad(&s, g, x, y, dim)); break;
    case L_SOFTMAX: {
        ferry_tensor *gy = STEP(&s, ferry_mul(g, y));
        ferry_tensor *sm = STEP(&s, ferry_sum(gy, 1, &dim, true));
        ferry_tensor *d = STEP(&s, ferry_sub(g, sm));
        grads[0] = keep(STEP(&s, ferry_mul(y, d)));
        break;
    }
    case L_LOG_SOFTMAX: {
        ferry_tensor *e = STEP(&s, ferry_exp(y));
        ferry_tensor *sm = STEP(&s, ferry_sum(g, 1, &dim, true));
        ferry_tensor *q = STEP(&s, ferry_mul(e, sm));
        grads[0] = keep(STEP(&s, ferry_sub(g, q)));
        break;
    }
    }
    return ferry__scope_end(&s, grads, 1);
}

static ferry_tensor *line_public(line_kind kind, ferry_tensor *t, int dim)
{
    const char *fn = line_fns[kind];
    if (ferry__check_tensor(t, fn) != FERRY_OK)
        return NULL;
    int d = dim;
    if (ferry__wrap_dim(&d, t->ndim) != FERRY_OK)
        return NULL;
    if (t->ndim == 0)
        d = 0;
    bool floating = ferry_dtype_is_floating(t->dtype);
    if (kind >= L_SOFTMAX && !floating) {
        ferry__error(FERRY_ERR_UNSUPPORTED, "\"%s_lastdim_kernel_impl\" not implemented for '%s'",
                     fn, ferry__torch_type_name(t->dtype));
        return NULL;
    }
    bool want = ferry__grad_wanted(t, NULL) && floating;
    bool prev = pause_grad();
    ferry_tensor *r = line_op(line_names[kind], t, d, accumulated_dtype(t->dtype));
    resume_grad(prev);
    if (!r || !want)
        return r;
    ferry_node *n = ferry__node_create(line_nodes[kind], line_backward, 1, &t);
    int64_t *p = n ? ferry__node_params_alloc(n, 2) : NULL;
    ferry_status st = p ? FERRY_OK : ferry_last_status();
    if (p) {
        p[0] = kind;
        p[1] = d;
        st = ferry__node_save(n, 0, t, false);
        if (st == FERRY_OK)
            st = ferry__node_save(n, 2, r, true);
    }
    if (ferry__attach_or_fail(n, st, &r) != FERRY_OK)
        return NULL;
    return r;
}

FERRY_API ferry_tensor *ferry_cumsum(ferry_tensor *t, int dim)
{
    return line_public(L_CUMSUM, t, dim);
}

FERRY_API ferry_tensor *ferry_cumprod(ferry_tensor *t, int dim)
{
    return line_public(L_CUMPROD, t, dim);
}

FERRY_API ferry_tensor *ferry_softmax(ferry_tensor *t, int dim)
{
    return line_public(L_SOFTMAX, t, dim);
}

FERRY_API ferry_tensor *ferry_log_softmax(ferry_tensor *t, int dim)
{
    return line_public(L_LOG_SOFTMAX, t, dim);
}

/* Triangles, diagonals and constant padding (API.md "More operations", Shape): tril and
 * triu run the named kernel "ferry.tri" (ferry/ops/shape2.h); diagonal is a strided view
 * with its own backward node; diag_embed and pad fill a new tensor and copy into a view
 * of it on the tensor's device. Messages follow PyTorch's. */
#include <stdlib.h>
#include <string.h>

#include <ferry/ops/shape2.h>

#include "ops/ops_internal.h"

/* ---- tril / triu ---- */

static ferry_tensor *tri_impl(ferry_tensor *t, int64_t diagonal, bool upper);

/* params: diagonal, upper. The gradient keeps the same triangle. */
static ferry_status tri_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int64_t *p = ferry__node_params(n, NULL);
    grads[0] = tri_impl(g, p[0], p[1] != 0);
    return grads[0] ? FERRY_OK : ferry_last_status();
}

static ferry_tensor *tri_forward(ferry_tensor *t, int64_t diagonal, bool upper)
{
    ferry_tensor *r = ferry__new_like(t, t->dtype, t->ndim, t->shape);
    if (!r || ferry__numel(t->ndim, t->shape) == 0)
        return r;
    /* The batch dims as one, a view when t's strides allow it, else a copy on t's
     * device; the kernel takes any strides in the three dims left. */
    int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
    int64_t shape3[3] = {ferry__numel(t->ndim - 2, t->shape), rows, cols};
    ferry_tensor *src = ferry_reshape(t, 3, shape3);
    if (!src) {
        ferry_tensor_release(r);
        return NULL;
    }
    operand oo, oi;
    ferry__operand_of(&oo, r);
    ferry__operand_of(&oi, src);
    oo.ndim = 3;
    for (int d = 0; d < 3; d++)
        oo.shape[d] = shape3[d];
    oo.strides[0] = rows * cols;
    oo.strides[1] = cols;
    oo.strides[2] = 1;
    ferry_tri_params p = {.diagonal = diagonal, .upper = upper ? 1 : 0, .reserved = 0};
    operand *ops[2] = {&oo, &oi};
    ferry_status st = ferry__launch_named(FERRY_OP_TRI, ops, 2, 1, false, &p, sizeof p);
    ferry_tensor_release(src);
    if (st != FERRY_OK) {
        ferry_tensor_release(r);
        return NULL;
    }
    return r;
}

static ferry_tensor *tri_impl(ferry_tensor *t, int64_t diagonal, bool upper)
{
    const char *fn = upper ? "triu" : "tril";
    if (ferry__check_tensor(t, fn) != FERRY_OK)
        return NULL;
    if (t->ndim < 2) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: input tensor must have at least 2 dimensions",
                     fn);
        return NULL;
    }
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    bool prev = pause_grad();
    ferry_tensor *r = tri_forward(t, diagonal, upper);
    resume_grad(prev);
    if (!r || !want)
        return r;
    ferry_node *n = ferry__node_create(upper ? "TriuBackward0" : "TrilBackward0", tri_backward, 1,
                                       &t);
    int64_t *p = n ? ferry__node_params_alloc(n, 2) : NULL;
    if (p) {
        p[0] = diagonal;
        p[1] = upper;
    }
    ferry__attach_or_fail(n, p ? FERRY_OK : ferry_last_status(), &r);
    return r;
}

FERRY_API ferry_tensor *ferry_tril(ferry_tensor *t, int64_t diagonal)
{
    return tri_impl(t, diagonal, false);
}

FERRY_API ferry_tensor *ferry_triu(ferry_tensor *t, int64_t diagonal)
{
    return tri_impl(t, diagonal, true);
}

/* ---- diagonal (a view) and diag_embed (its adjoint) ---- */

/* Checks dims as torch.diagonal does for a tensor of ndim dims (wrapped in place); false
 * with the error set. */
static bool diag_dims(int ndim, int *dim1, int *dim2)
{
    int given1 = *dim1, given2 = *dim2; /* PyTorch's message names the dims as given */
    if (ferry__wrap_dim(dim1, ndim) != FERRY_OK || ferry__wrap_dim(dim2, ndim) != FERRY_OK)
        return false;
    if (*dim1 == *dim2) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "diagonal dimensions cannot be identical %d, %d",
                     given1, given2);
        return false;
    }
    return true;
}

/* Length of the offset diagonal of a (s1, s2) plane: 0 when the offset leaves it.
 * Written so that no offset (INT64_MIN included) overflows. */
static int64_t diag_length(int64_t s1, int64_t s2, int64_t offset)
{
    if (offset >= 0)
        return offset >= s2 ? 0 : (s1 < s2 - offset ? s1 : s2 - offset);
    return offset <= -s1 ? 0 : (s1 + offset < s2 ? s1 + offset : s2);
}

/* The view, without autograd; dims already checked. The other dims in order, then the
 * diagonal, as PyTorch. */
static ferry_tensor *diagonal_view(ferry_tensor *t, int64_t offset, int dim1, int dim2)
{
    int64_t len = diag_length(t->shape[dim1], t->shape[dim2], offset);
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d == dim1 || d == dim2)
            continue;
        shape[nd] = t->shape[d];
        strides[nd++] = t->strides[d];
    }
    shape[nd] = len;
    strides[nd++] = t->strides[dim1] + t->strides[dim2];
    /* An empty view keeps t's offset; a non-empty one has |offset| below a size, so the
     * step to its first element stays inside t. */
    int64_t delta = 0;
    if (ferry__numel(nd, shape) > 0)
        delta = offset >= 0 ? offset * t->strides[dim2] : -offset * t->strides[dim1];
    if (ferry__check_geometry("diagonal", t->dtype, nd, shape, strides) != FERRY_OK)
        return NULL;
    ferry__storage_retain(t->storage);
    int64_t off = (int64_t)t->byte_offset + delta * (int64_t)ferry_dtype_size(t->dtype);
    ferry_tensor *v = ferry__tensor_make(t->storage, (size_t)off, t->dtype, nd, shape, strides);
    if (v) {
        v->read_only = t->read_only;
        v->requires_grad = false;
    }
    return v;
}

/* params: offset, dim1, dim2 (of the embedding's result). */
static ferry_status embed_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int64_t *p = ferry__node_params(n, NULL);
    grads[0] = ferry_diagonal(g, p[0], (int)p[1], (int)p[2]);
    return grads[0] ? FERRY_OK : ferry_last_status();
}

/* Zeros of (ndim, shape) with t written into their diagonal view (offset, dim1, dim2),
 * whose shape is t's. Differentiable in t: the backward takes the diagonal again. Both
 * diag_embed and the gradient of diagonal are this. */
static ferry_tensor *embed_into(ferry_tensor *t, int ndim, const int64_t *shape, int64_t offset,
                                int dim1, int dim2, const char *node)
{
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    bool prev = pause_grad();
    ferry_tensor *r = ferry__new_like(t, t->dtype, ndim, shape);
    ferry_status st = r ? FERRY_OK : ferry_last_status();
    if (st == FERRY_OK && ferry__numel(ndim, shape) > 0)
        st = ferry__fill(r, 0.0);
    if (st == FERRY_OK && ferry__numel(t->ndim, t->shape) > 0) {
        ferry_tensor *v = diagonal_view(r, offset, dim1, dim2);
        st = v ? ferry__copy_into(v, t) : ferry_last_status();
        ferry_tensor_release(v);
    }
    resume_grad(prev);
    if (st != FERRY_OK) {
        ferry_tensor_release(r);
        return NULL;
    }
    if (!want)
        return r;
    ferry_node *n = ferry__node_create(node, embed_backward, 1, &t);
    int64_t *p = n ? ferry__node_params_alloc(n, 3) : NULL;
    if (p) {
        p[0] = offset;
        p[1] = dim1;
        p[2] = dim2;
    }
    ferry__attach_or_fail(n, p ? FERRY_OK : ferry_last_status(), &r);
    return r;
}

/* params: offset, dim1, dim2 (wrapped, of the input). */
static ferry_status diagonal_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int64_t *p = ferry__node_params(n, NULL);
    grads[0] = embed_into(g, ferry__node_input_ndim(n, 0), ferry__node_input_shape(n, 0), p[0],
                          (int)p[1], (int)p[2], "DiagonalBackwardBackward0");
    return grads[0] ? FERRY_OK : ferry_last_status();
}

FERRY_API ferry_tensor *ferry_diagonal(ferry_tensor *t, int64_t offset, int dim1, int dim2)
{
    if (ferry__check_tensor(t, "diagonal") != FERRY_OK)
        return NULL;
    if (!diag_dims(t->ndim, &dim1, &dim2))
        return NULL;
    ferry_tensor *r = diagonal_view(t, offset, dim1, dim2);
    if (!r || !ferry__grad_wanted(t, NULL) || !ferry_dtype_is_floating(t->dtype))
        return r;
    ferry_node *n = ferry__node_create("DiagonalBackward0", diagonal_backward, 1, &t);
    int64_t *p = n ? ferry__node_params_alloc(n, 3) : NULL;
    if (p) {
        p[0] = offset;
        p[1] = dim1;
        p[2] = dim2;
    }
    ferry__attach_or_fail(n, p ? FERRY_OK : ferry_last_status(), &r);
    return r;
}

FERRY_API ferry_tensor *ferry_diag_embed(ferry_tensor *t, int64_t offset, int dim1, int dim2)
{
    if (ferry__check_tensor(t, "diag_embed") != FERRY_OK)
        return NULL;
    if (t->ndim + 1 > FERRY_MAX_DIMS) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "diag_embed: expected an input of at most %d dims, but got %d",
                     FERRY_MAX_DIMS - 1, t->ndim);
        return NULL;
    }
    /* A 0-d input gives a 1-d result, whose two dims can only be the same one: PyTorch's
     * "cannot be identical" refusal. */
    int nd = t->ndim + 1;
    if (!diag_dims(nd, &dim1, &dim2))
        return NULL;
    int64_t len = t->shape[t->ndim - 1], side;
    if (offset == INT64_MIN || __builtin_add_overflow(len, offset < 0 ? -offset : offset, &side)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "diag_embed: offset %lld is too large",
                     (long long)offset);
        return NULL;
    }
    int64_t shape[FERRY_MAX_DIMS];
    for (int d = 0, k = 0; d < nd; d++)
        shape[d] = d == dim1 || d == dim2 ? side : t->shape[k++];
    int64_t numel;
    if (ferry__check_shape("diag_embed", t->dtype, nd, shape, &numel) != FERRY_OK)
        return NULL;
    return embed_into(t, nd, shape, offset, dim1, dim2, "DiagEmbedBackward0");
}

/* ---- constant padding ---- */

/* params: for each dim, the start and length of the input inside the result. */
static ferry_status pad_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int64_t *p = ferry__node_params(n, NULL);
    int nd = ferry__node_input_ndim(n, 0);
    ferry_tensor *cur = ferry_tensor_retain(g);
    for (int d = 0; d < nd && cur; d++) {
        if (p[2 * d] == 0 && p[2 * d + 1] == cur->shape[d])
            continue;
        ferry_tensor *next = ferry_narrow(cur, d, p[2 * d], p[2 * d + 1]);
        ferry_tensor_release(cur);
        cur = next;
    }
    grads[0] = cur;
    return cur ? FERRY_OK : ferry_last_status();
}

FERRY_API ferry_tensor *ferry_pad(ferry_tensor *t, int n, const int64_t *pads, double value)
{
    if (ferry__check_tensor(t, "pad") != FERRY_OK)
        return NULL;
    if (n < 0 || (n > 0 && !pads)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "pad: pads is NULL or n (%d) is negative", n);
        return NULL;
    }
    if (n % 2 != 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "Padding length must be divisible by 2");
        return NULL;
    }
    if (n / 2 > t->ndim) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "Padding length should be less than or equal to two times the input "
                     "dimension but got padding length %d and input of dimension %d",
                     n, t->ndim);
        return NULL;
    }
    /* pads[2k], pads[2k + 1]: before and after along dim ndim - 1 - k. Negative pads
     * crop the input (a narrow, differentiable), the rest is filled. */
    int64_t shape[FERRY_MAX_DIMS], start[FERRY_MAX_DIMS], keep_start[FERRY_MAX_DIMS];
    int64_t keep_len[FERRY_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) {
        shape[d] = t->shape[d];
        start[d] = keep_start[d] = 0;
        keep_len[d] = t->shape[d];
    }
    for (int k = 0; k < n / 2; k++) {
        int d = t->ndim - 1 - k;
        int64_t lo = pads[2 * k], hi = pads[2 * k + 1], size = t->shape[d], out;
        if (__builtin_add_overflow(size, lo, &out) || __builtin_add_overflow(out, hi, &out)) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "pad: the result's size along dim %d overflows",
                         d);
            return NULL;
        }
        /* PyTorch crops first (narrows), and a crop past the dim's size fails there;
         * after the crops the output cannot be negative any more. */
        int64_t clo = lo < 0 ? lo : 0, chi = hi < 0 ? hi : 0, kept;
        if (__builtin_add_overflow(size, clo, &kept) || __builtin_add_overflow(kept, chi, &kept) ||
            kept < 0) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "narrow(): length must be non-negative.");
            return NULL;
        }
        shape[d] = out;
        /* The input's kept part [ks, ks + kl) lands at start in the result. */
        int64_t ks = lo < 0 ? -lo : 0;
        int64_t ke = hi < 0 ? size + hi : size;
        int64_t kl = ke > ks ? ke - ks : 0;
        keep_start[d] = ks > size ? size : ks;
        keep_len[d] = kl;
        start[d] = lo > 0 ? lo : 0;
    }
    int64_t numel;
    if (ferry__check_shape("pad", t->dtype, t->ndim, shape, &numel) != FERRY_OK)
        return NULL;
    bool want = ferry__grad_wanted(t, NULL) && ferry_dtype_is_floating(t->dtype);
    /* The crop first, with grad on: its narrows carry the gradient back to t. */
    ferry_tensor *kept = ferry_tensor_retain(t);
    for (int d = 0; d < t->ndim && kept; d++) {
        if (keep_start[d] == 0 && keep_len[d] == t->shape[d])
            continue;
        ferry_tensor *next = ferry_narrow(kept, d, keep_start[d], keep_len[d]);
        ferry_tensor_release(kept);
        kept = next;
    }
    if (!kept)
        return NULL;
    for (int d = 0; d < t->ndim; d++)
        if (kept->shape[d] == 0)
            start[d] = 0; /* nothing lands there; keeps the backward's narrow in range */
    bool prev = pause_grad();
    ferry_tensor *r = ferry__new_like(t, t->dtype, t->ndim, shape);
    ferry_status st = r ? FERRY_OK : ferry_last_status();
    if (st == FERRY_OK && numel > 0)
        st = ferry__fill(r, value);
    if (st == FERRY_OK && ferry__numel(kept->ndim, kept->shape) > 0) {
        ferry_tensor *inner = ferry_tensor_retain(r);
        for (int d = 0; d < t->ndim && inner; d++) {
            ferry_tensor *next = ferry_narrow(inner, d, start[d], kept->shape[d]);
            ferry_tensor_release(inner);
            inner = next;
        }
        st = inner ? ferry__copy_into(inner, kept) : ferry_last_status();
        ferry_tensor_release(inner);
    }
    resume_grad(prev);
    if (st != FERRY_OK) {
        ferry_tensor_release(r);
        ferry_tensor_release(kept);
        return NULL;
    }
    if (want && ferry__grad_wanted(kept, NULL)) {
        ferry_node *node = ferry__node_create("ConstantPadNdBackward0", pad_backward, 1, &kept);
        int64_t *p = node ? ferry__node_params_alloc(node, 2 * (t->ndim > 0 ? t->ndim : 1)) : NULL;
        if (p) {
            for (int d = 0; d < t->ndim; d++) {
                p[2 * d] = start[d];
                p[2 * d + 1] = kept->shape[d];
            }
            if (t->ndim == 0)
                p[0] = p[1] = 0;
        }
        ferry__attach_or_fail(node, p ? FERRY_OK : ferry_last_status(), &r);
    }
    ferry_tensor_release(kept);
    return r;
}

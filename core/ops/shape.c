/* Joining, splitting and reshaping ops built from views and the copy path: narrow,
 * split, chunk, unbind, movedim and broadcast_to are views (their gradients come from
 * the view nodes they are made of); cat and stack copy into narrowed views of one
 * output, so each device runs its own copy kernel; flip copies a negative-stride view.
 * Messages follow PyTorch's. */
#include <stdlib.h>
#include <string.h>

#include "ops/ops_internal.h"

FERRY_API ferry_tensor *ferry_narrow(ferry_tensor *t, int dim, int64_t start, int64_t length)
{
    if (ferry__check_tensor(t, "ferry_narrow") != FERRY_OK)
        return NULL;
    if (t->ndim == 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "narrow() cannot be applied to a 0-dim tensor.");
        return NULL;
    }
    if (ferry__wrap_dim(&dim, t->ndim) != FERRY_OK)
        return NULL;
    if (length < 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "narrow(): length must be non-negative.");
        return NULL;
    }
    int64_t size = t->shape[dim];
    if (start < -size || start > size) {
        ferry__error(FERRY_ERR_INDEX,
                     "start out of range (expected to be in range of [%lld, %lld], but got %lld)",
                     (long long)-size, (long long)size, (long long)start);
        return NULL;
    }
    if (start < 0)
        start += size;
    /* start <= size here, so size - start cannot wrap; comparing this way avoids
     * start + length overflowing for a length near INT64_MAX. */
    if (length > size - start) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "start (%lld) + length (%lld) exceeds dimension size (%lld).",
                     (long long)start, (long long)length, (long long)size);
        return NULL;
    }
    return ferry_slice(t, dim, start, start + length, 1);
}

/* Releases the first n results and clears them, so a failure leaves no half list. */
static int fail_list(ferry_tensor **out, int n)
{
    for (int i = 0; i < n; i++) {
        ferry_tensor_release(out[i]);
        out[i] = NULL;
    }
    return -1;
}

static bool check_list_out(const char *fn, ferry_tensor **out, int cap)
{
    if (cap < 0 || (cap > 0 && !out)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: out is NULL or cap (%d) is negative", fn,
                     cap);
        return false;
    }
    return true;
}

/* Pieces of `size` along dim (the last may be shorter); count returned, at most cap
 * written. Returns -1 on error. */
static int split_pieces(ferry_tensor *t, int64_t size, int dim, ferry_tensor **out, int cap)
{
    int64_t n = t->shape[dim];
    int64_t count = size == 0 ? 1 : (n == 0 ? 1 : (n + size - 1) / size);
    if (count > INT32_MAX) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "split: %lld pieces do not fit an int",
                     (long long)count);
        return -1;
    }
    for (int64_t i = 0; i < count && i < cap; i++) {
        int64_t start = i * size;
        int64_t len = n - start < size ? n - start : size;
        out[i] = ferry_narrow(t, dim, start, len);
        if (!out[i])
            return fail_list(out, (int)i);
    }
    return (int)count;
}

FERRY_API int ferry_split(ferry_tensor *t, int64_t size, int dim, ferry_tensor **out, int cap)
{
    if (ferry__check_tensor(t, "ferry_split") != FERRY_OK || !check_list_out("ferry_split", out, cap))
        return -1;
    if (t->ndim == 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "split expects at least a 1-dimensional tensor");
        return -1;
    }
    if (ferry__wrap_dim(&dim, t->ndim) != FERRY_OK)
        return -1;
    if (size < 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "split expects split_size be non-negative, but got split_size=%lld",
                     (long long)size);
        return -1;
    }
    if (size == 0 && t->shape[dim] != 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "split_size can only be 0 if dimension size is 0, but got dimension size "
                     "of %lld",
                     (long long)t->shape[dim]);
        return -1;
    }
    return split_pieces(t, size, dim, out, cap);
}

FERRY_API int ferry_split_sizes(ferry_tensor *t, int n, const int64_t *sizes, int dim,
                                ferry_tensor **out, int cap)
{
    if (ferry__check_tensor(t, "ferry_split_sizes") != FERRY_OK ||
        !check_list_out("ferry_split_sizes", out, cap))
        return -1;
    if (t->ndim == 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "split expects at least a 1-dimensional tensor");
        return -1;
    }
    if (ferry__wrap_dim(&dim, t->ndim) != FERRY_OK)
        return -1;
    if (n < 0 || (n > 0 && !sizes)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_split_sizes: sizes is NULL");
        return -1;
    }
    int64_t total = 0;
    bool bad = false;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "split_with_sizes expects split_sizes have only non-negative entries, "
                         "but got split_sizes=[...]");
            return -1;
        }
        if (__builtin_add_overflow(total, sizes[i], &total))
            bad = true;
    }
    if (bad || total != t->shape[dim]) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "split_with_sizes expects split_sizes to sum exactly to %lld (input tensor's "
                     "size at dimension %d), but got split_sizes with sum %lld",
                     (long long)t->shape[dim], dim, (long long)total);
        return -1;
    }
    int64_t start = 0;
    for (int i = 0; i < n && i < cap; i++) {
        out[i] = ferry_narrow(t, dim, start, sizes[i]);
        if (!out[i])
            return fail_list(out, i);
        start += sizes[i];
    }
    return n;
}

FERRY_API int ferry_chunk(ferry_tensor *t, int chunks, int dim, ferry_tensor **out, int cap)
{
    if (ferry__check_tensor(t, "ferry_chunk") != FERRY_OK || !check_list_out("ferry_chunk", out, cap))
        return -1;
    if (t->ndim == 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "chunk expects at least a 1-dimensional tensor");
        return -1;
    }
    if (chunks <= 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "chunk expects `chunks` to be greater than 0, got: %d", chunks);
        return -1;
    }
    if (ferry__wrap_dim(&dim, t->ndim) != FERRY_OK)
        return -1;
    int64_t n = t->shape[dim];
    if (n == 0) {
        /* torch gives `chunks` empty pieces of an empty dim. */
        for (int i = 0; i < chunks && i < cap; i++) {
            out[i] = ferry_narrow(t, dim, 0, 0);
            if (!out[i])
                return fail_list(out, i);
        }
        return chunks;
    }
    int64_t size = (n + chunks - 1) / chunks;
    return split_pieces(t, size, dim, out, cap);
}

FERRY_API int ferry_unbind(ferry_tensor *t, int dim, ferry_tensor **out, int cap)
{
    if (ferry__check_tensor(t, "ferry_unbind") != FERRY_OK || !check_list_out("ferry_unbind", out, cap))
        return -1;
    if (t->ndim == 0) {
        ferry__error(FERRY_ERR_INDEX, "Dimension specified as %d but tensor has no dimensions", dim);
        return -1;
    }
    if (ferry__wrap_dim(&dim, t->ndim) != FERRY_OK)
        return -1;
    int64_t n = t->shape[dim];
    if (n > INT32_MAX) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "unbind: %lld pieces do not fit an int",
                     (long long)n);
        return -1;
    }
    for (int64_t i = 0; i < n && i < cap; i++) {
        ferry_tensor *s = ferry_narrow(t, dim, i, 1);
        out[i] = s ? ferry_squeeze(s, dim) : NULL;
        ferry_tensor_release(s);
        if (!out[i])
            return fail_list(out, (int)i);
    }
    return (int)n;
}

FERRY_API ferry_tensor *ferry_movedim(ferry_tensor *t, int n, const int *source,
                                      const int *destination)
{
    if (ferry__check_tensor(t, "ferry_movedim") != FERRY_OK)
        return NULL;
    int nd = t->ndim;
    if (n < 0 || n > (nd > 0 ? nd : 1) || (n > 0 && (!source || !destination))) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "movedim: Invalid source or destination dims: source (%d dims) should "
                     "contain the same number of dims as destination (%d dims)",
                     n, n);
        return NULL;
    }
    int src[FERRY_MAX_DIMS], dst[FERRY_MAX_DIMS];
    bool used_src[FERRY_MAX_DIMS] = {false}, used_dst[FERRY_MAX_DIMS] = {false};
    for (int i = 0; i < n; i++) {
        src[i] = source[i];
        dst[i] = destination[i];
        if (ferry__wrap_dim(&src[i], nd) != FERRY_OK || ferry__wrap_dim(&dst[i], nd) != FERRY_OK)
            return NULL;
        if (used_src[src[i]]) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "movedim: repeated dim in `source`");
            return NULL;
        }
        if (used_dst[dst[i]]) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "movedim: repeated dim in `destination`");
            return NULL;
        }
        used_src[src[i]] = used_dst[dst[i]] = true;
    }
    if (nd == 0)
        return ferry_permute(t, 0, NULL);
    /* Named dims go to their destinations; the rest keep their order in the free slots. */
    int perm[FERRY_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        perm[i] = -1;
    for (int i = 0; i < n; i++)
        perm[dst[i]] = src[i];
    int next = 0;
    for (int i = 0; i < nd; i++) {
        if (perm[i] >= 0)
            continue;
        while (used_src[next])
            next++;
        perm[i] = next++;
    }
    return ferry_permute(t, nd, perm);
}

FERRY_API ferry_tensor *ferry_broadcast_to(ferry_tensor *t, int ndim, const int64_t *shape)
{
    return ferry_expand(t, ndim, shape);
}

static ferry_tensor *like(const ferry_tensor *t, const char *fn)
{
    if (ferry__check_tensor(t, fn) != FERRY_OK)
        return NULL;
    return ferry__new_like(t, t->dtype, t->ndim, t->shape);
}

FERRY_API ferry_tensor *ferry_empty_like(const ferry_tensor *t)
{
    return like(t, "ferry_empty_like");
}

FERRY_API ferry_tensor *ferry_full_like(const ferry_tensor *t, double value)
{
    ferry_tensor *r = like(t, "ferry_full_like");
    if (r && ferry_tensor_fill(r, value) != FERRY_OK) {
        ferry_tensor_release(r);
        return NULL;
    }
    return r;
}

FERRY_API ferry_tensor *ferry_zeros_like(const ferry_tensor *t)
{
    return ferry_full_like(t, 0.0);
}

FERRY_API ferry_tensor *ferry_ones_like(const ferry_tensor *t)
{
    return ferry_full_like(t, 1.0);
}

/* ---- cat and stack ---- */

/* Saved params: dim, then the input's extent along dim for each of the two inputs. */
static ferry_status cat_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int64_t *p = ferry__node_params(n, NULL);
    int dim = (int)p[0];
    if (ferry__node_needs(n, 0))
        grads[0] = ferry_narrow(g, dim, 0, p[1]);
    if (ferry__node_needs(n, 1))
        grads[1] = ferry_narrow(g, dim, p[1], p[2]);
    if ((ferry__node_needs(n, 0) && !grads[0]) || (ferry__node_needs(n, 1) && !grads[1])) {
        ferry_tensor_release(grads[0]);
        ferry_tensor_release(grads[1]);
        grads[0] = grads[1] = NULL;
        return ferry_last_status();
    }
    return FERRY_OK;
}

/* A legacy empty 1-D tensor (shape (0,)) takes no part in cat, as in PyTorch. */
static bool skipped(const ferry_tensor *t)
{
    return t->ndim == 1 && t->shape[0] == 0;
}

/* The copying forward, with grad recording off. */
static ferry_tensor *cat_forward(ferry_tensor *const *ts, int n, int dim)
{
    const ferry_tensor *ref = NULL;
    int refi = -1;
    ferry_dtype dt = FERRY_BOOL;
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (ferry__check_tensor(ts[i], "ferry_cat") != FERRY_OK)
            return NULL;
        if (ts[i]->ndim == 0) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "zero-dimensional tensor (at position %d) cannot be concatenated", i);
            return NULL;
        }
        dt = first ? ts[i]->dtype : ferry__promote(dt, ts[i]->dtype);
        first = false;
        if (!ref && !skipped(ts[i])) {
            ref = ts[i];
            refi = i;
        }
    }
    if (!ref) { /* all empty 1-D: the result is one of them */
        int d = dim;
        if (ferry__wrap_dim(&d, 1) != FERRY_OK)
            return NULL;
        int64_t zero = 0;
        return ferry__new_like(ts[0], dt, 1, &zero);
    }
    if (ferry__wrap_dim(&dim, ref->ndim) != FERRY_OK)
        return NULL;
    int64_t shape[FERRY_MAX_DIMS];
    memcpy(shape, ref->shape, (size_t)ref->ndim * sizeof shape[0]);
    shape[dim] = 0;
    for (int i = 0; i < n; i++) {
        const ferry_tensor *t = ts[i];
        if (ferry__check_same_device(ref, t) != FERRY_OK)
            return NULL;
        if (skipped(t))
            continue;
        if (t->ndim != ref->ndim) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "Tensors must have same number of dimensions: got %d and %d", ref->ndim,
                         t->ndim);
            return NULL;
        }
        for (int d = 0; d < ref->ndim; d++)
            if (d != dim && t->shape[d] != ref->shape[d]) {
                ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                             "Sizes of tensors must match except in dimension %d. Expected size "
                             "%lld but got size %lld for tensor number %d in the list.",
                             dim, (long long)ref->shape[d], (long long)t->shape[d], i);
                return NULL;
            }
        if (__builtin_add_overflow(shape[dim], t->shape[dim], &shape[dim])) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "cat: the result's size along dim %d overflows",
                         dim);
            return NULL;
        }
    }
    (void)refi;
    ferry_tensor *r = ferry__new_like(ref, dt, ref->ndim, shape);
    if (!r)
        return NULL;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (skipped(ts[i]))
            continue;
        int64_t len = ts[i]->shape[dim];
        if (len == 0)
            continue;
        ferry_tensor *v = ferry_narrow(r, dim, at, len);
        ferry_status st = v ? ferry__copy_into(v, ts[i]) : ferry_last_status();
        ferry_tensor_release(v);
        if (st != FERRY_OK) {
            ferry_tensor_release(r);
            return NULL;
        }
        at += len;
    }
    return r;
}

/* Records a two-input cat node on r (inputs a, b; their extents along dim). */
static ferry_tensor *record_cat(ferry_tensor *r, ferry_tensor *a, ferry_tensor *b, int dim,
                                int64_t la, int64_t lb)
{
    ferry_tensor *in[2] = {a, b};
    ferry_node *n = ferry__node_create("CatBackward0", cat_backward, 2, in);
    if (!n) {
        ferry__attach_or_fail(NULL, ferry_last_status(), &r);
        return r;
    }
    int64_t *p = ferry__node_params_alloc(n, 3);
    ferry_status st = FERRY_OK;
    if (p) {
        p[0] = dim;
        p[1] = la;
        p[2] = lb;
    } else {
        st = ferry_last_status();
    }
    ferry__attach_or_fail(n, st, &r);
    return r;
}

static int64_t extent(const ferry_tensor *t, int dim)
{
    return skipped(t) ? 0 : t->shape[dim];
}

FERRY_API ferry_tensor *ferry_cat(const ferry_tensor *const *ts, int n, int dim)
{
    if (n <= 0 || !ts) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "torch.cat(): expected a non-empty list of Tensors");
        return NULL;
    }
    ferry_tensor *const *in = (ferry_tensor *const *)ts;
    bool want = false;
    for (int i = 0; i < n; i++)
        want = want || ferry__grad_wanted(in[i], NULL);
    bool prev = pause_grad();
    ferry_tensor *r = cat_forward(in, n, dim);
    resume_grad(prev);
    if (!r || !want || !ferry_dtype_is_floating(r->dtype))
        return r;
    /* A node has two inputs, so n inputs record as a left fold of two-input cats: each
     * step's result is the next step's left input. Copies are paid only with grad on. */
    int d = dim;
    const ferry_tensor *ref = NULL;
    for (int i = 0; i < n && !ref; i++)
        if (!skipped(in[i]))
            ref = in[i];
    if (ref)
        ferry__wrap_dim(&d, ref->ndim);
    else
        d = 0;
    if (n == 1) {
        ferry_tensor_release(r);
        return ferry_tensor_clone(in[0]); /* a copy carrying CloneBackward0 */
    }
    ferry_tensor_release(r);
    ferry_tensor *acc = NULL;
    for (int i = 1; i < n; i++) {
        ferry_tensor *left = acc ? acc : in[0];
        ferry_tensor *pair[2] = {left, in[i]};
        prev = pause_grad();
        ferry_tensor *step = cat_forward(pair, 2, dim);
        resume_grad(prev);
        if (step && ferry__grad_wanted(left, in[i]))
            step = record_cat(step, left, in[i], d, extent(left, d), extent(in[i], d));
        ferry_tensor_release(acc);
        acc = step;
        if (!acc)
            return NULL;
    }
    return acc;
}

FERRY_API ferry_tensor *ferry_stack(const ferry_tensor *const *ts, int n, int dim)
{
    if (n <= 0 || !ts) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "stack expects a non-empty TensorList");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (ferry__check_tensor(ts[i], "ferry_stack") != FERRY_OK)
            return NULL;
    const ferry_tensor *t0 = ts[0];
    for (int i = 1; i < n; i++) {
        bool same = ts[i]->ndim == t0->ndim &&
                    memcmp(ts[i]->shape, t0->shape, (size_t)t0->ndim * sizeof t0->shape[0]) == 0;
        if (!same) {
            char a[512], b[512];
            ferry__shape_str(t0->ndim, t0->shape, a, sizeof a);
            ferry__shape_str(ts[i]->ndim, ts[i]->shape, b, sizeof b);
            a[0] = b[0] = '[';
            a[strlen(a) - 1] = b[strlen(b) - 1] = ']';
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "stack expects each tensor to be equal size, but got %s at entry 0 and "
                         "%s at entry %d",
                         a, b, i);
            return NULL;
        }
    }
    int d = dim;
    if (ferry__wrap_dim(&d, t0->ndim + 1) != FERRY_OK)
        return NULL;
    ferry_tensor *small[16];
    ferry_tensor **u = n <= 16 ? small : calloc((size_t)n, sizeof *u);
    if (!u) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for stack");
        return NULL;
    }
    int made = 0;
    for (; made < n; made++) {
        u[made] = ferry_unsqueeze((ferry_tensor *)ts[made], d);
        if (!u[made])
            break;
    }
    ferry_tensor *r = made == n ? ferry_cat((const ferry_tensor *const *)u, n, d) : NULL;
    for (int i = 0; i < made; i++)
        ferry_tensor_release(u[i]);
    if (u != small)
        free(u);
    return r;
}

/* ---- flip ---- */

static ferry_tensor *flip_impl(ferry_tensor *t, int ndims, const int *dims);

static ferry_status flip_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int count = 0;
    int64_t *p = ferry__node_params(n, &count);
    int dims[FERRY_MAX_DIMS];
    for (int i = 0; i < count; i++)
        dims[i] = (int)p[i];
    grads[0] = flip_impl(g, count, dims);
    return grads[0] ? FERRY_OK : ferry_last_status();
}

static ferry_tensor *flip_impl(ferry_tensor *t, int ndims, const int *dims)
{
    if (ferry__check_tensor(t, "ferry_flip") != FERRY_OK)
        return NULL;
    if (ndims < 0 || ndims > FERRY_MAX_DIMS || (ndims > 0 && !dims)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_flip: dims is NULL or too long");
        return NULL;
    }
    bool seen[FERRY_MAX_DIMS] = {false};
    int64_t wrapped[FERRY_MAX_DIMS];
    for (int i = 0; i < ndims; i++) {
        int d = dims[i];
        if (ferry__wrap_dim(&d, t->ndim) != FERRY_OK)
            return NULL;
        if (seen[d]) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "dim %d appears multiple times in the list of dims",
                         d);
            return NULL;
        }
        seen[d] = true;
        wrapped[i] = d;
    }
    bool want = ferry__grad_wanted(t, NULL);
    bool prev = pause_grad();
    /* A view running each flipped dim backwards (last element first, negative stride),
     * then one strided copy on t's device makes the result. */
    int64_t strides[FERRY_MAX_DIMS];
    int64_t delta = 0;
    bool empty = ferry__numel(t->ndim, t->shape) == 0;
    for (int d = 0; d < t->ndim; d++) {
        strides[d] = t->strides[d];
        if (d < FERRY_MAX_DIMS && seen[d] && !empty) {
            delta += (t->shape[d] - 1) * t->strides[d];
            strides[d] = -t->strides[d];
        }
    }
    ferry_tensor *r = ferry__new_like(t, t->dtype, t->ndim, t->shape);
    if (r && !empty) {
        ferry__storage_retain(t->storage);
        int64_t off = (int64_t)t->byte_offset + delta * (int64_t)ferry_dtype_size(t->dtype);
        ferry_tensor *v =
            ferry__tensor_make(t->storage, (size_t)off, t->dtype, t->ndim, t->shape, strides);
        ferry_status st = v ? ferry__copy_into(r, v) : ferry_last_status();
        ferry_tensor_release(v);
        if (st != FERRY_OK) {
            ferry_tensor_release(r);
            r = NULL;
        }
    }
    resume_grad(prev);
    if (!r || !want)
        return r;
    ferry_node *n = ferry__node_create("FlipBackward0", flip_backward, 1, &t);
    if (!n) {
        ferry__attach_or_fail(NULL, ferry_last_status(), &r);
        return r;
    }
    ferry_status st = FERRY_OK;
    if (ndims > 0) {
        int64_t *p = ferry__node_params_alloc(n, ndims);
        if (p)
            memcpy(p, wrapped, (size_t)ndims * sizeof *p);
        else
            st = ferry_last_status();
    }
    ferry__attach_or_fail(n, st, &r);
    return r;
}

FERRY_API ferry_tensor *ferry_flip(ferry_tensor *t, int ndims, const int *dims)
{
    return flip_impl(t, ndims, dims);
}

/* Joining, splitting and reshaping ops built from views and the copy path: narrow,
 * split, chunk, unbind, movedim and broadcast_to are views (their gradients come from
 * the view nodes they are made of); cat and stack copy into narrowed views of one
 * output, so each device runs its own copy kernel; flip copies a negative-stride view.
 * Messages follow PyTorch's. */
#include <math.h>
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

/* ---- roll and repeat: compositions of differentiable views and copies ---- */

/* One dim: the last `s` elements move to the front, as two narrows joined by cat (whose
 * kernels are copies on t's device, and whose gradients are narrows again). */
static ferry_tensor *roll_one(ferry_tensor *t, int64_t shift, int dim)
{
    int64_t n = t->shape[dim];
    if (n == 0)
        return ferry_tensor_clone(t);
    int64_t s = shift % n;
    if (s < 0)
        s += n;
    ferry_tensor *tail = ferry_narrow(t, dim, n - s, s);
    ferry_tensor *head = tail ? ferry_narrow(t, dim, 0, n - s) : NULL;
    const ferry_tensor *parts[2] = {tail, head};
    ferry_tensor *r = head ? ferry_cat(parts, 2, dim) : NULL;
    ferry_tensor_release(tail);
    ferry_tensor_release(head);
    return r;
}

FERRY_API ferry_tensor *ferry_roll(ferry_tensor *t, int nshifts, const int64_t *shifts, int ndims,
                                   const int *dims)
{
    if (ferry__check_tensor(t, "ferry_roll") != FERRY_OK)
        return NULL;
    if (nshifts <= 0 || nshifts > FERRY_MAX_DIMS || !shifts || ndims < 0 || (ndims > 0 && !dims)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "`shifts` required");
        return NULL;
    }
    if (ndims == 0) {
        /* No dims: the flattened tensor rolls, and takes t's shape back. */
        if (nshifts != 1) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "shifts and dimensions must align. shifts: %d, dims:0", nshifts);
            return NULL;
        }
        int64_t all = -1;
        ferry_tensor *flat = ferry_reshape(t, 1, &all);
        ferry_tensor *r = flat ? roll_one(flat, shifts[0], 0) : NULL;
        ferry_tensor *back = r ? ferry_reshape(r, t->ndim, t->shape) : NULL;
        ferry_tensor_release(flat);
        ferry_tensor_release(r);
        return back;
    }
    if (nshifts != ndims) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "shifts and dimensions must align. shifts: %d, dims:%d", nshifts, ndims);
        return NULL;
    }
    ferry_tensor *cur = ferry_tensor_retain(t);
    for (int i = 0; i < ndims && cur; i++) {
        int d = dims[i];
        ferry_tensor *next = NULL;
        if (ferry__wrap_dim(&d, t->ndim) == FERRY_OK) {
            if (t->ndim == 0)
                next = ferry_tensor_clone(cur);
            else
                next = roll_one(cur, shifts[i], d);
        }
        ferry_tensor_release(cur);
        cur = next;
    }
    return cur;
}

FERRY_API ferry_tensor *ferry_repeat(ferry_tensor *t, int n, const int64_t *repeats)
{
    if (ferry__check_tensor(t, "ferry_repeat") != FERRY_OK)
        return NULL;
    if (n < t->ndim || (n > 0 && !repeats)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "Number of dimensions of repeat dims can not be smaller than number of "
                     "dimensions of tensor");
        return NULL;
    }
    if (2 * n > FERRY_MAX_DIMS) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_repeat: at most %d repeat dims",
                     FERRY_MAX_DIMS / 2);
        return NULL;
    }
    /* t as (1, s0, 1, s1, ...), expanded to (r0, s0, r1, s1, ...), copied, and merged
     * pairwise: each step is a differentiable view or copy, so the gradient is the sum
     * over the repeats that expand's backward takes. */
    int64_t pairs[FERRY_MAX_DIMS], want[FERRY_MAX_DIMS], out[FERRY_MAX_DIMS / 2];
    int lead = n - t->ndim;
    for (int i = 0; i < n; i++) {
        if (repeats[i] < 0) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "Trying to create tensor with negative dimension %lld: [%lld]",
                         (long long)repeats[i], (long long)repeats[i]);
            return NULL;
        }
        int64_t s = i < lead ? 1 : t->shape[i - lead];
        pairs[2 * i] = 1;
        pairs[2 * i + 1] = s;
        want[2 * i] = repeats[i];
        want[2 * i + 1] = s;
        if (__builtin_mul_overflow(s, repeats[i], &out[i])) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "repeat: the result's size overflows");
            return NULL;
        }
    }
    ferry_tensor *v = ferry_reshape(t, 2 * n, pairs);
    ferry_tensor *e = v ? ferry_expand(v, 2 * n, want) : NULL;
    ferry_tensor *c = e ? ferry_tensor_clone(e) : NULL; /* a fresh tensor, as torch's */
    ferry_tensor *r = c ? ferry_reshape(c, n, out) : NULL;
    ferry_tensor_release(v);
    ferry_tensor_release(e);
    ferry_tensor_release(c);
    return r;
}

/* ---- linspace ---- */

/* PyTorch's formula, in the dtype's own arithmetic for float32 (torch computes in
 * scalar_t there) so the values agree bit for bit: the first half steps from start, the
 * second half steps back from end. Computed on the host and uploaded. */
FERRY_API ferry_tensor *ferry_linspace(double start, double end, int64_t steps, ferry_dtype dtype,
                                       const char *device)
{
    if (steps < 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "number of steps must be non-negative");
        return NULL;
    }
    int64_t shape[1] = {steps};
    int64_t numel;
    if (ferry__check_shape("ferry_linspace", dtype, 1, shape, &numel) != FERRY_OK)
        return NULL;
    double *v = malloc((size_t)(steps > 0 ? steps : 1) * sizeof *v);
    if (!v) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for linspace");
        return NULL;
    }
    int64_t half = steps / 2;
    if (dtype == FERRY_FLOAT32 || dtype == FERRY_FLOAT16 || dtype == FERRY_BFLOAT16) {
        float fs = (float)start, fe = (float)end;
        float step = steps > 1 ? (fe - fs) / (float)(steps - 1) : 0.0f;
        for (int64_t i = 0; i < steps; i++)
            v[i] = i < half ? (double)fmaf(step, (float)i, fs)
                            : (double)fmaf(-step, (float)(steps - 1 - i), fe);
    } else {
        double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0.0;
        for (int64_t i = 0; i < steps; i++)
            v[i] = i < half ? start + step * (double)i : end - step * (double)(steps - 1 - i);
    }
    if (steps == 1)
        v[0] = start;
    ferry_tensor *d = ferry_tensor_from_data(steps ? v : NULL, FERRY_FLOAT64, 1, shape, "cpu");
    free(v);
    ferry_tensor *c = d ? ferry_tensor_to_dtype(d, dtype) : NULL;
    ferry_tensor *r = c ? ferry_tensor_to(c, device) : NULL;
    ferry_tensor_release(d);
    ferry_tensor_release(c);
    return r;
}

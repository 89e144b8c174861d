/* Views that share storage: reshape/view, transpose, permute, slice, expand, squeeze,
 * unsqueeze, flatten. Pure geometry on the handle; no device is touched except when
 * reshape has to copy. Messages follow PyTorch's. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* "(2, 3)" into buf, as PyTorch prints sizes in messages. */
const char *ferry__shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t used = 0;
    int n = snprintf(buf, cap, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && used < cap; i++) {
        n = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, ")");
    return buf;
}

/* "[2, 3]": PyTorch writes lists this way in view/expand messages. */
static const char *list_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    ferry__shape_str(ndim, shape, buf, cap);
    buf[0] = '[';
    size_t len = strlen(buf);
    if (len > 0 && buf[len - 1] == ')')
        buf[len - 1] = ']';
    return buf;
}

ferry_status ferry__wrap_dim(int *dim, int ndim)
{
    /* A 0-d tensor accepts dims -1 and 0, as PyTorch's maybe_wrap_dim. */
    int n = ndim > 0 ? ndim : 1;
    if (*dim < -n || *dim >= n)
        return ferry__error(FERRY_ERR_INDEX,
                            "Dimension out of range (expected to be in range of [%d, %d], but got "
                            "%d)",
                            -n, n - 1, *dim);
    if (*dim < 0)
        *dim += n;
    return FERRY_OK;
}

/* A view of t with new geometry; offset moves by delta_elems elements. Sizes from the
 * caller (expand's especially) are checked here, so no view's numel or extent wraps. */
static ferry_tensor *make_view(const ferry_tensor *t, int ndim, const int64_t *shape,
                               const int64_t *strides, int64_t delta_elems)
{
    int64_t st[FERRY_MAX_DIMS];
    if (!strides) {
        ferry__contiguous_strides(ndim, shape, st);
        strides = st;
    }
    if (ferry__check_geometry("view", t->dtype, ndim, shape, strides) != FERRY_OK)
        return NULL;
    ferry__storage_retain(t->storage);
    int64_t off = (int64_t)t->byte_offset + delta_elems * (int64_t)ferry_dtype_size(t->dtype);
    ferry_tensor *v = ferry__tensor_make(t->storage, (size_t)off, t->dtype, ndim, shape, strides);
    if (v) {
        v->read_only = t->read_only;
        v->requires_grad = t->requires_grad;
    }
    return v;
}

/* Resolves a -1 entry and checks the element count; fills out[]. */
static ferry_status infer_shape(const char *fn, const ferry_tensor *t, int ndim,
                                const int64_t *shape, int64_t *out)
{
    if (ndim < 0 || ndim > FERRY_MAX_DIMS)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: ndim %d is out of range (0 .. %d)",
                            fn, ndim, FERRY_MAX_DIMS);
    if (ndim > 0 && !shape)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: shape is NULL", fn);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == -1) {
            if (infer >= 0)
                return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "only one dimension can be inferred");
            infer = i;
        } else if (shape[i] < 0) {
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "invalid shape dimension %lld",
                                (long long)shape[i]);
        } else {
            if (shape[i] != 0 && known > INT64_MAX / shape[i])
                known = INT64_MAX; /* cannot match any real tensor */
            else
                known *= shape[i];
        }
        out[i] = shape[i];
    }
    int64_t numel = ferry__numel(t->ndim, t->shape);
    if (infer >= 0 && known != 0 && numel % known == 0)
        out[infer] = numel / known;
    if ((infer >= 0 && (known == 0 || numel % known != 0)) || (infer < 0 && known != numel)) {
        char buf[512];
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "shape '%s' is invalid for input of size %lld",
                            list_str(ndim, shape, buf, sizeof buf), (long long)numel);
    }
    return FERRY_OK;
}

/* Strides for viewing (oshape, ostrides) as nshape without copying, or false when the
 * memory layout does not allow it. Walks chunks of old dims that are contiguous with
 * each other and matches each to new dims of the same element count. */
static bool view_strides(int ondim, const int64_t *oshape, const int64_t *ostrides, int nndim,
                         const int64_t *nshape, int64_t *nstrides)
{
    if (ferry__numel(ondim, oshape) == 0 || ondim == 0) {
        ferry__contiguous_strides(nndim, nshape, nstrides);
        return true;
    }
    int view_d = nndim - 1;
    int64_t chunk_base = ostrides[ondim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = ondim - 1; d >= 0; d--) {
        tensor_numel *= oshape[d];
        if (d == 0 || (oshape[d - 1] != 1 && ostrides[d - 1] != tensor_numel * chunk_base)) {
            while (view_d >= 0 && (view_numel < tensor_numel || nshape[view_d] == 1)) {
                nstrides[view_d] = view_numel * chunk_base;
                view_numel *= nshape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel)
                return false;
            if (d > 0) {
                chunk_base = ostrides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

FERRY_API ferry_tensor *ferry_view(ferry_tensor *t, int ndim, const int64_t *shape)
{
    if (ferry__check_tensor(t, "ferry_view") != FERRY_OK)
        return NULL;
    int64_t nshape[FERRY_MAX_DIMS], nstrides[FERRY_MAX_DIMS];
    if (infer_shape("ferry_view", t, ndim, shape, nshape) != FERRY_OK)
        return NULL;
    if (!view_strides(t->ndim, t->shape, t->strides, ndim, nshape, nstrides)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "view size is not compatible with input tensor's size and stride (at least "
                     "one dimension spans across two contiguous subspaces). Use .reshape(...) "
                     "instead.");
        return NULL;
    }
    return ferry__ag_view(make_view(t, ndim, nshape, nstrides, 0), t, FERRY_VIEW_VIEW, NULL, 0);
}

FERRY_API ferry_tensor *ferry_reshape(ferry_tensor *t, int ndim, const int64_t *shape)
{
    if (ferry__check_tensor(t, "ferry_reshape") != FERRY_OK)
        return NULL;
    int64_t nshape[FERRY_MAX_DIMS], nstrides[FERRY_MAX_DIMS];
    if (infer_shape("ferry_reshape", t, ndim, shape, nshape) != FERRY_OK)
        return NULL;
    if (view_strides(t->ndim, t->shape, t->strides, ndim, nshape, nstrides))
        return ferry__ag_view(make_view(t, ndim, nshape, nstrides, 0), t, FERRY_VIEW_VIEW, NULL,
                              0);
    ferry_tensor *c = ferry_tensor_clone(t);
    if (!c)
        return NULL;
    ferry_tensor *v = make_view(c, ndim, nshape, NULL, 0);
    ferry_tensor_release(c);
    return ferry__ag_view(v, t, FERRY_VIEW_RESHAPE_COPY, NULL, 0);
}

FERRY_API ferry_tensor *ferry_transpose(ferry_tensor *t, int dim0, int dim1)
{
    if (ferry__check_tensor(t, "ferry_transpose") != FERRY_OK)
        return NULL;
    if (ferry__wrap_dim(&dim0, t->ndim) != FERRY_OK || ferry__wrap_dim(&dim1, t->ndim) != FERRY_OK)
        return NULL;
    int64_t dims[2] = {dim0, dim1};
    if (t->ndim == 0)
        return ferry__ag_view(make_view(t, 0, NULL, NULL, 0), t, FERRY_VIEW_TRANSPOSE, dims, 2);
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    memcpy(shape, t->shape, (size_t)t->ndim * sizeof shape[0]);
    memcpy(strides, t->strides, (size_t)t->ndim * sizeof strides[0]);
    shape[dim0] = t->shape[dim1];
    shape[dim1] = t->shape[dim0];
    strides[dim0] = t->strides[dim1];
    strides[dim1] = t->strides[dim0];
    return ferry__ag_view(make_view(t, t->ndim, shape, strides, 0), t, FERRY_VIEW_TRANSPOSE, dims,
                          2);
}

FERRY_API ferry_tensor *ferry_permute(ferry_tensor *t, int ndim, const int *dims)
{
    if (ferry__check_tensor(t, "ferry_permute") != FERRY_OK)
        return NULL;
    if (ndim != t->ndim) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "permute(): number of dims don't match in permute: input.dim() = %d is not "
                     "equal to len(dims) = %d",
                     t->ndim, ndim);
        return NULL;
    }
    if (ndim > 0 && !dims) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_permute: dims is NULL");
        return NULL;
    }
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    bool seen[FERRY_MAX_DIMS] = {false};
    for (int i = 0; i < ndim; i++) {
        int d = dims[i];
        if (ferry__wrap_dim(&d, ndim) != FERRY_OK)
            return NULL;
        if (seen[d]) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "permute(): duplicate dims are not allowed.");
            return NULL;
        }
        seen[d] = true;
        shape[i] = t->shape[d];
        strides[i] = t->strides[d];
    }
    int64_t perm[FERRY_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        perm[i] = dims[i] < 0 ? dims[i] + ndim : dims[i];
    return ferry__ag_view(make_view(t, ndim, shape, strides, 0), t, FERRY_VIEW_PERMUTE, perm, ndim);
}

FERRY_API ferry_tensor *ferry_slice(ferry_tensor *t, int dim, int64_t start, int64_t end,
                                    int64_t step)
{
    if (ferry__check_tensor(t, "ferry_slice") != FERRY_OK)
        return NULL;
    if (t->ndim == 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "slice() cannot be applied to a 0-dim tensor.");
        return NULL;
    }
    if (ferry__wrap_dim(&dim, t->ndim) != FERRY_OK)
        return NULL;
    if (step <= 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "slice step must be positive (got %lld)",
                     (long long)step);
        return NULL;
    }
    int64_t size = t->shape[dim];
    /* Python slice semantics: negative counts from the end, then clamp. */
    if (start < 0)
        start = start < -size ? 0 : start + size;
    if (end < 0)
        end = end < -size ? 0 : end + size;
    if (start > size)
        start = size;
    if (end > size)
        end = size;
    if (end < start)
        end = start;
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    memcpy(shape, t->shape, (size_t)t->ndim * sizeof shape[0]);
    memcpy(strides, t->strides, (size_t)t->ndim * sizeof strides[0]);
    /* Written so that a step near INT64_MAX cannot overflow (NumPy gives one element). */
    shape[dim] = end > start ? 1 + (end - start - 1) / step : 0;
    /* With two or more elements step < size, so the product fits; with fewer the stride
     * is never used to reach an element and PyTorch's value is kept where it fits. */
    if (__builtin_mul_overflow(t->strides[dim], step, &strides[dim]))
        strides[dim] = t->strides[dim];
    /* An empty result keeps the offset where it is: start may equal size, and an empty
     * tensor's other dims can make this dim's stride a size no multiple of which fits. */
    int64_t delta = ferry__numel(t->ndim, shape) > 0 ? start * t->strides[dim] : 0;
    int64_t args[4] = {dim, start, end, step};
    return ferry__ag_view(make_view(t, t->ndim, shape, strides, delta), t, FERRY_VIEW_SLICE, args,
                          4);
}

FERRY_API ferry_tensor *ferry_expand(ferry_tensor *t, int ndim, const int64_t *shape)
{
    if (ferry__check_tensor(t, "ferry_expand") != FERRY_OK)
        return NULL;
    char want[512], have[512];
    if (ndim < t->ndim || ndim > FERRY_MAX_DIMS || (ndim > 0 && !shape)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "expand: the number of sizes provided (%d) must be greater or equal to the "
                     "number of dimensions in the tensor (%d)",
                     ndim, t->ndim);
        return NULL;
    }
    int64_t nshape[FERRY_MAX_DIMS], nstrides[FERRY_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int i = ndim - 1; i >= 0; i--) {
        int od = i - lead;
        int64_t target = shape[i];
        if (od < 0) {
            if (target < 0) {
                ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                             "The expanded size of the tensor (%lld) isn't allowed in a leading, "
                             "non-existing dimension %d",
                             (long long)target, i);
                return NULL;
            }
            nshape[i] = target;
            nstrides[i] = 0;
            continue;
        }
        int64_t size = t->shape[od];
        if (target == -1)
            target = size;
        if (target == size) {
            nshape[i] = size;
            nstrides[i] = t->strides[od];
        } else if (size == 1 && target >= 0) {
            nshape[i] = target;
            nstrides[i] = 0;
        } else {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "The expanded size of the tensor (%lld) must match the existing size "
                         "(%lld) at non-singleton dimension %d.  Target sizes: %s.  Tensor "
                         "sizes: %s",
                         (long long)target, (long long)size, i,
                         list_str(ndim, shape, want, sizeof want),
                         list_str(t->ndim, t->shape, have, sizeof have));
            return NULL;
        }
    }
    return ferry__ag_view(make_view(t, ndim, nshape, nstrides, 0), t, FERRY_VIEW_EXPAND, NULL, 0);
}

FERRY_API ferry_tensor *ferry_squeeze(ferry_tensor *t, int dim)
{
    if (ferry__check_tensor(t, "ferry_squeeze") != FERRY_OK)
        return NULL;
    if (ferry__wrap_dim(&dim, t->ndim) != FERRY_OK)
        return NULL;
    if (t->ndim == 0 || t->shape[dim] != 1)
        return ferry__ag_view(make_view(t, t->ndim, t->shape, t->strides, 0), t,
                              FERRY_VIEW_SQUEEZE_DIM, NULL, 0);
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++)
        if (i != dim) {
            shape[n] = t->shape[i];
            strides[n++] = t->strides[i];
        }
    return ferry__ag_view(make_view(t, n, shape, strides, 0), t, FERRY_VIEW_SQUEEZE_DIM, NULL, 0);
}

FERRY_API ferry_tensor *ferry_squeeze_all(ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_squeeze_all") != FERRY_OK)
        return NULL;
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] != 1) {
            shape[n] = t->shape[i];
            strides[n++] = t->strides[i];
        }
    return ferry__ag_view(make_view(t, n, shape, strides, 0), t, FERRY_VIEW_SQUEEZE_ALL, NULL, 0);
}

FERRY_API ferry_tensor *ferry_unsqueeze(ferry_tensor *t, int dim)
{
    if (ferry__check_tensor(t, "ferry_unsqueeze") != FERRY_OK)
        return NULL;
    int n = t->ndim + 1;
    if (n > FERRY_MAX_DIMS) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_unsqueeze: a tensor has at most %d dims",
                     FERRY_MAX_DIMS);
        return NULL;
    }
    if (dim < -n || dim >= n) {
        ferry__error(FERRY_ERR_INDEX,
                     "Dimension out of range (expected to be in range of [%d, %d], but got %d)",
                     -n, n - 1, dim);
        return NULL;
    }
    if (dim < 0)
        dim += n;
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    for (int i = 0, j = 0; i < n; i++) {
        if (i == dim) {
            shape[i] = 1;
            /* A size-1 dim's stride never moves; PyTorch's size * stride where it fits. */
            if (dim >= t->ndim ||
                __builtin_mul_overflow(t->shape[dim], t->strides[dim], &strides[i]))
                strides[i] = 1;
        } else {
            shape[i] = t->shape[j];
            strides[i] = t->strides[j++];
        }
    }
    return ferry__ag_view(make_view(t, n, shape, strides, 0), t, FERRY_VIEW_UNSQUEEZE, NULL, 0);
}

FERRY_API ferry_tensor *ferry_flatten(ferry_tensor *t, int start_dim, int end_dim)
{
    if (ferry__check_tensor(t, "ferry_flatten") != FERRY_OK)
        return NULL;
    if (ferry__wrap_dim(&start_dim, t->ndim) != FERRY_OK ||
        ferry__wrap_dim(&end_dim, t->ndim) != FERRY_OK)
        return NULL;
    if (start_dim > end_dim) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "flatten() has invalid args: start_dim cannot come after end_dim");
        return NULL;
    }
    if (t->ndim == 0) {
        int64_t one = 1;
        return ferry_reshape(t, 1, &one);
    }
    int64_t shape[FERRY_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < start_dim; i++)
        shape[n++] = t->shape[i];
    /* Only an empty tensor's merged dims can multiply past int64 (when the 0 is outside
     * them, the result would have a size no int64 holds: refused as PyTorch's numel). */
    int64_t merged = 1;
    bool zero = false, over = false;
    for (int i = start_dim; i <= end_dim; i++) {
        if (t->shape[i] == 0)
            zero = true;
        else if (!over && __builtin_mul_overflow(merged, t->shape[i], &merged))
            over = true;
    }
    if (zero) {
        merged = 0;
    } else if (over) {
        char buf[512];
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "flatten: numel: integer multiplication overflow (shape %s)",
                     ferry__shape_str(t->ndim, t->shape, buf, sizeof buf));
        return NULL;
    }
    shape[n++] = merged;
    for (int i = end_dim + 1; i < t->ndim; i++)
        shape[n++] = t->shape[i];
    return ferry_reshape(t, n, shape);
}

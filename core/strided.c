/* Raw geometry access (PyTorch's data_ptr, storage_offset, as_strided): the Python
 * layer needs them and nothing else in the API exposes a handle's storage position. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* "[2, 3]" as PyTorch prints an IntArrayRef; truncated with "..." past cap. */
static void list_str(int n, const int64_t *v, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ", %lld" : "%lld", (long long)v[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
    else if (cap > 4)
        memcpy(buf + cap - 4, "...", 4);
}

FERRY_API int64_t ferry_tensor_storage_offset(const ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_storage_offset") != FERRY_OK)
        return -1;
    return (int64_t)(t->byte_offset / ferry_dtype_size(t->dtype));
}

FERRY_API uintptr_t ferry_tensor_data_ptr(const ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_data_ptr") != FERRY_OK)
        return 0;
    /* The backend's handle for device memory (a device address on CUDA, an opaque
     * handle elsewhere), plus the offset, as torch reports device pointers. */
    return (uintptr_t)t->storage->buffer + t->byte_offset;
}

FERRY_API ferry_tensor *ferry_as_strided(ferry_tensor *t, int ndim, const int64_t *shape,
                                         const int64_t *strides, int64_t storage_offset)
{
    if (ferry__check_tensor(t, "ferry_as_strided") != FERRY_OK)
        return NULL;
    if (ndim < 0 || ndim > FERRY_MAX_DIMS || (ndim > 0 && (!shape || !strides))) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "as_strided: ndim %d out of range [0, %d]",
                     ndim, FERRY_MAX_DIMS);
        return NULL;
    }
    /* No backward formula scatters through an arbitrary geometry yet: refuse rather
     * than drop the gradient. */
    if (t->requires_grad && ferry_grad_enabled()) {
        ferry__error(FERRY_ERR_UNSUPPORTED,
                     "as_strided: not supported on a tensor that requires grad yet");
        return NULL;
    }
    if (storage_offset < 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "Tensor: invalid storage offset %lld",
                     (long long)storage_offset);
        return NULL;
    }
    char sz[512], st[512];
    list_str(ndim, shape, sz, sizeof sz);
    list_str(ndim, strides, st, sizeof st);
    for (int i = 0; i < ndim; i++)
        if (strides[i] < 0) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "as_strided: Negative strides are not supported at the moment, got "
                         "strides: %s",
                         st);
            return NULL;
        }
    if (ferry__check_geometry("as_strided", t->dtype, ndim, shape, strides) != FERRY_OK)
        return NULL;
    /* The last element addressed must lie inside the storage: every term is checked
     * against overflow, since shapes and strides come from outside. */
    int64_t isz = (int64_t)ferry_dtype_size(t->dtype), last = storage_offset;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            empty = true;
        else if (__builtin_mul_overflow(shape[i] - 1, strides[i], &(int64_t){0}))
            goto too_big;
    }
    if (!empty)
        for (int i = 0; i < ndim; i++) {
            int64_t span = (shape[i] - 1) * strides[i];
            if (__builtin_add_overflow(last, span, &last))
                goto too_big;
        }
    int64_t end_bytes, off_bytes;
    if (__builtin_mul_overflow(storage_offset, isz, &off_bytes) ||
        __builtin_add_overflow(last, 1, &end_bytes) ||
        __builtin_mul_overflow(end_bytes, isz, &end_bytes))
        goto too_big;
    /* An empty view addresses nothing, so any offset is accepted, as torch. */
    if (!empty && (uint64_t)end_bytes > (uint64_t)t->storage->nbytes) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "setStorage: sizes %s, strides %s, storage offset %lld, and itemsize %lld "
                     "requiring a storage size of %lld are out of bounds for storage of size %zu",
                     sz, st, (long long)storage_offset, (long long)isz, (long long)end_bytes,
                     t->storage->nbytes);
        return NULL;
    }
    ferry__storage_retain(t->storage);
    ferry_tensor *v = ferry__tensor_make(t->storage, (size_t)off_bytes, t->dtype,
                                         ndim, shape, strides);
    if (v)
        v->read_only = t->read_only;
    return v;
too_big:
    ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                 "as_strided: the sizes and strides address beyond int64 elements");
    return NULL;
}

/* Tensor creation: from host data, over caller memory (from_blob), and the factories
 * empty, zeros, ones, full, eye and arange. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static ferry_tensor *empty_checked(const char *fn, ferry_dtype dtype, int ndim,
                                   const int64_t *shape, const char *device)
{
    int64_t numel;
    if (ferry__check_shape(fn, dtype, ndim, shape, &numel) != FERRY_OK)
        return NULL;
    ferry_backend *be;
    int32_t dev;
    if (ferry__device_resolve(device, &be, &dev) != FERRY_OK)
        return NULL;
    return ferry__tensor_empty_on(be, dev, dtype, ndim, shape);
}

FERRY_API ferry_tensor *ferry_empty(ferry_dtype dtype, int ndim, const int64_t *shape,
                                    const char *device)
{
    return empty_checked("ferry_empty", dtype, ndim, shape, device);
}

static ferry_tensor *filled(const char *fn, ferry_dtype dtype, int ndim, const int64_t *shape,
                            double value, const char *device)
{
    ferry_tensor *t = empty_checked(fn, dtype, ndim, shape, device);
    if (t && ferry__fill(t, value) != FERRY_OK) {
        ferry_tensor_release(t);
        return NULL;
    }
    return t;
}

FERRY_API ferry_tensor *ferry_zeros(ferry_dtype dtype, int ndim, const int64_t *shape,
                                    const char *device)
{
    return filled("ferry_zeros", dtype, ndim, shape, 0.0, device);
}

FERRY_API ferry_tensor *ferry_ones(ferry_dtype dtype, int ndim, const int64_t *shape,
                                   const char *device)
{
    return filled("ferry_ones", dtype, ndim, shape, 1.0, device);
}

FERRY_API ferry_tensor *ferry_full(ferry_dtype dtype, int ndim, const int64_t *shape,
                                   double value, const char *device)
{
    return filled("ferry_full", dtype, ndim, shape, value, device);
}

FERRY_API ferry_tensor *ferry_eye(int64_t n, ferry_dtype dtype, const char *device)
{
    if (n < 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_eye: n must be greater or equal to 0, "
                                                 "got %lld", (long long)n);
        return NULL;
    }
    int64_t shape[2] = {n, n};
    ferry_tensor *t = filled("ferry_eye", dtype, 2, shape, 0.0, device);
    if (!t || n == 0)
        return t;
    /* The diagonal is a 1-D view with stride n + 1: one fill kernel on any device. */
    int64_t stride = n + 1;
    ferry_tensor *diag = ferry__tensor_restride(t, 1, &n, &stride);
    if (!diag) {
        ferry_tensor_release(t);
        return NULL;
    }
    ferry_status st = ferry__fill(diag, 1.0);
    ferry_tensor_release(diag);
    if (st != FERRY_OK) {
        ferry_tensor_release(t);
        return NULL;
    }
    return t;
}

FERRY_API ferry_tensor *ferry_arange(double start, double end, double step, ferry_dtype dtype,
                                     const char *device)
{
    if (!isfinite(start) || !isfinite(end)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_arange: unsupported range: %g -> %g",
                     start, end);
        return NULL;
    }
    if (step == 0 || isnan(step)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_arange: step must be nonzero");
        return NULL;
    }
    if ((step > 0 && end < start) || (step < 0 && end > start)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "ferry_arange: upper bound and lower bound inconsistent with step sign");
        return NULL;
    }
    double count = ceil((end - start) / step);
    if (count > (double)(INT64_MAX / 8)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_arange: %g elements are too many", count);
        return NULL;
    }
    int64_t n = (int64_t)count;
    size_t esize = ferry_dtype_size(dtype);
    if (!ferry__dtype_valid(dtype)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_arange: invalid dtype value %d",
                     (int)dtype);
        return NULL;
    }
    unsigned char *host = malloc(n > 0 ? (size_t)n * esize : 1);
    if (!host) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_arange: out of host memory for %lld "
                                              "elements", (long long)n);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        ferry__scalar_from_double(dtype, start + (double)i * step, host + (size_t)i * esize);
    ferry_tensor *t = ferry_tensor_from_data(host, dtype, 1, &n, device);
    free(host);
    return t;
}

FERRY_API ferry_tensor *ferry_tensor_from_data(const void *data, ferry_dtype dtype, int ndim,
                                               const int64_t *shape, const char *device)
{
    int64_t numel;
    if (ferry__check_shape("ferry_tensor_from_data", dtype, ndim, shape, &numel) != FERRY_OK)
        return NULL;
    if (!data && numel > 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_from_data: data is NULL");
        return NULL;
    }
    ferry_tensor *t = empty_checked("ferry_tensor_from_data", dtype, ndim, shape, device);
    if (!t)
        return NULL;
    ferry_status st = ferry__be_copy_from_host(t->storage->backend, t->storage->device,
                                               t->storage->buffer, t->byte_offset, data,
                                               (size_t)numel * ferry_dtype_size(dtype));
    if (st != FERRY_OK) {
        ferry_tensor_release(t);
        return NULL;
    }
    return t;
}

FERRY_API ferry_tensor *ferry_tensor_from_blob(void *data, ferry_dtype dtype, int ndim,
                                               const int64_t *shape, const int64_t *strides,
                                               void (*deleter)(void *data, void *ctx), void *ctx)
{
    int64_t numel;
    if (ferry__check_shape("ferry_tensor_from_blob", dtype, ndim, shape, &numel) != FERRY_OK)
        return NULL;
    if (!data && numel > 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_from_blob: data is NULL");
        return NULL;
    }
    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return NULL;
    /* The storage begins at the lowest address the view touches, which is below data
     * when strides are negative. */
    int64_t st[FERRY_MAX_DIMS];
    if (strides && ndim > 0)
        memcpy(st, strides, (size_t)ndim * sizeof(int64_t));
    else
        ferry__contiguous_strides(ndim, shape, st);
    int64_t lo = 0, hi = 0;
    if (ferry__check_geometry("ferry_tensor_from_blob", dtype, ndim, shape, st) != FERRY_OK)
        return NULL;
    if (numel > 0) {
        ferry__extent(dtype, ndim, shape, st, &lo, &hi);
        /* The view must not wrap around the address space either. */
        uintptr_t addr = (uintptr_t)data;
        if ((lo < 0 && addr < (uintptr_t)-lo) || (hi > 0 && UINTPTR_MAX - addr < (uintptr_t)hi)) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "ferry_tensor_from_blob: the strides reach outside the address space "
                         "from data %p",
                         data);
            return NULL;
        }
    }
    char *base = numel > 0 ? (char *)data + lo : data;
    ferry_storage *s =
        ferry__storage_wrap(cpu, 0, base, (size_t)(hi - lo), NULL, NULL);
    if (!s)
        return NULL;
    ferry_tensor *t = ferry__tensor_make(s, (size_t)-lo, dtype, ndim, shape, st);
    if (!t)
        return NULL;
    /* Armed only now, so a failure above never runs the caller's deleter; it gets the
     * caller's pointer back, not the storage base. */
    s->deleter = deleter;
    s->deleter_ctx = ctx;
    s->deleter_data = data;
    return t;
}

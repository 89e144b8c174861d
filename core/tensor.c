/* Storage and tensor handles: reference counts, geometry, validation of arguments, and
 * the introspection half of the public API. */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- validation ---- */

ferry_status ferry__check_tensor(const ferry_tensor *t, const char *what)
{
    if (!t)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", what);
    if (t->magic != FERRY_TENSOR_MAGIC)
        return ferry__error(FERRY_ERR_INVALID_HANDLE,
                            "%s: not a live ferry tensor (released, or not a tensor)", what);
    return FERRY_OK;
}

ferry_status ferry__check_shape(const char *fn, ferry_dtype dtype, int ndim, const int64_t *shape,
                                int64_t *numel)
{
    *numel = 0;
    if (!ferry__dtype_valid(dtype))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: invalid dtype value %d (expected 0 .. %d)", fn, (int)dtype,
                            FERRY_NUM_DTYPES - 1);
    if (ndim < 0 || ndim > FERRY_MAX_DIMS)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: ndim %d is out of range (0 .. %d)", fn, ndim, FERRY_MAX_DIMS);
    if (ndim > 0 && !shape)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: shape is NULL with ndim %d", fn,
                            ndim);
    uint64_t n = 1;
    bool overflow = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "%s: negative dimension %lld at index %d of shape", fn,
                                (long long)shape[i], i);
        if (shape[i] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)shape[i])
            overflow = true;
        else
            n *= (uint64_t)shape[i];
    }
    /* An empty dimension makes the product 0 whatever the others are. */
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            overflow = false;
            n = 0;
        }
    size_t esize = ferry_dtype_size(dtype);
    if (overflow || n > (uint64_t)(INT64_MAX / (int64_t)esize) || n * esize > SIZE_MAX / 2)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: shape has more elements than fit in memory (byte size of %s "
                            "elements overflows)",
                            fn, ferry_dtype_name(dtype));
    *numel = (int64_t)n;
    return FERRY_OK;
}

ferry_status ferry__check_geometry(const char *fn, ferry_dtype dtype, int ndim,
                                   const int64_t *shape, const int64_t *strides)
{
    char sbuf[512], tbuf[512];
    bool empty = false, overflow = false;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "%s: negative dimension %lld at index %d of shape", fn,
                                (long long)shape[i], i);
        if (shape[i] == 0)
            empty = true;
        else if (!overflow && __builtin_mul_overflow(n, shape[i], &n))
            overflow = true;
    }
    /* An empty view touches no memory, whatever its other sizes and strides say. */
    if (empty)
        return FERRY_OK;
    if (overflow)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: numel: integer multiplication overflow (shape %s)", fn,
                            ferry__shape_str(ndim, shape, sbuf, sizeof sbuf));
    /* The bytes below and above element 0 must fit int64 (and their distance too), so
     * that ferry__extent and every offset computed from it cannot wrap. */
    int64_t lo = 0, hi = 0, span;
    int64_t esize = (int64_t)ferry_dtype_size(dtype);
    bool bad = false;
    for (int i = 0; i < ndim && !bad; i++) {
        bad = __builtin_mul_overflow(shape[i] - 1, strides[i], &span) ||
              (span < 0 ? __builtin_add_overflow(lo, span, &lo)
                        : __builtin_add_overflow(hi, span, &hi));
    }
    int64_t width;
    if (bad || __builtin_mul_overflow(lo, esize, &lo) || __builtin_add_overflow(hi, 1, &hi) ||
        __builtin_mul_overflow(hi, esize, &hi) || __builtin_sub_overflow(hi, lo, &width))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: a view of shape %s with strides %s spans more bytes than a "
                            "64-bit offset can address",
                            fn, ferry__shape_str(ndim, shape, sbuf, sizeof sbuf),
                            ferry__shape_str(ndim, strides, tbuf, sizeof tbuf));
    return FERRY_OK;
}

bool ferry__dense_nbytes(ferry_dtype dtype, int ndim, const int64_t *shape, size_t *nbytes)
{
    int64_t n = ferry__numel(ndim, shape), bytes;
    if (__builtin_mul_overflow(n, (int64_t)ferry_dtype_size(dtype), &bytes)) {
        *nbytes = SIZE_MAX;
        return false;
    }
    *nbytes = (size_t)bytes;
    return true;
}

ferry_status ferry__check_writable_once(const ferry_tensor *t)
{
    for (int i = 0; i < t->ndim; i++)
        if (t->strides[i] == 0 && t->shape[i] > 1)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "unsupported operation: more than one element of the written-to "
                                "tensor refers to a single memory location. Please clone() the "
                                "tensor before performing the operation.");
    return FERRY_OK;
}

/* ---- geometry helpers ---- */

int64_t ferry__numel(int ndim, const int64_t *shape)
{
    /* An empty tensor's other sizes may multiply past int64 (only the 0 bounds them). */
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            return 0;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

void ferry__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    /* Saturates rather than wraps: only an empty tensor's strides can get there, and an
     * empty tensor's strides are never used to reach an element. */
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        if (__builtin_mul_overflow(s, shape[i] > 0 ? shape[i] : 1, &s))
            s = INT64_MAX;
    }
}

bool ferry__is_contiguous(int ndim, const int64_t *shape, const int64_t *strides)
{
    /* As PyTorch: an empty tensor is contiguous whatever its strides. */
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            return true;
    int64_t expected = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] != 1 && strides[i] != expected)
            return false;
        expected *= shape[i];
    }
    return true;
}

void ferry__extent(ferry_dtype dtype, int ndim, const int64_t *shape, const int64_t *strides,
                   int64_t *lo, int64_t *hi)
{
    int64_t esize = (int64_t)ferry_dtype_size(dtype);
    int64_t min = 0, max = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            *lo = *hi = 0;
            return;
        }
        int64_t span = (shape[i] - 1) * strides[i];
        if (span < 0)
            min += span;
        else
            max += span;
    }
    *lo = min * esize;
    *hi = (max + 1) * esize;
}

void ferry__byte_extent(const ferry_tensor *t, int64_t *lo, int64_t *hi)
{
    ferry__extent(t->dtype, t->ndim, t->shape, t->strides, lo, hi);
}

/* Start of t's extent as a comparable address: a real one for host memory (so two
 * storages over one NumPy array compare), the storage's identity otherwise. */
static uintptr_t extent_base(const ferry_tensor *t, int64_t *lo, int64_t *hi)
{
    ferry__byte_extent(t, lo, hi);
    uintptr_t base = t->storage->host_accessible ? (uintptr_t)t->storage->buffer
                                                 : (uintptr_t)t->storage;
    return base + t->byte_offset;
}

bool ferry__shares_memory(const ferry_tensor *a, const ferry_tensor *b)
{
    if (a->storage->backend != b->storage->backend || a->storage->device != b->storage->device)
        return false;
    if (!a->storage->host_accessible && a->storage != b->storage)
        return false;
    int64_t alo, ahi, blo, bhi;
    uintptr_t abase = extent_base(a, &alo, &ahi), bbase = extent_base(b, &blo, &bhi);
    if (ahi == alo || bhi == blo)
        return false;
    uintptr_t a0 = abase + (uintptr_t)alo, a1 = abase + (uintptr_t)ahi;
    uintptr_t b0 = bbase + (uintptr_t)blo, b1 = bbase + (uintptr_t)bhi;
    return a0 < b1 && b0 < a1;
}

bool ferry__same_view(const ferry_tensor *a, const ferry_tensor *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        return false;
    int64_t lo, hi;
    if (!ferry__shares_memory(a, b) || extent_base(a, &lo, &hi) != extent_base(b, &lo, &hi))
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i] || a->strides[i] != b->strides[i])
            return false;
    return true;
}

void ferry__kernel_tensor(const ferry_tensor *t, ferry_kernel_tensor *out)
{
    out->buffer = t->storage->buffer;
    out->byte_offset = t->byte_offset;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    out->shape = t->shape;
    out->strides = t->strides;
    out->struct_size = sizeof *out;
}

const char *ferry__tensor_device_str(const ferry_tensor *t, char buf[32])
{
    return ferry__device_str(t->storage->backend, t->storage->device, buf);
}

ferry_status ferry__check_same_device(const ferry_tensor *a, const ferry_tensor *b)
{
    if (a->storage->backend == b->storage->backend && a->storage->device == b->storage->device)
        return FERRY_OK;
    char da[32], db[32];
    return ferry__error(FERRY_ERR_WRONG_DEVICE,
                        "Expected all tensors to be on the same device, but found at least two "
                        "devices, %s and %s!",
                        ferry__tensor_device_str(a, da), ferry__tensor_device_str(b, db));
}

/* ---- storage ---- */

static void block_give(void *b);

static ferry_status storage_buffer(ferry_storage *s, ferry_backend *be, int32_t dev, size_t nbytes)
{
    ferry_status st = ferry__allocator_alloc(be, dev, nbytes, &s->buffer, &s->block_size);
    if (st != FERRY_OK) {
        char name[32];
        /* Keep the backend's words; name the device when the backend did not. */
        ferry__device_str(be, dev, name);
        if (st == FERRY_ERR_OUT_OF_MEMORY && strncmp(ferry_last_error(), name, strlen(name)) != 0)
            ferry__error(st, "%s: out of memory allocating %zu bytes: %s", name, nbytes,
                         ferry_last_error());
    }
    return st;
}

static void storage_init(ferry_storage *s, ferry_backend *be, int32_t dev, size_t nbytes)
{
    atomic_init(&s->refs, 1);
    ferry__backend_retain(be);
    s->backend = be;
    s->device = dev;
    s->nbytes = nbytes;
    s->host_accessible = be->host_accessible[dev];
}

ferry_storage *ferry__storage_alloc(ferry_backend *be, int32_t dev, size_t nbytes)
{
    ferry_storage *s = calloc(1, sizeof *s);
    if (!s) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for a storage record");
        return NULL;
    }
    if (nbytes > 0 && storage_buffer(s, be, dev, nbytes) != FERRY_OK) {
        free(s);
        return NULL;
    }
    storage_init(s, be, dev, nbytes);
    return s;
}

ferry_storage *ferry__storage_wrap(ferry_backend *be, int32_t dev, void *buffer, size_t nbytes,
                                   void (*deleter)(void *, void *), void *ctx)
{
    ferry_storage *s = calloc(1, sizeof *s);
    if (!s) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for a storage record");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    ferry__backend_retain(be);
    s->backend = be;
    s->device = dev;
    s->buffer = buffer;
    s->nbytes = nbytes;
    s->host_accessible = be->host_accessible[dev];
    s->wrapped = true;
    s->deleter = deleter;
    s->deleter_data = buffer;
    s->deleter_ctx = ctx;
    return s;
}

void ferry__storage_retain(ferry_storage *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void ferry__storage_release(ferry_storage *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    ferry__track_storage_free(s);
    if (s->wrapped) {
        if (s->deleter)
            s->deleter(s->deleter_data, s->deleter_ctx);
    } else if (s->buffer) {
        ferry__allocator_free(s->backend, s->device, s->buffer, s->block_size);
    }
    ferry__backend_release(s->backend);
    if (s->embedded_in)
        block_give(s->embedded_in);
    else
        free(s);
}

/* ---- tensors ---- */

static void tensor_init(ferry_tensor *t, ferry_storage *s, size_t byte_offset, ferry_dtype dtype,
                        int ndim, const int64_t *shape, const int64_t *strides);

ferry_tensor *ferry__tensor_make(ferry_storage *s, size_t byte_offset, ferry_dtype dtype, int ndim,
                                 const int64_t *shape, const int64_t *strides)
{
    ferry_tensor *t = malloc(sizeof *t);
    if (!t) {
        ferry__storage_release(s);
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for a tensor handle");
        return NULL;
    }
    if (ndim > FERRY_INLINE_DIMS) {
        t->shape = malloc(2 * (size_t)ndim * sizeof(int64_t));
        if (!t->shape) {
            free(t);
            ferry__storage_release(s);
            ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for a tensor handle");
            return NULL;
        }
        t->strides = t->shape + ndim;
    } else {
        t->shape = t->inline_dims;
        t->strides = t->inline_dims + FERRY_INLINE_DIMS;
    }
    tensor_init(t, s, byte_offset, dtype, ndim, shape, strides);
    return t;
}

static void tensor_init(ferry_tensor *t, ferry_storage *s, size_t byte_offset, ferry_dtype dtype,
                        int ndim, const int64_t *shape, const int64_t *strides)
{
    t->magic = FERRY_TENSOR_MAGIC;
    atomic_init(&t->refs, 1);
    t->storage = s;
    t->byte_offset = byte_offset;
    t->dtype = dtype;
    t->ndim = ndim;
    t->requires_grad = false;
    t->read_only = false;
    if (ndim > 0)
        memcpy(t->shape, shape, (size_t)ndim * sizeof(int64_t));
    if (strides && ndim > 0)
        memcpy(t->strides, strides, (size_t)ndim * sizeof(int64_t));
    else
        ferry__contiguous_strides(ndim, t->shape, t->strides);
    t->grad_fn = NULL;
    t->grad_slot = NULL;
}

/* A new tensor and its storage in one allocation: most tensors are never viewed, so
 * they die together, and one malloc/free costs half of two. A view keeps the storage
 * alive, and with it the block, past the tensor's release. */
typedef struct tensor_block {
    ferry_tensor t;
    ferry_storage s;
} tensor_block;

/* Freed blocks are kept for the next tensors, up to BLOCKS_KEPT (about 20 MiB), rather
 * than given back to malloc: glibc returns the top of its heap to the kernel once more
 * than 128 KiB of it is free, so a loop that kept a thousand results alive and dropped
 * them paid page faults for its blocks the next time (about 40 per thousand tensors,
 * more than the tensors' own cost). Linked through their storage part, so that a dead
 * handle's magic stays 0. */
#define BLOCKS_KEPT 65536
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;
static void *blocks_free;
static size_t blocks_nfree;

static tensor_block *block_take(void)
{
    pthread_mutex_lock(&blocks_lock);
    tensor_block *b = blocks_free;
    if (b) {
        FERRY__UNPOISON(b, offsetof(tensor_block, s));
        memcpy(&blocks_free, &b->s, sizeof blocks_free);
        blocks_nfree--;
    }
    pthread_mutex_unlock(&blocks_lock);
    return b ? b : malloc(sizeof(tensor_block));
}

static void block_give(void *block)
{
    tensor_block *b = block;
    pthread_mutex_lock(&blocks_lock);
    if (blocks_nfree < BLOCKS_KEPT) {
        memcpy(&b->s, &blocks_free, sizeof blocks_free);
        /* A use of the dead handle is caught as before; the link stays readable, as
         * LeakSanitizer follows no pointer kept in poisoned memory. */
        FERRY__POISON(b, offsetof(tensor_block, s));
        blocks_free = b;
        blocks_nfree++;
        b = NULL;
    }
    pthread_mutex_unlock(&blocks_lock);
    free(b);
}

/* Gives every kept block back to malloc: after ferry_empty_cache or ferry_shutdown, ferry
 * keeps no memory it does not use. */
void ferry__tensor_blocks_drain(void)
{
    pthread_mutex_lock(&blocks_lock);
    void *list = blocks_free;
    blocks_free = NULL;
    blocks_nfree = 0;
    pthread_mutex_unlock(&blocks_lock);
    while (list) {
        tensor_block *b = list;
        FERRY__UNPOISON(b, offsetof(tensor_block, s));
        memcpy(&list, &b->s, sizeof list);
        free(b);
    }
}

ferry_tensor *ferry__tensor_empty_on(ferry_backend *be, int32_t dev, ferry_dtype dtype, int ndim,
                                     const int64_t *shape)
{
    int64_t numel;
    if (ferry__check_shape("ferry_empty", dtype, ndim, shape, &numel) != FERRY_OK)
        return NULL;
    if (ndim > FERRY_INLINE_DIMS) {
        ferry_storage *s = ferry__storage_alloc(be, dev, (size_t)numel * ferry_dtype_size(dtype));
        return s ? ferry__tensor_make(s, 0, dtype, ndim, shape, NULL) : NULL;
    }
    tensor_block *b = block_take();
    if (!b) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for a tensor handle");
        return NULL;
    }
    ferry_storage *s = &b->s;
    memset(s, 0, sizeof *s);
    size_t nbytes = (size_t)numel * ferry_dtype_size(dtype);
    if (nbytes > 0 && storage_buffer(s, be, dev, nbytes) != FERRY_OK) {
        block_give(b);
        return NULL;
    }
    storage_init(s, be, dev, nbytes);
    s->embedded_in = &b->t;
    ferry_tensor *t = &b->t;
    t->shape = t->inline_dims;
    t->strides = t->inline_dims + FERRY_INLINE_DIMS;
    tensor_init(t, s, 0, dtype, ndim, shape, NULL);
    return t;
}

ferry_tensor *ferry__tensor_restride(const ferry_tensor *t, int ndim, const int64_t *shape,
                                     const int64_t *strides)
{
    ferry__storage_retain(t->storage);
    ferry_tensor *a = ferry__tensor_make(t->storage, t->byte_offset, t->dtype, ndim, shape, strides);
    if (a)
        a->read_only = t->read_only;
    return a;
}

ferry_tensor *ferry__tensor_alias(const ferry_tensor *t)
{
    return ferry__tensor_restride(t, t->ndim, t->shape, t->strides);
}

FERRY_API ferry_tensor *ferry_tensor_retain(ferry_tensor *t)
{
    if (t && t->magic == FERRY_TENSOR_MAGIC)
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

FERRY_API void ferry_tensor_release(ferry_tensor *t)
{
    if (!t || t->magic != FERRY_TENSOR_MAGIC)
        return;
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    t->magic = 0; /* a later use of this handle is caught instead of read as garbage */
    if (t->grad_fn || t->grad_slot) /* most tensors never took part in autograd */
        ferry__autograd_release(t);
    ferry_storage *s = t->storage;
    if (t->shape != t->inline_dims)
        free(t->shape);
    /* A tensor made with its storage is freed with it, by the storage's last release. */
    if (s->embedded_in != t)
        free(t);
    ferry__storage_release(s);
}

FERRY_API int ferry_tensor_ndim(const ferry_tensor *t)
{
    return ferry__check_tensor(t, "ferry_tensor_ndim") == FERRY_OK ? t->ndim : -1;
}

FERRY_API const int64_t *ferry_tensor_shape(const ferry_tensor *t)
{
    return ferry__check_tensor(t, "ferry_tensor_shape") == FERRY_OK ? t->shape : NULL;
}

FERRY_API const int64_t *ferry_tensor_strides(const ferry_tensor *t)
{
    return ferry__check_tensor(t, "ferry_tensor_strides") == FERRY_OK ? t->strides : NULL;
}

FERRY_API int64_t ferry_tensor_numel(const ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_numel") != FERRY_OK)
        return -1;
    return ferry__numel(t->ndim, t->shape);
}

FERRY_API ferry_dtype ferry_tensor_dtype(const ferry_tensor *t)
{
    return ferry__check_tensor(t, "ferry_tensor_dtype") == FERRY_OK ? t->dtype : FERRY_FLOAT32;
}

FERRY_API size_t ferry_tensor_nbytes(const ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_nbytes") != FERRY_OK)
        return 0;
    size_t n;
    ferry__dense_nbytes(t->dtype, t->ndim, t->shape, &n); /* SIZE_MAX when it overflows */
    return n;
}

FERRY_API ferry_device ferry_tensor_device(const ferry_tensor *t)
{
    ferry_device d;
    memset(&d, 0, sizeof d);
    if (ferry__check_tensor(t, "ferry_tensor_device") != FERRY_OK)
        return d;
    memcpy(d.type, t->storage->backend->name, sizeof d.type);
    d.index = t->storage->device;
    return d;
}

FERRY_API bool ferry_tensor_is_contiguous(const ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_is_contiguous") != FERRY_OK)
        return false;
    return ferry__is_contiguous(t->ndim, t->shape, t->strides);
}

FERRY_API bool ferry_tensor_requires_grad(const ferry_tensor *t)
{
    return ferry__check_tensor(t, "ferry_tensor_requires_grad") == FERRY_OK && t->requires_grad;
}

FERRY_API ferry_status ferry_tensor_set_requires_grad(ferry_tensor *t, bool requires_grad)
{
    ferry_status st = ferry__check_tensor(t, "ferry_tensor_set_requires_grad");
    if (st != FERRY_OK)
        return st;
    if (requires_grad && !ferry_dtype_is_floating(t->dtype))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "only Tensors of floating point dtype can require gradients");
    if (!requires_grad && t->grad_fn)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "you can only change requires_grad flags of leaf variables. If you "
                            "want to use a computed variable in a subgraph that doesn't require "
                            "differentiation use var_no_grad = var.detach().");
    t->requires_grad = requires_grad;
    return FERRY_OK;
}

FERRY_API bool ferry_tensor_is_read_only(const ferry_tensor *t)
{
    return ferry__check_tensor(t, "ferry_tensor_is_read_only") == FERRY_OK && t->read_only;
}

FERRY_API ferry_status ferry_tensor_set_read_only(ferry_tensor *t, bool read_only)
{
    ferry_status st = ferry__check_tensor(t, "ferry_tensor_set_read_only");
    if (st != FERRY_OK)
        return st;
    if (t->read_only && !read_only)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "a read-only tensor cannot be made writable: its memory belongs to a "
                            "read-only owner; use ferry_tensor_clone() for a writable copy");
    t->read_only = read_only;
    return FERRY_OK;
}

FERRY_API ferry_tensor *ferry_tensor_detach(ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_detach") != FERRY_OK)
        return NULL;
    return ferry__tensor_alias(t);
}

FERRY_API void *ferry_tensor_host_data(const ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_host_data") != FERRY_OK)
        return NULL;
    if (!t->storage->host_accessible) {
        char dev[32];
        ferry__error(FERRY_ERR_WRONG_DEVICE,
                     "can't convert %s device type tensor to host memory. Use "
                     "ferry_tensor_cpu() to copy the tensor to host memory first.",
                     ferry__tensor_device_str(t, dev));
        return NULL;
    }
    if (t->requires_grad) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "Can't access host data of a tensor that requires grad. Use "
                     "ferry_tensor_detach() first.");
        return NULL;
    }
    /* Pending kernels may still write this memory on an asynchronous backend. */
    if (ferry__be_synchronize(t->storage->backend, t->storage->device) != FERRY_OK ||
        ferry__track_host(t->storage, true) != FERRY_OK)
        return NULL;
    if (!t->storage->buffer) {
        /* An empty tensor owns no memory; hand out a valid, never-dereferenced address
         * so NULL keeps meaning failure. */
        static _Alignas(64) char empty_data[64];
        return empty_data;
    }
    return (char *)t->storage->buffer + t->byte_offset;
}

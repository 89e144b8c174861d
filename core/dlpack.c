/* DLPack interchange: zero-copy export of a tensor's storage as a (versioned or legacy)
 * managed tensor, and import of one as a tensor over a wrapped storage. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* One allocation per export (NumPy's layout): the managed struct, then shape[ndim] and
 * strides[ndim], so the consumer's single deleter call frees everything. manager_ctx
 * holds the storage reference that keeps the memory alive. */
typedef struct versioned_block {
    DLManagedTensorVersioned managed; /* first: the deleter receives this address */
    int64_t dims[];
} versioned_block;

typedef struct legacy_block {
    DLManagedTensor managed;
    int64_t dims[];
} legacy_block;

/* ---- dtypes and devices ---- */

static DLDataType dl_dtype_of(ferry_dtype dtype)
{
    DLDataType dt = {.code = kDLInt, .bits = 0, .lanes = 1};
    switch (dtype) {
    case FERRY_BOOL:
        dt.code = kDLBool; /* one byte per element, the array-library convention */
        break;
    case FERRY_UINT8:
        dt.code = kDLUInt;
        break;
    case FERRY_INT8:
    case FERRY_INT16:
    case FERRY_INT32:
    case FERRY_INT64:
        dt.code = kDLInt;
        break;
    case FERRY_FLOAT16:
    case FERRY_FLOAT32:
    case FERRY_FLOAT64:
        dt.code = kDLFloat;
        break;
    case FERRY_BFLOAT16:
        dt.code = kDLBfloat;
        break;
    }
    dt.bits = (uint8_t)(ferry_dtype_size(dtype) * 8);
    return dt;
}

static const char *dl_code_name(uint8_t code)
{
    switch (code) {
    case kDLInt: return "int";
    case kDLUInt: return "uint";
    case kDLFloat: return "float";
    case kDLOpaqueHandle: return "opaque handle";
    case kDLBfloat: return "bfloat";
    case kDLComplex: return "complex";
    case kDLBool: return "bool";
    default: return "unknown";
    }
}

static ferry_status ferry_dtype_of(const char *fn, DLDataType dt, ferry_dtype *out)
{
    int found = -1;
    if (dt.lanes == 1) {
        switch (dt.code) {
        case kDLBool:
            found = dt.bits == 8 ? FERRY_BOOL : -1;
            break;
        case kDLUInt:
            found = dt.bits == 8 ? FERRY_UINT8 : -1;
            break;
        case kDLInt:
            found = dt.bits == 8 ? FERRY_INT8 : dt.bits == 16 ? FERRY_INT16
                  : dt.bits == 32 ? FERRY_INT32 : dt.bits == 64 ? FERRY_INT64 : -1;
            break;
        case kDLFloat:
            found = dt.bits == 16 ? FERRY_FLOAT16 : dt.bits == 32 ? FERRY_FLOAT32
                  : dt.bits == 64 ? FERRY_FLOAT64 : -1;
            break;
        case kDLBfloat:
            found = dt.bits == 16 ? FERRY_BFLOAT16 : -1;
            break;
        default:
            break;
        }
    }
    if (found < 0)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: DLPack dtype (code %u (%s), bits %u, lanes %u) has no ferry "
                            "dtype; ferry supports bool, uint8, int8/16/32/64, float16/32/64 "
                            "and bfloat16 with lanes 1",
                            fn, dt.code, dl_code_name(dt.code), dt.bits, dt.lanes);
    *out = (ferry_dtype)found;
    return FERRY_OK;
}

/* The plugin's own word (ABI 1.1) on its DLPack device type; 0 for none. */
static int32_t dl_type_of(const ferry_backend *be)
{
    return FERRY_OPS_HAS(be->ops, dlpack_device_type) ? be->ops->dlpack_device_type : 0;
}

static bool handles_are_addresses(const ferry_backend *be)
{
    return FERRY_OPS_HAS(be->ops, handles_are_addresses) ? be->ops->handles_are_addresses
                                                         : be->host_accessible[0];
}

/* dlpack.h's names, for messages only: which backend serves a type is the plugins' word. */
static const char *dl_type_name(int32_t t)
{
    switch (t) {
    case kDLCUDA:
        return "kDLCUDA";
    case kDLCUDAManaged:
        return "kDLCUDAManaged";
    case kDLOpenCL:
        return "kDLOpenCL";
    case kDLVulkan:
        return "kDLVulkan";
    case kDLMetal:
        return "kDLMetal";
    case kDLROCM:
        return "kDLROCM";
    case kDLROCMHost:
        return "kDLROCMHost";
    case kDLOneAPI:
        return "kDLOneAPI";
    default:
        return NULL;
    }
}

/* Whether an imported DLPack type's data is an address (not a cl_mem-like handle), in
 * the declaring plugin's own words. */
static bool dl_type_addresses(int32_t dl_type)
{
    if (dl_type == kDLCPU || dl_type == kDLCUDAHost)
        return true;
    const char *type = ferry__backend_for_dlpack_type(dl_type);
    ferry_backend *be = type ? ferry__backend_get(type) : NULL;
    return !be || handles_are_addresses(be);
}

static ferry_status dl_device_of(const char *fn, const ferry_tensor *t, DLDevice *out)
{
    const ferry_storage *s = t->storage;
    const char *type = s->backend->name;
    int32_t dl_type = dl_type_of(s->backend);
    if (dl_type > 0) {
        out->device_type = (DLDeviceType)dl_type;
        out->device_id = dl_type == kDLCPU ? 0 : s->device;
    } else {
        char dev[32];
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: %s tensors cannot be exported through DLPack (DLPack has "
                            "no device type for the %s backend); copy with ferry_tensor_cpu() "
                            "first",
                            fn, ferry__tensor_device_str(t, dev), type);
    }
    return FERRY_OK;
}

static ferry_status backend_of(const char *fn, DLDevice d, ferry_backend **be, int32_t *dev)
{
    const char *type;
    switch (d.device_type) {
    case kDLCPU:
    case kDLCUDAHost: /* pinned host memory: plain host pointers to the CPU backend */
        *be = ferry__cpu_backend();
        *dev = 0;
        if (!*be)
            return ferry__error(ferry_last_status(), "%s: %s", fn, ferry_last_error());
        return FERRY_OK;
    default:
        type = ferry__backend_for_dlpack_type((int32_t)d.device_type);
        if (!type) {
            const char *known = dl_type_name((int32_t)d.device_type);
            return ferry__error(FERRY_ERR_UNSUPPORTED,
                                "%s: DLPack device type %d (device_id %d%s%s) is not "
                                "supported: no ferry plugin declares it (ferry imports "
                                "kDLCPU (1), kDLCUDAHost (3) and the types of its plugins)",
                                fn, (int)d.device_type, (int)d.device_id, known ? ", " : "",
                                known ? known : "");
        }
    }
    char name[48];
    snprintf(name, sizeof name, "%s:%d", type, (int)d.device_id);
    ferry_status st = ferry__device_resolve(name, be, dev);
    if (st != FERRY_OK)
        return ferry__error(st, "%s: DLPack device %s: %s", fn, name, ferry_last_error());
    return FERRY_OK;
}

/* ---- export ---- */

/* Everything that can refuse an export, checked before anything is allocated. */
static ferry_status export_check(const char *fn, const ferry_tensor *t, bool legacy,
                                 int64_t stream, DLDevice *dev)
{
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    /* PyTorch's rule and words: a consumer would see the data without the autograd
     * history that should follow it. */
    if (t->requires_grad)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "Can't export tensors that require gradient, use tensor.detach()");
    /* The legacy struct has no flags, so a consumer would take the memory as writable;
     * NumPy refuses the same export for the same reason. */
    if (legacy && t->read_only)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: cannot export a read-only tensor: the unversioned "
                            "DLManagedTensor cannot mark it read-only; use "
                            "ferry_tensor_to_dlpack() (DLPack >= 1.0)",
                            fn);
    if (stream < -1 && stream != FERRY_DLPACK_NO_STREAM)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: stream %lld is no DLPack stream: the spec's values are -1 "
                            "(no ordering) and the device's streams, which are >= 0",
                            fn, (long long)stream);
    st = dl_device_of(fn, t, dev);
    if (st != FERRY_OK)
        return st;
    /* -1 is the consumer's promise to order its reads itself. */
    if (stream == -1)
        return FERRY_OK;
    ferry_backend *be = t->storage->backend;
    if (stream != FERRY_DLPACK_NO_STREAM && ferry__be_native_streams(be)) {
        /* The consumer's stream waits on the device; a consumer may write, so it
         * follows every queued use, not only the writer. */
        st = ferry__track_native_wait(t->storage, stream);
        if (st != FERRY_OK) {
            char dev_str[32];
            return ferry__error(st, "%s: ordering DLPack stream %lld of %s: %s", fn,
                                (long long)stream, ferry__tensor_device_str(t, dev_str),
                                ferry_last_error());
        }
        return FERRY_OK;
    }
    /* No stream to order on (or none this backend can make wait), so work ferry queued
     * on the memory must have finished before a consumer reads it (a no-op on the CPU
     * backend). */
    st = ferry__be_synchronize(be, t->storage->device);
    return st == FERRY_OK ? ferry__track_host(t->storage, true) : st;
}

static void export_fill(const ferry_tensor *t, DLDevice dev, int64_t *dims, DLTensor *dl)
{
    int ndim = t->ndim;
    memcpy(dims, t->shape, (size_t)ndim * sizeof *dims);
    memcpy(dims + ndim, t->strides, (size_t)ndim * sizeof *dims);
    /* Where data is an address it points at element 0 and byte_offset is 0: PyTorch,
     * among others, ignores byte_offset (pytorch/pytorch#168177), so a view's offset
     * there would be lost. On OpenCL the buffer is a cl_mem, which cannot be advanced,
     * so it travels as (buffer, byte_offset). The spec asks for data == NULL when
     * empty. */
    bool empty = ferry__numel(ndim, t->shape) == 0;
    bool handle = !handles_are_addresses(t->storage->backend);
    dl->data = empty    ? NULL
               : handle ? t->storage->buffer
                        : (void *)((char *)t->storage->buffer + t->byte_offset);
    dl->byte_offset = empty || !handle ? 0 : (uint64_t)t->byte_offset;
    dl->device = dev;
    dl->ndim = ndim;
    dl->dtype = dl_dtype_of(t->dtype);
    dl->shape = dims;
    dl->strides = dims + ndim; /* always filled: DLPack >= 1.0 forbids NULL for ndim > 0 */
}

static void delete_versioned(DLManagedTensorVersioned *self)
{
    if (!self)
        return;
    /* Atomic refcounts and free(): callable from any thread, the Python capsule's
     * destructor included. */
    ferry__storage_release((ferry_storage *)self->manager_ctx);
    free(self);
}

static void delete_legacy(DLManagedTensor *self)
{
    if (!self)
        return;
    ferry__storage_release((ferry_storage *)self->manager_ctx);
    free(self);
}

static DLManagedTensorVersioned *to_dlpack(const char *fn, ferry_tensor *t, int64_t stream)
{
    DLDevice dev;
    if (export_check(fn, t, false, stream, &dev) != FERRY_OK)
        return NULL;
    size_t size = sizeof(versioned_block) + 2 * (size_t)t->ndim * sizeof(int64_t);
    versioned_block *b = calloc(1, size);
    if (!b) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "%s: out of memory allocating %zu bytes", fn,
                     size);
        return NULL;
    }
    DLManagedTensorVersioned *m = &b->managed;
    m->version.major = DLPACK_MAJOR_VERSION;
    m->version.minor = DLPACK_MINOR_VERSION;
    m->flags = t->read_only ? DLPACK_FLAG_BITMASK_READ_ONLY : 0;
    export_fill(t, dev, b->dims, &m->dl_tensor);
    ferry__storage_retain(t->storage);
    m->manager_ctx = t->storage;
    m->deleter = delete_versioned;
    return m;
}

static DLManagedTensor *to_dlpack_unversioned(const char *fn, ferry_tensor *t, int64_t stream)
{
    DLDevice dev;
    if (export_check(fn, t, true, stream, &dev) != FERRY_OK)
        return NULL;
    size_t size = sizeof(legacy_block) + 2 * (size_t)t->ndim * sizeof(int64_t);
    legacy_block *b = calloc(1, size);
    if (!b) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "%s: out of memory allocating %zu bytes", fn,
                     size);
        return NULL;
    }
    DLManagedTensor *m = &b->managed;
    export_fill(t, dev, b->dims, &m->dl_tensor);
    ferry__storage_retain(t->storage);
    m->manager_ctx = t->storage;
    m->deleter = delete_legacy;
    return m;
}

FERRY_API DLManagedTensorVersioned *ferry_tensor_to_dlpack(ferry_tensor *t)
{
    return to_dlpack("ferry_tensor_to_dlpack", t, FERRY_DLPACK_NO_STREAM);
}

FERRY_API DLManagedTensorVersioned *ferry_tensor_to_dlpack_ex(ferry_tensor *t, int64_t stream)
{
    return to_dlpack("ferry_tensor_to_dlpack_ex", t, stream);
}

FERRY_API DLManagedTensor *ferry_tensor_to_dlpack_unversioned(ferry_tensor *t)
{
    return to_dlpack_unversioned("ferry_tensor_to_dlpack_unversioned", t,
                                 FERRY_DLPACK_NO_STREAM);
}

FERRY_API DLManagedTensor *ferry_tensor_to_dlpack_unversioned_ex(ferry_tensor *t,
                                                                 int64_t stream)
{
    return to_dlpack_unversioned("ferry_tensor_to_dlpack_unversioned_ex", t, stream);
}

FERRY_API ferry_status ferry_tensor_dlpack_device(const ferry_tensor *t, int32_t *dl_device_type,
                                                  int32_t *dl_device_id)
{
    static const char fn[] = "ferry_tensor_dlpack_device";
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    if (!dl_device_type || !dl_device_id)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: dl_device_type or dl_device_id is NULL",
                            fn);
    DLDevice d = {kDLCPU, 0};
    if ((st = dl_device_of(fn, t, &d)) != FERRY_OK)
        return st;
    *dl_device_type = (int32_t)d.device_type;
    *dl_device_id = d.device_id;
    return FERRY_OK;
}

FERRY_API ferry_status ferry_dlpack_current_stream(int32_t dl_device_type, int32_t dl_device_id,
                                                   int64_t *stream)
{
    static const char fn[] = "ferry_dlpack_current_stream";
    if (!stream)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: stream is NULL", fn);
    *stream = FERRY_DLPACK_NO_STREAM;
    ferry_backend *be;
    int32_t dev;
    DLDevice d = {(DLDeviceType)dl_device_type, dl_device_id};
    ferry_status st = backend_of(fn, d, &be, &dev);
    if (st != FERRY_OK)
        return st;
    if (!ferry__be_native_streams(be)) {
        char name[32];
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: %s (DLPack device (%d, %d)) has no DLPack streams: its "
                            "backend offers no queue_native; pass no stream",
                            fn, ferry__device_str(be, dev, name), (int)dl_device_type,
                            (int)dl_device_id);
    }
    return ferry__track_current_native(be, dev, stream);
}

/* ---- import ---- */

/* The storage deleters: the producer's deleter runs when the last tensor over its
 * memory goes, on whichever thread releases it. */
static void release_versioned(void *data, void *ctx)
{
    (void)data;
    DLManagedTensorVersioned *m = ctx;
    m->deleter(m);
}

static void release_legacy(void *data, void *ctx)
{
    (void)data;
    DLManagedTensor *m = ctx;
    m->deleter(m);
}

/* Checks that dl (numel > 0 elements of elsize bytes with `strides`) addresses memory
 * whose extent fits in int64 and in the address space, and gives the storage's layout:
 * the element-0 offset into it, how far below data it begins (<= 0) and its size. */
static ferry_status import_extent(const char *fn, const DLTensor *dl, int ndim,
                                  const int64_t *strides, int64_t elsize, int64_t numel,
                                  int64_t *offset, int64_t *base_shift, size_t *nbytes)
{
    /* lo and hi: the lowest and highest element reached, relative to element 0. */
    int64_t lo = 0, hi = 0;
    for (int i = 0; i < ndim; i++) {
        int64_t reach;
        if (__builtin_mul_overflow(dl->shape[i] - 1, strides[i], &reach))
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "%s: DLPack tensor's strides[%d] (%lld) times shape[%d] - 1 "
                                "(%lld) overflows int64",
                                fn, i, (long long)strides[i], i, (long long)dl->shape[i] - 1);
        if (__builtin_add_overflow(reach > 0 ? hi : lo, reach, reach > 0 ? &hi : &lo))
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "%s: DLPack tensor's strides reach more elements than fit in "
                                "int64 (at strides[%d] = %lld)",
                                fn, i, (long long)strides[i]);
    }
    int64_t hi_bytes, lo_bytes;
    if (__builtin_add_overflow(hi, 1, &hi) || __builtin_mul_overflow(hi, elsize, &hi_bytes) ||
        __builtin_mul_overflow(lo, elsize, &lo_bytes) || lo_bytes == INT64_MIN)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: DLPack tensor's shape and strides span more bytes than fit in "
                            "int64",
                            fn);
    if (dl->byte_offset > (uint64_t)INT64_MAX)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: DLPack tensor's byte_offset %llu is larger than INT64_MAX", fn,
                            (unsigned long long)dl->byte_offset);
    int64_t off = (int64_t)dl->byte_offset, end;
    if (__builtin_add_overflow(off, hi_bytes, &end))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: DLPack tensor's byte_offset %llu plus its extent of %lld bytes "
                            "overflows int64",
                            fn, (unsigned long long)dl->byte_offset, (long long)hi_bytes);
    /* NumPy exports a[::-1] with data at element 0 and negative strides. Where data is an
     * address the storage can simply begin lower; a cl_mem handle cannot be offset below
     * its start. off >= 0 and lo_bytes <= 0, so the sum cannot overflow. */
    int64_t first = off + lo_bytes;
    bool address = dl_type_addresses((int32_t)dl->device.device_type);
    if (first < 0 && !address)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: DLPack tensor's strides reach %llu bytes below element 0 but "
                            "byte_offset is only %llu: the view starts before data",
                            fn, 0ULL - (unsigned long long)lo_bytes,
                            (unsigned long long)dl->byte_offset);
    if (!dl->data)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: DLPack tensor has data == NULL but %lld elements", fn,
                            (long long)numel);
    int64_t shift = first < 0 ? first : 0, size;
    if (__builtin_sub_overflow(end, shift, &size) || (uint64_t)size > SIZE_MAX / 2)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: DLPack tensor's extent (byte_offset %llu, %lld bytes below "
                            "element 0, %lld above) overflows int64",
                            fn, (unsigned long long)dl->byte_offset, (long long)-lo_bytes,
                            (long long)hi_bytes);
    /* An address must not wrap around the address space either way; a cl_mem handle is
     * only an offset base (first >= 0 there, so shift is 0). */
    uintptr_t base = (uintptr_t)dl->data;
    if (address && (base < (uintptr_t)-shift ||
                    (uintptr_t)size - 1 > UINTPTR_MAX - (base - (uintptr_t)-shift)))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: DLPack tensor's data %p with byte_offset %llu and strides "
                            "addresses memory outside the address space",
                            fn, dl->data, (unsigned long long)dl->byte_offset);
    *offset = off - shift;
    *base_shift = shift;
    *nbytes = (size_t)size;
    return FERRY_OK;
}

/* Checks dl and builds a tensor over its memory. Nothing of the producer's is called
 * or written on failure, so the caller still owns `m` (NumPy and PyTorch leave a
 * refused capsule unconsumed in the same way). */
static ferry_tensor *import_tensor(const char *fn, const DLTensor *dl, bool read_only,
                                   void (*release)(void *, void *), void *ctx)
{
    int ndim = dl->ndim;
    if (ndim < 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: DLPack tensor has ndim %d", fn, ndim);
        return NULL;
    }
    if (ndim > FERRY_MAX_DIMS) {
        ferry__error(FERRY_ERR_UNSUPPORTED,
                     "%s: DLPack tensor has %d dimensions; ferry tensors have at most %d", fn,
                     ndim, FERRY_MAX_DIMS);
        return NULL;
    }
    if (ndim > 0 && !dl->shape) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: DLPack tensor of ndim %d has no shape",
                     fn, ndim);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (dl->shape[i] < 0) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "%s: DLPack tensor has a negative dimension: shape[%d] is %lld", fn, i,
                         (long long)dl->shape[i]);
            return NULL;
        }
    ferry_dtype dtype = FERRY_FLOAT32;
    if (ferry_dtype_of(fn, dl->dtype, &dtype) != FERRY_OK)
        return NULL;
    /* Zero strides let a tiny extent describe more elements than numel and nbytes can
     * count, so the element count gets the same limit as any new tensor's. */
    int64_t numel;
    if (ferry__check_shape(fn, dtype, ndim, dl->shape, &numel) != FERRY_OK)
        return NULL;
    int64_t elsize = (int64_t)ferry_dtype_size(dtype);

    int64_t strides[FERRY_MAX_DIMS];
    if (dl->strides)
        memcpy(strides, dl->strides, (size_t)ndim * sizeof *strides);
    else /* legacy producers (DLPack < 1.0) may leave compact tensors without strides */
        ferry__contiguous_strides(ndim, dl->shape, strides);

    /* The storage spans [data + min(0, byte_offset + lowest byte), data + byte_offset +
     * highest byte]. Every field comes from another library, so each step is checked
     * and a failure names the field. */
    int64_t offset = 0, base_shift = 0;
    size_t nbytes = 0;
    if (numel != 0 && import_extent(fn, dl, ndim, strides, elsize, numel, &offset,
                                    &base_shift, &nbytes) != FERRY_OK)
        return NULL;

    ferry_backend *be;
    int32_t dev;
    if (backend_of(fn, dl->device, &be, &dev) != FERRY_OK)
        return NULL;

    /* Integer arithmetic: base_shift may move below data, which C pointer arithmetic
     * does not allow, and import_extent checked it does not wrap. */
    void *base = (void *)((uintptr_t)dl->data + (uintptr_t)base_shift);
    ferry_storage *s = ferry__storage_wrap(be, dev, base, nbytes, release, ctx);
    if (!s)
        return NULL;
    s->deleter_data = dl->data;
    /* ferry__tensor_make drops the storage on failure, which would run the producer's
     * deleter; hold a second reference so the deleter can be disarmed first. */
    ferry__storage_retain(s);
    ferry_tensor *t = ferry__tensor_make(s, (size_t)offset, dtype, ndim, dl->shape, strides);
    if (!t) {
        s->deleter = NULL; /* ours alone now: nobody else can see s */
        ferry__storage_release(s);
        return NULL;
    }
    ferry__storage_release(s);
    t->read_only = read_only;
    ferry__track_import(s);
    return t;
}

FERRY_API ferry_tensor *ferry_tensor_from_dlpack(DLManagedTensorVersioned *m)
{
    static const char fn[] = "ferry_tensor_from_dlpack";
    if (!m) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: m is NULL", fn);
        return NULL;
    }
    /* Past a major mismatch only version, manager_ctx and deleter are known to be where
     * this header says; the rest must not be read. */
    if (m->version.major != DLPACK_MAJOR_VERSION) {
        ferry__error(FERRY_ERR_ABI,
                     "%s: DLPack version %u.%u is not supported: ferry reads major version %d "
                     "(built against %d.%d)",
                     fn, m->version.major, m->version.minor, DLPACK_MAJOR_VERSION,
                     DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION);
        return NULL;
    }
    bool read_only = (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0;
    return import_tensor(fn, &m->dl_tensor, read_only, m->deleter ? release_versioned : NULL,
                         m);
}

FERRY_API ferry_tensor *ferry_tensor_from_dlpack_unversioned(DLManagedTensor *m)
{
    static const char fn[] = "ferry_tensor_from_dlpack_unversioned";
    if (!m) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: m is NULL", fn);
        return NULL;
    }
    return import_tensor(fn, &m->dl_tensor, false, m->deleter ? release_legacy : NULL, m);
}

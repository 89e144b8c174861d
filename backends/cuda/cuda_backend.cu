/* The CUDA backend plugin: devices, memory, copies on one non-blocking stream per device,
 * temporaries from a per-device pool, and the entry table (kernels in cuda_kernels.cu,
 * matmul in cuda_matmul.cu). Every entry is extern "C", returns a status and lets no C++
 * exception out (STYLE.md 4); the driver's error name and number reach the message. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <ferry/backend.h>

#include "cuda_internal.h"

const ferry_host_api *cuda_host;

/* Per-device state, made on first use so that probing (init, device_info) never
 * creates a driver context. */
typedef struct cuda_device {
    pthread_mutex_t lock;
    bool ready;
    cudaStream_t stream;
    cublasHandle_t blas;
    int sms;             /* multiprocessors, for grid sizes */
    cudaMemPool_t pool;  /* temporaries; NULL where the device has no memory pools */
    int peer_state[64]; /* 0 unknown, 1 usable, -1 refused, per destination device */
} cuda_device;

static int32_t device_count;
static cuda_device *devices;

/* Errors after which the context is corrupt: every later call fails too, so the device
 * is reported lost rather than left looking available (CUDA runtime API, "sticky"). */
static bool sticky_error(cudaError_t e)
{
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed:
        return true;
    default:
        return false;
    }
}

ferry_status cuda_fail(int32_t dev, const char *call, cudaError_t e)
{
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    if (sticky_error(e) && FERRY_HOST_HAS(cuda_host, device_lost)) {
        char why[256];
        snprintf(why, sizeof why, "%s failed with %s (%s); restart the process to use it again",
                 call, cudaGetErrorName(e), cudaGetErrorString(e));
        cuda_host->device_lost("cuda", dev, why);
    }
    ferry_status st = e == cudaErrorMemoryAllocation ? FERRY_ERR_OUT_OF_MEMORY : FERRY_ERR_BACKEND;
    return cuda_host->error(st, "cuda:%d: %s failed: %s (%s=%d)", (int)dev, call,
                            cudaGetErrorString(e), cudaGetErrorName(e), (int)e);
}

static ferry_status blas_fail(int32_t dev, const char *call, cublasStatus_t s)
{
    return cuda_host->error(s == CUBLAS_STATUS_ALLOC_FAILED ? FERRY_ERR_OUT_OF_MEMORY
                                                            : FERRY_ERR_BACKEND,
                            "cuda:%d: %s failed: %s (%s=%d)", (int)dev, call,
                            cublasGetStatusString(s), cublasGetStatusName(s), (int)s);
}

/* A pool of the device's own, rather than its default pool, so that ferry's settings do not
 * change the application's: it keeps up to 64 MiB when idle, so that a steady loop of
 * reductions makes no driver allocation (the default threshold returns memory at every
 * synchronisation). NULL, with a debug line, where pools are unsupported. */
static cudaMemPool_t make_pool(int32_t dev)
{
    int supported = 0;
    cudaError_t e = cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, dev);
    cudaMemPool_t pool = NULL;
    if (e == cudaSuccess && supported) {
        cudaMemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = cudaMemAllocationTypePinned;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = dev;
        e = cudaMemPoolCreate(&pool, &props);
        if (e == cudaSuccess) {
            uint64_t keep = (uint64_t)64 << 20; /* cuuint64_t, as the attribute wants */
            if (cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) !=
                cudaSuccess)
                (void)cudaGetLastError(); /* only a cost: memory goes back sooner */
            return pool;
        }
        pool = NULL;
    }
    (void)cudaGetLastError();
    cuda_host->log(FERRY_LOG_DEBUG, "cuda", "cuda:%d: no memory pool (%s); temporaries use "
                   "cudaMalloc and wait for their work before cudaFree", (int)dev,
                   e == cudaSuccess ? "unsupported by the device" : cudaGetErrorName(e));
    return NULL;
}

ferry_status cuda_temp_alloc(int32_t dev, cudaStream_t stream, size_t nbytes, void **out)
{
    *out = NULL;
    cudaMemPool_t pool = devices[dev].pool;
    cudaError_t e = pool ? cudaMallocFromPoolAsync(out, nbytes, pool, stream)
                         : cudaMalloc(out, nbytes);
    if (e != cudaSuccess) {
        *out = NULL;
        return cuda_fail(dev, pool ? "cudaMallocFromPoolAsync" : "cudaMalloc", e);
    }
    return FERRY_OK;
}

void cuda_temp_free(int32_t dev, cudaStream_t stream, void *p)
{
    if (!p)
        return;
    if (devices[dev].pool) {
        if (cudaFreeAsync(p, stream) != cudaSuccess)
            (void)cudaGetLastError();
        return;
    }
    /* Work queued on the stream may still read p. */
    cudaStreamSynchronize(stream);
    cudaFree(p);
    (void)cudaGetLastError();
}

int cuda_sm_count(int32_t dev)
{
    return devices[dev].sms;
}

/* Makes `dev` current and its stream and cuBLAS handle exist. */
ferry_status cuda_use(int32_t dev, cudaStream_t *stream)
{
    cuda_device *d = &devices[dev];
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess)
        return cuda_fail(dev, "cudaSetDevice", e);
    pthread_mutex_lock(&d->lock);
    ferry_status st = FERRY_OK;
    if (!d->ready) {
        e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
        if (e != cudaSuccess) {
            st = cuda_fail(dev, "cudaStreamCreateWithFlags", e);
        } else {
            cublasStatus_t s = cublasCreate(&d->blas);
            if (s == CUBLAS_STATUS_SUCCESS)
                s = cublasSetStream(d->blas, d->stream);
            if (s != CUBLAS_STATUS_SUCCESS) {
                st = blas_fail(dev, "cublasCreate", s);
                cudaStreamDestroy(d->stream);
            } else {
                if (cudaDeviceGetAttribute(&d->sms, cudaDevAttrMultiProcessorCount, dev) !=
                        cudaSuccess ||
                    d->sms < 1)
                    d->sms = 1;
                d->pool = make_pool(dev);
                d->ready = true;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (st == FERRY_OK && stream)
        *stream = d->stream;
    return st;
}

cublasHandle_t cuda_blas(int32_t dev)
{
    return devices[dev].blas;
}

static ferry_status cuda_init(int32_t *count, char *reason, size_t reason_cap)
{
    *count = 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        /* No driver or no device is "0 devices, and here is why", not a failure. */
        snprintf(reason, reason_cap, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
        (void)cudaGetLastError();
        return FERRY_OK;
    }
    if (n == 0) {
        snprintf(reason, reason_cap, "cudaGetDeviceCount reported no device");
        return FERRY_OK;
    }
    devices = (cuda_device *)calloc((size_t)n, sizeof *devices);
    if (!devices)
        return cuda_host->error(FERRY_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    for (int i = 0; i < n; i++)
        pthread_mutex_init(&devices[i].lock, NULL);
    device_count = n;
    *count = n;
    return FERRY_OK;
}

static void cuda_shutdown(void)
{
    for (int32_t i = 0; i < device_count; i++) {
        if (devices[i].ready) {
            cudaSetDevice(i);
            cublasDestroy(devices[i].blas);
            cudaStreamSynchronize(devices[i].stream);
            cudaStreamDestroy(devices[i].stream);
            if (devices[i].pool)
                cudaMemPoolDestroy(devices[i].pool);
        }
        pthread_mutex_destroy(&devices[i].lock);
    }
    free(devices);
    devices = NULL;
    device_count = 0;
}

static ferry_status cuda_device_info(int32_t dev, ferry_device_info *out)
{
    cuda_device_keeper keep_device_;
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, dev);
    if (e != cudaSuccess)
        return cuda_fail(dev, "cudaGetDeviceProperties", e);
    snprintf(out->name, sizeof out->name, "%s", p.name);
    snprintf(out->vendor, sizeof out->vendor, "NVIDIA Corporation");
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    snprintf(out->driver_version, sizeof out->driver_version, "driver %d.%d, runtime %d.%d",
             drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
    out->total_memory = p.totalGlobalMem;
    out->free_memory = 0;
    if (devices[dev].ready) { /* only where a context exists already */
        size_t free_b = 0, total_b = 0;
        if (cudaSetDevice(dev) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
            out->free_memory = free_b;
    }
    out->host_accessible = false;
    out->compute_units = p.multiProcessorCount;
    snprintf(out->arch, sizeof out->arch, "sm_%d%d", p.major, p.minor);
    snprintf(out->bus_id, sizeof out->bus_id, "%04x:%02x:%02x.0", p.pciDomainID, p.pciBusID,
             p.pciDeviceID);
    return FERRY_OK;
}

static ferry_status cuda_alloc(int32_t dev, size_t nbytes, void **buffer)
{
    cuda_device_keeper keep_device_;
    *buffer = NULL;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaMalloc(buffer, nbytes);
    if (e != cudaSuccess) {
        *buffer = NULL;
        return cuda_fail(dev, "cudaMalloc", e);
    }
    return FERRY_OK;
}

static void cuda_free(int32_t dev, void *buffer)
{
    cuda_device_keeper keep_device_;
    if (cudaSetDevice(dev) == cudaSuccess)
        cudaFree(buffer);
}

static ferry_status cuda_copy_from_host(int32_t dev, void *dst, size_t dst_offset, const void *src,
                                        size_t nbytes)
{
    cuda_device_keeper keep_device_;
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaMemcpyAsync((char *)dst + dst_offset, src, nbytes, cudaMemcpyHostToDevice, s);
    /* The caller may reuse src once this returns. */
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaMemcpyAsync (host to device)", e);
}

static ferry_status cuda_copy_to_host(int32_t dev, void *dst, const void *src, size_t src_offset,
                                      size_t nbytes)
{
    cuda_device_keeper keep_device_;
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st != FERRY_OK)
        return st;
    /* On the device's stream, so it waits for the kernels queued before it, and only
     * for those. */
    cudaError_t e =
        cudaMemcpyAsync(dst, (const char *)src + src_offset, nbytes, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaMemcpyAsync (device to host)", e);
}

static ferry_status cuda_copy_on_device(int32_t dev, void *dst, size_t dst_offset, const void *src,
                                        size_t src_offset, size_t nbytes)
{
    cuda_device_keeper keep_device_;
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaMemcpyAsync((char *)dst + dst_offset, (const char *)src + src_offset, nbytes,
                                    cudaMemcpyDeviceToDevice, s);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaMemcpyAsync (device to device)", e);
}

static ferry_status cuda_synchronize(int32_t dev)
{
    cuda_device_keeper keep_device_;
    if (!devices[dev].ready)
        return FERRY_OK; /* nothing was ever queued */
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaStreamSynchronize", e);
}

/* Peer access is trusted only after the driver says yes and one real copy through it
 * comes back intact: some virtualised systems report peer support that corrupts data. */
static bool peer_usable(int32_t dst_dev, int32_t src_dev)
{
    if (dst_dev >= 64)
        return false;
    cuda_device *d = &devices[src_dev];
    pthread_mutex_lock(&d->lock);
    int state = d->peer_state[dst_dev];
    pthread_mutex_unlock(&d->lock);
    if (state)
        return state > 0;
    int can = 0;
    bool ok = cudaDeviceCanAccessPeer(&can, dst_dev, src_dev) == cudaSuccess && can;
    const char *why = ok ? NULL : "cudaDeviceCanAccessPeer says no";
    if (ok) {
        unsigned char pattern[256], back[256];
        for (int i = 0; i < 256; i++)
            pattern[i] = (unsigned char)(i * 37 + 11);
        void *a = NULL, *b = NULL;
        ok = cudaSetDevice(src_dev) == cudaSuccess && cudaMalloc(&a, 256) == cudaSuccess &&
             cudaMemcpy(a, pattern, 256, cudaMemcpyHostToDevice) == cudaSuccess &&
             cudaSetDevice(dst_dev) == cudaSuccess && cudaMalloc(&b, 256) == cudaSuccess &&
             cudaMemcpyPeer(b, dst_dev, a, src_dev, 256) == cudaSuccess &&
             cudaMemcpy(back, b, 256, cudaMemcpyDeviceToHost) == cudaSuccess &&
             memcmp(pattern, back, 256) == 0;
        if (a) {
            cudaSetDevice(src_dev);
            cudaFree(a);
        }
        if (b) {
            cudaSetDevice(dst_dev);
            cudaFree(b);
        }
        (void)cudaGetLastError();
        if (!ok)
            why = "the peer self-test copy failed";
    }
    if (ok) {
        /* Without it cudaMemcpyPeerAsync silently stages through host memory. Access is
         * one-way: the destination's context maps the source's memory. */
        cudaError_t e = cudaSetDevice(dst_dev);
        if (e == cudaSuccess)
            e = cudaDeviceEnablePeerAccess(src_dev, 0);
        if (e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) {
            ok = false;
            why = cudaGetErrorName(e);
        }
        (void)cudaGetLastError();
    }
    if (!ok)
        cuda_host->log(FERRY_LOG_INFO, "cuda", "cuda:%d -> cuda:%d: no peer copy (%s); staging "
                       "through host memory", (int)src_dev, (int)dst_dev, why);
    pthread_mutex_lock(&d->lock);
    d->peer_state[dst_dev] = ok ? 1 : -1;
    pthread_mutex_unlock(&d->lock);
    return ok;
}

static ferry_status cuda_copy_peer(int32_t dst_dev, void *dst, size_t dst_offset, int32_t src_dev,
                                   const void *src, size_t src_offset, size_t nbytes)
{
    cuda_device_keeper keep_device_;
    if (!peer_usable(dst_dev, src_dev))
        return FERRY_ERR_UNSUPPORTED;
    cudaStream_t ss, ds;
    ferry_status st = cuda_use(src_dev, &ss);
    if (st == FERRY_OK)
        st = cuda_use(dst_dev, &ds);
    if (st != FERRY_OK)
        return st;
    /* Ordered after the source's queued work; complete before returning, because the
     * source block may be reused by the caching allocator as soon as we return. */
    cudaError_t e = cudaStreamSynchronize(ss);
    if (e == cudaSuccess)
        e = cudaMemcpyPeerAsync((char *)dst + dst_offset, dst_dev, (const char *)src + src_offset,
                                src_dev, nbytes, ds);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(ds);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(src_dev, "cudaMemcpyPeerAsync", e);
}

static ferry_status cuda_host_alloc(size_t nbytes, void **ptr)
{
    cudaError_t e = cudaHostAlloc(ptr, nbytes, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        *ptr = NULL;
        return cuda_fail(0, "cudaHostAlloc", e);
    }
    return FERRY_OK;
}

static void cuda_host_free(void *ptr)
{
    cudaFreeHost(ptr);
}

static ferry_status guarded_matmul(int32_t dev, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    CUDA_GUARD(cuda_matmul(dev, out, a, b))
}

static ferry_status guarded_fill(int32_t dev, const ferry_kernel_tensor *out, const void *value)
{
    CUDA_GUARD(cuda_fill(dev, out, value))
}

static ferry_status guarded_cast(int32_t dev, const ferry_kernel_tensor *out,
                                 const ferry_kernel_tensor *in)
{
    CUDA_GUARD(cuda_cast(dev, out, in))
}

static ferry_status guarded_copy_strided(int32_t dev, const ferry_kernel_tensor *out,
                                         const ferry_kernel_tensor *in)
{
    CUDA_GUARD(cuda_copy_strided(dev, out, in))
}

static ferry_status guarded_unary(int32_t dev, ferry_unary_op op, const ferry_kernel_tensor *out,
                                  const ferry_kernel_tensor *in)
{
    CUDA_GUARD(cuda_unary(dev, op, out, in))
}

static ferry_status guarded_binary(int32_t dev, ferry_binary_op op, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    CUDA_GUARD(cuda_binary(dev, op, out, a, b))
}

static ferry_status guarded_binary_scalar(int32_t dev, ferry_binary_op op,
                                          const ferry_kernel_tensor *out,
                                          const ferry_kernel_tensor *a,
                                          const ferry_kernel_scalar *b)
{
    CUDA_GUARD(cuda_binary_scalar(dev, op, out, a, b))
}

static ferry_status guarded_reduce(int32_t dev, ferry_reduce_op op, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *in)
{
    CUDA_GUARD(cuda_reduce(dev, op, out, in))
}

/* The named kernels, one table per op family (cuda_internal.h); each kernel runs the
 * portable source of backends/kernels and guards itself with CUDA_GUARD. */
static const ferry_named_entry *const cuda_named_tables[] = {
    cuda_named_random,
    cuda_named_reduce2,
    cuda_named_sort,
    cuda_named_index,
    cuda_named_elementwise2,
    cuda_named_select,
    cuda_named_shape2,
    NULL,
};

static ferry_named_kernel cuda_get_kernel(int32_t device, const char *name)
{
    (void)device;
    return ferry_named_lookup(cuda_named_tables, name);
}

static ferry_backend_ops make_ops(void)
{
    ferry_backend_ops o;
    memset(&o, 0, sizeof o);
    o.abi_major = FERRY_BACKEND_ABI_MAJOR;
    o.abi_minor = FERRY_BACKEND_ABI_MINOR;
    o.struct_size = sizeof(ferry_backend_ops);
    o.name = "cuda";
    o.version = FERRY_VERSION_STRING;
    o.init = cuda_init;
    o.shutdown = cuda_shutdown;
    o.device_info = cuda_device_info;
    o.alloc = cuda_alloc;
    o.free = cuda_free;
    o.copy_from_host = cuda_copy_from_host;
    o.copy_to_host = cuda_copy_to_host;
    o.copy_on_device = cuda_copy_on_device;
    o.synchronize = cuda_synchronize;
    o.copy_peer = cuda_copy_peer;
    o.host_alloc = cuda_host_alloc;
    o.host_free = cuda_host_free;
    o.fill = guarded_fill;
    o.cast = guarded_cast;
    o.copy_strided = guarded_copy_strided;
    o.unary = guarded_unary;
    o.binary = guarded_binary;
    o.binary_scalar = guarded_binary_scalar;
    o.reduce = guarded_reduce;
    o.matmul = guarded_matmul;
    o.get_kernel = cuda_get_kernel;
    o.dlpack_device_type = 2; /* kDLCUDA */
    o.handles_are_addresses = true;
    cuda_add_dlpack_streams(&o);
    return o;
}

static const ferry_backend_ops cuda_ops = make_ops();

extern "C" FERRY_BACKEND_EXPORT const ferry_backend_ops *ferry_backend_entry(const ferry_host_api *host)
{
    cuda_host = host;
    return &cuda_ops;
}

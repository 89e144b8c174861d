/* The CUDA backend plugin: devices, memory, queues (non-blocking streams) and events
 * (ABI 1.2), copies on the calling thread's current queue, temporaries from a per-device
 * stream-ordered pool, and the entry table (kernels in cuda_kernels.cu,
 * matmul in cuda_matmul.cu). Every entry is extern "C", returns a status and lets no C++
 * exception out (STYLE.md 4); the driver's error name and number reach the message. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <ferry/backend.h>

#include "cuda_internal.h"

const ferry_host_api *cuda_host;

/* A queue: a non-blocking stream of ferry's, its cuBLAS handle (made on the first matmul
 * on it and bound to its stream for good, so that no thread ever calls cublasSetStream on
 * a handle another thread is using, and no two streams share one cuBLAS workspace) and
 * an event that copy_to_host and synchronize record on it to wait for its work. A
 * destroyed queue goes to its device's spares with its stream, for the next
 * queue_create: a queue object stays valid until shutdown, so a thread whose current
 * queue was destroyed meanwhile never reaches freed memory. */
typedef struct cuda_queue {
    cudaStream_t stream;
    cublasHandle_t blas;
    cudaEvent_t order;
    struct cuda_queue *next; /* in the device's live list or its spares; device lock */
} cuda_queue;

/* Events kept for reuse per device: the core may record one after every call it queues. */
#define CUDA_EVENT_SPARES 1024

/* Per-device state, made on first use so that probing (init, device_info) never
 * creates a driver context. */
typedef struct cuda_device {
    pthread_mutex_t lock;
    bool ready; /* set once, under lock, after everything below it (__atomic builtins) */
    cuda_queue deflt;        /* the default queue (the handle NULL) */
    cuda_queue *queues;      /* queue_create's, live */
    cuda_queue *spares;      /* destroyed, their streams idle */
    int sms;                 /* multiprocessors, for grid sizes */
    cudaMemPool_t pool;      /* temporaries; NULL where the device has no memory pools */
    int peer_state[CUDA_MAX_DEVICES]; /* 0 unknown, 1 usable, -1 refused, per destination */
    pthread_mutex_t event_lock;
    int nevents;
    cudaEvent_t events[CUDA_EVENT_SPARES];
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
    case cudaErrorLaunchTimeout:
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

/* The driver's cuDevicePrimaryCtxGetState, found through the runtime so that the plugin
 * needs no libcuda at link time; NULL when this driver does not offer it. */
typedef int (*primary_ctx_state_fn)(int dev, unsigned int *flags, int *active);

static primary_ctx_state_fn primary_ctx_state(void)
{
    static const primary_ctx_state_fn fn = [] {
        void *p = NULL;
        cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
        cudaError_t e = cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &p, 12000,
                                                         cudaEnableDefault, &found);
#else
        cudaError_t e =
            cudaGetDriverEntryPoint("cuDevicePrimaryCtxGetState", &p, cudaEnableDefault, &found);
#endif
        if (e != cudaSuccess || found != cudaDriverEntryPointSuccess) {
            (void)cudaGetLastError();
            p = NULL;
        }
        return (primary_ctx_state_fn)p;
    }();
    return fn;
}

bool cuda_has_context(int dev)
{
    primary_ctx_state_fn state = primary_ctx_state();
    unsigned int flags = 0;
    int active = 1;
    if (state && state(dev, &flags, &active) != 0)
        active = 1; /* the driver cannot say: restore, as before */
    return active != 0;
}

/* The calling thread's current queue per device (set_queue); NULL is the default. The
 * values are of the init they were set under: after a shutdown and a new init (the
 * module stays loaded) a thread's old values name deleted queues, and count as NULL. */
/* __atomic builtins, not std::atomic: a build without inlining (Debug, ASan) would export
 * std::atomic's weak template instances from the plugin, which may export only its entry. */
static unsigned init_generation;
static thread_local unsigned current_generation;
static thread_local cuda_queue *current_queue[CUDA_MAX_DEVICES];

static cuda_queue *queue_of(int32_t dev, void *queue)
{
    return queue ? (cuda_queue *)queue : &devices[dev].deflt;
}

cudaStream_t cuda_queue_stream(int32_t dev, void *queue)
{
    return queue_of(dev, queue)->stream;
}

static cuda_queue *current_of(int32_t dev)
{
    if (current_generation != __atomic_load_n(&init_generation, __ATOMIC_RELAXED))
        return &devices[dev].deflt;
    return queue_of(dev, current_queue[dev]);
}

/* A stream of ferry's with its order event; the cuBLAS handle comes later. */
static ferry_status queue_init(int32_t dev, cuda_queue *q)
{
    memset(q, 0, sizeof *q);
    cudaError_t e = cudaStreamCreateWithFlags(&q->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        return cuda_fail(dev, "cudaStreamCreateWithFlags", e);
    e = cudaEventCreateWithFlags(&q->order, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        cudaStreamDestroy(q->stream);
        return cuda_fail(dev, "cudaEventCreateWithFlags", e);
    }
    return FERRY_OK;
}

static void queue_fini(cuda_queue *q)
{
    if (q->blas)
        cublasDestroy(q->blas);
    cudaStreamSynchronize(q->stream);
    cudaStreamDestroy(q->stream);
    cudaEventDestroy(q->order);
    (void)cudaGetLastError();
}

/* Makes `dev` current and its default queue exist. */
ferry_status cuda_use(int32_t dev, cudaStream_t *stream)
{
    cuda_device *d = &devices[dev];
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess)
        return cuda_fail(dev, "cudaSetDevice", e);
    if (!__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&d->lock);
        ferry_status st = FERRY_OK;
        if (!__atomic_load_n(&d->ready, __ATOMIC_RELAXED)) {
            st = queue_init(dev, &d->deflt);
            if (st == FERRY_OK) {
                if (cudaDeviceGetAttribute(&d->sms, cudaDevAttrMultiProcessorCount, dev) !=
                        cudaSuccess ||
                    d->sms < 1)
                    d->sms = 1;
                d->pool = make_pool(dev);
                __atomic_store_n(&d->ready, true, __ATOMIC_RELEASE);
            }
        }
        pthread_mutex_unlock(&d->lock);
        if (st != FERRY_OK)
            return st;
    }
    if (stream)
        *stream = current_of(dev)->stream;
    return FERRY_OK;
}

ferry_status cuda_blas(int32_t dev, cublasHandle_t *handle)
{
    cuda_device *d = &devices[dev];
    cuda_queue *q = current_of(dev);
    pthread_mutex_lock(&d->lock);
    ferry_status st = FERRY_OK;
    if (!q->blas) {
        cublasHandle_t h = NULL;
        cublasStatus_t s = cublasCreate(&h);
        if (s == CUBLAS_STATUS_SUCCESS) {
            s = cublasSetStream(h, q->stream);
            if (s != CUBLAS_STATUS_SUCCESS)
                cublasDestroy(h);
        }
        if (s == CUBLAS_STATUS_SUCCESS)
            q->blas = h;
        else
            st = blas_fail(dev, "cublasCreate", s);
    }
    *handle = q->blas;
    pthread_mutex_unlock(&d->lock);
    return st;
}

/* Makes `s` (of dev, or of a peer) wait, on the device, for the work queued so far on
 * every other queue of dev: what copy_to_host, synchronize and a peer copy from dev must
 * come after. dev is current. */
static ferry_status order_after_all(int32_t dev, cudaStream_t s)
{
    cuda_device *d = &devices[dev];
    cudaError_t e = cudaSuccess;
    const char *call = NULL;
    pthread_mutex_lock(&d->lock);
    for (cuda_queue *q = &d->deflt; q && e == cudaSuccess;
         q = q == &d->deflt ? d->queues : q->next) {
        if (q->stream == s)
            continue;
        /* Record and wait under the lock: the wait takes this record of the event. */
        e = cudaEventRecord(q->order, q->stream);
        call = "cudaEventRecord";
        if (e == cudaSuccess) {
            e = cudaStreamWaitEvent(s, q->order, 0);
            call = "cudaStreamWaitEvent";
        }
    }
    pthread_mutex_unlock(&d->lock);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, call, e);
}

static ferry_status cuda_init(void **ctx, int32_t *count, char *reason, size_t reason_cap)
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
    if (n > CUDA_MAX_DEVICES) {
        cuda_host->log(FERRY_LOG_WARN, "cuda", "%d devices: only the first %d are offered", n,
                       CUDA_MAX_DEVICES);
        n = CUDA_MAX_DEVICES;
    }
    devices = new (std::nothrow) cuda_device[n]();
    if (!devices)
        return cuda_host->error(FERRY_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    for (int i = 0; i < n; i++) {
        pthread_mutex_init(&devices[i].lock, NULL);
        pthread_mutex_init(&devices[i].event_lock, NULL);
    }
    device_count = n;
    __atomic_fetch_add(&init_generation, 1, __ATOMIC_RELAXED);
    *count = n;
    return FERRY_OK;
}

static void cuda_shutdown(void *ctx)
{
    cuda_device_keeper keep_device_;
    for (int32_t i = 0; i < device_count; i++) {
        cuda_device *d = &devices[i];
        if (__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE)) {
            cudaSetDevice(i);
            for (cuda_queue **list : {&d->queues, &d->spares})
                while (*list) {
                    cuda_queue *q = *list;
                    *list = q->next;
                    queue_fini(q);
                    delete q;
                }
            queue_fini(&d->deflt);
            for (int k = 0; k < d->nevents; k++)
                cudaEventDestroy(d->events[k]);
            d->nevents = 0;
            if (d->pool)
                cudaMemPoolDestroy(d->pool);
            (void)cudaGetLastError();
        }
        pthread_mutex_destroy(&d->lock);
        pthread_mutex_destroy(&d->event_lock);
    }
    delete[] devices;
    devices = NULL;
    device_count = 0;
}

static ferry_status cuda_device_info(void *ctx, int32_t dev, ferry_device_info *out)
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
    if (__atomic_load_n(&devices[dev].ready, __ATOMIC_ACQUIRE)) { /* only where a context exists */
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

static ferry_status cuda_alloc(void *ctx, int32_t dev, size_t nbytes, void **buffer)
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

static void cuda_free(void *ctx, int32_t dev, void *buffer)
{
    cuda_device_keeper keep_device_;
    if (cudaSetDevice(dev) == cudaSuccess)
        cudaFree(buffer);
    (void)cudaGetLastError();
}

static ferry_status cuda_copy_from_host(void *ctx, int32_t dev, void *dst, size_t dst_offset,
                                        const void *src,
                                        size_t nbytes)
{
    cuda_device_keeper keep_device_;
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaMemcpyAsync((char *)dst + dst_offset, src, nbytes, cudaMemcpyHostToDevice, s);
    /* The caller may reuse src once this returns (the core's pinned staging buffers
     * included, which the driver reads only when the stream gets there). */
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaMemcpyAsync (host to device)", e);
}

static ferry_status cuda_copy_to_host(void *ctx, int32_t dev, void *dst, const void *src,
                                      size_t src_offset,
                                      size_t nbytes)
{
    cuda_device_keeper keep_device_;
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st == FERRY_OK)
        st = order_after_all(dev, s); /* ABI 1.2: after the device's work on every queue */
    if (st != FERRY_OK)
        return st;
    cudaError_t e =
        cudaMemcpyAsync(dst, (const char *)src + src_offset, nbytes, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaMemcpyAsync (device to host)", e);
}

static ferry_status cuda_copy_on_device(void *ctx, int32_t dev, void *dst, size_t dst_offset,
                                        const void *src,
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

/* Every queue of the device, not only the caller's: one host wait, on the caller's
 * current queue made to follow all the others. */
static ferry_status cuda_synchronize(void *ctx, int32_t dev)
{
    cuda_device_keeper keep_device_;
    if (!__atomic_load_n(&devices[dev].ready, __ATOMIC_ACQUIRE))
        return FERRY_OK; /* nothing was ever queued */
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st == FERRY_OK)
        st = order_after_all(dev, s);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaStreamSynchronize", e);
}

/* Peer access is trusted only after the driver says yes and one real copy through it
 * comes back intact: some virtualised systems report peer support that corrupts data. */
static bool peer_usable(int32_t dst_dev, int32_t src_dev)
{
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

static ferry_status cuda_copy_peer(void *ctx, int32_t dst_dev, void *dst, size_t dst_offset,
                                   int32_t src_dev,
                                   const void *src, size_t src_offset, size_t nbytes)
{
    cuda_device_keeper keep_device_;
    if (!peer_usable(dst_dev, src_dev))
        return FERRY_ERR_UNSUPPORTED;
    cudaStream_t ds;
    ferry_status st = cuda_use(dst_dev, &ds);
    /* On the destination's current queue, made to wait on the device for the source
     * device's queued work: the core leaves work on a lone default queue unrecorded, so
     * it has no event for the source's writer to wait for. The core keeps both blocks
     * until the event it records after this call is done. */
    if (st == FERRY_OK)
        st = cuda_use(src_dev, NULL);
    if (st == FERRY_OK)
        st = order_after_all(src_dev, ds);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaSetDevice(dst_dev);
    if (e == cudaSuccess)
        e = cudaMemcpyPeerAsync((char *)dst + dst_offset, dst_dev, (const char *)src + src_offset,
                                src_dev, nbytes, ds);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dst_dev, "cudaMemcpyPeerAsync", e);
}

/* Portable, so that any device's copies read it at full speed; the core gives it to
 * copy_*_async, and keeps it, as its own staging buffers, for reuse (core/copy.c). */
static ferry_status cuda_host_alloc(void *ctx, size_t nbytes, void **ptr)
{
    cudaError_t e = cudaHostAlloc(ptr, nbytes, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        *ptr = NULL;
        return cuda_fail(0, "cudaHostAlloc", e);
    }
    return FERRY_OK;
}

static void cuda_host_free(void *ctx, void *ptr)
{
    /* Waits for nothing: the core frees pinned memory only once its copies are done. */
    cudaFreeHost(ptr);
    (void)cudaGetLastError();
}

/* ---- queues and events (ABI 1.2) -------------------------------------------------------
 * A queue is a cuda_queue, an event a cudaEvent_t. Events have timing off
 * (cudaEventDisableTiming), the cheapest to record, wait for and query: the core may
 * record one after every call it queues. event_elapsed then answers FERRY_ERR_UNSUPPORTED and the
 * core measures host time at record; FERRY_CUDA_EVENT_TIMING=1 times every event, so that
 * ferry_event_elapsed_ms reports the device's own time. */

static unsigned int event_flags(void)
{
    static const bool timed = [] {
        const char *v = getenv("FERRY_CUDA_EVENT_TIMING");
        return v && strcmp(v, "1") == 0;
    }();
    return timed ? cudaEventDefault : cudaEventDisableTiming;
}

static ferry_status cuda_queue_create(void *ctx, int32_t dev, void **queue)
{
    cuda_device_keeper keep_device_;
    *queue = NULL;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cuda_device *d = &devices[dev];
    pthread_mutex_lock(&d->lock);
    cuda_queue *q = d->spares;
    if (q)
        d->spares = q->next;
    pthread_mutex_unlock(&d->lock);
    if (!q) {
        q = new (std::nothrow) cuda_queue;
        if (!q)
            return cuda_host->error(FERRY_ERR_OUT_OF_MEMORY, "cuda:%d: out of host memory",
                                    (int)dev);
        if ((st = queue_init(dev, q)) != FERRY_OK) {
            delete q;
            return st;
        }
    }
    pthread_mutex_lock(&d->lock);
    q->next = d->queues;
    d->queues = q;
    pthread_mutex_unlock(&d->lock);
    *queue = q;
    return FERRY_OK;
}

static void cuda_queue_destroy(void *ctx, int32_t dev, void *queue)
{
    cuda_device_keeper keep_device_;
    cuda_device *d = &devices[dev];
    cuda_queue *q = (cuda_queue *)queue;
    if (cudaSetDevice(dev) != cudaSuccess || cudaStreamSynchronize(q->stream) != cudaSuccess)
        (void)cudaGetLastError(); /* a lost device: the stream is idle for good */
    if (current_of(dev) == q)
        current_queue[dev] = NULL;
    pthread_mutex_lock(&d->lock);
    for (cuda_queue **at = &d->queues; *at; at = &(*at)->next)
        if (*at == q) {
            *at = q->next;
            q->next = d->spares;
            d->spares = q;
            break;
        }
    pthread_mutex_unlock(&d->lock);
}

static ferry_status cuda_set_queue(void *ctx, int32_t dev, void *queue)
{
    unsigned gen = __atomic_load_n(&init_generation, __ATOMIC_RELAXED);
    if (current_generation != gen) {
        memset(current_queue, 0, sizeof current_queue);
        current_generation = gen;
    }
    current_queue[dev] = (cuda_queue *)queue;
    return FERRY_OK;
}

static ferry_status cuda_event_record(void *ctx, int32_t dev, void *queue, void **event)
{
    cuda_device_keeper keep_device_;
    *event = NULL;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cuda_device *d = &devices[dev];
    cudaEvent_t ev = NULL;
    pthread_mutex_lock(&d->event_lock);
    if (d->nevents > 0)
        ev = d->events[--d->nevents];
    pthread_mutex_unlock(&d->event_lock);
    cudaError_t e = cudaSuccess;
    if (!ev && (e = cudaEventCreateWithFlags(&ev, event_flags())) != cudaSuccess)
        return cuda_fail(dev, "cudaEventCreateWithFlags", e);
    e = cudaEventRecord(ev, queue_of(dev, queue)->stream);
    if (e != cudaSuccess) {
        cudaEventDestroy(ev);
        return cuda_fail(dev, "cudaEventRecord", e);
    }
    *event = ev;
    return FERRY_OK;
}

static ferry_status cuda_event_wait(void *ctx, int32_t dev, void *queue, void *event)
{
    cuda_device_keeper keep_device_;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaStreamWaitEvent(queue_of(dev, queue)->stream, (cudaEvent_t)event, 0);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaStreamWaitEvent", e);
}

static ferry_status cuda_event_synchronize(void *ctx, int32_t dev, void *event)
{
    cuda_device_keeper keep_device_;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaEventSynchronize((cudaEvent_t)event);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaEventSynchronize", e);
}

static ferry_status cuda_event_query(void *ctx, int32_t dev, void *event, bool *done)
{
    cuda_device_keeper keep_device_;
    *done = false;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaEventQuery((cudaEvent_t)event);
    if (e == cudaErrorNotReady) {
        (void)cudaGetLastError();
        return FERRY_OK;
    }
    if (e != cudaSuccess)
        return cuda_fail(dev, "cudaEventQuery", e);
    *done = true;
    return FERRY_OK;
}

/* Back to the device's spares: a later cudaEventRecord re-arms it, while the waits
 * already queued on the old record keep theirs. */
static void cuda_event_destroy(void *ctx, int32_t dev, void *event)
{
    cuda_device *d = &devices[dev];
    pthread_mutex_lock(&d->event_lock);
    bool kept = d->nevents < CUDA_EVENT_SPARES;
    if (kept)
        d->events[d->nevents++] = (cudaEvent_t)event;
    pthread_mutex_unlock(&d->event_lock);
    if (!kept) {
        cuda_device_keeper keep_device_;
        cudaEventDestroy((cudaEvent_t)event); /* its work still runs */
        (void)cudaGetLastError();
    }
}

static ferry_status cuda_event_elapsed(void *ctx, int32_t dev, void *start, void *end, float *ms)
{
    if (event_flags() == cudaEventDisableTiming)
        return FERRY_ERR_UNSUPPORTED; /* the core uses host time at record */
    cuda_device_keeper keep_device_;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cudaError_t e = cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)end);
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaEventElapsedTime", e);
}

/* From pinned memory (host_alloc), returning once queued: the core keeps src unchanged
 * until an event recorded after this is done. */
static ferry_status cuda_copy_from_host_async(void *ctx, int32_t dev, void *dst, size_t dst_offset,
                                              const void *src, size_t nbytes)
{
    cuda_device_keeper keep_device_;
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st != FERRY_OK)
        return st;
    cudaError_t e =
        cudaMemcpyAsync((char *)dst + dst_offset, src, nbytes, cudaMemcpyHostToDevice, s);
    return e == cudaSuccess ? FERRY_OK
                            : cuda_fail(dev, "cudaMemcpyAsync (host to device, async)", e);
}

/* After the current queue's work only: the core orders the others with event_wait. */
static ferry_status cuda_copy_to_host_async(void *ctx, int32_t dev, void *dst, const void *src,
                                            size_t src_offset, size_t nbytes)
{
    cuda_device_keeper keep_device_;
    cudaStream_t s;
    ferry_status st = cuda_use(dev, &s);
    if (st != FERRY_OK)
        return st;
    cudaError_t e =
        cudaMemcpyAsync(dst, (const char *)src + src_offset, nbytes, cudaMemcpyDeviceToHost, s);
    return e == cudaSuccess ? FERRY_OK
                            : cuda_fail(dev, "cudaMemcpyAsync (device to host, async)", e);
}

static ferry_status guarded_matmul(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    CUDA_GUARD(cuda_matmul(dev, out, a, b))
}

static ferry_status guarded_fill(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                                 const void *value)
{
    CUDA_GUARD(cuda_fill(dev, out, value))
}

static ferry_status guarded_cast(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                                 const ferry_kernel_tensor *in)
{
    CUDA_GUARD(cuda_cast(dev, out, in))
}

static ferry_status guarded_copy_strided(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                                         const ferry_kernel_tensor *in)
{
    CUDA_GUARD(cuda_copy_strided(dev, out, in))
}

static ferry_status guarded_unary(void *ctx, int32_t dev, ferry_unary_op op,
                                  const ferry_kernel_tensor *out,
                                  const ferry_kernel_tensor *in)
{
    CUDA_GUARD(cuda_unary(dev, op, out, in))
}

static ferry_status guarded_binary(void *ctx, int32_t dev, ferry_binary_op op,
                                   const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    CUDA_GUARD(cuda_binary(dev, op, out, a, b))
}

static ferry_status guarded_binary_scalar(void *ctx, int32_t dev, ferry_binary_op op,
                                          const ferry_kernel_tensor *out,
                                          const ferry_kernel_tensor *a,
                                          const ferry_kernel_scalar *b)
{
    CUDA_GUARD(cuda_binary_scalar(dev, op, out, a, b))
}

static ferry_status guarded_reduce(void *ctx, int32_t dev, ferry_reduce_op op,
                                   const ferry_kernel_tensor *out,
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

static ferry_named_kernel cuda_get_kernel(void *ctx, int32_t device, const char *name)
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
    o.queue_create = cuda_queue_create;
    o.queue_destroy = cuda_queue_destroy;
    o.set_queue = cuda_set_queue;
    o.event_record = cuda_event_record;
    o.event_wait = cuda_event_wait;
    o.event_synchronize = cuda_event_synchronize;
    o.event_query = cuda_event_query;
    o.event_destroy = cuda_event_destroy;
    o.event_elapsed = cuda_event_elapsed;
    o.copy_from_host_async = cuda_copy_from_host_async;
    o.copy_to_host_async = cuda_copy_to_host_async;
    cuda_add_dlpack_streams(&o);
    return o;
}

static const ferry_backend_ops cuda_ops = make_ops();

extern "C" FERRY_BACKEND_EXPORT const ferry_backend_ops *
ferry_backend_entry2(const ferry_host_api *host)
{
    cuda_host = host;
    return &cuda_ops;
}

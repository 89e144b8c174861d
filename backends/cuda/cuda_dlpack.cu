/* DLPack stream exchange (ABI 1.2 queue_native, event_wait_native), apart from the queue
 * code so the two change independently. A queue handle's stream comes from
 * cuda_queue_stream (NULL: the device's default queue); an event handle is its
 * cudaEvent_t. The core calls these only
 * while the backend offers queues; until then it synchronises around DLPack exports. */
#include <stdint.h>

#include <cuda_runtime.h>

#include <ferry/backend.h>

#include "cuda_internal.h"

/* The Python DLPack spec's numbers for CUDA: 1 the legacy default stream, 2 the
 * per-thread default stream, else the cudaStream_t's value (0 is ambiguous there). */
static int64_t dlpack_number(cudaStream_t s)
{
    if (s == 0 || s == cudaStreamLegacy)
        return 1;
    if (s == cudaStreamPerThread)
        return 2;
    return (int64_t)(intptr_t)s;
}

static ferry_status cuda_queue_native(void *ctx, int32_t dev, void *queue, int64_t *stream)
{
    cuda_device_keeper keep_device_;
    *stream = 0;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    *stream = dlpack_number(cuda_queue_stream(dev, queue));
    return FERRY_OK;
}

static ferry_status cuda_event_wait_native(void *ctx, int32_t dev, int64_t stream, void *event)
{
    /* The value comes from another library: 0 and anything below -1 are no stream in
     * the spec, and -1 (no ordering) never reaches a backend. */
    if (stream <= 0)
        return cuda_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                "cuda:%d: event_wait_native: %lld is no DLPack stream (1 is "
                                "the legacy default stream, 2 the per-thread default stream, "
                                "others a cudaStream_t)",
                                (int)dev, (long long)stream);
    cuda_device_keeper keep_device_;
    ferry_status st = cuda_use(dev, NULL);
    if (st != FERRY_OK)
        return st;
    cudaStream_t s = stream == 1   ? cudaStreamLegacy
                     : stream == 2 ? cudaStreamPerThread
                                   : (cudaStream_t)(intptr_t)stream;
    cudaError_t e = cudaStreamWaitEvent(s, (cudaEvent_t)event, 0);
    if (e == cudaErrorInvalidResourceHandle) {
        (void)cudaGetLastError();
        return cuda_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                "cuda:%d: event_wait_native: %lld is no stream of this device "
                                "(cudaStreamWaitEvent: %s)",
                                (int)dev, (long long)stream, cudaGetErrorName(e));
    }
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaStreamWaitEvent", e);
}

void cuda_add_dlpack_streams(ferry_backend_ops *o)
{
    o->queue_native = cuda_queue_native;
    o->event_wait_native = cuda_event_wait_native;
}

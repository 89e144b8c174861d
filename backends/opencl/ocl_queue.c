/* Queues and events of the OpenCL backend (ABI 1.2): further in-order command queues per
 * device, the thread's current one per device, events as markers, cross-queue waits as
 * barriers, pinned host memory as mapped CL_MEM_ALLOC_HOST_PTR buffers, and the
 * non-blocking host copies. The core does the tracking (core/stream.c); this file only
 * offers the primitives. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h"

/* ---- the thread's current queue ---------------------------------------------------
 * One slot per device. A generation number tells slots written under an earlier load of
 * the plugin (whose queues are gone) from current ones; the core sets the queue before
 * every entry it runs anyway, so a stale slot is never used for work. */

static _Thread_local ocl_queue *ocl_tls_queue[OCL_QUEUE_DEVICES];
static _Thread_local unsigned ocl_tls_gen;
static unsigned ocl_gen;

void ocl_queue_generation(void)
{
    /* 0 is what a thread that never set a queue holds, so it is never current. */
    unsigned g = __atomic_add_fetch(&ocl_gen, 1, __ATOMIC_RELAXED);
    if (g == 0)
        __atomic_add_fetch(&ocl_gen, 1, __ATOMIC_RELAXED);
}

ocl_queue *ocl_current(ocl_device *d)
{
    int32_t i = d->index;
    if (i < OCL_QUEUE_DEVICES && ocl_tls_queue[i] &&
        ocl_tls_gen == __atomic_load_n(&ocl_gen, __ATOMIC_RELAXED))
        return ocl_tls_queue[i];
    return &d->defq;
}

ferry_status ocl_set_queue(void *ctx, int32_t device, void *queue)
{
    unsigned g = __atomic_load_n(&ocl_gen, __ATOMIC_RELAXED);
    if (ocl_tls_gen != g) {
        memset(ocl_tls_queue, 0, sizeof ocl_tls_queue);
        ocl_tls_gen = g;
    }
    if (device >= OCL_QUEUE_DEVICES) {
        if (!queue)
            return FERRY_OK;
        return ocl_host->error(FERRY_ERR_UNSUPPORTED,
                               "opencl:%d: set_queue: queues are offered on the first %d "
                               "devices only",
                               (int)device, OCL_QUEUE_DEVICES);
    }
    ocl_tls_queue[device] = queue;
    return FERRY_OK;
}

/* ---- queues ----------------------------------------------------------------------- */

ferry_status ocl_queue_create(void *ctx, int32_t device, void **queue)
{
    *queue = NULL;
    if (device >= OCL_QUEUE_DEVICES)
        return ocl_host->error(FERRY_ERR_UNSUPPORTED,
                               "opencl:%d: queue_create: queues are offered on the first %d "
                               "devices only",
                               (int)device, OCL_QUEUE_DEVICES);
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    ocl_queue *q = calloc(1, sizeof *q);
    if (!q)
        return ocl_host->error(FERRY_ERR_OUT_OF_MEMORY, "opencl:%d: out of host memory for a queue",
                               (int)device);
    cl_int err;
    /* In order, as the default queue: the core orders only between queues. */
    q->cq = clCreateCommandQueue(d->context, d->id, CL_QUEUE_PROFILING_ENABLE, &err);
    if (!q->cq) {
        free(q);
        return ocl_fail(device, "clCreateCommandQueue", err);
    }
    pthread_mutex_lock(&d->lock);
    q->next = d->queues;
    __atomic_store_n(&d->queues, q, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&d->lock);
    *queue = q;
    return FERRY_OK;
}

static void ocl_queue_free(ocl_queue *q)
{
    clFinish(q->cq);
    if (q->scratch)
        clReleaseMemObject(q->scratch);
    clReleaseCommandQueue(q->cq);
    free(q);
}

void ocl_queue_destroy(void *ctx, int32_t device, void *queue)
{
    ocl_queue *q = queue;
    if (!q)
        return;
    ocl_device *d = &ocl_devices[device];
    pthread_mutex_lock(&d->lock);
    for (ocl_queue **at = &d->queues; *at; at = &(*at)->next)
        if (*at == q) {
            __atomic_store_n(at, q->next, __ATOMIC_RELEASE);
            break;
        }
    pthread_mutex_unlock(&d->lock);
    if (device < OCL_QUEUE_DEVICES && ocl_tls_queue[device] == q)
        ocl_tls_queue[device] = NULL;
    ocl_queue_free(q);
}

ferry_status ocl_markers_of_others(ocl_device *d, ocl_queue *self, cl_event **events,
                                   cl_uint *n)
{
    *events = NULL;
    *n = 0;
    /* The usual case, one queue: its own order is all there is. */
    if (self == &d->defq && !__atomic_load_n(&d->queues, __ATOMIC_ACQUIRE))
        return FERRY_OK;
    pthread_mutex_lock(&d->lock);
    size_t count = 1;
    for (ocl_queue *q = d->queues; q; q = q->next)
        count++;
    cl_event *ev = calloc(count, sizeof *ev);
    if (!ev) {
        pthread_mutex_unlock(&d->lock);
        return ocl_host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "opencl:%d: out of host memory ordering after %zu queues",
                               (int)d->index, count);
    }
    cl_uint k = 0;
    cl_int err = CL_SUCCESS;
    /* The call that failed, for the message: a marker made but not submitted fails in
     * clFlush, and naming the marker for it sent a reader to the wrong call. */
    const char *failed = "clEnqueueMarkerWithWaitList";
    for (ocl_queue *q = &d->defq; q && err == CL_SUCCESS;
         q = q == &d->defq ? d->queues : q->next) {
        if (q == self)
            continue;
        err = clEnqueueMarkerWithWaitList(q->cq, 0, NULL, &ev[k]);
        /* Another queue's command waits for this one only once it is submitted. */
        if (err == CL_SUCCESS) {
            k++;
            if ((err = clFlush(q->cq)) != CL_SUCCESS)
                failed = "clFlush";
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (err != CL_SUCCESS) {
        ocl_markers_release(ev, k);
        return ocl_fail(d->index, failed, err);
    }
    if (k == 0) {
        free(ev);
        ev = NULL;
    }
    *events = ev;
    *n = k;
    return FERRY_OK;
}

void ocl_markers_release(cl_event *events, cl_uint n)
{
    for (cl_uint i = 0; i < n; i++)
        clReleaseEvent(events[i]);
    free(events);
}

ferry_status ocl_finish_all(ocl_device *d)
{
    cl_int err = clFinish(d->defq.cq);
    if (err != CL_SUCCESS)
        return ocl_fail(d->index, "clFinish", err);
    if (!__atomic_load_n(&d->queues, __ATOMIC_ACQUIRE))
        return FERRY_OK;
    /* The others are finished outside the lock, each kept alive by a reference, so work
     * queued meanwhile on other threads is not held up. */
    pthread_mutex_lock(&d->lock);
    size_t count = 0;
    for (ocl_queue *q = d->queues; q; q = q->next)
        count++;
    cl_command_queue *cqs = calloc(count ? count : 1, sizeof *cqs);
    if (!cqs) {
        pthread_mutex_unlock(&d->lock);
        return ocl_host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "opencl:%d: out of host memory synchronizing %zu queues",
                               (int)d->index, count);
    }
    size_t k = 0;
    for (ocl_queue *q = d->queues; q; q = q->next)
        if (clRetainCommandQueue(q->cq) == CL_SUCCESS)
            cqs[k++] = q->cq;
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < k; i++) {
        cl_int e = clFinish(cqs[i]);
        if (err == CL_SUCCESS)
            err = e;
        clReleaseCommandQueue(cqs[i]);
    }
    free(cqs);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(d->index, "clFinish", err);
}

void ocl_queue_release_all(ocl_device *d)
{
    ocl_queue *q = d->queues;
    d->queues = NULL;
    while (q) {
        ocl_queue *next = q->next;
        ocl_queue_free(q);
        q = next;
    }
}

/* ---- events -------------------------------------------------------------------------
 * An event is the cl_event of a marker: done once everything queued before it on its
 * queue is. */

static ocl_queue *ocl_queue_of(ocl_device *d, void *queue)
{
    return queue ? (ocl_queue *)queue : &d->defq;
}

ferry_status ocl_event_record(void *ctx, int32_t device, void *queue, void **event)
{
    *event = NULL;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    cl_event e = NULL;
    cl_int err = clEnqueueMarkerWithWaitList(ocl_queue_of(d, queue)->cq, 0, NULL, &e);
    if (err != CL_SUCCESS)
        return ocl_fail(device, "clEnqueueMarkerWithWaitList", err);
    *event = e;
    return FERRY_OK;
}

ferry_status ocl_event_wait(void *ctx, int32_t device, void *queue, void *event)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    cl_event e = event;
    cl_context ev_context = NULL;
    cl_command_queue from = NULL;
    cl_int err = clGetEventInfo(e, CL_EVENT_CONTEXT, sizeof ev_context, &ev_context, NULL);
    if (err == CL_SUCCESS)
        err = clGetEventInfo(e, CL_EVENT_COMMAND_QUEUE, sizeof from, &from, NULL);
    if (err != CL_SUCCESS)
        return ocl_fail(device, "clGetEventInfo", err);
    if (ev_context != d->context) {
        /* Each device has a context of its own, and a wait list may only name events of
         * the queue's context: the host waits instead. */
        err = clWaitForEvents(1, &e);
        return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clWaitForEvents", err);
    }
    /* A command waits for one of another queue only once that queue has submitted it. */
    if (from && (err = clFlush(from)) != CL_SUCCESS)
        return ocl_fail(device, "clFlush", err);
    err = clEnqueueBarrierWithWaitList(ocl_queue_of(d, queue)->cq, 1, &e, NULL);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueBarrierWithWaitList", err);
}

ferry_status ocl_event_synchronize(void *ctx, int32_t device, void *event)
{
    cl_event e = event;
    cl_int err = clWaitForEvents(1, &e);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clWaitForEvents", err);
}

ferry_status ocl_event_query(void *ctx, int32_t device, void *event, bool *done)
{
    *done = false;
    cl_event e = event;
    cl_int status = CL_QUEUED;
    cl_int err = clGetEventInfo(e, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status,
                                NULL);
    if (err != CL_SUCCESS)
        return ocl_fail(device, "clGetEventInfo", err);
    if (status < 0)
        return ocl_fail(device, "the event's command", status);
    if (status == CL_COMPLETE) {
        *done = true;
        return FERRY_OK;
    }
    /* A poller that never waits must still see it done some day: submit its queue. */
    cl_command_queue from = NULL;
    if (clGetEventInfo(e, CL_EVENT_COMMAND_QUEUE, sizeof from, &from, NULL) == CL_SUCCESS &&
        from)
        clFlush(from);
    return FERRY_OK;
}

void ocl_event_destroy(void *ctx, int32_t device, void *event)
{
    (void)device;
    if (event)
        clReleaseEvent((cl_event)event);
}

ferry_status ocl_event_elapsed(void *ctx, int32_t device, void *start, void *end, float *ms)
{
    cl_ulong t0 = 0, t1 = 0;
    cl_int err = clGetEventProfilingInfo((cl_event)start, CL_PROFILING_COMMAND_END, sizeof t0,
                                         &t0, NULL);
    if (err == CL_SUCCESS)
        err = clGetEventProfilingInfo((cl_event)end, CL_PROFILING_COMMAND_END, sizeof t1, &t1,
                                      NULL);
    if (err == CL_PROFILING_INFO_NOT_AVAILABLE)
        return FERRY_ERR_UNSUPPORTED; /* the core times it on the host */
    if (err != CL_SUCCESS)
        return ocl_fail(device, "clGetEventProfilingInfo", err);
    *ms = (float)(((double)t1 - (double)t0) / 1e6);
    return FERRY_OK;
}

/* ---- pinned host memory ------------------------------------------------------------
 * A CL_MEM_ALLOC_HOST_PTR buffer of opencl:0, mapped for its whole life: the driver's
 * page-locked memory where it has such. The pointer handed out is 64-byte aligned within
 * the mapping; a list finds the buffer again at host_free. */

typedef struct ocl_pinned {
    struct ocl_pinned *next;
    void *ptr;    /* what host_alloc returned */
    void *mapped; /* the mapping's start */
    cl_mem mem;
} ocl_pinned;

static pthread_mutex_t ocl_pinned_lock = PTHREAD_MUTEX_INITIALIZER;
static ocl_pinned *ocl_pinned_list;

ferry_status ocl_host_alloc(void *ctx, size_t nbytes, void **ptr)
{
    *ptr = NULL;
    if (ocl_ndevices <= 0)
        return ocl_host->error(FERRY_ERR_UNSUPPORTED,
                               "opencl: no device to allocate pinned host memory with");
    if (nbytes > SIZE_MAX - 64)
        return ocl_host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "opencl:0: cannot allocate %zu bytes of pinned host memory",
                               nbytes);
    ocl_device *d;
    ferry_status st = ocl_device_ready(0, &d);
    if (st != FERRY_OK)
        return st;
    ocl_pinned *p = calloc(1, sizeof *p);
    if (!p)
        return ocl_host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "opencl:0: out of host memory for a pinned buffer's record");
    size_t size = nbytes + 64;
    cl_int err;
    p->mem = clCreateBuffer(d->context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, size, NULL,
                            &err);
    if (!p->mem) {
        free(p);
        return ocl_fail(0, "clCreateBuffer(CL_MEM_ALLOC_HOST_PTR)", err);
    }
    p->mapped = clEnqueueMapBuffer(d->defq.cq, p->mem, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0,
                                   size, 0, NULL, NULL, &err);
    if (!p->mapped) {
        clReleaseMemObject(p->mem);
        free(p);
        return ocl_fail(0, "clEnqueueMapBuffer", err);
    }
    p->ptr = (void *)(((uintptr_t)p->mapped + 63) & ~(uintptr_t)63);
    pthread_mutex_lock(&ocl_pinned_lock);
    p->next = ocl_pinned_list;
    ocl_pinned_list = p;
    pthread_mutex_unlock(&ocl_pinned_lock);
    *ptr = p->ptr;
    return FERRY_OK;
}

void ocl_host_free(void *ctx, void *ptr)
{
    if (!ptr)
        return;
    pthread_mutex_lock(&ocl_pinned_lock);
    ocl_pinned *p = NULL;
    for (ocl_pinned **at = &ocl_pinned_list; *at; at = &(*at)->next)
        if ((*at)->ptr == ptr) {
            p = *at;
            *at = p->next;
            break;
        }
    pthread_mutex_unlock(&ocl_pinned_lock);
    if (!p) {
        ocl_host->log(FERRY_LOG_ERROR, "opencl", "host_free of %p, which host_alloc did not make",
                      ptr);
        return;
    }
    /* The core frees pinned memory only once no queued copy uses it. */
    if (ocl_ndevices > 0 && ocl_devices[0].defq.cq) {
        clEnqueueUnmapMemObject(ocl_devices[0].defq.cq, p->mem, p->mapped, 0, NULL, NULL);
        clFlush(ocl_devices[0].defq.cq);
    }
    clReleaseMemObject(p->mem);
    free(p);
}

/* ---- asynchronous copies ------------------------------------------------------------
 * Non-blocking reads and writes on the current queue; the core keeps the host memory
 * alive and unchanged until an event recorded after them is done. */

ferry_status ocl_copy_from_host_async(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                      const void *src, size_t nbytes)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    cl_int err = clEnqueueWriteBuffer(ocl_cq(d), (cl_mem)dst, CL_FALSE, dst_offset, nbytes, src,
                                      0, NULL, NULL);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueWriteBuffer", err);
}

ferry_status ocl_copy_to_host_async(void *ctx, int32_t device, void *dst, const void *src,
                                    size_t src_offset, size_t nbytes)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    cl_int err = clEnqueueReadBuffer(ocl_cq(d), (cl_mem)src, CL_FALSE, src_offset, nbytes, dst,
                                     0, NULL, NULL);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueReadBuffer", err);
}

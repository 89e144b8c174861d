/* Moving bytes and elements between devices: the one to() path (direct, peer, or staged
 * through host memory in bounded chunks), element copies with casts, fill, and the CPU
 * fallback that runs a kernel on host mirrors when a backend lacks it. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool same_device(const ferry_tensor *a, const ferry_tensor *b)
{
    return a->storage->backend == b->storage->backend && a->storage->device == b->storage->device;
}

/* Pinned staging buffers kept for the next staged copy: page-locking memory costs far
 * more than the copy of one chunk (cudaHostAlloc of 64 MiB takes milliseconds). Each
 * holds a reference on its backend, so the plugin stays loaded; ferry_shutdown() and
 * ferry_empty_cache() give them back. Copies of ABI 1.0 complete before they return, so
 * a returned buffer is idle. Freed pinned tensors' blocks come here too (core/stream.c). */
#define STAGING_CACHED 8
static struct {
    ferry_backend *owner;
    void *p;
    size_t n;
} staging_cache[STAGING_CACHED];
static pthread_mutex_t staging_lock = PTHREAD_MUTEX_INITIALIZER;

void *ferry__staging_take(ferry_backend *be, size_t n, size_t most)
{
    void *p = NULL;
    pthread_mutex_lock(&staging_lock);
    for (int i = 0; i < STAGING_CACHED && !p; i++)
        if (staging_cache[i].owner == be && staging_cache[i].n >= n &&
            staging_cache[i].n <= most) {
            p = staging_cache[i].p;
            staging_cache[i].owner = NULL;
            staging_cache[i].p = NULL;
        }
    pthread_mutex_unlock(&staging_lock);
    if (p)
        ferry__backend_release(be); /* the cache's reference; the caller holds its own */
    return p;
}

void ferry__staging_drain(ferry_backend *only)
{
    for (int i = 0; i < STAGING_CACHED; i++) {
        pthread_mutex_lock(&staging_lock);
        ferry_backend *be = staging_cache[i].owner;
        void *p = staging_cache[i].p;
        if (!be || (only && be != only)) {
            pthread_mutex_unlock(&staging_lock);
            continue;
        }
        staging_cache[i].owner = NULL;
        staging_cache[i].p = NULL;
        pthread_mutex_unlock(&staging_lock);
        ferry__be_host_free(be, p);
        ferry__backend_release(be);
    }
}

/* Host buffer for staging: pinned memory from one of the two backends when offered. */
void *ferry__staging_alloc(ferry_backend *a, ferry_backend *b, size_t n, ferry_backend **owner)
{
    void *p = NULL;
    *owner = NULL;
    if (a && (p = ferry__staging_take(a, n, SIZE_MAX)) != NULL) {
        *owner = a;
        return p;
    }
    if (b && (p = ferry__staging_take(b, n, SIZE_MAX)) != NULL) {
        *owner = b;
        return p;
    }
    if (a && ferry__be_host_alloc(a, n, &p) == FERRY_OK && p) {
        *owner = a;
        return p;
    }
    if (b && ferry__be_host_alloc(b, n, &p) == FERRY_OK && p) {
        *owner = b;
        return p;
    }
    return malloc(n);
}

void ferry__staging_free(ferry_backend *owner, void *p, size_t n)
{
    if (!owner) {
        free(p);
        return;
    }
    pthread_mutex_lock(&staging_lock);
    for (int i = 0; i < STAGING_CACHED; i++)
        if (!staging_cache[i].owner) {
            ferry__backend_retain(owner);
            staging_cache[i].owner = owner;
            staging_cache[i].p = p;
            staging_cache[i].n = n;
            p = NULL;
            break;
        }
    pthread_mutex_unlock(&staging_lock);
    if (p)
        ferry__be_host_free(owner, p);
}

/* Staging in stages: while the uploader thread writes chunk i to the destination, the
 * caller's thread reads chunk i + 1 from the source into another buffer, so the two legs
 * overlap (DESIGN.md: never one whole-tensor bounce). With both a `process` step and a
 * destination (a staged all_reduce), process runs on a third thread over three buffers:
 * chunk i + 1 is read while chunk i is processed and chunk i - 1 written back. */
#define STAGE_BUFS 3
typedef struct pipeline {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    ferry_storage *d, *s;
    size_t doff, soff, n, chunk;
    ferry_stage_fn process; /* runs on each chunk between the legs */
    void *ctx;
    void *buf[STAGE_BUFS];
    int nbuf;
    bool split;       /* process on its own thread, not the uploader's */
    size_t filled;    /* chunks read into a buffer so far */
    size_t processed; /* chunks through process so far (split only) */
    size_t uploaded;  /* chunks done with their buffer so far */
    bool failed;      /* any side failed: all stop */
    ferry_status up_status;
    char up_message[512]; /* a worker's error, re-raised on the caller's thread */
} pipeline;

/* Waits until *counter passes chunk i; false when another side failed. */
static bool stage_wait(pipeline *p, const size_t *counter, size_t i)
{
    pthread_mutex_lock(&p->lock);
    while (*counter <= i && !p->failed)
        pthread_cond_wait(&p->changed, &p->lock);
    bool ok = !p->failed;
    pthread_mutex_unlock(&p->lock);
    return ok;
}

/* Records chunk i done in *counter, or the first worker error. */
static void stage_done(pipeline *p, size_t *counter, size_t i, ferry_status st)
{
    pthread_mutex_lock(&p->lock);
    if (st != FERRY_OK) {
        if (!p->failed) {
            p->up_status = st;
            snprintf(p->up_message, sizeof p->up_message, "%s", ferry_last_error());
        }
        p->failed = true;
    } else {
        *counter = i + 1;
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

static void *processor(void *arg)
{
    pipeline *p = arg;
    size_t nchunks = (p->n + p->chunk - 1) / p->chunk;
    for (size_t i = 0; i < nchunks && stage_wait(p, &p->filled, i); i++) {
        size_t done = i * p->chunk, len = p->n - done < p->chunk ? p->n - done : p->chunk;
        ferry_status st = p->process(p->ctx, p->buf[i % p->nbuf], done, len);
        stage_done(p, &p->processed, i, st);
        if (st != FERRY_OK)
            break;
    }
    return NULL;
}

static void *uploader(void *arg)
{
    pipeline *p = arg;
    size_t nchunks = (p->n + p->chunk - 1) / p->chunk;
    const size_t *ready = p->split ? &p->processed : &p->filled;
    for (size_t i = 0; i < nchunks && stage_wait(p, ready, i); i++) {
        size_t done = i * p->chunk, len = p->n - done < p->chunk ? p->n - done : p->chunk;
        void *buf = p->buf[i % p->nbuf];
        ferry_status st = p->process && !p->split ? p->process(p->ctx, buf, done, len) : FERRY_OK;
        if (st == FERRY_OK && p->d)
            st = ferry__be_copy_from_host(p->d->backend, p->d->device, p->d->buffer,
                                          p->doff + done, buf, len);
        stage_done(p, &p->uploaded, i, st);
        if (st != FERRY_OK)
            break;
    }
    return NULL;
}

static ferry_status copy_pipelined(pipeline *p)
{
    pthread_t thread, proc;
    if (pthread_create(&thread, NULL, uploader, p) != 0)
        return ferry__error(FERRY_ERR_BACKEND, "cannot start the staging thread");
    if (p->split && pthread_create(&proc, NULL, processor, p) != 0) {
        pthread_mutex_lock(&p->lock);
        p->failed = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        pthread_join(thread, NULL);
        return ferry__error(FERRY_ERR_BACKEND, "cannot start the staging thread");
    }
    size_t nchunks = (p->n + p->chunk - 1) / p->chunk;
    ferry_status st = FERRY_OK;
    for (size_t i = 0; i < nchunks && st == FERRY_OK; i++) {
        /* Buffer i % nbuf is free once chunk i - nbuf is done with it. */
        if (i >= (size_t)p->nbuf && !stage_wait(p, &p->uploaded, i - (size_t)p->nbuf))
            break;
        size_t done = i * p->chunk, len = p->n - done < p->chunk ? p->n - done : p->chunk;
        if (p->s)
            st = ferry__be_copy_to_host(p->s->backend, p->s->device, p->buf[i % p->nbuf],
                                        p->s->buffer, p->soff + done, len);
        pthread_mutex_lock(&p->lock);
        if (st != FERRY_OK)
            p->failed = true;
        else
            p->filled = i + 1;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
    }
    if (p->split)
        pthread_join(proc, NULL);
    pthread_join(thread, NULL);
    if (st == FERRY_OK && p->up_status != FERRY_OK)
        st = ferry__error(p->up_status, "%s", p->up_message);
    return st;
}

/* Whether a pipeline of `threads` threads has a core for each. The legs are memcpy-like
 * work on the CPU for host-side backends (sim, PoCL) and the MPI shared-memory transport
 * copies on the CPU too: under mpirun, which binds each rank to one core, a staged 64 MiB
 * all_reduce of sim tensors in 8 MiB chunks ran at 0.52-0.57 of cpu tensors with its
 * three threads taking turns on that core, and at 0.74 with every leg on the caller's
 * thread.
 * FERRY_STAGING_OVERLAP=1|0 forces the choice (tests run both). */
static bool stage_overlap(int threads)
{
    const char *env = getenv("FERRY_STAGING_OVERLAP");
    if (env && (env[0] == '0' || env[0] == '1') && env[1] == '\0')
        return env[0] == '1';
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return true;
    return CPU_COUNT(&set) >= threads;
}

ferry_status ferry__copy_staged_ex(ferry_storage *d, size_t doff, ferry_storage *s, size_t soff,
                                   size_t n, size_t max_chunk, ferry_stage_fn process, void *ctx)
{
    if (n == 0)
        return FERRY_OK;
    size_t chunk = n < max_chunk ? n : max_chunk;
    size_t nchunks = (n + chunk - 1) / chunk;
    bool split = process && d && nchunks > 2;
    int nbuf = nchunks == 1 || !stage_overlap(split ? 3 : 2) ? 1 : split ? STAGE_BUFS : 2;
    ferry_backend *owner[STAGE_BUFS] = {NULL, NULL, NULL};
    void *buf[STAGE_BUFS] = {NULL, NULL, NULL};
    for (int i = 0; i < nbuf; i++) {
        buf[i] = ferry__staging_alloc(s ? s->backend : NULL, d ? d->backend : NULL, chunk,
                                      &owner[i]);
        if (!buf[i]) {
            for (int k = 0; k < i; k++)
                ferry__staging_free(owner[k], buf[k], chunk);
            return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                                "out of host memory for a %zu-byte staging buffer", chunk);
        }
    }
    ferry_status st = FERRY_OK;
    if (nbuf == 1) {
        /* Every leg of each chunk in turn on this thread, in the chunks the pipeline makes
         * (process sees the same calls either way). */
        for (size_t off = 0; off < n && st == FERRY_OK; off += chunk) {
            size_t len = n - off < chunk ? n - off : chunk;
            if (s)
                st = ferry__be_copy_to_host(s->backend, s->device, buf[0], s->buffer, soff + off,
                                            len);
            if (st == FERRY_OK && process)
                st = process(ctx, buf[0], off, len);
            if (st == FERRY_OK && d)
                st = ferry__be_copy_from_host(d->backend, d->device, d->buffer, doff + off,
                                              buf[0], len);
        }
    } else {
        pipeline p = {.d = d, .s = s, .doff = doff, .soff = soff, .n = n, .chunk = chunk,
                      .process = process, .ctx = ctx, .buf = {buf[0], buf[1], buf[2]},
                      .nbuf = nbuf, .split = split, .up_status = FERRY_OK};
        pthread_mutex_init(&p.lock, NULL);
        pthread_cond_init(&p.changed, NULL);
        st = copy_pipelined(&p);
        pthread_cond_destroy(&p.changed);
        pthread_mutex_destroy(&p.lock);
    }
    for (int i = 0; i < nbuf; i++)
        ferry__staging_free(owner[i], buf[i], chunk);
    return st;
}

/* Device-to-device bytes between two backends (or devices without a peer path), through
 * host buffers of at most FERRY_STAGING_CHUNK each (pinned where a backend offers it). */
static ferry_status copy_staged(ferry_storage *d, size_t doff, ferry_storage *s, size_t soff,
                                size_t n)
{
    return ferry__copy_staged_ex(d, doff, s, soff, n, FERRY_STAGING_CHUNK, NULL, NULL);
}

/* n bytes from (s, soff) to (d, doff), any two devices. */
static ferry_status copy_raw(ferry_storage *d, size_t doff, ferry_storage *s, size_t soff,
                             size_t n)
{
    if (n == 0)
        return FERRY_OK;
    if (d->backend == s->backend && d->device == s->device)
        return ferry__be_copy_on_device(d->backend, d->device, d->buffer, doff, s->buffer, soff,
                                        n);
    if (s->host_accessible) {
        /* The source may still be written by work queued on its own device. */
        ferry_status st = ferry__be_synchronize(s->backend, s->device);
        if (st == FERRY_OK)
            st = ferry__track_host(s, false);
        if (st != FERRY_OK)
            return st;
        return ferry__be_copy_from_host(d->backend, d->device, d->buffer, doff,
                                        (const char *)s->buffer + soff, n);
    }
    if (d->host_accessible) {
        ferry_status st = ferry__be_synchronize(d->backend, d->device);
        if (st == FERRY_OK)
            st = ferry__track_host(d, true);
        if (st != FERRY_OK)
            return st;
        return ferry__be_copy_to_host(s->backend, s->device, (char *)d->buffer + doff, s->buffer,
                                      soff, n);
    }
    if (d->backend == s->backend) {
        ferry_status st = ferry__be_copy_peer(d->backend, d->device, d->buffer, doff, s->device,
                                              s->buffer, soff, n);
        if (st != FERRY_ERR_UNSUPPORTED)
            return st;
        ferry__debug("fallback", "%s has no peer copy: staging through host memory",
                     d->backend->name);
    }
    return copy_staged(d, doff, s, soff, n);
}

ferry_status ferry__copy_bytes(ferry_tensor *dst, const ferry_tensor *src)
{
    size_t n = (size_t)ferry__numel(src->ndim, src->shape) * ferry_dtype_size(src->dtype);
    return copy_raw(dst->storage, dst->byte_offset, src->storage, src->byte_offset, n);
}

ferry_tensor *ferry__stage_to_host(const ferry_tensor *t)
{
    if (t->storage->host_accessible) {
        if (ferry__be_synchronize(t->storage->backend, t->storage->device) != FERRY_OK ||
            ferry__track_host(t->storage, false) != FERRY_OK)
            return NULL;
        return ferry__tensor_alias(t);
    }
    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return NULL;
    int64_t lo, hi;
    ferry__byte_extent(t, &lo, &hi);
    ferry_storage *s = ferry__storage_alloc(cpu, 0, (size_t)(hi - lo));
    if (!s)
        return NULL;
    ferry_status st = copy_raw(s, 0, t->storage, t->byte_offset + (size_t)lo, (size_t)(hi - lo));
    if (st != FERRY_OK) {
        ferry__storage_release(s);
        return NULL;
    }
    return ferry__tensor_make(s, (size_t)-lo, t->dtype, t->ndim, t->shape, t->strides);
}

/* A host view to write dst's elements into; ferry__mirror_end() puts them on dst's device. When
 * dst's extent has gaps (a strided view), the gaps are read first so they survive. */
ferry_tensor *ferry__mirror_begin(ferry_tensor *dst)
{
    if (dst->storage->host_accessible) {
        if (ferry__be_synchronize(dst->storage->backend, dst->storage->device) != FERRY_OK ||
            ferry__track_host(dst->storage, true) != FERRY_OK)
            return NULL;
        return ferry__tensor_alias(dst);
    }
    int64_t lo, hi;
    ferry__byte_extent(dst, &lo, &hi);
    size_t dense;
    if (!ferry__dense_nbytes(dst->dtype, dst->ndim, dst->shape, &dense) ||
        (size_t)(hi - lo) != dense)
        return ferry__stage_to_host(dst);
    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return NULL;
    ferry_storage *s = ferry__storage_alloc(cpu, 0, (size_t)(hi - lo));
    if (!s)
        return NULL;
    return ferry__tensor_make(s, (size_t)-lo, dst->dtype, dst->ndim, dst->shape, dst->strides);
}

ferry_status ferry__mirror_end(ferry_tensor *dst, ferry_tensor *h)
{
    ferry_status st = FERRY_OK;
    if (h->storage != dst->storage) {
        int64_t lo, hi;
        ferry__byte_extent(dst, &lo, &hi);
        st = copy_raw(dst->storage, dst->byte_offset + (size_t)lo, h->storage,
                      h->byte_offset + (size_t)lo, (size_t)(hi - lo));
    }
    ferry_tensor_release(h);
    return st;
}

/* Element copy on one device through its kernels; FERRY_ERR_UNSUPPORTED when it has
 * none for these dtypes. */
static ferry_status copy_kernel(ferry_backend *be, int32_t dev, ferry_tensor *dst,
                                const ferry_tensor *src)
{
    ferry_kernel_tensor kd, ks;
    ferry__kernel_tensor(dst, &kd);
    ferry__kernel_tensor(src, &ks);
    if (dst->dtype != src->dtype)
        return ferry__be_cast(be, dev, &kd, &ks);
    ferry_status st = ferry__be_copy_strided(be, dev, &kd, &ks);
    if (st == FERRY_ERR_UNSUPPORTED)
        st = ferry__be_cast(be, dev, &kd, &ks);
    return st;
}

static ferry_status copy_same_device(ferry_tensor *dst, const ferry_tensor *src)
{
    ferry_backend *be = dst->storage->backend;
    int32_t dev = dst->storage->device;
    if (dst->dtype == src->dtype && ferry__is_contiguous(dst->ndim, dst->shape, dst->strides) &&
        ferry__is_contiguous(src->ndim, src->shape, src->strides))
        return ferry__copy_bytes(dst, src);
    ferry_status st = copy_kernel(be, dev, dst, src);
    if (st != FERRY_ERR_UNSUPPORTED)
        return st;

    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return ferry_last_status();
    bool cast = dst->dtype != src->dtype;
    ferry_dtype types[2] = {src->dtype, dst->dtype};
    if (be != cpu &&
        (st = ferry__fallback_begin(be, dev, cast ? FERRY_OP_CAST : FERRY_OP_COPY_STRIDED,
                                    cast ? "cast" : "strided copy", types, 2)) != FERRY_OK)
        return st;
    ferry_tensor *hs = ferry__stage_to_host(src);
    if (!hs)
        return ferry_last_status();
    ferry_tensor *hd = ferry__mirror_begin(dst);
    if (!hd) {
        ferry_tensor_release(hs);
        return ferry_last_status();
    }
    st = copy_kernel(cpu, 0, hd, hs);
    if (st == FERRY_ERR_UNSUPPORTED)
        st = ferry__error(st, "the cpu backend has no kernel to convert %s to %s",
                          ferry_dtype_name(src->dtype), ferry_dtype_name(dst->dtype));
    ferry_tensor_release(hs);
    if (st == FERRY_OK)
        return ferry__mirror_end(dst, hd);
    ferry_tensor_release(hd);
    return st;
}

ferry_status ferry__copy_into(ferry_tensor *dst, const ferry_tensor *src)
{
    /* Nothing to move; a backend never sees an empty tensor, whose other sizes may
     * multiply past int64. */
    if (ferry__numel(dst->ndim, dst->shape) == 0)
        return FERRY_OK;
    if (same_device(dst, src))
        return copy_same_device(dst, src);
    /* Across devices only contiguous bytes travel: convert and compact on the source
     * device, move, then scatter on the destination device if dst is strided. */
    ferry_tensor *tmp = NULL;
    const ferry_tensor *moving = src;
    if (src->dtype != dst->dtype || !ferry__is_contiguous(src->ndim, src->shape, src->strides)) {
        tmp = ferry__tensor_empty_on(src->storage->backend, src->storage->device, dst->dtype,
                                     src->ndim, src->shape);
        if (!tmp)
            return ferry_last_status();
        ferry_status st = copy_same_device(tmp, src);
        if (st != FERRY_OK) {
            ferry_tensor_release(tmp);
            return st;
        }
        moving = tmp;
    }
    ferry_status st;
    if (ferry__is_contiguous(dst->ndim, dst->shape, dst->strides)) {
        st = ferry__copy_bytes(dst, moving);
    } else {
        ferry_tensor *landed = ferry__tensor_empty_on(dst->storage->backend, dst->storage->device,
                                                      dst->dtype, dst->ndim, dst->shape);
        st = landed ? ferry__copy_bytes(landed, moving) : ferry_last_status();
        if (st == FERRY_OK)
            st = copy_same_device(dst, landed);
        ferry_tensor_release(landed);
    }
    ferry_tensor_release(tmp);
    return st;
}

ferry_status ferry__fill(ferry_tensor *t, double value)
{
    if (ferry__numel(t->ndim, t->shape) == 0)
        return FERRY_OK;
    unsigned char elem[8];
    ferry__scalar_from_double(t->dtype, value, elem);
    ferry_kernel_tensor k;
    ferry__kernel_tensor(t, &k);
    ferry_status st = ferry__be_fill(t->storage->backend, t->storage->device, &k, elem);
    if (st != FERRY_ERR_UNSUPPORTED)
        return st;
    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return ferry_last_status();
    if (t->storage->backend != cpu &&
        (st = ferry__fallback_begin(t->storage->backend, t->storage->device, FERRY_OP_FILL,
                                    "fill", &t->dtype, 1)) != FERRY_OK)
        return st;
    ferry_tensor *h = ferry__mirror_begin(t);
    if (!h)
        return ferry_last_status();
    ferry__kernel_tensor(h, &k);
    st = ferry__be_fill(cpu, 0, &k, elem);
    if (st == FERRY_OK)
        return ferry__mirror_end(t, h);
    ferry_tensor_release(h);
    return st;
}

/* ---- public API ---- */

/* A new contiguous tensor on (be, dev) holding t's elements converted to dtype. As
 * PyTorch, a floating result keeps requires_grad; an integer one cannot have it. */
static ferry_tensor *copy_as(const ferry_tensor *t, ferry_backend *be, int32_t dev,
                             ferry_dtype dtype)
{
    ferry_tensor *out = ferry__tensor_empty_on(be, dev, dtype, t->ndim, t->shape);
    if (!out)
        return NULL;
    if (ferry__copy_into(out, t) != FERRY_OK) {
        ferry_tensor_release(out);
        return NULL;
    }
    out->requires_grad = t->requires_grad && ferry_dtype_is_floating(dtype);
    return out;
}

FERRY_API ferry_tensor *ferry_tensor_to(ferry_tensor *t, const char *device)
{
    if (ferry__check_tensor(t, "ferry_tensor_to") != FERRY_OK)
        return NULL;
    ferry_backend *be;
    int32_t dev;
    if (ferry__device_resolve(device, &be, &dev) != FERRY_OK)
        return NULL;
    if (be == t->storage->backend && dev == t->storage->device)
        return ferry_tensor_retain(t);
    return ferry__ag_copy(copy_as(t, be, dev, t->dtype), t, FERRY_COPY_TO);
}

FERRY_API ferry_tensor *ferry_tensor_cpu(ferry_tensor *t)
{
    return ferry_tensor_to(t, "cpu");
}

static ferry_tensor *to_indexed(ferry_tensor *t, const char *type, int index)
{
    char dev[32];
    snprintf(dev, sizeof dev, "%s:%d", type, index < 0 ? 0 : index);
    return ferry_tensor_to(t, dev);
}

FERRY_API ferry_tensor *ferry_tensor_cuda(ferry_tensor *t, int index)
{
    return to_indexed(t, "cuda", index);
}

FERRY_API ferry_tensor *ferry_tensor_opencl(ferry_tensor *t, int index)
{
    return to_indexed(t, "opencl", index);
}

FERRY_API ferry_tensor *ferry_tensor_to_dtype(ferry_tensor *t, ferry_dtype dtype)
{
    if (ferry__check_tensor(t, "ferry_tensor_to_dtype") != FERRY_OK)
        return NULL;
    if (!ferry__dtype_valid(dtype)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "ferry_tensor_to_dtype: invalid dtype value %d (expected 0 .. %d)",
                     (int)dtype, FERRY_NUM_DTYPES - 1);
        return NULL;
    }
    if (t->dtype == dtype)
        return ferry_tensor_retain(t);
    return ferry__ag_copy(copy_as(t, t->storage->backend, t->storage->device, dtype), t,
                          FERRY_COPY_TO);
}

FERRY_API ferry_tensor *ferry_tensor_clone(ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_clone") != FERRY_OK)
        return NULL;
    return ferry__ag_copy(copy_as(t, t->storage->backend, t->storage->device, t->dtype), t,
                          FERRY_COPY_CLONE);
}

FERRY_API ferry_tensor *ferry_tensor_contiguous(ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_contiguous") != FERRY_OK)
        return NULL;
    if (ferry__is_contiguous(t->ndim, t->shape, t->strides))
        return ferry_tensor_retain(t);
    return ferry_tensor_clone(t);
}

FERRY_API ferry_status ferry_tensor_copy_to_host(const ferry_tensor *t, void *dst, size_t nbytes)
{
    ferry_status st = ferry__check_tensor(t, "ferry_tensor_copy_to_host");
    if (st != FERRY_OK)
        return st;
    size_t need;
    if (!ferry__dense_nbytes(t->dtype, t->ndim, t->shape, &need))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_tensor_copy_to_host: the tensor's %lld elements need more "
                            "bytes than fit in memory",
                            (long long)ferry__numel(t->ndim, t->shape));
    if (nbytes != need)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_tensor_copy_to_host: nbytes is %zu, but the tensor holds %zu "
                            "bytes",
                            nbytes, need);
    if (need == 0)
        return FERRY_OK;
    if (!dst)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_copy_to_host: dst is NULL");
    ferry_tensor *c = ferry_tensor_contiguous((ferry_tensor *)t);
    if (!c)
        return ferry_last_status();
    ferry_storage *s = c->storage;
    if (s->host_accessible) {
        st = ferry__be_synchronize(s->backend, s->device);
        if (st == FERRY_OK)
            st = ferry__track_host(s, false);
        if (st == FERRY_OK)
            memcpy(dst, (const char *)s->buffer + c->byte_offset, need);
    } else {
        st = ferry__be_copy_to_host(s->backend, s->device, dst, s->buffer, c->byte_offset, need);
    }
    ferry_tensor_release(c);
    return st;
}

FERRY_API ferry_status ferry_tensor_copy_from(ferry_tensor *dst, ferry_tensor *src)
{
    ferry_status st = ferry__check_tensor(dst, "ferry_tensor_copy_from");
    if (st == FERRY_OK)
        st = ferry__check_tensor(src, "ferry_tensor_copy_from");
    if (st != FERRY_OK)
        return st;
    if (dst->read_only)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_tensor_copy_from: the destination is read-only");
    if ((st = ferry__check_writable_once(dst)) != FERRY_OK)
        return st;
    if ((st = ferry__inplace_check("copy_", dst, ferry__grad_wanted(src, NULL))) != FERRY_OK)
        return st;
    ferry_tensor *from = ferry_expand(src, dst->ndim, dst->shape);
    if (!from)
        return ferry_last_status();
    /* x.copy_(x) changes nothing; a device copy onto itself is an error to OpenCL
     * (CL_MEM_COPY_OVERLAP), so it never reaches one. */
    if (from->dtype == dst->dtype && ferry__same_view(from, dst)) {
        ferry_tensor_release(from);
        return FERRY_OK;
    }
    /* A source sharing the destination's memory is read completely before any write. */
    if (ferry__shares_memory(from, dst) && !ferry__same_view(from, dst)) {
        ferry_tensor *c = ferry_tensor_clone(from);
        ferry_tensor_release(from);
        if (!c)
            return ferry_last_status();
        from = c;
    }
    st = ferry__copy_into(dst, from);
    ferry_tensor_release(from);
    if (st == FERRY_OK)
        ferry__version_bump(dst);
    return st;
}

FERRY_API ferry_status ferry_tensor_fill(ferry_tensor *t, double value)
{
    ferry_status st = ferry__check_tensor(t, "ferry_tensor_fill");
    if (st != FERRY_OK)
        return st;
    if (t->read_only)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_fill: the tensor is read-only");
    if ((st = ferry__check_writable_once(t)) != FERRY_OK)
        return st;
    if ((st = ferry__inplace_check("fill_", t, false)) != FERRY_OK)
        return st;
    ferry__version_bump(t);
    return ferry__fill(t, value);
}

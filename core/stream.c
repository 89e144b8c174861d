/* Queues, events and the ordering of asynchronous work (DESIGN.md "Queues, events and
 * asynchronous work"). Every buffer that queued work touched has a record here: the
 * event of its last write and the events of its last uses, one per queue. Before a
 * backend call the core waits for what the call must come after (on the device with
 * event_wait when both are queues of one backend, else on the host); after it, the call's
 * own event is recorded. Host reads wait for the writer, frees for every user. A backend
 * without queues leaves no record, so it pays one atomic load per call. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define FERRY_STREAM_MAGIC 0x5354524du /* "STRM" */
#define FERRY_EVENT_MAGIC 0x45564e54u  /* "EVNT" */

struct ferry_event {
    uint32_t magic;
    atomic_long refs;
    ferry_backend *be; /* holds a reference */
    int32_t dev;
    void *handle;      /* the backend's event; NULL when the work was done at record */
    uint64_t stream_id; /* 0: the device's default queue */
    double host_ms;    /* host time at record, for backends without event_elapsed */
};

struct ferry_stream {
    uint32_t magic;
    atomic_long refs;
    ferry_backend *be; /* holds a reference */
    int32_t dev;
    void *queue;       /* NULL on a backend without queues: it runs synchronously */
    uint64_t id;
};

static atomic_uint_fast64_t next_stream_id = 1;

/* ---- the thread's current streams ---- */

#define CURRENT_SLOTS 8
static _Thread_local ferry_stream *current[CURRENT_SLOTS];

FERRY_API void ferry_stream_release(ferry_stream *s);

/* A thread that ends with streams current gives their references back. */
static pthread_key_t current_key;
static pthread_once_t current_once = PTHREAD_ONCE_INIT;

static void current_clear(void *unused)
{
    (void)unused;
    for (int i = 0; i < CURRENT_SLOTS; i++) {
        ferry_stream_release(current[i]);
        current[i] = NULL;
    }
}

static void current_key_make(void)
{
    pthread_key_create(&current_key, current_clear);
}

static ferry_stream *current_of(const ferry_backend *be, int32_t dev)
{
    for (int i = 0; i < CURRENT_SLOTS; i++)
        if (current[i] && current[i]->be == be && current[i]->dev == dev)
            return current[i];
    return NULL;
}

/* ---- events ---- */

static double host_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static ferry_event *event_retain(ferry_event *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

static void event_release(ferry_event *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (e->handle)
        ferry__be_event_destroy(e->be, e->dev, e->handle);
    ferry__backend_release(e->be);
    e->magic = 0;
    free(e);
}

/* A new event after the work queued so far on (be, dev)'s queue `queue` (id `sid`). */
static ferry_event *event_new(ferry_backend *be, int32_t dev, void *queue, uint64_t sid)
{
    ferry_event *e = calloc(1, sizeof *e);
    if (!e) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for an event");
        return NULL;
    }
    if (ferry__be_queued(be) && ferry__be_event_record(be, dev, queue, &e->handle) != FERRY_OK) {
        free(e);
        return NULL;
    }
    e->magic = FERRY_EVENT_MAGIC;
    atomic_init(&e->refs, 1);
    ferry__backend_retain(be);
    e->be = be;
    e->dev = dev;
    e->stream_id = sid;
    e->host_ms = host_now_ms();
    return e;
}

static ferry_status event_host_wait(ferry_event *e)
{
    return e->handle ? ferry__be_event_synchronize(e->be, e->dev, e->handle) : FERRY_OK;
}

/* ---- records of buffers touched by queued work ---- */

#define NBUCKETS 1024
#define USES 4

typedef struct track {
    struct track *next;
    const ferry_backend *key_be; /* NULL for host memory, keyed by address alone */
    const void *buf;
    ferry_event *write;
    ferry_event *use[USES];
} track;

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static track *buckets[NBUCKETS];
static atomic_long ntracked;

static size_t bucket_of(const ferry_backend *key_be, const void *buf)
{
    uintptr_t h = (uintptr_t)buf ^ ((uintptr_t)key_be >> 4);
    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 7) % NBUCKETS;
}

/* Called with track_lock held; `create` makes a record when there is none. */
static track *find(const ferry_backend *key_be, const void *buf, bool create)
{
    track **at = &buckets[bucket_of(key_be, buf)];
    for (track *t = *at; t; t = t->next)
        if (t->key_be == key_be && t->buf == buf)
            return t;
    if (!create)
        return NULL;
    track *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->key_be = key_be;
    t->buf = buf;
    t->next = *at;
    *at = t;
    atomic_fetch_add(&ntracked, 1);
    return t;
}

/* Takes the record out of the table; the caller owns it. Lock held. */
static track *take(const ferry_backend *key_be, const void *buf)
{
    for (track **at = &buckets[bucket_of(key_be, buf)]; *at; at = &(*at)->next) {
        if ((*at)->key_be == key_be && (*at)->buf == buf) {
            track *t = *at;
            *at = t->next;
            atomic_fetch_sub(&ntracked, 1);
            return t;
        }
    }
    return NULL;
}

static void track_free(track *t)
{
    event_release(t->write);
    for (int i = 0; i < USES; i++)
        event_release(t->use[i]);
    free(t);
}

static const ferry_backend *key_of(const ferry_backend *be, int32_t dev)
{
    return be->host_accessible[dev] ? NULL : be;
}

/* Events a call must come after: the writer's, and for a write every use too. */
#define MAX_WAITS 64

static int collect(track *t, bool write, ferry_event **out, int n)
{
    if (t->write && n < MAX_WAITS)
        out[n++] = event_retain(t->write);
    for (int i = 0; write && i < USES; i++)
        if (t->use[i] && t->use[i] != t->write && n < MAX_WAITS)
            out[n++] = event_retain(t->use[i]);
    return n;
}

bool ferry__track_active(const ferry_backend *be)
{
    return atomic_load_explicit(&ntracked, memory_order_relaxed) > 0 || ferry__be_queued(be);
}

/* Whether a call on (be, dev) needs no record: no stream has a queue on the backend, so
 * all its work is in its devices' default queues, in order, and the call touches only
 * memory of its own device that the host cannot read directly. copy_to_host is ordered
 * by the queue, a cached block's next user is on the same queue, and free and a
 * deleter wait with ferry__track_unrecorded_wait; the first stream made synchronizes
 * the devices, so its queue never overtakes unrecorded work. Recording a marker per op
 * would cost the single-queue case its launch latency. */
static bool unrecorded(ferry_backend *be, int32_t dev, const ferry_access *acc, int n)
{
    if (atomic_load(&be->streams) != 0 || be->host_accessible[dev])
        return false;
    for (int i = 0; i < n; i++)
        if (acc[i].buf && (acc[i].be != be || acc[i].dev != dev))
            return false;
    return true;
}

void ferry__track_unrecorded_wait(ferry_backend *be, int32_t dev)
{
    if (be->unrecorded && atomic_load_explicit(&be->unrecorded[dev], memory_order_relaxed) &&
        atomic_exchange(&be->unrecorded[dev], false))
        ferry__be_synchronize(be, dev);
}

/* Where the calling thread's work on (be, dev) goes. */
static void *queue_of(const ferry_backend *be, int32_t dev, uint64_t *sid)
{
    ferry_stream *s = current_of(be, dev);
    *sid = s ? s->id : 0;
    return s ? s->queue : NULL;
}

ferry_status ferry__track_begin(ferry_backend *be, int32_t dev, const ferry_access *acc, int n)
{
    bool queued = ferry__be_queued(be);
    uint64_t sid = 0;
    void *queue = queued ? queue_of(be, dev, &sid) : NULL;
    ferry_status st = FERRY_OK;
    if (queued && (st = ferry__be_set_queue(be, dev, queue)) != FERRY_OK)
        return st;
    if (atomic_load_explicit(&ntracked, memory_order_relaxed) == 0)
        return FERRY_OK;
    ferry_event *waits[MAX_WAITS];
    int nw = 0;
    pthread_mutex_lock(&track_lock);
    for (int i = 0; i < n; i++) {
        if (!acc[i].buf)
            continue;
        track *t = find(key_of(acc[i].be, acc[i].dev), acc[i].buf, false);
        if (t)
            nw = collect(t, acc[i].write, waits, nw);
    }
    pthread_mutex_unlock(&track_lock);
    for (int i = 0; i < nw; i++) {
        ferry_event *e = waits[i];
        if (st == FERRY_OK && e->handle) {
            if (queued && e->be == be && e->dev == dev && e->stream_id == sid)
                ; /* the same queue runs in order */
            else if (queued && e->be == be)
                st = ferry__be_event_wait(be, dev, queue, e->handle);
            else
                st = event_host_wait(e);
        }
        event_release(e);
    }
    return st;
}

void ferry__track_end(ferry_backend *be, int32_t dev, const ferry_access *acc, int n)
{
    if (!ferry__be_queued(be))
        return;
    if (unrecorded(be, dev, acc, n)) {
        if (!atomic_load_explicit(&be->unrecorded[dev], memory_order_relaxed))
            atomic_store(&be->unrecorded[dev], true);
        return;
    }
    uint64_t sid;
    void *queue = queue_of(be, dev, &sid);
    ferry_event *e = event_new(be, dev, queue, sid);
    if (!e) {
        /* Without an event the only safe order left is the host's. */
        ferry__be_synchronize(be, dev);
        return;
    }
    ferry_event *drop[USES + 1];
    bool wait_dropped = false;
    int nd = 0;
    for (int i = 0; i < n; i++) {
        if (!acc[i].buf)
            continue;
        pthread_mutex_lock(&track_lock);
        track *t = find(key_of(acc[i].be, acc[i].dev), acc[i].buf, true);
        nd = 0;
        wait_dropped = false;
        if (!t) {
            pthread_mutex_unlock(&track_lock);
            ferry__be_synchronize(be, dev);
            continue;
        }
        if (acc[i].write) {
            /* This call waited for every earlier use, so its event stands for all. */
            drop[nd++] = t->write;
            for (int u = 0; u < USES; u++) {
                drop[nd++] = t->use[u];
                t->use[u] = NULL;
            }
            t->write = event_retain(e);
            t->use[0] = event_retain(e);
        } else {
            int slot = -1;
            for (int u = 0; u < USES && slot < 0; u++)
                if (t->use[u] && t->use[u]->be == be && t->use[u]->dev == dev &&
                    t->use[u]->stream_id == sid)
                    slot = u;
            for (int u = 0; u < USES && slot < 0; u++)
                if (!t->use[u])
                    slot = u;
            if (slot < 0) {
                slot = 0; /* full: the use it replaces is waited for below, on the host */
                wait_dropped = true;
            }
            drop[nd++] = t->use[slot];
            t->use[slot] = event_retain(e);
        }
        pthread_mutex_unlock(&track_lock);
        for (int d = 0; d < nd; d++) {
            if (wait_dropped && drop[d])
                event_host_wait(drop[d]);
            event_release(drop[d]);
        }
    }
    event_release(e);
}

/* The events a reader (or, for a write, a writer) of a storage must wait for, each
 * holding a reference; their count. */
static int storage_waits(const ferry_storage *s, bool write, ferry_event **waits)
{
    int nw = 0;
    pthread_mutex_lock(&track_lock);
    track *t = find(key_of(s->backend, s->device), s->buffer, false);
    if (t)
        nw = collect(t, write, waits, nw);
    pthread_mutex_unlock(&track_lock);
    return nw;
}

/* Waits on the host for the work that writes (and, for a write, uses) a storage. */
ferry_status ferry__track_host(const ferry_storage *s, bool write)
{
    if (atomic_load_explicit(&ntracked, memory_order_relaxed) == 0 || !s->buffer)
        return FERRY_OK;
    ferry_event *waits[MAX_WAITS];
    int nw = storage_waits(s, write, waits);
    ferry_status st = FERRY_OK;
    for (int i = 0; i < nw; i++) {
        if (st == FERRY_OK)
            st = event_host_wait(waits[i]);
        event_release(waits[i]);
    }
    return st;
}

void ferry__track_storage_free(const ferry_storage *s)
{
    /* A deleter hands the memory back to its owner, who may reuse it at once. */
    if (s->wrapped && s->buffer && ferry__be_queued(s->backend))
        ferry__track_unrecorded_wait(s->backend, s->device);
    if (atomic_load_explicit(&ntracked, memory_order_relaxed) == 0 || !s->buffer)
        return;
    pthread_mutex_lock(&track_lock);
    track *t = take(key_of(s->backend, s->device), s->buffer);
    pthread_mutex_unlock(&track_lock);
    if (!t)
        return;
    /* Neither the cache nor a deleter may hand the memory on while queued work uses it. */
    if (t->write)
        event_host_wait(t->write);
    for (int i = 0; i < USES; i++)
        if (t->use[i])
            event_host_wait(t->use[i]);
    track_free(t);
}

/* ---- DLPack streams ---- */

ferry_status ferry__track_current_native(ferry_backend *be, int32_t dev, int64_t *stream)
{
    uint64_t sid;
    return ferry__be_queue_native(be, dev, queue_of(be, dev, &sid), stream);
}

ferry_status ferry__track_native_wait(const ferry_storage *s, int64_t stream)
{
    ferry_backend *be = s->backend;
    if (s->buffer && be->unrecorded && atomic_load(&be->unrecorded[s->device])) {
        /* Work on the default queue left no event (see unrecorded()): one recorded now
         * on that queue covers it, the writer of this tensor included. */
        void *ev = NULL;
        ferry_status st = ferry__be_event_record(be, s->device, NULL, &ev);
        if (st == FERRY_OK) {
            st = ferry__be_event_wait_native(be, s->device, stream, ev);
            ferry__be_event_destroy(be, s->device, ev);
        }
        if (st != FERRY_OK)
            return st;
    }
    if (atomic_load_explicit(&ntracked, memory_order_relaxed) == 0 || !s->buffer)
        return FERRY_OK;
    ferry_event *waits[MAX_WAITS];
    int nw = storage_waits(s, true, waits);
    ferry_status st = FERRY_OK;
    for (int i = 0; i < nw; i++) {
        ferry_event *e = waits[i];
        if (st == FERRY_OK && e->handle)
            st = e->be == s->backend
                     ? ferry__be_event_wait_native(s->backend, s->device, stream, e->handle)
                     : event_host_wait(e);
        event_release(e);
    }
    return st;
}

void ferry__track_import(ferry_storage *s)
{
    ferry_backend *be = s->backend;
    if (!s->buffer || !ferry__be_queued(be))
        return;
    /* Memory ferry already tracks (a ferry tensor coming back) keeps its writer, which is
     * the real one; a consumer that asked for no ordering (-1) may not have waited for
     * it. Foreign memory is written, as far as ferry can know, by what its producer
     * ordered before the current queue. */
    pthread_mutex_lock(&track_lock);
    track *t = atomic_load_explicit(&ntracked, memory_order_relaxed) > 0
                   ? find(key_of(be, s->device), s->buffer, false)
                   : NULL;
    bool known = t && t->write;
    pthread_mutex_unlock(&track_lock);
    ferry_access acc = {be, s->device, s->buffer, !known};
    ferry__track_end(be, s->device, &acc, 1);
}

/* ---- streams ---- */

static ferry_status check_stream(const ferry_stream *s, const char *fn)
{
    if (!s)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: stream is NULL", fn);
    if (s->magic != FERRY_STREAM_MAGIC)
        return ferry__error(FERRY_ERR_INVALID_HANDLE, "%s: not a live ferry_stream", fn);
    return FERRY_OK;
}

static ferry_status check_event(const ferry_event *e, const char *fn)
{
    if (!e)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: event is NULL", fn);
    if (e->magic != FERRY_EVENT_MAGIC)
        return ferry__error(FERRY_ERR_INVALID_HANDLE, "%s: not a live ferry_event", fn);
    return FERRY_OK;
}

FERRY_API ferry_stream *ferry_stream_create(const char *device)
{
    ferry_backend *be;
    int32_t dev;
    if (ferry__device_resolve(device, &be, &dev) != FERRY_OK)
        return NULL;
    ferry_stream *s = calloc(1, sizeof *s);
    if (!s) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_stream_create: out of host memory");
        return NULL;
    }
    if (ferry__be_queued(be) && ferry__be_queue_create(be, dev, &s->queue) != FERRY_OK) {
        free(s);
        return NULL;
    }
    /* The first stream: what the default queues hold unrecorded must be done before
     * work on it may need to wait for it (see unrecorded()). Incremented first, so a
     * call that saw no stream queued its work before this synchronize. */
    if (s->queue && atomic_fetch_add(&be->streams, 1) == 0) {
        for (int32_t d = 0; d < be->device_count; d++) {
            atomic_store(&be->unrecorded[d], false);
            ferry__be_synchronize(be, d);
        }
    }
    s->magic = FERRY_STREAM_MAGIC;
    atomic_init(&s->refs, 1);
    ferry__backend_retain(be);
    s->be = be;
    s->dev = dev;
    s->id = atomic_fetch_add(&next_stream_id, 1);
    return s;
}

static ferry_stream *stream_retain(ferry_stream *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

FERRY_API void ferry_stream_release(ferry_stream *s)
{
    if (!s || s->magic != FERRY_STREAM_MAGIC ||
        atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Records may still name its events; those stay valid, as the backend's queue
     * finishes its work before it goes. */
    if (s->queue) {
        ferry__be_queue_destroy(s->be, s->dev, s->queue);
        atomic_fetch_sub(&s->be->streams, 1);
    }
    ferry__backend_release(s->be);
    s->magic = 0;
    free(s);
}

FERRY_API ferry_status ferry_stream_set_current(ferry_stream *s)
{
    if (!s) {
        for (int i = 0; i < CURRENT_SLOTS; i++) {
            ferry_stream_release(current[i]);
            current[i] = NULL;
        }
        return FERRY_OK;
    }
    ferry_status st = check_stream(s, "ferry_stream_set_current");
    if (st != FERRY_OK)
        return st;
    int slot = -1;
    for (int i = 0; i < CURRENT_SLOTS && slot < 0; i++)
        if (current[i] && current[i]->be == s->be && current[i]->dev == s->dev)
            slot = i;
    for (int i = 0; i < CURRENT_SLOTS && slot < 0; i++)
        if (!current[i])
            slot = i;
    if (slot < 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_stream_set_current: this thread already has current streams "
                            "on %d devices; set NULL first",
                            CURRENT_SLOTS);
    pthread_once(&current_once, current_key_make);
    pthread_setspecific(current_key, (void *)1); /* non-NULL, so the destructor runs */
    ferry_stream *old = current[slot];
    current[slot] = stream_retain(s);
    ferry_stream_release(old);
    return FERRY_OK;
}

FERRY_API ferry_stream *ferry_stream_get_current(const char *device)
{
    ferry_backend *be;
    int32_t dev;
    if (ferry__device_resolve(device, &be, &dev) != FERRY_OK)
        return NULL;
    ferry_stream *s = current_of(be, dev);
    return s ? stream_retain(s) : NULL;
}

/* The queue work of this thread on the event's device goes to when `s` is NULL. */
FERRY_API ferry_status ferry_stream_wait_event(ferry_stream *s, ferry_event *e)
{
    ferry_status st = check_event(e, "ferry_stream_wait_event");
    if (st == FERRY_OK && s)
        st = check_stream(s, "ferry_stream_wait_event");
    if (st != FERRY_OK)
        return st;
    if (!e->handle)
        return FERRY_OK;
    ferry_backend *be = s ? s->be : e->be;
    int32_t dev = s ? s->dev : e->dev;
    uint64_t sid = 0;
    void *queue = s ? s->queue : queue_of(be, dev, &sid);
    if (s)
        sid = s->id;
    if (be == e->be && ferry__be_queued(be)) {
        if (e->dev == dev && e->stream_id == sid)
            return FERRY_OK;
        return ferry__be_event_wait(be, dev, queue, e->handle);
    }
    return event_host_wait(e);
}

FERRY_API ferry_status ferry_stream_synchronize(ferry_stream *s)
{
    ferry_status st = check_stream(s, "ferry_stream_synchronize");
    if (st != FERRY_OK || !s->queue)
        return st;
    ferry_event *e = event_new(s->be, s->dev, s->queue, s->id);
    if (!e)
        return ferry_last_status();
    st = event_host_wait(e);
    event_release(e);
    return st;
}

/* ---- events ---- */

FERRY_API ferry_event *ferry_event_record(const char *device)
{
    ferry_backend *be;
    int32_t dev;
    if (ferry__device_resolve(device, &be, &dev) != FERRY_OK)
        return NULL;
    uint64_t sid = 0;
    void *queue = ferry__be_queued(be) ? queue_of(be, dev, &sid) : NULL;
    return event_new(be, dev, queue, sid);
}

FERRY_API ferry_status ferry_event_synchronize(ferry_event *e)
{
    ferry_status st = check_event(e, "ferry_event_synchronize");
    return st == FERRY_OK ? event_host_wait(e) : st;
}

FERRY_API int ferry_event_query(ferry_event *e)
{
    if (check_event(e, "ferry_event_query") != FERRY_OK)
        return -1;
    if (!e->handle)
        return 1;
    bool done = false;
    if (ferry__be_event_query(e->be, e->dev, e->handle, &done) != FERRY_OK)
        return -1;
    return done ? 1 : 0;
}

FERRY_API ferry_status ferry_event_elapsed_ms(ferry_event *start, ferry_event *end, float *ms)
{
    ferry_status st = check_event(start, "ferry_event_elapsed_ms");
    if (st == FERRY_OK)
        st = check_event(end, "ferry_event_elapsed_ms");
    if (st != FERRY_OK)
        return st;
    if (!ms)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_event_elapsed_ms: ms is NULL");
    if (start->be != end->be || start->dev != end->dev) {
        char a[32], b[32];
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_event_elapsed_ms: the events were recorded on %s and %s; "
                            "both must be of one device",
                            ferry__device_str(start->be, start->dev, a),
                            ferry__device_str(end->be, end->dev, b));
    }
    /* As CUDA's cudaEventElapsedTime, both must be done: it never waits. */
    if (ferry_event_query(start) != 1 || ferry_event_query(end) != 1)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_event_elapsed_ms: an event has not completed yet; call "
                            "ferry_event_synchronize() first");
    if (start->handle && end->handle) {
        st = ferry__be_event_elapsed(start->be, start->dev, start->handle, end->handle, ms);
        if (st != FERRY_ERR_UNSUPPORTED)
            return st;
    }
    *ms = (float)(end->host_ms - start->host_ms);
    return FERRY_OK;
}

FERRY_API void ferry_event_release(ferry_event *e)
{
    if (e && e->magic == FERRY_EVENT_MAGIC)
        event_release(e);
}

/* ---- pinned host memory ---- */

/* A pinned tensor's block goes back to the staging cache (core/copy.c), not to the
 * backend: page-locking costs far more than the copies it serves (a new 16 MiB block
 * made a non-blocking copy to the host run at 0.09 of memcpy on PoCL), so a loop of
 * to(non_blocking=True) reuses its blocks, as PyTorch's caching host allocator does. */
typedef struct pinned_block {
    ferry_backend *be; /* holds a reference */
    size_t n;          /* the size asked of the staging cache */
} pinned_block;

static void pinned_deleter(void *data, void *ctx)
{
    pinned_block *b = ctx;
    ferry__staging_free(b->be, data, b->n);
    ferry__backend_release(b->be);
    free(b);
}

FERRY_API bool ferry_tensor_is_pinned(const ferry_tensor *t)
{
    return t && t->magic == FERRY_TENSOR_MAGIC && t->storage->deleter == pinned_deleter;
}

/* The backend whose pinned memory serves `device` (NULL: the first usable one, in
 * listing order, that offers it). */
static ferry_backend *pinned_provider(const char *fn, const char *device)
{
    if (device) {
        ferry_backend *be;
        int32_t dev;
        if (ferry__device_resolve(device, &be, &dev) != FERRY_OK)
            return NULL;
        if (!FERRY_OPS_HAS(be->ops, host_free) || !be->ops->host_alloc || !be->ops->host_free) {
            ferry__error(FERRY_ERR_UNSUPPORTED, "%s: %s offers no pinned host memory", fn,
                         device);
            return NULL;
        }
        return be;
    }
    ferry_error_state saved;
    ferry__error_save(&saved);
    for (size_t i = 0; ferry_backend_name(i); i++) {
        const char *name = ferry_backend_name(i);
        if (strcmp(name, "cpu") == 0 || !ferry_is_available(name))
            continue;
        ferry_backend *be = ferry__backend_get(name);
        if (be && FERRY_OPS_HAS(be->ops, host_free) && be->ops->host_alloc && be->ops->host_free) {
            ferry__error_restore(&saved);
            return be;
        }
    }
    ferry__error_restore(&saved);
    ferry__error(FERRY_ERR_UNSUPPORTED,
                 "%s: no usable backend offers pinned host memory (pinning needs an "
                 "accelerator)",
                 fn);
    return NULL;
}

static ferry_tensor *empty_pinned(const char *fn, ferry_dtype dtype, int ndim,
                                  const int64_t *shape, const char *device)
{
    int64_t numel;
    if (ferry__check_shape(fn, dtype, ndim, shape, &numel) != FERRY_OK)
        return NULL;
    ferry_backend *be = pinned_provider(fn, device);
    ferry_backend *cpu = be ? ferry__cpu_backend() : NULL;
    if (!cpu)
        return NULL;
    size_t nbytes = (size_t)numel * ferry_dtype_size(dtype);
    pinned_block *b = malloc(sizeof *b);
    if (!b) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
        return NULL;
    }
    b->n = nbytes ? nbytes : 1;
    /* At most twice the size: the tensor holds its block for as long as it lives. */
    void *p = ferry__staging_take(be, b->n, b->n > SIZE_MAX / 2 ? SIZE_MAX : 2 * b->n);
    if (!p) {
        ferry_status st = ferry__be_host_alloc(be, b->n, &p);
        if (st != FERRY_OK || !p) {
            if (st == FERRY_OK)
                ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                             "%s: host_alloc of %zu bytes returned NULL", fn, nbytes);
            free(b);
            return NULL;
        }
    }
    ferry__backend_retain(be);
    b->be = be;
    ferry_storage *s = ferry__storage_wrap(cpu, 0, p, nbytes, pinned_deleter, b);
    if (!s) {
        pinned_deleter(p, b);
        return NULL;
    }
    return ferry__tensor_make(s, 0, dtype, ndim, shape, NULL);
}

FERRY_API ferry_tensor *ferry_empty_pinned(ferry_dtype dtype, int ndim, const int64_t *shape,
                                           const char *device)
{
    return empty_pinned("ferry_empty_pinned", dtype, ndim, shape, device);
}

FERRY_API ferry_tensor *ferry_tensor_pin_memory(ferry_tensor *t, const char *device)
{
    if (ferry__check_tensor(t, "ferry_tensor_pin_memory") != FERRY_OK)
        return NULL;
    if (ferry_tensor_is_pinned(t))
        return ferry_tensor_retain(t);
    ferry_backend *cpu = ferry__cpu_backend();
    if (!cpu)
        return NULL;
    if (t->storage->backend != cpu) {
        char dev[32];
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "cannot pin '%s' tensor: only dense CPU tensors can be pinned",
                     ferry__tensor_device_str(t, dev));
        return NULL;
    }
    ferry_tensor *out = empty_pinned("ferry_tensor_pin_memory", t->dtype, t->ndim, t->shape,
                                     device);
    if (out && ferry__copy_into(out, t) != FERRY_OK) {
        ferry_tensor_release(out);
        return NULL;
    }
    return out;
}

/* ---- to() with flags ---- */

/* One asynchronous copy between a device buffer and pinned host memory, ordered and
 * recorded like any backend call: `be` runs it on the thread's current queue. */
static ferry_status async_copy(ferry_storage *dev_s, size_t dev_off, ferry_storage *host_s,
                               size_t host_off, size_t n, bool to_device)
{
    ferry_backend *be = dev_s->backend;
    int32_t dev = dev_s->device;
    ferry_access acc[] = {{be, dev, dev_s->buffer, to_device},
                          {host_s->backend, host_s->device, host_s->buffer, !to_device}};
    ferry_status st = ferry__track_begin(be, dev, acc, 2);
    if (st != FERRY_OK)
        return st;
    char *host = (char *)host_s->buffer + host_off;
    st = to_device ? ferry__be_copy_from_host_async(be, dev, dev_s->buffer, dev_off, host, n)
                   : ferry__be_copy_to_host_async(be, dev, host, dev_s->buffer, dev_off, n);
    if (st == FERRY_OK)
        ferry__track_end(be, dev, acc, 2);
    return st;
}

/* The non-blocking move of a contiguous t to (be, dev), or NULL without an error when
 * only a blocking copy can do it. */
static ferry_tensor *to_non_blocking(ferry_tensor *t, ferry_backend *be, int32_t dev,
                                     bool *failed)
{
    ferry_storage *s = t->storage;
    *failed = false;
    if (!ferry__is_contiguous(t->ndim, t->shape, t->strides))
        return NULL;
    size_t n = (size_t)ferry__numel(t->ndim, t->shape) * ferry_dtype_size(t->dtype);
    ferry_tensor *out = NULL;
    ferry_status st;
    if (ferry_tensor_is_pinned(t) && !be->host_accessible[dev] && ferry__be_has_async_copies(be)) {
        if (!(out = ferry__tensor_empty_on(be, dev, t->dtype, t->ndim, t->shape)))
            goto fail;
        st = n ? async_copy(out->storage, out->byte_offset, s, t->byte_offset, n, true) : FERRY_OK;
    } else if (be->host_accessible[dev] && !s->host_accessible &&
               ferry__be_has_async_copies(s->backend)) {
        char src_dev[32];
        ferry__device_str(s->backend, s->device, src_dev);
        if (!(out = empty_pinned("ferry_tensor_to_ex", t->dtype, t->ndim, t->shape, src_dev)))
            goto fail;
        if (be != out->storage->backend) {
            /* Pinned memory is the cpu backend's; another host-accessible device takes a
             * blocking copy. */
            ferry_tensor_release(out);
            return NULL;
        }
        st = n ? async_copy(s, t->byte_offset, out->storage, 0, n, false) : FERRY_OK;
    } else {
        return NULL;
    }
    if (st == FERRY_OK)
        return out;
fail:
    ferry_tensor_release(out);
    *failed = true;
    return NULL;
}

FERRY_API ferry_tensor *ferry_tensor_to_ex(ferry_tensor *t, const char *device, int dtype,
                                           unsigned flags)
{
    if (ferry__check_tensor(t, "ferry_tensor_to_ex") != FERRY_OK)
        return NULL;
    if (flags & ~(FERRY_NON_BLOCKING | FERRY_COPY)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "ferry_tensor_to_ex: unknown flags 0x%x (expected FERRY_NON_BLOCKING, "
                     "FERRY_COPY)",
                     flags & ~(FERRY_NON_BLOCKING | FERRY_COPY));
        return NULL;
    }
    if (dtype != -1 && !ferry__dtype_valid((ferry_dtype)dtype)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "ferry_tensor_to_ex: invalid dtype value %d (expected -1 to keep, or 0 .. %d)",
                     dtype, FERRY_NUM_DTYPES - 1);
        return NULL;
    }
    ferry_dtype dt = dtype == -1 ? t->dtype : (ferry_dtype)dtype;
    ferry_backend *be = t->storage->backend;
    int32_t dev = t->storage->device;
    if (device && ferry__device_resolve(device, &be, &dev) != FERRY_OK)
        return NULL;
    if (be == t->storage->backend && dev == t->storage->device) {
        if (dt != t->dtype)
            return ferry_tensor_to_dtype(t, dt);
        return (flags & FERRY_COPY) ? ferry_tensor_clone(t) : ferry_tensor_retain(t);
    }
    char where[32];
    ferry__device_str(be, dev, where);
    ferry_tensor *moved = NULL;
    if (flags & FERRY_NON_BLOCKING) {
        bool failed;
        moved = to_non_blocking(t, be, dev, &failed);
        if (failed)
            return NULL;
        if (moved)
            moved = ferry__ag_copy(moved, t, FERRY_COPY_TO);
    }
    if (!moved && !(moved = ferry_tensor_to(t, where)))
        return NULL;
    if (dt == moved->dtype)
        return moved;
    ferry_tensor *r = ferry_tensor_to_dtype(moved, dt);
    ferry_tensor_release(moved);
    return r;
}

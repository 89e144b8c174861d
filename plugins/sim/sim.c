/* plugins/sim: a simulated discrete device, built from the installed SDK alone. Its memory
 * is unreachable from the host (buffer handles are ids, not pointers; freed ids stay dead),
 * so every cross-device path in the core is exercised; it can also inject failures. */
#include <ferry/backend.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIM_VERSION "0.1.0"
#define SIM_MAX_DEVICES 64
#define SIM_DEFAULT_DEVICES 2
#define SIM_DEFAULT_MEMORY ((uint64_t)1 << 30)
/* Freshly allocated memory holds this, so a core that reads a tensor it never wrote sees
 * garbage that is recognisable rather than zeros that look right. */
#define SIM_FRESH_BYTE 0xCD
#define SIM_POISON_BYTE 0xDB
/* A handle is BASE | id << 4 | 1, never a pointer: odd, so not an aligned host address,
 * and on 64-bit hosts BASE makes it non-canonical, so a core that dereferences a handle
 * faults at once (for any id) instead of reading something plausible. */
#define SIM_HANDLE_SHIFT 4
#define SIM_HANDLE_TAG ((uintptr_t)1)
#if UINTPTR_MAX > 0xFFFFFFFFu
#define SIM_HANDLE_BASE ((uintptr_t)0xDB5 << 52)
#define SIM_ID_BITS 48
#else
#define SIM_HANDLE_BASE ((uintptr_t)0)
#define SIM_ID_BITS 28
#endif
#define SIM_ID_MASK ((((uintptr_t)1 << SIM_ID_BITS) - 1) << SIM_HANDLE_SHIFT)
#define SIM_MAX_ID (((size_t)1 << SIM_ID_BITS) - 1)

typedef struct sim_block {
    unsigned char *mem; /* NULL once freed */
    size_t nbytes;
    int32_t device;
    bool live;
} sim_block;

static const ferry_host_api *host;

/* Guarded by `lock`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sim_block *blocks; /* blocks[id - 1]; ids are never reused, so the table only grows */
static size_t nblocks;
static size_t blocks_cap;
static uint64_t used[SIM_MAX_DEVICES];
static int32_t ndevices;
static uint64_t memory_per_device = SIM_DEFAULT_MEMORY;
/* A registry may init a second instance of this library while the first one still has
 * live buffers (dlopen hands back the same copy); the table is torn down only when the
 * last instance shuts down. */
static int instances;

/* Fault injection, read on every call without the lock. */
static atomic_uint_fast64_t fail_alloc_at; /* 0: never */
static atomic_uint_fast64_t fail_copy_at;
/* FERRY_SIM_FAIL_COPY_STICKY=1: the injected copy failure also loses the device, as a
 * CUDA sticky error does (host_api.device_lost). */
static atomic_bool fail_copy_sticky;
static atomic_uint_fast64_t alloc_calls;
static atomic_uint_fast64_t copy_calls;

static void *sim_handle(size_t id)
{
    return (void *)(SIM_HANDLE_BASE | ((uintptr_t)id << SIM_HANDLE_SHIFT) | SIM_HANDLE_TAG);
}

/* Parses a non-empty string of decimal digits no larger than max. */
static bool sim_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Reads one numeric setting; an unset or empty variable keeps the default. */
static ferry_status sim_env_u64(const char *var, uint64_t min, uint64_t max, uint64_t def,
                                uint64_t *out)
{
    const char *s = getenv(var);
    if (!s || !*s) {
        *out = def;
        return FERRY_OK;
    }
    uint64_t v;
    /* No "sim:" prefix: the core puts the backend name in front of an init failure. */
    if (!sim_parse_u64(s, max, &v) || v < min)
        return host->error(FERRY_ERR_BACKEND,
                           "%s must be a whole number from %" PRIu64 " to %" PRIu64 ", not '%s'",
                           var, min, max, s);
    *out = v;
    return FERRY_OK;
}

/* Failure text is formatted under the lock into a caller buffer and reported after the
 * lock is dropped, so host->error never runs with the table locked. */
typedef struct sim_why {
    char text[256];
} sim_why;

static bool sim_check_device(const char *call, int32_t device, sim_why *why)
{
    if (device >= 0 && device < ndevices)
        return true;
    snprintf(why->text, sizeof why->text,
             "sim: %s: invalid device index %" PRId32 " (sim has %" PRId32 " device%s)", call,
             device, ndevices, ndevices == 1 ? "" : "s");
    return false;
}

/* Counts a copy call and fails it when it is the one FERRY_SIM_FAIL_COPY names. */
static ferry_status sim_count_copy(int32_t device)
{
    uint64_t n = (uint64_t)atomic_fetch_add(&copy_calls, 1) + 1;
    uint64_t at = (uint64_t)atomic_load(&fail_copy_at);
    if (at != 0 && n == at) {
        if (atomic_load(&fail_copy_sticky) && FERRY_HOST_HAS(host, device_lost))
            host->device_lost("sim", device, "simInjectedStickyError in a copy");
        return host->error(FERRY_ERR_BACKEND, "sim:%" PRId32 ": injected failure in copy #%" PRIu64,
                           device, n);
    }
    return FERRY_OK;
}

/* Resolves a handle to its block and checks that it lives on `device` and that
 * [offset, offset + nbytes) lies inside it. Called with `lock` held. */
static sim_block *sim_lookup(const char *call, int32_t device, const void *handle,
                             size_t offset, size_t nbytes, sim_why *why)
{
    if (!sim_check_device(call, device, why))
        return NULL;
    uintptr_t v = (uintptr_t)handle;
    if ((v & ~SIM_ID_MASK) != (SIM_HANDLE_BASE | SIM_HANDLE_TAG)) {
        snprintf(why->text, sizeof why->text,
                 "sim:%" PRId32 ": %s: invalid buffer handle %p (not a sim buffer id)", device,
                 call, handle);
        return NULL;
    }
    size_t id = (size_t)((v & SIM_ID_MASK) >> SIM_HANDLE_SHIFT);
    if (id == 0 || id > nblocks) {
        snprintf(why->text, sizeof why->text,
                 "sim:%" PRId32 ": %s: invalid buffer id %zu (never allocated)", device, call, id);
        return NULL;
    }
    sim_block *b = &blocks[id - 1];
    if (!b->live) {
        snprintf(why->text, sizeof why->text, "sim:%" PRId32 ": %s: invalid buffer id %zu (freed)",
                 device, call, id);
        return NULL;
    }
    if (b->device != device) {
        snprintf(why->text, sizeof why->text,
                 "sim:%" PRId32 ": %s: invalid buffer id %zu (it belongs to sim:%" PRId32 ")",
                 device, call, id, b->device);
        return NULL;
    }
    if (offset > b->nbytes || nbytes > b->nbytes - offset) {
        snprintf(why->text, sizeof why->text,
                 "sim:%" PRId32 ": %s: offset %zu + %zu bytes is out of bounds of buffer id %zu "
                 "(%zu bytes)",
                 device, call, offset, nbytes, id, b->nbytes);
        return NULL;
    }
    return b;
}


/* ---- queues (FERRY_SIM_QUEUE_DELAY_US set) ----
 * Each queue is a worker thread that sleeps the delay before every copy it runs, so a
 * core that reads, frees or reuses memory before its queued work is done sees wrong
 * bytes or a late error instead of passing by luck. Handles are checked when work is
 * queued (errors come back at once, as without queues) and again when it runs: a
 * buffer freed in between is the core's bug, counted and reported by synchronize. */

static bool sim_empty_copy(size_t nbytes, const void *handle);

enum sim_task_kind { SIM_TASK_IN, SIM_TASK_OUT, SIM_TASK_BLOCKS, SIM_TASK_MARK, SIM_TASK_WAIT };

typedef struct sim_event {
    atomic_int refs; /* the user's and a queued MARK or WAIT each */
    bool done;       /* guarded by ev_lock */
    double time_ms;
} sim_event;

typedef struct sim_task {
    struct sim_task *next;
    enum sim_task_kind kind;
    int32_t dst_device, src_device;
    void *dst;
    const void *src;
    size_t dst_offset, src_offset, nbytes;
    unsigned char *owned; /* a snapshot of the host bytes, freed after the copy */
    sim_event *event;
} sim_task;

typedef struct sim_queue {
    pthread_mutex_t m;
    pthread_cond_t cv;
    sim_task *head, *tail;
    bool busy, stop;
    pthread_t thread;
    int32_t device;
    int64_t native; /* its DLPack stream: 1 for a device's default queue, else >= 3 */
    struct sim_queue *next_on_device; /* guarded by queues_lock */
} sim_queue;

static bool queued_mode;
static uint64_t queue_delay_us;
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t queues_lock = PTHREAD_MUTEX_INITIALIZER;
static sim_queue *device_queues[SIM_MAX_DEVICES]; /* the default queue first */
static _Thread_local sim_queue *current_queue[SIM_MAX_DEVICES];
/* DLPack streams of created queues: CUDA's numbering, so 0 (ambiguous) and 2 (CUDA's
 * per-thread default) name no sim queue and the core's handling of them is tested. */
static atomic_int_fast64_t next_native = 3;
static atomic_uint_fast64_t late_errors;
static char late_why[256]; /* the first late error since the last report; under `lock` */

static double sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sim_event_release(sim_event *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1)
        free(e);
}

static void sim_late_error(const sim_why *why)
{
    if (atomic_fetch_add(&late_errors, 1) == 0)
        snprintf(late_why, sizeof late_why, "%s", why->text);
}

static void sim_run_task(sim_task *t)
{
    sim_why why;
    switch (t->kind) {
    case SIM_TASK_MARK:
        pthread_mutex_lock(&ev_lock);
        t->event->time_ms = sim_now_ms();
        t->event->done = true;
        pthread_cond_broadcast(&ev_cv);
        pthread_mutex_unlock(&ev_lock);
        return;
    case SIM_TASK_WAIT:
        pthread_mutex_lock(&ev_lock);
        while (!t->event->done)
            pthread_cond_wait(&ev_cv, &ev_lock);
        pthread_mutex_unlock(&ev_lock);
        return;
    default:
        break;
    }
    if (queue_delay_us)
        usleep((useconds_t)queue_delay_us);
    pthread_mutex_lock(&lock);
    if (t->kind == SIM_TASK_IN) {
        sim_block *b = sim_lookup("queued copy_from_host", t->dst_device, t->dst, t->dst_offset,
                                  t->nbytes, &why);
        if (b)
            memcpy(b->mem + t->dst_offset, t->owned ? t->owned : t->src, t->nbytes);
        else
            sim_late_error(&why);
    } else if (t->kind == SIM_TASK_OUT) {
        sim_block *b = sim_lookup("queued copy_to_host", t->src_device, t->src, t->src_offset,
                                  t->nbytes, &why);
        if (b)
            memcpy(t->dst, b->mem + t->src_offset, t->nbytes);
        else
            sim_late_error(&why);
    } else {
        sim_block *d = sim_lookup("queued copy", t->dst_device, t->dst, t->dst_offset, t->nbytes,
                                  &why);
        sim_block *src = d ? sim_lookup("queued copy", t->src_device, t->src, t->src_offset,
                                        t->nbytes, &why)
                           : NULL;
        if (src)
            memmove(d->mem + t->dst_offset, src->mem + t->src_offset, t->nbytes);
        else
            sim_late_error(&why);
    }
    pthread_mutex_unlock(&lock);
}

static void *sim_worker(void *arg)
{
    sim_queue *q = arg;
    pthread_mutex_lock(&q->m);
    for (;;) {
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cv, &q->m);
        if (!q->head)
            break;
        sim_task *t = q->head;
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        q->busy = true;
        pthread_mutex_unlock(&q->m);
        sim_run_task(t);
        free(t->owned);
        sim_event_release(t->event);
        free(t);
        pthread_mutex_lock(&q->m);
        q->busy = false;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->m);
    return NULL;
}

static void sim_queue_drain(sim_queue *q)
{
    pthread_mutex_lock(&q->m);
    while (q->head || q->busy)
        pthread_cond_wait(&q->cv, &q->m);
    pthread_mutex_unlock(&q->m);
}

static sim_queue *sim_queue_new(int32_t device)
{
    sim_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->m, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->device = device;
    q->native = atomic_fetch_add(&next_native, 1);
    if (pthread_create(&q->thread, NULL, sim_worker, q) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->m);
        free(q);
        return NULL;
    }
    return q;
}

/* Stops the worker once its work is done; the queue must be unlinked already. */
static void sim_queue_free(sim_queue *q)
{
    pthread_mutex_lock(&q->m);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->m);
    pthread_join(q->thread, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->m);
    free(q);
}

/* The queue work of the calling thread goes to on `device`. */
static sim_queue *sim_current(int32_t device)
{
    sim_queue *q = current_queue[device];
    if (q)
        return q;
    pthread_mutex_lock(&queues_lock);
    q = device_queues[device];
    pthread_mutex_unlock(&queues_lock);
    return q;
}

static ferry_status sim_enqueue(sim_queue *q, sim_task *t)
{
    if (!q) {
        free(t->owned);
        free(t);
        return host->error(FERRY_ERR_BACKEND, "sim: no queue for this device");
    }
    t->next = NULL;
    pthread_mutex_lock(&q->m);
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->m);
    return FERRY_OK;
}

static sim_task *sim_task_new(enum sim_task_kind kind)
{
    sim_task *t = calloc(1, sizeof *t);
    if (!t)
        host->error(FERRY_ERR_OUT_OF_MEMORY, "sim: out of host memory for a queued task");
    else
        t->kind = kind;
    return t;
}

/* Waits for every queue of `device`; the late errors found meanwhile are reported. */
static ferry_status sim_drain_device(int32_t device)
{
    pthread_mutex_lock(&queues_lock);
    for (sim_queue *q = device_queues[device]; q; q = q->next_on_device)
        sim_queue_drain(q);
    pthread_mutex_unlock(&queues_lock);
    uint64_t late = (uint64_t)atomic_exchange(&late_errors, 0);
    if (!late)
        return FERRY_OK;
    char why[sizeof late_why];
    pthread_mutex_lock(&lock);
    snprintf(why, sizeof why, "%s", late_why);
    pthread_mutex_unlock(&lock);
    return host->error(FERRY_ERR_BACKEND,
                       "sim:%" PRId32 ": %" PRIu64 " queued copy(ies) found a buffer gone when "
                       "they ran (the core freed memory that queued work still used); first: %s",
                       device, late, why);
}

static void sim_queues_start(void)
{
    pthread_mutex_lock(&queues_lock);
    for (int32_t d = 0; d < ndevices; d++)
        if (!device_queues[d] && (device_queues[d] = sim_queue_new(d)))
            device_queues[d]->native = 1;
    pthread_mutex_unlock(&queues_lock);
}

static void sim_queues_stop(void)
{
    pthread_mutex_lock(&queues_lock);
    for (int32_t d = 0; d < SIM_MAX_DEVICES; d++) {
        while (device_queues[d]) {
            sim_queue *q = device_queues[d];
            device_queues[d] = q->next_on_device;
            sim_queue_free(q);
        }
    }
    pthread_mutex_unlock(&queues_lock);
}

static ferry_status sim_queue_create(void *ctx, int32_t device, void **queue)
{
    sim_why why;
    *queue = NULL;
    pthread_mutex_lock(&lock);
    bool ok = sim_check_device("queue_create", device, &why);
    pthread_mutex_unlock(&lock);
    if (!ok)
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    sim_queue *q = sim_queue_new(device);
    if (!q)
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "sim:%" PRId32 ": cannot start a queue",
                           device);
    pthread_mutex_lock(&queues_lock);
    sim_queue **at = &device_queues[device];
    while (*at)
        at = &(*at)->next_on_device;
    *at = q;
    pthread_mutex_unlock(&queues_lock);
    *queue = q;
    return FERRY_OK;
}

static void sim_queue_destroy(void *ctx, int32_t device, void *queue)
{
    sim_queue *q = queue;
    if (!q || device < 0 || device >= SIM_MAX_DEVICES)
        return;
    pthread_mutex_lock(&queues_lock);
    for (sim_queue **at = &device_queues[device]; *at; at = &(*at)->next_on_device) {
        if (*at == q && at != &device_queues[device]) {
            *at = q->next_on_device;
            pthread_mutex_unlock(&queues_lock);
            sim_queue_free(q);
            return;
        }
    }
    pthread_mutex_unlock(&queues_lock);
    host->log(FERRY_LOG_ERROR, "sim", "sim:%" PRId32 ": queue_destroy of an unknown queue %p",
              device, queue);
}

static ferry_status sim_set_queue(void *ctx, int32_t device, void *queue)
{
    if (device < 0 || device >= SIM_MAX_DEVICES)
        return host->error(FERRY_ERR_BACKEND, "sim: set_queue: invalid device index %" PRId32,
                           device);
    current_queue[device] = queue;
    return FERRY_OK;
}

static ferry_status sim_event_record(void *ctx, int32_t device, void *queue, void **event)
{
    *event = NULL;
    if (device < 0 || device >= ndevices)
        return host->error(FERRY_ERR_BACKEND, "sim: event_record: invalid device index %" PRId32,
                           device);
    sim_event *e = calloc(1, sizeof *e);
    sim_task *t = e ? sim_task_new(SIM_TASK_MARK) : NULL;
    if (!t) {
        free(e);
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "sim: out of host memory for an event");
    }
    atomic_init(&e->refs, 2);
    t->event = e;
    pthread_mutex_lock(&queues_lock);
    sim_queue *q = queue ? queue : device_queues[device];
    pthread_mutex_unlock(&queues_lock);
    ferry_status st = sim_enqueue(q, t);
    if (st != FERRY_OK) {
        free(e);
        return st;
    }
    *event = e;
    return FERRY_OK;
}

static ferry_status sim_event_wait(void *ctx, int32_t device, void *queue, void *event)
{
    sim_event *e = event;
    if (device < 0 || device >= ndevices || !e)
        return host->error(FERRY_ERR_BACKEND, "sim: event_wait: invalid device or event");
    sim_task *t = sim_task_new(SIM_TASK_WAIT);
    if (!t)
        return FERRY_ERR_OUT_OF_MEMORY;
    atomic_fetch_add(&e->refs, 1);
    t->event = e;
    pthread_mutex_lock(&queues_lock);
    sim_queue *q = queue ? queue : device_queues[device];
    pthread_mutex_unlock(&queues_lock);
    return sim_enqueue(q, t);
}

static ferry_status sim_queue_native(void *ctx, int32_t device, void *queue, int64_t *stream)
{
    *stream = 0;
    if (device < 0 || device >= ndevices)
        return host->error(FERRY_ERR_BACKEND, "sim: queue_native: invalid device index %" PRId32,
                           device);
    pthread_mutex_lock(&queues_lock);
    sim_queue *q = queue ? queue : device_queues[device];
    if (q)
        *stream = q->native;
    pthread_mutex_unlock(&queues_lock);
    return q ? FERRY_OK
             : host->error(FERRY_ERR_BACKEND, "sim:%" PRId32 ": queue_native: no queue", device);
}

/* Another library's stream: the value is checked against the device's live queues, as
 * a foreign number must be, before anything waits on it. */
static ferry_status sim_event_wait_native(void *ctx, int32_t device, int64_t stream, void *event)
{
    sim_event *e = event;
    if (device < 0 || device >= ndevices || !e)
        return host->error(FERRY_ERR_BACKEND, "sim: event_wait_native: invalid device or event");
    sim_task *t = sim_task_new(SIM_TASK_WAIT);
    if (!t)
        return FERRY_ERR_OUT_OF_MEMORY;
    pthread_mutex_lock(&queues_lock);
    sim_queue *q = device_queues[device];
    while (q && q->native != stream)
        q = q->next_on_device;
    ferry_status st = FERRY_OK;
    if (q) {
        atomic_fetch_add(&e->refs, 1);
        t->event = e;
        /* Under queues_lock, so the queue cannot be destroyed in between. */
        st = sim_enqueue(q, t);
    }
    pthread_mutex_unlock(&queues_lock);
    if (!q) {
        free(t);
        return host->error(FERRY_ERR_INVALID_ARGUMENT,
                           "sim:%" PRId32 ": event_wait_native: %" PRId64 " is no DLPack stream "
                           "of this device (1 is its default queue; others come from "
                           "queue_native)",
                           device, stream);
    }
    return st;
}

static ferry_status sim_event_synchronize(void *ctx, int32_t device, void *event)
{
    (void)device;
    sim_event *e = event;
    pthread_mutex_lock(&ev_lock);
    while (!e->done)
        pthread_cond_wait(&ev_cv, &ev_lock);
    pthread_mutex_unlock(&ev_lock);
    return FERRY_OK;
}

static ferry_status sim_event_query(void *ctx, int32_t device, void *event, bool *done)
{
    (void)device;
    sim_event *e = event;
    pthread_mutex_lock(&ev_lock);
    *done = e->done;
    pthread_mutex_unlock(&ev_lock);
    return FERRY_OK;
}

static void sim_event_destroy(void *ctx, int32_t device, void *event)
{
    (void)device;
    sim_event_release(event);
}

static ferry_status sim_event_elapsed(void *ctx, int32_t device, void *start, void *end, float *ms)
{
    sim_event *a = start, *b = end;
    pthread_mutex_lock(&ev_lock);
    bool done = a->done && b->done;
    double d = b->time_ms - a->time_ms;
    pthread_mutex_unlock(&ev_lock);
    if (!done)
        return host->error(FERRY_ERR_INVALID_ARGUMENT,
                           "sim:%" PRId32 ": event_elapsed: an event is not done yet", device);
    *ms = (float)d;
    return FERRY_OK;
}

/* A copy into device memory on the current queue: `owned` bytes are the task's. */
static ferry_status sim_queue_in(int32_t device, void *dst, size_t dst_offset, const void *src,
                                 unsigned char *owned, size_t nbytes)
{
    sim_task *t = sim_task_new(SIM_TASK_IN);
    if (!t) {
        free(owned);
        return FERRY_ERR_OUT_OF_MEMORY;
    }
    t->dst_device = device;
    t->dst = dst;
    t->dst_offset = dst_offset;
    t->src = src;
    t->owned = owned;
    t->nbytes = nbytes;
    return sim_enqueue(sim_current(device), t);
}

/* What every host copy checks first: the copy counter (fault injection), an empty copy,
 * the host pointer. *done: nothing is left to do (or an error was returned). */
static ferry_status sim_host_copy_check(const char *call, int32_t device, const void *handle,
                                        const void *host_ptr, size_t nbytes, bool *done)
{
    ferry_status st = sim_count_copy(device);
    *done = st != FERRY_OK || sim_empty_copy(nbytes, handle);
    if (*done)
        return st;
    if (!host_ptr && nbytes > 0) {
        *done = true;
        return host->error(FERRY_ERR_BACKEND, "sim:%" PRId32 ": %s: NULL host pointer", device,
                           call);
    }
    return FERRY_OK;
}

static ferry_status sim_copy_from_host_async(void *ctx, int32_t device, void *dst,
                                             size_t dst_offset,
                                             const void *src, size_t nbytes)
{
    ferry_status st;
    sim_why why;
    bool done;
    st = sim_host_copy_check("copy_from_host_async", device, dst, src, nbytes, &done);
    if (st != FERRY_OK || done)
        return st;
    pthread_mutex_lock(&lock);
    sim_block *b = sim_lookup("copy_from_host_async", device, dst, dst_offset, nbytes, &why);
    pthread_mutex_unlock(&lock);
    if (!b)
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    return nbytes ? sim_queue_in(device, dst, dst_offset, src, NULL, nbytes) : FERRY_OK;
}

static ferry_status sim_copy_to_host_async(void *ctx, int32_t device, void *dst, const void *src,
                                           size_t src_offset, size_t nbytes)
{
    ferry_status st;
    sim_why why;
    bool done;
    st = sim_host_copy_check("copy_to_host_async", device, src, dst, nbytes, &done);
    if (st != FERRY_OK || done)
        return st;
    pthread_mutex_lock(&lock);
    sim_block *b = sim_lookup("copy_to_host_async", device, src, src_offset, nbytes, &why);
    pthread_mutex_unlock(&lock);
    if (!b)
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    if (!nbytes)
        return FERRY_OK;
    sim_task *t = sim_task_new(SIM_TASK_OUT);
    if (!t)
        return FERRY_ERR_OUT_OF_MEMORY;
    t->src_device = device;
    t->src = src;
    t->src_offset = src_offset;
    t->dst = dst;
    t->nbytes = nbytes;
    return sim_enqueue(sim_current(device), t);
}

static ferry_status sim_init(void **ctx, int32_t *device_count, char *reason, size_t reason_cap)
{
    uint64_t n, mem, fail_alloc, fail_copy, sticky;
    ferry_status st;
    *device_count = 0;
    if ((st = sim_env_u64("FERRY_SIM_DEVICES", 0, SIM_MAX_DEVICES, SIM_DEFAULT_DEVICES, &n)) ||
        (st = sim_env_u64("FERRY_SIM_MEMORY", 0, UINT64_MAX, SIM_DEFAULT_MEMORY, &mem)) ||
        (st = sim_env_u64("FERRY_SIM_FAIL_ALLOC", 0, UINT64_MAX, 0, &fail_alloc)) ||
        (st = sim_env_u64("FERRY_SIM_FAIL_COPY", 0, UINT64_MAX, 0, &fail_copy)) ||
        (st = sim_env_u64("FERRY_SIM_FAIL_COPY_STICKY", 0, 1, 0, &sticky)) ||
        (st = sim_env_u64("FERRY_SIM_QUEUE_DELAY_US", 0, 10000000, 0, &queue_delay_us)))
        return st;

    pthread_mutex_lock(&lock);
    ndevices = (int32_t)n;
    memory_per_device = mem;
    instances++;
    pthread_mutex_unlock(&lock);
    /* The counters restart with each init so that a test can set FERRY_SIM_FAIL_* and
     * reload the plugin, and count from its own first call. */
    atomic_store(&fail_alloc_at, fail_alloc);
    atomic_store(&fail_copy_at, fail_copy);
    atomic_store(&fail_copy_sticky, sticky != 0);
    atomic_store(&alloc_calls, 0);
    atomic_store(&copy_calls, 0);

    if (queued_mode)
        sim_queues_start();
    if (n == 0 && reason && reason_cap > 0)
        snprintf(reason, reason_cap, "FERRY_SIM_DEVICES=0: no simulated device requested");
    host->log(FERRY_LOG_DEBUG, "sim",
              "%" PRIu64 " device(s) of %" PRIu64 " bytes; fail alloc #%" PRIu64
              ", copy #%" PRIu64 " (0 = never)",
              n, mem, fail_alloc, fail_copy);
    *device_count = (int32_t)n;
    return FERRY_OK;
}

static void sim_shutdown(void *ctx)
{
    pthread_mutex_lock(&lock);
    if (--instances > 0) {
        pthread_mutex_unlock(&lock);
        return;
    }
    instances = 0;
    pthread_mutex_unlock(&lock);
    sim_queues_stop();
    pthread_mutex_lock(&lock);
    size_t live = 0;
    uint64_t live_bytes = 0;
    for (size_t i = 0; i < nblocks; i++) {
        if (blocks[i].live) {
            live++;
            live_bytes += blocks[i].nbytes;
            free(blocks[i].mem);
        }
    }
    free(blocks);
    blocks = NULL;
    nblocks = blocks_cap = 0;
    memset(used, 0, sizeof used);
    pthread_mutex_unlock(&lock);
    /* The core must free every buffer before it unloads a backend; say so when it did not. */
    if (live)
        host->log(FERRY_LOG_WARN, "sim",
                  "%zu buffer(s), %" PRIu64 " bytes, still allocated at shutdown", live,
                  live_bytes);
}

static ferry_status sim_device_info(void *ctx, int32_t device, ferry_device_info *out)
{
    sim_why why;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&lock);
    if (!sim_check_device("device_info", device, &why)) {
        pthread_mutex_unlock(&lock);
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    }
    out->total_memory = memory_per_device;
    out->free_memory = memory_per_device - used[device];
    pthread_mutex_unlock(&lock);
    snprintf(out->name, sizeof out->name, "ferry simulated device");
    snprintf(out->vendor, sizeof out->vendor, "ferry");
    snprintf(out->backend, sizeof out->backend, "sim");
    snprintf(out->backend_version, sizeof out->backend_version, SIM_VERSION);
    snprintf(out->driver_version, sizeof out->driver_version, "simulated");
    out->host_accessible = false;
    return FERRY_OK;
}

static ferry_status sim_alloc(void *ctx, int32_t device, size_t nbytes, void **buffer)
{
    sim_why why;
    *buffer = NULL;
    uint64_t n = (uint64_t)atomic_fetch_add(&alloc_calls, 1) + 1;
    uint64_t at = (uint64_t)atomic_load(&fail_alloc_at);
    if (at != 0 && n == at)
        return host->error(FERRY_ERR_OUT_OF_MEMORY,
                           "sim:%" PRId32 ": out of memory: injected failure in alloc #%" PRIu64
                           " (%zu bytes)",
                           device, n, nbytes);

    pthread_mutex_lock(&lock);
    if (!sim_check_device("alloc", device, &why)) {
        pthread_mutex_unlock(&lock);
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    }
    uint64_t free_bytes = memory_per_device - used[device];
    if ((uint64_t)nbytes > free_bytes) {
        pthread_mutex_unlock(&lock);
        return host->error(FERRY_ERR_OUT_OF_MEMORY,
                           "sim:%" PRId32 ": out of memory: tried to allocate %zu bytes with %" PRIu64
                           " of %" PRIu64 " bytes free",
                           device, nbytes, free_bytes, memory_per_device);
    }
    if (nblocks == SIM_MAX_ID) {
        pthread_mutex_unlock(&lock);
        return host->error(FERRY_ERR_OUT_OF_MEMORY,
                           "sim:%" PRId32 ": out of memory: every buffer id has been used",
                           device);
    }
    if (nblocks == blocks_cap) {
        size_t cap = blocks_cap ? blocks_cap * 2 : 64;
        sim_block *grown = realloc(blocks, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&lock);
            return host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "sim:%" PRId32 ": out of memory: cannot grow the buffer table",
                               device);
        }
        blocks = grown;
        blocks_cap = cap;
    }
    /* The contract says nbytes > 0; a zero request still gets a distinct live id. */
    unsigned char *mem = malloc(nbytes ? nbytes : 1);
    if (!mem) {
        pthread_mutex_unlock(&lock);
        return host->error(FERRY_ERR_OUT_OF_MEMORY,
                           "sim:%" PRId32 ": out of memory: host malloc of %zu bytes failed",
                           device, nbytes);
    }
    memset(mem, SIM_FRESH_BYTE, nbytes);
    blocks[nblocks] = (sim_block){.mem = mem, .nbytes = nbytes, .device = device, .live = true};
    nblocks++;
    used[device] += nbytes;
    *buffer = sim_handle(nblocks);
    pthread_mutex_unlock(&lock);
    return FERRY_OK;
}

static void sim_free(void *ctx, int32_t device, void *buffer)
{
    sim_why why;
    if (!buffer)
        return;
    pthread_mutex_lock(&lock);
    sim_block *b = sim_lookup("free", device, buffer, 0, 0, &why);
    if (!b) {
        pthread_mutex_unlock(&lock);
        /* free cannot fail back to the core; a bad handle is a core bug, logged loudly
         * and otherwise ignored rather than acted on. */
        host->log(FERRY_LOG_ERROR, "sim", "%s", why.text);
        return;
    }
    /* Poisoned before release so that a race in this plugin between free and a copy
     * would move 0xDB bytes, which tests notice, rather than stale data that looks right. */
    memset(b->mem, SIM_POISON_BYTE, b->nbytes);
    free(b->mem);
    b->mem = NULL;
    b->live = false;
    used[device] -= b->nbytes;
    pthread_mutex_unlock(&lock);
}

/* A zero-byte copy may come with a NULL handle (an empty tensor owns no buffer); any other
 * copy must name a live block. */
static bool sim_empty_copy(size_t nbytes, const void *handle)
{
    return nbytes == 0 && handle == NULL;
}

static ferry_status sim_copy_from_host(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                       const void *src, size_t nbytes)
{
    ferry_status st;
    sim_why why;
    bool done;
    st = sim_host_copy_check("copy_from_host", device, dst, src, nbytes, &done);
    if (st != FERRY_OK || done)
        return st;
    pthread_mutex_lock(&lock);
    sim_block *b = sim_lookup("copy_from_host", device, dst, dst_offset, nbytes, &why);
    if (b && nbytes && !queued_mode)
        memcpy(b->mem + dst_offset, src, nbytes);
    pthread_mutex_unlock(&lock);
    if (!b)
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    if (queued_mode && nbytes) {
        /* src may be reused once this returns, so the queued copy takes its own bytes. */
        unsigned char *snap = malloc(nbytes);
        if (!snap)
            return host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "sim:%" PRId32 ": out of host memory queueing a %zu-byte copy",
                               device, nbytes);
        memcpy(snap, src, nbytes);
        return sim_queue_in(device, dst, dst_offset, NULL, snap, nbytes);
    }
    return FERRY_OK;
}

static ferry_status sim_copy_to_host(void *ctx, int32_t device, void *dst, const void *src,
                                     size_t src_offset, size_t nbytes)
{
    ferry_status st;
    sim_why why;
    bool done;
    st = sim_host_copy_check("copy_to_host", device, src, dst, nbytes, &done);
    if (st != FERRY_OK || done)
        return st;
    /* Ordered after all the device's queued work, as the ABI says. */
    if (queued_mode && device >= 0 && device < ndevices && (st = sim_drain_device(device)))
        return st;
    pthread_mutex_lock(&lock);
    sim_block *b = sim_lookup("copy_to_host", device, src, src_offset, nbytes, &why);
    if (b && nbytes)
        memcpy(dst, b->mem + src_offset, nbytes);
    pthread_mutex_unlock(&lock);
    return b ? FERRY_OK : host->error(FERRY_ERR_BACKEND, "%s", why.text);
}

/* Shared by copy_on_device and copy_peer: both ends are device blocks. */
static ferry_status sim_copy_blocks(const char *call, int32_t dst_device, void *dst,
                                    size_t dst_offset, int32_t src_device, const void *src,
                                    size_t src_offset, size_t nbytes)
{
    sim_why why;
    if (nbytes == 0 && (!dst || !src))
        return FERRY_OK;
    pthread_mutex_lock(&lock);
    sim_block *d = sim_lookup(call, dst_device, dst, dst_offset, nbytes, &why);
    sim_block *s = d ? sim_lookup(call, src_device, src, src_offset, nbytes, &why) : NULL;
    if (s && d == s && dst_offset < src_offset + nbytes && src_offset < dst_offset + nbytes) {
        /* The ABI promises disjoint regions; a core that breaks that promise is told. */
        snprintf(why.text, sizeof why.text,
                 "sim:%" PRId32 ": %s: source [%zu, %zu) and destination [%zu, %zu) overlap",
                 dst_device, call, src_offset, src_offset + nbytes, dst_offset,
                 dst_offset + nbytes);
        s = NULL;
    }
    if (s && nbytes && !queued_mode)
        memcpy(d->mem + dst_offset, s->mem + src_offset, nbytes);
    pthread_mutex_unlock(&lock);
    if (!s)
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    if (queued_mode && nbytes) {
        sim_task *t = sim_task_new(SIM_TASK_BLOCKS);
        if (!t)
            return FERRY_ERR_OUT_OF_MEMORY;
        t->dst_device = dst_device;
        t->dst = dst;
        t->dst_offset = dst_offset;
        t->src_device = src_device;
        t->src = src;
        t->src_offset = src_offset;
        t->nbytes = nbytes;
        return sim_enqueue(sim_current(dst_device), t);
    }
    return FERRY_OK;
}

static ferry_status sim_copy_on_device(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                       const void *src, size_t src_offset, size_t nbytes)
{
    ferry_status st;
    if ((st = sim_count_copy(device)) != FERRY_OK)
        return st;
    return sim_copy_blocks("copy_on_device", device, dst, dst_offset, device, src, src_offset,
                           nbytes);
}

static ferry_status sim_copy_peer(void *ctx, int32_t dst_device, void *dst, size_t dst_offset,
                                  int32_t src_device, const void *src, size_t src_offset,
                                  size_t nbytes)
{
    ferry_status st;
    if ((st = sim_count_copy(dst_device)) != FERRY_OK)
        return st;
    return sim_copy_blocks("copy_peer", dst_device, dst, dst_offset, src_device, src, src_offset,
                           nbytes);
}

/* "Pinned" host memory for the core's staging buffers: plain host memory here, but
 * each call is logged (FERRY_DEBUG=sim) so tests can see the core reuse them. */
static ferry_status sim_host_alloc(void *ctx, size_t nbytes, void **ptr)
{
    *ptr = NULL;
    if (posix_memalign(ptr, 64, nbytes ? nbytes : 1) != 0) {
        *ptr = NULL;
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "sim: host_alloc of %zu bytes failed",
                           nbytes);
    }
    host->log(FERRY_LOG_DEBUG, "sim", "host_alloc %zu bytes", nbytes);
    return FERRY_OK;
}

static void sim_host_free(void *ctx, void *ptr)
{
    host->log(FERRY_LOG_DEBUG, "sim", "host_free");
    free(ptr);
}

static ferry_status sim_synchronize(void *ctx, int32_t device)
{
    sim_why why;
    pthread_mutex_lock(&lock);
    bool ok = sim_check_device("synchronize", device, &why);
    pthread_mutex_unlock(&lock);
    if (!ok)
        return host->error(FERRY_ERR_BACKEND, "%s", why.text);
    /* Without queues every entry completes before it returns. */
    return queued_mode ? sim_drain_device(device) : FERRY_OK;
}

/* No kernel entries: the core runs every op on the CPU backend through staging, which is
 * exactly the path this plugin exists to exercise. */
#define SIM_COMMON_OPS \
    .abi_major = FERRY_BACKEND_ABI_MAJOR, \
    .abi_minor = FERRY_BACKEND_ABI_MINOR, \
    .struct_size = sizeof(ferry_backend_ops), \
    .name = "sim", \
    .version = SIM_VERSION, \
    .init = sim_init, \
    .shutdown = sim_shutdown, \
    .device_info = sim_device_info, \
    .alloc = sim_alloc, \
    .free = sim_free, \
    .copy_from_host = sim_copy_from_host, \
    .copy_to_host = sim_copy_to_host, \
    .copy_on_device = sim_copy_on_device, \
    .synchronize = sim_synchronize, \
    .copy_peer = sim_copy_peer, \
    .host_alloc = sim_host_alloc, \
    .host_free = sim_host_free

static const ferry_backend_ops sim_ops = {SIM_COMMON_OPS};

/* FERRY_SIM_QUEUE_DELAY_US set: the same device with real queues, so ordering bugs in the
 * core show up; without it sim stays synchronous and its errors come back at once. It
 * declares kDLExtDev, DLPack's type for trying out a device: only this variant has
 * streams to exchange, and the plain one keeps refusing exports. */
static const ferry_backend_ops sim_ops_queued = {
    SIM_COMMON_OPS,
    .queue_create = sim_queue_create,
    .queue_destroy = sim_queue_destroy,
    .set_queue = sim_set_queue,
    .event_record = sim_event_record,
    .event_wait = sim_event_wait,
    .event_synchronize = sim_event_synchronize,
    .event_query = sim_event_query,
    .event_destroy = sim_event_destroy,
    .event_elapsed = sim_event_elapsed,
    .copy_from_host_async = sim_copy_from_host_async,
    .copy_to_host_async = sim_copy_to_host_async,
    .dlpack_device_type = 12,
    .queue_native = sim_queue_native,
    .event_wait_native = sim_event_wait_native,
};

/* FERRY_SIM_ABI_1_2_EARLY=1 as well: the table ends before queue_native, as that of a
 * 1.2 plugin built before the DLPack stream entries did, and the core must drive it as
 * before (it reads 2.0 tables and the 1.x wrappers by the same struct_size rule). */
static ferry_backend_ops sim_ops_queued_early;

const ferry_backend_ops *ferry_backend_entry2(const ferry_host_api *host_api)
{
    /* Without the 1.0 services there is no way to report anything; a host of another
     * major is refused silently, and the core names the mismatch itself. */
    if (!host_api || host_api->abi_major != FERRY_BACKEND_ABI_MAJOR ||
        host_api->struct_size < offsetof(ferry_host_api, log) + sizeof host_api->log)
        return NULL;
    host = host_api;
    const char *delay = getenv("FERRY_SIM_QUEUE_DELAY_US");
    queued_mode = delay && *delay;
    const char *early = getenv("FERRY_SIM_ABI_1_2_EARLY");
    if (queued_mode && early && strcmp(early, "1") == 0) {
        sim_ops_queued_early = sim_ops_queued;
        sim_ops_queued_early.struct_size = offsetof(ferry_backend_ops, queue_native);
        sim_ops_queued_early.queue_native = NULL;
        sim_ops_queued_early.event_wait_native = NULL;
        return &sim_ops_queued_early;
    }
    return queued_mode ? &sim_ops_queued : &sim_ops;
}

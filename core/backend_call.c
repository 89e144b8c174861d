/* The only place the core calls a plugin's table: NULL defaults for optional entries,
 * size checks for older minors, host services handed to plugins, and fault injection
 * for tests (FERRY_FAULT_INJECT="copy_to_host=3,alloc=1": fail the Nth such call). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/backend_v1.h>

#include "internal.h"

/* ---- host services ---- */

static ferry_status host_error(ferry_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ferry__verror(status, fmt, ap);
    va_end(ap);
    return status;
}

static void host_log(ferry_log_level level, const char *backend, const char *fmt, ...)
{
    if (level > FERRY_LOG_WARN && !ferry__debug_enabled(backend ? backend : "backend"))
        return;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ferry[%s] %s: ", backend ? backend : "?",
            names[(unsigned)level < 4 ? level : 3]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The services, labelled with the ABI version a plugin of that major expects. */
#define HOST_API(major, minor)                                                          \
    {                                                                                   \
        .abi_major = (major), .abi_minor = (minor), .struct_size = sizeof(ferry_host_api), \
        .error = host_error, .log = host_log, .device_lost = ferry__device_lost,        \
    }

static const ferry_host_api host_api = HOST_API(FERRY_BACKEND_ABI_MAJOR, FERRY_BACKEND_ABI_MINOR);

const ferry_host_api *ferry__host_api(void)
{
    return &host_api;
}

/* The host table did not change in 2.0, but a 1.x plugin refuses one whose abi_major is
 * not its own (it may not trust the layout), so it gets the same services under 1.2. */
static const ferry_host_api host_api_v1 =
    HOST_API(FERRY_BACKEND_V1_ABI_MAJOR, FERRY_BACKEND_V1_ABI_MINOR);

const ferry_host_api *ferry__host_api_v1(void)
{
    return &host_api_v1;
}

/* ---- fault injection ---- */

enum fault_point { FAULT_ALLOC, FAULT_COPY_FROM_HOST, FAULT_COPY_TO_HOST, FAULT_COPY_ON_DEVICE,
                   FAULT_COPY_PEER, FAULT_HOST_MAP, FAULT_HOST_UNMAP, FAULT_COUNT };
static const char *const fault_names[FAULT_COUNT] = {"alloc",          "copy_from_host",
                                                     "copy_to_host",   "copy_on_device",
                                                     "copy_peer",      "host_map",
                                                     "host_unmap"};
static long fault_at[FAULT_COUNT];
static atomic_long fault_calls[FAULT_COUNT];
static atomic_bool fault_armed;
/* The environment is read once per registry generation: ferry_shutdown() re-arms it,
 * so a test can set FERRY_FAULT_INJECT, shut down, and run. */
static atomic_bool fault_parsed;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

void ferry__fault_reset(void)
{
    pthread_mutex_lock(&fault_lock);
    atomic_store(&fault_parsed, false);
    atomic_store(&fault_armed, false);
    for (int i = 0; i < FAULT_COUNT; i++) {
        fault_at[i] = 0;
        atomic_store(&fault_calls[i], 0);
    }
    pthread_mutex_unlock(&fault_lock);
}

static void fault_parse(void)
{
    pthread_mutex_lock(&fault_lock);
    if (atomic_load(&fault_parsed)) {
        pthread_mutex_unlock(&fault_lock);
        return;
    }
    const char *env = getenv("FERRY_FAULT_INJECT");
    for (int i = 0; env && *env && i < FAULT_COUNT; i++) {
        const char *p = strstr(env, fault_names[i]);
        size_t n = strlen(fault_names[i]);
        if (p && p[n] == '=') {
            fault_at[i] = strtol(p + n + 1, NULL, 10);
            atomic_store(&fault_armed, true);
        }
    }
    atomic_store(&fault_parsed, true);
    pthread_mutex_unlock(&fault_lock);
}

/* True when this call is the one FERRY_FAULT_INJECT asks to fail; sets the error. */
static bool fault_hit(enum fault_point point, const ferry_backend *be, int32_t dev)
{
    if (!atomic_load_explicit(&fault_parsed, memory_order_acquire))
        fault_parse();
    if (!atomic_load_explicit(&fault_armed, memory_order_relaxed) || fault_at[point] <= 0)
        return false;
    long n = atomic_fetch_add(&fault_calls[point], 1) + 1;
    if (n != fault_at[point])
        return false;
    char name[32];
    ferry__error(point == FAULT_ALLOC ? FERRY_ERR_OUT_OF_MEMORY : FERRY_ERR_BACKEND,
                 "%s: injected failure of %s call #%ld (FERRY_FAULT_INJECT)",
                 ferry__device_str(be, dev, name), fault_names[point], n);
    return true;
}

/* ---- required entries ---- */

#define OPTIONAL(be, member) (FERRY_OPS_HAS((be)->ops, member) ? (be)->ops->member : NULL)

/* Runs `call` ordered after the queued work on the buffers in acc, and records it as
 * their last write or use (stream.c); a plain call when nothing is queued anywhere. */
#define TRACKED(be, dev, acc, call)                                                     \
    do {                                                                                \
        if (!ferry__track_active(be))                                                   \
            return (call);                                                              \
        int n_ = (int)(sizeof(acc) / sizeof((acc)[0]));                                 \
        ferry_status st_ = ferry__track_begin(be, dev, acc, n_);                        \
        if (st_ == FERRY_OK && (st_ = (call)) == FERRY_OK)                              \
            ferry__track_end(be, dev, acc, n_);                                         \
        return st_;                                                                     \
    } while (0)
#define W(be, dev, k) {(be), (dev), (k)->buffer, true}
#define R(be, dev, k) {(be), (dev), (k)->buffer, false}


ferry_status ferry__be_alloc(ferry_backend *be, int32_t dev, size_t nbytes, void **buf)
{
    *buf = NULL;
    if (fault_hit(FAULT_ALLOC, be, dev))
        return FERRY_ERR_OUT_OF_MEMORY;
    ferry_status st = be->ops->alloc(be->ctx, dev, nbytes, buf);
    if (st == FERRY_OK && !*buf) {
        char name[32];
        return ferry__error(FERRY_ERR_BACKEND, "%s: alloc of %zu bytes returned no buffer",
                            ferry__device_str(be, dev, name), nbytes);
    }
    return st;
}

void ferry__be_free(ferry_backend *be, int32_t dev, void *buf)
{
    if (!buf)
        return;
    /* Work that left no record (stream.c) may still use it: free is called only once
     * none does. */
    ferry__track_unrecorded_wait(be, dev);
    be->ops->free(be->ctx, dev, buf);
}

ferry_status ferry__be_copy_from_host(ferry_backend *be, int32_t dev, void *dst, size_t dst_off,
                                      const void *src, size_t nbytes)
{
    if (nbytes == 0)
        return FERRY_OK;
    if (fault_hit(FAULT_COPY_FROM_HOST, be, dev))
        return FERRY_ERR_BACKEND;
    ferry_access acc[] = {{be, dev, dst, true}};
    TRACKED(be, dev, acc, be->ops->copy_from_host(be->ctx, dev, dst, dst_off, src, nbytes));
}

ferry_status ferry__be_copy_to_host(ferry_backend *be, int32_t dev, void *dst, const void *src,
                                    size_t src_off, size_t nbytes)
{
    if (nbytes == 0)
        return FERRY_OK;
    if (fault_hit(FAULT_COPY_TO_HOST, be, dev))
        return FERRY_ERR_BACKEND;
    ferry_access acc[] = {{be, dev, src, false}};
    TRACKED(be, dev, acc, be->ops->copy_to_host(be->ctx, dev, dst, src, src_off, nbytes));
}

ferry_status ferry__be_copy_on_device(ferry_backend *be, int32_t dev, void *dst, size_t dst_off,
                                      const void *src, size_t src_off, size_t nbytes)
{
    if (nbytes == 0)
        return FERRY_OK;
    if (fault_hit(FAULT_COPY_ON_DEVICE, be, dev))
        return FERRY_ERR_BACKEND;
    ferry_access acc[] = {{be, dev, dst, true}, {be, dev, src, false}};
    TRACKED(be, dev, acc,
            be->ops->copy_on_device(be->ctx, dev, dst, dst_off, src, src_off, nbytes));
}

ferry_status ferry__be_synchronize(ferry_backend *be, int32_t dev)
{
    return be->ops->synchronize(be->ctx, dev);
}

ferry_status ferry__be_device_info(ferry_backend *be, int32_t dev, ferry_device_info *out)
{
    return be->ops->device_info(be->ctx, dev, out);
}

/* ---- optional entries: absent (or beyond an older plugin's table) = unsupported ---- */



ferry_status ferry__be_copy_peer(ferry_backend *be, int32_t dst_dev, void *dst, size_t dst_off,
                                 int32_t src_dev, const void *src, size_t src_off, size_t nbytes)
{
    if (!OPTIONAL(be, copy_peer))
        return FERRY_ERR_UNSUPPORTED;
    if (nbytes == 0)
        return FERRY_OK;
    if (fault_hit(FAULT_COPY_PEER, be, src_dev))
        return FERRY_ERR_BACKEND;
    ferry_access acc[] = {{be, dst_dev, dst, true}, {be, src_dev, src, false}};
    TRACKED(be, dst_dev, acc,
            be->ops->copy_peer(be->ctx, dst_dev, dst, dst_off, src_dev, src, src_off, nbytes));
}

ferry_status ferry__be_host_alloc(ferry_backend *be, size_t nbytes, void **ptr)
{
    *ptr = NULL;
    if (!OPTIONAL(be, host_alloc) || !OPTIONAL(be, host_free))
        return FERRY_ERR_UNSUPPORTED;
    return be->ops->host_alloc(be->ctx, nbytes, ptr);
}

void ferry__be_host_free(ferry_backend *be, void *ptr)
{
    if (ptr && OPTIONAL(be, host_free))
        be->ops->host_free(be->ctx, ptr);
}

ferry_status ferry__be_host_map(ferry_backend *be, int32_t dev, void *buf, size_t off,
                                size_t nbytes, bool write, void **ptr)
{
    *ptr = NULL;
    if (!OPTIONAL(be, host_map) || !OPTIONAL(be, host_unmap))
        return FERRY_ERR_UNSUPPORTED;
    if (fault_hit(FAULT_HOST_MAP, be, dev))
        return FERRY_ERR_BACKEND;
    ferry_status st = be->ops->host_map(be->ctx, dev, buf, off, nbytes, write, ptr);
    if (st == FERRY_OK && !*ptr) {
        char name[32];
        return ferry__error(FERRY_ERR_BACKEND, "%s: host_map of %zu bytes returned no pointer",
                            ferry__device_str(be, dev, name), nbytes);
    }
    return st;
}

ferry_status ferry__be_host_unmap(ferry_backend *be, int32_t dev, void *buf, void *ptr)
{
    /* An injected failure still ends the mapping, as a real one leaves nothing mapped
     * for the core to undo. */
    bool fail = fault_hit(FAULT_HOST_UNMAP, be, dev);
    ferry_status st = be->ops->host_unmap(be->ctx, dev, buf, ptr);
    return fail ? FERRY_ERR_BACKEND : st;
}

/* Asks supports() when the plugin has it, so a declined kernel leaves no error text. */
static bool kernel_declined(ferry_backend *be, int32_t dev, ferry_op op, int subop,
                            const ferry_dtype *dtypes, int n)
{
    bool (*supports)(void *, int32_t, ferry_op, int, const ferry_dtype *, int) =
        OPTIONAL(be, supports);
    return supports && !supports(be->ctx, dev, op, subop, dtypes, n);
}

ferry_status ferry__be_fill(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                            const void *value)
{
    ferry_dtype dt[1] = {out->dtype};
    if (!OPTIONAL(be, fill) || kernel_declined(be, dev, FERRY_OP_FILL, 0, dt, 1))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out)};
    TRACKED(be, dev, acc, be->ops->fill(be->ctx, dev, out, value));
}

ferry_status ferry__be_cast(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                            const ferry_kernel_tensor *in)
{
    ferry_dtype dt[2] = {in->dtype, out->dtype};
    if (!OPTIONAL(be, cast) || kernel_declined(be, dev, FERRY_OP_CAST, 0, dt, 2))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out), R(be, dev, in)};
    TRACKED(be, dev, acc, be->ops->cast(be->ctx, dev, out, in));
}

ferry_status ferry__be_copy_strided(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                                    const ferry_kernel_tensor *in)
{
    ferry_dtype dt[2] = {in->dtype, out->dtype};
    if (!OPTIONAL(be, copy_strided) || kernel_declined(be, dev, FERRY_OP_COPY_STRIDED, 0, dt, 2))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out), R(be, dev, in)};
    TRACKED(be, dev, acc, be->ops->copy_strided(be->ctx, dev, out, in));
}

ferry_status ferry__be_unary(ferry_backend *be, int32_t dev, ferry_unary_op op,
                             const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    ferry_dtype dt[2] = {in->dtype, out->dtype};
    if (!OPTIONAL(be, unary) || kernel_declined(be, dev, FERRY_OP_UNARY, (int)op, dt, 2))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out), R(be, dev, in)};
    TRACKED(be, dev, acc, be->ops->unary(be->ctx, dev, op, out, in));
}

ferry_status ferry__be_binary(ferry_backend *be, int32_t dev, ferry_binary_op op,
                              const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                              const ferry_kernel_tensor *b)
{
    ferry_dtype dt[3] = {a->dtype, b->dtype, out->dtype};
    if (!OPTIONAL(be, binary) || kernel_declined(be, dev, FERRY_OP_BINARY, (int)op, dt, 3))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out), R(be, dev, a), R(be, dev, b)};
    TRACKED(be, dev, acc, be->ops->binary(be->ctx, dev, op, out, a, b));
}

ferry_status ferry__be_binary_scalar(ferry_backend *be, int32_t dev, ferry_binary_op op,
                                     const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                     const ferry_kernel_scalar *b)
{
    ferry_dtype dt[3] = {a->dtype, a->dtype, out->dtype};
    if (!OPTIONAL(be, binary_scalar) || kernel_declined(be, dev, FERRY_OP_BINARY, (int)op, dt, 3))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out), R(be, dev, a)};
    TRACKED(be, dev, acc, be->ops->binary_scalar(be->ctx, dev, op, out, a, b));
}

ferry_status ferry__be_reduce(ferry_backend *be, int32_t dev, ferry_reduce_op op,
                              const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    ferry_dtype dt[2] = {in->dtype, out->dtype};
    if (!OPTIONAL(be, reduce) || kernel_declined(be, dev, FERRY_OP_REDUCE, (int)op, dt, 2))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out), R(be, dev, in)};
    TRACKED(be, dev, acc, be->ops->reduce(be->ctx, dev, op, out, in));
}

ferry_named_kernel ferry__be_get_kernel(ferry_backend *be, int32_t dev, const char *name)
{
    ferry_named_kernel (*get)(void *, int32_t, const char *) = OPTIONAL(be, get_kernel);
    return get ? get(be->ctx, dev, name) : NULL;
}

/* ---- the CPU fallback's accounting ---- */

_Static_assert(FERRY_FALLBACK_NAMED == (int)FERRY_OP_NAMED &&
                   FERRY_FALLBACK_MATMUL == (int)FERRY_OP_MATMUL &&
                   FERRY_FALLBACK_COPY == (int)FERRY_OP_COPY_STRIDED,
               "fallback kinds are numbered as ferry_op");

static const char *const fallback_kind_names[FERRY_FALLBACK_KINDS] = {
    "fill", "cast", "copy", "unary", "binary", "reduce", "matmul", "named"};

FERRY_API const char *ferry_fallback_kind_name(int kind)
{
    return kind >= 0 && kind < FERRY_FALLBACK_KINDS ? fallback_kind_names[kind] : NULL;
}

/* FERRY_STRICT_DEVICE: "1" for every device, or a comma-separated list of backends and
 * devices ("opencl,cuda:1"), so a test can hold accelerators to their kernels while sim
 * keeps its fallback. */
static bool strict_device(const char *where, const char *type)
{
    const char *v = getenv("FERRY_STRICT_DEVICE");
    if (!v || !*v || strcmp(v, "0") == 0)
        return false;
    if (strcmp(v, "1") == 0)
        return true;
    size_t nw = strlen(where), nt = strlen(type);
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        if ((n == nw && memcmp(p, where, n) == 0) || (n == nt && memcmp(p, type, n) == 0))
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

static void dtype_list(const ferry_dtype *dtypes, int ndtypes, char *types, size_t cap)
{
    size_t used = 0;
    types[0] = '\0';
    for (int i = 0; i < ndtypes && used < cap; i++)
        used += (size_t)snprintf(types + used, cap - used, "%s%s", i ? ", " : "",
                                 ferry_dtype_name(dtypes[i]));
}

/* The words of the refusal and of the debug line are formatted only when one is said:
 * a fallen-back op runs on every call, and its formatting cost more than a small op. */
ferry_status ferry__fallback_begin(ferry_backend *be, int32_t dev, ferry_op op, const char *what,
                                   const ferry_dtype *dtypes, int ndtypes)
{
    char types[160], where[32];
    const char *strict = getenv("FERRY_STRICT_DEVICE");
    if (strict && *strict) {
        ferry__device_str(be, dev, where);
        if (strict_device(where, be->name)) {
            dtype_list(dtypes, ndtypes, types, sizeof types);
            return ferry__error(FERRY_ERR_UNSUPPORTED,
                                "FERRY_STRICT_DEVICE: %s has no %s kernel for (%s), and the CPU "
                                "fallback is off; unset FERRY_STRICT_DEVICE to run it on the cpu "
                                "through staging",
                                where, what, types);
        }
    }
    if ((unsigned)op < FERRY_FALLBACK_KINDS) {
        atomic_fetch_add(&be->fallbacks[dev][op], 1);
        unsigned bit = 1u << op;
        if (!(atomic_load_explicit(&be->fallback_logged, memory_order_relaxed) & bit) &&
            !(atomic_fetch_or(&be->fallback_logged, bit) & bit)) {
            ferry__device_str(be, dev, where);
            dtype_list(dtypes, ndtypes, types, sizeof types);
            ferry__debug("fallback", "%s has no %s kernel for (%s): running it on the cpu "
                         "through staging", where, what, types);
        }
    }
    return FERRY_OK;
}

FERRY_API ferry_status ferry_fallback_stats_get(const char *device, ferry_fallback_stats *out)
{
    if (!out)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_fallback_stats_get: out is NULL");
    memset(out, 0, sizeof *out);
    ferry_backend *be;
    int32_t dev;
    ferry_status st = ferry__device_resolve(device, &be, &dev);
    if (st != FERRY_OK)
        return st;
    for (int k = 0; k < FERRY_FALLBACK_KINDS; k++) {
        out->by_kind[k] = atomic_load(&be->fallbacks[dev][k]);
        out->total += out->by_kind[k];
    }
    return FERRY_OK;
}

FERRY_API ferry_status ferry_fallback_stats_reset(const char *device)
{
    ferry_backend *be;
    int32_t dev;
    ferry_status st = ferry__device_resolve(device, &be, &dev);
    if (st != FERRY_OK)
        return st;
    for (int k = 0; k < FERRY_FALLBACK_KINDS; k++)
        atomic_store(&be->fallbacks[dev][k], 0);
    return FERRY_OK;
}

ferry_status ferry__be_matmul(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                              const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    ferry_dtype dt[3] = {a->dtype, b->dtype, out->dtype};
    if (!OPTIONAL(be, matmul) || kernel_declined(be, dev, FERRY_OP_MATMUL, 0, dt, 3))
        return FERRY_ERR_UNSUPPORTED;
    ferry_access acc[] = {W(be, dev, out), R(be, dev, a), R(be, dev, b)};
    TRACKED(be, dev, acc, be->ops->matmul(be->ctx, dev, out, a, b));
}

/* ---- queues and events (ABI 1.2) ---- */

bool ferry__be_queued(const ferry_backend *be)
{
    const ferry_backend_ops *o = be->ops;
    return FERRY_OPS_HAS(o, event_destroy) && o->queue_create && o->queue_destroy &&
           o->set_queue && o->event_record && o->event_wait && o->event_synchronize &&
           o->event_query && o->event_destroy;
}

bool ferry__be_has_async_copies(const ferry_backend *be)
{
    return ferry__be_queued(be) && OPTIONAL(be, copy_from_host_async) &&
           OPTIONAL(be, copy_to_host_async);
}

ferry_status ferry__be_queue_create(ferry_backend *be, int32_t dev, void **queue)
{
    *queue = NULL;
    if (!ferry__be_queued(be))
        return FERRY_ERR_UNSUPPORTED;
    ferry_status st = be->ops->queue_create(be->ctx, dev, queue);
    if (st == FERRY_OK && !*queue) {
        char name[32];
        return ferry__error(FERRY_ERR_BACKEND, "%s: queue_create returned no queue",
                            ferry__device_str(be, dev, name));
    }
    return st;
}

void ferry__be_queue_destroy(ferry_backend *be, int32_t dev, void *queue)
{
    if (queue && ferry__be_queued(be))
        be->ops->queue_destroy(be->ctx, dev, queue);
}

ferry_status ferry__be_set_queue(ferry_backend *be, int32_t dev, void *queue)
{
    return ferry__be_queued(be) ? be->ops->set_queue(be->ctx, dev, queue) : FERRY_ERR_UNSUPPORTED;
}

ferry_status ferry__be_event_record(ferry_backend *be, int32_t dev, void *queue, void **event)
{
    *event = NULL;
    if (!ferry__be_queued(be))
        return FERRY_ERR_UNSUPPORTED;
    ferry_status st = be->ops->event_record(be->ctx, dev, queue, event);
    if (st == FERRY_OK && !*event) {
        char name[32];
        return ferry__error(FERRY_ERR_BACKEND, "%s: event_record returned no event",
                            ferry__device_str(be, dev, name));
    }
    return st;
}

ferry_status ferry__be_event_wait(ferry_backend *be, int32_t dev, void *queue, void *event)
{
    return ferry__be_queued(be) ? be->ops->event_wait(be->ctx, dev, queue, event)
                                : FERRY_ERR_UNSUPPORTED;
}

ferry_status ferry__be_event_synchronize(ferry_backend *be, int32_t dev, void *event)
{
    return ferry__be_queued(be) ? be->ops->event_synchronize(be->ctx, dev, event)
                                : FERRY_ERR_UNSUPPORTED;
}

ferry_status ferry__be_event_query(ferry_backend *be, int32_t dev, void *event, bool *done)
{
    *done = false;
    return ferry__be_queued(be) ? be->ops->event_query(be->ctx, dev, event, done)
                                : FERRY_ERR_UNSUPPORTED;
}

void ferry__be_event_destroy(ferry_backend *be, int32_t dev, void *event)
{
    if (event && ferry__be_queued(be))
        be->ops->event_destroy(be->ctx, dev, event);
}

ferry_status ferry__be_event_elapsed(ferry_backend *be, int32_t dev, void *a, void *b, float *ms)
{
    ferry_status (*elapsed)(void *, int32_t, void *, void *, float *) =
        OPTIONAL(be, event_elapsed);
    return elapsed ? elapsed(be->ctx, dev, a, b, ms) : FERRY_ERR_UNSUPPORTED;
}

ferry_status ferry__be_copy_from_host_async(ferry_backend *be, int32_t dev, void *dst,
                                            size_t dst_off, const void *src, size_t nbytes)
{
    if (!ferry__be_has_async_copies(be))
        return FERRY_ERR_UNSUPPORTED;
    if (nbytes == 0)
        return FERRY_OK;
    if (fault_hit(FAULT_COPY_FROM_HOST, be, dev))
        return FERRY_ERR_BACKEND;
    return be->ops->copy_from_host_async(be->ctx, dev, dst, dst_off, src, nbytes);
}

ferry_status ferry__be_copy_to_host_async(ferry_backend *be, int32_t dev, void *dst,
                                          const void *src, size_t src_off, size_t nbytes)
{
    if (!ferry__be_has_async_copies(be))
        return FERRY_ERR_UNSUPPORTED;
    if (nbytes == 0)
        return FERRY_OK;
    if (fault_hit(FAULT_COPY_TO_HOST, be, dev))
        return FERRY_ERR_BACKEND;
    return be->ops->copy_to_host_async(be->ctx, dev, dst, src, src_off, nbytes);
}

/* ---- DLPack streams (ABI 1.2, appended) ---- */

bool ferry__be_native_streams(const ferry_backend *be)
{
    return ferry__be_queued(be) && OPTIONAL(be, queue_native) && OPTIONAL(be, event_wait_native);
}

ferry_status ferry__be_queue_native(ferry_backend *be, int32_t dev, void *queue, int64_t *stream)
{
    *stream = 0;
    return ferry__be_native_streams(be) ? be->ops->queue_native(be->ctx, dev, queue, stream)
                                        : FERRY_ERR_UNSUPPORTED;
}

ferry_status ferry__be_event_wait_native(ferry_backend *be, int32_t dev, int64_t stream,
                                         void *event)
{
    return ferry__be_native_streams(be) ? be->ops->event_wait_native(be->ctx, dev, stream, event)
                                        : FERRY_ERR_UNSUPPORTED;
}

/* tests/fake_backend: a scriptable plugin for the loader and staging tests. One source,
 * built once per variant (see CMakeLists.txt): a working one-device backend (host memory,
 * or memory the host must not touch), two opaque devices that log how a staged copy
 * between them runs (fake_stage_probe.h), or one specific way for a plugin to be broken,
 * old, newer or refused. */
#include <ferry/backend.h>
#include <ferry/backend_v1.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_stage_probe.h"

#define FAKE_STR_(x) #x
#define FAKE_STR(x) FAKE_STR_(x)

#ifndef FAKE_NAME
#error "FAKE_NAME (the type name the plugin claims, a bare word) must be defined"
#endif

#if defined(FAKE_BAD_NAME)
#define FAKE_CLAIMED_NAME "Bad-Name!"
#else
#define FAKE_CLAIMED_NAME FAKE_STR(FAKE_NAME)
#endif

#if defined(FAKE_OLD_MINOR) || defined(FAKE_ABI_1_0) || defined(FAKE_1_1_EARLY) ||          \
    defined(FAKE_V1_BAD_MAJOR)
/* Built as an ABI 1.x plugin: the frozen 1.x table, entries without a context, the 1.x
 * entry symbol. */
#define FAKE_V1 1
typedef ferry_backend_ops_v1 fake_ops;
#define FAKE_CTX
#define FAKE_CTX_ONLY void
#define FAKE_INIT_CTX
#define FAKE_CHECK_CTX() ((void)0)
#define FAKE_ENTRY ferry_backend_entry
#if defined(FAKE_V1_BAD_MAJOR)
/* A broken build: the 1.x entry symbol returning a table that claims this core's major. */
#define FAKE_OPS_MAJOR FERRY_BACKEND_ABI_MAJOR
#else
#define FAKE_OPS_MAJOR FERRY_BACKEND_V1_ABI_MAJOR
#endif
#else
/* Every entry checks that it received the context its init returned. */
typedef ferry_backend_ops fake_ops;
#define FAKE_CTX void *ctx,
#define FAKE_CTX_ONLY void *ctx
#define FAKE_INIT_CTX void **ctx,
#define FAKE_CHECK_CTX() fake_check_ctx(ctx, __func__)
#define FAKE_ENTRY ferry_backend_entry2
#if defined(FAKE_ABI_MAJOR)
#define FAKE_OPS_MAJOR (FERRY_BACKEND_ABI_MAJOR + 1)
#else
#define FAKE_OPS_MAJOR FERRY_BACKEND_ABI_MAJOR
#endif
#endif

#if defined(FAKE_OLD_MINOR)
/* A plugin built against ABI 1.0 before anything after synchronize existed. */
#define FAKE_OPS_MINOR 0
#define FAKE_OPS_SIZE offsetof(fake_ops, copy_peer)
#elif defined(FAKE_ABI_1_0)
/* A complete ABI 1.0 plugin: its table ends after matmul, before get_kernel (1.1). */
#define FAKE_OPS_MINOR 0
#define FAKE_OPS_SIZE offsetof(fake_ops, get_kernel)
#elif defined(FAKE_1_1_EARLY)
/* Built before binary_scalar and ferry_kernel_tensor.struct_size were appended to 1.1. */
#define FAKE_OPS_MINOR 1
#define FAKE_OPS_SIZE offsetof(fake_ops, binary_scalar)
#elif defined(FAKE_NEW_MINOR)
/* A plugin built against the next minor: its table has two more entries at the end,
 * which this core does not know and must not call. */
#define FAKE_OPS_MINOR (FERRY_BACKEND_ABI_MINOR + 1)
#define FAKE_OPS_SIZE sizeof(fake_future_ops)
#elif defined(FAKE_NEW_MINOR_SHORT)
/* Claims the next minor but its table stops before matmul: a broken build, since a newer
 * minor only ever appends. */
#define FAKE_OPS_MINOR (FERRY_BACKEND_ABI_MINOR + 1)
#define FAKE_OPS_SIZE offsetof(fake_ops, matmul)
#else
#define FAKE_OPS_MINOR FERRY_BACKEND_ABI_MINOR
#define FAKE_OPS_SIZE sizeof(fake_ops)
#endif

#if defined(FAKE_OPAQUE) && UINTPTR_MAX > 0xFFFFFFFFu
/* The device memory the host "cannot reach": handles are pointers with their top bits
 * flipped, non-canonical on 64-bit hosts, so a core that dereferences one faults. */
#define FAKE_HANDLE_KEY ((uintptr_t)0xA5A5ull << 48)
#define FAKE_HOST_ACCESSIBLE false
#else
#define FAKE_HANDLE_KEY ((uintptr_t)0)
#define FAKE_HOST_ACCESSIBLE true
#endif

#if defined(FAKE_STAGE_PROBE)
/* Two devices with no peer path: a copy between them is staged through host memory, and
 * both of its legs are calls of this one plugin, where they can be watched. */
#define FAKE_DEVICES 2
#else
#define FAKE_DEVICES 1
#endif

#define FAKE_ALIGN 64
#define FAKE_MEMORY ((uint64_t)256 << 20)

static const ferry_host_api *host;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t used; /* guarded by lock */

static unsigned char *fake_mem(const void *handle)
{
    return (unsigned char *)((uintptr_t)handle ^ FAKE_HANDLE_KEY);
}

static void *fake_handle(unsigned char *mem)
{
    return (void *)((uintptr_t)mem ^ FAKE_HANDLE_KEY);
}

#if !defined(FAKE_V1)
/* The context init hands out: heap memory, so that a core passing a stale one (after
 * shutdown freed it) or none shows under ASan as well as here. */
#define FAKE_CTX_MAGIC 0x66616b65637478ull
typedef struct fake_context {
    uint64_t magic;
} fake_context;
static fake_context *the_ctx; /* set by init, cleared by shutdown */

static void fake_check_ctx(void *ctx, const char *entry)
{
    if (!ctx || ctx != (void *)the_ctx || ((fake_context *)ctx)->magic != FAKE_CTX_MAGIC) {
        fprintf(stderr, "%s: %s received the context %p, not the %p init returned\n",
                FAKE_CLAIMED_NAME, entry, ctx, (void *)the_ctx);
        abort();
    }
}
#endif

#if defined(FAKE_COUNT_INIT)
/* test_threads reads how often init ran through the device name: once per load, however
 * many threads race to the first use. The pause widens the window a second caller of
 * init would need. */
#include <time.h>
static int init_calls; /* read and written with __atomic builtins */
#endif

static ferry_status fake_init(FAKE_INIT_CTX int32_t *device_count, char *reason,
                              size_t reason_cap)
{
#if !defined(FAKE_V1)
    if (*ctx != NULL) {
        fprintf(stderr, "%s: init found *ctx = %p, not NULL\n", FAKE_CLAIMED_NAME, *ctx);
        abort();
    }
#if !defined(FAKE_INIT_FAIL)
    fake_context *c = malloc(sizeof *c);
    if (!c)
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "%s: no memory for the context",
                           FAKE_CLAIMED_NAME);
    c->magic = FAKE_CTX_MAGIC;
    the_ctx = c;
    *ctx = c;
#endif
#endif
#if defined(FAKE_COUNT_INIT)
    __atomic_add_fetch(&init_calls, 1, __ATOMIC_SEQ_CST);
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
#endif
    *device_count = 0;
#if defined(FAKE_INIT_FAIL)
    (void)reason;
    (void)reason_cap;
    return host->error(FERRY_ERR_BACKEND, "fakeDriverError: the fake driver refused to start");
#elif defined(FAKE_ZERO_DEVICES)
    snprintf(reason, reason_cap, "fakeNoDevice: no fake device present");
    return FERRY_OK;
#else
    (void)reason;
    (void)reason_cap;
    *device_count = FAKE_DEVICES;
    return FERRY_OK;
#endif
}

static void fake_shutdown(FAKE_CTX_ONLY)
{
#if !defined(FAKE_V1)
    /* After a failed init, shutdown gets what init left: nothing. */
    if (ctx || the_ctx)
        FAKE_CHECK_CTX();
    if (the_ctx)
        the_ctx->magic = 0;
    free(the_ctx);
    the_ctx = NULL;
#endif
    pthread_mutex_lock(&lock);
    uint64_t left = used;
    pthread_mutex_unlock(&lock);
    if (left)
        host->log(FERRY_LOG_WARN, FAKE_CLAIMED_NAME, "%llu bytes still allocated at shutdown",
                  (unsigned long long)left);
}

static ferry_status fake_check_device(const char *call, int32_t device)
{
    if (device < 0 || device >= FAKE_DEVICES)
        return host->error(FERRY_ERR_BACKEND, "%s: %s: invalid device index %d",
                           FAKE_CLAIMED_NAME, call, (int)device);
    return FERRY_OK;
}

static ferry_status fake_device_info(FAKE_CTX int32_t device, ferry_device_info *out)
{
    FAKE_CHECK_CTX();
    memset(out, 0, sizeof *out);
    ferry_status st = fake_check_device("device_info", device);
    if (st != FERRY_OK)
        return st;
#if defined(FAKE_COUNT_INIT)
    snprintf(out->name, sizeof out->name, "ferry fake device (init calls: %d)",
             __atomic_load_n(&init_calls, __ATOMIC_SEQ_CST));
#else
    snprintf(out->name, sizeof out->name, "ferry fake device");
#endif
    snprintf(out->vendor, sizeof out->vendor, "ferry tests");
    snprintf(out->backend, sizeof out->backend, "%s", FAKE_CLAIMED_NAME);
    snprintf(out->backend_version, sizeof out->backend_version, "0.0.1");
    pthread_mutex_lock(&lock);
    out->total_memory = FAKE_MEMORY;
    out->free_memory = FAKE_MEMORY - used;
    pthread_mutex_unlock(&lock);
    out->host_accessible = FAKE_HOST_ACCESSIBLE;
    return FERRY_OK;
}

/* The block size sits in front of the user pointer so free can account for it. */
static ferry_status fake_alloc(FAKE_CTX int32_t device, size_t nbytes, void **buffer)
{
    FAKE_CHECK_CTX();
    *buffer = NULL;
    ferry_status st = fake_check_device("alloc", device);
    if (st != FERRY_OK)
        return st;
    size_t rounded = (nbytes + FAKE_ALIGN - 1) / FAKE_ALIGN * FAKE_ALIGN;
    if (rounded < nbytes || rounded > FAKE_MEMORY)
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "%s:0: out of memory: %zu bytes",
                           FAKE_CLAIMED_NAME, nbytes);
    unsigned char *p = aligned_alloc(FAKE_ALIGN, FAKE_ALIGN + rounded);
    if (!p)
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "%s:0: out of memory: %zu bytes",
                           FAKE_CLAIMED_NAME, nbytes);
    memcpy(p, &rounded, sizeof rounded);
    pthread_mutex_lock(&lock);
    used += rounded;
    pthread_mutex_unlock(&lock);
    *buffer = fake_handle(p + FAKE_ALIGN);
    return FERRY_OK;
}

static void fake_free(FAKE_CTX int32_t device, void *buffer)
{
    FAKE_CHECK_CTX();
    if (!buffer)
        return;
    unsigned char *p = fake_mem(buffer) - FAKE_ALIGN;
    size_t rounded;
    memcpy(&rounded, p, sizeof rounded);
    pthread_mutex_lock(&lock);
    used -= rounded;
    pthread_mutex_unlock(&lock);
    free(p);
}

#if defined(FAKE_STAGE_PROBE)
/* Guarded by probe_lock. */
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_changed = PTHREAD_COND_INITIALIZER;
static bool probe_armed;
static size_t probe_count;
static fake_stage_call probe_calls[FAKE_STAGE_MAX_CALLS];
static bool probe_active[FAKE_STAGE_MAX_CALLS];

FERRY_BACKEND_EXPORT void fake_stage_arm(bool on);
void fake_stage_arm(bool on)
{
    pthread_mutex_lock(&probe_lock);
    probe_armed = on;
    probe_count = 0;
    memset(probe_active, 0, sizeof probe_active);
    pthread_mutex_unlock(&probe_lock);
}

FERRY_BACKEND_EXPORT size_t fake_stage_log(fake_stage_call *out, size_t cap);
size_t fake_stage_log(fake_stage_call *out, size_t cap)
{
    pthread_mutex_lock(&probe_lock);
    size_t n = probe_count;
    size_t kept = n < FAKE_STAGE_MAX_CALLS ? n : FAKE_STAGE_MAX_CALLS;
    memcpy(out, probe_calls, (kept < cap ? kept : cap) * sizeof *out);
    pthread_mutex_unlock(&probe_lock);
    return n;
}

/* Logs a call and waits, bounded, for one of the other direction to be in flight beside
 * it. Returns its slot, or -1 when not recording. */
static long probe_enter(fake_stage_dir dir, int32_t device, size_t nbytes)
{
    pthread_mutex_lock(&probe_lock);
    if (!probe_armed || probe_count >= FAKE_STAGE_MAX_CALLS) {
        probe_count += probe_armed;
        pthread_mutex_unlock(&probe_lock);
        return -1;
    }
    size_t me = probe_count++;
    probe_calls[me] = (fake_stage_call){dir, device, nbytes, false};
    probe_active[me] = true;
    for (size_t j = 0; j < me; j++)
        if (probe_active[j] && probe_calls[j].dir != dir)
            probe_calls[j].overlapped = probe_calls[me].overlapped = true;
    pthread_cond_broadcast(&probe_changed);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += FAKE_STAGE_WAIT_MS / 1000;
    deadline.tv_nsec += (long)(FAKE_STAGE_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (!probe_calls[me].overlapped &&
           pthread_cond_timedwait(&probe_changed, &probe_lock, &deadline) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&probe_lock);
    return (long)me;
}

static void probe_leave(long me)
{
    if (me < 0)
        return;
    pthread_mutex_lock(&probe_lock);
    probe_active[me] = false;
    pthread_mutex_unlock(&probe_lock);
}
#else
static long probe_enter(fake_stage_dir dir, int32_t device, size_t nbytes)
{
    (void)dir;
    (void)device;
    (void)nbytes;
    return -1;
}
static void probe_leave(long me)
{
    (void)me;
}
#endif

static ferry_status fake_copy_from_host(FAKE_CTX int32_t device, void *dst, size_t dst_offset,
                                        const void *src, size_t nbytes)
{
    FAKE_CHECK_CTX();
    long slot = probe_enter(FAKE_STAGE_FROM_HOST, device, nbytes);
    if (nbytes)
        memcpy(fake_mem(dst) + dst_offset, src, nbytes);
    probe_leave(slot);
    return FERRY_OK;
}

static ferry_status fake_copy_to_host(FAKE_CTX int32_t device, void *dst, const void *src,
                                      size_t src_offset, size_t nbytes)
{
    FAKE_CHECK_CTX();
    long slot = probe_enter(FAKE_STAGE_TO_HOST, device, nbytes);
    if (nbytes)
        memcpy(dst, fake_mem(src) + src_offset, nbytes);
    probe_leave(slot);
    return FERRY_OK;
}

static ferry_status fake_copy_on_device(FAKE_CTX int32_t device, void *dst, size_t dst_offset,
                                        const void *src, size_t src_offset, size_t nbytes)
{
    FAKE_CHECK_CTX();
    if (nbytes)
        memcpy(fake_mem(dst) + dst_offset, fake_mem(src) + src_offset, nbytes);
    return FERRY_OK;
}

static ferry_status fake_synchronize(FAKE_CTX int32_t device)
{
    FAKE_CHECK_CTX();
    return fake_check_device("synchronize", device);
}

#if defined(FAKE_ABI_1_0)
#include <ferry/dtype_info.h>

/* A 1.0 kernel entry, so descriptors the core builds today (with struct_size appended)
 * are read by a plugin that knows only the six members of ABI 1.0. Any strides. */
static ferry_status fake_fill(int32_t device, const ferry_kernel_tensor *out, const void *value)
{
    size_t es = ferry_dtype_info_size(out->dtype);
    if (!es || out->ndim < 0 || out->ndim > FERRY_MAX_DIMS)
        return host->error(FERRY_ERR_UNSUPPORTED, "%s: fill of dtype %d, %d dims",
                           FAKE_CLAIMED_NAME, (int)out->dtype, (int)out->ndim);
    int64_t idx[FERRY_MAX_DIMS] = {0}, n = 1;
    for (int d = 0; d < out->ndim; d++)
        n *= out->shape[d];
    unsigned char *base = fake_mem(out->buffer) + out->byte_offset;
    for (int64_t k = 0; k < n; k++) {
        int64_t off = 0;
        for (int d = 0; d < out->ndim; d++)
            off += idx[d] * out->strides[d];
        memcpy(base + off * (int64_t)es, value, es);
        for (int d = out->ndim - 1; d >= 0 && ++idx[d] == out->shape[d]; d--)
            idx[d] = 0;
    }
    return FERRY_OK;
}
#endif

#if defined(FAKE_1_1_EARLY)
/* Its named kernels read ferry_op_args.tensors as its header laid the array out: six
 * members, offsetof(ferry_kernel_tensor, struct_size) bytes apart. It logs what it read
 * and declines, so the op runs on the cpu. */
#define FAKE_EARLY_STRIDE offsetof(ferry_kernel_tensor, struct_size)
static int early_ndims[8], early_dtypes[8], early_count; /* guarded by lock */
static int64_t early_numel[8];

FERRY_BACKEND_EXPORT int fake_early_log(int *ndims, int *dtypes, int64_t *numel, int cap);
int fake_early_log(int *ndims, int *dtypes, int64_t *numel, int cap)
{
    pthread_mutex_lock(&lock);
    int n = early_count;
    for (int i = 0; i < n && i < cap; i++) {
        ndims[i] = early_ndims[i];
        dtypes[i] = early_dtypes[i];
        numel[i] = early_numel[i];
    }
    pthread_mutex_unlock(&lock);
    return n;
}

static ferry_status early_kernel(int32_t device, const ferry_op_args *args)
{
    const unsigned char *p = (const unsigned char *)args->tensors;
    pthread_mutex_lock(&lock);
    early_count = 0;
    for (int i = 0; i < args->ntensors && i < 8; i++) {
        ferry_kernel_tensor t;
        memset(&t, 0, sizeof t);
        memcpy(&t, p + (size_t)i * FAKE_EARLY_STRIDE, FAKE_EARLY_STRIDE);
        int64_t n = -1;
        if (t.ndim >= 0 && t.ndim <= FERRY_MAX_DIMS) {
            n = 1;
            for (int d = 0; d < t.ndim; d++)
                n *= t.shape[d];
        }
        early_ndims[i] = t.ndim;
        early_dtypes[i] = (int)t.dtype;
        early_numel[i] = n;
        early_count++;
    }
    pthread_mutex_unlock(&lock);
    return host->error(FERRY_ERR_UNSUPPORTED, "%s: named kernels decline", FAKE_CLAIMED_NAME);
}

static ferry_named_kernel early_get_kernel(int32_t device, const char *name)
{
    return early_kernel;
}
#endif

#if defined(FAKE_OLD_MINOR) || defined(FAKE_ABI_1_0) || defined(FAKE_1_1_EARLY)
/* Members past struct_size hold traps: a core that reads them from an old plugin instead
 * of treating them as absent calls one of these, and the test process stops loudly. */
static void fake_trap(const char *member)
{
    fprintf(stderr, "%s: the core called %s, which lies past struct_size %zu\n",
            FAKE_CLAIMED_NAME, member, (size_t)FAKE_OPS_SIZE);
    abort();
}
#if !defined(FAKE_1_1_EARLY)
static ferry_named_kernel trap_get_kernel(int32_t device, const char *name)
{
    fake_trap("get_kernel");
    return NULL;
}
#endif
static ferry_status trap_binary_scalar(int32_t device, ferry_binary_op op,
                                       const ferry_kernel_tensor *out,
                                       const ferry_kernel_tensor *a, const ferry_kernel_scalar *b)
{
    fake_trap("binary_scalar");
    return FERRY_ERR_BACKEND;
}
#endif
#if defined(FAKE_OLD_MINOR)
static ferry_status trap_copy_peer(int32_t a, void *b, size_t c, int32_t d, const void *e,
                                   size_t f, size_t g)
{
    fake_trap("copy_peer");
    return FERRY_ERR_BACKEND;
}
static ferry_status trap_host_alloc(size_t nbytes, void **ptr)
{
    fake_trap("host_alloc");
    return FERRY_ERR_BACKEND;
}
static void trap_host_free(void *ptr)
{
    fake_trap("host_free");
}
static bool trap_supports(int32_t device, ferry_op op, int subop, const ferry_dtype *dtypes,
                          int ndtypes)
{
    fake_trap("supports");
    return false;
}
static ferry_status trap_fill(int32_t device, const ferry_kernel_tensor *out,
                              const void *value)
{
    fake_trap("fill");
    return FERRY_ERR_BACKEND;
}
static ferry_status trap_cast(int32_t device, const ferry_kernel_tensor *out,
                              const ferry_kernel_tensor *in)
{
    fake_trap("cast");
    return FERRY_ERR_BACKEND;
}
static ferry_status trap_copy_strided(int32_t device, const ferry_kernel_tensor *out,
                                      const ferry_kernel_tensor *in)
{
    fake_trap("copy_strided");
    return FERRY_ERR_BACKEND;
}
static ferry_status trap_unary(int32_t device, ferry_unary_op op, const ferry_kernel_tensor *out,
                               const ferry_kernel_tensor *in)
{
    fake_trap("unary");
    return FERRY_ERR_BACKEND;
}
static ferry_status trap_binary(int32_t device, ferry_binary_op op,
                                const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                const ferry_kernel_tensor *b)
{
    fake_trap("binary");
    return FERRY_ERR_BACKEND;
}
static ferry_status trap_reduce(int32_t device, ferry_reduce_op op,
                                const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    fake_trap("reduce");
    return FERRY_ERR_BACKEND;
}
static ferry_status trap_matmul(int32_t device, const ferry_kernel_tensor *out,
                                const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    fake_trap("matmul");
    return FERRY_ERR_BACKEND;
}
#endif

#if defined(FAKE_CTX_PROBE)
/* Named kernels for every name that check the context reaches them (ferry_op_args.ctx)
 * as it reaches get_kernel, count, and decline, so the op runs on the cpu. */
static int probe_gets, probe_runs; /* __atomic builtins */

FERRY_BACKEND_EXPORT void fake_ctx_probe_counts(int *gets, int *runs);
void fake_ctx_probe_counts(int *gets, int *runs)
{
    *gets = __atomic_load_n(&probe_gets, __ATOMIC_SEQ_CST);
    *runs = __atomic_load_n(&probe_runs, __ATOMIC_SEQ_CST);
}

static ferry_status probe_kernel(int32_t device, const ferry_op_args *args)
{
    if (args->struct_size < offsetof(ferry_op_args, ctx) + sizeof args->ctx) {
        fprintf(stderr, "%s: ferry_op_args of %zu bytes has no ctx\n", FAKE_CLAIMED_NAME,
                args->struct_size);
        abort();
    }
    void *ctx = args->ctx;
    FAKE_CHECK_CTX();
    __atomic_add_fetch(&probe_runs, 1, __ATOMIC_SEQ_CST);
    return host->error(FERRY_ERR_UNSUPPORTED, "%s: named kernels decline", FAKE_CLAIMED_NAME);
}

static ferry_named_kernel probe_get_kernel(void *ctx, int32_t device, const char *name)
{
    FAKE_CHECK_CTX();
    __atomic_add_fetch(&probe_gets, 1, __ATOMIC_SEQ_CST);
    return probe_kernel;
}
#endif

#if defined(FAKE_NEW_MINOR)
static void fake_future_entry(void)
{
    fprintf(stderr, "%s: the core called an entry of a newer ABI minor it cannot know\n",
            FAKE_CLAIMED_NAME);
    abort();
}
#endif

/* The table as a plugin of the next minor lays it out: today's members, then new ones. */
typedef struct fake_future_ops {
    fake_ops ops;
    void (*future_entry[2])(void);
} fake_future_ops;

static const fake_future_ops fake_table = {
    .ops = {
        .abi_major = FAKE_OPS_MAJOR,
        .abi_minor = FAKE_OPS_MINOR,
        .struct_size = FAKE_OPS_SIZE,
        .name = FAKE_CLAIMED_NAME,
        .version = "0.0.1",
        .init = fake_init,
        .shutdown = fake_shutdown,
        .device_info = fake_device_info,
        .alloc = fake_alloc,
        .free = fake_free,
        .copy_from_host = fake_copy_from_host,
        .copy_to_host = fake_copy_to_host,
        .copy_on_device = fake_copy_on_device,
        .synchronize = fake_synchronize,
#if defined(FAKE_OLD_MINOR)
        .copy_peer = trap_copy_peer,
        .host_alloc = trap_host_alloc,
        .host_free = trap_host_free,
        .supports = trap_supports,
        .fill = trap_fill,
        .cast = trap_cast,
        .copy_strided = trap_copy_strided,
        .unary = trap_unary,
        .binary = trap_binary,
        .reduce = trap_reduce,
        .matmul = trap_matmul,
        .get_kernel = trap_get_kernel,
        .binary_scalar = trap_binary_scalar,
#elif defined(FAKE_1_1_EARLY)
        .get_kernel = early_get_kernel,
        .dlpack_device_type = 0,
        .handles_are_addresses = FAKE_HOST_ACCESSIBLE,
        .binary_scalar = trap_binary_scalar,
#elif defined(FAKE_ABI_1_0)
        .fill = fake_fill,
        .get_kernel = trap_get_kernel,
        .binary_scalar = trap_binary_scalar,
#else
        /* kDLExtDev for the host-accessible variants: DLPack exchange goes by what the
         * plugin declares, not by its name. */
        .dlpack_device_type = FAKE_HOST_ACCESSIBLE ? 12 : 0,
        .handles_are_addresses = FAKE_HOST_ACCESSIBLE,
#if defined(FAKE_CTX_PROBE)
        .get_kernel = probe_get_kernel,
#endif
#endif
    },
#if defined(FAKE_NEW_MINOR)
    .future_entry = {fake_future_entry, fake_future_entry},
#endif
};
static const fake_ops *const fake_ops_ptr = &fake_table.ops;

#if defined(FAKE_NO_ENTRY)
/* A plausible mistake: the entry exported under another name. */
FERRY_BACKEND_EXPORT const fake_ops *ferry_backend_entry_v2(const ferry_host_api *h);
const fake_ops *ferry_backend_entry_v2(const ferry_host_api *h)
{
    host = h;
    return fake_ops_ptr;
}
#else
FERRY_BACKEND_EXPORT const fake_ops *FAKE_ENTRY(const ferry_host_api *h);
const fake_ops *FAKE_ENTRY(const ferry_host_api *h)
{
#if !defined(FAKE_ABI_MAJOR) && !defined(FAKE_V1_BAD_MAJOR)
    /* A core hands each major's plugins the host table of that major. */
    if (h->abi_major != FAKE_OPS_MAJOR) {
        fprintf(stderr, "%s: built for ABI major %d, handed a host of major %u\n",
                FAKE_CLAIMED_NAME, FAKE_OPS_MAJOR, h->abi_major);
        return NULL;
    }
#endif
    host = h;
#if defined(FAKE_NULL_ENTRY)
    (void)fake_ops_ptr;
    h->error(FERRY_ERR_BACKEND, "fakeEntryError: the fake plugin declined to register");
    return NULL;
#else
    return fake_ops_ptr;
#endif
}
#endif

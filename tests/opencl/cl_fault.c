/* libferry_test_clfault.so: a test-only interposer between the OpenCL plugin and the ICD
 * loader. Preloaded (LD_PRELOAD), its definitions of the OpenCL entries below come first
 * in the global scope, so the plugin's calls (it links libOpenCL.so and is dlopened
 * RTLD_LOCAL, without RTLD_DEEPBIND) bind here; each forwards to the loader's own entry,
 * found with dlsym in libOpenCL.so.1, except the one call it was asked to fail.
 *
 *   FERRY_TEST_CL_FAULT="clEnqueueMarkerWithWaitList:1:CL_OUT_OF_RESOURCES[,entry:N:ERR]"
 *
 * fails the Nth call (from 1) of each named entry with that error (a CL_* name or a
 * number) and without calling the driver, as a driver that refuses the command does. The
 * counts run from when the variable is read (at load) or from the last
 * ferry_clfault_arm(), which takes the same text, so one process can run many cases.
 * The count is over every caller in the process: the plugin, and CLBlast for matmul.
 *
 * It also keeps the reference counts of the command queues, buffers and events made
 * through these entries, so a test can check that a failure path released everything it
 * made (ferry_clfault_live), which LeakSanitizer cannot see inside a driver that keeps
 * its objects on lists of its own. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#define CLF_EXPORT __attribute__((visibility("default")))

/* ---- faults ---------------------------------------------------------------------------- */

#define CLF_MAX_FAULTS 8

typedef struct clf_fault {
    char entry[64];
    long at;    /* fail call number `at` */
    cl_int err;
    bool fired;
} clf_fault;

/* Entries whose calls are counted (and may fail). */
static const char *const clf_entries[] = {
    "clCreateCommandQueue",    "clEnqueueMarkerWithWaitList", "clEnqueueBarrierWithWaitList",
    "clCreateBuffer",          "clEnqueueMapBuffer",          "clEnqueueUnmapMemObject",
    "clEnqueueWriteBuffer",    "clEnqueueReadBuffer",         "clFinish",
    "clFlush",                 "clWaitForEvents",
};
#define CLF_NENTRIES (sizeof clf_entries / sizeof clf_entries[0])

static pthread_mutex_t clf_lock = PTHREAD_MUTEX_INITIALIZER;
static clf_fault clf_faults[CLF_MAX_FAULTS];
static int clf_nfaults;
static long clf_calls[CLF_NENTRIES];

static const struct {
    const char *name;
    cl_int code;
} clf_codes[] = {
    {"CL_DEVICE_NOT_AVAILABLE", CL_DEVICE_NOT_AVAILABLE},
    {"CL_MEM_OBJECT_ALLOCATION_FAILURE", CL_MEM_OBJECT_ALLOCATION_FAILURE},
    {"CL_OUT_OF_RESOURCES", CL_OUT_OF_RESOURCES},
    {"CL_OUT_OF_HOST_MEMORY", CL_OUT_OF_HOST_MEMORY},
    {"CL_MAP_FAILURE", CL_MAP_FAILURE},
    {"CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
     CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST},
    {"CL_INVALID_VALUE", CL_INVALID_VALUE},
    {"CL_INVALID_CONTEXT", CL_INVALID_CONTEXT},
    {"CL_INVALID_COMMAND_QUEUE", CL_INVALID_COMMAND_QUEUE},
    {"CL_INVALID_MEM_OBJECT", CL_INVALID_MEM_OBJECT},
    {"CL_INVALID_EVENT_WAIT_LIST", CL_INVALID_EVENT_WAIT_LIST},
    {"CL_INVALID_EVENT", CL_INVALID_EVENT},
    {"CL_INVALID_OPERATION", CL_INVALID_OPERATION},
};

static int clf_entry_index(const char *name, size_t len)
{
    for (size_t i = 0; i < CLF_NENTRIES; i++)
        if (strlen(clf_entries[i]) == len && !strncmp(clf_entries[i], name, len))
            return (int)i;
    return -1;
}

/* Parses "entry:N:ERR[,...]" into `out`; -1, saying why on stderr, when it is not that. */
static int clf_parse(const char *spec, clf_fault *out, int *n)
{
    *n = 0;
    for (const char *p = spec; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[160];
        if (len >= sizeof item || *n == CLF_MAX_FAULTS)
            goto bad;
        memcpy(item, p, len);
        item[len] = '\0';
        char *c1 = strchr(item, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2 || clf_entry_index(item, (size_t)(c1 - item)) < 0)
            goto bad;
        clf_fault *f = &out[(*n)++];
        memset(f, 0, sizeof *f);
        memcpy(f->entry, item, (size_t)(c1 - item));
        char *rest;
        f->at = strtol(c1 + 1, &rest, 10);
        if (rest != c2 || f->at < 1)
            goto bad;
        const char *err = c2 + 1;
        bool known = false;
        for (size_t i = 0; i < sizeof clf_codes / sizeof clf_codes[0] && !known; i++)
            if (!strcmp(err, clf_codes[i].name))
                f->err = clf_codes[i].code, known = true;
        if (!known) {
            long v = strtol(err, &rest, 10);
            if (!*err || *rest || v >= 0)
                goto bad;
            f->err = (cl_int)v;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
bad:
    fprintf(stderr,
            "cl_fault: cannot read '%s': expected entry:N:ERROR[,...] with an entry this "
            "shim wraps, N >= 1 and a CL_* error name or negative code\n",
            spec);
    return -1;
}

/* Arms the faults of `spec` (NULL or "": none) and restarts every count. */
CLF_EXPORT int ferry_clfault_arm(const char *spec)
{
    clf_fault parsed[CLF_MAX_FAULTS];
    int n = 0;
    if (spec && clf_parse(spec, parsed, &n) != 0)
        return -1;
    pthread_mutex_lock(&clf_lock);
    memcpy(clf_faults, parsed, sizeof parsed);
    clf_nfaults = n;
    memset(clf_calls, 0, sizeof clf_calls);
    pthread_mutex_unlock(&clf_lock);
    return 0;
}

/* Calls of `entry` since the last arm; -1 for an entry this shim does not count. */
CLF_EXPORT long ferry_clfault_calls(const char *entry)
{
    int i = clf_entry_index(entry, strlen(entry));
    if (i < 0)
        return -1;
    pthread_mutex_lock(&clf_lock);
    long n = clf_calls[i];
    pthread_mutex_unlock(&clf_lock);
    return n;
}

/* Armed faults that have not fired yet. */
CLF_EXPORT int ferry_clfault_pending(void)
{
    pthread_mutex_lock(&clf_lock);
    int n = 0;
    for (int i = 0; i < clf_nfaults; i++)
        n += !clf_faults[i].fired;
    pthread_mutex_unlock(&clf_lock);
    return n;
}

/* Counts a call of entry `idx`; CL_SUCCESS, or the error it is to fail with. */
static cl_int clf_hit(int idx)
{
    pthread_mutex_lock(&clf_lock);
    long n = ++clf_calls[idx];
    cl_int err = CL_SUCCESS;
    for (int i = 0; i < clf_nfaults; i++)
        if (!clf_faults[i].fired && clf_faults[i].at == n &&
            !strcmp(clf_faults[i].entry, clf_entries[idx])) {
            clf_faults[i].fired = true;
            err = clf_faults[i].err;
        }
    pthread_mutex_unlock(&clf_lock);
    return err;
}

__attribute__((constructor)) static void clf_init(void)
{
    const char *spec = getenv("FERRY_TEST_CL_FAULT");
    if (spec && *spec && ferry_clfault_arm(spec) != 0)
        abort(); /* a test that asked for faults must not run without them */
}

/* ---- reference counts of what was made here ------------------------------------------ */

enum { CLF_QUEUE, CLF_MEM, CLF_EVENT };
static const char *const clf_kind_names[] = {"cl_command_queue", "cl_mem", "cl_event"};

#define CLF_MAX_LIVE 4096

static struct {
    void *obj;
    int kind;
    long refs;
    char made_by[40];
} clf_live[CLF_MAX_LIVE];
static int clf_nlive;
static bool clf_overflow;

static void clf_made(void *obj, int kind, const char *by)
{
    if (!obj)
        return;
    pthread_mutex_lock(&clf_lock);
    if (clf_nlive == CLF_MAX_LIVE) {
        clf_overflow = true;
    } else {
        clf_live[clf_nlive].obj = obj;
        clf_live[clf_nlive].kind = kind;
        clf_live[clf_nlive].refs = 1;
        snprintf(clf_live[clf_nlive].made_by, sizeof clf_live[0].made_by, "%s", by);
        clf_nlive++;
    }
    pthread_mutex_unlock(&clf_lock);
}

/* +1 for a retain, -1 for a release of an object made here (others are not followed). */
static void clf_ref(void *obj, long delta)
{
    pthread_mutex_lock(&clf_lock);
    for (int i = 0; i < clf_nlive; i++)
        if (clf_live[i].obj == obj) {
            if ((clf_live[i].refs += delta) <= 0)
                clf_live[i] = clf_live[--clf_nlive];
            break;
        }
    pthread_mutex_unlock(&clf_lock);
}

/* How many objects made through this shim are still referenced, each described in
 * `buf` ("cl_mem from clCreateBuffer x1; ..."). */
CLF_EXPORT int ferry_clfault_live(char *buf, size_t cap)
{
    pthread_mutex_lock(&clf_lock);
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < clf_nlive && used + 1 < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s from %s (%ld refs)", i ? "; " : "",
                         clf_kind_names[clf_live[i].kind], clf_live[i].made_by,
                         clf_live[i].refs);
        used += w > 0 ? (size_t)w : 0;
    }
    int n = clf_nlive + (clf_overflow ? 1 : 0);
    pthread_mutex_unlock(&clf_lock);
    return n;
}

/* ---- the entries ------------------------------------------------------------------------ */

/* The ICD loader, asked by name: this library uses none of its symbols itself, so a
 * linker that drops unneeded libraries leaves libOpenCL out of its dependencies and
 * RTLD_NEXT would not find it when the plugin is the only one to load it (RTLD_LOCAL). */
static void *clf_loader(void)
{
    static void *h;
    if (!h && !(h = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "cl_fault: dlopen(libOpenCL.so.1): %s\n", dlerror());
        abort();
    }
    return h;
}

/* The loader's definition of `name`, looked up on first use. */
#define REAL(name)                                                                          \
    static __typeof__(&name) real_;                                                        \
    if (!real_) {                                                                          \
        real_ = (__typeof__(&name))dlsym(clf_loader(), #name);                             \
        if (!real_) {                                                                      \
            fprintf(stderr, "cl_fault: dlsym(libOpenCL, %s): %s\n", #name, dlerror());     \
            abort();                                                                       \
        }                                                                                  \
    }

#define HIT(name) clf_hit(clf_entry_index(#name, sizeof #name - 1))

/* An event handed back to the caller is one more object to follow. */
static void clf_event_out(cl_int err, cl_event *event, const char *by)
{
    if (err == CL_SUCCESS && event)
        clf_made(*event, CLF_EVENT, by);
}

CLF_EXPORT cl_command_queue clCreateCommandQueue(cl_context context, cl_device_id device,
                                                 cl_command_queue_properties properties,
                                                 cl_int *errcode_ret)
{
    REAL(clCreateCommandQueue);
    cl_int err = HIT(clCreateCommandQueue);
    if (err != CL_SUCCESS) {
        if (errcode_ret)
            *errcode_ret = err;
        return NULL;
    }
    cl_command_queue q = real_(context, device, properties, errcode_ret);
    clf_made(q, CLF_QUEUE, "clCreateCommandQueue");
    return q;
}

CLF_EXPORT cl_int clRetainCommandQueue(cl_command_queue q)
{
    REAL(clRetainCommandQueue);
    cl_int err = real_(q);
    if (err == CL_SUCCESS)
        clf_ref(q, 1);
    return err;
}

CLF_EXPORT cl_int clReleaseCommandQueue(cl_command_queue q)
{
    REAL(clReleaseCommandQueue);
    cl_int err = real_(q);
    if (err == CL_SUCCESS)
        clf_ref(q, -1);
    return err;
}

CLF_EXPORT cl_mem clCreateBuffer(cl_context context, cl_mem_flags flags, size_t size,
                                 void *host_ptr, cl_int *errcode_ret)
{
    REAL(clCreateBuffer);
    cl_int err = HIT(clCreateBuffer);
    if (err != CL_SUCCESS) {
        if (errcode_ret)
            *errcode_ret = err;
        return NULL;
    }
    cl_mem m = real_(context, flags, size, host_ptr, errcode_ret);
    clf_made(m, CLF_MEM, "clCreateBuffer");
    return m;
}

CLF_EXPORT cl_int clRetainMemObject(cl_mem m)
{
    REAL(clRetainMemObject);
    cl_int err = real_(m);
    if (err == CL_SUCCESS)
        clf_ref(m, 1);
    return err;
}

CLF_EXPORT cl_int clReleaseMemObject(cl_mem m)
{
    REAL(clReleaseMemObject);
    cl_int err = real_(m);
    if (err == CL_SUCCESS)
        clf_ref(m, -1);
    return err;
}

CLF_EXPORT cl_int clRetainEvent(cl_event e)
{
    REAL(clRetainEvent);
    cl_int err = real_(e);
    if (err == CL_SUCCESS)
        clf_ref(e, 1);
    return err;
}

CLF_EXPORT cl_int clReleaseEvent(cl_event e)
{
    REAL(clReleaseEvent);
    cl_int err = real_(e);
    if (err == CL_SUCCESS)
        clf_ref(e, -1);
    return err;
}

CLF_EXPORT cl_int clEnqueueMarkerWithWaitList(cl_command_queue q, cl_uint n,
                                              const cl_event *wait, cl_event *event)
{
    REAL(clEnqueueMarkerWithWaitList);
    cl_int err = HIT(clEnqueueMarkerWithWaitList);
    if (err != CL_SUCCESS)
        return err;
    err = real_(q, n, wait, event);
    clf_event_out(err, event, "clEnqueueMarkerWithWaitList");
    return err;
}

CLF_EXPORT cl_int clEnqueueBarrierWithWaitList(cl_command_queue q, cl_uint n,
                                               const cl_event *wait, cl_event *event)
{
    REAL(clEnqueueBarrierWithWaitList);
    cl_int err = HIT(clEnqueueBarrierWithWaitList);
    if (err != CL_SUCCESS)
        return err;
    err = real_(q, n, wait, event);
    clf_event_out(err, event, "clEnqueueBarrierWithWaitList");
    return err;
}

CLF_EXPORT void *clEnqueueMapBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
                                    cl_map_flags flags, size_t offset, size_t size, cl_uint n,
                                    const cl_event *wait, cl_event *event, cl_int *errcode_ret)
{
    REAL(clEnqueueMapBuffer);
    cl_int err = HIT(clEnqueueMapBuffer);
    if (err != CL_SUCCESS) {
        if (errcode_ret)
            *errcode_ret = err;
        return NULL;
    }
    cl_int e2 = CL_SUCCESS;
    void *p = real_(q, m, blocking, flags, offset, size, n, wait, event, &e2);
    if (errcode_ret)
        *errcode_ret = e2;
    clf_event_out(e2, event, "clEnqueueMapBuffer");
    return p;
}

CLF_EXPORT cl_int clEnqueueUnmapMemObject(cl_command_queue q, cl_mem m, void *ptr, cl_uint n,
                                          const cl_event *wait, cl_event *event)
{
    REAL(clEnqueueUnmapMemObject);
    cl_int err = HIT(clEnqueueUnmapMemObject);
    if (err != CL_SUCCESS)
        return err;
    err = real_(q, m, ptr, n, wait, event);
    clf_event_out(err, event, "clEnqueueUnmapMemObject");
    return err;
}

CLF_EXPORT cl_int clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
                                       size_t offset, size_t size, const void *ptr, cl_uint n,
                                       const cl_event *wait, cl_event *event)
{
    REAL(clEnqueueWriteBuffer);
    cl_int err = HIT(clEnqueueWriteBuffer);
    if (err != CL_SUCCESS)
        return err;
    err = real_(q, m, blocking, offset, size, ptr, n, wait, event);
    clf_event_out(err, event, "clEnqueueWriteBuffer");
    return err;
}

CLF_EXPORT cl_int clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
                                      size_t offset, size_t size, void *ptr, cl_uint n,
                                      const cl_event *wait, cl_event *event)
{
    REAL(clEnqueueReadBuffer);
    cl_int err = HIT(clEnqueueReadBuffer);
    if (err != CL_SUCCESS)
        return err;
    err = real_(q, m, blocking, offset, size, ptr, n, wait, event);
    clf_event_out(err, event, "clEnqueueReadBuffer");
    return err;
}

CLF_EXPORT cl_int clFinish(cl_command_queue q)
{
    REAL(clFinish);
    cl_int err = HIT(clFinish);
    return err != CL_SUCCESS ? err : real_(q);
}

CLF_EXPORT cl_int clFlush(cl_command_queue q)
{
    REAL(clFlush);
    cl_int err = HIT(clFlush);
    return err != CL_SUCCESS ? err : real_(q);
}

CLF_EXPORT cl_int clWaitForEvents(cl_uint n, const cl_event *events)
{
    REAL(clWaitForEvents);
    cl_int err = HIT(clWaitForEvents);
    return err != CL_SUCCESS ? err : real_(n, events);
}

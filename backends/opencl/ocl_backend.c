/* The OpenCL backend's plugin entry and device management: every device of every
 * platform as opencl:0..N-1, one context and default in-order queue per device (made on
 * first use), buffers as cl_mem, and the copies between host and device. Kernels live in
 * ocl_kernels.c and ocl_matmul.c; further queues, events, pinned memory and the
 * asynchronous copies in ocl_queue.c. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h"

#define OCL_VERSION FERRY_VERSION_STRING

const ferry_host_api *ocl_host;
ocl_device *ocl_devices;
int32_t ocl_ndevices;
int ocl_matmul_mode;
char ocl_extra_options[256];

/* A registry may init this library a second time while the first instance still has
 * live buffers (dlopen hands back the same copy); state goes with the last shutdown. */
static int ocl_instances;
static pthread_mutex_t ocl_init_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- environment ---------------------------------------------------------------------
 * Read once per plugin load (ferry_shutdown() with no live tensors unloads the plugin,
 * so the next use reads them again):
 *   FERRY_OPENCL_CACHE_DIR      program binary cache folder (ocl_program.c); read on use
 *   FERRY_OPENCL_HIDE_FP64=1    treat every device as lacking cl_khr_fp64 (tests)
 *   FERRY_OPENCL_MAP_COPIES=1   host copies through clEnqueueMapBuffer on host-unified
 *                               devices (see the copies below)
 *   FERRY_OPENCL_MATMUL         clblast | kernel: one matmul path whatever the size
 *   FERRY_OPENCL_BUILD_OPTIONS  appended to the program's build options
 *   FERRY_OPENCL_REDUCE         wg | thread: one shape for sums over one dim on every
 *                               device (ocl_kernels.c; GPUs take wg); read on use
 *   FERRY_OPENCL_DENSE          run | grid: one shape for dense elementwise and random
 *                               launches on every device (ocl_kernels.c, ocl_random.c;
 *                               GPUs take grid); read on use
 *   FERRY_OPENCL_SORT_BITONIC   1: CPU devices sort with the GPUs' bitonic steps, not by
 *                               merging tiles (ocl_sort.c; tests) */

/* "1", "yes", "true", "on" (any case) are true; unset or anything else is `def`. */
static bool ocl_env_flag(const char *var, bool def)
{
    const char *s = getenv(var);
    if (!s || !*s)
        return def;
    if (!strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "true") ||
        !strcasecmp(s, "on"))
        return true;
    if (!strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "false") ||
        !strcasecmp(s, "off"))
        return false;
    return def;
}

/* ---- device properties ------------------------------------------------------------ */

static void ocl_info_string(cl_device_id id, cl_device_info what, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(id, what, cap, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[cap - 1] = '\0';
}

/* Whether the space-separated extension list names `ext` exactly. */
static bool ocl_has_extension(const char *list, const char *ext)
{
    size_t n = strlen(ext);
    for (const char *p = list; (p = strstr(p, ext)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

/* Reads everything init reports about one device. */
static void ocl_describe(ocl_device *d, bool hide_fp64)
{
    ocl_info_string(d->id, CL_DEVICE_NAME, d->name, sizeof d->name);
    ocl_info_string(d->id, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
    ocl_info_string(d->id, CL_DEVICE_VERSION, d->device_version, sizeof d->device_version);
    ocl_info_string(d->id, CL_DRIVER_VERSION, d->driver_version, sizeof d->driver_version);
    if (clGetPlatformInfo(d->platform, CL_PLATFORM_NAME, sizeof d->platform_name,
                          d->platform_name, NULL) != CL_SUCCESS)
        d->platform_name[0] = '\0';
    if (clGetPlatformInfo(d->platform, CL_PLATFORM_VERSION, sizeof d->platform_version,
                          d->platform_version, NULL) != CL_SUCCESS)
        d->platform_version[0] = '\0';
    d->platform_name[sizeof d->platform_name - 1] = '\0';
    d->platform_version[sizeof d->platform_version - 1] = '\0';

    clGetDeviceInfo(d->id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof d->global_mem, &d->global_mem,
                    NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof d->max_alloc, &d->max_alloc,
                    NULL);
    cl_bool unified = CL_FALSE;
    clGetDeviceInfo(d->id, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    d->unified = unified == CL_TRUE;
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    d->cr_divide = (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
    cl_device_type type = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    d->gpu = (type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
    d->compute_units = 1;
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof d->compute_units,
                    &d->compute_units, NULL);
    if (d->compute_units == 0)
        d->compute_units = 1;

    char cver[64];
    ocl_info_string(d->id, CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
    int major = 1, minor = 0;
    if (sscanf(cver, "OpenCL C %d.%d", &major, &minor) != 2)
        major = 1, minor = 0;
    d->opencl12 = major > 1 || (major == 1 && minor >= 2);

    size_t len = 0;
    char *ext = NULL;
    if (clGetDeviceInfo(d->id, CL_DEVICE_EXTENSIONS, 0, NULL, &len) == CL_SUCCESS && len &&
        (ext = calloc(1, len + 1)) != NULL &&
        clGetDeviceInfo(d->id, CL_DEVICE_EXTENSIONS, len, ext, NULL) == CL_SUCCESS) {
        d->fp64 = ocl_has_extension(ext, "cl_khr_fp64") && !hide_fp64;
        d->fp16 = ocl_has_extension(ext, "cl_khr_fp16");
    }
    free(ext);
}

/* ---- init and shutdown ------------------------------------------------------------ */

/* Keeps the library that defines `sym` mapped for the rest of the process, even after
 * this plugin is unloaded. The OpenCL ICD loader keeps the drivers it opened loaded and
 * is not written to be unloaded and loaded again under them, and CLBlast's static
 * caches (with the C++ runtime under them) would be torn down and rebuilt on every
 * reload. Only this plugin itself is unloaded and initialised again (ferry_shutdown). */
static void ocl_pin_library_of(void *sym)
{
    Dl_info info;
    if (!dladdr(sym, &info) || !info.dli_fname)
        return;
    void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    if (h)
        dlclose(h); /* RTLD_NODELETE stays with the library */
}

static void ocl_release_devices(void)
{
    for (int32_t i = 0; i < ocl_ndevices; i++) {
        ocl_device *d = &ocl_devices[i];
        ocl_queue_release_all(d);
        if (d->defq.cq)
            clFinish(d->defq.cq);
        ocl_program_release(d);
        if (d->defq.scratch)
            clReleaseMemObject(d->defq.scratch);
        if (d->defq.cq)
            clReleaseCommandQueue(d->defq.cq);
        if (d->context)
            clReleaseContext(d->context);
        pthread_mutex_destroy(&d->lock);
    }
    free(ocl_devices);
    ocl_devices = NULL;
    ocl_ndevices = 0;
}

static ferry_status ocl_init(void **ctx, int32_t *device_count, char *reason, size_t reason_cap)
{
    *device_count = 0;
    if (reason && reason_cap)
        reason[0] = '\0';
    pthread_mutex_lock(&ocl_init_lock);
    if (ocl_instances++ > 0) {
        *device_count = ocl_ndevices;
        pthread_mutex_unlock(&ocl_init_lock);
        return FERRY_OK;
    }
    ocl_pin_library_of((void *)&clGetPlatformIDs);
    ocl_queue_generation();
    ocl_pin_library_of(ocl_clblast_symbol());
    /* Read once per load, so a test sets it, calls ferry_shutdown() and sees it. */
    bool hide_fp64 = ocl_env_flag("FERRY_OPENCL_HIDE_FP64", false);
    /* Mapping measured no faster than read/write on PoCL (see the copies below). */
    bool map_copies = ocl_env_flag("FERRY_OPENCL_MAP_COPIES", false);
    /* Which matmul path to take regardless of size, for tests and benchmarks. */
    const char *mm = getenv("FERRY_OPENCL_MATMUL");
    ocl_matmul_mode = !mm ? 0 : !strcmp(mm, "clblast") ? 1 : !strcmp(mm, "kernel") ? 2 : 0;
    const char *extra = getenv("FERRY_OPENCL_BUILD_OPTIONS");
    snprintf(ocl_extra_options, sizeof ocl_extra_options, "%s", extra ? extra : "");

    cl_uint nplat = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &nplat);
    if (err != CL_SUCCESS || nplat == 0) {
        /* No ICD registered is not a failure of ferry: the backend has no devices. */
        if (reason && reason_cap)
            snprintf(reason, reason_cap,
                     "clGetPlatformIDs: %s (%d): no OpenCL platform is installed (no ICD "
                     "registered in /etc/OpenCL/vendors)",
                     ocl_error_name(err == CL_SUCCESS ? -1001 : err),
                     err == CL_SUCCESS ? -1001 : (int)err);
        pthread_mutex_unlock(&ocl_init_lock);
        return FERRY_OK;
    }
    cl_platform_id *plats = calloc(nplat, sizeof *plats);
    if (!plats) {
        ocl_instances--;
        pthread_mutex_unlock(&ocl_init_lock);
        return ocl_host->error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory listing platforms");
    }
    err = clGetPlatformIDs(nplat, plats, NULL);
    if (err != CL_SUCCESS) {
        free(plats);
        ocl_instances--;
        pthread_mutex_unlock(&ocl_init_lock);
        return ocl_host->error(FERRY_ERR_BACKEND, "clGetPlatformIDs failed: %s (%d)",
                               ocl_error_name(err), (int)err);
    }

    /* Platform order, then device order within each: stable across runs. */
    size_t cap = 0, n = 0;
    ocl_device *devs = NULL;
    cl_int last_err = CL_SUCCESS;
    for (cl_uint p = 0; p < nplat; p++) {
        cl_uint nd = 0;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
        if (err != CL_SUCCESS || nd == 0) {
            last_err = err == CL_SUCCESS ? CL_DEVICE_NOT_FOUND : err;
            continue;
        }
        cl_device_id *ids = calloc(nd, sizeof *ids);
        if (!ids || clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL) != CL_SUCCESS) {
            free(ids);
            continue;
        }
        for (cl_uint i = 0; i < nd; i++) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                ocl_device *grown = realloc(devs, ncap * sizeof *grown);
                if (!grown)
                    break;
                devs = grown;
                cap = ncap;
            }
            ocl_device *d = &devs[n];
            memset(d, 0, sizeof *d);
            d->platform = plats[p];
            d->id = ids[i];
            d->index = (int32_t)n;
            pthread_mutex_init(&d->lock, NULL);
            ocl_describe(d, hide_fp64);
            d->map_copies = map_copies && d->unified;
            n++;
        }
        free(ids);
    }
    free(plats);
    ocl_devices = devs;
    ocl_ndevices = (int32_t)n;
    if (n == 0 && reason && reason_cap)
        snprintf(reason, reason_cap, "no device on %u OpenCL platform%s (clGetDeviceIDs: %s (%d))",
                 nplat, nplat == 1 ? "" : "s", ocl_error_name(last_err), (int)last_err);
    for (size_t i = 0; i < n; i++)
        ocl_host->log(FERRY_LOG_DEBUG, "opencl",
                      "opencl:%zu: %s (%s; %s; driver %s): %llu MiB, fp64 %s%s, fp16 %s, "
                      "host-unified %s",
                      i, devs[i].name, devs[i].platform_name, devs[i].device_version,
                      devs[i].driver_version, (unsigned long long)(devs[i].global_mem >> 20),
                      devs[i].fp64 ? "yes" : "no", hide_fp64 ? " (hidden)" : "",
                      devs[i].fp16 ? "yes" : "no", devs[i].unified ? "yes" : "no");
    *device_count = (int32_t)n;
    pthread_mutex_unlock(&ocl_init_lock);
    return FERRY_OK;
}

static void ocl_shutdown(void *ctx)
{
    pthread_mutex_lock(&ocl_init_lock);
    if (--ocl_instances > 0) {
        pthread_mutex_unlock(&ocl_init_lock);
        return;
    }
    ocl_instances = 0;
    /* CLBlast caches programs built for our contexts; they must go first. */
    ocl_matmul_shutdown();
    ocl_release_devices();
    pthread_mutex_unlock(&ocl_init_lock);
}

ferry_status ocl_device_ready(int32_t dev, ocl_device **out)
{
    ocl_device *d = &ocl_devices[dev];
    *out = d;
    if (__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE))
        return FERRY_OK;
    pthread_mutex_lock(&d->lock);
    ferry_status st = FERRY_OK;
    if (!d->ready) {
        cl_int err;
        cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform,
                                         0};
        d->context = clCreateContext(props, 1, &d->id, NULL, NULL, &err);
        if (!d->context) {
            st = ocl_fail(dev, "clCreateContext", err);
        } else {
            /* In order: every kernel and copy on it is ordered after the work queued
             * before it; the core orders the queues between each other with events,
             * whose times (event_elapsed) need profiling. */
            d->defq.cq = clCreateCommandQueue(d->context, d->id, CL_QUEUE_PROFILING_ENABLE, &err);
            if (!d->defq.cq) {
                st = ocl_fail(dev, "clCreateCommandQueue", err);
                clReleaseContext(d->context);
                d->context = NULL;
            }
        }
        if (st == FERRY_OK) {
            size_t max_wg = 1;
            clGetDeviceInfo(d->id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
            /* One work-group size for every launch: PoCL compiles a kernel once per
             * size, and 256 is within every desktop GPU's limit. */
            size_t ls = 256;
            while (ls > max_wg && ls > 1)
                ls /= 2;
            d->local_size = ls;
            __atomic_store_n(&d->ready, true, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return st;
}

/* ---- device info ------------------------------------------------------------------- */

static ferry_status ocl_device_info(void *ctx, int32_t device, ferry_device_info *out)
{
    const ocl_device *d = &ocl_devices[device];
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", d->name);
    snprintf(out->vendor, sizeof out->vendor, "%s", d->vendor);
    snprintf(out->backend, sizeof out->backend, "opencl");
    /* The plugin's version and the platform it drives; the device's OpenCL version
     * ("OpenCL 3.0", without vendor detail) goes with the driver's. */
    snprintf(out->backend_version, sizeof out->backend_version, "%s (%.48s)", OCL_VERSION,
             d->platform_name);
    int vlen = 0;
    const char *v = d->device_version;
    if (!strncmp(v, "OpenCL ", 7)) {
        vlen = 7;
        while (v[vlen] && v[vlen] != ' ')
            vlen++;
    }
    if (vlen > 16)
        vlen = 16;
    snprintf(out->driver_version, sizeof out->driver_version, "%.40s, %.*s", d->driver_version,
             vlen, v);
    out->total_memory = d->global_mem;
    out->free_memory = 0; /* OpenCL has no portable query */
    out->host_accessible = false;
    return FERRY_OK;
}

/* ---- memory ------------------------------------------------------------------------ */

static ferry_status ocl_alloc(void *ctx, int32_t device, size_t nbytes, void **buffer)
{
    *buffer = NULL;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    if ((cl_ulong)nbytes > d->max_alloc)
        return ocl_host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "opencl:%d: cannot allocate %zu bytes: the largest buffer %s "
                               "allows is %llu bytes (CL_DEVICE_MAX_MEM_ALLOC_SIZE)",
                               (int)device, nbytes, d->name, (unsigned long long)d->max_alloc);
    cl_mem_flags flags = CL_MEM_READ_WRITE;
    /* Where mapping is used, host-allocated backing lets the map be the memory itself. */
    if (d->map_copies)
        flags |= CL_MEM_ALLOC_HOST_PTR;
    cl_int err;
    cl_mem m = clCreateBuffer(d->context, flags, nbytes, NULL, &err);
    if (!m) {
        ferry_status fs = (err == CL_MEM_OBJECT_ALLOCATION_FAILURE ||
                           err == CL_OUT_OF_HOST_MEMORY || err == CL_INVALID_BUFFER_SIZE ||
                           err == CL_OUT_OF_RESOURCES)
                              ? FERRY_ERR_OUT_OF_MEMORY
                              : FERRY_ERR_BACKEND;
        return ocl_host->error(fs, "opencl:%d: clCreateBuffer of %zu bytes failed: %s (%d)",
                               (int)device, nbytes, ocl_error_name(err), (int)err);
    }
    *buffer = (void *)m;
    return FERRY_OK;
}

static void ocl_free(void *ctx, int32_t device, void *buffer)
{
    /* Commands still queued on it keep the buffer alive inside the driver. */
    if (buffer)
        clReleaseMemObject((cl_mem)buffer);
}

/* ---- copies ------------------------------------------------------------------------
 * Both host directions block and go to the thread's current queue: a read waits for the
 * queued work before it (the queue is in order, and the device's other queues have a
 * marker each in its wait list), and a write returns once the source may be reused.
 *
 * Mapping (clEnqueueMapBuffer + memcpy) against clEnqueueRead/WriteBuffer, 256 MiB on
 * PoCL 3.1 (host-unified), the two alternated in one process, best of 12 copies each:
 * write 19.3-19.7 GB/s and read 19.4-19.7 GB/s, against map 19.7-19.8 and 19.4-20.0,
 * with one memcpy at 18.6-19.7 GB/s (bench/bench_opencl.c reports the same within its
 * noise). PoCL's read and write are a memcpy by its worker thread, and a map is the same
 * memcpy by ours, so neither wins; read/write stays the default, as it needs no
 * CL_MEM_ALLOC_HOST_PTR buffers, and FERRY_OPENCL_MAP_COPIES=1 selects mapping for a
 * driver where it is faster. */

static ferry_status ocl_copy_from_host(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                       const void *src, size_t nbytes)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    cl_int err;
    cl_command_queue cq = ocl_cq(d);
    if (d->map_copies) {
        void *p = clEnqueueMapBuffer(cq, (cl_mem)dst, CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION,
                                     dst_offset, nbytes, 0, NULL, NULL, &err);
        if (!p)
            return ocl_fail(device, "clEnqueueMapBuffer", err);
        memcpy(p, src, nbytes);
        /* Later commands on the in-order queue run after the unmap. */
        err = clEnqueueUnmapMemObject(cq, (cl_mem)dst, p, 0, NULL, NULL);
        return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueUnmapMemObject", err);
    }
    err = clEnqueueWriteBuffer(cq, (cl_mem)dst, CL_TRUE, dst_offset, nbytes, src, 0, NULL, NULL);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueWriteBuffer", err);
}

static ferry_status ocl_copy_to_host(void *ctx, int32_t device, void *dst, const void *src,
                                     size_t src_offset, size_t nbytes)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    ocl_queue *q = ocl_current(d);
    cl_event *after = NULL;
    cl_uint nafter = 0;
    if ((st = ocl_markers_of_others(d, q, &after, &nafter)) != FERRY_OK)
        return st;
    cl_int err;
    if (d->map_copies) {
        void *p = clEnqueueMapBuffer(q->cq, (cl_mem)src, CL_TRUE, CL_MAP_READ, src_offset, nbytes,
                                     nafter, after, NULL, &err);
        ocl_markers_release(after, nafter);
        if (!p)
            return ocl_fail(device, "clEnqueueMapBuffer", err);
        memcpy(dst, p, nbytes);
        err = clEnqueueUnmapMemObject(q->cq, (cl_mem)src, p, 0, NULL, NULL);
        return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueUnmapMemObject", err);
    }
    err = clEnqueueReadBuffer(q->cq, (cl_mem)src, CL_TRUE, src_offset, nbytes, dst, nafter, after,
                              NULL);
    ocl_markers_release(after, nafter);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueReadBuffer", err);
}

/* Zero-copy host access for communicators (host_map), only where the device's memory is
 * the host's: on PoCL's CPU device clEnqueueMapBuffer hands back the buffer's own memory
 * (8 MiB at an offset maps in about 10 us, the pointer moving with the offset), where a
 * copy would take milliseconds. A discrete device's map is a copy, no better than
 * staging, and an integrated GPU's is zero-copy only for CL_MEM_ALLOC_HOST_PTR buffers
 * (FERRY_OPENCL_MAP_COPIES=1), so the others are declined. Blocking, on the device's
 * default queue: the core has synchronised every queue of the device first. */
static ferry_status ocl_host_map(void *ctx, int32_t device, void *buffer, size_t offset,
                                 size_t nbytes,
                                 bool write, void **ptr)
{
    *ptr = NULL;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    if (!d->unified || (d->gpu && !d->map_copies))
        return FERRY_ERR_UNSUPPORTED;
    cl_int err;
    cl_map_flags flags = write ? CL_MAP_READ | CL_MAP_WRITE : CL_MAP_READ;
    void *p = clEnqueueMapBuffer(d->defq.cq, (cl_mem)buffer, CL_TRUE, flags, offset, nbytes, 0,
                                 NULL, NULL, &err);
    if (!p)
        return ocl_fail(device, "clEnqueueMapBuffer", err);
    *ptr = p;
    return FERRY_OK;
}

static ferry_status ocl_host_unmap(void *ctx, int32_t device, void *buffer, void *ptr)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    cl_event done;
    cl_int err = clEnqueueUnmapMemObject(d->defq.cq, (cl_mem)buffer, ptr, 0, NULL, &done);
    if (err != CL_SUCCESS)
        return ocl_fail(device, "clEnqueueUnmapMemObject", err);
    err = clWaitForEvents(1, &done);
    clReleaseEvent(done);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clWaitForEvents", err);
}

static ferry_status ocl_copy_on_device(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                       const void *src, size_t src_offset, size_t nbytes)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    cl_int err = clEnqueueCopyBuffer(ocl_cq(d), (cl_mem)src, (cl_mem)dst, src_offset, dst_offset,
                                     nbytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueCopyBuffer", err);
}

static ferry_status ocl_synchronize(void *ctx, int32_t device)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    return ocl_finish_all(d);
}

/* The named kernels, one table per op family (ocl_internal.h); each kernel launches
 * the portable source of backends/kernels. */
static const ferry_named_entry *const ocl_named_tables[] = {
    ocl_named_random,
    ocl_named_reduce2,
    ocl_named_sort,
    ocl_named_index,
    ocl_named_elementwise2,
    ocl_named_select,
    ocl_named_shape2,
    NULL,
};

static ferry_named_kernel ocl_get_kernel(void *ctx, int32_t device, const char *name)
{
    (void)device;
    return ferry_named_lookup(ocl_named_tables, name);
}

static const ferry_backend_ops ocl_ops = {
    .abi_major = FERRY_BACKEND_ABI_MAJOR,
    .abi_minor = FERRY_BACKEND_ABI_MINOR,
    .struct_size = sizeof(ferry_backend_ops),
    .name = "opencl",
    .version = OCL_VERSION,
    .init = ocl_init,
    .shutdown = ocl_shutdown,
    .device_info = ocl_device_info,
    .alloc = ocl_alloc,
    .free = ocl_free,
    .copy_from_host = ocl_copy_from_host,
    .copy_to_host = ocl_copy_to_host,
    .copy_on_device = ocl_copy_on_device,
    .synchronize = ocl_synchronize,
    /* Devices have one context each, so a buffer of one is not usable by another: the
     * core stages device-to-device copies through host memory. */
    .copy_peer = NULL,
    /* Pinned memory: CL_MEM_ALLOC_HOST_PTR buffers of opencl:0, kept mapped. */
    .host_alloc = ocl_host_alloc,
    .host_free = ocl_host_free,
    /* Every kernel entry is tried and falls back with FERRY_ERR_UNSUPPORTED (and its
     * reason, such as a device without cl_khr_fp64), so no supports() table. */
    .supports = NULL,
    .fill = ocl_fill,
    .cast = ocl_cast,
    .copy_strided = ocl_copy_strided,
    .unary = ocl_unary,
    .binary = ocl_binary,
    .binary_scalar = ocl_binary_scalar,
    .reduce = ocl_reduce,
    .matmul = ocl_matmul,
    .dlpack_device_type = 4 /* kDLOpenCL */,
    .handles_are_addresses = false,
    .get_kernel = ocl_get_kernel,
    .queue_create = ocl_queue_create,
    .queue_destroy = ocl_queue_destroy,
    .set_queue = ocl_set_queue,
    .event_record = ocl_event_record,
    .event_wait = ocl_event_wait,
    .event_synchronize = ocl_event_synchronize,
    .event_query = ocl_event_query,
    .event_destroy = ocl_event_destroy,
    .event_elapsed = ocl_event_elapsed,
    .copy_from_host_async = ocl_copy_from_host_async,
    .copy_to_host_async = ocl_copy_to_host_async,
    .host_map = ocl_host_map,
    .host_unmap = ocl_host_unmap,
};

FERRY_BACKEND_EXPORT const ferry_backend_ops *ferry_backend_entry2(const ferry_host_api *host)
{
    /* A host of another major version may lay out its table differently, so not even
     * host->error can be trusted; the core reports the mismatch from our abi_major. */
    if (!host || host->abi_major != FERRY_BACKEND_ABI_MAJOR)
        return host ? &ocl_ops : NULL;
    ocl_host = host;
    return &ocl_ops;
}

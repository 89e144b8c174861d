/* The device programs: the embedded kernel source built per kernel family and dtype on
 * the first launch that needs it, its binary cached on disk across processes (keyed by
 * device, driver, source and options; corrupt or stale entries are ignored and
 * rebuilt), and kernel objects by slot. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ocl_internal.h"

/* The cache file: a fixed header, then the driver's program binary. */
#define OCL_CACHE_MAGIC "FERRYCLB"
#define OCL_CACHE_FORMAT 1u
/* A binary larger than this is not ours: refuse to read it into memory. */
#define OCL_CACHE_MAX_BYTES ((uint64_t)512 << 20)
/* Most megabytes of program binaries the cache folder keeps (FERRY_OPENCL_CACHE_MB
 * overrides). Every change of the kernel source, of the build options (dtype families,
 * 64-bit indexing) and of the driver adds entries that nothing reads again: one day of
 * development here left 13 MB. */
#define OCL_CACHE_BUDGET_MB 128
/* A writer's temporary file this old belongs to a process that died before renaming it. */
#define OCL_CACHE_TMP_MAX_AGE_S 3600

typedef struct ocl_cache_header {
    char magic[8];
    uint32_t format;
    uint32_t reserved;
    uint64_t key;          /* what the binary was built from, see ocl_cache_key */
    uint64_t payload_size; /* bytes of binary after the header */
    uint64_t payload_hash; /* FNV-1a of those bytes: a torn or corrupted file fails it */
} ocl_cache_header;

static double ocl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t ocl_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Strings are hashed with their terminating NUL, so ("ab", "c") and ("a", "bc") differ. */
static uint64_t ocl_fnv1a_str(uint64_t h, const char *s)
{
    return ocl_fnv1a(h, s, strlen(s) + 1);
}

/* The program a kernel slot lives in. */
static int ocl_group_of(int slot)
{
    if (slot < OCL_K_CAST)
        return OCL_G_COPY;
    if (slot < OCL_K_UNARY)
        return OCL_G_CAST + (slot - OCL_K_CAST) / FERRY_NUM_DTYPES;
    if (slot < OCL_K_SUM)
        return OCL_G_ARITH + (slot - OCL_K_UNARY) % FERRY_NUM_DTYPES;
    if (slot < OCL_K_MATMUL)
        return OCL_G_REDUCE + (slot - OCL_K_SUM) % FERRY_NUM_DTYPES;
    return OCL_G_MATMUL + (slot - OCL_K_MATMUL);
}

/* The options that build one family's kernels, for one dtype (-1: all of them). */
static void ocl_family_options(const ocl_device *d, const char *family, int dtype, char *buf,
                               size_t cap)
{
    char sel[32] = "";
    if (dtype >= 0)
        snprintf(sel, sizeof sel, " -DFK_SEL_%s=1", fk_dtype_sfx[dtype]);
    /* Correctly rounded division and sqrt, as the cpu backend computes them; without
     * the option OpenCL allows 2.5 ulp. Denormals stay (no -cl-denorms-are-zero). */
    snprintf(buf, cap, "%s -DFK_ONE_FAMILY=1 -DFK_FAMILY_%s=1%s%s%s%s%s", d->opencl12 ? "-cl-std=CL1.2" : "",
             family, sel, d->fp64 ? " -DFK_HAS_FP64=1" : "",
             d->cr_divide ? " -cl-fp32-correctly-rounded-divide-sqrt" : "",
             ocl_extra_options[0] ? " " : "", ocl_extra_options);
}

static void ocl_build_options(const ocl_device *d, int group, char *buf, size_t cap)
{
    static const char *const families[] = {"COPY", "CAST", "ARITH", "REDUCE", "MATMUL"};
    int family = group == OCL_G_COPY ? 0 : 1 + (group - OCL_G_CAST) / FERRY_NUM_DTYPES;
    int dtype = group == OCL_G_COPY ? -1 : (group - OCL_G_CAST) % FERRY_NUM_DTYPES;
    ocl_family_options(d, families[family], dtype, buf, cap);
}

static uint64_t ocl_cache_key(const ocl_device *d, const char *options)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = ocl_fnv1a_str(h, "ferry-opencl-program");
    h = ocl_fnv1a_str(h, FERRY_VERSION_STRING);
    h = ocl_fnv1a(h, ocl_kernel_source, ocl_kernel_source_len);
    h = ocl_fnv1a_str(h, options);
    h = ocl_fnv1a_str(h, d->name);
    h = ocl_fnv1a_str(h, d->vendor);
    h = ocl_fnv1a_str(h, d->driver_version);
    h = ocl_fnv1a_str(h, d->device_version);
    h = ocl_fnv1a_str(h, d->platform_name);
    h = ocl_fnv1a_str(h, d->platform_version);
    return h;
}

/* The cache folder: FERRY_OPENCL_CACHE_DIR, else $XDG_CACHE_HOME/ferry, else
 * ~/.cache/ferry. False when none can be named (no HOME). */
static bool ocl_cache_dir(char *buf, size_t cap)
{
    const char *dir = getenv("FERRY_OPENCL_CACHE_DIR");
    if (dir && *dir)
        return (size_t)snprintf(buf, cap, "%s", dir) < cap;
    const char *xdg = getenv("XDG_CACHE_HOME");
    /* The XDG spec says a relative value is invalid and must be ignored. */
    if (xdg && xdg[0] == '/')
        return (size_t)snprintf(buf, cap, "%s/ferry", xdg) < cap;
    const char *home = getenv("HOME");
    if (home && *home)
        return (size_t)snprintf(buf, cap, "%s/.cache/ferry", home) < cap;
    return false;
}

/* mkdir -p, private to the user as ~/.cache is. */
static bool ocl_mkdirs(const char *path)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s", path) >= sizeof tmp)
        return false;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return false;
        *p = '/';
    }
    return mkdir(tmp, 0700) == 0 || errno == EEXIST;
}

static bool ocl_cache_path(uint64_t key, char *buf, size_t cap)
{
    char dir[4000];
    if (!ocl_cache_dir(dir, sizeof dir))
        return false;
    return (size_t)snprintf(buf, cap, "%s/opencl-%016llx.bin", dir, (unsigned long long)key) <
           cap;
}

static bool ocl_read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static bool ocl_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* The program from a cache entry, or NULL (no entry, or one that is corrupt, stale or
 * refused by the driver: the caller rebuilds and overwrites it). */
static cl_program ocl_cache_load(ocl_device *d, const char *path, uint64_t key,
                                 const char *options)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ocl_cache_header h;
    unsigned char *bin = NULL;
    const char *why = NULL;
    if (!ocl_read_all(fd, &h, sizeof h))
        why = "truncated header";
    else if (memcmp(h.magic, OCL_CACHE_MAGIC, 8) != 0 || h.format != OCL_CACHE_FORMAT)
        why = "not a ferry program cache file of this format";
    else if (h.key != key)
        why = "built from another source, options or driver";
    else if (h.payload_size == 0 || h.payload_size > OCL_CACHE_MAX_BYTES)
        why = "implausible size";
    else if (!(bin = malloc((size_t)h.payload_size)))
        why = "out of host memory";
    else if (!ocl_read_all(fd, bin, (size_t)h.payload_size))
        why = "truncated binary";
    else if (ocl_fnv1a(0xcbf29ce484222325ull, bin, (size_t)h.payload_size) != h.payload_hash)
        why = "checksum mismatch";
    close(fd);
    if (why) {
        ocl_host->log(FERRY_LOG_DEBUG, "opencl", "opencl:%d: ignoring program cache %s: %s",
                      (int)d->index, path, why);
        free(bin);
        return NULL;
    }
    size_t size = (size_t)h.payload_size;
    const unsigned char *ptr = bin;
    cl_int bin_status = CL_SUCCESS, err;
    cl_program prog = clCreateProgramWithBinary(d->context, 1, &d->id, &size, &ptr, &bin_status,
                                                &err);
    free(bin);
    if (prog && bin_status == CL_SUCCESS)
        err = clBuildProgram(prog, 1, &d->id, options, NULL, NULL);
    else if (prog)
        err = bin_status;
    if (!prog || err != CL_SUCCESS) {
        ocl_host->log(FERRY_LOG_DEBUG, "opencl",
                      "opencl:%d: ignoring program cache %s: the driver refused it (%s (%d))",
                      (int)d->index, path, ocl_error_name(err), (int)err);
        if (prog)
            clReleaseProgram(prog);
        return NULL;
    }
    /* Its time of last use, for pruning (atime is often not kept). */
    utimensat(AT_FDCWD, path, NULL, 0);
    return prog;
}

static uint64_t ocl_cache_budget(void)
{
    const char *s = getenv("FERRY_OPENCL_CACHE_MB");
    if (s && *s) {
        char *end = NULL;
        errno = 0;
        unsigned long long mb = strtoull(s, &end, 10);
        /* strtoull takes leading blanks and a minus sign (wrapping): digits only. */
        if (*end == '\0' && errno == 0 && s[0] >= '0' && s[0] <= '9')
            return mb > ((uint64_t)1 << 40) ? UINT64_MAX : (uint64_t)mb << 20;
        ocl_host->log(FERRY_LOG_WARN, "opencl",
                      "FERRY_OPENCL_CACHE_MB=%s is not a number of megabytes: keeping %d", s,
                      OCL_CACHE_BUDGET_MB);
    }
    return (uint64_t)OCL_CACHE_BUDGET_MB << 20;
}

typedef struct ocl_cache_file {
    char name[64];
    uint64_t size;
    struct timespec used; /* mtime, which a cache hit refreshes */
} ocl_cache_file;

static int ocl_older_first(const void *x, const void *y)
{
    const struct timespec *a = &((const ocl_cache_file *)x)->used;
    const struct timespec *b = &((const ocl_cache_file *)y)->used;
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? -1 : 1;
    return (a->tv_nsec > b->tv_nsec) - (a->tv_nsec < b->tv_nsec);
}

/* Deletes the least recently used entries while the folder's binaries exceed the budget
 * (never `keep`, the entry just written), and dead writers' temporaries. Only files named
 * as this plugin names them are touched: the folder also holds other caches. Best effort:
 * another process may prune at the same time, and a deleted entry is only rebuilt. */
static void ocl_cache_prune(const char *dir, const char *keep)
{
    DIR *dd = opendir(dir);
    if (!dd)
        return;
    ocl_cache_file *files = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(dd)) != NULL) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        bool tmp = strstr(name, ".bin.tmp.") != NULL;
        if (strncmp(name, "opencl-", 7) != 0 || len >= sizeof files[0].name ||
            (!tmp && (len < 4 || strcmp(name + len - 4, ".bin") != 0)))
            continue;
        struct stat st;
        if (fstatat(dirfd(dd), name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (tmp) {
            if (now - st.st_mtime > OCL_CACHE_TMP_MAX_AGE_S)
                unlinkat(dirfd(dd), name, 0);
            continue;
        }
        total += (uint64_t)st.st_size;
        if (strcmp(name, keep) == 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            ocl_cache_file *grown = realloc(files, ncap * sizeof *files);
            if (!grown)
                break;
            files = grown;
            cap = ncap;
        }
        memcpy(files[n].name, name, len + 1); /* len < sizeof name, checked above */
        files[n].size = (uint64_t)st.st_size;
        files[n].used = st.st_mtim;
        n++;
    }
    uint64_t budget = ocl_cache_budget();
    if (total > budget && n > 0) {
        qsort(files, n, sizeof *files, ocl_older_first);
        for (size_t i = 0; i < n && total > budget; i++)
            if (unlinkat(dirfd(dd), files[i].name, 0) == 0) {
                total -= files[i].size;
                ocl_host->log(FERRY_LOG_DEBUG, "opencl",
                              "program cache over %llu MB: removed %s/%s",
                              (unsigned long long)(budget >> 20), dir, files[i].name);
            }
    }
    free(files);
    closedir(dd);
}

/* Writes the program's binary under `path`, atomically: a temporary file renamed over
 * it, so a concurrent reader sees the old entry, the new one, or none. Best effort. */
static void ocl_cache_store(ocl_device *d, cl_program prog, const char *path, uint64_t key)
{
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) !=
            CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *bin = malloc(size);
    if (!bin)
        return;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
        free(bin);
        return;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    static atomic_uint counter;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    ocl_cache_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, OCL_CACHE_MAGIC, 8);
    h.format = OCL_CACHE_FORMAT;
    h.key = key;
    h.payload_size = size;
    h.payload_hash = ocl_fnv1a(0xcbf29ce484222325ull, bin, size);
    int fd = -1;
    bool ok = (!slash || ocl_mkdirs(dir)) &&
              (fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0 &&
              ocl_write_all(fd, &h, sizeof h) && ocl_write_all(fd, bin, size);
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        ocl_host->log(FERRY_LOG_DEBUG, "opencl", "opencl:%d: cannot write program cache %s: %s",
                      (int)d->index, path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    } else {
        ocl_host->log(FERRY_LOG_DEBUG, "opencl", "opencl:%d: stored program binary in %s",
                      (int)d->index, path);
        if (slash)
            ocl_cache_prune(dir, slash + 1);
    }
    free(bin);
}

/* Builds the program from the embedded source; on failure the message carries the
 * driver's build log (the whole log goes to the debug log). */
static ferry_status ocl_build_from_source(ocl_device *d, bool *failed, const char *options,
                                          cl_program *out)
{
    *out = NULL;
    cl_int err;
    const char *src = ocl_kernel_source;
    size_t len = ocl_kernel_source_len;
    cl_program prog = clCreateProgramWithSource(d->context, 1, &src, &len, &err);
    if (!prog)
        return ocl_fail(d->index, "clCreateProgramWithSource", err);
    err = clBuildProgram(prog, 1, &d->id, options, NULL, NULL);
    if (err == CL_SUCCESS) {
        *out = prog;
        return FERRY_OK;
    }
    size_t log_len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len) ==
            CL_SUCCESS &&
        (log = calloc(1, log_len + 1)) != NULL)
        clGetProgramBuildInfo(prog, d->id, CL_PROGRAM_BUILD_LOG, log_len, log, NULL);
    clReleaseProgram(prog);
    ocl_host->log(FERRY_LOG_DEBUG, "opencl", "opencl:%d: build log:\n%s", (int)d->index,
                  log ? log : "");
    char msg[sizeof d->build_error];
    snprintf(msg, sizeof msg,
             "opencl:%d: clBuildProgram failed: %s (%d) building ferry's kernels for %s with "
             "options '%s'; build log:\n%.1400s",
             (int)d->index, ocl_error_name(err), (int)err, d->name, options,
             log ? log : "(none)");
    free(log);
    /* A compile error repeats on every launch, slowly: remember it. A driver running
     * out of memory may do better next time. */
    if (err == CL_BUILD_PROGRAM_FAILURE || err == CL_INVALID_BUILD_OPTIONS) {
        memcpy(d->build_error, msg, sizeof msg);
        *failed = true;
    }
    return ocl_host->error(FERRY_ERR_BACKEND, "%s", msg);
}

/* The program for `options`, from the disk cache or built; *failed remembers a
 * compile error. Lock held. */
static ferry_status ocl_program_build(ocl_device *d, const char *options, bool *failed,
                                      cl_program *prog)
{
    if (*failed)
        return ocl_host->error(FERRY_ERR_BACKEND, "%s", d->build_error);
    uint64_t key = ocl_cache_key(d, options);
    char path[4200];
    bool cached = ocl_cache_path(key, path, sizeof path);
    double t0 = ocl_now_ms();
    if (cached && (*prog = ocl_cache_load(d, path, key, options)) != NULL) {
        ocl_host->log(FERRY_LOG_DEBUG, "opencl",
                      "opencl:%d: program '%s' loaded from %s in %.1f ms", (int)d->index,
                      options, path, ocl_now_ms() - t0);
        return FERRY_OK;
    }
    ferry_status st = ocl_build_from_source(d, failed, options, prog);
    if (st != FERRY_OK)
        return st;
    double t1 = ocl_now_ms();
    if (cached)
        ocl_cache_store(d, *prog, path, key);
    ocl_host->log(FERRY_LOG_DEBUG, "opencl",
                  "opencl:%d: program '%s' built from source in %.1f ms, cached in %.1f ms",
                  (int)d->index, options, t1 - t0, ocl_now_ms() - t1);
    return FERRY_OK;
}

/* Lock held. */
static ferry_status ocl_program_ensure(ocl_device *d, int group)
{
    if (d->programs[group])
        return FERRY_OK;
    char options[512];
    ocl_build_options(d, group, options, sizeof options);
    return ocl_program_build(d, options, &d->build_failed[group], &d->programs[group]);
}

/* Preferred work-group size of k on d, capped by what the kernel allows. */
static size_t ocl_kernel_wg(const ocl_device *d, cl_kernel k)
{
    size_t wg = d->local_size;
    size_t kmax = 0;
    if (clGetKernelWorkGroupInfo(k, d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL) ==
            CL_SUCCESS &&
        kmax > 0)
        while (wg > kmax && wg > 1)
            wg /= 2;
    return wg;
}

ferry_status ocl_named_kernel(ocl_device *d, const char *family, int dtype, const char *name,
                              ocl_kernel *out)
{
    for (int i = 0; i < d->named_nkernels; i++)
        if (strcmp(d->named_kernels[i].name, name) == 0) {
            *out = d->named_kernels[i];
            return FERRY_OK;
        }
    char key[sizeof d->named_programs[0].key];
    snprintf(key, sizeof key, "%s/%d", family, dtype);
    int p = 0;
    while (p < d->named_nprograms && strcmp(d->named_programs[p].key, key) != 0)
        p++;
    if (p == d->named_nprograms) {
        if (p == OCL_NAMED_PROGRAMS || d->named_nkernels == OCL_NAMED_KERNELS)
            return ocl_host->error(FERRY_ERR_BACKEND, "opencl:%d: more than %d named-op programs",
                                   (int)d->index, OCL_NAMED_PROGRAMS);
        snprintf(d->named_programs[p].key, sizeof d->named_programs[p].key, "%s", key);
        d->named_programs[p].program = NULL;
        d->named_programs[p].failed = false;
        d->named_nprograms++;
    }
    if (!d->named_programs[p].program) {
        char options[512];
        ocl_family_options(d, family, dtype, options, sizeof options);
        ferry_status st = ocl_program_build(d, options, &d->named_programs[p].failed,
                                            &d->named_programs[p].program);
        if (st != FERRY_OK)
            return st;
    }
    if (d->named_nkernels == OCL_NAMED_KERNELS || strlen(name) >= sizeof out->name)
        return ocl_host->error(FERRY_ERR_BACKEND, "opencl:%d: no room for kernel %s",
                               (int)d->index, name);
    cl_int err;
    cl_kernel k = clCreateKernel(d->named_programs[p].program, name, &err);
    if (!k)
        return ocl_host->error(FERRY_ERR_BACKEND, "opencl:%d: clCreateKernel(%s) failed: %s (%d)",
                               (int)d->index, name, ocl_error_name(err), (int)err);
    ocl_kernel *e = &d->named_kernels[d->named_nkernels++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kernel = k;
    e->wg = ocl_kernel_wg(d, k);
    *out = *e;
    return FERRY_OK;
}

ferry_status ocl_kernel_get(ocl_device *d, int slot, const char *name, cl_kernel *out)
{
    *out = d->kernels[slot];
    if (*out)
        return FERRY_OK;
    int group = ocl_group_of(slot);
    ferry_status st = ocl_program_ensure(d, group);
    if (st != FERRY_OK)
        return st;
    cl_int err;
    cl_kernel k = clCreateKernel(d->programs[group], name, &err);
    if (!k)
        return ocl_host->error(FERRY_ERR_BACKEND, "opencl:%d: clCreateKernel(%s) failed: %s (%d)",
                               (int)d->index, name, ocl_error_name(err), (int)err);
    d->wg[slot] = ocl_kernel_wg(d, k);
    d->kernels[slot] = k;
    *out = k;
    return FERRY_OK;
}

void ocl_program_release(ocl_device *d)
{
    for (int i = 0; i < OCL_K_COUNT; i++)
        if (d->kernels[i]) {
            clReleaseKernel(d->kernels[i]);
            d->kernels[i] = NULL;
        }
    for (int g = 0; g < OCL_G_COUNT; g++)
        if (d->programs[g]) {
            clReleaseProgram(d->programs[g]);
            d->programs[g] = NULL;
        }
    for (int i = 0; i < d->named_nkernels; i++)
        clReleaseKernel(d->named_kernels[i].kernel);
    d->named_nkernels = 0;
    for (int i = 0; i < d->named_nprograms; i++)
        if (d->named_programs[i].program)
            clReleaseProgram(d->named_programs[i].program);
    d->named_nprograms = 0;
}

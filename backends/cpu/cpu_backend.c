/* The CPU backend's plugin entry and device management: one device, host memory,
 * copies as memcpy. The kernels live in cpu_cast.c. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>

#include "cpu_internal.h"

/* Matches the backend.h promise for host-accessible buffers, and is a whole cache line
 * so that vector loads of one tensor never share a line with another allocation. */
#define CPU_ALIGNMENT ((size_t)64)

const ferry_host_api *cpu_host;

static ferry_status cpu_init(void **ctx, int32_t *device_count, char *reason, size_t reason_cap)
{
    *device_count = 1;
    if (reason && reason_cap > 0)
        reason[0] = '\0';
    return FERRY_OK;
}

/* Copies the value of the first "key : value" line of /proc/cpuinfo whose key is `key`
 * into out; false when there is no such line (on many ARM kernels there is no
 * "model name" or "vendor_id"). */
static bool cpu_cpuinfo_field(const char *key, char *out, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return false;
    char line[512];
    size_t klen = strlen(key);
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0)
            continue;
        char *p = line + klen;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != ':')
            continue; /* a longer key that merely starts with `key` */
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strlen(p);
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        p[n] = '\0';
        snprintf(out, cap, "%s", p);
        found = true;
        break;
    }
    fclose(f);
    return found;
}

/* MemAvailable counts reclaimable page cache, which sysinfo's freeram does not; it is
 * what a user means by "free" memory. 0 when the kernel is too old to report it. */
static uint64_t cpu_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
            kib = (uint64_t)v;
            break;
        }
    }
    fclose(f);
    return kib * 1024u;
}

static ferry_status cpu_device_info(void *ctx, int32_t device, ferry_device_info *out)
{
    memset(out, 0, sizeof *out);
    if (!cpu_cpuinfo_field("model name", out->name, sizeof out->name)) {
        struct utsname u;
        if (uname(&u) == 0)
            snprintf(out->name, sizeof out->name, "%s", u.machine);
        else
            snprintf(out->name, sizeof out->name, "cpu");
    }
    cpu_cpuinfo_field("vendor_id", out->vendor, sizeof out->vendor);
    snprintf(out->backend, sizeof out->backend, "cpu");
    snprintf(out->backend_version, sizeof out->backend_version, "%s", FERRY_VERSION_STRING);
    out->driver_version[0] = '\0';

    struct sysinfo si;
    if (sysinfo(&si) == 0) {
        uint64_t unit = si.mem_unit ? si.mem_unit : 1;
        out->total_memory = (uint64_t)si.totalram * unit;
        out->free_memory = (uint64_t)si.freeram * unit;
    }
    uint64_t avail = cpu_mem_available();
    if (avail)
        out->free_memory = avail;
    out->host_accessible = true;
    return FERRY_OK;
}

static ferry_status cpu_alloc(void *ctx, int32_t device, size_t nbytes, void **buffer)
{
    *buffer = NULL;
    if (nbytes > SIZE_MAX - (CPU_ALIGNMENT - 1))
        return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes",
                               nbytes);
    /* aligned_alloc wants a multiple of the alignment, and 0 bytes may give NULL. */
    size_t rounded = nbytes ? (nbytes + CPU_ALIGNMENT - 1) & ~(CPU_ALIGNMENT - 1)
                            : CPU_ALIGNMENT;
    void *p = aligned_alloc(CPU_ALIGNMENT, rounded);
    if (!p)
        return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes",
                               nbytes);
    *buffer = p;
    return FERRY_OK;
}

static void cpu_free(void *ctx, int32_t device, void *buffer)
{
    free(buffer);
}

/* n == 0 returns before memcpy because a zero-length copy may come with NULL pointers,
 * which memcpy does not accept. */
static ferry_status cpu_copy_from_host(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                       const void *src, size_t nbytes)
{
    if (nbytes)
        memcpy((char *)dst + dst_offset, src, nbytes);
    return FERRY_OK;
}

static ferry_status cpu_copy_to_host(void *ctx, int32_t device, void *dst, const void *src,
                                     size_t src_offset, size_t nbytes)
{
    if (nbytes)
        memcpy(dst, (const char *)src + src_offset, nbytes);
    return FERRY_OK;
}

static ferry_status cpu_copy_on_device(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                       const void *src, size_t src_offset, size_t nbytes)
{
    /* memmove: the contract says the regions do not overlap, but a view of one
     * storage copied onto itself costs nothing to get right. */
    if (nbytes)
        memmove((char *)dst + dst_offset, (const char *)src + src_offset, nbytes);
    return FERRY_OK;
}

/* Every entry runs to completion before it returns, so there is nothing to wait for. */
static ferry_status cpu_synchronize(void *ctx, int32_t device)
{
    return FERRY_OK;
}

/* The named kernels, one table per op family (cpu_internal.h). The cpu backend has
 * every named op the core defines: it is their reference and everyone's fallback. */
static const ferry_named_entry *const cpu_named_tables[] = {
    cpu_named_random,
    cpu_named_reduce2,
    cpu_named_sort,
    cpu_named_index,
    cpu_named_elementwise2,
    cpu_named_select,
    cpu_named_shape2,
    NULL,
};

static ferry_named_kernel cpu_get_kernel(void *ctx, int32_t device, const char *name)
{
    (void)device;
    return ferry_named_lookup(cpu_named_tables, name);
}

static const ferry_backend_ops cpu_ops = {
    .abi_major = FERRY_BACKEND_ABI_MAJOR,
    .abi_minor = FERRY_BACKEND_ABI_MINOR,
    .struct_size = sizeof(ferry_backend_ops),
    .name = "cpu",
    .version = FERRY_VERSION_STRING,
    .init = cpu_init,
    .shutdown = NULL,
    .device_info = cpu_device_info,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_from_host = cpu_copy_from_host,
    .copy_to_host = cpu_copy_to_host,
    .copy_on_device = cpu_copy_on_device,
    .synchronize = cpu_synchronize,
    .copy_peer = NULL,
    .host_alloc = NULL,
    .host_free = NULL,
    .supports = NULL,
    .fill = cpu_fill,
    .cast = cpu_cast,
    .copy_strided = cpu_copy_strided,
    .unary = cpu_unary,
    .binary = cpu_binary,
    .binary_scalar = cpu_binary_scalar,
    .reduce = cpu_reduce,
    .matmul = cpu_matmul,
    .dlpack_device_type = 1 /* kDLCPU */,
    .handles_are_addresses = true,
    .get_kernel = cpu_get_kernel,
};

FERRY_BACKEND_EXPORT const ferry_backend_ops *ferry_backend_entry2(const ferry_host_api *host)
{
    /* A host of another major version may lay out its table differently, so not even
     * host->error can be trusted; the core reports the mismatch from our abi_major. */
    if (!host || host->abi_major != FERRY_BACKEND_ABI_MAJOR)
        return host ? &cpu_ops : NULL;
    cpu_host = host;
    return &cpu_ops;
}

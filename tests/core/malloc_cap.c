/* libferry_test_malloccap.so: a test-only interposer, preloaded (LD_PRELOAD) by
 * tests/core/test_cpu_sort.c into a child of itself. Its malloc, calloc and realloc come
 * first in the global scope, so the cpu backend's calls (the module is dlopened without
 * RTLD_DEEPBIND) bind here. Armed with ferry_malloccap_arm(module, n), it counts the
 * calls made from code in a module whose path contains `module` and refuses the nth
 * (NULL, ENOMEM), as an allocation does when memory runs out; every other call goes to
 * glibc's allocator through its __libc_* entries (not dlsym, which may allocate). So
 * each scratch allocation of a kernel can be made to fail in turn without a hook in the
 * backend. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MC_EXPORT __attribute__((visibility("default")))

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);

static char mc_module[256];
static long mc_nth, mc_seen, mc_refused;
static __thread bool mc_busy; /* dladdr below must not count itself */

/* Whether the call returning to `ret` is the one to refuse. */
static bool mc_refuse(void *ret)
{
    if (!__atomic_load_n(&mc_nth, __ATOMIC_ACQUIRE) || mc_busy)
        return false;
    mc_busy = true;
    Dl_info info;
    bool ours = dladdr(ret, &info) && info.dli_fname && strstr(info.dli_fname, mc_module);
    mc_busy = false;
    if (!ours)
        return false;
    long k = __atomic_add_fetch(&mc_seen, 1, __ATOMIC_RELAXED);
    if (k != mc_nth)
        return false;
    __atomic_add_fetch(&mc_refused, 1, __ATOMIC_RELAXED);
    errno = ENOMEM;
    return true;
}

MC_EXPORT void *malloc(size_t n)
{
    return mc_refuse(__builtin_return_address(0)) ? NULL : __libc_malloc(n);
}

MC_EXPORT void *calloc(size_t n, size_t m)
{
    return mc_refuse(__builtin_return_address(0)) ? NULL : __libc_calloc(n, m);
}

MC_EXPORT void *realloc(void *p, size_t n)
{
    return mc_refuse(__builtin_return_address(0)) ? NULL : __libc_realloc(p, n);
}

/* Refuse the nth call (from 1) from `module` from now on; n = 0 disarms. Counts restart. */
MC_EXPORT void ferry_malloccap_arm(const char *module, long n)
{
    __atomic_store_n(&mc_nth, 0, __ATOMIC_RELEASE);
    strncpy(mc_module, module, sizeof mc_module - 1);
    __atomic_store_n(&mc_seen, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&mc_refused, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&mc_nth, n, __ATOMIC_RELEASE);
}

/* Calls from the module since arming, and how many were refused (0 or 1). */
MC_EXPORT long ferry_malloccap_seen(void)
{
    return __atomic_load_n(&mc_seen, __ATOMIC_RELAXED);
}

MC_EXPORT long ferry_malloccap_refused(void)
{
    return __atomic_load_n(&mc_refused, __ATOMIC_RELAXED);
}

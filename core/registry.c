/* The backend registry and plugin loader: discovers libferry-backend-*.so on the search
 * path, loads each once (thread-safe) and remembers exactly why one is unusable. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/backend_v1.h>

#include "internal.h"

#define MAX_BACKENDS 64

static const char *const builtin_names[] = {"cpu", "opencl", "cuda"};

/* One lock guards discovery, loading and the list; it is held while a plugin's init
 * runs, which makes loading happen exactly once. Recursive, because a plugin's init
 * may log through host services that read the registry. */
static pthread_mutex_t reg_lock;
static pthread_once_t reg_lock_once = PTHREAD_ONCE_INIT;

static struct {
    ferry_backend *list[MAX_BACKENDS];
    size_t count;
    /* Backends that ferry_shutdown() dropped while tensors still used them. A plugin is
     * initialised once per load, so a later generation adopts these instead of running
     * init again on the same loaded image. */
    ferry_backend *zombies[MAX_BACKENDS];
    size_t nzombies;
    bool discovered;
    char searched[4096]; /* the folders searched, for "not found" messages */
} reg;

static void reg_lock_init(void)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&reg_lock, &attr);
    pthread_mutexattr_destroy(&attr);
}

static void lock(void)
{
    pthread_once(&reg_lock_once, reg_lock_init);
    pthread_mutex_lock(&reg_lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&reg_lock);
}

/* The folder libferry was loaded from, resolved while the library loads: the loader may
 * have found it through a relative path (LD_LIBRARY_PATH=.) that a later chdir() would
 * make point elsewhere, and plugins are never searched relative to the current
 * directory (DESIGN.md, Loading). Empty when it could not be resolved then. */
static char self_dir[4096];
static const char *self_dir_reason = "not resolved";

__attribute__((constructor)) static void resolve_self_dir(void)
{
    Dl_info info;
    if (!dladdr((void *)&ferry_version, &info) || !info.dli_fname) {
        self_dir_reason = "dladdr gave no file name";
        return;
    }
    /* Canonical, so messages name lib/ferry rather than bin/../lib/ferry. */
    char *self = realpath(info.dli_fname, NULL);
    if (!self) {
        self_dir_reason = "realpath of the loaded library failed";
        return;
    }
    char *slash = strrchr(self, '/');
    if (slash && (size_t)(slash - self) < sizeof self_dir) {
        memcpy(self_dir, self, (size_t)(slash - self));
        self_dir[slash - self] = '\0';
    } else {
        self_dir_reason = "its path is too long";
    }
    free(self);
}

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* [a-z][a-z0-9_]*, at most FERRY_MAX_TYPE_LEN characters. */
static bool valid_type_name(const char *s, size_t len)
{
    if (len == 0 || len > FERRY_MAX_TYPE_LEN || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static ferry_backend *find_locked(const char *name)
{
    for (size_t i = 0; i < reg.count; i++)
        if (strcmp(reg.list[i]->name, name) == 0)
            return reg.list[i];
    return NULL;
}

static ferry_backend *add_locked(const char *name, size_t len)
{
    if (reg.count == MAX_BACKENDS)
        return NULL;
    ferry_backend *be = calloc(1, sizeof *be);
    if (!be)
        return NULL;
    atomic_init(&be->refs, 1); /* the registry's hold */
    memcpy(be->name, name, len);
    be->name[len] = '\0';
    reg.list[reg.count++] = be;
    return be;
}

static void append_searched(const char *dir)
{
    size_t used = strlen(reg.searched);
    snprintf(reg.searched + used, sizeof reg.searched - used, "%s%s", used ? ", " : "", dir);
}

/* Records every libferry-backend-NAME.so in dir; the first folder to offer a name wins. */
static void scan_dir(const char *dir)
{
    append_searched(dir);
    ferry__debug("plugins", "searching %s", dir);
    DIR *d = opendir(dir);
    if (!d) {
        ferry__debug("plugins", "  cannot open %s", dir);
        return;
    }
    static const char prefix[] = "libferry-backend-";
    static const char suffix[] = ".so";
    struct dirent *e;
    /* readdir order is arbitrary: collect and sort so discovery order is stable. */
    char *names[MAX_BACKENDS];
    size_t n = 0;
    while ((e = readdir(d)) != NULL && n < MAX_BACKENDS) {
        size_t len = strlen(e->d_name);
        if (len <= sizeof prefix - 1 + sizeof suffix - 1 ||
            strncmp(e->d_name, prefix, sizeof prefix - 1) != 0 ||
            strcmp(e->d_name + len - (sizeof suffix - 1), suffix) != 0)
            continue;
        names[n] = strdup(e->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        const char *type = names[i] + sizeof prefix - 1;
        size_t type_len = strlen(type) - (sizeof suffix - 1);
        char *path = dup_printf("%s/%s", dir, names[i]);
        ferry__debug("plugins", "  candidate %s", path ? path : names[i]);
        if (!path || !valid_type_name(type, type_len)) {
            ferry__debug("plugins", "  skipping %s: not a valid backend name", names[i]);
            free(path);
            free(names[i]);
            continue;
        }
        char name[FERRY_MAX_TYPE_LEN + 1];
        memcpy(name, type, type_len);
        name[type_len] = '\0';
        ferry_backend *be = find_locked(name);
        if (!be)
            be = add_locked(name, type_len);
        if (be && !be->path && be->state == FERRY_BACKEND_NOT_LOADED) {
            be->path = path;
            path = NULL;
        } else {
            ferry__debug("plugins", "  %s already provided by an earlier folder", name);
        }
        free(path);
        free(names[i]);
    }
}

/* Calls visit on each plugin folder in DESIGN.md's search order: FERRY_PLUGIN_PATH's
 * absolute entries, the folder beside libferry, the install libdir. */
void ferry__plugin_dirs_visit(void (*visit)(const char *dir, void *ctx), void *ctx)
{
    const char *env = getenv("FERRY_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        char *save = NULL;
        for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
             dir = strtok_r(NULL, ":", &save)) {
            /* Relative folders would make the result depend on the current directory,
             * a classic library-injection hole; DESIGN.md forbids them. */
            if (dir[0] != '/') {
                ferry__debug("plugins", "ignoring relative FERRY_PLUGIN_PATH entry '%s'", dir);
                continue;
            }
            visit(dir, ctx);
        }
        free(copy);
    }

    if (self_dir[0]) {
        char *dir = dup_printf("%s/ferry", self_dir);
        if (dir)
            visit(dir, ctx);
        free(dir);
    } else {
        ferry__debug("plugins", "the folder of libferry is unknown (%s): plugins beside it are "
                     "not searched",
                     self_dir_reason);
    }
    visit(FERRY_INSTALL_PLUGIN_DIR, ctx);
}

static void scan_dir_visit(const char *dir, void *ctx)
{
    (void)ctx;
    scan_dir(dir);
}

static void discover_locked(void)
{
    if (reg.discovered)
        return;
    reg.discovered = true;
    reg.searched[0] = '\0';
    for (size_t i = 0; i < sizeof builtin_names / sizeof builtin_names[0]; i++)
        if (!find_locked(builtin_names[i]))
            add_locked(builtin_names[i], strlen(builtin_names[i]));
    ferry__plugin_dirs_visit(scan_dir_visit, NULL);
}

static void set_failed(ferry_backend *be, ferry_status status, char *reason)
{
    be->state = FERRY_BACKEND_FAILED;
    free(be->reason);
    be->reason = reason ? reason : strdup("unknown failure");
    ferry__debug("plugins", "%s unusable: %s", be->name, be->reason ? be->reason : "");
    (void)status;
}

/* The table a plugin returned, as the rest of the core reads it: a 2.0 plugin's own, or
 * the adapters around a 1.x one (backend_v1.c), whose context is the 1.x table. */
typedef struct plugin_table {
    const ferry_backend_ops *ops;
    const ferry_backend_ops_v1 *v1;
    ferry_backend_ops wrap;
} plugin_table;

/* The version checks of a table header of major `major` and the table size this core
 * knows for it. Returns NULL when acceptable, else the reason. */
static char *check_version(uint32_t got_major, uint32_t got_minor, size_t got_size,
                           size_t min_size, uint32_t major, uint32_t minor, size_t size,
                           const char *path)
{
    if (got_major != major)
        return dup_printf("%s was built for backend ABI %u.%u, but this ferry has ABI %u.%u; "
                          "rebuild the plugin against this ferry's SDK",
                          path, got_major, got_minor, FERRY_BACKEND_ABI_MAJOR,
                          FERRY_BACKEND_ABI_MINOR);
    if (got_size < min_size)
        return dup_printf("%s reports a table of %zu bytes, smaller than ABI %u.0 requires",
                          path, got_size, major);
    /* A newer minor only appends members, so the core uses the ones it knows and never
     * looks past them; its table must then hold at least every member this core knows. */
    if (got_minor > minor && got_size < size)
        return dup_printf("%s was built for backend ABI %u.%u, but its table of %zu bytes is "
                          "smaller than this ferry's ABI %u.%u table of %zu bytes",
                          path, got_major, got_minor, got_size, major, minor, size);
    if (got_minor > minor)
        ferry__debug("plugins", "%s: backend ABI %u.%u is newer than this ferry's %u.%u; "
                     "using the %u.%u entries",
                     path, got_major, got_minor, major, minor, major, minor);
    return NULL;
}

/* Validates the table a plugin returned. Returns NULL when acceptable, else the reason. */
static char *check_ops(plugin_table *t, const char *path, ferry_status *status)
{
    *status = FERRY_ERR_ABI;
    char *why;
    if (t->v1) {
        const ferry_backend_ops_v1 *v1 = t->v1;
        if (v1->abi_major != FERRY_BACKEND_V1_ABI_MAJOR)
            return dup_printf("%s exports the ABI 1.x entry %s, but its table claims ABI "
                              "%u.%u; rebuild the plugin against this ferry's SDK (ABI %u.%u, "
                              "entry %s)",
                              path, FERRY_BACKEND_V1_ENTRY_SYMBOL, v1->abi_major,
                              v1->abi_minor, FERRY_BACKEND_ABI_MAJOR, FERRY_BACKEND_ABI_MINOR,
                              FERRY_BACKEND_ENTRY_SYMBOL);
        why = check_version(v1->abi_major, v1->abi_minor, v1->struct_size,
                            offsetof(ferry_backend_ops_v1, synchronize) + sizeof v1->synchronize,
                            FERRY_BACKEND_V1_ABI_MAJOR, FERRY_BACKEND_V1_ABI_MINOR, sizeof *v1,
                            path);
        if (why)
            return why;
        ferry__backend_v1_wrap(v1, &t->wrap);
        t->ops = &t->wrap;
    } else {
        const ferry_backend_ops *o = t->ops;
        why = check_version(o->abi_major, o->abi_minor, o->struct_size,
                            offsetof(ferry_backend_ops, synchronize) + sizeof o->synchronize,
                            FERRY_BACKEND_ABI_MAJOR, FERRY_BACKEND_ABI_MINOR, sizeof *o, path);
        if (why)
            return why;
    }
    const ferry_backend_ops *ops = t->ops;
    *status = FERRY_ERR_UNAVAILABLE;
    if (!ops->name || !valid_type_name(ops->name, strlen(ops->name)))
        return dup_printf("%s claims an invalid device type name '%s' (expected "
                          "[a-z][a-z0-9_]*, at most %d characters)",
                          path, ops->name ? ops->name : "(null)", FERRY_MAX_TYPE_LEN);
    const char *missing = !ops->init             ? "init"
                          : !ops->device_info    ? "device_info"
                          : !ops->alloc          ? "alloc"
                          : !ops->free           ? "free"
                          : !ops->copy_from_host ? "copy_from_host"
                          : !ops->copy_to_host   ? "copy_to_host"
                          : !ops->copy_on_device ? "copy_on_device"
                          : !ops->synchronize    ? "synchronize"
                                                 : NULL;
    if (missing)
        return dup_printf("%s lacks the required entry '%s'", path, missing);
    return NULL;
}

/* Opens `path` and runs its entry function: the 2.0 one, else the 1.x one, each handed
 * the host table of its major. On success *t and *dl are set. */
static ferry_status open_plugin(const char *path, void **dl, plugin_table *t, char **reason)
{
    *dl = NULL;
    memset(t, 0, sizeof *t);
    ferry__debug("plugins", "loading %s", path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        *reason = strdup(e ? e : path);
        return FERRY_ERR_UNAVAILABLE;
    }
    ferry_backend_entry_fn entry;
    ferry_backend_v1_entry_fn entry_v1 = NULL;
    const char *sym = FERRY_BACKEND_ENTRY_SYMBOL;
    *(void **)&entry = dlsym(h, FERRY_BACKEND_ENTRY_SYMBOL);
    if (!entry) {
        sym = FERRY_BACKEND_V1_ENTRY_SYMBOL;
        *(void **)&entry_v1 = dlsym(h, FERRY_BACKEND_V1_ENTRY_SYMBOL);
    }
    if (!entry && !entry_v1) {
        *reason = dup_printf("%s has no %s symbol (nor the ABI 1.x %s): not a ferry backend "
                             "plugin",
                             path, FERRY_BACKEND_ENTRY_SYMBOL, FERRY_BACKEND_V1_ENTRY_SYMBOL);
        dlclose(h);
        return FERRY_ERR_UNAVAILABLE;
    }
    if (entry)
        t->ops = entry(ferry__host_api());
    else
        t->v1 = entry_v1(ferry__host_api_v1());
    if (!t->ops && !t->v1) {
        *reason = dup_printf("%s: %s returned no backend table: %s", path, sym,
                             ferry_last_error());
        dlclose(h);
        return FERRY_ERR_UNAVAILABLE;
    }
    ferry_status st;
    char *why = check_ops(t, path, &st);
    if (why) {
        *reason = why;
        dlclose(h);
        return st;
    }
    *dl = h;
    return FERRY_OK;
}

/* Points `be` at a checked table; a 1.x wrapper lives in the entry, as long as it. */
static void install_table(ferry_backend *be, const plugin_table *t)
{
    if (t->v1) {
        be->v1_wrap = t->wrap;
        be->ops = &be->v1_wrap;
        be->ctx = (void *)t->v1;
        be->v1 = true;
        be->kt_stride_early = !FERRY_OPS_V1_HAS(t->v1, binary_scalar);
    } else {
        be->ops = t->ops;
        be->ctx = NULL; /* init sets it */
        be->v1 = false;
        be->kt_stride_early = false;
    }
}

/* Runs init and reads device info; sets state and reason. */
static void init_backend(ferry_backend *be)
{
    int32_t count = 0;
    char why[512] = "";
    ferry_status st = be->ops->init(&be->ctx, &count, why, sizeof why);
    if (st != FERRY_OK) {
        set_failed(be, st, dup_printf("%s: %s", be->name, ferry_last_error()));
        return;
    }
    if (count <= 0) {
        be->state = FERRY_BACKEND_NO_DEVICES;
        be->device_count = 0;
        be->reason = why[0] ? dup_printf("%s: no device (%s)", be->name, why)
                            : dup_printf("%s: no device", be->name);
        ferry__debug("plugins", "%s", be->reason ? be->reason : "");
        return;
    }
    be->device_count = count; /* the allocator sizes its pools from it */
    be->host_accessible = calloc((size_t)count, sizeof(bool));
    be->fallbacks = calloc((size_t)count, sizeof be->fallbacks[0]);
    be->lost = calloc((size_t)count, sizeof be->lost[0]);
    be->unrecorded = calloc((size_t)count, sizeof be->unrecorded[0]);
    be->alloc = ferry__allocator_create(be);
    if (!be->host_accessible || !be->fallbacks || !be->lost || !be->unrecorded || !be->alloc) {
        set_failed(be, FERRY_ERR_OUT_OF_MEMORY, dup_printf("%s: out of memory", be->name));
        return;
    }
    for (int32_t i = 0; i < count; i++) {
        ferry_device_info info;
        memset(&info, 0, sizeof info);
        if (be->ops->device_info(be->ctx, i, &info) != FERRY_OK) {
            set_failed(be, FERRY_ERR_BACKEND,
                       dup_printf("%s: device_info(%d) failed: %s", be->name, i,
                                  ferry_last_error()));
            return;
        }
        be->host_accessible[i] = info.host_accessible;
    }
    be->state = FERRY_BACKEND_READY;
    ferry__debug("plugins", "%s ready: %d device%s (%s)", be->name, count, count == 1 ? "" : "s",
                 be->path);
}

/* A still-loaded backend of an earlier generation from the same file, if any. */
static ferry_backend *take_zombie_locked(const char *path)
{
    for (size_t i = 0; i < reg.nzombies; i++) {
        ferry_backend *z = reg.zombies[i];
        if (z->path && strcmp(z->path, path) == 0) {
            reg.zombies[i] = reg.zombies[--reg.nzombies];
            return z;
        }
    }
    return NULL;
}

/* Loads the registry entry `be`; returns the entry now in its slot (an adopted earlier
 * generation replaces a fresh one). */
static ferry_backend *load_locked(ferry_backend *be)
{
    if (be->state != FERRY_BACKEND_NOT_LOADED)
        return be;
    ferry_backend *z = be->path ? take_zombie_locked(be->path) : NULL;
    if (z) {
        ferry__debug("plugins", "%s: reusing the still-loaded %s", z->name, z->path);
        atomic_fetch_add(&z->refs, 1);
        for (size_t i = 0; i < reg.count; i++)
            if (reg.list[i] == be)
                reg.list[i] = z;
        free(be->path);
        free(be);
        return z;
    }
    if (!be->path) {
        set_failed(be, FERRY_ERR_UNAVAILABLE,
                   dup_printf("%s: libferry-backend-%s.so not found (searched %s)", be->name,
                              be->name, reg.searched[0] ? reg.searched : "nothing"));
        return be;
    }
    char *reason = NULL;
    plugin_table t;
    ferry_status st = open_plugin(be->path, &be->dl, &t, &reason);
    if (st != FERRY_OK) {
        set_failed(be, st, dup_printf("%s: %s", be->name, reason ? reason : "load failed"));
        free(reason);
        return be;
    }
    install_table(be, &t);
    if (strcmp(be->ops->name, be->name) != 0) {
        set_failed(be, FERRY_ERR_UNAVAILABLE,
                   dup_printf("%s: %s claims the device type '%s', but its file name is for "
                              "'%s'",
                              be->name, be->path, be->ops->name, be->name));
        dlclose(be->dl);
        be->dl = NULL;
        be->ops = NULL;
        be->ctx = NULL;
        return be;
    }
    init_backend(be);
    return be;
}

static ferry_status state_error(const ferry_backend *be)
{
    return ferry__error(FERRY_ERR_UNAVAILABLE, "%s", be->reason ? be->reason : be->name);
}

ferry_backend *ferry__backend_get(const char *type)
{
    lock();
    discover_locked();
    ferry_backend *be = find_locked(type);
    if (!be) {
        unlock();
        char expected[512];
        ferry__backend_known(type, expected, sizeof expected);
        ferry__error(FERRY_ERR_INVALID_DEVICE,
                     "Expected one of %s device type at start of device string: %s", expected,
                     type);
        return NULL;
    }
    be = load_locked(be);
    if (be->state != FERRY_BACKEND_READY) {
        state_error(be);
        unlock();
        return NULL;
    }
    unlock();
    return be;
}

ferry_backend *ferry__cpu_backend(void)
{
    /* The hot path: the cpu entry never moves once loaded, until ferry_shutdown(). */
    return ferry__backend_get("cpu");
}

bool ferry__backend_known(const char *type, char *expected, size_t cap)
{
    lock();
    discover_locked();
    bool known = type && find_locked(type) != NULL;
    if (expected && cap) {
        expected[0] = '\0';
        size_t used = 0;
        for (size_t i = 0; i < reg.count && used < cap; i++) {
            int n = snprintf(expected + used, cap - used, "%s%s", i ? ", " : "",
                             reg.list[i]->name);
            if (n < 0)
                break;
            used += (size_t)n;
        }
    }
    unlock();
    return known;
}

void ferry__backend_retain(ferry_backend *be)
{
    atomic_fetch_add_explicit(&be->refs, 1, memory_order_relaxed);
}

void ferry__backend_release(ferry_backend *be)
{
    if (!be || atomic_fetch_sub_explicit(&be->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Under the lock, a later generation may have adopted it in the meantime. */
    lock();
    if (atomic_load(&be->refs) != 0) {
        unlock();
        return;
    }
    for (size_t i = 0; i < reg.nzombies; i++)
        if (reg.zombies[i] == be) {
            reg.zombies[i] = reg.zombies[--reg.nzombies];
            break;
        }
    unlock();
    /* Last reference: no storage and no registry entry points here any more. */
    if (be->alloc)
        ferry__allocator_destroy(be);
    if (be->ops && FERRY_OPS_HAS(be->ops, shutdown) && be->ops->shutdown)
        be->ops->shutdown(be->ctx);
    if (be->dl) {
        ferry__debug("plugins", "unloading %s (%s)", be->name, be->path ? be->path : "");
        dlclose(be->dl);
    }
    free(be->host_accessible);
    free(be->fallbacks);
    for (int32_t i = 0; be->lost && i < be->device_count; i++)
        free(atomic_load(&be->lost[i]));
    free(be->lost);
    free(be->unrecorded);
    free(be->reason);
    free(be->path);
    free(be);
}

FERRY_API void ferry_shutdown(void)
{
    ferry__staging_drain(NULL); /* their backend references would keep plugins as zombies */
    lock();
    ferry_backend *list[MAX_BACKENDS];
    size_t n = reg.count;
    memcpy(list, reg.list, n * sizeof list[0]);
    reg.count = 0;
    reg.discovered = false;
    /* Entries still used by tensors wait as zombies for their last tensor. */
    for (size_t i = 0; i < n; i++)
        if (list[i]->dl && atomic_load(&list[i]->refs) > 1 && reg.nzombies < MAX_BACKENDS)
            reg.zombies[reg.nzombies++] = list[i];
    unlock();
    for (size_t i = 0; i < n; i++)
        ferry__backend_release(list[i]);
    ferry__tensor_blocks_drain();
    ferry__fault_reset();
}

FERRY_API ferry_status ferry_plugin_load(const char *path)
{
    if (!path)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_plugin_load: path is NULL");
    if (path[0] != '/')
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_plugin_load: '%s' is not an absolute path (plugins are never "
                            "loaded relative to the current directory)",
                            path);
    lock();
    discover_locked();
    for (size_t i = 0; i < reg.count; i++) {
        ferry_backend *b = reg.list[i];
        if (b->dl && b->path && strcmp(b->path, path) == 0) {
            unlock();
            return FERRY_OK;
        }
    }
    void *dl;
    plugin_table t;
    char *reason = NULL;
    ferry_status st = open_plugin(path, &dl, &t, &reason);
    if (st != FERRY_OK) {
        unlock();
        ferry__error(st, "ferry_plugin_load: %s", reason ? reason : path);
        free(reason);
        return st;
    }
    const ferry_backend_ops *ops = t.ops;
    ferry_backend *be = find_locked(ops->name);
    if (be && (be->dl || be->state != FERRY_BACKEND_NOT_LOADED)) {
        char *other = be->path ? strdup(be->path) : NULL;
        char name[FERRY_MAX_TYPE_LEN + 1];
        snprintf(name, sizeof name, "%s", ops->name); /* ops dies with dlclose */
        dlclose(dl);
        unlock();
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "ferry_plugin_load: %s claims the device type '%s', which %s already "
                     "provides",
                     path, name, other ? other : "another plugin");
        free(other);
        return FERRY_ERR_INVALID_ARGUMENT;
    }
    if (!be)
        be = add_locked(ops->name, strlen(ops->name));
    if (!be) {
        dlclose(dl);
        unlock();
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_plugin_load: registry full");
    }
    free(be->path);
    be->path = strdup(path);
    be->dl = dl;
    install_table(be, &t);
    init_backend(be);
    st = FERRY_OK;
    if (be->state == FERRY_BACKEND_FAILED)
        st = state_error(be);
    unlock();
    return st;
}

FERRY_API size_t ferry_backend_count(void)
{
    lock();
    discover_locked();
    size_t n = reg.count;
    unlock();
    return n;
}

/* The names ferry_backend_name hands out, one copy per name for the life of the process.
 * An entry's own name cannot be handed out: loading an entry can adopt an earlier
 * generation in its place and free it, while the caller still holds the name (as
 * ferry_devices does between ferry_device_count and the copy). Reachable from `interned`,
 * so never reported as a leak. */
typedef struct interned_name {
    struct interned_name *next;
    char name[FERRY_MAX_TYPE_LEN + 1];
} interned_name;
static interned_name *interned;

static const char *intern_locked(const char *name)
{
    for (interned_name *n = interned; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n->name;
    interned_name *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    snprintf(n->name, sizeof n->name, "%s", name);
    n->next = interned;
    interned = n;
    return n->name;
}

FERRY_API const char *ferry_backend_name(size_t i)
{
    lock();
    discover_locked();
    const char *name = i < reg.count ? intern_locked(reg.list[i]->name) : NULL;
    unlock();
    return name;
}

/* Loads `type` (if known) and returns its entry, or NULL when unknown. */
static ferry_backend *lookup_loaded(const char *type)
{
    if (!type)
        type = "cpu";
    /* These callers never fail: a plugin that cannot load leaves its reason in the
     * registry, not in the caller's last error. */
    ferry_error_state saved;
    ferry__error_save(&saved);
    lock();
    discover_locked();
    ferry_backend *be = find_locked(type);
    if (be)
        be = load_locked(be);
    unlock();
    ferry__error_restore(&saved);
    return be;
}

void ferry__device_lost(const char *backend, int32_t device, const char *reason)
{
    lock();
    ferry_backend *be = backend ? find_locked(backend) : NULL;
    unlock();
    if (!be || !be->lost || device < 0 || device >= be->device_count)
        return;
    char *why = dup_printf("%s:%d is unusable for the rest of this process: %s", be->name,
                           (int)device, reason && *reason ? reason : "the driver lost it");
    char *none = NULL;
    if (!why || !atomic_compare_exchange_strong(&be->lost[device], &none, why))
        free(why); /* the first reason stays */
    else
        ferry__debug("plugins", "%s", why);
}

const char *ferry__device_lost_reason(const ferry_backend *be, int32_t device)
{
    return be->lost && device >= 0 && device < be->device_count ? atomic_load(&be->lost[device])
                                                                 : NULL;
}

/* Whether a loaded plugin declares DLPack type `dl_type`. Its table answers even when it
 * has no usable device, so a kDLCUDA import on a machine without a driver reaches the cuda
 * plugin and reports its reason, with no backend name known to the core. */
static bool declares_dlpack_type(const ferry_backend *be, int32_t dl_type)
{
    return be && be->ops && FERRY_OPS_HAS(be->ops, dlpack_device_type) &&
           be->ops->dlpack_device_type == dl_type;
}

const char *ferry__backend_for_dlpack_type(int32_t dl_type)
{
    const char *found = NULL;
    if (dl_type <= 0) /* 0 is what a plugin without a DLPack type declares */
        return NULL;
    ferry_error_state saved;
    ferry__error_save(&saved);
    lock();
    discover_locked();
    /* The plugins already loaded first; only then load the others to ask them (each load
     * probes a driver). */
    for (size_t i = 0; i < reg.count && !found; i++)
        if (reg.list[i]->state != FERRY_BACKEND_NOT_LOADED &&
            declares_dlpack_type(reg.list[i], dl_type))
            found = reg.list[i]->name;
    for (size_t i = 0; i < reg.count && !found; i++) {
        if (reg.list[i]->state != FERRY_BACKEND_NOT_LOADED)
            continue;
        ferry_backend *be = load_locked(reg.list[i]);
        if (declares_dlpack_type(be, dl_type))
            found = be->name;
    }
    unlock();
    ferry__error_restore(&saved);
    return found;
}

/* Devices of a ready backend that are not lost. */
static int32_t usable_devices(const ferry_backend *be, const char **why)
{
    int32_t n = 0;
    for (int32_t i = 0; i < be->device_count; i++) {
        const char *r = ferry__device_lost_reason(be, i);
        if (!r)
            n++;
        else if (why && !*why)
            *why = r;
    }
    return n;
}

FERRY_API const char *ferry_backend_status(const char *type)
{
    ferry_backend *be = lookup_loaded(type);
    if (!be)
        return "unknown backend";
    if (be->state != FERRY_BACKEND_READY)
        return be->reason;
    const char *why = NULL;
    return be->device_count > 0 && usable_devices(be, &why) == 0 ? why : NULL;
}

FERRY_API const char *ferry_backend_path(const char *type)
{
    lock();
    discover_locked();
    ferry_backend *be = find_locked(type ? type : "cpu");
    const char *p = be ? be->path : NULL;
    unlock();
    return p;
}

FERRY_API const char *ferry_backend_version(const char *type)
{
    ferry_backend *be = lookup_loaded(type);
    return be && be->ops ? be->ops->version : NULL;
}

FERRY_API int ferry_device_count(const char *type)
{
    ferry_backend *be = lookup_loaded(type);
    return be && be->state == FERRY_BACKEND_READY ? be->device_count : 0;
}

FERRY_API bool ferry_is_available(const char *type)
{
    ferry_backend *be = lookup_loaded(type);
    return be && be->state == FERRY_BACKEND_READY && usable_devices(be, NULL) > 0;
}

FERRY_API size_t ferry_devices(ferry_device *out, size_t cap)
{
    size_t total = 0;
    size_t n = ferry_backend_count();
    for (size_t i = 0; i < n; i++) {
        const char *name = ferry_backend_name(i);
        if (!name)
            break;
        int count = ferry_device_count(name);
        for (int d = 0; d < count; d++) {
            if (out && total < cap) {
                memset(&out[total], 0, sizeof out[total]);
                snprintf(out[total].type, sizeof out[total].type, "%s", name);
                out[total].index = d;
            }
            total++;
        }
    }
    return total;
}

const char *ferry__device_str(const ferry_backend *be, int32_t device, char buf[32])
{
    ferry_device d;
    memset(&d, 0, sizeof d);
    memcpy(d.type, be->name, sizeof d.type);
    d.index = device;
    ferry_device_format(d, buf, 32);
    return buf;
}

/* Several processes: loads communicator plugins (libferry-comm-NAME.so) from the plugin
 * folders, checks collective arguments, and moves each tensor by the path its device
 * allows: host memory straight to the communicator, device memory a communicator accepts
 * (NCCL, CUDA-aware MPI) directly, device memory the host maps without a copy (host_map)
 * in place, anything else staged through pinned host buffers in chunks with to()'s
 * pipeline. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ferry/comm.h>
#include <ferry/distributed.h>
#include <ferry/half.h>

#include "internal.h"

#define GROUP_MAGIC 0x47525550u /* "GRUP" */
#define MAX_COMMS 16
/* Shape entries compared in FERRY_DIST_DEBUG; longer shapes compare their numel too. */
#define DEBUG_DIMS 8

typedef struct comm_plugin {
    char name[FERRY_MAX_TYPE_LEN + 1];
    void *dl;
    const ferry_comm_ops *ops;
} comm_plugin;

struct ferry_dist_group {
    uint32_t magic;
    int n;                    /* members */
    int *ranks;               /* ascending world ranks */
    int me;                   /* this rank's index in ranks, -1 when not a member */
    ferry_comm_group *host;   /* the host communicator's group (NULL off the group) */
    ferry_comm_group *device; /* the device communicator's, when there is one */
    struct ferry_dist_group *next;
};

static struct {
    bool initialized;
    comm_plugin host;   /* carries host memory and staged device memory */
    comm_plugin device; /* optional: takes device memory directly (nccl) */
    bool has_device;
    int rank, size;
    ferry_dist_group *groups;
    ferry_dist_group *creating; /* the group whose device half is being made */
    bool debug;
    size_t chunk; /* bytes per chunk on the chunked paths */
} dist;

/* Bytes per chunk, smaller than to()'s staging chunk: a staged chunk is written and then
 * read back by MPI, and a chunk that stays in cache saves both trips to memory. 2 ranks
 * on the 2-core AMD EPYC (Zen 5, 1 MiB L2 a core), 64 MiB all_reduce with every leg on
 * the caller's thread, quiet: sim tensors ran at 0.74 of cpu tensors with 8 MiB chunks,
 * 0.67-0.85 with 2 MiB and 0.91-0.98 with 512 KiB ones; but 512 KiB chunks cost cpu
 * tensors 5-7% against one MPI_Allreduce at 4 MiB, 2 MiB ones nothing measurable. Every
 * rank must make the same calls, so the size cannot follow each machine's cache. */
#define DIST_CHUNK ((size_t)2 << 20)

static const char not_initialized[] =
    "Default process group has not been initialized, please make sure to call "
    "init_process_group.";

static ferry_status check_init(void)
{
    if (!dist.initialized)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s", not_initialized);
    return FERRY_OK;
}

/* ---- loading ---- */

typedef struct find_ctx {
    const char *file;
    char *found;
    char searched[2048];
} find_ctx;

static void find_visit(const char *dir, void *ctx)
{
    find_ctx *f = ctx;
    size_t used = strlen(f->searched);
    if (used + 1 < sizeof f->searched)
        snprintf(f->searched + used, sizeof f->searched - used, "%s%s", used ? ", " : "", dir);
    if (f->found)
        return;
    char *path = NULL;
    if (asprintf(&path, "%s/%s", dir, f->file) < 0)
        return;
    if (access(path, F_OK) == 0)
        f->found = path;
    else
        free(path);
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FERRY_MAX_TYPE_LEN || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Opens libferry-comm-NAME.so and checks its table; the error names what is missing. */
static ferry_status comm_load(const char *name, comm_plugin *out, const char *fn)
{
    memset(out, 0, sizeof *out);
    if (!valid_name(name))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: invalid backend name '%s' (expected \"mpi\", \"nccl\" or a "
                            "communicator plugin's [a-z][a-z0-9_]* name)",
                            fn, name);
    find_ctx f = {.found = NULL};
    char file[64];
    snprintf(file, sizeof file, "libferry-comm-%s.so", name);
    f.file = file;
    ferry__plugin_dirs_visit(find_visit, &f);
    if (!f.found)
        return ferry__error(FERRY_ERR_UNAVAILABLE,
                            "%s: the %s communicator is not available: %s not found (searched "
                            "%s)",
                            fn, name, file, f.searched[0] ? f.searched : "nothing");
    void *dl = dlopen(f.found, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        ferry_status st = ferry__error(FERRY_ERR_UNAVAILABLE,
                                       "%s: the %s communicator is not available: %s", fn, name,
                                       e ? e : f.found);
        free(f.found);
        return st;
    }
    ferry_comm_entry_fn entry;
    *(void **)&entry = dlsym(dl, FERRY_COMM_ENTRY_SYMBOL);
    const ferry_comm_ops *ops = entry ? entry(ferry__host_api()) : NULL;
    ferry_status st = FERRY_OK;
    if (!entry)
        st = ferry__error(FERRY_ERR_UNAVAILABLE, "%s: %s has no %s symbol: not a ferry "
                          "communicator plugin", fn, f.found, FERRY_COMM_ENTRY_SYMBOL);
    else if (!ops)
        st = ferry__error(FERRY_ERR_UNAVAILABLE, "%s: the %s communicator is not available: %s",
                          fn, name, ferry_last_error());
    else if (ops->abi_version != FERRY_COMM_ABI_VERSION)
        st = ferry__error(FERRY_ERR_ABI,
                          "%s: %s was built for communicator ABI %u, but this ferry has ABI "
                          "%u; rebuild the plugin against this ferry's SDK",
                          fn, f.found, ops->abi_version, FERRY_COMM_ABI_VERSION);
    else if (!FERRY_COMM_HAS(ops, recv))
        st = ferry__error(FERRY_ERR_ABI, "%s: %s reports a table of %zu bytes, smaller than "
                          "communicator ABI %u requires",
                          fn, f.found, ops->struct_size, FERRY_COMM_ABI_VERSION);
    else if (!ops->name || strcmp(ops->name, name) != 0)
        st = ferry__error(FERRY_ERR_UNAVAILABLE, "%s: %s claims the name '%s'", fn, f.found,
                          ops->name ? ops->name : "(null)");
    else if (!ops->init || !ops->finalize || !ops->group_create || !ops->group_free ||
             !ops->barrier || !ops->all_reduce || !ops->reduce || !ops->broadcast ||
             !ops->all_gather || !ops->reduce_scatter || !ops->all_to_all || !ops->send ||
             !ops->recv)
        st = ferry__error(FERRY_ERR_UNAVAILABLE, "%s: %s lacks a required entry", fn, f.found);
    free(f.found);
    if (st != FERRY_OK) {
        dlclose(dl);
        return st;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    out->dl = dl;
    out->ops = ops;
    return FERRY_OK;
}

static void comm_unload(comm_plugin *c)
{
    /* libmpi and the CUDA runtime register exit handlers of their own: unloading them
     * before exit would leave those handlers pointing at unmapped code. */
    memset(c, 0, sizeof *c);
}

static bool accepts(const comm_plugin *c, const char *type)
{
    return c->ops && c->ops->accepts_device && c->ops->accepts_device(type);
}

/* ---- listing ---- */

static struct {
    char names[MAX_COMMS][FERRY_MAX_TYPE_LEN + 1];
    size_t count;
    char status[MAX_COMMS][1024];
} listing;

static void list_add(const char *name)
{
    for (size_t i = 0; i < listing.count; i++)
        if (strcmp(listing.names[i], name) == 0)
            return;
    if (listing.count < MAX_COMMS)
        snprintf(listing.names[listing.count++], sizeof listing.names[0], "%s", name);
}

static void list_visit(const char *dir, void *ctx)
{
    (void)ctx;
    DIR *d = opendir(dir);
    if (!d)
        return;
    static const char prefix[] = "libferry-comm-", suffix[] = ".so";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= sizeof prefix + sizeof suffix - 2 ||
            strncmp(e->d_name, prefix, sizeof prefix - 1) != 0 ||
            strcmp(e->d_name + len - (sizeof suffix - 1), suffix) != 0)
            continue;
        char name[FERRY_MAX_TYPE_LEN + 1];
        size_t n = len - (sizeof prefix - 1) - (sizeof suffix - 1);
        if (n > FERRY_MAX_TYPE_LEN)
            continue;
        memcpy(name, e->d_name + sizeof prefix - 1, n);
        name[n] = '\0';
        if (valid_name(name))
            list_add(name);
    }
    closedir(d);
}

FERRY_API size_t ferry_dist_backends(void)
{
    listing.count = 0;
    list_add("mpi");
    list_add("nccl");
    ferry__plugin_dirs_visit(list_visit, NULL);
    return listing.count;
}

FERRY_API const char *ferry_dist_backend_name(size_t i)
{
    if (listing.count == 0)
        ferry_dist_backends();
    return i < listing.count ? listing.names[i] : NULL;
}

FERRY_API const char *ferry_dist_backend_status(const char *name)
{
    if (!name)
        return "no name given";
    if (listing.count == 0)
        ferry_dist_backends();
    size_t slot = MAX_COMMS;
    for (size_t i = 0; i < listing.count; i++)
        if (strcmp(listing.names[i], name) == 0)
            slot = i;
    if (slot == MAX_COMMS)
        return "not a known communicator";
    ferry_error_state saved;
    ferry__error_save(&saved);
    comm_plugin c;
    const char *why = NULL;
    if (comm_load(name, &c, name) != FERRY_OK) {
        /* "mpi: the mpi communicator is not available: ..." reads better shortened. */
        const char *m = ferry_last_error();
        const char *tail = strstr(m, "is not available: ");
        snprintf(listing.status[slot], sizeof listing.status[slot], "%s",
                 tail ? tail + strlen("is not available: ") : m);
        why = listing.status[slot];
    } else if (c.ops->probe && (why = c.ops->probe()) != NULL) {
        snprintf(listing.status[slot], sizeof listing.status[slot], "%s", why);
        why = listing.status[slot];
    }
    comm_unload(&c);
    ferry__error_restore(&saved);
    return why;
}

/* ---- init and groups ---- */

static ferry_dist_group *find_group_for_bootstrap(const int *ranks, int n)
{
    ferry_dist_group *g = dist.creating;
    if (g && g->n == n && memcmp(g->ranks, ranks, (size_t)n * sizeof *ranks) == 0)
        return g;
    return NULL;
}

static int local_rank(const ferry_dist_group *g, int world_rank)
{
    if (!g)
        return world_rank >= 0 && world_rank < dist.size ? world_rank : -1;
    for (int i = 0; i < g->n; i++)
        if (g->ranks[i] == world_rank)
            return i;
    return -1;
}

static ferry_status bootstrap_broadcast(void *buf, size_t nbytes, int root, const int *ranks, int n)
{
    if (!ranks)
        return dist.host.ops->broadcast(buf, nbytes, root, NULL, NULL);
    ferry_dist_group *g = find_group_for_bootstrap(ranks, n);
    if (!g || !g->host)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "bootstrap_broadcast: no host group for these %d ranks", n);
    int r = local_rank(g, root);
    if (r < 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "bootstrap_broadcast: root %d is not in the group", root);
    return dist.host.ops->broadcast(buf, nbytes, r, g->host, NULL);
}

static ferry_status parse_timeout(double *out)
{
    *out = 300.0;
    const char *s = getenv("FERRY_DIST_TIMEOUT");
    if (!s || !*s)
        return FERRY_OK;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v > 0) || !isfinite(v))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_dist_init: FERRY_DIST_TIMEOUT='%s' is not a positive number "
                            "of seconds",
                            s);
    *out = v;
    return FERRY_OK;
}

FERRY_API ferry_status ferry_dist_init(const char *backend)
{
    if (dist.initialized)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_dist_init: trying to initialize the default process group "
                            "twice!");
    ferry_comm_config cfg = {.struct_size = sizeof cfg, .world_rank = -1, .world_size = -1};
    ferry_status st = parse_timeout(&cfg.timeout_s);
    if (st != FERRY_OK)
        return st;
    /* FERRY_DIST_CHUNK_BYTES (a test knob, the same on every rank) makes small tensors
     * take several chunks. */
    dist.chunk = DIST_CHUNK;
    const char *ch = getenv("FERRY_DIST_CHUNK_BYTES");
    if (ch && *ch) {
        char *end = NULL;
        unsigned long long v = strtoull(ch, &end, 10);
        if (end == ch || *end != '\0' || v < 64 || v > ((size_t)1 << 30))
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "ferry_dist_init: FERRY_DIST_CHUNK_BYTES='%s' is not a byte "
                                "count in 64 .. 2^30",
                                ch);
        dist.chunk = (size_t)v;
    }
    const char *dbg = getenv("FERRY_DIST_DEBUG");
    dist.debug = dbg && strcmp(dbg, "1") == 0;
    cfg.debug = dist.debug;

    bool want_nccl = backend && strcmp(backend, "nccl") == 0;
    if (!backend) {
        /* nccl when it would work: a CUDA device and a plugin whose engine loads. */
        ferry_error_state saved;
        ferry__error_save(&saved);
        want_nccl = ferry_is_available("cuda") && ferry_dist_backend_status("nccl") == NULL;
        ferry__error_restore(&saved);
    }
    const char *host_name = backend && !want_nccl ? backend : "mpi";
    if ((st = comm_load(host_name, &dist.host, "ferry_dist_init")) != FERRY_OK)
        return st;
    int rank = -1, size = -1;
    if ((st = dist.host.ops->init(&cfg, &rank, &size)) != FERRY_OK) {
        comm_unload(&dist.host);
        return st;
    }
    if (rank < 0 || size < 1 || rank >= size) {
        dist.host.ops->finalize();
        comm_unload(&dist.host);
        return ferry__error(FERRY_ERR_BACKEND, "ferry_dist_init: %s gave rank %d of %d",
                            host_name, rank, size);
    }
    if (want_nccl) {
        if ((st = comm_load("nccl", &dist.device, "ferry_dist_init")) == FERRY_OK) {
            cfg.bootstrap_broadcast = bootstrap_broadcast;
            cfg.world_rank = rank;
            cfg.world_size = size;
            dist.size = size; /* bootstrap_broadcast reads it */
            int r2 = -1, s2 = -1;
            st = dist.device.ops->init(&cfg, &r2, &s2);
            if (st == FERRY_OK && (r2 != rank || s2 != size)) {
                dist.device.ops->finalize();
                st = ferry__error(FERRY_ERR_BACKEND,
                                  "ferry_dist_init: nccl sees rank %d of %d, mpi rank %d of %d",
                                  r2, s2, rank, size);
            }
            if (st != FERRY_OK)
                comm_unload(&dist.device);
        }
        if (st != FERRY_OK) {
            dist.host.ops->finalize();
            comm_unload(&dist.host);
            return st;
        }
        dist.has_device = true;
    }
    dist.rank = rank;
    dist.size = size;
    dist.initialized = true;
    ferry__debug("dist", "rank %d of %d through %s%s", rank, size, host_name,
                 dist.has_device ? " and nccl" : "");
    return FERRY_OK;
}

FERRY_API bool ferry_dist_is_initialized(void)
{
    return dist.initialized;
}

FERRY_API const char *ferry_dist_backend(void)
{
    if (!dist.initialized)
        return NULL;
    return dist.has_device ? "nccl" : dist.host.name;
}

FERRY_API int ferry_dist_rank(void)
{
    return check_init() == FERRY_OK ? dist.rank : -1;
}

FERRY_API int ferry_dist_world_size(void)
{
    return check_init() == FERRY_OK ? dist.size : -1;
}

static void group_free(ferry_dist_group *g)
{
    if (g->device)
        dist.device.ops->group_free(g->device);
    if (g->host)
        dist.host.ops->group_free(g->host);
    g->magic = 0;
    free(g->ranks);
    free(g);
}

FERRY_API ferry_status ferry_dist_finalize(void)
{
    if (!dist.initialized)
        return FERRY_OK;
    while (dist.groups) {
        ferry_dist_group *g = dist.groups;
        dist.groups = g->next;
        group_free(g);
    }
    if (dist.has_device) {
        dist.device.ops->finalize();
        comm_unload(&dist.device);
        dist.has_device = false;
    }
    dist.host.ops->finalize();
    comm_unload(&dist.host);
    dist.initialized = false;
    return FERRY_OK;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

FERRY_API ferry_dist_group *ferry_dist_new_group(const int *ranks, int n)
{
    if (check_init() != FERRY_OK)
        return NULL;
    if (!ranks || n <= 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "ferry_dist_new_group: a group needs at least one rank (got %d)", n);
        return NULL;
    }
    if (n > dist.size) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "ferry_dist_new_group: %d ranks listed, but the world has %d", n, dist.size);
        return NULL;
    }
    ferry_dist_group *g = calloc(1, sizeof *g);
    int *sorted = malloc((size_t)n * sizeof *sorted);
    if (!g || !sorted) {
        free(g);
        free(sorted);
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_dist_new_group: out of memory");
        return NULL;
    }
    memcpy(sorted, ranks, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_int);
    for (int i = 0; i < n; i++) {
        const char *bad = sorted[i] < 0 || sorted[i] >= dist.size ? "is not a rank of the world"
                          : i > 0 && sorted[i] == sorted[i - 1]   ? "is listed twice"
                                                                  : NULL;
        if (bad) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "ferry_dist_new_group: rank %d %s (world size %d)", sorted[i], bad,
                         dist.size);
            free(sorted);
            free(g);
            return NULL;
        }
    }
    g->magic = GROUP_MAGIC;
    g->n = n;
    g->ranks = sorted;
    g->me = local_rank(g, dist.rank);
    ferry_status st = dist.host.ops->group_create(sorted, n, &g->host);
    if (st == FERRY_OK && dist.has_device) {
        dist.creating = g;
        st = dist.device.ops->group_create(sorted, n, &g->device);
        dist.creating = NULL;
    }
    if (st != FERRY_OK) {
        group_free(g);
        return NULL;
    }
    g->next = dist.groups;
    dist.groups = g;
    return g;
}

FERRY_API void ferry_dist_group_release(ferry_dist_group *g)
{
    if (!g || !dist.initialized)
        return;
    for (ferry_dist_group **p = &dist.groups; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            group_free(g);
            return;
        }
}

static ferry_status check_group(const ferry_dist_group *g, const char *fn)
{
    ferry_status st = check_init();
    if (st != FERRY_OK || !g)
        return st;
    if (g->magic != GROUP_MAGIC)
        return ferry__error(FERRY_ERR_INVALID_HANDLE, "%s: not a live group (released, or "
                            "made before the last ferry_dist_finalize)", fn);
    if (g->me < 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: rank %d is not a member of the "
                            "group", fn, dist.rank);
    return FERRY_OK;
}

FERRY_API int ferry_dist_group_rank(const ferry_dist_group *g)
{
    if (check_init() != FERRY_OK)
        return -1;
    return g ? (g->magic == GROUP_MAGIC ? g->me : -1) : dist.rank;
}

FERRY_API int ferry_dist_group_size(const ferry_dist_group *g)
{
    if (check_init() != FERRY_OK)
        return -1;
    return g ? (g->magic == GROUP_MAGIC ? g->n : -1) : dist.size;
}

static int group_size(const ferry_dist_group *g)
{
    return g ? g->n : dist.size;
}

static int group_me(const ferry_dist_group *g)
{
    return g ? g->me : dist.rank;
}

FERRY_API ferry_status ferry_dist_group_barrier(const ferry_dist_group *g)
{
    ferry_status st = check_group(g, "ferry_dist_barrier");
    if (st != FERRY_OK)
        return st;
    return dist.host.ops->barrier(g ? g->host : NULL);
}

FERRY_API ferry_status ferry_dist_barrier(void)
{
    return ferry_dist_group_barrier(NULL);
}

/* ---- the path of one tensor ---- */

typedef enum kind {
    K_ALL_REDUCE, K_REDUCE, K_BROADCAST, K_ALL_GATHER, K_REDUCE_SCATTER, K_ALL_TO_ALL,
    K_SEND, K_RECV,
} kind;

static const char *const kind_names[] = {"all_reduce", "reduce", "broadcast", "all_gather",
                                         "reduce_scatter", "all_to_all", "send", "recv"};

typedef enum path { PATH_HOST, PATH_DIRECT, PATH_STAGED } path;

/* How one tensor travels, and the communicator that carries it. */
typedef struct route {
    path path;
    const comm_plugin *comm;
    const ferry_comm_group *cg;
    char device[32]; /* for PATH_DIRECT */
} route;

static void route_for(const ferry_tensor *t, const ferry_dist_group *g, route *r)
{
    const ferry_storage *s = t->storage;
    memset(r, 0, sizeof *r);
    r->comm = &dist.host;
    r->cg = g ? g->host : NULL;
    if (s->host_accessible) {
        r->path = PATH_HOST;
        return;
    }
    if (dist.has_device && accepts(&dist.device, s->backend->name)) {
        r->comm = &dist.device;
        r->cg = g ? g->device : NULL;
        r->path = PATH_DIRECT;
    } else if (accepts(&dist.host, s->backend->name)) {
        r->path = PATH_DIRECT;
    } else {
        r->path = PATH_STAGED;
    }
    if (r->path == PATH_DIRECT)
        ferry__device_str(s->backend, s->device, r->device);
}

/* A pointer into memory a communicator may touch: host memory or a device pointer. */
static char *raw_ptr(const ferry_tensor *t)
{
    return (char *)t->storage->buffer + t->byte_offset;
}

static size_t tensor_nbytes(const ferry_tensor *t)
{
    return (size_t)ferry__numel(t->ndim, t->shape) * ferry_dtype_size(t->dtype);
}

/* Bytes per chunk on the chunked paths: every rank derives the same count from the dtype
 * alone, so ranks whose tensors take different paths still make matching calls. */
static size_t chunk_bytes(ferry_dtype dtype, int parts)
{
    size_t es = ferry_dtype_size(dtype);
    size_t c = dist.chunk / (size_t)(parts > 0 ? parts : 1);
    c -= c % es;
    return c ? c : es;
}

static bool needs_f32(ferry_dtype dt)
{
    return dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16;
}

static void to_f32(ferry_dtype dt, const void *src, float *dst, size_t n)
{
    const uint16_t *h = src;
    if (dt == FERRY_FLOAT16)
        for (size_t i = 0; i < n; i++)
            dst[i] = ferry_f16_to_f32(h[i]);
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = ferry_bf16_to_f32(h[i]);
}

static void from_f32(ferry_dtype dt, const float *src, void *dst, size_t n)
{
    uint16_t *h = dst;
    if (dt == FERRY_FLOAT16)
        for (size_t i = 0; i < n; i++)
            h[i] = ferry_f32_to_f16(src[i]);
    else
        for (size_t i = 0; i < n; i++)
            h[i] = ferry_f32_to_bf16(src[i]);
}

/* One collective on host (or accepted device) memory, as the chunks of every path see
 * it: the reductions fall back to float32 when the communicator declines the dtype. */
typedef struct job {
    kind kind;
    const comm_plugin *comm;
    const ferry_comm_group *cg;
    const char *device;
    ferry_dtype dtype;
    ferry_comm_op op;
    int root;      /* group rank */
    bool is_root;
    int peer, tag; /* send/recv: world ranks */
    int parts;     /* group size */
    bool use_f32;  /* set once the communicator declined dtype */
    float *f32;    /* conversion buffer: parts * chunk elements for the gather-like ones */
    size_t f32_cap;
} job;

static ferry_status f32_reserve(job *j, size_t n)
{
    if (j->f32_cap >= n)
        return FERRY_OK;
    float *p = realloc(j->f32, n * sizeof *p);
    if (!p)
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                            "ferry_%s: out of memory for a %zu-element float32 buffer",
                            kind_names[j->kind], n);
    j->f32 = p;
    j->f32_cap = n;
    return FERRY_OK;
}

/* In-place reductions (all_reduce, reduce) on count elements at buf. */
static ferry_status reduce_inplace(job *j, void *buf, size_t count)
{
    const ferry_comm_ops *o = j->comm->ops;
    ferry_status st = FERRY_ERR_UNSUPPORTED;
    if (!j->use_f32) {
        st = j->kind == K_ALL_REDUCE
                 ? o->all_reduce(buf, count, j->dtype, j->op, j->cg, j->device)
                 : o->reduce(buf, count, j->dtype, j->op, j->root, j->cg, j->device);
        if (st != FERRY_ERR_UNSUPPORTED || !needs_f32(j->dtype) || j->device)
            return st;
        j->use_f32 = true;
    }
    if ((st = f32_reserve(j, count)) != FERRY_OK)
        return st;
    to_f32(j->dtype, buf, j->f32, count);
    st = j->kind == K_ALL_REDUCE
             ? o->all_reduce(j->f32, count, FERRY_FLOAT32, j->op, j->cg, NULL)
             : o->reduce(j->f32, count, FERRY_FLOAT32, j->op, j->root, j->cg, NULL);
    if (st == FERRY_OK && (j->kind == K_ALL_REDUCE || j->is_root))
        from_f32(j->dtype, j->f32, buf, count);
    return st;
}

/* One chunk of an element-for-element collective; a ferry_stage_fn for the staged path. */
static ferry_status run_chunk(void *ctx, void *buf, size_t offset, size_t len)
{
    job *j = ctx;
    (void)offset;
    size_t es = ferry_dtype_size(j->dtype);
    switch (j->kind) {
    case K_ALL_REDUCE:
    case K_REDUCE:
        return reduce_inplace(j, buf, len / es);
    case K_BROADCAST:
        return j->comm->ops->broadcast(buf, len, j->root, j->cg, j->device);
    case K_SEND:
        return j->comm->ops->send(buf, len, j->peer, j->tag, j->device);
    case K_RECV:
        /* From any source: the first chunk names the sender, the rest come from it. */
        if (j->peer < 0)
            return j->comm->ops->recv_any(buf, len, j->tag, &j->peer, j->device);
        return j->comm->ops->recv(buf, len, j->peer, j->tag, j->device);
    default:
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "run_chunk: not an elementwise kind");
    }
}

/* Waits for the work queued on t's device, so the collective reads its final values. */
static ferry_status sync_tensor(const ferry_tensor *t)
{
    ferry_status st = ferry__be_synchronize(t->storage->backend, t->storage->device);
    return st == FERRY_OK ? ferry__track_host(t->storage, true) : st;
}

/* A device whose memory the host maps without a copy (host_map): each chunk goes to the
 * communicator in place, as host memory does, with neither copy leg of staging. Mapped
 * a chunk at a time, in the chunks every other path makes. *declined, with the error
 * state as it was, when the first mapping is declined: nothing has moved, and the
 * caller stages. */
static ferry_status run_mapped(job *j, ferry_tensor *t, size_t n, bool writes, bool *declined)
{
    ferry_storage *s = t->storage;
    size_t c = chunk_bytes(t->dtype, 1);
    ferry_status st = FERRY_OK;
    ferry_error_state saved;
    ferry__error_save(&saved);
    for (size_t off = 0; off < n && st == FERRY_OK; off += c) {
        size_t len = n - off < c ? n - off : c;
        void *p = NULL;
        st = ferry__be_host_map(s->backend, s->device, s->buffer, t->byte_offset + off, len,
                                writes, &p);
        if (st == FERRY_ERR_UNSUPPORTED && off == 0) {
            ferry__error_restore(&saved);
            *declined = true;
            return FERRY_OK;
        }
        if (st != FERRY_OK)
            break;
        st = run_chunk(j, p, off, len);
        ferry_status su = ferry__be_host_unmap(s->backend, s->device, s->buffer, p);
        if (st == FERRY_OK)
            st = su;
    }
    return st;
}

/* all_reduce, reduce, broadcast, send, recv: the same chunks on every path. `reads` and
 * `writes` say whether this rank's tensor is read and written. */
static ferry_status run_elementwise(job *j, ferry_tensor *t, const ferry_dist_group *g,
                                    bool reads, bool writes)
{
    route r;
    route_for(t, g, &r);
    j->comm = r.comm;
    j->cg = r.cg;
    j->parts = group_size(g);
    size_t n = tensor_nbytes(t);
    ferry_status st = sync_tensor(t);
    if (st != FERRY_OK)
        return st;
    if (n == 0) {
        /* An empty message still travels, so a receive from any source learns its sender
         * (and a send always pairs with one receive). */
        static char none[1];
        bool p2p = j->kind == K_SEND || j->kind == K_RECV;
        return p2p && r.comm == &dist.host ? run_chunk(j, none, 0, 0) : FERRY_OK;
    }
    if (r.path == PATH_STAGED) {
        bool declined = false;
        st = run_mapped(j, t, n, writes, &declined);
        ferry_storage *s = t->storage;
        if (declined)
            st = ferry__copy_staged_ex(writes ? s : NULL, t->byte_offset, reads ? s : NULL,
                                       t->byte_offset, n, chunk_bytes(t->dtype, 1), run_chunk,
                                       j);
    } else if (r.comm == &dist.device) {
        /* The device communicator takes the whole tensor: its own engine pipelines. */
        j->device = r.device;
        st = run_chunk(j, raw_ptr(t), 0, n);
    } else {
        j->device = r.path == PATH_DIRECT ? r.device : NULL;
        size_t c = chunk_bytes(t->dtype, 1);
        for (size_t off = 0; off < n && st == FERRY_OK; off += c)
            st = run_chunk(j, raw_ptr(t) + off, off, n - off < c ? n - off : c);
    }
    free(j->f32);
    j->f32 = NULL;
    if (st == FERRY_OK && writes && r.path != PATH_STAGED)
        st = sync_tensor(t); /* a device communicator's stream is done before later work */
    return st;
}

/* Moves len bytes between a tensor's storage and host memory. */
static ferry_status piece_get(const ferry_tensor *t, size_t off, void *dst, size_t len)
{
    const ferry_storage *s = t->storage;
    if (s->host_accessible) {
        memcpy(dst, raw_ptr(t) + off, len);
        return FERRY_OK;
    }
    return ferry__be_copy_to_host(s->backend, s->device, dst, s->buffer, t->byte_offset + off,
                                  len);
}

static ferry_status piece_put(ferry_tensor *t, size_t off, const void *src, size_t len)
{
    ferry_storage *s = t->storage;
    if (s->host_accessible) {
        memcpy(raw_ptr(t) + off, src, len);
        return FERRY_OK;
    }
    return ferry__be_copy_from_host(s->backend, s->device, s->buffer, t->byte_offset + off, src,
                                    len);
}

/* One call of the block collectives on host buffers: in and out laid out as parts
 * blocks (all_gather's in is one block, reduce_scatter's out is one). */
static ferry_status block_call(job *j, void *out, const void *in, size_t len)
{
    const ferry_comm_ops *o = j->comm->ops;
    size_t es = ferry_dtype_size(j->dtype);
    if (j->kind == K_ALL_GATHER)
        return o->all_gather(out, in, len, j->cg, j->device);
    if (j->kind == K_ALL_TO_ALL)
        return o->all_to_all(out, in, len, j->cg, j->device);
    size_t count = len / es;
    ferry_status st = FERRY_ERR_UNSUPPORTED;
    if (!j->use_f32) {
        st = o->reduce_scatter(out, in, count, j->dtype, j->op, j->cg, j->device);
        if (st != FERRY_ERR_UNSUPPORTED || !needs_f32(j->dtype) || j->device)
            return st;
        j->use_f32 = true;
    }
    size_t total = count * (size_t)j->parts;
    if ((st = f32_reserve(j, total + count)) != FERRY_OK)
        return st;
    to_f32(j->dtype, in, j->f32, total);
    st = o->reduce_scatter(j->f32 + total, j->f32, count, FERRY_FLOAT32, j->op, j->cg, NULL);
    if (st == FERRY_OK)
        from_f32(j->dtype, j->f32 + total, out, count);
    return st;
}

/* all_gather, reduce_scatter, all_to_all. n is the bytes of one block (in for
 * all_gather, out for reduce_scatter, in / parts for all_to_all). */
static ferry_status run_blocks(job *j, ferry_tensor *out, const ferry_tensor *in,
                               const ferry_dist_group *g, size_t n)
{
    route ri, ro;
    route_for(in, g, &ri);
    route_for(out, g, &ro);
    j->parts = group_size(g);
    size_t W = (size_t)j->parts;
    ferry_status st = sync_tensor(in);
    if (st == FERRY_OK)
        st = sync_tensor(out);
    if (st != FERRY_OK || n == 0)
        return st;
    if (ri.path == PATH_DIRECT && ro.path == PATH_DIRECT && ri.comm == &dist.device &&
        ro.comm == &dist.device) {
        j->comm = ri.comm;
        j->cg = ri.cg;
        j->device = ri.device;
        st = block_call(j, raw_ptr(out), raw_ptr(in), n);
        free(j->f32);
        return st == FERRY_OK ? sync_tensor(out) : st;
    }
    j->comm = &dist.host;
    j->cg = g ? g->host : NULL;
    j->device = NULL;
    bool in_many = j->kind != K_ALL_GATHER, out_many = j->kind != K_REDUCE_SCATTER;
    size_t c = chunk_bytes(in->dtype, (int)W);
    /* One chunk with host memory on both sides: the tensors' layout is the call's. */
    if (n <= c && ri.path == PATH_HOST && ro.path == PATH_HOST) {
        st = block_call(j, raw_ptr(out), raw_ptr(in), n);
        free(j->f32);
        return st;
    }
    ferry_backend *owner[2];
    size_t cap = c * W;
    char *tin = ferry__staging_alloc(in->storage->backend, NULL, in_many ? cap : c, &owner[0]);
    char *tout = ferry__staging_alloc(out->storage->backend, NULL, out_many ? cap : c, &owner[1]);
    if (!tin || !tout) {
        if (tin)
            ferry__staging_free(owner[0], tin, in_many ? cap : c);
        if (tout)
            ferry__staging_free(owner[1], tout, out_many ? cap : c);
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                            "ferry_%s: out of host memory for %zu-byte staging buffers",
                            kind_names[j->kind], cap);
    }
    for (size_t off = 0; off < n && st == FERRY_OK; off += c) {
        size_t len = n - off < c ? n - off : c;
        for (size_t r = 0; r < (in_many ? W : 1) && st == FERRY_OK; r++)
            st = piece_get(in, r * n + off, tin + r * len, len);
        if (st == FERRY_OK)
            st = block_call(j, tout, tin, len);
        for (size_t r = 0; r < (out_many ? W : 1) && st == FERRY_OK; r++)
            st = piece_put(out, r * n + off, tout + r * len, len);
    }
    ferry__staging_free(owner[0], tin, in_many ? cap : c);
    ferry__staging_free(owner[1], tout, out_many ? cap : c);
    free(j->f32);
    return st;
}

/* ---- argument checks ---- */

static ferry_status check_tensor_arg(const ferry_tensor *t, const char *fn, bool written)
{
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    if (!ferry__is_contiguous(t->ndim, t->shape, t->strides))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: Tensors must be contiguous", fn);
    if (written && t->read_only)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: the tensor is read-only", fn);
    return FERRY_OK;
}

static ferry_status check_op(ferry_dist_op op, ferry_dtype dtype, const char *fn)
{
    if ((int)op < FERRY_DIST_SUM || (int)op > FERRY_DIST_MAX)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: invalid reduction op %d (expected FERRY_DIST_SUM .. "
                            "FERRY_DIST_MAX)",
                            fn, (int)op);
    if (op == FERRY_DIST_AVG && dtype == FERRY_BOOL)
        return ferry__error(FERRY_ERR_UNSUPPORTED, "%s: Cannot use ReduceOp.AVG with boolean "
                            "inputs", fn);
    return FERRY_OK;
}

static ferry_status check_root(int root, const ferry_dist_group *g, const char *fn, int *local)
{
    *local = local_rank(g, root);
    if (*local < 0)
        return g ? ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "%s: root %d is not a member of the group", fn, root)
                 : ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "%s: Invalid rank %d (the world has ranks 0 .. %d)", fn, root,
                                dist.size - 1);
    return FERRY_OK;
}

/* What FERRY_DIST_DEBUG compares across ranks before a collective. */
typedef struct desc {
    int64_t kind, dtype, ndim, root, numel, op;
    int64_t shape[DEBUG_DIMS];
} desc;

static void desc_fill(desc *d, kind k, const ferry_tensor *t, int root, int op)
{
    memset(d, 0, sizeof *d);
    d->kind = k;
    d->dtype = t->dtype;
    d->ndim = t->ndim;
    d->root = root;
    d->op = op;
    d->numel = ferry__numel(t->ndim, t->shape);
    for (int i = 0; i < t->ndim && i < DEBUG_DIMS; i++)
        d->shape[i] = t->shape[i];
}

static const char *desc_str(const desc *d, char *buf, size_t cap)
{
    char shape[256];
    int64_t dims[DEBUG_DIMS];
    int nd = d->ndim < DEBUG_DIMS ? (int)d->ndim : DEBUG_DIMS;
    for (int i = 0; i < nd; i++)
        dims[i] = d->shape[i];
    ferry__shape_str(nd, dims, shape, sizeof shape);
    const char *dt = d->dtype >= 0 && d->dtype < FERRY_NUM_DTYPES
                         ? ferry_dtype_name((ferry_dtype)d->dtype) : "?";
    const char *kn = d->kind >= 0 && d->kind <= K_RECV ? kind_names[d->kind] : "?";
    snprintf(buf, cap, "%s of %s %s%s", kn, dt, shape, d->ndim > DEBUG_DIMS ? " ..." : "");
    return buf;
}

static ferry_status desc_compare(const desc *a, int ra, const desc *b, int rb, const char *fn)
{
    if (memcmp(a, b, sizeof *a) == 0)
        return FERRY_OK;
    char sa[360], sb[360];
    desc_str(a, sa, sizeof sa);
    desc_str(b, sb, sizeof sb);
    const char *what = a->kind != b->kind       ? "different collectives"
                       : a->dtype != b->dtype   ? "tensors of different dtypes"
                       : a->root != b->root     ? "different roots"
                       : a->op != b->op         ? "different reduction ops"
                                                : "tensors of different shapes";
    if (a->root != b->root && a->kind == b->kind) {
        size_t l = strlen(sa), m = strlen(sb);
        snprintf(sa + l, sizeof sa - l, " with root %lld", (long long)a->root);
        snprintf(sb + m, sizeof sb - m, " with root %lld", (long long)b->root);
    } else if (a->op != b->op && a->kind == b->kind) {
        size_t l = strlen(sa), m = strlen(sb);
        snprintf(sa + l, sizeof sa - l, " with op %lld", (long long)a->op);
        snprintf(sb + m, sizeof sb - m, " with op %lld", (long long)b->op);
    }
    return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                        "%s: ranks passed %s (FERRY_DIST_DEBUG): rank %d: %s, rank %d: %s", fn,
                        what, ra, sa, rb, sb);
}

/* FERRY_DIST_DEBUG: every rank learns every rank's description and fails alike on the
 * first that differs from the group's first rank. */
static ferry_status debug_check(kind k, const ferry_tensor *t, int root, int op,
                                const ferry_dist_group *g, const char *fn)
{
    if (!dist.debug)
        return FERRY_OK;
    int W = group_size(g);
    desc mine;
    desc_fill(&mine, k, t, root, op);
    desc *all = calloc((size_t)W, sizeof *all);
    if (!all)
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    ferry_status st = dist.host.ops->all_gather(all, &mine, sizeof mine, g ? g->host : NULL,
                                                NULL);
    for (int r = 1; r < W && st == FERRY_OK; r++)
        st = desc_compare(&all[0], g ? g->ranks[0] : 0, &all[r], g ? g->ranks[r] : r, fn);
    free(all);
    return st;
}

/* ---- the collectives ---- */

static ferry_comm_op comm_op(ferry_dist_op op)
{
    return (ferry_comm_op)op; /* the two enums are numbered alike */
}

FERRY_API ferry_status ferry_all_reduce(ferry_tensor *t, ferry_dist_op op,
                                        const ferry_dist_group *g)
{
    static const char fn[] = "ferry_all_reduce";
    ferry_status st = check_group(g, fn);
    if (st == FERRY_OK)
        st = check_tensor_arg(t, fn, true);
    if (st == FERRY_OK)
        st = check_op(op, t->dtype, fn);
    if (st == FERRY_OK)
        st = debug_check(K_ALL_REDUCE, t, -1, op, g, fn);
    if (st != FERRY_OK)
        return st;
    job j = {.kind = K_ALL_REDUCE, .dtype = t->dtype, .op = comm_op(op)};
    return run_elementwise(&j, t, g, true, true);
}

FERRY_API ferry_status ferry_reduce(ferry_tensor *t, int root, ferry_dist_op op,
                                    const ferry_dist_group *g)
{
    static const char fn[] = "ferry_reduce";
    int local = -1;
    ferry_status st = check_group(g, fn);
    if (st == FERRY_OK)
        st = check_tensor_arg(t, fn, true);
    if (st == FERRY_OK)
        st = check_op(op, t->dtype, fn);
    if (st == FERRY_OK)
        st = check_root(root, g, fn, &local);
    if (st == FERRY_OK)
        st = debug_check(K_REDUCE, t, root, op, g, fn);
    if (st != FERRY_OK)
        return st;
    bool is_root = local == group_me(g);
    job j = {.kind = K_REDUCE, .dtype = t->dtype, .op = comm_op(op), .root = local,
             .is_root = is_root};
    return run_elementwise(&j, t, g, true, is_root);
}

FERRY_API ferry_status ferry_broadcast(ferry_tensor *t, int root, const ferry_dist_group *g)
{
    static const char fn[] = "ferry_broadcast";
    int local = -1;
    ferry_status st = check_group(g, fn);
    if (st == FERRY_OK)
        st = check_tensor_arg(t, fn, true);
    if (st == FERRY_OK)
        st = check_root(root, g, fn, &local);
    if (st == FERRY_OK)
        st = debug_check(K_BROADCAST, t, root, 0, g, fn);
    if (st != FERRY_OK)
        return st;
    bool is_root = local == group_me(g);
    job j = {.kind = K_BROADCAST, .dtype = t->dtype, .root = local, .is_root = is_root};
    return run_elementwise(&j, t, g, is_root, !is_root);
}

static ferry_status check_pair(const ferry_tensor *out, const ferry_tensor *in, const char *fn)
{
    ferry_status st = check_tensor_arg(out, fn, true);
    if (st == FERRY_OK)
        st = check_tensor_arg(in, fn, false);
    if (st != FERRY_OK)
        return st;
    if (out->dtype != in->dtype)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: output tensor must have the same type as input tensor (%s and "
                            "%s)",
                            fn, ferry_dtype_name(out->dtype), ferry_dtype_name(in->dtype));
    if (ferry__check_same_device(out, in) != FERRY_OK)
        return ferry_last_status();
    return FERRY_OK;
}

static ferry_status check_overlap(const ferry_tensor *out, const ferry_tensor *in, const char *fn)
{
    if (ferry__shares_memory(out, in))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: the output and input tensors overlap in memory", fn);
    return FERRY_OK;
}

FERRY_API ferry_status ferry_all_gather(ferry_tensor *out, const ferry_tensor *in,
                                        const ferry_dist_group *g)
{
    static const char fn[] = "ferry_all_gather";
    ferry_status st = check_group(g, fn);
    if (st == FERRY_OK)
        st = check_pair(out, in, fn);
    if (st != FERRY_OK)
        return st;
    int64_t W = group_size(g), ni = ferry__numel(in->ndim, in->shape), want;
    if (__builtin_mul_overflow(W, ni, &want) || ferry__numel(out->ndim, out->shape) != want)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: output tensor size must be equal to world_size times input "
                            "tensor size (%lld elements for %lld ranks of %lld)",
                            fn, (long long)ferry__numel(out->ndim, out->shape), (long long)W,
                            (long long)ni);
    if ((st = check_overlap(out, in, fn)) != FERRY_OK ||
        (st = debug_check(K_ALL_GATHER, in, -1, 0, g, fn)) != FERRY_OK)
        return st;
    job j = {.kind = K_ALL_GATHER, .dtype = in->dtype};
    return run_blocks(&j, out, in, g, tensor_nbytes(in));
}

FERRY_API ferry_status ferry_reduce_scatter(ferry_tensor *out, const ferry_tensor *in,
                                            ferry_dist_op op, const ferry_dist_group *g)
{
    static const char fn[] = "ferry_reduce_scatter";
    ferry_status st = check_group(g, fn);
    if (st == FERRY_OK)
        st = check_pair(out, in, fn);
    if (st == FERRY_OK)
        st = check_op(op, in->dtype, fn);
    if (st != FERRY_OK)
        return st;
    int64_t W = group_size(g), no = ferry__numel(out->ndim, out->shape), want;
    if (__builtin_mul_overflow(W, no, &want) || ferry__numel(in->ndim, in->shape) != want)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: input tensor must be the same size as output size times world "
                            "size (%lld elements for %lld ranks of %lld)",
                            fn, (long long)ferry__numel(in->ndim, in->shape), (long long)W,
                            (long long)no);
    if ((st = check_overlap(out, in, fn)) != FERRY_OK ||
        (st = debug_check(K_REDUCE_SCATTER, in, -1, op, g, fn)) != FERRY_OK)
        return st;
    job j = {.kind = K_REDUCE_SCATTER, .dtype = in->dtype, .op = comm_op(op)};
    return run_blocks(&j, out, in, g, tensor_nbytes(out));
}

FERRY_API ferry_status ferry_all_to_all(ferry_tensor *out, const ferry_tensor *in,
                                        const ferry_dist_group *g)
{
    static const char fn[] = "ferry_all_to_all";
    ferry_status st = check_group(g, fn);
    if (st == FERRY_OK)
        st = check_pair(out, in, fn);
    if (st != FERRY_OK)
        return st;
    int64_t W = group_size(g), n = ferry__numel(in->ndim, in->shape);
    if (ferry__numel(out->ndim, out->shape) != n)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: output and input tensors must have the same size (%lld and "
                            "%lld elements)",
                            fn, (long long)ferry__numel(out->ndim, out->shape), (long long)n);
    if (in->ndim == 0 || in->shape[0] % W != 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: Tensor's dim 0 does not divide equally across group size %lld",
                            fn, (long long)W);
    if ((st = check_overlap(out, in, fn)) != FERRY_OK ||
        (st = debug_check(K_ALL_TO_ALL, in, -1, 0, g, fn)) != FERRY_OK)
        return st;
    job j = {.kind = K_ALL_TO_ALL, .dtype = in->dtype};
    return run_blocks(&j, out, in, g, tensor_nbytes(in) / (size_t)W);
}

/* Rows per block: splits (NULL: dim 0 in W equal blocks) checked against t's dim 0, as
 * byte sizes and offsets of t's blocks. */
static ferry_status split_bytes(const ferry_tensor *t, const int64_t *splits, int W,
                                const char *name, const char *fn, size_t *bytes, size_t *offs,
                                int64_t *rows)
{
    int64_t d0 = t->shape[0];
    size_t row = (size_t)ferry__numel(t->ndim - 1, t->shape + 1) * ferry_dtype_size(t->dtype);
    if (!splits && d0 % W != 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: Tensor's dim 0 does not divide equally across group size %d",
                            fn, W);
    int64_t sum = 0;
    bool over = false;
    for (int r = 0; r < W && !over; r++) {
        int64_t k = splits ? splits[r] : d0 / W;
        if (k < 0)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: %s[%d] is %lld, negative",
                                fn, name, r, (long long)k);
        over = __builtin_add_overflow(sum, k, &sum);
        rows[r] = k;
    }
    if (over || sum != d0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: Split sizes doesn't match total dim 0 size (%s adds up to "
                            "%s%lld rows, dim 0 has %lld)",
                            fn, name, over ? "more than " : "", (long long)(over ? INT64_MAX : sum),
                            (long long)d0);
    size_t off = 0;
    for (int r = 0; r < W; r++) {
        bytes[r] = (size_t)rows[r] * row; /* <= the tensor's bytes: no overflow */
        offs[r] = off;
        off += bytes[r];
    }
    return FERRY_OK;
}

/* FERRY_DIST_DEBUG for all_to_all_v: one dtype and trailing shape everywhere, and what
 * each rank sends each other is what that one expects; every rank checks every pair, so
 * all fail alike. */
static ferry_status debug_all_to_all_v(const ferry_tensor *in, const int64_t *rows_io,
                                       const ferry_dist_group *g, const char *fn)
{
    if (!dist.debug)
        return FERRY_OK;
    size_t W = (size_t)group_size(g);
    ferry_status st = FERRY_OK;
    desc mine;
    desc_fill(&mine, K_ALL_TO_ALL, in, -1, 0);
    mine.shape[0] = mine.numel = 0; /* dim 0 differs by design */
    desc *all = calloc(W, sizeof *all);
    int64_t *rows = calloc(2 * W * W, sizeof *rows); /* per rank: in rows, out rows */
    if (!all || !rows)
        st = ferry__error(FERRY_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    if (st == FERRY_OK)
        st = dist.host.ops->all_gather(all, &mine, sizeof mine, g ? g->host : NULL, NULL);
    for (size_t r = 1; r < W && st == FERRY_OK; r++)
        st = desc_compare(&all[0], g ? g->ranks[0] : 0, &all[r], g ? g->ranks[r] : (int)r, fn);
    if (st == FERRY_OK)
        st = dist.host.ops->all_gather(rows, rows_io, 2 * W * sizeof *rows, g ? g->host : NULL,
                                       NULL);
    for (size_t q = 0; q < W && st == FERRY_OK; q++)
        for (size_t b = 0; b < W && st == FERRY_OK; b++) {
            int64_t sent = rows[q * 2 * W + b], expected = rows[b * 2 * W + W + q];
            if (sent != expected)
                st = ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                  "%s: rank %d sends %lld rows to rank %d, which expects %lld "
                                  "(FERRY_DIST_DEBUG)",
                                  fn, g ? g->ranks[q] : (int)q, (long long)sent,
                                  g ? g->ranks[b] : (int)b, (long long)expected);
        }
    free(all);
    free(rows);
    return st;
}

/* Uneven blocks through staging: in rounds of at most c bytes of every block, host
 * tensors read and written in place (the offsets say where), the others through
 * buffers of W blocks of c. */
static ferry_status all_to_all_v_rounds(const comm_plugin *cm, const ferry_comm_group *cg,
                                        ferry_tensor *out, const size_t *ob, const size_t *oo,
                                        const ferry_tensor *in, const size_t *ib,
                                        const size_t *io, int W, size_t c, size_t rounds,
                                        size_t *v)
{
    size_t *rin = v, *rio = v + W, *rout = v + 2 * W, *roo = v + 3 * W;
    bool hin = in->storage->host_accessible, hout = out->storage->host_accessible;
    ferry_backend *owner[2] = {NULL, NULL};
    size_t cap = c * (size_t)W;
    char *tin = hin ? NULL : ferry__staging_alloc(in->storage->backend, NULL, cap, &owner[0]);
    char *tout = hout ? NULL : ferry__staging_alloc(out->storage->backend, NULL, cap, &owner[1]);
    ferry_status st = FERRY_OK;
    if ((!hin && !tin) || (!hout && !tout))
        st = ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                          "ferry_all_to_all_v: out of host memory for %zu-byte staging "
                          "buffers", cap);
    for (size_t k = 0; k < rounds && st == FERRY_OK; k++) {
        size_t at = k * c;
        for (int r = 0; r < W; r++) {
            rin[r] = ib[r] > at ? (ib[r] - at < c ? ib[r] - at : c) : 0;
            rout[r] = ob[r] > at ? (ob[r] - at < c ? ob[r] - at : c) : 0;
            rio[r] = hin ? io[r] + (rin[r] ? at : 0) : (size_t)r * c;
            roo[r] = hout ? oo[r] + (rout[r] ? at : 0) : (size_t)r * c;
        }
        for (int r = 0; r < W && !hin && st == FERRY_OK; r++)
            if (rin[r])
                st = piece_get(in, io[r] + at, tin + rio[r], rin[r]);
        if (st == FERRY_OK)
            st = cm->ops->all_to_allv(hout ? raw_ptr(out) : tout, rout, roo,
                                      hin ? raw_ptr(in) : tin, rin, rio, cg, NULL);
        for (int r = 0; r < W && !hout && st == FERRY_OK; r++)
            if (rout[r])
                st = piece_put(out, oo[r] + at, tout + roo[r], rout[r]);
    }
    if (tin)
        ferry__staging_free(owner[0], tin, cap);
    if (tout)
        ferry__staging_free(owner[1], tout, cap);
    return st;
}

FERRY_API ferry_status ferry_all_to_all_v(ferry_tensor *out, const int64_t *out_splits,
                                          const ferry_tensor *in, const int64_t *in_splits,
                                          const ferry_dist_group *g)
{
    static const char fn[] = "ferry_all_to_all_v";
    ferry_status st = check_group(g, fn);
    if (st == FERRY_OK)
        st = check_pair(out, in, fn);
    if (st != FERRY_OK)
        return st;
    bool same = in->ndim == out->ndim && in->ndim > 0;
    for (int d = 1; same && d < in->ndim; d++)
        same = in->shape[d] == out->shape[d];
    if (!same) {
        char a[256], b[256];
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: output and input tensors must have at least one dimension "
                            "and agree in every dimension but 0 (%s and %s)",
                            fn, ferry__shape_str(out->ndim, out->shape, a, sizeof a),
                            ferry__shape_str(in->ndim, in->shape, b, sizeof b));
    }
    const comm_plugin *cm = &dist.host;
    route ri, ro;
    route_for(in, g, &ri);
    route_for(out, g, &ro);
    bool device = ri.comm == &dist.device && ro.comm == &dist.device;
    if (device)
        cm = &dist.device;
    if (!FERRY_COMM_HAS(cm->ops, all_to_allv) || !cm->ops->all_to_allv)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: the %s communicator has no all_to_all with uneven blocks", fn,
                            cm->name);
    int W = group_size(g);
    /* Byte sizes and offsets of in's and out's blocks, then room for one round's. */
    size_t *v = malloc(8 * (size_t)W * sizeof *v);
    int64_t *rows = malloc(2 * (size_t)W * sizeof *rows);
    if (!v || !rows) {
        free(v);
        free(rows);
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    size_t *ib = v, *io = v + W, *ob = v + 2 * W, *oo = v + 3 * W;
    st = split_bytes(in, in_splits, W, "input_split_sizes", fn, ib, io, rows);
    if (st == FERRY_OK)
        st = split_bytes(out, out_splits, W, "output_split_sizes", fn, ob, oo, rows + W);
    if (st == FERRY_OK)
        st = check_overlap(out, in, fn);
    if (st == FERRY_OK)
        st = debug_all_to_all_v(in, rows, g, fn);
    if (st == FERRY_OK)
        st = sync_tensor(in);
    if (st == FERRY_OK)
        st = sync_tensor(out);
    const ferry_comm_group *cg = device ? ri.cg : g ? g->host : NULL;
    if (st == FERRY_OK && device) {
        st = cm->ops->all_to_allv(raw_ptr(out), ob, oo, raw_ptr(in), ib, io, cg, ri.device);
    } else if (st == FERRY_OK) {
        /* Every rank must make as many calls: they agree on the largest block and on
         * whether any rank stages (then all go in rounds of one chunk per block). */
        bool staged = !in->storage->host_accessible || !out->storage->host_accessible;
        int64_t most[2] = {0, staged};
        for (int r = 0; r < W; r++) {
            most[0] = (int64_t)ib[r] > most[0] ? (int64_t)ib[r] : most[0];
            most[0] = (int64_t)ob[r] > most[0] ? (int64_t)ob[r] : most[0];
        }
        st = dist.host.ops->all_reduce(most, 2, FERRY_INT64, FERRY_COMM_MAX, cg, NULL);
        if (st == FERRY_OK && !most[1]) {
            st = cm->ops->all_to_allv(raw_ptr(out), ob, oo, raw_ptr(in), ib, io, cg, NULL);
        } else if (st == FERRY_OK) {
            size_t c = chunk_bytes(in->dtype, W);
            size_t rounds = ((size_t)most[0] + c - 1) / c;
            st = all_to_all_v_rounds(cm, cg, out, ob, oo, in, ib, io, W, c, rounds, v + 4 * W);
        }
    }
    if (st == FERRY_OK && device)
        st = sync_tensor(out);
    free(v);
    free(rows);
    return st;
}

static ferry_status check_peer(int peer, int tag, const char *fn, const char *what)
{
    if (peer < 0 || peer >= dist.size)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: Invalid %s rank %d (the world has ranks 0 .. %d)", fn, what,
                            peer, dist.size - 1);
    if (peer == dist.rank)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: Invalid %s rank: should not be the same as rank of the "
                            "current process.",
                            fn, what);
    if (tag < 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: tag %d is negative", fn, tag);
    return FERRY_OK;
}

/* FERRY_DIST_DEBUG for point to point: the sender's description travels first, on the
 * same tag, so the receiver compares it with its own tensor. */
static ferry_status debug_p2p(kind k, const ferry_tensor *t, int peer, int tag, const char *fn)
{
    if (!dist.debug)
        return FERRY_OK;
    desc mine, theirs;
    desc_fill(&mine, K_SEND, t, -1, 0);
    if (k == K_SEND)
        return dist.host.ops->send(&mine, sizeof mine, peer, tag, NULL);
    ferry_status st = dist.host.ops->recv(&theirs, sizeof theirs, peer, tag, NULL);
    if (st != FERRY_OK)
        return st;
    mine.kind = K_SEND;
    return desc_compare(&theirs, peer, &mine, dist.rank, fn);
}

FERRY_API ferry_status ferry_send(const ferry_tensor *t, int dst, int tag)
{
    static const char fn[] = "ferry_send";
    ferry_status st = check_init();
    if (st == FERRY_OK)
        st = check_tensor_arg(t, fn, false);
    if (st == FERRY_OK)
        st = check_peer(dst, tag, fn, "destination");
    if (st == FERRY_OK)
        st = debug_p2p(K_SEND, t, dst, tag, fn);
    if (st != FERRY_OK)
        return st;
    job j = {.kind = K_SEND, .dtype = t->dtype, .peer = dst, .tag = tag};
    return run_elementwise(&j, (ferry_tensor *)t, NULL, true, false);
}

FERRY_API ferry_status ferry_recv(ferry_tensor *t, int src, int tag)
{
    static const char fn[] = "ferry_recv";
    ferry_status st = check_init();
    if (st == FERRY_OK)
        st = check_tensor_arg(t, fn, true);
    if (st == FERRY_OK)
        st = check_peer(src, tag, fn, "source");
    if (st == FERRY_OK)
        st = debug_p2p(K_RECV, t, src, tag, fn);
    if (st != FERRY_OK)
        return st;
    job j = {.kind = K_RECV, .dtype = t->dtype, .peer = src, .tag = tag};
    return run_elementwise(&j, t, NULL, false, true);
}

FERRY_API ferry_status ferry_recv_any(ferry_tensor *t, int tag, int *src)
{
    static const char fn[] = "ferry_recv_any";
    if (src)
        *src = -1;
    ferry_status st = check_init();
    if (st == FERRY_OK)
        st = check_tensor_arg(t, fn, true);
    if (st != FERRY_OK)
        return st;
    if (tag < 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: tag %d is negative", fn, tag);
    if (dist.size < 2)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: the world has 1 rank: there is no other rank to receive from",
                            fn);
    route r;
    route_for(t, NULL, &r);
    const ferry_comm_ops *o = r.comm->ops;
    if (!FERRY_COMM_HAS(o, recv_any) || !o->recv_any ||
        (dist.debug && (!FERRY_COMM_HAS(dist.host.ops, recv_any) || !dist.host.ops->recv_any)))
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: the %s communicator cannot receive from any source (pass "
                            "the sender's rank)",
                            fn, r.comm->name);
    int peer = -1;
    if (dist.debug) {
        /* The sender's description comes first and names it; the data follow from it. */
        desc mine, theirs;
        st = dist.host.ops->recv_any(&theirs, sizeof theirs, tag, &peer, NULL);
        if (st != FERRY_OK)
            return st;
        desc_fill(&mine, K_SEND, t, -1, 0);
        if ((st = desc_compare(&theirs, peer, &mine, dist.rank, fn)) != FERRY_OK)
            return st;
    }
    job j = {.kind = K_RECV, .dtype = t->dtype, .peer = peer, .tag = tag};
    st = run_elementwise(&j, t, NULL, false, true);
    if (st == FERRY_OK && src)
        *src = j.peer;
    return st;
}

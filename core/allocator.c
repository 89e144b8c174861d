/* The caching allocator every backend's memory goes through: freed blocks are kept per
 * device in size-rounded free lists and reused, so a steady loop makes no driver
 * allocation calls (as PyTorch's CUDA caching allocator does). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Carved blocks are not separate allocations to AddressSanitizer; free and uncarved
 * ones are poisoned (FERRY__POISON, internal.h) so that a write into them is caught. */
#define POISON FERRY__POISON
#define UNPOISON FERRY__UNPOISON

/* Blocks up to 4 KiB round to 64 bytes (a cache line: a 1-element tensor should cost
 * about what malloc does, not 512 bytes), up to 1 MiB to 512 bytes, larger ones to
 * 128 KiB; a cached block is reused for a request when it wastes at most a quarter of
 * itself. */
#define TINY_LIMIT ((size_t)4 << 10)
#define TINY_ROUND ((size_t)64)
#define SMALL_LIMIT ((size_t)1 << 20)
#define SMALL_ROUND ((size_t)512)
#define LARGE_ROUND ((size_t)128 << 10)
/* Above this many cached bytes on one device, freed blocks go back to the backend. */
#define DEFAULT_CACHE_LIMIT ((uint64_t)4 << 30)
/* On a device whose buffers are host addresses, blocks up to CARVE_LIMIT are carved from
 * slabs of about SLAB_BYTES (a whole number of blocks of one class), one backend call
 * per slab instead of one per tensor: a small tensor then costs what a malloc does, and
 * thousands alive cost no more each than one (as PyTorch's and NumPy's small-block
 * caches do). A slab goes back to the backend when all of its blocks are free and the
 * cache is emptied (ferry_empty_cache, or before an out-of-memory retry). */
#define CARVE_LIMIT ((size_t)1 << 10)
#define SLAB_BYTES ((size_t)64 << 10)

/* Cached blocks up to SMALL_LIMIT have one stack per size class, so finding one is O(1)
 * however many are cached (a linear free list made every allocation cost O(live
 * tensors) after a burst of releases). Large blocks are few and stay in one best-fit
 * list. Classes 1..64 are the tiny sizes, then one per SMALL_ROUND step. */
#define NTINY (TINY_LIMIT / TINY_ROUND)
#define NCLASSES (NTINY + SMALL_LIMIT / SMALL_ROUND)

static size_t class_of(size_t size)
{
    return size <= TINY_LIMIT ? size / TINY_ROUND : NTINY + size / SMALL_ROUND;
}

static size_t class_size(size_t c)
{
    return c <= NTINY ? c * TINY_ROUND : (c - NTINY) * SMALL_ROUND;
}

typedef struct block {
    void *buf;
    size_t size;
} block;

typedef struct stack {
    void **bufs;
    size_t n, cap;
    /* Carved classes: blocks in this class's slabs; cap stays at least this, so that a
     * freed carved block always has its place (it cannot go back on its own). */
    size_t carved;
    char *next, *end; /* the newest slab's uncarved part */
} stack;

typedef struct slab {
    char *base;
    size_t bytes;
    size_t block;   /* its class's block size */
    size_t nfree;   /* scratch of drain() */
} slab;

typedef struct pool {
    stack small[NCLASSES + 1]; /* index: class_of(block size) */
    block *large;
    size_t nlarge, cap_large;
    slab *slabs; /* sorted by base */
    size_t nslabs, cap_slabs;
    ferry_memory_stats stats;
} pool;

struct ferry_allocator {
    pthread_mutex_t lock;
    int32_t ndev;
    uint64_t cache_limit;
    pool pools[];
};

struct ferry_allocator *ferry__allocator_create(ferry_backend *be)
{
    int32_t n = be->device_count > 0 ? be->device_count : 1;
    struct ferry_allocator *a = calloc(1, sizeof *a + (size_t)n * sizeof(pool));
    if (!a)
        return NULL;
    pthread_mutex_init(&a->lock, NULL);
    a->ndev = n;
    a->cache_limit = DEFAULT_CACHE_LIMIT;
    const char *env = getenv("FERRY_CACHE_LIMIT_MB");
    if (env && *env)
        a->cache_limit = (uint64_t)strtoull(env, NULL, 10) << 20;
    return a;
}

static size_t round_size(size_t n)
{
    size_t r = n <= TINY_LIMIT ? TINY_ROUND : n < SMALL_LIMIT ? SMALL_ROUND : LARGE_ROUND;
    if (n > SIZE_MAX - r)
        return n;
    return (n + r - 1) / r * r;
}

/* Whether a block size is one of the classes (a block's size always came from
 * round_size, but a large block may be exactly SMALL_LIMIT). */
static bool is_small(size_t size)
{
    return size <= SMALL_LIMIT && class_size(class_of(size)) == size;
}

/* Whether blocks of this size on (be, dev) are carved from slabs: the device's buffers
 * must be addresses, so that a block can be a slab's address plus an offset. */
static bool carves(const ferry_backend *be, int32_t dev, size_t size)
{
    return size <= CARVE_LIMIT && be->host_accessible[dev] &&
           FERRY_OPS_HAS(be->ops, handles_are_addresses) && be->ops->handles_are_addresses;
}

/* The slab holding buf: binary search over the bases. */
static slab *slab_of(pool *p, const char *buf)
{
    size_t lo = 0, hi = p->nslabs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->slabs[mid].base <= buf)
            lo = mid;
        else
            hi = mid;
    }
    return &p->slabs[lo];
}

/* Returns every slab whose blocks are all free to the backend, and drops those blocks
 * from their class stacks; lock held. */
static void drain_slabs(ferry_backend *be, int32_t dev, pool *p)
{
    if (p->nslabs == 0)
        return;
    for (size_t i = 0; i < p->nslabs; i++)
        p->slabs[i].nfree = 0;
    for (size_t c = 1; c <= NTINY; c++) {
        stack *k = &p->small[c];
        if (!k->carved)
            continue;
        for (size_t i = 0; i < k->n; i++)
            slab_of(p, k->bufs[i])->nfree++;
        if (k->next < k->end)
            slab_of(p, k->next)->nfree += (size_t)(k->end - k->next) / class_size(c);
    }
    for (size_t c = 1; c <= NTINY; c++) {
        stack *k = &p->small[c];
        if (!k->carved)
            continue;
        size_t kept = 0;
        for (size_t i = 0; i < k->n; i++) {
            slab *sl = slab_of(p, k->bufs[i]);
            if (sl->nfree * sl->block != sl->bytes)
                k->bufs[kept++] = k->bufs[i];
        }
        k->n = kept;
        if (k->next < k->end) {
            slab *sl = slab_of(p, k->next);
            if (sl->nfree * sl->block == sl->bytes)
                k->next = k->end = NULL;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < p->nslabs; i++) {
        slab *sl = &p->slabs[i];
        if (sl->nfree * sl->block != sl->bytes) {
            p->slabs[kept++] = *sl;
            continue;
        }
        p->small[class_of(sl->block)].carved -= sl->bytes / sl->block;
        UNPOISON(sl->base, sl->bytes);
        ferry__be_free(be, dev, sl->base);
        p->stats.backend_frees++;
        p->stats.cached -= sl->bytes;
    }
    p->nslabs = kept;
}

/* Frees every cached block of one device (and every slab with no live block); called
 * with the lock held. */
static void drain(ferry_backend *be, int32_t dev, pool *p)
{
    drain_slabs(be, dev, p);
    for (size_t c = 1; c <= NCLASSES; c++) {
        stack *k = &p->small[c];
        if (k->carved)
            continue;
        for (size_t i = 0; i < k->n; i++)
            ferry__be_free(be, dev, k->bufs[i]);
        p->stats.backend_frees += k->n;
        p->stats.cached -= k->n * class_size(c);
        k->n = 0;
    }
    for (size_t i = 0; i < p->nlarge; i++) {
        ferry__be_free(be, dev, p->large[i].buf);
        p->stats.backend_frees++;
        p->stats.cached -= p->large[i].size;
    }
    p->nlarge = 0;
}

/* Only called for a backend whose last reference went: nothing is allocated. */
void ferry__allocator_destroy(ferry_backend *be)
{
    struct ferry_allocator *a = be->alloc;
    for (int32_t d = 0; d < a->ndev; d++) {
        pool *p = &a->pools[d];
        drain(be, d, p);
        for (size_t c = 1; c <= NCLASSES; c++)
            free(p->small[c].bufs);
        free(p->large);
        free(p->slabs);
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
    be->alloc = NULL;
}

/* A cached block for `need` bytes that wastes at most a quarter of itself, taken out of
 * the cache; called with the lock held. */
static bool take_cached(pool *p, size_t need, void **buf, size_t *size)
{
    if (need <= SMALL_LIMIT) {
        for (size_t c = class_of(need); c <= NCLASSES; c++) {
            size_t s = class_size(c);
            if (s < need) /* the unused classes between the tiny and the small range */
                continue;
            if (s - need > s / 4)
                break;
            stack *k = &p->small[c];
            if (k->n > 0) {
                *buf = k->bufs[--k->n];
                *size = s;
                return true;
            }
        }
        return false;
    }
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < p->nlarge; i++) {
        size_t s = p->large[i].size;
        if (s >= need && s - need <= s / 4 && (best == SIZE_MAX || s < p->large[best].size))
            best = i;
    }
    if (best == SIZE_MAX)
        return false;
    *buf = p->large[best].buf;
    *size = p->large[best].size;
    p->large[best] = p->large[--p->nlarge];
    return true;
}

/* Keeps a freed block for reuse; false when no room could be made. Lock held. */
static bool put_cached(pool *p, void *buf, size_t size)
{
    if (is_small(size)) {
        stack *k = &p->small[class_of(size)];
        if (k->n == k->cap) {
            size_t cap = k->cap ? k->cap * 2 : 16;
            void **nb = realloc(k->bufs, cap * sizeof *nb);
            if (!nb)
                return false;
            k->bufs = nb;
            k->cap = cap;
        }
        k->bufs[k->n++] = buf;
        return true;
    }
    if (p->nlarge == p->cap_large) {
        size_t cap = p->cap_large ? p->cap_large * 2 : 16;
        block *nb = realloc(p->large, cap * sizeof *nb);
        if (!nb)
            return false;
        p->large = nb;
        p->cap_large = cap;
    }
    p->large[p->nlarge++] = (block){buf, size};
    return true;
}

static bool cache_empty(const pool *p)
{
    return p->stats.cached == 0;
}

/* A block of `need` bytes carved from the class's newest slab, or from a new one; lock
 * held. The backend is called with the lock held: only host memory is carved, and its
 * allocation is a malloc. */
static ferry_status carve(ferry_backend *be, int32_t dev, pool *p, size_t need, void **buf)
{
    stack *k = &p->small[class_of(need)];
    if (k->next == k->end) {
        size_t per = SLAB_BYTES / need, bytes = per * need;
        if (k->cap < k->carved + per) {
            size_t cap = k->cap * 2 > k->carved + per ? k->cap * 2 : k->carved + per;
            void **nb = realloc(k->bufs, cap * sizeof *nb);
            if (!nb)
                return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                                    "out of host memory for the allocator's free lists");
            k->bufs = nb;
            k->cap = cap;
        }
        if (p->nslabs == p->cap_slabs) {
            size_t cap = p->cap_slabs ? p->cap_slabs * 2 : 16;
            slab *ns = realloc(p->slabs, cap * sizeof *ns);
            if (!ns)
                return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                                    "out of host memory for the allocator's slab table");
            p->slabs = ns;
            p->cap_slabs = cap;
        }
        void *base;
        ferry_status st = ferry__be_alloc(be, dev, bytes, &base);
        if (st == FERRY_ERR_OUT_OF_MEMORY && !cache_empty(p)) {
            drain(be, dev, p);
            st = ferry__be_alloc(be, dev, bytes, &base);
        }
        if (st != FERRY_OK)
            return st;
        size_t at = p->nslabs;
        while (at > 0 && p->slabs[at - 1].base > (char *)base)
            at--;
        memmove(&p->slabs[at + 1], &p->slabs[at], (p->nslabs - at) * sizeof *p->slabs);
        p->slabs[at] = (slab){(char *)base, bytes, need, 0};
        p->nslabs++;
        POISON(base, bytes);
        p->stats.backend_allocs++;
        p->stats.cached += bytes;
        k->carved += per;
        k->next = base;
        k->end = (char *)base + bytes;
    }
    *buf = k->next;
    k->next += need;
    return FERRY_OK;
}

ferry_status ferry__allocator_alloc(ferry_backend *be, int32_t dev, size_t nbytes, void **buf,
                                    size_t *block_size)
{
    struct ferry_allocator *a = be->alloc;
    *buf = NULL;
    *block_size = 0;
    size_t need = round_size(nbytes ? nbytes : 1);
    pool *p = &a->pools[dev];

    pthread_mutex_lock(&a->lock);
    if (carves(be, dev, need)) {
        /* Only the block's own class: a carved block of a larger one would be wasted. */
        stack *k = &p->small[class_of(need)];
        ferry_status st = FERRY_OK;
        if (k->n > 0)
            *buf = k->bufs[--k->n];
        else
            st = carve(be, dev, p, need, buf);
        if (st == FERRY_OK) {
            UNPOISON(*buf, need);
            *block_size = need;
            p->stats.cached -= need;
            p->stats.allocated += need;
            if (p->stats.allocated > p->stats.peak_allocated)
                p->stats.peak_allocated = p->stats.allocated;
        }
        pthread_mutex_unlock(&a->lock);
        return st;
    }
    if (take_cached(p, need, buf, block_size)) {
        p->stats.cached -= *block_size;
        p->stats.allocated += *block_size;
        if (p->stats.allocated > p->stats.peak_allocated)
            p->stats.peak_allocated = p->stats.allocated;
        pthread_mutex_unlock(&a->lock);
        return FERRY_OK;
    }
    pthread_mutex_unlock(&a->lock);

    ferry_status st = ferry__be_alloc(be, dev, need, buf);
    if (st == FERRY_ERR_OUT_OF_MEMORY) {
        /* Cached blocks of other sizes may be what the device lacks: return them and
         * try once more, as PyTorch's allocator does before giving up. */
        pthread_mutex_lock(&a->lock);
        bool had_cache = !cache_empty(p);
        drain(be, dev, p);
        pthread_mutex_unlock(&a->lock);
        if (had_cache)
            st = ferry__be_alloc(be, dev, need, buf);
    }
    if (st != FERRY_OK)
        return st;
    *block_size = need;
    pthread_mutex_lock(&a->lock);
    p->stats.backend_allocs++;
    p->stats.allocated += need;
    if (p->stats.allocated > p->stats.peak_allocated)
        p->stats.peak_allocated = p->stats.allocated;
    pthread_mutex_unlock(&a->lock);
    return FERRY_OK;
}

void ferry__allocator_free(ferry_backend *be, int32_t dev, void *buf, size_t block_size)
{
    struct ferry_allocator *a = be->alloc;
    pool *p = &a->pools[dev];
    pthread_mutex_lock(&a->lock);
    p->stats.allocated -= block_size;
    if (carves(be, dev, block_size)) {
        /* Its place on the stack was reserved when its slab was made. */
        stack *k = &p->small[class_of(block_size)];
        POISON(buf, block_size);
        k->bufs[k->n++] = buf;
        p->stats.cached += block_size;
        pthread_mutex_unlock(&a->lock);
        return;
    }
    bool keep = p->stats.cached + block_size <= a->cache_limit && put_cached(p, buf, block_size);
    if (keep) {
        p->stats.cached += block_size;
    } else {
        ferry__be_free(be, dev, buf);
        p->stats.backend_frees++;
    }
    pthread_mutex_unlock(&a->lock);
}

FERRY_API ferry_status ferry_memory_stats_get(const char *device, ferry_memory_stats *out)
{
    if (!out)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_memory_stats_get: out is NULL");
    memset(out, 0, sizeof *out);
    ferry_backend *be;
    int32_t dev;
    ferry_status st = ferry__device_resolve(device, &be, &dev);
    if (st != FERRY_OK)
        return st;
    pthread_mutex_lock(&be->alloc->lock);
    *out = be->alloc->pools[dev].stats;
    pthread_mutex_unlock(&be->alloc->lock);
    return FERRY_OK;
}

FERRY_API ferry_status ferry_empty_cache(const char *device)
{
    ferry_backend *be;
    int32_t dev;
    ferry_status st = ferry__device_resolve(device, &be, &dev);
    if (st != FERRY_OK)
        return st;
    pthread_mutex_lock(&be->alloc->lock);
    drain(be, dev, &be->alloc->pools[dev]);
    pthread_mutex_unlock(&be->alloc->lock);
    ferry__staging_drain(be);
    ferry__tensor_blocks_drain();
    return FERRY_OK;
}

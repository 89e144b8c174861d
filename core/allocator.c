/* The caching allocator every backend's memory goes through: freed blocks are kept per
 * device in size-rounded free lists and reused, so a steady loop makes no driver
 * allocation calls (as PyTorch's CUDA caching allocator does). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
} stack;

typedef struct pool {
    stack small[NCLASSES + 1]; /* index: class_of(block size) */
    block *large;
    size_t nlarge, cap_large;
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

/* Frees every cached block of one device; called with the lock held. */
static void drain(ferry_backend *be, int32_t dev, pool *p)
{
    for (size_t c = 1; c <= NCLASSES; c++) {
        stack *k = &p->small[c];
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

ferry_status ferry__allocator_alloc(ferry_backend *be, int32_t dev, size_t nbytes, void **buf,
                                    size_t *block_size)
{
    struct ferry_allocator *a = be->alloc;
    *buf = NULL;
    *block_size = 0;
    size_t need = round_size(nbytes ? nbytes : 1);
    pool *p = &a->pools[dev];

    pthread_mutex_lock(&a->lock);
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
    return FERRY_OK;
}

/* The caching allocator every backend's memory goes through: freed blocks are kept per
 * device in size-rounded free lists and reused, so a steady loop makes no driver
 * allocation calls (as PyTorch's CUDA caching allocator does). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Blocks below 1 MiB round to 512 bytes, larger ones to 128 KiB; a cached block is
 * reused for a request when it wastes at most a quarter of itself. */
#define SMALL_LIMIT ((size_t)1 << 20)
#define SMALL_ROUND ((size_t)512)
#define LARGE_ROUND ((size_t)128 << 10)
/* Above this many cached bytes on one device, freed blocks go back to the backend. */
#define DEFAULT_CACHE_LIMIT ((uint64_t)4 << 30)

typedef struct block {
    void *buf;
    size_t size;
} block;

typedef struct pool {
    block *free_blocks;
    size_t nfree, cap;
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
    size_t r = n < SMALL_LIMIT ? SMALL_ROUND : LARGE_ROUND;
    if (n > SIZE_MAX - r)
        return n;
    return (n + r - 1) / r * r;
}

/* Frees every cached block of one device; called with the lock held. */
static void drain(ferry_backend *be, int32_t dev, pool *p)
{
    for (size_t i = 0; i < p->nfree; i++) {
        ferry__be_free(be, dev, p->free_blocks[i].buf);
        p->stats.backend_frees++;
        p->stats.cached -= p->free_blocks[i].size;
    }
    p->nfree = 0;
}

/* Only called for a backend whose last reference went: nothing is allocated. */
void ferry__allocator_destroy(ferry_backend *be)
{
    struct ferry_allocator *a = be->alloc;
    for (int32_t d = 0; d < a->ndev; d++) {
        drain(be, d, &a->pools[d]);
        free(a->pools[d].free_blocks);
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
    be->alloc = NULL;
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
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < p->nfree; i++) {
        size_t s = p->free_blocks[i].size;
        if (s >= need && s - need <= s / 4 && (best == SIZE_MAX || s < p->free_blocks[best].size))
            best = i;
    }
    if (best != SIZE_MAX) {
        *buf = p->free_blocks[best].buf;
        *block_size = p->free_blocks[best].size;
        p->free_blocks[best] = p->free_blocks[--p->nfree];
        p->stats.cached -= *block_size;
    }
    pthread_mutex_unlock(&a->lock);

    if (!*buf) {
        ferry_status st = ferry__be_alloc(be, dev, need, buf);
        if (st == FERRY_ERR_OUT_OF_MEMORY) {
            /* Cached blocks of other sizes may be what the device lacks: return them
             * and try once more, as PyTorch's allocator does before giving up. */
            pthread_mutex_lock(&a->lock);
            bool had_cache = p->nfree > 0;
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
        pthread_mutex_unlock(&a->lock);
    }

    pthread_mutex_lock(&a->lock);
    p->stats.allocated += *block_size;
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
    bool keep = p->stats.cached + block_size <= a->cache_limit;
    if (keep && p->nfree == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        block *nb = realloc(p->free_blocks, cap * sizeof *nb);
        if (nb) {
            p->free_blocks = nb;
            p->cap = cap;
        } else {
            keep = false;
        }
    }
    if (keep) {
        p->free_blocks[p->nfree++] = (block){buf, block_size};
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
    return FERRY_OK;
}

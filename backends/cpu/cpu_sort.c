/* CPU sorting kernels ("ferry.sort", "ferry.sort_scatter", ferry/ops/sort.h).
 *
 * Elements become unsigned keys whose integer order is the sort order (floats: sign
 * flipped into order, -0.0 folded onto +0.0, every NaN onto one key above +inf; a
 * descending sort complements the key). A key of at most 32 bits is packed with the
 * element's index as key << 32 | index, so sorting the packed words orders by (key,
 * index): every result is stable, whatever `stable` says. Rows sort by LSD radix on the
 * key bytes (passes whose digit is the same for every element are skipped), short rows
 * by insertion; one long row runs each radix pass on all threads (per-thread histograms,
 * then each thread scatters its chunk: stable since chunks are in order). One long row
 * of float32 or int32 instead takes an MSD pass into buckets and finishes each bucket
 * in cache (sort_values32, sort_packed32). topk with a small k keeps a heap of the k
 * best per thread in one read of the row. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ferry/half.h>
#include <ferry/ops/sort.h>

#include "cpu_internal.h"

typedef struct pair {
    uint64_t key;
    uint64_t idx;
} pair;

/* Rows this short sort by insertion. */
#define SORT_SMALL 48
/* One row at least this long is split over threads. */
#define SORT_PAR_MIN ((int64_t)1 << 17)

static size_t elem_size(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_BOOL:
    case FERRY_UINT8:
    case FERRY_INT8: return 1;
    case FERRY_INT16:
    case FERRY_FLOAT16:
    case FERRY_BFLOAT16: return 2;
    case FERRY_INT32:
    case FERRY_FLOAT32: return 4;
    default: return 8;
    }
}

static int key_bits(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_BOOL:
    case FERRY_UINT8:
    case FERRY_INT8: return 8;
    case FERRY_INT16:
    case FERRY_FLOAT16:
    case FERRY_BFLOAT16: return 16;
    case FERRY_INT32:
    case FERRY_FLOAT32: return 32;
    default: return 64;
    }
}

static inline uint64_t key16f(uint16_t h, uint16_t inf)
{
    if ((h & 0x7fffu) > inf)
        return 0xffffu;
    if ((h & 0x7fffu) == 0)
        h = 0;
    return (h & 0x8000u) ? (uint16_t)~h : (uint64_t)(h | 0x8000u);
}

static inline uint64_t key32f(uint32_t b)
{
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return 0xffffffffu;
    if ((b & 0x7fffffffu) == 0)
        b = 0;
    return (b & 0x80000000u) ? (uint32_t)~b : (uint64_t)(b | 0x80000000u);
}

static inline uint64_t key64f(uint64_t b)
{
    const uint64_t s = (uint64_t)1 << 63;
    if ((b & ~s) > 0x7ff0000000000000ull)
        return ~(uint64_t)0;
    if ((b & ~s) == 0)
        b = 0;
    return (b & s) ? ~b : (b | s);
}

/* The key of the element at p. */
static inline uint64_t key_at(ferry_dtype dt, const char *p)
{
    switch (dt) {
    case FERRY_BOOL: return *(const uint8_t *)p != 0;
    case FERRY_UINT8: return *(const uint8_t *)p;
    case FERRY_INT8: return (uint8_t)(*(const uint8_t *)p ^ 0x80u);
    case FERRY_INT16: return (uint16_t)(*(const uint16_t *)p ^ 0x8000u);
    case FERRY_INT32: return (uint32_t)(*(const uint32_t *)p ^ 0x80000000u);
    case FERRY_INT64: return *(const uint64_t *)p ^ ((uint64_t)1 << 63);
    case FERRY_FLOAT16: return key16f(*(const uint16_t *)p, 0x7c00u);
    case FERRY_BFLOAT16: return key16f(*(const uint16_t *)p, 0x7f80u);
    case FERRY_FLOAT32: return key32f(*(const uint32_t *)p);
    case FERRY_FLOAT64: return key64f(*(const uint64_t *)p);
    default: return 0;
    }
}

/* ---- radix sorts: packed words (bytes lo..hi of the word) and pairs (the key) ---- */

static void radix_packed(uint64_t *a, uint64_t *tmp, int64_t n, int lo, int hi)
{
    for (int b = lo; b < hi; b++) {
        int64_t cnt[256] = {0};
        int sh = 8 * b;
        for (int64_t i = 0; i < n; i++)
            cnt[(a[i] >> sh) & 255]++;
        if (cnt[(a[0] >> sh) & 255] == n)
            continue;
        int64_t s = 0;
        for (int d = 0; d < 256; d++) {
            int64_t c = cnt[d];
            cnt[d] = s;
            s += c;
        }
        for (int64_t i = 0; i < n; i++)
            tmp[cnt[(a[i] >> sh) & 255]++] = a[i];
        memcpy(a, tmp, (size_t)n * sizeof *a);
    }
}

static void radix_pairs(pair *a, pair *tmp, int64_t n, int bytes)
{
    for (int b = 0; b < bytes; b++) {
        int64_t cnt[256] = {0};
        int sh = 8 * b;
        for (int64_t i = 0; i < n; i++)
            cnt[(a[i].key >> sh) & 255]++;
        if (cnt[(a[0].key >> sh) & 255] == n)
            continue;
        int64_t s = 0;
        for (int d = 0; d < 256; d++) {
            int64_t c = cnt[d];
            cnt[d] = s;
            s += c;
        }
        for (int64_t i = 0; i < n; i++)
            tmp[cnt[(a[i].key >> sh) & 255]++] = a[i];
        memcpy(a, tmp, (size_t)n * sizeof *a);
    }
}

static inline bool pair_less(pair x, pair y)
{
    return x.key < y.key || (x.key == y.key && x.idx < y.idx);
}

static void insertion_packed(uint64_t *a, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        uint64_t v = a[i];
        int64_t j = i;
        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static void insertion_pairs(pair *a, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        pair v = a[i];
        int64_t j = i;
        for (; j > 0 && pair_less(v, a[j - 1]); j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

/* One row sorted on the backend's threads (FERRY_NUM_THREADS, cpu_max_threads), pass by
 * pass (a of n packed words). */
static void radix_packed_par(uint64_t *a, uint64_t *tmp, int64_t n, int lo, int hi)
{
#ifdef _OPENMP
    int nt = cpu_max_threads();
    if (nt > 64)
        nt = 64;
    uint64_t *orig = a;
    int64_t(*cnt)[256] = malloc(sizeof(int64_t[256]) * (size_t)nt);
    if (!cnt || nt < 2) {
        free(cnt);
        radix_packed(a, tmp, n, lo, hi);
        return;
    }
    for (int b = lo; b < hi; b++) {
        int sh = 8 * b;
        bool skip = false;
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t s0 = n * t / T, s1 = n * (t + 1) / T;
            int64_t *c = cnt[t];
            memset(c, 0, sizeof cnt[0]);
            for (int64_t i = s0; i < s1; i++)
                c[(a[i] >> sh) & 255]++;
#pragma omp barrier
#pragma omp single
            {
                int64_t s = 0, d0 = (int64_t)((a[0] >> sh) & 255), same = 0;
                for (int u = 0; u < T; u++)
                    same += cnt[u][d0];
                skip = same == n;
                for (int d = 0; d < 256 && !skip; d++)
                    for (int u = 0; u < T; u++) {
                        int64_t v = cnt[u][d];
                        cnt[u][d] = s;
                        s += v;
                    }
            }
            if (!skip)
                for (int64_t i = s0; i < s1; i++)
                    tmp[c[(a[i] >> sh) & 255]++] = a[i];
        }
        if (!skip) {
            uint64_t *x = a;
            a = tmp;
            tmp = x;
        }
    }
    /* After an odd number of passes the result is in the caller's scratch. */
    if (a != orig) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++)
            orig[i] = a[i];
    }
    free(cnt);
#else
    radix_packed(a, tmp, n, lo, hi);
#endif
}

/* ---- values only, 32-bit keys: one long row of float32 or int32 ----
 * Without indices the order of equal keys is invisible except between -0.0 and +0.0, so
 * here -0.0 sorts before +0.0 (an unstable sort may place them either way) and the key
 * maps back to the value. NaNs come back as one quiet NaN of the same sign-free bits.
 * One MSD pass on V_MSD bits (the top ones that differ somewhere in the row) spreads the
 * keys into buckets (a first read of the input only counts, so the keys are written
 * once, straight into their buckets in the output when it is contiguous: no scratch of
 * the row's size to fault in); each bucket then finishes in cache with up to two LSD
 * passes on the bits below the digit through a per-thread scratch of the largest bucket,
 * the last pass writing the values out. Buckets go to threads one at a time, since their
 * sizes follow the data (float exponents crowd a few of them). When one bucket holds
 * more than a thread's share of the row, the row takes three LSD passes of 11 bits over
 * all of it instead. */
#define V_BITS 11
#define V_BINS (1 << V_BITS)
#define V_MSD 11
#define V_LO0 11
#define V_LO1 (32 - V_MSD - V_LO0)
#define V_SMALL 32

static inline uint32_t vkey_f32(uint32_t b)
{
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return 0xffffffffu;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

static inline uint32_t vkey_f32_inv(uint32_t k)
{
    return (k & 0x80000000u) ? (k ^ 0x80000000u) : ~k;
}

#define V_INLINE static inline __attribute__((always_inline))

/* The key of b; fold: -0.0 takes +0.0's key (the sorts with indices, as key_at). */
V_INLINE uint32_t vkey(bool f, bool fold, uint32_t flip, uint32_t b)
{
    if (f && fold && (b & 0x7fffffffu) == 0)
        b = 0;
    return (f ? vkey_f32(b) : b ^ 0x80000000u) ^ flip;
}

V_INLINE uint32_t vval(bool f, uint32_t flip, uint32_t k)
{
    k ^= flip;
    return f ? vkey_f32_inv(k) : k ^ 0x80000000u;
}

/* Counts of digits 0 .. top to each digit's first position, in place. */
V_INLINE void vprefix(uint32_t *c, uint32_t top)
{
    uint32_t sum = 0;
    for (uint32_t d = 0; d <= top; d++) {
        uint32_t v = c[d];
        c[d] = sum;
        sum += v;
    }
}

/* Sorts the m (< 2^32) keys k of one bucket on their low lob (<= V_LO0 + V_LO1) bits and
 * writes their values to dst (which may be k itself); w: scratch of m words. */
V_INLINE void vbucket(bool f, uint32_t flip, int lob, uint32_t *k, uint32_t *w, int64_t m,
                      char *dst, int64_t des)
{
    if (m <= V_SMALL) {
        for (int64_t i = 1; i < m; i++) {
            uint32_t v = k[i];
            int64_t j = i;
            for (; j > 0 && k[j - 1] > v; j--)
                k[j] = k[j - 1];
            k[j] = v;
        }
        for (int64_t i = 0; i < m; i++) {
            uint32_t b = vval(f, flip, k[i]);
            memcpy(dst + i * des, &b, 4);
        }
        return;
    }
    uint32_t c0[1 << V_LO0] = {0}, c1[1 << V_LO1] = {0};
    const int l0 = lob < V_LO0 ? lob : V_LO0;
    const uint32_t m0 = (1u << l0) - 1, m1 = (1u << (lob - l0)) - 1;
    for (int64_t i = 0; i < m; i++) {
        c0[k[i] & m0]++;
        c1[(k[i] >> V_LO0) & m1]++;
    }
    const uint32_t *s = k;
    if (c0[k[0] & m0] != m) {
        vprefix(c0, m0);
        for (int64_t i = 0; i < m; i++)
            w[c0[k[i] & m0]++] = k[i];
        s = w;
    } else if ((char *)k == dst) {
        /* The last pass cannot scatter within one array. */
        memcpy(w, k, sizeof *k * (size_t)m);
        s = w;
    }
    vprefix(c1, m1);
    if (des == 4) {
        uint32_t *o = (uint32_t *)(void *)dst;
        for (int64_t i = 0; i < m; i++)
            o[c1[(s[i] >> V_LO0) & m1]++] = vval(f, flip, s[i]);
    } else {
        for (int64_t i = 0; i < m; i++) {
            uint32_t b = vval(f, flip, s[i]);
            memcpy(dst + c1[(s[i] >> V_LO0) & m1]++ * des, &b, 4);
        }
    }
}

/* Adds the counts of digit (key >> sh) & (NB - 1) over elements [s0, s1) to c, and the
 * keys' OR and AND to *kor and *kand. Four tables, so that runs of one digit (common:
 * float exponents cluster) do not wait on one counter. */
V_INLINE void vcount(bool f, bool fold, uint32_t flip, const char *src, int64_t es, int64_t s0,
                     int64_t s1, int sh, int64_t *c, uint32_t *kor, uint32_t *kand)
{
    enum { NB = 1 << V_MSD };
    uint32_t h[4][NB], o = 0, a = 0xffffffffu;
    for (int64_t b0 = s0; b0 < s1; b0 += (int64_t)1 << 30) {
        int64_t b1 = s1 - b0 > ((int64_t)1 << 30) ? b0 + ((int64_t)1 << 30) : s1, i = b0;
        memset(h, 0, sizeof h);
        for (; i + 4 <= b1; i += 4) {
            uint32_t x[4];
            for (int u = 0; u < 4; u++) {
                memcpy(&x[u], src + (i + u) * es, 4);
                x[u] = vkey(f, fold, flip, x[u]);
                o |= x[u];
                a &= x[u];
            }
            for (int u = 0; u < 4; u++)
                h[u][(x[u] >> sh) & (NB - 1)]++;
        }
        for (; i < b1; i++) {
            uint32_t x;
            memcpy(&x, src + i * es, 4);
            x = vkey(f, fold, flip, x);
            o |= x;
            a &= x;
            h[0][(x >> sh) & (NB - 1)]++;
        }
        for (int d = 0; d < NB; d++)
            c[d] += (int64_t)h[0][d] + h[1][d] + h[2][d] + h[3][d];
    }
    *kor |= o;
    *kand &= a;
}

/* vcount with f, fold and the usual digit (the top bits) as constants in its loops. */
static void vcount_any(bool f, bool fold, uint32_t flip, const char *src, int64_t es, int64_t s0,
                       int64_t s1, int sh, int64_t *c, uint32_t *kor, uint32_t *kand)
{
    enum { TOP = 32 - V_MSD };
#define V_COUNT(F, FOLD, SH) vcount(F, FOLD, flip, src, es, s0, s1, SH, c, kor, kand)
    if (sh == TOP) {
        if (f)
            fold ? V_COUNT(true, true, TOP) : V_COUNT(true, false, TOP);
        else
            V_COUNT(false, false, TOP);
    } else {
        if (f)
            fold ? V_COUNT(true, true, sh) : V_COUNT(true, false, sh);
        else
            V_COUNT(false, false, sh);
    }
#undef V_COUNT
}

/* Counts the MSD digit of every chunk (one per thread, nt of them) into cnt and turns the
 * counts into each chunk's first slot per bucket; start: each bucket's first position
 * (NB + 1 entries). The digit is the top V_MSD bits that differ somewhere in the row (a
 * second count when the top bits are all the same: small integers, floats of one
 * exponent), returned as its shift; the bits below it are what the buckets sort.
 * *maxb: the largest bucket. */
static int msd_count(bool f, bool fold, uint32_t flip, const char *src, int64_t es, int64_t n,
                     int nt, int64_t (*cnt)[1 << V_MSD], int64_t *start, int64_t *maxb)
{
    enum { NB = 1 << V_MSD };
    int sh = 32 - V_MSD;
    for (int round = 0; round < 2; round++) {
        uint32_t kor = 0, kand = 0xffffffffu;
        memset(cnt, 0, sizeof(int64_t[NB]) * (size_t)nt);
#pragma omp parallel num_threads(nt)
        {
            int t = 0, T = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            T = omp_get_num_threads();
#endif
            uint32_t o = 0, a = 0xffffffffu;
            /* A team smaller than asked for counts the missing threads' chunks too. */
            for (int u = t; u < nt; u += T) {
                int64_t s0 = n * u / nt, s1 = n * (u + 1) / nt;
                vcount_any(f, fold, flip, src, es, s0, s1, sh, cnt[u], &o, &a);
            }
#pragma omp critical(ferry_sort_msd)
            {
                kor |= o;
                kand &= a;
            }
        }
        uint32_t diff = kor ^ kand;
        int top = diff ? 31 - __builtin_clz(diff) : 0;
        int want = top + 1 > V_MSD ? top + 1 - V_MSD : 0;
        if (round > 0 || want == sh)
            break;
        sh = want;
    }
    int64_t sum = 0, mb = 0;
    for (int d = 0; d < NB; d++) {
        start[d] = sum;
        for (int u = 0; u < nt; u++) {
            int64_t v = cnt[u][d];
            cnt[u][d] = sum;
            sum += v;
        }
        if (sum - start[d] > mb)
            mb = sum - start[d];
    }
    start[NB] = sum;
    *maxb = mb;
    return sh;
}

/* What both MSD sorts plan before they spread: the threads, the digit's shift and each
 * chunk's and bucket's first slots (msd_count). */
typedef struct msd_plan {
    int nt, sh;
    int64_t (*cnt)[1 << V_MSD];
    int64_t *start;
    int64_t maxb;
} msd_plan;

static void msd_plan_free(msd_plan *pl)
{
    free(pl->cnt);
    free(pl->start);
    pl->cnt = NULL;
    pl->start = NULL;
}

/* 1: planned; 0: out of memory; -1: one bucket would hold more than a thread's share of
 * the row (or 2^32 keys), so the caller sorts another way (pl->nt is set either way). */
static int msd_plan_make(bool f, bool fold, uint32_t flip, const char *src, int64_t es,
                         int64_t n, msd_plan *pl)
{
#ifdef _OPENMP
    pl->nt = cpu_max_threads();
#else
    pl->nt = 1;
#endif
    if (pl->nt > 64)
        pl->nt = 64;
    pl->cnt = calloc((size_t)pl->nt, sizeof pl->cnt[0]);
    pl->start = malloc(sizeof(int64_t) * ((1 << V_MSD) + 1));
    if (!pl->cnt || !pl->start) {
        msd_plan_free(pl);
        return 0;
    }
    pl->sh = msd_count(f, fold, flip, src, es, n, pl->nt, pl->cnt, pl->start, &pl->maxb);
    if (pl->maxb * pl->nt > n || pl->maxb > (int64_t)UINT32_MAX) {
        msd_plan_free(pl);
        return -1;
    }
    return 1;
}

/* One line of 16 keys out of a thread's write-combining buffer. Rows far larger than the
 * cache stream past it: the buckets come back from memory anyway, and the stores then
 * need not read the lines first. */
V_INLINE void vline(void *o, const void *b, bool stream)
{
#ifdef __SSE2__
    if (stream) {
        for (int u = 0; u < 4; u++)
            _mm_stream_si128((__m128i *)(void *)o + u, _mm_load_si128((const __m128i *)b + u));
        return;
    }
#endif
    (void)stream;
    memcpy(o, b, 64);
}

/* NAME writes the words of elements [s0, s1) into their buckets of out from c (each
 * bucket's next slot for this chunk, advanced here): WORDs made by MAKE(key, i), LANES
 * to a 64-byte line, keys folded as key_at when FOLD. Words gather per bucket in buf (one
 * cache line each, aligned like out's lines), and only whole lines go out, so the
 * thousands of buckets cost one store per line rather than a cache and TLB miss per
 * word. A line shared with a neighbouring bucket or chunk goes out by plain stores of
 * its own part. (A template: one function over both word sizes ran the values-only sort
 * 7% slower.) */
#define V_DEFINE_SPREAD(NAME, WORD, LANES, FOLD, MAKE)                                     \
    V_INLINE void NAME(bool f, uint32_t flip, const char *src, int64_t es, int64_t s0,    \
                       int64_t s1, int sh, int64_t *c, WORD *out, WORD (*buf)[LANES],     \
                       bool stream)                                                       \
    {                                                                                     \
        enum { NB = 1 << V_MSD };                                                         \
        const int64_t off = (int64_t)(((uintptr_t)out & 63) / sizeof(WORD));              \
        int64_t first[NB];                                                                \
        memcpy(first, c, sizeof first);                                                   \
        for (int64_t i = s0; i < s1; i++) {                                               \
            uint32_t b;                                                                   \
            memcpy(&b, src + i * es, 4);                                                  \
            uint32_t key = vkey(f, FOLD, flip, b), d = (key >> sh) & (NB - 1);            \
            int64_t p = c[d]++;                                                           \
            buf[d][(p + off) & (LANES - 1)] = MAKE(key, i);                               \
            if (((p + 1 + off) & (LANES - 1)) == 0) {                                     \
                int64_t l0 = p - (LANES - 1);                                             \
                if (l0 >= first[d])                                                       \
                    vline(out + l0, buf[d], stream);                                      \
                else                                                                      \
                    memcpy(out + first[d], &buf[d][(first[d] + off) & (LANES - 1)],       \
                           sizeof *out * (size_t)(p + 1 - first[d]));                     \
            }                                                                             \
        }                                                                                 \
        for (int d = 0; d < NB; d++) {                                                    \
            int64_t p = c[d], l0 = p - ((p + off) & (LANES - 1));                         \
            if (l0 < first[d])                                                            \
                l0 = first[d];                                                            \
            if (l0 < p)                                                                   \
                memcpy(out + l0, &buf[d][(l0 + off) & (LANES - 1)],                       \
                       sizeof *out * (size_t)(p - l0));                                   \
        }                                                                                 \
        V_SFENCE(stream);                                                                 \
    }
#ifdef __SSE2__
/* Streaming stores are weakly ordered: other threads read these buckets next. */
#define V_SFENCE(stream)                                                                  \
    do {                                                                                  \
        if (stream)                                                                       \
            _mm_sfence();                                                                 \
    } while (0)
#else
#define V_SFENCE(stream) (void)(stream)
#endif
#define V_KEY_WORD(key, i) (key)
#define V_PACKED_WORD(key, i) ((uint64_t)(key) << 32 | (uint64_t)(i))
V_DEFINE_SPREAD(vspread, uint32_t, 16, false, V_KEY_WORD)
V_DEFINE_SPREAD(pspread, uint64_t, 8, true, V_PACKED_WORD)
#undef V_DEFINE_SPREAD

/* The whole row by three LSD passes of V_BITS bits (keys and scratch of n words each). */
static bool sort_values32_lsd(bool f, uint32_t flip, const char *src, int64_t es, char *dst,
                              int64_t des, int64_t n, int nt)
{
    uint32_t *a = malloc(sizeof(uint32_t) * (size_t)n), *tmp = malloc(sizeof(uint32_t) * (size_t)n);
    int64_t(*cnt)[V_BINS] = malloc(sizeof(int64_t[V_BINS]) * (size_t)nt);
    if (!a || !tmp || !cnt) {
        free(a);
        free(tmp);
        free(cnt);
        return false;
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, src + i * es, 4);
        a[i] = vkey(f, false, flip, b);
    }
    for (int pass = 0; pass < 3; pass++) {
        int sh = pass * V_BITS;
        bool skip = false;
#pragma omp parallel num_threads(nt)
        {
            int t = 0, T = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            T = omp_get_num_threads();
#endif
            int64_t s0 = n * t / T, s1 = n * (t + 1) / T;
            int64_t *c = cnt[t];
            memset(c, 0, sizeof cnt[0]);
            for (int64_t i = s0; i < s1; i++)
                c[(a[i] >> sh) & (V_BINS - 1)]++;
#pragma omp barrier
#pragma omp single
            {
                int64_t d0 = (a[0] >> sh) & (V_BINS - 1), same = 0, sum = 0;
                for (int u = 0; u < T; u++)
                    same += cnt[u][d0];
                skip = same == n;
                for (int d = 0; d < V_BINS && !skip; d++)
                    for (int u = 0; u < T; u++) {
                        int64_t v = cnt[u][d];
                        cnt[u][d] = sum;
                        sum += v;
                    }
            }
            if (!skip)
                for (int64_t i = s0; i < s1; i++)
                    tmp[c[(a[i] >> sh) & (V_BINS - 1)]++] = a[i];
        }
        if (!skip) {
            uint32_t *x = a;
            a = tmp;
            tmp = x;
        }
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < n; i++) {
        uint32_t b = vval(f, flip, a[i]);
        memcpy(dst + i * des, &b, 4);
    }
    free(a);
    free(tmp);
    free(cnt);
    return true;
}

static bool sort_values32(ferry_dtype dt, const char *src, int64_t es, char *dst, int64_t des,
                          int64_t n, bool desc)
{
    enum { NB = 1 << V_MSD, TOP = 32 - V_MSD };
    bool f = dt == FERRY_FLOAT32;
    uint32_t flip = desc ? 0xffffffffu : 0;
    msd_plan pl;
    int planned = msd_plan_make(f, false, flip, src, es, n, &pl);
    if (planned <= 0)
        return planned < 0 && sort_values32_lsd(f, flip, src, es, dst, des, n, pl.nt);
    const int nt = pl.nt, sh = pl.sh;
    const int64_t maxb = pl.maxb, *start = pl.start;
    int64_t(*cnt)[NB] = pl.cnt;
    /* The output holds the buckets unless it is strided, misaligned or overlaps the input
     * (the spread reads each thread's chunk while the others write anywhere). */
    bool direct = des == 4 && ((uintptr_t)dst & 3) == 0 &&
                  (dst + 4 * n <= src || src + es * (n - 1) + 4 <= dst) && es > 0;
    uint32_t *keys = direct ? (uint32_t *)(void *)dst : malloc(sizeof(uint32_t) * (size_t)n);
    uint32_t *w = malloc(sizeof(uint32_t) * (size_t)(maxb * nt));
    uint32_t(*wc)[16] = aligned_alloc(64, sizeof(uint32_t[16]) * NB * (size_t)nt);
    bool stream = n >= ((int64_t)1 << 21);
    if (!keys || !w || !wc) {
        if (!direct)
            free(keys);
        free(w);
        free(wc);
        msd_plan_free(&pl);
        return false;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        for (int u = t; u < nt; u += T) {
            int64_t s0 = n * u / nt, s1 = n * (u + 1) / nt;
#define V_SPREAD(F, SH)                                                                     \
    vspread(F, flip, src, es, s0, s1, SH, cnt[u], keys, wc + NB * t, stream)
            if (sh == TOP)
                f ? V_SPREAD(true, TOP) : V_SPREAD(false, TOP);
            else
                f ? V_SPREAD(true, sh) : V_SPREAD(false, sh);
#undef V_SPREAD
        }
#pragma omp barrier
        uint32_t *wt = w + maxb * t;
#pragma omp for schedule(dynamic, 1)
        for (int d = 0; d < NB; d++) {
            int64_t b0 = start[d], m = start[d + 1] - b0;
#define V_BUCKET(F, SH) vbucket(F, flip, SH, keys + b0, wt, m, dst + b0 * des, des)
            if (sh == TOP)
                f ? V_BUCKET(true, TOP) : V_BUCKET(false, TOP);
            else
                f ? V_BUCKET(true, sh) : V_BUCKET(false, sh);
#undef V_BUCKET
        }
    }
    if (!direct)
        free(keys);
    free(w);
    free(wc);
    msd_plan_free(&pl);
    return true;
}

/* ---- with indices, 32-bit keys: one long row of float32 or int32 ----
 * The same MSD-then-buckets plan as the values-only sort, on packed words key << 32 |
 * index (keys fold -0.0 onto +0.0 and every NaN onto one key, as key_at): the spread and
 * each bucket's LSD passes are stable, so equal keys keep their input order. The last
 * pass writes values and indices out, each value rebuilt from its key except where the
 * key folded several values (zeros, NaNs): those are read back from the input. */

/* One bucket of m (< 2^32) packed words a, at row position b0, sorted on the low key bits
 * through w (m words) and written out: positions below k only. a may be the bucket's own
 * part of idst. */
V_INLINE void pbucket(bool f, uint32_t flip, int lob, const uint64_t *a, uint64_t *w, int64_t m,
                      int64_t b0, int64_t k, const char *src, int64_t es, char *vdst, int64_t ves,
                      char *idst, int64_t ies)
{
    uint32_t c0[1 << V_LO0] = {0}, c1[1 << V_LO1] = {0};
    const int l0 = lob < V_LO0 ? lob : V_LO0;
    const uint32_t m0 = (1u << l0) - 1, m1 = (1u << (lob - l0)) - 1;
    for (int64_t i = 0; i < m; i++) {
        uint32_t key = (uint32_t)(a[i] >> 32);
        c0[key & m0]++;
        c1[(key >> V_LO0) & m1]++;
    }
    const uint64_t *s = a;
    if (c0[(uint32_t)(a[0] >> 32) & m0] != m) {
        vprefix(c0, m0);
        for (int64_t i = 0; i < m; i++)
            w[c0[(uint32_t)(a[i] >> 32) & m0]++] = a[i];
        s = w;
    } else if ((const char *)a == idst + b0 * 8) {
        /* The last pass cannot scatter within one array. */
        memcpy(w, a, sizeof *a * (size_t)m);
        s = w;
    }
    vprefix(c1, m1);
    /* Keys that several values share: +-0.0 and the NaNs. */
    const uint32_t kz = 0x80000000u ^ flip, kn = 0xffffffffu ^ flip;
    for (int64_t i = 0; i < m; i++) {
        uint32_t key = (uint32_t)(s[i] >> 32);
        int64_t j = b0 + c1[(key >> V_LO0) & m1]++;
        if (j >= k)
            continue;
        int64_t ix = (int64_t)(s[i] & 0xffffffffu);
        uint32_t v;
        if (f && (key == kz || key == kn))
            memcpy(&v, src + ix * es, 4);
        else
            v = vval(f, flip, key);
        memcpy(vdst + j * ves, &v, 4);
        if (idst)
            memcpy(idst + j * ies, &ix, 8);
    }
}

/* 1: sorted; 0: out of memory; -1: the data crowd one bucket (the caller sorts). */
static int sort_packed32(ferry_dtype dt, const char *src, int64_t es, int64_t n, int64_t k,
                         bool desc, char *vdst, int64_t ves, char *idst, int64_t ies)
{
    enum { NB = 1 << V_MSD, TOP = 32 - V_MSD };
    bool f = dt == FERRY_FLOAT32;
    uint32_t flip = desc ? 0xffffffffu : 0;
    msd_plan pl;
    int planned = msd_plan_make(f, true, flip, src, es, n, &pl);
    if (planned <= 0)
        return planned;
    const int nt = pl.nt, sh = pl.sh;
    const int64_t maxb = pl.maxb, *start = pl.start;
    int64_t(*cnt)[NB] = pl.cnt;
    /* The index output, when it is the whole row and contiguous, holds the packed words:
     * one buffer of the row's size less to fault in. */
    bool direct = idst && k == n && ies == 8 && ((uintptr_t)idst & 7) == 0 &&
                  (idst + 8 * n <= src || src + es * (n - 1) + 4 <= idst) && es > 0;
    uint64_t *a = direct ? (uint64_t *)(void *)idst : malloc(sizeof(uint64_t) * (size_t)n);
    uint64_t *w = malloc(sizeof(uint64_t) * (size_t)(maxb * nt));
    uint64_t(*wc)[8] = aligned_alloc(64, sizeof(uint64_t[8]) * NB * (size_t)nt);
    bool stream = n >= ((int64_t)1 << 20);
    if (!a || !w || !wc) {
        if (!direct)
            free(a);
        free(w);
        free(wc);
        msd_plan_free(&pl);
        return 0;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        for (int u = t; u < nt; u += T) {
            int64_t s0 = n * u / nt, s1 = n * (u + 1) / nt;
#define V_SPREAD(F, SH)                                                                     \
    pspread(F, flip, src, es, s0, s1, SH, cnt[u], a, wc + NB * t, stream)
            if (sh == TOP)
                f ? V_SPREAD(true, TOP) : V_SPREAD(false, TOP);
            else
                f ? V_SPREAD(true, sh) : V_SPREAD(false, sh);
#undef V_SPREAD
        }
#pragma omp barrier
        uint64_t *wt = w + maxb * t;
#pragma omp for schedule(dynamic, 1)
        for (int d = 0; d < NB; d++) {
            int64_t b0 = start[d], m = start[d + 1] - b0;
            if (m == 0 || b0 >= k)
                continue;
#define V_BUCKET(F, SH)                                                                     \
    pbucket(F, flip, SH, a + b0, wt, m, b0, k, src, es, vdst, ves, idst, ies)
            if (sh == TOP)
                f ? V_BUCKET(true, TOP) : V_BUCKET(false, TOP);
            else
                f ? V_BUCKET(true, sh) : V_BUCKET(false, sh);
#undef V_BUCKET
        }
    }
    if (!direct)
        free(a);
    free(w);
    free(wc);
    msd_plan_free(&pl);
    return 1;
}

/* ---- row accessors ---- */

typedef struct rowt {
    char *base;
    int64_t rs, es; /* row and element strides in bytes */
} rowt;

static rowt row_of(const ferry_kernel_tensor *t)
{
    size_t sz = elem_size(t->dtype);
    rowt r = {(char *)t->buffer + t->byte_offset, t->strides[0] * (int64_t)sz,
              t->strides[1] * (int64_t)sz};
    return r;
}

static inline void copy_elem(char *dst, const char *src, size_t sz)
{
    switch (sz) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    default: memcpy(dst, src, 8); break;
    }
}

/* Row r of the input into (key, index) order; the first k written out. buf holds 2n
 * words (packed) or 2n pairs. */
static void sort_row(const ferry_sort_params *p, ferry_dtype dt, rowt in, rowt vo, rowt io,
                     bool has_idx, int64_t r, void *buf, bool parallel)
{
    int64_t n = p->n, k = p->k;
    int bits = key_bits(dt);
    uint64_t mask = bits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
    uint64_t flip = p->descending ? mask : 0;
    const char *src = in.base + r * in.rs;
    size_t sz = elem_size(dt);
    char *vdst = vo.base + r * vo.rs;
    int64_t *idst = has_idx ? (int64_t *)(io.base + r * io.rs) : NULL;
    if (bits <= 32 && n <= ((int64_t)1 << 32)) {
        uint64_t *a = buf, *tmp = a + n;
        if (parallel) {
#pragma omp parallel for schedule(static) num_threads(cpu_max_threads())
            for (int64_t i = 0; i < n; i++)
                a[i] = ((key_at(dt, src + i * in.es) ^ flip) << 32) | (uint64_t)i;
            radix_packed_par(a, tmp, n, 4, 4 + bits / 8);
        } else {
            for (int64_t i = 0; i < n; i++)
                a[i] = ((key_at(dt, src + i * in.es) ^ flip) << 32) | (uint64_t)i;
            if (n <= SORT_SMALL)
                insertion_packed(a, n);
            else
                radix_packed(a, tmp, n, 4, 4 + bits / 8);
        }
#pragma omp parallel for schedule(static) num_threads(cpu_max_threads()) if (parallel)
        for (int64_t j = 0; j < k; j++) {
            int64_t i = (int64_t)(a[j] & 0xffffffffu);
            copy_elem(vdst + j * vo.es, src + i * in.es, sz);
            if (idst)
                *(int64_t *)((char *)idst + j * io.es) = i;
        }
    } else {
        pair *a = buf, *tmp = a + n;
        for (int64_t i = 0; i < n; i++) {
            a[i].key = key_at(dt, src + i * in.es) ^ flip;
            a[i].idx = (uint64_t)i;
        }
        if (n <= SORT_SMALL)
            insertion_pairs(a, n);
        else
            radix_pairs(a, tmp, n, bits / 8);
        for (int64_t j = 0; j < k; j++) {
            int64_t i = (int64_t)a[j].idx;
            copy_elem(vdst + j * vo.es, src + i * in.es, sz);
            if (idst)
                *(int64_t *)((char *)idst + j * io.es) = i;
        }
    }
}

/* ---- topk by heaps: the k best (smallest (key, idx)) of a range ---- */

/* Max-heap of k pairs: the root is the worst kept. */
static void heap_down(pair *h, int64_t k, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, m = i;
        if (l < k && pair_less(h[m], h[l]))
            m = l;
        if (l + 1 < k && pair_less(h[m], h[l + 1]))
            m = l + 1;
        if (m == i)
            return;
        pair t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Fills h (k entries) with the best of [s0, s1) (s1 - s0 >= k); returns the count. */
static int64_t heap_range(ferry_dtype dt, const char *src, int64_t es, uint64_t flip,
                          int64_t s0, int64_t s1, pair *h, int64_t k)
{
    int64_t m = 0;
    for (int64_t i = s0; i < s1 && m < k; i++, m++) {
        h[m].key = key_at(dt, src + i * es) ^ flip;
        h[m].idx = (uint64_t)i;
    }
    for (int64_t i = m / 2; i-- > 0;)
        heap_down(h, m, i);
    if (m < k)
        return m;
    uint64_t worst = h[0].key;
    for (int64_t i = s0 + k; i < s1; i++) {
        uint64_t key = key_at(dt, src + i * es) ^ flip;
        /* Ties with the root lose: their index is larger. */
        if (key >= worst)
            continue;
        h[0].key = key;
        h[0].idx = (uint64_t)i;
        heap_down(h, k, 0);
        worst = h[0].key;
    }
    return k;
}

static int cmp_pair(const void *x, const void *y)
{
    const pair *a = x, *b = y;
    return pair_less(*a, *b) ? -1 : pair_less(*b, *a) ? 1 : 0;
}

static ferry_status topk_heap(const ferry_sort_params *p, ferry_dtype dt, rowt in, rowt vo,
                              rowt io, bool has_idx, bool parallel)
{
    int64_t n = p->n, k = p->k;
    int bits = key_bits(dt);
    uint64_t mask = bits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
    uint64_t flip = p->descending ? mask : 0;
    size_t sz = elem_size(dt);
    int nt = 1;
#ifdef _OPENMP
    if (parallel)
        nt = cpu_max_threads();
#endif
    if (nt > 64)
        nt = 64;
    if (!parallel || n / nt < 4 * k)
        nt = 1;
    ferry_status st = FERRY_OK;
    if (nt > 1) {
        /* One row over threads; the candidates are merged by a sort. */
        pair *cand = malloc(sizeof(pair) * (size_t)(k * nt));
        if (!cand)
            return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "topk: out of memory");
        int64_t got[64];
        const char *src = in.base;
#pragma omp parallel num_threads(nt)
        {
            int t = 0, T = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            T = omp_get_num_threads();
#endif
            got[t] = heap_range(dt, src, in.es, flip, n * t / T, n * (t + 1) / T,
                                cand + k * t, k);
            if (t == 0)
                for (int u = T; u < nt; u++)
                    got[u] = 0;
        }
        int64_t m = 0;
        for (int t = 0; t < nt; t++)
            for (int64_t j = 0; j < got[t]; j++)
                cand[m++] = cand[k * t + j];
        qsort(cand, (size_t)m, sizeof *cand, cmp_pair);
        for (int64_t j = 0; j < k; j++) {
            int64_t i = (int64_t)cand[j].idx;
            copy_elem(vo.base + j * vo.es, src + i * in.es, sz);
            if (has_idx)
                *(int64_t *)(io.base + j * io.es) = i;
        }
        free(cand);
        return st;
    }
    bool fail = false;
#pragma omp parallel for schedule(dynamic, 1) num_threads(cpu_max_threads()) if (p->rows > 1)
    for (int64_t r = 0; r < p->rows; r++) {
        pair *h = malloc(sizeof(pair) * (size_t)k);
        if (!h) {
#pragma omp atomic write
            fail = true;
            continue;
        }
        const char *src = in.base + r * in.rs;
        heap_range(dt, src, in.es, flip, 0, n, h, k);
        qsort(h, (size_t)k, sizeof *h, cmp_pair);
        for (int64_t j = 0; j < k; j++) {
            int64_t i = (int64_t)h[j].idx;
            copy_elem(vo.base + r * vo.rs + j * vo.es, src + i * in.es, sz);
            if (has_idx)
                *(int64_t *)(io.base + r * io.rs + j * io.es) = i;
        }
        free(h);
    }
    if (fail)
        return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "topk: out of memory");
    return st;
}

static ferry_status cpu_sort(int32_t device, const ferry_op_args *args)
{
    (void)device;
    const ferry_sort_params *p = args->params;
    if (!p || args->params_size < sizeof *p || (args->ntensors != 3 && args->ntensors != 2))
        return FERRY_ERR_UNSUPPORTED;
    bool has_idx = args->ntensors == 3;
    const ferry_kernel_tensor *tin = &args->tensors[has_idx ? 2 : 1];
    ferry_dtype dt = tin->dtype;
    rowt in = row_of(tin), vo = row_of(&args->tensors[0]);
    rowt io = has_idx ? row_of(&args->tensors[1]) : (rowt){0};
    int64_t n = p->n, k = p->k;
    if (p->rows <= 0 || n <= 0 || k <= 0)
        return FERRY_OK;
    /* Selection when k is a small part of the row: one read, no full sort. */
    if (k < n && k <= 1024 && k * 16 <= n)
        return topk_heap(p, dt, in, vo, io, has_idx, p->rows == 1 && n >= SORT_PAR_MIN);
    if (!has_idx && !p->stable && p->rows == 1 && k == n && n >= SORT_PAR_MIN &&
        (dt == FERRY_FLOAT32 || dt == FERRY_INT32)) {
        if (!sort_values32(dt, in.base, in.es, vo.base, vo.es, n, p->descending))
            return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "sort: out of memory (%lld elements)",
                                   (long long)n);
        return FERRY_OK;
    }
    bool packed = key_bits(dt) <= 32 && n <= ((int64_t)1 << 32);
    size_t unit = packed ? sizeof(uint64_t) : sizeof(pair);
    if (p->rows == 1 && n >= SORT_PAR_MIN && packed &&
        (dt == FERRY_FLOAT32 || dt == FERRY_INT32)) {
        int r = sort_packed32(dt, in.base, in.es, n, k, p->descending, vo.base, vo.es,
                              has_idx ? io.base : NULL, io.es);
        if (r == 0)
            return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "sort: out of memory (%lld elements)",
                                   (long long)n);
        if (r > 0)
            return FERRY_OK;
    }
    if (p->rows == 1 && n >= SORT_PAR_MIN) {
        void *buf = malloc(unit * 2 * (size_t)n);
        if (!buf)
            return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "sort: out of memory (%lld elements)",
                                       (long long)n);
        sort_row(p, dt, in, vo, io, has_idx, 0, buf, packed);
        free(buf);
        return FERRY_OK;
    }
    bool fail = false;
#pragma omp parallel num_threads(cpu_max_threads()) if (p->rows > 1 && p->rows * n >= 4096)
    {
        void *buf = malloc(unit * 2 * (size_t)n);
        if (!buf) {
#pragma omp atomic write
            fail = true;
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < p->rows; r++)
            if (buf)
                sort_row(p, dt, in, vo, io, has_idx, r, buf, false);
        free(buf);
    }
    if (fail)
        return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY, "sort: out of memory");
    return FERRY_OK;
}

static ferry_status cpu_sort_scatter(int32_t device, const ferry_op_args *args)
{
    (void)device;
    const ferry_sort_params *p = args->params;
    if (!p || args->params_size < sizeof *p || args->ntensors != 3)
        return FERRY_ERR_UNSUPPORTED;
    ferry_dtype dt = args->tensors[0].dtype;
    size_t sz = elem_size(dt);
    rowt o = row_of(&args->tensors[0]), g = row_of(&args->tensors[1]),
         ix = row_of(&args->tensors[2]);
#pragma omp parallel for schedule(static) num_threads(cpu_max_threads()) \
    if (p->rows * p->n >= 65536)
    for (int64_t r = 0; r < p->rows; r++) {
        char *orow = o.base + r * o.rs;
        for (int64_t i = 0; i < p->n; i++)
            memset(orow + i * o.es, 0, sz);
        for (int64_t j = 0; j < p->k; j++) {
            int64_t i = *(const int64_t *)(ix.base + r * ix.rs + j * ix.es);
            if (i >= 0 && i < p->n)
                copy_elem(orow + i * o.es, g.base + r * g.rs + j * g.es, sz);
        }
    }
    return FERRY_OK;
}

CPU_HIDDEN const ferry_named_entry cpu_named_sort[] = {
    {FERRY_OP_SORT, cpu_sort},
    {FERRY_OP_SORT_SCATTER, cpu_sort_scatter},
    {NULL, NULL},
};

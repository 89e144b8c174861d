/* CPU reductions (sum, mean, max, min, argmax) over any set of dims of a strided tensor:
 * float sums pairwise over fixed blocks, so results do not depend on the thread count;
 * fast paths for a whole contiguous tensor and for outer dims under a contiguous one,
 * OpenMP over blocks or outputs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ferry/half.h>

#include "cpu_internal.h"

#undef bool

/*
 * Summation order. A contiguous run is cut into blocks of CPU_SUM_BLOCK elements; a block
 * is summed in CPU_SUM_LANES interleaved accumulators (one element in 32 each, so gcc
 * keeps them in vector registers), the lanes are added pairwise, and the block sums are
 * added pairwise. The error bound is that of pairwise summation with a base case of
 * 128 elements: 16M float32 ones sum to exactly 16777216, and so does any split of the
 * blocks over threads, because the threads only compute block sums and the pairwise tree
 * over them is fixed. Strided runs use the same scheme with 4 accumulators and blocks of
 * 128. Runs are combined with a cascade (a binary counter of partial sums), which is
 * pairwise over runs. Integer sums are exact modulo 2^64 in any order.
 *
 * Vectorization (gcc 12 -O3; -fopt-info-vec-optimized reports 385 loops here; objdump
 * shows ymm code in every x86-64-v3 clone): the block loops of sum, max and min, the
 * column loops and argmax's block search, for every dtype; float16/bfloat16 blocks are
 * converted to float32 tiles first (F16C). One thread sums 16 KB blocks of float32 at
 * about 220 GB/s from L1; 4M float16 elements sum at 0.05 ns each, as float32 do.
 */
#define CPU_SUM_LANES 32
#define CPU_SUM_BLOCK ((int64_t)4096)
#define CPU_STRIDED_BLOCK ((int64_t)128)

/* Elements one thread should get before a second is worth waking. A sum reads 4 bytes
 * an element where an add moves 12, so it splits later than the elementwise ops
 * (CPU_EW_GRAIN in cpu_ops.c): float32 sum of 64K elements, one thread 1.5 us, two
 * 2.1-2.3 us; of 128K, 2.7 us against 2.0. */
#define CPU_RED_GRAIN ((int64_t)65536)

/* ---- the dtype table ------------------------------------------------------------------
 * X(suffix, enum, storage type, compute type, sum accumulator, kind): kind I for bool and
 * integers (sums wrap in uint64, stored as int64), F for float32/float64, H for
 * float16/bfloat16, whose contiguous blocks are converted to float32 tiles and reduced
 * by the float32 block loops (defined first for that reason): the same values in the
 * same lanes as converting element by element. */
#define CPU_RED_DTYPES(X)                                        \
    X(bool, FERRY_BOOL, uint8_t, uint8_t, uint64_t, I)           \
    X(u8, FERRY_UINT8, uint8_t, uint8_t, uint64_t, I)            \
    X(i8, FERRY_INT8, int8_t, int8_t, uint64_t, I)               \
    X(i16, FERRY_INT16, int16_t, int16_t, uint64_t, I)           \
    X(i32, FERRY_INT32, int32_t, int32_t, uint64_t, I)           \
    X(i64, FERRY_INT64, int64_t, int64_t, uint64_t, I)           \
    X(f32, FERRY_FLOAT32, float, float, float, F)                \
    X(f64, FERRY_FLOAT64, double, double, double, F)             \
    X(f16, FERRY_FLOAT16, uint16_t, float, float, H)             \
    X(bf16, FERRY_BFLOAT16, uint16_t, float, float, H)


/* Element value into a sum accumulator: integers go to uint64 (modulo 2^64, which is
 * the wrap of the int64 result). */
#define CPU_TOACC_I(x, at) ((at)(int64_t)(x))
#define CPU_TOACC_F(x, at) ((at)(x))

/* Max/min steps, NaN-propagating for floats: a NaN m stays (v > NaN is false) and a NaN
 * v is taken (v != v). `|`, not `||`: a branch-free select vectorizes (compare, or,
 * blend); the lane loops are left to the loop vectorizer, which keeps the lanes in
 * memory (unrolled, gcc 12 scalarizes these selects into branches). */
#define CPU_MAXSEL_I(v, m) ((v) > (m) ? (v) : (m))
#define CPU_MINSEL_I(v, m) ((v) < (m) ? (v) : (m))
#define CPU_MAXSEL_F(v, m) ((((v) > (m)) | ((v) != (v))) ? (v) : (m))
#define CPU_MINSEL_F(v, m) ((((v) < (m)) | ((v) != (v))) ? (v) : (m))
/* Whether v replaces the argmax so far: strictly greater (so the first occurrence
 * wins), or the first NaN (NaN counts as maximal). */
#define CPU_TOACC_H CPU_TOACC_F
#define CPU_MAXSEL_H CPU_MAXSEL_F
#define CPU_MINSEL_H CPU_MINSEL_F
#define CPU_BETTER_H CPU_BETTER_F
#define CPU_SAME_H CPU_SAME_F
#define CPU_BETTER_I(v, m) ((v) > (m))
#define CPU_BETTER_F(v, m) ((v) > (m) || ((v) != (v) && (m) == (m)))
#define CPU_SAME_I(v, m) ((v) == (m))
#define CPU_SAME_F(v, m) ((v) == (m) || ((v) != (v) && (m) != (m)))

/* One output's result before it is stored. */
typedef struct cpu_red_result {
    double fsum;      /* SUM, MEAN of floating types */
    uint64_t isum;    /* SUM of bool and integers */
    double val;       /* MAX, MIN (every value of every dtype but int64 is a double) */
    int64_t ival;     /* MAX, MIN of int64 */
    int64_t index;    /* ARGMAX */
} cpu_red_result;

/* The dims of one reduction: kept dims (the outputs) and reduced dims, extent-1 dims
 * dropped and mergeable neighbours merged. Strides in elements. */
typedef struct cpu_red_geom {
    int kndim, rndim;
    int64_t K, R;
    int64_t kshape[FERRY_MAX_DIMS], kin[FERRY_MAX_DIMS], kout[FERRY_MAX_DIMS];
    int64_t rshape[FERRY_MAX_DIMS], rin[FERRY_MAX_DIMS];
    int64_t in_shift; /* elements from in's element 0 to the first reduced element visited */
    int64_t tile;     /* column path: outputs per tile (<= CPU_COL_TILE) */
} cpu_red_geom;

/* ---- typed kernels ----------------------------------------------------------------------- */

#define CPU_DEF_BLOCKS_DIRECT(sfx, st, ct, at, kind)                                         \
    /* One block (n <= CPU_SUM_BLOCK) of a contiguous run. */                                \
    CPU_CLONES static at cpu_sum_block_##sfx(const st *x, int64_t n)                         \
    {                                                                                        \
        at acc[CPU_SUM_LANES] = {0};                                                         \
        int64_t i = 0;                                                                       \
        for (; i + CPU_SUM_LANES <= n; i += CPU_SUM_LANES) {                                 \
            _Pragma("GCC unroll 32") for (int l = 0; l < CPU_SUM_LANES; l++)                 \
                acc[l] += CPU_TOACC_##kind(CPU_LD_##sfx(x[i + l]), at);                      \
        }                                                                                    \
        at tail = 0;                                                                         \
        for (; i < n; i++)                                                                   \
            tail += CPU_TOACC_##kind(CPU_LD_##sfx(x[i]), at);                                \
        for (int w = CPU_SUM_LANES / 2; w > 0; w /= 2)                                       \
            for (int l = 0; l < w; l++)                                                      \
                acc[l] += acc[l + w];                                                        \
        return acc[0] + tail;                                                                \
    }                                                                                        \
    /* Max or min of a contiguous run, n >= 1. */                                            \
    CPU_CLONES static ct cpu_maxmin_##sfx(const char *p, int64_t n, int want_max)            \
    {                                                                                        \
        const st *x = (const st *)(const void *)p;                                           \
        ct acc[CPU_SUM_LANES];                                                               \
        ct first = CPU_LD_##sfx(x[0]);                                                       \
        for (int l = 0; l < CPU_SUM_LANES; l++)                                              \
            acc[l] = first;                                                                  \
        int64_t i = 0;                                                                       \
        if (want_max) {                                                                      \
            for (; i + CPU_SUM_LANES <= n; i += CPU_SUM_LANES) {                             \
                for (int l = 0; l < CPU_SUM_LANES; l++) {                                    \
                    ct v = CPU_LD_##sfx(x[i + l]);                                           \
                    acc[l] = CPU_MAXSEL_##kind(v, acc[l]);                                   \
                }                                                                            \
            }                                                                                \
            for (; i < n; i++) {                                                             \
                ct v = CPU_LD_##sfx(x[i]);                                                   \
                acc[0] = CPU_MAXSEL_##kind(v, acc[0]);                                       \
            }                                                                                \
            for (int l = 1; l < CPU_SUM_LANES; l++)                                          \
                acc[0] = CPU_MAXSEL_##kind(acc[l], acc[0]);                                  \
        } else {                                                                             \
            for (; i + CPU_SUM_LANES <= n; i += CPU_SUM_LANES) {                             \
                for (int l = 0; l < CPU_SUM_LANES; l++) {                                    \
                    ct v = CPU_LD_##sfx(x[i + l]);                                           \
                    acc[l] = CPU_MINSEL_##kind(v, acc[l]);                                   \
                }                                                                            \
            }                                                                                \
            for (; i < n; i++) {                                                             \
                ct v = CPU_LD_##sfx(x[i]);                                                   \
                acc[0] = CPU_MINSEL_##kind(v, acc[0]);                                       \
            }                                                                                \
            for (int l = 1; l < CPU_SUM_LANES; l++)                                          \
                acc[0] = CPU_MINSEL_##kind(acc[l], acc[0]);                                  \
        }                                                                                    \
        return acc[0];                                                                       \
    }

/* float16/bfloat16: tiles of the block converted to float32, then the float32 loops. */
#define CPU_DEF_BLOCKS_STAGED(sfx, st, ct, at, kind)                                         \
    static at cpu_sum_block_##sfx(const st *x, int64_t n)                                    \
    {                                                                                        \
        float buf[CPU_SUM_BLOCK];                                                            \
        cpu_##sfx##_to_f32_n(buf, x, n);                                                     \
        return cpu_sum_block_f32(buf, n);                                                    \
    }                                                                                        \
    static ct cpu_maxmin_##sfx(const char *p, int64_t n, int want_max)                       \
    {                                                                                        \
        const st *x = (const st *)(const void *)p;                                           \
        float buf[CPU_SUM_BLOCK];                                                            \
        ct m = 0;                                                                            \
        for (int64_t i = 0; i < n; i += CPU_SUM_BLOCK) {                                     \
            int64_t len = n - i < CPU_SUM_BLOCK ? n - i : CPU_SUM_BLOCK;                     \
            cpu_##sfx##_to_f32_n(buf, x + i, len);                                           \
            ct v = cpu_maxmin_f32((const char *)buf, len, want_max);                         \
            m = i == 0 ? v : want_max ? CPU_MAXSEL_F(v, m) : CPU_MINSEL_F(v, m);             \
        }                                                                                    \
        return m;                                                                            \
    }
#define CPU_BLOCKS_I CPU_DEF_BLOCKS_DIRECT
#define CPU_BLOCKS_F CPU_DEF_BLOCKS_DIRECT
#define CPU_BLOCKS_H CPU_DEF_BLOCKS_STAGED

#define CPU_DEF_RED(sfx, en, st, ct, at, kind)                                               \
    CPU_BLOCKS_##kind(sfx, st, ct, at, kind)                                                 \
    /* Blocks [lo, hi) of a contiguous run of n elements, pairwise. */                       \
    static at cpu_sum_blocks_##sfx(const st *x, int64_t n, int64_t lo, int64_t hi)           \
    {                                                                                        \
        if (hi - lo == 1) {                                                                  \
            int64_t start = lo * CPU_SUM_BLOCK, len = n - start;                             \
            return cpu_sum_block_##sfx(x + start, len < CPU_SUM_BLOCK ? len : CPU_SUM_BLOCK); \
        }                                                                                    \
        int64_t mid = lo + (hi - lo) / 2;                                                    \
        return cpu_sum_blocks_##sfx(x, n, lo, mid) + cpu_sum_blocks_##sfx(x, n, mid, hi);    \
    }                                                                                        \
    static at cpu_sum_##sfx(const char *p, int64_t n)                                        \
    {                                                                                        \
        if (n <= 0)                                                                          \
            return 0;                                                                        \
        return cpu_sum_blocks_##sfx((const st *)(const void *)p, n, 0,                       \
                                    (n + CPU_SUM_BLOCK - 1) / CPU_SUM_BLOCK);                \
    }                                                                                        \
    static at cpu_sum_##sfx##_strided(const char *p, int64_t n, int64_t step)                \
    {                                                                                        \
        if (n > CPU_STRIDED_BLOCK) {                                                         \
            int64_t half = n / 2;                                                            \
            return cpu_sum_##sfx##_strided(p, half, step) +                                  \
                   cpu_sum_##sfx##_strided(p + half * step, n - half, step);                 \
        }                                                                                    \
        at acc[4] = {0, 0, 0, 0};                                                            \
        int64_t i = 0;                                                                       \
        for (; i + 4 <= n; i += 4)                                                           \
            for (int l = 0; l < 4; l++) {                                                    \
                st v;                                                                        \
                memcpy(&v, p + (i + l) * step, sizeof v);                                    \
                acc[l] += CPU_TOACC_##kind(CPU_LD_##sfx(v), at);                             \
            }                                                                                \
        for (; i < n; i++) {                                                                 \
            st v;                                                                            \
            memcpy(&v, p + i * step, sizeof v);                                              \
            acc[0] += CPU_TOACC_##kind(CPU_LD_##sfx(v), at);                                 \
        }                                                                                    \
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);                                        \
    }                                                                                        \
    static ct cpu_maxmin_##sfx##_strided(const char *p, int64_t n, int64_t step, int want_max) \
    {                                                                                        \
        st v0;                                                                               \
        memcpy(&v0, p, sizeof v0);                                                           \
        ct m = CPU_LD_##sfx(v0);                                                             \
        for (int64_t i = 1; i < n; i++) {                                                    \
            st s;                                                                            \
            memcpy(&s, p + i * step, sizeof s);                                              \
            ct v = CPU_LD_##sfx(s);                                                          \
            m = want_max ? CPU_MAXSEL_##kind(v, m) : CPU_MINSEL_##kind(v, m);                \
        }                                                                                    \
        return m;                                                                            \
    }                                                                                        \
    /* Index of the first maximum of a contiguous run (n >= 1), its value in *best: the    \
     * block holding it is found with the vectorized block max, then searched once. */      \
    static int64_t cpu_argmax_##sfx(const char *p, int64_t n, ct *best)                      \
    {                                                                                        \
        const st *x = (const st *)(const void *)p;                                           \
        const int64_t blk = 1024;                                                            \
        ct m = 0;                                                                            \
        int64_t at_blk = 0;                                                                  \
        for (int64_t b = 0; b * blk < n; b++) {                                              \
            int64_t len = n - b * blk < blk ? n - b * blk : blk;                             \
            ct bm = cpu_maxmin_##sfx((const char *)(x + b * blk), len, 1);                   \
            if (b == 0 || CPU_BETTER_##kind(bm, m)) {                                        \
                m = bm;                                                                      \
                at_blk = b;                                                                  \
            }                                                                                \
        }                                                                                    \
        int64_t i = at_blk * blk;                                                            \
        for (; i < n; i++) {                                                                 \
            ct v = CPU_LD_##sfx(x[i]);                                                       \
            if (CPU_SAME_##kind(v, m))                                                       \
                break;                                                                       \
        }                                                                                    \
        *best = m;                                                                           \
        return i;                                                                            \
    }                                                                                        \
    static int64_t cpu_argmax_##sfx##_strided(const char *p, int64_t n, int64_t step, ct *best) \
    {                                                                                        \
        st v0;                                                                               \
        memcpy(&v0, p, sizeof v0);                                                           \
        ct m = CPU_LD_##sfx(v0);                                                             \
        int64_t at_i = 0;                                                                    \
        for (int64_t i = 1; i < n; i++) {                                                    \
            st s;                                                                            \
            memcpy(&s, p + i * step, sizeof s);                                              \
            ct v = CPU_LD_##sfx(s);                                                          \
            if (CPU_BETTER_##kind(v, m)) {                                                   \
                m = v;                                                                       \
                at_i = i;                                                                    \
            }                                                                                \
        }                                                                                    \
        *best = m;                                                                           \
        return at_i;                                                                         \
    }                                                                                        \
    /* Reduces one output's elements: runs along the innermost reduced dim, the outer   \
     * reduced dims walked like an odometer. */                                               \
    static void cpu_reduce_one_##sfx(ferry_reduce_op op, const cpu_red_geom *g,              \
                                     const char *p, int aligned, cpu_red_result *res)        \
    {                                                                                        \
        const int64_t es = (int64_t)sizeof(st);                                              \
        int last = g->rndim - 1;                                                             \
        int64_t n = g->rshape[last], s = g->rin[last];                                       \
        int contig = aligned && s == 1;                                                      \
        int64_t idx[FERRY_MAX_DIMS] = {0};                                                   \
        int64_t off = 0, run = 0;                                                            \
        at stack[64];                                                                        \
        int top = 0;                                                                         \
        ct m = 0;                                                                            \
        int64_t best_at = 0;                                                                 \
        for (;;) {                                                                           \
            const char *q = p + off * es;                                                    \
            if (op == FERRY_REDUCE_SUM || op == FERRY_REDUCE_MEAN) {                         \
                at r = contig ? cpu_sum_##sfx(q, n) : cpu_sum_##sfx##_strided(q, n, s * es); \
                /* Cascade: equal-weight partials merge as a binary counter does. */       \
                for (int64_t c = run; c & 1; c >>= 1)                                        \
                    r = stack[--top] + r;                                                    \
                stack[top++] = r;                                                            \
            } else if (op == FERRY_REDUCE_ARGMAX) {                                          \
                ct v;                                                                        \
                int64_t i = contig ? cpu_argmax_##sfx(q, n, &v)                              \
                                   : cpu_argmax_##sfx##_strided(q, n, s * es, &v);           \
                if (run == 0 || CPU_BETTER_##kind(v, m)) {                                   \
                    m = v;                                                                   \
                    best_at = run * n + i;                                                   \
                }                                                                            \
            } else {                                                                         \
                int want_max = op == FERRY_REDUCE_MAX;                                       \
                ct v = contig ? cpu_maxmin_##sfx(q, n, want_max)                             \
                              : cpu_maxmin_##sfx##_strided(q, n, s * es, want_max);          \
                m = run == 0 ? v                                                             \
                    : want_max ? CPU_MAXSEL_##kind(v, m) : CPU_MINSEL_##kind(v, m);          \
            }                                                                                \
            run++;                                                                           \
            int d = last - 1;                                                                \
            for (; d >= 0; d--) {                                                            \
                if (++idx[d] < g->rshape[d]) {                                               \
                    off += g->rin[d];                                                        \
                    break;                                                                   \
                }                                                                            \
                off -= g->rin[d] * (g->rshape[d] - 1);                                       \
                idx[d] = 0;                                                                  \
            }                                                                                \
            if (d < 0)                                                                       \
                break;                                                                       \
        }                                                                                    \
        at total = 0;                                                                        \
        while (top > 0)                                                                      \
            total = stack[--top] + total;                                                    \
        cpu_red_set_sum_##kind(res, total);                                                  \
        cpu_red_set_val_##sfx(res, m);                                                       \
        res->index = best_at;                                                                \
    }                                                                                        \
    /* Every element of a contiguous run (n >= 1) into one output, on several threads:  \
     * block sums (or per-thread max/argmax) are computed in parallel, then combined in   \
     * block order, so the result does not depend on the thread count. */                   \
    static ferry_status cpu_reduce_all_##sfx(ferry_reduce_op op, const char *p, int64_t n,  \
                                             cpu_red_result *res)                            \
    {                                                                                        \
        const st *x = (const st *)(const void *)p;                                           \
        int nt = cpu_threads_for(n, CPU_RED_GRAIN);                                          \
        if (op == FERRY_REDUCE_SUM || op == FERRY_REDUCE_MEAN) {                             \
            int64_t nb = (n + CPU_SUM_BLOCK - 1) / CPU_SUM_BLOCK;                            \
            if (nt <= 1 || nb < 2) {                                                         \
                cpu_red_set_sum_##kind(res, cpu_sum_##sfx(p, n));                            \
                return FERRY_OK;                                                             \
            }                                                                                \
            at small[256], *part = nb <= 256 ? small : malloc((size_t)nb * sizeof(at));      \
            if (!part)                                                                       \
                return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY,                              \
                                       "cpu: sum: cannot allocate %lld partial sums",        \
                                       (long long)nb);                                       \
            _Pragma("omp parallel for num_threads(nt) schedule(static)")                     \
            for (int64_t b = 0; b < nb; b++) {                                               \
                int64_t len = n - b * CPU_SUM_BLOCK;                                         \
                part[b] = cpu_sum_block_##sfx(x + b * CPU_SUM_BLOCK,                         \
                                              len < CPU_SUM_BLOCK ? len : CPU_SUM_BLOCK);    \
            }                                                                                \
            /* The same tree cpu_sum_blocks builds, over the stored block sums. */          \
            at total = cpu_pairwise_##sfx(part, 0, nb);                                      \
            if (part != small)                                                               \
                free(part);                                                                  \
            cpu_red_set_sum_##kind(res, total);                                              \
            return FERRY_OK;                                                                 \
        }                                                                                    \
        if (nt < 1)                                                                          \
            nt = 1;                                                                          \
        ct vals[CPU_MAX_PARTS];                                                              \
        int64_t where[CPU_MAX_PARTS];                                                        \
        if (nt > CPU_MAX_PARTS)                                                              \
            nt = CPU_MAX_PARTS;                                                              \
        int parts = nt;                                                                      \
        _Pragma("omp parallel for num_threads(nt) schedule(static) if (parts > 1)")          \
        for (int t = 0; t < parts; t++) {                                                    \
            int64_t lo = cpu_split(n, parts, t, 64), hi = cpu_split(n, parts, t + 1, 64);   \
            where[t] = -1;                                                                   \
            if (lo >= hi)                                                                    \
                continue;                                                                    \
            if (op == FERRY_REDUCE_ARGMAX) {                                                 \
                ct v;                                                                        \
                where[t] = lo + cpu_argmax_##sfx((const char *)(x + lo), hi - lo, &v);       \
                vals[t] = v;                                                                 \
            } else {                                                                         \
                vals[t] = cpu_maxmin_##sfx((const char *)(x + lo), hi - lo,                  \
                                           op == FERRY_REDUCE_MAX);                          \
                where[t] = lo;                                                               \
            }                                                                                \
        }                                                                                    \
        ct m = 0;                                                                            \
        int64_t best_at = 0;                                                                 \
        int have = 0;                                                                        \
        for (int t = 0; t < parts; t++) {                                                    \
            if (where[t] < 0)                                                                \
                continue;                                                                    \
            ct v = vals[t];                                                                  \
            if (op == FERRY_REDUCE_ARGMAX) {                                                 \
                if (!have || CPU_BETTER_##kind(v, m)) {                                      \
                    m = v;                                                                   \
                    best_at = where[t];                                                      \
                }                                                                            \
            } else if (!have) {                                                              \
                m = v;                                                                       \
            } else {                                                                         \
                m = op == FERRY_REDUCE_MAX ? CPU_MAXSEL_##kind(v, m)                         \
                                           : CPU_MINSEL_##kind(v, m);                        \
            }                                                                                \
            have = 1;                                                                        \
        }                                                                                    \
        cpu_red_set_val_##sfx(res, m);                                                       \
        res->index = best_at;                                                                \
        return FERRY_OK;                                                                     \
    }                                                                                        \
    /* Writes one result into out's element at q, in out's dtype. */                         \
    static void cpu_red_store_##sfx(ferry_reduce_op op, const cpu_red_result *res,           \
                                    int64_t count, char *q)                                  \
    {                                                                                        \
        switch (op) {                                                                        \
        case FERRY_REDUCE_SUM:                                                               \
            cpu_red_store_sum_##kind##_##sfx(res, q);                                        \
            break;                                                                           \
        case FERRY_REDUCE_MEAN:                                                              \
            cpu_red_store_mean_##kind##_##sfx(res, count, q);                                \
            break;                                                                           \
        case FERRY_REDUCE_MAX:                                                               \
        case FERRY_REDUCE_MIN: {                                                             \
            st v = CPU_ST_##sfx(cpu_red_get_val_##sfx(res));                                 \
            memcpy(q, &v, sizeof v);                                                         \
            break;                                                                           \
        }                                                                                    \
        case FERRY_REDUCE_ARGMAX:                                                            \
            memcpy(q, &res->index, sizeof res->index);                                       \
            break;                                                                           \
        }                                                                                    \
    }

#define CPU_MAX_PARTS 256

/* Result accessors per kind and dtype; each dtype uses those of its kind only. */
#define CPU_UNUSED __attribute__((unused))
static inline void cpu_red_set_sum_I(cpu_red_result *r, uint64_t s) { r->isum = s; }
static inline void cpu_red_set_sum_F(cpu_red_result *r, double s) { r->fsum = s; }
static inline void cpu_red_set_sum_H(cpu_red_result *r, double s) { r->fsum = s; }

#define CPU_DEF_VAL_(sfx, en, st, ct, at, kind)                                               \
    CPU_UNUSED static inline void cpu_red_set_val_##sfx(cpu_red_result *r, ct v)                        \
    {                                                                                        \
        if (en == FERRY_INT64)                                                               \
            r->ival = (int64_t)v;                                                            \
        else                                                                                 \
            r->val = (double)v;                                                              \
    }                                                                                        \
    CPU_UNUSED static inline ct cpu_red_get_val_##sfx(const cpu_red_result *r)                          \
    {                                                                                        \
        return en == FERRY_INT64 ? (ct)r->ival : (ct)r->val;                                 \
    }                                                                                        \
    /* Integer sums are int64 whatever the input; the uint64 wraps into it. */               \
    CPU_UNUSED static inline void cpu_red_store_sum_I_##sfx(const cpu_red_result *r, char *q)           \
    {                                                                                        \
        int64_t v = (int64_t)r->isum;                                                        \
        memcpy(q, &v, sizeof v);                                                             \
    }                                                                                        \
    CPU_UNUSED static inline void cpu_red_store_mean_I_##sfx(const cpu_red_result *r, int64_t count,   \
                                                  char *q)                                   \
    {                                                                                        \
        (void)r, (void)count, (void)q; /* mean of integers never reaches a backend */        \
    }                                                                                        \
    CPU_UNUSED static inline void cpu_red_store_sum_H_##sfx(const cpu_red_result *r, char *q)           \
    {                                                                                        \
        st v = CPU_ST_##sfx((ct)r->fsum);                                                    \
        memcpy(q, &v, sizeof v);                                                             \
    }                                                                                        \
    CPU_UNUSED static inline void cpu_red_store_mean_H_##sfx(const cpu_red_result *r, int64_t count,   \
                                                  char *q)                                   \
    {                                                                                        \
        st v = CPU_ST_##sfx((ct)(r->fsum / (double)count));                                  \
        memcpy(q, &v, sizeof v);                                                             \
    }                                                                                        \
    CPU_UNUSED static inline void cpu_red_store_sum_F_##sfx(const cpu_red_result *r, char *q)           \
    {                                                                                        \
        st v = CPU_ST_##sfx((ct)r->fsum);                                                    \
        memcpy(q, &v, sizeof v);                                                             \
    }                                                                                        \
    /* The division runs in double and rounds once into the dtype; 0 / 0 gives the NaN   \
     * of an empty mean. */                                                                   \
    CPU_UNUSED static inline void cpu_red_store_mean_F_##sfx(const cpu_red_result *r, int64_t count,   \
                                                  char *q)                                   \
    {                                                                                        \
        st v = CPU_ST_##sfx((ct)(r->fsum / (double)count));                                  \
        memcpy(q, &v, sizeof v);                                                             \
    }                                                                                        \
    /* Pairwise over stored block sums, split as cpu_sum_blocks splits. */                   \
    CPU_UNUSED static at cpu_pairwise_##sfx(const at *part, int64_t lo, int64_t hi)                     \
    {                                                                                        \
        if (hi - lo == 1)                                                                    \
            return part[lo];                                                                 \
        int64_t mid = lo + (hi - lo) / 2;                                                    \
        return cpu_pairwise_##sfx(part, lo, mid) + cpu_pairwise_##sfx(part, mid, hi);        \
    }
CPU_RED_DTYPES(CPU_DEF_VAL_)
#undef CPU_DEF_VAL_

CPU_RED_DTYPES(CPU_DEF_RED)

/* ---- reducing outer dims: the column path ------------------------------------------------
 * When the innermost kept dim is contiguous in the input (sum over dim 0 of a row-major
 * matrix, say), the outputs along it are computed together: each reduced "row" adds a
 * contiguous tile of up to CPU_COL_TILE elements (4 KB of float32: long enough to
 * stream, short enough that the accumulators stay in L1) into as many accumulators, a
 * loop gcc vectorizes across the tile. Sums add rows in chunks of CPU_STRIDED_BLOCK and cascade
 * the chunk sums pairwise, as the row path does with runs. */
#define CPU_COL_TILE 1024

/* Reduced rows in row-major order of the reduced dims: offsets in elements. */
typedef struct cpu_rows {
    const cpu_red_geom *g;
    int64_t idx[FERRY_MAX_DIMS];
    int64_t off;
} cpu_rows;

static inline void cpu_rows_next(cpu_rows *r)
{
    const cpu_red_geom *g = r->g;
    for (int d = g->rndim - 1; d >= 0; d--) {
        if (++r->idx[d] < g->rshape[d]) {
            r->off += g->rin[d];
            return;
        }
        r->off -= g->rin[d] * (g->rshape[d] - 1);
        r->idx[d] = 0;
    }
}

#define CPU_DEF_COLS(sfx, en, st, ct, at, kind)                                              \
    CPU_CLONES static void cpu_col_add_##sfx(at *restrict acc, const st *restrict x,         \
                                             int64_t n)                                      \
    {                                                                                        \
        for (int64_t j = 0; j < n; j++)                                                      \
            acc[j] += CPU_TOACC_##kind(CPU_LD_##sfx(x[j]), at);                              \
    }                                                                                        \
    /* Four rows per pass: a quarter of the accumulator loads and stores. */                 \
    CPU_CLONES static void cpu_col_add4_##sfx(at *restrict acc, const st *restrict x0,        \
                                              const st *restrict x1, const st *restrict x2,   \
                                              const st *restrict x3, int64_t n)              \
    {                                                                                        \
        for (int64_t j = 0; j < n; j++)                                                      \
            acc[j] += (CPU_TOACC_##kind(CPU_LD_##sfx(x0[j]), at) +                           \
                       CPU_TOACC_##kind(CPU_LD_##sfx(x1[j]), at)) +                          \
                      (CPU_TOACC_##kind(CPU_LD_##sfx(x2[j]), at) +                           \
                       CPU_TOACC_##kind(CPU_LD_##sfx(x3[j]), at));                           \
    }                                                                                        \
    CPU_CLONES static void cpu_col_maxmin_##sfx(ct *restrict m, const st *restrict x,        \
                                                int64_t n, int want_max)                     \
    {                                                                                        \
        if (want_max)                                                                        \
            for (int64_t j = 0; j < n; j++) {                                                \
                ct v = CPU_LD_##sfx(x[j]);                                                   \
                m[j] = CPU_MAXSEL_##kind(v, m[j]);                                           \
            }                                                                                \
        else                                                                                 \
            for (int64_t j = 0; j < n; j++) {                                                \
                ct v = CPU_LD_##sfx(x[j]);                                                   \
                m[j] = CPU_MINSEL_##kind(v, m[j]);                                           \
            }                                                                                \
    }                                                                                        \
    CPU_CLONES static void cpu_col_argmax_##sfx(ct *restrict m, int64_t *restrict at_row,    \
                                                const st *restrict x, int64_t n, int64_t row) \
    {                                                                                        \
        for (int64_t j = 0; j < n; j++) {                                                    \
            ct v = CPU_LD_##sfx(x[j]);                                                       \
            int better = CPU_BETTER_##kind(v, m[j]);                                         \
            m[j] = better ? v : m[j];                                                        \
            at_row[j] = better ? row : at_row[j];                                            \
        }                                                                                    \
    }                                                                                        \
    /* Outputs [j0, j0 + n) of the innermost kept dim, at kept offsets ioff/ooff; the    \
     * scratch holds g->tile * (levels + 1) slots of 8 bytes. */                             \
    static void cpu_cols_##sfx(ferry_reduce_op op, const cpu_red_geom *g, const char *in,   \
                               char *out, size_t out_es, int64_t ioff, int64_t ooff,         \
                               int64_t j0, int64_t n, void *scratch)                         \
    {                                                                                        \
        const st *x = (const st *)(const void *)in + ioff + j0;                              \
        int64_t ostep = g->kout[g->kndim - 1];                                               \
        cpu_rows rows = {g, {0}, 0};                                                         \
        cpu_red_result res = {0};                                                            \
        if (op == FERRY_REDUCE_SUM || op == FERRY_REDUCE_MEAN) {                             \
            at *part = scratch, *stack = part + g->tile;                                     \
            int top = 0;                                                                     \
            for (int64_t row = 0, chunk = 0; row < g->R; chunk++) {                          \
                memset(part, 0, (size_t)n * sizeof *part);                                   \
                int64_t end = row + CPU_STRIDED_BLOCK < g->R ? row + CPU_STRIDED_BLOCK : g->R; \
                for (; row + 4 <= end; row += 4) {                                           \
                    const st *r0 = x + rows.off;                                             \
                    cpu_rows_next(&rows);                                                    \
                    const st *r1 = x + rows.off;                                             \
                    cpu_rows_next(&rows);                                                    \
                    const st *r2 = x + rows.off;                                             \
                    cpu_rows_next(&rows);                                                    \
                    const st *r3 = x + rows.off;                                             \
                    cpu_rows_next(&rows);                                                    \
                    cpu_col_add4_##sfx(part, r0, r1, r2, r3, n);                             \
                }                                                                            \
                for (; row < end; row++) {                                                   \
                    cpu_col_add_##sfx(part, x + rows.off, n);                                \
                    cpu_rows_next(&rows);                                                    \
                }                                                                            \
                for (int64_t cnt = chunk; cnt & 1; cnt >>= 1) {                              \
                    top--;                                                                   \
                    for (int64_t j = 0; j < n; j++)                                          \
                        part[j] = stack[top * g->tile + j] + part[j];                        \
                }                                                                            \
                memcpy(stack + top * g->tile, part, (size_t)n * sizeof *part);               \
                top++;                                                                       \
            }                                                                                \
            for (int64_t j = 0; j < n; j++) {                                                \
                at total = 0;                                                                \
                for (int lvl = top - 1; lvl >= 0; lvl--)                                     \
                    total = stack[lvl * g->tile + j] + total;                                \
                cpu_red_set_sum_##kind(&res, total);                                         \
                cpu_red_store_##sfx(op, &res, g->R, out + (ooff + (j0 + j) * ostep) * (int64_t)out_es); \
            }                                                                                \
            return;                                                                          \
        }                                                                                    \
        ct *m = scratch;                                                                     \
        int64_t *at_row = (int64_t *)scratch + g->tile;                                      \
        for (int64_t j = 0; j < n; j++) {                                                    \
            m[j] = CPU_LD_##sfx(x[j]);                                                       \
            at_row[j] = 0;                                                                   \
        }                                                                                    \
        int64_t row = 0;                                                                     \
        for (; row < g->R; row++) {                                                          \
            if (op == FERRY_REDUCE_ARGMAX)                                                   \
                cpu_col_argmax_##sfx(m, at_row, x + rows.off, n, row);                       \
            else                                                                             \
                cpu_col_maxmin_##sfx(m, x + rows.off, n, op == FERRY_REDUCE_MAX);            \
            cpu_rows_next(&rows);                                                            \
        }                                                                                    \
        for (int64_t j = 0; j < n; j++) {                                                    \
            cpu_red_set_val_##sfx(&res, m[j]);                                               \
            res.index = at_row[j];                                                           \
            cpu_red_store_##sfx(op, &res, g->R, out + (ooff + (j0 + j) * ostep) * (int64_t)out_es); \
        }                                                                                    \
    }
CPU_RED_DTYPES(CPU_DEF_COLS)

/* ---- per-dtype dispatch ------------------------------------------------------------------ */

typedef struct cpu_red_kernels {
    void (*one)(ferry_reduce_op op, const cpu_red_geom *g, const char *p, int aligned,
                cpu_red_result *res);
    void (*cols)(ferry_reduce_op op, const cpu_red_geom *g, const char *in, char *out,
                 size_t out_es, int64_t ioff, int64_t ooff, int64_t j0, int64_t n,
                 void *scratch);
    ferry_status (*all)(ferry_reduce_op op, const char *p, int64_t n, cpu_red_result *res);
    void (*store)(ferry_reduce_op op, const cpu_red_result *res, int64_t count, char *q);
} cpu_red_kernels;

static const cpu_red_kernels cpu_red_table[FERRY_NUM_DTYPES] = {
#define CPU_ENTRY_(sfx, en, st, ct, at, kind) \
    [en] = {cpu_reduce_one_##sfx, cpu_cols_##sfx, cpu_reduce_all_##sfx, cpu_red_store_##sfx},
    CPU_RED_DTYPES(CPU_ENTRY_)
#undef CPU_ENTRY_
};

/* ---- geometry ------------------------------------------------------------------------------ */

/* Sorts the reduced dims by decreasing |stride| and makes every stride positive (moving
 * the start to the lowest address), so that a permuted or flipped contiguous tensor is
 * read as one forward run. Only for ops whose result does not depend on the visiting
 * order beyond rounding (not argmax, whose index is row-major). */
static void cpu_red_canonical_order(cpu_red_geom *g)
{
    for (int i = 0; i < g->rndim; i++)
        if (g->rin[i] < 0) {
            g->in_shift += g->rin[i] * (g->rshape[i] - 1);
            g->rin[i] = -g->rin[i];
        }
    for (int i = 1; i < g->rndim; i++) {
        int64_t sh = g->rshape[i], st = g->rin[i];
        int j = i - 1;
        for (; j >= 0 && g->rin[j] < st; j--) {
            g->rshape[j + 1] = g->rshape[j];
            g->rin[j + 1] = g->rin[j];
        }
        g->rshape[j + 1] = sh;
        g->rin[j + 1] = st;
    }
}

/* Merges each dim into the next inner one when they form one run in every operand. */
static int cpu_red_merge(int ndim, int64_t *shape, int64_t *s1, int64_t *s2)
{
    if (ndim == 0)
        return 0;
    int k = 0;
    for (int d = 1; d < ndim; d++) {
        _Bool m = s1[k] == s1[d] * shape[d] && (!s2 || s2[k] == s2[d] * shape[d]);
        if (m) {
            shape[k] *= shape[d];
            s1[k] = s1[d];
            if (s2)
                s2[k] = s2[d];
        } else {
            k++;
            shape[k] = shape[d];
            s1[k] = s1[d];
            if (s2)
                s2[k] = s2[d];
        }
    }
    return k + 1;
}

/* The output slice [klo, khi) of a general reduction. */
static void cpu_red_outputs(const cpu_red_kernels *k, ferry_reduce_op op, const cpu_red_geom *g,
                            const char *in, size_t in_es, char *out, size_t out_es, int aligned,
                            int64_t klo, int64_t khi)
{
    if (klo >= khi)
        return;
    int64_t idx[FERRY_MAX_DIMS];
    int64_t ioff = 0, ooff = 0, rem = klo;
    for (int d = g->kndim - 1; d >= 0; d--) {
        idx[d] = rem % g->kshape[d];
        rem /= g->kshape[d];
        ioff += idx[d] * g->kin[d];
        ooff += idx[d] * g->kout[d];
    }
    for (int64_t i = klo; i < khi; i++) {
        cpu_red_result res;
        k->one(op, g, in + (ioff + g->in_shift) * (int64_t)in_es, aligned, &res);
        k->store(op, &res, g->R, out + ooff * (int64_t)out_es);
        for (int d = g->kndim - 1; d >= 0; d--) {
            if (++idx[d] < g->kshape[d]) {
                ioff += g->kin[d];
                ooff += g->kout[d];
                break;
            }
            ioff -= g->kin[d] * (g->kshape[d] - 1);
            ooff -= g->kout[d] * (g->kshape[d] - 1);
            idx[d] = 0;
        }
    }
}

/* Column-path units [u0, u1): unit u is tile u % tiles of outer kept position u / tiles. */
static void cpu_red_col_units(const cpu_red_kernels *k, ferry_reduce_op op, const cpu_red_geom *g,
                              const char *in, char *out, size_t out_es, int64_t u0, int64_t u1,
                              void *scratch)
{
    int last = g->kndim - 1;
    int64_t inner = g->kshape[last];
    int64_t tiles = (inner + g->tile - 1) / g->tile;
    for (int64_t u = u0; u < u1; u++) {
        int64_t outer = u / tiles, tile = u % tiles;
        int64_t ioff = g->in_shift, ooff = 0, rem = outer;
        for (int d = last - 1; d >= 0; d--) {
            int64_t i = rem % g->kshape[d];
            rem /= g->kshape[d];
            ioff += i * g->kin[d];
            ooff += i * g->kout[d];
        }
        int64_t j0 = tile * g->tile;
        int64_t n = inner - j0 < g->tile ? inner - j0 : g->tile;
        k->cols(op, g, in, out, out_es, ioff, ooff, j0, n, scratch);
    }
}

ferry_status cpu_reduce(void *ctx, int32_t device, ferry_reduce_op op,
                        const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *in)
{
    ferry_dtype dt = in->dtype;
    _Bool floating = dt >= FERRY_FLOAT16 && dt <= FERRY_FLOAT64;
    ferry_dtype want = op == FERRY_REDUCE_ARGMAX                 ? FERRY_INT64
                       : op == FERRY_REDUCE_SUM && !floating      ? FERRY_INT64
                                                                  : dt;
    if ((unsigned)op > FERRY_REDUCE_ARGMAX || !cpu_elem_size(dt) || out->dtype != want ||
        (op == FERRY_REDUCE_MEAN && !floating))
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "cpu: no reduce op %d kernel for %d -> %d",
                               (int)op, (int)dt, (int)out->dtype);
    if (out->ndim != in->ndim || in->ndim < 0 || in->ndim > FERRY_MAX_DIMS)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "cpu: reduce: operands have %d and %d dimensions", (int)in->ndim,
                               (int)out->ndim);
    cpu_red_geom g;
    g.kndim = g.rndim = 0;
    g.K = g.R = 1;
    g.in_shift = 0;
    for (int d = 0; d < in->ndim; d++) {
        int64_t n = in->shape[d];
        if (out->shape[d] != n && out->shape[d] != 1)
            return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                   "cpu: reduce: output extent %lld in dimension %d is neither "
                                   "1 nor the input's %lld",
                                   (long long)out->shape[d], d, (long long)n);
        if (out->shape[d] == n) {
            g.K *= n;
            if (n != 1) {
                g.kshape[g.kndim] = n;
                g.kin[g.kndim] = in->strides[d];
                g.kout[g.kndim] = out->strides[d];
                g.kndim++;
            }
        } else {
            g.R *= n;
            g.rshape[g.rndim] = n;
            g.rin[g.rndim] = in->strides[d];
            g.rndim++;
        }
    }
    if (g.K == 0)
        return FERRY_OK;
    const cpu_red_kernels *k = &cpu_red_table[dt];
    size_t in_es = cpu_elem_size(dt), out_es = cpu_elem_size(out->dtype);
    if (g.R == 0) {
        if (op != FERRY_REDUCE_SUM && op != FERRY_REDUCE_MEAN)
            return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                   "cpu: reduce: op %d of no elements has no identity",
                                   (int)op);
        /* Every output is the empty sum (0) or the empty mean (NaN). */
        g.rndim = 0;
    }
    if (op != FERRY_REDUCE_ARGMAX)
        cpu_red_canonical_order(&g);
    g.rndim = cpu_red_merge(g.rndim, g.rshape, g.rin, NULL);
    g.kndim = cpu_red_merge(g.kndim, g.kshape, g.kin, g.kout);
    if (g.rndim == 0) { /* nothing reduced: every output is its one input element */
        g.rndim = 1;
        g.rshape[0] = g.R == 0 ? 0 : 1;
        g.rin[0] = 1;
    }

    const char *src = cpu_data(in);
    char *dst = cpu_data(out);
    int aligned = cpu_is_aligned(in);
    if (g.K == 1 && g.rndim == 1 && g.rin[0] == 1 && aligned && g.R > 0) {
        cpu_red_result res;
        ferry_status st = k->all(op, src + g.in_shift * (int64_t)in_es, g.R, &res);
        if (st != FERRY_OK)
            return st;
        k->store(op, &res, g.R, dst);
        return FERRY_OK;
    }
    if (g.R == 0) {
        cpu_red_result res = {0};
        int64_t idx[FERRY_MAX_DIMS] = {0};
        for (int64_t i = 0; i < g.K; i++) {
            int64_t ooff = 0, rem = i;
            for (int d = g.kndim - 1; d >= 0; d--) {
                idx[d] = rem % g.kshape[d];
                rem /= g.kshape[d];
                ooff += idx[d] * g.kout[d];
            }
            k->store(op, &res, 0, dst + ooff * (int64_t)out_es);
        }
        return FERRY_OK;
    }
    /* Outer dims reduced under a contiguous kept one: the column path. */
    if (g.kndim > 0 && g.kin[g.kndim - 1] == 1 && g.kshape[g.kndim - 1] >= 4 &&
        g.rin[g.rndim - 1] != 1 && aligned) {
        int64_t inner = g.kshape[g.kndim - 1], outer = g.K / inner;
        int64_t nt = cpu_threads_for(g.K * g.R, CPU_RED_GRAIN);
        /* Narrower tiles when there are too few outer positions to go round. */
        int64_t split = outer >= nt ? 1 : (nt + outer - 1) / outer;
        int64_t tile = ((inner + split - 1) / split + 15) / 16 * 16;
        g.tile = tile < CPU_COL_TILE ? tile : CPU_COL_TILE;
        int64_t units = outer * ((inner + g.tile - 1) / g.tile);
        if (nt > units)
            nt = units;
        /* One partial-sum tile, and one per level of the cascade over row chunks. */
        int64_t chunks = (g.R + CPU_STRIDED_BLOCK - 1) / CPU_STRIDED_BLOCK;
        int levels = 2;
        while (((int64_t)1 << (levels - 2)) < chunks)
            levels++;
        size_t per = (size_t)g.tile * 8 * (size_t)levels;
        char *scratch = malloc(per * (size_t)nt);
        if (!scratch)
            return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY,
                                   "cpu: reduce: cannot allocate %zu bytes of accumulators",
                                   per * (size_t)nt);
#ifdef _OPENMP
        if (nt > 1) {
#pragma omp parallel num_threads((int)nt)
            {
                int t = omp_get_thread_num(), parts = omp_get_num_threads();
                cpu_red_col_units(k, op, &g, src, dst, out_es, cpu_split(units, parts, t, 1),
                                  cpu_split(units, parts, t + 1, 1), scratch + per * (size_t)t);
            }
        } else
#endif
        {
            cpu_red_col_units(k, op, &g, src, dst, out_es, 0, units, scratch);
        }
        free(scratch);
        return FERRY_OK;
    }

    int64_t nt = cpu_threads_for(g.K * g.R, CPU_RED_GRAIN);
    if (nt > g.K)
        nt = g.K;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads((int)nt)
        {
            int t = omp_get_thread_num(), parts = omp_get_num_threads();
            cpu_red_outputs(k, op, &g, src, in_es, dst, out_es, aligned,
                            cpu_split(g.K, parts, t, 16), cpu_split(g.K, parts, t + 1, 16));
        }
        return FERRY_OK;
    }
#endif
    cpu_red_outputs(k, op, &g, src, in_es, dst, out_es, aligned, 0, g.K);
    return FERRY_OK;
}

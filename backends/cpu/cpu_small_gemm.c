/* Small float32/float64 products (batched 16 x 16 x 16, single products up to 128^3)
 * without a library call: BLIS and OpenBLAS spend about as long deciding how to run such
 * a product (their contexts, thread setup, packing, barriers) as on its multiply-adds.
 * A plain loop nest for any x86-64, and register-blocked AVX2 + FMA and AVX-512 bodies,
 * picked once with cpuid; never -march=native, so the plugin runs on any x86-64. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "cpu_vec.h"

/* Row i of C (unit column stride) as sum_p A[i, p] B[p, :] (B with unit column stride),
 * accumulated in a local row, so that each element is rounded as a straight sum over p,
 * as the libraries' kernels sum. n <= CPU_SMALL_MAX_N. */
#define CPU_SMALL_BODY(T)                                                                   \
    for (int64_t i = 0; i < m; i++) {                                                       \
        T acc[CPU_SMALL_MAX_N];                                                             \
        for (int64_t j = 0; j < n; j++)                                                     \
            acc[j] = 0;                                                                     \
        for (int64_t p = 0; p < k; p++) {                                                   \
            T aip = a[i * rsa + p * csa];                                                   \
            const T *brow = b + p * rsb;                                                    \
            for (int64_t j = 0; j < n; j++)                                                 \
                acc[j] += aip * brow[j];                                                    \
        }                                                                                   \
        T *crow = c + i * rsc;                                                              \
        for (int64_t j = 0; j < n; j++)                                                     \
            crow[j] = acc[j];                                                               \
    }

#define CPU_SMALL_DEFS(sfx, T, attr)                                                        \
    attr static void cpu_small_##sfx(int64_t m, int64_t n, int64_t k, const T *restrict a,  \
                                     int64_t rsa, int64_t csa, const T *restrict b,         \
                                     int64_t rsb, T *restrict c, int64_t rsc)               \
    {                                                                                       \
        CPU_SMALL_BODY(T)                                                                   \
    }

typedef void (*cpu_small_s_fn)(int64_t, int64_t, int64_t, const float *, int64_t, int64_t,
                               const float *, int64_t, float *, int64_t);
typedef void (*cpu_small_d_fn)(int64_t, int64_t, int64_t, const double *, int64_t, int64_t,
                               const double *, int64_t, double *, int64_t);

CPU_SMALL_DEFS(s_base, float, )
CPU_SMALL_DEFS(d_base, double, )
#ifdef CPU_VEC_X86
/* The vector bodies: each block of rows of C times one or two vectors of columns keeps
 * its sums in registers over all of k, the columns past n masked off. Two vectors by six
 * rows (12 sums) cover the FMA latency of 4 cycles on 2 units and load 8 values per 12
 * FMAs; the last vector of columns goes by eight rows. Each sum runs over p in order,
 * as CPU_SMALL_BODY's. The vector operations per ISA and type are cpu_vec.h's. */

/* R rows by NV vectors (R and NV constants once inlined): with NV == 2 the first vector
 * is whole and mk masks the second, with NV == 1 mk masks the only one; whole: mk keeps
 * every lane. */
#define CPU_SMALL_BLOCK_DEF(X, T)                                                           \
    CPU_VEC_ATTR_##X __attribute__((always_inline)) static inline void                      \
        cpu_small_blk_##X(int R, int NV, CPU_VEC_M_##X mk, bool whole, int64_t k,           \
                          const T *restrict a, int64_t rsa, int64_t csa,                    \
                          const T *restrict b, int64_t rsb, T *restrict c, int64_t rsc)     \
    {                                                                                       \
        CPU_VEC_M_##X full = CPU_VEC_MASK_##X(CPU_VEC_W_##X);                               \
        CPU_VEC_M_##X m0 = NV == 2 ? full : mk;                                             \
        CPU_VEC_V_##X acc[8][2];                                                            \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                 \
        {                                                                                   \
            acc[r][0] = CPU_VEC_ZERO_##X();                                                 \
            acc[r][1] = acc[r][0];                                                          \
        }                                                                                   \
        for (int64_t p = 0; p < k; p++) {                                                   \
            const T *bp = b + p * rsb, *ap = a + p * csa;                                   \
            CPU_VEC_V_##X b0 = CPU_VEC_LOAD_##X(m0, bp);                                    \
            CPU_VEC_V_##X b1 = NV == 2 ? CPU_VEC_LOAD_##X(mk, bp + CPU_VEC_W_##X)           \
                                         : b0;                                              \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                             \
            {                                                                               \
                CPU_VEC_V_##X x = CPU_VEC_SET1_##X(ap[r * rsa]);                            \
                acc[r][0] = CPU_VEC_FMA_##X(x, b0, acc[r][0]);                              \
                if (NV == 2)                                                                \
                    acc[r][1] = CPU_VEC_FMA_##X(x, b1, acc[r][1]);                          \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                 \
        {                                                                                   \
            T *cr = c + r * rsc, *cm = NV == 2 ? cr + CPU_VEC_W_##X : cr;                   \
            if (NV == 2)                                                                    \
                CPU_VEC_STOREF_##X(cr, acc[r][0]);                                          \
            if (whole)                                                                      \
                CPU_VEC_STOREF_##X(cm, acc[r][NV - 1]);                                     \
            else                                                                            \
                CPU_VEC_STORE_##X(cm, mk, acc[r][NV - 1]);                                  \
        }                                                                                   \
    }                                                                                       \
    /* Every row of C's first NV vectors of columns (the last masked by mk): blocks of R    \
     * rows, then of two, then single rows. */                                              \
    CPU_VEC_ATTR_##X __attribute__((always_inline)) static inline void                      \
        cpu_small_cols_##X(int R, int NV, CPU_VEC_M_##X mk, bool whole, int64_t m,          \
                           int64_t k, const T *restrict a, int64_t rsa, int64_t csa,        \
                           const T *restrict b, int64_t rsb, T *restrict c, int64_t rsc)    \
    {                                                                                       \
        int64_t i0 = 0;                                                                     \
        for (; i0 + R <= m; i0 += R)                                                        \
            cpu_small_blk_##X(R, NV, mk, whole, k, a + i0 * rsa, rsa, csa, b, rsb,          \
                              c + i0 * rsc, rsc);                                           \
        for (; i0 + 2 <= m; i0 += 2)                                                        \
            cpu_small_blk_##X(2, NV, mk, whole, k, a + i0 * rsa, rsa, csa, b, rsb,          \
                              c + i0 * rsc, rsc);                                           \
        for (; i0 < m; i0++)                                                                \
            cpu_small_blk_##X(1, NV, mk, whole, k, a + i0 * rsa, rsa, csa, b, rsb,          \
                              c + i0 * rsc, rsc);                                           \
    }                                                                                       \
    CPU_VEC_ATTR_##X static void cpu_small_##X(int64_t m, int64_t n, int64_t k,             \
                                               const T *restrict a, int64_t rsa,            \
                                               int64_t csa, const T *restrict b,            \
                                               int64_t rsb, T *restrict c, int64_t rsc)     \
    {                                                                                       \
        const int W = CPU_VEC_W_##X;                                                        \
        for (int64_t j0 = 0; j0 < n;) {                                                     \
            int64_t left = n - j0;                                                          \
            if (left > W) {                                                                 \
                cpu_small_cols_##X(6, 2, CPU_VEC_MASK_##X(left - W), left >= 2 * W, m, k,   \
                                   a, rsa, csa, b + j0, rsb, c + j0, rsc);                  \
                j0 += 2 * W;                                                                \
            } else {                                                                        \
                cpu_small_cols_##X(8, 1, CPU_VEC_MASK_##X(left), left == W, m, k, a, rsa,   \
                                   csa, b + j0, rsb, c + j0, rsc);                          \
                j0 += W;                                                                    \
            }                                                                               \
        }                                                                                   \
    }

CPU_SMALL_BLOCK_DEF(s512, float)
CPU_SMALL_BLOCK_DEF(d512, double)
CPU_SMALL_BLOCK_DEF(s256, float)
CPU_SMALL_BLOCK_DEF(d256, double)
#endif

static cpu_small_s_fn small_s;
static cpu_small_d_fn small_d;
static pthread_once_t small_once = PTHREAD_ONCE_INIT;
static bool small_off;
static int small_rows; /* the bodies' row block: a thread's share is a multiple of it */
/* The largest product the chosen bodies take, and the largest they run on one thread
 * (larger ones split their rows over the threads). Measured on a 2-core Zen 5 VM whose
 * cross-core costs change from one run to the next, against BLIS on both cores, float32
 * GFLOP/s (float64 alike):
 * - AVX-512 at 64^3: one thread 244, two 300, BLIS 180 when the cores talk fast; 236,
 *   179 and 104 when they talk slowly. At 128^3 two threads 455 against BLIS 281 (407
 *   against 147 slow).
 * - AVX2 at 48^3: one thread 110, two 137, BLIS 114 (104, 93, 62 slow); at 64^3 BLIS
 *   wins when the cores talk fast (180 against 158).
 * - The plain loops are only worth it up to 32^3. */
static int64_t small_max_mnk = (int64_t)32 * 32 * 32;
static int64_t small_max_serial = (int64_t)32 * 32 * 32;

/* FERRY_CPU_SMALL_GEMM=off|base|avx2 caps the choice (for tests of each body on one
 * machine, and to compare with the libraries); unset or auto: the best the CPU runs. */
static void cpu_small_pick(void)
{
    small_s = cpu_small_s_base;
    small_d = cpu_small_d_base;
    small_rows = 1;
    const char *env = getenv("FERRY_CPU_SMALL_GEMM");
    bool cap_base = env && !strcmp(env, "base"), cap_avx2 = env && !strcmp(env, "avx2");
    small_off = env && !strcmp(env, "off");
    if (env && *env && !cap_base && !cap_avx2 && !small_off && strcmp(env, "auto") != 0)
        cpu_host->log(FERRY_LOG_WARN, "cpu",
                      "FERRY_CPU_SMALL_GEMM=%s is not off, base, avx2 or auto: using auto", env);
#ifdef CPU_VEC_X86
    __builtin_cpu_init();
    if (cap_base)
        return;
    if (!cap_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) {
        small_s = cpu_small_s512;
        small_d = cpu_small_d512;
        small_max_mnk = (int64_t)128 * 128 * 128;
        small_max_serial = (int64_t)64 * 64 * 64;
        small_rows = 24; /* the 6- and 8-row blocks */
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        small_s = cpu_small_s256;
        small_d = cpu_small_d256;
        small_max_mnk = (int64_t)56 * 56 * 56;
        small_max_serial = (int64_t)40 * 40 * 40;
        small_rows = 24;
    }
#endif
}

static void cpu_small_run(bool dbl, int64_t m, int64_t n, int64_t k, const void *a,
                          int64_t rsa, int64_t csa, const void *b, int64_t rsb, void *c,
                          int64_t rsc)
{
    if (dbl)
        small_d(m, n, k, a, rsa, csa, b, rsb, c, rsc);
    else
        small_s(m, n, k, a, rsa, csa, b, rsb, c, rsc);
}

bool cpu_small_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa,
                    int64_t csa, const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc,
                    int64_t csc, int threads)
{
    /* Each bound is checked before the product, so m * n * k cannot overflow. */
    if (n > CPU_SMALL_MAX_N || m > CPU_SMALL_MAX_N || k > CPU_SMALL_MAX_N ||
        (n > 1 && (csb != 1 || csc != 1)))
        return false;
    pthread_once(&small_once, cpu_small_pick);
    int64_t mnk = m * n * k;
    if (small_off || mnk > small_max_mnk)
        return false;
    /* Whole row blocks per thread, so that no thread runs the bodies' one-row tails
     * but the last. */
    int64_t blocks = (m + small_rows - 1) / small_rows;
    int nt = threads > 1 && mnk > small_max_serial ? threads : 1;
    nt = blocks < nt ? (int)blocks : nt;
    if (nt <= 1) {
        cpu_small_run(dbl, m, n, k, a, rsa, csa, b, rsb, c, rsc);
        return true;
    }
    size_t es = dbl ? sizeof(double) : sizeof(float);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
    for (int t = 0; t < nt; t++) {
        int64_t r0 = blocks * t / nt * small_rows, r1 = blocks * (t + 1) / nt * small_rows;
        r1 = r1 < m ? r1 : m;
        cpu_small_run(dbl, r1 - r0, n, k, (const char *)a + r0 * rsa * (int64_t)es, rsa, csa, b,
                      rsb, (char *)c + r0 * rsc * (int64_t)es, rsc);
    }
    return true;
}

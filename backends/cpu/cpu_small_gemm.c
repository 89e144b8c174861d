/* Small float32/float64 products (batched 16 x 16 x 16 and the like) without a library
 * call: BLIS and OpenBLAS spend about as long deciding how to run such a product (their
 * contexts, thread setup, packing) as on its 4096 multiply-adds. One plain loop nest,
 * compiled three times (baseline x86-64, AVX2 + FMA, AVX-512) and picked once with cpuid;
 * never -march=native, so the plugin runs on any x86-64. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

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
#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_SMALL_X86 1
/* FMA contraction is gcc's default outside ISO mode; asked for explicitly so the AVX2
 * and AVX-512 bodies use it whatever -ffp-contract the build passes. */
#define CPU_SMALL_AVX2 __attribute__((target("avx2,fma"), optimize("fp-contract=fast")))
#define CPU_SMALL_AVX512                                                                    \
    __attribute__((target("avx512f,avx512vl,avx2,fma"), optimize("fp-contract=fast")))
CPU_SMALL_DEFS(d_avx2, double, CPU_SMALL_AVX2)
CPU_SMALL_DEFS(d_avx512, double, CPU_SMALL_AVX512)
#endif

#ifdef CPU_SMALL_X86
#include <immintrin.h>

/* float32 with registers: CPU_SMALL_MR rows of C by one vector of columns, the columns
 * past n masked off, so one pass over k per block and no loop over single elements. */
#define CPU_SMALL_MR 4

CPU_SMALL_AVX512 static void cpu_small_s_avx512v(int64_t m, int64_t n, int64_t k,
                                                 const float *restrict a, int64_t rsa,
                                                 int64_t csa, const float *restrict b,
                                                 int64_t rsb, float *restrict c, int64_t rsc)
{
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        __mmask16 mk = n - j0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j0)) - 1);
        int64_t i0 = 0;
        for (; i0 + CPU_SMALL_MR <= m; i0 += CPU_SMALL_MR) {
            __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
            const float *ar = a + i0 * rsa;
            for (int64_t p = 0; p < k; p++) {
                __m512 bv = _mm512_maskz_loadu_ps(mk, b + p * rsb + j0);
                const float *ap = ar + p * csa;
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(ap[0]), bv, c0);
                c1 = _mm512_fmadd_ps(_mm512_set1_ps(ap[rsa]), bv, c1);
                c2 = _mm512_fmadd_ps(_mm512_set1_ps(ap[2 * rsa]), bv, c2);
                c3 = _mm512_fmadd_ps(_mm512_set1_ps(ap[3 * rsa]), bv, c3);
            }
            float *cr = c + i0 * rsc + j0;
            _mm512_mask_storeu_ps(cr, mk, c0);
            _mm512_mask_storeu_ps(cr + rsc, mk, c1);
            _mm512_mask_storeu_ps(cr + 2 * rsc, mk, c2);
            _mm512_mask_storeu_ps(cr + 3 * rsc, mk, c3);
        }
        for (; i0 < m; i0++) {
            __m512 c0 = _mm512_setzero_ps();
            for (int64_t p = 0; p < k; p++)
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[i0 * rsa + p * csa]),
                                     _mm512_maskz_loadu_ps(mk, b + p * rsb + j0), c0);
            _mm512_mask_storeu_ps(c + i0 * rsc + j0, mk, c0);
        }
    }
}

CPU_SMALL_AVX2 static void cpu_small_s_avx2v(int64_t m, int64_t n, int64_t k,
                                             const float *restrict a, int64_t rsa, int64_t csa,
                                             const float *restrict b, int64_t rsb,
                                             float *restrict c, int64_t rsc)
{
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        int64_t left = n - j0;
        __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)),
                                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        int64_t i0 = 0;
        for (; i0 + CPU_SMALL_MR <= m; i0 += CPU_SMALL_MR) {
            __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
            const float *ar = a + i0 * rsa;
            for (int64_t p = 0; p < k; p++) {
                __m256 bv = _mm256_maskload_ps(b + p * rsb + j0, mk);
                const float *ap = ar + p * csa;
                c0 = _mm256_fmadd_ps(_mm256_set1_ps(ap[0]), bv, c0);
                c1 = _mm256_fmadd_ps(_mm256_set1_ps(ap[rsa]), bv, c1);
                c2 = _mm256_fmadd_ps(_mm256_set1_ps(ap[2 * rsa]), bv, c2);
                c3 = _mm256_fmadd_ps(_mm256_set1_ps(ap[3 * rsa]), bv, c3);
            }
            float *cr = c + i0 * rsc + j0;
            _mm256_maskstore_ps(cr, mk, c0);
            _mm256_maskstore_ps(cr + rsc, mk, c1);
            _mm256_maskstore_ps(cr + 2 * rsc, mk, c2);
            _mm256_maskstore_ps(cr + 3 * rsc, mk, c3);
        }
        for (; i0 < m; i0++) {
            __m256 c0 = _mm256_setzero_ps();
            for (int64_t p = 0; p < k; p++)
                c0 = _mm256_fmadd_ps(_mm256_set1_ps(a[i0 * rsa + p * csa]),
                                     _mm256_maskload_ps(b + p * rsb + j0, mk), c0);
            _mm256_maskstore_ps(c + i0 * rsc + j0, mk, c0);
        }
    }
}
#endif

static cpu_small_s_fn small_s;
static cpu_small_d_fn small_d;
static pthread_once_t small_once = PTHREAD_ONCE_INIT;

static bool small_off;

/* FERRY_CPU_SMALL_GEMM=off|base|avx2 caps the choice (for tests of each body on one
 * machine, and to compare with the libraries); unset or auto: the best the CPU runs. */
static void cpu_small_pick(void)
{
    small_s = cpu_small_s_base;
    small_d = cpu_small_d_base;
    const char *env = getenv("FERRY_CPU_SMALL_GEMM");
    bool cap_base = env && !strcmp(env, "base"), cap_avx2 = env && !strcmp(env, "avx2");
    small_off = env && !strcmp(env, "off");
    if (env && *env && !cap_base && !cap_avx2 && !small_off && strcmp(env, "auto") != 0)
        cpu_host->log(FERRY_LOG_WARN, "cpu",
                      "FERRY_CPU_SMALL_GEMM=%s is not off, base, avx2 or auto: using auto", env);
#ifdef CPU_SMALL_X86
    __builtin_cpu_init();
    if (cap_base)
        return;
    if (!cap_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) {
        small_s = cpu_small_s_avx512v;
        small_d = cpu_small_d_avx512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        small_s = cpu_small_s_avx2v;
        small_d = cpu_small_d_avx2;
    }
#endif
}

bool cpu_small_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa,
                    int64_t csa, const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc,
                    int64_t csc)
{
    /* Each bound is checked before the product, so m * n * k cannot overflow. */
    if (n > CPU_SMALL_MAX_N || m > CPU_SMALL_MAX_N || k > CPU_SMALL_MAX_N ||
        m * n * k > CPU_SMALL_MAX_MNK || (n > 1 && (csb != 1 || csc != 1)))
        return false;
    pthread_once(&small_once, cpu_small_pick);
    if (small_off)
        return false;
    if (dbl)
        small_d(m, n, k, a, rsa, csa, b, rsb, c, rsc);
    else
        small_s(m, n, k, a, rsa, csa, b, rsb, c, rsc);
    return true;
}

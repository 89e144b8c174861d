/* Elementwise CPU kernels: unary and binary ops for every dtype, generated from one dtype
 * table. Contiguous (and scalar-broadcast) loops that gcc vectorizes, OpenMP above a size
 * threshold, and a strided N-d walk for every other geometry. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ferry/half.h>

#include "cpu_internal.h"

/* `bool` is a dtype suffix in the kernel names (cpu_add_bool); see cpu_cast.c. */
#undef bool

/*
 * Vectorization (gcc 12 -O3; checked with -fopt-info-vec-optimized, 1125 loops reported
 * vectorized in this file, and objdump of the clones): every contiguous and scalar-
 * broadcast loop uses ymm registers in its x86-64-v3 clone and SSE2 in the default one,
 * except the integer pow loops (a data-dependent trip count) and the libm calls of exp,
 * log, sin, cos, tanh, sigmoid and pow (glibc's vector math is only declared under
 * -ffast-math, which would break NaN handling). In the default clone gcc also leaves
 * int64 multiply, min/max and compares and float64 compares scalar (SSE2 has no 64-bit
 * compares). sqrt vectorizes because the target is built with -fno-math-errno.
 * float16/bfloat16 contiguous loops convert tiles (vcvtph2ps/vcvtps2ph for float16) and
 * run the float32 loops: float16 add of 32K elements 4.0 us against 27 us converting
 * element by element (float32: 1.3 us).
 */

/* ---- the dtype table ------------------------------------------------------------------
 * X(suffix, enum, storage type, compute type, kind). Kinds pick the op bodies: B bool,
 * U unsigned, S signed integer, F float32/float64, H float16/bfloat16 (computed in
 * float32 by the F bodies; their contiguous loops convert tiles and reuse the float32
 * kernels, defined first for that reason). */
#define CPU_EW_DTYPES(X)                                   \
    X(bool, FERRY_BOOL, uint8_t, uint8_t, B)               \
    X(u8, FERRY_UINT8, uint8_t, uint8_t, U)                \
    X(i8, FERRY_INT8, int8_t, int8_t, S)                   \
    X(i16, FERRY_INT16, int16_t, int16_t, S)               \
    X(i32, FERRY_INT32, int32_t, int32_t, S)               \
    X(i64, FERRY_INT64, int64_t, int64_t, S)               \
    X(f32, FERRY_FLOAT32, float, float, F)                 \
    X(f64, FERRY_FLOAT64, double, double, F)               \
    X(f16, FERRY_FLOAT16, uint16_t, float, H)              \
    X(bf16, FERRY_BFLOAT16, uint16_t, float, H)

/* Integer arithmetic runs in an unsigned type at least as wide as int, so it wraps
 * modulo 2^bits instead of overflowing (UB for signed types, and for uint16 * uint16,
 * which C promotes to int). The conversion back to a signed type is modulo 2^bits in
 * gcc and clang. */
typedef uint32_t cpu_wt_bool, cpu_wt_u8, cpu_wt_i8, cpu_wt_i16, cpu_wt_i32;
typedef uint64_t cpu_wt_i64;
typedef float cpu_wt_f16, cpu_wt_bf16, cpu_wt_f32;
typedef double cpu_wt_f64;


/* A libm function of float or double, whichever x is. */
#define CPU_MATH(fn, x) _Generic((x), float: fn##f, default: fn)(x)
#define CPU_MATH2(fn, x, y) _Generic((x), float: fn##f, default: fn)(x, y)

/* ---- op bodies: CPU_U_<OP>_<kind>(x, T, W) and CPU_B_<OP>_<kind>(x, y, T, W, sfx) -----
 * x, y are compute values, T the compute type, W the wrap type. */
#define CPU_U_NEG_U(x, T, W) ((T)(0u - (W)(x)))
#define CPU_U_NEG_S(x, T, W) ((T)(0u - (W)(x)))
#define CPU_U_NEG_F(x, T, W) (-(x))
#define CPU_U_ABS_B(x, T, W) (x)
#define CPU_U_ABS_U(x, T, W) (x)
#define CPU_U_ABS_S(x, T, W) ((x) < 0 ? (T)(0u - (W)(x)) : (x)) /* abs(INT_MIN) wraps */
#define CPU_U_ABS_F(x, T, W) CPU_MATH(fabs, x)
#define CPU_U_EXP_F(x, T, W) CPU_MATH(exp, x)
#define CPU_U_LOG_F(x, T, W) CPU_MATH(log, x)
#define CPU_U_SQRT_F(x, T, W) CPU_MATH(sqrt, x)
#define CPU_U_SIN_F(x, T, W) CPU_MATH(sin, x)
#define CPU_U_COS_F(x, T, W) CPU_MATH(cos, x)
#define CPU_U_TANH_F(x, T, W) CPU_MATH(tanh, x)
/* exp(-x) overflows to inf for very negative x, giving the correct limit 0. */
#define CPU_U_SIGMOID_F(x, T, W) ((T)1 / ((T)1 + CPU_MATH(exp, -(x))))
#define CPU_U_RELU_B(x, T, W) (x)
#define CPU_U_RELU_U(x, T, W) (x)
#define CPU_U_RELU_S(x, T, W) ((x) > 0 ? (x) : (T)0)
#define CPU_U_RELU_F(x, T, W) ((((x) > 0) | ((x) != (x))) ? (x) : (T)0) /* NaN stays NaN */

/* Bool arithmetic is logical: add and maximum are or, mul and minimum are and. */
#define CPU_B_ADD_B(x, y, T, W, s) ((T)((x) | (y)))
#define CPU_B_ADD_U(x, y, T, W, s) ((T)((W)(x) + (W)(y)))
#define CPU_B_ADD_S(x, y, T, W, s) ((T)((W)(x) + (W)(y)))
#define CPU_B_ADD_F(x, y, T, W, s) ((x) + (y))
#define CPU_B_SUB_U(x, y, T, W, s) ((T)((W)(x) - (W)(y)))
#define CPU_B_SUB_S(x, y, T, W, s) ((T)((W)(x) - (W)(y)))
#define CPU_B_SUB_F(x, y, T, W, s) ((x) - (y))
#define CPU_B_MUL_B(x, y, T, W, s) ((T)((x) & (y)))
#define CPU_B_MUL_U(x, y, T, W, s) ((T)((W)(x) * (W)(y)))
#define CPU_B_MUL_S(x, y, T, W, s) ((T)((W)(x) * (W)(y)))
#define CPU_B_MUL_F(x, y, T, W, s) ((x) * (y))
#define CPU_B_DIV_F(x, y, T, W, s) ((x) / (y))
/* Bool pow as integers then != 0: x^y is 0 only for 0^1. */
#define CPU_B_POW_B(x, y, T, W, s) ((T)((x) | !(y)))
#define CPU_B_POW_U(x, y, T, W, s) cpu_ipow_##s(x, y)
#define CPU_B_POW_S(x, y, T, W, s) cpu_ipow_##s(x, y)
#define CPU_B_POW_F(x, y, T, W, s) CPU_MATH2(pow, x, y)
#define CPU_B_MAXIMUM_B(x, y, T, W, s) ((T)((x) | (y)))
#define CPU_B_MAXIMUM_U(x, y, T, W, s) ((x) > (y) ? (x) : (y))
#define CPU_B_MAXIMUM_S(x, y, T, W, s) ((x) > (y) ? (x) : (y))
/* NaN in x is kept by the test x != x; NaN in y fails both tests and y is taken. */
#define CPU_B_MAXIMUM_F(x, y, T, W, s) ((((x) > (y)) | ((x) != (x))) ? (x) : (y))
#define CPU_B_MINIMUM_B(x, y, T, W, s) ((T)((x) & (y)))
#define CPU_B_MINIMUM_U(x, y, T, W, s) ((x) < (y) ? (x) : (y))
#define CPU_B_MINIMUM_S(x, y, T, W, s) ((x) < (y) ? (x) : (y))
#define CPU_B_MINIMUM_F(x, y, T, W, s) ((((x) < (y)) | ((x) != (x))) ? (x) : (y))
#define CPU_B_EQ(x, y, T, W, s) ((uint8_t)((x) == (y)))
#define CPU_B_NE(x, y, T, W, s) ((uint8_t)((x) != (y)))
#define CPU_B_LT(x, y, T, W, s) ((uint8_t)((x) < (y)))
#define CPU_B_LE(x, y, T, W, s) ((uint8_t)((x) <= (y)))
#define CPU_B_GT(x, y, T, W, s) ((uint8_t)((x) > (y)))
#define CPU_B_GE(x, y, T, W, s) ((uint8_t)((x) >= (y)))

#define CPU_U_NEG_H CPU_U_NEG_F
#define CPU_U_ABS_H CPU_U_ABS_F
#define CPU_U_EXP_H CPU_U_EXP_F
#define CPU_U_LOG_H CPU_U_LOG_F
#define CPU_U_SQRT_H CPU_U_SQRT_F
#define CPU_U_SIN_H CPU_U_SIN_F
#define CPU_U_COS_H CPU_U_COS_F
#define CPU_U_TANH_H CPU_U_TANH_F
#define CPU_U_SIGMOID_H CPU_U_SIGMOID_F
#define CPU_U_RELU_H CPU_U_RELU_F
#define CPU_B_ADD_H CPU_B_ADD_F
#define CPU_B_SUB_H CPU_B_SUB_F
#define CPU_B_MUL_H CPU_B_MUL_F
#define CPU_B_DIV_H CPU_B_DIV_F
#define CPU_B_POW_H CPU_B_POW_F
#define CPU_B_MAXIMUM_H CPU_B_MAXIMUM_F
#define CPU_B_MINIMUM_H CPU_B_MINIMUM_F

/* Integer pow by squaring, wrapping; a negative exponent gives 0 unless the base is 1
 * or -1 (backend.h). */
#define CPU_DEF_UPOW(sfx, T)                                                            \
    static inline T cpu_ipow_##sfx(T base, T e)                                         \
    {                                                                                   \
        cpu_wt_##sfx r = 1, b = base;                                                   \
        for (uint64_t k = e; k; k >>= 1) {                                              \
            if (k & 1)                                                                  \
                r *= b;                                                                 \
            b *= b;                                                                     \
        }                                                                               \
        return (T)r;                                                                    \
    }
#define CPU_DEF_SPOW(sfx, T)                                                            \
    static inline T cpu_ipow_##sfx(T base, T e)                                         \
    {                                                                                   \
        if (e < 0)                                                                      \
            return base == 1 ? (T)1 : base == -1 ? (T)((e & 1) ? -1 : 1) : (T)0;        \
        cpu_wt_##sfx r = 1, b = (cpu_wt_##sfx)base;                                     \
        for (uint64_t k = (uint64_t)e; k; k >>= 1) {                                    \
            if (k & 1)                                                                  \
                r *= b;                                                                 \
            b *= b;                                                                     \
        }                                                                               \
        return (T)r;                                                                    \
    }
CPU_DEF_UPOW(u8, uint8_t)
CPU_DEF_SPOW(i8, int8_t)
CPU_DEF_SPOW(i16, int16_t)
CPU_DEF_SPOW(i32, int32_t)
CPU_DEF_SPOW(i64, int64_t)
#undef CPU_DEF_UPOW
#undef CPU_DEF_SPOW

/* ---- which ops each kind has ------------------------------------------------------------
 * X(OP, op, <the dtype row>). Combinations not listed never reach a backend: the core
 * converts integer inputs of the transcendental ops to float32, promotes integer division
 * to float, and refuses bool neg and bool sub. */
#define CPU_UNARY_OPS_B(X, ...) X(ABS, abs, __VA_ARGS__) X(RELU, relu, __VA_ARGS__)
#define CPU_UNARY_OPS_U(X, ...) \
    X(NEG, neg, __VA_ARGS__) X(ABS, abs, __VA_ARGS__) X(RELU, relu, __VA_ARGS__)
#define CPU_UNARY_OPS_S(X, ...) CPU_UNARY_OPS_U(X, __VA_ARGS__)
#define CPU_UNARY_OPS_F(X, ...)                                                         \
    X(NEG, neg, __VA_ARGS__) X(ABS, abs, __VA_ARGS__) X(EXP, exp, __VA_ARGS__)          \
    X(LOG, log, __VA_ARGS__) X(SQRT, sqrt, __VA_ARGS__) X(SIN, sin, __VA_ARGS__)        \
    X(COS, cos, __VA_ARGS__) X(TANH, tanh, __VA_ARGS__) X(SIGMOID, sigmoid, __VA_ARGS__) \
    X(RELU, relu, __VA_ARGS__)

#define CPU_ARITH_OPS_B(X, ...)                                                         \
    X(ADD, add, __VA_ARGS__) X(MUL, mul, __VA_ARGS__) X(POW, pow, __VA_ARGS__)          \
    X(MAXIMUM, maximum, __VA_ARGS__) X(MINIMUM, minimum, __VA_ARGS__)
#define CPU_ARITH_OPS_U(X, ...)                                                         \
    X(ADD, add, __VA_ARGS__) X(SUB, sub, __VA_ARGS__) X(MUL, mul, __VA_ARGS__)          \
    X(POW, pow, __VA_ARGS__) X(MAXIMUM, maximum, __VA_ARGS__)                           \
    X(MINIMUM, minimum, __VA_ARGS__)
#define CPU_ARITH_OPS_S(X, ...) CPU_ARITH_OPS_U(X, __VA_ARGS__)
#define CPU_ARITH_OPS_F(X, ...) CPU_ARITH_OPS_U(X, __VA_ARGS__) X(DIV, div, __VA_ARGS__)
#define CPU_UNARY_OPS_H(X, ...) CPU_UNARY_OPS_F(X, __VA_ARGS__)
#define CPU_ARITH_OPS_H(X, ...) CPU_ARITH_OPS_F(X, __VA_ARGS__)
#define CPU_CMP_OPS(X, ...)                                                             \
    X(EQ, eq, __VA_ARGS__) X(NE, ne, __VA_ARGS__) X(LT, lt, __VA_ARGS__)                \
    X(LE, le, __VA_ARGS__) X(GT, gt, __VA_ARGS__) X(GE, ge, __VA_ARGS__)

/* ---- float16 / bfloat16 tiles ---------------------------------------------------------------
 * Elements converted per step by the 16-bit kernels: 2 KB of float32 per operand, so a
 * binary op's three tiles stay in L1. */
#define CPU_TILE 512

CPU_CLONES static void cpu_f16_to_f32_loop(float *restrict d, const uint16_t *restrict s,
                                           int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = cpu_f16_to_f32(s[i]);
}

CPU_CLONES static void cpu_f32_to_f16_loop(uint16_t *restrict d, const float *restrict s,
                                           int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = ferry_f32_to_f16(s[i]);
}

CPU_CLONES static void cpu_bf16_to_f32_loop(float *restrict d, const uint16_t *restrict s,
                                            int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = ferry_bf16_to_f32(s[i]);
}

CPU_CLONES static void cpu_f32_to_bf16_loop(uint16_t *restrict d, const float *restrict s,
                                            int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = ferry_f32_to_bf16(s[i]);
}

/* Wrappers, not clones: gcc gives a non-static clone an exported ifunc resolver. */
void cpu_bf16_to_f32_n(float *d, const uint16_t *s, int64_t n)
{
    cpu_bf16_to_f32_loop(d, s, n);
}

void cpu_f32_to_bf16_n(uint16_t *d, const float *s, int64_t n)
{
    cpu_f32_to_bf16_loop(d, s, n);
}

/* The F16C instructions convert 8 elements each with the results of ferry/half.h:
 * vcvtph2ps is exact (a signalling NaN comes out quiet, which no result shows: every
 * float16 result is stored through float32 -> float16, which makes NaNs quiet anyway),
 * and vcvtps2ph with immediate 4 rounds to nearest even as MXCSR's default mode does,
 * overflows to infinity and keeps NaNs' sign and top payload bits. They run 5 to 10
 * times faster than gcc 12's vectorization of the scalar conversions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(FERRY_CPU_NO_F16C)
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("avx,f16c"))) static void cpu_f16_to_f32_f16c(float *d, const uint16_t *s,
                                                                   int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    cpu_f16_to_f32_loop(d + i, s + i, n - i);
}

__attribute__((target("avx,f16c"))) static void cpu_f32_to_f16_f16c(uint16_t *d, const float *s,
                                                                   int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
    cpu_f32_to_f16_loop(d + i, s + i, n - i);
}

/* cpuid rather than __builtin_cpu_supports: clang 14 does not know the "f16c" feature
 * string. The instructions work on ymm registers, so the OS must also save their state
 * (OSXSAVE set and XCR0's SSE and AVX bits enabled), as __builtin_cpu_supports("avx")
 * checks. */
static _Bool cpu_detect_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const unsigned need = bit_F16C | bit_AVX | bit_OSXSAVE;
    if ((c & need) != need)
        return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    (void)xcr0_hi;
    return (xcr0_lo & 6u) == 6u;
}

static _Bool cpu_has_f16c(void)
{
    static int known; /* 0 unknown, 1 no, 2 yes */
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (!k) {
        k = cpu_detect_f16c() ? 2 : 1;
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k == 2;
}

void cpu_f16_to_f32_n(float *d, const uint16_t *s, int64_t n)
{
    if (cpu_has_f16c())
        cpu_f16_to_f32_f16c(d, s, n);
    else
        cpu_f16_to_f32_loop(d, s, n);
}

void cpu_f32_to_f16_n(uint16_t *d, const float *s, int64_t n)
{
    if (cpu_has_f16c())
        cpu_f32_to_f16_f16c(d, s, n);
    else
        cpu_f32_to_f16_loop(d, s, n);
}
#else
void cpu_f16_to_f32_n(float *d, const uint16_t *s, int64_t n)
{
    cpu_f16_to_f32_loop(d, s, n);
}

void cpu_f32_to_f16_n(uint16_t *d, const float *s, int64_t n)
{
    cpu_f32_to_f16_loop(d, s, n);
}
#endif

void cpu_half_to_f32_strided(ferry_dtype dt, float *dst, const char *src, int64_t cs,
                             int64_t n)
{
    if (cs == 1 && ((uintptr_t)src & 1) == 0) {
        const uint16_t *h = (const uint16_t *)(const void *)src;
        if (dt == FERRY_FLOAT16)
            cpu_f16_to_f32_n(dst, h, n);
        else
            cpu_bf16_to_f32_n(dst, h, n);
        return;
    }
    for (int64_t j = 0; j < n; j++) {
        uint16_t h;
        memcpy(&h, src + j * cs * 2, sizeof h);
        dst[j] = dt == FERRY_FLOAT16 ? cpu_f16_to_f32(h) : ferry_bf16_to_f32(h);
    }
}

/* ---- typed loops --------------------------------------------------------------------------
 * Per (op, dtype): cpu_<op>_<dtype> over contiguous arrays, _sb with b a scalar (stride 0),
 * _sa with a a scalar, all over aligned typed pointers; and _strided over byte steps with
 * memcpy loads and stores, which also serves unaligned blobs. out may alias an input
 * exactly, so the pointers are not restrict; `ivdep` tells gcc that no iteration reads
 * what an earlier one wrote, which holds for exact aliasing. */
/* clang's equivalent (vectorize(assume_safety)) warns on every loop it then cannot
 * vectorize, such as the libm ones; its run-time alias checks do without. */
#if defined(__GNUC__) && !defined(__clang__)
#define CPU_IVDEP _Pragma("GCC ivdep")
#else
#define CPU_IVDEP
#endif

typedef void (*cpu_un_fn)(char *o, const char *a, int64_t n);
typedef void (*cpu_un_strided_fn)(char *o, const char *a, int64_t n, int64_t so, int64_t sa);
typedef void (*cpu_bin_fn)(char *o, const char *a, const char *b, int64_t n);
typedef void (*cpu_bin_strided_fn)(char *o, const char *a, const char *b, int64_t n,
                                   int64_t so, int64_t sa, int64_t sb);

#define CPU_DEF_UNARY_CONTIG_(OP, op, sfx, st, ct, kind)                                \
    CPU_CLONES static void cpu_##op##_##sfx(char *o_, const char *a_, int64_t n)         \
    {                                                                                   \
        st *o = (st *)(void *)o_;                                                       \
        const st *a = (const st *)(const void *)a_;                                     \
        CPU_IVDEP for (int64_t i = 0; i < n; i++)                                       \
        {                                                                               \
            ct x = CPU_LD_##sfx(a[i]);                                                  \
            o[i] = CPU_ST_##sfx(CPU_U_##OP##_##kind(x, ct, cpu_wt_##sfx));              \
        }                                                                               \
    }
/* float16/bfloat16: tiles converted to float32 and through the float32 loop; the same
 * values as converting each element, as the float32 loop computes what the F body
 * computes. o may alias a: a tile is read before it is written. */
#define CPU_DEF_UNARY_STAGED_(OP, op, sfx, st, ct, kind)                                \
    static void cpu_##op##_##sfx(char *o, const char *a, int64_t n)                     \
    {                                                                                   \
        float fa[CPU_TILE], fo[CPU_TILE];                                               \
        for (int64_t i = 0; i < n; i += CPU_TILE) {                                     \
            int64_t len = n - i < CPU_TILE ? n - i : CPU_TILE;                          \
            cpu_##sfx##_to_f32_n(fa, (const uint16_t *)(const void *)a + i, len);       \
            cpu_##op##_f32((char *)fo, (const char *)fa, len);                          \
            cpu_f32_to_##sfx##_n((uint16_t *)(void *)o + i, fo, len);                   \
        }                                                                               \
    }
#define CPU_DEF_UNARY_STRIDED_(OP, op, sfx, st, ct, kind)                               \
    static void cpu_##op##_##sfx##_strided(char *o, const char *a, int64_t n, int64_t so, \
                                           int64_t sa)                                  \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++) {                                               \
            st v;                                                                       \
            memcpy(&v, a + i * sa, sizeof v);                                           \
            ct x = CPU_LD_##sfx(v);                                                     \
            st r = CPU_ST_##sfx(CPU_U_##OP##_##kind(x, ct, cpu_wt_##sfx));              \
            memcpy(o + i * so, &r, sizeof r);                                           \
        }                                                                               \
    }
#define CPU_CONTIG_B CPU_DEF_UNARY_CONTIG_
#define CPU_CONTIG_U CPU_DEF_UNARY_CONTIG_
#define CPU_CONTIG_S CPU_DEF_UNARY_CONTIG_
#define CPU_CONTIG_F CPU_DEF_UNARY_CONTIG_
#define CPU_CONTIG_H CPU_DEF_UNARY_STAGED_
#define CPU_DEF_UNARY(OP, op, sfx, en, st, ct, kind)    \
    CPU_CONTIG_##kind(OP, op, sfx, st, ct, kind)        \
    CPU_DEF_UNARY_STRIDED_(OP, op, sfx, st, ct, kind)

#define CPU_STORE_VAL(sfx, v) CPU_ST_##sfx(v)
#define CPU_STORE_BOOL(sfx, v) (v)

#define CPU_DEF_BINARY_CONTIG_(op, sfx, st, ct, ot, STORE, BODY)                         \
    CPU_CLONES static void cpu_##op##_##sfx(char *o_, const char *a_, const char *b_,   \
                                            int64_t n)                                  \
    {                                                                                   \
        ot *o = (ot *)(void *)o_;                                                       \
        const st *a = (const st *)(const void *)a_, *b = (const st *)(const void *)b_;  \
        CPU_IVDEP for (int64_t i = 0; i < n; i++)                                       \
        {                                                                               \
            ct x = CPU_LD_##sfx(a[i]), y = CPU_LD_##sfx(b[i]);                          \
            o[i] = STORE(sfx, BODY(x, y, ct, cpu_wt_##sfx, sfx));                       \
        }                                                                               \
    }                                                                                   \
    CPU_CLONES static void cpu_##op##_##sfx##_sb(char *o_, const char *a_, const char *b_, \
                                                 int64_t n)                             \
    {                                                                                   \
        ot *o = (ot *)(void *)o_;                                                       \
        const st *a = (const st *)(const void *)a_;                                     \
        const ct y = CPU_LD_##sfx(*(const st *)(const void *)b_);                       \
        CPU_IVDEP for (int64_t i = 0; i < n; i++)                                       \
        {                                                                               \
            ct x = CPU_LD_##sfx(a[i]);                                                  \
            o[i] = STORE(sfx, BODY(x, y, ct, cpu_wt_##sfx, sfx));                       \
        }                                                                               \
    }                                                                                   \
    CPU_CLONES static void cpu_##op##_##sfx##_sa(char *o_, const char *a_, const char *b_, \
                                                 int64_t n)                             \
    {                                                                                   \
        ot *o = (ot *)(void *)o_;                                                       \
        const st *b = (const st *)(const void *)b_;                                     \
        const ct x = CPU_LD_##sfx(*(const st *)(const void *)a_);                       \
        CPU_IVDEP for (int64_t i = 0; i < n; i++)                                       \
        {                                                                               \
            ct y = CPU_LD_##sfx(b[i]);                                                  \
            o[i] = STORE(sfx, BODY(x, y, ct, cpu_wt_##sfx, sfx));                       \
        }                                                                               \
    }
#define CPU_DEF_BINARY_STRIDED_(op, sfx, st, ct, ot, STORE, BODY)                        \
    static void cpu_##op##_##sfx##_strided(char *o, const char *a, const char *b,       \
                                           int64_t n, int64_t so, int64_t sa, int64_t sb) \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++) {                                               \
            st va, vb;                                                                  \
            memcpy(&va, a + i * sa, sizeof va);                                         \
            memcpy(&vb, b + i * sb, sizeof vb);                                         \
            ct x = CPU_LD_##sfx(va), y = CPU_LD_##sfx(vb);                              \
            ot r = STORE(sfx, BODY(x, y, ct, cpu_wt_##sfx, sfx));                       \
            memcpy(o + i * so, &r, sizeof r);                                           \
        }                                                                               \
    }

/* float16/bfloat16 through the float32 loops, a tile at a time (see the unary ones).
 * OSTAGE says how a float32 tile of results reaches o: converted (arithmetic), or
 * written directly by the loop (comparisons, whose output is bool). */
#define CPU_OUT_ARITH(sfx, o, i) float fo[CPU_TILE];
#define CPU_OUT_ARITH_PTR(sfx, o, i) ((char *)fo)
#define CPU_OUT_ARITH_DONE(sfx, o, i, len) cpu_f32_to_##sfx##_n((uint16_t *)(void *)(o) + (i), fo, len);
#define CPU_OUT_CMP(sfx, o, i)
#define CPU_OUT_CMP_PTR(sfx, o, i) ((o) + (i))
#define CPU_OUT_CMP_DONE(sfx, o, i, len)
#define CPU_DEF_BINARY_STAGED_(op, sfx, OSTAGE)                                          \
    static void cpu_##op##_##sfx(char *o, const char *a, const char *b, int64_t n)       \
    {                                                                                   \
        float fa[CPU_TILE], fb[CPU_TILE];                                               \
        OSTAGE(sfx, o, 0)                                                               \
        for (int64_t i = 0; i < n; i += CPU_TILE) {                                     \
            int64_t len = n - i < CPU_TILE ? n - i : CPU_TILE;                          \
            cpu_##sfx##_to_f32_n(fa, (const uint16_t *)(const void *)a + i, len);       \
            cpu_##sfx##_to_f32_n(fb, (const uint16_t *)(const void *)b + i, len);       \
            cpu_##op##_f32(OSTAGE##_PTR(sfx, o, i), (const char *)fa, (const char *)fb, len); \
            OSTAGE##_DONE(sfx, o, i, len)                                               \
        }                                                                               \
    }                                                                                   \
    static void cpu_##op##_##sfx##_sb(char *o, const char *a, const char *b, int64_t n)  \
    {                                                                                   \
        float fa[CPU_TILE], y = CPU_LD_##sfx(*(const uint16_t *)(const void *)b);       \
        OSTAGE(sfx, o, 0)                                                               \
        for (int64_t i = 0; i < n; i += CPU_TILE) {                                     \
            int64_t len = n - i < CPU_TILE ? n - i : CPU_TILE;                          \
            cpu_##sfx##_to_f32_n(fa, (const uint16_t *)(const void *)a + i, len);       \
            cpu_##op##_f32_sb(OSTAGE##_PTR(sfx, o, i), (const char *)fa, (const char *)&y, len); \
            OSTAGE##_DONE(sfx, o, i, len)                                               \
        }                                                                               \
    }                                                                                   \
    static void cpu_##op##_##sfx##_sa(char *o, const char *a, const char *b, int64_t n)  \
    {                                                                                   \
        float fb[CPU_TILE], x = CPU_LD_##sfx(*(const uint16_t *)(const void *)a);       \
        OSTAGE(sfx, o, 0)                                                               \
        for (int64_t i = 0; i < n; i += CPU_TILE) {                                     \
            int64_t len = n - i < CPU_TILE ? n - i : CPU_TILE;                          \
            cpu_##sfx##_to_f32_n(fb, (const uint16_t *)(const void *)b + i, len);       \
            cpu_##op##_f32_sa(OSTAGE##_PTR(sfx, o, i), (const char *)&x, (const char *)fb, len); \
            OSTAGE##_DONE(sfx, o, i, len)                                               \
        }                                                                               \
    }

#define CPU_ARITH_CONTIG_B(op, sfx, st, ct, BODY) \
    CPU_DEF_BINARY_CONTIG_(op, sfx, st, ct, st, CPU_STORE_VAL, BODY)
#define CPU_ARITH_CONTIG_U CPU_ARITH_CONTIG_B
#define CPU_ARITH_CONTIG_S CPU_ARITH_CONTIG_B
#define CPU_ARITH_CONTIG_F CPU_ARITH_CONTIG_B
#define CPU_ARITH_CONTIG_H(op, sfx, st, ct, BODY) CPU_DEF_BINARY_STAGED_(op, sfx, CPU_OUT_ARITH)
#define CPU_CMP_CONTIG_B(op, sfx, st, ct, BODY) \
    CPU_DEF_BINARY_CONTIG_(op, sfx, st, ct, uint8_t, CPU_STORE_BOOL, BODY)
#define CPU_CMP_CONTIG_U CPU_CMP_CONTIG_B
#define CPU_CMP_CONTIG_S CPU_CMP_CONTIG_B
#define CPU_CMP_CONTIG_F CPU_CMP_CONTIG_B
#define CPU_CMP_CONTIG_H(op, sfx, st, ct, BODY) CPU_DEF_BINARY_STAGED_(op, sfx, CPU_OUT_CMP)

#define CPU_DEF_ARITH(OP, op, sfx, en, st, ct, kind)                          \
    CPU_ARITH_CONTIG_##kind(op, sfx, st, ct, CPU_B_##OP##_##kind)             \
    CPU_DEF_BINARY_STRIDED_(op, sfx, st, ct, st, CPU_STORE_VAL, CPU_B_##OP##_##kind)
#define CPU_DEF_CMP(OP, op, sfx, en, st, ct, kind)                            \
    CPU_CMP_CONTIG_##kind(op, sfx, st, ct, CPU_B_##OP)                        \
    CPU_DEF_BINARY_STRIDED_(op, sfx, st, ct, uint8_t, CPU_STORE_BOOL, CPU_B_##OP)

#define CPU_DEF_DTYPE_(sfx, en, st, ct, kind)                   \
    CPU_UNARY_OPS_##kind(CPU_DEF_UNARY, sfx, en, st, ct, kind)  \
    CPU_ARITH_OPS_##kind(CPU_DEF_ARITH, sfx, en, st, ct, kind)  \
    CPU_CMP_OPS(CPU_DEF_CMP, sfx, en, st, ct, kind)
CPU_EW_DTYPES(CPU_DEF_DTYPE_)
#undef CPU_DEF_DTYPE_

/* ---- the kernel tables, [op][dtype]; a missing pair is NULL ------------------------------ */
typedef struct cpu_unary_kernels {
    cpu_un_fn contig;
    cpu_un_strided_fn strided;
} cpu_unary_kernels;

typedef struct cpu_binary_kernels {
    cpu_bin_fn contig, sb, sa;
    cpu_bin_strided_fn strided;
} cpu_binary_kernels;

#define CPU_NUM_UNARY (FERRY_UNARY_RELU + 1)
#define CPU_NUM_BINARY (FERRY_BINARY_GE + 1)

static const cpu_unary_kernels cpu_unary_table[CPU_NUM_UNARY][FERRY_NUM_DTYPES] = {
#define CPU_ENTRY_(OP, op, sfx, en, st, ct, kind) \
    [FERRY_UNARY_##OP][en] = {cpu_##op##_##sfx, cpu_##op##_##sfx##_strided},
#define CPU_ROW_(sfx, en, st, ct, kind) CPU_UNARY_OPS_##kind(CPU_ENTRY_, sfx, en, st, ct, kind)
    CPU_EW_DTYPES(CPU_ROW_)
#undef CPU_ROW_
#undef CPU_ENTRY_
};

static const cpu_binary_kernels cpu_binary_table[CPU_NUM_BINARY][FERRY_NUM_DTYPES] = {
#define CPU_ENTRY_(OP, op, sfx, en, st, ct, kind)                                       \
    [FERRY_BINARY_##OP][en] = {cpu_##op##_##sfx, cpu_##op##_##sfx##_sb,                 \
                               cpu_##op##_##sfx##_sa, cpu_##op##_##sfx##_strided},
#define CPU_ROW_(sfx, en, st, ct, kind)                      \
    CPU_ARITH_OPS_##kind(CPU_ENTRY_, sfx, en, st, ct, kind)  \
    CPU_CMP_OPS(CPU_ENTRY_, sfx, en, st, ct, kind)
    CPU_EW_DTYPES(CPU_ROW_)
#undef CPU_ROW_
#undef CPU_ENTRY_
};

/* ---- threads ------------------------------------------------------------------------------ */

static int cpu_threads_cached;

int cpu_max_threads(void)
{
    int n = __atomic_load_n(&cpu_threads_cached, __ATOMIC_RELAXED);
    if (n > 0)
        return n;
    const char *env = getenv("FERRY_NUM_THREADS");
    long v = env ? strtol(env, NULL, 10) : 0;
    if (v <= 0) {
#ifdef _OPENMP
        v = omp_get_max_threads();
#else
        v = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    }
    n = v < 1 ? 1 : v > 1024 ? 1024 : (int)v;
    __atomic_store_n(&cpu_threads_cached, n, __ATOMIC_RELAXED);
    return n;
}

/* Elements one thread should get before a second one is worth waking, for ops of one
 * load-compute-store per element. Measured here (float32 add, best of 200): one thread
 * takes 1.3 us for 32K elements, 2.5 us for 64K and 7.1 us for 128K; two threads take
 * 2.0 us for as little as 8K (an OpenMP region costs 0.8 us on a quiet machine, up to
 * 1.7 us with other builds running), 1.9-3.0 us for 64K and 3.1 us for 128K. So a
 * second thread joins from 64K elements. Ops calling libm (exp, pow, ...) cost 5-20 ns
 * an element and split 16x sooner: exp of 8K float32 takes 11.6 us on one thread, 8.7
 * on two. */
#define CPU_EW_GRAIN ((int64_t)32768)
#define CPU_EW_GRAIN_LIBM (CPU_EW_GRAIN / 16)

/* Runs row() over every element of the walk, on several threads when it is large. */
static void cpu_ew_run(const cpu_nd *it, char *const *base, const size_t *esize, int64_t grain,
                       cpu_nd_row_fn row, void *ctx)
{
    int64_t n = it->numel;
    int nt = cpu_threads_for(n, grain);
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), parts = omp_get_num_threads();
            cpu_nd_walk(it, base, esize, cpu_split(n, parts, t, 64),
                        cpu_split(n, parts, t + 1, 64), row, ctx);
        }
        return;
    }
#endif
    (void)nt;
    cpu_nd_walk(it, base, esize, 0, n, row, ctx);
}

/* ---- entries ------------------------------------------------------------------------------ */

typedef struct cpu_ew_ctx {
    const void *kernels;
    size_t esize[3];
    _Bool aligned;
} cpu_ew_ctx;

static void cpu_unary_row(void *ctx_, char *const *p, int64_t n, const int64_t *step)
{
    const cpu_ew_ctx *c = ctx_;
    const cpu_unary_kernels *k = c->kernels;
    if (c->aligned && step[0] == 1 && step[1] == 1)
        k->contig(p[0], p[1], n);
    else
        k->strided(p[0], p[1], n, step[0] * (int64_t)c->esize[0],
                   step[1] * (int64_t)c->esize[1]);
}

static void cpu_binary_row(void *ctx_, char *const *p, int64_t n, const int64_t *step)
{
    const cpu_ew_ctx *c = ctx_;
    const cpu_binary_kernels *k = c->kernels;
    if (c->aligned && step[0] == 1) {
        if (step[1] == 1 && step[2] == 1) {
            k->contig(p[0], p[1], p[2], n);
            return;
        }
        if (step[1] == 1 && step[2] == 0) {
            k->sb(p[0], p[1], p[2], n);
            return;
        }
        if (step[1] == 0 && step[2] == 1) {
            k->sa(p[0], p[1], p[2], n);
            return;
        }
    }
    k->strided(p[0], p[1], p[2], n, step[0] * (int64_t)c->esize[0],
               step[1] * (int64_t)c->esize[1], step[2] * (int64_t)c->esize[2]);
}

static ferry_status cpu_check_shapes(const char *fn, const ferry_kernel_tensor *out,
                                     const ferry_kernel_tensor *in)
{
    if (out->ndim != in->ndim || out->ndim < 0 || out->ndim > FERRY_MAX_DIMS)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "cpu: %s: operands have %d and %d dimensions", fn,
                               (int)in->ndim, (int)out->ndim);
    for (int d = 0; d < out->ndim; d++)
        if (out->shape[d] != in->shape[d] || out->shape[d] < 0)
            return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                   "cpu: %s: extent %lld differs from %lld in dimension %d", fn,
                                   (long long)in->shape[d], (long long)out->shape[d], d);
    return FERRY_OK;
}

ferry_status cpu_unary(void *ctx, int32_t device, ferry_unary_op op, const ferry_kernel_tensor *out,
                       const ferry_kernel_tensor *in)
{
    if ((unsigned)op >= CPU_NUM_UNARY || !cpu_elem_size(in->dtype) ||
        out->dtype != in->dtype || !cpu_unary_table[op][in->dtype].contig)
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "cpu: no unary op %d kernel for dtype %d",
                               (int)op, (int)in->dtype);
    ferry_status st = cpu_check_shapes("unary", out, in);
    if (st != FERRY_OK)
        return st;
    const int64_t *strides[2] = {out->strides, in->strides};
    cpu_nd it;
    cpu_nd_init(&it, out->ndim, out->shape, 2, strides);
    if (it.numel == 0)
        return FERRY_OK;
    cpu_ew_ctx ew = {&cpu_unary_table[op][in->dtype],
                     {cpu_elem_size(out->dtype), cpu_elem_size(in->dtype), 0},
                     cpu_is_aligned(out) && cpu_is_aligned(in)};
    _Bool libm = op != FERRY_UNARY_NEG && op != FERRY_UNARY_ABS && op != FERRY_UNARY_RELU &&
                op != FERRY_UNARY_SQRT;
    char *base[2] = {cpu_data(out), cpu_data(in)};
    cpu_ew_run(&it, base, ew.esize, libm ? CPU_EW_GRAIN_LIBM : CPU_EW_GRAIN, cpu_unary_row,
               &ew);
    return FERRY_OK;
}

ferry_status cpu_binary(void *ctx, int32_t device, ferry_binary_op op,
                        const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    _Bool cmp = op >= FERRY_BINARY_EQ;
    if ((unsigned)op >= CPU_NUM_BINARY || !cpu_elem_size(a->dtype) || a->dtype != b->dtype ||
        out->dtype != (cmp ? FERRY_BOOL : a->dtype) || !cpu_binary_table[op][a->dtype].contig)
        return cpu_host->error(FERRY_ERR_UNSUPPORTED,
                               "cpu: no binary op %d kernel for dtypes %d, %d -> %d", (int)op,
                               (int)a->dtype, (int)b->dtype, (int)out->dtype);
    ferry_status st = cpu_check_shapes("binary", out, a);
    if (st == FERRY_OK)
        st = cpu_check_shapes("binary", out, b);
    if (st != FERRY_OK)
        return st;
    _Bool libm = op == FERRY_BINARY_POW && a->dtype >= FERRY_FLOAT16;
    int64_t grain = libm ? CPU_EW_GRAIN_LIBM : CPU_EW_GRAIN;
    /* One dense run too short for a second thread (what the core makes of any dense
     * operands): the loop at once, without the walk's set-up, which costs more than a
     * few elements of work. */
    if (out->ndim == 0 || (out->ndim == 1 && out->shape[0] > 0 && out->shape[0] < grain &&
                           out->strides[0] == 1 && a->strides[0] == 1 && b->strides[0] == 1)) {
        if (cpu_is_aligned(out) && cpu_is_aligned(a) && cpu_is_aligned(b)) {
            cpu_binary_table[op][a->dtype].contig(cpu_data(out), cpu_data(a), cpu_data(b),
                                                  out->ndim ? out->shape[0] : 1);
            return FERRY_OK;
        }
    }
    const int64_t *strides[3] = {out->strides, a->strides, b->strides};
    cpu_nd it;
    cpu_nd_init(&it, out->ndim, out->shape, 3, strides);
    if (it.numel == 0)
        return FERRY_OK;
    cpu_ew_ctx ew = {&cpu_binary_table[op][a->dtype],
                     {cpu_elem_size(out->dtype), cpu_elem_size(a->dtype),
                      cpu_elem_size(b->dtype)},
                     cpu_is_aligned(out) && cpu_is_aligned(a) && cpu_is_aligned(b)};
    char *base[3] = {cpu_data(out), cpu_data(a), cpu_data(b)};
    cpu_ew_run(&it, base, ew.esize, grain, cpu_binary_row, &ew);
    return FERRY_OK;
}

/* The scalar as a stride-0 operand over host memory: the loops that serve a broadcast
 * 0-d tensor (the `sb` kernels), so the results are those of `binary` bit for bit. */
ferry_status cpu_binary_scalar(void *ctx, int32_t device, ferry_binary_op op,
                               const ferry_kernel_tensor *out,
                               const ferry_kernel_tensor *a, const ferry_kernel_scalar *b)
{
    if (out->ndim < 0 || out->ndim > FERRY_MAX_DIMS)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT, "cpu: binary_scalar: %d dimensions",
                               (int)out->ndim);
    _Alignas(16) unsigned char value[sizeof b->value];
    memcpy(value, b->value, sizeof value);
    int64_t zeros[FERRY_MAX_DIMS] = {0};
    ferry_kernel_tensor kb = {value, 0, b->dtype, out->ndim, out->shape, zeros, sizeof kb};
    return cpu_binary(ctx, device, op, out, a, &kb);
}

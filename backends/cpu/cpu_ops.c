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
 * Vectorization (gcc 12 -O3, checked with -fopt-info-vec-optimized and objdump): every
 * contiguous and scalar-broadcast loop below is vectorized for every dtype except the
 * integer pow loops (data-dependent trip count) and the libm calls of exp, log, sin,
 * cos, tanh, sigmoid and pow (glibc's vector math is only declared under -ffast-math,
 * which would break NaN handling). The default clone uses SSE2; the x86-64-v3 clone
 * uses 256-bit AVX2 (vaddps ymm, vcvtph2ps for float16 loads is not generated: the
 * float16 loads are the integer/select sequence of cpu_f16_to_f32, in ymm registers).
 * sqrt vectorizes because the target is built with -fno-math-errno.
 */

/* ---- the dtype table ------------------------------------------------------------------
 * X(suffix, enum, storage type, compute type, kind). Kinds pick the op bodies: B bool,
 * U unsigned, S signed integer, F floating (float16/bfloat16 compute in float). */
#define CPU_EW_DTYPES(X)                                   \
    X(bool, FERRY_BOOL, uint8_t, uint8_t, B)               \
    X(u8, FERRY_UINT8, uint8_t, uint8_t, U)                \
    X(i8, FERRY_INT8, int8_t, int8_t, S)                   \
    X(i16, FERRY_INT16, int16_t, int16_t, S)               \
    X(i32, FERRY_INT32, int32_t, int32_t, S)               \
    X(i64, FERRY_INT64, int64_t, int64_t, S)               \
    X(f16, FERRY_FLOAT16, uint16_t, float, F)              \
    X(bf16, FERRY_BFLOAT16, uint16_t, float, F)            \
    X(f32, FERRY_FLOAT32, float, float, F)                 \
    X(f64, FERRY_FLOAT64, double, double, F)

/* Integer arithmetic runs in an unsigned type at least as wide as int, so it wraps
 * modulo 2^bits instead of overflowing (UB for signed types, and for uint16 * uint16,
 * which C promotes to int). The conversion back to a signed type is modulo 2^bits in
 * gcc and clang. */
typedef uint32_t cpu_wt_bool, cpu_wt_u8, cpu_wt_i8, cpu_wt_i16, cpu_wt_i32;
typedef uint64_t cpu_wt_i64;
typedef float cpu_wt_f16, cpu_wt_bf16, cpu_wt_f32;
typedef double cpu_wt_f64;

/* Stored element -> compute value, and back. A bool byte other than 0 reads as true. */
#define CPU_LD_bool(x) ((uint8_t)((x) != 0))
#define CPU_LD_u8(x) (x)
#define CPU_LD_i8(x) (x)
#define CPU_LD_i16(x) (x)
#define CPU_LD_i32(x) (x)
#define CPU_LD_i64(x) (x)
#define CPU_LD_f16(x) cpu_f16_to_f32(x)
#define CPU_LD_bf16(x) ferry_bf16_to_f32(x)
#define CPU_LD_f32(x) (x)
#define CPU_LD_f64(x) (x)
#define CPU_ST_bool(v) (v)
#define CPU_ST_u8(v) (v)
#define CPU_ST_i8(v) (v)
#define CPU_ST_i16(v) (v)
#define CPU_ST_i32(v) (v)
#define CPU_ST_i64(v) (v)
#define CPU_ST_f16(v) ferry_f32_to_f16(v)
#define CPU_ST_bf16(v) ferry_f32_to_bf16(v)
#define CPU_ST_f32(v) (v)
#define CPU_ST_f64(v) (v)

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
#define CPU_CMP_OPS(X, ...)                                                             \
    X(EQ, eq, __VA_ARGS__) X(NE, ne, __VA_ARGS__) X(LT, lt, __VA_ARGS__)                \
    X(LE, le, __VA_ARGS__) X(GT, gt, __VA_ARGS__) X(GE, ge, __VA_ARGS__)

/* ---- typed loops --------------------------------------------------------------------------
 * Per (op, dtype): cpu_<op>_<dtype> over contiguous arrays, _sb with b a scalar (stride 0),
 * _sa with a a scalar, all over aligned typed pointers; and _strided over byte steps with
 * memcpy loads and stores, which also serves unaligned blobs. out may alias an input
 * exactly, so the pointers are not restrict; `ivdep` tells gcc that no iteration reads
 * what an earlier one wrote, which holds for exact aliasing. */
typedef void (*cpu_un_fn)(char *o, const char *a, int64_t n);
typedef void (*cpu_un_strided_fn)(char *o, const char *a, int64_t n, int64_t so, int64_t sa);
typedef void (*cpu_bin_fn)(char *o, const char *a, const char *b, int64_t n);
typedef void (*cpu_bin_strided_fn)(char *o, const char *a, const char *b, int64_t n,
                                   int64_t so, int64_t sa, int64_t sb);

#define CPU_DEF_UNARY(OP, op, sfx, en, st, ct, kind)                                     \
    CPU_CLONES static void cpu_##op##_##sfx(char *o_, const char *a_, int64_t n)         \
    {                                                                                   \
        st *o = (st *)(void *)o_;                                                       \
        const st *a = (const st *)(const void *)a_;                                     \
        _Pragma("GCC ivdep") for (int64_t i = 0; i < n; i++)                            \
        {                                                                               \
            ct x = CPU_LD_##sfx(a[i]);                                                  \
            o[i] = CPU_ST_##sfx(CPU_U_##OP##_##kind(x, ct, cpu_wt_##sfx));              \
        }                                                                               \
    }                                                                                   \
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

#define CPU_STORE_VAL(sfx, v) CPU_ST_##sfx(v)
#define CPU_STORE_BOOL(sfx, v) (v)

#define CPU_DEF_BINARY_(op, sfx, st, ct, ot, STORE, BODY)                                \
    CPU_CLONES static void cpu_##op##_##sfx(char *o_, const char *a_, const char *b_,   \
                                            int64_t n)                                  \
    {                                                                                   \
        ot *o = (ot *)(void *)o_;                                                       \
        const st *a = (const st *)(const void *)a_, *b = (const st *)(const void *)b_;  \
        _Pragma("GCC ivdep") for (int64_t i = 0; i < n; i++)                            \
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
        _Pragma("GCC ivdep") for (int64_t i = 0; i < n; i++)                            \
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
        _Pragma("GCC ivdep") for (int64_t i = 0; i < n; i++)                            \
        {                                                                               \
            ct y = CPU_LD_##sfx(b[i]);                                                  \
            o[i] = STORE(sfx, BODY(x, y, ct, cpu_wt_##sfx, sfx));                       \
        }                                                                               \
    }                                                                                   \
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

#define CPU_DEF_ARITH(OP, op, sfx, en, st, ct, kind) \
    CPU_DEF_BINARY_(op, sfx, st, ct, st, CPU_STORE_VAL, CPU_B_##OP##_##kind)
#define CPU_DEF_CMP(OP, op, sfx, en, st, ct, kind) \
    CPU_DEF_BINARY_(op, sfx, st, ct, uint8_t, CPU_STORE_BOOL, CPU_B_##OP)

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
 * load-compute-store per element. Measured here (2 threads, float32 add): at 32K
 * elements one thread takes 4.5 us and two 3.9 us (region entry ~1 us), at 64K 10 us
 * against 6 us; below 32K a single thread wins. Ops calling libm (exp, pow, ...) cost
 * 5-20 ns an element and split 16x sooner. */
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

ferry_status cpu_unary(int32_t device, ferry_unary_op op, const ferry_kernel_tensor *out,
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
    cpu_ew_ctx ctx = {&cpu_unary_table[op][in->dtype],
                      {cpu_elem_size(out->dtype), cpu_elem_size(in->dtype), 0},
                      cpu_is_aligned(out) && cpu_is_aligned(in)};
    _Bool libm = op != FERRY_UNARY_NEG && op != FERRY_UNARY_ABS && op != FERRY_UNARY_RELU &&
                op != FERRY_UNARY_SQRT;
    char *base[2] = {cpu_data(out), cpu_data(in)};
    cpu_ew_run(&it, base, ctx.esize, libm ? CPU_EW_GRAIN_LIBM : CPU_EW_GRAIN, cpu_unary_row,
               &ctx);
    return FERRY_OK;
}

ferry_status cpu_binary(int32_t device, ferry_binary_op op, const ferry_kernel_tensor *out,
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
    const int64_t *strides[3] = {out->strides, a->strides, b->strides};
    cpu_nd it;
    cpu_nd_init(&it, out->ndim, out->shape, 3, strides);
    if (it.numel == 0)
        return FERRY_OK;
    cpu_ew_ctx ctx = {&cpu_binary_table[op][a->dtype],
                      {cpu_elem_size(out->dtype), cpu_elem_size(a->dtype),
                       cpu_elem_size(b->dtype)},
                      cpu_is_aligned(out) && cpu_is_aligned(a) && cpu_is_aligned(b)};
    _Bool libm = op == FERRY_BINARY_POW && a->dtype >= FERRY_FLOAT16;
    char *base[3] = {cpu_data(out), cpu_data(a), cpu_data(b)};
    cpu_ew_run(&it, base, ctx.esize, libm ? CPU_EW_GRAIN_LIBM : CPU_EW_GRAIN, cpu_binary_row,
               &ctx);
    return FERRY_OK;
}

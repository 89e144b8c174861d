/* CPU kernels that move elements without arithmetic: dtype casts (every pair of the ten
 * dtypes), strided copies and fills, over any shape and element strides, with flat
 * loops for the contiguous case that the compiler can vectorize. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ferry/half.h>

#include "cpu_internal.h"

/* `bool` is a dtype suffix in the kernel names below. stdbool.h makes it a macro that
 * would turn every cpu_cast_bool_* into cpu_cast__Bool_*, so it is undefined here (C11
 * 7.18 allows this) and the type is spelled _Bool. */
#undef bool

/*
 * Cast semantics (the ferry_backend_ops.cast contract, made exact):
 *   - float -> integer truncates toward zero and saturates to the target's range;
 *     NaN gives 0. Out-of-range values never reach a C float-to-int conversion, which
 *     would be undefined behaviour.
 *   - anything -> bool is (x != 0), so NaN gives true; a bool byte other than 0 is read
 *     as true, bool -> number gives 0 or 1.
 *   - integer -> integer wraps modulo 2^bits. The conversion is done to the unsigned
 *     type of the target width (defined by C for every value) and stored as such, so no
 *     implementation-defined signed conversion is involved.
 *   - integer -> float32/float64 rounds as C does (to nearest even).
 *   - float16 and bfloat16 go through float32 with ferry/half.h (round to nearest even,
 *     NaN stays NaN with its sign). float64 and int64 -> float16/bfloat16 therefore round
 *     twice; for float16 this only matters at exact float32 ties, which are rare, and for
 *     integers it never does (every integer a float16 can hold is a float32).
 *   - same dtype is a plain strided copy: bit patterns, NaN payloads included, are kept.
 */

/* ---- the dtype table ---------------------------------------------------------------
 * X(suffix, enum, read type, write type): the C types an element's bytes are read and
 * written as. Signed integers are written through their unsigned counterpart (see
 * above); reading them back as the signed type is allowed by C's aliasing rules. The
 * per-suffix macros below (kind, load, conversion) complete the table; they have to be
 * macros of their own because the preprocessor cannot define macros from a list. */
#define CPU_DTYPES(X)                                          \
    X(bool, FERRY_BOOL, uint8_t, uint8_t)                      \
    X(u8, FERRY_UINT8, uint8_t, uint8_t)                       \
    X(i8, FERRY_INT8, int8_t, uint8_t)                         \
    X(i16, FERRY_INT16, int16_t, uint16_t)                     \
    X(i32, FERRY_INT32, int32_t, uint32_t)                     \
    X(i64, FERRY_INT64, int64_t, uint64_t)                     \
    X(f16, FERRY_FLOAT16, uint16_t, uint16_t)                  \
    X(bf16, FERRY_BFLOAT16, uint16_t, uint16_t)                \
    X(f32, FERRY_FLOAT32, float, float)                        \
    X(f64, FERRY_FLOAT64, double, double)

/* Same list with a fixed first argument, for the nested [src][dst] expansion. */
#define CPU_DTYPES_WITH(X, S)                                  \
    X(S, bool) X(S, u8) X(S, i8) X(S, i16) X(S, i32) X(S, i64) \
    X(S, f16) X(S, bf16) X(S, f32) X(S, f64)

#define CPU_TYPES_(sfx, en, rt, wt)                            \
    typedef rt cpu_src_##sfx;                                  \
    typedef wt cpu_dst_##sfx;                                  \
    enum { cpu_enum_##sfx = en };
CPU_DTYPES(CPU_TYPES_)
#undef CPU_TYPES_

/* INT or FLT: selects the conversion into each target. */
#define CPU_KIND_bool INT
#define CPU_KIND_u8 INT
#define CPU_KIND_i8 INT
#define CPU_KIND_i16 INT
#define CPU_KIND_i32 INT
#define CPU_KIND_i64 INT
#define CPU_KIND_f16 FLT
#define CPU_KIND_bf16 FLT
#define CPU_KIND_f32 FLT
#define CPU_KIND_f64 FLT

/* Loading one stored element as a value (float for the 16-bit floats). */
#define CPU_LOAD_bool(x) ((uint8_t)((x) != 0))
#define CPU_LOAD_u8(x) (x)
#define CPU_LOAD_i8(x) (x)
#define CPU_LOAD_i16(x) (x)
#define CPU_LOAD_i32(x) (x)
#define CPU_LOAD_i64(x) (x)
#define CPU_LOAD_f16(x) ferry_f16_to_f32(x)
#define CPU_LOAD_bf16(x) ferry_bf16_to_f32(x)
#define CPU_LOAD_f32(x) (x)
#define CPU_LOAD_f64(x) (x)

/* Saturating float -> integer. The bounds are powers of two, exact in float and double,
 * and the C conversion runs only for values strictly between them, where it is defined.
 * Written as selects so that the contiguous loops stay branch-free. */
#define CPU_SAT_(name, ft, t, ut, lo, hi, tmin, tmax)                                   \
    static inline ut cpu_sat_##name(ft x)                                               \
    {                                                                                   \
        return x != x ? (ut)0                                                           \
             : x >= (ft)(hi) ? (ut)(tmax)                                               \
             : x <= (ft)(lo) ? (ut)(tmin)                                               \
             : (ut)(t)x;                                                                \
    }
#define CPU_SAT_BOTH_(sfx, t, ut, lo, hi, tmin, tmax)                                   \
    CPU_SAT_(sfx##_float, float, t, ut, lo, hi, tmin, tmax)                             \
    CPU_SAT_(sfx##_double, double, t, ut, lo, hi, tmin, tmax)
CPU_SAT_BOTH_(u8, uint8_t, uint8_t, 0.0, 256.0, 0, UINT8_MAX)
CPU_SAT_BOTH_(i8, int8_t, uint8_t, -128.0, 128.0, INT8_MIN, INT8_MAX)
CPU_SAT_BOTH_(i16, int16_t, uint16_t, -32768.0, 32768.0, INT16_MIN, INT16_MAX)
CPU_SAT_BOTH_(i32, int32_t, uint32_t, -2147483648.0, 2147483648.0, INT32_MIN, INT32_MAX)
CPU_SAT_BOTH_(i64, int64_t, uint64_t, -9223372036854775808.0, 9223372036854775808.0,
              INT64_MIN, INT64_MAX)
#undef CPU_SAT_BOTH_
#undef CPU_SAT_

/* float or double, whichever `x` is, to a saturated integer. */
#define CPU_SAT(sfx, x) _Generic((x), float: cpu_sat_##sfx##_float, \
                                      default: cpu_sat_##sfx##_double)(x)

/* Converting a loaded value into a destination, by target and source kind. */
#define CPU_TO_bool_INT(x) ((uint8_t)((x) != 0))
#define CPU_TO_bool_FLT(x) ((uint8_t)((x) != 0))
#define CPU_TO_u8_INT(x) ((uint8_t)(x))
#define CPU_TO_u8_FLT(x) CPU_SAT(u8, x)
#define CPU_TO_i8_INT(x) ((uint8_t)(x))
#define CPU_TO_i8_FLT(x) CPU_SAT(i8, x)
#define CPU_TO_i16_INT(x) ((uint16_t)(x))
#define CPU_TO_i16_FLT(x) CPU_SAT(i16, x)
#define CPU_TO_i32_INT(x) ((uint32_t)(x))
#define CPU_TO_i32_FLT(x) CPU_SAT(i32, x)
#define CPU_TO_i64_INT(x) ((uint64_t)(x))
#define CPU_TO_i64_FLT(x) CPU_SAT(i64, x)
#define CPU_TO_f16_INT(x) ferry_f32_to_f16((float)(x))
#define CPU_TO_f16_FLT(x) ferry_f32_to_f16((float)(x))
#define CPU_TO_bf16_INT(x) ferry_f32_to_bf16((float)(x))
#define CPU_TO_bf16_FLT(x) ferry_f32_to_bf16((float)(x))
#define CPU_TO_f32_INT(x) ((float)(x))
#define CPU_TO_f32_FLT(x) ((float)(x))
#define CPU_TO_f64_INT(x) ((double)(x))
#define CPU_TO_f64_FLT(x) ((double)(x))

#define CPU_CONVERT__(D, kind, x) CPU_TO_##D##_##kind(x)
#define CPU_CONVERT_(D, kind, x) CPU_CONVERT__(D, kind, x)
#define CPU_CONVERT(S, D, x) CPU_CONVERT_(D, CPU_KIND_##S, CPU_LOAD_##S(x))

/* ---- typed cast loops ---------------------------------------------------------------
 * Two loops per pair: a flat one over aligned contiguous arrays (restrict-qualified, so
 * gcc -O3 vectorizes it), and a strided one over byte steps whose loads and stores go
 * through memcpy, which compiles to a plain move and stays defined for unaligned
 * elements of a wrapped blob. */
typedef void (*cpu_contig_fn)(void *restrict dst, const void *restrict src, int64_t n);
typedef void (*cpu_strided_fn)(char *dst, int64_t dst_step, const char *src, int64_t src_step,
                               int64_t n);

/* The baseline x86-64 ISA has no vector select, so the branches of the half.h
 * conversions only vectorize profitably with AVX2; a second clone of each contiguous
 * loop built for x86-64-v3 is picked at load time (glibc ifunc) where the CPU has it.
 * float32 -> float16 of 16M elements runs about 2.3x faster that way. gcc only: clang 14
 * exports the ifunc resolvers despite hidden visibility, and does not vectorize these
 * loops anyway. */
#if defined(__x86_64__) && defined(__gnu_linux__) && defined(__GNUC__) && \
    !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(FERRY_CPU_NO_CLONES)
#define CPU_VECTOR_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#endif
#endif
#ifndef CPU_VECTOR_CLONES
#define CPU_VECTOR_CLONES
#endif

#define CPU_CAST_PAIR_(S, D)                                                            \
    CPU_VECTOR_CLONES                                                                   \
    static void cpu_cast_##S##_##D(void *restrict dst_, const void *restrict src_,      \
                                   int64_t n)                                           \
    {                                                                                   \
        cpu_dst_##D *restrict dst = dst_;                                               \
        const cpu_src_##S *restrict src = src_;                                         \
        for (int64_t i = 0; i < n; i++)                                                 \
            dst[i] = CPU_CONVERT(S, D, src[i]);                                         \
    }                                                                                   \
    static void cpu_cast_##S##_##D##_strided(char *dst, int64_t dst_step,               \
                                             const char *src, int64_t src_step,         \
                                             int64_t n)                                 \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++) {                                               \
            cpu_src_##S s;                                                              \
            memcpy(&s, src + i * src_step, sizeof s);                                   \
            cpu_dst_##D d = CPU_CONVERT(S, D, s);                                       \
            memcpy(dst + i * dst_step, &d, sizeof d);                                   \
        }                                                                               \
    }
#define CPU_CAST_ROW_(S, en, rt, wt) CPU_DTYPES_WITH(CPU_CAST_PAIR_, S)
CPU_DTYPES(CPU_CAST_ROW_)
#undef CPU_CAST_ROW_
#undef CPU_CAST_PAIR_

typedef struct cpu_cast_loops {
    cpu_contig_fn contig;
    cpu_strided_fn strided;
} cpu_cast_loops;

/* [src][dst], indexed by ferry_dtype. The diagonal is present for completeness but
 * cpu_cast sends same-dtype work to the byte-exact strided copy instead. */
static const cpu_cast_loops cpu_cast_table[FERRY_NUM_DTYPES][FERRY_NUM_DTYPES] = {
#define CPU_CAST_ENTRY_(S, D) \
    [cpu_enum_##S][cpu_enum_##D] = {cpu_cast_##S##_##D, cpu_cast_##S##_##D##_strided},
#define CPU_CAST_ROW_(S, en, rt, wt) CPU_DTYPES_WITH(CPU_CAST_ENTRY_, S)
    CPU_DTYPES(CPU_CAST_ROW_)
#undef CPU_CAST_ROW_
#undef CPU_CAST_ENTRY_
};

/* ---- element-size-generic copies, for copy_strided and fill ------------------------ */

#define CPU_COPY_SIZE_(nbytes, ut)                                                      \
    static void cpu_copy_strided_##nbytes(char *dst, int64_t dst_step, const char *src, \
                                          int64_t src_step, int64_t n)                  \
    {                                                                                   \
        for (int64_t i = 0; i < n; i++) {                                               \
            ut v;                                                                       \
            memcpy(&v, src + i * src_step, sizeof v);                                   \
            memcpy(dst + i * dst_step, &v, sizeof v);                                   \
        }                                                                               \
    }                                                                                   \
    static void cpu_fill_contig_##nbytes(void *restrict dst_, const void *restrict src, \
                                         int64_t n)                                     \
    {                                                                                   \
        ut v, *restrict dst = dst_;                                                     \
        memcpy(&v, src, sizeof v);                                                      \
        for (int64_t i = 0; i < n; i++)                                                 \
            dst[i] = v;                                                                 \
    }
CPU_COPY_SIZE_(1, uint8_t)
CPU_COPY_SIZE_(2, uint16_t)
CPU_COPY_SIZE_(4, uint32_t)
CPU_COPY_SIZE_(8, uint64_t)
#undef CPU_COPY_SIZE_

/* Indexed by log2 of the element size. */
static const cpu_strided_fn cpu_copy_strided_by_size[4] = {
    cpu_copy_strided_1, cpu_copy_strided_2, cpu_copy_strided_4, cpu_copy_strided_8};
static const cpu_contig_fn cpu_fill_contig_by_size[4] = {
    cpu_fill_contig_1, cpu_fill_contig_2, cpu_fill_contig_4, cpu_fill_contig_8};

/* ---- the N-d strided walk ----------------------------------------------------------- */

static int cpu_log2_size(size_t size)
{
    return size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;
}

/* Two operands of one shape, reduced to the fewest dimensions that visit the same
 * elements in the same order: extent-1 dimensions dropped, and a dimension merged into
 * the next inner one when both operands step over it as one run. Steps are in bytes. */
typedef struct cpu_walk {
    int ndim;
    int64_t numel;
    int64_t shape[FERRY_MAX_DIMS];
    int64_t dst_step[FERRY_MAX_DIMS];
    int64_t src_step[FERRY_MAX_DIMS];
} cpu_walk;

/* src_strides may be NULL: every step is 0 (one source element, as fill uses). */
static void cpu_walk_init(cpu_walk *w, int ndim, const int64_t *shape,
                          const int64_t *dst_strides, size_t dst_size,
                          const int64_t *src_strides, size_t src_size)
{
    w->ndim = 0;
    w->numel = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0)
            w->numel = 0;
    for (int i = 0; i < ndim && w->numel; i++)
        w->numel *= shape[i];
    if (w->numel == 0)
        return;
    /* Built innermost first, then reversed, so that merging looks at one neighbour. */
    int64_t sh[FERRY_MAX_DIMS], ds[FERRY_MAX_DIMS], ss[FERRY_MAX_DIMS];
    int k = 0;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] == 1)
            continue;
        int64_t d = dst_strides[i] * (int64_t)dst_size;
        int64_t s = src_strides ? src_strides[i] * (int64_t)src_size : 0;
        if (k > 0 && d == ds[k - 1] * sh[k - 1] && s == ss[k - 1] * sh[k - 1]) {
            sh[k - 1] *= shape[i];
            continue;
        }
        sh[k] = shape[i];
        ds[k] = d;
        ss[k] = s;
        k++;
    }
    w->ndim = k;
    for (int i = 0; i < k; i++) {
        w->shape[i] = sh[k - 1 - i];
        w->dst_step[i] = ds[k - 1 - i];
        w->src_step[i] = ss[k - 1 - i];
    }
}

/* Runs `inner` over every innermost row; the outer dimensions advance like an odometer.
 * Positions are byte offsets from element 0, so no pointer is ever formed outside the
 * elements the tensors own, whatever the sign of the strides. */
static void cpu_walk_run(const cpu_walk *w, char *dst, const char *src, cpu_strided_fn inner)
{
    if (w->numel == 0)
        return;
    if (w->ndim == 0) { /* a scalar, or all extents 1 */
        inner(dst, 0, src, 0, 1);
        return;
    }
    int last = w->ndim - 1;
    int64_t n = w->shape[last], dstep = w->dst_step[last], sstep = w->src_step[last];
    int64_t idx[FERRY_MAX_DIMS] = {0};
    int64_t doff = 0, soff = 0;
    for (;;) {
        inner(dst + doff, dstep, src + soff, sstep, n);
        int j = last - 1;
        for (; j >= 0; j--) {
            if (++idx[j] < w->shape[j]) {
                doff += w->dst_step[j];
                soff += w->src_step[j];
                break;
            }
            idx[j] = 0;
            doff -= w->dst_step[j] * (w->shape[j] - 1);
            soff -= w->src_step[j] * (w->shape[j] - 1);
        }
        if (j < 0)
            return;
    }
}

/* Whether the walk is one forward run of packed elements on both sides. */
static _Bool cpu_walk_is_flat(const cpu_walk *w, size_t dst_size, size_t src_size)
{
    return w->ndim == 0 ||
           (w->ndim == 1 && w->dst_step[0] == (int64_t)dst_size &&
            w->src_step[0] == (int64_t)src_size);
}

static _Bool cpu_aligned(const void *p, size_t size)
{
    return ((uintptr_t)p & (size - 1)) == 0;
}

static ferry_status cpu_check_pair(const char *op, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *in)
{
    if (!cpu_elem_size(out->dtype) || !cpu_elem_size(in->dtype))
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "cpu: %s: unknown dtype %d -> %d", op,
                               (int)in->dtype, (int)out->dtype);
    if (out->ndim != in->ndim || out->ndim < 0 || out->ndim > FERRY_MAX_DIMS)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "cpu: %s: operands have %d and %d dimensions", op,
                               (int)in->ndim, (int)out->ndim);
    for (int i = 0; i < out->ndim; i++)
        if (out->shape[i] != in->shape[i] || out->shape[i] < 0)
            return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                   "cpu: %s: extent %lld differs from %lld in dimension %d",
                                   op, (long long)in->shape[i], (long long)out->shape[i], i);
    return FERRY_OK;
}

/* ---- kernel entries ------------------------------------------------------------------ */

ferry_status cpu_copy_strided(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                              const ferry_kernel_tensor *in)
{
    ferry_status st = cpu_check_pair("copy_strided", out, in);
    if (st != FERRY_OK)
        return st;
    if (out->dtype != in->dtype)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "cpu: copy_strided: dtypes %d and %d differ; use cast",
                               (int)in->dtype, (int)out->dtype);
    size_t size = cpu_elem_size(out->dtype);
    cpu_walk w;
    cpu_walk_init(&w, out->ndim, out->shape, out->strides, size, in->strides, size);
    if (w.numel == 0)
        return FERRY_OK;
    char *dst = cpu_data(out);
    const char *src = cpu_data(in);
    if (cpu_walk_is_flat(&w, size, size)) {
        memmove(dst, src, (size_t)w.numel * size);
        return FERRY_OK;
    }
    cpu_walk_run(&w, dst, src, cpu_copy_strided_by_size[cpu_log2_size(size)]);
    return FERRY_OK;
}

ferry_status cpu_cast(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                      const ferry_kernel_tensor *in)
{
    ferry_status st = cpu_check_pair("cast", out, in);
    if (st != FERRY_OK)
        return st;
    if (out->dtype == in->dtype)
        return cpu_copy_strided(ctx, device, out, in);
    size_t dsize = cpu_elem_size(out->dtype), ssize = cpu_elem_size(in->dtype);
    const cpu_cast_loops *loops = &cpu_cast_table[in->dtype][out->dtype];
    cpu_walk w;
    cpu_walk_init(&w, out->ndim, out->shape, out->strides, dsize, in->strides, ssize);
    if (w.numel == 0)
        return FERRY_OK;
    char *dst = cpu_data(out);
    const char *src = cpu_data(in);
    if (cpu_walk_is_flat(&w, dsize, ssize) && cpu_aligned(dst, dsize) &&
        cpu_aligned(src, ssize)) {
        /* Conversions are compute-heavy enough (float16 rounding) that a second thread
         * pays off from the same size as the elementwise ops. */
        int nt = cpu_threads_for(w.numel, 32768);
        if (nt <= 1) {
            loops->contig(dst, src, w.numel);
            return FERRY_OK;
        }
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            int64_t b = cpu_split(w.numel, nt, t, 64), e = cpu_split(w.numel, nt, t + 1, 64);
            if (e > b)
                loops->contig(dst + b * (int64_t)dsize, src + b * (int64_t)ssize, e - b);
        }
        return FERRY_OK;
    }
    cpu_walk_run(&w, dst, src, loops->strided);
    return FERRY_OK;
}

ferry_status cpu_fill(void *ctx, int32_t device, const ferry_kernel_tensor *out, const void *value)
{
    size_t size = cpu_elem_size(out->dtype);
    if (!size)
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "cpu: fill: unknown dtype %d",
                               (int)out->dtype);
    if (out->ndim < 0 || out->ndim > FERRY_MAX_DIMS)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT, "cpu: fill: %d dimensions",
                               (int)out->ndim);
    /* A local copy: `value` may be unaligned and may even lie inside `out`. */
    uint64_t v = 0;
    memcpy(&v, value, size);
    cpu_walk w;
    cpu_walk_init(&w, out->ndim, out->shape, out->strides, size, NULL, 0);
    if (w.numel == 0)
        return FERRY_OK;
    char *dst = cpu_data(out);
    int lg = cpu_log2_size(size);
    if (cpu_walk_is_flat(&w, size, 0) && cpu_aligned(dst, size)) {
        cpu_fill_contig_by_size[lg](dst, &v, w.numel);
        return FERRY_OK;
    }
    cpu_walk_run(&w, dst, (const char *)&v, cpu_copy_strided_by_size[lg]);
    return FERRY_OK;
}

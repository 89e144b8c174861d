/* Declarations shared by the files of the CPU backend. Private to backends/cpu: nothing
 * here is part of the plugin ABI, and every symbol is hidden so that the module exports
 * only ferry_backend_entry2. */
#ifndef FERRY_CPU_INTERNAL_H
#define FERRY_CPU_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ferry/backend.h>
#include <ferry/dtype_info.h>

#define CPU_HIDDEN __attribute__((visibility("hidden")))

/* The core's services, set once by ferry_backend_entry2 before any other entry runs. */
CPU_HIDDEN extern const ferry_host_api *cpu_host;

/* Named-kernel tables, one per op family (cpu_backend.c lists them). */
CPU_HIDDEN extern const ferry_named_entry cpu_named_sort[];

/* Kernel entries of the ops table (cpu_cast.c); same contracts as in backend.h. */
CPU_HIDDEN ferry_status cpu_fill(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                 const void *value);
CPU_HIDDEN ferry_status cpu_cast(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                 const ferry_kernel_tensor *in);
CPU_HIDDEN ferry_status cpu_copy_strided(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                         const ferry_kernel_tensor *in);

/* Op kernels (cpu_ops.c, cpu_reduce.c, cpu_matmul.c); contracts as in backend.h. */
CPU_HIDDEN ferry_status cpu_unary(void *ctx, int32_t device, ferry_unary_op op,
                                  const ferry_kernel_tensor *out,
                                  const ferry_kernel_tensor *in);
CPU_HIDDEN ferry_status cpu_binary(void *ctx, int32_t device, ferry_binary_op op,
                                   const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);
CPU_HIDDEN ferry_status cpu_binary_scalar(void *ctx, int32_t device, ferry_binary_op op,
                                          const ferry_kernel_tensor *out,
                                          const ferry_kernel_tensor *a,
                                          const ferry_kernel_scalar *b);
CPU_HIDDEN ferry_status cpu_reduce(void *ctx, int32_t device, ferry_reduce_op op,
                                   const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *in);
CPU_HIDDEN ferry_status cpu_matmul(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);

/* Named-op tables of the family files (cpu_<family>.c), one per line, listed in
 * cpu_named_tables (rows ending with {NULL, NULL}). */
CPU_HIDDEN extern const ferry_named_entry cpu_named_random[];
CPU_HIDDEN extern const ferry_named_entry cpu_named_index[];
CPU_HIDDEN extern const ferry_named_entry cpu_named_elementwise2[];
CPU_HIDDEN extern const ferry_named_entry cpu_named_select[];
CPU_HIDDEN extern const ferry_named_entry cpu_named_shape2[];

/* ---- helpers shared by the op kernels ------------------------------------------------
 * Names differ from cpu_cast.c's file-static helpers, which predate these. */

/* Threads the kernels may use: FERRY_NUM_THREADS when set to a positive number, else
 * OpenMP's default (every online CPU the process may run on). Read once. */
CPU_HIDDEN int cpu_max_threads(void);

/* Named-op tables, one per family (cpu_backend.c lists them). */
CPU_HIDDEN extern const ferry_named_entry cpu_named_reduce2[];

/* C = A B (acc: C += A B) of float (dbl: double) matrices, strides in elements of a form
 * BLIS accepts (unit along rows or columns). cpu_gemm picks the library (cpu_gemm.c);
 * cpu_blis_gemm always runs BLIS, or plain loops in a build without it. */
CPU_HIDDEN void cpu_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa,
                         int64_t csa, const void *b, int64_t rsb, int64_t csb, void *c,
                         int64_t rsc, int64_t csc, int threads, bool acc);
CPU_HIDDEN void cpu_blis_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a,
                              int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb,
                              void *c, int64_t rsc, int64_t csc, int threads, bool acc);
/* C = A B by ferry's own kernels when the product is small (every dim at most
 * CPU_SMALL_MAX_N, and at most 32^3 multiply-adds, 56^3 with AVX2, 128^3 with AVX-512)
 * and B and C have unit column strides, on up to `threads` threads (cpu_small_gemm.c);
 * false, having done nothing, otherwise. */
#define CPU_SMALL_MAX_N 128
CPU_HIDDEN bool cpu_small_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a,
                               int64_t rsa, int64_t csa, const void *b, int64_t rsb,
                               int64_t csb, void *c, int64_t rsc, int64_t csc, int threads);
/* C = A B by ferry's own packed kernels (cpu_pack_gemm.c), any strides, on up to
 * `threads` threads; false, having done nothing, on a CPU without AVX2 + FMA, for a
 * skinny product (m < 16, n < 32 or k < 32), or when its packing buffers cannot be
 * allocated. cpu_pack_gemm_isa: "avx512", "avx2", or NULL where there are no such
 * kernels. */
CPU_HIDDEN bool cpu_pack_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a,
                              int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb,
                              void *c, int64_t rsc, int64_t csc, int threads, bool acc);
/* The same for float16/bfloat16 (src) A and B, converted to float32 as they are packed,
 * into a float32 C. */
CPU_HIDDEN bool cpu_pack_gemm_half(ferry_dtype src, int64_t m, int64_t n, int64_t k,
                                   const void *a, int64_t rsa, int64_t csa, const void *b,
                                   int64_t rsb, int64_t csb, float *c, int64_t rsc, int64_t csc,
                                   int threads);
CPU_HIDDEN const char *cpu_pack_gemm_isa(void);
/* "haswell for small products, skx for large": BLIS's configurations in use. */
CPU_HIDDEN const char *cpu_blis_config_names(void);

/* Threads worth waking for `work` units when one thread should get at least `grain`:
 * an OpenMP region costs about 0.8 us (BASELINES.md), so small ops stay on the caller's
 * thread. Always >= 1. */
static inline int cpu_threads_for(int64_t work, int64_t grain)
{
    int64_t want = work / (grain > 0 ? grain : 1);
    int max = cpu_max_threads();
    return want <= 1 ? 1 : want < max ? (int)want : max;
}

/* Start of part `t` of `n` items split in `parts` pieces whose boundaries fall on
 * multiples of `align` items (so two threads rarely write one cache line). */
static inline int64_t cpu_split(int64_t n, int parts, int t, int64_t align)
{
    int64_t chunk = (n + parts - 1) / parts;
    chunk = (chunk + align - 1) / align * align;
    int64_t at = chunk * t;
    return at < n ? at : n;
}

/* The calling thread's part [*lo, *hi) of n items inside a parallel region (all of them
 * outside one), boundaries on multiples of `align` as cpu_split places them. */
static inline void cpu_thread_part(int64_t n, int64_t align, int64_t *lo, int64_t *hi)
{
    int t = 0, parts = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    parts = omp_get_num_threads();
#endif
    *lo = cpu_split(n, parts, t, align);
    *hi = cpu_split(n, parts, t + 1, align);
}

/* Bytes per element of a dtype; 0 for a value outside the enum. */
static inline size_t cpu_elem_size(ferry_dtype dt)
{
    return ferry_dtype_info_size(dt);
}

static inline char *cpu_data(const ferry_kernel_tensor *t)
{
    return (char *)t->buffer + t->byte_offset;
}

/* Whether every element of t sits at an address that is a multiple of its size, so
 * typed pointers may be used (a wrapped blob need not be). */
static inline bool cpu_is_aligned(const ferry_kernel_tensor *t)
{
    return ((uintptr_t)cpu_data(t) & (cpu_elem_size(t->dtype) - 1)) == 0;
}

/* Several operands of one shape walked together, reduced to the fewest dimensions that
 * visit the same elements in the same order (extent-1 dims dropped, a dim merged into
 * the next inner one when every operand steps over both as one run). Strides are in
 * elements. */
#define CPU_ND_MAX_OPS 3
typedef struct cpu_nd {
    int ndim;
    int nops;
    int64_t numel;
    int64_t shape[FERRY_MAX_DIMS];
    int64_t strides[CPU_ND_MAX_OPS][FERRY_MAX_DIMS];
} cpu_nd;

static inline void cpu_nd_init(cpu_nd *it, int ndim, const int64_t *shape, int nops,
                               const int64_t *const *strides)
{
    it->nops = nops;
    it->ndim = 0;
    it->numel = 1;
    for (int d = 0; d < ndim; d++)
        it->numel *= shape[d];
    if (it->numel == 0)
        return;
    /* Built innermost first, then reversed, so that merging looks at one neighbour. */
    int k = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] == 1)
            continue;
        bool merge = k > 0;
        for (int o = 0; merge && o < nops; o++)
            merge = strides[o][d] == it->strides[o][k - 1] * it->shape[k - 1];
        if (merge) {
            it->shape[k - 1] *= shape[d];
            continue;
        }
        it->shape[k] = shape[d];
        for (int o = 0; o < nops; o++)
            it->strides[o][k] = strides[o][d];
        k++;
    }
    it->ndim = k;
    for (int i = 0, j = k - 1; i < j; i++, j--) {
        int64_t t = it->shape[i];
        it->shape[i] = it->shape[j];
        it->shape[j] = t;
        for (int o = 0; o < nops; o++) {
            t = it->strides[o][i];
            it->strides[o][i] = it->strides[o][j];
            it->strides[o][j] = t;
        }
    }
}

/* Called once per innermost run: p[o] is operand o's first element of the run, n the
 * run's length, step[o] its stride in elements. */
typedef void (*cpu_nd_row_fn)(void *ctx, char *const *p, int64_t n, const int64_t *step);

/* Visits elements [lo, hi) of the walk's row-major order, run by run. A thread given a
 * slice starts mid-row when it must, so any split of the elements works. */
static inline void cpu_nd_walk(const cpu_nd *it, char *const *base, const size_t *esize,
                               int64_t lo, int64_t hi, cpu_nd_row_fn row, void *ctx)
{
    if (lo >= hi)
        return;
    char *p[CPU_ND_MAX_OPS];
    int64_t step[CPU_ND_MAX_OPS] = {0};
    if (it->ndim == 0) {
        for (int o = 0; o < it->nops; o++)
            p[o] = base[o];
        row(ctx, p, 1, step);
        return;
    }
    int last = it->ndim - 1;
    int64_t idx[FERRY_MAX_DIMS];
    int64_t off[CPU_ND_MAX_OPS] = {0};
    int64_t rem = lo;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % it->shape[d];
        rem /= it->shape[d];
        for (int o = 0; o < it->nops; o++)
            off[o] += idx[d] * it->strides[o][d];
    }
    for (int o = 0; o < it->nops; o++)
        step[o] = it->strides[o][last];
    int64_t left = hi - lo;
    for (;;) {
        int64_t n = it->shape[last] - idx[last];
        if (n > left)
            n = left;
        for (int o = 0; o < it->nops; o++)
            p[o] = base[o] + off[o] * (int64_t)esize[o];
        row(ctx, p, n, step);
        left -= n;
        if (left == 0)
            return;
        /* The run ended at its row's end: rewind it and carry into the outer dims. */
        for (int o = 0; o < it->nops; o++)
            off[o] -= idx[last] * step[o];
        idx[last] = 0;
        for (int d = last - 1; d >= 0; d--) {
            if (++idx[d] < it->shape[d]) {
                for (int o = 0; o < it->nops; o++)
                    off[o] += it->strides[o][d];
                break;
            }
            for (int o = 0; o < it->nops; o++)
                off[o] -= it->strides[o][d] * (it->shape[d] - 1);
            idx[d] = 0;
        }
    }
}

/* ferry_f16_to_f32 (half.h) without its loop over subnormals: the same bits for every
 * input, written as selects that gcc vectorizes. A subnormal half is mant * 2^-24, which
 * float32 holds exactly. */
static inline float cpu_f16_to_f32(uint16_t h)
{
    uint32_t em = h & 0x7fffu;
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    float sub = (float)em * 0x1p-24f;
    uint32_t sub_bits;
    memcpy(&sub_bits, &sub, sizeof sub_bits);
    uint32_t bits = em >= 0x7c00u ? (em << 13) | 0x7f800000u : (em << 13) + 0x38000000u;
    bits = em < 0x400u ? sub_bits : bits;
    bits |= sign;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* n float16 or bfloat16 elements to float32 and back, bit for bit as ferry/half.h
 * converts them, through the F16C instructions where the CPU has them (cpu_ops.c). The
 * op kernels of the 16-bit floats convert tiles of their operands with these and run the
 * float32 loops on them. */
CPU_HIDDEN void cpu_f16_to_f32_n(float *dst, const uint16_t *src, int64_t n);
CPU_HIDDEN void cpu_f32_to_f16_n(uint16_t *dst, const float *src, int64_t n);
CPU_HIDDEN void cpu_bf16_to_f32_n(float *dst, const uint16_t *src, int64_t n);
CPU_HIDDEN void cpu_f32_to_bf16_n(uint16_t *dst, const float *src, int64_t n);
/* n float16 (dt) or bfloat16 elements `cs` elements apart, from possibly unaligned src,
 * to float32: as the _n forms when they are contiguous and aligned. */
CPU_HIDDEN void cpu_half_to_f32_strided(ferry_dtype dt, float *dst, const char *src,
                                        int64_t cs, int64_t n);

/* Vectorizable loops get a second body built for x86-64-v3 (AVX2, FMA, F16C), picked
 * at load time (glibc ifunc); gcc only, as cpu_cast.c explains. */
#if defined(__x86_64__) && defined(__gnu_linux__) && defined(__GNUC__) && \
    !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(FERRY_CPU_NO_CLONES)
#define CPU_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#endif
#endif
#ifndef CPU_CLONES
#define CPU_CLONES
#endif

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

#endif /* FERRY_CPU_INTERNAL_H */

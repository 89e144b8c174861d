/* The macro layer that lets one kernel source compile as OpenCL C (built at run time by
 * backends/opencl), as CUDA C++ (nvcc, backends/cuda) and, for the launch parameter
 * structs and op numbers only, as host C, so both sides of a launch share one layout. */
#ifndef FERRY_KERNELS_H
#define FERRY_KERNELS_H

#if defined(__OPENCL_VERSION__)
#define FK_OPENCL 1
#elif defined(__CUDACC__)
#define FK_CUDA 1
#else
#define FK_HOST 1
#endif

/* ---- fixed-width types ------------------------------------------------------------- */
/* OpenCL C fixes the widths of char .. long on every device; CUDA and the host use the
 * C types of the same widths. OpenCL C has no `long long`, so nothing below spells it. */
#if defined(FK_OPENCL)
typedef char fk_i8;
typedef uchar fk_u8;
typedef short fk_i16;
typedef ushort fk_u16;
typedef int fk_i32;
typedef uint fk_u32;
typedef long fk_i64;
typedef ulong fk_u64;
#elif defined(FK_CUDA)
typedef signed char fk_i8;
typedef unsigned char fk_u8;
typedef short fk_i16;
typedef unsigned short fk_u16;
typedef int fk_i32;
typedef unsigned int fk_u32;
typedef long long fk_i64;
typedef unsigned long long fk_u64;
#else
#include <stdint.h>
typedef int8_t fk_i8;
typedef uint8_t fk_u8;
typedef int16_t fk_i16;
typedef uint16_t fk_u16;
typedef int32_t fk_i32;
typedef uint32_t fk_u32;
typedef int64_t fk_i64;
typedef uint64_t fk_u64;
#endif

/* ---- launch parameters, shared with the host ---------------------------------------- */

/* Dimensions a kernel walks after the host has dropped extent-1 dims and merged the
 * ones every operand steps over as one run; a launch needing more is refused, and the
 * core then runs it on the cpu backend. */
#define FK_MAX_DIMS 8

/* fk_geom.flags */
#define FK_CONTIG 1  /* every operand is dense and in order: element i is at offset + i */
#define FK_INDEX32 2 /* numel < 2^31: index arithmetic may use 32-bit division */

/* An elementwise launch over up to three operands of one shape (0 is the output).
 * Strides and offsets are in elements; a stride of 0 broadcasts. Every member is 8
 * bytes wide except the last two, so the layout is the same for every compiler. */
typedef struct fk_geom {
    fk_i64 shape[FK_MAX_DIMS];
    fk_i64 stride[3][FK_MAX_DIMS];
    fk_i64 offset[3];
    fk_i64 numel;
    /* FK_CONTIG launches that take it (FK_DENSE_FOR): elements per thread, each thread
     * one run of its own, launched over ceil(numel / chunk) threads (CPU devices, whose
     * compilers vectorize a thread's loop and not a loop across threads); 0: one
     * element per thread, grid-stride, so neighbouring threads read neighbouring
     * elements (GPUs). The planner leaves it 0; a backend sets it per device. */
    fk_i64 chunk;
    fk_i32 ndim;
    fk_i32 flags;
} fk_geom;

/* One pass of a reduction. The output elements are the kept dims (row-major over
 * kshape); each is reduced over the reduced dims (row-major over rshape), split into
 * nparts chunks of `chunk` elements, and each (output, chunk) pair writes one partial
 * at out_offset + kept offset + part * part_stride. A pass with nparts == 1 is final. */
typedef struct fk_rgeom {
    fk_i64 kshape[FK_MAX_DIMS];
    fk_i64 kstride_in[FK_MAX_DIMS];
    fk_i64 kstride_out[FK_MAX_DIMS];
    fk_i64 rshape[FK_MAX_DIMS];
    fk_i64 rstride[FK_MAX_DIMS];
    fk_i64 in_offset;
    fk_i64 out_offset;
    fk_i64 idx_in_offset;  /* argmax partials: where the input's indices start */
    fk_i64 idx_out_offset; /* argmax partials: where this pass writes its indices */
    fk_i64 nout;
    fk_i64 nred;
    fk_i64 chunk;
    fk_i64 nparts;
    fk_i64 part_stride;
    fk_i64 mean_count; /* final pass of a mean: the divisor; else 0 */
    fk_i32 nkept;
    fk_i32 nreduced;
    fk_i32 op;       /* FK_RED_MAX or FK_RED_MIN for the maxmin kernels */
    fk_i32 out_kind; /* final pass of a float accumulator: FK_OUT_ACC, _F16 or _BF16 */
    fk_i32 flags;    /* FK_RED_OUT_FAST */
    fk_i32 lanes;    /* ferry_sum_wg_*: threads per work-group (a power of two <= FK_WG_MAX) */
} fk_rgeom;

/* fk_rgeom.flags: thread w works on output w % nout and chunk w / nout, so neighbouring
 * threads read neighbouring columns (coalesced when the kept dim is the dense one);
 * otherwise output w / nparts and chunk w % nparts, each thread's chunk its own run. */
#define FK_RED_OUT_FAST 1
/* fk_rgeom.flags, float sums over one dim with one dense kept dim (column sums on CPUs):
 * ferry_sum_cols_* runs, thread w adding FK_RED_COLS_V neighbouring outputs (from
 * (w % ceil(nout / V)) * V) over chunk w / ceil(nout / V), so its inner loop is over
 * neighbouring elements, which a CPU compiler vectorizes. chunk is at most
 * FK_RED_COLS_MAX_CHUNK. */
#define FK_RED_COLS 2
#define FK_RED_COLS_V 16
#define FK_RED_COLS_MAX_CHUNK 1024

/* Most threads of a work-group the tree reductions (ferry_sum_wg_*) take. */
#define FK_WG_MAX 256

/* Most reduced elements one thread adds up; longer reductions take more passes. Keeps
 * the pairwise stack of a float sum within FK_PAIRWISE_DEPTH entries. */
#define FK_MAX_CHUNK ((fk_i64)1 << 20)

/* fk_rgeom.out_kind: the element type a final pass stores. */
#define FK_OUT_ACC 0
#define FK_OUT_F16 1
#define FK_OUT_BF16 2

/* A batched matmul: out[b, m, n] = sum over k of a[b, m, k] * b[b, k, n]. */
typedef struct fk_mgeom {
    fk_i64 batch, m, n, k;
    fk_i64 a_offset, a_sb, a_sm, a_sk;
    fk_i64 b_offset, b_sb, b_sk, b_sn;
    fk_i64 o_offset, o_sb, o_sm, o_sn;
} fk_mgeom;

/* Op numbers: the values of ferry_unary_op, ferry_binary_op and ferry_reduce_op in
 * ferry/backend.h (the host checks this at compile time). */
#define FK_UN_NEG 0
#define FK_UN_ABS 1
#define FK_UN_EXP 2
#define FK_UN_LOG 3
#define FK_UN_SQRT 4
#define FK_UN_SIN 5
#define FK_UN_COS 6
#define FK_UN_TANH 7
#define FK_UN_SIGMOID 8
#define FK_UN_RELU 9

#define FK_BIN_ADD 0
#define FK_BIN_SUB 1
#define FK_BIN_MUL 2
#define FK_BIN_DIV 3
#define FK_BIN_POW 4
#define FK_BIN_MAXIMUM 5
#define FK_BIN_MINIMUM 6
#define FK_BIN_EQ 7
#define FK_BIN_NE 8
#define FK_BIN_LT 9
#define FK_BIN_LE 10
#define FK_BIN_GT 11
#define FK_BIN_GE 12

#define FK_RED_SUM 0
#define FK_RED_MEAN 1
#define FK_RED_MAX 2
#define FK_RED_MIN 3
#define FK_RED_ARGMAX 4

#ifndef FK_HOST

/* Lets a test check that a failed program build reports the compiler's log. */
#ifdef FK_TEST_BUILD_FAILURE
#error "ferry kernels: build failure requested by FK_TEST_BUILD_FAILURE"
#endif

/* ---- language layer --------------------------------------------------------------- */

#if defined(FK_OPENCL)

#if defined(FK_HAS_FP64) && FK_HAS_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#define FK_KERNEL __kernel void
#define FK_GLOBAL __global
#define FK_FUNC static inline
#define FK_GLOBAL_ID ((fk_i64)get_global_id(0))
#define FK_GLOBAL_SIZE ((fk_i64)get_global_size(0))
#define FK_AS_FLOAT(u) as_float(u)
#define FK_AS_UINT(f) as_uint(f)
#define FK_LOCAL_ID ((fk_i64)get_local_id(0))
#define FK_GROUP_ID ((fk_i64)get_group_id(0))
#define FK_NUM_GROUPS ((fk_i64)get_num_groups(0))
#define FK_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
/* A work-group's array in local memory; at the kernel's outermost scope. */
#define FK_SHARED_ARRAY(T, name, n) __local T name[n]
/* Without cl_khr_fp16, `half` may still name the element type behind a pointer, and
 * vload_half / vstore_half convert (round to nearest even) with float arithmetic. */
typedef half fk_half;
#define FK_HALF_LOAD(p, i) vload_half((size_t)(i), (p))
#define FK_HALF_STORE(p, i, v) vstore_half((float)(v), (size_t)(i), (p))

#elif defined(FK_CUDA)

#include <cuda_fp16.h>
#ifndef FK_HAS_FP64
#define FK_HAS_FP64 1
#endif
#define FK_KERNEL extern "C" __global__ void
#define FK_GLOBAL
#define FK_FUNC static __device__ __forceinline__
#define FK_GLOBAL_ID ((fk_i64)blockIdx.x * (fk_i64)blockDim.x + (fk_i64)threadIdx.x)
#define FK_GLOBAL_SIZE ((fk_i64)gridDim.x * (fk_i64)blockDim.x)
#define FK_AS_FLOAT(u) __uint_as_float(u)
#define FK_AS_UINT(f) __float_as_uint(f)
#define FK_LOCAL_ID ((fk_i64)threadIdx.x)
#define FK_GROUP_ID ((fk_i64)blockIdx.x)
#define FK_NUM_GROUPS ((fk_i64)gridDim.x)
#define FK_BARRIER() __syncthreads()
#define FK_SHARED_ARRAY(T, name, n) __shared__ T name[n]
typedef __half fk_half;
#define FK_HALF_LOAD(p, i) __half2float((p)[i])
#define FK_HALF_STORE(p, i, v) ((p)[i] = __float2half_rn((float)(v)))

#endif

#ifndef FK_HAS_FP64
#define FK_HAS_FP64 0
#endif

/* Grid-stride loop: a launch covering n threads runs the body once per thread; a
 * capped grid still covers n. PoCL does not vectorize such a kernel across work-items
 * (a loop in the body keeps its work-item loop scalar): dense launches on CPU devices
 * go through FK_DENSE_FOR instead. */
#define FK_FOR_EACH(i, n) for (fk_i64 i = FK_GLOBAL_ID; i < (n); i += FK_GLOBAL_SIZE)

/* The elements 0 .. g.numel - 1 of a dense launch: with g.chunk > 0 this thread's run
 * of g.chunk elements, a plain counted loop that a CPU compiler vectorizes (float32 add
 * of 16M elements on PoCL ran at half the speed of a one-line kernel through the
 * grid-stride loop, and at its speed this way); with chunk 0 the grid-stride loop,
 * coalesced on GPUs. The body comes last, so commas in it need no parentheses. */
#define FK_DENSE_FOR(i, g, ...)                                                           \
    if ((g).chunk > 0) {                                                                  \
        fk_i64 s_##i = FK_GLOBAL_ID * (g).chunk;                                          \
        fk_i64 e_##i = (g).numel - s_##i < (g).chunk ? (g).numel : s_##i + (g).chunk;     \
        for (fk_i64 i = s_##i; i < e_##i; i++) {                                          \
            __VA_ARGS__                                                                   \
        }                                                                                 \
    } else {                                                                              \
        FK_FOR_EACH(i, (g).numel)                                                         \
        {                                                                                 \
            __VA_ARGS__                                                                   \
        }                                                                                 \
    }

/* ---- which kernels a build holds ---------------------------------------------------
 * All of them by default (nvcc compiles the lot). The OpenCL backend builds one program
 * per family and dtype instead, such as -DFK_FAMILY_ARITH=1 -DFK_SEL_f32=1 for
 * ferry_unary_f32, ferry_binary_f32 and ferry_compare_f32 alone: PoCL compiles every
 * kernel of a program when the program's binary is read for the disk cache (about 130
 * ms each), and a first float32 add should not wait for all 188.
 * (-DFK_ONE_FAMILY=1 marks such a build.) */
#if !defined(FK_ONE_FAMILY)
#define FK_FAMILY_COPY 1
#define FK_FAMILY_CAST 1
#define FK_FAMILY_ARITH 1
#define FK_FAMILY_REDUCE 1
#define FK_FAMILY_MATMUL 1
#define FK_SEL_ALL 1
#endif
#ifndef FK_FAMILY_COPY
#define FK_FAMILY_COPY 0
#endif
#ifndef FK_FAMILY_CAST
#define FK_FAMILY_CAST 0
#endif
#ifndef FK_FAMILY_ARITH
#define FK_FAMILY_ARITH 0
#endif
#ifndef FK_FAMILY_REDUCE
#define FK_FAMILY_REDUCE 0
#endif
#ifndef FK_FAMILY_MATMUL
#define FK_FAMILY_MATMUL 0
#endif

/* Named-op families (ferry_<family>.h, DESIGN.md "Open op set") wrap their kernels in
 * #if FK_NAMED_FAMILY(NAME): OpenCL builds one per program (-DFK_FAMILY_NAME=1), CUDA and
 * the host take every family. */
#ifdef FK_SEL_ALL
#define FK_NAMED_FAMILY(NAME) 1
#else
#define FK_NAMED_FAMILY(NAME) FK_FAMILY_##NAME
#endif

/* FK_SELECTED(M, sfx, ...) is M(sfx, ...) when dtype sfx is selected (-DFK_SEL_<sfx>=1,
 * or FK_SEL_ALL), else nothing: an unselected FK_SEL_<sfx> stays a token, and pasting
 * it names an empty macro. Its own paste macro, so no expansion nests in FK_CAT's. */
#define FK_SEL_CAT_(a, b) a##b
#define FK_SEL_CAT(a, b) FK_SEL_CAT_(a, b)
#ifdef FK_SEL_ALL
#define FK_SELECTED(M, sfx, ...) M(sfx, __VA_ARGS__)
#else
#define FK_SELECTED(M, sfx, ...) FK_SEL_CAT(FK_SEL_IF_, FK_SEL_##sfx)(M, sfx, __VA_ARGS__)
#endif
#define FK_SEL_IF_1(M, ...) M(__VA_ARGS__)
#define FK_SEL_IF_FK_SEL_bool(M, ...)
#define FK_SEL_IF_FK_SEL_u8(M, ...)
#define FK_SEL_IF_FK_SEL_i8(M, ...)
#define FK_SEL_IF_FK_SEL_i16(M, ...)
#define FK_SEL_IF_FK_SEL_i32(M, ...)
#define FK_SEL_IF_FK_SEL_i64(M, ...)
#define FK_SEL_IF_FK_SEL_f16(M, ...)
#define FK_SEL_IF_FK_SEL_bf16(M, ...)
#define FK_SEL_IF_FK_SEL_f32(M, ...)
#define FK_SEL_IF_FK_SEL_f64(M, ...)

/* ---- bfloat16: bit operations on the stored 16 bits ------------------------------- */

FK_FUNC float fk_bf16_to_f32(fk_u16 h)
{
    return FK_AS_FLOAT((fk_u32)h << 16);
}

/* Round to nearest even, as ferry/half.h; NaN stays a quiet NaN with its sign. */
FK_FUNC fk_u16 fk_f32_to_bf16(float f)
{
    fk_u32 x = FK_AS_UINT(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (fk_u16)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (fk_u16)(x >> 16);
}

/* ---- the dtype table ----------------------------------------------------------------
 * X(suffix, stored type, value type, wide unsigned type, value kind). The value type is
 * what arithmetic runs in (float for the 16-bit floats); integer arithmetic runs in the
 * wide unsigned type, where wrapping is defined, and is truncated on store. The kind
 * picks conversions: INT (bool, integers), F32 (float-valued) or F64. Suffixes are the
 * ferry dtype suffixes, in ferry_dtype order. */
#define FK_DTYPES_NO_F64(X)                    \
    X(bool, fk_u8, fk_u8, fk_u32, INT)         \
    X(u8, fk_u8, fk_u8, fk_u32, INT)           \
    X(i8, fk_i8, fk_i8, fk_u32, INT)           \
    X(i16, fk_i16, fk_i16, fk_u32, INT)        \
    X(i32, fk_i32, fk_i32, fk_u32, INT)        \
    X(i64, fk_i64, fk_i64, fk_u64, INT)        \
    X(f16, fk_half, float, fk_u32, F32)        \
    X(bf16, fk_u16, float, fk_u32, F32)        \
    X(f32, float, float, fk_u32, F32)
#if FK_HAS_FP64
#define FK_DTYPES(X) FK_DTYPES_NO_F64(X) X(f64, double, double, fk_u64, F64)
#define FK_DTYPES_WITH(X, S)                                                              \
    X(S, bool) X(S, u8) X(S, i8) X(S, i16) X(S, i32) X(S, i64) X(S, f16) X(S, bf16)       \
    X(S, f32) X(S, f64)
#else
#define FK_DTYPES(X) FK_DTYPES_NO_F64(X)
#define FK_DTYPES_WITH(X, S)                                                              \
    X(S, bool) X(S, u8) X(S, i8) X(S, i16) X(S, i32) X(S, i64) X(S, f16) X(S, bf16)       \
    X(S, f32)
#endif

/* Per-suffix pieces the preprocessor cannot derive from the table. */
#define FK_ST_bool fk_u8
#define FK_ST_u8 fk_u8
#define FK_ST_i8 fk_i8
#define FK_ST_i16 fk_i16
#define FK_ST_i32 fk_i32
#define FK_ST_i64 fk_i64
#define FK_ST_f16 fk_half
#define FK_ST_bf16 fk_u16
#define FK_ST_f32 float
#define FK_ST_f64 double

#define FK_VT_bool fk_u8
#define FK_VT_u8 fk_u8
#define FK_VT_i8 fk_i8
#define FK_VT_i16 fk_i16
#define FK_VT_i32 fk_i32
#define FK_VT_i64 fk_i64
#define FK_VT_f16 float
#define FK_VT_bf16 float
#define FK_VT_f32 float
#define FK_VT_f64 double

#define FK_KIND_bool INT
#define FK_KIND_u8 INT
#define FK_KIND_i8 INT
#define FK_KIND_i16 INT
#define FK_KIND_i32 INT
#define FK_KIND_i64 INT
#define FK_KIND_f16 F32
#define FK_KIND_bf16 F32
#define FK_KIND_f32 F32
#define FK_KIND_f64 F64

/* Whether an integer value is negative, without comparing an unsigned one with 0 (which
 * compilers warn about). */
#define FK_IS_NEG_bool(x) 0
#define FK_IS_NEG_u8(x) 0
#define FK_IS_NEG_i8(x) ((x) < 0)
#define FK_IS_NEG_i16(x) ((x) < 0)
#define FK_IS_NEG_i32(x) ((x) < 0)
#define FK_IS_NEG_i64(x) ((x) < 0)

/* Loading element i of a buffer as its value; bool bytes other than 0 read as 1. */
#define FK_LOAD_bool(p, i) ((fk_u8)((p)[i] != 0))
#define FK_LOAD_u8(p, i) ((p)[i])
#define FK_LOAD_i8(p, i) ((p)[i])
#define FK_LOAD_i16(p, i) ((p)[i])
#define FK_LOAD_i32(p, i) ((p)[i])
#define FK_LOAD_i64(p, i) ((p)[i])
#define FK_LOAD_f16(p, i) FK_HALF_LOAD(p, i)
#define FK_LOAD_bf16(p, i) fk_bf16_to_f32((p)[i])
#define FK_LOAD_f32(p, i) ((p)[i])
#define FK_LOAD_f64(p, i) ((p)[i])

/* Storing a value of the suffix's value type (the 16-bit floats round once here; bool
 * stores 0 or 1 whatever an integer op left, so bool add is `or` and mul is `and`). */
#define FK_STORE_bool(p, i, v) ((p)[i] = (fk_u8)((v) != 0))
#define FK_STORE_u8(p, i, v) ((p)[i] = (fk_u8)(v))
#define FK_STORE_i8(p, i, v) ((p)[i] = (fk_i8)(v))
#define FK_STORE_i16(p, i, v) ((p)[i] = (fk_i16)(v))
#define FK_STORE_i32(p, i, v) ((p)[i] = (fk_i32)(v))
#define FK_STORE_i64(p, i, v) ((p)[i] = (fk_i64)(v))
#define FK_STORE_f16(p, i, v) FK_HALF_STORE(p, i, v)
#define FK_STORE_bf16(p, i, v) ((p)[i] = fk_f32_to_bf16((float)(v)))
#define FK_STORE_f32(p, i, v) ((p)[i] = (float)(v))
#define FK_STORE_f64(p, i, v) ((p)[i] = (double)(v))

/* ---- conversions (the ferry_backend_ops.cast contract) ------------------------------
 * float -> integer truncates toward zero and saturates, NaN gives 0: the C conversion
 * only runs strictly inside the target's range, where it is defined. The bounds are
 * powers of two, exact in float; F32 bounds are float literals so that a device without
 * fp64 never sees a double. Integer -> integer wraps (through the unsigned type of the
 * target width). Anything -> bool is != 0 (NaN is true). */
#define FK_SAT(x, T, lo, hi, tmin, tmax)                                                  \
    ((x) != (x) ? (T)0 : (x) >= (hi) ? (T)(tmax) : (x) <= (lo) ? (T)(tmin) : (T)(x))
#define FK_I64_MIN ((fk_i64)((fk_u64)1 << 63))
#define FK_I64_MAX ((fk_i64)(((fk_u64)1 << 63) - 1u))

#define FK_TO_bool_INT(x) ((fk_u8)((x) != 0))
#define FK_TO_bool_F32(x) ((fk_u8)((x) != 0.0f))
#define FK_TO_bool_F64(x) ((fk_u8)((x) != 0.0))
#define FK_TO_u8_INT(x) ((fk_u8)(x))
#define FK_TO_u8_F32(x) FK_SAT(x, fk_u8, 0.0f, 256.0f, 0, 255)
#define FK_TO_u8_F64(x) FK_SAT(x, fk_u8, 0.0, 256.0, 0, 255)
#define FK_TO_i8_INT(x) ((fk_i8)(fk_u8)(x))
#define FK_TO_i8_F32(x) FK_SAT(x, fk_i8, -128.0f, 128.0f, -128, 127)
#define FK_TO_i8_F64(x) FK_SAT(x, fk_i8, -128.0, 128.0, -128, 127)
#define FK_TO_i16_INT(x) ((fk_i16)(fk_u16)(x))
#define FK_TO_i16_F32(x) FK_SAT(x, fk_i16, -32768.0f, 32768.0f, -32768, 32767)
#define FK_TO_i16_F64(x) FK_SAT(x, fk_i16, -32768.0, 32768.0, -32768, 32767)
#define FK_TO_i32_INT(x) ((fk_i32)(fk_u32)(x))
#define FK_TO_i32_F32(x)                                                                  \
    FK_SAT(x, fk_i32, -2147483648.0f, 2147483648.0f, (-2147483647 - 1), 2147483647)
#define FK_TO_i32_F64(x)                                                                  \
    FK_SAT(x, fk_i32, -2147483648.0, 2147483648.0, (-2147483647 - 1), 2147483647)
#define FK_TO_i64_INT(x) ((fk_i64)(fk_u64)(x))
#define FK_TO_i64_F32(x)                                                                  \
    FK_SAT(x, fk_i64, -9223372036854775808.0f, 9223372036854775808.0f, FK_I64_MIN, FK_I64_MAX)
#define FK_TO_i64_F64(x)                                                                  \
    FK_SAT(x, fk_i64, -9223372036854775808.0, 9223372036854775808.0, FK_I64_MIN, FK_I64_MAX)
/* To the 16-bit floats through float, as the cpu backend: float64 and int64 round twice,
 * which for float16 matters only at exact float32 ties. */
#define FK_TO_f16_INT(x) ((float)(x))
#define FK_TO_f16_F32(x) ((float)(x))
#define FK_TO_f16_F64(x) ((float)(x))
#define FK_TO_bf16_INT(x) ((float)(x))
#define FK_TO_bf16_F32(x) ((float)(x))
#define FK_TO_bf16_F64(x) ((float)(x))
#define FK_TO_f32_INT(x) ((float)(x))
#define FK_TO_f32_F32(x) ((float)(x))
#define FK_TO_f32_F64(x) ((float)(x))
#define FK_TO_f64_INT(x) ((double)(x))
#define FK_TO_f64_F32(x) ((double)(x))
#define FK_TO_f64_F64(x) ((double)(x))

#define FK_CONVERT__(D, kind, x) FK_TO_##D##_##kind(x)
#define FK_CONVERT_(D, kind, x) FK_CONVERT__(D, kind, x)
/* A value of S's value type to D's value type. */
#define FK_CONVERT(S, D, x) FK_CONVERT_(D, FK_KIND_##S, x)

#define FK_CAT_(a, b) a##b
#define FK_CAT(a, b) FK_CAT_(a, b)

/* ---- strided indexing --------------------------------------------------------------- */

/* Element offsets of flat index i (row-major over g->shape) in the first `nops`
 * operands of a strided launch. Dims are peeled innermost first; the outermost takes
 * what is left, so it needs no division. */
FK_FUNC void fk_offsets(const fk_geom *g, fk_i64 i, int nops, fk_i64 *off)
{
    for (int k = 0; k < nops; k++)
        off[k] = g->offset[k];
    if (g->flags & FK_INDEX32) {
        fk_u32 r = (fk_u32)i;
        for (int d = g->ndim - 1; d > 0; d--) {
            fk_u32 ext = (fk_u32)g->shape[d];
            fk_u32 q = r / ext;
            fk_i64 c = (fk_i64)(r - q * ext);
            for (int k = 0; k < nops; k++)
                off[k] += c * g->stride[k][d];
            r = q;
        }
        if (g->ndim > 0)
            for (int k = 0; k < nops; k++)
                off[k] += (fk_i64)r * g->stride[k][0];
        return;
    }
    fk_i64 r = i;
    for (int d = g->ndim - 1; d > 0; d--) {
        fk_i64 q = r / g->shape[d];
        fk_i64 c = r - q * g->shape[d];
        for (int k = 0; k < nops; k++)
            off[k] += c * g->stride[k][d];
        r = q;
    }
    if (g->ndim > 0)
        for (int k = 0; k < nops; k++)
            off[k] += r * g->stride[k][0];
}

/* Runs the body for every element of launch g with off[k] (declared here) the element
 * offset in operand k < nops: a dense launch through FK_DENSE_FOR, with no index
 * arithmetic, anything else grid-stride through fk_offsets. */
#define FK_EACH(g, nops, off, ...)                                                        \
    if ((g).flags & FK_CONTIG) {                                                          \
        FK_DENSE_FOR(i_, g, fk_i64 off[3]; off[0] = (g).offset[0] + i_;                   \
                     off[1] = (g).offset[1] + i_; off[2] = (g).offset[2] + i_;            \
                     __VA_ARGS__)                                                         \
    } else {                                                                              \
        FK_FOR_EACH(i_, (g).numel)                                                        \
        {                                                                                 \
            fk_i64 off[3];                                                                \
            fk_offsets(&(g), i_, (nops), off);                                            \
            __VA_ARGS__                                                                   \
        }                                                                                 \
    }

/* Declares off[3], the element offsets of flat index i in up to three operands. The
 * dense case stays inline: behind a call PoCL no longer vectorizes the kernel across
 * work-items, and float32 add of 16M elements ran 3 to 5 times slower. */
#define FK_AT(g, i, nops, off)                                                            \
    fk_i64 off[3];                                                                        \
    if ((g).flags & FK_CONTIG) {                                                          \
        off[0] = (g).offset[0] + (i);                                                     \
        off[1] = (g).offset[1] + (i);                                                     \
        off[2] = (g).offset[2] + (i);                                                     \
    } else {                                                                              \
        fk_offsets(&(g), (i), (nops), off);                                               \
    }

#endif /* !FK_HOST */

#endif /* FERRY_KERNELS_H */

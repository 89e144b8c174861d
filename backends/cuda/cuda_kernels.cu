/* The CUDA backend's kernel entries: fill, cast, strided copy, unary, binary, reduce and the
 * matmul kernel, compiled by nvcc from the portable source in backends/kernels that the
 * OpenCL backend runs on PoCL, and planned by the same fk_plan.c, so the semantics match. */
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

#include "ferry_elementwise.h"
#include "ferry_matmul.h"
#include "ferry_reduce.h"

/* ---- the kernels by dtype ------------------------------------------------------------
 * Host stubs of the shared kernels, indexed as ferry_dtype (the kernels' dtype table is in
 * that order) and launched through cudaLaunchKernel, so one launch path serves every
 * element type. */

#define CUDA_FN(family, sfx) (const void *)ferry_##family##_##sfx
#define CUDA_UNARY_FN(sfx, st, vt, wt, kind) CUDA_FN(unary, sfx),
#define CUDA_BINARY_FN(sfx, st, vt, wt, kind) CUDA_FN(binary, sfx),
#define CUDA_COMPARE_FN(sfx, st, vt, wt, kind) CUDA_FN(compare, sfx),
#define CUDA_BINARY_SCALAR_FN(sfx, st, vt, wt, kind) CUDA_FN(binary_scalar, sfx),
#define CUDA_COMPARE_SCALAR_FN(sfx, st, vt, wt, kind) CUDA_FN(compare_scalar, sfx),
#define CUDA_SUM_FN(sfx, st, vt, wt, kind) CUDA_FN(sum, sfx),
#define CUDA_MAXMIN_FN(sfx, st, vt, wt, kind) CUDA_FN(maxmin, sfx),
#define CUDA_ARGMAX_FN(sfx, st, vt, wt, kind) CUDA_FN(argmax, sfx),
#define CUDA_ARGMAX_PART_FN(sfx, st, vt, wt, kind) CUDA_FN(argmax_part, sfx),
#define CUDA_SUM_WG_FN(sfx, st, vt, wt, kind) CUDA_FN(sum_wg, sfx),
#define CUDA_MATMUL_FN(sfx, st, vt, wt, kind) CUDA_FN(matmul, sfx),
#define CUDA_CAST_FN(S, D) (const void *)ferry_cast_##S##_##D,
#define CUDA_CAST_ROW(sfx, st, vt, wt, kind) {FK_DTYPES_WITH(CUDA_CAST_FN, sfx)},
#define CUDA_WIDTH_FN(family) {CUDA_FN(family, w8), CUDA_FN(family, w16), CUDA_FN(family, w32), \
                               CUDA_FN(family, w64)}

static const void *const fill_fns[] = CUDA_WIDTH_FN(fill);
static const void *const copy_fns[] = CUDA_WIDTH_FN(copy);
static const void *const cast_fns[][FERRY_NUM_DTYPES] = {FK_DTYPES(CUDA_CAST_ROW)};
static const void *const unary_fns[] = {FK_DTYPES(CUDA_UNARY_FN)};
static const void *const binary_fns[] = {FK_DTYPES(CUDA_BINARY_FN)};
static const void *const compare_fns[] = {FK_DTYPES(CUDA_COMPARE_FN)};
static const void *const binary_scalar_fns[] = {FK_DTYPES(CUDA_BINARY_SCALAR_FN)};
static const void *const compare_scalar_fns[] = {FK_DTYPES(CUDA_COMPARE_SCALAR_FN)};
static const void *const matmul_fns[] = {FK_DTYPES(CUDA_MATMUL_FN)};
/* Indexed by fk_plan.h's reduce family, then dtype. */
static const void *const reduce_fns[][FERRY_NUM_DTYPES] = {
    {FK_DTYPES(CUDA_SUM_FN)}, {FK_DTYPES(CUDA_MAXMIN_FN)}, {FK_DTYPES(CUDA_ARGMAX_FN)}};
static const void *const argmax_part_fns[] = {FK_DTYPES(CUDA_ARGMAX_PART_FN)};
static const void *const sum_wg_fns[] = {FK_DTYPES(CUDA_SUM_WG_FN)};

#define CUDA_COUNT(a) (sizeof(a) / sizeof((a)[0]))
static_assert(CUDA_COUNT(cast_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(unary_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(binary_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(compare_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(binary_scalar_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(compare_scalar_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(matmul_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(argmax_part_fns) == FERRY_NUM_DTYPES &&
                  CUDA_COUNT(sum_wg_fns) == FERRY_NUM_DTYPES,
              "one kernel per dtype, float64 included");
static_assert(FK_PLAN_SUM == 0 && FK_PLAN_MAXMIN == 1 && FK_PLAN_ARGMAX == 2,
              "reduce_fns rows follow the planner's families");

/* ---- launching ----------------------------------------------------------------------- */

#define CUDA_BLOCK 256
/* Blocks per multiprocessor at most: enough to keep it full through the tail of a launch;
 * past that the kernels' grid-stride loops give each thread more elements. */
#define CUDA_BLOCKS_PER_SM 32
/* Threads a reduction pass aims for per multiprocessor (the most one can hold). */
#define CUDA_REDUCE_THREADS_PER_SM 2048

static fk_plan_ctx cuda_ctx(int32_t dev)
{
    fk_plan_ctx c = {cuda_host, "cuda", dev};
    return c;
}

/* Launches kernel `fn` (named family_sfx[_sfx2] in messages) over n threads on the
 * device's stream; args are the addresses of its arguments in order. */
static ferry_status launch(int32_t dev, cudaStream_t stream, const void *fn, const char *family,
                           const char *sfx, const char *sfx2, int64_t n, void **args)
{
    if (n <= 0)
        return FERRY_OK;
    int64_t blocks = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * CUDA_BLOCKS_PER_SM;
    if (blocks > most)
        blocks = most;
    /* The runtime's last-error slot also holds failures that other calls on this thread
     * have already returned to their callers (cudaMemGetInfo in device_info, say): those
     * are dropped first so they are not blamed on this launch. Sticky errors stay, and
     * cudaLaunchKernel returns them itself. */
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(CUDA_BLOCK), args, 0, stream);
    /* Launch errors (a bad configuration, no image for this GPU) surface here rather than
     * at the next synchronisation. */
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e == cudaSuccess)
        return FERRY_OK;
    char call[96];
    snprintf(call, sizeof call, "cudaLaunchKernel(ferry_%s_%s%s%s)", family, sfx,
             sfx2 ? "_" : "", sfx2 ? sfx2 : "");
    return cuda_fail(dev, call, e);
}

/* An elementwise launch over g.numel threads. */
static ferry_status launch_geom(int32_t dev, cudaStream_t stream, const void *fn,
                                const char *family, const char *sfx, const char *sfx2,
                                const fk_geom *g, void **args)
{
    return launch(dev, stream, fn, family, sfx, sfx2, g->numel, args);
}

/* ---- fill and copy ------------------------------------------------------------------- */

ferry_status cuda_fill(int32_t dev, const ferry_kernel_tensor *out, const void *value)
{
    fk_plan_ctx c = cuda_ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    const ferry_kernel_tensor *ops[1] = {out};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, out->dtype);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 1, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    /* Bits, not numbers: one kernel per width. `value` may be unaligned. */
    size_t size = fk_dtype_size(out->dtype);
    uint64_t bits = 0;
    memcpy(&bits, value, size);
    const unsigned char *bytes = (const unsigned char *)&bits;
    bool one_byte = true;
    for (size_t i = 1; i < size; i++)
        one_byte = one_byte && bytes[i] == bytes[0];
    if ((g.flags & FK_CONTIG) && one_byte) { /* zeros, mostly: the copy engine's memset */
        cudaError_t e = cudaMemsetAsync((char *)out->buffer + (size_t)g.offset[0] * size,
                                        bytes[0], (size_t)g.numel * size, stream);
        return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaMemsetAsync", e);
    }
    int lg = fk_width_log2(size);
    static const char *const widths[4] = {"w8", "w16", "w32", "w64"};
    void *buf = out->buffer;
    /* The kernel's value parameter has the element's width; cudaLaunchKernel reads that
     * many bytes from the start of `bits` (little-endian host and device). */
    void *args[3] = {&buf, &bits, &g};
    return launch_geom(dev, stream, fill_fns[lg], "fill", widths[lg], NULL, &g, args);
}

ferry_status cuda_copy_strided(int32_t dev, const ferry_kernel_tensor *out,
                               const ferry_kernel_tensor *in)
{
    fk_plan_ctx c = cuda_ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_check_copy(&c, out, in);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    size_t size = fk_dtype_size(out->dtype);
    size_t nbytes = (size_t)g.numel * size;
    if ((g.flags & FK_CONTIG) && !fk_plan_overlap(out, in, nbytes)) {
        cudaError_t e = cudaMemcpyAsync((char *)out->buffer + out->byte_offset,
                                        (const char *)in->buffer + in->byte_offset, nbytes,
                                        cudaMemcpyDeviceToDevice, stream);
        return e == cudaSuccess ? FERRY_OK
                                : cuda_fail(dev, "cudaMemcpyAsync (device to device)", e);
    }
    int lg = fk_width_log2(size);
    static const char *const widths[4] = {"w8", "w16", "w32", "w64"};
    void *o = out->buffer, *i = in->buffer;
    void *args[3] = {&o, &i, &g};
    return launch_geom(dev, stream, copy_fns[lg], "copy", widths[lg], NULL, &g, args);
}

/* ---- cast, unary, binary ------------------------------------------------------------- */

ferry_status cuda_cast(int32_t dev, const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    if (out->dtype == in->dtype)
        return cuda_copy_strided(dev, out, in);
    fk_plan_ctx c = cuda_ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_check_cast(&c, out, in);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    void *o = out->buffer, *i = in->buffer;
    void *args[3] = {&o, &i, &g};
    return launch_geom(dev, stream, cast_fns[in->dtype][out->dtype], "cast",
                       fk_dtype_sfx[in->dtype], fk_dtype_sfx[out->dtype], &g, args);
}

ferry_status cuda_unary(int32_t dev, ferry_unary_op op, const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *in)
{
    fk_plan_ctx c = cuda_ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_check_unary(&c, op, out, in);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    void *o = out->buffer, *i = in->buffer;
    fk_i32 op32 = (fk_i32)op;
    void *args[4] = {&o, &i, &g, &op32};
    return launch_geom(dev, stream, unary_fns[in->dtype], "unary", fk_dtype_sfx[in->dtype], NULL,
                       &g, args);
}

ferry_status cuda_binary(int32_t dev, ferry_binary_op op, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    fk_plan_ctx c = cuda_ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    bool compare = false;
    const ferry_kernel_tensor *ops[3] = {out, a, b};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_check_binary(&c, op, out, a, b, &compare);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 3, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    void *o = out->buffer, *x = a->buffer, *y = b->buffer;
    fk_i32 op32 = (fk_i32)op;
    void *args[5] = {&o, &x, &y, &g, &op32};
    const void *fn = (compare ? compare_fns : binary_fns)[a->dtype];
    return launch_geom(dev, stream, fn, compare ? "compare" : "binary", fk_dtype_sfx[a->dtype],
                       NULL, &g, args);
}

/* The scalar is a kernel parameter: nothing to upload, nothing to wait for. */
ferry_status cuda_binary_scalar(int32_t dev, ferry_binary_op op, const ferry_kernel_tensor *out,
                                const ferry_kernel_tensor *a, const ferry_kernel_scalar *b)
{
    fk_plan_ctx c = cuda_ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    bool compare = false;
    /* 8-byte aligned: cudaLaunchKernel reads the parameter's width from its start. */
    unsigned long long ybits = 0;
    size_t ysize = 0;
    const ferry_kernel_tensor *ops[2] = {out, a};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_check_binary_scalar(&c, op, out, a, b, &compare, (unsigned char *)&ybits,
                                         &ysize);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    void *o = out->buffer, *x = a->buffer;
    fk_i32 op32 = (fk_i32)op;
    void *args[5] = {&o, &x, &g, &op32, &ybits};
    const void *fn = (compare ? compare_scalar_fns : binary_scalar_fns)[a->dtype];
    return launch_geom(dev, stream, fn, compare ? "compare_scalar" : "binary_scalar",
                       fk_dtype_sfx[a->dtype], NULL, &g, args);
}

/* ---- reduce -------------------------------------------------------------------------- */

ferry_status cuda_reduce(int32_t dev, ferry_reduce_op op, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *in)
{
    fk_plan_ctx c = cuda_ctx(dev);
    cudaStream_t stream;
    fk_reduce_plan p;
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_reduce(&c, op, out, in,
                            (int64_t)cuda_sm_count(dev) * CUDA_REDUCE_THREADS_PER_SM,
                            CUDA_BLOCK, &p);
    if (st != FERRY_OK || p.empty)
        return st;
    /* Partials live in stream-ordered memory: each call has its own, so calls from several
     * threads may interleave their passes on the one stream. */
    void *scratch = NULL;
    if (p.scratch_bytes > 0 && (st = cuda_temp_alloc(dev, stream, p.scratch_bytes, &scratch)) !=
                                   FERRY_OK)
        return st;
    static const char *const family_names[3] = {"sum", "maxmin", "argmax"};
    void *src = in->buffer, *src_idx = NULL;
    while (st == FERRY_OK) {
        void *dst = p.final ? out->buffer : scratch;
        const char *sfx = fk_dtype_sfx[p.kdtype];
        if (p.pass > 0 && p.family == FK_PLAN_ARGMAX) {
            void *args[5] = {&src, &src_idx, &dst, &dst, &p.g};
            st = launch(dev, stream, argmax_part_fns[p.kdtype], "argmax_part", sfx, NULL,
                        p.threads, args);
        } else if (p.family == FK_PLAN_ARGMAX) {
            void *args[4] = {&src, &dst, &dst, &p.g};
            st = launch(dev, stream, reduce_fns[p.family][p.kdtype], "argmax", sfx, NULL,
                        p.threads, args);
        } else if (p.wg) {
            /* Blocks of CUDA_BLOCK threads, the lanes the planner was given. */
            void *args[3] = {&src, &dst, &p.g};
            st = launch(dev, stream, sum_wg_fns[p.kdtype], "sum_wg", sfx, NULL, p.threads, args);
        } else {
            void *args[3] = {&src, &dst, &p.g};
            st = launch(dev, stream, reduce_fns[p.family][p.kdtype], family_names[p.family], sfx,
                        NULL, p.threads, args);
        }
        if (p.final || st != FERRY_OK)
            break;
        src = src_idx = scratch;
        fk_plan_reduce_next(&p);
    }
    cuda_temp_free(dev, stream, scratch);
    return st;
}

/* ---- matmul -------------------------------------------------------------------------- */

ferry_status cuda_matmul_kernel(int32_t dev, cudaStream_t stream, const ferry_kernel_tensor *out,
                                const ferry_kernel_tensor *a, const ferry_kernel_tensor *b,
                                const fk_mgeom *g)
{
    void *o = out->buffer, *x = a->buffer, *y = b->buffer;
    fk_mgeom gm = *g;
    void *args[4] = {&o, &x, &y, &gm};
    return launch(dev, stream, matmul_fns[out->dtype], "matmul", fk_dtype_sfx[out->dtype], NULL,
                  g->batch * g->m * g->n, args);
}

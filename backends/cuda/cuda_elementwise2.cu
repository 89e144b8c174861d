/* CUDA entries of the ELEM2 family (ferry/ops/elementwise2.h): the portable kernels of
 * backends/kernels/ferry_elementwise2.h that OpenCL runs, each launch planned by
 * fk_plan.c (fk_plan_unary2 and friends) as OpenCL's, so both accept the same calls. */
#include <stdio.h>
#include <string.h>

#include <ferry/ops/elementwise2.h>

#include "cuda_internal.h"

#include "ferry_elementwise2.h"

/* Host stubs by dtype (ferry_dtype order, the kernels' table order), launched through
 * cudaLaunchKernel as cuda_kernels.cu launches the built-in families. */
#define E2_FN(family, sfx) (const void *)ferry_##family##_##sfx
#define E2_UN_FN(sfx, st, vt, wt, kind) E2_FN(un2, sfx),
#define E2_UNB_FN(sfx, st, vt, wt, kind) E2_FN(un2b, sfx),
#define E2_BIN_FN(sfx, st, vt, wt, kind) E2_FN(bin2, sfx),
#define E2_BINB_FN(sfx, st, vt, wt, kind) E2_FN(bin2b, sfx),

static const void *const un2_fns[] = {FK_DTYPES(E2_UN_FN)};
static const void *const un2b_fns[] = {FK_DTYPES(E2_UNB_FN)};
static const void *const bin2_fns[] = {FK_DTYPES(E2_BIN_FN)};
static const void *const bin2b_fns[] = {FK_DTYPES(E2_BINB_FN)};
static const void *const where_fns[4] = {E2_FN(where, w8), E2_FN(where, w16),
                                         E2_FN(where, w32), E2_FN(where, w64)};

#define E2_COUNT(a) (sizeof(a) / sizeof((a)[0]))
static_assert(E2_COUNT(un2_fns) == FERRY_NUM_DTYPES && E2_COUNT(un2b_fns) == FERRY_NUM_DTYPES &&
                  E2_COUNT(bin2_fns) == FERRY_NUM_DTYPES &&
                  E2_COUNT(bin2b_fns) == FERRY_NUM_DTYPES,
              "one kernel per dtype, float64 included");

#define E2_BLOCK 256
#define E2_BLOCKS_PER_SM 32 /* past that the grid-stride loops take more elements */

static fk_plan_ctx ctx(int32_t dev)
{
    fk_plan_ctx c = {cuda_host, "cuda", dev};
    return c;
}

/* Launches `fn` (named in messages) over n threads on the device's stream. */
static ferry_status launch(int32_t dev, cudaStream_t stream, const void *fn, const char *name,
                           int64_t n, void **args)
{
    if (n <= 0)
        return FERRY_OK;
    int64_t blocks = (n + E2_BLOCK - 1) / E2_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * E2_BLOCKS_PER_SM;
    if (blocks > most)
        blocks = most;
    /* Stale non-sticky errors of earlier calls are not this launch's. */
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(E2_BLOCK), args, 0, stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e == cudaSuccess)
        return FERRY_OK;
    char call[96];
    snprintf(call, sizeof call, "cudaLaunchKernel(%s)", name);
    return cuda_fail(dev, call, e);
}

static ferry_status unary2(int32_t dev, const ferry_op_args *args)
{
    fk_plan_ctx c = ctx(dev);
    cudaStream_t stream;
    fk_elem2_launch l;
    ferry_status st = fk_plan_unary2(&c, args, &l);
    if (st == FERRY_OK)
        st = cuda_use(dev, &stream);
    if (st != FERRY_OK || l.g.numel == 0)
        return st;
    bool dbl = l.param_size == sizeof(double);
    void *a[6] = {&l.bufs[0], &l.bufs[1], &l.g, &l.op, dbl ? (void *)&l.pd[0] : (void *)&l.pf[0],
                  dbl ? (void *)&l.pd[1] : (void *)&l.pf[1]};
    return launch(dev, stream, (l.to_bool ? un2b_fns : un2_fns)[l.dtype], l.name, l.g.numel, a);
}

static ferry_status binary2(int32_t dev, const ferry_op_args *args)
{
    fk_plan_ctx c = ctx(dev);
    cudaStream_t stream;
    fk_elem2_launch l;
    ferry_status st = fk_plan_binary2(&c, args, &l);
    if (st == FERRY_OK)
        st = cuda_use(dev, &stream);
    if (st != FERRY_OK || l.g.numel == 0)
        return st;
    void *a[5] = {&l.bufs[0], &l.bufs[1], &l.bufs[2], &l.g, &l.op};
    return launch(dev, stream, (l.to_bool ? bin2b_fns : bin2_fns)[l.dtype], l.name, l.g.numel, a);
}

static ferry_status where(int32_t dev, const ferry_op_args *args)
{
    fk_plan_ctx c = ctx(dev);
    cudaStream_t stream;
    fk_elem2_launch l;
    ferry_status st = fk_plan_where(&c, args, &l);
    if (st == FERRY_OK)
        st = cuda_use(dev, &stream);
    if (st != FERRY_OK || l.g.numel == 0)
        return st;
    void *a[6] = {&l.bufs[0], &l.bufs[1], &l.bufs[2], &l.g, &l.b_buffer, &l.gb};
    return launch(dev, stream, where_fns[l.width_log2], l.name, l.g.numel, a);
}

static ferry_status cuda_unary2(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(unary2(dev, args))
}

static ferry_status cuda_binary2(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(binary2(dev, args))
}

static ferry_status cuda_where(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(where(dev, args))
}

const ferry_named_entry cuda_named_elementwise2[] = {
    {"ferry.unary2", cuda_unary2},
    {"ferry.binary2", cuda_binary2},
    {"ferry.where", cuda_where},
    {NULL, NULL},
};

// Selection on CUDA (ferry/ops/select.h): the kernels of backends/kernels/ferry_select.h,
// the same source and the same planning (fk_plan.c) as OpenCL, one launch per op on the
// device's stream.
#include <ferry/ops/select.h>

#include "cuda_internal.h"

#include "ferry_select.h"

#define CUDA_SELECT_BLOCK 256

typedef void (*select_kernel)(void *, const void *, const fk_i64 *, fk_sgeom);
static const select_kernel selects[4] = {
    (select_kernel)ferry_masked_select_w1, (select_kernel)ferry_masked_select_w2,
    (select_kernel)ferry_masked_select_w4, (select_kernel)ferry_masked_select_w8};
static const select_kernel scatters[4] = {
    (select_kernel)ferry_masked_scatter_w1, (select_kernel)ferry_masked_scatter_w2,
    (select_kernel)ferry_masked_scatter_w4, (select_kernel)ferry_masked_scatter_w8};

static ferry_status launch(int32_t dev, const void *fn, void **args, int64_t numel,
                           const char *what)
{
    if (numel == 0)
        return FERRY_OK;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    int64_t blocks = (numel + CUDA_SELECT_BLOCK - 1) / CUDA_SELECT_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * 32;
    if (blocks > most)
        blocks = most;
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(CUDA_SELECT_BLOCK), args, 0,
                                     stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, what, e);
}

static ferry_status run_nonzero(int32_t dev, const ferry_op_args *a)
{
    fk_plan_ctx c = {cuda_host, "cuda", dev};
    fk_sgeom g;
    ferry_status st = fk_plan_nonzero(&c, a, &g);
    if (st != FERRY_OK)
        return st;
    void *out = a->tensors[0].buffer;
    const void *pos = a->tensors[1].buffer;
    void *args[] = {&out, &pos, &g};
    return launch(dev, (const void *)ferry_nonzero_rows, args, g.numel,
                  "cudaLaunchKernel(ferry_nonzero_rows)");
}

static ferry_status run_masked(int32_t dev, const ferry_op_args *a, bool scatter)
{
    fk_plan_ctx c = {cuda_host, "cuda", dev};
    fk_sgeom g;
    size_t width;
    ferry_status st = fk_plan_select(&c, a, scatter, &g, &width);
    if (st != FERRY_OK)
        return st;
    void *x = a->tensors[0].buffer;
    const void *y = a->tensors[1].buffer, *pos = a->tensors[2].buffer;
    void *args[] = {&x, &y, &pos, &g};
    const select_kernel fn = (scatter ? scatters : selects)[fk_width_log2(width)];
    return launch(dev, (const void *)fn, args, g.numel,
                  scatter ? "cudaLaunchKernel(ferry_masked_scatter)"
                          : "cudaLaunchKernel(ferry_masked_select)");
}

static ferry_status cuda_nonzero(int32_t dev, const ferry_op_args *a)
{
    CUDA_GUARD(run_nonzero(dev, a))
}

static ferry_status cuda_masked_select(int32_t dev, const ferry_op_args *a)
{
    CUDA_GUARD(run_masked(dev, a, false))
}

static ferry_status cuda_masked_scatter(int32_t dev, const ferry_op_args *a)
{
    CUDA_GUARD(run_masked(dev, a, true))
}

extern const ferry_named_entry cuda_named_select[] = {
    {FERRY_OP_NONZERO, cuda_nonzero},
    {FERRY_OP_MASKED_SELECT, cuda_masked_select},
    {FERRY_OP_MASKED_SCATTER, cuda_masked_scatter},
    {NULL, NULL},
};

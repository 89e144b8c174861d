/* The reduce2 family on CUDA (ferry/ops/reduce2.h): the portable line kernels of
 * ferry_reduce2.h, one thread per line, the same source OpenCL runs. */
#include <stdio.h>

#include <ferry/ops/reduce2.h>

#include "cuda_internal.h"

#include "ferry_kernels.h"
#include "ferry_reduce2.h"

#define CUDA_L2_SCAN_FN(sfx, st, vt, wt, kind) (const void *)ferry_r2_scan_##sfx,
static const void *const l2_scan_fns[] = {FK_DTYPES(CUDA_L2_SCAN_FN)};
static const void *const l2_softmax_fns[FERRY_NUM_DTYPES] = {
    NULL, NULL, NULL, NULL, NULL, NULL,
    (const void *)ferry_r2_softmax_f16, (const void *)ferry_r2_softmax_bf16,
    (const void *)ferry_r2_softmax_f32, (const void *)ferry_r2_softmax_f64};

#define CUDA_L2_BLOCK 256

static ferry_status l2_run(int32_t dev, const char *name, const ferry_op_args *args)
{
    fk_lgeom g;
    if (fk_l2_geom(&g, fk_l2_op_of(name), args) != 0)
        return FERRY_ERR_UNSUPPORTED;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    const ferry_kernel_tensor *out = &args->tensors[0], *in = &args->tensors[1];
    int64_t lines = g.outer * g.inner;
    if (lines == 0 || (g.len == 0 && g.op != FK_L2_PROD))
        return FERRY_OK;
    const void *fn = g.op >= FK_L2_SOFTMAX ? l2_softmax_fns[in->dtype] : l2_scan_fns[in->dtype];
    if (!fn)
        return FERRY_ERR_UNSUPPORTED;
    void *o = out->buffer, *i = in->buffer;
    void *kargs[3] = {&o, &i, &g};
    int64_t blocks = (lines + CUDA_L2_BLOCK - 1) / CUDA_L2_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * 32;
    if (blocks > most)
        blocks = most;
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(CUDA_L2_BLOCK), kargs, 0,
                                     stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e == cudaSuccess)
        return FERRY_OK;
    char call[96];
    snprintf(call, sizeof call, "cudaLaunchKernel(%s)", name);
    return cuda_fail(dev, call, e);
}

#define CUDA_L2_ENTRY(fn, NAME)                                                           \
    static ferry_status fn(int32_t device, const ferry_op_args *args)                     \
    {                                                                                     \
        CUDA_GUARD(l2_run(device, NAME, args));                                           \
    }
CUDA_L2_ENTRY(cuda_l2_prod, FERRY_OP_PROD)
CUDA_L2_ENTRY(cuda_l2_cumsum, FERRY_OP_CUMSUM)
CUDA_L2_ENTRY(cuda_l2_cumprod, FERRY_OP_CUMPROD)
CUDA_L2_ENTRY(cuda_l2_softmax, FERRY_OP_SOFTMAX)
CUDA_L2_ENTRY(cuda_l2_log_softmax, FERRY_OP_LOG_SOFTMAX)

extern const ferry_named_entry cuda_named_reduce2[] = {
    {FERRY_OP_PROD, cuda_l2_prod},
    {FERRY_OP_CUMSUM, cuda_l2_cumsum},
    {FERRY_OP_CUMPROD, cuda_l2_cumprod},
    {FERRY_OP_SOFTMAX, cuda_l2_softmax},
    {FERRY_OP_LOG_SOFTMAX, cuda_l2_log_softmax},
    {NULL, NULL},
};

// The shape2 family on CUDA (ferry/ops/shape2.h): the tril/triu kernels of
// ferry_shape2.h, one thread per element, the same source OpenCL runs.
#include <stdio.h>

#include <ferry/ops/shape2.h>

#include "cuda_internal.h"

#include "ferry_kernels.h"
#include "ferry_shape2.h"

#define CUDA_TRI_BLOCK 256

static ferry_status tri_run(int32_t dev, const ferry_op_args *args)
{
    fk_tgeom g;
    if (fk_tri_geom(&g, args) != 0)
        return FERRY_ERR_UNSUPPORTED;
    int64_t n = g.batch * g.rows * g.cols;
    if (n == 0)
        return FERRY_OK;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    const void *fn;
    switch (fk_tri_standin(args->tensors[1].dtype)) {
    case FERRY_UINT8: fn = (const void *)ferry_tri_u8; break;
    case FERRY_INT16: fn = (const void *)ferry_tri_i16; break;
    case FERRY_INT32: fn = (const void *)ferry_tri_i32; break;
    default: fn = (const void *)ferry_tri_i64; break;
    }
    void *o = args->tensors[0].buffer, *i = args->tensors[1].buffer;
    void *kargs[3] = {&o, &i, &g};
    int64_t blocks = (n + CUDA_TRI_BLOCK - 1) / CUDA_TRI_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * 32;
    if (blocks > most)
        blocks = most;
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(CUDA_TRI_BLOCK), kargs, 0,
                                     stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e == cudaSuccess)
        return FERRY_OK;
    return cuda_fail(dev, "cudaLaunchKernel(ferry.tri)", e);
}

static ferry_status cuda_tri(int32_t device, const ferry_op_args *args)
{
    CUDA_GUARD(tri_run(device, args));
}

extern const ferry_named_entry cuda_named_shape2[] = {
    {FERRY_OP_TRI, cuda_tri},
    {NULL, NULL},
};

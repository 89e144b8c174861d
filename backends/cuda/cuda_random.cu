// The random family on CUDA: the samplers of backends/kernels/ferry_random.h (the source
// OpenCL runs), one thread per Philox block, with CUDA's arithmetic pinned to unfused
// round-to-nearest intrinsics there so the numbers match the cpu's bit for bit. Outputs
// the core did not make dense are refused (FERRY_ERR_UNSUPPORTED: the cpu runs them).
#include <stdio.h>
#include <string.h>

#include <ferry/ops/random.h>

#include "cuda_internal.h"
#include "ferry_random.h"
#include "fk_plan.h"

namespace {

const int RANDOM_BLOCK = 256;
const int RANDOM_BLOCKS_PER_SM = 32;

bool dense(const ferry_kernel_tensor *t)
{
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != want)
            return false;
        want *= t->shape[d];
    }
    return true;
}

const void *float_kernel(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_FLOAT16:
        return (const void *)ferry_random_float_f16;
    case FERRY_BFLOAT16:
        return (const void *)ferry_random_float_bf16;
    case FERRY_FLOAT32:
        return (const void *)ferry_random_float_f32;
    case FERRY_FLOAT64:
        return (const void *)ferry_random_float_f64;
    default:
        return NULL;
    }
}

const void *int_kernel(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_BOOL:
        return (const void *)ferry_random_int_bool;
    case FERRY_UINT8:
        return (const void *)ferry_random_int_u8;
    case FERRY_INT8:
        return (const void *)ferry_random_int_i8;
    case FERRY_INT16:
        return (const void *)ferry_random_int_i16;
    case FERRY_INT32:
        return (const void *)ferry_random_int_i32;
    case FERRY_INT64:
        return (const void *)ferry_random_int_i64;
    case FERRY_FLOAT16:
        return (const void *)ferry_random_int_f16;
    case FERRY_BFLOAT16:
        return (const void *)ferry_random_int_bf16;
    case FERRY_FLOAT32:
        return (const void *)ferry_random_int_f32;
    case FERRY_FLOAT64:
        return (const void *)ferry_random_int_f64;
    default:
        return NULL;
    }
}

ferry_status cuda_random(int32_t dev, const ferry_op_args *args)
{
    if (args->ntensors != 1 || args->noutputs != 1 || !args->params ||
        args->params_size < sizeof(ferry_random_params))
        return cuda_host->error(FERRY_ERR_INVALID_ARGUMENT, "ferry.random: bad arguments");
    const ferry_random_params *rp = (const ferry_random_params *)args->params;
    const ferry_kernel_tensor *out = &args->tensors[0];
    ferry_dtype dt = out->dtype;
    bool int_kind = rp->kind == FERRY_RANDOM_INT || rp->kind == FERRY_RANDOM_BITS;
    const void *fn = int_kind ? int_kernel(dt) : float_kernel(dt);
    if (!fn || !dense(out) || (rp->offset & 3u) ||
        (rp->kind == FERRY_RANDOM_BITS && dt != FERRY_INT64) || rp->kind < 0 ||
        rp->kind > FERRY_RANDOM_BITS)
        return FERRY_ERR_UNSUPPORTED;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    int64_t n = 1;
    for (int i = 0; i < out->ndim; i++)
        n *= out->shape[i];
    if (n == 0)
        return FERRY_OK;
    fk_random p = fk_random_launch(rp, dt, (fk_i64)(out->byte_offset / fk_dtype_size(dt)), n);
    int per = int_kind ? (fk_random_int_narrow_host(&p) ? 4 : 2) : dt == FERRY_FLOAT64 ? 2 : 4;
    int64_t threads = (n + per - 1) / per;
    int64_t blocks = (threads + RANDOM_BLOCK - 1) / RANDOM_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * RANDOM_BLOCKS_PER_SM;
    if (blocks > most)
        blocks = most;
    void *buf = out->buffer;
    void *kargs[2] = {&buf, &p};
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(RANDOM_BLOCK), kargs, 0,
                                     stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, "cudaLaunchKernel(ferry_random)", e);
}

ferry_status guarded_random(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(cuda_random(dev, args))
}

} // namespace

extern "C" const ferry_named_entry cuda_named_random[] = {
    {FERRY_RANDOM_OP, guarded_random},
    {NULL, NULL},
};

/* Elementwise, cast, fill and reduction kernels for CUDA. They are to be compiled from
 * the portable kernel source the OpenCL backend runs on PoCL (DESIGN.md, Kernels);
 * until that source is wired in here, each entry declines, and the core runs the op on
 * the CPU backend through staging, so results stay correct.
 * TODO(ferry): compile backends/kernels with nvcc here (#5). */
#include "cuda_internal.h"

ferry_status cuda_fill(int32_t dev, const ferry_kernel_tensor *out, const void *value)
{
    return FERRY_ERR_UNSUPPORTED;
}

ferry_status cuda_cast(int32_t dev, const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    return FERRY_ERR_UNSUPPORTED;
}

ferry_status cuda_unary(int32_t dev, ferry_unary_op op, const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *in)
{
    return FERRY_ERR_UNSUPPORTED;
}

ferry_status cuda_binary(int32_t dev, ferry_binary_op op, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    return FERRY_ERR_UNSUPPORTED;
}

ferry_status cuda_reduce(int32_t dev, ferry_reduce_op op, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *in)
{
    return FERRY_ERR_UNSUPPORTED;
}

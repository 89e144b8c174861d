/* Shared between the CUDA backend's translation units (all C++, compiled by nvcc);
 * nothing here is exported from the plugin. */
#ifndef FERRY_CUDA_INTERNAL_H
#define FERRY_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <ferry/backend.h>

#include "fk_plan.h"

extern const ferry_host_api *cuda_host;
/* Named-kernel tables, one per op family (cuda_backend.cu lists them). */
extern const ferry_named_entry cuda_named_sort[];

/* Devices beyond this many are not offered (init logs it): the thread's current queue
 * and the peer states are fixed arrays of this size. */
#define CUDA_MAX_DEVICES 64

/* Makes dev current, creating its default stream on first use; *stream (when asked for)
 * is the calling thread's current queue of dev (set_queue), where every launch, copy and
 * cuBLAS call of the entry goes. */
ferry_status cuda_use(int32_t dev, cudaStream_t *stream);
/* The cuBLAS handle of the calling thread's current queue of dev, bound to its stream;
 * made on first use. cuda_use(dev) has succeeded. */
ferry_status cuda_blas(int32_t dev, cublasHandle_t *handle);
/* Streaming multiprocessors of a device cuda_use has readied (grid sizes follow it). */
int cuda_sm_count(int32_t dev);
/* Fills the DLPack stream entries of the table (cuda_dlpack.cu). */
void cuda_add_dlpack_streams(ferry_backend_ops *o);
/* The stream of a queue handle of the ABI (NULL: the device's default queue, not the
 * thread's current one). cuda_use(dev) has succeeded. */
cudaStream_t cuda_queue_stream(int32_t dev, void *queue);
/* Records "cuda:N: CALL failed: text (cudaErrorName=N)" and returns the status. */
ferry_status cuda_fail(int32_t dev, const char *call, cudaError_t e);
/* Device memory for temporaries of work queued on `stream` (reduction partials): usable by
 * that work at once, and given back with cuda_temp_free after it is queued, without
 * waiting for it. */
ferry_status cuda_temp_alloc(int32_t dev, cudaStream_t stream, size_t nbytes, void **out);
void cuda_temp_free(int32_t dev, cudaStream_t stream, void *p);

// Sorts n distinct u64 keys (but for copies of ~0) at scr[0, n) of a temporary of at
// least n u64 (cuda_sort.cu, fk_sort_prepare_raw), leaving them at scr[*at, *at + n).
ferry_status cuda_sort_keys(int32_t dev, cudaStream_t stream, uint64_t *scr, int64_t n,
                            int64_t *at);

ferry_status cuda_matmul(int32_t dev, const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                         const ferry_kernel_tensor *b);
/* ferry_matmul.h's kernel (one thread per output element, any strides, any dtype): the
 * integer matmul, and floats in layouts cuBLAS does not take. */
ferry_status cuda_matmul_kernel(int32_t dev, cudaStream_t stream, const ferry_kernel_tensor *out,
                                const ferry_kernel_tensor *a, const ferry_kernel_tensor *b,
                                const fk_mgeom *g);
ferry_status cuda_fill(int32_t dev, const ferry_kernel_tensor *out, const void *value);
ferry_status cuda_cast(int32_t dev, const ferry_kernel_tensor *out, const ferry_kernel_tensor *in);
ferry_status cuda_copy_strided(int32_t dev, const ferry_kernel_tensor *out,
                               const ferry_kernel_tensor *in);
ferry_status cuda_unary(int32_t dev, ferry_unary_op op, const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *in);
ferry_status cuda_binary(int32_t dev, ferry_binary_op op, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);
ferry_status cuda_binary_scalar(int32_t dev, ferry_binary_op op, const ferry_kernel_tensor *out,
                                const ferry_kernel_tensor *a, const ferry_kernel_scalar *b);
ferry_status cuda_reduce(int32_t dev, ferry_reduce_op op, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *in);

/* Whether dev's primary context exists; true when the driver cannot say. */
bool cuda_has_context(int dev);

/* The calling thread's current device, put back when an entry returns: the
 * application's own CUDA code must not find it changed by ferry. Except where that
 * device has no context yet (a thread that never chose one reads device 0): since CUDA
 * 12 cudaSetDevice creates the context, which would take memory on a GPU the
 * application never used. */
struct cuda_device_keeper {
    int prev = -1;
    cuda_device_keeper()
    {
        if (cudaGetDevice(&prev) != cudaSuccess) {
            prev = -1;
            (void)cudaGetLastError();
        }
    }
    ~cuda_device_keeper()
    {
        int now = -1;
        if (prev >= 0 && cudaGetDevice(&now) == cudaSuccess && now != prev &&
            cuda_has_context(prev))
            cudaSetDevice(prev);
        (void)cudaGetLastError();
    }
};
/* Named-op tables of the family files (cuda_<family>.cu), one per line, listed in
 * cuda_named_tables. */
extern "C" const ferry_named_entry cuda_named_random[];
extern const ferry_named_entry cuda_named_reduce2[];
extern const ferry_named_entry cuda_named_index[];
extern const ferry_named_entry cuda_named_elementwise2[];
extern const ferry_named_entry cuda_named_select[];
extern const ferry_named_entry cuda_named_shape2[];

/* Catches anything C++ might throw from the runtime or cuBLAS, so nothing unwinds into
 * the C core, and restores the caller's current device. */
#define CUDA_GUARD(expr)                                                                    \
    try {                                                                                   \
        cuda_device_keeper keep_device_;                                                    \
        return expr;                                                                        \
    } catch (...) {                                                                         \
        return cuda_host->error(FERRY_ERR_BACKEND, "cuda: unexpected C++ exception");      \
    }

#endif /* FERRY_CUDA_INTERNAL_H */

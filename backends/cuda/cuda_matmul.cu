/* matmul through cuBLAS: ferry's row-major [B, M, K] x [B, K, N] is computed as the
 * column-major product C^T = B^T A^T, with transposed operands expressed as cuBLAS
 * transpose flags and leading dimensions, never copied; integers, and layouts cuBLAS
 * cannot read, go to the portable kernel (cuda_kernels.cu). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* One operand as cuBLAS takes it. */
typedef struct gemm_operand {
    cublasOperation_t op;
    int64_t ld;
} gemm_operand;

/* The matrix with element (r, c) at r*rs + c*cs, as the column-major rows x cols
 * operand cuBLAS reads (possibly through a transpose). A stride of a dim with extent 1
 * never matters, so such dims take whatever layout fits. */
static bool as_col_major(int64_t rows, int64_t cols, int64_t rs, int64_t cs, gemm_operand *g)
{
    if (rs == 1 || rows == 1) { /* columns are contiguous: plain column-major */
        g->op = CUBLAS_OP_N;
        g->ld = cols == 1 ? (rows > 0 ? rows : 1) : cs;
        return g->ld >= rows && g->ld > 0;
    }
    if (cs == 1 || cols == 1) { /* rows are contiguous: the transpose is column-major */
        g->op = CUBLAS_OP_T;
        g->ld = rs;
        return g->ld >= cols && g->ld > 0;
    }
    return false;
}

static bool tf32_allowed(void)
{
    const char *e = getenv("FERRY_CUDA_TF32");
    return e && strcmp(e, "1") == 0;
}

ferry_status cuda_matmul(int32_t dev, const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                         const ferry_kernel_tensor *b)
{
    fk_plan_ctx ctx = {cuda_host, "cuda", dev};
    fk_mgeom g;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_matmul(&ctx, out, a, b, &g);
    if (st != FERRY_OK)
        return st;
    int64_t batch = g.batch, m = g.m, n = g.n, k = g.k;
    if (batch == 0 || m == 0 || n == 0)
        return FERRY_OK;

    cudaDataType_t type = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    bool blas = true;
    switch (out->dtype) {
    case FERRY_FLOAT32:
        /* TF32 changes float32 results; PyTorch also keeps it off for matmul by default. */
        compute = tf32_allowed() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        break;
    case FERRY_FLOAT64: type = CUDA_R_64F; compute = CUBLAS_COMPUTE_64F; break;
    case FERRY_FLOAT16: type = CUDA_R_16F; break;
    case FERRY_BFLOAT16: type = CUDA_R_16BF; break;
    default: blas = false; break; /* integers: cuBLAS has no wrapping integer GEMM */
    }
    /* An empty inner dim makes zeros, which the kernel writes without reading a or b. */
    if (k == 0 || batch > INT_MAX || m > INT_MAX || n > INT_MAX || k > INT_MAX)
        blas = false;

    /* C^T (n x m) = X (n x k) * Y (k x m) with X = B^T and Y = A^T. */
    gemm_operand x = {CUBLAS_OP_N, 0}, y = x, c = x;
    if (blas)
        blas = as_col_major(n, k, b->strides[2], b->strides[1], &x) &&
               as_col_major(k, m, a->strides[2], a->strides[1], &y) &&
               as_col_major(n, m, out->strides[2], out->strides[1], &c) && c.op == CUBLAS_OP_N &&
               x.ld <= INT_MAX && y.ld <= INT_MAX && c.ld <= INT_MAX;
    /* The planner zeroes the batch strides of a single product, which cuBLAS then never
     * steps over; out's batches must not alias. */
    for (int i = 1; i < 3; i++)
        if (a->strides[i] < 0 || b->strides[i] < 0 || out->strides[i] < 0)
            blas = false;
    if (g.a_sb < 0 || g.b_sb < 0 || g.o_sb < 0 || (batch > 1 && g.o_sb == 0))
        blas = false;
    /* Layouts cuBLAS cannot read in place run ferry's kernel on the device: slower than
     * cuBLAS, far faster than the cpu fallback through staging. */
    if (!blas)
        return cuda_matmul_kernel(dev, stream, out, a, b, &g);

    const char *pa = (const char *)a->buffer + a->byte_offset;
    const char *pb = (const char *)b->buffer + b->byte_offset;
    char *pc = (char *)out->buffer + out->byte_offset;
    float alpha32 = 1.0f, beta32 = 0.0f;
    double alpha64 = 1.0, beta64 = 0.0;
    const void *alpha = compute == CUBLAS_COMPUTE_64F ? (const void *)&alpha64 : (const void *)&alpha32;
    const void *beta = compute == CUBLAS_COMPUTE_64F ? (const void *)&beta64 : (const void *)&beta32;
    cublasHandle_t h;
    if ((st = cuda_blas(dev, &h)) != FERRY_OK)
        return st;
    /* A single product takes cublasGemmEx itself, the call an application would make, so
     * that ferry gets the same kernel choice rather than the batched heuristics. */
    cublasStatus_t s =
        batch == 1
            ? cublasGemmEx(h, x.op, y.op, (int)n, (int)m, (int)k, alpha, pb, type,
                           (int)x.ld, pa, type, (int)y.ld, beta, pc, type, (int)c.ld, compute,
                           CUBLAS_GEMM_DEFAULT)
            : cublasGemmStridedBatchedEx(h, x.op, y.op, (int)n, (int)m, (int)k, alpha,
                                         pb, type, (int)x.ld, (long long)g.b_sb, pa, type,
                                         (int)y.ld, (long long)g.a_sb, beta, pc, type, (int)c.ld,
                                         (long long)g.o_sb, (int)batch, compute,
                                         CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        return cuda_host->error(FERRY_ERR_BACKEND, "cuda:%d: %s failed: %s (%s=%d)", (int)dev,
                                batch == 1 ? "cublasGemmEx" : "cublasGemmStridedBatchedEx",
                                cublasGetStatusString(s), cublasGetStatusName(s), (int)s);
    return FERRY_OK;
}

// "ferry.sort" and "ferry.sort_scatter" on CUDA devices (ferry/ops/sort.h): the same
// kernel source as OpenCL (backends/kernels/ferry_sort.h), a bitonic network over
// (key, index) pairs in a temporary, then a gather of the first k of each row.
#include <stdio.h>
#include <string.h>

#include <ferry/ops/sort.h>

#include "cuda_internal.h"
#include "ferry_sort.h"

#define SORT_BLOCK 256
#define SORT_BLOCKS_PER_SM 32

static int sort_code(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_BOOL: return FK_SORT_BOOL;
    case FERRY_UINT8: return FK_SORT_UINT;
    case FERRY_FLOAT16: return FK_SORT_F16;
    case FERRY_BFLOAT16: return FK_SORT_BF16;
    case FERRY_FLOAT32: return FK_SORT_F32;
    case FERRY_FLOAT64: return FK_SORT_F64;
    default: return FK_SORT_SINT;
    }
}

static int64_t elem_off(const ferry_kernel_tensor *t)
{
    return (int64_t)(t->byte_offset / fk_dtype_size(t->dtype));
}

static ferry_status launch(int32_t dev, cudaStream_t stream, const void *fn, const char *name,
                           int64_t n, void **args)
{
    if (n <= 0)
        return FERRY_OK;
    int64_t blocks = (n + SORT_BLOCK - 1) / SORT_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * SORT_BLOCKS_PER_SM;
    if (blocks > most)
        blocks = most;
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(SORT_BLOCK), args, 0, stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e == cudaSuccess)
        return FERRY_OK;
    char call[96];
    snprintf(call, sizeof call, "cudaLaunchKernel(%s)", name);
    return cuda_fail(dev, call, e);
}

static ferry_status sort_impl(int32_t dev, const ferry_op_args *args)
{
    const ferry_sort_params *sp = (const ferry_sort_params *)args->params;
    if (!sp || args->params_size < sizeof *sp || (args->ntensors != 3 && args->ntensors != 2))
        return FERRY_ERR_UNSUPPORTED;
    bool has_idx = args->ntensors == 3;
    const ferry_kernel_tensor *v = &args->tensors[0], *in = &args->tensors[has_idx ? 2 : 1];
    const ferry_kernel_tensor *ix = has_idx ? &args->tensors[1] : v;
    if (in->ndim != 2 || v->ndim != 2 || ix->ndim != 2)
        return FERRY_ERR_UNSUPPORTED;
    if (sp->rows <= 0 || sp->n <= 0 || sp->k <= 0)
        return FERRY_OK;
    int64_t P = 1;
    while (P < sp->n)
        P *= 2;
    if (P > ((int64_t)1 << 40) / sp->rows)
        return FERRY_ERR_UNSUPPORTED;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    fk_sort_launch p;
    memset(&p, 0, sizeof p);
    p.rows = sp->rows;
    p.n = sp->n;
    p.P = P;
    p.k = sp->k;
    p.in_off = elem_off(in);
    p.in_rs = in->strides[0];
    p.in_es = in->strides[1];
    p.v_off = elem_off(v);
    p.v_rs = v->strides[0];
    p.v_es = v->strides[1];
    p.i_off = has_idx ? elem_off(ix) : 0;
    p.i_rs = has_idx ? ix->strides[0] : 0;
    p.i_es = has_idx ? ix->strides[1] : 0;
    p.scr_idx = sp->rows * P;
    p.code = sort_code(in->dtype);
    p.esize = (fk_i32)fk_dtype_size(in->dtype);
    p.flip = sp->descending != 0;
    p.has_idx = has_idx;
    void *scr = NULL;
    if ((st = cuda_temp_alloc(dev, stream, (size_t)(2 * sp->rows * P) * sizeof(uint64_t), &scr)) !=
        FERRY_OK)
        return st;
    fk_u64 *s = (fk_u64 *)scr;
    const fk_u8 *src = (const fk_u8 *)in->buffer;
    {
        void *a[] = {&s, &src, &p};
        st = launch(dev, stream, (const void *)ferry_sort_keys, "ferry_sort_keys", sp->rows * P, a);
    }
    for (int64_t kk = 2; st == FERRY_OK && kk <= P; kk *= 2)
        for (int64_t j = kk / 2; st == FERRY_OK && j >= 1; j /= 2) {
            p.kk = kk;
            p.j = j;
            void *a[] = {&s, &p};
            st = launch(dev, stream, (const void *)ferry_sort_step, "ferry_sort_step",
                        sp->rows * (P / 2), a);
        }
    if (st == FERRY_OK) {
        fk_u8 *vals = (fk_u8 *)v->buffer;
        fk_i64 *idx = (fk_i64 *)ix->buffer;
        const fk_u64 *cs = s;
        void *a[] = {&vals, &idx, &src, &cs, &p};
        st = launch(dev, stream, (const void *)ferry_sort_out, "ferry_sort_out", sp->rows * sp->k, a);
    }
    cuda_temp_free(dev, stream, scr);
    return st;
}

static ferry_status scatter_impl(int32_t dev, const ferry_op_args *args)
{
    const ferry_sort_params *sp = (const ferry_sort_params *)args->params;
    if (!sp || args->params_size < sizeof *sp || args->ntensors != 3)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *o = &args->tensors[0], *g = &args->tensors[1],
                              *ix = &args->tensors[2];
    if (o->ndim != 2 || g->ndim != 2 || ix->ndim != 2)
        return FERRY_ERR_UNSUPPORTED;
    if (sp->rows <= 0 || sp->n <= 0)
        return FERRY_OK;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    fk_sort_launch p;
    memset(&p, 0, sizeof p);
    p.rows = sp->rows;
    p.n = sp->n;
    p.k = sp->k;
    p.in_off = elem_off(g);
    p.in_rs = g->strides[0];
    p.in_es = g->strides[1];
    p.v_off = elem_off(o);
    p.v_rs = o->strides[0];
    p.v_es = o->strides[1];
    p.i_off = elem_off(ix);
    p.i_rs = ix->strides[0];
    p.i_es = ix->strides[1];
    p.esize = (fk_i32)fk_dtype_size(o->dtype);
    fk_u8 *out = (fk_u8 *)o->buffer;
    const fk_u8 *gb = (const fk_u8 *)g->buffer;
    const fk_i64 *ib = (const fk_i64 *)ix->buffer;
    {
        void *a[] = {&out, &p};
        st = launch(dev, stream, (const void *)ferry_sort_zero, "ferry_sort_zero", sp->rows * sp->n, a);
    }
    if (st == FERRY_OK && sp->k > 0) {
        void *a[] = {&out, &gb, &ib, &p};
        st = launch(dev, stream, (const void *)ferry_sort_scatter, "ferry_sort_scatter",
                    sp->rows * sp->k, a);
    }
    return st;
}

static ferry_status cuda_sort(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(sort_impl(dev, args))
}

static ferry_status cuda_sort_scatter(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(scatter_impl(dev, args))
}

extern const ferry_named_entry cuda_named_sort[] = {
    {FERRY_OP_SORT, cuda_sort},
    {FERRY_OP_SORT_SCATTER, cuda_sort_scatter},
    {NULL, NULL},
};

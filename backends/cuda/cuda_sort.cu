// "ferry.sort" and "ferry.sort_scatter" on CUDA devices (ferry/ops/sort.h): the same
// kernel source and schedule as OpenCL (backends/kernels/ferry_sort.h: bitonic tiles in
// shared memory, global steps over (key, index) pairs in a temporary, topk by selection).
#include <stdio.h>
#include <string.h>

#include <ferry/ops/sort.h>

#include "cuda_internal.h"
#include "ferry_sort.h"

#define SORT_BLOCK 256
#define SORT_BLOCKS_PER_SM 32

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

// A sorting tile of 1024 elements: 256 threads, 16 KiB of (key, index) pairs in shared
// memory, within every device's limit without opting in to more.
#define SORT_TILE 1024

typedef struct sort_ctx {
    int32_t dev;
    cudaStream_t stream;
    fk_u64 *scr;
    fk_u8 *vals;
    fk_i64 *idx;
    const fk_u8 *src;
} sort_ctx;

static ferry_status sort_tile(void *ctx, const fk_sort_launch *p)
{
    sort_ctx *c = (sort_ctx *)ctx;
    fk_sort_launch q = *p;
    void *a[] = {&c->scr, &c->vals, &c->idx, &c->src, &q};
    int64_t blocks = fk_sort_tiles(p);
    // The kernel loops over the tiles a capped grid leaves.
    if (blocks > ((int64_t)1 << 30))
        blocks = (int64_t)1 << 30;
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel((const void *)ferry_sort_tile, dim3((unsigned)blocks),
                                     dim3((unsigned)(p->tile / 4)), a,
                                     (size_t)(2 * p->tile) * sizeof(fk_u64), c->stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    return e == cudaSuccess ? FERRY_OK : cuda_fail(c->dev, "cudaLaunchKernel(ferry_sort_tile)", e);
}

static ferry_status sort_step(void *ctx, const fk_sort_launch *p)
{
    sort_ctx *c = (sort_ctx *)ctx;
    fk_sort_launch q = *p;
    void *a[] = {&c->scr, &q};
    if (p->two)
        return launch(c->dev, c->stream, (const void *)ferry_sort_step2, "ferry_sort_step2",
                      p->rows * (p->P / 4), a);
    return launch(c->dev, c->stream, (const void *)ferry_sort_step, "ferry_sort_step",
                  p->rows * (p->P / 2), a);
}

static ferry_status sort_merge(void *ctx, const fk_sort_launch *p)
{
    sort_ctx *c = (sort_ctx *)ctx;
    fk_sort_launch q = *p;
    void *a[] = {&c->scr, &c->vals, &c->idx, &c->src, &q};
    return launch(c->dev, c->stream, (const void *)ferry_sort_merge, "ferry_sort_merge",
                  fk_sort_merge_threads(p), a);
}

ferry_status cuda_sort_keys(int32_t dev, cudaStream_t stream, uint64_t *scr, int64_t n,
                            int64_t *at)
{
    *at = 0;
    if (n <= 1)
        return FERRY_OK;
    // A GPU's schedule: global steps, no merges, so the keys stay where they are.
    fk_sort_launch p;
    fk_sort_prepare_raw(&p, n, SORT_TILE, 0);
    sort_ctx c = {dev, stream, (fk_u64 *)scr, (fk_u8 *)scr, (fk_i64 *)scr, (const fk_u8 *)scr};
    ferry_status st = fk_sort_drive(&p, &c, sort_tile, sort_step, sort_merge);
    *at = p.dst_k;
    return st;
}

static ferry_status sort_impl(int32_t dev, const ferry_op_args *args)
{
    fk_plan_ctx pc = {cuda_host, "cuda", dev};
    fk_sort_launch p;
    bool nothing;
    ferry_status st = fk_plan_sort(&pc, args, false, &p, &nothing);
    if (st != FERRY_OK || nothing)
        return st;
    cudaStream_t stream;
    if ((st = cuda_use(dev, &stream)) != FERRY_OK)
        return st;
    const ferry_kernel_tensor *v = &args->tensors[0], *in = &args->tensors[p.has_idx ? 2 : 1];
    const ferry_kernel_tensor *ix = p.has_idx ? &args->tensors[1] : v;
    int64_t words = fk_sort_prepare(&p, SORT_TILE);
    void *scr = NULL;
    if ((st = cuda_temp_alloc(dev, stream, (size_t)(words ? words : 1) * sizeof(uint64_t),
                              &scr)) != FERRY_OK)
        return st;
    sort_ctx c = {dev, stream, (fk_u64 *)scr, (fk_u8 *)v->buffer, (fk_i64 *)ix->buffer,
                  (const fk_u8 *)in->buffer};
    st = fk_sort_drive(&p, &c, sort_tile, sort_step, sort_merge);
    cuda_temp_free(dev, stream, scr);
    return st;
}

static ferry_status scatter_impl(int32_t dev, const ferry_op_args *args)
{
    fk_plan_ctx c = {cuda_host, "cuda", dev};
    fk_sort_launch p;
    bool nothing;
    ferry_status st = fk_plan_sort(&c, args, true, &p, &nothing);
    if (st != FERRY_OK || nothing)
        return st;
    cudaStream_t stream;
    if ((st = cuda_use(dev, &stream)) != FERRY_OK)
        return st;
    fk_u8 *out = (fk_u8 *)args->tensors[0].buffer;
    const fk_u8 *gb = (const fk_u8 *)args->tensors[1].buffer;
    const fk_i64 *ib = (const fk_i64 *)args->tensors[2].buffer;
    {
        void *a[] = {&out, &p};
        st = launch(dev, stream, (const void *)ferry_sort_zero, "ferry_sort_zero", p.rows * p.n, a);
    }
    if (st == FERRY_OK && p.k > 0) {
        void *a[] = {&out, &gb, &ib, &p};
        st = launch(dev, stream, (const void *)ferry_sort_scatter, "ferry_sort_scatter",
                    p.rows * p.k, a);
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

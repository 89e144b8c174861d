// Indexing on CUDA (ferry/ops/index.h): the kernels of backends/kernels/ferry_index.h,
// the same source OpenCL builds, on the device's stream: one launch per op, but for
// index_put's accumulation (keys, their sort, the sums) and composed indices.
#include <stdio.h>
#include <string.h>

#include <ferry/ops/index.h>

#include "cuda_internal.h"

#include "ferry_index.h"

#define CUDA_INDEX_BLOCK 256

typedef void (*index_kernel)(void *, fk_i64 *, const void *, const fk_i64 *, fk_igeom);

#define CUDA_INDEX_ROW(sfx, st, vt, wt, kind) (index_kernel)ferry_gather_##sfx,
static const index_kernel gathers[] = {FK_DTYPES(CUDA_INDEX_ROW)};
#undef CUDA_INDEX_ROW
#define CUDA_INDEX_ROW(sfx, st, vt, wt, kind) (index_kernel)ferry_scatter_##sfx,
static const index_kernel scatters[] = {FK_DTYPES(CUDA_INDEX_ROW)};
#undef CUDA_INDEX_ROW

static const size_t sizes[FERRY_NUM_DTYPES] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};

static ferry_status run(int32_t dev, const ferry_op_args *a, bool gather)
{
    fk_igeom g;
    int plan = fk_igeom_fill(&g, a, gather ? 1 : 0, sizes);
    if (plan != 0)
        return plan < 0 ? FERRY_ERR_UNSUPPORTED : FERRY_OK;
    const ferry_kernel_tensor *t0 = &a->tensors[0], *flag = &a->tensors[1];
    const ferry_kernel_tensor *src = &a->tensors[gather ? 2 : 3], *idx = &a->tensors[gather ? 3 : 2];
    if ((int)t0->dtype >= (int)(sizeof gathers / sizeof gathers[0]))
        return FERRY_ERR_UNSUPPORTED;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    int64_t blocks = (g.numel + CUDA_INDEX_BLOCK - 1) / CUDA_INDEX_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * 32;
    if (blocks > most)
        blocks = most;
    void *out = t0->buffer, *flagp = flag->buffer;
    const void *srcp = src->buffer, *idxp = idx->buffer;
    void *args[] = {&out, &flagp, &srcp, &idxp, &g};
    const void *fn = (const void *)(gather ? gathers : scatters)[t0->dtype];
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(CUDA_INDEX_BLOCK), args, 0,
                                     stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, gather ? "cudaLaunchKernel(ferry_gather)"
                                                               : "cudaLaunchKernel(ferry_scatter)",
                                                   e);
}

static ferry_status cuda_gather(int32_t dev, const ferry_op_args *a)
{
    CUDA_GUARD(run(dev, a, true))
}

static ferry_status cuda_scatter(int32_t dev, const ferry_op_args *a)
{
    CUDA_GUARD(run(dev, a, false))
}

typedef void (*xindex_kernel)(void *, fk_i64 *, const void *, const fk_i64 *, const fk_i64 *,
                              const fk_i64 *, const fk_i64 *, fk_xgeom);
#define CUDA_INDEX_ROW(sfx, st, vt, wt, kind) (xindex_kernel)ferry_xindex_##sfx,
static const xindex_kernel xindexes[] = {FK_DTYPES(CUDA_INDEX_ROW)};
#undef CUDA_INDEX_ROW
typedef void (*xacc_kernel)(void *, const fk_u64 *, const void *, fk_xgeom);
#define CUDA_INDEX_ROW(sfx, st, vt, wt, kind) (xacc_kernel)ferry_xindex_acc_##sfx,
static const xacc_kernel xaccs[] = {FK_DTYPES(CUDA_INDEX_ROW)};
#undef CUDA_INDEX_ROW
#define CUDA_INDEX_ROW(sfx, st, vt, wt, kind) (xindex_kernel)ferry_xindex_set_##sfx,
static const xindex_kernel xsets[] = {FK_DTYPES(CUDA_INDEX_ROW)};
#undef CUDA_INDEX_ROW

static ferry_status xlaunch(int32_t dev, cudaStream_t stream, const void *fn, const char *call,
                            int64_t n, void **args)
{
    int64_t blocks = (n + CUDA_INDEX_BLOCK - 1) / CUDA_INDEX_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * 32;
    if (blocks > most)
        blocks = most;
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(CUDA_INDEX_BLOCK), args, 0,
                                     stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    return e == cudaSuccess ? FERRY_OK : cuda_fail(dev, call, e);
}

// "ferry.index" / "ferry.index_put". Assignment walks R as index does; accumulation
// sorts B's positions by slot (keys, their sort by cuda_sort_keys, then one thread per
// run of a slot: see ferry_index.h). More than FK_XMAX indices are first composed into
// one, held in the temporary after the keys.
static ferry_status run_x(int32_t dev, const ferry_op_args *a, bool put)
{
    fk_xgeom g;
    bool acc = put && a->params && a->params_size >= sizeof(ferry_index_params) &&
               ((const ferry_index_params *)a->params)->accumulate;
    int plan = fk_xgeom_fill(&g, a, acc ? 1 : 0, sizes);
    if (plan < 0)
        return FERRY_ERR_UNSUPPORTED;
    if (plan > 0)
        return FERRY_OK;
    const ferry_index_params *p = (const ferry_index_params *)a->params;
    bool composed = p->k > FK_XMAX;
    const ferry_kernel_tensor *t0 = &a->tensors[0];
    if ((int)t0->dtype >= (int)(sizeof xindexes / sizeof xindexes[0]))
        return FERRY_ERR_UNSUPPORTED;
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st != FERRY_OK)
        return st;
    void *flagp = a->tensors[1].buffer, *scr = NULL;
    const void *ip[FK_XMAX];
    for (int j = 0; j < FK_XMAX; j++) // unused ones repeat the flag (never read)
        ip[j] = j < p->k && !composed ? a->tensors[3 + j].buffer : flagp;
    int64_t lin_at = acc ? g.bnumel : 0;
    int64_t words = lin_at + (composed ? g.bnumel : 0);
    if (words > 0 && (st = cuda_temp_alloc(dev, stream, (size_t)words * sizeof(uint64_t), &scr)) !=
                         FERRY_OK)
        return st;
    fk_i64 *lin = (fk_i64 *)scr;
    for (int j0 = 0; composed && st == FERRY_OK && j0 < p->k; j0 += FK_XMAX) {
        fk_xgeom gg;
        int n = fk_xgeom_group(&gg, a, j0, lin_at, sizes);
        const void *gp[FK_XMAX];
        for (int j = 0; j < FK_XMAX; j++)
            gp[j] = j < n ? a->tensors[3 + j0 + j].buffer : flagp;
        void *args[] = {&lin, &flagp, &gp[0], &gp[1], &gp[2], &gp[3], &gg};
        st = xlaunch(dev, stream, (const void *)ferry_xindex_lin,
                     "cudaLaunchKernel(ferry_xindex_lin)", gg.bnumel, args);
    }
    if (composed) {
        ip[0] = scr;
        g.ioff[0] = lin_at;
    }
    void *self = a->tensors[0].buffer;
    const void *srcp = a->tensors[2].buffer;
    if (acc) {
        fk_u64 *s = (fk_u64 *)scr;
        if (st == FERRY_OK) {
            void *args[] = {&s, &flagp, &ip[0], &ip[1], &ip[2], &ip[3], &g};
            st = xlaunch(dev, stream, (const void *)ferry_xindex_keys,
                         "cudaLaunchKernel(ferry_xindex_keys)", g.bnumel, args);
        }
        if (st == FERRY_OK) {
            int64_t at = 0;
            st = cuda_sort_keys(dev, stream, (uint64_t *)s, g.bnumel, &at);
            g.kat = at;
        }
        if (st == FERRY_OK) {
            const fk_u64 *cs = s;
            void *args[] = {&self, &cs, &srcp, &g};
            st = xlaunch(dev, stream, (const void *)xaccs[t0->dtype],
                         "cudaLaunchKernel(ferry_xindex_acc)", g.numel * g.bnumel, args);
        }
    } else if (st == FERRY_OK) {
        void *args[] = {&self, &flagp, &srcp, &ip[0], &ip[1], &ip[2], &ip[3], &g};
        const void *fn = (const void *)(put ? xsets : xindexes)[t0->dtype];
        st = xlaunch(dev, stream, fn,
                     put ? "cudaLaunchKernel(ferry_xindex_set)" : "cudaLaunchKernel(ferry_xindex)",
                     g.numel, args);
    }
    if (scr)
        cuda_temp_free(dev, stream, scr);
    return st;
}

static ferry_status cuda_index(int32_t dev, const ferry_op_args *a)
{
    CUDA_GUARD(run_x(dev, a, false))
}

static ferry_status cuda_index_put(int32_t dev, const ferry_op_args *a)
{
    CUDA_GUARD(run_x(dev, a, true))
}

extern const ferry_named_entry cuda_named_index[] = {
    {FERRY_OP_GATHER, cuda_gather},
    {FERRY_OP_SCATTER, cuda_scatter},
    {FERRY_OP_INDEX, cuda_index},
    {FERRY_OP_INDEX_PUT, cuda_index_put},
    {NULL, NULL},
};

/* Selection kernels (ferry/ops/select.h): nonzero, masked_select, masked_scatter, the
 * reference and everyone's fallback, so any strides and every dtype. The core has
 * already counted (pos), so every element knows its row and threads split the elements
 * freely. */
#include <stdint.h>
#include <string.h>

#include <ferry/ops/select.h>

#include "cpu_internal.h"

/* Elements per thread below which one thread does it all. */
#define SELECT_GRAIN 32768

static int64_t pos_at(const ferry_kernel_tensor *pos, int64_t e)
{
    return ((const int64_t *)cpu_data(pos))[e * pos->strides[0]];
}

static bool pos_ok(const ferry_kernel_tensor *pos, int64_t numel)
{
    return pos->dtype == FERRY_INT64 && pos->ndim == 1 && pos->shape[0] == numel &&
           cpu_is_aligned(pos);
}

/* ---- nonzero ---- */

static ferry_status cpu_nonzero(int32_t device, const ferry_op_args *a)
{
    (void)device;
    const ferry_nonzero_params *p = a->params;
    if (a->ntensors != 2 || !p || a->params_size < sizeof *p || p->ndim < 1 ||
        p->ndim > FERRY_NONZERO_MAX_DIMS)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *out = &a->tensors[0], *pos = &a->tensors[1];
    int ndim = p->ndim;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= p->shape[d];
    if (!pos_ok(pos, numel) || out->dtype != FERRY_INT64 || out->ndim != 2 ||
        out->shape[1] != ndim || !cpu_is_aligned(out))
        return FERRY_ERR_UNSUPPORTED;
    int64_t *o = (int64_t *)cpu_data(out);
    int64_t rs = out->strides[0], cs = out->strides[1];
    int nt = cpu_threads_for(numel, SELECT_GRAIN);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        cpu_thread_part(numel, 1, &lo, &hi);
        int64_t idx[FERRY_NONZERO_MAX_DIMS], rest = lo;
        for (int d = ndim - 1; d >= 0; d--) {
            idx[d] = rest % p->shape[d];
            rest /= p->shape[d];
        }
        int64_t prev = lo ? pos_at(pos, lo - 1) : 0;
        for (int64_t e = lo; e < hi; e++) {
            int64_t cur = pos_at(pos, e);
            if (cur != prev) {
                int64_t *row = o + (cur - 1) * rs;
                for (int d = 0; d < ndim; d++)
                    row[d * cs] = idx[d];
            }
            prev = cur;
            for (int d = ndim - 1; d >= 0 && ++idx[d] == p->shape[d]; d--)
                idx[d] = 0;
        }
    }
    return FERRY_OK;
}

/* ---- masked_select, masked_scatter ---- */

typedef struct select_ctx {
    const int64_t *pos0; /* pos of the walk's first element */
    int64_t pstep;       /* pos's stride: the previous element is pos[-pstep] */
    char *dense;         /* out (select) or source (scatter) */
    int64_t dstride;     /* its stride in bytes */
    bool scatter;
} select_ctx;

/* One run of the walk: p[0] the strided operand, p[1] pos. A constant size per copy, so
 * each compiles to a move (wrapped blobs may be unaligned). */
#define SELECT_ROW(name, SIZE)                                                             \
    static void name(void *vctx, char *const *p, int64_t n, const int64_t *step)          \
    {                                                                                      \
        const select_ctx *c = vctx;                                                        \
        const int64_t *pos = (const int64_t *)p[1];                                        \
        int64_t prev = pos == c->pos0 ? 0 : pos[-c->pstep];                                \
        for (int64_t i = 0; i < n; i++) {                                                  \
            int64_t cur = pos[i * step[1]];                                                \
            if (cur != prev) {                                                             \
                char *e = p[0] + i * step[0] * (SIZE);                                     \
                char *d = c->dense + (cur - 1) * c->dstride;                               \
                if (c->scatter)                                                            \
                    memcpy(e, d, SIZE);                                                    \
                else                                                                       \
                    memcpy(d, e, SIZE);                                                    \
            }                                                                              \
            prev = cur;                                                                    \
        }                                                                                  \
    }
SELECT_ROW(select_row1, 1)
SELECT_ROW(select_row2, 2)
SELECT_ROW(select_row4, 4)
SELECT_ROW(select_row8, 8)

/* tensors: masked_select (out, src, pos); masked_scatter (self, source, pos). */
static ferry_status run_select(const ferry_op_args *a, bool scatter)
{
    if (a->ntensors != 3)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *strided = &a->tensors[scatter ? 0 : 1];
    const ferry_kernel_tensor *dense = &a->tensors[scatter ? 1 : 0], *pos = &a->tensors[2];
    int64_t numel = 1;
    for (int d = 0; d < strided->ndim; d++)
        numel *= strided->shape[d];
    size_t es = cpu_elem_size(strided->dtype);
    if (!pos_ok(pos, numel) || dense->dtype != strided->dtype || dense->ndim != 1 || es == 0)
        return FERRY_ERR_UNSUPPORTED;
    if (numel == 0)
        return FERRY_OK;
    /* pos walks the shape densely: its strides are the row-major ones times its own. */
    int64_t pstrides[FERRY_MAX_DIMS];
    int64_t run = pos->strides[0];
    for (int d = strided->ndim - 1; d >= 0; d--) {
        pstrides[d] = run;
        run *= strided->shape[d];
    }
    const int64_t *strides[2] = {strided->strides, pstrides};
    cpu_nd it;
    cpu_nd_init(&it, strided->ndim, strided->shape, 2, strides);
    select_ctx c = {
        .pos0 = (const int64_t *)cpu_data(pos),
        .pstep = pos->strides[0],
        .dense = cpu_data(dense),
        .dstride = dense->strides[0] * (int64_t)es,
        .scatter = scatter,
    };
    cpu_nd_row_fn row = es == 1 ? select_row1 : es == 2 ? select_row2 : es == 4 ? select_row4
                                                                              : select_row8;
    char *base[2] = {cpu_data(strided), cpu_data(pos)};
    size_t esize[2] = {es, sizeof(int64_t)};
    int nt = cpu_threads_for(numel, SELECT_GRAIN);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        cpu_thread_part(numel, 64, &lo, &hi);
        cpu_nd_walk(&it, base, esize, lo, hi, row, &c);
    }
    return FERRY_OK;
}

static ferry_status cpu_masked_select(int32_t device, const ferry_op_args *a)
{
    (void)device;
    return run_select(a, false);
}

static ferry_status cpu_masked_scatter(int32_t device, const ferry_op_args *a)
{
    (void)device;
    return run_select(a, true);
}

const ferry_named_entry cpu_named_select[] = {
    {FERRY_OP_NONZERO, cpu_nonzero},
    {FERRY_OP_MASKED_SELECT, cpu_masked_select},
    {FERRY_OP_MASKED_SCATTER, cpu_masked_scatter},
    {NULL, NULL},
};

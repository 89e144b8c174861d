/* Selection kernels (ferry/ops/select.h) for OpenCL and CUDA: nonzero, masked_select,
 * masked_scatter. The core's running count (pos) gives every selected element its row,
 * so each work-item handles its elements alone: no scan, no atomics, and the result is
 * the cpu's bit for bit. The masked kernels only move element bits, so there is one per
 * element width, not per dtype. */
#ifndef FERRY_SELECT_H
#define FERRY_SELECT_H

#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

#if !defined(FK_HOST)
#if FK_NAMED_FAMILY(SELECT)

/* Offset in the strided operand of walked element e. */
FK_FUNC fk_i64 fk_sel_strided(const fk_sgeom *g, fk_i64 e)
{
    fk_i64 off = g->offset;
    for (int d = g->ndim - 1; d > 0; d--) {
        fk_i64 q = e / g->shape[d];
        off += (e - q * g->shape[d]) * g->stride[d];
        e = q;
    }
    return g->ndim > 0 ? off + e * g->stride[0] : off;
}

FK_FUNC fk_i64 fk_sel_count(FK_GLOBAL const fk_i64 *pos, const fk_sgeom *g, fk_i64 e)
{
    return e < 0 ? 0 : pos[g->pos_offset + e * g->pos_stride];
}

FK_KERNEL ferry_nonzero_rows(FK_GLOBAL fk_i64 *out, FK_GLOBAL const fk_i64 *pos, fk_sgeom g)
{
    FK_FOR_EACH(e, g.numel)
    {
        fk_i64 cur = fk_sel_count(pos, &g, e);
        if (cur != fk_sel_count(pos, &g, e - 1)) {
            fk_i64 row = g.dense_offset + (cur - 1) * g.dense_stride, rest = e;
            for (int d = g.ndim - 1; d >= 0; d--) {
                fk_i64 q = rest / g.shape[d];
                out[row + d] = rest - q * g.shape[d];
                rest = q;
            }
        }
    }
}

#define FK_DEFINE_SELECT(w, T)                                                              \
    FK_KERNEL ferry_masked_select_##w(FK_GLOBAL T *out, FK_GLOBAL const T *src,             \
                                      FK_GLOBAL const fk_i64 *pos, fk_sgeom g)              \
    {                                                                                       \
        FK_FOR_EACH(e, g.numel)                                                             \
        {                                                                                   \
            fk_i64 cur = fk_sel_count(pos, &g, e);                                          \
            if (cur != fk_sel_count(pos, &g, e - 1))                                        \
                out[g.dense_offset + (cur - 1) * g.dense_stride] = src[fk_sel_strided(&g, e)]; \
        }                                                                                   \
    }                                                                                       \
    FK_KERNEL ferry_masked_scatter_##w(FK_GLOBAL T *self, FK_GLOBAL const T *source,        \
                                       FK_GLOBAL const fk_i64 *pos, fk_sgeom g)             \
    {                                                                                       \
        FK_FOR_EACH(e, g.numel)                                                             \
        {                                                                                   \
            fk_i64 cur = fk_sel_count(pos, &g, e);                                          \
            if (cur != fk_sel_count(pos, &g, e - 1))                                        \
                self[fk_sel_strided(&g, e)] = source[g.dense_offset + (cur - 1) * g.dense_stride]; \
        }                                                                                   \
    }

FK_DEFINE_SELECT(w1, fk_u8)
FK_DEFINE_SELECT(w2, fk_u16)
FK_DEFINE_SELECT(w4, fk_u32)
FK_DEFINE_SELECT(w8, fk_u64)

#endif /* FK_NAMED_FAMILY(SELECT) */
#endif /* !FK_HOST */
#endif /* FERRY_SELECT_H */

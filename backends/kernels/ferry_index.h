/* Indexing kernels (ferry/ops/index.h) for OpenCL and CUDA: gather, and scatter /
 * scatter_add as one loop per target element, so no atomics are needed, accumulation
 * runs in the cpu reference's order (bit-identical sums), and duplicates resolve as
 * there (the last position along dim wins). A bad index is stored in the flag buffer
 * and its element skipped; the host reads the flag when the op completes. */
#ifndef FERRY_INDEX_H
#define FERRY_INDEX_H

#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

/* One launch. Strides and offsets in elements of each operand's own dtype. gather:
 * shape is out's, operands 0 out, 1 src, 2 index. scatter: shape is index's with
 * `size` in dim (the target elements a thread owns), operands 0 self, 1 src, 2 index. */
typedef struct fk_igeom {
    fk_i64 shape[FK_MAX_DIMS];
    fk_i64 stride[3][FK_MAX_DIMS];
    fk_i64 offset[3];
    fk_i64 numel;  /* threads' elements: product of shape */
    fk_i64 size;   /* extent of dim in src (gather) or self (scatter) */
    fk_i64 ilen;   /* scatter: index's extent in dim */
    fk_i32 ndim;
    fk_i32 dim;
    fk_i32 idx32;  /* index is int32 */
    fk_i32 reduce; /* scatter: 0 assign, 1 add */
} fk_igeom;

#if !defined(FK_HOST)
#if FK_NAMED_FAMILY(INDEX)

FK_FUNC fk_i64 fk_index_at(FK_GLOBAL const fk_i64 *idx, fk_i32 idx32, fk_i64 at)
{
    if (idx32)
        return (fk_i64)((FK_GLOBAL const fk_i32 *)idx)[at];
    return idx[at];
}

FK_FUNC void fk_index_report(FK_GLOBAL fk_i64 *flag, fk_i64 bad)
{
    flag[1] = bad;
    flag[0] = 1;
}

#define FK_DEFINE_INDEX(sfx, st, vt, wt, kind)                                              \
    FK_KERNEL ferry_gather_##sfx(FK_GLOBAL st *out, FK_GLOBAL fk_i64 *flag,                 \
                                 FK_GLOBAL const st *src, FK_GLOBAL const fk_i64 *idx,      \
                                 fk_igeom g)                                                \
    {                                                                                       \
        FK_FOR_EACH(e, g.numel)                                                             \
        {                                                                                   \
            fk_i64 rest = e, oo = g.offset[0], so = g.offset[1], io = g.offset[2];          \
            for (int d = g.ndim - 1; d >= 0; d--) {                                         \
                fk_i64 p = rest % g.shape[d];                                               \
                rest /= g.shape[d];                                                         \
                oo += p * g.stride[0][d];                                                   \
                io += p * g.stride[2][d];                                                   \
                if (d != g.dim)                                                             \
                    so += p * g.stride[1][d];                                               \
            }                                                                               \
            fk_i64 i = fk_index_at(idx, g.idx32, io);                                       \
            if (i < -g.size || i >= g.size) {                                               \
                fk_index_report(flag, i);                                                   \
            } else {                                                                        \
                if (i < 0)                                                                  \
                    i += g.size;                                                            \
                FK_STORE_##sfx(out, oo, FK_LOAD_##sfx(src, so + i * g.stride[1][g.dim]));       \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    FK_KERNEL ferry_scatter_##sfx(FK_GLOBAL st *self, FK_GLOBAL fk_i64 *flag,               \
                                  FK_GLOBAL const st *src, FK_GLOBAL const fk_i64 *idx,     \
                                  fk_igeom g)                                               \
    {                                                                                       \
        FK_FOR_EACH(e, g.numel)                                                             \
        {                                                                                   \
            fk_i64 rest = e, to = g.offset[0], so = g.offset[1], io = g.offset[2], j = 0;   \
            for (int d = g.ndim - 1; d >= 0; d--) {                                         \
                fk_i64 p = rest % g.shape[d];                                               \
                rest /= g.shape[d];                                                         \
                to += p * g.stride[0][d];                                                   \
                if (d == g.dim) {                                                           \
                    j = p;                                                                  \
                } else {                                                                    \
                    so += p * g.stride[1][d];                                               \
                    io += p * g.stride[2][d];                                               \
                }                                                                           \
            }                                                                               \
            bool hit = false;                                                               \
            vt acc = FK_LOAD_##sfx(self, to);                                               \
            for (fk_i64 k = 0; k < g.ilen; k++) {                                           \
                fk_i64 i = fk_index_at(idx, g.idx32, io + k * g.stride[2][g.dim]);          \
                if (i < -g.size || i >= g.size) {                                           \
                    if (j == 0)                                                             \
                        fk_index_report(flag, i);                                           \
                    continue;                                                               \
                }                                                                           \
                if (i < 0)                                                                  \
                    i += g.size;                                                            \
                if (i != j)                                                                 \
                    continue;                                                               \
                vt x = FK_LOAD_##sfx(src, so + k * g.stride[1][g.dim]);                     \
                hit = true;                                                                 \
                acc = g.reduce ? FK_INDEX_ADD_##kind(sfx, vt, wt, acc, x) : x;              \
            }                                                                               \
            if (hit)                                                                        \
                FK_STORE_##sfx(self, to, acc);                                              \
        }                                                                                   \
    }

/* Integers wrap through the wide unsigned type; bool adds as logical or. */
#define FK_INDEX_ADD_INT(sfx, vt, wt, a, b) FK_INDEX_ADD_INT_##sfx(vt, wt, a, b)
#define FK_INDEX_ADD_F32(sfx, vt, wt, a, b) ((vt)((a) + (b)))
#define FK_INDEX_ADD_F64(sfx, vt, wt, a, b) ((vt)((a) + (b)))
#define FK_INDEX_ADD_INT_bool(vt, wt, a, b) ((vt)(((a) != 0) | ((b) != 0)))
#define FK_INDEX_ADD_INT_u8(vt, wt, a, b) ((vt)((wt)(a) + (wt)(b)))
#define FK_INDEX_ADD_INT_i8(vt, wt, a, b) ((vt)((wt)(a) + (wt)(b)))
#define FK_INDEX_ADD_INT_i16(vt, wt, a, b) ((vt)((wt)(a) + (wt)(b)))
#define FK_INDEX_ADD_INT_i32(vt, wt, a, b) ((vt)((wt)(a) + (wt)(b)))
#define FK_INDEX_ADD_INT_i64(vt, wt, a, b) ((vt)((wt)(a) + (wt)(b)))

#define FK_SELECT_INDEX(sfx, st, vt, wt, kind) FK_SELECTED(FK_DEFINE_INDEX, sfx, st, vt, wt, kind)
FK_DTYPES(FK_SELECT_INDEX)

#endif /* FK_NAMED_FAMILY(INDEX) */
#endif /* !FK_HOST */
#endif /* FERRY_INDEX_H */

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


/* "ferry.index" / "ferry.index_put" (ferry/ops/index.h) on a device: up to FK_XMAX index
 * tensors as kernel arguments (more are composed first, see FK_XLIN_SIZE). index walks
 * R (shape, strides st0 of out and st1 of src, ist of the indices); so does
 * index_put's assignment (xindex_set: of duplicates any one wins, as PyTorch says).
 * index_put's accumulation splits R into the dims outside the indices (shape, st0 of
 * self, st1 of values: numel elements) and B (bshape, bst1 of values, ist of the
 * indices: bnumel positions). xindex_keys gives each position of B one 64-bit key, the
 * row-major number of the self coordinates its indices name (its slot) above the
 * position's own number (pbits bits), ferry_sort.h's schedule sorts them as bare keys
 * (fk_sort_prepare_raw: tiles in local memory, then merges or global steps), and
 * xindex_acc has the first key of each run of one slot add the run's values in
 * position order: the cpu reference's order, so sums come out bit-identical to the
 * cpu's, duplicates need no atomics, and the work is O(R) plus the sort. */
#define FK_XMAX 4
typedef struct fk_xgeom {
    fk_i64 shape[FK_MAX_DIMS];
    fk_i64 st0[FK_MAX_DIMS];
    fk_i64 st1[FK_MAX_DIMS];
    fk_i64 bshape[FK_MAX_DIMS];
    fk_i64 bst1[FK_MAX_DIMS];
    fk_i64 ist[FK_XMAX][FK_MAX_DIMS];
    fk_i64 ioff[FK_XMAX];
    fk_i64 stride[FK_XMAX];
    fk_i64 size[FK_XMAX];
    fk_i64 off0, off1;
    fk_i64 numel;  /* threads' elements (accumulation: the dims outside B) */
    fk_i64 bnumel; /* index_put: positions of B */
    fk_i64 P;      /* accumulation: 2^pbits, a power of two >= bnumel */
    fk_i64 kat;    /* accumulation: where the sorted keys start in the scratch (u64) */
    fk_i32 ndim;
    fk_i32 nb;
    fk_i32 k;
    fk_i32 accumulate;
    fk_i32 idx32; /* bit j: index j is int32 */
    fk_i32 jbase; /* xindex_lin: the number among the op's indices of this launch's first */
    fk_i32 quiet; /* the index is composed (FK_XLIN_BAD already reported): skip, say nothing */
    fk_i32 pbits; /* accumulation: bits of a key that hold the position (P = 2^pbits) */
} fk_xgeom;

/* More than FK_XMAX indices: xindex_lin composes them, FK_XMAX per launch, into one
 * int64 offset per position of B (a bad index stores FK_XLIN_BAD), and the op then
 * runs with that one index, stride 1 and size FK_XLIN_SIZE, so the kernels need no
 * more arguments and slots (offsets into self) still name one element each. */
#define FK_XLIN_SIZE ((fk_i64)0x7fffffffffffffff)
#define FK_XLIN_BAD (-FK_XLIN_SIZE - 1)

#if defined(FERRY_OPS_INDEX_H) && !defined(__OPENCL_VERSION__)
/* The launch geometry of "ferry.gather" (gather 1) or "ferry.scatter" from the op's
 * tensors, shared by the OpenCL and CUDA hosts: 0 to launch over g->numel threads, -1
 * when the device cannot run it (the cpu runs it), 1 when there is nothing to do. */
static int fk_igeom_fill(fk_igeom *g, const ferry_op_args *a, int gather, const size_t *elsizes)
{
    if (a->ntensors != 4 || !a->params)
        return -1;
    const ferry_kernel_tensor *t0 = &a->tensors[0], *flag = &a->tensors[1];
    const ferry_kernel_tensor *src = &a->tensors[gather ? 2 : 3];
    const ferry_kernel_tensor *idx = &a->tensors[gather ? 3 : 2];
    /* Walked shape: out's (gather) or index's (scatter). The kernels write elements 0
     * and 1 of the flag's buffer: the core allocates it fresh, dense and at offset 0. */
    const ferry_kernel_tensor *walk = gather ? t0 : idx;
    if (walk->ndim > FK_MAX_DIMS || walk->ndim < 1 || flag->byte_offset != 0 ||
        flag->ndim != 1 || flag->strides[0] != 1)
        return -1;
    memset(g, 0, sizeof *g);
    g->ndim = walk->ndim;
    if (gather) {
        const ferry_gather_params *p = (const ferry_gather_params *)a->params;
        if (a->params_size < sizeof *p)
            return -1;
        g->dim = p->dim;
        g->size = p->size;
    } else {
        const ferry_scatter_params *p = (const ferry_scatter_params *)a->params;
        if (a->params_size < sizeof *p)
            return -1;
        g->dim = p->dim;
        g->size = p->size;
        g->reduce = p->reduce;
    }
    g->numel = 1;
    for (int d = 0; d < g->ndim; d++) {
        g->shape[d] = walk->shape[d];
        if (!gather && d == g->dim) {
            g->ilen = walk->shape[d];
            g->shape[d] = g->size;
        }
        g->numel *= g->shape[d];
    }
    if (g->numel == 0 || (!gather && g->ilen == 0))
        return 1;
    const ferry_kernel_tensor *ops[3] = {t0, src, idx};
    for (int k = 0; k < 3; k++) {
        for (int d = 0; d < g->ndim; d++)
            g->stride[k][d] = ops[k]->strides[d];
        g->offset[k] = (fk_i64)(ops[k]->byte_offset / elsizes[ops[k]->dtype]);
    }
    g->idx32 = idx->dtype == FERRY_INT32;
    return 0;
}

/* The launch geometry of "ferry.index" and index_put's assignment (put 0: R walked) or
 * index_put's accumulation (put 1: R split into B and the dims outside it) from the op's tensors,
 * shared by the OpenCL and CUDA hosts. 0 when the device can run it, -1
 * when not (too many dims: the cpu runs it), 1 when there is nothing to do. With more
 * than FK_XMAX indices the geometry is that of the composed index (its offset ioff[0]
 * set by the host, after fk_xgeom_group's launches have written it). */
static int fk_xgeom_fill(fk_xgeom *g, const ferry_op_args *a, int put, const size_t *elsizes)
{
    if (a->ntensors < 3 || !a->params || a->params_size < sizeof(ferry_index_params))
        return -1;
    const ferry_index_params *p = (const ferry_index_params *)a->params;
    if (p->k < 0 || p->k > FERRY_INDEX_MAX_INDICES || a->ntensors != 3 + p->k ||
        p->nbdims < 0 || p->nbdims > FK_MAX_DIMS || p->bdim < 0 ||
        p->bdim + p->nbdims > a->tensors[0].ndim)
        return -1;
    bool composed = p->k > FK_XMAX;
    const ferry_kernel_tensor *t0 = &a->tensors[0], *t2 = &a->tensors[2], *idx = &a->tensors[3];
    const ferry_kernel_tensor *flag = &a->tensors[1];
    if (flag->byte_offset != 0 || flag->ndim != 1 || flag->strides[0] != 1)
        return -1;
    memset(g, 0, sizeof *g);
    g->k = composed ? 1 : p->k;
    g->accumulate = p->accumulate;
    g->off0 = (fk_i64)(t0->byte_offset / elsizes[t0->dtype]);
    g->off1 = (fk_i64)(t2->byte_offset / elsizes[t2->dtype]);
    /* The composed index: dense over B, row-major. */
    fk_i64 cst[FK_MAX_DIMS];
    for (fk_i64 q = p->nbdims - 1, c = 1; q >= 0; q--) {
        cst[q] = c;
        c *= t0->shape[p->bdim + q];
    }
    if (composed) {
        /* Offsets of a device tensor are never negative (to() makes such views dense). */
        for (int j = 0; j < p->k; j++)
            if (p->stride[j] < 0)
                return -1;
        g->stride[0] = 1;
        g->size[0] = FK_XLIN_SIZE;
        g->quiet = 1;
    }
    for (int j = 0; j < p->k && !composed; j++) {
        g->ioff[j] = (fk_i64)(idx[j].byte_offset / elsizes[idx[j].dtype]);
        g->stride[j] = p->stride[j];
        g->size[j] = p->size[j];
        if (idx[j].dtype == FERRY_INT32)
            g->idx32 |= 1 << j;
    }
    g->numel = 1;
    g->bnumel = 1;
    for (int d = 0; d < t0->ndim; d++) {
        bool b_dim = d >= p->bdim && d < p->bdim + p->nbdims;
        bool in_b = put && b_dim;
        fk_i64 ist_c = b_dim ? cst[d - p->bdim] : 0;
        if (b_dim)
            g->bnumel *= t0->shape[d];
        if (in_b) {
            if (g->nb >= FK_MAX_DIMS)
                return -1;
            int q = g->nb++;
            g->bshape[q] = t0->shape[d];
            g->bst1[q] = t2->strides[d];
            for (int j = 0; j < g->k; j++)
                g->ist[j][q] = composed ? ist_c : idx[j].strides[d];
        } else {
            if (g->ndim >= FK_MAX_DIMS)
                return -1;
            int q = g->ndim++;
            g->shape[q] = t0->shape[d];
            g->st0[q] = t0->strides[d];
            g->st1[q] = t2->strides[d];
            for (int j = 0; j < g->k && !put; j++)
                g->ist[j][q] = composed ? ist_c : idx[j].strides[d];
            g->numel *= t0->shape[d];
        }
    }
    if (g->numel == 0 || g->bnumel == 0)
        return 1;
    /* A slot must fit above the position in 63 bits (so
     * no key is the padding's ~0): more than a device's memory could hold to need more. */
    if (put) {
        if (g->bnumel > ((fk_i64)1 << 40))
            return -1;
        for (g->P = 1; g->P < g->bnumel; g->P *= 2)
            g->pbits++;
        fk_i64 room = FK_XLIN_SIZE >> g->pbits, slots = 1;
        for (int j = 0; j < p->k; j++) {
            if (p->size[j] < 1 || p->stride[j] < 0)
                return -1;
            if (composed) { /* a slot is an offset into self: at most sum (size-1) stride */
                if (p->stride[j] > 0 && p->size[j] - 1 > (room - slots) / p->stride[j])
                    return -1;
                slots += (p->size[j] - 1) * p->stride[j];
            } else {
                if (slots > room / p->size[j])
                    return -1;
                slots *= p->size[j];
            }
        }
    }
    return 0;
}

/* The geometry of xindex_lin over indices j0 .. j0 + FK_XMAX - 1 (fewer at the end) of
 * an op fk_xgeom_fill accepted with more than FK_XMAX indices; the composed index is
 * written at element `at` of its buffer. Returns how many indices the launch takes. */
static int fk_xgeom_group(fk_xgeom *g, const ferry_op_args *a, int j0, fk_i64 at,
                          const size_t *elsizes)
{
    const ferry_index_params *p = (const ferry_index_params *)a->params;
    const ferry_kernel_tensor *t0 = &a->tensors[0], *idx = &a->tensors[3 + j0];
    memset(g, 0, sizeof *g);
    g->k = p->k - j0 < FK_XMAX ? p->k - j0 : FK_XMAX;
    g->jbase = j0;
    g->off0 = at;
    g->nb = p->nbdims;
    g->bnumel = 1;
    for (int q = 0; q < g->nb; q++) {
        g->bshape[q] = t0->shape[p->bdim + q];
        g->bnumel *= g->bshape[q];
        for (int j = 0; j < g->k; j++)
            g->ist[j][q] = idx[j].strides[p->bdim + q];
    }
    for (int j = 0; j < g->k; j++) {
        g->ioff[j] = (fk_i64)(idx[j].byte_offset / elsizes[idx[j].dtype]);
        g->stride[j] = p->stride[j0 + j];
        g->size[j] = p->size[j0 + j];
        if (idx[j].dtype == FERRY_INT32)
            g->idx32 |= 1 << j;
    }
    return g->k;
}
#endif

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

/* 16-bit floats add in float: the accumulation rounds to the stored type after each add. */
#define FK_INDEX_HALF_bool 0
#define FK_INDEX_HALF_u8 0
#define FK_INDEX_HALF_i8 0
#define FK_INDEX_HALF_i16 0
#define FK_INDEX_HALF_i32 0
#define FK_INDEX_HALF_i64 0
#define FK_INDEX_HALF_f16 1
#define FK_INDEX_HALF_bf16 1
#define FK_INDEX_HALF_f32 0
#define FK_INDEX_HALF_f64 0

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

FK_FUNC fk_i64 fk_xindex_at(FK_GLOBAL const fk_i64 *i0, FK_GLOBAL const fk_i64 *i1,
                            FK_GLOBAL const fk_i64 *i2, FK_GLOBAL const fk_i64 *i3, fk_i32 j,
                            fk_i32 idx32, fk_i64 at)
{
    FK_GLOBAL const fk_i64 *p = j == 0 ? i0 : j == 1 ? i1 : j == 2 ? i2 : i3;
    return fk_index_at(p, (idx32 >> j) & 1, at);
}

FK_FUNC void fk_xindex_report(FK_GLOBAL fk_i64 *flag, fk_i64 bad, fk_i32 j)
{
    flag[1] = bad;
    flag[2] = j;
    flag[0] = 1;
}

#define FK_XIDX_ARGS                                                                        \
    FK_GLOBAL const fk_i64 *i0, FK_GLOBAL const fk_i64 *i1, FK_GLOBAL const fk_i64 *i2,     \
        FK_GLOBAL const fk_i64 *i3

#define FK_DEFINE_XINDEX(sfx, st, vt, wt, kind)                                             \
    FK_KERNEL ferry_xindex_##sfx(FK_GLOBAL st *out, FK_GLOBAL fk_i64 *flag,                 \
                                 FK_GLOBAL const st *src, FK_XIDX_ARGS, fk_xgeom g)         \
    {                                                                                       \
        FK_FOR_EACH(e, g.numel)                                                             \
        {                                                                                   \
            fk_i64 rest = e, oo = g.off0, so = g.off1;                                      \
            fk_i64 io[FK_XMAX];                                                             \
            for (int j = 0; j < FK_XMAX; j++)                                               \
                io[j] = g.ioff[j];                                                          \
            for (int d = g.ndim - 1; d >= 0; d--) {                                         \
                fk_i64 p = rest % g.shape[d];                                               \
                rest /= g.shape[d];                                                         \
                oo += p * g.st0[d];                                                         \
                so += p * g.st1[d];                                                         \
                for (int j = 0; j < g.k; j++)                                               \
                    io[j] += p * g.ist[j][d];                                               \
            }                                                                               \
            bool ok = true;                                                                 \
            for (int j = 0; j < g.k && ok; j++) {                                           \
                fk_i64 i = fk_xindex_at(i0, i1, i2, i3, j, g.idx32, io[j]);                 \
                if (i < -g.size[j] || i >= g.size[j]) {                                     \
                    if (!g.quiet)                                                           \
                        fk_xindex_report(flag, i, j);                                       \
                    ok = false;                                                             \
                } else {                                                                    \
                    so += (i < 0 ? i + g.size[j] : i) * g.stride[j];                        \
                }                                                                           \
            }                                                                               \
            if (ok)                                                                         \
                FK_STORE_##sfx(out, oo, FK_LOAD_##sfx(src, so));                            \
        }                                                                                   \
    }                                                                                       \
    FK_KERNEL ferry_xindex_set_##sfx(FK_GLOBAL st *self, FK_GLOBAL fk_i64 *flag,            \
                                     FK_GLOBAL const st *vals, FK_XIDX_ARGS, fk_xgeom g)    \
    {                                                                                       \
        FK_FOR_EACH(e, g.numel)                                                             \
        {                                                                                   \
            fk_i64 rest = e, to = g.off0, vo = g.off1;                                      \
            fk_i64 io[FK_XMAX];                                                             \
            for (int j = 0; j < FK_XMAX; j++)                                               \
                io[j] = g.ioff[j];                                                          \
            for (int d = g.ndim - 1; d >= 0; d--) {                                         \
                fk_i64 p = rest % g.shape[d];                                               \
                rest /= g.shape[d];                                                         \
                to += p * g.st0[d];                                                         \
                vo += p * g.st1[d];                                                         \
                for (int j = 0; j < g.k; j++)                                               \
                    io[j] += p * g.ist[j][d];                                               \
            }                                                                               \
            bool ok = true;                                                                 \
            for (int j = 0; j < g.k && ok; j++) {                                           \
                fk_i64 i = fk_xindex_at(i0, i1, i2, i3, j, g.idx32, io[j]);                 \
                if (i < -g.size[j] || i >= g.size[j]) {                                     \
                    if (!g.quiet)                                                           \
                        fk_xindex_report(flag, i, j);                                       \
                    ok = false;                                                             \
                } else {                                                                    \
                    to += (i < 0 ? i + g.size[j] : i) * g.stride[j];                        \
                }                                                                           \
            }                                                                               \
            if (ok)                                                                         \
                FK_STORE_##sfx(self, to, FK_LOAD_##sfx(vals, vo));                          \
        }                                                                                   \
    }                                                                                       \
    FK_KERNEL ferry_xindex_acc_##sfx(FK_GLOBAL st *self, FK_GLOBAL const fk_u64 *keys,       \
                                     FK_GLOBAL const st *vals, fk_xgeom g)                  \
    {                                                                                       \
        FK_FOR_EACH(e, g.numel * g.bnumel)                                                  \
        {                                                                                   \
            fk_i64 s = e / g.numel, rest = e % g.numel, to = g.off0, vo = g.off1;           \
            FK_GLOBAL const fk_u64 *scr = keys + g.kat;                                     \
            fk_u64 slot = scr[s] >> g.pbits;                                                \
            if (scr[s] == ~(fk_u64)0 || (s > 0 && scr[s - 1] >> g.pbits == slot))           \
                continue;                                                                   \
            for (int d = g.ndim - 1; d >= 0; d--) {                                         \
                fk_i64 p = rest % g.shape[d];                                               \
                rest /= g.shape[d];                                                         \
                to += p * g.st0[d];                                                         \
                vo += p * g.st1[d];                                                         \
            }                                                                               \
            fk_i64 c = (fk_i64)slot;                                                        \
            for (int j = g.k - 1; j >= 0; j--) {                                            \
                to += (c % g.size[j]) * g.stride[j];                                        \
                c /= g.size[j];                                                             \
            }                                                                               \
            vt acc = FK_LOAD_##sfx(self, to);                                               \
            fk_u64 mask = ((fk_u64)1 << g.pbits) - 1;                                       \
            for (fk_i64 q = s; q < g.bnumel && scr[q] >> g.pbits == slot; q++) {            \
                fk_i64 r2 = (fk_i64)(scr[q] & mask), v = vo;                                \
                for (int d = g.nb - 1; d >= 0; d--) {                                       \
                    v += (r2 % g.bshape[d]) * g.bst1[d];                                    \
                    r2 /= g.bshape[d];                                                      \
                }                                                                           \
                vt x = FK_LOAD_##sfx(vals, v);                                              \
                acc = FK_INDEX_ADD_##kind(sfx, vt, wt, acc, x);                             \
                if (FK_INDEX_HALF_##sfx) { /* rounded at each add, as the cpu's */          \
                    FK_STORE_##sfx(self, to, acc);                                          \
                    acc = FK_LOAD_##sfx(self, to);                                          \
                }                                                                           \
            }                                                                               \
            FK_STORE_##sfx(self, to, acc);                                                  \
        }                                                                                   \
    }

#define FK_SELECT_XINDEX(sfx, st, vt, wt, kind) FK_SELECTED(FK_DEFINE_XINDEX, sfx, st, vt, wt, kind)
FK_DTYPES(FK_SELECT_XINDEX)

/* io[j]: where position t of the broadcast index shape (g->bshape) lies in index tensor
 * j < g->k (the rest keep g->ioff). */
FK_FUNC void fk_xindex_offsets(const fk_xgeom *g, fk_i64 t, fk_i64 *io)
{
    fk_i64 rest = t;
    for (int j = 0; j < FK_XMAX; j++)
        io[j] = g->ioff[j];
    for (int d = g->nb - 1; d >= 0; d--) {
        fk_i64 p = rest % g->bshape[d];
        rest /= g->bshape[d];
        for (int j = 0; j < g->k; j++)
            io[j] += p * g->ist[j][d];
    }
}

/* index_put's accumulation, step 1: the key (slot << pbits | position) of each position
 * of B into the sort's scratch scr[0, bnumel); a bad index gets the largest key, ~0, so
 * it sorts last and adds nothing. */
FK_KERNEL ferry_xindex_keys(FK_GLOBAL fk_u64 *scr, FK_GLOBAL fk_i64 *flag, FK_XIDX_ARGS,
                            fk_xgeom g)
{
    FK_FOR_EACH(t, g.bnumel)
    {
        fk_i64 io[FK_XMAX];
        fk_xindex_offsets(&g, t, io);
        fk_i64 slot = 0;
        bool ok = true;
        for (int j = 0; j < g.k && ok; j++) {
            fk_i64 i = fk_xindex_at(i0, i1, i2, i3, j, g.idx32, io[j]);
            if (i < -g.size[j] || i >= g.size[j]) {
                if (!g.quiet)
                    fk_xindex_report(flag, i, j);
                ok = false;
            } else {
                slot = slot * g.size[j] + (i < 0 ? i + g.size[j] : i);
            }
        }
        scr[t] = ok ? (fk_u64)slot << g.pbits | (fk_u64)t : ~(fk_u64)0;
    }
}

/* Composes up to FK_XMAX indices (g from fk_xgeom_group) into lin[off0, off0 + bnumel):
 * the first launch (jbase 0) starts from 0, later ones add to it; FK_XLIN_BAD stays. */
FK_KERNEL ferry_xindex_lin(FK_GLOBAL fk_i64 *lin, FK_GLOBAL fk_i64 *flag, FK_XIDX_ARGS,
                           fk_xgeom g)
{
    FK_FOR_EACH(t, g.bnumel)
    {
        fk_i64 io[FK_XMAX];
        fk_xindex_offsets(&g, t, io);
        fk_i64 s = g.jbase ? lin[g.off0 + t] : 0;
        for (int j = 0; j < g.k && s != FK_XLIN_BAD; j++) {
            fk_i64 i = fk_xindex_at(i0, i1, i2, i3, j, g.idx32, io[j]);
            if (i < -g.size[j] || i >= g.size[j]) {
                fk_xindex_report(flag, i, g.jbase + j);
                s = FK_XLIN_BAD;
            } else {
                s += (i < 0 ? i + g.size[j] : i) * g.stride[j];
            }
        }
        lin[g.off0 + t] = s;
    }
}

#endif /* FK_NAMED_FAMILY(INDEX) */
#endif /* !FK_HOST */
#endif /* FERRY_INDEX_H */

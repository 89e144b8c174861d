/* Triangle kernels of the shape2 family (ferry/ops/shape2.h), shared by OpenCL and CUDA:
 * one thread per element of a [batch, rows, cols] view. Elements are copied as raw bits
 * of their size (zero bits are 0, 0.0 and false in every dtype), so four kernels serve
 * the ten dtypes and no device needs fp64 for float64. */
#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

#ifndef FERRY_SHAPE2_KERNELS_H
#define FERRY_SHAPE2_KERNELS_H

/* Offsets and strides in elements; every member is 8 bytes but the last two. */
typedef struct fk_tgeom {
    fk_i64 batch, rows, cols;
    fk_i64 in_offset, in_s0, in_s1, in_s2;
    fk_i64 out_offset, out_s0, out_s1, out_s2;
    fk_i64 diagonal;
    fk_i32 upper;
    fk_i32 pad;
} fk_tgeom;

#endif

#if !defined(FK_HOST)
#if FK_NAMED_FAMILY(SHAPE2)

#define FK_DEFINE_TRI(sfx, rt)                                                            \
    FK_KERNEL ferry_tri_##sfx(FK_GLOBAL rt *out, FK_GLOBAL const rt *in, fk_tgeom g)      \
    {                                                                                     \
        FK_FOR_EACH(e, g.batch * g.rows * g.cols)                                         \
        {                                                                                 \
            fk_i64 j = e % g.cols, r = e / g.cols;                                        \
            fk_i64 i = r % g.rows, b = r / g.rows;                                        \
            fk_i64 k = j - i;                                                             \
            int keep = g.upper ? k >= g.diagonal : k <= g.diagonal;                       \
            rt v = keep ? in[g.in_offset + b * g.in_s0 + i * g.in_s1 + j * g.in_s2] : (rt)0; \
            out[g.out_offset + b * g.out_s0 + i * g.out_s1 + j * g.out_s2] = v;           \
        }                                                                                 \
    }
/* One kernel per element size, named by the dtype that stands for it. */
#define FK_SELECT_TRI(sfx, rt) FK_SELECTED(FK_DEFINE_TRI, sfx, rt)
FK_SELECT_TRI(u8, fk_u8)
FK_SELECT_TRI(i16, fk_u16)
FK_SELECT_TRI(i32, fk_u32)
FK_SELECT_TRI(i64, fk_u64)

#endif
#endif

/* Host side (the OpenCL and CUDA entries): the geometry of [out, in] and the stand-in
 * dtype of an element size. Checks what the kernels assume, so anything else is refused
 * and runs on the cpu backend. */
#if defined(FERRY_BACKEND_H) && !defined(__OPENCL_VERSION__) && !defined(FK_TRI_HOST_DONE)
#define FK_TRI_HOST_DONE 1
#include <string.h>

/* The dtype whose kernel copies elements of d's size. */
static inline ferry_dtype fk_tri_standin(ferry_dtype d)
{
    static const ferry_dtype by_dtype[FERRY_NUM_DTYPES] = {
        FERRY_UINT8, FERRY_UINT8, FERRY_UINT8, FERRY_INT16, FERRY_INT32,
        FERRY_INT64, FERRY_INT16, FERRY_INT16, FERRY_INT32, FERRY_INT64};
    return by_dtype[d];
}

/* 0 on success, -1 when shapes, dtypes or params are not what ferry/ops/shape2.h
 * describes. */
static inline int fk_tri_geom(fk_tgeom *g, const ferry_op_args *a)
{
    static const int size[FERRY_NUM_DTYPES] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};
    if (a->ntensors != 2 || a->noutputs != 1 || !a->params ||
        a->params_size < sizeof(ferry_tri_params))
        return -1;
    const ferry_tri_params *p = (const ferry_tri_params *)a->params;
    const ferry_kernel_tensor *out = &a->tensors[0], *in = &a->tensors[1];
    if (out->ndim != 3 || in->ndim != 3 || (unsigned)in->dtype >= FERRY_NUM_DTYPES ||
        out->dtype != in->dtype || (p->upper != 0 && p->upper != 1))
        return -1;
    for (int d = 0; d < 3; d++)
        if (out->shape[d] != in->shape[d] || in->shape[d] < 0)
            return -1;
    size_t es = (size_t)size[in->dtype];
    if (in->byte_offset % es || out->byte_offset % es)
        return -1;
    g->batch = in->shape[0];
    g->rows = in->shape[1];
    g->cols = in->shape[2];
    g->in_offset = (fk_i64)(in->byte_offset / es);
    g->out_offset = (fk_i64)(out->byte_offset / es);
    g->in_s0 = in->strides[0];
    g->in_s1 = in->strides[1];
    g->in_s2 = in->strides[2];
    g->out_s0 = out->strides[0];
    g->out_s1 = out->strides[1];
    g->out_s2 = out->strides[2];
    g->diagonal = p->diagonal;
    g->upper = p->upper;
    g->pad = 0;
    return 0;
}
#endif

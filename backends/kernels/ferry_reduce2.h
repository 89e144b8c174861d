/* Line kernels of the reduce2 family (ferry/ops/reduce2.h), shared by OpenCL and CUDA:
 * one thread per line of a [outer, len, inner] view, walking the line in order, so a
 * scan needs no second pass and a product keeps PyTorch's sequential order. */
#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

#ifndef FERRY_REDUCE2_KERNELS_H
#define FERRY_REDUCE2_KERNELS_H

/* Op numbers of fk_lgeom.op. */
#define FK_L2_PROD 0
#define FK_L2_CUMSUM 1
#define FK_L2_CUMPROD 2
#define FK_L2_SOFTMAX 3
#define FK_L2_LOG_SOFTMAX 4

/* Offsets and strides in elements; every member is 8 bytes but the last two. */
typedef struct fk_lgeom {
    fk_i64 outer, len, inner;
    fk_i64 in_offset, in_s0, in_s1, in_s2;
    fk_i64 out_offset, out_s0, out_s1, out_s2;
    fk_i32 op;
    fk_i32 pad;
} fk_lgeom;

#endif

#if !defined(FK_HOST)
#if FK_NAMED_FAMILY(REDUCE2)

/* Per value kind: the accumulator, the output element type and its load/store. Integer
 * products and sums wrap in 64-bit unsigned arithmetic and store int64. */
#define FK_L2_ACC_INT fk_u64
#define FK_L2_ACC_F32 float
#define FK_L2_ACC_F64 double
#define FK_L2_OT_INT(st) fk_i64
#define FK_L2_OT_F32(st) st
#define FK_L2_OT_F64(st) st
#define FK_L2_LD_INT(sfx, p, i) ((fk_u64)(fk_i64)FK_LOAD_##sfx(p, i))
#define FK_L2_LD_F32(sfx, p, i) FK_LOAD_##sfx(p, i)
#define FK_L2_LD_F64(sfx, p, i) FK_LOAD_##sfx(p, i)
#define FK_L2_ST_INT(sfx, p, i, v) ((p)[i] = (fk_i64)(v))
#define FK_L2_ST_F32(sfx, p, i, v) FK_STORE_##sfx(p, i, v)
#define FK_L2_ST_F64(sfx, p, i, v) FK_STORE_##sfx(p, i, v)

#define FK_L2_LINE(g, j, ip, opos)                                                        \
    fk_i64 lo_ = (j) / (g).inner, li_ = (j) - lo_ * (g).inner;                            \
    fk_i64 ip = (g).in_offset + lo_ * (g).in_s0 + li_ * (g).in_s2;                        \
    fk_i64 opos = (g).out_offset + lo_ * (g).out_s0 + li_ * (g).out_s2;

#define FK_DEFINE_L2_SCAN(sfx, st, kind)                                                  \
    FK_KERNEL ferry_r2_scan_##sfx(FK_GLOBAL FK_L2_OT_##kind(st) *out,                     \
                                  FK_GLOBAL const st *in, fk_lgeom g)                     \
    {                                                                                     \
        FK_FOR_EACH(j, g.outer * g.inner)                                                 \
        {                                                                                 \
            FK_L2_LINE(g, j, ip, opos)                                                    \
            FK_L2_ACC_##kind a = g.op == FK_L2_CUMSUM ? (FK_L2_ACC_##kind)0               \
                                                      : (FK_L2_ACC_##kind)1;              \
            for (fk_i64 l = 0; l < g.len; l++) {                                          \
                FK_L2_ACC_##kind x = FK_L2_LD_##kind(sfx, in, ip + l * g.in_s1);          \
                a = g.op == FK_L2_CUMSUM ? a + x : a * x;                                 \
                if (g.op != FK_L2_PROD)                                                   \
                    FK_L2_ST_##kind(sfx, out, opos + l * g.out_s1, a);                    \
            }                                                                             \
            if (g.op == FK_L2_PROD)                                                       \
                FK_L2_ST_##kind(sfx, out, opos, a);                                       \
        }                                                                                 \
    }

/* Softmax rows: the max first (NaN wins, so a NaN row stays NaN; an all -inf row gives
 * NaN as PyTorch), then the sum of exp(x - max), then the outputs. */
#define FK_DEFINE_L2_SOFTMAX(sfx, st, vt)                                                 \
    FK_KERNEL ferry_r2_softmax_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *in,           \
                                     fk_lgeom g)                                          \
    {                                                                                     \
        FK_FOR_EACH(j, g.outer * g.inner)                                                 \
        {                                                                                 \
            FK_L2_LINE(g, j, ip, opos)                                                    \
            vt m = FK_LOAD_##sfx(in, ip);                                                 \
            for (fk_i64 l = 1; l < g.len; l++) {                                          \
                vt x = FK_LOAD_##sfx(in, ip + l * g.in_s1);                               \
                if (x != x || x > m)                                                      \
                    m = m != m ? m : x;                                                   \
            }                                                                             \
            vt s = (vt)0;                                                                 \
            for (fk_i64 l = 0; l < g.len; l++)                                            \
                s += exp(FK_LOAD_##sfx(in, ip + l * g.in_s1) - m);                        \
            vt ls = log(s);                                                               \
            for (fk_i64 l = 0; l < g.len; l++) {                                          \
                vt x = FK_LOAD_##sfx(in, ip + l * g.in_s1) - m;                           \
                vt y = g.op == FK_L2_SOFTMAX ? exp(x) / s : x - ls;                       \
                FK_STORE_##sfx(out, opos + l * g.out_s1, y);                              \
            }                                                                             \
        }                                                                                 \
    }
#define FK_DEFINE_L2_SOFTMAX_INT(sfx, st, vt)
#define FK_DEFINE_L2_SOFTMAX_F32(sfx, st, vt) FK_DEFINE_L2_SOFTMAX(sfx, st, vt)
#define FK_DEFINE_L2_SOFTMAX_F64(sfx, st, vt) FK_DEFINE_L2_SOFTMAX(sfx, st, vt)

#define FK_DEFINE_REDUCE2(sfx, st, vt, wt, kind)                                          \
    FK_DEFINE_L2_SCAN(sfx, st, kind)                                                      \
    FK_DEFINE_L2_SOFTMAX_##kind(sfx, st, vt)
#define FK_SELECT_REDUCE2(sfx, st, vt, wt, kind)                                          \
    FK_SELECTED(FK_DEFINE_REDUCE2, sfx, st, vt, wt, kind)
FK_DTYPES(FK_SELECT_REDUCE2)

#endif
#endif

/* Host side (the OpenCL and CUDA entries): the launch geometry of [out, in] and the op
 * of a name. Checks what the kernels assume, so anything else is refused and runs on the
 * cpu backend. */
#if defined(FERRY_BACKEND_H) && !defined(__OPENCL_VERSION__) && !defined(FK_L2_HOST_DONE)
#define FK_L2_HOST_DONE 1
#include <string.h>
static inline int fk_l2_op_of(const char *name)
{
    static const char *const names[] = {"ferry.prod", "ferry.cumsum", "ferry.cumprod",
                                        "ferry.softmax", "ferry.log_softmax"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* 0 on success, -1 when the op, shapes or dtypes are not what ferry/ops/reduce2.h
 * describes. */
static inline int fk_l2_geom(fk_lgeom *g, int op, const ferry_op_args *a)
{
    static const int size[FERRY_NUM_DTYPES] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};
    if (op < 0 || a->ntensors != 2 || a->noutputs != 1)
        return -1;
    const ferry_kernel_tensor *out = &a->tensors[0], *in = &a->tensors[1];
    if (out->ndim != 3 || in->ndim != 3 || (unsigned)in->dtype >= FERRY_NUM_DTYPES ||
        (unsigned)out->dtype >= FERRY_NUM_DTYPES)
        return -1;
    bool floating = in->dtype == FERRY_FLOAT16 || in->dtype == FERRY_BFLOAT16 ||
                    in->dtype == FERRY_FLOAT32 || in->dtype == FERRY_FLOAT64;
    ferry_dtype want = floating ? in->dtype : FERRY_INT64;
    if (out->dtype != want || (op >= FK_L2_SOFTMAX && !floating))
        return -1;
    if (out->shape[0] != in->shape[0] || out->shape[2] != in->shape[2] ||
        out->shape[1] != (op == FK_L2_PROD ? 1 : in->shape[1]))
        return -1;
    if (in->byte_offset % (size_t)size[in->dtype] || out->byte_offset % (size_t)size[out->dtype])
        return -1;
    g->outer = in->shape[0];
    g->len = in->shape[1];
    g->inner = in->shape[2];
    g->in_offset = (fk_i64)(in->byte_offset / (size_t)size[in->dtype]);
    g->out_offset = (fk_i64)(out->byte_offset / (size_t)size[out->dtype]);
    g->in_s0 = in->strides[0];
    g->in_s1 = in->strides[1];
    g->in_s2 = in->strides[2];
    g->out_s0 = out->strides[0];
    g->out_s1 = out->strides[1];
    g->out_s2 = out->strides[2];
    g->op = op;
    g->pad = 0;
    return 0;
}
#endif

/* A plain batched matmul kernel shared by the OpenCL and CUDA backends, one thread per
 * output element, for what the vendor BLAS does not cover (integers) and for small
 * products where a BLAS launch costs more than the arithmetic. */
#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

/* Integers accumulate in their own width, wrapping (in the wide unsigned type), as
 * PyTorch does; float16/bfloat16 accumulate in float32 and round once. */
#define FK_MM_ACC_INT(vt, wt) wt
#define FK_MM_ACC_F32(vt, wt) float
#define FK_MM_ACC_F64(vt, wt) double

#define FK_DEFINE_MATMUL(sfx, st, vt, wt, kind)                                           \
    FK_KERNEL ferry_matmul_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *a,                \
                                 FK_GLOBAL const st *b, fk_mgeom g)                       \
    {                                                                                     \
        FK_FOR_EACH(w, g.batch * g.m * g.n)                                               \
        {                                                                                 \
            fk_i64 t = w / g.n;                                                           \
            fk_i64 j = w - t * g.n;                                                       \
            fk_i64 bt = t / g.m;                                                          \
            fk_i64 i = t - bt * g.m;                                                      \
            fk_i64 ao = g.a_offset + bt * g.a_sb + i * g.a_sm;                            \
            fk_i64 bo = g.b_offset + bt * g.b_sb + j * g.b_sn;                            \
            FK_CAT(FK_MM_ACC_, kind)(vt, wt) acc = 0;                                     \
            for (fk_i64 k = 0; k < g.k; k++) {                                            \
                acc += (FK_CAT(FK_MM_ACC_, kind)(vt, wt))FK_LOAD_##sfx(a, ao + k * g.a_sk) * \
                       (FK_CAT(FK_MM_ACC_, kind)(vt, wt))FK_LOAD_##sfx(b, bo + k * g.b_sk);  \
            }                                                                             \
            FK_STORE_##sfx(out, g.o_offset + bt * g.o_sb + i * g.o_sm + j * g.o_sn, acc); \
        }                                                                                 \
    }
#define FK_SELECT_MATMUL(sfx, st, vt, wt, kind)                                           \
    FK_SELECTED(FK_DEFINE_MATMUL, sfx, st, vt, wt, kind)
#if FK_FAMILY_MATMUL
FK_DTYPES(FK_SELECT_MATMUL)
#endif

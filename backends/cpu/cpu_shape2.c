/* The shape2 family on the cpu backend (ferry/ops/shape2.h): tril/triu of a [batch,
 * rows, cols] view, any strides (0 and negative too), every dtype copied as raw bits of
 * its size. The reference for every device and their fallback. */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ferry/ops/shape2.h>

#include "cpu_internal.h"
#include "ferry_kernels.h"
#include "ferry_shape2.h"

#define CPU_TRI(name, rt)                                                                 \
    static void name(const fk_tgeom *g, void *outp, const void *inp, int64_t r0, int64_t r1) \
    {                                                                                     \
        rt *out = outp;                                                                   \
        const rt *in = inp;                                                               \
        for (int64_t r = r0; r < r1; r++) {                                               \
            int64_t b = r / g->rows, i = r - b * g->rows;                                 \
            const rt *x = in + g->in_offset + b * g->in_s0 + i * g->in_s1;                \
            rt *y = out + g->out_offset + b * g->out_s0 + i * g->out_s1;                  \
            for (int64_t j = 0; j < g->cols; j++) {                                       \
                int64_t k = j - i;                                                        \
                bool keep = g->upper ? k >= g->diagonal : k <= g->diagonal;               \
                y[j * g->out_s2] = keep ? x[j * g->in_s2] : (rt)0;                        \
            }                                                                             \
        }                                                                                 \
    }
CPU_TRI(cpu_tri_1, uint8_t)
CPU_TRI(cpu_tri_2, uint16_t)
CPU_TRI(cpu_tri_4, uint32_t)
CPU_TRI(cpu_tri_8, uint64_t)

static ferry_status cpu_tri(int32_t device, const ferry_op_args *a)
{
    (void)device;
    fk_tgeom g;
    if (fk_tri_geom(&g, a) != 0)
        return FERRY_ERR_INVALID_ARGUMENT;
    int64_t lines = g.batch * g.rows;
    if (lines == 0 || g.cols == 0)
        return FERRY_OK;
    void (*fn)(const fk_tgeom *, void *, const void *, int64_t, int64_t);
    switch (fk_tri_standin(a->tensors[1].dtype)) {
    case FERRY_UINT8: fn = cpu_tri_1; break;
    case FERRY_INT16: fn = cpu_tri_2; break;
    case FERRY_INT32: fn = cpu_tri_4; break;
    default: fn = cpu_tri_8; break;
    }
    /* The geometry counts in elements from the buffers' starts. */
    void *out = a->tensors[0].buffer;
    const void *in = a->tensors[1].buffer;
    int nt = cpu_threads_for(lines * g.cols, 32768);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        cpu_thread_part(lines, 1, &lo, &hi);
        if (lo < hi)
            fn(&g, out, in, lo, hi);
    }
    return FERRY_OK;
}

const ferry_named_entry cpu_named_shape2[] = {
    {FERRY_OP_TRI, cpu_tri},
    {NULL, NULL},
};

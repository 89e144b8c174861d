/* Elementwise kernels shared by the OpenCL and CUDA backends: fill and strided copy by
 * element width, casts between every pair of dtypes, unary and binary ops and
 * comparisons, each over any strides (fk_geom) with a dense fast path. */
#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

/* ---- fill and copy: bit patterns, so one kernel per element width ------------------ */

#define FK_WIDTHS(X) X(w8, fk_u8) X(w16, fk_u16) X(w32, fk_u32) X(w64, fk_u64)

#define FK_DEFINE_FILL_COPY(w, T)                                                         \
    FK_KERNEL ferry_fill_##w(FK_GLOBAL T *out, T value, fk_geom g)                        \
    {                                                                                     \
        FK_FOR_EACH(i, g.numel)                                                           \
        {                                                                                 \
            fk_i64 off[1];                                                                \
            fk_offsets(&g, i, 1, off);                                                    \
            out[off[0]] = value;                                                          \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_copy_##w(FK_GLOBAL T *out, FK_GLOBAL const T *in, fk_geom g)          \
    {                                                                                     \
        FK_FOR_EACH(i, g.numel)                                                           \
        {                                                                                 \
            fk_i64 off[2];                                                                \
            fk_offsets(&g, i, 2, off);                                                    \
            out[off[0]] = in[off[1]];                                                     \
        }                                                                                 \
    }
FK_WIDTHS(FK_DEFINE_FILL_COPY)

/* ---- casts: ferry_cast_<src>_<dst> (the host sends same-dtype work to a copy) ------- */

#define FK_DEFINE_CAST_PAIR(S, D)                                                         \
    FK_KERNEL ferry_cast_##S##_##D(FK_GLOBAL FK_ST_##D *out, FK_GLOBAL const FK_ST_##S *in, \
                                   fk_geom g)                                             \
    {                                                                                     \
        FK_FOR_EACH(i, g.numel)                                                           \
        {                                                                                 \
            fk_i64 off[2];                                                                \
            fk_offsets(&g, i, 2, off);                                                    \
            FK_VT_##S x = FK_LOAD_##S(in, off[1]);                                        \
            FK_STORE_##D(out, off[0], FK_CONVERT(S, D, x));                               \
        }                                                                                 \
    }
#define FK_DEFINE_CAST_ROW(S, st, vt, wt, kind) FK_DTYPES_WITH(FK_DEFINE_CAST_PAIR, S)
FK_DTYPES(FK_DEFINE_CAST_ROW)

/* ---- scalar op functions, by value kind ---------------------------------------------
 * Integers (and bool, whose stores normalise to 0/1) compute in the wide unsigned type,
 * where overflow wraps as PyTorch's integer ops do; the float-only unary ops and DIV
 * never reach them (the core converts integer inputs to float32 first). */

#define FK_DEFINE_OPS_INT(sfx, vt, wt)                                                    \
    FK_FUNC wt fk_ipow_##sfx(vt base, vt e)                                               \
    {                                                                                     \
        /* A negative exponent gives 0 except for the bases 1 and -1 (PyTorch). */        \
        if (e < 0)                                                                        \
            return base == 1 ? (wt)1 : base == (vt)-1 ? ((e & 1) ? (wt)0 - 1u : (wt)1)    \
                                                      : (wt)0;                            \
        wt r = 1, b = (wt)base;                                                           \
        while (e > 0) {                                                                   \
            if (e & 1)                                                                    \
                r *= b;                                                                   \
            b *= b;                                                                       \
            e >>= 1;                                                                      \
        }                                                                                 \
        return r;                                                                         \
    }                                                                                     \
    FK_FUNC vt fk_unary_##sfx(int op, vt x)                                               \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_UN_NEG:                                                                   \
            return (vt)((wt)0 - (wt)x);                                                   \
        case FK_UN_ABS:                                                                   \
            return x < 0 ? (vt)((wt)0 - (wt)x) : x;                                       \
        case FK_UN_RELU:                                                                  \
            return x > 0 ? x : (vt)0;                                                     \
        default:                                                                          \
            return x;                                                                     \
        }                                                                                 \
    }                                                                                     \
    FK_FUNC vt fk_binary_##sfx(int op, vt a, vt b)                                        \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_BIN_ADD:                                                                  \
            return (vt)((wt)a + (wt)b);                                                   \
        case FK_BIN_SUB:                                                                  \
            return (vt)((wt)a - (wt)b);                                                   \
        case FK_BIN_MUL:                                                                  \
            return (vt)((wt)a * (wt)b);                                                   \
        case FK_BIN_POW:                                                                  \
            return (vt)fk_ipow_##sfx(a, b);                                               \
        case FK_BIN_MAXIMUM:                                                              \
            return a > b ? a : b;                                                         \
        case FK_BIN_MINIMUM:                                                              \
            return a < b ? a : b;                                                         \
        default:                                                                          \
            return (vt)0;                                                                 \
        }                                                                                 \
    }

/* Floats (and the 16-bit floats, in float): MAXIMUM and MINIMUM propagate NaN, RELU
 * keeps it. Constants go through (vt) so a float kernel never holds a double. */
#define FK_DEFINE_OPS_FLOAT(sfx, vt, wt)                                                  \
    FK_FUNC vt fk_unary_##sfx(int op, vt x)                                               \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_UN_NEG:                                                                   \
            return -x;                                                                    \
        case FK_UN_ABS:                                                                   \
            return fabs(x);                                                               \
        case FK_UN_EXP:                                                                   \
            return exp(x);                                                                \
        case FK_UN_LOG:                                                                   \
            return log(x);                                                                \
        case FK_UN_SQRT:                                                                  \
            return sqrt(x);                                                               \
        case FK_UN_SIN:                                                                   \
            return sin(x);                                                                \
        case FK_UN_COS:                                                                   \
            return cos(x);                                                                \
        case FK_UN_TANH:                                                                  \
            return tanh(x);                                                               \
        case FK_UN_SIGMOID:                                                               \
            return (vt)1 / ((vt)1 + exp(-x));                                             \
        case FK_UN_RELU:                                                                  \
            return x > (vt)0 ? x : x != x ? x : (vt)0;                                    \
        default:                                                                          \
            return x;                                                                     \
        }                                                                                 \
    }                                                                                     \
    FK_FUNC vt fk_binary_##sfx(int op, vt a, vt b)                                        \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_BIN_ADD:                                                                  \
            return a + b;                                                                 \
        case FK_BIN_SUB:                                                                  \
            return a - b;                                                                 \
        case FK_BIN_MUL:                                                                  \
            return a * b;                                                                 \
        case FK_BIN_DIV:                                                                  \
            return a / b;                                                                 \
        case FK_BIN_POW:                                                                  \
            return pow(a, b);                                                             \
        case FK_BIN_MAXIMUM:                                                              \
            return a != a ? a : b != b ? b : a > b ? a : b;                               \
        case FK_BIN_MINIMUM:                                                              \
            return a != a ? a : b != b ? b : a < b ? a : b;                               \
        default:                                                                          \
            return (vt)0;                                                                 \
        }                                                                                 \
    }
#define FK_DEFINE_OPS_F32 FK_DEFINE_OPS_FLOAT
#define FK_DEFINE_OPS_F64 FK_DEFINE_OPS_FLOAT

/* Comparisons on values: NaN compares unequal to everything, itself included. */
#define FK_DEFINE_COMPARE_FN(sfx, vt)                                                     \
    FK_FUNC fk_u8 fk_compare_##sfx(int op, vt a, vt b)                                    \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_BIN_EQ:                                                                   \
            return a == b;                                                                \
        case FK_BIN_NE:                                                                   \
            return a != b;                                                                \
        case FK_BIN_LT:                                                                   \
            return a < b;                                                                 \
        case FK_BIN_LE:                                                                   \
            return a <= b;                                                                \
        case FK_BIN_GT:                                                                   \
            return a > b;                                                                 \
        case FK_BIN_GE:                                                                   \
            return a >= b;                                                                \
        default:                                                                          \
            return 0;                                                                     \
        }                                                                                 \
    }

/* ---- unary, binary, compare kernels, one per dtype with the op as an argument ------- *
 * The op is the same for every thread, so the switch is a uniform branch; on PoCL it
 * costs under 10% against a kernel per (op, dtype), for a tenth of the kernels. */
#define FK_DEFINE_ARITH(sfx, st, vt, wt, kind)                                            \
    FK_CAT(FK_DEFINE_OPS_, kind)(sfx, vt, wt)                                             \
    FK_DEFINE_COMPARE_FN(sfx, vt)                                                         \
    FK_KERNEL ferry_unary_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *in, fk_geom g,     \
                                fk_i32 op)                                                \
    {                                                                                     \
        FK_FOR_EACH(i, g.numel)                                                           \
        {                                                                                 \
            fk_i64 off[2];                                                                \
            fk_offsets(&g, i, 2, off);                                                    \
            FK_STORE_##sfx(out, off[0], fk_unary_##sfx(op, FK_LOAD_##sfx(in, off[1])));   \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_binary_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *a,                \
                                 FK_GLOBAL const st *b, fk_geom g, fk_i32 op)             \
    {                                                                                     \
        FK_FOR_EACH(i, g.numel)                                                           \
        {                                                                                 \
            fk_i64 off[3];                                                                \
            fk_offsets(&g, i, 3, off);                                                    \
            vt x = FK_LOAD_##sfx(a, off[1]);                                              \
            vt y = FK_LOAD_##sfx(b, off[2]);                                              \
            FK_STORE_##sfx(out, off[0], fk_binary_##sfx(op, x, y));                       \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_compare_##sfx(FK_GLOBAL fk_u8 *out, FK_GLOBAL const st *a,            \
                                  FK_GLOBAL const st *b, fk_geom g, fk_i32 op)            \
    {                                                                                     \
        FK_FOR_EACH(i, g.numel)                                                           \
        {                                                                                 \
            fk_i64 off[3];                                                                \
            fk_offsets(&g, i, 3, off);                                                    \
            vt x = FK_LOAD_##sfx(a, off[1]);                                              \
            vt y = FK_LOAD_##sfx(b, off[2]);                                              \
            out[off[0]] = fk_compare_##sfx(op, x, y);                                     \
        }                                                                                 \
    }
FK_DTYPES(FK_DEFINE_ARITH)

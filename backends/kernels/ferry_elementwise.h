/* Elementwise kernels shared by the OpenCL and CUDA backends: fill and strided copy by
 * element width, casts between every pair of dtypes, unary and binary ops and
 * comparisons, each over any strides (fk_geom) with a dense fast path; binary ops also
 * as a kernel for dense operands alone (ferry_binary_dense_*), which the host picks. */
#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

/* ---- fill and copy: bit patterns, so one kernel per element width ------------------ */

#define FK_WIDTHS(X) X(w8, fk_u8) X(w16, fk_u16) X(w32, fk_u32) X(w64, fk_u64)

#define FK_DEFINE_FILL_COPY(w, T)                                                         \
    FK_KERNEL ferry_fill_##w(FK_GLOBAL T *out, T value, fk_geom g)                        \
    {                                                                                     \
        FK_EACH(g, 1, off, out[off[0]] = value;)                                          \
    }                                                                                     \
    FK_KERNEL ferry_copy_##w(FK_GLOBAL T *out, FK_GLOBAL const T *in, fk_geom g)          \
    {                                                                                     \
        FK_EACH(g, 2, off, out[off[0]] = in[off[1]];)                                     \
    }
#if FK_FAMILY_COPY
FK_WIDTHS(FK_DEFINE_FILL_COPY)
#endif

/* ---- casts: ferry_cast_<src>_<dst> (the host sends same-dtype work to a copy) ------- */

#define FK_DEFINE_CAST_PAIR(S, D)                                                         \
    FK_KERNEL ferry_cast_##S##_##D(FK_GLOBAL FK_ST_##D *out, FK_GLOBAL const FK_ST_##S *in, \
                                   fk_geom g)                                             \
    {                                                                                     \
        FK_EACH(g, 2, off, FK_VT_##S x = FK_LOAD_##S(in, off[1]);                         \
                FK_STORE_##D(out, off[0], FK_CONVERT(S, D, x));)                          \
    }
#define FK_DEFINE_CAST_ROW(S, st, vt, wt, kind) FK_DTYPES_WITH(FK_DEFINE_CAST_PAIR, S)
#define FK_SELECT_CAST_ROW(S, st, vt, wt, kind)                                           \
    FK_SELECTED(FK_DEFINE_CAST_ROW, S, st, vt, wt, kind)
#if FK_FAMILY_CAST
FK_DTYPES(FK_SELECT_CAST_ROW)
#endif

/* ---- unary, binary and compare kernels: one per dtype, the op an argument ------------
 * The switch on the op comes before the element loop, with one loop per op: the op is
 * the same for every thread, and a loop whose body holds only one op's expression is
 * what a CPU compiler vectorizes (a switch inside the body, with pow and the NaN-aware
 * maximum beside add, ran float32 add 3 times slower; on CPUs the loop is each
 * work-item's run, FK_DENSE_FOR, since PoCL does not vectorize across work-items a
 * kernel whose body loops). One kernel per dtype
 * keeps the program at a tenth of the kernels a kernel per (op, dtype) would need.
 *
 * Integers (and bool, whose stores normalise to 0/1) compute in the wide unsigned type,
 * where overflow wraps as PyTorch's integer ops do. The float-only unary ops and DIV
 * never reach integer kernels (the core converts integer inputs to float first). */

#define FK_UNARY_LOOP(sfx, EXPR)                                                          \
    FK_EACH(g, 2, off, FK_VT_##sfx x = FK_LOAD_##sfx(in, off[1]);                         \
            FK_STORE_##sfx(out, off[0], EXPR);)                                           \
    break;

#define FK_BINARY_LOOP(sfx, EXPR)                                                         \
    FK_EACH(g, 3, off, FK_VT_##sfx x = FK_LOAD_##sfx(a, off[1]);                          \
            FK_VT_##sfx y = FK_LOAD_##sfx(b, off[2]); FK_STORE_##sfx(out, off[0], EXPR);) \
    break;

/* The dense form (FK_CONTIG), its own kernel: no index arithmetic and no strided path
 * in the program PoCL compiles for the common case. */
#define FK_BINARY_DENSE_LOOP(sfx, EXPR)                                                   \
    {                                                                                     \
        FK_GLOBAL FK_ST_##sfx *o_ = out + g.offset[0];                                    \
        FK_GLOBAL const FK_ST_##sfx *p_ = a + g.offset[1];                                \
        FK_GLOBAL const FK_ST_##sfx *q_ = b + g.offset[2];                                \
        FK_DENSE_FOR(i, g, FK_VT_##sfx x = FK_LOAD_##sfx(p_, i);                          \
                     FK_VT_##sfx y = FK_LOAD_##sfx(q_, i); FK_STORE_##sfx(o_, i, EXPR);)  \
    }                                                                                     \
    break;

#define FK_COMPARE_LOOP(sfx, EXPR)                                                        \
    FK_EACH(g, 3, off, FK_VT_##sfx x = FK_LOAD_##sfx(a, off[1]);                          \
            FK_VT_##sfx y = FK_LOAD_##sfx(b, off[2]); out[off[0]] = (fk_u8)(EXPR);)       \
    break;

/* `a op scalar`: y is the kernel's by-value argument (backend.h, binary_scalar), the
 * value type of the element, so the same expressions give the same bits as a stride-0
 * operand would. */
#define FK_BINARY_SCALAR_LOOP(sfx, EXPR)                                                  \
    FK_EACH(g, 2, off, FK_VT_##sfx x = FK_LOAD_##sfx(a, off[1]);                          \
            FK_STORE_##sfx(out, off[0], EXPR);)                                           \
    break;

#define FK_COMPARE_SCALAR_LOOP(sfx, EXPR)                                                 \
    FK_EACH(g, 2, off, FK_VT_##sfx x = FK_LOAD_##sfx(a, off[1]);                          \
            out[off[0]] = (fk_u8)(EXPR);)                                                 \
    break;

/* Integer power by squaring, wrapping; a negative exponent gives 0 except for the
 * bases 1 and -1 (PyTorch). */
#define FK_DEFINE_IPOW(sfx, vt, wt)                                                       \
    FK_FUNC wt fk_ipow_##sfx(vt base, vt e)                                               \
    {                                                                                     \
        if (FK_IS_NEG_##sfx(e))                                                           \
            return base == 1 ? (wt)1 : (wt)base == (wt)0 - 1u ? ((e & 1) ? (wt)0 - 1u : (wt)1) \
                                                              : (wt)0;                    \
        wt r = 1, b = (wt)base;                                                           \
        while (e > 0) {                                                                   \
            if (e & 1)                                                                    \
                r *= b;                                                                   \
            b *= b;                                                                       \
            e >>= 1;                                                                      \
        }                                                                                 \
        return r;                                                                         \
    }

#define FK_UNARY_CASES_INT(sfx, vt, wt)                                                   \
    case FK_UN_NEG:                                                                       \
        FK_UNARY_LOOP(sfx, (vt)((wt)0 - (wt)x))                                           \
    case FK_UN_ABS:                                                                       \
        FK_UNARY_LOOP(sfx, FK_IS_NEG_##sfx(x) ? (vt)((wt)0 - (wt)x) : x)                  \
    case FK_UN_RELU:                                                                      \
        FK_UNARY_LOOP(sfx, x > 0 ? x : (vt)0)

#define FK_BINARY_CASES_INT(L, sfx, vt, wt)                                               \
    case FK_BIN_ADD:                                                                      \
        L(sfx, (vt)((wt)x + (wt)y))                                                       \
    case FK_BIN_SUB:                                                                      \
        L(sfx, (vt)((wt)x - (wt)y))                                                       \
    case FK_BIN_MUL:                                                                      \
        L(sfx, (vt)((wt)x * (wt)y))                                                       \
    case FK_BIN_POW:                                                                      \
        L(sfx, (vt)fk_ipow_##sfx(x, y))                                                   \
    case FK_BIN_MAXIMUM:                                                                  \
        L(sfx, x > y ? x : y)                                                             \
    case FK_BIN_MINIMUM:                                                                  \
        L(sfx, x < y ? x : y)

/* Floats (the 16-bit ones in float): MAXIMUM and MINIMUM propagate NaN, RELU keeps it.
 * Constants go through (vt) so a float kernel never holds a double. */
#define FK_UNARY_CASES_FLOAT(sfx, vt, wt)                                                 \
    case FK_UN_NEG:                                                                       \
        FK_UNARY_LOOP(sfx, -x)                                                            \
    case FK_UN_ABS:                                                                       \
        FK_UNARY_LOOP(sfx, fabs(x))                                                       \
    case FK_UN_EXP:                                                                       \
        FK_UNARY_LOOP(sfx, exp(x))                                                        \
    case FK_UN_LOG:                                                                       \
        FK_UNARY_LOOP(sfx, log(x))                                                        \
    case FK_UN_SQRT:                                                                      \
        FK_UNARY_LOOP(sfx, sqrt(x))                                                       \
    case FK_UN_SIN:                                                                       \
        FK_UNARY_LOOP(sfx, sin(x))                                                        \
    case FK_UN_COS:                                                                       \
        FK_UNARY_LOOP(sfx, cos(x))                                                        \
    case FK_UN_TANH:                                                                      \
        FK_UNARY_LOOP(sfx, tanh(x))                                                       \
    case FK_UN_SIGMOID:                                                                   \
        FK_UNARY_LOOP(sfx, (vt)1 / ((vt)1 + exp(-x)))                                     \
    case FK_UN_RELU:                                                                      \
        FK_UNARY_LOOP(sfx, x > (vt)0 ? x : x != x ? x : (vt)0)

#define FK_BINARY_CASES_FLOAT(L, sfx, vt, wt)                                             \
    case FK_BIN_ADD:                                                                      \
        L(sfx, x + y)                                                                     \
    case FK_BIN_SUB:                                                                      \
        L(sfx, x - y)                                                                     \
    case FK_BIN_MUL:                                                                      \
        L(sfx, x * y)                                                                     \
    case FK_BIN_DIV:                                                                      \
        L(sfx, x / y)                                                                     \
    case FK_BIN_POW:                                                                      \
        L(sfx, pow(x, y))                                                                 \
    case FK_BIN_MAXIMUM:                                                                  \
        L(sfx, x != x ? x : y != y ? y : x > y ? x : y)                                   \
    case FK_BIN_MINIMUM:                                                                  \
        L(sfx, x != x ? x : y != y ? y : x < y ? x : y)

#define FK_IPOW_INT(sfx, vt, wt) FK_DEFINE_IPOW(sfx, vt, wt)
#define FK_IPOW_F32(sfx, vt, wt)
#define FK_IPOW_F64(sfx, vt, wt)
#define FK_UNARY_CASES_F32 FK_UNARY_CASES_FLOAT
#define FK_UNARY_CASES_F64 FK_UNARY_CASES_FLOAT
#define FK_BINARY_CASES_F32 FK_BINARY_CASES_FLOAT
#define FK_BINARY_CASES_F64 FK_BINARY_CASES_FLOAT

#define FK_COMPARE_CASES(L, sfx)                                                          \
    case FK_BIN_EQ:                                                                       \
        L(sfx, x == y)                                                                    \
    case FK_BIN_NE:                                                                       \
        L(sfx, x != y)                                                                    \
    case FK_BIN_LT:                                                                       \
        L(sfx, x < y)                                                                     \
    case FK_BIN_LE:                                                                       \
        L(sfx, x <= y)                                                                    \
    case FK_BIN_GT:                                                                       \
        L(sfx, x > y)                                                                     \
    case FK_BIN_GE:                                                                       \
        L(sfx, x >= y)

/* Comparisons run on values (float for the 16-bit floats), so NaN compares unequal to
 * everything, itself included, as in C and PyTorch. */
#define FK_DEFINE_ARITH(sfx, st, vt, wt, kind)                                            \
    FK_CAT(FK_IPOW_, kind)(sfx, vt, wt)                                                   \
    FK_KERNEL ferry_unary_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *in, fk_geom g,     \
                                fk_i32 op)                                                \
    {                                                                                     \
        switch (op) {                                                                     \
            FK_CAT(FK_UNARY_CASES_, kind)(sfx, vt, wt)                                    \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_binary_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *a,                \
                                 FK_GLOBAL const st *b, fk_geom g, fk_i32 op)             \
    {                                                                                     \
        switch (op) {                                                                     \
            FK_CAT(FK_BINARY_CASES_, kind)(FK_BINARY_LOOP, sfx, vt, wt)                   \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_binary_dense_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *a,          \
                                       FK_GLOBAL const st *b, fk_geom g, fk_i32 op)       \
    {                                                                                     \
        switch (op) {                                                                     \
            FK_CAT(FK_BINARY_CASES_, kind)(FK_BINARY_DENSE_LOOP, sfx, vt, wt)             \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_compare_##sfx(FK_GLOBAL fk_u8 *out, FK_GLOBAL const st *a,            \
                                  FK_GLOBAL const st *b, fk_geom g, fk_i32 op)            \
    {                                                                                     \
        switch (op) {                                                                     \
            FK_COMPARE_CASES(FK_COMPARE_LOOP, sfx)                                        \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_binary_scalar_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *a,         \
                                        fk_geom g, fk_i32 op, vt y)                       \
    {                                                                                     \
        switch (op) {                                                                     \
            FK_CAT(FK_BINARY_CASES_, kind)(FK_BINARY_SCALAR_LOOP, sfx, vt, wt)            \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_compare_scalar_##sfx(FK_GLOBAL fk_u8 *out, FK_GLOBAL const st *a,     \
                                         fk_geom g, fk_i32 op, vt y)                      \
    {                                                                                     \
        switch (op) {                                                                     \
            FK_COMPARE_CASES(FK_COMPARE_SCALAR_LOOP, sfx)                                 \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }
#define FK_SELECT_ARITH(sfx, st, vt, wt, kind)                                            \
    FK_SELECTED(FK_DEFINE_ARITH, sfx, st, vt, wt, kind)
#if FK_FAMILY_ARITH
FK_DTYPES(FK_SELECT_ARITH)
#endif

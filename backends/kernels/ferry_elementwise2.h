/* The ELEM2 family: the everyday elementwise ops beyond the built-in unary and binary
 * entries (floor .. leaky_relu, isnan .., atan2 .. shifts, logical ops, where), shared by
 * the OpenCL and CUDA backends. Op numbers are ferry/ops/elementwise2.h's enums; the host
 * sees the FK_E2_* numbers too (FK_HOST) and checks they agree.
 *
 * Kernels per dtype sfx:
 *   ferry_un2_<sfx>(out st, in st, g, op[, p0, p1 as the value type for floats])
 *   ferry_un2b_<sfx>(out u8, in st, g, op)          predicates -> bool
 *   ferry_bin2_<sfx>(out st, a st, b st, g, op)
 *   ferry_bin2b_<sfx>(out u8, a st, b st, g, op)    logical ops -> bool
 *   ferry_where_w<bits>(out, cond u8, a, g, b, gb)   by element width
 * Integers compute in the wide unsigned type where wrapping matters (shifts, negation),
 * as ferry_elementwise.h does. */
#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

#define FK_U2_FLOOR 0
#define FK_U2_CEIL 1
#define FK_U2_ROUND 2
#define FK_U2_TRUNC 3
#define FK_U2_SIGN 4
#define FK_U2_RECIPROCAL 5
#define FK_U2_RSQRT 6
#define FK_U2_LOG1P 7
#define FK_U2_EXPM1 8
#define FK_U2_LOG2 9
#define FK_U2_LOG10 10
#define FK_U2_EXP2 11
#define FK_U2_ERF 12
#define FK_U2_TAN 13
#define FK_U2_ASIN 14
#define FK_U2_ACOS 15
#define FK_U2_ATAN 16
#define FK_U2_SINH 17
#define FK_U2_COSH 18
#define FK_U2_GELU 19
#define FK_U2_GELU_TANH 20
#define FK_U2_SILU 21
#define FK_U2_SOFTPLUS 22
#define FK_U2_LEAKY_RELU 23
#define FK_U2_BITWISE_NOT 24
#define FK_U2_ISNAN 25
#define FK_U2_ISINF 26
#define FK_U2_ISFINITE 27
#define FK_U2_LOGICAL_NOT 28

#define FK_B2_ATAN2 0
#define FK_B2_REMAINDER 1
#define FK_B2_FMOD 2
#define FK_B2_FLOOR_DIVIDE 3
#define FK_B2_AND 4
#define FK_B2_OR 5
#define FK_B2_XOR 6
#define FK_B2_LSHIFT 7
#define FK_B2_RSHIFT 8
#define FK_B2_HYPOT 9
#define FK_B2_LOGICAL_AND 10
#define FK_B2_LOGICAL_OR 11
#define FK_B2_LOGICAL_XOR 12

#ifndef FK_HOST
#if FK_NAMED_FAMILY(ELEM2)

#define FK_E2_UN(sfx, EXPR)                                                               \
    FK_FOR_EACH(i, g.numel)                                                               \
    {                                                                                     \
        FK_AT(g, i, 2, off);                                                              \
        FK_VT_##sfx x = FK_LOAD_##sfx(in, off[1]);                                        \
        FK_STORE_##sfx(out, off[0], EXPR);                                                \
    }                                                                                     \
    break;

#define FK_E2_UNB(sfx, EXPR)                                                              \
    FK_FOR_EACH(i, g.numel)                                                               \
    {                                                                                     \
        FK_AT(g, i, 2, off);                                                              \
        FK_VT_##sfx x = FK_LOAD_##sfx(in, off[1]);                                        \
        out[off[0]] = (fk_u8)((EXPR) ? 1 : 0);                                            \
    }                                                                                     \
    break;

#define FK_E2_BIN(sfx, EXPR)                                                              \
    FK_FOR_EACH(i, g.numel)                                                               \
    {                                                                                     \
        FK_AT(g, i, 3, off);                                                              \
        FK_VT_##sfx x = FK_LOAD_##sfx(a, off[1]);                                         \
        FK_VT_##sfx y = FK_LOAD_##sfx(b, off[2]);                                         \
        FK_STORE_##sfx(out, off[0], EXPR);                                                \
    }                                                                                     \
    break;

#define FK_E2_BINB(sfx, EXPR)                                                             \
    FK_FOR_EACH(i, g.numel)                                                               \
    {                                                                                     \
        FK_AT(g, i, 3, off);                                                              \
        FK_VT_##sfx x = FK_LOAD_##sfx(a, off[1]);                                         \
        FK_VT_##sfx y = FK_LOAD_##sfx(b, off[2]);                                         \
        out[off[0]] = (fk_u8)((EXPR) ? 1 : 0);                                            \
    }                                                                                     \
    break;

/* PyTorch's floating remainder and floor division (its div_floor_floating): the sign of
 * the remainder follows the divisor; the quotient is rounded so that q * b + r == a as
 * nearly as the rounding allows, and a zero quotient keeps the sign of a / b. */
#define FK_E2_FLOAT_HELPERS(sfx, vt)                                                      \
    FK_FUNC vt fk_e2_rem_##sfx(vt x, vt y)                                                \
    {                                                                                     \
        vt m = fmod(x, y);                                                                \
        if (m != (vt)0 && ((y < (vt)0) != (m < (vt)0)))                                  \
            m += y;                                                                       \
        return m;                                                                         \
    }                                                                                     \
    FK_FUNC vt fk_e2_floordiv_##sfx(vt x, vt y)                                           \
    {                                                                                     \
        if (y == (vt)0)                                                                   \
            return x / y;                                                                 \
        vt m = fmod(x, y);                                                                \
        vt d = (x - m) / y;                                                               \
        if (m != (vt)0 && ((y < (vt)0) != (m < (vt)0)))                                   \
            d -= (vt)1;                                                                   \
        vt q;                                                                             \
        if (d != (vt)0) {                                                                 \
            q = floor(d);                                                                 \
            if (d - q > (vt)0.5)                                                          \
                q += (vt)1;                                                               \
        } else {                                                                          \
            q = copysign((vt)0, x / y);                                                   \
        }                                                                                 \
        return q;                                                                         \
    }

#define FK_E2_FLOAT(sfx, st, vt)                                                          \
    FK_E2_FLOAT_HELPERS(sfx, vt)                                                          \
    FK_KERNEL ferry_un2_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *in, fk_geom g,       \
                              fk_i32 op, vt p0, vt p1)                                    \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_U2_FLOOR: FK_E2_UN(sfx, floor(x))                                         \
        case FK_U2_CEIL: FK_E2_UN(sfx, ceil(x))                                           \
        case FK_U2_ROUND: FK_E2_UN(sfx, rint(x))                                          \
        case FK_U2_TRUNC: FK_E2_UN(sfx, trunc(x))                                         \
        case FK_U2_SIGN: FK_E2_UN(sfx, (vt)((x > (vt)0 ? 1 : 0) - (x < (vt)0 ? 1 : 0)))   \
        case FK_U2_RECIPROCAL: FK_E2_UN(sfx, (vt)1 / x)                                   \
        case FK_U2_RSQRT: FK_E2_UN(sfx, (vt)1 / sqrt(x))                                  \
        case FK_U2_LOG1P: FK_E2_UN(sfx, log1p(x))                                         \
        case FK_U2_EXPM1: FK_E2_UN(sfx, expm1(x))                                         \
        case FK_U2_LOG2: FK_E2_UN(sfx, log2(x))                                           \
        case FK_U2_LOG10: FK_E2_UN(sfx, log10(x))                                         \
        case FK_U2_EXP2: FK_E2_UN(sfx, exp2(x))                                           \
        case FK_U2_ERF: FK_E2_UN(sfx, erf(x))                                             \
        case FK_U2_TAN: FK_E2_UN(sfx, tan(x))                                             \
        case FK_U2_ASIN: FK_E2_UN(sfx, asin(x))                                           \
        case FK_U2_ACOS: FK_E2_UN(sfx, acos(x))                                           \
        case FK_U2_ATAN: FK_E2_UN(sfx, atan(x))                                           \
        case FK_U2_SINH: FK_E2_UN(sfx, sinh(x))                                           \
        case FK_U2_COSH: FK_E2_UN(sfx, cosh(x))                                           \
        case FK_U2_GELU:                                                                  \
            FK_E2_UN(sfx, (vt)0.5 * x * ((vt)1 + erf(x * (vt)0.70710678118654752440)))    \
        case FK_U2_GELU_TANH:                                                             \
            FK_E2_UN(sfx, (vt)0.5 * x *                                                   \
                              ((vt)1 + tanh((vt)0.79788456080286535588 *                  \
                                            (x + (vt)0.044715 * x * x * x))))             \
        case FK_U2_SILU: FK_E2_UN(sfx, x / ((vt)1 + exp(-x)))                             \
        case FK_U2_SOFTPLUS:                                                              \
            FK_E2_UN(sfx, x * p0 > p1 ? x : log1p(exp(x * p0)) / p0)                      \
        case FK_U2_LEAKY_RELU: FK_E2_UN(sfx, x > (vt)0 ? x : x * p0)                      \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_un2b_##sfx(FK_GLOBAL fk_u8 *out, FK_GLOBAL const st *in, fk_geom g,   \
                               fk_i32 op)                                                 \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_U2_ISNAN: FK_E2_UNB(sfx, x != x)                                          \
        case FK_U2_ISINF: FK_E2_UNB(sfx, x == x && (x - x) != (x - x))                    \
        case FK_U2_ISFINITE: FK_E2_UNB(sfx, (x - x) == (x - x))                           \
        case FK_U2_LOGICAL_NOT: FK_E2_UNB(sfx, x == (vt)0)                                \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_bin2_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *a,                  \
                               FK_GLOBAL const st *b, fk_geom g, fk_i32 op)               \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_B2_ATAN2: FK_E2_BIN(sfx, atan2(x, y))                                     \
        case FK_B2_REMAINDER: FK_E2_BIN(sfx, fk_e2_rem_##sfx(x, y))                       \
        case FK_B2_FMOD: FK_E2_BIN(sfx, fmod(x, y))                                       \
        case FK_B2_FLOOR_DIVIDE: FK_E2_BIN(sfx, fk_e2_floordiv_##sfx(x, y))               \
        case FK_B2_HYPOT: FK_E2_BIN(sfx, hypot(x, y))                                     \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }

/* Integers: division by zero never reaches a kernel (the core raises PyTorch's
 * ZeroDivisionError first) but is still guarded, and a divisor of -1 is handled apart
 * since the minimum value divided by it overflows. Shifts past the width give 0 (left)
 * or the sign fill (right), as PyTorch. */
#define FK_E2_INT(sfx, st, vt, wt)                                                        \
    FK_FUNC vt fk_e2_floordiv_##sfx(vt x, vt y)                                           \
    {                                                                                     \
        if (y == 0)                                                                       \
            return (vt)0;                                                                 \
        if (FK_IS_NEG_##sfx(y) && y == (vt)((wt)0 - 1u))                                  \
            return (vt)((wt)0 - (wt)x);                                                   \
        vt q = (vt)(x / y);                                                               \
        if ((vt)(x % y) != 0 && (FK_IS_NEG_##sfx(x) != FK_IS_NEG_##sfx(y)))               \
            q = (vt)(q - 1);                                                              \
        return q;                                                                         \
    }                                                                                     \
    FK_FUNC vt fk_e2_rem_##sfx(vt x, vt y, int python)                                    \
    {                                                                                     \
        if (y == 0 || (FK_IS_NEG_##sfx(y) && y == (vt)((wt)0 - 1u)))                      \
            return (vt)0;                                                                 \
        vt r = (vt)(x % y);                                                               \
        if (python && r != 0 && (FK_IS_NEG_##sfx(r) != FK_IS_NEG_##sfx(y)))               \
            r = (vt)(r + y);                                                              \
        return r;                                                                         \
    }                                                                                     \
    FK_KERNEL ferry_un2_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *in, fk_geom g,       \
                              fk_i32 op)                                                  \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_U2_SIGN:                                                                  \
            FK_E2_UN(sfx, (vt)((x > 0 ? 1 : 0) - (FK_IS_NEG_##sfx(x) ? 1 : 0)))           \
        case FK_U2_BITWISE_NOT: FK_E2_UN(sfx, (vt)(~(wt)x))                               \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_un2b_##sfx(FK_GLOBAL fk_u8 *out, FK_GLOBAL const st *in, fk_geom g,   \
                               fk_i32 op)                                                 \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_U2_ISNAN: FK_E2_UNB(sfx, x != x)                                          \
        case FK_U2_ISINF: FK_E2_UNB(sfx, x != x)                                          \
        case FK_U2_ISFINITE: FK_E2_UNB(sfx, x == x)                                       \
        case FK_U2_LOGICAL_NOT: FK_E2_UNB(sfx, x == 0)                                    \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_bin2_##sfx(FK_GLOBAL st *out, FK_GLOBAL const st *a,                  \
                               FK_GLOBAL const st *b, fk_geom g, fk_i32 op)               \
    {                                                                                     \
        const int bits = (int)(8 * sizeof(st));                                           \
        switch (op) {                                                                     \
        case FK_B2_REMAINDER: FK_E2_BIN(sfx, fk_e2_rem_##sfx(x, y, 1))                    \
        case FK_B2_FMOD: FK_E2_BIN(sfx, fk_e2_rem_##sfx(x, y, 0))                         \
        case FK_B2_FLOOR_DIVIDE: FK_E2_BIN(sfx, fk_e2_floordiv_##sfx(x, y))               \
        case FK_B2_AND: FK_E2_BIN(sfx, (vt)((wt)x & (wt)y))                               \
        case FK_B2_OR: FK_E2_BIN(sfx, (vt)((wt)x | (wt)y))                                \
        case FK_B2_XOR: FK_E2_BIN(sfx, (vt)((wt)x ^ (wt)y))                               \
        case FK_B2_LSHIFT:                                                                \
            FK_E2_BIN(sfx, FK_IS_NEG_##sfx(y) || (fk_i64)y >= bits ? (vt)0                \
                                                                   : (vt)((wt)x << y))    \
        case FK_B2_RSHIFT:                                                                \
            FK_E2_BIN(sfx, FK_IS_NEG_##sfx(y) || (fk_i64)y >= bits                        \
                               ? (vt)(FK_IS_NEG_##sfx(x) ? -1 : 0)                        \
                               : (vt)(x >> y))                                            \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }

/* Float kinds take the parameters in their value type (float for the 16-bit floats). */
#define FK_E2_KIND_INT(sfx, st, vt, wt) FK_E2_INT(sfx, st, vt, wt)
#define FK_E2_KIND_F32(sfx, st, vt, wt) FK_E2_FLOAT(sfx, st, vt)
#define FK_E2_KIND_F64(sfx, st, vt, wt) FK_E2_FLOAT(sfx, st, vt)

#define FK_DEFINE_E2(sfx, st, vt, wt, kind)                                               \
    FK_CAT(FK_E2_KIND_, kind)(sfx, st, vt, wt)                                            \
    FK_KERNEL ferry_bin2b_##sfx(FK_GLOBAL fk_u8 *out, FK_GLOBAL const st *a,              \
                                FK_GLOBAL const st *b, fk_geom g, fk_i32 op)              \
    {                                                                                     \
        switch (op) {                                                                     \
        case FK_B2_LOGICAL_AND: FK_E2_BINB(sfx, x != (vt)0 && y != (vt)0)                 \
        case FK_B2_LOGICAL_OR: FK_E2_BINB(sfx, x != (vt)0 || y != (vt)0)                  \
        case FK_B2_LOGICAL_XOR: FK_E2_BINB(sfx, (x != (vt)0) != (y != (vt)0))             \
        default:                                                                          \
            break;                                                                        \
        }                                                                                 \
    }

#define FK_SELECT_E2(sfx, st, vt, wt, kind) FK_SELECTED(FK_DEFINE_E2, sfx, st, vt, wt, kind)
FK_DTYPES(FK_SELECT_E2)

#endif /* FK_NAMED_FAMILY(ELEM2) */

/* where by element width: stored bits are copied, never converted (a half is only a
 * pointer type without cl_khr_fp16). g walks (out, cond, a) and gb (out, b): one logical
 * shape, so flat index i is the same element in both. */
#if FK_NAMED_FAMILY(WHERE)
#define FK_DEFINE_WHERE(w, T)                                                             \
    FK_KERNEL ferry_where_##w(FK_GLOBAL T *out, FK_GLOBAL const fk_u8 *cond,              \
                              FK_GLOBAL const T *a, fk_geom g, FK_GLOBAL const T *b,      \
                              fk_geom gb)                                                 \
    {                                                                                     \
        FK_FOR_EACH(i, g.numel)                                                           \
        {                                                                                 \
            FK_AT(g, i, 3, off);                                                          \
            FK_AT(gb, i, 2, offb);                                                        \
            out[off[0]] = cond[off[1]] ? a[off[2]] : b[offb[1]];                          \
        }                                                                                 \
    }
FK_DEFINE_WHERE(w8, fk_u8)
FK_DEFINE_WHERE(w16, fk_u16)
FK_DEFINE_WHERE(w32, fk_u32)
FK_DEFINE_WHERE(w64, fk_u64)
#endif /* FK_NAMED_FAMILY(WHERE) */
#endif /* !FK_HOST */

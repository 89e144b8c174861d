/* Counter-based random numbers (DESIGN.md "Random numbers"): Philox4x32-10 and the
 * samplers built on it, written once for OpenCL C, CUDA and host C. The cpu backend
 * (backends/cpu/cpu_random.c) compiles these same functions, so for one (seed, offset) a
 * draw is bit-identical on every device.
 *
 * The stream. A generator state (seed, offset) names 32-bit words: word w of the stream
 * is lane w % 4 of Philox4x32-10 with key (seed & 0xffffffff, seed >> 32) and counter
 * (b & 0xffffffff, b >> 32, 0, 0), b = w / 4. A draw starts at word `offset` (always a
 * multiple of 4) and element i of it takes k consecutive words starting at offset + k*i:
 *   k = 1: float16/bfloat16/float32 uniform and normal, randint with high - low <= 2^32;
 *   k = 2: float64 uniform and normal, randint with a wider range, raw 64-bit keys.
 * Afterwards the offset moves by k*n rounded up to a multiple of 4.
 *
 * Words to numbers (all exact, nothing rounds up to 1):
 *   uniform float32:  (w >> 8) * 2^-24 in [0, 1 - 2^-24]; float16 keeps 11 bits
 *     ((w >> 21) * 2^-11), bfloat16 8 bits, so the value is exact in the stored type.
 *   uniform float64:  ((w1:w0) >> 11) * 2^-53 (w0 the low word).
 *   scaled: a + b * u (a = low, b = high - low), rounded once to the dtype.
 *   normal: Box-Muller on the pair of elements (2j, 2j + 1): u1 = ((w >> 8) + 1) * 2^-24
 *     in (0, 1] from the first element's word(s), u2 in [0, 1) from the second's;
 *     r = sqrt(-2 ln u1), element 2j is r cos(2 pi u2), 2j + 1 is r sin(2 pi u2).
 *     float32 (and the 16-bit floats, rounded from it) uses only + - * with contraction
 *     off and its own ln, sqrt, sin and cos, because OpenCL's built-ins and libm differ;
 *     float64 also uses / and sqrt, which IEEE, OpenCL (fp64) and CUDA round correctly.
 *   randint: low + ((w * range) >> 32) for one word, the high 64 bits of x * range for
 *     two (x = w1:w0): multiply-shift, bias below range / 2^32 (resp. 2^64).
 *
 * Host C that includes this must compile with -ffp-contract=off (as cpu_random.c does). */
#ifndef FERRY_RANDOM_H
#define FERRY_RANDOM_H

#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

/* Kinds (the values of ferry/ops/random.h's FERRY_RANDOM_*). */
#define FK_RNG_UNIFORM 0
#define FK_RNG_NORMAL 1
#define FK_RNG_INT 2
#define FK_RNG_BITS 3

/* One launch of a sampler over n elements at out + offset (dense). Every member is 8
 * bytes wide except the last four, so every compiler lays it out alike. */
typedef struct fk_random {
    fk_u64 seed;
    fk_u64 block0;  /* generator offset / 4 */
    fk_u64 range;   /* randint: high - low as unsigned (0 stands for 2^64) */
    fk_i64 low;     /* randint */
    fk_u64 a64;     /* float64 outputs: bits of the double a (low or mean) */
    fk_u64 b64;     /* ... and of b (high - low, or std) */
    fk_i64 offset;  /* elements */
    fk_i64 n;
    fk_i64 chunk;   /* kernels: blocks per work-item, each its own run (CPU devices); 0:
                     * a grid-stride loop over blocks (GPUs, the host ignores it) */
    float a32;      /* float-valued outputs: a and b rounded to float */
    float b32;
    fk_i32 kind;
    fk_i32 fbits;   /* bits of a word a float-valued uniform keeps: 24, 11, 8 */
} fk_random;

/* Which builds hold the code below: the host and CUDA always, an OpenCL program only
 * when it is the RANDOM family's (every family's program holds this file). */
#if defined(FK_HOST) || defined(FK_CUDA)
#define FK_RANDOM_CODE 1
#elif FK_NAMED_FAMILY(RANDOM)
#define FK_RANDOM_CODE 1
#else
#define FK_RANDOM_CODE 0
#endif
#if FK_RANDOM_CODE

#if defined(FK_HOST)
#include <string.h>
#define FK_RFUNC static inline
static inline float fk_r_as_float(fk_u32 u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline fk_u32 fk_r_as_uint(float f)
{
    fk_u32 u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline double fk_r_as_double(fk_u64 u)
{
    double f;
    memcpy(&f, &u, sizeof f);
    return f;
}
#define FK_R_AS_FLOAT(u) fk_r_as_float(u)
#define FK_R_AS_UINT(f) fk_r_as_uint(f)
#define FK_R_AS_DOUBLE(u) fk_r_as_double(u)
#elif defined(FK_OPENCL)
/* Inlined always: a kernel's run loop (FK_RANDOM_RUN) vectorizes only with no call left
 * in it, and clang keeps Philox out of line where several kernels use it. */
#define FK_RFUNC static inline __attribute__((always_inline))
#else
#define FK_RFUNC FK_FUNC
#endif
#if !defined(FK_HOST)
#define FK_R_AS_FLOAT(u) FK_AS_FLOAT(u)
#define FK_R_AS_UINT(f) FK_AS_UINT(f)
#if defined(FK_OPENCL)
#define FK_R_AS_DOUBLE(u) as_double(u)
#else
#define FK_R_AS_DOUBLE(u) __longlong_as_double((long long)(u))
#endif
#endif

/* Arithmetic that no compiler may fuse or reorder: CUDA fuses a * b + c unless told not
 * to, OpenCL C may unless FP_CONTRACT is off, and host C is built with it off. */
#if defined(FK_CUDA)
#define FK_FM(a, b) __fmul_rn((a), (b))
#define FK_FA(a, b) __fadd_rn((a), (b))
#define FK_FS(a, b) __fsub_rn((a), (b))
#define FK_DM(a, b) __dmul_rn((a), (b))
#define FK_DA(a, b) __dadd_rn((a), (b))
#define FK_DS(a, b) __dsub_rn((a), (b))
#define FK_DD(a, b) __ddiv_rn((a), (b))
#define FK_DSQRT(a) __dsqrt_rn(a)
#else
#if defined(FK_OPENCL)
#pragma OPENCL FP_CONTRACT OFF
#define FK_DSQRT(a) sqrt(a)
#else
#include <math.h>
#define FK_DSQRT(a) sqrt(a)
#endif
#define FK_FM(a, b) ((a) * (b))
#define FK_FA(a, b) ((a) + (b))
#define FK_FS(a, b) ((a) - (b))
#define FK_DM(a, b) ((a) * (b))
#define FK_DA(a, b) ((a) + (b))
#define FK_DS(a, b) ((a) - (b))
#define FK_DD(a, b) ((a) / (b))
#endif

/* ---- Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC11) ------------------------------ */

#define FK_PHILOX_M0 0xD2511F53u
#define FK_PHILOX_M1 0xCD9E8D57u
#define FK_PHILOX_W0 0x9E3779B9u
#define FK_PHILOX_W1 0xBB67AE85u

/* One round over ctr with the round's key (k0, k1). */
FK_RFUNC void fk_philox_round(fk_u32 ctr[4], fk_u32 k0, fk_u32 k1)
{
    fk_u64 p0 = (fk_u64)FK_PHILOX_M0 * (fk_u64)ctr[0];
    fk_u64 p1 = (fk_u64)FK_PHILOX_M1 * (fk_u64)ctr[2];
    fk_u32 c0 = (fk_u32)(p1 >> 32) ^ ctr[1] ^ k0;
    fk_u32 c2 = (fk_u32)(p0 >> 32) ^ ctr[3] ^ k1;
    ctr[1] = (fk_u32)p1;
    ctr[3] = (fk_u32)p0;
    ctr[0] = c0;
    ctr[2] = c2;
}

/* Ten rounds over ctr with key (k0, k1), bumped between rounds. Written out, as are the
 * other short loops below: PoCL vectorizes a kernel's loop over blocks only when it is
 * the innermost loop, and its pipeline does not unroll these first. */
FK_RFUNC void fk_philox4x32_10(fk_u32 ctr[4], fk_u32 k0, fk_u32 k1)
{
    fk_philox_round(ctr, k0, k1);
    fk_philox_round(ctr, k0 + FK_PHILOX_W0, k1 + FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 2u * FK_PHILOX_W0, k1 + 2u * FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 3u * FK_PHILOX_W0, k1 + 3u * FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 4u * FK_PHILOX_W0, k1 + 4u * FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 5u * FK_PHILOX_W0, k1 + 5u * FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 6u * FK_PHILOX_W0, k1 + 6u * FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 7u * FK_PHILOX_W0, k1 + 7u * FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 8u * FK_PHILOX_W0, k1 + 8u * FK_PHILOX_W1);
    fk_philox_round(ctr, k0 + 9u * FK_PHILOX_W0, k1 + 9u * FK_PHILOX_W1);
}

/* The four words of block j of a draw. */
FK_RFUNC void fk_random_words(const fk_random *p, fk_u64 j, fk_u32 w[4])
{
    fk_u64 b = p->block0 + j;
    w[0] = (fk_u32)b;
    w[1] = (fk_u32)(b >> 32);
    w[2] = 0;
    w[3] = 0;
    fk_philox4x32_10(w, (fk_u32)p->seed, (fk_u32)(p->seed >> 32));
}

/* ---- float32 math from + - * alone -------------------------------------------------- */

/* ln x for x in (0, 1] (x a multiple of 2^-24): x = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * ln x = e ln 2 + t q(t), t = m - 1, q(t) = 1 + t r(t) with r a degree-7 weighted
 * least-squares fit of (ln(1 + t) / t - 1) / t on that interval: t q(t) evaluated in float
 * is within 4.7e-8 of ln m for every m (degree 9 gave 3.7e-8, the rounding dominates). */
FK_RFUNC float fk_lnf(float x)
{
    fk_u32 bits = FK_R_AS_UINT(x);
    fk_i32 e = (fk_i32)(bits >> 23) - 127;
    float m = FK_R_AS_FLOAT((bits & 0x007fffffu) | 0x3f800000u);
    /* Selects, not branches, here and below: a vectorizing device compiler (PoCL) takes
     * a loop of these only if it can if-convert it. */
    int big = m > 1.41421354f;
    m = big ? FK_FM(m, 0.5f) : m;
    e += big;
    float t = FK_FS(m, 1.0f);
    float q = 8.518540859e-02f;
    q = FK_FA(FK_FM(q, t), -1.420377493e-01f);
    q = FK_FA(FK_FM(q, t), 1.494932920e-01f);
    q = FK_FA(FK_FM(q, t), -1.658683121e-01f);
    q = FK_FA(FK_FM(q, t), 1.996066123e-01f);
    q = FK_FA(FK_FM(q, t), -2.500103116e-01f);
    q = FK_FA(FK_FM(q, t), 3.333397210e-01f);
    q = FK_FA(FK_FM(q, t), -0.5f);
    q = FK_FA(FK_FM(q, t), 1.0f);
    float fe = (float)e;
    /* ln 2 split so that e * hi is exact for |e| <= 24. */
    return FK_FA(FK_FA(FK_FM(fe, 0.693145752f), FK_FM(t, q)), FK_FM(fe, 1.42860677e-06f));
}

/* sqrt x for x >= 0: two Newton steps on 1/sqrt from a bit-level first guess (relative
 * error below 5e-6), then one on sqrt itself, which squares that: within 0.85 ulp of
 * sqrt x over [2^-8, 64), where the error repeats every two binades (a third step on
 * 1/sqrt gave 0.76). */
FK_RFUNC float fk_sqrtf(float x)
{
    float y = FK_R_AS_FLOAT(0x5f3759dfu - (FK_R_AS_UINT(x) >> 1));
    float h = FK_FM(0.5f, x);
    y = FK_FM(y, FK_FS(1.5f, FK_FM(FK_FM(h, y), y)));
    y = FK_FM(y, FK_FS(1.5f, FK_FM(FK_FM(h, y), y)));
    float s = FK_FM(x, y);
    /* One Newton step on sqrt itself (s + (x - s^2) / (2 s) with the reciprocal known).
     * x = -0 (-2 ln 1) would come out -0: every zero gives +0, as the early return the
     * branch-free form replaces did. */
    float r = FK_FA(s, FK_FM(FK_FM(FK_FS(x, FK_FM(s, s)), y), 0.5f));
    return x == 0.0f ? 0.0f : r;
}

/* cos and sin of 2 pi u for u in [0, 1) (a multiple of 2^-24): the quadrant from 4u
 * (exact), then on the rest x in [0, pi/2) sin x = x + x^3 s(x^2), cos x = 1 + x^2 c(x^2)
 * with s of degree 3 and c of degree 4, least-squares fits on that interval: within
 * 1.3e-7 of sin and cos of the float x (the Taylor series to x^15 and x^16 gave 1.2e-7:
 * float rounding, not the series, sets the error). */
FK_RFUNC void fk_cossin2pif(float u, float *c, float *s)
{
    float v = FK_FM(u, 4.0f);
    int q = (int)v;
    float x = FK_FM(FK_FS(v, (float)q), 1.57079637f);
    float x2 = FK_FM(x, x);
    float sp = 2.600614835e-06f;
    sp = FK_FA(FK_FM(sp, x2), -1.980690286e-04f);
    sp = FK_FA(FK_FM(sp, x2), 8.333021775e-03f);
    sp = FK_FA(FK_FM(sp, x2), -1.666665673e-01f);
    float sn = FK_FA(x, FK_FM(FK_FM(x, x2), sp));
    float cp = -2.608913690e-07f;
    cp = FK_FA(FK_FM(cp, x2), 2.476263398e-05f);
    cp = FK_FA(FK_FM(cp, x2), -1.388842007e-03f);
    cp = FK_FA(FK_FM(cp, x2), 4.166664183e-02f);
    cp = FK_FA(FK_FM(cp, x2), -0.5f);
    float cs = FK_FA(1.0f, FK_FM(x2, cp));
    /* The quadrant's (c, s) is (cs, sn), (-sn, cs), (-cs, -sn) or (sn, -cs): odd quadrants
     * swap the two, the sign bit of c flips in quadrants 1 and 2 and that of s in 2 and 3
     * (exact, and the same bits as negation, -0 included). */
    int odd = q & 1;
    float a = odd ? sn : cs;
    float b = odd ? cs : sn;
    *c = FK_R_AS_FLOAT(FK_R_AS_UINT(a) ^ ((fk_u32)((q + 1) & 2) << 30));
    *s = FK_R_AS_FLOAT(FK_R_AS_UINT(b) ^ ((fk_u32)(q & 2) << 30));
}

/* 2^-bits as a float (bits <= 126), built from its exponent. */
FK_RFUNC float fk_pow2m(int bits)
{
    return FK_R_AS_FLOAT((fk_u32)(127 - bits) << 23);
}

/* fk_random_block_f32 of a uniform draw. */
FK_RFUNC void fk_random_block_uniform_f32(const fk_random *p, fk_u64 j, float v[4])
{
    fk_u32 w[4];
    fk_random_words(p, j, w);
    float scale = fk_pow2m(p->fbits);
    int sh = 32 - p->fbits;
    v[0] = FK_FA(p->a32, FK_FM(p->b32, FK_FM((float)(w[0] >> sh), scale)));
    v[1] = FK_FA(p->a32, FK_FM(p->b32, FK_FM((float)(w[1] >> sh), scale)));
    v[2] = FK_FA(p->a32, FK_FM(p->b32, FK_FM((float)(w[2] >> sh), scale)));
    v[3] = FK_FA(p->a32, FK_FM(p->b32, FK_FM((float)(w[3] >> sh), scale)));
}

/* Elements 2j and 2j + 1 of a normal draw from their words (w1, w2). */
FK_RFUNC void fk_random_pair_normal_f32(const fk_random *p, fk_u32 w1, fk_u32 w2, float *v)
{
    float u1 = FK_FM((float)((w1 >> 8) + 1u), 5.96046448e-08f);
    float u2 = FK_FM((float)(w2 >> 8), 5.96046448e-08f);
    float r = fk_sqrtf(FK_FM(-2.0f, fk_lnf(u1)));
    float c, s;
    fk_cossin2pif(u2, &c, &s);
    v[0] = FK_FA(p->a32, FK_FM(p->b32, FK_FM(r, c)));
    v[1] = FK_FA(p->a32, FK_FM(p->b32, FK_FM(r, s)));
}

/* fk_random_block_f32 of a normal draw. */
FK_RFUNC void fk_random_block_normal_f32(const fk_random *p, fk_u64 j, float v[4])
{
    fk_u32 w[4];
    fk_random_words(p, j, w);
    fk_random_pair_normal_f32(p, w[0], w[1], v);
    fk_random_pair_normal_f32(p, w[2], w[3], v + 2);
}

/* The float-valued outputs of block j: 4 values, elements 4j .. 4j + 3. */
FK_RFUNC void fk_random_block_f32(const fk_random *p, fk_u64 j, float v[4])
{
    if (p->kind == FK_RNG_UNIFORM)
        fk_random_block_uniform_f32(p, j, v);
    else
        fk_random_block_normal_f32(p, j, v);
}

/* ---- integers ----------------------------------------------------------------------- */

/* High 64 bits of the 128-bit product x * y, from 32-bit halves. */
FK_RFUNC fk_u64 fk_mulhi64(fk_u64 x, fk_u64 y)
{
    fk_u64 xl = x & 0xffffffffu, xh = x >> 32, yl = y & 0xffffffffu, yh = y >> 32;
    fk_u64 ll = xl * yl, lh = xl * yh, hl = xh * yl, hh = xh * yh;
    fk_u64 mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

/* Whether an integer draw takes one word per element. */
FK_RFUNC int fk_random_int_narrow(const fk_random *p)
{
    return p->kind == FK_RNG_INT && p->range != 0 && p->range <= ((fk_u64)1 << 32);
}

/* fk_random_block_int of a narrow randint. */
FK_RFUNC void fk_random_block_int_narrow(const fk_random *p, fk_u64 j, fk_i64 v[4])
{
    fk_u32 w[4];
    fk_random_words(p, j, w);
    v[0] = (fk_i64)((fk_u64)p->low + (((fk_u64)w[0] * p->range) >> 32));
    v[1] = (fk_i64)((fk_u64)p->low + (((fk_u64)w[1] * p->range) >> 32));
    v[2] = (fk_i64)((fk_u64)p->low + (((fk_u64)w[2] * p->range) >> 32));
    v[3] = (fk_i64)((fk_u64)p->low + (((fk_u64)w[3] * p->range) >> 32));
}

/* The integer outputs of block j: 4 values (narrow randint) or 2 (wide, raw bits). */
FK_RFUNC int fk_random_block_int(const fk_random *p, fk_u64 j, fk_i64 v[4])
{
    if (fk_random_int_narrow(p)) {
        fk_random_block_int_narrow(p, j, v);
        return 4;
    }
    fk_u32 w[4];
    fk_random_words(p, j, w);
    for (int k = 0; k < 2; k++) {
        fk_u64 x = ((fk_u64)w[2 * k + 1] << 32) | w[2 * k];
        if (p->kind == FK_RNG_INT)
            x = p->range == 0 ? x : fk_mulhi64(x, p->range);
        v[k] = (fk_i64)((p->kind == FK_RNG_INT ? (fk_u64)p->low : 0u) + x);
    }
    return 2;
}

/* ---- float64 ------------------------------------------------------------------------ */
#if defined(FK_HOST) || FK_HAS_FP64

/* ln x for x in (0, 1]: x = m 2^e, m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s),
 * s = (m - 1) / (m + 1), |s| < 0.172, series to s^23. */
FK_RFUNC double fk_ln(double x)
{
    fk_u64 bits;
#if defined(FK_HOST)
    memcpy(&bits, &x, sizeof bits);
#elif defined(FK_OPENCL)
    bits = as_ulong(x);
#else
    bits = (fk_u64)__double_as_longlong(x);
#endif
    fk_i32 e = (fk_i32)(bits >> 52) - 1023;
    double m = FK_R_AS_DOUBLE((bits & (((fk_u64)0x000fffffu << 32) | 0xffffffffu)) | ((fk_u64)0x3ff00000u << 32));
    if (m > 1.4142135623730951) {
        m = FK_DM(m, 0.5);
        e += 1;
    }
    double s = FK_DD(FK_DS(m, 1.0), FK_DA(m, 1.0));
    double s2 = FK_DM(s, s);
    double poly = 1.0 / 23.0;
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 21.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 19.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 17.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 15.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 13.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 11.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 9.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 7.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 5.0);
    poly = FK_DA(FK_DM(poly, s2), 1.0 / 3.0);
    double lnm = FK_DA(FK_DM(2.0, s), FK_DM(FK_DM(FK_DM(2.0, s), s2), poly));
    double fe = (double)e;
    return FK_DA(FK_DA(FK_DM(fe, 6.93147180369123816490e-01), lnm),
                 FK_DM(fe, 1.90821492927058770002e-10));
}

FK_RFUNC void fk_cossin2pi(double u, double *c, double *s)
{
    double v = FK_DM(u, 4.0);
    int q = (int)v;
    double x = FK_DM(FK_DS(v, (double)q), 1.5707963267948966);
    double x2 = FK_DM(x, x);
    /* Taylor coefficients (-1)^k / (2k + 1)! and (-1)^k / (2k)!, k up to 11. */
    double sp = -1.0 / 51090942171709440000.0;
    sp = FK_DA(FK_DM(sp, x2), 1.0 / 121645100408832000.0);
    sp = FK_DA(FK_DM(sp, x2), -1.0 / 355687428096000.0);
    sp = FK_DA(FK_DM(sp, x2), 1.0 / 1307674368000.0);
    sp = FK_DA(FK_DM(sp, x2), -1.0 / 6227020800.0);
    sp = FK_DA(FK_DM(sp, x2), 1.0 / 39916800.0);
    sp = FK_DA(FK_DM(sp, x2), -1.0 / 362880.0);
    sp = FK_DA(FK_DM(sp, x2), 1.0 / 5040.0);
    sp = FK_DA(FK_DM(sp, x2), -1.0 / 120.0);
    sp = FK_DA(FK_DM(sp, x2), 1.0 / 6.0);
    double sn = FK_DS(x, FK_DM(FK_DM(x, x2), sp));
    double cp = 1.0 / 1124000727777607680000.0;
    cp = FK_DA(FK_DM(cp, x2), -1.0 / 2432902008176640000.0);
    cp = FK_DA(FK_DM(cp, x2), 1.0 / 6402373705728000.0);
    cp = FK_DA(FK_DM(cp, x2), -1.0 / 20922789888000.0);
    cp = FK_DA(FK_DM(cp, x2), 1.0 / 87178291200.0);
    cp = FK_DA(FK_DM(cp, x2), -1.0 / 479001600.0);
    cp = FK_DA(FK_DM(cp, x2), 1.0 / 3628800.0);
    cp = FK_DA(FK_DM(cp, x2), -1.0 / 40320.0);
    cp = FK_DA(FK_DM(cp, x2), 1.0 / 720.0);
    cp = FK_DA(FK_DM(cp, x2), -1.0 / 24.0);
    cp = FK_DA(FK_DM(cp, x2), 0.5);
    double cs = FK_DS(1.0, FK_DM(x2, cp));
    if (q == 0) {
        *c = cs;
        *s = sn;
    } else if (q == 1) {
        *c = -sn;
        *s = cs;
    } else if (q == 2) {
        *c = -cs;
        *s = -sn;
    } else {
        *c = sn;
        *s = -cs;
    }
}

/* The float64 outputs of block j: 2 values, elements 2j and 2j + 1. */
FK_RFUNC void fk_random_block_f64(const fk_random *p, fk_u64 j, double v[2])
{
    fk_u32 w[4];
    fk_random_words(p, j, w);
    double a = FK_R_AS_DOUBLE(p->a64), b = FK_R_AS_DOUBLE(p->b64);
    fk_u64 x0 = (((fk_u64)w[1] << 32) | w[0]) >> 11;
    fk_u64 x1 = (((fk_u64)w[3] << 32) | w[2]) >> 11;
    const double ulp = 1.1102230246251565e-16; /* 2^-53 */
    if (p->kind == FK_RNG_UNIFORM) {
        v[0] = FK_DA(a, FK_DM(b, FK_DM((double)x0, ulp)));
        v[1] = FK_DA(a, FK_DM(b, FK_DM((double)x1, ulp)));
        return;
    }
    double u1 = FK_DM((double)(x0 + 1u), ulp);
    double u2 = FK_DM((double)x1, ulp);
    double r = FK_DSQRT(FK_DM(-2.0, fk_ln(u1)));
    double c, s;
    fk_cossin2pi(u2, &c, &s);
    v[0] = FK_DA(a, FK_DM(b, FK_DM(r, c)));
    v[1] = FK_DA(a, FK_DM(b, FK_DM(r, s)));
}
#endif

/* ---- host side: a launch from the core's parameters ----------------------------- */
#if !defined(FK_OPENCL) && defined(FERRY_OPS_RANDOM_H)
#include <string.h>
/* n elements written densely from element `offset` of a tensor of dtype dt. */
static inline fk_random fk_random_launch(const ferry_random_params *rp, int dt, fk_i64 offset,
                                         fk_i64 n)
{
    fk_random p;
    memset(&p, 0, sizeof p);
    p.seed = rp->seed;
    p.block0 = rp->offset / 4;
    p.range = rp->range;
    p.low = rp->low;
    memcpy(&p.a64, &rp->a, sizeof p.a64);
    memcpy(&p.b64, &rp->b, sizeof p.b64);
    p.a32 = (float)rp->a;
    p.b32 = (float)rp->b;
    p.kind = rp->kind;
    p.fbits = dt == FERRY_FLOAT16 ? 11 : dt == FERRY_BFLOAT16 ? 8 : 24;
    p.offset = offset;
    p.n = n;
    return p;
}

/* fk_random_int_narrow for the host side of a CUDA launch (that one is device code). */
static inline int fk_random_int_narrow_host(const fk_random *p)
{
    return p->kind == FK_RNG_INT && p->range != 0 && p->range <= ((fk_u64)1 << 32);
}
#endif

/* ---- kernels ------------------------------------------------------------------------
 * With p.chunk 0 a grid-stride loop over blocks, one block per thread and iteration
 * (coalesced on GPUs). With p.chunk > 0 (CPU devices, ocl_random.c) each work-item takes
 * the full blocks [id * chunk, id * chunk + chunk) as one counted loop with the kind
 * chosen outside it and no per-element test, which PoCL's compiler vectorizes across
 * iterations; the partial last block, if any, is written by the work-item whose run
 * holds it. Either way every element gets the same function of the same block. */
#if !defined(FK_HOST)
#if FK_NAMED_FAMILY(RANDOM)

/* This work-item's full blocks [s, e) of nfull, and whether it owns block nfull. */
#define FK_RANDOM_RUN(nfull, p, s, e, tail)                                               \
    fk_i64 s = FK_GLOBAL_ID * (p).chunk;                                                  \
    fk_i64 e = (nfull) - s < (p).chunk ? (nfull) : s + (p).chunk;                         \
    int tail = s <= (nfull) && (nfull) - s < (p).chunk

/* A run of full float blocks through block function fn, stored 4 a block. */
#define FK_RANDOM_FLOAT_RUN(sfx, fn, o, p, s, e)                                          \
    for (fk_i64 j = s; j < e; j++) {                                                      \
        float v[4];                                                                       \
        fn(&(p), (fk_u64)j, v);                                                           \
        FK_STORE_##sfx(o, 4 * j, v[0]);                                                   \
        FK_STORE_##sfx(o, 4 * j + 1, v[1]);                                               \
        FK_STORE_##sfx(o, 4 * j + 2, v[2]);                                               \
        FK_STORE_##sfx(o, 4 * j + 3, v[3]);                                               \
    }

#define FK_DEFINE_RANDOM_FLOAT(sfx, unused)                                               \
    FK_KERNEL ferry_random_float_##sfx(FK_GLOBAL FK_ST_##sfx *out, fk_random p)           \
    {                                                                                     \
        FK_GLOBAL FK_ST_##sfx *o = out + p.offset;                                        \
        if (p.chunk > 0) {                                                                \
            fk_i64 nfull = p.n / 4;                                                       \
            FK_RANDOM_RUN(nfull, p, s, e, tail);                                          \
            if (p.kind == FK_RNG_UNIFORM)                                                 \
                FK_RANDOM_FLOAT_RUN(sfx, fk_random_block_uniform_f32, o, p, s, e)         \
            else                                                                          \
                FK_RANDOM_FLOAT_RUN(sfx, fk_random_block_normal_f32, o, p, s, e)          \
            if (tail && 4 * nfull < p.n) {                                                \
                float v[4];                                                               \
                fk_random_block_f32(&p, (fk_u64)nfull, v);                                \
                for (int k = 0; 4 * nfull + k < p.n; k++)                                 \
                    FK_STORE_##sfx(o, 4 * nfull + k, v[k]);                               \
            }                                                                             \
            return;                                                                       \
        }                                                                                 \
        fk_i64 nb = (p.n + 3) / 4;                                                        \
        FK_FOR_EACH(j, nb)                                                                \
        {                                                                                 \
            float v[4];                                                                   \
            fk_random_block_f32(&p, (fk_u64)j, v);                                        \
            for (int k = 0; k < 4; k++)                                                   \
                if (4 * j + k < p.n)                                                      \
                    FK_STORE_##sfx(o, 4 * j + k, v[k]);                                   \
        }                                                                                 \
    }

#define FK_DEFINE_RANDOM_INT(sfx, unused)                                                 \
    FK_KERNEL ferry_random_int_##sfx(FK_GLOBAL FK_ST_##sfx *out, fk_random p)             \
    {                                                                                     \
        FK_GLOBAL FK_ST_##sfx *o = out + p.offset;                                        \
        int narrow = fk_random_int_narrow(&p);                                            \
        int per = narrow ? 4 : 2;                                                         \
        if (p.chunk > 0) {                                                                \
            fk_i64 nfull = p.n / per;                                                     \
            FK_RANDOM_RUN(nfull, p, s, e, tail);                                          \
            if (narrow) {                                                                 \
                for (fk_i64 j = s; j < e; j++) {                                          \
                    fk_i64 v[4];                                                          \
                    fk_random_block_int_narrow(&p, (fk_u64)j, v);                         \
                    FK_STORE_##sfx(o, 4 * j, FK_CONVERT(i64, sfx, v[0]));                 \
                    FK_STORE_##sfx(o, 4 * j + 1, FK_CONVERT(i64, sfx, v[1]));             \
                    FK_STORE_##sfx(o, 4 * j + 2, FK_CONVERT(i64, sfx, v[2]));             \
                    FK_STORE_##sfx(o, 4 * j + 3, FK_CONVERT(i64, sfx, v[3]));             \
                }                                                                         \
            } else {                                                                      \
                for (fk_i64 j = s; j < e; j++) {                                          \
                    fk_i64 v[4];                                                          \
                    fk_random_block_int(&p, (fk_u64)j, v);                                \
                    FK_STORE_##sfx(o, 2 * j, FK_CONVERT(i64, sfx, v[0]));                 \
                    FK_STORE_##sfx(o, 2 * j + 1, FK_CONVERT(i64, sfx, v[1]));             \
                }                                                                         \
            }                                                                             \
            if (tail && per * nfull < p.n) {                                              \
                fk_i64 v[4];                                                              \
                fk_random_block_int(&p, (fk_u64)nfull, v);                                \
                for (int k = 0; per * nfull + k < p.n; k++)                               \
                    FK_STORE_##sfx(o, per * nfull + k, FK_CONVERT(i64, sfx, v[k]));       \
            }                                                                             \
            return;                                                                       \
        }                                                                                 \
        fk_i64 nb = (p.n + per - 1) / per;                                                \
        FK_FOR_EACH(j, nb)                                                                \
        {                                                                                 \
            fk_i64 v[4];                                                                  \
            fk_random_block_int(&p, (fk_u64)j, v);                                        \
            for (int k = 0; k < per; k++)                                                 \
                if (per * j + k < p.n)                                                    \
                    FK_STORE_##sfx(o, per * j + k, FK_CONVERT(i64, sfx, v[k]));           \
        }                                                                                 \
    }

#define FK_DEFINE_RANDOM_F64(sfx, unused)                                                 \
    FK_KERNEL ferry_random_float_##sfx(FK_GLOBAL double *out, fk_random p)                \
    {                                                                                     \
        if (p.chunk > 0) {                                                                \
            fk_i64 nfull = p.n / 2;                                                       \
            FK_RANDOM_RUN(nfull, p, s, e, tail);                                          \
            for (fk_i64 j = s; j < e; j++) {                                              \
                double v[2];                                                              \
                fk_random_block_f64(&p, (fk_u64)j, v);                                    \
                out[p.offset + 2 * j] = v[0];                                             \
                out[p.offset + 2 * j + 1] = v[1];                                         \
            }                                                                             \
            if (tail && 2 * nfull < p.n) {                                                \
                double v[2];                                                              \
                fk_random_block_f64(&p, (fk_u64)nfull, v);                                \
                out[p.offset + 2 * nfull] = v[0];                                         \
            }                                                                             \
            return;                                                                       \
        }                                                                                 \
        fk_i64 nb = (p.n + 1) / 2;                                                        \
        FK_FOR_EACH(j, nb)                                                                \
        {                                                                                 \
            double v[2];                                                                  \
            fk_random_block_f64(&p, (fk_u64)j, v);                                        \
            out[p.offset + 2 * j] = v[0];                                                 \
            if (2 * j + 1 < p.n)                                                          \
                out[p.offset + 2 * j + 1] = v[1];                                         \
        }                                                                                 \
    }

FK_SELECTED(FK_DEFINE_RANDOM_FLOAT, f16, 0)
FK_SELECTED(FK_DEFINE_RANDOM_FLOAT, bf16, 0)
FK_SELECTED(FK_DEFINE_RANDOM_FLOAT, f32, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, bool, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, u8, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, i8, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, i16, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, i32, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, i64, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, f16, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, bf16, 0)
FK_SELECTED(FK_DEFINE_RANDOM_INT, f32, 0)
#if FK_HAS_FP64
FK_SELECTED(FK_DEFINE_RANDOM_INT, f64, 0)
FK_SELECTED(FK_DEFINE_RANDOM_F64, f64, 0)
#endif

#endif
#endif /* kernels */

#endif /* FK_RANDOM_CODE */

#endif /* FERRY_RANDOM_H */

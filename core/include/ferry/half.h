/**
 * Exact float16 / bfloat16 <-> float32 conversions (round to nearest even; narrowing
 * keeps a NaN's sign and top payload bits and makes it quiet, widening keeps its bits;
 * infinities; subnormals), header-only so the
 * core, the CPU backend and third-party plugins share one definition.
 */
#ifndef FERRY_HALF_H
#define FERRY_HALF_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline uint32_t ferry_f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static inline float ferry_bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/** IEEE binary16 bits to float32; exact. */
static inline float ferry_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1fu)
        return ferry_bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0)
        return ferry_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    /* Zero or subnormal: mant * 2^-24 is exact in float32, and having no loop keeps
     * callers' conversion loops vectorizable. */
    float mag = (float)mant * 0x1p-24f;
    return ferry_bits_f32(sign | ferry_f32_bits(mag));
}

/** float32 to IEEE binary16 bits, rounding to nearest even. */
static inline uint16_t ferry_f32_to_f16(float f)
{
    uint32_t x = ferry_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: stay quiet so it never turns into infinity */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* >= 65520 rounds past the largest finite half */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* normal half: rebias, then round the 13 dropped bits */
        ax += 0xc8000fffu + ((ax >> 13) & 1u);
        return (uint16_t)(sign | (ax >> 13));
    }
    /* Subnormal half or zero: adding 0.5f leaves |f| rounded (to nearest even) to a
     * multiple of 2^-24 in the low mantissa bits, which is the subnormal's encoding. */
    float r = ferry_bits_f32(ax) + 0.5f;
    return (uint16_t)(sign | (ferry_f32_bits(r) - 0x3f000000u));
}

/** bfloat16 bits to float32; exact. */
static inline float ferry_bf16_to_f32(uint16_t h)
{
    return ferry_bits_f32((uint32_t)h << 16);
}

/** float32 to bfloat16 bits, rounding to nearest even. */
static inline uint16_t ferry_f32_to_bf16(float f)
{
    uint32_t x = ferry_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#ifdef __cplusplus
}
#endif

#endif /* FERRY_HALF_H */

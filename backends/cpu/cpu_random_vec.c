/* Vector builds of the float32 samplers and narrow randint (cpu_random_vec.h) for AVX-512 and AVX2, chosen
 * at run time from what the CPU reports, so the library itself stays built for baseline
 * x86-64. Built with -ffp-contract=off like cpu_random.c: gcc's float intrinsics are
 * plain vector arithmetic that it would otherwise fuse into FMAs. */
#include <stdint.h>
#include <stdlib.h>

#include <ferry/ops/random.h>

#include "cpu_internal.h"
#include "cpu_random_vec_api.h"
#include "ferry_random.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FERRY_CPU_NO_RANDOM_VEC)
#include <immintrin.h>

/* ---- AVX-512F: 16 blocks (64 floats) per step ---- */
#define VFUNC static inline __attribute__((target("avx512f"), always_inline))
#define VNAME(x) fk_avx512_##x
#define VW 16
#define VI __m512i
#define VF __m512
#define VM __mmask16
#define VZERO() _mm512_setzero_si512()
#define VI64_SET1(x) _mm512_set1_epi64((long long)(x))
#define VI64_ADD(a, b) _mm512_add_epi64(a, b)
#define VI64_IOTA2() _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0)
#define VI64_SRL32(a) _mm512_srli_epi64(a, 32)
#define VI64_LOW32(a) _mm512_and_si512(a, _mm512_set1_epi64(0xffffffff))
#define VSTOREI(p, a) _mm512_storeu_si512(p, a)
#define VMULU(a, b) _mm512_mul_epu32(a, b)
#define VPACK(lo, hi) _mm512_mask_blend_epi32(0xAAAA, lo, _mm512_slli_epi64(hi, 32))
#define VXOR(a, b) _mm512_xor_si512(a, b)
/* a ^ b ^ c in one instruction (0x96: the truth table of a three-way xor). */
#define VXOR3(a, b, c) _mm512_ternarylogic_epi64(a, b, c, 0x96)
#define VAND(a, b) _mm512_and_si512(a, b)
#define VI32_SET1(x) _mm512_set1_epi32((int)(x))
#define VI32_ADD(a, b) _mm512_add_epi32(a, b)
#define VI32_SUB(a, b) _mm512_sub_epi32(a, b)
#define VI32_SRL(a, n) _mm512_srli_epi32(a, n)
#define VI32_SLL(a, n) _mm512_slli_epi32(a, n)
#define VI32_SRLV(a, n) _mm512_srl_epi32(a, _mm_cvtsi32_si128(n))
#define VCAST_F2I(a) _mm512_castps_si512(a)
#define VCAST_I2F(a) _mm512_castsi512_ps(a)
#define VCVT_I2F(a) _mm512_cvtepi32_ps(a)
#define VCVTT_F2I(a) _mm512_cvttps_epi32(a)
#define VF_SET1(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VCMPEQ(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define VSELF(m, a, b) _mm512_mask_blend_ps(m, a, b)
#define VTEST(q, bit) _mm512_test_epi32_mask(q, _mm512_set1_epi32(bit))

/* 4 x 4 transposes within 128-bit lanes, then the lanes put in block order. */
VFUNC void fk_avx512_store4(float *o, VF v0, VF v1, VF v2, VF v3)
{
    VF t0 = _mm512_unpacklo_ps(v0, v1), t1 = _mm512_unpackhi_ps(v0, v1);
    VF t2 = _mm512_unpacklo_ps(v2, v3), t3 = _mm512_unpackhi_ps(v2, v3);
    VF r0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    VF r1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    VF r2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    VF r3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    /* r0 holds blocks 0 4 8 12, r1 1 5 9 13, r2 2 6 10 14, r3 3 7 11 15. */
    VF a = _mm512_shuffle_f32x4(r0, r1, 0x44), b = _mm512_shuffle_f32x4(r2, r3, 0x44);
    VF c = _mm512_shuffle_f32x4(r0, r1, 0xEE), d = _mm512_shuffle_f32x4(r2, r3, 0xEE);
    _mm512_storeu_ps(o, _mm512_shuffle_f32x4(a, b, 0x88));
    _mm512_storeu_ps(o + 16, _mm512_shuffle_f32x4(a, b, 0xDD));
    _mm512_storeu_ps(o + 32, _mm512_shuffle_f32x4(c, d, 0x88));
    _mm512_storeu_ps(o + 48, _mm512_shuffle_f32x4(c, d, 0xDD));
}
#define VSTORE4(o, v0, v1, v2, v3) fk_avx512_store4(o, v0, v1, v2, v3)

#include "cpu_random_vec.h"

__attribute__((target("avx512f"))) static void fk_avx512_run(const fk_random *p, uint64_t j0,
                                                             int64_t groups, void *o, int what)
{
    if (what == 0)
        fk_avx512_f32(p, j0, groups, o);
    else
        fk_avx512_int_narrow(p, j0, groups, o, what == 2);
}

#undef VFUNC
#undef VNAME
#undef VW
#undef VI
#undef VF
#undef VM
#undef VZERO
#undef VI64_SET1
#undef VI64_ADD
#undef VI64_IOTA2
#undef VI64_SRL32
#undef VI64_LOW32
#undef VSTOREI
#undef VMULU
#undef VPACK
#undef VXOR
#undef VXOR3
#undef VAND
#undef VI32_SET1
#undef VI32_ADD
#undef VI32_SUB
#undef VI32_SRL
#undef VI32_SLL
#undef VI32_SRLV
#undef VCAST_F2I
#undef VCAST_I2F
#undef VCVT_I2F
#undef VCVTT_F2I
#undef VF_SET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VCMPEQ
#undef VSELF
#undef VTEST
#undef VSTORE4

/* ---- AVX2: 8 blocks (32 floats) per step ---- */
#define VFUNC static inline __attribute__((target("avx2"), always_inline))
#define VNAME(x) fk_avx2_##x
#define VW 8
#define VI __m256i
#define VF __m256
#define VM __m256
#define VZERO() _mm256_setzero_si256()
#define VI64_SET1(x) _mm256_set1_epi64x((long long)(x))
#define VI64_ADD(a, b) _mm256_add_epi64(a, b)
#define VI64_IOTA2() _mm256_set_epi64x(6, 4, 2, 0)
#define VI64_SRL32(a) _mm256_srli_epi64(a, 32)
#define VI64_LOW32(a) _mm256_and_si256(a, _mm256_set1_epi64x(0xffffffff))
#define VSTOREI(p, a) _mm256_storeu_si256((__m256i *)(p), a)
#define VMULU(a, b) _mm256_mul_epu32(a, b)
#define VPACK(lo, hi) _mm256_blend_epi32(lo, _mm256_slli_epi64(hi, 32), 0xAA)
#define VXOR(a, b) _mm256_xor_si256(a, b)
#define VXOR3(a, b, c) _mm256_xor_si256(_mm256_xor_si256(a, b), c)
#define VAND(a, b) _mm256_and_si256(a, b)
#define VI32_SET1(x) _mm256_set1_epi32((int)(x))
#define VI32_ADD(a, b) _mm256_add_epi32(a, b)
#define VI32_SUB(a, b) _mm256_sub_epi32(a, b)
#define VI32_SRL(a, n) _mm256_srli_epi32(a, n)
#define VI32_SLL(a, n) _mm256_slli_epi32(a, n)
#define VI32_SRLV(a, n) _mm256_srl_epi32(a, _mm_cvtsi32_si128(n))
#define VCAST_F2I(a) _mm256_castps_si256(a)
#define VCAST_I2F(a) _mm256_castsi256_ps(a)
#define VCVT_I2F(a) _mm256_cvtepi32_ps(a)
#define VCVTT_F2I(a) _mm256_cvttps_epi32(a)
#define VF_SET1(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VCMPEQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define VSELF(m, a, b) _mm256_blendv_ps(a, b, m)
/* A true lane of a vector mask is -1. */
#define VTEST(q, bit)                                                                      \
    _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(q, _mm256_set1_epi32(bit)),    \
                                           _mm256_set1_epi32(bit)))

VFUNC void fk_avx2_store4(float *o, VF v0, VF v1, VF v2, VF v3)
{
    VF t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
    VF t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
    VF r0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    VF r1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    VF r2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    VF r3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    /* r0 holds blocks 0 4, r1 1 5, r2 2 6, r3 3 7. */
    _mm256_storeu_ps(o, _mm256_permute2f128_ps(r0, r1, 0x20));
    _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(r2, r3, 0x20));
    _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(r0, r1, 0x31));
    _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(r2, r3, 0x31));
}
#define VSTORE4(o, v0, v1, v2, v3) fk_avx2_store4(o, v0, v1, v2, v3)

#include "cpu_random_vec.h"

__attribute__((target("avx2"))) static void fk_avx2_run(const fk_random *p, uint64_t j0,
                                                        int64_t groups, void *o, int what)
{
    if (what == 0)
        fk_avx2_f32(p, j0, groups, o);
    else
        fk_avx2_int_narrow(p, j0, groups, o, what == 2);
}

/* 2 AVX-512, 1 AVX2, 0 neither. __builtin_cpu_supports also checks that the OS saves
 * the wider registers (XCR0). */
static int vec_level(void)
{
    static int known = -1;
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k < 0) {
        __builtin_cpu_init();
        k = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
        /* A cap on the level, so that tests cover each build on one machine. */
        const char *cap = getenv("FERRY_CPU_RANDOM_VEC");
        if (cap && *cap >= '0' && *cap < '0' + k)
            k = *cap - '0';
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k;
}

/* what: 0 float32, 1 narrow randint into int32, 2 into int64. */
static int64_t run(const fk_random *p, uint64_t j0, int64_t nblocks, void *o, int what)
{
    int lv = vec_level();
    if (lv == 2) {
        fk_avx512_run(p, j0, nblocks / 16, o, what);
        return nblocks / 16 * 16;
    }
    if (lv == 1) {
        fk_avx2_run(p, j0, nblocks / 8, o, what);
        return nblocks / 8 * 8;
    }
    return 0;
}

int64_t cpu_random_f32_vec(const fk_random *p, uint64_t j0, int64_t nblocks, float *o)
{
    return run(p, j0, nblocks, o, 0);
}

int64_t cpu_random_int_vec(const fk_random *p, uint64_t j0, int64_t nblocks, void *o, int wide)
{
    return run(p, j0, nblocks, o, wide ? 2 : 1);
}

#else
int64_t cpu_random_f32_vec(const fk_random *p, uint64_t j0, int64_t nblocks, float *o)
{
    (void)p;
    (void)j0;
    (void)nblocks;
    (void)o;
    return 0;
}

int64_t cpu_random_int_vec(const fk_random *p, uint64_t j0, int64_t nblocks, void *o, int wide)
{
    (void)p;
    (void)j0;
    (void)nblocks;
    (void)o;
    (void)wide;
    return 0;
}
#endif

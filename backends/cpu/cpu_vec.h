/* Per ISA and element type, the vector operations of ferry's own matmul kernels
 * (cpu_small_gemm.c, cpu_pack_gemm.c), with one argument order: the vector (V) and mask
 * (M) types, the lanes (W), the function attribute (ATTR), and mask of the first `left`
 * lanes, zero, broadcast, fused multiply-add, add, masked load and store; LOADF and STOREF
 * move a whole vector (AVX2's masked store is slow on AMD's cores). The suffixes: s512,
 * d512 (AVX-512 float and double), s256, d256 (AVX2 + FMA). Only for x86-64 with a GNU
 * compiler, where CPU_VEC_X86 is defined. */
#ifndef FERRY_CPU_VEC_H
#define FERRY_CPU_VEC_H

#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_VEC_X86 1
#include <immintrin.h>

#define CPU_VEC_ATTR_s512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define CPU_VEC_V_s512 __m512
#define CPU_VEC_M_s512 __mmask16
#define CPU_VEC_W_s512 16
#define CPU_VEC_MASK_s512(left) ((__mmask16)((left) >= 16 ? 0xffffu : (1u << (left)) - 1u))
#define CPU_VEC_ZERO_s512() _mm512_setzero_ps()
#define CPU_VEC_SET1_s512(x) _mm512_set1_ps(x)
#define CPU_VEC_FMA_s512(x, y, z) _mm512_fmadd_ps(x, y, z)
#define CPU_VEC_ADD_s512(x, y) _mm512_add_ps(x, y)
#define CPU_VEC_LOAD_s512(mk, p) _mm512_maskz_loadu_ps(mk, p)
#define CPU_VEC_LOADF_s512(p) _mm512_loadu_ps(p)
#define CPU_VEC_STORE_s512(p, mk, v) _mm512_mask_storeu_ps(p, mk, v)
#define CPU_VEC_STOREF_s512(p, v) _mm512_storeu_ps(p, v)

#define CPU_VEC_ATTR_d512 CPU_VEC_ATTR_s512
#define CPU_VEC_V_d512 __m512d
#define CPU_VEC_M_d512 __mmask8
#define CPU_VEC_W_d512 8
#define CPU_VEC_MASK_d512(left) ((__mmask8)((left) >= 8 ? 0xffu : (1u << (left)) - 1u))
#define CPU_VEC_ZERO_d512() _mm512_setzero_pd()
#define CPU_VEC_SET1_d512(x) _mm512_set1_pd(x)
#define CPU_VEC_FMA_d512(x, y, z) _mm512_fmadd_pd(x, y, z)
#define CPU_VEC_ADD_d512(x, y) _mm512_add_pd(x, y)
#define CPU_VEC_LOAD_d512(mk, p) _mm512_maskz_loadu_pd(mk, p)
#define CPU_VEC_LOADF_d512(p) _mm512_loadu_pd(p)
#define CPU_VEC_STORE_d512(p, mk, v) _mm512_mask_storeu_pd(p, mk, v)
#define CPU_VEC_STOREF_d512(p, v) _mm512_storeu_pd(p, v)

#define CPU_VEC_ATTR_s256 __attribute__((target("avx2,fma")))
#define CPU_VEC_V_s256 __m256
#define CPU_VEC_M_s256 __m256i
#define CPU_VEC_W_s256 8
#define CPU_VEC_MASK_s256(left)                                                           \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)((left) < 8 ? (left) : 8)),                   \
                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define CPU_VEC_ZERO_s256() _mm256_setzero_ps()
#define CPU_VEC_SET1_s256(x) _mm256_set1_ps(x)
#define CPU_VEC_FMA_s256(x, y, z) _mm256_fmadd_ps(x, y, z)
#define CPU_VEC_ADD_s256(x, y) _mm256_add_ps(x, y)
#define CPU_VEC_LOAD_s256(mk, p) _mm256_maskload_ps(p, mk)
#define CPU_VEC_LOADF_s256(p) _mm256_loadu_ps(p)
#define CPU_VEC_STORE_s256(p, mk, v) _mm256_maskstore_ps(p, mk, v)
#define CPU_VEC_STOREF_s256(p, v) _mm256_storeu_ps(p, v)

#define CPU_VEC_ATTR_d256 CPU_VEC_ATTR_s256
#define CPU_VEC_V_d256 __m256d
#define CPU_VEC_M_d256 __m256i
#define CPU_VEC_W_d256 4
#define CPU_VEC_MASK_d256(left)                                                           \
    _mm256_cmpgt_epi64(_mm256_set1_epi64x((left) < 4 ? (left) : 4),                         \
                       _mm256_setr_epi64x(0, 1, 2, 3))
#define CPU_VEC_ZERO_d256() _mm256_setzero_pd()
#define CPU_VEC_SET1_d256(x) _mm256_set1_pd(x)
#define CPU_VEC_FMA_d256(x, y, z) _mm256_fmadd_pd(x, y, z)
#define CPU_VEC_ADD_d256(x, y) _mm256_add_pd(x, y)
#define CPU_VEC_LOAD_d256(mk, p) _mm256_maskload_pd(p, mk)
#define CPU_VEC_LOADF_d256(p) _mm256_loadu_pd(p)
#define CPU_VEC_STORE_d256(p, mk, v) _mm256_maskstore_pd(p, mk, v)
#define CPU_VEC_STOREF_d256(p, v) _mm256_storeu_pd(p, v)

#endif
#endif

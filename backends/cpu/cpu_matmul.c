/* CPU batched matmul: float32/float64 through BLIS's typed expert API (operands passed by
 * their strides, a BLIS configuration chosen at run time for the CPU and the size),
 * float16/bfloat16 through float32, and integers by a loop that wraps in their type. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef FERRY_CPU_HAVE_BLIS
#include <blis.h>
#endif

#include <ferry/half.h>

#include "cpu_internal.h"

/* ---- BLIS configuration ------------------------------------------------------------------
 * Debian's BLIS 0.9 registers every x86-64 configuration but picks one by CPU model: it
 * files the AVX-512 Xeon of BASELINES.md as `haswell` (AVX2) and this AMD EPYC (family
 * 0x1a, Zen 5) as `generic`, which has no vector kernels at all (23-78 GFLOP/s). Its
 * `skx` kernels are much faster on large products but have no small-matrix (sup) path,
 * where `haswell`'s kernels win. Measured on the EPYC (float32 N x N x N, GFLOP/s, best
 * of 15, other builds running):
 *
 *       N    1 thread: haswell  skx     2 threads: haswell  skx
 *      32               53       22                 57       14
 *      64              107       87                185       82
 *      80              118      107                202      112
 *      96              123      154                228      168
 *     112              126      144                238      209
 *     128              124      180                236      272
 *     192              128      216                255      385
 *     256              121      218                235      411
 *
 * so skx pays from about 88^3 multiply-adds on one thread and 120^3 on two. Thin
 * products (m or n of 32 or less, k large) stay faster on haswell's sup kernels at any
 * size (m = 8, n = k = 4096: 42 against 17 GFLOP/s), hence the second condition. On the
 * Xeon of BASELINES.md the same split holds at N = 64 (66 against 27) and N = 256 (101
 * against 185). */
#define CPU_BLIS_SKX_MIN_MNK_1T ((int64_t)88 * 88 * 88)
#define CPU_BLIS_SKX_MIN_MNK ((int64_t)120 * 120 * 120)
#define CPU_BLIS_SKX_MIN_MN 64

/* Products below this many multiply-adds run on one thread: two threads only gain from
 * about 40^3 (haswell kernels, 32^3: 53 GFLOP/s on one thread, 57 on two; 48^3: 93
 * against 127). */
#define CPU_MM_MIN_PARALLEL ((int64_t)40 * 40 * 40)

/* Multiply-adds per chunk of a batch split over the threads (32 products of 16^3). */
#define CPU_MM_CHUNK ((int64_t)1 << 17)

#ifdef FERRY_CPU_HAVE_BLIS
static pthread_once_t cpu_blis_once = PTHREAD_ONCE_INIT;
static cntx_t *cpu_blis_small; /* the contexts for small and large products */
static cntx_t *cpu_blis_big;
static char cpu_blis_names[64];

#if defined(FERRY_CPU_BLIS_GKS) && defined(__x86_64__) && defined(__GNUC__)
/* The native context of a configuration registered in this BLIS build, else NULL. */
static cntx_t *cpu_blis_lookup(arch_t id)
{
    cntx_t **c = bli_gks_lookup_id(id);
    return c ? c[BLIS_NAT] : NULL;
}

/* Replaces BLIS's own choice where this CPU can run better kernels. */
static void cpu_blis_choose(arch_t detected, const char **small, const char **big)
{
    __builtin_cpu_init();
#if defined(BLIS_CONFIG_HASWELL)
    /* `generic` has no vector kernels; any CPU with AVX2 and FMA runs `haswell`'s. */
    if (detected == BLIS_ARCH_GENERIC && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma")) {
        cntx_t *c = cpu_blis_lookup(BLIS_ARCH_HASWELL);
        if (c) {
            cpu_blis_small = cpu_blis_big = c;
            *small = *big = "haswell";
        }
    }
#endif
#if defined(BLIS_CONFIG_SKX)
    /* The skx kernels use AVX-512 F, DQ, BW and VL (Skylake-SP and later, Zen 4 and
     * later). */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        cntx_t *c = cpu_blis_lookup(BLIS_ARCH_SKX);
        if (c) {
            cpu_blis_big = c;
            *big = "skx";
        }
    }
#endif
}
#endif

#if defined(FERRY_CPU_STATIC_TLS)
/* Sanitizer builds only. BLIS keeps a little state in thread-local storage, and in a
 * dlopen'ed module that storage is normally allocated per thread with malloc. The leak
 * checker of gcc 12's libsanitizer misreads such a block when its address happens to
 * be 16 modulo 4096 (its "glibc >= 2.19" header heuristic, removed in LLVM 16) and
 * crashes at exit while scanning OpenMP worker threads. One initial-exec variable
 * makes the linker flag the module DF_STATIC_TLS, so glibc places all of its TLS in
 * the static block the checker knows. */
static __thread int cpu_static_tls_anchor __attribute__((tls_model("initial-exec")));
#endif

static void cpu_blis_init(void)
{
#if defined(FERRY_CPU_STATIC_TLS)
    cpu_static_tls_anchor = 1;
#endif
    bli_init();
    arch_t detected = bli_arch_query_id();
    cpu_blis_small = cpu_blis_big = bli_gks_query_cntx();
    const char *small = bli_arch_string(detected), *big = small;
#if defined(FERRY_CPU_BLIS_GKS) && defined(__x86_64__) && defined(__GNUC__)
    /* A configuration the user picked with BLIS_ARCH_TYPE is used for every size. */
    const char *forced = getenv("BLIS_ARCH_TYPE");
    if (!forced || !*forced)
        cpu_blis_choose(detected, &small, &big);
#endif
    snprintf(cpu_blis_names, sizeof cpu_blis_names, "%s for small products, %s for large",
             small, big);
    if (cpu_host && cpu_host->log)
        cpu_host->log(FERRY_LOG_DEBUG, "cpu", "BLIS detected %s; matmul uses %s (%d threads)",
                      bli_arch_string(detected), cpu_blis_names, cpu_max_threads());
}

static cntx_t *cpu_blis_cntx(int64_t m, int64_t n, int64_t k, int threads)
{
    int64_t mnk = m * n * k;
    bool big = mnk >= (threads > 1 ? CPU_BLIS_SKX_MIN_MNK : CPU_BLIS_SKX_MIN_MNK_1T) &&
               m >= CPU_BLIS_SKX_MIN_MN && n >= CPU_BLIS_SKX_MIN_MN;
    return big ? cpu_blis_big : cpu_blis_small;
}
#endif

const char *cpu_blis_config_names(void)
{
#ifdef FERRY_CPU_HAVE_BLIS
    pthread_once(&cpu_blis_once, cpu_blis_init);
    return cpu_blis_names;
#else
    return "none (C loops)";
#endif
}

/* One product C = A B of float (dbl: double) matrices whose strides BLIS accepts. */
void cpu_blis_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa,
                     int64_t csa, const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc,
                     int64_t csc, int threads, bool acc)
{
#ifdef FERRY_CPU_HAVE_BLIS
    pthread_once(&cpu_blis_once, cpu_blis_init);
    rntm_t rntm;
    bli_rntm_init(&rntm);
    bli_rntm_set_num_threads(threads, &rntm);
    cntx_t *cntx = cpu_blis_cntx(m, n, k, threads);
    /* BLIS does not write A or B; its API takes them non-const. */
    if (dbl) {
        double one = 1.0, beta = acc ? 1.0 : 0.0;
        bli_dgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (double *)a, rsa, csa,
                     (double *)b, rsb, csb, &beta, c, rsc, csc, cntx, &rntm);
    } else {
        float one = 1.0f, beta = acc ? 1.0f : 0.0f;
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (float *)a, rsa, csa,
                     (float *)b, rsb, csb, &beta, c, rsc, csc, cntx, &rntm);
    }
#else
    /* Without BLIS: i-k-j loops, accumulating in the output (float, or double). */
    (void)threads;
#define CPU_GEMM_LOOP_(T)                                                                   \
    do {                                                                                    \
        const T *A = a, *Bm = b;                                                            \
        T *C = c;                                                                           \
        for (int64_t i = 0; i < m; i++) {                                                   \
            for (int64_t j = 0; j < n && !acc; j++)                                         \
                C[i * rsc + j * csc] = 0;                                                   \
            for (int64_t p = 0; p < k; p++) {                                               \
                T aik = A[i * rsa + p * csa];                                               \
                for (int64_t j = 0; j < n; j++)                                             \
                    C[i * rsc + j * csc] += aik * Bm[p * rsb + j * csb];                    \
            }                                                                               \
        }                                                                                   \
    } while (0)
    if (dbl)
        CPU_GEMM_LOOP_(double);
    else
        CPU_GEMM_LOOP_(float);
#undef CPU_GEMM_LOOP_
#endif
}

/* Strides BLIS takes for an r x c operand: unit stride along rows or columns, the other
 * stride covering a whole column or row, all positive. A dim of extent 1 may have any
 * stride (the core gives 0 to the dims it adds for 1-D operands), so it is replaced. */
static bool cpu_blis_strides(int64_t r, int64_t c, int64_t *rs, int64_t *cs)
{
    int64_t R = *rs, C = *cs;
    if ((c == 1 || C == 1) && (r == 1 || R >= c)) {
        *rs = r == 1 ? c : R;
        *cs = 1;
        return true;
    }
    if ((r == 1 || R == 1) && (c == 1 || C >= r)) {
        *rs = 1;
        *cs = c == 1 ? r : C;
        return true;
    }
    return false;
}

/* ---- the float path ------------------------------------------------------------------------ */

typedef struct cpu_mm {
    ferry_dtype dt;
    int64_t B, m, n, k;
    size_t es;
    const char *a, *b;
    char *c;
    int64_t sa[3], sb[3], sc[3];
    /* Whether BLIS reads (writes) the operand in place, with these strides. */
    bool a_direct, b_direct, c_direct;
    int64_t rsa, csa, rsb, csb, rsc, csc;
} cpu_mm;

/* Element (i, j) of a stored matrix as the compute type (float or double). */
static double cpu_mm_load(ferry_dtype dt, const char *p)
{
    switch (dt) {
    case FERRY_FLOAT16: {
        uint16_t h;
        memcpy(&h, p, sizeof h);
        return cpu_f16_to_f32(h);
    }
    case FERRY_BFLOAT16: {
        uint16_t h;
        memcpy(&h, p, sizeof h);
        return ferry_bf16_to_f32(h);
    }
    case FERRY_FLOAT32: {
        float f;
        memcpy(&f, p, sizeof f);
        return f;
    }
    default: {
        double d;
        memcpy(&d, p, sizeof d);
        return d;
    }
    }
}

/* Copies an r x c operand (strides in elements) into a row-major float/double temp. */
static void cpu_mm_pack(ferry_dtype dt, size_t es, const char *src, int64_t rs, int64_t cs,
                        int64_t r, int64_t c, void *dst)
{
    if (dt == FERRY_FLOAT64) {
        double *d = dst;
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++)
                memcpy(&d[i * c + j], src + (i * rs + j * cs) * (int64_t)es, sizeof(double));
        return;
    }
    float *d = dst;
    for (int64_t i = 0; i < r; i++) {
        const char *row = src + i * rs * (int64_t)es;
        if (dt != FERRY_FLOAT32 && cs == 1 && ((uintptr_t)row & 1) == 0) {
            const uint16_t *h = (const uint16_t *)(const void *)row;
            if (dt == FERRY_FLOAT16)
                cpu_f16_to_f32_n(d + i * c, h, c);
            else
                cpu_bf16_to_f32_n(d + i * c, h, c);
            continue;
        }
        for (int64_t j = 0; j < c; j++)
            d[i * c + j] = (float)cpu_mm_load(dt, row + j * cs * (int64_t)es);
    }
}

/* Stores a row-major m x n float/double temp into out's matrix, rounding once. */
static void cpu_mm_unpack(ferry_dtype dt, size_t es, const void *src, int64_t m, int64_t n,
                          char *dst, int64_t rs, int64_t cs)
{
    if ((dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16) && cs == 1 && ((uintptr_t)dst & 1) == 0) {
        for (int64_t i = 0; i < m; i++) {
            uint16_t *row = (uint16_t *)(void *)(dst + i * rs * (int64_t)es);
            if (dt == FERRY_FLOAT16)
                cpu_f32_to_f16_n(row, (const float *)src + i * n, n);
            else
                cpu_f32_to_bf16_n(row, (const float *)src + i * n, n);
        }
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            char *q = dst + (i * rs + j * cs) * (int64_t)es;
            if (dt == FERRY_FLOAT64) {
                memcpy(q, (const double *)src + i * n + j, sizeof(double));
                continue;
            }
            float v = ((const float *)src)[i * n + j];
            if (dt == FERRY_FLOAT32) {
                memcpy(q, &v, sizeof v);
            } else {
                uint16_t h = dt == FERRY_FLOAT16 ? ferry_f32_to_f16(v) : ferry_f32_to_bf16(v);
                memcpy(q, &h, sizeof h);
            }
        }
}

/* ---- float16 / bfloat16: float32 products on converted blocks ------------------------------
 * Each output tile of at most CPU_HALF_MC x CPU_HALF_NC is accumulated in float32 over
 * panels of CPU_HALF_KC along k (A's block MC x KC and B's KC x NC converted just before
 * their product, so BLIS packs them from cache), then rounded once into the output. The
 * temporaries are bounded (8 MiB) whatever the operands' size; A is converted n / NC
 * times and B m / MC times, so the tiles are large enough for that to stay a few per
 * cent of the product's time. */
#define CPU_HALF_MC 1024
#define CPU_HALF_NC 1024
#define CPU_HALF_KC 512

/* Conversions of at least this many elements are split over the threads. */
#define CPU_HALF_MIN_PARALLEL ((int64_t)1 << 16)

/* Tiles of more multiply-adds than this go to the packed kernels (cpu_pack_gemm.c). */
#define CPU_HALF_PACKED_MIN ((int64_t)128 * 128 * 128)

/* An r x c block at src (element strides rs, cs) to convert to float32 at dst, keeping
 * whichever of its dims is contiguous contiguous: row-major unless the block is
 * column-major. drs, dcs: the strides the product reads dst with. */
typedef struct cpu_half_blk {
    const char *src;
    float *dst;
    int64_t lines, len, lstride, estride; /* rows, or columns of a column-major block */
    int64_t drs, dcs;
} cpu_half_blk;

static cpu_half_blk cpu_half_blk_of(const char *src, int64_t rs, int64_t cs, int64_t r,
                                    int64_t c, float *dst)
{
    bool colmajor = rs == 1 && cs != 1 && r > 1;
    cpu_half_blk k = {src, dst, colmajor ? c : r, colmajor ? r : c, colmajor ? cs : rs,
                      colmajor ? rs : cs, colmajor ? 1 : c, colmajor ? r : 1};
    return k;
}

/* Converts A's and B's blocks for one panel product, in one parallel region. */
static void cpu_half_convert(ferry_dtype dt, const cpu_half_blk *x, const cpu_half_blk *y,
                             int threads)
{
    int nt = x->lines * x->len + y->lines * y->len >= CPU_HALF_MIN_PARALLEL ? threads : 1;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
        for (int64_t i = 0; i < x->lines; i++)
            cpu_half_to_f32_strided(dt, x->dst + i * x->len, x->src + i * x->lstride * 2,
                                    x->estride, x->len);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t i = 0; i < y->lines; i++)
            cpu_half_to_f32_strided(dt, y->dst + i * y->len, y->src + i * y->lstride * 2,
                                    y->estride, y->len);
    }
}

/* Rounds the row-major r x c float32 tile into the output block at dst. */
static void cpu_half_store(ferry_dtype dt, const float *src, int64_t r, int64_t c, char *dst,
                           int64_t rs, int64_t cs, int threads)
{
    int nt = r * c >= CPU_HALF_MIN_PARALLEL && cs == 1 ? threads : 1;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int64_t i = 0; i < r; i++)
        cpu_mm_unpack(dt, 2, src + i * c, 1, c, dst + i * rs * 2, rs, cs);
}

/* Floats rounded up to whole cache lines, so that each block starts on one: BLIS's
 * kernels and the conversions move them in full-width vectors, and with malloc's 16-byte
 * alignment a 256^3 product reached 0.68 of the float32 rate instead of 0.75 (a loaded
 * Zen 5; 0.86 instead of 0.89 quiet). */
static int64_t cpu_half_lines(int64_t floats)
{
    return (floats + 15) & ~(int64_t)15;
}

/* Room in floats for the three blocks of one m x n x k half-precision product. */
static int64_t cpu_half_tmp_floats(int64_t m, int64_t n, int64_t k)
{
    int64_t mc = m < CPU_HALF_MC ? m : CPU_HALF_MC, nc = n < CPU_HALF_NC ? n : CPU_HALF_NC;
    int64_t kc = k < CPU_HALF_KC ? k : CPU_HALF_KC;
    return cpu_half_lines(mc * kc) + cpu_half_lines(kc * nc) + cpu_half_lines(mc * nc);
}

/* One product of 16-bit float matrices; tmp holds cpu_half_tmp_floats floats. */
static void cpu_half_product(const cpu_mm *mm, const char *pa, const char *pb, char *pc,
                             int threads, float *tmp)
{
    int64_t m = mm->m, n = mm->n, k = mm->k;
    int64_t mc = m < CPU_HALF_MC ? m : CPU_HALF_MC, nc = n < CPU_HALF_NC ? n : CPU_HALF_NC;
    int64_t kc = k < CPU_HALF_KC ? k : CPU_HALF_KC;
    float *ta = tmp, *tb = ta + cpu_half_lines(mc * kc), *tc = tb + cpu_half_lines(kc * nc);
    for (int64_t i0 = 0; i0 < m; i0 += mc) {
        int64_t mb = m - i0 < mc ? m - i0 : mc;
        for (int64_t j0 = 0; j0 < n; j0 += nc) {
            int64_t nb = n - j0 < nc ? n - j0 : nc;
            char *out = pc + (i0 * mm->sc[1] + j0 * mm->sc[2]) * 2;
            /* ferry's packed kernels convert A and B as they pack them, with no converted
             * copies: 256^3 float16 reached 0.92-0.99 of the float32 rate, not 0.79-0.81,
             * on a Zen 5. Products the small-product kernels may take keep the copies. */
            if (k > CPU_HALF_PACKED_MIN / (mb * nb) &&
                cpu_pack_gemm_half(mm->dt, mb, nb, k, pa + i0 * mm->sa[1] * 2, mm->sa[1],
                                   mm->sa[2], pb + j0 * mm->sb[2] * 2, mm->sb[1], mm->sb[2],
                                   tc, nb, 1, threads)) {
                cpu_half_store(mm->dt, tc, mb, nb, out, mm->sc[1], mm->sc[2], threads);
                continue;
            }
            for (int64_t p0 = 0; p0 < k; p0 += kc) {
                int64_t kb = k - p0 < kc ? k - p0 : kc;
                cpu_half_blk x = cpu_half_blk_of(pa + (i0 * mm->sa[1] + p0 * mm->sa[2]) * 2,
                                                 mm->sa[1], mm->sa[2], mb, kb, ta);
                cpu_half_blk y = cpu_half_blk_of(pb + (p0 * mm->sb[1] + j0 * mm->sb[2]) * 2,
                                                 mm->sb[1], mm->sb[2], kb, nb, tb);
                cpu_half_convert(mm->dt, &x, &y, threads);
                if (p0 > 0 || !cpu_small_gemm(false, mb, nb, kb, ta, x.drs, x.dcs, tb, y.drs,
                                              y.dcs, tc, nb, 1, threads))
                    cpu_gemm(false, mb, nb, kb, ta, x.drs, x.dcs, tb, y.drs, y.dcs, tc, nb, 1,
                             threads, p0 > 0);
            }
            cpu_half_store(mm->dt, tc, mb, nb, out, mm->sc[1], mm->sc[2], threads);
        }
    }
}

/* Batches [b0, b1) with BLIS on `threads` threads; tmp holds room for the operands that
 * are not used in place (A, then B, then C, as cpu_mm_float sizes it). */
static void cpu_mm_float_batches(const cpu_mm *mm, int64_t b0, int64_t b1, int threads,
                                 char *tmp)
{
    bool dbl = mm->dt == FERRY_FLOAT64;
    size_t cs = dbl ? sizeof(double) : sizeof(float);
    /* tmp is NULL when every operand is used in place, and NULL + 0 is undefined. */
    char *ta = tmp, *tb = mm->a_direct ? ta : ta + (size_t)(mm->m * mm->k) * cs;
    char *tc = mm->b_direct ? tb : tb + (size_t)(mm->k * mm->n) * cs;
    int64_t es = (int64_t)mm->es;
    bool half = mm->dt == FERRY_FLOAT16 || mm->dt == FERRY_BFLOAT16;
    for (int64_t bi = b0; bi < b1; bi++) {
        const char *pa = mm->a + bi * mm->sa[0] * es, *pb = mm->b + bi * mm->sb[0] * es;
        char *pc = mm->c + bi * mm->sc[0] * es;
        if (half) {
            cpu_half_product(mm, pa, pb, pc, threads, (float *)(void *)tmp);
            continue;
        }
        int64_t rsa = mm->rsa, csa = mm->csa, rsb = mm->rsb, csb = mm->csb;
        int64_t rsc = mm->rsc, csc = mm->csc;
        if (!mm->a_direct) {
            /* A broadcast operand (batch stride 0) is packed once. */
            if (bi == b0 || mm->sa[0] != 0)
                cpu_mm_pack(mm->dt, mm->es, pa, mm->sa[1], mm->sa[2], mm->m, mm->k, ta);
            pa = ta, rsa = mm->k, csa = 1;
        }
        if (!mm->b_direct) {
            if (bi == b0 || mm->sb[0] != 0)
                cpu_mm_pack(mm->dt, mm->es, pb, mm->sb[1], mm->sb[2], mm->k, mm->n, tb);
            pb = tb, rsb = mm->n, csb = 1;
        }
        void *dst = mm->c_direct ? (void *)pc : (void *)tc;
        if (!mm->c_direct)
            rsc = mm->n, csc = 1;
        if (!cpu_small_gemm(dbl, mm->m, mm->n, mm->k, pa, rsa, csa, pb, rsb, csb, dst, rsc, csc,
                            threads))
            cpu_gemm(dbl, mm->m, mm->n, mm->k, pa, rsa, csa, pb, rsb, csb, dst, rsc, csc,
                     threads, false);
        if (!mm->c_direct)
            cpu_mm_unpack(mm->dt, mm->es, tc, mm->m, mm->n, pc, mm->sc[1], mm->sc[2]);
    }
}

static ferry_status cpu_mm_float(cpu_mm *mm)
{
    bool native = mm->dt == FERRY_FLOAT32 || mm->dt == FERRY_FLOAT64;
    bool a_al = ((uintptr_t)mm->a & (mm->es - 1)) == 0, b_al = ((uintptr_t)mm->b & (mm->es - 1)) == 0;
    bool c_al = ((uintptr_t)mm->c & (mm->es - 1)) == 0;
    mm->rsa = mm->sa[1], mm->csa = mm->sa[2];
    mm->rsb = mm->sb[1], mm->csb = mm->sb[2];
    mm->rsc = mm->sc[1], mm->csc = mm->sc[2];
    mm->a_direct = native && a_al && cpu_blis_strides(mm->m, mm->k, &mm->rsa, &mm->csa);
    mm->b_direct = native && b_al && cpu_blis_strides(mm->k, mm->n, &mm->rsb, &mm->csb);
    mm->c_direct = native && c_al && cpu_blis_strides(mm->m, mm->n, &mm->rsc, &mm->csc);

    int64_t flops = mm->m * mm->n * mm->k;
    int maxt = cpu_max_threads();
    int threads = flops < CPU_MM_MIN_PARALLEL ? 1 : maxt;
    /* Many small products: one per thread, each BLIS call single-threaded. */
    int workers = 1;
    if (maxt > 1 && mm->B >= maxt && flops * mm->B >= CPU_MM_MIN_PARALLEL &&
        (flops <= (int64_t)256 * 256 * 256 || mm->B % maxt == 0))
        workers = maxt, threads = 1;

    /* Packed copies of stride-0 (expanded) operands can be far larger than their memory:
     * their sizes are checked, never wrapped. */
    size_t cs = mm->dt == FERRY_FLOAT64 ? sizeof(double) : sizeof(float);
    int64_t ta = 0, tb = 0, tc = 0, elems = 0;
    size_t per = 0, total = 0;
    /* The 16-bit types' blocks are bounded by the tile sizes, so never overflow. */
    if (!native)
        ta = cpu_half_tmp_floats(mm->m, mm->n, mm->k);
    bool overflow = native &&
                    ((!mm->a_direct && __builtin_mul_overflow(mm->m, mm->k, &ta)) ||
                     (!mm->b_direct && __builtin_mul_overflow(mm->k, mm->n, &tb)) ||
                     (!mm->c_direct && __builtin_mul_overflow(mm->m, mm->n, &tc)));
    overflow = overflow || __builtin_add_overflow(ta, tb, &elems) ||
               __builtin_add_overflow(elems, tc, &elems) ||
               __builtin_mul_overflow((size_t)elems, cs, &per) ||
               __builtin_add_overflow(per, (size_t)63, &per);
    /* Each worker's share starts on a cache line (aligned_alloc below). */
    per &= ~(size_t)63;
    overflow = overflow || __builtin_mul_overflow(per, (size_t)workers, &total);
    if (overflow)
        return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "cpu: matmul: temporaries for a %lld x %lld x %lld product need more "
                               "bytes than fit in memory",
                               (long long)mm->m, (long long)mm->k, (long long)mm->n);
    char *tmp = NULL;
    if (per) {
        tmp = aligned_alloc(64, total);
        if (!tmp)
            return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY,
                                   "cpu: matmul: cannot allocate %zu bytes of temporaries",
                                   total);
    }
#ifdef _OPENMP
    if (workers > 1) {
        /* Chunks of about CPU_MM_CHUNK multiply-adds handed out as threads come free: on
         * a machine whose cores other processes share, a thread the scheduler has set
         * aside then holds up one chunk, not a fixed half of the batches. */
        int64_t chunk = CPU_MM_CHUNK / (flops > 0 ? flops : 1);
        int64_t cap = mm->B / (4 * (int64_t)workers);
        chunk = chunk > cap ? cap : chunk;
        chunk = chunk < 1 ? 1 : chunk;
        int64_t nchunks = (mm->B + chunk - 1) / chunk;
#pragma omp parallel for num_threads(workers) schedule(dynamic)
        for (int64_t ci = 0; ci < nchunks; ci++) {
            int64_t b0 = ci * chunk, b1 = b0 + chunk < mm->B ? b0 + chunk : mm->B;
            cpu_mm_float_batches(mm, b0, b1, 1,
                                 tmp ? tmp + per * (size_t)omp_get_thread_num() : NULL);
        }
    } else
#endif
    {
        cpu_mm_float_batches(mm, 0, mm->B, threads, tmp);
    }
    free(tmp);
    return FERRY_OK;
}

/* ---- the integer path ----------------------------------------------------------------------
 * i-k-j order, so the innermost loop runs along rows of B and C (vectorized when both are
 * unit-stride); sums wrap in the operand type via unsigned arithmetic. */
#define CPU_MM_INT_DTYPES(X)                  \
    X(u8, FERRY_UINT8, uint8_t, uint32_t)     \
    X(i8, FERRY_INT8, int8_t, uint32_t)       \
    X(i16, FERRY_INT16, int16_t, uint32_t)    \
    X(i32, FERRY_INT32, int32_t, uint32_t)    \
    X(i64, FERRY_INT64, int64_t, uint64_t)

#define CPU_DEF_MM_INT(sfx, en, T, W)                                                        \
    CPU_CLONES static void cpu_axpy_##sfx(T *c, const T *b, T a, int64_t n)                  \
    {                                                                                        \
        for (int64_t j = 0; j < n; j++)                                                      \
            c[j] = (T)((W)c[j] + (W)a * (W)b[j]);                                            \
    }                                                                                        \
    /* Rows [r0, r1) of the flattened (batch, row) space. */                                 \
    static void cpu_matmul_##sfx(const cpu_mm *mm, int64_t r0, int64_t r1)                   \
    {                                                                                        \
        const T *A = (const T *)(const void *)mm->a, *Bm = (const T *)(const void *)mm->b;   \
        T *C = (T *)(void *)mm->c;                                                           \
        for (int64_t r = r0; r < r1; r++) {                                                  \
            int64_t bi = r / mm->m, i = r % mm->m;                                           \
            const T *arow = A + bi * mm->sa[0] + i * mm->sa[1];                              \
            const T *bmat = Bm + bi * mm->sb[0];                                             \
            T *crow = C + bi * mm->sc[0] + i * mm->sc[1];                                    \
            for (int64_t j = 0; j < mm->n; j++)                                              \
                crow[j * mm->sc[2]] = 0;                                                     \
            for (int64_t p = 0; p < mm->k; p++) {                                            \
                T aik = arow[p * mm->sa[2]];                                                 \
                if (aik == 0)                                                                \
                    continue;                                                                \
                const T *brow = bmat + p * mm->sb[1];                                        \
                if (mm->sc[2] == 1 && mm->sb[2] == 1) {                                      \
                    cpu_axpy_##sfx(crow, brow, aik, mm->n);                                  \
                    continue;                                                                \
                }                                                                            \
                for (int64_t j = 0; j < mm->n; j++)                                          \
                    crow[j * mm->sc[2]] =                                                    \
                        (T)((W)crow[j * mm->sc[2]] + (W)aik * (W)brow[j * mm->sb[2]]);       \
            }                                                                                \
        }                                                                                    \
    }
CPU_MM_INT_DTYPES(CPU_DEF_MM_INT)
#undef CPU_DEF_MM_INT

typedef void (*cpu_mm_int_fn)(const cpu_mm *mm, int64_t r0, int64_t r1);

static const cpu_mm_int_fn cpu_mm_int_table[FERRY_NUM_DTYPES] = {
#define CPU_ENTRY_(sfx, en, T, W) [en] = cpu_matmul_##sfx,
    CPU_MM_INT_DTYPES(CPU_ENTRY_)
#undef CPU_ENTRY_
};

/* A contiguous aligned copy of `count` r x c matrices (batch stride sb, element strides
 * rs, cs) of es-byte elements, for operands a typed pointer cannot address. */
static char *cpu_mm_copy(const char *src, size_t es, int64_t count, int64_t sb, int64_t rs,
                         int64_t cs, int64_t r, int64_t c)
{
    char *dst = malloc((size_t)(count * r * c) * es + 1);
    if (!dst)
        return NULL;
    char *q = dst;
    for (int64_t b = 0; b < count; b++)
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++, q += es)
                memcpy(q, src + (b * sb + i * rs + j * cs) * (int64_t)es, es);
    return dst;
}

static ferry_status cpu_mm_int(cpu_mm *mm, cpu_mm_int_fn fn)
{
    /* Typed pointers need aligned elements; a wrapped blob may not have them. */
    size_t es = mm->es;
    char *ta = NULL, *tb = NULL, *tc = NULL;
    char *out = mm->c;
    int64_t out_strides[3] = {mm->sc[0], mm->sc[1], mm->sc[2]};
    bool fail = false;
    if ((uintptr_t)mm->a & (es - 1)) {
        int64_t count = mm->sa[0] ? mm->B : 1;
        fail |= !(ta = cpu_mm_copy(mm->a, es, count, mm->sa[0], mm->sa[1], mm->sa[2], mm->m, mm->k));
        mm->a = ta;
        mm->sa[0] = mm->sa[0] ? mm->m * mm->k : 0, mm->sa[1] = mm->k, mm->sa[2] = 1;
    }
    if (!fail && ((uintptr_t)mm->b & (es - 1))) {
        int64_t count = mm->sb[0] ? mm->B : 1;
        fail |= !(tb = cpu_mm_copy(mm->b, es, count, mm->sb[0], mm->sb[1], mm->sb[2], mm->k, mm->n));
        mm->b = tb;
        mm->sb[0] = mm->sb[0] ? mm->k * mm->n : 0, mm->sb[1] = mm->n, mm->sb[2] = 1;
    }
    if (!fail && ((uintptr_t)mm->c & (es - 1))) {
        fail |= !(tc = malloc((size_t)(mm->B * mm->m * mm->n) * es + 1));
        mm->c = tc;
        mm->sc[0] = mm->m * mm->n, mm->sc[1] = mm->n, mm->sc[2] = 1;
    }
    if (fail) {
        free(ta), free(tb), free(tc);
        return cpu_host->error(FERRY_ERR_OUT_OF_MEMORY,
                               "cpu: matmul: cannot allocate temporaries for unaligned operands");
    }
    int64_t rows = mm->B * mm->m;
    int nt = cpu_threads_for(rows * mm->n * mm->k, CPU_MM_MIN_PARALLEL);
    if (nt > rows)
        nt = (int)rows;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), parts = omp_get_num_threads();
            fn(mm, cpu_split(rows, parts, t, 1), cpu_split(rows, parts, t + 1, 1));
        }
    } else
#endif
    {
        fn(mm, 0, rows);
    }
    if (tc) {
        const char *q = tc;
        for (int64_t b = 0; b < mm->B; b++)
            for (int64_t i = 0; i < mm->m; i++)
                for (int64_t j = 0; j < mm->n; j++, q += es)
                    memcpy(out + (b * out_strides[0] + i * out_strides[1] + j * out_strides[2]) *
                                     (int64_t)es,
                           q, es);
    }
    free(ta), free(tb), free(tc);
    return FERRY_OK;
}

/* ---- entry ----------------------------------------------------------------------------------- */

ferry_status cpu_matmul(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    ferry_dtype dt = a->dtype;
    if (!cpu_elem_size(dt) || b->dtype != dt || out->dtype != dt || dt == FERRY_BOOL)
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "cpu: no matmul kernel for dtypes %d, %d -> %d",
                               (int)a->dtype, (int)b->dtype, (int)out->dtype);
    if (a->ndim != 3 || b->ndim != 3 || out->ndim != 3)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "cpu: matmul: operands must have 3 dims, not %d, %d -> %d",
                               (int)a->ndim, (int)b->ndim, (int)out->ndim);
    cpu_mm mm;
    mm.dt = dt;
    mm.es = cpu_elem_size(dt);
    mm.B = out->shape[0], mm.m = out->shape[1], mm.n = out->shape[2], mm.k = a->shape[2];
    bool batch_ok = (a->shape[0] == mm.B || a->shape[0] == 1) &&
                    (b->shape[0] == mm.B || b->shape[0] == 1);
    if (!batch_ok || a->shape[1] != mm.m || b->shape[1] != mm.k || b->shape[2] != mm.n ||
        mm.B < 0 || mm.m < 0 || mm.n < 0 || mm.k < 0)
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "cpu: matmul: shapes (%lld, %lld, %lld) x (%lld, %lld, %lld) -> "
                               "(%lld, %lld, %lld) do not match",
                               (long long)a->shape[0], (long long)a->shape[1],
                               (long long)a->shape[2], (long long)b->shape[0],
                               (long long)b->shape[1], (long long)b->shape[2],
                               (long long)mm.B, (long long)mm.m, (long long)mm.n);
    for (int d = 0; d < 3; d++) {
        mm.sa[d] = a->strides[d], mm.sb[d] = b->strides[d], mm.sc[d] = out->strides[d];
    }
    /* A batch of one is read for every output batch. */
    if (a->shape[0] == 1)
        mm.sa[0] = 0;
    if (b->shape[0] == 1)
        mm.sb[0] = 0;
    if (mm.B == 1)
        mm.sc[0] = 0;
    mm.a = cpu_data(a), mm.b = cpu_data(b), mm.c = cpu_data(out);
    if (mm.B == 0 || mm.m == 0 || mm.n == 0)
        return FERRY_OK;
    if (mm.k == 0) {
        /* An empty sum: every output element is 0 (all-zero bytes in every dtype). */
        for (int64_t bi = 0; bi < mm.B; bi++)
            for (int64_t i = 0; i < mm.m; i++)
                for (int64_t j = 0; j < mm.n; j++)
                    memset(mm.c + (bi * mm.sc[0] + i * mm.sc[1] + j * mm.sc[2]) * (int64_t)mm.es,
                           0, mm.es);
        return FERRY_OK;
    }
    if (dt >= FERRY_FLOAT16)
        return cpu_mm_float(&mm);
    return cpu_mm_int(&mm, cpu_mm_int_table[dt]);
}

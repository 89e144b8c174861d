/* ferry's own float32/float64 GEMM for products too large for cpu_small_gemm.c: the
 * blocking of Goto and van de Geijn (BLIS's five loops), with one register-blocked
 * kernel per ISA, the same 6 rows by 2 vectors as the small-product bodies. A third
 * candidate for cpu_gemm.c's calibration beside BLIS and OpenBLAS: on the 2-core Zen 5
 * it was written on, BLIS's skx kernel (written for Skylake-SP) reached 0.75-0.85 of the
 * FMA peak at 2048^3 float32, this one 0.88-0.90.
 *
 * Blocks: a KC x NC panel of B is packed once per (jc, pc) into NR-column micro-panels
 * (p-major, NR values per p), shared by the threads; each thread packs MC x KC blocks of
 * its own rows of A into MR-row micro-panels (row-major, KC values per row, so a
 * row-major A packs by memcpy), which stay in its L2 while the kernel runs over every
 * micro-panel of B (KC x NR, in L1). Edge tiles are padded with zeros in the packs and
 * written through a local tile. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "cpu_vec.h"

#define CPU_PACK_MR 6
#define CPU_PACK_DT_s512 FERRY_FLOAT32
#define CPU_PACK_DT_s256 FERRY_FLOAT32
#define CPU_PACK_DT_d512 FERRY_FLOAT64
#define CPU_PACK_DT_d256 FERRY_FLOAT64
#define CPU_PACK_KC 256
/* The A block each thread keeps in its L2 (of 1 MiB on Zen 4/5 and Skylake-SP, 512 KiB
 * on Zen 2/3, which AVX2 stands for here) and the B panel the threads share in L3. */
#define CPU_PACK_A_BYTES_512 ((int64_t)384 << 10)
#define CPU_PACK_A_BYTES_256 ((int64_t)240 << 10)
#define CPU_PACK_B_BYTES ((int64_t)4 << 20)

/* Skinny products are left to the caller (BLIS, whose unpacked "sup" kernels are made
 * for them): with fewer rows, columns or terms per sum than these, packing and the C
 * tiles' loads and stores outweigh the kernel. On the 2-core Zen 5, float32 GFLOP/s,
 * these kernels against BLIS: m = 8, n = k = 2048: 123 / 151, m = 16: 192 / 180; n = 16
 * (m = k = 2048): 174 / 238, n = 32: 291 / 255; k = 16 (m = n = 2048): 218 / 361,
 * k = 32: 467 / 419. */
#define CPU_PACK_MIN_M 16
#define CPU_PACK_MIN_N 32
#define CPU_PACK_MIN_K 32

#ifdef CPU_VEC_X86
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct cpu_pack_job {
    int64_t m, n, k, rsa, csa, rsb, csb, rsc, csc;
    const void *a, *b;
    void *c, *apack, *bpack;
    int64_t mc, nc, kcap; /* block sizes; kcap: the packs' k extent */
    bool acc, by_rows;
    /* FERRY_FLOAT16 or FERRY_BFLOAT16 when A and B hold 16-bit floats that the packs
     * convert to float32 (float32 kernels only), else the kernels' own type. */
    ferry_dtype src;
    int64_t src_es; /* bytes per element of A and B */
} cpu_pack_job;

static void cpu_pack_barrier(int nt)
{
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp barrier
    }
#endif
}

/* One MR x NR tile: C (+)= A_panel B_panel over kc. Ap is row-major (kc per row), Bp
 * p-major (NR per p, 64-byte aligned). mr x nr of the tile are inside C. */
#define CPU_PACK_DEF(X, T)                                                                  \
    enum { CPU_PACK_W_##X = CPU_VEC_W_##X, CPU_PACK_NR_##X = 2 * CPU_VEC_W_##X };           \
    CPU_VEC_ATTR_##X static void cpu_pack_ukr_##X(int64_t kc, const T *restrict ap,         \
                                                  const T *restrict bp, T *restrict c,      \
                                                  int64_t rsc, int64_t csc, int mr, int nr, \
                                                  bool acc)                                 \
    {                                                                                       \
        enum { W = CPU_PACK_W_##X, NR = CPU_PACK_NR_##X };                                  \
        CPU_VEC_V_##X s[CPU_PACK_MR][2];                                                    \
        _Pragma("GCC unroll 6") for (int r = 0; r < CPU_PACK_MR; r++)                       \
        {                                                                                   \
            s[r][0] = s[r][1] = CPU_VEC_ZERO_##X();                                         \
            /* The tile's rows of C are wanted at the end: fetch them meanwhile. */         \
            if (r < mr) {                                                                   \
                _mm_prefetch((const char *)(c + r * rsc), _MM_HINT_T0);                     \
                _mm_prefetch((const char *)(c + r * rsc + (nr - 1) * csc), _MM_HINT_T0);    \
            }                                                                               \
        }                                                                                   \
        for (int64_t p = 0; p < kc; p++) {                                                  \
            CPU_VEC_V_##X b0 = CPU_VEC_LOADF_##X(bp), b1 = CPU_VEC_LOADF_##X(bp + W);       \
            _Pragma("GCC unroll 6") for (int r = 0; r < CPU_PACK_MR; r++)                   \
            {                                                                               \
                CPU_VEC_V_##X x = CPU_VEC_SET1_##X(ap[r * kc + p]);                         \
                s[r][0] = CPU_VEC_FMA_##X(x, b0, s[r][0]);                                  \
                s[r][1] = CPU_VEC_FMA_##X(x, b1, s[r][1]);                                  \
            }                                                                               \
            bp += NR;                                                                       \
        }                                                                                   \
        if (mr == CPU_PACK_MR && nr == NR && csc == 1) {                                    \
            _Pragma("GCC unroll 6") for (int r = 0; r < CPU_PACK_MR; r++)                   \
            {                                                                               \
                T *cr = c + r * rsc;                                                        \
                if (acc) {                                                                  \
                    s[r][0] = CPU_VEC_ADD_##X(s[r][0], CPU_VEC_LOADF_##X(cr));              \
                    s[r][1] = CPU_VEC_ADD_##X(s[r][1], CPU_VEC_LOADF_##X(cr + W));          \
                }                                                                           \
                CPU_VEC_STOREF_##X(cr, s[r][0]);                                            \
                CPU_VEC_STOREF_##X(cr + W, s[r][1]);                                        \
            }                                                                               \
            return;                                                                         \
        }                                                                                   \
        T tile[CPU_PACK_MR][NR];                                                            \
        for (int r = 0; r < CPU_PACK_MR; r++) {                                             \
            CPU_VEC_STOREF_##X(tile[r], s[r][0]);                                           \
            CPU_VEC_STOREF_##X(tile[r] + W, s[r][1]);                                       \
        }                                                                                   \
        for (int r = 0; r < mr; r++)                                                        \
            for (int j = 0; j < nr; j++) {                                                  \
                T *q = c + r * rsc + j * csc;                                               \
                *q = acc ? *q + tile[r][j] : tile[r][j];                                    \
            }                                                                               \
    }                                                                                       \
                                                                                            \
    /* Rows [0, mc) and columns [0, kc) of A into MR-row micro-panels, zero rows past       \
     * mc. */                                                                               \
    static void cpu_pack_a_##X(const cpu_pack_job *job, int64_t mc, int64_t kc,            \
                               const char *a, T *ap)                                        \
    {                                                                                       \
        int64_t rsa = job->rsa, csa = job->csa;                                             \
        for (int64_t i0 = 0; i0 < mc; i0 += CPU_PACK_MR, ap += CPU_PACK_MR * kc)            \
            for (int r = 0; r < CPU_PACK_MR; r++) {                                         \
                T *d = ap + r * kc;                                                         \
                if (i0 + r >= mc) {                                                         \
                    memset(d, 0, (size_t)kc * sizeof(T));                                   \
                    continue;                                                               \
                }                                                                           \
                const char *row = a + (i0 + r) * rsa * job->src_es;                         \
                const T *src = (const T *)(const void *)row;                                \
                if (job->src != CPU_PACK_DT_##X)                                            \
                    cpu_half_to_f32_strided(job->src, (float *)(void *)d, row, csa, kc);          \
                else if (csa == 1)                                                          \
                    memcpy(d, src, (size_t)kc * sizeof(T));                                 \
                else                                                                        \
                    for (int64_t p = 0; p < kc; p++)                                        \
                        d[p] = src[p * csa];                                                \
            }                                                                               \
    }                                                                                       \
                                                                                            \
    /* kc rows of nr (<= NR) columns of B into one micro-panel, zero columns past nr. */    \
    static void cpu_pack_b_##X(const cpu_pack_job *job, int64_t kc, int nr, const char *b,  \
                               T *bp)                                                       \
    {                                                                                       \
        enum { NR = CPU_PACK_NR_##X };                                                      \
        int64_t rsb = job->rsb, csb = job->csb;                                             \
        for (int64_t p = 0; p < kc; p++, bp += NR) {                                        \
            const T *row = (const T *)(const void *)(b + p * rsb * job->src_es);            \
            if (job->src != CPU_PACK_DT_##X) {                                              \
                cpu_half_to_f32_strided(job->src, (float *)(void *)bp,                      \
                                        (const char *)(const void *)row, csb, nr);          \
                for (int j = nr; j < NR; j++)                                               \
                    bp[j] = 0;                                                              \
                continue;                                                                   \
            }                                                                               \
            if (csb == 1 && nr == NR) {                                                     \
                memcpy(bp, row, sizeof(T) * NR);                                            \
                continue;                                                                   \
            }                                                                               \
            int j = 0;                                                                      \
            for (; j < nr; j++)                                                             \
                bp[j] = row[j * csb];                                                       \
            for (; j < NR; j++)                                                             \
                bp[j] = 0;                                                                  \
        }                                                                                   \
    }                                                                                       \
                                                                                            \
    /* The whole product on thread t of nt. Each thread computes rows [r0, r1) of C for     \
     * micro-panels [q0, q1) of every B panel (rows split when there are enough, else       \
     * micro-panels); the B panels are packed by all threads together. */                   \
    static void cpu_pack_run_##X(const cpu_pack_job *job, int t, int nt)                    \
    {                                                                                       \
        enum { NR = CPU_PACK_NR_##X };                                                      \
        const char *a = job->a, *b = job->b;                                                \
        int64_t es = job->src_es;                                                           \
        T *c = job->c, *bpack = job->bpack;                                                 \
        T *apack = (T *)job->apack + (size_t)t * (size_t)(job->mc * job->kcap);             \
        int64_t m = job->m, n = job->n, k = job->k;                                         \
        int64_t mp = (m + CPU_PACK_MR - 1) / CPU_PACK_MR;                                   \
        int64_t r0 = 0, r1 = m;                                                             \
        if (job->by_rows) {                                                                 \
            r0 = mp * t / nt * CPU_PACK_MR;                                                 \
            r1 = mp * (t + 1) / nt * CPU_PACK_MR;                                           \
            r1 = r1 < m ? r1 : m;                                                           \
        }                                                                                   \
        for (int64_t j0 = 0; j0 < n; j0 += job->nc) {                                       \
            int64_t nc = n - j0 < job->nc ? n - j0 : job->nc;                               \
            int64_t npan = (nc + NR - 1) / NR, q0 = 0, q1 = npan;                           \
            if (!job->by_rows) {                                                            \
                q0 = npan * t / nt;                                                         \
                q1 = npan * (t + 1) / nt;                                                   \
            }                                                                               \
            for (int64_t p0 = 0; p0 < k; p0 += CPU_PACK_KC) {                               \
                int64_t kc = k - p0 < CPU_PACK_KC ? k - p0 : CPU_PACK_KC;                   \
                bool acc = job->acc || p0 > 0;                                              \
                for (int64_t q = npan * t / nt; q < npan * (t + 1) / nt; q++) {             \
                    int nr = nc - q * NR < NR ? (int)(nc - q * NR) : NR;                    \
                    cpu_pack_b_##X(job, kc, nr,                                             \
                                   b + (p0 * job->rsb + (j0 + q * NR) * job->csb) * es,     \
                                   bpack + q * NR * kc);                                    \
                }                                                                           \
                cpu_pack_barrier(nt);                                                       \
                for (int64_t i0 = r0; i0 < r1; i0 += job->mc) {                             \
                    int64_t mc = r1 - i0 < job->mc ? r1 - i0 : job->mc;                     \
                    cpu_pack_a_##X(job, mc, kc, a + (i0 * job->rsa + p0 * job->csa) * es,   \
                                   apack);                                                  \
                    for (int64_t q = q0; q < q1; q++) {                                     \
                        int nr = nc - q * NR < NR ? (int)(nc - q * NR) : NR;                \
                        for (int64_t ir = 0; ir < mc; ir += CPU_PACK_MR) {                  \
                            int mr = mc - ir < CPU_PACK_MR ? (int)(mc - ir) : CPU_PACK_MR;  \
                            cpu_pack_ukr_##X(kc, apack + ir * kc, bpack + q * NR * kc,      \
                                             c + (i0 + ir) * job->rsc +                     \
                                                 (j0 + q * NR) * job->csc,                  \
                                             job->rsc, job->csc, mr, nr, acc);              \
                        }                                                                   \
                    }                                                                       \
                }                                                                           \
                /* The next panel of B overwrites this one. */                              \
                cpu_pack_barrier(nt);                                                       \
            }                                                                               \
        }                                                                                   \
    }

CPU_PACK_DEF(s512, float)
CPU_PACK_DEF(d512, double)
CPU_PACK_DEF(s256, float)
CPU_PACK_DEF(d256, double)

/* Packing memory kept between products, as the libraries keep theirs: allocated per
 * product, it cost a page fault per 4 KiB whenever glibc had handed it back to the
 * system (5% of a 384^3 float64 product, and the other threads waited at the next
 * barrier). At most CPU_PACK_POOL blocks, for products that run at once. */
#define CPU_PACK_POOL 4
static struct {
    pthread_mutex_t lock;
    void *block[CPU_PACK_POOL];
    size_t size[CPU_PACK_POOL];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A 64-byte aligned block of at least `bytes`, its size in *size; NULL when memory ran
 * out. */
static void *cpu_pack_take(size_t bytes, size_t *size)
{
    pthread_mutex_lock(&pool.lock);
    int best = -1;
    for (int i = 0; i < CPU_PACK_POOL; i++)
        if (pool.block[i] && pool.size[i] >= bytes && (best < 0 || pool.size[i] < pool.size[best]))
            best = i;
    void *p = NULL;
    if (best >= 0) {
        p = pool.block[best];
        *size = pool.size[best];
        pool.block[best] = NULL;
    }
    pthread_mutex_unlock(&pool.lock);
    if (p)
        return p;
    *size = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, *size);
}

/* Back to the pool, which keeps the largest blocks. */
static void cpu_pack_give(void *p, size_t size)
{
    pthread_mutex_lock(&pool.lock);
    int slot = -1; /* an empty slot, else the smallest block's */
    for (int i = 0; i < CPU_PACK_POOL; i++) {
        if (!pool.block[i]) {
            slot = i;
            break;
        }
        if (slot < 0 || pool.size[i] < pool.size[slot])
            slot = i;
    }
    void *drop = p;
    if (!pool.block[slot] || pool.size[slot] < size) {
        drop = pool.block[slot];
        pool.block[slot] = p;
        pool.size[slot] = size;
    }
    pthread_mutex_unlock(&pool.lock);
    free(drop);
}

typedef void (*cpu_pack_fn)(const cpu_pack_job *, int, int);

/* One ISA's kernels: [0] float32, [1] float64. */
typedef struct cpu_pack_isa {
    const char *name;
    cpu_pack_fn run[2];
    int nr[2];
    int64_t a_bytes;
} cpu_pack_isa;

static const cpu_pack_isa isa_avx512 = {"avx512",
                                        {cpu_pack_run_s512, cpu_pack_run_d512},
                                        {CPU_PACK_NR_s512, CPU_PACK_NR_d512},
                                        CPU_PACK_A_BYTES_512};
static const cpu_pack_isa isa_avx2 = {"avx2",
                                      {cpu_pack_run_s256, cpu_pack_run_d256},
                                      {CPU_PACK_NR_s256, CPU_PACK_NR_d256},
                                      CPU_PACK_A_BYTES_256};
static const cpu_pack_isa *pack_isa; /* NULL: no kernels for this CPU */
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;

/* FERRY_CPU_SMALL_GEMM=avx2|base caps these kernels as it caps the small-product ones
 * (tests of each body on one machine); base leaves none. */
static void cpu_pack_pick(void)
{
    __builtin_cpu_init();
    const char *env = getenv("FERRY_CPU_SMALL_GEMM");
    bool cap_avx2 = env && !strcmp(env, "avx2");
    if (env && !strcmp(env, "base"))
        return;
    if (!cap_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        pack_isa = &isa_avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        pack_isa = &isa_avx2;
}
#endif /* CPU_VEC_X86 */

const char *cpu_pack_gemm_isa(void)
{
#ifdef CPU_VEC_X86
    pthread_once(&pack_once, cpu_pack_pick);
    return pack_isa ? pack_isa->name : NULL;
#else
    return NULL;
#endif
}

/* C = A B with A and B of type src (float32 C for the 16-bit types, as for float32). */
static bool cpu_pack_start(ferry_dtype src, int64_t m, int64_t n, int64_t k, const void *a,
                           int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb,
                           void *c, int64_t rsc, int64_t csc, int threads, bool acc)
{
#ifdef CPU_VEC_X86
    if (!cpu_pack_gemm_isa() || m < CPU_PACK_MIN_M || n < CPU_PACK_MIN_N || k < CPU_PACK_MIN_K)
        return false;
    bool dbl = src == FERRY_FLOAT64;
    size_t es = dbl ? sizeof(double) : sizeof(float);
    int64_t nr = pack_isa->nr[dbl], kcap = k < CPU_PACK_KC ? k : CPU_PACK_KC;
    int64_t mc = pack_isa->a_bytes / (CPU_PACK_KC * (int64_t)es) / CPU_PACK_MR * CPU_PACK_MR;
    int64_t nc = CPU_PACK_B_BYTES / (CPU_PACK_KC * (int64_t)es) / nr * nr;
    int64_t mp = (m + CPU_PACK_MR - 1) / CPU_PACK_MR, np = (n + nr - 1) / nr;
    int nt = threads < 1 ? 1 : threads;
    /* Rows when each thread gets at least two micro-panels of them, else columns. */
    bool by_rows = mp >= 2 * (int64_t)nt || mp >= np;
    int64_t split = by_rows ? mp : np;
    nt = split < nt ? (int)split : nt;
    int64_t rows = by_rows ? (mp + nt - 1) / nt * CPU_PACK_MR : m;
    mc = rows < mc ? (rows + CPU_PACK_MR - 1) / CPU_PACK_MR * CPU_PACK_MR : mc;
    nc = n < nc ? np * nr : nc;
    /* The sizes are bounded by the block sizes, so these cannot overflow. */
    size_t bbytes = (size_t)(nc * kcap) * es, size;
    char *bpack = cpu_pack_take(bbytes + (size_t)(mc * kcap) * es * (size_t)nt, &size);
    if (!bpack)
        return false;
    void *apack = bpack + bbytes; /* bbytes is a multiple of 64: nc is one of NR */
    cpu_pack_job job = {.m = m, .n = n, .k = k, .rsa = rsa, .csa = csa, .rsb = rsb,
                        .csb = csb, .rsc = rsc, .csc = csc, .a = a, .b = b, .c = c,
                        .apack = apack, .bpack = bpack, .mc = mc, .nc = nc, .kcap = kcap,
                        .acc = acc, .by_rows = by_rows, .src = src,
                        .src_es = (int64_t)ferry_dtype_info_size(src)};
    cpu_pack_fn run = pack_isa->run[dbl];
    if (nt == 1) {
        run(&job, 0, 1);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        run(&job, omp_get_thread_num(), omp_get_num_threads());
#else
        run(&job, 0, 1);
#endif
    }
    cpu_pack_give(bpack, size);
    return true;
#else
    (void)src, (void)m, (void)n, (void)k, (void)a, (void)rsa, (void)csa, (void)b;
    (void)rsb, (void)csb, (void)c, (void)rsc, (void)csc, (void)threads, (void)acc;
    return false;
#endif
}

bool cpu_pack_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa,
                   int64_t csa, const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc,
                   int64_t csc, int threads, bool acc)
{
    return cpu_pack_start(dbl ? FERRY_FLOAT64 : FERRY_FLOAT32, m, n, k, a, rsa, csa, b, rsb,
                          csb, c, rsc, csc, threads, acc);
}

bool cpu_pack_gemm_half(ferry_dtype src, int64_t m, int64_t n, int64_t k, const void *a,
                        int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb,
                        float *c, int64_t rsc, int64_t csc, int threads)
{
    return cpu_pack_start(src, m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, csc, threads, false);
}

/* Operation benchmarks: matmul, add (contiguous, broadcast, allocating), sum and tiny-op
 * overhead, each as a ratio of a reference measured in the same process (the FP32 FMA
 * peak, bli_sgemm, OpenMP C loops), so the ratios travel between machines. */
#define _GNU_SOURCE /* posix_memalign and sysconf under -std=c11 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <omp.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

#ifdef FERRY_BENCH_HAVE_BLIS
#include <blis.h>
#endif

#include <ferry/ferry.h>
#include <ferry/half.h>

#include "bench_util.h"

#define MAX_FIGURES 72
#define MAX_REPS 31
#define MAX_VARIANTS 6
#define MAX_SIZES 3

typedef struct config {
    bool quick;
    int reps;                   /* timed repetitions; every figure is their median */
    int nsizes;
    int64_t mm_n[MAX_SIZES];    /* square matmul sizes */
    double mm_sample_flops;     /* work per timed sample, so small N is not timer noise */
    int64_t rows, cols;         /* add/sum operands: rows x cols float32 */
    double stream_sample_bytes; /* traffic per timed sample of the memory-bound figures */
    long tiny_iters;            /* calls per sample of the 1-element figures */
    long peak_iters;            /* loop trips per thread of the FMA peak kernel */
} config;

typedef enum goal_kind { GOAL_NONE, GOAL_MIN_RATIO, GOAL_MAX_NS, GOAL_MAX_MS } goal_kind;

/* One row of the table and one machine-readable line. */
typedef struct figure {
    char id[48];     /* machine-readable name, "mm.f32.n1024.vs_peak" */
    char label[64];
    char ferry[32];  /* ferry's figure with unit, or "failed"/"skipped" */
    char base[32];   /* the reference's, or "" */
    double ratio;    /* < 0: none */
    goal_kind goal;
    double goal_value;
    double measured; /* what the goal is checked against: ratio, ns or ms (GOAL_MAX_*) */
    bool failed;     /* ferry refused the operation; the figure has no value */
    char note[112];
    char kv[320];    /* extra key=value pairs for the BENCH line */
} figure;

static figure figures[MAX_FIGURES];
static int nfigures;
static int nfailed;

static figure *add_figure(const char *id, const char *label)
{
    if (nfigures == MAX_FIGURES) {
        fprintf(stderr, "bench_ops: too many figures for the table\n");
        exit(1);
    }
    figure *f = &figures[nfigures++];
    memset(f, 0, sizeof *f);
    snprintf(f->id, sizeof f->id, "%s", id);
    snprintf(f->label, sizeof f->label, "%s", label);
    f->ratio = -1.0;
    return f;
}

static void set_goal(figure *f, goal_kind kind, double value)
{
    f->goal = kind;
    f->goal_value = value;
}

/* A refused op must not end the run while the kernels are still landing one by one:
 * the figure says why and the exit status says something failed. */
static void fail_figure(figure *f, const char *what)
{
    const char *msg = ferry_last_error();
    f->failed = true;
    f->ratio = -1.0;
    snprintf(f->ferry, sizeof f->ferry, "failed");
    snprintf(f->note, sizeof f->note, "%s: %.80s", what, msg ? msg : "");
    snprintf(f->kv, sizeof f->kv, "failed=\"%s: %.200s\"", what, msg ? msg : "");
    nfailed++;
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_ops: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint64_t backend_allocs(void)
{
    ferry_memory_stats s;
    if (ferry_memory_stats_get("cpu", &s) != FERRY_OK)
        return 0;
    return s.backend_allocs;
}

/* Deterministic values in [lo, lo + span): reproducible runs, no denormals. */
static void fill(float *p, int64_t n, uint32_t seed, float lo, float span)
{
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = lo + span * (float)(s >> 8) * (1.0f / 16777216.0f);
    }
}

static ferry_tensor *new_f32(int ndim, const int64_t *shape, uint32_t seed, float lo, float span)
{
    ferry_tensor *t = ferry_empty(FERRY_FLOAT32, ndim, shape, "cpu");
    if (!t)
        return NULL;
    float *p = ferry_tensor_host_data(t);
    if (!p) {
        ferry_tensor_release(t);
        return NULL;
    }
    fill(p, ferry_tensor_numel(t), seed, lo, span);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Timing: variants alternate inside each repetition                        */
/* ------------------------------------------------------------------------ */

/* One thing to time. fn returns 0, or nonzero when ferry refused (ferry_last_error()). */
typedef struct variant {
    int (*fn)(void *ctx);
    void *ctx;
    double ns;  /* out: median ns per call */
    long calls; /* calls per sample; 0: measure()'s default */
} variant;

/* Each repetition runs every variant `calls` times; which variant goes first rotates,
 * so the VM's slow phases and cache state left by the previous variant spread over all
 * of them. Repetition -1 warms up and is not timed. Returns the index of the variant
 * that failed, or -1. */
static int measure(const config *cfg, variant *v, int nv, long calls)
{
    static double samples[MAX_VARIANTS][MAX_REPS];
    for (int r = -1; r < cfg->reps; r++) {
        for (int k = 0; k < nv; k++) {
            int i = (k + (r < 0 ? 0 : r)) % nv;
            long n = v[i].calls ? v[i].calls : calls;
            double t0 = bench_now_ns();
            for (long c = 0; c < n; c++)
                if (v[i].fn(v[i].ctx) != 0)
                    return i;
            double t = (bench_now_ns() - t0) / (double)n;
            if (r >= 0)
                samples[i][r] = t;
        }
    }
    for (int i = 0; i < nv; i++)
        v[i].ns = bench_median(samples[i], cfg->reps);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* FP32 FMA peak                                                            */
/* ------------------------------------------------------------------------ */

/* Enough independent chains to cover FMA latency (4 cycles) times the FMA units (2)
 * with room to spare; the recurrence x = x * m + c converges to 1, so no overflow or
 * denormal ever slows it down. */
#ifdef BENCH_X86
#define FMA_STEP(i) x##i = FMA(x##i, m, c);
#define FMA_16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) \
                  X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define FMA_12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

#define FMA _mm512_fmadd_ps
#define FMA_DECL(i) __m512 x##i = _mm512_set1_ps(seed + 0.01f * (float)(i));
#define FMA_ACC(i) acc = _mm512_add_ps(acc, x##i);
__attribute__((target("avx512f"))) static float fma_chains_avx512(long iters, float seed)
{
    const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    FMA_16(FMA_DECL)
    for (long i = 0; i < iters; i++) {
        FMA_16(FMA_STEP)
    }
    __m512 acc = _mm512_setzero_ps();
    FMA_16(FMA_ACC)
    float out[16];
    _mm512_storeu_ps(out, acc);
    float s = 0;
    for (int i = 0; i < 16; i++)
        s += out[i];
    return s;
}
#undef FMA
#undef FMA_DECL
#undef FMA_ACC

#define FMA _mm256_fmadd_ps
#define FMA_DECL(i) __m256 x##i = _mm256_set1_ps(seed + 0.01f * (float)(i));
#define FMA_ACC(i) acc = _mm256_add_ps(acc, x##i);
/* 12 chains: 16 ymm registers hold them plus m and c without spilling. */
__attribute__((target("avx2,fma"))) static float fma_chains_avx2(long iters, float seed)
{
    const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    FMA_12(FMA_DECL)
    for (long i = 0; i < iters; i++) {
        FMA_12(FMA_STEP)
    }
    __m256 acc = _mm256_setzero_ps();
    FMA_12(FMA_ACC)
    float out[8];
    _mm256_storeu_ps(out, acc);
    float s = 0;
    for (int i = 0; i < 8; i++)
        s += out[i];
    return s;
}
#undef FMA
#undef FMA_DECL
#undef FMA_ACC
#endif /* BENCH_X86 */

typedef struct peak_ctx {
    float (*kernel)(long iters, float seed);
    double flops_per_iter;
    long iters;
    volatile float sink; /* the results are used, so the chains cannot be dropped */
} peak_ctx;

static int peak_one_thread(void *p)
{
    peak_ctx *c = p;
    c->sink = c->kernel(c->iters, 1.0f);
    return 0;
}

static int peak_all_threads(void *p)
{
    peak_ctx *c = p;
    float s = 0;
#pragma omp parallel reduction(+ : s)
    s += c->kernel(c->iters, 1.0f + (float)omp_get_thread_num());
    c->sink = s;
    return 0;
}

typedef struct peak_result {
    const char *isa; /* "avx512f", "avx2+fma", or NULL when not measured */
    double gflops_1t, gflops_all;
    peak_ctx ctx;    /* to measure the peak again alongside another figure */
} peak_result;

static double peak_flops(const peak_ctx *c)
{
    return c->flops_per_iter * (double)c->iters;
}

static peak_result bench_peak(const config *cfg)
{
    peak_result res;
    memset(&res, 0, sizeof res);
    peak_ctx ctx = {.iters = cfg->peak_iters};
#ifdef BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        ctx.kernel = fma_chains_avx512;
        ctx.flops_per_iter = 16 * 16 * 2;
        res.isa = "avx512f";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        ctx.kernel = fma_chains_avx2;
        ctx.flops_per_iter = 12 * 8 * 2;
        res.isa = "avx2+fma";
    }
#endif
    figure *f1 = add_figure("peak.fma_f32_1t", "FP32 FMA peak, 1 thread");
    figure *fa = add_figure("peak.fma_f32_all", "FP32 FMA peak, all threads");
    if (!res.isa) {
        snprintf(f1->ferry, sizeof f1->ferry, "skipped");
        snprintf(fa->ferry, sizeof fa->ferry, "skipped");
        snprintf(f1->note, sizeof f1->note, "no AVX-512F or AVX2+FMA on this CPU");
        snprintf(f1->kv, sizeof f1->kv, "skipped=\"no avx512f or avx2+fma\"");
        snprintf(fa->kv, sizeof fa->kv, "skipped=\"no avx512f or avx2+fma\"");
        return res;
    }
    variant v[2] = {{peak_one_thread, &ctx, 0, 0}, {peak_all_threads, &ctx, 0, 0}};
    measure(cfg, v, 2, 1);
    int nt = omp_get_max_threads();
    double flops = peak_flops(&ctx);
    res.ctx.kernel = ctx.kernel;
    res.ctx.flops_per_iter = ctx.flops_per_iter;
    res.ctx.iters = ctx.iters;
    res.gflops_1t = flops / v[0].ns;
    res.gflops_all = flops * nt / v[1].ns;
    snprintf(f1->base, sizeof f1->base, "%.1f GFLOP/s", res.gflops_1t);
    snprintf(fa->base, sizeof fa->base, "%.1f GFLOP/s", res.gflops_all);
    snprintf(f1->note, sizeof f1->note, "%s chains, the matmul figures' yardstick", res.isa);
    snprintf(fa->note, sizeof fa->note, "%d threads; %.2fx the 1-thread peak", nt,
             res.gflops_all / res.gflops_1t);
    snprintf(f1->kv, sizeof f1->kv, "isa=%s threads=1 gflops=%.2f", res.isa, res.gflops_1t);
    snprintf(fa->kv, sizeof fa->kv, "isa=%s threads=%d gflops=%.2f", res.isa, nt,
             res.gflops_all);
    return res;
}

/* ------------------------------------------------------------------------ */
/* matmul calibration: the cpu backend's first product of each float type   */
/* ------------------------------------------------------------------------ */

/* Lines in the calibration cache, -1 when it is absent. */
static int cache_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* What ferry's matmul chose per size class, from its cache: the last line of each
 * type (the largest class is decided by timing the first products of that size). */
static void print_gemm_choices(const char *dir)
{
    char path[1024], line[1024], last[2][1024] = {"", ""};
    if (!dir || snprintf(path, sizeof path, "%s/cpu-gemm.txt", dir) >= (int)sizeof path)
        return;
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("ferry matmul choice: no calibration cache (no OpenBLAS, or FERRY_CPU_GEMM "
               "set)\n");
        return;
    }
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *t = strstr(line, "|f32 ") ? strstr(line, "|f32 ") : strstr(line, "|f64 ");
        if (t)
            snprintf(last[t[2] == '6'], sizeof last[0], "%s", t + 1); /* "|f64 " */
    }
    fclose(f);
    for (int i = 0; i < 2; i++)
        if (last[i][0])
            printf("ferry matmul choice %s (<128^3, <512^3, <1024^3, <2048^3, larger)\n",
                   last[i]);
    for (int i = 0; i < 2; i++)
        if (last[i][0]) {
            char cls[5][16] = {"", "", "", "", ""};
            sscanf(last[i] + 4, "%15s %15s %15s %15s %15s", cls[0], cls[1], cls[2], cls[3],
                   cls[4]);
            printf("BENCH figure=mm.choice.%s lt128=%s lt512=%s lt1024=%s lt2048=%s larger=%s\n",
                   i ? "f64" : "f32", cls[0], cls[1], cls[2], cls[3], cls[4]);
        }
}

/* In a child process with a fresh ferry: ms taken by the first 128^2 float32 and then
 * float64 matmul, where the cpu backend loads its libraries and calibrates (or reads
 * the cache). NAN where the child failed. */
static void first_matmul_ms(const char *cache_dir, double ms[2])
{
    int fds[2];
    ms[0] = ms[1] = NAN;
    if (pipe(fds) != 0)
        return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        setenv("FERRY_CPU_CACHE_DIR", cache_dir, 1);
        double out[2] = {NAN, NAN};
        /* Larger than ferry's own small-product kernels take (128 a side), so the
         * calibration runs. */
        int64_t shape[2] = {160, 160};
        static const ferry_dtype dts[2] = {FERRY_FLOAT32, FERRY_FLOAT64};
        for (int i = 0; i < 2; i++) {
            ferry_tensor *a = ferry_ones(dts[i], 2, shape, "cpu");
            double t0 = bench_now_ns();
            ferry_tensor *c = a ? ferry_matmul(a, a) : NULL;
            if (c)
                out[i] = (bench_now_ns() - t0) / 1e6;
            ferry_tensor_release(c);
            ferry_tensor_release(a);
        }
        ssize_t w = write(fds[1], out, sizeof out);
        _exit(w == (ssize_t)sizeof out ? 0 : 1);
    }
    close(fds[1]);
    if (pid > 0) {
        double got[2];
        if (read(fds[0], got, sizeof got) == (ssize_t)sizeof got)
            ms[0] = got[0], ms[1] = got[1];
        waitpid(pid, NULL, 0);
    }
    close(fds[0]);
}

/* Runs before anything else (fork and OpenMP's worker pool do not mix): a cold run in an
 * empty cache folder, then a warm one that must read the cache, not calibrate again. */
static void bench_calibration(void)
{
    figure *fc = add_figure("mm.calibration.cold_ms", "matmul calibration, cold");
    figure *fw = add_figure("mm.calibration.warm_ms", "matmul first call, cached");
    set_goal(fc, GOAL_MAX_MS, 300);
    char dir[] = "/tmp/ferry-bench-calib-XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        snprintf(fc->ferry, sizeof fc->ferry, "skipped");
        snprintf(fc->note, sizeof fc->note, "no temporary folder for the cache");
        snprintf(fc->kv, sizeof fc->kv, "skipped=\"mkdtemp failed\"");
        return;
    }
    snprintf(path, sizeof path, "%s/cpu-gemm.txt", dir);
    double cold[2], warm[2];
    first_matmul_ms(dir, cold);
    int lines_cold = cache_lines(path);
    first_matmul_ms(dir, warm);
    int lines_warm = cache_lines(path);
    unlink(path);
    rmdir(dir);
    if (isnan(cold[0] + cold[1]) || isnan(warm[0] + warm[1])) {
        fail_figure(fc, "first matmul in a child process");
        fail_figure(fw, "first matmul in a child process");
        return;
    }
    /* No cache line: BLIS is the only provider (or one is forced), nothing calibrated. */
    double total = cold[0] + cold[1];
    fc->measured = total;
    snprintf(fc->ferry, sizeof fc->ferry, "%.1f ms", total);
    snprintf(fc->note, sizeof fc->note, "f32 %.1f + f64 %.1f ms, libraries loaded; %d cache lines",
             cold[0], cold[1], lines_cold < 0 ? 0 : lines_cold);
    snprintf(fc->kv, sizeof fc->kv, "f32_ms=%.2f f64_ms=%.2f cache_lines=%d", cold[0], cold[1],
             lines_cold);
    snprintf(fw->ferry, sizeof fw->ferry, "%.1f ms", warm[0] + warm[1]);
    snprintf(fw->base, sizeof fw->base, "%.1f ms", total);
    fw->ratio = (warm[0] + warm[1]) / total;
    /* Nothing cached: BLIS alone or a provider forced (no calibration at all), or the
     * calibration ran over its budget on a loaded machine and was not kept. */
    bool cached = lines_cold > 0;
    /* One line per float type: with fewer, the warm run calibrates the type whose cold
     * calibration was cut short, as it should; it may not calibrate a cached one. */
    bool all_cached = lines_cold >= 2;
    snprintf(fw->note, sizeof fw->note, "%s (ratio: of the cold run)",
             !cached                    ? "nothing cached: no calibration, or cut short by load"
             : lines_warm == lines_cold ? "cache read, no calibration"
             : !all_cached ? "one type's cold calibration was cut short: calibrated again"
                           : "CALIBRATED AGAIN: the cache was not used");
    snprintf(fw->kv, sizeof fw->kv, "f32_ms=%.2f f64_ms=%.2f cached=%d cache_reused=%d",
             warm[0], warm[1], cached, cached && lines_warm == lines_cold);
    if (all_cached && lines_warm != lines_cold)
        fail_figure(fw, "calibration cache not reused");
}

/* ------------------------------------------------------------------------ */
/* matmul f32                                                               */
/* ------------------------------------------------------------------------ */

typedef struct mm_ctx {
    ferry_tensor *a, *b, *out;
    float *pa, *pb, *pc; /* BLIS reads ferry's operands and writes its own pc */
    int64_t n;
    int threads;        /* for the threaded BLIS calls */
    long saved_threads; /* BLIS's global thread setting as this process found it */
#ifdef FERRY_BENCH_BLIS_GKS
    cntx_t *tuned; /* BLIS's fastest configuration for this CPU at this size */
#endif
} mm_ctx;

/* OpenBLAS called directly: dlopen'ed as the cpu plugin does (its BLAS symbols must not
 * meet the BLIS linked into this bench). NULL when the library is absent. */
typedef void (*bench_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int);
typedef void (*bench_dgemm_fn)(int, int, int, int, int, int, double, const double *, int,
                               const double *, int, double, double *, int);
static bench_dgemm_fn openblas_dgemm_fn; /* loaded with cblas_sgemm */
/* The kernels the library chose (OPENBLAS_CORETYPE, when set, decides). */
static char openblas_core[32] = "not loaded";

static bench_sgemm_fn openblas_sgemm(void)
{
    static bench_sgemm_fn fn;
    static bool tried;
    if (!tried) {
        tried = true;
        void *dl = NULL;
#ifdef FERRY_BENCH_OPENBLAS_OPENMP
        dl = dlopen(FERRY_BENCH_OPENBLAS_OPENMP, RTLD_NOW | RTLD_LOCAL);
#endif
        if (!dl)
            dl = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
        fn = dl ? (bench_sgemm_fn)dlsym(dl, "cblas_sgemm") : NULL;
        openblas_dgemm_fn = dl ? (bench_dgemm_fn)dlsym(dl, "cblas_dgemm") : NULL;
        void (*set)(int) = dl ? (void (*)(int))dlsym(dl, "openblas_set_num_threads") : NULL;
        if (set)
            set(omp_get_max_threads());
        char *(*core)(void) = dl ? (char *(*)(void))dlsym(dl, "openblas_get_corename") : NULL;
        snprintf(openblas_core, sizeof openblas_core, "%s", core && core() ? core() : "unknown");
    }
    return fn;
}

static int mm_openblas(void *p)
{
    mm_ctx *c = p;
    int n = (int)c->n;
    openblas_sgemm()(101 /* row major */, 111, 111, n, n, n, 1.0f, c->pa, n, c->pb, n, 0.0f,
                     c->pc, n);
    return 0;
}

static int mm_ferry(void *p)
{
    mm_ctx *c = p;
    return ferry_matmul_out(c->out, c->a, c->b) != FERRY_OK;
}

/* The products that decide a tried size class: three per provider (BLIS, OpenBLAS,
 * ferry's own kernels), and one more. */
#define MM_TRIAL_PRODUCTS (3 * 3 + 1)

static long mm_calls(const config *cfg, int64_t n)
{
    double flops = 2.0 * (double)n * (double)n * (double)n;
    long calls = (long)(cfg->mm_sample_flops / flops);
    return calls < 1 ? 1 : calls;
}

#ifdef FERRY_BENCH_HAVE_BLIS
static void blis_sgemm_rowmajor(int64_t n, const float *a, const float *b, float *c)
{
    float one = 1.0f, zero = 0.0f;
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)n, (dim_t)n, (dim_t)n, &one,
              (float *)a, (inc_t)n, 1, (float *)b, (inc_t)n, 1, &zero, c, (inc_t)n, 1);
}

static int mm_blis_default(void *p)
{
    mm_ctx *c = p;
    blis_sgemm_rowmajor(c->n, c->pa, c->pb, c->pc);
    return 0;
}

/* BLIS's thread count is process-global, so it is set for this call only and restored,
 * leaving the default figure (and any ferry build sharing this BLIS) as they were. */
static int mm_blis_threaded(void *p)
{
    mm_ctx *c = p;
    bli_thread_set_num_threads(c->threads);
    blis_sgemm_rowmajor(c->n, c->pa, c->pb, c->pc);
    bli_thread_set_num_threads((dim_t)c->saved_threads);
    return 0;
}
#endif

#ifdef FERRY_BENCH_BLIS_GKS
/* C = A B of n x n row-major matrices (float, or double when dbl) with one BLIS
 * configuration on `threads` threads. */
static void blis_gemm_ctx(bool dbl, int64_t n, const void *a, const void *b, void *c,
                          cntx_t *cntx, int threads)
{
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads, &rntm);
    if (dbl) {
        double one = 1.0, zero = 0.0;
        bli_dgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)n, (dim_t)n, (dim_t)n, &one,
                     (double *)a, (inc_t)n, 1, (double *)b, (inc_t)n, 1, &zero, c, (inc_t)n,
                     1, cntx, &rntm);
        return;
    }
    float one = 1.0f, zero = 0.0f;
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)n, (dim_t)n, (dim_t)n, &one,
                 (float *)a, (inc_t)n, 1, (float *)b, (inc_t)n, 1, &zero, c, (inc_t)n, 1,
                 cntx, &rntm);
}

static int mm_blis_tuned(void *p)
{
    mm_ctx *c = p;
    blis_gemm_ctx(false, c->n, c->pa, c->pb, c->pc, c->tuned, c->threads);
    return 0;
}

/* The "ferry adds no overhead" reference must run the kernels ferry could run, not the
 * ones BLIS autodetects (Debian's BLIS 0.9 files AVX-512 Xeons as haswell and Zen 5 as
 * generic). So every registered configuration this CPU can execute is timed at each
 * size and the fastest there is kept (no one configuration wins at every size): a
 * reference chosen by measurement, not by name.
 * bli_gks_lookup_id is not exported by libblis.so, hence the static archive. */
typedef struct blis_tuned {
    cntx_t *cntx;
    arch_t arch;
    double gflops; /* at the selection size */
} blis_tuned;

static bool cpu_can_run(arch_t arch)
{
#ifdef BENCH_X86
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    switch (arch) {
    case BLIS_ARCH_SKX:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    case BLIS_ARCH_HASWELL:
    case BLIS_ARCH_ZEN3:
    case BLIS_ARCH_ZEN2:
    case BLIS_ARCH_ZEN:
        return avx2;
    default:
        return false; /* older ISAs never win where these run; generic is the fallback */
    }
#else
    (void)arch;
    return false;
#endif
}

static blis_tuned pick_blis_config(bool dbl, int64_t n, const void *a, const void *b, void *c,
                                   int threads, long calls)
{
    static const arch_t candidates[] = {BLIS_ARCH_SKX, BLIS_ARCH_ZEN3, BLIS_ARCH_HASWELL,
                                        BLIS_ARCH_ZEN2, BLIS_ARCH_ZEN};
    blis_tuned best = {bli_gks_query_nat_cntx(), bli_arch_query_id(), 0};
    double flops = 2.0 * (double)n * (double)n * (double)n;
    size_t ncand = sizeof candidates / sizeof candidates[0];
    cntx_t *cntx[sizeof candidates / sizeof candidates[0]] = {0};
    double best_ns[sizeof candidates / sizeof candidates[0]];
    for (size_t i = 0; i < ncand; i++) {
        cntx_t **ids = bli_gks_lookup_id(candidates[i]);
        if (cpu_can_run(candidates[i]) && ids && ids[BLIS_NAT]) {
            cntx[i] = ids[BLIS_NAT];
            blis_gemm_ctx(dbl, n, a, b, c, cntx[i], threads); /* warm-up */
        }
        best_ns[i] = INFINITY;
    }
    /* Rounds over all candidates, each keeping its best time: a burst of load from
     * another process then costs one sample, not the choice. */
    for (int round = 0; round < 5; round++) {
        for (size_t i = 0; i < ncand; i++) {
            if (!cntx[i])
                continue;
            double t0 = bench_now_ns();
            for (long k = 0; k < calls; k++)
                blis_gemm_ctx(dbl, n, a, b, c, cntx[i], threads);
            double t = (bench_now_ns() - t0) / (double)calls;
            if (t < best_ns[i])
                best_ns[i] = t;
        }
    }
    for (size_t i = 0; i < ncand; i++)
        if (cntx[i] && flops / best_ns[i] > best.gflops)
            best = (blis_tuned){cntx[i], candidates[i], flops / best_ns[i]};
    return best;
}
#endif /* FERRY_BENCH_BLIS_GKS */

#ifdef FERRY_BENCH_HAVE_BLIS
/* Largest |x - y| over the largest |y|: one number that a wrong kernel cannot pass. */
static double rel_diff(bool dbl, const void *xp, const void *yp, int64_t n)
{
    const float *xf = xp, *yf = yp;
    const double *xd = xp, *yd = yp;
    double maxdiff = 0, maxref = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = dbl ? xd[i] : (double)xf[i], y = dbl ? yd[i] : (double)yf[i];
        double d = fabs(x - y);
        if (isnan(d))
            return INFINITY;
        if (d > maxdiff)
            maxdiff = d;
        if (fabs(y) > maxref)
            maxref = fabs(y);
    }
    return maxref > 0 ? maxdiff / maxref : maxdiff;
}

/* Both figures of a ferry-vs-BLIS row. */
static void blis_figure(figure *f, int64_t n, double gf_ferry, double gf_blis, const char *arch,
                        int threads, const char *how)
{
    snprintf(f->ferry, sizeof f->ferry, "%.1f GFLOP/s", gf_ferry);
    snprintf(f->base, sizeof f->base, "%.1f GFLOP/s", gf_blis);
    f->ratio = gf_ferry / gf_blis;
    snprintf(f->note, sizeof f->note, "BLIS %s, %d thread%s; %s", arch, threads,
             threads == 1 ? "" : "s", how);
    snprintf(f->kv, sizeof f->kv,
             "n=%lld ferry_gflops=%.2f blis_gflops=%.2f blis_arch=%s blis_threads=%d",
             (long long)n, gf_ferry, gf_blis, arch, threads);
}
#endif

static void bench_matmul(const config *cfg, peak_result *peak)
{
    int nt = omp_get_max_threads();
#ifdef FERRY_BENCH_HAVE_BLIS
    long saved_threads = (long)bli_thread_get_num_threads();
    /* BLIS reads BLIS_NUM_THREADS, then OMP_NUM_THREADS; unset means one thread. */
    int default_threads = saved_threads >= 1 ? (int)saved_threads : 1;
    const char *auto_arch = bli_arch_string(bli_arch_query_id());
#endif
#ifdef FERRY_BENCH_BLIS_GKS
    printf("BLIS %s: autodetects %s; the tuned reference is its fastest configuration at "
           "each size\n",
           bli_info_get_version_str(), auto_arch);
#elif defined(FERRY_BENCH_HAVE_BLIS)
    printf("BLIS %s: autodetects %s (shared library only: no tuned reference)\n",
           bli_info_get_version_str(), auto_arch);
#else
    printf("BLIS: not linked; the sgemm references are skipped\n");
#endif
    fflush(stdout);

    for (int s = 0; s < cfg->nsizes; s++) {
        int64_t n = cfg->mm_n[s];
        int64_t shape[2] = {n, n};
        mm_ctx c = {.n = n, .threads = nt};
        c.a = new_f32(2, shape, 1, -1.0f, 2.0f);
        c.b = new_f32(2, shape, 2, -1.0f, 2.0f);
        c.out = ferry_empty(FERRY_FLOAT32, 2, shape, "cpu");
        if (!c.a || !c.b || !c.out)
            fatal("cannot create %lldx%lld float32 cpu tensors: %s", (long long)n, (long long)n,
                  ferry_last_error());
        c.pa = ferry_tensor_host_data(c.a);
        c.pb = ferry_tensor_host_data(c.b);
        c.pc = bench_touched((size_t)(n * n) * sizeof(float));

        char id[48], label[64];
        figure *rows[4];
        int nrows = 0;
        snprintf(id, sizeof id, "mm.f32.n%lld.vs_peak", (long long)n);
        snprintf(label, sizeof label, "matmul f32 %lld: vs FMA peak", (long long)n);
        figure *fp = rows[nrows++] = add_figure(id, label);
        /* Issue 12: 0.8 of the FMA peak at 2048 (on AVX2 and on AVX-512 machines). */
        if (n >= 2048)
            set_goal(fp, GOAL_MIN_RATIO, 0.8);
        else if (n >= 1024)
            set_goal(fp, GOAL_MIN_RATIO, 0.65);
#ifdef FERRY_BENCH_BLIS_GKS
        blis_tuned tuned = pick_blis_config(false, n, c.pa, c.pb, c.pc, nt, mm_calls(cfg, n));
        const char *tuned_arch = bli_arch_string(tuned.arch);
        c.tuned = tuned.cntx;
        snprintf(id, sizeof id, "mm.f32.n%lld.vs_blis_tuned", (long long)n);
        snprintf(label, sizeof label, "matmul f32 %lld: vs BLIS %s %dT", (long long)n,
                 tuned_arch, nt);
        figure *fb = rows[nrows++] = add_figure(id, label);
        /* As fast as the fastest library called directly: this and the OpenBLAS row. */
        set_goal(fb, GOAL_MIN_RATIO, n >= 256 ? 1.0 : 0.95);
#endif
#ifdef FERRY_BENCH_HAVE_BLIS
        snprintf(id, sizeof id, "mm.f32.n%lld.vs_blis_default", (long long)n);
        snprintf(label, sizeof label, "matmul f32 %lld: vs bli_sgemm %dT", (long long)n,
                 default_threads);
        figure *fd = rows[nrows++] = add_figure(id, label);
        set_goal(fd, GOAL_MIN_RATIO, 0.95);
        snprintf(id, sizeof id, "mm.f32.n%lld.vs_blis_threaded", (long long)n);
        snprintf(label, sizeof label, "matmul f32 %lld: vs bli_sgemm set %dT", (long long)n,
                 nt);
        figure *ft = rows[nrows++] = add_figure(id, label);
        set_goal(ft, GOAL_MIN_RATIO, 0.95);
#endif
        figure *fo = NULL;
        if (openblas_sgemm()) {
            snprintf(id, sizeof id, "mm.f32.n%lld.vs_openblas", (long long)n);
            snprintf(label, sizeof label, "matmul f32 %lld: vs OpenBLAS %dT", (long long)n, nt);
            fo = rows[nrows++] = add_figure(id, label);
            set_goal(fo, GOAL_MIN_RATIO, n >= 256 ? 1.0 : 0.95);
        }

        variant v[MAX_VARIANTS];
        int nv = 0;
        v[nv++] = (variant){mm_ferry, &c, 0, 0};
        /* From 1024^3 up, ferry's first products of a size class time each provider
         * (three each, cpu_gemm.c): a new program's first products, which a figure of
         * ferry's speed leaves out as it leaves out the calibration. */
        int settle = n >= 1024 ? MM_TRIAL_PRODUCTS : 1, bad = 0;
        for (int i = 0; i < settle && !bad; i++)
            bad = mm_ferry(&c);
        if (bad) {
            for (int i = 0; i < nrows; i++)
                fail_figure(rows[i], "ferry_matmul_out");
            goto next;
        }
#ifdef FERRY_BENCH_HAVE_BLIS
        c.saved_threads = saved_threads;
        /* A fast wrong product is no result. */
        blis_sgemm_rowmajor(n, c.pa, c.pb, c.pc);
        double err = rel_diff(false, ferry_tensor_host_data(c.out), c.pc, n * n);
        if (!(err <= 1e-4)) {
            fprintf(stderr, "bench_ops: matmul %lld differs from bli_sgemm: max rel %.3g\n",
                    (long long)n, err);
            exit(1);
        }
        v[nv++] = (variant){mm_blis_default, &c, 0, 0};
        v[nv++] = (variant){mm_blis_threaded, &c, 0, 0};
#endif
#ifdef FERRY_BENCH_BLIS_GKS
        v[nv++] = (variant){mm_blis_tuned, &c, 0, 0};
#endif
        int iob = -1;
        if (fo) {
            iob = nv;
            v[nv++] = (variant){mm_openblas, &c, 0, 0};
        }
        /* The peak again, alternating with the products: under load from other
         * processes the ratio then compares like with like. */
        int ipeak = -1;
        if (peak->isa) {
            ipeak = nv;
            v[nv++] = (variant){peak_all_threads, &peak->ctx, 0, 1};
        }
        if (measure(cfg, v, nv, mm_calls(cfg, n)) >= 0) {
            for (int i = 0; i < nrows; i++)
                fail_figure(rows[i], "ferry_matmul_out");
            goto next;
        }

        double flops = 2.0 * (double)n * (double)n * (double)n;
        double gf = flops / v[0].ns;
        snprintf(fp->ferry, sizeof fp->ferry, "%.1f GFLOP/s", gf);
        double gpeak = ipeak >= 0 ? peak_flops(&peak->ctx) * nt / v[ipeak].ns : 0;
        if (ipeak >= 0) {
            snprintf(fp->base, sizeof fp->base, "%.1f GFLOP/s", gpeak);
            fp->ratio = gf / gpeak;
            snprintf(fp->note, sizeof fp->note,
                     "%d-thread peak measured alongside; %.2f of the 1-thread peak", nt,
                     gf / peak->gflops_1t);
        } else {
            snprintf(fp->note, sizeof fp->note, "no peak measured on this CPU");
        }
        snprintf(fp->kv, sizeof fp->kv,
                 "n=%lld ferry_gflops=%.2f peak_all_gflops=%.2f peak_1t_gflops=%.2f "
                 "ratio_1t=%.4f threads=%d",
                 (long long)n, gf, gpeak, peak->gflops_1t,
                 ipeak >= 0 ? gf / peak->gflops_1t : 0.0, nt);
#ifdef FERRY_BENCH_HAVE_BLIS
        blis_figure(fd, n, gf, flops / v[1].ns, auto_arch, default_threads,
                    "bli_sgemm as installed");
        blis_figure(ft, n, gf, flops / v[2].ns, auto_arch, nt,
                    "after bli_thread_set_num_threads");
#endif
#ifdef FERRY_BENCH_BLIS_GKS
        blis_figure(fb, n, gf, flops / v[3].ns, tuned_arch, nt,
                    "fastest registered config at this size, bli_sgemm_ex");
#endif
        if (fo) {
            double gob = flops / v[iob].ns;
            snprintf(fo->ferry, sizeof fo->ferry, "%.1f GFLOP/s", gf);
            snprintf(fo->base, sizeof fo->base, "%.1f GFLOP/s", gob);
            fo->ratio = gf / gob;
            snprintf(fo->note, sizeof fo->note,
                     "cblas_sgemm of Debian's OpenBLAS, core %s, %d threads", openblas_core, nt);
            snprintf(fo->kv, sizeof fo->kv,
                     "n=%lld ferry_gflops=%.2f openblas_gflops=%.2f openblas_core=%s",
                     (long long)n, gf, gob, openblas_core);
        }
    next:
        free(c.pc);
        ferry_tensor_release(c.a);
        ferry_tensor_release(c.b);
        ferry_tensor_release(c.out);
    }
}

/* ------------------------------------------------------------------------ */
/* matmul against the libraries alone: float64, and float32 below 256        */
/* ------------------------------------------------------------------------ */

typedef struct lib_ctx {
    bool dbl;
    int64_t n;
    int threads;
    ferry_tensor *a, *b, *out;
    const void *pa, *pb; /* ferry's operands, which the libraries read */
    void *pc;
#ifdef FERRY_BENCH_BLIS_GKS
    cntx_t *tuned;
#endif
} lib_ctx;

static int lib_ferry(void *p)
{
    lib_ctx *c = p;
    return ferry_matmul_out(c->out, c->a, c->b) != FERRY_OK;
}

#ifdef FERRY_BENCH_BLIS_GKS
static int lib_blis(void *p)
{
    lib_ctx *c = p;
    blis_gemm_ctx(c->dbl, c->n, c->pa, c->pb, c->pc, c->tuned, c->threads);
    return 0;
}
#endif

static int lib_openblas(void *p)
{
    lib_ctx *c = p;
    int n = (int)c->n;
    if (c->dbl)
        openblas_dgemm_fn(101, 111, 111, n, n, n, 1.0, c->pa, n, c->pb, n, 0.0, c->pc, n);
    else
        openblas_sgemm()(101, 111, 111, n, n, n, 1.0f, c->pa, n, c->pb, n, 0.0f, c->pc, n);
    return 0;
}

/* ferry against the fastest BLIS configuration at each size and OpenBLAS called
 * directly, on ferry's own operands: the goal is the faster library's rate (>= 1.0 from
 * 256, >= 0.95 below). */
static void bench_matmul_libs(const config *cfg, bool dbl, const int64_t *sizes, int nsizes)
{
    const char *name = dbl ? "f64" : "f32";
    int nt = omp_get_max_threads();
    size_t es = dbl ? sizeof(double) : sizeof(float);
    bool have_ob = openblas_sgemm() && openblas_dgemm_fn;
    for (int s = 0; s < nsizes; s++) {
        int64_t n = sizes[s], shape[2] = {n, n};
        lib_ctx c = {.dbl = dbl, .n = n, .threads = nt};
        ferry_tensor *fa = new_f32(2, shape, 1, -1.0f, 2.0f);
        ferry_tensor *fb = new_f32(2, shape, 2, -1.0f, 2.0f);
        c.a = dbl && fa ? ferry_tensor_to_dtype(fa, FERRY_FLOAT64) : fa;
        c.b = dbl && fb ? ferry_tensor_to_dtype(fb, FERRY_FLOAT64) : fb;
        if (dbl) {
            ferry_tensor_release(fa);
            ferry_tensor_release(fb);
        }
        c.out = ferry_empty(dbl ? FERRY_FLOAT64 : FERRY_FLOAT32, 2, shape, "cpu");
        if (!c.a || !c.b || !c.out)
            fatal("cannot create %lldx%lld %s cpu tensors: %s", (long long)n, (long long)n, name,
                  ferry_last_error());
        c.pa = ferry_tensor_host_data(c.a);
        c.pb = ferry_tensor_host_data(c.b);
        c.pc = bench_touched((size_t)(n * n) * es);

        variant v[MAX_VARIANTS];
        figure *f[MAX_VARIANTS] = {NULL};
        const char *ref[MAX_VARIANTS] = {NULL};
        int nv = 0;
        char id[48], label[64];
        v[nv++] = (variant){lib_ferry, &c, 0, 0};
#ifdef FERRY_BENCH_BLIS_GKS
        blis_tuned tuned = pick_blis_config(dbl, n, c.pa, c.pb, c.pc, nt, mm_calls(cfg, n));
        c.tuned = tuned.cntx;
        snprintf(id, sizeof id, "mm.%s.n%lld.vs_blis_tuned", name, (long long)n);
        snprintf(label, sizeof label, "matmul %s %lld: vs BLIS %s %dT", name, (long long)n,
                 bli_arch_string(tuned.arch), nt);
        ref[nv] = bli_arch_string(tuned.arch);
        f[nv] = add_figure(id, label);
        v[nv++] = (variant){lib_blis, &c, 0, 0};
#endif
        if (have_ob) {
            snprintf(id, sizeof id, "mm.%s.n%lld.vs_openblas", name, (long long)n);
            snprintf(label, sizeof label, "matmul %s %lld: vs OpenBLAS %dT", name, (long long)n,
                     nt);
            ref[nv] = "openblas";
            f[nv] = add_figure(id, label);
            v[nv++] = (variant){lib_openblas, &c, 0, 0};
        }
        for (int i = 1; i < nv; i++)
            set_goal(f[i], GOAL_MIN_RATIO, n >= 256 ? 1.0 : 0.95);
        /* As in bench_matmul: the first products of a tried class stay out of the
         * figure, as the calibration does. */
        int settle = n >= 1024 ? MM_TRIAL_PRODUCTS : 1, bad = -1;
        for (int i = 0; i < settle && bad < 0; i++)
            bad = lib_ferry(&c) ? 0 : -1;
        /* A fast wrong product is no result: each library's against ferry's. */
        for (int i = 1; i < nv && bad < 0; i++) {
            v[i].fn(&c);
            double err = rel_diff(dbl, ferry_tensor_host_data(c.out), c.pc, n * n);
            if (!(err <= (dbl ? 1e-12 : 1e-4)))
                fatal("matmul %s %lld: ferry differs from %s by max rel %.3g", name,
                      (long long)n, ref[i], err);
        }
        if (bad < 0)
            bad = measure(cfg, v, nv, mm_calls(cfg, n));
        double flops = 2.0 * (double)n * (double)n * (double)n, gf = flops / v[0].ns;
        for (int i = 1; i < nv; i++) {
            if (bad >= 0) {
                fail_figure(f[i], bad == 0 ? "ferry_matmul_out" : ref[i]);
                continue;
            }
            double gr = flops / v[i].ns;
            snprintf(f[i]->ferry, sizeof f[i]->ferry, "%.1f GFLOP/s", gf);
            snprintf(f[i]->base, sizeof f[i]->base, "%.1f GFLOP/s", gr);
            f[i]->ratio = gf / gr;
            if (!strcmp(ref[i], "openblas"))
                snprintf(f[i]->note, sizeof f[i]->note,
                         "cblas_%cgemm of Debian's OpenBLAS, core %s, %d threads",
                         dbl ? 'd' : 's', openblas_core, nt);
            else
                snprintf(f[i]->note, sizeof f[i]->note,
                         "BLIS %s, %d threads; fastest registered config at this size", ref[i],
                         nt);
            snprintf(f[i]->kv, sizeof f[i]->kv, "n=%lld ferry_gflops=%.2f ref_gflops=%.2f ref=%s",
                     (long long)n, gf, gr, ref[i]);
        }
        free(c.pc);
        ferry_tensor_release(c.a);
        ferry_tensor_release(c.b);
        ferry_tensor_release(c.out);
    }
}

/* ------------------------------------------------------------------------ */
/* matmul float16 / bfloat16 against float32                                */
/* ------------------------------------------------------------------------ */

/* The same values as new_f32, rounded to a 16-bit float type. */
static ferry_tensor *new_half(ferry_dtype dt, int ndim, const int64_t *shape, uint32_t seed)
{
    ferry_tensor *t = ferry_empty(dt, ndim, shape, "cpu");
    uint16_t *p = t ? ferry_tensor_host_data(t) : NULL;
    if (!p) {
        ferry_tensor_release(t);
        return NULL;
    }
    int64_t n = ferry_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof *f);
    if (!f)
        fatal("out of memory");
    fill(f, n, seed, -1.0f, 2.0f);
    for (int64_t i = 0; i < n; i++)
        p[i] = dt == FERRY_FLOAT16 ? ferry_f32_to_f16(f[i]) : ferry_f32_to_bf16(f[i]);
    free(f);
    return t;
}

typedef struct mm_out_ctx {
    ferry_tensor *a, *b, *out;
} mm_out_ctx;

static int mm_out(void *p)
{
    mm_out_ctx *c = p;
    return ferry_matmul_out(c->out, c->a, c->b) != FERRY_OK;
}

/* The 16-bit float products run through float32 (converted in blocks): their rate as a
 * share of ferry's own float32 rate on the same shapes, measured alternating. */
static void bench_matmul_half(const config *cfg)
{
    static const ferry_dtype dts[3] = {FERRY_FLOAT32, FERRY_FLOAT16, FERRY_BFLOAT16};
    static const char *const names[3] = {"f32", "f16", "bf16"};
    for (int s = 0; s < cfg->nsizes; s++) {
        int64_t n = cfg->mm_n[s];
        int64_t shape[2] = {n, n};
        mm_out_ctx c[3];
        variant v[3];
        figure *f[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3; i++) {
            c[i].a = i ? new_half(dts[i], 2, shape, 1) : new_f32(2, shape, 1, -1.0f, 2.0f);
            c[i].b = i ? new_half(dts[i], 2, shape, 2) : new_f32(2, shape, 2, -1.0f, 2.0f);
            c[i].out = ferry_empty(dts[i], 2, shape, "cpu");
            if (!c[i].a || !c[i].b || !c[i].out)
                fatal("cannot create %lldx%lld %s cpu tensors: %s", (long long)n, (long long)n,
                      names[i], ferry_last_error());
            v[i] = (variant){mm_out, &c[i], 0, 0};
            if (i) {
                char id[48], label[64];
                snprintf(id, sizeof id, "mm.%s.n%lld.vs_f32", names[i], (long long)n);
                snprintf(label, sizeof label, "matmul %s %lld: vs ferry f32", names[i],
                         (long long)n);
                f[i] = add_figure(id, label);
                set_goal(f[i], GOAL_MIN_RATIO, 0.8);
            }
        }
        int bad = measure(cfg, v, 3, mm_calls(cfg, n));
        double flops = 2.0 * (double)n * (double)n * (double)n;
        for (int i = 1; i < 3; i++) {
            if (bad >= 0) {
                fail_figure(f[i], bad == 0 ? "ferry_matmul_out f32" : "ferry_matmul_out");
                continue;
            }
            double gf = flops / v[i].ns, g32 = flops / v[0].ns;
            snprintf(f[i]->ferry, sizeof f[i]->ferry, "%.1f GFLOP/s", gf);
            snprintf(f[i]->base, sizeof f[i]->base, "%.1f GFLOP/s", g32);
            f[i]->ratio = gf / g32;
            snprintf(f[i]->note, sizeof f[i]->note, "float32 accumulation, %d threads",
                     omp_get_max_threads());
            snprintf(f[i]->kv, sizeof f[i]->kv, "n=%lld gflops=%.2f f32_gflops=%.2f",
                     (long long)n, gf, g32);
        }
        for (int i = 0; i < 3; i++) {
            ferry_tensor_release(c[i].a);
            ferry_tensor_release(c[i].b);
            ferry_tensor_release(c[i].out);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* batched small matmul: 4096 products of 16 x 16 x 16, float32             */
/* ------------------------------------------------------------------------ */

#define BATCH_N 4096
#define BATCH_S 16

typedef struct batch_ctx {
    ferry_tensor *a, *b, *out;
    const float *pa, *pb;
    float *pc;
} batch_ctx;

static int batch_ferry(void *p)
{
    batch_ctx *c = p;
    return ferry_matmul_out(c->out, c->a, c->b) != FERRY_OK;
}

/* What a user would write without ferry: one library call per product. */
static int batch_openblas_loop(void *p)
{
    batch_ctx *c = p;
    bench_sgemm_fn f = openblas_sgemm();
    const int64_t sz = BATCH_S * BATCH_S;
    for (int64_t i = 0; i < BATCH_N; i++)
        f(101, 111, 111, BATCH_S, BATCH_S, BATCH_S, 1.0f, c->pa + i * sz, BATCH_S,
          c->pb + i * sz, BATCH_S, 0.0f, c->pc + i * sz, BATCH_S);
    return 0;
}

#ifdef FERRY_BENCH_HAVE_BLIS
static int batch_blis_loop(void *p)
{
    batch_ctx *c = p;
    const int64_t sz = BATCH_S * BATCH_S;
    for (int64_t i = 0; i < BATCH_N; i++)
        blis_sgemm_rowmajor(BATCH_S, c->pa + i * sz, c->pb + i * sz, c->pc + i * sz);
    return 0;
}
#endif

static void bench_matmul_batched(const config *cfg)
{
    figure *f = add_figure("mm.f32.batch4096x16.vs_loop", "matmul 4096 x 16^3 f32: vs loop");
    set_goal(f, GOAL_MIN_RATIO, 0.5);
    int64_t shape[3] = {BATCH_N, BATCH_S, BATCH_S};
    batch_ctx c;
    c.a = new_f32(3, shape, 1, -1.0f, 2.0f);
    c.b = new_f32(3, shape, 2, -1.0f, 2.0f);
    c.out = ferry_empty(FERRY_FLOAT32, 3, shape, "cpu");
    if (!c.a || !c.b || !c.out)
        fatal("cannot create the batched matmul tensors: %s", ferry_last_error());
    c.pa = ferry_tensor_host_data(c.a);
    c.pb = ferry_tensor_host_data(c.b);
    c.pc = bench_touched((size_t)BATCH_N * BATCH_S * BATCH_S * sizeof(float));
    variant v[3];
    const char *names[3];
    int nv = 0;
    v[nv++] = (variant){batch_ferry, &c, 0, 0};
    names[0] = "ferry";
#ifdef FERRY_BENCH_HAVE_BLIS
    names[nv] = "bli_sgemm";
    v[nv++] = (variant){batch_blis_loop, &c, 0, 0};
#endif
    if (openblas_sgemm()) {
        names[nv] = "cblas_sgemm (OpenBLAS)";
        v[nv++] = (variant){batch_openblas_loop, &c, 0, 0};
    }
    if (nv == 1) {
        snprintf(f->ferry, sizeof f->ferry, "skipped");
        snprintf(f->note, sizeof f->note, "neither BLIS nor OpenBLAS to loop over");
        snprintf(f->kv, sizeof f->kv, "skipped=\"no library\"");
    } else if (measure(cfg, v, nv, 5) >= 0) {
        fail_figure(f, "ferry_matmul_out (batched)");
    } else {
        int best = 1;
        for (int i = 2; i < nv; i++)
            if (v[i].ns < v[best].ns)
                best = i;
        /* The loops are checked against ferry's result: a fast wrong product is none. */
        const float *got = ferry_tensor_host_data(c.out);
        double maxd = 0;
        for (int64_t i = 0; i < (int64_t)BATCH_N * BATCH_S * BATCH_S; i++) {
            double d = fabs((double)got[i] - (double)c.pc[i]);
            maxd = d > maxd ? d : maxd;
        }
        if (!(maxd <= 1e-4))
            fatal("batched matmul differs from the loop of %s calls by %.3g", names[best], maxd);
        /* Per product, in us: a call runs BATCH_N of them. */
        snprintf(f->ferry, sizeof f->ferry, "%.3f us/mm", v[0].ns / BATCH_N / 1e3);
        snprintf(f->base, sizeof f->base, "%.3f us/mm", v[best].ns / BATCH_N / 1e3);
        f->ratio = v[best].ns / v[0].ns;
        snprintf(f->note, sizeof f->note, "vs a C loop of %s, the faster loop; ferry %d threads",
                 names[best], omp_get_max_threads());
        snprintf(f->kv, sizeof f->kv, "ferry_ns=%.0f loop_ns=%.0f loop=\"%s\"", v[0].ns,
                 v[best].ns, names[best]);
    }
    free(c.pc);
    ferry_tensor_release(c.a);
    ferry_tensor_release(c.b);
    ferry_tensor_release(c.out);
}

/* ------------------------------------------------------------------------ */
/* add f32: contiguous, broadcast row, allocating                           */
/* ------------------------------------------------------------------------ */

/* The reference loops use the project's flags (-O3, no -march): memory-bound loops gain
 * nothing from wider vectors, and a reference tuned harder than the library is built
 * would flatter nobody. */
static void omp_add(float *restrict out, const float *restrict a, const float *restrict b,
                    int64_t n)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

static void omp_add_row(float *restrict out, const float *restrict a,
                        const float *restrict row, int64_t rows, int64_t cols)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        float *restrict o = out + i * cols;
        const float *restrict x = a + i * cols;
        for (int64_t j = 0; j < cols; j++)
            o[j] = x[j] + row[j];
    }
}

/* 32 partial sums per thread: without -ffast-math the compiler may not reorder one
 * float accumulator, and a single dependent chain would make a weak, latency-bound
 * reference. Partials are combined in double. */
static double omp_sum(const float *restrict x, int64_t n)
{
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int64_t lo = n * id / nt, hi = n * (id + 1) / nt, i = lo;
        float acc[32] = {0};
        for (; i + 32 <= hi; i += 32)
            for (int j = 0; j < 32; j++)
                acc[j] += x[i + j];
        double t = 0;
        for (; i < hi; i++)
            t += x[i];
        for (int j = 0; j < 32; j++)
            t += acc[j];
        total += t;
    }
    return total;
}

typedef struct ew_ctx {
    ferry_tensor *a, *b, *row, *out, *t;
    float *pa, *pb, *prow, *pref;
    int64_t rows, cols;
    volatile double sink;
} ew_ctx;

static int ew_ref_add(void *p)
{
    ew_ctx *c = p;
    omp_add(c->pref, c->pa, c->pb, c->rows * c->cols);
    return 0;
}

static int ew_ferry_add_out(void *p)
{
    ew_ctx *c = p;
    return ferry_add_out(c->out, c->a, c->b) != FERRY_OK;
}

static int ew_ferry_add_alloc(void *p)
{
    ew_ctx *c = p;
    ferry_tensor *y = ferry_add(c->a, c->b);
    ferry_tensor_release(y);
    return y == NULL;
}

static int ew_ref_add_row(void *p)
{
    ew_ctx *c = p;
    omp_add_row(c->pref, c->pa, c->prow, c->rows, c->cols);
    return 0;
}

static int ew_ferry_add_row_out(void *p)
{
    ew_ctx *c = p;
    return ferry_add_out(c->out, c->a, c->row) != FERRY_OK;
}

static int ew_ref_sum(void *p)
{
    ew_ctx *c = p;
    c->sink = omp_sum(c->pa, c->rows * c->cols);
    return 0;
}

static int ew_ferry_sum(void *p)
{
    ew_ctx *c = p;
    ferry_tensor *y = ferry_sum(c->a, 0, NULL, false);
    ferry_tensor_release(y);
    return y == NULL;
}

static long stream_calls(const config *cfg, double bytes)
{
    long calls = (long)(cfg->stream_sample_bytes / bytes);
    return calls < 1 ? 1 : calls;
}

/* Exact comparison: a float add rounds once however it is vectorized. */
static bool same_floats(const ferry_tensor *t, const float *ref, int64_t n, const char *what)
{
    const float *p = ferry_tensor_host_data(t);
    if (p && memcmp(p, ref, (size_t)n * sizeof(float)) == 0)
        return true;
    fprintf(stderr, "bench_ops: %s: ferry's result differs from the C loop's\n", what);
    return false;
}

static void gbps_figure(figure *f, double bytes, double ns_ferry, double ns_ref,
                        const char *ref_name, const char *extra_kv)
{
    snprintf(f->ferry, sizeof f->ferry, "%.2f GB/s", bytes / ns_ferry);
    snprintf(f->base, sizeof f->base, "%.2f GB/s", bytes / ns_ref);
    f->ratio = ns_ref / ns_ferry;
    snprintf(f->kv, sizeof f->kv,
             "bytes=%.0f ferry_ns=%.0f %s_ns=%.0f ferry_gbps=%.3f %s_gbps=%.3f%s%s", bytes,
             ns_ferry, ref_name, ns_ref, bytes / ns_ferry, ref_name, bytes / ns_ref,
             extra_kv ? " " : "", extra_kv ? extra_kv : "");
}

static void bench_elementwise(const config *cfg)
{
    int nt = omp_get_max_threads();
    int64_t rows = cfg->rows, cols = cfg->cols, n = rows * cols;
    int64_t shape[2] = {rows, cols}, rshape[1] = {cols};
    ew_ctx c = {.rows = rows, .cols = cols};
    c.a = new_f32(2, shape, 3, -1.0f, 2.0f);
    c.b = new_f32(2, shape, 4, -1.0f, 2.0f);
    c.row = new_f32(1, rshape, 5, -1.0f, 2.0f);
    c.out = ferry_empty(FERRY_FLOAT32, 2, shape, "cpu");
    if (!c.a || !c.b || !c.row || !c.out)
        fatal("cannot create the add operands: %s", ferry_last_error());
    c.pa = ferry_tensor_host_data(c.a);
    c.pb = ferry_tensor_host_data(c.b);
    c.prow = ferry_tensor_host_data(c.row);
    c.pref = bench_touched((size_t)n * sizeof(float));
    char label[64], kv[96];
    double mib = (double)n * 4 / 1048576.0;

    /* contiguous: two reads and one write per element */
    double bytes = 12.0 * (double)n;
    snprintf(label, sizeof label, "add f32 %lldM contiguous, _out", (long long)(n >> 20));
    figure *f = add_figure("add.f32.contig.vs_omp", label);
    set_goal(f, GOAL_MIN_RATIO, 0.9);
    variant v[2] = {{ew_ferry_add_out, &c, 0, 0}, {ew_ref_add, &c, 0, 0}};
    bool ok = ew_ferry_add_out(&c) == 0;
    if (!ok) {
        fail_figure(f, "ferry_add_out");
    } else {
        ew_ref_add(&c);
        if (!same_floats(c.out, c.pref, n, "add contiguous"))
            exit(1);
        if (measure(cfg, v, 2, stream_calls(cfg, bytes)) >= 0) {
            fail_figure(f, "ferry_add_out");
            ok = false;
        } else {
            snprintf(kv, sizeof kv, "numel=%lld threads=%d", (long long)n, nt);
            gbps_figure(f, bytes, v[0].ns, v[1].ns, "omp", kv);
            snprintf(f->note, sizeof f->note, "OpenMP C loop, %d threads; %.0f MiB operands",
                     nt, mib);
        }
    }

    /* allocating: result released each call, so the cached block comes straight back */
    snprintf(label, sizeof label, "add f32 %lldM allocating vs _out", (long long)(n >> 20));
    f = add_figure("add.f32.alloc.vs_out", label);
    set_goal(f, GOAL_MIN_RATIO, 0.8);
    if (ew_ferry_add_alloc(&c) != 0) {
        fail_figure(f, "ferry_add");
    } else if (!ok) {
        snprintf(f->ferry, sizeof f->ferry, "skipped");
        snprintf(f->note, sizeof f->note, "no _out figure to compare with");
        snprintf(f->kv, sizeof f->kv, "skipped=\"ferry_add_out failed\"");
    } else {
        variant va[2] = {{ew_ferry_add_alloc, &c, 0, 0}, {ew_ferry_add_out, &c, 0, 0}};
        uint64_t allocs0 = backend_allocs();
        if (measure(cfg, va, 2, stream_calls(cfg, bytes)) >= 0) {
            fail_figure(f, "ferry_add");
        } else {
            uint64_t allocs = backend_allocs() - allocs0;
            snprintf(kv, sizeof kv, "numel=%lld backend_allocs_timed=%llu", (long long)n,
                     (unsigned long long)allocs);
            gbps_figure(f, bytes, va[0].ns, va[1].ns, "out", kv);
            snprintf(f->note, sizeof f->note,
                     "ferry_add + release vs ferry_add_out; %llu backend allocs timed",
                     (unsigned long long)allocs);
        }
    }

    /* broadcast row: a [rows, cols] + row [cols]; the row stays in cache */
    bytes = 4.0 * (2.0 * (double)n + (double)cols);
    snprintf(label, sizeof label, "add f32 [%lld,%lld]+[%lld], _out", (long long)rows,
             (long long)cols, (long long)cols);
    f = add_figure("add.f32.bcast_row.vs_omp", label);
    set_goal(f, GOAL_MIN_RATIO, 0.7);
    if (ew_ferry_add_row_out(&c) != 0) {
        fail_figure(f, "ferry_add_out (broadcast)");
    } else {
        ew_ref_add_row(&c);
        if (!same_floats(c.out, c.pref, n, "add broadcast row"))
            exit(1);
        variant vb[2] = {{ew_ferry_add_row_out, &c, 0, 0}, {ew_ref_add_row, &c, 0, 0}};
        if (measure(cfg, vb, 2, stream_calls(cfg, bytes)) >= 0) {
            fail_figure(f, "ferry_add_out (broadcast)");
        } else {
            snprintf(kv, sizeof kv, "rows=%lld cols=%lld threads=%d", (long long)rows,
                     (long long)cols, nt);
            gbps_figure(f, bytes, vb[0].ns, vb[1].ns, "omp", kv);
            snprintf(f->note, sizeof f->note, "OpenMP C loop over rows, %d threads", nt);
        }
    }

    /* sum over all dims: one read per element. Positive data, so a relative check of
     * ferry's value is meaningful. */
    fill(c.pa, n, 6, 0.5f, 1.0f);
    bytes = 4.0 * (double)n;
    snprintf(label, sizeof label, "sum f32 %lldM, all dims", (long long)(n >> 20));
    f = add_figure("sum.f32.all.vs_omp", label);
    set_goal(f, GOAL_MIN_RATIO, 0.8);
    ferry_tensor *y = ferry_sum(c.a, 0, NULL, false);
    if (!y) {
        fail_figure(f, "ferry_sum");
    } else {
        double want = omp_sum(c.pa, n);
        const float *got = ferry_tensor_host_data(y);
        double rel = got ? fabs((double)*got - want) / want : INFINITY;
        ferry_tensor_release(y);
        if (!(rel <= 1e-4)) {
            fprintf(stderr, "bench_ops: sum: ferry gives %.9g, the C loop %.9g\n",
                    got ? (double)*got : NAN, want);
            exit(1);
        }
        variant vs[2] = {{ew_ferry_sum, &c, 0, 0}, {ew_ref_sum, &c, 0, 0}};
        if (measure(cfg, vs, 2, stream_calls(cfg, bytes)) >= 0) {
            fail_figure(f, "ferry_sum");
        } else {
            snprintf(kv, sizeof kv, "numel=%lld threads=%d rel_err=%.3g", (long long)n, nt,
                     rel);
            gbps_figure(f, bytes, vs[0].ns, vs[1].ns, "omp", kv);
            snprintf(f->note, sizeof f->note,
                     "OpenMP C loop, 32 partial sums/thread, %d threads", nt);
        }
    }

    free(c.pref);
    ferry_tensor_release(c.a);
    ferry_tensor_release(c.b);
    ferry_tensor_release(c.row);
    ferry_tensor_release(c.out);
    /* The tiny-op figures should not share free lists with 64 MiB blocks. */
    ferry_empty_cache("cpu");
}

/* ------------------------------------------------------------------------ */
/* tiny-op overhead                                                         */
/* ------------------------------------------------------------------------ */

static void bench_tiny(const config *cfg)
{
    int64_t one = 1;
    ew_ctx c = {.rows = 1, .cols = 1};
    c.a = new_f32(1, &one, 7, 1.0f, 1.0f);
    c.b = new_f32(1, &one, 8, 1.0f, 1.0f);
    c.out = ferry_empty(FERRY_FLOAT32, 1, &one, "cpu");
    if (!c.a || !c.b || !c.out)
        fatal("cannot create 1-element tensors: %s", ferry_last_error());

    figure *fo = add_figure("tiny.add_out_1", "add f32 1 element, _out");
    figure *fa = add_figure("tiny.add_1", "add f32 1 element, allocating");
    set_goal(fo, GOAL_MAX_NS, 200);
    set_goal(fa, GOAL_MAX_NS, 500);
    bool ok_out = ew_ferry_add_out(&c) == 0, ok_alloc = ew_ferry_add_alloc(&c) == 0;
    if (!ok_out)
        fail_figure(fo, "ferry_add_out (1 element)");
    if (!ok_alloc)
        fail_figure(fa, "ferry_add (1 element)");
    variant v[2];
    int nv = 0;
    if (ok_out)
        v[nv++] = (variant){ew_ferry_add_out, &c, 0, 0};
    if (ok_alloc)
        v[nv++] = (variant){ew_ferry_add_alloc, &c, 0, 0};
    uint64_t allocs0 = backend_allocs();
    if (nv > 0 && measure(cfg, v, nv, cfg->tiny_iters) < 0) {
        uint64_t allocs = backend_allocs() - allocs0;
        int k = 0;
        if (ok_out) {
            fo->measured = v[k].ns;
            snprintf(fo->ferry, sizeof fo->ferry, "%.1f ns/op", v[k].ns);
            snprintf(fo->note, sizeof fo->note, "no allocation; %ld calls per sample",
                     cfg->tiny_iters);
            snprintf(fo->kv, sizeof fo->kv, "ns_per_op=%.2f goal_ns=200", v[k].ns);
            k++;
        }
        if (ok_alloc) {
            fa->measured = v[k].ns;
            snprintf(fa->ferry, sizeof fa->ferry, "%.1f ns/op", v[k].ns);
            snprintf(fa->note, sizeof fa->note, "result released each call; %llu backend allocs",
                     (unsigned long long)allocs);
            snprintf(fa->kv, sizeof fa->kv, "ns_per_op=%.2f goal_ns=500 backend_allocs=%llu",
                     v[k].ns, (unsigned long long)allocs);
        }
    } else if (nv > 0) {
        fail_figure(ok_out ? fo : fa, "1-element add");
    }
    ferry_tensor_release(c.a);
    ferry_tensor_release(c.b);
    ferry_tensor_release(c.out);
}

/* ------------------------------------------------------------------------ */

static void print_results(void)
{
    printf("\n%-34s %16s %16s %7s %8s %4s  %s\n", "figure", "ferry", "reference", "ratio",
           "goal", "met", "note");
    for (int i = 0; i < nfigures; i++) {
        figure *f = &figures[i];
        char ratio[16] = "", goal[16] = "", met[8] = "";
        if (f->ratio >= 0) {
            snprintf(ratio, sizeof ratio, "%.3f", f->ratio);
            if (f->goal == GOAL_MIN_RATIO)
                f->measured = f->ratio;
        }
        if (f->goal == GOAL_MIN_RATIO)
            snprintf(goal, sizeof goal, ">= %.2f", f->goal_value);
        else if (f->goal == GOAL_MAX_NS)
            snprintf(goal, sizeof goal, "< %.0f ns", f->goal_value);
        else if (f->goal == GOAL_MAX_MS)
            snprintf(goal, sizeof goal, "< %.0f ms", f->goal_value);
        if (f->goal != GOAL_NONE && f->measured > 0)
            snprintf(met, sizeof met, "%s",
                     (f->goal == GOAL_MIN_RATIO ? f->measured >= f->goal_value
                                                : f->measured < f->goal_value)
                         ? "yes"
                         : "NO");
        printf("%-34s %16s %16s %7s %8s %4s  %s\n", f->label, f->ferry, f->base, ratio, goal,
               met, f->note);
    }
    /* One line per figure for scripts: grep '^BENCH '. */
    putchar('\n');
    for (int i = 0; i < nfigures; i++) {
        const figure *f = &figures[i];
        printf("BENCH figure=%s", f->id);
        if (f->ratio >= 0)
            printf(" ratio=%.4f", f->ratio);
        if (f->goal == GOAL_MIN_RATIO)
            printf(" goal_min=%.2f", f->goal_value);
        if (f->goal != GOAL_NONE && f->measured > 0)
            printf(" met=%d", f->goal == GOAL_MIN_RATIO ? f->measured >= f->goal_value
                                                         : f->measured < f->goal_value);
        if (f->goal == GOAL_MAX_NS || f->goal == GOAL_MAX_MS)
            printf(" goal_max=%.0f", f->goal_value);
        printf(" %s\n", f->kv);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_ops [--quick] [--reps N]\n"
            "  --quick     small sizes and few repetitions, for CI smoke runs\n"
            "  --reps N    timed repetitions per figure (default 7, --quick 3)\n"
            "  -h, --help  show this help\n"
            "Every figure is the median of several repetitions in which ferry and its\n"
            "reference alternate; ratios > 1 mean ferry is faster. FERRY_DEBUG=fallback\n"
            "shows ops that fell back to another path.\n");
}

int main(int argc, char **argv)
{
    config cfg = {
        .quick = false,
        .reps = 7,
        .nsizes = 3,
        .mm_n = {256, 1024, 2048},
        .mm_sample_flops = 4e9,
        .rows = 4096,
        .cols = 4096,
        .stream_sample_bytes = 1e9,
        .tiny_iters = 200000,
        .peak_iters = 20000000,
    };
    int reps = 0; /* 0: the mode's default */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            cfg.quick = true;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            char *end;
            long r = strtol(argv[++i], &end, 10);
            if (*end || r < 1 || r > MAX_REPS) {
                fprintf(stderr, "bench_ops: --reps takes 1 .. %d\n", MAX_REPS);
                return 2;
            }
            reps = (int)r;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_ops: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (cfg.quick) {
        cfg.reps = 3;
        cfg.mm_n[0] = 64;
        cfg.mm_n[1] = 128;
        cfg.mm_n[2] = 256;
        cfg.mm_sample_flops = 2e8;
        cfg.rows = 1024;
        cfg.cols = 1024;
        cfg.stream_sample_bytes = 5e7;
        cfg.tiny_iters = 20000;
        cfg.peak_iters = 2000000;
    }
    if (reps)
        cfg.reps = reps;

    bench_calibration();
    /* ferry's own choices, made afresh in this run unless the caller named a cache. */
    char cache_dir[] = "/tmp/ferry-bench-cache-XXXXXX";
    bool own_cache = !getenv("FERRY_CPU_CACHE_DIR") && mkdtemp(cache_dir);
    if (own_cache)
        setenv("FERRY_CPU_CACHE_DIR", cache_dir, 1);

    char model[256];
    const char *omp_env = getenv("OMP_NUM_THREADS");
    bench_cpu_model(model, sizeof model);
    printf("bench_ops: ferry %s, %s sizes, median of %d repetitions (ferry and reference "
           "alternate)\n",
           ferry_version(), cfg.quick ? "quick" : "full", cfg.reps);
    const char *ob_env = getenv("OPENBLAS_CORETYPE");
    printf("CPU: %s, %ld online; OpenMP threads %d (OMP_NUM_THREADS=%s); "
           "OPENBLAS_CORETYPE=%s\n",
           model, sysconf(_SC_NPROCESSORS_ONLN), omp_get_max_threads(),
           omp_env ? omp_env : "unset", ob_env ? ob_env : "unset");
    fflush(stdout);

    peak_result peak = bench_peak(&cfg);
    bench_matmul(&cfg, &peak);
    /* Issue 12's sizes: float32 at 64 (the quick run's first size already) and float64
     * at 64, 256, 1024, 2048. */
    static const int64_t f32_small[] = {64}, f64_full[] = {64, 256, 1024, 2048},
                         f64_quick[] = {64, 256};
    if (!cfg.quick)
        bench_matmul_libs(&cfg, false, f32_small, 1);
    bench_matmul_libs(&cfg, true, cfg.quick ? f64_quick : f64_full, cfg.quick ? 2 : 4);
    bench_matmul_half(&cfg);
    bench_matmul_batched(&cfg);
    bench_elementwise(&cfg);
    bench_tiny(&cfg);

    print_results();
    print_gemm_choices(getenv("FERRY_CPU_CACHE_DIR"));
    if (own_cache) {
        char path[64];
        snprintf(path, sizeof path, "%s/cpu-gemm.txt", cache_dir);
        unlink(path);
        rmdir(cache_dir);
    }
    printf("BENCH cpu_model=\"%s\" cores=%ld omp_threads=%d quick=%d reps=%d peak_isa=%s",
           model, sysconf(_SC_NPROCESSORS_ONLN), omp_get_max_threads(), cfg.quick, cfg.reps,
           peak.isa ? peak.isa : "none");
#ifdef FERRY_BENCH_HAVE_BLIS
    printf(" blis_version=%s blis_arch_auto=%s", bli_info_get_version_str(),
           bli_arch_string(bli_arch_query_id()));
#endif
    printf(" failed=%d\n", nfailed);

    ferry_shutdown();
    return nfailed ? 1 : 0;
}

/* Which library runs a float32/float64 product: BLIS (statically linked, its best
 * configuration chosen in cpu_matmul.c), OpenBLAS (Debian's libopenblas0, loaded with
 * dlopen and RTLD_LOCAL so its BLAS symbols can never bind to BLIS's or the other way
 * round) or ferry's own packed kernels (cpu_pack_gemm.c, on CPUs with AVX2 or AVX-512).
 * A missing OpenBLAS is not an error. The choice is made per dtype and size class by a
 * short calibration on first use, cached on disk per CPU model and thread count;
 * FERRY_CPU_GEMM=blis|openblas|ferry|auto forces it. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpu_internal.h"

/* cblas.h's values, declared here: the header is not needed to call through dlsym. */
enum { CPU_CBLAS_ROW = 101, CPU_CBLAS_COL = 102, CPU_CBLAS_NOTRANS = 111, CPU_CBLAS_TRANS = 112 };
typedef void (*cpu_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                             const float *, int, float, float *, int);
typedef void (*cpu_dgemm_fn)(int, int, int, int, int, int, double, const double *, int,
                             const double *, int, double, double *, int);

static struct {
    pthread_once_t once;
    void *dl;
    cpu_sgemm_fn sgemm;
    cpu_dgemm_fn dgemm;
    void (*set_threads)(int);
    char *(*corename)(void);
    int threads; /* what set_threads was last told */
    pthread_mutex_t lock;
} ob = {PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL, NULL, 0, PTHREAD_MUTEX_INITIALIZER};

static void cpu_openblas_load(void)
{
    /* The OpenMP build first: it shares libgomp's worker pool with BLIS and ferry's own
     * loops. The pthread build keeps its own threads spinning after each call, and on a
     * small machine they and the OpenMP workers starve each other (10x slower products
     * measured when the two alternate). */
    static const char *const names[] = {
#ifdef FERRY_CPU_OPENBLAS_OPENMP
        FERRY_CPU_OPENBLAS_OPENMP,
#endif
        "libopenblas.so.0", "libopenblas.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !ob.dl; i++)
        ob.dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!ob.dl) {
        cpu_host->log(FERRY_LOG_DEBUG, "cpu", "OpenBLAS not found (%s): matmul uses BLIS",
                      dlerror());
        return;
    }
    ob.sgemm = (cpu_sgemm_fn)dlsym(ob.dl, "cblas_sgemm");
    ob.dgemm = (cpu_dgemm_fn)dlsym(ob.dl, "cblas_dgemm");
    ob.set_threads = (void (*)(int))dlsym(ob.dl, "openblas_set_num_threads");
    ob.corename = (char *(*)(void))dlsym(ob.dl, "openblas_get_corename");
    if (!ob.sgemm || !ob.dgemm || !ob.set_threads) {
        cpu_host->log(FERRY_LOG_DEBUG, "cpu",
                      "OpenBLAS lacks cblas_sgemm/cblas_dgemm/openblas_set_num_threads: "
                      "matmul uses BLIS");
        dlclose(ob.dl);
        ob.dl = NULL;
        ob.sgemm = NULL;
        ob.dgemm = NULL;
        return;
    }
    cpu_host->log(FERRY_LOG_DEBUG, "cpu", "OpenBLAS loaded (core %s)",
                  ob.corename ? ob.corename() : "unknown");
}

static bool cpu_openblas_ready(void)
{
    pthread_once(&ob.once, cpu_openblas_load);
    return ob.sgemm != NULL;
}

/* cblas takes 32-bit sizes; larger products stay with BLIS. */
static bool fits_int(int64_t v)
{
    return v >= 0 && v <= INT32_MAX;
}

/* C = A B through cblas. The strides are ones BLIS accepts (cpu_blis_strides): unit along
 * rows or columns of each operand. C's unit dim picks the layout; each operand is then
 * read as stored or as its transpose. False when cblas cannot express it. */
static bool cpu_openblas_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a,
                              int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb,
                              void *c, int64_t rsc, int64_t csc, int threads, bool acc)
{
    bool row = csc == 1;
    int layout = row ? CPU_CBLAS_ROW : CPU_CBLAS_COL;
    int64_t ldc = row ? rsc : csc;
    /* In row-major terms an operand with unit column stride is "as stored". */
    bool a_plain = row ? csa == 1 : rsa == 1, b_plain = row ? csb == 1 : rsb == 1;
    int64_t lda = row ? (a_plain ? rsa : csa) : (a_plain ? csa : rsa);
    int64_t ldb = row ? (b_plain ? rsb : csb) : (b_plain ? csb : rsb);
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) ||
        !fits_int(ldc) || (!row && rsc != 1))
        return false;
    /* cblas's own checks want a leading dimension of at least 1. */
    lda = lda < 1 ? 1 : lda;
    ldb = ldb < 1 ? 1 : ldb;
    ldc = ldc < 1 ? 1 : ldc;
    pthread_mutex_lock(&ob.lock);
    if (ob.threads != threads) {
        ob.set_threads(threads);
        ob.threads = threads;
    }
    pthread_mutex_unlock(&ob.lock);
    int ta = a_plain ? CPU_CBLAS_NOTRANS : CPU_CBLAS_TRANS;
    int tb = b_plain ? CPU_CBLAS_NOTRANS : CPU_CBLAS_TRANS;
    if (dbl)
        ob.dgemm(layout, ta, tb, (int)m, (int)n, (int)k, 1.0, a, (int)lda, b, (int)ldb,
                 acc ? 1.0 : 0.0, c, (int)ldc);
    else
        ob.sgemm(layout, ta, tb, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb,
                 acc ? 1.0f : 0.0f, c, (int)ldc);
    return true;
}

/* ---- the choice ---------------------------------------------------------------------------- */

/* Size classes by multiply-adds. The first three are calibrated on one cube each when
 * the type is first multiplied. The two largest, from 1024^3 and from 2048^3, are decided
 * by timing the program's own first products of the class (CPU_GEMM_TRIALS per library,
 * alternating), since no cube small enough to time at start-up stands for them: on the
 * 2-core Zen 5 this was written on, with OpenBLAS's AVX-512 kernels, the two libraries
 * tied at 512^3, OpenBLAS was 2% faster at 1024^3 (a choice that noise can flip) and
 * 6-12% faster at 2048^3; timing both at 1024^3 alone (float32 and float64) would cost
 * about 0.3 s on the 2-core Zen 3 of BASELINES.md. */
#define CPU_GEMM_CLASSES 5
#define CPU_GEMM_CALIBRATED 3 /* the classes below this are calibrated, the rest tried */
static const int64_t class_limit[CPU_GEMM_CLASSES - 1] = {
    (int64_t)128 * 128 * 128, (int64_t)512 * 512 * 512, (int64_t)1024 * 1024 * 1024,
    (int64_t)2048 * 2048 * 2048};
/* The 512^3 cube is most of the calibration's cost (both libraries, float32 and float64),
 * which must stay well under 300 ms on a 2-core machine. */
static const int64_t class_size[CPU_GEMM_CALIBRATED] = {96, 256, 512};
#define CPU_GEMM_TRIALS 3

/* The providers, CHOICE_BLIS .. CHOICE_FERRY (index: choice - CHOICE_BLIS); CHOICE_TRIAL:
 * a tried class, while its trials run. */
typedef enum {
    CHOICE_UNSET = 0,
    CHOICE_BLIS,
    CHOICE_OPENBLAS,
    CHOICE_FERRY,
    CHOICE_TRIAL
} cpu_gemm_choice;
#define CPU_GEMM_PROVIDERS 3
static const char *const provider_name[CPU_GEMM_PROVIDERS] = {"blis", "openblas", "ferry"};

typedef struct cpu_gemm_trials {
    int runs[CPU_GEMM_PROVIDERS];    /* timed products per provider */
    double rate[CPU_GEMM_PROVIDERS]; /* the best multiply-adds per ms seen */
    bool busy;                       /* one is running: products meanwhile are not timed */
} cpu_gemm_trials;

static struct {
    pthread_mutex_t lock;
    int forced; /* 0 auto, else a cpu_gemm_choice */
    bool env_read;
    cpu_gemm_choice choice[2][CPU_GEMM_CLASSES]; /* [dbl][class] */
    bool usable[2][CPU_GEMM_PROVIDERS];           /* loaded, and right in the calibration */
    bool cacheable[2]; /* the calibration was complete (or read from the cache) */
    cpu_gemm_trials trials[2][CPU_GEMM_CLASSES - CPU_GEMM_CALIBRATED];
    double calib_ms[2];
    char key[2][512]; /* the cache key, once calibrated */
} sel = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *choice_name(cpu_gemm_choice c)
{
    return c == CHOICE_TRIAL ? "trial"
           : c >= CHOICE_BLIS && c <= CHOICE_FERRY ? provider_name[c - CHOICE_BLIS]
                                                    : "blis";
}

/* Whether the provider is there at all on this machine. */
static bool provider_loaded(int i)
{
    return i == 0 || (i == 1 && cpu_openblas_ready()) || (i == 2 && cpu_pack_gemm_isa());
}

/* Runs the product on provider i; false when it could not take it (nothing done). */
static bool provider_run(int i, bool dbl, int64_t m, int64_t n, int64_t k, const void *a,
                         int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb,
                         void *c, int64_t rsc, int64_t csc, int threads, bool acc)
{
    if (i == 1)
        return cpu_openblas_gemm(dbl, m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, csc, threads,
                                 acc);
    if (i == 2)
        return cpu_pack_gemm(dbl, m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, csc, threads,
                             acc);
    cpu_blis_gemm(dbl, m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, csc, threads, acc);
    return true;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The calibration cache: FERRY_CPU_CACHE_DIR, else $XDG_CACHE_HOME/ferry, else
 * ~/.cache/ferry (as the OpenCL program cache). */
static bool cache_path(char *buf, size_t cap)
{
    const char *dir = getenv("FERRY_CPU_CACHE_DIR");
    if (dir && *dir == '/')
        return snprintf(buf, cap, "%s/cpu-gemm.txt", dir) < (int)cap;
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg == '/')
        return snprintf(buf, cap, "%s/ferry/cpu-gemm.txt", xdg) < (int)cap;
    const char *home = getenv("HOME");
    if (home && *home == '/')
        return snprintf(buf, cap, "%s/.cache/ferry/cpu-gemm.txt", home) < (int)cap;
    return false;
}

/* What the calibration depends on: the CPU, the thread count and the providers. */
static void cache_key(bool dbl, int threads, char *buf, size_t cap)
{
    char model[128] = "unknown", line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            const char *colon = strchr(line, ':');
            if (colon) {
                snprintf(model, sizeof model, "%s", colon + 1 + (colon[1] == ' '));
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
    }
    if (f)
        fclose(f);
    for (char *p = model; *p; p++)
        if (*p == ' ' || *p == '|')
            *p = '_';
    const char *core = ob.corename ? ob.corename() : "none", *own = cpu_pack_gemm_isa();
    snprintf(buf, cap, "v4|%s|threads=%d|blis=%s|openblas=%s|ferry=%s|%s", model, threads,
             cpu_blis_config_names(), core ? core : "none", own ? own : "none",
             dbl ? "f64" : "f32");
}

/* The last well-formed line for `key`: the trials append one once they have decided. */
static bool cache_read(const char *key, cpu_gemm_choice *out)
{
    char path[1024], line[1024];
    if (!cache_path(path, sizeof path))
        return false;
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0 || line[klen] != ' ')
            continue;
        char c[CPU_GEMM_CLASSES][16];
        if (sscanf(line + klen, " %15s %15s %15s %15s %15s", c[0], c[1], c[2], c[3], c[4]) !=
            CPU_GEMM_CLASSES)
            continue;
        cpu_gemm_choice got[CPU_GEMM_CLASSES];
        bool ok = true;
        for (int i = 0; i < CPU_GEMM_CLASSES; i++) {
            got[i] = i >= CPU_GEMM_CALIBRATED && !strcmp(c[i], "trial") ? CHOICE_TRIAL
                                                                         : CHOICE_UNSET;
            for (int j = 0; j < CPU_GEMM_PROVIDERS; j++)
                if (!strcmp(c[i], provider_name[j]))
                    got[i] = (cpu_gemm_choice)(CHOICE_BLIS + j);
            ok = ok && got[i] != CHOICE_UNSET; /* a corrupt line is passed over */
        }
        if (ok) {
            memcpy(out, got, sizeof got);
            found = true;
        }
    }
    fclose(f);
    return found;
}

static void cache_write(const char *key, const cpu_gemm_choice *c)
{
    char path[1024];
    if (!cache_path(path, sizeof path))
        return;
    /* mkdir -p of the folder; failures only cost a calibration next time. */
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                *p = '/';
                return;
            }
            *p = '/';
        }
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "%s", key);
    for (int i = 0; i < CPU_GEMM_CLASSES; i++)
        fprintf(f, " %s", choice_name(c[i]));
    fputc('\n', f);
    fclose(f);
}

/* Best of CPU_GEMM_TIMED runs of each usable provider after one warm-up each, the
 * providers alternating so that a burst of load from another process slows all of them,
 * not one. Stops early (keeping what it has, the warm-ups if nothing else) past
 * `deadline`. t[i] stays INFINITY for a provider not timed (or that could not run). */
#define CPU_GEMM_TIMED 2
static void time_all(bool dbl, int64_t n, const void *a, const void *b, void *const *c,
                     const bool *usable, int threads, double deadline, double *t)
{
    for (int i = 0; i < CPU_GEMM_PROVIDERS; i++)
        t[i] = INFINITY;
    for (int r = 0; r <= CPU_GEMM_TIMED; r++) {
        for (int i = 0; i < CPU_GEMM_PROVIDERS; i++) {
            if (!usable[i])
                continue;
            double t0 = now_ms();
            bool ran = provider_run(i, dbl, n, n, n, a, n, 1, b, n, 1, c[i], n, 1, threads,
                                    false);
            double x = now_ms() - t0;
            if (ran && (r == 0 || x < t[i]))
                t[i] = x;
        }
        if (now_ms() > deadline)
            break;
    }
}

/* The calibration's wall-clock budget per float type. On the 2-core AMD EPYC this was
 * written on, shared with other processes, it took 44-58 ms (float32) and 59 ms
 * (float64) when the load was light; when other processes kept every core busy, every
 * barrier inside a 2-thread product could wait a scheduler time slice and the same
 * products took 10-100x longer. Such timings say more about the load than about the
 * libraries, so a calibration cut short by the budget is used but not cached (it then
 * costs 125-225 ms, where it had taken up to 1.5 s). */
#define CPU_GEMM_CALIB_BUDGET_MS 120.0

/* Measures every usable provider on one cube per calibrated class, leaving the larger
 * classes to their trials. Each result is checked against BLIS's, since some OpenBLAS
 * builds compute wrong results on CPUs they misdetect: a provider that is wrong is left
 * out, and the tried classes then take the largest calibrated class's choice without
 * trials (so a later process, reading the cache, never runs it). False when the budget
 * cut the calibration short (the classes not measured take the last measured class's
 * choice). Lock held. */
static bool calibrate(bool dbl, int threads, bool *usable, cpu_gemm_choice *out)
{
    double deadline = now_ms() + CPU_GEMM_CALIB_BUDGET_MS;
    bool complete = true, wrong = false;
    int64_t nmax = class_size[CPU_GEMM_CALIBRATED - 1];
    size_t es = dbl ? sizeof(double) : sizeof(float);
    size_t bytes = (size_t)(nmax * nmax) * es;
    char *a = malloc(bytes), *b = malloc(bytes);
    void *c[CPU_GEMM_PROVIDERS] = {NULL};
    bool ok = a && b;
    for (int i = 0; i < CPU_GEMM_PROVIDERS; i++) {
        c[i] = usable[i] ? malloc(bytes) : NULL;
        ok = ok && (c[i] || !usable[i]);
    }
    for (int i = 0; i < CPU_GEMM_CLASSES; i++)
        out[i] = i >= CPU_GEMM_CALIBRATED ? CHOICE_TRIAL : CHOICE_BLIS;
    if (!ok)
        goto done;
    for (int64_t i = 0; i < nmax * nmax; i++) {
        /* Small integers make every result exact, so any difference is a wrong result. */
        double va = (double)(i % 7) - 3, vb = (double)(i % 5) - 2;
        if (dbl) {
            ((double *)a)[i] = va;
            ((double *)b)[i] = vb;
        } else {
            ((float *)a)[i] = (float)va;
            ((float *)b)[i] = (float)vb;
        }
    }
    for (int i = 0; i < CPU_GEMM_CALIBRATED; i++) {
        int64_t n = class_size[i];
        if (i > 0 && now_ms() > deadline) {
            cpu_host->log(FERRY_LOG_DEBUG, "cpu",
                          "matmul %s calibration over its %.0f ms budget (a loaded machine?): "
                          "products from %lld^3 take the %lld^3 choice, and nothing is cached",
                          dbl ? "float64" : "float32", CPU_GEMM_CALIB_BUDGET_MS, (long long)n,
                          (long long)class_size[i - 1]);
            for (int j = i; j < CPU_GEMM_CALIBRATED; j++)
                out[j] = out[i - 1];
            complete = false;
            break;
        }
        double t[CPU_GEMM_PROVIDERS];
        time_all(dbl, n, a, b, c, usable, threads, deadline, t);
        int best = 0;
        for (int j = 1; j < CPU_GEMM_PROVIDERS; j++) {
            if (!usable[j] || t[j] == INFINITY)
                continue;
            if (memcmp(c[0], c[j], (size_t)(n * n) * es) != 0) {
                cpu_host->log(FERRY_LOG_WARN, "cpu",
                              "%s (%s) computed a wrong %s product of %lld^3: matmul leaves "
                              "it out",
                              j == 1 ? "OpenBLAS" : "ferry's own kernel",
                              j == 1 ? (ob.corename ? ob.corename() : "unknown")
                                     : cpu_pack_gemm_isa(),
                              dbl ? "float64" : "float32", (long long)n);
                usable[j] = false;
                wrong = true;
                continue;
            }
            if (t[j] < t[best])
                best = j;
        }
        out[i] = (cpu_gemm_choice)(CHOICE_BLIS + best);
        cpu_host->log(FERRY_LOG_DEBUG, "cpu",
                      "matmul %s %lld^3 on %d threads: BLIS %.3f ms, OpenBLAS %.3f ms, "
                      "ferry %.3f ms: %s",
                      dbl ? "float64" : "float32", (long long)n, threads, t[0], t[1], t[2],
                      choice_name(out[i]));
    }
    if (wrong)
        for (int i = CPU_GEMM_CALIBRATED; i < CPU_GEMM_CLASSES; i++)
            out[i] = out[CPU_GEMM_CALIBRATED - 1];
done:
    free(a);
    free(b);
    for (int i = 0; i < CPU_GEMM_PROVIDERS; i++)
        free(c[i]);
    return complete;
}

static void read_env(void)
{
    const char *env = getenv("FERRY_CPU_GEMM");
    sel.forced = 0;
    for (int i = 0; env && i < CPU_GEMM_PROVIDERS; i++)
        if (!strcmp(env, provider_name[i]))
            sel.forced = CHOICE_BLIS + i;
    if (!sel.forced && env && *env && strcmp(env, "auto") != 0)
        cpu_host->log(FERRY_LOG_WARN, "cpu",
                      "FERRY_CPU_GEMM=%s is not blis, openblas, ferry or auto: using auto", env);
    if (sel.forced == CHOICE_OPENBLAS && !cpu_openblas_ready()) {
        cpu_host->log(FERRY_LOG_WARN, "cpu",
                      "FERRY_CPU_GEMM=openblas, but OpenBLAS could not be loaded: using BLIS");
        sel.forced = CHOICE_BLIS;
    }
    if (sel.forced == CHOICE_FERRY && !cpu_pack_gemm_isa()) {
        cpu_host->log(FERRY_LOG_WARN, "cpu",
                      "FERRY_CPU_GEMM=ferry, but ferry's own kernels are off (they need AVX2 "
                      "and FMA or AVX-512, and FERRY_CPU_SMALL_GEMM=base turns them off): "
                      "using BLIS");
        sel.forced = CHOICE_BLIS;
    }
    int loaded = 0;
    for (int i = 0; i < CPU_GEMM_PROVIDERS; i++) {
        sel.usable[0][i] = sel.usable[1][i] = provider_loaded(i);
        loaded += sel.usable[0][i];
    }
    /* With BLIS alone there is nothing to calibrate. */
    if (!sel.forced && loaded < 2)
        sel.forced = CHOICE_BLIS;
    sel.env_read = true;
}

/* The provider a trial of `t` runs next: the usable one with the fewest runs. */
static cpu_gemm_choice next_trial(const cpu_gemm_trials *t, const bool *usable)
{
    int next = 0;
    for (int i = 1; i < CPU_GEMM_PROVIDERS; i++)
        if (usable[i] && t->runs[i] < t->runs[next])
            next = i;
    return (cpu_gemm_choice)(CHOICE_BLIS + next);
}

/* The provider for a product of `mnk` multiply-adds on `threads` threads; *trial is the
 * class when it is one of that class's trials, to be reported to trial_done, else -1. */
static cpu_gemm_choice pick(bool dbl, int64_t mnk, int threads, int *trial)
{
    int cls = 0;
    while (cls < CPU_GEMM_CLASSES - 1 && mnk >= class_limit[cls])
        cls++;
    *trial = -1;
    pthread_mutex_lock(&sel.lock);
    if (!sel.env_read)
        read_env();
    cpu_gemm_choice c = (cpu_gemm_choice)sel.forced;
    if (!c) {
        cpu_gemm_choice *row = sel.choice[dbl];
        if (row[0] == CHOICE_UNSET) {
            int max_threads = cpu_max_threads();
            cache_key(dbl, max_threads, sel.key[dbl], sizeof sel.key[dbl]);
            sel.cacheable[dbl] = cache_read(sel.key[dbl], row);
            if (!sel.cacheable[dbl]) {
                double t0 = now_ms();
                sel.cacheable[dbl] = calibrate(dbl, max_threads, sel.usable[dbl], row);
                sel.calib_ms[dbl] = now_ms() - t0;
                if (sel.cacheable[dbl])
                    cache_write(sel.key[dbl], row);
                cpu_host->log(FERRY_LOG_DEBUG, "cpu", "matmul %s calibration: %.0f ms",
                              dbl ? "float64" : "float32", sel.calib_ms[dbl]);
            }
        }
        c = row[cls];
        if (c == CHOICE_TRIAL) {
            cpu_gemm_trials *t = &sel.trials[dbl][cls - CPU_GEMM_CALIBRATED];
            /* In turn, one at a time, and only with every thread: a product sharing the
             * cores with another, or given fewer threads, would time the load. */
            if (!t->busy && threads == cpu_max_threads()) {
                c = next_trial(t, sel.usable[dbl]);
                t->busy = true;
                *trial = cls;
            } else {
                /* The nearest smaller class that is decided (the calibrated ones are). */
                int below = cls - 1;
                while (row[below] == CHOICE_TRIAL)
                    below--;
                c = row[below];
            }
        }
    }
    pthread_mutex_unlock(&sel.lock);
    return c;
}

/* A trial product of class `cls` and `mnk` multiply-adds took `ms` on `c` (ran: false
 * when that provider could not take it and BLIS ran instead). After CPU_GEMM_TRIALS
 * each, the provider with the best rate takes the class, and the cache gets a line with
 * it. */
static void trial_done(bool dbl, int cls, cpu_gemm_choice c, int64_t mnk, double ms, bool ran)
{
    pthread_mutex_lock(&sel.lock);
    cpu_gemm_trials *t = &sel.trials[dbl][cls - CPU_GEMM_CALIBRATED];
    t->busy = false;
    cpu_gemm_choice *row = sel.choice[dbl];
    const bool *usable = sel.usable[dbl];
    if (ran && row[cls] == CHOICE_TRIAL && ms > 0) {
        int o = c - CHOICE_BLIS;
        double rate = (double)mnk / ms;
        if (rate > t->rate[o])
            t->rate[o] = rate;
        t->runs[o]++;
        bool done = true;
        int best = 0;
        for (int i = 0; i < CPU_GEMM_PROVIDERS; i++) {
            done = done && (!usable[i] || t->runs[i] >= CPU_GEMM_TRIALS);
            if (usable[i] && t->rate[i] > t->rate[best])
                best = i;
        }
        if (done) {
            row[cls] = (cpu_gemm_choice)(CHOICE_BLIS + best);
            cpu_host->log(FERRY_LOG_DEBUG, "cpu",
                          "matmul %s from %.0f^3, best of %d products each: "
                          "BLIS %.1f, OpenBLAS %.1f, ferry %.1f GFLOP/s: %s",
                          dbl ? "float64" : "float32", cbrt((double)class_limit[cls - 1]),
                          CPU_GEMM_TRIALS, 2e-6 * t->rate[0], 2e-6 * t->rate[1],
                          2e-6 * t->rate[2], choice_name(row[cls]));
            if (sel.cacheable[dbl])
                cache_write(sel.key[dbl], row);
        }
    }
    pthread_mutex_unlock(&sel.lock);
}

void cpu_gemm(bool dbl, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
              const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc, int64_t csc,
              int threads, bool acc)
{
    int64_t mnk;
    if (__builtin_mul_overflow(m, n, &mnk) || __builtin_mul_overflow(mnk, k, &mnk))
        mnk = INT64_MAX;
    int trial;
    cpu_gemm_choice lib = pick(dbl, mnk, threads, &trial);
    double t0 = trial >= 0 ? now_ms() : 0;
    bool ran = provider_run(lib - CHOICE_BLIS, dbl, m, n, k, a, rsa, csa, b, rsb, csb, c, rsc,
                            csc, threads, acc);
    if (!ran)
        cpu_blis_gemm(dbl, m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, csc, threads, acc);
    if (trial >= 0)
        trial_done(dbl, trial, lib, mnk, now_ms() - t0, ran);
}

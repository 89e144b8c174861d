/* Foundation benchmarks of the core: device round trips, same-device to(), small-tensor
 * creation and dtype casts, each compared with memcpy measured in the same run (ratios
 * travel between machines; absolute times on a shared VM do not). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "bench_util.h"

#define MIB ((size_t)1 << 20)
#define MAX_FIGURES 24

typedef struct config {
    bool quick;
    const char *only;      /* letters of the sections to run; NULL: all */
    int reps;              /* repetitions; every figure is their median */
    size_t roundtrip_bytes; /* (a) */
    int64_t same_big_numel; /* (b) */
    long small_iters;      /* (b), (c): calls per repetition */
    int64_t cast_numel;    /* (d) */
} config;

/* One row of the table and one machine-readable line. */
typedef struct figure {
    char id[48];       /* machine-readable name, "a.roundtrip_cpu_sim" */
    char label[64];    /* table label */
    char ferry[32];    /* ferry's figure, with unit */
    char base[32];     /* the baseline's, or "" */
    double ratio;      /* < 0: none */
    char note[96];
    char kv[256];      /* extra key=value pairs for the BENCH line */
} figure;

static figure figures[MAX_FIGURES];
static int nfigures;

static figure *add_figure(const char *id, const char *label)
{
    if (nfigures == MAX_FIGURES) {
        fprintf(stderr, "bench_core: too many figures for the table\n");
        exit(1);
    }
    figure *f = &figures[nfigures++];
    memset(f, 0, sizeof *f);
    snprintf(f->id, sizeof f->id, "%s", id);
    snprintf(f->label, sizeof f->label, "%s", label);
    f->ratio = -1.0;
    return f;
}

/* A refused ferry call ends the run: a figure measured around a failure would lie. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_core: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", ferry_last_error());
    exit(1);
}

static uint64_t backend_allocs(const char *device)
{
    ferry_memory_stats s;
    if (ferry_memory_stats_get(device, &s) != FERRY_OK)
        return 0;
    return s.backend_allocs;
}

static ferry_tensor *filled_f32(int64_t numel)
{
    ferry_tensor *t = ferry_empty(FERRY_FLOAT32, 1, &numel, "cpu");
    if (!t)
        die("ferry_empty(float32, %lld, cpu)", (long long)numel);
    float *p = ferry_tensor_host_data(t);
    if (!p)
        die("ferry_tensor_host_data of a new cpu tensor");
    /* Finite values of both signs inside float16's range, so no cast takes an
     * infinity or NaN path that a real workload would not. */
    for (int64_t i = 0; i < numel; i++)
        p[i] = (float)(i % 2001 - 1000) * 0.125f;
    return t;
}

/* ------------------------------------------------------------------------ */
/* (a) cpu -> sim:0 -> cpu round trip versus memcpy of the same bytes       */
/* ------------------------------------------------------------------------ */

static void bench_roundtrip(const config *cfg)
{
    char label[64];
    snprintf(label, sizeof label, "a. cpu->sim:0->cpu, %zu MiB", cfg->roundtrip_bytes / MIB);
    figure *f = add_figure("a.roundtrip_cpu_sim", label);

    const char *why = ferry_backend_status("sim");
    if (why || ferry_device_count("sim") < 1) {
        snprintf(f->ferry, sizeof f->ferry, "skipped");
        snprintf(f->note, sizeof f->note, "sim unusable");
        snprintf(f->kv, sizeof f->kv, "skipped=\"%s\"", why ? why : "sim has no device");
        printf("(a) skipped: %s\n", why ? why : "sim has no device");
        return;
    }

    int64_t numel = (int64_t)(cfg->roundtrip_bytes / sizeof(float));
    ferry_tensor *src = filled_f32(numel);
    const void *src_host = ferry_tensor_host_data(src);
    size_t nbytes = ferry_tensor_nbytes(src);
    void *mid = bench_touched(nbytes), *dst = bench_touched(nbytes);
    double *t_ferry = calloc((size_t)cfg->reps, sizeof *t_ferry);
    double *t_copy = calloc((size_t)cfg->reps, sizeof *t_copy);
    if (!t_ferry || !t_copy)
        die("out of memory");

    /* Warm-up: fills the caching allocator's free lists on both devices, and checks
     * that the data survives the trip (a fast wrong copy is no result). */
    ferry_tensor *dev = ferry_tensor_to(src, "sim:0");
    if (!dev)
        die("ferry_tensor_to(cpu -> sim:0) of %zu MiB", nbytes / MIB);
    ferry_tensor *back = ferry_tensor_to(dev, "cpu");
    if (!back)
        die("ferry_tensor_to(sim:0 -> cpu) of %zu MiB", nbytes / MIB);
    const void *back_host = ferry_tensor_host_data(back);
    if (!back_host)
        die("ferry_tensor_host_data of the round-tripped tensor");
    if (memcmp(back_host, src_host, nbytes) != 0) {
        fprintf(stderr, "bench_core: cpu -> sim:0 -> cpu changed the data\n");
        exit(1);
    }
    ferry_tensor_release(back);
    ferry_tensor_release(dev);

    uint64_t allocs0 = backend_allocs("cpu") + backend_allocs("sim:0");
    /* Alternating the two measurements spreads the VM's slow phases over both. */
    for (int r = 0; r < cfg->reps; r++) {
        double t0 = bench_now_ns();
        memcpy(mid, src_host, nbytes);
        bench_escape(mid);
        memcpy(dst, mid, nbytes);
        bench_escape(dst);
        double t1 = bench_now_ns();
        dev = ferry_tensor_to(src, "sim:0");
        if (!dev)
            die("ferry_tensor_to(cpu -> sim:0)");
        back = ferry_tensor_to(dev, "cpu");
        if (!back)
            die("ferry_tensor_to(sim:0 -> cpu)");
        ferry_tensor_release(dev);
        ferry_tensor_release(back);
        double t2 = bench_now_ns();
        t_copy[r] = t1 - t0;
        t_ferry[r] = t2 - t1;
    }
    uint64_t allocs = backend_allocs("cpu") + backend_allocs("sim:0") - allocs0;

    double moved = 2.0 * (double)nbytes;
    double ns_ferry = bench_median(t_ferry, cfg->reps), ns_copy = bench_median(t_copy, cfg->reps);
    snprintf(f->ferry, sizeof f->ferry, "%.2f GB/s", moved / ns_ferry);
    snprintf(f->base, sizeof f->base, "%.2f GB/s", moved / ns_copy);
    f->ratio = ns_copy / ns_ferry;
    snprintf(f->note, sizeof f->note, "goal >= 0.8; 2 x %zu MiB moved; %llu backend allocs",
             nbytes / MIB, (unsigned long long)allocs);
    snprintf(f->kv, sizeof f->kv,
             "bytes_moved=%.0f ferry_ns=%.0f memcpy_ns=%.0f ferry_gbps=%.3f memcpy_gbps=%.3f "
             "backend_allocs_timed=%llu goal=0.8",
             moved, ns_ferry, ns_copy, moved / ns_ferry, moved / ns_copy,
             (unsigned long long)allocs);

    free(t_ferry);
    free(t_copy);
    free(mid);
    free(dst);
    ferry_tensor_release(src);
    /* The next figures should not pay for (or benefit from) 512 MiB of cached blocks. */
    ferry_empty_cache("sim:0");
    ferry_empty_cache("cpu");
}

/* ------------------------------------------------------------------------ */
/* (b) ferry_tensor_to onto the device a tensor is already on: O(1)         */
/* ------------------------------------------------------------------------ */

static double same_device_ns(const config *cfg, ferry_tensor *x)
{
    double *per = calloc((size_t)cfg->reps, sizeof *per);
    if (!per)
        die("out of memory");
    for (int r = -1; r < cfg->reps; r++) { /* r == -1 warms up */
        double t0 = bench_now_ns();
        for (long i = 0; i < cfg->small_iters; i++) {
            ferry_tensor *y = ferry_tensor_to(x, "cpu");
            if (y != x) {
                if (!y)
                    die("ferry_tensor_to(cpu -> cpu)");
                fprintf(stderr, "bench_core: ferry_tensor_to(cpu -> cpu) returned a new "
                                "tensor, not the tensor itself\n");
                exit(1);
            }
            ferry_tensor_release(y);
        }
        if (r >= 0)
            per[r] = (bench_now_ns() - t0) / (double)cfg->small_iters;
    }
    double m = bench_median(per, cfg->reps);
    free(per);
    return m;
}

static void bench_same_device(const config *cfg)
{
    int64_t one = 1, big = cfg->same_big_numel;
    ferry_tensor *small_t = ferry_empty(FERRY_FLOAT32, 1, &one, "cpu");
    ferry_tensor *big_t = ferry_empty(FERRY_FLOAT32, 1, &big, "cpu");
    if (!small_t || !big_t)
        die("ferry_empty for the same-device figure");

    double ns_small = same_device_ns(cfg, small_t);
    double ns_big = same_device_ns(cfg, big_t);

    figure *f = add_figure("b.to_same_device_1", "b. to(cpu -> cpu), 1 element");
    snprintf(f->ferry, sizeof f->ferry, "%.1f ns/call", ns_small);
    snprintf(f->kv, sizeof f->kv, "numel=1 ns_per_call=%.2f", ns_small);

    char label[64];
    snprintf(label, sizeof label, "b. to(cpu -> cpu), %lldM elements", (long long)(big >> 20));
    f = add_figure("b.to_same_device_big", label);
    snprintf(f->ferry, sizeof f->ferry, "%.1f ns/call", ns_big);
    f->ratio = ns_big / ns_small;
    snprintf(f->note, sizeof f->note, "ratio = big / 1 element; O(1) means about 1");
    snprintf(f->kv, sizeof f->kv, "numel=%lld ns_per_call=%.2f ratio_vs_1=%.3f", (long long)big,
             ns_big, ns_big / ns_small);

    ferry_tensor_release(small_t);
    ferry_tensor_release(big_t);
}

/* ------------------------------------------------------------------------ */
/* (c) create + release of a 1-element tensor                               */
/* ------------------------------------------------------------------------ */

static void bench_create(const config *cfg)
{
    int64_t one = 1;
    float value = 1.0f;
    double *per = calloc((size_t)cfg->reps, sizeof *per);
    if (!per)
        die("out of memory");

    for (int which = 0; which < 2; which++) {
        for (int r = -1; r < cfg->reps; r++) {
            double t0 = bench_now_ns();
            for (long i = 0; i < cfg->small_iters; i++) {
                ferry_tensor *t = which == 0
                                      ? ferry_empty(FERRY_FLOAT32, 1, &one, "cpu")
                                      : ferry_tensor_from_data(&value, FERRY_FLOAT32, 1, &one,
                                                               "cpu");
                if (!t)
                    die("%s of 1 element", which == 0 ? "ferry_empty" : "ferry_tensor_from_data");
                ferry_tensor_release(t);
            }
            if (r >= 0)
                per[r] = (bench_now_ns() - t0) / (double)cfg->small_iters;
        }
        double ns = bench_median(per, cfg->reps);
        figure *f = which == 0
                        ? add_figure("c.empty_release_1", "c. ferry_empty + release, 1 elem")
                        : add_figure("c.from_data_release_1", "c. from_data + release, 1 elem");
        snprintf(f->ferry, sizeof f->ferry, "%.1f ns/op", ns);
        snprintf(f->kv, sizeof f->kv, "device=cpu ns_per_op=%.2f", ns);
    }
    free(per);
}

/* ------------------------------------------------------------------------ */
/* (f) what one call of a 1-element op costs (issue 12: add_out < 150 ns,   */
/*     allocating add < 300 ns)                                             */
/* ------------------------------------------------------------------------ */

static void bench_overhead(const config *cfg)
{
    int64_t one = 1;
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 1, &one, "cpu");
    ferry_tensor *o = ferry_empty(FERRY_FLOAT32, 1, &one, "cpu");
    double *per_out = calloc((size_t)cfg->reps, sizeof *per_out);
    double *per_add = calloc((size_t)cfg->reps, sizeof *per_add);
    if (!a || !o || !per_out || !per_add)
        die("1-element tensors for the overhead loops");
    for (int r = -1; r < cfg->reps; r++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < cfg->small_iters; i++)
            if (ferry_add_out(o, a, a) != FERRY_OK)
                die("ferry_add_out of one element");
        double t1 = bench_now_ns();
        for (long i = 0; i < cfg->small_iters; i++) {
            ferry_tensor *r1 = ferry_add(a, a);
            if (!r1)
                die("ferry_add of one element");
            ferry_tensor_release(r1);
        }
        double t2 = bench_now_ns();
        if (r >= 0) {
            per_out[r] = (t1 - t0) / (double)cfg->small_iters;
            per_add[r] = (t2 - t1) / (double)cfg->small_iters;
        }
    }
    float got = 0.0f;
    if (ferry_tensor_copy_to_host(o, &got, sizeof got) != FERRY_OK || got != 2.0f)
        die("ferry_add_out of 1 + 1 gave %g", (double)got);
    double ns_out = bench_median(per_out, cfg->reps), ns_add = bench_median(per_add, cfg->reps);
    figure *f = add_figure("f.add_out_1", "f. add_out, 1 elem (cpu)");
    snprintf(f->ferry, sizeof f->ferry, "%.1f ns/call", ns_out);
    snprintf(f->note, sizeof f->note, "goal < 150 ns (%s)", ns_out < 150.0 ? "met" : "not met");
    snprintf(f->kv, sizeof f->kv, "device=cpu ns_per_call=%.2f goal_ns=150", ns_out);
    f = add_figure("f.add_1", "f. add + release, 1 elem (cpu)");
    snprintf(f->ferry, sizeof f->ferry, "%.1f ns/call", ns_add);
    snprintf(f->note, sizeof f->note, "goal < 300 ns (%s)", ns_add < 300.0 ? "met" : "not met");
    snprintf(f->kv, sizeof f->kv, "device=cpu ns_per_call=%.2f goal_ns=300", ns_add);
    free(per_out);
    free(per_add);
    ferry_tensor_release(a);
    ferry_tensor_release(o);
}

/* ------------------------------------------------------------------------ */
/* (d) dtype casts versus memcpy of the same bytes read + written           */
/* ------------------------------------------------------------------------ */

static void bench_cast_one(const config *cfg, ferry_tensor *src, ferry_dtype to, void *a, void *b)
{
    ferry_dtype from = ferry_tensor_dtype(src);
    int64_t numel = ferry_tensor_numel(src);
    double total = (double)numel * (double)(ferry_dtype_size(from) + ferry_dtype_size(to));
    /* memcpy of n bytes reads n and writes n, so half the cast's traffic each way. */
    size_t copy_bytes = (size_t)(total / 2);
    double *t_cast = calloc((size_t)cfg->reps, sizeof *t_cast);
    double *t_copy = calloc((size_t)cfg->reps, sizeof *t_copy);
    if (!t_cast || !t_copy)
        die("out of memory");

    for (int r = -1; r < cfg->reps; r++) {
        double t0 = bench_now_ns();
        memcpy(b, a, copy_bytes);
        bench_escape(b);
        double t1 = bench_now_ns();
        ferry_tensor *y = ferry_tensor_to_dtype(src, to);
        if (!y)
            die("ferry_tensor_to_dtype(%s -> %s)", ferry_dtype_name(from), ferry_dtype_name(to));
        ferry_tensor_release(y);
        double t2 = bench_now_ns();
        if (r >= 0) {
            t_copy[r] = t1 - t0;
            t_cast[r] = t2 - t1;
        }
    }
    double ns_cast = bench_median(t_cast, cfg->reps), ns_copy = bench_median(t_copy, cfg->reps);

    char id[48], label[64];
    snprintf(id, sizeof id, "d.cast_%s_%s", ferry_dtype_name(from), ferry_dtype_name(to));
    snprintf(label, sizeof label, "d. cast %s->%s, %lldM", ferry_dtype_name(from),
             ferry_dtype_name(to), (long long)(numel >> 20));
    figure *f = add_figure(id, label);
    snprintf(f->ferry, sizeof f->ferry, "%.2f GB/s", total / ns_cast);
    snprintf(f->base, sizeof f->base, "%.2f GB/s", total / ns_copy);
    f->ratio = ns_copy / ns_cast;
    snprintf(f->note, sizeof f->note, "bytes read + written: %.0f MiB", total / (double)MIB);
    snprintf(f->kv, sizeof f->kv,
             "numel=%lld bytes=%.0f ferry_ns=%.0f memcpy_ns=%.0f ferry_gbps=%.3f "
             "memcpy_gbps=%.3f",
             (long long)numel, total, ns_cast, ns_copy, total / ns_cast, total / ns_copy);
    free(t_cast);
    free(t_copy);
}

static void bench_casts(const config *cfg)
{
    ferry_tensor *f32 = filled_f32(cfg->cast_numel);
    ferry_tensor *f16 = ferry_tensor_to_dtype(f32, FERRY_FLOAT16);
    ferry_tensor *bf16 = ferry_tensor_to_dtype(f32, FERRY_BFLOAT16);
    if (!f16 || !bf16)
        die("ferry_tensor_to_dtype to make the cast sources");
    /* The largest cast (float32 <-> 16-bit) moves 6 bytes per element. */
    size_t copy_cap = (size_t)cfg->cast_numel * 3;
    void *a = bench_touched(copy_cap), *b = bench_touched(copy_cap);

    bench_cast_one(cfg, f32, FERRY_FLOAT16, a, b);
    bench_cast_one(cfg, f16, FERRY_FLOAT32, a, b);
    bench_cast_one(cfg, f32, FERRY_BFLOAT16, a, b);
    bench_cast_one(cfg, bf16, FERRY_FLOAT32, a, b);

    free(a);
    free(b);
    ferry_tensor_release(f32);
    ferry_tensor_release(f16);
    ferry_tensor_release(bf16);
}

/* ------------------------------------------------------------------------ */
/* (e) small results kept alive versus released at once                    */
/* ------------------------------------------------------------------------ */

/* ns per ferry_add(a, a) of one element: results released at once when keep is NULL,
 * else all n kept and released after the timed loop. */
static double add_ns(ferry_tensor *a, int64_t n, ferry_tensor **keep)
{
    double t0 = bench_now_ns();
    for (int64_t i = 0; i < n; i++) {
        ferry_tensor *r = ferry_add(a, a);
        if (!r)
            die("ferry_add of one element");
        if (keep)
            keep[i] = r;
        else
            ferry_tensor_release(r);
    }
    double t1 = bench_now_ns();
    if (keep)
        for (int64_t i = 0; i < n; i++)
            ferry_tensor_release(keep[i]);
    return (t1 - t0) / (double)n;
}

static void bench_live(const config *cfg, const char *device)
{
    int64_t one = 1;
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 1, &one, device);
    if (!a)
        die("ferry_ones on %s", device);
    const int64_t counts[] = {1000, 16000, 64000};
    ferry_tensor **keep = malloc(sizeof *keep * 64000);
    double *t_kept = calloc((size_t)cfg->reps, sizeof *t_kept);
    double *t_once = calloc((size_t)cfg->reps, sizeof *t_once);
    if (!keep || !t_kept || !t_once)
        die("out of memory");
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int64_t n = counts[c];
        for (int r = -1; r < cfg->reps; r++) {
            double once = add_ns(a, n, NULL), kept = add_ns(a, n, keep);
            if (r >= 0) {
                t_once[r] = once;
                t_kept[r] = kept;
            }
        }
        double once = bench_median(t_once, cfg->reps), kept = bench_median(t_kept, cfg->reps);
        char id[48], label[64];
        snprintf(id, sizeof id, "e.live_%s_%lld", device, (long long)n);
        snprintf(label, sizeof label, "e. add 1 elem, %lldK kept (%s)", (long long)(n / 1000),
                 device);
        figure *f = add_figure(id, label);
        snprintf(f->ferry, sizeof f->ferry, "%.0f ns", kept);
        snprintf(f->base, sizeof f->base, "%.0f ns", once);
        f->ratio = once / kept;
        snprintf(f->note, sizeof f->note, "vs released at once; goal >= 0.67 (1.5x)");
        snprintf(f->kv, sizeof f->kv, "device=%s live=%lld kept_ns=%.1f once_ns=%.1f goal=0.67",
                 device, (long long)n, kept, once);
    }
    free(t_kept);
    free(t_once);
    free(keep);
    ferry_tensor_release(a);
}

/* ------------------------------------------------------------------------ */

static void print_results(void)
{
    printf("\n%-36s %16s %16s %8s  %s\n", "figure", "ferry", "reference", "ratio", "note");
    for (int i = 0; i < nfigures; i++) {
        const figure *f = &figures[i];
        char ratio[16] = "";
        if (f->ratio >= 0)
            snprintf(ratio, sizeof ratio, "%.3f", f->ratio);
        printf("%-36s %16s %16s %8s  %s\n", f->label, f->ferry, f->base, ratio, f->note);
    }
    /* One line per figure for scripts: grep '^BENCH '. */
    putchar('\n');
    for (int i = 0; i < nfigures; i++) {
        const figure *f = &figures[i];
        printf("BENCH figure=%s", f->id);
        if (f->ratio >= 0)
            printf(" ratio=%.4f", f->ratio);
        printf(" %s\n", f->kv);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_core [--quick] [--only LETTERS]\n"
            "  --quick     small sizes and few repetitions, for CI smoke runs\n"
            "  --only L    run only the sections named by the letters L (e.g. ef)\n"
            "  -h, --help  show this help\n"
            "Every figure is the median of several repetitions; ratios compare with\n"
            "memcpy measured in the same run.\n");
}

int main(int argc, char **argv)
{
    config cfg = {
        .quick = false,
        .reps = 7,
        .roundtrip_bytes = 256 * MIB,
        .same_big_numel = (int64_t)64 << 20,
        .small_iters = 200000,
        .cast_numel = (int64_t)16 << 20,
    };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            cfg.quick = true;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            cfg.only = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_core: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (cfg.quick) {
        cfg.reps = 3;
        cfg.roundtrip_bytes = 16 * MIB;
        cfg.same_big_numel = (int64_t)1 << 20;
        cfg.small_iters = 20000;
        cfg.cast_numel = (int64_t)1 << 20;
    }

    char model[256];
    const char *omp = getenv("OMP_NUM_THREADS");
    bench_cpu_model(model, sizeof model);
    printf("bench_core: ferry %s, %s sizes, median of %d repetitions\n", ferry_version(),
           cfg.quick ? "quick" : "full", cfg.reps);
    printf("CPU: %s, %ld online; OMP_NUM_THREADS=%s; memcpy baselines are one thread\n",
           model, sysconf(_SC_NPROCESSORS_ONLN), omp ? omp : "(unset)");
    fflush(stdout);

#define RUN(letter) (!cfg.only || strchr(cfg.only, letter))
    if (RUN('a'))
        bench_roundtrip(&cfg);
    if (RUN('b'))
        bench_same_device(&cfg);
    if (RUN('c'))
        bench_create(&cfg);
    if (RUN('d'))
        bench_casts(&cfg);
    if (RUN('e')) {
        bench_live(&cfg, "cpu");
        if (ferry_is_available("sim"))
            bench_live(&cfg, "sim:0");
    }
    if (RUN('f'))
        bench_overhead(&cfg);
#undef RUN
    print_results();
    printf("BENCH cpu_model=\"%s\" quick=%d reps=%d\n", model, cfg.quick, cfg.reps);

    ferry_shutdown();
    return 0;
}

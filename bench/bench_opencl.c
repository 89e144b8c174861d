/* OpenCL backend benchmarks on opencl:0, each against a baseline measured in the same
 * run (ratios travel, absolute times on a shared VM do not): 256 MiB copies to and from
 * the device against memcpy, with the read/write and the map path; float32 add of 16M
 * elements against the cpu backend; the cost of a 1-element op; matmul 1024 through
 * CLBlast against the cpu backend's BLIS; the program build from source and from cache;
 * a float32 sum against the cpu backend; a scalar op by value against the scalar
 * uploaded as a 0-d tensor. */
#define _GNU_SOURCE
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

typedef struct config {
    bool quick;
    int reps;
    size_t copy_bytes;
    int64_t add_numel;
    long launch_iters;
    int64_t matmul_n;
} config;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_opencl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", ferry_last_error());
    exit(1);
}

static void sync_dev(const char *dev)
{
    if (ferry_synchronize(dev) != FERRY_OK)
        die("ferry_synchronize(%s)", dev);
}

/* Unloads every backend (nothing may be alive) so settings read at plugin init apply. */
static void reload(const char *var, const char *value)
{
    if (value)
        setenv(var, value, 1);
    else
        unsetenv(var);
    ferry_shutdown();
}

/* ---- (a) copies --------------------------------------------------------------------- */

static void bench_copies(const config *cfg, const char *mode)
{
    size_t nbytes = cfg->copy_bytes;
    int64_t numel = (int64_t)(nbytes / 4);
    float *host = bench_touched(nbytes), *dst = bench_touched(nbytes), *tmp = bench_touched(nbytes);
    for (int64_t i = 0; i < numel; i++)
        host[i] = (float)(i % 1000);
    ferry_tensor *src = ferry_tensor_from_blob(host, FERRY_FLOAT32, 1, &numel, NULL, NULL, NULL);
    if (!src)
        die("from_blob");
    double *tw = calloc((size_t)cfg->reps, 8), *tr = calloc((size_t)cfg->reps, 8),
           *tm = calloc((size_t)cfg->reps, 8);
    /* Warm-up: the allocator's block and the device pages exist before timing (a first
     * write into a new buffer pays its page faults, which the cache keeps out of loops). */
    for (int w = 0; w < 2; w++) {
        ferry_tensor *dev = ferry_tensor_to(src, "opencl:0");
        if (!dev)
            die("to(opencl:0)");
        if (ferry_tensor_copy_to_host(dev, dst, nbytes) != FERRY_OK)
            die("copy_to_host");
        ferry_tensor_release(dev);
    }
    if (memcmp(dst, host, nbytes) != 0)
        die("the round trip changed the data");
    for (int r = 0; r < cfg->reps; r++) {
        double t0 = bench_now_ns();
        memcpy(tmp, host, nbytes);
        bench_escape(tmp);
        double t1 = bench_now_ns();
        ferry_tensor *dev = ferry_tensor_to(src, "opencl:0");
        if (!dev)
            die("to(opencl:0)");
        double t2 = bench_now_ns();
        if (ferry_tensor_copy_to_host(dev, dst, nbytes) != FERRY_OK)
            die("copy_to_host");
        double t3 = bench_now_ns();
        ferry_tensor_release(dev);
        tm[r] = t1 - t0;
        tw[r] = t2 - t1;
        tr[r] = t3 - t2;
    }
    double m = bench_median(tm, cfg->reps), w = bench_median(tw, cfg->reps), rd = bench_median(tr, cfg->reps);
    printf("(a) %-5s cpu->opencl:0 %4zu MiB: %6.2f GB/s, memcpy %6.2f GB/s, ratio %.2f\n", mode,
           nbytes / MIB, nbytes / w, nbytes / m, m / w);
    printf("(a) %-5s opencl:0->cpu %4zu MiB: %6.2f GB/s, memcpy %6.2f GB/s, ratio %.2f\n", mode,
           nbytes / MIB, nbytes / rd, nbytes / m, m / rd);
    printf("BENCH figure=a.copy_to_device_%s mib=%zu gbs=%.3f memcpy_gbs=%.3f ratio=%.3f\n",
           mode, nbytes / MIB, nbytes / w, nbytes / m, m / w);
    printf("BENCH figure=a.copy_to_host_%s mib=%zu gbs=%.3f memcpy_gbs=%.3f ratio=%.3f\n", mode,
           nbytes / MIB, nbytes / rd, nbytes / m, m / rd);
    fflush(stdout);
    ferry_tensor_release(src);
    free(tw);
    free(tr);
    free(tm);
    free(host);
    free(dst);
    free(tmp);
}

/* ---- (b) add, (c) launch overhead ----------------------------------------------------- */

static double time_add(const config *cfg, const char *dev, int64_t numel, int reps)
{
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, &numel, 1.5, dev);
    ferry_tensor *b = ferry_full(FERRY_FLOAT32, 1, &numel, 2.0, dev);
    ferry_tensor *o = ferry_empty(FERRY_FLOAT32, 1, &numel, dev);
    if (!a || !b || !o)
        die("tensors of %lld elements on %s", (long long)numel, dev);
    double *t = calloc((size_t)reps, 8);
    for (int r = -1; r < reps; r++) { /* r = -1 warms up (program build, page faults) */
        double t0 = bench_now_ns();
        if (ferry_add_out(o, a, b) != FERRY_OK)
            die("add_out on %s", dev);
        sync_dev(dev);
        if (r >= 0)
            t[r] = bench_now_ns() - t0;
    }
    float check;
    ferry_tensor *last = ferry_slice(o, 0, numel - 1, numel, 1);
    if (!last || ferry_tensor_copy_to_host(last, &check, 4) != FERRY_OK || check != 3.5f)
        die("add on %s gave a wrong result", dev);
    ferry_tensor_release(last);
    double m = bench_median(t, reps);
    free(t);
    ferry_tensor_release(a);
    ferry_tensor_release(b);
    ferry_tensor_release(o);
    (void)cfg;
    return m;
}

static void bench_add(const config *cfg)
{
    int64_t n = cfg->add_numel;
    double ocl = time_add(cfg, "opencl:0", n, cfg->reps);
    double cpu = time_add(cfg, "cpu", n, cfg->reps);
    double bytes = 12.0 * (double)n;
    printf("(b) add float32 %lld: opencl:0 %.2f ms (%.1f GB/s), cpu %.2f ms (%.1f GB/s), "
           "ratio %.2f\n",
           (long long)n, ocl / 1e6, bytes / ocl, cpu / 1e6, bytes / cpu, cpu / ocl);
    printf("BENCH figure=b.add_f32 numel=%lld opencl_ms=%.3f cpu_ms=%.3f ratio=%.3f\n",
           (long long)n, ocl / 1e6, cpu / 1e6, cpu / ocl);
    fflush(stdout);
}

static void bench_launch(const config *cfg)
{
    int64_t one = 1;
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, &one, 1.0, "opencl:0");
    ferry_tensor *o = ferry_empty(FERRY_FLOAT32, 1, &one, "opencl:0");
    if (!a || !o)
        die("1-element tensors");
    if (ferry_add_out(o, a, a) != FERRY_OK)
        die("add_out");
    sync_dev("opencl:0");
    double *queued = calloc((size_t)cfg->reps, 8), *synced = calloc((size_t)cfg->reps, 8);
    for (int r = 0; r < cfg->reps; r++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < cfg->launch_iters; i++)
            if (ferry_add_out(o, a, a) != FERRY_OK)
                die("add_out");
        sync_dev("opencl:0");
        double t1 = bench_now_ns();
        for (long i = 0; i < cfg->launch_iters / 10; i++) {
            if (ferry_add_out(o, a, a) != FERRY_OK)
                die("add_out");
            sync_dev("opencl:0");
        }
        double t2 = bench_now_ns();
        queued[r] = (t1 - t0) / (double)cfg->launch_iters;
        synced[r] = (t2 - t1) / (double)(cfg->launch_iters / 10);
    }
    double q = bench_median(queued, cfg->reps), s = bench_median(synced, cfg->reps);
    printf("(c) 1-element add on opencl:0: %.1f us per op queued back to back, %.1f us with a "
           "synchronize after each\n",
           q / 1e3, s / 1e3);
    printf("BENCH figure=c.launch_overhead queued_us=%.2f synced_us=%.2f\n", q / 1e3, s / 1e3);
    fflush(stdout);
    free(queued);
    free(synced);
    ferry_tensor_release(a);
    ferry_tensor_release(o);
}

/* `x * 2.0` on opencl:0, 1 element: the scalar by value (binary_scalar), against what
 * the core did before it, measured in the same run: the scalar uploaded into a fresh 0-d
 * tensor on the device for every op, then the tensor kernel. */
static double scalar_op_us(const config *cfg, ferry_tensor *o, ferry_tensor *a, bool upload,
                           bool synced)
{
    double *t = calloc((size_t)cfg->reps, 8);
    long iters = synced ? cfg->launch_iters / 10 : cfg->launch_iters;
    float two = 2.0f;
    for (int r = 0; r < cfg->reps; r++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) {
            ferry_status st;
            if (upload) {
                ferry_tensor *s = ferry_tensor_from_data(&two, FERRY_FLOAT32, 0, NULL, "opencl:0");
                st = s ? ferry_mul_out(o, a, s) : ferry_last_status();
                ferry_tensor_release(s);
            } else {
                st = ferry_mul_scalar_out(o, a, 2.0);
            }
            if (st != FERRY_OK)
                die("mul by a scalar");
            if (synced)
                sync_dev("opencl:0");
        }
        sync_dev("opencl:0");
        t[r] = (bench_now_ns() - t0) / (double)iters;
    }
    double m = bench_median(t, cfg->reps);
    free(t);
    return m / 1e3;
}

static void bench_scalar(const config *cfg)
{
    int64_t one = 1;
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, &one, 1.0, "opencl:0");
    ferry_tensor *o = ferry_empty(FERRY_FLOAT32, 1, &one, "opencl:0");
    if (!a || !o || ferry_mul_scalar_out(o, a, 2.0) != FERRY_OK)
        die("1-element tensors");
    sync_dev("opencl:0");
    double vq = scalar_op_us(cfg, o, a, false, false), vs = scalar_op_us(cfg, o, a, false, true);
    double uq = scalar_op_us(cfg, o, a, true, false), us = scalar_op_us(cfg, o, a, true, true);
    printf("(c2) 1-element x * 2.0 on opencl:0: scalar by value %.1f us queued, %.1f us "
           "synced; uploaded as a 0-d tensor (the former path) %.1f us queued, %.1f us synced\n",
           vq, vs, uq, us);
    printf("BENCH figure=c2.scalar_op by_value_queued_us=%.2f by_value_synced_us=%.2f "
           "upload_queued_us=%.2f upload_synced_us=%.2f\n",
           vq, vs, uq, us);
    fflush(stdout);
    ferry_tensor_release(a);
    ferry_tensor_release(o);
}

/* Not one of the figures, but the other half of elementwise work: a full
 * float32 sum of the same 16M elements (blocked and pairwise on both devices). */
static double time_sum(const char *dev, int64_t numel, int reps)
{
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, &numel, 1.0, dev);
    ferry_tensor *o = ferry_empty(FERRY_FLOAT32, 0, NULL, dev);
    if (!a || !o)
        die("sum operands on %s", dev);
    double *t = calloc((size_t)reps, 8);
    for (int r = -1; r < reps; r++) {
        double t0 = bench_now_ns();
        if (ferry_sum_out(o, a, 0, NULL, false) != FERRY_OK)
            die("sum_out on %s", dev);
        sync_dev(dev);
        if (r >= 0)
            t[r] = bench_now_ns() - t0;
    }
    float check;
    if (ferry_tensor_copy_to_host(o, &check, 4) != FERRY_OK || check != (float)numel)
        die("sum on %s gave %g, expected %lld", dev, (double)check, (long long)numel);
    double m = bench_median(t, reps);
    free(t);
    ferry_tensor_release(a);
    ferry_tensor_release(o);
    return m;
}

static void bench_sum(const config *cfg)
{
    int64_t n = cfg->add_numel;
    double ocl = time_sum("opencl:0", n, cfg->reps), cpu = time_sum("cpu", n, cfg->reps);
    printf("(f) sum float32 %lld: opencl:0 %.2f ms (%.1f GB/s), cpu %.2f ms (%.1f GB/s), "
           "ratio %.2f\n",
           (long long)n, ocl / 1e6, 4.0 * (double)n / ocl, cpu / 1e6, 4.0 * (double)n / cpu,
           cpu / ocl);
    printf("BENCH figure=f.sum_f32 numel=%lld opencl_ms=%.3f cpu_ms=%.3f ratio=%.3f\n",
           (long long)n, ocl / 1e6, cpu / 1e6, cpu / ocl);
    fflush(stdout);
}

/* ---- (d) matmul ------------------------------------------------------------------------ */

static double time_matmul(const config *cfg, const char *dev, int reps)
{
    int64_t n = cfg->matmul_n, shape[2] = {n, n};
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 2, shape, 0.5, dev);
    ferry_tensor *b = ferry_full(FERRY_FLOAT32, 2, shape, 0.25, dev);
    ferry_tensor *o = ferry_empty(FERRY_FLOAT32, 2, shape, dev);
    if (!a || !b || !o)
        die("matmul operands on %s", dev);
    double *t = calloc((size_t)reps, 8);
    for (int r = -1; r < reps; r++) {
        double t0 = bench_now_ns();
        if (ferry_matmul_out(o, a, b) != FERRY_OK)
            die("matmul_out on %s", dev);
        sync_dev(dev);
        if (r >= 0)
            t[r] = bench_now_ns() - t0;
    }
    float check;
    ferry_tensor *first = ferry_reshape(o, 1, &(int64_t){n * n});
    ferry_tensor *x = first ? ferry_slice(first, 0, 0, 1, 1) : NULL;
    if (!x || ferry_tensor_copy_to_host(x, &check, 4) != FERRY_OK || check != 0.125f * (float)n)
        die("matmul on %s gave a wrong result", dev);
    ferry_tensor_release(x);
    ferry_tensor_release(first);
    double m = bench_median(t, reps);
    free(t);
    ferry_tensor_release(a);
    ferry_tensor_release(b);
    ferry_tensor_release(o);
    return m;
}

static void bench_matmul(const config *cfg)
{
    int64_t n = cfg->matmul_n;
    double flops = 2.0 * (double)n * (double)n * (double)n;
    double ocl = time_matmul(cfg, "opencl:0", cfg->reps);
    double cpu = time_matmul(cfg, "cpu", cfg->reps);
    const char *threads = getenv("BLIS_NUM_THREADS");
    printf("(d) matmul float32 %lld: opencl:0 (CLBlast) %.1f GFLOP/s, cpu (BLIS, "
           "BLIS_NUM_THREADS=%s) %.1f GFLOP/s, ratio %.2f\n",
           (long long)n, flops / ocl, threads ? threads : "unset", flops / cpu, cpu / ocl);
    printf("BENCH figure=d.matmul_f32 n=%lld opencl_gflops=%.2f cpu_gflops=%.2f ratio=%.3f\n",
           (long long)n, flops / ocl, flops / cpu, cpu / ocl);
    fflush(stdout);
}

/* ---- (e) program build ------------------------------------------------------------------ */

/* The first op of a fresh plugin generation, minus the same op once warm. */
static double first_op_ms(void)
{
    int64_t one = 1;
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, &one, 1.0, "opencl:0");
    if (!a)
        die("ferry_full on opencl:0");
    sync_dev("opencl:0");
    double t0 = bench_now_ns();
    ferry_tensor *b = ferry_neg(a);
    if (!b)
        die("ferry_neg on opencl:0");
    sync_dev("opencl:0");
    double t1 = bench_now_ns();
    ferry_tensor *c = ferry_neg(a);
    sync_dev("opencl:0");
    double t2 = bench_now_ns();
    ferry_tensor_release(c);
    ferry_tensor_release(b);
    ferry_tensor_release(a);
    return ((t1 - t0) - (t2 - t1)) / 1e6;
}

static void bench_build(const config *cfg)
{
    char dir[] = "/tmp/ferry-bench-opencl-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp");
    reload("FERRY_OPENCL_CACHE_DIR", dir);
    double first = first_op_ms();
    double *cached = calloc((size_t)cfg->reps, 8);
    for (int r = 0; r < cfg->reps; r++) {
        ferry_shutdown();
        cached[r] = first_op_ms();
    }
    double c = bench_median(cached, cfg->reps);
    const char *pocl = getenv("POCL_KERNEL_CACHE");
    const char *pocl_dir = getenv("POCL_CACHE_DIR");
    printf("(e) program build (first op of a fresh plugin): %.0f ms from source, %.1f ms from "
           "ferry's cache (POCL_KERNEL_CACHE=%s, POCL_CACHE_DIR=%s)\n",
           first, c, pocl ? pocl : "unset", pocl_dir ? pocl_dir : "unset");
    printf("BENCH figure=e.program_build source_ms=%.1f cached_ms=%.2f\n", first, c);
    fflush(stdout);
    free(cached);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_opencl: could not remove %s\n", dir);
    reload("FERRY_OPENCL_CACHE_DIR", NULL);
}

int main(int argc, char **argv)
{
    config cfg = {false, 5, 256 * MIB, (int64_t)16 << 20, 2000, 1024};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            cfg = (config){true, 3, 16 * MIB, (int64_t)1 << 20, 200, 256};
        } else {
            fprintf(stderr, "usage: bench_opencl [--quick]\n");
            return 2;
        }
    }
    if (!ferry_is_available("opencl")) {
        printf("bench_opencl: skipped: %s\n", ferry_backend_status("opencl"));
        return 0;
    }
    ferry_device_info info;
    if (ferry_device_get_info("opencl:0", &info) != FERRY_OK)
        die("device info");
    printf("bench_opencl: ferry %s, opencl:0 = %s (%s, %s), median of %d\n", ferry_version(),
           info.name, info.backend_version, info.driver_version, cfg.reps);
    fflush(stdout);

    /* First, before any other figure builds the program: PoCL keeps its own cache of
     * what it compiled, so a later "from source" build would hit it. */
    bench_build(&cfg);
    reload("FERRY_OPENCL_MAP_COPIES", "0");
    bench_copies(&cfg, "rw");
    reload("FERRY_OPENCL_MAP_COPIES", "1");
    bench_copies(&cfg, "map");
    reload("FERRY_OPENCL_MAP_COPIES", NULL);
    bench_add(&cfg);
    bench_launch(&cfg);
    bench_scalar(&cfg);
    bench_matmul(&cfg);
    bench_sum(&cfg);
    ferry_shutdown();
    return 0;
}

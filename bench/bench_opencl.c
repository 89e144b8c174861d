/* OpenCL backend benchmarks on opencl:0, each against a baseline measured in the same
 * run (ratios travel, absolute times on a shared VM do not): 256 MiB copies to and from
 * the device against memcpy, with the read/write and the map path; float32 add of 16M
 * elements against the cpu backend; the cost of a 1-element op; matmul 1024 through
 * CLBlast against the cpu backend's BLIS; the program build from source and from cache;
 * a float32 sum against the cpu backend; a scalar op by value against the scalar
 * uploaded as a 0-d tensor; (g) ferry's add and its full, row and column sums against
 * reference kernels written here and run through OpenCL directly on the same device. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

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
    int64_t red_n; /* (g): the side of the square matrix of the row and column sums */
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

/* Non-blocking copies from and to pinned memory (ferry_empty_pinned, to_ex with
 * FERRY_NON_BLOCKING), each timed to its synchronize. The device-to-host copy lands in a
 * new pinned tensor each time, as to(non_blocking) promises: pinned blocks are not
 * cached, so its figure includes that allocation. */
static void bench_pinned_copies(const config *cfg)
{
    size_t nbytes = cfg->copy_bytes;
    int64_t numel = (int64_t)(nbytes / 4);
    ferry_tensor *pin = ferry_empty_pinned(FERRY_FLOAT32, 1, &numel, "opencl:0");
    if (!pin)
        die("empty_pinned(opencl:0)");
    float *host = bench_touched(nbytes), *tmp = bench_touched(nbytes);
    for (int64_t i = 0; i < numel; i++)
        host[i] = (float)(i % 1000);
    float *pinned = ferry_tensor_host_data(pin);
    if (!pinned)
        die("host_data of a pinned tensor");
    memcpy(pinned, host, nbytes);
    double *tw = calloc((size_t)cfg->reps, 8), *tr = calloc((size_t)cfg->reps, 8),
           *tm = calloc((size_t)cfg->reps, 8);
    if (!tw || !tr || !tm)
        die("calloc");
    for (int r = -1; r < cfg->reps; r++) { /* r = -1: warm-up */
        double t0 = bench_now_ns();
        memcpy(tmp, host, nbytes);
        bench_escape(tmp);
        double t1 = bench_now_ns();
        ferry_tensor *dev = ferry_tensor_to_ex(pin, "opencl:0", -1, FERRY_NON_BLOCKING);
        if (!dev)
            die("to_ex(opencl:0, non_blocking)");
        sync_dev("opencl:0");
        double t2 = bench_now_ns();
        ferry_tensor *back = ferry_tensor_to_ex(dev, "cpu", -1, FERRY_NON_BLOCKING);
        if (!back)
            die("to_ex(cpu, non_blocking)");
        sync_dev("opencl:0");
        double t3 = bench_now_ns();
        const float *b = ferry_tensor_host_data(back);
        if (!b || !ferry_tensor_is_pinned(back) || memcmp(b, host, nbytes) != 0)
            die("the pinned round trip changed the data");
        ferry_tensor_release(back);
        ferry_tensor_release(dev);
        if (r >= 0) {
            tm[r] = t1 - t0;
            tw[r] = t2 - t1;
            tr[r] = t3 - t2;
        }
    }
    double m = bench_median(tm, cfg->reps), w = bench_median(tw, cfg->reps),
           rd = bench_median(tr, cfg->reps);
    printf("(a) pinned cpu->opencl:0 %4zu MiB non_blocking: %6.2f GB/s, memcpy %6.2f GB/s, "
           "ratio %.2f\n",
           nbytes / MIB, nbytes / w, nbytes / m, m / w);
    printf("(a) pinned opencl:0->cpu %4zu MiB non_blocking (new pinned tensor): %6.2f GB/s, "
           "memcpy %6.2f GB/s, ratio %.2f\n",
           nbytes / MIB, nbytes / rd, nbytes / m, m / rd);
    printf("BENCH figure=a.copy_to_device_pinned mib=%zu gbs=%.3f memcpy_gbs=%.3f ratio=%.3f\n",
           nbytes / MIB, nbytes / w, nbytes / m, m / w);
    printf("BENCH figure=a.copy_to_host_pinned mib=%zu gbs=%.3f memcpy_gbs=%.3f ratio=%.3f\n",
           nbytes / MIB, nbytes / rd, nbytes / m, m / rd);
    fflush(stdout);
    ferry_tensor_release(pin);
    free(host);
    free(tmp);
    free(tw);
    free(tr);
    free(tm);
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
           "ratio %.2f (goal >= 0.80: %s)\n",
           (long long)n, ocl / 1e6, 4.0 * (double)n / ocl, cpu / 1e6, 4.0 * (double)n / cpu,
           cpu / ocl, cpu / ocl >= 0.8 ? "met" : "NOT met");
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

/* ---- (g) ferry's kernels against reference kernels -----------------------------------
 * The references are the plain kernels a programmer would write for one job, built here
 * and run through OpenCL directly, on the device ferry calls opencl:0 (the first device of
 * the first platform that has one), in its own context. Each goal is a ratio of times
 * measured in this process: reference time / ferry time. */

static const char ref_source[] =
    "__kernel void ref_add(__global const float *a, __global const float *b,\n"
    "                      __global float *o)\n"
    "{ size_t i = get_global_id(0); o[i] = a[i] + b[i]; }\n"
    /* Work-group tree: a grid-stride loop per work-item, then a tree in local memory. */
    "__kernel void ref_sum_tree(__global const float *x, long n, __global float *part,\n"
    "                           __local float *s)\n"
    "{\n"
    "  size_t l = get_local_id(0), L = get_local_size(0);\n"
    "  float acc = 0.0f;\n"
    "  for (long i = get_global_id(0); i < n; i += get_global_size(0)) acc += x[i];\n"
    "  s[l] = acc; barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  for (size_t h = L / 2; h > 0; h >>= 1) {\n"
    "    if (l < h) s[l] += s[l + h];\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  }\n"
    "  if (l == 0) part[get_group_id(0)] = s[0];\n"
    "}\n"
    /* A contiguous chunk of float4 per work-item. */
    "__kernel void ref_sum_vec4(__global const float4 *x, long n4, long chunk,\n"
    "                           __global float *part)\n"
    "{\n"
    "  long b = (long)get_global_id(0) * chunk, e = min(b + chunk, n4);\n"
    "  float4 acc = (float4)(0.0f);\n"
    "  for (long i = b; i < e; i++) acc += x[i];\n"
    "  part[get_global_id(0)] = acc.x + acc.y + acc.z + acc.w;\n"
    "}\n"
    /* Rows: one work-group per row, tree in local memory. */
    "__kernel void ref_rows_tree(__global const float *x, long ncols, __global float *o,\n"
    "                            __local float *s)\n"
    "{\n"
    "  size_t l = get_local_id(0), L = get_local_size(0), r = get_group_id(0);\n"
    "  __global const float *row = x + r * ncols;\n"
    "  float acc = 0.0f;\n"
    "  for (long i = l; i < ncols; i += L) acc += row[i];\n"
    "  s[l] = acc; barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  for (size_t h = L / 2; h > 0; h >>= 1) {\n"
    "    if (l < h) s[l] += s[l + h];\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  }\n"
    "  if (l == 0) o[r] = s[0];\n"
    "}\n"
    /* Rows: one work-item per row, a float4 loop along it. */
    "__kernel void ref_rows_vec4(__global const float4 *x, long ncols4, __global float *o)\n"
    "{\n"
    "  size_t r = get_global_id(0);\n"
    "  float4 acc = (float4)(0.0f);\n"
    "  for (long i = 0; i < ncols4; i++) acc += x[r * ncols4 + i];\n"
    "  o[r] = acc.x + acc.y + acc.z + acc.w;\n"
    "}\n"
    /* Columns: work-groups of TX columns by TY row slices, tree over the slices. */
    "__kernel void ref_cols_tree(__global const float *x, long nrows, long ncols,\n"
    "                            __global float *o, __local float *s)\n"
    "{\n"
    "  size_t c = get_global_id(0), tx = get_local_id(0), ty = get_local_id(1);\n"
    "  size_t TX = get_local_size(0), TY = get_local_size(1);\n"
    "  float acc = 0.0f;\n"
    "  for (long r = ty; r < nrows; r += TY) acc += x[r * ncols + c];\n"
    "  s[ty * TX + tx] = acc; barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  for (size_t h = TY / 2; h > 0; h >>= 1) {\n"
    "    if (ty < h) s[ty * TX + tx] += s[(ty + h) * TX + tx];\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  }\n"
    "  if (ty == 0) o[c] = s[tx];\n"
    "}\n"
    /* Columns: one work-item per four adjacent columns, a float4 loop down them. */
    "__kernel void ref_cols_vec4(__global const float4 *x, long nrows, long ncols4,\n"
    "                            __global float4 *o)\n"
    "{\n"
    "  size_t c = get_global_id(0);\n"
    "  float4 acc = (float4)(0.0f);\n"
    "  for (long r = 0; r < nrows; r++) acc += x[r * ncols4 + c];\n"
    "  o[c] = acc;\n"
    "}\n";

typedef struct ref_cl {
    cl_device_id dev;
    cl_context ctx;
    cl_command_queue q;
    cl_program prog;
    cl_uint cus;
    size_t wg; /* work-group size of the 1-D references: 256 or the device's limit */
    bool gpu;
} ref_cl;

static void cl_check(cl_int err, const char *what)
{
    if (err != CL_SUCCESS) {
        fprintf(stderr, "bench_opencl: %s failed: %d\n", what, (int)err);
        exit(1);
    }
}

static bool ref_open(ref_cl *r)
{
    memset(r, 0, sizeof *r);
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0)
        return false;
    cl_platform_id *plats = calloc(np, sizeof *plats);
    cl_check(clGetPlatformIDs(np, plats, NULL), "clGetPlatformIDs");
    bool found = false;
    for (cl_uint p = 0; p < np && !found; p++)
        found = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 1, &r->dev, NULL) == CL_SUCCESS;
    free(plats);
    if (!found)
        return false;
    cl_int err;
    r->ctx = clCreateContext(NULL, 1, &r->dev, NULL, NULL, &err);
    cl_check(err, "clCreateContext");
    r->q = clCreateCommandQueue(r->ctx, r->dev, 0, &err);
    cl_check(err, "clCreateCommandQueue");
    const char *src = ref_source;
    r->prog = clCreateProgramWithSource(r->ctx, 1, &src, NULL, &err);
    cl_check(err, "clCreateProgramWithSource");
    if (clBuildProgram(r->prog, 1, &r->dev, "-cl-std=CL1.2", NULL, NULL) != CL_SUCCESS) {
        char log[4096] = "";
        clGetProgramBuildInfo(r->prog, r->dev, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
        fprintf(stderr, "bench_opencl: reference kernels do not build:\n%s\n", log);
        exit(1);
    }
    size_t max_wg = 1;
    cl_device_type type = 0;
    clGetDeviceInfo(r->dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof r->cus, &r->cus, NULL);
    clGetDeviceInfo(r->dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
    clGetDeviceInfo(r->dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    r->gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    r->wg = 256;
    while (r->wg > max_wg)
        r->wg /= 2;
    if (r->cus == 0)
        r->cus = 1;
    return true;
}

static void ref_close(ref_cl *r)
{
    clReleaseProgram(r->prog);
    clReleaseCommandQueue(r->q);
    clReleaseContext(r->ctx);
}

static cl_mem ref_buffer(ref_cl *r, size_t nbytes, float fill)
{
    cl_int err;
    cl_mem m = clCreateBuffer(r->ctx, CL_MEM_READ_WRITE, nbytes, NULL, &err);
    cl_check(err, "clCreateBuffer");
    cl_check(clEnqueueFillBuffer(r->q, m, &fill, 4, 0, nbytes, 0, NULL, NULL), "fill");
    cl_check(clFinish(r->q), "clFinish");
    return m;
}

static cl_kernel ref_kernel(ref_cl *r, const char *name)
{
    cl_int err;
    cl_kernel k = clCreateKernel(r->prog, name, &err);
    cl_check(err, name);
    return k;
}

/* A reference launch and what it needs to be timed and checked. */
typedef struct ref_launch {
    cl_kernel k;
    cl_uint dims;
    size_t global[2], local[2];
    cl_mem out;
    size_t nout;   /* floats the launch writes (partials or results) */
    bool partials; /* out holds partials the host adds up (full sums) */
} ref_launch;

/* Median time of a launch plus its read-back (and the host's sum of partials); checks
 * that every result (or the sum of the partials) is `expect`. */
static double ref_time(ref_cl *r, const ref_launch *L, int reps, double expect)
{
    float *host = calloc(L->nout, sizeof *host);
    double *t = calloc((size_t)reps, 8);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now_ns();
        cl_check(clEnqueueNDRangeKernel(r->q, L->k, L->dims, NULL, L->global, L->local, 0,
                                        NULL, NULL),
                 "clEnqueueNDRangeKernel");
        if (L->partials) {
            cl_check(clEnqueueReadBuffer(r->q, L->out, CL_TRUE, 0, L->nout * 4, host, 0, NULL,
                                         NULL),
                     "read");
            double s = 0;
            for (size_t j = 0; j < L->nout; j++)
                s += host[j];
            host[0] = (float)s;
        } else {
            cl_check(clFinish(r->q), "clFinish");
        }
        if (i >= 0)
            t[i] = bench_now_ns() - t0;
    }
    if (!L->partials)
        cl_check(clEnqueueReadBuffer(r->q, L->out, CL_TRUE, 0, L->nout * 4, host, 0, NULL, NULL),
                 "read");
    for (size_t j = 0; j < (L->partials ? 1 : L->nout); j++)
        if (host[j] != (float)expect) {
            fprintf(stderr, "bench_opencl: a reference kernel gave %g, expected %g\n",
                    (double)host[j], expect);
            exit(1);
        }
    double m = bench_median(t, reps);
    free(t);
    free(host);
    return m;
}

/* ferry's sum of an n x n float32 matrix of ones over `dim` (-1: every dim). */
static double ferry_sum_time(int64_t rows, int64_t cols, int dim, int reps)
{
    int64_t shape[2] = {rows, cols};
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 2, shape, 1.0, "opencl:0");
    int64_t oshape[1] = {dim == 1 ? rows : cols};
    ferry_tensor *o = dim < 0 ? ferry_empty(FERRY_FLOAT32, 0, NULL, "opencl:0")
                              : ferry_empty(FERRY_FLOAT32, 1, oshape, "opencl:0");
    if (!a || !o)
        die("sum operands");
    int dims[1] = {dim};
    double *t = calloc((size_t)reps, 8);
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now_ns();
        if (ferry_sum_out(o, a, dim < 0 ? 0 : 1, dim < 0 ? NULL : dims, false) != FERRY_OK)
            die("sum_out");
        sync_dev("opencl:0");
        if (i >= 0)
            t[i] = bench_now_ns() - t0;
    }
    int64_t nout = dim < 0 ? 1 : oshape[0];
    float *host = calloc((size_t)nout, 4);
    float expect = dim < 0 ? (float)(rows * cols) : dim == 1 ? (float)cols : (float)rows;
    if (ferry_tensor_copy_to_host(o, host, (size_t)nout * 4) != FERRY_OK)
        die("copy_to_host");
    for (int64_t j = 0; j < nout; j++)
        if (host[j] != expect)
            die("ferry's sum over dim %d gave %g at %lld, expected %g", dim, (double)host[j],
                (long long)j, (double)expect);
    free(host);
    double m = bench_median(t, reps);
    free(t);
    ferry_tensor_release(a);
    ferry_tensor_release(o);
    return m;
}

static void goal_line(const char *what, const char *figure, double ferry_ns, double ref_ns,
                      const char *ref_name, double goal)
{
    double ratio = ref_ns / ferry_ns;
    printf("(g) %-38s ferry %8.3f ms, %-16s %8.3f ms, ratio %.2f (goal >= %.2f: %s)\n", what,
           ferry_ns / 1e6, ref_name, ref_ns / 1e6, ratio, goal, ratio >= goal ? "met" : "NOT met");
    printf("BENCH figure=g.%s ferry_ms=%.3f ref=%s ref_ms=%.3f ratio=%.3f goal=%.2f\n", figure,
           ferry_ns / 1e6, ref_name, ref_ns / 1e6, ratio, goal);
}

static void bench_references(const config *cfg)
{
    ref_cl r;
    if (!ref_open(&r)) {
        printf("(g) skipped: no OpenCL device for the reference kernels\n");
        return;
    }
    char name[256] = "";
    clGetDeviceInfo(r.dev, CL_DEVICE_NAME, sizeof name, name, NULL);
    ferry_device_info info;
    if (ferry_device_get_info("opencl:0", &info) != FERRY_OK)
        die("device info");
    if (strcmp(name, info.name) != 0) {
        printf("(g) skipped: the first OpenCL device is \"%s\", opencl:0 is \"%s\"\n", name,
               info.name);
        ref_close(&r);
        return;
    }
    printf("(g) references on %s: %u compute units, %s, work-groups of %zu\n", name, r.cus,
           r.gpu ? "GPU" : "not a GPU", r.wg);
    int reps = cfg->reps;

    /* add */
    int64_t n = cfg->add_numel;
    size_t nb = (size_t)n * 4;
    cl_mem a = ref_buffer(&r, nb, 1.5f), b = ref_buffer(&r, nb, 2.0f), o = ref_buffer(&r, nb, 0);
    ref_launch add = {ref_kernel(&r, "ref_add"), 1, {(size_t)n, 0}, {r.wg, 0}, o, (size_t)n, false};
    clSetKernelArg(add.k, 0, sizeof a, &a);
    clSetKernelArg(add.k, 1, sizeof b, &b);
    clSetKernelArg(add.k, 2, sizeof o, &o);
    double t_ref_add = ref_time(&r, &add, reps, 3.5);
    double t_add = time_add(cfg, "opencl:0", n, reps);
    goal_line("add float32 (contiguous)", "add_f32", t_add, t_ref_add, "ref_add", 0.9);
    clReleaseKernel(add.k);
    clReleaseMemObject(b);
    clReleaseMemObject(o);

    /* full sum of the n ones in a */
    cl_check(clEnqueueFillBuffer(r.q, a, &(float){1.0f}, 4, 0, nb, 0, NULL, NULL), "fill");
    size_t groups = (size_t)r.cus * (r.gpu ? 8 : 32);
    cl_mem part = ref_buffer(&r, groups * r.wg * 4, 0);
    ref_launch tree = {ref_kernel(&r, "ref_sum_tree"), 1, {groups * r.wg, 0}, {r.wg, 0}, part,
                       groups, true};
    cl_long nl = n, n4 = n / 4, chunk = (n4 + (cl_long)(groups * r.wg) - 1) / (cl_long)(groups * r.wg);
    clSetKernelArg(tree.k, 0, sizeof a, &a);
    clSetKernelArg(tree.k, 1, sizeof nl, &nl);
    clSetKernelArg(tree.k, 2, sizeof part, &part);
    clSetKernelArg(tree.k, 3, r.wg * 4, NULL);
    ref_launch vec4 = {ref_kernel(&r, "ref_sum_vec4"), 1, {groups * r.wg, 0}, {r.wg, 0}, part,
                       groups * r.wg, true};
    clSetKernelArg(vec4.k, 0, sizeof a, &a);
    clSetKernelArg(vec4.k, 1, sizeof n4, &n4);
    clSetKernelArg(vec4.k, 2, sizeof chunk, &chunk);
    clSetKernelArg(vec4.k, 3, sizeof part, &part);
    double t_tree = ref_time(&r, &tree, reps, (double)n), t_vec4 = ref_time(&r, &vec4, reps, (double)n);
    double t_sum = ferry_sum_time(1, n, -1, reps);
    printf("(g) full sum references: ref_sum_tree %.3f ms, ref_sum_vec4 %.3f ms\n", t_tree / 1e6,
           t_vec4 / 1e6);
    goal_line("full sum float32", "sum_f32", t_sum, t_tree < t_vec4 ? t_tree : t_vec4,
              t_tree < t_vec4 ? "ref_sum_tree" : "ref_sum_vec4", 0.8);
    clReleaseKernel(tree.k);
    clReleaseKernel(vec4.k);
    clReleaseMemObject(part);
    clReleaseMemObject(a);

    /* row and column sums of an m x m matrix of ones */
    int64_t m = cfg->red_n;
    cl_mem x = ref_buffer(&r, (size_t)(m * m) * 4, 1.0f), y = ref_buffer(&r, (size_t)m * 4, 0);
    cl_long ml = m, m4 = m / 4;
    ref_launch rt = {ref_kernel(&r, "ref_rows_tree"), 1, {(size_t)m * r.wg, 0}, {r.wg, 0}, y,
                     (size_t)m, false};
    clSetKernelArg(rt.k, 0, sizeof x, &x);
    clSetKernelArg(rt.k, 1, sizeof ml, &ml);
    clSetKernelArg(rt.k, 2, sizeof y, &y);
    clSetKernelArg(rt.k, 3, r.wg * 4, NULL);
    size_t wg_rows = r.wg < 64 ? r.wg : 64;
    ref_launch rv = {ref_kernel(&r, "ref_rows_vec4"), 1, {(size_t)m, 0}, {wg_rows, 0}, y,
                     (size_t)m, false};
    clSetKernelArg(rv.k, 0, sizeof x, &x);
    clSetKernelArg(rv.k, 1, sizeof m4, &m4);
    clSetKernelArg(rv.k, 2, sizeof y, &y);
    double t_rt = ref_time(&r, &rt, reps, (double)m), t_rv = ref_time(&r, &rv, reps, (double)m);
    double t_rows = ferry_sum_time(m, m, 1, reps);
    printf("(g) row sum references: ref_rows_tree %.3f ms, ref_rows_vec4 %.3f ms\n", t_rt / 1e6,
           t_rv / 1e6);
    char what[64];
    snprintf(what, sizeof what, "row sums %lldx%lld float32", (long long)m, (long long)m);
    goal_line(what, "sum_rows_f32", t_rows, t_rt < t_rv ? t_rt : t_rv,
              t_rt < t_rv ? "ref_rows_tree" : "ref_rows_vec4", 0.7);

    size_t tx = 64, ty = r.wg / 64 ? r.wg / 64 : 1;
    if (r.wg < 64)
        tx = r.wg;
    ref_launch ct = {ref_kernel(&r, "ref_cols_tree"), 2, {(size_t)m, ty}, {tx, ty}, y,
                     (size_t)m, false};
    clSetKernelArg(ct.k, 0, sizeof x, &x);
    clSetKernelArg(ct.k, 1, sizeof ml, &ml);
    clSetKernelArg(ct.k, 2, sizeof ml, &ml);
    clSetKernelArg(ct.k, 3, sizeof y, &y);
    clSetKernelArg(ct.k, 4, tx * ty * 4, NULL);
    ref_launch cv = {ref_kernel(&r, "ref_cols_vec4"), 1, {(size_t)m4, 0}, {wg_rows, 0}, y,
                     (size_t)m, false};
    clSetKernelArg(cv.k, 0, sizeof x, &x);
    clSetKernelArg(cv.k, 1, sizeof ml, &ml);
    clSetKernelArg(cv.k, 2, sizeof m4, &m4);
    clSetKernelArg(cv.k, 3, sizeof y, &y);
    double t_ct = ref_time(&r, &ct, reps, (double)m), t_cv = ref_time(&r, &cv, reps, (double)m);
    double t_cols = ferry_sum_time(m, m, 0, reps);
    printf("(g) column sum references: ref_cols_tree %.3f ms, ref_cols_vec4 %.3f ms\n",
           t_ct / 1e6, t_cv / 1e6);
    snprintf(what, sizeof what, "column sums %lldx%lld float32", (long long)m, (long long)m);
    goal_line(what, "sum_cols_f32", t_cols, t_ct < t_cv ? t_ct : t_cv,
              t_ct < t_cv ? "ref_cols_tree" : "ref_cols_vec4", 0.7);
    fflush(stdout);
    clReleaseKernel(rt.k);
    clReleaseKernel(rv.k);
    clReleaseKernel(ct.k);
    clReleaseKernel(cv.k);
    clReleaseMemObject(x);
    clReleaseMemObject(y);
    ref_close(&r);
}

int main(int argc, char **argv)
{
    config cfg = {false, 5, 256 * MIB, (int64_t)16 << 20, 2000, 1024, 4096};
    bool kernels_only = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            cfg = (config){true, 3, 16 * MIB, (int64_t)1 << 20, 200, 256, 1024};
        } else if (!strcmp(argv[i], "--kernels")) {
            kernels_only = true; /* (b), (c), (f) and (g): what the kernels decide */
        } else {
            fprintf(stderr, "usage: bench_opencl [--quick] [--kernels]\n");
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
    if (!kernels_only) {
        bench_build(&cfg);
        reload("FERRY_OPENCL_MAP_COPIES", "0");
        bench_copies(&cfg, "rw");
        reload("FERRY_OPENCL_MAP_COPIES", "1");
        bench_copies(&cfg, "map");
        reload("FERRY_OPENCL_MAP_COPIES", NULL);
        bench_pinned_copies(&cfg);
    }
    bench_add(&cfg);
    bench_launch(&cfg);
    if (!kernels_only) {
        bench_scalar(&cfg);
        bench_matmul(&cfg);
    }
    bench_sum(&cfg);
    bench_references(&cfg);
    ferry_shutdown();
    return 0;
}

/* CUDA backend benchmarks on cuda:0, each a ratio against the vendor path it wraps, measured
 * in the same run: matmul float32 and bfloat16 N=4096 (ferry_matmul_out vs cublasGemmEx),
 * float32 add of 64M (ferry_add_out vs device-to-device cudaMemcpy bandwidth) and 256 MiB
 * host <-> device (ferry_tensor_to from pageable memory vs cudaMemcpy from pinned memory). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <ferry/ferry.h>

#include "bench_util.h"

#define MIB ((size_t)1 << 20)
#define DEV "cuda:0"

typedef struct config {
    int reps;            /* timed repetitions; the median is reported */
    int64_t matmul_n;
    int matmul_iters;    /* products per repetition, queued back to back */
    int64_t add_numel;
    int add_iters;
    size_t copy_bytes;
} config;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_cuda: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (ferry: %s)\n", ferry_last_error());
    exit(1);
}

static void check_cuda(cudaError_t e, const char *call)
{
    if (e != cudaSuccess)
        die("%s failed: %s (%s)", call, cudaGetErrorString(e), cudaGetErrorName(e));
}

static void check_blas(cublasStatus_t s, const char *call)
{
    if (s != CUBLAS_STATUS_SUCCESS)
        die("%s failed: %s (%s)", call, cublasGetStatusString(s), cublasGetStatusName(s));
}

static void sync_ferry(void)
{
    if (ferry_synchronize(DEV) != FERRY_OK)
        die("ferry_synchronize(%s)", DEV);
}

static void sync_ref(void)
{
    check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

/* One step of work, queued; returns false on failure. */
typedef bool (*step_fn)(void *ctx);

/* Median time of one step: each repetition queues `iters` steps and waits for them, so a
 * step's cost is the device's, not the launch round trip's. One untimed repetition
 * first (cuBLAS heuristics, the caching allocator's blocks, first-touch page faults). */
static double time_steps(const config *cfg, step_fn step, void *ctx, int iters,
                         void (*sync)(void), const char *what)
{
    double *t = calloc((size_t)cfg->reps, sizeof *t);
    if (!t)
        die("out of host memory");
    for (int r = -1; r < cfg->reps; r++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < iters; i++)
            if (!step(ctx))
                die("%s", what);
        sync();
        if (r >= 0)
            t[r] = (bench_now_ns() - t0) / iters;
    }
    double m = bench_median(t, cfg->reps);
    free(t);
    return m;
}

static const char *verdict(double ratio, double goal)
{
    return ratio >= goal ? "meets" : "BELOW";
}

/* Reads element 0 of a device tensor as float. */
static float first_as_float(ferry_tensor *t)
{
    ferry_tensor *flat = ferry_flatten(t, 0, -1);
    ferry_tensor *one = flat ? ferry_slice(flat, 0, 0, 1, 1) : NULL;
    ferry_tensor *f = one ? ferry_tensor_to_dtype(one, FERRY_FLOAT32) : NULL;
    float v = 0.0f;
    if (!f || ferry_tensor_copy_to_host(f, &v, sizeof v) != FERRY_OK)
        die("reading back a result");
    ferry_tensor_release(f);
    ferry_tensor_release(one);
    ferry_tensor_release(flat);
    return v;
}

/* ---- matmul ----------------------------------------------------------------------------- */

/* out, a and b of one ferry op. */
typedef struct operands {
    ferry_tensor *out, *a, *b;
} operands;

static bool mm_step(void *ctx)
{
    operands *m = ctx;
    return ferry_matmul_out(m->out, m->a, m->b) == FERRY_OK;
}

typedef struct blas_mm {
    cublasHandle_t h;
    cudaDataType_t type;
    cublasComputeType_t compute;
    int n;
    void *a, *b, *c;
} blas_mm;

static bool blas_step(void *ctx)
{
    blas_mm *m = ctx;
    float alpha = 1.0f, beta = 0.0f;
    /* Row-major C = A B is column-major C^T = B^T A^T: the operands swap, as in ferry. */
    return cublasGemmEx(m->h, CUBLAS_OP_N, CUBLAS_OP_N, m->n, m->n, m->n, &alpha, m->b, m->type,
                        m->n, m->a, m->type, m->n, &beta, m->c, m->type, m->n, m->compute,
                        CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
}

/* Bits of 0.5 and 0.25 in the element type, so both sides multiply the same numbers. */
static void fill_host(void *p, size_t count, ferry_dtype dt, double v)
{
    if (dt == FERRY_FLOAT32) {
        for (size_t i = 0; i < count; i++)
            ((float *)p)[i] = (float)v;
        return;
    }
    float f = (float)v; /* 0.5 and 0.25 are exact in bfloat16: the top half of the float */
    uint32_t bits;
    memcpy(&bits, &f, 4);
    for (size_t i = 0; i < count; i++)
        ((uint16_t *)p)[i] = (uint16_t)(bits >> 16);
}

/* Computes as ferry does: float32 without TF32 unless FERRY_CUDA_TF32=1 allows it there. */
static bool tf32_allowed(void)
{
    const char *e = getenv("FERRY_CUDA_TF32");
    return e && strcmp(e, "1") == 0;
}

static void bench_matmul(const config *cfg, cublasHandle_t h, ferry_dtype dt)
{
    int64_t n = cfg->matmul_n, shape[2] = {n, n};
    const char *name = dt == FERRY_FLOAT32 ? "float32" : "bfloat16";
    size_t esize = dt == FERRY_FLOAT32 ? 4 : 2, count = (size_t)(n * n);

    operands fm = {ferry_empty(dt, 2, shape, DEV), ferry_full(dt, 2, shape, 0.5, DEV),
                   ferry_full(dt, 2, shape, 0.25, DEV)};
    if (!fm.out || !fm.a || !fm.b)
        die("matmul %s operands on %s", name, DEV);
    double tf = time_steps(cfg, mm_step, &fm, cfg->matmul_iters, sync_ferry,
                           "ferry_matmul_out");
    float got = first_as_float(fm.out);
    if (got != 0.125f * (float)n)
        die("ferry matmul %s gave %g, expected %g", name, (double)got, 0.125 * (double)n);

    blas_mm rm = {h, dt == FERRY_FLOAT32 ? CUDA_R_32F : CUDA_R_16BF,
                 dt == FERRY_FLOAT32 && tf32_allowed() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                       : CUBLAS_COMPUTE_32F,
                 (int)n, NULL, NULL, NULL};
    void *host = malloc(count * esize);
    if (!host)
        die("out of host memory");
    check_cuda(cudaMalloc(&rm.a, count * esize), "cudaMalloc");
    check_cuda(cudaMalloc(&rm.b, count * esize), "cudaMalloc");
    check_cuda(cudaMalloc(&rm.c, count * esize), "cudaMalloc");
    fill_host(host, count, dt, 0.5);
    check_cuda(cudaMemcpy(rm.a, host, count * esize, cudaMemcpyHostToDevice), "cudaMemcpy");
    fill_host(host, count, dt, 0.25);
    check_cuda(cudaMemcpy(rm.b, host, count * esize, cudaMemcpyHostToDevice), "cudaMemcpy");
    double tr = time_steps(cfg, blas_step, &rm, cfg->matmul_iters, sync_ref, "cublasGemmEx");
    check_cuda(cudaMemcpy(host, rm.c, esize, cudaMemcpyDeviceToHost), "cudaMemcpy");
    fill_host((char *)host + esize, 1, dt, 0.125 * (double)n);
    if (memcmp(host, (char *)host + esize, esize) != 0)
        die("cublasGemmEx %s gave a wrong result", name);

    double flops = 2.0 * (double)n * (double)n * (double)n, ratio = tr / tf;
    printf("matmul %s %lld: ferry %.1f TFLOP/s, cublasGemmEx %.1f TFLOP/s, ratio %.3f (goal "
           ">= 0.95: %s)\n",
           name, (long long)n, flops / tf / 1e3, flops / tr / 1e3, ratio, verdict(ratio, 0.95));
    printf("BENCH figure=matmul_%s n=%lld ferry_tflops=%.3f cublas_tflops=%.3f ratio=%.3f\n",
           dt == FERRY_FLOAT32 ? "f32" : "bf16", (long long)n, flops / tf / 1e3,
           flops / tr / 1e3, ratio);
    fflush(stdout);
    cudaFree(rm.a);
    cudaFree(rm.b);
    cudaFree(rm.c);
    free(host);
    ferry_tensor_release(fm.out);
    ferry_tensor_release(fm.a);
    ferry_tensor_release(fm.b);
}

/* ---- add against the copy bandwidth ------------------------------------------------------ */

static bool add_step(void *ctx)
{
    operands *x = ctx;
    return ferry_add_out(x->out, x->a, x->b) == FERRY_OK;
}

typedef struct memcpy_op {
    void *dst;
    const void *src;
    size_t nbytes;
    enum cudaMemcpyKind kind;
} memcpy_op;

static bool memcpy_step(void *ctx)
{
    memcpy_op *c = ctx;
    return cudaMemcpy(c->dst, c->src, c->nbytes, c->kind) == cudaSuccess;
}

static void bench_add(const config *cfg)
{
    int64_t n = cfg->add_numel;
    size_t nbytes = (size_t)n * 4;
    operands fa = {ferry_empty(FERRY_FLOAT32, 1, &n, DEV),
                    ferry_full(FERRY_FLOAT32, 1, &n, 1.5, DEV),
                    ferry_full(FERRY_FLOAT32, 1, &n, 2.0, DEV)};
    if (!fa.out || !fa.a || !fa.b)
        die("add operands on %s", DEV);
    double tf = time_steps(cfg, add_step, &fa, cfg->add_iters, sync_ferry, "ferry_add_out");
    ferry_tensor *last = ferry_slice(fa.out, 0, n - 1, n, 1);
    float got = last ? first_as_float(last) : 0.0f;
    if (got != 3.5f)
        die("ferry add gave %g, expected 3.5", (double)got);
    ferry_tensor_release(last);

    memcpy_op rc = {NULL, NULL, nbytes, cudaMemcpyDeviceToDevice};
    void *src = NULL;
    check_cuda(cudaMalloc(&rc.dst, nbytes), "cudaMalloc");
    check_cuda(cudaMalloc(&src, nbytes), "cudaMalloc");
    check_cuda(cudaMemset(src, 0x3f, nbytes), "cudaMemset");
    rc.src = src;
    double tr = time_steps(cfg, memcpy_step, &rc, cfg->add_iters, sync_ref, "cudaMemcpy");

    /* Bytes that cross the memory bus: add reads two arrays and writes one, a copy reads
     * one and writes one. */
    double add_gbs = 3.0 * (double)nbytes / tf, copy_gbs = 2.0 * (double)nbytes / tr;
    double ratio = add_gbs / copy_gbs;
    printf("add float32 %lld: ferry %.0f GB/s, device-to-device cudaMemcpy %.0f GB/s, ratio %.3f "
           "(goal >= 0.85: %s)\n",
           (long long)n, add_gbs, copy_gbs, ratio, verdict(ratio, 0.85));
    printf("BENCH figure=add_f32 numel=%lld ferry_gbs=%.1f memcpy_gbs=%.1f ratio=%.3f\n",
           (long long)n, add_gbs, copy_gbs, ratio);
    fflush(stdout);
    cudaFree(rc.dst);
    cudaFree(src);
    ferry_tensor_release(fa.out);
    ferry_tensor_release(fa.a);
    ferry_tensor_release(fa.b);
}

/* ---- host <-> device ---------------------------------------------------------------------- */

typedef struct move_op {
    ferry_tensor *src;
    const char *to;
} move_op;

/* A complete move: to() returns once the copy is done, and the copy is dropped at once so
 * the next repetition reuses its cached block. */
static bool move_step(void *ctx)
{
    move_op *m = ctx;
    ferry_tensor *t = ferry_tensor_to(m->src, m->to);
    ferry_tensor_release(t);
    return t != NULL;
}

static void nothing(void)
{
}

static void report_copy(const char *dir, size_t nbytes, double tf, double tr)
{
    double ratio = tr / tf;
    printf("%s %zu MiB: ferry_tensor_to %.1f GB/s, pinned cudaMemcpy %.1f GB/s, ratio %.3f "
           "(goal >= 0.8: %s)\n",
           dir, nbytes / MIB, (double)nbytes / tf, (double)nbytes / tr, ratio,
           verdict(ratio, 0.8));
    printf("BENCH figure=%s mib=%zu ferry_gbs=%.2f pinned_gbs=%.2f ratio=%.3f\n",
           strcmp(dir, "host->cuda:0") == 0 ? "to_device" : "to_host", nbytes / MIB,
           (double)nbytes / tf, (double)nbytes / tr, ratio);
    fflush(stdout);
}

static void bench_copies(const config *cfg)
{
    size_t nbytes = cfg->copy_bytes;
    int64_t numel = (int64_t)(nbytes / 4);
    /* ferry's side reads ordinary (pageable) memory, what an application hands it. */
    float *host = malloc(nbytes);
    if (!host)
        die("out of host memory");
    for (int64_t i = 0; i < numel; i++)
        host[i] = (float)(i % 1000);
    ferry_tensor *src = ferry_tensor_from_blob(host, FERRY_FLOAT32, 1, &numel, NULL, NULL, NULL);
    if (!src)
        die("ferry_tensor_from_blob");
    move_op up = {src, DEV};
    double up_f = time_steps(cfg, move_step, &up, 1, nothing, "ferry_tensor_to(cuda:0)");
    ferry_tensor *dev = ferry_tensor_to(src, DEV);
    if (!dev)
        die("ferry_tensor_to(%s)", DEV);
    move_op down = {dev, "cpu"};
    double down_f = time_steps(cfg, move_step, &down, 1, nothing, "ferry_tensor_to(cpu)");
    ferry_tensor *back = ferry_tensor_to(dev, "cpu");
    const void *back_data = back ? ferry_tensor_host_data(back) : NULL;
    if (!back_data || memcmp(back_data, host, nbytes) != 0)
        die("the round trip through %s changed the data", DEV);
    ferry_tensor_release(back);

    void *pinned = NULL, *dbuf = NULL;
    check_cuda(cudaMallocHost(&pinned, nbytes), "cudaMallocHost");
    check_cuda(cudaMalloc(&dbuf, nbytes), "cudaMalloc");
    memcpy(pinned, host, nbytes);
    memcpy_op h2d = {dbuf, pinned, nbytes, cudaMemcpyHostToDevice};
    memcpy_op d2h = {pinned, dbuf, nbytes, cudaMemcpyDeviceToHost};
    double up_r = time_steps(cfg, memcpy_step, &h2d, 1, nothing, "cudaMemcpy (to device)");
    double down_r = time_steps(cfg, memcpy_step, &d2h, 1, nothing, "cudaMemcpy (to host)");

    report_copy("host->cuda:0", nbytes, up_f, up_r);
    report_copy("cuda:0->host", nbytes, down_f, down_r);
    cudaFreeHost(pinned);
    cudaFree(dbuf);
    ferry_tensor_release(dev);
    ferry_tensor_release(src);
    free(host);
}

int main(int argc, char **argv)
{
    config cfg = {5, 4096, 10, (int64_t)64 << 20, 20, 256 * MIB};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            cfg = (config){3, 1024, 5, (int64_t)4 << 20, 10, 16 * MIB};
        } else {
            fprintf(stderr, "usage: bench_cuda [--quick]\n");
            return 2;
        }
    }
    /* No GPU is a normal state of a build machine, not a failure. */
    if (ferry_device_count("cuda") < 1) {
        const char *why = ferry_backend_status("cuda");
        printf("bench_cuda: %s\n", why ? why : "cuda: no device");
        printf("bench_cuda: no CUDA device; nothing was measured\n");
        return 0;
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        printf("bench_cuda: the reference runtime sees no device: %s (%s)\n",
               e != cudaSuccess ? cudaGetErrorString(e) : "0 devices",
               e != cudaSuccess ? cudaGetErrorName(e) : "cudaGetDeviceCount");
        printf("bench_cuda: no CUDA device; nothing was measured\n");
        return 0;
    }
    check_cuda(cudaSetDevice(0), "cudaSetDevice");
    ferry_device_info info;
    if (ferry_device_get_info(DEV, &info) != FERRY_OK)
        die("ferry_device_get_info(%s)", DEV);
    printf("bench_cuda: ferry %s, %s = %s (%s, %d SMs, %s), float32 TF32 %s "
           "(FERRY_CUDA_TF32), median of %d\n",
           ferry_version(), DEV, info.name, info.arch, (int)info.compute_units,
           info.driver_version, tf32_allowed() ? "on" : "off", cfg.reps);
    fflush(stdout);

    cublasHandle_t h;
    check_blas(cublasCreate(&h), "cublasCreate");
    bench_matmul(&cfg, h, FERRY_FLOAT32);
    bench_matmul(&cfg, h, FERRY_BFLOAT16);
    bench_add(&cfg);
    bench_copies(&cfg);
    cublasDestroy(h);
    ferry_shutdown();
    return 0;
}

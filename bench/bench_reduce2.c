/* bench_reduce2: softmax over the rows of a 4096 x 4096 float32 tensor, ferry's cpu
 * kernel against an OpenMP C loop written here (three passes per row: max, exp and sum,
 * scale), in one run; then the same op on opencl:0 (when present) as a ratio to cpu.
 * Medians of repetitions after a warm-up. --quick: fewer repetitions, a smaller tensor. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

#include "bench_util.h"

static void omp_softmax_rows(float *restrict y, const float *restrict x, int64_t rows, int64_t n)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float m = xr[0];
        for (int64_t i = 1; i < n; i++)
            m = xr[i] > m ? xr[i] : m;
        float s = 0;
        for (int64_t i = 0; i < n; i++) {
            yr[i] = expf(xr[i] - m);
            s += yr[i];
        }
        float inv = 1 / s;
        for (int64_t i = 0; i < n; i++)
            yr[i] *= inv;
    }
}

static double time_ferry(ferry_tensor *x, const char *dev, int reps)
{
    double t[64];
    for (int i = 0; i < reps + 1; i++) {
        double t0 = bench_now_ns();
        ferry_tensor *y = ferry_softmax(x, -1);
        ferry_synchronize(dev);
        double t1 = bench_now_ns();
        if (!y) {
            fprintf(stderr, "bench_reduce2: softmax on %s failed: %s\n", dev, ferry_last_error());
            return -1;
        }
        ferry_tensor_release(y);
        if (i > 0)
            t[i - 1] = t1 - t0;
    }
    return bench_median(t, reps);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int64_t rows = quick ? 1024 : 4096, n = quick ? 1024 : 4096;
    int reps = quick ? 5 : 15;
    size_t bytes = (size_t)(rows * n) * sizeof(float);
    float *x = bench_touched(bytes), *y = bench_touched(bytes);
    for (int64_t i = 0; i < rows * n; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 100.0f - 5.0f;
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("bench_reduce2: softmax over rows of %lld x %lld float32, %d threads, %s\n",
           (long long)rows, (long long)n, omp_get_max_threads(), cpu);

    double tr[64];
    for (int i = 0; i < reps + 1; i++) {
        double t0 = bench_now_ns();
        omp_softmax_rows(y, x, rows, n);
        bench_escape(y);
        double t1 = bench_now_ns();
        if (i > 0)
            tr[i - 1] = t1 - t0;
    }
    double ref = bench_median(tr, reps);

    int64_t shape[2] = {rows, n};
    ferry_tensor *xc = ferry_tensor_from_data(x, FERRY_FLOAT32, 2, shape, "cpu");
    if (!xc) {
        fprintf(stderr, "bench_reduce2: %s\n", ferry_last_error());
        return 1;
    }
    /* The same values as the reference saw, checked once. */
    ferry_tensor *yc = ferry_softmax(xc, -1);
    const float *got = yc ? ferry_tensor_host_data(yc) : NULL;
    double err = 0;
    for (int64_t i = 0; got && i < rows * n; i++)
        err = fmax(err, fabs((double)got[i] - (double)y[i]));
    ferry_tensor_release(yc);
    double fc = time_ferry(xc, "cpu", reps);
    if (fc < 0)
        return 1;
    printf("  OpenMP C loop        %9.2f ms\n", ref / 1e6);
    printf("  ferry cpu            %9.2f ms   ratio (C loop / ferry) %.2f   (goal >= 0.8; max "
           "|diff| %.2g)\n",
           fc / 1e6, ref / fc, err);
    if (ferry_device_count("opencl") > 0) {
        ferry_tensor *xo = ferry_tensor_to(xc, "opencl:0");
        double fo = xo ? time_ferry(xo, "opencl:0", reps) : -1;
        if (fo > 0)
            printf("  ferry opencl:0       %9.2f ms   ratio to cpu (cpu / opencl) %.2f\n", fo / 1e6,
                   fc / fo);
        ferry_tensor_release(xo);
    } else {
        printf("  opencl:0: no device, skipped\n");
    }
    ferry_tensor_release(xc);
    free(x);
    free(y);
    return 0;
}

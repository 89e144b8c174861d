/* Sorting benchmarks: ferry_sort and ferry_topk on cpu against C's qsort and a single
 * pass scan written here (same process, same data), and opencl:0 against cpu as a ratio.
 * NumPy's figures (the goals) are in bench/bench_sort.py.
 * usage: bench_sort [n] (default 16M). Medians of 3 runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ferry.h>

#include "bench_util.h"

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef enum { SORT_VALUES, SORT_INDEXED, TOPK10 } what;

static double time_op(what w, ferry_tensor *t, int dim)
{
    char dev[32];
    ferry_device_format(ferry_tensor_device(t), dev, sizeof dev);
    double v[3];
    for (int r = 0; r < 3; r++) {
        ferry_tensor *a = NULL, *b = NULL;
        double s = bench_now_ns();
        ferry_status st = w == TOPK10 ? ferry_topk(t, 10, dim, true, true, &a, &b)
                                      : ferry_sort(t, dim, false, false, &a,
                                                   w == SORT_INDEXED ? &b : NULL);
        if (st == FERRY_OK)
            st = ferry_synchronize(dev);
        v[r] = bench_now_ns() - s;
        if (st != FERRY_OK) {
            fprintf(stderr, "bench_sort: %s\n", ferry_last_error());
            exit(1);
        }
        ferry_tensor_release(a);
        ferry_tensor_release(b);
    }
    return bench_median(v, 3) * 1e-6;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : (int64_t)1 << 24;
    float *x = malloc(sizeof(float) * (size_t)n);
    uint64_t s = 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    }
    ferry_tensor *t = ferry_tensor_from_data(x, FERRY_FLOAT32, 1, &n, "cpu");
    double fv = time_op(SORT_VALUES, t, 0), fi = time_op(SORT_INDEXED, t, 0);
    double fk = time_op(TOPK10, t, 0);
    float *y = malloc(sizeof(float) * (size_t)n);
    memcpy(y, x, sizeof(float) * (size_t)n);
    double q0 = bench_now_ns();
    qsort(y, (size_t)n, sizeof(float), cmp_float);
    double qs = (bench_now_ns() - q0) * 1e-6;
    /* One scan keeping the largest value: the least any topk must do. */
    double m0 = bench_now_ns();
    float best = x[0];
    for (int64_t i = 1; i < n; i++)
        best = x[i] > best ? x[i] : best;
    bench_escape(&best);
    double scan = (bench_now_ns() - m0) * 1e-6;
    printf("cpu sort %lld float32: values %.1f ms, with indices %.1f ms; qsort %.1f ms "
           "(ratio %.2f)\n",
           (long long)n, fv, fi, qs, qs / fv);
    printf("cpu topk 10 of %lld: %.2f ms; one max scan (single thread) %.2f ms\n", (long long)n,
           fk, scan);
    if (ferry_device_count("opencl") > 0) {
        /* A million elements: as one row, and as 1024 rows of 1024. */
        int64_t m = n < ((int64_t)1 << 20) ? n : ((int64_t)1 << 20);
        int64_t shape2[2] = {1024, m / 1024};
        ferry_tensor *c1 = ferry_tensor_from_data(x, FERRY_FLOAT32, 1, &m, "cpu");
        ferry_tensor *c2 = ferry_tensor_from_data(x, FERRY_FLOAT32, 2, shape2, "cpu");
        ferry_tensor *o1 = ferry_tensor_to(c1, "opencl:0"), *o2 = ferry_tensor_to(c2, "opencl:0");
        if (o1 && o2) {
            time_op(SORT_INDEXED, o1, 0); /* builds the program */
            double a1 = time_op(SORT_INDEXED, o1, 0), b1 = time_op(SORT_INDEXED, c1, 0);
            double a2 = time_op(SORT_INDEXED, o2, 1), b2 = time_op(SORT_INDEXED, c2, 1);
            double a3 = time_op(TOPK10, o1, 0), b3 = time_op(TOPK10, c1, 0);
            printf("opencl:0 sort of %lld (one row): %.1f ms, cpu %.1f ms (opencl/cpu time %.2f)\n",
                   (long long)m, a1, b1, a1 / b1);
            printf("opencl:0 sort of 1024 rows of %lld: %.1f ms, cpu %.1f ms (%.2f)\n",
                   (long long)shape2[1], a2, b2, a2 / b2);
            printf("opencl:0 topk 10 of %lld: %.1f ms, cpu %.2f ms (%.2f)\n", (long long)m, a3,
                   b3, a3 / b3);
        }
        ferry_tensor_release(c1);
        ferry_tensor_release(c2);
        ferry_tensor_release(o1);
        ferry_tensor_release(o2);
    }
    ferry_tensor_release(t);
    free(x);
    free(y);
    return 0;
}

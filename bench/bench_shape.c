/* cat of two 64 MiB float32 tensors on cpu against memcpy of the same bytes into one
 * buffer (issue 10's goal: ratio >= 0.8), and the same cat on opencl:0 where present.
 * Medians of several runs in one process; a busy machine gives noisy absolute figures,
 * the ratio is what is reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ferry.h>

#include "bench_util.h"

#define RUNS 7

static double time_cat(const char *dev, int64_t n)
{
    int64_t shape[1] = {n};
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 1, shape, dev);
    ferry_tensor *b = ferry_ones(FERRY_FLOAT32, 1, shape, dev);
    if (!a || !b) {
        ferry_tensor_release(a);
        ferry_tensor_release(b);
        return -1;
    }
    const ferry_tensor *in[2] = {a, b};
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        ferry_tensor *c = ferry_cat(in, 2, 0);
        ferry_synchronize(dev);
        t[r] = bench_now_ns() - t0;
        ferry_tensor_release(c);
    }
    ferry_tensor_release(a);
    ferry_tensor_release(b);
    return bench_median(t, RUNS);
}

int main(void)
{
    const int64_t n = (64 << 20) / 4; /* 64 MiB of float32 each */
    size_t bytes = (size_t)n * 4;
    char *src1 = bench_touched(bytes), *src2 = bench_touched(bytes);
    double t[RUNS];
    /* One touched destination: ferry's caching allocator hands cat a block it has had
     * before, so neither side pays first-touch page faults. */
    char *dst = bench_touched(2 * bytes);
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        memcpy(dst, src1, bytes);
        memcpy(dst + bytes, src2, bytes);
        bench_escape(dst);
        t[r] = bench_now_ns() - t0;
    }
    double ref = bench_median(t, RUNS);
    double cpu = time_cat("cpu", n);
    printf("cat 2 x 64 MiB float32: memcpy %.2f ms, ferry cpu %.2f ms, ratio %.2f (goal >= 0.8)\n",
           ref / 1e6, cpu / 1e6, ref / cpu);
    double ocl = time_cat("opencl:0", n);
    if (ocl > 0)
        printf("cat on opencl:0: %.2f ms, ratio to cpu %.2f\n", ocl / 1e6, cpu / ocl);
    else
        printf("cat on opencl:0: skipped (no device: %s)\n", ferry_last_error());
    free(dst);
    free(src1);
    free(src2);
    return 0;
}

/* index_select and gather of 1M rows on the cpu against plain OpenMP C loops doing the
 * same copies (issue 10: goal >= 0.8), and t[idx] (ferry_index) of the same rows against
 * index_select. Rows of 16 float32; medians of 7 runs. Then t.index_put_((idx,), v,
 * accumulate=True) of the same 1M rows into 64K rows (16 duplicates each on average)
 * on the cpu and, when present, opencl:0 as a ratio to the cpu. Figures from a shared
 * machine are indicative only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ferry.h>

#include "bench_util.h"

#define ROWS (1 << 20)
#define COLS 16
#define RUNS 7

#define PUT_ROWS (ROWS / 16)

/* Median time of index_put accumulate of (ROWS, COLS) ones at idx into (PUT_ROWS, COLS)
 * zeros on dev; checks the total once, so a wrong kernel cannot look fast. */
static double time_put(const char *dev, const int64_t *iv)
{
    int64_t vshape[2] = {ROWS, COLS}, tshape[2] = {PUT_ROWS, COLS};
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 2, tshape, dev);
    ferry_tensor *v = ferry_ones(FERRY_FLOAT32, 2, vshape, dev);
    ferry_tensor *idx = ferry_tensor_from_data(iv, FERRY_INT64, 1, (int64_t[]){ROWS}, dev);
    if (!t || !v || !idx) {
        fprintf(stderr, "put setup on %s: %s\n", dev, ferry_last_error());
        exit(1);
    }
    double ts[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        ferry_status st = ferry_index_put(t, 1, (const ferry_tensor *const[]){idx}, v, true);
        ferry_synchronize(dev);
        ts[r] = bench_now_ns() - t0;
        if (st != FERRY_OK) {
            fprintf(stderr, "index_put on %s: %s\n", dev, ferry_last_error());
            exit(1);
        }
    }
    /* Each element holds a small integer, exact in float32; summed in float64. */
    ferry_tensor *t64 = ferry_tensor_to_dtype(t, FERRY_FLOAT64);
    ferry_tensor *s64 = t64 ? ferry_sum(t64, 0, NULL, false) : NULL;
    double total = 0;
    if (!s64 || ferry_tensor_copy_to_host(s64, &total, sizeof total) != FERRY_OK ||
        total != (double)RUNS * ROWS * COLS) {
        fprintf(stderr, "index_put on %s: total %.0f, not %.0f\n", dev, total,
                (double)RUNS * ROWS * COLS);
        exit(1);
    }
    ferry_tensor_release(s64);
    ferry_tensor_release(t64);
    ferry_tensor_release(t);
    ferry_tensor_release(v);
    ferry_tensor_release(idx);
    return bench_median(ts, RUNS);
}

int main(void)
{
    int64_t shape[2] = {ROWS, COLS};
    ferry_tensor *src = ferry_ones(FERRY_FLOAT32, 2, shape, "cpu");
    int64_t *iv = malloc(sizeof(int64_t) * ROWS);
    int64_t *gv = malloc(sizeof(int64_t) * ROWS * COLS);
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < ROWS; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        iv[i] = (int64_t)(s % ROWS);
        for (int c = 0; c < COLS; c++)
            gv[i * COLS + c] = iv[i];
    }
    ferry_tensor *idx = ferry_tensor_from_data(iv, FERRY_INT64, 1, (int64_t[]){ROWS}, "cpu");
    ferry_tensor *gidx = ferry_tensor_from_data(gv, FERRY_INT64, 2, shape, "cpu");
    if (!src || !idx || !gidx) {
        fprintf(stderr, "setup: %s\n", ferry_last_error());
        return 1;
    }
    const float *sp = ferry_tensor_host_data(src);
    float *dst = bench_touched(sizeof(float) * ROWS * COLS);
    double t_sel[RUNS], t_gat[RUNS], t_loop[RUNS], t_gloop[RUNS], t_adv[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        ferry_tensor *o = ferry_index_select(src, 0, idx);
        t_sel[r] = bench_now_ns() - t0;
        ferry_tensor_release(o);
        t0 = bench_now_ns();
        o = ferry_index(src, 1, (const ferry_tensor *const[]){idx});
        t_adv[r] = bench_now_ns() - t0;
        if (!o) {
            fprintf(stderr, "ferry_index: %s\n", ferry_last_error());
            return 1;
        }
        ferry_tensor_release(o);
        t0 = bench_now_ns();
        o = ferry_gather(src, 0, gidx);
        t_gat[r] = bench_now_ns() - t0;
        ferry_tensor_release(o);
        t0 = bench_now_ns();
#pragma omp parallel for
        for (int64_t i = 0; i < ROWS; i++)
            memcpy(dst + i * COLS, sp + iv[i] * COLS, sizeof(float) * COLS);
        t_loop[r] = bench_now_ns() - t0;
        bench_escape(dst);
        t0 = bench_now_ns();
#pragma omp parallel for
        for (int64_t i = 0; i < ROWS; i++)
            for (int c = 0; c < COLS; c++)
                dst[i * COLS + c] = sp[gv[i * COLS + c] * COLS + c];
        t_gloop[r] = bench_now_ns() - t0;
        bench_escape(dst);
    }
    double sel = bench_median(t_sel, RUNS), gat = bench_median(t_gat, RUNS);
    double loop = bench_median(t_loop, RUNS), gloop = bench_median(t_gloop, RUNS);
    double adv = bench_median(t_adv, RUNS);
    printf("index_select 1M x 16 float32: %.2f ms, C loop %.2f ms, ratio %.2f (goal >= 0.8)\n",
           sel / 1e6, loop / 1e6, loop / sel);
    printf("gather       1M x 16 float32: %.2f ms, C loop %.2f ms, ratio %.2f (goal >= 0.8)\n",
           gat / 1e6, gloop / 1e6, gloop / gat);
    printf("t[idx]       1M x 16 float32: %.2f ms, index_select %.2f ms, ratio %.2f, C loop ratio %.2f\n",
           adv / 1e6, sel / 1e6, sel / adv, loop / adv);
    for (int64_t i = 0; i < ROWS; i++)
        iv[i] %= PUT_ROWS;
    double put_cpu = time_put("cpu", iv);
    printf("index_put accumulate 1M x 16 float32 into 64K rows: cpu %.2f ms\n", put_cpu / 1e6);
    if (ferry_is_available("opencl")) {
        double put_ocl = time_put("opencl:0", iv);
        printf("index_put accumulate on opencl:0: %.2f ms, ratio to cpu %.3f\n", put_ocl / 1e6,
               put_cpu / put_ocl);
    }
    ferry_tensor_release(src);
    ferry_tensor_release(idx);
    ferry_tensor_release(gidx);
    free(iv);
    free(gv);
    free(dst);
    return 0;
}

/* index_select and gather of 1M rows on the cpu against plain OpenMP C loops doing the
 * same copies (issue 10: goal >= 0.8), and t[idx] (ferry_index) of the same rows against
 * index_select. Rows of 16 float32; medians of 7 runs. Then t.index_put_((idx,), v,
 * accumulate=True) of the same 1M rows into 64K rows (16 duplicates each on average)
 * on the cpu and, when present, opencl:0 as a ratio to the cpu. Then advanced indexing
 * off the one-index-over-rows path (goal >= 0.8 of a C loop): t[i, j] of 1M random
 * (i, j) from a 4096x4096 float32, t[:, idx] of 4096 random columns of a 1024x65536
 * float32, and index_put of the same places (assign, and accumulate). Figures from a
 * shared machine are indicative only. */
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

#define AN 4096               /* t[i, j]: AN x AN source */
#define AK (1 << 20)          /* (i, j) pairs */
#define CR 1024               /* t[:, idx]: CR x CC source, CK columns */
#define CC 65536
#define CK 4096

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static ferry_tensor *host_tensor(ferry_dtype dt, int nd, const int64_t *shape)
{
    ferry_tensor *t = ferry_empty(dt, nd, shape, "cpu");
    if (!t) {
        fprintf(stderr, "setup: %s\n", ferry_last_error());
        exit(1);
    }
    return t;
}

static void check_same(const char *what, const void *a, const void *b, size_t n)
{
    if (memcmp(a, b, n) != 0) {
        fprintf(stderr, "%s: ferry and the C loop disagree\n", what);
        exit(1);
    }
}

static void print_ratio(const char *what, double *tf, double *tc)
{
    double f = bench_median(tf, RUNS), c = bench_median(tc, RUNS);
    printf("%-44s %7.2f ms, C loop %7.2f ms, ratio %.2f (goal >= 0.8)\n", what, f / 1e6, c / 1e6,
           c / f);
}

/* The multi-index walk: gathers, then index_put assign and accumulate of the same
 * places. The accumulating C loops are serial where ferry's sums are (the indices span
 * the first dim, so ferry keeps one thread to sum duplicates in a fixed order). */
static void bench_adv(void)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    ferry_tensor *a = host_tensor(FERRY_FLOAT32, 2, (int64_t[]){AN, AN});
    ferry_tensor *ti = host_tensor(FERRY_INT64, 1, (int64_t[]){AK});
    ferry_tensor *tj = host_tensor(FERRY_INT64, 1, (int64_t[]){AK});
    ferry_tensor *va = host_tensor(FERRY_FLOAT32, 1, (int64_t[]){AK});
    float *ap = ferry_tensor_host_data(a), *vap = ferry_tensor_host_data(va);
    int64_t *ip = ferry_tensor_host_data(ti), *jp = ferry_tensor_host_data(tj);
    for (int64_t q = 0; q < (int64_t)AN * AN; q++)
        ap[q] = (float)(q & 0xffff);
    for (int64_t q = 0; q < AK; q++) {
        ip[q] = (int64_t)(xorshift(&s) % AN);
        jp[q] = (int64_t)(xorshift(&s) % AN);
        vap[q] = 1.0f;
    }
    ferry_tensor *b = host_tensor(FERRY_FLOAT32, 2, (int64_t[]){CR, CC});
    ferry_tensor *tc = host_tensor(FERRY_INT64, 1, (int64_t[]){CK});
    ferry_tensor *vb = host_tensor(FERRY_FLOAT32, 2, (int64_t[]){CR, CK});
    float *bp = ferry_tensor_host_data(b), *vbp = ferry_tensor_host_data(vb);
    int64_t *cp = ferry_tensor_host_data(tc);
    for (int64_t q = 0; q < (int64_t)CR * CC; q++)
        bp[q] = (float)(q & 0xffff);
    for (int64_t q = 0; q < CK; q++)
        cp[q] = (int64_t)(xorshift(&s) % CC);
    for (int64_t q = 0; q < (int64_t)CR * CK; q++)
        vbp[q] = 1.0f;
    float *dst = bench_touched(sizeof(float) * (AK > CR * CK ? AK : CR * CK));
    float *ref = bench_touched(sizeof(float) * (size_t)CR * CC);
    const ferry_tensor *ij[2] = {ti, tj}, *sc[2] = {NULL, tc};
    double tf[RUNS], tl[RUNS];

    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        ferry_tensor *o = ferry_index(a, 2, ij);
        tf[r] = bench_now_ns() - t0;
        t0 = bench_now_ns();
#pragma omp parallel for
        for (int64_t q = 0; q < AK; q++)
            dst[q] = ap[ip[q] * AN + jp[q]];
        tl[r] = bench_now_ns() - t0;
        bench_escape(dst);
        if (!o) {
            fprintf(stderr, "t[i, j]: %s\n", ferry_last_error());
            exit(1);
        }
        check_same("t[i, j]", ferry_tensor_host_data(o), dst, sizeof(float) * AK);
        ferry_tensor_release(o);
    }
    print_ratio("t[i, j] 1M of 4096x4096 float32:", tf, tl);

    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        ferry_tensor *o = ferry_index(b, 2, sc);
        tf[r] = bench_now_ns() - t0;
        t0 = bench_now_ns();
#pragma omp parallel for
        for (int64_t q = 0; q < CR; q++)
            for (int64_t c = 0; c < CK; c++)
                dst[q * CK + c] = bp[q * CC + cp[c]];
        tl[r] = bench_now_ns() - t0;
        bench_escape(dst);
        if (!o) {
            fprintf(stderr, "t[:, idx]: %s\n", ferry_last_error());
            exit(1);
        }
        check_same("t[:, idx]", ferry_tensor_host_data(o), dst, sizeof(float) * CR * CK);
        ferry_tensor_release(o);
    }
    print_ratio("t[:, idx] 4096 cols of 1024x65536 float32:", tf, tl);

    /* index_put into a, then into b; each C loop writes its own copy (ref) of the same
     * tensor, compared once after the last run. */
    for (int acc = 0; acc < 2; acc++) {
        memcpy(ref, ap, sizeof(float) * AN * AN);
        for (int r = 0; r < RUNS; r++) {
            double t0 = bench_now_ns();
            ferry_status st = ferry_index_put(a, 2, ij, va, acc);
            tf[r] = bench_now_ns() - t0;
            t0 = bench_now_ns();
            if (acc) {
                for (int64_t q = 0; q < AK; q++)
                    ref[ip[q] * AN + jp[q]] += vap[q];
            } else {
#pragma omp parallel for
                for (int64_t q = 0; q < AK; q++)
                    ref[ip[q] * AN + jp[q]] = vap[q];
            }
            tl[r] = bench_now_ns() - t0;
            bench_escape(ref);
            if (st != FERRY_OK) {
                fprintf(stderr, "index_put t[i, j]: %s\n", ferry_last_error());
                exit(1);
            }
        }
        check_same("index_put t[i, j]", ap, ref, sizeof(float) * AN * AN);
        print_ratio(acc ? "t[i, j] += v (serial C loop):" : "t[i, j] = v:", tf, tl);
    }
    for (int acc = 0; acc < 2; acc++) {
        memcpy(ref, bp, sizeof(float) * CR * CC);
        for (int r = 0; r < RUNS; r++) {
            double t0 = bench_now_ns();
            ferry_status st = ferry_index_put(b, 2, sc, vb, acc);
            tf[r] = bench_now_ns() - t0;
            t0 = bench_now_ns();
#pragma omp parallel for
            for (int64_t q = 0; q < CR; q++)
                for (int64_t c = 0; c < CK; c++) {
                    if (acc)
                        ref[q * CC + cp[c]] += vbp[q * CK + c];
                    else
                        ref[q * CC + cp[c]] = vbp[q * CK + c];
                }
            tl[r] = bench_now_ns() - t0;
            bench_escape(ref);
            if (st != FERRY_OK) {
                fprintf(stderr, "index_put t[:, idx]: %s\n", ferry_last_error());
                exit(1);
            }
        }
        check_same("index_put t[:, idx]", bp, ref, sizeof(float) * CR * CC);
        print_ratio(acc ? "t[:, idx] += v:" : "t[:, idx] = v:", tf, tl);
    }
    ferry_tensor_release(a);
    ferry_tensor_release(ti);
    ferry_tensor_release(tj);
    ferry_tensor_release(va);
    ferry_tensor_release(b);
    ferry_tensor_release(tc);
    ferry_tensor_release(vb);
    free(dst);
    free(ref);
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
    bench_adv();
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

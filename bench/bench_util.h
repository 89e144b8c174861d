/* What every benchmark shares: a monotonic clock, medians of repetitions, a barrier that
 * keeps the compiler from deleting measured work, pre-faulted buffers and the CPU's name
 * for the report. */
#ifndef FERRY_BENCH_UTIL_H
#define FERRY_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Keeps the compiler from proving a buffer dead and dropping the work that fills it. */
static inline void bench_escape(void *p)
{
    __asm__ volatile("" : : "g"(p) : "memory");
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* 64-byte aligned memory with its pages faulted in, so first-touch costs stay out of
 * reference loops as ferry's caching allocator keeps them out of its warmed-up loops.
 * Exits on failure: a benchmark without its buffers has nothing to measure. */
static inline void *bench_touched(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        fprintf(stderr, "bench: out of memory allocating %zu bytes\n", n);
        exit(1);
    }
    memset(p, 0x5a, n);
    return p;
}

/* "model name" from /proc/cpuinfo, or "unknown". */
static inline void bench_cpu_model(char *buf, size_t cap)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(buf, cap, "unknown");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (!v)
            break;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = '\0';
        snprintf(buf, cap, "%s", v);
        break;
    }
    fclose(f);
}

#endif /* FERRY_BENCH_UTIL_H */

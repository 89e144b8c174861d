/* randn of 16M float32 on the cpu against writing the same 64 MiB (memset, one thread and
 * OpenMP), and rand/randint/opencl figures beside it, in one run. Goal (issue 10): randn
 * at least half the write bandwidth. numpy's default_rng().standard_normal is measured by
 * bench/bench_random.py in the same way.
 *
 * The comparison is fair on page faults (the caching allocator hands each draw the block
 * the warm-up draw faulted in, as memset's buffer is touched first) and on threads (the
 * better of memset on one thread and on all). Wall times on a shared machine swing with
 * its load, so the CPU time the process spent (summed over its threads) is reported too:
 * it says what a draw costs per element however busy the cores were (an upper bound:
 * OpenMP threads that wait spin; FERRY_NUM_THREADS=1 OMP_NUM_THREADS=1 gives one core's).
 * randn / rand says how much of randn is the normal transform: rand is the Philox words
 * and one multiply, so its ratio to the write bandwidth bounds what any transform reaches
 * (on the 2-core Zen 4 this was measured on, rand alone was about 0.4 of it). */
#include <omp.h>
#include <stdint.h>
#include <time.h>

#include <ferry/ferry.h>

#include "bench_util.h"

#define N ((int64_t)16 << 20)
#define REPS 7

typedef ferry_tensor *(*draw_fn)(const char *dev, ferry_generator *g);

static ferry_tensor *d_randn(const char *dev, ferry_generator *g)
{
    return ferry_randn(FERRY_FLOAT32, 1, (int64_t[]){N}, dev, g);
}
static ferry_tensor *d_rand(const char *dev, ferry_generator *g)
{
    return ferry_rand(FERRY_FLOAT32, 1, (int64_t[]){N}, dev, g);
}
static ferry_tensor *d_randint(const char *dev, ferry_generator *g)
{
    return ferry_randint(0, 1000, FERRY_INT32, 1, (int64_t[]){N}, dev, g);
}

static double time_draw(draw_fn f, const char *dev, ferry_generator *g)
{
    double t[REPS];
    ferry_tensor_release(f(dev, g)); /* warm: allocator, programs */
    ferry_synchronize(dev);
    for (int r = 0; r < REPS; r++) {
        double t0 = bench_now_ns();
        ferry_tensor *x = f(dev, g);
        ferry_synchronize(dev);
        t[r] = bench_now_ns() - t0;
        if (!x) {
            fprintf(stderr, "draw failed: %s\n", ferry_last_error());
            exit(1);
        }
        ferry_tensor_release(x);
    }
    return bench_median(t, REPS);
}

static double cpu_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Median CPU time of randn on the cpu and of a one-thread memset of the same bytes. */
static void cpu_times(ferry_generator *g, double *randn_ns, double *memset_ns)
{
    size_t bytes = (size_t)N * 4;
    char *p = bench_touched(bytes);
    double tr[REPS], tm[REPS];
    ferry_tensor_release(d_randn("cpu", g));
    for (int r = 0; r < REPS; r++) {
        double t0 = cpu_now_ns();
        ferry_tensor *x = d_randn("cpu", g);
        tr[r] = cpu_now_ns() - t0;
        if (!x) {
            fprintf(stderr, "draw failed: %s\n", ferry_last_error());
            exit(1);
        }
        ferry_tensor_release(x);
        t0 = cpu_now_ns();
        memset(p, r, bytes);
        bench_escape(p);
        tm[r] = cpu_now_ns() - t0;
    }
    free(p);
    *randn_ns = bench_median(tr, REPS);
    *memset_ns = bench_median(tm, REPS);
}

static double time_memset(int threads)
{
    size_t bytes = (size_t)N * 4;
    char *p = bench_touched(bytes);
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = bench_now_ns();
#pragma omp parallel num_threads(threads)
        {
            int k = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t lo = bytes * (size_t)k / (size_t)nt, hi = bytes * (size_t)(k + 1) / (size_t)nt;
            memset(p + lo, r, hi - lo);
        }
        bench_escape(p);
        t[r] = bench_now_ns() - t0;
    }
    free(p);
    return bench_median(t, REPS);
}

int main(void)
{
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    int threads = omp_get_max_threads();
    printf("bench_random: %lld float32 (64 MiB), median of %d; %s, %d OpenMP threads\n",
           (long long)N, REPS, cpu, threads);
    ferry_generator *g = ferry_generator_create(1);
    double ms1 = time_memset(1), msn = time_memset(threads);
    double best_write = ms1 < msn ? ms1 : msn;
    printf("  memset 64 MiB        1 thread %8.2f ms (%6.2f GB/s), %d threads %8.2f ms (%6.2f GB/s)\n",
           ms1 / 1e6, N * 4 / ms1, threads, msn / 1e6, N * 4 / msn);
    struct {
        const char *name;
        draw_fn f;
    } draws[] = {{"randn f32", d_randn}, {"rand f32", d_rand}, {"randint i32", d_randint}};
    double cpu_t[3];
    for (int i = 0; i < 3; i++) {
        cpu_t[i] = time_draw(draws[i].f, "cpu", g);
        printf("  cpu   %-12s %8.2f ms (%6.2f GB/s written), write-bandwidth ratio %.2f\n",
               draws[i].name, cpu_t[i] / 1e6, N * 4 / cpu_t[i], best_write / cpu_t[i]);
    }
    /* rand is Philox and a multiply: what any normal transform is added to. */
    printf("  cpu   randn / rand %.2f: rand is Philox4x32-10 and one multiply, the floor under any "
           "transform (its write-bandwidth ratio bounds randn's)\n",
           cpu_t[0] / cpu_t[1]);
    double rc, mc;
    cpu_times(g, &rc, &mc);
    printf("  cpu time: randn f32 %.2f ms summed over threads (%.2f ns per element), memset "
           "%.2f ms: %.2f of memset per core, so about %.2f at best on %d idle cores\n",
           rc / 1e6, rc / N, mc / 1e6, mc / rc, threads * mc / rc, threads);
    if (ferry_is_available("opencl")) {
        for (int i = 0; i < 3; i++) {
            double t = time_draw(draws[i].f, "opencl:0", g);
            printf("  opencl:0 %-12s %8.2f ms, ratio to cpu %.2f\n", draws[i].name, t / 1e6,
                   cpu_t[i] / t);
        }
    }
    ferry_generator_release(g);
    return 0;
}

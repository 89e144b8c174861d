/* Autograd benchmarks, each a ratio measured in this one run: the cost of recording (a
 * 1-element add whose inputs require grad vs the same add without), forward+backward of a
 * chain of 100 one-element ops, one MLP training step at batch 64 (cpu and opencl:0), and
 * the backward of a 1024x1024 matmul against two forward matmuls of the same size.
 *
 *   bench_autograd [--quick]
 */
#include <math.h>
#include <stdbool.h>

#include <ferry/ferry.h>

#include "bench_util.h"

static int reps = 15;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "bench_autograd: %s failed: %s\n", what, ferry_last_error());
        exit(1);
    }
}

static ferry_tensor *filled(int ndim, const int64_t *shape, double v, bool rg, const char *dev)
{
    ferry_tensor *t = ferry_full(FERRY_FLOAT32, ndim, shape, v, dev);
    check(t != NULL, "ferry_full");
    if (rg)
        check(ferry_tensor_set_requires_grad(t, true) == FERRY_OK, "set_requires_grad");
    return t;
}

/* Median ns per iteration of `iters` 1-element adds. */
static double add_ns(bool rg, int iters)
{
    int64_t one = 1;
    ferry_tensor *a = filled(1, &one, 1.0, rg, NULL), *b = filled(1, &one, 2.0, rg, NULL);
    double t[64];
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < iters; i++) {
            ferry_tensor *c = ferry_add(a, b);
            bench_escape(c);
            ferry_tensor_release(c);
        }
        t[r] = (bench_now_ns() - t0) / iters;
    }
    ferry_tensor_release(a);
    ferry_tensor_release(b);
    return bench_median(t, reps);
}

/* Median ns for forward + backward of 100 chained one-element ops (mul, add, tanh, ...). */
static double chain_ns(void)
{
    int64_t one = 1;
    double t[64];
    for (int r = 0; r < reps; r++) {
        ferry_tensor *x = filled(1, &one, 0.5, true, NULL);
        double t0 = bench_now_ns();
        ferry_tensor *y = ferry_tensor_retain(x);
        for (int i = 0; i < 100; i++) {
            ferry_tensor *z = i % 4 == 0   ? ferry_mul_scalar(y, 1.01)
                              : i % 4 == 1 ? ferry_add_scalar(y, 0.1)
                              : i % 4 == 2 ? ferry_tanh(y)
                                           : ferry_mul(y, y);
            check(z != NULL, "chain op");
            ferry_tensor_release(y);
            y = z;
        }
        ferry_tensor *s = ferry_sum(y, 0, NULL, false);
        check(s && ferry_backward(s, NULL, false) == FERRY_OK, "chain backward");
        t[r] = bench_now_ns() - t0;
        ferry_tensor_release(s);
        ferry_tensor_release(y);
        ferry_tensor_release(x);
    }
    return bench_median(t, reps);
}

/* One SGD step of the 2-64-2 tanh MLP with softmax cross-entropy at batch 64. */
static double mlp_step_ns(const char *dev, int steps)
{
    int64_t xs[2] = {64, 2}, w1s[2] = {2, 64}, b1s[2] = {1, 64}, w2s[2] = {64, 2}, b2s[2] = {1, 2};
    ferry_tensor *x = filled(2, xs, 0.3, false, dev), *y = filled(2, xs, 0.5, false, dev);
    ferry_tensor *p[4] = {filled(2, w1s, 0.1, true, dev), filled(2, b1s, 0.0, true, dev),
                          filled(2, w2s, -0.1, true, dev), filled(2, b2s, 0.0, true, dev)};
    double t[64];
    int d = 1;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now_ns();
        for (int s = 0; s < steps; s++) {
            ferry_tensor *h0 = ferry_matmul(x, p[0]), *h1 = ferry_add(h0, p[1]);
            ferry_tensor *h = ferry_tanh(h1), *z0 = ferry_matmul(h, p[2]), *z = ferry_add(z0, p[3]);
            ferry_tensor *m = ferry_max(z, 1, &d, true), *md = ferry_tensor_detach(m);
            ferry_tensor *zc = ferry_sub(z, md), *e = ferry_exp(zc), *se = ferry_sum(e, 1, &d, true);
            ferry_tensor *l = ferry_log(se), *lp = ferry_sub(zc, l), *pk = ferry_mul(lp, y);
            ferry_tensor *row = ferry_sum(pk, 1, &d, false), *mean = ferry_mean(row, 0, NULL, false);
            ferry_tensor *loss = ferry_neg(mean);
            check(loss && ferry_backward(loss, NULL, false) == FERRY_OK, "mlp backward");
            ferry_tensor *tmp[] = {h0, h1, h, z0, z, m, md, zc, e, se, l, lp, pk, row, mean, loss};
            for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
                ferry_tensor_release(tmp[i]);
            bool prev = ferry_set_grad_enabled(false);
            for (int i = 0; i < 4; i++) {
                ferry_tensor *g = ferry_tensor_grad(p[i]);
                ferry_tensor *u = ferry_mul_scalar(g, 0.01);
                check(u && ferry_sub_out(p[i], p[i], u) == FERRY_OK, "sgd");
                ferry_tensor_set_grad(p[i], NULL);
                ferry_tensor_release(u);
                ferry_tensor_release(g);
            }
            ferry_set_grad_enabled(prev);
        }
        check(ferry_synchronize(dev) == FERRY_OK, "synchronize");
        t[r] = (bench_now_ns() - t0) / steps;
    }
    for (int i = 0; i < 4; i++)
        ferry_tensor_release(p[i]);
    ferry_tensor_release(x);
    ferry_tensor_release(y);
    return bench_median(t, reps);
}

/* Backward of C = A @ B (both require grad, n x n) against two forward matmuls. */
static void matmul_backward(int64_t n, double *bwd_ns, double *fwd2_ns)
{
    int64_t s[2] = {n, n};
    ferry_tensor *a = filled(2, s, 0.01, true, NULL), *b = filled(2, s, 0.02, true, NULL);
    ferry_tensor *g = filled(2, s, 1.0, false, NULL);
    int r2 = reps < 7 ? reps : 7;
    double tb[64], tf[64];
    for (int r = 0; r < r2; r++) {
        ferry_tensor *c = ferry_matmul(a, b);
        check(c != NULL, "matmul");
        double t0 = bench_now_ns();
        check(ferry_backward(c, g, false) == FERRY_OK, "matmul backward");
        tb[r] = bench_now_ns() - t0;
        ferry_tensor_release(c);
        ferry_tensor_set_grad(a, NULL);
        ferry_tensor_set_grad(b, NULL);
        bool prev = ferry_set_grad_enabled(false);
        t0 = bench_now_ns();
        ferry_tensor *f1 = ferry_matmul(a, b), *f2 = ferry_matmul(a, b);
        tf[r] = bench_now_ns() - t0;
        ferry_set_grad_enabled(prev);
        ferry_tensor_release(f1);
        ferry_tensor_release(f2);
    }
    *bwd_ns = bench_median(tb, r2);
    *fwd2_ns = bench_median(tf, r2);
    ferry_tensor_release(a);
    ferry_tensor_release(b);
    ferry_tensor_release(g);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (quick)
        reps = 3;
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("bench_autograd on %s (median of %d runs)\n\n", cpu, reps);

    int iters = quick ? 2000 : 200000;
    double plain = add_ns(false, iters), rec = add_ns(true, iters);
    printf("1-element add              without grad %8.1f ns   requires_grad %8.1f ns   "
           "ratio %.2fx (goal < 2x)\n",
           plain, rec, rec / plain);

    double chain = chain_ns();
    printf("chain of 100 1-element ops forward+backward %8.1f us  (%.2f us per op)\n",
           chain / 1e3, chain / 1e3 / 100);

    int steps = quick ? 5 : 100;
    double mc = mlp_step_ns("cpu", steps);
    printf("MLP 2-64-2 SGD step, batch 64, cpu       %8.1f us\n", mc / 1e3);
    if (ferry_is_available("opencl")) {
        double mo = mlp_step_ns("opencl:0", steps);
        printf("MLP 2-64-2 SGD step, batch 64, opencl:0  %8.1f us\n", mo / 1e3);
    } else {
        printf("MLP step on opencl:0 skipped: %s\n", ferry_backend_status("opencl"));
    }

    int64_t n = quick ? 256 : 1024;
    double bwd, fwd2;
    matmul_backward(n, &bwd, &fwd2);
    printf("%lldx%lld matmul backward %8.2f ms   two forward matmuls %8.2f ms   "
           "ratio (2 fwd / bwd) %.2f (goal >= 0.9)\n",
           (long long)n, (long long)n, bwd / 1e6, fwd2 / 1e6, fwd2 / bwd);
    ferry_shutdown();
    return 0;
}

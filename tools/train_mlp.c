/* ferry-train-mlp: the C twin of python/examples/train_mlp.py. A 2-layer MLP (tanh hidden
 * layer) learns two interleaved spirals with softmax cross-entropy written with ferry's
 * ops, gradients from ferry_backward and plain SGD applied in place under no-grad mode, on
 * every device (or those named); exits 1 when an accuracy falls below the bar.
 *
 *   ferry-train-mlp [--device D]... [--steps N] [--lr X] [--hidden H] [--min-accuracy A]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/ferry.h>

#include "mlp_model.h"

typedef struct config {
    int steps, hidden, points;
    double lr, min_accuracy;
} config;

/* The same data set as the Python example (same generator and constants). */
static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void two_spirals(int n, float *pts, float *onehot)
{
    const double turns = 1.5, noise = 0.03, scale = 5.0;
    uint32_t s = 1;
    for (int c = 0, k = 0; c < 2; c++)
        for (int i = 0; i < n; i++, k++) {
            double t = (i + 0.5) / n, theta = 2 * M_PI * turns * t + c * M_PI, r = 0.1 + 0.9 * t;
            double u1 = xorshift(&s) / 4294967296.0, u2 = xorshift(&s) / 4294967296.0;
            pts[2 * k] = (float)(scale * (r * cos(theta) + noise * (2 * u1 - 1)));
            pts[2 * k + 1] = (float)(scale * (r * sin(theta) + noise * (2 * u2 - 1)));
            onehot[2 * k] = c == 0;
            onehot[2 * k + 1] = c == 1;
        }
}

static uint64_t lcg_state;

static float uniform(double bound)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(bound * (2 * ((double)(lcg_state >> 11) / 9007199254740992.0) - 1));
}

static ferry_tensor *param(int64_t rows, int64_t cols, int fan_in, const char *dev)
{
    float *v = malloc((size_t)(rows * cols) * sizeof *v);
    for (int64_t i = 0; i < rows * cols; i++)
        v[i] = uniform(1 / sqrt(fan_in));
    int64_t shape[2] = {rows, cols};
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, shape, dev);
    free(v);
    if (t && ferry_tensor_set_requires_grad(t, true) != FERRY_OK) {
        ferry_tensor_release(t);
        return NULL;
    }
    return t;
}

static double accuracy(ferry_tensor *const *p, ferry_tensor *x, ferry_tensor *onehot)
{
    bool prev = ferry_set_grad_enabled(false);
    int d = 1;
    ferry_tensor *z = forward(p, x);
    ferry_tensor *pred = z ? take(ferry_argmax(z, 1, &d, false), z, NULL) : NULL;
    ferry_tensor *truth = pred ? ferry_argmax(onehot, 1, &d, false) : NULL;
    ferry_tensor *eq = truth ? take(ferry_eq(pred, truth), pred, truth) : take(NULL, pred, NULL);
    ferry_tensor *n = eq ? take(ferry_sum(eq, 0, NULL, false), eq, NULL) : NULL;
    ferry_tensor *h = n ? take(ferry_tensor_cpu(n), n, NULL) : NULL;
    int64_t count = -1;
    if (!h || ferry_tensor_copy_to_host(h, &count, sizeof count) != FERRY_OK)
        count = -1;
    ferry_tensor_release(h);
    ferry_set_grad_enabled(prev);
    return count < 0 ? -1.0 : (double)count / (double)ferry_tensor_shape(x)[0];
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Trains on dev; returns the final accuracy, or -1 with a message on failure. */
static double train(const char *dev, const config *cfg, double *ms_per_step)
{
    int n = cfg->points;
    float *pts = malloc((size_t)(4 * n) * sizeof *pts), *oh = malloc((size_t)(4 * n) * sizeof *oh);
    two_spirals(n, pts, oh);
    int64_t shape[2] = {2 * n, 2};
    ferry_tensor *x = ferry_tensor_from_data(pts, FERRY_FLOAT32, 2, shape, dev);
    ferry_tensor *y = ferry_tensor_from_data(oh, FERRY_FLOAT32, 2, shape, dev);
    free(pts);
    free(oh);
    lcg_state = 1;
    ferry_tensor *p[4] = {param(2, cfg->hidden, 2, dev), param(1, cfg->hidden, 2, dev),
                          param(cfg->hidden, 2, cfg->hidden, dev), param(1, 2, cfg->hidden, dev)};
    double acc = -1, t0 = now();
    bool ok = x && y && p[0] && p[1] && p[2] && p[3];
    for (int step = 0; ok && step < cfg->steps; step++) {
        ferry_tensor *z = forward(p, x);
        ferry_tensor *loss = z ? take(cross_entropy(z, y), z, NULL) : NULL;
        ok = loss && ferry_backward(loss, NULL, false) == FERRY_OK;
        ferry_tensor_release(loss);
        bool prev = ferry_set_grad_enabled(false);
        for (int i = 0; ok && i < 4; i++) {
            ferry_tensor *g = ferry_tensor_grad(p[i]);
            ferry_tensor *u = g ? ferry_mul_scalar(g, cfg->lr) : NULL;
            ok = u && ferry_sub_out(p[i], p[i], u) == FERRY_OK &&
                 ferry_tensor_set_grad(p[i], NULL) == FERRY_OK;
            ferry_tensor_release(u);
            ferry_tensor_release(g);
        }
        ferry_set_grad_enabled(prev);
    }
    if (ok)
        ok = ferry_synchronize(dev) == FERRY_OK;
    *ms_per_step = 1e3 * (now() - t0) / cfg->steps;
    if (ok)
        acc = accuracy(p, x, y);
    if (acc < 0)
        fprintf(stderr, "%s: %s: %s\n", dev, ferry_status_name(ferry_last_status()),
                ferry_last_error());
    for (int i = 0; i < 4; i++)
        ferry_tensor_release(p[i]);
    ferry_tensor_release(x);
    ferry_tensor_release(y);
    return acc;
}

int main(int argc, char **argv)
{
    config cfg = {.steps = 1500, .hidden = 64, .points = 200, .lr = 0.5, .min_accuracy = 0.95};
    const char *devs[16];
    int ndev = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "ferry-train-mlp: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--device") == 0 && ndev < 16)
            devs[ndev++] = v;
        else if (strcmp(a, "--steps") == 0)
            cfg.steps = atoi(v);
        else if (strcmp(a, "--lr") == 0)
            cfg.lr = atof(v);
        else if (strcmp(a, "--hidden") == 0)
            cfg.hidden = atoi(v);
        else if (strcmp(a, "--min-accuracy") == 0)
            cfg.min_accuracy = atof(v);
        else {
            fprintf(stderr, "ferry-train-mlp: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (cfg.steps <= 0 || cfg.hidden <= 0) {
        fprintf(stderr, "ferry-train-mlp: --steps and --hidden must be positive\n");
        return 2;
    }
    ferry_device found[16];
    char names[16][32];
    if (ndev == 0) {
        size_t n = ferry_devices(found, 16);
        for (size_t i = 0; i < n && i < 16; i++) {
            ferry_device_format(found[i], names[i], sizeof names[i]);
            devs[ndev++] = names[i];
        }
    }
    int failed = 0;
    for (int i = 0; i < ndev; i++) {
        double ms;
        double acc = train(devs[i], &cfg, &ms);
        bool ok = acc >= cfg.min_accuracy;
        failed |= !ok;
        printf("%s: training accuracy %.3f after %d steps (%.2f ms/step)%s\n", devs[i], acc,
               cfg.steps, ms, ok ? "" : "  BELOW the required accuracy");
    }
    ferry_shutdown();
    return failed;
}

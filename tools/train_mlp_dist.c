/* ferry-train-mlp-dist: the MLP of tools/train_mlp.c (two spirals, tanh hidden layer,
 * softmax cross-entropy, plain SGD) trained data-parallel: every rank of an mpirun job
 * takes an equal shard of the batch, and after each backward the gradients are averaged
 * with ferry_all_reduce(FERRY_DIST_AVG), so every rank applies the same update.
 *
 *   mpirun -np 2 ferry-train-mlp-dist [--device D]... [--steps N] [--lr X] [--hidden H]
 *                                     [--points P] [--tolerance T]
 *
 * Checks, per device (default cpu), and exits 1 when one fails:
 * - after the last step every rank holds bitwise the same weights (each rank compares
 *   its own with rank 0's, broadcast);
 * - they equal, to float32 rounding, a single-process run on the concatenated batch
 *   (rank 0 trains it too, with the same initial weights): the largest difference of a
 *   weight, relative to max(1, |weight|), stays within T (default 1e-6, 8 float32 ulps
 *   at 1.0: the two runs differ only in the order their sums add up; 30 steps on 2 or 3
 *   ranks measure 1.2e-7).
 * The Python twin is python/examples/train_mlp_dist.py.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry/distributed.h>

#include "mlp_model.h"

#define NPARAM 4

typedef struct config {
    int steps, hidden, points;
    double lr, tolerance;
} config;

static int rank, world;

/* The data set of tools/train_mlp.c: two interleaved spirals, n points per class. */
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

/* Initial weights, uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), the same on every rank. */
static void init_weights(const config *cfg, float *w[NPARAM], const int64_t shapes[NPARAM][2])
{
    uint64_t s = 1;
    const int fan_in[NPARAM] = {2, 2, cfg->hidden, cfg->hidden};
    for (int i = 0; i < NPARAM; i++)
        for (int64_t k = 0; k < shapes[i][0] * shapes[i][1]; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(s >> 11) / 9007199254740992.0;
            w[i][k] = (float)((2 * u - 1) / sqrt(fan_in[i]));
        }
}

/* SGD on (x, y) from weights w; averages the gradients over the world when `dist`.
 * Leaves the final weights in w and the last loss in *loss. */
static bool train(const char *dev, const config *cfg, float *w[NPARAM],
                  const int64_t shapes[NPARAM][2], ferry_tensor *x, ferry_tensor *y, bool dist,
                  double *loss_out)
{
    ferry_tensor *p[NPARAM] = {0};
    bool ok = true;
    for (int i = 0; ok && i < NPARAM; i++) {
        p[i] = ferry_tensor_from_data(w[i], FERRY_FLOAT32, 2, shapes[i], dev);
        ok = p[i] && ferry_tensor_set_requires_grad(p[i], true) == FERRY_OK;
    }
    for (int step = 0; ok && step < cfg->steps; step++) {
        ferry_tensor *z = forward(p, x);
        ferry_tensor *loss = z ? take(cross_entropy(z, y), z, NULL) : NULL;
        ok = loss && ferry_backward(loss, NULL, false) == FERRY_OK;
        if (ok && step == cfg->steps - 1) {
            float l = 0;
            ok = ferry_tensor_copy_to_host(loss, &l, sizeof l) == FERRY_OK;
            *loss_out = l;
        }
        ferry_tensor_release(loss);
        bool prev = ferry_set_grad_enabled(false);
        for (int i = 0; ok && i < NPARAM; i++) {
            ferry_tensor *g = ferry_tensor_grad(p[i]);
            /* Each rank's loss is the mean over its shard, and the shards are equal, so
             * the average of the ranks' gradients is the gradient of the whole batch. */
            ok = g && (!dist || ferry_all_reduce(g, FERRY_DIST_AVG, NULL) == FERRY_OK);
            ferry_tensor *u = ok ? ferry_mul_scalar(g, cfg->lr) : NULL;
            ok = u && ferry_sub_out(p[i], p[i], u) == FERRY_OK &&
                 ferry_tensor_set_grad(p[i], NULL) == FERRY_OK;
            ferry_tensor_release(u);
            ferry_tensor_release(g);
        }
        ferry_set_grad_enabled(prev);
    }
    for (int i = 0; i < NPARAM; i++) {
        if (ok)
            ok = ferry_tensor_copy_to_host(p[i], w[i],
                                           (size_t)ferry_tensor_numel(p[i]) * sizeof(float)) ==
                 FERRY_OK;
        ferry_tensor_release(p[i]);
    }
    return ok;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ferry_tensor *rows_tensor(const float *v, int64_t rows, const char *dev)
{
    int64_t shape[2] = {rows, 2};
    return ferry_tensor_from_data(v, FERRY_FLOAT32, 2, shape, dev);
}

/* How many weights of this rank differ, bit for bit, from rank 0's (broadcast). */
static int64_t differ_from_rank0(float *w[NPARAM], const int64_t shapes[NPARAM][2])
{
    int64_t differ = 0;
    for (int i = 0; i < NPARAM; i++) {
        ferry_tensor *t = ferry_tensor_from_data(w[i], FERRY_FLOAT32, 2, shapes[i], "cpu");
        size_t nb = (size_t)(shapes[i][0] * shapes[i][1]) * sizeof(float);
        float *theirs = malloc(nb);
        if (!t || !theirs || ferry_broadcast(t, 0, NULL) != FERRY_OK ||
            ferry_tensor_copy_to_host(t, theirs, nb) != FERRY_OK)
            differ = -1;
        for (size_t k = 0; differ >= 0 && k < nb / sizeof(float); k++)
            differ += memcmp(&theirs[k], &w[i][k], sizeof(float)) != 0;
        free(theirs);
        ferry_tensor_release(t);
        if (differ < 0)
            return -1;
    }
    return differ;
}

/* Trains on dev across the world and checks both properties; true when they hold. */
static bool run(const char *dev, const config *cfg)
{
    int n = cfg->points;
    int64_t total = (2 * (int64_t)n / world) * world, local = total / world;
    const int64_t shapes[NPARAM][2] = {{2, cfg->hidden}, {1, cfg->hidden}, {cfg->hidden, 2}, {1, 2}};
    float *pts = malloc((size_t)(4 * n) * sizeof *pts), *oh = malloc((size_t)(4 * n) * sizeof *oh);
    float *spts = malloc((size_t)(2 * total) * sizeof *spts);
    float *soh = malloc((size_t)(2 * total) * sizeof *soh);
    float *w[NPARAM], *ref[NPARAM];
    for (int i = 0; i < NPARAM; i++) {
        w[i] = malloc((size_t)(shapes[i][0] * shapes[i][1]) * sizeof(float));
        ref[i] = malloc((size_t)(shapes[i][0] * shapes[i][1]) * sizeof(float));
    }
    two_spirals(n, pts, oh);
    init_weights(cfg, w, shapes);
    init_weights(cfg, ref, shapes);
    /* Shard r is rows r, r + world, r + 2 world, ...: every shard sees both classes.
     * spts holds the shards one after the other: the concatenated batch. */
    for (int r = 0; r < world; r++)
        for (int64_t k = 0; k < local; k++)
            for (int c = 0; c < 2; c++) {
                spts[2 * (r * local + k) + c] = pts[2 * (k * world + r) + c];
                soh[2 * (r * local + k) + c] = oh[2 * (k * world + r) + c];
            }
    ferry_tensor *x = rows_tensor(spts + 2 * rank * local, local, dev);
    ferry_tensor *y = rows_tensor(soh + 2 * rank * local, local, dev);
    double loss = 0, t0 = now();
    bool ok = x && y && train(dev, cfg, w, shapes, x, y, true, &loss);
    double ms = 1e3 * (now() - t0) / cfg->steps;
    /* The whole batch's loss is the mean of the shards' (equal shards). */
    float lv = (float)loss;
    ferry_tensor *lt = ferry_tensor_from_data(&lv, FERRY_FLOAT32, 1, (int64_t[]){1}, "cpu");
    if (!lt || ferry_all_reduce(lt, FERRY_DIST_AVG, NULL) != FERRY_OK ||
        ferry_tensor_copy_to_host(lt, &lv, sizeof lv) != FERRY_OK)
        ok = false;
    ferry_tensor_release(lt);
    loss = lv;
    ferry_tensor_release(x);
    ferry_tensor_release(y);
    if (!ok)
        fprintf(stderr, "rank %d: %s: training failed: %s: %s\n", rank, dev,
                ferry_status_name(ferry_last_status()), ferry_last_error());

    /* Every rank learns whether every rank holds rank 0's weights bit for bit. */
    int64_t differ = ok ? differ_from_rank0(w, shapes) : -1;
    int64_t flag[2] = {differ != 0, differ < 0 ? 0 : differ};
    ferry_tensor *f = ferry_tensor_from_data(flag, FERRY_INT64, 1, (int64_t[]){2}, "cpu");
    if (!f || ferry_all_reduce(f, FERRY_DIST_MAX, NULL) != FERRY_OK ||
        ferry_tensor_copy_to_host(f, flag, sizeof flag) != FERRY_OK)
        flag[0] = 1;
    ferry_tensor_release(f);
    bool same = flag[0] == 0;
    if (!same && rank == 0)
        fprintf(stderr, "%s: the ranks' weights differ (up to %lld weights on one rank)\n", dev,
                (long long)flag[1]);

    bool close = true;
    if (rank == 0 && ok) {
        ferry_tensor *xa = rows_tensor(spts, total, dev), *ya = rows_tensor(soh, total, dev);
        double ref_loss = 0, worst = 0, worst_abs = 0;
        close = xa && ya && train(dev, cfg, ref, shapes, xa, ya, false, &ref_loss);
        ferry_tensor_release(xa);
        ferry_tensor_release(ya);
        for (int i = 0; close && i < NPARAM; i++)
            for (int64_t k = 0; k < shapes[i][0] * shapes[i][1]; k++) {
                double d = fabs((double)w[i][k] - ref[i][k]);
                double rel = d / fmax(1.0, fabs(ref[i][k]));
                worst = fmax(worst, rel);
                worst_abs = fmax(worst_abs, d);
            }
        if (!close)
            fprintf(stderr, "%s: the single-process run failed: %s\n", dev, ferry_last_error());
        else
            close = worst <= cfg->tolerance;
        printf("%s: %d ranks x %lld points, %d steps: loss %.6f (one process: %.6f), weights "
               "%s across ranks, largest difference from one process %.3g (relative %.3g, "
               "tolerance %.3g)%s; %.2f ms/step\n",
               dev, world, (long long)local, cfg->steps, loss, ref_loss,
               same ? "bitwise identical" : "DIFFERENT", worst_abs, worst, cfg->tolerance,
               close ? "" : "  ABOVE the tolerance", ms);
        fflush(stdout);
    }
    for (int i = 0; i < NPARAM; i++) {
        free(w[i]);
        free(ref[i]);
    }
    free(pts);
    free(oh);
    free(spts);
    free(soh);
    return ok && same && close;
}

int main(int argc, char **argv)
{
    config cfg = {.steps = 30, .hidden = 32, .points = 150, .lr = 0.5, .tolerance = 1e-6};
    const char *devs[16];
    int ndev = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "ferry-train-mlp-dist: %s needs a value\n", a);
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
        else if (strcmp(a, "--points") == 0)
            cfg.points = atoi(v);
        else if (strcmp(a, "--tolerance") == 0)
            cfg.tolerance = atof(v);
        else {
            fprintf(stderr, "ferry-train-mlp-dist: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (cfg.steps <= 0 || cfg.hidden <= 0 || cfg.points <= 0 || cfg.points > (1 << 24) ||
        cfg.hidden > (1 << 16) || !(cfg.tolerance >= 0)) {
        fprintf(stderr, "ferry-train-mlp-dist: --steps, --hidden and --points must be "
                        "positive (points <= 2^24, hidden <= 65536), --tolerance >= 0\n");
        return 2;
    }
    if (ndev == 0)
        devs[ndev++] = "cpu";
    if (ferry_dist_init(NULL) != FERRY_OK) {
        fprintf(stderr, "ferry-train-mlp-dist: %s\n", ferry_last_error());
        return 1;
    }
    rank = ferry_dist_rank();
    world = ferry_dist_world_size();
    if (2 * cfg.points < world) {
        fprintf(stderr, "ferry-train-mlp-dist: %d points cannot be shared by %d ranks\n",
                2 * cfg.points, world);
        ferry_dist_finalize();
        return 2;
    }
    int failed = 0;
    for (int i = 0; i < ndev; i++)
        failed |= !run(devs[i], &cfg);
    ferry_dist_finalize();
    ferry_shutdown();
    return failed;
}

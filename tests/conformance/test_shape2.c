/* Triangles, diagonals and constant padding: tril/triu on every dtype, layout and device
 * against index arithmetic done here, diagonal as a view sharing storage, diag_embed,
 * pad with positive and negative pads, PyTorch's refusals, and no CPU fallback on a
 * device with kernels. */
#include "conformance.h"

#define SHAPE(...) (int64_t[]){__VA_ARGS__}

static void unravel(int nd, const int64_t *shape, int64_t flat, int64_t *idx)
{
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
}

static int64_t ravel(int nd, const int64_t *shape, const int64_t *idx)
{
    int64_t flat = 0;
    for (int d = 0; d < nd; d++)
        flat = flat * shape[d] + idx[d];
    return flat;
}

/* ---- tril / triu ---- */

static void test_shape2_tril_triu_match_index_arithmetic_on_every_dtype_layout_and_device(
    void **state)
{
    (void)state;
    static const conf_layout layouts[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED, CONF_PERMUTED,
                                          CONF_SLICED, CONF_NEGATIVE, CONF_EXPANDED};
    static const int64_t diags[] = {-3, -1, 0, 1, 2, 7, INT64_MIN, INT64_MAX};
    CONF_FOR_EACH_DEVICE(dev) {
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                for (int upper = 0; upper < 2; upper++) {
                    const char *op = upper ? "triu" : "tril";
                    conf_where w = {op, conf_dtype_name(dt), conf_layout_name(layouts[li]), dev};
                    conf_rng r = conf_rng_seed(op, w.dtype, w.kase, 0);
                    conf_operand spec = {3, {3, 4, 5}, layouts[li], 0, {0}};
                    if (layouts[li] == CONF_EXPANDED) {
                        spec.from_ndim = 3;
                        memcpy(spec.from, SHAPE(1, 4, 5), sizeof(int64_t[3]));
                    }
                    conf_array av, got;
                    ferry_tensor *a = conf_make(&w, &spec, dt, dev, &r, &conf_default_domain, &av);
                    if (!a)
                        continue;
                    for (size_t k = 0; k < sizeof diags / sizeof diags[0]; k++) {
                        uint64_t before = conf_fallbacks(dev);
                        ferry_tensor *t = upper ? ferry_triu(a, diags[k]) : ferry_tril(a, diags[k]);
                        conf_check_no_fallback(&w, before);
                        if (!t) {
                            conf_fail_call(&w, op);
                            continue;
                        }
                        if (conf_read(&w, t, dt, 3, spec.shape, dev, &got)) {
                            double *ref = malloc((size_t)got.numel * sizeof *ref);
                            int64_t idx[3];
                            for (int64_t e = 0; e < got.numel; e++) {
                                unravel(3, spec.shape, e, idx);
                                /* column - row against the diagonal, in int64 without
                                 * overflow: both lie in [-4, 4]. */
                                int64_t c = idx[2] - idx[1];
                                bool keep = upper ? c >= diags[k] : c <= diags[k];
                                ref[e] = keep ? av.v[e] : 0.0;
                            }
                            conf_compare(&w, &got, ref, NULL);
                            free(ref);
                            conf_array_free(&got);
                        }
                        ferry_tensor_release(t);
                    }
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
            }
            /* 2-D, a single row, an empty batch. */
            static const int64_t shapes[][3] = {{0, 7, 3}, {1, 1, 6}, {1, 6, 1}, {0, 0, 0}};
            for (int s = 0; s < 4; s++) {
                conf_where w = {"tril", conf_dtype_name(dt), "small", dev};
                conf_rng r = conf_rng_seed("tril", w.dtype, w.kase, (unsigned)s);
                int nd = shapes[s][0] == 0 ? 2 : 3;
                const int64_t *sh = shapes[s][0] == 0 ? shapes[s] + 1 : shapes[s];
                conf_operand spec = {nd, {0}, CONF_CONTIGUOUS, 0, {0}};
                memcpy(spec.shape, sh, (size_t)nd * sizeof sh[0]);
                conf_array av, got;
                ferry_tensor *a = conf_make(&w, &spec, dt, dev, &r, &conf_default_domain, &av);
                if (!a)
                    continue;
                ferry_tensor *t = ferry_tril(a, 0);
                if (!t) {
                    conf_fail_call(&w, "ferry_tril");
                } else if (conf_read(&w, t, dt, nd, spec.shape, dev, &got)) {
                    double *ref = malloc((size_t)(got.numel ? got.numel : 1) * sizeof *ref);
                    int64_t idx[3];
                    for (int64_t e = 0; e < got.numel; e++) {
                        unravel(nd, spec.shape, e, idx);
                        ref[e] = idx[nd - 1] <= idx[nd - 2] ? av.v[e] : 0.0;
                    }
                    conf_compare(&w, &got, ref, NULL);
                    free(ref);
                    conf_array_free(&got);
                }
                ferry_tensor_release(t);
                ferry_tensor_release(a);
                conf_array_free(&av);
            }
        }
    }
    conf_finish();
}

/* ---- diagonal and diag_embed ---- */

static void test_shape2_diagonal_is_a_view_with_torch_geometry_on_every_device(void **state)
{
    (void)state;
    static const struct {
        int64_t offset;
        int dim1, dim2;
    } cases[] = {{0, 0, 1}, {1, 0, 1}, {-1, 0, 1}, {2, 1, 2}, {-2, 2, 1}, {0, -1, 0},
                 {3, 0, 2}, {9, 0, 1}, {-9, 1, 2}, {INT64_MIN, 0, 1}, {INT64_MAX, 2, 0}};
    const int64_t shape[3] = {3, 4, 5};
    CONF_FOR_EACH_DEVICE(dev) {
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            conf_where w = {"diagonal", conf_dtype_name(dt), "", dev};
            conf_rng r = conf_rng_seed("diagonal", w.dtype, w.kase, 0);
            conf_operand spec = {3, {3, 4, 5}, CONF_TRANSPOSED, 0, {0}};
            conf_array av, got;
            ferry_tensor *a = conf_make(&w, &spec, dt, dev, &r, &conf_default_domain, &av);
            if (!a)
                continue;
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                char kase[64];
                snprintf(kase, sizeof kase, "offset %lld dims %d %d", (long long)cases[c].offset,
                         cases[c].dim1, cases[c].dim2);
                w.kase = kase;
                int d1 = cases[c].dim1 < 0 ? cases[c].dim1 + 3 : cases[c].dim1;
                int d2 = cases[c].dim2 < 0 ? cases[c].dim2 + 3 : cases[c].dim2;
                int other = 3 - d1 - d2;
                int64_t off = cases[c].offset, s1 = shape[d1], s2 = shape[d2], len;
                /* The diagonal's length, computed the long way. */
                len = 0;
                for (int64_t i = 0; off >= -s1 && off <= s2 && i < s1; i++)
                    if (i + off >= 0 && i + off < s2)
                        len++;
                uint64_t before = conf_fallbacks(dev);
                ferry_tensor *v = ferry_diagonal(a, off, cases[c].dim1, cases[c].dim2);
                conf_check_no_fallback(&w, before);
                if (!v) {
                    conf_fail_call(&w, "ferry_diagonal");
                    continue;
                }
                int64_t vshape[2] = {shape[other], len};
                if (conf_read(&w, v, dt, 2, vshape, dev, &got)) {
                    double ref[64];
                    for (int64_t o = 0; o < shape[other]; o++) {
                        for (int64_t k = 0, i = off < 0 && len > 0 ? -off : 0; k < len; k++, i++) {
                            int64_t idx[3];
                            idx[other] = o;
                            idx[d1] = off < 0 ? i : k;
                            idx[d2] = off < 0 ? k : k + off;
                            ref[o * len + k] = av.v[ravel(3, shape, idx)];
                        }
                    }
                    conf_compare(&w, &got, ref, NULL);
                    conf_array_free(&got);
                }
                /* A view: a write through it shows in a. */
                if (len > 0 && ferry_tensor_fill(v, 1.0) == FERRY_OK) {
                    if (conf_read(&w, a, dt, 3, shape, dev, &got)) {
                        int64_t idx[3] = {0};
                        idx[other] = 0;
                        idx[d1] = off < 0 ? -off : 0;
                        idx[d2] = off < 0 ? 0 : off;
                        if (got.v[ravel(3, shape, idx)] != 1.0)
                            conf_fail(&w, "a write through the diagonal did not reach the base");
                        memcpy(av.v, got.v, (size_t)got.numel * sizeof *av.v);
                        conf_array_free(&got);
                    }
                }
                ferry_tensor_release(v);
            }
            ferry_tensor_release(a);
            conf_array_free(&av);

            /* diag_embed of a (2, 3) input into (2, 3 + |k|, 3 + |k|). */
            w.op = "diag_embed";
            w.kase = "(2, 3)";
            conf_operand es = {2, {2, 3}, CONF_SLICED, 0, {0}};
            ferry_tensor *e = conf_make(&w, &es, dt, dev, &r, &conf_default_domain, &av);
            for (int64_t k = -2; e && k <= 2; k++) {
                int64_t n = 3 + (k < 0 ? -k : k);
                uint64_t before = conf_fallbacks(dev);
                ferry_tensor *m = ferry_diag_embed(e, k, -2, -1);
                conf_check_no_fallback(&w, before);
                int64_t mshape[3] = {2, n, n};
                if (!m) {
                    conf_fail_call(&w, "ferry_diag_embed");
                } else if (conf_read(&w, m, dt, 3, mshape, dev, &got)) {
                    double ref[2 * 5 * 5];
                    for (int64_t q = 0; q < got.numel; q++) {
                        int64_t idx[3];
                        unravel(3, mshape, q, idx);
                        int64_t j = idx[2] - idx[1];
                        int64_t pos = k >= 0 ? idx[1] : idx[2];
                        ref[q] = j == k ? av.v[idx[0] * 3 + pos] : 0.0;
                    }
                    conf_compare(&w, &got, ref, NULL);
                    conf_array_free(&got);
                }
                ferry_tensor_release(m);
            }
            if (e)
                conf_array_free(&av);
            ferry_tensor_release(e);
        }
    }
    conf_finish();
}

/* ---- pad ---- */

static void test_shape2_pad_constant_matches_index_arithmetic_on_every_device(void **state)
{
    (void)state;
    static const struct {
        int n;
        int64_t pads[6];
    } cases[] = {{0, {0}},
                 {2, {1, 2}},
                 {4, {0, 1, 2, 0}},
                 {6, {1, 1, 1, 1, 1, 1}},
                 {2, {-1, 2}},
                 {4, {-2, -1, 1, -2}},
                 {2, {-4, 0}},
                 {2, {3, -4}},
                 {4, {-4, 0, 1, 0}}};
    const int64_t shape[3] = {2, 3, 4};
    CONF_FOR_EACH_DEVICE(dev) {
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            conf_where w = {"pad", conf_dtype_name(dt), "", dev};
            conf_rng r = conf_rng_seed("pad", w.dtype, w.kase, 0);
            conf_operand spec = {3, {2, 3, 4}, CONF_PERMUTED, 0, {0}};
            conf_array av, got;
            ferry_tensor *a = conf_make(&w, &spec, dt, dev, &r, &conf_default_domain, &av);
            if (!a)
                continue;
            double value = dt == FERRY_BOOL ? 1.0 : dt == FERRY_UINT8 ? 7.0 : -3.0;
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                char kase[64];
                snprintf(kase, sizeof kase, "case %zu", c);
                w.kase = kase;
                int64_t lo[3] = {0}, oshape[3];
                for (int d = 0; d < 3; d++)
                    oshape[d] = shape[d];
                for (int k = 0; k < cases[c].n / 2; k++) {
                    lo[2 - k] = cases[c].pads[2 * k];
                    oshape[2 - k] += cases[c].pads[2 * k] + cases[c].pads[2 * k + 1];
                }
                uint64_t before = conf_fallbacks(dev);
                ferry_tensor *p = ferry_pad(a, cases[c].n, cases[c].pads, value);
                conf_check_no_fallback(&w, before);
                if (!p) {
                    conf_fail_call(&w, "ferry_pad");
                    continue;
                }
                if (conf_read(&w, p, dt, 3, oshape, dev, &got)) {
                    double *ref = malloc((size_t)(got.numel ? got.numel : 1) * sizeof *ref);
                    for (int64_t q = 0; q < got.numel; q++) {
                        int64_t idx[3];
                        unravel(3, oshape, q, idx);
                        bool inside = true;
                        for (int d = 0; d < 3; d++) {
                            idx[d] -= lo[d];
                            inside = inside && idx[d] >= 0 && idx[d] < shape[d];
                        }
                        ref[q] = inside ? av.v[ravel(3, shape, idx)] : value;
                    }
                    conf_compare(&w, &got, ref, NULL);
                    free(ref);
                    conf_array_free(&got);
                }
                ferry_tensor_release(p);
            }
            ferry_tensor_release(a);
            conf_array_free(&av);
        }
    }
    conf_finish();
}

/* ---- refusals ---- */

static void test_shape2_refuses_with_pytorch_messages_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"tril", "float32", "refusal", dev};
        ferry_tensor *v = ferry_zeros(FERRY_FLOAT32, 1, SHAPE(3), dev);
        ferry_tensor *m = ferry_zeros(FERRY_FLOAT32, 2, SHAPE(2, 3), dev);
        if (!v || !m) {
            conf_fail_call(&w, "ferry_zeros");
            ferry_tensor_release(v);
            ferry_tensor_release(m);
            continue;
        }
        ferry_tensor *r = ferry_tril(v, 0);
        conf_expect_error(&w, "ferry_tril", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "tril: input tensor must have at least 2 dimensions");
        w.op = "triu";
        r = ferry_triu(v, 0);
        conf_expect_error(&w, "ferry_triu", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "triu: input tensor must have at least 2 dimensions");
        w.op = "diagonal";
        r = ferry_diagonal(m, 0, 0, -2);
        conf_expect_error(&w, "ferry_diagonal", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "diagonal dimensions cannot be identical 0, -2");
        r = ferry_diagonal(m, 0, 0, 2);
        conf_expect_error(&w, "ferry_diagonal", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-2, 1], but got 2)");
        w.op = "diag_embed";
        ferry_tensor *s = ferry_zeros(FERRY_FLOAT32, 0, NULL, dev);
        r = ferry_diag_embed(s, 0, 0, -1);
        conf_expect_error(&w, "ferry_diag_embed", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "diagonal dimensions cannot be identical 0, -1");
        r = ferry_diag_embed(v, INT64_MAX, -2, -1);
        conf_expect_error(&w, "ferry_diag_embed", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "is too large");
        ferry_tensor_release(s);
        w.op = "pad";
        r = ferry_pad(m, 1, SHAPE(1), 0.0);
        conf_expect_error(&w, "ferry_pad", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "Padding length must be divisible by 2");
        r = ferry_pad(m, 6, SHAPE(1, 1, 1, 1, 1, 1), 0.0);
        conf_expect_error(&w, "ferry_pad", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Padding length should be less than or equal to two times the input "
                          "dimension but got padding length 6 and input of dimension 2");
        r = ferry_pad(m, 2, SHAPE(-2, -2), 0.0);
        conf_expect_error(&w, "ferry_pad", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "narrow(): length must be non-negative.");
        /* A crop past the size fails even where a positive pad would make up for it. */
        r = ferry_pad(m, 2, SHAPE(5, -4), 0.0);
        conf_expect_error(&w, "ferry_pad", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "narrow(): length must be non-negative.");
        r = ferry_pad(m, 2, SHAPE(INT64_MIN, 0), 0.0);
        conf_expect_error(&w, "ferry_pad", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "");
        r = ferry_pad(m, 2, SHAPE(INT64_MAX, 1), 0.0);
        conf_expect_error(&w, "ferry_pad", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "overflows");
        r = ferry_pad(m, 2, NULL, 0.0);
        conf_expect_error(&w, "ferry_pad", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "pads is NULL");
        ferry_tensor_release(v);
        ferry_tensor_release(m);
    }
    conf_finish();
}

/* ---- cumprod's gradient through zeros (#10) ---- */

/* The gradient check's inputs keep clear of 0, so lines with one and with several zeros
 * are checked here: the analytic gradient of L = sum(cumprod(x) * w) against central
 * differences, exact for a function linear in each element (cumprod is), in float64. */
static void test_shape2_cumprod_gradient_through_zeros_matches_finite_differences(void **state)
{
    (void)state;
    static const double lines[][5] = {{2, 0, 3, -1.5, 4},   {0, 0, 2, 1, 3},   {1.5, 2, 0.5, 3, 0},
                                      {0, 3, 0, 2, 0.5},    {1, -2, 3, 0.5, 2}, {0, 0, 0, 0, 0}};
    static const double w[5] = {0.5, -1.25, 2, 0.75, -0.5};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t c = 0; c < sizeof lines / sizeof lines[0]; c++) {
            char kase[32];
            snprintf(kase, sizeof kase, "line %zu", c);
            conf_where wh = {"cumprod backward", "float64", kase, dev};
            /* The line along dim 1 of a (1, 5) tensor. */
            ferry_tensor *h = ferry_tensor_from_data(lines[c], FERRY_FLOAT64, 2, SHAPE(1, 5), "cpu");
            ferry_tensor *x = h ? ferry_tensor_to(h, dev) : NULL;
            ferry_tensor *wh_ = ferry_tensor_from_data(w, FERRY_FLOAT64, 2, SHAPE(1, 5), "cpu");
            ferry_tensor *wt = wh_ ? ferry_tensor_to(wh_, dev) : NULL;
            ferry_tensor *y = NULL, *yw = NULL, *l = NULL;
            if (x && wt && ferry_tensor_set_requires_grad(x, true) == FERRY_OK)
                y = ferry_cumprod(x, 1);
            yw = y ? ferry_mul(y, wt) : NULL;
            l = yw ? ferry_sum(yw, 0, NULL, false) : NULL;
            uint64_t before = conf_fallbacks(dev);
            ferry_status st = l ? ferry_backward(l, NULL, false) : ferry_last_status();
            conf_check_no_fallback(&wh, before);
            ferry_tensor *g = st == FERRY_OK ? ferry_tensor_grad(x) : NULL;
            double got[5];
            if (!g || ferry_tensor_copy_to_host(g, got, sizeof got) != FERRY_OK) {
                conf_fail_call(&wh, "ferry_backward");
            } else {
                for (int i = 0; i < 5; i++) {
                    double lp = 0, lm = 0, pp = 1, pm = 1;
                    for (int j = 0; j < 5; j++) {
                        pp *= lines[c][j] + (i == j ? 0.5 : 0.0);
                        pm *= lines[c][j] - (i == j ? 0.5 : 0.0);
                        lp += pp * w[j];
                        lm += pm * w[j];
                    }
                    double fd = (lp - lm) / 1.0;
                    if (!(fabs(got[i] - fd) <= 1e-12 * (1 + fabs(fd))))
                        conf_fail(&wh, "element %d: gradient %.17g, finite differences %.17g", i,
                                  got[i], fd);
                }
            }
            ferry_tensor_release(g);
            ferry_tensor_release(l);
            ferry_tensor_release(yw);
            ferry_tensor_release(y);
            ferry_tensor_release(wt);
            ferry_tensor_release(wh_);
            ferry_tensor_release(x);
            ferry_tensor_release(h);
        }
    }
    conf_finish();
}

/* ---- class weights of nll_loss and cross_entropy (#10) ---- */

static void test_shape2_weighted_nll_loss_is_the_weighted_mean_on_every_device(void **state)
{
    (void)state;
    static const double lp[3][4] = {{-1.5, -0.25, -2, -3}, {-0.5, -1, -4, -0.125}, {-2, -2, -1, -1}};
    static const int64_t tgt[3] = {0, 3, -100};
    static const double wt[4] = {0.5, 2, 1, 3};
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"nll_loss weight", "float64", "mean", dev};
        ferry_tensor *hx = ferry_tensor_from_data(lp, FERRY_FLOAT64, 2, SHAPE(3, 4), "cpu");
        ferry_tensor *ht = ferry_tensor_from_data(tgt, FERRY_INT64, 1, SHAPE(3), "cpu");
        ferry_tensor *hw = ferry_tensor_from_data(wt, FERRY_FLOAT64, 1, SHAPE(4), "cpu");
        ferry_tensor *x = hx ? ferry_tensor_to(hx, dev) : NULL;
        ferry_tensor *t = ht ? ferry_tensor_to(ht, dev) : NULL;
        ferry_tensor *wv = hw ? ferry_tensor_to(hw, dev) : NULL;
        static const ferry_reduction reds[3] = {FERRY_REDUCTION_MEAN, FERRY_REDUCTION_SUM,
                                                FERRY_REDUCTION_NONE};
        /* -w[t] lp[n, t] per sample (0 where ignored); the mean over sum w[t]. */
        double per[3] = {0.5 * 1.5, 3 * 0.125, 0};
        double want[3] = {(per[0] + per[1]) / 3.5, per[0] + per[1], 0};
        for (int k = 0; x && t && wv && k < 3; k++) {
            uint64_t before = conf_fallbacks(dev);
            ferry_tensor *r = ferry_nll_loss_weighted(x, t, wv, -100, reds[k]);
            conf_check_no_fallback(&w, before);
            double got[3] = {0};
            size_t nb = k == 2 ? sizeof got : sizeof got[0];
            if (!r || ferry_tensor_copy_to_host(r, got, nb) != FERRY_OK) {
                conf_fail_call(&w, "ferry_nll_loss_weighted");
            } else {
                for (int i = 0; i < (k == 2 ? 3 : 1); i++) {
                    double ref = k == 2 ? per[i] : want[k];
                    if (fabs(got[i] - ref) > 1e-15)
                        conf_fail(&w, "reduction %d element %d: %.17g, want %.17g", k, i, got[i],
                                  ref);
                }
            }
            ferry_tensor_release(r);
        }
        ferry_tensor *w2 = wv ? ferry_narrow(wv, 0, 0, 2) : NULL;
        ferry_tensor *r = w2 ? ferry_cross_entropy_weighted(x, t, w2, -100, 0.0,
                                                            FERRY_REDUCTION_MEAN)
                             : NULL;
        conf_expect_error(&w, "ferry_cross_entropy_weighted", r == NULL,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "weight tensor should be defined either for all 4 classes or no "
                          "classes but got weight tensor of shape: [2]");
        ferry_tensor_release(r);
        ferry_tensor_release(w2);
        ferry_tensor_release(x);
        ferry_tensor_release(t);
        ferry_tensor_release(wv);
        ferry_tensor_release(hx);
        ferry_tensor_release(ht);
        ferry_tensor_release(hw);
    }
    conf_finish();
}

int conf_group_shape2(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_shape2_tril_triu_match_index_arithmetic_on_every_dtype_layout_and_device),
        cmocka_unit_test(test_shape2_diagonal_is_a_view_with_torch_geometry_on_every_device),
        cmocka_unit_test(test_shape2_pad_constant_matches_index_arithmetic_on_every_device),
        cmocka_unit_test(test_shape2_refuses_with_pytorch_messages_on_every_device),
        cmocka_unit_test(test_shape2_cumprod_gradient_through_zeros_matches_finite_differences),
        cmocka_unit_test(test_shape2_weighted_nll_loss_is_the_weighted_mean_on_every_device),
    };
    return cmocka_run_group_tests_name("shape2", tests, NULL, NULL);
}

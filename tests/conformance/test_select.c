/* Conformance of the selection ops (nonzero, masked_select, masked_scatter and its
 * in-place form) on every device and dtype, in each input layout and with broadcast
 * masks, against references computed here; and their refusals with PyTorch's messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/backend.h>

#include "conformance.h"

static const conf_layout layouts[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED, CONF_SLICED,
                                      CONF_NEGATIVE};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

/* A (3, 4) input in `layout` whose values are zero where (k * 7) % 3 == 0 (k row-major),
 * a NaN at k == 5 and -0.0 at k == 10 for floating dtypes, small integers elsewhere. */
static ferry_tensor *input(const conf_where *w, conf_layout layout, ferry_dtype dt,
                           conf_array *logical)
{
    conf_operand spec = {.ndim = 2, .shape = {3, 4}, .layout = layout};
    conf_array src;
    conf_array_init(&src, dt, 2, spec.shape);
    for (int64_t k = 0; k < 12; k++) {
        double v = (k * 7) % 3 == 0 ? 0.0 : (double)(k % 5 + 1);
        if (conf_is_float(dt) && k == 5)
            v = NAN;
        if (conf_is_float(dt) && k == 10)
            v = -0.0;
        src.v[k] = dt == FERRY_BOOL ? (v != 0.0) : v;
    }
    ferry_tensor *t = conf_build(w, &spec, &src, w->device, logical);
    conf_array_free(&src);
    return t;
}

static ferry_tensor *bool_tensor(const bool *v, int ndim, const int64_t *shape, const char *dev)
{
    return ferry_tensor_from_data(v, FERRY_BOOL, ndim, shape, dev);
}

/* Reads r and compares it with ref, then releases r. */
static void check(const conf_where *w, ferry_tensor *r, ferry_dtype dt, int ndim,
                  const int64_t *shape, const double *ref)
{
    if (!r) {
        conf_fail_call(w, w->op);
        return;
    }
    conf_array got;
    if (conf_read(w, r, dt, ndim, shape, w->device, &got)) {
        conf_compare(w, &got, ref, NULL);
        conf_array_free(&got);
    }
    ferry_tensor_release(r);
}

static bool is_nonzero(double v)
{
    return v != 0.0; /* NaN is non-zero, -0.0 is zero */
}

static void test_select_nonzero_matches_reference(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        uint64_t before = conf_fallbacks(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            for (size_t li = 0; li < NLAYOUTS; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                conf_where w = {"nonzero", conf_dtype_name(dt), conf_layout_name(layouts[li]), dev};
                conf_array a;
                ferry_tensor *t = input(&w, layouts[li], dt, &a);
                if (!t)
                    continue;
                double ref[24];
                int64_t n = 0;
                for (int64_t k = 0; k < 12; k++)
                    if (is_nonzero(a.v[k])) {
                        ref[2 * n] = (double)(k / 4);
                        ref[2 * n + 1] = (double)(k % 4);
                        n++;
                    }
                check(&w, ferry_nonzero(t), FERRY_INT64, 2, (int64_t[]){n, 2}, ref);
                ferry_tensor_release(t);
                conf_array_free(&a);
            }
        }
        /* 0-d, empty, 1-d and 3-d inputs; an all-zero one. */
        conf_where w = {"nonzero", "float32", "0-d non-zero", dev};
        float three = 3, zero = 0;
        ferry_tensor *t = ferry_tensor_from_data(&three, FERRY_FLOAT32, 0, NULL, dev);
        check(&w, ferry_nonzero(t), FERRY_INT64, 2, (int64_t[]){1, 0}, NULL);
        ferry_tensor_release(t);
        w.kase = "0-d zero";
        t = ferry_tensor_from_data(&zero, FERRY_FLOAT32, 0, NULL, dev);
        check(&w, ferry_nonzero(t), FERRY_INT64, 2, (int64_t[]){0, 0}, NULL);
        ferry_tensor_release(t);
        w.kase = "empty (2, 0, 3)";
        t = ferry_zeros(FERRY_FLOAT32, 3, (int64_t[]){2, 0, 3}, dev);
        check(&w, ferry_nonzero(t), FERRY_INT64, 2, (int64_t[]){0, 3}, NULL);
        ferry_tensor_release(t);
        w.kase = "all zeros";
        t = ferry_zeros(FERRY_INT32, 2, (int64_t[]){4, 5}, dev);
        check(&w, ferry_nonzero(t), FERRY_INT64, 2, (int64_t[]){0, 2}, NULL);
        ferry_tensor_release(t);
        w.kase = "1-d bool";
        t = bool_tensor((bool[]){0, 1, 1, 0, 1}, 1, (int64_t[]){5}, dev);
        check(&w, ferry_nonzero(t), FERRY_INT64, 2, (int64_t[]){3, 1}, (double[]){1, 2, 4});
        ferry_tensor_release(t);
        w.kase = "3-d, expanded";
        ferry_tensor *row = bool_tensor((bool[]){1, 0, 1}, 1, (int64_t[]){3}, dev);
        t = row ? ferry_expand(row, 3, (int64_t[]){2, 1, 3}) : NULL;
        check(&w, t ? ferry_nonzero(t) : NULL, FERRY_INT64, 2, (int64_t[]){4, 3},
              (double[]){0, 0, 0, 0, 0, 2, 1, 0, 0, 1, 0, 2});
        ferry_tensor_release(t);
        ferry_tensor_release(row);
        conf_check_no_fallback(&w, before);
    }
    conf_finish();
}

/* A (3, 4) mask pattern and broadcast ones: a row (4,), a column (3, 1), and a mask
 * (2, 3, 4) that broadcasts the input up. */
static const bool mask34[12] = {1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1};
static const bool mask4[4] = {0, 1, 1, 0};
static const bool mask31[3] = {1, 0, 1};
static const bool mask234[24] = {1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0,
                                 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1};

typedef struct mask_case {
    const char *name;
    const bool *v;
    int ndim;
    int64_t shape[3];
} mask_case;

static const mask_case masks[] = {
    {"mask (3, 4)", mask34, 2, {3, 4}},
    {"mask (4,)", mask4, 1, {4}},
    {"mask (3, 1)", mask31, 2, {3, 1}},
    {"mask (2, 3, 4)", mask234, 3, {2, 3, 4}},
};
#define NMASKS (sizeof masks / sizeof masks[0])

/* Element `flat` of the (3, 4) input and of the mask, both broadcast to (ndim, shape). */
static double input_at(const conf_array *a, int ndim, const int64_t *shape, int64_t flat)
{
    return a->v[conf_bcast_index(a, ndim, shape, flat)];
}

static bool mask_at(const mask_case *m, int ndim, const int64_t *shape, int64_t flat)
{
    conf_array view = {.ndim = m->ndim};
    memcpy(view.shape, m->shape, sizeof m->shape);
    return m->v[conf_bcast_index(&view, ndim, shape, flat)];
}

static void test_select_masked_select_and_scatter_match_reference(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        uint64_t before = conf_fallbacks(dev);
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            for (size_t li = 0; li < NLAYOUTS; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                for (size_t mi = 0; mi < NMASKS; mi++) {
                    const mask_case *mc = &masks[mi];
                    char kase[96];
                    snprintf(kase, sizeof kase, "%s input, %s", conf_layout_name(layouts[li]),
                             mc->name);
                    conf_where w = {"masked_select", conf_dtype_name(dt), kase, dev};
                    conf_array a;
                    ferry_tensor *t = input(&w, layouts[li], dt, &a);
                    ferry_tensor *m = bool_tensor(mc->v, mc->ndim, mc->shape, dev);
                    int ndim = 0;
                    int64_t shape[3];
                    conf_bcast_shape(2, a.shape, mc->ndim, mc->shape, &ndim, shape);
                    int64_t total = conf_numel(ndim, shape), count = 0;
                    double ref[24], sref[24], src[24];
                    for (int64_t k = 0; k < 24; k++)
                        src[k] = conf_round(dt, dt == FERRY_BOOL ? (double)(k % 2) : (double)(k + 1));
                    for (int64_t e = 0; e < total; e++) {
                        bool on = mask_at(mc, ndim, shape, e);
                        if (on)
                            ref[count] = input_at(&a, ndim, shape, e);
                        sref[e] = on ? src[count] : input_at(&a, ndim, shape, e);
                        count += on;
                    }
                    if (t && m)
                        check(&w, ferry_masked_select(t, m), dt, 1, &count, ref);

                    /* source (2, 12) holds more than the mask selects. */
                    w.op = "masked_scatter";
                    conf_array sa;
                    conf_array_init(&sa, dt, 2, (int64_t[]){2, 12});
                    memcpy(sa.v, src, sizeof src);
                    void *bytes = conf_encode(&sa);
                    ferry_tensor *source = ferry_tensor_from_data(bytes, dt, 2, sa.shape, dev);
                    free(bytes);
                    conf_array_free(&sa);
                    if (t && m && source)
                        check(&w, ferry_masked_scatter(t, m, source), dt, ndim, shape, sref);

                    /* In place, into the layout's own strides, when the mask fits t. */
                    if (t && m && source && ndim == 2) {
                        w.op = "masked_scatter_";
                        if (ferry_masked_scatter_(t, m, source) != FERRY_OK)
                            conf_fail_call(&w, "ferry_masked_scatter_");
                        else
                            check(&w, ferry_tensor_retain(t), dt, 2, shape, sref);
                    }
                    ferry_tensor_release(source);
                    ferry_tensor_release(m);
                    ferry_tensor_release(t);
                    conf_array_free(&a);
                }
            }
        }
        /* Nothing selected, and an empty input. */
        conf_where w = {"masked_select", "float32", "nothing selected", dev};
        ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 2, (int64_t[]){2, 3}, dev);
        ferry_tensor *none = ferry_zeros(FERRY_BOOL, 1, (int64_t[]){3}, dev);
        ferry_tensor *empty = ferry_zeros(FERRY_FLOAT32, 2, (int64_t[]){0, 3}, dev);
        int64_t zero = 0;
        check(&w, ferry_masked_select(t, none), FERRY_FLOAT32, 1, &zero, NULL);
        w.kase = "empty input";
        check(&w, ferry_masked_select(empty, none), FERRY_FLOAT32, 1, &zero, NULL);
        w.op = "masked_scatter";
        w.kase = "nothing selected, empty source";
        check(&w, ferry_masked_scatter(t, none, empty), FERRY_FLOAT32, 2, (int64_t[]){2, 3},
              (double[]){1, 1, 1, 1, 1, 1});
        ferry_tensor_release(t);
        ferry_tensor_release(none);
        ferry_tensor_release(empty);
        conf_check_no_fallback(&w, before);
    }
    conf_finish();
}

static void test_select_refuses_with_pytorch_messages(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"masked_select", "float32", "uint8 mask", dev};
        ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 2, (int64_t[]){2, 3}, dev);
        ferry_tensor *u8 = ferry_ones(FERRY_UINT8, 2, (int64_t[]){2, 3}, dev);
        ferry_tensor *m4 = ferry_ones(FERRY_BOOL, 1, (int64_t[]){4}, dev);
        ferry_tensor *m3 = ferry_ones(FERRY_BOOL, 1, (int64_t[]){3}, dev);
        ferry_tensor *big = ferry_ones(FERRY_BOOL, 2, (int64_t[]){4, 3}, dev);
        ferry_tensor *small = ferry_ones(FERRY_FLOAT32, 1, (int64_t[]){5}, dev);
        ferry_tensor *longs = ferry_ones(FERRY_INT64, 1, (int64_t[]){6}, dev);
        ferry_tensor *r = ferry_masked_select(t, u8);
        conf_expect_error(&w, "ferry_masked_select", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "masked_select: expected BoolTensor for mask");
        ferry_tensor_release(r);
        w.kase = "mask that does not broadcast";
        r = ferry_masked_select(t, m4);
        conf_expect_error(&w, "ferry_masked_select", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "The size of tensor a (3) must match the size of tensor b (4) at "
                          "non-singleton dimension 1");
        ferry_tensor_release(r);
        w.kase = "NULL mask";
        r = ferry_masked_select(t, NULL);
        conf_expect_error(&w, "ferry_masked_select", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "masked_select: tensor is NULL");
        ferry_tensor_release(r);

        w.op = "masked_scatter";
        w.kase = "uint8 mask";
        r = ferry_masked_scatter(t, u8, small);
        conf_expect_error(&w, "ferry_masked_scatter", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "masked_scatter_ only supports boolean masks, but got mask with dtype "
                          "Byte");
        ferry_tensor_release(r);
        w.kase = "source of another dtype";
        r = ferry_masked_scatter(t, m3, longs);
        conf_expect_error(&w, "ferry_masked_scatter", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "masked_scatter: expected self and source to have same dtypes but "
                          "gotFloat and Long");
        ferry_tensor_release(r);
        w.kase = "source too small";
        r = ferry_masked_scatter(t, m3, small);
        conf_expect_error(&w, "ferry_masked_scatter", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Number of elements of source < number of ones in mask");
        ferry_tensor_release(r);
        w.op = "masked_scatter_";
        w.kase = "mask larger than self";
        ferry_status st = ferry_masked_scatter_(t, big, small);
        conf_expect_error(&w, "ferry_masked_scatter_", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "The expanded size of the tensor (2) must match the existing size (4) "
                          "at non-singleton dimension 0");
        /* A refused in-place op leaves self alone. */
        conf_array got;
        double ones[6] = {1, 1, 1, 1, 1, 1};
        if (conf_read(&w, t, FERRY_FLOAT32, 2, (int64_t[]){2, 3}, dev, &got)) {
            conf_compare(&w, &got, ones, NULL);
            conf_array_free(&got);
        }
        w.op = "nonzero";
        w.kase = "NULL";
        r = ferry_nonzero(NULL);
        conf_expect_error(&w, "ferry_nonzero", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "nonzero: tensor is NULL");
        ferry_tensor_release(r);
        if (!conf_is_cpu(dev)) {
            w.op = "masked_select";
            w.kase = "mask on another device";
            ferry_tensor *host = ferry_ones(FERRY_BOOL, 1, (int64_t[]){3}, "cpu");
            r = ferry_masked_select(t, host);
            conf_expect_error(&w, "ferry_masked_select", r == NULL, FERRY_ERR_WRONG_DEVICE,
                              FERRY_ERR_INVALID_ARGUMENT, "device");
            ferry_tensor_release(r);
            ferry_tensor_release(host);
        }
        ferry_tensor *list[] = {t, u8, m4, m3, big, small, longs};
        for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
            ferry_tensor_release(list[k]);
    }
    conf_finish();
}

int conf_group_select(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_nonzero_matches_reference),
        cmocka_unit_test(test_select_masked_select_and_scatter_match_reference),
        cmocka_unit_test(test_select_refuses_with_pytorch_messages),
    };
    return cmocka_run_group_tests_name("select", tests, NULL, NULL);
}

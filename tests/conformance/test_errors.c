/* Error paths of the ops on every device: mixed devices, shapes that do not broadcast or
 * multiply, _out targets that do not fit, reduction dims out of range; each with its exact
 * status and the message PyTorch gives where it has one. */
#include "conformance.h"

#define SHAPE(...) (int64_t[]){__VA_ARGS__}

static ferry_tensor *filled(ferry_dtype dt, int nd, const int64_t *shape, double v,
                            const char *dev)
{
    ferry_tensor *t = ferry_full(dt, nd, shape, v, dev);
    assert_tensor(t);
    return t;
}

/* Binary ops by name, so one loop covers all of them. */
typedef struct bin_fn {
    const char *name;
    ferry_tensor *(*fn)(ferry_tensor *, ferry_tensor *);
    ferry_status (*ofn)(ferry_tensor *, ferry_tensor *, ferry_tensor *);
} bin_fn;

#define BF(name) {#name, ferry_##name, ferry_##name##_out}
static const bin_fn bin_fns[] = {
    BF(add), BF(sub), BF(mul), BF(div), BF(pow), BF(maximum), BF(minimum),
    BF(eq),  BF(ne),  BF(lt),  BF(le),  BF(gt),  BF(ge),      BF(matmul),
};
#define N_BIN_FNS (sizeof bin_fns / sizeof bin_fns[0])

static void expect_two_devices(const conf_where *w, const char *call, bool failed,
                               const char *first, const char *second)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "Expected all tensors to be on the same device, but found at least two devices, "
             "%s and %s!",
             first, second);
    conf_expect_error(w, call, failed, FERRY_ERR_WRONG_DEVICE, FERRY_ERR_WRONG_DEVICE, msg);
}

/* Another device of dev's backend ("sim:1" for "sim:0", "sim:0" for "sim:1"), when the
 * backend has two. */
static bool sibling_device(const char *dev, char *buf, size_t cap)
{
    ferry_device d;
    if (!strchr(dev, ':') || ferry_device_parse(dev, &d) != FERRY_OK ||
        ferry_device_count(d.type) < 2)
        return false;
    snprintf(buf, cap, "%s:%d", d.type, d.index == 1 ? 0 : 1);
    return true;
}

/* PyTorch names the devices in the order it meets the operands. */
static void test_errors_mixed_devices_name_both_in_operand_order(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        char other[32];
        const char *pairs[2][2] = {{"cpu", dev}, {dev, NULL}};
        int npairs = 0;
        if (!conf_is_cpu(dev))
            npairs = 1;
        if (sibling_device(dev, other, sizeof other)) {
            pairs[npairs][0] = dev;
            pairs[npairs][1] = other;
            npairs++;
        }
        for (int p = 0; p < npairs; p++) {
            const char *d0 = pairs[p][0], *d1 = pairs[p][1];
            char kase[64];
            snprintf(kase, sizeof kase, "%s with %s", d0, d1);
            ferry_tensor *x = filled(FERRY_FLOAT32, 2, SHAPE(2, 2), 1.0, d0);
            ferry_tensor *y = filled(FERRY_FLOAT32, 2, SHAPE(2, 2), 2.0, d1);
            for (size_t i = 0; i < N_BIN_FNS; i++) {
                conf_where w = {bin_fns[i].name, "float32", kase, dev};
                ferry_tensor *r = bin_fns[i].fn(x, y);
                expect_two_devices(&w, bin_fns[i].name, r == NULL, d0, d1);
                ferry_tensor_release(r);
                r = bin_fns[i].fn(y, x);
                expect_two_devices(&w, bin_fns[i].name, r == NULL, d1, d0);
                ferry_tensor_release(r);
                /* An out on the other device than both inputs. */
                conf_where wo = {bin_fns[i].name, "float32", "out on another device", dev};
                ferry_tensor *x2 = filled(FERRY_FLOAT32, 2, SHAPE(2, 2), 1.0, d1);
                ferry_tensor *out = filled(i < 7 || i == 13 ? FERRY_FLOAT32 : FERRY_BOOL, 2,
                                           SHAPE(2, 2), 0.0, d0);
                ferry_status st = bin_fns[i].ofn(out, x2, y);
                conf_expect_error(&wo, "_out", st != FERRY_OK, FERRY_ERR_WRONG_DEVICE,
                                  FERRY_ERR_WRONG_DEVICE,
                                  "Expected all tensors to be on the same device, but found at "
                                  "least two devices");
                ferry_tensor_release(out);
                ferry_tensor_release(x2);
            }
            conf_where w = {"neg_out", "float32", kase, dev};
            conf_expect_error(&w, "ferry_neg_out", ferry_neg_out(x, y) != FERRY_OK,
                              FERRY_ERR_WRONG_DEVICE, FERRY_ERR_WRONG_DEVICE,
                              "Expected all tensors to be on the same device");
            w.op = "sum_out";
            ferry_tensor *s = filled(FERRY_FLOAT32, 0, SHAPE(1), 0.0, d0);
            conf_expect_error(&w, "ferry_sum_out", ferry_sum_out(s, y, 0, NULL, false) != FERRY_OK,
                              FERRY_ERR_WRONG_DEVICE, FERRY_ERR_WRONG_DEVICE,
                              "Expected all tensors to be on the same device");
            ferry_tensor_release(s);
            ferry_tensor_release(x);
            ferry_tensor_release(y);
        }
    }
    conf_finish();
}

static void test_errors_broadcast_mismatch_names_both_shapes(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        ferry_tensor *a = filled(FERRY_FLOAT32, 2, SHAPE(2, 3), 1.0, dev);
        ferry_tensor *b = filled(FERRY_FLOAT32, 1, SHAPE(4), 1.0, dev);
        ferry_tensor *out = filled(FERRY_FLOAT32, 2, SHAPE(2, 3), 0.0, dev);
        for (size_t i = 0; i + 1 < N_BIN_FNS; i++) {
            conf_where w = {bin_fns[i].name, "float32", "(2, 3) with (4)", dev};
            ferry_tensor *r = bin_fns[i].fn(a, b);
            conf_expect_error(&w, bin_fns[i].name, r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                              FERRY_ERR_INVALID_ARGUMENT,
                              "The size of tensor a (3) must match the size of tensor b (4) at "
                              "non-singleton dimension 1");
            conf_expect_error(&w, bin_fns[i].name, r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                              FERRY_ERR_INVALID_ARGUMENT, "(2, 3)");
            conf_expect_error(&w, bin_fns[i].name, r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                              FERRY_ERR_INVALID_ARGUMENT, "(4");
            ferry_tensor_release(r);
        }
        conf_where w = {"add_out", "float32", "(2, 3) with (4)", dev};
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(out, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "The size of tensor a (3) must match the size of tensor b (4)");
        ferry_tensor_release(a);
        ferry_tensor_release(b);
        ferry_tensor_release(out);
    }
    conf_finish();
}

static void test_errors_matmul_shape_mismatch_names_both_shapes(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"matmul", "float32", "(2, 3) x (4, 5)", dev};
        ferry_tensor *a = filled(FERRY_FLOAT32, 2, SHAPE(2, 3), 1.0, dev);
        ferry_tensor *b = filled(FERRY_FLOAT32, 2, SHAPE(4, 5), 1.0, dev);
        ferry_tensor *r = ferry_matmul(a, b);
        conf_expect_error(&w, "ferry_matmul", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "matmul: shape mismatch (2, 3) x (4, 5): inner dimensions 3 and 4 differ");
        ferry_tensor_release(r);
        ferry_tensor *out = filled(FERRY_FLOAT32, 2, SHAPE(2, 5), 0.0, dev);
        w.op = "matmul_out";
        conf_expect_error(&w, "ferry_matmul_out", ferry_matmul_out(out, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "matmul: shape mismatch (2, 3) x (4, 5): inner dimensions 3 and 4 differ");
        ferry_tensor_release(out);
        ferry_tensor_release(a);
        ferry_tensor_release(b);

        w = (conf_where){"matmul", "float32", "1-D (3) . (4)", dev};
        a = filled(FERRY_FLOAT32, 1, SHAPE(3), 1.0, dev);
        b = filled(FERRY_FLOAT32, 1, SHAPE(4), 1.0, dev);
        r = ferry_matmul(a, b);
        conf_expect_error(&w, "ferry_matmul", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "inner dimensions 3 and 4 differ");
        ferry_tensor_release(r);
        ferry_tensor_release(a);
        ferry_tensor_release(b);

        w = (conf_where){"matmul", "float32", "batch (2, 3, 4) x (3, 4, 5)", dev};
        a = filled(FERRY_FLOAT32, 3, SHAPE(2, 3, 4), 1.0, dev);
        b = filled(FERRY_FLOAT32, 3, SHAPE(3, 4, 5), 1.0, dev);
        r = ferry_matmul(a, b);
        conf_expect_error(&w, "ferry_matmul", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "(2, 3, 4)");
        conf_expect_error(&w, "ferry_matmul", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "(3, 4, 5)");
        ferry_tensor_release(r);
        ferry_tensor_release(a);
        ferry_tensor_release(b);

        w = (conf_where){"matmul", "float32", "0-d operand", dev};
        a = filled(FERRY_FLOAT32, 0, SHAPE(1), 1.0, dev);
        b = filled(FERRY_FLOAT32, 2, SHAPE(2, 2), 1.0, dev);
        r = ferry_matmul(a, b);
        conf_expect_error(&w, "ferry_matmul", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "both arguments to matmul need to be at least 1D, but they are 0D and 2D");
        ferry_tensor_release(r);
        ferry_tensor_release(a);
        ferry_tensor_release(b);
    }
    conf_finish();
}

/* The out target must have the result's shape, a dtype the result can be cast to (no
 * float into an integer, nothing but bool into bool), the operands' device, be writable,
 * and have no two elements at one address. */
static void test_errors_out_must_fit_the_result(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        ferry_tensor *a = filled(FERRY_FLOAT32, 2, SHAPE(2, 3), 1.5, dev);
        ferry_tensor *b = filled(FERRY_FLOAT32, 2, SHAPE(2, 3), 2.0, dev);
        ferry_tensor *ia = filled(FERRY_INT32, 2, SHAPE(2, 3), 100.0, dev);
        ferry_tensor *out33 = filled(FERRY_FLOAT32, 2, SHAPE(3, 3), 0.0, dev);
        ferry_tensor *outi = filled(FERRY_INT32, 2, SHAPE(2, 3), 0.0, dev);
        ferry_tensor *outb = filled(FERRY_BOOL, 2, SHAPE(2, 3), 0.0, dev);
        conf_where w = {"add_out", "float32", "out of the wrong shape", dev};

        conf_expect_error(&w, "ferry_add_out", ferry_add_out(out33, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "(3, 3)");
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(out33, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "(2, 3)");
        w.op = "neg_out";
        conf_expect_error(&w, "ferry_neg_out", ferry_neg_out(out33, a) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "(3, 3)");
        w.op = "sum_out";
        conf_expect_error(&w, "ferry_sum_out",
                          ferry_sum_out(out33, a, 1, (int[]){0}, false) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "(3, 3)");
        w.op = "sum_out";
        w.kase = "keepdim result into a squeezed out";
        ferry_tensor *o3 = filled(FERRY_FLOAT32, 1, SHAPE(3), 0.0, dev);
        conf_expect_error(&w, "ferry_sum_out", ferry_sum_out(o3, a, 1, (int[]){0}, true) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "(1, 3)");
        ferry_tensor_release(o3);
        w.op = "matmul_out";
        w.kase = "out of the wrong shape";
        ferry_tensor *bt = ferry_transpose(b, 0, 1);
        conf_expect_error(&w, "ferry_matmul_out", ferry_matmul_out(out33, a, bt) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "(2, 2)");
        ferry_tensor_release(bt);

        w = (conf_where){"add_out", "float32", "float result into an int32 out", dev};
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(outi, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "can't be cast to the desired output type");
        w = (conf_where){"add_out", "int32", "int32 result into a bool out", dev};
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(outb, ia, ia) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "can't be cast to the desired output type");
        w = (conf_where){"exp_out", "int32", "float32 result into an int32 out", dev};
        conf_expect_error(&w, "ferry_exp_out", ferry_exp_out(outi, ia) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "can't be cast to the desired output type");
        w = (conf_where){"mean_out", "float32", "float32 result into an int32 out", dev};
        ferry_tensor *oi3 = filled(FERRY_INT32, 1, SHAPE(3), 0.0, dev);
        conf_expect_error(&w, "ferry_mean_out",
                          ferry_mean_out(oi3, a, 1, (int[]){0}, false) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "can't be cast to the desired output type");
        ferry_tensor_release(oi3);

        /* Casts PyTorch allows: within a category (wrapping), or up one. */
        struct { const char *kase; ferry_dtype out_dt; ferry_tensor *x; double want; } ok[] = {
            {"int32 result into an int8 out wraps", FERRY_INT8, ia, (double)(int8_t)200},
            {"int32 result into a float64 out", FERRY_FLOAT64, ia, 200.0},
            {"float32 result into a float16 out", FERRY_FLOAT16, a, 3.0},
        };
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
            w = (conf_where){"add_out", conf_dtype_name(ok[i].out_dt), ok[i].kase, dev};
            ferry_tensor *o = filled(ok[i].out_dt, 2, SHAPE(2, 3), 0.0, dev);
            conf_array got;
            if (ferry_add_out(o, ok[i].x, ok[i].x) != FERRY_OK)
                conf_fail_call(&w, "ferry_add_out");
            else if (conf_read(&w, o, ok[i].out_dt, 2, SHAPE(2, 3), dev, &got)) {
                double ref[6] = {ok[i].want, ok[i].want, ok[i].want,
                                 ok[i].want, ok[i].want, ok[i].want};
                conf_compare(&w, &got, ref, NULL);
                conf_array_free(&got);
            }
            ferry_tensor_release(o);
        }
        w = (conf_where){"lt_out", "float32", "bool result into a float32 out", dev};
        ferry_tensor *of = filled(FERRY_FLOAT32, 2, SHAPE(2, 3), 7.0, dev);
        conf_array got;
        if (ferry_lt_out(of, a, b) != FERRY_OK)
            conf_fail_call(&w, "ferry_lt_out");
        else if (conf_read(&w, of, FERRY_FLOAT32, 2, SHAPE(2, 3), dev, &got)) {
            double ref[6] = {1, 1, 1, 1, 1, 1};
            conf_compare(&w, &got, ref, NULL);
            conf_array_free(&got);
        }
        ferry_tensor_release(of);

        w = (conf_where){"add_out", "float32", "read-only out", dev};
        ferry_tensor *ro = filled(FERRY_FLOAT32, 2, SHAPE(2, 3), 0.0, dev);
        assert_ok(ferry_tensor_set_read_only(ro, true));
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(ro, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "read-only");
        w.op = "neg_out";
        conf_expect_error(&w, "ferry_neg_out", ferry_neg_out(ro, a) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "read-only");
        ferry_tensor *ro2 = ferry_transpose(ro, 0, 1);
        ferry_tensor *at = ferry_transpose(a, 0, 1);
        w.op = "add_out";
        w.kase = "a view of a read-only out";
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(ro2, at, at) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "read-only");
        ferry_tensor_release(ro2);
        ferry_tensor_release(at);
        ferry_tensor_release(ro);

        w = (conf_where){"add_out", "float32", "out expanded with stride 0", dev};
        ferry_tensor *row = filled(FERRY_FLOAT32, 2, SHAPE(1, 3), 0.0, dev);
        ferry_tensor *ex = ferry_expand(row, 2, SHAPE(2, 3));
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(ex, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "more than one element of the written-to tensor refers to a single "
                          "memory location");
        ferry_tensor_release(ex);
        ferry_tensor_release(row);

        w = (conf_where){"add_out", "float32", "NULL out", dev};
        conf_expect_error(&w, "ferry_add_out", ferry_add_out(NULL, a, b) != FERRY_OK,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT, "NULL");
        w = (conf_where){"add", "float32", "NULL operand", dev};
        ferry_tensor *r = ferry_add(a, NULL);
        conf_expect_error(&w, "ferry_add", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "NULL");
        ferry_tensor_release(r);

        ferry_tensor *ts[] = {a, b, ia, out33, outi, outb};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            ferry_tensor_release(ts[i]);
    }
    conf_finish();
}

/* An out that overlaps an input without being it exactly (its transpose, one of its
 * rows, the matrix itself in a matmul) still gets the result computed from the input as
 * it was. */
static void test_errors_out_overlapping_an_input_reads_the_input_first(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"add_out", "float32", "out = transpose(a)", dev};
        float v[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        ferry_tensor *a = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, SHAPE(3, 3), dev);
        assert_tensor(a);
        ferry_tensor *at = ferry_transpose(a, 0, 1);
        /* out^T = a + a^T  is symmetric, so out = a + a^T as well. */
        if (ferry_add_out(at, a, at) != FERRY_OK)
            conf_fail_call(&w, "ferry_add_out");
        else {
            conf_array got;
            if (conf_read(&w, a, FERRY_FLOAT32, 2, SHAPE(3, 3), dev, &got)) {
                double ref[9];
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                        ref[i * 3 + j] = v[i * 3 + j] + v[j * 3 + i];
                conf_compare(&w, &got, ref, NULL);
                conf_array_free(&got);
            }
        }
        w = (conf_where){"neg_out", "float32", "out = transpose(a)", dev};
        ferry_tensor *c = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, SHAPE(3, 3), dev);
        ferry_tensor *ct = ferry_transpose(c, 0, 1);
        if (ferry_neg_out(ct, c) != FERRY_OK)
            conf_fail_call(&w, "ferry_neg_out");
        else {
            conf_array got;
            if (conf_read(&w, c, FERRY_FLOAT32, 2, SHAPE(3, 3), dev, &got)) {
                double ref[9];
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++)
                        ref[i * 3 + j] = -v[j * 3 + i];
                conf_compare(&w, &got, ref, NULL);
                conf_array_free(&got);
            }
        }
        ferry_tensor_release(ct);
        ferry_tensor_release(c);

        w = (conf_where){"sum_out", "float32", "out = first row of the input", dev};
        ferry_tensor *d = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, SHAPE(3, 3), dev);
        ferry_tensor *row = ferry_slice(d, 0, 0, 1, 1);
        if (ferry_sum_out(row, d, 1, (int[]){0}, true) != FERRY_OK)
            conf_fail_call(&w, "ferry_sum_out");
        else {
            conf_array got;
            if (conf_read(&w, d, FERRY_FLOAT32, 2, SHAPE(3, 3), dev, &got)) {
                double ref[9] = {12, 15, 18, 4, 5, 6, 7, 8, 9};
                conf_compare(&w, &got, ref, NULL);
                conf_array_free(&got);
            }
        }
        ferry_tensor_release(row);
        ferry_tensor_release(d);

        w = (conf_where){"matmul_out", "float32", "out = a", dev};
        float e[9] = {0, 1, 0, 0, 0, 1, 1, 0, 0}; /* a cyclic permutation */
        ferry_tensor *p = ferry_tensor_from_data(e, FERRY_FLOAT32, 2, SHAPE(3, 3), dev);
        ferry_tensor *b = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, SHAPE(3, 3), dev);
        if (ferry_matmul_out(b, p, b) != FERRY_OK)
            conf_fail_call(&w, "ferry_matmul_out");
        else {
            conf_array got;
            if (conf_read(&w, b, FERRY_FLOAT32, 2, SHAPE(3, 3), dev, &got)) {
                double ref[9] = {4, 5, 6, 7, 8, 9, 1, 2, 3};
                conf_compare(&w, &got, ref, NULL);
                conf_array_free(&got);
            }
        }
        ferry_tensor_release(p);
        ferry_tensor_release(b);
        ferry_tensor_release(at);
        ferry_tensor_release(a);
    }
    conf_finish();
}

static void test_errors_reduction_dims_out_of_range_or_repeated(void **state)
{
    (void)state;
    static const struct {
        const char *kase;
        int nd;
        int ndims;
        int dims[2];
        ferry_status status;
        const char *msg;
    } cases[] = {
        {"dim 2 of a 2-d tensor", 2, 1, {2, 0}, FERRY_ERR_INDEX,
         "Dimension out of range (expected to be in range of [-2, 1], but got 2)"},
        {"dim -3 of a 2-d tensor", 2, 1, {-3, 0}, FERRY_ERR_INDEX,
         "Dimension out of range (expected to be in range of [-2, 1], but got -3)"},
        {"dim 1 of a 0-d tensor", 0, 1, {1, 0}, FERRY_ERR_INDEX,
         "Dimension out of range (expected to be in range of [-1, 0], but got 1)"},
        {"dims 0 and -2 name one dim", 2, 2, {0, -2}, FERRY_ERR_INVALID_ARGUMENT,
         "dim 0 appears multiple times in the list of dims"},
    };
    typedef ferry_tensor *(*red_fn)(ferry_tensor *, int, const int *, bool);
    static const struct {
        const char *name;
        red_fn fn;
    } fns[] = {{"sum", ferry_sum}, {"mean", ferry_mean}, {"max", ferry_max}, {"min", ferry_min}};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            ferry_tensor *t = filled(FERRY_FLOAT32, cases[c].nd, SHAPE(2, 3), 1.0, dev);
            for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
                conf_where w = {fns[f].name, "float32", cases[c].kase, dev};
                ferry_tensor *r = fns[f].fn(t, cases[c].ndims, cases[c].dims, false);
                conf_expect_error(&w, fns[f].name, r == NULL, cases[c].status,
                                  cases[c].status, cases[c].msg);
                ferry_tensor_release(r);
            }
            if (cases[c].ndims == 1) {
                conf_where w = {"argmax", "float32", cases[c].kase, dev};
                ferry_tensor *r = ferry_argmax(t, 1, cases[c].dims, false);
                conf_expect_error(&w, "ferry_argmax", r == NULL, cases[c].status,
                                  cases[c].status, cases[c].msg);
                ferry_tensor_release(r);
            }
            ferry_tensor_release(t);
        }
    }
    conf_finish();
}

int conf_group_errors(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_mixed_devices_name_both_in_operand_order),
        cmocka_unit_test(test_errors_broadcast_mismatch_names_both_shapes),
        cmocka_unit_test(test_errors_matmul_shape_mismatch_names_both_shapes),
        cmocka_unit_test(test_errors_out_must_fit_the_result),
        cmocka_unit_test(test_errors_out_overlapping_an_input_reads_the_input_first),
        cmocka_unit_test(test_errors_reduction_dims_out_of_range_or_repeated),
    };
    return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}

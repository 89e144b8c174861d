/* Tensor creation, lifetime, introspection and the argument checks of every creation
 * function, on the cpu (and on sim:0 where the device matters). */
#include <math.h>
#include <stdlib.h>

#include "test_util.h"

/* ---- creation ---- */

static void test_from_data_copies_host_values(void **state)
{
    (void)state;
    float src[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    ferry_tensor *t = ferry_tensor_from_data(src, FERRY_FLOAT32, 2, shape, NULL);
    assert_tensor(t);
    src[0] = 100; /* a copy: later writes to src are not seen */
    float out[6];
    assert_ok(ferry_tensor_copy_to_host(t, out, sizeof out));
    assert_true(out[0] == 1 && out[5] == 6);
    assert_int_equal(ferry_tensor_ndim(t), 2);
    assert_int_equal(ferry_tensor_shape(t)[0], 2);
    assert_int_equal(ferry_tensor_shape(t)[1], 3);
    assert_int_equal(ferry_tensor_strides(t)[0], 3);
    assert_int_equal(ferry_tensor_strides(t)[1], 1);
    assert_int_equal(ferry_tensor_numel(t), 6);
    assert_int_equal(ferry_tensor_nbytes(t), 24);
    assert_int_equal(ferry_tensor_dtype(t), FERRY_FLOAT32);
    assert_true(ferry_tensor_is_contiguous(t));
    ferry_device d = ferry_tensor_device(t);
    assert_string_equal(d.type, "cpu");
    assert_int_equal(d.index, 0);
    ferry_tensor_release(t);
}

static void test_factories_fill_every_dtype(void **state)
{
    (void)state;
    int64_t shape[2] = {3, 4};
    for (int dt = 0; dt < FERRY_NUM_DTYPES; dt++) {
        ferry_tensor *z = ferry_zeros((ferry_dtype)dt, 2, shape, NULL);
        ferry_tensor *o = ferry_ones((ferry_dtype)dt, 2, shape, NULL);
        ferry_tensor *f = ferry_full((ferry_dtype)dt, 2, shape, 2.0, NULL);
        assert_tensor(z);
        assert_tensor(o);
        assert_tensor(f);
        ferry_tensor *zd = ferry_tensor_to_dtype(z, FERRY_FLOAT64);
        ferry_tensor *od = ferry_tensor_to_dtype(o, FERRY_FLOAT64);
        ferry_tensor *fd = ferry_tensor_to_dtype(f, FERRY_FLOAT64);
        double zv[12], ov[12], fv[12];
        assert_ok(ferry_tensor_copy_to_host(zd, zv, sizeof zv));
        assert_ok(ferry_tensor_copy_to_host(od, ov, sizeof ov));
        assert_ok(ferry_tensor_copy_to_host(fd, fv, sizeof fv));
        double two = dt == FERRY_BOOL ? 1.0 : 2.0;
        for (int i = 0; i < 12; i++) {
            assert_true(zv[i] == 0.0);
            assert_true(ov[i] == 1.0);
            assert_true(fv[i] == two);
        }
        ferry_tensor_release(z);
        ferry_tensor_release(o);
        ferry_tensor_release(f);
        ferry_tensor_release(zd);
        ferry_tensor_release(od);
        ferry_tensor_release(fd);
    }
}

static void check_eye(const char *device)
{
    ferry_tensor *e = ferry_eye(4, FERRY_FLOAT64, device);
    assert_tensor(e);
    double v[16];
    assert_ok(ferry_tensor_copy_to_host(e, v, sizeof v));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            assert_true(v[i * 4 + j] == (i == j ? 1.0 : 0.0));
    ferry_tensor_release(e);
}

static void test_eye_sets_the_diagonal_on_cpu_and_sim(void **state)
{
    (void)state;
    check_eye("cpu");
    require_backend("sim");
    check_eye("sim:1");
}

static void test_eye_negative_n_is_refused(void **state)
{
    (void)state;
    assert_null(ferry_eye(-1, FERRY_FLOAT32, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "n must be greater or equal to 0");
}

static void test_arange_follows_torch_rules(void **state)
{
    (void)state;
    ferry_tensor *a = ferry_arange(0, 1, 0.25, FERRY_FLOAT32, NULL);
    assert_tensor(a);
    assert_int_equal(ferry_tensor_numel(a), 4);
    float v[4];
    assert_ok(ferry_tensor_copy_to_host(a, v, sizeof v));
    assert_true(v[0] == 0 && v[1] == 0.25f && v[3] == 0.75f);
    ferry_tensor_release(a);

    a = ferry_arange(5, 0, -2, FERRY_INT64, NULL);
    assert_tensor(a);
    int64_t iv[3];
    assert_int_equal(ferry_tensor_numel(a), 3);
    assert_ok(ferry_tensor_copy_to_host(a, iv, sizeof iv));
    assert_true(iv[0] == 5 && iv[1] == 3 && iv[2] == 1);
    ferry_tensor_release(a);

    a = ferry_arange(3, 3, 1, FERRY_INT64, NULL);
    assert_tensor(a);
    assert_int_equal(ferry_tensor_numel(a), 0);
    ferry_tensor_release(a);

    assert_null(ferry_arange(0, 1, 0, FERRY_FLOAT32, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "step must be nonzero");
    assert_null(ferry_arange(0, 1, -1, FERRY_FLOAT32, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "upper bound and lower bound inconsistent with step sign");
    assert_null(ferry_arange(0, INFINITY, 1, FERRY_FLOAT32, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "unsupported range");
}

static void test_zero_dim_and_empty_tensors_work(void **state)
{
    (void)state;
    double x = 3.5;
    ferry_tensor *s = ferry_tensor_from_data(&x, FERRY_FLOAT64, 0, NULL, NULL);
    assert_tensor(s);
    assert_int_equal(ferry_tensor_ndim(s), 0);
    assert_int_equal(ferry_tensor_numel(s), 1);
    double y = 0;
    assert_ok(ferry_tensor_copy_to_host(s, &y, sizeof y));
    assert_true(y == 3.5);
    ferry_tensor_release(s);

    int64_t shape[3] = {2, 0, 5};
    ferry_tensor *e = ferry_empty(FERRY_INT32, 3, shape, NULL);
    assert_tensor(e);
    assert_int_equal(ferry_tensor_numel(e), 0);
    assert_ok(ferry_tensor_copy_to_host(e, NULL, 0));
    assert_non_null(ferry_tensor_host_data(e));
    ferry_tensor *c = ferry_tensor_clone(e);
    assert_tensor(c);
    ferry_tensor_release(c);
    ferry_tensor_release(e);
}

static void test_sixteen_and_more_dims_are_supported(void **state)
{
    (void)state;
    int64_t shape[FERRY_MAX_DIMS];
    for (int i = 0; i < FERRY_MAX_DIMS; i++)
        shape[i] = i % 20 == 0 ? 2 : 1;
    ferry_tensor *t = ferry_ones(FERRY_FLOAT32, FERRY_MAX_DIMS, shape, NULL);
    assert_tensor(t);
    assert_int_equal(ferry_tensor_ndim(t), FERRY_MAX_DIMS);
    assert_int_equal(ferry_tensor_numel(t), 16);
    ferry_tensor *h = ferry_tensor_to_dtype(t, FERRY_FLOAT16);
    assert_tensor(h);
    ferry_tensor_release(h);
    ferry_tensor_release(t);
}

/* ---- bad input ---- */

static void test_creation_rejects_bad_arguments_with_named_messages(void **state)
{
    (void)state;
    int64_t shape[2] = {2, 3};
    int64_t neg[2] = {2, -3};
    int64_t huge[3] = {INT64_MAX / 2, 4, 4};
    float data[6] = {0};

    assert_null(ferry_empty(FERRY_FLOAT32, -1, shape, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ndim -1 is out of range");
    assert_null(ferry_empty(FERRY_FLOAT32, FERRY_MAX_DIMS + 1, shape, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ndim 65 is out of range");
    assert_null(ferry_empty(FERRY_FLOAT32, 2, NULL, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "shape is NULL");
    assert_null(ferry_zeros(FERRY_FLOAT32, 2, neg, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "negative dimension -3 at index 1");
    assert_null(ferry_ones(FERRY_FLOAT64, 3, huge, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "overflows");
    assert_null(ferry_empty((ferry_dtype)42, 2, shape, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "invalid dtype value 42");
    assert_null(ferry_empty((ferry_dtype)-1, 2, shape, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "invalid dtype value -1");
    assert_null(ferry_tensor_from_data(NULL, FERRY_FLOAT32, 2, shape, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_from_data: data is NULL");
    assert_null(ferry_tensor_from_blob(NULL, FERRY_FLOAT32, 2, shape, NULL, NULL, NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_from_blob: data is NULL");

    assert_null(ferry_tensor_from_data(data, FERRY_FLOAT32, 2, shape, "cpu:1"));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "Invalid device: cpu:1 (cpu has 1 device)");
    assert_null(ferry_empty(FERRY_FLOAT32, 2, shape, "gpu"));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "device type at start of device string: gpu");
    assert_null(ferry_zeros(FERRY_FLOAT32, 2, shape, ""));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "Device string must not be empty");
}

static void test_null_tensor_arguments_are_errors_not_crashes(void **state)
{
    (void)state;
    assert_null(ferry_tensor_to(NULL, "cpu"));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_to: tensor is NULL");
    assert_null(ferry_tensor_clone(NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_clone: tensor is NULL");
    assert_null(ferry_tensor_to_dtype(NULL, FERRY_FLOAT32));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "tensor is NULL");
    assert_null(ferry_tensor_host_data(NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "tensor is NULL");
    assert_status(ferry_tensor_copy_to_host(NULL, NULL, 0), FERRY_ERR_INVALID_ARGUMENT,
                  "tensor is NULL");
    assert_int_equal(ferry_tensor_ndim(NULL), -1);
    assert_null(ferry_tensor_shape(NULL));
    assert_int_equal(ferry_tensor_numel(NULL), -1);
    assert_null(ferry_tensor_repr(NULL));
    ferry_tensor_release(NULL);
    assert_null(ferry_tensor_retain(NULL));
}

static void test_copy_to_host_checks_the_byte_count(void **state)
{
    (void)state;
    int64_t n = 4;
    ferry_tensor *t = ferry_zeros(FERRY_INT16, 1, &n, NULL);
    assert_tensor(t);
    int16_t out[8];
    assert_status(ferry_tensor_copy_to_host(t, out, 6), FERRY_ERR_INVALID_ARGUMENT,
                  "nbytes is 6, but the tensor holds 8 bytes");
    assert_status(ferry_tensor_copy_to_host(t, NULL, 8), FERRY_ERR_INVALID_ARGUMENT,
                  "dst is NULL");
    ferry_tensor_release(t);
}

static void test_to_dtype_rejects_an_invalid_dtype(void **state)
{
    (void)state;
    int64_t n = 2;
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &n, NULL);
    assert_null(ferry_tensor_to_dtype(t, (ferry_dtype)99));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "invalid dtype value 99");
    ferry_tensor_release(t);
}

/* ---- lifetime ---- */

typedef struct {
    int calls;
    void *seen;
} deleter_log;

static void count_deleter(void *data, void *ctx)
{
    deleter_log *log = ctx;
    log->calls++;
    log->seen = data;
}

static void test_from_blob_shares_memory_and_runs_the_deleter_once(void **state)
{
    (void)state;
    float buf[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    deleter_log log = {0, NULL};
    ferry_tensor *t = ferry_tensor_from_blob(buf, FERRY_FLOAT32, 2, shape, NULL, count_deleter,
                                             &log);
    assert_tensor(t);
    float *p = ferry_tensor_host_data(t);
    assert_ptr_equal(p, buf);
    p[4] = 42; /* writes through the tensor are seen in the caller's memory */
    assert_true(buf[4] == 42);
    buf[0] = -1; /* and the other way round */
    float out[6];
    assert_ok(ferry_tensor_copy_to_host(t, out, sizeof out));
    assert_true(out[0] == -1);

    ferry_tensor *view = ferry_tensor_detach(t);
    ferry_tensor_retain(t);
    ferry_tensor_release(t);
    ferry_tensor_release(t);
    assert_int_equal(log.calls, 0); /* the detached view keeps the storage alive */
    ferry_tensor_release(view);
    assert_int_equal(log.calls, 1);
    assert_ptr_equal(log.seen, buf);
}

static void test_from_blob_negative_strides_view_reversed_memory(void **state)
{
    (void)state;
    int32_t buf[6] = {0, 1, 2, 3, 4, 5};
    int64_t shape[2] = {2, 3};
    int64_t strides[2] = {-3, -1};
    deleter_log log = {0, NULL};
    /* data points at the first element, as NumPy's does for a reversed view. */
    ferry_tensor *t = ferry_tensor_from_blob(&buf[5], FERRY_INT32, 2, shape, strides,
                                             count_deleter, &log);
    assert_tensor(t);
    assert_false(ferry_tensor_is_contiguous(t));
    int32_t out[6];
    assert_ok(ferry_tensor_copy_to_host(t, out, sizeof out));
    for (int i = 0; i < 6; i++)
        assert_int_equal(out[i], 5 - i);
    assert_ptr_equal(ferry_tensor_host_data(t), &buf[5]);
    ferry_tensor *c = ferry_tensor_contiguous(t);
    assert_tensor(c);
    assert_true(ferry_tensor_is_contiguous(c));
    ferry_tensor_release(c);
    ferry_tensor_release(t);
    assert_int_equal(log.calls, 1);
    assert_ptr_equal(log.seen, &buf[5]);
}

static void test_from_blob_failure_does_not_run_the_deleter(void **state)
{
    (void)state;
    float buf[4];
    int64_t bad[1] = {-4};
    deleter_log log = {0, NULL};
    assert_null(ferry_tensor_from_blob(buf, FERRY_FLOAT32, 1, bad, NULL, count_deleter, &log));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "negative dimension");
    assert_int_equal(log.calls, 0);
}

static void test_stride_zero_blob_broadcasts_one_element(void **state)
{
    (void)state;
    double v = 7.0;
    int64_t shape[2] = {3, 2};
    int64_t strides[2] = {0, 0};
    ferry_tensor *t = ferry_tensor_from_blob(&v, FERRY_FLOAT64, 2, shape, strides, NULL, NULL);
    assert_tensor(t);
    double out[6];
    assert_ok(ferry_tensor_copy_to_host(t, out, sizeof out));
    for (int i = 0; i < 6; i++)
        assert_true(out[i] == 7.0);
    ferry_tensor_release(t);
}

static void test_retain_keeps_a_handle_alive_after_one_release(void **state)
{
    (void)state;
    /* Keep the memory alive ourselves so reading the dead handle is defined. */
    int64_t n = 1;
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &n, NULL);
    ferry_tensor *keep = ferry_tensor_retain(t);
    assert_ptr_equal(keep, t);
    ferry_tensor_release(t);
    assert_int_equal(ferry_tensor_numel(keep), 1); /* still one live reference */
    ferry_tensor_release(keep);
}

/* ---- grad, detach, host access ---- */

static void test_requires_grad_is_for_floating_dtypes_only(void **state)
{
    (void)state;
    int64_t n = 2;
    ferry_tensor *i = ferry_zeros(FERRY_INT64, 1, &n, NULL);
    assert_status(ferry_tensor_set_requires_grad(i, true), FERRY_ERR_INVALID_ARGUMENT,
                  "only Tensors of floating point dtype can require gradients");
    assert_false(ferry_tensor_requires_grad(i));
    assert_ok(ferry_tensor_set_requires_grad(i, false));
    ferry_tensor_release(i);

    for (int dt = FERRY_FLOAT16; dt <= FERRY_FLOAT64; dt++) {
        ferry_tensor *f = ferry_zeros((ferry_dtype)dt, 1, &n, NULL);
        assert_ok(ferry_tensor_set_requires_grad(f, true));
        assert_true(ferry_tensor_requires_grad(f));
        ferry_tensor_release(f);
    }
}

static void test_host_data_refuses_grad_tensors_until_detached(void **state)
{
    (void)state;
    int64_t n = 3;
    ferry_tensor *f = ferry_ones(FERRY_FLOAT32, 1, &n, NULL);
    assert_ok(ferry_tensor_set_requires_grad(f, true));
    assert_null(ferry_tensor_host_data(f));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                       "Can't access host data of a tensor that requires grad. Use "
                       "ferry_tensor_detach() first.");
    ferry_tensor *d = ferry_tensor_detach(f);
    assert_tensor(d);
    assert_false(ferry_tensor_requires_grad(d));
    float *p = ferry_tensor_host_data(d);
    assert_non_null(p);
    p[1] = 5; /* detach shares storage */
    float out[3];
    assert_ok(ferry_tensor_copy_to_host(f, out, sizeof out));
    assert_true(out[1] == 5);
    /* Idempotent in effect. */
    ferry_tensor *dd = ferry_tensor_detach(d);
    assert_ptr_equal(ferry_tensor_host_data(dd), p);
    ferry_tensor_release(dd);
    ferry_tensor_release(d);

    /* to(), clone and float casts keep requires_grad as PyTorch does; int casts drop it. */
    ferry_tensor *c = ferry_tensor_clone(f);
    assert_true(ferry_tensor_requires_grad(c));
    ferry_tensor *h = ferry_tensor_to_dtype(f, FERRY_FLOAT64);
    assert_true(ferry_tensor_requires_grad(h));
    ferry_tensor *k = ferry_tensor_to_dtype(f, FERRY_INT32);
    assert_false(ferry_tensor_requires_grad(k));
    ferry_tensor_release(c);
    ferry_tensor_release(h);
    ferry_tensor_release(k);
    ferry_tensor_release(f);
}

static void test_host_data_refuses_device_memory_with_the_torch_message(void **state)
{
    (void)state;
    require_backend("sim");
    int64_t n = 3;
    ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &n, "sim:1");
    assert_tensor(t);
    assert_null(ferry_tensor_host_data(t));
    assert_failed_with(FERRY_ERR_WRONG_DEVICE,
                       "can't convert sim:1 device type tensor to host memory. Use "
                       "ferry_tensor_cpu() to copy the tensor to host memory first.");
    ferry_tensor *c = ferry_tensor_cpu(t);
    assert_tensor(c);
    float *p = ferry_tensor_host_data(c);
    assert_non_null(p);
    assert_true(p[0] == 1 && p[2] == 1);
    ferry_tensor_release(c);
    ferry_tensor_release(t);
}

static void test_read_only_cannot_be_undone_and_views_inherit_it(void **state)
{
    (void)state;
    int64_t n = 2;
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &n, NULL);
    assert_false(ferry_tensor_is_read_only(t));
    assert_ok(ferry_tensor_set_read_only(t, true));
    assert_true(ferry_tensor_is_read_only(t));
    assert_status(ferry_tensor_set_read_only(t, false), FERRY_ERR_INVALID_ARGUMENT,
                  "cannot be made writable");
    ferry_tensor *d = ferry_tensor_detach(t);
    assert_true(ferry_tensor_is_read_only(d));
    ferry_tensor *c = ferry_tensor_clone(t);
    assert_false(ferry_tensor_is_read_only(c));
    ferry_tensor_release(c);
    ferry_tensor_release(d);
    ferry_tensor_release(t);
}

static void test_clone_and_contiguous_follow_torch_identity_rules(void **state)
{
    (void)state;
    int64_t n = 4;
    ferry_tensor *t = ferry_arange(0, 4, 1, FERRY_FLOAT32, NULL);
    ferry_tensor *c = ferry_tensor_contiguous(t);
    assert_ptr_equal(c, t); /* already contiguous: itself */
    ferry_tensor *k = ferry_tensor_clone(t);
    assert_ptr_not_equal(k, t);
    assert_ptr_not_equal(ferry_tensor_host_data(k), ferry_tensor_host_data(t));
    ferry_tensor *same = ferry_tensor_to_dtype(t, FERRY_FLOAT32);
    assert_ptr_equal(same, t);
    (void)n;
    ferry_tensor_release(same);
    ferry_tensor_release(k);
    ferry_tensor_release(c);
    ferry_tensor_release(t);
}

static void test_dtype_names_sizes_and_aliases(void **state)
{
    (void)state;
    static const char *names[FERRY_NUM_DTYPES] = {"bool", "uint8", "int8", "int16", "int32",
                                                  "int64", "float16", "bfloat16", "float32",
                                                  "float64"};
    static const size_t sizes[FERRY_NUM_DTYPES] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};
    for (int i = 0; i < FERRY_NUM_DTYPES; i++) {
        assert_string_equal(ferry_dtype_name((ferry_dtype)i), names[i]);
        assert_int_equal(ferry_dtype_size((ferry_dtype)i), sizes[i]);
        ferry_dtype d;
        assert_ok(ferry_dtype_parse(names[i], &d));
        assert_int_equal(d, i);
    }
    assert_string_equal(ferry_dtype_name((ferry_dtype)77), "invalid");
    assert_int_equal(ferry_dtype_size((ferry_dtype)77), 0);
    ferry_dtype d;
    struct {
        const char *alias;
        ferry_dtype dt;
    } aliases[] = {{"float", FERRY_FLOAT32}, {"double", FERRY_FLOAT64}, {"half", FERRY_FLOAT16},
                   {"int", FERRY_INT32},     {"long", FERRY_INT64},     {"short", FERRY_INT16},
                   {"torch.bfloat16", FERRY_BFLOAT16}, {"ferry.bool", FERRY_BOOL}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        assert_ok(ferry_dtype_parse(aliases[i].alias, &d));
        assert_int_equal(d, aliases[i].dt);
    }
    assert_status(ferry_dtype_parse("complex64", &d), FERRY_ERR_INVALID_ARGUMENT,
                  "Unknown dtype 'complex64'");
    assert_status(ferry_dtype_parse(NULL, &d), FERRY_ERR_INVALID_ARGUMENT, "name is NULL");
    assert_true(ferry_dtype_is_floating(FERRY_BFLOAT16));
    assert_false(ferry_dtype_is_floating(FERRY_INT64));
}

static void test_copy_from_broadcasts_casts_and_crosses_devices(void **state)
{
    (void)state;
    require_backend("sim");
    int64_t shape[2] = {2, 3};
    ferry_tensor *dst = ferry_zeros(FERRY_INT32, 2, shape, "sim:0");
    double row[3] = {1.9, -2.9, 3.5};
    int64_t n = 3;
    ferry_tensor *src = ferry_tensor_from_data(row, FERRY_FLOAT64, 1, &n, "cpu");
    assert_ok(ferry_tensor_copy_from(dst, src));
    int32_t out[6];
    assert_ok(ferry_tensor_copy_to_host(dst, out, sizeof out));
    int32_t want[6] = {1, -2, 3, 1, -2, 3};
    assert_memory_equal(out, want, sizeof want);

    int64_t bad_n = 4;
    ferry_tensor *bad = ferry_zeros(FERRY_FLOAT32, 1, &bad_n, NULL);
    assert_status(ferry_tensor_copy_from(dst, bad), FERRY_ERR_INVALID_ARGUMENT,
                  "The expanded size of the tensor (3) must match the existing size (4)");
    assert_ok(ferry_tensor_fill(dst, 7.7));
    assert_ok(ferry_tensor_copy_to_host(dst, out, sizeof out));
    assert_int_equal(out[5], 7);

    ferry_tensor *ro = ferry_zeros(FERRY_FLOAT64, 1, &n, NULL);
    assert_ok(ferry_tensor_set_read_only(ro, true));
    assert_status(ferry_tensor_copy_from(ro, src), FERRY_ERR_INVALID_ARGUMENT, "read-only");
    assert_status(ferry_tensor_fill(ro, 1), FERRY_ERR_INVALID_ARGUMENT, "read-only");
    ferry_tensor_release(ro);
    ferry_tensor_release(bad);
    ferry_tensor_release(src);
    ferry_tensor_release(dst);
}

static void test_scalar_kinds_promote_as_python_scalars_do(void **state)
{
    (void)state;
    int64_t v[2] = {INT64_C(9007199254740993), -3}; /* 2^53 + 1: not a double */
    int64_t n = 2;
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_INT64, 1, &n, NULL);
    ferry_scalar one = {.kind = FERRY_SCALAR_INT, .value.i = 1};
    ferry_tensor *r = ferry_add_scalar_ex(t, one);
    assert_tensor(r);
    assert_int_equal(ferry_tensor_dtype(r), FERRY_INT64);
    int64_t out[2];
    assert_ok(ferry_tensor_copy_to_host(r, out, sizeof out));
    assert_true(out[0] == INT64_C(9007199254740994) && out[1] == -2);
    ferry_tensor_release(r);

    ferry_scalar two_f = {.kind = FERRY_SCALAR_FLOAT, .value.f = 2.0};
    r = ferry_mul_scalar_ex(t, two_f); /* int tensor * 2.0 -> float32, as torch */
    assert_int_equal(ferry_tensor_dtype(r), FERRY_FLOAT32);
    ferry_tensor_release(r);
    r = ferry_mul_scalar(t, 2.0); /* C's double 2.0 counts as an int scalar */
    assert_int_equal(ferry_tensor_dtype(r), FERRY_INT64);
    ferry_tensor_release(r);

    ferry_scalar yes = {.kind = FERRY_SCALAR_BOOL, .value.b = true};
    assert_null(ferry_sub_scalar_ex(t, yes));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "with a bool tensor is not supported");
    ferry_scalar bogus = {.kind = (ferry_scalar_kind)9, .value.i = 0};
    assert_null(ferry_add_scalar_ex(t, bogus));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "invalid scalar kind 9");
    ferry_tensor_release(t);
}

/* Two handles wrapping one host buffer (as two from_numpy calls on one array do) must
 * be seen as overlapping, or a shifted copy reads what it already wrote. */
static void test_overlap_is_found_through_separate_wrappers_of_one_buffer(void **state)
{
    (void)state;
    double buf[10];
    for (int i = 0; i < 10; i++)
        buf[i] = i;
    int64_t n = 10;
    ferry_tensor *x = ferry_tensor_from_blob(buf, FERRY_FLOAT64, 1, &n, NULL, NULL, NULL);
    ferry_tensor *y = ferry_tensor_from_blob(buf, FERRY_FLOAT64, 1, &n, NULL, NULL, NULL);
    ferry_tensor *dst = ferry_slice(x, 0, 2, 10, 2);   /* 2, 4, 6, 8 */
    ferry_tensor *src = ferry_slice(y, 0, 0, 8, 2);    /* 0, 2, 4, 6 */
    assert_ok(ferry_tensor_copy_from(dst, src));
    double want[10] = {0, 1, 0, 3, 2, 5, 4, 7, 6, 9};
    assert_memory_equal(buf, want, sizeof want);

    for (int i = 0; i < 10; i++)
        buf[i] = i;
    assert_ok(ferry_add_out(dst, dst, src)); /* out aliases a exactly, overlaps b */
    double want_add[10] = {0, 1, 2, 3, 6, 5, 10, 7, 14, 9};
    assert_memory_equal(buf, want_add, sizeof want_add);
    ferry_tensor *rel[] = {src, dst, y, x};
    for (int i = 0; i < 4; i++)
        ferry_tensor_release(rel[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_data_copies_host_values),
        cmocka_unit_test(test_factories_fill_every_dtype),
        cmocka_unit_test(test_eye_sets_the_diagonal_on_cpu_and_sim),
        cmocka_unit_test(test_eye_negative_n_is_refused),
        cmocka_unit_test(test_arange_follows_torch_rules),
        cmocka_unit_test(test_zero_dim_and_empty_tensors_work),
        cmocka_unit_test(test_sixteen_and_more_dims_are_supported),
        cmocka_unit_test(test_creation_rejects_bad_arguments_with_named_messages),
        cmocka_unit_test(test_null_tensor_arguments_are_errors_not_crashes),
        cmocka_unit_test(test_copy_to_host_checks_the_byte_count),
        cmocka_unit_test(test_to_dtype_rejects_an_invalid_dtype),
        cmocka_unit_test(test_from_blob_shares_memory_and_runs_the_deleter_once),
        cmocka_unit_test(test_from_blob_negative_strides_view_reversed_memory),
        cmocka_unit_test(test_from_blob_failure_does_not_run_the_deleter),
        cmocka_unit_test(test_stride_zero_blob_broadcasts_one_element),
        cmocka_unit_test(test_retain_keeps_a_handle_alive_after_one_release),
        cmocka_unit_test(test_requires_grad_is_for_floating_dtypes_only),
        cmocka_unit_test(test_host_data_refuses_grad_tensors_until_detached),
        cmocka_unit_test(test_host_data_refuses_device_memory_with_the_torch_message),
        cmocka_unit_test(test_read_only_cannot_be_undone_and_views_inherit_it),
        cmocka_unit_test(test_clone_and_contiguous_follow_torch_identity_rules),
        cmocka_unit_test(test_dtype_names_sizes_and_aliases),
        cmocka_unit_test(test_copy_from_broadcasts_casts_and_crosses_devices),
        cmocka_unit_test(test_scalar_kinds_promote_as_python_scalars_do),
        cmocka_unit_test(test_overlap_is_found_through_separate_wrappers_of_one_buffer),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return failed;
}

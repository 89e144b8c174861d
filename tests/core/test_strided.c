/* ferry_as_strided, ferry_tensor_storage_offset, ferry_tensor_data_ptr and
 * ferry_set_print_options: results, every refusal's status and message, overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

static ferry_tensor *arange12(void)
{
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)i;
    int64_t n = 12;
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, "cpu");
    assert_tensor(t);
    return t;
}

static void test_as_strided_views(void **state)
{
    (void)state;
    ferry_tensor *t = arange12();
    int64_t shape[2] = {2, 2}, strides[2] = {1, 4};
    ferry_tensor *v = ferry_as_strided(t, 2, shape, strides, 1);
    assert_tensor(v);
    float got[4];
    assert_ok(ferry_tensor_copy_to_host(v, got, sizeof got));
    assert_true(got[0] == 1 && got[1] == 5 && got[2] == 2 && got[3] == 6);
    assert_int_equal(ferry_tensor_storage_offset(v), 1);
    assert_true(ferry_tensor_data_ptr(v) == ferry_tensor_data_ptr(t) + 4);
    assert_true(ferry_tensor_data_ptr(t) == (uintptr_t)ferry_tensor_host_data(t));
    /* The last element exactly at the end of the storage is allowed. */
    int64_t one = 1, zero = 0;
    ferry_tensor *last = ferry_as_strided(t, 1, &one, &zero, 11);
    assert_tensor(last);
    assert_int_equal(ferry_tensor_storage_offset(last), 11);
    /* An empty view addresses nothing: any offset. */
    int64_t es[2] = {0, 5}, est[2] = {100, 100};
    ferry_tensor *e = ferry_as_strided(t, 2, es, est, 1000);
    assert_tensor(e);
    assert_int_equal(ferry_tensor_numel(e), 0);
    ferry_tensor_release(e);
    ferry_tensor_release(last);
    ferry_tensor_release(v);
    ferry_tensor_release(t);
}

static void test_as_strided_errors(void **state)
{
    (void)state;
    ferry_tensor *t = arange12();
    int64_t n13 = 13, s1 = 1, sm1 = -1, two = 2;
    assert_null(ferry_as_strided(t, 1, &n13, &s1, 0));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                       "setStorage: sizes [13], strides [1], storage offset 0, and itemsize 4 "
                       "requiring a storage size of 52 are out of bounds for storage of size 48");
    assert_null(ferry_as_strided(t, 1, &two, &s1, 11));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "storage offset 11");
    assert_null(ferry_as_strided(t, 1, &two, &s1, -1));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "Tensor: invalid storage offset -1");
    assert_null(ferry_as_strided(t, 1, &two, &sm1, 0));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                       "as_strided: Negative strides are not supported at the moment, got "
                       "strides: [-1]");
    assert_null(ferry_as_strided(t, FERRY_MAX_DIMS + 1, &two, &s1, 0));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "as_strided: ndim");
    assert_null(ferry_as_strided(t, 1, NULL, NULL, 0));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "as_strided: ndim");
    /* Extents past int64 in every way a caller can reach them. */
    int64_t big[2] = {INT64_C(1) << 62, 4}, bigs[2] = {INT64_C(1) << 62, 1};
    assert_null(ferry_as_strided(t, 2, big, bigs, 0));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_ARGUMENT);
    int64_t n2 = 2, hs = INT64_MAX;
    assert_null(ferry_as_strided(t, 1, &n2, &hs, 0));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_ARGUMENT);
    int64_t huge_off = INT64_MAX / 2;
    assert_null(ferry_as_strided(t, 1, &n2, &s1, huge_off));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_ARGUMENT);
    assert_null(ferry_as_strided(NULL, 1, &n2, &s1, 0));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ferry_as_strided");
    assert_int_equal(ferry_tensor_storage_offset(NULL), -1);
    assert_true(ferry_tensor_data_ptr(NULL) == 0);
    /* No backward through an arbitrary geometry yet. */
    assert_ok(ferry_tensor_set_requires_grad(t, true));
    assert_null(ferry_as_strided(t, 1, &n2, &s1, 0));
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "as_strided: not supported on a tensor that "
                                              "requires grad");
    ferry_tensor_release(t);
}

static void check_repr(ferry_tensor *t, const char *want)
{
    char *s = ferry_tensor_repr(t);
    assert_non_null(s);
    assert_string_equal(s, want);
    ferry_free(s);
}

static void test_print_options(void **state)
{
    (void)state;
    float v[3] = {1.123456f, 2.5f, 3e-5f};
    int64_t n = 3;
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, "cpu");
    assert_tensor(t);
    check_repr(t, "tensor([1.1235e+00, 2.5000e+00, 3.0000e-05])");
    assert_ok(ferry_set_print_options(2, 1000, 3, 80, 0));
    check_repr(t, "tensor([1.12, 2.50, 0.00])");
    assert_ok(ferry_set_print_options(4, 1000, 3, 80, 1));
    check_repr(t, "tensor([1.1235e+00, 2.5000e+00, 3.0000e-05])");
    ferry_tensor *a = arange12();
    assert_ok(ferry_set_print_options(4, 5, 1, 80, -1));
    check_repr(a, "tensor([ 0.,  ..., 11.])");
    assert_status(ferry_set_print_options(-1, 1000, 3, 80, -1), FERRY_ERR_INVALID_ARGUMENT,
                  "precision must be in [0, 64], got -1");
    assert_status(ferry_set_print_options(65, 1000, 3, 80, -1), FERRY_ERR_INVALID_ARGUMENT,
                  "precision must be in [0, 64], got 65");
    assert_status(ferry_set_print_options(4, -1, 3, 80, -1), FERRY_ERR_INVALID_ARGUMENT,
                  "threshold must be >= 0, got -1");
    assert_status(ferry_set_print_options(4, 1000, 4097, 80, -1), FERRY_ERR_INVALID_ARGUMENT,
                  "edgeitems must be in [0, 4096], got 4097");
    assert_status(ferry_set_print_options(4, 1000, 3, 0, -1), FERRY_ERR_INVALID_ARGUMENT,
                  "linewidth must be >= 1, got 0");
    assert_status(ferry_set_print_options(4, 1000, 3, 80, 2), FERRY_ERR_INVALID_ARGUMENT,
                  "sci_mode must be -1 (auto), 0 or 1, got 2");
    check_repr(a, "tensor([ 0.,  ..., 11.])"); /* a refused call changes nothing */
    assert_ok(ferry_set_print_options(4, 1000, 3, 80, -1));
    check_repr(a, "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11.])");
    ferry_tensor_release(a);
    ferry_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_as_strided_views),
        cmocka_unit_test(test_as_strided_errors),
        cmocka_unit_test(test_print_options),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return rc;
}

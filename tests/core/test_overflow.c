/* Sizes, strides and steps near the int64 limits, and the writes PyTorch refuses or
 * allows, on every device: each case found from outside once crashed, hung, wrapped
 * silently or read past a heap block. */
#include <stdint.h>

#include "test_util.h"

static const char *const devices[] = {"cpu", "sim:0", "opencl:0"};
#define NDEV (sizeof devices / sizeof devices[0])

/* Whether dev can run here; an unusable device that this run requires fails the test. */
static bool usable(const char *dev)
{
    char type[16];
    snprintf(type, sizeof type, "%.*s", (int)strcspn(dev, ":"), dev);
    if (ferry_is_available(type))
        return true;
    if (ferry_test_required(type))
        fail_msg("%s is required here (FERRY_TEST_REQUIRE) but unusable: %s", type,
                 ferry_backend_status(type));
    printf("[  SKIP    ] %s: %s\n", dev, ferry_backend_status(type));
    return false;
}

static uint64_t allocated(const char *dev)
{
    ferry_memory_stats m;
    assert_ok(ferry_memory_stats_get(dev, &m));
    return m.allocated;
}

static ferry_tensor *ramp(ferry_dtype dt, int64_t n, const char *dev)
{
    ferry_tensor *t = ferry_arange(0, (double)n, 1, dt, dev);
    assert_tensor(t);
    return t;
}

static void test_expand_whose_numel_overflows_is_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEV; i++) {
        if (!usable(devices[i]))
            continue;
        int64_t one[2] = {1, 1};
        ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 2, one, devices[i]);
        assert_tensor(t);
        uint64_t before = allocated(devices[i]);
        const int64_t shapes[][2] = {{((int64_t)1 << 62) + 1, 4},
                                     {(int64_t)1 << 32, (int64_t)1 << 32},
                                     {INT64_MAX, 2}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            assert_null(ferry_expand(t, 2, shapes[s]));
            assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "numel: integer multiplication overflow");
        }
        /* Through reshape too: -1 cannot stand for an overflowing count. */
        int64_t big[3] = {(int64_t)1 << 62, 4, 1};
        assert_null(ferry_reshape(t, 3, big));
        assert_int_equal(allocated(devices[i]), before);
        /* The source is untouched and still usable. */
        ferry_tensor *s = ferry_sum(t, 0, NULL, false);
        assert_tensor(s);
        float v;
        assert_ok(ferry_tensor_copy_to_host(s, &v, sizeof v));
        assert_true(v == 1.0f);
        ferry_tensor_release(s);
        ferry_tensor_release(t);
    }
}

static void test_huge_expanded_view_keeps_its_numel_and_refuses_dense_copies(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEV; i++) {
        if (!usable(devices[i]))
            continue;
        int64_t one = 1, n = ((int64_t)1 << 61) + 1;
        ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &one, devices[i]);
        ferry_tensor *e = ferry_expand(t, 1, &n);
        assert_tensor(e);
        assert_true(ferry_tensor_numel(e) == n);
        /* Its dense byte size does not fit: said, not wrapped to a small number. */
        assert_true(ferry_tensor_nbytes(e) == SIZE_MAX);
        float buf[4];
        assert_status(ferry_tensor_copy_to_host(e, buf, sizeof buf), FERRY_ERR_INVALID_ARGUMENT,
                      "need more bytes than fit in memory");
        assert_null(ferry_matmul(e, e));
        assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, "needs operands of more bytes than fit");
        assert_null(ferry_tensor_contiguous(e));
        assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "more elements than fit in memory");
        /* 2-D with a transpose, as found: (2**61 + 1, 4) @ its transpose. */
        int64_t one2[2] = {1, 1}, shape2[2] = {((int64_t)1 << 60) + 1, 4};
        ferry_tensor *t2 = ferry_ones(FERRY_FLOAT32, 2, one2, devices[i]);
        ferry_tensor *x = ferry_expand(t2, 2, shape2);
        assert_tensor(x);
        ferry_tensor *xt = ferry_transpose(x, 0, 1);
        assert_null(ferry_matmul(xt, x));
        assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, "needs operands of more bytes than fit");
        ferry_tensor_release(xt);
        ferry_tensor_release(x);
        ferry_tensor_release(t2);
        ferry_tensor_release(e);
        ferry_tensor_release(t);
    }
}

static void test_repr_of_a_huge_expanded_tensor_reads_only_what_it_prints(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEV; i++) {
        if (!usable(devices[i]))
            continue;
        char suffix[64] = "";
        if (i > 0)
            snprintf(suffix, sizeof suffix, ", device='%s'", devices[i]);
        int64_t one = 1, n = (int64_t)1 << 62;
        ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &one, devices[i]);
        ferry_tensor *e = ferry_expand(t, 1, &n);
        assert_tensor(e);
        uint64_t before = allocated(devices[i]);
        char *r = ferry_tensor_repr(e);
        assert_non_null(r);
        char want[1024];
        snprintf(want, sizeof want, "tensor([1., 1., 1.,  ..., 1., 1., 1.]%s)", suffix);
        assert_string_equal(r, want);
        ferry_free(r);
        assert_int_equal(allocated(devices[i]), before);

        /* Rows of 0..7 repeated 2**40 times: the head and tail of each dim are picked. */
        ferry_tensor *row = ramp(FERRY_INT64, 8, devices[i]);
        int64_t shape[2] = {(int64_t)1 << 40, 8};
        ferry_tensor *g = ferry_expand(row, 2, shape);
        assert_tensor(g);
        r = ferry_tensor_repr(g);
        assert_non_null(r);
        snprintf(want, sizeof want,
                 "tensor([[0, 1, 2,  ..., 5, 6, 7],\n"
                 "        [0, 1, 2,  ..., 5, 6, 7],\n"
                 "        [0, 1, 2,  ..., 5, 6, 7],\n"
                 "        ...,\n"
                 "        [0, 1, 2,  ..., 5, 6, 7],\n"
                 "        [0, 1, 2,  ..., 5, 6, 7],\n"
                 "        [0, 1, 2,  ..., 5, 6, 7]]%s)",
                 suffix);
        assert_string_equal(r, want);
        ferry_free(r);
        ferry_tensor_release(g);
        ferry_tensor_release(row);
        ferry_tensor_release(e);
        ferry_tensor_release(t);
    }
}

static void test_repr_of_a_summarized_reversed_view_picks_head_and_tail(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEV; i++) {
        if (!usable(devices[i]))
            continue;
        /* 0..2047 reversed through a negative-stride-free route: a step slice. */
        ferry_tensor *a = ramp(FERRY_INT64, 4096, devices[i]);
        ferry_tensor *s = ferry_slice(a, 0, 1, 4096, 2); /* 1, 3, ..., 4095 */
        assert_tensor(s);
        char *r = ferry_tensor_repr(s);
        assert_non_null(r);
        char want[256];
        snprintf(want, sizeof want, "tensor([   1,    3,    5,  ..., 4091, 4093, 4095]%s%s%s)",
                 i ? ", device='" : "", i ? devices[i] : "", i ? "'" : "");
        assert_string_equal(r, want);
        ferry_free(r);
        ferry_tensor_release(s);
        ferry_tensor_release(a);
    }
}

static void test_slice_steps_near_int64_max_give_numpy_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEV; i++) {
        if (!usable(devices[i]))
            continue;
        ferry_tensor *a = ramp(FERRY_FLOAT64, 7, devices[i]);
        const struct {
            int64_t start, end, step, len, first;
        } cases[] = {
            {2, 7, INT64_MAX - 1, 1, 2},
            {0, 7, INT64_MAX, 1, 0},
            {6, INT64_MAX, INT64_MAX, 1, 6},
            {7, INT64_MAX, INT64_MAX, 0, 0},
            {INT64_MIN, INT64_MAX, 3, 3, 0},
            {-3, INT64_MIN, 1, 0, 0},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            ferry_tensor *s = ferry_slice(a, 0, cases[c].start, cases[c].end, cases[c].step);
            assert_tensor(s);
            assert_int_equal(ferry_tensor_shape(s)[0], cases[c].len);
            if (cases[c].len > 0) {
                double v[3];
                assert_ok(ferry_tensor_copy_to_host(s, v, (size_t)cases[c].len * sizeof v[0]));
                assert_true(v[0] == (double)cases[c].first);
            }
            ferry_tensor_release(s);
        }
        ferry_tensor_release(a);
    }
}

static void never_called(void *data, void *ctx)
{
    (void)data;
    *(int *)ctx += 1;
}

static void test_from_blob_strides_whose_extent_overflows_are_refused(void **state)
{
    (void)state;
    static float data[8];
    int calls = 0;
    const struct {
        int ndim;
        int64_t shape[2], strides[2];
    } cases[] = {
        {1, {2, 0}, {INT64_MIN, 0}},
        {1, {3, 0}, {INT64_MAX / 2 + 1, 0}},
        {2, {2, 2}, {INT64_MAX / 4, INT64_MAX / 4}},
        {2, {2, 2}, {INT64_MIN / 8, -(INT64_MAX / 8)}},
        {1, {2, 0}, {INT64_MAX / 4, 0}}, /* fits in elements, not in bytes */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ferry_tensor *t = ferry_tensor_from_blob(data, FERRY_FLOAT32, cases[c].ndim,
                                                 cases[c].shape, cases[c].strides,
                                                 never_called, &calls);
        assert_null(t);
        assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_ARGUMENT);
        if (!strstr(ferry_last_error(), "spans more bytes than a 64-bit offset can address") &&
            !strstr(ferry_last_error(), "reach outside the address space"))
            fail_msg("case %zu: unexpected message '%s'", c, ferry_last_error());
    }
    assert_int_equal(calls, 0);
    /* A one-element dim's stride is never used, so any value is fine there. */
    int64_t shape[2] = {1, 8}, strides[2] = {INT64_MIN, 1};
    ferry_tensor *t = ferry_tensor_from_blob(data, FERRY_FLOAT32, 2, shape, strides, NULL, NULL);
    assert_tensor(t);
    ferry_tensor_release(t);
}

static void test_copy_onto_itself_is_a_no_op_on_every_device(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDEV; i++) {
        if (!usable(devices[i]))
            continue;
        ferry_tensor *a = ramp(FERRY_FLOAT32, 6, devices[i]);
        assert_ok(ferry_tensor_copy_from(a, a));
        /* Two handles of one slice: x[:3] = x[:3]. */
        ferry_tensor *s1 = ferry_slice(a, 0, 0, 3, 1), *s2 = ferry_slice(a, 0, 0, 3, 1);
        assert_ok(ferry_tensor_copy_from(s1, s2));
        /* An overlapping shifted copy still reads its source first: x[1:] = x[:-1]. */
        ferry_tensor *hi = ferry_slice(a, 0, 1, 6, 1), *lo = ferry_slice(a, 0, 0, 5, 1);
        assert_ok(ferry_tensor_copy_from(hi, lo));
        float v[6];
        assert_ok(ferry_tensor_copy_to_host(a, v, sizeof v));
        const float want[6] = {0, 0, 1, 2, 3, 4};
        for (int k = 0; k < 6; k++)
            assert_true(v[k] == want[k]);
        ferry_tensor_release(hi);
        ferry_tensor_release(lo);
        ferry_tensor_release(s1);
        ferry_tensor_release(s2);
        ferry_tensor_release(a);
    }
}

static void test_writes_into_an_expanded_view_are_refused(void **state)
{
    (void)state;
    const char *msg = "more than one element of the written-to tensor refers to a single memory "
                      "location. Please clone() the tensor before performing the operation.";
    for (size_t i = 0; i < NDEV; i++) {
        if (!usable(devices[i]))
            continue;
        int64_t one = 1, three = 3;
        ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &one, devices[i]);
        ferry_tensor *e = ferry_expand(t, 1, &three);
        ferry_tensor *src = ramp(FERRY_FLOAT32, 3, devices[i]);
        assert_status(ferry_tensor_copy_from(e, src), FERRY_ERR_INVALID_ARGUMENT, msg);
        assert_status(ferry_tensor_fill(e, 2.0), FERRY_ERR_INVALID_ARGUMENT, msg);
        float v;
        assert_ok(ferry_tensor_copy_to_host(t, &v, sizeof v));
        assert_true(v == 0.0f);
        /* An expanded view of a single element (size 1) is writable as torch allows. */
        ferry_tensor *e1 = ferry_expand(t, 1, &one);
        assert_ok(ferry_tensor_fill(e1, 5.0));
        assert_ok(ferry_tensor_copy_to_host(t, &v, sizeof v));
        assert_true(v == 5.0f);
        ferry_tensor_release(e1);
        ferry_tensor_release(src);
        ferry_tensor_release(e);
        ferry_tensor_release(t);
    }
}

static void test_empty_tensor_is_contiguous_whatever_its_strides(void **state)
{
    (void)state;
    int64_t shape[3] = {0, 3, 2};
    ferry_tensor *z = ferry_zeros(FERRY_FLOAT32, 3, shape, NULL);
    ferry_tensor *t = ferry_transpose(z, 2, 1);
    assert_tensor(t);
    assert_true(ferry_tensor_is_contiguous(t));
    ferry_tensor *c = ferry_tensor_contiguous(t);
    assert_ptr_equal(c, t); /* torch: contiguous() of a contiguous tensor is itself */
    ferry_tensor_release(c);
    ferry_tensor_release(t);
    ferry_tensor_release(z);
}

static void test_empty_tensors_with_huge_other_dims_stay_empty(void **state)
{
    (void)state;
    static float data[1];
    int64_t shape[3] = {((int64_t)1 << 62) + 1, 3, 0};
    ferry_tensor *t = ferry_tensor_from_blob(data, FERRY_FLOAT32, 3, shape, NULL, NULL, NULL);
    assert_tensor(t);
    assert_int_equal(ferry_tensor_numel(t), 0);
    assert_int_equal(ferry_tensor_nbytes(t), 0);
    assert_true(ferry_tensor_is_contiguous(t));
    char *r = ferry_tensor_repr(t);
    assert_non_null(r);
    assert_string_equal(r, "tensor([], size=(4611686018427387905, 3, 0))");
    ferry_free(r);
    /* Its dims multiply past int64 only before the 0. */
    int64_t rs[3] = {(int64_t)1 << 40, (int64_t)1 << 40, 0};
    ferry_tensor *v = ferry_reshape(t, 3, rs);
    assert_tensor(v);
    assert_int_equal(ferry_tensor_numel(v), 0);
    /* (2**40, 2**40, 0) @ (2**40, 0, 2**40) would have 2**120 elements. */
    ferry_tensor *vt = ferry_transpose(v, 1, 2);
    assert_tensor(vt);
    assert_null(ferry_matmul(v, vt));
    assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, "needs operands of more bytes than fit");
    ferry_tensor_release(vt);
    /* Merging the two huge dims would need a size no int64 holds. */
    ferry_tensor *z = ferry_zeros(FERRY_FLOAT32, 3, (int64_t[]){0, (int64_t)1 << 40, 1 << 30},
                                  NULL);
    assert_tensor(z);
    assert_null(ferry_flatten(z, 1, 2));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "numel: integer multiplication overflow");
    ferry_tensor *f = ferry_flatten(z, 0, 1);
    assert_tensor(f);
    assert_int_equal(ferry_tensor_shape(f)[0], 0);
    ferry_tensor_release(f);
    ferry_tensor_release(z);
    ferry_tensor_release(v);
    ferry_tensor_release(t);
}

static void test_slice_of_an_empty_tensor_with_a_huge_stride_keeps_its_offset(void **state)
{
    (void)state;
    /* Contiguous strides (2**62, 1, 1): start 3 along dim 0 is 3 * 2**62 elements in,
     * past int64, but the result is empty and reaches nothing. */
    int64_t shape[3] = {4, (int64_t)1 << 62, 0};
    ferry_tensor *z = ferry_zeros(FERRY_FLOAT32, 3, shape, NULL);
    assert_tensor(z);
    assert_int_equal(ferry_tensor_strides(z)[0], (int64_t)1 << 62);
    ferry_tensor *s = ferry_slice(z, 0, 3, 4, 1);
    assert_tensor(s);
    assert_int_equal(ferry_tensor_ndim(s), 3);
    assert_int_equal(ferry_tensor_shape(s)[0], 1);
    assert_int_equal(ferry_tensor_shape(s)[1], (int64_t)1 << 62);
    assert_int_equal(ferry_tensor_numel(s), 0);
    ferry_tensor *c = ferry_tensor_contiguous(s);
    assert_tensor(c);
    assert_int_equal(ferry_tensor_numel(c), 0);
    ferry_tensor_release(c);
    ferry_tensor_release(s);
    ferry_tensor_release(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_whose_numel_overflows_is_refused),
        cmocka_unit_test(test_huge_expanded_view_keeps_its_numel_and_refuses_dense_copies),
        cmocka_unit_test(test_repr_of_a_huge_expanded_tensor_reads_only_what_it_prints),
        cmocka_unit_test(test_repr_of_a_summarized_reversed_view_picks_head_and_tail),
        cmocka_unit_test(test_slice_steps_near_int64_max_give_numpy_lengths),
        cmocka_unit_test(test_from_blob_strides_whose_extent_overflows_are_refused),
        cmocka_unit_test(test_copy_onto_itself_is_a_no_op_on_every_device),
        cmocka_unit_test(test_writes_into_an_expanded_view_are_refused),
        cmocka_unit_test(test_empty_tensor_is_contiguous_whatever_its_strides),
        cmocka_unit_test(test_empty_tensors_with_huge_other_dims_stay_empty),
        cmocka_unit_test(test_slice_of_an_empty_tensor_with_a_huge_stride_keeps_its_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* ferry_tensor_repr: the exact text of PyTorch's repr(tensor) (torch/_tensor_str.py, default
 * print options) with "torch." spelled "ferry.": layout, number modes, widths, wrapping,
 * summarization and suffixes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ferry/ferry.h>
#include <ferry/half.h>

#define expect_error(status, substring)                                                    \
    do {                                                                                   \
        assert_string_equal(ferry_status_name(ferry_last_status()),                       \
                            ferry_status_name(status));                                    \
        if (!strstr(ferry_last_error(), (substring)))                                      \
            fail_msg("message \"%s\" lacks \"%s\"", ferry_last_error(), (substring));      \
    } while (0)

/* Checks the repr of t and releases t. */
static void check_repr(ferry_tensor *t, const char *expected)
{
    if (!t)
        fail_msg("tensor creation failed: %s", ferry_last_error());
    char *s = ferry_tensor_repr(t);
    if (!s)
        fail_msg("ferry_tensor_repr failed: %s", ferry_last_error());
    if (strcmp(s, expected) != 0)
        print_message("got:\n%s\nexpected:\n%s\n", s, expected);
    assert_string_equal(s, expected);
    ferry_free(s);
    ferry_tensor_release(t);
}

static ferry_tensor *make(ferry_dtype dtype, const void *data, int ndim, const int64_t *shape)
{
    return ferry_tensor_from_data(data, dtype, ndim, shape, NULL);
}

static ferry_tensor *f32_1d(const float *v, int64_t n)
{
    return make(FERRY_FLOAT32, v, 1, &n);
}

/* ---- the API.md example ---- */

static void test_repr_eye_float64_matches_api_example(void **state)
{
    (void)state;
    check_repr(ferry_eye(3, FERRY_FLOAT64, NULL),
               "tensor([[1., 0., 0.],\n"
               "        [0., 1., 0.],\n"
               "        [0., 0., 1.]], dtype=ferry.float64)");
}

/* ---- 0-d ---- */

static void test_repr_scalars_print_without_brackets(void **state)
{
    (void)state;
    float three = 3.0f, half = 2.5f;
    double tiny = 1e-5;
    int64_t seven = 7;
    uint8_t yes = 1;
    check_repr(make(FERRY_FLOAT32, &three, 0, NULL), "tensor(3.)");
    check_repr(make(FERRY_FLOAT32, &half, 0, NULL), "tensor(2.5000)");
    check_repr(make(FERRY_FLOAT64, &tiny, 0, NULL), "tensor(1.0000e-05, dtype=ferry.float64)");
    check_repr(make(FERRY_INT64, &seven, 0, NULL), "tensor(7)");
    check_repr(make(FERRY_BOOL, &yes, 0, NULL), "tensor(True)");
}

/* ---- float modes ---- */

static void test_repr_integer_valued_floats_print_with_trailing_point(void **state)
{
    (void)state;
    check_repr(ferry_arange(0, 5, 1, FERRY_FLOAT32, NULL), "tensor([0., 1., 2., 3., 4.])");
    const float neg[] = {-1.0f, 0.0f, 25.0f};
    check_repr(f32_1d(neg, 3), "tensor([-1.,  0., 25.])");
    /* max / min == 1000 exactly is not past the sci threshold. */
    const float wide[] = {0.0f, 1.0f, 1000.0f};
    check_repr(f32_1d(wide, 3), "tensor([   0.,    1., 1000.])");
    const float negzero[] = {-0.0f, 1.0f};
    check_repr(f32_1d(negzero, 2), "tensor([-0., 1.])");
}

static void test_repr_fractional_floats_print_four_decimals_right_aligned(void **state)
{
    (void)state;
    const float v[] = {1.5f, -2.25f};
    check_repr(f32_1d(v, 2), "tensor([ 1.5000, -2.2500])");
}

static void test_repr_wide_range_switches_to_scientific(void **state)
{
    (void)state;
    const float frac[] = {1e-5f, 1e5f};
    check_repr(f32_1d(frac, 2), "tensor([1.0000e-05, 1.0000e+05])");
    /* Integer-valued, but max / min > 1000. */
    const float ints[] = {1.0f, 1e4f};
    check_repr(f32_1d(ints, 2), "tensor([1.0000e+00, 1.0000e+04])");
    /* Integer-valued, but max > 1e8. */
    const float big[] = {1e9f, -2e9f};
    check_repr(f32_1d(big, 2), "tensor([ 1.0000e+09, -2.0000e+09])");
}

static void test_repr_nan_and_inf_are_padded_to_the_finite_width(void **state)
{
    (void)state;
    const float fixed[] = {NAN, INFINITY, -INFINITY, 1.5f};
    check_repr(f32_1d(fixed, 4), "tensor([   nan,    inf,   -inf, 1.5000])");
    /* Integer mode: nonfinite values get no trailing point. */
    const float ints[] = {1.0f, NAN, -INFINITY, -2.0f};
    check_repr(f32_1d(ints, 4), "tensor([ 1., nan, -inf, -2.])");
    /* No nonzero finite value: width 1, so nothing is padded; -nan prints as nan. */
    const float none[] = {-NAN, 0.0f, -0.0f};
    check_repr(f32_1d(none, 3), "tensor([nan, 0., -0.])");
}

/* ---- integers and bools ---- */

static void test_repr_integers_pad_to_common_width(void **state)
{
    (void)state;
    const int64_t v[] = {1, -10, 100};
    int64_t n = 3;
    check_repr(make(FERRY_INT64, v, 1, &n), "tensor([  1, -10, 100])");
    const int64_t extremes[] = {INT64_MIN, INT64_MAX};
    n = 2;
    check_repr(make(FERRY_INT64, extremes, 1, &n),
               "tensor([-9223372036854775808,  9223372036854775807])");
}

static void test_repr_bools_print_true_false(void **state)
{
    (void)state;
    const uint8_t v[] = {1, 0};
    int64_t n = 2;
    check_repr(make(FERRY_BOOL, v, 1, &n), "tensor([ True, False])");
}

/* ---- dtype suffix ---- */

static void test_repr_non_default_dtypes_get_a_suffix(void **state)
{
    (void)state;
    int64_t n = 3;
    const int32_t i32[] = {1, 2, 3};
    const int16_t i16[] = {1, 2, 3};
    const int8_t i8[] = {1, 2, 3};
    const uint8_t u8[] = {1, 2, 3};
    const double f64[] = {1, 2, 3};
    check_repr(make(FERRY_INT32, i32, 1, &n), "tensor([1, 2, 3], dtype=ferry.int32)");
    check_repr(make(FERRY_INT16, i16, 1, &n), "tensor([1, 2, 3], dtype=ferry.int16)");
    check_repr(make(FERRY_INT8, i8, 1, &n), "tensor([1, 2, 3], dtype=ferry.int8)");
    check_repr(make(FERRY_UINT8, u8, 1, &n), "tensor([1, 2, 3], dtype=ferry.uint8)");
    check_repr(make(FERRY_FLOAT64, f64, 1, &n), "tensor([1., 2., 3.], dtype=ferry.float64)");
}

static void test_repr_half_types_format_their_float32_value(void **state)
{
    (void)state;
    int64_t n = 3;
    uint16_t h[3] = {ferry_f32_to_f16(1.0f), ferry_f32_to_f16(2.0f), ferry_f32_to_f16(3.0f)};
    check_repr(make(FERRY_FLOAT16, h, 1, &n), "tensor([1., 2., 3.], dtype=ferry.float16)");
    /* 0.1 is 0.0999755859375 in float16; with -1000 the range is past 1000. */
    uint16_t h2[3] = {ferry_f32_to_f16(0.1f), ferry_f32_to_f16(2.5f), ferry_f32_to_f16(-1000.0f)};
    check_repr(make(FERRY_FLOAT16, h2, 1, &n),
               "tensor([ 9.9976e-02,  2.5000e+00, -1.0000e+03], dtype=ferry.float16)");
    n = 2;
    uint16_t b[2] = {ferry_f32_to_bf16(1.0f), ferry_f32_to_bf16(2.5f)};
    check_repr(make(FERRY_BFLOAT16, b, 1, &n), "tensor([1.0000, 2.5000], dtype=ferry.bfloat16)");
}

/* ---- layout of several dimensions ---- */

static void test_repr_2d_rows_are_indented_by_the_prefix(void **state)
{
    (void)state;
    const float v[] = {1, -2.5f, 3, 4, 5, 6};
    const int64_t shape[] = {2, 3};
    check_repr(make(FERRY_FLOAT32, v, 2, shape),
               "tensor([[ 1.0000, -2.5000,  3.0000],\n"
               "        [ 4.0000,  5.0000,  6.0000]])");
}

static void test_repr_3d_blocks_are_separated_by_a_blank_line(void **state)
{
    (void)state;
    const float v[] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int64_t shape[] = {2, 2, 2};
    check_repr(make(FERRY_FLOAT32, v, 3, shape),
               "tensor([[[0., 1.],\n"
               "         [2., 3.]],\n"
               "\n"
               "        [[4., 5.],\n"
               "         [6., 7.]]])");
}

static void test_repr_4d_blocks_are_separated_by_two_blank_lines(void **state)
{
    (void)state;
    const int32_t v[] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int64_t shape[] = {2, 1, 2, 2};
    check_repr(make(FERRY_INT32, v, 4, shape),
               "tensor([[[[0, 1],\n"
               "          [2, 3]]],\n"
               "\n"
               "\n"
               "        [[[4, 5],\n"
               "          [6, 7]]]], dtype=ferry.int32)");
}

static void test_repr_strided_view_prints_in_logical_order(void **state)
{
    (void)state;
    static int64_t data[] = {1, 2, 3, 4, 5, 6};
    const int64_t shape[] = {3, 2};
    const int64_t strides[] = {1, 3}; /* the transpose of a 2 x 3 row-major array */
    check_repr(ferry_tensor_from_blob(data, FERRY_INT64, 2, shape, strides, NULL, NULL),
               "tensor([[1, 4],\n"
               "        [2, 5],\n"
               "        [3, 6]])");
}

/* ---- empty tensors ---- */

static void test_repr_empty_tensors_show_size_and_any_non_float32_dtype(void **state)
{
    (void)state;
    int64_t zero = 0;
    const int64_t s2[] = {0, 3};
    const int64_t s3[] = {2, 0, 4};
    check_repr(make(FERRY_FLOAT32, NULL, 1, &zero), "tensor([])");
    /* Unlike a non-empty one, an empty int64 tensor states its dtype. */
    check_repr(make(FERRY_INT64, NULL, 1, &zero), "tensor([], dtype=ferry.int64)");
    check_repr(make(FERRY_FLOAT32, NULL, 2, s2), "tensor([], size=(0, 3))");
    check_repr(make(FERRY_BOOL, NULL, 3, s3), "tensor([], size=(2, 0, 4), dtype=ferry.bool)");
}

/* ---- line wrapping ---- */

static void test_repr_long_vector_wraps_at_80_columns(void **state)
{
    (void)state;
    float v[30];
    for (int i = 0; i < 30; i++)
        v[i] = 0.5f * (float)i + 0.25f;
    /* Width 7 + ", " = 9 per element; (80 - 7) / 9 = 8 per line. */
    check_repr(f32_1d(v, 30),
               "tensor([ 0.2500,  0.7500,  1.2500,  1.7500,  2.2500,  2.7500,  3.2500,  3.7500,\n"
               "         4.2500,  4.7500,  5.2500,  5.7500,  6.2500,  6.7500,  7.2500,  7.7500,\n"
               "         8.2500,  8.7500,  9.2500,  9.7500, 10.2500, 10.7500, 11.2500, 11.7500,\n"
               "        12.2500, 12.7500, 13.2500, 13.7500, 14.2500, 14.7500])");
}

static void test_repr_rows_wrap_against_their_own_indent(void **state)
{
    (void)state;
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = 1.5f * (float)i - 7.0f;
    const int64_t shape[] = {2, 12};
    check_repr(make(FERRY_FLOAT32, v, 2, shape),
               "tensor([[-7.0000, -5.5000, -4.0000, -2.5000, -1.0000,  0.5000,  2.0000,  3.5000,\n"
               "          5.0000,  6.5000,  8.0000,  9.5000],\n"
               "        [11.0000, 12.5000, 14.0000, 15.5000, 17.0000, 18.5000, 20.0000, 21.5000,\n"
               "         23.0000, 24.5000, 26.0000, 27.5000]])");
}

static void test_repr_suffixes_wrap_past_80_columns(void **state)
{
    (void)state;
    double v[7];
    for (int i = 0; i < 7; i++)
        v[i] = i + 0.5;
    int64_t n = 7;
    ferry_tensor *t = make(FERRY_FLOAT64, v, 1, &n);
    assert_non_null(t);
    assert_int_equal(ferry_tensor_set_requires_grad(t, true), FERRY_OK);
    check_repr(t, "tensor([0.5000, 1.5000, 2.5000, 3.5000, 4.5000, 5.5000, 6.5000],\n"
                  "       dtype=ferry.float64, requires_grad=True)");
}

/* ---- summarization past 1000 elements ---- */

static void test_repr_2000_element_vector_is_summarized(void **state)
{
    (void)state;
    check_repr(ferry_arange(0, 2000, 1, FERRY_INT64, NULL),
               "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
    /* Only the shown elements count: 0.25 .. 499.75 spans more than 1000. */
    check_repr(ferry_arange(0, 500, 0.25, FERRY_FLOAT32, NULL),
               "tensor([0.0000e+00, 2.5000e-01, 5.0000e-01,  ..., 4.9925e+02, 4.9950e+02,\n"
               "        4.9975e+02])");
}

static void test_repr_hidden_elements_do_not_change_the_format(void **state)
{
    (void)state;
    float *v = malloc(1001 * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < 1001; i++)
        v[i] = (i >= 3 && i <= 997) ? 1e-9f : 1.0f; /* tiny values would force sci mode */
    check_repr(f32_1d(v, 1001), "tensor([1., 1., 1.,  ..., 1., 1., 1.])");
    free(v);
}

static void test_repr_100x100_is_summarized_in_both_dims(void **state)
{
    (void)state;
    int64_t *v = malloc(10000 * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < 10000; i++)
        v[i] = i;
    const int64_t shape[] = {100, 100};
    check_repr(make(FERRY_INT64, v, 2, shape),
               "tensor([[   0,    1,    2,  ...,   97,   98,   99],\n"
               "        [ 100,  101,  102,  ...,  197,  198,  199],\n"
               "        [ 200,  201,  202,  ...,  297,  298,  299],\n"
               "        ...,\n"
               "        [9700, 9701, 9702,  ..., 9797, 9798, 9799],\n"
               "        [9800, 9801, 9802,  ..., 9897, 9898, 9899],\n"
               "        [9900, 9901, 9902,  ..., 9997, 9998, 9999]])");
    free(v);
}

static void test_repr_summarized_rows_wrap_with_dtype_suffix(void **state)
{
    (void)state;
    double *v = malloc(10000 * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < 10000; i++)
        v[i] = 0.5 * i;
    const int64_t shape[] = {100, 100};
    check_repr(make(FERRY_FLOAT64, v, 2, shape),
               "tensor([[0.0000e+00, 5.0000e-01, 1.0000e+00,  ..., 4.8500e+01, 4.9000e+01,\n"
               "         4.9500e+01],\n"
               "        [5.0000e+01, 5.0500e+01, 5.1000e+01,  ..., 9.8500e+01, 9.9000e+01,\n"
               "         9.9500e+01],\n"
               "        [1.0000e+02, 1.0050e+02, 1.0100e+02,  ..., 1.4850e+02, 1.4900e+02,\n"
               "         1.4950e+02],\n"
               "        ...,\n"
               "        [4.8500e+03, 4.8505e+03, 4.8510e+03,  ..., 4.8985e+03, 4.8990e+03,\n"
               "         4.8995e+03],\n"
               "        [4.9000e+03, 4.9005e+03, 4.9010e+03,  ..., 4.9485e+03, 4.9490e+03,\n"
               "         4.9495e+03],\n"
               "        [4.9500e+03, 4.9505e+03, 4.9510e+03,  ..., 4.9985e+03, 4.9990e+03,\n"
               "         4.9995e+03]], dtype=ferry.float64)");
    free(v);
}

static void test_repr_summarized_3d_has_blank_lines_around_ellipsis(void **state)
{
    (void)state;
    int64_t *v = malloc(2000 * sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < 2000; i++)
        v[i] = i;
    const int64_t shape[] = {20, 10, 10};
    check_repr(make(FERRY_INT64, v, 3, shape),
               "tensor([[[   0,    1,    2,  ...,    7,    8,    9],\n"
               "         [  10,   11,   12,  ...,   17,   18,   19],\n"
               "         [  20,   21,   22,  ...,   27,   28,   29],\n"
               "         ...,\n"
               "         [  70,   71,   72,  ...,   77,   78,   79],\n"
               "         [  80,   81,   82,  ...,   87,   88,   89],\n"
               "         [  90,   91,   92,  ...,   97,   98,   99]],\n"
               "\n"
               "        [[ 100,  101,  102,  ...,  107,  108,  109],\n"
               "         [ 110,  111,  112,  ...,  117,  118,  119],\n"
               "         [ 120,  121,  122,  ...,  127,  128,  129],\n"
               "         ...,\n"
               "         [ 170,  171,  172,  ...,  177,  178,  179],\n"
               "         [ 180,  181,  182,  ...,  187,  188,  189],\n"
               "         [ 190,  191,  192,  ...,  197,  198,  199]],\n"
               "\n"
               "        [[ 200,  201,  202,  ...,  207,  208,  209],\n"
               "         [ 210,  211,  212,  ...,  217,  218,  219],\n"
               "         [ 220,  221,  222,  ...,  227,  228,  229],\n"
               "         ...,\n"
               "         [ 270,  271,  272,  ...,  277,  278,  279],\n"
               "         [ 280,  281,  282,  ...,  287,  288,  289],\n"
               "         [ 290,  291,  292,  ...,  297,  298,  299]],\n"
               "\n"
               "        ...,\n"
               "\n"
               "        [[1700, 1701, 1702,  ..., 1707, 1708, 1709],\n"
               "         [1710, 1711, 1712,  ..., 1717, 1718, 1719],\n"
               "         [1720, 1721, 1722,  ..., 1727, 1728, 1729],\n"
               "         ...,\n"
               "         [1770, 1771, 1772,  ..., 1777, 1778, 1779],\n"
               "         [1780, 1781, 1782,  ..., 1787, 1788, 1789],\n"
               "         [1790, 1791, 1792,  ..., 1797, 1798, 1799]],\n"
               "\n"
               "        [[1800, 1801, 1802,  ..., 1807, 1808, 1809],\n"
               "         [1810, 1811, 1812,  ..., 1817, 1818, 1819],\n"
               "         [1820, 1821, 1822,  ..., 1827, 1828, 1829],\n"
               "         ...,\n"
               "         [1870, 1871, 1872,  ..., 1877, 1878, 1879],\n"
               "         [1880, 1881, 1882,  ..., 1887, 1888, 1889],\n"
               "         [1890, 1891, 1892,  ..., 1897, 1898, 1899]],\n"
               "\n"
               "        [[1900, 1901, 1902,  ..., 1907, 1908, 1909],\n"
               "         [1910, 1911, 1912,  ..., 1917, 1918, 1919],\n"
               "         [1920, 1921, 1922,  ..., 1927, 1928, 1929],\n"
               "         ...,\n"
               "         [1970, 1971, 1972,  ..., 1977, 1978, 1979],\n"
               "         [1980, 1981, 1982,  ..., 1987, 1988, 1989],\n"
               "         [1990, 1991, 1992,  ..., 1997, 1998, 1999]]])");
    free(v);
}

/* ---- requires_grad and device ---- */

static void test_repr_requires_grad_is_shown(void **state)
{
    (void)state;
    const float v[] = {1.0f, 2.0f};
    ferry_tensor *t = f32_1d(v, 2);
    assert_non_null(t);
    assert_int_equal(ferry_tensor_set_requires_grad(t, true), FERRY_OK);
    check_repr(t, "tensor([1., 2.], requires_grad=True)");
}

static void test_repr_non_cpu_device_is_shown_first(void **state)
{
    (void)state;
    if (!ferry_is_available("sim")) {
        const char *why = ferry_backend_status("sim");
        printf("skipping: sim backend unavailable: %s\n", why ? why : "(no reason given)");
        skip();
    }
    const float v[] = {1.0f, 2.0f};
    int64_t n = 2;
    check_repr(ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, "sim:0"),
               "tensor([1., 2.], device='sim:0')");
    if (ferry_device_count("sim") > 1) {
        const int32_t iv[] = {1, 2};
        check_repr(ferry_tensor_from_data(iv, FERRY_INT32, 1, &n, "sim:1"),
                   "tensor([1, 2], device='sim:1', dtype=ferry.int32)");
    }
    const int64_t s2[] = {0, 3};
    ferry_tensor *e = ferry_tensor_from_data(NULL, FERRY_FLOAT32, 2, s2, "sim:0");
    assert_non_null(e);
    assert_int_equal(ferry_tensor_set_requires_grad(e, true), FERRY_OK);
    check_repr(e, "tensor([], device='sim:0', size=(0, 3), requires_grad=True)");
}

/* ---- errors ---- */

static void test_repr_null_tensor_fails_with_message(void **state)
{
    (void)state;
    assert_null(ferry_tensor_repr(NULL));
    expect_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_repr");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repr_eye_float64_matches_api_example),
        cmocka_unit_test(test_repr_scalars_print_without_brackets),
        cmocka_unit_test(test_repr_integer_valued_floats_print_with_trailing_point),
        cmocka_unit_test(test_repr_fractional_floats_print_four_decimals_right_aligned),
        cmocka_unit_test(test_repr_wide_range_switches_to_scientific),
        cmocka_unit_test(test_repr_nan_and_inf_are_padded_to_the_finite_width),
        cmocka_unit_test(test_repr_integers_pad_to_common_width),
        cmocka_unit_test(test_repr_bools_print_true_false),
        cmocka_unit_test(test_repr_non_default_dtypes_get_a_suffix),
        cmocka_unit_test(test_repr_half_types_format_their_float32_value),
        cmocka_unit_test(test_repr_2d_rows_are_indented_by_the_prefix),
        cmocka_unit_test(test_repr_3d_blocks_are_separated_by_a_blank_line),
        cmocka_unit_test(test_repr_4d_blocks_are_separated_by_two_blank_lines),
        cmocka_unit_test(test_repr_strided_view_prints_in_logical_order),
        cmocka_unit_test(test_repr_empty_tensors_show_size_and_any_non_float32_dtype),
        cmocka_unit_test(test_repr_long_vector_wraps_at_80_columns),
        cmocka_unit_test(test_repr_rows_wrap_against_their_own_indent),
        cmocka_unit_test(test_repr_suffixes_wrap_past_80_columns),
        cmocka_unit_test(test_repr_2000_element_vector_is_summarized),
        cmocka_unit_test(test_repr_hidden_elements_do_not_change_the_format),
        cmocka_unit_test(test_repr_100x100_is_summarized_in_both_dims),
        cmocka_unit_test(test_repr_summarized_rows_wrap_with_dtype_suffix),
        cmocka_unit_test(test_repr_summarized_3d_has_blank_lines_around_ellipsis),
        cmocka_unit_test(test_repr_requires_grad_is_shown),
        cmocka_unit_test(test_repr_non_cpu_device_is_shown_first),
        cmocka_unit_test(test_repr_null_tensor_fails_with_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Scalar operands by value (backend.h, binary_scalar): `x op scalar` gives the same bits
 * as `x op (0-d tensor of the compute dtype)` for every binary op and dtype, on the cpu
 * backend, on opencl:0 (by value, no fallback) and on sim:0 (no such entry: the 0-d
 * operand and the fallback, as before); and on a backend with the entry it allocates
 * nothing on the device, where the 0-d path did. */
#include "test_util.h"

#include <math.h>

#include <ferry/half.h>

#define N 15

static const ferry_dtype dtypes[] = {FERRY_BOOL,    FERRY_UINT8,   FERRY_INT8,     FERRY_INT16,
                                     FERRY_INT32,   FERRY_INT64,   FERRY_FLOAT16,  FERRY_BFLOAT16,
                                     FERRY_FLOAT32, FERRY_FLOAT64};

typedef ferry_tensor *(*scalar_fn)(ferry_tensor *, ferry_scalar);
typedef ferry_tensor *(*tensor_fn)(ferry_tensor *, ferry_tensor *);

static const struct {
    const char *name;
    scalar_fn s;
    tensor_fn t;
} ops[] = {
    {"add", ferry_add_scalar_ex, ferry_add},
    {"sub", ferry_sub_scalar_ex, ferry_sub},
    {"mul", ferry_mul_scalar_ex, ferry_mul},
    {"div", ferry_div_scalar_ex, ferry_div},
    {"pow", ferry_pow_scalar_ex, ferry_pow},
    {"maximum", ferry_maximum_scalar_ex, ferry_maximum},
    {"minimum", ferry_minimum_scalar_ex, ferry_minimum},
    {"eq", ferry_eq_scalar_ex, ferry_eq},
    {"ne", ferry_ne_scalar_ex, ferry_ne},
    {"lt", ferry_lt_scalar_ex, ferry_lt},
    {"le", ferry_le_scalar_ex, ferry_le},
    {"gt", ferry_gt_scalar_ex, ferry_gt},
    {"ge", ferry_ge_scalar_ex, ferry_ge},
};

static bool is_float(ferry_dtype d)
{
    return d >= FERRY_FLOAT16;
}

/* a: N values of dtype, negatives, a NaN and an infinity for the floats. */
static ferry_tensor *operand(ferry_dtype d, const char *dev)
{
    static const double v[N] = {0, 1, -1, 2, -3, 7, 100, -100, 0.5, -2.5, 3, 5, 126, -7, 9};
    unsigned char buf[N * 8];
    size_t es = ferry_dtype_size(d);
    for (int i = 0; i < N; i++) {
        double x = v[i];
        if (is_float(d) && i == 10)
            x = NAN;
        if (is_float(d) && i == 11)
            x = -INFINITY;
        unsigned char *p = buf + (size_t)i * es;
        switch (d) {
        case FERRY_BOOL: *p = x != 0; break;
        case FERRY_UINT8: *p = (uint8_t)(int)x; break;
        case FERRY_INT8: *(int8_t *)p = (int8_t)x; break;
        case FERRY_INT16: *(int16_t *)p = (int16_t)x; break;
        case FERRY_INT32: *(int32_t *)p = (int32_t)x; break;
        case FERRY_INT64: *(int64_t *)p = (int64_t)x; break;
        case FERRY_FLOAT16: *(uint16_t *)p = ferry_f32_to_f16((float)x); break;
        case FERRY_BFLOAT16: *(uint16_t *)p = ferry_f32_to_bf16((float)x); break;
        case FERRY_FLOAT32: *(float *)p = (float)x; break;
        default: *(double *)p = x; break;
        }
    }
    int64_t shape[2] = {3, 5};
    ferry_tensor *t = ferry_tensor_from_data(buf, d, 2, shape, dev);
    assert_tensor(t);
    return t;
}

/* The scalar of d's own category, and that scalar as a 0-d tensor of d. */
static ferry_scalar scalar_for(ferry_dtype d, bool second, unsigned char elem[8])
{
    ferry_scalar s;
    memset(elem, 0, 8);
    if (d == FERRY_BOOL) {
        s.kind = FERRY_SCALAR_BOOL;
        s.value.b = !second;
        elem[0] = !second;
    } else if (!is_float(d)) {
        s.kind = FERRY_SCALAR_INT;
        s.value.i = second ? 300 : 3; /* 300 wraps in the 8-bit dtypes, as PyTorch's */
        uint64_t u = (uint64_t)s.value.i;
        memcpy(elem, &u, ferry_dtype_size(d)); /* little-endian: the low bytes */
    } else {
        s.kind = FERRY_SCALAR_FLOAT;
        s.value.f = second ? -0.3 : 0.7;
        if (d == FERRY_FLOAT16 || d == FERRY_BFLOAT16) {
            uint16_t h = d == FERRY_FLOAT16 ? ferry_f32_to_f16((float)s.value.f)
                                            : ferry_f32_to_bf16((float)s.value.f);
            memcpy(elem, &h, 2);
        } else if (d == FERRY_FLOAT32) {
            float f = (float)s.value.f;
            memcpy(elem, &f, 4);
        } else {
            memcpy(elem, &s.value.f, 8);
        }
    }
    return s;
}

static void assert_same_bits(ferry_tensor *x, ferry_tensor *y, const char *what)
{
    assert_tensor(x);
    assert_tensor(y);
    assert_int_equal(ferry_tensor_dtype(x), ferry_tensor_dtype(y));
    size_t n = ferry_tensor_nbytes(x);
    assert_int_equal(n, ferry_tensor_nbytes(y));
    unsigned char bx[N * 8], by[N * 8];
    assert_ok(ferry_tensor_copy_to_host(x, bx, n));
    assert_ok(ferry_tensor_copy_to_host(y, by, n));
    if (memcmp(bx, by, n) != 0)
        fail_msg("%s: the scalar form and the 0-d tensor form differ", what);
}

static int compared;

static void check_device(const char *dev)
{
    compared = 0;
    for (size_t di = 0; di < sizeof dtypes / sizeof dtypes[0]; di++) {
        ferry_dtype d = dtypes[di];
        ferry_tensor *a = operand(d, dev);
        /* a transposed view too, so strided kernels see the scalar */
        ferry_tensor *at = ferry_transpose(a, 0, 1);
        assert_tensor(at);
        for (int second = 0; second < 2; second++) {
            unsigned char elem[8];
            ferry_scalar s = scalar_for(d, second, elem);
            ferry_tensor *s0 = ferry_tensor_from_data(elem, d, 0, NULL, dev);
            assert_tensor(s0);
            /* Integers divide in float32, which the int scalar reaches unwrapped. */
            float sf = s.kind == FERRY_SCALAR_INT    ? (float)s.value.i
                       : s.kind == FERRY_SCALAR_BOOL ? (float)s.value.b
                                                     : (float)s.value.f;
            ferry_tensor *s0_div = ferry_tensor_from_data(&sf, FERRY_FLOAT32, 0, NULL, dev);
            assert_tensor(s0_div);
            for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
                if (strcmp(ops[oi].name, "sub") == 0 && d == FERRY_BOOL)
                    continue; /* refused both ways (test_errors) */
                bool int_div = strcmp(ops[oi].name, "div") == 0 && !is_float(d);
                for (int view = 0; view < 2; view++) {
                    ferry_tensor *x = view ? at : a;
                    ferry_tensor *r1 = ops[oi].s(x, s);
                    ferry_tensor *r2 = ops[oi].t(x, int_div ? s0_div : s0);
                    char what[96];
                    snprintf(what, sizeof what, "%s: %s %s scalar %d%s", dev,
                             ferry_dtype_name(d), ops[oi].name, second,
                             view ? " (transposed)" : "");
                    assert_same_bits(r1, r2, what);
                    ferry_tensor_release(r1);
                    ferry_tensor_release(r2);
                    compared++;
                }
            }
            ferry_tensor_release(s0);
            ferry_tensor_release(s0_div);
        }
        ferry_tensor_release(at);
        ferry_tensor_release(a);
    }
}

static void test_cpu_same_bits(void **state)
{
    (void)state;
    check_device("cpu");
    assert_true(compared > 200);
}

static void test_opencl_same_bits_without_fallback(void **state)
{
    (void)state;
    require_backend("opencl");
    ferry_fallback_stats before, after;
    assert_ok(ferry_fallback_stats_get("opencl:0", &before));
    check_device("opencl:0");
    assert_ok(ferry_fallback_stats_get("opencl:0", &after));
    /* float64 may lack a kernel on a device without cl_khr_fp64; nothing else may. */
    uint64_t fb = after.by_kind[FERRY_FALLBACK_BINARY] - before.by_kind[FERRY_FALLBACK_BINARY];
    int f64_ops = 2 * 2 * (int)(sizeof ops / sizeof ops[0]) * 2;
    if (fb > (uint64_t)f64_ops)
        fail_msg("opencl:0: %llu binary ops fell back to the cpu", (unsigned long long)fb);
}

static void test_sim_takes_the_0d_operand(void **state)
{
    (void)state;
    require_backend("sim");
    check_device("sim:0");
    assert_true(compared > 200);
}

/* What `x * 2` costs the device's allocator: nothing by value, a 0-d tensor otherwise. */
static void scalar_op_allocations(const char *dev, uint64_t *allocs, uint64_t *cached)
{
    /* Nothing is alive: unloading empties every cache, so an allocation shows. */
    ferry_shutdown();
    int64_t shape[1] = {64};
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, shape, 1.5, dev);
    ferry_tensor *o = ferry_empty(FERRY_FLOAT32, 1, shape, dev);
    assert_tensor(a);
    assert_tensor(o);
    ferry_memory_stats m0, m1;
    assert_ok(ferry_memory_stats_get(dev, &m0));
    for (int i = 0; i < 3; i++)
        assert_ok(ferry_mul_scalar_out(o, a, 2.0));
    assert_ok(ferry_synchronize(dev));
    assert_ok(ferry_memory_stats_get(dev, &m1));
    float got[64];
    assert_ok(ferry_tensor_copy_to_host(o, got, sizeof got));
    for (int i = 0; i < 64; i++)
        assert_true(got[i] == 3.0f);
    *allocs = m1.backend_allocs - m0.backend_allocs;
    *cached = m1.cached - m0.cached;
    ferry_tensor_release(a);
    ferry_tensor_release(o);
}

static void test_by_value_allocates_nothing(void **state)
{
    (void)state;
    uint64_t allocs, cached;
    scalar_op_allocations("cpu", &allocs, &cached);
    assert_int_equal(allocs, 0);
    assert_int_equal(cached, 0);
    if (ferry_is_available("opencl")) {
        scalar_op_allocations("opencl:0", &allocs, &cached);
        assert_int_equal(allocs, 0);
        assert_int_equal(cached, 0);
    } else {
        printf("[  NOTE    ] opencl: %s; checked cpu and sim only\n",
               ferry_backend_status("opencl"));
    }
    /* The probe can see an allocation: sim has no binary_scalar, so its 0-d operand is
     * allocated on sim:0 and lands in the cache. */
    require_backend("sim");
    scalar_op_allocations("sim:0", &allocs, &cached);
    assert_true(allocs + cached > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_same_bits),
        cmocka_unit_test(test_opencl_same_bits_without_fallback),
        cmocka_unit_test(test_sim_takes_the_0d_operand),
        cmocka_unit_test(test_by_value_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

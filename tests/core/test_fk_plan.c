/* The portable kernels' planner (backends/kernels/fk_plan.c, compiled into this test as
 * into the OpenCL and CUDA plugins): an op or sub-op it does not know answers
 * FERRY_ERR_UNSUPPORTED, so the core falls back instead of failing (backend.h), while a
 * known op with a broken descriptor is still FERRY_ERR_INVALID_ARGUMENT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fk_plan.h"

static ferry_status last_status;
static char last_message[512];

static ferry_status record_error(ferry_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}

static const ferry_host_api host = {
    .abi_major = FERRY_BACKEND_ABI_MAJOR,
    .abi_minor = FERRY_BACKEND_ABI_MINOR,
    .struct_size = sizeof(ferry_host_api),
    .error = record_error,
};

static const fk_plan_ctx ctx = {&host, "test", 3};

static const int64_t shape[1] = {4};
static const int64_t strides[1] = {1};

static ferry_kernel_tensor tensor(ferry_dtype dt, int64_t *space)
{
    ferry_kernel_tensor t = {space, 0, dt, 1, shape, strides, sizeof t};
    return t;
}

#define assert_refused(expr, status, needle)                                                \
    do {                                                                                    \
        last_status = FERRY_OK;                                                             \
        last_message[0] = '\0';                                                             \
        assert_int_equal((expr), (status));                                                 \
        assert_int_equal(last_status, (status));                                            \
        if (!strstr(last_message, (needle)))                                                \
            fail_msg("message '%s' does not contain '%s'", last_message, (needle));         \
    } while (0)

static void test_unknown_ops_are_unsupported(void **state)
{
    (void)state;
    int64_t m0[4], m1[4], m2[4];
    ferry_kernel_tensor o = tensor(FERRY_FLOAT32, m0), a = tensor(FERRY_FLOAT32, m1),
                        b = tensor(FERRY_FLOAT32, m2);
    bool compare = false;
    assert_refused(fk_plan_check_unary(&ctx, (ferry_unary_op)(FERRY_UNARY_RELU + 1), &o, &a),
                   FERRY_ERR_UNSUPPORTED, "test:3: unknown unary op 10");
    assert_refused(fk_plan_check_binary(&ctx, (ferry_binary_op)(FERRY_BINARY_GE + 1), &o, &a, &b,
                                        &compare),
                   FERRY_ERR_UNSUPPORTED, "test:3: unknown binary op 13");
    assert_refused(fk_plan_check_binary(&ctx, (ferry_binary_op)-1, &o, &a, &b, &compare),
                   FERRY_ERR_UNSUPPORTED, "unknown binary op -1");
    fk_reduce_plan p;
    ferry_kernel_tensor r = o;
    const int64_t one[1] = {1};
    r.shape = one;
    assert_refused(fk_plan_reduce(&ctx, (ferry_reduce_op)(FERRY_REDUCE_ARGMAX + 1), &r, &a, 64,
                                  0, &p),
                   FERRY_ERR_UNSUPPORTED, "test:3: unknown reduce op 5");
}

static void test_known_ops_with_bad_descriptors_stay_invalid(void **state)
{
    (void)state;
    int64_t m0[4], m1[4], m2[4];
    ferry_kernel_tensor o = tensor(FERRY_FLOAT32, m0), a = tensor(FERRY_FLOAT32, m1),
                        b = tensor(FERRY_INT32, m2);
    bool compare = false;
    assert_refused(fk_plan_check_binary(&ctx, FERRY_BINARY_ADD, &o, &a, &b, &compare),
                   FERRY_ERR_INVALID_ARGUMENT, "binary op 0 on float32, int32 -> float32");
    assert_refused(fk_plan_check_unary(&ctx, FERRY_UNARY_NEG, &o, &b), FERRY_ERR_INVALID_ARGUMENT,
                   "unary op 0 on int32 -> float32");
    /* and a good one passes */
    b.dtype = FERRY_FLOAT32;
    assert_int_equal(fk_plan_check_binary(&ctx, FERRY_BINARY_GE, &o, &a, &b, &compare),
                     FERRY_ERR_INVALID_ARGUMENT); /* a comparison writes bool */
    o.dtype = FERRY_BOOL;
    assert_int_equal(fk_plan_check_binary(&ctx, FERRY_BINARY_GE, &o, &a, &b, &compare), FERRY_OK);
    assert_true(compare);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_ops_are_unsupported),
        cmocka_unit_test(test_known_ops_with_bad_descriptors_stay_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* A device its backend reports lost (host_api.device_lost, as the CUDA plugin does on a
 * sticky error) refuses new work with the reason, stops counting as available once
 * every device is lost, and still takes back the memory of tensors already made. */
#include "test_util.h"

static int setup(void **state)
{
    (void)state;
    setenv("FERRY_SIM_DEVICES", "2", 1);
    setenv("FERRY_SIM_FAIL_COPY_STICKY", "1", 1);
    ferry_shutdown();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("FERRY_SIM_FAIL_COPY");
    unsetenv("FERRY_SIM_FAIL_COPY_STICKY");
    unsetenv("FERRY_SIM_DEVICES");
    ferry_shutdown();
    return 0;
}

static void test_a_lost_device_refuses_work_and_says_why(void **state)
{
    (void)state;
    /* The third copy call fails and loses its device. */
    setenv("FERRY_SIM_FAIL_COPY", "3", 1);
    ferry_shutdown();
    require_backend("sim");
    const float v[4] = {1, 2, 3, 4};
    const int64_t shape[1] = {4};
    ferry_tensor *h = ferry_tensor_from_blob((void *)v, FERRY_FLOAT32, 1, shape, NULL, NULL,
                                             NULL);
    assert_tensor(h);
    ferry_tensor *a = ferry_tensor_to(h, "sim:0"); /* copy 1 */
    assert_tensor(a);
    ferry_tensor *b = ferry_tensor_to(h, "sim:1"); /* copy 2 */
    assert_tensor(b);
    float got[4];
    assert_status(ferry_tensor_copy_to_host(a, got, sizeof got), FERRY_ERR_BACKEND,
                  "injected failure in copy #3");

    /* sim:0 is gone; sim:1 and the backend as a whole still work. */
    assert_null(ferry_tensor_to(h, "sim:0"));
    assert_failed_with(FERRY_ERR_UNAVAILABLE,
                       "sim:0 is unusable for the rest of this process: "
                       "simInjectedStickyError in a copy");
    assert_null(ferry_zeros(FERRY_FLOAT32, 1, shape, "sim:0"));
    assert_failed_with(FERRY_ERR_UNAVAILABLE, "sim:0 is unusable");
    assert_true(ferry_is_available("sim"));
    assert_null(ferry_backend_status("sim"));
    assert_ok(ferry_tensor_copy_to_host(b, got, sizeof got));
    assert_true(got[3] == 4.0f);

    /* Copies within the surviving device still run. */
    ferry_tensor *c = ferry_tensor_to(b, "sim:1");
    assert_tensor(c);
    ferry_tensor_release(c);
    ferry_tensor_release(a); /* a lost device's memory is still freed (ASan checks) */
    ferry_tensor_release(b);
    ferry_tensor_release(h);
}

static void test_losing_every_device_makes_the_backend_unavailable(void **state)
{
    (void)state;
    setenv("FERRY_SIM_DEVICES", "1", 1);
    setenv("FERRY_SIM_FAIL_COPY", "2", 1);
    ferry_shutdown();
    require_backend("sim");
    const int64_t shape[1] = {3};
    ferry_tensor *h = ferry_zeros(FERRY_INT32, 1, shape, "cpu");
    assert_tensor(h);
    ferry_tensor *a = ferry_tensor_to(h, "sim:0");
    assert_tensor(a);
    int32_t got[3];
    assert_status(ferry_tensor_copy_to_host(a, got, sizeof got), FERRY_ERR_BACKEND, "copy #2");
    assert_false(ferry_is_available("sim"));
    const char *why = ferry_backend_status("sim");
    assert_non_null(why);
    assert_non_null(strstr(why, "sim:0 is unusable for the rest of this process"));
    /* The device count stays (indices are stable), the cpu is unaffected. */
    assert_int_equal(ferry_device_count("sim"), 1);
    assert_true(ferry_is_available("cpu"));
    ferry_tensor_release(a);
    ferry_tensor_release(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_lost_device_refuses_work_and_says_why, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_losing_every_device_makes_the_backend_unavailable,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The OpenCL backend where the ICD loader finds no platform (ctest runs this with
 * OCL_ICD_VENDORS pointing at an empty folder): it loads, reports no device, and says
 * why with the loader's error name. */
#include "test_util.h"

static void test_no_platform_reports_no_device_with_the_icd_error(void **state)
{
    (void)state;
    const char *vendors = getenv("OCL_ICD_VENDORS");
    if (!vendors || !strstr(vendors, "empty"))
        skip_because("OCL_ICD_VENDORS does not point at an empty folder (run through ctest)");
    assert_int_equal(ferry_device_count("opencl"), 0);
    assert_false(ferry_is_available("opencl"));
    const char *why = ferry_backend_status("opencl");
    assert_non_null(why);
    if (!strstr(why, "opencl: no device (") || !strstr(why, "CL_PLATFORM_NOT_FOUND_KHR (-1001)"))
        fail_msg("status '%s' does not give the ICD's error", why);
    int64_t shape[1] = {2};
    assert_null(ferry_zeros(FERRY_FLOAT32, 1, shape, "opencl:0"));
    assert_failed_with(FERRY_ERR_UNAVAILABLE, "CL_PLATFORM_NOT_FOUND_KHR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_platform_reports_no_device_with_the_icd_error),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return rc;
}

/* The OpenCL backend's devices: every device of every platform, in platform then device
 * order, with what device info reports, and the OpenCL error names its messages use
 * (ocl_errors.c is compiled into this test). */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <stdarg.h>

#include <ferry/backend.h>

#include "test_util.h"

/* ocl_errors.c, linked in, reports through this. */
const ferry_host_api *ocl_host;
const char *ocl_error_name(cl_int err);
const char *ocl_clblast_status_name(int status);
ferry_status ocl_fail(int32_t dev, const char *call, cl_int err);

static char captured[512];
static ferry_status captured_status;

static ferry_status capture_error(ferry_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(captured, sizeof captured, fmt, ap);
    va_end(ap);
    captured_status = status;
    return status;
}

/* The devices the ICD loader lists, in the order the backend must number them. */
static size_t cl_devices(cl_device_id *out, size_t cap)
{
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0)
        return 0;
    cl_platform_id plats[16];
    if (np > 16)
        np = 16;
    clGetPlatformIDs(np, plats, NULL);
    size_t n = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS)
            continue;
        cl_device_id ids[64];
        if (nd > 64)
            nd = 64;
        clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL);
        for (cl_uint i = 0; i < nd && n < cap; i++)
            out[n++] = ids[i];
    }
    return n;
}

static void test_devices_every_device_in_platform_order(void **state)
{
    (void)state;
    require_backend("opencl");
    cl_device_id ids[64];
    size_t n = cl_devices(ids, 64);
    assert_int_equal(ferry_device_count("opencl"), (int)n);
    assert_true(ferry_is_available("opencl"));
    assert_null(ferry_backend_status("opencl"));
    for (size_t i = 0; i < n; i++) {
        char dev[32], name[256], vendor[128], driver[128];
        snprintf(dev, sizeof dev, "opencl:%zu", i);
        ferry_device_info info;
        assert_ok(ferry_device_get_info(dev, &info));
        clGetDeviceInfo(ids[i], CL_DEVICE_NAME, sizeof name, name, NULL);
        clGetDeviceInfo(ids[i], CL_DEVICE_VENDOR, sizeof vendor, vendor, NULL);
        clGetDeviceInfo(ids[i], CL_DRIVER_VERSION, sizeof driver, driver, NULL);
        assert_string_equal(info.name, name);
        assert_string_equal(info.vendor, vendor);
        assert_string_equal(info.backend, "opencl");
        assert_non_null(strstr(info.driver_version, driver));
        assert_non_null(strstr(info.driver_version, "OpenCL "));
        assert_non_null(strstr(info.backend_version, FERRY_VERSION_STRING));
        cl_ulong mem = 0;
        clGetDeviceInfo(ids[i], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
        assert_true(info.total_memory > 0);
        /* PoCL reports what the machine has free, so two reads may differ a little. */
        assert_true(info.total_memory / 2 <= mem && mem / 2 <= info.total_memory);
        assert_false(info.host_accessible);
    }
}

static void test_devices_listed_after_cpu(void **state)
{
    (void)state;
    require_backend("opencl");
    ferry_device devs[64];
    size_t n = ferry_devices(devs, 64);
    int seen = 0;
    for (size_t i = 0; i < n && i < 64; i++)
        if (strcmp(devs[i].type, "opencl") == 0)
            assert_int_equal(devs[i].index, seen++);
    assert_int_equal(seen, ferry_device_count("opencl"));
    assert_string_equal(devs[0].type, "cpu");
}

static void test_devices_bad_index_is_invalid_device(void **state)
{
    (void)state;
    require_backend("opencl");
    char dev[32];
    int n = ferry_device_count("opencl");
    snprintf(dev, sizeof dev, "opencl:%d", n);
    ferry_device_info info;
    assert_status(ferry_device_get_info(dev, &info), FERRY_ERR_INVALID_DEVICE, dev);
    int64_t shape[1] = {4};
    assert_null(ferry_zeros(FERRY_FLOAT32, 1, shape, dev));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "(opencl has");
}

static void test_devices_oversized_buffer_is_out_of_memory(void **state)
{
    (void)state;
    require_backend("opencl");
    ferry_device_info info;
    assert_ok(ferry_device_get_info("opencl:0", &info));
    /* More than the whole device: beyond CL_DEVICE_MAX_MEM_ALLOC_SIZE everywhere. */
    int64_t shape[1] = {(int64_t)(info.total_memory / 4) * 2 + 1024};
    assert_null(ferry_empty(FERRY_FLOAT32, 1, shape, "opencl:0"));
    assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, "opencl:0");
    assert_non_null(strstr(ferry_last_error(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"));
}

static void test_devices_error_names_match_the_headers(void **state)
{
    (void)state;
    assert_string_equal(ocl_error_name(CL_SUCCESS), "CL_SUCCESS");
    assert_string_equal(ocl_error_name(CL_DEVICE_NOT_FOUND), "CL_DEVICE_NOT_FOUND");
    assert_string_equal(ocl_error_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    assert_string_equal(ocl_error_name(CL_BUILD_PROGRAM_FAILURE), "CL_BUILD_PROGRAM_FAILURE");
    assert_string_equal(ocl_error_name(CL_INVALID_MEM_OBJECT), "CL_INVALID_MEM_OBJECT");
    assert_string_equal(ocl_error_name(CL_INVALID_GLOBAL_WORK_SIZE),
                        "CL_INVALID_GLOBAL_WORK_SIZE");
    assert_string_equal(ocl_error_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR");
    assert_string_equal(ocl_error_name(-72), "CL_MAX_SIZE_RESTRICTION_EXCEEDED");
    assert_string_equal(ocl_error_name(12345), "CL_UNKNOWN_ERROR");
    assert_string_equal(ocl_error_name(-29), "CL_UNKNOWN_ERROR");
    assert_string_equal(ocl_clblast_status_name(-1016), "CLBlastInvalidLeadDimA");
    assert_string_equal(ocl_clblast_status_name(-2045), "CLBlastNoHalfPrecision");
    assert_string_equal(ocl_clblast_status_name(-5), "CL_OUT_OF_RESOURCES");
    assert_string_equal(ocl_clblast_status_name(-7777), "CLBlastUnknownStatus");
}

static void test_devices_failed_call_names_call_error_and_device(void **state)
{
    (void)state;
    ferry_host_api host;
    memset(&host, 0, sizeof host);
    host.abi_major = FERRY_BACKEND_ABI_MAJOR;
    host.struct_size = sizeof host;
    host.error = capture_error;
    ocl_host = &host;
    assert_int_equal(ocl_fail(0, "clEnqueueReadBuffer", CL_OUT_OF_RESOURCES), FERRY_ERR_BACKEND);
    assert_string_equal(captured, "opencl:0: clEnqueueReadBuffer failed: CL_OUT_OF_RESOURCES (-5)");
    assert_int_equal(ocl_fail(2, "clCreateBuffer", CL_MEM_OBJECT_ALLOCATION_FAILURE),
                     FERRY_ERR_OUT_OF_MEMORY);
    assert_string_equal(captured,
                        "opencl:2: clCreateBuffer failed: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)");
    assert_int_equal(captured_status, FERRY_ERR_OUT_OF_MEMORY);
    ocl_host = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices_every_device_in_platform_order),
        cmocka_unit_test(test_devices_listed_after_cpu),
        cmocka_unit_test(test_devices_bad_index_is_invalid_device),
        cmocka_unit_test(test_devices_oversized_buffer_is_out_of_memory),
        cmocka_unit_test(test_devices_error_names_match_the_headers),
        cmocka_unit_test(test_devices_failed_call_names_call_error_and_device),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return rc;
}

/* The CUDA plugin: on a machine without a GPU it loads and says why it has no device
 * (and everything else keeps working); with a GPU, copies, peer paths, cuBLAS matmul and
 * DLPack run on cuda:0. The op-by-op checks are tests/conformance's. */
#include <math.h>
#include <stdlib.h>

#include "test_util.h"

#define REQUIRE_CUDA_DEVICE() require_backend("cuda")

static void test_cuda_plugin_loads_and_reports_its_state(void **state)
{
    (void)state;
    const char *path = ferry_backend_path("cuda");
    assert_non_null(path); /* built with the toolkit, so the file is always there */
    assert_non_null(ferry_backend_version("cuda")); /* dlopen and the entry worked */
    if (ferry_is_available("cuda")) {
        assert_null(ferry_backend_status("cuda"));
        ferry_device_info info;
        assert_ok(ferry_device_get_info("cuda:0", &info));
        assert_string_equal(info.backend, "cuda");
        assert_false(info.host_accessible);
        assert_true(info.compute_units > 0);
        assert_true(strncmp(info.arch, "sm_", 3) == 0);
        assert_true(info.total_memory > 0);
        printf("[  INFO    ] cuda:0 is %s (%s, %d SMs, bus %s, %s)\n", info.name, info.arch,
               info.compute_units, info.bus_id, info.driver_version);
        return;
    }
    /* No driver or no device: "cuda: no device (cudaErrorXxx: text)", nothing worse. */
    const char *why = ferry_backend_status("cuda");
    assert_non_null(why);
    printf("[  INFO    ] %s\n", why);
    assert_true(strncmp(why, "cuda: no device (cudaError", 26) == 0);
    assert_int_equal(ferry_device_count("cuda"), 0);
    int64_t n = 4;
    ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &n, NULL);
    assert_null(ferry_tensor_cuda(t, 0));
    assert_failed_with(FERRY_ERR_UNAVAILABLE, "cuda: no device (cudaError");
    ferry_tensor *u = ferry_add(t, t); /* the rest of ferry is unaffected */
    assert_tensor(u);
    float out[4];
    assert_ok(ferry_tensor_copy_to_host(u, out, sizeof out));
    assert_true(out[3] == 2.0f);
    ferry_tensor_release(u);
    ferry_tensor_release(t);
}

static void test_cuda_round_trips_every_direction(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    int64_t n = (int64_t)3 << 20; /* 12 MiB: more than one staging chunk */
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(i % 9973) - 17.5f;
    const char *devs[] = {"cpu", "sim:0", "cuda:0", "opencl:0"};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (!ferry_is_available(a == 1 || b == 1 ? "sim" : "cpu") ||
                ((a == 3 || b == 3) && !ferry_is_available("opencl")))
                continue;
            ferry_tensor *x = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, devs[a]);
            ferry_tensor *y = ferry_tensor_to(x, devs[b]);
            ferry_tensor *z = ferry_tensor_to(y, "cuda:0");
            ferry_tensor *h = ferry_tensor_cpu(z);
            assert_tensor(h);
            const float *p = ferry_tensor_host_data(h);
            for (int64_t i = 0; i < n; i++)
                if (p[i] != v[i])
                    fail_msg("%s -> %s -> cuda:0: element %lld differs", devs[a], devs[b],
                             (long long)i);
            ferry_tensor_release(h);
            ferry_tensor_release(z);
            ferry_tensor_release(y);
            ferry_tensor_release(x);
        }
    free(v);
}

/* cuBLAS against a double-precision reference, with transposed and batched operands. */
static void check_matmul(ferry_dtype dt, bool transpose_a, double tol)
{
    int64_t shape_a[3] = {3, 40, 24}, shape_b[3] = {3, 24, 32};
    double *ha = malloc(3 * 40 * 24 * sizeof *ha), *hb = malloc(3 * 24 * 32 * sizeof *hb);
    for (int i = 0; i < 3 * 40 * 24; i++)
        ha[i] = ((i * 7) % 13) / 8.0 - 0.75;
    for (int i = 0; i < 3 * 24 * 32; i++)
        hb[i] = ((i * 5) % 11) / 8.0 - 0.5;
    ferry_tensor *a64 = ferry_tensor_from_data(ha, FERRY_FLOAT64, 3, shape_a, "cpu");
    ferry_tensor *b64 = ferry_tensor_from_data(hb, FERRY_FLOAT64, 3, shape_b, "cpu");
    ferry_tensor *a = ferry_tensor_to_dtype(a64, dt), *b = ferry_tensor_to_dtype(b64, dt);
    ferry_tensor *da = ferry_tensor_to(a, "cuda:0"), *db = ferry_tensor_to(b, "cuda:0");
    if (transpose_a) { /* the same values through a transposed view of a copy */
        ferry_tensor *t = ferry_transpose(da, 1, 2);
        ferry_tensor *c = ferry_tensor_contiguous(t);
        ferry_tensor *tt = ferry_transpose(c, 1, 2);
        ferry_tensor_release(t);
        ferry_tensor_release(c);
        ferry_tensor_release(da);
        da = tt;
    }
    ferry_tensor *dc = ferry_matmul(da, db);
    assert_tensor(dc);
    ferry_tensor *c64 = ferry_tensor_to_dtype(dc, FERRY_FLOAT64);
    ferry_tensor *hc = ferry_tensor_cpu(c64);
    const double *pc = ferry_tensor_host_data(hc);
    for (int bt = 0; bt < 3; bt++)
        for (int i = 0; i < 40; i++)
            for (int j = 0; j < 32; j++) {
                double ref = 0;
                for (int k = 0; k < 24; k++)
                    ref += ha[(bt * 40 + i) * 24 + k] * hb[(bt * 24 + k) * 32 + j];
                double got = pc[(bt * 40 + i) * 32 + j];
                if (fabs(got - ref) > tol * (1 + fabs(ref)))
                    fail_msg("%s matmul [%d,%d,%d]: %g vs %g", ferry_dtype_name(dt), bt, i, j,
                             got, ref);
            }
    ferry_tensor *rel[] = {a64, b64, a, b, da, db, dc, c64, hc};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
        ferry_tensor_release(rel[i]);
    free(ha);
    free(hb);
}

static void test_cuda_matmul_matches_a_double_reference(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    check_matmul(FERRY_FLOAT64, false, 1e-12);
    check_matmul(FERRY_FLOAT32, false, 1e-5);
    check_matmul(FERRY_FLOAT32, true, 1e-5);
    check_matmul(FERRY_FLOAT16, false, 1e-2);
    check_matmul(FERRY_BFLOAT16, true, 5e-2);
}

static void test_cuda_dlpack_exports_device_pointers(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    int64_t n = 8;
    ferry_tensor *t = ferry_arange(0, 8, 1, FERRY_FLOAT32, "cuda:0");
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_non_null(m);
    assert_int_equal(m->dl_tensor.device.device_type, kDLCUDA);
    assert_int_equal(m->dl_tensor.device.device_id, 0);
    ferry_tensor *back = ferry_tensor_from_dlpack(m);
    assert_tensor(back);
    float out[8];
    assert_ok(ferry_tensor_copy_to_host(back, out, sizeof out));
    assert_true(out[7] == 7.0f);
    (void)n;
    ferry_tensor_release(back);
    ferry_tensor_release(t);
}

static void test_cuda_invalid_index_names_the_count(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    int64_t n = 1;
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &n, NULL);
    assert_null(ferry_tensor_to(t, "cuda:4096"));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "Invalid device: cuda:4096 (cuda has ");
    ferry_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_plugin_loads_and_reports_its_state),
        cmocka_unit_test(test_cuda_round_trips_every_direction),
        cmocka_unit_test(test_cuda_matmul_matches_a_double_reference),
        cmocka_unit_test(test_cuda_dlpack_exports_device_pointers),
        cmocka_unit_test(test_cuda_invalid_index_names_the_count),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return failed;
}

/* The to() path: identity on the same device, host<->device, peer, staging through host
 * memory (bounded chunks, the two legs overlapping, watched by the stage_probe plugin),
 * non-contiguous sources, dtype conversion on a device without kernels, the caching
 * allocator, and injected backend failures (FERRY_FAULT_INJECT) that leave nothing behind. */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

#include "fake_backend/fake_stage_probe.h"
#include "internal.h" /* FERRY_STAGING_CHUNK, the bound the test holds the core to */
#include "test_util.h"

static ferry_tensor *iota_f32(int64_t n, const char *device)
{
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(i % 1000003) * 0.5f;
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, device);
    free(v);
    return t;
}

static void expect_iota(ferry_tensor *t, int64_t n)
{
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    assert_ok(ferry_tensor_copy_to_host(t, v, (size_t)n * sizeof *v));
    for (int64_t i = 0; i < n; i++)
        if (v[i] != (float)(i % 1000003) * 0.5f)
            fail_msg("element %lld is %g", (long long)i, (double)v[i]);
    free(v);
}

static void test_to_same_device_returns_the_same_tensor(void **state)
{
    (void)state;
    ferry_tensor *t = iota_f32(10, NULL);
    ferry_tensor *u = ferry_tensor_to(t, "cpu");
    assert_ptr_equal(u, t);
    ferry_tensor *v = ferry_tensor_to(t, NULL);
    assert_ptr_equal(v, t);
    ferry_tensor *w = ferry_tensor_cpu(t);
    assert_ptr_equal(w, t);
    ferry_tensor_release(u);
    ferry_tensor_release(v);
    ferry_tensor_release(w);
    ferry_tensor_release(t);
    require_backend("sim");
    ferry_tensor *s = iota_f32(10, "sim:0");
    ferry_tensor *s2 = ferry_tensor_to(s, "sim:0");
    assert_ptr_equal(s2, s);
    ferry_tensor_release(s2);
    ferry_tensor_release(s);
}

static void test_to_round_trips_cpu_sim_every_pair(void **state)
{
    (void)state;
    require_backend("sim");
    const char *devs[] = {"cpu", "sim:0", "sim:1"};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++) {
            ferry_tensor *x = iota_f32(1000, devs[a]);
            assert_tensor(x);
            ferry_tensor *y = ferry_tensor_to(x, devs[b]);
            assert_tensor(y);
            char name[32];
            ferry_device_format(ferry_tensor_device(y), name, sizeof name);
            assert_string_equal(name, devs[b]);
            expect_iota(y, 1000);
            ferry_tensor *z = ferry_tensor_to(y, devs[a]);
            expect_iota(z, 1000);
            ferry_tensor_release(z);
            ferry_tensor_release(y);
            ferry_tensor_release(x);
        }
}

/* sim:0 -> sim:1 of more than one staging chunk goes by the peer path. */
static void test_to_moves_large_tensors_between_devices_and_back(void **state)
{
    (void)state;
    require_backend("sim");
    int64_t n = (int64_t)5 << 20; /* 20 MiB: larger than one 8 MiB staging chunk */
    ferry_tensor *x = iota_f32(n, NULL);
    ferry_tensor *a = ferry_tensor_to(x, "sim:0");
    ferry_tensor *b = ferry_tensor_to(a, "sim:1");
    ferry_tensor *c = ferry_tensor_cpu(b);
    assert_tensor(c);
    expect_iota(c, n);
    ferry_tensor_release(c);
    ferry_tensor_release(b);
    ferry_tensor_release(a);
    ferry_tensor_release(x);
}

static void test_to_makes_non_contiguous_sources_contiguous(void **state)
{
    (void)state;
    require_backend("sim");
    /* A transposed 3x4 view of a 4x3 matrix. */
    int32_t buf[12];
    for (int i = 0; i < 12; i++)
        buf[i] = i;
    int64_t shape[2] = {3, 4};
    int64_t strides[2] = {1, 3};
    ferry_tensor *t = ferry_tensor_from_blob(buf, FERRY_INT32, 2, shape, strides, NULL, NULL);
    ferry_tensor *s = ferry_tensor_to(t, "sim:0");
    assert_tensor(s);
    assert_true(ferry_tensor_is_contiguous(s));
    int32_t out[12];
    assert_ok(ferry_tensor_copy_to_host(s, out, sizeof out));
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            assert_int_equal(out[r * 4 + c], c * 3 + r);
    ferry_tensor_release(s);
    ferry_tensor_release(t);
}

static void test_to_dtype_on_a_device_without_kernels_falls_back_to_cpu(void **state)
{
    (void)state;
    require_backend("sim");
    float v[5] = {-2.5f, -0.5f, 0.0f, 1.75f, 300.0f};
    int64_t n = 5;
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, "sim:1");
    ferry_tensor *i8 = ferry_tensor_to_dtype(t, FERRY_INT8);
    assert_tensor(i8);
    char name[32];
    ferry_device_format(ferry_tensor_device(i8), name, sizeof name);
    assert_string_equal(name, "sim:1");
    int8_t out[5];
    assert_ok(ferry_tensor_copy_to_host(i8, out, sizeof out));
    /* Truncation toward zero, saturation at the type's range. */
    assert_int_equal(out[0], -2);
    assert_int_equal(out[1], 0);
    assert_int_equal(out[3], 1);
    assert_int_equal(out[4], 127);
    ferry_tensor *h = ferry_tensor_to_dtype(t, FERRY_FLOAT16);
    ferry_tensor *back = ferry_tensor_to_dtype(h, FERRY_FLOAT32);
    float fb[5];
    assert_ok(ferry_tensor_copy_to_host(back, fb, sizeof fb));
    for (int i = 0; i < 5; i++)
        assert_true(fb[i] == v[i]);
    ferry_tensor_release(back);
    ferry_tensor_release(h);
    ferry_tensor_release(i8);
    ferry_tensor_release(t);
}

static void test_factories_work_on_a_device_without_kernels(void **state)
{
    (void)state;
    require_backend("sim");
    int64_t shape[2] = {3, 3};
    ferry_tensor *f = ferry_full(FERRY_INT16, 2, shape, -7, "sim:0");
    assert_tensor(f);
    int16_t out[9];
    assert_ok(ferry_tensor_copy_to_host(f, out, sizeof out));
    for (int i = 0; i < 9; i++)
        assert_int_equal(out[i], -7);
    ferry_tensor *a = ferry_arange(0, 9, 1, FERRY_FLOAT64, "sim:1");
    double d[9];
    assert_ok(ferry_tensor_copy_to_host(a, d, sizeof d));
    assert_true(d[8] == 8.0);
    ferry_tensor_release(a);
    ferry_tensor_release(f);
}

static void test_to_unavailable_and_invalid_devices_fail_clearly(void **state)
{
    (void)state;
    ferry_tensor *t = iota_f32(4, NULL);
    if (!ferry_is_available("cuda")) {
        assert_null(ferry_tensor_cuda(t, -1));
        assert_failed_with(FERRY_ERR_UNAVAILABLE, "cuda: ");
        assert_string_equal(ferry_last_error(), ferry_backend_status("cuda"));
    }
    if (!ferry_is_available("opencl")) {
        assert_null(ferry_tensor_opencl(t, 0));
        assert_failed_with(FERRY_ERR_UNAVAILABLE, "opencl: ");
    }
    assert_null(ferry_tensor_to(t, "cuda:-1"));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "Invalid device string: 'cuda:-1'");
    assert_null(ferry_tensor_to(t, "xpu"));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE,
                       "Expected one of cpu, opencl, cuda");
    if (ferry_is_available("sim")) {
        assert_null(ferry_tensor_to(t, "sim:2"));
        assert_failed_with(FERRY_ERR_INVALID_DEVICE, "Invalid device: sim:2 (sim has 2 devices)");
    }
    expect_iota(t, 4); /* the source is untouched by every failure */
    ferry_tensor_release(t);
}

static void test_caching_allocator_reuses_blocks_in_a_steady_loop(void **state)
{
    (void)state;
    require_backend("sim");
    assert_ok(ferry_empty_cache("sim:0"));
    ferry_tensor *x = iota_f32(100000, NULL);
    ferry_memory_stats before, after;
    for (int i = 0; i < 3; i++) { /* warm up */
        ferry_tensor *y = ferry_tensor_to(x, "sim:0");
        ferry_tensor_release(y);
    }
    assert_ok(ferry_memory_stats_get("sim:0", &before));
    for (int i = 0; i < 50; i++) {
        ferry_tensor *y = ferry_tensor_to(x, "sim:0");
        assert_tensor(y);
        ferry_tensor_release(y);
    }
    assert_ok(ferry_memory_stats_get("sim:0", &after));
    assert_int_equal(after.backend_allocs, before.backend_allocs);
    assert_int_equal(after.allocated, 0);
    assert_true(after.cached >= 400000);
    assert_true(after.peak_allocated >= 400000);
    assert_ok(ferry_empty_cache("sim:0"));
    assert_ok(ferry_memory_stats_get("sim:0", &after));
    assert_int_equal(after.cached, 0);
    assert_int_equal(after.backend_frees, after.backend_allocs);
    ferry_tensor_release(x);

    ferry_memory_stats s;
    assert_status(ferry_memory_stats_get("sim:9", &s), FERRY_ERR_INVALID_DEVICE,
                  "Invalid device: sim:9");
    assert_status(ferry_memory_stats_get("cpu", NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "out is NULL");
}

/* Sets FERRY_FAULT_INJECT for the next registry generation. */
static void inject(const char *spec)
{
    if (spec)
        setenv("FERRY_FAULT_INJECT", spec, 1);
    else
        unsetenv("FERRY_FAULT_INJECT");
    ferry_shutdown();
}

static void test_injected_copy_failure_leaves_no_leak_and_a_clear_error(void **state)
{
    (void)state;
    require_backend("sim");
    ferry_tensor *x = iota_f32(1000, NULL);
    inject("copy_from_host=1");
    assert_null(ferry_tensor_to(x, "sim:0"));
    assert_failed_with(FERRY_ERR_BACKEND, "sim:0: injected failure of copy_from_host call #1");
    ferry_memory_stats s;
    assert_ok(ferry_memory_stats_get("sim:0", &s));
    assert_int_equal(s.allocated, 0); /* the half-made destination went back */
    ferry_tensor *ok = ferry_tensor_to(x, "sim:0"); /* only the first call fails */
    assert_tensor(ok);
    expect_iota(ok, 1000);

    inject("copy_to_host=1");
    assert_null(ferry_tensor_cpu(ok));
    assert_failed_with(FERRY_ERR_BACKEND, "injected failure of copy_to_host call #1");
    expect_iota(ok, 1000);

    inject("alloc=1");
    assert_null(ferry_tensor_to(x, "sim:1"));
    assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, "sim:1: injected failure of alloc call #1");
    inject(NULL);
    expect_iota(x, 1000);
    ferry_tensor_release(ok);
    ferry_tensor_release(x);
}

/* Loads the stage_probe variant of tests/fake_backend (two opaque devices, no peer path)
 * and finds its logging entries in the copy the core loaded. */
static void use_stage_probe(fake_stage_arm_fn *arm, fake_stage_log_fn *log)
{
    const char *build = getenv("FERRY_TEST_BUILD_DIR");
    if (!build)
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/fake_plugins/stage_probe", build);
    setenv("FERRY_PLUGIN_PATH", dir, 1);
    ferry_shutdown();
    if (!ferry_is_available("fakestage"))
        fail_msg("fakestage unavailable: %s", ferry_backend_status("fakestage"));
    void *h = dlopen(ferry_backend_path("fakestage"), RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        fail_msg("the loaded fakestage plugin is not found again: %s", dlerror());
    *(void **)arm = dlsym(h, FAKE_STAGE_ARM_SYMBOL);
    *(void **)log = dlsym(h, FAKE_STAGE_LOG_SYMBOL);
    dlclose(h); /* the core's own handle keeps it loaded */
    assert_true(*arm && *log);
}

static void leave_stage_probe(void)
{
    unsetenv("FERRY_PLUGIN_PATH");
    ferry_shutdown();
}

/* fakestage:0 -> fakestage:1 can only go through host memory: every download and every
 * upload moves at most FERRY_STAGING_CHUNK bytes, together they move the tensor once, and
 * an upload runs while the next download does (the probe waits for such a partner, so a
 * core that ran the legs one after the other would show no overlap at all). */
static void test_to_stages_in_bounded_chunks_with_overlapping_legs(void **state)
{
    (void)state;
    fake_stage_arm_fn arm;
    fake_stage_log_fn log;
    use_stage_probe(&arm, &log);
    int64_t n = ((int64_t)5 << 20) + 3; /* 20 MiB and 12 bytes: three chunks, one short */
    size_t nbytes = (size_t)n * sizeof(float);
    ferry_tensor *x = iota_f32(n, "fakestage:0");
    assert_tensor(x);

    arm(true);
    ferry_tensor *y = ferry_tensor_to(x, "fakestage:1");
    fake_stage_call calls[FAKE_STAGE_MAX_CALLS];
    size_t ncalls = log(calls, FAKE_STAGE_MAX_CALLS);
    arm(false);
    assert_tensor(y);
    expect_iota(y, n);

    assert_true(ncalls <= FAKE_STAGE_MAX_CALLS);
    size_t moved[2] = {0, 0}, count[2] = {0, 0}, overlapped = 0;
    for (size_t i = 0; i < ncalls; i++) {
        const fake_stage_call *c = &calls[i];
        /* Downloads read device 0, uploads write device 1. */
        assert_int_equal(c->device, c->dir == FAKE_STAGE_TO_HOST ? 0 : 1);
        if (c->nbytes == 0 || c->nbytes > FERRY_STAGING_CHUNK)
            fail_msg("call %zu moved %zu bytes; a chunk is 1 to %zu", i, c->nbytes,
                     (size_t)FERRY_STAGING_CHUNK);
        moved[c->dir] += c->nbytes;
        count[c->dir]++;
        overlapped += c->dir == FAKE_STAGE_FROM_HOST && c->overlapped;
    }
    assert_int_equal(calls[0].dir, FAKE_STAGE_TO_HOST);
    assert_int_equal(moved[FAKE_STAGE_TO_HOST], nbytes);
    assert_int_equal(moved[FAKE_STAGE_FROM_HOST], nbytes);
    size_t chunks = (nbytes + FERRY_STAGING_CHUNK - 1) / FERRY_STAGING_CHUNK;
    assert_int_equal(count[FAKE_STAGE_TO_HOST], chunks);
    assert_int_equal(count[FAKE_STAGE_FROM_HOST], chunks);
    if (overlapped == 0)
        fail_msg("none of the %zu uploads ran while a download did: the legs were serial",
                 count[FAKE_STAGE_FROM_HOST]);

    ferry_tensor_release(y);
    ferry_tensor_release(x);
    leave_stage_probe();
}

/* A failure on the staging thread's upload reaches the caller with its message, and the
 * half-made destination goes back. */
static void test_to_staged_upload_failure_reaches_the_caller(void **state)
{
    (void)state;
    fake_stage_arm_fn arm;
    fake_stage_log_fn log;
    /* Read when the registry starts, so set before the probe's reload. */
    setenv("FERRY_FAULT_INJECT", "copy_from_host=2", 1); /* the first staged upload */
    use_stage_probe(&arm, &log);
    int64_t n = (int64_t)5 << 20;
    ferry_tensor *x = iota_f32(n, "fakestage:0"); /* upload #1 */
    assert_tensor(x);
    assert_null(ferry_tensor_to(x, "fakestage:1"));
    assert_failed_with(FERRY_ERR_BACKEND, "fakestage:1: injected failure of copy_from_host");
    unsetenv("FERRY_FAULT_INJECT");
    ferry_memory_stats s;
    assert_ok(ferry_memory_stats_get("fakestage:1", &s));
    assert_int_equal(s.allocated, 0);
    expect_iota(x, n);
    ferry_tensor_release(x);
    leave_stage_probe();
}

/* sim:0 -> opencl:0 is staged through host memory between two real plugins; a failure
 * on the uploading thread must reach the caller with its message. */
static void test_staged_copy_from_sim_to_opencl_arrives_whole_and_reports_failures(void **state)
{
    (void)state;
    require_backend("sim");
    require_backend("opencl");
    int64_t n = (int64_t)5 << 20; /* 20 MiB: three chunks */
    ferry_tensor *x = iota_f32(n, "sim:0");
    ferry_tensor *y = ferry_tensor_to(x, "opencl:0");
    assert_tensor(y);
    expect_iota(y, n);
    ferry_tensor_release(y);

    inject("copy_from_host=2"); /* the second upload, made by the staging thread */
    ferry_tensor *x2 = iota_f32(n, "sim:0"); /* upload #1 */
    assert_tensor(x2);
    assert_null(ferry_tensor_to(x2, "opencl:0"));
    assert_failed_with(FERRY_ERR_BACKEND, "opencl:0: injected failure of copy_from_host call #2");
    ferry_memory_stats s;
    assert_ok(ferry_memory_stats_get("opencl:0", &s));
    assert_int_equal(s.allocated, 0);
    inject(NULL);
    ferry_tensor_release(x2);
    ferry_tensor_release(x);
}

/* A device whose memory is held by the cache: the allocator hands the cached blocks back
 * and retries once before reporting out of memory. */
static void test_allocator_frees_its_cache_before_reporting_out_of_memory(void **state)
{
    (void)state;
    require_backend("sim");
    setenv("FERRY_SIM_MEMORY", "1048576", 1); /* 1 MiB devices */
    ferry_shutdown();
    int64_t small = 150000, big = 200000; /* 600 KB and 800 KB of float32 */
    ferry_tensor *a = ferry_zeros(FERRY_FLOAT32, 1, &small, "sim:0");
    assert_tensor(a);
    ferry_tensor_release(a); /* its block stays cached, the device still counts it used */
    ferry_memory_stats s;
    assert_ok(ferry_memory_stats_get("sim:0", &s));
    assert_true(s.cached >= 600000);
    ferry_tensor *b = ferry_zeros(FERRY_FLOAT32, 1, &big, "sim:0");
    assert_tensor(b); /* only after the cache went back */
    assert_ok(ferry_memory_stats_get("sim:0", &s));
    assert_int_equal(s.cached, 0);
    ferry_tensor *c = ferry_zeros(FERRY_FLOAT32, 1, &big, "sim:0"); /* really too much */
    assert_null(c);
    assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, "sim:0");
    ferry_tensor_release(b);
    unsetenv("FERRY_SIM_MEMORY");
    ferry_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_same_device_returns_the_same_tensor),
        cmocka_unit_test(test_to_round_trips_cpu_sim_every_pair),
        cmocka_unit_test(test_to_moves_large_tensors_between_devices_and_back),
        cmocka_unit_test(test_to_stages_in_bounded_chunks_with_overlapping_legs),
        cmocka_unit_test(test_to_staged_upload_failure_reaches_the_caller),
        cmocka_unit_test(test_to_makes_non_contiguous_sources_contiguous),
        cmocka_unit_test(test_to_dtype_on_a_device_without_kernels_falls_back_to_cpu),
        cmocka_unit_test(test_factories_work_on_a_device_without_kernels),
        cmocka_unit_test(test_to_unavailable_and_invalid_devices_fail_clearly),
        cmocka_unit_test(test_caching_allocator_reuses_blocks_in_a_steady_loop),
        cmocka_unit_test(test_injected_copy_failure_leaves_no_leak_and_a_clear_error),
        cmocka_unit_test(test_staged_copy_from_sim_to_opencl_arrives_whole_and_reports_failures),
        cmocka_unit_test(test_allocator_frees_its_cache_before_reporting_out_of_memory),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return failed;
}

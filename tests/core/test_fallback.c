/* The CPU fallback's accounting: per-device counts by op kind, FERRY_STRICT_DEVICE turning
 * a fallback into an error that names the op, and an ABI 1.0 plugin (no get_kernel)
 * driven through the fallback without the core reading past its table. */
#include <dlfcn.h>
#include <limits.h>

#include "test_util.h"

static const int64_t shape[1] = {6};

static void clean_env(void)
{
    unsetenv("FERRY_STRICT_DEVICE");
    unsetenv("FERRY_PLUGIN_PATH");
}

static int setup(void **state)
{
    (void)state;
    clean_env();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clean_env();
    ferry_shutdown();
    return 0;
}

static uint64_t count(const char *device, int kind)
{
    ferry_fallback_stats s;
    assert_ok(ferry_fallback_stats_get(device, &s));
    uint64_t sum = 0;
    for (int k = 0; k < FERRY_FALLBACK_KINDS; k++)
        sum += s.by_kind[k];
    assert_true(sum == s.total);
    return kind < 0 ? s.total : s.by_kind[kind];
}

static void test_fallback_kind_names(void)
{
    static const char *const want[FERRY_FALLBACK_KINDS] = {"fill", "cast", "copy", "unary",
                                                           "binary", "reduce", "matmul", "named"};
    for (int k = 0; k < FERRY_FALLBACK_KINDS; k++)
        assert_string_equal(ferry_fallback_kind_name(k), want[k]);
    assert_null(ferry_fallback_kind_name(-1));
    assert_null(ferry_fallback_kind_name(FERRY_FALLBACK_KINDS));
}

static void test_fallback_counts_ops_sim_runs_on_the_cpu(void **state)
{
    (void)state;
    test_fallback_kind_names();
    require_backend("sim");
    assert_ok(ferry_fallback_stats_reset("sim:0"));
    assert_int_equal(count("sim:0", -1), 0);

    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, shape, 1.5, "sim:0"); /* fill */
    assert_tensor(a);
    assert_int_equal(count("sim:0", FERRY_FALLBACK_FILL), 1);
    ferry_tensor *b = ferry_add(a, a); /* binary */
    assert_tensor(b);
    ferry_tensor *c = ferry_exp(b); /* unary */
    assert_tensor(c);
    ferry_tensor *d = ferry_tensor_to_dtype(c, FERRY_FLOAT64); /* cast */
    assert_tensor(d);
    assert_int_equal(count("sim:0", FERRY_FALLBACK_BINARY), 1);
    assert_int_equal(count("sim:0", FERRY_FALLBACK_UNARY), 1);
    assert_int_equal(count("sim:0", FERRY_FALLBACK_CAST), 1);
    assert_int_equal(count("sim:0", -1), 4);
    /* Other devices keep their own counts; the cpu never falls back to itself. */
    assert_int_equal(count("cpu", -1), 0);
    ferry_tensor *h = ferry_add(a, a);
    assert_tensor(h);
    assert_int_equal(count("sim:0", FERRY_FALLBACK_BINARY), 2);

    assert_ok(ferry_fallback_stats_reset("sim:0"));
    assert_int_equal(count("sim:0", -1), 0);
    ferry_tensor *ts[] = {a, b, c, d, h};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ferry_tensor_release(ts[i]);
}

static void test_fallback_stats_refuse_bad_arguments(void **state)
{
    (void)state;
    assert_status(ferry_fallback_stats_get("cpu", NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "ferry_fallback_stats_get: out is NULL");
    ferry_fallback_stats s;
    assert_status(ferry_fallback_stats_get("nosuch:0", &s), FERRY_ERR_INVALID_DEVICE,
                  "nosuch");
    assert_status(ferry_fallback_stats_reset("cpu:7"), FERRY_ERR_INVALID_DEVICE, "cpu:7");
}

static void test_strict_device_refuses_a_fallback_and_names_it(void **state)
{
    (void)state;
    require_backend("sim");
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, shape, 2.0, "sim:0");
    assert_tensor(a);
    assert_ok(ferry_fallback_stats_reset("sim:0"));

    setenv("FERRY_STRICT_DEVICE", "1", 1);
    assert_null(ferry_add(a, a));
    assert_failed_with(FERRY_ERR_UNSUPPORTED,
                       "FERRY_STRICT_DEVICE: sim:0 has no binary add kernel for (float32, "
                       "float32, float32)");
    assert_null(ferry_tensor_to_dtype(a, FERRY_INT32));
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "sim:0 has no cast kernel for (float32, int32)");
    assert_status(ferry_tensor_fill(a, 3.0), FERRY_ERR_UNSUPPORTED, "no fill kernel");
    assert_int_equal(count("sim:0", -1), 0);

    /* A list names backends or devices: sim:0 is strict, sim:1 and the cpu are not. */
    setenv("FERRY_STRICT_DEVICE", "opencl,sim:0", 1);
    assert_null(ferry_exp(a));
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "sim:0 has no unary exp kernel");
    ferry_tensor *c = ferry_tensor_to(a, "cpu");
    assert_tensor(c);
    ferry_tensor *ce = ferry_exp(c);
    assert_tensor(ce);
    if (ferry_device_count("sim") > 1) {
        ferry_tensor *s1 = ferry_tensor_to(a, "sim:1");
        assert_tensor(s1);
        ferry_tensor *e1 = ferry_exp(s1);
        assert_tensor(e1);
        assert_int_equal(count("sim:1", FERRY_FALLBACK_UNARY), 1);
        ferry_tensor_release(e1);
        ferry_tensor_release(s1);
    }

    /* Nothing the refusals touched changed: a is still 2.0 everywhere. */
    unsetenv("FERRY_STRICT_DEVICE");
    float got[6];
    assert_ok(ferry_tensor_copy_to_host(a, got, sizeof got));
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == 2.0f);
    ferry_tensor_release(ce);
    ferry_tensor_release(c);
    ferry_tensor_release(a);
}

/* Points the plugin search at one variant of tests/fake_backend and reloads. */
static void use_fake_variant(const char *variant)
{
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir || dir[0] != '/')
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fake_plugins/%s", dir, variant);
    setenv("FERRY_PLUGIN_PATH", path, 1);
    ferry_shutdown();
}

static void test_abi_1_0_plugin_runs_everything_through_the_fallback(void **state)
{
    (void)state;
    use_fake_variant("abi_1_0");
    assert_null(ferry_backend_status("fakeonezero"));
    /* Its table stops before get_kernel; traps past it (get_kernel, binary_scalar)
     * would abort the test: `a * 2` reaches it as a 0-d operand, not by value. */
    ferry_tensor *a = ferry_arange(0, 6, 1, FERRY_FLOAT32, "fakeonezero:0");
    assert_tensor(a);
    ferry_tensor *b = ferry_mul_scalar(a, 2.0);
    assert_tensor(b);
    ferry_tensor *s = ferry_sum(b, 0, NULL, false);
    assert_tensor(s);
    float got;
    assert_ok(ferry_tensor_copy_to_host(s, &got, sizeof got));
    assert_true(got == 30.0f);
    assert_true(count("fakeonezero:0", -1) >= 2);
    /* Its one kernel, fill (1.0), reads the descriptors of today's core, struct_size
     * appended: a strided view is filled in place on the plugin, without fallback. */
    uint64_t fills = count("fakeonezero:0", FERRY_FALLBACK_FILL);
    int64_t shape[2] = {2, 3};
    ferry_tensor *f = ferry_zeros(FERRY_FLOAT32, 2, shape, "fakeonezero:0");
    assert_tensor(f);
    ferry_tensor *col = ferry_slice(f, 1, 1, 3, 1);
    assert_tensor(col);
    assert_ok(ferry_tensor_fill(col, 2.5));
    float fv[6];
    assert_ok(ferry_tensor_copy_to_host(f, fv, sizeof fv));
    for (int i = 0; i < 6; i++)
        assert_true(fv[i] == (i % 3 == 0 ? 0.0f : 2.5f));
    assert_int_equal(count("fakeonezero:0", FERRY_FALLBACK_FILL), fills);
    ferry_tensor_release(col);
    ferry_tensor_release(f);
    ferry_tensor_release(s);
    ferry_tensor_release(b);
    ferry_tensor_release(a);
}

/* A 1.1 plugin built before ferry_kernel_tensor.struct_size indexes ferry_op_args.tensors
 * with the older, shorter stride; the core packs the array so for it. */
static void test_early_1_1_plugin_reads_named_descriptors_at_its_stride(void **state)
{
    (void)state;
    use_fake_variant("early_1_1");
    int64_t shape[2] = {2, 3};
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 2, shape, 2.5, "fakeearly:0");
    assert_tensor(a);
    void *h = dlopen(ferry_backend_path("fakeearly"), RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(h);
    int (*log)(int *, int *, int64_t *, int) = (int (*)(int *, int *, int64_t *, int))dlsym(
        h, "fake_early_log");
    dlclose(h);
    assert_non_null(log);
    ferry_tensor *f = ferry_floor(a); /* "ferry.unary2": out and in */
    assert_tensor(f);
    float got[6];
    assert_ok(ferry_tensor_copy_to_host(f, got, sizeof got));
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == 2.0f);
    int nd[8], dt[8];
    int64_t numel[8];
    int n = log(nd, dt, numel, 8);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) {
        assert_int_equal(dt[i], FERRY_FLOAT32);
        assert_true(nd[i] >= 1 && nd[i] <= 2);
        assert_int_equal(numel[i], 6);
    }
    ferry_tensor_release(f);
    ferry_tensor_release(a);
}

/* ABI 2.0: get_kernel and the kernel it returns receive the context init returned (the
 * plugin aborts otherwise), and a declined named op still runs, on the cpu. */
static void test_abi_2_0_named_kernels_receive_the_plugin_context(void **state)
{
    (void)state;
    use_fake_variant("ctx_probe");
    int64_t shape[2] = {2, 3};
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 2, shape, -1.5, "fakectx:0");
    assert_tensor(a);
    void *h = dlopen(ferry_backend_path("fakectx"), RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(h);
    void (*counts)(int *, int *) = (void (*)(int *, int *))dlsym(h, "fake_ctx_probe_counts");
    dlclose(h);
    assert_non_null(counts);
    int gets0, runs0;
    counts(&gets0, &runs0);
    ferry_tensor *f = ferry_floor(a);
    assert_tensor(f);
    float got[6];
    assert_ok(ferry_tensor_copy_to_host(f, got, sizeof got));
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == -2.0f);
    int gets, runs;
    counts(&gets, &runs);
    assert_true(gets > gets0);
    assert_true(runs > runs0);
    assert_true(count("fakectx:0", FERRY_FALLBACK_NAMED) >= 1);
    ferry_tensor_release(f);
    ferry_tensor_release(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fallback_counts_ops_sim_runs_on_the_cpu, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fallback_stats_refuse_bad_arguments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_strict_device_refuses_a_fallback_and_names_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_abi_1_0_plugin_runs_everything_through_the_fallback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_early_1_1_plugin_reads_named_descriptors_at_its_stride, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abi_2_0_named_kernels_receive_the_plugin_context,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

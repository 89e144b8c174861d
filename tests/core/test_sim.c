/* The sim plugin end to end: round trips (direct, peer, staged in chunks), refused host
 * access, CPU fallback, and FERRY_SIM_* fault injection checked for status, message, leaks
 * and an untouched source; then sim's own checks through its table and a stand-in host. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ferry/backend.h>
#include <ferry/ferry.h>

#define assert_last_error(code, text)                                                       \
    do {                                                                                    \
        assert_int_equal(ferry_last_status(), (code));                                      \
        if (!strstr(ferry_last_error(), (text)))                                            \
            fail_msg("last error \"%s\" does not contain \"%s\"", ferry_last_error(), (text)); \
    } while (0)

#define MiB ((size_t)1 << 20)

static const char *build_dir(void)
{
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir || dir[0] != '/')
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    return dir;
}

static void set_or_unset(const char *var, const char *value)
{
    if (value)
        setenv(var, value, 1);
    else
        unsetenv(var);
}

/* sim reads its settings at init, and counts FERRY_SIM_FAIL_* calls from there; with no
 * sim tensor alive, ferry_shutdown() unloads it so the next use loads it afresh. */
static void reload_sim(const char *devices, const char *memory, const char *fail_alloc,
                       const char *fail_copy)
{
    set_or_unset("FERRY_SIM_DEVICES", devices);
    set_or_unset("FERRY_SIM_MEMORY", memory);
    set_or_unset("FERRY_SIM_FAIL_ALLOC", fail_alloc);
    set_or_unset("FERRY_SIM_FAIL_COPY", fail_copy);
    ferry_shutdown();
}

static int default_sim(void **state)
{
    (void)state;
    unsetenv("FERRY_PLUGIN_PATH");
    reload_sim(NULL, NULL, NULL, NULL);
    return 0;
}

static void use_opaque_plugin(void)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/fake_plugins/opaque", build_dir());
    setenv("FERRY_PLUGIN_PATH", dir, 1);
    ferry_shutdown();
    if (!ferry_is_available("fakeopaque"))
        fail_msg("fakeopaque unavailable: %s", ferry_backend_status("fakeopaque"));
}

/* Valid values of each dtype (bools 0/1, finite halves), different per seed. */
static void *pattern(ferry_dtype dt, size_t n, unsigned seed)
{
    size_t nbytes = n * ferry_dtype_size(dt);
    unsigned char *buf = malloc(nbytes ? nbytes : 1);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = (uint64_t)i * 2654435761u + seed;
        switch (dt) {
        case FERRY_BOOL: buf[i] = (k >> 7) % 3 == 0; break;
        case FERRY_UINT8:
        case FERRY_INT8: buf[i] = (unsigned char)(k >> 3); break;
        case FERRY_INT16: ((int16_t *)buf)[i] = (int16_t)(uint16_t)(k >> 5); break;
        case FERRY_INT32: ((int32_t *)buf)[i] = (int32_t)(uint32_t)k; break;
        case FERRY_INT64: ((int64_t *)buf)[i] = (int64_t)(k * 0x9E3779B97F4A7C15ull); break;
        case FERRY_FLOAT16:
        case FERRY_BFLOAT16:
            /* Below 0x7800 every pattern is finite in both formats; the sign alternates. */
            ((uint16_t *)buf)[i] = (uint16_t)(((k >> 4) % 0x7800) | ((i & 1) << 15));
            break;
        case FERRY_FLOAT32: ((float *)buf)[i] = (float)((double)(k % 100000) * 0.25 - 999.5); break;
        case FERRY_FLOAT64: ((double *)buf)[i] = (double)(k % 1000003) * 0.125 - 31.0; break;
        }
    }
    return buf;
}

static size_t numel_of(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

static void expect_device(const ferry_tensor *t, const char *type, int32_t index)
{
    ferry_device d = ferry_tensor_device(t);
    assert_string_equal(d.type, type);
    assert_int_equal(d.index, index);
}

static void expect_host_data_refused(const ferry_tensor *t, const char *device)
{
    assert_null(ferry_tensor_host_data(t));
    char message[256];
    snprintf(message, sizeof message,
             "can't convert %s device type tensor to host memory. Use ferry_tensor_cpu() to copy "
             "the tensor to host memory first.",
             device);
    assert_int_equal(ferry_last_status(), FERRY_ERR_WRONG_DEVICE);
    assert_string_equal(ferry_last_error(), message);
}

/* Everything the sim devices gave out has come back: no live bytes in the core's pools,
 * and, once the cache is emptied, all of the plugin's memory free again. */
static void expect_no_sim_memory_held(void)
{
    for (int i = 0; i < ferry_device_count("sim"); i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "sim:%d", i);
        ferry_memory_stats stats;
        assert_int_equal(ferry_memory_stats_get(dev, &stats), FERRY_OK);
        if (stats.allocated != 0)
            fail_msg("%s still has %llu bytes allocated", dev,
                     (unsigned long long)stats.allocated);
        assert_int_equal(ferry_empty_cache(dev), FERRY_OK);
        ferry_device_info info;
        assert_int_equal(ferry_device_get_info(dev, &info), FERRY_OK);
        assert_int_equal(info.free_memory, info.total_memory);
    }
}

static uint64_t allocated_on(const char *device)
{
    ferry_memory_stats stats;
    assert_int_equal(ferry_memory_stats_get(device, &stats), FERRY_OK);
    return stats.allocated;
}

/* cpu -> device -> cpu, checking geometry, refused host access and the bytes both
 * through ferry_tensor_copy_to_host and through a CPU copy. */
static void round_trip(ferry_dtype dt, int ndim, const int64_t *shape, const char *device,
                       int32_t index)
{
    size_t n = numel_of(ndim, shape);
    size_t nbytes = n * ferry_dtype_size(dt);
    void *data = pattern(dt, n, (unsigned)(ndim * 131 + dt));
    ferry_tensor *src = ferry_tensor_from_data(data, dt, ndim, shape, "cpu");
    assert_non_null(src);

    ferry_tensor *s = ferry_tensor_to(src, device);
    if (!s)
        fail_msg("to(%s) of %s x%zu failed: %s", device, ferry_dtype_name(dt), n,
                 ferry_last_error());
    expect_device(s, "sim", index);
    assert_int_equal(ferry_tensor_dtype(s), dt);
    assert_int_equal(ferry_tensor_ndim(s), ndim);
    if (ndim)
        assert_memory_equal(ferry_tensor_shape(s), shape, (size_t)ndim * sizeof *shape);
    assert_int_equal(ferry_tensor_numel(s), (int64_t)n);
    assert_int_equal(ferry_tensor_nbytes(s), nbytes);
    assert_true(ferry_tensor_is_contiguous(s));
    char name[32];
    snprintf(name, sizeof name, "sim:%d", (int)index);
    expect_host_data_refused(s, name);

    void *out = malloc(nbytes ? nbytes : 1);
    assert_non_null(out);
    memset(out, 0xEE, nbytes);
    assert_int_equal(ferry_tensor_copy_to_host(s, out, nbytes), FERRY_OK);
    assert_memory_equal(out, data, nbytes);

    ferry_tensor *c = ferry_tensor_cpu(s);
    assert_non_null(c);
    expect_device(c, "cpu", 0);
    assert_int_equal(ferry_tensor_numel(c), (int64_t)n);
    if (n)
        assert_memory_equal(ferry_tensor_host_data(c), data, nbytes);
    if (n)
        assert_memory_equal(ferry_tensor_host_data(src), data, nbytes);

    free(out);
    ferry_tensor_release(c);
    ferry_tensor_release(s);
    ferry_tensor_release(src);
    free(data);
}

/* ---- round trips ---- */

static void test_sim_round_trip_every_dtype_small_shapes_is_exact(void **state)
{
    (void)state;
    const int64_t s1[1] = {1}, s7[1] = {7}, s2d[2] = {37, 41}, s4d[4] = {2, 3, 4, 5};
    for (int dt = 0; dt < FERRY_NUM_DTYPES; dt++) {
        round_trip((ferry_dtype)dt, 0, NULL, "sim:0", 0);
        round_trip((ferry_dtype)dt, 1, s1, "sim:0", 0);
        round_trip((ferry_dtype)dt, 1, s7, "sim:1", 1);
        round_trip((ferry_dtype)dt, 2, s2d, "sim:0", 0);
        round_trip((ferry_dtype)dt, 4, s4d, "sim:1", 1);
    }
    expect_no_sim_memory_held();
}

static void test_sim_round_trip_zero_elements_gives_empty_tensor(void **state)
{
    (void)state;
    const int64_t s0[1] = {0}, s302[3] = {3, 0, 2};
    round_trip(FERRY_FLOAT32, 1, s0, "sim:0", 0);
    round_trip(FERRY_INT64, 3, s302, "sim:1", 1);
    ferry_tensor *e = ferry_tensor_from_data(NULL, FERRY_FLOAT64, 3, s302, "sim:0");
    assert_non_null(e);
    expect_device(e, "sim", 0);
    assert_int_equal(ferry_tensor_numel(e), 0);
    ferry_tensor *c = ferry_tensor_cpu(e);
    assert_non_null(c);
    assert_int_equal(ferry_tensor_numel(c), 0);
    ferry_tensor_release(c);
    ferry_tensor_release(e);
    expect_no_sim_memory_held();
}

static void test_sim_round_trip_larger_than_staging_chunk_is_exact(void **state)
{
    (void)state;
    const int64_t big_f64[1] = {(int64_t)(12 * MiB / 8) + 3};
    const int64_t big_u8[1] = {(int64_t)(17 * MiB) + 5};
    const int64_t big_f32[2] = {3, (int64_t)(MiB) + 1};
    round_trip(FERRY_FLOAT64, 1, big_f64, "sim:0", 0);
    round_trip(FERRY_UINT8, 1, big_u8, "sim:1", 1);
    round_trip(FERRY_FLOAT32, 2, big_f32, "sim:0", 0);
    expect_no_sim_memory_held();
}

static void test_sim_peer_copy_between_devices_is_exact(void **state)
{
    (void)state;
    const int64_t small[2] = {5, 9};
    const int64_t big[1] = {(int64_t)(10 * MiB / 4) + 7};
    const int64_t *shapes[2] = {small, big};
    const int ndims[2] = {2, 1};
    for (int k = 0; k < 2; k++) {
        size_t n = numel_of(ndims[k], shapes[k]);
        int32_t *data = pattern(FERRY_INT32, n, 77u + (unsigned)k);
        ferry_tensor *s0 = ferry_tensor_from_data(data, FERRY_INT32, ndims[k], shapes[k], "sim:0");
        assert_non_null(s0);
        ferry_tensor *s1 = ferry_tensor_to(s0, "sim:1");
        assert_non_null(s1);
        expect_device(s1, "sim", 1);
        ferry_tensor *s0b = ferry_tensor_to(s1, "sim:0");
        assert_non_null(s0b);
        expect_device(s0b, "sim", 0);
        int32_t *out = malloc(n * 4);
        assert_non_null(out);
        assert_int_equal(ferry_tensor_copy_to_host(s1, out, n * 4), FERRY_OK);
        assert_memory_equal(out, data, n * 4);
        memset(out, 0, n * 4);
        assert_int_equal(ferry_tensor_copy_to_host(s0b, out, n * 4), FERRY_OK);
        assert_memory_equal(out, data, n * 4);
        free(out);
        free(data);
        ferry_tensor_release(s0b);
        ferry_tensor_release(s1);
        ferry_tensor_release(s0);
    }
    expect_no_sim_memory_held();
}

static void test_sim_copy_to_another_opaque_backend_is_staged_exactly(void **state)
{
    (void)state;
    use_opaque_plugin();
    /* 20 MiB and 3 bytes: three staging chunks, the last one short. */
    const int64_t shape[1] = {(int64_t)(20 * MiB) + 3};
    size_t n = (size_t)shape[0];
    unsigned char *data = pattern(FERRY_UINT8, n, 5);
    ferry_tensor *s = ferry_tensor_from_data(data, FERRY_UINT8, 1, shape, "sim:0");
    assert_non_null(s);
    ferry_tensor *o = ferry_tensor_to(s, "fakeopaque:0");
    if (!o)
        fail_msg("sim:0 -> fakeopaque:0 failed: %s", ferry_last_error());
    expect_device(o, "fakeopaque", 0);
    ferry_tensor *back = ferry_tensor_to(o, "sim:1");
    assert_non_null(back);
    expect_device(back, "sim", 1);
    unsigned char *out = malloc(n);
    assert_non_null(out);
    assert_int_equal(ferry_tensor_copy_to_host(back, out, n), FERRY_OK);
    assert_memory_equal(out, data, n);
    memset(out, 0, n);
    assert_int_equal(ferry_tensor_copy_to_host(o, out, n), FERRY_OK);
    assert_memory_equal(out, data, n);
    free(out);
    free(data);
    ferry_tensor_release(back);
    ferry_tensor_release(o);
    ferry_tensor_release(s);
    expect_no_sim_memory_held();
}

static void test_sim_to_same_device_returns_the_tensor_itself(void **state)
{
    (void)state;
    const int64_t shape[1] = {4};
    ferry_tensor *s = ferry_ones(FERRY_FLOAT32, 1, shape, "sim:1");
    assert_non_null(s);
    ferry_tensor *same = ferry_tensor_to(s, "sim:1");
    assert_ptr_equal(same, s);
    ferry_tensor *contig = ferry_tensor_contiguous(s);
    assert_ptr_equal(contig, s);
    ferry_tensor_release(contig);
    ferry_tensor_release(same);
    float out[4];
    assert_int_equal(ferry_tensor_copy_to_host(s, out, sizeof out), FERRY_OK);
    for (int i = 0; i < 4; i++)
        assert_true(out[i] == 1.0f);
    ferry_tensor_release(s);
    expect_no_sim_memory_held();
}

/* ---- refused host access and invalid devices ---- */

static void test_sim_host_data_is_refused_with_pytorch_message(void **state)
{
    (void)state;
    const int64_t shape[2] = {2, 2};
    ferry_tensor *a = ferry_zeros(FERRY_FLOAT32, 2, shape, "sim:0");
    ferry_tensor *b = ferry_zeros(FERRY_INT8, 2, shape, "sim:1");
    assert_non_null(a);
    assert_non_null(b);
    expect_host_data_refused(a, "sim:0");
    assert_string_equal(ferry_last_error(),
                        "can't convert sim:0 device type tensor to host memory. Use "
                        "ferry_tensor_cpu() to copy the tensor to host memory first.");
    expect_host_data_refused(b, "sim:1");
    ferry_tensor_release(b);
    ferry_tensor_release(a);
}

static void test_sim_missing_index_is_invalid_device_with_count(void **state)
{
    (void)state;
    const int64_t shape[1] = {3};
    ferry_tensor *c = ferry_ones(FERRY_FLOAT32, 1, shape, "cpu");
    assert_non_null(c);
    assert_null(ferry_tensor_to(c, "sim:5"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_DEVICE);
    assert_string_equal(ferry_last_error(), "Invalid device: sim:5 (sim has 2 devices)");
    assert_null(ferry_tensor_to(c, "sim:2"));
    assert_string_equal(ferry_last_error(), "Invalid device: sim:2 (sim has 2 devices)");

    reload_sim("1", NULL, NULL, NULL);
    assert_null(ferry_tensor_to(c, "sim:1"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_DEVICE);
    assert_string_equal(ferry_last_error(), "Invalid device: sim:1 (sim has 1 device)");

    reload_sim("3", NULL, NULL, NULL);
    assert_int_equal(ferry_device_count("sim"), 3);
    ferry_tensor *s = ferry_tensor_to(c, "sim:2");
    assert_non_null(s);
    expect_device(s, "sim", 2);
    ferry_tensor_release(s);
    ferry_tensor_release(c);
}

static void test_sim_zero_devices_is_unavailable_with_reason(void **state)
{
    (void)state;
    reload_sim("0", NULL, NULL, NULL);
    assert_false(ferry_is_available("sim"));
    assert_int_equal(ferry_device_count("sim"), 0);
    assert_string_equal(ferry_backend_status("sim"),
                        "sim: no device (FERRY_SIM_DEVICES=0: no simulated device requested)");
    const int64_t shape[1] = {3};
    ferry_tensor *c = ferry_ones(FERRY_FLOAT32, 1, shape, "cpu");
    assert_non_null(c);
    assert_null(ferry_tensor_to(c, "sim:0"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_UNAVAILABLE);
    assert_string_equal(ferry_last_error(),
                        "sim: no device (FERRY_SIM_DEVICES=0: no simulated device requested)");
    /* The type is still known: the plugin is there, it just has nothing to offer. */
    ferry_device d;
    assert_int_equal(ferry_device_parse("sim:0", &d), FERRY_OK);
    ferry_tensor_release(c);
}

static void test_sim_invalid_settings_make_init_fail_with_the_variable_named(void **state)
{
    (void)state;
    const struct {
        const char *var, *value, *reason;
    } cases[] = {
        {"FERRY_SIM_DEVICES", "abc",
         "sim: FERRY_SIM_DEVICES must be a whole number from 0 to 64, not 'abc'"},
        {"FERRY_SIM_DEVICES", "-1", "FERRY_SIM_DEVICES must be a whole number from 0 to 64"},
        {"FERRY_SIM_DEVICES", "65", "FERRY_SIM_DEVICES must be a whole number from 0 to 64"},
        {"FERRY_SIM_DEVICES", " 2", "FERRY_SIM_DEVICES must be a whole number"},
        {"FERRY_SIM_MEMORY", "1GiB", "FERRY_SIM_MEMORY must be a whole number"},
        {"FERRY_SIM_FAIL_COPY", "x", "FERRY_SIM_FAIL_COPY must be a whole number"},
        {"FERRY_SIM_FAIL_ALLOC", "1e3", "FERRY_SIM_FAIL_ALLOC must be a whole number"},
    };
    const int64_t shape[1] = {3};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reload_sim(NULL, NULL, NULL, NULL);
        setenv(cases[i].var, cases[i].value, 1);
        ferry_shutdown();
        assert_false(ferry_is_available("sim"));
        assert_int_equal(ferry_device_count("sim"), 0);
        const char *status = ferry_backend_status("sim");
        if (!status || !strstr(status, cases[i].reason))
            fail_msg("%s=%s: status \"%s\" lacks \"%s\"", cases[i].var, cases[i].value,
                     status ? status : "(null)", cases[i].reason);
        ferry_tensor *c = ferry_ones(FERRY_FLOAT32, 1, shape, "cpu");
        assert_non_null(c);
        assert_null(ferry_tensor_to(c, "sim:0"));
        assert_last_error(FERRY_ERR_UNAVAILABLE, cases[i].reason);
        ferry_tensor_release(c);
    }
}

/* ---- the CPU fallback for kernels sim does not have ---- */

static void test_sim_factories_and_casts_run_through_cpu_fallback(void **state)
{
    (void)state;
    const int64_t shape[2] = {4, 6};
    ferry_tensor *f = ferry_full(FERRY_FLOAT32, 2, shape, -2.75, "sim:0");
    assert_non_null(f);
    expect_device(f, "sim", 0);
    float fv[24];
    assert_int_equal(ferry_tensor_copy_to_host(f, fv, sizeof fv), FERRY_OK);
    for (int i = 0; i < 24; i++)
        assert_true(fv[i] == -2.75f);

    ferry_tensor *i16 = ferry_tensor_to_dtype(f, FERRY_INT16);
    assert_non_null(i16);
    expect_device(i16, "sim", 0);
    int16_t iv[24];
    assert_int_equal(ferry_tensor_copy_to_host(i16, iv, sizeof iv), FERRY_OK);
    for (int i = 0; i < 24; i++)
        assert_int_equal(iv[i], -2); /* truncation toward zero */

    ferry_tensor *z = ferry_zeros(FERRY_INT64, 2, shape, "sim:1");
    ferry_tensor *o = ferry_ones(FERRY_BOOL, 2, shape, "sim:1");
    assert_non_null(z);
    assert_non_null(o);
    int64_t zv[24];
    uint8_t ov[24];
    assert_int_equal(ferry_tensor_copy_to_host(z, zv, sizeof zv), FERRY_OK);
    assert_int_equal(ferry_tensor_copy_to_host(o, ov, sizeof ov), FERRY_OK);
    for (int i = 0; i < 24; i++) {
        assert_int_equal(zv[i], 0);
        assert_int_equal(ov[i], 1);
    }

    ferry_tensor *eye = ferry_eye(5, FERRY_FLOAT64, "sim:0");
    assert_non_null(eye);
    double ev[25];
    assert_int_equal(ferry_tensor_copy_to_host(eye, ev, sizeof ev), FERRY_OK);
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 5; c++)
            assert_true(ev[r * 5 + c] == (r == c ? 1.0 : 0.0));

    ferry_tensor *ar = ferry_arange(0, 10, 1.5, FERRY_INT32, "sim:1");
    assert_non_null(ar);
    assert_int_equal(ferry_tensor_numel(ar), 7);
    int32_t av[7];
    assert_int_equal(ferry_tensor_copy_to_host(ar, av, sizeof av), FERRY_OK);
    const int32_t aexp[7] = {0, 1, 3, 4, 6, 7, 9};
    assert_memory_equal(av, aexp, sizeof aexp);

    ferry_tensor *cl = ferry_tensor_clone(eye);
    assert_non_null(cl);
    assert_ptr_not_equal(cl, eye);
    expect_device(cl, "sim", 0);
    memset(ev, 0, sizeof ev);
    assert_int_equal(ferry_tensor_copy_to_host(cl, ev, sizeof ev), FERRY_OK);
    assert_true(ev[0] == 1.0 && ev[1] == 0.0 && ev[24] == 1.0);

    ferry_tensor *list[] = {cl, ar, eye, o, z, i16, f};
    for (size_t k = 0; k < sizeof list / sizeof list[0]; k++)
        ferry_tensor_release(list[k]);
    expect_no_sim_memory_held();
}

static void test_sim_repr_names_the_device(void **state)
{
    (void)state;
    const float v[3] = {1, 2, 3};
    const int64_t shape[1] = {3};
    ferry_tensor *s = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, shape, "sim:1");
    assert_non_null(s);
    char *r = ferry_tensor_repr(s);
    assert_non_null(r);
    if (!strstr(r, "device='sim:1'"))
        fail_msg("repr \"%s\" does not name device='sim:1'", r);
    ferry_free(r);
    ferry_tensor_release(s);
}

/* ---- injected failures ---- */

static void test_sim_injected_upload_failure_reports_and_leaks_nothing(void **state)
{
    (void)state;
    reload_sim(NULL, NULL, NULL, "1");
    const int64_t shape[1] = {1000};
    float *data = pattern(FERRY_FLOAT32, 1000, 1);
    ferry_tensor *src = ferry_tensor_from_data(data, FERRY_FLOAT32, 1, shape, "cpu");
    assert_non_null(src);
    uint64_t cpu_before = allocated_on("cpu");

    assert_null(ferry_tensor_to(src, "sim:0"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_BACKEND);
    assert_string_equal(ferry_last_error(), "sim:0: injected failure in copy #1");
    assert_memory_equal(ferry_tensor_host_data(src), data, 1000 * sizeof *data);
    assert_int_equal(allocated_on("sim:0"), 0);
    assert_int_equal(allocated_on("cpu"), cpu_before);
    expect_no_sim_memory_held();

    /* Only the first copy was doomed: the same call now works. */
    ferry_tensor *s = ferry_tensor_to(src, "sim:0");
    assert_non_null(s);
    float out[1000];
    assert_int_equal(ferry_tensor_copy_to_host(s, out, sizeof out), FERRY_OK);
    assert_memory_equal(out, data, sizeof out);
    ferry_tensor_release(s);
    ferry_tensor_release(src);
    free(data);
    expect_no_sim_memory_held();
}

static void test_sim_injected_download_failure_keeps_the_device_tensor(void **state)
{
    (void)state;
    reload_sim(NULL, NULL, NULL, "2");
    const int64_t shape[2] = {10, 10};
    double *data = pattern(FERRY_FLOAT64, 100, 2);
    ferry_tensor *s = ferry_tensor_from_data(data, FERRY_FLOAT64, 2, shape, "sim:1"); /* #1 */
    assert_non_null(s);
    uint64_t cpu_before = allocated_on("cpu");

    assert_null(ferry_tensor_cpu(s)); /* #2 */
    assert_int_equal(ferry_last_status(), FERRY_ERR_BACKEND);
    assert_string_equal(ferry_last_error(), "sim:1: injected failure in copy #2");
    assert_int_equal(allocated_on("cpu"), cpu_before);

    ferry_tensor *c = ferry_tensor_cpu(s); /* #3 */
    assert_non_null(c);
    assert_memory_equal(ferry_tensor_host_data(c), data, 100 * sizeof *data);
    ferry_tensor_release(c);
    ferry_tensor_release(s);
    free(data);
    expect_no_sim_memory_held();
}

static void test_sim_injected_copy_to_host_failure_returns_backend_error(void **state)
{
    (void)state;
    reload_sim(NULL, NULL, NULL, "2");
    const int32_t v[4] = {1, 2, 3, 4};
    const int64_t shape[1] = {4};
    ferry_tensor *s = ferry_tensor_from_data(v, FERRY_INT32, 1, shape, "sim:0");
    assert_non_null(s);
    int32_t out[4] = {0};
    assert_int_equal(ferry_tensor_copy_to_host(s, out, sizeof out), FERRY_ERR_BACKEND);
    assert_last_error(FERRY_ERR_BACKEND, "sim:0: injected failure in copy #2");
    assert_int_equal(ferry_tensor_copy_to_host(s, out, sizeof out), FERRY_OK);
    assert_memory_equal(out, v, sizeof v);
    ferry_tensor_release(s);
    expect_no_sim_memory_held();
}

static void test_sim_injected_peer_failure_leaves_both_devices_clean(void **state)
{
    (void)state;
    reload_sim(NULL, NULL, NULL, "2");
    const int64_t shape[1] = {257};
    int64_t *data = pattern(FERRY_INT64, 257, 3);
    ferry_tensor *s0 = ferry_tensor_from_data(data, FERRY_INT64, 1, shape, "sim:0"); /* #1 */
    assert_non_null(s0);
    assert_null(ferry_tensor_to(s0, "sim:1")); /* #2, the peer copy */
    assert_int_equal(ferry_last_status(), FERRY_ERR_BACKEND);
    assert_last_error(FERRY_ERR_BACKEND, "injected failure in copy #2");
    assert_int_equal(allocated_on("sim:1"), 0);

    int64_t out[257];
    assert_int_equal(ferry_tensor_copy_to_host(s0, out, sizeof out), FERRY_OK); /* #3 */
    assert_memory_equal(out, data, sizeof out);
    ferry_tensor *s1 = ferry_tensor_to(s0, "sim:1"); /* #4 */
    assert_non_null(s1);
    memset(out, 0, sizeof out);
    assert_int_equal(ferry_tensor_copy_to_host(s1, out, sizeof out), FERRY_OK);
    assert_memory_equal(out, data, sizeof out);
    ferry_tensor_release(s1);
    ferry_tensor_release(s0);
    free(data);
    expect_no_sim_memory_held();
}

static void test_sim_injected_failure_mid_staging_leaks_nothing(void **state)
{
    (void)state;
    use_opaque_plugin();
    const int64_t shape[1] = {(int64_t)(20 * MiB) + 3};
    size_t n = (size_t)shape[0];
    unsigned char *data = pattern(FERRY_UINT8, n, 9);

    /* sim -> fakeopaque: #1 is the upload, #2 the first 8 MiB chunk, #3 the second. */
    reload_sim(NULL, NULL, NULL, "3");
    ferry_tensor *s = ferry_tensor_from_data(data, FERRY_UINT8, 1, shape, "sim:0");
    assert_non_null(s);
    uint64_t cpu_before = allocated_on("cpu");
    assert_null(ferry_tensor_to(s, "fakeopaque:0"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_BACKEND);
    assert_string_equal(ferry_last_error(), "sim:0: injected failure in copy #3");
    assert_int_equal(allocated_on("fakeopaque:0"), 0);
    assert_int_equal(allocated_on("cpu"), cpu_before);
    unsigned char *out = malloc(n);
    assert_non_null(out);
    assert_int_equal(ferry_tensor_copy_to_host(s, out, n), FERRY_OK);
    assert_memory_equal(out, data, n);
    ferry_tensor_release(s);
    expect_no_sim_memory_held();

    /* fakeopaque -> sim: the sim side counts only the chunks it receives. */
    reload_sim(NULL, NULL, NULL, "2");
    ferry_tensor *o = ferry_tensor_from_data(data, FERRY_UINT8, 1, shape, "fakeopaque:0");
    assert_non_null(o);
    assert_null(ferry_tensor_to(o, "sim:1"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_BACKEND);
    assert_string_equal(ferry_last_error(), "sim:1: injected failure in copy #2");
    assert_int_equal(allocated_on("sim:1"), 0);
    memset(out, 0, n);
    assert_int_equal(ferry_tensor_copy_to_host(o, out, n), FERRY_OK);
    assert_memory_equal(out, data, n);
    ferry_tensor_release(o);
    free(out);
    free(data);
    expect_no_sim_memory_held();
}

static void test_sim_injected_alloc_failure_is_out_of_memory(void **state)
{
    (void)state;
    reload_sim(NULL, NULL, "1", NULL);
    const int64_t shape[1] = {64};
    double *data = pattern(FERRY_FLOAT64, 64, 4);
    ferry_tensor *src = ferry_tensor_from_data(data, FERRY_FLOAT64, 1, shape, "cpu");
    assert_non_null(src);

    assert_null(ferry_tensor_to(src, "sim:0"));
    /* The byte count is the allocator's rounded block size, so only the start is fixed. */
    assert_last_error(FERRY_ERR_OUT_OF_MEMORY, "sim:0: out of memory: injected failure in alloc #1 (");
    assert_int_equal(strncmp(ferry_last_error(), "sim:0: out of memory", 20), 0);
    assert_memory_equal(ferry_tensor_host_data(src), data, 64 * sizeof *data);
    ferry_memory_stats stats;
    assert_int_equal(ferry_memory_stats_get("sim:0", &stats), FERRY_OK);
    assert_int_equal(stats.allocated, 0);
    assert_int_equal(stats.backend_allocs, 0);

    ferry_tensor *s = ferry_tensor_to(src, "sim:0");
    assert_non_null(s);
    double out[64];
    assert_int_equal(ferry_tensor_copy_to_host(s, out, sizeof out), FERRY_OK);
    assert_memory_equal(out, data, sizeof out);
    ferry_tensor_release(s);

    reload_sim(NULL, NULL, "1", NULL);
    assert_null(ferry_zeros(FERRY_INT8, 1, shape, "sim:1"));
    assert_last_error(FERRY_ERR_OUT_OF_MEMORY, "sim:1: out of memory: injected failure in alloc #1");
    ferry_tensor_release(src);
    free(data);
    expect_no_sim_memory_held();
}

static void test_sim_memory_limit_gives_out_of_memory_and_frees_on_release(void **state)
{
    (void)state;
    reload_sim(NULL, "1048576", NULL, NULL);
    ferry_device_info info;
    assert_int_equal(ferry_device_get_info("sim:0", &info), FERRY_OK);
    assert_int_equal(info.total_memory, 1048576);
    assert_int_equal(info.free_memory, 1048576);

    const int64_t too_big[1] = {512 * 1024}; /* 2 MiB of float32 */
    assert_null(ferry_empty(FERRY_FLOAT32, 1, too_big, "sim:0"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_OUT_OF_MEMORY);
    assert_last_error(FERRY_ERR_OUT_OF_MEMORY, "sim:0: out of memory");

    const int64_t fits[1] = {64 * 1024}; /* 256 KiB */
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, fits, "sim:0");
    assert_non_null(t);
    assert_int_equal(ferry_device_get_info("sim:0", &info), FERRY_OK);
    assert_int_equal(info.free_memory, 1048576 - 256 * 1024);
    ferry_tensor_release(t);
    expect_no_sim_memory_held();
}

static void test_sim_out_of_memory_with_cached_blocks_retries_after_emptying(void **state)
{
    (void)state;
    reload_sim(NULL, "1048576", NULL, NULL);
    /* A freed 768 KiB block stays cached and is too wasteful to serve 512 KiB; the
     * device then has only 256 KiB free, so the first try fails and the core must give
     * the cache back and try again. */
    const int64_t big[1] = {192 * 1024};
    ferry_tensor *a = ferry_empty(FERRY_FLOAT32, 1, big, "sim:0");
    assert_non_null(a);
    ferry_tensor_release(a);
    const int64_t half[1] = {128 * 1024};
    ferry_tensor *b = ferry_ones(FERRY_FLOAT32, 1, half, "sim:0");
    if (!b)
        fail_msg("allocation after emptying the cache failed: %s", ferry_last_error());
    ferry_tensor_release(b);
    expect_no_sim_memory_held();
}

/* ---- threads ---- */

typedef struct worker {
    int id;
    int failures;
    char message[256];
} worker;

static void *sim_worker(void *arg)
{
    worker *w = arg;
    for (int iter = 0; iter < 20 && !w->failures; iter++) {
        const int64_t shape[1] = {(int64_t)(1 + (w->id * 977 + iter * 131) % 5000)};
        size_t n = (size_t)shape[0];
        int32_t *data = pattern(FERRY_INT32, n, (unsigned)(w->id * 100 + iter));
        const char *first = (w->id + iter) % 2 ? "sim:1" : "sim:0";
        const char *second = (w->id + iter) % 2 ? "sim:0" : "sim:1";
        ferry_tensor *a = ferry_tensor_from_data(data, FERRY_INT32, 1, shape, first);
        ferry_tensor *b = a ? ferry_tensor_to(a, second) : NULL;
        ferry_tensor *c = b ? ferry_tensor_cpu(b) : NULL;
        if (!c) {
            w->failures++;
            snprintf(w->message, sizeof w->message, "%s", ferry_last_error());
        } else if (memcmp(ferry_tensor_host_data(c), data, n * sizeof *data) != 0) {
            w->failures++;
            snprintf(w->message, sizeof w->message, "data differs after %s -> %s", first,
                     second);
        }
        ferry_tensor_release(c);
        ferry_tensor_release(b);
        ferry_tensor_release(a);
        free(data);
    }
    return NULL;
}

static void test_sim_concurrent_round_trips_from_four_threads_are_exact(void **state)
{
    (void)state;
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, sim_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        if (w[i].failures)
            fail_msg("thread %d: %s", i, w[i].message);
    expect_no_sim_memory_held();
}


/* ---- the plugin's own table, driven directly ---- */

static char host_message[512];
static ferry_status host_status;
static char log_message[512];
static ferry_log_level log_level;
static int log_count;

static ferry_status stand_in_error(ferry_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(host_message, sizeof host_message, fmt, ap);
    va_end(ap);
    host_status = status;
    return status;
}

static void stand_in_log(ferry_log_level level, const char *backend, const char *fmt, ...)
{
    if (level > FERRY_LOG_WARN)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_message, sizeof log_message, fmt, ap);
    va_end(ap);
    log_level = level;
    log_count++;
}

static const ferry_host_api stand_in_host = {
    .abi_major = FERRY_BACKEND_ABI_MAJOR,
    .abi_minor = FERRY_BACKEND_ABI_MINOR,
    .struct_size = sizeof(ferry_host_api),
    .error = stand_in_error,
    .log = stand_in_log,
};

/* The id inside a sim handle, decoded as sim.c encodes it (bits 4 and up, below the
 * non-canonical tag that 64-bit hosts carry in the top 12 bits). */
static size_t sim_id_of(const void *handle)
{
    uintptr_t v = (uintptr_t)handle >> 4;
    return (size_t)(UINTPTR_MAX > 0xFFFFFFFFu ? v & (((uintptr_t)1 << 48) - 1) : v);
}

typedef struct direct {
    void *dl;
    const ferry_backend_ops *ops;
    void *ctx; /* what sim's init returned */
} direct;

/* Opens the sim plugin as the core would, once the core has let go of it (no sim tensor
 * is alive between tests), so the table and counters are this test's alone. */
static int open_sim_directly(void **state)
{
    default_sim(NULL);
    static direct d;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/lib/ferry/libferry-backend-sim.so", build_dir());
    d.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!d.dl) {
        print_error("dlopen(%s): %s\n", path, dlerror());
        return -1;
    }
    ferry_backend_entry_fn entry;
    *(void **)&entry = dlsym(d.dl, FERRY_BACKEND_ENTRY_SYMBOL);
    d.ops = entry ? entry(&stand_in_host) : NULL;
    if (!d.ops) {
        print_error("sim's entry returned no table\n");
        return -1;
    }
    int32_t count = -1;
    char reason[64] = "untouched";
    d.ctx = NULL;
    if (d.ops->init(&d.ctx, &count, reason, sizeof reason) != FERRY_OK || count != 2) {
        print_error("sim init failed: %s\n", host_message);
        return -1;
    }
    if (strcmp(reason, "untouched") != 0) {
        print_error("sim init wrote a reason while reporting devices: %s\n", reason);
        return -1;
    }
    host_message[0] = log_message[0] = '\0';
    log_count = 0;
    *state = &d;
    return 0;
}

static int close_sim_directly(void **state)
{
    direct *d = *state;
    if (d && d->ops)
        d->ops->shutdown(d->ctx);
    if (d && d->dl)
        dlclose(d->dl);
    return 0;
}

#define expect_backend_error(call, text)                                                    \
    do {                                                                                    \
        host_message[0] = '\0';                                                             \
        assert_int_equal((call), FERRY_ERR_BACKEND);                                        \
        assert_int_equal(host_status, FERRY_ERR_BACKEND);                                   \
        if (!strstr(host_message, (text)))                                                  \
            fail_msg("\"%s\" does not contain \"%s\"", host_message, (text));               \
    } while (0)

static void test_sim_plugin_table_declares_required_entries_and_no_kernels(void **state)
{
    const ferry_backend_ops *ops = ((direct *)*state)->ops;
    assert_int_equal(ops->abi_major, FERRY_BACKEND_ABI_MAJOR);
    assert_int_equal(ops->abi_minor, FERRY_BACKEND_ABI_MINOR);
    assert_int_equal(ops->struct_size, sizeof(ferry_backend_ops));
    assert_string_equal(ops->name, "sim");
    assert_string_equal(ops->version, "0.1.0");
    assert_non_null(ops->copy_peer);
    /* Staging buffers, so the core's reuse of them is tested (tests/core/test_staging.c). */
    assert_non_null(ops->host_alloc);
    assert_non_null(ops->host_free);
    assert_null(ops->supports);
    assert_null(ops->fill);
    assert_null(ops->cast);
    assert_null(ops->copy_strided);
    assert_null(ops->unary);
    assert_null(ops->binary);
    assert_null(ops->reduce);
    assert_null(ops->matmul);
    assert_null(ops->get_kernel);
    assert_int_equal(ops->dlpack_device_type, 0);
}

static void test_sim_plugin_entry_refuses_a_host_of_another_major(void **state)
{
    direct *d = *state;
    ferry_backend_entry_fn entry;
    *(void **)&entry = dlsym(d->dl, FERRY_BACKEND_ENTRY_SYMBOL);
    ferry_host_api other = stand_in_host;
    other.abi_major = FERRY_BACKEND_ABI_MAJOR + 1;
    assert_null(entry(&other));
    assert_null(entry(NULL));
    assert_ptr_equal(entry(&stand_in_host), d->ops);
}

static void test_sim_plugin_handles_are_odd_ids_never_reused(void **state)
{
    const ferry_backend_ops *ops = ((direct *)*state)->ops;
    void *ctx = ((direct *)*state)->ctx;
    void *a, *b, *c;
    assert_int_equal(ops->alloc(ctx, 0, 64, &a), FERRY_OK);
    assert_int_equal(ops->alloc(ctx, 1, 64, &b), FERRY_OK);
    /* Not an aligned pointer: a core that dereferences one faults at once. */
    assert_int_equal((uintptr_t)a & 0xF, 1);
    assert_int_equal((uintptr_t)b & 0xF, 1);
    assert_ptr_not_equal(a, b);
    assert_int_equal(sim_id_of(b), sim_id_of(a) + 1);
    ops->free(ctx, 0, a);
    assert_int_equal(ops->alloc(ctx, 0, 64, &c), FERRY_OK);
    assert_int_equal(sim_id_of(c), sim_id_of(b) + 1);
    ops->free(ctx, 1, b);
    ops->free(ctx, 0, c);
    ops->free(ctx, 0, NULL);
    assert_int_equal(log_count, 0);
}

static void test_sim_plugin_copy_with_freed_or_unknown_id_fails_naming_it(void **state)
{
    const ferry_backend_ops *ops = ((direct *)*state)->ops;
    void *ctx = ((direct *)*state)->ctx;
    void *a;
    char buf[16] = {0};
    assert_int_equal(ops->alloc(ctx, 1, 16, &a), FERRY_OK);
    size_t id = sim_id_of(a);
    ops->free(ctx, 1, a);
    char text[128];
    snprintf(text, sizeof text, "sim:1: copy_to_host: invalid buffer id %zu (freed)", id);
    expect_backend_error(ops->copy_to_host(ctx, 1, buf, a, 0, 16), text);
    snprintf(text, sizeof text, "sim:1: copy_from_host: invalid buffer id %zu (freed)", id);
    expect_backend_error(ops->copy_from_host(ctx, 1, a, 0, buf, 16), text);

    /* Same layout as a real handle, with an id far past any allocated so far. */
    void *unknown = (void *)((uintptr_t)a + ((uintptr_t)100000 << 4));
    snprintf(text, sizeof text, "sim:0: copy_to_host: invalid buffer id %zu (never allocated)",
             id + 100000);
    expect_backend_error(ops->copy_to_host(ctx, 0, buf, unknown, 0, 4), text);
    expect_backend_error(ops->copy_to_host(ctx, 0, buf, buf, 0, 4),
                         "sim:0: copy_to_host: invalid buffer handle");
    expect_backend_error(ops->copy_to_host(ctx, 0, buf, NULL, 0, 4),
                         "sim:0: copy_to_host: invalid buffer handle");

    /* A double free cannot fail back, so it is logged as an error and changes nothing. */
    ops->free(ctx, 1, a);
    assert_int_equal(log_count, 1);
    assert_int_equal(log_level, FERRY_LOG_ERROR);
    snprintf(text, sizeof text, "sim:1: free: invalid buffer id %zu (freed)", id);
    assert_string_equal(log_message, text);
}

static void test_sim_plugin_copy_out_of_bounds_or_on_wrong_device_fails(void **state)
{
    const ferry_backend_ops *ops = ((direct *)*state)->ops;
    void *ctx = ((direct *)*state)->ctx;
    void *a, *b;
    char buf[64] = {0};
    assert_int_equal(ops->alloc(ctx, 0, 32, &a), FERRY_OK);
    assert_int_equal(ops->alloc(ctx, 1, 32, &b), FERRY_OK);
    expect_backend_error(ops->copy_from_host(ctx, 0, a, 1, buf, 32), "out of bounds");
    expect_backend_error(ops->copy_to_host(ctx, 0, buf, a, 33, 0), "out of bounds");
    expect_backend_error(ops->copy_to_host(ctx, 0, buf, a, SIZE_MAX, 2), "out of bounds");
    expect_backend_error(ops->copy_to_host(ctx, 0, buf, b, 0, 4), "belongs to sim:1");
    expect_backend_error(ops->copy_on_device(ctx, 0, a, 0, a, 8, 16), "overlap");
    expect_backend_error(ops->copy_peer(ctx, 1, b, 0, 0, a, 16, 17), "out of bounds");
    expect_backend_error(ops->copy_to_host(ctx, 2, buf, a, 0, 4), "invalid device index 2");
    expect_backend_error(ops->synchronize(ctx, -1), "invalid device index -1");

    /* The same calls in bounds move the bytes. */
    for (int i = 0; i < 32; i++)
        buf[i] = (char)(i + 1);
    assert_int_equal(ops->copy_from_host(ctx, 0, a, 0, buf, 32), FERRY_OK);
    assert_int_equal(ops->copy_on_device(ctx, 0, a, 0, a, 16, 16), FERRY_OK);
    assert_int_equal(ops->copy_peer(ctx, 1, b, 0, 0, a, 0, 32), FERRY_OK);
    char out[32];
    assert_int_equal(ops->copy_to_host(ctx, 1, out, b, 0, 32), FERRY_OK);
    for (int i = 0; i < 32; i++)
        assert_int_equal(out[i], (char)(i < 16 ? i + 17 : i + 1));
    assert_int_equal(ops->synchronize(ctx, 1), FERRY_OK);
    ops->free(ctx, 0, a);
    ops->free(ctx, 1, b);
}

static void test_sim_plugin_memory_accounting_and_leak_warning(void **state)
{
    const ferry_backend_ops *ops = ((direct *)*state)->ops;
    void *ctx = ((direct *)*state)->ctx;
    ferry_device_info info;
    assert_int_equal(ops->device_info(ctx, 1, &info), FERRY_OK);
    assert_false(info.host_accessible);
    uint64_t total = info.total_memory;
    assert_int_equal(info.free_memory, total);
    void *a;
    assert_int_equal(ops->alloc(ctx, 1, 1000, &a), FERRY_OK);
    assert_int_equal(ops->device_info(ctx, 1, &info), FERRY_OK);
    assert_int_equal(info.free_memory, total - 1000);
    void *huge;
    host_message[0] = '\0';
    assert_int_equal(ops->alloc(ctx, 1, (size_t)total, &huge), FERRY_ERR_OUT_OF_MEMORY);
    assert_null(huge);
    assert_int_equal(host_status, FERRY_ERR_OUT_OF_MEMORY);
    if (strncmp(host_message, "sim:1: out of memory: ", 22) != 0)
        fail_msg("unexpected message \"%s\"", host_message);
    expect_backend_error(ops->device_info(ctx, 2, &info), "invalid device index 2");

    /* Left allocated on purpose: shutdown frees it and says so. */
    (void)a;
    ops->shutdown(ctx);
    assert_int_equal(log_level, FERRY_LOG_WARN);
    assert_string_equal(log_message, "1 buffer(s), 1000 bytes, still allocated at shutdown");
    int32_t count;
    char reason[8];
    direct *d = *state;
    d->ctx = NULL;
    assert_int_equal(ops->init(&d->ctx, &count, reason, sizeof reason), FERRY_OK);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, default_sim)
    const struct CMUnitTest tests[] = {
        T(test_sim_round_trip_every_dtype_small_shapes_is_exact),
        T(test_sim_round_trip_zero_elements_gives_empty_tensor),
        T(test_sim_round_trip_larger_than_staging_chunk_is_exact),
        T(test_sim_peer_copy_between_devices_is_exact),
        T(test_sim_copy_to_another_opaque_backend_is_staged_exactly),
        T(test_sim_to_same_device_returns_the_tensor_itself),
        T(test_sim_host_data_is_refused_with_pytorch_message),
        T(test_sim_missing_index_is_invalid_device_with_count),
        T(test_sim_zero_devices_is_unavailable_with_reason),
        T(test_sim_invalid_settings_make_init_fail_with_the_variable_named),
        T(test_sim_factories_and_casts_run_through_cpu_fallback),
        T(test_sim_repr_names_the_device),
        T(test_sim_injected_upload_failure_reports_and_leaks_nothing),
        T(test_sim_injected_download_failure_keeps_the_device_tensor),
        T(test_sim_injected_copy_to_host_failure_returns_backend_error),
        T(test_sim_injected_peer_failure_leaves_both_devices_clean),
        T(test_sim_injected_failure_mid_staging_leaks_nothing),
        T(test_sim_injected_alloc_failure_is_out_of_memory),
        T(test_sim_memory_limit_gives_out_of_memory_and_frees_on_release),
        T(test_sim_out_of_memory_with_cached_blocks_retries_after_emptying),
        T(test_sim_concurrent_round_trips_from_four_threads_are_exact),
#define D(f) cmocka_unit_test_setup_teardown(f, open_sim_directly, close_sim_directly)
        D(test_sim_plugin_table_declares_required_entries_and_no_kernels),
        D(test_sim_plugin_entry_refuses_a_host_of_another_major),
        D(test_sim_plugin_handles_are_odd_ids_never_reused),
        D(test_sim_plugin_copy_with_freed_or_unknown_id_fails_naming_it),
        D(test_sim_plugin_copy_out_of_bounds_or_on_wrong_device_fails),
        D(test_sim_plugin_memory_accounting_and_leak_warning),
#undef D
    };
#undef T
    return cmocka_run_group_tests(tests, default_sim, default_sim);
}

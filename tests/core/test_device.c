/* Device strings and the device list: ferry_device_parse's grammar and PyTorch's messages,
 * ferry_device_format, counts, availability, ferry_devices and ferry_device_get_info on
 * cpu and the sim plugin (whose build puts it next to libferry.so). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ferry/ferry.h>

#define assert_last_error(code, text)                                                       \
    do {                                                                                    \
        assert_int_equal(ferry_last_status(), (code));                                      \
        if (!strstr(ferry_last_error(), (text)))                                            \
            fail_msg("last error \"%s\" does not contain \"%s\"", ferry_last_error(), (text)); \
    } while (0)

static const char *build_dir(void)
{
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir || dir[0] != '/')
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    return dir;
}

/* The tests below depend on the default search path alone: cpu built in, sim beside
 * libferry.so, no FERRY_* setting from the caller's shell. */
static int reset_registry(void **state)
{
    (void)state;
    unsetenv("FERRY_PLUGIN_PATH");
    unsetenv("FERRY_SIM_DEVICES");
    unsetenv("FERRY_SIM_MEMORY");
    unsetenv("FERRY_SIM_FAIL_ALLOC");
    unsetenv("FERRY_SIM_FAIL_COPY");
    ferry_shutdown();
    return 0;
}

static void expect_parse(const char *s, const char *type, int32_t index)
{
    ferry_device d;
    memset(&d, 0x55, sizeof d);
    if (ferry_device_parse(s, &d) != FERRY_OK)
        fail_msg("ferry_device_parse(\"%s\") failed: %s", s ? s : "(null)", ferry_last_error());
    assert_string_equal(d.type, type);
    assert_int_equal(d.index, index);
}

/* Every failure zeroes the output so a caller never sees half a device. */
static void expect_parse_error(const char *s, const char *message)
{
    ferry_device d;
    memset(&d, 0x55, sizeof d);
    ferry_status st = ferry_device_parse(s, &d);
    if (st != FERRY_ERR_INVALID_DEVICE)
        fail_msg("ferry_device_parse(\"%s\") returned %s, expected FERRY_ERR_INVALID_DEVICE", s,
                 ferry_status_name(st));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_DEVICE);
    if (strcmp(ferry_last_error(), message) != 0)
        fail_msg("ferry_device_parse(\"%s\"): message \"%s\", expected \"%s\"", s,
                 ferry_last_error(), message);
    assert_string_equal(d.type, "");
    assert_int_equal(d.index, 0);
}

static void expect_invalid_string(const char *s)
{
    char message[256];
    snprintf(message, sizeof message, "Invalid device string: '%s'", s);
    expect_parse_error(s, message);
}

static void test_device_parse_type_alone_means_index_zero(void **state)
{
    (void)state;
    expect_parse("cpu", "cpu", 0);
    expect_parse("cuda", "cuda", 0);
    expect_parse("opencl", "opencl", 0);
    expect_parse("sim", "sim", 0);
}

static void test_device_parse_type_and_index_gives_both(void **state)
{
    (void)state;
    expect_parse("cpu:0", "cpu", 0);
    expect_parse("cuda:1", "cuda", 1);
    expect_parse("opencl:10", "opencl", 10);
    expect_parse("cuda:2147483647", "cuda", INT32_MAX);
}

static void test_device_parse_index_beyond_devices_is_accepted(void **state)
{
    (void)state;
    /* Parsing checks syntax and the type; whether sim:7 exists is for the caller. */
    expect_parse("sim:7", "sim", 7);
}

static void test_device_parse_null_string_means_cpu(void **state)
{
    (void)state;
    expect_parse(NULL, "cpu", 0);
}

static void test_device_parse_empty_string_fails_with_pytorch_message(void **state)
{
    (void)state;
    expect_parse_error("", "Device string must not be empty");
}

static void test_device_parse_bad_index_fails_with_invalid_device_string(void **state)
{
    (void)state;
    expect_invalid_string("cuda:-1");
    expect_invalid_string("cuda:+1");
    expect_invalid_string("cuda:01");
    expect_invalid_string("cuda:00");
    expect_invalid_string("cuda:");
    expect_invalid_string("cuda:1a");
    expect_invalid_string("cuda:0x1");
    expect_invalid_string("cuda:1:2");
    expect_invalid_string("cuda:1.0");
}

static void test_device_parse_spaces_anywhere_fail_with_invalid_device_string(void **state)
{
    (void)state;
    expect_invalid_string(" cuda");
    expect_invalid_string("cuda ");
    expect_invalid_string("cuda: 1");
    expect_invalid_string("cuda :1");
    expect_invalid_string("cuda:1 ");
    expect_invalid_string("cu da");
    expect_invalid_string("cuda\n");
    expect_invalid_string("cuda\t:0");
}

static void test_device_parse_missing_type_fails_with_invalid_device_string(void **state)
{
    (void)state;
    expect_invalid_string(":0");
    expect_invalid_string(":");
    expect_invalid_string("0");
    expect_invalid_string("1cuda");
    expect_invalid_string("-cuda");
}

static void test_device_parse_index_past_int32_fails_with_invalid_device_string(void **state)
{
    (void)state;
    expect_invalid_string("cuda:2147483648");
    expect_invalid_string("cuda:4294967296");
    expect_invalid_string("cuda:99999999999999999999999999");
}

static void test_device_parse_unknown_type_lists_builtins_then_plugins(void **state)
{
    (void)state;
    expect_parse_error("xpu",
                       "Expected one of cpu, opencl, cuda, sim device type at start of device "
                       "string: xpu");
    expect_parse_error("xpu:0",
                       "Expected one of cpu, opencl, cuda, sim device type at start of device "
                       "string: xpu:0");
    expect_parse_error("abcdefghijklmno",
                       "Expected one of cpu, opencl, cuda, sim device type at start of device "
                       "string: abcdefghijklmno");
}

static void test_device_parse_uppercase_type_fails_naming_the_string(void **state)
{
    (void)state;
    const char *cases[] = {"CUDA", "Cuda:0", "CPU"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ferry_device d;
        assert_int_equal(ferry_device_parse(cases[i], &d), FERRY_ERR_INVALID_DEVICE);
        assert_last_error(FERRY_ERR_INVALID_DEVICE, cases[i]);
        assert_string_equal(d.type, "");
    }
}

static void test_device_parse_type_of_16_chars_fails_naming_the_string(void **state)
{
    (void)state;
    const char *cases[] = {"abcdefghijklmnop", "abcdefghijklmnop:0",
                           "averyveryverylongdevicetypename"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ferry_device d;
        assert_int_equal(ferry_device_parse(cases[i], &d), FERRY_ERR_INVALID_DEVICE);
        assert_last_error(FERRY_ERR_INVALID_DEVICE, cases[i]);
        assert_string_equal(d.type, "");
    }
}

static void test_device_parse_plugin_path_types_follow_builtins_in_search_order(void **state)
{
    (void)state;
    char path[PATH_MAX * 2 + 2];
    snprintf(path, sizeof path, "%s/fake_plugins/ok:%s/fake_plugins/old_minor", build_dir(),
             build_dir());
    setenv("FERRY_PLUGIN_PATH", path, 1);
    ferry_shutdown();
    expect_parse_error("xpu", "Expected one of cpu, opencl, cuda, fake, fakeold, sim device type "
                              "at start of device string: xpu");
    expect_parse("fakeold:0", "fakeold", 0);
    unsetenv("FERRY_PLUGIN_PATH");
    ferry_shutdown();
    expect_parse_error("fake", "Expected one of cpu, opencl, cuda, sim device type at start of "
                               "device string: fake");
}

static void test_device_parse_null_out_fails_with_invalid_argument(void **state)
{
    (void)state;
    assert_int_equal(ferry_device_parse("cpu", NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_device_parse");
}

static ferry_device make_device(const char *type, int32_t index)
{
    ferry_device d;
    memset(&d, 0, sizeof d);
    snprintf(d.type, sizeof d.type, "%s", type);
    d.index = index;
    return d;
}

static void test_device_format_writes_pytorch_spelling(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(ferry_device_format(make_device("cuda", 0), buf, sizeof buf), 6);
    assert_string_equal(buf, "cuda:0");
    assert_int_equal(ferry_device_format(make_device("sim", 12), buf, sizeof buf), 6);
    assert_string_equal(buf, "sim:12");
    assert_int_equal(ferry_device_format(make_device("opencl", 2147483647), buf, sizeof buf), 17);
    assert_string_equal(buf, "opencl:2147483647");
    /* PyTorch writes the host device without an index. */
    assert_int_equal(ferry_device_format(make_device("cpu", 0), buf, sizeof buf), 3);
    assert_string_equal(buf, "cpu");
}

static void test_device_format_parse_round_trip_is_identity(void **state)
{
    (void)state;
    const char *cases[] = {"cpu", "cuda:0", "cuda:3", "opencl:0", "sim:1", "sim:2147483647"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ferry_device d;
        char buf[32];
        assert_int_equal(ferry_device_parse(cases[i], &d), FERRY_OK);
        assert_int_equal(ferry_device_format(d, buf, sizeof buf), (int)strlen(cases[i]));
        assert_string_equal(buf, cases[i]);
    }
}

static void test_device_format_small_buffer_truncates_and_returns_full_length(void **state)
{
    (void)state;
    char buf[4];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(ferry_device_format(make_device("cuda", 12), buf, sizeof buf), 7);
    assert_string_equal(buf, "cud");
    assert_int_equal(ferry_device_format(make_device("cuda", 12), NULL, 0), 7);
    buf[0] = 'x';
    assert_int_equal(ferry_device_format(make_device("cuda", 12), buf, 0), 7);
    assert_int_equal(buf[0], 'x');
}

static void test_device_format_bad_device_returns_minus_one(void **state)
{
    (void)state;
    char buf[32];
    strcpy(buf, "junk");
    assert_int_equal(ferry_device_format(make_device("cuda", -1), buf, sizeof buf), -1);
    assert_string_equal(buf, "");
    assert_int_equal(ferry_device_format(make_device("", 0), buf, sizeof buf), -1);
    ferry_device unterminated;
    memset(unterminated.type, 'a', sizeof unterminated.type);
    unterminated.index = 0;
    assert_int_equal(ferry_device_format(unterminated, buf, sizeof buf), -1);
}

static void test_device_count_known_and_unknown_backends(void **state)
{
    (void)state;
    assert_int_equal(ferry_device_count("cpu"), 1);
    assert_int_equal(ferry_device_count("sim"), 2);
    assert_int_equal(ferry_device_count("xpu"), 0);
    assert_int_equal(ferry_device_count(""), 0);
    assert_int_equal(ferry_device_count("Sim"), 0);
    /* A type argument, like a device argument, means cpu when NULL. */
    assert_int_equal(ferry_device_count(NULL), ferry_device_count("cpu"));
}

static void test_device_is_available_matches_device_count(void **state)
{
    (void)state;
    assert_true(ferry_is_available("cpu"));
    assert_true(ferry_is_available("sim"));
    assert_false(ferry_is_available("xpu"));
    assert_false(ferry_is_available(""));
    const char *builtins[] = {"opencl", "cuda"};
    for (size_t i = 0; i < 2; i++) {
        bool available = ferry_is_available(builtins[i]);
        assert_int_equal(available, ferry_device_count(builtins[i]) > 0);
        /* Unavailable built-ins say why; available ones say nothing. */
        if (available)
            assert_null(ferry_backend_status(builtins[i]));
        else
            assert_non_null(ferry_backend_status(builtins[i]));
    }
}

static void test_device_backend_status_usable_backends_is_null(void **state)
{
    (void)state;
    assert_null(ferry_backend_status("cpu"));
    assert_null(ferry_backend_status("sim"));
    assert_non_null(ferry_backend_status("xpu"));
}

static void test_device_backend_list_starts_with_builtins_and_has_sim(void **state)
{
    (void)state;
    size_t n = ferry_backend_count();
    assert_true(n >= 4);
    assert_string_equal(ferry_backend_name(0), "cpu");
    assert_string_equal(ferry_backend_name(1), "opencl");
    assert_string_equal(ferry_backend_name(2), "cuda");
    bool has_sim = false;
    for (size_t i = 0; i < n; i++)
        has_sim |= strcmp(ferry_backend_name(i), "sim") == 0;
    assert_true(has_sim);
    assert_null(ferry_backend_name(n));
    assert_null(ferry_backend_name((size_t)-1));
}

static void test_device_backend_path_and_version_of_sim(void **state)
{
    (void)state;
    char expected[PATH_MAX];
    snprintf(expected, sizeof expected, "%s/lib/ferry/libferry-backend-sim.so", build_dir());
    char *want = realpath(expected, NULL);
    assert_non_null(want);
    const char *path = ferry_backend_path("sim");
    assert_non_null(path);
    char *got = realpath(path, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    free(want);
    assert_string_equal(ferry_backend_version("sim"), "0.1.0");
    assert_null(ferry_backend_path("xpu"));
    assert_null(ferry_backend_version("xpu"));
}

static void test_device_list_has_cpu_first_then_every_usable_device(void **state)
{
    (void)state;
    size_t total = ferry_devices(NULL, 0);
    size_t expected = (size_t)(ferry_device_count("cpu") + ferry_device_count("opencl") +
                               ferry_device_count("cuda") + ferry_device_count("sim"));
    assert_int_equal(total, expected);
    ferry_device *all = calloc(total + 1, sizeof *all);
    assert_non_null(all);
    memset(&all[total], 0x55, sizeof all[total]);
    assert_int_equal(ferry_devices(all, total), total);
    assert_string_equal(all[0].type, "cpu");
    assert_int_equal(all[0].index, 0);
    /* Past cap nothing is written. */
    assert_int_equal(((unsigned char *)&all[total])[0], 0x55);
    size_t sim_at = total;
    for (size_t i = 0; i < total; i++)
        if (strcmp(all[i].type, "sim") == 0) {
            sim_at = i;
            break;
        }
    assert_true(sim_at + 1 < total);
    assert_int_equal(all[sim_at].index, 0);
    assert_string_equal(all[sim_at + 1].type, "sim");
    assert_int_equal(all[sim_at + 1].index, 1);
    free(all);
}

static void test_device_list_small_cap_writes_only_cap_entries(void **state)
{
    (void)state;
    ferry_device two[2];
    memset(two, 0x55, sizeof two);
    size_t total = ferry_devices(two, 1);
    assert_true(total >= 3);
    assert_string_equal(two[0].type, "cpu");
    assert_int_equal(((unsigned char *)&two[1])[0], 0x55);
}

static void test_device_get_info_cpu_is_host_accessible(void **state)
{
    (void)state;
    ferry_device_info info;
    assert_int_equal(ferry_device_get_info("cpu", &info), FERRY_OK);
    assert_string_equal(info.backend, "cpu");
    assert_true(info.host_accessible);
    assert_true(info.name[0] != '\0');
    ferry_device_info by_null;
    assert_int_equal(ferry_device_get_info(NULL, &by_null), FERRY_OK);
    assert_string_equal(by_null.backend, "cpu");
    assert_string_equal(by_null.name, info.name);
}

static void test_device_get_info_sim_describes_a_discrete_device(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "sim:%d", i);
        ferry_device_info info;
        memset(&info, 0x55, sizeof info);
        assert_int_equal(ferry_device_get_info(dev, &info), FERRY_OK);
        assert_string_equal(info.name, "ferry simulated device");
        assert_string_equal(info.vendor, "ferry");
        assert_string_equal(info.backend, "sim");
        assert_string_equal(info.backend_version, "0.1.0");
        assert_string_equal(info.driver_version, "simulated");
        assert_int_equal(info.total_memory, (uint64_t)1 << 30);
        assert_true(info.free_memory <= info.total_memory);
        assert_false(info.host_accessible);
    }
}

static void test_device_get_info_missing_index_fails_with_device_count(void **state)
{
    (void)state;
    ferry_device_info info;
    memset(&info, 0x55, sizeof info);
    assert_int_equal(ferry_device_get_info("sim:2", &info), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Invalid device: sim:2 (sim has 2 devices)");
    assert_string_equal(info.name, "");
    assert_int_equal(ferry_device_get_info("cpu:1", &info), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Invalid device: cpu:1 (cpu has 1 device)");
}

static void test_device_get_info_bad_arguments_fail(void **state)
{
    (void)state;
    ferry_device_info info;
    assert_int_equal(ferry_device_get_info("sim:0", NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_device_get_info");
    assert_int_equal(ferry_device_get_info("", &info), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Device string must not be empty");
    assert_int_equal(ferry_device_get_info("xpu:0", &info), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE,
                      "Expected one of cpu, opencl, cuda, sim device type at start of device "
                      "string: xpu:0");
}

static void test_device_synchronize_checks_the_device(void **state)
{
    (void)state;
    assert_int_equal(ferry_synchronize(NULL), FERRY_OK);
    assert_int_equal(ferry_synchronize("cpu"), FERRY_OK);
    assert_int_equal(ferry_synchronize("sim:1"), FERRY_OK);
    assert_int_equal(ferry_synchronize("sim:2"), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Invalid device: sim:2 (sim has 2 devices)");
    assert_int_equal(ferry_synchronize("cuda:-1"), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Invalid device string: 'cuda:-1'");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, reset_registry)
    const struct CMUnitTest tests[] = {
        T(test_device_parse_type_alone_means_index_zero),
        T(test_device_parse_type_and_index_gives_both),
        T(test_device_parse_index_beyond_devices_is_accepted),
        T(test_device_parse_null_string_means_cpu),
        T(test_device_parse_empty_string_fails_with_pytorch_message),
        T(test_device_parse_bad_index_fails_with_invalid_device_string),
        T(test_device_parse_spaces_anywhere_fail_with_invalid_device_string),
        T(test_device_parse_missing_type_fails_with_invalid_device_string),
        T(test_device_parse_index_past_int32_fails_with_invalid_device_string),
        T(test_device_parse_unknown_type_lists_builtins_then_plugins),
        T(test_device_parse_uppercase_type_fails_naming_the_string),
        T(test_device_parse_type_of_16_chars_fails_naming_the_string),
        T(test_device_parse_plugin_path_types_follow_builtins_in_search_order),
        T(test_device_parse_null_out_fails_with_invalid_argument),
        T(test_device_format_writes_pytorch_spelling),
        T(test_device_format_parse_round_trip_is_identity),
        T(test_device_format_small_buffer_truncates_and_returns_full_length),
        T(test_device_format_bad_device_returns_minus_one),
        T(test_device_count_known_and_unknown_backends),
        T(test_device_is_available_matches_device_count),
        T(test_device_backend_status_usable_backends_is_null),
        T(test_device_backend_list_starts_with_builtins_and_has_sim),
        T(test_device_backend_path_and_version_of_sim),
        T(test_device_list_has_cpu_first_then_every_usable_device),
        T(test_device_list_small_cap_writes_only_cap_entries),
        T(test_device_get_info_cpu_is_host_accessible),
        T(test_device_get_info_sim_describes_a_discrete_device),
        T(test_device_get_info_missing_index_fails_with_device_count),
        T(test_device_get_info_bad_arguments_fail),
        T(test_device_synchronize_checks_the_device),
    };
#undef T
    return cmocka_run_group_tests(tests, reset_registry, reset_registry);
}

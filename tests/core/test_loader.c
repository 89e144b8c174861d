/* The plugin loader against every fake_backend variant: discovery on FERRY_PLUGIN_PATH,
 * the exact reason each broken plugin is refused, explicit ferry_plugin_load, the
 * never-the-current-directory rule, and plugins outliving ferry_shutdown() under tensors. */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <ferry/backend.h>
#include <ferry/ferry.h>

#define assert_last_error(code, text)                                                       \
    do {                                                                                    \
        assert_int_equal(ferry_last_status(), (code));                                      \
        if (!strstr(ferry_last_error(), (text)))                                            \
            fail_msg("last error \"%s\" does not contain \"%s\"", ferry_last_error(), (text)); \
    } while (0)

#define assert_contains(haystack, needle)                                                   \
    do {                                                                                    \
        const char *h_ = (haystack);                                                        \
        if (!h_ || !strstr(h_, (needle)))                                                   \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle));       \
    } while (0)

static const char *build_dir(void)
{
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir || dir[0] != '/')
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    return dir;
}

static const char *variant_dir(const char *variant)
{
    static char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s/fake_plugins/%s", build_dir(), variant);
    return buf;
}

static const char *plugin_file(const char *variant, const char *name)
{
    static char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s/fake_plugins/%s/libferry-backend-%s.so", build_dir(), variant,
             name);
    return buf;
}

static void use_plugin_path(const char *value)
{
    if (value)
        setenv("FERRY_PLUGIN_PATH", value, 1);
    else
        unsetenv("FERRY_PLUGIN_PATH");
    ferry_shutdown();
}

static int clean_registry(void **state)
{
    (void)state;
    unsetenv("FERRY_DEBUG");
    unsetenv("FERRY_SIM_DEVICES");
    unsetenv("FERRY_SIM_FAIL_ALLOC");
    unsetenv("FERRY_SIM_FAIL_COPY");
    use_plugin_path(NULL);
    return 0;
}

/* A small float32 tensor made on `device`, brought back, and compared. */
static void check_round_trip(const char *device)
{
    const float data[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e6f, -7.125f};
    const int64_t shape[2] = {2, 3};
    ferry_tensor *t = ferry_tensor_from_data(data, FERRY_FLOAT32, 2, shape, device);
    if (!t)
        fail_msg("ferry_tensor_from_data on %s failed: %s", device, ferry_last_error());
    ferry_device d = ferry_tensor_device(t);
    ferry_device want;
    assert_int_equal(ferry_device_parse(device, &want), FERRY_OK);
    assert_string_equal(d.type, want.type);
    assert_int_equal(d.index, want.index);

    float back[6];
    memset(back, 0, sizeof back);
    assert_int_equal(ferry_tensor_copy_to_host(t, back, sizeof back), FERRY_OK);
    assert_memory_equal(back, data, sizeof data);

    ferry_tensor *c = ferry_tensor_cpu(t);
    assert_non_null(c);
    const float *hc = ferry_tensor_host_data(c);
    assert_non_null(hc);
    assert_memory_equal(hc, data, sizeof data);
    ferry_tensor *again = ferry_tensor_to(c, device);
    assert_non_null(again);
    memset(back, 0, sizeof back);
    assert_int_equal(ferry_tensor_copy_to_host(again, back, sizeof back), FERRY_OK);
    assert_memory_equal(back, data, sizeof data);
    ferry_tensor_release(again);
    ferry_tensor_release(c);
    ferry_tensor_release(t);
}

/* Whatever a plugin does, the host device and the sim plugin beside libferry.so work. */
static void check_others_still_work(void)
{
    assert_null(ferry_backend_status("cpu"));
    check_round_trip("cpu");
    assert_true(ferry_is_available("sim"));
    check_round_trip("sim:0");
}

/* A plugin that was found but cannot be used: known as a type, unusable, and every use
 * of it fails with FERRY_ERR_UNAVAILABLE and exactly ferry_backend_status()'s text. */
static void check_unusable(const char *type, const char *reason_part)
{
    const char *status = ferry_backend_status(type);
    assert_non_null(status);
    char reason[2048];
    snprintf(reason, sizeof reason, "%s", status);
    assert_contains(reason, reason_part);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s: ", type);
    if (strncmp(reason, prefix, strlen(prefix)) != 0)
        fail_msg("status \"%s\" does not start with \"%s\"", reason, prefix);
    assert_false(ferry_is_available(type));
    assert_int_equal(ferry_device_count(type), 0);

    ferry_device d;
    assert_int_equal(ferry_device_parse(type, &d), FERRY_OK);
    size_t n = ferry_devices(NULL, 0);
    ferry_device *all = calloc(n + 1, sizeof *all);
    assert_non_null(all);
    ferry_devices(all, n);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(all[i].type, type);
    free(all);

    char device[32];
    snprintf(device, sizeof device, "%s:0", type);
    ferry_device_info info;
    assert_int_equal(ferry_device_get_info(device, &info), FERRY_ERR_UNAVAILABLE);
    assert_int_equal(ferry_last_status(), FERRY_ERR_UNAVAILABLE);
    assert_string_equal(ferry_last_error(), reason);

    const int64_t shape[1] = {4};
    ferry_tensor *c = ferry_ones(FERRY_FLOAT32, 1, shape, "cpu");
    assert_non_null(c);
    assert_null(ferry_tensor_to(c, device));
    assert_int_equal(ferry_last_status(), FERRY_ERR_UNAVAILABLE);
    assert_string_equal(ferry_last_error(), reason);
    assert_null(ferry_empty(FERRY_FLOAT32, 1, shape, device));
    assert_int_equal(ferry_last_status(), FERRY_ERR_UNAVAILABLE);
    ferry_tensor_release(c);
    check_others_still_work();
}

/* True when `s`, with every occurrence of `skip` blanked out, holds `n` as a whole number
 * (so digits inside a path cannot satisfy it). */
static bool has_number_outside(const char *s, const char *skip, unsigned n)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", s);
    size_t k = strlen(skip);
    for (char *p = k ? strstr(buf, skip) : NULL; p; p = strstr(p + k, skip))
        memset(p, ' ', k);
    for (const char *p = buf; *p;) {
        if (*p >= '0' && *p <= '9') {
            unsigned long v = strtoul(p, (char **)&p, 10);
            if (v == n)
                return true;
        } else {
            p++;
        }
    }
    return false;
}

/* True when `needle` occurs in `s` once every occurrence of `skip` is blanked out. */
static bool contains_outside(const char *s, const char *skip, const char *needle)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", s);
    size_t k = strlen(skip);
    for (char *p = k ? strstr(buf, skip) : NULL; p; p = strstr(p + k, skip))
        memset(p, ' ', k);
    return strstr(buf, needle) != NULL;
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        fail_msg("cannot open %s", from);
    FILE *out = fopen(to, "wb");
    if (!out)
        fail_msg("cannot create %s", to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* ---- FERRY_DEBUG ---- */

static void test_loader_debug_plugins_logs_candidate_paths(void **state)
{
    (void)state;
    char log_path[] = "/tmp/ferry-loader-log-XXXXXX";
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    setenv("FERRY_DEBUG", "plugins", 1);
    use_plugin_path(variant_dir("ok"));

    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fd, 2) >= 0);
    int count = ferry_device_count("fake");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unsetenv("FERRY_DEBUG");
    assert_int_equal(count, 1);

    char log[16384];
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, log, sizeof log - 1);
    close(fd);
    unlink(log_path);
    assert_true(n > 0);
    log[n] = '\0';
    assert_contains(log, variant_dir("ok"));
    assert_contains(log, plugin_file("ok", "fake"));
    /* The folder beside libferry.so is searched too, after FERRY_PLUGIN_PATH. */
    assert_contains(log, "/lib/ferry/libferry-backend-sim.so");
}

/* ---- discovery on FERRY_PLUGIN_PATH, one variant at a time ---- */

static void test_loader_ok_plugin_on_plugin_path_loads_and_works(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("ok"));
    assert_null(ferry_backend_status("fake"));
    assert_true(ferry_is_available("fake"));
    assert_int_equal(ferry_device_count("fake"), 1);
    assert_string_equal(ferry_backend_path("fake"), plugin_file("ok", "fake"));
    assert_string_equal(ferry_backend_version("fake"), "0.0.1");

    ferry_device_info info;
    assert_int_equal(ferry_device_get_info("fake:0", &info), FERRY_OK);
    assert_string_equal(info.name, "ferry fake device");
    assert_string_equal(info.backend, "fake");
    assert_true(info.host_accessible);

    check_round_trip("fake:0");
    check_round_trip("fake");

    /* Host-accessible: the core hands out the pointer itself. */
    const int32_t v[3] = {7, 8, 9};
    const int64_t shape[1] = {3};
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_INT32, 1, shape, "fake:0");
    assert_non_null(t);
    const int32_t *p = ferry_tensor_host_data(t);
    assert_non_null(p);
    assert_memory_equal(p, v, sizeof v);
    ferry_tensor_release(t);

    const int64_t one[1] = {1};
    assert_null(ferry_empty(FERRY_FLOAT32, 1, one, "fake:1"));
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Invalid device: fake:1 (fake has 1 device)");
    check_others_still_work();
}

static void test_loader_old_minor_plugin_loads_and_works_fully(void **state)
{
    (void)state;
    /* Its table ends at synchronize; the members after it are traps that abort. */
    use_plugin_path(variant_dir("old_minor"));
    assert_null(ferry_backend_status("fakeold"));
    assert_int_equal(ferry_device_count("fakeold"), 1);
    check_round_trip("fakeold:0");

    /* Ops the plugin cannot have (fill, cast) run through the core's CPU fallback. */
    const int64_t shape[2] = {3, 5};
    ferry_tensor *f = ferry_full(FERRY_FLOAT64, 2, shape, 2.5, "fakeold:0");
    assert_non_null(f);
    ferry_tensor *i = ferry_tensor_to_dtype(f, FERRY_INT16);
    assert_non_null(i);
    assert_string_equal(ferry_tensor_device(i).type, "fakeold");
    int16_t got[15];
    assert_int_equal(ferry_tensor_copy_to_host(i, got, sizeof got), FERRY_OK);
    for (int k = 0; k < 15; k++)
        assert_int_equal(got[k], 2);
    ferry_tensor *c = ferry_tensor_clone(f);
    assert_non_null(c);
    assert_string_equal(ferry_tensor_device(c).type, "fakeold");
    double d[15];
    assert_int_equal(ferry_tensor_copy_to_host(c, d, sizeof d), FERRY_OK);
    for (int k = 0; k < 15; k++)
        assert_true(d[k] == 2.5);

    /* fakeold <-> sim goes through host memory: no peer entry exists across backends. */
    ferry_tensor *s = ferry_tensor_to(c, "sim:1");
    assert_non_null(s);
    ferry_tensor *back = ferry_tensor_to(s, "fakeold");
    assert_non_null(back);
    memset(d, 0, sizeof d);
    assert_int_equal(ferry_tensor_copy_to_host(back, d, sizeof d), FERRY_OK);
    for (int k = 0; k < 15; k++)
        assert_true(d[k] == 2.5);
    ferry_tensor_release(back);
    ferry_tensor_release(s);
    ferry_tensor_release(c);
    ferry_tensor_release(i);
    ferry_tensor_release(f);
    check_others_still_work();
}

static void test_loader_abi_major_plugin_is_refused_naming_both_versions_and_path(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("abi_major"));
    const char *path = plugin_file("abi_major", "fakeabi");
    check_unusable("fakeabi", path);
    const char *status = ferry_backend_status("fakeabi");
    if (!has_number_outside(status, path, FERRY_BACKEND_ABI_MAJOR + 1) ||
        !has_number_outside(status, path, FERRY_BACKEND_ABI_MAJOR))
        fail_msg("\"%s\" does not name ABI majors %d and %d", status,
                 FERRY_BACKEND_ABI_MAJOR + 1, FERRY_BACKEND_ABI_MAJOR);
}

/* A newer minor only appends members: the core accepts such a table when it holds every
 * member the core knows, and uses those alone (the plugin's extra entries abort if
 * called). One that claims a newer minor yet is shorter than the core's table is broken
 * and refused with both versions named. */
static void test_loader_newer_minor_plugin_loads_and_uses_only_known_entries(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("new_minor"));
    assert_null(ferry_backend_status("fakenew"));
    assert_int_equal(ferry_device_count("fakenew"), 1);
    check_round_trip("fakenew:0");
    const int64_t shape[1] = {6};
    ferry_tensor *f = ferry_full(FERRY_FLOAT32, 1, shape, -3.75, "fakenew:0");
    assert_non_null(f);
    ferry_tensor *i = ferry_tensor_to_dtype(f, FERRY_INT8);
    assert_non_null(i);
    int8_t got[6];
    assert_int_equal(ferry_tensor_copy_to_host(i, got, sizeof got), FERRY_OK);
    for (int k = 0; k < 6; k++)
        assert_int_equal(got[k], -3);
    ferry_tensor_release(i);
    ferry_tensor_release(f);
    check_others_still_work();
}

static void test_loader_newer_minor_plugin_with_a_short_table_is_refused(void **state)
{
    (void)state;
    char newer[32], ours[32];
    snprintf(newer, sizeof newer, "ABI %d.%d", FERRY_BACKEND_ABI_MAJOR,
             FERRY_BACKEND_ABI_MINOR + 1);
    snprintf(ours, sizeof ours, "ABI %d.%d", FERRY_BACKEND_ABI_MAJOR, FERRY_BACKEND_ABI_MINOR);
    use_plugin_path(variant_dir("new_minor_short"));
    const char *path = plugin_file("new_minor_short", "fakenewshort");
    check_unusable("fakenewshort", path);
    assert_contains(ferry_backend_status("fakenewshort"), newer);
    assert_contains(ferry_backend_status("fakenewshort"), ours);

    use_plugin_path(NULL);
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    assert_int_equal(ferry_plugin_load(copy), FERRY_ERR_ABI);
    assert_last_error(FERRY_ERR_ABI, copy);
    assert_contains(ferry_last_error(), newer);
    assert_contains(ferry_last_error(), ours);
    ferry_device d;
    assert_int_equal(ferry_device_parse("fakenewshort", &d), FERRY_ERR_INVALID_DEVICE);
}

static void test_loader_plugin_without_entry_is_unavailable_naming_the_symbol(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("no_entry"));
    check_unusable("fakenoentry", "ferry_backend_entry");
    assert_contains(ferry_backend_status("fakenoentry"), plugin_file("no_entry", "fakenoentry"));
}

static void test_loader_init_failure_is_unavailable_with_driver_message(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("init_fail"));
    check_unusable("fakeinit", "fakeDriverError: the fake driver refused to start");
}

static void test_loader_zero_devices_reports_no_device_with_reason(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("zero_devices"));
    check_unusable("fakezero", "no device (fakeNoDevice: no fake device present)");
    assert_string_equal(ferry_backend_status("fakezero"),
                        "fakezero: no device (fakeNoDevice: no fake device present)");
}

static void test_loader_null_entry_is_unavailable_with_plugin_message(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("null_entry"));
    check_unusable("fakenull", "fakeEntryError: the fake plugin declined to register");
}

static void test_loader_invalid_claimed_name_is_unavailable_naming_it(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("bad_name"));
    check_unusable("fakebad", "Bad-Name!");
}

static void test_loader_file_claiming_another_name_is_unavailable_naming_both(void **state)
{
    (void)state;
    /* libferry-backend-fakedup.so says it is "fake": its file name cannot be trusted. */
    use_plugin_path(variant_dir("dup"));
    const char *path = plugin_file("dup", "fakedup");
    check_unusable("fakedup", path);
    /* "fakedup: " opens every status; past it and the path, the claimed name must appear. */
    const char *status = ferry_backend_status("fakedup") + strlen("fakedup: ");
    if (!contains_outside(status, path, "fake"))
        fail_msg("\"%s\" does not name the claimed type fake", status);
    ferry_device d;
    assert_int_equal(ferry_device_parse("fake", &d), FERRY_ERR_INVALID_DEVICE);
}

static void test_loader_not_a_library_is_unavailable_with_dlerror_text(void **state)
{
    (void)state;
    const char *path = plugin_file("not_a_library", "junk");
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_null(h);
    char expected[1024];
    snprintf(expected, sizeof expected, "%s", dlerror());
    use_plugin_path(variant_dir("not_a_library"));
    check_unusable("junk", expected);
}

static void test_loader_broken_plugins_do_not_hide_working_ones(void **state)
{
    (void)state;
    char path[PATH_MAX * 4];
    snprintf(path, sizeof path, "%s/fake_plugins/init_fail:%s/fake_plugins/not_a_library:"
             "%s/fake_plugins/ok:%s/fake_plugins/abi_major",
             build_dir(), build_dir(), build_dir(), build_dir());
    use_plugin_path(path);
    assert_false(ferry_is_available("fakeinit"));
    assert_false(ferry_is_available("junk"));
    assert_false(ferry_is_available("fakeabi"));
    assert_true(ferry_is_available("fake"));
    check_round_trip("fake:0");
    check_others_still_work();
    ferry_device d;
    assert_int_equal(ferry_device_parse("xpu", &d), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE,
                      "Expected one of cpu, opencl, cuda, fakeinit, junk, fake, fakeabi, sim "
                      "device type at start of device string: xpu");
}

static void test_loader_failed_load_is_remembered_until_shutdown(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("init_fail"));
    const char *first = ferry_backend_status("fakeinit");
    assert_non_null(first);
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", first);
    for (int i = 0; i < 3; i++) {
        assert_false(ferry_is_available("fakeinit"));
        assert_string_equal(ferry_backend_status("fakeinit"), copy);
    }
    /* After shutdown the type is forgotten with the path that named it. */
    use_plugin_path(NULL);
    ferry_device d;
    assert_int_equal(ferry_device_parse("fakeinit", &d), FERRY_ERR_INVALID_DEVICE);
}

/* ---- explicit ferry_plugin_load ---- */

static void test_loader_plugin_load_absolute_path_registers_its_type(void **state)
{
    (void)state;
    ferry_device d;
    assert_int_equal(ferry_device_parse("fake", &d), FERRY_ERR_INVALID_DEVICE);
    const char *path = plugin_file("ok", "fake");
    assert_int_equal(ferry_plugin_load(path), FERRY_OK);
    assert_int_equal(ferry_device_parse("fake:0", &d), FERRY_OK);
    assert_true(ferry_is_available("fake"));
    assert_string_equal(ferry_backend_path("fake"), path);
    check_round_trip("fake:0");
    /* Loading the very same file again is a no-op. */
    assert_int_equal(ferry_plugin_load(path), FERRY_OK);
    assert_int_equal(ferry_device_count("fake"), 1);
    assert_int_equal(ferry_device_parse("xpu", &d), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE, ", fake device type at start");
    check_others_still_work();
}

static void test_loader_plugin_load_file_already_found_on_path_is_ok(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("ok"));
    assert_int_equal(ferry_device_count("fake"), 1);
    assert_int_equal(ferry_plugin_load(plugin_file("ok", "fake")), FERRY_OK);
    assert_int_equal(ferry_device_count("fake"), 1);
    check_round_trip("fake:0");
}

static void test_loader_plugin_load_second_claim_on_a_name_is_refused(void **state)
{
    (void)state;
    assert_int_equal(ferry_plugin_load(plugin_file("ok", "fake")), FERRY_OK);
    char dup[PATH_MAX];
    snprintf(dup, sizeof dup, "%s", plugin_file("dup", "fakedup"));
    assert_int_equal(ferry_plugin_load(dup), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, dup);
    /* The name itself, not just the file that happens to contain it, is in the message. */
    if (!contains_outside(ferry_last_error(), dup, "fake"))
        fail_msg("\"%s\" does not name the type fake", ferry_last_error());
    /* The first claim is untouched. */
    assert_string_equal(ferry_backend_path("fake"), plugin_file("ok", "fake"));
    check_round_trip("fake:0");
}

static void test_loader_plugin_load_first_claim_wins_whichever_file_it_is(void **state)
{
    (void)state;
    /* The other order: fakedup.so claims "fake" first, and the genuine file is refused. */
    char dup[PATH_MAX], ok[PATH_MAX];
    snprintf(dup, sizeof dup, "%s", plugin_file("dup", "fakedup"));
    snprintf(ok, sizeof ok, "%s", plugin_file("ok", "fake"));
    assert_int_equal(ferry_plugin_load(dup), FERRY_OK);
    assert_string_equal(ferry_backend_path("fake"), dup);
    assert_int_equal(ferry_plugin_load(ok), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, ok);
    if (!contains_outside(ferry_last_error(), ok, "fake"))
        fail_msg("\"%s\" does not name the type fake", ferry_last_error());
    check_round_trip("fake:0");
}

static void test_loader_plugin_load_relative_or_null_path_is_invalid_argument(void **state)
{
    (void)state;
    assert_int_equal(ferry_plugin_load(NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_plugin_load");
    const char *relative[] = {"libferry-backend-fake.so", "./libferry-backend-fake.so",
                              "fake_plugins/ok/libferry-backend-fake.so", ""};
    for (size_t i = 0; i < sizeof relative / sizeof relative[0]; i++) {
        assert_int_equal(ferry_plugin_load(relative[i]), FERRY_ERR_INVALID_ARGUMENT);
        assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_plugin_load");
        assert_contains(ferry_last_error(), relative[i]);
    }
    ferry_device d;
    assert_int_equal(ferry_device_parse("fake", &d), FERRY_ERR_INVALID_DEVICE);
}

static void test_loader_plugin_load_missing_file_is_unavailable_with_dlerror(void **state)
{
    (void)state;
    const char *path = "/nonexistent-ferry-dir/libferry-backend-none.so";
    assert_null(dlopen(path, RTLD_NOW | RTLD_LOCAL));
    char expected[1024];
    snprintf(expected, sizeof expected, "%s", dlerror());
    assert_int_equal(ferry_plugin_load(path), FERRY_ERR_UNAVAILABLE);
    assert_last_error(FERRY_ERR_UNAVAILABLE, expected);
}

static void test_loader_plugin_load_broken_plugins_fail_with_their_reason(void **state)
{
    (void)state;
    const char *abi = plugin_file("abi_major", "fakeabi");
    char abi_path[PATH_MAX];
    snprintf(abi_path, sizeof abi_path, "%s", abi);
    assert_int_equal(ferry_plugin_load(abi_path), FERRY_ERR_ABI);
    assert_last_error(FERRY_ERR_ABI, abi_path);
    if (!has_number_outside(ferry_last_error(), abi_path, FERRY_BACKEND_ABI_MAJOR + 1) ||
        !has_number_outside(ferry_last_error(), abi_path, FERRY_BACKEND_ABI_MAJOR))
        fail_msg("\"%s\" does not name both ABI majors", ferry_last_error());

    const char *v1 = plugin_file("v1_major", "fakevonemajor");
    char v1_path[PATH_MAX];
    snprintf(v1_path, sizeof v1_path, "%s", v1);
    assert_int_equal(ferry_plugin_load(v1_path), FERRY_ERR_ABI);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "%s exports the ABI 1.x entry ferry_backend_entry, but its "
             "table claims ABI %d.%d", v1_path, FERRY_BACKEND_ABI_MAJOR,
             FERRY_BACKEND_ABI_MINOR);
    assert_last_error(FERRY_ERR_ABI, want);

    assert_int_equal(ferry_plugin_load(plugin_file("no_entry", "fakenoentry")),
                     FERRY_ERR_UNAVAILABLE);
    assert_last_error(FERRY_ERR_UNAVAILABLE,
                      "has no ferry_backend_entry2 symbol (nor the ABI 1.x "
                      "ferry_backend_entry): not a ferry backend plugin");

    assert_int_equal(ferry_plugin_load(plugin_file("null_entry", "fakenull")),
                     FERRY_ERR_UNAVAILABLE);
    assert_last_error(FERRY_ERR_UNAVAILABLE, "fakeEntryError");

    assert_int_equal(ferry_plugin_load(plugin_file("bad_name", "fakebad")),
                     FERRY_ERR_UNAVAILABLE);
    assert_last_error(FERRY_ERR_UNAVAILABLE, "Bad-Name!");

    const char *junk = plugin_file("not_a_library", "junk");
    assert_null(dlopen(junk, RTLD_NOW | RTLD_LOCAL));
    char expected[1024];
    snprintf(expected, sizeof expected, "%s", dlerror());
    assert_int_equal(ferry_plugin_load(junk), FERRY_ERR_UNAVAILABLE);
    assert_last_error(FERRY_ERR_UNAVAILABLE, expected);

    assert_int_equal(ferry_plugin_load(plugin_file("init_fail", "fakeinit")),
                     FERRY_ERR_UNAVAILABLE);
    assert_last_error(FERRY_ERR_UNAVAILABLE, "fakeDriverError: the fake driver refused to start");
    assert_false(ferry_is_available("fakeinit"));

    /* Loaded, but with nothing to offer: not an error, and the status says why. */
    assert_int_equal(ferry_plugin_load(plugin_file("zero_devices", "fakezero")), FERRY_OK);
    assert_false(ferry_is_available("fakezero"));
    assert_string_equal(ferry_backend_status("fakezero"),
                        "fakezero: no device (fakeNoDevice: no fake device present)");

    /* None of the refused ones took a name. */
    ferry_device d;
    assert_int_equal(ferry_device_parse("fakeabi", &d), FERRY_ERR_INVALID_DEVICE);
    assert_int_equal(ferry_device_parse("fakenull", &d), FERRY_ERR_INVALID_DEVICE);
    check_others_still_work();
}

/* ---- search path hygiene ---- */

static void test_loader_relative_path_entries_and_cwd_are_never_searched(void **state)
{
    (void)state;
    char tmp[] = "/tmp/ferry-loader-cwd-XXXXXX";
    assert_non_null(mkdtemp(tmp));
    char here[PATH_MAX], sub[PATH_MAX + 16], in_cwd[PATH_MAX + 64], in_sub[PATH_MAX + 64];
    snprintf(sub, sizeof sub, "%s/rel", tmp);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(in_cwd, sizeof in_cwd, "%s/libferry-backend-fakecwd.so", tmp);
    snprintf(in_sub, sizeof in_sub, "%s/rel/libferry-backend-fakecwd.so", tmp);
    copy_file(plugin_file("cwd", "fakecwd"), in_cwd);
    copy_file(plugin_file("cwd", "fakecwd"), in_sub);
    assert_non_null(getcwd(here, sizeof here));
    assert_int_equal(chdir(tmp), 0);

    /* Empty, ".", and relative entries around one absolute folder. */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, ":.:rel:./rel::%s:", variant_dir("ok"));
    use_plugin_path(path);
    ferry_device d;
    ferry_status st = ferry_device_parse("fakecwd", &d);
    char message[512];
    snprintf(message, sizeof message, "%s", ferry_last_error());
    const char *found = ferry_backend_path("fakecwd");
    bool usable = ferry_is_available("fakecwd");
    ferry_status rel_load = ferry_plugin_load("libferry-backend-fakecwd.so");
    bool fake_ok = ferry_is_available("fake");

    /* Without FERRY_PLUGIN_PATH the current directory is not a default either. */
    use_plugin_path(NULL);
    ferry_status st_default = ferry_device_parse("fakecwd", &d);

    assert_int_equal(chdir(here), 0);
    assert_int_equal(st, FERRY_ERR_INVALID_DEVICE);
    assert_string_equal(message, "Expected one of cpu, opencl, cuda, fake, sim device type at "
                                 "start of device string: fakecwd");
    assert_null(found);
    assert_false(usable);
    assert_int_equal(rel_load, FERRY_ERR_INVALID_ARGUMENT);
    assert_true(fake_ok);
    assert_int_equal(st_default, FERRY_ERR_INVALID_DEVICE);

    /* The same file from an absolute entry is a working plugin: the refusals above were
     * about where it was, not what it is. */
    use_plugin_path(tmp);
    assert_true(ferry_is_available("fakecwd"));
    check_round_trip("fakecwd:0");
    use_plugin_path(NULL);

    unlink(in_sub);
    unlink(in_cwd);
    rmdir(sub);
    rmdir(tmp);
}

/* ---- lifetime: tensors hold their plugin ---- */

static void test_loader_tensor_keeps_plugin_loaded_after_shutdown(void **state)
{
    (void)state;
    use_plugin_path(variant_dir("ok"));
    const double data[5] = {1, 2, 3, 4, 5};
    const int64_t shape[1] = {5};
    ferry_tensor *t = ferry_tensor_from_data(data, FERRY_FLOAT64, 1, shape, "fake:0");
    assert_non_null(t);

    use_plugin_path(NULL);
    ferry_device d;
    assert_int_equal(ferry_device_parse("fake", &d), FERRY_ERR_INVALID_DEVICE);
    /* The registry forgot "fake", but t still reaches its plugin's code and memory. */
    double back[5] = {0};
    assert_int_equal(ferry_tensor_copy_to_host(t, back, sizeof back), FERRY_OK);
    assert_memory_equal(back, data, sizeof data);
    const double *p = ferry_tensor_host_data(t);
    assert_non_null(p);
    assert_memory_equal(p, data, sizeof data);
    assert_string_equal(ferry_tensor_device(t).type, "fake");
    ferry_tensor *c = ferry_tensor_cpu(t);
    assert_non_null(c);
    assert_memory_equal(ferry_tensor_host_data(c), data, sizeof data);
    ferry_tensor *cl = ferry_tensor_clone(t);
    assert_non_null(cl);
    memset(back, 0, sizeof back);
    assert_int_equal(ferry_tensor_copy_to_host(cl, back, sizeof back), FERRY_OK);
    assert_memory_equal(back, data, sizeof data);

    /* Rediscovered while the old copy is alive: both work side by side. */
    use_plugin_path(variant_dir("ok"));
    ferry_tensor *t2 = ferry_tensor_to(c, "fake:0");
    assert_non_null(t2);
    ferry_tensor_release(t);
    ferry_tensor_release(cl);
    memset(back, 0, sizeof back);
    assert_int_equal(ferry_tensor_copy_to_host(t2, back, sizeof back), FERRY_OK);
    assert_memory_equal(back, data, sizeof data);
    ferry_tensor_release(t2);
    ferry_tensor_release(c);
}

static void test_loader_sim_tensor_survives_shutdown_and_a_second_load(void **state)
{
    (void)state;
    const int64_t data[4] = {10, -20, 30, INT64_MIN};
    const int64_t shape[1] = {4};
    ferry_tensor *t = ferry_tensor_from_data(data, FERRY_INT64, 1, shape, "sim:1");
    assert_non_null(t);
    ferry_shutdown();

    int64_t back[4] = {0};
    assert_int_equal(ferry_tensor_copy_to_host(t, back, sizeof back), FERRY_OK);
    assert_memory_equal(back, data, sizeof data);
    /* sim is loaded a second time (same library, new registry entry) and the two
     * instances exchange data through host memory. */
    ferry_tensor *t2 = ferry_tensor_to(t, "sim:0");
    assert_non_null(t2);
    ferry_tensor_release(t);
    memset(back, 0, sizeof back);
    assert_int_equal(ferry_tensor_copy_to_host(t2, back, sizeof back), FERRY_OK);
    assert_memory_equal(back, data, sizeof data);
    check_round_trip("sim:1");
    ferry_tensor_release(t2);
    ferry_shutdown();
    check_round_trip("sim:0");
}

/* After ferry_shutdown() with a sim tensor alive, the next registry lists a fresh sim
 * entry; loading it adopts the still-loaded earlier one and frees the fresh entry. A name
 * from ferry_backend_name() must survive that (ferry_devices and the pinned-memory lookup
 * read it after loading). */
static void test_loader_backend_name_outlives_adoption(void **state)
{
    (void)state;
    const int64_t shape[1] = {3};
    ferry_tensor *t = ferry_full(FERRY_INT32, 1, shape, 5, "sim:0");
    assert_non_null(t);
    ferry_shutdown();
    const char *name = NULL;
    for (size_t i = 0; ferry_backend_name(i); i++)
        if (strcmp(ferry_backend_name(i), "sim") == 0)
            name = ferry_backend_name(i);
    assert_non_null(name);
    assert_true(ferry_is_available(name)); /* loads: the adoption happens here */
    assert_string_equal(name, "sim");
    assert_true(ferry_device_count(name) > 0);
    ferry_device devs[64];
    size_t n = ferry_devices(devs, 64);
    bool listed = false;
    for (size_t i = 0; i < n && i < 64; i++)
        listed |= strcmp(devs[i].type, "sim") == 0;
    assert_true(listed);
    ferry_tensor_release(t);
    ferry_shutdown();
    check_round_trip("sim:0");
}

static void test_loader_dlpack_device_type_is_the_plugins_declaration(void **state)
{
    (void)state;
    /* The ok variant declares kDLExtDev (12) with address handles: its tensors export
     * under that type and import back to it without a copy, with no name known to the
     * core. */
    use_plugin_path(variant_dir("ok"));
    const int64_t shape[1] = {5};
    ferry_tensor *t = ferry_full(FERRY_INT32, 1, shape, 7, "fake:0");
    assert_non_null(t);
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_non_null(m);
    assert_int_equal(m->dl_tensor.device.device_type, 12);
    assert_int_equal(m->dl_tensor.device.device_id, 0);
    assert_ptr_equal(m->dl_tensor.data, ferry_tensor_host_data(t));
    ferry_tensor *back = ferry_tensor_from_dlpack(m);
    assert_non_null(back);
    assert_string_equal(ferry_tensor_device(back).type, "fake");
    assert_ptr_equal(ferry_tensor_host_data(back), ferry_tensor_host_data(t));
    int32_t got[5];
    assert_int_equal(ferry_tensor_copy_to_host(back, got, sizeof got), FERRY_OK);
    assert_int_equal(got[4], 7);
    ferry_tensor_release(back);
    ferry_tensor_release(t);

    /* An ABI 1.0 plugin declares nothing: its tensors refuse export, naming it. */
    use_plugin_path(variant_dir("abi_1_0"));
    ferry_tensor *o = ferry_zeros(FERRY_FLOAT32, 1, shape, "fakeonezero:0");
    assert_non_null(o);
    assert_null(ferry_tensor_to_dlpack(o));
    assert_int_equal(ferry_last_status(), FERRY_ERR_UNSUPPORTED);
    assert_non_null(strstr(ferry_last_error(), "fakeonezero:0 tensors cannot be exported"));
    ferry_tensor_release(o);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, clean_registry)
    const struct CMUnitTest tests[] = {
        T(test_loader_debug_plugins_logs_candidate_paths),
        T(test_loader_ok_plugin_on_plugin_path_loads_and_works),
        T(test_loader_old_minor_plugin_loads_and_works_fully),
        T(test_loader_abi_major_plugin_is_refused_naming_both_versions_and_path),
        T(test_loader_newer_minor_plugin_loads_and_uses_only_known_entries),
        T(test_loader_newer_minor_plugin_with_a_short_table_is_refused),
        T(test_loader_plugin_without_entry_is_unavailable_naming_the_symbol),
        T(test_loader_init_failure_is_unavailable_with_driver_message),
        T(test_loader_zero_devices_reports_no_device_with_reason),
        T(test_loader_null_entry_is_unavailable_with_plugin_message),
        T(test_loader_invalid_claimed_name_is_unavailable_naming_it),
        T(test_loader_file_claiming_another_name_is_unavailable_naming_both),
        T(test_loader_not_a_library_is_unavailable_with_dlerror_text),
        T(test_loader_broken_plugins_do_not_hide_working_ones),
        T(test_loader_failed_load_is_remembered_until_shutdown),
        T(test_loader_plugin_load_absolute_path_registers_its_type),
        T(test_loader_plugin_load_file_already_found_on_path_is_ok),
        T(test_loader_plugin_load_second_claim_on_a_name_is_refused),
        T(test_loader_plugin_load_first_claim_wins_whichever_file_it_is),
        T(test_loader_plugin_load_relative_or_null_path_is_invalid_argument),
        T(test_loader_plugin_load_missing_file_is_unavailable_with_dlerror),
        T(test_loader_plugin_load_broken_plugins_fail_with_their_reason),
        T(test_loader_relative_path_entries_and_cwd_are_never_searched),
        T(test_loader_tensor_keeps_plugin_loaded_after_shutdown),
        T(test_loader_sim_tensor_survives_shutdown_and_a_second_load),
        T(test_loader_backend_name_outlives_adoption),
        T(test_loader_dlpack_device_type_is_the_plugins_declaration),
    };
#undef T
    return cmocka_run_group_tests(tests, clean_registry, clean_registry);
}

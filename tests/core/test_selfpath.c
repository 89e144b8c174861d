/* libferry found through a relative path (LD_LIBRARY_PATH=.) by a program that changes
 * directory before its first ferry call: plugins must still come from the folder beside
 * libferry, and a plugin planted in the new current directory must never load. ctest
 * runs this from the build's lib/ folder with LD_LIBRARY_PATH=. and no RPATH. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static char planted[256];

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        fail_msg("cannot open %s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out)
        fail_msg("cannot create %s: %s", to, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static int plant_and_chdir(void **state)
{
    (void)state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    /* The loader must really have used a relative path, or this test proves nothing. */
    const char *ld = getenv("LD_LIBRARY_PATH");
    if (!ld || strcmp(ld, ".") != 0)
        fail_msg("run with LD_LIBRARY_PATH=. from the build's lib/ folder (got '%s')",
                 ld ? ld : "(unset)");
    snprintf(planted, sizeof planted, "/tmp/ferry-selfpath-XXXXXX");
    assert_non_null(mkdtemp(planted));
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s/ferry", planted);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(file, sizeof file, "%s/libferry-backend-fakecwd.so", dir);
    copy_file(FAKECWD_PLUGIN, file);
    assert_int_equal(chdir(planted), 0);
    return 0;
}

static int clean_up(void **state)
{
    (void)state;
    char file[600], dir[512];
    snprintf(dir, sizeof dir, "%s/ferry", planted);
    snprintf(file, sizeof file, "%s/libferry-backend-fakecwd.so", dir);
    unlink(file);
    rmdir(dir);
    assert_int_equal(chdir("/"), 0);
    rmdir(planted);
    return 0;
}

static void test_plugins_come_from_beside_libferry_after_chdir(void **state)
{
    (void)state;
    assert_int_equal(ferry_device_count("cpu"), 1);
    assert_null(ferry_backend_status("cpu"));
    int64_t two = 2;
    ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &two, "cpu");
    assert_tensor(t);
    ferry_tensor_release(t);
}

static void test_plugin_in_the_current_directory_is_never_loaded(void **state)
{
    (void)state;
    ferry_device d;
    assert_int_equal(ferry_device_parse("fakecwd", &d), FERRY_ERR_INVALID_DEVICE);
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "device type at start of device string: fakecwd");
    assert_int_equal(ferry_device_count("fakecwd"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugins_come_from_beside_libferry_after_chdir),
        cmocka_unit_test(test_plugin_in_the_current_directory_is_never_loaded),
    };
    return cmocka_run_group_tests(tests, plant_and_chdir, clean_up);
}

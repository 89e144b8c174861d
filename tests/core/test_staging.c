/* Pinned staging buffers are made once and reused by later staged copies, and given
 * back by ferry_empty_cache() and ferry_shutdown(). Copies between sim and the opaque
 * fake plugin (neither's memory is host memory, no peer path) are staged in buffers of
 * sim's host_alloc, which logs each call under FERRY_DEBUG=sim for this test to count. */
#include <fcntl.h>
#include <unistd.h>

#include "test_util.h"

static int log_fd = -1, saved_fd = -1;
static char log_path[64];

static void capture_begin(void)
{
    snprintf(log_path, sizeof log_path, "/tmp/ferry-staging-log-XXXXXX");
    log_fd = mkstemp(log_path);
    assert_true(log_fd >= 0);
    fflush(stderr);
    saved_fd = dup(2);
    assert_true(saved_fd >= 0 && dup2(log_fd, 2) >= 0);
}

/* Stops capturing; the number of lines holding `needle`. */
static int capture_count(const char *needle)
{
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    static char log[1 << 16];
    lseek(log_fd, 0, SEEK_SET);
    ssize_t n = read(log_fd, log, sizeof log - 1);
    close(log_fd);
    unlink(log_path);
    log[n > 0 ? n : 0] = '\0';
    int count = 0;
    for (const char *p = strstr(log, needle); p; p = strstr(p + 1, needle))
        count++;
    return count;
}

static int setup(void **state)
{
    (void)state;
    setenv("FERRY_DEBUG", "sim", 1);
    setenv("FERRY_STAGING_OVERLAP", "1", 1); /* the two-buffer pipeline, on any core count */
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir || dir[0] != '/')
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    char path[4096];
    snprintf(path, sizeof path, "%s/fake_plugins/opaque", dir);
    setenv("FERRY_PLUGIN_PATH", path, 1);
    ferry_shutdown();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("FERRY_DEBUG");
    unsetenv("FERRY_PLUGIN_PATH");
    unsetenv("FERRY_STAGING_OVERLAP");
    ferry_shutdown();
    return 0;
}

/* 20 MiB: three 8 MiB chunks through two buffers. */
#define N ((int64_t)5 << 20)

/* t holds 0 .. N - 1 (checked on the cpu, sampled). */
static void check_arange(ferry_tensor *t)
{
    ferry_tensor *back = ferry_tensor_to(t, "cpu");
    assert_tensor(back);
    const float *v = ferry_tensor_host_data(back);
    assert_non_null(v);
    for (int64_t i = 0; i < N; i += 4099)
        assert_true(v[i] == (float)i);
    assert_true(v[N - 1] == (float)(N - 1));
    ferry_tensor_release(back);
}

static void test_staging_buffers_are_reused_then_given_back(void **state)
{
    (void)state;
    require_backend("sim");
    require_backend("fakeopaque");
    ferry_tensor *h = ferry_arange(0, (double)N, 1, FERRY_FLOAT32, "cpu");
    assert_tensor(h);
    ferry_tensor *s = ferry_tensor_to(h, "sim:0"); /* from host memory: no staging */
    assert_tensor(s);

    capture_begin();
    ferry_tensor *a = ferry_tensor_to(s, "fakeopaque:0");
    int first = capture_count("host_alloc");
    assert_tensor(a);
    assert_int_equal(first, 2);

    capture_begin();
    ferry_tensor *b = ferry_tensor_to(a, "sim:1");
    ferry_tensor *c = ferry_tensor_to(s, "fakeopaque:0");
    int again = capture_count("host_alloc");
    assert_tensor(b);
    assert_tensor(c);
    assert_int_equal(again, 0);
    check_arange(b);

    capture_begin();
    assert_ok(ferry_empty_cache("sim:0"));
    int freed = capture_count("host_free");
    assert_int_equal(freed, 2);

    /* The next staged copy makes its buffers again, and shutdown gives them back. */
    capture_begin();
    ferry_tensor *d = ferry_tensor_to(s, "fakeopaque:0");
    int remade = capture_count("host_alloc");
    assert_tensor(d);
    assert_int_equal(remade, 2);
    ferry_tensor *ts[] = {a, b, c, d, s, h};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ferry_tensor_release(ts[i]);
    capture_begin();
    ferry_shutdown();
    assert_int_equal(capture_count("host_free"), 2);
}

/* Without a core per pipeline thread (FERRY_STAGING_OVERLAP=0 stands for a rank bound to
 * one core) one buffer takes every chunk through both legs in turn. */
static void test_staging_on_the_calling_thread_uses_one_buffer(void **state)
{
    (void)state;
    require_backend("sim");
    require_backend("fakeopaque");
    setenv("FERRY_STAGING_OVERLAP", "0", 1);
    ferry_tensor *h = ferry_arange(0, (double)N, 1, FERRY_FLOAT32, "cpu");
    assert_tensor(h);
    ferry_tensor *s = ferry_tensor_to(h, "sim:0");
    assert_tensor(s);
    capture_begin();
    ferry_tensor *a = ferry_tensor_to(s, "fakeopaque:0");
    ferry_tensor *b = a ? ferry_tensor_to(a, "sim:1") : NULL;
    int allocs = capture_count("host_alloc");
    assert_tensor(a);
    assert_tensor(b);
    assert_int_equal(allocs, 1);
    check_arange(b);
    ferry_tensor *ts[] = {a, b, s, h};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ferry_tensor_release(ts[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_staging_on_the_calling_thread_uses_one_buffer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_staging_buffers_are_reused_then_given_back, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

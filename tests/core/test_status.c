/* Status codes and the thread-local last error: every code's name and text, unknown
 * values, per-thread messages, and that success leaves the last failure in place. */
#include <pthread.h>
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

static void test_status_name_every_code_matches_its_enum_name(void **state)
{
    (void)state;
    assert_string_equal(ferry_status_name(FERRY_OK), "FERRY_OK");
    assert_string_equal(ferry_status_name(FERRY_ERR_INVALID_ARGUMENT), "FERRY_ERR_INVALID_ARGUMENT");
    assert_string_equal(ferry_status_name(FERRY_ERR_INVALID_DEVICE), "FERRY_ERR_INVALID_DEVICE");
    assert_string_equal(ferry_status_name(FERRY_ERR_UNAVAILABLE), "FERRY_ERR_UNAVAILABLE");
    assert_string_equal(ferry_status_name(FERRY_ERR_WRONG_DEVICE), "FERRY_ERR_WRONG_DEVICE");
    assert_string_equal(ferry_status_name(FERRY_ERR_OUT_OF_MEMORY), "FERRY_ERR_OUT_OF_MEMORY");
    assert_string_equal(ferry_status_name(FERRY_ERR_UNSUPPORTED), "FERRY_ERR_UNSUPPORTED");
    assert_string_equal(ferry_status_name(FERRY_ERR_BACKEND), "FERRY_ERR_BACKEND");
    assert_string_equal(ferry_status_name(FERRY_ERR_ABI), "FERRY_ERR_ABI");
    assert_string_equal(ferry_status_name(FERRY_ERR_INVALID_HANDLE), "FERRY_ERR_INVALID_HANDLE");
    assert_string_equal(ferry_status_name(FERRY_ERR_INDEX), "FERRY_ERR_INDEX");
}

static void test_status_values_are_the_abi_numbers(void **state)
{
    (void)state;
    /* Values cross the C ABI (and Python): a reordering must fail here. */
    assert_int_equal(FERRY_OK, 0);
    assert_int_equal(FERRY_ERR_INVALID_ARGUMENT, 1);
    assert_int_equal(FERRY_ERR_INVALID_DEVICE, 2);
    assert_int_equal(FERRY_ERR_UNAVAILABLE, 3);
    assert_int_equal(FERRY_ERR_WRONG_DEVICE, 4);
    assert_int_equal(FERRY_ERR_OUT_OF_MEMORY, 5);
    assert_int_equal(FERRY_ERR_UNSUPPORTED, 6);
    assert_int_equal(FERRY_ERR_BACKEND, 7);
    assert_int_equal(FERRY_ERR_ABI, 8);
    assert_int_equal(FERRY_ERR_INVALID_HANDLE, 9);
    assert_int_equal(FERRY_ERR_INDEX, 10);
}

static void test_status_string_every_code_matches_the_list_text(void **state)
{
    (void)state;
#define CHECK_TEXT_(name, value, text) assert_string_equal(ferry_status_string(FERRY_##name), text);
    FERRY_STATUS_LIST(CHECK_TEXT_)
#undef CHECK_TEXT_
    assert_string_equal(ferry_status_string(FERRY_OK), "success");
    assert_string_equal(ferry_status_string(FERRY_ERR_OUT_OF_MEMORY), "out of memory");
}

static void test_status_name_and_string_unknown_value_are_never_null(void **state)
{
    (void)state;
    const int bad[] = {-1, 11, 99, 1 << 20};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(ferry_status_name((ferry_status)bad[i]), "FERRY_UNKNOWN_STATUS");
        const char *text = ferry_status_string((ferry_status)bad[i]);
        assert_non_null(text);
        assert_true(text[0] != '\0');
    }
}

/* Each thread fails in its own way, waits until the other has failed too, and only then
 * reads its message: a shared buffer would show the other thread's text. */
typedef struct thread_case {
    const char *device;
    ferry_status expected_status;
    const char *expected_text;
    pthread_barrier_t *barrier;
    char seen_before[256];
    ferry_status seen_status_before;
    char seen[512];
    ferry_status seen_status;
    ferry_status returned;
} thread_case;

static void *fail_in_thread(void *arg)
{
    thread_case *c = arg;
    snprintf(c->seen_before, sizeof c->seen_before, "%s", ferry_last_error());
    c->seen_status_before = ferry_last_status();
    ferry_device d;
    c->returned = ferry_device_parse(c->device, &d);
    pthread_barrier_wait(c->barrier);
    snprintf(c->seen, sizeof c->seen, "%s", ferry_last_error());
    c->seen_status = ferry_last_status();
    return NULL;
}

static void test_last_error_two_threads_each_see_their_own_failure(void **state)
{
    (void)state;
    ferry_device d;
    /* The main thread's own message must survive what the workers do. */
    assert_int_equal(ferry_device_parse("cuda:-1", &d), FERRY_ERR_INVALID_DEVICE);

    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    thread_case cases[2] = {
        {.device = "", .expected_status = FERRY_ERR_INVALID_DEVICE,
         .expected_text = "Device string must not be empty", .barrier = &barrier},
        {.device = "cuda:01", .expected_status = FERRY_ERR_INVALID_DEVICE,
         .expected_text = "Invalid device string: 'cuda:01'", .barrier = &barrier},
    };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fail_in_thread, &cases[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);

    for (int i = 0; i < 2; i++) {
        /* A new thread starts with no failure recorded. */
        assert_string_equal(cases[i].seen_before, "");
        assert_int_equal(cases[i].seen_status_before, FERRY_OK);
        assert_int_equal(cases[i].returned, cases[i].expected_status);
        assert_int_equal(cases[i].seen_status, cases[i].expected_status);
        assert_string_equal(cases[i].seen, cases[i].expected_text);
    }
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Invalid device string: 'cuda:-1'");
}

static void test_last_error_success_does_not_clear_it(void **state)
{
    (void)state;
    ferry_device d;
    assert_int_equal(ferry_device_parse("", &d), FERRY_ERR_INVALID_DEVICE);
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Device string must not be empty");
    assert_int_equal(ferry_device_parse("cpu", &d), FERRY_OK);
    assert_string_equal(ferry_status_name(FERRY_OK), "FERRY_OK");
    assert_last_error(FERRY_ERR_INVALID_DEVICE, "Device string must not be empty");
}

static void test_last_error_next_failure_replaces_it(void **state)
{
    (void)state;
    ferry_device d;
    assert_int_equal(ferry_device_parse("", &d), FERRY_ERR_INVALID_DEVICE);
    assert_int_equal(ferry_device_parse(NULL, NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_ARGUMENT);
    assert_null(strstr(ferry_last_error(), "Device string must not be empty"));
}

/* Listing devices loads every plugin; one that cannot load (here: a file that is not a
 * library, from the fake plugins) must not overwrite the caller's last failure. */
static void test_last_error_survives_a_failed_plugin_load_in_a_successful_call(void **state)
{
    (void)state;
    const char *build = getenv("FERRY_TEST_BUILD_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fake_plugins/not_a_library", build ? build : ".");
    setenv("FERRY_PLUGIN_PATH", dir, 1);
    ferry_shutdown();
    ferry_device d;
    assert_int_equal(ferry_device_parse("cuda:-1", &d), FERRY_ERR_INVALID_DEVICE);
    char before[512];
    snprintf(before, sizeof before, "%s", ferry_last_error());
    assert_int_equal(ferry_device_count("junk"), 0);
    assert_non_null(ferry_backend_status("junk"));
    ferry_devices(NULL, 0);
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_DEVICE);
    assert_string_equal(ferry_last_error(), before);
    unsetenv("FERRY_PLUGIN_PATH");
    ferry_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_name_every_code_matches_its_enum_name),
        cmocka_unit_test(test_status_values_are_the_abi_numbers),
        cmocka_unit_test(test_status_string_every_code_matches_the_list_text),
        cmocka_unit_test(test_status_name_and_string_unknown_value_are_never_null),
        cmocka_unit_test(test_last_error_two_threads_each_see_their_own_failure),
        cmocka_unit_test(test_last_error_success_does_not_clear_it),
        cmocka_unit_test(test_last_error_next_failure_replaces_it),
        cmocka_unit_test(test_last_error_survives_a_failed_plugin_load_in_a_successful_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

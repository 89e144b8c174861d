/* Helpers shared by the CMocka tests: asserting a status together with its message, and
 * skipping with a printed reason. */
#ifndef FERRY_TEST_UTIL_H
#define FERRY_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ferry/ferry.h>

/* The call failed with exactly `status` and a message containing `needle`. */
#define assert_failed_with(status, needle)                                                  \
    do {                                                                                    \
        assert_int_equal(ferry_last_status(), (status));                                    \
        if (!strstr(ferry_last_error(), (needle)))                                          \
            fail_msg("message '%s' does not contain '%s'", ferry_last_error(), (needle));  \
    } while (0)

#define assert_status(expr, status, needle)                                                 \
    do {                                                                                    \
        ferry_status st_ = (expr);                                                          \
        assert_int_equal(st_, (status));                                                    \
        assert_failed_with((status), (needle));                                             \
    } while (0)

#define assert_ok(expr)                                                                     \
    do {                                                                                    \
        ferry_status st_ = (expr);                                                          \
        if (st_ != FERRY_OK)                                                                \
            fail_msg("%s failed: %s: %s", #expr, ferry_status_name(st_), ferry_last_error()); \
    } while (0)

#define assert_tensor(t)                                                                    \
    do {                                                                                    \
        if (!(t))                                                                           \
            fail_msg("%s returned NULL: %s: %s", #t, ferry_status_name(ferry_last_status()), \
                     ferry_last_error());                                                   \
    } while (0)

/* A skip that says why: CMocka prints only "[  SKIPPED ]". */
#define skip_because(...)                                                                   \
    do {                                                                                    \
        printf("[  SKIP    ] ");                                                            \
        printf(__VA_ARGS__);                                                                \
        printf("\n");                                                                       \
        skip();                                                                             \
    } while (0)

/* Whether this backend must be usable here, so that its absence fails instead of
 * skipping: FERRY_TEST_REQUIRE_BUILT lists what the build made (sim always is), and
 * FERRY_TEST_REQUIRE what a CI or GPU run demands (opencl in CI, cuda on a GPU). */
static inline bool ferry_test_required(const char *type)
{
    const char *vars[2] = {"FERRY_TEST_REQUIRE", "FERRY_TEST_REQUIRE_BUILT"};
    for (int i = 0; i < 2; i++) {
        const char *r = getenv(vars[i]);
        size_t n = strlen(type);
        for (const char *p = r ? strstr(r, type) : NULL; p; p = strstr(p + 1, type))
            if ((p == r || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
                return true;
    }
    return false;
}

/* Skips the current test, saying why, when the backend has no device. */
#define require_backend(type)                                                               \
    do {                                                                                    \
        if (!ferry_is_available(type)) {                                                    \
            if (ferry_test_required(type))                                                  \
                fail_msg("%s is required here (FERRY_TEST_REQUIRE) but unusable: %s", type, \
                         ferry_backend_status(type));                                       \
            skip_because("%s: %s", type, ferry_backend_status(type));                       \
        }                                                                                   \
    } while (0)

#endif /* FERRY_TEST_UTIL_H */

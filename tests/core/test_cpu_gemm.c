/* The cpu backend's choice between BLIS and OpenBLAS: calibrated once, cached on disk per
 * CPU model and thread count. Results under each forced
 * provider are checked by the conformance.matmul_* tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

static char dir[64];
static char path[128];

static void matmul_once(void)
{
    int64_t shape[2] = {32, 32};
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 2, shape, "cpu");
    ferry_tensor *c = ferry_matmul(a, a);
    assert_tensor(c);
    float v[32 * 32];
    assert_ok(ferry_tensor_copy_to_host(c, v, sizeof v));
    assert_true(v[0] == 32.0f && v[32 * 32 - 1] == 32.0f);
    ferry_tensor_release(c);
    ferry_tensor_release(a);
}

static bool openblas_installed(void)
{
    const char *const names[] = {"/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0",
                                 "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
                                 "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (access(names[i], R_OK) == 0)
            return true;
    return false;
}

static void test_calibration_is_cached_with_one_choice_per_size_class(void **state)
{
    (void)state;
    if (!openblas_installed())
        skip_because("OpenBLAS is not installed: the cpu backend uses BLIS without calibrating");
    matmul_once();
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no calibration cache at %s", path);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "v1|"));
    assert_non_null(strstr(line, "|f32 "));
    char c[3][16];
    const char *sp = strstr(line, "|f32 ") + 5;
    assert_int_equal(sscanf(sp, "%15s %15s %15s", c[0], c[1], c[2]), 3);
    for (int i = 0; i < 3; i++)
        assert_true(!strcmp(c[i], "blis") || !strcmp(c[i], "openblas"));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ferry-gemm-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/cpu-gemm.txt", dir);
    setenv("FERRY_CPU_CACHE_DIR", dir, 1);
    unsetenv("FERRY_CPU_GEMM");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calibration_is_cached_with_one_choice_per_size_class),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    rmdir(dir);
    return rc;
}

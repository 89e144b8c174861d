/* The cpu backend's choice between BLIS, OpenBLAS and its own packed kernels: calibrated
 * once, cached on disk per CPU model and thread count. Results under each forced
 * provider are checked by the conformance.matmul_* tests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static char dir[64];
static char path[128];

/* 160^3 multiply-adds: more than ferry's own small-product kernels take (128^3), so the
 * product reaches a library and with it the calibration. */
enum { SIDE = 160 };

/* Enough 1024^3 products to decide their class: three per provider, and one more. */
enum { TRIAL_PRODUCTS = 3 * 3 + 1 };

static void matmul_once(void)
{
    int64_t shape[2] = {SIDE, SIDE};
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 2, shape, "cpu");
    ferry_tensor *c = ferry_matmul(a, a);
    assert_tensor(c);
    static float v[SIDE * SIDE];
    assert_ok(ferry_tensor_copy_to_host(c, v, sizeof v));
    assert_true(v[0] == (float)SIDE && v[SIDE * SIDE - 1] == (float)SIDE);
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

static bool is_provider(const char *c)
{
    return !strcmp(c, "blis") || !strcmp(c, "openblas") || !strcmp(c, "ferry");
}

/* BLIS and at least one of OpenBLAS and ferry's own kernels (AVX2 + FMA or AVX-512):
 * otherwise there is nothing to calibrate. */
static bool two_providers(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return true;
#endif
    return openblas_installed();
}

static int cache_lines(void)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* The cache's last line, without its newline. */
static void last_line(char line[1024])
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no calibration cache at %s", path);
    char buf[1024];
    line[0] = '\0';
    while (fgets(buf, sizeof buf, f))
        snprintf(line, 1024, "%s", buf);
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
}

/* The five choices of a float32 line ("v4|model|...|f32 blis ferry openblas trial trial"). */
static int parse_line(const char *line, char c[5][16])
{
    if (strncmp(line, "v4|", 3) != 0 || !strstr(line, "|f32 "))
        return -1;
    return sscanf(strstr(line, "|f32 ") + 5, "%15s %15s %15s %15s %15s", c[0], c[1], c[2], c[3],
                  c[4]);
}

/* body(arg) in a fresh process (a fresh cpu backend), as a new user would run it. */
static void in_child(bool (*body)(int), int arg)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(body(arg) ? 0 : 1);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static bool one_product(int unused)
{
    (void)unused;
    int64_t shape[2] = {SIDE, SIDE};
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 2, shape, "cpu");
    ferry_tensor *c = a ? ferry_matmul(a, a) : NULL;
    static float v[SIDE * SIDE];
    /* Products may be deferred: reading the result makes sure it ran. */
    return c && ferry_tensor_copy_to_host(c, v, sizeof v) == FERRY_OK && v[0] == SIDE;
}

/* One float32 product in a fresh process. */
static void matmul_in_child(void)
{
    in_child(one_product, 0);
}

static void test_calibration_is_cached_with_one_choice_per_size_class(void **state)
{
    (void)state;
    if (!two_providers())
        skip_because("OpenBLAS is not installed and the CPU has no AVX2: the cpu backend uses "
                     "BLIS without calibrating");
    /* A calibration cut short by its time budget (other processes busy on every core) is
     * not cached, so a loaded machine gets a few tries. */
    for (int i = 0; i < 5 && cache_lines() == 0; i++)
        matmul_in_child();
    if (cache_lines() == 0)
        skip_because("5 calibrations in a row ran over their time budget (a loaded machine), "
                     "so none was cached");
    /* A later process reads the cache and appends nothing. */
    matmul_in_child();
    assert_int_equal(cache_lines(), 1);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no calibration cache at %s", path);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    char c[5][16];
    assert_int_equal(parse_line(line, c), 5);
    for (int i = 0; i < 3; i++)
        assert_true(is_provider(c[i]));
    /* The two largest classes wait for the program's own products; unless a provider
     * computed a wrong product, when they take the 512^3 class's choice. */
    assert_true((!strcmp(c[3], "trial") && !strcmp(c[4], "trial")) ||
                (!strcmp(c[3], c[2]) && !strcmp(c[4], c[2])));
}

/* A FERRY_CPU_GEMM the backend cannot honour: its warning, on stderr, and a right
 * product from the provider it falls back to. */
static const struct {
    const char *gemm, *small, *warning;
} fallback_cases[] = {
    {"ferry", "base",
     "FERRY_CPU_GEMM=ferry, but ferry's own kernels are off (they need AVX2 and FMA or "
     "AVX-512, and FERRY_CPU_SMALL_GEMM=base turns them off): using BLIS"},
    {"bogus", NULL, "FERRY_CPU_GEMM=bogus is not blis, openblas, ferry or auto: using auto"},
};

static char stderr_path[128];

static bool product_with_env(int i)
{
    setenv("FERRY_CPU_GEMM", fallback_cases[i].gemm, 1);
    if (fallback_cases[i].small)
        setenv("FERRY_CPU_SMALL_GEMM", fallback_cases[i].small, 1);
    if (!freopen(stderr_path, "w", stderr))
        return false;
    bool ok = one_product(0);
    fflush(stderr);
    return ok;
}

static void test_unusable_forced_provider_warns_and_falls_back(void **state)
{
    (void)state;
    snprintf(stderr_path, sizeof stderr_path, "%s/stderr.txt", dir);
    for (size_t i = 0; i < sizeof fallback_cases / sizeof fallback_cases[0]; i++) {
        in_child(product_with_env, (int)i);
        FILE *f = fopen(stderr_path, "r");
        assert_non_null(f);
        char buf[4096];
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        if (!strstr(buf, fallback_cases[i].warning))
            fail_msg("FERRY_CPU_GEMM=%s: no warning \"%s\" in stderr:\n%s",
                     fallback_cases[i].gemm, fallback_cases[i].warning, buf);
        unlink(stderr_path);
    }
}

/* In this process, after the children (OpenMP's worker pool does not survive fork): the
 * cache is read, whatever it holds, and nothing is appended. */
static void test_cache_is_read_in_process(void **state)
{
    (void)state;
    int before = cache_lines();
    matmul_once();
    assert_int_equal(cache_lines(), before);
}

/* `count` products of 1024^3 multiply-adds, whose class is decided by timing them. */
static bool large_products(int count)
{
    int64_t shape[2] = {1024, 1024};
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 2, shape, "cpu");
    ferry_tensor *c = a ? ferry_empty(FERRY_FLOAT32, 2, shape, "cpu") : NULL;
    bool ok = c != NULL;
    for (int i = 0; i < count && ok; i++)
        ok = ferry_matmul_out(c, a, a) == FERRY_OK;
    /* Products may be deferred: synchronizing makes sure they ran. */
    ok = ok && ferry_synchronize("cpu") == FERRY_OK;
    const float *v = ok ? ferry_tensor_host_data(c) : NULL;
    return v && v[0] == 1024.0f && v[1024 * 1024 - 1] == 1024.0f;
}

static void large_matmuls_in_child(int count)
{
    in_child(large_products, count);
}

static void test_largest_class_is_decided_by_the_first_products_and_cached(void **state)
{
    (void)state;
    if (!two_providers())
        skip_because("OpenBLAS is not installed and the CPU has no AVX2: the cpu backend uses "
                     "BLIS without calibrating");
    if (cache_lines() == 0)
        skip_because("no calibration was cached (a loaded machine, see the previous test)");
    char first[1024], last[1024], c[5][16], d[5][16];
    last_line(first);
    assert_int_equal(parse_line(first, c), 5);
    if (strcmp(c[3], "trial") != 0)
        skip_because("a provider computed a wrong product here, so the largest classes were "
                     "decided without trials");
    /* Three products of each provider (three at most), in turn, then one that uses the
     * winner. */
    large_matmuls_in_child(TRIAL_PRODUCTS);
    assert_int_equal(cache_lines(), 2);
    last_line(last);
    assert_int_equal(parse_line(last, d), 5);
    /* The same key, the calibrated classes as they were, the 1024^3 class decided and
     * the 2048^3 one still waiting for products of its size. */
    assert_int_equal(strcspn(first, " "), strcspn(last, " "));
    assert_memory_equal(first, last, strcspn(first, " "));
    for (int i = 0; i < 3; i++)
        assert_string_equal(c[i], d[i]);
    assert_true(is_provider(d[3]));
    assert_string_equal(d[4], "trial");
    /* A later process reads the decision: no trials, no new line. */
    large_matmuls_in_child(TRIAL_PRODUCTS);
    assert_int_equal(cache_lines(), 2);
    /* A corrupt line after it is passed over, not taken for a reason to calibrate. */
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fprintf(f, "%.*s blis bogus blis\n", (int)strcspn(last, " "), last);
    fclose(f);
    large_matmuls_in_child(1);
    matmul_in_child();
    assert_int_equal(cache_lines(), 3);
}

/* 4096-style batches of small products (ferry's own kernels, split over the threads),
 * float32 and float64, against products accumulated in double. */
static void test_batched_small_products_match_double_reference(void **state)
{
    (void)state;
    enum { NB = 64, M = 16, K = 16, N = 16 };
    static double av[NB * M * K], bv[NB * K * N];
    uint32_t seed = 12345;
    for (int i = 0; i < NB * M * K; i++) {
        seed = seed * 1664525u + 1013904223u;
        av[i] = (double)(seed >> 8) / 16777216.0 * 2.0 - 1.0;
        seed = seed * 1664525u + 1013904223u;
        bv[i] = (double)(seed >> 8) / 16777216.0 * 2.0 - 1.0;
    }
    static const ferry_dtype dts[2] = {FERRY_FLOAT32, FERRY_FLOAT64};
    for (int d = 0; d < 2; d++) {
        int64_t sa[3] = {NB, M, K}, sb[3] = {NB, K, N};
        ferry_tensor *a = ferry_empty(dts[d], 3, sa, "cpu");
        ferry_tensor *b = ferry_empty(dts[d], 3, sb, "cpu");
        assert_tensor(a);
        assert_tensor(b);
        void *pa = ferry_tensor_host_data(a), *pb = ferry_tensor_host_data(b);
        for (int i = 0; i < NB * M * K; i++) {
            if (dts[d] == FERRY_FLOAT32) {
                ((float *)pa)[i] = (float)av[i];
                ((float *)pb)[i] = (float)bv[i];
            } else {
                ((double *)pa)[i] = av[i];
                ((double *)pb)[i] = bv[i];
            }
        }
        ferry_tensor *c = ferry_matmul(a, b);
        assert_tensor(c);
        const void *pc = ferry_tensor_host_data(c);
        double eps = dts[d] == FERRY_FLOAT32 ? 1.2e-7 : 2.3e-16;
        for (int bi = 0; bi < NB; bi++)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double ref = 0, mag = 0;
                    for (int p = 0; p < K; p++) {
                        /* The operands as stored, so the reference sees ferry's inputs. */
                        double x = dts[d] == FERRY_FLOAT32 ? (double)(float)av[(bi * M + i) * K + p]
                                                           : av[(bi * M + i) * K + p];
                        double y = dts[d] == FERRY_FLOAT32 ? (double)(float)bv[(bi * K + p) * N + j]
                                                           : bv[(bi * K + p) * N + j];
                        ref += x * y;
                        mag += fabs(x * y);
                    }
                    int o = (bi * M + i) * N + j;
                    double got = dts[d] == FERRY_FLOAT32 ? (double)((const float *)pc)[o]
                                                         : ((const double *)pc)[o];
                    if (!(fabs(got - ref) <= (K + 1) * eps * mag))
                        fail_msg("%s batch %d [%d, %d]: %.17g, expected %.17g",
                                 dts[d] == FERRY_FLOAT32 ? "float32" : "float64", bi, i, j, got,
                                 ref);
                }
        ferry_tensor_release(c);
        ferry_tensor_release(a);
        ferry_tensor_release(b);
    }
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
        cmocka_unit_test(test_largest_class_is_decided_by_the_first_products_and_cached),
        cmocka_unit_test(test_unusable_forced_provider_warns_and_falls_back),
        cmocka_unit_test(test_cache_is_read_in_process),
        cmocka_unit_test(test_batched_small_products_match_double_reference),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    rmdir(dir);
    return rc;
}

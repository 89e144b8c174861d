/* The CPU backend's sort outside what the conformance suite compares: the LSD radix sort
 * of the other dtypes (radix_packed_par) gives the same values and indices on one
 * thread (FERRY_NUM_THREADS=1, in a child of this test) as on the several that ctest
 * asks for; and each scratch allocation that runs out fails the sort with
 * FERRY_ERR_OUT_OF_MEMORY and sort's message, leaving the input as it was and leaking
 * nothing. The allocations are made to fail in a child of this test: in a release build
 * through a preloaded malloc that refuses the backend's allocations one at a time
 * (malloc_cap.c), under AddressSanitizer through its own max_allocation_size_mb, which
 * refuses the large ones (a preloaded malloc cannot come before the sanitizer's). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* Under the sanitizer, allocations above CAP_MB - 1 MB fail in the out-of-memory child:
 * every case's scratch, and none of its tensors. */
#define CAP_MB 16

static char *self_exe;

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Runs this test again with `mode` as its argument and env (NAME=value, or NULL) added;
 * returns its exit status (-1 when it did not exit). */
static int run_child(const char *mode, const char *const *env)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execl(self_exe, self_exe, mode, (char *)NULL);
        perror("execl");
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- one thread or several: the same order ---- */

#define TN (1 << 20) /* above SORT_PAR_MIN: one row over all threads */

static const ferry_dtype thread_dtypes[] = {FERRY_INT16, FERRY_UINT8, FERRY_FLOAT16,
                                            FERRY_BFLOAT16, FERRY_INT8};
#define NTD (sizeof thread_dtypes / sizeof thread_dtypes[0])

/* Values and indices of a stable and an unstable sort of each dtype, appended to f.
 * The keys repeat (few distinct ones), so the order of equal keys shows. */
static void sort_all(FILE *f)
{
    for (size_t di = 0; di < NTD; di++) {
        ferry_dtype dt = thread_dtypes[di];
        int64_t n = TN;
        ferry_tensor *t = ferry_empty(dt, 1, &n, "cpu");
        assert_tensor(t);
        size_t es = ferry_dtype_size(dt);
        unsigned char *p = ferry_tensor_host_data(t);
        rng_state = 0x853c49e6748fea9bull + di;
        for (int64_t i = 0; i < n; i++) {
            uint16_t v = (uint16_t)(rng_next() % 61);
            if (dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16)
                v = (uint16_t)(0x3c00 + v * 3); /* positive, finite in both */
            memcpy(p + (size_t)i * es, &v, es);
        }
        for (int stable = 0; stable < 2; stable++) {
            ferry_tensor *v = NULL, *ix = NULL;
            assert_ok(ferry_sort(t, 0, stable == 0, stable, &v, &ix));
            assert_int_equal(fwrite(ferry_tensor_host_data(v), es, (size_t)n, f), (size_t)n);
            assert_int_equal(fwrite(ferry_tensor_host_data(ix), 8, (size_t)n, f), (size_t)n);
            ferry_tensor_release(v);
            ferry_tensor_release(ix);
        }
        ferry_tensor_release(t);
    }
}

static int child_threads(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 2;
    sort_all(f);
    return fclose(f) == 0 ? 0 : 2;
}

static void test_lsd_sort_same_on_one_thread(void **state)
{
    (void)state;
    char one[] = "/tmp/ferry_sort_1_XXXXXX", many[] = "/tmp/ferry_sort_n_XXXXXX";
    int f1 = mkstemp(one), fn = mkstemp(many);
    assert_true(f1 >= 0 && fn >= 0);
    close(f1);
    close(fn);
    FILE *f = fopen(many, "wb");
    assert_non_null(f);
    sort_all(f);
    assert_int_equal(fclose(f), 0);
    char env_path[64];
    snprintf(env_path, sizeof env_path, "FERRY_TEST_SORT_OUT=%s", one);
    const char *env[] = {"FERRY_NUM_THREADS=1", env_path, NULL};
    assert_int_equal(run_child("--child-threads", env), 0);
    FILE *a = fopen(one, "rb"), *b = fopen(many, "rb");
    assert_non_null(a);
    assert_non_null(b);
    long at = 0;
    for (;;) {
        int x = fgetc(a), y = fgetc(b);
        if (x != y)
            fail_msg("byte %ld differs between 1 thread and FERRY_NUM_THREADS=%s", at,
                     getenv("FERRY_NUM_THREADS") ? getenv("FERRY_NUM_THREADS") : "(default)");
        if (x == EOF)
            break;
        at++;
    }
    fclose(a);
    fclose(b);
    unlink(one);
    unlink(many);
}

/* ---- scratch that runs out ---- */

typedef struct oom_case {
    const char *name;
    ferry_dtype dt;
    int64_t rows, n;
    bool stable, indices;
    int zeros_pct; /* this share of the keys 0: one MSD bucket too large for a thread */
    bool release_only; /* a tensor of the case is over the sanitizer's cap too */
    /* What the sanitizer's cap leads to (the release build refuses each allocation in
     * turn and accepts any of sort's out-of-memory messages). */
    const char *message;
} oom_case;

static const oom_case oom_cases[] = {
    /* (key, index) pairs: 32 bytes of scratch a key. */
    {"float64, one row", FERRY_FLOAT64, 1, 1 << 20, true, true, 0, false,
     "sort: out of memory (1048576 elements)"},
    /* Packed words: 16 bytes a key. */
    {"int16, one row", FERRY_INT16, 1, 1572864, false, false, 0, false,
     "sort: out of memory (1572864 elements)"},
    /* Rows on threads, each with its own scratch. */
    {"float64, two rows", FERRY_FLOAT64, 2, 786432, true, true, 0, false,
     "sort: out of memory"},
    /* float32 with indices, its MSD bucket too large: the packed sort of the row. */
    {"float32 indices, crowded", FERRY_FLOAT32, 1, 1572864, true, true, 90, false,
     "sort: out of memory (1572864 elements)"},
    /* float32 values only, crowded: the three LSD passes' keys and scratch. */
    {"float32 values, crowded", FERRY_FLOAT32, 1, 1 << 22, false, false, 90, true,
     "sort: out of memory (4194304 elements)"},
};
#define NOOM (sizeof oom_cases / sizeof oom_cases[0])

/* Heap bytes in use (0 where the allocator does not say, as under the sanitizer, whose
 * leak check at the child's exit covers it). */
static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* The shim's controls (release builds). */
static void (*mc_arm)(const char *, long);
static long (*mc_seen)(void), (*mc_refused)(void);

/* A tensor of the case's keys and a copy of its bytes. */
static ferry_tensor *oom_input(const oom_case *c, int *nd, unsigned char **orig, size_t *bytes)
{
    int64_t shape[2] = {c->rows, c->n};
    *nd = c->rows > 1 ? 2 : 1;
    ferry_tensor *t = ferry_empty(c->dt, *nd, *nd == 2 ? shape : shape + 1, "cpu");
    assert_tensor(t);
    size_t es = ferry_dtype_size(c->dt);
    *bytes = (size_t)(c->rows * c->n) * es;
    unsigned char *p = ferry_tensor_host_data(t);
    for (size_t i = 0; i < *bytes; i++)
        p[i] = (unsigned char)rng_next();
    for (int64_t i = 0; c->zeros_pct && i < c->rows * c->n; i++)
        if ((int)(rng_next() % 100) < c->zeros_pct)
            memset(p + (size_t)i * es, 0, es);
    /* aligned_alloc: the sanitizer's cap is above the tensors' sizes. */
    *orig = aligned_alloc(64, (*bytes + 63) / 64 * 64);
    assert_non_null(*orig);
    memcpy(*orig, p, *bytes);
    return t;
}

/* One sort expected to run out: the status, sort's message, the input as it was. */
static void oom_expect_failure(const oom_case *c, ferry_tensor *t, int nd, ferry_status st,
                               const unsigned char *orig, size_t bytes, const char *needle)
{
    if (st != FERRY_ERR_OUT_OF_MEMORY)
        fail_msg("%s: sort returned %s (%s), not FERRY_ERR_OUT_OF_MEMORY", c->name,
                 ferry_status_name(st), ferry_last_error());
    assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, needle);
    (void)nd;
    if (memcmp(ferry_tensor_host_data(t), orig, bytes) != 0)
        fail_msg("%s: the input changed", c->name);
}

static ferry_status oom_sort(const oom_case *c, ferry_tensor *t, int nd)
{
    ferry_tensor *v = NULL, *ix = NULL;
    ferry_status st = ferry_sort(t, nd - 1, false, c->stable, &v, c->indices ? &ix : NULL);
    ferry_tensor_release(v);
    ferry_tensor_release(ix);
    return st;
}

/* Release build: every allocation the cpu module makes during the sort refused in turn.
 * A refusal the sort absorbs (the parallel radix sort's counters: it then sorts on one
 * thread) must leave it correct; any other must fail it. Two passes: the heap in use
 * after each failure of the second must not exceed what the first left. */
static void oom_each_allocation(const oom_case *c)
{
    int nd;
    unsigned char *orig;
    size_t bytes;
    ferry_tensor *t = oom_input(c, &nd, &orig, &bytes);
    mc_arm("libferry-backend-cpu", LONG_MAX);
    assert_ok(oom_sort(c, t, nd));
    long count = mc_seen();
    mc_arm("libferry-backend-cpu", 0);
    if (count < 1)
        fail_msg("%s: the sort allocated nothing in the cpu module", c->name);
    size_t high = 0;
    int failures = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (long k = 1; k <= count; k++) {
            mc_arm("libferry-backend-cpu", k);
            ferry_status st = oom_sort(c, t, nd);
            bool refused = mc_refused() > 0;
            mc_arm("libferry-backend-cpu", 0);
            if (!refused)
                fail_msg("%s: allocation %ld of %ld was not made", c->name, k, count);
            if (st == FERRY_OK) {
                if (memcmp(ferry_tensor_host_data(t), orig, bytes) != 0)
                    fail_msg("%s: the input changed", c->name);
                continue;
            }
            oom_expect_failure(c, t, nd, st, orig, bytes, "sort: out of memory");
            failures++;
            size_t now = heap_in_use();
            if (pass == 0 && now > high)
                high = now;
            if (pass == 1 && now > high)
                fail_msg("%s: allocation %ld refused: %zu heap bytes in use, %zu before",
                         c->name, k, now, high);
        }
    }
    if (failures == 0)
        fail_msg("%s: no refused allocation failed the sort", c->name);
    free(orig);
    ferry_tensor_release(t);
}

/* Under the sanitizer: every allocation of CAP_MB or more refused, so the case's scratch
 * and nothing else; its leak check at the child's exit covers the failure paths. */
static void oom_over_cap(const oom_case *c)
{
    int nd;
    unsigned char *orig;
    size_t bytes;
    ferry_tensor *t = oom_input(c, &nd, &orig, &bytes);
    for (int round = 0; round < 2; round++)
        oom_expect_failure(c, t, nd, oom_sort(c, t, nd), orig, bytes, c->message);
    free(orig);
    ferry_tensor_release(t);
}

static int child_oom(void)
{
    if (!UNDER_ASAN) {
        mc_arm = (void (*)(const char *, long))dlsym(RTLD_DEFAULT, "ferry_malloccap_arm");
        mc_seen = (long (*)(void))dlsym(RTLD_DEFAULT, "ferry_malloccap_seen");
        mc_refused = (long (*)(void))dlsym(RTLD_DEFAULT, "ferry_malloccap_refused");
        if (!mc_arm || !mc_seen || !mc_refused) {
            fprintf(stderr, "the malloc shim is not preloaded\n");
            return 3;
        }
    }
    for (size_t i = 0; i < NOOM; i++) {
        if (UNDER_ASAN && !oom_cases[i].release_only)
            oom_over_cap(&oom_cases[i]);
        else if (!UNDER_ASAN)
            oom_each_allocation(&oom_cases[i]);
    }
    return 0;
}

static void test_scratch_out_of_memory(void **state)
{
    (void)state;
    char opts[4096], preload[4096];
    const char *env[2] = {NULL, NULL};
    if (UNDER_ASAN) {
        const char *old = getenv("ASAN_OPTIONS");
        snprintf(opts, sizeof opts,
                 "ASAN_OPTIONS=%s%sallocator_may_return_null=1:max_allocation_size_mb=%d",
                 old ? old : "", old && *old ? ":" : "", CAP_MB - 1);
        env[0] = opts;
    } else {
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s", FERRY_TEST_MALLOCCAP_LIB);
        env[0] = preload;
    }
    assert_int_equal(run_child("--child-oom", env), 0);
}

/* cmocka's failures in a child go to its output and make it exit nonzero. */
static void child_test_threads(void **state)
{
    (void)state;
    assert_int_equal(child_threads(getenv("FERRY_TEST_SORT_OUT")), 0);
}

static void child_test_oom(void **state)
{
    (void)state;
    assert_int_equal(child_oom(), 0);
}

int main(int argc, char **argv)
{
    self_exe = realpath("/proc/self/exe", NULL);
    if (!self_exe)
        return 1;
    if (argc > 1 && !strcmp(argv[1], "--child-threads")) {
        const struct CMUnitTest t[] = {cmocka_unit_test(child_test_threads)};
        return cmocka_run_group_tests_name("sort on one thread (child)", t, NULL, NULL);
    }
    if (argc > 1 && !strcmp(argv[1], "--child-oom")) {
        /* The cap stays with this process: the ones it starts get none. */
        unsetenv("LD_PRELOAD");
        const struct CMUnitTest t[] = {cmocka_unit_test(child_test_oom)};
        return cmocka_run_group_tests_name("sort out of memory (child)", t, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lsd_sort_same_on_one_thread),
        cmocka_unit_test(test_scratch_out_of_memory),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    free(self_exe);
    return r;
}

/* Concurrency: eight threads load backends for the first time and move tensors between
 * devices at once; loading must happen exactly once and every result must be right.
 * The fakecount plugin (tests/fake_backend, FAKE_COUNT_INIT) counts its init calls and
 * shows the count in its device name, so "exactly once" is measured, not assumed. */
#include <pthread.h>
#include <stdlib.h>

#include "test_util.h"

#define NTHREADS 8
#define ROUNDS 40

typedef struct {
    int id;
    int failures;
    char message[256];
} worker;

static pthread_barrier_t start;

static void *work(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(&start); /* all threads hit the unloaded registry together */
    /* First use of fakecount, from every thread at once: a copy there and back (the
     * plugin has copies only, no kernels). */
    int64_t four = 4;
    const int32_t vals[4] = {w->id, 1, 2, 3};
    int32_t got[4] = {0};
    ferry_tensor *f = ferry_tensor_from_data(vals, FERRY_INT32, 1, &four, "fakecount:0");
    if (!f || ferry_tensor_copy_to_host(f, got, sizeof got) != FERRY_OK ||
        memcmp(got, vals, sizeof got) != 0) {
        w->failures++;
        snprintf(w->message, sizeof w->message, "fakecount:0 round trip: %s",
                 f ? "values differ" : ferry_last_error());
    }
    ferry_tensor_release(f);
    bool sim = ferry_is_available("sim");
    const char *devs[] = {"cpu", "sim:0", "sim:1"};
    int ndev = sim ? 3 : 1;
    int64_t n = 257 + w->id;
    int32_t *src = malloc((size_t)n * sizeof *src);
    int32_t *out = malloc((size_t)n * sizeof *out);
    for (int r = 0; r < ROUNDS && !w->failures; r++) {
        for (int64_t i = 0; i < n; i++)
            src[i] = (int32_t)(w->id * 100000 + r * 1000 + i);
        ferry_tensor *t = ferry_tensor_from_data(src, FERRY_INT32, 1, &n, devs[r % ndev]);
        ferry_tensor *u = t ? ferry_tensor_to(t, devs[(r + 1) % ndev]) : NULL;
        ferry_tensor *v = u ? ferry_tensor_to_dtype(u, FERRY_INT64) : NULL;
        ferry_tensor *x = v ? ferry_tensor_to_dtype(v, FERRY_INT32) : NULL;
        if (!x || ferry_tensor_copy_to_host(x, out, (size_t)n * sizeof *out) != FERRY_OK) {
            w->failures++;
            snprintf(w->message, sizeof w->message, "round %d: %s", r, ferry_last_error());
        } else {
            for (int64_t i = 0; i < n; i++)
                if (out[i] != src[i]) {
                    w->failures++;
                    snprintf(w->message, sizeof w->message, "round %d: element %lld differs", r,
                             (long long)i);
                    break;
                }
        }
        ferry_tensor_release(x);
        ferry_tensor_release(v);
        ferry_tensor_release(u);
        ferry_tensor_release(t);
    }
    free(src);
    free(out);
    return NULL;
}

static void test_threads_load_backends_and_move_tensors_concurrently(void **state)
{
    (void)state;
    ferry_shutdown(); /* start from an unloaded registry */
    pthread_t threads[NTHREADS];
    worker workers[NTHREADS];
    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        workers[i] = (worker){.id = i};
        assert_int_equal(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NTHREADS; i++)
        if (workers[i].failures)
            fail_msg("thread %d: %s", i, workers[i].message);
    if (!ferry_is_available("sim"))
        printf("[  NOTE    ] sim unavailable (%s): threads used the cpu only\n",
               ferry_backend_status("sim"));
    ferry_memory_stats s;
    assert_ok(ferry_memory_stats_get("cpu", &s));
    assert_int_equal(s.allocated, 0);
    ferry_device_info info;
    assert_ok(ferry_device_get_info("fakecount:0", &info));
    if (!strstr(info.name, "(init calls: 1)"))
        fail_msg("fakecount's init ran other than once under concurrent first use: %s",
                 info.name);
}

/* Small cpu tensors from many threads at once: blocks carved from shared slabs, freed
 * and reused across threads, each value its own. */
#define SMALL_LIVE 3000

static void *small_work(void *arg)
{
    worker *w = arg;
    ferry_tensor **keep = malloc(sizeof *keep * SMALL_LIVE);
    int64_t one = 1;
    pthread_barrier_wait(&start);
    for (int r = 0; r < 4 && keep && !w->failures; r++) {
        for (int i = 0; i < SMALL_LIVE; i++) {
            float v = (float)(w->id * SMALL_LIVE + i);
            ferry_tensor *a = ferry_tensor_from_data(&v, FERRY_FLOAT32, 1, &one, "cpu");
            keep[i] = a ? ferry_add(a, a) : NULL;
            ferry_tensor_release(a);
        }
        for (int i = 0; i < SMALL_LIVE; i++) {
            float got = -1.0f;
            if (!keep[i] || ferry_tensor_copy_to_host(keep[i], &got, sizeof got) != FERRY_OK ||
                got != 2.0f * (float)(w->id * SMALL_LIVE + i)) {
                if (!w->failures++)
                    snprintf(w->message, sizeof w->message, "round %d, tensor %d: %s", r, i,
                             keep[i] ? "wrong value" : ferry_last_error());
            }
        }
        for (int i = 0; i < SMALL_LIVE; i++)
            ferry_tensor_release(keep[i]);
    }
    free(keep);
    return NULL;
}

static void test_threads_make_and_free_small_tensors_concurrently(void **state)
{
    (void)state;
    pthread_t threads[NTHREADS];
    worker workers[NTHREADS];
    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        workers[i] = (worker){.id = i};
        assert_int_equal(pthread_create(&threads[i], NULL, small_work, &workers[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NTHREADS; i++)
        if (workers[i].failures)
            fail_msg("thread %d: %s", i, workers[i].message);
    ferry_memory_stats s;
    assert_ok(ferry_memory_stats_get("cpu", &s));
    assert_int_equal(s.allocated, 0);
    assert_ok(ferry_empty_cache("cpu"));
    assert_ok(ferry_memory_stats_get("cpu", &s));
    assert_int_equal(s.cached, 0);
    assert_int_equal(s.backend_frees, s.backend_allocs);
}

/* The plugin folder of the counting fake, from the build tree ctest names. */
static void use_counting_plugin(void)
{
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir) {
        fprintf(stderr, "FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)\n");
        exit(1);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/fake_plugins/count_init", dir);
    setenv("FERRY_PLUGIN_PATH", path, 1);
}

int main(void)
{
    use_counting_plugin();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_load_backends_and_move_tensors_concurrently),
        cmocka_unit_test(test_threads_make_and_free_small_tensors_concurrently),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return failed;
}

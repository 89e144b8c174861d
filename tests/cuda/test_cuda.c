/* The CUDA plugin: on a machine without a GPU it loads and says why it has no device
 * (and everything else keeps working); with a GPU, copies, peer paths, cuBLAS matmul,
 * DLPack, and streams, events and non-blocking copies (ABI 1.2) run on cuda:0. The
 * op-by-op checks are tests/conformance's. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "test_util.h"

#define REQUIRE_CUDA_DEVICE() require_backend("cuda")

static void test_cuda_plugin_loads_and_reports_its_state(void **state)
{
    (void)state;
    const char *path = ferry_backend_path("cuda");
    assert_non_null(path); /* built with the toolkit, so the file is always there */
    assert_non_null(ferry_backend_version("cuda")); /* dlopen and the entry worked */
    if (ferry_is_available("cuda")) {
        assert_null(ferry_backend_status("cuda"));
        ferry_device_info info;
        assert_ok(ferry_device_get_info("cuda:0", &info));
        assert_string_equal(info.backend, "cuda");
        assert_false(info.host_accessible);
        assert_true(info.compute_units > 0);
        assert_true(strncmp(info.arch, "sm_", 3) == 0);
        assert_true(info.total_memory > 0);
        printf("[  INFO    ] cuda:0 is %s (%s, %d SMs, bus %s, %s)\n", info.name, info.arch,
               info.compute_units, info.bus_id, info.driver_version);
        return;
    }
    /* No driver or no device: "cuda: no device (cudaErrorXxx: text)", nothing worse. */
    const char *why = ferry_backend_status("cuda");
    assert_non_null(why);
    printf("[  INFO    ] %s\n", why);
    assert_true(strncmp(why, "cuda: no device (cudaError", 26) == 0);
    assert_int_equal(ferry_device_count("cuda"), 0);
    int64_t n = 4;
    ferry_tensor *t = ferry_ones(FERRY_FLOAT32, 1, &n, NULL);
    assert_null(ferry_tensor_cuda(t, 0));
    assert_failed_with(FERRY_ERR_UNAVAILABLE, "cuda: no device (cudaError");
    ferry_tensor *u = ferry_add(t, t); /* the rest of ferry is unaffected */
    assert_tensor(u);
    float out[4];
    assert_ok(ferry_tensor_copy_to_host(u, out, sizeof out));
    assert_true(out[3] == 2.0f);
    ferry_tensor_release(u);
    ferry_tensor_release(t);
}

static void test_cuda_round_trips_every_direction(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    int64_t n = (int64_t)3 << 20; /* 12 MiB: more than one staging chunk */
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(i % 9973) - 17.5f;
    const char *devs[] = {"cpu", "sim:0", "cuda:0", "opencl:0"};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            if (!ferry_is_available(a == 1 || b == 1 ? "sim" : "cpu") ||
                ((a == 3 || b == 3) && !ferry_is_available("opencl")))
                continue;
            ferry_tensor *x = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, devs[a]);
            ferry_tensor *y = ferry_tensor_to(x, devs[b]);
            ferry_tensor *z = ferry_tensor_to(y, "cuda:0");
            ferry_tensor *h = ferry_tensor_cpu(z);
            assert_tensor(h);
            const float *p = ferry_tensor_host_data(h);
            for (int64_t i = 0; i < n; i++)
                if (p[i] != v[i])
                    fail_msg("%s -> %s -> cuda:0: element %lld differs", devs[a], devs[b],
                             (long long)i);
            ferry_tensor_release(h);
            ferry_tensor_release(z);
            ferry_tensor_release(y);
            ferry_tensor_release(x);
        }
    free(v);
}

/* cuBLAS against a double-precision reference, with transposed and batched operands. */
static void check_matmul(ferry_dtype dt, bool transpose_a, double tol)
{
    int64_t shape_a[3] = {3, 40, 24}, shape_b[3] = {3, 24, 32};
    double *ha = malloc(3 * 40 * 24 * sizeof *ha), *hb = malloc(3 * 24 * 32 * sizeof *hb);
    for (int i = 0; i < 3 * 40 * 24; i++)
        ha[i] = ((i * 7) % 13) / 8.0 - 0.75;
    for (int i = 0; i < 3 * 24 * 32; i++)
        hb[i] = ((i * 5) % 11) / 8.0 - 0.5;
    ferry_tensor *a64 = ferry_tensor_from_data(ha, FERRY_FLOAT64, 3, shape_a, "cpu");
    ferry_tensor *b64 = ferry_tensor_from_data(hb, FERRY_FLOAT64, 3, shape_b, "cpu");
    ferry_tensor *a = ferry_tensor_to_dtype(a64, dt), *b = ferry_tensor_to_dtype(b64, dt);
    ferry_tensor *da = ferry_tensor_to(a, "cuda:0"), *db = ferry_tensor_to(b, "cuda:0");
    if (transpose_a) { /* the same values through a transposed view of a copy */
        ferry_tensor *t = ferry_transpose(da, 1, 2);
        ferry_tensor *c = ferry_tensor_contiguous(t);
        ferry_tensor *tt = ferry_transpose(c, 1, 2);
        ferry_tensor_release(t);
        ferry_tensor_release(c);
        ferry_tensor_release(da);
        da = tt;
    }
    ferry_tensor *dc = ferry_matmul(da, db);
    assert_tensor(dc);
    ferry_tensor *c64 = ferry_tensor_to_dtype(dc, FERRY_FLOAT64);
    ferry_tensor *hc = ferry_tensor_cpu(c64);
    const double *pc = ferry_tensor_host_data(hc);
    for (int bt = 0; bt < 3; bt++)
        for (int i = 0; i < 40; i++)
            for (int j = 0; j < 32; j++) {
                double ref = 0;
                for (int k = 0; k < 24; k++)
                    ref += ha[(bt * 40 + i) * 24 + k] * hb[(bt * 24 + k) * 32 + j];
                double got = pc[(bt * 40 + i) * 32 + j];
                if (fabs(got - ref) > tol * (1 + fabs(ref)))
                    fail_msg("%s matmul [%d,%d,%d]: %g vs %g", ferry_dtype_name(dt), bt, i, j,
                             got, ref);
            }
    ferry_tensor *rel[] = {a64, b64, a, b, da, db, dc, c64, hc};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
        ferry_tensor_release(rel[i]);
    free(ha);
    free(hb);
}

static void test_cuda_matmul_matches_a_double_reference(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    check_matmul(FERRY_FLOAT64, false, 1e-12);
    check_matmul(FERRY_FLOAT32, false, 1e-5);
    check_matmul(FERRY_FLOAT32, true, 1e-5);
    check_matmul(FERRY_FLOAT16, false, 1e-2);
    check_matmul(FERRY_BFLOAT16, true, 5e-2);
}

static void test_cuda_dlpack_exports_device_pointers(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    int64_t n = 8;
    ferry_tensor *t = ferry_arange(0, 8, 1, FERRY_FLOAT32, "cuda:0");
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_non_null(m);
    assert_int_equal(m->dl_tensor.device.device_type, kDLCUDA);
    assert_int_equal(m->dl_tensor.device.device_id, 0);
    ferry_tensor *back = ferry_tensor_from_dlpack(m);
    assert_tensor(back);
    float out[8];
    assert_ok(ferry_tensor_copy_to_host(back, out, sizeof out));
    assert_true(out[7] == 7.0f);
    (void)n;
    ferry_tensor_release(back);
    ferry_tensor_release(t);
}

static void test_cuda_invalid_index_names_the_count(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    int64_t n = 1;
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &n, NULL);
    assert_null(ferry_tensor_to(t, "cuda:4096"));
    assert_failed_with(FERRY_ERR_INVALID_DEVICE, "Invalid device: cuda:4096 (cuda has ");
    ferry_tensor_release(t);
}

/* ---- queues and events (ABI 1.2) ---- */

/* Every element of a float32 tensor is `want`, read back through the host. */
static void assert_all(ferry_tensor *t, int64_t n, float want, const char *what)
{
    float *got = malloc((size_t)n * sizeof *got);
    assert_non_null(got);
    assert_ok(ferry_tensor_copy_to_host(t, got, (size_t)n * sizeof *got));
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want)
            fail_msg("%s: element %lld is %g, expected %g", what, (long long)i, got[i], want);
    free(got);
}

/* A chain of kernels on one stream, its result read by kernels on another and then on
 * the default stream: 16 MiB a step, long enough that an unordered reader would see
 * a partial result. */
static void test_cuda_streams_order_work_across_queues(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    const int64_t n = (int64_t)1 << 22;
    ferry_stream *s1 = ferry_stream_create("cuda:0"), *s2 = ferry_stream_create("cuda:0");
    assert_non_null(s1);
    assert_non_null(s2);
    assert_ok(ferry_stream_set_current(s1));
    ferry_event *e0 = ferry_event_record("cuda:0");
    assert_non_null(e0);
    ferry_tensor *x = ferry_full(FERRY_FLOAT32, 1, &n, 1.0, "cuda:0");
    assert_tensor(x);
    for (int i = 0; i < 20; i++) {
        ferry_tensor *y = ferry_add_scalar(x, 1.0);
        assert_tensor(y);
        ferry_tensor_release(x);
        x = y;
    }
    ferry_event *e1 = ferry_event_record("cuda:0");
    assert_non_null(e1);

    assert_ok(ferry_stream_set_current(s2));
    assert_ok(ferry_stream_wait_event(NULL, e1)); /* s2, this thread's current stream */
    ferry_tensor *z = ferry_mul_scalar(x, 2.0);
    assert_tensor(z);
    ferry_event *e2 = ferry_event_record("cuda:0");
    assert_non_null(e2);

    assert_ok(ferry_stream_set_current(NULL));
    assert_all(z, n, 42.0f, "s2's product of s1's chain");
    assert_all(x, n, 21.0f, "s1's chain read on the default stream");

    assert_ok(ferry_event_synchronize(e2));
    assert_int_equal(ferry_event_query(e1), 1);
    assert_int_equal(ferry_event_query(e2), 1);
    float ms = -1.0f;
    assert_ok(ferry_event_elapsed_ms(e0, e1, &ms));
    assert_true(ms >= 0.0f);
    assert_ok(ferry_stream_synchronize(s1));
    assert_ok(ferry_synchronize("cuda:0"));

    ferry_event_release(e0);
    ferry_event_release(e1);
    ferry_event_release(e2);
    ferry_tensor_release(z);
    ferry_tensor_release(x);
    ferry_stream_release(s1);
    ferry_stream_release(s2);
}

/* Pinned memory both ways without blocking, on a stream of ferry's: the host read of
 * the download waits for it; the upload's source stays intact until it ran. */
static void test_cuda_non_blocking_copies_through_pinned_memory(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    const int64_t n = (int64_t)1 << 20;
    ferry_stream *s = ferry_stream_create("cuda:0");
    assert_non_null(s);
    assert_ok(ferry_stream_set_current(s));
    ferry_tensor *p = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, "cuda:0");
    assert_tensor(p);
    assert_true(ferry_tensor_is_pinned(p));
    float *pp = ferry_tensor_host_data(p);
    assert_non_null(pp);
    for (int64_t i = 0; i < n; i++)
        pp[i] = (float)i * 0.5f;
    ferry_tensor *d = ferry_tensor_to_ex(p, "cuda:0", -1, FERRY_NON_BLOCKING);
    assert_tensor(d);
    ferry_tensor *d2 = ferry_mul_scalar(d, 2.0);
    assert_tensor(d2);
    ferry_tensor *back = ferry_tensor_to_ex(d2, "cpu", -1, FERRY_NON_BLOCKING);
    assert_tensor(back);
    assert_true(ferry_tensor_is_pinned(back));
    const float *bp = ferry_tensor_host_data(back); /* waits for the download */
    assert_non_null(bp);
    for (int64_t i = 0; i < n; i++)
        if (bp[i] != (float)i)
            fail_msg("element %lld came back as %g", (long long)i, bp[i]);
    assert_ok(ferry_stream_set_current(NULL));
    ferry_tensor_release(back);
    ferry_tensor_release(d2);
    ferry_tensor_release(d);
    ferry_tensor_release(p);
    ferry_stream_release(s);
}

/* Streams come and go (the plugin keeps their CUDA streams for the next ones). */
static void test_cuda_streams_are_created_and_released_repeatedly(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    int64_t n = 1000;
    ferry_tensor *x = ferry_full(FERRY_FLOAT32, 1, &n, 3.0, "cuda:0");
    assert_tensor(x);
    for (int i = 0; i < 50; i++) {
        ferry_stream *s = ferry_stream_create("cuda:0");
        assert_non_null(s);
        assert_ok(ferry_stream_set_current(s));
        ferry_tensor *y = ferry_add_scalar(x, (double)i);
        assert_tensor(y);
        assert_ok(ferry_stream_set_current(NULL));
        ferry_stream_release(s); /* the last reference: the queue goes once its work is done */
        assert_all(y, n, 3.0f + (float)i, "a product of a released stream");
        ferry_tensor_release(y);
    }
    ferry_tensor_release(x);
}

/* cuBLAS from several threads at once, each on a stream of its own (each queue has its
 * own cuBLAS handle, bound to its stream). */
typedef struct blas_job {
    int k;
    int failures;
} blas_job;

static void *matmul_on_own_stream(void *arg)
{
    blas_job *job = arg;
    ferry_stream *s = ferry_stream_create("cuda:0");
    if (!s || ferry_stream_set_current(s) != FERRY_OK) {
        job->failures = -1;
        return NULL;
    }
    int64_t shape[2] = {96, 96};
    for (int it = 0; it < 10; it++) {
        ferry_tensor *a = ferry_full(FERRY_FLOAT32, 2, shape, (double)job->k, "cuda:0");
        ferry_tensor *b = ferry_full(FERRY_FLOAT32, 2, shape, 1.0 + it, "cuda:0");
        ferry_tensor *c = ferry_matmul(a, b);
        float got[96 * 96];
        if (!c || ferry_tensor_copy_to_host(c, got, sizeof got) != FERRY_OK) {
            job->failures++;
        } else {
            for (int i = 0; i < 96 * 96; i++)
                if (got[i] != 96.0f * (float)job->k * (1.0f + (float)it)) {
                    job->failures++;
                    break;
                }
        }
        ferry_tensor_release(c);
        ferry_tensor_release(b);
        ferry_tensor_release(a);
    }
    ferry_stream_set_current(NULL);
    ferry_stream_release(s);
    return NULL;
}

static void test_cuda_matmul_from_threads_on_their_own_streams(void **state)
{
    (void)state;
    REQUIRE_CUDA_DEVICE();
    pthread_t th[4];
    blas_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].k = i + 1;
        jobs[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, matmul_on_own_stream, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].failures)
            fail_msg("thread %d: %d wrong or failed products (%s)", i, jobs[i].failures,
                     ferry_last_error());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_plugin_loads_and_reports_its_state),
        cmocka_unit_test(test_cuda_round_trips_every_direction),
        cmocka_unit_test(test_cuda_matmul_matches_a_double_reference),
        cmocka_unit_test(test_cuda_dlpack_exports_device_pointers),
        cmocka_unit_test(test_cuda_invalid_index_names_the_count),
        cmocka_unit_test(test_cuda_streams_order_work_across_queues),
        cmocka_unit_test(test_cuda_non_blocking_copies_through_pinned_memory),
        cmocka_unit_test(test_cuda_streams_are_created_and_released_repeatedly),
        cmocka_unit_test(test_cuda_matmul_from_threads_on_their_own_streams),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return failed;
}

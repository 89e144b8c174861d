/* Queues, events and asynchronous copies (ABI 1.2) with sim's delayed queue: every copy
 * sim queues waits FERRY_SIM_QUEUE_DELAY_US before it runs, so a core that reads, frees
 * or reuses memory before its queued work is done reads wrong bytes, gets sim's "found a
 * buffer gone" error from synchronize, or (pinned memory) an ASan report. The ordering
 * tests run on opencl:0 and cuda:0 as well, with tensors large enough that their queues
 * are still busy when the host gets to the next step (no delay to check times against
 * there); each skips, saying why, where its backend has no device.
 * Backends without queues (cpu, the ABI 1.0 fake plugin) must keep working,
 * synchronously. */
#include <pthread.h>
#include <time.h>

#include "test_util.h"

#define assert_last_error(code, text)                                                       \
    do {                                                                                    \
        assert_int_equal(ferry_last_status(), (code));                                      \
        if (!strstr(ferry_last_error(), (text)))                                            \
            fail_msg("last error \"%s\" does not contain \"%s\"", ferry_last_error(), (text)); \
    } while (0)

#define DELAY_US 20000
#define DELAY_MS (DELAY_US / 1000.0)

/* Where an ordering test runs: two devices of the backend (opencl has one), a device of
 * another backend for the cross-device error, and how many times sim's sizes to use. */
typedef struct target {
    const char *type;
    const char *dev0;
    const char *dev1;
    const char *other;
    int64_t scale;
    bool delayed; /* sim: every queued copy takes DELAY_US, so times can be checked */
} target;

static const target on_sim = {"sim", "sim:0", "sim:1", "sim:1", 1, true};
static const target on_opencl = {"opencl", "opencl:0", "opencl:0", "cpu", 256, false};
static const target on_cuda = {"cuda", "cuda:0", "cuda:0", "cpu", 256, false};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int setup(void **state)
{
    (void)state;
    char v[32];
    snprintf(v, sizeof v, "%d", DELAY_US);
    setenv("FERRY_SIM_QUEUE_DELAY_US", v, 1);
    unsetenv("FERRY_PLUGIN_PATH");
    ferry_shutdown();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ferry_stream_set_current(NULL);
    unsetenv("FERRY_SIM_QUEUE_DELAY_US");
    unsetenv("FERRY_PLUGIN_PATH");
    unsetenv("FERRY_SIM_DEVICES");
    unsetenv("FERRY_SIM_ABI_1_2_EARLY");
    ferry_shutdown();
    return 0;
}

static void use_fake_variant(const char *variant)
{
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir || dir[0] != '/')
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    char path[4096];
    snprintf(path, sizeof path, "%s/fake_plugins/%s", dir, variant);
    setenv("FERRY_PLUGIN_PATH", path, 1);
    ferry_shutdown();
}

/* A float32 host tensor 0, 1, 2, ... scaled by k, from its own (plain) memory. */
static ferry_tensor *ramp(int64_t n, float k)
{
    ferry_tensor *t = ferry_empty(FERRY_FLOAT32, 1, &n, "cpu");
    assert_tensor(t);
    float *p = ferry_tensor_host_data(t);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)i * k;
    return t;
}

static void assert_ramp(ferry_tensor *t, int64_t n, float k)
{
    float *got = malloc((size_t)n * sizeof *got);
    assert_non_null(got);
    assert_int_equal(ferry_tensor_copy_to_host(t, got, (size_t)n * sizeof *got), FERRY_OK);
    for (int64_t i = 0; i < n; i++)
        if (got[i] != (float)i * k)
            fail_msg("element %lld is %g, expected %g", (long long)i, got[i], (double)i * k);
    free(got);
}

static void assert_ramp_host(const float *p, int64_t n, float k)
{
    for (int64_t i = 0; i < n; i++)
        if (p[i] != (float)i * k)
            fail_msg("element %lld is %g, expected %g", (long long)i, p[i], (double)i * k);
}

static void test_read_after_async_write_waits_for_the_writer(void **state)
{
    const target *tg = *state;
    require_backend(tg->type);
    const char *dev = tg->dev0;
    const int64_t n = 4096 * tg->scale;
    ferry_tensor *h = ramp(n, 0.5f);
    /* A queued upload, then a queued device copy of it: the read of the copy must come
     * after both. */
    ferry_tensor *d = ferry_tensor_to(h, dev);
    assert_tensor(d);
    ferry_tensor *c = ferry_tensor_clone(d);
    assert_tensor(c);
    assert_ramp(c, n, 0.5f);

    /* Pinned memory both ways, non-blocking: host_data of the download waits for it. */
    ferry_tensor *p = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, dev);
    assert_tensor(p);
    assert_true(ferry_tensor_is_pinned(p));
    assert_false(ferry_tensor_is_pinned(h));
    float *pp = ferry_tensor_host_data(p);
    for (int64_t i = 0; i < n; i++)
        pp[i] = (float)i * 3.0f;
    ferry_tensor *d2 = ferry_tensor_to_ex(p, dev, -1, FERRY_NON_BLOCKING);
    assert_tensor(d2);
    ferry_tensor *back = ferry_tensor_to_ex(d2, "cpu", -1, FERRY_NON_BLOCKING);
    assert_tensor(back);
    assert_true(ferry_tensor_is_pinned(back));
    const float *bp = ferry_tensor_host_data(back);
    assert_non_null(bp);
    assert_ramp_host(bp, n, 3.0f);

    /* A cpu kernel reading the pinned download waits too. */
    ferry_tensor *back2 = ferry_tensor_to_ex(d2, "cpu", FERRY_FLOAT64, FERRY_NON_BLOCKING);
    assert_tensor(back2);
    assert_int_equal(ferry_tensor_dtype(back2), FERRY_FLOAT64);
    const double *b2 = ferry_tensor_host_data(back2);
    for (int64_t i = 0; i < n; i++)
        if (b2[i] != (double)i * 3.0)
            fail_msg("float64 element %lld is %g", (long long)i, b2[i]);

    ferry_tensor *tensors[] = {h, d, c, p, d2, back, back2};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        ferry_tensor_release(tensors[i]);
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
}

static void test_free_while_queued_waits_for_the_last_user(void **state)
{
    const target *tg = *state;
    require_backend(tg->type);
    const char *dev = tg->dev0;
    const int64_t n = 2048 * tg->scale;
    ferry_tensor *h = ramp(n, 2.0f);
    ferry_tensor *d = ferry_tensor_to(h, dev);
    assert_tensor(d);
    ferry_tensor *c = ferry_tensor_clone(d); /* queued, reads d */
    assert_tensor(c);
    ferry_tensor_release(d); /* freed (cached) while the clone still reads it */
    /* The cache hands the block on at once: its new owner's write must not overtake the
     * clone's read. */
    ferry_tensor *h2 = ramp(n, -1.0f);
    ferry_tensor *other = ferry_tensor_to(h2, dev);
    assert_tensor(other);
    ferry_tensor_release(h2);
    assert_ramp(c, n, 2.0f);
    assert_ramp(other, n, -1.0f);

    /* A pinned source freed while its non-blocking upload is queued: its block goes back
     * to the cache, and from there to the next pinned tensor of its size, only after the
     * upload read it (overwriting the next tensor would change the upload's data else). */
    ferry_tensor *p = ferry_tensor_pin_memory(h, dev);
    assert_tensor(p);
    assert_true(ferry_tensor_is_pinned(p));
    ferry_tensor *u = ferry_tensor_to_ex(p, dev, -1, FERRY_NON_BLOCKING);
    assert_tensor(u);
    ferry_tensor_release(p);
    ferry_tensor *next = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, dev);
    assert_tensor(next);
    float *np = ferry_tensor_host_data(next);
    for (int64_t i = 0; i < n; i++)
        np[i] = -7.0f;
    ferry_tensor_release(next);
    assert_ramp(u, n, 2.0f);

    /* sim reports any queued copy that found its buffer freed. */
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
    ferry_tensor_release(c);
    ferry_tensor_release(u);
    ferry_tensor_release(h);
    ferry_tensor_release(other);
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
    ferry_memory_stats st;
    assert_int_equal(ferry_memory_stats_get(dev, &st), FERRY_OK);
    assert_int_equal(st.allocated, 0);
}

static void test_staging_buffers_are_reused_only_after_their_copies(void **state)
{
    const target *tg = *state;
    use_fake_variant("opaque");
    setenv("FERRY_SIM_QUEUE_DELAY_US", "2000", 1);
    ferry_shutdown();
    require_backend(tg->type);
    require_backend("fakeopaque");
    const char *dev = tg->dev0;
    /* Several chunks through two staging buffers each way: dev0 -> fakeopaque -> dev1. */
    const int64_t n = (int64_t)(3 * ((size_t)8 << 20) / sizeof(float)) + 1000;
    ferry_tensor *h = ramp(n, 1.0f);
    ferry_tensor *d = ferry_tensor_to(h, dev);
    assert_tensor(d);
    ferry_tensor *o = ferry_tensor_to(d, "fakeopaque:0");
    assert_tensor(o);
    ferry_tensor *d2 = ferry_tensor_to(o, tg->dev1);
    assert_tensor(d2);
    assert_ramp(d2, n, 1.0f);
    ferry_tensor_release(h);
    ferry_tensor_release(d);
    ferry_tensor_release(o);
    ferry_tensor_release(d2);
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
    assert_int_equal(ferry_synchronize(tg->dev1), FERRY_OK);
}

static void test_stream_wait_event_orders_streams(void **state)
{
    const target *tg = *state;
    require_backend(tg->type);
    const char *dev = tg->dev0;
    const int64_t n = 1024 * tg->scale;
    ferry_stream *s1 = ferry_stream_create(dev);
    ferry_stream *s2 = ferry_stream_create(dev);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_null(ferry_stream_get_current(dev));

    assert_int_equal(ferry_stream_set_current(s1), FERRY_OK);
    ferry_stream *cur = ferry_stream_get_current(dev);
    assert_ptr_equal(cur, s1);
    ferry_stream_release(cur);
    ferry_tensor *h = ramp(n, 4.0f);
    ferry_tensor *a = ferry_tensor_to(h, dev);
    assert_tensor(a);
    ferry_tensor *a2 = ferry_tensor_clone(a);
    assert_tensor(a2);
    ferry_event *e1 = ferry_event_record(dev);
    assert_non_null(e1);

    /* s2 is idle: its event would be done at once unless it waits for e1. */
    assert_int_equal(ferry_stream_set_current(s2), FERRY_OK);
    assert_int_equal(ferry_stream_wait_event(s2, e1), FERRY_OK);
    ferry_event *e2 = ferry_event_record(dev);
    assert_non_null(e2);
    assert_int_equal(ferry_event_synchronize(e2), FERRY_OK);
    assert_int_equal(ferry_event_query(e1), 1);

    /* Work on s2 that reads what s1 wrote is ordered by the core on its own: a4 is done
     * two delays from now on s1, while idle s2 would run the clone after one. */
    assert_int_equal(ferry_stream_set_current(s1), FERRY_OK);
    ferry_tensor *a3 = ferry_tensor_clone(a2);
    ferry_tensor *a4 = ferry_tensor_clone(a3);
    assert_tensor(a4);
    /* A named op (get_kernel; opencl has a kernel for it, sim runs it on the cpu) is
     * recorded as its writes like a built-in one: s2's read of w waits for it. */
    ferry_tensor *yes = ferry_full(FERRY_BOOL, 1, &n, 1.0, dev);
    assert_tensor(yes);
    ferry_tensor *w = ferry_where(yes, a4, a3);
    assert_tensor(w);
    assert_int_equal(ferry_stream_set_current(s2), FERRY_OK);
    ferry_tensor *b = ferry_tensor_clone(a4);
    assert_tensor(b);
    ferry_tensor *wb = ferry_tensor_clone(w);
    assert_tensor(wb);
    assert_int_equal(ferry_stream_set_current(NULL), FERRY_OK);
    assert_null(ferry_stream_get_current(dev));
    assert_ramp(b, n, 4.0f);
    assert_ramp(wb, n, 4.0f);
    assert_int_equal(ferry_stream_synchronize(s2), FERRY_OK);

    ferry_event_release(e1);
    ferry_event_release(e2);
    ferry_tensor_release(h);
    ferry_tensor_release(a);
    ferry_tensor_release(a2);
    ferry_tensor_release(a3);
    ferry_tensor_release(a4);
    ferry_tensor_release(b);
    ferry_tensor_release(yes);
    ferry_tensor_release(w);
    ferry_tensor_release(wb);
    ferry_stream_release(s1);
    ferry_stream_release(s2);
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
}

static void test_events_query_synchronize_and_elapsed(void **state)
{
    const target *tg = *state;
    require_backend(tg->type);
    const char *dev = tg->dev0;
    const int64_t n = 256 * tg->scale;
    ferry_tensor *h = ramp(n, 1.0f);
    ferry_event *e0 = ferry_event_record(dev);
    assert_non_null(e0);
    double t0 = now_ms();
    ferry_tensor *d = ferry_tensor_to(h, dev);
    ferry_tensor *c = ferry_tensor_clone(d);
    assert_tensor(c);
    ferry_event *e1 = ferry_event_record(dev);
    assert_non_null(e1);
    int q = ferry_event_query(e1);
    assert_true(q == 0 || q == 1);
    /* Two queued copies of DELAY_US each are ahead of e1: it cannot be done this early
     * (checked only when the host got here well inside that time; a loaded machine may
     * not). */
    if (!tg->delayed)
        printf("note: %s has no delayed queue; pending query not checked\n", dev);
    else if (now_ms() - t0 < DELAY_MS)
        assert_int_equal(q, 0);
    else
        printf("note: host took %.1f ms to queue; pending query not checked\n", now_ms() - t0);
    assert_int_equal(ferry_event_synchronize(e1), FERRY_OK);
    assert_int_equal(ferry_event_query(e1), 1);
    assert_int_equal(ferry_event_query(e0), 1);
    float ms = -1;
    assert_int_equal(ferry_event_elapsed_ms(e0, e1, &ms), FERRY_OK);
    assert_true(ms >= (tg->delayed ? 2 * DELAY_MS * 0.9 : 0.0));
    float back = -1;
    assert_int_equal(ferry_event_elapsed_ms(e0, e1, &back), FERRY_OK);
    assert_true(back == ms);

    /* Errors, each with its message. */
    assert_int_equal(ferry_event_query(NULL), -1);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_event_query: event is NULL");
    assert_int_equal(ferry_event_elapsed_ms(e0, e1, NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_event_elapsed_ms: ms is NULL");
    ferry_event *other = ferry_event_record(tg->other);
    assert_non_null(other);
    assert_int_equal(ferry_event_elapsed_ms(e0, other, &ms), FERRY_ERR_INVALID_ARGUMENT);
    char both[64];
    snprintf(both, sizeof both, "recorded on %s and %s", dev, tg->other);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, both);
    ferry_tensor *d2 = ferry_tensor_to(h, dev);
    ferry_event *pending = ferry_event_record(dev);
    /* Only sim's delayed queue keeps the event pending until elapsed_ms asks: a real
     * device may finish between the query and that call. */
    if (tg->delayed && ferry_event_query(pending) == 0) {
        assert_int_equal(ferry_event_elapsed_ms(e0, pending, &ms), FERRY_ERR_INVALID_ARGUMENT);
        assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "has not completed yet");
    }
    assert_int_equal(ferry_event_synchronize(NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_event_synchronize: event is NULL");
    assert_null(ferry_event_record("nope:0"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_DEVICE);
    char missing[32];
    snprintf(missing, sizeof missing, "%s:97", tg->type);
    assert_null(ferry_stream_create(missing));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_DEVICE);
    assert_int_equal(ferry_stream_synchronize(NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_stream_synchronize: stream is NULL");
    assert_int_equal(ferry_stream_wait_event(NULL, NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_stream_wait_event: event is NULL");
    /* Memory that is not a handle (no magic word) is refused, never used as one. */
    uint64_t junk[16] = {0};
    assert_int_equal(ferry_stream_synchronize((ferry_stream *)junk), FERRY_ERR_INVALID_HANDLE);
    assert_last_error(FERRY_ERR_INVALID_HANDLE,
                      "ferry_stream_synchronize: not a live ferry_stream");
    assert_int_equal(ferry_event_synchronize((ferry_event *)junk), FERRY_ERR_INVALID_HANDLE);
    assert_last_error(FERRY_ERR_INVALID_HANDLE, "ferry_event_synchronize: not a live ferry_event");
    assert_int_equal(ferry_event_query((ferry_event *)junk), -1);
    assert_last_error(FERRY_ERR_INVALID_HANDLE, "ferry_event_query: not a live ferry_event");

    ferry_event_release(e0);
    ferry_event_release(e1);
    ferry_event_release(other);
    ferry_event_release(pending);
    ferry_event_release(NULL);
    ferry_tensor_release(h);
    ferry_tensor_release(d);
    ferry_tensor_release(d2);
    ferry_tensor_release(c);
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
}

/* Before any stream exists, calls on one device leave no record (the default queue
 * orders them): a free must still wait for them, and the first stream's work too. */
static void test_unrecorded_work_is_waited_for(void **state)
{
    const target *tg = *state;
    require_backend(tg->type);
    const char *dev = tg->dev0;
    const int64_t n = 2048 * tg->scale;
    ferry_tensor *h = ramp(n, 5.0f);
    ferry_tensor *d = ferry_tensor_to(h, dev);
    assert_tensor(d);
    ferry_tensor *c = ferry_tensor_clone(d);
    assert_tensor(c);
    /* d goes to the cache, and from there to the backend while the clone may still read
     * it: sim reports a queued copy that found its buffer gone at synchronize. */
    ferry_tensor_release(d);
    assert_int_equal(ferry_empty_cache(dev), FERRY_OK);
    /* Three queued clones, the last done three delays from now on sim. */
    ferry_tensor *c1 = ferry_tensor_clone(c);
    ferry_tensor *c3 = c1 ? ferry_tensor_clone(c1) : NULL;
    ferry_tensor *c2 = c3 ? ferry_tensor_clone(c3) : NULL;
    assert_tensor(c2);
    /* A new stream's queue is idle: its clone of c2 (one delay) overtakes c2's writer
     * unless the first stream waited for what the default queue held. */
    ferry_stream *s = ferry_stream_create(dev);
    assert_non_null(s);
    assert_int_equal(ferry_stream_set_current(s), FERRY_OK);
    ferry_tensor *b = ferry_tensor_clone(c2);
    assert_tensor(b);
    assert_int_equal(ferry_stream_set_current(NULL), FERRY_OK);
    assert_ramp(b, n, 5.0f);
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
    ferry_tensor_release(h);
    ferry_tensor_release(c);
    ferry_tensor_release(c1);
    ferry_tensor_release(c3);
    ferry_tensor_release(c2);
    ferry_tensor_release(b);
    ferry_stream_release(s);
    assert_int_equal(ferry_synchronize(dev), FERRY_OK);
}

static void test_to_ex_flags_and_pinning_errors(void **state)
{
    (void)state;
    require_backend("sim");
    const int64_t n = 16;
    ferry_tensor *h = ramp(n, 1.0f);
    assert_null(ferry_tensor_to_ex(h, "sim:0", -1, 0x10));
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_to_ex: unknown flags 0x10");
    assert_null(ferry_tensor_to_ex(h, "sim:0", 99, 0));
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_to_ex: invalid dtype value 99");
    assert_null(ferry_tensor_to_ex(h, "sim:9", -1, FERRY_NON_BLOCKING));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_DEVICE);

    /* Same device: the tensor itself, unless FERRY_COPY. */
    ferry_tensor *same = ferry_tensor_to_ex(h, NULL, -1, 0);
    assert_ptr_equal(same, h);
    ferry_tensor_release(same);
    ferry_tensor *copy = ferry_tensor_to_ex(h, "cpu", -1, FERRY_COPY);
    assert_tensor(copy);
    assert_ptr_not_equal(copy, h);
    assert_ramp(copy, n, 1.0f);
    ferry_tensor *dbl = ferry_tensor_to_ex(h, NULL, FERRY_FLOAT64, 0);
    assert_tensor(dbl);
    assert_int_equal(ferry_tensor_dtype(dbl), FERRY_FLOAT64);

    /* Non-blocking from plain memory is an ordinary copy, as in PyTorch. */
    ferry_tensor *d = ferry_tensor_to_ex(h, "sim:0", FERRY_INT32, FERRY_NON_BLOCKING);
    assert_tensor(d);
    assert_int_equal(ferry_tensor_dtype(d), FERRY_INT32);
    int32_t got[16];
    assert_int_equal(ferry_tensor_copy_to_host(d, got, sizeof got), FERRY_OK);
    for (int i = 0; i < 16; i++)
        assert_int_equal(got[i], i);

    assert_null(ferry_tensor_pin_memory(d, NULL));
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT,
                      "cannot pin 'sim:0' tensor: only dense CPU tensors can be pinned");
    assert_null(ferry_empty_pinned(FERRY_FLOAT32, 1, &n, "cpu"));
    assert_last_error(FERRY_ERR_UNSUPPORTED, "ferry_empty_pinned: cpu offers no pinned host memory");
    int64_t bad = -1;
    assert_null(ferry_empty_pinned(FERRY_FLOAT32, 1, &bad, "sim:0"));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_ARGUMENT);
    ferry_tensor *p = ferry_tensor_pin_memory(h, NULL); /* sim is the one offering it */
    assert_tensor(p);
    assert_true(ferry_tensor_is_pinned(p));
    ferry_tensor *p2 = ferry_tensor_pin_memory(p, NULL);
    assert_ptr_equal(p2, p);
    assert_false(ferry_tensor_is_pinned(NULL));

    ferry_tensor *tensors[] = {h, copy, dbl, d, p, p2};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        ferry_tensor_release(tensors[i]);
}

/* DLPack's stream exchange: the consumer's stream (here ferry's own stream b, by its
 * DLPack number) waits on the device for the writer on stream a; the host does not. */
static void test_dlpack_export_orders_the_consumers_stream(void **state)
{
    (void)state;
    require_backend("sim");
    const int64_t n = 1024;
    ferry_tensor *h = ramp(n, 2.0f);
    ferry_stream *a = ferry_stream_create("sim:0"), *b = ferry_stream_create("sim:0");
    assert_non_null(a);
    assert_non_null(b);

    int64_t def = 0, sb = 0;
    assert_int_equal(ferry_dlpack_current_stream(12 /* kDLExtDev */, 0, &def), FERRY_OK);
    assert_int_equal(def, 1); /* sim numbers its default queue as CUDA's legacy stream */
    assert_int_equal(ferry_stream_set_current(b), FERRY_OK);
    assert_int_equal(ferry_dlpack_current_stream(12, 0, &sb), FERRY_OK);
    assert_true(sb > 2);

    /* a: three delayed uploads queued before the one that writes d. */
    assert_int_equal(ferry_stream_set_current(a), FERRY_OK);
    ferry_tensor *keep[3];
    for (int i = 0; i < 3; i++)
        assert_tensor(keep[i] = ferry_tensor_to(h, "sim:0"));
    ferry_tensor *d = ferry_tensor_to(h, "sim:0");
    assert_tensor(d);
    ferry_event *written = ferry_event_record("sim:0");
    assert_non_null(written);

    assert_int_equal(ferry_stream_set_current(b), FERRY_OK);
    double t0 = now_ms();
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack_ex(d, sb);
    assert_non_null(m);
    assert_true(now_ms() - t0 < 3 * DELAY_MS); /* the host did not wait for a's 4 copies */
    ferry_event *after = ferry_event_record("sim:0");
    assert_non_null(after);
    assert_int_equal(ferry_event_synchronize(after), FERRY_OK);
    assert_int_equal(ferry_event_synchronize(written), FERRY_OK);
    float gap = 0;
    assert_int_equal(ferry_event_elapsed_ms(written, after, &gap), FERRY_OK);
    if (gap < -DELAY_MS / 2)
        fail_msg("b's event ran %g ms before a's write: the export did not order b", -gap);

    int32_t type = 0, id = -1;
    assert_int_equal(ferry_tensor_dlpack_device(d, &type, &id), FERRY_OK);
    assert_int_equal(type, 12);
    assert_int_equal(id, 0);
    ferry_tensor *y = ferry_tensor_from_dlpack(m);
    assert_tensor(y);
    assert_ramp(y, n, 2.0f);

    /* -1 orders nothing; the unversioned form takes the same streams. */
    DLManagedTensor *ml = ferry_tensor_to_dlpack_unversioned_ex(d, -1);
    assert_non_null(ml);
    ml->deleter(ml);
    ml = ferry_tensor_to_dlpack_unversioned_ex(d, sb);
    assert_non_null(ml);
    ml->deleter(ml);

    ferry_event_release(written);
    ferry_event_release(after);
    for (int i = 0; i < 3; i++)
        ferry_tensor_release(keep[i]);
    ferry_tensor_release(y);
    ferry_tensor_release(d);
    ferry_tensor_release(h);
    assert_int_equal(ferry_stream_set_current(NULL), FERRY_OK);
    ferry_stream_release(a);
    ferry_stream_release(b);
    assert_int_equal(ferry_synchronize("sim:0"), FERRY_OK);
}

static void test_dlpack_stream_errors(void **state)
{
    (void)state;
    require_backend("sim");
    ferry_tensor *h = ramp(64, 1.0f);
    ferry_tensor *d = ferry_tensor_to(h, "sim:0"); /* queued: something to order */
    assert_tensor(d);
    assert_null(ferry_tensor_to_dlpack_ex(d, -2));
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT,
                      "ferry_tensor_to_dlpack_ex: stream -2 is no DLPack stream");
    assert_null(ferry_tensor_to_dlpack_unversioned_ex(d, INT64_MIN + 1));
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "is no DLPack stream");
    /* 0 is ambiguous in the spec and 2 (CUDA's per-thread stream) names no sim queue:
     * the backend checks every value that comes from outside. */
    assert_null(ferry_tensor_to_dlpack_ex(d, 0));
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT,
                      "ferry_tensor_to_dlpack_ex: ordering DLPack stream 0 of sim:0: sim:0: "
                      "event_wait_native: 0 is no DLPack stream of this device");
    assert_null(ferry_tensor_to_dlpack_unversioned_ex(d, 2));
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "2 is no DLPack stream of this device");

    int64_t s = 7;
    assert_int_equal(ferry_dlpack_current_stream(1 /* kDLCPU */, 0, &s), FERRY_ERR_UNSUPPORTED);
    assert_last_error(FERRY_ERR_UNSUPPORTED, "has no DLPack streams: its backend offers no "
                                             "queue_native; pass no stream");
    assert_true(s == FERRY_DLPACK_NO_STREAM);
    assert_int_equal(ferry_dlpack_current_stream(99, 0, &s), FERRY_ERR_UNSUPPORTED);
    assert_last_error(FERRY_ERR_UNSUPPORTED, "DLPack device type 99");
    assert_int_equal(ferry_dlpack_current_stream(12, 0, NULL), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "ferry_dlpack_current_stream: stream is NULL");
    int32_t type = 0, id = 0;
    assert_int_equal(ferry_tensor_dlpack_device(d, NULL, &id), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT, "dl_device_type or dl_device_id is NULL");
    assert_int_equal(ferry_tensor_dlpack_device(NULL, &type, &id), FERRY_ERR_INVALID_ARGUMENT);
    assert_int_equal(ferry_tensor_dlpack_device(h, &type, &id), FERRY_OK);
    assert_int_equal(type, 1);

    /* A backend that cannot make a foreign stream wait (cpu: no queues) synchronises,
     * whatever stream the consumer names. */
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack_ex(h, 12345);
    assert_non_null(m);
    m->deleter(m);
    ferry_tensor_release(d);
    ferry_tensor_release(h);
    assert_int_equal(ferry_synchronize("sim:0"), FERRY_OK);
}

/* A queued 1.2 plugin built before queue_native (sim's table cut short there): the
 * core cannot make the consumer's stream wait, so it synchronises, as before. */
static void test_dlpack_streams_without_the_entries_synchronise(void **state)
{
    (void)state;
    setenv("FERRY_SIM_ABI_1_2_EARLY", "1", 1);
    ferry_shutdown();
    require_backend("sim");
    int64_t s = 0;
    assert_int_equal(ferry_dlpack_current_stream(12, 0, &s), FERRY_ERR_UNSUPPORTED);
    assert_last_error(FERRY_ERR_UNSUPPORTED, "sim:0 (DLPack device (12, 0)) has no DLPack "
                                             "streams");
    ferry_tensor *h = ramp(256, 4.0f);
    ferry_tensor *keep[3];
    for (int i = 0; i < 3; i++)
        assert_tensor(keep[i] = ferry_tensor_to(h, "sim:0"));
    ferry_tensor *d = ferry_tensor_to(h, "sim:0");
    assert_tensor(d);
    ferry_event *written = ferry_event_record("sim:0");
    assert_non_null(written);
    assert_int_equal(ferry_event_query(written), 0);
    /* Any stream, even one sim would refuse: nothing reaches the plugin but synchronize. */
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack_ex(d, 987654321);
    assert_non_null(m);
    assert_int_equal(ferry_event_query(written), 1);
    ferry_tensor *y = ferry_tensor_from_dlpack(m);
    assert_tensor(y);
    assert_ramp(y, 256, 4.0f);
    ferry_event_release(written);
    for (int i = 0; i < 3; i++)
        ferry_tensor_release(keep[i]);
    ferry_tensor_release(y);
    ferry_tensor_release(d);
    ferry_tensor_release(h);
    unsetenv("FERRY_SIM_ABI_1_2_EARLY");
}

static void test_backends_without_queues_run_synchronously(void **state)
{
    (void)state;
    /* cpu: events are done when recorded, streams are in-order no-ops. */
    ferry_stream *s = ferry_stream_create("cpu");
    assert_non_null(s);
    assert_int_equal(ferry_stream_set_current(s), FERRY_OK);
    ferry_event *a = ferry_event_record("cpu");
    ferry_tensor *t = ramp(1000, 1.0f);
    ferry_event *b = ferry_event_record("cpu");
    assert_int_equal(ferry_event_query(a), 1);
    float ms = -1;
    assert_int_equal(ferry_event_elapsed_ms(a, b, &ms), FERRY_OK);
    assert_true(ms >= 0);
    assert_int_equal(ferry_stream_wait_event(s, a), FERRY_OK);
    assert_int_equal(ferry_stream_synchronize(s), FERRY_OK);
    assert_int_equal(ferry_stream_set_current(NULL), FERRY_OK);
    ferry_event_release(a);
    ferry_event_release(b);
    ferry_stream_release(s);

    /* An ABI 1.0 plugin knows nothing of queues: the same calls drive it synchronously. */
    use_fake_variant("abi_1_0");
    assert_null(ferry_backend_status("fakeonezero"));
    ferry_stream *fs = ferry_stream_create("fakeonezero:0");
    assert_non_null(fs);
    assert_int_equal(ferry_stream_set_current(fs), FERRY_OK);
    ferry_tensor *f = ferry_tensor_to_ex(t, "fakeonezero:0", -1, FERRY_NON_BLOCKING);
    assert_tensor(f);
    ferry_event *fe = ferry_event_record("fakeonezero:0");
    assert_non_null(fe);
    assert_int_equal(ferry_event_query(fe), 1);
    ferry_tensor *g = ferry_tensor_to_ex(f, "cpu", -1, FERRY_NON_BLOCKING | FERRY_COPY);
    assert_tensor(g);
    assert_ramp(g, 1000, 1.0f);
    assert_int_equal(ferry_stream_set_current(NULL), FERRY_OK);
    ferry_event_release(fe);
    ferry_stream_release(fs);
    ferry_tensor_release(f);
    ferry_tensor_release(g);
    ferry_tensor_release(t);
}

static void test_current_stream_slots_and_pinning_without_a_provider(void **state)
{
    (void)state;
    setenv("FERRY_SIM_DEVICES", "9", 1);
    ferry_shutdown();
    require_backend("sim");
    ferry_stream *s[9];
    for (int i = 0; i < 9; i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "sim:%d", i);
        s[i] = ferry_stream_create(dev);
        assert_non_null(s[i]);
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(ferry_stream_set_current(s[i]), FERRY_OK);
    /* Making one current again on its device takes no new slot. */
    assert_int_equal(ferry_stream_set_current(s[3]), FERRY_OK);
    assert_int_equal(ferry_stream_set_current(s[8]), FERRY_ERR_INVALID_ARGUMENT);
    assert_last_error(FERRY_ERR_INVALID_ARGUMENT,
                      "already has current streams on 8 devices; set NULL first");
    assert_int_equal(ferry_stream_set_current(NULL), FERRY_OK);
    assert_int_equal(ferry_stream_set_current(s[8]), FERRY_OK);
    assert_int_equal(ferry_stream_set_current(NULL), FERRY_OK);
    for (int i = 0; i < 9; i++)
        ferry_stream_release(s[i]);

    setenv("FERRY_SIM_DEVICES", "0", 1);
    ferry_shutdown();
    if (ferry_is_available("opencl") || ferry_is_available("cuda")) {
        printf("note: an accelerator offers pinned memory here; the no-provider error is not "
               "checked\n");
    } else {
        int64_t n = 4;
        assert_null(ferry_empty_pinned(FERRY_FLOAT32, 1, &n, NULL));
        assert_last_error(FERRY_ERR_UNSUPPORTED,
                          "ferry_empty_pinned: no usable backend offers pinned host memory");
    }
    unsetenv("FERRY_SIM_DEVICES");
}

/* A thread that ends with a current stream gives it back (ASan's leak check sees it). */
static void *set_and_exit(void *arg)
{
    return (void *)(intptr_t)ferry_stream_set_current(arg);
}

static void test_a_thread_ending_with_a_current_stream_releases_it(void **state)
{
    (void)state;
    require_backend("sim");
    ferry_stream *s = ferry_stream_create("sim:0");
    assert_non_null(s);
    pthread_t th;
    void *rc;
    assert_int_equal(pthread_create(&th, NULL, set_and_exit, s), 0);
    assert_int_equal(pthread_join(th, &rc), 0);
    assert_int_equal((intptr_t)rc, FERRY_OK);
    assert_null(ferry_stream_get_current("sim:0")); /* that thread's, not ours */
    ferry_stream_release(s);
}

/* A freed pinned tensor's block serves the next pinned tensor of about its size (page-
 * locking costs more than the copies it serves), never a much smaller one, and the data
 * a non-blocking copy to the host lands in is right. */
static void test_pinned_blocks_are_reused(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t n = 1 << 18;
    ferry_tensor *a = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, "opencl:0");
    assert_tensor(a);
    assert_true(ferry_tensor_is_pinned(a));
    void *pa = ferry_tensor_host_data(a);
    assert_non_null(pa);
    ferry_tensor_release(a);
    int64_t quarter = n / 4;
    ferry_tensor *small = ferry_empty_pinned(FERRY_FLOAT32, 1, &quarter, "opencl:0");
    assert_tensor(small);
    assert_ptr_not_equal(ferry_tensor_host_data(small), pa);
    ferry_tensor *b = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, "opencl:0");
    assert_tensor(b);
    assert_ptr_equal(ferry_tensor_host_data(b), pa);
    float *pb = ferry_tensor_host_data(b);
    for (int64_t i = 0; i < n; i++)
        pb[i] = (float)i;
    ferry_tensor *d = ferry_tensor_to_ex(b, "opencl:0", -1, FERRY_NON_BLOCKING);
    assert_tensor(d);
    ferry_tensor_release(b);
    ferry_tensor *back = ferry_tensor_to_ex(d, "cpu", -1, FERRY_NON_BLOCKING);
    assert_tensor(back);
    assert_true(ferry_tensor_is_pinned(back));
    assert_ramp(back, n, 1.0f);
    ferry_tensor_release(back);
    ferry_tensor_release(d);
    ferry_tensor_release(small);
    assert_int_equal(ferry_empty_cache("opencl:0"), FERRY_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define ON_EACH(f)                                                                        \
    cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)&on_sim),          \
        {#f "_opencl", f, setup, teardown, (void *)&on_opencl},                             \
        {#f "_cuda", f, setup, teardown, (void *)&on_cuda}
        ON_EACH(test_read_after_async_write_waits_for_the_writer),
        ON_EACH(test_free_while_queued_waits_for_the_last_user),
        ON_EACH(test_staging_buffers_are_reused_only_after_their_copies),
        ON_EACH(test_stream_wait_event_orders_streams),
        ON_EACH(test_events_query_synchronize_and_elapsed),
        ON_EACH(test_unrecorded_work_is_waited_for),
        cmocka_unit_test_setup_teardown(test_to_ex_flags_and_pinning_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlpack_export_orders_the_consumers_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dlpack_stream_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlpack_streams_without_the_entries_synchronise,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_backends_without_queues_run_synchronously, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_current_stream_slots_and_pinning_without_a_provider,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_thread_ending_with_a_current_stream_releases_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pinned_blocks_are_reused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

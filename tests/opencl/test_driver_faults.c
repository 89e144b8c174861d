/* The OpenCL plugin when the driver refuses a call: PoCL never does, so a preloaded shim
 * (cl_fault.c, libferry_test_clfault.so) fails the Nth call of a named OpenCL entry with a
 * chosen error. For each path (making a queue, recording an event, a device-side wait,
 * pinned memory, host_map/host_unmap, a non-blocking copy, synchronize, the mapped host
 * copies of FERRY_OPENCL_MAP_COPIES=1, unloading) the failure must
 * come back as a ferry error naming the OpenCL call and the CL error as ocl_errors.c
 * writes them ("opencl:0: clFinish failed: CL_OUT_OF_RESOURCES (-5)"), with the status
 * that fits; the device must work afterwards (a later op gives the right values), as the
 * plugin never marks an OpenCL device lost; and once ferry_shutdown() has unloaded the
 * plugin every queue, buffer and event made through the shim must have been released.
 *
 * The executable re-runs itself with the shim preloaded (after the gcc sanitizer
 * runtime, which insists on coming first, when that is loaded), so it runs the same by
 * hand and under ctest. `--mapped` runs the host_map cases, which need a communicator
 * (ferry_dist_init in a world of one), as their own ctest entry. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>

#include <ferry/distributed.h>

#include "test_util.h"

#define DEV "opencl:0"

/* The shim's controls, found in the preloaded library. */
static int (*clf_arm)(const char *spec);
static long (*clf_calls)(const char *entry);
static int (*clf_pending)(void);
static int (*clf_live)(char *buf, size_t cap);

static void arm(const char *spec)
{
    if (clf_arm(spec) != 0)
        fail_msg("cl_fault refused '%s'", spec ? spec : "(none)");
}

/* The armed faults all fired: the call under test really reached the shim. */
static void assert_fired(void)
{
    if (clf_pending() != 0)
        fail_msg("an armed fault never fired: the call did not reach the driver entry");
}

/* The last error is exactly `status` and the plugin's message for `call` failing. */
static void assert_cl_error(ferry_status status, const char *call, const char *err, int code)
{
    char want[160];
    snprintf(want, sizeof want, "opencl:0: %s failed: %s (%d)", call, err, code);
    assert_failed_with(status, want);
}

static void expect_floats(ferry_tensor *t, const float *want, int64_t n)
{
    float *got = malloc((size_t)n * sizeof *got);
    assert_ok(ferry_tensor_copy_to_host(t, got, (size_t)n * sizeof *got));
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("element %lld is %g, expected %g", (long long)i, got[i], want[i]);
    free(got);
}

/* opencl:0 still works: data there and back, and a kernel on it, give the right values
 * (on the thread's current stream, whichever that is). */
static void assert_device_works(void)
{
    enum { N = 1000 };
    float v[N], want[N];
    for (int i = 0; i < N; i++) {
        v[i] = (float)i * 0.5f - 7.0f;
        want[i] = v[i] * 3.0f;
    }
    int64_t n = N;
    ferry_tensor *a = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(a);
    ferry_tensor *b = ferry_mul_scalar(a, 3.0);
    assert_tensor(b);
    expect_floats(a, v, N);
    expect_floats(b, want, N);
    assert_ok(ferry_synchronize(DEV));
    ferry_tensor_release(b);
    ferry_tensor_release(a);
    /* The plugin never marks an OpenCL device lost: a failed call is that call's error. */
    assert_null(ferry_backend_status("opencl"));
    assert_true(ferry_device_count("opencl") > 0);
}

static int setup(void **state)
{
    (void)state;
    arm(NULL);
    require_backend("opencl");
    return 0;
}

/* Every case ends with nothing of ferry's left: the plugin unloads, and whatever it made
 * through the shim must be gone with it. */
static int teardown(void **state)
{
    (void)state;
    arm(NULL);
    unsetenv("FERRY_OPENCL_MAP_COPIES");
    ferry_stream_set_current(NULL);
    ferry_shutdown();
    char left[1000];
    int n = clf_live(left, sizeof left);
    if (n != 0)
        fail_msg("%d OpenCL object(s) never released: %s", n, left);
    return 0;
}

/* Without this the other cases would prove nothing. */
static void test_interposition_reaches_the_plugin(void **state)
{
    (void)state;
    assert_device_works();
    /* The default queue is made at the first use, and the copies and the finish of
     * assert_device_works are the plugin's. */
    assert_int_equal(clf_calls("clCreateCommandQueue"), 1);
    assert_true(clf_calls("clEnqueueWriteBuffer") >= 1);
    assert_true(clf_calls("clEnqueueReadBuffer") >= 2);
    assert_true(clf_calls("clFinish") >= 1);
    /* One failure of each kind the other cases rely on really fails the plugin's call. */
    arm("clFinish:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_synchronize(DEV), FERRY_ERR_BACKEND, "clFinish");
    assert_fired();
}

/* ferry_stream_create -> queue_create -> clCreateCommandQueue. */
static void test_stream_create_fails(void **state)
{
    (void)state;
    assert_device_works(); /* the default queue exists: the next queue made is the stream's */
    arm("clCreateCommandQueue:1:CL_OUT_OF_RESOURCES");
    assert_null(ferry_stream_create(DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clCreateCommandQueue", "CL_OUT_OF_RESOURCES", -5);
    /* Out of host memory is an allocation failure, worth the core's retry. */
    arm("clCreateCommandQueue:1:CL_OUT_OF_HOST_MEMORY");
    assert_null(ferry_stream_create(DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_OUT_OF_MEMORY, "clCreateCommandQueue", "CL_OUT_OF_HOST_MEMORY",
                    -6);
    assert_null(ferry_backend_status("opencl"));
    assert_device_works();
    /* The next stream is a working one. */
    ferry_stream *s = ferry_stream_create(DEV);
    assert_non_null(s);
    assert_ok(ferry_stream_set_current(s));
    assert_device_works();
    assert_ok(ferry_stream_synchronize(s));
    assert_ok(ferry_stream_set_current(NULL));
    ferry_stream_release(s);
}

/* The default queue, made with the context at the first use: a failure there releases
 * the context and leaves the device to be made again by the next call. */
static void test_default_queue_fails_at_first_use(void **state)
{
    (void)state;
    arm("clCreateCommandQueue:1:CL_OUT_OF_RESOURCES");
    float v[4] = {1, 2, 3, 4};
    int64_t n = 4;
    assert_null(ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clCreateCommandQueue", "CL_OUT_OF_RESOURCES", -5);
    assert_null(ferry_backend_status("opencl"));
    assert_device_works();
}

/* ferry_event_record -> event_record -> clEnqueueMarkerWithWaitList, on the default
 * queue and on a stream's. */
static void test_event_record_fails(void **state)
{
    (void)state;
    assert_device_works();
    arm("clEnqueueMarkerWithWaitList:1:CL_OUT_OF_RESOURCES");
    assert_null(ferry_event_record(DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clEnqueueMarkerWithWaitList", "CL_OUT_OF_RESOURCES",
                    -5);
    ferry_stream *s = ferry_stream_create(DEV);
    assert_non_null(s);
    assert_ok(ferry_stream_set_current(s));
    arm("clEnqueueMarkerWithWaitList:1:CL_OUT_OF_HOST_MEMORY");
    assert_null(ferry_event_record(DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_OUT_OF_MEMORY, "clEnqueueMarkerWithWaitList",
                    "CL_OUT_OF_HOST_MEMORY", -6);
    /* The next event is a real one. */
    assert_device_works();
    ferry_event *e = ferry_event_record(DEV);
    assert_non_null(e);
    assert_ok(ferry_event_synchronize(e));
    assert_int_equal(ferry_event_query(e), 1);
    ferry_event_release(e);
    assert_ok(ferry_stream_set_current(NULL));
    ferry_stream_release(s);
}

/* The marker the core records after each op on a stream (its ordering record) fails:
 * the op still succeeds, ordered by the host instead (stream.c), with the right values. */
static void test_op_record_marker_fails(void **state)
{
    (void)state;
    ferry_stream *s = ferry_stream_create(DEV);
    assert_non_null(s);
    assert_ok(ferry_stream_set_current(s));
    float v[256], want[256];
    for (int i = 0; i < 256; i++)
        v[i] = (float)i, want[i] = (float)i + 1.0f;
    int64_t n = 256;
    ferry_tensor *a = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(a);
    arm("clEnqueueMarkerWithWaitList:1:CL_OUT_OF_RESOURCES");
    ferry_tensor *b = ferry_add_scalar(a, 1.0);
    assert_tensor(b);
    assert_fired();
    expect_floats(b, want, n);
    ferry_tensor_release(b);
    ferry_tensor_release(a);
    assert_device_works();
    assert_ok(ferry_stream_set_current(NULL));
    ferry_stream_release(s);
}

/* A blocking read on the default queue while a stream exists waits for markers on the
 * other queues (ocl_markers_of_others): their enqueue, their flush, or the read fails. */
static void test_read_after_other_queues_fails(void **state)
{
    (void)state;
    ferry_stream *s = ferry_stream_create(DEV);
    assert_non_null(s);
    float v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (float)(i * i);
    int64_t n = 64;
    ferry_tensor *a = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(a);
    assert_ok(ferry_synchronize(DEV));
    float got[64];
    arm("clEnqueueMarkerWithWaitList:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_tensor_copy_to_host(a, got, sizeof got), FERRY_ERR_BACKEND,
                  "opencl:0: clEnqueueMarkerWithWaitList failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    /* The marker was made, its submission failed: the message names the flush, and the
     * marker is released (teardown checks). */
    arm("clFlush:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_tensor_copy_to_host(a, got, sizeof got), FERRY_ERR_BACKEND,
                  "opencl:0: clFlush failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    /* The markers are made and submitted, the read that waits for them fails. */
    arm("clEnqueueReadBuffer:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_tensor_copy_to_host(a, got, sizeof got), FERRY_ERR_BACKEND,
                  "opencl:0: clEnqueueReadBuffer failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    assert_int_equal(clf_calls("clEnqueueMarkerWithWaitList"), 1);
    expect_floats(a, v, n);
    ferry_tensor_release(a);
    ferry_stream_release(s);
    assert_device_works();
}

/* ferry_stream_wait_event -> event_wait: the flush of the event's queue, then
 * clEnqueueBarrierWithWaitList; and the same wait the core makes itself before an op on
 * one stream reads what another wrote. */
static void test_event_wait_fails(void **state)
{
    (void)state;
    float v[512], want[512];
    for (int i = 0; i < 512; i++)
        v[i] = (float)i - 100.0f, want[i] = 2.0f * v[i];
    int64_t n = 512;
    ferry_stream *s = ferry_stream_create(DEV);
    assert_non_null(s);
    ferry_tensor *a = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV); /* default queue */
    assert_tensor(a);
    ferry_event *e = ferry_event_record(DEV);
    assert_non_null(e);
    arm("clEnqueueBarrierWithWaitList:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_stream_wait_event(s, e), FERRY_ERR_BACKEND,
                  "opencl:0: clEnqueueBarrierWithWaitList failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    arm("clFlush:1:CL_INVALID_COMMAND_QUEUE");
    assert_status(ferry_stream_wait_event(s, e), FERRY_ERR_BACKEND,
                  "opencl:0: clFlush failed: CL_INVALID_COMMAND_QUEUE (-36)");
    assert_fired();
    assert_ok(ferry_stream_wait_event(s, e));
    ferry_event_release(e);
    /* a was written on the default queue; an op on s must wait for it on the device. */
    assert_ok(ferry_stream_set_current(s));
    arm("clEnqueueBarrierWithWaitList:1:CL_OUT_OF_RESOURCES");
    assert_null(ferry_add(a, a));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clEnqueueBarrierWithWaitList", "CL_OUT_OF_RESOURCES",
                    -5);
    ferry_tensor *b = ferry_add(a, a);
    assert_tensor(b);
    expect_floats(b, want, n);
    ferry_tensor_release(b);
    ferry_tensor_release(a);
    assert_ok(ferry_stream_set_current(NULL));
    ferry_stream_release(s);
    assert_device_works();
}

/* ferry_event_synchronize -> clWaitForEvents. */
static void test_event_synchronize_fails(void **state)
{
    (void)state;
    assert_device_works();
    ferry_event *e = ferry_event_record(DEV);
    assert_non_null(e);
    arm("clWaitForEvents:1:CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST");
    assert_status(ferry_event_synchronize(e), FERRY_ERR_BACKEND,
                  "opencl:0: clWaitForEvents failed: "
                  "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST (-14)");
    assert_fired();
    assert_ok(ferry_event_synchronize(e));
    ferry_event_release(e);
    assert_device_works();
}

/* Pinned memory (host_alloc): a CL_MEM_ALLOC_HOST_PTR buffer, then its mapping. */
static void test_pinned_alloc_fails(void **state)
{
    (void)state;
    int64_t n = 4096;
    arm("clCreateBuffer:1:CL_MEM_OBJECT_ALLOCATION_FAILURE");
    assert_null(ferry_empty_pinned(FERRY_FLOAT32, 1, &n, DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_OUT_OF_MEMORY, "clCreateBuffer(CL_MEM_ALLOC_HOST_PTR)",
                    "CL_MEM_OBJECT_ALLOCATION_FAILURE", -4);
    /* The buffer made before the failed map is released (teardown checks). */
    arm("clEnqueueMapBuffer:1:CL_MAP_FAILURE");
    assert_null(ferry_empty_pinned(FERRY_FLOAT32, 1, &n, DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clEnqueueMapBuffer", "CL_MAP_FAILURE", -12);
    /* Then pinned memory works, and carries data to the device and back. */
    ferry_tensor *p = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(p);
    assert_true(ferry_tensor_is_pinned(p));
    float *h = ferry_tensor_host_data(p);
    assert_non_null(h);
    for (int64_t i = 0; i < n; i++)
        h[i] = (float)i / 8.0f;
    ferry_tensor *o = ferry_tensor_to_ex(p, DEV, -1, FERRY_NON_BLOCKING);
    assert_tensor(o);
    expect_floats(o, h, n);
    ferry_tensor_release(o);
    ferry_tensor_release(p);
    assert_device_works();
}

/* Non-blocking copies: pinned host -> device (clEnqueueWriteBuffer, CL_FALSE) and device
 * -> pinned host (clEnqueueReadBuffer, CL_FALSE). */
static void test_non_blocking_copies_fail(void **state)
{
    (void)state;
    int64_t n = 3000;
    ferry_tensor *p = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(p);
    float *h = ferry_tensor_host_data(p);
    for (int64_t i = 0; i < n; i++)
        h[i] = 1.0f - (float)i;
    arm("clEnqueueWriteBuffer:1:CL_OUT_OF_RESOURCES");
    assert_null(ferry_tensor_to_ex(p, DEV, -1, FERRY_NON_BLOCKING));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clEnqueueWriteBuffer", "CL_OUT_OF_RESOURCES", -5);
    ferry_tensor *o = ferry_tensor_to_ex(p, DEV, -1, FERRY_NON_BLOCKING);
    assert_tensor(o);
    expect_floats(o, h, n);

    arm("clEnqueueReadBuffer:1:CL_OUT_OF_RESOURCES");
    assert_null(ferry_tensor_to_ex(o, "cpu", -1, FERRY_NON_BLOCKING));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clEnqueueReadBuffer", "CL_OUT_OF_RESOURCES", -5);
    ferry_tensor *back = ferry_tensor_to_ex(o, "cpu", -1, FERRY_NON_BLOCKING);
    assert_tensor(back);
    assert_true(ferry_tensor_is_pinned(back));
    expect_floats(back, h, n); /* waits for the queued read */
    ferry_tensor_release(back);
    ferry_tensor_release(o);
    ferry_tensor_release(p);
    assert_device_works();
}

/* ferry_synchronize -> clFinish of the default queue, then of each stream's queue, each
 * of which it holds a reference to while it waits; and a stream's release, whose finish
 * failing must still free the queue. */
static void test_synchronize_fails(void **state)
{
    (void)state;
    assert_device_works();
    arm("clFinish:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_synchronize(DEV), FERRY_ERR_BACKEND,
                  "opencl:0: clFinish failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    assert_ok(ferry_synchronize(DEV));
    ferry_stream *s1 = ferry_stream_create(DEV), *s2 = ferry_stream_create(DEV);
    assert_non_null(s1);
    assert_non_null(s2);
    /* The second queue finished is a stream's; the third is still finished and let go. */
    arm("clFinish:2:CL_OUT_OF_RESOURCES");
    assert_status(ferry_synchronize(DEV), FERRY_ERR_BACKEND,
                  "opencl:0: clFinish failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    assert_int_equal(clf_calls("clFinish"), 3);
    assert_ok(ferry_synchronize(DEV));
    assert_ok(ferry_stream_set_current(s1));
    assert_device_works();
    assert_ok(ferry_stream_set_current(NULL));
    arm("clFinish:1:CL_OUT_OF_RESOURCES");
    ferry_stream_release(s1);
    assert_fired();
    ferry_stream_release(s2);
    assert_device_works();
}

/* A tensor's buffer (alloc -> clCreateBuffer): an allocation failure, which the caching
 * allocator answers by returning its cached blocks and trying once more. */
static void test_alloc_fails(void **state)
{
    (void)state;
    float v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (float)(i % 17);
    int64_t n = 1000, m = 300000;
    arm("clCreateBuffer:1:CL_MEM_OBJECT_ALLOCATION_FAILURE");
    assert_null(ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV));
    assert_fired();
    assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, "opencl:0: clCreateBuffer of ");
    assert_failed_with(FERRY_ERR_OUT_OF_MEMORY, " failed: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)");
    /* With a block of another size cached, the retry after the drain succeeds. */
    ferry_tensor *big = ferry_zeros(FERRY_FLOAT32, 1, &m, DEV);
    assert_tensor(big);
    ferry_tensor_release(big);
    arm("clCreateBuffer:1:CL_OUT_OF_RESOURCES");
    ferry_tensor *a = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(a);
    assert_fired();
    assert_int_equal(clf_calls("clCreateBuffer"), 2);
    expect_floats(a, v, n);
    ferry_tensor_release(a);
    assert_device_works();
}

/* Unloading while the driver fails: the finish before the default queue goes is
 * ignored, and every queue and buffer (a cached pinned block's too) is still released
 * (teardown checks). The pinned block's unmap is not failed here: a driver that refuses
 * it keeps the mapping, and PoCL then keeps the buffer and its context past their
 * release, which LeakSanitizer reports as PoCL's leak, whatever the plugin does. */
static void test_shutdown_with_failing_driver(void **state)
{
    (void)state;
    int64_t n = 512;
    ferry_tensor *p = ferry_empty_pinned(FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(p);
    ferry_tensor_release(p); /* to the staging cache, freed at shutdown */
    ferry_stream *s = ferry_stream_create(DEV);
    assert_non_null(s);
    ferry_stream_release(s);
    assert_device_works();
    arm("clFinish:1:CL_OUT_OF_RESOURCES");
    ferry_shutdown();
    assert_fired();
}

/* Host copies through mappings (FERRY_OPENCL_MAP_COPIES=1, read when the plugin loads):
 * the map or the unmap of a write or of a read fails; the read's markers on the other
 * queues are released either way (teardown checks). */
static void test_mapped_copies_fail(void **state)
{
    (void)state;
    setenv("FERRY_OPENCL_MAP_COPIES", "1", 1);
    ferry_shutdown(); /* setup's check loaded the plugin, which read it already */
    float v[300];
    for (int i = 0; i < 300; i++)
        v[i] = (float)i * -1.5f;
    int64_t n = 300;
    assert_device_works();
    arm("clEnqueueMapBuffer:1:CL_MAP_FAILURE");
    assert_null(ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clEnqueueMapBuffer", "CL_MAP_FAILURE", -12);
    arm("clEnqueueUnmapMemObject:1:CL_OUT_OF_RESOURCES");
    assert_null(ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV));
    assert_fired();
    assert_cl_error(FERRY_ERR_BACKEND, "clEnqueueUnmapMemObject", "CL_OUT_OF_RESOURCES", -5);

    ferry_stream *s = ferry_stream_create(DEV); /* so a read waits for markers */
    assert_non_null(s);
    ferry_tensor *a = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(a);
    float got[300];
    arm("clEnqueueMapBuffer:1:CL_MAP_FAILURE");
    assert_status(ferry_tensor_copy_to_host(a, got, sizeof got), FERRY_ERR_BACKEND,
                  "opencl:0: clEnqueueMapBuffer failed: CL_MAP_FAILURE (-12)");
    assert_fired();
    arm("clEnqueueUnmapMemObject:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_tensor_copy_to_host(a, got, sizeof got), FERRY_ERR_BACKEND,
                  "opencl:0: clEnqueueUnmapMemObject failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    expect_floats(a, v, n);
    ferry_tensor_release(a);
    ferry_stream_release(s);
    assert_device_works();
    unsetenv("FERRY_OPENCL_MAP_COPIES");
}

/* ---- host_map / host_unmap: the collectives' zero-copy path ------------------------------
 * An all_reduce of an opencl:0 tensor in a world of one maps it a chunk at a time
 * (FERRY_DIST_CHUNK_BYTES=1024: 256 floats, so 1000 take four maps and unmaps). */

static void test_host_map_fails(void **state)
{
    (void)state;
    enum { N = 1000 };
    float v[N];
    for (int i = 0; i < N; i++)
        v[i] = (float)i * 0.25f;
    int64_t n = N;
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, DEV);
    assert_tensor(t);
    arm(NULL);
    assert_ok(ferry_all_reduce(t, FERRY_DIST_SUM, NULL));
    if (clf_calls("clEnqueueMapBuffer") != 4 || clf_calls("clEnqueueUnmapMemObject") != 4)
        fail_msg("the all_reduce mapped %ld and unmapped %ld chunks, expected 4 and 4 "
                 "(is FERRY_DIST_CHUNK_BYTES=1024 set?)",
                 clf_calls("clEnqueueMapBuffer"), clf_calls("clEnqueueUnmapMemObject"));
    expect_floats(t, v, n); /* a sum over one rank */

    arm("clEnqueueMapBuffer:2:CL_MAP_FAILURE");
    assert_status(ferry_all_reduce(t, FERRY_DIST_SUM, NULL), FERRY_ERR_BACKEND,
                  "opencl:0: clEnqueueMapBuffer failed: CL_MAP_FAILURE (-12)");
    assert_fired();
    arm("clEnqueueUnmapMemObject:3:CL_OUT_OF_RESOURCES");
    assert_status(ferry_all_reduce(t, FERRY_DIST_SUM, NULL), FERRY_ERR_BACKEND,
                  "opencl:0: clEnqueueUnmapMemObject failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    /* The unmap's completion, waited for on the host. */
    arm("clWaitForEvents:1:CL_OUT_OF_RESOURCES");
    assert_status(ferry_all_reduce(t, FERRY_DIST_SUM, NULL), FERRY_ERR_BACKEND,
                  "opencl:0: clWaitForEvents failed: CL_OUT_OF_RESOURCES (-5)");
    assert_fired();
    arm(NULL);
    assert_ok(ferry_all_reduce(t, FERRY_DIST_SUM, NULL));
    expect_floats(t, v, n);
    ferry_tensor_release(t);
    assert_device_works();
}

static int dist_setup(void **state)
{
    (void)state;
    require_backend("opencl");
    if (ferry_dist_init("mpi") != FERRY_OK)
        fail_msg("ferry_dist_init(\"mpi\") in a world of one: %s", ferry_last_error());
    return 0;
}

static int dist_teardown(void **state)
{
    ferry_dist_finalize();
    return teardown(state);
}

/* ---- running under the shim ------------------------------------------------------------- */

/* The path of the sanitizer runtime when it is a shared library mapped in this process
 * (gcc's libasan.so): it must be first in LD_PRELOAD or it refuses to start. clang's is
 * linked into the executable, and a release build has none. */
static bool sanitizer_runtime(char *path, size_t cap)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *p = strchr(line, '/');
        if (!p)
            continue;
        p[strcspn(p, "\n")] = '\0';
        const char *base = strrchr(p, '/') + 1;
        if (!strncmp(base, "libasan.so", 10) && strlen(p) < cap) {
            strcpy(path, p);
            found = true;
        }
    }
    fclose(f);
    return found;
}

static void run_under_shim(char **argv)
{
    if (getenv("FERRY_TEST_CLFAULT_CHILD"))
        fail_msg("running with LD_PRELOAD=%s, but the cl_fault shim's controls are missing",
                 getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
    const char *old = getenv("LD_PRELOAD");
    char rt[2048] = "", preload[8192];
    bool has_rt = sanitizer_runtime(rt, sizeof rt);
    snprintf(preload, sizeof preload, "%s%s%s%s%s", has_rt ? rt : "", has_rt ? ":" : "",
             FERRY_TEST_CLFAULT_LIB, old && *old ? ":" : "", old ? old : "");
    /* The child puts LD_PRELOAD back as it was, so processes the driver starts (a
     * compiler, a linker) get no shim. */
    setenv("FERRY_TEST_CLFAULT_CHILD", old ? old : "", 1);
    setenv("LD_PRELOAD", preload, 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    perror("execv /proc/self/exe");
    exit(1);
}

int main(int argc, char **argv)
{
    clf_arm = (int (*)(const char *))dlsym(RTLD_DEFAULT, "ferry_clfault_arm");
    if (!clf_arm)
        run_under_shim(argv); /* does not return */
    const char *old = getenv("FERRY_TEST_CLFAULT_CHILD");
    if (old && *old)
        setenv("LD_PRELOAD", old, 1);
    else
        unsetenv("LD_PRELOAD");
    clf_calls = (long (*)(const char *))dlsym(RTLD_DEFAULT, "ferry_clfault_calls");
    clf_pending = (int (*)(void))dlsym(RTLD_DEFAULT, "ferry_clfault_pending");
    clf_live = (int (*)(char *, size_t))dlsym(RTLD_DEFAULT, "ferry_clfault_live");
    if (!clf_calls || !clf_pending || !clf_live) {
        fprintf(stderr, "cl_fault shim: controls missing\n");
        return 1;
    }
    /* One case sets it; each starts from an unloaded plugin, which reads it again. */
    unsetenv("FERRY_OPENCL_MAP_COPIES");
    if (argc > 1 && !strcmp(argv[1], "--mapped")) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_host_map_fails, dist_setup, dist_teardown),
        };
        return cmocka_run_group_tests_name("opencl driver faults: host_map", tests, NULL,
                                           NULL);
    }
    const struct CMUnitTest tests[] = {
#define CASE(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        CASE(test_interposition_reaches_the_plugin),
        CASE(test_stream_create_fails),
        CASE(test_default_queue_fails_at_first_use),
        CASE(test_event_record_fails),
        CASE(test_op_record_marker_fails),
        CASE(test_read_after_other_queues_fails),
        CASE(test_event_wait_fails),
        CASE(test_event_synchronize_fails),
        CASE(test_pinned_alloc_fails),
        CASE(test_non_blocking_copies_fail),
        CASE(test_synchronize_fails),
        CASE(test_alloc_fails),
        CASE(test_shutdown_with_failing_driver),
        CASE(test_mapped_copies_fail),
#undef CASE
    };
    return cmocka_run_group_tests_name("opencl driver faults", tests, NULL, NULL);
}

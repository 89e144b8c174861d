/* Moving data to, from and on opencl:0: every direction with cpu and sim (staged through
 * host memory), copies and casts on the device, the caching allocator's reuse of OpenCL
 * buffers, and DLPack export and import of a cl_mem plus byte_offset. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <math.h>

#include "test_util.h"

static const ferry_dtype all_dtypes[FERRY_NUM_DTYPES] = {
    FERRY_BOOL,    FERRY_UINT8,    FERRY_INT8,    FERRY_INT16,   FERRY_INT32,
    FERRY_INT64,   FERRY_FLOAT16,  FERRY_BFLOAT16, FERRY_FLOAT32, FERRY_FLOAT64};

/* n elements of dtype as deterministic bytes (bool bytes are 0 or 1; float bit patterns
 * include NaNs with payloads, which copies must keep). */
static unsigned char *pattern(ferry_dtype dt, int64_t n, unsigned seed)
{
    size_t size = ferry_dtype_size(dt), nbytes = (size_t)n * size;
    unsigned char *p = malloc(nbytes ? nbytes : 1);
    uint64_t s = 0x9e3779b97f4a7c15ull * (seed + 1);
    for (size_t i = 0; i < nbytes; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p[i] = dt == FERRY_BOOL ? (unsigned char)(s & 1) : (unsigned char)s;
    }
    return p;
}

static void expect_bytes(ferry_tensor *t, const unsigned char *want, size_t nbytes)
{
    unsigned char *got = malloc(nbytes ? nbytes : 1);
    assert_ok(ferry_tensor_copy_to_host(t, got, nbytes));
    if (memcmp(got, want, nbytes) != 0) {
        size_t i = 0;
        while (got[i] == want[i])
            i++;
        fail_msg("byte %zu of %zu differs: %u, expected %u", i, nbytes, got[i], want[i]);
    }
    free(got);
}

static void test_copy_cpu_opencl_round_trip_every_dtype(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t shape[2] = {37, 53};
    for (int k = 0; k < FERRY_NUM_DTYPES; k++) {
        ferry_dtype dt = all_dtypes[k];
        size_t nbytes = 37 * 53 * ferry_dtype_size(dt);
        unsigned char *v = pattern(dt, 37 * 53, (unsigned)k);
        ferry_tensor *c = ferry_tensor_from_data(v, dt, 2, shape, "cpu");
        assert_tensor(c);
        ferry_tensor *o = ferry_tensor_to(c, "opencl:0");
        assert_tensor(o);
        ferry_device dev = ferry_tensor_device(o);
        assert_string_equal(dev.type, "opencl");
        assert_null(ferry_tensor_host_data(o));
        assert_failed_with(FERRY_ERR_WRONG_DEVICE, "opencl:0");
        expect_bytes(o, v, nbytes);
        ferry_tensor *back = ferry_tensor_cpu(o);
        assert_tensor(back);
        assert_memory_equal(ferry_tensor_host_data(back), v, nbytes);
        /* Straight from host data, too. */
        ferry_tensor *direct = ferry_tensor_from_data(v, dt, 2, shape, "opencl:0");
        assert_tensor(direct);
        expect_bytes(direct, v, nbytes);
        ferry_tensor_release(direct);
        ferry_tensor_release(back);
        ferry_tensor_release(o);
        ferry_tensor_release(c);
        free(v);
    }
}

static void test_copy_sim_opencl_both_ways_staged(void **state)
{
    (void)state;
    require_backend("opencl");
    require_backend("sim");
    /* Larger than one staging chunk (8 MiB), so the chunked path runs. */
    int64_t n = (int64_t)5 << 20;
    unsigned char *v = pattern(FERRY_FLOAT32, n, 7);
    ferry_tensor *s = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, "sim:0");
    assert_tensor(s);
    ferry_tensor *o = ferry_tensor_to(s, "opencl:0");
    assert_tensor(o);
    expect_bytes(o, v, (size_t)n * 4);
    ferry_tensor *s2 = ferry_tensor_to(o, "sim:1");
    assert_tensor(s2);
    expect_bytes(s2, v, (size_t)n * 4);
    /* A non-contiguous opencl source is compacted on the device before it travels. */
    int64_t shape[2] = {4096, 1280};
    ferry_tensor *m = ferry_reshape(o, 2, shape);
    assert_tensor(m);
    ferry_tensor *mt = ferry_transpose(m, 0, 1);
    ferry_tensor *st = ferry_tensor_to(mt, "sim:0");
    assert_tensor(st);
    const float *f = (const float *)v;
    float *got = malloc((size_t)n * 4);
    assert_ok(ferry_tensor_copy_to_host(st, got, (size_t)n * 4));
    for (int64_t i = 0; i < 1280; i++)
        for (int64_t j = 0; j < 4096; j++)
            if (memcmp(&got[i * 4096 + j], &f[j * 1280 + i], 4) != 0)
                fail_msg("element [%lld, %lld] differs", (long long)i, (long long)j);
    free(got);
    ferry_tensor *list[] = {s, o, s2, m, mt, st};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        ferry_tensor_release(list[i]);
    free(v);
}

static void test_copy_on_device_clone_strided_and_cast(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t shape[3] = {4, 5, 6};
    float v[120];
    for (int i = 0; i < 120; i++)
        v[i] = (float)i - 30.5f;
    ferry_tensor *o = ferry_tensor_from_data(v, FERRY_FLOAT32, 3, shape, "opencl:0");
    assert_tensor(o);
    ferry_tensor *same = ferry_tensor_to(o, "opencl:0");
    assert_ptr_equal(same, o);
    ferry_tensor_release(same);
    ferry_tensor *c = ferry_tensor_clone(o);
    assert_tensor(c);
    expect_bytes(c, (const unsigned char *)v, sizeof v);

    /* A permuted, sliced view made contiguous on the device. */
    int perm[3] = {2, 0, 1};
    ferry_tensor *p = ferry_permute(o, 3, perm);
    ferry_tensor *ps = ferry_slice(p, 0, 1, 6, 2);
    ferry_tensor *pc = ferry_tensor_contiguous(ps);
    assert_tensor(pc);
    assert_true(ferry_tensor_is_contiguous(pc));
    float want[3 * 4 * 5];
    int w = 0;
    for (int k = 1; k < 6; k += 2)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 5; j++)
                want[w++] = v[(i * 5 + j) * 6 + k];
    expect_bytes(pc, (const unsigned char *)want, sizeof want);

    /* Casts on the device: to int32 truncates toward zero, back to float is exact. */
    ferry_tensor *i32 = ferry_tensor_to_dtype(ps, FERRY_INT32);
    assert_tensor(i32);
    int32_t wi[60];
    for (int i = 0; i < 60; i++)
        wi[i] = (int32_t)want[i];
    expect_bytes(i32, (const unsigned char *)wi, sizeof wi);
    ferry_tensor *h = ferry_tensor_to_dtype(pc, FERRY_FLOAT16);
    ferry_tensor *f = h ? ferry_tensor_to_dtype(h, FERRY_FLOAT32) : NULL;
    assert_tensor(f);
    expect_bytes(f, (const unsigned char *)want, sizeof want);

    ferry_tensor *list[] = {o, c, p, ps, pc, i32, h, f};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        ferry_tensor_release(list[i]);
}

static void test_copy_steady_loop_allocates_no_new_buffers(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t n = 100000;
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 1, &n, "opencl:0");
    ferry_tensor *b = ferry_full(FERRY_FLOAT32, 1, &n, 2.0, "opencl:0");
    assert_tensor(a);
    assert_tensor(b);
    ferry_memory_stats before, after;
    for (int i = 0; i < 200; i++) {
        if (i == 3)
            assert_ok(ferry_memory_stats_get("opencl:0", &before));
        ferry_tensor *c = ferry_add(a, b);
        assert_tensor(c);
        ferry_tensor *s = ferry_sum(c, 0, NULL, false);
        assert_tensor(s);
        ferry_tensor_release(s);
        ferry_tensor_release(c);
    }
    assert_ok(ferry_memory_stats_get("opencl:0", &after));
    /* Every clCreateBuffer for a tensor goes through the allocator's backend_allocs. */
    assert_int_equal(after.backend_allocs, before.backend_allocs);
    assert_true(after.cached > 0);
    assert_ok(ferry_empty_cache("opencl:0"));
    ferry_memory_stats emptied;
    assert_ok(ferry_memory_stats_get("opencl:0", &emptied));
    assert_int_equal(emptied.cached, 0);
    assert_true(emptied.backend_frees > after.backend_frees);
    ferry_tensor_release(a);
    ferry_tensor_release(b);
}

static void test_copy_dlpack_round_trips_cl_mem_and_offset(void **state)
{
    (void)state;
    require_backend("opencl");
    int64_t shape[2] = {6, 8};
    float v[48];
    for (int i = 0; i < 48; i++)
        v[i] = (float)i;
    ferry_tensor *o = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, shape, "opencl:0");
    ferry_tensor *rows = ferry_slice(o, 0, 2, 5, 1); /* rows 2..4: byte offset 64 */
    assert_tensor(rows);
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(rows);
    assert_non_null(m);
    assert_int_equal(m->dl_tensor.device.device_type, kDLOpenCL);
    assert_int_equal(m->dl_tensor.device.device_id, 0);
    assert_int_equal(m->dl_tensor.byte_offset, 2 * 8 * sizeof(float));
    /* data is the buffer handle itself, a cl_mem the OpenCL API accepts. */
    size_t size = 0;
    assert_int_equal(clGetMemObjectInfo((cl_mem)m->dl_tensor.data, CL_MEM_SIZE, sizeof size, &size,
                                        NULL),
                     CL_SUCCESS);
    assert_true(size >= sizeof v);

    ferry_tensor *back = ferry_tensor_from_dlpack(m);
    assert_tensor(back);
    ferry_device dev = ferry_tensor_device(back);
    assert_string_equal(dev.type, "opencl");
    expect_bytes(back, (const unsigned char *)&v[16], 24 * sizeof(float));
    /* Zero copy: a write through the original shows through the import. */
    ferry_tensor *two = ferry_full(FERRY_FLOAT32, 2, shape, 2.0, "opencl:0");
    assert_ok(ferry_mul_out(o, o, two));
    float w[24];
    for (int i = 0; i < 24; i++)
        w[i] = 2.0f * v[16 + i];
    expect_bytes(back, (const unsigned char *)w, sizeof w);
    /* An op on the import reads at its offset. */
    ferry_tensor *sum = ferry_sum(back, 0, NULL, false);
    float s = 0, ws = 0;
    assert_ok(ferry_tensor_copy_to_host(sum, &s, sizeof s));
    for (int i = 0; i < 24; i++)
        ws += w[i];
    assert_true(s == ws);
    ferry_tensor_release(sum);
    ferry_tensor_release(two);
    ferry_tensor_release(back);
    ferry_tensor_release(rows);
    ferry_tensor_release(o);
}

static void test_copy_map_path_round_trips(void **state)
{
    (void)state;
    require_backend("opencl");
    /* Read at plugin init: a fresh generation picks it up. */
    setenv("FERRY_OPENCL_MAP_COPIES", "1", 1);
    ferry_shutdown();
    int64_t n = 300001;
    unsigned char *v = pattern(FERRY_INT32, n, 3);
    ferry_tensor *o = ferry_tensor_from_data(v, FERRY_INT32, 1, &n, "opencl:0");
    assert_tensor(o);
    expect_bytes(o, v, (size_t)n * 4);
    /* A partial read at an offset, and a write through a view at an offset. */
    ferry_tensor *mid = ferry_slice(o, 0, 1000, 2000, 1);
    expect_bytes(mid, v + 4000, 4000);
    ferry_tensor *c = ferry_tensor_clone(mid);
    ferry_tensor *neg = ferry_neg(c);
    assert_tensor(neg);
    int32_t got[1000];
    assert_ok(ferry_tensor_copy_to_host(neg, got, sizeof got));
    for (int i = 0; i < 1000; i++) {
        int32_t x;
        memcpy(&x, v + 4000 + 4 * i, 4);
        assert_int_equal(got[i], (int32_t)(0u - (uint32_t)x));
    }
    ferry_tensor_release(neg);
    ferry_tensor_release(c);
    ferry_tensor_release(mid);
    ferry_tensor_release(o);
    free(v);
    unsetenv("FERRY_OPENCL_MAP_COPIES");
    ferry_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_cpu_opencl_round_trip_every_dtype),
        cmocka_unit_test(test_copy_sim_opencl_both_ways_staged),
        cmocka_unit_test(test_copy_on_device_clone_strided_and_cast),
        cmocka_unit_test(test_copy_steady_loop_allocates_no_new_buffers),
        cmocka_unit_test(test_copy_dlpack_round_trips_cl_mem_and_offset),
        cmocka_unit_test(test_copy_map_path_round_trips),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return rc;
}

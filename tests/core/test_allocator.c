/* The caching allocator's size classes: tiny tensors cost a cache line, cached blocks are
 * reused by class whatever their number, and the waste rule holds at class borders.
 * Small blocks on the cpu are carved from slabs: many per backend call, aligned, never
 * shared, reused, counted in the stats, and given back once a slab is wholly free.
 * Kept tensor handles go back to malloc when the cache is emptied. */
#include <malloc.h>
#include <stdint.h>

#include "test_util.h"

static ferry_memory_stats stats(void)
{
    ferry_memory_stats m;
    assert_ok(ferry_memory_stats_get("cpu", &m));
    return m;
}

static ferry_tensor *bytes(int64_t n)
{
    ferry_tensor *t = ferry_empty(FERRY_UINT8, 1, &n, "cpu");
    assert_tensor(t);
    return t;
}

static void test_a_one_element_tensor_takes_one_cache_line(void **state)
{
    (void)state;
    uint64_t before = stats().allocated;
    int64_t one = 1;
    ferry_tensor *t = ferry_empty(FERRY_FLOAT32, 1, &one, "cpu");
    assert_tensor(t);
    assert_int_equal(stats().allocated - before, 64);
    ferry_tensor_release(t);
    /* 65 bytes take two lines; past 4 KiB blocks round to 512 bytes. */
    t = bytes(65);
    assert_int_equal(stats().allocated - before, 128);
    ferry_tensor_release(t);
    t = bytes(4097);
    assert_int_equal(stats().allocated - before, 4608);
    ferry_tensor_release(t);
}

static void test_many_cached_blocks_are_all_reused(void **state)
{
    (void)state;
    assert_ok(ferry_empty_cache("cpu"));
    enum { N = 20000 };
    ferry_tensor **ts = malloc(sizeof *ts * N);
    assert_non_null(ts);
    for (int round = 0; round < 3; round++) {
        uint64_t allocs = stats().backend_allocs;
        for (int i = 0; i < N; i++)
            ts[i] = bytes(i % 3 == 0 ? 40 : i % 3 == 1 ? 1000 : 9000);
        for (int i = 0; i < N; i++)
            ferry_tensor_release(ts[i]);
        /* After the first round every block comes from the cache. */
        if (round > 0)
            assert_int_equal(stats().backend_allocs, allocs);
    }
    free(ts);
    assert_ok(ferry_empty_cache("cpu"));
    assert_int_equal(stats().cached, 0);
}

static void *data_of(ferry_tensor *t)
{
    void *p = ferry_tensor_host_data(t);
    assert_non_null(p);
    return p;
}

/* Served means the very block comes back (a carved class may also have room in its slab,
 * so a backend call count cannot tell). */
static void test_a_cached_block_serves_only_requests_it_wastes_a_quarter_of(void **state)
{
    (void)state;
    assert_ok(ferry_empty_cache("cpu"));
    const struct {
        int64_t cached, asked;
        bool reused;
    } cases[] = {
        {4096, 4032, true},   /* 64 of 4096 wasted */
        {4096, 1024, false},  /* three quarters wasted */
        {4608, 4096, true},   /* across the tiny/small border */
        {5120, 3072, false},
        {64, 1, true},
        {128, 1, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ferry_tensor *first = bytes(cases[c].cached);
        void *block = data_of(first);
        ferry_tensor_release(first);
        ferry_tensor *t = bytes(cases[c].asked);
        if ((data_of(t) == block) != cases[c].reused)
            fail_msg("a cached %lld-byte block %s a %lld-byte request",
                     (long long)cases[c].cached, cases[c].reused ? "did not serve" : "served",
                     (long long)cases[c].asked);
        ferry_tensor_release(t);
        assert_ok(ferry_empty_cache("cpu"));
    }
}

static ferry_tensor *one_float(float v)
{
    int64_t one = 1;
    ferry_tensor *t = ferry_tensor_from_data(&v, FERRY_FLOAT32, 1, &one, "cpu");
    assert_tensor(t);
    return t;
}

static float value_of(ferry_tensor *t)
{
    float v;
    assert_ok(ferry_tensor_copy_to_host(t, &v, sizeof v));
    return v;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return (x > y) - (x < y);
}

/* Many small tensors take few backend calls, each block 64-byte aligned, no two
 * overlapping, every value kept; all of it counted as allocated while alive. */
static void test_small_blocks_are_carved_aligned_and_disjoint(void **state)
{
    (void)state;
    assert_ok(ferry_empty_cache("cpu"));
    enum { N = 20000 };
    ferry_memory_stats m0 = stats();
    ferry_tensor **ts = malloc(sizeof *ts * N);
    void **ptrs = malloc(sizeof *ptrs * N);
    assert_non_null(ts);
    assert_non_null(ptrs);
    for (int i = 0; i < N; i++) {
        ts[i] = one_float((float)i);
        ptrs[i] = data_of(ts[i]);
        assert_int_equal((uintptr_t)ptrs[i] % 64, 0);
    }
    ferry_memory_stats m1 = stats();
    assert_int_equal(m1.allocated - m0.allocated, (uint64_t)N * 64);
    /* 20000 blocks of 64 bytes in 64 KiB slabs: 20 calls, far fewer than one per tensor. */
    uint64_t calls = m1.backend_allocs - m0.backend_allocs;
    if (calls > N / 500)
        fail_msg("%llu backend allocations for %d one-element tensors",
                 (unsigned long long)calls, N);
    qsort(ptrs, N, sizeof *ptrs, cmp_ptr);
    for (int i = 1; i < N; i++)
        assert_true((char *)ptrs[i] - (char *)ptrs[i - 1] >= 64);
    for (int i = 0; i < N; i++)
        assert_true(value_of(ts[i]) == (float)i);
    for (int i = 0; i < N; i++)
        ferry_tensor_release(ts[i]);
    ferry_memory_stats m2 = stats();
    assert_int_equal(m2.allocated, m0.allocated);
    assert_int_equal(m2.backend_frees, m0.backend_frees); /* kept for reuse */
    assert_true(m2.cached - m0.cached >= (uint64_t)N * 64);
    free(ts);
    free(ptrs);
}

/* Freed carved blocks serve the next tensors of their class without a backend call. */
static void test_carved_blocks_are_reused(void **state)
{
    (void)state;
    assert_ok(ferry_empty_cache("cpu"));
    enum { N = 3000 };
    ferry_tensor **ts = malloc(sizeof *ts * N);
    void **before = malloc(sizeof *before * N);
    assert_non_null(ts);
    assert_non_null(before);
    for (int i = 0; i < N; i++) {
        ts[i] = one_float(1.0f);
        before[i] = data_of(ts[i]);
    }
    for (int i = 0; i < N; i++)
        ferry_tensor_release(ts[i]);
    qsort(before, N, sizeof *before, cmp_ptr);
    ferry_memory_stats m0 = stats();
    for (int i = 0; i < N; i++) {
        ts[i] = one_float(2.0f);
        void *p = data_of(ts[i]);
        assert_non_null(bsearch(&p, before, N, sizeof *before, cmp_ptr));
    }
    ferry_memory_stats m1 = stats();
    assert_int_equal(m1.backend_allocs, m0.backend_allocs);
    assert_int_equal(m1.cached + (uint64_t)N * 64, m0.cached);
    for (int i = 0; i < N; i++)
        ferry_tensor_release(ts[i]);
    free(ts);
    free(before);
}

/* Emptying the cache gives back every slab with no live block, and only those: a live
 * tensor keeps its slab and its value. */
static void test_empty_cache_gives_back_wholly_free_slabs(void **state)
{
    (void)state;
    assert_ok(ferry_empty_cache("cpu"));
    ferry_memory_stats m0 = stats();
    enum { N = 5000 }; /* several slabs of the 64-byte class */
    ferry_tensor **ts = malloc(sizeof *ts * N);
    assert_non_null(ts);
    for (int i = 0; i < N; i++)
        ts[i] = one_float((float)i);
    ferry_tensor *big = one_float(0.0f); /* one block of another class beside them */
    ferry_tensor_release(big);
    big = bytes(200);
    uint64_t slabs = stats().backend_allocs - m0.backend_allocs;
    assert_true(slabs >= 3);
    /* Keep the first tensor: its slab stays, the others go back. */
    for (int i = 1; i < N; i++)
        ferry_tensor_release(ts[i]);
    assert_ok(ferry_empty_cache("cpu"));
    ferry_memory_stats m1 = stats();
    assert_int_equal(m1.backend_frees - m0.backend_frees, slabs - 2);
    assert_true(m1.cached > 0); /* the rest of the two slabs still in use */
    assert_true(value_of(ts[0]) == 0.0f);
    ferry_tensor *again = one_float(7.0f); /* served from the kept slab */
    assert_int_equal(stats().backend_allocs, m1.backend_allocs);
    assert_true(value_of(again) == 7.0f && value_of(ts[0]) == 0.0f);
    ferry_tensor_release(again);
    ferry_tensor_release(ts[0]);
    ferry_tensor_release(big);
    assert_ok(ferry_empty_cache("cpu"));
    ferry_memory_stats m2 = stats();
    assert_int_equal(m2.allocated, m0.allocated);
    assert_int_equal(m2.cached, 0);
    assert_int_equal(m2.backend_frees - m0.backend_frees, m2.backend_allocs - m0.backend_allocs);
    free(ts);
}

static void test_empty_cache_gives_kept_handles_back_to_malloc(void **state)
{
    (void)state;
    /* sim:0 holds no tensor here: emptying its cache frees only the kept handles, so the
     * drop in malloc's in-use bytes is theirs, not the cpu slabs'. */
    assert_ok(ferry_empty_cache("sim:0"));
    if (mallinfo2().uordblks == 0)
        skip_because("malloc reports no in-use bytes (a sanitizer's allocator)");
    enum { N = 20000 };
    ferry_tensor **ts = malloc(sizeof *ts * N);
    assert_non_null(ts);
    for (int i = 0; i < N; i++)
        ts[i] = one_float((float)i);
    for (int i = 0; i < N; i++)
        ferry_tensor_release(ts[i]);
    free(ts);
    size_t kept = mallinfo2().uordblks;
    assert_ok(ferry_empty_cache("sim:0"));
    size_t after = mallinfo2().uordblks;
    assert_true(after < kept);
    assert_true(kept - after >= (size_t)N * sizeof(ferry_tensor *) * 8);
    /* New tensors still work once the kept blocks are gone. */
    ferry_tensor *t = one_float(3.0f);
    assert_true(value_of(t) == 3.0f);
    ferry_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_one_element_tensor_takes_one_cache_line),
        cmocka_unit_test(test_many_cached_blocks_are_all_reused),
        cmocka_unit_test(test_a_cached_block_serves_only_requests_it_wastes_a_quarter_of),
        cmocka_unit_test(test_small_blocks_are_carved_aligned_and_disjoint),
        cmocka_unit_test(test_carved_blocks_are_reused),
        cmocka_unit_test(test_empty_cache_gives_back_wholly_free_slabs),
        cmocka_unit_test(test_empty_cache_gives_kept_handles_back_to_malloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

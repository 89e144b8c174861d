/* The caching allocator's size classes: tiny tensors cost a cache line, cached blocks are
 * reused by class whatever their number, and the waste rule holds at class borders. */
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
        ferry_tensor_release(bytes(cases[c].cached));
        uint64_t allocs = stats().backend_allocs;
        ferry_tensor *t = bytes(cases[c].asked);
        if ((stats().backend_allocs == allocs) != cases[c].reused)
            fail_msg("a cached %lld-byte block %s a %lld-byte request",
                     (long long)cases[c].cached, cases[c].reused ? "did not serve" : "served",
                     (long long)cases[c].asked);
        ferry_tensor_release(t);
        assert_ok(ferry_empty_cache("cpu"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_one_element_tensor_takes_one_cache_line),
        cmocka_unit_test(test_many_cached_blocks_are_all_reused),
        cmocka_unit_test(test_a_cached_block_serves_only_requests_it_wastes_a_quarter_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

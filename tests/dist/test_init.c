/* Without a launcher or a plugin: every call before ferry_dist_init gives PyTorch's
 * message, and init names what is missing (a communicator plugin, a bad setting). */
#include <ferry/distributed.h>

#include "test_util.h"

static const char not_init[] = "Default process group has not been initialized, please make "
                               "sure to call init_process_group.";

static void test_calls_before_init_fail_with_pytorchs_message(void **state)
{
    (void)state;
    int64_t n = 4;
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &n, "cpu");
    ferry_tensor *o = ferry_zeros(FERRY_FLOAT32, 1, &n, "cpu");
    assert_tensor(t);
    assert_false(ferry_dist_is_initialized());
    assert_null(ferry_dist_backend());
    assert_int_equal(ferry_dist_rank(), -1);
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_int_equal(ferry_dist_world_size(), -1);
    assert_status(ferry_all_reduce(t, FERRY_DIST_SUM, NULL), FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_status(ferry_broadcast(t, 0, NULL), FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_status(ferry_reduce(t, 0, FERRY_DIST_SUM, NULL), FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_status(ferry_all_gather(o, t, NULL), FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_status(ferry_reduce_scatter(o, t, FERRY_DIST_SUM, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  not_init);
    assert_status(ferry_all_to_all(o, t, NULL), FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_status(ferry_send(t, 1, 0), FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_status(ferry_recv(t, 1, 0), FERRY_ERR_INVALID_ARGUMENT, not_init);
    int src = 5;
    assert_status(ferry_recv_any(t, 0, &src), FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_int_equal(src, -1);
    assert_status(ferry_all_to_all_v(o, NULL, t, NULL, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  not_init);
    assert_status(ferry_dist_barrier(), FERRY_ERR_INVALID_ARGUMENT, not_init);
    int r = 0;
    assert_null(ferry_dist_new_group(&r, 1));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, not_init);
    assert_int_equal(ferry_dist_finalize(), FERRY_OK);
    ferry_tensor_release(t);
    ferry_tensor_release(o);
}

static void test_init_names_a_missing_plugin_and_where_it_looked(void **state)
{
    (void)state;
    assert_status(ferry_dist_init("nosuch"), FERRY_ERR_UNAVAILABLE,
                  "ferry_dist_init: the nosuch communicator is not available: "
                  "libferry-comm-nosuch.so not found (searched ");
    assert_status(ferry_dist_init("Bad-Name"), FERRY_ERR_INVALID_ARGUMENT, "invalid backend name");
    assert_false(ferry_dist_is_initialized());
}

static void test_init_refuses_a_bad_timeout(void **state)
{
    (void)state;
    setenv("FERRY_DIST_TIMEOUT", "soon", 1);
    assert_status(ferry_dist_init("mpi"), FERRY_ERR_INVALID_ARGUMENT,
                  "FERRY_DIST_TIMEOUT='soon' is not a positive number of seconds");
    setenv("FERRY_DIST_TIMEOUT", "-3", 1);
    assert_status(ferry_dist_init("mpi"), FERRY_ERR_INVALID_ARGUMENT, "FERRY_DIST_TIMEOUT='-3'");
    unsetenv("FERRY_DIST_TIMEOUT");
    assert_false(ferry_dist_is_initialized());
}

static void test_listing_says_which_communicators_load(void **state)
{
    (void)state;
    size_t n = ferry_dist_backends();
    assert_true(n >= 2);
    assert_string_equal(ferry_dist_backend_name(0), "mpi");
    assert_string_equal(ferry_dist_backend_name(1), "nccl");
    assert_null(ferry_dist_backend_status("mpi")); /* built with the tests */
    assert_string_equal(ferry_dist_backend_status("frob"), "not a known communicator");
}

/* Without a launcher MPI makes a world of one: nobody to receive from. Last, as MPI
 * cannot start again after its finalize. */
static void test_recv_any_in_a_world_of_one(void **state)
{
    (void)state;
    assert_ok(ferry_dist_init("mpi"));
    assert_int_equal(ferry_dist_world_size(), 1);
    int64_t n = 2;
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, &n, "cpu");
    assert_tensor(t);
    assert_status(ferry_recv_any(t, 0, NULL), FERRY_ERR_INVALID_ARGUMENT,
                  "ferry_recv_any: the world has 1 rank: there is no other rank to receive "
                  "from");
    ferry_tensor_release(t);
    assert_ok(ferry_dist_finalize());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_before_init_fail_with_pytorchs_message),
        cmocka_unit_test(test_init_names_a_missing_plugin_and_where_it_looked),
        cmocka_unit_test(test_init_refuses_a_bad_timeout),
        cmocka_unit_test(test_listing_says_which_communicators_load),
        cmocka_unit_test(test_recv_any_in_a_world_of_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The autograd engine: gradients, graph bookkeeping, every message and refusal of API.md's
 * Autograd section, memory returned after backward, and independent graphs on 8 threads. */
#include <math.h>
#include <pthread.h>

#include "test_util.h"

static ferry_tensor *vec(const double *v, int64_t n, bool rg)
{
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT64, 1, &n, NULL);
    assert_tensor(t);
    if (rg)
        assert_ok(ferry_tensor_set_requires_grad(t, true));
    return t;
}

/* t's elements as doubles (any dtype, any device). */
static void read(ferry_tensor *t, double *out, int64_t n)
{
    ferry_tensor *d = ferry_tensor_detach(t);
    ferry_tensor *c = ferry_tensor_to_dtype(d, FERRY_FLOAT64);
    ferry_tensor *h = ferry_tensor_cpu(c);
    assert_tensor(h);
    assert_int_equal(ferry_tensor_numel(h), n);
    assert_ok(ferry_tensor_copy_to_host(h, out, (size_t)n * sizeof *out));
    ferry_tensor_release(h);
    ferry_tensor_release(c);
    ferry_tensor_release(d);
}

static void assert_grad(ferry_tensor *t, const double *want, int64_t n)
{
    ferry_tensor *g = ferry_tensor_grad(t);
    assert_tensor(g);
    double got[16];
    read(g, got, n);
    for (int64_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > 1e-12 * (1 + fabs(want[i])))
            fail_msg("grad[%lld] = %.17g, want %.17g", (long long)i, got[i], want[i]);
    ferry_tensor_release(g);
}

static void test_autograd_square_sum_gives_twice_x(void **state)
{
    (void)state;
    double xv[4] = {1, 2, 3, 4};
    ferry_tensor *x = vec(xv, 4, true);
    ferry_tensor *y = ferry_mul(x, x);
    ferry_tensor *s = ferry_sum(y, 0, NULL, false);
    assert_tensor(s);
    assert_true(ferry_tensor_requires_grad(y));
    assert_false(ferry_tensor_is_leaf(y));
    assert_true(ferry_tensor_is_leaf(x));
    assert_null(ferry_tensor_grad_fn_name(x));
    assert_string_equal(ferry_tensor_grad_fn_name(y), "MulBackward0");
    assert_string_equal(ferry_tensor_grad_fn_name(s), "SumBackward0");
    assert_null(ferry_tensor_grad(x));
    assert_ok(ferry_backward(s, NULL, false));
    double want[4] = {2, 4, 6, 8};
    assert_grad(x, want, 4);
    ferry_tensor_release(s);
    ferry_tensor_release(y);
    ferry_tensor_release(x);
}

static void test_autograd_node_names_follow_pytorch(void **state)
{
    (void)state;
    double v[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    ferry_tensor *x = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, shape, NULL);
    assert_ok(ferry_tensor_set_requires_grad(x, true));
    int d1 = 1;
    ferry_tensor *xt = ferry_transpose(x, 0, 1);
    struct {
        ferry_tensor *t;
        const char *name;
    } cases[] = {
        {ferry_add(x, x), "AddBackward0"},
        {ferry_add_scalar(x, 2), "AddBackward0"},
        {ferry_sub(x, x), "SubBackward0"},
        {ferry_mul_scalar(x, 0.5), "MulBackward0"},
        {ferry_div(x, x), "DivBackward0"},
        {ferry_pow_scalar(x, 2), "PowBackward0"},
        {ferry_pow(x, x), "PowBackward1"},
        {ferry_maximum(x, x), "MaximumBackward0"},
        {ferry_exp(x), "ExpBackward0"},
        {ferry_tanh(x), "TanhBackward0"},
        {ferry_relu(x), "ReluBackward0"},
        {ferry_sum(x, 1, &d1, false), "SumBackward1"},
        {ferry_mean(x, 0, NULL, false), "MeanBackward0"},
        {ferry_max(x, 0, NULL, false), "MaxBackward1"},
        {ferry_max(x, 1, &d1, false), "AmaxBackward0"},
        {ferry_matmul(x, xt), "MmBackward0"},
        {ferry_transpose(x, 0, 1), "TransposeBackward0"},
        {ferry_reshape(x, 1, (int64_t[]){6}), "ViewBackward0"},
        {ferry_reshape(xt, 1, (int64_t[]){6}), "UnsafeViewBackward0"},
        {ferry_slice(x, 1, 0, 3, 2), "SliceBackward0"},
        {ferry_unsqueeze(x, 0), "UnsqueezeBackward0"},
        {ferry_squeeze(x, 0), "SqueezeBackward1"},
        {ferry_expand(x, 3, (int64_t[]){4, 2, 3}), "ExpandBackward0"},
        {ferry_tensor_to_dtype(x, FERRY_FLOAT64), "ToCopyBackward0"},
        {ferry_tensor_clone(x), "CloneBackward0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_tensor(cases[i].t);
        const char *name = ferry_tensor_grad_fn_name(cases[i].t);
        if (!name || strcmp(name, cases[i].name) != 0)
            fail_msg("case %zu: grad_fn %s, want %s", i, name ? name : "NULL", cases[i].name);
        ferry_tensor_release(cases[i].t);
    }
    /* Comparisons and integer results never require grad. */
    ferry_tensor *c = ferry_lt(x, x);
    ferry_tensor *am = ferry_argmax(x, 0, NULL, false);
    ferry_tensor *i32 = ferry_tensor_to_dtype(x, FERRY_INT32);
    assert_false(ferry_tensor_requires_grad(c));
    assert_false(ferry_tensor_requires_grad(am));
    assert_false(ferry_tensor_requires_grad(i32));
    assert_null(ferry_tensor_grad_fn_name(c));
    ferry_tensor_release(c);
    ferry_tensor_release(am);
    ferry_tensor_release(i32);
    ferry_tensor_release(xt);
    ferry_tensor_release(x);
}

static void test_autograd_broadcast_grads_sum_back_to_input_shape(void **state)
{
    (void)state;
    double av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30};
    int64_t ashape[2] = {2, 3};
    ferry_tensor *a = ferry_tensor_from_data(av, FERRY_FLOAT64, 2, ashape, NULL);
    ferry_tensor *b = vec(bv, 3, true);
    assert_ok(ferry_tensor_set_requires_grad(a, true));
    ferry_tensor *y = ferry_mul(a, b);
    ferry_tensor *s = ferry_sum(y, 0, NULL, false);
    assert_ok(ferry_backward(s, NULL, false));
    double ga[6] = {10, 20, 30, 10, 20, 30}, gb[3] = {5, 7, 9};
    assert_grad(a, ga, 6);
    assert_grad(b, gb, 3);
    ferry_tensor_release(s);
    ferry_tensor_release(y);
    ferry_tensor_release(a);
    ferry_tensor_release(b);
}

static void test_autograd_backward_needs_grad_for_non_scalar(void **state)
{
    (void)state;
    double xv[2] = {1, 2};
    ferry_tensor *x = vec(xv, 2, true);
    ferry_tensor *y = ferry_mul_scalar(x, 3);
    assert_status(ferry_backward(y, NULL, false), FERRY_ERR_INVALID_ARGUMENT,
                  "grad can be implicitly created only for scalar outputs");
    double gv[2] = {1, 10};
    ferry_tensor *g = vec(gv, 2, false);
    assert_ok(ferry_backward(y, g, false));
    double want[2] = {3, 30};
    assert_grad(x, want, 2);
    int64_t three = 3;
    ferry_tensor *bad = ferry_zeros(FERRY_FLOAT64, 1, &three, NULL);
    assert_status(ferry_backward(y, bad, true), FERRY_ERR_INVALID_ARGUMENT, "Mismatch in shape");
    ferry_tensor *leafless = vec(xv, 2, false);
    assert_status(ferry_backward(leafless, g, false), FERRY_ERR_INVALID_ARGUMENT,
                  "element 0 of tensors does not require grad and does not have a grad_fn");
    ferry_tensor_release(leafless);
    ferry_tensor_release(bad);
    ferry_tensor_release(g);
    ferry_tensor_release(y);
    ferry_tensor_release(x);
}

static void test_autograd_second_backward_fails_unless_retained(void **state)
{
    (void)state;
    double xv[2] = {1, 2};
    ferry_tensor *x = vec(xv, 2, true);
    ferry_tensor *y = ferry_mul(x, x);
    ferry_tensor *s = ferry_sum(y, 0, NULL, false);
    assert_ok(ferry_backward(s, NULL, true));
    assert_ok(ferry_backward(s, NULL, false)); /* accumulates */
    double want[2] = {4, 8};
    assert_grad(x, want, 2);
    assert_status(ferry_backward(s, NULL, false), FERRY_ERR_INVALID_ARGUMENT,
                  "Trying to backward through the graph a second time (or directly access saved "
                  "tensors after they have already been freed). Saved intermediate values of the "
                  "graph are freed when you call .backward() or autograd.grad(). Specify "
                  "retain_graph=True if you need to backward through the graph a second time or "
                  "if you need to access saved tensors after calling backward.");
    /* A graph that saved nothing can run again, as in PyTorch. */
    ferry_tensor *z = ferry_add(x, x);
    ferry_tensor *zs = ferry_sum(z, 0, NULL, false);
    assert_ok(ferry_backward(zs, NULL, false));
    assert_ok(ferry_backward(zs, NULL, false));
    ferry_tensor_release(zs);
    ferry_tensor_release(z);
    ferry_tensor_release(s);
    ferry_tensor_release(y);
    ferry_tensor_release(x);
}

static void test_autograd_leaf_in_place_is_refused_in_grad_mode(void **state)
{
    (void)state;
    double xv[2] = {1, 2};
    ferry_tensor *x = vec(xv, 2, true);
    const char *msg = "a leaf Variable that requires grad is being used in an in-place operation.";
    assert_status(ferry_add_scalar_out(x, x, 1), FERRY_ERR_UNSUPPORTED, msg);
    assert_status(ferry_tensor_fill(x, 0), FERRY_ERR_UNSUPPORTED, msg);
    ferry_tensor *o = vec(xv, 2, false);
    assert_status(ferry_tensor_copy_from(x, o), FERRY_ERR_UNSUPPORTED, msg);
    assert_status(ferry_exp_out(x, o), FERRY_ERR_UNSUPPORTED, msg);
    /* Inputs that require grad cannot feed an _out form. */
    assert_status(ferry_add_out(o, x, x), FERRY_ERR_UNSUPPORTED,
                  "add(): functions with out=... arguments don't support automatic "
                  "differentiation, but one of the arguments requires grad.");
    ferry_tensor *so = ferry_sum(o, 0, NULL, false);
    assert_status(ferry_sum_out(so, x, 0, NULL, false), FERRY_ERR_UNSUPPORTED,
                  "sum(): functions with out=...");
    ferry_tensor_release(so);
    assert_status(ferry_tensor_copy_from(o, x), FERRY_ERR_UNSUPPORTED,
                  "copy_: writing a tensor that requires grad into one that does not is not "
                  "differentiable in ferry yet");
    /* A non-leaf cannot be written in place: history is not rebased yet. */
    ferry_tensor *y = ferry_mul_scalar(x, 2);
    assert_status(ferry_tensor_fill(y, 0), FERRY_ERR_UNSUPPORTED,
                  "fill_: in-place write into a tensor that requires grad (the output of "
                  "MulBackward0)");
    ferry_tensor_release(y);
    /* Under no_grad the update is allowed (an SGD step). */
    bool prev = ferry_set_grad_enabled(false);
    assert_true(prev);
    assert_false(ferry_grad_enabled());
    assert_ok(ferry_add_scalar_out(x, x, 1));
    assert_ok(ferry_tensor_fill(x, 5));
    ferry_set_grad_enabled(prev);
    assert_true(ferry_grad_enabled());
    ferry_tensor_release(o);
    ferry_tensor_release(x);
}

static void test_autograd_modified_saved_tensor_fails_backward(void **state)
{
    (void)state;
    double xv[3] = {1, 2, 3};
    ferry_tensor *x = vec(xv, 3, true);
    ferry_tensor *w = vec(xv, 3, false);
    ferry_tensor *y = ferry_mul(x, w); /* saves w */
    ferry_tensor *s = ferry_sum(y, 0, NULL, false);
    assert_ok(ferry_mul_scalar_out(w, w, 2));
    assert_status(ferry_backward(s, NULL, false), FERRY_ERR_INVALID_ARGUMENT,
                  "one of the variables needed for gradient computation has been modified by an "
                  "inplace operation: [ferry.DoubleTensor [3]] is at version 1; expected version 0 "
                  "instead.");
    /* A saved output names the node that made it. */
    ferry_tensor *e = ferry_exp(x);
    ferry_tensor *es = ferry_sum(e, 0, NULL, false);
    bool prev = ferry_set_grad_enabled(false);
    assert_ok(ferry_tensor_fill(e, 0));
    ferry_set_grad_enabled(prev);
    assert_status(ferry_backward(es, NULL, false), FERRY_ERR_INVALID_ARGUMENT,
                  "[ferry.DoubleTensor [3]], which is output 0 of ExpBackward0, is at version 1; "
                  "expected version 0 instead.");
    ferry_tensor_release(es);
    ferry_tensor_release(e);
    ferry_tensor_release(s);
    ferry_tensor_release(y);
    ferry_tensor_release(w);
    ferry_tensor_release(x);
}

static void test_autograd_grad_accessors_check_their_arguments(void **state)
{
    (void)state;
    double xv[2] = {1, 2};
    ferry_tensor *x = vec(xv, 2, true);
    int64_t two = 2, three = 3;
    ferry_tensor *g32 = ferry_zeros(FERRY_FLOAT32, 1, &two, NULL);
    ferry_tensor *g3 = ferry_zeros(FERRY_FLOAT64, 1, &three, NULL);
    ferry_tensor *g = ferry_ones(FERRY_FLOAT64, 1, &two, NULL);
    assert_status(ferry_tensor_set_grad(x, g32), FERRY_ERR_INVALID_ARGUMENT,
                  "attempting to assign a gradient with dtype 'ferry.float32' to a tensor with "
                  "dtype 'ferry.float64'");
    assert_status(ferry_tensor_set_grad(x, g3), FERRY_ERR_INVALID_ARGUMENT,
                  "attempting to assign a gradient of size '[3]' to a tensor of size '[2]'");
    assert_status(ferry_tensor_set_grad(x, x), FERRY_ERR_INVALID_ARGUMENT,
                  "can't assign Variable as its own grad");
    assert_ok(ferry_tensor_set_grad(x, g));
    double one[2] = {1, 1};
    assert_grad(x, one, 2);
    assert_ok(ferry_tensor_set_grad(x, NULL));
    /* No gradient is not an error: the last status stays. */
    ferry_tensor_set_grad(x, g3);
    assert_null(ferry_tensor_grad(x));
    assert_int_equal(ferry_last_status(), FERRY_ERR_INVALID_ARGUMENT);

    ferry_tensor *c = vec(xv, 2, false);
    assert_status(ferry_tensor_retain_grad(c), FERRY_ERR_INVALID_ARGUMENT,
                  "can't retain_grad on Tensor that has requires_grad=False");
    ferry_tensor *y = ferry_mul_scalar(x, 2);
    assert_status(ferry_tensor_set_requires_grad(y, false), FERRY_ERR_INVALID_ARGUMENT,
                  "you can only change requires_grad flags of leaf variables.");
    assert_ok(ferry_tensor_set_requires_grad(y, true));
    ferry_tensor *i = ferry_zeros(FERRY_INT64, 1, &two, NULL);
    assert_status(ferry_tensor_set_requires_grad(i, true), FERRY_ERR_INVALID_ARGUMENT,
                  "only Tensors of floating point dtype can require gradients");
    ferry_tensor *d = ferry_tensor_detach(y);
    assert_true(ferry_tensor_is_leaf(d));
    assert_false(ferry_tensor_requires_grad(d));
    ferry_tensor_release(d);
    ferry_tensor_release(i);
    ferry_tensor_release(y);
    ferry_tensor_release(c);
    ferry_tensor_release(g);
    ferry_tensor_release(g3);
    ferry_tensor_release(g32);
    ferry_tensor_release(x);
}

static void test_autograd_retain_grad_keeps_non_leaf_gradient(void **state)
{
    (void)state;
    double xv[2] = {1, 2};
    ferry_tensor *x = vec(xv, 2, true);
    ferry_tensor *y = ferry_mul_scalar(x, 3);
    ferry_tensor *z = ferry_mul(y, y);
    ferry_tensor *s = ferry_sum(z, 0, NULL, false);
    assert_ok(ferry_tensor_retain_grad(y));
    assert_true(ferry_tensor_retains_grad(y));
    assert_ok(ferry_tensor_retain_grad(x)); /* a leaf: nothing to do */
    assert_ok(ferry_backward(s, NULL, false));
    double gy[2] = {6, 12}, gx[2] = {18, 36};
    assert_grad(y, gy, 2);
    assert_grad(x, gx, 2);
    assert_null(ferry_tensor_grad(z));
    ferry_tensor_release(s);
    ferry_tensor_release(z);
    ferry_tensor_release(y);
    ferry_tensor_release(x);
}

static void test_autograd_grad_mode_off_records_nothing(void **state)
{
    (void)state;
    double xv[2] = {1, 2};
    ferry_tensor *x = vec(xv, 2, true);
    bool prev = ferry_set_grad_enabled(false);
    ferry_tensor *y = ferry_mul(x, x);
    ferry_tensor *u = ferry_unsqueeze(x, 0);
    ferry_tensor *v = ferry_transpose(u, 0, 1);
    ferry_tensor_release(u);
    ferry_set_grad_enabled(prev);
    assert_false(ferry_tensor_requires_grad(y));
    assert_true(ferry_tensor_is_leaf(y));
    assert_false(ferry_tensor_requires_grad(v));
    ferry_tensor_release(v);
    ferry_tensor_release(y);
    ferry_tensor_release(x);
}

static void test_autograd_grad_returns_gradients_without_touching_dot_grad(void **state)
{
    (void)state;
    double xv[3] = {0.5, -1, 2};
    ferry_tensor *x = vec(xv, 3, true);
    ferry_tensor *unused = vec(xv, 3, true);
    ferry_tensor *plain = vec(xv, 3, false);
    ferry_tensor *y = ferry_mul(x, x);
    ferry_tensor *s = ferry_sum(y, 0, NULL, false);
    ferry_tensor *g[1] = {NULL};
    assert_ok(ferry_autograd_grad(1, &s, NULL, 1, &x, g, true, false));
    double got[3];
    read(g[0], got, 3);
    for (int i = 0; i < 3; i++)
        assert_true(got[i] == 2 * xv[i]);
    assert_false(ferry_tensor_requires_grad(g[0]));
    assert_null(ferry_tensor_grad(x));
    ferry_tensor_release(g[0]);
    assert_status(ferry_autograd_grad(1, &s, NULL, 1, &unused, g, true, false),
                  FERRY_ERR_INVALID_ARGUMENT,
                  "One of the differentiated Tensors appears to not have been used in the graph. "
                  "Set allow_unused=True if this is the desired behavior.");
    assert_null(g[0]);
    assert_status(ferry_autograd_grad(1, &s, NULL, 1, &plain, g, true, false),
                  FERRY_ERR_INVALID_ARGUMENT,
                  "One of the differentiated Tensors does not require grad");
    /* Gradient with respect to a non-leaf. */
    assert_ok(ferry_autograd_grad(1, &s, NULL, 1, &y, g, false, false));
    read(g[0], got, 3);
    for (int i = 0; i < 3; i++)
        assert_true(got[i] == 1);
    ferry_tensor_release(g[0]);
    ferry_tensor_release(s);
    ferry_tensor_release(y);
    ferry_tensor_release(plain);
    ferry_tensor_release(unused);
    ferry_tensor_release(x);
}

/* f = sum(tanh(x)^3): grad = 3 t^2 (1 - t^2), and the Hessian is diagonal with
 * (6 t - 12 t^3)(1 - t^2), so H v = v (6 t - 12 t^3)(1 - t^2). */
static void test_autograd_hessian_vector_product_of_tanh_cubed(void **state)
{
    (void)state;
    double xv[4] = {-1.5, -0.2, 0.3, 1.1}, vv[4] = {1, -2, 0.5, 3};
    ferry_tensor *x = vec(xv, 4, true);
    ferry_tensor *v = vec(vv, 4, false);
    ferry_tensor *t = ferry_tanh(x);
    ferry_tensor *c = ferry_pow_scalar(t, 3);
    ferry_tensor *f = ferry_sum(c, 0, NULL, false);
    ferry_tensor *g[1] = {NULL};
    assert_ok(ferry_autograd_grad(1, &f, NULL, 1, &x, g, true, true));
    assert_true(ferry_tensor_requires_grad(g[0]));
    double got[4];
    read(g[0], got, 4);
    for (int i = 0; i < 4; i++) {
        double th = tanh(xv[i]);
        assert_true(fabs(got[i] - 3 * th * th * (1 - th * th)) < 1e-12);
    }
    ferry_tensor *gv = ferry_mul(g[0], v);
    ferry_tensor *gvs = ferry_sum(gv, 0, NULL, false);
    ferry_tensor *h[1] = {NULL};
    assert_ok(ferry_autograd_grad(1, &gvs, NULL, 1, &x, h, false, false));
    read(h[0], got, 4);
    for (int i = 0; i < 4; i++) {
        double th = tanh(xv[i]);
        double want = vv[i] * (6 * th - 12 * th * th * th) * (1 - th * th);
        if (fabs(got[i] - want) > 1e-12)
            fail_msg("Hv[%d] = %.17g, want %.17g", i, got[i], want);
    }
    ferry_tensor_release(h[0]);
    ferry_tensor_release(gvs);
    ferry_tensor_release(gv);
    ferry_tensor_release(g[0]);
    ferry_tensor_release(f);
    ferry_tensor_release(c);
    ferry_tensor_release(t);
    ferry_tensor_release(v);
    ferry_tensor_release(x);
}

static void test_autograd_graph_memory_is_returned_after_backward(void **state)
{
    (void)state;
    ferry_memory_stats before, after;
    int64_t shape[2] = {64, 64};
    ferry_tensor *w = ferry_ones(FERRY_FLOAT32, 2, shape, NULL);
    ferry_tensor *x = ferry_ones(FERRY_FLOAT32, 2, shape, NULL);
    assert_ok(ferry_tensor_set_requires_grad(w, true));
    assert_ok(ferry_memory_stats_get("cpu", &before));
    ferry_tensor *h = ferry_matmul(x, w);
    ferry_tensor *a = ferry_tanh(h);
    ferry_tensor *m = ferry_mean(a, 0, NULL, false);
    ferry_tensor_release(h);
    ferry_tensor_release(a);
    assert_ok(ferry_backward(m, NULL, false));
    ferry_tensor_release(m);
    ferry_tensor *g = ferry_tensor_grad(w);
    assert_tensor(g);
    ferry_tensor_release(g);
    assert_ok(ferry_tensor_set_grad(w, NULL));
    assert_ok(ferry_memory_stats_get("cpu", &after));
    assert_int_equal(after.allocated, before.allocated);
    ferry_tensor_release(w);
    ferry_tensor_release(x);
}

static void test_autograd_long_chain_releases_without_recursion(void **state)
{
    (void)state;
    double one = 1.0;
    ferry_tensor *x = vec(&one, 1, true);
    ferry_tensor *y = ferry_tensor_retain(x);
    for (int i = 0; i < 100000; i++) {
        ferry_tensor *z = ferry_mul_scalar(y, 1.0);
        assert_tensor(z);
        ferry_tensor_release(y);
        y = z;
    }
    ferry_tensor_release(y); /* drops 100000 nodes */
    y = ferry_tensor_retain(x);
    for (int i = 0; i < 20000; i++) {
        ferry_tensor *z = ferry_add_scalar(y, 1.0);
        ferry_tensor_release(y);
        y = z;
    }
    assert_ok(ferry_backward(y, NULL, false));
    double want = 1;
    assert_grad(x, &want, 1);
    ferry_tensor_release(y);
    ferry_tensor_release(x);
}

static void test_autograd_to_another_device_sends_gradient_back(void **state)
{
    (void)state;
    if (!ferry_is_available("sim"))
        skip_because("sim: %s", ferry_backend_status("sim"));
    double xv[3] = {1, 2, 3};
    ferry_tensor *x = vec(xv, 3, true);
    ferry_tensor *xs = ferry_tensor_to(x, "sim:0");
    assert_tensor(xs);
    assert_string_equal(ferry_tensor_grad_fn_name(xs), "ToCopyBackward0");
    ferry_tensor *y = ferry_mul(xs, xs);
    ferry_tensor *s = ferry_sum(y, 0, NULL, false);
    assert_ok(ferry_backward(s, NULL, false));
    ferry_tensor *g = ferry_tensor_grad(x);
    assert_tensor(g);
    assert_string_equal(ferry_tensor_device(g).type, "cpu");
    ferry_tensor_release(g);
    double want[3] = {2, 4, 6};
    assert_grad(x, want, 3);
    ferry_tensor_release(s);
    ferry_tensor_release(y);
    ferry_tensor_release(xs);
    ferry_tensor_release(x);
}

/* Grad mode is per thread, and each thread backpropagates through its own graph. */
typedef struct {
    int id;
    int failures;
    char message[256];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    if (w->id % 2)
        ferry_set_grad_enabled(false); /* must not leak into other threads */
    ferry_set_grad_enabled(true);
    for (int r = 0; r < 50 && !w->failures; r++) {
        double xv[3] = {w->id + 1.0, r * 0.5, -1.0};
        int64_t n = 3;
        ferry_tensor *x = ferry_tensor_from_data(xv, FERRY_FLOAT64, 1, &n, NULL);
        ferry_tensor_set_requires_grad(x, true);
        ferry_tensor *y = ferry_mul(x, x);
        ferry_tensor *t = ferry_tanh(y);
        ferry_tensor *s = ferry_sum(t, 0, NULL, false);
        ferry_status st = s ? ferry_backward(s, NULL, false) : ferry_last_status();
        ferry_tensor *g = ferry_tensor_grad(x);
        double got[3];
        if (st != FERRY_OK || !g || ferry_tensor_copy_to_host(g, got, sizeof got) != FERRY_OK) {
            w->failures++;
            snprintf(w->message, sizeof w->message, "round %d: %s", r, ferry_last_error());
        } else {
            for (int i = 0; i < 3; i++) {
                double th = tanh(xv[i] * xv[i]);
                if (fabs(got[i] - 2 * xv[i] * (1 - th * th)) > 1e-12) {
                    w->failures++;
                    snprintf(w->message, sizeof w->message, "round %d: element %d differs", r, i);
                }
            }
        }
        ferry_tensor_release(g);
        ferry_tensor_release(s);
        ferry_tensor_release(t);
        ferry_tensor_release(y);
        ferry_tensor_release(x);
    }
    return NULL;
}

static void test_autograd_eight_threads_run_their_own_graphs(void **state)
{
    (void)state;
    pthread_t th[8];
    worker w[8];
    ferry_set_grad_enabled(false);
    for (int i = 0; i < 8; i++) {
        w[i] = (worker){.id = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_false(ferry_grad_enabled()); /* this thread's mode is its own */
    ferry_set_grad_enabled(true);
    for (int i = 0; i < 8; i++)
        if (w[i].failures)
            fail_msg("thread %d: %s", i, w[i].message);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_autograd_square_sum_gives_twice_x),
        cmocka_unit_test(test_autograd_node_names_follow_pytorch),
        cmocka_unit_test(test_autograd_broadcast_grads_sum_back_to_input_shape),
        cmocka_unit_test(test_autograd_backward_needs_grad_for_non_scalar),
        cmocka_unit_test(test_autograd_second_backward_fails_unless_retained),
        cmocka_unit_test(test_autograd_leaf_in_place_is_refused_in_grad_mode),
        cmocka_unit_test(test_autograd_modified_saved_tensor_fails_backward),
        cmocka_unit_test(test_autograd_grad_accessors_check_their_arguments),
        cmocka_unit_test(test_autograd_retain_grad_keeps_non_leaf_gradient),
        cmocka_unit_test(test_autograd_grad_mode_off_records_nothing),
        cmocka_unit_test(test_autograd_grad_returns_gradients_without_touching_dot_grad),
        cmocka_unit_test(test_autograd_hessian_vector_product_of_tanh_cubed),
        cmocka_unit_test(test_autograd_graph_memory_is_returned_after_backward),
        cmocka_unit_test(test_autograd_long_chain_releases_without_recursion),
        cmocka_unit_test(test_autograd_to_another_device_sends_gradient_back),
        cmocka_unit_test(test_autograd_eight_threads_run_their_own_graphs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Gradient check: every differentiable op, in float32 and float64, with inputs in each
 * layout (contiguous, transposed, sliced, expanded) and broadcast against each other, on
 * every device. The analytic gradient of L = sum(f(x) * w) from ferry_backward is
 * compared with central finite differences of L computed here in double precision (the
 * forward evaluated on the cpu in float64 with host-perturbed inputs; no engine involved).
 * Second derivatives (create_graph) are checked the same way for a set of ops. */
#include "conformance.h"

#define MAX_IN 2

typedef ferry_tensor *(*grad_fn)(ferry_tensor *const *in);

typedef struct gcase {
    const char *name;
    grad_fn fn;
    int nin;
    int ndim[MAX_IN];
    int64_t shape[MAX_IN][4];
    double lo, hi; /* input values, kept clear of kinks and ties */
} gcase;

/* ---- the functions under test ---------------------------------------------------- */

#define UNARY(op)                                                                           \
    static ferry_tensor *f_##op(ferry_tensor *const *in)                                    \
    {                                                                                       \
        return ferry_##op(in[0]);                                                           \
    }
UNARY(neg) UNARY(abs) UNARY(exp) UNARY(log) UNARY(sqrt) UNARY(sin) UNARY(cos) UNARY(tanh)
UNARY(sigmoid) UNARY(relu)

#define BINARY(op)                                                                          \
    static ferry_tensor *f_##op(ferry_tensor *const *in)                                    \
    {                                                                                       \
        return ferry_##op(in[0], in[1]);                                                    \
    }
BINARY(add) BINARY(sub) BINARY(mul) BINARY(div) BINARY(pow) BINARY(maximum) BINARY(minimum)
BINARY(matmul)

/* The ELEM2 ops (core/ops/elementwise2.c). */
UNARY(reciprocal) UNARY(rsqrt) UNARY(log1p) UNARY(expm1) UNARY(log2) UNARY(log10) UNARY(exp2)
UNARY(erf) UNARY(tan) UNARY(asin) UNARY(acos) UNARY(atan) UNARY(sinh) UNARY(cosh) UNARY(gelu)
UNARY(silu) UNARY(softplus) UNARY(leaky_relu) UNARY(square)
BINARY(atan2) BINARY(hypot)
static ferry_tensor *f_gelu_tanh(ferry_tensor *const *in) { return ferry_gelu_ex(in[0], true); }
static ferry_tensor *f_softplus_b(ferry_tensor *const *in) { return ferry_softplus_ex(in[0], 2.0, 1.0); }
static ferry_tensor *f_leaky_s(ferry_tensor *const *in) { return ferry_leaky_relu_ex(in[0], 0.2); }
static ferry_tensor *f_atan2_s(ferry_tensor *const *in) { return ferry_atan2_scalar(in[0], 0.75); }
static ferry_tensor *f_where(ferry_tensor *const *in)
{
    ferry_tensor *c = ferry_gt_scalar(in[0], 0.0);
    ferry_tensor *r = c ? ferry_where(c, in[0], in[1]) : NULL;
    ferry_tensor_release(c);
    return r;
}
static ferry_tensor *f_masked_fill(ferry_tensor *const *in)
{
    ferry_tensor *c = ferry_gt_scalar(in[0], 0.5);
    ferry_tensor *r = c ? ferry_masked_fill(in[0], c, 2.0) : NULL;
    ferry_tensor_release(c);
    return r;
}
static ferry_tensor *f_clamp(ferry_tensor *const *in)
{
    ferry_scalar lo = {FERRY_SCALAR_FLOAT, {.f = -0.99}}, hi = {FERRY_SCALAR_FLOAT, {.f = 1.01}};
    return ferry_clamp_scalar(in[0], &lo, &hi);
}

static ferry_tensor *f_add_s(ferry_tensor *const *in) { return ferry_add_scalar(in[0], 1.5); }
/* A fresh generator each call: the same mask on every evaluation and, being
 * counter-based, on every device. */
static ferry_tensor *f_dropout(ferry_tensor *const *in)
{
    ferry_generator *g = ferry_generator_create(7);
    ferry_tensor *r = g ? ferry_dropout(in[0], 0.4, true, g) : NULL;
    ferry_generator_release(g);
    return r;
}
static ferry_tensor *f_sub_s(ferry_tensor *const *in) { return ferry_sub_scalar(in[0], 0.25); }
static ferry_tensor *f_mul_s(ferry_tensor *const *in) { return ferry_mul_scalar(in[0], -3.0); }
static ferry_tensor *f_div_s(ferry_tensor *const *in) { return ferry_div_scalar(in[0], 4.0); }
static ferry_tensor *f_pow_s(ferry_tensor *const *in) { return ferry_pow_scalar(in[0], 3.0); }
static ferry_tensor *f_pow_h(ferry_tensor *const *in) { return ferry_pow_scalar(in[0], 0.5); }
static ferry_tensor *f_max_s(ferry_tensor *const *in) { return ferry_maximum_scalar(in[0], 0.1); }
static ferry_tensor *f_rsub_s(ferry_tensor *const *in) { return ferry_rsub_scalar(in[0], 0.25); }
static ferry_tensor *f_rdiv_s(ferry_tensor *const *in) { return ferry_rdiv_scalar(in[0], 1.5); }
static ferry_tensor *f_rpow_s(ferry_tensor *const *in) { return ferry_rpow_scalar(in[0], 2.5); }
static ferry_tensor *f_rrem_s(ferry_tensor *const *in) { return ferry_rremainder_scalar(in[0], 2.75); }
static ferry_tensor *f_min_s(ferry_tensor *const *in) { return ferry_minimum_scalar(in[0], 0.1); }

static ferry_tensor *f_sum(ferry_tensor *const *in) { return ferry_sum(in[0], 0, NULL, false); }
static ferry_tensor *f_sum0(ferry_tensor *const *in)
{
    int d = 0;
    return ferry_sum(in[0], 1, &d, false);
}
static ferry_tensor *f_sum1k(ferry_tensor *const *in)
{
    int d = -1;
    return ferry_sum(in[0], 1, &d, true);
}
static ferry_tensor *f_mean(ferry_tensor *const *in) { return ferry_mean(in[0], 0, NULL, false); }
static ferry_tensor *f_mean1(ferry_tensor *const *in)
{
    int d = 1;
    return ferry_mean(in[0], 1, &d, false);
}
static ferry_tensor *f_max(ferry_tensor *const *in) { return ferry_max(in[0], 0, NULL, false); }
static ferry_tensor *f_min(ferry_tensor *const *in) { return ferry_min(in[0], 0, NULL, false); }
static ferry_tensor *f_max1(ferry_tensor *const *in)
{
    int d = 1;
    return ferry_max(in[0], 1, &d, false);
}
/* Sorting: the values' gradient goes back to where each value came from. The sorted dim
 * is never the first, which the expanded layout repeats (ties are kinks). */
static ferry_tensor *f_sort1(ferry_tensor *const *in)
{
    ferry_tensor *v = NULL, *i = NULL;
    ferry_sort(in[0], 1, false, false, &v, &i);
    ferry_tensor_release(i);
    return v;
}
static ferry_tensor *f_sort0d(ferry_tensor *const *in)
{
    ferry_tensor *v = NULL;
    ferry_sort(in[0], 1, true, true, &v, NULL);
    return v;
}
static ferry_tensor *f_topk2(ferry_tensor *const *in)
{
    ferry_tensor *v = NULL, *i = NULL;
    ferry_topk(in[0], 2, -1, true, true, &v, &i);
    ferry_tensor_release(i);
    return v;
}
static ferry_tensor *f_topk1s(ferry_tensor *const *in)
{
    ferry_tensor *v = NULL, *i = NULL;
    ferry_topk(in[0], 1, 1, false, true, &v, &i);
    ferry_tensor_release(i);
    return v;
}
static ferry_tensor *f_min0k(ferry_tensor *const *in)
{
    int d = 0;
    return ferry_min(in[0], 1, &d, true);
}

static ferry_tensor *f_reshape(ferry_tensor *const *in)
{
    int64_t s[2] = {3, -1};
    return ferry_reshape(in[0], 2, s);
}
static ferry_tensor *f_view(ferry_tensor *const *in)
{
    /* view needs compatible strides; reshape falls back to a copy otherwise */
    ferry_tensor *c = ferry_tensor_contiguous(in[0]);
    int64_t s[1] = {-1};
    ferry_tensor *r = c ? ferry_view(c, 1, s) : NULL;
    ferry_tensor_release(c);
    return r;
}
static ferry_tensor *f_transpose(ferry_tensor *const *in) { return ferry_transpose(in[0], 0, 1); }
static ferry_tensor *f_permute(ferry_tensor *const *in)
{
    int p[3] = {2, 0, 1};
    return ferry_permute(in[0], 3, p);
}
static ferry_tensor *f_slice(ferry_tensor *const *in) { return ferry_slice(in[0], 1, 0, 3, 2); }
static ferry_tensor *f_slice_neg(ferry_tensor *const *in)
{
    return ferry_slice(in[0], -1, -2, 100, 1);
}
static ferry_tensor *f_expand(ferry_tensor *const *in)
{
    int64_t s[3] = {2, 2, 3};
    return ferry_expand(in[0], 3, s);
}
static ferry_tensor *f_squeeze(ferry_tensor *const *in) { return ferry_squeeze(in[0], 1); }
static ferry_tensor *f_squeeze_all(ferry_tensor *const *in) { return ferry_squeeze_all(in[0]); }
static ferry_tensor *f_unsqueeze(ferry_tensor *const *in) { return ferry_unsqueeze(in[0], 1); }
static ferry_tensor *f_flatten(ferry_tensor *const *in) { return ferry_flatten(in[0], 0, -1); }
static ferry_tensor *f_clone(ferry_tensor *const *in) { return ferry_tensor_clone(in[0]); }
static ferry_tensor *f_contiguous(ferry_tensor *const *in)
{
    return ferry_tensor_contiguous(in[0]);
}
/* float32 inputs go through float64 and their gradient back to float32 (float64 ones
 * stay: a float32 detour would leave finite differences without the digits to check). */
static ferry_tensor *f_to_dtype(ferry_tensor *const *in)
{
    ferry_tensor *c = ferry_tensor_to_dtype(in[0], FERRY_FLOAT64);
    ferry_tensor *s = c ? ferry_mul(c, c) : NULL;
    ferry_tensor_release(c);
    return s;
}
/* to() the cpu and back: the gradient crosses devices twice. */
static ferry_tensor *f_to_cpu(ferry_tensor *const *in)
{
    ferry_tensor *c = ferry_tensor_cpu(in[0]);
    ferry_tensor *e = c ? ferry_exp(c) : NULL;
    char dev[32];
    ferry_device_format(ferry_tensor_device(in[0]), dev, sizeof dev);
    ferry_tensor *b = e ? ferry_tensor_to(e, dev) : NULL;
    ferry_tensor *r = b ? ferry_mul(b, in[0]) : NULL;
    ferry_tensor_release(c);
    ferry_tensor_release(e);
    ferry_tensor_release(b);
    return r;
}
/* Joining and shape ops (core/ops/shape.c). */
static ferry_tensor *f_cat(ferry_tensor *const *in)
{
    const ferry_tensor *l[2] = {in[0], in[1]};
    return ferry_cat(l, 2, -1);
}
/* Three inputs record as a fold of two-input nodes; one input appears twice. */
static ferry_tensor *f_cat3(ferry_tensor *const *in)
{
    const ferry_tensor *l[3] = {in[0], in[1], in[0]};
    return ferry_cat(l, 3, 0);
}
static ferry_tensor *f_stack(ferry_tensor *const *in)
{
    const ferry_tensor *l[2] = {in[0], in[1]};
    return ferry_stack(l, 2, 1);
}
static ferry_tensor *f_flip(ferry_tensor *const *in)
{
    return ferry_flip(in[0], 2, (int[]){0, -1});
}
/* shape2: triangles, diagonals, constant padding. */
static ferry_tensor *f_tril(ferry_tensor *const *in) { return ferry_tril(in[0], -1); }
static ferry_tensor *f_triu(ferry_tensor *const *in) { return ferry_triu(in[0], 1); }
static ferry_tensor *f_diagonal(ferry_tensor *const *in) { return ferry_diagonal(in[0], 1, 2, 0); }
static ferry_tensor *f_diag_embed(ferry_tensor *const *in)
{
    return ferry_diag_embed(in[0], -1, 0, 2);
}
static ferry_tensor *f_pad(ferry_tensor *const *in)
{
    return ferry_pad(in[0], 4, (int64_t[]){1, -1, 2, 0}, 0.5);
}
static ferry_tensor *f_narrow(ferry_tensor *const *in)
{
    return ferry_narrow(in[0], 1, -2, 2);
}
static ferry_tensor *f_split(ferry_tensor *const *in)
{
    ferry_tensor *p[2] = {NULL, NULL};
    if (ferry_split(in[0], 2, 1, p, 2) != 2)
        return NULL;
    ferry_tensor *r = ferry_mul(p[0], p[1]);
    ferry_tensor_release(p[0]);
    ferry_tensor_release(p[1]);
    return r;
}
static ferry_tensor *f_chunk(ferry_tensor *const *in)
{
    ferry_tensor *p[3] = {NULL, NULL, NULL};
    if (ferry_chunk(in[0], 3, 1, p, 3) != 2)
        return NULL;
    ferry_tensor *r = ferry_sub(p[1], p[0]);
    ferry_tensor_release(p[0]);
    ferry_tensor_release(p[1]);
    return r;
}
static ferry_tensor *f_unbind(ferry_tensor *const *in)
{
    ferry_tensor *p[2] = {NULL, NULL};
    if (ferry_unbind(in[0], 0, p, 2) != 2)
        return NULL;
    ferry_tensor *r = ferry_mul(p[0], p[1]);
    ferry_tensor_release(p[0]);
    ferry_tensor_release(p[1]);
    return r;
}
static ferry_tensor *f_movedim(ferry_tensor *const *in)
{
    return ferry_movedim(in[0], 1, (int[]){0}, (int[]){-1});
}
static ferry_tensor *f_broadcast_to(ferry_tensor *const *in)
{
    return ferry_broadcast_to(in[0], 3, (int64_t[]){2, 2, 3});
}
static ferry_tensor *f_roll(ferry_tensor *const *in)
{
    return ferry_roll(in[0], 2, (int64_t[]){1, -2}, 2, (int[]){0, 1});
}
static ferry_tensor *f_repeat(ferry_tensor *const *in)
{
    return ferry_repeat(in[0], 3, (int64_t[]){2, 1, 3});
}
/* A composite: softmax cross-entropy style, the MLP example's loss. */
static ferry_tensor *f_logsumexp(ferry_tensor *const *in)
{
    int d = 1;
    ferry_tensor *m = ferry_max(in[0], 1, &d, true);
    ferry_tensor *md = m ? ferry_tensor_detach(m) : NULL;
    ferry_tensor *z = md ? ferry_sub(in[0], md) : NULL;
    ferry_tensor *e = z ? ferry_exp(z) : NULL;
    ferry_tensor *s = e ? ferry_sum(e, 1, &d, true) : NULL;
    ferry_tensor *l = s ? ferry_log(s) : NULL;
    ferry_tensor *r = l ? ferry_add(l, md) : NULL;
    ferry_tensor_release(m);
    ferry_tensor_release(md);
    ferry_tensor_release(z);
    ferry_tensor_release(e);
    ferry_tensor_release(s);
    ferry_tensor_release(l);
    return r;
}


/* reduce2 (core/ops/reduce2.c) */
static ferry_tensor *f_prod(ferry_tensor *const *in) { return ferry_prod(in[0], 0, NULL, false); }
static ferry_tensor *f_prod1(ferry_tensor *const *in)
{
    int d = 1;
    return ferry_prod(in[0], 1, &d, false);
}
static ferry_tensor *f_lse1(ferry_tensor *const *in)
{
    int d = 1;
    return ferry_logsumexp(in[0], 1, &d, false);
}
static ferry_tensor *f_var0(ferry_tensor *const *in)
{
    int d = 0;
    return ferry_var(in[0], 1, &d, true, 1.0);
}
static ferry_tensor *f_std(ferry_tensor *const *in) { return ferry_std(in[0], 0, NULL, false, 1.0); }
static ferry_tensor *f_norm2(ferry_tensor *const *in) { return ferry_norm(in[0], 2.0, 0, NULL, false); }
static ferry_tensor *f_norm3(ferry_tensor *const *in)
{
    int d = -1;
    return ferry_norm(in[0], 3.0, 1, &d, false);
}
static ferry_tensor *f_maxdim(ferry_tensor *const *in)
{
    ferry_tensor *v = NULL, *i = NULL;
    ferry_max_dim(in[0], 1, false, &v, &i);
    ferry_tensor_release(i);
    return v;
}
static ferry_tensor *f_mindim(ferry_tensor *const *in)
{
    ferry_tensor *v = NULL, *i = NULL;
    ferry_min_dim(in[0], -1, true, &v, &i);
    ferry_tensor_release(i);
    return v;
}
static ferry_tensor *f_cumsum(ferry_tensor *const *in) { return ferry_cumsum(in[0], 1); }
static ferry_tensor *f_cumprod(ferry_tensor *const *in) { return ferry_cumprod(in[0], 0); }
static ferry_tensor *f_softmax(ferry_tensor *const *in) { return ferry_softmax(in[0], 1); }
static ferry_tensor *f_log_softmax(ferry_tensor *const *in) { return ferry_log_softmax(in[0], 0); }
/* Indexing: repeated and negative indices, so gradients accumulate and wrap; the index
 * lives on the input's device. */
static ferry_tensor *index_on(ferry_tensor *like, int ndim, const int64_t *shape,
                              const int64_t *v)
{
    char dev[32];
    ferry_device_format(ferry_tensor_device(like), dev, sizeof dev);
    return ferry_tensor_from_data(v, FERRY_INT64, ndim, shape, dev);
}
static ferry_tensor *f_gather(ferry_tensor *const *in)
{
    ferry_tensor *i = index_on(in[0], 2, (int64_t[]){2, 4}, (int64_t[]){0, 2, 2, 1, 1, 0, -1, 0});
    ferry_tensor *r = i ? ferry_gather(in[0], 1, i) : NULL;
    ferry_tensor_release(i);
    return r;
}
static ferry_tensor *f_index_select(ferry_tensor *const *in)
{
    ferry_tensor *i = index_on(in[0], 1, (int64_t[]){4}, (int64_t[]){2, 0, 2, -1});
    ferry_tensor *r = i ? ferry_index_select(in[0], 1, i) : NULL;
    ferry_tensor_release(i);
    return r;
}
static ferry_tensor *f_scatter(ferry_tensor *const *in)
{
    ferry_tensor *i = index_on(in[0], 2, (int64_t[]){2, 2}, (int64_t[]){0, 2, 1, -3});
    ferry_tensor *r = i ? ferry_scatter(in[0], 1, i, in[1]) : NULL;
    ferry_tensor_release(i);
    return r;
}
static ferry_tensor *f_scatter_add(ferry_tensor *const *in)
{
    ferry_tensor *i = index_on(in[0], 2, (int64_t[]){2, 2}, (int64_t[]){0, 0, 2, -1});
    ferry_tensor *r = i ? ferry_scatter_add(in[0], 1, i, in[1]) : NULL;
    ferry_tensor_release(i);
    return r;
}
/* Selection: a fixed mask on the input's device, broadcast against the input (select)
 * and with fewer true elements than source holds (scatter: source's tail gets zeros). */
static ferry_tensor *mask_on(ferry_tensor *like, int ndim, const int64_t *shape, const bool *v)
{
    char dev[32];
    ferry_device_format(ferry_tensor_device(like), dev, sizeof dev);
    return ferry_tensor_from_data(v, FERRY_BOOL, ndim, shape, dev);
}
static ferry_tensor *f_masked_select(ferry_tensor *const *in)
{
    ferry_tensor *m = mask_on(in[0], 3, (int64_t[]){2, 2, 3},
                              (bool[]){1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1});
    ferry_tensor *r = m ? ferry_masked_select(in[0], m) : NULL;
    ferry_tensor_release(m);
    return r;
}
static ferry_tensor *f_masked_scatter(ferry_tensor *const *in)
{
    ferry_tensor *m = mask_on(in[0], 1, (int64_t[]){3}, (bool[]){1, 0, 1});
    ferry_tensor *r = m ? ferry_masked_scatter(in[0], m, in[1]) : NULL;
    ferry_tensor_release(m);
    return r;
}

/* Advanced indexing: t[[2, 0, 2, -1]] along dim 1, and indices of dims 0 and 2
 * separated by a whole dim (their broadcast dims go first); index_put_ into a clone
 * (a non-leaf, so the write is recorded), assigning and accumulating duplicates with
 * values broadcast from a row. */
static ferry_tensor *f_index(ferry_tensor *const *in)
{
    ferry_tensor *i = index_on(in[0], 1, (int64_t[]){4}, (int64_t[]){2, 0, 2, -1});
    const ferry_tensor *idx[2] = {NULL, i};
    ferry_tensor *r = i ? ferry_index(in[0], 2, idx) : NULL;
    ferry_tensor_release(i);
    return r;
}
static ferry_tensor *f_index_apart(ferry_tensor *const *in)
{
    ferry_tensor *a = index_on(in[0], 2, (int64_t[]){2, 1}, (int64_t[]){0, -1});
    ferry_tensor *b = index_on(in[0], 1, (int64_t[]){3}, (int64_t[]){1, 0, 1});
    const ferry_tensor *idx[3] = {a, NULL, b};
    ferry_tensor *r = a && b ? ferry_index(in[0], 3, idx) : NULL;
    ferry_tensor_release(a);
    ferry_tensor_release(b);
    return r;
}
static ferry_tensor *index_put_case(ferry_tensor *const *in, const int64_t *iv, int64_t n,
                                    bool acc)
{
    ferry_tensor *i = index_on(in[0], 1, (int64_t[]){n}, iv);
    ferry_tensor *c = i ? ferry_tensor_clone(in[0]) : NULL;
    const ferry_tensor *idx[1] = {i};
    if (c && ferry_index_put(c, 1, idx, in[1], acc) != FERRY_OK) {
        ferry_tensor_release(c);
        c = NULL;
    }
    ferry_tensor_release(i);
    return c;
}
static ferry_tensor *f_index_put(ferry_tensor *const *in)
{
    return index_put_case(in, (int64_t[]){2, 0}, 2, false);
}
static ferry_tensor *f_index_put_acc(ferry_tensor *const *in)
{
    return index_put_case(in, (int64_t[]){1, 1, -2, 0}, 4, true);
}

static const gcase cases[] = {
    {"masked_select", f_masked_select, 1, {2}, {{2, 3}}, -2, 2},
    {"masked_scatter", f_masked_scatter, 2, {2, 2}, {{2, 3}, {3, 2}}, -2, 2},
    {"gather", f_gather, 1, {2}, {{2, 3}}, -2, 2},
    {"index_select", f_index_select, 1, {2}, {{2, 3}}, -2, 2},
    {"scatter", f_scatter, 2, {2, 2}, {{2, 3}, {2, 3}}, -2, 2},
    {"scatter_add", f_scatter_add, 2, {2, 2}, {{2, 3}, {2, 3}}, -2, 2},
    {"index", f_index, 1, {2}, {{2, 3}}, -2, 2},
    {"index_apart", f_index_apart, 1, {3}, {{2, 3, 2}}, -2, 2},
    {"index_put", f_index_put, 2, {2, 2}, {{3, 4}, {2, 4}}, -2, 2},
    {"index_put_acc", f_index_put_acc, 2, {2, 1}, {{3, 4}, {4}}, -2, 2},
    {"neg", f_neg, 1, {2}, {{2, 3}}, -2, 2},
    {"abs", f_abs, 1, {2}, {{2, 3}}, -2, 2},
    {"exp", f_exp, 1, {2}, {{2, 3}}, -2, 2},
    {"log", f_log, 1, {2}, {{2, 3}}, 0.5, 3},
    {"sqrt", f_sqrt, 1, {2}, {{2, 3}}, 0.5, 3},
    {"sin", f_sin, 1, {2}, {{2, 3}}, -2, 2},
    {"cos", f_cos, 1, {2}, {{2, 3}}, -2, 2},
    {"tanh", f_tanh, 1, {2}, {{2, 3}}, -2, 2},
    {"sigmoid", f_sigmoid, 1, {2}, {{2, 3}}, -2, 2},
    {"relu", f_relu, 1, {2}, {{2, 3}}, -2, 2},
    {"dropout", f_dropout, 1, {2}, {{4, 5}}, -2, 2},
    {"add", f_add, 2, {2, 2}, {{2, 3}, {2, 3}}, -2, 2},
    {"add_bcast", f_add, 2, {2, 1}, {{2, 3}, {3}}, -2, 2},
    {"sub_bcast", f_sub, 2, {2, 2}, {{2, 1}, {2, 3}}, -2, 2},
    {"mul", f_mul, 2, {2, 2}, {{2, 3}, {2, 3}}, -2, 2},
    {"mul_bcast", f_mul, 2, {2, 3}, {{3, 1}, {2, 1, 3}}, -2, 2},
    {"div", f_div, 2, {2, 2}, {{2, 3}, {2, 3}}, 0.5, 2},
    {"div_bcast", f_div, 2, {2, 1}, {{2, 3}, {3}}, 0.5, 2},
    {"pow", f_pow, 2, {2, 2}, {{2, 3}, {2, 3}}, 0.5, 2},
    {"maximum", f_maximum, 2, {2, 2}, {{2, 3}, {2, 3}}, -2, 2},
    {"minimum_bcast", f_minimum, 2, {2, 1}, {{2, 3}, {3}}, -2, 2},
    {"add_scalar", f_add_s, 1, {2}, {{2, 3}}, -2, 2},
    {"sub_scalar", f_sub_s, 1, {2}, {{2, 3}}, -2, 2},
    {"mul_scalar", f_mul_s, 1, {2}, {{2, 3}}, -2, 2},
    {"div_scalar", f_div_s, 1, {2}, {{2, 3}}, -2, 2},
    {"pow_scalar", f_pow_s, 1, {2}, {{2, 3}}, -2, 2},
    {"pow_half", f_pow_h, 1, {2}, {{2, 3}}, 0.5, 2},
    {"maximum_scalar", f_max_s, 1, {2}, {{2, 3}}, -2, 2},
    {"minimum_scalar", f_min_s, 1, {2}, {{2, 3}}, -2, 2},
    {"rsub_scalar", f_rsub_s, 1, {2}, {{2, 3}}, -2, 2},
    {"rdiv_scalar", f_rdiv_s, 1, {2}, {{2, 3}}, 0.5, 2},
    {"rpow_scalar", f_rpow_s, 1, {2}, {{2, 3}}, -2, 2},
    {"rremainder_scalar", f_rrem_s, 1, {2}, {{2, 3}}, 1.0, 1.3},
    {"sum", f_sum, 1, {2}, {{2, 3}}, -2, 2},
    {"sum_dim0", f_sum0, 1, {2}, {{2, 3}}, -2, 2},
    {"sum_dim-1_keepdim", f_sum1k, 1, {2}, {{2, 3}}, -2, 2},
    {"mean", f_mean, 1, {2}, {{2, 3}}, -2, 2},
    {"mean_dim1", f_mean1, 1, {2}, {{2, 3}}, -2, 2},
    {"max", f_max, 1, {2}, {{2, 3}}, -2, 2},
    {"min", f_min, 1, {2}, {{2, 3}}, -2, 2},
    {"amax_dim1", f_max1, 1, {2}, {{2, 3}}, -2, 2},
    {"amin_dim0_keepdim", f_min0k, 1, {2}, {{2, 3}}, -2, 2},
    {"sort_dim1", f_sort1, 1, {2}, {{2, 5}}, -2, 2},
    {"sort_dim1_of_3d_descending", f_sort0d, 1, {3}, {{2, 4, 3}}, -2, 2},
    {"topk2_largest", f_topk2, 1, {2}, {{3, 5}}, -2, 2},
    {"topk1_smallest_dim1_of_3d", f_topk1s, 1, {3}, {{2, 4, 3}}, -2, 2},
    {"matmul_2d", f_matmul, 2, {2, 2}, {{2, 3}, {3, 2}}, -2, 2},
    {"matmul_1d_1d", f_matmul, 2, {1, 1}, {{3}, {3}}, -2, 2},
    {"matmul_2d_1d", f_matmul, 2, {2, 1}, {{2, 3}, {3}}, -2, 2},
    {"matmul_1d_2d", f_matmul, 2, {1, 2}, {{3}, {3, 2}}, -2, 2},
    {"matmul_batched", f_matmul, 2, {3, 3}, {{2, 2, 3}, {2, 3, 2}}, -2, 2},
    {"matmul_bcast_batch", f_matmul, 2, {3, 2}, {{2, 2, 3}, {3, 2}}, -2, 2},
    {"matmul_bcast_batch1", f_matmul, 2, {3, 4}, {{1, 2, 3}, {2, 1, 3, 2}}, -2, 2},
    {"reshape", f_reshape, 1, {2}, {{2, 3}}, -2, 2},
    {"view", f_view, 1, {2}, {{2, 3}}, -2, 2},
    {"transpose", f_transpose, 1, {2}, {{2, 3}}, -2, 2},
    {"permute", f_permute, 1, {3}, {{2, 2, 3}}, -2, 2},
    {"slice_step2", f_slice, 1, {2}, {{2, 3}}, -2, 2},
    {"slice_negative", f_slice_neg, 1, {2}, {{2, 3}}, -2, 2},
    {"expand", f_expand, 1, {3}, {{2, 1, 3}}, -2, 2},
    {"squeeze", f_squeeze, 1, {3}, {{2, 1, 3}}, -2, 2},
    {"squeeze_all", f_squeeze_all, 1, {3}, {{2, 1, 3}}, -2, 2},
    {"unsqueeze", f_unsqueeze, 1, {2}, {{2, 3}}, -2, 2},
    {"flatten", f_flatten, 1, {2}, {{2, 3}}, -2, 2},
    {"clone", f_clone, 1, {2}, {{2, 3}}, -2, 2},
    {"contiguous", f_contiguous, 1, {2}, {{2, 3}}, -2, 2},
    {"to_dtype", f_to_dtype, 1, {2}, {{2, 3}}, -2, 2},
    {"to_cpu_and_back", f_to_cpu, 1, {2}, {{2, 3}}, -1, 1},
    {"logsumexp", f_logsumexp, 1, {2}, {{2, 3}}, -2, 2},
    {"prod", f_prod, 1, {2}, {{2, 3}}, 0.5, 1.5},
    {"prod_dim1", f_prod1, 1, {2}, {{2, 3}}, -2, 2},
    {"logsumexp_dim1", f_lse1, 1, {2}, {{2, 3}}, -2, 2},
    {"var_dim0_keepdim", f_var0, 1, {2}, {{3, 2}}, -2, 2},
    {"std", f_std, 1, {2}, {{2, 3}}, -2, 2},
    {"norm2", f_norm2, 1, {2}, {{2, 3}}, 0.5, 2},
    {"norm3_dim-1", f_norm3, 1, {2}, {{2, 3}}, 0.5, 2},
    {"max_dim1", f_maxdim, 1, {2}, {{2, 3}}, -2, 2},
    {"min_dim-1_keepdim", f_mindim, 1, {2}, {{2, 3}}, -2, 2},
    {"cumsum_dim1", f_cumsum, 1, {2}, {{2, 3}}, -2, 2},
    {"cumprod_dim0", f_cumprod, 1, {2}, {{3, 2}}, 0.5, 2},
    {"softmax_dim1", f_softmax, 1, {2}, {{2, 3}}, -2, 2},
    {"log_softmax_dim0", f_log_softmax, 1, {2}, {{3, 2}}, -2, 2},
    {"cat", f_cat, 2, {2, 2}, {{2, 3}, {2, 1}}, -2, 2},
    {"cat3_repeated_input", f_cat3, 2, {2, 2}, {{2, 3}, {1, 3}}, -2, 2},
    {"stack", f_stack, 2, {2, 2}, {{2, 3}, {2, 3}}, -2, 2},
    {"flip", f_flip, 1, {3}, {{2, 2, 3}}, -2, 2},
    {"narrow", f_narrow, 1, {2}, {{2, 3}}, -2, 2},
    {"tril-1", f_tril, 1, {3}, {{2, 3, 3}}, -2, 2},
    {"triu1", f_triu, 1, {2}, {{3, 4}}, -2, 2},
    {"diagonal1_2_0", f_diagonal, 1, {3}, {{3, 2, 4}}, -2, 2},
    {"diag_embed-1_0_2", f_diag_embed, 1, {2}, {{2, 3}}, -2, 2},
    {"pad_constant", f_pad, 1, {2}, {{2, 3}}, -2, 2},
    {"split", f_split, 1, {2}, {{2, 4}}, -2, 2},
    {"chunk", f_chunk, 1, {2}, {{2, 4}}, -2, 2},
    {"unbind", f_unbind, 1, {2}, {{2, 3}}, -2, 2},
    {"movedim", f_movedim, 1, {3}, {{2, 2, 3}}, -2, 2},
    {"broadcast_to", f_broadcast_to, 1, {2}, {{1, 3}}, -2, 2},
    {"roll", f_roll, 1, {2}, {{2, 3}}, -2, 2},
    {"repeat", f_repeat, 1, {2}, {{2, 3}}, -2, 2},
    {"reciprocal", f_reciprocal, 1, {2}, {{2, 3}}, 0.5, 3},
    {"rsqrt", f_rsqrt, 1, {2}, {{2, 3}}, 0.5, 3},
    {"log1p", f_log1p, 1, {2}, {{2, 3}}, -0.5, 2},
    {"expm1", f_expm1, 1, {2}, {{2, 3}}, -2, 2},
    {"log2", f_log2, 1, {2}, {{2, 3}}, 0.5, 3},
    {"log10", f_log10, 1, {2}, {{2, 3}}, 0.5, 3},
    {"exp2", f_exp2, 1, {2}, {{2, 3}}, -2, 2},
    {"erf", f_erf, 1, {2}, {{2, 3}}, -2, 2},
    {"tan", f_tan, 1, {2}, {{2, 3}}, -1, 1},
    {"asin", f_asin, 1, {2}, {{2, 3}}, -0.875, 0.875},
    {"acos", f_acos, 1, {2}, {{2, 3}}, -0.875, 0.875},
    {"atan", f_atan, 1, {2}, {{2, 3}}, -2, 2},
    {"sinh", f_sinh, 1, {2}, {{2, 3}}, -2, 2},
    {"cosh", f_cosh, 1, {2}, {{2, 3}}, -2, 2},
    {"gelu", f_gelu, 1, {2}, {{2, 3}}, -2, 2},
    {"gelu_tanh", f_gelu_tanh, 1, {2}, {{2, 3}}, -2, 2},
    {"silu", f_silu, 1, {2}, {{2, 3}}, -2, 2},
    {"softplus", f_softplus, 1, {2}, {{2, 3}}, -2, 2},
    {"softplus_beta2_threshold1", f_softplus_b, 1, {2}, {{2, 3}}, -2, 2},
    {"leaky_relu", f_leaky_relu, 1, {2}, {{2, 3}}, -2, 2},
    {"leaky_relu_0.2", f_leaky_s, 1, {2}, {{2, 3}}, -2, 2},
    {"square", f_square, 1, {2}, {{2, 3}}, -2, 2},
    {"atan2", f_atan2, 2, {2, 2}, {{2, 3}, {2, 3}}, -2, 2},
    {"atan2_scalar", f_atan2_s, 1, {2}, {{2, 3}}, -2, 2},
    {"hypot_bcast", f_hypot, 2, {2, 1}, {{2, 3}, {3}}, -2, 2},
    {"where_bcast", f_where, 2, {2, 1}, {{2, 3}, {3}}, -2, 2},
    {"masked_fill", f_masked_fill, 1, {2}, {{2, 3}}, -2, 2},
    {"clamp", f_clamp, 1, {2}, {{2, 3}}, -2, 2},
};

/* ---- inputs ---------------------------------------------------------------------- */

/* Distinct values of the domain on a grid of 1/64 (exact in float32), shuffled by the
 * case's seed, so no two elements tie and none sits on a kink (0 or 0.1). */
static void gen_values(conf_rng *r, double lo, double hi, conf_array *a, int which)
{
    /* A second input sits between the first's grid points: no ties across them. */
    double off = which ? 1.0 / 128 : 0.0;
    int64_t steps = (int64_t)((hi - lo) * 64);
    for (int64_t i = 0; i < a->numel; i++) {
        for (;;) {
            double v = lo + off + (double)(conf_next(r) % (uint64_t)steps) / 64.0;
            bool ok = fabs(v) > 0.05 && fabs(v - 0.1) > 0.05;
            for (int64_t j = 0; ok && j < i; j++)
                ok = fabs(a->v[j] - v) > 0.01;
            if (ok) {
                a->v[i] = v;
                break;
            }
        }
    }
}

/* The weights of L: 0.5 .. 1.5 in steps of 1/8, exact in both dtypes. */
static void gen_weights(conf_rng *r, conf_array *w)
{
    for (int64_t i = 0; i < w->numel; i++)
        w->v[i] = 0.5 + (double)(conf_next(r) % 9) / 8.0;
}

static ferry_tensor *upload(const conf_array *a, ferry_dtype dt, const char *device)
{
    conf_array c = *a;
    c.dtype = dt;
    void *bytes = conf_encode(&c);
    ferry_tensor *t = ferry_tensor_from_data(bytes, dt, a->ndim, a->shape, device);
    free(bytes);
    return t;
}

/* L = sum(f(x) * w), the forward alone, in float64 on the cpu from host values. */
static bool eval_loss(const gcase *c, conf_array *x, const conf_array *w, double *loss)
{
    ferry_tensor *in[MAX_IN] = {NULL};
    bool ok = true;
    for (int i = 0; i < c->nin; i++)
        ok = ok && (in[i] = upload(&x[i], FERRY_FLOAT64, "cpu")) != NULL;
    ferry_tensor *y = ok ? c->fn(in) : NULL;
    ok = y != NULL && ferry_tensor_numel(y) == w->numel;
    if (ok) {
        double *v = malloc((size_t)w->numel * sizeof *v);
        ferry_tensor *y64 = ferry_tensor_to_dtype(y, FERRY_FLOAT64);
        ok = y64 && ferry_tensor_copy_to_host(y64, v, (size_t)w->numel * sizeof *v) == FERRY_OK;
        double s = 0;
        for (int64_t i = 0; ok && i < w->numel; i++)
            s += v[i] * w->v[i];
        *loss = s;
        ferry_tensor_release(y64);
        free(v);
    }
    ferry_tensor_release(y);
    for (int i = 0; i < c->nin; i++)
        ferry_tensor_release(in[i]);
    return ok;
}

/* dL/dx[k] by central differences on the host values. */
static bool finite_diff(const gcase *c, conf_array *x, const conf_array *w, int k, double *out)
{
    for (int64_t i = 0; i < x[k].numel; i++) {
        double v = x[k].v[i], h = 1e-6 * (1 + fabs(v)), lp, lm;
        x[k].v[i] = v + h;
        bool ok = eval_loss(c, x, w, &lp);
        x[k].v[i] = v - h;
        ok = ok && eval_loss(c, x, w, &lm);
        x[k].v[i] = v;
        if (!ok)
            return false;
        out[i] = (lp - lm) / (2 * h);
    }
    return true;
}

static const conf_layout layouts[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED, CONF_SLICED,
                                      CONF_EXPANDED};

/* The operand spec of input k in a layout; false when the layout does not apply. */
static bool spec_of(const gcase *c, int k, conf_layout l, conf_operand *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->ndim = c->ndim[k];
    memcpy(spec->shape, c->shape[k], (size_t)c->ndim[k] * sizeof spec->shape[0]);
    spec->layout = l;
    if (l == CONF_TRANSPOSED)
        return spec->ndim >= 2;
    if (l == CONF_EXPANDED) {
        /* expanded from size 1 in the first dim longer than 1 */
        spec->from_ndim = spec->ndim;
        memcpy(spec->from, spec->shape, (size_t)spec->ndim * sizeof spec->from[0]);
        for (int d = 0; d < spec->ndim; d++)
            if (spec->shape[d] > 1) {
                spec->from[d] = 1;
                return true;
            }
        return false;
    }
    return true;
}

static void check_case(const gcase *c, ferry_dtype dt, conf_layout l, const char *device)
{
    char kase[96];
    snprintf(kase, sizeof kase, "%s layout", conf_layout_name(l));
    conf_where w = {c->name, conf_dtype_name(dt), kase, device};
    conf_operand spec[MAX_IN];
    /* The layout goes to the first input; a second input stays contiguous. */
    for (int k = 0; k < c->nin; k++)
        if (!spec_of(c, k, k == 0 ? l : CONF_CONTIGUOUS, &spec[k]))
            return;
    conf_rng r = conf_rng_seed(c->name, "grad", kase, 7);
    conf_array src[MAX_IN], logical[MAX_IN];
    ferry_tensor *in[MAX_IN] = {NULL};
    int built = 0;
    bool ok = true;
    for (int k = 0; k < c->nin && ok; k++) {
        int snd;
        int64_t sshape[CONF_MAX_DIMS];
        conf_source_shape(&spec[k], &snd, sshape);
        conf_array_init(&src[k], dt, snd, sshape);
        gen_values(&r, c->lo, c->hi, &src[k], k);
        in[k] = conf_build(&w, &spec[k], &src[k], device, &logical[k]);
        built = k + 1;
        ok = in[k] && ferry_tensor_set_requires_grad(in[k], true) == FERRY_OK;
    }
    ferry_tensor *y = ok ? c->fn(in) : NULL;
    if (ok && !y)
        conf_fail_call(&w, "the op");
    conf_array wts = {0};
    ferry_tensor *wt = NULL, *prod = NULL, *loss = NULL;
    if (y) {
        /* contiguous() of a contiguous tensor is the tensor itself, as in PyTorch */
        if (!ferry_tensor_requires_grad(y) || (ferry_tensor_is_leaf(y) && y != in[0]))
            conf_fail(&w, "the result does not require grad or is a leaf");
        conf_array_init(&wts, dt, ferry_tensor_ndim(y), ferry_tensor_shape(y));
        gen_weights(&r, &wts);
        wt = upload(&wts, ferry_tensor_dtype(y), device);
        prod = wt ? ferry_mul(y, wt) : NULL;
        loss = prod ? ferry_sum(prod, 0, NULL, false) : NULL;
        if (!loss || ferry_backward(loss, NULL, false) != FERRY_OK)
            conf_fail_call(&w, "ferry_backward");
        else {
            for (int k = 0; k < c->nin; k++) {
                double *fd = malloc((size_t)logical[k].numel * sizeof *fd);
                conf_array got;
                ferry_tensor *g = ferry_tensor_grad(in[k]);
                if (!g) {
                    conf_fail(&w, "input %d has no .grad after backward", k);
                } else if (!finite_diff(c, logical, &wts, k, fd)) {
                    conf_fail_call(&w, "the float64 cpu forward for finite differences");
                } else if (conf_read(&w, g, dt, logical[k].ndim, logical[k].shape, device,
                                     &got)) {
                    double tol = dt == FERRY_FLOAT64 ? 1e-6 : 2e-3;
                    for (int64_t i = 0; i < got.numel; i++)
                        if (!(fabs(got.v[i] - fd[i]) <= tol * (1 + fabs(fd[i])))) {
                            conf_fail(&w, "d/dinput%d[%lld]: engine %.9g, finite differences "
                                          "%.9g",
                                      k, (long long)i, got.v[i], fd[i]);
                            break;
                        }
                    conf_array_free(&got);
                }
                ferry_tensor_release(g);
                free(fd);
            }
        }
        conf_array_free(&wts);
    }
    ferry_tensor_release(loss);
    ferry_tensor_release(prod);
    ferry_tensor_release(wt);
    ferry_tensor_release(y);
    for (int k = 0; k < built; k++) {
        ferry_tensor_release(in[k]);
        conf_array_free(&src[k]);
        conf_array_free(&logical[k]);
    }
}

static void test_grad_matches_finite_differences(void **state)
{
    (void)state;
    const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT64};
    CONF_FOR_EACH_DEVICE(dev)
    {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (size_t d = 0; d < 2; d++)
                for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++)
                    check_case(&cases[i], dts[d], layouts[l], dev);
    }
    conf_finish();
}

/* ---- second derivatives ----------------------------------------------------------- */

/* The Hessian-vector product of L = sum(f(x * x) * w) over all inputs jointly: the
 * gradients g from ferry_autograd_grad with create_graph, then the gradient of
 * sum_k(g_k . v_k), against central differences of that sum with g from the engine
 * (float64, cpu). Squaring the inputs gives linear ops a second derivative too. */
static bool squared_grads(const gcase *c, conf_array *x, const conf_array *w, const char *device,
                          bool create, ferry_tensor **in, ferry_tensor **g)
{
    ferry_tensor *sq[MAX_IN] = {NULL};
    bool ok = true;
    for (int i = 0; i < c->nin; i++) {
        ok = ok && (in[i] = upload(&x[i], FERRY_FLOAT64, device)) &&
             ferry_tensor_set_requires_grad(in[i], true) == FERRY_OK;
        ok = ok && (sq[i] = ferry_mul(in[i], in[i]));
    }
    ferry_tensor *y = ok ? c->fn(sq) : NULL;
    ferry_tensor *wt = y && w ? upload(w, FERRY_FLOAT64, device) : NULL;
    ferry_tensor *p = wt ? ferry_mul(y, wt) : NULL;
    ferry_tensor *l = p ? ferry_sum(p, 0, NULL, false) : NULL;
    ok = l && ferry_autograd_grad(1, &l, NULL, c->nin, in, g, create, create) == FERRY_OK;
    ferry_tensor_release(l);
    ferry_tensor_release(p);
    ferry_tensor_release(wt);
    ferry_tensor_release(y);
    for (int i = 0; i < c->nin; i++)
        ferry_tensor_release(sq[i]);
    return ok;
}

static void release_all(ferry_tensor **t, int n)
{
    for (int i = 0; i < n; i++) {
        ferry_tensor_release(t[i]);
        t[i] = NULL;
    }
}

/* sum_k(g_k . v_k) with g from the engine. */
static bool grad_dot(const gcase *c, conf_array *x, const conf_array *w, const conf_array *v,
                     double *out)
{
    ferry_tensor *in[MAX_IN] = {NULL}, *g[MAX_IN] = {NULL};
    bool ok = squared_grads(c, x, w, "cpu", false, in, g);
    double s = 0;
    for (int k = 0; ok && k < c->nin; k++) {
        double *gv = malloc((size_t)v[k].numel * sizeof *gv);
        ok = ferry_tensor_copy_to_host(g[k], gv, (size_t)v[k].numel * sizeof *gv) == FERRY_OK;
        for (int64_t i = 0; ok && i < v[k].numel; i++)
            s += gv[i] * v[k].v[i];
        free(gv);
    }
    *out = s;
    release_all(g, c->nin);
    release_all(in, c->nin);
    return ok;
}

static void check_second(const gcase *c, const char *device)
{
    conf_where w = {c->name, "float64", "second derivative", device};
    conf_rng r = conf_rng_seed(c->name, "gradgrad", "", 11);
    conf_array x[MAX_IN], v[MAX_IN], wts;
    for (int k = 0; k < c->nin; k++) {
        conf_array_init(&x[k], FERRY_FLOAT64, c->ndim[k], c->shape[k]);
        /* x * x must stay in the op's domain and clear of its kinks */
        gen_values(&r, sqrt(c->lo > 0.5 ? c->lo : 0.5), sqrt(c->hi), &x[k], k);
        conf_array_init(&v[k], FERRY_FLOAT64, c->ndim[k], c->shape[k]);
        gen_weights(&r, &v[k]);
    }
    ferry_tensor *tmp[MAX_IN] = {NULL};
    for (int k = 0; k < c->nin; k++)
        tmp[k] = upload(&x[k], FERRY_FLOAT64, "cpu");
    ferry_tensor *y = c->fn(tmp);
    assert_non_null(y);
    conf_array_init(&wts, FERRY_FLOAT64, ferry_tensor_ndim(y), ferry_tensor_shape(y));
    gen_weights(&r, &wts);
    ferry_tensor_release(y);
    release_all(tmp, c->nin);

    ferry_tensor *in[MAX_IN] = {NULL}, *g[MAX_IN] = {NULL}, *h[MAX_IN] = {NULL};
    ferry_tensor *s = NULL;
    if (!squared_grads(c, x, &wts, device, true, in, g)) {
        conf_fail_call(&w, "ferry_autograd_grad(create_graph)");
        goto done;
    }
    for (int k = 0; k < c->nin; k++) {
        if (!ferry_tensor_requires_grad(g[k])) {
            conf_fail(&w, "gradient %d made with create_graph does not require grad", k);
            goto done;
        }
        ferry_tensor *vt = upload(&v[k], FERRY_FLOAT64, device);
        ferry_tensor *gv = vt ? ferry_mul(g[k], vt) : NULL;
        ferry_tensor *part = gv ? ferry_sum(gv, 0, NULL, false) : NULL;
        ferry_tensor *acc = part && s ? ferry_add(s, part) : ferry_tensor_retain(part);
        ferry_tensor_release(s);
        s = acc;
        ferry_tensor_release(part);
        ferry_tensor_release(gv);
        ferry_tensor_release(vt);
    }
    if (!s || ferry_autograd_grad(1, &s, NULL, c->nin, in, h, false, false) != FERRY_OK) {
        conf_fail_call(&w, "ferry_autograd_grad of the gradients");
        goto done;
    }
    for (int k = 0; k < c->nin; k++) {
        conf_array got;
        if (!conf_read(&w, h[k], FERRY_FLOAT64, x[k].ndim, x[k].shape, device, &got))
            break;
        for (int64_t i = 0; i < x[k].numel; i++) {
            double xv = x[k].v[i], step = 1e-5 * (1 + fabs(xv)), lp = 0, lm = 0;
            x[k].v[i] = xv + step;
            bool ok = grad_dot(c, x, &wts, v, &lp);
            x[k].v[i] = xv - step;
            ok = ok && grad_dot(c, x, &wts, v, &lm);
            x[k].v[i] = xv;
            double fd = (lp - lm) / (2 * step);
            if (!ok || !(fabs(got.v[i] - fd) <= 1e-5 * (1 + fabs(fd)))) {
                conf_fail(&w, "(H v)[input %d][%lld]: engine %.9g, finite differences %.9g", k,
                          (long long)i, got.v[i], fd);
                break;
            }
        }
        conf_array_free(&got);
    }
done:
    ferry_tensor_release(s);
    release_all(h, c->nin);
    release_all(g, c->nin);
    release_all(in, c->nin);
    conf_array_free(&wts);
    for (int k = 0; k < c->nin; k++) {
        conf_array_free(&v[k]);
        conf_array_free(&x[k]);
    }
}

static void test_grad_second_derivatives_match_finite_differences(void **state)
{
    (void)state;
    static const char *const ops[] = {
        "abs",       "exp",         "log",        "sqrt",         "sin",
        "cos",       "tanh",        "sigmoid",    "relu",         "add_bcast",
        "mul_bcast", "div",         "pow",        "pow_scalar",   "maximum",
        "sum_dim0",  "mean_dim1",   "max",        "amax_dim1",    "matmul_2d",
        "matmul_1d_2d", "matmul_bcast_batch", "transpose", "permute", "slice_step2",
        "expand",    "squeeze",     "unsqueeze",  "reshape",      "clone",
        "to_dtype",  "to_cpu_and_back", "logsumexp", "tril-1", "diagonal1_2_0",
        "diag_embed-1_0_2", "pad_constant", "cumprod_dim0"};
    CONF_FOR_EACH_DEVICE(dev)
    {
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                if (strcmp(cases[i].name, ops[o]) == 0)
                    check_second(&cases[i], dev);
    }
    conf_finish();
}

/* ---- ties -------------------------------------------------------------------------- */

/* max/min over all elements and amax/amin over dims split the gradient evenly between
 * equal elements; maximum/minimum give each side half at a tie (PyTorch). */
static void test_grad_ties_split_evenly(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev)
    {
        conf_where w = {"max ties", "float64", "", dev};
        double xv[6] = {3, 1, 3, 2, 2, 0};
        int64_t shape[2] = {2, 3};
        ferry_tensor *x = ferry_tensor_from_data(xv, FERRY_FLOAT64, 2, shape, dev);
        ferry_tensor_set_requires_grad(x, true);
        ferry_tensor *m = ferry_max(x, 0, NULL, false);
        int d = 1;
        ferry_tensor *ma = ferry_max(x, 1, &d, false);
        ferry_tensor *sa = ma ? ferry_sum(ma, 0, NULL, false) : NULL;
        ferry_tensor *t = m && sa ? ferry_add(m, sa) : NULL;
        if (!t || ferry_backward(t, NULL, false) != FERRY_OK) {
            conf_fail_call(&w, "backward");
        } else {
            ferry_tensor *g = ferry_tensor_grad(x);
            conf_array got;
            /* max(): 1/2 to each 3; amax(dim 1): row 0 splits between its two 3s, row 1
             * between its two 2s. */
            double want[6] = {1, 0, 1, 0.5, 0.5, 0};
            if (conf_read(&w, g, FERRY_FLOAT64, 2, shape, dev, &got)) {
                for (int i = 0; i < 6; i++)
                    if (got.v[i] != want[i])
                        conf_fail(&w, "grad[%d] = %g, want %g", i, got.v[i], want[i]);
                conf_array_free(&got);
            }
            ferry_tensor_release(g);
        }
        ferry_tensor *b = ferry_tensor_from_data((double[6]){3, 0, 3, 2, 5, 0}, FERRY_FLOAT64, 2,
                                                 shape, dev);
        ferry_tensor_set_grad(x, NULL);
        ferry_tensor *mx = b ? ferry_maximum(x, b) : NULL;
        ferry_tensor *ms = mx ? ferry_sum(mx, 0, NULL, false) : NULL;
        if (!ms || ferry_backward(ms, NULL, false) != FERRY_OK) {
            conf_fail_call(&w, "backward of maximum");
        } else {
            ferry_tensor *g = ferry_tensor_grad(x);
            conf_array got;
            double want[6] = {0.5, 1, 0.5, 0.5, 0, 0.5};
            if (conf_read(&w, g, FERRY_FLOAT64, 2, shape, dev, &got)) {
                for (int i = 0; i < 6; i++)
                    if (got.v[i] != want[i])
                        conf_fail(&w, "maximum grad[%d] = %g, want %g", i, got.v[i], want[i]);
                conf_array_free(&got);
            }
            ferry_tensor_release(g);
        }
        ferry_tensor_release(ms);
        ferry_tensor_release(mx);
        ferry_tensor_release(b);
        ferry_tensor_release(t);
        ferry_tensor_release(sa);
        ferry_tensor_release(ma);
        ferry_tensor_release(m);
        ferry_tensor_release(x);
    }
    conf_finish();
}

int conf_group_grad(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_matches_finite_differences),
        cmocka_unit_test(test_grad_second_derivatives_match_finite_differences),
        cmocka_unit_test(test_grad_ties_split_evenly),
    };
    return cmocka_run_group_tests_name("grad", tests, NULL, NULL);
}

/* Random numbers (API.md "Random numbers", DESIGN.md "Random numbers"): generators,
 * and the samplers over the named op "ferry.random" (ferry/ops/random.h, kernels in
 * backends/kernels/ferry_random.h and backends/cpu/cpu_random.c). bernoulli and dropout
 * are comparisons of a uniform draw, so they inherit its bit-identity; dropout's
 * backward is that of the multiplication by its noise (grad * mask / (1 - p)). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ops/random.h>

#include "ops/ops_internal.h"

struct ferry_generator {
    pthread_mutex_t lock;
    uint64_t seed;
    uint64_t offset; /* 32-bit words of the stream already used; a multiple of 4 */
};

/* PyTorch's default seed, so an unseeded program starts from a known state too. */
#define DEFAULT_SEED 67280421310721ull

static ferry_generator global_gen = {PTHREAD_MUTEX_INITIALIZER, DEFAULT_SEED, 0};

static ferry_generator *gen_or_global(ferry_generator *g)
{
    return g ? g : &global_gen;
}

FERRY_API void ferry_manual_seed(uint64_t seed)
{
    pthread_mutex_lock(&global_gen.lock);
    global_gen.seed = seed;
    global_gen.offset = 0;
    pthread_mutex_unlock(&global_gen.lock);
}

FERRY_API ferry_generator *ferry_generator_create(uint64_t seed)
{
    ferry_generator *g = malloc(sizeof *g);
    if (!g) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_generator_create: out of memory");
        return NULL;
    }
    pthread_mutex_init(&g->lock, NULL);
    g->seed = seed;
    g->offset = 0;
    return g;
}

FERRY_API void ferry_generator_release(ferry_generator *gen)
{
    if (!gen || gen == &global_gen)
        return;
    pthread_mutex_destroy(&gen->lock);
    free(gen);
}

FERRY_API ferry_status ferry_generator_get_state(const ferry_generator *gen, uint64_t *seed,
                                                 uint64_t *offset)
{
    ferry_generator *g = gen_or_global((ferry_generator *)gen);
    pthread_mutex_lock(&g->lock);
    if (seed)
        *seed = g->seed;
    if (offset)
        *offset = g->offset;
    pthread_mutex_unlock(&g->lock);
    return FERRY_OK;
}

FERRY_API ferry_status ferry_generator_set_state(ferry_generator *gen, uint64_t seed,
                                                 uint64_t offset)
{
    if (offset % 4 != 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "ferry_generator_set_state: offset %llu is not a multiple of 4 "
                            "(draws start on a Philox block)",
                            (unsigned long long)offset);
    ferry_generator *g = gen_or_global(gen);
    pthread_mutex_lock(&g->lock);
    g->seed = seed;
    g->offset = offset;
    pthread_mutex_unlock(&g->lock);
    return FERRY_OK;
}

/* Takes `words` words of the stream (rounded up to whole blocks) and fills in where
 * they start. Wraps after 2^64 words, as the counter does. */
static void reserve(ferry_generator *gen, uint64_t words, ferry_random_params *p)
{
    ferry_generator *g = gen_or_global(gen);
    pthread_mutex_lock(&g->lock);
    p->seed = g->seed;
    p->offset = g->offset;
    g->offset += (words + 3u) & ~(uint64_t)3u;
    pthread_mutex_unlock(&g->lock);
}

static bool is_float(ferry_dtype d)
{
    return d == FERRY_FLOAT16 || d == FERRY_BFLOAT16 || d == FERRY_FLOAT32 ||
           d == FERRY_FLOAT64;
}

/* Words one element takes (ferry_random.h): 2 for float64 and 64-bit integers. */
static uint64_t words_per(const ferry_random_params *p, ferry_dtype dt)
{
    if (p->kind == FERRY_RANDOM_BITS)
        return 2;
    if (p->kind == FERRY_RANDOM_INT)
        return p->range != 0 && p->range <= ((uint64_t)1 << 32) ? 1 : 2;
    return dt == FERRY_FLOAT64 ? 2 : 1;
}

/* Draws into `out`, a fresh dense tensor, advancing gen. */
static ferry_status draw(ferry_tensor *out, ferry_random_params *p, ferry_generator *gen)
{
    int64_t n = ferry_tensor_numel(out);
    reserve(gen, (uint64_t)n * words_per(p, ferry_tensor_dtype(out)), p);
    if (n == 0)
        return FERRY_OK;
    operand o;
    ferry__operand_of(&o, out);
    operand *ops[1] = {&o};
    ferry__collapse(ops, 1);
    return ferry__launch_named(FERRY_RANDOM_OP, ops, 1, 1, false, p, sizeof *p);
}

static ferry_tensor *sample(const char *fn, ferry_random_params *p, ferry_dtype dtype, int ndim,
                            const int64_t *shape, const char *device, ferry_generator *gen)
{
    int64_t numel;
    if (ferry__check_shape(fn, dtype, ndim, shape, &numel) != FERRY_OK)
        return NULL;
    ferry_tensor *out = ferry_empty(dtype, ndim, shape, device);
    if (!out)
        return NULL;
    if (draw(out, p, gen) != FERRY_OK) {
        ferry_tensor_release(out);
        return NULL;
    }
    return out;
}

/* PyTorch's name of a dtype in "not implemented for 'Long'". */
static const char *torch_name(ferry_dtype d)
{
    return ferry__torch_type_name(d);
}

FERRY_API ferry_tensor *ferry_rand(ferry_dtype dtype, int ndim, const int64_t *shape,
                                   const char *device, ferry_generator *gen)
{
    if (!is_float(dtype)) {
        ferry__error(FERRY_ERR_UNSUPPORTED, "\"check_uniform_bounds\" not implemented for '%s'",
                     torch_name(dtype));
        return NULL;
    }
    ferry_random_params p = {.kind = FERRY_RANDOM_UNIFORM, .a = 0.0, .b = 1.0};
    return sample("ferry_rand", &p, dtype, ndim, shape, device, gen);
}

FERRY_API ferry_tensor *ferry_randn(ferry_dtype dtype, int ndim, const int64_t *shape,
                                    const char *device, ferry_generator *gen)
{
    if (!is_float(dtype)) {
        ferry__error(FERRY_ERR_UNSUPPORTED, "\"normal_kernel_cpu\" not implemented for '%s'",
                     torch_name(dtype));
        return NULL;
    }
    ferry_random_params p = {.kind = FERRY_RANDOM_NORMAL, .a = 0.0, .b = 1.0};
    return sample("ferry_randn", &p, dtype, ndim, shape, device, gen);
}

/* The C++ type PyTorch names in "from is out of bounds for signed char", with the
 * dtype's range; false for dtypes PyTorch does not bound-check here. */
static bool int_bounds(ferry_dtype d, const char **name, int64_t *lo, int64_t *hi)
{
    switch (d) {
    case FERRY_BOOL:
        *name = "bool", *lo = 0, *hi = 1;
        return true;
    case FERRY_UINT8:
        *name = "unsigned char", *lo = 0, *hi = 255;
        return true;
    case FERRY_INT8:
        *name = "signed char", *lo = -128, *hi = 127;
        return true;
    case FERRY_INT16:
        *name = "short", *lo = -32768, *hi = 32767;
        return true;
    case FERRY_INT32:
        *name = "int", *lo = INT32_MIN, *hi = INT32_MAX;
        return true;
    default:
        return false;
    }
}

FERRY_API ferry_tensor *ferry_randint(int64_t low, int64_t high, ferry_dtype dtype, int ndim,
                                      const int64_t *shape, const char *device,
                                      ferry_generator *gen)
{
    if (low >= high) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "random_ expects 'from' to be less than 'to', but got from=%lld >= to=%lld",
                     (long long)low, (long long)high);
        return NULL;
    }
    const char *name;
    int64_t lo, hi;
    if (int_bounds(dtype, &name, &lo, &hi)) {
        if (low < lo || low > hi) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "from is out of bounds for %s", name);
            return NULL;
        }
        if (high - 1 < lo || high - 1 > hi) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT, "to - 1 is out of bounds for %s", name);
            return NULL;
        }
    }
    ferry_random_params p = {.kind = FERRY_RANDOM_INT, .low = low,
                             .range = (uint64_t)high - (uint64_t)low};
    return sample("ferry_randint", &p, dtype, ndim, shape, device, gen);
}

typedef struct key_index {
    uint64_t key;
    int64_t index;
} key_index;

static int by_key(const void *a, const void *b)
{
    const key_index *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

FERRY_API ferry_tensor *ferry_randperm(int64_t n, ferry_dtype dtype, const char *device,
                                       ferry_generator *gen)
{
    if (n < 0) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "Trying to create tensor with negative dimension %lld: [%lld]",
                     (long long)n, (long long)n);
        return NULL;
    }
    int64_t shape[1] = {n};
    int64_t numel;
    if (ferry__check_shape("ferry_randperm", dtype, 1, shape, &numel) != FERRY_OK)
        return NULL;
    const char *name;
    int64_t lo, hi;
    if (int_bounds(dtype, &name, &lo, &hi) && n > 0 && n - 1 > hi) {
        static const char *const cnames[] = {"bool", "uint8_t", "int8_t", "int16_t", "int32_t"};
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "value cannot be converted to type %s without overflow",
                     cnames[dtype <= FERRY_INT32 ? dtype : 0]);
        return NULL;
    }
    if ((uint64_t)n > SIZE_MAX / sizeof(key_index)) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_randperm: %lld elements do not fit in memory",
                     (long long)n);
        return NULL;
    }
    /* The keys are drawn on the cpu: the kernel is the same everywhere, so the
     * permutation is too, and the ranks are found on the host (then copied). */
    ferry_random_params p = {.kind = FERRY_RANDOM_BITS};
    ferry_tensor *keys = sample("ferry_randperm", &p, FERRY_INT64, 1, shape, "cpu", gen);
    if (!keys)
        return NULL;
    key_index *ki = malloc((size_t)(n > 0 ? n : 1) * sizeof *ki);
    int64_t *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *perm);
    ferry_tensor *res = NULL;
    if (!ki || !perm) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_randperm: out of memory");
    } else {
        const int64_t *k = ferry_tensor_host_data(keys);
        for (int64_t i = 0; i < n; i++) {
            ki[i].key = (uint64_t)k[i];
            ki[i].index = i;
        }
        qsort(ki, (size_t)n, sizeof *ki, by_key);
        for (int64_t i = 0; i < n; i++)
            perm[i] = ki[i].index;
        ferry_tensor *host = ferry_tensor_from_data(perm, FERRY_INT64, 1, shape, "cpu");
        ferry_tensor *typed = host ? ferry_tensor_to_dtype(host, dtype) : NULL;
        res = typed ? ferry_tensor_to(typed, device) : NULL;
        ferry_tensor_release(typed);
        ferry_tensor_release(host);
    }
    free(ki);
    free(perm);
    ferry_tensor_release(keys);
    return res;
}

/* Draws like t into a fresh dense tensor and copies it in (copy_from does the in-place
 * checks and the version bump). */
static ferry_status fill_in_place(const char *fn, ferry_tensor *t, ferry_random_params *p,
                                  ferry_generator *gen)
{
    ferry_status st = ferry__check_tensor(t, fn);
    if (st != FERRY_OK)
        return st;
    ferry_dtype dt = ferry_tensor_dtype(t);
    if (!is_float(dt))
        return ferry__error(FERRY_ERR_UNSUPPORTED, "\"%s\" not implemented for '%s'",
                            p->kind == FERRY_RANDOM_UNIFORM ? "check_uniform_bounds"
                                                            : "normal_kernel_cpu",
                            torch_name(dt));
    if ((st = ferry__inplace_check(fn, t, false)) != FERRY_OK)
        return st;
    ferry_tensor *tmp = ferry__new_like(t, dt, ferry_tensor_ndim(t), ferry_tensor_shape(t));
    if (!tmp)
        return ferry_last_status();
    st = draw(tmp, p, gen);
    if (st == FERRY_OK) {
        bool prev = pause_grad();
        st = ferry_tensor_copy_from(t, tmp);
        resume_grad(prev);
    }
    ferry_tensor_release(tmp);
    return st;
}

FERRY_API ferry_status ferry_tensor_uniform(ferry_tensor *t, double lo, double hi,
                                            ferry_generator *gen)
{
    if (!(lo <= hi))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "uniform_ expects to return a [from, to) range, but found from=%g > "
                            "to=%g",
                            lo, hi);
    ferry_random_params p = {.kind = FERRY_RANDOM_UNIFORM, .a = lo, .b = hi - lo};
    return fill_in_place("uniform_", t, &p, gen);
}

FERRY_API ferry_status ferry_tensor_normal(ferry_tensor *t, double mean, double std,
                                           ferry_generator *gen)
{
    if (!(std >= 0.0))
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "normal expects std >= 0.0, but found std %g", std);
    ferry_random_params p = {.kind = FERRY_RANDOM_NORMAL, .a = mean, .b = std};
    return fill_in_place("normal_", t, &p, gen);
}

/* A uniform draw of dtype ud shaped like t, on its device. */
static ferry_tensor *uniform_like(ferry_tensor *t, ferry_dtype ud, ferry_generator *gen)
{
    ferry_tensor *u = ferry__new_like(t, ud, ferry_tensor_ndim(t), ferry_tensor_shape(t));
    if (u && draw(u, &(ferry_random_params){.kind = FERRY_RANDOM_UNIFORM, .a = 0.0, .b = 1.0},
                  gen) != FERRY_OK) {
        ferry_tensor_release(u);
        return NULL;
    }
    return u;
}

/* Reads a 0-d reduction result as a double (synchronizes once). */
static ferry_status read_scalar(ferry_tensor *r, double *v)
{
    ferry_tensor *d = r ? ferry_tensor_to_dtype(r, FERRY_FLOAT64) : NULL;
    ferry_status st = d ? ferry_tensor_copy_to_host(d, v, sizeof *v) : ferry_last_status();
    ferry_tensor_release(d);
    return st;
}

static ferry_status bernoulli_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    (void)n;
    grads[0] = ferry_zeros_like(g);
    return grads[0] ? FERRY_OK : ferry_last_status();
}

FERRY_API ferry_tensor *ferry_bernoulli(ferry_tensor *p, ferry_generator *gen)
{
    if (ferry__check_tensor(p, "ferry_bernoulli") != FERRY_OK)
        return NULL;
    ferry_dtype dt = ferry_tensor_dtype(p);
    if (!is_float(dt)) {
        ferry__error(FERRY_ERR_UNSUPPORTED, "\"bernoulli_tensor_cpu_p_\" not implemented for '%s'",
                     torch_name(dt));
        return NULL;
    }
    bool prev = pause_grad();
    ferry_tensor *res = NULL;
    if (ferry_tensor_numel(p) > 0) {
        ferry_tensor *mn = ferry_min(p, 0, NULL, false);
        ferry_tensor *mx = mn ? ferry_max(p, 0, NULL, false) : NULL;
        double lo = 0, hi = 0;
        ferry_status st = mx ? read_scalar(mn, &lo) : ferry_last_status();
        if (st == FERRY_OK)
            st = read_scalar(mx, &hi);
        ferry_tensor_release(mn);
        ferry_tensor_release(mx);
        if (st != FERRY_OK)
            goto done;
        if (!(lo >= 0.0 && hi <= 1.0)) {
            ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                         "Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (Could "
                         "this error message be improved?  If so, please report an enhancement "
                         "request to PyTorch.)");
            goto done;
        }
    }
    /* float64 probabilities compare with float64 uniforms (53 bits), others float32. */
    ferry_tensor *u = uniform_like(p, dt == FERRY_FLOAT64 ? FERRY_FLOAT64 : FERRY_FLOAT32, gen);
    ferry_tensor *hit = u ? ferry_lt(u, p) : NULL;
    res = hit ? ferry_tensor_to_dtype(hit, dt) : NULL;
    ferry_tensor_release(hit);
    ferry_tensor_release(u);
done:
    resume_grad(prev);
    if (!res || !ferry__grad_wanted(p, NULL))
        return res;
    /* PyTorch records BernoulliBackward0 with a zero gradient for p: the draw is not
     * differentiable, but the result takes part in the graph (requires_grad true). */
    ferry_node *n = ferry__node_create("BernoulliBackward0", bernoulli_backward, 1, &p);
    ferry__attach_or_fail(n, n ? FERRY_OK : ferry_last_status(), &res);
    return res;
}

FERRY_API ferry_tensor *ferry_dropout(ferry_tensor *t, double p, bool train,
                                      ferry_generator *gen)
{
    if (ferry__check_tensor(t, "ferry_dropout") != FERRY_OK)
        return NULL;
    if (!(p >= 0.0 && p <= 1.0)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "dropout probability has to be between 0 and 1, but got %g", p);
        return NULL;
    }
    ferry_dtype dt = ferry_tensor_dtype(t);
    if (!is_float(dt)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "result type Float can't be cast to the desired output type %s",
                     torch_name(dt));
        return NULL;
    }
    if (!train || p == 0.0 || ferry_tensor_numel(t) == 0)
        return ferry_tensor_retain(t);
    /* PyTorch's _dropout_impl: noise = bernoulli(1 - p) / (1 - p), out = t * noise; p = 1
     * multiplies by zero (NaN stays NaN). The noise needs no gradient, so the result's
     * node is the multiplication's (MulBackward0, as PyTorch's). */
    bool prev = pause_grad();
    ferry_tensor *noise = NULL;
    if (p == 1.0) {
        noise = ferry__new_like(t, dt, 0, NULL);
        if (noise && ferry_tensor_fill(noise, 0.0) != FERRY_OK) {
            ferry_tensor_release(noise);
            noise = NULL;
        }
    } else {
        /* float32 uniforms whatever t's dtype: one seed gives one mask for a shape. */
        ferry_tensor *u = uniform_like(t, FERRY_FLOAT32, gen);
        ferry_tensor *keep_mask = u ? ferry_lt_scalar_ex(u, ferry__scalar_of_double(1.0 - p))
                                    : NULL;
        ferry_tensor *m = keep_mask ? ferry_tensor_to_dtype(keep_mask, dt) : NULL;
        noise = m ? ferry_div_scalar_ex(m, ferry__scalar_of_double(1.0 - p)) : NULL;
        ferry_tensor_release(m);
        ferry_tensor_release(keep_mask);
        ferry_tensor_release(u);
    }
    resume_grad(prev);
    ferry_tensor *out = noise ? ferry_mul(t, noise) : NULL;
    ferry_tensor_release(noise);
    return out;
}

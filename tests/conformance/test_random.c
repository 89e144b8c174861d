/* Random numbers: Philox4x32-10 against the Random123 known answers, every sampler bit for
 * bit the same on every device as on the cpu (sim through the fallback, opencl without
 * it), the stream's bookkeeping, the distributions of 10^6 draws against their exact
 * CDFs, randint's bounds, randperm, dropout, and the error paths with PyTorch's messages. */
#include <pthread.h>

#include <ferry/half.h>
#include <ferry/ops/random.h>

#include "conformance.h"
#include "ferry_random.h"

#define SHAPE(...) (int64_t[]){__VA_ARGS__}

/* ---- known answers ------------------------------------------------------------------ */

/* Random123's examples/kat_vectors, the three "philox4x32 10" lines: counter (4 words),
 * key (2 words), output (4 words). */
static const uint32_t kat[3][10] = {
    {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x6627e8d5,
     0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
     0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
     0x94fdcceb, 0x5001e420, 0x24126ea1},
};

static void test_random_philox_known_answers(void **state)
{
    (void)state;
    for (int v = 0; v < 3; v++) {
        uint32_t c[4] = {kat[v][0], kat[v][1], kat[v][2], kat[v][3]};
        fk_philox4x32_10(c, kat[v][4], kat[v][5]);
        for (int k = 0; k < 4; k++)
            if (c[k] != kat[v][6 + k])
                fail_msg("vector %d word %d: %08x, want %08x", v, k, c[k], kat[v][6 + k]);
    }
    /* Through the API on every device: randint over [0, 2^32) is the raw word stream,
     * and seed 0 at offset 0 is the all-zero vector. */
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"randint", "int64", "raw words, seed 0", dev};
        ferry_generator *g = ferry_generator_create(0);
        ferry_tensor *t = ferry_randint(0, (int64_t)1 << 32, FERRY_INT64, 1, SHAPE(4), dev, g);
        int64_t got[4] = {0};
        if (!t || ferry_tensor_copy_to_host(t, got, sizeof got) != FERRY_OK)
            conf_fail_call(&w, "ferry_randint");
        for (int k = 0; t && k < 4; k++)
            if ((uint64_t)got[k] != kat[0][6 + k])
                conf_fail(&w, "word %d: %08llx, want %08x", k, (unsigned long long)got[k],
                          kat[0][6 + k]);
        ferry_tensor_release(t);
        ferry_generator_release(g);
    }
    conf_finish();
}

/* ---- every sampler, bit for bit ------------------------------------------------------ */

typedef enum sampler {
    S_RAND,
    S_RANDN,
    S_RANDINT_NARROW,
    S_RANDINT_WIDE,
    S_RANDINT_FULL,
    S_RANDPERM,
    S_UNIFORM_,
    S_NORMAL_,
    S_UNIFORM_STRIDED,
    S_BERNOULLI,
    S_DROPOUT,
    S_COUNT
} sampler;

static const char *const sampler_names[S_COUNT] = {
    "rand",      "randn",    "randint[-7,1000)", "randint[-2^40,2^40)", "randint[int64]",
    "randperm",  "uniform_", "normal_",          "uniform_ (strided)",  "bernoulli",
    "dropout",
};

static bool sampler_takes(sampler s, ferry_dtype dt)
{
    switch (s) {
    case S_RANDINT_NARROW:
        return dt != FERRY_BOOL && dt != FERRY_UINT8 && dt != FERRY_INT8;
    case S_RANDINT_WIDE:
    case S_RANDINT_FULL:
        return dt == FERRY_INT64;
    case S_RANDPERM:
        return dt == FERRY_INT64 || dt == FERRY_INT32 || dt == FERRY_FLOAT32;
    default:
        return conf_is_float(dt);
    }
}

#define DRAW_N 1003 /* not a multiple of 4: the last block is partial */

/* One draw of sampler s in dtype dt on dev from a generator at seed 1234; the result is
 * always on dev. */
static ferry_tensor *draw_on(sampler s, ferry_dtype dt, const char *dev)
{
    ferry_generator *g = ferry_generator_create(1234);
    ferry_tensor *r = NULL;
    int64_t n = DRAW_N;
    switch (s) {
    case S_RAND:
        r = ferry_rand(dt, 1, &n, dev, g);
        break;
    case S_RANDN:
        r = ferry_randn(dt, 2, SHAPE(17, 59), dev, g);
        break;
    case S_RANDINT_NARROW:
        r = ferry_randint(-7, 1000, dt, 1, &n, dev, g);
        break;
    case S_RANDINT_WIDE:
        r = ferry_randint(-((int64_t)1 << 40), (int64_t)1 << 40, dt, 1, &n, dev, g);
        break;
    case S_RANDINT_FULL:
        r = ferry_randint(INT64_MIN, INT64_MAX, dt, 1, &n, dev, g);
        break;
    case S_RANDPERM:
        r = ferry_randperm(n, dt, dev, g);
        break;
    case S_UNIFORM_:
    case S_NORMAL_:
        r = ferry_empty(dt, 1, &n, dev);
        if (r && (s == S_UNIFORM_ ? ferry_tensor_uniform(r, -2.5, 3.0, g)
                                  : ferry_tensor_normal(r, 1.5, 0.25, g)) != FERRY_OK) {
            ferry_tensor_release(r);
            r = NULL;
        }
        break;
    case S_UNIFORM_STRIDED: {
        ferry_tensor *base = ferry_zeros(dt, 2, SHAPE(31, 33), dev);
        ferry_tensor *view = base ? ferry_transpose(base, 0, 1) : NULL;
        if (view && ferry_tensor_uniform(view, 0.0, 1.0, g) == FERRY_OK)
            r = ferry_tensor_retain(base);
        ferry_tensor_release(view);
        ferry_tensor_release(base);
        break;
    }
    case S_BERNOULLI: {
        ferry_tensor *p = ferry_arange(0, (double)n, 1, FERRY_FLOAT64, dev);
        ferry_tensor *pn = p ? ferry_div_scalar(p, (double)n) : NULL;
        ferry_tensor *pt = pn ? ferry_tensor_to_dtype(pn, dt) : NULL;
        r = pt ? ferry_bernoulli(pt, g) : NULL;
        ferry_tensor_release(pt);
        ferry_tensor_release(pn);
        ferry_tensor_release(p);
        break;
    }
    case S_DROPOUT: {
        ferry_tensor *x = ferry_ones(dt, 1, &n, dev);
        r = x ? ferry_dropout(x, 0.4, true, g) : NULL;
        ferry_tensor_release(x);
        break;
    }
    default:
        break;
    }
    ferry_generator_release(g);
    return r;
}

static void *host_bytes(ferry_tensor *t, size_t *nbytes)
{
    *nbytes = ferry_tensor_nbytes(t);
    void *b = malloc(*nbytes ? *nbytes : 1);
    ferry_tensor *c = ferry_tensor_contiguous(t);
    if (!b || !c || ferry_tensor_copy_to_host(c, b, *nbytes) != FERRY_OK) {
        free(b);
        b = NULL;
    }
    ferry_tensor_release(c);
    return b;
}

static void test_random_bit_identical_on_every_device(void **state)
{
    (void)state;
    for (int s = 0; s < S_COUNT; s++)
        for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
            ferry_dtype dt = conf_all_dtypes[d];
            if (!sampler_takes((sampler)s, dt))
                continue;
            ferry_tensor *ref = draw_on((sampler)s, dt, "cpu");
            conf_where wr = {sampler_names[s], conf_dtype_name(dt), "reference", "cpu"};
            if (!ref) {
                conf_fail_call(&wr, sampler_names[s]);
                continue;
            }
            size_t nref;
            void *bref = host_bytes(ref, &nref);
            CONF_FOR_EACH_DEVICE(dev) {
                if (conf_is_cpu(dev))
                    continue;
                conf_where w = {sampler_names[s], conf_dtype_name(dt), "same as cpu", dev};
                ferry_fallback_stats_reset(dev);
                ferry_tensor *t = draw_on((sampler)s, dt, dev);
                if (!t) {
                    conf_fail_call(&w, sampler_names[s]);
                    continue;
                }
                size_t nb;
                void *b = host_bytes(t, &nb);
                if (!b || nb != nref || memcmp(b, bref, nb) != 0) {
                    size_t first = 0;
                    while (b && first < nb && first < nref &&
                           ((char *)b)[first] == ((char *)bref)[first])
                        first++;
                    conf_fail(&w, "bytes differ from the cpu's (first at byte %zu of %zu)",
                              first, nref);
                }
                /* opencl has the kernels: a random draw there must not fall back (the
                 * float64 ones only where the device has fp64, which PoCL has). */
                ferry_fallback_stats st;
                if (strncmp(dev, "opencl", 6) == 0 &&
                    ferry_fallback_stats_get(dev, &st) == FERRY_OK && st.total != 0 &&
                    s != S_RANDPERM)
                    conf_fail(&w, "%llu op(s) fell back to the cpu",
                              (unsigned long long)st.total);
                free(b);
                ferry_tensor_release(t);
            }
            free(bref);
            ferry_tensor_release(ref);
        }
    conf_finish();
}

/* ---- the cpu's vector builds --------------------------------------------------------- */

/* The cpu backend draws dense float32 through AVX-512 or AVX2 builds of the samplers
 * (backends/cpu/cpu_random_vec.c) where the CPU has them; each must give the scalar code's
 * bits for every block. Long draws (several threads, a partial last block) from states
 * whose block counter crosses 2^32 (the carry into the counter's second word) and a seed
 * with both key words set, against fk_random_block_f32 run here. ctest runs this group
 * again with FERRY_CPU_RANDOM_VEC=1 and =0, capping the build the backend picks. The
 * narrow randint into int32 and int64 and the 16-bit floats take the same builds. */
static void test_random_cpu_vector_builds_match_the_scalar_code(void **state)
{
    (void)state;
    const int64_t n = 300007;
    const uint64_t seeds[2] = {7, 0x9e3779b97f4a7c15ull};
    const uint64_t offsets[2] = {0, 4 * (((uint64_t)1 << 32) - 40000)};
    float *want = malloc((size_t)(n + 3) * sizeof *want);
    assert_non_null(want);
    for (int si = 0; si < 2; si++)
        for (int oi = 0; oi < 2; oi++)
            for (int kind = 0; kind < 4; kind++) {
                static const char *const names[4] = {"rand", "randn", "uniform_", "normal_"};
                conf_where w = {names[kind], "float32", "vector build = scalar", "cpu"};
                ferry_generator *g = ferry_generator_create(seeds[si]);
                assert_ok(ferry_generator_set_state(g, seeds[si], offsets[oi]));
                ferry_tensor *t = NULL;
                if (kind < 2) {
                    t = kind ? ferry_randn(FERRY_FLOAT32, 1, &n, "cpu", g)
                             : ferry_rand(FERRY_FLOAT32, 1, &n, "cpu", g);
                } else {
                    t = ferry_empty(FERRY_FLOAT32, 1, &n, "cpu");
                    if (t && (kind == 2 ? ferry_tensor_uniform(t, -2.5, 3.0, g)
                                        : ferry_tensor_normal(t, 1.5, 0.25, g)) != FERRY_OK) {
                        ferry_tensor_release(t);
                        t = NULL;
                    }
                }
                ferry_generator_release(g);
                if (!t) {
                    conf_fail_call(&w, names[kind]);
                    continue;
                }
                ferry_random_params rp = {.kind = kind & 1 ? FERRY_RANDOM_NORMAL
                                                           : FERRY_RANDOM_UNIFORM,
                                          .seed = seeds[si],
                                          .offset = offsets[oi],
                                          .a = kind == 2 ? -2.5 : kind == 3 ? 1.5 : 0.0,
                                          .b = kind == 2 ? 5.5 : kind == 3 ? 0.25 : 1.0};
                fk_random p = fk_random_launch(&rp, FERRY_FLOAT32, 0, n);
                for (int64_t j = 0; 4 * j < n; j++)
                    fk_random_block_f32(&p, (uint64_t)j, want + 4 * j);
                const uint32_t *got = ferry_tensor_host_data(t);
                for (int64_t i = 0; i < n; i++) {
                    uint32_t wb;
                    memcpy(&wb, &want[i], 4);
                    if (got[i] != wb) {
                        conf_fail(&w, "seed %#llx offset %llu: element %lld is %08x, want %08x",
                                  (unsigned long long)seeds[si], (unsigned long long)offsets[oi],
                                  (long long)i, got[i], wb);
                        break;
                    }
                }
                ferry_tensor_release(t);
            }
    /* Narrow randint into int32 and int64, with a range below 2^32 and of exactly 2^32
     * (the word itself), against fk_random_block_int. */
    const struct {
        int64_t low, high;
        ferry_dtype dt;
    } ints[] = {{-7, 1000, FERRY_INT32},
                {-7, 1000, FERRY_INT64},
                {INT32_MIN, (int64_t)INT32_MAX + 1, FERRY_INT32},
                {-5, ((int64_t)1 << 32) - 5, FERRY_INT64}};
    int64_t *wantl = malloc((size_t)(n + 3) * sizeof *wantl);
    assert_non_null(wantl);
    for (int si = 0; si < 2; si++)
        for (int oi = 0; oi < 2; oi++)
            for (size_t c = 0; c < sizeof ints / sizeof ints[0]; c++) {
                conf_where w = {"randint", conf_dtype_name(ints[c].dt), "vector build = scalar",
                                "cpu"};
                ferry_generator *g = ferry_generator_create(seeds[si]);
                assert_ok(ferry_generator_set_state(g, seeds[si], offsets[oi]));
                ferry_tensor *t = ferry_randint(ints[c].low, ints[c].high, ints[c].dt, 1, &n,
                                                "cpu", g);
                ferry_generator_release(g);
                if (!t) {
                    conf_fail_call(&w, "ferry_randint");
                    continue;
                }
                ferry_random_params rp = {.kind = FERRY_RANDOM_INT,
                                          .seed = seeds[si],
                                          .offset = offsets[oi],
                                          .low = ints[c].low,
                                          .range = (uint64_t)ints[c].high - (uint64_t)ints[c].low};
                fk_random p = fk_random_launch(&rp, ints[c].dt, 0, n);
                for (int64_t j = 0; 4 * j < n; j++)
                    fk_random_block_int(&p, (uint64_t)j, wantl + 4 * j);
                for (int64_t i = 0; i < n; i++) {
                    int64_t got = ints[c].dt == FERRY_INT32
                                      ? ((const int32_t *)ferry_tensor_host_data(t))[i]
                                      : ((const int64_t *)ferry_tensor_host_data(t))[i];
                    int64_t wv = ints[c].dt == FERRY_INT32 ? (int64_t)(int32_t)(uint32_t)wantl[i]
                                                           : wantl[i];
                    if (got != wv) {
                        conf_fail(&w, "[%lld, %lld) seed %#llx offset %llu: element %lld is %lld, "
                                  "want %lld",
                                  (long long)ints[c].low, (long long)ints[c].high,
                                  (unsigned long long)seeds[si], (unsigned long long)offsets[oi],
                                  (long long)i, (long long)got, (long long)wv);
                        break;
                    }
                }
                ferry_tensor_release(t);
            }
    free(wantl);
    /* float16 and bfloat16 (11 and 8 bits per uniform) take float32 tiles from the same
     * builds, rounded as the scalar store rounds. */
    const ferry_dtype halves[2] = {FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int hi = 0; hi < 2; hi++)
        for (int oi = 0; oi < 2; oi++)
            for (int normal = 0; normal < 2; normal++) {
                ferry_dtype dt = halves[hi];
                conf_where w = {normal ? "randn" : "rand", conf_dtype_name(dt),
                                "vector build = scalar", "cpu"};
                ferry_generator *g = ferry_generator_create(seeds[1]);
                assert_ok(ferry_generator_set_state(g, seeds[1], offsets[oi]));
                ferry_tensor *t = normal ? ferry_randn(dt, 1, &n, "cpu", g)
                                         : ferry_rand(dt, 1, &n, "cpu", g);
                ferry_generator_release(g);
                if (!t) {
                    conf_fail_call(&w, w.op);
                    continue;
                }
                ferry_random_params rp = {.kind = normal ? FERRY_RANDOM_NORMAL
                                                         : FERRY_RANDOM_UNIFORM,
                                          .seed = seeds[1],
                                          .offset = offsets[oi],
                                          .a = 0.0,
                                          .b = 1.0};
                fk_random p = fk_random_launch(&rp, dt, 0, n);
                for (int64_t j = 0; 4 * j < n; j++)
                    fk_random_block_f32(&p, (uint64_t)j, want + 4 * j);
                const uint16_t *got = ferry_tensor_host_data(t);
                for (int64_t i = 0; i < n; i++) {
                    uint16_t wb = dt == FERRY_FLOAT16 ? ferry_f32_to_f16(want[i])
                                                      : ferry_f32_to_bf16(want[i]);
                    if (got[i] != wb) {
                        conf_fail(&w, "offset %llu: element %lld is %04x, want %04x",
                                  (unsigned long long)offsets[oi], (long long)i, got[i], wb);
                        break;
                    }
                }
                ferry_tensor_release(t);
            }
    free(want);
    conf_finish();
}

/* ---- the stream's bookkeeping --------------------------------------------------------- */

static void test_random_offsets_and_prefixes(void **state)
{
    (void)state;
    ferry_generator *g = ferry_generator_create(99);
    uint64_t seed, off;
    ferry_tensor *a = ferry_rand(FERRY_FLOAT32, 1, SHAPE(6), "cpu", g);
    assert_tensor(a);
    assert_ok(ferry_generator_get_state(g, &seed, &off));
    assert_int_equal(seed, 99);
    assert_int_equal(off, 8); /* 6 words, rounded up to whole blocks */
    ferry_tensor *b = ferry_rand(FERRY_FLOAT64, 1, SHAPE(3), "cpu", g);
    assert_tensor(b);
    assert_ok(ferry_generator_get_state(g, NULL, &off));
    assert_int_equal(off, 16); /* 2 words each */
    ferry_tensor *c = ferry_randint(0, (int64_t)1 << 33, FERRY_INT64, 1, SHAPE(5), "cpu", g);
    assert_tensor(c);
    assert_ok(ferry_generator_get_state(g, NULL, &off));
    assert_int_equal(off, 28);

    /* Element i depends on (seed, offset, i) alone: a longer draw from the same state
     * starts with the shorter one, and a set_state replays. */
    assert_ok(ferry_generator_set_state(g, 99, 0));
    ferry_tensor *long_a = ferry_rand(FERRY_FLOAT32, 1, SHAPE(1000), "cpu", g);
    assert_tensor(long_a);
    assert_memory_equal(ferry_tensor_host_data(long_a), ferry_tensor_host_data(a), 6 * 4);
    assert_ok(ferry_generator_set_state(g, 99, 8));
    ferry_tensor *b2 = ferry_rand(FERRY_FLOAT64, 1, SHAPE(3), "cpu", g);
    assert_tensor(b2);
    assert_memory_equal(ferry_tensor_host_data(b2), ferry_tensor_host_data(b), 3 * 8);
    /* Another seed, other numbers. */
    assert_ok(ferry_generator_set_state(g, 100, 0));
    ferry_tensor *other = ferry_rand(FERRY_FLOAT32, 1, SHAPE(6), "cpu", g);
    assert_tensor(other);
    assert_true(memcmp(ferry_tensor_host_data(other), ferry_tensor_host_data(a), 24) != 0);

    /* The global generator: manual_seed resets it. */
    ferry_manual_seed(5);
    ferry_tensor *g1 = ferry_randn(FERRY_FLOAT32, 1, SHAPE(10), "cpu", NULL);
    ferry_manual_seed(5);
    ferry_tensor *g2 = ferry_randn(FERRY_FLOAT32, 1, SHAPE(10), "cpu", NULL);
    assert_tensor(g1);
    assert_tensor(g2);
    assert_memory_equal(ferry_tensor_host_data(g1), ferry_tensor_host_data(g2), 40);
    assert_ok(ferry_generator_get_state(NULL, &seed, &off));
    assert_int_equal(seed, 5);
    assert_int_equal(off, 12);

    ferry_tensor *ts[] = {a, b, c, long_a, b2, other, g1, g2};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ferry_tensor_release(ts[i]);
    ferry_generator_release(g);
}

/* Concurrent draws from one generator take disjoint blocks: the offset ends at the sum. */
static void *draw_many(void *arg)
{
    ferry_generator *g = arg;
    for (int i = 0; i < 200; i++)
        ferry_tensor_release(ferry_rand(FERRY_FLOAT32, 1, SHAPE(5), "cpu", g));
    return NULL;
}

static void test_random_generator_is_thread_safe(void **state)
{
    (void)state;
    ferry_generator *g = ferry_generator_create(7);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, draw_many, g), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    uint64_t off;
    assert_ok(ferry_generator_get_state(g, NULL, &off));
    assert_int_equal(off, 4 * 200 * 8);
    ferry_generator_release(g);
}

/* ---- distributions -------------------------------------------------------------------- */

#define NDRAW 1000000

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

/* Kolmogorov-Smirnov statistic of sorted v against cdf. */
static double ks_stat(const double *v, int64_t n, double (*cdf)(double))
{
    double d = 0;
    for (int64_t i = 0; i < n; i++) {
        double f = cdf(v[i]);
        double lo = f - (double)i / (double)n, hi = (double)(i + 1) / (double)n - f;
        d = fmax(d, fmax(lo, hi));
    }
    return d;
}

static double uniform_cdf(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* Thresholds: 5 standard errors for mean and variance, and for KS 1.95 / sqrt(n) (the
 * 0.1% critical value); with fixed seeds the outcome is fixed, so these guard the
 * transforms, not luck. */
static void check_distribution(const conf_where *w, ferry_tensor *t, bool normal)
{
    ferry_tensor *d = ferry_tensor_to_dtype(t, FERRY_FLOAT64);
    ferry_tensor *h = d ? ferry_tensor_cpu(d) : NULL;
    if (!h) {
        conf_fail_call(w, "to float64 on cpu");
        ferry_tensor_release(d);
        return;
    }
    int64_t n = ferry_tensor_numel(h);
    double *v = malloc((size_t)n * sizeof *v);
    memcpy(v, ferry_tensor_host_data(h), (size_t)n * sizeof *v);
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        sum += v[i];
        lo = fmin(lo, v[i]);
        hi = fmax(hi, v[i]);
    }
    double mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++)
        sq += (v[i] - mean) * (v[i] - mean);
    double var = sq / (double)(n - 1);
    double want_mean = normal ? 0.0 : 0.5, want_var = normal ? 1.0 : 1.0 / 12.0;
    double se_mean = sqrt(want_var / (double)n);
    double se_var = normal ? sqrt(2.0 / (double)n) : sqrt((1.0 / 80 - 1.0 / 144) / (double)n);
    if (fabs(mean - want_mean) > 5 * se_mean)
        conf_fail(w, "mean %.6f, want %.6f +- %.6f", mean, want_mean, 5 * se_mean);
    if (fabs(var - want_var) > 5 * se_var)
        conf_fail(w, "variance %.6f, want %.6f +- %.6f", var, want_var, 5 * se_var);
    if (!normal && (lo < 0.0 || hi >= 1.0))
        conf_fail(w, "values in [%.9g, %.9g], outside [0, 1)", lo, hi);
    if (normal && !(isfinite(lo) && isfinite(hi)))
        conf_fail(w, "a non-finite normal");
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double ks = ks_stat(v, n, normal ? normal_cdf : uniform_cdf);
    double crit = 1.95 / sqrt((double)n);
    if (ks > crit)
        conf_fail(w, "Kolmogorov-Smirnov D = %.5f above %.5f", ks, crit);
    free(v);
    ferry_tensor_release(h);
    ferry_tensor_release(d);
}

static void test_random_distributions_of_a_million_draws(void **state)
{
    (void)state;
    ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_FLOAT16, FERRY_BFLOAT16};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++)
        for (int normal = 0; normal < 2; normal++) {
            conf_where w = {normal ? "randn" : "rand", conf_dtype_name(dts[i]), "10^6 draws",
                            "cpu"};
            /* The 16-bit floats are exact only to their precision: the KS statistic of a
             * rounded distribution stays below the threshold for float16 (2^-11 steps)
             * but not for bfloat16 (2^-8), which checks mean and variance alone. */
            ferry_generator *g = ferry_generator_create(2024 + i);
            ferry_tensor *t = normal ? ferry_randn(dts[i], 1, SHAPE(NDRAW), "cpu", g)
                                     : ferry_rand(dts[i], 1, SHAPE(NDRAW), "cpu", g);
            if (!t)
                conf_fail_call(&w, w.op);
            else if (dts[i] != FERRY_BFLOAT16)
                check_distribution(&w, t, normal);
            ferry_tensor_release(t);
            ferry_generator_release(g);
        }
    conf_finish();
}

static void test_random_bernoulli_and_dropout_rates(void **state)
{
    (void)state;
    ferry_generator *g = ferry_generator_create(31);
    ferry_tensor *p = ferry_full(FERRY_FLOAT32, 1, SHAPE(NDRAW), 0.3, "cpu");
    ferry_tensor *b = ferry_bernoulli(p, g);
    assert_tensor(b);
    const float *bv = ferry_tensor_host_data(b);
    int64_t ones = 0;
    for (int64_t i = 0; i < NDRAW; i++) {
        if (bv[i] != 0.0f && bv[i] != 1.0f)
            fail_msg("bernoulli gave %g", bv[i]);
        ones += bv[i] == 1.0f;
    }
    double se = sqrt(0.3 * 0.7 / NDRAW);
    if (fabs((double)ones / NDRAW - 0.3) > 5 * se)
        fail_msg("bernoulli(0.3): rate %.5f", (double)ones / NDRAW);

    ferry_tensor *x = ferry_ones(FERRY_FLOAT32, 1, SHAPE(NDRAW), "cpu");
    ferry_tensor *y = ferry_dropout(x, 0.25, true, g);
    assert_tensor(y);
    const float *yv = ferry_tensor_host_data(y);
    int64_t zeros = 0;
    float kept = (float)(1.0 / 0.75);
    for (int64_t i = 0; i < NDRAW; i++) {
        if (yv[i] != 0.0f && yv[i] != kept)
            fail_msg("dropout gave %g, want 0 or %g", yv[i], kept);
        zeros += yv[i] == 0.0f;
    }
    se = sqrt(0.25 * 0.75 / NDRAW);
    if (fabs((double)zeros / NDRAW - 0.25) > 5 * se)
        fail_msg("dropout(0.25): zero rate %.5f", (double)zeros / NDRAW);
    /* Not training, or p = 0: the input itself; p = 1: zeros. */
    ferry_tensor *same = ferry_dropout(x, 0.5, false, g);
    assert_ptr_equal(same, x);
    ferry_tensor *zero = ferry_dropout(x, 1.0, true, g);
    assert_tensor(zero);
    assert_true(((const float *)ferry_tensor_host_data(zero))[7] == 0.0f);
    /* Its gradient is the noise: grad * mask / (1 - p). */
    ferry_tensor *xs = ferry_ones(FERRY_FLOAT64, 1, SHAPE(64), "cpu");
    assert_ok(ferry_tensor_set_requires_grad(xs, true));
    ferry_tensor *ys = ferry_dropout(xs, 0.5, true, g);
    assert_tensor(ys);
    assert_string_equal(ferry_tensor_grad_fn_name(ys), "MulBackward0");
    ferry_tensor *s = ferry_sum(ys, 0, NULL, false);
    assert_ok(ferry_backward(s, NULL, false));
    ferry_tensor *gr = ferry_tensor_grad(xs);
    assert_tensor(gr);
    double gv[64], yv2[64];
    assert_ok(ferry_tensor_copy_to_host(gr, gv, sizeof gv));
    assert_ok(ferry_tensor_copy_to_host(ys, yv2, sizeof yv2));
    assert_memory_equal(gv, yv2, sizeof gv);
    ferry_tensor *ts[] = {p, b, x, y, same, zero, xs, ys, s, gr};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ferry_tensor_release(ts[i]);
    ferry_generator_release(g);
}

/* ---- randint bounds, randperm ---------------------------------------------------------- */

static void expect_range(int64_t low, int64_t high, ferry_dtype dt, bool both_ends)
{
    ferry_generator *g = ferry_generator_create((uint64_t)low ^ 0x5555);
    int64_t n = 100000;
    ferry_tensor *t = ferry_randint(low, high, dt, 1, &n, "cpu", g);
    assert_tensor(t);
    ferry_tensor *l = ferry_tensor_to_dtype(t, FERRY_INT64);
    assert_tensor(l);
    const int64_t *v = ferry_tensor_host_data(l);
    bool saw_low = false, saw_top = false;
    for (int64_t i = 0; i < n; i++) {
        if (v[i] < low || v[i] > high - 1)
            fail_msg("randint(%lld, %lld): %lld out of range", (long long)low, (long long)high,
                     (long long)v[i]);
        saw_low |= v[i] == low;
        saw_top |= v[i] == high - 1;
    }
    if (both_ends && !(saw_low && saw_top))
        fail_msg("randint(%lld, %lld): low seen %d, high - 1 seen %d", (long long)low,
                 (long long)high, saw_low, saw_top);
    ferry_tensor_release(l);
    ferry_tensor_release(t);
    ferry_generator_release(g);
}

static void test_random_randint_bounds_are_exact(void **state)
{
    (void)state;
    expect_range(-3, 4, FERRY_INT8, true);
    expect_range(-128, 128, FERRY_INT8, true);
    expect_range(0, 256, FERRY_UINT8, true);
    expect_range(0, 2, FERRY_BOOL, true);
    expect_range(10, 11, FERRY_INT32, true);
    expect_range(INT32_MIN, INT32_MAX, FERRY_INT32, false);
    expect_range(-1000, 1000, FERRY_FLOAT32, true);
    expect_range(INT64_MIN, INT64_MIN + 3, FERRY_INT64, true);
    expect_range(INT64_MAX - 3, INT64_MAX, FERRY_INT64, true);
    expect_range(INT64_MIN, INT64_MAX, FERRY_INT64, false);
    expect_range(-((int64_t)1 << 62), (int64_t)1 << 62, FERRY_INT64, false);
    /* The full int64 range gives both signs; near-extreme wide ranges stay inside. */
    ferry_generator *g = ferry_generator_create(3);
    ferry_tensor *t = ferry_randint(INT64_MIN, INT64_MAX, FERRY_INT64, 1, SHAPE(1000), "cpu", g);
    assert_tensor(t);
    const int64_t *v = ferry_tensor_host_data(t);
    int neg = 0;
    for (int i = 0; i < 1000; i++)
        neg += v[i] < 0;
    assert_true(neg > 400 && neg < 600);
    ferry_tensor_release(t);
    ferry_generator_release(g);
}

static void test_random_randperm_is_a_permutation(void **state)
{
    (void)state;
    int64_t sizes[] = {0, 1, 2, 5, 1000, 100003};
    ferry_generator *g = ferry_generator_create(11);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        ferry_tensor *t = ferry_randperm(n, FERRY_INT64, "cpu", g);
        assert_tensor(t);
        assert_int_equal(ferry_tensor_numel(t), n);
        assert_int_equal(ferry_tensor_dtype(t), FERRY_INT64);
        const int64_t *v = ferry_tensor_host_data(t);
        char *seen = calloc((size_t)n + 1, 1);
        int64_t fixed = 0;
        for (int64_t i = 0; i < n; i++) {
            if (v[i] < 0 || v[i] >= n || seen[v[i]])
                fail_msg("randperm(%lld): %lld at %lld repeats or is out of range",
                         (long long)n, (long long)v[i], (long long)i);
            seen[v[i]] = 1;
            fixed += v[i] == i;
        }
        if (n >= 1000 && fixed > 20)
            fail_msg("randperm(%lld): %lld fixed points", (long long)n, (long long)fixed);
        free(seen);
        ferry_tensor_release(t);
    }
    ferry_generator_release(g);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void test_random_errors_name_the_problem(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"random", "-", "errors", dev};
        ferry_tensor *r;
#define EXPECT_NULL(call, status, msg)                                                       \
    do {                                                                                     \
        r = (call);                                                                          \
        conf_expect_error(&w, #call, r == NULL, status, status, msg);                        \
        ferry_tensor_release(r);                                                             \
    } while (0)
        EXPECT_NULL(ferry_randint(5, 5, FERRY_INT64, 1, SHAPE(3), dev, NULL),
                    FERRY_ERR_INVALID_ARGUMENT,
                    "random_ expects 'from' to be less than 'to', but got from=5 >= to=5");
        EXPECT_NULL(ferry_randint(0, 300, FERRY_INT8, 1, SHAPE(3), dev, NULL),
                    FERRY_ERR_INVALID_ARGUMENT, "to - 1 is out of bounds for signed char");
        EXPECT_NULL(ferry_randint(-200, 3, FERRY_INT8, 1, SHAPE(3), dev, NULL),
                    FERRY_ERR_INVALID_ARGUMENT, "from is out of bounds for signed char");
        EXPECT_NULL(ferry_rand(FERRY_INT64, 1, SHAPE(3), dev, NULL), FERRY_ERR_UNSUPPORTED,
                    "\"check_uniform_bounds\" not implemented for 'Long'");
        EXPECT_NULL(ferry_randn(FERRY_INT32, 1, SHAPE(3), dev, NULL), FERRY_ERR_UNSUPPORTED,
                    "\"normal_kernel_cpu\" not implemented for 'Int'");
        EXPECT_NULL(ferry_randperm(-1, FERRY_INT64, dev, NULL), FERRY_ERR_INVALID_ARGUMENT,
                    "Trying to create tensor with negative dimension -1: [-1]");
        EXPECT_NULL(ferry_randperm(300, FERRY_INT8, dev, NULL), FERRY_ERR_INVALID_ARGUMENT,
                    "value cannot be converted to type int8_t without overflow");
        EXPECT_NULL(ferry_rand(FERRY_FLOAT32, 1, SHAPE(-2), dev, NULL),
                    FERRY_ERR_INVALID_ARGUMENT, "negative dimension");
        double bad_p[] = {1.5, -0.25, NAN};
        for (int i = 0; i < 3; i++) {
            ferry_tensor *p = ferry_full(FERRY_FLOAT32, 1, SHAPE(4), 0.5, "cpu");
            ((float *)ferry_tensor_host_data(p))[2] = (float)bad_p[i];
            ferry_tensor *pd = ferry_tensor_to(p, dev);
            EXPECT_NULL(ferry_bernoulli(pd, NULL), FERRY_ERR_INVALID_ARGUMENT,
                        "Expected p_in >= 0 && p_in <= 1 to be true, but got false.");
            ferry_tensor_release(pd);
            ferry_tensor_release(p);
        }
        ferry_tensor *ip = ferry_ones(FERRY_INT64, 1, SHAPE(4), dev);
        EXPECT_NULL(ferry_bernoulli(ip, NULL), FERRY_ERR_UNSUPPORTED,
                    "\"bernoulli_tensor_cpu_p_\" not implemented for 'Long'");
        EXPECT_NULL(ferry_dropout(ip, 0.5, true, NULL), FERRY_ERR_INVALID_ARGUMENT,
                    "result type Float can't be cast to the desired output type Long");
        ferry_tensor *x = ferry_ones(FERRY_FLOAT32, 1, SHAPE(4), dev);
        EXPECT_NULL(ferry_dropout(x, 1.5, true, NULL), FERRY_ERR_INVALID_ARGUMENT,
                    "dropout probability has to be between 0 and 1, but got 1.5");
        EXPECT_NULL(ferry_dropout(x, -0.5, true, NULL), FERRY_ERR_INVALID_ARGUMENT,
                    "dropout probability has to be between 0 and 1, but got -0.5");
        ferry_status st = ferry_tensor_uniform(x, 2, 1, NULL);
        conf_expect_error(&w, "uniform_", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "uniform_ expects to return a [from, to) range, but found from=2 > "
                          "to=1");
        st = ferry_tensor_normal(x, 0, -1, NULL);
        conf_expect_error(&w, "normal_", st != FERRY_OK, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "normal expects std >= 0.0, but found std -1");
        st = ferry_tensor_uniform(ip, 0, 1, NULL);
        conf_expect_error(&w, "uniform_ (int64)", st != FERRY_OK, FERRY_ERR_UNSUPPORTED,
                          FERRY_ERR_UNSUPPORTED,
                          "\"check_uniform_bounds\" not implemented for 'Long'");
        assert_ok(ferry_tensor_set_requires_grad(x, true));
        st = ferry_tensor_normal(x, 0, 1, NULL);
        conf_expect_error(&w, "normal_ (leaf)", st != FERRY_OK, FERRY_ERR_UNSUPPORTED,
                          FERRY_ERR_UNSUPPORTED,
                          "a leaf Variable that requires grad is being used in an in-place "
                          "operation.");
        ferry_tensor_release(x);
        ferry_tensor_release(ip);
#undef EXPECT_NULL
    }
    ferry_generator *g = ferry_generator_create(1);
    assert_status(ferry_generator_set_state(g, 1, 6), FERRY_ERR_INVALID_ARGUMENT,
                  "offset 6 is not a multiple of 4");
    ferry_generator_release(g);
    conf_finish();
}

int conf_group_random(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_philox_known_answers),
        cmocka_unit_test(test_random_bit_identical_on_every_device),
        cmocka_unit_test(test_random_cpu_vector_builds_match_the_scalar_code),
        cmocka_unit_test(test_random_offsets_and_prefixes),
        cmocka_unit_test(test_random_generator_is_thread_safe),
        cmocka_unit_test(test_random_distributions_of_a_million_draws),
        cmocka_unit_test(test_random_bernoulli_and_dropout_rates),
        cmocka_unit_test(test_random_randint_bounds_are_exact),
        cmocka_unit_test(test_random_randperm_is_a_permutation),
        cmocka_unit_test(test_random_errors_name_the_problem),
    };
    return cmocka_run_group_tests_name("random", tests, NULL, NULL);
}

/* The cast contract on every device: every dtype pair over the edge inputs (NaN, the
 * infinities, negative zero, fractions, values just inside and just outside each integer
 * range), contiguous and strided; and float16/bfloat16 bit-exact through each device's
 * own conversion code (all 65536 patterns to float32/float64 and back, and float32
 * halfway cases rounding to even). Float -> integer saturates (NaN gives 0), to bool is
 * != 0 (NaN is true), integer -> integer wraps, and the 16-bit floats round from float32.
 * The reference is written here from the IEEE layouts and C's own conversions. */
#include "conformance.h"

#include <float.h>
#include <inttypes.h>

/* ---- one element of any dtype, exactly --------------------------------------------- */

/* Integers (and bool) are held as int64, floating values as double; every value of each
 * dtype fits its side exactly. */
typedef struct cval {
    bool is_int;
    int64_t i;
    double f;
} cval;

static cval cint(int64_t i)
{
    return (cval){true, i, 0};
}

static cval cflt(double f)
{
    return (cval){false, 0, f};
}

typedef struct int_range {
    ferry_dtype dt;
    int64_t min, max;
    double lo, hi; /* min and max + 1 as doubles: powers of two, exact */
} int_range;

static const int_range ranges[] = {
    {FERRY_UINT8, 0, UINT8_MAX, 0.0, 256.0},
    {FERRY_INT8, INT8_MIN, INT8_MAX, -128.0, 128.0},
    {FERRY_INT16, INT16_MIN, INT16_MAX, -32768.0, 32768.0},
    {FERRY_INT32, INT32_MIN, INT32_MAX, -2147483648.0, 2147483648.0},
    {FERRY_INT64, INT64_MIN, INT64_MAX, -9223372036854775808.0, 9223372036854775808.0},
};

static const int_range *range_of(ferry_dtype dt)
{
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (ranges[i].dt == dt)
            return &ranges[i];
    return NULL;
}

/* The nearest float16 / bfloat16 value of a float32, ties to even, too large to inf. */
static double round_half(ferry_dtype dt, float x)
{
    return conf_round(dt, (double)x);
}

/* What casting v to dt must give, by the contract above. */
static cval reference(cval v, ferry_dtype dt)
{
    if (dt == FERRY_BOOL)
        return cint(v.is_int ? v.i != 0 : v.f != 0 || isnan(v.f));
    const int_range *r = range_of(dt);
    if (r) {
        if (v.is_int)
            return cint(dt == FERRY_INT64 ? v.i : conf_wrap(dt, v.i));
        if (isnan(v.f))
            return cint(0);
        if (v.f >= r->hi)
            return cint(r->max);
        if (v.f <= r->lo)
            return cint(r->min);
        return cint((int64_t)trunc(v.f));
    }
    /* Integers convert to float32 as C does (once, from the exact value); the 16-bit
     * floats round from that float32; float64 gets the exact value or C's rounding. */
    float x32 = v.is_int ? (float)v.i : (float)v.f;
    switch (dt) {
    case FERRY_FLOAT16:
    case FERRY_BFLOAT16:
        return cflt(round_half(dt, x32));
    case FERRY_FLOAT32:
        return cflt(x32);
    default:
        return cflt(v.is_int ? (double)v.i : v.f);
    }
}

static bool same(cval a, cval b)
{
    if (a.is_int != b.is_int)
        return false;
    if (a.is_int)
        return a.i == b.i;
    if (isnan(a.f) || isnan(b.f))
        return isnan(a.f) && isnan(b.f);
    return a.f == b.f && signbit(a.f) == signbit(b.f);
}

static void describe(cval v, char *buf, size_t cap)
{
    if (v.is_int)
        snprintf(buf, cap, "%" PRId64, v.i);
    else
        snprintf(buf, cap, "%.17g", v.f);
}

/* Element bytes of n values of dt. free() the result. */
static void *encode(ferry_dtype dt, const cval *v, int64_t n)
{
    size_t es = conf_dtype_size(dt);
    unsigned char *p = malloc((size_t)(n ? n : 1) * es);
    assert_non_null(p);
    if (dt == FERRY_INT64) {
        for (int64_t k = 0; k < n; k++)
            memcpy(p + k * 8, &v[k].i, 8);
        return p;
    }
    int64_t shape[1] = {n};
    conf_array a;
    conf_array_init(&a, dt, 1, shape);
    for (int64_t k = 0; k < n; k++)
        a.v[k] = v[k].is_int ? (double)v[k].i : v[k].f;
    void *bytes = conf_encode(&a);
    memcpy(p, bytes, (size_t)n * es);
    free(bytes);
    conf_array_free(&a);
    return p;
}

static void decode(ferry_dtype dt, const void *bytes, int64_t n, cval *out)
{
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    assert_non_null(d);
    conf_decode(dt, bytes, n, d);
    for (int64_t k = 0; k < n; k++) {
        if (dt == FERRY_INT64) {
            int64_t x;
            memcpy(&x, (const unsigned char *)bytes + k * 8, 8);
            out[k] = cint(x);
        } else {
            out[k] = conf_is_float(dt) ? cflt(d[k]) : cint((int64_t)d[k]);
        }
    }
    free(d);
}

/* ---- the edge inputs ------------------------------------------------------------------ */

#define MAX_EDGES 160

static void push(cval *v, int *n, cval x)
{
    assert_true(*n < MAX_EDGES);
    v[(*n)++] = x;
}

/* Edge values of a floating dtype: each rounded to dt first, so every input is a value
 * dt holds (an integer limit too large for float16 arrives as an infinity). */
static void push_float(ferry_dtype dt, cval *v, int *n, double x)
{
    push(v, n, cflt(conf_round(dt, x)));
}

static int edge_values(ferry_dtype dt, cval *v)
{
    int n = 0;
    if (dt == FERRY_BOOL) {
        push(v, &n, cint(0));
        push(v, &n, cint(1));
        return n;
    }
    const int_range *own = range_of(dt);
    if (own) {
        const int64_t plain[] = {0, 1, -1, 2, 100, -100, 16777217, -16777217,
                                 ((int64_t)1 << 53) + 1, -((int64_t)1 << 53) - 1};
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
            if (plain[i] >= own->min && plain[i] <= own->max)
                push(v, &n, cint(plain[i]));
        /* Every narrower range's limits and one step past them, as far as dt holds them. */
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
            const int64_t lim[4] = {ranges[r].min, ranges[r].max,
                                    ranges[r].min == INT64_MIN ? INT64_MIN : ranges[r].min - 1,
                                    ranges[r].max == INT64_MAX ? INT64_MAX : ranges[r].max + 1};
            for (int k = 0; k < 4; k++)
                if (lim[k] >= own->min && lim[k] <= own->max)
                    push(v, &n, cint(lim[k]));
        }
        return n;
    }
    const double plain[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0, -0.0, 0.5, -0.5, 0.9999,
                            -0.9999, 1.0, -1.0, 1.5, -1.5, 2.75, -2.75, 1e30, -1e30, 1e300,
                            -1e300, DBL_MIN, -FLT_TRUE_MIN, 65504.0, 65520.0, 3.3895313892515355e38};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        push_float(dt, v, &n, plain[i]);
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        double lo = ranges[r].lo, hi = ranges[r].hi;
        /* min, max + 1 (the first value past max), and half a step inside and outside
         * each end; in float32 the largest value below 2^31 is 2^31 - 128, so the value
         * just below each power-of-two bound is taken in dt's own precision too. */
        const double near[] = {lo, hi, hi - 1, lo - 1, hi - 0.5, lo + 0.5, hi - 1.5,
                               lo - 0.5, hi + 0.5};
        for (size_t k = 0; k < sizeof near / sizeof near[0]; k++)
            push_float(dt, v, &n, near[k]);
        float below32 = nextafterf((float)hi, 0.0f), above32 = nextafterf((float)lo, 0.0f);
        push_float(dt, v, &n, below32);
        push_float(dt, v, &n, above32);
        push_float(dt, v, &n, -(double)below32);
        if (dt == FERRY_FLOAT64) {
            push(v, &n, cflt(nextafter(hi, 0.0)));
            push(v, &n, cflt(nextafter(lo, -INFINITY)));
        }
    }
    return n;
}

/* ---- every pair ---------------------------------------------------------------------- */

/* v (n values of dt) uploaded to device, either as a contiguous tensor or as column 0 of
 * an (n, 2) tensor whose column 1 holds other values, so the cast reads stride 2. */
static ferry_tensor *upload(const conf_where *w, ferry_dtype dt, const cval *v, int n,
                            const char *device, bool strided, ferry_tensor **base)
{
    *base = NULL;
    if (!strided) {
        void *bytes = encode(dt, v, n);
        int64_t shape[1] = {n};
        ferry_tensor *t = ferry_tensor_from_data(bytes, dt, 1, shape, device);
        free(bytes);
        if (!t)
            conf_fail_call(w, "ferry_tensor_from_data");
        return t;
    }
    cval *two = malloc((size_t)n * 2 * sizeof *two);
    assert_non_null(two);
    for (int k = 0; k < n; k++) {
        two[2 * k] = v[k];
        two[2 * k + 1] = v[n - 1 - k];
    }
    void *bytes = encode(dt, two, 2 * (int64_t)n);
    free(two);
    int64_t shape[2] = {n, 2};
    *base = ferry_tensor_from_data(bytes, dt, 2, shape, device);
    free(bytes);
    if (!*base) {
        conf_fail_call(w, "ferry_tensor_from_data");
        return NULL;
    }
    ferry_tensor *col = ferry_slice(*base, 1, 0, 1, 1);
    if (!col)
        conf_fail_call(w, "ferry_slice");
    return col;
}

static void check_pair(const char *device, ferry_dtype from, ferry_dtype to, bool strided)
{
    char dtypes[48];
    snprintf(dtypes, sizeof dtypes, "%s->%s", conf_dtype_name(from), conf_dtype_name(to));
    conf_where w = {"cast", dtypes, strided ? "edge values, stride 2" : "edge values", device};
    cval v[MAX_EDGES];
    int n = edge_values(from, v);
    ferry_tensor *base;
    ferry_tensor *src = upload(&w, from, v, n, device, strided, &base);
    if (!src) {
        ferry_tensor_release(base);
        return;
    }
    ferry_tensor *out = ferry_tensor_to_dtype(src, to);
    if (!out) {
        conf_fail_call(&w, "ferry_tensor_to_dtype");
    } else if (ferry_tensor_dtype(out) != to) {
        conf_fail(&w, "result has dtype %s", conf_dtype_name(ferry_tensor_dtype(out)));
    } else {
        size_t nbytes = (size_t)n * conf_dtype_size(to);
        void *bytes = malloc(nbytes);
        assert_non_null(bytes);
        if (ferry_tensor_copy_to_host(out, bytes, nbytes) != FERRY_OK) {
            conf_fail_call(&w, "ferry_tensor_copy_to_host");
        } else {
            cval got[MAX_EDGES];
            decode(to, bytes, n, got);
            int shown = 0;
            for (int k = 0; k < n; k++) {
                cval want = reference(v[k], to);
                if (same(got[k], want) || shown >= 4)
                    continue;
                shown++;
                char a[40], b[40], c[40];
                describe(v[k], a, sizeof a);
                describe(got[k], b, sizeof b);
                describe(want, c, sizeof c);
                conf_fail(&w, "element %d: %s gave %s, expected %s", k, a, b, c);
            }
        }
        free(bytes);
    }
    ferry_tensor_release(out);
    ferry_tensor_release(src);
    ferry_tensor_release(base);
}

static void test_casts_every_dtype_pair_follows_the_contract_on_edge_values(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev)
    {
        for (int a = 0; a < FERRY_NUM_DTYPES; a++)
            for (int b = 0; b < FERRY_NUM_DTYPES; b++)
                for (int s = 0; s < 2; s++)
                    check_pair(dev, conf_all_dtypes[a], conf_all_dtypes[b], s == 1);
    }
    conf_finish();
}

/* ---- the 16-bit floats, bit for bit ---------------------------------------------------- */

/* The float32 bits of a float16 pattern, from the binary16 layout. */
static uint32_t f16_to_f32_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return sign | 0x7f800000u | (mant << 13);
    if (exp == 0) {
        float f = ldexpf((float)mant, -24); /* exact: at most 10 significant bits */
        uint32_t x;
        memcpy(&x, &f, 4);
        return sign | x;
    }
    return sign | ((exp + 112u) << 23) | (mant << 13);
}

static bool f16_is_nan(uint16_t h)
{
    return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
}

static bool bf16_is_nan(uint16_t h)
{
    return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu);
}

static bool f32_bits_nan(uint32_t x)
{
    return (x & 0x7fffffffu) > 0x7f800000u;
}

static ferry_tensor *from_bits(const conf_where *w, const void *bits, ferry_dtype dt, int64_t n,
                               const char *device)
{
    ferry_tensor *t = ferry_tensor_from_data(bits, dt, 1, &n, device);
    if (!t)
        conf_fail_call(w, "ferry_tensor_from_data");
    return t;
}

/* cast(t, dt) read back into out (n elements of dt); false after recording a failure. */
static bool cast_read(const conf_where *w, ferry_tensor *t, ferry_dtype dt, void *out,
                      int64_t n, ferry_tensor **result)
{
    *result = ferry_tensor_to_dtype(t, dt);
    if (!*result) {
        conf_fail_call(w, "ferry_tensor_to_dtype");
        return false;
    }
    if (ferry_tensor_copy_to_host(*result, out, (size_t)n * conf_dtype_size(dt)) != FERRY_OK) {
        conf_fail_call(w, "ferry_tensor_copy_to_host");
        return false;
    }
    return true;
}

/* All 65536 patterns of dt (float16 or bfloat16) to float32 and float64 and back. Widening
 * is exact; narrowing the widened value gives the pattern back. A NaN must stay a NaN
 * (its payload and sign are not part of the contract: CUDA's conversion canonicalises). */
static void check_patterns(const char *device, ferry_dtype dt)
{
    const int64_t n = 65536;
    uint16_t *bits = malloc((size_t)n * 2);
    uint32_t *wide32 = malloc((size_t)n * 4);
    double *wide64 = malloc((size_t)n * 8);
    uint16_t *back = malloc((size_t)n * 2);
    assert_true(bits && wide32 && wide64 && back);
    for (int64_t k = 0; k < n; k++)
        bits[k] = (uint16_t)k;
    bool (*is_nan)(uint16_t) = dt == FERRY_FLOAT16 ? f16_is_nan : bf16_is_nan;
    const ferry_dtype wides[2] = {FERRY_FLOAT32, FERRY_FLOAT64};
    for (int wi = 0; wi < 2; wi++) {
        char name[40];
        snprintf(name, sizeof name, "%s->%s->%s", conf_dtype_name(dt),
                 conf_dtype_name(wides[wi]), conf_dtype_name(dt));
        conf_where w = {"cast", name, "every bit pattern", device};
        ferry_tensor *src = from_bits(&w, bits, dt, n, device);
        ferry_tensor *mid = NULL, *out = NULL;
        void *wide = wi == 0 ? (void *)wide32 : (void *)wide64;
        if (src && cast_read(&w, src, wides[wi], wide, n, &mid)) {
            int shown = 0;
            for (int64_t k = 0; k < n && shown < 4; k++) {
                uint32_t want = dt == FERRY_FLOAT16 ? f16_to_f32_bits(bits[k])
                                                    : (uint32_t)bits[k] << 16;
                uint32_t got;
                if (wi == 0) {
                    got = wide32[k];
                } else {
                    float f = (float)wide64[k]; /* exact for every widened 16-bit value */
                    memcpy(&got, &f, 4);
                }
                bool ok = f32_bits_nan(want) ? f32_bits_nan(got) : got == want;
                if (!ok) {
                    shown++;
                    conf_fail(&w, "pattern 0x%04x widened to float32 bits 0x%08" PRIx32
                              ", expected 0x%08" PRIx32, (unsigned)bits[k], got, want);
                }
            }
            if (cast_read(&w, mid, dt, back, n, &out)) {
                shown = 0;
                for (int64_t k = 0; k < n && shown < 4; k++) {
                    bool ok = is_nan(bits[k]) ? is_nan(back[k]) : back[k] == bits[k];
                    if (!ok) {
                        shown++;
                        conf_fail(&w, "pattern 0x%04x came back as 0x%04x", (unsigned)bits[k],
                                  (unsigned)back[k]);
                    }
                }
            }
        }
        ferry_tensor_release(out);
        ferry_tensor_release(mid);
        ferry_tensor_release(src);
    }
    free(back);
    free(wide64);
    free(wide32);
    free(bits);
}

static void test_casts_every_half_and_bfloat16_pattern_round_trips_exactly(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev)
    {
        check_patterns(dev, FERRY_FLOAT16);
        check_patterns(dev, FERRY_BFLOAT16);
    }
    conf_finish();
}

/* float32 values halfway between two neighbouring finite patterns of dt, and one float32
 * step either side: halfway rounds to the even pattern, the others to the nearer one;
 * halfway past the largest finite value overflows to infinity. */
static void check_halfway(const char *device, ferry_dtype dt)
{
    conf_where w = {"cast", dt == FERRY_FLOAT16 ? "float32->float16" : "float32->bfloat16",
                    "halfway cases", device};
    const int64_t cap = 3 * 65536;
    float *in = malloc((size_t)cap * 4);
    uint16_t *want = malloc((size_t)cap * 2), *got = malloc((size_t)cap * 2);
    assert_true(in && want && got);
    int64_t n = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        uint16_t lo = (uint16_t)h, hi = (uint16_t)(h + 1);
        /* Neighbours of one sign with a finite upper one (or the overflow step). */
        bool finite = dt == FERRY_FLOAT16 ? (lo & 0x7c00u) != 0x7c00u
                                          : (lo & 0x7f80u) != 0x7f80u;
        if (!finite || (lo & 0x7fffu) == 0x7fffu)
            continue;
        uint32_t a = dt == FERRY_FLOAT16 ? f16_to_f32_bits(lo) : (uint32_t)lo << 16;
        uint32_t b = dt == FERRY_FLOAT16 ? f16_to_f32_bits(hi) : (uint32_t)hi << 16;
        float fa, fb;
        memcpy(&fa, &a, 4);
        memcpy(&fb, &b, 4);
        /* Past the largest finite value the next step would be 2^16 (float16) or 2^128
         * (bfloat16, beyond float32 itself); the halfway point still is a float32. */
        double db = isinf(fb) ? copysign(dt == FERRY_FLOAT16 ? 65536.0 : ldexp(1.0, 128), fb)
                              : (double)fb;
        float mid = (float)(((double)fa + db) / 2); /* exact in float32 */
        uint16_t even = (lo & 1u) ? hi : lo;
        in[n] = mid;
        want[n++] = even;
        in[n] = nextafterf(mid, fb);
        want[n++] = hi;
        in[n] = nextafterf(mid, fa);
        want[n++] = lo;
    }
    ferry_tensor *src = from_bits(&w, in, FERRY_FLOAT32, n, device), *out = NULL;
    if (src && cast_read(&w, src, dt, got, n, &out)) {
        int shown = 0;
        for (int64_t k = 0; k < n && shown < 4; k++)
            if (got[k] != want[k]) {
                shown++;
                conf_fail(&w, "float32 %.9g gave 0x%04x, expected 0x%04x", (double)in[k],
                          (unsigned)got[k], (unsigned)want[k]);
            }
    }
    ferry_tensor_release(out);
    ferry_tensor_release(src);
    free(got);
    free(want);
    free(in);
}

static void test_casts_float32_halfway_cases_round_to_even(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev)
    {
        check_halfway(dev, FERRY_FLOAT16);
        check_halfway(dev, FERRY_BFLOAT16);
    }
    conf_finish();
}

int conf_group_casts(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_casts_every_dtype_pair_follows_the_contract_on_edge_values),
        cmocka_unit_test(test_casts_every_half_and_bfloat16_pattern_round_trips_exactly),
        cmocka_unit_test(test_casts_float32_halfway_cases_round_to_even),
    };
    return cmocka_run_group_tests_name("casts", tests, NULL, NULL);
}

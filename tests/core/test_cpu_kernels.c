/* The CPU backend's element kernels (cast, strided copy, fill) through the public API,
 * against expected values computed here from the documented conversion rules: every
 * dtype pair, contiguous and strided (negative and zero strides) sources, and fills. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <math.h>

#include <cmocka.h>

#include <ferry/ferry.h>

/* ---- the reference ---------------------------------------------------------------------
 * An element as a number: integers (bool included) exactly as int64, floating values
 * exactly as double. Conversions follow the cast contract of backend.h as the CPU
 * backend documents it: float -> integer truncates and saturates, NaN -> 0; -> bool is
 * != 0; integer -> integer wraps; integer -> float rounds as C does; float16 and bfloat16
 * are reached through float32. Encoding and decoding of the 16-bit formats are written
 * from the IEEE layouts, not taken from ferry/half.h. */

typedef struct ref_val {
    bool is_float;
    int64_t i;
    double f;
} ref_val;

typedef struct dtype_desc {
    ferry_dtype dtype;
    const char *name;
    size_t size;
    bool is_float;
    int bits;       /* integers: width; bool counts as 1 */
    bool is_signed; /* integers */
} dtype_desc;

static const dtype_desc dtypes[FERRY_NUM_DTYPES] = {
    {FERRY_BOOL, "bool", 1, false, 1, false},
    {FERRY_UINT8, "uint8", 1, false, 8, false},
    {FERRY_INT8, "int8", 1, false, 8, true},
    {FERRY_INT16, "int16", 2, false, 16, true},
    {FERRY_INT32, "int32", 4, false, 32, true},
    {FERRY_INT64, "int64", 8, false, 64, true},
    {FERRY_FLOAT16, "float16", 2, true, 0, false},
    {FERRY_BFLOAT16, "bfloat16", 2, true, 0, false},
    {FERRY_FLOAT32, "float32", 4, true, 0, false},
    {FERRY_FLOAT64, "float64", 8, true, 0, false},
};

/* Significand bits (with the implicit one), smallest normal exponent, exponent bits. */
typedef struct float_fmt {
    int p;
    int emin;
    int ebits;
} float_fmt;

static const float_fmt fmt_f16 = {11, -14, 5};
static const float_fmt fmt_bf16 = {8, -126, 8};
static const float_fmt fmt_f32 = {24, -126, 8};

static double fmt_max(float_fmt f)
{
    return ldexp(2.0 - ldexp(1.0, 1 - f.p), 1 - f.emin);
}

/* Rounds v to the format, to nearest with ties to even, overflowing to infinity. */
static double round_to(double v, float_fmt f)
{
    if (isnan(v) || isinf(v) || v == 0)
        return v;
    double a = fabs(v);
    int e;
    frexp(a, &e); /* a = m * 2^e, m in [0.5, 1): the leading bit is 2^(e-1) */
    int lead = e - 1 < f.emin ? f.emin : e - 1;
    double q = ldexp(1.0, lead - (f.p - 1)); /* spacing of the format around a */
    double r = a / q, fl = floor(r), frac = r - fl;
    if (frac > 0.5 || (frac == 0.5 && fmod(fl, 2.0) == 1.0))
        fl += 1;
    double res = fl * q;
    if (res > fmt_max(f))
        res = INFINITY;
    return copysign(res, v);
}

/* Bits of a value the format holds exactly (NaN becomes the quiet NaN). */
static uint16_t encode16(double v, float_fmt f)
{
    int bias = (1 << (f.ebits - 1)) - 1, mbits = f.p - 1;
    uint16_t sign = signbit(v) ? 0x8000u : 0;
    uint16_t inf = (uint16_t)(((1u << f.ebits) - 1u) << mbits);
    if (isnan(v))
        return (uint16_t)(inf | (1u << (mbits - 1)));
    if (isinf(v))
        return (uint16_t)(sign | inf);
    double a = fabs(v);
    if (a == 0)
        return sign;
    if (a < ldexp(1.0, f.emin))
        return (uint16_t)(sign | (uint16_t)(a / ldexp(1.0, f.emin - mbits)));
    int e;
    frexp(a, &e);
    int lead = e - 1;
    uint32_t mant = (uint32_t)(a / ldexp(1.0, lead - mbits)) - (1u << mbits);
    return (uint16_t)(sign | ((uint32_t)(lead + bias) << mbits) | mant);
}

static double decode16(uint16_t h, float_fmt f)
{
    int bias = (1 << (f.ebits - 1)) - 1, mbits = f.p - 1;
    uint32_t e = (h >> mbits) & ((1u << f.ebits) - 1u);
    uint32_t m = h & ((1u << mbits) - 1u);
    double sign = (h & 0x8000u) ? -1.0 : 1.0;
    if (e == (1u << f.ebits) - 1u)
        return m ? NAN : sign * INFINITY;
    if (e == 0)
        return sign * ldexp((double)m, 1 - bias - mbits);
    return sign * ldexp((double)((1u << mbits) + m), (int)e - bias - mbits);
}

/* An integer reduced modulo 2^bits into the target's range. */
static int64_t wrap(int64_t i, int bits, bool is_signed)
{
    if (bits == 64)
        return i;
    uint64_t u = (uint64_t)i & ((UINT64_C(1) << bits) - 1u);
    if (is_signed && u >= (UINT64_C(1) << (bits - 1)))
        return (int64_t)u - ((int64_t)1 << bits);
    return (int64_t)u;
}

static ref_val ref_int(int64_t i)
{
    return (ref_val){false, i, 0};
}

static ref_val ref_float(double f)
{
    return (ref_val){true, 0, f};
}

/* The value a floating dtype gives to v (v already a float32 for the 16-bit ones). */
static double round_to_dtype(double v, ferry_dtype dt)
{
    switch (dt) {
    case FERRY_FLOAT16: return round_to(round_to(v, fmt_f32), fmt_f16);
    case FERRY_BFLOAT16: return round_to(round_to(v, fmt_f32), fmt_bf16);
    case FERRY_FLOAT32: return round_to(v, fmt_f32);
    default: return v;
    }
}

static ref_val ref_cast(ref_val v, ferry_dtype to)
{
    const dtype_desc *d = &dtypes[to];
    if (to == FERRY_BOOL)
        return ref_int(v.is_float ? v.f != 0 : v.i != 0);
    if (d->is_float) {
        /* C's int64 -> float is one correct rounding; through double it could be two. */
        double x = v.is_float ? v.f : (to == FERRY_FLOAT64 ? (double)v.i : (double)(float)v.i);
        return ref_float(round_to_dtype(x, to));
    }
    if (!v.is_float)
        return ref_int(wrap(v.i, d->bits, d->is_signed));
    if (isnan(v.f))
        return ref_int(0);
    double t = trunc(v.f);
    double hi = ldexp(1.0, d->is_signed ? d->bits - 1 : d->bits); /* first value too big */
    double lo = d->is_signed ? -hi : 0;
    if (t >= hi)
        return ref_int(d->is_signed ? (d->bits == 64 ? INT64_MAX : (int64_t)hi - 1)
                                    : (int64_t)hi - 1);
    if (t < lo)
        return ref_int(d->is_signed ? (d->bits == 64 ? INT64_MIN : (int64_t)lo) : 0);
    return ref_int((int64_t)t);
}

static void encode(ferry_dtype dt, ref_val v, void *p)
{
    switch (dt) {
    case FERRY_BOOL: *(uint8_t *)p = v.i != 0; break;
    case FERRY_UINT8: *(uint8_t *)p = (uint8_t)v.i; break;
    case FERRY_INT8: *(int8_t *)p = (int8_t)v.i; break;
    case FERRY_INT16: *(int16_t *)p = (int16_t)v.i; break;
    case FERRY_INT32: *(int32_t *)p = (int32_t)v.i; break;
    case FERRY_INT64: *(int64_t *)p = v.i; break;
    case FERRY_FLOAT16: *(uint16_t *)p = encode16(v.f, fmt_f16); break;
    case FERRY_BFLOAT16: *(uint16_t *)p = encode16(v.f, fmt_bf16); break;
    case FERRY_FLOAT32: *(float *)p = (float)v.f; break;
    case FERRY_FLOAT64: *(double *)p = v.f; break;
    }
}

static ref_val decode(ferry_dtype dt, const void *p)
{
    switch (dt) {
    case FERRY_BOOL: return ref_int(*(const uint8_t *)p);
    case FERRY_UINT8: return ref_int(*(const uint8_t *)p);
    case FERRY_INT8: return ref_int(*(const int8_t *)p);
    case FERRY_INT16: return ref_int(*(const int16_t *)p);
    case FERRY_INT32: return ref_int(*(const int32_t *)p);
    case FERRY_INT64: return ref_int(*(const int64_t *)p);
    case FERRY_FLOAT16: return ref_float(decode16(*(const uint16_t *)p, fmt_f16));
    case FERRY_BFLOAT16: return ref_float(decode16(*(const uint16_t *)p, fmt_bf16));
    case FERRY_FLOAT32: return ref_float(*(const float *)p);
    case FERRY_FLOAT64: return ref_float(*(const double *)p);
    }
    return ref_int(0);
}

/* Equal values; for floats -0 is told from +0 and any NaN matches any NaN. */
static bool ref_equal(ref_val a, ref_val b)
{
    if (a.is_float != b.is_float)
        return false;
    if (!a.is_float)
        return a.i == b.i;
    if (isnan(a.f) || isnan(b.f))
        return isnan(a.f) && isnan(b.f);
    return a.f == b.f && signbit(a.f) == signbit(b.f);
}

static void ref_format(ref_val v, char *buf, size_t cap)
{
    if (v.is_float)
        snprintf(buf, cap, "%.17g", v.f);
    else
        snprintf(buf, cap, "%lld", (long long)v.i);
}

/* ---- inputs ----------------------------------------------------------------------------- */

static const double float_inputs[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.999, -0.999, 1.5, -2.75, 0.1, 100.9, -100.9,
    127.0, 127.5, 128.0, -128.0, -128.9, -129.0, 255.0, 255.9, 256.0, 300.0, -300.0,
    32767.0, 32767.9, 32768.0, -32768.0, -32769.0, 65504.0, 65519.0, 65520.0, 70000.0,
    -70000.0, 16777217.0, 2147483647.0, 2147483648.0, -2147483648.0, -2147483904.0,
    4294967296.0, 1e10, -1e10, 9.2e18, 9.3e18, -9.3e18, 1.8e19, 1e30, -1e30, 3e38, 1e300,
    -1e300, 1e-8, -1e-40, 1e-310, NAN, -NAN, INFINITY, -INFINITY,
};

static const int64_t int_inputs[] = {
    0, 1, -1, 2, -2, 7, 100, 127, 128, -128, -129, 200, 255, 256, -256, 1000, 32767,
    32768, -32768, -32769, 65504, 65519, 65520, 65535, 65536, 70000, 16777216, 16777217,
    -16777217, 2147483647, 2147483648LL, -2147483648LL, -2147483649LL, 4294967295LL,
    4294967296LL, 1099511627779LL, 9007199254740993LL,
    9007199791611905LL, /* 2^53 + 2^29 + 1: through double it would round to a float tie */
    INT64_MAX, INT64_MIN, INT64_MIN + 1, 0x123456789abcdef0LL,
};

#define NFLOAT (sizeof float_inputs / sizeof float_inputs[0])
#define NINT (sizeof int_inputs / sizeof int_inputs[0])
#define MAX_INPUTS (NFLOAT + NINT)

/* The elements of a source of dtype dt, as values of dt: every input that dt can hold
 * after its own rounding or wrapping. Floating dtypes also get the integer inputs. */
static size_t source_values(ferry_dtype dt, ref_val *out)
{
    const dtype_desc *d = &dtypes[dt];
    size_t n = 0;
    for (size_t i = 0; i < NINT; i++)
        out[n++] = d->is_float ? ref_float(round_to_dtype((double)int_inputs[i], dt))
                               : ref_cast(ref_int(int_inputs[i]), dt);
    if (d->is_float)
        for (size_t i = 0; i < NFLOAT; i++)
            out[n++] = ref_float(round_to_dtype(float_inputs[i], dt));
    return n;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void *read_all(const ferry_tensor *t)
{
    size_t nbytes = ferry_tensor_nbytes(t);
    void *buf = malloc(nbytes ? nbytes : 1);
    assert_non_null(buf);
    assert_int_equal(ferry_tensor_copy_to_host(t, buf, nbytes), FERRY_OK);
    return buf;
}

/* Casts src (any layout) to `to` and checks element k of the row-major result against
 * ref_cast(expect_src[k]). Returns the number of mismatches, reporting the first few. */
static int check_cast(ferry_tensor *src, ferry_dtype to, const ref_val *expect_src,
                      const char *what)
{
    ferry_dtype from = ferry_tensor_dtype(src);
    ferry_tensor *out = ferry_tensor_to_dtype(src, to);
    if (!out) {
        print_error("%s %s -> %s: %s\n", what, dtypes[from].name, dtypes[to].name,
                    ferry_last_error());
        return 1;
    }
    assert_int_equal(ferry_tensor_dtype(out), to);
    assert_int_equal(ferry_tensor_ndim(out), ferry_tensor_ndim(src));
    int64_t n = ferry_tensor_numel(out);
    assert_int_equal(n, ferry_tensor_numel(src));
    unsigned char *got = read_all(out);
    int bad = 0;
    for (int64_t k = 0; k < n; k++) {
        ref_val want = ref_cast(expect_src[k], to);
        ref_val have = decode(to, got + (size_t)k * dtypes[to].size);
        if (!ref_equal(want, have)) {
            if (bad++ < 5) {
                char s[64], w[64], h[64];
                ref_format(expect_src[k], s, sizeof s);
                ref_format(want, w, sizeof w);
                ref_format(have, h, sizeof h);
                print_error("%s %s -> %s, element %lld: %s gave %s, want %s\n", what,
                            dtypes[from].name, dtypes[to].name, (long long)k, s, h, w);
            }
        }
    }
    free(got);
    ferry_tensor_release(out);
    return bad;
}

/* ---- casts -------------------------------------------------------------------------------- */

static void test_cast_all_pairs_contiguous_match_reference(void **state)
{
    int bad = 0;
    ref_val vals[MAX_INPUTS];
    _Alignas(64) unsigned char data[MAX_INPUTS * 8];
    for (int s = 0; s < FERRY_NUM_DTYPES; s++) {
        int64_t n = (int64_t)source_values((ferry_dtype)s, vals);
        for (int64_t k = 0; k < n; k++)
            encode((ferry_dtype)s, vals[k], data + (size_t)k * dtypes[s].size);
        ferry_tensor *src = ferry_tensor_from_data(data, (ferry_dtype)s, 1, &n, "cpu");
        assert_non_null(src);
        for (int d = 0; d < FERRY_NUM_DTYPES; d++)
            bad += check_cast(src, (ferry_dtype)d, vals, "contiguous");
        ferry_tensor_release(src);
    }
    assert_int_equal(bad, 0);
}

static void test_cast_all_pairs_negative_stride_reverses_elements(void **state)
{
    int bad = 0;
    ref_val vals[MAX_INPUTS], expect[MAX_INPUTS];
    _Alignas(64) unsigned char data[MAX_INPUTS * 8];
    for (int s = 0; s < FERRY_NUM_DTYPES; s++) {
        int64_t n = (int64_t)source_values((ferry_dtype)s, vals);
        size_t size = dtypes[s].size;
        for (int64_t k = 0; k < n; k++) {
            encode((ferry_dtype)s, vals[k], data + (size_t)k * size);
            expect[k] = vals[n - 1 - k];
        }
        int64_t stride = -1;
        ferry_tensor *src = ferry_tensor_from_blob(data + (size_t)(n - 1) * size,
                                                   (ferry_dtype)s, 1, &n, &stride, NULL, NULL);
        assert_non_null(src);
        assert_false(ferry_tensor_is_contiguous(src));
        for (int d = 0; d < FERRY_NUM_DTYPES; d++)
            bad += check_cast(src, (ferry_dtype)d, expect, "reversed");
        ferry_tensor_release(src);
    }
    assert_int_equal(bad, 0);
}

/* Shape (3, n) over n elements: stride 0 repeats the row, stride -1 reverses it. */
static void test_cast_all_pairs_zero_and_negative_strides_broadcast_rows(void **state)
{
    int bad = 0;
    ref_val vals[MAX_INPUTS], expect[3 * MAX_INPUTS];
    _Alignas(64) unsigned char data[MAX_INPUTS * 8];
    for (int s = 0; s < FERRY_NUM_DTYPES; s++) {
        int64_t n = (int64_t)source_values((ferry_dtype)s, vals);
        size_t size = dtypes[s].size;
        for (int64_t k = 0; k < n; k++) {
            encode((ferry_dtype)s, vals[k], data + (size_t)k * size);
            for (int r = 0; r < 3; r++)
                expect[r * n + k] = vals[n - 1 - k];
        }
        int64_t shape[2] = {3, n}, strides[2] = {0, -1};
        ferry_tensor *src = ferry_tensor_from_blob(data + (size_t)(n - 1) * size,
                                                   (ferry_dtype)s, 2, shape, strides, NULL, NULL);
        assert_non_null(src);
        for (int d = 0; d < FERRY_NUM_DTYPES; d++)
            bad += check_cast(src, (ferry_dtype)d, expect, "broadcast");
        ferry_tensor_release(src);
    }
    assert_int_equal(bad, 0);
}

/* A column-major (transposed) 3-D view: no two dimensions can be merged, so every
 * level of the index walk is used. */
static void test_cast_all_pairs_column_major_source_matches_reference(void **state)
{
    enum { A = 3, B = 4, C = 5, N = A * B * C };
    int bad = 0;
    ref_val vals[MAX_INPUTS], stored[N], expect[N];
    _Alignas(64) unsigned char data[N * 8];
    for (int s = 0; s < FERRY_NUM_DTYPES; s++) {
        size_t nv = source_values((ferry_dtype)s, vals);
        size_t size = dtypes[s].size;
        for (int k = 0; k < N; k++) {
            stored[k] = vals[(size_t)k * 7 % nv];
            encode((ferry_dtype)s, stored[k], data + (size_t)k * size);
        }
        int64_t shape[3] = {A, B, C}, strides[3] = {1, A, A * B};
        for (int a = 0; a < A; a++)
            for (int b = 0; b < B; b++)
                for (int c = 0; c < C; c++)
                    expect[(a * B + b) * C + c] = stored[a + b * A + c * A * B];
        ferry_tensor *src = ferry_tensor_from_blob(data, (ferry_dtype)s, 3, shape, strides,
                                                   NULL, NULL);
        assert_non_null(src);
        for (int d = 0; d < FERRY_NUM_DTYPES; d++)
            bad += check_cast(src, (ferry_dtype)d, expect, "column-major");
        ferry_tensor_release(src);
    }
    assert_int_equal(bad, 0);
}

static void test_cast_scalar_converts_one_element(void **state)
{
    double v = -7.9;
    ferry_tensor *src = ferry_tensor_from_data(&v, FERRY_FLOAT64, 0, NULL, "cpu");
    assert_non_null(src);
    ferry_tensor *out = ferry_tensor_to_dtype(src, FERRY_INT16);
    assert_non_null(out);
    assert_int_equal(ferry_tensor_ndim(out), 0);
    int16_t got = 0;
    assert_int_equal(ferry_tensor_copy_to_host(out, &got, sizeof got), FERRY_OK);
    assert_int_equal(got, -7);
    ferry_tensor_release(out);
    ferry_tensor_release(src);
}

static void test_cast_float_to_int_saturates_and_nan_is_zero(void **state)
{
    float in[] = {1e10f, -1e10f, NAN, -NAN, INFINITY, -INFINITY, 2.9f, -2.9f, 300.0f, -300.0f};
    int64_t n = sizeof in / sizeof in[0];
    ferry_tensor *src = ferry_tensor_from_data(in, FERRY_FLOAT32, 1, &n, "cpu");
    assert_non_null(src);

    ferry_tensor *i32 = ferry_tensor_to_dtype(src, FERRY_INT32);
    assert_non_null(i32);
    int32_t got32[10];
    assert_int_equal(ferry_tensor_copy_to_host(i32, got32, sizeof got32), FERRY_OK);
    int32_t want32[10] = {INT32_MAX, INT32_MIN, 0, 0, INT32_MAX, INT32_MIN, 2, -2, 300, -300};
    assert_memory_equal(got32, want32, sizeof want32);

    ferry_tensor *u8 = ferry_tensor_to_dtype(src, FERRY_UINT8);
    assert_non_null(u8);
    uint8_t got8[10];
    assert_int_equal(ferry_tensor_copy_to_host(u8, got8, sizeof got8), FERRY_OK);
    uint8_t want8[10] = {255, 0, 0, 0, 255, 0, 2, 0, 255, 0};
    assert_memory_equal(got8, want8, sizeof want8);

    ferry_tensor *i64 = ferry_tensor_to_dtype(src, FERRY_INT64);
    assert_non_null(i64);
    int64_t got64[10];
    assert_int_equal(ferry_tensor_copy_to_host(i64, got64, sizeof got64), FERRY_OK);
    int64_t want64[10] = {10000000000LL, -10000000000LL, 0, 0, INT64_MAX, INT64_MIN, 2, -2,
                          300, -300};
    assert_memory_equal(got64, want64, sizeof want64);

    ferry_tensor_release(i64);
    ferry_tensor_release(u8);
    ferry_tensor_release(i32);
    ferry_tensor_release(src);
}

static void test_cast_to_bool_is_nonzero_and_nan_is_true(void **state)
{
    double in[] = {0.0, -0.0, 1e-300, -2.0, NAN, INFINITY, 0.5};
    int64_t n = sizeof in / sizeof in[0];
    ferry_tensor *src = ferry_tensor_from_data(in, FERRY_FLOAT64, 1, &n, "cpu");
    assert_non_null(src);
    ferry_tensor *b = ferry_tensor_to_dtype(src, FERRY_BOOL);
    assert_non_null(b);
    uint8_t got[7];
    assert_int_equal(ferry_tensor_copy_to_host(b, got, sizeof got), FERRY_OK);
    uint8_t want[7] = {0, 0, 1, 1, 1, 1, 1};
    assert_memory_equal(got, want, sizeof want);
    ferry_tensor_release(b);
    ferry_tensor_release(src);
}

static void test_cast_int_to_narrower_int_wraps(void **state)
{
    int64_t in[] = {300, -1, 65536 + 5, 2147483648LL, -129, INT64_MIN};
    int64_t n = sizeof in / sizeof in[0];
    ferry_tensor *src = ferry_tensor_from_data(in, FERRY_INT64, 1, &n, "cpu");
    assert_non_null(src);
    ferry_tensor *i8 = ferry_tensor_to_dtype(src, FERRY_INT8);
    ferry_tensor *u8 = ferry_tensor_to_dtype(src, FERRY_UINT8);
    ferry_tensor *i32 = ferry_tensor_to_dtype(src, FERRY_INT32);
    assert_non_null(i8);
    assert_non_null(u8);
    assert_non_null(i32);
    int8_t g8[6];
    uint8_t gu8[6];
    int32_t g32[6];
    assert_int_equal(ferry_tensor_copy_to_host(i8, g8, sizeof g8), FERRY_OK);
    assert_int_equal(ferry_tensor_copy_to_host(u8, gu8, sizeof gu8), FERRY_OK);
    assert_int_equal(ferry_tensor_copy_to_host(i32, g32, sizeof g32), FERRY_OK);
    int8_t w8[6] = {44, -1, 5, 0, 127, 0};
    uint8_t wu8[6] = {44, 255, 5, 0, 127, 0};
    int32_t w32[6] = {300, -1, 65541, INT32_MIN, -129, 0};
    assert_memory_equal(g8, w8, sizeof w8);
    assert_memory_equal(gu8, wu8, sizeof wu8);
    assert_memory_equal(g32, w32, sizeof w32);
    ferry_tensor_release(i32);
    ferry_tensor_release(u8);
    ferry_tensor_release(i8);
    ferry_tensor_release(src);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint32_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* Long enough for the vectorized loop and its remainder; random bit patterns reach
 * NaNs, infinities, subnormals and overflow. */
static void test_cast_large_f32_to_f16_and_bf16_match_reference(void **state)
{
    int64_t n = 100003;
    float *in = malloc((size_t)n * sizeof *in);
    uint16_t *got = malloc((size_t)n * sizeof *got);
    assert_non_null(in);
    assert_non_null(got);
    for (int64_t k = 0; k < n; k++) {
        uint32_t b = rng_next();
        if (k % 3 == 0) /* keep a third inside float16's range, where rounding is exercised */
            b = (b & 0x80000000u) | (0x33000000u + b % 0x14800000u);
        memcpy(&in[k], &b, sizeof b);
    }
    ferry_tensor *src = ferry_tensor_from_data(in, FERRY_FLOAT32, 1, &n, "cpu");
    assert_non_null(src);
    const ferry_dtype targets[2] = {FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int t = 0; t < 2; t++) {
        ferry_tensor *out = ferry_tensor_to_dtype(src, targets[t]);
        assert_non_null(out);
        assert_int_equal(ferry_tensor_copy_to_host(out, got, (size_t)n * 2), FERRY_OK);
        long bad = 0;
        for (int64_t k = 0; k < n; k++) {
            ref_val want = ref_cast(ref_float(in[k]), targets[t]);
            ref_val have = decode(targets[t], &got[k]);
            if (!ref_equal(want, have) && bad++ < 5)
                print_error("float32 %a -> %s gave %a, want %a\n", (double)in[k],
                            dtypes[targets[t]].name, have.f, want.f);
        }
        assert_int_equal(bad, 0);
        ferry_tensor_release(out);
    }
    ferry_tensor_release(src);
    free(got);
    free(in);
}

static void test_cast_every_f16_and_bf16_pattern_to_f32_is_exact(void **state)
{
    int64_t n = 65536;
    uint16_t *in = malloc((size_t)n * sizeof *in);
    float *got = malloc((size_t)n * sizeof *got);
    assert_non_null(in);
    assert_non_null(got);
    for (int64_t k = 0; k < n; k++)
        in[k] = (uint16_t)k;
    const ferry_dtype sources[2] = {FERRY_FLOAT16, FERRY_BFLOAT16};
    for (int s = 0; s < 2; s++) {
        ferry_tensor *src = ferry_tensor_from_data(in, sources[s], 1, &n, "cpu");
        assert_non_null(src);
        ferry_tensor *out = ferry_tensor_to_dtype(src, FERRY_FLOAT32);
        assert_non_null(out);
        assert_int_equal(ferry_tensor_copy_to_host(out, got, (size_t)n * 4), FERRY_OK);
        long bad = 0;
        for (int64_t k = 0; k < n; k++) {
            ref_val want = decode(sources[s], &in[k]);
            if (!ref_equal(want, ref_float(got[k])) && bad++ < 5)
                print_error("%s 0x%04x -> float32 gave %a, want %a\n", dtypes[sources[s]].name,
                            (unsigned)k, (double)got[k], want.f);
        }
        assert_int_equal(bad, 0);
        ferry_tensor_release(out);
        ferry_tensor_release(src);
    }
    free(got);
    free(in);
}

/* 20 dimensions of extent 2 in column-major order: nothing merges, so the index walk
 * carries through every one of them. */
static void test_cast_twenty_dim_column_major_source_matches_reference(void **state)
{
    enum { NDIM = 20 };
    int64_t n = (int64_t)1 << NDIM, shape[NDIM], strides[NDIM];
    for (int i = 0; i < NDIM; i++) {
        shape[i] = 2;
        strides[i] = (int64_t)1 << i;
    }
    int32_t *in = malloc((size_t)n * sizeof *in);
    double *got = malloc((size_t)n * sizeof *got);
    assert_non_null(in);
    assert_non_null(got);
    for (int64_t k = 0; k < n; k++)
        in[k] = (int32_t)((k * 2654435761u) % 2000000001u) - 1000000000;
    ferry_tensor *src = ferry_tensor_from_blob(in, FERRY_INT32, NDIM, shape, strides, NULL, NULL);
    assert_non_null(src);
    ferry_tensor *out = ferry_tensor_to_dtype(src, FERRY_FLOAT64);
    assert_non_null(out);
    assert_int_equal(ferry_tensor_copy_to_host(out, got, (size_t)n * sizeof *got), FERRY_OK);
    long bad = 0;
    for (int64_t k = 0; k < n; k++) {
        /* Row-major index k has its bits reversed in the column-major buffer. */
        int64_t src_index = 0;
        for (int i = 0; i < NDIM; i++)
            if (k & ((int64_t)1 << (NDIM - 1 - i)))
                src_index |= (int64_t)1 << i;
        if (got[k] != (double)in[src_index])
            bad++;
    }
    assert_int_equal(bad, 0);
    ferry_tensor_release(out);
    ferry_tensor_release(src);
    free(got);
    free(in);
}

static void test_to_dtype_same_dtype_returns_same_tensor(void **state)
{
    int64_t n = 4;
    float in[4] = {1, 2, 3, 4};
    ferry_tensor *src = ferry_tensor_from_data(in, FERRY_FLOAT32, 1, &n, "cpu");
    assert_non_null(src);
    ferry_tensor *same = ferry_tensor_to_dtype(src, FERRY_FLOAT32);
    assert_ptr_equal(same, src);
    ferry_tensor_release(same);
    ferry_tensor_release(src);
}

/* ---- fill ------------------------------------------------------------------------------ */

static void test_full_every_dtype_fills_converted_value(void **state)
{
    const double values[] = {0.0, 1.0, -2.5, 300.7, 0.1, NAN, INFINITY, -1e10, 65520.0};
    int64_t shape[3] = {3, 1, 7};
    int bad = 0;
    for (int d = 0; d < FERRY_NUM_DTYPES; d++) {
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            ferry_tensor *t = ferry_full((ferry_dtype)d, 3, shape, values[v], "cpu");
            assert_non_null(t);
            assert_int_equal(ferry_tensor_numel(t), 21);
            unsigned char *got = read_all(t);
            ref_val want = ref_cast(ref_float(values[v]), (ferry_dtype)d);
            for (int k = 0; k < 21; k++) {
                ref_val have = decode((ferry_dtype)d, got + (size_t)k * dtypes[d].size);
                if (!ref_equal(want, have) && bad++ < 5) {
                    char w[64], h[64];
                    ref_format(want, w, sizeof w);
                    ref_format(have, h, sizeof h);
                    print_error("full(%s, %g)[%d] = %s, want %s\n", dtypes[d].name, values[v],
                                k, h, w);
                }
            }
            free(got);
            ferry_tensor_release(t);
        }
    }
    assert_int_equal(bad, 0);
}

static void test_full_empty_shape_gives_empty_tensor(void **state)
{
    int64_t shape[2] = {4, 0};
    ferry_tensor *t = ferry_full(FERRY_FLOAT32, 2, shape, 3.0, "cpu");
    assert_non_null(t);
    assert_int_equal(ferry_tensor_numel(t), 0);
    ferry_tensor_release(t);
}

static void test_full_scalar_fills_one_element(void **state)
{
    ferry_tensor *t = ferry_full(FERRY_INT64, 0, NULL, -42.0, "cpu");
    assert_non_null(t);
    int64_t got = 0;
    assert_int_equal(ferry_tensor_copy_to_host(t, &got, sizeof got), FERRY_OK);
    assert_int_equal(got, -42);
    ferry_tensor_release(t);
}

/* ---- contiguous (strided copy) ------------------------------------------------------- */

typedef struct layout {
    const char *what;
    int ndim;
    int64_t shape[3];
    int64_t strides[3];
    int64_t first; /* element index of [0, 0, 0] in the buffer */
} layout;

static const layout layouts[] = {
    {"transposed", 2, {4, 5}, {1, 4}, 0},
    {"reversed", 2, {4, 5}, {-5, -1}, 19},
    {"row broadcast", 2, {4, 5}, {0, 1}, 0},
    {"permuted", 3, {2, 3, 4}, {12, 1, 3}, 0},
    {"every other, backwards", 2, {3, 4}, {-8, 2}, 16},
    {"column broadcast reversed", 3, {2, 5, 3}, {-1, 0, 2}, 1},
};

static void test_contiguous_strided_blob_gathers_elements_in_order(void **state)
{
    _Alignas(64) unsigned char buf[64 * 8];
    unsigned char want[64 * 8];
    for (int d = 0; d < FERRY_NUM_DTYPES; d++) {
        size_t size = dtypes[d].size;
        /* Any bytes, NaN patterns included: a copy must not interpret them. A bool
         * element must still hold 0 or 1. */
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)((i * 37 + 11) & (d == FERRY_BOOL ? 1 : 0xff));
        for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++) {
            const layout *L = &layouts[l];
            ferry_tensor *t = ferry_tensor_from_blob(buf + (size_t)L->first * size,
                                                     (ferry_dtype)d, L->ndim, L->shape,
                                                     L->strides, NULL, NULL);
            assert_non_null(t);
            assert_false(ferry_tensor_is_contiguous(t));
            ferry_tensor *c = ferry_tensor_contiguous(t);
            assert_non_null(c);
            assert_true(ferry_tensor_is_contiguous(c));
            assert_int_equal(ferry_tensor_dtype(c), d);
            int64_t n = ferry_tensor_numel(c), idx[3] = {0, 0, 0};
            for (int64_t k = 0; k < n; k++) {
                int64_t e = L->first;
                for (int i = 0; i < L->ndim; i++)
                    e += idx[i] * L->strides[i];
                memcpy(want + (size_t)k * size, buf + (size_t)e * size, size);
                for (int i = L->ndim - 1; i >= 0 && ++idx[i] == L->shape[i]; i--)
                    idx[i] = 0;
            }
            unsigned char *got = read_all(c);
            if (memcmp(got, want, (size_t)n * size) != 0)
                fail_msg("contiguous() of a %s %s view differs from the gathered elements",
                         L->what, dtypes[d].name);
            free(got);
            ferry_tensor_release(c);
            ferry_tensor_release(t);
        }
    }
}

static void test_contiguous_of_contiguous_returns_same_tensor(void **state)
{
    int64_t shape[2] = {2, 3};
    ferry_tensor *t = ferry_zeros(FERRY_INT16, 2, shape, "cpu");
    assert_non_null(t);
    ferry_tensor *c = ferry_tensor_contiguous(t);
    assert_ptr_equal(c, t);
    ferry_tensor_release(c);
    ferry_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cast_all_pairs_contiguous_match_reference),
        cmocka_unit_test(test_cast_all_pairs_negative_stride_reverses_elements),
        cmocka_unit_test(test_cast_all_pairs_zero_and_negative_strides_broadcast_rows),
        cmocka_unit_test(test_cast_all_pairs_column_major_source_matches_reference),
        cmocka_unit_test(test_cast_scalar_converts_one_element),
        cmocka_unit_test(test_cast_float_to_int_saturates_and_nan_is_zero),
        cmocka_unit_test(test_cast_to_bool_is_nonzero_and_nan_is_true),
        cmocka_unit_test(test_cast_int_to_narrower_int_wraps),
        cmocka_unit_test(test_cast_large_f32_to_f16_and_bf16_match_reference),
        cmocka_unit_test(test_cast_every_f16_and_bf16_pattern_to_f32_is_exact),
        cmocka_unit_test(test_cast_twenty_dim_column_major_source_matches_reference),
        cmocka_unit_test(test_to_dtype_same_dtype_returns_same_tensor),
        cmocka_unit_test(test_full_every_dtype_fills_converted_value),
        cmocka_unit_test(test_full_empty_shape_gives_empty_tensor),
        cmocka_unit_test(test_full_scalar_fills_one_element),
        cmocka_unit_test(test_contiguous_strided_blob_gathers_elements_in_order),
        cmocka_unit_test(test_contiguous_of_contiguous_returns_same_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

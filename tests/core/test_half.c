/* Checks ferry/half.h against a reference written here from the IEEE 754 formats alone:
 * every float16 and bfloat16 bit pattern in both directions, every rounding midpoint and
 * its neighbours, the overflow and subnormal edges, and millions of random floats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include <ferry/half.h>

/* Exact helpers instead of ldexp, fabs and nextafterf: the test links without libm. */
static double pow2(int e) /* -1022 <= e <= 1023 */
{
    uint64_t b = (uint64_t)(e + 1023) << 52;
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static double abs_d(double x)
{
    return x < 0 ? -x : x;
}

static uint32_t bits_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static float float_of(uint32_t b)
{
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* The neighbour of a finite, positive float in the direction of `toward`. */
static float next_toward(float x, float toward)
{
    return x == toward ? x : float_of(bits_of(x) + (toward > x ? 1u : (uint32_t)-1));
}

/* A 16-bit binary format: float16 is (5 exponent bits, 10 mantissa bits), bfloat16 is
 * (8, 7). The reference only ever uses these two numbers. */
typedef struct fmt16 {
    const char *name;
    int exp_bits;
    int mant_bits;
    uint16_t (*from_f32)(float);
    float (*to_f32)(uint16_t);
    /* Value of every non-negative pattern from +0 up to +inf, where +inf stands for the
     * next step of the grid above the largest finite value: IEEE overflow is then
     * ordinary round-to-nearest-even between the last two entries. */
    double *grid;
} fmt16;

static uint32_t fmt_inf_bits(const fmt16 *f)
{
    return ((1u << f->exp_bits) - 1u) << f->mant_bits;
}

static uint32_t fmt_quiet_bit(const fmt16 *f)
{
    return 1u << (f->mant_bits - 1);
}

static bool fmt_is_nan(const fmt16 *f, uint16_t h)
{
    return (h & 0x7fffu) > fmt_inf_bits(f);
}

/* The value of a finite or infinite pattern, from sign, exponent and mantissa. */
static double ref_decode(const fmt16 *f, uint16_t h)
{
    int bias = (1 << (f->exp_bits - 1)) - 1;
    uint32_t e = (h >> f->mant_bits) & ((1u << f->exp_bits) - 1u);
    uint32_t m = h & ((1u << f->mant_bits) - 1u);
    double sign = (h & 0x8000u) ? -1.0 : 1.0;
    if (e == (1u << f->exp_bits) - 1u)
        return m ? NAN : sign * INFINITY;
    if (e == 0)
        return sign * (double)m * pow2(1 - bias - f->mant_bits);
    return sign * (double)((1u << f->mant_bits) + m) * pow2((int)e - bias - f->mant_bits);
}

static void fmt_build_grid(fmt16 *f)
{
    uint32_t inf = fmt_inf_bits(f);
    f->grid = malloc((inf + 1) * sizeof *f->grid);
    assert_non_null(f->grid);
    for (uint32_t h = 0; h < inf; h++)
        f->grid[h] = ref_decode(f, (uint16_t)h);
    f->grid[inf] = 2 * f->grid[inf - 1] - f->grid[inf - 2];
}

/* Round to nearest, ties to the even pattern (the even mantissa), by exact comparison
 * in double: every float and every midpoint between two 16-bit values is a double. */
static uint16_t ref_round(const fmt16 *f, float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    double a = abs_d((double)x);
    uint32_t inf = fmt_inf_bits(f);
    if (a >= f->grid[inf])
        return (uint16_t)(sign | inf);
    /* Largest pattern lo with grid[lo] <= a; the grid is increasing. */
    uint32_t lo = 0, hi = inf;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (f->grid[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    double below = a - f->grid[lo], above = f->grid[lo + 1] - a;
    uint32_t r = below < above ? lo : above < below ? lo + 1 : (lo & 1u) ? lo + 1 : lo;
    return (uint16_t)(sign | r);
}

static fmt16 f16 = {"float16", 5, 10, ferry_f32_to_f16, ferry_f16_to_f32, NULL};
static fmt16 bf16 = {"bfloat16", 8, 7, ferry_f32_to_bf16, ferry_bf16_to_f32, NULL};

static int setup_grids(void **state)
{
    fmt_build_grid(&f16);
    fmt_build_grid(&bf16);
    return 0;
}

static int teardown_grids(void **state)
{
    free(f16.grid);
    free(bf16.grid);
    return 0;
}

/* Fails with the input and both results spelled out, since a bare bit mismatch in a loop
 * of millions says nothing. Counts instead of stopping so one run shows the extent. */
static void check_round(const fmt16 *f, float x, long *failures)
{
    uint16_t got = f->from_f32(x);
    uint32_t xb = bits_of(x);
    if (isnan(x)) {
        /* NaN: stays NaN, quiet, same sign, top payload bits kept. */
        uint16_t want = (uint16_t)(((xb >> 16) & 0x8000u) | fmt_inf_bits(f) |
                                   fmt_quiet_bit(f) |
                                   ((xb & 0x7fffffu) >> (23 - f->mant_bits)));
        if (got != want && (*failures)++ < 10)
            print_error("%s(NaN 0x%08x) = 0x%04x, want 0x%04x\n", f->name, xb, got, want);
        return;
    }
    uint16_t want = ref_round(f, x);
    if (got != want && (*failures)++ < 10)
        print_error("%s(%a = 0x%08x) = 0x%04x, want 0x%04x\n", f->name, (double)x, xb, got,
                    want);
}

static void check_every_pattern_to_f32(const fmt16 *f)
{
    long failures = 0;
    for (uint32_t h = 0; h <= 0xffffu; h++) {
        float got = f->to_f32((uint16_t)h);
        uint32_t gb = bits_of(got);
        bool ok;
        if (fmt_is_nan(f, (uint16_t)h)) {
            /* The payload moves up to the top of the float mantissa; the quiet bit may be
             * added. */
            uint32_t payload = (uint32_t)(h & ((1u << f->mant_bits) - 1u))
                               << (23 - f->mant_bits);
            ok = isnan(got) && (gb >> 31) == (h >> 15) &&
                 ((gb & 0x7fffffu) == payload || (gb & 0x7fffffu) == (payload | 0x400000u));
            if (!ok && failures < 10)
                print_error("%s NaN 0x%04x -> 0x%08x\n", f->name, h, gb);
        } else {
            float want = (float)ref_decode(f, (uint16_t)h);
            ok = gb == bits_of(want); /* bits, so that -0 is told from +0 */
            if (!ok && failures < 10)
                print_error("%s 0x%04x -> %a, want %a\n", f->name, h, (double)got,
                            (double)want);
        }
        if (!ok)
            failures++;
    }
    assert_int_equal(failures, 0);
}

static void check_every_pattern_round_trips(const fmt16 *f)
{
    long failures = 0;
    for (uint32_t h = 0; h <= 0xffffu; h++) {
        uint16_t back = f->from_f32(f->to_f32((uint16_t)h));
        uint16_t want = fmt_is_nan(f, (uint16_t)h) ? (uint16_t)(h | fmt_quiet_bit(f))
                                                   : (uint16_t)h;
        if (back != want && failures++ < 10)
            print_error("%s 0x%04x -> f32 -> 0x%04x, want 0x%04x\n", f->name, h, back, want);
    }
    assert_int_equal(failures, 0);
}

/* Every midpoint between neighbours (including the largest finite value and the
 * overflow threshold) and the floats just below and above it, for both signs. */
static void check_every_midpoint(const fmt16 *f)
{
    long failures = 0;
    uint32_t inf = fmt_inf_bits(f);
    for (uint32_t h = 0; h < inf; h++) {
        double mid = (f->grid[h] + f->grid[h + 1]) / 2;
        float m = (float)mid;
        assert_true((double)m == mid); /* midpoints need one bit more than 16-bit values */
        float xs[] = {m, next_toward(m, 0.0f), next_toward(m, INFINITY), (float)f->grid[h]};
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
            check_round(f, xs[i], &failures);
            check_round(f, -xs[i], &failures);
        }
    }
    assert_int_equal(failures, 0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng_next(void)
{
    /* xorshift64*: plenty for spreading test inputs over all bit patterns. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void check_random_floats(const fmt16 *f, long count)
{
    long failures = 0;
    for (long i = 0; i < count; i++)
        check_round(f, float_of(rng_next()), &failures);
    assert_int_equal(failures, 0);
}

/* Floats below the smallest normal 16-bit value, sampled with an odd step so that
 * every low-bit pattern of the mantissa comes up. */
static void check_subnormal_range(const fmt16 *f)
{
    long failures = 0;
    uint32_t smallest_normal = bits_of((float)f->grid[1u << f->mant_bits]);
    for (uint32_t b = 0; b <= smallest_normal; b += 997) {
        check_round(f, float_of(b), &failures);
        check_round(f, float_of(b | 0x80000000u), &failures);
    }
    assert_int_equal(failures, 0);
}

/* ---- float16 ---- */

static void test_f16_to_f32_every_pattern_is_exact(void **state)
{
    check_every_pattern_to_f32(&f16);
}

static void test_f16_round_trip_every_pattern_is_identity(void **state)
{
    check_every_pattern_round_trips(&f16);
}

static void test_f32_to_f16_midpoints_round_to_nearest_even(void **state)
{
    check_every_midpoint(&f16);
}

static void test_f32_to_f16_overflow_edge_rounds_to_max_or_inf(void **state)
{
    long failures = 0;
    assert_int_equal(ferry_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(ferry_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(ferry_f32_to_f16(next_toward(65520.0f, 0.0f)), 0x7bff);
    assert_int_equal(ferry_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(ferry_f32_to_f16(-65520.0f), 0xfc00);
    assert_int_equal(ferry_f32_to_f16(1e30f), 0x7c00);
    assert_int_equal(ferry_f32_to_f16(3.4028235e38f), 0x7c00);
    assert_int_equal(ferry_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(ferry_f32_to_f16(-INFINITY), 0xfc00);
    for (float x = 60000.0f; x < 70000.0f; x = next_toward(x, INFINITY))
        check_round(&f16, x, &failures);
    assert_int_equal(failures, 0);
}

static void test_f32_to_f16_subnormals_round_to_nearest_even(void **state)
{
    assert_int_equal(ferry_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(ferry_f32_to_f16(0x1p-25f), 0x0000);                  /* tie to 0 */
    assert_int_equal(ferry_f32_to_f16(next_toward(0x1p-25f, 1.0f)), 0x0001);
    assert_int_equal(ferry_f32_to_f16(0x1.8p-24f), 0x0002);                /* tie to 2 */
    assert_int_equal(ferry_f32_to_f16(0x1p-14f), 0x0400);
    assert_int_equal(ferry_f32_to_f16(next_toward(0x1p-14f, 0.0f)), 0x0400);
    assert_int_equal(ferry_f32_to_f16(0x1.ff8p-15f), 0x03ff);              /* largest */
    assert_int_equal(ferry_f32_to_f16(0x1.ffcp-15f), 0x0400);              /* tie up */
    assert_int_equal(ferry_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(ferry_f32_to_f16(-0x1p-30f), 0x8000);
    assert_int_equal(ferry_f32_to_f16(1.401298e-45f), 0x0000);
    check_subnormal_range(&f16);
}

static void test_f32_to_f16_nan_stays_quiet_nan_with_sign(void **state)
{
    long failures = 0;
    uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu,
                       0x7fffffffu, 0xffffffffu, 0x7f802000u, 0x7fa00000u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = ferry_f32_to_f16(float_of(nans[i]));
        assert_true(fmt_is_nan(&f16, h));
        assert_true(h & 0x0200u);
        assert_int_equal(h >> 15, nans[i] >> 31);
        check_round(&f16, float_of(nans[i]), &failures);
    }
    assert_int_equal(failures, 0);
}

static void test_f32_to_f16_random_floats_match_reference(void **state)
{
    check_random_floats(&f16, 4000000);
}

/* ---- bfloat16 ---- */

static void test_bf16_to_f32_every_pattern_is_exact(void **state)
{
    check_every_pattern_to_f32(&bf16);
}

static void test_bf16_round_trip_every_pattern_is_identity(void **state)
{
    check_every_pattern_round_trips(&bf16);
}

static void test_f32_to_bf16_midpoints_round_to_nearest_even(void **state)
{
    check_every_midpoint(&bf16);
}

static void test_f32_to_bf16_overflow_edge_rounds_to_max_or_inf(void **state)
{
    /* Largest finite bfloat16 is 0x7f7f = (2 - 2^-7) * 2^127; halfway to 2^128 is
     * (2 - 2^-8) * 2^127, which ties to the even pattern 0x7f80 = inf. */
    assert_int_equal(ferry_f32_to_bf16(0x1.fep127f), 0x7f7f);
    assert_int_equal(ferry_f32_to_bf16(next_toward(0x1.ffp127f, 0.0f)), 0x7f7f);
    assert_int_equal(ferry_f32_to_bf16(0x1.ffp127f), 0x7f80);
    assert_int_equal(ferry_f32_to_bf16(3.4028235e38f), 0x7f80);
    assert_int_equal(ferry_f32_to_bf16(-3.4028235e38f), 0xff80);
    assert_int_equal(ferry_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(ferry_f32_to_bf16(-INFINITY), 0xff80);
    long failures = 0;
    for (uint32_t b = 0x7f7f0000u; b < 0x7f800000u; b += 7) {
        check_round(&bf16, float_of(b), &failures);
        check_round(&bf16, float_of(b | 0x80000000u), &failures);
    }
    assert_int_equal(failures, 0);
}

static void test_f32_to_bf16_subnormals_round_to_nearest_even(void **state)
{
    assert_int_equal(ferry_f32_to_bf16(0x1p-133f), 0x0001);
    assert_int_equal(ferry_f32_to_bf16(0x1p-134f), 0x0000);                /* tie to 0 */
    assert_int_equal(ferry_f32_to_bf16(0x1.8p-133f), 0x0002);              /* tie to 2 */
    assert_int_equal(ferry_f32_to_bf16(1.401298e-45f), 0x0000);
    assert_int_equal(ferry_f32_to_bf16(-0.0f), 0x8000);
    check_subnormal_range(&bf16);
}

static void test_f32_to_bf16_nan_stays_quiet_nan_with_sign(void **state)
{
    long failures = 0;
    uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu,
                       0x7fffffffu, 0xffffffffu, 0x7f810000u, 0x7fff0000u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = ferry_f32_to_bf16(float_of(nans[i]));
        assert_true(fmt_is_nan(&bf16, h));
        assert_true(h & 0x0040u);
        assert_int_equal(h >> 15, nans[i] >> 31);
        check_round(&bf16, float_of(nans[i]), &failures);
    }
    assert_int_equal(failures, 0);
}

static void test_f32_to_bf16_random_floats_match_reference(void **state)
{
    check_random_floats(&bf16, 4000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_to_f32_every_pattern_is_exact),
        cmocka_unit_test(test_f16_round_trip_every_pattern_is_identity),
        cmocka_unit_test(test_f32_to_f16_midpoints_round_to_nearest_even),
        cmocka_unit_test(test_f32_to_f16_overflow_edge_rounds_to_max_or_inf),
        cmocka_unit_test(test_f32_to_f16_subnormals_round_to_nearest_even),
        cmocka_unit_test(test_f32_to_f16_nan_stays_quiet_nan_with_sign),
        cmocka_unit_test(test_f32_to_f16_random_floats_match_reference),
        cmocka_unit_test(test_bf16_to_f32_every_pattern_is_exact),
        cmocka_unit_test(test_bf16_round_trip_every_pattern_is_identity),
        cmocka_unit_test(test_f32_to_bf16_midpoints_round_to_nearest_even),
        cmocka_unit_test(test_f32_to_bf16_overflow_edge_rounds_to_max_or_inf),
        cmocka_unit_test(test_f32_to_bf16_subnormals_round_to_nearest_even),
        cmocka_unit_test(test_f32_to_bf16_nan_stays_quiet_nan_with_sign),
        cmocka_unit_test(test_f32_to_bf16_random_floats_match_reference),
    };
    return cmocka_run_group_tests(tests, setup_grids, teardown_grids);
}

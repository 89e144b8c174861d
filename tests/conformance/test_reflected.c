/* The reflected scalar forms (ferry_rsub_scalar_ex .. ferry_rbitwise_right_shift_scalar_ex,
 * `s op t`) on every device and dtype against references computed here in double
 * precision, with the promotion of a Python scalar restated from PyTorch (category,
 * never width; integers divide in float32) and PyTorch's refusals; on devices with their
 * own kernels nothing may fall back to the cpu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

typedef enum { R_SUB, R_DIV, R_POW, R_FLOORDIV, R_REM, R_LSHIFT, R_RSHIFT } rop;

static const struct {
    const char *name;
    ferry_tensor *(*fn)(ferry_tensor *, ferry_scalar);
    rop op;
} rops[] = {
    {"rsub", ferry_rsub_scalar_ex, R_SUB},
    {"rdiv", ferry_rdiv_scalar_ex, R_DIV},
    {"rpow", ferry_rpow_scalar_ex, R_POW},
    {"rfloor_divide", ferry_rfloor_divide_scalar_ex, R_FLOORDIV},
    {"rremainder", ferry_rremainder_scalar_ex, R_REM},
    {"rbitwise_left_shift", ferry_rbitwise_left_shift_scalar_ex, R_LSHIFT},
    {"rbitwise_right_shift", ferry_rbitwise_right_shift_scalar_ex, R_RSHIFT},
};
#define NROPS (sizeof rops / sizeof rops[0])

/* 300 wraps in the 8-bit dtypes, -7 in uint8; 2.5 turns integer tensors into float32. */
static const double scalars[] = {3, -7, 2.5, 300};

/* Positive operands, so that integer division and shifts have their ordinary meaning
 * (zero divisors come from bool tensors, below). */
static const conf_domain domain = {0.5, 3.0, 1, 6, false};

static double py_floordiv_int(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return (double)q;
}

static double py_mod_int(int64_t a, int64_t b)
{
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return (double)r;
}

static int64_t ipow_wrap(int64_t base, int64_t e)
{
    uint64_t r = 1, b = (uint64_t)base;
    for (int64_t i = 0; i < e; i++)
        r *= b;
    return (int64_t)r;
}

/* What `s op x` must give: the result dtype, or an expected refusal (status and a
 * piece of its message) when *refusal is set. */
static ferry_dtype expect(rop op, ferry_dtype dt, double s, const char **refusal, ferry_status *st)
{
    *refusal = NULL;
    ferry_dtype ct = conf_promote_scalar(dt, s);
    bool fl = conf_is_float(ct);
    switch (op) {
    case R_SUB:
        if (dt == FERRY_BOOL) {
            *refusal = "Subtraction, the `-` operator, with a bool tensor is not supported";
            *st = FERRY_ERR_INVALID_ARGUMENT;
        }
        return ct;
    case R_DIV: return fl ? ct : FERRY_FLOAT32;
    case R_POW: return ct;
    case R_FLOORDIV:
    case R_REM: return ct;
    case R_LSHIFT:
    case R_RSHIFT:
        if (fl) {
            *refusal = "not implemented for";
            *st = FERRY_ERR_UNSUPPORTED;
        }
        return ct;
    }
    return ct;
}

static double reference(rop op, ferry_dtype ct, double s, double x)
{
    if (conf_is_float(ct)) {
        double v = 0;
        switch (op) {
        case R_SUB: v = s - x; break;
        case R_DIV: v = s / x; break;
        case R_POW: v = pow(s, x); break;
        case R_FLOORDIV: v = floor(s / x); break;
        case R_REM: v = s - floor(s / x) * x; break;
        default: break;
        }
        return conf_round(ct, v);
    }
    int64_t a = conf_wrap(ct, (int64_t)s), b = (int64_t)x;
    int bits = (int)conf_dtype_size(ct) * 8;
    switch (op) {
    case R_SUB: return (double)conf_wrap(ct, (int64_t)((uint64_t)a - (uint64_t)b));
    case R_POW: return (double)conf_wrap(ct, ipow_wrap(a, b));
    case R_FLOORDIV: return (double)conf_wrap(ct, (int64_t)py_floordiv_int(a, b));
    case R_REM: return py_mod_int(a, b);
    case R_LSHIFT: return b >= bits ? 0 : (double)conf_wrap(ct, (int64_t)((uint64_t)a << b));
    case R_RSHIFT: return (double)(a >> (b >= bits ? bits - 1 : b));
    default: return 0;
    }
}

static ferry_scalar scalar_of(double s)
{
    ferry_scalar v;
    if (conf_scalar_is_int(s)) {
        v.kind = FERRY_SCALAR_INT;
        v.value.i = (int64_t)s;
    } else {
        v.kind = FERRY_SCALAR_FLOAT;
        v.value.f = s;
    }
    return v;
}

static void check_one(const char *dev, size_t oi, ferry_dtype dt, const conf_operand *spec,
                      const char *kase, double s)
{
    char k[64];
    snprintf(k, sizeof k, "%s, scalar %g", kase, s);
    conf_where w = {rops[oi].name, conf_dtype_name(dt), k, dev};
    conf_rng r = conf_rng_seed(w.op, w.dtype, kase, 0);
    conf_array av;
    ferry_tensor *a = conf_make(&w, spec, dt, dev, &r, &domain, &av);
    if (!a)
        return;
    const char *refusal;
    ferry_status want_st = FERRY_OK;
    rop op = rops[oi].op;
    ferry_dtype rt = expect(op, dt, s, &refusal, &want_st);
    /* An integer divisor of 0 (a bool tensor's False) is PyTorch's ZeroDivisionError. */
    if (!refusal && (op == R_FLOORDIV || op == R_REM) && !conf_is_float(rt))
        for (int64_t i = 0; i < av.numel; i++)
            if (av.v[i] == 0) {
                refusal = "ZeroDivisionError";
                want_st = FERRY_ERR_INVALID_ARGUMENT;
            }
    ferry_tensor *res = rops[oi].fn(a, scalar_of(s));
    char call[64];
    snprintf(call, sizeof call, "ferry_%s_scalar_ex", rops[oi].name);
    if (refusal) {
        conf_expect_error(&w, call, res == NULL, want_st, want_st, refusal);
    } else if (!res) {
        conf_fail_call(&w, call);
    } else {
        double *ref = malloc((size_t)(av.numel ? av.numel : 1) * sizeof *ref);
        double *tol = malloc((size_t)(av.numel ? av.numel : 1) * sizeof *tol);
        for (int64_t i = 0; i < av.numel; i++) {
            ref[i] = reference(op, rt, s, av.v[i]);
            tol[i] = conf_is_float(rt) ? 8 * conf_rtol(rt) * fabs(ref[i]) + 8 * conf_atol(rt) : 0;
        }
        conf_array got;
        if (conf_read(&w, res, rt, av.ndim, av.shape, dev, &got)) {
            conf_compare(&w, &got, ref, tol);
            conf_array_free(&got);
        }
        free(ref);
        free(tol);
    }
    ferry_tensor_release(res);
    ferry_tensor_release(a);
    conf_array_free(&av);
}

static void test_reflected_on_every_dtype_and_device(void **state)
{
    (void)state;
    static const conf_operand specs[] = {
        {2, {3, 4}, CONF_CONTIGUOUS, 0, {0}},
        {2, {3, 5}, CONF_TRANSPOSED, 0, {0}},
        {0, {0}, CONF_CONTIGUOUS, 0, {0}},
    };
    static const char *const kases[] = {"contiguous", "transposed", "0-d"};
    CONF_FOR_EACH_DEVICE(dev) {
        uint64_t before = conf_fallbacks(dev);
        for (size_t oi = 0; oi < NROPS; oi++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t si = 0; si < sizeof scalars / sizeof scalars[0]; si++)
                    for (size_t c = 0; c < sizeof specs / sizeof specs[0]; c++)
                        check_one(dev, oi, conf_all_dtypes[d], &specs[c], kases[c], scalars[si]);
        conf_where w = {"reflected", "all", "no fallback", dev};
        conf_check_no_fallback(&w, before);
    }
    conf_finish();
}

/* A number on the left keeps the tensor's width as on the right, and big integers reach
 * a true division exactly (PyTorch: 2**62 / int32 tensor is float32 of 2**62). */
static void test_reflected_promotion_and_messages(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"reflected", "mixed", "promotion", dev};
        int64_t shape[1] = {2};
        int16_t iv[2] = {2, 4};
        ferry_tensor *i16 = ferry_tensor_from_data(iv, FERRY_INT16, 1, shape, dev);
        ferry_scalar big = {FERRY_SCALAR_INT, {.i = (int64_t)1 << 62}};
        ferry_tensor *q = ferry_rdiv_scalar_ex(i16, big);
        float qv[2] = {0};
        if (!q || ferry_tensor_dtype(q) != FERRY_FLOAT32 ||
            ferry_tensor_copy_to_host(q, qv, sizeof qv) != FERRY_OK)
            conf_fail_call(&w, "ferry_rdiv_scalar_ex(int16, 2**62)");
        else if (qv[0] != 0x1p61f || qv[1] != 0x1p60f)
            conf_fail(&w, "2**62 / [2, 4] = [%g, %g]", qv[0], qv[1]);
        ferry_tensor_release(q);
        ferry_tensor *p = ferry_rpow_scalar(i16, 2.0); /* int scalar: stays int16 */
        int16_t pv[2] = {0};
        if (!p || ferry_tensor_dtype(p) != FERRY_INT16 ||
            ferry_tensor_copy_to_host(p, pv, sizeof pv) != FERRY_OK || pv[0] != 4 || pv[1] != 16)
            conf_fail_call(&w, "ferry_rpow_scalar(int16, 2)");
        ferry_tensor_release(p);

        w.kase = "messages";
        ferry_scalar t = {FERRY_SCALAR_BOOL, {.b = true}};
        float fv[2] = {1, 2};
        ferry_tensor *f = ferry_tensor_from_data(fv, FERRY_FLOAT32, 1, shape, dev);
        ferry_tensor *e = ferry_rsub_scalar_ex(f, t);
        conf_expect_error(&w, "ferry_rsub_scalar_ex(float32, True)", e == NULL,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "Subtraction, the `-` operator, with a bool tensor is not supported. "
                          "If you are trying to invert a mask, use the `~` or `logical_not()` "
                          "operator instead.");
        ferry_tensor_release(e);
        ferry_scalar bad = {(ferry_scalar_kind)9, {.i = 1}};
        e = ferry_rdiv_scalar_ex(f, bad);
        conf_expect_error(&w, "ferry_rdiv_scalar_ex(bad kind)", e == NULL,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "rdiv: invalid scalar kind 9");
        ferry_tensor_release(e);
        e = ferry_rpow_scalar(NULL, 2.0);
        conf_expect_error(&w, "ferry_rpow_scalar(NULL)", e == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "rpow: tensor is NULL");
        ferry_tensor_release(e);
        e = ferry_rbitwise_left_shift_scalar(f, 1.0);
        conf_expect_error(&w, "ferry_rbitwise_left_shift_scalar(float32)", e == NULL,
                          FERRY_ERR_UNSUPPORTED, FERRY_ERR_UNSUPPORTED,
                          "\"lshift_cpu\" not implemented for 'Float'");
        ferry_tensor_release(e);
        int32_t zv[2] = {0, 1};
        ferry_tensor *z = ferry_tensor_from_data(zv, FERRY_INT32, 1, shape, dev);
        e = ferry_rremainder_scalar(z, 5.0);
        conf_expect_error(&w, "ferry_rremainder_scalar(5, [0, 1])", e == NULL,
                          FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                          "ZeroDivisionError");
        ferry_tensor_release(e);
        ferry_tensor_release(z);
        ferry_tensor_release(f);
        ferry_tensor_release(i16);
    }
    conf_finish();
}

int conf_group_reflected(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reflected_on_every_dtype_and_device),
        cmocka_unit_test(test_reflected_promotion_and_messages),
    };
    return cmocka_run_group_tests_name("reflected", tests, NULL, NULL);
}

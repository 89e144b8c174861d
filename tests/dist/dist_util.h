/* Helpers of the several-process tests: tensors of any dtype from doubles and back, and
 * the devices every collective is checked on. */
#ifndef FERRY_DIST_UTIL_H
#define FERRY_DIST_UTIL_H

#include <math.h>

#include <ferry/distributed.h>
#include <ferry/half.h>

#include "test_util.h"

static const ferry_dtype all_dtypes[] = {FERRY_BOOL,    FERRY_UINT8,    FERRY_INT8,
                                         FERRY_INT16,   FERRY_INT32,    FERRY_INT64,
                                         FERRY_FLOAT16, FERRY_BFLOAT16, FERRY_FLOAT32,
                                         FERRY_FLOAT64};
#define N_DTYPES (sizeof all_dtypes / sizeof all_dtypes[0])

static const char *const all_devices[] = {"cpu", "sim:0", "opencl:0"};
#define N_DEVICES (sizeof all_devices / sizeof all_devices[0])

static inline void encode(ferry_dtype dt, const double *v, void *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case FERRY_BOOL: ((uint8_t *)out)[i] = v[i] != 0; break;
        case FERRY_UINT8: ((uint8_t *)out)[i] = (uint8_t)v[i]; break;
        case FERRY_INT8: ((int8_t *)out)[i] = (int8_t)v[i]; break;
        case FERRY_INT16: ((int16_t *)out)[i] = (int16_t)v[i]; break;
        case FERRY_INT32: ((int32_t *)out)[i] = (int32_t)v[i]; break;
        case FERRY_INT64: ((int64_t *)out)[i] = (int64_t)v[i]; break;
        case FERRY_FLOAT16: ((uint16_t *)out)[i] = ferry_f32_to_f16((float)v[i]); break;
        case FERRY_BFLOAT16: ((uint16_t *)out)[i] = ferry_f32_to_bf16((float)v[i]); break;
        case FERRY_FLOAT32: ((float *)out)[i] = (float)v[i]; break;
        case FERRY_FLOAT64: ((double *)out)[i] = v[i]; break;
        }
    }
}

static inline void decode(ferry_dtype dt, const void *in, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case FERRY_BOOL: v[i] = ((const uint8_t *)in)[i]; break;
        case FERRY_UINT8: v[i] = ((const uint8_t *)in)[i]; break;
        case FERRY_INT8: v[i] = ((const int8_t *)in)[i]; break;
        case FERRY_INT16: v[i] = ((const int16_t *)in)[i]; break;
        case FERRY_INT32: v[i] = ((const int32_t *)in)[i]; break;
        case FERRY_INT64: v[i] = (double)((const int64_t *)in)[i]; break;
        case FERRY_FLOAT16: v[i] = ferry_f16_to_f32(((const uint16_t *)in)[i]); break;
        case FERRY_BFLOAT16: v[i] = ferry_bf16_to_f32(((const uint16_t *)in)[i]); break;
        case FERRY_FLOAT32: v[i] = ((const float *)in)[i]; break;
        case FERRY_FLOAT64: v[i] = ((const double *)in)[i]; break;
        }
    }
}

/* A 1-D tensor of n values on device. */
static inline ferry_tensor *make(ferry_dtype dt, const double *v, size_t n, const char *device)
{
    void *buf = malloc(n * 8 + 8);
    assert_non_null(buf);
    encode(dt, v, buf, n);
    int64_t shape[1] = {(int64_t)n};
    ferry_tensor *t = ferry_tensor_from_data(buf, dt, 1, shape, device);
    free(buf);
    assert_tensor(t);
    return t;
}

/* The values of t, whatever its device, as doubles (malloc'd). */
static inline double *values(const ferry_tensor *t)
{
    size_t n = (size_t)ferry_tensor_numel(t);
    size_t nb = n * ferry_dtype_size(ferry_tensor_dtype(t));
    void *buf = malloc(nb + 8);
    double *v = malloc(n * sizeof *v + 8);
    assert_non_null(buf);
    assert_non_null(v);
    assert_ok(ferry_tensor_copy_to_host(t, buf, nb));
    decode(ferry_tensor_dtype(t), buf, v, n);
    free(buf);
    return v;
}

/* A double rounded to what dtype holds. */
static inline double round_to(ferry_dtype dt, double x)
{
    unsigned char b[8];
    double r = 0;
    encode(dt, &x, b, 1);
    decode(dt, b, &r, 1);
    return r;
}

#define assert_values(t, expected, n, what)                                                 \
    do {                                                                                    \
        double *got_ = values(t);                                                           \
        for (size_t i_ = 0; i_ < (n); i_++)                                                 \
            if (got_[i_] != (expected)[i_]) {                                               \
                double g_ = got_[i_];                                                       \
                free(got_);                                                                 \
                fail_msg("rank %d: %s: element %zu is %.17g, expected %.17g",              \
                         ferry_dist_rank(), (what), i_, g_, (double)(expected)[i_]);       \
            }                                                                               \
        free(got_);                                                                         \
    } while (0)

#endif /* FERRY_DIST_UTIL_H */

/* dtype names, sizes, parsing, and scalar conversion with the cast kernels' rules. */
#include <math.h>
#include <string.h>

#include <ferry/dtype_info.h>
#include <ferry/half.h>

#include "internal.h"

/* PyTorch's aliases (torch.float, torch.half, ...) beside the canonical names. */
static const struct {
    const char *alias;
    ferry_dtype dtype;
} dtype_aliases[] = {
    {"float", FERRY_FLOAT32}, {"double", FERRY_FLOAT64}, {"half", FERRY_FLOAT16},
    {"int", FERRY_INT32},     {"long", FERRY_INT64},     {"short", FERRY_INT16},
    {"char", FERRY_INT8},     {"byte", FERRY_UINT8},     {"bf16", FERRY_BFLOAT16},
    {"f16", FERRY_FLOAT16},   {"f32", FERRY_FLOAT32},    {"f64", FERRY_FLOAT64},
};

bool ferry__dtype_valid(ferry_dtype dtype)
{
    return ferry_dtype_info_valid(dtype);
}

FERRY_API const char *ferry_dtype_name(ferry_dtype dtype)
{
    return ferry_dtype_info_name(dtype);
}

FERRY_API size_t ferry_dtype_size(ferry_dtype dtype)
{
    return ferry_dtype_info_size(dtype);
}

FERRY_API bool ferry_dtype_is_floating(ferry_dtype dtype)
{
    return ferry_dtype_info_is_floating(dtype);
}

FERRY_API ferry_status ferry_dtype_parse(const char *name, ferry_dtype *out)
{
    if (!out)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_dtype_parse: out is NULL");
    *out = FERRY_FLOAT32;
    if (!name)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_dtype_parse: name is NULL");
    /* "ferry.float32" and "torch.float32" read as "float32". */
    const char *dot = strrchr(name, '.');
    const char *n = dot ? dot + 1 : name;
    for (int i = 0; i < FERRY_NUM_DTYPES; i++) {
        if (strcmp(n, ferry_dtype_info_name((ferry_dtype)i)) == 0) {
            *out = (ferry_dtype)i;
            return FERRY_OK;
        }
    }
    for (size_t i = 0; i < sizeof dtype_aliases / sizeof dtype_aliases[0]; i++) {
        if (strcmp(n, dtype_aliases[i].alias) == 0) {
            *out = dtype_aliases[i].dtype;
            return FERRY_OK;
        }
    }
    return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                        "Unknown dtype '%s': expected one of bool, uint8, int8, int16, int32, "
                        "int64, float16, bfloat16, float32, float64 (or float, double, half, "
                        "int, long, short, char, byte)",
                        name);
}

/* Float to integer truncates toward zero and saturates; NaN gives 0. Doing the range
 * check in double avoids C's undefined behaviour for out-of-range conversions. */
static int64_t sat_i64(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    if (v <= lo)
        return (int64_t)lo;
    if (v >= hi)
        return (int64_t)hi;
    return (int64_t)v;
}

void ferry__scalar_from_double(ferry_dtype dtype, double v, void *out)
{
    switch (dtype) {
    case FERRY_BOOL: *(uint8_t *)out = v != 0; break;
    case FERRY_UINT8: *(uint8_t *)out = (uint8_t)sat_i64(v, 0, 255); break;
    case FERRY_INT8: *(int8_t *)out = (int8_t)sat_i64(v, -128, 127); break;
    case FERRY_INT16: *(int16_t *)out = (int16_t)sat_i64(v, -32768, 32767); break;
    case FERRY_INT32: *(int32_t *)out = (int32_t)sat_i64(v, -2147483648.0, 2147483647.0); break;
    case FERRY_INT64:
        /* 2^63 is not representable in int64: saturate at or above it. */
        if (isnan(v))
            *(int64_t *)out = 0;
        else if (v >= 9223372036854775808.0)
            *(int64_t *)out = INT64_MAX;
        else if (v <= -9223372036854775808.0)
            *(int64_t *)out = INT64_MIN;
        else
            *(int64_t *)out = (int64_t)v;
        break;
    case FERRY_FLOAT16: *(uint16_t *)out = ferry_f32_to_f16((float)v); break;
    case FERRY_BFLOAT16: *(uint16_t *)out = ferry_f32_to_bf16((float)v); break;
    case FERRY_FLOAT32: *(float *)out = (float)v; break;
    case FERRY_FLOAT64: *(double *)out = v; break;
    }
}

double ferry__scalar_to_double(ferry_dtype dtype, const void *p)
{
    switch (dtype) {
    case FERRY_BOOL: return *(const uint8_t *)p != 0;
    case FERRY_UINT8: return *(const uint8_t *)p;
    case FERRY_INT8: return *(const int8_t *)p;
    case FERRY_INT16: return *(const int16_t *)p;
    case FERRY_INT32: return *(const int32_t *)p;
    case FERRY_INT64: return (double)*(const int64_t *)p;
    case FERRY_FLOAT16: return ferry_f16_to_f32(*(const uint16_t *)p);
    case FERRY_BFLOAT16: return ferry_bf16_to_f32(*(const uint16_t *)p);
    case FERRY_FLOAT32: return *(const float *)p;
    case FERRY_FLOAT64: return *(const double *)p;
    }
    return 0;
}

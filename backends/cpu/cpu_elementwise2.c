/* The cpu kernels of the ELEM2 family (ferry/ops/elementwise2.h): the reference and the
 * fallback of every device, so any strides and every dtype each op accepts. Floats
 * compute in double (float16/bfloat16/float32 round once on store); integers in int64
 * with wrapping through uint64, truncated to the element type on store. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <ferry/half.h>
#include <ferry/ops/elementwise2.h>

#include "cpu_internal.h"

/* The op numbers the portable kernels use must be these (ferry_elementwise2.h). */
_Static_assert(FERRY_UNARY2_LOGICAL_NOT == 28 && FERRY_BINARY2_LOGICAL_XOR == 12,
               "ELEM2 op numbers");

static bool is_float(ferry_dtype d)
{
    return d == FERRY_FLOAT16 || d == FERRY_BFLOAT16 || d == FERRY_FLOAT32 || d == FERRY_FLOAT64;
}

static char *at(const ferry_kernel_tensor *t, int64_t off)
{
    return (char *)t->buffer + t->byte_offset + off * (int64_t)cpu_elem_size(t->dtype);
}

static double load_f(const ferry_kernel_tensor *t, int64_t off)
{
    const char *p = at(t, off);
    switch (t->dtype) {
    case FERRY_FLOAT16: { uint16_t h; memcpy(&h, p, 2); return ferry_f16_to_f32(h); }
    case FERRY_BFLOAT16: { uint16_t h; memcpy(&h, p, 2); return ferry_bf16_to_f32(h); }
    case FERRY_FLOAT32: { float f; memcpy(&f, p, 4); return f; }
    case FERRY_FLOAT64: { double f; memcpy(&f, p, 8); return f; }
    default: return 0;
    }
}

static void store_f(const ferry_kernel_tensor *t, int64_t off, double v)
{
    char *p = at(t, off);
    switch (t->dtype) {
    case FERRY_FLOAT16: { uint16_t h = ferry_f32_to_f16((float)v); memcpy(p, &h, 2); break; }
    case FERRY_BFLOAT16: { uint16_t h = ferry_f32_to_bf16((float)v); memcpy(p, &h, 2); break; }
    case FERRY_FLOAT32: { float f = (float)v; memcpy(p, &f, 4); break; }
    case FERRY_FLOAT64: memcpy(p, &v, 8); break;
    default: break;
    }
}

static int64_t load_i(const ferry_kernel_tensor *t, int64_t off)
{
    const char *p = at(t, off);
    switch (t->dtype) {
    case FERRY_BOOL: return *(const uint8_t *)p != 0;
    case FERRY_UINT8: return *(const uint8_t *)p;
    case FERRY_INT8: return *(const int8_t *)p;
    case FERRY_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case FERRY_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case FERRY_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    default: return 0;
    }
}

static void store_i(const ferry_kernel_tensor *t, int64_t off, int64_t v)
{
    char *p = at(t, off);
    switch (t->dtype) {
    case FERRY_BOOL: *(uint8_t *)p = v != 0; break;
    case FERRY_UINT8: *(uint8_t *)p = (uint8_t)v; break;
    case FERRY_INT8: *(int8_t *)p = (int8_t)(uint8_t)v; break;
    case FERRY_INT16: { int16_t x = (int16_t)(uint16_t)v; memcpy(p, &x, 2); break; }
    case FERRY_INT32: { int32_t x = (int32_t)(uint32_t)v; memcpy(p, &x, 4); break; }
    case FERRY_INT64: memcpy(p, &v, 8); break;
    default: break;
    }
}

/* Walks the n-d index of `shape` (row-major), keeping each operand's element offset. */
typedef struct walk {
    int ndim, nops;
    int64_t idx[FERRY_MAX_DIMS];
    int64_t off[4];
    const ferry_kernel_tensor *const *ops;
} walk;

static void walk_next(walk *w)
{
    const int64_t *shape = w->ops[0]->shape;
    for (int d = w->ndim - 1; d >= 0; d--) {
        for (int k = 0; k < w->nops; k++)
            w->off[k] += w->ops[k]->strides[d];
        if (++w->idx[d] < shape[d])
            return;
        for (int k = 0; k < w->nops; k++)
            w->off[k] -= w->ops[k]->strides[d] * shape[d];
        w->idx[d] = 0;
    }
}

static int64_t numel_of(const ferry_kernel_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

static bool args_ok(const ferry_op_args *args, int n, size_t params_size)
{
    if (args->ntensors != n || args->noutputs != 1 || (params_size && (!args->params ||
                                                                       args->params_size < params_size)))
        return false;
    for (int i = 1; i < n; i++)
        if (args->tensors[i].ndim != args->tensors[0].ndim)
            return false;
    return true;
}

static double gelu_tanh(double x)
{
    return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
}

static double unary_f(int op, double x, double p0, double p1)
{
    switch (op) {
    case FERRY_UNARY2_FLOOR: return floor(x);
    case FERRY_UNARY2_CEIL: return ceil(x);
    case FERRY_UNARY2_ROUND: return nearbyint(x);
    case FERRY_UNARY2_TRUNC: return trunc(x);
    case FERRY_UNARY2_SIGN: return (double)((x > 0) - (x < 0));
    case FERRY_UNARY2_RECIPROCAL: return 1.0 / x;
    case FERRY_UNARY2_RSQRT: return 1.0 / sqrt(x);
    case FERRY_UNARY2_LOG1P: return log1p(x);
    case FERRY_UNARY2_EXPM1: return expm1(x);
    case FERRY_UNARY2_LOG2: return log2(x);
    case FERRY_UNARY2_LOG10: return log10(x);
    case FERRY_UNARY2_EXP2: return exp2(x);
    case FERRY_UNARY2_ERF: return erf(x);
    case FERRY_UNARY2_TAN: return tan(x);
    case FERRY_UNARY2_ASIN: return asin(x);
    case FERRY_UNARY2_ACOS: return acos(x);
    case FERRY_UNARY2_ATAN: return atan(x);
    case FERRY_UNARY2_SINH: return sinh(x);
    case FERRY_UNARY2_COSH: return cosh(x);
    case FERRY_UNARY2_GELU: return 0.5 * x * (1.0 + erf(x * M_SQRT1_2));
    case FERRY_UNARY2_GELU_TANH: return gelu_tanh(x);
    case FERRY_UNARY2_SILU: return x / (1.0 + exp(-x));
    case FERRY_UNARY2_SOFTPLUS: return x * p0 > p1 ? x : log1p(exp(x * p0)) / p0;
    case FERRY_UNARY2_LEAKY_RELU: return x > 0 ? x : x * p0;
    default: return 0;
    }
}

static bool pred_f(int op, double x)
{
    switch (op) {
    case FERRY_UNARY2_ISNAN: return isnan(x);
    case FERRY_UNARY2_ISINF: return isinf(x);
    case FERRY_UNARY2_ISFINITE: return isfinite(x);
    default: return x == 0; /* LOGICAL_NOT */
    }
}

static ferry_status cpu_unary2(int32_t device, const ferry_op_args *args)
{
    (void)device;
    if (!args_ok(args, 2, sizeof(ferry_unary2_params)))
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT, "ferry.unary2: bad arguments");
    const ferry_unary2_params *p = args->params;
    const ferry_kernel_tensor *ops[2] = {&args->tensors[0], &args->tensors[1]};
    const ferry_kernel_tensor *out = ops[0], *in = ops[1];
    int op = p->op;
    bool pred = op >= FERRY_UNARY2_ISNAN && op <= FERRY_UNARY2_LOGICAL_NOT;
    bool fl = is_float(in->dtype);
    if (op < 0 || op >= FERRY_UNARY2_COUNT || !cpu_elem_size(in->dtype) ||
        (pred ? out->dtype != FERRY_BOOL : out->dtype != in->dtype) ||
        (!pred && !fl && op != FERRY_UNARY2_SIGN && op != FERRY_UNARY2_BITWISE_NOT) ||
        (fl && op == FERRY_UNARY2_BITWISE_NOT))
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "ferry.unary2: op %d on dtype %d", op,
                               (int)in->dtype);
    walk w = {out->ndim, 2, {0}, {0}, ops};
    int64_t n = numel_of(out);
    for (int64_t i = 0; i < n; i++, walk_next(&w)) {
        if (pred) {
            bool r = fl ? pred_f(op, load_f(in, w.off[1]))
                        : op == FERRY_UNARY2_ISFINITE ? true
                        : op == FERRY_UNARY2_LOGICAL_NOT ? load_i(in, w.off[1]) == 0 : false;
            *(uint8_t *)at(out, w.off[0]) = r;
        } else if (fl) {
            store_f(out, w.off[0], unary_f(op, load_f(in, w.off[1]), p->p0, p->p1));
        } else {
            int64_t x = load_i(in, w.off[1]);
            int64_t r = op == FERRY_UNARY2_SIGN ? (x > 0) - (x < 0)
                        : in->dtype == FERRY_BOOL ? !x : (int64_t)~(uint64_t)x;
            store_i(out, w.off[0], r);
        }
    }
    return FERRY_OK;
}

/* PyTorch's floating remainder and floor division (div_floor_floating). */
static double rem_f(double x, double y)
{
    double m = fmod(x, y);
    if (m != 0 && ((y < 0) != (m < 0)))
        m += y;
    return m;
}

static double floordiv_f(double x, double y)
{
    if (y == 0)
        return x / y;
    double m = fmod(x, y);
    double d = (x - m) / y;
    if (m != 0 && ((y < 0) != (m < 0)))
        d -= 1;
    if (d == 0)
        return copysign(0.0, x / y);
    double q = floor(d);
    if (d - q > 0.5)
        q += 1;
    return q;
}

/* Integer results before truncation to the element type; bits is the type's width. */
static int64_t binary_i(int op, int64_t x, int64_t y, int bits, bool is_signed)
{
    switch (op) {
    case FERRY_BINARY2_REMAINDER:
    case FERRY_BINARY2_FMOD: {
        if (y == 0 || y == -1)
            return 0;
        int64_t r = x % y;
        if (op == FERRY_BINARY2_REMAINDER && r != 0 && ((r < 0) != (y < 0)))
            r += y;
        return r;
    }
    case FERRY_BINARY2_FLOOR_DIVIDE: {
        if (y == 0)
            return 0;
        if (y == -1)
            return (int64_t)(0 - (uint64_t)x);
        int64_t q = x / y;
        if (x % y != 0 && ((x < 0) != (y < 0)))
            q -= 1;
        return q;
    }
    case FERRY_BINARY2_BITWISE_AND: return x & y;
    case FERRY_BINARY2_BITWISE_OR: return x | y;
    case FERRY_BINARY2_BITWISE_XOR: return x ^ y;
    case FERRY_BINARY2_BITWISE_LEFT_SHIFT:
        return y < 0 || y >= bits ? 0 : (int64_t)((uint64_t)x << y);
    case FERRY_BINARY2_BITWISE_RIGHT_SHIFT:
        /* x holds the element's value (sign-extended when signed), so shifting the
         * int64 is the element type's shift. */
        if (y < 0 || y >= bits)
            return is_signed && x < 0 ? -1 : 0;
        return x >> y;
    default: return 0;
    }
}

static ferry_status cpu_binary2(int32_t device, const ferry_op_args *args)
{
    (void)device;
    if (!args_ok(args, 3, sizeof(ferry_binary2_params)))
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT, "ferry.binary2: bad arguments");
    const ferry_binary2_params *p = args->params;
    const ferry_kernel_tensor *ops[3] = {&args->tensors[0], &args->tensors[1], &args->tensors[2]};
    const ferry_kernel_tensor *out = ops[0], *a = ops[1], *b = ops[2];
    int op = p->op;
    bool logical = op >= FERRY_BINARY2_LOGICAL_AND && op <= FERRY_BINARY2_LOGICAL_XOR;
    bool fl = is_float(a->dtype);
    bool float_only = op == FERRY_BINARY2_ATAN2 || op == FERRY_BINARY2_HYPOT;
    bool int_only = op >= FERRY_BINARY2_BITWISE_AND && op <= FERRY_BINARY2_BITWISE_RIGHT_SHIFT;
    if (op < 0 || op >= FERRY_BINARY2_COUNT || !cpu_elem_size(a->dtype) || a->dtype != b->dtype ||
        (logical ? out->dtype != FERRY_BOOL : out->dtype != a->dtype) ||
        (!logical && ((fl && int_only) || (!fl && float_only))))
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "ferry.binary2: op %d on dtype %d", op,
                               (int)a->dtype);
    int bits = (int)cpu_elem_size(a->dtype) * 8;
    bool is_signed = a->dtype != FERRY_BOOL && a->dtype != FERRY_UINT8;
    walk w = {out->ndim, 3, {0}, {0}, ops};
    int64_t n = numel_of(out);
    for (int64_t i = 0; i < n; i++, walk_next(&w)) {
        if (logical) {
            bool x = fl ? load_f(a, w.off[1]) != 0 : load_i(a, w.off[1]) != 0;
            bool y = fl ? load_f(b, w.off[2]) != 0 : load_i(b, w.off[2]) != 0;
            bool r = op == FERRY_BINARY2_LOGICAL_AND ? x && y
                     : op == FERRY_BINARY2_LOGICAL_OR ? x || y : x != y;
            *(uint8_t *)at(out, w.off[0]) = r;
        } else if (fl) {
            double x = load_f(a, w.off[1]), y = load_f(b, w.off[2]), r;
            switch (op) {
            case FERRY_BINARY2_ATAN2: r = atan2(x, y); break;
            case FERRY_BINARY2_HYPOT: r = hypot(x, y); break;
            case FERRY_BINARY2_REMAINDER: r = rem_f(x, y); break;
            case FERRY_BINARY2_FMOD: r = fmod(x, y); break;
            default: r = floordiv_f(x, y); break;
            }
            store_f(out, w.off[0], r);
        } else {
            store_i(out, w.off[0],
                    binary_i(op, load_i(a, w.off[1]), load_i(b, w.off[2]), bits, is_signed));
        }
    }
    return FERRY_OK;
}

static ferry_status cpu_where(int32_t device, const ferry_op_args *args)
{
    (void)device;
    if (!args_ok(args, 4, 0))
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT, "ferry.where: bad arguments");
    const ferry_kernel_tensor *ops[4] = {&args->tensors[0], &args->tensors[1], &args->tensors[2],
                                         &args->tensors[3]};
    size_t es = cpu_elem_size(ops[0]->dtype);
    if (!es || ops[1]->dtype != FERRY_BOOL || ops[2]->dtype != ops[0]->dtype ||
        ops[3]->dtype != ops[0]->dtype)
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "ferry.where: dtypes");
    walk w = {ops[0]->ndim, 4, {0}, {0}, ops};
    int64_t n = numel_of(ops[0]);
    for (int64_t i = 0; i < n; i++, walk_next(&w)) {
        bool c = *(const uint8_t *)at(ops[1], w.off[1]) != 0;
        memcpy(at(ops[0], w.off[0]), c ? at(ops[2], w.off[2]) : at(ops[3], w.off[3]), es);
    }
    return FERRY_OK;
}

const ferry_named_entry cpu_named_elementwise2[] = {
    {"ferry.unary2", cpu_unary2},
    {"ferry.binary2", cpu_binary2},
    {"ferry.where", cpu_where},
    {NULL, NULL},
};

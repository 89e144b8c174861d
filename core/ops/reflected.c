/* Reflected scalar forms (`2 - t`, `2 / t`, `2 ** t`, `2 // t` ...): the scalar becomes
 * the left operand, a 0-d tensor of a dtype chosen so that the tensor op's promotion of
 * 0-d operands gives what the forward `_scalar_ex` form gives for the same pair, and
 * that op (with its checks, kernels, fallback and gradient) runs on it. This is the one
 * home of that rule: the Python module calls these. */
#include "ops/ops_internal.h"

typedef ferry_tensor *(*tensor_op)(ferry_tensor *, ferry_tensor *);

/* The left operand's dtype:
 *   - a bool stays bool, so that `True - t` meets sub's refusal, and beside a tensor a
 *     bool 0-d operand never changes its dtype, as a bool scalar does not;
 *   - an int divided (true division) stays an exact int64: the result's float32 is then
 *     converted from the integer itself (2**62 / t), never from a wrapped value;
 *   - otherwise the dtype the forward form computes in: the tensor's when the scalar is
 *     of its category or a lower one, else the category's default (int64, float32),
 *     which a 0-d operand of a higher category passes on to the result. */
static ferry_dtype left_dtype(ferry_dtype compute, const ferry_scalar *s, bool true_division)
{
    if (s->kind == FERRY_SCALAR_BOOL)
        return FERRY_BOOL;
    if (true_division && s->kind == FERRY_SCALAR_INT && !ferry_dtype_is_floating(compute))
        return FERRY_INT64;
    return compute;
}

static ferry_tensor *reflected(const char *fn, tensor_op op, bool true_division, ferry_tensor *a,
                               ferry_scalar b)
{
    ferry_dtype ct;
    if (ferry__binary_operands(fn, a, NULL, &b, &ct) != FERRY_OK)
        return NULL;
    ferry_tensor *lhs = ferry__scalar_tensor(a, left_dtype(ct, &b, true_division), &b);
    if (!lhs)
        return NULL;
    ferry_tensor *r = op(lhs, a);
    ferry_tensor_release(lhs);
    return r;
}

#define FERRY_DEFINE_REFLECTED_(name, divides)                                              \
    FERRY_API ferry_tensor *ferry_r##name##_scalar_ex(ferry_tensor *a, ferry_scalar b)        \
    {                                                                                       \
        return reflected("r" #name, ferry_##name, divides, a, b);                           \
    }                                                                                       \
    FERRY_API ferry_tensor *ferry_r##name##_scalar(ferry_tensor *a, double b)                 \
    {                                                                                       \
        return ferry_r##name##_scalar_ex(a, ferry__scalar_of_double(b));                    \
    }

FERRY_DEFINE_REFLECTED_(sub, false)
FERRY_DEFINE_REFLECTED_(div, true)
FERRY_DEFINE_REFLECTED_(pow, false)
FERRY_DEFINE_REFLECTED_(floor_divide, false)
FERRY_DEFINE_REFLECTED_(remainder, false)
FERRY_DEFINE_REFLECTED_(bitwise_left_shift, false)
FERRY_DEFINE_REFLECTED_(bitwise_right_shift, false)

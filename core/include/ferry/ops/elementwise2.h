/* Named ops of the ELEM2 family (backend.h, ferry_op_args): the everyday elementwise ops
 * beyond the built-in unary and binary entries. Included by backends and the core.
 *
 * "ferry.unary2": tensors {out, in}, params ferry_unary2_params. in has the compute dtype
 *   (the core converts first); out has in's dtype, or FERRY_BOOL for ISNAN .. LOGICAL_NOT.
 *   Float-only ops (FLOOR .. LEAKY_RELU except SIGN) see floating inputs only; SIGN and
 *   the predicates any dtype; BITWISE_NOT bool and integers (bool as logical not is the
 *   core's business: it sends LOGICAL_NOT). p0/p1: SOFTPLUS beta/threshold, LEAKY_RELU
 *   negative_slope in p0.
 * "ferry.binary2": tensors {out, a, b}, params ferry_binary2_params; a and b have one
 *   dtype; out has it, or FERRY_BOOL for the LOGICAL ops. ATAN2 and HYPOT: floats only;
 *   AND .. RSHIFT: bool and integers (shifts integers only); REMAINDER, FMOD,
 *   FLOOR_DIVIDE: integers and floats, with Python's sign rules for REMAINDER and
 *   FLOOR_DIVIDE; an integer divisor of 0 never reaches a kernel.
 * "ferry.where": tensors {out, cond (FERRY_BOOL), a, b}, out/a/b one dtype; no params. */
#ifndef FERRY_OPS_ELEMENTWISE2_H
#define FERRY_OPS_ELEMENTWISE2_H

#include <stdint.h>

typedef enum ferry_unary2_op {
    FERRY_UNARY2_FLOOR = 0,
    FERRY_UNARY2_CEIL,
    FERRY_UNARY2_ROUND, /* half to even */
    FERRY_UNARY2_TRUNC,
    FERRY_UNARY2_SIGN,
    FERRY_UNARY2_RECIPROCAL,
    FERRY_UNARY2_RSQRT,
    FERRY_UNARY2_LOG1P,
    FERRY_UNARY2_EXPM1,
    FERRY_UNARY2_LOG2,
    FERRY_UNARY2_LOG10,
    FERRY_UNARY2_EXP2,
    FERRY_UNARY2_ERF,
    FERRY_UNARY2_TAN,
    FERRY_UNARY2_ASIN,
    FERRY_UNARY2_ACOS,
    FERRY_UNARY2_ATAN,
    FERRY_UNARY2_SINH,
    FERRY_UNARY2_COSH,
    FERRY_UNARY2_GELU,
    FERRY_UNARY2_GELU_TANH,
    FERRY_UNARY2_SILU,
    FERRY_UNARY2_SOFTPLUS,
    FERRY_UNARY2_LEAKY_RELU,
    FERRY_UNARY2_BITWISE_NOT,
    FERRY_UNARY2_ISNAN,
    FERRY_UNARY2_ISINF,
    FERRY_UNARY2_ISFINITE,
    FERRY_UNARY2_LOGICAL_NOT,
    FERRY_UNARY2_COUNT
} ferry_unary2_op;

typedef enum ferry_binary2_op {
    FERRY_BINARY2_ATAN2 = 0,
    FERRY_BINARY2_REMAINDER,
    FERRY_BINARY2_FMOD,
    FERRY_BINARY2_FLOOR_DIVIDE,
    FERRY_BINARY2_BITWISE_AND,
    FERRY_BINARY2_BITWISE_OR,
    FERRY_BINARY2_BITWISE_XOR,
    FERRY_BINARY2_BITWISE_LEFT_SHIFT,
    FERRY_BINARY2_BITWISE_RIGHT_SHIFT,
    FERRY_BINARY2_HYPOT,
    FERRY_BINARY2_LOGICAL_AND,
    FERRY_BINARY2_LOGICAL_OR,
    FERRY_BINARY2_LOGICAL_XOR,
    FERRY_BINARY2_COUNT
} ferry_binary2_op;

typedef struct ferry_unary2_params {
    int32_t op; /* ferry_unary2_op */
    int32_t reserved;
    double p0, p1;
} ferry_unary2_params;

typedef struct ferry_binary2_params {
    int32_t op; /* ferry_binary2_op */
    int32_t reserved;
} ferry_binary2_params;

#endif /* FERRY_OPS_ELEMENTWISE2_H */

/* The named op of the random family (DESIGN.md "Random numbers"; the stream and the
 * word-to-number maps are specified in backends/kernels/ferry_random.h).
 *
 * "ferry.random": tensors {out}; out is written, dense (the core makes it so), of any
 * dtype the kind takes: UNIFORM and NORMAL float16, bfloat16, float32, float64; INT every
 * dtype (the integer converted as a cast does); BITS int64. Params:
 * ferry_random_params. A backend may refuse a dtype (FERRY_ERR_UNSUPPORTED): the cpu
 * backend then runs the same function, so the numbers do not change. */
#ifndef FERRY_OPS_RANDOM_H
#define FERRY_OPS_RANDOM_H

#include <stdint.h>

#define FERRY_RANDOM_OP "ferry.random"

#define FERRY_RANDOM_UNIFORM 0 /* a + b u, u uniform in [0, 1) */
#define FERRY_RANDOM_NORMAL 1  /* a + b z, z standard normal */
#define FERRY_RANDOM_INT 2     /* low + uniform integer in [0, range) */
#define FERRY_RANDOM_BITS 3    /* 64 raw bits per element (randperm keys) */

typedef struct ferry_random_params {
    uint64_t seed;
    uint64_t offset; /* in 32-bit words of the stream, a multiple of 4 */
    int32_t kind;    /* FERRY_RANDOM_* */
    int32_t reserved;
    double a;        /* UNIFORM: low; NORMAL: mean */
    double b;        /* UNIFORM: high - low; NORMAL: std */
    int64_t low;     /* INT */
    uint64_t range;  /* INT: high - low as unsigned; 0 stands for 2^64 */
} ferry_random_params;

#endif /* FERRY_OPS_RANDOM_H */

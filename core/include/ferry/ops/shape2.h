/* Named ops of the shape2 family (backend.h, ferry_op_args): the triangle masks tril and
 * triu. Name, tensor order, dtypes and params, shared by the core and every backend.
 *
 * "ferry.tri"  tensors: 0 out (written), 1 in; both of ndim 3, [batch, rows, cols], one
 *   shape, one dtype (any of the ten), any strides (in elements). params: ferry_tri_params.
 *   out[b, i, j] = in[b, i, j] where the element is kept, else zero (false for bool):
 *   tril (upper 0) keeps j - i <= diagonal, triu (upper 1) keeps j - i >= diagonal. */
#ifndef FERRY_OPS_SHAPE2_H
#define FERRY_OPS_SHAPE2_H

#include <stdint.h>

#define FERRY_OP_TRI "ferry.tri"

typedef struct ferry_tri_params {
    int64_t diagonal;
    int32_t upper; /* 0: tril, 1: triu */
    int32_t reserved;
} ferry_tri_params;

#endif /* FERRY_OPS_SHAPE2_H */

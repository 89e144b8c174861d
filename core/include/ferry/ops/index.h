/* Named ops of the indexing family (backend.h, ferry_op_args): names, tensor order,
 * dtypes and parameter structs, shared by the core and every backend.
 *
 * "ferry.gather"  tensors: 0 out (written), 1 flag (written and read), 2 src, 3 index.
 *   Every tensor but flag has out's ndim. For each position p of out:
 *   out[p] = src[p with p[dim] = i], i = index[p] (+ size when negative).
 *   src's extent in `dim` is params.size; elsewhere it is at least out's (its strides
 *   are used with out's positions). index may have stride 0 (index_select broadcasts a
 *   vector that way). out and src: one dtype, any of the ten; index: int32 or int64.
 *
 * "ferry.scatter" tensors: 0 self (written and read), 1 flag (written and read), 2 index,
 *   3 src.
 *   index and src have index's extents (src's strides); self has the same ndim with
 *   params.size in `dim`. For each position p of index, in row-major order:
 *   self[p with p[dim] = i] = src[p] (reduce 0) or += src[p] (reduce 1; bool: or).
 *   Later positions win when reduce is 0 and two positions name one element.
 *
 * flag: int64, 2 elements, zero on entry (both ops list it among the outputs read, so
 * the fallback carries its zeros to the cpu and its value back). A kernel that meets an index outside
 * [-size, size) leaves the element alone and stores 1 in flag[0] and that index in
 * flag[1] (the first it met on the cpu; any one of them on a parallel device). The core
 * reads flag when the op completes and fails with FERRY_ERR_INDEX. */
#ifndef FERRY_OPS_INDEX_H
#define FERRY_OPS_INDEX_H

#include <stdint.h>

#define FERRY_OP_GATHER "ferry.gather"
#define FERRY_OP_SCATTER "ferry.scatter"

typedef struct ferry_gather_params {
    int32_t dim;
    int32_t reserved;
    int64_t size; /* src's extent in dim */
} ferry_gather_params;

typedef struct ferry_scatter_params {
    int32_t dim;
    int32_t reduce; /* 0: assign, 1: add */
    int64_t size;   /* self's extent in dim */
} ferry_scatter_params;

#endif /* FERRY_OPS_INDEX_H */

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
 * reads flag when the op completes and fails with FERRY_ERR_INDEX.
 *
 * "ferry.index"  tensors: 0 out (written), 1 flag (written and read), 2 src, 3 .. 3+k
 *   the k index tensors (int32 or int64). Every tensor but flag has out's ndim, and is
 *   walked over out's positions p with its own strides: src restrided to out's
 *   iteration space (stride 0 in the dims the indices fill), each index broadcast by
 *   strides (0 outside them). out[p] = src[src_off(p) + sum_j i_j * params.stride[j]],
 *   i_j = index_j[p] (+ params.size[j] when negative). out and src: one dtype, any of
 *   the ten. Offsets and strides in elements of each tensor's own dtype.
 *
 * "ferry.index_put" tensors: 0 self (written and read), 1 flag (written and read),
 *   2 values, 3 .. 3+k indices; all with the ndim of the iteration space (the result
 *   of indexing self: "ferry.index"'s out), self restrided like src above, values
 *   broadcast by strides, cast to self's dtype by the core. For each position p:
 *   self[off(p)] = values[p] (accumulate 0; when two positions name one element any
 *   one of them wins) or += values[p] (accumulate 1; bool: or; every one counts).
 *   Dims [bdim, bdim + nbdims) of the space are those of the broadcast indices; a
 *   device kernel may own one self element per thread and loop over them.
 *
 * For "ferry.index" and "ferry.index_put" the flag has 3 elements: a bad index also
 *   stores j, the index tensor it came from, in flag[2], so the message names its dim. */
#ifndef FERRY_OPS_INDEX_H
#define FERRY_OPS_INDEX_H

#include <stdint.h>

#define FERRY_OP_GATHER "ferry.gather"
#define FERRY_OP_SCATTER "ferry.scatter"
#define FERRY_OP_INDEX "ferry.index"
#define FERRY_OP_INDEX_PUT "ferry.index_put"

/* Most index tensors one "ferry.index" / "ferry.index_put" takes (FERRY_MAX_DIMS). */
#define FERRY_INDEX_MAX_INDICES 64

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

/* "ferry.index" and "ferry.index_put". */
typedef struct ferry_index_params {
    int32_t k;          /* index tensors */
    int32_t accumulate; /* index_put: 0 assign, 1 add */
    int32_t bdim;       /* first dim of the iteration space the indices span */
    int32_t nbdims;     /* how many dims they span */
    int64_t stride[FERRY_INDEX_MAX_INDICES]; /* src/self stride of the dim index j names */
    int64_t size[FERRY_INDEX_MAX_INDICES];   /* that dim's extent */
} ferry_index_params;

#endif /* FERRY_OPS_INDEX_H */

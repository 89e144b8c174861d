/* Named ops of the selection family (backend.h, ferry_op_args): nonzero, masked_select
 * and masked_scatter, the ops whose output size depends on the data. The core counts
 * first: `pos` is the inclusive running count of the selected elements in row-major
 * order (int64, one dense dim of the walked shape's element count, computed on the device
 * by cumsum), so element e is selected when pos[e] differs from pos[e - 1] (0 before the
 * first), and it goes to (or comes from) row pos[e] - 1. The core reads the last count,
 * the op's one synchronisation, before it allocates the output.
 *
 * "ferry.nonzero"        tensors: 0 out (written), 1 pos.
 *   out: int64 [count, ndim], dense; params.shape the walked shape (params.ndim >= 1).
 *   Row pos[e] - 1 of out is the position of element e, one coordinate per dim.
 *
 * "ferry.masked_select"  tensors: 0 out (written), 1 src, 2 pos.
 *   src has the walked shape (broadcast strides of 0 allowed); out: 1-D, src's dtype,
 *   count elements. out[pos[e] - 1] = src[e] for each selected e.
 *
 * "ferry.masked_scatter" tensors: 0 self (written and read), 1 source, 2 pos.
 *   self has the walked shape (no stride 0: every element is its own); source: 1-D,
 *   self's dtype, at least count elements. self[e] = source[pos[e] - 1] for each selected
 *   e; the others keep their values.
 *
 * Every dtype; the kernels copy element bits, so only the element size matters. */
#ifndef FERRY_OPS_SELECT_H
#define FERRY_OPS_SELECT_H

#include <stdint.h>

#define FERRY_OP_NONZERO "ferry.nonzero"
#define FERRY_OP_MASKED_SELECT "ferry.masked_select"
#define FERRY_OP_MASKED_SCATTER "ferry.masked_scatter"

/* Most dims ferry.nonzero's params describe (FERRY_MAX_DIMS). */
#define FERRY_NONZERO_MAX_DIMS 64

typedef struct ferry_nonzero_params {
    int32_t ndim;
    int32_t reserved;
    int64_t shape[FERRY_NONZERO_MAX_DIMS];
} ferry_nonzero_params;

#endif /* FERRY_OPS_SELECT_H */

/* Sorting family: the named ops behind ferry_sort, ferry_argsort and ferry_topk.
 *
 * The core hands every kernel rows: each tensor is 2-D (rows, length) with any strides
 * (the core usually passes contiguous rows, but the cpu kernel is everyone's fallback).
 *
 * "ferry.sort"    tensors: 0 values (rows, k) of the input dtype   (written)
 *                          1 indices (rows, k) int64                (written)
 *                          2 input (rows, n), any dtype
 *                 params: ferry_sort_params. Row r of the input ordered ascending (or
 *                 descending), NaN the largest (last ascending, first descending), -0.0
 *                 equal to +0.0; the first k of that order are written (k == n for sort,
 *                 k <= n for topk). `stable` keeps equal keys in input order; kernels may
 *                 always be stable. When ntensors == 2 the indices are absent (tensors:
 *                 0 values, 1 input).
 *
 * "ferry.sort_scatter"  tensors: 0 out (rows, n) float dtype         (written)
 *                                1 grad (rows, k) same dtype
 *                                2 indices (rows, k) int64, each in [0, n), distinct per row
 *                       out[r, :] = 0; out[r, indices[r, j]] = grad[r, j]. The backward of
 *                       sort and topk; params: ferry_sort_params (only rows, n, k read).
 */
#ifndef FERRY_OPS_SORT_H
#define FERRY_OPS_SORT_H

#include <stdint.h>

#define FERRY_OP_SORT "ferry.sort"
#define FERRY_OP_SORT_SCATTER "ferry.sort_scatter"

typedef struct ferry_sort_params {
    int64_t rows;
    int64_t n; /* row length of the input */
    int64_t k; /* how many of each row's order are written */
    int32_t descending;
    int32_t stable;
} ferry_sort_params;

#endif /* FERRY_OPS_SORT_H */

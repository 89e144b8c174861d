/* Named ops of the reduce2 family (ABI 1.1, DESIGN.md "Open op set"): reductions and
 * scans along one dim that the built-in reduce entry does not cover.
 *
 * Every op takes two tensors, [out, in], each of ndim 3: [outer, len, inner], any
 * strides (in elements), the op running along the middle dim. out's middle extent is 1
 * for "ferry.prod" and len for the others; outer and inner match. No params (NULL, 0).
 *
 *   "ferry.prod"        out = product over the line (1 for len 0)
 *   "ferry.cumsum"      out[l] = in[0] + ... + in[l]
 *   "ferry.cumprod"     out[l] = in[0] * ... * in[l]
 *   "ferry.softmax"     out[l] = exp(in[l] - m) / sum exp(in - m), m the line's max
 *   "ferry.log_softmax" out[l] = in[l] - m - log(sum exp(in - m))
 *
 * Dtypes: for prod, cumsum and cumprod, bool and integer inputs give INT64 (wrapping
 * as PyTorch), floating inputs give their own dtype; softmax and log_softmax take
 * floating dtypes only, out of in's dtype. float16/bfloat16 accumulate in float32.
 * NaN propagates. */
#ifndef FERRY_OPS_REDUCE2_H
#define FERRY_OPS_REDUCE2_H

#define FERRY_OP_PROD "ferry.prod"
#define FERRY_OP_CUMSUM "ferry.cumsum"
#define FERRY_OP_CUMPROD "ferry.cumprod"
#define FERRY_OP_SOFTMAX "ferry.softmax"
#define FERRY_OP_LOG_SOFTMAX "ferry.log_softmax"

#endif /* FERRY_OPS_REDUCE2_H */

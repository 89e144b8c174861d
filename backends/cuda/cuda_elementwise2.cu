/* CUDA entries of the ELEM2 family (ferry/ops/elementwise2.h): the portable kernels of
 * backends/kernels/ferry_elementwise2.h that OpenCL runs, planned by the same fk_plan.c
 * with the same checks as ocl_elementwise2.c, so both devices accept the same calls. */
#include <stdio.h>
#include <string.h>

#include <ferry/ops/elementwise2.h>

#include "cuda_internal.h"

#include "ferry_elementwise2.h"

static_assert(FK_U2_LOGICAL_NOT == FERRY_UNARY2_LOGICAL_NOT && FK_U2_GELU == FERRY_UNARY2_GELU &&
                  FK_U2_BITWISE_NOT == FERRY_UNARY2_BITWISE_NOT,
              "unary2 op numbers");
static_assert(FK_B2_LOGICAL_XOR == FERRY_BINARY2_LOGICAL_XOR &&
                  FK_B2_HYPOT == FERRY_BINARY2_HYPOT &&
                  FK_B2_LSHIFT == FERRY_BINARY2_BITWISE_LEFT_SHIFT,
              "binary2 op numbers");

/* Host stubs by dtype (ferry_dtype order, the kernels' table order), launched through
 * cudaLaunchKernel as cuda_kernels.cu launches the built-in families. */
#define E2_FN(family, sfx) (const void *)ferry_##family##_##sfx
#define E2_UN_FN(sfx, st, vt, wt, kind) E2_FN(un2, sfx),
#define E2_UNB_FN(sfx, st, vt, wt, kind) E2_FN(un2b, sfx),
#define E2_BIN_FN(sfx, st, vt, wt, kind) E2_FN(bin2, sfx),
#define E2_BINB_FN(sfx, st, vt, wt, kind) E2_FN(bin2b, sfx),

static const void *const un2_fns[] = {FK_DTYPES(E2_UN_FN)};
static const void *const un2b_fns[] = {FK_DTYPES(E2_UNB_FN)};
static const void *const bin2_fns[] = {FK_DTYPES(E2_BIN_FN)};
static const void *const bin2b_fns[] = {FK_DTYPES(E2_BINB_FN)};
static const void *const where_fns[4] = {E2_FN(where, w8), E2_FN(where, w16),
                                         E2_FN(where, w32), E2_FN(where, w64)};

#define E2_COUNT(a) (sizeof(a) / sizeof((a)[0]))
static_assert(E2_COUNT(un2_fns) == FERRY_NUM_DTYPES && E2_COUNT(un2b_fns) == FERRY_NUM_DTYPES &&
                  E2_COUNT(bin2_fns) == FERRY_NUM_DTYPES &&
                  E2_COUNT(bin2b_fns) == FERRY_NUM_DTYPES,
              "one kernel per dtype, float64 included");

#define E2_BLOCK 256
#define E2_BLOCKS_PER_SM 32 /* past that the grid-stride loops take more elements */

static fk_plan_ctx ctx(int32_t dev)
{
    fk_plan_ctx c = {cuda_host, "cuda", dev};
    return c;
}

static bool is_float(ferry_dtype d)
{
    return d == FERRY_FLOAT16 || d == FERRY_BFLOAT16 || d == FERRY_FLOAT32 || d == FERRY_FLOAT64;
}

/* Launches `fn` (named in messages) over n threads on the device's stream. */
static ferry_status launch(int32_t dev, cudaStream_t stream, const void *fn, const char *name,
                           int64_t n, void **args)
{
    if (n <= 0)
        return FERRY_OK;
    int64_t blocks = (n + E2_BLOCK - 1) / E2_BLOCK;
    int64_t most = (int64_t)cuda_sm_count(dev) * E2_BLOCKS_PER_SM;
    if (blocks > most)
        blocks = most;
    /* Stale non-sticky errors of earlier calls are not this launch's. */
    (void)cudaGetLastError();
    cudaError_t e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(E2_BLOCK), args, 0, stream);
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e == cudaSuccess)
        return FERRY_OK;
    char call[96];
    snprintf(call, sizeof call, "cudaLaunchKernel(%s)", name);
    return cuda_fail(dev, call, e);
}

static ferry_status unary2(int32_t dev, const ferry_op_args *args)
{
    if (args->ntensors != 2 || !args->params || args->params_size < sizeof(ferry_unary2_params))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_unary2_params *p = (const ferry_unary2_params *)args->params;
    const ferry_kernel_tensor *out = &args->tensors[0], *in = &args->tensors[1];
    int op = p->op;
    bool pred = op >= FERRY_UNARY2_ISNAN && op <= FERRY_UNARY2_LOGICAL_NOT;
    bool fl = is_float(in->dtype);
    if (op < 0 || op >= FERRY_UNARY2_COUNT ||
        (!pred && !fl && op != FERRY_UNARY2_SIGN && op != FERRY_UNARY2_BITWISE_NOT))
        return FERRY_ERR_UNSUPPORTED;
    fk_plan_ctx c = ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, in->dtype);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_%s_%s", pred ? "un2b" : "un2", fk_dtype_sfx[in->dtype]);
    void *o = out->buffer, *i = in->buffer;
    fk_i32 op32 = (fk_i32)op;
    /* Floating kernels take p0, p1 in their value type: float below float64. */
    float f0 = (float)p->p0, f1 = (float)p->p1;
    double d0 = p->p0, d1 = p->p1;
    bool dbl = in->dtype == FERRY_FLOAT64;
    void *a[6] = {&o, &i, &g, &op32, dbl ? (void *)&d0 : (void *)&f0,
                  dbl ? (void *)&d1 : (void *)&f1};
    return launch(dev, stream, (pred ? un2b_fns : un2_fns)[in->dtype], name, g.numel, a);
}

static ferry_status binary2(int32_t dev, const ferry_op_args *args)
{
    if (args->ntensors != 3 || !args->params || args->params_size < sizeof(ferry_binary2_params))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_binary2_params *p = (const ferry_binary2_params *)args->params;
    const ferry_kernel_tensor *out = &args->tensors[0], *x = &args->tensors[1],
                              *y = &args->tensors[2];
    int op = p->op;
    if (op < 0 || op >= FERRY_BINARY2_COUNT || x->dtype != y->dtype)
        return FERRY_ERR_UNSUPPORTED;
    bool logical = op >= FERRY_BINARY2_LOGICAL_AND;
    fk_plan_ctx c = ctx(dev);
    cudaStream_t stream;
    fk_geom g;
    const ferry_kernel_tensor *ops[3] = {out, x, y};
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, x->dtype);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 3, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_%s_%s", logical ? "bin2b" : "bin2", fk_dtype_sfx[x->dtype]);
    void *o = out->buffer, *xa = x->buffer, *ya = y->buffer;
    fk_i32 op32 = (fk_i32)op;
    void *a[5] = {&o, &xa, &ya, &g, &op32};
    return launch(dev, stream, (logical ? bin2b_fns : bin2_fns)[x->dtype], name, g.numel, a);
}

static ferry_status where(int32_t dev, const ferry_op_args *args)
{
    if (args->ntensors != 4)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *out = &args->tensors[0], *cond = &args->tensors[1],
                              *x = &args->tensors[2], *y = &args->tensors[3];
    fk_plan_ctx c = ctx(dev);
    cudaStream_t stream;
    ferry_status st = cuda_use(dev, &stream);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, out->dtype);
    /* (out, cond, a) and (out, b): one logical shape, so index i is one element in both. */
    fk_geom g, gb;
    const ferry_kernel_tensor *ops[3] = {out, cond, x};
    const ferry_kernel_tensor *opsb[2] = {out, y};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 3, ops);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &gb, 2, opsb);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    static const char *const names[4] = {"ferry_where_w8", "ferry_where_w16", "ferry_where_w32",
                                         "ferry_where_w64"};
    int lg = fk_width_log2(fk_dtype_size(out->dtype));
    void *o = out->buffer, *cb = cond->buffer, *xa = x->buffer, *yb = y->buffer;
    void *a[6] = {&o, &cb, &xa, &g, &yb, &gb};
    return launch(dev, stream, where_fns[lg], names[lg], g.numel, a);
}

static ferry_status cuda_unary2(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(unary2(dev, args))
}

static ferry_status cuda_binary2(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(binary2(dev, args))
}

static ferry_status cuda_where(int32_t dev, const ferry_op_args *args)
{
    CUDA_GUARD(where(dev, args))
}

const ferry_named_entry cuda_named_elementwise2[] = {
    {"ferry.unary2", cuda_unary2},
    {"ferry.binary2", cuda_binary2},
    {"ferry.where", cuda_where},
    {NULL, NULL},
};

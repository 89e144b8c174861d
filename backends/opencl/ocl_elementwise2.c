/* OpenCL entries of the ELEM2 family (ferry/ops/elementwise2.h): the portable kernels of
 * backends/kernels/ferry_elementwise2.h, one program per dtype; where is one program of
 * kernels by element width. */
#include <stdio.h>
#include <string.h>

#include <ferry/ops/elementwise2.h>

#include "ferry_elementwise2.h"
#include "ocl_internal.h"

_Static_assert(FK_U2_LOGICAL_NOT == FERRY_UNARY2_LOGICAL_NOT && FK_U2_GELU == FERRY_UNARY2_GELU &&
                   FK_U2_BITWISE_NOT == FERRY_UNARY2_BITWISE_NOT,
               "unary2 op numbers");
_Static_assert(FK_B2_LOGICAL_XOR == FERRY_BINARY2_LOGICAL_XOR &&
                   FK_B2_HYPOT == FERRY_BINARY2_HYPOT && FK_B2_LSHIFT == FERRY_BINARY2_BITWISE_LEFT_SHIFT,
               "binary2 op numbers");

static fk_plan_ctx ctx(int32_t device)
{
    fk_plan_ctx c = {ocl_host, "opencl", device};
    return c;
}

static bool is_float(ferry_dtype d)
{
    return d == FERRY_FLOAT16 || d == FERRY_BFLOAT16 || d == FERRY_FLOAT32 || d == FERRY_FLOAT64;
}

/* Sets buffers, the geometry and op, plus `extra` trailing arguments, and enqueues. */
static ferry_status launch(ocl_device *d, const char *family, int dtype, const char *name,
                           int nbufs, const cl_mem *bufs, const fk_geom *g, const cl_int *op,
                           int nextra, const void *const *extra, const size_t *extra_size)
{
    ocl_kernel k;
    ferry_status st = ocl_named_kernel(d, family, dtype, name, &k);
    cl_uint i = 0;
    for (; st == FERRY_OK && i < (cl_uint)nbufs; i++)
        st = ocl_arg(d, k.kernel, k.name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, i++, sizeof *g, g);
    if (st == FERRY_OK && op)
        st = ocl_arg(d, k.kernel, k.name, i++, sizeof *op, op);
    for (int e = 0; st == FERRY_OK && e < nextra; e++)
        st = ocl_arg(d, k.kernel, k.name, i++, extra_size[e], extra[e]);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, g->numel);
    return st;
}

static ferry_status ocl_unary2(int32_t device, const ferry_op_args *args)
{
    if (args->ntensors != 2 || !args->params || args->params_size < sizeof(ferry_unary2_params))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_unary2_params *p = args->params;
    const ferry_kernel_tensor *out = &args->tensors[0], *in = &args->tensors[1];
    int op = p->op;
    bool pred = op >= FERRY_UNARY2_ISNAN && op <= FERRY_UNARY2_LOGICAL_NOT;
    bool fl = is_float(in->dtype);
    if (op < 0 || op >= FERRY_UNARY2_COUNT || (!pred && !fl && op != FERRY_UNARY2_SIGN &&
                                               op != FERRY_UNARY2_BITWISE_NOT))
        return FERRY_ERR_UNSUPPORTED;
    ocl_device *d;
    fk_plan_ctx c = ctx(device);
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, in->dtype);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, in->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_%s_%s", pred ? "un2b" : "un2", fk_dtype_sfx[in->dtype]);
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)in->buffer};
    cl_int op32 = op;
    /* The parameters travel in the kernel's value type: float below float64. */
    float f0 = (float)p->p0, f1 = (float)p->p1;
    const void *ex[2];
    size_t exs[2];
    int nex = 0;
    if (fl && !pred) {
        bool dbl = in->dtype == FERRY_FLOAT64;
        ex[0] = dbl ? (const void *)&p->p0 : &f0;
        ex[1] = dbl ? (const void *)&p->p1 : &f1;
        exs[0] = exs[1] = dbl ? sizeof(double) : sizeof(float);
        nex = 2;
    }
    pthread_mutex_lock(&d->lock);
    st = launch(d, "ELEM2", (int)in->dtype, name, 2, bufs, &g, &op32, nex, ex, exs);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_binary2(int32_t device, const ferry_op_args *args)
{
    if (args->ntensors != 3 || !args->params || args->params_size < sizeof(ferry_binary2_params))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_binary2_params *p = args->params;
    const ferry_kernel_tensor *out = &args->tensors[0], *a = &args->tensors[1],
                              *b = &args->tensors[2];
    int op = p->op;
    if (op < 0 || op >= FERRY_BINARY2_COUNT || a->dtype != b->dtype)
        return FERRY_ERR_UNSUPPORTED;
    bool logical = op >= FERRY_BINARY2_LOGICAL_AND;
    ocl_device *d;
    fk_plan_ctx c = ctx(device);
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, a->dtype);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, a->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[3] = {out, a, b};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 3, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_%s_%s", logical ? "bin2b" : "bin2", fk_dtype_sfx[a->dtype]);
    cl_mem bufs[3] = {(cl_mem)out->buffer, (cl_mem)a->buffer, (cl_mem)b->buffer};
    cl_int op32 = op;
    pthread_mutex_lock(&d->lock);
    st = launch(d, "ELEM2", (int)a->dtype, name, 3, bufs, &g, &op32, 0, NULL, NULL);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_where(int32_t device, const ferry_op_args *args)
{
    if (args->ntensors != 4)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *out = &args->tensors[0], *cond = &args->tensors[1],
                              *a = &args->tensors[2], *b = &args->tensors[3];
    ocl_device *d;
    fk_plan_ctx c = ctx(device);
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, out->dtype);
    /* The geometries are planned on the byte-width views the kernels read. */
    fk_geom g, gb;
    const ferry_kernel_tensor *ops[3] = {out, cond, a};
    const ferry_kernel_tensor *opsb[2] = {out, b};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 3, ops);
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &gb, 2, opsb);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    static const char *const names[4] = {"ferry_where_w8", "ferry_where_w16", "ferry_where_w32",
                                         "ferry_where_w64"};
    int lg = fk_width_log2(fk_dtype_size(out->dtype));
    cl_mem bufs[3] = {(cl_mem)out->buffer, (cl_mem)cond->buffer, (cl_mem)a->buffer};
    cl_mem bb = (cl_mem)b->buffer;
    const void *ex[2] = {&bb, &gb};
    size_t exs[2] = {sizeof bb, sizeof gb};
    pthread_mutex_lock(&d->lock);
    st = launch(d, "WHERE", -1, names[lg], 3, bufs, &g, NULL, 2, ex, exs);
    pthread_mutex_unlock(&d->lock);
    return st;
}

const ferry_named_entry ocl_named_elementwise2[] = {
    {"ferry.unary2", ocl_unary2},
    {"ferry.binary2", ocl_binary2},
    {"ferry.where", ocl_where},
    {NULL, NULL},
};

/* The reduce2 family on OpenCL (ferry/ops/reduce2.h): one work-item per line of the
 * portable kernels in ferry_reduce2.h. */
#include <stdio.h>

#include <ferry/ops/reduce2.h>

#include "fk_plan.h"
#include "ocl_internal.h"
#include "ferry_reduce2.h"

static ferry_status ocl_l2_run(int32_t device, const char *name, const ferry_op_args *args)
{
    fk_lgeom g;
    if (fk_l2_geom(&g, fk_l2_op_of(name), args) != 0)
        return FERRY_ERR_UNSUPPORTED;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    const ferry_kernel_tensor *out = &args->tensors[0], *in = &args->tensors[1];
    int64_t lines = g.outer * g.inner;
    if (lines == 0 || (g.len == 0 && g.op != FK_L2_PROD))
        return FERRY_OK;
    if ((st = ocl_check_fp64(d, in->dtype)) != FERRY_OK)
        return st;
    char kname[64];
    snprintf(kname, sizeof kname, "ferry_r2_%s_%s", g.op >= FK_L2_SOFTMAX ? "softmax" : "scan",
             fk_dtype_sfx[in->dtype]);
    cl_mem o = (cl_mem)out->buffer, i = (cl_mem)in->buffer;
    pthread_mutex_lock(&d->lock);
    ocl_kernel k;
    st = ocl_named_kernel(d, "REDUCE2", (int)in->dtype, kname, &k);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 0, sizeof o, &o);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 1, sizeof i, &i);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 2, sizeof g, &g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, lines);
    pthread_mutex_unlock(&d->lock);
    return st;
}

#define OCL_L2_ENTRY(fn, NAME)                                                            \
    static ferry_status fn(int32_t device, const ferry_op_args *args)                     \
    {                                                                                     \
        return ocl_l2_run(device, NAME, args);                                            \
    }
OCL_L2_ENTRY(ocl_l2_prod, FERRY_OP_PROD)
OCL_L2_ENTRY(ocl_l2_cumsum, FERRY_OP_CUMSUM)
OCL_L2_ENTRY(ocl_l2_cumprod, FERRY_OP_CUMPROD)
OCL_L2_ENTRY(ocl_l2_softmax, FERRY_OP_SOFTMAX)
OCL_L2_ENTRY(ocl_l2_log_softmax, FERRY_OP_LOG_SOFTMAX)

const ferry_named_entry ocl_named_reduce2[] = {
    {FERRY_OP_PROD, ocl_l2_prod},
    {FERRY_OP_CUMSUM, ocl_l2_cumsum},
    {FERRY_OP_CUMPROD, ocl_l2_cumprod},
    {FERRY_OP_SOFTMAX, ocl_l2_softmax},
    {FERRY_OP_LOG_SOFTMAX, ocl_l2_log_softmax},
    {NULL, NULL},
};

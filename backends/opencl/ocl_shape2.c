/* The shape2 family on OpenCL (ferry/ops/shape2.h): tril/triu from the portable kernels
 * of ferry_shape2.h, one work-item per element. */
#include <stdio.h>

#include <ferry/ops/shape2.h>

#include "fk_plan.h"
#include "ocl_internal.h"
#include "ferry_shape2.h"

static ferry_status ocl_tri(int32_t device, const ferry_op_args *args)
{
    fk_tgeom g;
    if (fk_tri_geom(&g, args) != 0)
        return FERRY_ERR_UNSUPPORTED;
    int64_t n = g.batch * g.rows * g.cols;
    if (n == 0)
        return FERRY_OK;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    ferry_dtype sd = fk_tri_standin(args->tensors[1].dtype);
    char kname[48];
    snprintf(kname, sizeof kname, "ferry_tri_%s", fk_dtype_sfx[sd]);
    cl_mem o = (cl_mem)args->tensors[0].buffer, i = (cl_mem)args->tensors[1].buffer;
    pthread_mutex_lock(&d->lock);
    ocl_kernel k;
    st = ocl_named_kernel(d, "SHAPE2", (int)sd, kname, &k);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 0, sizeof o, &o);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 1, sizeof i, &i);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 2, sizeof g, &g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, n);
    pthread_mutex_unlock(&d->lock);
    return st;
}

const ferry_named_entry ocl_named_shape2[] = {
    {FERRY_OP_TRI, ocl_tri},
    {NULL, NULL},
};

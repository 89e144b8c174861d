/* Indexing on OpenCL (ferry/ops/index.h): gather and scatter(_add) from
 * backends/kernels/ferry_index.h, one launch each. */
#include <stdio.h>
#include <string.h>

#include <ferry/ops/index.h>

#include "ocl_internal.h"
#include "ferry_index.h"

static const size_t sizes[FERRY_NUM_DTYPES] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};

static ferry_status run(int32_t device, const ferry_op_args *a, bool gather)
{
    fk_igeom g;
    int plan = fk_igeom_fill(&g, a, gather, sizes);
    if (plan != 0)
        return plan < 0 ? FERRY_ERR_UNSUPPORTED : FERRY_OK;
    const ferry_kernel_tensor *t0 = &a->tensors[0], *flag = &a->tensors[1];
    const ferry_kernel_tensor *src = &a->tensors[gather ? 2 : 3], *idx = &a->tensors[gather ? 3 : 2];
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, t0->dtype);
    if (st != FERRY_OK)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_%s_%s", gather ? "gather" : "scatter",
             fk_dtype_sfx[t0->dtype]);
    cl_mem bufs[4] = {(cl_mem)t0->buffer, (cl_mem)flag->buffer, (cl_mem)src->buffer,
                      (cl_mem)idx->buffer};
    pthread_mutex_lock(&d->lock);
    ocl_kernel k;
    st = ocl_named_kernel(d, "INDEX", (int)t0->dtype, name, &k);
    for (cl_uint i = 0; st == FERRY_OK && i < 4; i++)
        st = ocl_arg(d, k.kernel, k.name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 4, sizeof g, &g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, g.numel);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_gather(int32_t device, const ferry_op_args *a)
{
    return run(device, a, true);
}

static ferry_status ocl_scatter(int32_t device, const ferry_op_args *a)
{
    return run(device, a, false);
}

/* "ferry.index" / "ferry.index_put": up to FK_XMAX indices; unused index arguments
 * repeat the flag's buffer (never read). */
static ferry_status run_x(int32_t device, const ferry_op_args *a, bool put)
{
    fk_xgeom g;
    /* Assignment walks R as index does; accumulation owns one element per thread. */
    bool acc = put && a->params && a->params_size >= sizeof(ferry_index_params) &&
               ((const ferry_index_params *)a->params)->accumulate;
    int plan = fk_xgeom_fill(&g, a, acc, sizes);
    if (plan < 0)
        return FERRY_ERR_UNSUPPORTED;
    if (plan > 0)
        return FERRY_OK;
    const ferry_kernel_tensor *t0 = &a->tensors[0];
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, t0->dtype);
    if (st != FERRY_OK)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_xindex%s_%s", acc ? "_put" : put ? "_set" : "",
             fk_dtype_sfx[t0->dtype]);
    cl_mem bufs[3 + FK_XMAX];
    for (int i = 0; i < 3; i++)
        bufs[i] = (cl_mem)a->tensors[i].buffer;
    for (int j = 0; j < FK_XMAX; j++)
        bufs[3 + j] = (cl_mem)(j < g.k ? a->tensors[3 + j].buffer : a->tensors[1].buffer);
    pthread_mutex_lock(&d->lock);
    ocl_kernel k;
    st = ocl_named_kernel(d, "INDEX", (int)t0->dtype, name, &k);
    for (cl_uint i = 0; st == FERRY_OK && i < 3 + FK_XMAX; i++)
        st = ocl_arg(d, k.kernel, k.name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 3 + FK_XMAX, sizeof g, &g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, g.numel);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_index(int32_t device, const ferry_op_args *a)
{
    return run_x(device, a, false);
}

static ferry_status ocl_index_put(int32_t device, const ferry_op_args *a)
{
    return run_x(device, a, true);
}

const ferry_named_entry ocl_named_index[] = {
    {FERRY_OP_GATHER, ocl_gather},
    {FERRY_OP_SCATTER, ocl_scatter},
    {FERRY_OP_INDEX, ocl_index},
    {FERRY_OP_INDEX_PUT, ocl_index_put},
    {NULL, NULL},
};

/* Selection on OpenCL (ferry/ops/select.h): nonzero, masked_select and masked_scatter
 * from backends/kernels/ferry_select.h, one launch each after the core's count. */
#include <stdio.h>

#include <ferry/ops/select.h>

#include "ocl_internal.h"
#include "fk_plan.h"

/* One launch of `name` over g.numel work-items: buffers a and b, then g. */
static ferry_status launch(int32_t device, const char *name, cl_mem a, cl_mem b, cl_mem pos,
                           const fk_sgeom *g)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK || g->numel == 0)
        return st;
    cl_mem bufs[3] = {a, b, pos};
    int nbufs = pos ? 3 : 2;
    pthread_mutex_lock(&d->lock);
    ocl_kernel k;
    st = ocl_named_kernel(d, "SELECT", -1, name, &k);
    for (cl_uint i = 0; st == FERRY_OK && i < (cl_uint)nbufs; i++)
        st = ocl_arg(d, k.kernel, k.name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, (cl_uint)nbufs, sizeof *g, g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, g->numel);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_nonzero(int32_t device, const ferry_op_args *a)
{
    fk_plan_ctx c = {ocl_host, "opencl", device};
    fk_sgeom g;
    ferry_status st = fk_plan_nonzero(&c, a, &g);
    if (st != FERRY_OK)
        return st;
    return launch(device, "ferry_nonzero_rows", (cl_mem)a->tensors[0].buffer,
                  (cl_mem)a->tensors[1].buffer, NULL, &g);
}

static ferry_status run_masked(int32_t device, const ferry_op_args *a, bool scatter)
{
    fk_plan_ctx c = {ocl_host, "opencl", device};
    fk_sgeom g;
    size_t width;
    ferry_status st = fk_plan_select(&c, a, scatter, &g, &width);
    if (st != FERRY_OK)
        return st;
    char name[40];
    snprintf(name, sizeof name, "ferry_masked_%s_w%zu", scatter ? "scatter" : "select", width);
    return launch(device, name, (cl_mem)a->tensors[0].buffer, (cl_mem)a->tensors[1].buffer,
                  (cl_mem)a->tensors[2].buffer, &g);
}

static ferry_status ocl_masked_select(int32_t device, const ferry_op_args *a)
{
    return run_masked(device, a, false);
}

static ferry_status ocl_masked_scatter(int32_t device, const ferry_op_args *a)
{
    return run_masked(device, a, true);
}

const ferry_named_entry ocl_named_select[] = {
    {FERRY_OP_NONZERO, ocl_nonzero},
    {FERRY_OP_MASKED_SELECT, ocl_masked_select},
    {FERRY_OP_MASKED_SCATTER, ocl_masked_scatter},
    {NULL, NULL},
};

/* OpenCL entries of the ELEM2 family (ferry/ops/elementwise2.h): the portable kernels of
 * backends/kernels/ferry_elementwise2.h, one program per dtype; where is one program of
 * kernels by element width. fk_plan.c plans each launch, as it does for CUDA. */
#include <ferry/ops/elementwise2.h>

#include "ocl_internal.h"

static fk_plan_ctx ctx(int32_t device)
{
    fk_plan_ctx c = {ocl_host, "opencl", device};
    return c;
}

/* Sets the planned arguments and enqueues, with the device lock taken here. */
static ferry_status launch(ocl_device *d, fk_elem2_launch *l, bool with_op)
{
    pthread_mutex_lock(&d->lock);
    ocl_kernel k;
    ferry_status st = ocl_named_kernel(d, l->family, l->dtype, l->name, &k);
    cl_uint i = 0;
    for (; st == FERRY_OK && i < (cl_uint)l->nbufs; i++) {
        cl_mem m = (cl_mem)l->bufs[i];
        st = ocl_arg(d, k.kernel, k.name, i, sizeof m, &m);
    }
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, i++, sizeof l->g, &l->g);
    if (st == FERRY_OK && with_op)
        st = ocl_arg(d, k.kernel, k.name, i++, sizeof l->op, &l->op);
    for (int e = 0; st == FERRY_OK && e < l->nparams; e++)
        st = ocl_arg(d, k.kernel, k.name, i++, l->param_size,
                     l->param_size == sizeof(double) ? (const void *)&l->pd[e]
                                                     : (const void *)&l->pf[e]);
    if (st == FERRY_OK && l->b_buffer) {
        cl_mem bb = (cl_mem)l->b_buffer;
        st = ocl_arg(d, k.kernel, k.name, i++, sizeof bb, &bb);
        if (st == FERRY_OK)
            st = ocl_arg(d, k.kernel, k.name, i++, sizeof l->gb, &l->gb);
    }
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, l->g.numel);
    pthread_mutex_unlock(&d->lock);
    return st;
}

/* Plans with `plan`, refuses float64 where the device lacks it, and launches. */
static ferry_status run(int32_t device, const ferry_op_args *args,
                        ferry_status (*plan)(const fk_plan_ctx *, const ferry_op_args *,
                                             fk_elem2_launch *),
                        bool with_op)
{
    ocl_device *d;
    fk_plan_ctx c = ctx(device);
    fk_elem2_launch l;
    ferry_status st = plan(&c, args, &l);
    if (st == FERRY_OK)
        st = ocl_device_ready(device, &d);
    if (st == FERRY_OK && l.dtype >= 0)
        st = ocl_check_fp64(d, (ferry_dtype)l.dtype);
    if (st != FERRY_OK || l.g.numel == 0)
        return st;
    return launch(d, &l, with_op);
}

static ferry_status ocl_unary2(int32_t device, const ferry_op_args *args)
{
    return run(device, args, fk_plan_unary2, true);
}

static ferry_status ocl_binary2(int32_t device, const ferry_op_args *args)
{
    return run(device, args, fk_plan_binary2, true);
}

static ferry_status ocl_where(int32_t device, const ferry_op_args *args)
{
    return run(device, args, fk_plan_where, false);
}

const ferry_named_entry ocl_named_elementwise2[] = {
    {"ferry.unary2", ocl_unary2},
    {"ferry.binary2", ocl_binary2},
    {"ferry.where", ocl_where},
    {NULL, NULL},
};

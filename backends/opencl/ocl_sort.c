/* "ferry.sort" and "ferry.sort_scatter" on OpenCL devices (ferry/ops/sort.h): the
 * bitonic network of backends/kernels/ferry_sort.h over (key, index) pairs held in the
 * device's scratch buffer, then a gather of the first k of each row. */
#include <stdio.h>
#include <string.h>

#include <ferry/ops/sort.h>

#include "ocl_internal.h"
#include "ferry_sort.h"

static ferry_status run(ocl_device *d, const char *name, int nbufs, const cl_mem *bufs,
                        const fk_sort_launch *p, int64_t threads)
{
    ocl_kernel k;
    ferry_status st = ocl_named_kernel(d, "SORT", -1, name, &k);
    for (int i = 0; st == FERRY_OK && i < nbufs; i++)
        st = ocl_arg(d, k.kernel, k.name, (cl_uint)i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, (cl_uint)nbufs, sizeof *p, p);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, threads);
    return st;
}

static ferry_status ocl_sort(int32_t device, const ferry_op_args *args)
{
    fk_plan_ctx c = {ocl_host, "opencl", device};
    fk_sort_launch p;
    bool nothing;
    ferry_status st = fk_plan_sort(&c, args, false, &p, &nothing);
    if (st != FERRY_OK || nothing)
        return st;
    ocl_device *d;
    if ((st = ocl_device_ready(device, &d)) != FERRY_OK)
        return st;
    const ferry_kernel_tensor *v = &args->tensors[0], *in = &args->tensors[p.has_idx ? 2 : 1];
    const ferry_kernel_tensor *ix = p.has_idx ? &args->tensors[1] : v;
    pthread_mutex_lock(&d->lock);
    cl_mem scr = NULL;
    st = ocl_scratch(d, (size_t)(2 * p.rows * p.P) * sizeof(uint64_t), &scr);
    if (st == FERRY_OK) {
        cl_mem b[2] = {scr, (cl_mem)in->buffer};
        st = run(d, "ferry_sort_keys", 2, b, &p, p.rows * p.P);
    }
    for (int64_t kk = 2; st == FERRY_OK && kk <= p.P; kk *= 2)
        for (int64_t j = kk / 2; st == FERRY_OK && j >= 1; j /= 2) {
            p.kk = kk;
            p.j = j;
            st = run(d, "ferry_sort_step", 1, &scr, &p, p.rows * (p.P / 2));
        }
    if (st == FERRY_OK) {
        cl_mem b[4] = {(cl_mem)v->buffer, (cl_mem)ix->buffer, (cl_mem)in->buffer, scr};
        st = run(d, "ferry_sort_out", 4, b, &p, p.rows * p.k);
    }
    ocl_scratch_trim(d);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_sort_scatter(int32_t device, const ferry_op_args *args)
{
    fk_plan_ctx c = {ocl_host, "opencl", device};
    fk_sort_launch p;
    bool nothing;
    ferry_status st = fk_plan_sort(&c, args, true, &p, &nothing);
    if (st != FERRY_OK || nothing)
        return st;
    ocl_device *d;
    if ((st = ocl_device_ready(device, &d)) != FERRY_OK)
        return st;
    const ferry_kernel_tensor *o = &args->tensors[0], *g = &args->tensors[1],
                              *ix = &args->tensors[2];
    pthread_mutex_lock(&d->lock);
    st = run(d, "ferry_sort_zero", 1, (cl_mem *)&o->buffer, &p, p.rows * p.n);
    if (st == FERRY_OK && p.k > 0) {
        cl_mem b[3] = {(cl_mem)o->buffer, (cl_mem)g->buffer, (cl_mem)ix->buffer};
        st = run(d, "ferry_sort_scatter", 3, b, &p, p.rows * p.k);
    }
    pthread_mutex_unlock(&d->lock);
    return st;
}

OCL_HIDDEN const ferry_named_entry ocl_named_sort[] = {
    {FERRY_OP_SORT, ocl_sort},
    {FERRY_OP_SORT_SCATTER, ocl_sort_scatter},
    {NULL, NULL},
};

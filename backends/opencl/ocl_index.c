/* Indexing on OpenCL (ferry/ops/index.h): gather, scatter(_add), index and index_put
 * from backends/kernels/ferry_index.h, one launch each but index_put's accumulation
 * (keys, the device sort of ocl_sort.c, then the sums). */
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

/* Sets the index tensors as arguments first .. first + FK_XMAX - 1; unused ones repeat
 * the flag's buffer (never read). */
static ferry_status index_args(ocl_device *d, const ocl_kernel *k, cl_uint first,
                               const ferry_op_args *a, int nidx)
{
    ferry_status st = FERRY_OK;
    for (int j = 0; st == FERRY_OK && j < FK_XMAX; j++) {
        cl_mem b = (cl_mem)(j < nidx ? a->tensors[3 + j].buffer : a->tensors[1].buffer);
        st = ocl_arg(d, k->kernel, k->name, first + (cl_uint)j, sizeof(cl_mem), &b);
    }
    return st;
}

/* index_put's accumulation: keys, the sort, then one thread per run of a slot (see
 * ferry_index.h); lock held. */
static ferry_status accumulate(ocl_device *d, const ferry_op_args *a, const fk_xgeom *g)
{
    int dt = (int)a->tensors[0].dtype;
    cl_mem scr = NULL;
    ferry_status st = ocl_scratch(d, (size_t)(2 * g->P) * sizeof(uint64_t), &scr);
    ocl_kernel k;
    if (st == FERRY_OK)
        st = ocl_named_kernel(d, "INDEX", dt, "ferry_xindex_keys", &k);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 0, sizeof(cl_mem), &scr);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 1, sizeof(cl_mem), &a->tensors[1].buffer);
    if (st == FERRY_OK)
        st = index_args(d, &k, 2, a, g->k);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 2 + FK_XMAX, sizeof *g, g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, g->P);
    if (st == FERRY_OK)
        st = ocl_sort_pairs(d, scr, g->P);
    char name[48];
    snprintf(name, sizeof name, "ferry_xindex_acc_%s", fk_dtype_sfx[dt]);
    if (st == FERRY_OK)
        st = ocl_named_kernel(d, "INDEX", dt, name, &k);
    cl_mem bufs[3] = {(cl_mem)a->tensors[0].buffer, scr, (cl_mem)a->tensors[2].buffer};
    for (cl_uint i = 0; st == FERRY_OK && i < 3; i++)
        st = ocl_arg(d, k.kernel, k.name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 3, sizeof *g, g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, g->numel * g->bnumel);
    ocl_scratch_trim(d);
    return st;
}

/* "ferry.index" / "ferry.index_put": up to FK_XMAX indices. */
static ferry_status run_x(int32_t device, const ferry_op_args *a, bool put)
{
    fk_xgeom g;
    /* Assignment walks R as index does; accumulation sorts B's positions by slot. */
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
    pthread_mutex_lock(&d->lock);
    if (acc) {
        st = accumulate(d, a, &g);
        pthread_mutex_unlock(&d->lock);
        return st;
    }
    char name[48];
    snprintf(name, sizeof name, "ferry_xindex%s_%s", put ? "_set" : "", fk_dtype_sfx[t0->dtype]);
    ocl_kernel k;
    st = ocl_named_kernel(d, "INDEX", (int)t0->dtype, name, &k);
    for (cl_uint i = 0; st == FERRY_OK && i < 3; i++)
        st = ocl_arg(d, k.kernel, k.name, i, sizeof(cl_mem), &a->tensors[i].buffer);
    if (st == FERRY_OK)
        st = index_args(d, &k, 3, a, g.k);
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

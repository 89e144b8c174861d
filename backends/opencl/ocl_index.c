/* Indexing on OpenCL (ferry/ops/index.h): gather, scatter(_add), index and index_put
 * from backends/kernels/ferry_index.h, one launch each but index_put's accumulation
 * (keys, their sort, then the sums) and more than FK_XMAX indices (composed first). */
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

/* Sets the index buffers as arguments first .. first + FK_XMAX - 1. */
static ferry_status index_args(ocl_device *d, const ocl_kernel *k, cl_uint first,
                               const cl_mem *ib)
{
    ferry_status st = FERRY_OK;
    for (int j = 0; st == FERRY_OK && j < FK_XMAX; j++)
        st = ocl_arg(d, k->kernel, k->name, first + (cl_uint)j, sizeof(cl_mem), &ib[j]);
    return st;
}

/* Launches `name` of the INDEX family of dtype dt over n threads with buffers b0, b1,
 * b2 (b2 NULL: not an argument), the index buffers ib, then g; lock held. */
static ferry_status launch(ocl_device *d, int dt, const char *name, cl_mem b0, cl_mem b1,
                           cl_mem b2, const cl_mem *ib, const fk_xgeom *g, int64_t n)
{
    ocl_kernel k;
    ferry_status st = ocl_named_kernel(d, "INDEX", dt, name, &k);
    cl_mem b[3] = {b0, b1, b2};
    cl_uint nb = b2 ? 3 : 2;
    for (cl_uint i = 0; st == FERRY_OK && i < nb; i++)
        st = ocl_arg(d, k.kernel, k.name, i, sizeof(cl_mem), &b[i]);
    if (st == FERRY_OK && ib)
        st = index_args(d, &k, nb, ib);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, nb + (ib ? FK_XMAX : 0), sizeof *g, g);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, n);
    return st;
}

/* "ferry.index" / "ferry.index_put". Assignment walks R as index does; accumulation
 * sorts B's positions by slot (keys, their sort by ocl_sort_keys, then one thread per
 * run of a slot: see ferry_index.h). More than FK_XMAX indices are first composed into
 * one, held in the scratch after the keys (read only by the keys' launch, so the sort
 * may use that room). */
static ferry_status run_x(int32_t device, const ferry_op_args *a, bool put)
{
    fk_xgeom g;
    bool acc = put && a->params && a->params_size >= sizeof(ferry_index_params) &&
               ((const ferry_index_params *)a->params)->accumulate;
    int plan = fk_xgeom_fill(&g, a, acc, sizes);
    if (plan < 0)
        return FERRY_ERR_UNSUPPORTED;
    if (plan > 0)
        return FERRY_OK;
    const ferry_index_params *p = (const ferry_index_params *)a->params;
    bool composed = p->k > FK_XMAX;
    const ferry_kernel_tensor *t0 = &a->tensors[0];
    int dt = (int)t0->dtype;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, t0->dtype);
    if (st != FERRY_OK)
        return st;
    cl_mem flag = (cl_mem)a->tensors[1].buffer, ib[FK_XMAX], scr = NULL;
    for (int j = 0; j < FK_XMAX; j++) /* unused ones repeat the flag (never read) */
        ib[j] = j < p->k && !composed ? (cl_mem)a->tensors[3 + j].buffer : flag;
    pthread_mutex_lock(&d->lock);
    int64_t lin_at = acc ? g.bnumel : 0;
    int64_t words = lin_at + (composed ? g.bnumel : 0);
    int64_t sort_words = acc ? ocl_sort_keys_words(d, g.bnumel) : 0;
    words = words > sort_words ? words : sort_words;
    if (words > 0)
        st = ocl_scratch(d, (size_t)words * sizeof(uint64_t), &scr);
    for (int j0 = 0; composed && st == FERRY_OK && j0 < p->k; j0 += FK_XMAX) {
        fk_xgeom gg;
        int n = fk_xgeom_group(&gg, a, j0, lin_at, sizes);
        cl_mem gb[FK_XMAX];
        for (int j = 0; j < FK_XMAX; j++)
            gb[j] = j < n ? (cl_mem)a->tensors[3 + j0 + j].buffer : flag;
        st = launch(d, dt, "ferry_xindex_lin", scr, flag, NULL, gb, &gg, gg.bnumel);
    }
    if (composed) {
        ib[0] = scr;
        g.ioff[0] = lin_at;
    }
    char name[48];
    cl_mem self = (cl_mem)t0->buffer, src = (cl_mem)a->tensors[2].buffer;
    if (acc) {
        if (st == FERRY_OK)
            st = launch(d, dt, "ferry_xindex_keys", scr, flag, NULL, ib, &g, g.bnumel);
        if (st == FERRY_OK)
            st = ocl_sort_keys(d, scr, g.bnumel, &g.kat);
        snprintf(name, sizeof name, "ferry_xindex_acc_%s", fk_dtype_sfx[dt]);
        if (st == FERRY_OK)
            st = launch(d, dt, name, self, scr, src, NULL, &g, g.numel * g.bnumel);
    } else {
        snprintf(name, sizeof name, "ferry_xindex%s_%s", put ? "_set" : "", fk_dtype_sfx[dt]);
        if (st == FERRY_OK)
            st = launch(d, dt, name, self, flag, src, ib, &g, g.numel);
    }
    if (scr)
        ocl_scratch_trim(d);
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

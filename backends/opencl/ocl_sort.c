/* "ferry.sort" and "ferry.sort_scatter" on OpenCL devices (ferry/ops/sort.h): the
 * bitonic network of backends/kernels/ferry_sort.h over (key, index) pairs held in the
 * device's scratch buffer, then a gather of the first k of each row. */
#include <stdio.h>
#include <string.h>

#include <ferry/ops/sort.h>

#include "ocl_internal.h"
#include "ferry_sort.h"

static int sort_code(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_BOOL: return FK_SORT_BOOL;
    case FERRY_UINT8: return FK_SORT_UINT;
    case FERRY_FLOAT16: return FK_SORT_F16;
    case FERRY_BFLOAT16: return FK_SORT_BF16;
    case FERRY_FLOAT32: return FK_SORT_F32;
    case FERRY_FLOAT64: return FK_SORT_F64;
    default: return FK_SORT_SINT;
    }
}

static int32_t esize(ferry_dtype dt)
{
    return (int32_t)fk_dtype_size(dt);
}

/* Element offset of a tensor's first element in its buffer. */
static int64_t elem_off(const ferry_kernel_tensor *t)
{
    return (int64_t)(t->byte_offset / fk_dtype_size(t->dtype));
}

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
    const ferry_sort_params *sp = args->params;
    if (!sp || args->params_size < sizeof *sp || (args->ntensors != 3 && args->ntensors != 2))
        return FERRY_ERR_UNSUPPORTED;
    bool has_idx = args->ntensors == 3;
    const ferry_kernel_tensor *v = &args->tensors[0], *in = &args->tensors[has_idx ? 2 : 1];
    const ferry_kernel_tensor *ix = has_idx ? &args->tensors[1] : v;
    if (in->ndim != 2 || v->ndim != 2 || ix->ndim != 2)
        return FERRY_ERR_UNSUPPORTED;
    if (sp->rows <= 0 || sp->n <= 0 || sp->k <= 0)
        return FERRY_OK;
    int64_t P = 1;
    while (P < sp->n)
        P *= 2;
    /* (key, index) pairs of 16 bytes each must fit one buffer. */
    if (P > ((int64_t)1 << 40) / sp->rows)
        return FERRY_ERR_UNSUPPORTED;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    fk_sort_launch p;
    memset(&p, 0, sizeof p);
    p.rows = sp->rows;
    p.n = sp->n;
    p.P = P;
    p.k = sp->k;
    p.in_off = elem_off(in);
    p.in_rs = in->strides[0];
    p.in_es = in->strides[1];
    p.v_off = elem_off(v);
    p.v_rs = v->strides[0];
    p.v_es = v->strides[1];
    p.i_off = has_idx ? elem_off(ix) : 0;
    p.i_rs = has_idx ? ix->strides[0] : 0;
    p.i_es = has_idx ? ix->strides[1] : 0;
    p.scr_idx = sp->rows * P;
    p.code = sort_code(in->dtype);
    p.esize = esize(in->dtype);
    p.flip = sp->descending != 0;
    p.has_idx = has_idx;
    pthread_mutex_lock(&d->lock);
    cl_mem scr = NULL;
    st = ocl_scratch(d, (size_t)(2 * sp->rows * P) * sizeof(uint64_t), &scr);
    if (st == FERRY_OK) {
        cl_mem b[2] = {scr, (cl_mem)in->buffer};
        st = run(d, "ferry_sort_keys", 2, b, &p, sp->rows * P);
    }
    for (int64_t kk = 2; st == FERRY_OK && kk <= P; kk *= 2)
        for (int64_t j = kk / 2; st == FERRY_OK && j >= 1; j /= 2) {
            p.kk = kk;
            p.j = j;
            st = run(d, "ferry_sort_step", 1, &scr, &p, sp->rows * (P / 2));
        }
    if (st == FERRY_OK) {
        cl_mem b[4] = {(cl_mem)v->buffer, (cl_mem)ix->buffer, (cl_mem)in->buffer, scr};
        st = run(d, "ferry_sort_out", 4, b, &p, sp->rows * sp->k);
    }
    ocl_scratch_trim(d);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_sort_scatter(int32_t device, const ferry_op_args *args)
{
    const ferry_sort_params *sp = args->params;
    if (!sp || args->params_size < sizeof *sp || args->ntensors != 3)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *o = &args->tensors[0], *g = &args->tensors[1],
                              *ix = &args->tensors[2];
    if (o->ndim != 2 || g->ndim != 2 || ix->ndim != 2)
        return FERRY_ERR_UNSUPPORTED;
    if (sp->rows <= 0 || sp->n <= 0)
        return FERRY_OK;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    fk_sort_launch p;
    memset(&p, 0, sizeof p);
    p.rows = sp->rows;
    p.n = sp->n;
    p.k = sp->k;
    p.in_off = elem_off(g);
    p.in_rs = g->strides[0];
    p.in_es = g->strides[1];
    p.v_off = elem_off(o);
    p.v_rs = o->strides[0];
    p.v_es = o->strides[1];
    p.i_off = elem_off(ix);
    p.i_rs = ix->strides[0];
    p.i_es = ix->strides[1];
    p.esize = esize(o->dtype);
    pthread_mutex_lock(&d->lock);
    st = run(d, "ferry_sort_zero", 1, (cl_mem *)&o->buffer, &p, sp->rows * sp->n);
    if (st == FERRY_OK && sp->k > 0) {
        cl_mem b[3] = {(cl_mem)o->buffer, (cl_mem)g->buffer, (cl_mem)ix->buffer};
        st = run(d, "ferry_sort_scatter", 3, b, &p, sp->rows * sp->k);
    }
    pthread_mutex_unlock(&d->lock);
    return st;
}

OCL_HIDDEN const ferry_named_entry ocl_named_sort[] = {
    {FERRY_OP_SORT, ocl_sort},
    {FERRY_OP_SORT_SCATTER, ocl_sort_scatter},
    {NULL, NULL},
};

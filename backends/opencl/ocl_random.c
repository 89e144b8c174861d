/* The random family on OpenCL: the samplers of backends/kernels/ferry_random.h, one
 * work-item per Philox block on GPUs, a run of blocks per work-item on CPU devices. The
 * core hands over dense outputs; anything else, and float64 on a device without
 * cl_khr_fp64, is refused (FERRY_ERR_UNSUPPORTED) and the cpu backend runs the same
 * function instead, so the numbers never depend on the device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/ops/random.h>

#include "ocl_internal.h"
#include "ferry_random.h"

static bool dense(const ferry_kernel_tensor *t)
{
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != want)
            return false;
        want *= t->shape[d];
    }
    return true;
}

/* Fewest blocks of a work-item's run on a CPU device: a block is a few hundred
 * instructions, so short runs already amortize the work-item's start. */
#define OCL_RANDOM_MIN_RUN 16

/* The work-items a draw of nb blocks takes, setting p->chunk: on a CPU device each takes
 * a run of blocks of its own, which PoCL vectorizes (ferry_random.h, the kernels); GPUs
 * keep one block per thread (ocl_run_length). */
static int64_t random_threads(const ocl_device *d, size_t wg, fk_random *p, int64_t nb)
{
    p->chunk = ocl_run_length(d, wg, nb, OCL_RANDOM_MIN_RUN, 1);
    return p->chunk ? (nb + p->chunk - 1) / p->chunk : nb;
}

static ferry_status ocl_random(int32_t device, const ferry_op_args *args)
{
    if (args->ntensors != 1 || args->noutputs != 1 || !args->params ||
        args->params_size < sizeof(ferry_random_params))
        return ocl_host->error(FERRY_ERR_INVALID_ARGUMENT, "ferry.random: bad arguments");
    const ferry_random_params *rp = args->params;
    const ferry_kernel_tensor *out = &args->tensors[0];
    ferry_dtype dt = out->dtype;
    bool fl = dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16 || dt == FERRY_FLOAT32 ||
              dt == FERRY_FLOAT64;
    bool int_kind = rp->kind == FERRY_RANDOM_INT || rp->kind == FERRY_RANDOM_BITS;
    if (!dense(out) || (rp->offset & 3u) || (!int_kind && !fl) ||
        (rp->kind == FERRY_RANDOM_BITS && dt != FERRY_INT64) || rp->kind < 0 ||
        rp->kind > FERRY_RANDOM_BITS)
        return FERRY_ERR_UNSUPPORTED;
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st != FERRY_OK)
        return st;
    if (dt == FERRY_FLOAT64 && !d->fp64)
        return FERRY_ERR_UNSUPPORTED;
    int64_t n = 1;
    for (int i = 0; i < out->ndim; i++)
        n *= out->shape[i];
    if (n == 0)
        return FERRY_OK;
    size_t esize = fk_dtype_size(dt);
    fk_random p = fk_random_launch(rp, dt, (fk_i64)(out->byte_offset / esize), n);
    int per = int_kind ? (fk_random_int_narrow(&p) ? 4 : 2) : dt == FERRY_FLOAT64 ? 2 : 4;
    char name[48];
    snprintf(name, sizeof name, "ferry_random_%s_%s", int_kind || !fl ? "int" : "float",
             fk_dtype_sfx[dt]);
    if (!int_kind && dt == FERRY_FLOAT64)
        snprintf(name, sizeof name, "ferry_random_float_f64");
    cl_mem buf = (cl_mem)out->buffer;
    pthread_mutex_lock(&d->lock);
    ocl_kernel k;
    st = ocl_named_kernel(d, "RANDOM", (int)dt, name, &k);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 0, sizeof buf, &buf);
    int64_t threads = 0;
    if (st == FERRY_OK)
        threads = random_threads(d, k.wg, &p, (n + per - 1) / per);
    if (st == FERRY_OK)
        st = ocl_arg(d, k.kernel, k.name, 1, sizeof p, &p);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(d, &k, threads);
    pthread_mutex_unlock(&d->lock);
    return st;
}

const ferry_named_entry ocl_named_random[] = {
    {FERRY_RANDOM_OP, ocl_random},
    {NULL, NULL},
};

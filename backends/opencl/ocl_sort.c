/* "ferry.sort" and "ferry.sort_scatter" on OpenCL devices (ferry/ops/sort.h): the
 * bitonic network and topk selection of backends/kernels/ferry_sort.h, over (key, index)
 * pairs in local memory and the device's scratch buffer, in the schedule fk_sort_drive
 * gives. */
#include <stdio.h>
#include <stdlib.h>
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

/* Most threads of a sorting work-group: a tile of 1024 elements (four a thread), 16 KiB
 * of (key, index) pairs, is within every GPU's local memory and leaves room for several
 * work-groups per compute unit. */
#define SORT_LANES_MAX 256

typedef struct sort_ctx {
    ocl_device *d;
    ocl_kernel tile, step, step2, merge;
    cl_mem bufs[4]; /* scratch, values, indices, input */
} sort_ctx;

/* Threads of ferry_sort_tile's work-groups on d: a power of two within the kernel's
 * limit and the device's local memory (the tile takes 16 bytes an element, four elements
 * a thread), at least 1. */
static size_t sort_lanes(ocl_device *d, cl_kernel k)
{
    size_t kmax = 0;
    cl_ulong local = 0, used = 0;
    if (clGetKernelWorkGroupInfo(k, d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL) !=
            CL_SUCCESS ||
        kmax == 0)
        kmax = 1;
    if (clGetDeviceInfo(d->id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL) !=
        CL_SUCCESS)
        local = 0;
    if (clGetKernelWorkGroupInfo(k, d->id, CL_KERNEL_LOCAL_MEM_SIZE, sizeof used, &used, NULL) !=
        CL_SUCCESS)
        used = 0;
    cl_ulong room = local > used ? local - used : 0;
    size_t lanes = SORT_LANES_MAX;
    while (lanes > 1 && (lanes > kmax || (cl_ulong)lanes * 64 > room))
        lanes /= 2;
    return lanes;
}

static ferry_status sort_tile(void *ctx, const fk_sort_launch *p)
{
    sort_ctx *c = (sort_ctx *)ctx;
    ocl_device *d = c->d;
    cl_kernel k = c->tile.kernel;
    ferry_status st = FERRY_OK;
    for (int i = 0; st == FERRY_OK && i < 4; i++)
        st = ocl_arg(d, k, c->tile.name, (cl_uint)i, sizeof(cl_mem), &c->bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, c->tile.name, 4, sizeof *p, p);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, c->tile.name, 5, (size_t)(2 * p->tile) * sizeof(uint64_t), NULL);
    if (st != FERRY_OK)
        return st;
    size_t lanes = (size_t)(p->tile / 4);
    int64_t groups = fk_sort_tiles(p);
    /* The kernel loops over the tiles a capped grid leaves. */
    int64_t most = ((int64_t)1 << 30) / (int64_t)lanes;
    size_t global = (size_t)(groups < most ? groups : most) * lanes;
    cl_int err = clEnqueueNDRangeKernel(ocl_cq(d), k, 1, NULL, &global, &lanes, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return ocl_host->error(FERRY_ERR_BACKEND,
                               "opencl:%d: clEnqueueNDRangeKernel(ferry_sort_tile) failed: %s (%d)",
                               (int)d->index, ocl_error_name(err), (int)err);
    return FERRY_OK;
}

static ferry_status sort_step(void *ctx, const fk_sort_launch *p)
{
    sort_ctx *c = (sort_ctx *)ctx;
    const ocl_kernel *k = p->two ? &c->step2 : &c->step;
    ferry_status st = ocl_arg(c->d, k->kernel, k->name, 0, sizeof(cl_mem), &c->bufs[0]);
    if (st == FERRY_OK)
        st = ocl_arg(c->d, k->kernel, k->name, 1, sizeof *p, p);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(c->d, k, p->rows * (p->P / (p->two ? 4 : 2)));
    return st;
}

static ferry_status sort_merge(void *ctx, const fk_sort_launch *p)
{
    sort_ctx *c = (sort_ctx *)ctx;
    ferry_status st = FERRY_OK;
    for (int i = 0; st == FERRY_OK && i < 4; i++)
        st = ocl_arg(c->d, c->merge.kernel, c->merge.name, (cl_uint)i, sizeof(cl_mem), &c->bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(c->d, c->merge.kernel, c->merge.name, 4, sizeof *p, p);
    if (st == FERRY_OK)
        st = ocl_enqueue_kernel(c->d, &c->merge, fk_sort_merge_threads(p));
    return st;
}

/* A CPU device merges runs longer than a tile: linear work a level, where the bitonic
 * steps that suit a GPU's lockstep cost log2 of the run. FERRY_OPENCL_SORT_BITONIC=1
 * gives every device the GPU's schedule (tests). */
static bool sort_merges(const ocl_device *d)
{
    const char *bit = getenv("FERRY_OPENCL_SORT_BITONIC");
    return !d->gpu && !(bit && strcmp(bit, "1") == 0);
}

/* The sort's kernels into c; lock held. */
static ferry_status sort_kernels(ocl_device *d, sort_ctx *c)
{
    ferry_status st = ocl_named_kernel(d, "SORT", -1, "ferry_sort_tile", &c->tile);
    if (st == FERRY_OK)
        st = ocl_named_kernel(d, "SORT", -1, "ferry_sort_step", &c->step);
    if (st == FERRY_OK)
        st = ocl_named_kernel(d, "SORT", -1, "ferry_sort_step2", &c->step2);
    if (st == FERRY_OK)
        st = ocl_named_kernel(d, "SORT", -1, "ferry_sort_merge", &c->merge);
    return st;
}

int64_t ocl_sort_keys_words(const ocl_device *d, int64_t n)
{
    /* The most any tile gives (the merges' second region is only needed past a tile). */
    return sort_merges(d) ? 2 * n : n;
}

ferry_status ocl_sort_keys(ocl_device *d, cl_mem scr, int64_t n, int64_t *at)
{
    sort_ctx c = {d, {{0}, NULL, 0}, {{0}, NULL, 0}, {{0}, NULL, 0}, {{0}, NULL, 0},
                  {scr, scr, scr, scr}};
    *at = 0;
    if (n <= 1)
        return FERRY_OK;
    ferry_status st = sort_kernels(d, &c);
    if (st != FERRY_OK)
        return st;
    fk_sort_launch p;
    fk_sort_prepare_raw(&p, n, 4 * (int64_t)sort_lanes(d, c.tile.kernel), sort_merges(d));
    st = fk_sort_drive(&p, &c, sort_tile, sort_step, sort_merge);
    *at = p.dst_k;
    return st;
}

static ferry_status ocl_sort(int32_t device, const ferry_op_args *args)
{
    fk_plan_ctx pc = {ocl_host, "opencl", device};
    fk_sort_launch p;
    bool nothing;
    ferry_status st = fk_plan_sort(&pc, args, false, &p, &nothing);
    if (st != FERRY_OK || nothing)
        return st;
    ocl_device *d;
    if ((st = ocl_device_ready(device, &d)) != FERRY_OK)
        return st;
    const ferry_kernel_tensor *v = &args->tensors[0], *in = &args->tensors[p.has_idx ? 2 : 1];
    const ferry_kernel_tensor *ix = p.has_idx ? &args->tensors[1] : v;
    pthread_mutex_lock(&d->lock);
    sort_ctx c = {d, {{0}, NULL, 0}, {{0}, NULL, 0}, {{0}, NULL, 0}, {{0}, NULL, 0},
                  {NULL, v->buffer, ix->buffer, in->buffer}};
    st = sort_kernels(d, &c);
    if (st == FERRY_OK) {
        p.merge = sort_merges(d);
        int64_t words = fk_sort_prepare(&p, 4 * (int64_t)sort_lanes(d, c.tile.kernel));
        st = ocl_scratch(d, (size_t)words * sizeof(uint64_t), &c.bufs[0]);
    }
    if (st == FERRY_OK)
        st = fk_sort_drive(&p, &c, sort_tile, sort_step, sort_merge);
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

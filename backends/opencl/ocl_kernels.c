/* The kernel entries of the OpenCL backend other than matmul: fill, cast, strided copy,
 * unary, binary and reduce. Each has backends/kernels/fk_plan.c (shared with the CUDA
 * backend) turn the core's descriptors into launch structs and enqueues the shared kernels
 * on the device queue; what the kernels cannot take is refused with FERRY_ERR_UNSUPPORTED
 * (the core then runs it on the cpu backend). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h"

/* The planner's context: its refusals name opencl:<device>. */
static fk_plan_ctx ocl_ctx(int32_t device)
{
    fk_plan_ctx c = {ocl_host, "opencl", device};
    return c;
}

ferry_status ocl_check_fp64(const ocl_device *d, ferry_dtype dt)
{
    if (dt != FERRY_FLOAT64 || d->fp64)
        return FERRY_OK;
    return ocl_host->error(FERRY_ERR_UNSUPPORTED, "opencl:%d does not support float64 (no cl_khr_fp64)",
                           (int)d->index);
}

/* ---- launching ---------------------------------------------------------------------- */

ferry_status ocl_arg(ocl_device *d, cl_kernel k, const char *name, cl_uint i, size_t size,
                     const void *value)
{
    cl_int err = clSetKernelArg(k, i, size, value);
    if (err != CL_SUCCESS)
        return ocl_host->error(FERRY_ERR_BACKEND,
                               "opencl:%d: clSetKernelArg(%s, %u) failed: %s (%d)",
                               (int)d->index, name, (unsigned)i, ocl_error_name(err), (int)err);
    return FERRY_OK;
}

static ferry_status ocl_enqueue_1d(ocl_device *d, cl_kernel k, size_t wg, const char *name,
                                   int64_t n)
{
    if (n <= 0)
        return FERRY_OK;
    size_t ls = wg ? wg : 1;
    /* One thread per element, which PoCL turns into a vectorizable loop; a grid of more
     * than 2^30 threads is capped and the kernels' grid-stride loops cover the rest. */
    size_t want = (size_t)n < ((size_t)1 << 30) ? (size_t)n : ((size_t)1 << 30);
    size_t global = (want + ls - 1) / ls * ls;
    cl_int err = clEnqueueNDRangeKernel(ocl_cq(d), k, 1, NULL, &global, &ls, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return ocl_host->error(FERRY_ERR_BACKEND,
                               "opencl:%d: clEnqueueNDRangeKernel(%s) failed: %s (%d)",
                               (int)d->index, name, ocl_error_name(err), (int)err);
    return FERRY_OK;
}

ferry_status ocl_enqueue(ocl_device *d, int slot, const char *name, int64_t n)
{
    return ocl_enqueue_1d(d, d->kernels[slot], d->wg[slot], name, n);
}

ferry_status ocl_enqueue_kernel(ocl_device *d, const ocl_kernel *k, int64_t n)
{
    return ocl_enqueue_1d(d, k->kernel, k->wg, k->name, n);
}

ferry_status ocl_scratch(ocl_device *d, size_t nbytes, cl_mem *out)
{
    if (nbytes == 0)
        nbytes = 1;
    ocl_queue *q = ocl_current(d);
    if (q->scratch && q->scratch_size >= nbytes) {
        *out = q->scratch;
        return FERRY_OK;
    }
    /* Work queued on the old buffer keeps it alive in the driver. */
    if (q->scratch)
        clReleaseMemObject(q->scratch);
    q->scratch = NULL;
    q->scratch_size = 0;
    size_t size = (nbytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    cl_int err;
    cl_mem m = clCreateBuffer(d->context, CL_MEM_READ_WRITE, size, NULL, &err);
    if (!m)
        return ocl_host->error(err == CL_MEM_OBJECT_ALLOCATION_FAILURE ||
                                       err == CL_OUT_OF_HOST_MEMORY || err == CL_INVALID_BUFFER_SIZE
                                   ? FERRY_ERR_OUT_OF_MEMORY
                                   : FERRY_ERR_BACKEND,
                               "opencl:%d: clCreateBuffer of %zu bytes of scratch failed: %s (%d)",
                               (int)d->index, size, ocl_error_name(err), (int)err);
    q->scratch = m;
    q->scratch_size = size;
    *out = m;
    return FERRY_OK;
}

void ocl_scratch_trim(ocl_device *d)
{
    ocl_queue *q = ocl_current(d);
    /* Small temporaries are kept for the next op; a large one is not worth holding. */
    if (q->scratch && q->scratch_size > ((size_t)64 << 20)) {
        clReleaseMemObject(q->scratch);
        q->scratch = NULL;
        q->scratch_size = 0;
    }
}

/* Sets buffer arguments 0..nbufs-1, then the geometry, then `op` when op >= 0, and
 * enqueues over numel threads. Lock held. */
static ferry_status ocl_run(ocl_device *d, int slot, const char *name, int nbufs,
                            const cl_mem *bufs, const void *geom, size_t geom_size, int op,
                            int64_t threads)
{
    cl_kernel k;
    ferry_status st = ocl_kernel_get(d, slot, name, &k);
    cl_uint i = 0;
    for (; st == FERRY_OK && i < (cl_uint)nbufs; i++)
        st = ocl_arg(d, k, name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, name, i++, geom_size, geom);
    cl_int op32 = op;
    if (st == FERRY_OK && op >= 0)
        st = ocl_arg(d, k, name, i++, sizeof op32, &op32);
    if (st == FERRY_OK)
        st = ocl_enqueue(d, slot, name, threads);
    return st;
}

/* Fewest elements of a work-item's run in a dense launch on a CPU device; runs are a
 * multiple of OCL_DENSE_ALIGN elements, so each starts on a cache line. */
#define OCL_DENSE_MIN_RUN 512
#define OCL_DENSE_ALIGN 64
/* Work-groups per compute unit a run launch aims for: enough for PoCL's threads to even
 * out on a loaded machine. */
#define OCL_DENSE_GROUPS_PER_CU 8

int64_t ocl_run_length(const ocl_device *d, size_t wg, int64_t n, int64_t min_run,
                       int64_t align)
{
    const char *force = getenv("FERRY_OPENCL_DENSE");
    bool run = !d->gpu;
    if (force && strcmp(force, "run") == 0)
        run = true;
    else if (force && strcmp(force, "grid") == 0)
        run = false;
    if (!run || n <= 0)
        return 0;
    int64_t target =
        (int64_t)d->compute_units * OCL_DENSE_GROUPS_PER_CU * (int64_t)(wg ? wg : 1);
    int64_t chunk = (n + target - 1) / target;
    /* The grid is capped at 2^30 work-items (ocl_enqueue_1d); the runs must cover n. */
    int64_t least = (n + ((int64_t)1 << 30) - 1) >> 30;
    if (chunk < least)
        chunk = least;
    if (chunk < min_run)
        chunk = min_run;
    return (chunk + align - 1) / align * align;
}

/* The threads an elementwise launch of g takes, setting g->chunk: on a CPU device a
 * dense launch gives each work-item a run of its own, which the device compiler
 * vectorizes (ferry_kernels.h, FK_DENSE_FOR); GPUs keep one element per thread. */
static int64_t ocl_dense_threads(const ocl_device *d, fk_geom *g)
{
    g->chunk = g->flags & FK_CONTIG ? ocl_run_length(d, d->local_size, g->numel,
                                                     OCL_DENSE_MIN_RUN, OCL_DENSE_ALIGN)
                                    : 0;
    return g->chunk ? (g->numel + g->chunk - 1) / g->chunk : g->numel;
}

/* One elementwise launch of g (lock held). */
static ferry_status ocl_run_geom(ocl_device *d, int slot, const char *name, int nbufs,
                                 const cl_mem *bufs, fk_geom *g, int op)
{
    int64_t threads = ocl_dense_threads(d, g);
    return ocl_run(d, slot, name, nbufs, bufs, g, sizeof *g, op, threads);
}

/* Takes the device lock around one elementwise launch. */
static ferry_status ocl_run_locked(ocl_device *d, int slot, const char *name, int nbufs,
                                   const cl_mem *bufs, fk_geom *g, int op)
{
    pthread_mutex_lock(&d->lock);
    ferry_status st = ocl_run_geom(d, slot, name, nbufs, bufs, g, op);
    pthread_mutex_unlock(&d->lock);
    return st;
}

/* ---- fill, copy, cast ----------------------------------------------------------------- */

ferry_status ocl_fill(void *ctx, int32_t device, const ferry_kernel_tensor *out, const void *value)
{
    ocl_device *d;
    fk_plan_ctx c = ocl_ctx(device);
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_dtype(&c, out->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[1] = {out};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 1, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    /* Bits, not numbers: float64 fills need no cl_khr_fp64. `value` may be unaligned. */
    size_t size = fk_dtype_size(out->dtype);
    uint64_t bits = 0;
    memcpy(&bits, value, size);
    cl_mem buf = (cl_mem)out->buffer;
    if (g.flags & FK_CONTIG) {
        cl_int err = clEnqueueFillBuffer(ocl_cq(d), buf, &bits, size, (size_t)g.offset[0] * size,
                                         (size_t)g.numel * size, 0, NULL, NULL);
        return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueFillBuffer", err);
    }
    static const char *const names[4] = {"ferry_fill_w8", "ferry_fill_w16", "ferry_fill_w32",
                                         "ferry_fill_w64"};
    int lg = fk_width_log2(size);
    int slot = OCL_K_FILL + lg;
    pthread_mutex_lock(&d->lock);
    cl_kernel k;
    st = ocl_kernel_get(d, slot, names[lg], &k);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, names[lg], 0, sizeof buf, &buf);
    if (st == FERRY_OK) {
        /* The value argument has the element's width (little-endian host and device). */
        st = ocl_arg(d, k, names[lg], 1, size, &bits);
    }
    if (st == FERRY_OK)
        st = ocl_arg(d, k, names[lg], 2, sizeof g, &g);
    if (st == FERRY_OK)
        st = ocl_enqueue(d, slot, names[lg], g.numel);
    pthread_mutex_unlock(&d->lock);
    return st;
}

ferry_status ocl_copy_strided(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                              const ferry_kernel_tensor *in)
{
    ocl_device *d;
    fk_plan_ctx c = ocl_ctx(device);
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_check_copy(&c, out, in);
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    size_t size = fk_dtype_size(out->dtype);
    size_t nbytes = (size_t)g.numel * size;
    if ((g.flags & FK_CONTIG) && !fk_plan_overlap(out, in, nbytes)) {
        cl_int err = clEnqueueCopyBuffer(ocl_cq(d), (cl_mem)in->buffer, (cl_mem)out->buffer,
                                         in->byte_offset, out->byte_offset, nbytes, 0, NULL, NULL);
        return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueCopyBuffer", err);
    }
    static const char *const names[4] = {"ferry_copy_w8", "ferry_copy_w16", "ferry_copy_w32",
                                         "ferry_copy_w64"};
    int lg = fk_width_log2(size);
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)in->buffer};
    return ocl_run_locked(d, OCL_K_COPY + lg, names[lg], 2, bufs, &g, -1);
}

ferry_status ocl_copy_elements(ocl_device *d, size_t elsize, int ndim, const int64_t *shape,
                               cl_mem dst, int64_t dst_off, const int64_t *dst_strides,
                               cl_mem src, int64_t src_off, const int64_t *src_strides)
{
    ferry_kernel_tensor kd = {dst, (size_t)dst_off * elsize, FERRY_UINT8, ndim, shape,
                              dst_strides, sizeof kd};
    ferry_kernel_tensor ks = {src, (size_t)src_off * elsize, FERRY_UINT8, ndim, shape,
                              src_strides, sizeof ks};
    static const ferry_dtype by_size[4] = {FERRY_UINT8, FERRY_INT16, FERRY_INT32, FERRY_INT64};
    int lg = fk_width_log2(elsize);
    kd.dtype = ks.dtype = by_size[lg];
    fk_geom g;
    fk_plan_ctx c = ocl_ctx(d->index);
    const ferry_kernel_tensor *ops[2] = {&kd, &ks};
    ferry_status st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    static const char *const names[4] = {"ferry_copy_w8", "ferry_copy_w16", "ferry_copy_w32",
                                         "ferry_copy_w64"};
    cl_mem bufs[2] = {dst, src};
    return ocl_run_geom(d, OCL_K_COPY + lg, names[lg], 2, bufs, &g, -1);
}

static void ocl_cast_name(ferry_dtype from, ferry_dtype to, char *buf, size_t cap)
{
    snprintf(buf, cap, "ferry_cast_%s_%s", fk_dtype_sfx[from], fk_dtype_sfx[to]);
}

ferry_status ocl_cast_dense(ocl_device *d, ferry_dtype to, cl_mem dst, int64_t dst_off,
                            ferry_dtype from, cl_mem src, int64_t src_off, int64_t n)
{
    fk_geom g;
    fk_plan_dense(&g, n, dst_off, src_off);
    char name[64];
    ocl_cast_name(from, to, name, sizeof name);
    cl_mem bufs[2] = {dst, src};
    return ocl_run_geom(d, OCL_K_CAST + (int)from * FERRY_NUM_DTYPES + (int)to, name, 2, bufs,
                        &g, -1);
}

ferry_status ocl_cast_held(ocl_device *d, const ferry_kernel_tensor *out,
                           const ferry_kernel_tensor *in)
{
    fk_geom g;
    fk_plan_ctx c = ocl_ctx(d->index);
    const ferry_kernel_tensor *ops[2] = {out, in};
    ferry_status st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[64];
    ocl_cast_name(in->dtype, out->dtype, name, sizeof name);
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)in->buffer};
    return ocl_run_geom(d, OCL_K_CAST + (int)in->dtype * FERRY_NUM_DTYPES + (int)out->dtype, name,
                        2, bufs, &g, -1);
}

ferry_status ocl_cast(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                      const ferry_kernel_tensor *in)
{
    if (out->dtype == in->dtype)
        return ocl_copy_strided(ctx, device, out, in);
    ocl_device *d;
    fk_plan_ctx c = ocl_ctx(device);
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_check_cast(&c, out, in);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, in->dtype);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, out->dtype);
    if (st != FERRY_OK)
        return st;
    pthread_mutex_lock(&d->lock);
    st = ocl_cast_held(d, out, in);
    pthread_mutex_unlock(&d->lock);
    return st;
}

/* ---- unary and binary --------------------------------------------------------------- */

ferry_status ocl_unary(void *ctx, int32_t device, ferry_unary_op op, const ferry_kernel_tensor *out,
                       const ferry_kernel_tensor *in)
{
    ocl_device *d;
    fk_plan_ctx c = ocl_ctx(device);
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_check_unary(&c, op, out, in);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, in->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_unary_%s", fk_dtype_sfx[in->dtype]);
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)in->buffer};
    return ocl_run_locked(d, OCL_K_UNARY + (int)in->dtype, name, 2, bufs, &g, (int)op);
}

ferry_status ocl_binary(void *ctx, int32_t device, ferry_binary_op op,
                        const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    ocl_device *d;
    fk_plan_ctx c = ocl_ctx(device);
    bool compare = false;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_check_binary(&c, op, out, a, b, &compare);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, a->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[3] = {out, a, b};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 3, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    bool dense = !compare && (g.flags & FK_CONTIG);
    snprintf(name, sizeof name, "ferry_%s_%s", compare ? "compare" : dense ? "binary_dense" : "binary",
             fk_dtype_sfx[a->dtype]);
    cl_mem bufs[3] = {(cl_mem)out->buffer, (cl_mem)a->buffer, (cl_mem)b->buffer};
    int slot = compare ? OCL_K_COMPARE : dense ? OCL_K_BINARY_DENSE : OCL_K_BINARY;
    return ocl_run_locked(d, slot + (int)a->dtype, name, 3, bufs, &g, (int)op);
}

/* The scalar is a kernel argument by value: no buffer, no upload, no wait for one. */
ferry_status ocl_binary_scalar(void *ctx, int32_t device, ferry_binary_op op,
                               const ferry_kernel_tensor *out,
                               const ferry_kernel_tensor *a, const ferry_kernel_scalar *b)
{
    ocl_device *d;
    fk_plan_ctx c = ocl_ctx(device);
    bool compare = false;
    unsigned char y[8];
    size_t ysize = 0;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_check_binary_scalar(&c, op, out, a, b, &compare, y, &ysize);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, a->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, a};
    if (st == FERRY_OK)
        st = fk_plan_geom(&c, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_%s_scalar_%s", compare ? "compare" : "binary",
             fk_dtype_sfx[a->dtype]);
    int slot = (compare ? OCL_K_COMPARE_SCALAR : OCL_K_BINARY_SCALAR) + (int)a->dtype;
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)a->buffer};
    cl_int op32 = (cl_int)op;
    pthread_mutex_lock(&d->lock);
    int64_t threads = ocl_dense_threads(d, &g);
    cl_kernel k;
    st = ocl_kernel_get(d, slot, name, &k);
    for (cl_uint i = 0; st == FERRY_OK && i < 2; i++)
        st = ocl_arg(d, k, name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, name, 2, sizeof g, &g);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, name, 3, sizeof op32, &op32);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, name, 4, ysize, y);
    if (st == FERRY_OK)
        st = ocl_enqueue(d, slot, name, threads);
    pthread_mutex_unlock(&d->lock);
    return st;
}

/* ---- reduce ------------------------------------------------------------------------- */

/* Threads one pass aims for: enough to fill a GPU or every core of PoCL. */
#define OCL_REDUCE_THREADS 16384

/* Work-group lanes of the sums over one dim: the device's work-group size on a GPU,
 * whose neighbouring threads should read neighbouring elements; none on a CPU, where
 * each thread reading its own run is what the caches and the vectorizer want.
 * FERRY_OPENCL_REDUCE=wg or =thread picks one on every device (tests run both on PoCL). */
static int ocl_reduce_lanes(const ocl_device *d)
{
    const char *force = getenv("FERRY_OPENCL_REDUCE");
    bool wg = d->gpu;
    if (force && strcmp(force, "wg") == 0)
        wg = true;
    else if (force && strcmp(force, "thread") == 0)
        wg = false;
    return wg ? (int)d->local_size : 0;
}

/* The most lanes a work-group pass of the sum kernel for dt may take: the device's
 * work-group size, halved until it is within the kernel's CL_KERNEL_WORK_GROUP_SIZE
 * (ocl_kernel_get records it; private arrays and local memory can make it smaller than
 * the device's limit). Lock held. */
static ferry_status ocl_sum_wg_lanes(ocl_device *d, ferry_dtype dt, int *lanes)
{
    char name[48];
    snprintf(name, sizeof name, "ferry_sum_wg_%s", fk_dtype_sfx[dt]);
    cl_kernel k;
    ferry_status st = ocl_kernel_get(d, OCL_K_SUM_WG + (int)dt, name, &k);
    if (st == FERRY_OK && (int)d->wg[OCL_K_SUM_WG + (int)dt] < *lanes)
        *lanes = (int)d->wg[OCL_K_SUM_WG + (int)dt];
    return st;
}

/* Plans a reduction; a work-group plan is remade with fewer lanes when a kernel it runs
 * takes fewer than the device's work-group size. Lock held. */
static ferry_status ocl_plan_reduce(ocl_device *d, fk_plan_ctx *c, ferry_reduce_op op,
                                    const ferry_kernel_tensor *out,
                                    const ferry_kernel_tensor *in, fk_reduce_plan *p)
{
    int want = ocl_reduce_lanes(d);
    ferry_status st = fk_plan_reduce(c, op, out, in, OCL_REDUCE_THREADS, want, p);
    if (st != FERRY_OK || p->empty || !p->wg)
        return st;
    int lanes = want;
    st = ocl_sum_wg_lanes(d, p->kdtype, &lanes);
    /* Later passes read the partials in the accumulator's dtype. */
    if (st == FERRY_OK && !p->final && p->acc_dtype != p->kdtype)
        st = ocl_sum_wg_lanes(d, p->acc_dtype, &lanes);
    if (st == FERRY_OK && lanes < want)
        st = fk_plan_reduce(c, op, out, in, OCL_REDUCE_THREADS, lanes, p);
    return st;
}

/* A work-group pass: groups of g.lanes threads, as many as the grid cap allows. */
static ferry_status ocl_run_wg(ocl_device *d, int slot, const char *name, const cl_mem *bufs,
                               const fk_reduce_plan *p)
{
    cl_kernel k;
    ferry_status st = ocl_kernel_get(d, slot, name, &k);
    for (cl_uint i = 0; st == FERRY_OK && i < 2; i++)
        st = ocl_arg(d, k, name, i, sizeof(cl_mem), &bufs[i]);
    if (st == FERRY_OK)
        st = ocl_arg(d, k, name, 2, sizeof p->g, &p->g);
    if (st != FERRY_OK)
        return st;
    size_t lanes = (size_t)p->g.lanes, kmax = 0;
    if (clGetKernelWorkGroupInfo(k, d->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL) ==
            CL_SUCCESS &&
        kmax < lanes)
        return ocl_host->error(FERRY_ERR_BACKEND,
                               "opencl:%d: %s takes work-groups of at most %zu, not %zu",
                               (int)d->index, name, kmax, lanes);
    return ocl_enqueue_1d(d, k, lanes, name, p->threads);
}

ferry_status ocl_reduce(void *ctx, int32_t device, ferry_reduce_op op,
                        const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *in)
{
    ocl_device *d;
    fk_plan_ctx c = ocl_ctx(device);
    fk_reduce_plan p;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, in->dtype);
    if (st != FERRY_OK)
        return st;

    static const int families[3] = {OCL_K_SUM, OCL_K_MAXMIN, OCL_K_ARGMAX};
    static const char *const family_names[3] = {"sum", "maxmin", "argmax"};
    pthread_mutex_lock(&d->lock);
    st = ocl_plan_reduce(d, &c, op, out, in, &p);
    if (st != FERRY_OK || p.empty) {
        pthread_mutex_unlock(&d->lock);
        return st;
    }
    cl_mem scratch = NULL;
    if (p.scratch_bytes > 0)
        st = ocl_scratch(d, p.scratch_bytes, &scratch);
    /* The first pass reads the tensor; later ones the previous pass's partials. */
    cl_mem src = (cl_mem)in->buffer, src_idx = NULL;
    while (st == FERRY_OK) {
        cl_mem dst = p.final ? (cl_mem)out->buffer : scratch;
        int slot = families[p.family] + (int)p.kdtype;
        char name[48];
        if (p.pass > 0 && p.family == FK_PLAN_ARGMAX) {
            slot = OCL_K_ARGMAX_PART + (int)p.kdtype;
            snprintf(name, sizeof name, "ferry_argmax_part_%s", fk_dtype_sfx[p.kdtype]);
            cl_mem bufs[4] = {src, src_idx, dst, dst};
            st = ocl_run(d, slot, name, 4, bufs, &p.g, sizeof p.g, -1, p.threads);
        } else if (p.family == FK_PLAN_ARGMAX) {
            snprintf(name, sizeof name, "ferry_argmax_%s", fk_dtype_sfx[p.kdtype]);
            cl_mem bufs[3] = {src, dst, dst};
            st = ocl_run(d, slot, name, 3, bufs, &p.g, sizeof p.g, -1, p.threads);
        } else if (p.g.flags & FK_RED_COLS) {
            snprintf(name, sizeof name, "ferry_sum_cols_%s", fk_dtype_sfx[p.kdtype]);
            cl_mem bufs[2] = {src, dst};
            st = ocl_run(d, OCL_K_SUM_COLS + (int)p.kdtype, name, 2, bufs, &p.g, sizeof p.g, -1,
                         p.threads);
        } else if (p.wg) {
            snprintf(name, sizeof name, "ferry_sum_wg_%s", fk_dtype_sfx[p.kdtype]);
            cl_mem bufs[2] = {src, dst};
            st = ocl_run_wg(d, OCL_K_SUM_WG + (int)p.kdtype, name, bufs, &p);
        } else {
            snprintf(name, sizeof name, "ferry_%s_%s", family_names[p.family],
                     fk_dtype_sfx[p.kdtype]);
            cl_mem bufs[2] = {src, dst};
            st = ocl_run(d, slot, name, 2, bufs, &p.g, sizeof p.g, -1, p.threads);
        }
        if (p.final || st != FERRY_OK)
            break;
        src = src_idx = scratch;
        fk_plan_reduce_next(&p);
    }
    ocl_scratch_trim(d);
    pthread_mutex_unlock(&d->lock);
    return st;
}

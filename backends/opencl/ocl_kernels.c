/* The kernel entries of the OpenCL backend other than matmul: fill, cast, strided copy,
 * unary, binary and reduce. Each turns the core's descriptors into the launch structs of
 * backends/kernels/ferry_kernels.h and enqueues the shared kernels on the device queue;
 * what the kernels cannot take is refused with FERRY_ERR_UNSUPPORTED (the core then runs
 * it on the cpu backend). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl_internal.h"

/* The kernels number their ops as backend.h does. */
_Static_assert(FK_UN_NEG == FERRY_UNARY_NEG && FK_UN_RELU == FERRY_UNARY_RELU &&
                   FK_UN_SIGMOID == FERRY_UNARY_SIGMOID,
               "unary op numbers");
_Static_assert(FK_BIN_ADD == FERRY_BINARY_ADD && FK_BIN_MINIMUM == FERRY_BINARY_MINIMUM &&
                   FK_BIN_EQ == FERRY_BINARY_EQ && FK_BIN_GE == FERRY_BINARY_GE,
               "binary op numbers");
_Static_assert(FK_RED_SUM == FERRY_REDUCE_SUM && FK_RED_MAX == FERRY_REDUCE_MAX &&
                   FK_RED_MIN == FERRY_REDUCE_MIN && FK_RED_ARGMAX == FERRY_REDUCE_ARGMAX,
               "reduce op numbers");

/* Kernel name suffixes, in ferry_dtype order (as the kernels' dtype table). */
const char *const ocl_dtype_sfx[FERRY_NUM_DTYPES] = {"bool", "u8",   "i8",  "i16", "i32",
                                                     "i64",  "f16", "bf16", "f32", "f64"};

/* For messages; the plugin does not link libferry's ferry_dtype_name(). */
static const char *ocl_dtype_name(ferry_dtype dt)
{
    static const char *const names[FERRY_NUM_DTYPES] = {
        "bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
        "float64"};
    return (unsigned)dt < FERRY_NUM_DTYPES ? names[dt] : "an unknown dtype";
}

size_t ocl_dtype_size(ferry_dtype dt)
{
    static const size_t sizes[FERRY_NUM_DTYPES] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};
    return (unsigned)dt < FERRY_NUM_DTYPES ? sizes[dt] : 0;
}

static int ocl_log2(size_t size)
{
    return size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;
}

static bool ocl_is_float(ferry_dtype dt)
{
    return dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16 || dt == FERRY_FLOAT32 ||
           dt == FERRY_FLOAT64;
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

ferry_status ocl_enqueue(ocl_device *d, int slot, const char *name, int64_t n)
{
    if (n <= 0)
        return FERRY_OK;
    size_t ls = d->wg[slot] ? d->wg[slot] : 1;
    /* One thread per element, which PoCL turns into a vectorizable loop; a grid of more
     * than 2^30 threads is capped and the kernels' grid-stride loops cover the rest. */
    size_t want = (size_t)n < ((size_t)1 << 30) ? (size_t)n : ((size_t)1 << 30);
    size_t global = (want + ls - 1) / ls * ls;
    cl_int err = clEnqueueNDRangeKernel(d->queue, d->kernels[slot], 1, NULL, &global, &ls, 0,
                                        NULL, NULL);
    if (err != CL_SUCCESS)
        return ocl_host->error(FERRY_ERR_BACKEND,
                               "opencl:%d: clEnqueueNDRangeKernel(%s) failed: %s (%d)",
                               (int)d->index, name, ocl_error_name(err), (int)err);
    return FERRY_OK;
}

ferry_status ocl_scratch(ocl_device *d, size_t nbytes, cl_mem *out)
{
    if (nbytes == 0)
        nbytes = 1;
    if (d->scratch && d->scratch_size >= nbytes) {
        *out = d->scratch;
        return FERRY_OK;
    }
    /* Work queued on the old buffer keeps it alive in the driver. */
    if (d->scratch)
        clReleaseMemObject(d->scratch);
    d->scratch = NULL;
    d->scratch_size = 0;
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
    d->scratch = m;
    d->scratch_size = size;
    *out = m;
    return FERRY_OK;
}

void ocl_scratch_trim(ocl_device *d)
{
    /* Small temporaries are kept for the next op; a large one is not worth holding. */
    if (d->scratch && d->scratch_size > ((size_t)64 << 20)) {
        clReleaseMemObject(d->scratch);
        d->scratch = NULL;
        d->scratch_size = 0;
    }
}

/* ---- geometry ------------------------------------------------------------------------ */

/* The element offset of a descriptor; FERRY_ERR_UNSUPPORTED when its byte offset is not
 * a multiple of the element size (the kernels index whole elements). */
static ferry_status ocl_elem_offset(const ocl_device *d, const ferry_kernel_tensor *t,
                                    int64_t *out)
{
    size_t size = ocl_dtype_size(t->dtype);
    if (t->byte_offset % size != 0)
        return ocl_host->error(FERRY_ERR_UNSUPPORTED,
                               "opencl:%d: byte offset %zu is not a multiple of the %zu-byte "
                               "element size",
                               (int)d->index, t->byte_offset, size);
    *out = (int64_t)(t->byte_offset / size);
    return FERRY_OK;
}

/* Launch geometry of up to three operands of shape (ndim, shape): extent-1 dims dropped,
 * and a dim merged into its inner neighbour when every operand steps over both as one
 * run. FERRY_ERR_UNSUPPORTED when more than FK_MAX_DIMS dims remain. */
static ferry_status ocl_geom(const ocl_device *d, fk_geom *g, int nops,
                             const ferry_kernel_tensor *const *ops)
{
    memset(g, 0, sizeof *g);
    const ferry_kernel_tensor *o = ops[0];
    if (o->ndim < 0 || o->ndim > FERRY_MAX_DIMS)
        return ocl_host->error(FERRY_ERR_INVALID_ARGUMENT, "opencl:%d: %d dimensions",
                               (int)d->index, (int)o->ndim);
    for (int k = 1; k < nops; k++) {
        if (ops[k]->ndim != o->ndim)
            return ocl_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                   "opencl:%d: operands have %d and %d dimensions",
                                   (int)d->index, (int)ops[k]->ndim, (int)o->ndim);
        for (int i = 0; i < o->ndim; i++)
            if (ops[k]->shape[i] != o->shape[i])
                return ocl_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                       "opencl:%d: extent %lld differs from %lld in dimension %d",
                                       (int)d->index, (long long)ops[k]->shape[i],
                                       (long long)o->shape[i], i);
    }
    int64_t numel = 1;
    for (int i = 0; i < o->ndim; i++)
        numel *= o->shape[i];
    g->numel = numel;
    for (int k = 0; k < nops; k++) {
        ferry_status st = ocl_elem_offset(d, ops[k], &g->offset[k]);
        if (st != FERRY_OK)
            return st;
    }
    if (numel == 0)
        return FERRY_OK;
    /* Innermost first, then reversed, so a merge only looks at one neighbour. */
    int64_t sh[FERRY_MAX_DIMS], st[3][FERRY_MAX_DIMS];
    int n = 0;
    for (int i = o->ndim - 1; i >= 0; i--) {
        if (o->shape[i] == 1)
            continue;
        bool merge = n > 0;
        for (int k = 0; merge && k < nops; k++)
            merge = ops[k]->strides[i] == st[k][n - 1] * sh[n - 1];
        if (merge) {
            sh[n - 1] *= o->shape[i];
            continue;
        }
        sh[n] = o->shape[i];
        for (int k = 0; k < nops; k++)
            st[k][n] = ops[k]->strides[i];
        n++;
    }
    if (n > FK_MAX_DIMS)
        return ocl_host->error(FERRY_ERR_UNSUPPORTED,
                               "opencl:%d: %d dimensions remain after merging; the kernels walk "
                               "at most %d",
                               (int)d->index, n, FK_MAX_DIMS);
    g->ndim = n;
    for (int i = 0; i < n; i++) {
        g->shape[i] = sh[n - 1 - i];
        for (int k = 0; k < nops; k++)
            g->stride[k][i] = st[k][n - 1 - i];
    }
    bool dense = n == 0;
    if (n == 1) {
        dense = true;
        for (int k = 0; k < nops; k++)
            dense = dense && g->stride[k][0] == 1;
    }
    g->flags = (dense ? FK_CONTIG : 0) | (numel <= INT32_MAX ? FK_INDEX32 : 0);
    return FERRY_OK;
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

/* Takes the device lock around one elementwise launch. */
static ferry_status ocl_run_locked(ocl_device *d, int slot, const char *name, int nbufs,
                                   const cl_mem *bufs, const fk_geom *g, int op)
{
    pthread_mutex_lock(&d->lock);
    ferry_status st = ocl_run(d, slot, name, nbufs, bufs, g, sizeof *g, op, g->numel);
    pthread_mutex_unlock(&d->lock);
    return st;
}

static ferry_status ocl_check_dtype(const ocl_device *d, ferry_dtype dt)
{
    if (!ocl_dtype_size(dt))
        return ocl_host->error(FERRY_ERR_UNSUPPORTED, "opencl:%d: unknown dtype value %d",
                               (int)d->index, (int)dt);
    return FERRY_OK;
}

/* ---- fill, copy, cast ----------------------------------------------------------------- */

ferry_status ocl_fill(int32_t device, const ferry_kernel_tensor *out, const void *value)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_dtype(d, out->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[1] = {out};
    if (st == FERRY_OK)
        st = ocl_geom(d, &g, 1, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    /* Bits, not numbers: float64 fills need no cl_khr_fp64. `value` may be unaligned. */
    size_t size = ocl_dtype_size(out->dtype);
    uint64_t bits = 0;
    memcpy(&bits, value, size);
    cl_mem buf = (cl_mem)out->buffer;
    if (g.flags & FK_CONTIG) {
        cl_int err = clEnqueueFillBuffer(d->queue, buf, &bits, size, (size_t)g.offset[0] * size,
                                         (size_t)g.numel * size, 0, NULL, NULL);
        return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueFillBuffer", err);
    }
    static const char *const names[4] = {"ferry_fill_w8", "ferry_fill_w16", "ferry_fill_w32",
                                         "ferry_fill_w64"};
    int lg = ocl_log2(size);
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

static bool ocl_regions_overlap(const ferry_kernel_tensor *a, const ferry_kernel_tensor *b,
                                size_t nbytes)
{
    return a->buffer == b->buffer && a->byte_offset < b->byte_offset + nbytes &&
           b->byte_offset < a->byte_offset + nbytes;
}

ferry_status ocl_copy_strided(int32_t device, const ferry_kernel_tensor *out,
                              const ferry_kernel_tensor *in)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_dtype(d, out->dtype);
    if (st == FERRY_OK && in->dtype != out->dtype)
        st = ocl_host->error(FERRY_ERR_INVALID_ARGUMENT,
                             "opencl:%d: copy_strided: dtypes %s and %s differ; use cast",
                             (int)device, ocl_dtype_name(in->dtype), ocl_dtype_name(out->dtype));
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    if (st == FERRY_OK)
        st = ocl_geom(d, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    size_t size = ocl_dtype_size(out->dtype);
    size_t nbytes = (size_t)g.numel * size;
    if ((g.flags & FK_CONTIG) && !ocl_regions_overlap(out, in, nbytes)) {
        cl_int err = clEnqueueCopyBuffer(d->queue, (cl_mem)in->buffer, (cl_mem)out->buffer,
                                         in->byte_offset, out->byte_offset, nbytes, 0, NULL, NULL);
        return err == CL_SUCCESS ? FERRY_OK : ocl_fail(device, "clEnqueueCopyBuffer", err);
    }
    static const char *const names[4] = {"ferry_copy_w8", "ferry_copy_w16", "ferry_copy_w32",
                                         "ferry_copy_w64"};
    int lg = ocl_log2(size);
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)in->buffer};
    return ocl_run_locked(d, OCL_K_COPY + lg, names[lg], 2, bufs, &g, -1);
}

ferry_status ocl_copy_elements(ocl_device *d, size_t elsize, int ndim, const int64_t *shape,
                               cl_mem dst, int64_t dst_off, const int64_t *dst_strides,
                               cl_mem src, int64_t src_off, const int64_t *src_strides)
{
    ferry_kernel_tensor kd = {dst, (size_t)dst_off * elsize, FERRY_UINT8, ndim, shape,
                              dst_strides};
    ferry_kernel_tensor ks = {src, (size_t)src_off * elsize, FERRY_UINT8, ndim, shape,
                              src_strides};
    static const ferry_dtype by_size[4] = {FERRY_UINT8, FERRY_INT16, FERRY_INT32, FERRY_INT64};
    int lg = ocl_log2(elsize);
    kd.dtype = ks.dtype = by_size[lg];
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {&kd, &ks};
    ferry_status st = ocl_geom(d, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    static const char *const names[4] = {"ferry_copy_w8", "ferry_copy_w16", "ferry_copy_w32",
                                         "ferry_copy_w64"};
    cl_mem bufs[2] = {dst, src};
    return ocl_run(d, OCL_K_COPY + lg, names[lg], 2, bufs, &g, sizeof g, -1, g.numel);
}

static void ocl_cast_name(ferry_dtype from, ferry_dtype to, char *buf, size_t cap)
{
    snprintf(buf, cap, "ferry_cast_%s_%s", ocl_dtype_sfx[from], ocl_dtype_sfx[to]);
}

ferry_status ocl_cast_dense(ocl_device *d, ferry_dtype to, cl_mem dst, int64_t dst_off,
                            ferry_dtype from, cl_mem src, int64_t src_off, int64_t n)
{
    fk_geom g;
    memset(&g, 0, sizeof g);
    g.numel = n;
    g.ndim = 1;
    g.shape[0] = n;
    g.stride[0][0] = g.stride[1][0] = 1;
    g.offset[0] = dst_off;
    g.offset[1] = src_off;
    g.flags = FK_CONTIG | (n <= INT32_MAX ? FK_INDEX32 : 0);
    char name[64];
    ocl_cast_name(from, to, name, sizeof name);
    cl_mem bufs[2] = {dst, src};
    return ocl_run(d, OCL_K_CAST + (int)from * FERRY_NUM_DTYPES + (int)to, name, 2, bufs, &g,
                   sizeof g, -1, n);
}

ferry_status ocl_cast_held(ocl_device *d, const ferry_kernel_tensor *out,
                           const ferry_kernel_tensor *in)
{
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    ferry_status st = ocl_geom(d, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[64];
    ocl_cast_name(in->dtype, out->dtype, name, sizeof name);
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)in->buffer};
    return ocl_run(d, OCL_K_CAST + (int)in->dtype * FERRY_NUM_DTYPES + (int)out->dtype, name, 2,
                   bufs, &g, sizeof g, -1, g.numel);
}

ferry_status ocl_cast(int32_t device, const ferry_kernel_tensor *out,
                      const ferry_kernel_tensor *in)
{
    if (out->dtype == in->dtype)
        return ocl_copy_strided(device, out, in);
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_dtype(d, out->dtype);
    if (st == FERRY_OK)
        st = ocl_check_dtype(d, in->dtype);
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

ferry_status ocl_unary(int32_t device, ferry_unary_op op, const ferry_kernel_tensor *out,
                       const ferry_kernel_tensor *in)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_dtype(d, out->dtype);
    if (st == FERRY_OK && (in->dtype != out->dtype || (unsigned)op > FERRY_UNARY_RELU))
        st = ocl_host->error(FERRY_ERR_INVALID_ARGUMENT, "opencl:%d: unary op %d on %s -> %s",
                             (int)device, (int)op, ocl_dtype_name(in->dtype),
                             ocl_dtype_name(out->dtype));
    /* The transcendental ops are float-only: the core converts integers to float32. */
    if (st == FERRY_OK && !ocl_is_float(in->dtype) && op != FERRY_UNARY_NEG &&
        op != FERRY_UNARY_ABS && op != FERRY_UNARY_RELU)
        st = ocl_host->error(FERRY_ERR_UNSUPPORTED, "opencl:%d: unary op %d has no kernel for %s",
                             (int)device, (int)op, ocl_dtype_name(in->dtype));
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, in->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[2] = {out, in};
    if (st == FERRY_OK)
        st = ocl_geom(d, &g, 2, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_unary_%s", ocl_dtype_sfx[in->dtype]);
    cl_mem bufs[2] = {(cl_mem)out->buffer, (cl_mem)in->buffer};
    return ocl_run_locked(d, OCL_K_UNARY + (int)in->dtype, name, 2, bufs, &g, (int)op);
}

ferry_status ocl_binary(int32_t device, ferry_binary_op op, const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    bool compare = op >= FERRY_BINARY_EQ;
    if (st == FERRY_OK)
        st = ocl_check_dtype(d, a->dtype);
    if (st == FERRY_OK &&
        ((unsigned)op > FERRY_BINARY_GE || a->dtype != b->dtype ||
         out->dtype != (compare ? FERRY_BOOL : a->dtype)))
        st = ocl_host->error(FERRY_ERR_INVALID_ARGUMENT, "opencl:%d: binary op %d on %s, %s -> %s",
                             (int)device, (int)op, ocl_dtype_name(a->dtype),
                             ocl_dtype_name(b->dtype), ocl_dtype_name(out->dtype));
    if (st == FERRY_OK && op == FERRY_BINARY_DIV && !ocl_is_float(a->dtype))
        st = ocl_host->error(FERRY_ERR_UNSUPPORTED,
                             "opencl:%d: integer division has no kernel (the core promotes it "
                             "to float)",
                             (int)device);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, a->dtype);
    fk_geom g;
    const ferry_kernel_tensor *ops[3] = {out, a, b};
    if (st == FERRY_OK)
        st = ocl_geom(d, &g, 3, ops);
    if (st != FERRY_OK || g.numel == 0)
        return st;
    char name[48];
    snprintf(name, sizeof name, "ferry_%s_%s", compare ? "compare" : "binary",
             ocl_dtype_sfx[a->dtype]);
    cl_mem bufs[3] = {(cl_mem)out->buffer, (cl_mem)a->buffer, (cl_mem)b->buffer};
    return ocl_run_locked(d, (compare ? OCL_K_COMPARE : OCL_K_BINARY) + (int)a->dtype, name, 3,
                          bufs, &g, (int)op);
}

/* ---- reduce ------------------------------------------------------------------------- */

/* Threads one pass aims for: enough to fill a GPU or every core of PoCL. */
#define OCL_REDUCE_THREADS 16384
/* Fewest elements a thread adds up before another pass is worth its launch. */
#define OCL_REDUCE_MIN_CHUNK 256

/* Chunks per output for a pass over nred elements each. */
static int64_t ocl_reduce_parts(int64_t nout, int64_t nred)
{
    int64_t parts = nout >= OCL_REDUCE_THREADS ? 1 : (OCL_REDUCE_THREADS + nout - 1) / nout;
    int64_t most = (nred + OCL_REDUCE_MIN_CHUNK - 1) / OCL_REDUCE_MIN_CHUNK;
    if (parts > most)
        parts = most;
    int64_t least = (nred + FK_MAX_CHUNK - 1) / FK_MAX_CHUNK;
    if (parts < least)
        parts = least;
    if (parts < 1)
        parts = 1;
    int64_t chunk = (nred + parts - 1) / parts;
    return (nred + chunk - 1) / chunk; /* no empty chunk */
}

/* One dim of the kept or reduced set. */
typedef struct ocl_rdim {
    int64_t shape, in_stride, out_stride;
} ocl_rdim;

/* Appends a dim, merging it into the previous one when both step as one run. */
static void ocl_rdim_push(ocl_rdim *dims, int *n, ocl_rdim x, bool with_out)
{
    if (*n > 0) {
        ocl_rdim *p = &dims[*n - 1];
        if (p->in_stride == x.in_stride * x.shape &&
            (!with_out || p->out_stride == x.out_stride * x.shape)) {
            p->shape *= x.shape;
            p->in_stride = x.in_stride;
            p->out_stride = x.out_stride;
            return;
        }
    }
    dims[(*n)++] = x;
}

ferry_status ocl_reduce(int32_t device, ferry_reduce_op op, const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *in)
{
    ocl_device *d;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = ocl_check_dtype(d, in->dtype);
    if (st != FERRY_OK)
        return st;
    ferry_dtype dt = in->dtype;
    bool fl = ocl_is_float(dt);
    ferry_dtype want = op == FERRY_REDUCE_ARGMAX                ? FERRY_INT64
                       : op == FERRY_REDUCE_SUM && !fl          ? FERRY_INT64
                                                                : dt;
    if ((unsigned)op > FERRY_REDUCE_ARGMAX || out->dtype != want ||
        (op == FERRY_REDUCE_MEAN && !fl) || out->ndim != in->ndim || in->ndim < 0 ||
        in->ndim > FERRY_MAX_DIMS)
        return ocl_host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "opencl:%d: reduce op %d of %d-d %s into %d-d %s", (int)device,
                               (int)op, (int)in->ndim, ocl_dtype_name(dt), (int)out->ndim,
                               ocl_dtype_name(out->dtype));
    if ((st = ocl_check_fp64(d, dt)) != FERRY_OK)
        return st;
    int64_t in_off = 0, out_off = 0;
    if ((st = ocl_elem_offset(d, in, &in_off)) != FERRY_OK ||
        (st = ocl_elem_offset(d, out, &out_off)) != FERRY_OK)
        return st;

    ocl_rdim kept[FERRY_MAX_DIMS], red[FERRY_MAX_DIMS];
    int nk = 0, nr = 0;
    int64_t nout = 1, nred = 1;
    int64_t out_numel = 1;
    for (int i = 0; i < out->ndim; i++)
        out_numel *= out->shape[i];
    if (out_numel == 0)
        return FERRY_OK;
    for (int i = 0; i < in->ndim; i++) {
        int64_t e = in->shape[i];
        if (e == 0) /* the core fills empty reductions (0, NaN) itself */
            return ocl_host->error(FERRY_ERR_UNSUPPORTED,
                                   "opencl:%d: reduce over an empty dim %d", (int)device, i);
        if (e == 1)
            continue;
        ocl_rdim x = {e, in->strides[i], out->strides[i]};
        if (out->shape[i] == e) {
            ocl_rdim_push(kept, &nk, x, true);
            nout *= e;
        } else if (out->shape[i] == 1) {
            ocl_rdim_push(red, &nr, x, false);
            nred *= e;
        } else {
            return ocl_host->error(FERRY_ERR_INVALID_ARGUMENT,
                                   "opencl:%d: reduce: output extent %lld in dim %d is neither "
                                   "1 nor %lld",
                                   (int)device, (long long)out->shape[i], i, (long long)e);
        }
    }
    if (nk > FK_MAX_DIMS || nr > FK_MAX_DIMS)
        return ocl_host->error(FERRY_ERR_UNSUPPORTED,
                               "opencl:%d: reduce over %d kept and %d reduced dims; the kernels "
                               "walk at most %d of each",
                               (int)device, nk, nr, FK_MAX_DIMS);

    /* What the passes accumulate in, and which kernel family runs them. */
    bool half = dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16;
    ferry_dtype acc = op == FERRY_REDUCE_SUM || op == FERRY_REDUCE_MEAN
                          ? (fl ? (dt == FERRY_FLOAT64 ? FERRY_FLOAT64 : FERRY_FLOAT32)
                                : FERRY_INT64)
                          : (half ? FERRY_FLOAT32 : dt);
    size_t acc_size = ocl_dtype_size(acc);
    int family = op == FERRY_REDUCE_SUM || op == FERRY_REDUCE_MEAN ? OCL_K_SUM
                 : op == FERRY_REDUCE_ARGMAX                       ? OCL_K_ARGMAX
                                                                   : OCL_K_MAXMIN;
    static const char *const family_names[] = {"sum", "maxmin", "argmax"};
    const char *fname = family == OCL_K_SUM ? family_names[0]
                        : family == OCL_K_MAXMIN ? family_names[1]
                                                 : family_names[2];
    int out_kind = FK_OUT_ACC;
    if (acc == FERRY_FLOAT32 && out->dtype == FERRY_FLOAT16)
        out_kind = FK_OUT_F16;
    else if (acc == FERRY_FLOAT32 && out->dtype == FERRY_BFLOAT16)
        out_kind = FK_OUT_BF16;

    fk_rgeom g;
    memset(&g, 0, sizeof g);
    g.nkept = nk;
    g.nreduced = nr;
    for (int i = 0; i < nk; i++) {
        g.kshape[i] = kept[i].shape;
        g.kstride_in[i] = kept[i].in_stride;
    }
    for (int i = 0; i < nr; i++) {
        g.rshape[i] = red[i].shape;
        g.rstride[i] = red[i].in_stride;
    }
    g.in_offset = in_off;
    g.nout = nout;
    g.op = (int)op;

    /* Scratch for partials: two value regions and two index regions, used in turn. */
    int64_t parts1 = ocl_reduce_parts(nout, nred);
    size_t region = ((size_t)(nout * parts1) * 8 + 255) & ~(size_t)255;
    pthread_mutex_lock(&d->lock);
    cl_mem scratch = NULL;
    if (parts1 > 1)
        st = ocl_scratch(d, 4 * region, &scratch);
    cl_mem src = (cl_mem)in->buffer, src_idx = NULL;
    int64_t cur_red = nred;
    for (int pass = 0; st == FERRY_OK; pass++) {
        int64_t parts = pass == 0 ? parts1 : ocl_reduce_parts(nout, cur_red);
        int64_t chunk = (cur_red + parts - 1) / parts;
        bool final = parts == 1;
        g.nred = cur_red;
        g.chunk = chunk;
        g.nparts = parts;
        g.part_stride = 1;
        cl_mem dst, dst_idx;
        if (final) {
            dst = (cl_mem)out->buffer;
            dst_idx = dst;
            g.out_offset = g.idx_out_offset = out_off;
            for (int i = 0; i < nk; i++)
                g.kstride_out[i] = kept[i].out_stride;
            g.mean_count = op == FERRY_REDUCE_MEAN ? nred : 0;
            g.out_kind = out_kind;
        } else {
            dst = dst_idx = scratch;
            size_t vbytes = (pass % 2) * region, ibytes = (2 + pass % 2) * region;
            g.out_offset = (int64_t)(vbytes / acc_size);
            g.idx_out_offset = (int64_t)(ibytes / 8);
            int64_t s = parts;
            for (int i = nk - 1; i >= 0; i--) {
                g.kstride_out[i] = s;
                s *= kept[i].shape;
            }
            g.mean_count = 0;
            g.out_kind = FK_OUT_ACC;
        }
        /* A first pass reads the tensor; later ones the previous pass's partials. */
        ferry_dtype kdt = pass == 0 ? dt : acc;
        int slot = family + (int)kdt;
        char name[48];
        if (pass > 0 && family == OCL_K_ARGMAX) {
            slot = OCL_K_ARGMAX_PART + (int)kdt;
            snprintf(name, sizeof name, "ferry_argmax_part_%s", ocl_dtype_sfx[kdt]);
            cl_mem bufs[4] = {src, src_idx, dst, dst_idx};
            st = ocl_run(d, slot, name, 4, bufs, &g, sizeof g, -1, nout * parts);
        } else if (family == OCL_K_ARGMAX) {
            snprintf(name, sizeof name, "ferry_argmax_%s", ocl_dtype_sfx[kdt]);
            cl_mem bufs[3] = {src, dst, dst_idx};
            st = ocl_run(d, slot, name, 3, bufs, &g, sizeof g, -1, nout * parts);
        } else {
            snprintf(name, sizeof name, "ferry_%s_%s", fname, ocl_dtype_sfx[kdt]);
            cl_mem bufs[2] = {src, dst};
            st = ocl_run(d, slot, name, 2, bufs, &g, sizeof g, -1, nout * parts);
        }
        if (final || st != FERRY_OK)
            break;
        /* The next pass reduces the partials: [nout][parts], dense. */
        src = src_idx = scratch;
        g.in_offset = g.out_offset;
        g.idx_in_offset = g.idx_out_offset;
        int64_t s = parts;
        for (int i = nk - 1; i >= 0; i--) {
            g.kstride_in[i] = s;
            s *= kept[i].shape;
        }
        g.nreduced = 1;
        g.rshape[0] = parts;
        g.rstride[0] = 1;
        cur_red = parts;
    }
    ocl_scratch_trim(d);
    pthread_mutex_unlock(&d->lock);
    return st;
}

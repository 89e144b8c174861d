/* Batched matmul on OpenCL: float32/float64 through CLBlast's C API (float16/bfloat16
 * converted to float32 around an Sgemm, so they accumulate in float32), with layouts and
 * transposes derived from the strides; integers and small products through ferry's own
 * kernel (backends/kernels/ferry_matmul.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <clblast_c.h>

#include "ocl_internal.h"

/* Below this many multiply-adds a CLBlast call (several kernels, padding copies) costs
 * more than ferry's one-thread-per-output kernel; in `auto` mode it takes them. */
#define OCL_BLAS_MIN_WORK ((int64_t)1 << 18)

/* CLBlast routines whose first call per device is wrapped (ocl_quiet_*). */
enum { OCL_SGEMM, OCL_SGEMM_BATCHED, OCL_DGEMM, OCL_DGEMM_BATCHED };

/* ---- keeping CLBlast quiet -------------------------------------------------------------
 * CLBlast 1.5 writes to stdout when a kernel it compiles fails to build ("OpenCL compiler
 * error/warning:" and the log) and to stderr for OpenCL errors it catches; it has no
 * option or environment switch to silence either. Its kernels are compiled on the first
 * call of a routine on a device, so that call runs with fds 1 and 2 pointing at
 * temporary files, and what was captured goes to ferry's debug log (FERRY_DEBUG=opencl)
 * instead of the user's output. The cost: output other threads write to fd 1 or 2
 * during that first call lands in the debug log too. Later calls are not wrapped: after
 * a successful first call CLBlast prints only for failing OpenCL calls, whose error the
 * status code carries anyway. Arguments are checked here first, so CLBlast's argument
 * errors (which it does not print) never occur either. */

typedef struct ocl_quiet {
    int saved[2];
    int capture[2];
    bool active;
} ocl_quiet;

static pthread_mutex_t ocl_quiet_lock = PTHREAD_MUTEX_INITIALIZER;

static int ocl_capture_fd(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        FILE *f = tmpfile();
        fd = f ? dup(fileno(f)) : -1;
        if (f)
            fclose(f);
    }
    return fd;
}

static void ocl_quiet_begin(ocl_quiet *q)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_lock(&ocl_quiet_lock);
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < 2; i++) {
        q->saved[i] = dup(i + 1);
        q->capture[i] = ocl_capture_fd(i ? "ferry-clblast-stderr" : "ferry-clblast-stdout");
    }
    if (q->saved[0] < 0 || q->saved[1] < 0 || q->capture[0] < 0 || q->capture[1] < 0 ||
        dup2(q->capture[0], 1) < 0 || dup2(q->capture[1], 2) < 0) {
        for (int i = 0; i < 2; i++) {
            if (q->saved[i] >= 0) {
                dup2(q->saved[i], i + 1);
                close(q->saved[i]);
            }
            if (q->capture[i] >= 0)
                close(q->capture[i]);
        }
        pthread_mutex_unlock(&ocl_quiet_lock);
        return;
    }
    q->active = true;
}

static void ocl_quiet_end(ocl_quiet *q, int32_t dev, const char *routine)
{
    if (!q->active)
        return;
    /* CLBlast's stdout is a stdio stream: flush it into the capture before switching. */
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < 2; i++) {
        dup2(q->saved[i], i + 1);
        close(q->saved[i]);
    }
    pthread_mutex_unlock(&ocl_quiet_lock);
    for (int i = 0; i < 2; i++) {
        off_t n = lseek(q->capture[i], 0, SEEK_END);
        if (n > 0) {
            size_t len = (size_t)n < 16384 ? (size_t)n : 16384;
            char *text = calloc(1, len + 1);
            if (text && pread(q->capture[i], text, len, 0) > 0)
                ocl_host->log(FERRY_LOG_DEBUG, "opencl", "opencl:%d: %s wrote to %s:\n%s",
                              (int)dev, routine, i ? "stderr" : "stdout", text);
            free(text);
        }
        close(q->capture[i]);
    }
}

void ocl_matmul_shutdown(void)
{
    CLBlastClearCache();
}

void *ocl_clblast_symbol(void)
{
    return (void *)&CLBlastClearCache;
}

/* ---- operand layouts ------------------------------------------------------------------ */

/* One matrix operand of a batched product, in elements: rows x cols with row stride rs
 * and column stride cs, batch stride sb, from offset `off` of `buf`. */
typedef struct ocl_mat {
    cl_mem buf;
    int64_t off, sb, rs, cs;
} ocl_mat;

/* How CLBlast can read a matrix: as row-major storage (unit column stride) or
 * column-major storage (unit row stride), with a leading dimension CLBlast accepts. */
typedef enum { OCL_FORM_NONE, OCL_FORM_ROW, OCL_FORM_COL } ocl_form;

static ocl_form ocl_mat_form(const ocl_mat *x, int64_t rows, int64_t cols, int64_t batch,
                             size_t *ld)
{
    if (x->off < 0 || (batch > 1 && x->sb < 0))
        return OCL_FORM_NONE;
    /* An extent-1 dim's stride is never used, so it may be anything. */
    if ((cols == 1 || x->cs == 1) && (rows == 1 || x->rs >= cols)) {
        *ld = (size_t)(rows == 1 ? cols : x->rs);
        return OCL_FORM_ROW;
    }
    if ((rows == 1 || x->rs == 1) && (cols == 1 || x->cs >= rows)) {
        *ld = (size_t)(cols == 1 ? rows : x->cs);
        return OCL_FORM_COL;
    }
    return OCL_FORM_NONE;
}

static const char *ocl_routine_name(int routine)
{
    static const char *const names[] = {"CLBlastSgemm", "CLBlastSgemmStridedBatched",
                                        "CLBlastDgemm", "CLBlastDgemmStridedBatched"};
    return names[routine];
}

/* Lock held. C = A B through CLBlast for float32 or float64 operands already in forms it
 * reads; `layout` follows C's form. */
static int ocl_gemm(ocl_device *d, ferry_dtype dt, int64_t batch, int64_t m, int64_t n,
                    int64_t k, const ocl_mat *a, ocl_form fa, size_t lda, const ocl_mat *b,
                    ocl_form fb, size_t ldb, const ocl_mat *c, ocl_form fc, size_t ldc,
                    int *routine)
{
    CLBlastLayout layout = fc == OCL_FORM_ROW ? CLBlastLayoutRowMajor : CLBlastLayoutColMajor;
    CLBlastTranspose ta = fa == fc ? CLBlastTransposeNo : CLBlastTransposeYes;
    CLBlastTranspose tb = fb == fc ? CLBlastTransposeNo : CLBlastTransposeYes;
    size_t M = (size_t)m, N = (size_t)n, K = (size_t)k;
    bool dbl = dt == FERRY_FLOAT64;
    *routine = (dbl ? OCL_DGEMM : OCL_SGEMM) + (batch > 1 ? 1 : 0);
    ocl_quiet q;
    bool first = !d->clblast_warm[*routine];
    struct timespec t0, t1;
    if (first) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ocl_quiet_begin(&q);
    }
    CLBlastStatusCode s;
    cl_command_queue cq = ocl_cq(d); /* CLBlast takes the queue by address */
    if (batch > 1 && dbl)
        s = CLBlastDgemmStridedBatched(layout, ta, tb, M, N, K, 1.0, a->buf, (size_t)a->off, lda,
                                       (size_t)a->sb, b->buf, (size_t)b->off, ldb, (size_t)b->sb,
                                       0.0, c->buf, (size_t)c->off, ldc, (size_t)c->sb,
                                       (size_t)batch, &cq, NULL);
    else if (batch > 1)
        s = CLBlastSgemmStridedBatched(layout, ta, tb, M, N, K, 1.0f, a->buf, (size_t)a->off,
                                       lda, (size_t)a->sb, b->buf, (size_t)b->off, ldb,
                                       (size_t)b->sb, 0.0f, c->buf, (size_t)c->off, ldc,
                                       (size_t)c->sb, (size_t)batch, &cq, NULL);
    else if (dbl)
        s = CLBlastDgemm(layout, ta, tb, M, N, K, 1.0, a->buf, (size_t)a->off, lda, b->buf,
                         (size_t)b->off, ldb, 0.0, c->buf, (size_t)c->off, ldc, &cq, NULL);
    else
        s = CLBlastSgemm(layout, ta, tb, M, N, K, 1.0f, a->buf, (size_t)a->off, lda, b->buf,
                         (size_t)b->off, ldb, 0.0f, c->buf, (size_t)c->off, ldc, &cq,
                         NULL);
    if (first) {
        ocl_quiet_end(&q, d->index, ocl_routine_name(*routine));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ocl_host->log(FERRY_LOG_DEBUG, "opencl",
                      "opencl:%d: first %s call (CLBlast compiles its kernels): %.1f ms, %s",
                      (int)d->index, ocl_routine_name(*routine),
                      (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
                      ocl_clblast_status_name((int)s));
        if (s == CLBlastSuccess)
            d->clblast_warm[*routine] = true;
    }
    return (int)s;
}

/* ---- the plain kernel ---------------------------------------------------------------- */

static ferry_status ocl_matmul_kernel(ocl_device *d, ferry_dtype dt, const fk_mgeom *g,
                                      cl_mem out, cl_mem a, cl_mem b)
{
    char name[48];
    snprintf(name, sizeof name, "ferry_matmul_%s", fk_dtype_sfx[dt]);
    cl_kernel kern;
    int slot = OCL_K_MATMUL + (int)dt;
    ferry_status st = ocl_kernel_get(d, slot, name, &kern);
    if (st == FERRY_OK)
        st = ocl_arg(d, kern, name, 0, sizeof out, &out);
    if (st == FERRY_OK)
        st = ocl_arg(d, kern, name, 1, sizeof a, &a);
    if (st == FERRY_OK)
        st = ocl_arg(d, kern, name, 2, sizeof b, &b);
    if (st == FERRY_OK)
        st = ocl_arg(d, kern, name, 3, sizeof *g, g);
    if (st == FERRY_OK)
        st = ocl_enqueue(d, slot, name, g->batch * g->m * g->n);
    return st;
}

/* ---- the BLAS path ------------------------------------------------------------------- */

/* Where a dense temporary lives inside the scratch buffer. */
typedef struct ocl_tmp {
    size_t byte_off;
    size_t nbytes;
} ocl_tmp;

static size_t ocl_align(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

/* Copies (and converts to `to`) matrix x of [batch, rows, cols] into dense row-major
 * scratch at t, and points x at it. A batch stride of 0 stays broadcast: one copy. */
static ferry_status ocl_densify(ocl_device *d, cl_mem scratch, const ocl_tmp *t, ocl_mat *x,
                                ferry_dtype from, ferry_dtype to, int64_t batch, int64_t rows,
                                int64_t cols)
{
    int64_t nb = x->sb == 0 ? 1 : batch;
    size_t tsize = fk_dtype_size(to);
    int64_t shape[3] = {nb, rows, cols};
    int64_t dst_strides[3] = {rows * cols, cols, 1};
    int64_t src_strides[3] = {x->sb, x->rs, x->cs};
    ferry_status st;
    int64_t dst_off = (int64_t)(t->byte_off / tsize);
    if (from == to) {
        st = ocl_copy_elements(d, tsize, 3, shape, scratch, dst_off, dst_strides, x->buf, x->off,
                               src_strides);
    } else {
        ferry_kernel_tensor kd = {scratch, t->byte_off, to, 3, shape, dst_strides, sizeof kd};
        ferry_kernel_tensor ks = {x->buf, (size_t)x->off * fk_dtype_size(from), from, 3, shape,
                                  src_strides, sizeof ks};
        st = ocl_cast_held(d, &kd, &ks);
    }
    if (st != FERRY_OK)
        return st;
    x->buf = scratch;
    x->off = dst_off;
    x->sb = x->sb == 0 ? 0 : rows * cols;
    x->rs = cols;
    x->cs = 1;
    return FERRY_OK;
}

/* Lock held. FERRY_ERR_UNSUPPORTED (no message) when CLBlast refused the call, so the
 * caller can run the kernel instead. */
static ferry_status ocl_matmul_blas(ocl_device *d, ferry_dtype dt, int64_t batch, int64_t m,
                                    int64_t n, int64_t k, ocl_mat a, ocl_mat b, ocl_mat c,
                                    const ferry_kernel_tensor *out)
{
    ferry_dtype ct = dt == FERRY_FLOAT64 ? FERRY_FLOAT64 : FERRY_FLOAT32;
    bool convert = ct != dt;
    size_t lda = 0, ldb = 0, ldc = 0;
    ocl_form fa = convert ? OCL_FORM_NONE : ocl_mat_form(&a, m, k, batch, &lda);
    ocl_form fb = convert ? OCL_FORM_NONE : ocl_mat_form(&b, k, n, batch, &ldb);
    ocl_form fc = convert ? OCL_FORM_NONE : ocl_mat_form(&c, m, n, batch, &ldc);
    /* C's batches must not alias: a zero batch stride is only for inputs. */
    if (batch > 1 && c.sb == 0)
        fc = OCL_FORM_NONE;

    size_t csize = fk_dtype_size(ct);
    ocl_tmp ta = {0, 0}, tb = {0, 0}, tc = {0, 0};
    size_t total = 0;
    if (fa == OCL_FORM_NONE) {
        ta.byte_off = total;
        ta.nbytes = (size_t)((a.sb == 0 ? 1 : batch) * m * k) * csize;
        total += ocl_align(ta.nbytes);
    }
    if (fb == OCL_FORM_NONE) {
        tb.byte_off = total;
        tb.nbytes = (size_t)((b.sb == 0 ? 1 : batch) * k * n) * csize;
        total += ocl_align(tb.nbytes);
    }
    if (fc == OCL_FORM_NONE) {
        tc.byte_off = total;
        tc.nbytes = (size_t)(batch * m * n) * csize;
        total += ocl_align(tc.nbytes);
    }
    cl_mem scratch = NULL;
    ferry_status st = FERRY_OK;
    if (total > 0)
        st = ocl_scratch(d, total, &scratch);
    if (st == FERRY_OK && fa == OCL_FORM_NONE) {
        st = ocl_densify(d, scratch, &ta, &a, dt, ct, batch, m, k);
        fa = ocl_mat_form(&a, m, k, batch, &lda);
    }
    if (st == FERRY_OK && fb == OCL_FORM_NONE) {
        st = ocl_densify(d, scratch, &tb, &b, dt, ct, batch, k, n);
        fb = ocl_mat_form(&b, k, n, batch, &ldb);
    }
    ocl_mat cc = c;
    if (st == FERRY_OK && fc == OCL_FORM_NONE) {
        cc.buf = scratch;
        cc.off = (int64_t)(tc.byte_off / csize);
        cc.sb = m * n;
        cc.rs = n;
        cc.cs = 1;
        fc = ocl_mat_form(&cc, m, n, batch, &ldc);
    }
    if (st != FERRY_OK)
        return st;
    int routine;
    int s = ocl_gemm(d, ct, batch, m, n, k, &a, fa, lda, &b, fb, ldb, &cc, fc, ldc, &routine);
    if (s != CLBlastSuccess) {
        ocl_host->log(FERRY_LOG_DEBUG, "opencl",
                      "opencl:%d: %s failed: %s (%d); using ferry's matmul kernel",
                      (int)d->index, ocl_routine_name(routine), ocl_clblast_status_name(s), s);
        return FERRY_ERR_UNSUPPORTED;
    }
    if (cc.buf == c.buf)
        return FERRY_OK;
    /* The product went to a dense temporary: convert or scatter it into out. */
    int64_t shape[3] = {batch, m, n};
    int64_t dense[3] = {m * n, n, 1};
    if (convert) {
        ferry_kernel_tensor ks = {scratch, tc.byte_off, ct, 3, shape, dense, sizeof ks};
        return ocl_cast_held(d, out, &ks);
    }
    return ocl_copy_elements(d, csize, 3, shape, c.buf, c.off, out->strides, scratch, cc.off,
                             dense);
}

/* ---- entry ---------------------------------------------------------------------------- */

ferry_status ocl_matmul(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                        const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    ocl_device *d;
    fk_plan_ctx c = {ocl_host, "opencl", device};
    fk_mgeom g;
    ferry_status st = ocl_device_ready(device, &d);
    if (st == FERRY_OK)
        st = fk_plan_matmul(&c, out, a, b, &g);
    if (st == FERRY_OK)
        st = ocl_check_fp64(d, a->dtype);
    if (st != FERRY_OK)
        return st;
    ferry_dtype dt = a->dtype;
    int64_t batch = g.batch, m = g.m, k = g.k, n = g.n;
    if (batch == 0 || m == 0 || n == 0)
        return FERRY_OK;
    if (k == 0)
        return FERRY_ERR_UNSUPPORTED; /* the core fills out with zeros itself */

    ocl_mat ma = {(cl_mem)a->buffer, g.a_offset, g.a_sb, g.a_sm, g.a_sk};
    ocl_mat mb = {(cl_mem)b->buffer, g.b_offset, g.b_sb, g.b_sk, g.b_sn};
    ocl_mat mc = {(cl_mem)out->buffer, g.o_offset, g.o_sb, g.o_sm, g.o_sn};
    bool blas_dtype = dt == FERRY_FLOAT32 || dt == FERRY_FLOAT64 || dt == FERRY_FLOAT16 ||
                      dt == FERRY_BFLOAT16;
    bool big = batch * m * n * k >= OCL_BLAS_MIN_WORK;
    bool use_blas = blas_dtype && (ocl_matmul_mode == 1 || (ocl_matmul_mode == 0 && big));

    pthread_mutex_lock(&d->lock);
    st = FERRY_ERR_UNSUPPORTED;
    if (use_blas)
        st = ocl_matmul_blas(d, dt, batch, m, n, k, ma, mb, mc, out);
    if (st == FERRY_ERR_UNSUPPORTED)
        st = ocl_matmul_kernel(d, dt, &g, mc.buf, ma.buf, mb.buf);
    ocl_scratch_trim(d);
    pthread_mutex_unlock(&d->lock);
    return st;
}

/* Launch planning for the portable kernels, shared by the OpenCL and CUDA plugins (each
 * compiles this file into itself): entry contracts, fk_geom dim merging and flags,
 * reduction passes and matmul strides. No vendor header; errors go to the host service. */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include <ferry/half.h>
#include <ferry/ops/elementwise2.h>
#include <ferry/ops/select.h>
#include <ferry/ops/sort.h>

#include "fk_plan.h"
#include "ferry_elementwise2.h"
#include "ferry_select.h"
#include "ferry_sort.h"

/* The kernels number their ops as backend.h does, and index dtypes in ferry_dtype order. */
_Static_assert(FK_UN_NEG == FERRY_UNARY_NEG && FK_UN_RELU == FERRY_UNARY_RELU &&
                   FK_UN_SIGMOID == FERRY_UNARY_SIGMOID,
               "unary op numbers");
_Static_assert(FK_BIN_ADD == FERRY_BINARY_ADD && FK_BIN_MINIMUM == FERRY_BINARY_MINIMUM &&
                   FK_BIN_EQ == FERRY_BINARY_EQ && FK_BIN_GE == FERRY_BINARY_GE,
               "binary op numbers");
_Static_assert(FK_RED_SUM == FERRY_REDUCE_SUM && FK_RED_MAX == FERRY_REDUCE_MAX &&
                   FK_RED_MIN == FERRY_REDUCE_MIN && FK_RED_ARGMAX == FERRY_REDUCE_ARGMAX,
               "reduce op numbers");
_Static_assert(FK_U2_LOGICAL_NOT == FERRY_UNARY2_LOGICAL_NOT && FK_U2_GELU == FERRY_UNARY2_GELU &&
                   FK_U2_BITWISE_NOT == FERRY_UNARY2_BITWISE_NOT,
               "unary2 op numbers");
_Static_assert(FK_B2_LOGICAL_XOR == FERRY_BINARY2_LOGICAL_XOR &&
                   FK_B2_HYPOT == FERRY_BINARY2_HYPOT &&
                   FK_B2_LSHIFT == FERRY_BINARY2_BITWISE_LEFT_SHIFT,
               "binary2 op numbers");
_Static_assert(FERRY_NUM_DTYPES == 10 && FERRY_BOOL == 0 && FERRY_FLOAT64 == 9,
               "the kernels' dtype table has ten entries in ferry_dtype order");

/* ---- dtypes --------------------------------------------------------------------------- */

const char *fk_dtype_name(ferry_dtype dt)
{
    return ferry_dtype_info_valid(dt) ? ferry_dtype_info_name(dt) : "an unknown dtype";
}

size_t fk_dtype_size(ferry_dtype dt)
{
    return ferry_dtype_info_size(dt);
}

int fk_width_log2(size_t size)
{
    return size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3;
}

bool fk_dtype_is_float(ferry_dtype dt)
{
    return ferry_dtype_info_is_floating(dt);
}

ferry_status fk_plan_dtype(const fk_plan_ctx *c, ferry_dtype dt)
{
    if (!fk_dtype_size(dt))
        return c->host->error(FERRY_ERR_UNSUPPORTED, "%s:%d: unknown dtype value %d", c->backend,
                              (int)c->device, (int)dt);
    return FERRY_OK;
}

/* ---- elementwise ---------------------------------------------------------------------- */

/* The element offset of a descriptor; the kernels index whole elements. */
static ferry_status elem_offset(const fk_plan_ctx *c, const ferry_kernel_tensor *t, int64_t *out)
{
    size_t size = fk_dtype_size(t->dtype);
    if (size == 0)
        return fk_plan_dtype(c, t->dtype);
    if (t->byte_offset % size != 0)
        return c->host->error(FERRY_ERR_UNSUPPORTED,
                              "%s:%d: byte offset %zu is not a multiple of the %zu-byte "
                              "element size",
                              c->backend, (int)c->device, t->byte_offset, size);
    *out = (int64_t)(t->byte_offset / size);
    return FERRY_OK;
}

/* FK_INDEX32 for launches below 2^31 elements, unless FERRY_KERNEL_INDEX64=1 asks for the
 * 64-bit path everywhere: otherwise only tensors of 2^31 elements and more reach it, and
 * those do not fit a test run. Read per launch, so a test may set it at any time. */
static int index_flag(int64_t numel)
{
    const char *force = getenv("FERRY_KERNEL_INDEX64");
    if (force && strcmp(force, "1") == 0)
        return 0;
    return numel <= INT32_MAX ? FK_INDEX32 : 0;
}

ferry_status fk_plan_geom(const fk_plan_ctx *c, fk_geom *g, int nops,
                          const ferry_kernel_tensor *const *ops)
{
    memset(g, 0, sizeof *g);
    const ferry_kernel_tensor *o = ops[0];
    if (o->ndim < 0 || o->ndim > FERRY_MAX_DIMS)
        return c->host->error(FERRY_ERR_INVALID_ARGUMENT, "%s:%d: %d dimensions", c->backend,
                              (int)c->device, (int)o->ndim);
    for (int k = 1; k < nops; k++) {
        if (ops[k]->ndim != o->ndim)
            return c->host->error(FERRY_ERR_INVALID_ARGUMENT,
                                  "%s:%d: operands have %d and %d dimensions", c->backend,
                                  (int)c->device, (int)ops[k]->ndim, (int)o->ndim);
        for (int i = 0; i < o->ndim; i++)
            if (ops[k]->shape[i] != o->shape[i])
                return c->host->error(FERRY_ERR_INVALID_ARGUMENT,
                                      "%s:%d: extent %lld differs from %lld in dimension %d",
                                      c->backend, (int)c->device, (long long)ops[k]->shape[i],
                                      (long long)o->shape[i], i);
    }
    int64_t numel = 1;
    for (int i = 0; i < o->ndim; i++)
        numel *= o->shape[i];
    g->numel = numel;
    for (int k = 0; k < nops; k++) {
        ferry_status st = elem_offset(c, ops[k], &g->offset[k]);
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
        return c->host->error(FERRY_ERR_UNSUPPORTED,
                              "%s:%d: %d dimensions remain after merging; the kernels walk "
                              "at most %d",
                              c->backend, (int)c->device, n, FK_MAX_DIMS);
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
    g->flags = (dense ? FK_CONTIG : 0) | index_flag(numel);
    return FERRY_OK;
}

void fk_plan_dense(fk_geom *g, int64_t n, int64_t off0, int64_t off1)
{
    memset(g, 0, sizeof *g);
    g->numel = n;
    g->ndim = 1;
    g->shape[0] = n;
    g->stride[0][0] = g->stride[1][0] = 1;
    g->offset[0] = off0;
    g->offset[1] = off1;
    g->flags = FK_CONTIG | index_flag(n);
}

bool fk_plan_overlap(const ferry_kernel_tensor *a, const ferry_kernel_tensor *b, size_t nbytes)
{
    return a->buffer == b->buffer && a->byte_offset < b->byte_offset + nbytes &&
           b->byte_offset < a->byte_offset + nbytes;
}

ferry_status fk_plan_check_copy(const fk_plan_ctx *c, const ferry_kernel_tensor *out,
                                const ferry_kernel_tensor *in)
{
    ferry_status st = fk_plan_dtype(c, out->dtype);
    if (st == FERRY_OK && in->dtype != out->dtype)
        st = c->host->error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s:%d: copy_strided: dtypes %s and %s differ; use cast", c->backend,
                            (int)c->device, fk_dtype_name(in->dtype), fk_dtype_name(out->dtype));
    return st;
}

ferry_status fk_plan_check_cast(const fk_plan_ctx *c, const ferry_kernel_tensor *out,
                                const ferry_kernel_tensor *in)
{
    ferry_status st = fk_plan_dtype(c, out->dtype);
    return st == FERRY_OK ? fk_plan_dtype(c, in->dtype) : st;
}

ferry_status fk_plan_check_unary(const fk_plan_ctx *c, ferry_unary_op op,
                                 const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    ferry_status st = fk_plan_dtype(c, out->dtype);
    /* An op appended to the enum after these kernels were written: the core falls back. */
    if (st == FERRY_OK && (unsigned)op > FERRY_UNARY_RELU)
        st = c->host->error(FERRY_ERR_UNSUPPORTED, "%s:%d: unknown unary op %d", c->backend,
                            (int)c->device, (int)op);
    if (st == FERRY_OK && in->dtype != out->dtype)
        st = c->host->error(FERRY_ERR_INVALID_ARGUMENT, "%s:%d: unary op %d on %s -> %s",
                            c->backend, (int)c->device, (int)op, fk_dtype_name(in->dtype),
                            fk_dtype_name(out->dtype));
    /* The transcendental ops are float-only: the core converts integers to float32. */
    if (st == FERRY_OK && !fk_dtype_is_float(in->dtype) && op != FERRY_UNARY_NEG &&
        op != FERRY_UNARY_ABS && op != FERRY_UNARY_RELU)
        st = c->host->error(FERRY_ERR_UNSUPPORTED, "%s:%d: unary op %d has no kernel for %s",
                            c->backend, (int)c->device, (int)op, fk_dtype_name(in->dtype));
    return st;
}

ferry_status fk_plan_check_binary(const fk_plan_ctx *c, ferry_binary_op op,
                                  const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                  const ferry_kernel_tensor *b, bool *compare)
{
    *compare = op >= FERRY_BINARY_EQ;
    ferry_status st = fk_plan_dtype(c, a->dtype);
    if (st == FERRY_OK && (unsigned)op > FERRY_BINARY_GE)
        st = c->host->error(FERRY_ERR_UNSUPPORTED, "%s:%d: unknown binary op %d", c->backend,
                            (int)c->device, (int)op);
    if (st == FERRY_OK &&
        (a->dtype != b->dtype || out->dtype != (*compare ? FERRY_BOOL : a->dtype)))
        st = c->host->error(FERRY_ERR_INVALID_ARGUMENT, "%s:%d: binary op %d on %s, %s -> %s",
                            c->backend, (int)c->device, (int)op, fk_dtype_name(a->dtype),
                            fk_dtype_name(b->dtype), fk_dtype_name(out->dtype));
    if (st == FERRY_OK && op == FERRY_BINARY_DIV && !fk_dtype_is_float(a->dtype))
        st = c->host->error(FERRY_ERR_UNSUPPORTED,
                            "%s:%d: integer division has no kernel (the core promotes it to "
                            "float)",
                            c->backend, (int)c->device);
    return st;
}

ferry_status fk_plan_check_binary_scalar(const fk_plan_ctx *c, ferry_binary_op op,
                                         const ferry_kernel_tensor *out,
                                         const ferry_kernel_tensor *a,
                                         const ferry_kernel_scalar *b, bool *compare,
                                         unsigned char arg[8], size_t *arg_size)
{
    ferry_kernel_tensor kb = *a;
    kb.dtype = b->dtype;
    ferry_status st = fk_plan_check_binary(c, op, out, a, &kb, compare);
    if (st != FERRY_OK)
        return st;
    memset(arg, 0, 8);
    if (b->dtype == FERRY_FLOAT16 || b->dtype == FERRY_BFLOAT16) {
        uint16_t h;
        memcpy(&h, b->value, sizeof h);
        float f = b->dtype == FERRY_FLOAT16 ? ferry_f16_to_f32(h) : ferry_bf16_to_f32(h);
        memcpy(arg, &f, sizeof f);
        *arg_size = sizeof f;
    } else {
        *arg_size = fk_dtype_size(b->dtype);
        memcpy(arg, b->value, *arg_size);
    }
    return FERRY_OK;
}

/* ---- reduce --------------------------------------------------------------------------- */

/* Fewest elements a thread adds up before another pass is worth its launch. */
#define FK_PLAN_MIN_CHUNK 256
/* Rows a CPU thread adds up in a column reduction (measured on PoCL: 32 rows ran 4096
 * x 4096 at twice the speed of 1024), and the most partials that may cost. */
#define FK_PLAN_COLUMN_CHUNK 32
#define FK_PLAN_COLUMN_PARTIALS ((int64_t)1 << 20)

/* Chunks per output for a pass over nred elements each, of at least min_chunk elements
 * (fewer when nred is short) and at most max_chunk. */
static int64_t reduce_parts(int64_t target, int64_t nout, int64_t nred, int64_t min_chunk,
                            int64_t max_chunk)
{
    int64_t parts = nout >= target ? 1 : (target + nout - 1) / nout;
    int64_t most = (nred + min_chunk - 1) / min_chunk;
    if (parts > most)
        parts = most;
    int64_t least = (nred + max_chunk - 1) / max_chunk;
    if (parts < least)
        parts = least;
    if (parts < 1)
        parts = 1;
    int64_t chunk = (nred + parts - 1) / parts;
    return (nred + chunk - 1) / chunk; /* no empty chunk */
}

static int64_t abs64(int64_t x)
{
    return x < 0 ? -x : x;
}

/* How the current pass runs (p->g's kept and reduced dims are set): FK_RED_OUT_FAST when
 * the one reduced dim steps further than the innermost kept one, a work-group pass for
 * other sums over one dim when the backend has lanes; returns the chunks per output. */
static int64_t reduce_shape(fk_reduce_plan *p)
{
    fk_rgeom *g = &p->g;
    g->flags = 0;
    g->lanes = 0;
    p->wg = false;
    bool one = g->nreduced <= 1;
    if (g->nreduced == 1 && g->nkept >= 1 &&
        abs64(g->kstride_in[g->nkept - 1]) < abs64(g->rstride[0]))
        g->flags |= FK_RED_OUT_FAST;
    else if (one && p->lanes > 1 && p->family == FK_PLAN_SUM)
        p->wg = true;
    /* Output fastest on a CPU: a work-group's threads run one after another on a core,
     * each down its column; short chunks keep the rows they share in the L1 cache, as
     * long as the partials stay within FK_PLAN_COLUMN_PARTIALS. */
    if ((g->flags & FK_RED_OUT_FAST) && p->lanes == 0) {
        int64_t most_parts = FK_PLAN_COLUMN_PARTIALS / g->nout > 0
                                 ? FK_PLAN_COLUMN_PARTIALS / g->nout
                                 : 1;
        int64_t chunk = (p->cur_red + most_parts - 1) / most_parts;
        if (chunk < FK_PLAN_COLUMN_CHUNK)
            chunk = FK_PLAN_COLUMN_CHUNK;
        if (chunk > FK_MAX_CHUNK)
            chunk = FK_MAX_CHUNK;
        int64_t parts = reduce_parts(p->target, g->nout, p->cur_red, FK_PLAN_MIN_CHUNK, chunk);
        /* A float sum down dense columns: FK_RED_COLS_V of them per thread (4096 x 4096
         * float32 on PoCL: about three times the speed of a column per thread). */
        if (p->family == FK_PLAN_SUM && fk_dtype_is_float(p->kdtype) && g->nkept == 1 &&
            g->kstride_in[0] == 1 && (p->cur_red + parts - 1) / parts <= FK_RED_COLS_MAX_CHUNK)
            g->flags |= FK_RED_COLS;
        return parts;
    }
    if (!p->wg)
        return reduce_parts(p->target, g->nout, p->cur_red, FK_PLAN_MIN_CHUNK, FK_MAX_CHUNK);
    /* A work-group per chunk: at least 16 elements per lane, at most FK_MAX_CHUNK. */
    int64_t L = p->lanes;
    g->lanes = (fk_i32)L;
    int64_t groups = p->target / L > 0 ? p->target / L : 1;
    int64_t max_chunk = FK_MAX_CHUNK < INT64_MAX / L ? FK_MAX_CHUNK * L : INT64_MAX;
    return reduce_parts(groups, g->nout, p->cur_red, 16 * L, max_chunk);
}

/* One dim of the kept or reduced set. */
typedef struct rdim {
    int64_t shape, in_stride, out_stride;
} rdim;

/* Appends a dim, merging it into the previous one when both step as one run. */
static void rdim_push(rdim *dims, int *n, rdim x, bool with_out)
{
    if (*n > 0) {
        rdim *p = &dims[*n - 1];
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

/* Fills the output side of the current pass (p->cur_red elements per output). */
static void reduce_setup(fk_reduce_plan *p)
{
    fk_rgeom *g = &p->g;
    int64_t parts = reduce_shape(p);
    p->final = parts == 1;
    g->nred = p->cur_red;
    g->chunk = (p->cur_red + parts - 1) / parts;
    g->nparts = parts;
    g->part_stride = 1;
    if (p->final) {
        g->out_offset = g->idx_out_offset = p->out_off;
        for (int i = 0; i < g->nkept; i++)
            g->kstride_out[i] = p->kout_stride[i];
        g->mean_count = p->op == FERRY_REDUCE_MEAN ? p->nred : 0;
        g->out_kind = p->out_kind;
    } else {
        /* Partials: [nout][parts], dense, in the value and index regions of this pass. */
        size_t vbytes = (size_t)(p->pass % 2) * p->region;
        size_t ibytes = (size_t)(2 + p->pass % 2) * p->region;
        g->out_offset = (int64_t)(vbytes / fk_dtype_size(p->acc_dtype));
        g->idx_out_offset = (int64_t)(ibytes / 8);
        int64_t s = parts;
        for (int i = g->nkept - 1; i >= 0; i--) {
            g->kstride_out[i] = s;
            s *= g->kshape[i];
        }
        g->mean_count = 0;
        g->out_kind = FK_OUT_ACC;
    }
    if (p->pass > 0) /* later passes read the partials */
        p->kdtype = p->acc_dtype;
    if (g->flags & FK_RED_COLS)
        p->threads = (g->nout + FK_RED_COLS_V - 1) / FK_RED_COLS_V * parts;
    else
        p->threads = g->nout * parts * (p->wg ? g->lanes : 1);
}

ferry_status fk_plan_reduce(const fk_plan_ctx *c, ferry_reduce_op op,
                            const ferry_kernel_tensor *out, const ferry_kernel_tensor *in,
                            int64_t target_threads, int lanes, fk_reduce_plan *p)
{
    memset(p, 0, sizeof *p);
    ferry_status st = fk_plan_dtype(c, in->dtype);
    if (st != FERRY_OK)
        return st;
    ferry_dtype dt = in->dtype;
    bool fl = fk_dtype_is_float(dt);
    ferry_dtype want = op == FERRY_REDUCE_ARGMAX       ? FERRY_INT64
                       : op == FERRY_REDUCE_SUM && !fl ? FERRY_INT64
                                                       : dt;
    if ((unsigned)op > FERRY_REDUCE_ARGMAX)
        return c->host->error(FERRY_ERR_UNSUPPORTED, "%s:%d: unknown reduce op %d", c->backend,
                              (int)c->device, (int)op);
    if (out->dtype != want ||
        (op == FERRY_REDUCE_MEAN && !fl) || out->ndim != in->ndim || in->ndim < 0 ||
        in->ndim > FERRY_MAX_DIMS)
        return c->host->error(FERRY_ERR_INVALID_ARGUMENT,
                              "%s:%d: reduce op %d of %d-d %s into %d-d %s", c->backend,
                              (int)c->device, (int)op, (int)in->ndim, fk_dtype_name(dt),
                              (int)out->ndim, fk_dtype_name(out->dtype));
    int64_t in_off = 0, out_off = 0;
    if ((st = elem_offset(c, in, &in_off)) != FERRY_OK ||
        (st = elem_offset(c, out, &out_off)) != FERRY_OK)
        return st;

    int64_t out_numel = 1;
    for (int i = 0; i < out->ndim; i++)
        out_numel *= out->shape[i];
    if (out_numel == 0) {
        p->empty = true;
        return FERRY_OK;
    }
    rdim kept[FERRY_MAX_DIMS], red[FERRY_MAX_DIMS];
    int nk = 0, nr = 0;
    int64_t nout = 1, nred = 1;
    for (int i = 0; i < in->ndim; i++) {
        int64_t e = in->shape[i];
        if (e == 0) /* the core fills empty reductions (0, NaN) itself */
            return c->host->error(FERRY_ERR_UNSUPPORTED, "%s:%d: reduce over an empty dim %d",
                                  c->backend, (int)c->device, i);
        if (e == 1)
            continue;
        rdim x = {e, in->strides[i], out->strides[i]};
        if (out->shape[i] == e) {
            rdim_push(kept, &nk, x, true);
            nout *= e;
        } else if (out->shape[i] == 1) {
            rdim_push(red, &nr, x, false);
            nred *= e;
        } else {
            return c->host->error(FERRY_ERR_INVALID_ARGUMENT,
                                  "%s:%d: reduce: output extent %lld in dim %d is neither "
                                  "1 nor %lld",
                                  c->backend, (int)c->device, (long long)out->shape[i], i,
                                  (long long)e);
        }
    }
    if (nk > FK_MAX_DIMS || nr > FK_MAX_DIMS)
        return c->host->error(FERRY_ERR_UNSUPPORTED,
                              "%s:%d: reduce over %d kept and %d reduced dims; the kernels "
                              "walk at most %d of each",
                              c->backend, (int)c->device, nk, nr, FK_MAX_DIMS);

    /* What the partials accumulate in: sums in int64, float32 (for the 16-bit floats) or
     * float64; max, min and argmax keep values, the 16-bit floats as float32. */
    bool half = dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16;
    bool sum = op == FERRY_REDUCE_SUM || op == FERRY_REDUCE_MEAN;
    p->acc_dtype = sum ? (fl ? (dt == FERRY_FLOAT64 ? FERRY_FLOAT64 : FERRY_FLOAT32) : FERRY_INT64)
                       : (half ? FERRY_FLOAT32 : dt);
    p->family = sum ? FK_PLAN_SUM : op == FERRY_REDUCE_ARGMAX ? FK_PLAN_ARGMAX : FK_PLAN_MAXMIN;
    p->out_kind = FK_OUT_ACC;
    if (p->acc_dtype == FERRY_FLOAT32 && out->dtype == FERRY_FLOAT16)
        p->out_kind = FK_OUT_F16;
    else if (p->acc_dtype == FERRY_FLOAT32 && out->dtype == FERRY_BFLOAT16)
        p->out_kind = FK_OUT_BF16;
    p->op = op;
    p->target = target_threads > 0 ? target_threads : 1;
    /* A power of two within the kernels' local arrays, or none. */
    p->lanes = 0;
    if (lanes > 1) {
        int l = 1;
        while (l * 2 <= lanes && l * 2 <= FK_WG_MAX)
            l *= 2;
        p->lanes = l > 1 ? l : 0;
    }
    p->out_off = out_off;
    p->nred = nred;
    p->cur_red = nred;
    p->kdtype = dt;

    fk_rgeom *g = &p->g;
    g->nkept = nk;
    g->nreduced = nr;
    for (int i = 0; i < nk; i++) {
        g->kshape[i] = kept[i].shape;
        g->kstride_in[i] = kept[i].in_stride;
        p->kout_stride[i] = kept[i].out_stride;
    }
    for (int i = 0; i < nr; i++) {
        g->rshape[i] = red[i].shape;
        g->rstride[i] = red[i].in_stride;
    }
    g->in_offset = in_off;
    g->nout = nout;
    g->op = (int)op;

    /* Later passes have fewer parts than the first, so its partials size every region. */
    int64_t parts1 = reduce_shape(p);
    p->region = ((size_t)(nout * parts1) * 8 + 255) & ~(size_t)255;
    p->scratch_bytes = parts1 > 1 ? 4 * p->region : 0;
    reduce_setup(p);
    return FERRY_OK;
}

void fk_plan_reduce_next(fk_reduce_plan *p)
{
    fk_rgeom *g = &p->g;
    int64_t parts = g->nparts;
    g->in_offset = g->out_offset;
    g->idx_in_offset = g->idx_out_offset;
    int64_t s = parts;
    for (int i = g->nkept - 1; i >= 0; i--) {
        g->kstride_in[i] = s;
        s *= g->kshape[i];
    }
    g->nreduced = 1;
    g->rshape[0] = parts;
    g->rstride[0] = 1;
    p->cur_red = parts;
    p->pass++;
    reduce_setup(p);
}

/* ---- matmul --------------------------------------------------------------------------- */

ferry_status fk_plan_matmul(const fk_plan_ctx *c, const ferry_kernel_tensor *out,
                            const ferry_kernel_tensor *a, const ferry_kernel_tensor *b,
                            fk_mgeom *g)
{
    memset(g, 0, sizeof *g);
    ferry_dtype dt = a->dtype;
    if (a->ndim != 3 || b->ndim != 3 || out->ndim != 3 || b->dtype != dt || out->dtype != dt ||
        !fk_dtype_size(dt) || a->shape[0] != b->shape[0] || a->shape[0] != out->shape[0] ||
        a->shape[1] != out->shape[1] || b->shape[2] != out->shape[2] ||
        a->shape[2] != b->shape[1])
        return c->host->error(FERRY_ERR_INVALID_ARGUMENT,
                              "%s:%d: matmul needs [B, M, K] x [B, K, N] -> [B, M, N] of one "
                              "dtype",
                              c->backend, (int)c->device);
    size_t size = fk_dtype_size(dt);
    if (a->byte_offset % size || b->byte_offset % size || out->byte_offset % size)
        return c->host->error(FERRY_ERR_UNSUPPORTED,
                              "%s:%d: matmul operand offsets are not whole elements", c->backend,
                              (int)c->device);
    int64_t batch = a->shape[0];
    bool batched = batch > 1;
    g->batch = batch;
    g->m = a->shape[1];
    g->k = a->shape[2];
    g->n = b->shape[2];
    g->a_offset = (int64_t)(a->byte_offset / size);
    g->a_sb = batched ? a->strides[0] : 0;
    g->a_sm = a->strides[1];
    g->a_sk = a->strides[2];
    g->b_offset = (int64_t)(b->byte_offset / size);
    g->b_sb = batched ? b->strides[0] : 0;
    g->b_sk = b->strides[1];
    g->b_sn = b->strides[2];
    g->o_offset = (int64_t)(out->byte_offset / size);
    g->o_sb = batched ? out->strides[0] : 0;
    g->o_sm = out->strides[1];
    g->o_sn = out->strides[2];
    return FERRY_OK;
}

/* ---- the ELEM2 family ------------------------------------------------------------------ */

ferry_status fk_plan_unary2(const fk_plan_ctx *c, const ferry_op_args *args, fk_elem2_launch *l)
{
    memset(l, 0, sizeof *l);
    if (args->ntensors != 2 || !args->params || args->params_size < sizeof(ferry_unary2_params))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_unary2_params *p = (const ferry_unary2_params *)args->params;
    const ferry_kernel_tensor *out = &args->tensors[0], *in = &args->tensors[1];
    int op = p->op;
    bool pred = op >= FERRY_UNARY2_ISNAN && op <= FERRY_UNARY2_LOGICAL_NOT;
    bool fl = fk_dtype_is_float(in->dtype);
    if (op < 0 || op >= FERRY_UNARY2_COUNT ||
        (!pred && !fl && op != FERRY_UNARY2_SIGN && op != FERRY_UNARY2_BITWISE_NOT))
        return FERRY_ERR_UNSUPPORTED;
    ferry_status st = fk_plan_dtype(c, in->dtype);
    const ferry_kernel_tensor *ops[2] = {out, in};
    if (st == FERRY_OK)
        st = fk_plan_geom(c, &l->g, 2, ops);
    if (st != FERRY_OK)
        return st;
    snprintf(l->name, sizeof l->name, "ferry_%s_%s", pred ? "un2b" : "un2",
             fk_dtype_sfx[in->dtype]);
    l->family = "ELEM2";
    l->dtype = (int)in->dtype;
    l->to_bool = pred;
    l->nbufs = 2;
    l->bufs[0] = out->buffer;
    l->bufs[1] = in->buffer;
    l->op = (fk_i32)op;
    /* The floating kernels take p0 and p1 in their value type: float below float64. */
    if (fl && !pred) {
        l->nparams = 2;
        l->pf[0] = (float)p->p0;
        l->pf[1] = (float)p->p1;
        l->pd[0] = p->p0;
        l->pd[1] = p->p1;
        l->param_size = in->dtype == FERRY_FLOAT64 ? sizeof(double) : sizeof(float);
    }
    return FERRY_OK;
}

ferry_status fk_plan_binary2(const fk_plan_ctx *c, const ferry_op_args *args, fk_elem2_launch *l)
{
    memset(l, 0, sizeof *l);
    if (args->ntensors != 3 || !args->params || args->params_size < sizeof(ferry_binary2_params))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_binary2_params *p = (const ferry_binary2_params *)args->params;
    const ferry_kernel_tensor *out = &args->tensors[0], *a = &args->tensors[1],
                              *b = &args->tensors[2];
    int op = p->op;
    if (op < 0 || op >= FERRY_BINARY2_COUNT || a->dtype != b->dtype)
        return FERRY_ERR_UNSUPPORTED;
    bool logical = op >= FERRY_BINARY2_LOGICAL_AND;
    ferry_status st = fk_plan_dtype(c, a->dtype);
    const ferry_kernel_tensor *ops[3] = {out, a, b};
    if (st == FERRY_OK)
        st = fk_plan_geom(c, &l->g, 3, ops);
    if (st != FERRY_OK)
        return st;
    snprintf(l->name, sizeof l->name, "ferry_%s_%s", logical ? "bin2b" : "bin2",
             fk_dtype_sfx[a->dtype]);
    l->family = "ELEM2";
    l->dtype = (int)a->dtype;
    l->to_bool = logical;
    l->nbufs = 3;
    l->bufs[0] = out->buffer;
    l->bufs[1] = a->buffer;
    l->bufs[2] = b->buffer;
    l->op = (fk_i32)op;
    return FERRY_OK;
}

ferry_status fk_plan_where(const fk_plan_ctx *c, const ferry_op_args *args, fk_elem2_launch *l)
{
    memset(l, 0, sizeof *l);
    if (args->ntensors != 4)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *out = &args->tensors[0], *cond = &args->tensors[1],
                              *a = &args->tensors[2], *b = &args->tensors[3];
    ferry_status st = fk_plan_dtype(c, out->dtype);
    /* (out, cond, a) and (out, b): one logical shape, so flat index i is one element in
     * both, each planned on the byte-width view its kernel reads. */
    const ferry_kernel_tensor *ops[3] = {out, cond, a};
    const ferry_kernel_tensor *opsb[2] = {out, b};
    if (st == FERRY_OK)
        st = fk_plan_geom(c, &l->g, 3, ops);
    if (st == FERRY_OK)
        st = fk_plan_geom(c, &l->gb, 2, opsb);
    if (st != FERRY_OK)
        return st;
    static const char *const names[4] = {"ferry_where_w8", "ferry_where_w16", "ferry_where_w32",
                                         "ferry_where_w64"};
    l->width_log2 = fk_width_log2(fk_dtype_size(out->dtype));
    snprintf(l->name, sizeof l->name, "%s", names[l->width_log2]);
    l->family = "WHERE";
    l->dtype = -1;
    l->nbufs = 3;
    l->bufs[0] = out->buffer;
    l->bufs[1] = cond->buffer;
    l->bufs[2] = a->buffer;
    l->b_buffer = b->buffer;
    return FERRY_OK;
}

/* ---- sort ----------------------------------------------------------------------------- */

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

/* Element offset and the two strides of a 2-d operand. */
static ferry_status sort_operand(const fk_plan_ctx *c, const ferry_kernel_tensor *t, fk_i64 *off,
                                 fk_i64 *rs, fk_i64 *es)
{
    *rs = t->strides[0];
    *es = t->strides[1];
    return elem_offset(c, t, off);
}

ferry_status fk_plan_sort(const fk_plan_ctx *c, const ferry_op_args *a, bool scatter,
                          struct fk_sort_launch *p, bool *nothing)
{
    memset(p, 0, sizeof *p);
    *nothing = true;
    const ferry_sort_params *sp = (const ferry_sort_params *)a->params;
    if (!sp || a->params_size < sizeof *sp || (a->ntensors != 3 && (scatter || a->ntensors != 2)))
        return FERRY_ERR_UNSUPPORTED;
    for (int i = 0; i < a->ntensors; i++)
        if (a->tensors[i].ndim != 2)
            return FERRY_ERR_UNSUPPORTED;
    if (sp->rows <= 0 || sp->n <= 0 || (!scatter && sp->k <= 0))
        return FERRY_OK;
    p->rows = sp->rows;
    p->n = sp->n;
    p->k = sp->k;
    /* sort: values, [indices,] input; sort_scatter: out, gradient, indices. */
    bool has_idx = a->ntensors == 3;
    const ferry_kernel_tensor *v = &a->tensors[0];
    const ferry_kernel_tensor *in = &a->tensors[scatter ? 1 : has_idx ? 2 : 1];
    const ferry_kernel_tensor *ix = has_idx ? &a->tensors[scatter ? 2 : 1] : NULL;
    ferry_status st = sort_operand(c, in, &p->in_off, &p->in_rs, &p->in_es);
    if (st == FERRY_OK)
        st = sort_operand(c, v, &p->v_off, &p->v_rs, &p->v_es);
    if (st == FERRY_OK && ix)
        st = sort_operand(c, ix, &p->i_off, &p->i_rs, &p->i_es);
    if (st != FERRY_OK)
        return st;
    p->esize = (fk_i32)fk_dtype_size(v->dtype);
    if (!scatter) {
        int64_t P = 1;
        while (P < sp->n)
            P *= 2;
        /* (key, index) pairs of 16 bytes each must fit one buffer. */
        if (P > ((int64_t)1 << 40) / sp->rows)
            return FERRY_ERR_UNSUPPORTED;
        p->P = P;
        p->scr_idx = sp->rows * P;
        p->code = sort_code(in->dtype);
        p->esize = (fk_i32)fk_dtype_size(in->dtype);
        p->flip = sp->descending != 0;
        p->has_idx = has_idx;
    }
    *nothing = false;
    return FERRY_OK;
}

/* ---- selection ------------------------------------------------------------------------ */

/* pos as the selection ops define it: dense count of `numel` int64 values. */
static ferry_status plan_pos(const fk_plan_ctx *c, const ferry_kernel_tensor *pos, int64_t numel,
                             fk_sgeom *g)
{
    if (pos->dtype != FERRY_INT64 || pos->ndim != 1 || pos->shape[0] != numel)
        return FERRY_ERR_UNSUPPORTED;
    g->pos_stride = pos->strides[0];
    return elem_offset(c, pos, &g->pos_offset);
}

ferry_status fk_plan_select(const fk_plan_ctx *c, const ferry_op_args *a, bool scatter,
                            fk_sgeom *g, size_t *width)
{
    memset(g, 0, sizeof *g);
    if (a->ntensors != 3)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *strided = &a->tensors[scatter ? 0 : 1];
    const ferry_kernel_tensor *dense = &a->tensors[scatter ? 1 : 0];
    if (dense->dtype != strided->dtype || dense->ndim != 1)
        return FERRY_ERR_UNSUPPORTED;
    /* The walk of the strided operand alone, dims merged where it allows. */
    fk_geom walk;
    const ferry_kernel_tensor *ops[1] = {strided};
    ferry_status st = fk_plan_geom(c, &walk, 1, ops);
    if (st == FERRY_OK)
        st = plan_pos(c, &a->tensors[2], walk.numel, g);
    if (st == FERRY_OK)
        st = elem_offset(c, dense, &g->dense_offset);
    if (st != FERRY_OK)
        return st;
    g->ndim = walk.ndim;
    for (int d = 0; d < walk.ndim; d++) {
        g->shape[d] = walk.shape[d];
        g->stride[d] = walk.stride[0][d];
    }
    g->offset = walk.offset[0];
    g->numel = walk.numel;
    g->dense_stride = dense->strides[0];
    *width = fk_dtype_size(strided->dtype);
    return FERRY_OK;
}

ferry_status fk_plan_nonzero(const fk_plan_ctx *c, const ferry_op_args *a, fk_sgeom *g)
{
    memset(g, 0, sizeof *g);
    const ferry_nonzero_params *p = (const ferry_nonzero_params *)a->params;
    if (a->ntensors != 2 || !p || a->params_size < sizeof *p || p->ndim < 1 ||
        p->ndim > FK_MAX_DIMS)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *out = &a->tensors[0];
    if (out->dtype != FERRY_INT64 || out->ndim != 2 || out->shape[1] != p->ndim ||
        out->strides[1] != 1)
        return FERRY_ERR_UNSUPPORTED;
    g->ndim = p->ndim;
    g->numel = 1;
    for (int d = 0; d < p->ndim; d++) {
        g->shape[d] = p->shape[d];
        g->numel *= p->shape[d];
    }
    g->dense_stride = out->strides[0];
    ferry_status st = plan_pos(c, &a->tensors[1], g->numel, g);
    return st == FERRY_OK ? elem_offset(c, out, &g->dense_offset) : st;
}

/* Indexing kernels (ferry/ops/index.h): gather and scatter, the reference and everyone's
 * fallback, so any strides (0 and negative too) and every dtype. index_select reaches
 * gather as an index of stride 0 outside `dim`; its rows of contiguous elements are
 * copied whole. Out-of-range indices are reported through the flag tensor. */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ferry/half.h>
#include <ferry/ops/index.h>

#include "cpu_internal.h"

static size_t elsize(ferry_dtype d)
{
    switch (d) {
    case FERRY_BOOL:
    case FERRY_UINT8:
    case FERRY_INT8: return 1;
    case FERRY_INT16:
    case FERRY_FLOAT16:
    case FERRY_BFLOAT16: return 2;
    case FERRY_INT32:
    case FERRY_FLOAT32: return 4;
    default: return 8;
    }
}

static char *base(const ferry_kernel_tensor *t)
{
    return (char *)t->buffer + t->byte_offset;
}

static int64_t read_index(const ferry_kernel_tensor *t, const char *p)
{
    if (t->dtype == FERRY_INT32) {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Records the first bad index (threads race only between bad ones: any is right). */
static void report(const ferry_kernel_tensor *flag, int64_t bad)
{
    int64_t *f = (int64_t *)base(flag);
#pragma omp critical(ferry_cpu_index_flag)
    if (f[0] == 0) {
        f[0] = 1;
        f[flag->ndim ? flag->strides[0] : 1] = bad;
    }
}

static bool index_args_ok(const ferry_op_args *a, size_t psize)
{
    return a->ntensors == 4 && a->params && a->params_size >= psize;
}

/* Position counter over `ndim` extents, started at linear index `at`. */
static void unravel(int ndim, const int64_t *shape, int64_t at, int64_t *pos)
{
    for (int d = ndim - 1; d >= 0; d--) {
        pos[d] = shape[d] ? at % shape[d] : 0;
        at = shape[d] ? at / shape[d] : 0;
    }
}

static void advance(int ndim, const int64_t *shape, int64_t *pos)
{
    for (int d = ndim - 1; d >= 0; d--) {
        if (++pos[d] < shape[d])
            return;
        pos[d] = 0;
    }
}

static ferry_status cpu_gather(int32_t device, const ferry_op_args *a)
{
    (void)device;
    if (!index_args_ok(a, sizeof(ferry_gather_params)))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_gather_params *p = a->params;
    const ferry_kernel_tensor *out = &a->tensors[0], *flag = &a->tensors[1],
                              *src = &a->tensors[2], *idx = &a->tensors[3];
    int nd = out->ndim, dim = p->dim;
    size_t es = elsize(out->dtype);
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= out->shape[d];
    if (n == 0)
        return FERRY_OK;
    /* Rows copied whole: the last dim is not `dim`, contiguous in out and src, and the
     * index does not vary along it (index_select). */
    int64_t row = 1;
    if (nd >= 2 && dim != nd - 1 && out->strides[nd - 1] == 1 && src->strides[nd - 1] == 1 &&
        idx->strides[nd - 1] == 0)
        row = out->shape[nd - 1];
    int rnd = row > 1 ? nd - 1 : nd; /* dims walked one position at a time */
    int64_t outer = n / row;
    char *ob = base(out), *sb = base(src), *ib = base(idx);
    size_t is = elsize(idx->dtype);
    int nt = cpu_threads_for(outer * row, 32768);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0, parts = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        parts = omp_get_num_threads();
#endif
        int64_t lo = cpu_split(outer, parts, t, 1), hi = cpu_split(outer, parts, t + 1, 1);
        int64_t pos[FERRY_MAX_DIMS];
        if (lo < hi)
            unravel(rnd, out->shape, lo, pos);
        for (int64_t k = lo; k < hi; k++) {
            int64_t oo = 0, so = 0, io = 0;
            for (int d = 0; d < rnd; d++) {
                oo += pos[d] * out->strides[d];
                io += pos[d] * idx->strides[d];
                if (d != dim)
                    so += pos[d] * src->strides[d];
            }
            int64_t i = read_index(idx, ib + io * (int64_t)is);
            if (i < -p->size || i >= p->size) {
                report(flag, i);
            } else {
                if (i < 0)
                    i += p->size;
                so += i * src->strides[dim];
                if (row > 1)
                    memcpy(ob + oo * (int64_t)es, sb + so * (int64_t)es, (size_t)row * es);
                else
                    memcpy(ob + oo * (int64_t)es, sb + so * (int64_t)es, es);
            }
            advance(rnd, out->shape, pos);
        }
    }
    return FERRY_OK;
}

static void add_into(ferry_dtype dt, char *dst, const char *src)
{
#define ADD_(T)                                                                             \
    do {                                                                                    \
        T x, y;                                                                             \
        memcpy(&x, dst, sizeof x);                                                          \
        memcpy(&y, src, sizeof y);                                                          \
        x = (T)(x + y);                                                                     \
        memcpy(dst, &x, sizeof x);                                                          \
    } while (0)
    switch (dt) {
    case FERRY_BOOL: *dst = (char)(*dst || *src); break;
    /* Integers wrap, as two's complement storage does (via the unsigned type). */
    case FERRY_UINT8: ADD_(uint8_t); break;
    case FERRY_INT8: {
        uint8_t x = (uint8_t)*dst, y = (uint8_t)*src;
        *dst = (char)(uint8_t)(x + y);
        break;
    }
    case FERRY_INT16: ADD_(uint16_t); break;
    case FERRY_INT32: ADD_(uint32_t); break;
    case FERRY_INT64: ADD_(uint64_t); break;
    case FERRY_FLOAT16: {
        uint16_t x, y;
        memcpy(&x, dst, 2);
        memcpy(&y, src, 2);
        x = ferry_f32_to_f16(ferry_f16_to_f32(x) + ferry_f16_to_f32(y));
        memcpy(dst, &x, 2);
        break;
    }
    case FERRY_BFLOAT16: {
        uint16_t x, y;
        memcpy(&x, dst, 2);
        memcpy(&y, src, 2);
        x = ferry_f32_to_bf16(ferry_bf16_to_f32(x) + ferry_bf16_to_f32(y));
        memcpy(dst, &x, 2);
        break;
    }
    case FERRY_FLOAT32: ADD_(float); break;
    case FERRY_FLOAT64: ADD_(double); break;
    }
#undef ADD_
}

/* One thread, in row-major order: two positions may name one element, and the result
 * must not depend on scheduling. */
static ferry_status cpu_scatter(int32_t device, const ferry_op_args *a)
{
    (void)device;
    if (!index_args_ok(a, sizeof(ferry_scatter_params)))
        return FERRY_ERR_UNSUPPORTED;
    const ferry_scatter_params *p = a->params;
    const ferry_kernel_tensor *self = &a->tensors[0], *flag = &a->tensors[1],
                              *idx = &a->tensors[2], *src = &a->tensors[3];
    int nd = idx->ndim, dim = p->dim;
    size_t es = elsize(self->dtype), is = elsize(idx->dtype);
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= idx->shape[d];
    char *db = base(self), *sb = base(src), *ib = base(idx);
    int64_t pos[FERRY_MAX_DIMS] = {0};
    for (int64_t k = 0; k < n; k++) {
        int64_t doff = 0, so = 0, io = 0;
        for (int d = 0; d < nd; d++) {
            io += pos[d] * idx->strides[d];
            so += pos[d] * src->strides[d];
            if (d != dim)
                doff += pos[d] * self->strides[d];
        }
        int64_t i = read_index(idx, ib + io * (int64_t)is);
        if (i < -p->size || i >= p->size) {
            report(flag, i);
        } else {
            if (i < 0)
                i += p->size;
            doff += i * self->strides[dim];
            if (p->reduce)
                add_into(self->dtype, db + doff * (int64_t)es, sb + so * (int64_t)es);
            else
                memcpy(db + doff * (int64_t)es, sb + so * (int64_t)es, es);
        }
        advance(nd, idx->shape, pos);
    }
    return FERRY_OK;
}

/* ---- "ferry.index" and "ferry.index_put": k index tensors over an iteration space ---- */

static void report_at(const ferry_kernel_tensor *flag, int64_t bad, int j)
{
    int64_t *f = (int64_t *)base(flag);
    int64_t s = flag->ndim ? flag->strides[0] : 1;
#pragma omp critical(ferry_cpu_index_flag)
    if (f[0] == 0) {
        f[0] = 1;
        f[s] = bad;
        f[2 * s] = j;
    }
}

typedef struct xwalk {
    const ferry_kernel_tensor *t0, *flag, *t2, *idx;
    const ferry_index_params *p;
    int nd;      /* dims walked one position at a time */
    int64_t row; /* elements of the last dim handled at once */
    int64_t outer;
    const char *ibase[FERRY_INDEX_MAX_INDICES]; /* each index's element 0 */
    int64_t isize[FERRY_INDEX_MAX_INDICES];     /* and its element size */
} xwalk;

static bool xwalk_init(xwalk *w, const ferry_op_args *a)
{
    if (a->ntensors < 3 || !a->params || a->params_size < sizeof(ferry_index_params))
        return false;
    const ferry_index_params *p = a->params;
    if (p->k < 0 || p->k > FERRY_INDEX_MAX_INDICES || a->ntensors != 3 + p->k)
        return false;
    w->t0 = &a->tensors[0];
    w->flag = &a->tensors[1];
    w->t2 = &a->tensors[2];
    w->idx = &a->tensors[3];
    w->p = p;
    int nd = w->t0->ndim;
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= w->t0->shape[d];
    /* Rows whole: the last dim is not the indices', and unit-stride in both operands. */
    w->row = 1;
    int last = nd - 1;
    if (nd >= 1 && !(last >= p->bdim && last < p->bdim + p->nbdims) &&
        w->t0->strides[last] == 1 && w->t2->strides[last] == 1 && w->t0->shape[last] > 1) {
        bool flat = true;
        for (int j = 0; j < p->k; j++)
            flat = flat && w->idx[j].strides[last] == 0;
        if (flat)
            w->row = w->t0->shape[last];
    }
    w->nd = w->row > 1 ? nd - 1 : nd;
    w->outer = w->row ? n / w->row : 0;
    for (int j = 0; j < p->k; j++) {
        w->ibase[j] = base(&w->idx[j]);
        w->isize[j] = (int64_t)elsize(w->idx[j].dtype);
    }
    return true;
}

/* Offsets of position pos in t0 and t2 (elements), the indices applied to t2 (index)
 * or t0 (index_put); false when one is out of range (reported). */
static bool xwalk_at(const xwalk *w, const int64_t *pos, bool into_t0, int64_t *o0, int64_t *o2)
{
    int64_t a = 0, b = 0;
    for (int d = 0; d < w->nd; d++) {
        a += pos[d] * w->t0->strides[d];
        b += pos[d] * w->t2->strides[d];
    }
    for (int j = 0; j < w->p->k; j++) {
        const ferry_kernel_tensor *x = &w->idx[j];
        int64_t io = 0;
        for (int d = 0; d < w->nd; d++)
            io += pos[d] * x->strides[d];
        int64_t i = read_index(x, w->ibase[j] + io * w->isize[j]);
        int64_t size = w->p->size[j];
        if (i < -size || i >= size) {
            report_at(w->flag, i, j);
            return false;
        }
        if (i < 0)
            i += size;
        if (into_t0)
            a += i * w->p->stride[j];
        else
            b += i * w->p->stride[j];
    }
    *o0 = a;
    *o2 = b;
    return true;
}

static ferry_status cpu_index(int32_t device, const ferry_op_args *a)
{
    (void)device;
    xwalk w;
    if (!xwalk_init(&w, a))
        return FERRY_ERR_UNSUPPORTED;
    if (w.outer == 0)
        return FERRY_OK;
    size_t es = elsize(w.t0->dtype);
    char *ob = base(w.t0), *sb = base(w.t2);
    int nt = cpu_threads_for(w.outer * w.row, 32768);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0, parts = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        parts = omp_get_num_threads();
#endif
        int64_t lo = cpu_split(w.outer, parts, t, 1), hi = cpu_split(w.outer, parts, t + 1, 1);
        int64_t pos[FERRY_MAX_DIMS];
        if (lo < hi)
            unravel(w.nd, w.t0->shape, lo, pos);
        for (int64_t e = lo; e < hi; e++) {
            int64_t oo, so;
            if (xwalk_at(&w, pos, false, &oo, &so))
                memcpy(ob + oo * (int64_t)es, sb + so * (int64_t)es, (size_t)w.row * es);
            advance(w.nd, w.t0->shape, pos);
        }
    }
    return FERRY_OK;
}

/* Assignment runs in parallel (of duplicates any one wins, as PyTorch says).
 * Accumulation must count every duplicate, and its sums must not depend on scheduling:
 * threads split a dim the indices do not span (the first walked dim when it is not
 * theirs, else the columns of the rows), so two threads never meet at one element and
 * each element is summed in row-major order, as one thread would. */
static ferry_status cpu_index_put(int32_t device, const ferry_op_args *a)
{
    (void)device;
    xwalk w;
    if (!xwalk_init(&w, a))
        return FERRY_ERR_UNSUPPORTED;
    if (w.outer == 0)
        return FERRY_OK;
    size_t es = elsize(w.t0->dtype);
    char *db = base(w.t0), *vb = base(w.t2);
    bool acc = w.p->accumulate != 0;
    int nt = cpu_threads_for(w.outer * w.row, 32768);
    int64_t align = 1;       /* outer positions per part boundary */
    bool by_columns = false; /* accumulate: threads split each row instead */
    if (acc && nt > 1) {
        if (w.p->bdim > 0 && w.nd >= 1 && w.t0->shape[0] > 1) {
            align = w.outer / w.t0->shape[0];
            if (nt > w.t0->shape[0])
                nt = (int)w.t0->shape[0];
        } else if (w.row >= 64) {
            by_columns = true;
            if (nt > w.row / 32)
                nt = (int)(w.row / 32);
        } else {
            nt = 1;
        }
    }
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0, parts = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        parts = omp_get_num_threads();
#endif
        int64_t lo = 0, hi = w.outer, c0 = 0, c1 = w.row;
        if (by_columns) {
            c0 = cpu_split(w.row, parts, t, 1);
            c1 = cpu_split(w.row, parts, t + 1, 1);
        } else {
            lo = cpu_split(w.outer, parts, t, align);
            hi = cpu_split(w.outer, parts, t + 1, align);
        }
        int64_t pos[FERRY_MAX_DIMS];
        if (lo < hi && c0 < c1)
            unravel(w.nd, w.t0->shape, lo, pos);
        for (int64_t e = lo; e < hi && c0 < c1; e++) {
            int64_t doff, voff;
            if (xwalk_at(&w, pos, true, &doff, &voff)) {
                char *dst = db + (doff + c0) * (int64_t)es;
                const char *src = vb + (voff + c0) * (int64_t)es;
                if (!acc)
                    memcpy(dst, src, (size_t)(c1 - c0) * es);
                else
                    for (int64_t c = 0; c < c1 - c0; c++)
                        add_into(w.t0->dtype, dst + c * (int64_t)es, src + c * (int64_t)es);
            }
            advance(w.nd, w.t0->shape, pos);
        }
    }
    return FERRY_OK;
}

const ferry_named_entry cpu_named_index[] = {
    {FERRY_OP_GATHER, cpu_gather},
    {FERRY_OP_SCATTER, cpu_scatter},
    {FERRY_OP_INDEX, cpu_index},
    {FERRY_OP_INDEX_PUT, cpu_index_put},
    {NULL, NULL},
};

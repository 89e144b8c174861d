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

/* A row of `n` bytes; the sizes of short rows are constants, so the copy is a few vector
 * moves instead of a call (index_select of narrow rows is mostly this). */
static inline void copy_row(char *d, const char *s, size_t n)
{
    switch (n) {
    case 8: memcpy(d, s, 8); break;
    case 16: memcpy(d, s, 16); break;
    case 32: memcpy(d, s, 32); break;
    case 64: memcpy(d, s, 64); break;
    case 128: memcpy(d, s, 128); break;
    default: memcpy(d, s, n); break;
    }
}

/* Random reads of src are latency-bound: how many elements (or rows) ahead their cache
 * lines are requested, so that many misses are in flight at once. */
#define GATHER_AHEAD 16

/* index_select's rows when the counter has one dim (a 2-d tensor, dim 0): rows lo .. hi-1
 * of out (byte stride os) from src rows index[k] (byte stride sd), index of type IT at
 * byte stride is. The loop stays short so that the core keeps many rows in flight. */
#define SELECT_ROWS(IT)                                                                     \
    static void select_rows_##IT(char *ob, const char *sb, const char *ib, int64_t lo,      \
                                 int64_t hi, int64_t os, int64_t is, int64_t sd,             \
                                 int64_t size, size_t rowbytes, bool *any, int64_t *bad)     \
    {                                                                                       \
        for (int64_t k = lo; k < hi; k++) {                                                 \
            if (k + GATHER_AHEAD < hi) {                                                    \
                IT f0;                                                                      \
                memcpy(&f0, ib + (k + GATHER_AHEAD) * is, sizeof f0);                       \
                int64_t f = (int64_t)f0 + (f0 < 0 ? size : 0);                              \
                if (f >= 0 && f < size)                                                     \
                    __builtin_prefetch(sb + f * sd);                                        \
            }                                                                               \
            IT i0;                                                                          \
            memcpy(&i0, ib + k * is, sizeof i0);                                            \
            int64_t i = (int64_t)i0;                                                        \
            if (i < -size || i >= size) {                                                   \
                if (!*any) {                                                                \
                    *any = true;                                                            \
                    *bad = i;                                                               \
                }                                                                           \
                continue;                                                                   \
            }                                                                               \
            i += i < 0 ? size : 0;                                                          \
            copy_row(ob + k * os, sb + i * sd, rowbytes);                                   \
        }                                                                                   \
    }
SELECT_ROWS(int32_t)
SELECT_ROWS(int64_t)
#undef SELECT_ROWS

/* One line of out along its last dim: L elements at out + oo (stride os) from src + so
 * (stride ss, 0 when the last dim is `dim`), index at ib + io (stride is, elements of
 * type IT), src moving by sd per index step. Returns the first bad index's value through
 * *bad (and *any), writing nothing for it. */
#define GATHER_LINE(T, IT)                                                                  \
    static void gather_line_##T##_##IT(char *ob, const char *sb, const char *ib, int64_t L,  \
                                       int64_t os, int64_t ss, int64_t is, int64_t sd,       \
                                       int64_t size, bool *any, int64_t *bad)                \
    {                                                                                       \
        T *o = (T *)(void *)ob;                                                             \
        const T *sp = (const T *)(const void *)sb;                                          \
        const IT *ip = (const IT *)(const void *)ib;                                        \
        for (int64_t c = 0; c < L; c++) {                                                   \
            if (c + GATHER_AHEAD < L) {                                                     \
                int64_t f = (int64_t)ip[(c + GATHER_AHEAD) * is];                           \
                f += f < 0 ? size : 0;                                                      \
                if (f >= 0 && f < size)                                                     \
                    __builtin_prefetch(sp + (c + GATHER_AHEAD) * ss + f * sd);              \
            }                                                                               \
            int64_t i = (int64_t)ip[c * is];                                                \
            if (i < -size || i >= size) {                                                   \
                if (!*any) {                                                                \
                    *any = true;                                                            \
                    *bad = i;                                                               \
                }                                                                           \
                continue;                                                                   \
            }                                                                               \
            i += i < 0 ? size : 0;                                                          \
            o[c * os] = sp[c * ss + i * sd];                                                \
        }                                                                                   \
    }
GATHER_LINE(uint8_t, int32_t)
GATHER_LINE(uint8_t, int64_t)
GATHER_LINE(uint16_t, int32_t)
GATHER_LINE(uint16_t, int64_t)
GATHER_LINE(uint32_t, int32_t)
GATHER_LINE(uint32_t, int64_t)
GATHER_LINE(uint64_t, int32_t)
GATHER_LINE(uint64_t, int64_t)
#undef GATHER_LINE

/* Lines lo .. hi-1 of a gather whose counter has one dim (2-d after merging): line k,
 * element c reads index ib[k*ik + c*ic] and src[k*sk + c*sc + i*sd] into out[k*ok + c*oc]
 * (strides in elements). One tight loop, the first element of a later line fetched
 * ahead, as select_rows does for whole rows. */
#define GATHER_LINES(T, IT)                                                                 \
    static void gather_lines_##T##_##IT(char *ob, const char *sb, const char *ib, int64_t lo, \
                                        int64_t hi, int64_t L, const int64_t st[6],          \
                                        int64_t sd, int64_t size, bool *any, int64_t *bad)   \
    {                                                                                       \
        T *o = (T *)(void *)ob;                                                             \
        const T *sp = (const T *)(const void *)sb;                                          \
        const IT *ip = (const IT *)(const void *)ib;                                        \
        const int64_t ok = st[0], oc = st[1], ik = st[2], ic = st[3], sk = st[4], sc = st[5]; \
        for (int64_t k = lo; k < hi; k++) {                                                 \
            if (k + GATHER_AHEAD / 4 < hi) {                                                \
                int64_t v = k + GATHER_AHEAD / 4, f = (int64_t)ip[v * ik];                  \
                f += f < 0 ? size : 0;                                                      \
                if (f >= 0 && f < size)                                                     \
                    __builtin_prefetch(sp + v * sk + f * sd);                               \
            }                                                                               \
            for (int64_t c = 0; c < L; c++) {                                               \
                int64_t i = (int64_t)ip[k * ik + c * ic];                                   \
                if (i < -size || i >= size) {                                               \
                    if (!*any) {                                                            \
                        *any = true;                                                        \
                        *bad = i;                                                           \
                    }                                                                       \
                    continue;                                                               \
                }                                                                           \
                i += i < 0 ? size : 0;                                                      \
                o[k * ok + c * oc] = sp[k * sk + c * sc + i * sd];                          \
            }                                                                               \
        }                                                                                   \
    }
GATHER_LINES(uint8_t, int32_t)
GATHER_LINES(uint8_t, int64_t)
GATHER_LINES(uint16_t, int32_t)
GATHER_LINES(uint16_t, int64_t)
GATHER_LINES(uint32_t, int32_t)
GATHER_LINES(uint32_t, int64_t)
GATHER_LINES(uint64_t, int32_t)
GATHER_LINES(uint64_t, int64_t)
#undef GATHER_LINES

typedef void (*gather_lines_fn)(char *, const char *, const char *, int64_t, int64_t, int64_t,
                                const int64_t *, int64_t, int64_t, bool *, int64_t *);

static gather_lines_fn gather_lines_for(size_t es, bool idx64)
{
    switch (es) {
    case 1: return idx64 ? gather_lines_uint8_t_int64_t : gather_lines_uint8_t_int32_t;
    case 2: return idx64 ? gather_lines_uint16_t_int64_t : gather_lines_uint16_t_int32_t;
    case 4: return idx64 ? gather_lines_uint32_t_int64_t : gather_lines_uint32_t_int32_t;
    default: return idx64 ? gather_lines_uint64_t_int64_t : gather_lines_uint64_t_int32_t;
    }
}

typedef void (*gather_line_fn)(char *, const char *, const char *, int64_t, int64_t, int64_t,
                               int64_t, int64_t, int64_t, bool *, int64_t *);

static gather_line_fn gather_line_for(size_t es, bool idx64)
{
    switch (es) {
    case 1: return idx64 ? gather_line_uint8_t_int64_t : gather_line_uint8_t_int32_t;
    case 2: return idx64 ? gather_line_uint16_t_int64_t : gather_line_uint16_t_int32_t;
    case 4: return idx64 ? gather_line_uint32_t_int64_t : gather_line_uint32_t_int32_t;
    default: return idx64 ? gather_line_uint64_t_int64_t : gather_line_uint64_t_int32_t;
    }
}

/* Element pointers must be aligned to their size for the typed line copies: true of
 * every buffer the backends allocate, checked anyway for foreign (DLPack) memory. */
static bool aligned_for(const ferry_kernel_tensor *t, size_t es)
{
    return ((uintptr_t)base(t) & (es - 1)) == 0;
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
    /* Dims of extent 1 (other than `dim`) dropped, and neighbours merged where all three
     * tensors step through them as through one (a contiguous 3-d index_select is a 2-d
     * one), so more of the work lands on the row and line loops below. */
    int64_t sh[FERRY_MAX_DIMS], ost[FERRY_MAX_DIMS], sst[FERRY_MAX_DIMS], ist[FERRY_MAX_DIMS];
    int m = 0, mdim = -1; /* -1 until `dim` has its place */
    for (int d = 0; d < nd; d++) {
        if (d != dim && out->shape[d] == 1)
            continue;
        if (m > 0 && d != dim && m - 1 != mdim &&
            ost[m - 1] == out->shape[d] * out->strides[d] &&
            sst[m - 1] == out->shape[d] * src->strides[d] &&
            ist[m - 1] == out->shape[d] * idx->strides[d]) {
            sh[m - 1] *= out->shape[d];
            ost[m - 1] = out->strides[d];
            sst[m - 1] = src->strides[d];
            ist[m - 1] = idx->strides[d];
            continue;
        }
        if (d == dim)
            mdim = m;
        sh[m] = out->shape[d];
        ost[m] = out->strides[d];
        sst[m] = src->strides[d];
        ist[m] = idx->strides[d];
        m++;
    }
    /* Rows copied whole: the last dim is not `dim`, contiguous in out and src, and the
     * index does not vary along it (index_select). Otherwise the last dim is walked as a
     * line by a typed loop, and the position counter moves once per line. */
    int64_t row = 1;
    if (m >= 2 && mdim != m - 1 && ost[m - 1] == 1 && sst[m - 1] == 1 &&
        ist[m - 1] == 0)
        row = sh[m - 1];
    int rnd = m - 1; /* dims the counter walks; the last is a row or a line */
    int64_t L = sh[m - 1];
    int64_t outer = n / L;
    char *ob = base(out), *sb = base(src), *ib = base(idx);
    size_t is = elsize(idx->dtype);
    bool typed = row == 1 && aligned_for(out, es) && aligned_for(src, es) && aligned_for(idx, is);
    gather_line_fn line = gather_line_for(es, idx->dtype != FERRY_INT32);
    int64_t os_l = ost[m - 1], is_l = ist[m - 1];
    int64_t ss_l = mdim == m - 1 ? 0 : sst[m - 1], sd = sst[mdim];
    int nt = cpu_threads_for(n, 32768);
    /* Fewer lines than threads (a 1-d gather): lines split in chunks the threads share. */
    int64_t nch = row == 1 && outer < nt ? (L + 32767) / 32768 : 1;
    int64_t units = outer * nch;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        cpu_thread_part(units, 1, &lo, &hi);
        int64_t pos[FERRY_MAX_DIMS];
        bool any = false;
        int64_t bad = 0;
        if (row > 1 && rnd == 1) {
            int64_t esz = (int64_t)es, isz = (int64_t)is;
            (idx->dtype == FERRY_INT32 ? select_rows_int32_t : select_rows_int64_t)(
                ob, sb, ib, lo, hi, ost[0] * esz, ist[0] * isz, sd * esz,
                p->size, (size_t)row * es, &any, &bad);
            lo = hi;
        }
        if (row == 1 && typed && rnd == 1 && nch == 1) {
            const int64_t st[6] = {ost[0], os_l, ist[0], is_l, mdim == 0 ? 0 : sst[0], ss_l};
            gather_lines_for(es, idx->dtype != FERRY_INT32)(ob, sb, ib, lo, hi, L, st, sd,
                                                            p->size, &any, &bad);
            lo = hi;
        }
        if (lo < hi && nch == 1)
            unravel(rnd, sh, lo, pos);
        for (int64_t u = lo; u < hi; u++) {
            int64_t c0 = 0, c1 = L;
            if (nch > 1) {
                unravel(rnd, sh, u / nch, pos);
                c0 = L * (u % nch) / nch;
                c1 = L * (u % nch + 1) / nch;
            }
            int64_t oo = c0 * os_l, so = c0 * ss_l, io = c0 * is_l;
            for (int d = 0; d < rnd; d++) {
                oo += pos[d] * ost[d];
                io += pos[d] * ist[d];
                if (d != mdim)
                    so += pos[d] * sst[d];
            }
            if (row > 1) {
                int64_t i = read_index(idx, ib + io * (int64_t)is);
                if (i < -p->size || i >= p->size) {
                    if (!any) {
                        any = true;
                        bad = i;
                    }
                } else {
                    i += i < 0 ? p->size : 0;
                    so += i * sd;
                    copy_row(ob + oo * (int64_t)es, sb + so * (int64_t)es, (size_t)row * es);
                }
            } else if (typed) {
                line(ob + oo * (int64_t)es, sb + so * (int64_t)es, ib + io * (int64_t)is,
                     c1 - c0, os_l, ss_l, is_l, sd, p->size, &any, &bad);
            } else {
                for (int64_t c = 0; c < c1 - c0; c++) {
                    int64_t i = read_index(idx, ib + (io + c * is_l) * (int64_t)is);
                    if (i < -p->size || i >= p->size) {
                        if (!any) {
                            any = true;
                            bad = i;
                        }
                        continue;
                    }
                    i += i < 0 ? p->size : 0;
                    memcpy(ob + (oo + c * os_l) * (int64_t)es,
                           sb + (so + c * ss_l + i * sd) * (int64_t)es, es);
                }
            }
            if (nch == 1)
                advance(rnd, sh, pos);
        }
        if (any)
            report(flag, bad);
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

/* Operands of the walk: 0 out or self (t0), 1 src or values (t2), 2 .. k+1 the indices. */
#define XOPS (2 + FERRY_INDEX_MAX_INDICES)

/* The iteration space reduced as cpu_nd_init reduces one (extent-1 dims dropped, a dim
 * merged into its inner neighbour where every operand steps over both as one run), so
 * that trailing dims the indices do not vary and t0 and t2 hold contiguously become one
 * row copied whole: t[i, j] of a 3-d t copies rows, t[:, idx] walks elements. */
typedef struct xplan {
    const ferry_kernel_tensor *t0, *flag, *t2, *idx;
    const ferry_index_params *p;
    int k, nops;
    int m;            /* dims walked one position at a time */
    int64_t row;      /* elements of t0 and t2 copied at once, unit-stride in both */
    int64_t outer;    /* positions walked: numel / row */
    int64_t shape0;   /* extent of the space's first dim */
    int64_t sh[FERRY_MAX_DIMS];
    int64_t st[FERRY_MAX_DIMS][XOPS]; /* st[d][o]: operand o's stride in walked dim d */
    const char *ibase[FERRY_INDEX_MAX_INDICES];
    int64_t isize[FERRY_INDEX_MAX_INDICES];
} xplan;

static bool xplan_init(xplan *w, const ferry_op_args *a)
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
    w->k = p->k;
    w->nops = 2 + p->k;
    int nd = w->t0->ndim;
    const int64_t *str[XOPS];
    str[0] = w->t0->strides;
    str[1] = w->t2->strides;
    for (int j = 0; j < p->k; j++) {
        str[2 + j] = w->idx[j].strides;
        w->ibase[j] = base(&w->idx[j]);
        w->isize[j] = (int64_t)elsize(w->idx[j].dtype);
    }
    int64_t n = 1;
    int g = 0; /* dims built innermost first, reversed below */
    for (int d = nd - 1; d >= 0; d--) {
        int64_t e = w->t0->shape[d];
        n *= e;
        if (e == 1)
            continue;
        bool merge = g > 0;
        for (int o = 0; merge && o < w->nops; o++)
            merge = str[o][d] == w->st[g - 1][o] * w->sh[g - 1];
        if (merge) {
            w->sh[g - 1] *= e;
            continue;
        }
        w->sh[g] = e;
        for (int o = 0; o < w->nops; o++)
            w->st[g][o] = str[o][d];
        g++;
    }
    for (int i = 0, j = g - 1; i < j; i++, j--) {
        int64_t t = w->sh[i];
        w->sh[i] = w->sh[j];
        w->sh[j] = t;
        for (int o = 0; o < w->nops; o++) {
            t = w->st[i][o];
            w->st[i][o] = w->st[j][o];
            w->st[j][o] = t;
        }
    }
    w->shape0 = nd ? w->t0->shape[0] : 1;
    w->row = 1;
    w->m = g;
    if (g >= 1 && w->st[g - 1][0] == 1 && w->st[g - 1][1] == 1) {
        bool flat = true;
        for (int j = 0; j < p->k; j++)
            flat = flat && w->st[g - 1][2 + j] == 0;
        if (flat) {
            w->row = w->sh[g - 1];
            w->m = g - 1;
        }
    }
    w->outer = n / w->row;
    return true;
}

/* A position of the walk and every operand's offset there (elements). */
typedef struct xcur {
    int64_t pos[FERRY_MAX_DIMS];
    int64_t off[XOPS];
} xcur;

/* The one place positions are divided out: a thread's first position. */
static void xcur_start(const xplan *w, xcur *c, int64_t at)
{
    for (int o = 0; o < w->nops; o++)
        c->off[o] = 0;
    for (int d = w->m - 1; d >= 0; d--) {
        c->pos[d] = at % w->sh[d];
        at /= w->sh[d];
        for (int o = 0; o < w->nops; o++)
            c->off[o] += c->pos[d] * w->st[d][o];
    }
}

/* One step of dim `from`, carrying into the dims before it. */
static inline void xcur_carry(const xplan *w, xcur *c, int from)
{
    for (int d = from; d >= 0; d--) {
        if (++c->pos[d] < w->sh[d]) {
            for (int o = 0; o < w->nops; o++)
                c->off[o] += w->st[d][o];
            return;
        }
        c->pos[d] = 0;
        for (int o = 0; o < w->nops; o++)
            c->off[o] -= w->st[d][o] * (w->sh[d] - 1);
    }
}

static inline void xcur_next(const xplan *w, xcur *c)
{
    xcur_carry(w, c, w->m - 1);
}

/* A thread's first bad index, reported once when it is done. */
typedef struct xbad {
    bool any;
    int j;
    int64_t value;
} xbad;

/* Positions per block: the offsets of a block are computed (and the rows they name
 * requested) in one loop, then the block is copied in another, so that a block of
 * misses is in flight at once, as select_rows keeps rows in flight. */
#define XBLOCK 64

/* Moves c on by n positions, n at most what is left of its line (walked dim m-1). */
static void xcur_skip(const xplan *w, xcur *c, int64_t n)
{
    int last = w->m - 1;
    if (last < 0)
        return;
    c->pos[last] += n;
    for (int o = 0; o < w->nops; o++)
        c->off[o] += n * w->st[last][o];
    if (c->pos[last] < w->sh[last])
        return;
    c->pos[last] = 0;
    for (int o = 0; o < w->nops; o++)
        c->off[o] -= w->sh[last] * w->st[last][o];
    xcur_carry(w, c, last - 1);
}

/* Index j's value at byte p; v in [-size, size) exactly when v + size, unsigned, is
 * below 2 size, so one compare finds both kinds of bad index. */
#define XIDX_(j, p, v, bad)                                                                 \
    do {                                                                                    \
        if (is8[j]) {                                                                       \
            memcpy(&v, (p), 8);                                                             \
        } else {                                                                            \
            int32_t v32_;                                                                   \
            memcpy(&v32_, (p), 4);                                                          \
            v = v32_;                                                                       \
        }                                                                                   \
        bad |= (uint64_t)v + (uint64_t)size[j] >= 2 * (uint64_t)size[j];                    \
        v += v < 0 ? size[j] : 0;                                                           \
    } while (0)

/* Read for index, write for index_put (the access argument must be a constant even in
 * builds that do not inline). */
#define XPREFETCH_(p)                                                                       \
    do {                                                                                    \
        if (into_t0)                                                                        \
            __builtin_prefetch((p), 1);                                                     \
        else                                                                                \
            __builtin_prefetch((p), 0);                                                     \
    } while (0)

/* The random side's offsets (t2's for index, t0's for index_put) of n positions of one
 * line from c on into off, each row requested (at pf + offset * es) as soon as its
 * address is known. One and two index tensors have their own loops, free of the loop
 * over j. Returns false, off then meaningless, when some index is out of range. */
static inline __attribute__((always_inline)) bool
xfill_line(const xplan *w, const xcur *c, int64_t n, bool into_t0, int64_t *off,
           const char *pf, int64_t es)
{
    int last = w->m - 1, k = w->k;
    const char *ip[FERRY_INDEX_MAX_INDICES];
    int64_t step[FERRY_INDEX_MAX_INDICES], size[FERRY_INDEX_MAX_INDICES],
        stride[FERRY_INDEX_MAX_INDICES];
    bool is8[FERRY_INDEX_MAX_INDICES];
    for (int j = 0; j < k; j++) {
        ip[j] = w->ibase[j] + c->off[2 + j] * w->isize[j];
        step[j] = (last >= 0 ? w->st[last][2 + j] : 0) * w->isize[j];
        size[j] = w->p->size[j];
        stride[j] = w->p->stride[j];
        is8[j] = w->isize[j] == 8;
    }
    int64_t a = c->off[into_t0 ? 0 : 1], as = last >= 0 ? w->st[last][into_t0 ? 0 : 1] : 0;
    uint64_t bad = 0;
    if (k == 1) {
        for (int64_t e = 0; e < n; e++) {
            int64_t v;
            XIDX_(0, ip[0] + e * step[0], v, bad);
            off[e] = a + e * as + v * stride[0];
            XPREFETCH_(pf + off[e] * es);
        }
    } else if (k == 2) {
        for (int64_t e = 0; e < n; e++) {
            int64_t v0, v1;
            XIDX_(0, ip[0] + e * step[0], v0, bad);
            XIDX_(1, ip[1] + e * step[1], v1, bad);
            off[e] = a + e * as + v0 * stride[0] + v1 * stride[1];
            XPREFETCH_(pf + off[e] * es);
        }
    } else {
        for (int64_t e = 0; e < n; e++) {
            int64_t o = a + e * as;
            for (int j = 0; j < k; j++) {
                int64_t v;
                XIDX_(j, ip[j] + e * step[j], v, bad);
                o += v * stride[j];
            }
            off[e] = o;
            XPREFETCH_(pf + o * es);
        }
    }
    return !bad;
}
#undef XIDX_
#undef XPREFETCH_

/* A block of n positions: d[..] = s[..] (or +=, acc), len elements of es bytes, the
 * random side at off[e] and the other at lin + e * ls (t0 random for put, t2 for
 * index). Short element sizes are constants, so each copy is a move, not a call. */
#define XLOOP_(...)                                                                         \
    for (int64_t e = 0; e < n; e++) {                                                       \
        int64_t q = lin + e * ls;                                                           \
        char *dp = d + (put ? off[e] : q) * es;                                             \
        const char *sp = s + (put ? q : off[e]) * es;                                       \
        __VA_ARGS__;                                                                        \
    }

static inline __attribute__((always_inline)) void
xcopy(char *d, const char *s, const int64_t *off, int64_t lin, int64_t ls, int64_t n,
      bool put, int64_t es, int64_t len)
{
    if (len == 1) {
        switch (es) {
        case 1: XLOOP_(memcpy(dp, sp, 1)); return;
        case 2: XLOOP_(memcpy(dp, sp, 2)); return;
        case 4: XLOOP_(memcpy(dp, sp, 4)); return;
        default: XLOOP_(memcpy(dp, sp, 8)); return;
        }
    }
    size_t rb = (size_t)(len * es);
    XLOOP_(copy_row(dp, sp, rb));
}

/* index_put's += in block order (so each element sums in the walk's order); the
 * common dtypes typed, the rest through add_into. */
static void xadd(ferry_dtype dt, char *d, const char *s, const int64_t *off, int64_t lin,
                 int64_t ls, int64_t n, int64_t es, int64_t len)
{
    const bool put = true;
#define XADD_(T)                                                                            \
    XLOOP_(for (int64_t c = 0; c < len; c++) {                                              \
        T x, y;                                                                             \
        memcpy(&x, dp + c * (int64_t)sizeof(T), sizeof x);                                  \
        memcpy(&y, sp + c * (int64_t)sizeof(T), sizeof y);                                  \
        x = (T)(x + y);                                                                     \
        memcpy(dp + c * (int64_t)sizeof(T), &x, sizeof x);                                  \
    });                                                                                     \
    return
    /* Integers wrap through their unsigned types, as add_into's do. */
    switch (dt) {
    case FERRY_FLOAT32: XADD_(float);
    case FERRY_FLOAT64: XADD_(double);
    case FERRY_INT32: XADD_(uint32_t);
    case FERRY_INT64: XADD_(uint64_t);
    case FERRY_INT16: XADD_(uint16_t);
    case FERRY_UINT8:
    case FERRY_INT8: XADD_(uint8_t);
    default: break;
    }
#undef XADD_
    XLOOP_(for (int64_t c = 0; c < len; c++) add_into(dt, dp + c * es, sp + c * es));
}
#undef XLOOP_

/* A block with a bad index, position by position: the bad ones are skipped, the first
 * recorded. Rare, so plain. */
static void xslow(const xplan *w, xcur c, int64_t n, bool put, bool acc, char *d,
                  const char *s, int64_t es, int64_t len, xbad *bad)
{
    for (int64_t e = 0; e < n; e++, xcur_next(w, &c)) {
        int64_t sum = 0;
        bool ok = true;
        for (int j = 0; ok && j < w->k; j++) {
            int64_t i = read_index(&w->idx[j], w->ibase[j] + c.off[2 + j] * w->isize[j]);
            int64_t size = w->p->size[j];
            if (i < -size || i >= size) {
                if (!bad->any) {
                    bad->any = true;
                    bad->j = j;
                    bad->value = i;
                }
                ok = false;
            } else {
                sum += (i < 0 ? i + size : i) * w->p->stride[j];
            }
        }
        if (!ok)
            continue;
        char *dp = d + (c.off[0] + (put ? sum : 0)) * es;
        const char *sp = s + (c.off[1] + (put ? 0 : sum)) * es;
        if (acc)
            for (int64_t q = 0; q < len; q++)
                add_into(w->t0->dtype, dp + q * es, sp + q * es);
        else
            memcpy(dp, sp, (size_t)(len * es));
    }
}

/* One block between its fill and its copy. */
typedef struct xblock {
    int64_t n, lin, ls;
    bool ok;
    xcur at; /* the block's first position, kept only when !ok */
    int64_t off[XBLOCK];
} xblock;

/* Positions [lo, hi) of the walk, columns [c0, c1) of each row, in blocks that stay
 * within one line. A block is filled before the one before it is copied, so its rows
 * have a block's time to arrive. put: into t0 at the indices, adding when acc; else an
 * index gather into t0 from t2 at the indices. */
static void xrun(const xplan *w, int64_t lo, int64_t hi, int64_t c0, int64_t c1, bool put,
                 bool acc)
{
    if (lo >= hi || c0 >= c1)
        return;
    int64_t es = (int64_t)elsize(w->t0->dtype), len = c1 - c0;
    char *d = base(w->t0) + c0 * es;
    const char *s = base(w->t2) + c0 * es;
    int last = w->m - 1;
    xblock blk[2];
    xbad bad = {false, 0, 0};
    xcur c;
    xcur_start(w, &c, lo);
    int cur = 0;
    blk[1].n = 0; /* nothing to copy before the first block */
    for (;;) {
        xblock *f = &blk[cur], *g = &blk[cur ^ 1];
        f->n = hi - lo < XBLOCK ? hi - lo : XBLOCK;
        if (f->n > 0) {
            if (last >= 0 && f->n > w->sh[last] - c.pos[last])
                f->n = w->sh[last] - c.pos[last];
            f->lin = c.off[put ? 1 : 0];
            f->ls = last >= 0 ? w->st[last][put ? 1 : 0] : 0;
            f->ok = put ? xfill_line(w, &c, f->n, true, f->off, d, es)
                        : xfill_line(w, &c, f->n, false, f->off, s, es);
            if (!f->ok)
                f->at = c;
            xcur_skip(w, &c, f->n);
            lo += f->n;
        }
        if (g->n > 0) {
            if (!g->ok)
                xslow(w, g->at, g->n, put, acc, d, s, es, len, &bad);
            else if (acc)
                xadd(w->t0->dtype, d, s, g->off, g->lin, g->ls, g->n, es, len);
            else if (put)
                xcopy(d, s, g->off, g->lin, g->ls, g->n, true, es, len);
            else
                xcopy(d, s, g->off, g->lin, g->ls, g->n, false, es, len);
        }
        if (f->n == 0)
            break;
        cur ^= 1;
    }
    if (bad.any)
        report_at(w->flag, bad.value, bad.j);
}

static ferry_status cpu_index(int32_t device, const ferry_op_args *a)
{
    (void)device;
    xplan w;
    if (!xplan_init(&w, a))
        return FERRY_ERR_UNSUPPORTED;
    if (w.outer == 0)
        return FERRY_OK;
    size_t es = elsize(w.t0->dtype);
    char *ob = base(w.t0), *sb = base(w.t2);
    int nt = cpu_threads_for(w.outer * w.row, 32768);
    /* t[idx] with one index over whole rows of a 2-d space is index_select's walk, whose
     * loop fetches the rows ahead without a block of offsets in between. */
    const ferry_kernel_tensor *x = &w.idx[0];
    bool rows = w.k == 1 && w.m == 1 && w.row > 1 && w.st[0][1] == 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t lo, hi;
        cpu_thread_part(w.outer, 1, &lo, &hi);
        if (rows && lo < hi) {
            bool any = false;
            int64_t bad = 0, esz = (int64_t)es;
            (x->dtype == FERRY_INT32 ? select_rows_int32_t : select_rows_int64_t)(
                ob, sb, w.ibase[0], lo, hi, w.st[0][0] * esz, w.st[0][2] * w.isize[0],
                w.p->stride[0] * esz, w.p->size[0], (size_t)w.row * es, &any, &bad);
            if (any)
                report_at(w.flag, bad, 0);
        } else {
            xrun(&w, lo, hi, 0, w.row, false, false);
        }
    }
    return FERRY_OK;
}

/* Assignment runs in parallel (of duplicates any one wins, as PyTorch says).
 * Accumulation must count every duplicate, and its sums must not depend on scheduling:
 * threads split a dim the indices do not span (the space's first dim when it is not
 * theirs, else the columns of the rows), so two threads never meet at one element and
 * each element is summed in row-major order, as one thread would. */
static ferry_status cpu_index_put(int32_t device, const ferry_op_args *a)
{
    (void)device;
    xplan w;
    if (!xplan_init(&w, a))
        return FERRY_ERR_UNSUPPORTED;
    if (w.outer == 0)
        return FERRY_OK;
    bool acc = w.p->accumulate != 0;
    int nt = cpu_threads_for(w.outer * w.row, 32768);
    int64_t align = 1;       /* outer positions per part boundary */
    bool by_columns = false; /* accumulate: threads split each row instead */
    if (acc && nt > 1) {
        /* The first dim has extent > 1, so it leads the walk's first dim unless every
         * dim went into the row (m == 0). */
        if (w.p->bdim > 0 && w.m >= 1 && w.shape0 > 1) {
            align = w.outer / w.shape0;
            if (nt > w.shape0)
                nt = (int)w.shape0;
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
        xrun(&w, lo, hi, c0, c1, true, acc);
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

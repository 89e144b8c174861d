/* ferry_tensor_repr: the text PyTorch's repr(tensor) gives (torch/_tensor_str.py with the
 * print options of ferry_set_print_options), with "torch." spelled "ferry.". Layout, number formatting,
 * summarization and suffix wrapping follow that file step for step. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include <stdatomic.h>

/* torch._tensor_str.PRINT_OPTS, defaults as there (sci_mode -1: chosen per tensor);
 * process-wide as torch's, set by ferry_set_print_options. Atomics so a repr racing a
 * set reads each option whole. */
static _Atomic int opt_precision = 4;
static _Atomic int64_t opt_threshold = 1000;
static _Atomic int64_t opt_edgeitems = 3;
static _Atomic int opt_linewidth = 80;
static _Atomic int opt_sci_mode = -1;
#define PRECISION atomic_load_explicit(&opt_precision, memory_order_relaxed)
#define THRESHOLD atomic_load_explicit(&opt_threshold, memory_order_relaxed)
#define EDGEITEMS atomic_load_explicit(&opt_edgeitems, memory_order_relaxed)
#define LINEWIDTH atomic_load_explicit(&opt_linewidth, memory_order_relaxed)
#define SCI_MODE atomic_load_explicit(&opt_sci_mode, memory_order_relaxed)

/* Bounds keep every formatted number inside NUM_BUF and the summarized copy small. */
#define MAX_PRECISION 64
#define MAX_EDGEITEMS 4096

FERRY_API ferry_status ferry_set_print_options(int precision, int64_t threshold,
                                               int64_t edgeitems, int linewidth, int sci_mode)
{
    if (precision < 0 || precision > MAX_PRECISION)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "set_printoptions: precision must be in [0, %d], got %d",
                            MAX_PRECISION, precision);
    if (threshold < 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "set_printoptions: threshold must be >= 0, got %lld",
                            (long long)threshold);
    if (edgeitems < 0 || edgeitems > MAX_EDGEITEMS)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "set_printoptions: edgeitems must be in [0, %d], got %lld",
                            MAX_EDGEITEMS, (long long)edgeitems);
    if (linewidth < 1)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "set_printoptions: linewidth must be >= 1, got %d", linewidth);
    if (sci_mode < -1 || sci_mode > 1)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "set_printoptions: sci_mode must be -1 (auto), 0 or 1, got %d",
                            sci_mode);
    atomic_store_explicit(&opt_precision, precision, memory_order_relaxed);
    atomic_store_explicit(&opt_threshold, threshold, memory_order_relaxed);
    atomic_store_explicit(&opt_edgeitems, edgeitems, memory_order_relaxed);
    atomic_store_explicit(&opt_linewidth, linewidth, memory_order_relaxed);
    atomic_store_explicit(&opt_sci_mode, sci_mode, memory_order_relaxed);
    return FERRY_OK;
}

#define PREFIX "tensor("
#define PREFIX_LEN 7

/* Large enough for "%.4f" of DBL_MAX, so no formatted number is ever cut. */
#define NUM_BUF 400

/* ---- growable string ---- */

typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; later writes are dropped */
} strbuf;

static void sb_putn(strbuf *sb, const char *s, size_t n)
{
    if (sb->failed)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->data, cap);
        if (!p) {
            sb->failed = true;
            return;
        }
        sb->data = p;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

static void sb_puts(strbuf *sb, const char *s)
{
    sb_putn(sb, s, strlen(s));
}

static void sb_repeat(strbuf *sb, char c, int n)
{
    char chunk[64];
    memset(chunk, c, sizeof chunk);
    while (n > 0) {
        int k = n < (int)sizeof chunk ? n : (int)sizeof chunk;
        sb_putn(sb, chunk, (size_t)k);
        n -= k;
    }
}

/* ---- elements, read from a row-major contiguous host copy of the shown ones ---- */

typedef struct elements {
    ferry_dtype dtype;
    bool floating;
    size_t esize;
    const unsigned char *data;
    int ndim;
    const int64_t *shape;
    /* Row-major strides of the host copy, which holds only the first and last
     * EDGEITEMS of each cut dim (all of a dim that is not cut). */
    int64_t strides[FERRY_MAX_DIMS];
    bool cut[FERRY_MAX_DIMS];
} elements;

/* Where index i of dim sits in the host copy. */
static int64_t copy_pos(const elements *e, int dim, int64_t i)
{
    int64_t n = e->shape[dim];
    int64_t at = e->cut[dim] && i >= n - EDGEITEMS ? i - (n - 2 * EDGEITEMS) : i;
    return at * e->strides[dim];
}

static double elem_double(const elements *e, int64_t i)
{
    return ferry__scalar_to_double(e->dtype, e->data + (size_t)i * e->esize);
}

/* Integers are read as int64 rather than through double: an int64 past 2^53 must
 * print every digit, as Python's int does. */
static int64_t elem_int(const elements *e, int64_t i)
{
    const void *p = e->data + (size_t)i * e->esize;
    switch (e->dtype) {
    case FERRY_BOOL: return *(const uint8_t *)p != 0;
    case FERRY_UINT8: return *(const uint8_t *)p;
    case FERRY_INT8: return *(const int8_t *)p;
    case FERRY_INT16: return *(const int16_t *)p;
    case FERRY_INT32: return *(const int32_t *)p;
    case FERRY_INT64: return *(const int64_t *)p;
    default: return 0;
    }
}

/* Calls fn on every element the repr shows: with summarize, only the first and last
 * EDGEITEMS of each dimension longer than 2 * EDGEITEMS. These are exactly the
 * elements of PyTorch's get_summarized_data(), over which its _Formatter is built. */
typedef void (*visit_fn)(const elements *e, int64_t index, void *ctx);

static void visit(const elements *e, int dim, int64_t offset, bool summarize, visit_fn fn,
                  void *ctx)
{
    if (dim == e->ndim) {
        fn(e, offset, ctx);
        return;
    }
    int64_t n = e->shape[dim];
    bool cut = summarize && n > 2 * EDGEITEMS;
    for (int64_t i = 0; i < n; i++) {
        if (cut && i == EDGEITEMS)
            i = n - EDGEITEMS;
        visit(e, dim + 1, offset + copy_pos(e, dim, i), summarize, fn, ctx);
    }
}

/* ---- _Formatter ---- */

typedef struct formatter {
    bool int_mode;
    bool sci_mode;
    int max_width;
    /* Statistics of the nonzero finite values, gathered before the mode is chosen. */
    int64_t count;
    double min_abs;
    double max_abs;
} formatter;

/* Python formats a NaN of either sign as "nan". */
static const char *nonfinite_str(double v)
{
    if (isnan(v))
        return "nan";
    return v > 0 ? "inf" : "-inf";
}

/* The unpadded text of element i ("{}", "{:.4e}", "{:.0f}." or "{:.4f}" in Python);
 * returns its length. */
static int format_elem(const formatter *f, const elements *e, int64_t i, char buf[NUM_BUF])
{
    if (!e->floating) {
        int64_t v = elem_int(e, i);
        if (e->dtype == FERRY_BOOL)
            return snprintf(buf, NUM_BUF, "%s", v ? "True" : "False");
        return snprintf(buf, NUM_BUF, "%" PRId64, v);
    }
    double v = elem_double(e, i);
    if (!isfinite(v))
        return snprintf(buf, NUM_BUF, "%s", nonfinite_str(v));
    if (f->sci_mode)
        return snprintf(buf, NUM_BUF, "%.*e", PRECISION, v);
    if (f->int_mode)
        return snprintf(buf, NUM_BUF, "%.0f.", v);
    return snprintf(buf, NUM_BUF, "%.*f", PRECISION, v);
}

static void stats_visit(const elements *e, int64_t i, void *ctx)
{
    formatter *f = ctx;
    double v = elem_double(e, i);
    if (!isfinite(v) || v == 0)
        return;
    double a = fabs(v);
    if (f->count == 0 || a < f->min_abs)
        f->min_abs = a;
    if (f->count == 0 || a > f->max_abs)
        f->max_abs = a;
    f->count++;
    if (v != ceil(v))
        f->int_mode = false;
}

/* As in PyTorch, only nonzero finite floats set the width: a wider "-inf" or "-0." next
 * to narrower numbers is printed unpadded, out of line, exactly as PyTorch prints it. */
static void width_visit(const elements *e, int64_t i, void *ctx)
{
    formatter *f = ctx;
    if (e->floating) {
        double v = elem_double(e, i);
        if (!isfinite(v) || v == 0)
            return;
    }
    char buf[NUM_BUF];
    int n = format_elem(f, e, i, buf);
    if (n > f->max_width)
        f->max_width = n;
}

static void formatter_init(formatter *f, const elements *e, bool summarize)
{
    memset(f, 0, sizeof *f);
    f->int_mode = true;
    f->max_width = 1;
    if (e->floating) {
        visit(e, 0, 0, summarize, stats_visit, f);
        if (f->count == 0)
            return; /* PyTorch keeps int_mode, width 1: zeros print "0.", nan "nan" */
        double ratio = f->max_abs / f->min_abs;
        if (SCI_MODE >= 0)
            f->sci_mode = SCI_MODE == 1;
        else if (f->int_mode)
            f->sci_mode = ratio > 1000.0 || f->max_abs > 1.0e8;
        else
            f->sci_mode = ratio > 1000.0 || f->max_abs > 1.0e8 || f->min_abs < 1.0e-4;
    }
    visit(e, 0, 0, summarize, width_visit, f);
}

static void write_elem(strbuf *sb, const formatter *f, const elements *e, int64_t i)
{
    char buf[NUM_BUF];
    int n = format_elem(f, e, i, buf);
    if (n < 0)
        n = 0;
    if (n >= NUM_BUF)
        n = NUM_BUF - 1;
    sb_repeat(sb, ' ', f->max_width - n);
    sb_putn(sb, buf, (size_t)n);
}

/* ---- _tensor_str_with_formatter ---- */

/* `indent` is the column of this level's "[", as PyTorch's indent argument. */
static void write_tensor(strbuf *sb, const formatter *f, const elements *e, int dim,
                         int64_t offset, int indent, bool summarize)
{
    int rest = e->ndim - dim;
    if (rest == 0) {
        write_elem(sb, f, e, offset);
        return;
    }
    int64_t n = e->shape[dim];
    bool cut = summarize && n > 2 * EDGEITEMS;
    sb_putn(sb, "[", 1);
    if (rest == 1) {
        /* _vector_str: each element takes its width plus ", ". */
        int per_line = (LINEWIDTH - indent) / (f->max_width + 2);
        if (per_line < 1)
            per_line = 1;
        int64_t item = 0;
        for (int64_t i = 0; i < n; i++, item++) {
            if (item > 0) {
                if (item % per_line == 0) {
                    sb_puts(sb, ",\n");
                    sb_repeat(sb, ' ', indent + 1);
                } else {
                    sb_puts(sb, ", ");
                }
            }
            if (cut && i == EDGEITEMS) {
                sb_puts(sb, " ...");
                i = n - EDGEITEMS - 1;
                continue;
            }
            write_elem(sb, f, e, offset + copy_pos(e, dim, i));
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            if (i > 0) {
                /* A newline per dimension from here down to the rows: 3-D blocks are one
                 * blank line apart, 4-D ones two. */
                sb_putn(sb, ",", 1);
                sb_repeat(sb, '\n', rest - 1);
                sb_repeat(sb, ' ', indent + 1);
            }
            if (cut && i == EDGEITEMS) {
                sb_puts(sb, "...");
                /* The next separator is written as for any later slice. */
                i = n - EDGEITEMS - 1;
                continue;
            }
            write_tensor(sb, f, e, dim + 1, offset + copy_pos(e, dim, i), indent + 1, summarize);
        }
    }
    sb_putn(sb, "]", 1);
}

/* ---- suffixes ---- */

/* _add_suffixes, including its measure of the last line: len(s) - s.rfind("\n") + 1,
 * which is two more than the line's length. Kept as is so wrapping matches. */
static void add_suffixes(strbuf *sb, strbuf *suffixes, int count)
{
    for (int k = 0; k < count; k++)
        if (suffixes[k].failed)
            sb->failed = true;
    if (sb->failed)
        return;
    const char *nl = strrchr(sb->data, '\n');
    long last_nl = nl ? (long)(nl - sb->data) : -1;
    long last_line_len = (long)sb->len - last_nl + 1;
    for (int k = 0; k < count; k++) {
        long slen = (long)suffixes[k].len;
        if (last_line_len + slen + 2 > LINEWIDTH) {
            sb_puts(sb, ",\n");
            sb_repeat(sb, ' ', PREFIX_LEN);
            last_line_len = PREFIX_LEN + slen;
        } else {
            sb_puts(sb, ", ");
            last_line_len += slen + 2;
        }
        sb_putn(sb, suffixes[k].data, suffixes[k].len);
    }
    sb_putn(sb, ")", 1);
}

/* ---- entry point ---- */

/* Fills `suffixes` (at most 4) in PyTorch's order: device, then size (empty tensors
 * only), dtype, requires_grad; returns how many. */
static int make_suffixes(const ferry_tensor *t, strbuf *suffixes)
{
    int count = 0;
    ferry_dtype dtype = ferry_tensor_dtype(t);
    int ndim = ferry_tensor_ndim(t);
    const int64_t *shape = ferry_tensor_shape(t);
    int64_t numel = ferry_tensor_numel(t);
    char buf[64];

    ferry_device dev = ferry_tensor_device(t);
    if (strcmp(dev.type, "cpu") != 0) {
        if (ferry_device_format(dev, buf, sizeof buf) < 0)
            snprintf(buf, sizeof buf, "%s:%d", dev.type, (int)dev.index);
        strbuf *s = &suffixes[count++];
        sb_puts(s, "device='");
        sb_puts(s, buf);
        sb_puts(s, "'");
    }
    bool show_dtype;
    if (numel == 0) {
        if (ndim != 1) {
            /* Python's tuple repr; a 1-D shape, "(0,)", is never shown. */
            strbuf *s = &suffixes[count++];
            sb_puts(s, "size=(");
            for (int d = 0; d < ndim; d++) {
                snprintf(buf, sizeof buf, "%s%" PRId64, d ? ", " : "", shape[d]);
                sb_puts(s, buf);
            }
            sb_puts(s, ")");
        }
        /* No element shows the kind of an empty tensor, so only float32 goes unsaid. */
        show_dtype = dtype != FERRY_FLOAT32;
    } else {
        show_dtype = dtype != FERRY_FLOAT32 && dtype != FERRY_INT64 && dtype != FERRY_BOOL;
    }
    if (show_dtype) {
        strbuf *s = &suffixes[count++];
        sb_puts(s, "dtype=ferry.");
        sb_puts(s, ferry_dtype_name(dtype));
    }
    const char *grad_fn = ferry_tensor_grad_fn_name(t);
    if (grad_fn) {
        sb_puts(&suffixes[count], "grad_fn=<");
        sb_puts(&suffixes[count], grad_fn);
        sb_puts(&suffixes[count++], ">");
    } else if (ferry_tensor_requires_grad(t)) {
        sb_puts(&suffixes[count++], "requires_grad=True");
    }
    return count;
}

/* A host tensor of shape cshape holding the elements repr shows: along a cut dim the
 * first and last EDGEITEMS, as PyTorch's get_summarized_data. It is filled box by box
 * (one copy per choice of head or tail in each cut dim), so a summarized tensor costs
 * only what is printed, on any device, however large its numel. */
static ferry_tensor *shown_elements(const ferry_tensor *t, const bool *cut, const int64_t *cshape)
{
    int ndim = t->ndim;
    ferry_tensor *host = ferry_empty(t->dtype, ndim, cshape, "cpu");
    if (!host)
        return NULL;
    int cuts[FERRY_MAX_DIMS], ncut = 0;
    for (int d = 0; d < ndim; d++)
        if (cut[d])
            cuts[ncut++] = d;
    /* ncut <= 21: 7**22 elements would not fit int64. */
    for (uint64_t box = 0; box < (UINT64_C(1) << ncut); box++) {
        int64_t sshape[FERRY_MAX_DIMS], sstrides[FERRY_MAX_DIMS];
        int64_t src_off = 0, dst_off = 0;
        for (int d = 0; d < ndim; d++) {
            sshape[d] = cshape[d];
            sstrides[d] = t->strides[d];
        }
        for (int k = 0; k < ncut; k++) {
            int d = cuts[k];
            sshape[d] = EDGEITEMS;
            if (box >> k & 1) { /* the tail of dim d */
                src_off += (t->shape[d] - EDGEITEMS) * t->strides[d];
                dst_off += EDGEITEMS * host->strides[d];
            }
        }
        ferry_tensor *src = ferry__tensor_restride(t, ndim, sshape, sstrides);
        ferry_tensor *dst = ferry__tensor_restride(host, ndim, sshape, host->strides);
        ferry_status st = FERRY_ERR_OUT_OF_MEMORY;
        if (src && dst) {
            src->byte_offset += (size_t)(src_off * (int64_t)ferry_dtype_size(t->dtype));
            dst->byte_offset += (size_t)(dst_off * (int64_t)ferry_dtype_size(t->dtype));
            st = ferry__copy_into(dst, src);
        }
        ferry_tensor_release(src);
        ferry_tensor_release(dst);
        if (st != FERRY_OK) {
            ferry_tensor_release(host);
            return NULL;
        }
    }
    return host;
}

FERRY_API char *ferry_tensor_repr(const ferry_tensor *t)
{
    if (ferry__check_tensor(t, "ferry_tensor_repr") != FERRY_OK)
        return NULL;

    ferry_dtype dtype = ferry_tensor_dtype(t);
    int ndim = ferry_tensor_ndim(t);
    const int64_t *shape = ferry_tensor_shape(t);
    int64_t numel = ferry_tensor_numel(t);

    elements e = {
        .dtype = dtype,
        .floating = ferry_dtype_is_floating(dtype),
        .esize = ferry_dtype_size(dtype),
        .ndim = ndim,
        .shape = shape,
    };
    bool summarize = numel > THRESHOLD;
    int64_t cshape[FERRY_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        e.cut[d] = summarize && shape[d] > 2 * EDGEITEMS;
        cshape[d] = e.cut[d] ? 2 * EDGEITEMS : shape[d];
    }
    ferry__contiguous_strides(ndim, cshape, e.strides);

    ferry_tensor *host = NULL;
    if (numel > 0) {
        host = shown_elements(t, e.cut, cshape);
        if (!host)
            return NULL;
        e.data = ferry_tensor_host_data(host);
    }

    strbuf sb = {0};
    sb_puts(&sb, PREFIX);
    if (numel == 0) {
        sb_puts(&sb, "[]");
    } else {
        formatter f;
        formatter_init(&f, &e, summarize);
        write_tensor(&sb, &f, &e, 0, 0, PREFIX_LEN, summarize);
    }
    ferry_tensor_release(host);

    strbuf suffixes[4] = {{0}};
    int nsuf = make_suffixes(t, suffixes);
    add_suffixes(&sb, suffixes, nsuf);
    for (int k = 0; k < nsuf; k++)
        free(suffixes[k].data);

    if (sb.failed) {
        free(sb.data);
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "ferry_tensor_repr: out of memory building the text");
        return NULL;
    }
    return sb.data;
}

/* View ops with fuzzed integer arguments: reshape, view, transpose, permute, slice,
 * expand, squeeze, squeeze_all, unsqueeze and flatten, chained up to eight deep on a
 * tensor of known values (its elements are their own flat indices), on cpu or sim:0.
 * A reference model written here from PyTorch's documented semantics says whether each
 * call is valid and which elements the result holds; ferry must agree on both, and a
 * refusal must carry a status and a message. */
#include "fuzz_util.h"

#define MODEL_CAP 65536 /* results larger than this are checked for shape only */
#define MAX_BASE 720
#define CHAIN 8

static fuzz_devices devices;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_devices_init(&devices);
    return 0;
}

typedef struct model {
    int nd;
    int64_t shape[FERRY_MAX_DIMS];
    int64_t numel;
    int64_t *elems; /* row-major flat indices into the base tensor; NULL past MODEL_CAP */
} model;

/* PyTorch's dim wrapping: -nd .. nd-1 (a 0-d tensor is handled by the caller). */
static bool wrap(int64_t d, int nd, int *out)
{
    if (d < -nd || d >= nd)
        return false;
    *out = (int)(d < 0 ? d + nd : d);
    return true;
}

static int fuzz_int(fuzz_input *in)
{
    uint8_t m = fuzz_u8(in);
    if (m < 224)
        return (int)(m % 17) - 8;
    static const int edges[] = {INT32_MIN, INT32_MAX, INT32_MIN + 1, 64, -65, 1 << 30};
    return edges[m % 6];
}

/* Wrapping product: the model's strides are used only to reach elements of a model
 * that has them (at most MODEL_CAP, where nothing wraps); an empty model's sizes, or an
 * expanded one's, may multiply past int64. */
static int64_t wrap_mul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}

/* Strides of a row-major layout, for walking the model's element list. */
static void row_major(int nd, const int64_t *shape, int64_t *st)
{
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = s;
        s = wrap_mul(s, shape[i]);
    }
}

/* Builds `out` from `in` by visiting out's shape and mapping each index to an element
 * of `in` through per-dimension strides into in's row-major list (0 for broadcast). */
static void gather(const model *in, model *out, const int64_t *map_strides, int64_t start)
{
    if (!fuzz_numel(out->nd, out->shape, &out->numel) || out->numel > MODEL_CAP || !in->elems) {
        out->elems = NULL;
        return;
    }
    out->elems = malloc((size_t)(out->numel ? out->numel : 1) * sizeof *out->elems);
    int64_t idx[FERRY_MAX_DIMS] = {0};
    for (int64_t k = 0; k < out->numel; k++) {
        int64_t at = start;
        for (int i = 0; i < out->nd; i++)
            at += idx[i] * map_strides[i];
        out->elems[k] = in->elems[at];
        for (int i = out->nd - 1; i >= 0; i--) {
            if (++idx[i] < out->shape[i])
                break;
            idx[i] = 0;
        }
    }
}

static void copy_elems(const model *in, model *out)
{
    out->numel = in->numel;
    out->elems = NULL;
    if (in->elems) {
        out->elems = malloc((size_t)(in->numel ? in->numel : 1) * sizeof *out->elems);
        memcpy(out->elems, in->elems, (size_t)in->numel * sizeof *out->elems);
    }
}

/* r gets m's shape and no elements of its own yet. */
static void like(model *r, const model *m)
{
    *r = *m;
    r->elems = NULL;
}

enum verdict { INVALID, VALID, EITHER };

static const char *const op_names[] = {"reshape", "view",      "transpose", "permute",
                                       "slice",   "expand",    "squeeze",   "squeeze_all",
                                       "unsqueeze", "flatten"};

/* One op: calls ferry and the model with the same arguments. */
static ferry_tensor *apply(fuzz_input *in, ferry_tensor *t, const model *m, model *r,
                           enum verdict *v, int *op_out)
{
    int op = fuzz_u8(in) % 10;
    *op_out = op;
    *v = INVALID;
    memset(r, 0, sizeof *r);
    int64_t st[FERRY_MAX_DIMS];
    row_major(m->nd, m->shape, st);
    switch (op) {
    case 0:
    case 1: { /* reshape / view */
        int nd = fuzz_u8(in) % 7;
        int64_t shape[8];
        int infer = -1, bad = 0;
        __int128 known = 1;
        for (int i = 0; i < nd; i++) {
            shape[i] = fuzz_dim_value(in, -1, 6);
            if (shape[i] == -1) {
                bad += infer >= 0;
                infer = i;
            } else if (shape[i] < 0) {
                bad++;
            } else {
                known *= shape[i];
                if (known > INT64_MAX)
                    known = (__int128)INT64_MAX + 1;
            }
        }
        ferry_tensor *out = op == 0 ? ferry_reshape(t, nd, shape) : ferry_view(t, nd, shape);
        r->nd = nd;
        memcpy(r->shape, shape, (size_t)nd * sizeof *shape);
        if (!bad && infer >= 0 && known != 0 && m->numel % (int64_t)known == 0) {
            r->shape[infer] = m->numel / (int64_t)known;
            known = m->numel;
        } else if (!bad && infer >= 0 && known == 0) {
            bad++; /* 0 elements into a shape with -1 is ambiguous: PyTorch refuses */
        }
        if (!bad && known == m->numel) {
            *v = op == 1 ? EITHER : VALID; /* view may be impossible for the strides */
            copy_elems(m, r);
        }
        return out;
    }
    case 2: { /* transpose */
        int a = fuzz_int(in), b = fuzz_int(in);
        ferry_tensor *out = ferry_transpose(t, a, b);
        int wa, wb;
        if (m->nd == 0) {
            *v = (a == 0 || a == -1) && (b == 0 || b == -1) ? EITHER : INVALID;
            like(r, m);
            copy_elems(m, r);
        } else if (wrap(a, m->nd, &wa) && wrap(b, m->nd, &wb)) {
            *v = VALID;
            like(r, m);
            int64_t ms[FERRY_MAX_DIMS];
            memcpy(ms, st, sizeof ms);
            r->shape[wa] = m->shape[wb];
            r->shape[wb] = m->shape[wa];
            ms[wa] = st[wb];
            ms[wb] = st[wa];
            gather(m, r, ms, 0);
        }
        return out;
    }
    case 3: { /* permute */
        int dims[FERRY_MAX_DIMS];
        bool seen[FERRY_MAX_DIMS] = {false}, ok = true;
        int nd = m->nd;
        if (fuzz_u8(in) >= 240)
            nd += fuzz_u8(in) % 3 - 1; /* sometimes the wrong count */
        if (nd < 0)
            nd = 0;
        int64_t ms[FERRY_MAX_DIMS];
        like(r, m);
        for (int i = 0; i < nd && i < FERRY_MAX_DIMS; i++) {
            if (fuzz_u8(in) >= 250) {
                dims[i] = fuzz_int(in);
            } else {
                dims[i] = (int)(fuzz_u8(in) % (m->nd ? m->nd : 1));
                if (fuzz_u8(in) >= 200)
                    dims[i] -= m->nd; /* the negative spelling of the same dim */
            }
            int w;
            if (nd != m->nd || !wrap(dims[i], m->nd, &w) || seen[w]) {
                ok = false;
                continue;
            }
            seen[w] = true;
            r->shape[i] = m->shape[w];
            ms[i] = st[w];
        }
        ferry_tensor *out = ferry_permute(t, nd, dims);
        if (ok && nd == m->nd) {
            *v = VALID;
            gather(m, r, ms, 0);
        }
        return out;
    }
    case 4: { /* slice */
        int dim = fuzz_int(in);
        int64_t start = fuzz_dim_value(in, -7, 7), end = fuzz_dim_value(in, -7, 7),
                step = fuzz_dim_value(in, 0, 4);
        ferry_tensor *out = ferry_slice(t, dim, start, end, step);
        int w;
        if (m->nd > 0 && wrap(dim, m->nd, &w) && step > 0) {
            int64_t size = m->shape[w];
            __int128 s = start < 0 ? (__int128)start + size : start;
            __int128 e = end < 0 ? (__int128)end + size : end;
            s = s < 0 ? 0 : s > size ? size : s;
            e = e < 0 ? 0 : e > size ? size : e;
            int64_t len = e > s ? (int64_t)((e - s + step - 1) / step) : 0;
            *v = VALID;
            like(r, m);
            r->shape[w] = len;
            int64_t ms[FERRY_MAX_DIMS];
            memcpy(ms, st, sizeof ms);
            /* a stride of the model's own list: step * st fits when the model has
             * elements to reach (len >= 2 needs it to) */
            ms[w] = len > 1 ? wrap_mul(st[w], step) : st[w];
            gather(m, r, ms, len > 0 ? wrap_mul((int64_t)s, st[w]) : 0);
        }
        return out;
    }
    case 5: { /* expand */
        int nd = m->nd + fuzz_u8(in) % 3;
        if (fuzz_u8(in) >= 240)
            nd = m->nd - 1;
        if (nd < 0)
            nd = 0;
        int64_t shape[FERRY_MAX_DIMS + 2];
        bool ok = nd >= m->nd && nd <= FERRY_MAX_DIMS;
        int lead = nd - m->nd;
        int64_t ms[FERRY_MAX_DIMS];
        like(r, m);
        r->nd = nd < FERRY_MAX_DIMS ? nd : FERRY_MAX_DIMS;
        for (int i = 0; i < nd && i < FERRY_MAX_DIMS + 2; i++) {
            int j = i - lead; /* the input dim this one lines up with, if any */
            int64_t have = j >= 0 ? m->shape[j] : 1;
            shape[i] = fuzz_u8(in) < 128 ? have : fuzz_dim_value(in, -1, 5);
            int64_t size = shape[i] == -1 && j >= 0 ? have : shape[i];
            if (size < 0 || (j >= 0 && have != 1 && size != have))
                ok = false;
            if (i < FERRY_MAX_DIMS) {
                r->shape[i] = size;
                ms[i] = j >= 0 && have != 1 ? st[j] : 0;
            }
        }
        ferry_tensor *out = ferry_expand(t, nd, shape);
        if (ok) {
            *v = VALID;
            int64_t n;
            if (!fuzz_numel(r->nd, r->shape, &n))
                *v = INVALID; /* more elements than int64 counts */
            else
                gather(m, r, ms, 0);
        }
        return out;
    }
    case 6:
    case 8: { /* squeeze / unsqueeze */
        int dim = fuzz_int(in);
        ferry_tensor *out = op == 6 ? ferry_squeeze(t, dim) : ferry_unsqueeze(t, dim);
        int w;
        if (op == 6 && m->nd == 0) {
            *v = dim == 0 || dim == -1 ? EITHER : INVALID;
            like(r, m);
            copy_elems(m, r);
        } else if (op == 6 && wrap(dim, m->nd, &w)) {
            *v = VALID;
            like(r, m);
            if (m->shape[w] == 1) {
                memmove(r->shape + w, m->shape + w + 1, (size_t)(m->nd - w - 1) * sizeof *r->shape);
                r->nd--;
            }
            copy_elems(m, r);
        } else if (op == 8 && m->nd < FERRY_MAX_DIMS && wrap(dim, m->nd + 1, &w)) {
            *v = VALID;
            like(r, m);
            memmove(r->shape + w + 1, m->shape + w, (size_t)(m->nd - w) * sizeof *r->shape);
            r->shape[w] = 1;
            r->nd++;
            copy_elems(m, r);
        }
        return out;
    }
    case 7: { /* squeeze_all */
        ferry_tensor *out = ferry_squeeze_all(t);
        *v = VALID;
        r->nd = 0;
        for (int i = 0; i < m->nd; i++)
            if (m->shape[i] != 1)
                r->shape[r->nd++] = m->shape[i];
        copy_elems(m, r);
        return out;
    }
    default: { /* flatten */
        int a = fuzz_int(in), b = fuzz_int(in);
        ferry_tensor *out = ferry_flatten(t, a, b);
        int wa, wb;
        if (m->nd == 0) {
            *v = EITHER; /* PyTorch gives a 1-element 1-d tensor for dims 0/-1 */
            r->nd = 1;
            r->shape[0] = 1;
            copy_elems(m, r);
        } else if (wrap(a, m->nd, &wa) && wrap(b, m->nd, &wb) && wa <= wb) {
            *v = VALID;
            r->nd = 0;
            for (int i = 0; i < wa; i++)
                r->shape[r->nd++] = m->shape[i];
            /* An empty tensor's other dims may merge past int64: no such dim exists
             * (unless a 0 among the merged ones makes it 0). */
            int64_t merged = 1;
            bool zero = false, past = false;
            for (int i = wa; i <= wb; i++) {
                zero |= m->shape[i] == 0;
                past |= __builtin_mul_overflow(merged, m->shape[i], &merged);
            }
            if (zero)
                merged = 0;
            else if (past)
                *v = INVALID;
            r->shape[r->nd++] = merged;
            for (int i = wb + 1; i < m->nd; i++)
                r->shape[r->nd++] = m->shape[i];
            copy_elems(m, r);
        }
        return out;
    }
    }
}

static void check_values(ferry_tensor *t, const model *m, const char *what)
{
    if (!m->elems)
        return;
    ferry_tensor *c = ferry_tensor_cpu(t);
    FUZZ_CHECK(c, "%s: to cpu", what);
    ferry_tensor *d = ferry_tensor_contiguous(c);
    FUZZ_CHECK(d, "%s: contiguous", what);
    int64_t n = ferry_tensor_numel(d);
    int64_t *got = malloc((size_t)(n ? n : 1) * sizeof *got);
    FUZZ_CHECK(ferry_tensor_copy_to_host(d, got, (size_t)n * sizeof *got) == FERRY_OK, "%s: copy",
               what);
    for (int64_t k = 0; k < n; k++)
        FUZZ_CHECK(got[k] == m->elems[k], "%s: element %lld is %lld, expected %lld", what,
                   (long long)k, (long long)got[k], (long long)m->elems[k]);
    free(got);
    ferry_tensor_release(d);
    ferry_tensor_release(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    uint8_t head = fuzz_u8(&in);
    const char *device = devices.sim && (head & 1) ? "sim:0" : "cpu";
    model m = {.nd = (head >> 1) % 5};
    int64_t n = 1;
    for (int i = 0; i < m.nd; i++) {
        m.shape[i] = fuzz_u8(&in) % 6;
        n *= m.shape[i];
    }
    if (n > MAX_BASE)
        n = 0, m.shape[0] = 0;
    m.numel = n;
    m.elems = malloc((size_t)(n ? n : 1) * sizeof *m.elems);
    for (int64_t i = 0; i < n; i++)
        m.elems[i] = i;
    ferry_tensor *t = ferry_tensor_from_data(m.elems, FERRY_INT64, m.nd, m.shape, device);
    FUZZ_CHECK(t, "base tensor on %s", device);

    for (int step = 0; step < CHAIN && in.n; step++) {
        model r;
        enum verdict v;
        int op;
        ferry_tensor *out = apply(&in, t, &m, &r, &v, &op);
        const char *what = op_names[op];
        if (!out) {
            FUZZ_CHECK_FAILED_CLEARLY(what);
            FUZZ_CHECK(v != VALID || fuzz_empty_but_huge(r.nd, r.shape),
                       "%s (step %d) refused a valid call", what, step);
            free(r.elems);
            continue;
        }
        FUZZ_CHECK(v != INVALID, "%s (step %d) accepted an invalid call", what, step);
        fuzz_check_tensor(out, what);
        FUZZ_CHECK(ferry_tensor_ndim(out) == r.nd, "%s: ndim %d, expected %d", what,
                   ferry_tensor_ndim(out), r.nd);
        for (int i = 0; i < r.nd; i++)
            FUZZ_CHECK(ferry_tensor_shape(out)[i] == r.shape[i],
                       "%s: shape[%d] is %lld, expected %lld", what, i,
                       (long long)ferry_tensor_shape(out)[i], (long long)r.shape[i]);
        check_values(out, &r, what);
        ferry_tensor_release(t);
        free(m.elems);
        t = out;
        m = r;
        if (!m.elems)
            break; /* too large to model any further */
    }
    ferry_tensor_release(t);
    free(m.elems);
    fuzz_check_memory_back(&devices);
    return 0;
}

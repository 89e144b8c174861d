/* Conformance of the second set of reductions: prod, argmin, any, all, count_nonzero,
 * logsumexp, var, std, norm, max/min over a dim with indices, cumsum, cumprod, softmax
 * and log_softmax, on every dtype they take, several layouts and every device, against
 * references computed here in double. On opencl:0 they run with FERRY_STRICT_DEVICE=1
 * and the fallback counter must not move: the kernels ran there. */
#include <float.h>
#include <stdlib.h>

#include "conformance.h"

typedef enum r2op {
    P_PROD,
    P_ARGMIN,
    P_ANY,
    P_ALL,
    P_COUNT,
    P_LSE,
    P_VAR,
    P_STD,
    P_VAR0,
    P_NORM0,
    P_NORM1,
    P_NORM2,
    P_NORM3,
    P_NORMINF,
    P_NOPS
} r2op;

static const char *const r2_names[P_NOPS] = {"prod",  "argmin", "any",    "all",    "count_nonzero",
                                             "logsumexp", "var", "std", "var(correction=0)",
                                             "norm(p=0)", "norm(p=1)", "norm(p=2)", "norm(p=3)",
                                             "norm(p=inf)"};

static bool takes(r2op op, ferry_dtype dt)
{
    switch (op) {
    case P_PROD:
    case P_ANY:
    case P_ALL:
    case P_COUNT: return true;
    case P_ARGMIN: return dt != FERRY_BOOL;
    case P_LSE: return dt != FERRY_BOOL;
    default: return conf_is_float(dt);
    }
}

static ferry_dtype r2_result(r2op op, ferry_dtype dt)
{
    switch (op) {
    case P_PROD: return conf_is_float(dt) ? dt : FERRY_INT64;
    case P_ARGMIN:
    case P_COUNT: return FERRY_INT64;
    case P_ANY:
    case P_ALL: return FERRY_BOOL;
    case P_LSE: return conf_is_float(dt) ? dt : FERRY_FLOAT32;
    default: return dt;
    }
}

static ferry_tensor *r2_call(r2op op, ferry_tensor *a, int ndims, const int *dims, bool keep)
{
    switch (op) {
    case P_PROD: return ferry_prod(a, ndims, dims, keep);
    case P_ARGMIN: return ferry_argmin(a, ndims, dims, keep);
    case P_ANY: return ferry_any(a, ndims, dims, keep);
    case P_ALL: return ferry_all(a, ndims, dims, keep);
    case P_COUNT: return ferry_count_nonzero(a, ndims, dims, keep);
    case P_LSE: return ferry_logsumexp(a, ndims, dims, keep);
    case P_VAR: return ferry_var(a, ndims, dims, keep, 1.0);
    case P_STD: return ferry_std(a, ndims, dims, keep, 1.0);
    case P_VAR0: return ferry_var(a, ndims, dims, keep, 0.0);
    case P_NORM0: return ferry_norm(a, 0.0, ndims, dims, keep);
    case P_NORM1: return ferry_norm(a, 1.0, ndims, dims, keep);
    case P_NORM2: return ferry_norm(a, 2.0, ndims, dims, keep);
    case P_NORM3: return ferry_norm(a, 3.0, ndims, dims, keep);
    case P_NORMINF: return ferry_norm(a, INFINITY, ndims, dims, keep);
    default: return NULL;
    }
}

/* The reference over one output's elements x[0..n), in order; tol receives its bound. */
static double r2_ref(r2op op, ferry_dtype dt, const double *x, int64_t n, double *tol)
{
    double eps = conf_acc_eps(dt), r = 0, mag = 0;
    *tol = 0;
    switch (op) {
    case P_PROD: {
        r = 1;
        for (int64_t i = 0; i < n; i++)
            r *= x[i];
        if (conf_is_float(dt))
            *tol = (double)n * eps * fabs(r) * 2;
        return r;
    }
    case P_ARGMIN: {
        int64_t b = 0;
        for (int64_t i = 1; i < n; i++)
            if (x[b] == x[b] && (x[i] != x[i] || x[i] < x[b]))
                b = i;
        return (double)b;
    }
    case P_ANY:
    case P_ALL:
    case P_COUNT: {
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++)
            c += x[i] != 0;
        return op == P_COUNT ? (double)c : op == P_ANY ? (c > 0) : (c == n);
    }
    case P_LSE: {
        double m = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            m = x[i] > m || x[i] != x[i] ? x[i] : m;
        if (n == 0)
            return -INFINITY;
        if (m != m || isinf(m))
            return m;
        double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += exp(x[i] - m);
        ferry_dtype acc = conf_is_float(dt) ? dt : FERRY_FLOAT32;
        *tol = ((double)n + 4) * conf_acc_eps(acc) * (fabs(m) + 1) * 2;
        /* Composed of ops that each round to a 16-bit dtype: shift, exp, sum, log, add. */
        if (dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16)
            *tol += 2 * conf_rtol(dt) * (fabs(m) + log((double)n + 1) + 1);
        return m + log(s);
    }
    case P_VAR:
    case P_STD:
    case P_VAR0: {
        double c = op == P_VAR0 ? 0 : 1, mu = 0, ss = 0;
        for (int64_t i = 0; i < n; i++)
            mu += x[i];
        mu /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            ss += (x[i] - mu) * (x[i] - mu);
            mag += x[i] * x[i];
        }
        double dof = (double)n - c > 0 ? (double)n - c : 0;
        r = ss / dof;
        *tol = ((double)n + 4) * eps * (mag + 1) / (dof > 0 ? dof : 1) * 4;
        if (op == P_STD) {
            *tol = sqrt(*tol) + (r > 0 ? *tol / sqrt(r) : 0);
            r = sqrt(r);
        }
        return r;
    }
    case P_NORM0:
        for (int64_t i = 0; i < n; i++)
            r += x[i] != 0;
        return r;
    case P_NORMINF:
        for (int64_t i = 0; i < n; i++)
            r = fabs(x[i]) > r || x[i] != x[i] ? fabs(x[i]) : r;
        return r;
    default: {
        double p = op == P_NORM1 ? 1 : op == P_NORM2 ? 2 : 3;
        for (int64_t i = 0; i < n; i++)
            r += pow(fabs(x[i]), p);
        r = pow(r, 1 / p);
        *tol = ((double)n + 4) * eps * (r + 1) * 4;
        return r;
    }
    }
}

/* Element k of output o's reduced list, for a reduction of `a` over `mask`: fills vals
 * (nout x per) in row-major order of the reduced dims. */
static void r2_group(const conf_array *a, const bool *mask, int64_t nout, int64_t per,
                     double *vals)
{
    int64_t *fill = calloc((size_t)(nout ? nout : 1), sizeof *fill);
    for (int64_t i = 0; i < a->numel; i++) {
        int64_t rem = i, o = 0, ostride = 1;
        for (int d = a->ndim - 1; d >= 0; d--) {
            int64_t c = rem % a->shape[d];
            rem /= a->shape[d];
            if (!mask[d]) {
                o += c * ostride;
                ostride *= a->shape[d];
            }
        }
        vals[o * per + fill[o]++] = a->v[i];
    }
    free(fill);
}

static void result_shape(const conf_array *a, const bool *mask, bool keep, int *nd, int64_t *shape,
                         int64_t *nout)
{
    *nd = 0;
    *nout = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (!mask[d])
            *nout *= a->shape[d];
        if (!mask[d] || keep)
            shape[(*nd)++] = mask[d] ? 1 : a->shape[d];
    }
}

static bool mask_of(int nd, int ndims, const int *dims, bool *mask)
{
    for (int d = 0; d < CONF_MAX_DIMS; d++)
        mask[d] = ndims == 0 && d < nd;
    for (int k = 0; k < ndims; k++) {
        int d = dims[k] < 0 ? dims[k] + (nd ? nd : 1) : dims[k];
        if (nd)
            mask[d] = true;
    }
    return true;
}

/* Strict device mode and the fallback counter around the checks on one device. */
static void strict_begin(const char *dev)
{
    if (strncmp(dev, "opencl", 6) == 0 || strncmp(dev, "cuda", 4) == 0) {
        setenv("FERRY_STRICT_DEVICE", "1", 1);
        ferry_fallback_stats_reset(dev);
    }
}

static void strict_end(const char *dev)
{
    if (strncmp(dev, "opencl", 6) == 0 || strncmp(dev, "cuda", 4) == 0) {
        ferry_fallback_stats s;
        if (ferry_fallback_stats_get(dev, &s) == FERRY_OK && s.total != 0) {
            conf_where w = {"reduce2", "-", "fallback counter", dev};
            conf_fail(&w, "%llu ops ran through the CPU fallback", (unsigned long long)s.total);
        }
        unsetenv("FERRY_STRICT_DEVICE");
    }
}

static void check_r2(const conf_where *w, r2op op, ferry_tensor *a, const conf_array *av, int ndims,
                     const int *dims, bool keep)
{
    bool mask[CONF_MAX_DIMS];
    mask_of(av->ndim, ndims, dims, mask);
    int nd;
    int64_t shape[CONF_MAX_DIMS], nout;
    result_shape(av, mask, keep, &nd, shape, &nout);
    int64_t per = nout ? av->numel / nout : 0;
    bool empty_red = per == 0 && nout > 0;
    ferry_tensor *r = r2_call(op, a, ndims, dims, keep);
    if (op == P_ARGMIN && empty_red) {
        conf_expect_error(w, "argmin", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, "argmin(): Expected reduction dim");
        ferry_tensor_release(r);
        return;
    }
    if (op == P_NORMINF && empty_red) {
        conf_expect_error(w, "norm", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX, "does not have an identity");
        ferry_tensor_release(r);
        return;
    }
    if (!r) {
        conf_fail_call(w, r2_names[op]);
        return;
    }
    ferry_dtype rt = r2_result(op, av->dtype);
    conf_array got;
    if (conf_read(w, r, rt, nd, shape, w->device, &got)) {
        double *vals = malloc((size_t)(av->numel ? av->numel : 1) * sizeof *vals);
        double *ref = malloc((size_t)(nout ? nout : 1) * sizeof *ref);
        double *tol = malloc((size_t)(nout ? nout : 1) * sizeof *tol);
        r2_group(av, mask, nout, per, vals);
        for (int64_t o = 0; o < nout; o++)
            ref[o] = r2_ref(op, av->dtype, vals + o * per, per, &tol[o]);
        conf_compare(w, &got, ref, tol);
        free(vals);
        free(ref);
        free(tol);
        conf_array_free(&got);
    }
    ferry_tensor_release(r);
}

typedef struct r2_case {
    const char *name;
    conf_operand a;
    int ndims;
    int dims[4];
} r2_case;

#define OPND(nd, ...) {nd, {__VA_ARGS__}, CONF_CONTIGUOUS, 0, {0}}
#define OPND_L(layout, nd, ...) {nd, {__VA_ARGS__}, layout, 0, {0}}
#define DIMS(n, ...) n, {__VA_ARGS__}

static const r2_case r2_cases[] = {
    {"all dims", OPND(3, 2, 3, 4), DIMS(0, 0)},
    {"dim 1", OPND(3, 2, 3, 4), DIMS(1, 1)},
    {"dim -1", OPND(3, 2, 3, 4), DIMS(1, -1)},
    {"dims 0 and 2", OPND(3, 2, 3, 4), DIMS(2, 0, 2)},
    {"transposed, dim 0", OPND_L(CONF_TRANSPOSED, 2, 3, 5), DIMS(1, 0)},
    {"sliced step 2, dim -1", OPND_L(CONF_SLICED, 2, 3, 5), DIMS(1, -1)},
    {"negative strides, dim 0", OPND_L(CONF_NEGATIVE, 2, 3, 4), DIMS(1, 0)},
    {"zero-size, reducing a non-empty dim", OPND(2, 0, 3), DIMS(1, 1)},
    {"zero-size, reducing the empty dim", OPND(2, 0, 3), DIMS(1, 0)},
    {"0-d, all dims", OPND(0, 0), DIMS(0, 0)},
    {"0-d, dim -1", OPND(0, 0), DIMS(1, -1)},
    {"long rows, dim 1", OPND(2, 3, 300), DIMS(1, 1)},
};
#define N_R2_CASES (sizeof r2_cases / sizeof r2_cases[0])

static const conf_domain prod_domain = {-1.5, 1.5, -2, 2, false};

static void test_reduce2_matches_reference(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        strict_begin(dev);
        for (int op = 0; op < P_NOPS; op++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < N_R2_CASES; c++) {
                    const r2_case *rc = &r2_cases[c];
                    ferry_dtype dt = conf_all_dtypes[d];
                    if (!takes((r2op)op, dt) || !conf_layout_runs_on(rc->a.layout, dev))
                        continue;
                    /* Zero-size argmin/max-type cases other than the error are covered in
                     * the error test; all dims of nothing is refused there too. */
                    if (op == P_ARGMIN && rc->ndims > 1)
                        continue;
                    if ((op == P_ARGMIN || op == P_NORMINF) && rc->a.ndim == 2 &&
                        rc->a.shape[0] == 0 && rc->ndims == 0)
                        continue;
                    conf_where w0 = {r2_names[op], conf_dtype_name(dt), rc->name, dev};
                    conf_rng r = conf_rng_seed(r2_names[op], w0.dtype, rc->name, 0);
                    conf_array av;
                    const conf_domain *dom = op == P_PROD ? &prod_domain : &conf_default_domain;
                    ferry_tensor *a = conf_make(&w0, &rc->a, dt, dev, &r, dom, &av);
                    if (!a)
                        continue;
                    for (int keep = 0; keep < 2; keep++) {
                        char kase[128];
                        snprintf(kase, sizeof kase, "%s, keepdim=%d", rc->name, keep);
                        conf_where w = w0;
                        w.kase = kase;
                        check_r2(&w, (r2op)op, a, &av, rc->ndims, rc->dims, keep);
                    }
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
        strict_end(dev);
    }
    conf_finish();
}

/* ---- max/min over a dim --------------------------------------------------------------- */

static void check_maxmin_dim(const conf_where *w, bool is_max, ferry_tensor *a,
                             const conf_array *av, int dim, bool keep)
{
    ferry_tensor *v = NULL, *i = NULL;
    ferry_status st = (is_max ? ferry_max_dim : ferry_min_dim)(a, dim, keep, &v, &i);
    bool mask[CONF_MAX_DIMS];
    mask_of(av->ndim, 1, &dim, mask);
    int nd;
    int64_t shape[CONF_MAX_DIMS], nout;
    result_shape(av, mask, keep, &nd, shape, &nout);
    int64_t per = nout ? av->numel / nout : 0;
    if (per == 0 && nout > 0) {
        conf_expect_error(w, is_max ? "max_dim" : "min_dim", st != FERRY_OK, FERRY_ERR_INDEX,
                          FERRY_ERR_INDEX, is_max ? "max(): Expected reduction dim" : "min(): Expected reduction dim");
        return;
    }
    if (st != FERRY_OK) {
        conf_fail_call(w, is_max ? "ferry_max_dim" : "ferry_min_dim");
        return;
    }
    conf_array gv, gi;
    bool okv = conf_read(w, v, av->dtype, nd, shape, w->device, &gv);
    bool oki = conf_read(w, i, FERRY_INT64, nd, shape, w->device, &gi);
    if (okv && oki) {
        double *vals = malloc((size_t)(av->numel ? av->numel : 1) * sizeof *vals);
        double *rv = malloc((size_t)(nout ? nout : 1) * sizeof *rv);
        double *ri = malloc((size_t)(nout ? nout : 1) * sizeof *ri);
        r2_group(av, mask, nout, per, vals);
        for (int64_t o = 0; o < nout; o++) {
            const double *x = vals + o * per;
            int64_t b = 0;
            for (int64_t k = 1; k < per; k++)
                if (x[b] == x[b] && (x[k] != x[k] || (is_max ? x[k] > x[b] : x[k] < x[b])))
                    b = k;
            rv[o] = x[b];
            ri[o] = (double)b;
        }
        conf_compare(w, &gv, rv, NULL);
        conf_compare(w, &gi, ri, NULL);
        free(vals);
        free(rv);
        free(ri);
    }
    if (okv)
        conf_array_free(&gv);
    if (oki)
        conf_array_free(&gi);
    ferry_tensor_release(v);
    ferry_tensor_release(i);
}

static void test_reduce2_max_min_dim(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        conf_operand a;
        int dim;
    } cases[] = {
        {"dim 1", OPND(3, 2, 3, 4), 1},
        {"dim -1", OPND(3, 2, 3, 4), -1},
        {"transposed, dim 0", OPND_L(CONF_TRANSPOSED, 2, 3, 5), 0},
        {"sliced, dim 1", OPND_L(CONF_SLICED, 2, 3, 5), 1},
        {"0-d, dim 0", OPND(0, 0), 0},
        {"zero-size, other dim", OPND(2, 0, 3), 1},
        {"zero-size, the empty dim", OPND(2, 0, 3), 0},
    };
    CONF_FOR_EACH_DEVICE(dev) {
        strict_begin(dev);
        for (int m = 0; m < 2; m++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                    ferry_dtype dt = conf_all_dtypes[d];
                    if (!conf_layout_runs_on(cases[c].a.layout, dev))
                        continue;
                    conf_where w0 = {m ? "max_dim" : "min_dim", conf_dtype_name(dt), cases[c].name, dev};
                    conf_rng r = conf_rng_seed(w0.op, w0.dtype, w0.kase, 0);
                    conf_array av;
                    ferry_tensor *a = conf_make(&w0, &cases[c].a, dt, dev, &r, &conf_default_domain, &av);
                    if (!a)
                        continue;
                    for (int keep = 0; keep < 2; keep++)
                        check_maxmin_dim(&w0, m == 1, a, &av, cases[c].dim, keep);
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
        strict_end(dev);
    }
    conf_finish();
}

/* ---- scans and softmax ------------------------------------------------------------------ */

typedef enum sop { S_CUMSUM, S_CUMPROD, S_SOFTMAX, S_LOG_SOFTMAX, S_NOPS } sop;
static const char *const s_names[] = {"cumsum", "cumprod", "softmax", "log_softmax"};

static void check_scan(const conf_where *w, sop op, ferry_tensor *a, const conf_array *av, int dim)
{
    ferry_tensor *r = op == S_CUMSUM    ? ferry_cumsum(a, dim)
                      : op == S_CUMPROD ? ferry_cumprod(a, dim)
                      : op == S_SOFTMAX ? ferry_softmax(a, dim)
                                        : ferry_log_softmax(a, dim);
    if (!r) {
        conf_fail_call(w, s_names[op]);
        return;
    }
    ferry_dtype rt = op <= S_CUMPROD && !conf_is_float(av->dtype) ? FERRY_INT64 : av->dtype;
    int d = av->ndim == 0 ? 0 : dim < 0 ? dim + av->ndim : dim;
    conf_array got;
    if (conf_read(w, r, rt, av->ndim, av->shape, w->device, &got)) {
        int64_t len = av->ndim ? av->shape[d] : 1, inner = 1;
        for (int k = d + 1; k < av->ndim; k++)
            inner *= av->shape[k];
        int64_t n = av->numel;
        double *ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
        double *tol = calloc((size_t)(n ? n : 1), sizeof *tol);
        double eps = conf_acc_eps(av->dtype);
        for (int64_t line = 0; len && line < n / len; line++) {
            int64_t o = line / inner, i = line % inner, base = o * len * inner + i;
            double acc = op == S_CUMSUM ? 0 : 1, m = -INFINITY, s = 0, mag = 0;
            for (int64_t l = 0; l < len; l++) {
                double x = av->v[base + l * inner];
                m = x > m || x != x ? (m != m ? m : x) : m;
            }
            for (int64_t l = 0; l < len; l++)
                s += exp(av->v[base + l * inner] - m);
            for (int64_t l = 0; l < len; l++) {
                int64_t at = base + l * inner;
                double x = av->v[at];
                mag += fabs(x);
                switch (op) {
                case S_CUMSUM:
                    acc += x;
                    ref[at] = acc;
                    tol[at] = conf_is_float(av->dtype) ? (double)(l + 2) * eps * mag * 2 : 0;
                    break;
                case S_CUMPROD:
                    acc *= x;
                    ref[at] = acc;
                    tol[at] = conf_is_float(av->dtype) ? (double)(l + 2) * eps * fabs(acc) * 2 : 0;
                    break;
                case S_SOFTMAX:
                    ref[at] = exp(x - m) / s;
                    tol[at] = ((double)len + 4) * eps * 2;
                    break;
                default:
                    ref[at] = x - m - log(s);
                    tol[at] = ((double)len + 4) * eps * (fabs(m) + 2) * 2;
                    break;
                }
            }
        }
        conf_compare(w, &got, ref, tol);
        free(ref);
        free(tol);
        conf_array_free(&got);
    }
    ferry_tensor_release(r);
}

static void test_reduce2_scans_and_softmax(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        conf_operand a;
        int dim;
    } cases[] = {
        {"dim 0", OPND(3, 3, 4, 5), 0},
        {"dim 1", OPND(3, 3, 4, 5), 1},
        {"dim -1", OPND(3, 3, 4, 5), -1},
        {"transposed, dim -1", OPND_L(CONF_TRANSPOSED, 2, 3, 6), -1},
        {"sliced, dim 0", OPND_L(CONF_SLICED, 2, 3, 5), 0},
        {"negative strides, dim 1", OPND_L(CONF_NEGATIVE, 2, 3, 4), 1},
        {"0-d", OPND(0, 0), 0},
        {"zero-size", OPND(2, 0, 3), 1},
        {"long rows", OPND(2, 3, 200), 1},
    };
    static const conf_domain cumprod_domain = {-1.25, 1.25, -2, 2, false};
    CONF_FOR_EACH_DEVICE(dev) {
        strict_begin(dev);
        for (int op = 0; op < S_NOPS; op++)
            for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
                for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                    ferry_dtype dt = conf_all_dtypes[d];
                    if ((op >= S_SOFTMAX && !conf_is_float(dt)) ||
                        !conf_layout_runs_on(cases[c].a.layout, dev))
                        continue;
                    conf_where w = {s_names[op], conf_dtype_name(dt), cases[c].name, dev};
                    conf_rng r = conf_rng_seed(w.op, w.dtype, w.kase, 0);
                    conf_array av;
                    const conf_domain *dom =
                        op == S_CUMPROD ? &cumprod_domain : &conf_default_domain;
                    ferry_tensor *a = conf_make(&w, &cases[c].a, dt, dev, &r, dom, &av);
                    if (!a)
                        continue;
                    check_scan(&w, (sop)op, a, &av, cases[c].dim);
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
        strict_end(dev);
    }
    conf_finish();
}

/* ---- NaN, infinities, ties ------------------------------------------------------------ */

static void test_reduce2_nan_inf_and_ties(void **state)
{
    (void)state;
    static const double rows[4][5] = {
        {1.0, NAN, 3.0, NAN, -1.0},
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
        {2.0, -7.0, 5.0, -7.0, 5.0},
        {INFINITY, -INFINITY, 0.0, 1.0, INFINITY},
    };
    int64_t shape[2] = {4, 5};
    const conf_operand spec = {2, {4, 5}, CONF_CONTIGUOUS, 0, {0}};
    CONF_FOR_EACH_DEVICE(dev) {
        strict_begin(dev);
        for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
            ferry_dtype dt = conf_all_dtypes[d];
            if (!conf_is_float(dt))
                continue;
            conf_where w = {"reduce2", conf_dtype_name(dt), "NaN, inf and ties", dev};
            conf_array src, av;
            conf_array_init(&src, dt, 2, shape);
            for (int64_t i = 0; i < 20; i++)
                src.v[i] = conf_round(dt, rows[i / 5][i % 5]);
            ferry_tensor *a = conf_build(&w, &spec, &src, dev, &av);
            conf_array_free(&src);
            if (!a)
                continue;
            int dim1 = 1;
            static const r2op ops[] = {P_ARGMIN, P_LSE, P_PROD, P_NORMINF, P_ANY, P_COUNT};
            for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
                conf_where wk = w;
                wk.op = r2_names[ops[k]];
                check_r2(&wk, ops[k], a, &av, 1, &dim1, false);
            }
            for (int m = 0; m < 2; m++) {
                conf_where wk = w;
                wk.op = m ? "max_dim" : "min_dim";
                check_maxmin_dim(&wk, m == 1, a, &av, 1, false);
            }
            for (int op = 0; op < S_NOPS; op++) {
                conf_where wk = w;
                wk.op = s_names[op];
                check_scan(&wk, (sop)op, a, &av, 1);
            }
            ferry_tensor_release(a);
            conf_array_free(&av);
        }
        strict_end(dev);
    }
    conf_finish();
}

/* ---- refusals --------------------------------------------------------------------------- */

static void test_reduce2_errors(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"reduce2", "-", "errors", dev};
        int64_t s2[2] = {0, 3}, s1[1] = {3};
        ferry_tensor *e = ferry_zeros(FERRY_FLOAT32, 2, s2, dev);
        ferry_tensor *b = ferry_zeros(FERRY_BOOL, 1, s1, dev);
        ferry_tensor *i = ferry_zeros(FERRY_INT64, 1, s1, dev);
        ferry_tensor *f = ferry_zeros(FERRY_FLOAT32, 1, s1, dev);
        if (!e || !b || !i || !f) {
            conf_fail_call(&w, "ferry_zeros");
        } else {
            int d0 = 0, d5 = 5, d01[2] = {0, 0};
            ferry_tensor *v = NULL, *x = NULL;
            ferry_tensor *r = ferry_argmin(e, 1, &d0, false);
            conf_expect_error(&w, "argmin empty dim", !r, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                              "argmin(): Expected reduction dim 0 to have non-zero size.");
            r = ferry_argmin(e, 0, NULL, false);
            conf_expect_error(&w, "argmin of nothing", !r, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                              "argmin(): Expected reduction dim to be specified for input.numel() == 0.");
            conf_expect_error(&w, "max_dim empty", ferry_max_dim(e, 0, false, &v, &x) != FERRY_OK,
                              FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                              "max(): Expected reduction dim 0 to have non-zero size.");
            conf_expect_error(&w, "min_dim empty", ferry_min_dim(e, 0, false, &v, &x) != FERRY_OK,
                              FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                              "min(): Expected reduction dim 0 to have non-zero size.");
            conf_expect_error(&w, "max_dim bad dim", ferry_max_dim(f, 5, false, &v, &x) != FERRY_OK,
                              FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                              "Dimension out of range (expected to be in range of [-1, 0], but got 5)");
            r = ferry_argmin(b, 0, NULL, false);
            conf_expect_error(&w, "argmin bool", !r, FERRY_ERR_UNSUPPORTED, FERRY_ERR_UNSUPPORTED,
                              "argmin(): does not support bool input");
            r = ferry_var(i, 0, NULL, false, 1.0);
            conf_expect_error(&w, "var int", !r, FERRY_ERR_UNSUPPORTED, FERRY_ERR_UNSUPPORTED,
                              "std and var only support floating point and complex dtypes");
            r = ferry_std(i, 0, NULL, false, 1.0);
            conf_expect_error(&w, "std int", !r, FERRY_ERR_UNSUPPORTED, FERRY_ERR_UNSUPPORTED,
                              "std and var only support floating point and complex dtypes");
            r = ferry_norm(i, 2.0, 0, NULL, false);
            conf_expect_error(&w, "norm int", !r, FERRY_ERR_UNSUPPORTED, FERRY_ERR_UNSUPPORTED,
                              "linalg.vector_norm: Expected a floating point or complex tensor as "
                              "input. Got Long");
            r = ferry_softmax(i, 0);
            conf_expect_error(&w, "softmax int", !r, FERRY_ERR_UNSUPPORTED, FERRY_ERR_UNSUPPORTED,
                              "\"softmax_lastdim_kernel_impl\" not implemented for 'Long'");
            r = ferry_log_softmax(i, 0);
            conf_expect_error(&w, "log_softmax int", !r, FERRY_ERR_UNSUPPORTED,
                              FERRY_ERR_UNSUPPORTED,
                              "\"log_softmax_lastdim_kernel_impl\" not implemented for 'Long'");
            r = ferry_cumsum(f, 5);
            conf_expect_error(&w, "cumsum bad dim", !r, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                              "Dimension out of range (expected to be in range of [-1, 0], but got 5)");
            r = ferry_prod(f, 1, &d5, false);
            conf_expect_error(&w, "prod bad dim", !r, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                              "Dimension out of range");
            r = ferry_prod(f, 2, d01, false);
            conf_expect_error(&w, "prod repeated dim", !r, FERRY_ERR_INVALID_ARGUMENT,
                              FERRY_ERR_INVALID_ARGUMENT, "dim 0 appears multiple times");
            conf_expect_error(&w, "max_dim NULL outputs",
                              ferry_max_dim(f, 0, false, NULL, NULL) != FERRY_OK,
                              FERRY_ERR_INVALID_ARGUMENT, FERRY_ERR_INVALID_ARGUMENT,
                              "values and indices must not be NULL");
            /* var with correction >= N: PyTorch's inf and NaN. */
            ferry_tensor *vr = ferry_var(f, 0, NULL, false, 3.0);
            float got = 0;
            if (!vr || ferry_tensor_copy_to_host(vr, &got, sizeof got) != FERRY_OK || got == got)
                conf_fail(&w, "var(correction=3) of 3 zeros: want NaN (0/0), got %g", got);
            ferry_tensor_release(vr);
        }
        ferry_tensor_release(e);
        ferry_tensor_release(b);
        ferry_tensor_release(i);
        ferry_tensor_release(f);
    }
    conf_finish();
}

int conf_group_reduce2(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce2_matches_reference),
        cmocka_unit_test(test_reduce2_max_min_dim),
        cmocka_unit_test(test_reduce2_scans_and_softmax),
        cmocka_unit_test(test_reduce2_nan_inf_and_ties),
        cmocka_unit_test(test_reduce2_errors),
    };
    return cmocka_run_group_tests_name("reduce2", tests, NULL, NULL);
}

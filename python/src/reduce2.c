/* Python side of the second set of reductions: Tensor methods and module functions with
 * torch's names and keywords (prod, argmin, any, all, count_nonzero, logsumexp, var, std,
 * norm, max/min with dim returning (values, indices), cumsum, cumprod, softmax,
 * log_softmax). Module functions take the tensor first, as torch's. */
#include <math.h>

#include "ferry_py.h"

/* ---- arguments ---------------------------------------------------------------------- */

/* dim: None (n = 0), an int, or a tuple/list of ints. */
static int dims_arg(PyObject *o, const char *fn, int ndim, int *n, int *dims)
{
    *n = 0;
    if (!o || o == Py_None)
        return 0;
    if (PyIndex_Check(o)) {
        *n = 1;
        return fpy_dim(o, ndim, &dims[0]);
    }
    if (!PyTuple_Check(o) && !PyList_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'dim' must be tuple of ints, not %s", fn,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(o);
    if (len > FERRY_MAX_DIMS) {
        PyErr_Format(PyExc_RuntimeError, "%s(): at most %d dims, got %zd", fn, FERRY_MAX_DIMS, len);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++)
        if (fpy_dim(PySequence_Fast_GET_ITEM(o, i), ndim, &dims[i]) < 0)
            return -1;
    *n = (int)len;
    if (len == 0) {
        /* torch treats dim=() as every dim too. */
        return 0;
    }
    return 0;
}

static int one_dim(PyObject *o, const char *fn, int ndim, int *dim)
{
    if (!PyIndex_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'dim' must be int, not %s", fn,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    return fpy_dim(o, ndim, dim);
}

static int keepdim_arg(PyObject *o, const char *fn, bool *out)
{
    if (!o) {
        *out = false;
        return 0;
    }
    fpy_bool_arg b = {fn, "keepdim", 0};
    if (!fpy_bool_converter(o, &b))
        return -1;
    *out = b.value;
    return 0;
}

/* dtype=: the input cast first (torch's prod/cumsum/softmax dtype argument). A new
 * reference to the tensor to use. */
static ferry_tensor *with_dtype(ferry_tensor *t, PyObject *dt)
{
    if (!dt || dt == Py_None)
        return ferry_tensor_retain(t);
    ferry_dtype d;
    if (!fpy_dtype_converter(dt, &d))
        return NULL;
    if (ferry_tensor_dtype(t) == d)
        return ferry_tensor_retain(t);
    ferry_tensor *r = ferry_tensor_to_dtype(t, d);
    if (!r)
        fpy_error();
    return r;
}

#define RUN(t, stmt) FPY_MAYBE_NOGIL(fpy_may_block(t), stmt)

/* ---- reductions with dim/keepdim ---------------------------------------------------- */

typedef ferry_tensor *(*red_fn)(ferry_tensor *, int, const int *, bool);

static PyObject *reduce_kw(red_fn f, const char *fn, PyObject *self, PyObject *args,
                           PyObject *kwargs, bool dim_required, bool has_keepdim, bool has_dtype)
{
    static char *kw3[] = {"dim", "keepdim", "dtype", NULL};
    PyObject *d = NULL, *k = NULL, *dt = NULL;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s%s:%s", dim_required ? "O|" : "|O", has_keepdim ? "O$O" : "$OO", fn);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kw3, &d, &k, &dt))
        return NULL;
    if ((!has_keepdim && k) || (!has_dtype && dt)) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%s'", fn,
                     k && !has_keepdim ? "keepdim" : "dtype");
        return NULL;
    }
    ferry_tensor *t = FPY_T(self);
    int n, dims[FERRY_MAX_DIMS];
    bool keep;
    if (dims_arg(d, fn, ferry_tensor_ndim(t), &n, dims) < 0 || keepdim_arg(k, fn, &keep) < 0)
        return NULL;
    ferry_tensor *src = with_dtype(t, dt), *r;
    if (!src)
        return NULL;
    RUN(src, r = f(src, n, dims, keep));
    ferry_tensor_release(src);
    return fpy_wrap(r);
}

static PyObject *m_prod(PyObject *s, PyObject *a, PyObject *k)
{
    /* torch.prod takes one int dim. */
    PyObject *d = a && PyTuple_GET_SIZE(a) > 0 ? PyTuple_GET_ITEM(a, 0)
                                               : (k ? PyDict_GetItemString(k, "dim") : NULL);
    if (d && d != Py_None && !PyIndex_Check(d)) {
        PyErr_Format(PyExc_TypeError, "prod(): argument 'dim' must be int, not %s",
                     Py_TYPE(d)->tp_name);
        return NULL;
    }
    return reduce_kw(ferry_prod, "prod", s, a, k, false, true, true);
}
static PyObject *m_argmin(PyObject *s, PyObject *a, PyObject *k)
{
    return reduce_kw(ferry_argmin, "argmin", s, a, k, false, true, false);
}
static PyObject *m_any(PyObject *s, PyObject *a, PyObject *k)
{
    return reduce_kw(ferry_any, "any", s, a, k, false, true, false);
}
static PyObject *m_all(PyObject *s, PyObject *a, PyObject *k)
{
    return reduce_kw(ferry_all, "all", s, a, k, false, true, false);
}
static PyObject *m_count_nonzero(PyObject *s, PyObject *a, PyObject *k)
{
    return reduce_kw(ferry_count_nonzero, "count_nonzero", s, a, k, false, false, false);
}
static PyObject *m_logsumexp(PyObject *s, PyObject *a, PyObject *k)
{
    return reduce_kw(ferry_logsumexp, "logsumexp", s, a, k, true, true, false);
}

/* var/std(dim=None, unbiased=True, keepdim=False, *, correction=None), also var(unbiased)
 * with a bool first, as torch's overloads. */
static PyObject *var_std(bool take_sqrt, PyObject *self, PyObject *args, PyObject *kwargs)
{
    const char *fn = take_sqrt ? "std" : "var";
    static char *kwlist[] = {"dim", "unbiased", "keepdim", "correction", NULL};
    PyObject *d = NULL, *u = NULL, *k = NULL, *c = NULL;
    char fmt[32];
    snprintf(fmt, sizeof fmt, "|OOO$O:%s", fn);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &d, &u, &k, &c))
        return NULL;
    if (d && PyBool_Check(d)) {
        /* var(False): the unbiased overload. */
        if (u) {
            PyErr_Format(PyExc_TypeError, "%s(): unbiased given twice", fn);
            return NULL;
        }
        u = d;
        d = NULL;
    }
    double correction = 1.0;
    if (u && c && c != Py_None) {
        PyErr_Format(PyExc_RuntimeError, "%s(): cannot specify both unbiased and correction", fn);
        return NULL;
    }
    if (u) {
        fpy_bool_arg b = {fn, "unbiased", 1};
        if (!fpy_bool_converter(u, &b))
            return NULL;
        correction = b.value ? 1.0 : 0.0;
    }
    if (c && c != Py_None) {
        correction = PyFloat_AsDouble(c);
        if (correction == -1.0 && PyErr_Occurred())
            return NULL;
    }
    ferry_tensor *t = FPY_T(self), *r;
    int n, dims[FERRY_MAX_DIMS];
    bool keep;
    if (dims_arg(d, fn, ferry_tensor_ndim(t), &n, dims) < 0 || keepdim_arg(k, fn, &keep) < 0)
        return NULL;
    RUN(t, r = (take_sqrt ? ferry_std : ferry_var)(t, n, dims, keep, correction));
    return fpy_wrap(r);
}
static PyObject *m_var(PyObject *s, PyObject *a, PyObject *k) { return var_std(false, s, a, k); }
static PyObject *m_std(PyObject *s, PyObject *a, PyObject *k) { return var_std(true, s, a, k); }

/* norm(p='fro', dim=None, keepdim=False, dtype=None). */
static PyObject *m_norm(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"p", "dim", "keepdim", "dtype", NULL};
    PyObject *p = NULL, *d = NULL, *k = NULL, *dt = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOO$O:norm", kwlist, &p, &d, &k, &dt))
        return NULL;
    double pv = 2.0;
    if (p && p != Py_None) {
        if (PyUnicode_Check(p)) {
            if (PyUnicode_CompareWithASCIIString(p, "fro") != 0) {
                PyErr_Format(PyExc_RuntimeError, "norm(): p=%R is not supported (use 'fro' or a number)",
                             p);
                return NULL;
            }
        } else {
            pv = PyFloat_AsDouble(p);
            if (pv == -1.0 && PyErr_Occurred())
                return NULL;
        }
    }
    ferry_tensor *t = FPY_T(self), *r;
    int n, dims[FERRY_MAX_DIMS];
    bool keep;
    if (dims_arg(d, "norm", ferry_tensor_ndim(t), &n, dims) < 0 || keepdim_arg(k, "norm", &keep) < 0)
        return NULL;
    ferry_tensor *src = with_dtype(t, dt);
    if (!src)
        return NULL;
    RUN(src, r = ferry_norm(src, pv, n, dims, keep));
    ferry_tensor_release(src);
    return fpy_wrap(r);
}

/* ---- max/min: everything, over a dim (values, indices), or elementwise with another --- */

static PyStructSequence_Field vi_fields[] = {
    {"values", "the reduced values"}, {"indices", "where they are (int64)"}, {NULL, NULL}};
static PyStructSequence_Desc max_desc = {"ferry.return_types.max", "(values, indices)", vi_fields, 2};
static PyStructSequence_Desc min_desc = {"ferry.return_types.min", "(values, indices)", vi_fields, 2};
static PyTypeObject *max_type, *min_type;

static PyObject *maxmin(bool is_max, PyObject *self, PyObject *args, PyObject *kwargs)
{
    const char *fn = is_max ? "max" : "min";
    static char *kwlist[] = {"dim", "keepdim", NULL};
    PyObject *d = NULL, *k = NULL;
    char fmt[16];
    snprintf(fmt, sizeof fmt, "|OO:%s", fn);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &d, &k))
        return NULL;
    ferry_tensor *t = FPY_T(self), *r;
    if (!d) {
        if (k) {
            PyErr_Format(PyExc_TypeError, "%s(): keepdim needs dim", fn);
            return NULL;
        }
        RUN(t, r = (is_max ? ferry_max : ferry_min)(t, 0, NULL, false));
        return fpy_wrap(r);
    }
    if (FpyTensor_Check(d)) {
        if (k) {
            PyErr_Format(PyExc_TypeError, "%s(): keepdim with another tensor", fn);
            return NULL;
        }
        RUN(t, r = (is_max ? ferry_maximum : ferry_minimum)(t, FPY_T(d)));
        return fpy_wrap(r);
    }
    int dim;
    bool keep;
    if (one_dim(d, fn, ferry_tensor_ndim(t), &dim) < 0 || keepdim_arg(k, fn, &keep) < 0)
        return NULL;
    ferry_tensor *v = NULL, *i = NULL;
    ferry_status st;
    RUN(t, st = (is_max ? ferry_max_dim : ferry_min_dim)(t, dim, keep, &v, &i));
    if (st != FERRY_OK)
        return fpy_error();
    PyObject *res = PyStructSequence_New(is_max ? max_type : min_type);
    PyObject *pv = fpy_wrap(v), *pi = fpy_wrap(i);
    if (!res || !pv || !pi) {
        Py_XDECREF(res);
        Py_XDECREF(pv);
        Py_XDECREF(pi);
        return NULL;
    }
    PyStructSequence_SET_ITEM(res, 0, pv);
    PyStructSequence_SET_ITEM(res, 1, pi);
    return res;
}
static PyObject *m_max(PyObject *s, PyObject *a, PyObject *k) { return maxmin(true, s, a, k); }
static PyObject *m_min(PyObject *s, PyObject *a, PyObject *k) { return maxmin(false, s, a, k); }

/* ---- scans and softmax: (dim, *, dtype=None) ---------------------------------------- */

typedef ferry_tensor *(*line_fn)(ferry_tensor *, int);

static PyObject *line(line_fn f, const char *fn, PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"dim", "dtype", NULL};
    PyObject *d = NULL, *dt = NULL;
    char fmt[32];
    snprintf(fmt, sizeof fmt, "O|O:%s", fn);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &d, &dt))
        return NULL;
    ferry_tensor *t = FPY_T(self), *r;
    int dim;
    if (one_dim(d, fn, ferry_tensor_ndim(t), &dim) < 0)
        return NULL;
    ferry_tensor *src = with_dtype(t, dt);
    if (!src)
        return NULL;
    RUN(src, r = f(src, dim));
    ferry_tensor_release(src);
    return fpy_wrap(r);
}
static PyObject *m_cumsum(PyObject *s, PyObject *a, PyObject *k) { return line(ferry_cumsum, "cumsum", s, a, k); }
static PyObject *m_cumprod(PyObject *s, PyObject *a, PyObject *k) { return line(ferry_cumprod, "cumprod", s, a, k); }
static PyObject *m_softmax(PyObject *s, PyObject *a, PyObject *k) { return line(ferry_softmax, "softmax", s, a, k); }
static PyObject *m_log_softmax(PyObject *s, PyObject *a, PyObject *k)
{
    return line(ferry_log_softmax, "log_softmax", s, a, k);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
#define CF(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef reduce2_methods[] = {
    {"prod", CF(m_prod), KW, "prod(dim=None, keepdim=False, *, dtype=None)"},
    {"argmin", CF(m_argmin), KW, "argmin(dim=None, keepdim=False): first minimum (int64)"},
    {"any", CF(m_any), KW, "any(dim=None, keepdim=False)"},
    {"all", CF(m_all), KW, "all(dim=None, keepdim=False)"},
    {"count_nonzero", CF(m_count_nonzero), KW, "count_nonzero(dim=None)"},
    {"logsumexp", CF(m_logsumexp), KW, "logsumexp(dim, keepdim=False)"},
    {"var", CF(m_var), KW, "var(dim=None, unbiased=True, keepdim=False, *, correction=None)"},
    {"std", CF(m_std), KW, "std(dim=None, unbiased=True, keepdim=False, *, correction=None)"},
    {"norm", CF(m_norm), KW, "norm(p='fro', dim=None, keepdim=False, dtype=None)"},
    {"max", CF(m_max), KW, "max(), max(dim, keepdim=False) -> (values, indices), max(other)"},
    {"min", CF(m_min), KW, "min(), min(dim, keepdim=False) -> (values, indices), min(other)"},
    {"cumsum", CF(m_cumsum), KW, "cumsum(dim, *, dtype=None)"},
    {"cumprod", CF(m_cumprod), KW, "cumprod(dim, *, dtype=None)"},
    {"softmax", CF(m_softmax), KW, "softmax(dim, dtype=None)"},
    {"log_softmax", CF(m_log_softmax), KW, "log_softmax(dim, dtype=None)"},
    {NULL, NULL, 0, NULL},
};

/* ferry.NAME(input, *args, **kwargs): the method on input. */
static PyObject *module_call(const char *name, PyObject *args, PyObject *kwargs)
{
    PyObject *input = NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n > 0) {
        input = PyTuple_GET_ITEM(args, 0);
    } else if (kwargs) {
        input = PyDict_GetItemString(kwargs, "input");
    }
    if (!input || !FpyTensor_Check(input)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'input' (position 1) must be Tensor, not %s",
                     name, input ? Py_TYPE(input)->tp_name : "nothing");
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, n > 0 ? 1 : 0, n);
    PyObject *kw = NULL;
    if (kwargs) {
        kw = PyDict_Copy(kwargs);
        if (kw && n == 0)
            PyDict_DelItemString(kw, "input");
    }
    PyObject *r = NULL;
    for (PyMethodDef *m = reduce2_methods; rest && m->ml_name; m++)
        if (strcmp(m->ml_name, name) == 0) {
            r = ((PyCFunctionWithKeywords)(void (*)(void))m->ml_meth)(input, rest, kw);
            break;
        }
    Py_XDECREF(rest);
    Py_XDECREF(kw);
    return r;
}

#define MODFN(name)                                                                       \
    static PyObject *f_##name(PyObject *mod, PyObject *args, PyObject *kwargs)            \
    {                                                                                     \
        (void)mod;                                                                        \
        return module_call(#name, args, kwargs);                                          \
    }
MODFN(prod) MODFN(argmin) MODFN(any) MODFN(all) MODFN(count_nonzero) MODFN(logsumexp)
MODFN(var) MODFN(std) MODFN(norm) MODFN(max) MODFN(min) MODFN(cumsum) MODFN(cumprod)
MODFN(softmax) MODFN(log_softmax)

static PyMethodDef reduce2_functions[] = {
    {"prod", CF(f_prod), KW, "ferry.prod(input, dim=None, keepdim=False, *, dtype=None)"},
    {"argmin", CF(f_argmin), KW, "ferry.argmin(input, dim=None, keepdim=False)"},
    {"any", CF(f_any), KW, "ferry.any(input, dim=None, keepdim=False)"},
    {"all", CF(f_all), KW, "ferry.all(input, dim=None, keepdim=False)"},
    {"count_nonzero", CF(f_count_nonzero), KW, "ferry.count_nonzero(input, dim=None)"},
    {"logsumexp", CF(f_logsumexp), KW, "ferry.logsumexp(input, dim, keepdim=False)"},
    {"var", CF(f_var), KW, "ferry.var(input, dim=None, unbiased=True, keepdim=False, *, correction=None)"},
    {"std", CF(f_std), KW, "ferry.std(input, dim=None, unbiased=True, keepdim=False, *, correction=None)"},
    {"norm", CF(f_norm), KW, "ferry.norm(input, p='fro', dim=None, keepdim=False, dtype=None)"},
    {"max", CF(f_max), KW, "ferry.max(input), (input, dim, keepdim=False), (input, other)"},
    {"min", CF(f_min), KW, "ferry.min(input), (input, dim, keepdim=False), (input, other)"},
    {"cumsum", CF(f_cumsum), KW, "ferry.cumsum(input, dim, *, dtype=None)"},
    {"cumprod", CF(f_cumprod), KW, "ferry.cumprod(input, dim, *, dtype=None)"},
    {"softmax", CF(f_softmax), KW, "ferry.softmax(input, dim, dtype=None)"},
    {"log_softmax", CF(f_log_softmax), KW, "ferry.log_softmax(input, dim, dtype=None)"},
    {NULL, NULL, 0, NULL},
};

/* ---- ferry.nn.functional's C side: positional, checked; ferry/nn/functional.py gives
 * them torch's keywords. ---- */

static int reduction_arg(PyObject *o, ferry_reduction *out)
{
    const char *s = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (s && strcmp(s, "none") == 0)
        *out = FERRY_REDUCTION_NONE;
    else if (s && strcmp(s, "mean") == 0)
        *out = FERRY_REDUCTION_MEAN;
    else if (s && strcmp(s, "sum") == 0)
        *out = FERRY_REDUCTION_SUM;
    else {
        PyErr_Format(PyExc_ValueError, "%R is not a valid value for reduction", o);
        return -1;
    }
    return 0;
}

static PyObject *nn_linear(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x, *w, *b = Py_None;
    ferry_tensor *tx, *tw, *tb = NULL, *r;
    if (!PyArg_ParseTuple(args, "OO|O:linear", &x, &w, &b) || fpy_tensor_arg(x, "linear", "input", &tx) < 0 ||
        fpy_tensor_arg(w, "linear", "weight", &tw) < 0 ||
        (b != Py_None && fpy_tensor_arg(b, "linear", "bias", &tb) < 0))
        return NULL;
    RUN(tx, r = ferry_linear(tx, tw, tb));
    return fpy_wrap(r);
}

static PyObject *nn_mse_loss(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *x, *y, *red;
    ferry_tensor *tx, *ty, *r;
    ferry_reduction rd;
    if (!PyArg_ParseTuple(args, "OOO:mse_loss", &x, &y, &red) ||
        fpy_tensor_arg(x, "mse_loss", "input", &tx) < 0 || fpy_tensor_arg(y, "mse_loss", "target", &ty) < 0 ||
        reduction_arg(red, &rd) < 0)
        return NULL;
    RUN(tx, r = ferry_mse_loss(tx, ty, rd));
    return fpy_wrap(r);
}

/* (input, target, ignore_index, reduction, label_smoothing); cross when log_softmax first. */
static PyObject *nll_or_ce(bool cross, PyObject *args)
{
    const char *fn = cross ? "cross_entropy" : "nll_loss";
    PyObject *x, *y, *red;
    long long ignore;
    double smoothing = 0;
    ferry_tensor *tx, *ty, *r;
    ferry_reduction rd;
    if (!PyArg_ParseTuple(args, "OOLO|d", &x, &y, &ignore, &red, &smoothing) ||
        fpy_tensor_arg(x, fn, "input", &tx) < 0 || fpy_tensor_arg(y, fn, "target", &ty) < 0 ||
        reduction_arg(red, &rd) < 0)
        return NULL;
    if (cross)
        RUN(tx, r = ferry_cross_entropy_ex(tx, ty, ignore, smoothing, rd));
    else
        RUN(tx, r = ferry_nll_loss(tx, ty, ignore, rd));
    return fpy_wrap(r);
}
static PyObject *nn_nll_loss(PyObject *m, PyObject *a) { (void)m; return nll_or_ce(false, a); }
static PyObject *nn_cross_entropy(PyObject *m, PyObject *a) { (void)m; return nll_or_ce(true, a); }

static PyMethodDef nn_functions[] = {
    {"_nn_linear", nn_linear, METH_VARARGS, "ferry.nn.functional.linear's C side"},
    {"_nn_mse_loss", nn_mse_loss, METH_VARARGS, "ferry.nn.functional.mse_loss's C side"},
    {"_nn_nll_loss", nn_nll_loss, METH_VARARGS, "ferry.nn.functional.nll_loss's C side"},
    {"_nn_cross_entropy", nn_cross_entropy, METH_VARARGS, "ferry.nn.functional.cross_entropy's C side"},
    {NULL, NULL, 0, NULL},
};

int fpy_reduce2_init(PyObject *module)
{
    max_type = PyStructSequence_NewType(&max_desc);
    min_type = PyStructSequence_NewType(&min_desc);
    if (!max_type || !min_type)
        return -1;
    /* The Tensor type is ready: the methods go into its dict (max/min replace the
     * no-argument forms, which they include). */
    if (fpy_tensor_add_methods(reduce2_methods, false) < 0)
        return -1;
    if (PyModule_AddFunctions(module, nn_functions) < 0)
        return -1;
    return PyModule_AddFunctions(module, reduce2_functions);
}

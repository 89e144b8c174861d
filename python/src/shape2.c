/* Triangles, diagonals, trace and constant padding for the Python module (torch.tril,
 * triu, diagonal, diag, diag_embed, trace and the constant mode of F.pad): thin wrappers
 * of core/ops/shape2.c with PyTorch's keywords and defaults. */
#include "ferry_py.h"

#define CF(f) ((PyCFunction)(void (*)(void))(f))
#define KW (METH_VARARGS | METH_KEYWORDS)

/* An optional int64 argument (NULL keeps *out). */
static int opt_int64(PyObject *o, int64_t *out)
{
    return o ? fpy_int64(o, out) : 0;
}

static PyObject *tri(PyObject *self, PyObject *args, PyObject *kwargs, bool upper, bool inplace)
{
    static char *kw[] = {"diagonal", NULL};
    PyObject *diag = NULL;
    int64_t k = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, upper ? "|O:triu" : "|O:tril", kw, &diag) ||
        opt_int64(diag, &k) < 0)
        return NULL;
    ferry_tensor *t = FPY_T(self);
    if (inplace && ferry_grad_enabled() && ferry_tensor_requires_grad(t) &&
        ferry_tensor_grad_fn_name(t))
        /* As every in-place op of ferry's (a leaf gets copy_'s leaf refusal below). */
        return PyErr_Format(PyExc_NotImplementedError,
                            "%s: in-place write into a tensor that requires grad (the output of "
                            "%s): ferry's autograd does not rebase history yet; compute the "
                            "result out of place",
                            upper ? "triu_" : "tril_", ferry_tensor_grad_fn_name(t));
    ferry_tensor *r = (upper ? ferry_triu : ferry_tril)(t, k);
    if (!r || !inplace)
        return fpy_wrap(r);
    ferry_status st = ferry_tensor_copy_from(t, r);
    ferry_tensor_release(r);
    if (st != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *t_tril(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return tri(self, args, kwargs, false, false);
}

static PyObject *t_triu(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return tri(self, args, kwargs, true, false);
}

static PyObject *t_tril_(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return tri(self, args, kwargs, false, true);
}

static PyObject *t_triu_(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return tri(self, args, kwargs, true, true);
}

static PyObject *t_diagonal(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"offset", "dim1", "dim2", NULL};
    PyObject *off = NULL, *d1 = NULL, *d2 = NULL;
    int64_t offset = 0;
    int dim1 = 0, dim2 = 1;
    int nd = ferry_tensor_ndim(FPY_T(self));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOO:diagonal", kw, &off, &d1, &d2) ||
        opt_int64(off, &offset) < 0 || (d1 && fpy_dim(d1, nd, &dim1) < 0) ||
        (d2 && fpy_dim(d2, nd, &dim2) < 0))
        return NULL;
    /* A 0-d or 1-d tensor has no dim 1: PyTorch's IndexError for the default dim2. */
    if (!d2 && nd < 2)
        return PyErr_Format(PyExc_IndexError,
                            "Dimension out of range (expected to be in range of [%d, %d], but got "
                            "1)",
                            -(nd > 0 ? nd : 1), (nd > 0 ? nd : 1) - 1);
    return fpy_wrap(ferry_diagonal(FPY_T(self), offset, dim1, dim2));
}

static PyObject *t_diag_embed(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"offset", "dim1", "dim2", NULL};
    PyObject *off = NULL, *d1 = NULL, *d2 = NULL;
    int64_t offset = 0;
    int nd = ferry_tensor_ndim(FPY_T(self)) + 1;
    int dim1 = -2, dim2 = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOO:diag_embed", kw, &off, &d1, &d2) ||
        opt_int64(off, &offset) < 0 || (d1 && fpy_dim(d1, nd, &dim1) < 0) ||
        (d2 && fpy_dim(d2, nd, &dim2) < 0))
        return NULL;
    return fpy_wrap(ferry_diag_embed(FPY_T(self), offset, dim1, dim2));
}

static PyObject *t_diag(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"diagonal", NULL};
    PyObject *diag = NULL;
    int64_t k = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:diag", kw, &diag) ||
        opt_int64(diag, &k) < 0)
        return NULL;
    ferry_tensor *t = FPY_T(self);
    int nd = ferry_tensor_ndim(t);
    if (nd == 1)
        return fpy_wrap(ferry_diag_embed(t, k, 0, 1));
    if (nd != 2)
        return PyErr_Format(PyExc_RuntimeError, "diag(): Supports 1D or 2D tensors. Got %dD", nd);
    ferry_tensor *v = ferry_diagonal(t, k, 0, 1);
    ferry_tensor *r = v ? ferry_tensor_clone(v) : NULL;
    ferry_tensor_release(v);
    return fpy_wrap(r);
}

static PyObject *t_trace(PyObject *self, PyObject *unused)
{
    (void)unused;
    ferry_tensor *t = FPY_T(self);
    int nd = ferry_tensor_ndim(t);
    if (nd != 2)
        return PyErr_Format(PyExc_RuntimeError,
                            "trace: expected a matrix, but got tensor with dim %d", nd);
    if (ferry_tensor_dtype(t) == FERRY_BOOL)
        return PyErr_Format(PyExc_NotImplementedError, "\"trace\" not implemented for 'Bool'");
    ferry_tensor *v = ferry_diagonal(t, 0, 0, 1);
    ferry_tensor *r = v ? ferry_sum(v, 0, NULL, false) : NULL;
    ferry_tensor_release(v);
    return fpy_wrap(r);
}

/* _pad(input, pad, value): the constant mode; F.pad in ferry/nn/functional.py. */
static PyObject *mod_pad(PyObject *m, PyObject *args)
{
    (void)m;
    PyObject *x, *seq;
    double value;
    if (!PyArg_ParseTuple(args, "OOd:pad", &x, &seq, &value))
        return NULL;
    if (!FpyTensor_Check(x))
        return PyErr_Format(PyExc_TypeError, "pad(): argument 'input' (position 1) must be Tensor, "
                                             "not %s",
                            Py_TYPE(x)->tp_name);
    PyObject *fast = PySequence_Fast(seq, "pad(): argument 'pad' must be tuple of ints");
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > 2 * FERRY_MAX_DIMS + 2) {
        /* Longer than any tensor can take: the C check gives PyTorch's message. */
        n = 2 * FERRY_MAX_DIMS + 2;
    }
    int64_t pads[2 * FERRY_MAX_DIMS + 2];
    for (Py_ssize_t i = 0; i < n; i++) {
        if (fpy_int64(PySequence_Fast_GET_ITEM(fast, i), &pads[i]) < 0) {
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_ssize_t given = PySequence_Fast_GET_SIZE(fast);
    Py_DECREF(fast);
    if (given > n) {
        if (given % 2)
            return PyErr_Format(PyExc_RuntimeError, "Padding length must be divisible by 2");
        return PyErr_Format(PyExc_RuntimeError,
                            "Padding length should be less than or equal to two times the input "
                            "dimension but got padding length %zd and input of dimension %d",
                            given, ferry_tensor_ndim(FPY_T(x)));
    }
    return fpy_wrap(ferry_pad(FPY_T(x), (int)n, pads, value));
}

#define FUNCTION(name, impl, fn)                                                            \
    static PyObject *mod_##name(PyObject *m, PyObject *args, PyObject *kwargs)              \
    {                                                                                       \
        (void)m;                                                                            \
        Py_ssize_t n = PyTuple_GET_SIZE(args);                                              \
        PyObject *x = n > 0 ? PyTuple_GET_ITEM(args, 0) : (kwargs ? PyDict_GetItemString(kwargs, "input") : NULL); \
        if (!x || !FpyTensor_Check(x))                                                      \
            return PyErr_Format(PyExc_TypeError,                                            \
                                fn "(): argument 'input' (position 1) must be Tensor");     \
        PyObject *rest = PyTuple_GetSlice(args, n > 0 ? 1 : 0, n);                          \
        PyObject *kw2 = NULL;                                                               \
        if (rest && n == 0 && kwargs) {                                                     \
            kw2 = PyDict_Copy(kwargs);                                                      \
            if (!kw2 || PyDict_DelItemString(kw2, "input") < 0) {                           \
                Py_XDECREF(kw2);                                                            \
                Py_DECREF(rest);                                                            \
                return NULL;                                                                \
            }                                                                               \
        }                                                                                   \
        PyObject *r = rest ? impl(x, rest, kw2 ? kw2 : kwargs) : NULL;                      \
        Py_XDECREF(rest);                                                                   \
        Py_XDECREF(kw2);                                                                    \
        return r;                                                                           \
    }
FUNCTION(tril, t_tril, "tril")
FUNCTION(triu, t_triu, "triu")
FUNCTION(diagonal, t_diagonal, "diagonal")
FUNCTION(diag_embed, t_diag_embed, "diag_embed")
FUNCTION(diag, t_diag, "diag")

static PyObject *mod_trace(PyObject *m, PyObject *x)
{
    (void)m;
    if (!FpyTensor_Check(x))
        return PyErr_Format(PyExc_TypeError, "trace(): argument 'input' (position 1) must be "
                                             "Tensor, not %s",
                            Py_TYPE(x)->tp_name);
    return t_trace(x, NULL);
}

static PyMethodDef shape2_methods[] = {
    {"tril", CF(t_tril), KW, "tril(diagonal=0)"},
    {"triu", CF(t_triu), KW, "triu(diagonal=0)"},
    {"tril_", CF(t_tril_), KW, "tril_(diagonal=0): in place"},
    {"triu_", CF(t_triu_), KW, "triu_(diagonal=0): in place"},
    {"diagonal", CF(t_diagonal), KW, "diagonal(offset=0, dim1=0, dim2=1): a view"},
    {"diag_embed", CF(t_diag_embed), KW, "diag_embed(offset=0, dim1=-2, dim2=-1)"},
    {"diag", CF(t_diag), KW, "diag(diagonal=0)"},
    {"trace", CF(t_trace), METH_NOARGS, "trace(): the sum of the main diagonal"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef shape2_functions[] = {
    {"tril", CF(mod_tril), KW, "tril(input, diagonal=0)"},
    {"triu", CF(mod_triu), KW, "triu(input, diagonal=0)"},
    {"diagonal", CF(mod_diagonal), KW, "diagonal(input, offset=0, dim1=0, dim2=1): a view"},
    {"diag_embed", CF(mod_diag_embed), KW, "diag_embed(input, offset=0, dim1=-2, dim2=-1)"},
    {"diag", CF(mod_diag), KW, "diag(input, diagonal=0)"},
    {"trace", CF(mod_trace), METH_O, "trace(input)"},
    {"_pad", CF(mod_pad), METH_VARARGS, "_pad(input, pad, value): F.pad's constant mode"},
    {NULL, NULL, 0, NULL},
};

int fpy_shape2_init(PyObject *module)
{
    if (fpy_tensor_add_methods(shape2_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, shape2_functions);
}

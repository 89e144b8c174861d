/* Python side of the selection ops: nonzero (as_tuple too), argwhere, masked_select,
 * masked_scatter(_), as Tensor methods and module functions with torch's keywords. */
#include "ferry_py.h"

/* The columns of t's nonzero() as a tuple of 1-d tensors (a 0-d t counts as 1-d). */
static PyObject *nonzero_tuple(ferry_tensor *t)
{
    ferry_tensor *flat = NULL;
    if (ferry_tensor_ndim(t) == 0) {
        int64_t one = 1;
        if (!(flat = ferry_reshape(t, 1, &one)))
            return fpy_error();
        t = flat;
    }
    ferry_tensor *nz = ferry_nonzero(t);
    ferry_tensor_release(flat);
    if (!nz)
        return fpy_error();
    int n = (int)ferry_tensor_shape(nz)[1];
    ferry_tensor *cols[FERRY_MAX_DIMS];
    int got = ferry_unbind(nz, 1, cols, FERRY_MAX_DIMS);
    ferry_tensor_release(nz);
    if (got != n) {
        for (int i = 0; i < got && i < FERRY_MAX_DIMS; i++)
            ferry_tensor_release(cols[i]);
        return fpy_error();
    }
    PyObject *r = PyTuple_New(n);
    for (int i = 0; i < n; i++) {
        PyObject *w = r ? fpy_wrap(cols[i]) : NULL;
        if (!r) {
            ferry_tensor_release(cols[i]);
            continue;
        }
        if (!w) {
            Py_CLEAR(r);
            continue;
        }
        PyTuple_SET_ITEM(r, i, w);
    }
    return r;
}

static PyObject *nonzero_call(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kw_m[] = {"as_tuple", NULL};
    static char *kw_f[] = {"input", "as_tuple", NULL};
    PyObject *in = self;
    fpy_bool_arg as_tuple = {"nonzero", "as_tuple", 0};
    if (self ? !PyArg_ParseTupleAndKeywords(args, kw, "|$O&:nonzero", kw_m, fpy_bool_converter,
                                            &as_tuple)
             : !PyArg_ParseTupleAndKeywords(args, kw, "O|$O&:nonzero", kw_f, &in,
                                            fpy_bool_converter, &as_tuple))
        return NULL;
    ferry_tensor *t;
    if (fpy_tensor_arg(in, "nonzero", "input", &t) < 0)
        return NULL;
    if (as_tuple.value)
        return nonzero_tuple(t);
    return fpy_wrap(ferry_nonzero(t));
}

static PyObject *argwhere_call(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kw_f[] = {"input", NULL};
    PyObject *in = self;
    if (self ? !PyArg_ParseTuple(args, ":argwhere")
             : !PyArg_ParseTupleAndKeywords(args, kw, "O:argwhere", kw_f, &in))
        return NULL;
    ferry_tensor *t;
    if (fpy_tensor_arg(in, "argwhere", "input", &t) < 0)
        return NULL;
    return fpy_wrap(ferry_nonzero(t));
}

static PyObject *masked_select_call(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kw_m[] = {"mask", NULL};
    static char *kw_f[] = {"input", "mask", NULL};
    PyObject *in = self, *mask;
    if (self ? !PyArg_ParseTupleAndKeywords(args, kw, "O:masked_select", kw_m, &mask)
             : !PyArg_ParseTupleAndKeywords(args, kw, "OO:masked_select", kw_f, &in, &mask))
        return NULL;
    ferry_tensor *t, *m;
    if (fpy_tensor_arg(in, "masked_select", "input", &t) < 0 ||
        fpy_tensor_arg(mask, "masked_select", "mask", &m) < 0)
        return NULL;
    return fpy_wrap(ferry_masked_select(t, m));
}

static PyObject *masked_scatter_call(PyObject *self, PyObject *args, PyObject *kw, bool inplace)
{
    static char *kw_m[] = {"mask", "source", NULL};
    static char *kw_f[] = {"input", "mask", "source", NULL};
    const char *fn = inplace ? "masked_scatter_" : "masked_scatter";
    PyObject *in = self, *mask, *source;
    if (self ? !PyArg_ParseTupleAndKeywords(args, kw, "OO", kw_m, &mask, &source)
             : !PyArg_ParseTupleAndKeywords(args, kw, "OOO", kw_f, &in, &mask, &source))
        return NULL;
    ferry_tensor *t, *m, *s;
    if (fpy_tensor_arg(in, fn, "input", &t) < 0 || fpy_tensor_arg(mask, fn, "mask", &m) < 0 ||
        fpy_tensor_arg(source, fn, "source", &s) < 0)
        return NULL;
    if (!inplace)
        return fpy_wrap(ferry_masked_scatter(t, m, s));
    if (ferry_masked_scatter_(t, m, s) != FERRY_OK)
        return fpy_error();
    return Py_NewRef(in);
}

static PyObject *m_nonzero(PyObject *self, PyObject *args, PyObject *kw)
{
    return nonzero_call(self, args, kw);
}

static PyObject *f_nonzero(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    return nonzero_call(NULL, args, kw);
}

static PyObject *m_argwhere(PyObject *self, PyObject *args, PyObject *kw)
{
    return argwhere_call(self, args, kw);
}

static PyObject *f_argwhere(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    return argwhere_call(NULL, args, kw);
}

static PyObject *m_masked_select(PyObject *self, PyObject *args, PyObject *kw)
{
    return masked_select_call(self, args, kw);
}

static PyObject *f_masked_select(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    return masked_select_call(NULL, args, kw);
}

static PyObject *m_masked_scatter(PyObject *self, PyObject *args, PyObject *kw)
{
    return masked_scatter_call(self, args, kw, false);
}

static PyObject *m_masked_scatter_(PyObject *self, PyObject *args, PyObject *kw)
{
    return masked_scatter_call(self, args, kw, true);
}

static PyObject *f_masked_scatter(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    return masked_scatter_call(NULL, args, kw, false);
}

#define KW_ METH_VARARGS | METH_KEYWORDS
#define FN_(f) (PyCFunction)(void (*)(void))(f)
static PyMethodDef select_methods[] = {
    {"nonzero", FN_(m_nonzero), KW_, "nonzero(*, as_tuple=False)"},
    {"argwhere", FN_(m_argwhere), KW_, "argwhere()"},
    {"masked_select", FN_(m_masked_select), KW_, "masked_select(mask)"},
    {"masked_scatter", FN_(m_masked_scatter), KW_, "masked_scatter(mask, source)"},
    {"masked_scatter_", FN_(m_masked_scatter_), KW_, "masked_scatter_(mask, source)"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef select_functions[] = {
    {"nonzero", FN_(f_nonzero), KW_, "nonzero(input, *, as_tuple=False)"},
    {"argwhere", FN_(f_argwhere), KW_, "argwhere(input)"},
    {"masked_select", FN_(f_masked_select), KW_, "masked_select(input, mask)"},
    {"masked_scatter", FN_(f_masked_scatter), KW_, "masked_scatter(input, mask, source)"},
    {NULL, NULL, 0, NULL},
};

int fpy_select_init(PyObject *module)
{
    if (fpy_tensor_add_methods(select_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, select_functions);
}

/* Python side of the indexing ops: Tensor.index_select/gather/scatter/scatter_add (and
 * the in-place scatter_/scatter_add_), and the module functions of the same names, with
 * torch's keywords. */
#include "ferry_py.h"

typedef ferry_tensor *(*sel_fn)(ferry_tensor *, int, ferry_tensor *);
typedef ferry_tensor *(*sc_fn)(ferry_tensor *, int, ferry_tensor *, ferry_tensor *);
typedef ferry_status (*sc_inplace_fn)(ferry_tensor *, int, ferry_tensor *, ferry_tensor *);

/* self, dim, index from (self given) or (input, dim, index) */
static PyObject *select_call(PyObject *self, PyObject *args, PyObject *kw, const char *fn,
                             sel_fn f)
{
    static char *kw_m[] = {"dim", "index", NULL};
    static char *kw_f[] = {"input", "dim", "index", NULL};
    PyObject *in = self, *index, *dimo;
    int dim;
    if (self ? !PyArg_ParseTupleAndKeywords(args, kw, "OO", kw_m, &dimo, &index)
             : !PyArg_ParseTupleAndKeywords(args, kw, "OOO", kw_f, &in, &dimo, &index))
        return NULL;
    ferry_tensor *t, *i;
    if (fpy_tensor_arg(in, fn, "input", &t) < 0 || fpy_tensor_arg(index, fn, "index", &i) < 0 ||
        fpy_dim(dimo, ferry_tensor_ndim(t), &dim) < 0)
        return NULL;
    return fpy_wrap(f(t, dim, i));
}

static PyObject *scatter_call(PyObject *self, PyObject *args, PyObject *kw, const char *fn,
                              sc_fn f, sc_inplace_fn fi)
{
    static char *kw_m[] = {"dim", "index", "src", NULL};
    static char *kw_f[] = {"input", "dim", "index", "src", NULL};
    PyObject *in = self, *index, *src, *dimo;
    int dim;
    if (self ? !PyArg_ParseTupleAndKeywords(args, kw, "OOO", kw_m, &dimo, &index, &src)
             : !PyArg_ParseTupleAndKeywords(args, kw, "OOOO", kw_f, &in, &dimo, &index, &src))
        return NULL;
    ferry_tensor *t, *i, *s;
    if (fpy_tensor_arg(in, fn, "input", &t) < 0 || fpy_tensor_arg(index, fn, "index", &i) < 0 ||
        fpy_tensor_arg(src, fn, "src", &s) < 0 || fpy_dim(dimo, ferry_tensor_ndim(t), &dim) < 0)
        return NULL;
    if (fi) {
        if (fi(t, dim, i, s) != FERRY_OK)
            return fpy_error();
        Py_INCREF(in);
        return in;
    }
    return fpy_wrap(f(t, dim, i, s));
}

#define SELECT_(name)                                                                      \
    static PyObject *m_##name(PyObject *self, PyObject *args, PyObject *kw)               \
    {                                                                                      \
        return select_call(self, args, kw, #name, ferry_##name);                           \
    }                                                                                      \
    static PyObject *f_##name(PyObject *mod, PyObject *args, PyObject *kw)                \
    {                                                                                      \
        (void)mod;                                                                         \
        return select_call(NULL, args, kw, #name, ferry_##name);                           \
    }
SELECT_(index_select)
SELECT_(gather)

#define SCATTER_(name)                                                                     \
    static PyObject *m_##name(PyObject *self, PyObject *args, PyObject *kw)               \
    {                                                                                      \
        return scatter_call(self, args, kw, #name, ferry_##name, NULL);                    \
    }                                                                                      \
    static PyObject *m_##name##_(PyObject *self, PyObject *args, PyObject *kw)            \
    {                                                                                      \
        return scatter_call(self, args, kw, #name "_", NULL, ferry_##name##_);             \
    }                                                                                      \
    static PyObject *f_##name(PyObject *mod, PyObject *args, PyObject *kw)                \
    {                                                                                      \
        (void)mod;                                                                         \
        return scatter_call(NULL, args, kw, #name, ferry_##name, NULL);                    \
    }
SCATTER_(scatter)
SCATTER_(scatter_add)

#define KW_ METH_VARARGS | METH_KEYWORDS
static PyMethodDef index_methods[] = {
    {"index_select", (PyCFunction)(void (*)(void))m_index_select, KW_, "index_select(dim, index)"},
    {"gather", (PyCFunction)(void (*)(void))m_gather, KW_, "gather(dim, index)"},
    {"scatter", (PyCFunction)(void (*)(void))m_scatter, KW_, "scatter(dim, index, src)"},
    {"scatter_", (PyCFunction)(void (*)(void))m_scatter_, KW_, "scatter_(dim, index, src)"},
    {"scatter_add", (PyCFunction)(void (*)(void))m_scatter_add, KW_, "scatter_add(dim, index, src)"},
    {"scatter_add_", (PyCFunction)(void (*)(void))m_scatter_add_, KW_,
     "scatter_add_(dim, index, src)"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef index_functions[] = {
    {"index_select", (PyCFunction)(void (*)(void))f_index_select, KW_,
     "index_select(input, dim, index)"},
    {"gather", (PyCFunction)(void (*)(void))f_gather, KW_, "gather(input, dim, index)"},
    {"scatter", (PyCFunction)(void (*)(void))f_scatter, KW_, "scatter(input, dim, index, src)"},
    {"scatter_add", (PyCFunction)(void (*)(void))f_scatter_add, KW_,
     "scatter_add(input, dim, index, src)"},
    {NULL, NULL, 0, NULL},
};

int fpy_index_init(PyObject *module)
{
    if (fpy_tensor_add_methods(index_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, index_functions);
}

/* Tensor.sort/argsort/topk/msort and the module functions of the same names, with
 * PyTorch's keywords and defaults; (values, indices) come back as ferry.return_types
 * struct sequences (a tuple with .values and .indices), like torch.return_types. */
#include "ferry_py.h"

static PyTypeObject SortResult_Type, TopkResult_Type;

static PyStructSequence_Field result_fields[] = {
    {"values", "the selected elements, in order"},
    {"indices", "where each came from along dim (int64)"},
    {NULL, NULL},
};

static PyStructSequence_Desc sort_desc = {"ferry.return_types.sort", "(values, indices) of sort",
                                          result_fields, 2};
static PyStructSequence_Desc topk_desc = {"ferry.return_types.topk", "(values, indices) of topk",
                                          result_fields, 2};

static PyObject *pair(PyTypeObject *type, ferry_tensor *v, ferry_tensor *i)
{
    PyObject *r = PyStructSequence_New(type);
    if (!r) {
        ferry_tensor_release(v);
        ferry_tensor_release(i);
        return NULL;
    }
    PyObject *wv = fpy_wrap(v);
    PyObject *wi = wv ? fpy_wrap(i) : (ferry_tensor_release(i), NULL);
    if (!wv || !wi) {
        Py_XDECREF(wv);
        Py_DECREF(r);
        return NULL;
    }
    PyStructSequence_SET_ITEM(r, 0, wv);
    PyStructSequence_SET_ITEM(r, 1, wi);
    return r;
}

static int input_tensor(PyObject *o, const char *fn, PyObject **out)
{
    if (!FpyTensor_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'input' (position 1) must be Tensor, not %s",
                     fn, Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = o;
    return 0;
}

/* self/input, then the op's arguments; `offset` 1 for module functions (input first). */
typedef enum { OP_SORT, OP_ARGSORT, OP_TOPK, OP_MSORT } sort_op;

static PyObject *run(sort_op op, PyObject *self, PyObject *args, PyObject *kw)
{
    static const char *names[] = {"sort", "argsort", "topk", "msort"};
    const char *fn = names[op];
    PyObject *t = self, *input = NULL, *dim_o = NULL, *k_o = NULL;
    fpy_bool_arg desc = {fn, "descending", 0}, stable = {fn, "stable", 0};
    fpy_bool_arg largest = {fn, "largest", 1}, sorted = {fn, "sorted", 1};
    int ok;
    if (op == OP_TOPK) {
        if (self) {
            static char *kws[] = {"k", "dim", "largest", "sorted", NULL};
            ok = PyArg_ParseTupleAndKeywords(args, kw, "O|OO&O&:topk", kws, &k_o, &dim_o,
                                             fpy_bool_converter, &largest, fpy_bool_converter,
                                             &sorted);
        } else {
            static char *kws[] = {"input", "k", "dim", "largest", "sorted", NULL};
            ok = PyArg_ParseTupleAndKeywords(args, kw, "OO|OO&O&:topk", kws, &input, &k_o, &dim_o,
                                             fpy_bool_converter, &largest, fpy_bool_converter,
                                             &sorted);
        }
    } else if (op == OP_MSORT) {
        static char *kws[] = {"input", NULL};
        ok = self ? PyArg_ParseTupleAndKeywords(args, kw, ":msort", kws + 1)
                  : PyArg_ParseTupleAndKeywords(args, kw, "O:msort", kws, &input);
    } else {
        /* PyTorch's sort takes (dim, descending) by position and stable by keyword. */
        if (self) {
            static char *kws[] = {"dim", "descending", "stable", NULL};
            ok = PyArg_ParseTupleAndKeywords(args, kw, op == OP_SORT ? "|OO&$O&:sort" : "|OO&$O&:argsort",
                                             kws, &dim_o, fpy_bool_converter, &desc,
                                             fpy_bool_converter, &stable);
        } else {
            static char *kws[] = {"input", "dim", "descending", "stable", NULL};
            ok = PyArg_ParseTupleAndKeywords(args, kw, op == OP_SORT ? "O|OO&$O&:sort" : "O|OO&$O&:argsort",
                                             kws, &input, &dim_o, fpy_bool_converter, &desc,
                                             fpy_bool_converter, &stable);
        }
    }
    if (!ok)
        return NULL;
    if (!self && input_tensor(input, fn, &t) < 0)
        return NULL;
    ferry_tensor *x = FPY_T(t);
    int dim = op == OP_MSORT ? 0 : -1;
    if (dim_o && dim_o != Py_None && fpy_dim(dim_o, ferry_tensor_ndim(x), &dim) < 0)
        return NULL;
    ferry_tensor *v = NULL, *i = NULL;
    ferry_status st;
    bool block = fpy_obj_may_block(t) || ferry_tensor_numel(x) >= 65536;
    switch (op) {
    case OP_TOPK: {
        int64_t k;
        if (fpy_int64(k_o, &k) < 0)
            return NULL;
        FPY_MAYBE_NOGIL(block, st = ferry_topk(x, k, dim, largest.value, sorted.value, &v, &i));
        if (st != FERRY_OK)
            return fpy_error();
        return pair(&TopkResult_Type, v, i);
    }
    case OP_ARGSORT: {
        ferry_tensor *r;
        FPY_MAYBE_NOGIL(block, r = ferry_argsort(x, dim, desc.value, stable.value));
        return fpy_wrap(r);
    }
    case OP_MSORT:
        FPY_MAYBE_NOGIL(block, st = ferry_sort(x, 0, false, false, &v, NULL));
        return st != FERRY_OK ? fpy_error() : fpy_wrap(v);
    default:
        FPY_MAYBE_NOGIL(block, st = ferry_sort(x, dim, desc.value, stable.value, &v, &i));
        if (st != FERRY_OK)
            return fpy_error();
        return pair(&SortResult_Type, v, i);
    }
}

#define WRAP(name, OP)                                                                      \
    static PyObject *m_##name(PyObject *self, PyObject *args, PyObject *kw)                 \
    {                                                                                       \
        return run(OP, self, args, kw);                                                     \
    }                                                                                       \
    static PyObject *f_##name(PyObject *mod, PyObject *args, PyObject *kw)                  \
    {                                                                                       \
        (void)mod;                                                                          \
        return run(OP, NULL, args, kw);                                                     \
    }
WRAP(sort, OP_SORT)
WRAP(argsort, OP_ARGSORT)
WRAP(topk, OP_TOPK)
WRAP(msort, OP_MSORT)

#define CF(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef tensor_methods[] = {
    {"sort", CF(m_sort), METH_VARARGS | METH_KEYWORDS,
     "sort(dim=-1, descending=False, *, stable=False) -> (values, indices)"},
    {"argsort", CF(m_argsort), METH_VARARGS | METH_KEYWORDS,
     "argsort(dim=-1, descending=False, *, stable=False) -> indices"},
    {"topk", CF(m_topk), METH_VARARGS | METH_KEYWORDS,
     "topk(k, dim=-1, largest=True, sorted=True) -> (values, indices)"},
    {"msort", CF(m_msort), METH_VARARGS | METH_KEYWORDS, "msort(): sort(dim=0).values"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef module_functions[] = {
    {"sort", CF(f_sort), METH_VARARGS | METH_KEYWORDS,
     "sort(input, dim=-1, descending=False, *, stable=False) -> (values, indices)"},
    {"argsort", CF(f_argsort), METH_VARARGS | METH_KEYWORDS,
     "argsort(input, dim=-1, descending=False, *, stable=False) -> indices"},
    {"topk", CF(f_topk), METH_VARARGS | METH_KEYWORDS,
     "topk(input, k, dim=-1, largest=True, sorted=True) -> (values, indices)"},
    {"msort", CF(f_msort), METH_VARARGS | METH_KEYWORDS, "msort(input): sort(input, dim=0).values"},
    {NULL, NULL, 0, NULL},
};

int fpy_sort_init(PyObject *module)
{
    if (PyStructSequence_InitType2(&SortResult_Type, &sort_desc) < 0 ||
        PyStructSequence_InitType2(&TopkResult_Type, &topk_desc) < 0)
        return -1;
    if (fpy_tensor_add_methods(tensor_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, module_functions);
}

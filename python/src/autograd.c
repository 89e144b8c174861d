/* Python side of autograd: Tensor.backward/.grad/.grad_fn/.is_leaf/requires_grad_/
 * retain_grad, the grad_fn objects, and the module functions under ferry.autograd
 * (grad mode, autograd.grad). The context managers live in ferry/autograd.py. */
#include "ferry_py.h"

/* Autograd failures are RuntimeErrors in PyTorch, whatever ferry's status says. */
static PyObject *autograd_error(void)
{
    PyErr_SetString(ferry_last_status() == FERRY_ERR_OUT_OF_MEMORY ? PyExc_MemoryError
                                                                   : PyExc_RuntimeError,
                    ferry_last_error());
    return NULL;
}

/* ---- grad_fn objects ---- */

typedef struct {
    PyObject_HEAD
    ferry_tensor *t; /* keeps the node alive; its grad_fn is the node shown */
} FpyGradFn;

static void gradfn_dealloc(PyObject *self)
{
    ferry_tensor_release(((FpyGradFn *)self)->t);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *gradfn_name(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyUnicode_FromString(ferry_tensor_grad_fn_name(((FpyGradFn *)self)->t));
}

static PyObject *gradfn_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<%s object at %p>",
                                ferry_tensor_grad_fn_name(((FpyGradFn *)self)->t),
                                ferry_tensor_grad_fn_id(((FpyGradFn *)self)->t));
}

static Py_hash_t gradfn_hash(PyObject *self)
{
    return _Py_HashPointer((void *)ferry_tensor_grad_fn_id(((FpyGradFn *)self)->t));
}

static PyTypeObject FpyGradFn_Type;

static PyObject *gradfn_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !Py_IS_TYPE(b, &FpyGradFn_Type))
        Py_RETURN_NOTIMPLEMENTED;
    bool same = ferry_tensor_grad_fn_id(((FpyGradFn *)a)->t) ==
                ferry_tensor_grad_fn_id(((FpyGradFn *)b)->t);
    return PyBool_FromLong(op == Py_EQ ? same : !same);
}

static PyMethodDef gradfn_methods[] = {
    {"name", gradfn_name, METH_NOARGS, "the node's name, as PyTorch's (\"MulBackward0\")"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FpyGradFn_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.autograd.Node",
    .tp_basicsize = sizeof(FpyGradFn),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The backward node that made a tensor (Tensor.grad_fn).",
    .tp_dealloc = gradfn_dealloc,
    .tp_repr = gradfn_repr,
    .tp_hash = gradfn_hash,
    .tp_richcompare = gradfn_richcompare,
    .tp_methods = gradfn_methods,
};

/* ---- Tensor attributes ---- */

static PyObject *get_grad(PyObject *self, void *closure)
{
    (void)closure;
    ferry_tensor *g = ferry_tensor_grad(FPY_T(self));
    if (!g)
        Py_RETURN_NONE;
    return fpy_wrap(g);
}

static int set_grad(PyObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value && value != Py_None && !FpyTensor_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "assigned grad expected to be a Tensor or None but got grad of type %s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    ferry_tensor *g = value && value != Py_None ? FPY_T(value) : NULL;
    if (ferry_tensor_set_grad(FPY_T(self), g) != FERRY_OK) {
        bool dtype = strstr(ferry_last_error(), "with dtype") != NULL;
        PyErr_SetString(dtype ? PyExc_TypeError : PyExc_RuntimeError, ferry_last_error());
        return -1;
    }
    return 0;
}

static PyObject *get_grad_fn(PyObject *self, void *closure)
{
    (void)closure;
    if (!ferry_tensor_grad_fn_name(FPY_T(self)))
        Py_RETURN_NONE;
    FpyGradFn *f = PyObject_New(FpyGradFn, &FpyGradFn_Type);
    if (!f)
        return NULL;
    f->t = ferry_tensor_retain(FPY_T(self));
    return (PyObject *)f;
}

static PyObject *get_is_leaf(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(ferry_tensor_is_leaf(FPY_T(self)));
}

static PyObject *get_retains_grad(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(ferry_tensor_retains_grad(FPY_T(self)));
}

static PyGetSetDef autograd_getset[] = {
    {"grad", get_grad, set_grad, "the gradient accumulated by backward(), or None", NULL},
    {"grad_fn", get_grad_fn, NULL, "the backward node that made this tensor, None for leaves",
     NULL},
    {"is_leaf", get_is_leaf, NULL, "whether no recorded op made this tensor", NULL},
    {"retains_grad", get_retains_grad, NULL, "whether retain_grad() was called (non-leaves)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *m_backward(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"gradient", "retain_graph", "create_graph", "inputs", NULL};
    PyObject *gradient = Py_None, *retain = Py_None, *inputs = Py_None;
    int create = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOpO:backward", kwlist, &gradient, &retain,
                                     &create, &inputs))
        return NULL;
    if (inputs != Py_None) {
        PyErr_SetString(PyExc_NotImplementedError,
                        "backward(inputs=...) is not supported yet; use ferry.autograd.grad");
        return NULL;
    }
    if (gradient != Py_None && !FpyTensor_Check(gradient)) {
        PyErr_Format(PyExc_TypeError, "gradient must be a Tensor or None, not %s",
                     Py_TYPE(gradient)->tp_name);
        return NULL;
    }
    int retain_graph = create;
    if (retain != Py_None && (retain_graph = PyObject_IsTrue(retain)) < 0)
        return NULL;
    ferry_tensor *g = gradient == Py_None ? NULL : FPY_T(gradient);
    ferry_status st;
    FPY_MAYBE_NOGIL(true, st = ferry_backward_ex(FPY_T(self), g, retain_graph, create));
    if (st != FERRY_OK)
        return autograd_error();
    Py_RETURN_NONE;
}

static PyObject *m_requires_grad_(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"requires_grad", NULL};
    int flag = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:requires_grad_", kwlist, &flag))
        return NULL;
    if (ferry_tensor_set_requires_grad(FPY_T(self), flag) != FERRY_OK)
        return autograd_error();
    return Py_NewRef(self);
}

static PyObject *m_retain_grad(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (ferry_tensor_retain_grad(FPY_T(self)) != FERRY_OK)
        return autograd_error();
    Py_RETURN_NONE;
}

#define CF(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef autograd_methods[] = {
    {"backward", CF(m_backward), METH_VARARGS | METH_KEYWORDS,
     "backward(gradient=None, retain_graph=None, create_graph=False)"},
    {"requires_grad_", CF(m_requires_grad_), METH_VARARGS | METH_KEYWORDS,
     "requires_grad_(requires_grad=True): sets the flag in place and returns self"},
    {"retain_grad", m_retain_grad, METH_NOARGS,
     "keeps this non-leaf tensor's gradient in .grad during backward"},
    {NULL, NULL, 0, NULL},
};

/* ---- module functions ---- */

static PyObject *mod_set_grad_enabled(PyObject *mod, PyObject *arg)
{
    (void)mod;
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    return PyBool_FromLong(ferry_set_grad_enabled(on));
}

static PyObject *mod_is_grad_enabled(PyObject *mod, PyObject *unused)
{
    (void)mod, (void)unused;
    return PyBool_FromLong(ferry_grad_enabled());
}

/* A tensor or a sequence of tensors (None entries allowed when `nullable`) as a new
 * array of borrowed handles; *n receives the count. */
static ferry_tensor **tensor_list(PyObject *o, const char *what, bool nullable, Py_ssize_t *n)
{
    PyObject *seq = FpyTensor_Check(o) ? PyTuple_Pack(1, o)
                                       : PySequence_Fast(o, "expected a Tensor or a sequence");
    if (!seq)
        return NULL;
    *n = PySequence_Fast_GET_SIZE(seq);
    ferry_tensor **r = PyMem_Calloc((size_t)(*n > 0 ? *n : 1), sizeof *r);
    if (!r) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < *n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (item == Py_None && nullable)
            continue;
        if (!FpyTensor_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] must be a Tensor, not %s", what, i,
                         Py_TYPE(item)->tp_name);
            PyMem_Free(r);
            Py_DECREF(seq);
            return NULL;
        }
        r[i] = FPY_T(item); /* borrowed: the caller's sequence keeps it alive */
    }
    Py_DECREF(seq);
    return r;
}

static PyObject *mod_grad(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"outputs", "inputs", "grad_outputs", "retain_graph", "create_graph",
                             NULL};
    PyObject *outputs, *inputs, *grad_outputs = Py_None, *retain = Py_None;
    int create = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOp:grad", kwlist, &outputs, &inputs,
                                     &grad_outputs, &retain, &create))
        return NULL;
    int retain_graph = create;
    if (retain != Py_None && (retain_graph = PyObject_IsTrue(retain)) < 0)
        return NULL;
    Py_ssize_t no = 0, ni = 0, ng = 0;
    ferry_tensor **outs = NULL, **ins = NULL, **gos = NULL, **grads = NULL;
    PyObject *result = NULL;
    if (!(outs = tensor_list(outputs, "outputs", false, &no)) ||
        !(ins = tensor_list(inputs, "inputs", false, &ni)))
        goto done;
    if (grad_outputs != Py_None) {
        if (!(gos = tensor_list(grad_outputs, "grad_outputs", true, &ng)))
            goto done;
        if (ng != no) {
            PyErr_Format(PyExc_RuntimeError,
                         "grad requires one grad_output per output: got %zd tensors and %zd "
                         "gradients",
                         no, ng);
            goto done;
        }
    }
    if (no > INT32_MAX || ni > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "grad: too many tensors");
        goto done;
    }
    if (!(grads = PyMem_Calloc((size_t)(ni > 0 ? ni : 1), sizeof *grads))) {
        PyErr_NoMemory();
        goto done;
    }
    ferry_status st;
    FPY_MAYBE_NOGIL(true, st = ferry_autograd_grad((int)no, outs, gos, (int)ni, ins, grads,
                                                   retain_graph, create));
    if (st != FERRY_OK) {
        autograd_error();
        goto done;
    }
    if (!(result = PyTuple_New(ni)))
        goto done;
    for (Py_ssize_t i = 0; i < ni; i++) {
        PyObject *w = fpy_wrap(grads[i]); /* steals, also on failure */
        grads[i] = NULL;
        if (!w) {
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(result, i, w);
    }
done:
    if (grads)
        for (Py_ssize_t i = 0; i < ni; i++)
            ferry_tensor_release(grads[i]);
    PyMem_Free(grads);
    PyMem_Free(outs);
    PyMem_Free(ins);
    PyMem_Free(gos);
    return result;
}

static PyMethodDef module_functions[] = {
    {"_set_grad_enabled", mod_set_grad_enabled, METH_O,
     "_set_grad_enabled(mode): sets this thread's grad mode, returns the previous one"},
    {"is_grad_enabled", mod_is_grad_enabled, METH_NOARGS,
     "is_grad_enabled(): whether this thread records ops for autograd"},
    {"_grad", CF(mod_grad), METH_VARARGS | METH_KEYWORDS,
     "_grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False)"},
    {NULL, NULL, 0, NULL},
};

int fpy_autograd_init(PyObject *module)
{
    if (PyType_Ready(&FpyGradFn_Type) < 0)
        return -1;
    /* The Tensor type is ready: its autograd attributes are added to its dict. */
    if (fpy_tensor_add_getset(autograd_getset) < 0)
        return -1;
    if (fpy_tensor_add_methods(autograd_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, module_functions);
}

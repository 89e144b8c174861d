/* The `ferry._ferry` module: the status-to-exception table, the dtype, device and Size
 * types, the factory functions (tensor, zeros, ones, full, empty, eye, arange) and the
 * device queries; module initialisation. */
#include "ferry_py.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Errors: the one table from ferry_status to Python exceptions             */
/* ------------------------------------------------------------------------ */

/* `general` is what any call raises: PyTorch's types, so code written for PyTorch that
 * catches RuntimeError, IndexError or NotImplementedError (a RuntimeError) keeps
 * working. A refused argument is a RuntimeError as TORCH_CHECK's are; a dtype or device
 * with no kernel is NotImplementedError, as PyTorch's "not implemented for 'Bool'".
 * `exporting` is what the buffer protocol and __dlpack__ raise: BufferError where the
 * export cannot be done, as the protocols ask (PyTorch's __dlpack__ raises BufferError
 * for "Can't export tensors that require gradient" too). */
static const struct {
    ferry_status status;
    PyObject **general;
    PyObject **exporting;
} error_table[] = {
    {FERRY_ERR_INVALID_ARGUMENT, &PyExc_RuntimeError, &PyExc_BufferError},
    {FERRY_ERR_INVALID_DEVICE, &PyExc_RuntimeError, &PyExc_BufferError},
    {FERRY_ERR_UNAVAILABLE, &PyExc_RuntimeError, &PyExc_BufferError},
    /* PyTorch raises RuntimeError for operands on two devices. */
    {FERRY_ERR_WRONG_DEVICE, &PyExc_RuntimeError, &PyExc_BufferError},
    {FERRY_ERR_OUT_OF_MEMORY, &PyExc_MemoryError, &PyExc_MemoryError},
    {FERRY_ERR_UNSUPPORTED, &PyExc_NotImplementedError, &PyExc_BufferError},
    {FERRY_ERR_BACKEND, &PyExc_RuntimeError, &PyExc_BufferError},
    {FERRY_ERR_ABI, &PyExc_RuntimeError, &PyExc_BufferError},
    {FERRY_ERR_INVALID_HANDLE, &PyExc_RuntimeError, &PyExc_RuntimeError},
    {FERRY_ERR_INDEX, &PyExc_IndexError, &PyExc_IndexError},
};

static PyObject *raise_status(bool exporting)
{
    ferry_status st = ferry_last_status();
    PyObject *exc = PyExc_RuntimeError;
    for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++)
        if (error_table[i].status == st)
            exc = exporting ? *error_table[i].exporting : *error_table[i].general;
    const char *msg = ferry_last_error();
    if (!msg || !*msg)
        msg = ferry_status_string(st);
    PyErr_SetString(exc, msg);
    return NULL;
}

PyObject *fpy_error(void)
{
    return raise_status(false);
}

PyObject *fpy_export_error(void)
{
    return raise_status(true);
}

/* ------------------------------------------------------------------------ */
/* Arguments: bools, int64s and dims, checked as PyTorch's argument parser    */
/* ------------------------------------------------------------------------ */

int fpy_bool_converter(PyObject *o, void *out)
{
    fpy_bool_arg *b = out;
    /* NumPy's bool scalar is a bool to PyTorch too; an int or None is not. */
    const char *tn = Py_TYPE(o)->tp_name;
    if (PyBool_Check(o) || strcmp(tn, "numpy.bool") == 0 || strcmp(tn, "numpy.bool_") == 0) {
        int v = PyObject_IsTrue(o);
        if (v < 0)
            return 0;
        b->value = v;
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be bool, not %s", b->fn, b->arg,
                 tn);
    return 0;
}

int fpy_tensor_arg(PyObject *o, const char *fn, const char *arg, ferry_tensor **out)
{
    if (!FpyTensor_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be Tensor, not %s", fn, arg,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = FPY_T(o);
    return 0;
}

int fpy_int64(PyObject *o, int64_t *out)
{
    if (!PyIndex_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "expected an int, got %s", Py_TYPE(o)->tp_name);
        return -1;
    }
    PyObject *i = PyNumber_Index(o);
    if (!i)
        return -1;
    int over;
    long long v = PyLong_AsLongLongAndOverflow(i, &over);
    Py_DECREF(i);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (over) {
        /* PyTorch's type and words for an int beyond int64. */
        PyErr_SetString(PyExc_ValueError, "Overflow when unpacking long long");
        return -1;
    }
    *out = v;
    return 0;
}

int fpy_dim(PyObject *o, int ndim, int *out)
{
    int64_t d;
    if (fpy_int64(o, &d) < 0)
        return -1;
    /* A 0-d tensor takes dims 0 and -1, as in PyTorch. */
    int n = ndim > 0 ? ndim : 1;
    if (d < -n || d >= n) {
        PyErr_Format(PyExc_IndexError,
                     "Dimension out of range (expected to be in range of [%d, %d], but got "
                     "%lld)",
                     -n, n - 1, (long long)d);
        return -1;
    }
    *out = (int)d;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* ferry.dtype                                                              */
/* ------------------------------------------------------------------------ */

static PyObject *dtype_objects[FERRY_NUM_DTYPES];

PyObject *fpy_dtype_object(ferry_dtype dtype)
{
    if ((int)dtype < 0 || (int)dtype >= FERRY_NUM_DTYPES) {
        PyErr_Format(PyExc_SystemError, "ferry: invalid dtype value %d", (int)dtype);
        return NULL;
    }
    return Py_NewRef(dtype_objects[dtype]);
}

int fpy_dtype_converter(PyObject *o, void *out)
{
    if (!PyObject_TypeCheck(o, &FpyDType_Type)) {
        PyErr_Format(PyExc_TypeError, "expected a ferry.dtype (such as ferry.float32), got %s",
                     Py_TYPE(o)->tp_name);
        return 0;
    }
    *(ferry_dtype *)out = ((FpyDType *)o)->dtype;
    return 1;
}

static PyObject *dtype_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"name", NULL};
    PyObject *arg;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:dtype", kwlist, &arg))
        return NULL;
    if (PyObject_TypeCheck(arg, &FpyDType_Type))
        return Py_NewRef(arg);
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (!name) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "ferry.dtype() takes a name such as 'float32', got %s",
                         Py_TYPE(arg)->tp_name);
        return NULL;
    }
    ferry_dtype dt;
    if (ferry_dtype_parse(name, &dt) != FERRY_OK)
        return fpy_error();
    return fpy_dtype_object(dt);
}

static PyObject *dtype_repr(PyObject *self)
{
    return PyUnicode_FromFormat("ferry.%s", ferry_dtype_name(((FpyDType *)self)->dtype));
}

/* Pickles as the module attribute of the same name, so the singleton comes back. */
static PyObject *dtype_reduce(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(ferry_dtype_name(((FpyDType *)self)->dtype));
}

static PyObject *dtype_get_is_floating_point(PyObject *self, void *closure)
{
    return PyBool_FromLong(ferry_dtype_is_floating(((FpyDType *)self)->dtype));
}

static PyObject *dtype_get_is_signed(PyObject *self, void *closure)
{
    ferry_dtype d = ((FpyDType *)self)->dtype;
    return PyBool_FromLong(d != FERRY_BOOL && d != FERRY_UINT8);
}

static PyObject *dtype_get_itemsize(PyObject *self, void *closure)
{
    return PyLong_FromSize_t(ferry_dtype_size(((FpyDType *)self)->dtype));
}

static PyMethodDef dtype_methods[] = {
    {"__reduce__", dtype_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef dtype_getset[] = {
    {"is_floating_point", dtype_get_is_floating_point, NULL, "float16, bfloat16, float32, float64", NULL},
    {"is_signed", dtype_get_is_signed, NULL, "whether negative values are representable", NULL},
    {"itemsize", dtype_get_itemsize, NULL, "bytes per element", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject FpyDType_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.dtype",
    .tp_basicsize = sizeof(FpyDType),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An element type: ferry.float32, ferry.int64, ... (dtype('float32') gives the same object).",
    .tp_new = dtype_new,
    .tp_repr = dtype_repr,
    .tp_methods = dtype_methods,
    .tp_getset = dtype_getset,
};

/* ------------------------------------------------------------------------ */
/* ferry.device                                                             */
/* ------------------------------------------------------------------------ */

PyObject *fpy_device_object(ferry_device d)
{
    FpyDevice *o = PyObject_New(FpyDevice, &FpyDevice_Type);
    if (!o)
        return NULL;
    o->dev = d;
    return (PyObject *)o;
}

int fpy_device_converter(PyObject *o, void *out)
{
    fpy_device_arg *a = out;
    a->given = false;
    a->str = NULL;
    if (o == Py_None)
        return 1;
    if (PyObject_TypeCheck(o, &FpyDevice_Type)) {
        ferry_device_format(((FpyDevice *)o)->dev, a->buf, sizeof a->buf);
        a->str = a->buf;
    } else if (PyUnicode_Check(o)) {
        a->str = PyUnicode_AsUTF8(o);
        if (!a->str)
            return 0;
    } else {
        PyErr_Format(PyExc_TypeError,
                     "expected a device string such as 'cuda:0' or a ferry.device, got %s",
                     Py_TYPE(o)->tp_name);
        return 0;
    }
    a->given = true;
    return 1;
}

const char *fpy_tensor_device_str(const ferry_tensor *t, char buf[48])
{
    ferry_device_format(ferry_tensor_device(t), buf, 48);
    return buf;
}

bool fpy_on_cpu(const ferry_tensor *t)
{
    return strcmp(ferry_tensor_device(t).type, "cpu") == 0;
}

bool fpy_may_block(const ferry_tensor *t)
{
    return !fpy_on_cpu(t) || ferry_tensor_nbytes(t) >= ((size_t)1 << 18);
}

static PyObject *device_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"type", "index", NULL};
    PyObject *arg, *index = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:device", kwlist, &arg, &index))
        return NULL;
    if (PyObject_TypeCheck(arg, &FpyDevice_Type) && index == Py_None)
        return Py_NewRef(arg);
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "ferry.device() takes a string such as 'cuda:0', got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s)
        return NULL;
    char buf[64];
    if (index != Py_None) {
        long i = PyLong_AsLong(index);
        if (i == -1 && PyErr_Occurred())
            return NULL;
        /* PyTorch's words for both mistakes. */
        if (strchr(s, ':')) {
            PyErr_Format(PyExc_RuntimeError,
                         "type (string) must not include an index because index was passed "
                         "explicitly: %s",
                         s);
            return NULL;
        }
        if (i < 0) {
            PyErr_Format(PyExc_RuntimeError, "Device index must not be negative");
            return NULL;
        }
        if (snprintf(buf, sizeof buf, "%s:%ld", s, i) >= (int)sizeof buf) {
            PyErr_Format(PyExc_RuntimeError, "Invalid device string: '%s'", s);
            return NULL;
        }
        s = buf;
    }
    ferry_device d;
    if (ferry_device_parse(s, &d) != FERRY_OK)
        return fpy_error();
    return fpy_device_object(d);
}

static PyObject *device_str(PyObject *self)
{
    char buf[48];
    ferry_device_format(((FpyDevice *)self)->dev, buf, sizeof buf);
    return PyUnicode_FromString(buf);
}

static PyObject *device_repr(PyObject *self)
{
    const ferry_device *d = &((FpyDevice *)self)->dev;
    /* The host has one device, which PyTorch prints without an index. */
    if (strcmp(d->type, "cpu") == 0 && d->index == 0)
        return PyUnicode_FromString("device(type='cpu')");
    return PyUnicode_FromFormat("device(type='%s', index=%d)", d->type, (int)d->index);
}

static PyObject *device_richcompare(PyObject *a, PyObject *b, int op)
{
    if (!PyObject_TypeCheck(a, &FpyDevice_Type) || !PyObject_TypeCheck(b, &FpyDevice_Type) ||
        (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    const ferry_device *x = &((FpyDevice *)a)->dev, *y = &((FpyDevice *)b)->dev;
    bool eq = x->index == y->index && strcmp(x->type, y->type) == 0;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t device_hash(PyObject *self)
{
    const ferry_device *d = &((FpyDevice *)self)->dev;
    Py_uhash_t h = 5381;
    for (const char *p = d->type; *p; p++)
        h = h * 33 + (unsigned char)*p;
    h = h * 1000003u + (Py_uhash_t)d->index;
    return h == (Py_uhash_t)-1 ? -2 : (Py_hash_t)h;
}

static PyObject *device_get_type(PyObject *self, void *closure)
{
    return PyUnicode_FromString(((FpyDevice *)self)->dev.type);
}

static PyObject *device_get_index(PyObject *self, void *closure)
{
    return PyLong_FromLong(((FpyDevice *)self)->dev.index);
}

static PyObject *device_reduce(PyObject *self, PyObject *unused)
{
    PyObject *s = device_str(self);
    if (!s)
        return NULL;
    PyObject *r = Py_BuildValue("(O(N))", (PyObject *)Py_TYPE(self), s);
    return r;
}

static PyMethodDef device_methods[] = {
    {"__reduce__", device_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef device_getset[] = {
    {"type", device_get_type, NULL, "backend name: 'cpu', 'cuda', 'opencl', or a plugin's", NULL},
    {"index", device_get_index, NULL, "device index within the backend ('cuda' means 0)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject FpyDevice_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.device",
    .tp_basicsize = sizeof(FpyDevice),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "device('cuda:0') or device('cuda', 0): where a tensor lives. A bare type means index 0.",
    .tp_new = device_new,
    .tp_str = device_str,
    .tp_repr = device_repr,
    .tp_richcompare = device_richcompare,
    .tp_hash = device_hash,
    .tp_methods = device_methods,
    .tp_getset = device_getset,
};

/* ------------------------------------------------------------------------ */
/* ferry.Size: the tuple Tensor.shape returns, as torch.Size                */
/* ------------------------------------------------------------------------ */

static PyObject *size_repr(PyObject *self)
{
    PyObject *list = PySequence_List(self);
    if (!list)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("ferry.Size(%R)", list);
    Py_DECREF(list);
    return r;
}

static PyObject *size_numel(PyObject *self, PyObject *unused)
{
    PyObject *n = PyLong_FromLong(1);
    for (Py_ssize_t i = 0; n && i < PyTuple_GET_SIZE(self); i++)
        Py_SETREF(n, PyNumber_Multiply(n, PyTuple_GET_ITEM(self, i)));
    return n;
}

static PyMethodDef size_methods[] = {
    {"numel", size_numel, METH_NOARGS, "product of the sizes"},
    {NULL, NULL, 0, NULL},
};

/* Basic size, item size, GC and dealloc are inherited from tuple by PyType_Ready. */
PyTypeObject FpySize_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.Size",
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The shape of a tensor: a tuple of ints.",
    .tp_repr = size_repr,
    .tp_methods = size_methods,
};

/* ------------------------------------------------------------------------ */
/* Factories                                                                */
/* ------------------------------------------------------------------------ */

int fpy_int64_list(PyObject *args, const char *fn, const char *arg, int *n, int64_t *out)
{
    PyObject *seq = args;
    if (PyTuple_GET_SIZE(args) == 1 && !PyIndex_Check(PyTuple_GET_ITEM(args, 0)))
        seq = PyTuple_GET_ITEM(args, 0);
    if (!PyTuple_Check(seq) && !PyList_Check(seq) &&
        !PyObject_TypeCheck(seq, &FpySize_Type)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be tuple of ints, not %s", fn,
                     arg, Py_TYPE(seq)->tp_name);
        return -1;
    }
    PyObject *fast = PySequence_Fast(seq, "a sequence of ints");
    if (!fast)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    if (len > FERRY_MAX_DIMS) {
        PyErr_Format(PyExc_RuntimeError, "%s(): a tensor has at most %d dimensions, got %zd", fn,
                     FERRY_MAX_DIMS, len);
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyIndex_Check(item) || PyBool_Check(item)) {
            PyErr_Format(PyExc_TypeError,
                         "%s(): argument '%s' must be tuple of ints, but found element of type "
                         "%s at pos %zd",
                         fn, arg, Py_TYPE(item)->tp_name, i);
            Py_DECREF(fast);
            return -1;
        }
        if (fpy_int64(item, &out[i]) < 0) {
            /* PyTorch's words: never a silent wrap of a size past int64. */
            if (PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError,
                             "%s(): argument '%s' failed to unpack the object at pos %zd with "
                             "error \"Overflow when unpacking long long\"",
                             fn, arg, i + 1);
            }
            Py_DECREF(fast);
            return -1;
        }
    }
    *n = (int)len;
    Py_DECREF(fast);
    return 0;
}

/* The keyword-only tail every factory shares. */
typedef struct {
    PyObject *dtype;
    fpy_device_arg device;
    fpy_bool_arg requires_grad;
} factory_opts;

/* Applies requires_grad to a fresh tensor and wraps it (stealing t). */
static PyObject *finish(ferry_tensor *t, int requires_grad)
{
    if (!t)
        return fpy_error();
    if (requires_grad && ferry_tensor_set_requires_grad(t, true) != FERRY_OK) {
        ferry_tensor_release(t);
        return fpy_error();
    }
    return fpy_wrap(t);
}

static int opts_dtype(const factory_opts *o, ferry_dtype fallback, ferry_dtype *out)
{
    *out = fallback;
    if (!o->dtype || o->dtype == Py_None)
        return 0;
    return fpy_dtype_converter(o->dtype, out) ? 0 : -1;
}

/* Whether making a tensor may take long enough to be worth releasing the GIL (as
 * fpy_may_block): a device other than the host, or a large host tensor to fill. */
static bool factory_may_block(const fpy_device_arg *dev, ferry_dtype dt, int ndim,
                              const int64_t *shape)
{
    if (dev->given && strcmp(dev->str, "cpu") != 0 && strcmp(dev->str, "cpu:0") != 0)
        return true;
    double bytes = (double)ferry_dtype_size(dt);
    for (int i = 0; i < ndim; i++)
        bytes *= (double)shape[i];
    return bytes >= (double)(1 << 18);
}

typedef ferry_tensor *(*shape_factory)(ferry_dtype, int, const int64_t *, const char *);

static PyObject *shaped(PyObject *args, PyObject *kwargs, const char *fname, shape_factory make)
{
    static char *kwlist[] = {"dtype", "device", "requires_grad", NULL};
    factory_opts o = {NULL, {false, NULL, {0}}, {fname, "requires_grad", 0}};
    /* zeros(2, 3) without keywords keeps the defaults above: the parser and the format
     * it is given cost as much as making a small tensor. */
    if (kwargs && PyDict_GET_SIZE(kwargs) > 0) {
        PyObject *empty = PyTuple_New(0);
        if (!empty)
            return NULL;
        /* "|$OO&O&:" then the name, copied: snprintf alone cost a third of the call. */
        static const char head[] = "|$OO&O&:";
        char fmt[64];
        size_t len = strlen(fname);
        if (len > sizeof fmt - sizeof head)
            len = sizeof fmt - sizeof head;
        memcpy(fmt, head, sizeof head - 1);
        memcpy(fmt + sizeof head - 1, fname, len);
        fmt[sizeof head - 1 + len] = '\0';
        int ok = PyArg_ParseTupleAndKeywords(empty, kwargs, fmt, kwlist, &o.dtype,
                                             fpy_device_converter, &o.device,
                                             fpy_bool_converter, &o.requires_grad);
        Py_DECREF(empty);
        if (!ok)
            return NULL;
    }
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    ferry_dtype dt;
    if (fpy_int64_list(args, fname, "size", &ndim, shape) < 0 ||
        opts_dtype(&o, fpy_default_float, &dt) < 0)
        return NULL;
    ferry_tensor *t;
    FPY_MAYBE_NOGIL(factory_may_block(&o.device, dt, ndim, shape),
                    t = make(dt, ndim, shape, o.device.str));
    return finish(t, o.requires_grad.value);
}

static PyObject *mod_zeros(PyObject *m, PyObject *args, PyObject *kwargs)
{
    return shaped(args, kwargs, "zeros", ferry_zeros);
}

static PyObject *mod_ones(PyObject *m, PyObject *args, PyObject *kwargs)
{
    return shaped(args, kwargs, "ones", ferry_ones);
}

static PyObject *mod_empty(PyObject *m, PyObject *args, PyObject *kwargs)
{
    return shaped(args, kwargs, "empty", ferry_empty);
}

static PyObject *mod_full(PyObject *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"size", "fill_value", "dtype", "device", "requires_grad", NULL};
    factory_opts o = {NULL, {false, NULL, {0}}, {"full", "requires_grad", 0}};
    PyObject *size, *value;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$OO&O&:full", kwlist, &size, &value,
                                     &o.dtype, fpy_device_converter, &o.device,
                                     fpy_bool_converter, &o.requires_grad))
        return NULL;
    int kind = fpy_scalar_kind(value);
    if (kind < 0) {
        PyErr_Format(PyExc_TypeError, "full(): fill_value must be a number, got %s",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    ferry_dtype dt;
    PyObject *sizeargs = PyTuple_Pack(1, size);
    if (!sizeargs)
        return NULL;
    int rc = fpy_int64_list(sizeargs, "full", "size", &ndim, shape);
    Py_DECREF(sizeargs);
    /* PyTorch infers the dtype from the fill value. */
    if (rc < 0 || opts_dtype(&o, fpy_kind_default_dtype(kind), &dt) < 0)
        return NULL;
    /* fpy_fill, not ferry_full's double: every int64 exact, and PyTorch's overflow
     * checks (full((2,), 300, dtype=int8) is a RuntimeError). */
    ferry_tensor *t;
    FPY_MAYBE_NOGIL(factory_may_block(&o.device, dt, ndim, shape),
                    t = ferry_empty(dt, ndim, shape, o.device.str));
    if (!t)
        return fpy_error();
    if (fpy_fill(t, value) < 0) {
        ferry_tensor_release(t);
        return NULL;
    }
    return finish(t, o.requires_grad.value);
}

static PyObject *mod_eye(PyObject *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"n", "m", "dtype", "device", "requires_grad", NULL};
    factory_opts o = {NULL, {false, NULL, {0}}, {"eye", "requires_grad", 0}};
    long long n, cols = -1;
    PyObject *nobj, *mobj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$OO&O&:eye", kwlist, &nobj, &mobj, &o.dtype,
                                     fpy_device_converter, &o.device, fpy_bool_converter,
                                     &o.requires_grad))
        return NULL;
    ferry_dtype dt;
    int64_t v;
    if (opts_dtype(&o, fpy_default_float, &dt) < 0 || fpy_int64(nobj, &v) < 0)
        return NULL;
    n = v;
    if (mobj != Py_None) {
        if (fpy_int64(mobj, &v) < 0)
            return NULL;
        cols = v;
        if (cols < 0) {
            PyErr_Format(PyExc_RuntimeError, "m must be greater or equal to 0, got %lld", cols);
            return NULL;
        }
    }
    if (cols < 0 || cols == n) {
        ferry_tensor *t;
        Py_BEGIN_ALLOW_THREADS
        t = ferry_eye(n, dt, o.device.str);
        Py_END_ALLOW_THREADS
        return finish(t, o.requires_grad.value);
    }
    /* ferry_eye is square; a rectangular identity is written on the host. */
    if (n < 0) {
        PyErr_Format(PyExc_RuntimeError, "n must be greater or equal to 0, got %lld", n);
        return NULL;
    }
    size_t isz = ferry_dtype_size(dt);
    if (n != 0 && (size_t)cols > (size_t)PY_SSIZE_T_MAX / isz / (size_t)n)
        return PyErr_NoMemory();
    char *buf = PyMem_Calloc((size_t)(n * cols) + 1, isz);
    if (!buf)
        return PyErr_NoMemory();
    PyObject *one = PyLong_FromLong(1);
    for (long long i = 0; one && i < n && i < cols; i++)
        if (fpy_store(dt, one, buf + (size_t)(i * cols + i) * isz) < 0)
            Py_CLEAR(one);
    if (!one) {
        PyMem_Free(buf);
        return NULL;
    }
    Py_DECREF(one);
    int64_t shape[2] = {n, cols};
    ferry_tensor *t;
    Py_BEGIN_ALLOW_THREADS
    t = ferry_tensor_from_data(buf, dt, 2, shape, o.device.str);
    Py_END_ALLOW_THREADS
    PyMem_Free(buf);
    return finish(t, o.requires_grad.value);
}

static PyObject *mod_arange(PyObject *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"start", "end", "step", "dtype", "device", "requires_grad", NULL};
    factory_opts o = {NULL, {false, NULL, {0}}, {"arange", "requires_grad", 0}};
    PyObject *a = NULL, *b = Py_None, *s = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO$OO&O&:arange", kwlist, &a, &b, &s,
                                     &o.dtype, fpy_device_converter, &o.device,
                                     fpy_bool_converter, &o.requires_grad))
        return NULL;
    PyObject *start = b == Py_None ? NULL : a, *end = b == Py_None ? a : b;
    /* As PyTorch: any float argument gives the default float dtype, else int64. */
    int kind = FPY_KIND_INT;
    PyObject *parts[3] = {start, end, s};
    double vals[3] = {0.0, 0.0, 1.0};
    for (int i = 0; i < 3; i++) {
        if (!parts[i])
            continue;
        int k = fpy_scalar_kind(parts[i]);
        if (k < 0) {
            PyErr_Format(PyExc_TypeError, "arange(): arguments must be numbers, got %s",
                         Py_TYPE(parts[i])->tp_name);
            return NULL;
        }
        if (k == FPY_KIND_FLOAT)
            kind = k;
        vals[i] = PyFloat_AsDouble(parts[i]);
        if (vals[i] == -1.0 && PyErr_Occurred())
            return NULL;
    }
    ferry_dtype dt;
    if (opts_dtype(&o, fpy_kind_default_dtype(kind), &dt) < 0)
        return NULL;
    ferry_tensor *t;
    Py_BEGIN_ALLOW_THREADS
    t = ferry_arange(vals[0], vals[1], vals[2], dt, o.device.str);
    Py_END_ALLOW_THREADS
    return finish(t, o.requires_grad.value);
}

static PyObject *mod_tensor(PyObject *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "dtype", "device", "requires_grad", NULL};
    factory_opts o = {NULL, {false, NULL, {0}}, {"tensor", "requires_grad", 0}};
    PyObject *data;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OO&O&:tensor", kwlist, &data, &o.dtype,
                                     fpy_device_converter, &o.device, fpy_bool_converter,
                                     &o.requires_grad))
        return NULL;
    ferry_dtype dt;
    bool has_dtype = o.dtype && o.dtype != Py_None;
    if (has_dtype && !fpy_dtype_converter(o.dtype, &dt))
        return NULL;
    ferry_tensor *t = fpy_tensor_from_data(data, has_dtype ? &dt : NULL, o.device.str);
    if (!t)
        return NULL; /* fpy_tensor_from_data raised */
    return finish(t, o.requires_grad.value);
}

/* ------------------------------------------------------------------------ */
/* Devices and backends                                                     */
/* ------------------------------------------------------------------------ */

static PyObject *mod_devices(PyObject *m, PyObject *unused)
{
    size_t n;
    ferry_device devs[64];
    Py_BEGIN_ALLOW_THREADS
    n = ferry_devices(devs, 64);
    Py_END_ALLOW_THREADS
    ferry_device *all = devs;
    if (n > 64) {
        all = PyMem_Calloc(n, sizeof *all);
        if (!all)
            return PyErr_NoMemory();
        n = ferry_devices(all, n);
    }
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *d = fpy_device_object(all[i]);
        if (!d)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    if (all != devs)
        PyMem_Free(all);
    return list;
}

static PyObject *mod_is_available(PyObject *m, PyObject *arg)
{
    const char *type = PyUnicode_AsUTF8(arg);
    if (!type)
        return NULL;
    bool ok;
    /* The first question loads the plugin and probes its driver. */
    Py_BEGIN_ALLOW_THREADS
    ok = ferry_is_available(type);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(ok);
}

static PyObject *mod_device_count(PyObject *m, PyObject *arg)
{
    const char *type = PyUnicode_AsUTF8(arg);
    if (!type)
        return NULL;
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = ferry_device_count(type);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(n);
}

static PyObject *mod_backend_status(PyObject *m, PyObject *arg)
{
    const char *type = PyUnicode_AsUTF8(arg);
    if (!type)
        return NULL;
    const char *why;
    Py_BEGIN_ALLOW_THREADS
    why = ferry_backend_status(type);
    Py_END_ALLOW_THREADS
    if (!why)
        Py_RETURN_NONE;
    return PyUnicode_FromString(why);
}

static PyObject *mod_synchronize(PyObject *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"device", NULL};
    fpy_device_arg dev = {false, NULL, {0}};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O&:synchronize", kwlist,
                                     fpy_device_converter, &dev))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_synchronize(dev.str);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return fpy_error();
    Py_RETURN_NONE;
}

/* {kind: count} of one device's CPU-fallback counters. */
static PyObject *fallback_dict(const char *device)
{
    ferry_fallback_stats s;
    if (ferry_fallback_stats_get(device, &s) != FERRY_OK)
        return fpy_error();
    PyObject *d = PyDict_New();
    for (int k = 0; d && k < FERRY_FALLBACK_KINDS; k++) {
        PyObject *n = PyLong_FromUnsignedLongLong(s.by_kind[k]);
        if (!n || PyDict_SetItemString(d, ferry_fallback_kind_name(k), n) < 0)
            Py_CLEAR(d);
        Py_XDECREF(n);
    }
    return d;
}

static PyObject *mod_fallback_stats(PyObject *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"device", "reset", NULL};
    fpy_device_arg dev = {false, NULL, {0}};
    int reset = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O&$p:fallback_stats", kwlist,
                                     fpy_device_converter, &dev, &reset))
        return NULL;
    if (dev.str) {
        PyObject *d = fallback_dict(dev.str);
        if (d && reset && ferry_fallback_stats_reset(dev.str) != FERRY_OK)
            Py_CLEAR(d);
        return d;
    }
    /* Every usable device, by its name. */
    ferry_device devs[64];
    size_t n = ferry_devices(devs, 64);
    PyObject *all = PyDict_New();
    for (size_t i = 0; all && i < n && i < 64; i++) {
        char name[FERRY_MAX_TYPE_LEN + 16];
        snprintf(name, sizeof name, "%.*s:%d", FERRY_MAX_TYPE_LEN, devs[i].type,
                 (int)devs[i].index);
        PyObject *d = fallback_dict(name);
        if (!d || PyDict_SetItemString(all, name, d) < 0 ||
            (reset && ferry_fallback_stats_reset(name) != FERRY_OK))
            Py_CLEAR(all);
        Py_XDECREF(d);
    }
    return all;
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef module_methods[] = {
    {"tensor", (PyCFunction)(void (*)(void))mod_tensor, KW,
     "tensor(data, *, dtype=None, device=None, requires_grad=False): a copy of data (nested "
     "lists, numbers, a buffer such as a NumPy array, or a tensor)."},
    {"zeros", (PyCFunction)(void (*)(void))mod_zeros, KW, "zeros(*size, dtype=None, device=None, requires_grad=False)"},
    {"ones", (PyCFunction)(void (*)(void))mod_ones, KW, "ones(*size, dtype=None, device=None, requires_grad=False)"},
    {"empty", (PyCFunction)(void (*)(void))mod_empty, KW, "empty(*size, dtype=None, device=None, requires_grad=False)"},
    {"full", (PyCFunction)(void (*)(void))mod_full, KW, "full(size, fill_value, *, dtype=None, device=None, requires_grad=False)"},
    {"eye", (PyCFunction)(void (*)(void))mod_eye, KW, "eye(n, m=None, *, dtype=None, device=None, requires_grad=False)"},
    {"arange", (PyCFunction)(void (*)(void))mod_arange, KW, "arange(start=0, end, step=1, *, dtype=None, device=None, requires_grad=False)"},
    {"from_numpy", fpy_from_numpy, METH_O,
     "from_numpy(ndarray): a CPU tensor sharing the array's memory (zero copy); the array "
     "stays alive as long as the tensor."},
    {"from_dlpack", (PyCFunction)(void (*)(void))fpy_from_dlpack, KW,
     "from_dlpack(x, *, device=None, copy=None): a tensor over the memory of any object with "
     "__dlpack__ (NumPy, JAX, PyTorch, CuPy, ferry) or of a DLPack capsule, without a copy."},
    {"devices", mod_devices, METH_NOARGS, "every usable device, cpu first"},
    {"is_available", mod_is_available, METH_O, "is_available(type): whether a backend has a usable device"},
    {"device_count", mod_device_count, METH_O, "device_count(type): devices of a backend (0 if unusable)"},
    {"backend_status", mod_backend_status, METH_O, "backend_status(type): None when usable, else why not"},
    {"synchronize", (PyCFunction)(void (*)(void))mod_synchronize, KW, "synchronize(device=None): waits for queued work"},
    {"fallback_stats", (PyCFunction)(void (*)(void))mod_fallback_stats, KW,
     "fallback_stats(device=None, *, reset=False): how many ops ran on the cpu through "
     "staging because the device had no kernel for them, by kind ({kind: count}; without "
     "a device, {device: {kind: count}} for every usable device)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ferry_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ferry._ferry",
    .m_doc = "ferry's C extension; import ferry instead.",
    .m_size = -1,
    .m_methods = module_methods,
};

/* PyTorch's aliases, as ferry_dtype_parse knows them. */
static const struct {
    const char *alias;
    ferry_dtype dtype;
} dtype_aliases[] = {
    {"float", FERRY_FLOAT32}, {"double", FERRY_FLOAT64}, {"half", FERRY_FLOAT16},
    {"long", FERRY_INT64},    {"int", FERRY_INT32},      {"short", FERRY_INT16},
    {"bool", FERRY_BOOL},
};

PyMODINIT_FUNC PyInit__ferry(void)
{
    FpySize_Type.tp_base = &PyTuple_Type;
    if (PyType_Ready(&FpyDType_Type) < 0 || PyType_Ready(&FpyDevice_Type) < 0 ||
        PyType_Ready(&FpySize_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&ferry_module);
    if (!m)
        return NULL;
    if (fpy_tensor_type_init(m) < 0 || fpy_autograd_init(m) < 0 ||
        /* one per line */
        fpy_random_init(m) < 0 ||
        fpy_surface_init(m) < 0 ||
        fpy_sort_init(m) < 0 ||
        fpy_reduce2_init(m) < 0 ||
        fpy_shape_init(m) < 0 ||
        fpy_shape2_init(m) < 0 ||
        fpy_index_init(m) < 0 ||
        fpy_advindex_init(m) < 0 ||
        fpy_elementwise_init(m) < 0 ||
        fpy_select_init(m) < 0 ||
        fpy_distributed_init(m) < 0 ||
        fpy_stream_init(m) < 0 ||
        false)
        goto fail;
    if (PyModule_AddObjectRef(m, "dtype", (PyObject *)&FpyDType_Type) < 0 ||
        PyModule_AddObjectRef(m, "device", (PyObject *)&FpyDevice_Type) < 0 ||
        PyModule_AddObjectRef(m, "Size", (PyObject *)&FpySize_Type) < 0)
        goto fail;
    for (int i = 0; i < FERRY_NUM_DTYPES; i++) {
        if (!dtype_objects[i]) {
            FpyDType *d = PyObject_New(FpyDType, &FpyDType_Type);
            if (!d)
                goto fail;
            d->dtype = (ferry_dtype)i;
            dtype_objects[i] = (PyObject *)d; /* kept for the life of the process */
        }
        if (PyModule_AddObjectRef(m, ferry_dtype_name((ferry_dtype)i), dtype_objects[i]) < 0)
            goto fail;
    }
    for (size_t i = 0; i < sizeof dtype_aliases / sizeof dtype_aliases[0]; i++)
        if (PyModule_AddObjectRef(m, dtype_aliases[i].alias,
                                  dtype_objects[dtype_aliases[i].dtype]) < 0)
            goto fail;
    if (PyModule_AddStringConstant(m, "__version__", ferry_version()) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

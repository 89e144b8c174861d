/* ferry.Tensor: the type, its properties, moving between devices and dtypes (to, cpu,
 * cuda, opencl, type, detach), views and basic indexing, and the operators and methods
 * over the C API's ops. NumPy, buffer and DLPack exchange live in buffer.c and dlpack.c. */
#include "ferry_py.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ferry/half.h>

/* ------------------------------------------------------------------------ */
/* Objects                                                                  */
/* ------------------------------------------------------------------------ */

PyObject *fpy_wrap(ferry_tensor *t)
{
    if (!t)
        return fpy_error();
    FpyTensor *o = PyObject_New(FpyTensor, &FpyTensor_Type);
    if (!o) {
        ferry_tensor_release(t);
        return NULL;
    }
    o->t = t;
    o->buf_dims = NULL;
    o->weakrefs = NULL;
    o->may_block = -1;
    return (PyObject *)o;
}

PyObject *fpy_wrap_or_self(PyObject *self, ferry_tensor *r)
{
    if (r && r == FPY_T(self)) {
        ferry_tensor_release(r);
        return Py_NewRef(self);
    }
    return fpy_wrap(r);
}

static void tensor_dealloc(PyObject *self)
{
    FpyTensor *o = (FpyTensor *)self;
    if (o->weakrefs)
        PyObject_ClearWeakRefs(self);
    fpy_buffer_dims_free(o);
    /* May run a from_numpy deleter, which takes the GIL we hold (reentrant). */
    ferry_tensor_release(o->t);
    o->t = NULL;
    Py_TYPE(self)->tp_free(self);
}

static PyObject *tensor_repr(PyObject *self)
{
    ferry_tensor *t = FPY_T(self);
    char *s;
    FPY_MAYBE_NOGIL(!fpy_on_cpu(t), s = ferry_tensor_repr(t));
    if (!s)
        return fpy_error();
    PyObject *r = PyUnicode_FromString(s);
    ferry_free(s);
    return r;
}

/* Tensors compare elementwise, so hashing is by identity, as PyTorch's. */
static Py_hash_t tensor_hash(PyObject *self)
{
    size_t y = (size_t)self;
    y = (y >> 4) | (y << (8 * sizeof(void *) - 4));
    Py_hash_t h = (Py_hash_t)y;
    return h == -1 ? -2 : h;
}

/* ------------------------------------------------------------------------ */
/* Properties                                                               */
/* ------------------------------------------------------------------------ */

static PyObject *make_size(int ndim, const int64_t *shape)
{
    PyObject *s = PyType_GenericAlloc(&FpySize_Type, ndim);
    if (!s)
        return NULL;
    for (int i = 0; i < ndim; i++) {
        PyObject *v = PyLong_FromLongLong(shape[i]);
        if (!v) {
            Py_DECREF(s);
            return NULL;
        }
        PyTuple_SET_ITEM(s, i, v);
    }
    return s;
}

static PyObject *get_shape(PyObject *self, void *closure)
{
    ferry_tensor *t = FPY_T(self);
    return make_size(ferry_tensor_ndim(t), ferry_tensor_shape(t));
}

static PyObject *get_dtype(PyObject *self, void *closure)
{
    return fpy_dtype_object(ferry_tensor_dtype(FPY_T(self)));
}

static PyObject *get_device(PyObject *self, void *closure)
{
    return fpy_device_object(ferry_tensor_device(FPY_T(self)));
}

static PyObject *get_ndim(PyObject *self, void *closure)
{
    return PyLong_FromLong(ferry_tensor_ndim(FPY_T(self)));
}

static PyObject *get_requires_grad(PyObject *self, void *closure)
{
    return PyBool_FromLong(ferry_tensor_requires_grad(FPY_T(self)));
}

static int set_requires_grad(PyObject *self, PyObject *value, void *closure)
{
    if (!value) {
        PyErr_SetString(PyExc_TypeError, "can't delete requires_grad");
        return -1;
    }
    int flag = PyObject_IsTrue(value);
    if (flag < 0)
        return -1;
    if (ferry_tensor_set_requires_grad(FPY_T(self), flag) != FERRY_OK) {
        fpy_error();
        return -1;
    }
    return 0;
}

static PyObject *get_is_cuda(PyObject *self, void *closure)
{
    return PyBool_FromLong(strcmp(ferry_tensor_device(FPY_T(self)).type, "cuda") == 0);
}

static PyObject *get_is_cpu(PyObject *self, void *closure)
{
    return PyBool_FromLong(fpy_on_cpu(FPY_T(self)));
}

static PyObject *get_itemsize(PyObject *self, void *closure)
{
    return PyLong_FromSize_t(ferry_dtype_size(ferry_tensor_dtype(FPY_T(self))));
}

static PyObject *get_nbytes(PyObject *self, void *closure)
{
    return PyLong_FromSize_t(ferry_tensor_nbytes(FPY_T(self)));
}

static PyObject *get_is_read_only(PyObject *self, void *closure)
{
    return PyBool_FromLong(ferry_tensor_is_read_only(FPY_T(self)));
}

static PyGetSetDef tensor_getset[] = {
    {"shape", get_shape, NULL, "sizes as a ferry.Size (a tuple)", NULL},
    {"dtype", get_dtype, NULL, "element type, a ferry.dtype", NULL},
    {"device", get_device, NULL, "where the data lives, a ferry.device", NULL},
    {"ndim", get_ndim, NULL, "number of dimensions", NULL},
    {"requires_grad", get_requires_grad, set_requires_grad,
     "whether gradients are to be tracked (floating dtypes only)", NULL},
    {"is_cuda", get_is_cuda, NULL, "whether the tensor is on a CUDA device", NULL},
    {"is_cpu", get_is_cpu, NULL, "whether the tensor is on the host", NULL},
    {"itemsize", get_itemsize, NULL, "bytes per element", NULL},
    {"nbytes", get_nbytes, NULL, "bytes of all elements", NULL},
    {"is_read_only", get_is_read_only, NULL,
     "whether the memory must not be written (it belongs to a read-only array); ops "
     "writing into the tensor fail",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ------------------------------------------------------------------------ */
/* Moving between devices and dtypes                                        */
/* ------------------------------------------------------------------------ */

/* Converts dtype and moves to device (either may be absent); returns self when nothing
 * changes and copy is false, as PyTorch's to(). The smaller element type crosses the
 * device boundary. */
static PyObject *to_impl_nb(PyObject *self, const char *device, const ferry_dtype *dtype,
                           bool copy, bool non_blocking)
{
    ferry_tensor *t = FPY_T(self);
    ferry_tensor *cur = ferry_tensor_retain(t), *next;
    bool block = fpy_may_block(t) || (device && strcmp(device, "cpu") != 0);
    bool dtype_first =
        dtype && ferry_dtype_size(*dtype) < ferry_dtype_size(ferry_tensor_dtype(t));
    for (int step = 0; step < 3; step++) {
        bool do_dtype = dtype && (step == 0 ? dtype_first : step == 2 && !dtype_first);
        if (do_dtype) {
            FPY_MAYBE_NOGIL(block, next = ferry_tensor_to_dtype(cur, *dtype));
        } else if (step == 1 && device) {
            FPY_MAYBE_NOGIL(block, next = non_blocking ? ferry_tensor_to_ex(cur, device, -1,
                                                                             FERRY_NON_BLOCKING)
                                                       : ferry_tensor_to(cur, device));
        } else {
            continue;
        }
        ferry_tensor_release(cur);
        if (!next)
            return fpy_error();
        cur = next;
    }
    if (copy && cur == t) {
        FPY_MAYBE_NOGIL(block, next = ferry_tensor_clone(cur));
        ferry_tensor_release(cur);
        if (!next)
            return fpy_error();
        cur = next;
    }
    return fpy_wrap_or_self(self, cur);
}

static PyObject *to_impl(PyObject *self, const char *device, const ferry_dtype *dtype, bool copy)
{
    return to_impl_nb(self, device, dtype, copy, false);
}

/* One argument of to(): a dtype, a device (string or ferry.device), or a tensor whose
 * dtype and device are taken. */
static int to_arg(PyObject *o, fpy_device_arg *dev, ferry_dtype *dtype, bool *has_dtype,
                  char *tensor_dev)
{
    if (!o || o == Py_None)
        return 0;
    if (PyObject_TypeCheck(o, &FpyDType_Type)) {
        if (*has_dtype)
            goto dup;
        *dtype = ((FpyDType *)o)->dtype;
        *has_dtype = true;
        return 0;
    }
    if (FpyTensor_Check(o)) {
        if (*has_dtype || dev->given)
            goto dup;
        *dtype = ferry_tensor_dtype(FPY_T(o));
        *has_dtype = true;
        dev->str = fpy_tensor_device_str(FPY_T(o), tensor_dev);
        dev->given = true;
        return 0;
    }
    if (dev->given)
        goto dup;
    return fpy_device_converter(o, dev) ? 0 : -1;
dup:
    PyErr_SetString(PyExc_TypeError,
                    "to() received an invalid combination of arguments: the device or dtype "
                    "is given twice");
    return -1;
}

static PyObject *t_to(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"", "", "device", "dtype", "non_blocking", "copy", NULL};
    PyObject *a0 = NULL, *a1 = NULL, *kdev = NULL, *kdtype = NULL;
    fpy_bool_arg non_blocking = {"to", "non_blocking", 0}, copy = {"to", "copy", 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO$OOO&O&:to", kwlist, &a0, &a1, &kdev,
                                     &kdtype, fpy_bool_converter, &non_blocking,
                                     fpy_bool_converter, &copy))
        return NULL;
    fpy_device_arg dev = {false, NULL, {0}};
    ferry_dtype dtype = FERRY_FLOAT32;
    bool has_dtype = false;
    char tensor_dev[48];
    if (to_arg(a0, &dev, &dtype, &has_dtype, tensor_dev) < 0 ||
        to_arg(a1, &dev, &dtype, &has_dtype, tensor_dev) < 0 ||
        to_arg(kdev, &dev, &dtype, &has_dtype, tensor_dev) < 0 ||
        to_arg(kdtype, &dev, &dtype, &has_dtype, tensor_dev) < 0)
        return NULL;
    return to_impl_nb(self, dev.given ? dev.str : NULL, has_dtype ? &dtype : NULL, copy.value,
                      non_blocking.value);
}

static PyObject *t_cpu(PyObject *self, PyObject *unused)
{
    return to_impl(self, "cpu", NULL, false);
}

/* cuda(device=None) / opencl(device=None): an index, or a device of that type. */
static PyObject *to_typed(PyObject *self, PyObject *args, PyObject *kwargs, const char *type)
{
    static char *kwlist[] = {"device", "non_blocking", NULL};
    PyObject *d = Py_None;
    fpy_bool_arg non_blocking = {type, "non_blocking", 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO&", kwlist, &d, fpy_bool_converter,
                                     &non_blocking))
        return NULL;
    char buf[48];
    if (d == Py_None || PyIndex_Check(d)) {
        long index = 0;
        if (d != Py_None && (index = PyLong_AsLong(d)) == -1 && PyErr_Occurred())
            return NULL;
        if (index < 0)
            index = 0; /* as ferry_tensor_cuda(t, -1) */
        snprintf(buf, sizeof buf, "%s:%ld", type, index);
        return to_impl(self, buf, NULL, false);
    }
    fpy_device_arg dev;
    if (!fpy_device_converter(d, &dev))
        return NULL;
    ferry_device parsed;
    if (ferry_device_parse(dev.str, &parsed) != FERRY_OK)
        return fpy_error();
    if (strcmp(parsed.type, type) != 0) {
        PyErr_Format(PyExc_RuntimeError, "Invalid device, must be %s device", type);
        return NULL;
    }
    return to_impl(self, dev.str, NULL, false);
}

static PyObject *t_cuda(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return to_typed(self, args, kwargs, "cuda");
}

static PyObject *t_opencl(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return to_typed(self, args, kwargs, "opencl");
}

/* PyTorch's legacy tensor type names, for type() without arguments and with a string. */
static const char *const legacy_names[FERRY_NUM_DTYPES] = {
    [FERRY_BOOL] = "BoolTensor",       [FERRY_UINT8] = "ByteTensor",
    [FERRY_INT8] = "CharTensor",       [FERRY_INT16] = "ShortTensor",
    [FERRY_INT32] = "IntTensor",       [FERRY_INT64] = "LongTensor",
    [FERRY_FLOAT16] = "HalfTensor",    [FERRY_BFLOAT16] = "BFloat16Tensor",
    [FERRY_FLOAT32] = "FloatTensor",   [FERRY_FLOAT64] = "DoubleTensor",
};

static PyObject *t_type(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"dtype", "non_blocking", NULL};
    PyObject *arg = Py_None;
    fpy_bool_arg non_blocking = {"type", "non_blocking", 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO&:type", kwlist, &arg,
                                     fpy_bool_converter, &non_blocking))
        return NULL;
    ferry_tensor *t = FPY_T(self);
    ferry_device dev = ferry_tensor_device(t);
    if (arg == Py_None) {
        const char *name = legacy_names[ferry_tensor_dtype(t)];
        if (strcmp(dev.type, "cpu") == 0)
            return PyUnicode_FromFormat("ferry.%s", name);
        return PyUnicode_FromFormat("ferry.%s.%s", dev.type, name);
    }
    if (PyObject_TypeCheck(arg, &FpyDType_Type))
        return to_impl(self, NULL, &((FpyDType *)arg)->dtype, false);
    const char *s = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (!s) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "type() takes a ferry.dtype or a type name such as "
                                          "'ferry.FloatTensor', got %s",
                         Py_TYPE(arg)->tp_name);
        return NULL;
    }
    /* "ferry.FloatTensor" is a host tensor, "ferry.cuda.FloatTensor" a CUDA one. */
    const char *rest = strncmp(s, "ferry.", 6) == 0 ? s + 6 : s;
    const char *dot = strrchr(rest, '.');
    char type[FERRY_MAX_TYPE_LEN + 1] = "cpu";
    if (dot) {
        size_t n = (size_t)(dot - rest);
        if (n > FERRY_MAX_TYPE_LEN)
            goto bad;
        memcpy(type, rest, n);
        type[n] = '\0';
        rest = dot + 1;
    }
    for (int i = 0; i < FERRY_NUM_DTYPES; i++) {
        if (strcmp(rest, legacy_names[i]) != 0)
            continue;
        ferry_dtype dt = (ferry_dtype)i;
        return to_impl(self, strcmp(type, dev.type) == 0 ? NULL : type, &dt, false);
    }
bad:
    PyErr_Format(PyExc_ValueError, "invalid type: '%s'", s);
    return NULL;
}

static PyObject *t_detach(PyObject *self, PyObject *unused)
{
    return fpy_wrap(ferry_tensor_detach(FPY_T(self)));
}

static PyObject *t_clone(PyObject *self, PyObject *unused)
{
    ferry_tensor *t = FPY_T(self), *r;
    FPY_MAYBE_NOGIL(fpy_may_block(t), r = ferry_tensor_clone(t));
    return fpy_wrap(r);
}

static PyObject *t_contiguous(PyObject *self, PyObject *unused)
{
    ferry_tensor *t = FPY_T(self), *r;
    FPY_MAYBE_NOGIL(fpy_may_block(t), r = ferry_tensor_contiguous(t));
    return fpy_wrap_or_self(self, r);
}

static PyObject *t_is_contiguous(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(ferry_tensor_is_contiguous(FPY_T(self)));
}

static PyObject *t_tolist(PyObject *self, PyObject *unused)
{
    return fpy_tolist(FPY_T(self));
}

static PyObject *t_item(PyObject *self, PyObject *unused)
{
    return fpy_item(FPY_T(self));
}

/* ------------------------------------------------------------------------ */
/* Sizes and views                                                          */
/* ------------------------------------------------------------------------ */

/* A dim argument checked and wrapped, for the queries that index shape and strides
 * themselves. */
static int wrap_dim(PyObject *o, int ndim, int *out)
{
    int d;
    if (fpy_dim(o, ndim, &d) < 0)
        return -1;
    *out = d < 0 ? d + (ndim > 0 ? ndim : 1) : d;
    return 0;
}

static PyObject *t_size(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"dim", NULL};
    PyObject *d = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:size", kwlist, &d))
        return NULL;
    ferry_tensor *t = FPY_T(self);
    if (d == Py_None)
        return make_size(ferry_tensor_ndim(t), ferry_tensor_shape(t));
    int w;
    if (wrap_dim(d, ferry_tensor_ndim(t), &w) < 0)
        return NULL;
    return PyLong_FromLongLong(ferry_tensor_ndim(t) ? ferry_tensor_shape(t)[w] : 1);
}

static PyObject *t_stride(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"dim", NULL};
    PyObject *d = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:stride", kwlist, &d))
        return NULL;
    ferry_tensor *t = FPY_T(self);
    int ndim = ferry_tensor_ndim(t);
    const int64_t *st = ferry_tensor_strides(t);
    if (d == Py_None) {
        PyObject *r = PyTuple_New(ndim);
        for (int i = 0; r && i < ndim; i++) {
            PyObject *v = PyLong_FromLongLong(st[i]);
            if (!v)
                Py_CLEAR(r);
            else
                PyTuple_SET_ITEM(r, i, v);
        }
        return r;
    }
    int w;
    if (wrap_dim(d, ndim, &w) < 0)
        return NULL;
    return PyLong_FromLongLong(ndim ? st[w] : 1);
}

static PyObject *t_dim(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(ferry_tensor_ndim(FPY_T(self)));
}

static PyObject *t_numel(PyObject *self, PyObject *unused)
{
    return PyLong_FromLongLong(ferry_tensor_numel(FPY_T(self)));
}

static PyObject *t_element_size(PyObject *self, PyObject *unused)
{
    return PyLong_FromSize_t(ferry_dtype_size(ferry_tensor_dtype(FPY_T(self))));
}

static PyObject *t_reshape(PyObject *self, PyObject *args)
{
    int n;
    int64_t shape[FERRY_MAX_DIMS];
    if (fpy_int64_list(args, "reshape", "shape", &n, shape) < 0)
        return NULL;
    ferry_tensor *t = FPY_T(self), *r;
    FPY_MAYBE_NOGIL(fpy_may_block(t), r = ferry_reshape(t, n, shape));
    return fpy_wrap(r);
}

static PyObject *t_view(PyObject *self, PyObject *args)
{
    int n;
    int64_t shape[FERRY_MAX_DIMS];
    if (fpy_int64_list(args, "view", "size", &n, shape) < 0)
        return NULL;
    return fpy_wrap(ferry_view(FPY_T(self), n, shape));
}

static PyObject *t_expand(PyObject *self, PyObject *args)
{
    int n;
    int64_t shape[FERRY_MAX_DIMS];
    if (fpy_int64_list(args, "expand", "size", &n, shape) < 0)
        return NULL;
    return fpy_wrap(ferry_expand(FPY_T(self), n, shape));
}

/* Dims given as ints (`permute(1, 0)`) or as one sequence (`permute((1, 0))`), each
 * checked against ndim before it narrows to int. */
static int dim_list(PyObject *args, const char *fn, int ndim, int *n, int *dims)
{
    PyObject *seq = args;
    if (PyTuple_GET_SIZE(args) == 1 && !PyIndex_Check(PyTuple_GET_ITEM(args, 0)))
        seq = PyTuple_GET_ITEM(args, 0);
    if (!PyTuple_Check(seq) && !PyList_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'dim' must be tuple of ints, not %s", fn,
                     Py_TYPE(seq)->tp_name);
        return -1;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    if (len > FERRY_MAX_DIMS) {
        PyErr_Format(PyExc_RuntimeError, "%s(): at most %d dims, got %zd", fn, FERRY_MAX_DIMS,
                     len);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++)
        if (fpy_dim(PySequence_Fast_GET_ITEM(seq, i), ndim, &dims[i]) < 0)
            return -1;
    *n = (int)len;
    return 0;
}

static PyObject *t_permute(PyObject *self, PyObject *args)
{
    int n, dims[FERRY_MAX_DIMS];
    if (dim_list(args, "permute", ferry_tensor_ndim(FPY_T(self)), &n, dims) < 0)
        return NULL;
    return fpy_wrap(ferry_permute(FPY_T(self), n, dims));
}

static PyObject *t_transpose(PyObject *self, PyObject *args)
{
    PyObject *o0, *o1;
    int nd = ferry_tensor_ndim(FPY_T(self)), d0, d1;
    if (!PyArg_ParseTuple(args, "OO:transpose", &o0, &o1) || fpy_dim(o0, nd, &d0) < 0 ||
        fpy_dim(o1, nd, &d1) < 0)
        return NULL;
    return fpy_wrap(ferry_transpose(FPY_T(self), d0, d1));
}

static PyObject *t_flatten(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"start_dim", "end_dim", NULL};
    PyObject *so = NULL, *eo = NULL;
    int nd = ferry_tensor_ndim(FPY_T(self)), s = 0, e = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:flatten", kwlist, &so, &eo) ||
        (so && fpy_dim(so, nd, &s) < 0) || (eo && fpy_dim(eo, nd, &e) < 0))
        return NULL;
    return fpy_wrap(ferry_flatten(FPY_T(self), s, e));
}

static PyObject *t_squeeze(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"dim", NULL};
    PyObject *d = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:squeeze", kwlist, &d))
        return NULL;
    if (d == Py_None)
        return fpy_wrap(ferry_squeeze_all(FPY_T(self)));
    int dim;
    if (fpy_dim(d, ferry_tensor_ndim(FPY_T(self)), &dim) < 0)
        return NULL;
    return fpy_wrap(ferry_squeeze(FPY_T(self), dim));
}

static PyObject *t_unsqueeze(PyObject *self, PyObject *arg)
{
    /* The new dim may also go after the last one. */
    int dim;
    if (fpy_dim(arg, ferry_tensor_ndim(FPY_T(self)) + 1, &dim) < 0)
        return NULL;
    return fpy_wrap(ferry_unsqueeze(FPY_T(self), dim));
}

/* ------------------------------------------------------------------------ */
/* Indexing: ints, slices with step > 0, None and Ellipsis, as views         */
/* ------------------------------------------------------------------------ */

/* A view of t equal to t, so t[...] is a new object sharing storage (and keeping the
 * requires_grad and read-only flags, which detach() would not). */
static ferry_tensor *alias(ferry_tensor *t)
{
    if (ferry_tensor_ndim(t) > 0)
        return ferry_slice(t, 0, 0, INT64_MAX, 1);
    ferry_tensor *u = ferry_unsqueeze(t, 0);
    ferry_tensor *r = u ? ferry_squeeze(u, 0) : NULL;
    ferry_tensor_release(u);
    return r;
}

/* The view `t[key]`; NULL with an exception. */
static ferry_tensor *index_view(ferry_tensor *t, PyObject *key)
{
    PyObject *const *items = &key;
    Py_ssize_t n = 1;
    if (PyTuple_Check(key)) {
        items = &PyTuple_GET_ITEM(key, 0);
        n = PyTuple_GET_SIZE(key);
    }
    int ndim = ferry_tensor_ndim(t);
    int consumed = 0, ellipses = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = items[i];
        if (it == Py_Ellipsis)
            ellipses++;
        else if (it != Py_None)
            consumed++;
    }
    if (ellipses > 1) {
        PyErr_SetString(PyExc_IndexError, "an index can only have a single ellipsis ('...')");
        return NULL;
    }
    if (consumed > ndim) {
        PyErr_Format(PyExc_IndexError, "too many indices for tensor of dimension %d", ndim);
        return NULL;
    }
    ferry_tensor *cur = ferry_tensor_retain(t), *next = NULL;
    /* d is the dim of cur the next index applies to; src the dim of t it came from,
     * which the messages name (an int index removes its dim from cur). */
    int d = 0, src = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = items[i];
        if (it == Py_Ellipsis) {
            d += ndim - consumed;
            src += ndim - consumed;
            continue;
        }
        if (it == Py_None) {
            next = ferry_unsqueeze(cur, d++);
        } else if (PySlice_Check(it)) {
            Py_ssize_t start, stop, step;
            if (PySlice_Unpack(it, &start, &stop, &step) < 0)
                goto fail;
            if (step <= 0) {
                PyErr_SetString(PyExc_ValueError, "step must be greater than zero");
                goto fail;
            }
            next = ferry_slice(cur, d++, start, stop, step);
            src++;
        } else if (!PyBool_Check(it) && !FpyTensor_Check(it) && PyIndex_Check(it)) {
            int64_t idx;
            if (fpy_int64(it, &idx) < 0)
                goto fail;
            int64_t size = ferry_tensor_shape(cur)[d];
            if (idx < -size || idx >= size) {
                PyErr_Format(PyExc_IndexError,
                             "index %lld is out of bounds for dimension %d with size %lld",
                             (long long)idx, src, (long long)size);
                goto fail;
            }
            src++;
            if (idx < 0)
                idx += size;
            ferry_tensor *s = ferry_slice(cur, d, idx, idx + 1, 1);
            next = s ? ferry_squeeze(s, d) : NULL;
            ferry_tensor_release(s);
        } else {
            PyErr_Format(PyExc_IndexError,
                         "only integers, slices (`:`), ellipsis (`...`) and None are valid "
                         "indices (got %s)",
                         Py_TYPE(it)->tp_name);
            goto fail;
        }
        if (!next) {
            fpy_error();
            goto fail;
        }
        ferry_tensor_release(cur);
        cur = next;
    }
    if (cur == t) {
        next = alias(t);
        ferry_tensor_release(cur);
        if (!next)
            fpy_error();
        return next;
    }
    return cur;
fail:
    ferry_tensor_release(cur);
    return NULL;
}

ferry_tensor *fpy_index_view(ferry_tensor *t, PyObject *key)
{
    return index_view(t, key);
}

static PyObject *tensor_subscript(PyObject *self, PyObject *key)
{
    if (fpy_key_is_advanced(key))
        return fpy_advanced_get(FPY_T(self), key);
    ferry_tensor *v = index_view(FPY_T(self), key);
    return v ? fpy_wrap(v) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Writing: t[key] = value, copy_, fill_                                    */
/* ------------------------------------------------------------------------ */

/* dst.copy_(src) through the C API: broadcast, cast, any two devices. */
static int copy_tensor(ferry_tensor *dst, ferry_tensor *src)
{
    ferry_status st;
    bool block = fpy_may_block(dst) || fpy_may_block(src);
    FPY_MAYBE_NOGIL(block, st = ferry_tensor_copy_from(dst, src));
    if (st != FERRY_OK) {
        fpy_error();
        return -1;
    }
    return 0;
}

/* The bytes t's elements span in host memory: 1 with [*lo, *hi), 0 when t has no
 * elements or lives where the host cannot see it, -1 when that cannot be told. */
static int host_extent(const ferry_tensor *t, uintptr_t *lo, uintptr_t *hi)
{
    if (ferry_tensor_numel(t) == 0)
        return 0;
    const char *p = ferry_tensor_host_data(t);
    if (!p)
        return ferry_last_status() == FERRY_ERR_WRONG_DEVICE ? 0 : -1;
    int64_t isz = (int64_t)ferry_dtype_size(ferry_tensor_dtype(t)), first = 0, last = 0;
    const int64_t *shape = ferry_tensor_shape(t), *strides = ferry_tensor_strides(t);
    for (int i = 0; i < ferry_tensor_ndim(t); i++) {
        int64_t span = (shape[i] - 1) * strides[i] * isz;
        if (span < 0)
            first += span;
        else
            last += span;
    }
    *lo = (uintptr_t)(p + first);
    *hi = (uintptr_t)(p + last + isz);
    return 1;
}

/* Whether a host buffer's tensor may share memory with dst. The core only sees
 * sharing within one storage, and the buffer's tensor has a storage of its own even
 * when it is dst.numpy() or a view of it. */
static bool may_overlap(const ferry_tensor *dst, const ferry_tensor *buf)
{
    uintptr_t dlo, dhi, blo, bhi;
    int d = host_extent(dst, &dlo, &dhi), b = host_extent(buf, &blo, &bhi);
    if (d == 0 || b == 0)
        return false;
    return d < 0 || b < 0 || (dlo < bhi && blo < dhi);
}

/* Writes value into dst: a ferry.Tensor (copied as copy_ does), a Python number
 * (filled as fill_ does), an object exporting a buffer (a NumPy array: read in place),
 * or nested lists and tuples (converted to dst's dtype first). `fn` names the caller
 * in the TypeError for anything else. 0, or -1 with an exception. */
static int assign(ferry_tensor *dst, PyObject *value, const char *fn)
{
    if (FpyTensor_Check(value))
        return copy_tensor(dst, FPY_T(value));
    if (fpy_scalar_kind(value) >= 0)
        return fpy_fill(dst, value);
    Py_buffer view;
    bool have_view = false;
    ferry_tensor *src = NULL;
    int rc = -1;
    if (PyObject_CheckBuffer(value) && !PyBytes_Check(value)) {
        /* A host view of the buffer, read in place; it must outlive src. */
        if (!(src = fpy_tensor_from_buffer(value, false, &view)))
            goto done;
        have_view = true;
        if (may_overlap(dst, src)) {
            ferry_tensor *c = ferry_tensor_clone(src);
            ferry_tensor_release(src);
            if (!(src = c)) {
                fpy_error();
                goto done;
            }
        }
    } else if (PyList_Check(value) || PyTuple_Check(value)) {
        ferry_dtype dt = ferry_tensor_dtype(dst);
        if (!(src = fpy_tensor_from_data(value, &dt, NULL)))
            goto done;
    } else {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a ferry.Tensor, an array, a list or a number, not %s", fn,
                     Py_TYPE(value)->tp_name);
        goto done;
    }
    rc = copy_tensor(dst, src);
done:
    ferry_tensor_release(src);
    if (have_view)
        PyBuffer_Release(&view);
    return rc;
}

/* `t[i, j, ...] = number`, one int per dim, on a writable host tensor: the element is
 * stored in place, the bytes fill_ of the one-element view would write, without making
 * the view (two handles) and filling it (a kernel launch). 1 when done, 0 when the
 * general path must do it (and raise whatever it raises), -1 with an exception. */
static int set_element(ferry_tensor *t, PyObject *key, PyObject *value)
{
    PyObject *const *items = &key;
    Py_ssize_t n = 1;
    if (PyTuple_Check(key)) {
        items = &PyTuple_GET_ITEM(key, 0);
        n = PyTuple_GET_SIZE(key);
    }
    int ndim = ferry_tensor_ndim(t);
    if (n != ndim || fpy_scalar_kind(value) < 0 || !fpy_on_cpu(t) ||
        ferry_tensor_is_read_only(t))
        return 0;
    const int64_t *shape = ferry_tensor_shape(t), *strides = ferry_tensor_strides(t);
    int64_t offset = 0;
    for (int i = 0; i < ndim; i++) {
        if (!PyLong_CheckExact(items[i]))
            return 0;
        int over;
        long long idx = PyLong_AsLongLongAndOverflow(items[i], &over);
        if (over || idx < -shape[i] || idx >= shape[i])
            return 0;
        offset += (idx < 0 ? idx + shape[i] : idx) * strides[i];
    }
    ferry_dtype dt = ferry_tensor_dtype(t);
    unsigned char elem[8];
    if (fpy_store_checked(dt, value, elem) < 0)
        return -1;
    char *p = ferry_tensor_host_data(t); /* NULL for a tensor that requires grad */
    if (!p)
        return 0;
    size_t isz = ferry_dtype_size(dt);
    memcpy(p + offset * (int64_t)isz, elem, isz);
    return 1;
}

/* `t[key] = value`: the view t[key], written through assign(). */
static int tensor_ass_subscript(PyObject *self, PyObject *key, PyObject *value)
{
    if (!value) {
        PyErr_SetString(PyExc_TypeError, "tensor elements cannot be deleted");
        return -1;
    }
    int done = set_element(FPY_T(self), key, value);
    if (done != 0)
        return done < 0 ? -1 : 0;
    if (fpy_key_is_advanced(key))
        return fpy_advanced_set(FPY_T(self), key, value);
    ferry_tensor *view = index_view(FPY_T(self), key);
    if (!view)
        return -1;
    int rc = assign(view, value, "can't assign to a ferry tensor");
    ferry_tensor_release(view);
    return rc;
}

static PyObject *t_copy_(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"src", "non_blocking", NULL};
    PyObject *src;
    fpy_bool_arg non_blocking = {"copy_", "non_blocking", 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O&:copy_", kwlist, &src,
                                     fpy_bool_converter, &non_blocking))
        return NULL;
    if (assign(FPY_T(self), src, "copy_()") < 0)
        return NULL;
    return Py_NewRef(self);
}

static PyObject *t_fill_(PyObject *self, PyObject *value)
{
    ferry_tensor *t = FPY_T(self);
    int rc;
    if (FpyTensor_Check(value)) {
        int nd = ferry_tensor_ndim(FPY_T(value));
        if (nd != 0) {
            PyErr_Format(PyExc_RuntimeError,
                         "fill_ only supports 0-dimension value tensor but got tensor with %d "
                         "dimensions.",
                         nd);
            return NULL;
        }
        rc = copy_tensor(t, FPY_T(value));
    } else if (fpy_scalar_kind(value) >= 0) {
        rc = fpy_fill(t, value);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "fill_(): argument 'value' must be a number or a 0-d tensor, not %s",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    return rc < 0 ? NULL : Py_NewRef(self);
}

static Py_ssize_t tensor_length(PyObject *self)
{
    ferry_tensor *t = FPY_T(self);
    if (ferry_tensor_ndim(t) == 0) {
        PyErr_SetString(PyExc_TypeError, "len() of a 0-d tensor");
        return -1;
    }
    return (Py_ssize_t)ferry_tensor_shape(t)[0];
}

/* Iteration goes through sq_item, which ends at the first IndexError. */
static PyObject *tensor_item(PyObject *self, Py_ssize_t i)
{
    PyObject *key = PyLong_FromSsize_t(i);
    if (!key)
        return NULL;
    PyObject *r = tensor_subscript(self, key);
    Py_DECREF(key);
    return r;
}

static PyObject *tensor_iter(PyObject *self)
{
    if (ferry_tensor_ndim(FPY_T(self)) == 0) {
        PyErr_SetString(PyExc_TypeError, "iteration over a 0-d tensor");
        return NULL;
    }
    return PySeqIter_New(self);
}

/* ------------------------------------------------------------------------ */
/* Operators                                                                */
/* ------------------------------------------------------------------------ */

typedef struct {
    ferry_tensor *(*tt)(ferry_tensor *, ferry_tensor *);
    ferry_tensor *(*ts)(ferry_tensor *, ferry_scalar);
    ferry_status (*tto)(ferry_tensor *, ferry_tensor *, ferry_tensor *);
    ferry_status (*tso)(ferry_tensor *, ferry_tensor *, ferry_scalar);
    /* `scalar op t` (the core's reflected form); NULL where the op commutes, or where
     * Python swaps the operands itself (`2 < t` is `t > 2`). */
    ferry_tensor *(*st)(ferry_tensor *, ferry_scalar);
} binop;

#define BINOP(name, reflected)                                                              \
    static const binop op_##name = {ferry_##name, ferry_##name##_scalar_ex, ferry_##name##_out, \
                                    ferry_##name##_scalar_ex_out, reflected};
BINOP(add, NULL)
BINOP(sub, ferry_rsub_scalar_ex)
BINOP(mul, NULL)
BINOP(div, ferry_rdiv_scalar_ex)
BINOP(pow, ferry_rpow_scalar_ex)
BINOP(maximum, NULL)
BINOP(minimum, NULL)
BINOP(eq, NULL)
BINOP(ne, NULL)
BINOP(lt, NULL)
BINOP(le, NULL)
BINOP(gt, NULL)
BINOP(ge, NULL)

/* `t op array`: the array is an operand of its own dtype, as a tensor read in place;
 * the result is a ferry.Tensor, as PyTorch's is a torch.Tensor. */
static PyObject *array_operand(const binop *op, PyObject *a, PyObject *b)
{
    Py_buffer view;
    ferry_tensor *arr = fpy_tensor_from_buffer(b, false, &view);
    if (!arr)
        return NULL;
    ferry_tensor *t = FPY_T(a), *r;
    FPY_MAYBE_NOGIL(fpy_may_block(t), r = op->tt(t, arr));
    ferry_tensor_release(arr);
    PyBuffer_Release(&view);
    return fpy_wrap(r);
}

static PyObject *binary(const binop *op, PyObject *a, PyObject *b)
{
    ferry_tensor *r;
    bool a_is_tensor = FpyTensor_Check(a);
    if (a_is_tensor && FpyTensor_Check(b)) {
        ferry_tensor *ta = FPY_T(a), *tb = FPY_T(b);
        FPY_MAYBE_NOGIL(fpy_obj_may_block(a) || fpy_obj_may_block(b), r = op->tt(ta, tb));
        return fpy_wrap(r);
    }
    /* One operand is a tensor, or this slot would not have been called. */
    PyObject *tobj = a_is_tensor ? a : b, *other = a_is_tensor ? b : a;
    ferry_scalar s;
    int rc = fpy_scalar(other, &s);
    /* An array on the left is left a TypeError, as PyTorch's `np.ones(2) + t` is. */
    if (rc > 0 && a_is_tensor && fpy_is_ndarray(other))
        return array_operand(op, a, b);
    if (rc != 0)
        return rc > 0 ? Py_NewRef(Py_NotImplemented) : NULL;
    ferry_tensor *t = FPY_T(tobj);
    bool block = fpy_obj_may_block(tobj);
    FPY_MAYBE_NOGIL(block, r = a_is_tensor || !op->st ? op->ts(t, s) : op->st(t, s));
    return fpy_wrap(r);
}

/* `a op= b`: writes into a through the _out forms, so a read-only a is refused. */
static PyObject *inplace(const binop *op, PyObject *a, PyObject *b)
{
    if (!FpyTensor_Check(a))
        Py_RETURN_NOTIMPLEMENTED;
    ferry_tensor *t = FPY_T(a);
    ferry_status st;
    bool block = fpy_obj_may_block(a);
    if (FpyTensor_Check(b)) {
        ferry_tensor *tb = FPY_T(b);
        FPY_MAYBE_NOGIL(block, st = op->tto(t, t, tb));
    } else {
        ferry_scalar s;
        int rc = fpy_scalar(b, &s);
        if (rc > 0 && fpy_is_ndarray(b)) {
            Py_buffer view;
            ferry_tensor *arr = fpy_tensor_from_buffer(b, false, &view);
            if (!arr)
                return NULL;
            FPY_MAYBE_NOGIL(block, st = op->tto(t, t, arr));
            ferry_tensor_release(arr);
            PyBuffer_Release(&view);
        } else if (rc != 0) {
            return rc > 0 ? Py_NewRef(Py_NotImplemented) : NULL;
        } else {
            FPY_MAYBE_NOGIL(block, st = op->tso(t, t, s));
        }
    }
    if (st != FERRY_OK)
        return fpy_error();
    return Py_NewRef(a);
}

static PyObject *nb_add(PyObject *a, PyObject *b) { return binary(&op_add, a, b); }
static PyObject *nb_sub(PyObject *a, PyObject *b) { return binary(&op_sub, a, b); }
static PyObject *nb_mul(PyObject *a, PyObject *b) { return binary(&op_mul, a, b); }
static PyObject *nb_div(PyObject *a, PyObject *b) { return binary(&op_div, a, b); }
static PyObject *nb_iadd(PyObject *a, PyObject *b) { return inplace(&op_add, a, b); }
static PyObject *nb_isub(PyObject *a, PyObject *b) { return inplace(&op_sub, a, b); }
static PyObject *nb_imul(PyObject *a, PyObject *b) { return inplace(&op_mul, a, b); }
static PyObject *nb_idiv(PyObject *a, PyObject *b) { return inplace(&op_div, a, b); }

static PyObject *nb_pow(PyObject *a, PyObject *b, PyObject *mod)
{
    if (mod != Py_None)
        Py_RETURN_NOTIMPLEMENTED;
    return binary(&op_pow, a, b);
}

static PyObject *nb_ipow(PyObject *a, PyObject *b, PyObject *mod)
{
    if (mod != Py_None)
        Py_RETURN_NOTIMPLEMENTED;
    return inplace(&op_pow, a, b);
}

static PyObject *nb_matmul(PyObject *a, PyObject *b)
{
    if (!FpyTensor_Check(a) || !FpyTensor_Check(b))
        Py_RETURN_NOTIMPLEMENTED;
    ferry_tensor *ta = FPY_T(a), *tb = FPY_T(b), *r;
    FPY_MAYBE_NOGIL(fpy_obj_may_block(a) || fpy_obj_may_block(b), r = ferry_matmul(ta, tb));
    return fpy_wrap(r);
}

static PyObject *unary(ferry_tensor *(*f)(ferry_tensor *), PyObject *self)
{
    ferry_tensor *t = FPY_T(self), *r;
    FPY_MAYBE_NOGIL(fpy_obj_may_block(self), r = f(t));
    return fpy_wrap(r);
}

static PyObject *nb_neg(PyObject *a) { return unary(ferry_neg, a); }
static PyObject *nb_abs(PyObject *a) { return unary(ferry_abs, a); }
static PyObject *nb_pos(PyObject *a) { return Py_NewRef(a); }

/* The value of a one-element tensor, with PyTorch's message otherwise. */
static PyObject *single_value(PyObject *self, const char *what)
{
    int64_t n = ferry_tensor_numel(FPY_T(self));
    if (n != 1) {
        if (what)
            PyErr_Format(PyExc_RuntimeError, "Boolean value of Tensor with %s is ambiguous",
                         n == 0 ? "no values" : "more than one value");
        else /* PyTorch's int() and float(); item() says "cannot be converted to Scalar" */
            PyErr_SetString(PyExc_ValueError,
                            "only one element tensors can be converted to Python scalars");
        return NULL;
    }
    return fpy_item(FPY_T(self));
}

static int nb_bool(PyObject *a)
{
    PyObject *v = single_value(a, "bool");
    if (!v)
        return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static PyObject *nb_int(PyObject *a)
{
    PyObject *v = single_value(a, NULL);
    if (!v)
        return NULL;
    PyObject *r = PyNumber_Long(v);
    Py_DECREF(v);
    return r;
}

static PyObject *nb_float(PyObject *a)
{
    PyObject *v = single_value(a, NULL);
    if (!v)
        return NULL;
    PyObject *r = PyNumber_Float(v);
    Py_DECREF(v);
    return r;
}

static PyObject *nb_index(PyObject *a)
{
    ferry_tensor *t = FPY_T(a);
    int kind = fpy_dtype_kind(ferry_tensor_dtype(t));
    if (kind != FPY_KIND_INT || ferry_tensor_numel(t) != 1) {
        PyErr_SetString(PyExc_TypeError,
                        "only integer tensors of a single element can be converted to an index");
        return NULL;
    }
    return fpy_item(t);
}

static PyObject *tensor_richcompare(PyObject *a, PyObject *b, int op)
{
    static const binop *const ops[] = {[Py_LT] = &op_lt, [Py_LE] = &op_le, [Py_EQ] = &op_eq,
                                       [Py_NE] = &op_ne, [Py_GT] = &op_gt, [Py_GE] = &op_ge};
    return binary(ops[op], a, b);
}

static PyNumberMethods tensor_as_number = {
    .nb_add = nb_add,
    .nb_subtract = nb_sub,
    .nb_multiply = nb_mul,
    .nb_true_divide = nb_div,
    .nb_power = nb_pow,
    .nb_negative = nb_neg,
    .nb_positive = nb_pos,
    .nb_absolute = nb_abs,
    .nb_invert = fpy_nb_invert,
    .nb_floor_divide = fpy_nb_floor_divide,
    .nb_remainder = fpy_nb_remainder,
    .nb_and = fpy_nb_and,
    .nb_or = fpy_nb_or,
    .nb_xor = fpy_nb_xor,
    .nb_lshift = fpy_nb_lshift,
    .nb_rshift = fpy_nb_rshift,
    .nb_inplace_floor_divide = fpy_nb_ifloor_divide,
    .nb_inplace_remainder = fpy_nb_iremainder,
    .nb_inplace_and = fpy_nb_iand,
    .nb_inplace_or = fpy_nb_ior,
    .nb_inplace_xor = fpy_nb_ixor,
    .nb_inplace_lshift = fpy_nb_ilshift,
    .nb_inplace_rshift = fpy_nb_irshift,
    .nb_bool = nb_bool,
    .nb_int = nb_int,
    .nb_float = nb_float,
    .nb_index = nb_index,
    .nb_inplace_add = nb_iadd,
    .nb_inplace_subtract = nb_isub,
    .nb_inplace_multiply = nb_imul,
    .nb_inplace_true_divide = nb_idiv,
    .nb_inplace_power = nb_ipow,
    .nb_matrix_multiply = nb_matmul,
};

static PySequenceMethods tensor_as_sequence = {
    .sq_length = tensor_length,
    .sq_item = tensor_item,
};

static PyMappingMethods tensor_as_mapping = {
    .mp_length = tensor_length,
    .mp_subscript = tensor_subscript,
    .mp_ass_subscript = tensor_ass_subscript,
};

/* ------------------------------------------------------------------------ */
/* Methods over the ops                                                     */
/* ------------------------------------------------------------------------ */

/* Method forms of the binary operators: a non-number argument is a TypeError here. */
static PyObject *binary_method(const binop *op, PyObject *self, PyObject *other, const char *name)
{
    PyObject *r = binary(op, self, other);
    if (r == Py_NotImplemented) {
        Py_DECREF(r);
        PyErr_Format(PyExc_TypeError, "%s(): argument 'other' must be a Tensor or a number, not %s",
                     name, Py_TYPE(other)->tp_name);
        return NULL;
    }
    return r;
}

static PyObject *inplace_method(const binop *op, PyObject *self, PyObject *other, const char *name)
{
    PyObject *r = inplace(op, self, other);
    if (r == Py_NotImplemented) {
        Py_DECREF(r);
        PyErr_Format(PyExc_TypeError, "%s(): argument 'other' must be a Tensor or a number, not %s",
                     name, Py_TYPE(other)->tp_name);
        return NULL;
    }
    return r;
}

#define BINARY_METHOD(name)                                           \
    static PyObject *m_##name(PyObject *self, PyObject *other)        \
    {                                                                 \
        return binary_method(&op_##name, self, other, #name);         \
    }
BINARY_METHOD(add)
BINARY_METHOD(sub)
BINARY_METHOD(mul)
BINARY_METHOD(div)
BINARY_METHOD(pow)
BINARY_METHOD(maximum)
BINARY_METHOD(minimum)
BINARY_METHOD(eq)
BINARY_METHOD(ne)
BINARY_METHOD(lt)
BINARY_METHOD(le)
BINARY_METHOD(gt)
BINARY_METHOD(ge)

#define INPLACE_METHOD(name)                                          \
    static PyObject *m_##name##_(PyObject *self, PyObject *other)     \
    {                                                                 \
        return inplace_method(&op_##name, self, other, #name "_");    \
    }
INPLACE_METHOD(add)
INPLACE_METHOD(sub)
INPLACE_METHOD(mul)
INPLACE_METHOD(div)

static PyObject *m_matmul(PyObject *self, PyObject *other)
{
    PyObject *r = nb_matmul(self, other);
    if (r == Py_NotImplemented) {
        Py_DECREF(r);
        PyErr_Format(PyExc_TypeError, "matmul(): argument 'other' must be a Tensor, not %s",
                     Py_TYPE(other)->tp_name);
        return NULL;
    }
    return r;
}

#define UNARY_METHOD(name)                                            \
    static PyObject *m_##name(PyObject *self, PyObject *unused)       \
    {                                                                 \
        return unary(ferry_##name, self);                             \
    }
UNARY_METHOD(neg)
UNARY_METHOD(abs)
UNARY_METHOD(exp)
UNARY_METHOD(log)
UNARY_METHOD(sqrt)
UNARY_METHOD(sin)
UNARY_METHOD(cos)
UNARY_METHOD(tanh)
UNARY_METHOD(sigmoid)
UNARY_METHOD(relu)

typedef ferry_tensor *(*reduce_fn)(ferry_tensor *, int, const int *, bool);

/* sum(dim=None, keepdim=False) and friends: dim is None (everything), an int or a
 * sequence of ints. */
static PyObject *reduce(reduce_fn f, PyObject *self, PyObject *args, PyObject *kwargs,
                        const char *fmt)
{
    static char *kwlist[] = {"dim", "keepdim", NULL};
    PyObject *d = Py_None;
    fpy_bool_arg keepdim = {fmt + 5, "keepdim", 0}; /* fmt is "|OO&:name" */
    /* t.sum() with no arguments skips the parser, which costs as much as a small sum. */
    bool bare = PyTuple_GET_SIZE(args) == 0 && (!kwargs || PyDict_GET_SIZE(kwargs) == 0);
    if (!bare && !PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &d, fpy_bool_converter,
                                              &keepdim))
        return NULL;
    ferry_tensor *t = FPY_T(self), *r;
    int n = 0, dims[FERRY_MAX_DIMS];
    if (d != Py_None) {
        PyObject *one = PyTuple_Pack(1, d);
        if (!one)
            return NULL;
        int rc = dim_list(one, fmt + 5, ferry_tensor_ndim(t), &n, dims);
        Py_DECREF(one);
        if (rc < 0)
            return NULL;
    }
    FPY_MAYBE_NOGIL(fpy_obj_may_block(self), r = f(t, n, dims, keepdim.value));
    return fpy_wrap(r);
}

static PyObject *m_sum(PyObject *s, PyObject *a, PyObject *k) { return reduce(ferry_sum, s, a, k, "|OO&:sum"); }
static PyObject *m_mean(PyObject *s, PyObject *a, PyObject *k) { return reduce(ferry_mean, s, a, k, "|OO&:mean"); }
static PyObject *m_amax(PyObject *s, PyObject *a, PyObject *k) { return reduce(ferry_max, s, a, k, "|OO&:amax"); }
static PyObject *m_amin(PyObject *s, PyObject *a, PyObject *k) { return reduce(ferry_min, s, a, k, "|OO&:amin"); }
static PyObject *m_argmax(PyObject *s, PyObject *a, PyObject *k) { return reduce(ferry_argmax, s, a, k, "|OO&:argmax"); }

/* max()/min() of everything; PyTorch's max(dim) returns (values, indices), which needs
 * an argmin the C API lacks, so the per-dim forms are amax/amin/argmax. */
static PyObject *m_max(PyObject *self, PyObject *unused)
{
    ferry_tensor *t = FPY_T(self), *r;
    FPY_MAYBE_NOGIL(fpy_may_block(t), r = ferry_max(t, 0, NULL, false));
    return fpy_wrap(r);
}

static PyObject *m_min(PyObject *self, PyObject *unused)
{
    ferry_tensor *t = FPY_T(self), *r;
    FPY_MAYBE_NOGIL(fpy_may_block(t), r = ferry_min(t, 0, NULL, false));
    return fpy_wrap(r);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
#define CF(f) ((PyCFunction)(void (*)(void))(f))
static PyMethodDef tensor_methods[] = {
    {"to", CF(t_to), KW,
     "to(device=None, dtype=None, *, copy=False): self when nothing changes, else a tensor "
     "on that device and of that dtype. Also to(dtype), to(device, dtype), to(tensor)."},
    {"cpu", t_cpu, METH_NOARGS, "a copy on the host (self when already there)"},
    {"cuda", CF(t_cuda), KW, "cuda(device=None): a copy on a CUDA device (index 0 by default)"},
    {"opencl", CF(t_opencl), KW, "opencl(device=None): a copy on an OpenCL device"},
    {"type", CF(t_type), KW,
     "type(dtype=None): the type name ('ferry.FloatTensor') without argument, else the "
     "tensor converted to dtype (self when already of it)"},
    {"detach", t_detach, METH_NOARGS, "a tensor sharing storage that does not require grad"},
    {"clone", t_clone, METH_NOARGS, "a contiguous copy on the same device"},
    {"contiguous", t_contiguous, METH_NOARGS, "self when contiguous, else a contiguous copy"},
    {"is_contiguous", t_is_contiguous, METH_NOARGS, "row-major contiguous"},
    {"numpy", CF(fpy_tensor_numpy), KW,
     "numpy(*, force=False): a NumPy array sharing memory with this CPU tensor. force=True "
     "does detach().cpu() first."},
    {"tolist", t_tolist, METH_NOARGS, "the elements as nested lists of Python numbers"},
    {"item", t_item, METH_NOARGS, "the value of a one-element tensor as a Python number"},
    {"__array__", CF(fpy_tensor_array), KW, NULL},
    {"__dlpack__", CF(fpy_tensor_dlpack), KW,
     "__dlpack__(*, stream=None, max_version=None, dl_device=None, copy=None): a DLPack "
     "capsule over this tensor's memory"},
    {"__dlpack_device__", fpy_tensor_dlpack_device, METH_NOARGS,
     "(DLPack device type, device id)"},
    {"size", CF(t_size), KW, "size(dim=None): the shape, or one size"},
    {"stride", CF(t_stride), KW, "stride(dim=None): strides in elements"},
    {"dim", t_dim, METH_NOARGS, "number of dimensions"},
    {"numel", t_numel, METH_NOARGS, "number of elements"},
    {"element_size", t_element_size, METH_NOARGS, "bytes per element"},
    {"reshape", t_reshape, METH_VARARGS, "reshape(*shape): a view when possible, else a copy"},
    {"view", t_view, METH_VARARGS, "view(*shape): a view with another shape"},
    {"expand", t_expand, METH_VARARGS, "expand(*sizes): broadcast size-1 dims (a view)"},
    {"permute", t_permute, METH_VARARGS, "permute(*dims): a view with dims reordered"},
    {"transpose", t_transpose, METH_VARARGS, "transpose(dim0, dim1): a view"},
    {"flatten", CF(t_flatten), KW, "flatten(start_dim=0, end_dim=-1)"},
    {"squeeze", CF(t_squeeze), KW, "squeeze(dim=None): drop size-1 dims (a view)"},
    {"unsqueeze", t_unsqueeze, METH_O, "unsqueeze(dim): insert a size-1 dim (a view)"},
    {"add", m_add, METH_O, NULL},
    {"sub", m_sub, METH_O, NULL},
    {"mul", m_mul, METH_O, NULL},
    {"div", m_div, METH_O, NULL},
    {"pow", m_pow, METH_O, NULL},
    {"maximum", m_maximum, METH_O, NULL},
    {"minimum", m_minimum, METH_O, NULL},
    {"eq", m_eq, METH_O, NULL},
    {"ne", m_ne, METH_O, NULL},
    {"lt", m_lt, METH_O, NULL},
    {"le", m_le, METH_O, NULL},
    {"gt", m_gt, METH_O, NULL},
    {"ge", m_ge, METH_O, NULL},
    {"copy_", CF(t_copy_), KW,
     "copy_(src, non_blocking=False): copies src into self and returns self. src (a "
     "tensor on any device, an array, a list or a number) broadcasts to self's shape and "
     "converts to its dtype. Fails on a read-only tensor."},
    {"fill_", t_fill_, METH_O,
     "fill_(value): sets every element to value (a number or a 0-d tensor) and returns "
     "self. Fails on a read-only tensor, and when value overflows the dtype."},
    {"add_", m_add_, METH_O, "in place; fails on a read-only tensor"},
    {"sub_", m_sub_, METH_O, "in place; fails on a read-only tensor"},
    {"mul_", m_mul_, METH_O, "in place; fails on a read-only tensor"},
    {"div_", m_div_, METH_O, "in place; fails on a read-only tensor"},
    {"matmul", m_matmul, METH_O, NULL},
    {"neg", m_neg, METH_NOARGS, NULL},
    {"abs", m_abs, METH_NOARGS, NULL},
    {"exp", m_exp, METH_NOARGS, NULL},
    {"log", m_log, METH_NOARGS, NULL},
    {"sqrt", m_sqrt, METH_NOARGS, NULL},
    {"sin", m_sin, METH_NOARGS, NULL},
    {"cos", m_cos, METH_NOARGS, NULL},
    {"tanh", m_tanh, METH_NOARGS, NULL},
    {"sigmoid", m_sigmoid, METH_NOARGS, NULL},
    {"relu", m_relu, METH_NOARGS, NULL},
    {"sum", CF(m_sum), KW, "sum(dim=None, keepdim=False)"},
    {"mean", CF(m_mean), KW, "mean(dim=None, keepdim=False)"},
    {"amax", CF(m_amax), KW, "amax(dim=None, keepdim=False)"},
    {"amin", CF(m_amin), KW, "amin(dim=None, keepdim=False)"},
    {"argmax", CF(m_argmax), KW, "argmax(dim=None, keepdim=False)"},
    {"max", m_max, METH_NOARGS, "the largest element (0-d)"},
    {"min", m_min, METH_NOARGS, "the smallest element (0-d)"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject FpyTensor_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.Tensor",
    .tp_basicsize = sizeof(FpyTensor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A tensor on a device. Create with ferry.tensor(), ferry.zeros(), ferry.from_numpy(), "
              "ferry.from_dlpack(), ...",
    .tp_dealloc = tensor_dealloc,
    .tp_repr = tensor_repr,
    .tp_hash = tensor_hash,
    .tp_as_number = &tensor_as_number,
    .tp_as_sequence = &tensor_as_sequence,
    .tp_as_mapping = &tensor_as_mapping,
    .tp_as_buffer = &fpy_tensor_as_buffer,
    .tp_richcompare = tensor_richcompare,
    .tp_iter = tensor_iter,
    .tp_weaklistoffset = offsetof(FpyTensor, weakrefs),
    .tp_methods = tensor_methods,
    .tp_getset = tensor_getset,
};

int fpy_tensor_type_init(PyObject *module)
{
    if (PyType_Ready(&FpyTensor_Type) < 0)
        return -1;
    /* As torch.Tensor's: NumPy's arrays and scalars then leave binary operators with a
     * tensor to the tensor (np.float32(2) * t is a ferry.Tensor with PyTorch's promotion
     * of a Python scalar, np.ones(2) + t a ferry.Tensor of the promoted dtype). */
    PyObject *prio = PyFloat_FromDouble(1000.0);
    if (!prio)
        return -1;
    int rc = PyDict_SetItemString(FpyTensor_Type.tp_dict, "__array_priority__", prio);
    Py_DECREF(prio);
    if (rc < 0)
        return -1;
    PyType_Modified(&FpyTensor_Type);
    return PyModule_AddObjectRef(module, "Tensor", (PyObject *)&FpyTensor_Type);
}

int fpy_tensor_add_methods(PyMethodDef *defs, bool keep_existing)
{
    PyObject *dict = FpyTensor_Type.tp_dict;
    for (PyMethodDef *m = defs; m->ml_name; m++) {
        if (keep_existing && PyDict_GetItemString(dict, m->ml_name))
            continue;
        PyObject *d = PyDescr_NewMethod(&FpyTensor_Type, m);
        if (!d || PyDict_SetItemString(dict, m->ml_name, d) < 0) {
            Py_XDECREF(d);
            return -1;
        }
        Py_DECREF(d);
    }
    PyType_Modified(&FpyTensor_Type);
    return 0;
}

int fpy_tensor_add_getset(PyGetSetDef *defs)
{
    PyObject *dict = FpyTensor_Type.tp_dict;
    for (PyGetSetDef *g = defs; g->name; g++) {
        PyObject *d = PyDescr_NewGetSet(&FpyTensor_Type, g);
        if (!d || PyDict_SetItemString(dict, g->name, d) < 0) {
            Py_XDECREF(d);
            return -1;
        }
        Py_DECREF(d);
    }
    PyType_Modified(&FpyTensor_Type);
    return 0;
}

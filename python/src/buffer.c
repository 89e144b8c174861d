/* Zero-copy host exchange: the buffer protocol exporter of CPU tensors, tensors over
 * other objects' buffers (from_numpy, and the temporary views ferry.tensor() copies
 * from), and Tensor.numpy() / __array__. */
#include "ferry_py.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* NumPy, looked up lazily: ferry imports without it                        */
/* ------------------------------------------------------------------------ */

static PyObject *np_ndarray; /* numpy.ndarray */
static PyObject *np_asarray; /* numpy.asarray */

static int numpy_load(void)
{
    if (np_asarray)
        return 0;
    PyObject *np = PyImport_ImportModule("numpy");
    if (!np)
        return -1;
    PyObject *nd = PyObject_GetAttrString(np, "ndarray");
    PyObject *as = nd ? PyObject_GetAttrString(np, "asarray") : NULL;
    Py_DECREF(np);
    if (!as) {
        Py_XDECREF(nd);
        return -1;
    }
    /* Kept for the life of the process, as NumPy's own C-API table would be. */
    np_ndarray = nd;
    np_asarray = as;
    return 0;
}

/* Whether o is a NumPy array, without importing NumPy: an array exists only once
 * NumPy is loaded. */
bool fpy_is_ndarray(PyObject *o)
{
    if (!np_ndarray) {
        /* Asked for every operand that is not a number or a tensor until NumPy is
         * imported, so the name is made once. */
        static PyObject *name;
        if (!name && !(name = PyUnicode_InternFromString("numpy"))) {
            PyErr_Clear();
            return false;
        }
        PyObject *np = PyImport_GetModule(name);
        if (!np) {
            PyErr_Clear();
            return false;
        }
        Py_DECREF(np);
        if (numpy_load() < 0) {
            PyErr_Clear();
            return false;
        }
    }
    return PyObject_TypeCheck(o, (PyTypeObject *)np_ndarray);
}

/* ------------------------------------------------------------------------ */
/* Exporting: CPU tensors through the buffer protocol                       */
/* ------------------------------------------------------------------------ */

/* PEP 3118 formats NumPy reads back as the same dtype; bfloat16 has none. */
static const char *buffer_format(ferry_dtype dtype)
{
    switch (dtype) {
    case FERRY_BOOL: return "?";
    case FERRY_UINT8: return "B";
    case FERRY_INT8: return "b";
    case FERRY_INT16: return "h";
    case FERRY_INT32: return "i";
    case FERRY_INT64: return "q";
    case FERRY_FLOAT16: return "e";
    case FERRY_FLOAT32: return "f";
    case FERRY_FLOAT64: return "d";
    case FERRY_BFLOAT16: return NULL;
    }
    return NULL;
}

static const char bf16_remedy[] =
    "NumPy and the buffer protocol have no bfloat16 type. Use tensor.type(ferry.float32) "
    "for a float32 copy, or exchange the tensor through DLPack (jax.numpy.from_dlpack, "
    "torch.from_dlpack), which keeps bfloat16.";

void fpy_buffer_dims_free(FpyTensor *self)
{
    PyMem_Free(self->buf_dims);
    self->buf_dims = NULL;
}

static bool is_f_contiguous(int ndim, const int64_t *shape, const int64_t *strides)
{
    int64_t expect = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            return true;
        if (shape[i] != 1 && strides[i] != expect)
            return false;
        expect *= shape[i];
    }
    return true;
}

static int tensor_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    FpyTensor *o = (FpyTensor *)self;
    ferry_tensor *t = o->t;
    ferry_dtype dtype = ferry_tensor_dtype(t);
    char dev[48];
    view->obj = NULL;
    if (!fpy_on_cpu(t)) {
        PyErr_Format(PyExc_BufferError,
                     "can't export a %s device type tensor through the buffer protocol: its "
                     "memory is not host memory. Use Tensor.cpu() to copy the tensor to host "
                     "memory first.",
                     fpy_tensor_device_str(t, dev));
        return -1;
    }
    if (ferry_tensor_requires_grad(t)) {
        PyErr_SetString(PyExc_BufferError,
                        "can't export a tensor that requires grad through the buffer protocol. "
                        "Use tensor.detach() first.");
        return -1;
    }
    const char *fmt = buffer_format(dtype);
    if (!fmt) {
        PyErr_Format(PyExc_BufferError, "can't export a bfloat16 tensor: %s", bf16_remedy);
        return -1;
    }
    bool read_only = ferry_tensor_is_read_only(t);
    if ((flags & PyBUF_WRITABLE) && read_only) {
        PyErr_SetString(PyExc_BufferError,
                        "the tensor is read-only (it views memory of a read-only array); a "
                        "writable buffer was requested");
        return -1;
    }
    int ndim = ferry_tensor_ndim(t);
    const int64_t *shape = ferry_tensor_shape(t), *strides = ferry_tensor_strides(t);
    bool c = ferry_tensor_is_contiguous(t), f = is_f_contiguous(ndim, shape, strides);
    bool want_strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES;
    if (((flags & PyBUF_C_CONTIGUOUS) == PyBUF_C_CONTIGUOUS && !c) ||
        ((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS && !f) ||
        ((flags & PyBUF_ANY_CONTIGUOUS) == PyBUF_ANY_CONTIGUOUS && !c && !f) ||
        (!want_strides && !c)) {
        PyErr_SetString(PyExc_BufferError,
                        "the tensor is not contiguous in the layout the consumer asked for; "
                        "use tensor.contiguous()");
        return -1;
    }
    void *data = ferry_tensor_host_data(t);
    if (!data) {
        fpy_export_error();
        return -1;
    }
    size_t isz = ferry_dtype_size(dtype);
    if (ndim > 0 && !o->buf_dims) {
        Py_ssize_t *dims = PyMem_Malloc(2 * (size_t)ndim * sizeof *dims);
        if (!dims) {
            PyErr_NoMemory();
            return -1;
        }
        for (int i = 0; i < ndim; i++) {
            dims[i] = (Py_ssize_t)shape[i];
            dims[ndim + i] = (Py_ssize_t)(strides[i] * (int64_t)isz); /* bytes here */
        }
        o->buf_dims = dims;
    }
    bool want_shape = (flags & PyBUF_ND) == PyBUF_ND;
    view->buf = data;
    view->obj = Py_NewRef(self);
    view->len = (Py_ssize_t)ferry_tensor_nbytes(t);
    view->itemsize = (Py_ssize_t)isz;
    view->readonly = read_only;
    /* Without a shape the consumer sees plain bytes, one dimension of len. */
    view->ndim = want_shape ? ndim : 1;
    view->format = (flags & PyBUF_FORMAT) ? (char *)fmt : NULL;
    view->shape = want_shape && ndim > 0 ? o->buf_dims : NULL;
    view->strides = want_strides && ndim > 0 ? o->buf_dims + ndim : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    return 0;
}

/* The shape and stride arrays belong to the tensor object, which the view holds. */
PyBufferProcs fpy_tensor_as_buffer = {
    .bf_getbuffer = tensor_getbuffer,
    .bf_releasebuffer = NULL,
};

/* ------------------------------------------------------------------------ */
/* Importing: tensors over other objects' buffers                           */
/* ------------------------------------------------------------------------ */

/* The deleter of a zero-copy tensor: gives the exporter its buffer back. Runs on
 * whichever thread drops the last reference, hence the GIL is taken. After the
 * interpreter has finalised no object may be touched, so the owner is left alone, as
 * NumPy's DLPack deleter does. */
static void release_view(void *data, void *ctx)
{
    Py_buffer *view = ctx;
    if (!Py_IsInitialized())
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyBuffer_Release(view);
    PyGILState_Release(g);
    PyMem_RawFree(view);
}

enum { FMT_OK, FMT_BYTE_ORDER, FMT_UNSUPPORTED };

static bool little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* A single-item PEP 3118 format as a ferry dtype. Integer codes are taken by item size,
 * since 'l' and 'q' are both int64 here and NumPy writes either. */
static int parse_format(const char *fmt, Py_ssize_t itemsize, ferry_dtype *out)
{
    char order = '@';
    if (!fmt)
        fmt = "B";
    if (*fmt && strchr("@=<>!", *fmt))
        order = *fmt++;
    bool foreign = itemsize > 1 && (((order == '>' || order == '!') && little_endian()) ||
                                    (order == '<' && !little_endian()));
    int found = -1;
    if (fmt[0] && !fmt[1]) {
        switch (fmt[0]) {
        case '?': found = itemsize == 1 ? FERRY_BOOL : -1; break;
        case 'B': found = itemsize == 1 ? FERRY_UINT8 : -1; break;
        case 'b': found = itemsize == 1 ? FERRY_INT8 : -1; break;
        case 'h': case 'i': case 'l': case 'q': case 'n':
            found = itemsize == 2 ? FERRY_INT16 : itemsize == 4 ? FERRY_INT32
                  : itemsize == 8 ? FERRY_INT64 : -1;
            break;
        case 'e': found = itemsize == 2 ? FERRY_FLOAT16 : -1; break;
        case 'f': found = itemsize == 4 ? FERRY_FLOAT32 : -1; break;
        case 'd': found = itemsize == 8 ? FERRY_FLOAT64 : -1; break;
        default: break;
        }
    }
    if (foreign)
        return FMT_BYTE_ORDER;
    if (found < 0)
        return FMT_UNSUPPORTED;
    *out = (ferry_dtype)found;
    return FMT_OK;
}

static void numpy_dtype_error(PyObject *arr)
{
    PyObject *dt = PyObject_GetAttrString(arr, "dtype");
    PyObject *ty = dt ? PyObject_GetAttrString(dt, "type") : NULL;
    Py_XDECREF(dt);
    if (!ty)
        return;
    const char *name = PyType_Check(ty) ? ((PyTypeObject *)ty)->tp_name : "unknown";
    /* PyTorch's message, with the types ferry has. */
    PyErr_Format(PyExc_TypeError,
                 "can't convert np.ndarray of type %s. The only supported types are: float64, "
                 "float32, float16, int64, int32, int16, int8, uint8, and bool.",
                 name);
    Py_DECREF(ty);
}

ferry_tensor *fpy_tensor_from_buffer(PyObject *obj, bool keep, Py_buffer *view_out)
{
    bool ndarray = fpy_is_ndarray(obj);
    Py_buffer *view = keep ? PyMem_RawMalloc(sizeof *view) : view_out;
    if (!view) {
        PyErr_NoMemory();
        return NULL;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO) < 0) {
        /* NumPy exports every dtype ferry has; what it cannot export (datetime, ...) is
         * not one of them. */
        if (ndarray) {
            PyErr_Clear();
            numpy_dtype_error(obj);
        }
        if (keep)
            PyMem_RawFree(view);
        return NULL;
    }
    ferry_tensor *t = NULL;
    int ndim = view->ndim;
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS];
    if (ndim > FERRY_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "a tensor has at most %d dimensions, the buffer has %d",
                     FERRY_MAX_DIMS, ndim);
        goto fail;
    }
    /* PyTorch checks, in its order and words: strides, byte order, dtype. */
    Py_ssize_t isz = view->itemsize;
    for (int i = 0; i < ndim; i++) {
        shape[i] = view->shape[i];
        Py_ssize_t s = view->strides ? view->strides[i] : 0;
        if (view->strides && (isz == 0 || s % isz != 0)) {
            PyErr_SetString(PyExc_ValueError,
                            "given numpy array strides not a multiple of the element byte "
                            "size. Copy the numpy array to reallocate the memory.");
            goto fail;
        }
        strides[i] = isz ? s / isz : 0;
    }
    ferry_dtype dtype;
    switch (parse_format(view->format, isz, &dtype)) {
    case FMT_BYTE_ORDER:
        PyErr_SetString(PyExc_ValueError,
                        "given numpy array has byte order different from the native byte "
                        "order. Conversion between byte orders is currently not supported.");
        goto fail;
    case FMT_UNSUPPORTED:
        if (ndarray)
            numpy_dtype_error(obj);
        else
            PyErr_Format(PyExc_TypeError,
                         "can't convert a buffer of format '%s' (item size %zd). The only "
                         "supported types are: float64, float32, float16, int64, int32, int16, "
                         "int8, uint8, and bool.",
                         view->format ? view->format : "B", isz);
        goto fail;
    default:
        break;
    }
    /* Negative strides are fine: the pointer is element 0's, wherever the others lie. */
    t = ferry_tensor_from_blob(view->buf, dtype, ndim, shape, view->strides ? strides : NULL,
                               keep ? release_view : NULL, keep ? view : NULL);
    if (!t) {
        fpy_error();
        goto fail;
    }
    if (view->readonly && ferry_tensor_set_read_only(t, true) != FERRY_OK) {
        fpy_error();
        ferry_tensor_release(t); /* runs release_view when keep */
        if (!keep)
            PyBuffer_Release(view);
        return NULL;
    }
    return t;
fail:
    PyBuffer_Release(view);
    if (keep)
        PyMem_RawFree(view);
    return NULL;
}

PyObject *fpy_from_numpy(PyObject *module, PyObject *arr)
{
    if (numpy_load() < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError, "Numpy is not available");
        return NULL;
    }
    if (!PyObject_TypeCheck(arr, (PyTypeObject *)np_ndarray)) {
        PyErr_Format(PyExc_TypeError, "expected np.ndarray (got %s)", Py_TYPE(arr)->tp_name);
        return NULL;
    }
    ferry_tensor *t = fpy_tensor_from_buffer(arr, true, NULL);
    return t ? fpy_wrap(t) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Tensor.numpy() and __array__                                             */
/* ------------------------------------------------------------------------ */

static PyObject *to_numpy(PyObject *self, bool force)
{
    ferry_tensor *t = FPY_T(self);
    char dev[48];
    if (!force) {
        /* PyTorch's checks, order and words. */
        if (!fpy_on_cpu(t)) {
            PyErr_Format(PyExc_TypeError,
                         "can't convert %s device type tensor to numpy. Use Tensor.cpu() to "
                         "copy the tensor to host memory first.",
                         fpy_tensor_device_str(t, dev));
            return NULL;
        }
        if (ferry_tensor_requires_grad(t)) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Can't call numpy() on Tensor that requires grad. Use "
                            "tensor.detach().numpy() instead.");
            return NULL;
        }
    }
    if (ferry_tensor_dtype(t) == FERRY_BFLOAT16) {
        PyErr_Format(PyExc_TypeError, "can't convert a bfloat16 tensor to numpy: %s",
                     bf16_remedy);
        return NULL;
    }
    if (numpy_load() < 0)
        return NULL;
    PyObject *src;
    if (force) {
        ferry_tensor *d = ferry_tensor_detach(t), *c = NULL;
        if (d)
            FPY_MAYBE_NOGIL(!fpy_on_cpu(d), c = ferry_tensor_cpu(d));
        ferry_tensor_release(d);
        if (!(src = fpy_wrap(c)))
            return NULL;
    } else {
        src = Py_NewRef(self);
    }
    /* The array's base is a memoryview holding the tensor, which holds the memory. */
    PyObject *mv = PyMemoryView_FromObject(src);
    Py_DECREF(src);
    if (!mv)
        return NULL;
    PyObject *arr = PyObject_CallOneArg(np_asarray, mv);
    Py_DECREF(mv);
    return arr;
}

PyObject *fpy_tensor_numpy(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"force", NULL};
    fpy_bool_arg force = {"numpy", "force", 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$O&:numpy", kwlist, fpy_bool_converter,
                                     &force))
        return NULL;
    return to_numpy(self, force.value);
}

/* np.asarray(t) reads the buffer protocol first; NumPy comes here only when that
 * failed, so the caller gets numpy()'s PyTorch-worded error. */
PyObject *fpy_tensor_array(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"dtype", "copy", NULL};
    PyObject *dtype = Py_None, *copy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:__array__", kwlist, &dtype, &copy))
        return NULL;
    PyObject *arr = to_numpy(self, false);
    if (!arr)
        return NULL;
    if (dtype != Py_None)
        Py_SETREF(arr, PyObject_CallMethod(arr, "astype", "O", dtype));
    else if (copy == Py_True)
        Py_SETREF(arr, PyObject_CallMethod(arr, "copy", NULL));
    return arr;
}

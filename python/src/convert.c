/* Python values <-> tensor elements: the kinds of Python numbers and PyTorch's dtype
 * inference, ferry.tensor() from numbers, nested lists, buffers and tensors, and
 * tolist()/item(). */
#include "ferry_py.h"

#include <math.h>
#include <string.h>

#include <ferry/half.h>

/* ------------------------------------------------------------------------ */
/* Number kinds                                                             */
/* ------------------------------------------------------------------------ */

/* numpy.generic, once NumPy has been imported by anyone; NULL before. Looked up in
 * sys.modules, so ferry never imports NumPy just to classify a number. */
static PyTypeObject *numpy_generic(void)
{
    static PyTypeObject *generic;
    static PyObject *name;
    if (generic)
        return generic;
    if (!name && !(name = PyUnicode_InternFromString("numpy"))) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *np = PyImport_GetModule(name);
    if (!np) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *g = PyObject_GetAttrString(np, "generic");
    Py_DECREF(np);
    if (!g || !PyType_Check(g)) {
        PyErr_Clear();
        Py_XDECREF(g);
        return NULL;
    }
    generic = (PyTypeObject *)g; /* kept: NumPy is never unloaded */
    return generic;
}

int fpy_scalar_kind(PyObject *o)
{
    if (PyBool_Check(o))
        return FPY_KIND_BOOL;
    if (PyLong_Check(o))
        return FPY_KIND_INT;
    if (PyFloat_Check(o))
        return FPY_KIND_FLOAT;
    PyTypeObject *g = numpy_generic();
    if (g && PyObject_TypeCheck(o, g)) {
        const char *name = Py_TYPE(o)->tp_name;
        if (strncmp(name, "numpy.bool", 10) == 0)
            return FPY_KIND_BOOL;
        if (strncmp(name, "numpy.complex", 13) == 0 || strncmp(name, "numpy.clongdouble", 17) == 0)
            return -1;
        if (PyIndex_Check(o))
            return FPY_KIND_INT;
        if (Py_TYPE(o)->tp_as_number && Py_TYPE(o)->tp_as_number->nb_float)
            return FPY_KIND_FLOAT;
    }
    return -1;
}

ferry_dtype fpy_default_float = FERRY_FLOAT32;

ferry_dtype fpy_kind_default_dtype(int kind)
{
    return kind == FPY_KIND_BOOL ? FERRY_BOOL : kind == FPY_KIND_INT ? FERRY_INT64 : fpy_default_float;
}

int fpy_dtype_kind(ferry_dtype dtype)
{
    return dtype == FERRY_BOOL ? FPY_KIND_BOOL
           : ferry_dtype_is_floating(dtype) ? FPY_KIND_FLOAT
                                            : FPY_KIND_INT;
}

/* ------------------------------------------------------------------------ */
/* One element                                                              */
/* ------------------------------------------------------------------------ */

static int overflow(ferry_dtype dtype)
{
    PyErr_Format(PyExc_RuntimeError, "value cannot be converted to type %s without overflow",
                 ferry_dtype_name(dtype));
    return -1;
}

/* Largest finite value of a floating dtype. */
static double float_max(ferry_dtype dtype)
{
    switch (dtype) {
    case FERRY_FLOAT16: return 65504.0;
    case FERRY_BFLOAT16: return 3.3895313892515355e38;
    case FERRY_FLOAT32: return 3.4028234663852886e38;
    default: return INFINITY;
    }
}

/* Range of an integer dtype, as doubles for checking a float before it truncates. */
static void int_range(ferry_dtype dtype, double *lo, double *hi)
{
    switch (dtype) {
    case FERRY_UINT8: *lo = 0.0; *hi = UINT8_MAX; return;
    case FERRY_INT8: *lo = INT8_MIN; *hi = INT8_MAX; return;
    case FERRY_INT16: *lo = INT16_MIN; *hi = INT16_MAX; return;
    case FERRY_INT32: *lo = INT32_MIN; *hi = INT32_MAX; return;
    default: *lo = -9223372036854775808.0; *hi = 9223372036854775807.0; return;
    }
}

/* fpy_store, and with `strict` the checks PyTorch's fill_ and t[i] = v make
 * (c10::checked_convert): a float overflows an integer dtype below its lowest value or
 * at its highest + 1 and above (int8: -128.5 and 128.0 do, 127.99 does not), and a
 * finite float overflows a floating dtype beyond its largest value (float16: 65519.0
 * does, though it would round to 65504). */
static int store(ferry_dtype dtype, PyObject *o, void *dst, bool strict)
{
    if (dtype == FERRY_BOOL) {
        int b = PyObject_IsTrue(o);
        if (b < 0)
            return -1;
        *(uint8_t *)dst = (uint8_t)b;
        return 0;
    }
    if (ferry_dtype_is_floating(dtype)) {
        double v = PyFloat_AsDouble(o);
        if (v == -1.0 && PyErr_Occurred())
            return -1;
        if (strict && isfinite(v) && fabs(v) > float_max(dtype))
            return overflow(dtype);
        switch (dtype) {
        case FERRY_FLOAT16: {
            uint16_t h = ferry_f32_to_f16((float)v);
            memcpy(dst, &h, 2);
            break;
        }
        case FERRY_BFLOAT16: {
            uint16_t h = ferry_f32_to_bf16((float)v);
            memcpy(dst, &h, 2);
            break;
        }
        case FERRY_FLOAT32: {
            float f = (float)v;
            memcpy(dst, &f, 4);
            break;
        }
        default:
            memcpy(dst, &v, 8);
            break;
        }
        return 0;
    }
    long long v;
    if (PyFloat_Check(o) || !PyIndex_Check(o)) {
        /* A float into an integer dtype truncates toward zero, as PyTorch's tensor(). */
        double f = PyFloat_AsDouble(o);
        if (f == -1.0 && PyErr_Occurred())
            return -1;
        if (!(f > -9223372036854775808.0 && f < 9223372036854775808.0))
            return overflow(dtype);
        double lo, hi;
        int_range(dtype, &lo, &hi);
        /* Negative floats never wrap into uint8 (PyTorch refuses -0.5 too). */
        if ((strict && (f < lo || f >= hi + 1.0)) || (dtype == FERRY_UINT8 && f < 0.0))
            return overflow(dtype);
        v = (long long)f;
    } else {
        v = PyLong_AsLongLong(o);
        if (v == -1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                return overflow(dtype);
            }
            return -1;
        }
    }
    switch (dtype) {
    case FERRY_UINT8:
        /* Negative ints wrap as two's complement down to -255, as PyTorch's
         * checked_convert allows (uint8 -1 is 255). */
        if (v < -(long long)UINT8_MAX || v > UINT8_MAX)
            return overflow(dtype);
        *(uint8_t *)dst = (uint8_t)v;
        break;
    case FERRY_INT8:
        if (v < INT8_MIN || v > INT8_MAX)
            return overflow(dtype);
        *(int8_t *)dst = (int8_t)v;
        break;
    case FERRY_INT16:
        if (v < INT16_MIN || v > INT16_MAX)
            return overflow(dtype);
        *(int16_t *)dst = (int16_t)v;
        break;
    case FERRY_INT32:
        if (v < INT32_MIN || v > INT32_MAX)
            return overflow(dtype);
        *(int32_t *)dst = (int32_t)v;
        break;
    default:
        *(int64_t *)dst = (int64_t)v;
        break;
    }
    return 0;
}

int fpy_store(ferry_dtype dtype, PyObject *o, void *dst)
{
    return store(dtype, o, dst, false);
}

int fpy_store_checked(ferry_dtype dtype, PyObject *o, void *dst)
{
    return store(dtype, o, dst, true);
}

PyObject *fpy_load(ferry_dtype dtype, const void *src)
{
    switch (dtype) {
    case FERRY_BOOL:
        return PyBool_FromLong(*(const uint8_t *)src != 0);
    case FERRY_UINT8:
        return PyLong_FromLong(*(const uint8_t *)src);
    case FERRY_INT8:
        return PyLong_FromLong(*(const int8_t *)src);
    case FERRY_INT16: {
        int16_t v;
        memcpy(&v, src, 2);
        return PyLong_FromLong(v);
    }
    case FERRY_INT32: {
        int32_t v;
        memcpy(&v, src, 4);
        return PyLong_FromLong(v);
    }
    case FERRY_INT64: {
        int64_t v;
        memcpy(&v, src, 8);
        return PyLong_FromLongLong(v);
    }
    case FERRY_FLOAT16: {
        uint16_t h;
        memcpy(&h, src, 2);
        return PyFloat_FromDouble(ferry_f16_to_f32(h));
    }
    case FERRY_BFLOAT16: {
        uint16_t h;
        memcpy(&h, src, 2);
        return PyFloat_FromDouble(ferry_bf16_to_f32(h));
    }
    case FERRY_FLOAT32: {
        float f;
        memcpy(&f, src, 4);
        return PyFloat_FromDouble(f);
    }
    case FERRY_FLOAT64: {
        double d;
        memcpy(&d, src, 8);
        return PyFloat_FromDouble(d);
    }
    }
    PyErr_Format(PyExc_SystemError, "ferry: invalid dtype value %d", (int)dtype);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Scalar operands and fills                                                */
/* ------------------------------------------------------------------------ */

int fpy_scalar(PyObject *o, ferry_scalar *out)
{
    /* The common operands first, without the kind lookup. */
    if (PyFloat_CheckExact(o)) {
        out->kind = FERRY_SCALAR_FLOAT;
        out->value.f = PyFloat_AS_DOUBLE(o);
        return 0;
    }
    int kind = PyLong_CheckExact(o) ? FPY_KIND_INT : fpy_scalar_kind(o);
    if (kind == FPY_KIND_BOOL) {
        int b = PyObject_IsTrue(o);
        if (b < 0)
            return -1;
        out->kind = FERRY_SCALAR_BOOL;
        out->value.b = b;
        return 0;
    }
    if (kind == FPY_KIND_INT) {
        /* NumPy's integers are not ints: __index__ gives one. */
        PyObject *i = PyLong_Check(o) ? Py_NewRef(o) : PyNumber_Index(o);
        if (!i)
            return -1;
        int over = 0;
        long long v = PyLong_AsLongLongAndOverflow(i, &over);
        Py_DECREF(i);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (over) {
            /* PyTorch takes 2**63 .. 2**64-1 as uint64 and refuses the rest with an
             * OverflowError; ferry's integer scalars are int64 only. */
            PyErr_SetString(PyExc_OverflowError,
                            "Overflow when unpacking long: a Python int operand must fit in "
                            "int64 (-2**63 .. 2**63-1)");
            return -1;
        }
        out->kind = FERRY_SCALAR_INT;
        out->value.i = v;
        return 0;
    }
    if (kind == FPY_KIND_FLOAT) {
        double v = PyFloat_AsDouble(o);
        if (v == -1.0 && PyErr_Occurred())
            return -1;
        out->kind = FERRY_SCALAR_FLOAT;
        out->value.f = v;
        return 0;
    }
    return 1;
}

/* An element as the double ferry_tensor_fill turns back into the same element; false
 * for int64 values beyond 2^53, which a double cannot hold. */
static bool element_double(ferry_dtype dtype, const unsigned char *p, double *out)
{
    switch (dtype) {
    case FERRY_BOOL: *out = p[0] != 0; return true;
    case FERRY_UINT8: *out = p[0]; return true;
    case FERRY_INT8: *out = (int8_t)p[0]; return true;
    case FERRY_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return true;
    }
    case FERRY_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    case FERRY_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        *out = (double)v;
        return v >= -(INT64_C(1) << 53) && v <= (INT64_C(1) << 53);
    }
    case FERRY_FLOAT16: {
        uint16_t h;
        memcpy(&h, p, 2);
        *out = ferry_f16_to_f32(h);
        return true;
    }
    case FERRY_BFLOAT16: {
        uint16_t h;
        memcpy(&h, p, 2);
        *out = ferry_bf16_to_f32(h);
        return true;
    }
    case FERRY_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        *out = f;
        return true;
    }
    case FERRY_FLOAT64:
        memcpy(out, p, 8);
        return true;
    }
    return false;
}

int fpy_fill(ferry_tensor *t, PyObject *value)
{
    ferry_dtype dt = ferry_tensor_dtype(t);
    unsigned char elem[8];
    if (fpy_store_checked(dt, value, elem) < 0)
        return -1;
    double d;
    ferry_status st;
    bool block = fpy_may_block(t);
    if (element_double(dt, elem, &d)) {
        FPY_MAYBE_NOGIL(block, st = ferry_tensor_fill(t, d));
    } else {
        /* ferry_tensor_fill takes a double: an int64 beyond 2^53 is copied from a
         * 0-d host tensor instead, which keeps every bit. */
        ferry_tensor *src = ferry_tensor_from_data(elem, dt, 0, NULL, "cpu");
        if (!src) {
            fpy_error();
            return -1;
        }
        FPY_MAYBE_NOGIL(block, st = ferry_tensor_copy_from(t, src));
        ferry_tensor_release(src);
    }
    if (st != FERRY_OK) {
        fpy_error();
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* ferry.tensor(data)                                                       */
/* ------------------------------------------------------------------------ */

/* Lists and tuples nest, and so do NumPy arrays of one or more dims (PyTorch accepts
 * [np.ones(2), np.ones(2)]); other containers are leaves, so a string or a dict gets
 * "Could not infer dtype of ...". */
static bool is_list(PyObject *o)
{
    return PyList_Check(o) || PyTuple_Check(o);
}

static bool is_nested(PyObject *o)
{
    if (is_list(o))
        return true;
    if (!fpy_is_ndarray(o))
        return false;
    /* len() of a 0-d array fails: it is a leaf, as a NumPy scalar. */
    if (PyObject_Size(o) < 0) {
        PyErr_Clear();
        return false;
    }
    return true;
}

/* PyTorch's promoteTypes over ferry's dtypes: the higher category wins (bool < int <
 * float) with its dtype; within one, the wider, except uint8 with int8 (int16) and
 * float16 with bfloat16 (float32). */
static ferry_dtype promote(ferry_dtype a, ferry_dtype b)
{
    if (a == b)
        return a;
    int ka = fpy_dtype_kind(a), kb = fpy_dtype_kind(b);
    if (ka != kb)
        return ka > kb ? a : b;
    if ((a == FERRY_UINT8 && b == FERRY_INT8) || (a == FERRY_INT8 && b == FERRY_UINT8))
        return FERRY_INT16;
    if ((a == FERRY_FLOAT16 && b == FERRY_BFLOAT16) || (a == FERRY_BFLOAT16 && b == FERRY_FLOAT16))
        return FERRY_FLOAT32;
    if (a == FERRY_UINT8 || b == FERRY_UINT8)
        return a == FERRY_UINT8 ? b : a;
    return ferry_dtype_size(a) >= ferry_dtype_size(b) ? a : b;
}

/* The dtype of a NumPy scalar or array from its dtype's kind and itemsize; a kind ferry
 * lacks (uint16, longdouble, ...) falls back to its category's default. -1 with an
 * exception when o has no usable dtype. */
static int numpy_dtype(PyObject *o, ferry_dtype *out)
{
    PyObject *dt = PyObject_GetAttrString(o, "dtype");
    PyObject *kind = dt ? PyObject_GetAttrString(dt, "kind") : NULL;
    PyObject *size = dt ? PyObject_GetAttrString(dt, "itemsize") : NULL;
    const char *k = kind ? PyUnicode_AsUTF8(kind) : NULL;
    long n = size ? PyLong_AsLong(size) : -1;
    Py_XDECREF(dt);
    Py_XDECREF(kind);
    Py_XDECREF(size);
    if (!k || (n == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "Could not infer dtype of %s", Py_TYPE(o)->tp_name);
        return -1;
    }
    switch (k[0]) {
    case 'b': *out = FERRY_BOOL; return 0;
    case 'u': *out = n == 1 ? FERRY_UINT8 : FERRY_INT64; return 0;
    case 'i':
        *out = n == 1 ? FERRY_INT8 : n == 2 ? FERRY_INT16 : n == 4 ? FERRY_INT32 : FERRY_INT64;
        return 0;
    case 'f':
        *out = n == 2 ? FERRY_FLOAT16 : n == 4 ? FERRY_FLOAT32 : FERRY_FLOAT64;
        return 0;
    default:
        PyErr_Format(PyExc_TypeError, "Could not infer dtype of %s (NumPy dtype kind '%s')",
                     Py_TYPE(o)->tp_name, k);
        return -1;
    }
}

/* PyTorch's infer_scalar_type: a Python float is float32, an int int64, a bool bool; a
 * NumPy scalar or array and a ferry tensor bring their own dtype; an empty sequence
 * counts as float32; a sequence promotes over all of its items. */
static int infer_dtype(PyObject *o, int depth, ferry_dtype *out)
{
    if (PyFloat_Check(o) && !fpy_is_ndarray(o) && strncmp(Py_TYPE(o)->tp_name, "numpy.", 6) != 0) {
        *out = fpy_default_float;
        return 0;
    }
    if (PyBool_Check(o)) {
        *out = FERRY_BOOL;
        return 0;
    }
    if (PyLong_Check(o)) {
        *out = FERRY_INT64;
        return 0;
    }
    if (FpyTensor_Check(o)) {
        *out = ferry_tensor_dtype(FPY_T(o));
        return 0;
    }
    if (fpy_is_ndarray(o) || fpy_scalar_kind(o) >= 0)
        return numpy_dtype(o, out);
    if (!is_list(o)) {
        PyErr_Format(PyExc_TypeError, "Could not infer dtype of %s", Py_TYPE(o)->tp_name);
        return -1;
    }
    if (depth >= FERRY_MAX_DIMS) {
        PyErr_Format(PyExc_RuntimeError, "too many dimensions: a tensor has at most %d",
                     FERRY_MAX_DIMS);
        return -1;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(o);
    if (len == 0) {
        *out = fpy_default_float;
        return 0;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        ferry_dtype d;
        if (infer_dtype(PySequence_Fast_GET_ITEM(o, i), depth + 1, &d) < 0)
            return -1;
        *out = i == 0 ? d : promote(*out, d);
    }
    return 0;
}

typedef struct {
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
} nest_info;

/* An array's elements as a host tensor of dtype, row-major in *cursor; its shape must be
 * n's from dim on. */
static int fill_array(PyObject *o, int dim, const nest_info *n, ferry_dtype dtype,
                      char **cursor)
{
    Py_buffer view;
    ferry_tensor *a = fpy_tensor_from_buffer(o, false, &view);
    if (!a)
        return -1;
    int rc = -1;
    int nd = ferry_tensor_ndim(a);
    const int64_t *shape = ferry_tensor_shape(a);
    for (int i = 0; i < n->ndim - dim; i++) {
        if (i >= nd) {
            PyErr_Format(PyExc_ValueError, "expected sequence of length %lld at dim %d (got a "
                         "number)", (long long)n->shape[dim + i], dim + i);
            goto done;
        }
        if (shape[i] != n->shape[dim + i]) {
            PyErr_Format(PyExc_ValueError, "expected sequence of length %lld at dim %d (got "
                         "%lld)", (long long)n->shape[dim + i], dim + i, (long long)shape[i]);
            goto done;
        }
    }
    if (nd > n->ndim - dim) {
        PyErr_Format(PyExc_TypeError, "expected a number at dim %d (got an array of %d dims)",
                     n->ndim, nd - (n->ndim - dim));
        goto done;
    }
    ferry_tensor *c = ferry_tensor_to_dtype(a, dtype);
    size_t nbytes = (size_t)ferry_tensor_numel(a) * ferry_dtype_size(dtype);
    if (!c || ferry_tensor_copy_to_host(c, *cursor, nbytes) != FERRY_OK) {
        fpy_error();
        ferry_tensor_release(c);
        goto done;
    }
    ferry_tensor_release(c);
    *cursor += nbytes;
    rc = 0;
done:
    ferry_tensor_release(a);
    PyBuffer_Release(&view);
    return rc;
}

/* Stores every element in row-major order, checking that sequence lengths match the
 * shape the first elements gave; PyTorch's errors: ValueError for a length, TypeError
 * for a number where a sequence belongs and the reverse. */
static int nest_fill(PyObject *o, int dim, const nest_info *n, ferry_dtype dtype, char **cursor)
{
    if (dim == n->ndim) {
        if (is_nested(o)) {
            PyErr_Format(PyExc_TypeError, "expected a number at dim %d (got a sequence of "
                         "length %zd)", dim, PyObject_Size(o));
            return -1;
        }
        if (FpyTensor_Check(o) && ferry_tensor_numel(FPY_T(o)) != 1) {
            PyErr_SetString(PyExc_ValueError, "only one element tensors can be converted to "
                                              "Python scalars");
            return -1;
        }
        PyObject *v = FpyTensor_Check(o) ? fpy_item(FPY_T(o)) : Py_NewRef(o);
        if (!v)
            return -1;
        int rc = fpy_store(dtype, v, *cursor);
        Py_DECREF(v);
        *cursor += ferry_dtype_size(dtype);
        return rc;
    }
    if (!is_list(o)) {
        if (is_nested(o))
            return fill_array(o, dim, n, dtype, cursor);
        PyErr_Format(PyExc_TypeError, "not a sequence: expected a sequence of length %lld at "
                     "dim %d (got %s)", (long long)n->shape[dim], dim, Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(o);
    if (len != n->shape[dim]) {
        PyErr_Format(PyExc_ValueError, "expected sequence of length %lld at dim %d (got %zd)",
                     (long long)n->shape[dim], dim, len);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++)
        if (nest_fill(PySequence_Fast_GET_ITEM(o, i), dim + 1, n, dtype, cursor) < 0)
            return -1;
    return 0;
}

/* The shape the first elements give, as PyTorch reads it: an array's whole shape. */
static int nest_shape(PyObject *data, nest_info *n)
{
    for (PyObject *o = data; is_nested(o);) {
        if (!is_list(o)) {
            PyObject *shape = PyObject_GetAttrString(o, "shape");
            if (!shape)
                return -1;
            Py_ssize_t nd = PyTuple_Check(shape) ? PyTuple_GET_SIZE(shape) : -1;
            for (Py_ssize_t i = 0; i < nd; i++) {
                if (n->ndim == FERRY_MAX_DIMS)
                    break;
                n->shape[n->ndim++] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, i));
            }
            Py_DECREF(shape);
            if (nd < 0 || PyErr_Occurred())
                return -1;
            if (n->ndim == FERRY_MAX_DIMS && nd > 0)
                break;
            return 0;
        }
        if (n->ndim == FERRY_MAX_DIMS) {
            PyErr_Format(PyExc_RuntimeError, "too many dimensions: a tensor has at most %d",
                         FERRY_MAX_DIMS);
            return -1;
        }
        Py_ssize_t len = PySequence_Fast_GET_SIZE(o);
        n->shape[n->ndim++] = len;
        if (len == 0)
            break;
        o = PySequence_Fast_GET_ITEM(o, 0);
    }
    return 0;
}

static ferry_tensor *from_nested(PyObject *data, const ferry_dtype *dtype, const char *device)
{
    nest_info n = {.ndim = 0};
    ferry_dtype inferred;
    if (infer_dtype(data, 0, &inferred) < 0 || nest_shape(data, &n) < 0)
        return NULL;
    ferry_dtype dt = dtype ? *dtype : inferred;
    int64_t numel = 1;
    for (int i = 0; i < n.ndim; i++)
        if (__builtin_mul_overflow(numel, n.shape[i], &numel))
            return (ferry_tensor *)PyErr_NoMemory();
    size_t nbytes = (size_t)numel * ferry_dtype_size(dt);
    char *buf = PyMem_Malloc(nbytes ? nbytes : 1);
    if (!buf) {
        PyErr_NoMemory();
        return NULL;
    }
    char *cursor = buf;
    ferry_tensor *t = NULL;
    /* As PyTorch: with no elements nothing is stored, so nothing past the first
     * elements is checked ([[], [1]] has shape (2, 0)). */
    if (numel == 0 || nest_fill(data, 0, &n, dt, &cursor) == 0) {
        bool block = device && strcmp(device, "cpu") != 0;
        FPY_MAYBE_NOGIL(block, t = ferry_tensor_from_data(buf, dt, n.ndim, n.shape, device));
        if (!t)
            fpy_error();
    }
    PyMem_Free(buf);
    return t;
}

/* A copy of src converted to dtype and placed on device (either may be absent); a copy
 * even when neither changes anything. Does not require grad, as torch.tensor(t). */
static ferry_tensor *copy_of(ferry_tensor *src, const ferry_dtype *dtype, const char *device)
{
    ferry_tensor *cur = ferry_tensor_retain(src), *next;
    bool block = fpy_may_block(src) || (device && strcmp(device, "cpu") != 0);
    if (dtype) {
        FPY_MAYBE_NOGIL(block, next = ferry_tensor_to_dtype(cur, *dtype));
        ferry_tensor_release(cur);
        if (!(cur = next))
            goto fail;
    }
    if (device) {
        FPY_MAYBE_NOGIL(block, next = ferry_tensor_to(cur, device));
        ferry_tensor_release(cur);
        if (!(cur = next))
            goto fail;
    }
    if (cur == src) {
        FPY_MAYBE_NOGIL(block, next = ferry_tensor_clone(cur));
        ferry_tensor_release(cur);
        if (!(cur = next))
            goto fail;
    }
    /* The source's memory may be released as soon as this returns, so a copy still
     * queued on a device must have read it. */
    if (device && strcmp(device, "cpu") != 0) {
        ferry_status st;
        FPY_MAYBE_NOGIL(true, st = ferry_synchronize(device));
        if (st != FERRY_OK) {
            ferry_tensor_release(cur);
            goto fail;
        }
    }
    if (ferry_tensor_requires_grad(cur)) { /* torch.tensor(t) is t.clone().detach() */
        next = ferry_tensor_detach(cur);
        ferry_tensor_release(cur);
        if (!(cur = next))
            goto fail;
    }
    return cur;
fail:
    fpy_error();
    return NULL;
}

ferry_tensor *fpy_tensor_from_data(PyObject *data, const ferry_dtype *dtype, const char *device)
{
    if (FpyTensor_Check(data))
        return copy_of(FPY_T(data), dtype, device);
    if (PyObject_CheckBuffer(data) && !PyBytes_Check(data)) {
        Py_buffer view;
        ferry_tensor *wrapped = fpy_tensor_from_buffer(data, false, &view);
        if (!wrapped)
            return NULL;
        ferry_tensor *t = copy_of(wrapped, dtype, device);
        ferry_tensor_release(wrapped);
        PyBuffer_Release(&view);
        return t;
    }
    return from_nested(data, dtype, device);
}

/* ------------------------------------------------------------------------ */
/* tolist() and item()                                                      */
/* ------------------------------------------------------------------------ */

/* t's elements, row-major, in a PyMem buffer; the copy runs without the GIL when it
 * crosses a device. */
static char *host_copy(ferry_tensor *t, size_t *nbytes)
{
    *nbytes = ferry_tensor_nbytes(t);
    char *buf = PyMem_Malloc(*nbytes ? *nbytes : 1);
    if (!buf) {
        PyErr_NoMemory();
        return NULL;
    }
    ferry_status st;
    FPY_MAYBE_NOGIL(fpy_may_block(t), st = ferry_tensor_copy_to_host(t, buf, *nbytes));
    if (st != FERRY_OK) {
        PyMem_Free(buf);
        fpy_error();
        return NULL;
    }
    return buf;
}

static PyObject *build_list(const int64_t *shape, int ndim, int dim, ferry_dtype dtype,
                            const char **cursor)
{
    if (dim == ndim) {
        PyObject *v = fpy_load(dtype, *cursor);
        *cursor += ferry_dtype_size(dtype);
        return v;
    }
    PyObject *list = PyList_New((Py_ssize_t)shape[dim]);
    for (int64_t i = 0; list && i < shape[dim]; i++) {
        PyObject *item = build_list(shape, ndim, dim + 1, dtype, cursor);
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

PyObject *fpy_tolist(ferry_tensor *t)
{
    size_t nbytes;
    char *buf = host_copy(t, &nbytes);
    if (!buf)
        return NULL;
    const char *cursor = buf;
    PyObject *r = build_list(ferry_tensor_shape(t), ferry_tensor_ndim(t), 0,
                             ferry_tensor_dtype(t), &cursor);
    PyMem_Free(buf);
    return r;
}

PyObject *fpy_item(ferry_tensor *t)
{
    int64_t n = ferry_tensor_numel(t);
    if (n != 1) {
        PyErr_Format(PyExc_RuntimeError,
                     "a Tensor with %lld elements cannot be converted to Scalar", (long long)n);
        return NULL;
    }
    size_t nbytes;
    char *buf = host_copy(t, &nbytes);
    if (!buf)
        return NULL;
    PyObject *r = fpy_load(ferry_tensor_dtype(t), buf);
    PyMem_Free(buf);
    return r;
}

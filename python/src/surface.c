/* The everyday PyTorch surface over ops that already exist: casts (.float() ...),
 * .t()/.T/.mT, the *_as and new_* helpers, in-place unary ops, pow_, data_ptr,
 * storage_offset, as_strided, nelement, and pickling through ferry/_surface.py.
 * Added to ferry.Tensor's dict as autograd.c adds its methods. */
#include "ferry_py.h"

#include <string.h>

#define CF(f) ((PyCFunction)(void (*)(void))(f))
#define KW (METH_VARARGS | METH_KEYWORDS)

/* ---- casts ---- */

static PyObject *cast(PyObject *self, ferry_dtype dt)
{
    ferry_tensor *t = FPY_T(self);
    if (ferry_tensor_dtype(t) == dt)
        return Py_NewRef(self);
    ferry_tensor *r;
    FPY_MAYBE_NOGIL(fpy_may_block(t), r = ferry_tensor_to_dtype(t, dt));
    return fpy_wrap(r);
}

/* torch's casts take memory_format only; anything positional is refused as theirs. */
#define CAST(name, dt)                                                                 \
    static PyObject *c_##name(PyObject *self, PyObject *args, PyObject *kw)            \
    {                                                                                  \
        static char *kwlist[] = {"memory_format", NULL};                               \
        PyObject *mf = NULL;                                                           \
        if (!PyArg_ParseTupleAndKeywords(args, kw, "|$O:" #name, kwlist, &mf))         \
            return NULL;                                                               \
        return cast(self, dt);                                                         \
    }
CAST(float, FERRY_FLOAT32)
CAST(double, FERRY_FLOAT64)
CAST(half, FERRY_FLOAT16)
CAST(bfloat16, FERRY_BFLOAT16)
CAST(long, FERRY_INT64)
CAST(int, FERRY_INT32)
CAST(short, FERRY_INT16)
CAST(char, FERRY_INT8)
CAST(byte, FERRY_UINT8)
CAST(bool, FERRY_BOOL)

static PyObject *s_type_as(PyObject *self, PyObject *other)
{
    if (!FpyTensor_Check(other)) {
        PyErr_Format(PyExc_TypeError, "type_as(): argument 'other' (position 1) must be Tensor, "
                                      "not %s",
                     Py_TYPE(other)->tp_name);
        return NULL;
    }
    return cast(self, ferry_tensor_dtype(FPY_T(other)));
}

/* ---- transposes ---- */

static PyObject *s_t(PyObject *self, PyObject *unused)
{
    (void)unused;
    ferry_tensor *t = FPY_T(self);
    int nd = ferry_tensor_ndim(t);
    if (nd > 2) {
        PyErr_Format(PyExc_RuntimeError,
                     "t() expects a tensor with <= 2 dimensions, but self is %dD", nd);
        return NULL;
    }
    if (nd < 2)
        return fpy_wrap(ferry_view(t, nd, ferry_tensor_shape(t)));
    return fpy_wrap(ferry_transpose(t, 0, 1));
}

static PyObject *get_T(PyObject *self, void *closure)
{
    (void)closure;
    ferry_tensor *t = FPY_T(self);
    int nd = ferry_tensor_ndim(t), dims[FERRY_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        dims[i] = nd - 1 - i;
    return fpy_wrap(ferry_permute(t, nd, dims));
}

static PyObject *get_mT(PyObject *self, void *closure)
{
    (void)closure;
    ferry_tensor *t = FPY_T(self);
    int nd = ferry_tensor_ndim(t);
    if (nd < 2) {
        PyErr_Format(PyExc_RuntimeError,
                     "tensor.mT is only supported on matrices or batches of matrices. Got %d-D "
                     "tensor.",
                     nd);
        return NULL;
    }
    return fpy_wrap(ferry_transpose(t, nd - 2, nd - 1));
}

/* ---- *_as ---- */

static PyObject *shape_as(PyObject *self, PyObject *other, const char *method, const char *fn)
{
    if (!FpyTensor_Check(other)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'other' (position 1) must be Tensor, not %s",
                     fn, Py_TYPE(other)->tp_name);
        return NULL;
    }
    PyObject *shape = PyObject_GetAttrString(other, "shape");
    if (!shape)
        return NULL;
    PyObject *r = PyObject_CallMethod(self, method, "O", shape);
    Py_DECREF(shape);
    return r;
}

static PyObject *s_view_as(PyObject *s, PyObject *o) { return shape_as(s, o, "view", "view_as"); }
static PyObject *s_reshape_as(PyObject *s, PyObject *o) { return shape_as(s, o, "reshape", "reshape_as"); }
static PyObject *s_expand_as(PyObject *s, PyObject *o) { return shape_as(s, o, "expand", "expand_as"); }

/* ---- new_* : the module's factories with self's dtype and device by default ---- */

static PyObject *factory_module; /* ferry._ferry, kept from fpy_surface_init */

static PyObject *call_factory(PyObject *self, const char *name, PyObject *args, PyObject *kw,
                              bool want_dtype_default)
{
    /* The module kept rather than imported per call, and self's dtype and device made as
     * their getters make them: the lookups cost more than the factory. */
    PyObject *fn = PyObject_GetAttrString(factory_module, name);
    if (!fn)
        return NULL;
    PyObject *kwargs = kw ? PyDict_Copy(kw) : PyDict_New();
    PyObject *r = NULL;
    if (!kwargs)
        goto done;
    PyObject *dt = PyDict_GetItemString(kwargs, "dtype");
    if ((!dt || dt == Py_None) && want_dtype_default) {
        PyObject *d = fpy_dtype_object(ferry_tensor_dtype(FPY_T(self)));
        if (!d || PyDict_SetItemString(kwargs, "dtype", d) < 0) {
            Py_XDECREF(d);
            goto done;
        }
        Py_DECREF(d);
    }
    PyObject *dv = PyDict_GetItemString(kwargs, "device");
    if (!dv || dv == Py_None) {
        PyObject *d = fpy_device_object(ferry_tensor_device(FPY_T(self)));
        if (!d || PyDict_SetItemString(kwargs, "device", d) < 0) {
            Py_XDECREF(d);
            goto done;
        }
        Py_DECREF(d);
    }
    r = PyObject_Call(fn, args, kwargs);
done:
    Py_XDECREF(kwargs);
    Py_DECREF(fn);
    return r;
}

static PyObject *s_new_zeros(PyObject *s, PyObject *a, PyObject *k) { return call_factory(s, "zeros", a, k, true); }
static PyObject *s_new_ones(PyObject *s, PyObject *a, PyObject *k) { return call_factory(s, "ones", a, k, true); }
static PyObject *s_new_empty(PyObject *s, PyObject *a, PyObject *k) { return call_factory(s, "empty", a, k, true); }
static PyObject *s_new_full(PyObject *s, PyObject *a, PyObject *k) { return call_factory(s, "full", a, k, true); }
static PyObject *s_new_tensor(PyObject *s, PyObject *a, PyObject *k)
{
    /* torch: "the returned Tensor has the same torch.dtype and torch.device as this". */
    return call_factory(s, "tensor", a, k, true);
}

/* ---- in place ---- */

typedef ferry_status (*unary_out)(ferry_tensor *, ferry_tensor *);

static PyObject *unary_inplace(PyObject *self, unary_out f)
{
    ferry_tensor *t = FPY_T(self);
    ferry_status st;
    FPY_MAYBE_NOGIL(fpy_obj_may_block(self), st = f(t, t));
    return st == FERRY_OK ? Py_NewRef(self) : fpy_error();
}

#define UNARY_(name)                                                       \
    static PyObject *u_##name##_(PyObject *self, PyObject *unused)         \
    {                                                                      \
        (void)unused;                                                      \
        return unary_inplace(self, ferry_##name##_out);                    \
    }
UNARY_(neg)
UNARY_(abs)
UNARY_(exp)
UNARY_(log)
UNARY_(sqrt)
UNARY_(sin)
UNARY_(cos)
UNARY_(tanh)
UNARY_(sigmoid)
UNARY_(relu)

static PyObject *s_zero_(PyObject *self, PyObject *unused)
{
    (void)unused;
    /* fill_(0) without looking the method up and calling it by name: 0 is a number, so
     * fill_ would go straight to fpy_fill. */
    PyObject *zero = PyLong_FromLong(0);
    if (!zero)
        return NULL;
    int rc = fpy_fill(FPY_T(self), zero);
    Py_DECREF(zero);
    return rc < 0 ? NULL : Py_NewRef(self);
}

static PyObject *s_pow_(PyObject *self, PyObject *other)
{
    ferry_tensor *t = FPY_T(self);
    ferry_status st;
    if (FpyTensor_Check(other)) {
        FPY_MAYBE_NOGIL(fpy_obj_may_block(self), st = ferry_pow_out(t, t, FPY_T(other)));
    } else {
        ferry_scalar s;
        int rc = fpy_scalar(other, &s);
        if (rc != 0) {
            if (rc > 0)
                PyErr_Format(PyExc_TypeError,
                             "pow_(): argument 'exponent' must be a Tensor or a number, not %s",
                             Py_TYPE(other)->tp_name);
            return NULL;
        }
        FPY_MAYBE_NOGIL(fpy_obj_may_block(self), st = ferry_pow_scalar_ex_out(t, t, s));
    }
    return st == FERRY_OK ? Py_NewRef(self) : fpy_error();
}

/* ---- sum/mean(dtype=): the input is cast first, as torch; then tensor.c's method ---- */

/* tensor.c's sum and mean, called as C functions: going through their descriptors
 * (binding a method object, then calling it) cost more than the reduction itself on a
 * small tensor. */
typedef PyObject *(*method_kw_fn)(PyObject *, PyObject *, PyObject *);
static method_kw_fn orig_sum, orig_mean;

static PyObject *with_dtype(method_kw_fn orig, PyObject *self, PyObject *args, PyObject *kw)
{
    PyObject *dt = kw ? PyDict_GetItemString(kw, "dtype") : NULL;
    if (!dt)
        return orig(self, args, kw);
    PyObject *kw2 = NULL, *src = self, *r = NULL;
    ferry_dtype d;
    if (dt != Py_None && !fpy_dtype_converter(dt, &d))
        return NULL;
    if (!(kw2 = PyDict_Copy(kw)) || PyDict_DelItemString(kw2, "dtype") < 0)
        goto done;
    if (dt == Py_None)
        Py_INCREF(src);
    else if (!(src = cast(self, d)))
        goto done;
    r = orig(src, args, kw2);
    Py_DECREF(src);
    /* An integer sum accumulates in int64 in C; torch's result has dtype itself, which
     * the wrap-around of a narrower sum matches. */
    if (r && dt != Py_None && FpyTensor_Check(r)) {
        PyObject *c = cast(r, d);
        Py_SETREF(r, c);
    }
done:
    Py_XDECREF(kw2);
    return r;
}

static PyObject *s_sum(PyObject *s, PyObject *a, PyObject *k) { return with_dtype(orig_sum, s, a, k); }
static PyObject *s_mean(PyObject *s, PyObject *a, PyObject *k) { return with_dtype(orig_mean, s, a, k); }

/* ---- geometry ---- */

static PyObject *s_data_ptr(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t((size_t)ferry_tensor_data_ptr(FPY_T(self)));
}

static PyObject *s_storage_offset(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLongLong(ferry_tensor_storage_offset(FPY_T(self)));
}

static PyObject *s_nelement(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLongLong(ferry_tensor_numel(FPY_T(self)));
}

static PyObject *s_as_strided(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"size", "stride", "storage_offset", NULL};
    PyObject *size, *stride, *off = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:as_strided", kwlist, &size, &stride, &off))
        return NULL;
    int n1, n2;
    int64_t shape[FERRY_MAX_DIMS], strides[FERRY_MAX_DIMS], o;
    PyObject *t1 = PyTuple_Pack(1, size), *t2 = t1 ? PyTuple_Pack(1, stride) : NULL;
    int rc = t2 ? 0 : -1;
    if (rc == 0 && fpy_int64_list(t1, "as_strided", "size", &n1, shape) < 0)
        rc = -1;
    if (rc == 0 && fpy_int64_list(t2, "as_strided", "stride", &n2, strides) < 0)
        rc = -1;
    Py_XDECREF(t1);
    Py_XDECREF(t2);
    if (rc < 0)
        return NULL;
    if (n1 != n2) {
        PyErr_Format(PyExc_RuntimeError, "mismatch in length of strides and shape");
        return NULL;
    }
    if (off == Py_None)
        o = ferry_tensor_storage_offset(FPY_T(self));
    else if (fpy_int64(off, &o) < 0)
        return NULL;
    return fpy_wrap(ferry_as_strided(FPY_T(self), n1, shape, strides, o));
}

/* ---- pickling: ferry._surface holds the (Python) format ---- */

static PyObject *s_reduce_ex(PyObject *self, PyObject *proto)
{
    (void)proto;
    PyObject *mod = PyImport_ImportModule("ferry._surface");
    if (!mod)
        return NULL;
    PyObject *r = PyObject_CallMethod(mod, "_reduce", "O", self);
    Py_DECREF(mod);
    return r;
}

static PyObject *s_deepcopy(PyObject *self, PyObject *memo)
{
    (void)memo;
    PyObject *mod = PyImport_ImportModule("ferry._surface");
    if (!mod)
        return NULL;
    PyObject *r = PyObject_CallMethod(mod, "_deepcopy", "O", self);
    Py_DECREF(mod);
    return r;
}

static PyGetSetDef surface_getset[] = {
    {"T", get_T, NULL, "all dims reversed (a view)", NULL},
    {"mT", get_mT, NULL, "the last two dims transposed (a view)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef surface_methods[] = {
    {"float", CF(c_float), KW, "a float32 copy (self when already float32)"},
    {"double", CF(c_double), KW, "a float64 copy (self when already float64)"},
    {"half", CF(c_half), KW, "a float16 copy (self when already float16)"},
    {"bfloat16", CF(c_bfloat16), KW, "a bfloat16 copy (self when already bfloat16)"},
    {"long", CF(c_long), KW, "an int64 copy (self when already int64)"},
    {"int", CF(c_int), KW, "an int32 copy (self when already int32)"},
    {"short", CF(c_short), KW, "an int16 copy (self when already int16)"},
    {"char", CF(c_char), KW, "an int8 copy (self when already int8)"},
    {"byte", CF(c_byte), KW, "a uint8 copy (self when already uint8)"},
    {"bool", CF(c_bool), KW, "a bool copy (self when already bool)"},
    {"type_as", s_type_as, METH_O, "type_as(other): self cast to other's dtype"},
    {"t", s_t, METH_NOARGS, "t(): the transpose of a matrix; 0-d and 1-d as they are"},
    {"view_as", s_view_as, METH_O, "view_as(other): view(other.shape)"},
    {"reshape_as", s_reshape_as, METH_O, "reshape_as(other): reshape(other.shape)"},
    {"expand_as", s_expand_as, METH_O, "expand_as(other): expand(other.shape)"},
    {"new_zeros", CF(s_new_zeros), KW, "new_zeros(*size, dtype=None, device=None, ...)"},
    {"new_ones", CF(s_new_ones), KW, "new_ones(*size, dtype=None, device=None, ...)"},
    {"new_empty", CF(s_new_empty), KW, "new_empty(*size, dtype=None, device=None, ...)"},
    {"new_full", CF(s_new_full), KW, "new_full(size, fill_value, dtype=None, device=None, ...)"},
    {"new_tensor", CF(s_new_tensor), KW, "new_tensor(data, dtype=None, device=None, ...)"},
    {"neg_", u_neg_, METH_NOARGS, "in place"},
    {"abs_", u_abs_, METH_NOARGS, "in place"},
    {"exp_", u_exp_, METH_NOARGS, "in place"},
    {"log_", u_log_, METH_NOARGS, "in place"},
    {"sqrt_", u_sqrt_, METH_NOARGS, "in place"},
    {"sin_", u_sin_, METH_NOARGS, "in place"},
    {"cos_", u_cos_, METH_NOARGS, "in place"},
    {"tanh_", u_tanh_, METH_NOARGS, "in place"},
    {"sigmoid_", u_sigmoid_, METH_NOARGS, "in place"},
    {"relu_", u_relu_, METH_NOARGS, "in place"},
    {"zero_", s_zero_, METH_NOARGS, "fills with zeros in place"},
    {"pow_", s_pow_, METH_O, "pow_(exponent): in place"},
    {"data_ptr", s_data_ptr, METH_NOARGS,
     "address of the first element (host), or the device buffer handle plus offset"},
    {"storage_offset", s_storage_offset, METH_NOARGS, "first element's offset in its storage"},
    {"nelement", s_nelement, METH_NOARGS, "number of elements (numel)"},
    {"as_strided", CF(s_as_strided), KW, "as_strided(size, stride, storage_offset=None)"},
    {"sum", CF(s_sum), KW, "sum(dim=None, keepdim=False, *, dtype=None)"},
    {"mean", CF(s_mean), KW, "mean(dim=None, keepdim=False, *, dtype=None)"},
    {"__reduce_ex__", s_reduce_ex, METH_O, NULL},
    {"__deepcopy__", s_deepcopy, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- default dtype (the checks live in ferry/_surface.py) ---- */

static PyObject *mod_set_default_float(PyObject *mod, PyObject *arg)
{
    (void)mod;
    ferry_dtype dt;
    if (!fpy_dtype_converter(arg, &dt))
        return NULL;
    if (dt != FERRY_FLOAT32 && dt != FERRY_FLOAT64) {
        PyErr_SetString(PyExc_TypeError, "only floating-point types are supported as the default type");
        return NULL;
    }
    fpy_default_float = dt;
    Py_RETURN_NONE;
}

static PyObject *mod_get_default_float(PyObject *mod, PyObject *unused)
{
    (void)mod, (void)unused;
    return fpy_dtype_object(fpy_default_float);
}

/* ---- out= forms: _out(name, out, input, other) for the module functions ---- */

typedef struct {
    const char *name;
    ferry_status (*tt)(ferry_tensor *, ferry_tensor *, ferry_tensor *);
    ferry_status (*ts)(ferry_tensor *, ferry_tensor *, ferry_scalar);
} binary_out_entry;

#define BIN_ENTRY_(n) {#n, ferry_##n##_out, ferry_##n##_scalar_ex_out},
static const binary_out_entry binary_outs[] = {FERRY_BINARY_OPS_(BIN_ENTRY_){NULL, NULL, NULL}};
#define UN_ENTRY_(n) {#n, ferry_##n##_out},
static const struct {
    const char *name;
    unary_out f;
} unary_outs[] = {FERRY_UNARY_OPS_(UN_ENTRY_){NULL, NULL}};

static PyObject *mod_out(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *name;
    PyObject *out, *a, *b = Py_None;
    if (!PyArg_ParseTuple(args, "sOO|O:_out", &name, &out, &a, &b))
        return NULL;
    if (!FpyTensor_Check(out) || !FpyTensor_Check(a)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'out' and 'input' must be Tensors", name);
        return NULL;
    }
    ferry_status st = FERRY_ERR_UNSUPPORTED;
    bool found = false;
    ferry_tensor *to = FPY_T(out), *ta = FPY_T(a);
    if (!strcmp(name, "matmul")) {
        if (!FpyTensor_Check(b)) {
            PyErr_SetString(PyExc_TypeError, "matmul(): argument 'other' must be a Tensor");
            return NULL;
        }
        found = true;
        FPY_MAYBE_NOGIL(true, st = ferry_matmul_out(to, ta, FPY_T(b)));
    }
    for (int i = 0; !found && binary_outs[i].name; i++)
        if (!strcmp(name, binary_outs[i].name)) {
            found = true;
            if (FpyTensor_Check(b)) {
                FPY_MAYBE_NOGIL(true, st = binary_outs[i].tt(to, ta, FPY_T(b)));
            } else {
                ferry_scalar sc;
                int rc = fpy_scalar(b, &sc);
                if (rc != 0) {
                    if (rc > 0)
                        PyErr_Format(PyExc_TypeError,
                                     "%s(): argument 'other' must be a Tensor or a number, not %s",
                                     name, Py_TYPE(b)->tp_name);
                    return NULL;
                }
                FPY_MAYBE_NOGIL(true, st = binary_outs[i].ts(to, ta, sc));
            }
        }
    for (int i = 0; !found && unary_outs[i].name; i++)
        if (!strcmp(name, unary_outs[i].name)) {
            found = true;
            FPY_MAYBE_NOGIL(true, st = unary_outs[i].f(to, ta));
        }
    if (!found) {
        PyErr_Format(PyExc_ValueError, "_out: no out= form for %s", name);
        return NULL;
    }
    return st == FERRY_OK ? Py_NewRef(out) : fpy_error();
}

/* _reduce_out(name, out, input, dims, keepdim) */
static PyObject *mod_reduce_out(PyObject *mod, PyObject *args)
{
    (void)mod;
    const char *name;
    PyObject *out, *a, *dimseq;
    int keepdim;
    if (!PyArg_ParseTuple(args, "sO!O!Op:_reduce_out", &name, &FpyTensor_Type, &out,
                          &FpyTensor_Type, &a, &dimseq, &keepdim))
        return NULL;
    ferry_status (*f)(ferry_tensor *, ferry_tensor *, int, const int *, bool) =
        !strcmp(name, "sum") ? ferry_sum_out : !strcmp(name, "mean") ? ferry_mean_out
        : !strcmp(name, "amax") ? ferry_max_out : !strcmp(name, "amin") ? ferry_min_out
        : !strcmp(name, "argmax") ? ferry_argmax_out : NULL;
    if (!f) {
        PyErr_Format(PyExc_ValueError, "_reduce_out: no out= form for %s", name);
        return NULL;
    }
    if (!PyTuple_Check(dimseq)) {
        PyErr_SetString(PyExc_TypeError, "_reduce_out: dims must be a tuple");
        return NULL;
    }
    int n, dims[FERRY_MAX_DIMS];
    int64_t d64[FERRY_MAX_DIMS];
    PyObject *one = PyTuple_Pack(1, dimseq);
    int rc = one ? fpy_int64_list(one, name, "dim", &n, d64) : -1;
    Py_XDECREF(one);
    if (rc < 0)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (fpy_dim(PyTuple_GET_ITEM(dimseq, i), ferry_tensor_ndim(FPY_T(a)), &dims[i]) < 0)
            return NULL;
    }
    ferry_status st;
    FPY_MAYBE_NOGIL(true, st = f(FPY_T(out), FPY_T(a), n, dims, keepdim));
    return st == FERRY_OK ? Py_NewRef(out) : fpy_error();
}

/* ---- raw bytes for save/load and pickling (host byte order, row-major) ---- */

static PyObject *mod_to_bytes(PyObject *mod, PyObject *arg)
{
    (void)mod;
    if (!FpyTensor_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_to_bytes: expected a Tensor");
        return NULL;
    }
    ferry_tensor *t = FPY_T(arg);
    size_t n = (size_t)ferry_tensor_numel(t) * ferry_dtype_size(ferry_tensor_dtype(t));
    if (n > (size_t)PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!b || n == 0)
        return b;
    ferry_status st;
    char *dst = PyBytes_AS_STRING(b);
    /* copy_to_host gathers a strided view densely, from any device. */
    FPY_MAYBE_NOGIL(true, st = ferry_tensor_copy_to_host(t, dst, n));
    if (st != FERRY_OK) {
        Py_DECREF(b);
        return fpy_error();
    }
    return b;
}

/* _from_bytes(buffer, dtype, shape, device): a copy of the bytes as a tensor there. */
static PyObject *mod_from_bytes(PyObject *mod, PyObject *args)
{
    (void)mod;
    Py_buffer view;
    ferry_dtype dt;
    PyObject *shape;
    fpy_device_arg dev = {0};
    if (!PyArg_ParseTuple(args, "y*O&OO&:_from_bytes", &view, fpy_dtype_converter, &dt, &shape,
                          fpy_device_converter, &dev))
        return NULL;
    int nd;
    int64_t sh[FERRY_MAX_DIMS];
    PyObject *one = PyTuple_Pack(1, shape);
    int rc = one ? fpy_int64_list(one, "load", "shape", &nd, sh) : -1;
    Py_XDECREF(one);
    if (rc < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    /* Sizes come from a file: the product must fit and match the byte count exactly. */
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        if (sh[i] < 0 || (sh[i] && numel > UINT64_MAX / (uint64_t)sh[i])) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_ValueError, "load: shape is negative or its size overflows");
            return NULL;
        }
        numel *= (uint64_t)sh[i];
    }
    size_t isz = ferry_dtype_size(dt);
    if (numel > UINT64_MAX / isz || numel * isz != (uint64_t)view.len) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError,
                     "load: %zd bytes of data do not hold a %s tensor of %llu elements",
                     view.len, ferry_dtype_name(dt), (unsigned long long)numel);
        return NULL;
    }
    ferry_tensor *t = ferry_tensor_from_data(view.len ? view.buf : NULL, dt, nd, sh,
                                             dev.given ? dev.str : "cpu");
    PyBuffer_Release(&view);
    return fpy_wrap(t);
}

static PyObject *mod_set_print_options(PyObject *mod, PyObject *args)
{
    (void)mod;
    int precision, linewidth, sci;
    long long threshold, edgeitems;
    if (!PyArg_ParseTuple(args, "iLLii:_set_print_options", &precision, &threshold, &edgeitems,
                          &linewidth, &sci))
        return NULL;
    if (ferry_set_print_options(precision, threshold, edgeitems, linewidth, sci) != FERRY_OK) {
        PyErr_SetString(PyExc_ValueError, ferry_last_error());
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef surface_functions[] = {
    {"_set_print_options", mod_set_print_options, METH_VARARGS, NULL},
    {"_to_bytes", mod_to_bytes, METH_O, NULL},
    {"_from_bytes", mod_from_bytes, METH_VARARGS, NULL},
    {"_out", mod_out, METH_VARARGS, NULL},
    {"_reduce_out", mod_reduce_out, METH_VARARGS, NULL},
    {"_set_default_float", mod_set_default_float, METH_O, NULL},
    {"_get_default_float", mod_get_default_float, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* The C function behind a method descriptor of ferry.Tensor's that takes (args, kwargs);
 * NULL for anything else. */
static method_kw_fn method_function(PyObject *descr)
{
    if (!descr || !Py_IS_TYPE(descr, &PyMethodDescr_Type))
        return NULL;
    PyMethodDef *m = ((PyMethodDescrObject *)descr)->d_method;
    if (m->ml_flags != (METH_VARARGS | METH_KEYWORDS))
        return NULL;
    return (method_kw_fn)(void (*)(void))m->ml_meth;
}

int fpy_surface_init(PyObject *module)
{
    factory_module = Py_NewRef(module);
    PyObject *dict = FpyTensor_Type.tp_dict;
    orig_sum = method_function(PyDict_GetItemString(dict, "sum"));
    orig_mean = method_function(PyDict_GetItemString(dict, "mean"));
    if (!orig_sum || !orig_mean) {
        PyErr_SetString(PyExc_SystemError, "ferry: Tensor.sum/mean missing at surface init");
        return -1;
    }
    if (fpy_tensor_add_getset(surface_getset) < 0)
        return -1;
    if (fpy_tensor_add_methods(surface_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, surface_functions);
}

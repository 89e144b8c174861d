/* Python surface of the ELEM2 ops: Tensor methods (x.floor(), x.atan2(y), x.clamp(0, 1),
 * x.masked_fill(mask, v), their in-place forms written back with copy_from) and module
 * functions ferry.floor(x) ..., ferry.where, ferry.clamp / ferry.clip. */
#include "ferry_py.h"

#define CF(f) ((PyCFunction)(void (*)(void))(f))

/* In place: the result is written back into self, which is returned. */
static PyObject *write_back(PyObject *self, ferry_tensor *r)
{
    if (!r)
        return fpy_error();
    ferry_status st = ferry_tensor_copy_from(FPY_T(self), r);
    ferry_tensor_release(r);
    if (st != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static ferry_tensor *tensor_arg(PyObject *o, const char *fn)
{
    if (!FpyTensor_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'input' must be Tensor, not %s", fn,
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    return FPY_T(o);
}

#define UN(name)                                                                            \
    static PyObject *m_##name(PyObject *self, PyObject *unused)                              \
    {                                                                                       \
        (void)unused;                                                                       \
        return fpy_wrap(ferry_##name(FPY_T(self)));                                         \
    }                                                                                       \
    static PyObject *m_##name##_(PyObject *self, PyObject *unused)                           \
    {                                                                                       \
        (void)unused;                                                                       \
        return write_back(self, ferry_##name(FPY_T(self)));                                 \
    }                                                                                       \
    static PyObject *f_##name(PyObject *mod, PyObject *x)                                    \
    {                                                                                       \
        (void)mod;                                                                          \
        ferry_tensor *t = tensor_arg(x, #name);                                             \
        return t ? fpy_wrap(ferry_##name(t)) : NULL;                                        \
    }
#define UN_ROW(name, OP) UN(name)
FERRY_UNARY2_OPS_(UN_ROW)

/* square_ writes through the _out form, so a bool tensor refuses its int64 square. */
static PyObject *m_square(PyObject *self, PyObject *unused)
{
    (void)unused;
    return fpy_wrap(ferry_square(FPY_T(self)));
}

static PyObject *m_square_(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (ferry_square_out(FPY_T(self), FPY_T(self)) != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *f_square(PyObject *mod, PyObject *x)
{
    (void)mod;
    ferry_tensor *t = tensor_arg(x, "square");
    return t ? fpy_wrap(ferry_square(t)) : NULL;
}

/* Binary: other is a Tensor or a Python number. */
#define BIN(name)                                                                           \
    static ferry_tensor *c_##name(ferry_tensor *a, PyObject *other)                          \
    {                                                                                       \
        if (FpyTensor_Check(other))                                                         \
            return ferry_##name(a, FPY_T(other));                                           \
        ferry_scalar s;                                                                     \
        int rc = fpy_scalar(other, &s);                                                     \
        if (rc == 1)                                                                        \
            PyErr_Format(PyExc_TypeError, #name "(): argument 'other' must be Tensor or Number, not %s", \
                         Py_TYPE(other)->tp_name);                                          \
        if (rc != 0)                                                                        \
            return NULL;                                                                    \
        return ferry_##name##_scalar_ex(a, s);                                              \
    }                                                                                       \
    static PyObject *m_##name(PyObject *self, PyObject *other)                               \
    {                                                                                       \
        ferry_tensor *r = c_##name(FPY_T(self), other);                                     \
        return r || !PyErr_Occurred() ? fpy_wrap(r) : NULL;                                 \
    }                                                                                       \
    static PyObject *m_##name##_(PyObject *self, PyObject *other)                            \
    {                                                                                       \
        ferry_tensor *r = c_##name(FPY_T(self), other);                                     \
        return r || !PyErr_Occurred() ? write_back(self, r) : NULL;                         \
    }                                                                                       \
    static PyObject *f_##name(PyObject *mod, PyObject *args)                                 \
    {                                                                                       \
        (void)mod;                                                                          \
        PyObject *x, *y;                                                                    \
        if (!PyArg_ParseTuple(args, "OO:" #name, &x, &y))                                   \
            return NULL;                                                                    \
        ferry_tensor *t = tensor_arg(x, #name);                                             \
        if (!t)                                                                             \
            return NULL;                                                                    \
        ferry_tensor *r = c_##name(t, y);                                                   \
        return r || !PyErr_Occurred() ? fpy_wrap(r) : NULL;                                 \
    }
#define BIN_ROW(name, OP) BIN(name)
FERRY_BINARY2_OPS_(BIN_ROW)

/* Operators: `t // 2`, `5 % t`, `t &= m` ... run the ops above with PyTorch's operand
 * rules; a number on the left of a non-commuting op goes to the core's reflected form. */
static PyObject *nb_binary(PyObject *a, PyObject *b, ferry_tensor *(*tt)(ferry_tensor *, ferry_tensor *),
                           ferry_tensor *(*ts)(ferry_tensor *, ferry_scalar),
                           ferry_tensor *(*st)(ferry_tensor *, ferry_scalar))
{
    ferry_tensor *r;
    bool a_is_tensor = FpyTensor_Check(a);
    if (a_is_tensor && FpyTensor_Check(b)) {
        FPY_MAYBE_NOGIL(fpy_obj_may_block(a) || fpy_obj_may_block(b), r = tt(FPY_T(a), FPY_T(b)));
        return fpy_wrap(r);
    }
    PyObject *tobj = a_is_tensor ? a : b, *other = a_is_tensor ? b : a;
    ferry_scalar s;
    int rc = fpy_scalar(other, &s);
    if (rc != 0)
        return rc > 0 ? Py_NewRef(Py_NotImplemented) : NULL;
    ferry_tensor *t = FPY_T(tobj);
    bool block = fpy_obj_may_block(tobj);
    FPY_MAYBE_NOGIL(block, r = a_is_tensor || !st ? ts(t, s) : st(t, s));
    return fpy_wrap(r);
}

/* `a op= b` writes through the _out forms, so a result dtype a cannot hold is refused. */
static PyObject *nb_inplace(PyObject *a, PyObject *b,
                            ferry_status (*tto)(ferry_tensor *, ferry_tensor *, ferry_tensor *),
                            ferry_status (*tso)(ferry_tensor *, ferry_tensor *, ferry_scalar))
{
    if (!FpyTensor_Check(a))
        Py_RETURN_NOTIMPLEMENTED;
    ferry_tensor *t = FPY_T(a);
    ferry_status st;
    bool block = fpy_obj_may_block(a);
    if (FpyTensor_Check(b)) {
        ferry_tensor *tb = FPY_T(b);
        FPY_MAYBE_NOGIL(block || fpy_obj_may_block(b), st = tto(t, t, tb));
    } else {
        ferry_scalar s;
        int rc = fpy_scalar(b, &s);
        if (rc != 0)
            return rc > 0 ? Py_NewRef(Py_NotImplemented) : NULL;
        FPY_MAYBE_NOGIL(block, st = tso(t, t, s));
    }
    if (st != FERRY_OK)
        return fpy_error();
    return Py_NewRef(a);
}

#define SLOT(slot, name, reflected)                                                         \
    PyObject *fpy_nb_##slot(PyObject *a, PyObject *b)                                       \
    {                                                                                       \
        return nb_binary(a, b, ferry_##name, ferry_##name##_scalar_ex, reflected);          \
    }                                                                                       \
    PyObject *fpy_nb_i##slot(PyObject *a, PyObject *b)                                      \
    {                                                                                       \
        return nb_inplace(a, b, ferry_##name##_out, ferry_##name##_scalar_ex_out);          \
    }
FPY_ELEM2_SLOTS_(SLOT)

/* ~ is bitwise_not: logical not on bool; floating tensors get PyTorch's TypeError. */
PyObject *fpy_nb_invert(PyObject *a)
{
    ferry_tensor *t = FPY_T(a), *r;
    if (fpy_dtype_kind(ferry_tensor_dtype(t)) == FPY_KIND_FLOAT) {
        PyErr_SetString(PyExc_TypeError,
                        "~ (operator.invert) is only implemented on integer and Boolean-type tensors");
        return NULL;
    }
    FPY_MAYBE_NOGIL(fpy_obj_may_block(a), r = ferry_bitwise_not(t));
    return fpy_wrap(r);
}

/* clamp(min=None, max=None): bounds are Tensors or numbers. */
static ferry_tensor *do_clamp(ferry_tensor *t, PyObject *lo, PyObject *hi)
{
    if (lo == Py_None && hi == Py_None) {
        PyErr_SetString(PyExc_RuntimeError,
                        "torch.clamp: At least one of 'min' or 'max' must not be None");
        return NULL;
    }
    bool tl = lo != Py_None && FpyTensor_Check(lo), th = hi != Py_None && FpyTensor_Check(hi);
    if (tl || th || (lo == Py_None) != (hi == Py_None)) {
        /* Mixed forms run as maximum then minimum of each bound. */
        ferry_tensor *r = ferry_tensor_retain(t);
        PyObject *b[2] = {lo, hi};
        for (int k = 0; k < 2 && r; k++) {
            if (b[k] == Py_None)
                continue;
            ferry_tensor *n;
            if (FpyTensor_Check(b[k])) {
                n = k ? ferry_minimum(r, FPY_T(b[k])) : ferry_maximum(r, FPY_T(b[k]));
            } else {
                ferry_scalar s;
                int rc = fpy_scalar(b[k], &s);
                if (rc != 0) {
                    if (rc == 1)
                        PyErr_SetString(PyExc_TypeError, "clamp(): bounds must be Tensors or numbers");
                    ferry_tensor_release(r);
                    return NULL;
                }
                n = k ? ferry_minimum_scalar_ex(r, s) : ferry_maximum_scalar_ex(r, s);
            }
            ferry_tensor_release(r);
            r = n;
        }
        if (!r && !PyErr_Occurred())
            fpy_error();
        return r;
    }
    ferry_scalar sl, sh;
    int rl = fpy_scalar(lo, &sl), rh = rl ? rl : fpy_scalar(hi, &sh);
    if (rl || rh) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "clamp(): bounds must be Tensors or numbers");
        return NULL;
    }
    ferry_tensor *r = ferry_clamp_scalar(t, &sl, &sh);
    if (!r)
        fpy_error();
    return r;
}

static PyObject *m_clamp(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"min", "max", NULL};
    PyObject *lo = Py_None, *hi = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:clamp", kwlist, &lo, &hi))
        return NULL;
    ferry_tensor *r = do_clamp(FPY_T(self), lo, hi);
    return r ? fpy_wrap(r) : NULL;
}

static PyObject *m_clamp_(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"min", "max", NULL};
    PyObject *lo = Py_None, *hi = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:clamp_", kwlist, &lo, &hi))
        return NULL;
    ferry_tensor *r = do_clamp(FPY_T(self), lo, hi);
    return r ? write_back(self, r) : NULL;
}

static PyObject *f_clamp(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"input", "min", "max", NULL};
    PyObject *x, *lo = Py_None, *hi = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:clamp", kwlist, &x, &lo, &hi))
        return NULL;
    ferry_tensor *t = tensor_arg(x, "clamp");
    ferry_tensor *r = t ? do_clamp(t, lo, hi) : NULL;
    return r ? fpy_wrap(r) : NULL;
}

static double number(PyObject *v, bool *ok)
{
    double d = PyFloat_AsDouble(v);
    *ok = !(d == -1.0 && PyErr_Occurred());
    return d;
}

static PyObject *m_masked_fill(PyObject *self, PyObject *args)
{
    PyObject *mask, *value;
    if (!PyArg_ParseTuple(args, "OO:masked_fill", &mask, &value) || !tensor_arg(mask, "masked_fill"))
        return NULL;
    bool ok;
    double v = number(value, &ok);
    return ok ? fpy_wrap(ferry_masked_fill(FPY_T(self), FPY_T(mask), v)) : NULL;
}

static PyObject *m_masked_fill_(PyObject *self, PyObject *args)
{
    PyObject *mask, *value;
    if (!PyArg_ParseTuple(args, "OO:masked_fill_", &mask, &value) ||
        !tensor_arg(mask, "masked_fill_"))
        return NULL;
    bool ok;
    double v = number(value, &ok);
    if (!ok)
        return NULL;
    if (ferry_masked_fill_inplace(FPY_T(self), FPY_T(mask), v) != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *f_where(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *c, *a, *b;
    if (!PyArg_ParseTuple(args, "OOO:where", &c, &a, &b) || !tensor_arg(c, "where"))
        return NULL;
    if (FpyTensor_Check(a) && FpyTensor_Check(b))
        return fpy_wrap(ferry_where(FPY_T(c), FPY_T(a), FPY_T(b)));
    if (FpyTensor_Check(a) || FpyTensor_Check(b)) {
        PyObject *t = FpyTensor_Check(a) ? a : b, *o = FpyTensor_Check(a) ? b : a;
        ferry_scalar s;
        int rc = fpy_scalar(o, &s);
        if (rc != 0) {
            if (rc == 1)
                PyErr_SetString(PyExc_TypeError, "where(): expected Tensors or numbers");
            return NULL;
        }
        if (t == a)
            return fpy_wrap(ferry_where_scalar(FPY_T(c), FPY_T(a), s));
        /* where(c, number, t) is where(!c, t, number) */
        ferry_tensor *nc = ferry_logical_not(FPY_T(c));
        ferry_tensor *r = nc ? ferry_where_scalar(nc, FPY_T(b), s) : NULL;
        ferry_tensor_release(nc);
        return fpy_wrap(r);
    }
    PyErr_SetString(PyExc_TypeError, "where(): at least one of the values must be a Tensor");
    return NULL;
}

static PyObject *m_where(PyObject *self, PyObject *args)
{
    PyObject *c, *o;
    if (!PyArg_ParseTuple(args, "OO:where", &c, &o))
        return NULL;
    PyObject *t = PyTuple_Pack(3, c, self, o);
    if (!t)
        return NULL;
    PyObject *r = f_where(NULL, t);
    Py_DECREF(t);
    return r;
}

static PyObject *gelu_common(ferry_tensor *t, const char *approx)
{
    if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0) {
        PyErr_Format(PyExc_RuntimeError, "approximate argument must be either none or tanh.");
        return NULL;
    }
    return fpy_wrap(ferry_gelu_ex(t, approx[0] == 't'));
}

static PyObject *f_gelu_ex(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"input", "approximate", NULL};
    PyObject *x;
    const char *approx = "none";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|s:gelu", kwlist, &x, &approx))
        return NULL;
    ferry_tensor *t = tensor_arg(x, "gelu");
    return t ? gelu_common(t, approx) : NULL;
}

static PyObject *f_softplus_ex(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"input", "beta", "threshold", NULL};
    PyObject *x;
    double beta = 1.0, threshold = 20.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|dd:softplus", kwlist, &x, &beta, &threshold))
        return NULL;
    ferry_tensor *t = tensor_arg(x, "softplus");
    return t ? fpy_wrap(ferry_softplus_ex(t, beta, threshold)) : NULL;
}

static PyObject *f_leaky_relu_ex(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"input", "negative_slope", "inplace", NULL};
    PyObject *x;
    double slope = 0.01;
    int inplace = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|dp:leaky_relu", kwlist, &x, &slope, &inplace))
        return NULL;
    ferry_tensor *t = tensor_arg(x, "leaky_relu");
    if (!t)
        return NULL;
    ferry_tensor *r = ferry_leaky_relu_ex(t, slope);
    return inplace ? write_back(x, r) : fpy_wrap(r);
}

#define UN_METHODS(name, OP)                                                                \
    {#name, m_##name, METH_NOARGS, #name "()"}, {#name "_", m_##name##_, METH_NOARGS, #name "_()"},
#define BIN_METHODS(name, OP)                                                               \
    {#name, m_##name, METH_O, #name "(other)"}, {#name "_", m_##name##_, METH_O, #name "_(other)"},

static PyMethodDef tensor_methods[] = {
    FERRY_UNARY2_OPS_(UN_METHODS) FERRY_BINARY2_OPS_(BIN_METHODS)
    {"square", m_square, METH_NOARGS, "square()"},
    {"square_", m_square_, METH_NOARGS, "square_()"},
    {"clamp", CF(m_clamp), METH_VARARGS | METH_KEYWORDS, "clamp(min=None, max=None)"},
    {"clip", CF(m_clamp), METH_VARARGS | METH_KEYWORDS, "clip(min=None, max=None)"},
    {"clamp_", CF(m_clamp_), METH_VARARGS | METH_KEYWORDS, "clamp_(min=None, max=None)"},
    {"clip_", CF(m_clamp_), METH_VARARGS | METH_KEYWORDS, "clip_(min=None, max=None)"},
    {"masked_fill", m_masked_fill, METH_VARARGS, "masked_fill(mask, value)"},
    {"masked_fill_", m_masked_fill_, METH_VARARGS, "masked_fill_(mask, value)"},
    {"where", m_where, METH_VARARGS, "where(condition, other)"},
    {NULL, NULL, 0, NULL},
};

#define UN_FUNCS(name, OP) {#name, f_##name, METH_O, #name "(input)"},
#define BIN_FUNCS(name, OP) {#name, f_##name, METH_VARARGS, #name "(input, other)"},

static PyMethodDef module_functions[] = {
    FERRY_UNARY2_OPS_(UN_FUNCS) FERRY_BINARY2_OPS_(BIN_FUNCS)
    {"square", f_square, METH_O, "square(input)"},
    {"clamp", CF(f_clamp), METH_VARARGS | METH_KEYWORDS, "clamp(input, min=None, max=None)"},
    {"clip", CF(f_clamp), METH_VARARGS | METH_KEYWORDS, "clip(input, min=None, max=None)"},
    {"where", f_where, METH_VARARGS, "where(condition, input, other)"},
    {"_gelu", CF(f_gelu_ex), METH_VARARGS | METH_KEYWORDS, "gelu(input, approximate='none')"},
    {"_softplus", CF(f_softplus_ex), METH_VARARGS | METH_KEYWORDS,
     "softplus(input, beta=1, threshold=20)"},
    {"_leaky_relu", CF(f_leaky_relu_ex), METH_VARARGS | METH_KEYWORDS,
     "leaky_relu(input, negative_slope=0.01, inplace=False)"},
    {NULL, NULL, 0, NULL},
};

int fpy_elementwise_init(PyObject *module)
{
    if (fpy_tensor_add_methods(tensor_methods, true) < 0)
        return -1;
    return PyModule_AddFunctions(module, module_functions);
}

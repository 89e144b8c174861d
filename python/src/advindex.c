/* Advanced indexing from Python (t[idx], t[idx] = v) as PyTorch does it: the basic
 * items (ints, slices, None, ...) make a view first, ints removing their dim (so
 * x[0, :, [0, 1]] is (3, 2) as in PyTorch, not NumPy's (2, 3)), then the index tensors
 * (tensors, lists, NumPy arrays, bool masks; a Python bool is a new dim indexed by [0]
 * or []) go to ferry_index / ferry_index_put with NULL for the dims they skip. Also
 * Tensor.index_put_/index_put and ferry.index_put. */
#include "ferry_py.h"

#define MAX_ITEMS 64

/* Whether an item is an advanced index: anything but an int, a slice, None or `...`;
 * a 0-d integer tensor counts as an int, as in PyTorch. */
static bool is_advanced_item(PyObject *it)
{
    /* A plain int first: t[0] is the common key, and the NumPy test below is not free. */
    if (PyLong_CheckExact(it) || it == Py_None || it == Py_Ellipsis || PySlice_Check(it))
        return false;
    if (FpyTensor_Check(it)) {
        ferry_tensor *x = FPY_T(it);
        ferry_dtype dt = ferry_tensor_dtype(x);
        return !(ferry_tensor_ndim(x) == 0 && dt != FERRY_BOOL && !ferry_dtype_is_floating(dt));
    }
    if (PyBool_Check(it) || fpy_is_ndarray(it))
        return true; /* a 0-d NumPy array too: a 0-d index drops its dim as an int would */
    return !PyIndex_Check(it);
}

/* A 0-d integer tensor: an int to PyTorch, which the basic view reads as one. */
static bool is_int_tensor(PyObject *it)
{
    return FpyTensor_Check(it) && !is_advanced_item(it);
}

int fpy_key_is_advanced(PyObject *key)
{
    if (!PyTuple_Check(key))
        return is_advanced_item(key) || is_int_tensor(key);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(key); i++) {
        PyObject *it = PyTuple_GET_ITEM(key, i);
        if (is_advanced_item(it) || is_int_tensor(it))
            return 1;
    }
    return 0;
}

/* An item as an index tensor on t's device: bool/uint8 kept as masks. */
static ferry_tensor *to_index(PyObject *it, const ferry_tensor *t)
{
    if (FpyTensor_Check(it))
        return ferry_tensor_retain(FPY_T(it));
    char dev[32];
    ferry_device_format(ferry_tensor_device(t), dev, sizeof dev);
    if ((PyList_Check(it) || PyTuple_Check(it)) && PySequence_Size(it) == 0) {
        /* [] indexes nothing: an empty int64 index, as PyTorch. */
        ferry_dtype dt = FERRY_INT64;
        return fpy_tensor_from_data(it, &dt, dev);
    }
    if (!PyList_Check(it) && !PyTuple_Check(it) && !fpy_is_ndarray(it)) {
        PyErr_Format(PyExc_IndexError,
                     "only integers, slices (`:`), ellipsis (`...`), None and long or byte "
                     "Variables are valid indices (got %s)",
                     Py_TYPE(it)->tp_name);
        return NULL;
    }
    ferry_tensor *x = fpy_tensor_from_data(it, NULL, dev);
    if (!x && !PyErr_Occurred())
        fpy_error();
    return x;
}

/* The parsed key: a basic key (advanced items as `:`, bools as None) and, per dim of
 * the view it gives, the index entries ferry_index takes. */
typedef struct parsed {
    PyObject *basic; /* a tuple */
    ferry_tensor *entries[MAX_ITEMS];
    int nentries;
    ferry_tensor *owned[2 * MAX_ITEMS]; /* an item's index, and a 0-d mask's [0] or [] */
    int nowned;
    bool trivial; /* the basic key is the whole tensor: write into t itself */
} parsed;

static void parsed_free(parsed *p)
{
    Py_XDECREF(p->basic);
    for (int i = 0; i < p->nowned; i++)
        ferry_tensor_release(p->owned[i]);
}

static int parse(ferry_tensor *t, PyObject *key, parsed *p)
{
    memset(p, 0, sizeof *p);
    PyObject *const *items = &key;
    Py_ssize_t n = 1;
    if (PyTuple_Check(key)) {
        items = &PyTuple_GET_ITEM(key, 0);
        n = PyTuple_GET_SIZE(key);
    }
    if (n > MAX_ITEMS) {
        PyErr_Format(PyExc_IndexError, "too many indices for tensor of dimension %d",
                     ferry_tensor_ndim(t));
        return -1;
    }
    /* First pass: index tensors and the dims each consumes of t. */
    ferry_tensor *idx[MAX_ITEMS] = {0};
    int consumed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = items[i];
        if (!is_advanced_item(it)) {
            if (it != Py_None && it != Py_Ellipsis)
                consumed++;
            continue;
        }
        if (PyBool_Check(it))
            continue;
        ferry_tensor *x = to_index(it, t);
        if (!x)
            return -1;
        p->owned[p->nowned++] = x;
        idx[i] = x;
        ferry_dtype dt = ferry_tensor_dtype(x);
        bool mask = dt == FERRY_BOOL || dt == FERRY_UINT8;
        if (mask && ferry_tensor_ndim(x) == 0)
            continue; /* like a Python bool */
        consumed += mask ? ferry_tensor_ndim(x) : 1;
    }
    int ndim = ferry_tensor_ndim(t);
    if (consumed > ndim) {
        PyErr_Format(PyExc_IndexError, "too many indices for tensor of dimension %d", ndim);
        return -1;
    }
    /* Second pass: the basic key, and where each index lands in the view. */
    PyObject *basic = PyList_New(0);
    if (!basic)
        return -1;
    ferry_tensor *at[FERRY_MAX_DIMS] = {0};
    int span[FERRY_MAX_DIMS] = {0};
    int vd = 0, last = -1;
    p->trivial = true;
    int rc = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = items[i], *b = NULL;
        if (!is_advanced_item(it)) {
            if (it == Py_Ellipsis) {
                vd += ndim - consumed;
            } else if (it == Py_None) {
                vd++;
                p->trivial = false;
            } else if (PySlice_Check(it)) {
                PySliceObject *s = (PySliceObject *)it;
                if (s->start != Py_None || s->stop != Py_None || s->step != Py_None)
                    p->trivial = false;
                vd++;
            } else {
                p->trivial = false; /* an int: its dim goes */
            }
            if (is_int_tensor(it)) {
                if (!(b = fpy_item(FPY_T(it))))
                    goto done;
            } else {
                b = Py_NewRef(it);
            }
        } else {
            ferry_tensor *x = idx[i];
            bool scalar_bool = PyBool_Check(it) ||
                               (x && ferry_tensor_ndim(x) == 0 &&
                                (ferry_tensor_dtype(x) == FERRY_BOOL ||
                                 ferry_tensor_dtype(x) == FERRY_UINT8));
            if (vd >= FERRY_MAX_DIMS) {
                PyErr_SetString(PyExc_IndexError, "too many dimensions");
                goto done;
            }
            if (scalar_bool) {
                /* A new dim of size 1, indexed by [0] (true) or [] (false). */
                int truth;
                if (PyBool_Check(it)) {
                    truth = it == Py_True;
                } else {
                    PyObject *v = fpy_item(x);
                    truth = v ? PyObject_IsTrue(v) : -1;
                    Py_XDECREF(v);
                    if (truth < 0)
                        goto done;
                }
                char dev[32];
                ferry_device_format(ferry_tensor_device(t), dev, sizeof dev);
                int64_t zero = 0, len = truth ? 1 : 0;
                ferry_tensor *z =
                    ferry_tensor_from_data(truth ? &zero : NULL, FERRY_INT64, 1, &len, dev);
                if (!z) {
                    fpy_error();
                    goto done;
                }
                p->owned[p->nowned++] = z;
                at[vd] = z;
                span[vd] = 1;
                last = vd;
                vd++;
                p->trivial = false;
                b = Py_NewRef(Py_None);
            } else {
                ferry_dtype dt = ferry_tensor_dtype(x);
                int k = (dt == FERRY_BOOL || dt == FERRY_UINT8) ? ferry_tensor_ndim(x) : 1;
                at[vd] = x;
                span[vd] = k;
                last = vd;
                vd += k;
                /* `:` for each dim it covers */
                for (int q = 0; q < k; q++) {
                    PyObject *s = PySlice_New(NULL, NULL, NULL);
                    if (!s || PyList_Append(basic, s) < 0) {
                        Py_XDECREF(s);
                        goto done;
                    }
                    Py_DECREF(s);
                }
                continue;
            }
        }
        if (PyList_Append(basic, b) < 0) {
            Py_DECREF(b);
            goto done;
        }
        Py_DECREF(b);
    }
    for (int d = 0; d <= last;) {
        p->entries[p->nentries++] = at[d];
        d += at[d] ? span[d] : 1;
    }
    p->basic = PyList_AsTuple(basic);
    rc = p->basic ? 0 : -1;
done:
    Py_DECREF(basic);
    return rc;
}

PyObject *fpy_advanced_get(ferry_tensor *t, PyObject *key)
{
    parsed p;
    if (parse(t, key, &p) < 0) {
        parsed_free(&p);
        return NULL;
    }
    ferry_tensor *view = fpy_index_view(t, p.basic);
    ferry_tensor *r = NULL;
    if (view) {
        bool block = fpy_may_block(view);
        FPY_MAYBE_NOGIL(block, r = ferry_index(view, p.nentries,
                                               (const ferry_tensor *const *)p.entries));
        if (!r)
            fpy_error();
    }
    ferry_tensor_release(view);
    parsed_free(&p);
    return r ? fpy_wrap(r) : NULL;
}

/* value as a tensor index_put can take: a tensor as it is, anything else (numbers,
 * lists, NumPy arrays) converted to t's dtype. */
static ferry_tensor *value_tensor(ferry_tensor *t, PyObject *value)
{
    if (FpyTensor_Check(value))
        return ferry_tensor_retain(FPY_T(value));
    ferry_dtype dt = ferry_tensor_dtype(t);
    char dev[32];
    ferry_device_format(ferry_tensor_device(t), dev, sizeof dev);
    if (fpy_scalar_kind(value) >= 0) {
        unsigned char elem[8];
        if (fpy_store_checked(dt, value, elem) < 0)
            return NULL;
        ferry_tensor *v = ferry_tensor_from_data(elem, dt, 0, NULL, dev);
        if (!v)
            fpy_error();
        return v;
    }
    if (!PyList_Check(value) && !PyTuple_Check(value) && !fpy_is_ndarray(value) &&
        !PyObject_CheckBuffer(value)) {
        PyErr_Format(PyExc_TypeError,
                     "can't assign a %s to a ferry tensor: expected a ferry.Tensor, an array, "
                     "a list or a number",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    ferry_tensor *v = fpy_tensor_from_data(value, &dt, dev);
    if (!v && !PyErr_Occurred())
        fpy_error();
    return v;
}

static int put(ferry_tensor *dst, int n, ferry_tensor *const *entries, ferry_tensor *v,
               bool accumulate)
{
    ferry_status st;
    bool block = fpy_may_block(dst);
    FPY_MAYBE_NOGIL(block, st = ferry_index_put(dst, n, (const ferry_tensor *const *)entries, v,
                                                accumulate));
    if (st != FERRY_OK) {
        fpy_error();
        return -1;
    }
    return 0;
}

int fpy_advanced_set(ferry_tensor *t, PyObject *key, PyObject *value)
{
    parsed p;
    if (parse(t, key, &p) < 0) {
        parsed_free(&p);
        return -1;
    }
    int rc = -1;
    /* Into t itself when the basic part is the whole tensor, so a non-leaf that
     * requires grad records the write; else into the view. */
    ferry_tensor *dst = p.trivial ? ferry_tensor_retain(t) : fpy_index_view(t, p.basic);
    ferry_tensor *v = dst ? value_tensor(t, value) : NULL;
    if (v)
        rc = put(dst, p.nentries, p.entries, v, false);
    ferry_tensor_release(v);
    ferry_tensor_release(dst);
    parsed_free(&p);
    return rc;
}

/* ---- index_put_, index_put, ferry.index_put ---- */

static PyObject *index_put_call(PyObject *self, PyObject *args, PyObject *kw, bool inplace)
{
    static char *kw_m[] = {"indices", "values", "accumulate", NULL};
    static char *kw_f[] = {"input", "indices", "values", "accumulate", NULL};
    PyObject *in = self, *indices, *values;
    int accumulate = 0;
    const char *fn = inplace ? "index_put_" : "index_put";
    if (self ? !PyArg_ParseTupleAndKeywords(args, kw, "OO|p", kw_m, &indices, &values, &accumulate)
             : !PyArg_ParseTupleAndKeywords(args, kw, "OOO|p", kw_f, &in, &indices, &values,
                                            &accumulate))
        return NULL;
    if (!FpyTensor_Check(in)) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'input' must be Tensor, not %s", fn,
                     Py_TYPE(in)->tp_name);
        return NULL;
    }
    if (!PyTuple_Check(indices) && !PyList_Check(indices)) {
        PyErr_Format(PyExc_TypeError,
                     "%s(): argument 'indices' must be tuple of Tensors, not %s", fn,
                     Py_TYPE(indices)->tp_name);
        return NULL;
    }
    ferry_tensor *t = FPY_T(in);
    PyObject *seq = PySequence_Fast(indices, "indices");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    ferry_tensor *entries[MAX_ITEMS] = {0};
    PyObject *result = NULL;
    ferry_tensor *v = NULL, *dst = NULL;
    if (n > MAX_ITEMS) {
        PyErr_Format(PyExc_IndexError, "too many indices for tensor of dimension %d",
                     ferry_tensor_ndim(t));
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        if (it == Py_None)
            continue;
        if (!FpyTensor_Check(it)) {
            PyErr_Format(PyExc_TypeError,
                         "%s(): argument 'indices' must be tuple of Tensors, but found element "
                         "of type %s at pos %zd",
                         fn, Py_TYPE(it)->tp_name, i);
            goto done;
        }
        entries[i] = FPY_T(it);
    }
    if (!(v = value_tensor(t, values)))
        goto done;
    dst = inplace ? ferry_tensor_retain(t) : ferry_tensor_clone(t);
    if (!dst) {
        fpy_error();
        goto done;
    }
    if (put(dst, (int)n, entries, v, accumulate) < 0)
        goto done;
    if (inplace) {
        result = Py_NewRef(in);
    } else {
        result = fpy_wrap(dst);
        dst = NULL;
    }
done:
    Py_DECREF(seq);
    ferry_tensor_release(v);
    ferry_tensor_release(dst);
    return result;
}

static PyObject *m_index_put_(PyObject *self, PyObject *args, PyObject *kw)
{
    return index_put_call(self, args, kw, true);
}

static PyObject *m_index_put(PyObject *self, PyObject *args, PyObject *kw)
{
    return index_put_call(self, args, kw, false);
}

static PyObject *f_index_put(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    return index_put_call(NULL, args, kw, false);
}

#define KW_ METH_VARARGS | METH_KEYWORDS
static PyMethodDef advindex_methods[] = {
    {"index_put_", (PyCFunction)(void (*)(void))m_index_put_, KW_,
     "index_put_(indices, values, accumulate=False)"},
    {"index_put", (PyCFunction)(void (*)(void))m_index_put, KW_,
     "index_put(indices, values, accumulate=False)"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef advindex_functions[] = {
    {"index_put", (PyCFunction)(void (*)(void))f_index_put, KW_,
     "index_put(input, indices, values, accumulate=False)"},
    {NULL, NULL, 0, NULL},
};

int fpy_advindex_init(PyObject *module)
{
    if (fpy_tensor_add_methods(advindex_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, advindex_functions);
}

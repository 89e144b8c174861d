/* Joining, splitting and shape functions of the Python module and their Tensor methods
 * (torch.cat, stack, narrow, split, chunk, unbind, flip, movedim, broadcast_to): thin
 * wrappers of core/ops/shape.c, whose errors map to PyTorch's exceptions. */
#include <string.h>

#include "ferry_py.h"

#define CF(f) ((PyCFunction)(void (*)(void))(f))

/* A sequence of ferry.Tensor into a borrowed handle array (PyMem_Free it). */
static const ferry_tensor **tensor_list(PyObject *seq, const char *fn, Py_ssize_t *n)
{
    if (FpyTensor_Check(seq) || !PySequence_Check(seq)) {
        PyErr_Format(PyExc_TypeError,
                     "%s(): argument 'tensors' (position 1) must be tuple of Tensors, not %s", fn,
                     Py_TYPE(seq)->tp_name);
        return NULL;
    }
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of Tensors");
    if (!fast)
        return NULL;
    *n = PySequence_Fast_GET_SIZE(fast);
    if (*n > INT32_MAX) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s(): too many tensors", fn);
        return NULL;
    }
    const ferry_tensor **ts = PyMem_Malloc((size_t)(*n > 0 ? *n : 1) * sizeof *ts);
    if (!ts) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < *n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(fast, i);
        if (!FpyTensor_Check(o)) {
            PyErr_Format(PyExc_TypeError,
                         "expected Tensor as element %zd in argument 0, but got %s", i,
                         Py_TYPE(o)->tp_name);
            PyMem_Free(ts);
            Py_DECREF(fast);
            return NULL;
        }
        ts[i] = FPY_T(o);
    }
    /* The handles stay alive through the caller's reference to seq's items. */
    Py_DECREF(fast);
    return ts;
}

/* A dim argument (NULL: the default 0) of a tensor of ndim dims, as int64 with PyTorch's
 * IndexError when out of range, so 2**40 is refused rather than truncated. */
static int dim_arg(PyObject *o, int ndim, int *dim)
{
    if (!o) {
        *dim = 0;
        return 0;
    }
    return fpy_dim(o, ndim, dim);
}

static PyObject *join(PyObject *args, PyObject *kwargs, const char *fn, bool stack)
{
    static char *kw[] = {"tensors", "dim", NULL};
    PyObject *seq, *dimo = NULL;
    int dim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O", kw, &seq, &dimo))
        return NULL;
    Py_ssize_t n = 0;
    /* Keep the items alive: a list argument could be mutated by nobody here, but a
     * generator's items exist only in the fast copy, so hold a tuple. */
    PyObject *tup = FpyTensor_Check(seq) || !PySequence_Check(seq) ? NULL : PySequence_Tuple(seq);
    if (!tup && PyErr_Occurred())
        return NULL;
    const ferry_tensor **ts = tensor_list(tup ? tup : seq, fn, &n);
    if (!ts) {
        Py_XDECREF(tup);
        return NULL;
    }
    if (n == 0) {
        PyMem_Free(ts);
        Py_XDECREF(tup);
        if (stack)
            PyErr_SetString(PyExc_RuntimeError, "stack expects a non-empty TensorList");
        else
            PyErr_Format(PyExc_ValueError, "%s(): expected a non-empty list of Tensors", fn);
        return NULL;
    }
    if (dim_arg(dimo, ferry_tensor_ndim(ts[0]) + (stack ? 1 : 0), &dim) < 0) {
        PyMem_Free(ts);
        Py_XDECREF(tup);
        return NULL;
    }
    ferry_tensor *r = stack ? ferry_stack(ts, (int)n, dim) : ferry_cat(ts, (int)n, dim);
    PyMem_Free(ts);
    Py_XDECREF(tup);
    return fpy_wrap(r);
}

static PyObject *mod_cat(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    return join(args, kwargs, "torch.cat", false);
}

static PyObject *mod_stack(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    return join(args, kwargs, "torch.stack", true);
}

/* Methods and functions share one body: a method's self comes first, a function's
 * tensor is its first positional argument. */
typedef PyObject *(*tensor_impl)(PyObject *self, PyObject *args, PyObject *kwargs);

static PyObject *as_function(tensor_impl impl, PyObject *args, PyObject *kwargs, const char *fn)
{
    if (PyTuple_GET_SIZE(args) < 1 || !FpyTensor_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_Format(PyExc_TypeError, "%s(): argument 'input' (position 1) must be Tensor", fn);
        return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    if (!rest)
        return NULL;
    PyObject *r = impl(PyTuple_GET_ITEM(args, 0), rest, kwargs);
    Py_DECREF(rest);
    return r;
}

/* A list of new references as a tuple of ferry.Tensor (steals them). */
static PyObject *tuple_of(ferry_tensor **out, int n)
{
    PyObject *tup = PyTuple_New(n);
    for (int i = 0; i < n; i++) {
        PyObject *w = tup ? fpy_wrap(out[i]) : NULL;
        if (!tup)
            ferry_tensor_release(out[i]);
        else if (!w) {
            for (int j = i + 1; j < n; j++)
                ferry_tensor_release(out[j]);
            Py_DECREF(tup);
            return NULL;
        } else
            PyTuple_SET_ITEM(tup, i, w);
    }
    return tup;
}

/* Runs a list-returning C call twice: once to count, once into a buffer of that size. */
typedef int (*list_call)(ferry_tensor *t, void *ctx, ferry_tensor **out, int cap);

static PyObject *list_result(ferry_tensor *t, list_call call, void *ctx)
{
    int n = call(t, ctx, NULL, 0);
    if (n < 0)
        return fpy_error();
    ferry_tensor **out = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof *out);
    if (!out)
        return PyErr_NoMemory();
    int m = call(t, ctx, out, n);
    if (m != n) {
        PyMem_Free(out);
        return fpy_error();
    }
    PyObject *r = tuple_of(out, n);
    PyMem_Free(out);
    return r;
}

typedef struct {
    int dim;
    int64_t size;
    int nsizes;
    int64_t sizes[64];
    int64_t *heap;
} split_ctx;

static int call_split(ferry_tensor *t, void *c, ferry_tensor **out, int cap)
{
    split_ctx *s = c;
    if (s->nsizes >= 0)
        return ferry_split_sizes(t, s->nsizes, s->heap ? s->heap : s->sizes, s->dim, out, cap);
    return ferry_split(t, s->size, s->dim, out, cap);
}

static int call_chunk(ferry_tensor *t, void *c, ferry_tensor **out, int cap)
{
    split_ctx *s = c;
    return ferry_chunk(t, (int)s->size, s->dim, out, cap);
}

static int call_unbind(ferry_tensor *t, void *c, ferry_tensor **out, int cap)
{
    split_ctx *s = c;
    return ferry_unbind(t, s->dim, out, cap);
}

static PyObject *t_split(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"split_size_or_sections", "dim", NULL};
    PyObject *so, *dimo = NULL;
    int dim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O", kw, &so, &dimo) ||
        dim_arg(dimo, ferry_tensor_ndim(FPY_T(self)), &dim) < 0)
        return NULL;
    split_ctx c = {dim, 0, -1, {0}, NULL};
    if (PyLong_Check(so) || PyIndex_Check(so)) {
        if (fpy_int64(so, &c.size) < 0)
            return NULL;
    } else if (PySequence_Check(so)) {
        Py_ssize_t n = PySequence_Size(so);
        if (n < 0)
            return NULL;
        if (n > INT32_MAX)
            return PyErr_Format(PyExc_ValueError, "split(): too many sections");
        if (n > 64 && !(c.heap = PyMem_Malloc((size_t)n * sizeof *c.heap)))
            return PyErr_NoMemory();
        int64_t *dst = c.heap ? c.heap : c.sizes;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *o = PySequence_GetItem(so, i);
            int bad = !o || fpy_int64(o, &dst[i]) < 0;
            Py_XDECREF(o);
            if (bad) {
                PyMem_Free(c.heap);
                return NULL;
            }
        }
        c.nsizes = (int)n;
    } else {
        return PyErr_Format(PyExc_TypeError,
                            "split(): argument 'split_size' must be int or list of ints, not %s",
                            Py_TYPE(so)->tp_name);
    }
    PyObject *r = list_result(FPY_T(self), call_split, &c);
    PyMem_Free(c.heap);
    return r;
}

static PyObject *t_chunk(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"chunks", "dim", NULL};
    PyObject *dimo = NULL, *co;
    int64_t chunks;
    int dim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O", kw, &co, &dimo) ||
        fpy_int64(co, &chunks) < 0 || dim_arg(dimo, ferry_tensor_ndim(FPY_T(self)), &dim) < 0)
        return NULL;
    /* torch takes any positive int64: more chunks than elements give one element each,
     * so the count is capped at the dim's size before it meets the C API's int. */
    if (chunks <= 0)
        return PyErr_Format(PyExc_RuntimeError,
                            "chunk expects `chunks` to be greater than 0, got: %lld",
                            (long long)chunks);
    int nd = ferry_tensor_ndim(FPY_T(self));
    if (nd > 0 && chunks > INT32_MAX) {
        int64_t size = ferry_tensor_shape(FPY_T(self))[dim < 0 ? dim + nd : dim];
        if (size == 0)
            return PyErr_Format(PyExc_RuntimeError,
                                "chunk: %lld empty chunks do not fit in memory", (long long)chunks);
        chunks = size < chunks ? size : chunks;
    }
    split_ctx c = {dim, chunks > INT32_MAX ? INT32_MAX : chunks, -1, {0}, NULL};
    return list_result(FPY_T(self), call_chunk, &c);
}

static PyObject *t_unbind(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"dim", NULL};
    PyObject *dimo = NULL;
    int dim = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O", kw, &dimo) ||
        dim_arg(dimo, ferry_tensor_ndim(FPY_T(self)), &dim) < 0)
        return NULL;
    split_ctx c = {dim, 0, -1, {0}, NULL};
    return list_result(FPY_T(self), call_unbind, &c);
}

static PyObject *t_narrow(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"dim", "start", "length", NULL};
    PyObject *dimo;
    int dim;
    long long start, length;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OLL", kw, &dimo, &start, &length) ||
        dim_arg(dimo, ferry_tensor_ndim(FPY_T(self)), &dim) < 0)
        return NULL;
    return fpy_wrap(ferry_narrow(FPY_T(self), dim, start, length));
}

/* An int or a sequence of ints into dims[]; *n receives the count. */
static int int_dims(PyObject *o, const char *fn, int *n, int *dims)
{
    int64_t v[FERRY_MAX_DIMS];
    if (PyLong_Check(o)) {
        if (fpy_int64(o, &v[0]) < 0)
            return -1;
        *n = 1;
    } else {
        PyObject *tup = PyTuple_Pack(1, o);
        if (!tup)
            return -1;
        int r = fpy_int64_list(tup, fn, "dims", n, v);
        Py_DECREF(tup);
        if (r < 0)
            return -1;
    }
    for (int i = 0; i < *n; i++) {
        if (v[i] < INT32_MIN || v[i] > INT32_MAX) {
            PyErr_Format(PyExc_IndexError, "Dimension out of range (got %lld)", (long long)v[i]);
            return -1;
        }
        dims[i] = (int)v[i];
    }
    return 0;
}

static PyObject *t_flip(PyObject *self, PyObject *args, PyObject *kwargs)
{
    int n, dims[FERRY_MAX_DIMS];
    if (kwargs && PyDict_GET_SIZE(kwargs) == 1 && PyTuple_GET_SIZE(args) == 0) {
        PyObject *d = PyDict_GetItemString(kwargs, "dims");
        if (!d)
            return PyErr_Format(PyExc_TypeError, "flip() got an unexpected keyword argument");
        if (int_dims(d, "flip", &n, dims) < 0)
            return NULL;
    } else {
        if (kwargs && PyDict_GET_SIZE(kwargs))
            return PyErr_Format(PyExc_TypeError, "flip() got an unexpected keyword argument");
        if (PyTuple_GET_SIZE(args) == 1) {
            if (int_dims(PyTuple_GET_ITEM(args, 0), "flip", &n, dims) < 0)
                return NULL;
        } else {
            int64_t v[FERRY_MAX_DIMS];
            if (fpy_int64_list(args, "flip", "dims", &n, v) < 0)
                return NULL;
            for (int i = 0; i < n; i++)
                dims[i] = (int)v[i];
        }
    }
    return fpy_wrap(ferry_flip(FPY_T(self), n, dims));
}

static PyObject *flip_one(PyObject *self, int dim, int min_dims, const char *fn)
{
    if (ferry_tensor_ndim(FPY_T(self)) < min_dims)
        return PyErr_Format(PyExc_RuntimeError, "Input must be >= %d-d.", min_dims);
    (void)fn;
    return fpy_wrap(ferry_flip(FPY_T(self), 1, &dim));
}

static PyObject *t_fliplr(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    return flip_one(self, 1, 2, "fliplr");
}

static PyObject *t_flipud(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    return flip_one(self, 0, 1, "flipud");
}

static PyObject *t_movedim(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"source", "destination", NULL};
    PyObject *so, *do_;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO", kw, &so, &do_))
        return NULL;
    int ns, nd, src[FERRY_MAX_DIMS], dst[FERRY_MAX_DIMS];
    if (int_dims(so, "movedim", &ns, src) < 0 || int_dims(do_, "movedim", &nd, dst) < 0)
        return NULL;
    if (ns != nd)
        return PyErr_Format(PyExc_RuntimeError,
                            "movedim: Invalid source or destination dims: source (%d dims) should "
                            "contain the same number of dims as destination (%d dims)",
                            ns, nd);
    return fpy_wrap(ferry_movedim(FPY_T(self), ns, src, dst));
}

static PyObject *t_broadcast_to(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"size", NULL};
    PyObject *so;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O", kw, &so))
        return NULL;
    PyObject *tup = PyTuple_Pack(1, so);
    if (!tup)
        return NULL;
    int n;
    int64_t shape[FERRY_MAX_DIMS];
    int r = fpy_int64_list(tup, "broadcast_to", "size", &n, shape);
    Py_DECREF(tup);
    if (r < 0)
        return NULL;
    return fpy_wrap(ferry_broadcast_to(FPY_T(self), n, shape));
}

static PyObject *t_roll(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"shifts", "dims", NULL};
    PyObject *so, *dobj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O", kw, &so, &dobj))
        return NULL;
    int64_t shifts[FERRY_MAX_DIMS];
    int ns, nd = 0, dims[FERRY_MAX_DIMS];
    PyObject *tup = PyTuple_Pack(1, so);
    if (!tup)
        return NULL;
    int r = fpy_int64_list(tup, "roll", "shifts", &ns, shifts);
    Py_DECREF(tup);
    if (r < 0 || (dobj && dobj != Py_None && int_dims(dobj, "roll", &nd, dims) < 0))
        return NULL;
    return fpy_wrap(ferry_roll(FPY_T(self), ns, shifts, nd, dims));
}

/* repeat(2, 3) or repeat((2, 3)); tile pads repeats with leading 1s as torch.tile. */
static PyObject *repeat_impl(PyObject *self, PyObject *args, bool tile)
{
    int n;
    int64_t reps[FERRY_MAX_DIMS];
    if (fpy_int64_list(args, tile ? "tile" : "repeat", tile ? "dims" : "repeats", &n, reps) < 0)
        return NULL;
    int nd = ferry_tensor_ndim(FPY_T(self));
    if (tile && n < nd) {
        int pad = nd - n;
        memmove(reps + pad, reps, (size_t)n * sizeof reps[0]);
        for (int i = 0; i < pad; i++)
            reps[i] = 1;
        n = nd;
    }
    return fpy_wrap(ferry_repeat(FPY_T(self), n, reps));
}

static PyObject *t_repeat(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)kwargs;
    return repeat_impl(self, args, false);
}

static PyObject *t_tile(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)kwargs;
    return repeat_impl(self, args, true);
}

static PyObject *mod_linspace(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    static char *kw[] = {"start", "end", "steps", "dtype", "device", NULL};
    double start, end;
    long long steps;
    ferry_dtype dt = FERRY_FLOAT32;
    fpy_device_arg dev = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ddL|$O&O&", kw, &start, &end, &steps,
                                     fpy_dtype_converter, &dt, fpy_device_converter, &dev))
        return NULL;
    return fpy_wrap(ferry_linspace(start, end, steps, dt, dev.given ? dev.str : "cpu"));
}

#define FUNCTION(name, impl, fn)                                                            \
    static PyObject *mod_##name(PyObject *m, PyObject *args, PyObject *kwargs)              \
    {                                                                                       \
        (void)m;                                                                            \
        return as_function(impl, args, kwargs, fn);                                         \
    }
FUNCTION(split, t_split, "split")
FUNCTION(chunk, t_chunk, "chunk")
FUNCTION(unbind, t_unbind, "unbind")
FUNCTION(narrow, t_narrow, "narrow")
FUNCTION(flip, t_flip, "flip")
FUNCTION(fliplr, t_fliplr, "fliplr")
FUNCTION(flipud, t_flipud, "flipud")
FUNCTION(movedim, t_movedim, "movedim")
FUNCTION(broadcast_to, t_broadcast_to, "broadcast_to")
FUNCTION(roll, t_roll, "roll")
FUNCTION(tile, t_tile, "tile")

#define KW (METH_VARARGS | METH_KEYWORDS)

static PyMethodDef shape_methods[] = {
    {"split", CF(t_split), KW, "split(split_size_or_sections, dim=0)"},
    {"chunk", CF(t_chunk), KW, "chunk(chunks, dim=0)"},
    {"unbind", CF(t_unbind), KW, "unbind(dim=0)"},
    {"narrow", CF(t_narrow), KW, "narrow(dim, start, length): a view"},
    {"flip", CF(t_flip), KW, "flip(dims)"},
    {"fliplr", CF(t_fliplr), KW, "fliplr()"},
    {"flipud", CF(t_flipud), KW, "flipud()"},
    {"movedim", CF(t_movedim), KW, "movedim(source, destination): a view"},
    {"moveaxis", CF(t_movedim), KW, "moveaxis(source, destination): a view"},
    {"broadcast_to", CF(t_broadcast_to), KW, "broadcast_to(size): a view"},
    {"roll", CF(t_roll), KW, "roll(shifts, dims=None)"},
    {"repeat", CF(t_repeat), KW, "repeat(*repeats): a tiled copy"},
    {"tile", CF(t_tile), KW, "tile(dims)"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef shape_functions[] = {
    {"cat", CF(mod_cat), KW, "cat(tensors, dim=0)"},
    {"concat", CF(mod_cat), KW, "concat(tensors, dim=0)"},
    {"concatenate", CF(mod_cat), KW, "concatenate(tensors, dim=0)"},
    {"stack", CF(mod_stack), KW, "stack(tensors, dim=0)"},
    {"split", CF(mod_split), KW, "split(tensor, split_size_or_sections, dim=0)"},
    {"chunk", CF(mod_chunk), KW, "chunk(input, chunks, dim=0)"},
    {"unbind", CF(mod_unbind), KW, "unbind(input, dim=0)"},
    {"narrow", CF(mod_narrow), KW, "narrow(input, dim, start, length)"},
    {"flip", CF(mod_flip), KW, "flip(input, dims)"},
    {"fliplr", CF(mod_fliplr), KW, "fliplr(input)"},
    {"flipud", CF(mod_flipud), KW, "flipud(input)"},
    {"movedim", CF(mod_movedim), KW, "movedim(input, source, destination)"},
    {"moveaxis", CF(mod_movedim), KW, "moveaxis(input, source, destination)"},
    {"broadcast_to", CF(mod_broadcast_to), KW, "broadcast_to(input, size)"},
    {"roll", CF(mod_roll), KW, "roll(input, shifts, dims=None)"},
    {"tile", CF(mod_tile), KW, "tile(input, dims)"},
    {"linspace", CF(mod_linspace), KW, "linspace(start, end, steps, *, dtype=None, device=None)"},
    {NULL, NULL, 0, NULL},
};

int fpy_shape_init(PyObject *module)
{
    if (fpy_tensor_add_methods(shape_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, shape_functions);
}

/* The C half of ferry.distributed: thin module functions (`_dist_*` on ferry._ferry) over
 * ferry/distributed.h, and the group handle type. python/ferry/distributed/__init__.py
 * gives them torch.distributed's names, keywords, defaults and exception types; the
 * checks that need Python objects (op types, rank lists, before-init) live there, the
 * rest is the C API's. Every call that talks to other processes runs without the GIL,
 * so other Python threads keep running while a rank waits for its peers. */
#include "ferry_py.h"

#include <ferry/distributed.h>

/* Groups die with ferry_dist_finalize; a handle made before a finalize must not reach
 * the C API afterwards (its pointer is freed). Every init starts a new generation. */
static unsigned long generation = 1;

typedef struct {
    PyObject_HEAD
    ferry_dist_group *g;
    unsigned long gen;
} FpyDistGroup;

static PyTypeObject FpyDistGroup_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry._ferry._DistGroup",
    .tp_basicsize = sizeof(FpyDistGroup),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A ferry_dist_group handle; freed by destroy_process_group.",
};

/* "O&" converter: None (the world) or a live group handle. */
static int group_converter(PyObject *o, void *out)
{
    if (o == Py_None) {
        *(ferry_dist_group **)out = NULL;
        return 1;
    }
    if (!PyObject_TypeCheck(o, &FpyDistGroup_Type)) {
        PyErr_Format(PyExc_TypeError, "expected a process group or None, got %s",
                     Py_TYPE(o)->tp_name);
        return 0;
    }
    FpyDistGroup *h = (FpyDistGroup *)o;
    if (h->gen != generation || !ferry_dist_is_initialized()) {
        PyErr_SetString(PyExc_ValueError,
                        "this process group was destroyed by destroy_process_group()");
        return 0;
    }
    *(ferry_dist_group **)out = h->g;
    return 1;
}

/* "O&" converter: a ferry.Tensor's handle (borrowed from the argument object). */
static int tensor_converter(PyObject *o, void *out)
{
    if (!FpyTensor_Check(o)) {
        PyErr_Format(PyExc_TypeError,
                     "Invalid function argument. Expected parameter `tensor` of type "
                     "ferry.Tensor but got %s instead.",
                     Py_TYPE(o)->tp_name);
        return 0;
    }
    *(ferry_tensor **)out = FPY_T(o);
    return 1;
}

static PyObject *status_result(ferry_status st)
{
    if (st != FERRY_OK)
        return fpy_error();
    Py_RETURN_NONE;
}

static PyObject *d_init(PyObject *self, PyObject *args)
{
    const char *backend = NULL;
    if (!PyArg_ParseTuple(args, "z:_dist_init", &backend))
        return NULL;
    ferry_status st;
    /* MPI_Init may wait for the launcher's other processes. */
    Py_BEGIN_ALLOW_THREADS
    st = ferry_dist_init(backend);
    Py_END_ALLOW_THREADS
    if (st == FERRY_OK)
        generation++;
    return status_result(st);
}

static PyObject *d_is_initialized(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(ferry_dist_is_initialized());
}

static PyObject *d_backend(PyObject *self, PyObject *unused)
{
    const char *b = ferry_dist_backend();
    if (!b)
        Py_RETURN_NONE;
    return PyUnicode_FromString(b);
}

static PyObject *d_finalize(PyObject *self, PyObject *unused)
{
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_dist_finalize();
    Py_END_ALLOW_THREADS
    generation++;
    return status_result(st);
}

static PyObject *d_barrier(PyObject *self, PyObject *args)
{
    ferry_dist_group *g = NULL;
    if (!PyArg_ParseTuple(args, "O&:_dist_barrier", group_converter, &g))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_dist_group_barrier(g);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_new_group(PyObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "_dist_new_group: ranks must be a sequence of ints");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > INT32_MAX) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "new_group: too many ranks");
        return NULL;
    }
    int *ranks = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *ranks);
    if (!ranks) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t r;
        if (fpy_int64(PySequence_Fast_GET_ITEM(seq, i), &r) < 0 || r < INT32_MIN ||
            r > INT32_MAX) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "new_group: rank %lld is out of range",
                             (long long)r);
            PyMem_Free(ranks);
            Py_DECREF(seq);
            return NULL;
        }
        ranks[i] = (int)r;
    }
    Py_DECREF(seq);
    FpyDistGroup *h = PyObject_New(FpyDistGroup, &FpyDistGroup_Type);
    if (!h) {
        PyMem_Free(ranks);
        return NULL;
    }
    ferry_dist_group *g;
    Py_BEGIN_ALLOW_THREADS
    g = ferry_dist_new_group(ranks, (int)n);
    Py_END_ALLOW_THREADS
    PyMem_Free(ranks);
    if (!g) {
        Py_DECREF(h);
        return fpy_error();
    }
    h->g = g;
    h->gen = generation;
    return (PyObject *)h;
}

/* (rank in group or -1, group size), or the world's; the C API's error before init. */
static PyObject *d_group_info(PyObject *self, PyObject *args)
{
    ferry_dist_group *g = NULL;
    if (!PyArg_ParseTuple(args, "O&:_dist_group_info", group_converter, &g))
        return NULL;
    int r = g ? ferry_dist_group_rank(g) : ferry_dist_rank();
    int n = g ? ferry_dist_group_size(g) : ferry_dist_world_size();
    if (!g && (r < 0 || n < 0))
        return fpy_error();
    return Py_BuildValue("ii", r, n);
}

static PyObject *d_all_reduce(PyObject *self, PyObject *args)
{
    ferry_tensor *t;
    int op;
    ferry_dist_group *g;
    if (!PyArg_ParseTuple(args, "O&iO&:_dist_all_reduce", tensor_converter, &t, &op,
                          group_converter, &g))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_all_reduce(t, (ferry_dist_op)op, g);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_broadcast(PyObject *self, PyObject *args)
{
    ferry_tensor *t;
    int root;
    ferry_dist_group *g;
    if (!PyArg_ParseTuple(args, "O&iO&:_dist_broadcast", tensor_converter, &t, &root,
                          group_converter, &g))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_broadcast(t, root, g);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_reduce(PyObject *self, PyObject *args)
{
    ferry_tensor *t;
    int root, op;
    ferry_dist_group *g;
    if (!PyArg_ParseTuple(args, "O&iiO&:_dist_reduce", tensor_converter, &t, &root, &op,
                          group_converter, &g))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_reduce(t, root, (ferry_dist_op)op, g);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_all_gather(PyObject *self, PyObject *args)
{
    ferry_tensor *out, *in;
    ferry_dist_group *g;
    if (!PyArg_ParseTuple(args, "O&O&O&:_dist_all_gather", tensor_converter, &out,
                          tensor_converter, &in, group_converter, &g))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_all_gather(out, in, g);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_reduce_scatter(PyObject *self, PyObject *args)
{
    ferry_tensor *out, *in;
    int op;
    ferry_dist_group *g;
    if (!PyArg_ParseTuple(args, "O&O&iO&:_dist_reduce_scatter", tensor_converter, &out,
                          tensor_converter, &in, &op, group_converter, &g))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_reduce_scatter(out, in, (ferry_dist_op)op, g);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_all_to_all(PyObject *self, PyObject *args)
{
    ferry_tensor *out, *in;
    ferry_dist_group *g;
    if (!PyArg_ParseTuple(args, "O&O&O&:_dist_all_to_all", tensor_converter, &out,
                          tensor_converter, &in, group_converter, &g))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_all_to_all(out, in, g);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_send(PyObject *self, PyObject *args)
{
    ferry_tensor *t;
    int peer, tag;
    if (!PyArg_ParseTuple(args, "O&ii:_dist_send", tensor_converter, &t, &peer, &tag))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_send(t, peer, tag);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_recv(PyObject *self, PyObject *args)
{
    ferry_tensor *t;
    int peer, tag;
    if (!PyArg_ParseTuple(args, "O&ii:_dist_recv", tensor_converter, &t, &peer, &tag))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_recv(t, peer, tag);
    Py_END_ALLOW_THREADS
    return status_result(st);
}

static PyObject *d_recv_any(PyObject *self, PyObject *args)
{
    ferry_tensor *t;
    int tag, src = -1;
    if (!PyArg_ParseTuple(args, "O&i:_dist_recv_any", tensor_converter, &t, &tag))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_recv_any(t, tag, &src);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return fpy_error();
    return PyLong_FromLong(src);
}

/* None, or a sequence of one int row count per rank of the group, into rows[n]. */
static int splits_of(PyObject *o, const char *name, int n, int64_t *rows, int64_t **out)
{
    *out = NULL;
    if (o == Py_None)
        return 0;
    PyObject *seq = PySequence_Fast(o, "split sizes must be a sequence of ints");
    if (!seq)
        return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    if (len != n) {
        PyErr_Format(PyExc_RuntimeError,
                     "all_to_all_single: %s has %zd entries, but the group has %d ranks "
                     "(Number of tensor splits not equal to group size)",
                     name, len, n);
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyLong_Check(item)) {
            PyErr_Format(PyExc_TypeError, "all_to_all_single: %s must hold ints, got %s", name,
                         Py_TYPE(item)->tp_name);
            Py_DECREF(seq);
            return -1;
        }
        long long v = PyLong_AsLongLong(item);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        rows[i] = v;
    }
    Py_DECREF(seq);
    *out = rows;
    return 0;
}

static PyObject *d_all_to_all_v(PyObject *self, PyObject *args)
{
    ferry_tensor *out, *in;
    PyObject *os, *is;
    ferry_dist_group *g;
    if (!PyArg_ParseTuple(args, "O&OO&OO&:_dist_all_to_all_v", tensor_converter, &out, &os,
                          tensor_converter, &in, &is, group_converter, &g))
        return NULL;
    int n = ferry_dist_group_size(g);
    if (n < 1)
        return fpy_error();
    int64_t *rows = PyMem_Malloc(2 * (size_t)n * sizeof *rows);
    if (!rows)
        return PyErr_NoMemory();
    int64_t *osplits, *isplits;
    if (splits_of(os, "output_split_sizes", n, rows, &osplits) < 0 ||
        splits_of(is, "input_split_sizes", n, rows + n, &isplits) < 0) {
        PyMem_Free(rows);
        return NULL;
    }
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_all_to_all_v(out, osplits, in, isplits, g);
    Py_END_ALLOW_THREADS
    PyMem_Free(rows);
    return status_result(st);
}

/* [(name, None or why not)] for every communicator ferry finds. */
static PyObject *d_backends(PyObject *self, PyObject *unused)
{
    size_t n;
    Py_BEGIN_ALLOW_THREADS
    n = ferry_dist_backends();
    Py_END_ALLOW_THREADS
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < n; i++) {
        const char *name = ferry_dist_backend_name(i);
        if (!name)
            continue;
        const char *why = ferry_dist_backend_status(name);
        PyObject *item = Py_BuildValue("(sz)", name, why);
        if (!item || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

static PyMethodDef dist_functions[] = {
    {"_dist_init", d_init, METH_VARARGS, "_dist_init(backend or None)"},
    {"_dist_is_initialized", d_is_initialized, METH_NOARGS, NULL},
    {"_dist_backend", d_backend, METH_NOARGS, NULL},
    {"_dist_finalize", d_finalize, METH_NOARGS, NULL},
    {"_dist_barrier", d_barrier, METH_VARARGS, "_dist_barrier(group)"},
    {"_dist_new_group", d_new_group, METH_O, "_dist_new_group(ranks)"},
    {"_dist_group_info", d_group_info, METH_VARARGS, "_dist_group_info(group): (rank, size)"},
    {"_dist_all_reduce", d_all_reduce, METH_VARARGS, "_dist_all_reduce(t, op, group)"},
    {"_dist_broadcast", d_broadcast, METH_VARARGS, "_dist_broadcast(t, root, group)"},
    {"_dist_reduce", d_reduce, METH_VARARGS, "_dist_reduce(t, root, op, group)"},
    {"_dist_all_gather", d_all_gather, METH_VARARGS, "_dist_all_gather(out, in, group)"},
    {"_dist_reduce_scatter", d_reduce_scatter, METH_VARARGS,
     "_dist_reduce_scatter(out, in, op, group)"},
    {"_dist_all_to_all", d_all_to_all, METH_VARARGS, "_dist_all_to_all(out, in, group)"},
    {"_dist_send", d_send, METH_VARARGS, "_dist_send(t, dst, tag)"},
    {"_dist_recv", d_recv, METH_VARARGS, "_dist_recv(t, src, tag)"},
    {"_dist_recv_any", d_recv_any, METH_VARARGS, "_dist_recv_any(t, tag) -> sender's rank"},
    {"_dist_all_to_all_v", d_all_to_all_v, METH_VARARGS,
     "_dist_all_to_all_v(out, out_splits, in, in_splits, group)"},
    {"_dist_backends", d_backends, METH_NOARGS, "[(name, None or why not)]"},
    {NULL, NULL, 0, NULL},
};

int fpy_distributed_init(PyObject *module)
{
    if (PyType_Ready(&FpyDistGroup_Type) < 0)
        return -1;
    return PyModule_AddFunctions(module, dist_functions);
}

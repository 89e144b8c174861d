/* DLPack in Python (the array API's __dlpack__ / __dlpack_device__ / from_dlpack):
 * capsules over ferry's zero-copy exports, and tensors over other libraries' capsules.
 * https://dmlc.github.io/dlpack/latest/python_spec.html */
#include "ferry_py.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char name_versioned[] = "dltensor_versioned";
static const char name_used_versioned[] = "used_dltensor_versioned";
static const char name_legacy[] = "dltensor";
static const char name_used_legacy[] = "used_dltensor";

/* ------------------------------------------------------------------------ */
/* Export                                                                   */
/* ------------------------------------------------------------------------ */

/* A capsule's managed tensor must be deleted exactly once whatever its consumer does.
 * The spec: a consumer that takes the struct renames the capsule ("used_dltensor...")
 * and later calls its deleter; the capsule's destructor deletes only an unrenamed one.
 * Some consumers call the deleter on an error path without renaming (PyTorch refusing
 * an OpenCL device did, and the destructor then freed the struct a second time), so
 * the struct's deleter and the capsule's destructor share a guard: whichever comes
 * first runs ferry's deleter, the other does nothing, and the last of the two frees
 * the guard. The struct's deleter may run on any thread without the GIL: atomics and
 * free() only. */
typedef struct {
    atomic_int refs;     /* one for the struct's deleter, one for the capsule */
    atomic_bool deleted; /* ferry's deleter has run */
    void *manager_ctx;   /* ferry's, restored before its deleter runs */
    void (*deleter_versioned)(DLManagedTensorVersioned *);
    void (*deleter_legacy)(DLManagedTensor *);
} export_guard;

static void guard_release(export_guard *g)
{
    if (atomic_fetch_sub(&g->refs, 1) == 1)
        free(g);
}

/* Runs ferry's deleter of the struct at most once; true when this call ran it. */
static bool guard_delete(export_guard *g, DLManagedTensorVersioned *mv, DLManagedTensor *ml)
{
    if (atomic_exchange(&g->deleted, true))
        return false;
    if (mv) {
        mv->manager_ctx = g->manager_ctx;
        mv->deleter = g->deleter_versioned;
        mv->deleter(mv);
    } else {
        ml->manager_ctx = g->manager_ctx;
        ml->deleter = g->deleter_legacy;
        ml->deleter(ml);
    }
    return true;
}

static void guarded_deleter_versioned(DLManagedTensorVersioned *m)
{
    export_guard *g = m->manager_ctx;
    guard_delete(g, m, NULL);
    guard_release(g);
}

static void guarded_deleter_legacy(DLManagedTensor *m)
{
    export_guard *g = m->manager_ctx;
    guard_delete(g, NULL, m);
    guard_release(g);
}

/* The capsule's destructor. An unrenamed capsule whose struct nobody deleted still
 * owns it; then the struct's deleter will never run, so its guard reference goes too.
 * Python's error state is saved because destructors may run while an exception is
 * being raised. */
static void capsule_destructor(PyObject *capsule)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    export_guard *g = PyCapsule_GetContext(capsule);
    const char *name = PyCapsule_GetName(capsule);
    if (!g || !name) {
        PyErr_WriteUnraisable(capsule);
    } else {
        bool versioned = strcmp(name, name_versioned) == 0;
        if (versioned || strcmp(name, name_legacy) == 0) {
            void *m = PyCapsule_GetPointer(capsule, name);
            if (m && guard_delete(g, versioned ? m : NULL, versioned ? NULL : m))
                guard_release(g);
        }
        guard_release(g);
    }
    PyErr_Restore(type, value, tb);
}

/* A capsule over a fresh export m (versioned or not), its deleter guarded; on failure
 * m is deleted and NULL returned with an exception. */
static PyObject *make_capsule(DLManagedTensorVersioned *mv, DLManagedTensor *ml)
{
    export_guard *g = malloc(sizeof *g);
    if (!g) {
        if (mv)
            mv->deleter(mv);
        else
            ml->deleter(ml);
        return PyErr_NoMemory();
    }
    atomic_init(&g->refs, 1);
    atomic_init(&g->deleted, false);
    if (mv) {
        g->manager_ctx = mv->manager_ctx;
        g->deleter_versioned = mv->deleter;
        mv->manager_ctx = g;
        mv->deleter = guarded_deleter_versioned;
    } else {
        g->manager_ctx = ml->manager_ctx;
        g->deleter_legacy = ml->deleter;
        ml->manager_ctx = g;
        ml->deleter = guarded_deleter_legacy;
    }
    PyObject *capsule = mv ? PyCapsule_New(mv, name_versioned, capsule_destructor)
                           : PyCapsule_New(ml, name_legacy, capsule_destructor);
    if (!capsule) {
        if (mv)
            mv->deleter(mv);
        else
            ml->deleter(ml);
        return NULL;
    }
    atomic_fetch_add(&g->refs, 1);
    PyCapsule_SetContext(capsule, g); /* cannot fail on a valid capsule */
    return capsule;
}

/* DLPack's device of a tensor; -1 for a backend DLPack has no type for, with a
 * BufferError when `raise`. */
static int dl_device_of(ferry_tensor *t, DLDevice *out, bool raise)
{
    /* The plugin's own declaration, so a backend of any name (sim's queued variant
     * declares kDLExtDev) answers what the core would export. */
    int32_t type, id;
    if (ferry_tensor_dlpack_device(t, &type, &id) == FERRY_OK) {
        out->device_type = (DLDeviceType)type;
        out->device_id = id;
    } else {
        ferry_device d = ferry_tensor_device(t);
        char dev[48];
        if (!raise)
            return -1;
        PyErr_Format(PyExc_BufferError,
                     "%s tensors cannot be exported through DLPack (it has no device type for "
                     "the %s backend). Use tensor.cpu() first, or __dlpack__(dl_device=(1, 0)) "
                     "for a host copy.",
                     fpy_tensor_device_str(t, dev), d.type);
        return -1;
    }
    return 0;
}

static int parse_pair(PyObject *o, const char *what, long *a, long *b)
{
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 2) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple of two ints, got %R", what, o);
        return -1;
    }
    *a = PyLong_AsLong(PyTuple_GET_ITEM(o, 0));
    if (*a == -1 && PyErr_Occurred())
        return -1;
    *b = PyLong_AsLong(PyTuple_GET_ITEM(o, 1));
    if (*b == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

PyObject *fpy_tensor_dlpack(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"stream", "max_version", "dl_device", "copy", NULL};
    PyObject *stream = Py_None, *max_version = Py_None, *dl_device = Py_None, *copy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOO:__dlpack__", kwlist, &stream,
                                     &max_version, &dl_device, &copy))
        return NULL;
    ferry_tensor *t = FPY_T(self);
    /* The spec's stream: an int (a pointer-sized value on CUDA) or None. PyTorch's check
     * and exception; bool is an int to Python but no stream. */
    int64_t stream_value = FERRY_DLPACK_NO_STREAM;
    if (stream != Py_None) {
        if (!PyLong_Check(stream) || PyBool_Check(stream)) {
            PyErr_Format(PyExc_TypeError, "__dlpack__: stream must be an int or None, got %s",
                         Py_TYPE(stream)->tp_name);
            return NULL;
        }
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(stream, &overflow);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        if (overflow || v < -1) {
            PyErr_Format(PyExc_BufferError,
                         "__dlpack__: stream %R is no DLPack stream (the spec's values are -1 "
                         "and the device's streams, >= 0)",
                         stream);
            return NULL;
        }
        stream_value = v;
    }
    /* A consumer that names no version (or one before 1.0) reads only the legacy struct. */
    bool versioned = false;
    if (max_version != Py_None) {
        long major, minor;
        if (parse_pair(max_version, "max_version", &major, &minor) < 0)
            return NULL;
        versioned = major >= 1;
    }
    if (copy != Py_None && copy != Py_True && copy != Py_False) {
        PyErr_SetString(PyExc_TypeError, "copy must be True, False or None");
        return NULL;
    }
    DLDevice own = {kDLCPU, 0};
    bool own_known = dl_device_of(t, &own, false) == 0;
    bool to_host = false;
    if (dl_device != Py_None) {
        long type, id;
        if (parse_pair(dl_device, "dl_device", &type, &id) < 0)
            return NULL;
        bool same = own_known && type == own.device_type && id == own.device_id;
        if (!same) {
            if (type != kDLCPU || id != 0) {
                PyErr_Format(PyExc_BufferError,
                             "__dlpack__: can't export to dl_device (%ld, %ld): ferry exports a "
                             "tensor on its own device or copies it to the host (1, 0)",
                             type, id);
                return NULL;
            }
            if (copy == Py_False) {
                char dev[48];
                PyErr_Format(PyExc_BufferError,
                             "__dlpack__: exporting a %s tensor to the host needs a copy, but "
                             "copy=False",
                             fpy_tensor_device_str(t, dev));
                return NULL;
            }
            to_host = true;
        }
    }
    if (!to_host) {
        if (!own_known) {
            dl_device_of(t, &own, true); /* raises the BufferError naming the remedy */
            return NULL;
        }
        /* The spec: stream is None on devices without streams. On others the consumer's
         * stream waits for ferry's queued work (the device is synchronised where the
         * backend cannot make a foreign stream wait). */
        if (own.device_type == kDLCPU && stream != Py_None) {
            PyErr_SetString(PyExc_BufferError,
                            "__dlpack__: stream must be None for a cpu tensor");
            return NULL;
        }
    }
    bool copied = to_host || copy == Py_True;
    /* A host copy is done (and synchronous) before the export; a consumer on the host
     * has no stream. */
    if (to_host)
        stream_value = FERRY_DLPACK_NO_STREAM;
    ferry_tensor *src = ferry_tensor_retain(t);
    if (copied) {
        ferry_tensor *c;
        FPY_MAYBE_NOGIL(fpy_may_block(t), c = to_host ? ferry_tensor_cpu(t) : ferry_tensor_clone(t));
        /* to() returns t itself for a tensor already on the host */
        if (c == t) {
            ferry_tensor_release(c);
            FPY_MAYBE_NOGIL(fpy_may_block(t), c = ferry_tensor_clone(t));
        }
        ferry_tensor_release(src);
        if (!c)
            return fpy_export_error();
        src = c;
    }
    PyObject *capsule = NULL;
    if (versioned) {
        DLManagedTensorVersioned *m;
        FPY_MAYBE_NOGIL(!fpy_on_cpu(src), m = ferry_tensor_to_dlpack_ex(src, stream_value));
        if (!m) {
            ferry_tensor_release(src);
            return fpy_export_error();
        }
        /* The struct is ours until the capsule is handed over. */
        if (copied)
            m->flags |= DLPACK_FLAG_BITMASK_IS_COPIED;
        capsule = make_capsule(m, NULL);
    } else {
        if (ferry_tensor_is_read_only(src)) {
            ferry_tensor_release(src);
            PyErr_SetString(PyExc_BufferError,
                            "__dlpack__: a read-only tensor is exported only as a versioned "
                            "capsule (max_version=(1, 0) or later): the legacy 'dltensor' "
                            "capsule cannot mark memory read-only");
            return NULL;
        }
        DLManagedTensor *m;
        FPY_MAYBE_NOGIL(!fpy_on_cpu(src),
                        m = ferry_tensor_to_dlpack_unversioned_ex(src, stream_value));
        if (!m) {
            ferry_tensor_release(src);
            return fpy_export_error();
        }
        capsule = make_capsule(NULL, m);
    }
    /* The managed tensor holds the storage; the handle is no longer needed. */
    ferry_tensor_release(src);
    return capsule;
}

PyObject *fpy_tensor_dlpack_device(PyObject *self, PyObject *unused)
{
    DLDevice d;
    if (dl_device_of(FPY_T(self), &d, true) < 0)
        return NULL;
    return Py_BuildValue("(ii)", (int)d.device_type, (int)d.device_id);
}

/* ------------------------------------------------------------------------ */
/* Import                                                                   */
/* ------------------------------------------------------------------------ */

/* Takes over the managed tensor of an unconsumed capsule. On success the capsule is
 * renamed "used_...", so its producer's destructor leaves the struct to ferry; on
 * failure it is untouched and still deletes its struct when it dies. */
static ferry_tensor *consume(PyObject *capsule)
{
    ferry_tensor *t;
    if (PyCapsule_IsValid(capsule, name_versioned)) {
        DLManagedTensorVersioned *m = PyCapsule_GetPointer(capsule, name_versioned);
        if (!(t = ferry_tensor_from_dlpack(m)))
            return (ferry_tensor *)fpy_error();
        if (PyCapsule_SetName(capsule, name_used_versioned) < 0)
            goto fail;
        return t;
    }
    if (PyCapsule_IsValid(capsule, name_legacy)) {
        DLManagedTensor *m = PyCapsule_GetPointer(capsule, name_legacy);
        if (!(t = ferry_tensor_from_dlpack_unversioned(m)))
            return (ferry_tensor *)fpy_error();
        if (PyCapsule_SetName(capsule, name_used_legacy) < 0)
            goto fail;
        return t;
    }
    const char *name = PyCapsule_GetName(capsule);
    PyErr_Clear();
    if (name && (strcmp(name, name_used_versioned) == 0 || strcmp(name, name_used_legacy) == 0))
        PyErr_SetString(PyExc_RuntimeError,
                        "from_dlpack: this DLPack capsule was already consumed; a capsule can "
                        "be imported once");
    else
        PyErr_Format(PyExc_RuntimeError,
                     "from_dlpack: expected a capsule named 'dltensor' or "
                     "'dltensor_versioned', got '%s'",
                     name ? name : "(null)");
    return NULL;
fail:
    /* Renaming a valid capsule cannot fail; should it, ferry keeps the struct and the
     * capsule's destructor would free it twice, so this leaks the tensor instead. */
    return NULL;
}

/* The stream ferry reads on, for the producer's __dlpack__(stream=...): ferry's current
 * stream of the device x's __dlpack_device__() names (a new reference), or None where
 * that device has no DLPack streams, x names no device, or ferry does not serve it (the
 * import itself then says why). NULL with an exception when __dlpack_device__ fails. */
static PyObject *consumer_stream(PyObject *x)
{
    PyObject *method = PyObject_GetAttrString(x, "__dlpack_device__");
    if (!method) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *d = PyObject_CallNoArgs(method);
    Py_DECREF(method);
    if (!d)
        return NULL;
    long type, id;
    int rc = parse_pair(d, "__dlpack_device__()", &type, &id);
    Py_DECREF(d);
    if (rc < 0)
        return NULL;
    int64_t stream;
    if (type == kDLCPU || type == kDLCUDAHost || type > INT32_MAX || type < 0 ||
        id > INT32_MAX || id < 0 ||
        ferry_dlpack_current_stream((int32_t)type, (int32_t)id, &stream) != FERRY_OK)
        Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)stream);
}

/* x.__dlpack__(max_version=(1, 0), stream=...); a producer older than DLPack 1.0 does not
 * know max_version and raises TypeError, and is asked again without it (the stream
 * keyword is older). */
static PyObject *call_dlpack(PyObject *method, PyObject *stream)
{
    PyObject *empty = PyTuple_New(0);
    if (!empty)
        return NULL;
    PyObject *kw = stream == Py_None
                       ? Py_BuildValue("{s(ii)}", "max_version", 1, 0)
                       : Py_BuildValue("{s(ii)sO}", "max_version", 1, 0, "stream", stream);
    PyObject *capsule = kw ? PyObject_Call(method, empty, kw) : NULL;
    Py_XDECREF(kw);
    if (!capsule && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        kw = stream == Py_None ? NULL : Py_BuildValue("{sO}", "stream", stream);
        capsule = stream == Py_None || kw ? PyObject_Call(method, empty, kw) : NULL;
        Py_XDECREF(kw);
    }
    Py_DECREF(empty);
    return capsule;
}

PyObject *fpy_from_dlpack(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"x", "device", "copy", NULL};
    PyObject *x, *copy = Py_None;
    fpy_device_arg dev = {false, NULL, {0}};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$O&O:from_dlpack", kwlist, &x,
                                     fpy_device_converter, &dev, &copy))
        return NULL;
    PyObject *capsule;
    if (PyCapsule_CheckExact(x)) {
        capsule = Py_NewRef(x);
    } else {
        PyObject *method = PyObject_GetAttrString(x, "__dlpack__");
        if (!method) {
            PyErr_Format(PyExc_TypeError,
                         "from_dlpack: expected an object with __dlpack__ (a NumPy, JAX, "
                         "PyTorch, CuPy or ferry array) or a DLPack capsule, got %s",
                         Py_TYPE(x)->tp_name);
            return NULL;
        }
        /* The spec: the consumer passes the stream it will read on, and the producer
         * orders its work before it; ferry's import then counts as written there. */
        PyObject *stream = consumer_stream(x);
        capsule = stream ? call_dlpack(method, stream) : NULL;
        Py_XDECREF(stream);
        Py_DECREF(method);
        if (!capsule)
            return NULL;
        if (!PyCapsule_CheckExact(capsule)) {
            PyErr_Format(PyExc_TypeError, "from_dlpack: __dlpack__ returned %s, not a capsule",
                         Py_TYPE(capsule)->tp_name);
            Py_DECREF(capsule);
            return NULL;
        }
    }
    ferry_tensor *t = consume(capsule);
    Py_DECREF(capsule);
    if (!t)
        return NULL;
    if (dev.given || copy == Py_True) {
        ferry_tensor *r;
        bool block = fpy_may_block(t) || dev.given;
        FPY_MAYBE_NOGIL(block, r = dev.given ? ferry_tensor_to(t, dev.str) : ferry_tensor_clone(t));
        if (r == t && copy == Py_True) {
            ferry_tensor_release(r);
            FPY_MAYBE_NOGIL(block, r = ferry_tensor_clone(t));
        }
        ferry_tensor_release(t);
        if (!(t = r))
            return fpy_error();
    }
    return fpy_wrap(t);
}

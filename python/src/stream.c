/* ferry.Stream and ferry.Event over ferry_stream / ferry_event, the stream state behind
 * `with ferry.stream(s):` (ferry/__init__.py), and Tensor.pin_memory() / is_pinned().
 * Names follow torch.cuda.Stream and torch.cuda.Event. */
#include <string.h>

#include "ferry_py.h"

typedef struct {
    PyObject_HEAD
    ferry_stream *s;
    char device[48];
} FpyStream;

typedef struct {
    PyObject_HEAD
    ferry_event *e; /* NULL until recorded */
    char device[48];
} FpyEvent;

static PyTypeObject FpyStream_Type;
static PyTypeObject FpyEvent_Type;

/* ---- Stream ---- */

static PyObject *stream_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"device", NULL};
    fpy_device_arg dev = {false, NULL, {0}};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&:Stream", kwlist, fpy_device_converter,
                                     &dev))
        return NULL;
    if (!dev.given) {
        PyErr_SetString(PyExc_ValueError, "Stream(): device must not be None");
        return NULL;
    }
    ferry_stream *s = ferry_stream_create(dev.str);
    if (!s)
        return fpy_error();
    FpyStream *self = (FpyStream *)type->tp_alloc(type, 0);
    if (!self) {
        ferry_stream_release(s);
        return NULL;
    }
    self->s = s;
    snprintf(self->device, sizeof self->device, "%s", dev.str);
    return (PyObject *)self;
}

static void stream_dealloc(PyObject *o)
{
    ferry_stream_release(((FpyStream *)o)->s);
    Py_TYPE(o)->tp_free(o);
}

static PyObject *stream_synchronize(PyObject *o, PyObject *unused)
{
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_stream_synchronize(((FpyStream *)o)->s);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return fpy_error();
    Py_RETURN_NONE;
}

static PyObject *stream_wait_event(PyObject *o, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &FpyEvent_Type)) {
        PyErr_Format(PyExc_TypeError, "wait_event(): expected a ferry.Event, got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    FpyEvent *e = (FpyEvent *)arg;
    if (!e->e) /* as PyTorch: waiting for an event never recorded is a no-op */
        Py_RETURN_NONE;
    if (ferry_stream_wait_event(((FpyStream *)o)->s, e->e) != FERRY_OK)
        return fpy_error();
    Py_RETURN_NONE;
}

static PyObject *event_record_on(FpyEvent *e, FpyStream *s);

static PyObject *stream_record_event(PyObject *o, PyObject *args)
{
    PyObject *ev = Py_None;
    if (!PyArg_ParseTuple(args, "|O:record_event", &ev))
        return NULL;
    FpyEvent *e;
    if (ev == Py_None) {
        e = PyObject_New(FpyEvent, &FpyEvent_Type);
        if (!e)
            return NULL;
        e->e = NULL;
        snprintf(e->device, sizeof e->device, "%s", ((FpyStream *)o)->device);
    } else if (PyObject_TypeCheck(ev, &FpyEvent_Type)) {
        e = (FpyEvent *)Py_NewRef(ev);
    } else {
        PyErr_Format(PyExc_TypeError, "record_event(): expected a ferry.Event, got %s",
                     Py_TYPE(ev)->tp_name);
        return NULL;
    }
    PyObject *r = event_record_on(e, (FpyStream *)o);
    if (!r) {
        Py_DECREF(e);
        return NULL;
    }
    Py_DECREF(r);
    return (PyObject *)e;
}

static PyObject *stream_get_device(PyObject *o, void *closure)
{
    ferry_device d;
    if (ferry_device_parse(((FpyStream *)o)->device, &d) != FERRY_OK)
        return fpy_error();
    return fpy_device_object(d);
}

static PyObject *stream_repr(PyObject *o)
{
    return PyUnicode_FromFormat("<ferry.Stream device=%s at %p>", ((FpyStream *)o)->device,
                                (void *)((FpyStream *)o)->s);
}

static PyMethodDef stream_methods[] = {
    {"synchronize", stream_synchronize, METH_NOARGS, "waits for the work queued on the stream"},
    {"wait_event", stream_wait_event, METH_O,
     "wait_event(event): work queued after this waits for event (on the device)"},
    {"record_event", stream_record_event, METH_VARARGS,
     "record_event(event=None): records an event (a new one when None) on this stream"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stream_getset[] = {
    {"device", stream_get_device, NULL, "the stream's device", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FpyStream_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.Stream",
    .tp_basicsize = sizeof(FpyStream),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Stream(device): a queue of work on a device (in order, on the host, for a "
              "backend without queues)",
    .tp_new = stream_new,
    .tp_dealloc = stream_dealloc,
    .tp_methods = stream_methods,
    .tp_getset = stream_getset,
    .tp_repr = stream_repr,
};

/* ---- Event ---- */

static PyObject *event_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"device", "enable_timing", NULL};
    fpy_device_arg dev = {false, NULL, {0}};
    fpy_bool_arg timing = {"Event", "enable_timing", 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O&O&:Event", kwlist, fpy_device_converter,
                                     &dev, fpy_bool_converter, &timing))
        return NULL;
    FpyEvent *self = (FpyEvent *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->e = NULL;
    snprintf(self->device, sizeof self->device, "%s", dev.given ? dev.str : "");
    return (PyObject *)self;
}

static void event_dealloc(PyObject *o)
{
    ferry_event_release(((FpyEvent *)o)->e);
    Py_TYPE(o)->tp_free(o);
}

/* Records on stream s (NULL: the current stream of the event's device). A ferry event is
 * recorded on the thread's current stream, so s is made current around the call. */
static PyObject *event_record_on(FpyEvent *e, FpyStream *s)
{
    const char *device = s ? s->device : e->device;
    if (!*device) {
        PyErr_SetString(PyExc_ValueError,
                        "Event.record(): give a stream, or create the Event with a device");
        return NULL;
    }
    ferry_stream *prev = s ? ferry_stream_get_current(device) : NULL;
    if (s && ferry_stream_set_current(s->s) != FERRY_OK) {
        ferry_stream_release(prev);
        return fpy_error();
    }
    ferry_event *ne = ferry_event_record(device);
    if (s) {
        /* Back to what was current: the previous stream, or the default. */
        if (prev)
            ferry_stream_set_current(prev);
        else
            ferry_stream_set_current(NULL);
        ferry_stream_release(prev);
    }
    if (!ne)
        return fpy_error();
    ferry_event_release(e->e);
    e->e = ne;
    snprintf(e->device, sizeof e->device, "%s", device);
    Py_RETURN_NONE;
}

static PyObject *event_record(PyObject *o, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"stream", NULL};
    PyObject *s = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:record", kwlist, &s))
        return NULL;
    if (s != Py_None && !PyObject_TypeCheck(s, &FpyStream_Type)) {
        PyErr_Format(PyExc_TypeError, "record(): expected a ferry.Stream, got %s",
                     Py_TYPE(s)->tp_name);
        return NULL;
    }
    return event_record_on((FpyEvent *)o, s == Py_None ? NULL : (FpyStream *)s);
}

static PyObject *event_synchronize(PyObject *o, PyObject *unused)
{
    FpyEvent *e = (FpyEvent *)o;
    if (!e->e)
        Py_RETURN_NONE;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_event_synchronize(e->e);
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return fpy_error();
    Py_RETURN_NONE;
}

static PyObject *event_query(PyObject *o, PyObject *unused)
{
    FpyEvent *e = (FpyEvent *)o;
    if (!e->e)
        Py_RETURN_TRUE;
    int q = ferry_event_query(e->e);
    if (q < 0)
        return fpy_error();
    return PyBool_FromLong(q);
}

static PyObject *event_elapsed_time(PyObject *o, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &FpyEvent_Type)) {
        PyErr_Format(PyExc_TypeError, "elapsed_time(): expected a ferry.Event, got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    FpyEvent *a = (FpyEvent *)o, *b = (FpyEvent *)arg;
    if (!a->e || !b->e) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Both events must be recorded before calculating elapsed time.");
        return NULL;
    }
    float ms;
    if (ferry_event_elapsed_ms(a->e, b->e, &ms) != FERRY_OK)
        return fpy_error();
    return PyFloat_FromDouble(ms);
}

static PyMethodDef event_methods[] = {
    {"record", (PyCFunction)(void (*)(void))event_record, METH_VARARGS | METH_KEYWORDS,
     "record(stream=None): marks the work queued so far on stream (None: the current one)"},
    {"synchronize", event_synchronize, METH_NOARGS, "waits for the event's work"},
    {"query", event_query, METH_NOARGS, "whether the event's work is done"},
    {"elapsed_time", event_elapsed_time, METH_O,
     "elapsed_time(end): milliseconds from this event to end"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FpyEvent_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.Event",
    .tp_basicsize = sizeof(FpyEvent),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Event(device=None, enable_timing=False): a mark in a stream's work",
    .tp_new = event_new,
    .tp_dealloc = event_dealloc,
    .tp_methods = event_methods,
};

/* ---- module functions behind ferry.stream() and ferry.current_stream() ---- */

static PyObject *mod_set_stream(PyObject *m, PyObject *arg)
{
    if (arg != Py_None && !PyObject_TypeCheck(arg, &FpyStream_Type)) {
        PyErr_Format(PyExc_TypeError, "_set_stream(): expected a ferry.Stream or None, got %s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if (ferry_stream_set_current(arg == Py_None ? NULL : ((FpyStream *)arg)->s) != FERRY_OK)
        return fpy_error();
    Py_RETURN_NONE;
}

/* ---- Tensor.pin_memory() / is_pinned() ---- */

static PyObject *t_pin_memory(PyObject *self, PyObject *args)
{
    fpy_device_arg dev = {false, NULL, {0}};
    if (!PyArg_ParseTuple(args, "|O&:pin_memory", fpy_device_converter, &dev))
        return NULL;
    ferry_tensor *r;
    Py_BEGIN_ALLOW_THREADS
    r = ferry_tensor_pin_memory(FPY_T(self), dev.given ? dev.str : NULL);
    Py_END_ALLOW_THREADS
    if (!r) {
        ferry_status why = ferry_last_status();
        if (why == FERRY_ERR_UNSUPPORTED || why == FERRY_ERR_INVALID_ARGUMENT) {
            /* PyTorch raises RuntimeError for both: no accelerator, a non-CPU tensor. */
            PyErr_SetString(PyExc_RuntimeError, ferry_last_error());
            return NULL;
        }
        return fpy_error();
    }
    return fpy_wrap_or_self(self, r);
}

static PyObject *t_is_pinned(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(ferry_tensor_is_pinned(FPY_T(self)));
}

static PyMethodDef tensor_methods[] = {
    {"pin_memory", t_pin_memory, METH_VARARGS,
     "pin_memory(device=None): a copy in page-locked host memory (self when pinned already)"},
    {"is_pinned", t_is_pinned, METH_NOARGS, "whether the tensor is in pinned host memory"},
    {NULL, NULL, 0, NULL},
};

static PyObject *mod_current_stream(PyObject *m, PyObject *arg)
{
    fpy_device_arg dev;
    if (!fpy_device_converter(arg, &dev))
        return NULL;
    if (!dev.given) {
        PyErr_SetString(PyExc_ValueError, "current_stream(): device must not be None");
        return NULL;
    }
    ferry_stream *s = ferry_stream_get_current(dev.str);
    if (!s) {
        if (ferry_last_status() != FERRY_OK && strstr(ferry_last_error(), dev.str))
            return fpy_error();
        Py_RETURN_NONE;
    }
    FpyStream *o = PyObject_New(FpyStream, &FpyStream_Type);
    if (!o) {
        ferry_stream_release(s);
        return NULL;
    }
    o->s = s;
    snprintf(o->device, sizeof o->device, "%s", dev.str);
    return (PyObject *)o;
}

static PyMethodDef module_functions[] = {
    {"_current_stream", mod_current_stream, METH_O,
     "_current_stream(device): the thread's current ferry.Stream of device, or None for "
     "the default stream"},
    {"_set_stream", mod_set_stream, METH_O,
     "_set_stream(stream): makes stream current on its device for this thread; None: back "
     "to the default stream on every device"},
    {NULL, NULL, 0, NULL},
};

int fpy_stream_init(PyObject *module)
{
    if (PyType_Ready(&FpyStream_Type) < 0 || PyType_Ready(&FpyEvent_Type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Stream", (PyObject *)&FpyStream_Type) < 0 ||
        PyModule_AddObjectRef(module, "Event", (PyObject *)&FpyEvent_Type) < 0)
        return -1;
    if (fpy_tensor_add_methods(tensor_methods, false) < 0)
        return -1;
    return PyModule_AddFunctions(module, module_functions);
}

/* Python side of random numbers (API.md "Random numbers"): ferry.Generator, the global
 * generator (ferry.manual_seed, ferry.default_generator), ferry.rand/randn/randint/
 * randperm/rand_like/randn_like/bernoulli, Tensor.uniform_/normal_/bernoulli_/bernoulli,
 * and ferry._ferry._dropout under ferry.nn.functional.dropout. Signatures and messages
 * are PyTorch's. The generator state is (seed, offset): get_state() gives it as 16 bytes
 * in a uint8 tensor (little-endian seed, then offset), as PyTorch's is a ByteTensor. */
#include <time.h>

#include "ferry_py.h"

typedef struct {
    PyObject_HEAD
    ferry_generator *g; /* NULL: the process's global generator */
} FpyGenerator;

static PyTypeObject FpyGenerator_Type;

/* A seed as PyTorch takes it: any int in [-2^63, 2^64), negatives wrapping. */
static int seed_arg(PyObject *o, uint64_t *out)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "manual_seed expected a long, but got %s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow == 0) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        *out = (uint64_t)v;
        return 0;
    }
    unsigned long long u = PyLong_AsUnsignedLongLong(o);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError, "Overflow when unpacking long long");
        return -1;
    }
    *out = u;
    return 0;
}

static ferry_generator *gen_of(PyObject *o)
{
    return o && o != Py_None ? ((FpyGenerator *)o)->g : NULL;
}

/* "O&" converter for generator=: a ferry.Generator or None. */
static int generator_converter(PyObject *o, void *out)
{
    if (o != Py_None && !PyObject_TypeCheck(o, &FpyGenerator_Type)) {
        PyErr_Format(PyExc_TypeError, "generator must be a ferry.Generator, not %s",
                     Py_TYPE(o)->tp_name);
        return 0;
    }
    *(PyObject **)out = o;
    return 1;
}

/* ---- ferry.Generator ---- */

static PyObject *gen_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"device", NULL};
    PyObject *device = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:Generator", kwlist, &device))
        return NULL;
    /* One generator serves every device: its numbers do not depend on where they are
     * drawn. The argument is accepted for PyTorch's code. */
    FpyGenerator *self = (FpyGenerator *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->g = ferry_generator_create(67280421310721ull);
    if (!self->g) {
        Py_DECREF(self);
        return fpy_error();
    }
    return (PyObject *)self;
}

static void gen_dealloc(PyObject *self)
{
    ferry_generator_release(((FpyGenerator *)self)->g);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *gen_manual_seed(PyObject *self, PyObject *seed)
{
    uint64_t s;
    if (seed_arg(seed, &s) < 0)
        return NULL;
    if (ferry_generator_set_state(((FpyGenerator *)self)->g, s, 0) != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *gen_initial_seed(PyObject *self, PyObject *unused)
{
    (void)unused;
    uint64_t s;
    ferry_generator_get_state(((FpyGenerator *)self)->g, &s, NULL);
    return PyLong_FromUnsignedLongLong(s);
}

/* A seed from the clock and the object's address, as PyTorch's seed() is nondeterministic. */
static PyObject *gen_seed(PyObject *self, PyObject *unused)
{
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)(uintptr_t)self << 16);
    s &= 0x7fffffffffffffffull; /* PyTorch's are non-negative too */
    ferry_generator_set_state(((FpyGenerator *)self)->g, s, 0);
    return PyLong_FromUnsignedLongLong(s);
}

static PyObject *gen_get_state(PyObject *self, PyObject *unused)
{
    (void)unused;
    uint64_t st[2];
    ferry_generator_get_state(((FpyGenerator *)self)->g, &st[0], &st[1]);
    unsigned char bytes[16];
    for (int i = 0; i < 8; i++) {
        bytes[i] = (unsigned char)(st[0] >> (8 * i));
        bytes[8 + i] = (unsigned char)(st[1] >> (8 * i));
    }
    int64_t shape[1] = {16};
    return fpy_wrap(ferry_tensor_from_data(bytes, FERRY_UINT8, 1, shape, "cpu"));
}

static PyObject *gen_set_state(PyObject *self, PyObject *state)
{
    if (!PyObject_TypeCheck(state, &FpyTensor_Type) ||
        ferry_tensor_dtype(FPY_T(state)) != FERRY_UINT8 ||
        ferry_tensor_numel(FPY_T(state)) != 16) {
        PyErr_SetString(PyExc_RuntimeError,
                        "set_state: expected a uint8 tensor of 16 bytes from get_state()");
        return NULL;
    }
    unsigned char bytes[16];
    ferry_tensor *c = ferry_tensor_contiguous(FPY_T(state));
    ferry_status st = c ? ferry_tensor_copy_to_host(c, bytes, sizeof bytes) : ferry_last_status();
    ferry_tensor_release(c);
    if (st != FERRY_OK)
        return fpy_error();
    uint64_t seed = 0, off = 0;
    for (int i = 0; i < 8; i++) {
        seed |= (uint64_t)bytes[i] << (8 * i);
        off |= (uint64_t)bytes[8 + i] << (8 * i);
    }
    if (ferry_generator_set_state(((FpyGenerator *)self)->g, seed, off) != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *gen_get_offset(PyObject *self, void *closure)
{
    (void)closure;
    uint64_t off;
    ferry_generator_get_state(((FpyGenerator *)self)->g, NULL, &off);
    return PyLong_FromUnsignedLongLong(off);
}

static PyObject *gen_get_device(PyObject *self, void *closure)
{
    (void)self, (void)closure;
    ferry_device d;
    ferry_device_parse("cpu", &d);
    return fpy_device_object(d);
}

static PyMethodDef gen_methods[] = {
    {"manual_seed", gen_manual_seed, METH_O, "manual_seed(seed): reseeds (offset 0); returns self"},
    {"initial_seed", gen_initial_seed, METH_NOARGS, "the seed"},
    {"seed", gen_seed, METH_NOARGS, "reseeds from the clock; returns the new seed"},
    {"get_state", gen_get_state, METH_NOARGS,
     "the state (seed, offset) as 16 bytes in a uint8 tensor"},
    {"set_state", gen_set_state, METH_O, "set_state(state): restores get_state()'s state"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef gen_getset[] = {
    {"offset", gen_get_offset, NULL, "32-bit words of the Philox stream used so far", NULL},
    {"device", gen_get_device, NULL, "cpu (the numbers are the same on every device)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FpyGenerator_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ferry.Generator",
    .tp_basicsize = sizeof(FpyGenerator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Generator(device='cpu'): a Philox4x32-10 counter-based generator (seed, "
              "offset); its draws are bit-identical on every device.",
    .tp_new = gen_new,
    .tp_dealloc = gen_dealloc,
    .tp_methods = gen_methods,
    .tp_getset = gen_getset,
};

static PyObject *default_generator; /* wraps NULL: the global generator */

static PyObject *mod_manual_seed(PyObject *m, PyObject *seed)
{
    (void)m;
    uint64_t s;
    if (seed_arg(seed, &s) < 0)
        return NULL;
    ferry_manual_seed(s);
    return Py_NewRef(default_generator);
}

static PyObject *mod_initial_seed(PyObject *m, PyObject *unused)
{
    (void)m;
    return gen_initial_seed(default_generator, unused);
}

static PyObject *mod_seed(PyObject *m, PyObject *unused)
{
    (void)m;
    return gen_seed(default_generator, unused);
}

static PyObject *mod_get_rng_state(PyObject *m, PyObject *unused)
{
    (void)m;
    return gen_get_state(default_generator, unused);
}

static PyObject *mod_set_rng_state(PyObject *m, PyObject *state)
{
    (void)m;
    PyObject *r = gen_set_state(default_generator, state);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* ---- samplers ---- */

/* Applies requires_grad and wraps (stealing t). */
static PyObject *finish(ferry_tensor *t, int requires_grad)
{
    if (!t)
        return fpy_error();
    if (requires_grad && ferry_tensor_set_requires_grad(t, true) != FERRY_OK) {
        ferry_tensor_release(t);
        return fpy_error();
    }
    return fpy_wrap(t);
}

typedef ferry_tensor *(*float_sampler)(ferry_dtype, int, const int64_t *, const char *,
                                       ferry_generator *);

static PyObject *shaped_sample(PyObject *args, PyObject *kwargs, const char *fname,
                               float_sampler make)
{
    static char *kwlist[] = {"generator", "dtype", "device", "requires_grad", NULL};
    PyObject *gen = Py_None, *dtype = Py_None;
    fpy_device_arg dev = {false, NULL, {0}};
    fpy_bool_arg rg = {fname, "requires_grad", 0};
    PyObject *empty = PyTuple_New(0);
    if (!empty)
        return NULL;
    char fmt[64];
    snprintf(fmt, sizeof fmt, "|$O&OO&O&:%s", fname);
    int ok = PyArg_ParseTupleAndKeywords(empty, kwargs, fmt, kwlist, generator_converter, &gen,
                                         &dtype, fpy_device_converter, &dev,
                                         fpy_bool_converter, &rg);
    Py_DECREF(empty);
    if (!ok)
        return NULL;
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    ferry_dtype dt = FERRY_FLOAT32;
    if (fpy_int64_list(args, fname, "size", &ndim, shape) < 0)
        return NULL;
    if (dtype != Py_None && !fpy_dtype_converter(dtype, &dt))
        return NULL;
    ferry_tensor *t;
    Py_BEGIN_ALLOW_THREADS
    t = make(dt, ndim, shape, dev.str, gen_of(gen));
    Py_END_ALLOW_THREADS
    return finish(t, rg.value);
}

static PyObject *mod_rand(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    return shaped_sample(args, kwargs, "rand", ferry_rand);
}

static PyObject *mod_randn(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    return shaped_sample(args, kwargs, "randn", ferry_randn);
}

/* rand_like / randn_like: input's shape, dtype and device unless given. */
static PyObject *like_sample(PyObject *args, PyObject *kwargs, const char *fname,
                             float_sampler make)
{
    static char *kwlist[] = {"input", "generator", "dtype", "device", "requires_grad", NULL};
    PyObject *input, *gen = Py_None, *dtype = Py_None;
    fpy_device_arg dev = {false, NULL, {0}};
    fpy_bool_arg rg = {fname, "requires_grad", 0};
    char fmt[64];
    snprintf(fmt, sizeof fmt, "O!|$O&OO&O&:%s", fname);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &FpyTensor_Type, &input,
                                     generator_converter, &gen, &dtype, fpy_device_converter,
                                     &dev, fpy_bool_converter, &rg))
        return NULL;
    ferry_tensor *x = FPY_T(input);
    ferry_dtype dt = ferry_tensor_dtype(x);
    if (dtype != Py_None && !fpy_dtype_converter(dtype, &dt))
        return NULL;
    char devbuf[48];
    const char *d = dev.given ? dev.str : fpy_tensor_device_str(x, devbuf);
    ferry_tensor *t;
    Py_BEGIN_ALLOW_THREADS
    t = make(dt, ferry_tensor_ndim(x), ferry_tensor_shape(x), d, gen_of(gen));
    Py_END_ALLOW_THREADS
    return finish(t, rg.value);
}

static PyObject *mod_rand_like(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    return like_sample(args, kwargs, "rand_like", ferry_rand);
}

static PyObject *mod_randn_like(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    return like_sample(args, kwargs, "randn_like", ferry_randn);
}

/* randint(high, size) or randint(low, high, size), keywords as PyTorch's. */
static PyObject *mod_randint(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    static char *kwlist[] = {"generator", "dtype", "device", "requires_grad", NULL};
    PyObject *gen = Py_None, *dtype = Py_None;
    fpy_device_arg dev = {false, NULL, {0}};
    fpy_bool_arg rg = {"randint", "requires_grad", 0};
    PyObject *empty = PyTuple_New(0);
    if (!empty)
        return NULL;
    /* low/high/size may be keywords too. */
    PyObject *kw_low = NULL, *kw_high = NULL, *kw_size = NULL;
    PyObject *rest = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
    if (!rest) {
        Py_DECREF(empty);
        return NULL;
    }
    kw_low = PyDict_GetItemString(rest, "low");
    kw_high = PyDict_GetItemString(rest, "high");
    kw_size = PyDict_GetItemString(rest, "size");
    Py_XINCREF(kw_low);
    Py_XINCREF(kw_high);
    Py_XINCREF(kw_size);
    PyDict_DelItemString(rest, "low");
    PyDict_DelItemString(rest, "high");
    PyDict_DelItemString(rest, "size");
    PyErr_Clear();
    int ok = PyArg_ParseTupleAndKeywords(empty, rest, "|$O&OO&O&:randint", kwlist,
                                         generator_converter, &gen, &dtype,
                                         fpy_device_converter, &dev, fpy_bool_converter, &rg);
    Py_DECREF(empty);
    Py_DECREF(rest);
    PyObject *lo_o = NULL, *hi_o = NULL, *size_o = NULL;
    Py_ssize_t na = PyTuple_GET_SIZE(args);
    PyObject *res = NULL;
    if (!ok)
        goto done;
    if (na == 3) {
        lo_o = PyTuple_GET_ITEM(args, 0), hi_o = PyTuple_GET_ITEM(args, 1);
        size_o = PyTuple_GET_ITEM(args, 2);
    } else if (na == 2) {
        if (kw_size)
            lo_o = PyTuple_GET_ITEM(args, 0), hi_o = PyTuple_GET_ITEM(args, 1);
        else
            hi_o = PyTuple_GET_ITEM(args, 0), size_o = PyTuple_GET_ITEM(args, 1);
    } else if (na == 1) {
        hi_o = kw_high ? NULL : PyTuple_GET_ITEM(args, 0);
        if (kw_high)
            lo_o = PyTuple_GET_ITEM(args, 0);
    }
    if (!lo_o)
        lo_o = kw_low;
    if (!hi_o)
        hi_o = kw_high;
    if (!size_o)
        size_o = kw_size;
    if (!hi_o || !size_o || na > 3) {
        PyErr_SetString(PyExc_TypeError,
                        "randint() received an invalid combination of arguments - expected "
                        "(int high, tuple of ints size, ...) or (int low, int high, tuple of "
                        "ints size, ...)");
        goto done;
    }
    int64_t low = 0, high;
    if ((lo_o && fpy_int64(lo_o, &low) < 0) || fpy_int64(hi_o, &high) < 0)
        goto done;
    int ndim;
    int64_t shape[FERRY_MAX_DIMS];
    PyObject *sz = PyTuple_Pack(1, size_o);
    if (!sz)
        goto done;
    int rc = fpy_int64_list(sz, "randint", "size", &ndim, shape);
    Py_DECREF(sz);
    ferry_dtype dt = FERRY_INT64;
    if (rc < 0 || (dtype != Py_None && !fpy_dtype_converter(dtype, &dt)))
        goto done;
    ferry_tensor *t;
    Py_BEGIN_ALLOW_THREADS
    t = ferry_randint(low, high, dt, ndim, shape, dev.str, gen_of(gen));
    Py_END_ALLOW_THREADS
    res = finish(t, rg.value);
done:
    Py_XDECREF(kw_low);
    Py_XDECREF(kw_high);
    Py_XDECREF(kw_size);
    return res;
}

static PyObject *mod_randperm(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    static char *kwlist[] = {"n", "generator", "dtype", "device", "requires_grad", NULL};
    PyObject *n_o, *gen = Py_None, *dtype = Py_None;
    fpy_device_arg dev = {false, NULL, {0}};
    fpy_bool_arg rg = {"randperm", "requires_grad", 0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$O&OO&O&:randperm", kwlist, &n_o,
                                     generator_converter, &gen, &dtype, fpy_device_converter,
                                     &dev, fpy_bool_converter, &rg))
        return NULL;
    int64_t n;
    ferry_dtype dt = FERRY_INT64;
    if (fpy_int64(n_o, &n) < 0 || (dtype != Py_None && !fpy_dtype_converter(dtype, &dt)))
        return NULL;
    ferry_tensor *t;
    Py_BEGIN_ALLOW_THREADS
    t = ferry_randperm(n, dt, dev.str, gen_of(gen));
    Py_END_ALLOW_THREADS
    return finish(t, rg.value);
}

/* bernoulli of probabilities p (a tensor, or a float broadcast to like's shape). */
static ferry_tensor *bernoulli_of(ferry_tensor *like, PyObject *p, ferry_generator *g)
{
    if (PyObject_TypeCheck(p, &FpyTensor_Type)) {
        ferry_tensor *pe = ferry_expand(FPY_T(p), ferry_tensor_ndim(like), ferry_tensor_shape(like));
        ferry_tensor *r = pe ? ferry_bernoulli(pe, g) : NULL;
        ferry_tensor_release(pe);
        return r;
    }
    double pv = PyFloat_AsDouble(p);
    if (pv == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(pv >= 0.0 && pv <= 1.0)) {
        PyErr_Format(PyExc_RuntimeError, "bernoulli_ expects p to be in [0, 1], but got p=%R", p);
        return NULL;
    }
    ferry_dtype dt = ferry_tensor_dtype(like);
    ferry_dtype pd = dt == FERRY_FLOAT64 ? FERRY_FLOAT64 : FERRY_FLOAT32;
    char devbuf[48];
    ferry_tensor *pt = ferry_full(pd, ferry_tensor_ndim(like), ferry_tensor_shape(like), pv,
                                  fpy_tensor_device_str(like, devbuf));
    ferry_tensor *r = pt ? ferry_bernoulli(pt, g) : NULL;
    ferry_tensor_release(pt);
    return r;
}

static PyObject *mod_bernoulli(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    static char *kwlist[] = {"input", "p", "generator", NULL};
    PyObject *input, *p = Py_None, *gen = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|O$O&:bernoulli", kwlist, &FpyTensor_Type,
                                     &input, &p, generator_converter, &gen))
        return NULL;
    if (p == Py_None)
        return fpy_wrap(ferry_bernoulli(FPY_T(input), gen_of(gen)));
    ferry_tensor *r = bernoulli_of(FPY_T(input), p, gen_of(gen));
    if (!r)
        return PyErr_Occurred() ? NULL : fpy_error();
    ferry_tensor *c = ferry_tensor_to_dtype(r, ferry_tensor_dtype(FPY_T(input)));
    ferry_tensor_release(r);
    return fpy_wrap(c);
}

static PyObject *mod_dropout(PyObject *m, PyObject *args)
{
    (void)m;
    PyObject *input;
    double p;
    int train;
    if (!PyArg_ParseTuple(args, "O!dp:_dropout", &FpyTensor_Type, &input, &p, &train))
        return NULL;
    ferry_tensor *r;
    Py_BEGIN_ALLOW_THREADS
    r = ferry_dropout(FPY_T(input), p, train, NULL);
    Py_END_ALLOW_THREADS
    return fpy_wrap_or_self(input, r);
}

/* ---- Tensor methods ---- */

static PyObject *t_uniform_(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"from", "to", "generator", NULL};
    double lo = 0.0, hi = 1.0;
    PyObject *gen = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|dd$O&:uniform_", kwlist, &lo, &hi,
                                     generator_converter, &gen))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_tensor_uniform(FPY_T(self), lo, hi, gen_of(gen));
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *t_normal_(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"mean", "std", "generator", NULL};
    double mean = 0.0, std = 1.0;
    PyObject *gen = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|dd$O&:normal_", kwlist, &mean, &std,
                                     generator_converter, &gen))
        return NULL;
    ferry_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ferry_tensor_normal(FPY_T(self), mean, std, gen_of(gen));
    Py_END_ALLOW_THREADS
    if (st != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *t_bernoulli_(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"p", "generator", NULL};
    PyObject *p = NULL, *gen = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$O&:bernoulli_", kwlist, &p,
                                     generator_converter, &gen))
        return NULL;
    PyObject *half = NULL;
    if (!p)
        p = half = PyFloat_FromDouble(0.5);
    ferry_tensor *r = p ? bernoulli_of(FPY_T(self), p, gen_of(gen)) : NULL;
    Py_XDECREF(half);
    if (!r)
        return PyErr_Occurred() ? NULL : fpy_error();
    ferry_status st = ferry_tensor_copy_from(FPY_T(self), r);
    ferry_tensor_release(r);
    if (st != FERRY_OK)
        return fpy_error();
    return Py_NewRef(self);
}

static PyObject *t_bernoulli(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"generator", NULL};
    PyObject *gen = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$O&:bernoulli", kwlist,
                                     generator_converter, &gen))
        return NULL;
    return fpy_wrap(ferry_bernoulli(FPY_T(self), gen_of(gen)));
}

#define KW (METH_VARARGS | METH_KEYWORDS)
#define CF(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef tensor_methods[] = {
    {"uniform_", CF(t_uniform_), KW, "uniform_(from=0, to=1, *, generator=None)"},
    {"normal_", CF(t_normal_), KW, "normal_(mean=0, std=1, *, generator=None)"},
    {"bernoulli_", CF(t_bernoulli_), KW, "bernoulli_(p=0.5, *, generator=None)"},
    {"bernoulli", CF(t_bernoulli), KW, "bernoulli(*, generator=None): self as probabilities"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef module_functions[] = {
    {"manual_seed", mod_manual_seed, METH_O,
     "manual_seed(seed): reseeds the global generator; returns ferry.default_generator"},
    {"initial_seed", mod_initial_seed, METH_NOARGS, "the global generator's seed"},
    {"seed", mod_seed, METH_NOARGS, "reseeds the global generator from the clock"},
    {"get_rng_state", mod_get_rng_state, METH_NOARGS, "the global generator's state"},
    {"set_rng_state", mod_set_rng_state, METH_O, "set_rng_state(state)"},
    {"rand", CF(mod_rand), KW, "rand(*size, generator=None, dtype=None, device=None, requires_grad=False)"},
    {"randn", CF(mod_randn), KW, "randn(*size, generator=None, dtype=None, device=None, requires_grad=False)"},
    {"rand_like", CF(mod_rand_like), KW, "rand_like(input, *, dtype=None, device=None, requires_grad=False)"},
    {"randn_like", CF(mod_randn_like), KW, "randn_like(input, *, dtype=None, device=None, requires_grad=False)"},
    {"randint", CF(mod_randint), KW, "randint(low=0, high, size, *, generator=None, dtype=None, device=None, requires_grad=False)"},
    {"randperm", CF(mod_randperm), KW, "randperm(n, *, generator=None, dtype=ferry.int64, device=None, requires_grad=False)"},
    {"bernoulli", CF(mod_bernoulli), KW, "bernoulli(input, p=None, *, generator=None)"},
    {"_dropout", mod_dropout, METH_VARARGS, "_dropout(input, p, training): ferry_dropout"},
    {NULL, NULL, 0, NULL},
};

int fpy_random_init(PyObject *module)
{
    if (PyType_Ready(&FpyGenerator_Type) < 0)
        return -1;
    if (fpy_tensor_add_methods(tensor_methods, false) < 0)
        return -1;
    if (!default_generator) {
        FpyGenerator *g = PyObject_New(FpyGenerator, &FpyGenerator_Type);
        if (!g)
            return -1;
        g->g = NULL;
        default_generator = (PyObject *)g; /* kept for the life of the process */
    }
    if (PyModule_AddObjectRef(module, "Generator", (PyObject *)&FpyGenerator_Type) < 0 ||
        PyModule_AddObjectRef(module, "default_generator", default_generator) < 0)
        return -1;
    return PyModule_AddFunctions(module, module_functions);
}

/* Declarations shared by the files of the ferry CPython extension: the object layouts,
 * the status-to-exception table, and the conversions every file needs. */
#ifndef FERRY_PY_H
#define FERRY_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>

#include <ferry/ferry.h>

/* A ferry.Tensor: one ferry handle. The handle's geometry never changes, so the buffer
 * protocol's shape and byte strides are computed once and kept until the object dies. */
typedef struct {
    PyObject_HEAD
    ferry_tensor *t;      /* owned reference, never NULL after construction */
    Py_ssize_t *buf_dims; /* NULL, or shape[ndim] then byte strides[ndim] for getbuffer */
    PyObject *weakrefs;
    int8_t may_block;     /* fpy_may_block(t) once asked (-1 before): it cannot change */
} FpyTensor;

/* A ferry.dtype: one immortal instance per ferry_dtype. */
typedef struct {
    PyObject_HEAD
    ferry_dtype dtype;
} FpyDType;

/* A ferry.device: a parsed device string, by value. */
typedef struct {
    PyObject_HEAD
    ferry_device dev;
} FpyDevice;

extern PyTypeObject FpyTensor_Type;
extern PyTypeObject FpyDType_Type;
extern PyTypeObject FpyDevice_Type;
extern PyTypeObject FpySize_Type;

/* ferry.Tensor cannot be subclassed (no Py_TPFLAGS_BASETYPE), so the exact type test is
 * the whole test; it spares the operators a subtype walk for every scalar operand. */
#define FpyTensor_Check(o) Py_IS_TYPE((o), &FpyTensor_Type)
#define FPY_T(o) (((FpyTensor *)(o))->t)

/* Kinds of Python numbers, ordered as PyTorch's type promotion orders categories. */
enum { FPY_KIND_BOOL = 0, FPY_KIND_INT = 1, FPY_KIND_FLOAT = 2 };
/* The same order and values as ferry_scalar_kind, so the two compare directly. */
_Static_assert(FPY_KIND_BOOL == (int)FERRY_SCALAR_BOOL && FPY_KIND_INT == (int)FERRY_SCALAR_INT &&
                   FPY_KIND_FLOAT == (int)FERRY_SCALAR_FLOAT,
               "FPY_KIND_* must match ferry_scalar_kind");

/* Runs `stmt` without the GIL when `block`: copies, synchronisation and large host
 * kernels, so other Python threads run meanwhile; small host calls keep the GIL, since
 * releasing it costs more than they take. */
#define FPY_MAYBE_NOGIL(block, stmt)   \
    do {                               \
        if (block) {                   \
            Py_BEGIN_ALLOW_THREADS     \
            stmt;                      \
            Py_END_ALLOW_THREADS       \
        } else {                       \
            stmt;                      \
        }                              \
    } while (0)

/* ---- module.c ---- */

/* Raises the exception the status table gives for ferry_last_status(), with
 * ferry_last_error() as its text; returns NULL. */
PyObject *fpy_error(void);
/* The same for a failed export (buffer protocol, DLPack): BufferError unless the
 * failure is memory or a refused argument. Returns NULL. */
PyObject *fpy_export_error(void);
/* A bool argument as PyTorch's parser takes it: True, False or a NumPy bool, nothing
 * else ("sum(): argument 'keepdim' must be bool, not int"). "O&" converter into an
 * fpy_bool_arg whose fn and arg name the argument and whose value is the default. */
typedef struct {
    const char *fn;
    const char *arg;
    int value;
} fpy_bool_arg;
int fpy_bool_converter(PyObject *o, void *out);
/* An int argument (operator.index) into an int64: TypeError for a non-int, ValueError
 * "Overflow when unpacking long long" beyond int64, as PyTorch. 0 or -1. */
int fpy_int64(PyObject *o, int64_t *out);
/* A Tensor argument: TypeError "fn(): argument 'arg' must be Tensor, not list" for
 * anything else, as PyTorch's parser says. 0 or -1. */
int fpy_tensor_arg(PyObject *o, const char *fn, const char *arg, ferry_tensor **out);
/* Sizes given as ints (`zeros(2, 3)`) or as one sequence (`zeros((2, 3))`), at most
 * FERRY_MAX_DIMS, each an int64: PyTorch's TypeErrors name fn and arg for anything else,
 * an int past int64 included. 0 or -1. */
int fpy_int64_list(PyObject *args, const char *fn, const char *arg, int *n, int64_t *out);
/* A dim argument of a tensor of ndim dims: an int64 in [-max(ndim, 1), max(ndim, 1)),
 * else PyTorch's IndexError "Dimension out of range (...)". *out is the dim unwrapped,
 * for the C API to wrap. 0 or -1. */
int fpy_dim(PyObject *o, int ndim, int *out);
/* The ferry.dtype object of a dtype; a new reference. */
PyObject *fpy_dtype_object(ferry_dtype dtype);
/* "O&" converter: a ferry.dtype into *(ferry_dtype *)out. None is refused. */
int fpy_dtype_converter(PyObject *o, void *out);
/* A ferry.device for a parsed device; a new reference. */
PyObject *fpy_device_object(ferry_device d);

/* A device argument: a string or a ferry.device, kept as the string the C API takes. */
typedef struct {
    bool given;      /* false for None or an omitted argument */
    const char *str; /* valid while the argument object lives */
    char buf[48];
} fpy_device_arg;
/* "O&" converter into an fpy_device_arg; None leaves it not given. */
int fpy_device_converter(PyObject *o, void *out);
/* Formats t's device ("cuda:0") into buf; returns buf. */
const char *fpy_tensor_device_str(const ferry_tensor *t, char buf[48]);
/* Whether t lives on the host backend (device type "cpu"). */
bool fpy_on_cpu(const ferry_tensor *t);
/* Whether a call on t may block long enough to be worth releasing the GIL: a device
 * copy or synchronization, or a large host copy. */
bool fpy_may_block(const ferry_tensor *t);

/* fpy_may_block of a ferry.Tensor's handle, remembered in the object: the operators ask
 * it on every call. */
static inline bool fpy_obj_may_block(PyObject *o)
{
    FpyTensor *t = (FpyTensor *)o;
    if (t->may_block < 0)
        t->may_block = fpy_may_block(t->t);
    return t->may_block;
}

/* ---- tensor.c ---- */

/* Wraps a new ferry reference as a ferry.Tensor (stealing it); NULL t raises
 * fpy_error(). */
PyObject *fpy_wrap(ferry_tensor *t);
/* Returns self (a new reference) when r is self's handle, else wraps r; used where
 * "nothing changed" must give back the same Python object, as PyTorch's to() does. */
PyObject *fpy_wrap_or_self(PyObject *self, ferry_tensor *r);
int fpy_tensor_type_init(PyObject *module);

/* ---- convert.c ---- */

/* FPY_KIND_* of a Python number (numpy scalars included), -1 if o is not one. */
int fpy_scalar_kind(PyObject *o);
/* The dtype a Python number of that kind gets by default (bool, int64, float32). */
ferry_dtype fpy_kind_default_dtype(int kind);
/* FPY_KIND_* of a dtype. */
int fpy_dtype_kind(ferry_dtype dtype);
/* Converts a Python number and stores it as one element of dtype at dst; -1 with an
 * exception (overflow, not a number). */
int fpy_store(ferry_dtype dtype, PyObject *o, void *dst);
/* fpy_store with the checks of PyTorch's fill_ and t[i] = v (c10::checked_convert):
 * also a float outside an integer dtype's range before truncation, and a finite float
 * beyond a floating dtype's largest value, overflow. */
int fpy_store_checked(ferry_dtype dtype, PyObject *o, void *dst);
/* One element of dtype at src as a Python bool, int or float. */
PyObject *fpy_load(ferry_dtype dtype, const void *src);
/* A Python number as an operand of the _scalar_ex ops: bool, int or float as its type
 * says (NumPy's scalars likewise), ints exact over int64 (OverflowError past it).
 * Returns 1 when o is not a number (no exception), 0 on success, -1 with an exception. */
int fpy_scalar(PyObject *o, ferry_scalar *out);
/* t.fill_(value) for a Python number: converted to t's dtype with PyTorch's overflow
 * checks (int8 and 300, float16 and 1e5 are RuntimeErrors), exact for every int64.
 * 0, or -1 with an exception (a read-only t is a ValueError). */
int fpy_fill(ferry_tensor *t, PyObject *value);
/* ferry.tensor(data, dtype, device) without requires_grad: a new handle or NULL. */
ferry_tensor *fpy_tensor_from_data(PyObject *data, const ferry_dtype *dtype,
                                   const char *device);
/* Tensor.tolist() and Tensor.item(). */
PyObject *fpy_tolist(ferry_tensor *t);
PyObject *fpy_item(ferry_tensor *t);

/* ---- buffer.c ---- */

extern PyBufferProcs fpy_tensor_as_buffer;
/* Whether o is a NumPy array (false, without importing NumPy, before anyone has). */
bool fpy_is_ndarray(PyObject *o);
void fpy_buffer_dims_free(FpyTensor *self);
/* A tensor over an object's buffer: zero copy when `keep` (the tensor holds the export
 * until it dies), else a temporary view the caller copies from before releasing
 * *view_out with PyBuffer_Release. `numpy_names` words errors as torch.from_numpy. */
ferry_tensor *fpy_tensor_from_buffer(PyObject *obj, bool keep, Py_buffer *view_out);
PyObject *fpy_from_numpy(PyObject *module, PyObject *arr);
PyObject *fpy_tensor_numpy(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *fpy_tensor_array(PyObject *self, PyObject *args, PyObject *kwargs);

/* ---- dlpack.c ---- */

PyObject *fpy_tensor_dlpack(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *fpy_tensor_dlpack_device(PyObject *self, PyObject *unused);
PyObject *fpy_from_dlpack(PyObject *module, PyObject *args, PyObject *kwargs);

/* Adds the autograd attributes to ferry.Tensor and the grad-mode functions to the
 * module (autograd.c); after fpy_tensor_type_init(). */
int fpy_autograd_init(PyObject *module);
/* Adds methods to ferry.Tensor's dict once the type is ready (each op family's init);
 * with keep_existing, a name the type already has keeps its implementation. */
int fpy_tensor_add_methods(PyMethodDef *defs, bool keep_existing);
int fpy_tensor_add_getset(PyGetSetDef *defs);
/* random.c: ferry.Generator, the samplers, Tensor.uniform_/normal_/bernoulli_. */
int fpy_random_init(PyObject *module);
/* Adds the reduce2 methods (prod, argmin, var, max(dim), softmax, ...) to ferry.Tensor
 * and the module (reduce2.c); after fpy_tensor_type_init(). */
int fpy_reduce2_init(PyObject *module);
/* ---- sort.c ---- */
int fpy_sort_init(PyObject *module);
/* ferry.Stream, ferry.Event, Tensor.pin_memory/is_pinned (stream.c); after
 * fpy_tensor_type_init(). */
int fpy_stream_init(PyObject *module);
/* Adds the casts, transposes, new_*, in-place unary ops and geometry methods to
 * ferry.Tensor (surface.c); after fpy_tensor_type_init(). */
int fpy_surface_init(PyObject *module);
/* The dtype Python floats and float factories get (set_default_dtype). */
extern ferry_dtype fpy_default_float;
/* Joining, splitting and shape functions and Tensor methods (shape.c); after
 * fpy_tensor_type_init(). */
int fpy_shape_init(PyObject *module);
/* tril, triu, diagonal, diag, diag_embed, trace and _pad (shape2.c); after
 * fpy_tensor_type_init(). */
int fpy_shape2_init(PyObject *module);
/* index.c: Tensor.index_select/gather/scatter... and the module functions. */
int fpy_index_init(PyObject *module);
/* advindex.c: t[idx] and t[idx] = v with advanced indices, index_put(_); tensor.c's
 * basic-indexing view (ints, slices, None, ...) that they start from. */
int fpy_advindex_init(PyObject *module);
int fpy_key_is_advanced(PyObject *key);
PyObject *fpy_advanced_get(ferry_tensor *t, PyObject *key);
int fpy_advanced_set(ferry_tensor *t, PyObject *key, PyObject *value);
ferry_tensor *fpy_index_view(ferry_tensor *t, PyObject *key);
int fpy_select_init(PyObject *module);
/* elementwise.c: the ELEM2 ops as Tensor methods and module functions. */
int fpy_elementwise_init(PyObject *module);
/* distributed.c: the _dist_* functions behind ferry.distributed. */
int fpy_distributed_init(PyObject *module);
/* elementwise.c: Tensor's number slots for ~ // % & | ^ << >> and their in-place forms
 * (slot, C op, whether `number op t` may run as `t op number`). */
/* X(slot, op, the core's reflected form or NULL where the op commutes) */
#define FPY_ELEM2_SLOTS_(X)                                                                 \
    X(floor_divide, floor_divide, ferry_rfloor_divide_scalar_ex)                            \
    X(remainder, remainder, ferry_rremainder_scalar_ex)                                     \
    X(and, bitwise_and, NULL) X(or, bitwise_or, NULL) X(xor, bitwise_xor, NULL)             \
    X(lshift, bitwise_left_shift, ferry_rbitwise_left_shift_scalar_ex)                      \
    X(rshift, bitwise_right_shift, ferry_rbitwise_right_shift_scalar_ex)
#define FPY_DECLARE_SLOT_(slot, name, reflected)                                            \
    PyObject *fpy_nb_##slot(PyObject *a, PyObject *b);                                      \
    PyObject *fpy_nb_i##slot(PyObject *a, PyObject *b);
FPY_ELEM2_SLOTS_(FPY_DECLARE_SLOT_)
PyObject *fpy_nb_invert(PyObject *a);

#endif /* FERRY_PY_H */

/* Core-internal structures and helpers shared by the files of libferry. Never installed
 * and never included by a backend: what a backend needs goes through backend.h. */
#ifndef FERRY_INTERNAL_H
#define FERRY_INTERNAL_H

#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/backend.h>
#include <ferry/ferry.h>

#define FERRY_TENSOR_MAGIC 0x46455259u /* "FERY": checked on every public entry */

/* Dimensions a tensor handle holds without a second allocation. */
#define FERRY_INLINE_DIMS 6

/* Bytes moved per step when a copy is staged through host memory, so that a large
 * tensor never needs one whole-tensor host bounce buffer. */
#define FERRY_STAGING_CHUNK ((size_t)8 << 20)

/* ---- errors (error.c) ---- */

/* Records status and message for ferry_last_error() on this thread; returns status. */
ferry_status ferry__error(ferry_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
ferry_status ferry__verror(ferry_status status, const char *fmt, va_list ap);
/* The thread's last error, saved around work a successful call does on the side (such as
 * loading a broken plugin while listing devices), so it does not overwrite the message
 * of the caller's earlier failure. */
typedef struct ferry_error_state {
    ferry_status status;
    char message[2048];
} ferry_error_state;
void ferry__error_save(ferry_error_state *saved);
void ferry__error_restore(const ferry_error_state *saved);
/* Logs to stderr when FERRY_DEBUG names `topic` ("plugins", "alloc", "fallback") or "all". */
void ferry__debug(const char *topic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ferry__debug_enabled(const char *topic);

/* ---- backends (registry.c) ---- */

typedef enum ferry_backend_state {
    FERRY_BACKEND_NOT_LOADED = 0, /* known by name, not loaded yet */
    FERRY_BACKEND_READY,          /* loaded, >= 1 device */
    FERRY_BACKEND_NO_DEVICES,     /* loaded, init succeeded with 0 devices */
    FERRY_BACKEND_FAILED,         /* could not be loaded or initialised; see reason */
} ferry_backend_state;

typedef struct ferry_backend {
    atomic_long refs;                 /* registry's hold + one per live storage */
    char name[FERRY_MAX_TYPE_LEN + 1];
    char *path;                       /* file loaded or to be loaded; NULL if none found */
    void *dl;                         /* dlopen handle */
    const ferry_backend_ops *ops;
    void *ctx;                        /* what init returned; every entry receives it */
    bool v1;                          /* an ABI 1.x plugin: ops is v1_wrap (backend_v1.c) */
    ferry_backend_ops v1_wrap;
    /* a 1.1 plugin built before ferry_kernel_tensor.struct_size: descriptors at the
     * shorter stride (dispatch.c) */
    bool kt_stride_early;
    ferry_backend_state state;
    char *reason;                     /* why unusable, as ferry_backend_status() says it */
    int32_t device_count;
    bool *host_accessible;            /* per device, from device_info at load */
    struct ferry_allocator *alloc;    /* caching allocator, one pool per device */
    atomic_uint fallback_logged;      /* bit per ferry_op already reported as run on cpu */
    /* per device: why it is lost for good (host_api.device_lost), or NULL; set once */
    _Atomic(char *) *lost;
    /* per device, FERRY_FALLBACK_KINDS counters indexed by ferry_op */
    _Atomic uint64_t (*fallbacks)[FERRY_FALLBACK_KINDS];
    /* Queued backends (stream.c): live streams with a queue of their own. While there
     * are none, all work is on the devices' default queues, which order it themselves,
     * so calls that touch only their own device's memory record no events. */
    atomic_long streams;
    /* per device: such unrecorded work was queued since its last synchronize here */
    atomic_bool *unrecorded;
} ferry_backend;

/* Loads the backend named `type` if needed. Returns a borrowed pointer that stays valid
 * while the caller holds a tensor of it or until ferry_shutdown(); NULL with
 * FERRY_ERR_INVALID_DEVICE (unknown type) or FERRY_ERR_UNAVAILABLE (its reason). */
ferry_backend *ferry__backend_get(const char *type);
/* Parses a device string (NULL = "cpu"), loads its backend and checks the index
 * against the live device count. */
ferry_status ferry__device_resolve(const char *device, ferry_backend **be, int32_t *index);
/* Same for an already-parsed device. */
ferry_status ferry__device_resolve_parsed(ferry_device d, ferry_backend **be, int32_t *index);
/* host_api.device_lost: marks a loaded backend's device unusable for good. */
void ferry__device_lost(const char *backend, int32_t device, const char *reason);
/* The loaded backend whose plugin declares DLPack device type `dl_type`, or NULL. */
const char *ferry__backend_for_dlpack_type(int32_t dl_type);
/* The reason a device is lost, or NULL. */
const char *ferry__device_lost_reason(const ferry_backend *be, int32_t device);
/* The cpu backend (loaded on first use); NULL with an error if it cannot load. */
ferry_backend *ferry__cpu_backend(void);
void ferry__backend_retain(ferry_backend *be);
/* Drops a reference; the last one dlcloses the plugin and frees the entry. */
void ferry__backend_release(ferry_backend *be);
/* Whether TYPE is a known backend name; fills the "Expected one of ..." list. */
bool ferry__backend_known(const char *type, char *expected, size_t cap);
/* Calls visit(dir, ctx) on each plugin folder in the search order of DESIGN.md, Loading
 * (also for communicator plugins, dist.c). */
void ferry__plugin_dirs_visit(void (*visit)(const char *dir, void *ctx), void *ctx);
/* "opencl:0" into a caller buffer of at least 32 bytes. */
const char *ferry__device_str(const ferry_backend *be, int32_t device, char buf[32]);

/* ---- backend calls (backend_call.c): the only code that touches ops->... ---- */

ferry_status ferry__be_alloc(ferry_backend *be, int32_t dev, size_t nbytes, void **buf);
void ferry__be_free(ferry_backend *be, int32_t dev, void *buf);
ferry_status ferry__be_copy_from_host(ferry_backend *be, int32_t dev, void *dst, size_t dst_off,
                                      const void *src, size_t nbytes);
ferry_status ferry__be_copy_to_host(ferry_backend *be, int32_t dev, void *dst, const void *src,
                                    size_t src_off, size_t nbytes);
ferry_status ferry__be_copy_on_device(ferry_backend *be, int32_t dev, void *dst, size_t dst_off,
                                      const void *src, size_t src_off, size_t nbytes);
ferry_status ferry__be_copy_peer(ferry_backend *be, int32_t dst_dev, void *dst, size_t dst_off,
                                 int32_t src_dev, const void *src, size_t src_off, size_t nbytes);
ferry_status ferry__be_synchronize(ferry_backend *be, int32_t dev);
ferry_status ferry__be_device_info(ferry_backend *be, int32_t dev, ferry_device_info *out);
ferry_status ferry__be_host_alloc(ferry_backend *be, size_t nbytes, void **ptr);
void ferry__be_host_free(ferry_backend *be, void *ptr);
/* Zero-copy host access to nbytes of buf (host_map): FERRY_ERR_UNSUPPORTED, with no
 * message, when the plugin lacks it; a plugin whose mapping would copy answers that too. */
ferry_status ferry__be_host_map(ferry_backend *be, int32_t dev, void *buf, size_t off,
                                size_t nbytes, bool write, void **ptr);
ferry_status ferry__be_host_unmap(ferry_backend *be, int32_t dev, void *buf, void *ptr);
/* Kernels: FERRY_ERR_UNSUPPORTED when the entry is absent or declines the dtypes. */
ferry_status ferry__be_fill(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                            const void *value);
ferry_status ferry__be_cast(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                            const ferry_kernel_tensor *in);
ferry_status ferry__be_copy_strided(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                                    const ferry_kernel_tensor *in);
ferry_status ferry__be_unary(ferry_backend *be, int32_t dev, ferry_unary_op op,
                             const ferry_kernel_tensor *out, const ferry_kernel_tensor *in);
ferry_status ferry__be_binary(ferry_backend *be, int32_t dev, ferry_binary_op op,
                              const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                              const ferry_kernel_tensor *b);
/* FERRY_ERR_UNSUPPORTED when the backend has no binary_scalar entry (or declines). */
ferry_status ferry__be_binary_scalar(ferry_backend *be, int32_t dev, ferry_binary_op op,
                                     const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                     const ferry_kernel_scalar *b);
ferry_status ferry__be_reduce(ferry_backend *be, int32_t dev, ferry_reduce_op op,
                              const ferry_kernel_tensor *out, const ferry_kernel_tensor *in);
/* The kernel for a named op, or NULL (no get_kernel entry, or the name unknown to it). */
ferry_named_kernel ferry__be_get_kernel(ferry_backend *be, int32_t dev, const char *name);

/* Called before an op of kind `op` (a ferry_op) runs on the cpu backend in place of
 * be's device `dev`: counts it (ferry_fallback_stats_get), logs the first of a kind,
 * and under FERRY_STRICT_DEVICE=1 refuses with FERRY_ERR_UNSUPPORTED naming the op
 * (`what`, such as "unary exp"), the dtypes and the device. */
ferry_status ferry__fallback_begin(ferry_backend *be, int32_t dev, ferry_op op, const char *what,
                                   const ferry_dtype *dtypes, int ndtypes);

ferry_status ferry__be_matmul(ferry_backend *be, int32_t dev, const ferry_kernel_tensor *out,
                              const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);
/* Forgets FERRY_FAULT_INJECT's counters; it is read again on the next backend call. */
void ferry__fault_reset(void);
/* The table handed to plugins. */
const ferry_host_api *ferry__host_api(void);
/* The same services as an ABI 1.x plugin expects them (abi_major 1). */
const ferry_host_api *ferry__host_api_v1(void);
struct ferry_backend_ops_v1;
/* A 2.0 table of adapters around a checked 1.x table (backend_v1.c); its context is the
 * 1.x table. */
void ferry__backend_v1_wrap(const struct ferry_backend_ops_v1 *v1, ferry_backend_ops *out);

/* Memory ferry keeps for reuse inside one allocation (carved blocks, cached handles)
 * marked unusable for AddressSanitizer while it is not in use. */
#if defined(__SANITIZE_ADDRESS__)
#define FERRY__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FERRY__ASAN 1
#endif
#endif
#ifdef FERRY__ASAN
#include <sanitizer/asan_interface.h>
#define FERRY__POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define FERRY__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define FERRY__POISON(p, n) ((void)(p), (void)(n))
#define FERRY__UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---- caching allocator (allocator.c) ---- */

struct ferry_allocator *ferry__allocator_create(ferry_backend *be);
void ferry__allocator_destroy(ferry_backend *be);
/* A block of at least nbytes on (be, dev); *block_size receives the rounded size. */
ferry_status ferry__allocator_alloc(ferry_backend *be, int32_t dev, size_t nbytes, void **buf,
                                    size_t *block_size);
void ferry__allocator_free(ferry_backend *be, int32_t dev, void *buf, size_t block_size);

/* ---- storage and tensors (tensor.c) ---- */

typedef struct ferry_storage {
    atomic_long refs;
    ferry_backend *backend; /* holds a backend reference */
    int32_t device;
    void *buffer;           /* backend handle; a host pointer when host_accessible */
    size_t nbytes;          /* usable bytes */
    size_t block_size;      /* allocator block size; 0 for wrapped memory */
    bool host_accessible;
    /* Wrapped memory (from_blob, DLPack): not ours to free; deleter runs instead. */
    void (*deleter)(void *data, void *ctx);
    void *deleter_data;     /* what the deleter is given (buffer unless set otherwise) */
    void *deleter_ctx;
    bool wrapped;
    /* A storage made with its first tensor in one allocation (ferry__tensor_empty_on):
     * that tensor's address, which is the block to free once both are dead; else NULL. */
    void *embedded_in;
    /* Bumped by every in-place write through the public API; shared by all views of
     * the storage, so autograd can tell a saved tensor was modified (PyTorch's version
     * counter). Starts at 0 (storages are calloc'd). */
    atomic_long version;
} ferry_storage;

struct ferry_tensor {
    uint32_t magic;
    atomic_long refs;
    ferry_storage *storage;
    size_t byte_offset;     /* from storage->buffer to element [0, ..., 0] */
    ferry_dtype dtype;
    int32_t ndim;
    bool requires_grad;
    bool read_only;
    /* ndim entries each, in inline_dims for the common small tensor (a handle then fits
     * malloc's fast per-thread cache), on the heap beyond FERRY_INLINE_DIMS. */
    int64_t *shape;
    int64_t *strides;
    int64_t inline_dims[2 * FERRY_INLINE_DIMS];
    /* Autograd (autograd.c): the node that made this tensor (NULL for leaves) and the
     * slot holding .grad (NULL until a gradient or retain_grad needs one). */
    struct ferry_node *grad_fn;
    struct ferry_grad_slot *grad_slot;
};

/* Validates a tensor argument: NULL or a dead handle gives an error naming `what`. */
ferry_status ferry__check_tensor(const ferry_tensor *t, const char *what);
/* Validates dtype, ndim, shape (non-negative, byte size fits) for a new tensor;
 * *numel receives the element count. `fn` names the public function in messages. */
ferry_status ferry__check_shape(const char *fn, ferry_dtype dtype, int ndim,
                                const int64_t *shape, int64_t *numel);
/* Validates the geometry of a view from outside or derived from one: non-negative
 * sizes, an element count that fits int64 (PyTorch's "numel: integer multiplication
 * overflow"), and a byte extent that fits int64. Every live tensor passed it, so
 * ferry__numel and ferry__extent cannot overflow on one. */
ferry_status ferry__check_geometry(const char *fn, ferry_dtype dtype, int ndim,
                                   const int64_t *shape, const int64_t *strides);
/* PyTorch's refusal to write a tensor in which several elements share one address (an
 * expanded view): the result would depend on the order of the writes. */
ferry_status ferry__check_writable_once(const ferry_tensor *t);
/* numel * element size into *nbytes; false (and SIZE_MAX) when that overflows, which an
 * expanded view can do while its numel still fits. */
bool ferry__dense_nbytes(ferry_dtype dtype, int ndim, const int64_t *shape, size_t *nbytes);
/* A new storage of nbytes on (be, dev) from the caching allocator. */
ferry_storage *ferry__storage_alloc(ferry_backend *be, int32_t dev, size_t nbytes);
/* A storage over memory ferry does not own; deleter(data, ctx) runs at the end. */
ferry_storage *ferry__storage_wrap(ferry_backend *be, int32_t dev, void *buffer, size_t nbytes,
                                   void (*deleter)(void *, void *), void *ctx);
void ferry__storage_retain(ferry_storage *s);
void ferry__storage_release(ferry_storage *s);
/* A tensor over `s` (takes over the caller's storage reference, also on failure);
 * strides NULL = contiguous. */
ferry_tensor *ferry__tensor_make(ferry_storage *s, size_t byte_offset, ferry_dtype dtype,
                                 int ndim, const int64_t *shape, const int64_t *strides);
/* Uninitialised contiguous tensor on (be, dev). */
ferry_tensor *ferry__tensor_empty_on(ferry_backend *be, int32_t dev, ferry_dtype dtype, int ndim,
                                     const int64_t *shape);
/* A new handle with t's storage, offset, dtype and geometry (shares memory). */
ferry_tensor *ferry__tensor_alias(const ferry_tensor *t);
/* A new handle on t's storage and offset with another geometry (read-only carried). */
ferry_tensor *ferry__tensor_restride(const ferry_tensor *t, int ndim, const int64_t *shape,
                                     const int64_t *strides);
/* The kernel descriptor of t (points into t's shape and strides). */
void ferry__kernel_tensor(const ferry_tensor *t, ferry_kernel_tensor *out);
/* Contiguous row-major strides for shape. */
void ferry__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
bool ferry__is_contiguous(int ndim, const int64_t *shape, const int64_t *strides);
int64_t ferry__numel(int ndim, const int64_t *shape);
/* Lowest and one-past-highest byte (relative to element 0) the view touches; both 0
 * for an empty tensor. */
void ferry__byte_extent(const ferry_tensor *t, int64_t *lo, int64_t *hi);
/* The same for a geometry without a tensor. */
void ferry__extent(ferry_dtype dtype, int ndim, const int64_t *shape, const int64_t *strides,
                   int64_t *lo, int64_t *hi);
/* Whether a and b may touch the same bytes: compared by address for host memory (two
 * storages can wrap one NumPy array), by storage for device memory. */
bool ferry__shares_memory(const ferry_tensor *a, const ferry_tensor *b);
/* Whether a and b are the very same view: same memory, dtype, shape and strides. */
bool ferry__same_view(const ferry_tensor *a, const ferry_tensor *b);
/* "cuda:0" for t's device. */
const char *ferry__tensor_device_str(const ferry_tensor *t, char buf[32]);
/* FERRY_ERR_WRONG_DEVICE with PyTorch's message unless both are on one device. */
ferry_status ferry__check_same_device(const ferry_tensor *a, const ferry_tensor *b);

/* ---- copies and kernels across devices (copy.c) ---- */

/* dst[...] = src[...] element for element: same shape; dtypes may differ (cast).
 * Both may be on any devices; runs on dst's device, staging through the CPU backend
 * when a kernel is missing there. */
ferry_status ferry__copy_into(ferry_tensor *dst, const ferry_tensor *src);
/* Fills every element of t with value (converted to t's dtype). */
ferry_status ferry__fill(ferry_tensor *t, double value);
/* Copies a contiguous tensor's bytes into a contiguous tensor of the same nbytes on
 * any device: direct, peer, or staged in chunks. */
ferry_status ferry__copy_bytes(ferry_tensor *dst, const ferry_tensor *src);
/* Host buffers for staging: pinned memory from backend a, else b (either may be NULL),
 * else malloc; *owner says which, for ferry__staging_free. */
void *ferry__staging_alloc(ferry_backend *a, ferry_backend *b, size_t n, ferry_backend **owner);
/* A cached pinned block of `be` of n to `most` bytes, or NULL; pinned tensors take
 * theirs here too. */
void *ferry__staging_take(ferry_backend *be, size_t n, size_t most);
/* n: the size asked of ferry__staging_alloc. Pinned buffers go to a small cache. */
void ferry__staging_free(ferry_backend *owner, void *p, size_t n);
/* Gives the cached pinned staging buffers of `be` (NULL: of every backend) back. */
void ferry__staging_drain(ferry_backend *be);
/* Frees the kept tensor handle blocks (ferry_empty_cache, ferry_shutdown). */
void ferry__tensor_blocks_drain(void);
/* Runs on one chunk of a staged copy in host memory, between its two legs; `offset` is
 * the chunk's byte offset in the copy. */
typedef ferry_status (*ferry_stage_fn)(void *ctx, void *buf, size_t offset, size_t len);
/* The staged path of to(): n bytes from (s, soff) to (d, doff) through two host buffers
 * of at most max_chunk bytes, the reading of chunk i + 1 overlapping the writing of
 * chunk i. `process` (NULL: none) runs on every chunk in between, in chunk order, on
 * one thread (with a destination, its own: three buffers, so reading, processing and
 * writing back overlap); s NULL: process fills the chunks; d NULL: nothing is written
 * back. Where the calling thread may not run on a core per pipeline thread, one buffer
 * takes every chunk through all legs in turn on the caller's thread. */
ferry_status ferry__copy_staged_ex(ferry_storage *d, size_t doff, ferry_storage *s, size_t soff,
                                   size_t n, size_t max_chunk, ferry_stage_fn process, void *ctx);
/* A CPU tensor with the same geometry as t viewing a host copy of t's byte extent
 * (t itself, retained, when t is host-accessible). For the CPU fallback. */
ferry_tensor *ferry__stage_to_host(const ferry_tensor *t);

/* A host tensor to write dst's elements into (dst itself when host-accessible);
 * ferry__mirror_end() puts them on dst's device and releases the mirror. */
ferry_tensor *ferry__mirror_begin(ferry_tensor *dst);
ferry_status ferry__mirror_end(ferry_tensor *dst, ferry_tensor *mirror);

/* ---- views (views.c) ---- */

/* "(2, 3)" into buf. */
const char *ferry__shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);
/* Wraps a negative dim and checks its range with PyTorch's message. */
ferry_status ferry__wrap_dim(int *dim, int ndim);

/* ---- operations (ops.c) ---- */

/* PyTorch's type promotion of two tensor dtypes. */
ferry_dtype ferry__promote(ferry_dtype a, ferry_dtype b);

/* ---- autograd (autograd.c) ---- */

typedef struct ferry_node ferry_node;

/* Computes the gradients of a node's inputs from the gradient of its output: grads[i]
 * receives a new reference or stays NULL (no gradient for that input). Runs with grad
 * mode set to create_graph, so formulas written with public ops are differentiable. */
typedef ferry_status (*ferry_backward_fn)(ferry_node *n, ferry_tensor *grad, ferry_tensor **grads);

#define FERRY_NODE_MAX_INPUTS 2
#define FERRY_NODE_MAX_SAVED 3

extern _Thread_local bool ferry__grad_off;

static inline bool ferry__grad_on(void)
{
    return !ferry__grad_off;
}

/* Whether an op on these inputs records a node: grad mode on and one of them (each may
 * be NULL or an invalid handle) requires grad. */
static inline bool ferry__grad_wanted(const ferry_tensor *a, const ferry_tensor *b)
{
    if (ferry__grad_off)
        return false;
    return (a && a->magic == FERRY_TENSOR_MAGIC && a->requires_grad) ||
           (b && b->magic == FERRY_TENSOR_MAGIC && b->requires_grad);
}

/* A node named `name` (static storage) with edges to each input that requires grad;
 * NULL with an error on allocation failure. */
ferry_node *ferry__node_create(const char *name, ferry_backward_fn fn, int n_inputs,
                               ferry_tensor *const *inputs);
/* Saves t in slot i with its current version; `is_output` marks the node's own result
 * (kept without its grad_fn, so the graph has no cycle). */
ferry_status ferry__node_save(ferry_node *n, int i, ferry_tensor *t, bool is_output);
/* The tensor saved in slot i (new reference; NULL when the slot is empty and no error),
 * checking its version. On failure *st receives the error. */
ferry_tensor *ferry__node_saved(ferry_node *n, int i, ferry_status *st);
/* Room for `count` integer parameters of the formula (dims, flags), or NULL with an
 * error; ferry__node_params() reads them back (count in *count when not NULL). */
int64_t *ferry__node_params_alloc(ferry_node *n, int count);
int64_t *ferry__node_params(ferry_node *n, int *count);
double *ferry__node_scalar(ferry_node *n);
bool ferry__node_needs(const ferry_node *n, int input);
/* Input i's shape as the op saw it. */
int ferry__node_input_ndim(const ferry_node *n, int input);
const int64_t *ferry__node_input_shape(const ferry_node *n, int input);
/* Makes n the grad_fn of result (takes over the caller's node reference). */
void ferry__node_attach(ferry_node *n, ferry_tensor *result);
void ferry__node_release(ferry_node *n);
/* Drops t's autograd state; called when its handle is freed. */
void ferry__autograd_release(ferry_tensor *t);

/* Checks an in-place write into `out` by `fn` (PyTorch's refusals) when inputs_need is
 * true because an input of the op requires grad. */
ferry_status ferry__inplace_check(const char *fn, const ferry_tensor *out, bool inputs_need);
/* Whether t was made by a view op that records (its writes would be its base's). */
bool ferry__is_view_output(const ferry_tensor *t);
/* Records an in-place write into t's storage. */
static inline void ferry__version_bump(ferry_tensor *t)
{
    atomic_fetch_add_explicit(&t->storage->version, 1, memory_order_relaxed);
}

/* g summed over broadcast dims down to (ndim, shape); g itself (retained) when it has
 * that shape already. */
ferry_tensor *ferry__sum_to(ferry_tensor *g, int ndim, const int64_t *shape);

/* Recording hooks for views and copies, placed at the end of their forwards: they take
 * the result `r` of the forward on input `t` (NULL passes through), record the node when
 * grad is wanted and otherwise make sure r does not require grad. */
typedef enum ferry_view_kind {
    FERRY_VIEW_VIEW,        /* view, reshape as a view, flatten: ViewBackward0 */
    FERRY_VIEW_RESHAPE_COPY,/* reshape that had to copy: UnsafeViewBackward0 */
    FERRY_VIEW_SQUEEZE_DIM, /* SqueezeBackward1 */
    FERRY_VIEW_SQUEEZE_ALL, /* SqueezeBackward0 */
    FERRY_VIEW_UNSQUEEZE,   /* UnsqueezeBackward0 */
    FERRY_VIEW_TRANSPOSE,   /* params: dim0, dim1 */
    FERRY_VIEW_PERMUTE,     /* params: the dims (not saved; the inverse is computed) */
    FERRY_VIEW_SLICE,       /* params: dim, start, end, step (normalised) */
    FERRY_VIEW_EXPAND,      /* ExpandBackward0 */
} ferry_view_kind;
ferry_tensor *ferry__ag_view(ferry_tensor *r, ferry_tensor *t, ferry_view_kind kind,
                             const int64_t *params, int nparams);
typedef enum ferry_copy_kind {
    FERRY_COPY_TO,    /* to() another device or dtype: ToCopyBackward0 */
    FERRY_COPY_CLONE, /* CloneBackward0 */
} ferry_copy_kind;
ferry_tensor *ferry__ag_copy(ferry_tensor *r, ferry_tensor *t, ferry_copy_kind kind);

/* ---- dtypes (dtype.c) ---- */

/* Converts a double to one element of dtype, with the cast kernel's rules. */
void ferry__scalar_from_double(ferry_dtype dtype, double v, void *out);
/* Reads one element of dtype as a double. */
double ferry__scalar_to_double(ferry_dtype dtype, const void *p);
bool ferry__dtype_valid(ferry_dtype dtype);

/* ---- queues and events (stream.c) ---- */

/* One buffer a backend call touches: (be, dev) owns it; `write` when the call writes it. */
typedef struct ferry_access {
    ferry_backend *be;
    int32_t dev;
    const void *buf;
    bool write;
} ferry_access;

/* Whether calls on `be` need ferry__track_begin/end: it has queues, or some buffer has
 * queued work recorded. */
bool ferry__track_active(const ferry_backend *be);
/* Before a call on (be, dev): selects the thread's current queue in the plugin and
 * orders the call after the work it must follow on the buffers in `acc`. */
ferry_status ferry__track_begin(ferry_backend *be, int32_t dev, const ferry_access *acc, int n);
/* After a successful call: records its event as the buffers' last write or use. */
void ferry__track_end(ferry_backend *be, int32_t dev, const ferry_access *acc, int n);
/* Waits on the host for the queued work a host read (or write) of s must follow. */
ferry_status ferry__track_host(const ferry_storage *s, bool write);
/* Before s's memory is freed or cached: waits for every queued user; drops the record. */
void ferry__track_storage_free(const ferry_storage *s);
/* Before memory of (be, dev) goes back to the backend or its owner: synchronizes the
 * device when it queued work that left no record since (stream.c). */
void ferry__track_unrecorded_wait(ferry_backend *be, int32_t dev);

/* Backend queue entries (backend_call.c); FERRY_ERR_UNSUPPORTED when absent. */
bool ferry__be_queued(const ferry_backend *be);
ferry_status ferry__be_queue_create(ferry_backend *be, int32_t dev, void **queue);
void ferry__be_queue_destroy(ferry_backend *be, int32_t dev, void *queue);
ferry_status ferry__be_set_queue(ferry_backend *be, int32_t dev, void *queue);
ferry_status ferry__be_event_record(ferry_backend *be, int32_t dev, void *queue, void **event);
ferry_status ferry__be_event_wait(ferry_backend *be, int32_t dev, void *queue, void *event);
ferry_status ferry__be_event_synchronize(ferry_backend *be, int32_t dev, void *event);
ferry_status ferry__be_event_query(ferry_backend *be, int32_t dev, void *event, bool *done);
void ferry__be_event_destroy(ferry_backend *be, int32_t dev, void *event);
ferry_status ferry__be_event_elapsed(ferry_backend *be, int32_t dev, void *a, void *b, float *ms);
bool ferry__be_has_async_copies(const ferry_backend *be);
/* DLPack streams: whether be offers queue_native and event_wait_native (with queues),
 * and the two entries; FERRY_ERR_UNSUPPORTED without them. */
bool ferry__be_native_streams(const ferry_backend *be);
ferry_status ferry__be_queue_native(ferry_backend *be, int32_t dev, void *queue, int64_t *stream);
ferry_status ferry__be_event_wait_native(ferry_backend *be, int32_t dev, int64_t stream,
                                         void *event);
/* The DLPack stream of the calling thread's current queue of (be, dev). */
ferry_status ferry__track_current_native(ferry_backend *be, int32_t dev, int64_t *stream);
/* Makes the foreign DLPack stream `stream` of s's device wait, on the device, for the
 * queued work a writer of s must follow (work of another backend: on the host). */
ferry_status ferry__track_native_wait(const ferry_storage *s, int64_t stream);
/* Records s (memory just imported) as written by the calling thread's current queue of
 * its device, so other queues and host reads follow what its producer ordered there. */
void ferry__track_import(ferry_storage *s);
/* Asynchronous copies on the current queue; the caller orders and tracks them. */
ferry_status ferry__be_copy_from_host_async(ferry_backend *be, int32_t dev, void *dst,
                                            size_t dst_off, const void *src, size_t nbytes);
ferry_status ferry__be_copy_to_host_async(ferry_backend *be, int32_t dev, void *dst,
                                          const void *src, size_t src_off, size_t nbytes);

#endif /* FERRY_INTERNAL_H */

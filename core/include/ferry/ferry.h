/**
 * ferry public API: tensors that live on devices ("cpu", "opencl:0", "cuda:1", or a
 * plugin's), move between them through one to() path, and convert between dtypes.
 * See ../shared/API.md for the contract this header implements.
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/dlpack.h>
#include <ferry/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0
#define FERRY_VERSION_STRING "0.1.0"

/** Most dimensions a tensor may have (NumPy 2's limit). */
#define FERRY_MAX_DIMS 64

/** Longest backend type name, without the terminating NUL. */
#define FERRY_MAX_TYPE_LEN 15

/** An opaque, reference-counted tensor handle. */
typedef struct ferry_tensor ferry_tensor;

/** Element types. Values are part of the ABI. */
typedef enum ferry_dtype {
    FERRY_BOOL = 0,
    FERRY_UINT8 = 1,
    FERRY_INT8 = 2,
    FERRY_INT16 = 3,
    FERRY_INT32 = 4,
    FERRY_INT64 = 5,
    FERRY_FLOAT16 = 6,
    FERRY_BFLOAT16 = 7,
    FERRY_FLOAT32 = 8,
    FERRY_FLOAT64 = 9,
} ferry_dtype;

/** Number of dtypes; valid values are 0 .. FERRY_NUM_DTYPES - 1. */
#define FERRY_NUM_DTYPES 10

/** A parsed device string, by value: {"cuda", 0} for "cuda:0". */
typedef struct ferry_device {
    char type[FERRY_MAX_TYPE_LEN + 1]; /**< backend name, NUL-terminated */
    int32_t index;                     /**< >= 0 */
} ferry_device;

/** What a device is; filled by ferry_device_get_info(). */
typedef struct ferry_device_info {
    char name[256];            /**< "pthread-AVX-512", "NVIDIA H100" */
    char vendor[128];          /**< "GenuineIntel", "NVIDIA Corporation" */
    char backend[16];          /**< backend type name, "opencl" */
    char backend_version[64];  /**< the plugin's own version */
    char driver_version[64];   /**< the driver's or runtime's version, "" if none */
    uint64_t total_memory;     /**< bytes; 0 when unknown */
    uint64_t free_memory;      /**< bytes; 0 when unknown (or not known without
                                    creating a driver context) */
    bool host_accessible;      /**< the host may dereference this device's memory */
    int32_t compute_units;     /**< SMs, OpenCL compute units, cores; 0 when unknown */
    char arch[32];             /**< "sm_90", "OpenCL C 1.2", "x86_64"; "" when unknown */
    char bus_id[32];           /**< PCI bus id "0000:3b:00.0"; "" when none */
} ferry_device_info;

/* ------------------------------------------------------------------------ */
/* Library                                                                  */
/* ------------------------------------------------------------------------ */

/** "0.1.0"; static storage. */
FERRY_API const char *ferry_version(void);

/** Frees a string returned as `char *` by ferry (NULL-safe). */
FERRY_API void ferry_free(void *p);

/**
 * Drops the registry's hold on every backend and forgets what was discovered, so the
 * next call rediscovers plugins (after FERRY_PLUGIN_PATH changed, say). A backend with
 * live tensors stays loaded until its last tensor is released, then is dlclosed.
 * Thread-safety: must not race with other ferry calls.
 */
FERRY_API void ferry_shutdown(void);

/* ------------------------------------------------------------------------ */
/* Data types                                                               */
/* ------------------------------------------------------------------------ */

/** "float32"; "invalid" for a value out of range. */
FERRY_API const char *ferry_dtype_name(ferry_dtype dtype);

/** Bytes per element; 0 for a value out of range. */
FERRY_API size_t ferry_dtype_size(ferry_dtype dtype);

/** float16, bfloat16, float32, float64. */
FERRY_API bool ferry_dtype_is_floating(ferry_dtype dtype);

/**
 * Parses a dtype name: the canonical names ("float32") and PyTorch's aliases
 * ("float", "double", "half", "int", "long", "short", "bool", ...).
 * @return FERRY_OK, or FERRY_ERR_INVALID_ARGUMENT for an unknown name.
 */
FERRY_API ferry_status ferry_dtype_parse(const char *name, ferry_dtype *out);

/* ------------------------------------------------------------------------ */
/* Devices and backends                                                     */
/* ------------------------------------------------------------------------ */

/**
 * Parses "TYPE" or "TYPE:INDEX". Checks the syntax and that TYPE names a known
 * backend (built in or found on the plugin path), not that the device exists.
 * @return FERRY_OK, or FERRY_ERR_INVALID_DEVICE with PyTorch's messages
 *         ("Device string must not be empty", "Invalid device string: 'cuda:-1'",
 *         "Expected one of cpu, opencl, cuda, sim device type at start of device
 *         string: xpu"). `out` is zeroed on failure.
 */
FERRY_API ferry_status ferry_device_parse(const char *s, ferry_device *out);

/**
 * Writes "cuda:0" into buf (always NUL-terminated when cap > 0).
 * @return the length the full string needs, as snprintf; -1 for a bad device.
 */
FERRY_API int ferry_device_format(ferry_device d, char *buf, size_t cap);

/** Devices of a backend; 0 when it is unknown or unusable. Never fails. */
FERRY_API int ferry_device_count(const char *type);

/** True when the backend loaded and has at least one device. */
FERRY_API bool ferry_is_available(const char *type);

/**
 * NULL when the backend is usable, else why not, as
 * "cuda: no device (cudaErrorInsufficientDriver: ...)". Owned by ferry, valid until
 * ferry_shutdown().
 */
FERRY_API const char *ferry_backend_status(const char *type);

/** Backends known (built in, found on the plugin path, or loaded explicitly). */
FERRY_API size_t ferry_backend_count(void);

/** Name of backend i (0 .. count-1) in listing order; NULL past the end. */
FERRY_API const char *ferry_backend_name(size_t i);

/** File a backend was (or would be) loaded from; NULL when none was found. */
FERRY_API const char *ferry_backend_path(const char *type);

/** Version string the plugin reports; NULL when it is not loaded. */
FERRY_API const char *ferry_backend_version(const char *type);

/**
 * Loads one plugin file explicitly. The plugin claims the type name it reports.
 * @return FERRY_OK (also when this very file is already loaded), FERRY_ERR_UNAVAILABLE
 *         (dlopen failed or no entry symbol), FERRY_ERR_ABI (other major version),
 *         FERRY_ERR_INVALID_ARGUMENT (NULL or relative path, or the name is taken).
 */
FERRY_API ferry_status ferry_plugin_load(const char *path);

/** Every usable device, cpu first, into out[0..cap); returns the total count. */
FERRY_API size_t ferry_devices(ferry_device *out, size_t cap);

/** Describes a device. FERRY_ERR_INVALID_DEVICE / FERRY_ERR_UNAVAILABLE on failure. */
FERRY_API ferry_status ferry_device_get_info(const char *device, ferry_device_info *out);

/** Waits for all work queued on the device. */
FERRY_API ferry_status ferry_synchronize(const char *device);

/** Caching allocator statistics of one device, in bytes. */
typedef struct ferry_memory_stats {
    uint64_t allocated;      /**< held by live tensors */
    uint64_t cached;         /**< freed by tensors, kept for reuse */
    uint64_t peak_allocated; /**< highest `allocated` since start */
    uint64_t backend_allocs; /**< calls to the backend's alloc entry */
    uint64_t backend_frees;  /**< calls to the backend's free entry */
} ferry_memory_stats;

/** Reads the caching allocator's statistics for a device. */
FERRY_API ferry_status ferry_memory_stats_get(const char *device, ferry_memory_stats *out);

/** Kinds of op the CPU fallback counts (the same numbers as the backend ABI's ferry_op). */
typedef enum ferry_fallback_kind {
    FERRY_FALLBACK_FILL = 0,
    FERRY_FALLBACK_CAST,
    FERRY_FALLBACK_COPY,
    FERRY_FALLBACK_UNARY,
    FERRY_FALLBACK_BINARY,
    FERRY_FALLBACK_REDUCE,
    FERRY_FALLBACK_MATMUL,
    FERRY_FALLBACK_NAMED, /**< named ops (the open op set) */
    FERRY_FALLBACK_KINDS
} ferry_fallback_kind;

/** How many ops of a device ran on the cpu backend through staging because the device's
 * backend had no kernel for them (DESIGN.md). FERRY_STRICT_DEVICE=1 makes such an op fail
 * instead, with FERRY_ERR_UNSUPPORTED naming the op, its dtypes and the device. */
typedef struct ferry_fallback_stats {
    uint64_t total;
    uint64_t by_kind[FERRY_FALLBACK_KINDS];
} ferry_fallback_stats;

FERRY_API ferry_status ferry_fallback_stats_get(const char *device, ferry_fallback_stats *out);
FERRY_API ferry_status ferry_fallback_stats_reset(const char *device);
/** "fill", "cast", ... for 0 .. FERRY_FALLBACK_KINDS-1; NULL otherwise. */
FERRY_API const char *ferry_fallback_kind_name(int kind);

/** Returns every cached (unused) block of the device to its backend. */
FERRY_API ferry_status ferry_empty_cache(const char *device);

/* ------------------------------------------------------------------------ */
/* Creating tensors                                                         */
/* ------------------------------------------------------------------------ */

/**
 * Copies contiguous row-major host data onto a device (torch.tensor(..., device=)).
 * `data` may be NULL only when the tensor has no elements.
 */
FERRY_API ferry_tensor *ferry_tensor_from_data(const void *data, ferry_dtype dtype, int ndim,
                                               const int64_t *shape, const char *device);

/**
 * A CPU tensor over the caller's memory, no copy (torch.from_numpy). Strides are in
 * elements (negative allowed; NULL = contiguous). `deleter(data, ctx)` runs when the
 * last reference goes (NULL: the caller keeps ownership). On failure the deleter is
 * not called.
 */
FERRY_API ferry_tensor *ferry_tensor_from_blob(void *data, ferry_dtype dtype, int ndim,
                                               const int64_t *shape, const int64_t *strides,
                                               void (*deleter)(void *data, void *ctx),
                                               void *ctx);

/** Uninitialised tensor. */
FERRY_API ferry_tensor *ferry_empty(ferry_dtype dtype, int ndim, const int64_t *shape,
                                    const char *device);
FERRY_API ferry_tensor *ferry_zeros(ferry_dtype dtype, int ndim, const int64_t *shape,
                                    const char *device);
FERRY_API ferry_tensor *ferry_ones(ferry_dtype dtype, int ndim, const int64_t *shape,
                                   const char *device);
/** Every element `value`, converted as ferry_tensor_to_dtype converts. */
FERRY_API ferry_tensor *ferry_full(ferry_dtype dtype, int ndim, const int64_t *shape,
                                   double value, const char *device);
/** n x n identity. */
FERRY_API ferry_tensor *ferry_eye(int64_t n, ferry_dtype dtype, const char *device);
/** [start, end) by step, ceil((end - start) / step) elements, as torch.arange. */
FERRY_API ferry_tensor *ferry_arange(double start, double end, double step, ferry_dtype dtype,
                                     const char *device);

/* ------------------------------------------------------------------------ */
/* Lifetime and introspection                                               */
/* ------------------------------------------------------------------------ */

/** Adds a reference; returns t. NULL-safe. */
FERRY_API ferry_tensor *ferry_tensor_retain(ferry_tensor *t);
/** Drops a reference (NULL-safe). */
FERRY_API void ferry_tensor_release(ferry_tensor *t);

FERRY_API int ferry_tensor_ndim(const ferry_tensor *t);
/** ndim entries, borrowed from t. */
FERRY_API const int64_t *ferry_tensor_shape(const ferry_tensor *t);
/** ndim entries in elements, borrowed from t. */
FERRY_API const int64_t *ferry_tensor_strides(const ferry_tensor *t);
FERRY_API int64_t ferry_tensor_numel(const ferry_tensor *t);
FERRY_API ferry_dtype ferry_tensor_dtype(const ferry_tensor *t);
/** numel * element size; SIZE_MAX when that exceeds the address space (an expanded view of
 * 2**62 elements, say: no copy of it can be made). */
FERRY_API size_t ferry_tensor_nbytes(const ferry_tensor *t);
FERRY_API ferry_device ferry_tensor_device(const ferry_tensor *t);
/** Row-major contiguous (size-1 dims may have any stride). */
FERRY_API bool ferry_tensor_is_contiguous(const ferry_tensor *t);
FERRY_API bool ferry_tensor_requires_grad(const ferry_tensor *t);
/**
 * Floating dtypes only: otherwise FERRY_ERR_INVALID_ARGUMENT and
 * "only Tensors of floating point dtype can require gradients".
 */
FERRY_API ferry_status ferry_tensor_set_requires_grad(ferry_tensor *t, bool requires_grad);

/** True for tensors over memory that must not be written (read-only NumPy arrays,
 * DLPack imports flagged read-only, and their views). */
FERRY_API bool ferry_tensor_is_read_only(const ferry_tensor *t);
/** Marks this handle read-only (views made from it after inherit the flag); a
 * read-only tensor cannot be made writable again: FERRY_ERR_INVALID_ARGUMENT. */
FERRY_API ferry_status ferry_tensor_set_read_only(ferry_tensor *t, bool read_only);

/* ------------------------------------------------------------------------ */
/* Moving between devices and types                                         */
/* ------------------------------------------------------------------------ */

/**
 * Move a tensor to a device.
 *
 * @param t       borrowed; not modified.
 * @param device  device string such as "cuda:0"; NULL means "cpu".
 * @return a new reference: `t` itself when it is already on `device`, else a
 *         contiguous copy there; NULL on failure, with FERRY_ERR_INVALID_DEVICE,
 *         FERRY_ERR_UNAVAILABLE, FERRY_ERR_OUT_OF_MEMORY or FERRY_ERR_BACKEND.
 * Thread-safety: safe while no other thread writes to `t`.
 */
FERRY_API ferry_tensor *ferry_tensor_to(ferry_tensor *t, const char *device);
FERRY_API ferry_tensor *ferry_tensor_cpu(ferry_tensor *t);
/** index -1 means 0. */
FERRY_API ferry_tensor *ferry_tensor_cuda(ferry_tensor *t, int index);
FERRY_API ferry_tensor *ferry_tensor_opencl(ferry_tensor *t, int index);

/** `t` itself when already of that dtype, else a converted copy on the same device. */
FERRY_API ferry_tensor *ferry_tensor_to_dtype(ferry_tensor *t, ferry_dtype dtype);
/** A contiguous copy on the same device; keeps requires_grad, as PyTorch's clone. */
FERRY_API ferry_tensor *ferry_tensor_clone(ferry_tensor *t);
/** `t` itself when contiguous, else a contiguous copy on its device. */
FERRY_API ferry_tensor *ferry_tensor_contiguous(ferry_tensor *t);
/** A new handle sharing storage that does not require grad. */
FERRY_API ferry_tensor *ferry_tensor_detach(ferry_tensor *t);

/**
 * Pointer to the first element of a tensor in host-accessible memory, valid while t
 * lives. NULL with FERRY_ERR_WRONG_DEVICE on a device the host cannot read, and with
 * FERRY_ERR_INVALID_ARGUMENT for a tensor that requires grad.
 */
FERRY_API void *ferry_tensor_host_data(const ferry_tensor *t);

/**
 * Copies t's elements, row-major contiguous, into dst (nbytes must be
 * ferry_tensor_nbytes(t)). Works from any device; returns when the data is there.
 */
FERRY_API ferry_status ferry_tensor_copy_to_host(const ferry_tensor *t, void *dst, size_t nbytes);

/**
 * Copies src's elements into dst, as PyTorch's dst.copy_(src): src broadcasts to dst's
 * shape, converts to dst's dtype (as ferry_tensor_to_dtype) and may live on any device.
 * FERRY_ERR_INVALID_ARGUMENT when dst is read-only or the shapes do not broadcast.
 */
FERRY_API ferry_status ferry_tensor_copy_from(ferry_tensor *dst, ferry_tensor *src);

/** Sets every element of t to value, converted as ferry_full converts (t.fill_(value)). */
FERRY_API ferry_status ferry_tensor_fill(ferry_tensor *t, double value);

/* ------------------------------------------------------------------------ */
/* Printing                                                                 */
/* ------------------------------------------------------------------------ */

/** PyTorch's repr of the tensor; free with ferry_free(). NULL on failure. */
FERRY_API char *ferry_tensor_repr(const ferry_tensor *t);
/** torch.set_printoptions for every later ferry_tensor_repr (process-wide): precision
 * [0, 64] digits, threshold (>= 0) elements before summarizing, edgeitems [0, 4096]
 * shown at each end of a summarized dim, linewidth (>= 1), sci_mode -1 (per tensor, the
 * default), 0 (never) or 1 (always). Defaults 4, 1000, 3, 80, -1. */
FERRY_API ferry_status ferry_set_print_options(int precision, int64_t threshold,
                                               int64_t edgeitems, int linewidth, int sci_mode);

/* ------------------------------------------------------------------------ */
/* Views: share storage with their input                                   */
/* ------------------------------------------------------------------------ */
/* Negative dims count from the end, as in PyTorch. Each returns a new reference, or
 * NULL with FERRY_ERR_INVALID_ARGUMENT and a message naming the shapes and dims. */

/** A view when the strides allow it, else a contiguous copy; one entry may be -1. */
FERRY_API ferry_tensor *ferry_reshape(ferry_tensor *t, int ndim, const int64_t *shape);
/** Like reshape, but never copies: fails with PyTorch's message when a view is impossible. */
FERRY_API ferry_tensor *ferry_view(ferry_tensor *t, int ndim, const int64_t *shape);
FERRY_API ferry_tensor *ferry_transpose(ferry_tensor *t, int dim0, int dim1);
/** dims is a permutation of 0 .. ndim-1. */
FERRY_API ferry_tensor *ferry_permute(ferry_tensor *t, int ndim, const int *dims);
/** Elements start, start+step, ... < end along dim (step > 0); start/end are clamped
 * as Python slices are, and may be negative. */
FERRY_API ferry_tensor *ferry_slice(ferry_tensor *t, int dim, int64_t start, int64_t end,
                                    int64_t step);
/** Broadcasts size-1 dims (stride 0) and prepends new ones; -1 keeps a size. */
FERRY_API ferry_tensor *ferry_expand(ferry_tensor *t, int ndim, const int64_t *shape);
/** Removes dim if its size is 1 (else returns a view of t unchanged, as PyTorch). */
FERRY_API ferry_tensor *ferry_squeeze(ferry_tensor *t, int dim);
/** Removes every size-1 dim. */
FERRY_API ferry_tensor *ferry_squeeze_all(ferry_tensor *t);
/** Inserts a size-1 dim at position dim (-ndim-1 .. ndim). */
FERRY_API ferry_tensor *ferry_unsqueeze(ferry_tensor *t, int dim);
/** Merges dims start_dim .. end_dim into one (a view when possible, else a copy). */
FERRY_API ferry_tensor *ferry_flatten(ferry_tensor *t, int start_dim, int end_dim);
/** torch.as_strided: a view of t's storage with any geometry (offset in elements from
 * the storage's start), checked to stay inside the storage (PyTorch's "setStorage: ...
 * out of bounds" message); FERRY_ERR_UNSUPPORTED on a tensor requiring grad in grad mode. */
FERRY_API ferry_tensor *ferry_as_strided(ferry_tensor *t, int ndim, const int64_t *shape,
                                         const int64_t *strides, int64_t storage_offset);
/** Tensor.storage_offset(): t's first element's position in its storage, in elements. */
FERRY_API int64_t ferry_tensor_storage_offset(const ferry_tensor *t);
/** Tensor.data_ptr(): the address of t's first element (host memory), or the backend's
 * buffer handle plus the byte offset (device memory); 0 for an invalid handle. */
FERRY_API uintptr_t ferry_tensor_data_ptr(const ferry_tensor *t);

/* ---- Joining, splitting and shape (PyTorch's names, semantics and messages) ---- */

/** Elements [start, start + length) along dim, a view (start may be negative). */
FERRY_API ferry_tensor *ferry_narrow(ferry_tensor *t, int dim, int64_t start, int64_t length);
/** Views of `size` elements along dim (the last may be shorter): returns the count, or -1
 * on error, and writes at most cap new references into out. */
FERRY_API int ferry_split(ferry_tensor *t, int64_t size, int dim, ferry_tensor **out, int cap);
/** Views of the given sizes (they must sum to the dim's size), as split(t, [sizes]). */
FERRY_API int ferry_split_sizes(ferry_tensor *t, int n, const int64_t *sizes, int dim,
                                ferry_tensor **out, int cap);
/** torch.chunk: pieces of ceil(size / chunks); count returned as ferry_split. */
FERRY_API int ferry_chunk(ferry_tensor *t, int chunks, int dim, ferry_tensor **out, int cap);
/** The slices along dim with dim removed; count returned as ferry_split. */
FERRY_API int ferry_unbind(ferry_tensor *t, int dim, ferry_tensor **out, int cap);
/** Concatenation along dim of tensors on one device, promoted to a common dtype;
 * empty 1-D tensors take no part, as in PyTorch. */
FERRY_API ferry_tensor *ferry_cat(const ferry_tensor *const *ts, int n, int dim);
/** Tensors of one shape joined along a new dim. */
FERRY_API ferry_tensor *ferry_stack(const ferry_tensor *const *ts, int n, int dim);
/** A copy with the order of elements reversed along each of dims. */
FERRY_API ferry_tensor *ferry_flip(ferry_tensor *t, int ndims, const int *dims);
/** A view with dims source[i] moved to destination[i], the others in their order. */
FERRY_API ferry_tensor *ferry_movedim(ferry_tensor *t, int n, const int *source,
                                      const int *destination);
/** A view broadcast to shape (ferry_expand with PyTorch's broadcast_to name). */
FERRY_API ferry_tensor *ferry_broadcast_to(ferry_tensor *t, int ndim, const int64_t *shape);
/** New tensors of t's shape, dtype and device. */
FERRY_API ferry_tensor *ferry_empty_like(const ferry_tensor *t);
FERRY_API ferry_tensor *ferry_zeros_like(const ferry_tensor *t);
FERRY_API ferry_tensor *ferry_ones_like(const ferry_tensor *t);
FERRY_API ferry_tensor *ferry_full_like(const ferry_tensor *t, double value);
/** torch.roll: elements shifted by shifts[i] along dims[i] (ndims 0: over the flattened
 * tensor, one shift), wrapping around. */
FERRY_API ferry_tensor *ferry_roll(ferry_tensor *t, int nshifts, const int64_t *shifts, int ndims,
                                   const int *dims);
/** Tensor.repeat: t tiled repeats[i] times along each dim (n >= t's ndim; extra leading
 * repeats add dims). */
FERRY_API ferry_tensor *ferry_repeat(ferry_tensor *t, int n, const int64_t *repeats);
/** torch.tril / torch.triu: a copy of t (ndim >= 2, batched over the leading dims, any
 * dtype) with the elements above (tril) or below (triu) the diagonal-th diagonal zeroed:
 * tril keeps column - row <= diagonal, triu keeps column - row >= diagonal. */
FERRY_API ferry_tensor *ferry_tril(ferry_tensor *t, int64_t diagonal);
FERRY_API ferry_tensor *ferry_triu(ferry_tensor *t, int64_t diagonal);
/** torch.diagonal: a view of the offset diagonal of the (dim1, dim2) planes, those dims
 * removed and the diagonal appended as the last dim (empty when offset leaves the
 * plane). */
FERRY_API ferry_tensor *ferry_diagonal(ferry_tensor *t, int64_t offset, int dim1, int dim2);
/** torch.diag_embed: zeros with t's last dim replaced by dims dim1, dim2 (of the result)
 * of size n + |offset|, t on their offset diagonal. */
FERRY_API ferry_tensor *ferry_diag_embed(ferry_tensor *t, int64_t offset, int dim1, int dim2);
/** torch.nn.functional.pad, constant mode: pads[2k], pads[2k + 1] are added before and
 * after dim ndim - 1 - k (n even, n / 2 <= ndim); negative pads crop; new elements are
 * value (converted as ferry_full converts). */
FERRY_API ferry_tensor *ferry_pad(ferry_tensor *t, int n, const int64_t *pads, double value);
/** torch.linspace: steps values from start to end inclusive, with PyTorch's formula
 * (the second half counted back from end), float32 values bit-identical to torch's. */
FERRY_API ferry_tensor *ferry_linspace(double start, double end, int64_t steps, ferry_dtype dtype,
                                       const char *device);

/* ------------------------------------------------------------------------ */
/* Elementwise operations                                                   */
/* ------------------------------------------------------------------------ */
/* Operands are broadcast as NumPy/PyTorch do and promoted by PyTorch's rules
 * (bool < integers < floating; float16 + bfloat16 -> float32; integer true division
 * gives float32). Comparisons return bool. All operands must be on one device
 * (FERRY_ERR_WRONG_DEVICE: "Expected all tensors to be on the same device, but found at
 * least two devices, cuda:0 and cpu!"); the result lives there.
 *
 * A scalar operand (`_scalar` forms) takes part in promotion as PyTorch's Python
 * scalars do: it changes the category (int tensor + 2.5 -> float32), never the width.
 *
 * `_out` forms write into `out`, which must have the broadcast shape, live on the
 * operands' device, not be read-only, and have the result dtype or one it can be cast
 * to (PyTorch's can_cast: not float into an integer, not a non-bool into bool). */

/** A Python-style scalar operand: its kind decides promotion (an int scalar never turns
 * an integer tensor into a float one; a float scalar does, to float32). */
typedef enum ferry_scalar_kind {
    FERRY_SCALAR_BOOL = 0,
    FERRY_SCALAR_INT = 1,
    FERRY_SCALAR_FLOAT = 2,
} ferry_scalar_kind;

typedef struct ferry_scalar {
    ferry_scalar_kind kind;
    union {
        bool b;     /**< FERRY_SCALAR_BOOL */
        int64_t i;  /**< FERRY_SCALAR_INT, exact over the whole int64 range */
        double f;   /**< FERRY_SCALAR_FLOAT */
    } value;
} ferry_scalar;

#define FERRY_BINARY_OPS_(X) \
    X(add) X(sub) X(mul) X(div) X(pow) X(maximum) X(minimum) \
    X(eq) X(ne) X(lt) X(le) X(gt) X(ge)
#define FERRY_UNARY_OPS_(X) \
    X(neg) X(abs) X(exp) X(log) X(sqrt) X(sin) X(cos) X(tanh) X(sigmoid) X(relu)

#define FERRY_DECLARE_BINARY_(name)                                                         \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *a, ferry_tensor *b);                   \
    FERRY_API ferry_tensor *ferry_##name##_scalar(ferry_tensor *a, double b);                 \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *a,             \
                                              ferry_tensor *b);                               \
    FERRY_API ferry_status ferry_##name##_scalar_out(ferry_tensor *out, ferry_tensor *a,      \
                                                     double b);                             \
    FERRY_API ferry_tensor *ferry_##name##_scalar_ex(ferry_tensor *a, ferry_scalar b);        \
    FERRY_API ferry_status ferry_##name##_scalar_ex_out(ferry_tensor *out, ferry_tensor *a,   \
                                                        ferry_scalar b);
#define FERRY_DECLARE_UNARY_(name)                                                          \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *a);                                    \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *a);

/** ferry_add(a, b), ferry_add_scalar(a, 2.0), ferry_add_out(out, a, b),
 * ferry_add_scalar_out(out, a, 2.0), and the _scalar_ex forms taking a ferry_scalar;
 * likewise sub, mul, div, pow, maximum, minimum (NaN propagates), eq, ne, lt, le, gt,
 * ge. The plain _scalar forms take a double, which counts as an int scalar when it is
 * integral-valued (C's `2` arrives as 2.0) and as a float scalar otherwise. */
FERRY_BINARY_OPS_(FERRY_DECLARE_BINARY_)
/** ferry_neg(a), ferry_neg_out(out, a); likewise abs, exp, log, sqrt, sin, cos, tanh,
 * sigmoid, relu. Integer inputs of exp .. sigmoid compute in float32, as PyTorch. */
FERRY_UNARY_OPS_(FERRY_DECLARE_UNARY_)

/* More elementwise ops (named ops of ferry/ops/elementwise2.h), PyTorch's semantics:
 * floor, ceil, round (half to even), trunc keep integer dtypes; reciprocal .. cosh
 * compute integers in float32; gelu, silu, softplus, leaky_relu take floating dtypes
 * only; bitwise_not takes bool and integers; isnan, isinf, isfinite, logical_not give
 * bool. FERRY_ERR_UNSUPPORTED with PyTorch's "\"floor_vml_cpu\" not implemented for
 * 'Bool'" for a dtype the op lacks. */
#define FERRY_UNARY2_OPS_(X)                                                                \
    X(floor, FLOOR) X(ceil, CEIL) X(round, ROUND) X(trunc, TRUNC) X(sign, SIGN)             \
    X(reciprocal, RECIPROCAL) X(rsqrt, RSQRT) X(log1p, LOG1P) X(expm1, EXPM1)               \
    X(log2, LOG2) X(log10, LOG10) X(exp2, EXP2) X(erf, ERF) X(tan, TAN) X(asin, ASIN)       \
    X(acos, ACOS) X(atan, ATAN) X(sinh, SINH) X(cosh, COSH) X(gelu, GELU) X(silu, SILU)     \
    X(softplus, SOFTPLUS) X(leaky_relu, LEAKY_RELU) X(bitwise_not, BITWISE_NOT)             \
    X(isnan, ISNAN) X(isinf, ISINF) X(isfinite, ISFINITE) X(logical_not, LOGICAL_NOT)
#define FERRY_DECLARE_UNARY2_(name, OP) FERRY_DECLARE_UNARY_(name)
FERRY_UNARY2_OPS_(FERRY_DECLARE_UNARY2_)
/** square(a) = a * a (mul, and mul's gradient); bool squares to int64, as PyTorch's. */
FERRY_API ferry_tensor *ferry_square(ferry_tensor *a);
FERRY_API ferry_status ferry_square_out(ferry_tensor *out, ferry_tensor *a);
/** gelu with approximate='tanh' when approximate_tanh. */
FERRY_API ferry_tensor *ferry_gelu_ex(ferry_tensor *a, bool approximate_tanh);
/** softplus(x) = log1p(exp(beta x)) / beta, x where beta x > threshold (ferry_softplus:
 * beta 1, threshold 20). */
FERRY_API ferry_tensor *ferry_softplus_ex(ferry_tensor *a, double beta, double threshold);
/** ferry_leaky_relu uses negative_slope 0.01. */
FERRY_API ferry_tensor *ferry_leaky_relu_ex(ferry_tensor *a, double negative_slope);
/** Any op of ferry_unary2_op (ferry/ops/elementwise2.h) with its parameters p0, p1. */
FERRY_API ferry_tensor *ferry_unary2(ferry_tensor *a, int op, double p0, double p1);
FERRY_API ferry_status ferry_unary2_out(ferry_tensor *out, ferry_tensor *a, int op, double p0,
                                        double p1);

/* Binary: atan2 (integers in float32), hypot (floating only), remainder and
 * floor_divide (Python's sign rules), fmod (C's), bitwise_and/or/xor (bool and
 * integers), bitwise_left_shift/right_shift (integers; past the width 0 or the sign),
 * logical_and/or/xor (any dtypes, bool result). An integer division by zero fails with
 * FERRY_ERR_INVALID_ARGUMENT, "ZeroDivisionError", as PyTorch. Each with _scalar,
 * _scalar_ex, _out and _scalar_ex_out forms. */
#define FERRY_BINARY2_OPS_(X)                                                               \
    X(atan2, ATAN2) X(remainder, REMAINDER) X(fmod, FMOD) X(floor_divide, FLOOR_DIVIDE)     \
    X(bitwise_and, BITWISE_AND) X(bitwise_or, BITWISE_OR) X(bitwise_xor, BITWISE_XOR)       \
    X(bitwise_left_shift, BITWISE_LEFT_SHIFT) X(bitwise_right_shift, BITWISE_RIGHT_SHIFT)   \
    X(hypot, HYPOT) X(logical_and, LOGICAL_AND) X(logical_or, LOGICAL_OR)                   \
    X(logical_xor, LOGICAL_XOR)
#define FERRY_DECLARE_BINARY2_(name, OP)                                                    \
    FERRY_API ferry_tensor *ferry_##name(ferry_tensor *a, ferry_tensor *b);                   \
    FERRY_API ferry_tensor *ferry_##name##_scalar(ferry_tensor *a, double b);                 \
    FERRY_API ferry_tensor *ferry_##name##_scalar_ex(ferry_tensor *a, ferry_scalar b);        \
    FERRY_API ferry_status ferry_##name##_out(ferry_tensor *out, ferry_tensor *a,             \
                                              ferry_tensor *b);                               \
    FERRY_API ferry_status ferry_##name##_scalar_ex_out(ferry_tensor *out, ferry_tensor *a,   \
                                                        ferry_scalar b);
FERRY_BINARY2_OPS_(FERRY_DECLARE_BINARY2_)

/** Reflected scalar forms, `b op a` for a scalar b (Python's `2 - t`, `2 / t`, `2 ** t`,
 * `2 // t`, `2 % t`, `2 << t`, `2 >> t`): promoted as the `_scalar_ex` forms promote (a
 * scalar changes a's category, never its width; integers divide in float32), with the
 * op's own refusals (`True - t`, "ZeroDivisionError" for an integer a holding 0) and a
 * gradient through a. ferry_rsub_scalar(a, 2.0) is 2 - a. */
#define FERRY_REFLECTED_OPS_(X)                                                             \
    X(sub) X(div) X(pow) X(floor_divide) X(remainder) X(bitwise_left_shift)                 \
    X(bitwise_right_shift)
#define FERRY_DECLARE_REFLECTED_(name)                                                      \
    FERRY_API ferry_tensor *ferry_r##name##_scalar(ferry_tensor *a, double b);                \
    FERRY_API ferry_tensor *ferry_r##name##_scalar_ex(ferry_tensor *a, ferry_scalar b);
FERRY_REFLECTED_OPS_(FERRY_DECLARE_REFLECTED_)

/** where(cond, a, b): cond bool (else PyTorch's "where expected condition to be a boolean
 * tensor, but got a tensor with dtype Long"), a and b promoted, all three broadcast. */
FERRY_API ferry_tensor *ferry_where(ferry_tensor *cond, ferry_tensor *a, ferry_tensor *b);
FERRY_API ferry_tensor *ferry_where_scalar(ferry_tensor *cond, ferry_tensor *a, ferry_scalar b);
/** t with `value` where mask (bool, broadcastable to t) is true; _inplace writes t. */
FERRY_API ferry_tensor *ferry_masked_fill(ferry_tensor *t, ferry_tensor *mask, double value);
FERRY_API ferry_status ferry_masked_fill_inplace(ferry_tensor *t, ferry_tensor *mask,
                                                 double value);
/** clamp(t, min, max): either bound may be NULL, not both (PyTorch's "torch.clamp: At
 * least one of 'min' or 'max' must not be None"); promotes as maximum/minimum. */
FERRY_API ferry_tensor *ferry_clamp(ferry_tensor *t, ferry_tensor *min, ferry_tensor *max);
FERRY_API ferry_tensor *ferry_clamp_scalar(ferry_tensor *t, const ferry_scalar *min,
                                           const ferry_scalar *max);

/* ------------------------------------------------------------------------ */
/* Indexing                                                                 */
/* ------------------------------------------------------------------------ */
/* As PyTorch: index dtype int32 or int64, negative indices count from the end, and an
 * index outside [-size, size) fails with FERRY_ERR_INDEX ("index 7 is out of bounds for
 * dimension 0 with size 5") on every device (these ops wait for their kernel). */

/** t.index_select(dim, index): index 0-d or 1-d. */
FERRY_API ferry_tensor *ferry_index_select(ferry_tensor *t, int dim, ferry_tensor *index);
/** t.gather(dim, index): index has t's ndim; the result has index's shape. */
FERRY_API ferry_tensor *ferry_gather(ferry_tensor *t, int dim, ferry_tensor *index);
/** t.scatter(dim, index, src): a copy of t with src's elements written where index says
 * (later positions win where two name one element). src has t's dtype. */
FERRY_API ferry_tensor *ferry_scatter(ferry_tensor *t, int dim, ferry_tensor *index,
                                      ferry_tensor *src);
/** t.scatter_add(dim, index, src): accumulates instead (bool: logical or). */
FERRY_API ferry_tensor *ferry_scatter_add(ferry_tensor *t, int dim, ferry_tensor *index,
                                          ferry_tensor *src);
/** In-place forms (no gradient recorded through them yet). */
FERRY_API ferry_status ferry_scatter_(ferry_tensor *t, int dim, ferry_tensor *index,
                                      ferry_tensor *src);
FERRY_API ferry_status ferry_scatter_add_(ferry_tensor *t, int dim, ferry_tensor *index,
                                          ferry_tensor *src);
/** t[indices] as PyTorch's aten::index: indices[i] (NULL = the whole dim) applies to
 * dim i, n <= ndim; int64/int32 indices broadcast together, a bool/uint8 mask of k dims
 * stands for the k index tensors of its nonzero() (a 0-d mask is FERRY_ERR_UNSUPPORTED
 * here: Python's t[True] unsqueezes first). The broadcast index dims replace the
 * dims they index, in place when those are adjacent, else first (NumPy's rule). */
FERRY_API ferry_tensor *ferry_index(const ferry_tensor *t, int n, const ferry_tensor *const *indices);
/** t[indices] = values in place (accumulate: +=, duplicates all count; otherwise one of
 * the duplicates wins). values broadcast to t[indices]'s shape, cast to t's dtype. */
FERRY_API ferry_status ferry_index_put(ferry_tensor *t, int n, const ferry_tensor *const *indices,
                                       const ferry_tensor *values, bool accumulate);

/* Selection: the result's size depends on the data, so these wait for a count from the
 * device before they allocate (their one synchronisation). */

/** t.nonzero(): int64 [count, ndim], the positions of the non-zero elements (NaN counts)
 * in row-major order; a 0-d t gives [0 or 1, 0]. */
FERRY_API ferry_tensor *ferry_nonzero(ferry_tensor *t);
/** t.masked_select(mask): the 1-d elements of t where mask (bool) is true, both broadcast
 * together first. */
FERRY_API ferry_tensor *ferry_masked_select(ferry_tensor *t, ferry_tensor *mask);
/** t.masked_scatter(mask, source): t (broadcast with mask) with source's first elements,
 * in row-major order, written where mask is true; source has t's dtype and at least as
 * many elements as mask has true ones. */
FERRY_API ferry_tensor *ferry_masked_scatter(ferry_tensor *t, ferry_tensor *mask,
                                             ferry_tensor *source);
/** In place: mask broadcasts to t (no gradient recorded through it yet). */
FERRY_API ferry_status ferry_masked_scatter_(ferry_tensor *t, ferry_tensor *mask,
                                             ferry_tensor *source);

/* ------------------------------------------------------------------------ */
/* Reductions                                                               */
/* ------------------------------------------------------------------------ */
/* Reduce over `dims` (ndims entries; ndims == 0 reduces everything), keeping reduced
 * dims as size 1 when keepdim. sum of bool/integers gives int64; mean needs a floating
 * dtype (as PyTorch); argmax gives int64 indices (first occurrence). */

FERRY_API ferry_tensor *ferry_sum(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_mean(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_max(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_min(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_argmax(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_status ferry_sum_out(ferry_tensor *out, ferry_tensor *t, int ndims,
                                     const int *dims, bool keepdim);
FERRY_API ferry_status ferry_mean_out(ferry_tensor *out, ferry_tensor *t, int ndims,
                                      const int *dims, bool keepdim);
FERRY_API ferry_status ferry_max_out(ferry_tensor *out, ferry_tensor *t, int ndims,
                                     const int *dims, bool keepdim);
FERRY_API ferry_status ferry_min_out(ferry_tensor *out, ferry_tensor *t, int ndims,
                                     const int *dims, bool keepdim);
FERRY_API ferry_status ferry_argmax_out(ferry_tensor *out, ferry_tensor *t, int ndims,
                                        const int *dims, bool keepdim);

/* More reductions (PyTorch's semantics and dtypes): prod of bool/integers gives int64;
 * any/all give bool, count_nonzero int64; argmin the first minimum (int64; NaN counts as
 * the minimum); logsumexp of integers computes in float32 and is -inf over nothing;
 * var/std divide by max(0, N - correction) (PyTorch's default correction is 1); norm is
 * the vector p-norm (p = 0, 1, 2, inf, -inf or any other) of floating tensors. */
FERRY_API ferry_tensor *ferry_prod(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_argmin(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_any(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_all(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_count_nonzero(ferry_tensor *t, int ndims, const int *dims,
                                            bool keepdim);
FERRY_API ferry_tensor *ferry_logsumexp(ferry_tensor *t, int ndims, const int *dims, bool keepdim);
FERRY_API ferry_tensor *ferry_var(ferry_tensor *t, int ndims, const int *dims, bool keepdim,
                                  double correction);
FERRY_API ferry_tensor *ferry_std(ferry_tensor *t, int ndims, const int *dims, bool keepdim,
                                  double correction);
FERRY_API ferry_tensor *ferry_norm(ferry_tensor *t, double p, int ndims, const int *dims,
                                   bool keepdim);
/** torch.max(t, dim): the values (NaN propagates) and the int64 index of the first
 * maximum; the gradient goes to that index. */
FERRY_API ferry_status ferry_max_dim(ferry_tensor *t, int dim, bool keepdim, ferry_tensor **values,
                                     ferry_tensor **indices);
FERRY_API ferry_status ferry_min_dim(ferry_tensor *t, int dim, bool keepdim, ferry_tensor **values,
                                     ferry_tensor **indices);
/** Scans along dim (bool/integers give int64) and softmax/log_softmax along dim (floating
 * dtypes; stable: the row's max is subtracted first). */
FERRY_API ferry_tensor *ferry_cumsum(ferry_tensor *t, int dim);
FERRY_API ferry_tensor *ferry_cumprod(ferry_tensor *t, int dim);
FERRY_API ferry_tensor *ferry_softmax(ferry_tensor *t, int dim);
FERRY_API ferry_tensor *ferry_log_softmax(ferry_tensor *t, int dim);

/* Layers and losses, as torch.nn.functional. `reduction` as PyTorch's 'none', 'mean',
 * 'sum'; targets are int64 class indices (input (N, C) or (N, C, d1, ...), or (C) for one
 * sample); a target equal to ignore_index counts for nothing (PyTorch's default -100),
 * and the mean is over the others; a class out of range is "Target 5 is out of bounds.". */
typedef enum ferry_reduction {
    FERRY_REDUCTION_NONE = 0,
    FERRY_REDUCTION_MEAN = 1,
    FERRY_REDUCTION_SUM = 2,
} ferry_reduction;
/** x @ w^T + b (b may be NULL). */
FERRY_API ferry_tensor *ferry_linear(ferry_tensor *x, ferry_tensor *w, ferry_tensor *b);
FERRY_API ferry_tensor *ferry_mse_loss(ferry_tensor *input, ferry_tensor *target,
                                       ferry_reduction reduction);
FERRY_API ferry_tensor *ferry_nll_loss(ferry_tensor *input, ferry_tensor *target,
                                       int64_t ignore_index, ferry_reduction reduction);
/** log_softmax over the class dim, then nll_loss; ignore_index -100, no smoothing. */
FERRY_API ferry_tensor *ferry_cross_entropy(ferry_tensor *logits, ferry_tensor *target,
                                            ferry_reduction reduction);
FERRY_API ferry_tensor *ferry_cross_entropy_ex(ferry_tensor *logits, ferry_tensor *target,
                                               int64_t ignore_index, double label_smoothing,
                                               ferry_reduction reduction);
/** nll_loss and cross_entropy with class weights (weight: NULL, or 1-D of one per class
 * on the input's device), as PyTorch: each target's loss is scaled by weight[target] (the
 * smoothing term by weight per class), and 'mean' divides by the sum of weight[target]
 * over the targets not ignored. */
FERRY_API ferry_tensor *ferry_nll_loss_weighted(ferry_tensor *input, ferry_tensor *target,
                                                ferry_tensor *weight, int64_t ignore_index,
                                                ferry_reduction reduction);
FERRY_API ferry_tensor *ferry_cross_entropy_weighted(ferry_tensor *logits, ferry_tensor *target,
                                                     ferry_tensor *weight, int64_t ignore_index,
                                                     double label_smoothing,
                                                     ferry_reduction reduction);
/* Sorting (API.md "More operations"). Results are new contiguous tensors; indices are
 * int64. NaN sorts as the largest value; -0.0 equals +0.0. `indices` may be NULL when
 * only the values are wanted. */
FERRY_API ferry_status ferry_sort(ferry_tensor *t, int dim, bool descending, bool stable,
                                  ferry_tensor **values, ferry_tensor **indices);
FERRY_API ferry_tensor *ferry_argsort(ferry_tensor *t, int dim, bool descending, bool stable);
FERRY_API ferry_status ferry_topk(ferry_tensor *t, int64_t k, int dim, bool largest, bool sorted,
                                  ferry_tensor **values, ferry_tensor **indices);

/* ------------------------------------------------------------------------ */
/* Matrix multiplication                                                    */
/* ------------------------------------------------------------------------ */

/**
 * torch.matmul: 1-D x 1-D is a dot product (0-d result), 2-D x 2-D a matrix product,
 * 1-D operands get a dim prepended (left) or appended (right) and removed after, and
 * batch dims broadcast. Shape errors name both shapes:
 * "matmul: shape mismatch (2, 3) x (4, 5): inner dimensions 3 and 4 differ".
 */
FERRY_API ferry_tensor *ferry_matmul(ferry_tensor *a, ferry_tensor *b);
FERRY_API ferry_status ferry_matmul_out(ferry_tensor *out, ferry_tensor *a, ferry_tensor *b);

/* ------------------------------------------------------------------------ */
/* Autograd                                                                 */
/* ------------------------------------------------------------------------ */
/* PyTorch's rules (torch.autograd). While grad mode is on (thread-local, on by
 * default), an op with an input that requires grad returns a tensor that requires grad,
 * is not a leaf and records its backward node; integer and bool results never require
 * grad. Backward runs on the calling thread, each formula on the device of its forward.
 * In-place writes (_out forms, copy_from, fill) into a leaf that requires grad fail while
 * grad mode is on ("a leaf Variable that requires grad is being used in an in-place
 * operation."); writing into a tensor a node saved makes the later backward fail ("one of
 * the variables needed for gradient computation has been modified by an inplace
 * operation: [...]"). An _out form whose inputs require grad fails in grad mode, as
 * PyTorch's "functions with out=... arguments don't support automatic differentiation". */

/**
 * t.backward(grad): accumulates d(t)/d(leaf) . grad into .grad of every leaf that
 * requires grad (and of non-leaves that called ferry_tensor_retain_grad()).
 *
 * @param t             borrowed; must require grad.
 * @param grad          borrowed, t's shape; NULL only for a one-element t ("grad can be
 *                      implicitly created only for scalar outputs").
 * @param retain_graph  keep the saved tensors for another backward; without it a second
 *                      backward through the graph fails with PyTorch's "Trying to
 *                      backward through the graph a second time ...".
 * @return FERRY_OK, or an error status and message (.grad is then partly updated).
 * Thread-safety: graphs of different threads are independent; one graph is walked by
 * one thread at a time.
 */
FERRY_API ferry_status ferry_backward(ferry_tensor *t, const ferry_tensor *grad, bool retain_graph);
/** ferry_backward() with create_graph: the gradients stored are differentiable again
 * (retain_graph is implied, as PyTorch's default). */
FERRY_API ferry_status ferry_backward_ex(ferry_tensor *t, const ferry_tensor *grad,
                                         bool retain_graph, bool create_graph);
/**
 * torch.autograd.grad: grads[i] receives a new reference to the sum of the gradients of
 * outputs (each weighted by grad_outputs[j], NULL entries or grad_outputs NULL meaning
 * ones for one-element outputs) with respect to inputs[i]. No .grad is touched. With
 * create_graph the results require grad, so second derivatives work. On failure every
 * grads[i] is NULL.
 */
FERRY_API ferry_status ferry_autograd_grad(int n_outputs, ferry_tensor *const *outputs,
                                           ferry_tensor *const *grad_outputs, int n_inputs,
                                           ferry_tensor *const *inputs, ferry_tensor **grads,
                                           bool retain_graph, bool create_graph);
/** A new reference to t.grad, or NULL when there is none (not an error: the last
 * status is untouched). */
FERRY_API ferry_tensor *ferry_tensor_grad(const ferry_tensor *t);
/** Sets t.grad (borrowed; same dtype, device and shape as t, PyTorch's messages
 * otherwise); NULL clears it, as zero_grad(set_to_none=True). */
FERRY_API ferry_status ferry_tensor_set_grad(ferry_tensor *t, const ferry_tensor *grad);
/** Keeps the gradient of a non-leaf in its .grad during backward (a no-op for leaves);
 * fails for a tensor that does not require grad. */
FERRY_API ferry_status ferry_tensor_retain_grad(ferry_tensor *t);
/** Whether ferry_tensor_retain_grad() was called on this non-leaf. */
FERRY_API bool ferry_tensor_retains_grad(const ferry_tensor *t);
/** True for tensors no recorded op made (creation, from_blob, DLPack, detach). */
FERRY_API bool ferry_tensor_is_leaf(const ferry_tensor *t);
/** PyTorch's name of t's backward node ("MulBackward0"), NULL for leaves; static
 * storage. */
FERRY_API const char *ferry_tensor_grad_fn_name(const ferry_tensor *t);
/** An address identifying t's backward node (equal for tensors sharing one), NULL for
 * leaves; for bindings that wrap nodes. */
FERRY_API const void *ferry_tensor_grad_fn_id(const ferry_tensor *t);
/** Whether grad mode is on for this thread. */
FERRY_API bool ferry_grad_enabled(void);
/** Sets this thread's grad mode; returns the previous one (torch.no_grad is
 * prev = ferry_set_grad_enabled(false) ... ferry_set_grad_enabled(prev)). */
FERRY_API bool ferry_set_grad_enabled(bool on);

/* ------------------------------------------------------------------------ */
/* Random numbers (Philox4x32-10, counter-based; DESIGN.md "Random numbers") */
/* ------------------------------------------------------------------------ */
/* A generator is (seed, offset). A draw of n elements reads the Philox stream from
 * `offset` (in 32-bit words, a multiple of 4) and moves the offset past what it read
 * (n words, 2n for float64 and wide integer draws, rounded up to a multiple of 4), so
 * element i depends on (seed, offset, i) alone: the same numbers on every device. The
 * stream and the word-to-number maps are in backends/kernels/ferry_random.h. Every
 * sampler takes a generator; NULL is the process's global one (seed 67280421310721 at
 * start, PyTorch's default). Generators are thread-safe: concurrent draws get disjoint
 * parts of the stream. */

typedef struct ferry_generator ferry_generator;

/** Reseeds the global generator (offset 0), as torch.manual_seed. */
FERRY_API void ferry_manual_seed(uint64_t seed);
/** A new generator at (seed, 0); release with ferry_generator_release. NULL on OOM. */
FERRY_API ferry_generator *ferry_generator_create(uint64_t seed);
FERRY_API void ferry_generator_release(ferry_generator *gen);
/** The state of `gen` (NULL: global); either out pointer may be NULL. */
FERRY_API ferry_status ferry_generator_get_state(const ferry_generator *gen, uint64_t *seed,
                                                 uint64_t *offset);
/** Sets the state; `offset` must be a multiple of 4 (FERRY_ERR_INVALID_ARGUMENT). */
FERRY_API ferry_status ferry_generator_set_state(ferry_generator *gen, uint64_t seed,
                                                 uint64_t offset);

/** Uniform in [0, 1) (floating dtypes; others FERRY_ERR_UNSUPPORTED as PyTorch). */
FERRY_API ferry_tensor *ferry_rand(ferry_dtype dtype, int ndim, const int64_t *shape,
                                   const char *device, ferry_generator *gen);
/** Standard normal (Box-Muller; floating dtypes). */
FERRY_API ferry_tensor *ferry_randn(ferry_dtype dtype, int ndim, const int64_t *shape,
                                    const char *device, ferry_generator *gen);
/** Integers uniform in [low, high) (any dtype; low and high - 1 must fit the dtype). */
FERRY_API ferry_tensor *ferry_randint(int64_t low, int64_t high, ferry_dtype dtype, int ndim,
                                      const int64_t *shape, const char *device,
                                      ferry_generator *gen);
/** A random permutation of 0 .. n - 1 (the ranks of n random 64-bit keys). */
FERRY_API ferry_tensor *ferry_randperm(int64_t n, ferry_dtype dtype, const char *device,
                                       ferry_generator *gen);
/** Fills t (floating) with uniform numbers in [lo, hi), in place (Tensor.uniform_). */
FERRY_API ferry_status ferry_tensor_uniform(ferry_tensor *t, double lo, double hi,
                                            ferry_generator *gen);
/** Fills t (floating) with normal numbers, in place (Tensor.normal_). */
FERRY_API ferry_status ferry_tensor_normal(ferry_tensor *t, double mean, double std,
                                           ferry_generator *gen);
/** 1 with probability p[i], else 0, in p's (floating) dtype (torch.bernoulli). */
FERRY_API ferry_tensor *ferry_bernoulli(ferry_tensor *p, ferry_generator *gen);
/** torch.nn.functional.dropout: when `train` and 0 < p, t * mask / (1 - p) with mask
 * bernoulli(1 - p); differentiable (the gradient is grad * mask / (1 - p)). Returns t
 * itself (a new reference) when p == 0 or not train. */
FERRY_API ferry_tensor *ferry_dropout(ferry_tensor *t, double p, bool train,
                                      ferry_generator *gen);

/* ------------------------------------------------------------------------ */
/* Asynchronous work (streams, events, non-blocking copies)                 */
/* ------------------------------------------------------------------------ */

/*
 * No read sees unfinished work: every host access (host_data, copy_to_host, DLPack
 * export, repr, item) waits for the work that writes the tensor, and memory is never
 * freed or reused while queued work still uses it. On a backend without queues
 * (ABI < 1.2, or one that offers none) everything below still works and is
 * synchronous: events are done when recorded, streams run in order on the host.
 */
typedef struct ferry_event ferry_event;
typedef struct ferry_stream ferry_stream;

/** ferry_tensor_to_ex flags. NON_BLOCKING: return once the copy is queued (truly
 * asynchronous only from or to pinned host memory, as PyTorch). COPY: always a new
 * tensor, even when nothing changes. */
#define FERRY_NON_BLOCKING 1u
#define FERRY_COPY 2u

/**
 * to() with options: `device` as ferry_tensor_to (NULL: t's own device), `dtype` -1 to
 * keep t's. A non-blocking copy from a device to the host lands in pinned memory.
 * FERRY_ERR_INVALID_ARGUMENT for unknown flags or a bad dtype.
 */
FERRY_API ferry_tensor *ferry_tensor_to_ex(ferry_tensor *t, const char *device, int dtype,
                                           unsigned flags);
/**
 * Uninitialised host tensor in page-locked memory of `device`'s backend ("cuda:0";
 * NULL: the first usable backend that offers pinned memory). FERRY_ERR_UNSUPPORTED when
 * it offers none.
 */
FERRY_API ferry_tensor *ferry_empty_pinned(ferry_dtype dtype, int ndim, const int64_t *shape,
                                           const char *device);
/** A pinned host copy of t (t itself, retained, when it is pinned already); `device` as
 * for ferry_empty_pinned. */
FERRY_API ferry_tensor *ferry_tensor_pin_memory(ferry_tensor *t, const char *device);
FERRY_API bool ferry_tensor_is_pinned(const ferry_tensor *t);

/** An event after the work this thread queued so far on `device` (on its current
 * stream). Release with ferry_event_release. */
FERRY_API ferry_event *ferry_event_record(const char *device);
/** Waits on the host until the event's work is done. */
FERRY_API ferry_status ferry_event_synchronize(ferry_event *e);
/** 1 when the event's work is done, 0 when not yet, -1 on error (ferry_last_error). */
FERRY_API int ferry_event_query(ferry_event *e);
/** Milliseconds from `start` to `end`, both done and of one device. */
FERRY_API ferry_status ferry_event_elapsed_ms(ferry_event *start, ferry_event *end, float *ms);
FERRY_API void ferry_event_release(ferry_event *e);

/** A new queue on `device` (on a backend without queues: one that runs in order). */
FERRY_API ferry_stream *ferry_stream_create(const char *device);
/** Makes s the calling thread's current stream of s's device; NULL: every device of
 * this thread goes back to its default stream. The thread holds a reference. */
FERRY_API ferry_status ferry_stream_set_current(ferry_stream *s);
/** The thread's current stream of `device` (a new reference), or NULL, without an
 * error, when that is the device's default stream. */
FERRY_API ferry_stream *ferry_stream_get_current(const char *device);
/** Work queued on `s` (NULL: the current stream of e's device) after this call waits
 * for e, on the device where it can. */
FERRY_API ferry_status ferry_stream_wait_event(ferry_stream *s, ferry_event *e);
/** Waits on the host for the work queued on s. */
FERRY_API ferry_status ferry_stream_synchronize(ferry_stream *s);
/** NULL-safe. The queue goes once its work is done. */
FERRY_API void ferry_stream_release(ferry_stream *s);

/* ------------------------------------------------------------------------ */
/* Interchange (DLPack)                                                     */
/* ------------------------------------------------------------------------ */

/**
 * Zero-copy export. The returned struct owns one reference to t's storage; call its
 * deleter when done. `flags` has DLPACK_FLAG_BITMASK_READ_ONLY for read-only tensors.
 */
FERRY_API DLManagedTensorVersioned *ferry_tensor_to_dlpack(ferry_tensor *t);
/** Legacy (unversioned) export. */
FERRY_API DLManagedTensor *ferry_tensor_to_dlpack_unversioned(ferry_tensor *t);

/**
 * Zero-copy import. On success ferry owns `m` and calls its deleter when the last
 * reference goes; on failure `m` is untouched and still the caller's.
 */
FERRY_API ferry_tensor *ferry_tensor_from_dlpack(DLManagedTensorVersioned *m);
FERRY_API ferry_tensor *ferry_tensor_from_dlpack_unversioned(DLManagedTensor *m);

/*
 * DLPack's stream rules (the Python spec's __dlpack__(stream=...)). A DLPack stream is
 * the integer that spec gives for the device type (kDLCUDA: the cudaStream_t's value,
 * 1 the legacy default stream, 2 the per-thread default stream); -1 asks for no
 * ordering at all; FERRY_DLPACK_NO_STREAM is Python's None (the consumer named none).
 */
#define FERRY_DLPACK_NO_STREAM INT64_MIN

/**
 * Exports as ferry_tensor_to_dlpack, ordered for a consumer that reads on its DLPack
 * stream `stream` of t's device: that stream waits, on the device, for ferry's queued
 * work on t, and the host does not wait. -1: no ordering. FERRY_DLPACK_NO_STREAM, or a
 * backend that cannot make a foreign stream wait (ABI < 1.2 or without queue_native
 * and event_wait_native): the device is synchronised first, as ferry_tensor_to_dlpack.
 * FERRY_ERR_INVALID_ARGUMENT for a value below -1 or, from the backend, one that names
 * no stream of the device.
 */
FERRY_API DLManagedTensorVersioned *ferry_tensor_to_dlpack_ex(ferry_tensor *t, int64_t stream);
FERRY_API DLManagedTensor *ferry_tensor_to_dlpack_unversioned_ex(ferry_tensor *t,
                                                                 int64_t stream);
/**
 * The DLPack stream of the calling thread's current ferry stream on the ferry device
 * that serves DLPack device (dl_device_type, dl_device_id): what a consumer passes to a
 * producer's __dlpack__(stream=...) before ferry_tensor_from_dlpack. An import on a
 * queued backend counts as written by that stream, so ferry's other streams and host
 * reads come after what the producer ordered there. FERRY_ERR_UNSUPPORTED when the
 * device has no such streams (kDLCPU, or a backend without queue_native): pass none.
 */
FERRY_API ferry_status ferry_dlpack_current_stream(int32_t dl_device_type, int32_t dl_device_id,
                                                   int64_t *stream);
/** The DLPack device of t's memory (what __dlpack_device__ answers);
 * FERRY_ERR_UNSUPPORTED when its backend declares no DLPack device type. */
FERRY_API ferry_status ferry_tensor_dlpack_device(const ferry_tensor *t, int32_t *dl_device_type,
                                                  int32_t *dl_device_id);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_FERRY_H */

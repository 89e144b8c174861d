/**
 * The ferry backend ABI: what a plugin (libferry-backend-NAME.so) exports and what the
 * core hands it. Installed, so third-party backends build from the SDK alone; a plugin
 * never links libferry or includes a core-internal header.
 */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <ferry/ferry.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Bump only when a member is removed, reordered or changes meaning. 2.0 gave every entry
 * the plugin's context (init returns it); the core still loads 1.x plugins, which export
 * another symbol (ferry/backend_v1.h), through adapters of its own.
 */
#define FERRY_BACKEND_ABI_MAJOR 2
/** Bump when a member is appended to ferry_backend_ops or ferry_host_api. */
#define FERRY_BACKEND_ABI_MINOR 0

/** The one symbol a plugin exports. Each major has its own, so that the core knows which
 * host table to hand over before the plugin reads it. */
#define FERRY_BACKEND_ENTRY_SYMBOL "ferry_backend_entry2"

#define FERRY_BACKEND_EXPORT __attribute__((visibility("default")))

/** True when `ops` (built by a plugin of any minor) is large enough to hold `member`. */
#define FERRY_OPS_HAS(ops, member)                                                      \
    ((ops)->struct_size >= offsetof(ferry_backend_ops, member) + sizeof((ops)->member))

/** True when the core's `host` services (of any minor) include `member`. */
#define FERRY_HOST_HAS(host, member)                                                    \
    ((host)->struct_size >= offsetof(ferry_host_api, member) + sizeof((host)->member) &&  \
     (host)->member != NULL)

typedef enum ferry_log_level {
    FERRY_LOG_ERROR = 0,
    FERRY_LOG_WARN = 1,
    FERRY_LOG_INFO = 2,
    FERRY_LOG_DEBUG = 3,
} ferry_log_level;

/** Services the core gives a plugin. Valid from the entry call until the plugin is
 * unloaded. Thread-safe. */
typedef struct ferry_host_api {
    uint32_t abi_major;  /**< FERRY_BACKEND_ABI_MAJOR of the core */
    uint32_t abi_minor;
    size_t struct_size;  /**< sizeof(ferry_host_api) of the core */

    /* --- since ABI 1.0 --- */
    /**
     * Records a failure for ferry_last_error() on the calling thread and returns
     * `status`, so a backend writes `return host->error(FERRY_ERR_BACKEND, "...")`.
     * The message should name the call, the device and the driver's error name.
     */
    ferry_status (*error)(ferry_status status, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /** Logs a line under FERRY_DEBUG; `backend` is the plugin's name. */
    void (*log)(ferry_log_level level, const char *backend, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* --- since ABI 1.1 --- */
    /**
     * Reports that a device is broken for the rest of the process (a CUDA sticky error
     * such as cudaErrorIllegalAddress). The core then refuses new work on it with
     * FERRY_ERR_UNAVAILABLE and `reason`, and ferry_is_available() turns false once
     * every device of the backend is lost; frees of its buffers still reach the plugin.
     */
    void (*device_lost)(const char *backend, int32_t device, const char *reason);
    /* --- ABI 2.0: append below this line only --- */
} ferry_host_api;

/**
 * A tensor as a kernel sees it. The core has already broadcast (stride 0), promoted,
 * allocated outputs and collapsed contiguous dimensions. Valid during the call only,
 * the shape and strides arrays included: a backend that queues work past the call
 * copies what it keeps.
 */
typedef struct ferry_kernel_tensor {
    void *buffer;           /**< handle from alloc (a host pointer when host-accessible) */
    size_t byte_offset;     /**< from the start of buffer to element [0, ..., 0] */
    ferry_dtype dtype;
    int32_t ndim;           /**< 0 .. FERRY_MAX_DIMS; 0 is a scalar */
    const int64_t *shape;   /**< ndim entries */
    const int64_t *strides; /**< ndim entries, in elements; may be 0 or negative */
    /* --- since ABI 1.1 --- */
    /**
     * sizeof(ferry_kernel_tensor) of the core that built it, so members appended later
     * are read only when present (FERRY_KERNEL_TENSOR_HAS). Set on every descriptor
     * the core passes. An ABI 1.1 plugin built before this member existed (its
     * ferry_backend_ops ends before binary_scalar) receives ferry_op_args.tensors at
     * that older stride, offsetof(ferry_kernel_tensor, struct_size).
     */
    size_t struct_size;
} ferry_kernel_tensor;

/** True when the descriptor `t` (built by a core of any minor) holds `member`. */
#define FERRY_KERNEL_TENSOR_HAS(t, member)                                              \
    ((t)->struct_size >= offsetof(ferry_kernel_tensor, member) + sizeof((t)->member))

/**
 * A scalar operand passed by value (ABI 1.1): one element of `dtype` as that dtype is
 * stored in memory (float16 and bfloat16 as their 16 bits, bool as 0 or 1), in the
 * host's byte order, from value[0]; the other bytes are 0. `value` is 8-byte aligned,
 * so it may be read as the element's C type. The core has already converted the
 * scalar to the operation's compute dtype. Valid during the call only.
 */
typedef struct ferry_kernel_scalar {
    ferry_dtype dtype;
    unsigned char value[16] __attribute__((aligned(8)));
} ferry_kernel_scalar;

/**
 * A named op's operands and parameters (ABI 1.1, DESIGN.md "Open op set"). Valid during
 * the call only: a backend that queues work copies what it keeps. Each op documents,
 * in ferry/ops/FAMILY.h, its name, the order and dtypes of its tensors and its
 * parameter struct.
 */
typedef struct ferry_op_args {
    size_t struct_size;                 /**< sizeof(ferry_op_args) of the core */
    int32_t ntensors;
    int32_t noutputs;                   /**< tensors[0 .. noutputs) are written */
    const ferry_kernel_tensor *tensors; /**< ntensors entries, in the op's order */
    const void *params;                 /**< the op's parameter struct; NULL if it has none */
    size_t params_size;                 /**< sizeof that struct, as the core built it */
    /* --- since ABI 2.0 --- */
    void *ctx;                          /**< the context init returned (NULL for 1.x) */
} ferry_op_args;

/** A named op's kernel. FERRY_ERR_UNSUPPORTED (a dtype or case it lacks) makes the core
 * run the op on the cpu backend through staging, as for built-in ops. The plugin's
 * context arrives as args->ctx: a kernel keeps the type 1.x kernels have, so one kernel
 * table serves both majors. */
typedef ferry_status (*ferry_named_kernel)(int32_t device, const ferry_op_args *args);

/** One row of a backend's named-kernel table; a table ends with {NULL, NULL}. */
typedef struct ferry_named_entry {
    const char *name;
    ferry_named_kernel kernel;
} ferry_named_entry;

/** What get_kernel usually is: `name` looked up in a NULL-terminated list of tables (one
 * per op family, so each family's file owns its rows). */
static inline ferry_named_kernel ferry_named_lookup(const ferry_named_entry *const *tables,
                                                    const char *name)
{
    for (; name && *tables; tables++)
        for (const ferry_named_entry *e = *tables; e->name; e++)
            if (strcmp(e->name, name) == 0)
                return e->kernel;
    return NULL;
}

/** Operations a backend may implement, for supports(). */
typedef enum ferry_op {
    FERRY_OP_FILL = 0,
    FERRY_OP_CAST = 1,
    FERRY_OP_COPY_STRIDED = 2,
    FERRY_OP_UNARY = 3,
    FERRY_OP_BINARY = 4,
    FERRY_OP_REDUCE = 5,
    FERRY_OP_MATMUL = 6,
    FERRY_OP_NAMED = 7, /**< a named op (get_kernel); never passed to supports() */
} ferry_op;

typedef enum ferry_unary_op {
    FERRY_UNARY_NEG = 0,
    FERRY_UNARY_ABS,
    FERRY_UNARY_EXP,
    FERRY_UNARY_LOG,
    FERRY_UNARY_SQRT,
    FERRY_UNARY_SIN,
    FERRY_UNARY_COS,
    FERRY_UNARY_TANH,
    FERRY_UNARY_SIGMOID,
    FERRY_UNARY_RELU,
} ferry_unary_op;

typedef enum ferry_binary_op {
    FERRY_BINARY_ADD = 0,
    FERRY_BINARY_SUB,
    FERRY_BINARY_MUL,
    FERRY_BINARY_DIV,
    FERRY_BINARY_POW,
    FERRY_BINARY_MAXIMUM,
    FERRY_BINARY_MINIMUM,
    FERRY_BINARY_EQ,
    FERRY_BINARY_NE,
    FERRY_BINARY_LT,
    FERRY_BINARY_LE,
    FERRY_BINARY_GT,
    FERRY_BINARY_GE,
} ferry_binary_op;

typedef enum ferry_reduce_op {
    FERRY_REDUCE_SUM = 0,
    FERRY_REDUCE_MEAN,
    FERRY_REDUCE_MAX,
    FERRY_REDUCE_MIN,
    FERRY_REDUCE_ARGMAX,
} ferry_reduce_op;

/**
 * A backend's constant table. Required members must be non-NULL; optional ones may be
 * NULL, and a kernel may also return FERRY_ERR_UNSUPPORTED for a dtype it lacks: the
 * core then runs the op on the CPU backend through staging. An op or sub-op a backend
 * does not know (an enum value appended after it was built, or a name get_kernel has no
 * row for) likewise answers FERRY_ERR_UNSUPPORTED (or NULL from get_kernel), never
 * FERRY_ERR_INVALID_ARGUMENT, so appending one never breaks an older plugin; backends
 * built on fk_plan (backends/kernels) do so. Every entry may be called
 * from any thread with no core lock held; a backend serialises its own queues.
 * `device` is always in 0 .. count-1 as reported by init.
 *
 * Every entry but init takes first the context init returned (ABI 2.0): the plugin's
 * own state, so that it needs no globals of its own. The core never reads through it;
 * it passes it unchanged, to named kernels as ferry_op_args.ctx, until shutdown.
 */
typedef struct ferry_backend_ops {
    uint32_t abi_major;  /**< FERRY_BACKEND_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;  /**< FERRY_BACKEND_ABI_MINOR the plugin was built with */
    size_t struct_size;  /**< sizeof(ferry_backend_ops) the plugin was built with */
    const char *name;    /**< device type it claims: [a-z][a-z0-9_]*, <= 15 chars; static */
    const char *version; /**< the plugin's version; static */

    /* --- since ABI 1.0 --- */
    /**
     * Required. Probes the driver once, before any other entry. *ctx is NULL on entry;
     * the plugin may set it to its state, which every later entry receives. On FERRY_OK,
     * *device_count is set (0 is allowed: then `reason` may say why, such as
     * "cudaErrorNoDevice: no CUDA-capable device is detected"). On failure the
     * message given to host->error is the reason the backend is unusable; no entry but
     * shutdown follows.
     */
    ferry_status (*init)(void **ctx, int32_t *device_count, char *reason, size_t reason_cap);
    /** Optional. Called once before dlclose, whether init succeeded or not, with what
     * init left in *ctx (NULL if it set nothing); releases driver state and the context. */
    void (*shutdown)(void *ctx);
    /** Required. Fills name, vendor, versions, memory, host_accessible. */
    ferry_status (*device_info)(void *ctx, int32_t device, ferry_device_info *out);

    /** Required. nbytes > 0. The handle is opaque unless the device is host-accessible,
     * in which case it is a host pointer aligned to at least 64 bytes. */
    ferry_status (*alloc)(void *ctx, int32_t device, size_t nbytes, void **buffer);
    /** Required. Called only when no queued work uses the buffer any more. */
    void (*free)(void *ctx, int32_t device, void *buffer);
    /** Required. Host to device; returns once `src` may be reused. */
    ferry_status (*copy_from_host)(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                   const void *src, size_t nbytes);
    /** Required. Device to host; ordered after the device's queued work; returns once
     * the bytes are in `dst`. */
    ferry_status (*copy_to_host)(void *ctx, int32_t device, void *dst, const void *src,
                                 size_t src_offset, size_t nbytes);
    /** Required. Within one device; regions do not overlap. */
    ferry_status (*copy_on_device)(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                   const void *src, size_t src_offset, size_t nbytes);
    /** Required. Waits for all work queued on the device. */
    ferry_status (*synchronize)(void *ctx, int32_t device);

    /** Optional. Between two devices of this backend. NULL: staged through the host. */
    ferry_status (*copy_peer)(void *ctx, int32_t dst_device, void *dst, size_t dst_offset,
                              int32_t src_device, const void *src, size_t src_offset,
                              size_t nbytes);
    /** Optional. Page-locked host memory for staging. NULL: plain malloc. */
    ferry_status (*host_alloc)(void *ctx, size_t nbytes, void **ptr);
    void (*host_free)(void *ctx, void *ptr);

    /** Optional. Whether a kernel entry handles these dtypes (inputs then output). NULL
     * means: try the entry, and fall back on FERRY_ERR_UNSUPPORTED. */
    bool (*supports)(void *ctx, int32_t device, ferry_op op, int subop,
                     const ferry_dtype *dtypes, int ndtypes);
    /** Optional. Sets every element of `out` to `value` (one element of out->dtype). */
    ferry_status (*fill)(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                         const void *value);
    /** Optional. out[i] = (out dtype) in[i]; same shape; dtypes may differ. Float to
     * integer truncates toward zero and saturates, NaN gives 0; to bool is `!= 0`. */
    ferry_status (*cast)(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *in);
    /** Optional. out[i] = in[i]; same shape and dtype, any strides. */
    ferry_status (*copy_strided)(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                 const ferry_kernel_tensor *in);
    /** Optional. out = op(in); same shape and dtype (the core has already converted
     * integer inputs of exp, log, sqrt, sin, cos, tanh and sigmoid to float32).
     * float16/bfloat16 compute in float32 and round once. */
    ferry_status (*unary)(void *ctx, int32_t device, ferry_unary_op op,
                          const ferry_kernel_tensor *out, const ferry_kernel_tensor *in);
    /** Optional. out = a op b. All three have out's shape (broadcast dims have stride 0);
     * a and b have the same (promoted) dtype; out has it too, or FERRY_BOOL for the
     * comparisons EQ .. GE. Integer DIV does not occur (the core promotes it to float);
     * integer POW with a negative exponent gives 0 unless the base is 1 or -1. MAXIMUM and
     * MINIMUM propagate NaN. out may alias a or b exactly (same offset and strides). */
    ferry_status (*binary)(void *ctx, int32_t device, ferry_binary_op op,
                           const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                           const ferry_kernel_tensor *b);
    /** Optional. `out` has in's ndim with extent 1 in every reduced dim and in's extent
     * elsewhere. Dtypes: SUM of bool/integers -> INT64, else in's; MEAN: floating, out's
     * dtype = in's; MAX, MIN: in's (NaN propagates); ARGMAX -> INT64, the row-major index
     * within the reduced dims of the first maximum (NaN counts as maximal). Floating sums
     * accumulate pairwise or blocked (16M float32 ones sum to exactly 16777216);
     * float16/bfloat16 accumulate in float32. An empty reduction gives 0 for SUM, NaN
     * for MEAN; MAX, MIN and ARGMAX of nothing never reach a backend. */
    ferry_status (*reduce)(void *ctx, int32_t device, ferry_reduce_op op,
                           const ferry_kernel_tensor *out, const ferry_kernel_tensor *in);
    /** Optional. Batched: a [B, M, K], b [B, K, N], out [B, M, N] (ndim 3 each), one dtype,
     * any strides (a batch stride of 0 broadcasts). float16/bfloat16 accumulate in
     * float32; integers accumulate in their own type (wrapping) as PyTorch. out never
     * aliases a or b. */
    ferry_status (*matmul)(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                           const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);

    /* --- since ABI 1.1 --- */
    /**
     * Optional. The kernel for the named op `name` ("ferry.sort") on `device`, or NULL
     * when the backend has none (an unknown name included): the core then runs the
     * cpu backend's kernel for it through staging. Called once per launch; a backend
     * looks the name up in a static table.
     */
    ferry_named_kernel (*get_kernel)(void *ctx, int32_t device, const char *name);
    /**
     * The DLPack device type of this backend's memory (kDLCUDA = 2, kDLOpenCL = 4,
     * kDLROCM = 10, ...; dlpack.h), or 0 when it has none: its tensors then refuse a
     * DLPack export, and imports of that type come to it (as "NAME:device_id"), even
     * when it has no usable device, so such an import fails with the plugin's reason.
     * The core knows no backend by name: two plugins declaring one type go in discovery
     * order.
     */
    int32_t dlpack_device_type;
    /** Whether a buffer handle is a device address that may be advanced by a byte
     * offset (CUDA pointers), rather than an opaque object (a cl_mem). */
    bool handles_are_addresses;
    /**
     * Optional. out = a op b for a scalar b, exactly as `binary` with b a tensor of
     * out's shape holding b everywhere (broadcast strides of 0) and a's dtype
     * (b->dtype == a->dtype): the same results bit for bit, without uploading b. The
     * core uses it for `tensor op scalar`; when it is NULL or answers
     * FERRY_ERR_UNSUPPORTED, b reaches `binary` as a 0-d tensor on the device. supports()
     * is asked as for `binary` (FERRY_OP_BINARY, dtypes a, a, out).
     */
    ferry_status (*binary_scalar)(void *ctx, int32_t device, ferry_binary_op op,
                                  const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                  const ferry_kernel_scalar *b);
    /* --- since ABI 1.2 --- */
    /*
     * Queues and events (DESIGN.md "Queues, events and asynchronous work"). A backend
     * offers all of queue_create .. event_destroy and set_queue, or none: then the core
     * drives it synchronously, as in ABI 1.0. With them:
     * - Each device has a default queue (the handle NULL) and may have more. The kernel
     *   entries, copy_on_device, copy_peer (on the destination's queue) and the async
     *   copies run on the calling thread's current queue of the device (set_queue) and
     *   may return before the work is done.
     * - copy_from_host still returns once `src` may be reused (the bytes may be queued);
     *   copy_to_host, synchronize and free keep their 1.0 meaning: copy_to_host is
     *   ordered after all the device's queued work, on every queue.
     * - The core orders work across queues with event_wait, makes host reads wait for
     *   the writer's event, and frees a buffer only once the last work using it is
     *   done; a backend needs no tracking of its own.
     * - Handles are opaque; an event may be waited for on any device of this backend.
     */
    /** Optional. A new queue on `device`. */
    ferry_status (*queue_create)(void *ctx, int32_t device, void **queue);
    /** Optional. Waits for the queue's work, then destroys it. */
    void (*queue_destroy)(void *ctx, int32_t device, void *queue);
    /**
     * Optional. Makes `queue` (NULL: the default queue) the calling thread's current
     * queue of `device`, for the entries above. The core calls it before each entry it
     * runs on a queued backend, so a backend keeps one thread-local value per device.
     */
    ferry_status (*set_queue)(void *ctx, int32_t device, void *queue);
    /** Optional. A new event marking the work queued on `queue` (NULL: default) so far. */
    ferry_status (*event_record)(void *ctx, int32_t device, void *queue, void **event);
    /** Optional. Work queued on `queue` after this call waits for `event` on the device
     * (the host does not wait). */
    ferry_status (*event_wait)(void *ctx, int32_t device, void *queue, void *event);
    /** Optional. Waits on the host until the event's work is done. */
    ferry_status (*event_synchronize)(void *ctx, int32_t device, void *event);
    /** Optional. *done = whether the event's work is done; never waits. */
    ferry_status (*event_query)(void *ctx, int32_t device, void *event, bool *done);
    /** Optional. May be called before the event is done; its work still runs. */
    void (*event_destroy)(void *ctx, int32_t device, void *event);
    /** Optional. Milliseconds between two done events of `device`; NULL: the core uses
     * host time at record (coarser). */
    ferry_status (*event_elapsed)(void *ctx, int32_t device, void *start, void *end, float *ms);
    /**
     * Optional, with queues only. Host to device on the current queue, returning once
     * it is queued: `src` is read when the queue gets there, so the core keeps it alive
     * and unchanged until an event recorded after it is done. The core passes only
     * memory from host_alloc (pinned) this way. NULL: copy_from_host.
     */
    ferry_status (*copy_from_host_async)(void *ctx, int32_t device, void *dst, size_t dst_offset,
                                         const void *src, size_t nbytes);
    /** Optional, with queues only. Device to host on the current queue, ordered after
     * that queue's work only (the core waits for other queues with event_wait); the
     * bytes are in `dst` once an event recorded after it is done. */
    ferry_status (*copy_to_host_async)(void *ctx, int32_t device, void *dst, const void *src,
                                       size_t src_offset, size_t nbytes);
    /**
     * Optional, with host_unmap. A host pointer through which the host reads, and with
     * `write` also writes, `nbytes` of `buffer` from `offset` in place: the device's own
     * memory, with no copy (PoCL's CPU device; an integrated GPU), so the core hands it
     * to a communicator instead of staging the bytes through host buffers. Ordered after
     * all of the device's queued work, on every queue. A device whose mapping would copy
     * answers FERRY_ERR_UNSUPPORTED (it gains nothing over staging, and the core maps
     * large tensors a chunk at a time): the core then stages. Until host_unmap the core
     * queues no work on the buffer.
     */
    ferry_status (*host_map)(void *ctx, int32_t device, void *buffer, size_t offset,
                             size_t nbytes, bool write, void **ptr);
    /** Optional, with host_map. Ends the mapping host_map gave as `ptr`; returns once
     * what was written through it is the buffer's for all work queued later. */
    ferry_status (*host_unmap)(void *ctx, int32_t device, void *buffer, void *ptr);
    /*
     * DLPack stream exchange (the Python spec's __dlpack__(stream=...)), appended after
     * the queue entries: a 1.2 plugin built before these two has a smaller struct_size,
     * FERRY_OPS_HAS finds them absent, and the core synchronises the device around a
     * DLPack export instead, as it did before. A backend offers both or neither, and only
     * with queues. A DLPack stream is the integer that spec passes for this backend's
     * dlpack_device_type (kDLCUDA: the cudaStream_t's value, 1 for the legacy default
     * stream, 2 for the per-thread default stream; 0 and -1 have no stream).
     */
    /** Optional. The DLPack stream of `queue` (NULL: the default queue) on `device`; the
     * core hands it to another library's __dlpack__ so that its work is ordered before
     * the calling thread's current queue. */
    ferry_status (*queue_native)(void *ctx, int32_t device, void *queue, int64_t *stream);
    /** Optional. Work another library queues on its stream `stream` of `device` (a
     * DLPack stream a consumer named, never -1: the value comes from outside) after this
     * call waits for `event` of this backend, on the device; the host does not wait. A
     * value that names no stream answers FERRY_ERR_INVALID_ARGUMENT with the value. */
    ferry_status (*event_wait_native)(void *ctx, int32_t device, int64_t stream, void *event);
    /* --- ABI 2.0: append below this line only --- */
} ferry_backend_ops;

/** The entry function's type. Returns the plugin's constant table, or NULL after
 * reporting why through host->error. */
typedef const ferry_backend_ops *(*ferry_backend_entry_fn)(const ferry_host_api *host);

/** Declared by every plugin, defined once in it, exported as FERRY_BACKEND_ENTRY_SYMBOL. */
FERRY_BACKEND_EXPORT const ferry_backend_ops *ferry_backend_entry2(const ferry_host_api *host);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_BACKEND_H */

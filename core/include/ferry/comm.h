/**
 * The ferry communicator ABI: what a communicator plugin (libferry-comm-NAME.so, such as
 * libferry-comm-mpi.so or libferry-comm-nccl.so) exports and what the core hands it.
 * Installed, so a communicator builds from the SDK alone; libferry links no MPI or NCCL.
 *
 * The core does the tensor work (contiguity, dtype checks, staging device memory through
 * pinned host buffers in chunks, float16/bfloat16 reductions in float32 when the plugin
 * declines them, groups' rank translation); a plugin only moves bytes between processes.
 */
#ifndef FERRY_COMM_H
#define FERRY_COMM_H

#include <ferry/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bump when a member of ferry_comm_ops or ferry_comm_config changes meaning or is
 * removed; appending a member only grows struct_size. */
#define FERRY_COMM_ABI_VERSION 1

/** The one symbol a communicator plugin exports. */
#define FERRY_COMM_ENTRY_SYMBOL "ferry_comm_entry"

/** True when `ops` (built by a plugin of any size) is large enough to hold `member`. */
#define FERRY_COMM_HAS(ops, member)                                                     \
    ((ops)->struct_size >= offsetof(ferry_comm_ops, member) + sizeof((ops)->member))

/** Reduction operators, as ferry_dist_op (distributed.h) numbers them. */
typedef enum ferry_comm_op {
    FERRY_COMM_SUM = 0,
    FERRY_COMM_AVG = 1,     /**< SUM divided by the group size, in the dtype */
    FERRY_COMM_PRODUCT = 2,
    FERRY_COMM_MIN = 3,
    FERRY_COMM_MAX = 4,
} ferry_comm_op;

/** An opaque group of ranks, made by ferry_comm_ops.group_create. */
typedef struct ferry_comm_group ferry_comm_group;

/**
 * What the core gives a plugin's init. Valid until the plugin's finalize returns.
 */
typedef struct ferry_comm_config {
    size_t struct_size;     /**< sizeof(ferry_comm_config) of the core */
    double timeout_s;       /**< FERRY_DIST_TIMEOUT: a collective that waits longer than
                                 this for a peer ends the process with a message naming
                                 the rank(s) it waited for (never a hang) */
    int debug;              /**< FERRY_DIST_DEBUG=1: extra checks and logging */
    /**
     * For plugins that bootstrap over another communicator (NCCL's unique id): broadcasts
     * `nbytes` of host memory from `ranks[root]` to the other `n` world ranks listed
     * (`ranks` NULL: the world, `root` a world rank) through the host communicator the
     * core initialised first, so it is collective over those ranks. NULL when there is
     * none.
     */
    ferry_status (*bootstrap_broadcast)(void *buf, size_t nbytes, int root, const int *ranks,
                                        int n);
    /** Rank and size of the world as the launcher gave them, when known (else -1). */
    int world_rank;
    int world_size;
} ferry_comm_config;

/**
 * A communicator's table. Collectives are in place where the caller's API is; `buf`,
 * `in` and `out` are host pointers when `device` is NULL, else pointers into memory of
 * `device` ("cuda:0"), passed only when accepts_device() said yes for that type. Ranks
 * (`root`, `peer`) are ranks within `group`; `group` NULL is the world. Counts are in
 * elements of `dtype`; the data-movement calls count bytes. Every call blocks until
 * the caller's buffers may be reused (for device memory: until the device work is done).
 * A plugin returns FERRY_ERR_UNSUPPORTED from a reduction to ask the core to convert
 * the data (float16/bfloat16 to float32) and call again.
 * Thread-safety: the core calls a communicator from one thread at a time.
 */
typedef struct ferry_comm_ops {
    uint32_t abi_version;     /**< FERRY_COMM_ABI_VERSION the plugin was built with */
    size_t struct_size;       /**< sizeof(ferry_comm_ops) the plugin was built with */
    const char *name;         /**< "mpi", "nccl"; static storage */
    const char *version;      /**< the engine's version, such as "Open MPI v4.1.4" */

    /**
     * Required. Joins the job the launcher (mpirun) started: rank and size from the
     * launcher's environment. Fails with FERRY_ERR_UNAVAILABLE and the engine's reason
     * when there is no usable engine (no library, no device).
     */
    ferry_status (*init)(const ferry_comm_config *config, int *rank, int *size);
    /** Required. Leaves the job; the plugin may be unloaded after it. */
    void (*finalize)(void);
    /**
     * Optional. Whether this plugin can say, without init, if it is usable here: NULL
     * when it is, else why not (static or plugin-owned storage). NULL entry: usable.
     */
    const char *(*probe)(void);
    /**
     * Whether the plugin takes pointers into memory of devices of backend `type`
     * ("cuda") directly (NCCL; CUDA-aware MPI). NULL entry: host memory only.
     */
    bool (*accepts_device)(const char *type);

    /** Required. A group of `n` world ranks, ascending; collective over the world:
     * every rank calls it with the same list. *out is NULL on a rank outside it. */
    ferry_status (*group_create)(const int *ranks, int n, ferry_comm_group **out);
    /** Required. NULL-safe. */
    void (*group_free)(ferry_comm_group *group);

    ferry_status (*barrier)(const ferry_comm_group *group);
    ferry_status (*all_reduce)(void *buf, size_t count, ferry_dtype dtype, ferry_comm_op op,
                               const ferry_comm_group *group, const char *device);
    /** The result lands in `buf` on `root`; other ranks' `buf` is left unchanged. */
    ferry_status (*reduce)(void *buf, size_t count, ferry_dtype dtype, ferry_comm_op op,
                           int root, const ferry_comm_group *group, const char *device);
    ferry_status (*broadcast)(void *buf, size_t nbytes, int root,
                              const ferry_comm_group *group, const char *device);
    /** out holds group-size blocks of `nbytes`, block r from rank r. */
    ferry_status (*all_gather)(void *out, const void *in, size_t nbytes,
                               const ferry_comm_group *group, const char *device);
    /** in holds group-size blocks of `count` elements; out gets the reduction of
     * every rank's block number (own rank). */
    ferry_status (*reduce_scatter)(void *out, const void *in, size_t count, ferry_dtype dtype,
                                   ferry_comm_op op, const ferry_comm_group *group,
                                   const char *device);
    /** Block r of `in` goes to rank r; block r of `out` comes from rank r. */
    ferry_status (*all_to_all)(void *out, const void *in, size_t nbytes,
                               const ferry_comm_group *group, const char *device);
    /** Point to point in the world; messages between two ranks with one tag arrive in
     * the order sent. */
    ferry_status (*send)(const void *buf, size_t nbytes, int peer, int tag, const char *device);
    ferry_status (*recv)(void *buf, size_t nbytes, int peer, int tag, const char *device);
    /* --- append below this line only --- */
    /**
     * Optional (NULL: the core refuses recv from any source with FERRY_ERR_UNSUPPORTED).
     * As recv, from whichever world rank's message with `tag` matches first; *peer gets
     * that rank. Messages of one sender keep their order.
     */
    ferry_status (*recv_any)(void *buf, size_t nbytes, int tag, int *peer, const char *device);
    /**
     * Optional (NULL: the core refuses uneven all_to_all with FERRY_ERR_UNSUPPORTED).
     * all_to_all with blocks of their own sizes: in_bytes[r] bytes at in + in_offs[r] go
     * to rank r, out_bytes[r] bytes from rank r land at out + out_offs[r]; one entry per
     * group rank, and rank r's in_bytes[me] equals my out_bytes[r].
     */
    ferry_status (*all_to_allv)(void *out, const size_t *out_bytes, const size_t *out_offs,
                                const void *in, const size_t *in_bytes, const size_t *in_offs,
                                const ferry_comm_group *group, const char *device);
} ferry_comm_ops;

typedef const ferry_comm_ops *(*ferry_comm_entry_fn)(const ferry_host_api *host);

/** The entry point: returns the plugin's table, or NULL after host->error(). */
FERRY_BACKEND_EXPORT const ferry_comm_ops *ferry_comm_entry(const ferry_host_api *host);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_COMM_H */

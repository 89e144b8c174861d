/**
 * ferry across several processes: collectives on tensors of any device, carried by a
 * communicator plugin (MPI for every device, NCCL for CUDA tensors). Names follow
 * torch.distributed; see ../shared/API.md, "Several processes".
 *
 * Start the processes with a launcher: `mpirun -np 2 ./prog`. Every call below that
 * communicates is collective over its group (every member calls it, in the same order,
 * with tensors of the same shape and dtype) unless it is ferry_send/ferry_recv.
 * Thread-safety: one thread of each process drives the collectives.
 */
#ifndef FERRY_DISTRIBUTED_H
#define FERRY_DISTRIBUTED_H

#include <ferry/ferry.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Reduction operators (torch.distributed.ReduceOp). For bool tensors SUM and MAX are a
 * logical or, PRODUCT and MIN a logical and; AVG is refused. AVG of an integer tensor
 * divides the sum, truncating toward zero. */
typedef enum ferry_dist_op {
    FERRY_DIST_SUM = 0,
    FERRY_DIST_AVG = 1,
    FERRY_DIST_PRODUCT = 2,
    FERRY_DIST_MIN = 3,
    FERRY_DIST_MAX = 4,
} ferry_dist_op;

/** A subset of the world's ranks; NULL means the whole world in every call. */
typedef struct ferry_dist_group ferry_dist_group;

/**
 * Joins the job the launcher started (rank and size come from mpirun's environment;
 * a program started without one is a world of one).
 *
 * @param backend "mpi" (every device, CUDA through CUDA-aware MPI where the library has
 *                it), "nccl" (CUDA tensors through NCCL, the rest through MPI), or NULL:
 *                nccl when a CUDA device and NCCL are usable, else mpi.
 * @return FERRY_OK; FERRY_ERR_UNAVAILABLE naming what is missing (the plugin file and
 *         where it was searched, or the library it needs, such as libmpi.so.40);
 *         FERRY_ERR_INVALID_ARGUMENT for an unknown name, a second init, or a bad
 *         FERRY_DIST_TIMEOUT.
 * Environment: FERRY_DIST_TIMEOUT (seconds, default 300): a collective that waits longer
 * for a peer ends the process with a message naming the rank(s) it waited for.
 * FERRY_DIST_DEBUG=1: every collective first checks that all ranks passed tensors of one
 * shape and dtype, and fails on every rank with both ranks' shapes when not.
 */
FERRY_API ferry_status ferry_dist_init(const char *backend);
/** Whether ferry_dist_init succeeded and ferry_dist_finalize has not run. */
FERRY_API bool ferry_dist_is_initialized(void);
/** The backend in use ("mpi", "nccl"), or NULL before init. Static storage. */
FERRY_API const char *ferry_dist_backend(void);
/** This process's rank in the world, or -1 before init (with the error set). */
FERRY_API int ferry_dist_rank(void);
/** The number of processes in the world, or -1 before init (with the error set). */
FERRY_API int ferry_dist_world_size(void);
/** Leaves the job and frees every group. Safe to call twice; FERRY_OK before init. */
FERRY_API ferry_status ferry_dist_finalize(void);
/** Waits until every rank of the world has reached it. */
FERRY_API ferry_status ferry_dist_barrier(void);
/** The same over a group (NULL: the world). */
FERRY_API ferry_status ferry_dist_group_barrier(const ferry_dist_group *group);

/**
 * A group of `n` distinct world ranks (any order; a collective's rank order within the
 * group is ascending world rank). Collective over the world: every rank calls it with
 * the same list, members or not, as torch.distributed.new_group. A rank outside the
 * group gets a handle too, on which collectives fail. NULL on failure.
 */
FERRY_API ferry_dist_group *ferry_dist_new_group(const int *ranks, int n);
/** NULL-safe; ferry_dist_finalize frees the groups still alive. */
FERRY_API void ferry_dist_group_release(ferry_dist_group *group);
/** This rank's rank within `group` (NULL: the world), -1 when not a member. */
FERRY_API int ferry_dist_group_rank(const ferry_dist_group *group);
/** The number of ranks in `group` (NULL: the world). */
FERRY_API int ferry_dist_group_size(const ferry_dist_group *group);

/*
 * Collectives. Tensors are contiguous, of any device and dtype, and live on the same
 * kind of device on every rank; the call runs after the work queued on the tensor's
 * device and later work sees the result. `root`, `dst` and `src` are world ranks
 * (torch.distributed's convention). Errors: FERRY_ERR_INVALID_ARGUMENT (not initialised,
 * non-contiguous, bad shapes, a rank outside the group), FERRY_ERR_UNSUPPORTED (AVG of a
 * bool tensor), FERRY_ERR_BACKEND with the engine's message.
 */

/** t = op over every rank's t, on every rank. */
FERRY_API ferry_status ferry_all_reduce(ferry_tensor *t, ferry_dist_op op,
                                        const ferry_dist_group *group);
/** t = root's t, on every rank. */
FERRY_API ferry_status ferry_broadcast(ferry_tensor *t, int root, const ferry_dist_group *group);
/** On root, t = op over every rank's t; the other ranks' t is unchanged. */
FERRY_API ferry_status ferry_reduce(ferry_tensor *t, int root, ferry_dist_op op,
                                    const ferry_dist_group *group);
/** out (shape: group size * in's dim 0, then in's other dims; same dtype and device)
 * gets every rank's in, in rank order (torch's all_gather_into_tensor). */
FERRY_API ferry_status ferry_all_gather(ferry_tensor *out, const ferry_tensor *in,
                                        const ferry_dist_group *group);
/** in has group size times out's dim 0; out = op over every rank's block number (own
 * rank) of in (torch's reduce_scatter_tensor). */
FERRY_API ferry_status ferry_reduce_scatter(ferry_tensor *out, const ferry_tensor *in,
                                            ferry_dist_op op, const ferry_dist_group *group);
/** out and in have one shape whose dim 0 divides by the group size: block r of in goes
 * to rank r, block r of out comes from rank r (torch's all_to_all_single). */
FERRY_API ferry_status ferry_all_to_all(ferry_tensor *out, const ferry_tensor *in,
                                        const ferry_dist_group *group);
/** ferry_all_to_all with blocks of their own sizes along dim 0 (torch's
 * all_to_all_single with output_split_sizes and input_split_sizes): in_splits[r] rows of
 * in go to rank r, out_splits[r] rows of out come from rank r, in group rank order. Each
 * array has group size entries >= 0 summing to its tensor's dim 0; NULL means equal
 * blocks. out and in agree in dtype, device and every dim but 0; rank r's in_splits[me]
 * must equal my out_splits[r] (checked under FERRY_DIST_DEBUG=1). */
FERRY_API ferry_status ferry_all_to_all_v(ferry_tensor *out, const int64_t *out_splits,
                                          const ferry_tensor *in, const int64_t *in_splits,
                                          const ferry_dist_group *group);
/** Sends t to world rank dst; ferry_recv(t, src, tag) there receives it. Messages between
 * two ranks with one tag (>= 0) arrive in the order sent. */
FERRY_API ferry_status ferry_send(const ferry_tensor *t, int dst, int tag);
FERRY_API ferry_status ferry_recv(ferry_tensor *t, int src, int tag);
/** ferry_recv from whichever world rank sends to this one first with `tag` (torch's
 * recv with src=None); *src (may be NULL) gets that rank. The later messages of that
 * sender keep their order. FERRY_ERR_UNSUPPORTED where the communicator has no
 * wildcard receive (NCCL). */
FERRY_API ferry_status ferry_recv_any(ferry_tensor *t, int tag, int *src);

/**
 * Which communicators are usable here: for communicator number i (0 .. returned count
 * - 1; "mpi", "nccl", then any other plugin found), its name in *name and NULL when it
 * loads, else why not (the missing file or library). Loads each plugin, runs no init.
 * Strings are static or live until ferry_shutdown.
 */
FERRY_API size_t ferry_dist_backends(void);
FERRY_API const char *ferry_dist_backend_name(size_t i);
FERRY_API const char *ferry_dist_backend_status(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_DISTRIBUTED_H */

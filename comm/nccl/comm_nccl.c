/* libferry-comm-nccl.so: ferry's collectives on CUDA device memory through NCCL. The
 * unique id travels over the host communicator (MPI) through the core's bootstrap
 * service, so this plugin links NCCL and the CUDA runtime only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <ferry/comm.h>

static const ferry_host_api *host;

struct ferry_comm_group {
    ncclComm_t comm;
    int n;
};

static struct {
    bool initialized;
    ncclComm_t world;
    cudaStream_t stream;
    int device; /* the CUDA device this rank's communicators use */
    int rank, size;
    double timeout_s;
    ferry_status (*bootstrap)(void *buf, size_t nbytes, int root, const int *ranks, int n);
} nc;

static char version[64];
static char probe_reason[256];

static ferry_status nccl_fail(ncclResult_t r, const char *call)
{
    return host->error(FERRY_ERR_BACKEND, "nccl: %s failed on rank %d: %s (ncclResult %d)", call,
                       nc.rank, ncclGetErrorString(r), (int)r);
}

static ferry_status cuda_fail(cudaError_t e, const char *call)
{
    return host->error(FERRY_ERR_BACKEND, "nccl: %s failed: %s (%s=%d)", call,
                       cudaGetErrorString(e), cudaGetErrorName(e), (int)e);
}

static const char *nccl_probe(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(probe_reason, sizeof probe_reason, "no CUDA device (%s: %s)",
                 cudaGetErrorName(e), cudaGetErrorString(e));
        return probe_reason;
    }
    if (n == 0)
        return "no CUDA device";
    return NULL;
}

static bool nccl_accepts_device(const char *type)
{
    return strcmp(type, "cuda") == 0;
}

static ferry_status nccl_init(const ferry_comm_config *cfg, int *rank, int *size)
{
    const char *why = nccl_probe();
    if (why)
        return host->error(FERRY_ERR_UNAVAILABLE, "nccl: %s", why);
    if (!cfg->bootstrap_broadcast || cfg->world_rank < 0 || cfg->world_size < 1)
        return host->error(FERRY_ERR_UNAVAILABLE,
                           "nccl: needs a host communicator (mpi) to exchange its unique id");
    nc.bootstrap = cfg->bootstrap_broadcast;
    nc.rank = cfg->world_rank;
    nc.size = cfg->world_size;
    nc.timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 300.0;
    /* One device per rank: the launcher's local rank picks it, as torchrun's LOCAL_RANK. */
    int ndev = 0;
    cudaGetDeviceCount(&ndev);
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    nc.device = (lr ? atoi(lr) : 0) % ndev;
    cudaError_t e = cudaSetDevice(nc.device);
    if (e != cudaSuccess)
        return cuda_fail(e, "cudaSetDevice");
    ncclUniqueId id;
    if (nc.rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess)
            return nccl_fail(r, "ncclGetUniqueId");
    }
    ferry_status st = nc.bootstrap(&id, sizeof id, 0, NULL, 0);
    if (st != FERRY_OK)
        return st;
    if ((e = cudaStreamCreateWithFlags(&nc.stream, cudaStreamNonBlocking)) != cudaSuccess)
        return cuda_fail(e, "cudaStreamCreateWithFlags");
    ncclResult_t r = ncclCommInitRank(&nc.world, nc.size, id, nc.rank);
    if (r != ncclSuccess) {
        cudaStreamDestroy(nc.stream);
        return nccl_fail(r, "ncclCommInitRank");
    }
    nc.initialized = true;
    *rank = nc.rank;
    *size = nc.size;
    return FERRY_OK;
}

static void nccl_finalize(void)
{
    if (!nc.initialized)
        return;
    ncclCommDestroy(nc.world);
    cudaStreamDestroy(nc.stream);
    nc.initialized = false;
}

static ferry_status nccl_group_create(const int *ranks, int n, ferry_comm_group **out)
{
    *out = NULL;
    int me = -1;
    for (int i = 0; i < n; i++)
        if (ranks[i] == nc.rank)
            me = i;
    if (me < 0)
        return FERRY_OK; /* the id is exchanged among the members only */
    ncclUniqueId id;
    if (me == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess)
            return nccl_fail(r, "ncclGetUniqueId");
    }
    ferry_status st = nc.bootstrap(&id, sizeof id, ranks[0], ranks, n);
    if (st != FERRY_OK)
        return st;
    ferry_comm_group *g = calloc(1, sizeof *g);
    if (!g)
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "nccl: out of memory for a group");
    ncclResult_t r = ncclCommInitRank(&g->comm, n, id, me);
    if (r != ncclSuccess) {
        free(g);
        return nccl_fail(r, "ncclCommInitRank");
    }
    g->n = n;
    *out = g;
    return FERRY_OK;
}

static void nccl_group_free(ferry_comm_group *g)
{
    if (!g)
        return;
    ncclCommDestroy(g->comm);
    free(g);
}

static ncclComm_t comm_of(const ferry_comm_group *g)
{
    return g ? g->comm : nc.world;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits for the stream, but never past FERRY_DIST_TIMEOUT: a peer that died leaves
 * NCCL's kernels spinning, so the communicator is aborted and the call fails. */
static ferry_status finish(const ferry_comm_group *g, const char *op)
{
    double until = now_s() + nc.timeout_s;
    for (;;) {
        cudaError_t e = cudaStreamQuery(nc.stream);
        if (e == cudaSuccess)
            return FERRY_OK;
        if (e != cudaErrorNotReady)
            return cuda_fail(e, op);
        ncclResult_t async = ncclSuccess;
        ncclCommGetAsyncError(comm_of(g), &async);
        if (async != ncclSuccess && async != ncclInProgress) {
            ncclCommAbort(comm_of(g));
            return nccl_fail(async, op);
        }
        if (now_s() > until) {
            ncclCommAbort(comm_of(g));
            return host->error(FERRY_ERR_BACKEND,
                               "nccl: %s on rank %d did not complete within %g s "
                               "(FERRY_DIST_TIMEOUT): a rank of the group has exited or "
                               "stopped calling collectives; the communicator was aborted",
                               op, nc.rank, nc.timeout_s);
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

static ferry_status check_device(const char *device, const char *op)
{
    int idx = -1;
    if (!device || sscanf(device, "cuda:%d", &idx) != 1)
        return host->error(FERRY_ERR_WRONG_DEVICE, "nccl: %s takes CUDA memory only (got %s)",
                           op, device ? device : "host memory");
    if (idx != nc.device)
        return host->error(FERRY_ERR_WRONG_DEVICE,
                           "nccl: %s on %s, but rank %d's communicator is on cuda:%d", op,
                           device, nc.rank, nc.device);
    return FERRY_OK;
}

static ferry_status type_of(ferry_dtype dt, ferry_comm_op *op, ncclDataType_t *t)
{
    switch (dt) {
    case FERRY_BOOL:
        /* As PyTorch's NCCL group: a sum of bools is an or, a product an and. */
        *t = ncclUint8;
        if (*op == FERRY_COMM_AVG)
            return host->error(FERRY_ERR_UNSUPPORTED,
                               "nccl: Cannot use ReduceOp.AVG with boolean inputs");
        *op = *op == FERRY_COMM_SUM || *op == FERRY_COMM_MAX ? FERRY_COMM_MAX : FERRY_COMM_MIN;
        return FERRY_OK;
    case FERRY_UINT8: *t = ncclUint8; return FERRY_OK;
    case FERRY_INT8: *t = ncclInt8; return FERRY_OK;
    case FERRY_INT32: *t = ncclInt32; return FERRY_OK;
    case FERRY_INT64: *t = ncclInt64; return FERRY_OK;
    case FERRY_FLOAT16: *t = ncclFloat16; return FERRY_OK;
    case FERRY_BFLOAT16: *t = ncclBfloat16; return FERRY_OK;
    case FERRY_FLOAT32: *t = ncclFloat32; return FERRY_OK;
    case FERRY_FLOAT64: *t = ncclFloat64; return FERRY_OK;
    default:
        return host->error(FERRY_ERR_UNSUPPORTED,
                           "nccl: no reduction of ferry dtype %d (NCCL has no int16 type)",
                           (int)dt);
    }
}

static ncclRedOp_t red_of(ferry_comm_op op)
{
    switch (op) {
    case FERRY_COMM_AVG: return ncclAvg;
    case FERRY_COMM_PRODUCT: return ncclProd;
    case FERRY_COMM_MIN: return ncclMin;
    case FERRY_COMM_MAX: return ncclMax;
    default: return ncclSum;
    }
}

#define CALL(expr, name)                                                                   \
    do {                                                                                   \
        ncclResult_t r_ = (expr);                                                          \
        if (r_ != ncclSuccess)                                                             \
            return nccl_fail(r_, name);                                                    \
    } while (0)

static ferry_status nccl_barrier(const ferry_comm_group *g)
{
    /* NCCL has no barrier: a one-element all-reduce on the device is one. */
    void *d = NULL;
    cudaError_t e = cudaMallocAsync(&d, sizeof(float), nc.stream);
    if (e != cudaSuccess)
        return cuda_fail(e, "cudaMallocAsync");
    ncclResult_t r = ncclAllReduce(d, d, 1, ncclFloat32, ncclSum, comm_of(g), nc.stream);
    cudaFreeAsync(d, nc.stream);
    if (r != ncclSuccess)
        return nccl_fail(r, "ncclAllReduce");
    return finish(g, "barrier");
}

static ferry_status nccl_all_reduce(void *buf, size_t count, ferry_dtype dt, ferry_comm_op op,
                                    const ferry_comm_group *g, const char *device)
{
    ncclDataType_t t;
    ferry_status st = check_device(device, "all_reduce");
    if (st == FERRY_OK)
        st = type_of(dt, &op, &t);
    if (st != FERRY_OK)
        return st;
    CALL(ncclAllReduce(buf, buf, count, t, red_of(op), comm_of(g), nc.stream), "ncclAllReduce");
    return finish(g, "all_reduce");
}

static ferry_status nccl_reduce(void *buf, size_t count, ferry_dtype dt, ferry_comm_op op,
                                int root, const ferry_comm_group *g, const char *device)
{
    ncclDataType_t t;
    ferry_status st = check_device(device, "reduce");
    if (st == FERRY_OK)
        st = type_of(dt, &op, &t);
    if (st != FERRY_OK)
        return st;
    CALL(ncclReduce(buf, buf, count, t, red_of(op), root, comm_of(g), nc.stream), "ncclReduce");
    return finish(g, "reduce");
}

static ferry_status nccl_broadcast(void *buf, size_t nbytes, int root, const ferry_comm_group *g,
                                   const char *device)
{
    ferry_status st = check_device(device, "broadcast");
    if (st != FERRY_OK)
        return st;
    CALL(ncclBroadcast(buf, buf, nbytes, ncclUint8, root, comm_of(g), nc.stream),
         "ncclBroadcast");
    return finish(g, "broadcast");
}

static ferry_status nccl_all_gather(void *out, const void *in, size_t nbytes,
                                    const ferry_comm_group *g, const char *device)
{
    ferry_status st = check_device(device, "all_gather");
    if (st != FERRY_OK)
        return st;
    CALL(ncclAllGather(in, out, nbytes, ncclUint8, comm_of(g), nc.stream), "ncclAllGather");
    return finish(g, "all_gather");
}

static ferry_status nccl_reduce_scatter(void *out, const void *in, size_t count, ferry_dtype dt,
                                        ferry_comm_op op, const ferry_comm_group *g,
                                        const char *device)
{
    ncclDataType_t t;
    ferry_status st = check_device(device, "reduce_scatter");
    if (st == FERRY_OK)
        st = type_of(dt, &op, &t);
    if (st != FERRY_OK)
        return st;
    CALL(ncclReduceScatter(in, out, count, t, red_of(op), comm_of(g), nc.stream),
         "ncclReduceScatter");
    return finish(g, "reduce_scatter");
}

static ferry_status nccl_all_to_all(void *out, const void *in, size_t nbytes,
                                    const ferry_comm_group *g, const char *device)
{
    ferry_status st = check_device(device, "all_to_all");
    if (st != FERRY_OK)
        return st;
    int n = g ? g->n : nc.size;
    CALL(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < n; r++) {
        ncclSend((const char *)in + (size_t)r * nbytes, nbytes, ncclUint8, r, comm_of(g),
                 nc.stream);
        ncclRecv((char *)out + (size_t)r * nbytes, nbytes, ncclUint8, r, comm_of(g), nc.stream);
    }
    CALL(ncclGroupEnd(), "ncclGroupEnd");
    return finish(g, "all_to_all");
}

/* Grouped sends and receives, as all_to_all's, with a size per peer; a zero-byte pair
 * is left out. */
static ferry_status nccl_all_to_allv(void *out, const size_t *out_bytes, const size_t *out_offs,
                                     const void *in, const size_t *in_bytes,
                                     const size_t *in_offs, const ferry_comm_group *g,
                                     const char *device)
{
    ferry_status st = check_device(device, "all_to_all");
    if (st != FERRY_OK)
        return st;
    int n = g ? g->n : nc.size;
    CALL(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < n; r++) {
        if (in_bytes[r])
            ncclSend((const char *)in + in_offs[r], in_bytes[r], ncclUint8, r, comm_of(g),
                     nc.stream);
        if (out_bytes[r])
            ncclRecv((char *)out + out_offs[r], out_bytes[r], ncclUint8, r, comm_of(g),
                     nc.stream);
    }
    CALL(ncclGroupEnd(), "ncclGroupEnd");
    return finish(g, "all_to_all");
}

/* NCCL has no tags: messages between two ranks keep their order, which is all ferry's
 * send/recv promise per tag. */
static ferry_status nccl_send(const void *buf, size_t nbytes, int peer, int tag,
                              const char *device)
{
    (void)tag;
    ferry_status st = check_device(device, "send");
    if (st != FERRY_OK)
        return st;
    CALL(ncclSend(buf, nbytes, ncclUint8, peer, nc.world, nc.stream), "ncclSend");
    return finish(NULL, "send");
}

static ferry_status nccl_recv(void *buf, size_t nbytes, int peer, int tag, const char *device)
{
    (void)tag;
    ferry_status st = check_device(device, "recv");
    if (st != FERRY_OK)
        return st;
    CALL(ncclRecv(buf, nbytes, ncclUint8, peer, nc.world, nc.stream), "ncclRecv");
    return finish(NULL, "recv");
}

static const ferry_comm_ops ops = {
    .abi_version = FERRY_COMM_ABI_VERSION,
    .struct_size = sizeof(ferry_comm_ops),
    .name = "nccl",
    .version = version,
    .init = nccl_init,
    .finalize = nccl_finalize,
    .probe = nccl_probe,
    .accepts_device = nccl_accepts_device,
    .group_create = nccl_group_create,
    .group_free = nccl_group_free,
    .barrier = nccl_barrier,
    .all_reduce = nccl_all_reduce,
    .reduce = nccl_reduce,
    .broadcast = nccl_broadcast,
    .all_gather = nccl_all_gather,
    .reduce_scatter = nccl_reduce_scatter,
    .all_to_all = nccl_all_to_all,
    .send = nccl_send,
    .recv = nccl_recv,
    .recv_any = NULL, /* NCCL has no wildcard receive */
    .all_to_allv = nccl_all_to_allv,
};

FERRY_BACKEND_EXPORT const ferry_comm_ops *ferry_comm_entry(const ferry_host_api *h)
{
    host = h;
    int v = 0;
    if (ncclGetVersion(&v) == ncclSuccess)
        snprintf(version, sizeof version, "NCCL %d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
    return &ops;
}

/* libferry-comm-mpi.so: ferry's collectives over MPI (Open MPI from Debian), on host
 * memory and, where MPIX_Query_cuda_support() says so, CUDA device memory. A watchdog
 * thread turns a peer that exited or stopped answering into a message naming it,
 * within FERRY_DIST_TIMEOUT seconds. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif

#include <ferry/comm.h>

static const ferry_host_api *host;

struct ferry_comm_group {
    MPI_Comm comm;
    int n;
    int *ranks; /* world ranks, ascending */
};

/* Tags on the control communicator, which carries only the watchdog's messages. */
enum { TAG_BYE = 1, TAG_QUERY = 2, TAG_STATE = 3 };

static struct {
    bool initialized;
    bool we_initialized_mpi; /* MPI_Init is ours to finalize */
    bool multiple;           /* MPI_THREAD_MULTIPLE: the watchdog may talk MPI */
    MPI_Comm world, ctrl;
    int rank, size, tag_ub;
    double timeout_s;
    int debug;
} mpi;

/* What the watchdog sees of the call in progress. */
static struct {
    pthread_mutex_t lock;
    pthread_t thread;
    bool running, stop;
    bool busy;
    const char *op;
    unsigned long long seq;
    double start;
    const int *members; /* world ranks of the call's group; NULL: the world */
    int nmembers;
    int peer;           /* point to point: the other rank, else -1 */
    bool *dead;         /* per world rank: said goodbye without ferry_dist_finalize */
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static ferry_status mpi_fail(int rc, const char *call)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0, cls = 0;
    MPI_Error_string(rc, text, &len);
    MPI_Error_class(rc, &cls);
    return host->error(FERRY_ERR_BACKEND, "mpi: %s failed on rank %d: %s (MPI error class %d)",
                       call, mpi.rank, text, cls);
}

/* ---- the watchdog ---- */

static const char *const op_names[] = {"barrier", "all_reduce", "reduce", "broadcast",
                                       "all_gather", "reduce_scatter", "all_to_all", "send",
                                       "recv"};

static int op_index(const char *op)
{
    for (int i = 0; i < (int)(sizeof op_names / sizeof op_names[0]); i++)
        if (strcmp(op_names[i], op) == 0)
            return i;
    return -1;
}

static bool involved_locked(int r)
{
    if (wd.peer >= 0)
        return r == wd.peer;
    if (!wd.members)
        return r != mpi.rank;
    for (int i = 0; i < wd.nmembers; i++)
        if (wd.members[i] == r)
            return r != mpi.rank;
    return false;
}

/* Marks a call in progress; fails at once when a rank it needs has already left. */
static ferry_status begin(const char *op, const ferry_comm_group *g, int peer)
{
    pthread_mutex_lock(&wd.lock);
    wd.op = op;
    wd.seq++;
    wd.start = now_s();
    wd.members = g ? g->ranks : NULL;
    wd.nmembers = g ? g->n : 0;
    wd.peer = peer;
    int gone = -1;
    for (int r = 0; wd.dead && r < mpi.size && gone < 0; r++)
        if (wd.dead[r] && involved_locked(r))
            gone = r;
    wd.busy = gone < 0;
    pthread_mutex_unlock(&wd.lock);
    if (gone >= 0)
        return host->error(FERRY_ERR_BACKEND,
                           "mpi: %s on rank %d: rank %d has exited (without calling "
                           "ferry_dist_finalize)",
                           op, mpi.rank, gone);
    return FERRY_OK;
}

static void end(void)
{
    pthread_mutex_lock(&wd.lock);
    wd.busy = false;
    pthread_mutex_unlock(&wd.lock);
}

/* Ends the process: the call in progress can never complete. mpirun then stops the
 * other ranks, so nothing is left hanging. */
static void die(const char *msg)
{
    fprintf(stderr, "ferry: rank %d: %s\n", mpi.rank, msg);
    fflush(stderr);
    _exit(1);
}

/* Answers queries and records goodbyes; returns a rank whose goodbye concerns the call
 * in progress, else -1. With reply, also collects STATE answers into states. */
static int poll_ctrl(long long (*states)[3], bool *answered)
{
    int gone = -1;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, mpi.ctrl, &flag, &st);
        if (!flag)
            return gone;
        long long msg[3] = {0, 0, 0};
        MPI_Recv(msg, 3, MPI_LONG_LONG, st.MPI_SOURCE, st.MPI_TAG, mpi.ctrl, MPI_STATUS_IGNORE);
        int src = st.MPI_SOURCE;
        pthread_mutex_lock(&wd.lock);
        if (st.MPI_TAG == TAG_BYE) {
            wd.dead[src] = true;
            if (wd.busy && involved_locked(src))
                gone = src;
        } else if (st.MPI_TAG == TAG_QUERY) {
            long long state[3] = {wd.busy, (long long)wd.seq, wd.busy ? op_index(wd.op) : -1};
            pthread_mutex_unlock(&wd.lock);
            MPI_Request req;
            MPI_Isend(state, 3, MPI_LONG_LONG, src, TAG_STATE, mpi.ctrl, &req);
            MPI_Request_free(&req); /* the buffer is copied: 24 bytes go eagerly */
            pthread_mutex_lock(&wd.lock);
        } else if (st.MPI_TAG == TAG_STATE && states) {
            memcpy(states[src], msg, sizeof msg);
            answered[src] = true;
        }
        pthread_mutex_unlock(&wd.lock);
    }
}

static void report_gone(int r)
{
    char msg[512];
    pthread_mutex_lock(&wd.lock);
    snprintf(msg, sizeof msg,
             "%s (call #%llu) cannot complete: rank %d exited without calling "
             "ferry_dist_finalize",
             wd.op, wd.seq, r);
    pthread_mutex_unlock(&wd.lock);
    die(msg);
}

/* The call in progress outlived FERRY_DIST_TIMEOUT: ask every rank where it is, give them
 * a moment to answer, and name the ones that are not in this call. */
static void report_timeout(void)
{
    long long (*states)[3] = calloc((size_t)mpi.size, sizeof *states);
    bool *answered = calloc((size_t)mpi.size, sizeof *answered);
    char msg[4096];
    pthread_mutex_lock(&wd.lock);
    const char *op = wd.op;
    unsigned long long seq = wd.seq;
    pthread_mutex_unlock(&wd.lock);
    int len = snprintf(msg, sizeof msg,
                       "%s (call #%llu) did not complete within %g s (FERRY_DIST_TIMEOUT)", op,
                       seq, mpi.timeout_s);
    if (states && answered && mpi.multiple) {
        long long q[3] = {0, 0, 0};
        for (int r = 0; r < mpi.size; r++) {
            if (r == mpi.rank)
                continue;
            MPI_Request req;
            MPI_Isend(q, 3, MPI_LONG_LONG, r, TAG_QUERY, mpi.ctrl, &req);
            MPI_Request_free(&req);
        }
        double grace = mpi.timeout_s < 2.0 ? mpi.timeout_s : 2.0, until = now_s() + grace;
        while (now_s() < until) {
            int gone = poll_ctrl(states, answered);
            if (gone >= 0)
                report_gone(gone);
            usleep(10000);
        }
        const char *sep = ": ";
        pthread_mutex_lock(&wd.lock);
        for (int r = 0; r < mpi.size && len < (int)sizeof msg - 200; r++) {
            if (!involved_locked(r))
                continue;
            if (!answered[r])
                len += snprintf(msg + len, sizeof msg - (size_t)len,
                                "%srank %d does not answer (it exited, crashed, or is busy "
                                "outside ferry's collectives)",
                                sep, r);
            else if (!states[r][0])
                len += snprintf(msg + len, sizeof msg - (size_t)len,
                                "%srank %d is not in a collective (busy elsewhere)", sep, r);
            else if (states[r][2] != op_index(op))
                len += snprintf(msg + len, sizeof msg - (size_t)len,
                                "%srank %d waits in %s (call #%lld) instead", sep, r,
                                states[r][2] >= 0 ? op_names[states[r][2]] : "?",
                                states[r][1]);
            else
                len += snprintf(msg + len, sizeof msg - (size_t)len,
                                "%srank %d waits in %s too", sep, r, op);
            sep = "; ";
        }
        pthread_mutex_unlock(&wd.lock);
    }
    free(states);
    free(answered);
    die(msg);
}

static void *watchdog(void *arg)
{
    (void)arg;
    double period = mpi.timeout_s / 10 < 0.05 ? mpi.timeout_s / 10 : 0.05;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(period * 1e9)};
    for (;;) {
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&wd.lock);
        bool stop = wd.stop, busy = wd.busy;
        double start = wd.start;
        pthread_mutex_unlock(&wd.lock);
        if (stop)
            return NULL;
        if (mpi.multiple) {
            int gone = poll_ctrl(NULL, NULL);
            if (gone >= 0)
                report_gone(gone);
        }
        if (busy && now_s() - start > mpi.timeout_s) {
            pthread_mutex_lock(&wd.lock);
            bool still = wd.busy && wd.start == start;
            pthread_mutex_unlock(&wd.lock);
            if (still)
                report_timeout();
        }
    }
}

static void stop_watchdog(void)
{
    if (!wd.running)
        return;
    pthread_mutex_lock(&wd.lock);
    wd.stop = true;
    pthread_mutex_unlock(&wd.lock);
    pthread_join(wd.thread, NULL);
    wd.running = false;
}

static void mpi_finalize(void);

/* A process that leaves without ferry_dist_finalize tells the others, so a rank waiting
 * for it fails naming it instead of waiting for the timeout. */
static void at_exit(void)
{
    if (!mpi.initialized)
        return;
    if (mpi.multiple) {
        long long bye[3] = {0, 0, 0};
        for (int r = 0; r < mpi.size; r++) {
            if (r == mpi.rank)
                continue;
            MPI_Request req;
            MPI_Isend(bye, 3, MPI_LONG_LONG, r, TAG_BYE, mpi.ctrl, &req);
            MPI_Request_free(&req);
        }
    }
    mpi_finalize();
}

/* ---- the table ---- */

static ferry_status mpi_init(const ferry_comm_config *cfg, int *rank, int *size)
{
    if (mpi.initialized)
        return host->error(FERRY_ERR_INVALID_ARGUMENT, "mpi: already initialised");
    /* Open MPI loads its own components with dlopen; they need libmpi's symbols, which
     * our RTLD_LOCAL load hid. Promote the already-loaded library to global scope. */
    Dl_info info;
    if (dladdr((void *)&MPI_Init, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int inited = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&inited);
    if (!inited) {
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, "MPI_Init_thread");
        mpi.we_initialized_mpi = true;
    } else {
        MPI_Query_thread(&provided);
    }
    mpi.multiple = provided >= MPI_THREAD_MULTIPLE;
    MPI_Comm_dup(MPI_COMM_WORLD, &mpi.world);
    MPI_Comm_dup(MPI_COMM_WORLD, &mpi.ctrl);
    MPI_Comm_set_errhandler(mpi.world, MPI_ERRORS_RETURN);
    MPI_Comm_rank(mpi.world, &mpi.rank);
    MPI_Comm_size(mpi.world, &mpi.size);
    int *ub = NULL, flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
    mpi.tag_ub = flag && ub ? *ub : 32767;
    mpi.timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 300.0;
    mpi.debug = cfg->debug;
    wd.dead = calloc((size_t)mpi.size, sizeof *wd.dead);
    wd.stop = false;
    wd.busy = false;
    wd.seq = 0;
    if (!wd.dead || pthread_create(&wd.thread, NULL, watchdog, NULL) != 0) {
        free(wd.dead);
        wd.dead = NULL;
        MPI_Comm_free(&mpi.ctrl);
        MPI_Comm_free(&mpi.world);
        if (mpi.we_initialized_mpi)
            MPI_Finalize();
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "mpi: cannot start the watchdog thread");
    }
    wd.running = true;
    mpi.initialized = true;
    static bool registered;
    if (!registered && atexit(at_exit) == 0)
        registered = true;
    if (!mpi.multiple)
        host->log(FERRY_LOG_WARN, "mpi",
                  "MPI gives thread level %d, not MPI_THREAD_MULTIPLE: a timeout cannot name "
                  "the ranks it waited for",
                  provided);
    *rank = mpi.rank;
    *size = mpi.size;
    return FERRY_OK;
}

/* Waits until every rank is leaving (ferry_dist_finalize or the exit handler) before
 * MPI_Finalize, whose fence would otherwise hold a rank that exits early while the
 * others fail on its goodbye and exit: mpirun, tearing the job down with a client in
 * that fence, can hang in its own PMIx shutdown (Open MPI 4.1) after every rank is gone.
 * Waiting here instead, outside the fence, the leaving rank is simply stopped by mpirun.
 * With all ranks leaving, the barrier completes and the fence runs as before. */
static void leave_barrier(void)
{
    MPI_Request req;
    if (!mpi.multiple || MPI_Ibarrier(mpi.ctrl, &req) != MPI_SUCCESS)
        return;
    int done = 0;
    while (!done && MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS)
        if (!done)
            usleep(1000);
}

static void mpi_finalize(void)
{
    if (!mpi.initialized)
        return;
    leave_barrier();
    stop_watchdog();
    mpi.initialized = false;
    MPI_Comm_free(&mpi.ctrl);
    MPI_Comm_free(&mpi.world);
    free(wd.dead);
    wd.dead = NULL;
    if (mpi.we_initialized_mpi) {
        int done = 0;
        MPI_Finalized(&done);
        if (!done)
            MPI_Finalize();
        mpi.we_initialized_mpi = false;
    }
}

static bool mpi_accepts_device(const char *type)
{
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
    return strcmp(type, "cuda") == 0 && MPIX_Query_cuda_support() == 1;
#else
    (void)type;
    return false;
#endif
}

static ferry_status mpi_group_create(const int *ranks, int n, ferry_comm_group **out)
{
    *out = NULL;
    MPI_Group world_group, sub;
    MPI_Comm_group(mpi.world, &world_group);
    int rc = MPI_Group_incl(world_group, n, ranks, &sub);
    MPI_Group_free(&world_group);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Group_incl");
    MPI_Comm comm = MPI_COMM_NULL;
    ferry_status st = begin("barrier", NULL, -1);
    if (st != FERRY_OK) {
        MPI_Group_free(&sub);
        return st;
    }
    rc = MPI_Comm_create(mpi.world, sub, &comm);
    end();
    MPI_Group_free(&sub);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_create");
    if (comm == MPI_COMM_NULL)
        return FERRY_OK;
    ferry_comm_group *g = calloc(1, sizeof *g);
    int *copy = malloc((size_t)n * sizeof *copy);
    if (!g || !copy) {
        free(g);
        free(copy);
        MPI_Comm_free(&comm);
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "mpi: out of memory for a group");
    }
    memcpy(copy, ranks, (size_t)n * sizeof *copy);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    g->comm = comm;
    g->n = n;
    g->ranks = copy;
    *out = g;
    return FERRY_OK;
}

static void mpi_group_free(ferry_comm_group *g)
{
    if (!g)
        return;
    if (mpi.initialized)
        MPI_Comm_free(&g->comm);
    free(g->ranks);
    free(g);
}

static MPI_Comm comm_of(const ferry_comm_group *g)
{
    return g ? g->comm : mpi.world;
}

static int size_of(const ferry_comm_group *g)
{
    return g ? g->n : mpi.size;
}

static ferry_status check_count(size_t count, const char *op)
{
    if (count > INT_MAX)
        return host->error(FERRY_ERR_INVALID_ARGUMENT,
                           "mpi: %s of %zu elements: MPI counts stop at %d", op, count, INT_MAX);
    return FERRY_OK;
}

/* The MPI type and operator of a reduction, or FERRY_ERR_UNSUPPORTED (float16 and
 * bfloat16: MPI has neither, and the core then reduces them in float32). */
static ferry_status reduction_of(ferry_dtype dt, ferry_comm_op op, MPI_Datatype *type,
                                 MPI_Op *mop)
{
    switch (dt) {
    case FERRY_BOOL: *type = MPI_C_BOOL; break;
    case FERRY_UINT8: *type = MPI_UINT8_T; break;
    case FERRY_INT8: *type = MPI_INT8_T; break;
    case FERRY_INT16: *type = MPI_INT16_T; break;
    case FERRY_INT32: *type = MPI_INT32_T; break;
    case FERRY_INT64: *type = MPI_INT64_T; break;
    case FERRY_FLOAT32: *type = MPI_FLOAT; break;
    case FERRY_FLOAT64: *type = MPI_DOUBLE; break;
    default: return FERRY_ERR_UNSUPPORTED;
    }
    if (dt == FERRY_BOOL) {
        /* MPI allows only logical operators on C bool. */
        if (op == FERRY_COMM_AVG)
            return host->error(FERRY_ERR_UNSUPPORTED,
                               "mpi: Cannot use ReduceOp.AVG with boolean inputs");
        *mop = op == FERRY_COMM_SUM || op == FERRY_COMM_MAX ? MPI_LOR : MPI_LAND;
        return FERRY_OK;
    }
    switch (op) {
    case FERRY_COMM_SUM:
    case FERRY_COMM_AVG: *mop = MPI_SUM; break;
    case FERRY_COMM_PRODUCT: *mop = MPI_PROD; break;
    case FERRY_COMM_MIN: *mop = MPI_MIN; break;
    case FERRY_COMM_MAX: *mop = MPI_MAX; break;
    default:
        return host->error(FERRY_ERR_INVALID_ARGUMENT, "mpi: unknown reduction op %d", (int)op);
    }
    return FERRY_OK;
}

/* AVG is SUM divided by the group size, in the dtype (integers truncate toward zero). */
static void divide(void *buf, size_t count, ferry_dtype dt, int by)
{
#define DIV(T)                                                                             \
    for (size_t i = 0; i < count; i++)                                                     \
        ((T *)buf)[i] = (T)(((T *)buf)[i] / (T)by);
    switch (dt) {
    case FERRY_UINT8: DIV(uint8_t) break;
    case FERRY_INT8: DIV(int8_t) break;
    case FERRY_INT16: DIV(int16_t) break;
    case FERRY_INT32: DIV(int32_t) break;
    case FERRY_INT64: DIV(int64_t) break;
    case FERRY_FLOAT32: DIV(float) break;
    case FERRY_FLOAT64: DIV(double) break;
    default: break;
    }
#undef DIV
}

static ferry_status host_only(const char *device, const char *op)
{
    if (device && !mpi_accepts_device("cuda"))
        return host->error(FERRY_ERR_WRONG_DEVICE, "mpi: %s on %s memory: this MPI takes host "
                           "memory only", op, device);
    return FERRY_OK;
}

#define RUN(op, group, peer, call, name)                                                     \
    do {                                                                                     \
        ferry_status st_ = begin(op, group, peer);                                           \
        if (st_ != FERRY_OK)                                                                 \
            return st_;                                                                      \
        int rc_ = (call);                                                                    \
        end();                                                                               \
        if (rc_ != MPI_SUCCESS)                                                              \
            return mpi_fail(rc_, name);                                                      \
    } while (0)

static ferry_status mpi_barrier(const ferry_comm_group *g)
{
    RUN("barrier", g, -1, MPI_Barrier(comm_of(g)), "MPI_Barrier");
    return FERRY_OK;
}

static ferry_status mpi_all_reduce(void *buf, size_t count, ferry_dtype dt, ferry_comm_op op,
                                   const ferry_comm_group *g, const char *device)
{
    MPI_Datatype type = MPI_BYTE;
    MPI_Op mop = MPI_SUM;
    ferry_status st = reduction_of(dt, op, &type, &mop);
    if (st == FERRY_OK)
        st = check_count(count, "all_reduce");
    if (st == FERRY_OK)
        st = host_only(device, "all_reduce");
    if (st != FERRY_OK)
        return st;
    RUN("all_reduce", g, -1, MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, type, mop, comm_of(g)),
        "MPI_Allreduce");
    if (op == FERRY_COMM_AVG)
        divide(buf, count, dt, size_of(g));
    return FERRY_OK;
}

static ferry_status mpi_reduce(void *buf, size_t count, ferry_dtype dt, ferry_comm_op op,
                               int root, const ferry_comm_group *g, const char *device)
{
    MPI_Datatype type = MPI_BYTE;
    MPI_Op mop = MPI_SUM;
    ferry_status st = reduction_of(dt, op, &type, &mop);
    if (st == FERRY_OK)
        st = check_count(count, "reduce");
    if (st == FERRY_OK)
        st = host_only(device, "reduce");
    if (st != FERRY_OK)
        return st;
    int me;
    MPI_Comm_rank(comm_of(g), &me);
    RUN("reduce", g, -1,
        MPI_Reduce(me == root ? MPI_IN_PLACE : buf, me == root ? buf : NULL, (int)count, type,
                   mop, root, comm_of(g)),
        "MPI_Reduce");
    if (op == FERRY_COMM_AVG && me == root)
        divide(buf, count, dt, size_of(g));
    return FERRY_OK;
}

static ferry_status mpi_broadcast(void *buf, size_t nbytes, int root, const ferry_comm_group *g,
                                  const char *device)
{
    ferry_status st = check_count(nbytes, "broadcast");
    if (st == FERRY_OK)
        st = host_only(device, "broadcast");
    if (st != FERRY_OK)
        return st;
    RUN("broadcast", g, -1, MPI_Bcast(buf, (int)nbytes, MPI_BYTE, root, comm_of(g)), "MPI_Bcast");
    return FERRY_OK;
}

static ferry_status mpi_all_gather(void *out, const void *in, size_t nbytes,
                                   const ferry_comm_group *g, const char *device)
{
    ferry_status st = check_count(nbytes * (size_t)size_of(g), "all_gather");
    if (st == FERRY_OK)
        st = host_only(device, "all_gather");
    if (st != FERRY_OK)
        return st;
    RUN("all_gather", g, -1,
        MPI_Allgather(in, (int)nbytes, MPI_BYTE, out, (int)nbytes, MPI_BYTE, comm_of(g)),
        "MPI_Allgather");
    return FERRY_OK;
}

static ferry_status mpi_reduce_scatter(void *out, const void *in, size_t count, ferry_dtype dt,
                                       ferry_comm_op op, const ferry_comm_group *g,
                                       const char *device)
{
    MPI_Datatype type = MPI_BYTE;
    MPI_Op mop = MPI_SUM;
    ferry_status st = reduction_of(dt, op, &type, &mop);
    if (st == FERRY_OK)
        st = check_count(count * (size_t)size_of(g), "reduce_scatter");
    if (st == FERRY_OK)
        st = host_only(device, "reduce_scatter");
    if (st != FERRY_OK)
        return st;
    RUN("reduce_scatter", g, -1,
        MPI_Reduce_scatter_block(in, out, (int)count, type, mop, comm_of(g)),
        "MPI_Reduce_scatter_block");
    if (op == FERRY_COMM_AVG)
        divide(out, count, dt, size_of(g));
    return FERRY_OK;
}

static ferry_status mpi_all_to_all(void *out, const void *in, size_t nbytes,
                                   const ferry_comm_group *g, const char *device)
{
    ferry_status st = check_count(nbytes * (size_t)size_of(g), "all_to_all");
    if (st == FERRY_OK)
        st = host_only(device, "all_to_all");
    if (st != FERRY_OK)
        return st;
    RUN("all_to_all", g, -1,
        MPI_Alltoall(in, (int)nbytes, MPI_BYTE, out, (int)nbytes, MPI_BYTE, comm_of(g)),
        "MPI_Alltoall");
    return FERRY_OK;
}

/* MPI_Alltoallv counts and displacements are ints: each byte figure must fit. */
static ferry_status to_ints(const size_t *v, int n, int *out)
{
    for (int r = 0; r < n; r++) {
        if (v[r] > INT_MAX)
            return host->error(FERRY_ERR_INVALID_ARGUMENT,
                               "mpi: all_to_all: a block size or offset of %zu bytes (rank "
                               "%d): MPI counts stop at %d", v[r], r, INT_MAX);
        out[r] = (int)v[r];
    }
    return FERRY_OK;
}

static ferry_status mpi_all_to_allv(void *out, const size_t *out_bytes, const size_t *out_offs,
                                    const void *in, const size_t *in_bytes,
                                    const size_t *in_offs, const ferry_comm_group *g,
                                    const char *device)
{
    ferry_status st = host_only(device, "all_to_all");
    if (st != FERRY_OK)
        return st;
    int n = size_of(g);
    int *v = malloc(4 * (size_t)n * sizeof *v);
    if (!v)
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "mpi: all_to_all: out of memory");
    int *sc = v, *sd = v + n, *rc = v + 2 * n, *rd = v + 3 * n;
    if ((st = to_ints(in_bytes, n, sc)) == FERRY_OK && (st = to_ints(in_offs, n, sd)) == FERRY_OK &&
        (st = to_ints(out_bytes, n, rc)) == FERRY_OK && (st = to_ints(out_offs, n, rd)) == FERRY_OK) {
        st = begin("all_to_all", g, -1);
        if (st == FERRY_OK) {
            int rc_ = MPI_Alltoallv(in, sc, sd, MPI_BYTE, out, rc, rd, MPI_BYTE, comm_of(g));
            end();
            if (rc_ != MPI_SUCCESS)
                st = mpi_fail(rc_, "MPI_Alltoallv");
        }
    }
    free(v);
    return st;
}

static ferry_status check_tag(int tag)
{
    if (tag < 0 || tag > mpi.tag_ub)
        return host->error(FERRY_ERR_INVALID_ARGUMENT,
                           "mpi: tag %d is outside 0 .. %d (MPI_TAG_UB)", tag, mpi.tag_ub);
    return FERRY_OK;
}

/* What send, recv and recv_any check before MPI sees the call. */
static ferry_status check_p2p(size_t nbytes, int tag, const char *device, const char *what)
{
    ferry_status st = check_count(nbytes, what);
    if (st == FERRY_OK)
        st = check_tag(tag);
    if (st == FERRY_OK)
        st = host_only(device, what);
    return st;
}

static ferry_status mpi_send(const void *buf, size_t nbytes, int peer, int tag,
                             const char *device)
{
    ferry_status st = check_p2p(nbytes, tag, device, "send");
    if (st != FERRY_OK)
        return st;
    RUN("send", NULL, peer, MPI_Send(buf, (int)nbytes, MPI_BYTE, peer, tag, mpi.world),
        "MPI_Send");
    return FERRY_OK;
}

static ferry_status mpi_recv(void *buf, size_t nbytes, int peer, int tag, const char *device)
{
    ferry_status st = check_p2p(nbytes, tag, device, "recv");
    if (st != FERRY_OK)
        return st;
    MPI_Status status;
    RUN("recv", NULL, peer, MPI_Recv(buf, (int)nbytes, MPI_BYTE, peer, tag, mpi.world, &status),
        "MPI_Recv");
    int got = 0;
    MPI_Get_count(&status, MPI_BYTE, &got);
    if ((size_t)got != nbytes)
        return host->error(FERRY_ERR_INVALID_ARGUMENT,
                           "mpi: recv from rank %d (tag %d) got %d bytes, expected %zu: the "
                           "tensors differ",
                           peer, tag, got, nbytes);
    return FERRY_OK;
}

static ferry_status mpi_recv_any(void *buf, size_t nbytes, int tag, int *peer,
                                 const char *device)
{
    ferry_status st = check_p2p(nbytes, tag, device, "recv");
    if (st != FERRY_OK)
        return st;
    MPI_Status status;
    RUN("recv", NULL, -1,
        MPI_Recv(buf, (int)nbytes, MPI_BYTE, MPI_ANY_SOURCE, tag, mpi.world, &status),
        "MPI_Recv");
    *peer = status.MPI_SOURCE;
    int got = 0;
    MPI_Get_count(&status, MPI_BYTE, &got);
    if ((size_t)got != nbytes)
        return host->error(FERRY_ERR_INVALID_ARGUMENT,
                           "mpi: recv from any rank (tag %d) got %d bytes from rank %d, "
                           "expected %zu: the tensors differ",
                           tag, got, status.MPI_SOURCE, nbytes);
    return FERRY_OK;
}

static char version[MPI_MAX_LIBRARY_VERSION_STRING];

static const ferry_comm_ops ops = {
    .abi_version = FERRY_COMM_ABI_VERSION,
    .struct_size = sizeof(ferry_comm_ops),
    .name = "mpi",
    .version = version,
    .init = mpi_init,
    .finalize = mpi_finalize,
    .probe = NULL,
    .accepts_device = mpi_accepts_device,
    .group_create = mpi_group_create,
    .group_free = mpi_group_free,
    .barrier = mpi_barrier,
    .all_reduce = mpi_all_reduce,
    .reduce = mpi_reduce,
    .broadcast = mpi_broadcast,
    .all_gather = mpi_all_gather,
    .reduce_scatter = mpi_reduce_scatter,
    .all_to_all = mpi_all_to_all,
    .send = mpi_send,
    .recv = mpi_recv,
    .recv_any = mpi_recv_any,
    .all_to_allv = mpi_all_to_allv,
};

FERRY_BACKEND_EXPORT const ferry_comm_ops *ferry_comm_entry(const ferry_host_api *h)
{
    host = h;
    if (!version[0]) {
        int len = 0;
        MPI_Get_library_version(version, &len);
        char *nl = strchr(version, '\n');
        if (nl)
            *nl = '\0';
        char *comma = strchr(version, ',');
        if (comma)
            *comma = '\0';
    }
    return &ops;
}

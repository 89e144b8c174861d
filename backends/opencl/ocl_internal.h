/* Declarations shared by the files of the OpenCL backend: the per-device state, error
 * translation, program and kernel lookup, launches and scratch memory. Private to
 * backends/opencl; every symbol is hidden so the module exports only its entry. */
#ifndef FERRY_OCL_INTERNAL_H
#define FERRY_OCL_INTERNAL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/backend.h>

#include "fk_plan.h" /* the launch planning shared with the CUDA backend */

#define OCL_HIDDEN __attribute__((visibility("hidden")))

/* Kernel slots per device, one per kernel name the backend uses. */
enum {
    OCL_K_FILL = 0,                                  /* + log2(width) */
    OCL_K_COPY = OCL_K_FILL + 4,                     /* + log2(width) */
    OCL_K_CAST = OCL_K_COPY + 4,                     /* + src * 10 + dst */
    OCL_K_UNARY = OCL_K_CAST + FERRY_NUM_DTYPES * FERRY_NUM_DTYPES, /* + dtype */
    OCL_K_BINARY = OCL_K_UNARY + FERRY_NUM_DTYPES,
    OCL_K_COMPARE = OCL_K_BINARY + FERRY_NUM_DTYPES,
    OCL_K_BINARY_SCALAR = OCL_K_COMPARE + FERRY_NUM_DTYPES,
    OCL_K_COMPARE_SCALAR = OCL_K_BINARY_SCALAR + FERRY_NUM_DTYPES,
    OCL_K_BINARY_DENSE = OCL_K_COMPARE_SCALAR + FERRY_NUM_DTYPES,
    OCL_K_SUM = OCL_K_BINARY_DENSE + FERRY_NUM_DTYPES,
    OCL_K_MAXMIN = OCL_K_SUM + FERRY_NUM_DTYPES,
    OCL_K_ARGMAX = OCL_K_MAXMIN + FERRY_NUM_DTYPES,
    OCL_K_ARGMAX_PART = OCL_K_ARGMAX + FERRY_NUM_DTYPES,
    OCL_K_SUM_WG = OCL_K_ARGMAX_PART + FERRY_NUM_DTYPES,
    OCL_K_SUM_COLS = OCL_K_SUM_WG + FERRY_NUM_DTYPES, /* float dtypes only */
    OCL_K_MATMUL = OCL_K_SUM_COLS + FERRY_NUM_DTYPES,
    OCL_K_COUNT = OCL_K_MATMUL + FERRY_NUM_DTYPES,
};

/* Programs per device, one per kernel family and dtype (ferry_kernels.h explains why):
 * fill and copy; casts by source dtype; unary, binary and compare by dtype; reductions
 * by dtype; matmul by dtype. Each is built on the first launch of one of its kernels. */
enum {
    OCL_G_COPY = 0,
    OCL_G_CAST = 1,                               /* + source dtype */
    OCL_G_ARITH = OCL_G_CAST + FERRY_NUM_DTYPES,   /* + dtype */
    OCL_G_REDUCE = OCL_G_ARITH + FERRY_NUM_DTYPES, /* + dtype */
    OCL_G_MATMUL = OCL_G_REDUCE + FERRY_NUM_DTYPES, /* + dtype */
    OCL_G_COUNT = OCL_G_MATMUL + FERRY_NUM_DTYPES,
};

/* A kernel of a named-op family (ferry_<family>.h), with its work-group size. */
typedef struct ocl_kernel {
    char name[64];
    cl_kernel kernel;
    size_t wg;
} ocl_kernel;

/* A command queue of a device: the default one (ocl_device.defq, the handle NULL) or one
 * made by queue_create. Each has its own scratch, as two queues may run at once. */
typedef struct ocl_queue {
    cl_command_queue cq;
    cl_mem scratch; /* temporaries of reductions and matmul; guarded by the device lock */
    size_t scratch_size;
    struct ocl_queue *next; /* the device's list of made queues, under its lock */
} ocl_queue;

/* Devices whose current queue a thread may set; the rest have their default one only. */
#define OCL_QUEUE_DEVICES 64

#define OCL_NAMED_PROGRAMS 96
#define OCL_NAMED_KERNELS 256

typedef struct ocl_device {
    cl_platform_id platform;
    cl_device_id id;
    int32_t index; /* opencl:<index> */

    /* Read at init; constant afterwards. */
    char name[256];
    char vendor[128];
    char platform_name[128];
    char device_version[128]; /* "OpenCL 3.0 PoCL HSTR: ..." */
    char driver_version[128];
    char platform_version[128];
    cl_ulong global_mem;
    cl_ulong max_alloc;
    bool fp64;          /* cl_khr_fp64, unless FERRY_OPENCL_HIDE_FP64 hides it */
    bool fp16;          /* cl_khr_fp16 (informational: half is always computed in float) */
    bool unified;       /* CL_DEVICE_HOST_UNIFIED_MEMORY */
    bool map_copies;    /* host copies through clEnqueueMapBuffer (see ocl_backend.c) */
    bool cr_divide;     /* CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT */
    bool opencl12;      /* the device's OpenCL C is 1.2 or later */
    bool gpu;           /* CL_DEVICE_TYPE_GPU or _ACCELERATOR: reductions in work-groups,
                         * dense elementwise launches grid-stride */
    cl_uint compute_units; /* CL_DEVICE_MAX_COMPUTE_UNITS, at least 1 */

    /* Created on first use under `lock`; `ready` is set once context and queue exist. */
    pthread_mutex_t lock;
    bool ready;
    cl_context context;
    ocl_queue defq;    /* the default queue; its cq is made with the context */
    ocl_queue *queues; /* those queue_create made, newest first; under `lock` */
    cl_program programs[OCL_G_COUNT]; /* built on the first launch of one of their kernels */
    bool build_failed[OCL_G_COUNT];   /* the compiler refused it: not tried again */
    char build_error[2000];           /* why, for the last program that failed */
    cl_kernel kernels[OCL_K_COUNT];
    size_t wg[OCL_K_COUNT]; /* work-group size of each kernel's launches */
    size_t local_size;    /* preferred work-group size of the device */
    /* Named-op families: a program per (family, dtype) and their kernels, made on first
     * use under `lock` (ocl_named_kernel). */
    struct {
        char key[48]; /* "RANDOM/7" */
        cl_program program;
        bool failed;
    } named_programs[OCL_NAMED_PROGRAMS];
    int named_nprograms;
    ocl_kernel named_kernels[OCL_NAMED_KERNELS];
    int named_nkernels;
    bool clblast_warm[4]; /* first CLBlast call per routine done (see ocl_matmul.c) */
} ocl_device;

/* Named-op tables (ocl_<family>.c). */
OCL_HIDDEN extern const ferry_named_entry ocl_named_elementwise2[];
OCL_HIDDEN extern const ferry_named_entry ocl_named_select[];

/* ocl_backend.c */
OCL_HIDDEN extern const ferry_host_api *ocl_host;
/* Named-kernel tables, one per op family (ocl_backend.c lists them). */
OCL_HIDDEN extern const ferry_named_entry ocl_named_sort[];
OCL_HIDDEN extern ocl_device *ocl_devices;
OCL_HIDDEN extern int32_t ocl_ndevices;
/* FERRY_OPENCL_MATMUL, read at init: 0 auto, 1 always CLBlast, 2 always ferry's kernel. */
OCL_HIDDEN extern int ocl_matmul_mode;
/* FERRY_OPENCL_BUILD_OPTIONS, read at init: appended to the program's build options. */
OCL_HIDDEN extern char ocl_extra_options[256];

/* Context and in-order queue of a device, created once (thread-safe). */
OCL_HIDDEN ferry_status ocl_device_ready(int32_t dev, ocl_device **out);

/* ocl_queue.c: the calling thread's current queue of `d` (set_queue), the one every
 * enqueue of an entry goes to; the default queue when none was set. */
OCL_HIDDEN ocl_queue *ocl_current(ocl_device *d);
static inline cl_command_queue ocl_cq(ocl_device *d)
{
    return ocl_current(d)->cq;
}
/* Starts a new generation of thread-local current queues (at init: those of an earlier
 * load name queues that are gone). */
OCL_HIDDEN void ocl_queue_generation(void);
/* Destroys the queues queue_create made that are left at shutdown. */
OCL_HIDDEN void ocl_queue_release_all(ocl_device *d);
/* The ABI 1.2 entries (ocl_queue.c). */
OCL_HIDDEN ferry_status ocl_queue_create(void *ctx, int32_t device, void **queue);
OCL_HIDDEN void ocl_queue_destroy(void *ctx, int32_t device, void *queue);
OCL_HIDDEN ferry_status ocl_set_queue(void *ctx, int32_t device, void *queue);
OCL_HIDDEN ferry_status ocl_event_record(void *ctx, int32_t device, void *queue, void **event);
OCL_HIDDEN ferry_status ocl_event_wait(void *ctx, int32_t device, void *queue, void *event);
OCL_HIDDEN ferry_status ocl_event_synchronize(void *ctx, int32_t device, void *event);
OCL_HIDDEN ferry_status ocl_event_query(void *ctx, int32_t device, void *event, bool *done);
OCL_HIDDEN void ocl_event_destroy(void *ctx, int32_t device, void *event);
OCL_HIDDEN ferry_status ocl_event_elapsed(void *ctx, int32_t device, void *start, void *end,
                                          float *ms);
OCL_HIDDEN ferry_status ocl_host_alloc(void *ctx, size_t nbytes, void **ptr);
OCL_HIDDEN void ocl_host_free(void *ctx, void *ptr);
OCL_HIDDEN ferry_status ocl_copy_from_host_async(void *ctx, int32_t device, void *dst,
                                                 size_t dst_offset,
                                                 const void *src, size_t nbytes);
OCL_HIDDEN ferry_status ocl_copy_to_host_async(void *ctx, int32_t device, void *dst,
                                               const void *src,
                                               size_t src_offset, size_t nbytes);
/* Markers on every queue of `d` other than `self` (none when the device has only its
 * default queue), so a command that waits for them comes after all the device's work.
 * *events is NULL or the caller's to release with ocl_markers_release. */
OCL_HIDDEN ferry_status ocl_markers_of_others(ocl_device *d, ocl_queue *self, cl_event **events,
                                              cl_uint *n);
OCL_HIDDEN void ocl_markers_release(cl_event *events, cl_uint n);
/* clFinish of every queue of `d`. */
OCL_HIDDEN ferry_status ocl_finish_all(ocl_device *d);

/* ocl_errors.c: "CL_OUT_OF_RESOURCES" for -5; "CL_UNKNOWN_ERROR" for a code not in
 * the OpenCL headers. Static storage. */
OCL_HIDDEN const char *ocl_error_name(cl_int err);
/* "CLBlastInvalidLeadDimA" for -1016, the CL name for codes CLBlast shares with OpenCL. */
OCL_HIDDEN const char *ocl_clblast_status_name(int status);
/* Reports "opencl:<dev>: <call> failed: CL_NAME (code)" with a status that fits the
 * error (allocation failures are FERRY_ERR_OUT_OF_MEMORY, the rest FERRY_ERR_BACKEND). */
OCL_HIDDEN ferry_status ocl_fail(int32_t dev, const char *call, cl_int err);

/* ocl_program.c: with the device lock held. Builds (or loads from the disk cache) the
 * device's program on first use and returns the kernel of a slot. */
OCL_HIDDEN ferry_status ocl_kernel_get(ocl_device *d, int slot, const char *name,
                                       cl_kernel *out);
/* With the device lock held: the kernel `name` of named-op family `family` (built with
 * -DFK_FAMILY_<family>=1, and -DFK_SEL_<dtype>=1 unless dtype is -1), building its
 * program on first use. */
OCL_HIDDEN ferry_status ocl_named_kernel(ocl_device *d, const char *family, int dtype,
                                         const char *name, ocl_kernel *out);
/* Enqueues a named-op kernel over n threads (1-D, rounded up to its work-group size;
 * grids above 2^30 are capped, so kernels loop grid-stride); lock held. */
OCL_HIDDEN ferry_status ocl_enqueue_kernel(ocl_device *d, const ocl_kernel *k, int64_t n);
/* Named-op tables, one per family (ocl_backend.c lists them). */
OCL_HIDDEN extern const ferry_named_entry ocl_named_reduce2[];
/* Releases the programs and kernels of a device. */
OCL_HIDDEN void ocl_program_release(ocl_device *d);

/* Named-kernel tables, one per op family (ocl_backend.c lists them). */
OCL_HIDDEN extern const ferry_named_entry ocl_named_index[];
OCL_HIDDEN extern const ferry_named_entry ocl_named_shape2[];

/* ocl_kernels.c */
/* Enqueues the kernel of `slot` over n threads (rounded up to its work-group size);
 * lock held. */
OCL_HIDDEN ferry_status ocl_enqueue(ocl_device *d, int slot, const char *name, int64_t n);
/* The length of each work-item's run in a launch over n items in work-groups of wg: on a
 * CPU device a run (at least min_run, a multiple of align), which the device compiler
 * vectorizes where it would not across work-items; 0 on GPUs, which take one item a
 * thread, grid-stride, coalesced. FERRY_OPENCL_DENSE=run or =grid forces one shape on
 * every device (tests run both on PoCL). */
OCL_HIDDEN int64_t ocl_run_length(const ocl_device *d, size_t wg, int64_t n, int64_t min_run,
                                  int64_t align);
/* Sets argument i of k; lock held. */
OCL_HIDDEN ferry_status ocl_arg(ocl_device *d, cl_kernel k, const char *name, cl_uint i,
                                size_t size, const void *value);
/* A scratch buffer of at least nbytes (lock held; valid until the lock is dropped). */
OCL_HIDDEN ferry_status ocl_scratch(ocl_device *d, size_t nbytes, cl_mem *out);
/* Drops a scratch buffer grown past what is worth keeping between ops (lock held). */
OCL_HIDDEN void ocl_scratch_trim(ocl_device *d);
/* Sorting n distinct u64 keys (but for copies of ~0) in the scratch, for other ops
 * (ocl_sort.c, fk_sort_prepare_raw): the u64 of scratch it needs, the keys' included,
 * and the sort of the keys at scr[0, n), leaving them at scr[*at, *at + n); lock held. */
OCL_HIDDEN int64_t ocl_sort_keys_words(const ocl_device *d, int64_t n);
OCL_HIDDEN ferry_status ocl_sort_keys(ocl_device *d, cl_mem scr, int64_t n, int64_t *at);
/* Refuses float64 on a device without cl_khr_fp64, naming the device. */
OCL_HIDDEN ferry_status ocl_check_fp64(const ocl_device *d, ferry_dtype dt);
/* Strided copy of n-d elements of one width between two buffers (lock held). */
OCL_HIDDEN ferry_status ocl_copy_elements(ocl_device *d, size_t elsize, int ndim,
                                          const int64_t *shape, cl_mem dst, int64_t dst_off,
                                          const int64_t *dst_strides, cl_mem src,
                                          int64_t src_off, const int64_t *src_strides);
/* Cast of a dense run of n elements (lock held). */
OCL_HIDDEN ferry_status ocl_cast_dense(ocl_device *d, ferry_dtype to, cl_mem dst, int64_t dst_off,
                                       ferry_dtype from, cl_mem src, int64_t src_off,
                                       int64_t n);
/* The cast entry's work with the lock already held (dtypes differ). */
OCL_HIDDEN ferry_status ocl_cast_held(ocl_device *d, const ferry_kernel_tensor *out,
                                      const ferry_kernel_tensor *in);

OCL_HIDDEN ferry_status ocl_fill(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                 const void *value);
OCL_HIDDEN ferry_status ocl_cast(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                 const ferry_kernel_tensor *in);
OCL_HIDDEN ferry_status ocl_copy_strided(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                         const ferry_kernel_tensor *in);
OCL_HIDDEN ferry_status ocl_unary(void *ctx, int32_t device, ferry_unary_op op,
                                  const ferry_kernel_tensor *out, const ferry_kernel_tensor *in);
OCL_HIDDEN ferry_status ocl_binary(void *ctx, int32_t device, ferry_binary_op op,
                                   const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                   const ferry_kernel_tensor *b);
OCL_HIDDEN ferry_status ocl_binary_scalar(void *ctx, int32_t device, ferry_binary_op op,
                                          const ferry_kernel_tensor *out,
                                          const ferry_kernel_tensor *a,
                                          const ferry_kernel_scalar *b);
OCL_HIDDEN ferry_status ocl_reduce(void *ctx, int32_t device, ferry_reduce_op op,
                                   const ferry_kernel_tensor *out, const ferry_kernel_tensor *in);

/* ocl_matmul.c */
OCL_HIDDEN ferry_status ocl_matmul(void *ctx, int32_t device, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);
/* Forgets CLBlast's compiled kernels (before contexts go). */
OCL_HIDDEN void ocl_matmul_shutdown(void);
/* A function of libclblast, to find the library it lives in. */
OCL_HIDDEN void *ocl_clblast_symbol(void);

/* The embedded kernel source (generated at build time from backends/kernels). */
/* Named-op tables by family (ocl_backend.c lists them). */
OCL_HIDDEN extern const ferry_named_entry ocl_named_random[];

OCL_HIDDEN extern const char ocl_kernel_source[];
OCL_HIDDEN extern const size_t ocl_kernel_source_len;

#endif /* FERRY_OCL_INTERNAL_H */

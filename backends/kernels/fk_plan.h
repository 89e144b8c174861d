/* Host-side launch planning shared by the OpenCL and CUDA backends: checks the core's
 * ferry_kernel_tensor descriptors against each kernel entry's contract and turns them into
 * the launch structs of ferry_kernels.h. Plain C; each plugin compiles fk_plan.c in, hidden. */
#ifndef FERRY_FK_PLAN_H
#define FERRY_FK_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry/backend.h>
#include <ferry/dtype_info.h>

#include "ferry_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The plugins export only their entry; this keeps the planner out of the dynamic symbol
 * table even where a plugin's compiler flags forget -fvisibility=hidden. */
#define FK_PLAN_HIDDEN __attribute__((visibility("hidden")))

/* Who is planning, so that a refusal reads "cuda:0: ..." or "opencl:1: ..." and goes
 * through the core's error service like the backend's own messages. */
typedef struct fk_plan_ctx {
    const ferry_host_api *host;
    const char *backend; /* "opencl", "cuda" */
    int32_t device;
} fk_plan_ctx;

/* ---- dtypes --------------------------------------------------------------------------- */

/* Kernel name suffixes in ferry_dtype order ("f32" for FERRY_FLOAT32), as the kernels'
 * dtype table spells them: the SDK's (ferry/dtype_info.h). */
#define fk_dtype_sfx (ferry_dtype_info_suffixes())
/* "float32"; the plugins do not link libferry's ferry_dtype_name(). */
FK_PLAN_HIDDEN const char *fk_dtype_name(ferry_dtype dt);
/* Bytes per element; 0 for a value that is no dtype. */
FK_PLAN_HIDDEN size_t fk_dtype_size(ferry_dtype dt);
/* log2 of an element size of 1, 2, 4 or 8 bytes: the fill and copy kernels' index. */
FK_PLAN_HIDDEN int fk_width_log2(size_t size);
FK_PLAN_HIDDEN bool fk_dtype_is_float(ferry_dtype dt);
/* FERRY_ERR_UNSUPPORTED for a value that is no dtype. */
FK_PLAN_HIDDEN ferry_status fk_plan_dtype(const fk_plan_ctx *c, ferry_dtype dt);

/* ---- elementwise ---------------------------------------------------------------------- */

/* Geometry of up to three operands of one shape (ops[0] is the output): extent-1 dims
 * dropped, a dim merged into its inner neighbour when every operand steps over both as one
 * run, FK_CONTIG when what remains is one dense run in every operand, FK_INDEX32 below
 * 2^31 elements. FERRY_ERR_UNSUPPORTED when a byte offset is not a whole number of
 * elements or more than FK_MAX_DIMS dims remain (the core then runs the op on the cpu). */
FK_PLAN_HIDDEN ferry_status fk_plan_geom(const fk_plan_ctx *c, fk_geom *g, int nops,
                                         const ferry_kernel_tensor *const *ops);
/* The geometry of n dense elements at element offsets off0 (output) and off1. */
FK_PLAN_HIDDEN void fk_plan_dense(fk_geom *g, int64_t n, int64_t off0, int64_t off1);
/* Whether nbytes from a and from b share a byte of one buffer. */
FK_PLAN_HIDDEN bool fk_plan_overlap(const ferry_kernel_tensor *a, const ferry_kernel_tensor *b,
                                    size_t nbytes);

/* The entry contracts of backend.h, checked before any geometry is built; a backend may
 * add its own refusals (float64 on an OpenCL device without it) between the two. */
FK_PLAN_HIDDEN ferry_status fk_plan_check_copy(const fk_plan_ctx *c,
                                               const ferry_kernel_tensor *out,
                                               const ferry_kernel_tensor *in);
FK_PLAN_HIDDEN ferry_status fk_plan_check_cast(const fk_plan_ctx *c,
                                               const ferry_kernel_tensor *out,
                                               const ferry_kernel_tensor *in);
FK_PLAN_HIDDEN ferry_status fk_plan_check_unary(const fk_plan_ctx *c, ferry_unary_op op,
                                                const ferry_kernel_tensor *out,
                                                const ferry_kernel_tensor *in);
/* *compare is set for EQ .. GE, whose kernels are ferry_compare_<dtype>. */
FK_PLAN_HIDDEN ferry_status fk_plan_check_binary(const fk_plan_ctx *c, ferry_binary_op op,
                                                 const ferry_kernel_tensor *out,
                                                 const ferry_kernel_tensor *a,
                                                 const ferry_kernel_tensor *b, bool *compare);

/* binary_scalar: the contract of `binary` with b's dtype, and the kernels' by-value
 * argument (ferry_binary_scalar_<dtype>, ferry_compare_scalar_<dtype>): the element in
 * its value type (float for float16 and bfloat16), in arg, *arg_size bytes. */
FK_PLAN_HIDDEN ferry_status fk_plan_check_binary_scalar(const fk_plan_ctx *c, ferry_binary_op op,
                                                        const ferry_kernel_tensor *out,
                                                        const ferry_kernel_tensor *a,
                                                        const ferry_kernel_scalar *b,
                                                        bool *compare, unsigned char arg[8],
                                                        size_t *arg_size);

/* ---- reduce --------------------------------------------------------------------------- */

/* The kernel family that runs every pass of a reduction: ferry_sum_<dtype> (also mean),
 * ferry_maxmin_<dtype>, or ferry_argmax_<dtype> then ferry_argmax_part_<dtype>. */
enum { FK_PLAN_SUM = 0, FK_PLAN_MAXMIN = 1, FK_PLAN_ARGMAX = 2 };

/* A reduction as a sequence of passes. The first pass reads the input tensor; every pass
 * but the last writes partials into scratch (two value and two index regions, used in
 * turn) and the next pass reduces those; the last writes `out`. A backend launches the
 * kernel of `family` for `kdtype` over `threads` threads with `g`, then calls
 * fk_plan_reduce_next() until a pass with `final` set has run. */
typedef struct fk_reduce_plan {
    fk_rgeom g;           /* the current pass */
    int family;           /* FK_PLAN_SUM, FK_PLAN_MAXMIN or FK_PLAN_ARGMAX */
    int pass;             /* 0 for the first pass */
    bool final;           /* the current pass writes out (else scratch) */
    bool empty;           /* out has no element: launch nothing */
    ferry_dtype kdtype;   /* what the current pass reads: in's dtype, then acc_dtype */
    ferry_dtype acc_dtype;
    bool wg;              /* the current pass is ferry_sum_wg_<kdtype>: work-groups of
                           * g.lanes threads, one per output and chunk */
    int64_t threads;      /* threads of the current pass (one per output and chunk, times
                           * g.lanes for a work-group pass; per FK_RED_COLS_V outputs and
                           * chunk with FK_RED_COLS) */
    size_t scratch_bytes; /* scratch the passes share; 0 when one pass does it all */

    /* The planner's own state. */
    int64_t target;       /* threads a pass aims for */
    int lanes;            /* work-group size for sums over one dim; 0: one thread each */
    int64_t cur_red;      /* elements each output reduces in the current pass */
    int64_t out_off;      /* out's element offset */
    int64_t nred;         /* elements each output reduces in all */
    int64_t kout_stride[FK_MAX_DIMS];
    size_t region;        /* bytes of each of the four scratch regions */
    int out_kind;
    ferry_reduce_op op;
} fk_reduce_plan;

/* Checks the reduce contract of backend.h and plans the first pass; target_threads is how
 * many threads a pass should keep busy (the device's width). lanes > 1 (a power of two at
 * most FK_WG_MAX: GPUs) sends sums over one dim that is not the outer one of a dense pair
 * to ferry_sum_wg_*, whose neighbouring threads read neighbouring elements; lanes 0 keeps
 * one thread per chunk, each reading its own run (CPUs). A reduction over the outer dim,
 * where the kept dim is the denser one, numbers threads output fastest (FK_RED_OUT_FAST)
 * on either; with lanes 0, a float sum down one dense kept dim also gets FK_RED_COLS
 * (ferry_sum_cols_*, FK_RED_COLS_V outputs per thread). FERRY_ERR_UNSUPPORTED for an
 * empty reduced dim (the core fills 0 or NaN itself) or more than FK_MAX_DIMS kept or
 * reduced dims after merging. */
FK_PLAN_HIDDEN ferry_status fk_plan_reduce(const fk_plan_ctx *c, ferry_reduce_op op,
                                           const ferry_kernel_tensor *out,
                                           const ferry_kernel_tensor *in,
                                           int64_t target_threads, int lanes,
                                           fk_reduce_plan *p);
/* Moves to the pass after a non-final one: it reads what that one wrote. */
FK_PLAN_HIDDEN void fk_plan_reduce_next(fk_reduce_plan *p);

/* ---- matmul --------------------------------------------------------------------------- */

/* Checks the matmul contract (a [B, M, K] x b [B, K, N] -> out [B, M, N], one known dtype)
 * and fills g with element offsets and strides; a batch stride is 0 when B is 1.
 * FERRY_ERR_UNSUPPORTED when an offset is not a whole number of elements. */
FK_PLAN_HIDDEN ferry_status fk_plan_matmul(const fk_plan_ctx *c, const ferry_kernel_tensor *out,
                                           const ferry_kernel_tensor *a,
                                           const ferry_kernel_tensor *b, fk_mgeom *g);

/* ---- the ELEM2 family (ferry/ops/elementwise2.h) --------------------------------------- */

/* One launch of "ferry.unary2", "ferry.binary2" or "ferry.where", as both backends make it:
 * kernel `name` of ferry_elementwise2.h, in the OpenCL program of `family` for `dtype`
 * ("ELEM2" by dtype; "WHERE", by element width, has dtype -1). Its arguments, in order:
 * bufs[0 .. nbufs-1], g, then op and, when nparams is 2, p0 and p1 (param_size bytes
 * each: pf for a float kernel, pd for float64) for unary2 and binary2; b_buffer and gb
 * for where. g.numel 0: launch nothing. */
typedef struct fk_elem2_launch {
    char name[48];
    const char *family;
    int dtype;
    bool to_bool;   /* ferry_un2b_* or ferry_bin2b_* (predicates, logical ops) */
    int width_log2; /* where: fk_width_log2 of the element size */
    int nbufs;
    void *bufs[3];
    fk_geom g;
    fk_i32 op;
    int nparams;
    size_t param_size;
    float pf[2];
    double pd[2];
    void *b_buffer;
    fk_geom gb;
} fk_elem2_launch;

/* The three ELEM2 entries. FERRY_ERR_UNSUPPORTED, with no message, for a call whose
 * tensors, dtypes or op the kernels do not take (the core then runs it on the cpu); the
 * fk_plan_geom refusals otherwise. A backend adds its own (float64 on an OpenCL device
 * without it) on l->dtype. */
FK_PLAN_HIDDEN ferry_status fk_plan_unary2(const fk_plan_ctx *c, const ferry_op_args *args,
                                           fk_elem2_launch *l);
FK_PLAN_HIDDEN ferry_status fk_plan_binary2(const fk_plan_ctx *c, const ferry_op_args *args,
                                            fk_elem2_launch *l);
FK_PLAN_HIDDEN ferry_status fk_plan_where(const fk_plan_ctx *c, const ferry_op_args *args,
                                          fk_elem2_launch *l);

/* ---- named-op families -------------------------------------------------------------------
 * Their launch structs live in the family headers (ferry_<family>.h), which define the
 * kernels too when nvcc compiles them, so here they are only named. */
struct fk_sgeom;
struct fk_sort_launch;

/* "ferry.sort" as the launches of ferry_sort_keys, one ferry_sort_step per (kk, j) of the
 * bitonic network over P (p->P) and ferry_sort_out; "ferry.sort_scatter" (scatter true)
 * as ferry_sort_zero then ferry_sort_scatter. *nothing when no launch is needed.
 * FERRY_ERR_UNSUPPORTED when the tensors break the op's contract. */
FK_PLAN_HIDDEN ferry_status fk_plan_sort(const fk_plan_ctx *c, const ferry_op_args *a,
                                         bool scatter, struct fk_sort_launch *p, bool *nothing);


/* The tensors of "ferry.masked_select" (scatter false) or "ferry.masked_scatter" as one
 * launch of ferry_masked_select_w<width> / ferry_masked_scatter_w<width> over g.numel
 * threads; *width is the element size in bytes. FERRY_ERR_UNSUPPORTED when they break
 * the op's contract or more than FK_MAX_DIMS dims remain after merging. */
FK_PLAN_HIDDEN ferry_status fk_plan_select(const fk_plan_ctx *c, const ferry_op_args *a,
                                           bool scatter, struct fk_sgeom *g, size_t *width);
/* "ferry.nonzero" as one launch of ferry_nonzero_rows; FERRY_ERR_UNSUPPORTED above
 * FK_MAX_DIMS dims or for an output that is not dense. */
FK_PLAN_HIDDEN ferry_status fk_plan_nonzero(const fk_plan_ctx *c, const ferry_op_args *a,
                                            struct fk_sgeom *g);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_FK_PLAN_H */

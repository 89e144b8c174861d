/* What the op families (core/ops/ files) share: operands as kernels see them, the launch
 * with its CPU fallback, promotion, `_out` checks, broadcasting, and the scope that
 * backward formulas use. Only files under core/ops include this. */
#ifndef FERRY_OPS_INTERNAL_H
#define FERRY_OPS_INTERNAL_H

#include "internal.h"

/* A tensor as one kernel call sees it: its memory, with geometry the dispatcher chose
 * (broadcast strides of 0, collapsed dims, reduced dims of extent 1). */
typedef struct operand {
    const ferry_tensor *t;
    int32_t ndim;
    int64_t shape[FERRY_MAX_DIMS];
    int64_t strides[FERRY_MAX_DIMS];
} operand;

typedef enum kernel_kind { K_UNARY, K_BINARY, K_REDUCE, K_MATMUL } kernel_kind;

void ferry__operand_of(operand *o, const ferry_tensor *t);
void ferry__describe(const operand *o, const ferry_tensor *mem, ferry_kernel_tensor *k);

/* Runs one built-in kernel on out's device, or on the CPU backend through staging. */
ferry_status ferry__launch(kernel_kind kind, int subop, operand *out, operand *a, operand *b);

/* `a op b` for a scalar b by value on out's device (backend.h, binary_scalar); a and out
 * have (ndim, shape). FERRY_ERR_UNSUPPORTED, with nothing run, when the backend has no
 * such entry: the caller then passes b as a 0-d tensor to ferry__launch. */
ferry_status ferry__launch_binary_scalar(ferry_binary_op op, const ferry_tensor *out,
                                         const ferry_tensor *a, const ferry_kernel_scalar *b,
                                         int ndim, const int64_t *shape);

/* Runs the named op `name` (backend.h, ferry_op_args) on the device of ops[0]: the
 * backend's kernel from get_kernel, else the cpu backend's through staging. ops[0 ..
 * nout) are written; when `outputs_read` they are also read (accumulating ops), so their
 * current contents travel to the fallback too. */
ferry_status ferry__launch_named(const char *name, operand **ops, int n, int nout,
                                 bool outputs_read, const void *params, size_t params_size);

/* The C names of built-in subops ("add", "exp", "sum"), for messages. */
const char *ferry__binary_name(int op);
const char *ferry__unary_name(int op);
const char *ferry__reduce_name(int op);

/* Merges dims contiguous in every operand and drops size-1 dims. */
void ferry__collapse(operand **ops, int nops);

/* 0 bool, 1 integer, 2 floating: PyTorch's promotion categories. */
int ferry__category(ferry_dtype d);
ferry_dtype ferry__promote_operands(const ferry_tensor *a, const ferry_tensor *b);
void ferry__scalar_element(ferry_dtype dt, const ferry_scalar *v, void *out);
ferry_dtype ferry__promote_scalar(ferry_dtype t, const ferry_scalar *v);
/* v as a 0-d tensor of dt on t's device (NULL with the error set). */
ferry_tensor *ferry__scalar_tensor(const ferry_tensor *t, ferry_dtype dt, const ferry_scalar *v);
ferry_scalar ferry__scalar_of_double(double v);
bool ferry__can_cast(ferry_dtype from, ferry_dtype to);
const char *ferry__torch_type_name(ferry_dtype d);

/* A binary op's operands checked (live tensors on one device, or a valid scalar) and
 * their compute dtype as PyTorch promotes them; b is ignored when scalar is given. */
ferry_status ferry__binary_operands(const char *fn, const ferry_tensor *a, const ferry_tensor *b,
                                    const ferry_scalar *scalar, ferry_dtype *compute);
ferry_status ferry__check_out(const char *fn, const ferry_tensor *out, const ferry_tensor *ref,
                              int ndim, const int64_t *shape, ferry_dtype result);
bool ferry__overlaps(const ferry_tensor *out, const ferry_tensor *in);
ferry_tensor *ferry__as_dtype(ferry_tensor *t, ferry_dtype dtype);
ferry_tensor *ferry__new_like(const ferry_tensor *ref, ferry_dtype dtype, int ndim,
                              const int64_t *shape);
ferry_status ferry__deliver(ferry_tensor *out, ferry_tensor *dst, ferry_status st,
                            ferry_tensor **result);

ferry_status ferry__broadcast_shape(const ferry_tensor *a, const ferry_tensor *b, int *ndim,
                                    int64_t *shape);
void ferry__broadcast_operand(operand *o, const ferry_tensor *t, int ndim, const int64_t *shape);

/* ---- autograd plumbing ---- */

/* Temporaries of a backward formula, released together; after the first failure the
 * following steps are skipped, so the first error's message is the one reported. */
typedef struct scope {
    ferry_tensor *t[24];
    int n;
    bool failed;
} scope;

ferry_tensor *ferry__scope_put(scope *s, ferry_tensor *r);
ferry_tensor *ferry__saved_in(scope *s, ferry_node *n, int i);
ferry_status ferry__scope_end(scope *s, ferry_tensor **grads, int n);
/* On a recording failure the op fails: a result must not silently lose its gradient. */
ferry_status ferry__attach_or_fail(ferry_node *n, ferry_status st, ferry_tensor **result);

/* One step of a formula: skipped once something failed. */
#define STEP(s, expr) ((s)->failed ? NULL : ferry__scope_put((s), (expr)))

/* A formula's result, outliving its scope. */
static inline ferry_tensor *keep(ferry_tensor *t)
{
    return ferry_tensor_retain(t);
}

/* Runs a forward with recording paused (conversions inside an op must not record
 * nodes of their own), then hands the result to `record` when grad is wanted. */
static inline bool pause_grad(void)
{
    return ferry_set_grad_enabled(false);
}

static inline void resume_grad(bool prev)
{
    ferry_set_grad_enabled(prev);
}

#endif /* FERRY_OPS_INTERNAL_H */

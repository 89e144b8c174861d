/* The conformance suite's shared harness: the one device list, host-side values held as
 * doubles, deterministic inputs built in every memory layout, PyTorch's promotion rules
 * restated independently of the core, and a failure log naming op, dtype, case, device. */
#ifndef FERRY_CONFORMANCE_H
#define FERRY_CONFORMANCE_H

#include <math.h>
#include <stdbool.h>

#include "test_util.h"

#define CONF_MAX_DIMS 8

/* ---- devices ----------------------------------------------------------------------- */

/* The devices the suite runs on, chosen once per process: those FERRY_TEST_DEVICES lists
 * (comma-separated device strings, such as "cpu,myaccel:1"), else every device
 * ferry_devices() reports, plus device 0 of each type FERRY_TEST_REQUIRE or
 * FERRY_TEST_REQUIRE_BUILT names, so that a required backend without a device fails.
 * Each test runs its whole table once per device; a new backend needs no entry here. */
size_t conf_ndevices(void);
const char *conf_device(size_t i);

/* True when the device exists. Otherwise prints why (once per device) and returns false,
 * or records a failure when FERRY_TEST_REQUIRE names its backend. */
bool conf_device_usable(const char *device);

#define CONF_FOR_EACH_DEVICE(dev)                                                           \
    for (size_t conf_di_ = 0; conf_di_ < conf_ndevices(); conf_di_++)                       \
        for (const char *dev = conf_device(conf_di_); dev && conf_device_usable(dev); dev = NULL)

/* Whether the device runs ferry's own kernels (opencl, cuda): no op may fall back to the
 * cpu there. sim and third-party test plugins have none and always fall back. */
static inline bool conf_has_own_kernels(const char *device)
{
    return strncmp(device, "opencl", 6) == 0 || strncmp(device, "cuda", 4) == 0;
}


static inline bool conf_is_cpu(const char *device)
{
    return strcmp(device, "cpu") == 0;
}

/* ---- failures ---------------------------------------------------------------------- */

/* Where a check runs; every failure message starts with these four. */
typedef struct conf_where {
    const char *op;
    const char *dtype;
    const char *kase;
    const char *device;
} conf_where;

/* The device's count of ops run through the CPU fallback, all kinds (0 if unknown). */
uint64_t conf_fallbacks(const char *device);
/* Fails w when ops on w->device fell back since `before`, on devices with own kernels. */
void conf_check_no_fallback(const conf_where *w, uint64_t before);

/* Records a failure and carries on, so one run lists every broken combination. */
void conf_fail(const conf_where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records an unexpected failure of `call`, with the status and message it left. */
void conf_fail_call(const conf_where *w, const char *call);
/* Ends a test: fails it when anything was recorded since the previous call. */
void conf_finish(void);

/* `failed` (the call's outcome) must be true, with status s1 or s2 (pass s1 twice for
 * one) and a message containing `needle`. */
void conf_expect_error(const conf_where *w, const char *call, bool failed, ferry_status s1,
                       ferry_status s2, const char *needle);

/* ---- dtypes and promotion ---------------------------------------------------------- */

extern const ferry_dtype conf_all_dtypes[FERRY_NUM_DTYPES];

const char *conf_dtype_name(ferry_dtype dt);
bool conf_is_float(ferry_dtype dt);
/* Integers other than bool. */
bool conf_is_int(ferry_dtype dt);
size_t conf_dtype_size(ferry_dtype dt);

/* torch.promote_types for the ten dtypes. */
ferry_dtype conf_promote(ferry_dtype a, ferry_dtype b);
/* A Python scalar's part in promotion: the double counts as an int when integral. */
bool conf_scalar_is_int(double s);
ferry_dtype conf_promote_scalar(ferry_dtype t, double s);

/* v, an integer, wrapped to the dtype as two's-complement storage does (bool: != 0). */
int64_t conf_wrap(ferry_dtype dt, int64_t v);
/* The nearest value the dtype holds: integers wrap (v must be integral), floats round to
 * nearest even straight from the double (kernels that round through float32 differ from
 * that far less than the tolerances allow). */
double conf_round(ferry_dtype dt, double v);

/* Another dtype an _out may have for a result of dtype rt (PyTorch's can_cast): integers
 * and bool widen to int64, int64 and floats go to float64, float64 to float32. */
ferry_dtype conf_cast_out_dtype(ferry_dtype rt);
/* For a result of dtype rt written into an out of another dtype: the values rt holds
 * (ref rounded to rt) into ref_rt, and rt's own tolerance plus `extra` (NULL: none) into
 * tol, for conf_compare on the out. */
void conf_cast_reference(ferry_dtype rt, const double *ref, const double *extra, int64_t n,
                         double *ref_rt, double *tol);

/* Relative and absolute tolerances for one rounding into dt (0 for exact dtypes). */
double conf_rtol(ferry_dtype dt);
double conf_atol(ferry_dtype dt);
/* Unit roundoff of the type a reduction or matmul over dt accumulates in. */
double conf_acc_eps(ferry_dtype dt);

/* ---- host values ------------------------------------------------------------------- */

/* A tensor's logical elements, row-major, as doubles that dtype holds exactly. */
typedef struct conf_array {
    ferry_dtype dtype;
    int ndim;
    int64_t shape[CONF_MAX_DIMS];
    int64_t numel;
    double *v;
} conf_array;

void conf_array_init(conf_array *a, ferry_dtype dt, int ndim, const int64_t *shape);
void conf_array_free(conf_array *a);
/* Element bytes of the values, row-major; free() the result. */
void *conf_encode(const conf_array *a);
void conf_decode(ferry_dtype dt, const void *bytes, int64_t n, double *out);
/* Index into `in` of element `flat` of a broadcast result of shape (ndim, shape). */
int64_t conf_bcast_index(const conf_array *in, int ndim, const int64_t *shape, int64_t flat);
/* The broadcast shape of two shapes; false when they do not broadcast. */
bool conf_bcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                      int64_t *out);
int64_t conf_numel(int ndim, const int64_t *shape);
/* "(2, 3)", as ferry's messages write shapes. */
const char *conf_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* ---- deterministic inputs ---------------------------------------------------------- */

typedef struct conf_rng {
    uint64_t s;
} conf_rng;

/* Seeded from the names of what is being tested, so a failure reproduces alone. */
conf_rng conf_rng_seed(const char *op, const char *dtype, const char *kase, unsigned salt);
uint64_t conf_next(conf_rng *r);

/* The values an op's input may take. */
typedef struct conf_domain {
    double lo, hi;    /* floating values */
    int64_t ilo, ihi; /* integers; uint8 raises ilo to 0 */
    bool nan;         /* floating inputs hold a NaN now and then */
} conf_domain;

extern const conf_domain conf_default_domain;

/* One value of dt from the domain, exactly representable in dt. A quarter of the
 * floating values are multiples of 0.5, so equalities and ties occur in every dtype. */
double conf_gen(conf_rng *r, ferry_dtype dt, const conf_domain *d);

/* ---- layouts ------------------------------------------------------------------------ */

typedef enum conf_layout {
    CONF_CONTIGUOUS = 0,
    CONF_TRANSPOSED, /* ferry_transpose of the last two dims of a contiguous base */
    CONF_PERMUTED,   /* ferry_transpose of the first two: outer dims out of order */
    CONF_SLICED,     /* ferry_slice(last dim, 1, 2n+1, step 2) of a base with junk between */
    CONF_EXPANDED,   /* ferry_expand of `from` (stride 0 in broadcast dims) */
    CONF_NEGATIVE,   /* every stride negative: ferry_tensor_from_blob, so cpu only */
} conf_layout;

typedef struct conf_operand {
    int ndim;
    int64_t shape[CONF_MAX_DIMS];
    conf_layout layout;
    int from_ndim; /* CONF_EXPANDED: the shape expanded from */
    int64_t from[CONF_MAX_DIMS];
} conf_operand;

const char *conf_layout_name(conf_layout l);
/* Negative strides exist only over host memory (to() makes a contiguous copy), so that
 * layout runs on cpu alone; transposes and slices give the other devices their strides. */
bool conf_layout_runs_on(conf_layout l, const char *device);

/* The shape whose values conf_build takes: `from` for CONF_EXPANDED, else the shape. */
void conf_source_shape(const conf_operand *spec, int *ndim, int64_t *shape);

/* Builds spec on device from src (values for conf_source_shape's shape) and fills
 * `logical` with the elements the tensor must show, after checking that it reads them
 * back. NULL after recording a failure. */
ferry_tensor *conf_build(const conf_where *w, const conf_operand *spec, const conf_array *src,
                         const char *device, conf_array *logical);
/* conf_build of values drawn from the domain. */
ferry_tensor *conf_make(const conf_where *w, const conf_operand *spec, ferry_dtype dt,
                        const char *device, conf_rng *r, const conf_domain *d,
                        conf_array *logical);

/* ---- outputs ----------------------------------------------------------------------- */

/* A preallocated output: contiguous, or (strided) a step-2 slice of the last dim of a
 * base whose other elements hold a sentinel, so a stray write is seen. */
typedef struct conf_out {
    ferry_tensor *base;
    ferry_tensor *view;
    bool strided;
    double sentinel;
} conf_out;

bool conf_out_make(const conf_where *w, ferry_dtype dt, int ndim, const int64_t *shape,
                   const char *device, bool strided, conf_out *o);
/* Checks the sentinels between the view's elements; the view itself is read by the
 * caller with conf_read. */
void conf_out_check_gaps(const conf_where *w, const conf_out *o);
/* An output seen through ferry_transpose(base, 0, 1) of a contiguous base, so its outer
 * dims (a matmul's batch dims) do not fold into one stride; contiguous below 2 dims. */
bool conf_out_make_permuted(const conf_where *w, ferry_dtype dt, int ndim,
                            const int64_t *shape, const char *device, conf_out *o);
void conf_out_free(conf_out *o);

/* ---- results ------------------------------------------------------------------------ */

/* Reads a result after checking its dtype, shape and device (ON `device`, whichever
 * backend ran it); false after recording a failure. */
bool conf_read(const conf_where *w, ferry_tensor *t, ferry_dtype dt, int ndim,
               const int64_t *shape, const char *device, conf_array *got);

/* Compares got with reference values computed in double (not yet rounded to got's
 * dtype). extra_tol (NULL: none) widens the bound per element, for sums. NaN must meet
 * NaN; an infinity must meet the same infinity; integers and bool must match exactly.
 * Returns the number of mismatches (the first few are recorded). */
int conf_compare(const conf_where *w, const conf_array *got, const double *ref,
                 const double *extra_tol);

/* Writes a result through `write` into each kind of `_out` an op must accept (contiguous,
 * strided with its gaps checked, another dtype rt casts into, outer dims permuted when
 * ndim >= 3) and compares each with ref/tol, the expected values of dtype rt. */
typedef ferry_status (*conf_out_writer)(ferry_tensor *out, void *ctx);
void conf_check_out_forms(const conf_where *w, const char *call, ferry_dtype rt, int ndim,
                          const int64_t *shape, int64_t numel, const double *ref,
                          const double *tol, conf_out_writer write, void *ctx);

/* ---- groups ------------------------------------------------------------------------ */

/* One per test_<group>.c, each running its CMocka group; suite.c runs them by name.
 * Each returns the number of failed tests. */
int conf_group_ops(void);
int conf_group_elementwise2(void);
int conf_group_reduce(void);
int conf_group_matmul(void);
int conf_group_views(void);
int conf_group_errors(void);
int conf_group_casts(void);
int conf_group_grad(void);
int conf_group_random(void);
int conf_group_reduce2(void);
int conf_group_sort(void);
int conf_group_shape(void);
int conf_group_shape2(void);
int conf_group_index(void);
int conf_group_index_adv(void);
int conf_group_select(void);
int conf_group_reflected(void);

#endif /* FERRY_CONFORMANCE_H */

/* ferry_tensor_from_blob with fuzzed dtype, ndim, shape and strides, then ops on what
 * it accepts: contiguous, reshape, add, sum, matmul, repr, and to() through sim:0 (and
 * opencl:0 for some inputs) and back. from_blob cannot know the extent of the caller's
 * memory, so ops run only when the fuzzed layout stays inside the buffer this harness
 * owns. Invariants: a shape whose element count or byte size does not fit is refused
 * with a message; an accepted tensor has the given shape and strides; every op's result
 * has numel equal to its shape's product and the values the layout addresses (computed
 * here independently); a copy through another device comes back identical; everything
 * released leaves every device's live bytes where they were, and the deleter runs once. */
#include <math.h>

#include <ferry/half.h>

#include "fuzz_util.h"

#define BUF_ELEMS 4096
#define BASE_ELEM 2048 /* data points here; negative strides reach below it */
#define MAX_OPS_NUMEL 4096
#define MAX_REPR_NUMEL (1 << 20)

static fuzz_devices devices;
static int deleter_calls;

static void count_delete(void *data, void *ctx)
{
    (void)data;
    (void)ctx;
    deleter_calls++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_devices_init(&devices);
    return 0;
}

/* Small integers, exact in every dtype (bool: 0 and 1), so sums and products of a few
 * thousand of them are exact in float32, float64 and the integer types. */
static double value_at(int64_t elem, ferry_dtype dt)
{
    if (dt == FERRY_BOOL)
        return (double)((elem * 7 + 3) % 2);
    if (dt == FERRY_UINT8)
        return (double)((elem * 5 + 1) % 4);
    return (double)((elem * 5 + 1) % 7) - 3.0;
}

static void store(void *buf, int64_t i, ferry_dtype dt, double v)
{
    switch (dt) {
    case FERRY_BOOL: ((uint8_t *)buf)[i] = v != 0; break;
    case FERRY_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case FERRY_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case FERRY_INT16: ((int16_t *)buf)[i] = (int16_t)v; break;
    case FERRY_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case FERRY_INT64: ((int64_t *)buf)[i] = (int64_t)v; break;
    case FERRY_FLOAT16: ((uint16_t *)buf)[i] = ferry_f32_to_f16((float)v); break;
    case FERRY_BFLOAT16: ((uint16_t *)buf)[i] = ferry_f32_to_bf16((float)v); break;
    case FERRY_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case FERRY_FLOAT64: ((double *)buf)[i] = v; break;
    }
}

static double load(const void *buf, int64_t i, ferry_dtype dt)
{
    switch (dt) {
    case FERRY_BOOL: return ((const uint8_t *)buf)[i] != 0;
    case FERRY_UINT8: return ((const uint8_t *)buf)[i];
    case FERRY_INT8: return ((const int8_t *)buf)[i];
    case FERRY_INT16: return ((const int16_t *)buf)[i];
    case FERRY_INT32: return ((const int32_t *)buf)[i];
    case FERRY_INT64: return (double)((const int64_t *)buf)[i];
    case FERRY_FLOAT16: return ferry_f16_to_f32(((const uint16_t *)buf)[i]);
    case FERRY_BFLOAT16: return ferry_bf16_to_f32(((const uint16_t *)buf)[i]);
    case FERRY_FLOAT32: return ((const float *)buf)[i];
    case FERRY_FLOAT64: return ((const double *)buf)[i];
    }
    return NAN;
}

/* Reads a result back as float64 values in row-major order (numel of them). */
static double *read_values(ferry_tensor *t, const char *what)
{
    ferry_tensor *c = ferry_tensor_cpu(t);
    FUZZ_CHECK(c, "%s: to cpu", what);
    ferry_tensor *d = ferry_tensor_to_dtype(c, FERRY_FLOAT64);
    FUZZ_CHECK(d, "%s: to float64", what);
    ferry_tensor *e = ferry_tensor_contiguous(d);
    FUZZ_CHECK(e, "%s: contiguous", what);
    int64_t n = ferry_tensor_numel(e);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    FUZZ_CHECK(ferry_tensor_copy_to_host(e, v, (size_t)n * sizeof *v) == FERRY_OK, "%s: copy",
               what);
    ferry_tensor_release(e);
    ferry_tensor_release(d);
    ferry_tensor_release(c);
    return v;
}

static void check_shape_is(ferry_tensor *t, int nd, const int64_t *shape, const char *what)
{
    fuzz_check_tensor(t, what);
    FUZZ_CHECK(ferry_tensor_ndim(t) == nd, "%s: ndim %d, expected %d", what, ferry_tensor_ndim(t),
               nd);
    for (int i = 0; i < nd; i++)
        FUZZ_CHECK(ferry_tensor_shape(t)[i] == shape[i], "%s: shape[%d] is %lld, expected %lld",
                   what, i, (long long)ferry_tensor_shape(t)[i], (long long)shape[i]);
}

/* Sends t to `device` and back, and checks the round trip changed nothing. */
static void round_trip(ferry_tensor *t, const double *want, const char *device)
{
    ferry_tensor *u = ferry_tensor_to(t, device);
    FUZZ_CHECK(u, "to(%s)", device);
    check_shape_is(u, ferry_tensor_ndim(t), ferry_tensor_shape(t), device);
    ferry_tensor *back = ferry_tensor_to(u, "cpu");
    FUZZ_CHECK(back, "to(%s) and back", device);
    double *got = read_values(back, device);
    for (int64_t i = 0; i < ferry_tensor_numel(t); i++)
        FUZZ_CHECK(got[i] == want[i], "through %s: element %lld is %g, expected %g", device,
                   (long long)i, got[i], want[i]);
    free(got);
    ferry_tensor_release(back);
    ferry_tensor_release(u);
}

static void run_ops(ferry_tensor *t, ferry_dtype dt, int nd, const int64_t *shape,
                    const double *want, int64_t numel, uint8_t choice)
{
    /* contiguous and reshape(-1) keep every value in order. */
    ferry_tensor *c = ferry_tensor_contiguous(t);
    FUZZ_CHECK(c, "contiguous");
    check_shape_is(c, nd, shape, "contiguous");
    FUZZ_CHECK(ferry_tensor_is_contiguous(c), "contiguous() is not contiguous");
    double *got = read_values(c, "contiguous");
    for (int64_t i = 0; i < numel; i++)
        FUZZ_CHECK(got[i] == want[i], "contiguous: element %lld is %g, expected %g", (long long)i,
                   got[i], want[i]);
    free(got);
    int64_t flat = -1;
    ferry_tensor *r = ferry_reshape(t, 1, &flat);
    FUZZ_CHECK(r, "reshape(-1)");
    check_shape_is(r, 1, &numel, "reshape(-1)");
    got = read_values(r, "reshape");
    for (int64_t i = 0; i < numel; i++)
        FUZZ_CHECK(got[i] == want[i], "reshape: element %lld differs", (long long)i);
    free(got);
    ferry_tensor_release(r);
    ferry_tensor_release(c);

    /* add: t + t elementwise (bool + bool is logical or, as PyTorch). */
    ferry_tensor *s = ferry_add(t, t);
    FUZZ_CHECK(s, "add");
    check_shape_is(s, nd, shape, "add");
    got = read_values(s, "add");
    for (int64_t i = 0; i < numel; i++) {
        double e = dt == FERRY_BOOL ? want[i] : 2 * want[i];
        FUZZ_CHECK(got[i] == e, "add: element %lld is %g, expected %g", (long long)i, got[i], e);
    }
    free(got);
    ferry_tensor_release(s);

    /* sum of everything: exact for these values except in 16-bit floats, whose result
     * is the exact sum rounded once. */
    ferry_tensor *sum = ferry_sum(t, 0, NULL, false);
    FUZZ_CHECK(sum, "sum");
    check_shape_is(sum, 0, NULL, "sum");
    got = read_values(sum, "sum");
    double exact = 0;
    for (int64_t i = 0; i < numel; i++)
        exact += want[i];
    double tol = dt == FERRY_FLOAT16 ? fabs(exact) / 1024 : dt == FERRY_BFLOAT16 ? fabs(exact) / 128 : 0;
    FUZZ_CHECK(fabs(got[0] - exact) <= tol, "sum is %g, expected %g", got[0], exact);
    free(got);
    ferry_tensor_release(sum);

    /* matmul of t with its own transpose: (.., m, k) x (.., k, m); a dot product in 1-D. */
    if (nd >= 1 && dt != FERRY_BOOL) {
        int64_t mshape[FERRY_MAX_DIMS];
        int mnd = nd >= 2 ? nd : 0;
        for (int i = 0; i + 2 < nd; i++)
            mshape[i] = shape[i];
        if (nd >= 2)
            mshape[nd - 2] = mshape[nd - 1] = shape[nd - 2];
        /* An empty inner dim makes a few input elements into many result ones: a result
         * too big to count must be refused, one merely too big for this harness skipped. */
        int64_t mnumel = 0;
        bool countable = fuzz_numel(mnd, mshape, &mnumel) &&
                         (__int128)mnumel * (__int128)ferry_dtype_size(dt) <= INT64_MAX;
        ferry_tensor *tt = nd >= 2 ? ferry_transpose(t, -1, -2) : ferry_tensor_retain(t);
        FUZZ_CHECK(tt, "transpose(-1, -2)");
        ferry_tensor *m = countable && mnumel > MAX_OPS_NUMEL ? NULL : ferry_matmul(t, tt);
        if (!countable) {
            FUZZ_CHECK(!m, "matmul accepted a result shape whose element count or byte size "
                       "does not fit in int64");
            FUZZ_CHECK_FAILED_CLEARLY("matmul");
        } else if (mnumel > MAX_OPS_NUMEL) {
            /* skipped */
        } else if (!m) {
            FUZZ_CHECK_FAILED_CLEARLY("matmul");
        } else {
            check_shape_is(m, mnd, mshape, "matmul");
            /* Values for the exact dtypes (the integer results wrap as C's do for int8
             * and int16 only past their range, which these sizes stay below). */
            if (dt == FERRY_FLOAT32 || dt == FERRY_FLOAT64 || dt == FERRY_INT32 ||
                dt == FERRY_INT64) {
                int64_t rows = nd >= 2 ? shape[nd - 2] : 1, k = shape[nd - 1];
                /* Only a non-empty t bounds rows x k (by numel): an empty batch dim lets
                 * rows and k be anything, and their product overflow. */
                int64_t batch = numel > 0 ? numel / (rows * k) : 0;
                got = read_values(m, "matmul");
                for (int64_t b = 0; b < batch; b++)
                    for (int64_t i = 0; i < rows; i++)
                        for (int64_t j = 0; j < rows; j++) {
                            double e = 0;
                            for (int64_t q = 0; q < k; q++)
                                e += want[(b * rows + i) * k + q] * want[(b * rows + j) * k + q];
                            double g = got[(b * rows + i) * rows + j];
                            FUZZ_CHECK(g == e, "matmul: [%lld, %lld, %lld] is %g, expected %g",
                                       (long long)b, (long long)i, (long long)j, g, e);
                        }
                free(got);
            }
            ferry_tensor_release(m);
        }
        ferry_tensor_release(tt);
    }

    double *vals = malloc((size_t)(numel ? numel : 1) * sizeof *vals);
    memcpy(vals, want, (size_t)numel * sizeof *vals);
    if (devices.sim)
        round_trip(t, vals, "sim:0");
    if (devices.opencl && (choice & 3) == 0)
        round_trip(t, vals, "opencl:0");
    free(vals);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    uint8_t head = fuzz_u8(&in);
    ferry_dtype dt = (ferry_dtype)(head % 10);
    bool null_strides = head & 0x80;
    uint8_t nmode = fuzz_u8(&in);
    int nd = nmode < 240 ? nmode % 7 : (int)(int8_t)fuzz_u8(&in);
    int cap = nd < 0 ? 0 : nd;
    int64_t shape[128], strides[128]; /* nd is at most 127 */
    for (int i = 0; i < cap; i++) {
        shape[i] = fuzz_dim_value(&in, 0, 6);
        strides[i] = fuzz_dim_value(&in, -8, 8);
    }
    uint8_t choice = fuzz_u8(&in);

    /* The buffer's elements hold small integers; element 0 of the tensor is BASE_ELEM. */
    size_t elsize = ferry_dtype_size(dt);
    unsigned char *buf = malloc(BUF_ELEMS * elsize);
    for (int64_t i = 0; i < BUF_ELEMS; i++)
        store(buf, i, dt, value_at(i, dt));

    bool shape_ok = nd >= 0 && nd <= FERRY_MAX_DIMS;
    int64_t numel = 0;
    if (shape_ok)
        shape_ok = fuzz_numel(nd, shape, &numel) && (__int128)numel * (__int128)elsize <= INT64_MAX;
    int64_t eff[128];
    __int128 lo = 0, hi = 0;
    if (shape_ok) {
        int64_t contig = 1;
        for (int i = nd - 1; i >= 0; i--) {
            eff[i] = null_strides ? contig : strides[i];
            /* wraps harmlessly past int64: only a non-empty shape's strides are compared */
            contig = (int64_t)((uint64_t)contig * (uint64_t)(shape[i] ? shape[i] : 1));
        }
        if (numel > 0)
            for (int i = 0; i < nd; i++) {
                __int128 reach = (__int128)(shape[i] - 1) * eff[i];
                if (reach > 0)
                    hi += reach;
                else
                    lo += reach;
            }
    }
    bool inside = shape_ok && lo >= -BASE_ELEM && hi < BUF_ELEMS - BASE_ELEM;

    deleter_calls = 0;
    ferry_tensor *t = ferry_tensor_from_blob(buf + BASE_ELEM * elsize, dt, nd, shape,
                                             null_strides ? NULL : strides, count_delete, NULL);
    if (!t) {
        FUZZ_CHECK_FAILED_CLEARLY("from_blob");
        FUZZ_CHECK(deleter_calls == 0, "the deleter ran for a refused blob");
        FUZZ_CHECK(!inside || fuzz_empty_but_huge(nd, shape),
                   "a blob inside its buffer was refused (ndim %d)", nd);
        goto done;
    }
    FUZZ_CHECK(shape_ok, "from_blob accepted ndim %d with an element count or byte size past "
               "int64", nd);
    check_shape_is(t, nd, shape, "from_blob");
    for (int i = 0; i < nd; i++)
        if (shape[i] > 1 && numel > 0)
            FUZZ_CHECK(ferry_tensor_strides(t)[i] == eff[i], "strides[%d] is %lld, given %lld", i,
                       (long long)ferry_tensor_strides(t)[i], (long long)eff[i]);

    if (inside && numel <= MAX_REPR_NUMEL) {
        char *r = ferry_tensor_repr(t);
        FUZZ_CHECK(r && strncmp(r, "tensor(", 7) == 0, "repr: %s", r ? r : "(NULL)");
        ferry_free(r);
    }
    if (inside && numel <= MAX_OPS_NUMEL) {
        double *want = malloc((size_t)(numel ? numel : 1) * sizeof *want);
        int64_t idx[FERRY_MAX_DIMS] = {0};
        for (int64_t k = 0; k < numel; k++) {
            int64_t at = BASE_ELEM;
            for (int i = 0; i < nd; i++)
                at += idx[i] * eff[i];
            want[k] = load(buf, at, dt);
            for (int i = nd - 1; i >= 0; i--) {
                if (++idx[i] < shape[i])
                    break;
                idx[i] = 0;
            }
        }
        run_ops(t, dt, nd, shape, want, numel, choice);
        free(want);
    }
    FUZZ_CHECK(deleter_calls == 0, "the deleter ran while the tensor lives");
    ferry_tensor_release(t);
    FUZZ_CHECK(deleter_calls == 1, "the deleter ran %d times", deleter_calls);
done:
    free(buf);
    fuzz_check_memory_back(&devices);
    return 0;
}

/* DLPack interchange: export and import share memory, keep it alive exactly as long as
 * needed, carry strides and the read-only flag, and refuse bad input untouched. */
#include <pthread.h>

#include "test_util.h"

/* The export returned a struct, or the test stops with the reason it did not. */
#define assert_exported(m)                                                                  \
    do {                                                                                    \
        if (!(m))                                                                           \
            fail_msg("%s returned NULL: %s: %s", #m, ferry_status_name(ferry_last_status()), \
                     ferry_last_error());                                                   \
    } while (0)

/* ---- counting deleters ---- */

static int blob_deletes;

static void count_blob(void *data, void *ctx)
{
    (void)data;
    (void)ctx;
    blob_deletes++;
}

static void free_blob(void *data, void *ctx)
{
    (void)ctx;
    free(data);
    blob_deletes++;
}

static int producer_deletes;
static const void *producer_last_self;
static pthread_t producer_thread;

static void count_versioned(DLManagedTensorVersioned *self)
{
    producer_deletes++;
    producer_last_self = self;
    producer_thread = pthread_self();
}

static void count_legacy(DLManagedTensor *self)
{
    producer_deletes++;
    producer_last_self = self;
}

static int reset_counters(void **state)
{
    (void)state;
    blob_deletes = 0;
    producer_deletes = 0;
    producer_last_self = NULL;
    return 0;
}

static uint64_t cpu_allocated(void)
{
    ferry_memory_stats st;
    assert_int_equal(ferry_memory_stats_get("cpu", &st), FERRY_OK);
    return st.allocated;
}

/* A producer's tensor over a static int32 array, as a C library would hand one over. */
static int32_t host_array[2][3] = {{1, 2, 3}, {4, 5, 6}};
static int64_t host_shape[2] = {2, 3};

static DLManagedTensorVersioned versioned_over_host_array(void)
{
    DLManagedTensorVersioned m = {
        .version = {DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION},
        .manager_ctx = host_array,
        .deleter = count_versioned,
        .flags = 0,
        .dl_tensor = {.data = host_array,
                      .device = {kDLCPU, 0},
                      .ndim = 2,
                      .dtype = {kDLInt, 32, 1},
                      .shape = host_shape,
                      .strides = NULL,
                      .byte_offset = 0},
    };
    return m;
}

/* ---- the header against the specification ---- */

static void test_dlpack_header_layout_matches_spec(void **state)
{
    (void)state;
    /* Offsets of upstream's dlpack.h on LP64; a mismatch corrupts every exchange. */
    assert_int_equal(sizeof(DLDevice), 8);
    assert_int_equal(sizeof(DLDataType), 4);
    assert_int_equal(offsetof(DLTensor, device), 8);
    assert_int_equal(offsetof(DLTensor, ndim), 16);
    assert_int_equal(offsetof(DLTensor, dtype), 20);
    assert_int_equal(offsetof(DLTensor, shape), 24);
    assert_int_equal(offsetof(DLTensor, strides), 32);
    assert_int_equal(offsetof(DLTensor, byte_offset), 40);
    assert_int_equal(sizeof(DLTensor), 48);
    assert_int_equal(offsetof(DLManagedTensor, manager_ctx), 48);
    assert_int_equal(offsetof(DLManagedTensor, deleter), 56);
    assert_int_equal(offsetof(DLManagedTensorVersioned, manager_ctx), 8);
    assert_int_equal(offsetof(DLManagedTensorVersioned, deleter), 16);
    assert_int_equal(offsetof(DLManagedTensorVersioned, flags), 24);
    assert_int_equal(offsetof(DLManagedTensorVersioned, dl_tensor), 32);
    assert_int_equal(DLPACK_MAJOR_VERSION, 1);
    assert_int_equal(DLPACK_FLAG_BITMASK_READ_ONLY, 1);
    assert_int_equal(DLPACK_FLAG_BITMASK_IS_COPIED, 2);
}

/* ---- round trips ---- */

static const struct {
    ferry_dtype dtype;
    uint8_t code;
    uint8_t bits;
} dtype_table[FERRY_NUM_DTYPES] = {
    {FERRY_BOOL, kDLBool, 8},      {FERRY_UINT8, kDLUInt, 8},     {FERRY_INT8, kDLInt, 8},
    {FERRY_INT16, kDLInt, 16},     {FERRY_INT32, kDLInt, 32},     {FERRY_INT64, kDLInt, 64},
    {FERRY_FLOAT16, kDLFloat, 16}, {FERRY_BFLOAT16, kDLBfloat, 16},
    {FERRY_FLOAT32, kDLFloat, 32}, {FERRY_FLOAT64, kDLFloat, 64},
};

static void test_dlpack_roundtrip_every_dtype_shares_memory(void **state)
{
    (void)state;
    uint64_t baseline = cpu_allocated();
    for (int i = 0; i < FERRY_NUM_DTYPES; i++) {
        ferry_dtype dt = dtype_table[i].dtype;
        int64_t shape[2] = {2, 3};
        ferry_tensor *t = ferry_zeros(dt, 2, shape, "cpu");
        assert_tensor(t);

        DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
        assert_exported(m);
        assert_int_equal(m->version.major, DLPACK_MAJOR_VERSION);
        assert_int_equal(m->version.minor, DLPACK_MINOR_VERSION);
        assert_int_equal(m->flags, 0);
        assert_non_null(m->deleter);
        DLTensor *dl = &m->dl_tensor;
        assert_int_equal(dl->device.device_type, kDLCPU);
        assert_int_equal(dl->device.device_id, 0);
        assert_int_equal(dl->dtype.code, dtype_table[i].code);
        assert_int_equal(dl->dtype.bits, dtype_table[i].bits);
        assert_int_equal(dl->dtype.lanes, 1);
        assert_int_equal(dl->ndim, 2);
        assert_int_equal(dl->shape[0], 2);
        assert_int_equal(dl->shape[1], 3);
        assert_non_null(dl->strides);
        assert_int_equal(dl->strides[0], 3);
        assert_int_equal(dl->strides[1], 1);
        char *t_data = ferry_tensor_host_data(t);
        assert_ptr_equal((char *)dl->data + dl->byte_offset, t_data);

        ferry_tensor *u = ferry_tensor_from_dlpack(m);
        assert_tensor(u);
        assert_int_equal(ferry_tensor_dtype(u), dt);
        assert_int_equal(ferry_tensor_ndim(u), 2);
        assert_int_equal(ferry_tensor_shape(u)[0], 2);
        assert_int_equal(ferry_tensor_shape(u)[1], 3);
        assert_int_equal(ferry_tensor_strides(u)[0], 3);
        assert_int_equal(ferry_tensor_strides(u)[1], 1);
        assert_string_equal(ferry_tensor_device(u).type, "cpu");
        assert_int_equal(ferry_tensor_device(u).index, 0);
        assert_false(ferry_tensor_is_read_only(u));

        /* Writes through either handle are seen through the other. */
        char *u_data = ferry_tensor_host_data(u);
        size_t es = ferry_dtype_size(dt);
        t_data[4 * es] = 1;
        assert_int_equal(u_data[4 * es], 1);
        u_data[5 * es] = 1;
        assert_int_equal(t_data[5 * es], 1);

        /* Alternate which side goes last: either order frees the memory once. */
        if (i % 2) {
            ferry_tensor_release(t);
            ferry_tensor_release(u);
        } else {
            ferry_tensor_release(u);
            ferry_tensor_release(t);
        }
    }
    assert_int_equal(cpu_allocated(), baseline);
}

static void test_dlpack_unversioned_roundtrip_shares_memory(void **state)
{
    (void)state;
    uint64_t baseline = cpu_allocated();
    int64_t shape[1] = {4};
    ferry_tensor *t = ferry_arange(0, 4, 1, FERRY_INT64, "cpu");
    assert_tensor(t);

    DLManagedTensor *m = ferry_tensor_to_dlpack_unversioned(t);
    assert_exported(m);
    assert_int_equal(m->dl_tensor.device.device_type, kDLCPU);
    assert_int_equal(m->dl_tensor.dtype.code, kDLInt);
    assert_int_equal(m->dl_tensor.dtype.bits, 64);
    assert_int_equal(m->dl_tensor.ndim, 1);
    assert_int_equal(m->dl_tensor.shape[0], shape[0]);
    assert_int_equal(m->dl_tensor.strides[0], 1);

    ferry_tensor *u = ferry_tensor_from_dlpack_unversioned(m);
    assert_tensor(u);
    assert_false(ferry_tensor_is_read_only(u));
    int64_t *td = ferry_tensor_host_data(t), *ud = ferry_tensor_host_data(u);
    assert_ptr_equal(td, ud);
    ud[2] = 42;
    assert_int_equal(td[2], 42);
    td[3] = -7;
    assert_int_equal(ud[3], -7);
    ferry_tensor_release(t);
    assert_int_equal(ud[0], 0); /* u alone keeps the memory now */
    ferry_tensor_release(u);
    assert_int_equal(cpu_allocated(), baseline);
}

static void test_dlpack_scalar_roundtrip_keeps_value(void **state)
{
    (void)state;
    ferry_tensor *t = ferry_full(FERRY_FLOAT64, 0, NULL, 2.5, "cpu");
    assert_tensor(t);
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_exported(m);
    assert_int_equal(m->dl_tensor.ndim, 0);
    ferry_tensor *u = ferry_tensor_from_dlpack(m);
    assert_tensor(u);
    assert_int_equal(ferry_tensor_ndim(u), 0);
    double v = 0;
    assert_int_equal(ferry_tensor_copy_to_host(u, &v, sizeof v), FERRY_OK);
    assert_true(v == 2.5);
    ferry_tensor_release(u);
    ferry_tensor_release(t);
}

static void test_dlpack_empty_tensor_roundtrip_has_null_data(void **state)
{
    (void)state;
    int64_t shape[2] = {0, 3};
    ferry_tensor *t = ferry_empty(FERRY_FLOAT32, 2, shape, "cpu");
    assert_tensor(t);
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_exported(m);
    assert_null(m->dl_tensor.data); /* the spec's rule for size-zero tensors */
    assert_int_equal(m->dl_tensor.byte_offset, 0);
    assert_int_equal(m->dl_tensor.shape[0], 0);
    ferry_tensor *u = ferry_tensor_from_dlpack(m);
    assert_tensor(u);
    assert_int_equal(ferry_tensor_numel(u), 0);
    assert_int_equal(ferry_tensor_shape(u)[1], 3);
    ferry_tensor_release(t);
    ferry_tensor_release(u);
}

/* ---- strides ---- */

static void test_dlpack_export_negative_strides_preserved(void **state)
{
    (void)state;
    float buf[12];
    for (int i = 0; i < 12; i++)
        buf[i] = (float)i;
    /* Rows of a 3x4 buffer bottom-up, every other column: element (i, j) is
     * buf[8 - 4i + 2j], so the view reaches below its first element. */
    int64_t shape[2] = {3, 2}, strides[2] = {-4, 2};
    ferry_tensor *t =
        ferry_tensor_from_blob(&buf[8], FERRY_FLOAT32, 2, shape, strides, count_blob, NULL);
    assert_tensor(t);

    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_exported(m);
    assert_int_equal(m->dl_tensor.strides[0], -4);
    assert_int_equal(m->dl_tensor.strides[1], 2);
    assert_ptr_equal((char *)m->dl_tensor.data + m->dl_tensor.byte_offset, &buf[8]);
    assert_true((char *)m->dl_tensor.data >= (char *)buf);

    ferry_tensor *u = ferry_tensor_from_dlpack(m);
    assert_tensor(u);
    assert_int_equal(ferry_tensor_strides(u)[0], -4);
    assert_int_equal(ferry_tensor_strides(u)[1], 2);
    assert_ptr_equal(ferry_tensor_host_data(u), &buf[8]);
    float got[6];
    assert_int_equal(ferry_tensor_copy_to_host(u, got, sizeof got), FERRY_OK);
    const float want[6] = {8, 10, 4, 6, 0, 2};
    assert_memory_equal(got, want, sizeof want);

    ferry_tensor_release(t);
    assert_int_equal(blob_deletes, 0);
    ferry_tensor_release(u);
    assert_int_equal(blob_deletes, 1);
}

static void test_dlpack_export_view_points_data_at_first_element(void **state)
{
    (void)state;
    ferry_tensor *base = ferry_arange(0, 12, 1, FERRY_INT32, "cpu");
    assert_tensor(base);
    int64_t shape[2] = {3, 4};
    ferry_tensor *grid = ferry_view(base, 2, shape);
    assert_tensor(grid);
    /* Columns 1 and 3, transposed: offset 4 bytes, strides (2, 4). */
    ferry_tensor *cols = ferry_slice(grid, 1, 1, 4, 2);
    assert_tensor(cols);
    ferry_tensor *t = ferry_transpose(cols, 0, 1);
    assert_tensor(t);

    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_exported(m);
    /* A host address points at element 0 with byte_offset 0: PyTorch and others ignore
     * byte_offset (an OpenCL cl_mem keeps it; tests/opencl/test_copy.c). */
    assert_ptr_equal(m->dl_tensor.data, (int32_t *)ferry_tensor_host_data(base) + 1);
    assert_ptr_equal(m->dl_tensor.data, ferry_tensor_host_data(t));
    assert_int_equal(m->dl_tensor.byte_offset, 0);
    assert_int_equal(m->dl_tensor.shape[0], 2);
    assert_int_equal(m->dl_tensor.shape[1], 3);
    assert_int_equal(m->dl_tensor.strides[0], 2);
    assert_int_equal(m->dl_tensor.strides[1], 4);

    /* A consumer that ignores byte_offset reads the view's own elements. */
    const int32_t want[6] = {1, 5, 9, 3, 7, 11};
    const int32_t *d = m->dl_tensor.data;
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 3; j++)
            assert_int_equal(d[i * m->dl_tensor.strides[0] + j * m->dl_tensor.strides[1]],
                             want[i * 3 + j]);

    ferry_tensor *u = ferry_tensor_from_dlpack(m);
    assert_tensor(u);
    int32_t got[6];
    assert_int_equal(ferry_tensor_copy_to_host(u, got, sizeof got), FERRY_OK);
    assert_memory_equal(got, want, sizeof want);

    /* The legacy struct likewise. */
    DLManagedTensor *l = ferry_tensor_to_dlpack_unversioned(t);
    assert_exported(l);
    assert_ptr_equal(l->dl_tensor.data, ferry_tensor_host_data(t));
    assert_int_equal(l->dl_tensor.byte_offset, 0);
    l->deleter(l);

    /* An empty view of a non-empty storage still exports data == NULL. */
    ferry_tensor *none = ferry_slice(grid, 0, 2, 2, 1);
    assert_tensor(none);
    DLManagedTensorVersioned *e = ferry_tensor_to_dlpack(none);
    assert_exported(e);
    assert_null(e->dl_tensor.data);
    assert_int_equal(e->dl_tensor.byte_offset, 0);
    e->deleter(e);

    ferry_tensor_release(none);
    ferry_tensor_release(u);
    ferry_tensor_release(t);
    ferry_tensor_release(cols);
    ferry_tensor_release(grid);
    ferry_tensor_release(base);
}

static void test_dlpack_import_null_strides_means_row_major(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    assert_int_equal(ferry_tensor_strides(t)[0], 3);
    assert_int_equal(ferry_tensor_strides(t)[1], 1);
    assert_true(ferry_tensor_is_contiguous(t));
    ferry_tensor_release(t);
    assert_int_equal(producer_deletes, 1);
}

static void test_dlpack_import_negative_strides_within_data_succeeds(void **state)
{
    (void)state;
    /* Columns right to left: element 0 is host_array[0][2], the lowest touched byte is
     * host_array[0][0] == data. */
    int64_t shape[2] = {2, 3}, strides[2] = {3, -1};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.shape = shape;
    m.dl_tensor.strides = strides;
    m.dl_tensor.byte_offset = 2 * sizeof(int32_t);
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    assert_ptr_equal(ferry_tensor_host_data(t), &host_array[0][2]);
    int32_t got[6];
    assert_int_equal(ferry_tensor_copy_to_host(t, got, sizeof got), FERRY_OK);
    const int32_t want[6] = {3, 2, 1, 6, 5, 4};
    assert_memory_equal(got, want, sizeof want);
    ferry_tensor_release(t);
    assert_int_equal(producer_deletes, 1);
}

static void test_dlpack_import_byte_offset_points_at_first_element(void **state)
{
    (void)state;
    int64_t shape[1] = {2};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.ndim = 1;
    m.dl_tensor.shape = shape;
    m.dl_tensor.byte_offset = 4 * sizeof(int32_t);
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    assert_ptr_equal(ferry_tensor_host_data(t), &host_array[1][1]);
    ferry_tensor_release(t);
}

/* ---- lifetimes ---- */

static void test_dlpack_capsule_keeps_storage_alive_after_release(void **state)
{
    (void)state;
    float *buf = malloc(6 * sizeof *buf);
    assert_non_null(buf);
    for (int i = 0; i < 6; i++)
        buf[i] = (float)(i * 10);
    int64_t shape[2] = {2, 3};
    ferry_tensor *t = ferry_tensor_from_blob(buf, FERRY_FLOAT32, 2, shape, NULL, free_blob, NULL);
    assert_tensor(t);

    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_exported(m);
    ferry_tensor_release(t);
    assert_int_equal(blob_deletes, 0);
    const float *p = (const float *)((const char *)m->dl_tensor.data + m->dl_tensor.byte_offset);
    assert_true(p[5] == 50.0f);

    m->deleter(m);
    assert_int_equal(blob_deletes, 1);
}

static void test_dlpack_unversioned_capsule_keeps_storage_alive_after_release(void **state)
{
    (void)state;
    float buf[3] = {1, 2, 3};
    int64_t shape[1] = {3};
    ferry_tensor *t = ferry_tensor_from_blob(buf, FERRY_FLOAT32, 1, shape, NULL, count_blob, NULL);
    assert_tensor(t);
    DLManagedTensor *m = ferry_tensor_to_dlpack_unversioned(t);
    assert_exported(m);
    ferry_tensor_release(t);
    assert_int_equal(blob_deletes, 0);
    m->deleter(m);
    assert_int_equal(blob_deletes, 1);
}

static void test_dlpack_import_deleter_runs_on_last_release_only(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    int64_t shape[2] = {2, 3};
    m.dl_tensor.shape = shape;
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    /* ferry copied the geometry: the producer's arrays are only read during import. */
    shape[0] = 99;
    assert_int_equal(ferry_tensor_shape(t)[0], 2);

    ferry_tensor *alias = ferry_tensor_detach(t);
    assert_tensor(alias);
    ferry_tensor_release(t);
    assert_int_equal(producer_deletes, 0);
    int32_t got[6];
    assert_int_equal(ferry_tensor_copy_to_host(alias, got, sizeof got), FERRY_OK);
    assert_memory_equal(got, host_array, sizeof got);
    assert_ptr_equal(ferry_tensor_host_data(alias), host_array);

    ferry_tensor_release(alias);
    assert_int_equal(producer_deletes, 1);
    assert_ptr_equal(producer_last_self, &m);
}

static void test_dlpack_import_unversioned_deleter_runs_on_last_release_only(void **state)
{
    (void)state;
    DLManagedTensor m = {
        .dl_tensor = {.data = host_array,
                      .device = {kDLCPU, 0},
                      .ndim = 2,
                      .dtype = {kDLInt, 32, 1},
                      .shape = host_shape,
                      .strides = NULL,
                      .byte_offset = 0},
        .manager_ctx = NULL,
        .deleter = count_legacy,
    };
    ferry_tensor *t = ferry_tensor_from_dlpack_unversioned(&m);
    assert_tensor(t);
    ferry_tensor *alias = ferry_tensor_retain(t);
    ferry_tensor_release(t);
    assert_int_equal(producer_deletes, 0);
    ferry_tensor_release(alias);
    assert_int_equal(producer_deletes, 1);
    assert_ptr_equal(producer_last_self, &m);
}

static void test_dlpack_reexport_of_import_keeps_producer_memory(void **state)
{
    (void)state;
    DLManagedTensorVersioned in = versioned_over_host_array();
    ferry_tensor *t = ferry_tensor_from_dlpack(&in);
    assert_tensor(t);
    DLManagedTensorVersioned *out = ferry_tensor_to_dlpack(t);
    assert_exported(out);
    assert_ptr_equal(out->dl_tensor.data, host_array);
    ferry_tensor_release(t);
    assert_int_equal(producer_deletes, 0);
    out->deleter(out);
    assert_int_equal(producer_deletes, 1);
    assert_ptr_equal(producer_last_self, &in);
}

static void test_dlpack_import_null_deleter_is_allowed(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.deleter = NULL;
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    ferry_tensor_release(t);
    assert_int_equal(producer_deletes, 0);
}

static void test_dlpack_import_cuda_host_is_cpu(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.device.device_type = kDLCUDAHost;
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    assert_string_equal(ferry_tensor_device(t).type, "cpu");
    ferry_tensor_release(t);
}

static void test_dlpack_import_newer_minor_version_is_accepted(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.version.minor = DLPACK_MINOR_VERSION + 5;
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    ferry_tensor_release(t);
    assert_int_equal(producer_deletes, 1);
}

static void *call_versioned_deleter(void *arg)
{
    DLManagedTensorVersioned *m = arg;
    m->deleter(m);
    return NULL;
}

static void *release_tensor(void *arg)
{
    ferry_tensor_release(arg);
    return NULL;
}

static void test_dlpack_deleters_run_on_other_threads(void **state)
{
    (void)state;
    /* Export: the consumer may drop the capsule on any thread. */
    float buf[2] = {1, 2};
    int64_t shape[1] = {2};
    ferry_tensor *t = ferry_tensor_from_blob(buf, FERRY_FLOAT32, 1, shape, NULL, count_blob, NULL);
    assert_tensor(t);
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_exported(m);
    ferry_tensor_release(t);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_versioned_deleter, m), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(blob_deletes, 1);

    /* Import: the producer's deleter runs where the last reference goes. */
    DLManagedTensorVersioned in = versioned_over_host_array();
    ferry_tensor *u = ferry_tensor_from_dlpack(&in);
    assert_tensor(u);
    assert_int_equal(pthread_create(&th, NULL, release_tensor, u), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(producer_deletes, 1);
    assert_true(pthread_equal(producer_thread, th));
}

/* ---- read-only ---- */

static void test_dlpack_read_only_flag_exported_and_imported(void **state)
{
    (void)state;
    int64_t shape[1] = {3};
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, shape, "cpu");
    assert_tensor(t);
    assert_int_equal(ferry_tensor_set_read_only(t, true), FERRY_OK);
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(t);
    assert_exported(m);
    assert_true(m->flags & DLPACK_FLAG_BITMASK_READ_ONLY);
    assert_false(m->flags & DLPACK_FLAG_BITMASK_IS_COPIED);
    ferry_tensor *u = ferry_tensor_from_dlpack(m);
    assert_tensor(u);
    assert_true(ferry_tensor_is_read_only(u));
    ferry_tensor_release(u);
    ferry_tensor_release(t);

    DLManagedTensorVersioned hand = versioned_over_host_array();
    hand.flags = DLPACK_FLAG_BITMASK_READ_ONLY;
    ferry_tensor *r = ferry_tensor_from_dlpack(&hand);
    assert_tensor(r);
    assert_true(ferry_tensor_is_read_only(r));
    ferry_tensor_release(r);

    hand.flags = DLPACK_FLAG_BITMASK_IS_COPIED; /* not read-only: writable */
    ferry_tensor *w = ferry_tensor_from_dlpack(&hand);
    assert_tensor(w);
    assert_false(ferry_tensor_is_read_only(w));
    ferry_tensor_release(w);
    assert_int_equal(producer_deletes, 2);
}

static void test_dlpack_unversioned_export_of_read_only_fails(void **state)
{
    (void)state;
    int64_t shape[1] = {3};
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, shape, "cpu");
    assert_tensor(t);
    assert_int_equal(ferry_tensor_set_read_only(t, true), FERRY_OK);
    uint64_t before = cpu_allocated();
    assert_null(ferry_tensor_to_dlpack_unversioned(t));
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "cannot export a read-only tensor");
    ferry_tensor_release(t);
    assert_true(cpu_allocated() < before); /* nothing else held the storage */
}

/* ---- export errors ---- */

static void test_dlpack_export_requires_grad_fails(void **state)
{
    (void)state;
    uint64_t baseline = cpu_allocated();
    int64_t shape[1] = {3};
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, shape, "cpu");
    assert_tensor(t);
    assert_int_equal(ferry_tensor_set_requires_grad(t, true), FERRY_OK);
    assert_null(ferry_tensor_to_dlpack(t));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                 "Can't export tensors that require gradient, use tensor.detach()");
    assert_null(ferry_tensor_to_dlpack_unversioned(t));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                 "Can't export tensors that require gradient, use tensor.detach()");

    ferry_tensor *d = ferry_tensor_detach(t);
    assert_tensor(d);
    DLManagedTensorVersioned *m = ferry_tensor_to_dlpack(d);
    assert_exported(m);
    m->deleter(m);
    ferry_tensor_release(d);
    ferry_tensor_release(t);
    assert_int_equal(cpu_allocated(), baseline);
}

static void test_dlpack_export_null_fails(void **state)
{
    (void)state;
    assert_null(ferry_tensor_to_dlpack(NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_to_dlpack: tensor is NULL");
    assert_null(ferry_tensor_to_dlpack_unversioned(NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                 "ferry_tensor_to_dlpack_unversioned: tensor is NULL");
}

static void test_dlpack_export_sim_tensor_fails(void **state)
{
    (void)state;
    require_backend("sim");
    int64_t shape[1] = {4};
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, shape, "sim");
    assert_tensor(t);
    assert_null(ferry_tensor_to_dlpack(t));
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "sim:0 tensors cannot be exported through DLPack");
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "ferry_tensor_cpu()");
    assert_null(ferry_tensor_to_dlpack_unversioned(t));
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "sim:0 tensors cannot be exported through DLPack");
    ferry_memory_stats st;
    assert_int_equal(ferry_memory_stats_get("sim", &st), FERRY_OK);
    uint64_t held = st.allocated;
    ferry_tensor_release(t);
    assert_int_equal(ferry_memory_stats_get("sim", &st), FERRY_OK);
    assert_true(st.allocated < held); /* the failed exports kept no reference */
}

/* ---- import errors: the status, the message, and m left alone ---- */

/* A macro, so that a failure names the line of the case. */
#define expect_import_fails(m, status, substring)                                          \
    do {                                                                                   \
        uint64_t before_ = cpu_allocated();                                                \
        producer_deletes = 0;                                                              \
        assert_null(ferry_tensor_from_dlpack(m));                                          \
        assert_failed_with(status, substring);                                                   \
        assert_int_equal(producer_deletes, 0);                                             \
        assert_int_equal(cpu_allocated(), before_);                                        \
        /* Still the caller's: its deleter is theirs to call. */                           \
        (m)->deleter(m);                                                                   \
        assert_int_equal(producer_deletes, 1);                                             \
    } while (0)

static void test_dlpack_import_null_fails(void **state)
{
    (void)state;
    assert_null(ferry_tensor_from_dlpack(NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "ferry_tensor_from_dlpack: m is NULL");
    assert_null(ferry_tensor_from_dlpack_unversioned(NULL));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                       "ferry_tensor_from_dlpack_unversioned: m is NULL");
}

static void test_dlpack_import_other_major_version_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.version.major = 2;
    m.version.minor = 3;
    expect_import_fails(&m, FERRY_ERR_ABI, "DLPack version 2.3 is not supported");
    assert_failed_with(FERRY_ERR_ABI, "major version 1");
    m.version.major = 0;
    expect_import_fails(&m, FERRY_ERR_ABI, "DLPack version 0.3");
}

static void test_dlpack_import_unsupported_dtype_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.dtype = (DLDataType){kDLComplex, 64, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "code 5 (complex), bits 64, lanes 1");
    m.dl_tensor.dtype = (DLDataType){kDLOpaqueHandle, 64, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "code 3 (opaque handle)");
    m.dl_tensor.dtype = (DLDataType){kDLFloat, 24, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "code 2 (float), bits 24");
    m.dl_tensor.dtype = (DLDataType){kDLUInt, 16, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "code 1 (uint), bits 16");
    m.dl_tensor.dtype = (DLDataType){kDLBool, 1, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "code 6 (bool), bits 1");
    m.dl_tensor.dtype = (DLDataType){kDLBfloat, 32, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "code 4 (bfloat), bits 32");
    m.dl_tensor.dtype = (DLDataType){42, 8, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "code 42 (unknown)");
}

static void test_dlpack_import_vector_lanes_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.dtype = (DLDataType){kDLFloat, 32, 2};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "bits 32, lanes 2");
}

static void test_dlpack_import_too_many_dims_fails(void **state)
{
    (void)state;
    int64_t shape[FERRY_MAX_DIMS + 1];
    for (int i = 0; i <= FERRY_MAX_DIMS; i++)
        shape[i] = 1;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.ndim = FERRY_MAX_DIMS + 1;
    m.dl_tensor.shape = shape;
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED,
                        "has 65 dimensions; ferry tensors have at most 64");

    m.dl_tensor.ndim = FERRY_MAX_DIMS; /* the limit itself is fine */
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    assert_int_equal(ferry_tensor_ndim(t), FERRY_MAX_DIMS);
    ferry_tensor_release(t);
}

static void test_dlpack_import_negative_ndim_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.ndim = -1;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "ndim -1");
}

static void test_dlpack_import_negative_dim_fails(void **state)
{
    (void)state;
    int64_t shape[2] = {2, -3};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.shape = shape;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "negative dimension: shape[1] is -3");
}

static void test_dlpack_import_missing_shape_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.shape = NULL;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "has no shape");
}

static void test_dlpack_import_null_data_with_elements_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.data = NULL;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "data == NULL but 6 elements");

    /* Without elements NULL is what the spec asks for. */
    int64_t shape[2] = {0, 3};
    m.dl_tensor.shape = shape;
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    assert_tensor(t);
    assert_int_equal(ferry_tensor_numel(t), 0);
    ferry_tensor_release(t);
}

/* NumPy exports a[::-1] with data at element 0 and negative strides: on a device whose
 * data is an address the view may start below data. */
static void test_dlpack_import_strides_below_data_view_memory_before_data(void **state)
{
    (void)state;
    int64_t shape[1] = {3}, strides[1] = {-1};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.ndim = 1;
    m.dl_tensor.shape = shape;
    m.dl_tensor.strides = strides;
    m.dl_tensor.data = &host_array[0][2];
    ferry_tensor *t = ferry_tensor_from_dlpack(&m);
    if (!t)
        fail_msg("import failed: %s", ferry_last_error());
    int32_t out[3];
    assert_int_equal(ferry_tensor_copy_to_host(t, out, sizeof out), FERRY_OK);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 1);
    assert_ptr_equal(ferry_tensor_host_data(t), &host_array[0][2]);
    ferry_tensor_release(t); /* runs m's deleter: it was ours after the import */
}

/* A cl_mem handle cannot be offset below its start, so there it stays an error. */
static void test_dlpack_import_strides_below_an_opencl_buffer_fails(void **state)
{
    (void)state;
    int64_t shape[2] = {2, 3}, strides[2] = {3, -1};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.device = (DLDevice){kDLOpenCL, 0};
    m.dl_tensor.shape = shape;
    m.dl_tensor.strides = strides;
    m.dl_tensor.byte_offset = sizeof(int32_t); /* needs 2 elements of room, has 1 */
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "reach 8 bytes below element 0");
}

static void test_dlpack_import_overflowing_strides_fails(void **state)
{
    (void)state;
    int64_t shape[2] = {3, 3}, strides[2] = {INT64_MAX / 2, 1};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.shape = shape;
    m.dl_tensor.strides = strides;
    /* (3 - 1) * (INT64_MAX / 2 + 1) */
    strides[0] = INT64_MAX / 2 + 1;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "strides[0] (4611686018427387904) times shape[0] - 1 (2) overflows "
                        "int64");
    strides[0] = INT64_MIN;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "strides[0] (-9223372036854775808) times shape[0] - 1 (2) overflows");
    strides[0] = 1;
    strides[1] = INT64_MIN;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "strides[1] (-9223372036854775808)");

    /* Each dim's reach fits, their sum does not. */
    strides[0] = INT64_MAX / 2;
    strides[1] = INT64_MAX / 2;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "strides reach more elements than fit in int64 (at strides[1]");
    strides[0] = INT64_MIN / 2;
    strides[1] = INT64_MIN / 2 + 1;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "(at strides[1] = -4611686018427387903)");

    /* The elements fit, their bytes do not (int32: 4 bytes each). */
    int64_t two[2] = {2, 1};
    m.dl_tensor.shape = two;
    strides[0] = INT64_MAX / 2;
    strides[1] = 1;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "shape and strides span more bytes than fit in int64");
    strides[0] = INT64_MIN;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "span more bytes than fit in int64");
    /* INT64_MIN bytes below element 0 cannot be negated. */
    m.dl_tensor.dtype = (DLDataType){kDLInt, 8, 1};
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "span more bytes than fit in int64");
    m.dl_tensor.dtype = (DLDataType){kDLInt, 32, 1};

    /* Zero strides keep the extent tiny while the element count overflows. */
    int64_t huge[2] = {INT64_C(1) << 40, INT64_C(1) << 40}, zero[2] = {0, 0};
    m.dl_tensor.shape = huge;
    m.dl_tensor.strides = zero;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "more elements than fit in memory");
}

static void test_dlpack_import_overflowing_byte_offset_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.byte_offset = (uint64_t)INT64_MAX + 1;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "byte_offset 9223372036854775808 is larger than INT64_MAX");
    m.dl_tensor.byte_offset = UINT64_MAX;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT, "is larger than INT64_MAX");
    /* 6 int32 elements: 24 bytes past INT64_MAX - 4. */
    m.dl_tensor.byte_offset = INT64_MAX - 4;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "byte_offset 9223372036854775803 plus its extent of 24 bytes overflows "
                        "int64");
}

static void test_dlpack_import_overflowing_extent_fails(void **state)
{
    (void)state;
    /* Above and below element 0 each fit in int64, the span from lowest to highest does
     * not. */
    int64_t shape[2] = {2, 2}, strides[2] = {INT64_C(1) << 62, -(INT64_C(1) << 62)};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.dtype = (DLDataType){kDLInt, 8, 1};
    m.dl_tensor.shape = shape;
    m.dl_tensor.strides = strides;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "extent (byte_offset 0, 4611686018427387904 bytes below element 0, "
                        "4611686018427387905 above) overflows int64");
}

static void test_dlpack_import_data_wrapping_the_address_space_fails(void **state)
{
    (void)state;
    /* Never dereferenced: the checks refuse these before a storage is made. */
    int64_t shape[1] = {4}, strides[1] = {-1};
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.ndim = 1;
    m.dl_tensor.shape = shape;
    m.dl_tensor.strides = strides;
    m.dl_tensor.data = (void *)(uintptr_t)8; /* 12 bytes below it are needed */
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "addresses memory outside the address space");
    strides[0] = 1;
    m.dl_tensor.data = (void *)(UINTPTR_MAX - 8); /* 16 bytes from here wrap */
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "addresses memory outside the address space");
    m.dl_tensor.data = (void *)(UINTPTR_MAX - 32);
    m.dl_tensor.byte_offset = 24;
    expect_import_fails(&m, FERRY_ERR_INVALID_ARGUMENT,
                        "addresses memory outside the address space");
}

static void test_dlpack_import_unversioned_overflow_leaves_m_alone(void **state)
{
    (void)state;
    int64_t strides[2] = {INT64_MIN, 1};
    DLManagedTensor m = {
        .dl_tensor = {.data = host_array,
                      .device = {kDLCPU, 0},
                      .ndim = 2,
                      .dtype = {kDLInt, 32, 1},
                      .shape = host_shape,
                      .strides = strides},
        .deleter = count_legacy,
    };
    uint64_t before = cpu_allocated();
    assert_null(ferry_tensor_from_dlpack_unversioned(&m));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT,
                       "ferry_tensor_from_dlpack_unversioned: DLPack tensor's shape and strides "
                       "span more bytes");
    assert_int_equal(producer_deletes, 0);
    assert_int_equal(cpu_allocated(), before);
    strides[0] = 3;
    m.dl_tensor.byte_offset = UINT64_MAX;
    assert_null(ferry_tensor_from_dlpack_unversioned(&m));
    assert_failed_with(FERRY_ERR_INVALID_ARGUMENT, "byte_offset 18446744073709551615");
    assert_int_equal(producer_deletes, 0);
}

static void test_dlpack_import_unsupported_device_fails(void **state)
{
    (void)state;
    DLManagedTensorVersioned m = versioned_over_host_array();
    m.dl_tensor.device = (DLDevice){kDLVulkan, 0};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "DLPack device type 7 (device_id 0, kDLVulkan) is not supported");
    m.dl_tensor.device = (DLDevice){kDLROCM, 1};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "DLPack device type 10 (device_id 1, kDLROCM)");
    /* 0 is no DLPack type, though it is what sim declares for "none" (the fuzzer found
     * such an import routed to sim). */
    require_backend("sim");
    m.dl_tensor.device = (DLDevice){(DLDeviceType)0, 0};
    expect_import_fails(&m, FERRY_ERR_UNSUPPORTED, "DLPack device type 0 (device_id 0)");
}

/* Whether the build has this backend's plugin at all (loaded or not usable). */
static bool plugin_built(const char *type)
{
    const char *why = ferry_backend_status(type);
    return !why || !strstr(why, ".so not found");
}

static void test_dlpack_import_missing_gpu_device_fails(void **state)
{
    (void)state;
    /* No machine has 99 devices, so this fails whether or not the backend loads; the
     * status says which (unknown/absent device, or backend unusable). */
    /* The plugin that declares the type answers, ready or not; a build without it says
     * that no plugin declares the type. */
    const struct {
        DLDeviceType type;
        const char *backend, *name, *absent;
    } cases[] = {{kDLCUDA, "cuda", "DLPack device cuda:99", "(device_id 99, kDLCUDA)"},
                 {kDLOpenCL, "opencl", "DLPack device opencl:99", "(device_id 99, kDLOpenCL)"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        DLManagedTensorVersioned m = versioned_over_host_array();
        m.dl_tensor.device = (DLDevice){cases[i].type, 99};
        producer_deletes = 0;
        assert_null(ferry_tensor_from_dlpack(&m));
        ferry_status st = ferry_last_status();
        char err[512];
        snprintf(err, sizeof err, "%s", ferry_last_error());
        bool built = plugin_built(cases[i].backend);
        const char *want = built ? cases[i].name : cases[i].absent;
        if (built ? st != FERRY_ERR_INVALID_DEVICE && st != FERRY_ERR_UNAVAILABLE
                  : st != FERRY_ERR_UNSUPPORTED)
            fail_msg("unexpected %s: %s", ferry_status_name(st), err);
        if (!strstr(err, want))
            fail_msg("message \"%s\" lacks \"%s\"", err, want);
        assert_int_equal(producer_deletes, 0);
    }
}

static void test_dlpack_import_unversioned_error_leaves_m_alone(void **state)
{
    (void)state;
    DLManagedTensor m = {
        .dl_tensor = {.data = host_array,
                      .device = {kDLCPU, 0},
                      .ndim = 2,
                      .dtype = {kDLFloat, 32, 4},
                      .shape = host_shape},
        .deleter = count_legacy,
    };
    assert_null(ferry_tensor_from_dlpack_unversioned(&m));
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "ferry_tensor_from_dlpack_unversioned: DLPack dtype");
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "lanes 4");
    assert_int_equal(producer_deletes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup(name, reset_counters)
        T(test_dlpack_header_layout_matches_spec),
        T(test_dlpack_roundtrip_every_dtype_shares_memory),
        T(test_dlpack_unversioned_roundtrip_shares_memory),
        T(test_dlpack_scalar_roundtrip_keeps_value),
        T(test_dlpack_empty_tensor_roundtrip_has_null_data),
        T(test_dlpack_export_negative_strides_preserved),
        T(test_dlpack_export_view_points_data_at_first_element),
        T(test_dlpack_import_null_strides_means_row_major),
        T(test_dlpack_import_negative_strides_within_data_succeeds),
        T(test_dlpack_import_byte_offset_points_at_first_element),
        T(test_dlpack_capsule_keeps_storage_alive_after_release),
        T(test_dlpack_unversioned_capsule_keeps_storage_alive_after_release),
        T(test_dlpack_import_deleter_runs_on_last_release_only),
        T(test_dlpack_import_unversioned_deleter_runs_on_last_release_only),
        T(test_dlpack_reexport_of_import_keeps_producer_memory),
        T(test_dlpack_import_null_deleter_is_allowed),
        T(test_dlpack_import_cuda_host_is_cpu),
        T(test_dlpack_import_newer_minor_version_is_accepted),
        T(test_dlpack_deleters_run_on_other_threads),
        T(test_dlpack_read_only_flag_exported_and_imported),
        T(test_dlpack_unversioned_export_of_read_only_fails),
        T(test_dlpack_export_requires_grad_fails),
        T(test_dlpack_export_null_fails),
        T(test_dlpack_export_sim_tensor_fails),
        T(test_dlpack_import_null_fails),
        T(test_dlpack_import_other_major_version_fails),
        T(test_dlpack_import_unsupported_dtype_fails),
        T(test_dlpack_import_vector_lanes_fails),
        T(test_dlpack_import_too_many_dims_fails),
        T(test_dlpack_import_negative_ndim_fails),
        T(test_dlpack_import_negative_dim_fails),
        T(test_dlpack_import_missing_shape_fails),
        T(test_dlpack_import_null_data_with_elements_fails),
        T(test_dlpack_import_strides_below_data_view_memory_before_data),
        T(test_dlpack_import_strides_below_an_opencl_buffer_fails),
        T(test_dlpack_import_overflowing_strides_fails),
        T(test_dlpack_import_overflowing_byte_offset_fails),
        T(test_dlpack_import_overflowing_extent_fails),
        T(test_dlpack_import_data_wrapping_the_address_space_fails),
        T(test_dlpack_import_unversioned_overflow_leaves_m_alone),
        T(test_dlpack_import_unsupported_device_fails),
        T(test_dlpack_import_missing_gpu_device_fails),
        T(test_dlpack_import_unversioned_error_leaves_m_alone),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

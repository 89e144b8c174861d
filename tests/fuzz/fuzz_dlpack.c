/* DLPack import of both struct versions (DLManagedTensorVersioned and the legacy
 * DLManagedTensor) with fuzzed fields: version, flags, device type and id, dtype code,
 * bits and lanes, ndim, shape, strides, byte_offset, NULL shape/strides/data/deleter.
 *
 * The memory behind `data` is real: host memory for kDLCPU and kDLCUDAHost, a cl_mem
 * exported from an opencl:0 tensor for kDLOpenCL. A producer vouches for the extent of
 * what it exports and ferry cannot check that, so values are compared only when the
 * fuzzed layout stays inside that memory. Invariants: an accepted tensor has the fields
 * it was given and a valid layout; its elements are the ones the layout addresses; a
 * read-only one refuses writes; the producer's deleter runs exactly once, at the last
 * release, and never for a refused one, which also gets a status and a message. */
#include "fuzz_util.h"

#define HOST_BYTES 8192
#define HOST_BASE 4096 /* data points here, so negative strides can reach below it */
#define OCL_BYTES 8192
#define MAX_COMPARE (1 << 14)

static fuzz_devices devices;
static unsigned char host_mem[HOST_BYTES];
static unsigned char ocl_mirror[OCL_BYTES];
static DLManagedTensorVersioned *ocl_export; /* keeps the cl_mem alive */

static int deleter_calls;
static void *deleter_self;

static void count_versioned(DLManagedTensorVersioned *self)
{
    deleter_calls++;
    deleter_self = self;
}

static void count_legacy(DLManagedTensor *self)
{
    deleter_calls++;
    deleter_self = self;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < HOST_BYTES; i++)
        host_mem[i] = (unsigned char)(i * 131u + 7u);
    fuzz_devices_init(&devices);
    if (devices.opencl) {
        for (size_t i = 0; i < OCL_BYTES; i++)
            ocl_mirror[i] = (unsigned char)(i * 73u + 11u);
        int64_t n = OCL_BYTES;
        ferry_tensor *t = ferry_tensor_from_data(ocl_mirror, FERRY_UINT8, 1, &n, "opencl:0");
        ocl_export = t ? ferry_tensor_to_dlpack(t) : NULL;
        ferry_tensor_release(t);
        if (!ocl_export || ocl_export->dl_tensor.byte_offset != 0) {
            fprintf(stderr, "fuzz_dlpack: cannot export an opencl:0 buffer: %s\n",
                    ferry_last_error());
            abort();
        }
    }
    fuzz_devices_mark(&devices);
    return 0;
}

/* ferry's dtype for a DLPack dtype, restated from the DLPack spec and API.md. */
static int expected_dtype(DLDataType dt)
{
    if (dt.lanes != 1)
        return -1;
    switch (dt.code) {
    case kDLBool: return dt.bits == 8 ? FERRY_BOOL : -1;
    case kDLUInt: return dt.bits == 8 ? FERRY_UINT8 : -1;
    case kDLInt:
        return dt.bits == 8 ? FERRY_INT8 : dt.bits == 16 ? FERRY_INT16 : dt.bits == 32 ? FERRY_INT32
             : dt.bits == 64 ? FERRY_INT64 : -1;
    case kDLFloat:
        return dt.bits == 16 ? FERRY_FLOAT16 : dt.bits == 32 ? FERRY_FLOAT32
             : dt.bits == 64 ? FERRY_FLOAT64 : -1;
    case kDLBfloat: return dt.bits == 16 ? FERRY_BFLOAT16 : -1;
    default: return -1;
    }
}

static void fill_layout(fuzz_input *in, DLTensor *dl, int64_t *shape, int64_t *strides, int cap)
{
    int n = dl->ndim < cap ? dl->ndim : cap;
    for (int i = 0; i < n; i++) {
        shape[i] = fuzz_dim_value(in, 0, 6);
        strides[i] = fuzz_dim_value(in, -6, 6);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    uint8_t form = fuzz_u8(&in);
    bool versioned = form & 1, no_strides = form & 2, no_deleter = form & 4,
         no_shape = (form & 0x18) == 0x18, no_data = (form & 0x60) == 0x60;

    DLManagedTensorVersioned vm;
    DLManagedTensor lm;
    memset(&vm, 0, sizeof vm);
    memset(&lm, 0, sizeof lm);
    DLTensor *dl = versioned ? &vm.dl_tensor : &lm.dl_tensor;
    uint8_t vmode = fuzz_u8(&in);
    vm.version.major = vmode < 240 ? DLPACK_MAJOR_VERSION : (uint32_t)fuzz_bits(&in, 4);
    vm.version.minor = vmode < 128 ? DLPACK_MINOR_VERSION : (uint32_t)fuzz_bits(&in, 4);
    vm.flags = fuzz_u8(&in) < 200 ? (fuzz_u8(&in) & 1) : fuzz_bits(&in, 8);

    uint8_t dmode = fuzz_u8(&in);
    static const DLDeviceType usual[] = {kDLCPU, kDLCPU, kDLCUDAHost, kDLOpenCL, kDLCUDA};
    dl->device.device_type = dmode < 200 ? usual[dmode % 5] : (DLDeviceType)(int32_t)fuzz_bits(&in, 4);
    dl->device.device_id = fuzz_u8(&in) < 230 ? 0 : (int32_t)fuzz_bits(&in, 4);

    uint8_t cmode = fuzz_u8(&in);
    static const uint8_t bits[] = {8, 16, 32, 64};
    dl->dtype.code = cmode < 220 ? (uint8_t)(cmode % 7) : fuzz_u8(&in);
    dl->dtype.bits = fuzz_u8(&in) < 220 ? bits[cmode % 4] : fuzz_u8(&in);
    dl->dtype.lanes = fuzz_u8(&in) < 240 ? 1 : (uint16_t)fuzz_bits(&in, 2);

    uint8_t nmode = fuzz_u8(&in);
    dl->ndim = nmode < 240 ? nmode % 7 : (int32_t)fuzz_bits(&in, 4);
    /* Arrays of exactly ndim entries (up to 1024) on the heap: reading past them is a
     * bug ASan reports. */
    int cap = dl->ndim < 0 ? 0 : dl->ndim > 1024 ? 1024 : dl->ndim;
    int64_t *shape = malloc((size_t)(cap ? cap : 1) * sizeof *shape);
    int64_t *strides = malloc((size_t)(cap ? cap : 1) * sizeof *strides);
    fill_layout(&in, dl, shape, strides, cap);
    dl->shape = no_shape ? NULL : shape;
    dl->strides = no_strides ? NULL : strides;

    int want_dtype = expected_dtype(dl->dtype);
    int64_t elsize = want_dtype >= 0 ? (int64_t)ferry_dtype_size((ferry_dtype)want_dtype) : 1;
    uint8_t omode = fuzz_u8(&in);
    dl->byte_offset = omode < 220 ? (uint64_t)(omode % 16) * (uint64_t)elsize : fuzz_bits(&in, 8);

    bool opencl = dl->device.device_type == kDLOpenCL;
    bool host = dl->device.device_type == kDLCPU || dl->device.device_type == kDLCUDAHost;
    unsigned char *mem = opencl ? ocl_mirror : host_mem;
    size_t mem_bytes = opencl ? OCL_BYTES : HOST_BYTES;
    size_t base = opencl ? 0 : HOST_BASE;
    if (opencl && ocl_export)
        dl->data = ocl_export->dl_tensor.data;
    else
        dl->data = host_mem + HOST_BASE;
    if (no_data)
        dl->data = NULL;
    vm.deleter = no_deleter ? NULL : count_versioned;
    lm.deleter = no_deleter ? NULL : count_legacy;
    vm.manager_ctx = lm.manager_ctx = &deleter_calls;

    /* What a valid tensor needs, computed here in 128 bits. The device id of a host
     * tensor means nothing (it imports to cpu); any other names a device that exists. */
    int nd = dl->ndim;
    const char *dev_type = opencl ? "opencl" : dl->device.device_type == kDLCUDA ? "cuda" : NULL;
    int32_t dev_id = dl->device.device_id;
    bool device_ok = host || (dev_type && dev_id >= 0 && dev_id < ferry_device_count(dev_type));
    bool valid = (!versioned || vm.version.major == DLPACK_MAJOR_VERSION) && nd >= 0 &&
                 nd <= FERRY_MAX_DIMS && (nd == 0 || dl->shape) && want_dtype >= 0 &&
                 (host || dev_type);
    int64_t numel = 0;
    __int128 lo = 0, hi = 0;
    if (valid)
        valid = fuzz_numel(nd, shape, &numel) && (__int128)numel * elsize <= INT64_MAX;
    int64_t eff[FERRY_MAX_DIMS];
    if (valid) {
        int64_t contig = 1;
        for (int i = nd - 1; i >= 0; i--) {
            eff[i] = dl->strides ? strides[i] : contig;
            /* wraps harmlessly past int64: only a non-empty shape's strides are compared */
            contig = (int64_t)((uint64_t)contig * (uint64_t)(shape[i] ? shape[i] : 1));
        }
        if (numel > 0) {
            for (int i = 0; i < nd; i++) {
                __int128 reach = (__int128)(shape[i] - 1) * eff[i];
                if (reach > 0)
                    hi += reach;
                else
                    lo += reach;
            }
            lo = lo * elsize + (__int128)dl->byte_offset;
            hi = (hi + 1) * elsize + (__int128)dl->byte_offset;
            valid = hi <= INT64_MAX && lo >= -(__int128)INT64_MAX && dl->data;
        }
    }
    /* Inside the memory behind data: accepted for sure (on a device that exists), and
     * its values can be read. */
    bool inside_any_id = valid && (host || (opencl && devices.opencl)) &&
                         (numel == 0 || (lo >= -(__int128)base && hi <= (__int128)(mem_bytes - base)));
    bool inside = inside_any_id && device_ok;
    valid = valid && device_ok;

    deleter_calls = 0;
    deleter_self = NULL;
    ferry_tensor *t = versioned ? ferry_tensor_from_dlpack(&vm) : ferry_tensor_from_dlpack_unversioned(&lm);
    FUZZ_CHECK(deleter_calls == 0, "the deleter ran during import");
    if (!t) {
        FUZZ_CHECK_FAILED_CLEARLY("DLPack import");
        FUZZ_CHECK(!inside || fuzz_empty_but_huge(nd, shape),
                   "a valid DLPack tensor (ndim %d, numel %lld, device type %d) was refused", nd,
                   (long long)numel, (int)dl->device.device_type);
        if (inside_any_id && !device_ok && !fuzz_empty_but_huge(nd, shape)) {
            /* Refused for its device id alone (an OpenCL id past the devices there are,
             * or a negative one): FERRY_ERR_INVALID_DEVICE, naming the device. */
            char name[48], want_msg[64];
            snprintf(name, sizeof name, "%s:%d", dev_type, (int)dev_id);
            snprintf(want_msg, sizeof want_msg, "DLPack device %s: ", name);
            ferry_status st = ferry_last_status();
            FUZZ_CHECK(st == FERRY_ERR_INVALID_DEVICE, "DLPack device %s refused with status %d",
                       name, (int)st);
            FUZZ_CHECK(strstr(ferry_last_error(), want_msg) != NULL,
                       "the refusal of DLPack device %s does not name it", name);
        }
        goto done;
    }
    FUZZ_CHECK(valid, "an invalid DLPack tensor was accepted (ndim %d, dtype %u/%u/%u, device "
               "type %d, version %u)", nd, dl->dtype.code, dl->dtype.bits, dl->dtype.lanes,
               (int)dl->device.device_type, vm.version.major);
    fuzz_check_tensor(t, "imported tensor");
    FUZZ_CHECK(ferry_tensor_ndim(t) == nd, "ndim %d, given %d", ferry_tensor_ndim(t), nd);
    FUZZ_CHECK((int)ferry_tensor_dtype(t) == want_dtype, "dtype %d, expected %d",
               (int)ferry_tensor_dtype(t), want_dtype);
    for (int i = 0; i < nd; i++) {
        FUZZ_CHECK(ferry_tensor_shape(t)[i] == shape[i], "shape[%d]", i);
        /* Strides of size-1 dims carry no information and may be normalized. */
        if (shape[i] > 1 && numel > 0)
            FUZZ_CHECK(ferry_tensor_strides(t)[i] == eff[i], "strides[%d] is %lld, given %lld", i,
                       (long long)ferry_tensor_strides(t)[i], (long long)eff[i]);
    }
    bool read_only = versioned && (vm.flags & DLPACK_FLAG_BITMASK_READ_ONLY);
    FUZZ_CHECK(ferry_tensor_is_read_only(t) == read_only, "read-only flag lost");
    ferry_device dev = ferry_tensor_device(t);
    FUZZ_CHECK(strcmp(dev.type, host ? "cpu" : opencl ? "opencl" : "cuda") == 0,
               "device type %d imported as %s", (int)dl->device.device_type, dev.type);

    if (inside && numel <= MAX_COMPARE) {
        ferry_tensor *c = host ? ferry_tensor_contiguous(t) : ferry_tensor_cpu(t);
        FUZZ_CHECK(c, "reading the imported tensor back");
        fuzz_check_tensor(c, "contiguous copy");
        const unsigned char *got = ferry_tensor_host_data(c);
        FUZZ_CHECK(got || numel == 0, "no host data");
        int64_t idx[FERRY_MAX_DIMS] = {0};
        for (int64_t k = 0; k < numel; k++) {
            __int128 at = (__int128)base + (__int128)dl->byte_offset;
            for (int i = 0; i < nd; i++)
                at += (__int128)idx[i] * eff[i] * elsize;
            FUZZ_CHECK(memcmp(got + k * elsize, mem + (size_t)at, (size_t)elsize) == 0,
                       "element %lld differs from the memory its layout addresses", (long long)k);
            for (int i = nd - 1; i >= 0; i--) {
                if (++idx[i] < shape[i])
                    break;
                idx[i] = 0;
            }
        }
        char *r = ferry_tensor_repr(c);
        FUZZ_CHECK(r && strncmp(r, "tensor(", 7) == 0, "repr: %s", r ? r : "(NULL)");
        ferry_free(r);
        ferry_tensor_release(c);
        if (read_only && host && numel > 0) {
            unsigned char before[HOST_BYTES];
            memcpy(before, host_mem, sizeof before);
            FUZZ_CHECK(ferry_tensor_fill(t, 1.0) != FERRY_OK, "fill of a read-only import");
            FUZZ_CHECK_FAILED_CLEARLY("fill of a read-only tensor");
            FUZZ_CHECK(memcmp(before, host_mem, sizeof before) == 0, "read-only memory changed");
        }
    }
    ferry_tensor *v = ferry_tensor_retain(t);
    ferry_tensor_release(t);
    FUZZ_CHECK(deleter_calls == 0, "the deleter ran with a reference left");
    ferry_tensor_release(v);
    if (!no_deleter) {
        FUZZ_CHECK(deleter_calls == 1, "the deleter ran %d times", deleter_calls);
        FUZZ_CHECK(deleter_self == (versioned ? (void *)&vm : (void *)&lm),
                   "the deleter got another struct");
    }
done:
    FUZZ_CHECK(deleter_calls == (t && !no_deleter ? 1 : 0), "deleter calls: %d", deleter_calls);
    free(shape);
    free(strides);
    fuzz_check_memory_back(&devices);
    return 0;
}

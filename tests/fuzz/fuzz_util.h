/* Shared by the libFuzzer harnesses: reading typed values from the fuzzer's bytes, the
 * invariant check that turns a wrong answer into a crash libFuzzer records, and the
 * memory bookkeeping every input must leave as it found it. */
#ifndef FERRY_FUZZ_UTIL_H
#define FERRY_FUZZ_UTIL_H

#include <ferry/ferry.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken invariant is a finding like a crash: print what and where, then abort so
 * libFuzzer saves the input. */
#define FUZZ_CHECK(cond, ...)                                                             \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, " (last error: %s)\n", ferry_last_error());                   \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* A failed call must say why: a status other than FERRY_OK and a message. */
#define FUZZ_CHECK_FAILED_CLEARLY(what)                                                   \
    FUZZ_CHECK(ferry_last_status() != FERRY_OK && ferry_last_error()[0] != '\0',          \
               "%s failed without a status and a message", what)

typedef struct fuzz_input {
    const uint8_t *p;
    size_t n;
} fuzz_input;

static inline uint64_t fuzz_bits(fuzz_input *in, int nbytes)
{
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++) {
        v <<= 8;
        if (in->n) {
            v |= *in->p++;
            in->n--;
        }
    }
    return v;
}

static inline uint8_t fuzz_u8(fuzz_input *in)
{
    return (uint8_t)fuzz_bits(in, 1);
}

static inline int64_t fuzz_i64(fuzz_input *in)
{
    return (int64_t)fuzz_bits(in, 8);
}

/* Mostly small values (the ones that make valid tensors), sometimes the edges and raw
 * 64-bit values (the ones that find overflows). */
static inline int64_t fuzz_dim_value(fuzz_input *in, int64_t small_lo, int64_t small_hi)
{
    uint8_t mode = fuzz_u8(in);
    switch (mode >> 5) {
    case 0:
        return fuzz_i64(in);
    case 1: {
        static const int64_t edges[] = {INT64_MAX,     INT64_MIN,       INT64_MAX - 1,
                                        INT64_MIN + 1, (int64_t)1 << 62, ((int64_t)1 << 62) + 1,
                                        (int64_t)1 << 32, ((int64_t)1 << 31) - 1,
                                        (int64_t)1 << 31, -((int64_t)1 << 32), -1, 0};
        return edges[(mode & 31) % (sizeof edges / sizeof edges[0])];
    }
    default:
        return small_lo + (int64_t)(mode & 31) % (small_hi - small_lo + 1);
    }
}

/* Product of the dims without wrap-around; false when it does not fit in int64. */
static inline bool fuzz_numel(int ndim, const int64_t *shape, int64_t *out)
{
    __int128 n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return false;
        n *= shape[i];
        if (n > INT64_MAX)
            n = (__int128)INT64_MAX + 1; /* stays too big; avoids __int128 overflow */
    }
    if (n > INT64_MAX)
        return false;
    *out = (int64_t)n;
    return true;
}

/* An empty shape whose other dims multiply past int64 (0 x 2^62 x 4): numel is 0, but
 * contiguous strides cannot be represented, so refusing it is as right as accepting it. */
static inline bool fuzz_empty_but_huge(int ndim, const int64_t *shape)
{
    __int128 n = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            empty = true;
        else if (shape[i] > 0 && n <= INT64_MAX)
            n *= shape[i];
    }
    return empty && n > INT64_MAX;
}

/* Device types every harness moves tensors through; opencl is optional (its absence
 * is printed once). */
typedef struct fuzz_devices {
    bool sim, opencl;
    uint64_t cpu0, sim0, ocl0; /* live bytes once the harness's own setup is done */
} fuzz_devices;

static inline uint64_t fuzz_allocated(const char *device)
{
    ferry_memory_stats s;
    if (ferry_memory_stats_get(device, &s) != FERRY_OK)
        return 0;
    return s.allocated;
}

/* Records the live bytes every later input must return to. */
static inline void fuzz_devices_mark(fuzz_devices *d)
{
    d->cpu0 = fuzz_allocated("cpu");
    d->sim0 = d->sim ? fuzz_allocated("sim:0") : 0;
    d->ocl0 = d->opencl ? fuzz_allocated("opencl:0") : 0;
}

static inline void fuzz_devices_init(fuzz_devices *d)
{
    d->sim = ferry_device_count("sim") > 0;
    d->opencl = ferry_device_count("opencl") > 0;
    if (!d->sim)
        fprintf(stderr, "fuzz: sim:0 unavailable (%s): not moving tensors through it\n",
                ferry_backend_status("sim"));
    if (!d->opencl)
        fprintf(stderr, "fuzz: opencl:0 unavailable (%s): not moving tensors through it\n",
                ferry_backend_status("opencl"));
    fuzz_devices_mark(d);
}

/* Everything an input created is released by its end: the live bytes of every device
 * are back where they were. */
static inline void fuzz_check_memory_back(const fuzz_devices *d)
{
    uint64_t cpu = fuzz_allocated("cpu");
    FUZZ_CHECK(cpu == d->cpu0, "cpu: %llu bytes allocated after release, %llu before",
               (unsigned long long)cpu, (unsigned long long)d->cpu0);
    if (d->sim) {
        uint64_t sim = fuzz_allocated("sim:0");
        FUZZ_CHECK(sim == d->sim0, "sim:0: %llu bytes allocated after release, %llu before",
                   (unsigned long long)sim, (unsigned long long)d->sim0);
    }
    if (d->opencl) {
        uint64_t ocl = fuzz_allocated("opencl:0");
        FUZZ_CHECK(ocl == d->ocl0, "opencl:0: %llu bytes allocated after release, %llu before",
                   (unsigned long long)ocl, (unsigned long long)d->ocl0);
    }
}

/* A successful result's shape is sane: no negative size and numel the product. */
static inline void fuzz_check_tensor(const ferry_tensor *t, const char *what)
{
    int nd = ferry_tensor_ndim(t);
    FUZZ_CHECK(nd >= 0 && nd <= FERRY_MAX_DIMS, "%s: ndim %d", what, nd);
    const int64_t *shape = ferry_tensor_shape(t);
    int64_t n = 0;
    FUZZ_CHECK(fuzz_numel(nd, shape, &n), "%s: shape with a negative size or an element count "
               "past int64", what);
    FUZZ_CHECK(ferry_tensor_numel(t) == n, "%s: numel %lld but the shape's product is %lld",
               what, (long long)ferry_tensor_numel(t), (long long)n);
    /* ferry.h: SIZE_MAX when numel x size does not fit (an expanded view can get there;
     * no copy of it can be made), so a wrapped or truncated count is still a finding. */
    __int128 bytes = (__int128)n * (__int128)ferry_dtype_size(ferry_tensor_dtype(t));
    size_t nbytes = ferry_tensor_nbytes(t);
    if (bytes > INT64_MAX)
        FUZZ_CHECK(nbytes == SIZE_MAX, "%s: nbytes %zu, but numel x size (numel %lld) does "
                   "not fit, so it must be SIZE_MAX", what, nbytes, (long long)n);
    else
        FUZZ_CHECK((__int128)nbytes == bytes, "%s: nbytes %zu, numel x size %lld", what, nbytes,
                   (long long)bytes);
}

#endif

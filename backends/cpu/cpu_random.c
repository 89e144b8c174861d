/* The random family on the cpu: the portable samplers of backends/kernels/ferry_random.h
 * compiled as host C (with -ffp-contract=off, see CMakeLists.txt), so the numbers are the
 * ones opencl and cuda produce, and every other device's fallback gets them too. Each
 * Philox block is independent, so blocks split across OpenMP threads in any way. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <ferry/half.h>
#include <ferry/ops/random.h>

#include "cpu_internal.h"
#include "cpu_random_vec_api.h"
#include "ferry_random.h"

static int64_t elem_size(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_BOOL:
    case FERRY_UINT8:
    case FERRY_INT8:
        return 1;
    case FERRY_INT16:
    case FERRY_FLOAT16:
    case FERRY_BFLOAT16:
        return 2;
    case FERRY_INT32:
    case FERRY_FLOAT32:
        return 4;
    default:
        return 8;
    }
}

/* Where element i lives: dense fast path, else row-major over shape with strides. */
static int64_t elem_offset(const ferry_kernel_tensor *t, bool dense, int64_t i)
{
    if (dense)
        return (int64_t)(t->byte_offset / elem_size(t->dtype)) + i;
    int64_t off = (int64_t)(t->byte_offset / elem_size(t->dtype));
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t ext = t->shape[d];
        off += (i % ext) * t->strides[d];
        i /= ext;
    }
    return off;
}

static void store_float(const ferry_kernel_tensor *t, int64_t at, double v)
{
    char *base = (char *)t->buffer;
    switch (t->dtype) {
    case FERRY_FLOAT16:
        ((uint16_t *)base)[at] = ferry_f32_to_f16((float)v);
        break;
    case FERRY_BFLOAT16:
        ((uint16_t *)base)[at] = ferry_f32_to_bf16((float)v);
        break;
    case FERRY_FLOAT32:
        ((float *)base)[at] = (float)v;
        break;
    default:
        ((double *)base)[at] = v;
        break;
    }
}

static void store_int(const ferry_kernel_tensor *t, int64_t at, int64_t v)
{
    char *base = (char *)t->buffer;
    switch (t->dtype) {
    case FERRY_BOOL:
        ((uint8_t *)base)[at] = v != 0;
        break;
    case FERRY_UINT8:
        ((uint8_t *)base)[at] = (uint8_t)v;
        break;
    case FERRY_INT8:
        ((int8_t *)base)[at] = (int8_t)(uint8_t)v;
        break;
    case FERRY_INT16:
        ((int16_t *)base)[at] = (int16_t)(uint16_t)v;
        break;
    case FERRY_INT32:
        ((int32_t *)base)[at] = (int32_t)(uint32_t)v;
        break;
    case FERRY_INT64:
        ((int64_t *)base)[at] = v;
        break;
    case FERRY_FLOAT16:
    case FERRY_BFLOAT16:
    case FERRY_FLOAT32:
        store_float(t, at, (double)(float)v);
        break;
    default:
        ((double *)base)[at] = (double)v;
        break;
    }
}

static bool is_dense(const ferry_kernel_tensor *t)
{
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != want)
            return false;
        want *= t->shape[d];
    }
    return true;
}

static ferry_status cpu_random(int32_t device, const ferry_op_args *args)
{
    (void)device;
    if (args->ntensors != 1 || args->noutputs != 1 || !args->params ||
        args->params_size < sizeof(ferry_random_params))
        return cpu_host->error(FERRY_ERR_INVALID_ARGUMENT, "ferry.random: bad arguments");
    const ferry_random_params *rp = args->params;
    const ferry_kernel_tensor *out = &args->tensors[0];
    bool fl = out->dtype == FERRY_FLOAT16 || out->dtype == FERRY_BFLOAT16 ||
              out->dtype == FERRY_FLOAT32 || out->dtype == FERRY_FLOAT64;
    if (((rp->kind == FERRY_RANDOM_UNIFORM || rp->kind == FERRY_RANDOM_NORMAL) && !fl) ||
        (rp->kind == FERRY_RANDOM_BITS && out->dtype != FERRY_INT64) || rp->kind < 0 ||
        rp->kind > FERRY_RANDOM_BITS || (rp->offset & 3u))
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "ferry.random: kind %d into dtype %d",
                               (int)rp->kind, (int)out->dtype);
    int64_t n = 1;
    for (int d = 0; d < out->ndim; d++)
        n *= out->shape[d];
    if (n == 0)
        return FERRY_OK;
    fk_random p = fk_random_launch(rp, out->dtype, 0, n);
    bool dense = is_dense(out);
    int per;
    if (rp->kind == FERRY_RANDOM_INT || rp->kind == FERRY_RANDOM_BITS)
        per = fk_random_int_narrow(&p) ? 4 : 2;
    else
        per = out->dtype == FERRY_FLOAT64 ? 2 : 4;
    int64_t nb = (n + per - 1) / per;
    int threads = cpu_threads_for(nb, 8192);
    if (out->dtype == FERRY_FLOAT32 && dense &&
        (rp->kind == FERRY_RANDOM_UNIFORM || rp->kind == FERRY_RANDOM_NORMAL)) {
        /* Whole blocks through the vector build for this CPU (cpu_random_vec.c, the same
         * numbers), split on multiples of 16 blocks so each thread's part is whole
         * vector steps; what a step does not cover goes through the scalar code. */
        float *o = (float *)out->buffer + out->byte_offset / sizeof(float);
        int64_t nfull = n / 4;
        int nt = cpu_threads_for(nfull, 16384);
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int64_t lo, hi;
            cpu_thread_part(nfull, 16, &lo, &hi);
            int64_t j = lo;
            if (lo < hi)
                j += cpu_random_f32_vec(&p, (uint64_t)lo, hi - lo, o + 4 * lo);
            for (; j < hi; j++)
                fk_random_block_f32(&p, (uint64_t)j, o + 4 * j);
        }
        if (nfull < nb) {
            float v[4];
            fk_random_block_f32(&p, (uint64_t)nfull, v);
            for (int64_t k = 4 * nfull; k < n; k++)
                o[k] = v[k - 4 * nfull];
        }
        return FERRY_OK;
    }
    if ((out->dtype == FERRY_FLOAT16 || out->dtype == FERRY_BFLOAT16) && dense &&
        (rp->kind == FERRY_RANDOM_UNIFORM || rp->kind == FERRY_RANDOM_NORMAL)) {
        /* float32 tiles from the vector build, rounded as store_float rounds them
         * (cpu_f32_to_f16_n / _bf16_n convert bit for bit as ferry/half.h does). */
        uint16_t *o = (uint16_t *)out->buffer + out->byte_offset / sizeof(uint16_t);
        bool h = out->dtype == FERRY_FLOAT16;
        int64_t nfull = n / 4;
        int nt = cpu_threads_for(nfull, 16384);
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int64_t lo, hi;
            cpu_thread_part(nfull, 16, &lo, &hi);
            float tile[4 * 256];
            for (int64_t j0 = lo; j0 < hi; j0 += 256) {
                int64_t m = hi - j0 < 256 ? hi - j0 : 256;
                int64_t j = cpu_random_f32_vec(&p, (uint64_t)j0, m, tile);
                for (; j < m; j++)
                    fk_random_block_f32(&p, (uint64_t)(j0 + j), tile + 4 * j);
                if (h)
                    cpu_f32_to_f16_n(o + 4 * j0, tile, 4 * m);
                else
                    cpu_f32_to_bf16_n(o + 4 * j0, tile, 4 * m);
            }
        }
        if (nfull < nb) {
            float v[4];
            fk_random_block_f32(&p, (uint64_t)nfull, v);
            for (int64_t k = 4 * nfull; k < n; k++)
                store_float(out, elem_offset(out, true, k), v[k - 4 * nfull]);
        }
        return FERRY_OK;
    }
    if ((out->dtype == FERRY_INT32 || out->dtype == FERRY_INT64) && dense &&
        rp->kind == FERRY_RANDOM_INT && fk_random_int_narrow(&p)) {
        /* As the float32 path: whole blocks through the vector build, the rest scalar. */
        int wide = out->dtype == FERRY_INT64;
        char *o = (char *)out->buffer + out->byte_offset;
        int64_t es = wide ? 8 : 4, nfull = n / 4;
        int nt = cpu_threads_for(nfull, 16384);
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int64_t lo, hi;
            cpu_thread_part(nfull, 16, &lo, &hi);
            int64_t j = lo;
            if (lo < hi)
                j += cpu_random_int_vec(&p, (uint64_t)lo, hi - lo, o + 4 * es * lo, wide);
            for (; j < hi; j++) {
                int64_t v[4] = {0, 0, 0, 0}; /* all 4 set: the draw is narrow */
                fk_random_block_int(&p, (uint64_t)j, v);
                for (int k = 0; k < 4; k++)
                    store_int(out, elem_offset(out, true, 4 * j + k), v[k]);
            }
        }
        if (nfull < nb) {
            int64_t v[4] = {0, 0, 0, 0}; /* all 4 set: the draw is narrow */
            fk_random_block_int(&p, (uint64_t)nfull, v);
            for (int64_t k = 4 * nfull; k < n; k++)
                store_int(out, elem_offset(out, true, k), v[k - 4 * nfull]);
        }
        return FERRY_OK;
    }
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t j = 0; j < nb; j++) {
        int64_t first = j * per;
        int cnt = n - first < per ? (int)(n - first) : per;
        if (rp->kind == FERRY_RANDOM_INT || rp->kind == FERRY_RANDOM_BITS) {
            int64_t v[4];
            fk_random_block_int(&p, (uint64_t)j, v);
            for (int k = 0; k < cnt; k++)
                store_int(out, elem_offset(out, dense, first + k), v[k]);
        } else if (out->dtype == FERRY_FLOAT64) {
            double v[2];
            fk_random_block_f64(&p, (uint64_t)j, v);
            for (int k = 0; k < cnt; k++)
                store_float(out, elem_offset(out, dense, first + k), v[k]);
        } else if (out->dtype == FERRY_FLOAT32 && dense) {
            float v[4];
            fk_random_block_f32(&p, (uint64_t)j, v);
            float *o = (float *)out->buffer + out->byte_offset / sizeof(float) + first;
            for (int k = 0; k < cnt; k++)
                o[k] = v[k];
        } else {
            float v[4];
            fk_random_block_f32(&p, (uint64_t)j, v);
            for (int k = 0; k < cnt; k++)
                store_float(out, elem_offset(out, dense, first + k), v[k]);
        }
    }
    return FERRY_OK;
}

const ferry_named_entry cpu_named_random[] = {
    {FERRY_RANDOM_OP, cpu_random},
    {NULL, NULL},
};

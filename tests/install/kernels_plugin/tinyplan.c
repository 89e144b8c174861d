/* tinyplan: one host-memory device whose only kernel, unary NEG on float32, walks the
 * geometry fk_plan builds (dims merged, broadcasts and strides in elements), as a GPU
 * kernel of backends/kernels would. Everything else falls back to the cpu backend. */
#include <stdlib.h>
#include <string.h>

#include <ferry/backend.h>

#include <fk_plan.h>

static const ferry_host_api *host;

static ferry_status tp_init(void **ctx, int32_t *count, char *reason, size_t cap)
{
    (void)reason;
    (void)cap;
    *count = 1;
    return FERRY_OK;
}

static ferry_status tp_info(void *ctx, int32_t device, ferry_device_info *out)
{
    (void)device;
    memset(out, 0, sizeof *out);
    strcpy(out->name, "tinyplan");
    strcpy(out->vendor, "ferry tests");
    out->host_accessible = true;
    return FERRY_OK;
}

static ferry_status tp_alloc(void *ctx, int32_t device, size_t nbytes, void **buffer)
{
    (void)device;
    if (posix_memalign(buffer, 64, nbytes) != 0)
        return host->error(FERRY_ERR_OUT_OF_MEMORY, "tinyplan:0: alloc of %zu bytes", nbytes);
    return FERRY_OK;
}

static void tp_free(void *ctx, int32_t device, void *buffer)
{
    (void)device;
    free(buffer);
}

static ferry_status tp_from_host(void *ctx, int32_t device, void *dst, size_t off, const void *src,
                                 size_t n)
{
    (void)device;
    memcpy((char *)dst + off, src, n);
    return FERRY_OK;
}

static ferry_status tp_to_host(void *ctx, int32_t device, void *dst, const void *src, size_t off,
                               size_t n)
{
    (void)device;
    memcpy(dst, (const char *)src + off, n);
    return FERRY_OK;
}

static ferry_status tp_on_device(void *ctx, int32_t device, void *dst, size_t doff, const void *src,
                                 size_t soff, size_t n)
{
    (void)device;
    memcpy((char *)dst + doff, (const char *)src + soff, n);
    return FERRY_OK;
}

static ferry_status tp_sync(void *ctx, int32_t device)
{
    (void)device;
    return FERRY_OK;
}

static ferry_status tp_unary(void *ctx, int32_t device, ferry_unary_op op,
                             const ferry_kernel_tensor *out,
                             const ferry_kernel_tensor *in)
{
    fk_plan_ctx c = {host, "tinyplan", device};
    ferry_status st = fk_plan_check_unary(&c, op, out, in);
    if (st != FERRY_OK)
        return st;
    if (op != FERRY_UNARY_NEG || out->dtype != FERRY_FLOAT32)
        return FERRY_ERR_UNSUPPORTED;
    const ferry_kernel_tensor *ops[2] = {out, in};
    fk_geom g;
    if ((st = fk_plan_geom(&c, &g, 2, ops)) != FERRY_OK)
        return st;
    float *o = out->buffer;
    const float *x = in->buffer;
    for (int64_t i = 0; i < g.numel; i++) {
        int64_t oo = g.offset[0], io = g.offset[1], rest = i;
        if (g.flags & FK_CONTIG) {
            oo += i;
            io += i;
        } else {
            for (int d = g.ndim - 1; d >= 0; d--) {
                int64_t k = rest % g.shape[d];
                rest /= g.shape[d];
                oo += k * g.stride[0][d];
                io += k * g.stride[1][d];
            }
        }
        o[oo] = -x[io];
    }
    return FERRY_OK;
}

static const ferry_backend_ops ops = {
    .abi_major = FERRY_BACKEND_ABI_MAJOR,
    .abi_minor = FERRY_BACKEND_ABI_MINOR,
    .struct_size = sizeof(ferry_backend_ops),
    .name = "tinyplan",
    .version = "0.1.0",
    .init = tp_init,
    .device_info = tp_info,
    .alloc = tp_alloc,
    .free = tp_free,
    .copy_from_host = tp_from_host,
    .copy_to_host = tp_to_host,
    .copy_on_device = tp_on_device,
    .synchronize = tp_sync,
    .unary = tp_unary,
};

const ferry_backend_ops *ferry_backend_entry2(const ferry_host_api *h)
{
    host = h;
    return &ops;
}

/* ABI 1.x plugins under the 2.0 core: their table is read through the frozen 1.2 layout
 * (ferry/backend_v1.h) and wrapped in a 2.0 table of adapters whose context is the 1.x
 * table itself, so the rest of the core knows one ABI. An entry the old table lacks
 * (beyond its struct_size, or NULL) stays NULL in the wrapper, as a 2.0 plugin's
 * absent entry would. */
#include <ferry/backend_v1.h>

#include "internal.h"

#define V1(ctx) ((const ferry_backend_ops_v1 *)(ctx))

static ferry_status a_init(void **ctx, int32_t *count, char *reason, size_t cap)
{
    return V1(*ctx)->init(count, reason, cap);
}
static void a_shutdown(void *ctx)
{
    V1(ctx)->shutdown();
}
static ferry_status a_device_info(void *ctx, int32_t dev, ferry_device_info *out)
{
    return V1(ctx)->device_info(dev, out);
}
static ferry_status a_alloc(void *ctx, int32_t dev, size_t n, void **buf)
{
    return V1(ctx)->alloc(dev, n, buf);
}
static void a_free(void *ctx, int32_t dev, void *buf)
{
    V1(ctx)->free(dev, buf);
}
static ferry_status a_copy_from_host(void *ctx, int32_t dev, void *dst, size_t off,
                                     const void *src, size_t n)
{
    return V1(ctx)->copy_from_host(dev, dst, off, src, n);
}
static ferry_status a_copy_to_host(void *ctx, int32_t dev, void *dst, const void *src, size_t off,
                                   size_t n)
{
    return V1(ctx)->copy_to_host(dev, dst, src, off, n);
}
static ferry_status a_copy_on_device(void *ctx, int32_t dev, void *dst, size_t doff,
                                     const void *src, size_t soff, size_t n)
{
    return V1(ctx)->copy_on_device(dev, dst, doff, src, soff, n);
}
static ferry_status a_synchronize(void *ctx, int32_t dev)
{
    return V1(ctx)->synchronize(dev);
}
static ferry_status a_copy_peer(void *ctx, int32_t ddev, void *dst, size_t doff, int32_t sdev,
                                const void *src, size_t soff, size_t n)
{
    return V1(ctx)->copy_peer(ddev, dst, doff, sdev, src, soff, n);
}
static ferry_status a_host_alloc(void *ctx, size_t n, void **ptr)
{
    return V1(ctx)->host_alloc(n, ptr);
}
static void a_host_free(void *ctx, void *ptr)
{
    V1(ctx)->host_free(ptr);
}
static bool a_supports(void *ctx, int32_t dev, ferry_op op, int subop, const ferry_dtype *dt,
                       int n)
{
    return V1(ctx)->supports(dev, op, subop, dt, n);
}
static ferry_status a_fill(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                           const void *value)
{
    return V1(ctx)->fill(dev, out, value);
}
static ferry_status a_cast(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                           const ferry_kernel_tensor *in)
{
    return V1(ctx)->cast(dev, out, in);
}
static ferry_status a_copy_strided(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                                   const ferry_kernel_tensor *in)
{
    return V1(ctx)->copy_strided(dev, out, in);
}
static ferry_status a_unary(void *ctx, int32_t dev, ferry_unary_op op,
                            const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    return V1(ctx)->unary(dev, op, out, in);
}
static ferry_status a_binary(void *ctx, int32_t dev, ferry_binary_op op,
                             const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                             const ferry_kernel_tensor *b)
{
    return V1(ctx)->binary(dev, op, out, a, b);
}
static ferry_status a_reduce(void *ctx, int32_t dev, ferry_reduce_op op,
                             const ferry_kernel_tensor *out, const ferry_kernel_tensor *in)
{
    return V1(ctx)->reduce(dev, op, out, in);
}
static ferry_status a_matmul(void *ctx, int32_t dev, const ferry_kernel_tensor *out,
                             const ferry_kernel_tensor *a, const ferry_kernel_tensor *b)
{
    return V1(ctx)->matmul(dev, out, a, b);
}
static ferry_named_kernel a_get_kernel(void *ctx, int32_t dev, const char *name)
{
    return V1(ctx)->get_kernel(dev, name);
}
static ferry_status a_binary_scalar(void *ctx, int32_t dev, ferry_binary_op op,
                                    const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                    const ferry_kernel_scalar *b)
{
    return V1(ctx)->binary_scalar(dev, op, out, a, b);
}
static ferry_status a_queue_create(void *ctx, int32_t dev, void **q)
{
    return V1(ctx)->queue_create(dev, q);
}
static void a_queue_destroy(void *ctx, int32_t dev, void *q)
{
    V1(ctx)->queue_destroy(dev, q);
}
static ferry_status a_set_queue(void *ctx, int32_t dev, void *q)
{
    return V1(ctx)->set_queue(dev, q);
}
static ferry_status a_event_record(void *ctx, int32_t dev, void *q, void **ev)
{
    return V1(ctx)->event_record(dev, q, ev);
}
static ferry_status a_event_wait(void *ctx, int32_t dev, void *q, void *ev)
{
    return V1(ctx)->event_wait(dev, q, ev);
}
static ferry_status a_event_synchronize(void *ctx, int32_t dev, void *ev)
{
    return V1(ctx)->event_synchronize(dev, ev);
}
static ferry_status a_event_query(void *ctx, int32_t dev, void *ev, bool *done)
{
    return V1(ctx)->event_query(dev, ev, done);
}
static void a_event_destroy(void *ctx, int32_t dev, void *ev)
{
    V1(ctx)->event_destroy(dev, ev);
}
static ferry_status a_event_elapsed(void *ctx, int32_t dev, void *start, void *end, float *ms)
{
    return V1(ctx)->event_elapsed(dev, start, end, ms);
}
static ferry_status a_copy_from_host_async(void *ctx, int32_t dev, void *dst, size_t off,
                                           const void *src, size_t n)
{
    return V1(ctx)->copy_from_host_async(dev, dst, off, src, n);
}
static ferry_status a_copy_to_host_async(void *ctx, int32_t dev, void *dst, const void *src,
                                         size_t off, size_t n)
{
    return V1(ctx)->copy_to_host_async(dev, dst, src, off, n);
}
static ferry_status a_host_map(void *ctx, int32_t dev, void *buf, size_t off, size_t n,
                               bool write, void **ptr)
{
    return V1(ctx)->host_map(dev, buf, off, n, write, ptr);
}
static ferry_status a_host_unmap(void *ctx, int32_t dev, void *buf, void *ptr)
{
    return V1(ctx)->host_unmap(dev, buf, ptr);
}
static ferry_status a_queue_native(void *ctx, int32_t dev, void *q, int64_t *stream)
{
    return V1(ctx)->queue_native(dev, q, stream);
}
static ferry_status a_event_wait_native(void *ctx, int32_t dev, int64_t stream, void *ev)
{
    return V1(ctx)->event_wait_native(dev, stream, ev);
}

/* The adapter for `member` when the old table has that entry, else NULL. */
#define ADAPT(member)                                                                   \
    out->member = FERRY_OPS_V1_HAS(v1, member) && v1->member ? a_##member : NULL

void ferry__backend_v1_wrap(const ferry_backend_ops_v1 *v1, ferry_backend_ops *out)
{
    memset(out, 0, sizeof *out);
    out->abi_major = v1->abi_major;
    out->abi_minor = v1->abi_minor;
    out->struct_size = sizeof *out;
    out->name = v1->name;
    out->version = v1->version;
    ADAPT(init);
    ADAPT(shutdown);
    ADAPT(device_info);
    ADAPT(alloc);
    ADAPT(free);
    ADAPT(copy_from_host);
    ADAPT(copy_to_host);
    ADAPT(copy_on_device);
    ADAPT(synchronize);
    ADAPT(copy_peer);
    ADAPT(host_alloc);
    ADAPT(host_free);
    ADAPT(supports);
    ADAPT(fill);
    ADAPT(cast);
    ADAPT(copy_strided);
    ADAPT(unary);
    ADAPT(binary);
    ADAPT(reduce);
    ADAPT(matmul);
    ADAPT(get_kernel);
    ADAPT(binary_scalar);
    ADAPT(queue_create);
    ADAPT(queue_destroy);
    ADAPT(set_queue);
    ADAPT(event_record);
    ADAPT(event_wait);
    ADAPT(event_synchronize);
    ADAPT(event_query);
    ADAPT(event_destroy);
    ADAPT(event_elapsed);
    ADAPT(copy_from_host_async);
    ADAPT(copy_to_host_async);
    ADAPT(host_map);
    ADAPT(host_unmap);
    ADAPT(queue_native);
    ADAPT(event_wait_native);
    if (FERRY_OPS_V1_HAS(v1, dlpack_device_type))
        out->dlpack_device_type = v1->dlpack_device_type;
    if (FERRY_OPS_V1_HAS(v1, handles_are_addresses))
        out->handles_are_addresses = v1->handles_are_addresses;
}

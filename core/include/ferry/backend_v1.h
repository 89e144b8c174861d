/**
 * The backend ABI 1.x table, frozen at 1.2: what a plugin built before ABI 2.0 exports
 * through the symbol FERRY_BACKEND_V1_ENTRY_SYMBOL. The core still loads such plugins
 * (DESIGN.md, "The plugin ABI"): it hands them ferry_host_api with abi_major 1, reads only
 * the members their struct_size covers, and calls their entries without a context.
 * Every member means what its 2.0 namesake in ferry/backend.h means, less the context
 * argument. New plugins use ferry/backend.h; this header exists so the core can read old
 * tables, and so the source of a 1.x plugin keeps building.
 */
#ifndef FERRY_BACKEND_V1_H
#define FERRY_BACKEND_V1_H

#include <ferry/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_BACKEND_V1_ABI_MAJOR 1
/** The last 1.x minor; a 1.x plugin of a later minor is read as 1.2. */
#define FERRY_BACKEND_V1_ABI_MINOR 2
#define FERRY_BACKEND_V1_ENTRY_SYMBOL "ferry_backend_entry"

/** FERRY_OPS_HAS for a 1.x table. */
#define FERRY_OPS_V1_HAS(ops, member)                                                   \
    ((ops)->struct_size >= offsetof(ferry_backend_ops_v1, member) + sizeof((ops)->member))

typedef struct ferry_backend_ops_v1 {
    uint32_t abi_major;
    uint32_t abi_minor;
    size_t struct_size;
    const char *name;
    const char *version;

    /* --- ABI 1.0 --- */
    ferry_status (*init)(int32_t *device_count, char *reason, size_t reason_cap);
    void (*shutdown)(void);
    ferry_status (*device_info)(int32_t device, ferry_device_info *out);

    ferry_status (*alloc)(int32_t device, size_t nbytes, void **buffer);
    void (*free)(int32_t device, void *buffer);
    ferry_status (*copy_from_host)(int32_t device, void *dst, size_t dst_offset,
                                   const void *src, size_t nbytes);
    ferry_status (*copy_to_host)(int32_t device, void *dst, const void *src,
                                 size_t src_offset, size_t nbytes);
    ferry_status (*copy_on_device)(int32_t device, void *dst, size_t dst_offset,
                                   const void *src, size_t src_offset, size_t nbytes);
    ferry_status (*synchronize)(int32_t device);

    ferry_status (*copy_peer)(int32_t dst_device, void *dst, size_t dst_offset,
                              int32_t src_device, const void *src, size_t src_offset,
                              size_t nbytes);
    ferry_status (*host_alloc)(size_t nbytes, void **ptr);
    void (*host_free)(void *ptr);

    bool (*supports)(int32_t device, ferry_op op, int subop, const ferry_dtype *dtypes,
                     int ndtypes);
    ferry_status (*fill)(int32_t device, const ferry_kernel_tensor *out, const void *value);
    ferry_status (*cast)(int32_t device, const ferry_kernel_tensor *out,
                         const ferry_kernel_tensor *in);
    ferry_status (*copy_strided)(int32_t device, const ferry_kernel_tensor *out,
                                 const ferry_kernel_tensor *in);
    ferry_status (*unary)(int32_t device, ferry_unary_op op, const ferry_kernel_tensor *out,
                          const ferry_kernel_tensor *in);
    ferry_status (*binary)(int32_t device, ferry_binary_op op, const ferry_kernel_tensor *out,
                           const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);
    ferry_status (*reduce)(int32_t device, ferry_reduce_op op, const ferry_kernel_tensor *out,
                           const ferry_kernel_tensor *in);
    ferry_status (*matmul)(int32_t device, const ferry_kernel_tensor *out,
                           const ferry_kernel_tensor *a, const ferry_kernel_tensor *b);

    /* --- ABI 1.1 --- */
    ferry_named_kernel (*get_kernel)(int32_t device, const char *name);
    int32_t dlpack_device_type;
    bool handles_are_addresses;
    ferry_status (*binary_scalar)(int32_t device, ferry_binary_op op,
                                  const ferry_kernel_tensor *out, const ferry_kernel_tensor *a,
                                  const ferry_kernel_scalar *b);
    /* --- ABI 1.2 (the last 1.x minor: nothing is appended here) --- */
    ferry_status (*queue_create)(int32_t device, void **queue);
    void (*queue_destroy)(int32_t device, void *queue);
    ferry_status (*set_queue)(int32_t device, void *queue);
    ferry_status (*event_record)(int32_t device, void *queue, void **event);
    ferry_status (*event_wait)(int32_t device, void *queue, void *event);
    ferry_status (*event_synchronize)(int32_t device, void *event);
    ferry_status (*event_query)(int32_t device, void *event, bool *done);
    void (*event_destroy)(int32_t device, void *event);
    ferry_status (*event_elapsed)(int32_t device, void *start, void *end, float *ms);
    ferry_status (*copy_from_host_async)(int32_t device, void *dst, size_t dst_offset,
                                         const void *src, size_t nbytes);
    ferry_status (*copy_to_host_async)(int32_t device, void *dst, const void *src,
                                       size_t src_offset, size_t nbytes);
    ferry_status (*host_map)(int32_t device, void *buffer, size_t offset, size_t nbytes,
                             bool write, void **ptr);
    ferry_status (*host_unmap)(int32_t device, void *buffer, void *ptr);
    ferry_status (*queue_native)(int32_t device, void *queue, int64_t *stream);
    ferry_status (*event_wait_native)(int32_t device, int64_t stream, void *event);
} ferry_backend_ops_v1;

/** A 1.x plugin's entry function (exported as FERRY_BACKEND_V1_ENTRY_SYMBOL). */
typedef const ferry_backend_ops_v1 *(*ferry_backend_v1_entry_fn)(const ferry_host_api *host);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_BACKEND_V1_H */

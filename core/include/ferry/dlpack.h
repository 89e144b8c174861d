/**
 * The DLPack 1.x data structures ferry exchanges. Declared here from the published
 * specification (dmlc/dlpack, include/dlpack/dlpack.h, v1.0) because Debian ships the
 * 0.6 header, which lacks the versioned structs. The include guard is upstream's, so
 * whichever header a program includes first defines the types and the other is skipped.
 */
#ifndef DLPACK_DLPACK_H_
#define DLPACK_DLPACK_H_

#include <stdint.h>

#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 0

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version a DLManagedTensorVersioned was made under. */
typedef struct {
    uint32_t major; /**< incompatible changes bump this */
    uint32_t minor; /**< compatible additions bump this */
} DLPackVersion;

/** Where the memory is; values are fixed by the specification. */
typedef enum {
    kDLCPU = 1,
    kDLCUDA = 2,
    kDLCUDAHost = 3,
    kDLOpenCL = 4,
    kDLVulkan = 7,
    kDLMetal = 8,
    kDLVPI = 9,
    kDLROCM = 10,
    kDLROCMHost = 11,
    kDLExtDev = 12,
    kDLCUDAManaged = 13,
    kDLOneAPI = 14,
    kDLWebGPU = 15,
    kDLHexagon = 16,
    kDLMAIA = 17,
} DLDeviceType;

/** A device: its type and the index among devices of that type. */
typedef struct {
    DLDeviceType device_type;
    int32_t device_id;
} DLDevice;

/** Type code of DLDataType.code. */
typedef enum {
    kDLInt = 0U,
    kDLUInt = 1U,
    kDLFloat = 2U,
    kDLOpaqueHandle = 3U,
    kDLBfloat = 4U,
    kDLComplex = 5U,
    kDLBool = 6U,
} DLDataTypeCode;

/** Element type: code, bits per lane, lanes (1 for scalars). */
typedef struct {
    uint8_t code;
    uint8_t bits;
    uint16_t lanes;
} DLDataType;

/** A strided view of memory. */
typedef struct {
    void *data;            /**< base pointer (or cl_mem for kDLOpenCL) */
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;        /**< ndim entries */
    int64_t *strides;      /**< ndim entries, in elements; NULL means compact row-major */
    uint64_t byte_offset;  /**< from data to the first element */
} DLTensor;

/** Legacy (pre-1.0) managed tensor. */
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *self); /**< may be NULL */
} DLManagedTensor;

/** The tensor must not be written through. */
#define DLPACK_FLAG_BITMASK_READ_ONLY (1UL << 0UL)
/** The producer made a copy for this export. */
#define DLPACK_FLAG_BITMASK_IS_COPIED (1UL << 1UL)

/** Versioned managed tensor (DLPack >= 1.0). */
typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *self); /**< may be NULL */
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;

#ifdef __cplusplus
}
#endif

#endif /* DLPACK_DLPACK_H_ */

/**
 * Facts about ferry_dtype, header-only: the one table of element sizes, names, kernel
 * suffixes and kinds, for the core and for every backend and plugin (which do not link
 * libferry, so they cannot call ferry_dtype_size()). Installed with the SDK. Every
 * function accepts any value: one outside the enum has size 0, the name "invalid" and
 * no kind. (The conformance suite keeps its own table on purpose: it checks this one.)
 */
#ifndef FERRY_DTYPE_INFO_H
#define FERRY_DTYPE_INFO_H

#include <stdbool.h>
#include <stddef.h>

#include <ferry/ferry.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What arithmetic a dtype's values take part in: PyTorch's promotion categories. */
typedef enum ferry_dtype_kind {
    FERRY_DTYPE_KIND_INVALID = -1,
    FERRY_DTYPE_KIND_BOOL = 0,
    FERRY_DTYPE_KIND_INT = 1,
    FERRY_DTYPE_KIND_FLOAT = 2,
} ferry_dtype_kind;

typedef struct ferry_dtype_row {
    const char *name;   /**< "float32", as ferry_dtype_name() and messages spell it */
    unsigned char size; /**< bytes per element */
    signed char kind;   /**< ferry_dtype_kind */
    bool is_signed;     /**< negative values exist (signed integers and floats) */
} ferry_dtype_row;

/** The row of `dt`, or NULL for a value outside the enum. */
static inline const ferry_dtype_row *ferry_dtype_info(ferry_dtype dt)
{
    static const ferry_dtype_row rows[FERRY_NUM_DTYPES] = {
        {"bool", 1, FERRY_DTYPE_KIND_BOOL, false},
        {"uint8", 1, FERRY_DTYPE_KIND_INT, false},
        {"int8", 1, FERRY_DTYPE_KIND_INT, true},
        {"int16", 2, FERRY_DTYPE_KIND_INT, true},
        {"int32", 4, FERRY_DTYPE_KIND_INT, true},
        {"int64", 8, FERRY_DTYPE_KIND_INT, true},
        {"float16", 2, FERRY_DTYPE_KIND_FLOAT, true},
        {"bfloat16", 2, FERRY_DTYPE_KIND_FLOAT, true},
        {"float32", 4, FERRY_DTYPE_KIND_FLOAT, true},
        {"float64", 8, FERRY_DTYPE_KIND_FLOAT, true},
    };
    return (unsigned)dt < FERRY_NUM_DTYPES ? &rows[dt] : NULL;
}

static inline bool ferry_dtype_info_valid(ferry_dtype dt)
{
    return ferry_dtype_info(dt) != NULL;
}

/** Bytes per element; 0 for a value outside the enum. */
static inline size_t ferry_dtype_info_size(ferry_dtype dt)
{
    const ferry_dtype_row *r = ferry_dtype_info(dt);
    return r ? r->size : 0;
}

/** "float32"; "invalid" for a value outside the enum. */
static inline const char *ferry_dtype_info_name(ferry_dtype dt)
{
    const ferry_dtype_row *r = ferry_dtype_info(dt);
    return r ? r->name : "invalid";
}

/** The typed-kernel suffixes ("f32" as in cpu_matmul_f32, STYLE.md), FERRY_NUM_DTYPES
 * of them indexed by dtype, for building kernel names and tables of them. */
static inline const char *const *ferry_dtype_info_suffixes(void)
{
    static const char *const suffixes[FERRY_NUM_DTYPES] = {"bool", "u8",   "i8",  "i16", "i32",
                                                           "i64",  "f16", "bf16", "f32", "f64"};
    return suffixes;
}

/** "f32"; "invalid" for a value outside the enum. */
static inline const char *ferry_dtype_info_suffix(ferry_dtype dt)
{
    return ferry_dtype_info_valid(dt) ? ferry_dtype_info_suffixes()[dt] : "invalid";
}

static inline ferry_dtype_kind ferry_dtype_info_kind(ferry_dtype dt)
{
    const ferry_dtype_row *r = ferry_dtype_info(dt);
    return r ? (ferry_dtype_kind)r->kind : FERRY_DTYPE_KIND_INVALID;
}

/** float16, bfloat16, float32, float64. */
static inline bool ferry_dtype_info_is_floating(ferry_dtype dt)
{
    return ferry_dtype_info_kind(dt) == FERRY_DTYPE_KIND_FLOAT;
}

/** uint8 .. int64 (not bool). */
static inline bool ferry_dtype_info_is_integer(ferry_dtype dt)
{
    return ferry_dtype_info_kind(dt) == FERRY_DTYPE_KIND_INT;
}

#ifdef __cplusplus
}
#endif

#endif /* FERRY_DTYPE_INFO_H */

/**
 * ferry status codes: one X-macro list generates the enum, ferry_status_name()
 * and ferry_status_string(), so a new code is added in exactly one place.
 */
#ifndef FERRY_STATUS_H
#define FERRY_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef FERRY_API
#define FERRY_API __attribute__((visibility("default")))
#endif

/** X(NAME, value, short description). Values are part of the ABI: append only. */
#define FERRY_STATUS_LIST(X)                                                        \
    X(OK,                   0, "success")                                           \
    X(ERR_INVALID_ARGUMENT, 1, "invalid argument")                                  \
    X(ERR_INVALID_DEVICE,   2, "invalid device string or index")                    \
    X(ERR_UNAVAILABLE,      3, "backend or device not usable here")                 \
    X(ERR_WRONG_DEVICE,     4, "tensor is on the wrong device")                     \
    X(ERR_OUT_OF_MEMORY,    5, "out of memory")                                     \
    X(ERR_UNSUPPORTED,      6, "dtype or operation not supported")                  \
    X(ERR_BACKEND,          7, "a driver call failed")                              \
    X(ERR_ABI,              8, "plugin built for another ABI version")              \
    X(ERR_INVALID_HANDLE,   9, "not a live ferry handle")                         \
    X(ERR_INDEX,           10, "dim or index out of range")

/** Result of every fallible call; FERRY_OK is 0. */
typedef enum ferry_status {
#define FERRY_STATUS_ENUM_(name, value, text) FERRY_##name = value,
    FERRY_STATUS_LIST(FERRY_STATUS_ENUM_)
#undef FERRY_STATUS_ENUM_
} ferry_status;

/** "FERRY_ERR_INVALID_ARGUMENT"; "FERRY_UNKNOWN_STATUS" for a value not in the list. */
FERRY_API const char *ferry_status_name(ferry_status status);

/** A short description in words ("invalid argument"); never NULL. */
FERRY_API const char *ferry_status_string(ferry_status status);

/**
 * The message of the last failure on this thread ("" if none yet). Valid until
 * the next failure on this thread; success does not clear it.
 */
FERRY_API const char *ferry_last_error(void);

/** The status of the last failure on this thread (FERRY_OK if none yet). */
FERRY_API ferry_status ferry_last_status(void);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_STATUS_H */

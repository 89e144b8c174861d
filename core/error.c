/* Status names, the thread-local last-error message, and FERRY_DEBUG logging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_message[2048];
static _Thread_local ferry_status last_status = FERRY_OK;

FERRY_API const char *ferry_status_name(ferry_status status)
{
    switch (status) {
#define FERRY_STATUS_NAME_(name, value, text) \
    case FERRY_##name:                       \
        return "FERRY_" #name;
        FERRY_STATUS_LIST(FERRY_STATUS_NAME_)
#undef FERRY_STATUS_NAME_
    }
    return "FERRY_UNKNOWN_STATUS";
}

FERRY_API const char *ferry_status_string(ferry_status status)
{
    switch (status) {
#define FERRY_STATUS_TEXT_(name, value, text) \
    case FERRY_##name:                       \
        return text;
        FERRY_STATUS_LIST(FERRY_STATUS_TEXT_)
#undef FERRY_STATUS_TEXT_
    }
    return "unknown status";
}

FERRY_API const char *ferry_last_error(void)
{
    return last_message;
}

FERRY_API ferry_status ferry_last_status(void)
{
    return last_status;
}

ferry_status ferry__verror(ferry_status status, const char *fmt, va_list ap)
{
    /* Format into a scratch buffer first: a caller may pass ferry_last_error() itself
     * as an argument (to prefix it with context). */
    char tmp[sizeof last_message];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    memcpy(last_message, tmp, sizeof tmp);
    last_status = status;
    if (ferry__debug_enabled("errors"))
        fprintf(stderr, "ferry[errors]: %s: %s\n", ferry_status_name(status), last_message);
    return status;
}

ferry_status ferry__error(ferry_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ferry__verror(status, fmt, ap);
    va_end(ap);
    return status;
}

bool ferry__debug_enabled(const char *topic)
{
    const char *env = getenv("FERRY_DEBUG");
    if (!env || !*env)
        return false;
    size_t n = strlen(topic);
    for (const char *p = env; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if ((len == n && strncmp(p, topic, n) == 0) || (len == 3 && strncmp(p, "all", 3) == 0))
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

void ferry__debug(const char *topic, const char *fmt, ...)
{
    if (!ferry__debug_enabled(topic))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ferry[%s]: ", topic);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

FERRY_API void ferry_free(void *p)
{
    free(p);
}

FERRY_API const char *ferry_version(void)
{
    return FERRY_VERSION_STRING;
}

void ferry__error_save(ferry_error_state *saved)
{
    saved->status = last_status;
    memcpy(saved->message, last_message, sizeof saved->message);
}

void ferry__error_restore(const ferry_error_state *saved)
{
    last_status = saved->status;
    memcpy(last_message, saved->message, sizeof last_message);
}

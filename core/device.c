/* Device strings ("cuda:0"): parsing with PyTorch's messages, formatting, and resolving
 * a string to a loaded backend and a checked index. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

FERRY_API ferry_status ferry_device_parse(const char *s, ferry_device *out)
{
    if (!out)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_device_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!s)
        s = "cpu";
    if (!*s)
        return ferry__error(FERRY_ERR_INVALID_DEVICE, "Device string must not be empty");

    /* TYPE is a word starting with a letter or '_' (PyTorch's grammar, so "CUDA" reaches
     * the "Expected one of" message); INDEX is 0 or [1-9][0-9]* within int32. */
    size_t tlen = 0;
    while (is_word_char(s[tlen]))
        tlen++;
    bool syntax_ok = tlen > 0 && !(s[0] >= '0' && s[0] <= '9');
    long long index = 0;
    if (syntax_ok && s[tlen] == ':') {
        const char *p = s + tlen + 1;
        if (!(*p >= '0' && *p <= '9') || (p[0] == '0' && p[1] != '\0'))
            syntax_ok = false;
        for (; syntax_ok && *p; p++) {
            if (!(*p >= '0' && *p <= '9')) {
                syntax_ok = false;
                break;
            }
            index = index * 10 + (*p - '0');
            if (index > INT32_MAX)
                syntax_ok = false;
        }
    } else if (s[tlen] != '\0') {
        syntax_ok = false;
    }
    if (!syntax_ok)
        return ferry__error(FERRY_ERR_INVALID_DEVICE, "Invalid device string: '%s'", s);

    char type[64];
    if (tlen >= sizeof type)
        tlen = sizeof type - 1;
    memcpy(type, s, tlen);
    type[tlen] = '\0';
    if (tlen > FERRY_MAX_TYPE_LEN || !ferry__backend_known(type, NULL, 0)) {
        char expected[512];
        ferry__backend_known("", expected, sizeof expected);
        return ferry__error(FERRY_ERR_INVALID_DEVICE,
                            "Expected one of %s device type at start of device string: %s",
                            expected, s);
    }
    memcpy(out->type, type, tlen + 1);
    out->index = (int32_t)index;
    return FERRY_OK;
}

FERRY_API int ferry_device_format(ferry_device d, char *buf, size_t cap)
{
    size_t tlen = strnlen(d.type, sizeof d.type);
    if (tlen == 0 || tlen > FERRY_MAX_TYPE_LEN || d.index < 0) {
        if (buf && cap)
            buf[0] = '\0';
        return -1;
    }
    /* The host has one device and PyTorch writes it without an index. */
    if (strcmp(d.type, "cpu") == 0 && d.index == 0)
        return snprintf(buf, buf ? cap : 0, "cpu");
    return snprintf(buf, buf ? cap : 0, "%s:%d", d.type, (int)d.index);
}

ferry_status ferry__device_resolve_parsed(ferry_device d, ferry_backend **be, int32_t *index)
{
    *be = NULL;
    *index = 0;
    ferry_backend *b = ferry__backend_get(d.type);
    if (!b)
        return ferry_last_status();
    if (d.index >= b->device_count) {
        char name[32];
        ferry_device_format(d, name, sizeof name);
        return ferry__error(FERRY_ERR_INVALID_DEVICE, "Invalid device: %s (%s has %d device%s)",
                            name, b->name, (int)b->device_count,
                            b->device_count == 1 ? "" : "s");
    }
    const char *lost = ferry__device_lost_reason(b, d.index);
    if (lost)
        return ferry__error(FERRY_ERR_UNAVAILABLE, "%s", lost);
    *be = b;
    *index = d.index;
    return FERRY_OK;
}

ferry_status ferry__device_resolve(const char *device, ferry_backend **be, int32_t *index)
{
    ferry_device d;
    *be = NULL;
    *index = 0;
    ferry_status st = ferry_device_parse(device, &d);
    if (st != FERRY_OK)
        return st;
    return ferry__device_resolve_parsed(d, be, index);
}

FERRY_API ferry_status ferry_device_get_info(const char *device, ferry_device_info *out)
{
    if (!out)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "ferry_device_get_info: out is NULL");
    memset(out, 0, sizeof *out);
    ferry_backend *be;
    int32_t index;
    ferry_status st = ferry__device_resolve(device, &be, &index);
    if (st != FERRY_OK)
        return st;
    st = ferry__be_device_info(be, index, out);
    if (st != FERRY_OK)
        return st;
    /* The core, not the plugin, is the authority on which backend this is. */
    snprintf(out->backend, sizeof out->backend, "%s", be->name);
    if (!out->backend_version[0] && be->ops->version)
        snprintf(out->backend_version, sizeof out->backend_version, "%s", be->ops->version);
    return FERRY_OK;
}

FERRY_API ferry_status ferry_synchronize(const char *device)
{
    ferry_backend *be;
    int32_t index;
    ferry_status st = ferry__device_resolve(device, &be, &index);
    if (st != FERRY_OK)
        return st;
    return ferry__be_synchronize(be, index);
}

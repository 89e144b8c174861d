/* Device strings: ferry_device_parse, ferry_device_format and resolving a string to a
 * device (info, synchronize, memory stats, a tensor created there). A string parses
 * exactly when it has PyTorch's TYPE[:INDEX] shape with a known type; whatever parses
 * formats back to a string that parses to the same device; resolving succeeds exactly
 * for an existing index. */
#include "fuzz_util.h"

static fuzz_devices devices;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_devices_init(&devices);
    return 0;
}

static bool known_type(const char *type)
{
    for (size_t i = 0; i < ferry_backend_count(); i++)
        if (strcmp(ferry_backend_name(i), type) == 0)
            return true;
    return false;
}

/* The grammar restated independently of core/device.c: a word of [A-Za-z0-9_] not
 * starting with a digit, then optionally ':' and 0 or [1-9][0-9]* within int32. */
static bool well_formed(const char *s, size_t *type_len, long long *index)
{
    size_t t = 0;
    while ((s[t] >= 'a' && s[t] <= 'z') || (s[t] >= 'A' && s[t] <= 'Z') ||
           (s[t] >= '0' && s[t] <= '9') || s[t] == '_')
        t++;
    if (t == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    *type_len = t;
    *index = 0;
    if (s[t] == '\0')
        return true;
    if (s[t] != ':')
        return false;
    const char *p = s + t + 1;
    if (!*p || (p[0] == '0' && p[1]))
        return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        *index = *index * 10 + (*p - '0');
        if (*index > INT32_MAX)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[300];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, n);
    s[n] = '\0';

    size_t tlen = 0;
    long long want_index = -1;
    bool shaped = well_formed(s, &tlen, &want_index);
    bool want_ok = false;
    if (shaped && tlen <= FERRY_MAX_TYPE_LEN) {
        char type[FERRY_MAX_TYPE_LEN + 1];
        memcpy(type, s, tlen);
        type[tlen] = '\0';
        want_ok = known_type(type);
    }

    ferry_device d;
    memset(&d, 0x5a, sizeof d);
    ferry_status st = ferry_device_parse(s, &d);
    if (s[0] == '\0') /* NULL means "cpu", the empty string is an error */
        want_ok = false;
    FUZZ_CHECK((st == FERRY_OK) == want_ok, "parse('%s') returned %d, expected %s", s, (int)st,
               want_ok ? "success" : "failure");

    ferry_device_info info;
    if (st != FERRY_OK) {
        FUZZ_CHECK(st == FERRY_ERR_INVALID_DEVICE, "parse('%s') failed with status %d", s,
                   (int)st);
        FUZZ_CHECK_FAILED_CLEARLY("ferry_device_parse");
        static const ferry_device zero;
        FUZZ_CHECK(memcmp(&d, &zero, sizeof d) == 0, "parse('%s') left out non-zero on failure",
                   s);
        /* Every entry point that takes a device string refuses it the same way. */
        FUZZ_CHECK(ferry_device_get_info(s, &info) == FERRY_ERR_INVALID_DEVICE,
                   "get_info('%s') did not refuse it", s);
        int64_t shape[1] = {3};
        ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 1, shape, s);
        FUZZ_CHECK(!t, "zeros on the unparsable device '%s' succeeded", s);
        FUZZ_CHECK(ferry_last_status() == FERRY_ERR_INVALID_DEVICE,
                   "zeros on '%s' failed with status %d", s, (int)ferry_last_status());
        fuzz_check_memory_back(&devices);
        return 0;
    }

    FUZZ_CHECK(strncmp(d.type, s, tlen) == 0 && d.type[tlen] == '\0', "parse('%s') gave type '%s'",
               s, d.type);
    FUZZ_CHECK(d.index == (int32_t)want_index, "parse('%s') gave index %d", s, (int)d.index);

    /* Formatting gives the canonical string, which parses back to the same device. */
    char buf[64];
    int len = ferry_device_format(d, buf, sizeof buf);
    FUZZ_CHECK(len > 0 && (size_t)len < sizeof buf && strlen(buf) == (size_t)len,
               "format of '%s' returned %d ('%s')", s, len, buf);
    ferry_device back;
    FUZZ_CHECK(ferry_device_parse(buf, &back) == FERRY_OK, "'%s' formatted as '%s' which does "
               "not parse", s, buf);
    FUZZ_CHECK(strcmp(back.type, d.type) == 0 && back.index == d.index,
               "'%s' -> '%s' -> %s:%d", s, buf, back.type, (int)back.index);
    if (strchr(s, ':') && strcmp(d.type, "cpu") != 0)
        FUZZ_CHECK(strcmp(buf, s) == 0, "'%s' formatted as '%s'", s, buf);
    /* A short buffer still gets a terminated prefix and the full length. */
    char small[4];
    FUZZ_CHECK(ferry_device_format(d, small, sizeof small) == len && strlen(small) < sizeof small,
               "format into 4 bytes of '%s'", buf);

    /* Resolving: the device exists exactly when its index is below the type's count. */
    int count = ferry_device_count(d.type);
    bool exists = d.index < count;
    ferry_status ist = ferry_device_get_info(s, &info);
    FUZZ_CHECK((ist == FERRY_OK) == exists, "get_info('%s') returned %d with %d devices", s,
               (int)ist, count);
    if (!exists) {
        FUZZ_CHECK_FAILED_CLEARLY("ferry_device_get_info");
        FUZZ_CHECK(ferry_synchronize(s) != FERRY_OK, "synchronize('%s') succeeded", s);
        fuzz_check_memory_back(&devices);
        return 0;
    }
    FUZZ_CHECK(strcmp(info.backend, d.type) == 0, "get_info('%s') names backend '%s'", s,
               info.backend);
    FUZZ_CHECK(ferry_synchronize(s) == FERRY_OK, "synchronize('%s'): %s", s, ferry_last_error());
    ferry_memory_stats ms;
    FUZZ_CHECK(ferry_memory_stats_get(s, &ms) == FERRY_OK, "memory stats of '%s'", s);

    /* Only the devices this build is meant to exercise get a tensor: a found plugin's
     * device could be anything. */
    if (strcmp(d.type, "cpu") == 0 || strcmp(d.type, "sim") == 0 ||
        strcmp(d.type, "opencl") == 0) {
        int64_t shape[1] = {5};
        ferry_tensor *t = ferry_full(FERRY_INT32, 1, shape, 7.0, s);
        FUZZ_CHECK(t, "full on '%s'", s);
        ferry_device td = ferry_tensor_device(t);
        FUZZ_CHECK(strcmp(td.type, d.type) == 0 && td.index == d.index,
                   "a tensor made on '%s' is on %s:%d", s, td.type, (int)td.index);
        int32_t out[5];
        FUZZ_CHECK(ferry_tensor_copy_to_host(t, out, sizeof out) == FERRY_OK, "copy back");
        for (int i = 0; i < 5; i++)
            FUZZ_CHECK(out[i] == 7, "element %d is %d", i, (int)out[i]);
        ferry_tensor_release(t);
    }
    fuzz_check_memory_back(&devices);
    return 0;
}

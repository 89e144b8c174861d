/* The conformance harness. Element encoding is written from the IEEE layouts, not taken
 * from ferry/half.h, so the reference shares no code with the library it checks. */
#include "conformance.h"

#include <float.h>
#include <inttypes.h>

/* ---- devices ----------------------------------------------------------------------- */

#define CONF_MAX_DEVICES 64

typedef struct conf_device_list {
    bool built;
    size_t n;
    char name[CONF_MAX_DEVICES][FERRY_MAX_TYPE_LEN + 24];
    bool skip_printed[CONF_MAX_DEVICES];
} conf_device_list;

static conf_device_list devices;

static bool listed_type(const char *type)
{
    size_t len = strlen(type);
    for (size_t i = 0; i < devices.n; i++)
        if (strncmp(devices.name[i], type, len) == 0 &&
            (devices.name[i][len] == ':' || devices.name[i][len] == '\0'))
            return true;
    return false;
}

static void add_device(const char *name, size_t len)
{
    if (devices.n == CONF_MAX_DEVICES) {
        printf("[  SKIP    ] conformance on %.*s: more than %d devices listed\n", (int)len,
               name, CONF_MAX_DEVICES);
        return;
    }
    if (len >= sizeof devices.name[0])
        len = sizeof devices.name[0] - 1;
    memcpy(devices.name[devices.n], name, len);
    devices.name[devices.n][len] = '\0';
    devices.n++;
}

/* Entries of a comma-separated list, spaces around them ignored. */
static void add_list(const char *list)
{
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if (t > p)
            add_device(p, (size_t)(t - p));
        p = e;
    }
}

/* A required type with no usable device still gets an entry, so that every test reports
 * it as a failure instead of the suite passing without it. */
static void add_required_types(const char *var)
{
    const char *list = getenv(var);
    for (const char *p = list ? list : ""; *p;) {
        while (*p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        char type[FERRY_MAX_TYPE_LEN + 1];
        size_t len = (size_t)(e - p) < sizeof type - 1 ? (size_t)(e - p) : sizeof type - 1;
        memcpy(type, p, len);
        type[len] = '\0';
        if (len && !listed_type(type)) {
            char name[FERRY_MAX_TYPE_LEN + 3];
            snprintf(name, sizeof name, "%s:0", type);
            add_device(name, strlen(name));
        }
        p = e;
    }
}

static void build_device_list(void)
{
    devices.built = true;
    const char *chosen = getenv("FERRY_TEST_DEVICES");
    if (chosen && chosen[0]) {
        add_list(chosen);
        printf("[  DEVICES ] FERRY_TEST_DEVICES=%s\n", chosen);
        return;
    }
    ferry_device found[CONF_MAX_DEVICES];
    size_t n = ferry_devices(found, CONF_MAX_DEVICES);
    for (size_t i = 0; i < n && i < CONF_MAX_DEVICES; i++) {
        char name[FERRY_MAX_TYPE_LEN + 24];
        ferry_device_format(found[i], name, sizeof name);
        add_device(name, strlen(name));
    }
    add_required_types("FERRY_TEST_REQUIRE");
    add_required_types("FERRY_TEST_REQUIRE_BUILT");
    printf("[  DEVICES ]");
    for (size_t i = 0; i < devices.n; i++)
        printf("%s %s", i ? "," : "", devices.name[i]);
    printf(" (FERRY_TEST_DEVICES chooses others)\n");
    /* Backends that were found but have no device here are skipped, saying why. */
    for (size_t b = 0; b < ferry_backend_count(); b++) {
        const char *type = ferry_backend_name(b);
        if (type && !listed_type(type)) {
            const char *why = ferry_backend_status(type);
            printf("[  SKIP    ] conformance on %s: %s\n", type, why ? why : "no device");
        }
    }
}

size_t conf_ndevices(void)
{
    if (!devices.built)
        build_device_list();
    return devices.n;
}

const char *conf_device(size_t i)
{
    return i < conf_ndevices() ? devices.name[i] : NULL;
}

bool conf_device_usable(const char *device)
{
    char why[512];
    ferry_device d;
    if (ferry_device_parse(device, &d) != FERRY_OK) {
        /* A type nothing provides, or a malformed string: named on purpose (by
         * FERRY_TEST_DEVICES or a requirement), so never a skip. */
        conf_where w = {"(device list)", "-", "-", device};
        conf_fail(&w, "cannot run here: %s", ferry_last_error());
        return false;
    }
    if (!ferry_is_available(d.type)) {
        const char *reason = ferry_backend_status(d.type);
        snprintf(why, sizeof why, "%s", reason ? reason : "not available");
    } else if (d.index >= ferry_device_count(d.type)) {
        snprintf(why, sizeof why, "%s has %d device(s)", d.type, ferry_device_count(d.type));
    } else {
        return true;
    }
    if (ferry_test_required(d.type)) {
        conf_where w = {"(device list)", "-", "-", device};
        conf_fail(&w, "required here (FERRY_TEST_REQUIRE) but unusable: %s", why);
        return false;
    }
    size_t i = 0;
    while (i < devices.n && strcmp(devices.name[i], device) != 0)
        i++;
    if (i < devices.n && !devices.skip_printed[i]) {
        devices.skip_printed[i] = true;
        printf("[  SKIP    ] conformance on %s: %s\n", device, why);
    }
    return false;
}

/* ---- failures ---------------------------------------------------------------------- */

/* Past this many lines a broken build would bury the summary; the count keeps going. */
#define CONF_MAX_PRINTED 400

static int failures;
static int printed;

void conf_fail(const conf_where *w, const char *fmt, ...)
{
    failures++;
    if (printed++ >= CONF_MAX_PRINTED) {
        if (printed == CONF_MAX_PRINTED + 1)
            printf("[ FAIL     ] ... further failures counted, not printed\n");
        return;
    }
    printf("[ FAIL     ] op=%s dtype=%s case=%s device=%s: ", w->op, w->dtype, w->kase,
           w->device);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void conf_fail_call(const conf_where *w, const char *call)
{
    conf_fail(w, "%s failed: %s: %s", call, ferry_status_name(ferry_last_status()),
              ferry_last_error());
}

void conf_finish(void)
{
    int n = failures;
    failures = 0;
    printed = 0;
    /* CMocka may report on another stream; the list must come out before its verdict. */
    fflush(stdout);
    if (n)
        fail_msg("%d conformance failure(s), listed above", n);
}

void conf_expect_error(const conf_where *w, const char *call, bool failed, ferry_status s1,
                       ferry_status s2, const char *needle)
{
    if (!failed) {
        conf_fail(w, "%s succeeded; expected %s with a message containing \"%s\"", call,
                  ferry_status_name(s1), needle);
        return;
    }
    ferry_status st = ferry_last_status();
    if (st != s1 && st != s2) {
        conf_fail(w, "%s failed with %s (\"%s\"); expected %s", call, ferry_status_name(st),
                  ferry_last_error(), ferry_status_name(s1));
        return;
    }
    if (!strstr(ferry_last_error(), needle))
        conf_fail(w, "%s: message \"%s\" does not contain \"%s\"", call, ferry_last_error(),
                  needle);
}

/* ---- dtypes and promotion ---------------------------------------------------------- */

const ferry_dtype conf_all_dtypes[FERRY_NUM_DTYPES] = {
    FERRY_BOOL,  FERRY_UINT8,   FERRY_INT8,     FERRY_INT16,   FERRY_INT32,
    FERRY_INT64, FERRY_FLOAT16, FERRY_BFLOAT16, FERRY_FLOAT32, FERRY_FLOAT64,
};

const char *conf_dtype_name(ferry_dtype dt)
{
    static const char *const names[FERRY_NUM_DTYPES] = {
        "bool",  "uint8",   "int8",     "int16",   "int32",
        "int64", "float16", "bfloat16", "float32", "float64",
    };
    return (unsigned)dt < FERRY_NUM_DTYPES ? names[dt] : "invalid";
}

bool conf_is_float(ferry_dtype dt)
{
    return dt == FERRY_FLOAT16 || dt == FERRY_BFLOAT16 || dt == FERRY_FLOAT32 ||
           dt == FERRY_FLOAT64;
}

bool conf_is_int(ferry_dtype dt)
{
    return dt >= FERRY_UINT8 && dt <= FERRY_INT64;
}

size_t conf_dtype_size(ferry_dtype dt)
{
    static const size_t sizes[FERRY_NUM_DTYPES] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};
    return sizes[dt];
}

ferry_dtype conf_promote(ferry_dtype a, ferry_dtype b)
{
    if (a == b)
        return a;
    if (a == FERRY_BOOL)
        return b;
    if (b == FERRY_BOOL)
        return a;
    if (conf_is_int(a) && conf_is_int(b)) {
        /* uint8 with a signed type needs a signed type one step wider than int8. */
        if (a == FERRY_UINT8 || b == FERRY_UINT8) {
            ferry_dtype s = a == FERRY_UINT8 ? b : a;
            return s == FERRY_INT8 ? FERRY_INT16 : s;
        }
        return a > b ? a : b;
    }
    if (conf_is_int(a))
        return b;
    if (conf_is_int(b))
        return a;
    if (a == FERRY_FLOAT64 || b == FERRY_FLOAT64)
        return FERRY_FLOAT64;
    /* float16 with bfloat16 (neither holds the other) or either with float32. */
    return FERRY_FLOAT32;
}

bool conf_scalar_is_int(double s)
{
    return isfinite(s) && s == trunc(s);
}

ferry_dtype conf_promote_scalar(ferry_dtype t, double s)
{
    if (conf_scalar_is_int(s))
        return t == FERRY_BOOL ? FERRY_INT64 : t;
    return conf_is_float(t) ? t : FERRY_FLOAT32;
}

int64_t conf_wrap(ferry_dtype dt, int64_t v)
{
    uint64_t u = (uint64_t)v;
    switch (dt) {
    case FERRY_BOOL:
        return v != 0;
    case FERRY_UINT8:
        return (int64_t)(u & 0xffu);
    case FERRY_INT8:
        return (int64_t)(int8_t)(uint8_t)u;
    case FERRY_INT16:
        return (int64_t)(int16_t)(uint16_t)u;
    case FERRY_INT32:
        return (int64_t)(int32_t)(uint32_t)u;
    default:
        return v;
    }
}

/* Rounds to a binary format of p significand bits, smallest normal exponent emin and
 * largest finite value max, to nearest even; beyond max it overflows to infinity. */
static double round_format(double v, int p, int emin, double max)
{
    if (!isfinite(v) || v == 0)
        return v;
    int e;
    frexp(v, &e);
    int lead = e - 1 < emin ? emin : e - 1;
    double ulp = ldexp(1.0, lead - (p - 1));
    double r = nearbyint(v / ulp) * ulp;
    if (fabs(r) > max)
        return copysign(INFINITY, v);
    return r;
}

#define F16_MAX 65504.0
#define BF16_MAX 3.38953138925153547590470800371487866880e+38

double conf_round(ferry_dtype dt, double v)
{
    switch (dt) {
    case FERRY_BOOL:
        return v != 0;
    case FERRY_UINT8:
    case FERRY_INT8:
    case FERRY_INT16:
    case FERRY_INT32:
    case FERRY_INT64:
        return (double)conf_wrap(dt, (int64_t)v);
    case FERRY_FLOAT16:
        return round_format(v, 11, -14, F16_MAX);
    case FERRY_BFLOAT16:
        return round_format(v, 8, -126, BF16_MAX);
    case FERRY_FLOAT32:
        /* C's conversion rounds to nearest even, subnormals and overflow included. */
        return (double)(float)v;
    default:
        return v;
    }
}

ferry_dtype conf_cast_out_dtype(ferry_dtype rt)
{
    if (rt == FERRY_FLOAT64)
        return FERRY_FLOAT32;
    if (rt == FERRY_INT64 || conf_is_float(rt))
        return FERRY_FLOAT64;
    return FERRY_INT64;
}

void conf_cast_reference(ferry_dtype rt, const double *ref, const double *extra, int64_t n,
                         double *ref_rt, double *tol)
{
    for (int64_t i = 0; i < n; i++) {
        ref_rt[i] = conf_round(rt, ref[i]);
        tol[i] = conf_atol(rt) + conf_rtol(rt) * fabs(ref_rt[i]) + (extra ? extra[i] : 0);
    }
}

double conf_rtol(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_FLOAT16:
        return 2e-3;
    case FERRY_BFLOAT16:
        return 1e-2;
    case FERRY_FLOAT32:
        return 1e-5;
    case FERRY_FLOAT64:
        return 1e-12;
    default:
        return 0;
    }
}

double conf_atol(ferry_dtype dt)
{
    switch (dt) {
    case FERRY_FLOAT16:
        return 1e-4;
    case FERRY_BFLOAT16:
        return 1e-3;
    case FERRY_FLOAT32:
        return 1e-6;
    case FERRY_FLOAT64:
        return 1e-12;
    default:
        return 0;
    }
}

double conf_acc_eps(ferry_dtype dt)
{
    return dt == FERRY_FLOAT64 ? DBL_EPSILON : FLT_EPSILON;
}

/* ---- host values ------------------------------------------------------------------- */

int64_t conf_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

void conf_array_init(conf_array *a, ferry_dtype dt, int ndim, const int64_t *shape)
{
    a->dtype = dt;
    a->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        a->shape[i] = shape[i];
    a->numel = conf_numel(ndim, shape);
    a->v = calloc((size_t)(a->numel ? a->numel : 1), sizeof *a->v);
    assert_non_null(a->v);
}

void conf_array_free(conf_array *a)
{
    free(a->v);
    a->v = NULL;
}

/* IEEE binary16 bits of a value binary16 holds exactly (or NaN, or an infinity). */
static uint16_t f16_bits(double v)
{
    uint16_t sign = signbit(v) ? 0x8000u : 0;
    double a = fabs(v);
    if (isnan(v))
        return 0x7e00u;
    if (isinf(v))
        return (uint16_t)(sign | 0x7c00u);
    if (a < ldexp(1.0, -14))
        return (uint16_t)(sign | (uint16_t)(a * ldexp(1.0, 24)));
    int e;
    double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    unsigned exp = (unsigned)(e - 1 + 15);
    unsigned mant = (unsigned)((m * 2.0 - 1.0) * 1024.0);
    return (uint16_t)(sign | (exp << 10) | mant);
}

static double f16_value(uint16_t h)
{
    double sign = (h & 0x8000u) ? -1.0 : 1.0;
    unsigned exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return mant ? NAN : sign * INFINITY;
    if (exp == 0)
        return sign * ldexp((double)mant, -24);
    return sign * ldexp((double)(mant + 1024u), (int)exp - 25);
}

/* bfloat16 is the top half of a float32, so an exact value converts through float. */
static uint16_t bf16_bits(double v)
{
    if (isnan(v))
        return 0x7fc0u;
    float f = (float)v;
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return (uint16_t)(x >> 16);
}

static double bf16_value(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static void encode_one(ferry_dtype dt, double v, unsigned char *p)
{
    v = conf_round(dt, v);
    switch (dt) {
    case FERRY_BOOL: {
        uint8_t x = v != 0;
        memcpy(p, &x, 1);
        break;
    }
    case FERRY_UINT8: {
        uint8_t x = (uint8_t)v;
        memcpy(p, &x, 1);
        break;
    }
    case FERRY_INT8: {
        int8_t x = (int8_t)v;
        memcpy(p, &x, 1);
        break;
    }
    case FERRY_INT16: {
        int16_t x = (int16_t)v;
        memcpy(p, &x, 2);
        break;
    }
    case FERRY_INT32: {
        int32_t x = (int32_t)v;
        memcpy(p, &x, 4);
        break;
    }
    case FERRY_INT64: {
        int64_t x = (int64_t)v;
        memcpy(p, &x, 8);
        break;
    }
    case FERRY_FLOAT16: {
        uint16_t x = f16_bits(v);
        memcpy(p, &x, 2);
        break;
    }
    case FERRY_BFLOAT16: {
        uint16_t x = bf16_bits(v);
        memcpy(p, &x, 2);
        break;
    }
    case FERRY_FLOAT32: {
        float x = (float)v;
        memcpy(p, &x, 4);
        break;
    }
    case FERRY_FLOAT64:
        memcpy(p, &v, 8);
        break;
    }
}

static double decode_one(ferry_dtype dt, const unsigned char *p)
{
    switch (dt) {
    case FERRY_BOOL:
    case FERRY_UINT8: {
        /* A bool byte other than 0 or 1 is a bug; returning it raw makes that visible. */
        uint8_t x;
        memcpy(&x, p, 1);
        return x;
    }
    case FERRY_INT8: {
        int8_t x;
        memcpy(&x, p, 1);
        return x;
    }
    case FERRY_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        return x;
    }
    case FERRY_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        return x;
    }
    case FERRY_INT64: {
        int64_t x;
        memcpy(&x, p, 8);
        return (double)x;
    }
    case FERRY_FLOAT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        return f16_value(x);
    }
    case FERRY_BFLOAT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        return bf16_value(x);
    }
    case FERRY_FLOAT32: {
        float x;
        memcpy(&x, p, 4);
        return x;
    }
    case FERRY_FLOAT64: {
        double x;
        memcpy(&x, p, 8);
        return x;
    }
    }
    return NAN;
}

void *conf_encode(const conf_array *a)
{
    size_t es = conf_dtype_size(a->dtype);
    unsigned char *p = malloc((size_t)(a->numel ? a->numel : 1) * es);
    assert_non_null(p);
    for (int64_t i = 0; i < a->numel; i++)
        encode_one(a->dtype, a->v[i], p + (size_t)i * es);
    return p;
}

void conf_decode(ferry_dtype dt, const void *bytes, int64_t n, double *out)
{
    size_t es = conf_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
        out[i] = decode_one(dt, (const unsigned char *)bytes + (size_t)i * es);
}

int64_t conf_bcast_index(const conf_array *in, int ndim, const int64_t *shape, int64_t flat)
{
    int64_t idx = 0, stride = 1;
    for (int d = ndim - 1, k = in->ndim - 1; d >= 0; d--, k--) {
        int64_t i = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
        if (k < 0)
            continue;
        if (in->shape[k] != 1)
            idx += i * stride;
        stride *= in->shape[k];
    }
    return idx;
}

bool conf_bcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                      int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int d = 0; d < n; d++) {
        int ia = d - (n - na), ib = d - (n - nb);
        int64_t x = ia >= 0 ? sa[ia] : 1, y = ib >= 0 ? sb[ib] : 1;
        if (x != y && x != 1 && y != 1)
            return false;
        out[d] = x == 1 ? y : x;
    }
    *nout = n;
    return true;
}

const char *conf_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, ")");
    return buf;
}

static const char *index_str(int ndim, const int64_t *shape, int64_t flat, char *buf,
                             size_t cap)
{
    int64_t idx[CONF_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
    int n = snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && (size_t)n < cap; d++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%" PRId64, d ? ", " : "", idx[d]);
    if ((size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "]");
    return buf;
}

/* ---- deterministic inputs ---------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull;
}

conf_rng conf_rng_seed(const char *op, const char *dtype, const char *kase, unsigned salt)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(fnv(fnv(h, op), dtype), kase);
    conf_rng r = {h ^ ((uint64_t)salt * 0x9e3779b97f4a7c15ull)};
    return r;
}

uint64_t conf_next(conf_rng *r)
{
    /* A 64-bit LCG; its low bits are weak, so the output is the high half mixed. */
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t x = r->s;
    x ^= x >> 29;
    return x >> 16;
}

const conf_domain conf_default_domain = {-4.0, 4.0, -12, 12, false};

double conf_gen(conf_rng *r, ferry_dtype dt, const conf_domain *d)
{
    if (dt == FERRY_BOOL)
        return (double)(conf_next(r) & 1);
    if (conf_is_int(dt)) {
        int64_t lo = d->ilo, hi = d->ihi;
        if (dt == FERRY_UINT8 && lo < 0)
            lo = 0;
        if (hi < lo)
            hi = lo;
        return (double)(lo + (int64_t)(conf_next(r) % (uint64_t)(hi - lo + 1)));
    }
    uint64_t x = conf_next(r);
    if (d->nan && x % 11 == 0)
        return NAN;
    double u = (double)(conf_next(r) >> 11) * 0x1p-37;
    double v = d->lo + (d->hi - d->lo) * u;
    if (x % 4 == 1) {
        double s = round(v * 2.0) / 2.0;
        if (s >= d->lo && s <= d->hi)
            v = s;
    }
    return conf_round(dt, v);
}

/* ---- layouts ------------------------------------------------------------------------ */

const char *conf_layout_name(conf_layout l)
{
    switch (l) {
    case CONF_CONTIGUOUS:
        return "contiguous";
    case CONF_TRANSPOSED:
        return "transposed";
    case CONF_PERMUTED:
        return "permuted";
    case CONF_SLICED:
        return "sliced";
    case CONF_EXPANDED:
        return "expanded";
    case CONF_NEGATIVE:
        return "negative-strides";
    }
    return "?";
}

bool conf_layout_runs_on(conf_layout l, const char *device)
{
    return l != CONF_NEGATIVE || conf_is_cpu(device);
}

void conf_source_shape(const conf_operand *spec, int *ndim, int64_t *shape)
{
    const int64_t *s = spec->layout == CONF_EXPANDED ? spec->from : spec->shape;
    *ndim = spec->layout == CONF_EXPANDED ? spec->from_ndim : spec->ndim;
    for (int i = 0; i < *ndim; i++)
        shape[i] = s[i];
}

static void free_blob(void *data, void *ctx)
{
    (void)data;
    free(ctx);
}

static void unravel(int ndim, const int64_t *shape, int64_t flat, int64_t *idx)
{
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
}

static int64_t ravel(int ndim, const int64_t *shape, const int64_t *idx)
{
    int64_t flat = 0;
    for (int d = 0; d < ndim; d++)
        flat = flat * shape[d] + idx[d];
    return flat;
}

/* A contiguous tensor holding a's values on device. */
static ferry_tensor *upload(const conf_array *a, const char *device)
{
    void *bytes = conf_encode(a);
    ferry_tensor *t = ferry_tensor_from_data(bytes, a->dtype, a->ndim, a->shape, device);
    free(bytes);
    return t;
}

static bool same_value(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

ferry_tensor *conf_build(const conf_where *w, const conf_operand *spec, const conf_array *src,
                         const char *device, conf_array *logical)
{
    ferry_dtype dt = src->dtype;
    int nd = spec->ndim;
    conf_array_init(logical, dt, nd, spec->shape);
    ferry_tensor *t = NULL;
    const char *call = "ferry_tensor_from_data";
    int64_t idx[CONF_MAX_DIMS];

    switch (spec->layout) {
    case CONF_CONTIGUOUS:
        memcpy(logical->v, src->v, (size_t)src->numel * sizeof *src->v);
        t = upload(src, device);
        break;
    case CONF_TRANSPOSED:
    case CONF_PERMUTED: {
        assert_true(nd >= 2);
        int d0 = spec->layout == CONF_TRANSPOSED ? nd - 2 : 0, d1 = d0 + 1;
        memcpy(logical->v, src->v, (size_t)src->numel * sizeof *src->v);
        int64_t bshape[CONF_MAX_DIMS];
        memcpy(bshape, spec->shape, (size_t)nd * sizeof *bshape);
        bshape[d0] = spec->shape[d1];
        bshape[d1] = spec->shape[d0];
        conf_array base;
        conf_array_init(&base, dt, nd, bshape);
        for (int64_t i = 0; i < logical->numel; i++) {
            unravel(nd, spec->shape, i, idx);
            int64_t tmp = idx[d0];
            idx[d0] = idx[d1];
            idx[d1] = tmp;
            base.v[ravel(nd, bshape, idx)] = logical->v[i];
        }
        ferry_tensor *b = upload(&base, device);
        conf_array_free(&base);
        if (b) {
            call = "ferry_transpose";
            t = ferry_transpose(b, d0, d1);
            ferry_tensor_release(b);
        }
        break;
    }
    case CONF_SLICED: {
        assert_true(nd >= 1);
        memcpy(logical->v, src->v, (size_t)src->numel * sizeof *src->v);
        int64_t n = spec->shape[nd - 1];
        int64_t bshape[CONF_MAX_DIMS];
        memcpy(bshape, spec->shape, (size_t)nd * sizeof *bshape);
        bshape[nd - 1] = 2 * n + 1;
        conf_array base;
        conf_array_init(&base, dt, nd, bshape);
        /* The skipped elements hold a value no domain produces, so reading one shows. */
        for (int64_t i = 0; i < base.numel; i++)
            base.v[i] = conf_round(dt, 111.0);
        for (int64_t i = 0; i < logical->numel; i++) {
            unravel(nd, spec->shape, i, idx);
            idx[nd - 1] = 2 * idx[nd - 1] + 1;
            base.v[ravel(nd, bshape, idx)] = logical->v[i];
        }
        ferry_tensor *b = upload(&base, device);
        conf_array_free(&base);
        if (b) {
            call = "ferry_slice";
            t = ferry_slice(b, nd - 1, 1, 2 * n + 1, 2);
            ferry_tensor_release(b);
        }
        break;
    }
    case CONF_EXPANDED: {
        for (int64_t i = 0; i < logical->numel; i++)
            logical->v[i] = src->v[conf_bcast_index(src, nd, spec->shape, i)];
        ferry_tensor *b = upload(src, device);
        if (b) {
            call = "ferry_expand";
            t = ferry_expand(b, nd, spec->shape);
            ferry_tensor_release(b);
        }
        break;
    }
    case CONF_NEGATIVE: {
        assert_true(conf_is_cpu(device));
        memcpy(logical->v, src->v, (size_t)src->numel * sizeof *src->v);
        /* Element k of the logical order sits at numel-1-k: every dim runs backwards. */
        conf_array rev;
        conf_array_init(&rev, dt, 1, &src->numel);
        for (int64_t i = 0; i < src->numel; i++)
            rev.v[src->numel - 1 - i] = src->v[i];
        unsigned char *buf = conf_encode(&rev);
        conf_array_free(&rev);
        int64_t strides[CONF_MAX_DIMS], s = 1;
        for (int d = nd - 1; d >= 0; d--) {
            strides[d] = -s;
            s *= spec->shape[d];
        }
        size_t last = src->numel ? (size_t)(src->numel - 1) * conf_dtype_size(dt) : 0;
        call = "ferry_tensor_from_blob";
        t = ferry_tensor_from_blob(buf + last, dt, nd, spec->shape, strides, free_blob, buf);
        if (!t)
            free(buf);
        break;
    }
    }
    if (!t) {
        conf_fail_call(w, call);
        conf_array_free(logical);
        return NULL;
    }

    /* The layout itself must read back right, or an op failure would be misattributed. */
    conf_array back;
    if (!conf_read(w, t, dt, nd, spec->shape, device, &back)) {
        ferry_tensor_release(t);
        conf_array_free(logical);
        return NULL;
    }
    for (int64_t i = 0; i < back.numel; i++) {
        if (!same_value(back.v[i], logical->v[i])) {
            char s[64];
            conf_fail(w, "%s input reads back %g at %s, expected %g",
                      conf_layout_name(spec->layout), back.v[i],
                      index_str(nd, spec->shape, i, s, sizeof s), logical->v[i]);
            conf_array_free(&back);
            ferry_tensor_release(t);
            conf_array_free(logical);
            return NULL;
        }
    }
    conf_array_free(&back);
    return t;
}

ferry_tensor *conf_make(const conf_where *w, const conf_operand *spec, ferry_dtype dt,
                        const char *device, conf_rng *r, const conf_domain *d,
                        conf_array *logical)
{
    int sn;
    int64_t ss[CONF_MAX_DIMS];
    conf_source_shape(spec, &sn, ss);
    conf_array src;
    conf_array_init(&src, dt, sn, ss);
    for (int64_t i = 0; i < src.numel; i++)
        src.v[i] = conf_gen(r, dt, d);
    ferry_tensor *t = conf_build(w, spec, &src, device, logical);
    conf_array_free(&src);
    return t;
}

/* ---- outputs ----------------------------------------------------------------------- */

bool conf_out_make(const conf_where *w, ferry_dtype dt, int ndim, const int64_t *shape,
                   const char *device, bool strided, conf_out *o)
{
    memset(o, 0, sizeof *o);
    o->strided = strided && ndim >= 1;
    o->sentinel = conf_round(dt, 77.0);
    int64_t bshape[CONF_MAX_DIMS];
    memcpy(bshape, shape, (size_t)ndim * sizeof *bshape);
    if (o->strided)
        bshape[ndim - 1] = 2 * shape[ndim - 1] + 1;
    conf_array base;
    conf_array_init(&base, dt, ndim, bshape);
    for (int64_t i = 0; i < base.numel; i++)
        base.v[i] = o->sentinel;
    o->base = upload(&base, device);
    conf_array_free(&base);
    if (!o->base) {
        conf_fail_call(w, "ferry_tensor_from_data (out)");
        return false;
    }
    if (o->strided)
        o->view = ferry_slice(o->base, ndim - 1, 1, bshape[ndim - 1], 2);
    else
        o->view = ferry_tensor_retain(o->base);
    if (!o->view) {
        conf_fail_call(w, "ferry_slice (out)");
        conf_out_free(o);
        return false;
    }
    return true;
}

void conf_out_check_gaps(const conf_where *w, const conf_out *o)
{
    if (!o->strided)
        return;
    int nd = ferry_tensor_ndim(o->base);
    const int64_t *shape = ferry_tensor_shape(o->base);
    ferry_dtype dt = ferry_tensor_dtype(o->base);
    size_t nbytes = ferry_tensor_nbytes(o->base);
    void *bytes = malloc(nbytes ? nbytes : 1);
    ferry_status st = ferry_tensor_copy_to_host(o->base, bytes, nbytes);
    if (st != FERRY_OK) {
        conf_fail_call(w, "ferry_tensor_copy_to_host (out base)");
        free(bytes);
        return;
    }
    int64_t n = ferry_tensor_numel(o->base);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    conf_decode(dt, bytes, n, v);
    int64_t last = shape[nd - 1];
    for (int64_t i = 0; i < n; i++) {
        if ((i % last) % 2 == 0 && v[i] != o->sentinel) {
            char s[64];
            conf_fail(w, "out view: element %s of its base, outside the view, changed from %g "
                      "to %g",
                      index_str(nd, shape, i, s, sizeof s), o->sentinel, v[i]);
            break;
        }
    }
    free(v);
    free(bytes);
}

bool conf_out_make_permuted(const conf_where *w, ferry_dtype dt, int ndim,
                            const int64_t *shape, const char *device, conf_out *o)
{
    if (ndim < 2)
        return conf_out_make(w, dt, ndim, shape, device, false, o);
    int64_t bshape[CONF_MAX_DIMS];
    memcpy(bshape, shape, (size_t)ndim * sizeof *bshape);
    bshape[0] = shape[1];
    bshape[1] = shape[0];
    if (!conf_out_make(w, dt, ndim, bshape, device, false, o))
        return false;
    ferry_tensor_release(o->view);
    o->view = ferry_transpose(o->base, 0, 1);
    if (!o->view) {
        conf_fail_call(w, "ferry_transpose (out)");
        conf_out_free(o);
        return false;
    }
    return true;
}

void conf_out_free(conf_out *o)
{
    ferry_tensor_release(o->view);
    ferry_tensor_release(o->base);
    o->view = o->base = NULL;
}

/* ---- results ------------------------------------------------------------------------ */

bool conf_read(const conf_where *w, ferry_tensor *t, ferry_dtype dt, int ndim,
               const int64_t *shape, const char *device, conf_array *got)
{
    char have[64], want[64], dev[32];
    if (ferry_tensor_dtype(t) != dt) {
        conf_fail(w, "result dtype %s, expected %s", conf_dtype_name(ferry_tensor_dtype(t)),
                  conf_dtype_name(dt));
        return false;
    }
    int tn = ferry_tensor_ndim(t);
    const int64_t *ts = ferry_tensor_shape(t);
    bool same = tn == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = ts[i] == shape[i];
    if (!same) {
        conf_fail(w, "result shape %s, expected %s", conf_shape_str(tn, ts, have, sizeof have),
                  conf_shape_str(ndim, shape, want, sizeof want));
        return false;
    }
    ferry_device_format(ferry_tensor_device(t), dev, sizeof dev);
    if (strcmp(dev, device) != 0) {
        conf_fail(w, "result is on %s, expected %s", dev, device);
        return false;
    }
    conf_array_init(got, dt, ndim, shape);
    size_t nbytes = (size_t)got->numel * conf_dtype_size(dt);
    void *bytes = malloc(nbytes ? nbytes : 1);
    ferry_status st = ferry_tensor_copy_to_host(t, bytes, nbytes);
    if (st != FERRY_OK) {
        conf_fail_call(w, "ferry_tensor_copy_to_host");
        free(bytes);
        conf_array_free(got);
        return false;
    }
    conf_decode(dt, bytes, got->numel, got->v);
    free(bytes);
    return true;
}

int conf_compare(const conf_where *w, const conf_array *got, const double *ref,
                 const double *extra_tol)
{
    ferry_dtype dt = got->dtype;
    int bad = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        double g = got->v[i], r = conf_round(dt, ref[i]);
        bool ok;
        if (!conf_is_float(dt))
            ok = g == r;
        else if (isnan(r))
            ok = isnan(g);
        else if (isinf(r))
            ok = g == r;
        else if (!isfinite(g))
            ok = false;
        else
            ok = fabs(g - ref[i]) <= conf_atol(dt) + conf_rtol(dt) * fabs(ref[i]) +
                                          (extra_tol ? extra_tol[i] : 0);
        if (!ok && bad++ < 3) {
            char s[64];
            conf_fail(w, "element %s: expected %.17g, got %.17g",
                      index_str(got->ndim, got->shape, i, s, sizeof s), r, g);
        }
    }
    if (bad > 3)
        conf_fail(w, "... %d mismatching elements of %" PRId64 " in all", bad, got->numel);
    return bad;
}

void conf_check_out_forms(const conf_where *w, const char *call, ferry_dtype rt, int ndim,
                          const int64_t *shape, int64_t numel, const double *ref,
                          const double *tol, conf_out_writer write, void *ctx)
{
    size_t bytes = (size_t)(numel ? numel : 1) * sizeof(double);
    for (int kind = 0; kind < 4; kind++) {
        /* 0: contiguous, 1: strided, 2: another dtype the result casts into, 3: outer
         * dims permuted. */
        if (kind == 3 && ndim < 3)
            continue;
        ferry_dtype od = kind == 2 ? conf_cast_out_dtype(rt) : rt;
        conf_where wo = *w;
        char kase[160];
        snprintf(kase, sizeof kase, "%s, %s out%s%s", w->kase,
                 kind == 1 ? "strided" : kind == 3 ? "permuted" : "contiguous",
                 kind == 2 ? " of dtype " : "", kind == 2 ? conf_dtype_name(od) : "");
        wo.kase = kase;
        double *want = malloc(bytes), *want_tol = malloc(bytes);
        if (kind == 2) {
            conf_cast_reference(rt, ref, tol, numel, want, want_tol);
        } else {
            memcpy(want, ref, (size_t)numel * sizeof *want);
            memcpy(want_tol, tol, (size_t)numel * sizeof *want_tol);
        }
        conf_out o;
        bool made = kind == 3 ? conf_out_make_permuted(&wo, od, ndim, shape, w->device, &o)
                              : conf_out_make(&wo, od, ndim, shape, w->device, kind == 1, &o);
        if (made) {
            conf_array got;
            if (write(o.view, ctx) != FERRY_OK)
                conf_fail_call(&wo, call);
            else if (conf_read(&wo, o.view, od, ndim, shape, w->device, &got)) {
                conf_compare(&wo, &got, want, want_tol);
                conf_array_free(&got);
                conf_out_check_gaps(&wo, &o);
            }
            conf_out_free(&o);
        }
        free(want);
        free(want_tol);
    }
}

uint64_t conf_fallbacks(const char *device)
{
    ferry_fallback_stats s = {0};
    if (ferry_fallback_stats_get(device, &s) != FERRY_OK)
        return 0;
    return s.total;
}

void conf_check_no_fallback(const conf_where *w, uint64_t before)
{
    if (!conf_has_own_kernels(w->device))
        return;
    uint64_t now = conf_fallbacks(w->device);
    if (now != before)
        conf_fail(w, "%llu op(s) ran through the CPU fallback",
                  (unsigned long long)(now - before));
}

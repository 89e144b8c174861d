/* The `ferry` command-line tool: lists backends and devices (with the reason a backend
 * is unusable) and walks through creating, moving, converting and reading tensors on
 * every device, using only the public API. */
#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/distributed.h>
#include <ferry/ferry.h>

/* Exit codes: 1 when ferry refuses something or a check fails, 2 for bad usage, as
 * most Unix tools (grep, diff) tell the two apart. */
enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

#define ROWS 2
#define COLS 3
#define NUMEL (ROWS * COLS)

/* Values chosen to be exact in float16 and bfloat16, with negatives and fractions so
 * that the int32 conversion visibly truncates toward zero. */
static const float demo_values[NUMEL] = {1.5f, -2.0f, 3.0f, 4.0f, 5.25f, -6.0f};

static const char *prog = "ferry";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s <command> [arguments]\n"
            "       %s --help | --version\n"
            "\n"
            "commands:\n"
            "  devices             list every backend known, its devices, its plugin file,\n"
            "                      and why it is unusable when it is\n"
            "  dist                list the communicators for several processes (mpi, nccl)\n"
            "                      and why one is unusable when it is\n"
            "  demo [DEVICE...]    create a tensor on each device (default: every usable\n"
            "                      one), move it between devices, convert dtypes, and show\n"
            "                      the host-access rules; DEVICE is e.g. cpu, sim:0, cuda:1\n"
            "\n"
            "options:\n"
            "  -h, --help          show this help and exit\n"
            "  --version           print the library version and exit\n"
            "\n"
            "environment:\n"
            "  FERRY_PLUGIN_PATH   extra folders (absolute) searched for backend plugins\n"
            "\n"
            "exit status: 0 success, 1 a ferry call or a check failed, 2 usage error\n",
            prog, prog);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    return EXIT_USAGE;
}

/* Reports a refused ferry call with the library's own message, which already names the
 * object and the fix. */
static int api_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int api_failure(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", ferry_last_error());
    return EXIT_FAILED;
}

/* A check of ours failed: there is no library message to append. */
static int check_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int check_failure(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILED;
}

static void format_bytes(uint64_t nbytes, char *buf, size_t cap)
{
    const double mib = 1024.0 * 1024.0;
    if (nbytes >= (uint64_t)1 << 30)
        snprintf(buf, cap, "%.1f GiB", (double)nbytes / (mib * 1024.0));
    else
        snprintf(buf, cap, "%.1f MiB", (double)nbytes / mib);
}

/* ------------------------------------------------------------------------ */
/* ferry devices                                                            */
/* ------------------------------------------------------------------------ */

static int print_device(const char *type, int index)
{
    ferry_device d;
    char devstr[48];
    ferry_device_info info;

    memset(&d, 0, sizeof d);
    snprintf(d.type, sizeof d.type, "%s", type);
    d.index = index;
    if (ferry_device_format(d, devstr, sizeof devstr) < 0)
        return check_failure("cannot format device %s:%d", type, index);
    if (ferry_device_get_info(devstr, &info) != FERRY_OK)
        return api_failure("device info of %s", devstr);

    printf("  %-10s %s", devstr, info.name[0] ? info.name : "(unnamed)");
    if (info.vendor[0])
        printf(" (%s)", info.vendor);
    putchar('\n');

    printf("  %-10s memory: ", "");
    if (info.total_memory) {
        char total[32], avail[32];
        format_bytes(info.total_memory, total, sizeof total);
        printf("%s total", total);
        if (info.free_memory) {
            format_bytes(info.free_memory, avail, sizeof avail);
            printf(", %s free", avail);
        }
    } else {
        printf("unknown");
    }
    printf("; %s\n", info.host_accessible ? "host-accessible"
                                          : "not host-accessible (copy to cpu to read)");
    printf("  %-10s backend %s %s, driver %s\n", "", info.backend[0] ? info.backend : type,
           info.backend_version[0] ? info.backend_version : "(no version)",
           info.driver_version[0] ? info.driver_version : "(none)");
    return 0;
}

static int cmd_devices(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        return usage_error("devices: unexpected argument '%s'", argv[i]);
    }

    size_t nbackends = ferry_backend_count();
    printf("ferry %s: %zu backend%s known\n", ferry_version(), nbackends,
           nbackends == 1 ? "" : "s");

    int rc = 0;
    size_t usable = 0;
    for (size_t i = 0; i < nbackends; i++) {
        const char *name = ferry_backend_name(i);
        if (!name)
            continue;
        /* Counting devices loads the backend, so the status and version read after it
         * describe the loaded plugin rather than a not-yet-tried one. */
        int count = ferry_device_count(name);
        const char *why = ferry_backend_status(name);
        const char *path = ferry_backend_path(name);
        const char *version = ferry_backend_version(name);

        putchar('\n');
        if (why) {
            printf("%s: unavailable\n", name);
            printf("  reason     %s\n", why);
        } else {
            printf("%s: %d device%s\n", name, count, count == 1 ? "" : "s");
        }
        printf("  plugin     %s", path ? path : "(no plugin file found)");
        if (version)
            printf(" (version %s)", version);
        putchar('\n');
        if (why)
            continue;
        for (int d = 0; d < count; d++) {
            if (print_device(name, d))
                rc = EXIT_FAILED;
            else
                usable++;
        }
    }
    printf("\n%zu usable device%s\n", usable, usable == 1 ? "" : "s");
    return rc;
}

/* ------------------------------------------------------------------------ */
/* ferry demo                                                               */
/* ------------------------------------------------------------------------ */

/* Tensors made during one device's walkthrough, released together at its end, so that
 * every early return stays leak-free without a cleanup label per step. */
typedef struct keep_list {
    ferry_tensor **items;
    size_t n, cap;
} keep_list;

/* Sized once per device from the number of move targets (two tensors each) plus the
 * fixed steps, so keep() never has to grow it. */
static bool keep_init(keep_list *k, size_t ntargets)
{
    k->n = 0;
    k->cap = 2 * ntargets + 32;
    k->items = calloc(k->cap, sizeof *k->items);
    return k->items != NULL;
}

static ferry_tensor *keep(keep_list *k, ferry_tensor *t)
{
    if (!t)
        return NULL;
    assert(k->n < k->cap);
    k->items[k->n++] = t;
    return t;
}

static void keep_release(keep_list *k)
{
    while (k->n > 0)
        ferry_tensor_release(k->items[--k->n]);
    free(k->items);
    k->items = NULL;
}

static void print_repr(const char *label, const ferry_tensor *t)
{
    char *r = ferry_tensor_repr(t);
    if (!r) {
        printf("%s: (repr failed: %s)\n", label, ferry_last_error());
        return;
    }
    /* Indent continuation lines so a multi-row repr stays under its label. */
    printf("%s:\n  ", label);
    for (const char *p = r; *p; p++) {
        putchar(*p);
        if (*p == '\n')
            fputs("  ", stdout);
    }
    putchar('\n');
    ferry_free(r);
}

static void print_floats(const char *label, const float *v)
{
    printf("%s [", label);
    for (int r = 0; r < ROWS; r++) {
        printf("%s[", r ? ", " : "");
        for (int c = 0; c < COLS; c++)
            printf("%s%g", c ? ", " : "", v[r * COLS + c]);
        putchar(']');
    }
    printf("]\n");
}

static const char *devname(const ferry_tensor *t, char *buf, size_t cap)
{
    if (ferry_device_format(ferry_tensor_device(t), buf, cap) < 0)
        snprintf(buf, cap, "?");
    return buf;
}

/* Compares a float32 tensor on any device with demo_values, bit for bit: a move must
 * not change a single value. */
static int check_values(const ferry_tensor *t, const char *what)
{
    float got[NUMEL];
    if (ferry_tensor_dtype(t) != FERRY_FLOAT32 || ferry_tensor_numel(t) != NUMEL)
        return check_failure("%s: expected a float32 tensor of %d elements, got %s with %lld",
                             what, NUMEL, ferry_dtype_name(ferry_tensor_dtype(t)),
                             (long long)ferry_tensor_numel(t));
    if (ferry_tensor_copy_to_host(t, got, sizeof got) != FERRY_OK)
        return api_failure("%s: copy to host", what);
    if (memcmp(got, demo_values, sizeof got) != 0) {
        for (int i = 0; i < NUMEL; i++)
            if (memcmp(&got[i], &demo_values[i], sizeof got[i]) != 0)
                return check_failure("%s changed the values: element %d is %g, expected %g",
                                     what, i, got[i], demo_values[i]);
    }
    return 0;
}

/* The tensor on `dev` goes to every target and back; each leg must keep the values,
 * and a move to the device a tensor is already on must return that very tensor. */
static int demo_moves(keep_list *k, ferry_tensor *x, const char *dev, char **targets,
                      size_t ntargets)
{
    printf("\n-- moving between devices (ferry_tensor_to) --\n");
    for (size_t i = 0; i < ntargets; i++) {
        char label[160], here[48];
        const char *dst = targets[i];
        ferry_tensor *there = keep(k, ferry_tensor_to(x, dst));
        if (!there)
            return api_failure("ferry_tensor_to(%s -> %s)", dev, dst);
        snprintf(label, sizeof label, "%s -> %s", dev, dst);
        if (!strcmp(devname(there, here, sizeof here), dev)) {
            if (there != x)
                return check_failure("%s: a move to the same device returned a new tensor; "
                                     "expected the tensor itself", label);
            printf("%s: same device, the tensor itself is returned\n", label);
            if (check_values(there, label))
                return EXIT_FAILED;
            continue;
        }
        print_repr(label, there);
        if (check_values(there, label))
            return EXIT_FAILED;

        ferry_tensor *back = keep(k, ferry_tensor_to(there, dev));
        if (!back)
            return api_failure("ferry_tensor_to(%s -> %s)", dst, dev);
        snprintf(label, sizeof label, "%s -> %s -> %s", dev, dst, dev);
        print_repr(label, back);
        if (check_values(back, label))
            return EXIT_FAILED;
    }
    printf("values unchanged on every leg\n");
    return 0;
}

/* Each conversion is read back as float32 (a second conversion on the device) and
 * compared with what C's conversion of the source values gives. */
static int demo_dtypes(keep_list *k, ferry_tensor *x)
{
    static const ferry_dtype to[] = {FERRY_FLOAT64, FERRY_INT32, FERRY_FLOAT16,
                                     FERRY_BFLOAT16};
    printf("\n-- converting dtypes (ferry_tensor_to_dtype) --\n");
    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++) {
        char label[64];
        float got[NUMEL];
        ferry_tensor *y = keep(k, ferry_tensor_to_dtype(x, to[i]));
        if (!y)
            return api_failure("ferry_tensor_to_dtype(float32 -> %s)", ferry_dtype_name(to[i]));
        snprintf(label, sizeof label, "float32 -> %s", ferry_dtype_name(to[i]));
        print_repr(label, y);

        ferry_tensor *f = keep(k, ferry_tensor_to_dtype(y, FERRY_FLOAT32));
        if (!f)
            return api_failure("ferry_tensor_to_dtype(%s -> float32)", ferry_dtype_name(to[i]));
        if (ferry_tensor_copy_to_host(f, got, sizeof got) != FERRY_OK)
            return api_failure("copy of %s to host", label);
        for (int e = 0; e < NUMEL; e++) {
            /* The demo values are exact in every floating dtype listed; int32
             * truncates toward zero as C does. */
            float want = to[i] == FERRY_INT32 ? (float)(int32_t)demo_values[e] : demo_values[e];
            if (got[e] != want)
                return check_failure("%s: element %d reads back as %g, expected %g", label, e,
                                     got[e], want);
        }
    }
    printf("every conversion reads back as expected\n");
    return 0;
}

static int demo_host_access(keep_list *k, ferry_tensor *x, const char *dev, bool host_ok)
{
    printf("\n-- reading values on the host (ferry_tensor_host_data) --\n");
    if (host_ok) {
        const float *p = ferry_tensor_host_data(x);
        if (!p)
            return api_failure("ferry_tensor_host_data on host-accessible %s", dev);
        printf("%s memory is host-accessible: the pointer is usable directly\n", dev);
        print_floats("values:", p);
        return 0;
    }

    if (ferry_tensor_host_data(x) != NULL)
        return check_failure("ferry_tensor_host_data gave a pointer into %s memory, which "
                             "the host cannot read", dev);
    if (ferry_last_status() != FERRY_ERR_WRONG_DEVICE)
        return check_failure("ferry_tensor_host_data on %s failed with %s, expected "
                             "FERRY_ERR_WRONG_DEVICE: %s", dev,
                             ferry_status_name(ferry_last_status()), ferry_last_error());
    printf("ferry_tensor_host_data(%s tensor) is refused:\n  %s\n", dev, ferry_last_error());

    ferry_tensor *c = keep(k, ferry_tensor_cpu(x));
    if (!c)
        return api_failure("ferry_tensor_cpu(%s tensor)", dev);
    const float *p = ferry_tensor_host_data(c);
    if (!p)
        return api_failure("ferry_tensor_host_data after ferry_tensor_cpu");
    print_floats("after ferry_tensor_cpu(), host_data reads", p);
    return 0;
}

static int demo_grad(keep_list *k, ferry_tensor *x, ferry_tensor *as_int)
{
    printf("\n-- requires_grad and detach --\n");
    if (ferry_tensor_set_requires_grad(as_int, true) == FERRY_OK)
        return check_failure("an int32 tensor was allowed to require grad");
    printf("set_requires_grad on int32 is refused:\n  %s\n", ferry_last_error());

    /* A host copy of its own, so the flag does not leak into the tensors above (on cpu,
     * ferry_tensor_cpu would return x itself). */
    ferry_tensor *g = keep(k, ferry_tensor_cpu(x));
    if (g == x)
        g = keep(k, ferry_tensor_clone(x));
    if (!g)
        return api_failure("host copy for the requires_grad demo");
    if (ferry_tensor_set_requires_grad(g, true) != FERRY_OK)
        return api_failure("ferry_tensor_set_requires_grad(float32, true)");
    print_repr("host copy with requires_grad set", g);

    if (ferry_tensor_host_data(g) != NULL)
        return check_failure("ferry_tensor_host_data gave a pointer into a tensor that "
                             "requires grad");
    printf("ferry_tensor_host_data is refused:\n  %s\n", ferry_last_error());

    ferry_tensor *d = keep(k, ferry_tensor_detach(g));
    if (!d)
        return api_failure("ferry_tensor_detach");
    if (ferry_tensor_requires_grad(d) || !ferry_tensor_requires_grad(g))
        return check_failure("detach changed the wrong tensor's requires_grad flag");
    const float *p = ferry_tensor_host_data(d);
    if (!p)
        return api_failure("ferry_tensor_host_data after ferry_tensor_detach");
    print_floats("after ferry_tensor_detach(), host_data reads", p);
    return 0;
}

/* A few ops on the device itself: a scalar add, a reduction and x @ x^T, the last
 * checked against the product computed here on the host. */
static int demo_ops(keep_list *k, ferry_tensor *x)
{
    printf("\n-- operations on the device (ferry_add_scalar, ferry_sum, ferry_matmul) --\n");
    ferry_tensor *y = keep(k, ferry_add_scalar(x, 1.0));
    int dim = 1;
    ferry_tensor *s = keep(k, ferry_sum(x, 1, &dim, false));
    ferry_tensor *xt = keep(k, ferry_transpose(x, 0, 1));
    ferry_tensor *m = xt ? keep(k, ferry_matmul(x, xt)) : NULL;
    if (!y || !s || !m)
        return api_failure("an operation on the device");
    print_repr("x + 1", y);
    print_repr("x.sum(dim=1)", s);
    print_repr("x @ x.T", m);
    float got[ROWS * ROWS];
    if (ferry_tensor_copy_to_host(m, got, sizeof got) != FERRY_OK)
        return api_failure("ferry_tensor_copy_to_host(x @ x.T)");
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < ROWS; j++) {
            float want = 0;
            for (int c = 0; c < COLS; c++)
                want += demo_values[i * COLS + c] * demo_values[j * COLS + c];
            if (got[i * ROWS + j] != want)
                return check_failure("x @ x.T [%d, %d] is %g, expected %g", i, j,
                                     (double)got[i * ROWS + j], (double)want);
        }
    printf("x @ x.T matches the product computed on the host\n");
    return 0;
}

static int demo_device(const char *dev, char **targets, size_t ntargets)
{
    keep_list k;
    ferry_device_info info;
    int rc = EXIT_FAILED;
    const int64_t shape[2] = {ROWS, COLS};

    if (!keep_init(&k, ntargets))
        return check_failure("out of memory");
    printf("\n=== %s ===\n", dev);
    if (ferry_device_get_info(dev, &info) != FERRY_OK) {
        api_failure("device info of %s", dev);
        goto done;
    }
    printf("%s%s%s, %s\n", info.name, info.vendor[0] ? " by " : "", info.vendor,
           info.host_accessible ? "host-accessible memory" : "memory the host cannot touch");

    printf("\n-- creating a tensor (ferry_tensor_from_data) --\n");
    ferry_tensor *x = keep(&k, ferry_tensor_from_data(demo_values, FERRY_FLOAT32, 2, shape, dev));
    if (!x) {
        api_failure("ferry_tensor_from_data(float32 2x3 on %s)", dev);
        goto done;
    }
    print_repr("x", x);
    if (check_values(x, "ferry_tensor_from_data"))
        goto done;

    if (demo_moves(&k, x, dev, targets, ntargets) || demo_dtypes(&k, x) ||
        demo_host_access(&k, x, dev, info.host_accessible) || demo_ops(&k, x))
        goto done;

    printf("\n-- identity matrix (ferry_eye) --\n");
    ferry_tensor *eye = keep(&k, ferry_eye(3, FERRY_FLOAT64, dev));
    if (!eye) {
        api_failure("ferry_eye(3, float64, %s)", dev);
        goto done;
    }
    print_repr("ferry_eye(3, FERRY_FLOAT64)", eye);

    ferry_tensor *as_int = keep(&k, ferry_tensor_to_dtype(x, FERRY_INT32));
    if (!as_int) {
        api_failure("ferry_tensor_to_dtype(float32 -> int32)");
        goto done;
    }
    if (demo_grad(&k, x, as_int))
        goto done;
    rc = 0;

done:
    keep_release(&k);
    return rc;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Appends the canonical spelling of `d` unless it is already listed. */
static int add_device(char ***list, size_t *n, ferry_device d)
{
    char buf[48];
    if (ferry_device_format(d, buf, sizeof buf) < 0)
        return check_failure("cannot format device %s:%d", d.type, (int)d.index);
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*list)[i], buf))
            return 0;
    char **grown = realloc(*list, (*n + 1) * sizeof **list);
    if (!grown)
        return check_failure("out of memory");
    *list = grown;
    if (!(grown[*n] = strdup(buf)))
        return check_failure("out of memory");
    (*n)++;
    return 0;
}

static int cmd_demo(int argc, char **argv)
{
    char **chosen = NULL, **targets = NULL;
    size_t nchosen = 0, ntargets = 0;
    int rc = 0;

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error("demo: unknown option '%s'", argv[i]);
    }

    /* Sixteen fit most machines; with more, a second call fetches them all. */
    ferry_device first[16];
    size_t total = ferry_devices(first, 16);
    ferry_device *usable = total > 16 ? calloc(total, sizeof *usable) : first;
    if (!usable)
        return check_failure("out of memory");
    if (usable != first) {
        size_t again = ferry_devices(usable, total);
        if (again < total)
            total = again;
    }
    for (size_t i = 0; i < total && !rc; i++)
        rc = add_device(&targets, &ntargets, usable[i]);
    if (usable != first)
        free(usable);

    /* Named devices are parsed up front so a typo fails before any output, and are
     * added to the move targets so that moves to them are exercised too. */
    for (int i = 0; i < argc && !rc; i++) {
        ferry_device d;
        ferry_device_info info;
        if (ferry_device_parse(argv[i], &d) != FERRY_OK) {
            rc = api_failure("demo: device '%s'", argv[i]);
            break;
        }
        if (ferry_device_get_info(argv[i], &info) != FERRY_OK) {
            rc = api_failure("demo: device '%s'", argv[i]);
            break;
        }
        if (!(rc = add_device(&chosen, &nchosen, d)))
            rc = add_device(&targets, &ntargets, d);
    }
    if (!rc && argc == 0) {
        for (size_t i = 0; i < ntargets && !rc; i++) {
            ferry_device d;
            if (ferry_device_parse(targets[i], &d) != FERRY_OK)
                rc = api_failure("demo: device '%s'", targets[i]);
            else
                rc = add_device(&chosen, &nchosen, d);
        }
    }

    if (!rc) {
        printf("ferry %s demo on %zu device%s:", ferry_version(), nchosen,
               nchosen == 1 ? "" : "s");
        for (size_t i = 0; i < nchosen; i++)
            printf(" %s", chosen[i]);
        printf("\nmove targets:");
        for (size_t i = 0; i < ntargets; i++)
            printf(" %s", targets[i]);
        putchar('\n');
    }
    for (size_t i = 0; i < nchosen && !rc; i++)
        rc = demo_device(chosen[i], targets, ntargets);
    if (!rc)
        printf("\ndemo finished: every check passed\n");

    free_strings(chosen, nchosen);
    free_strings(targets, ntargets);
    return rc;
}

/* `ferry dist`: which communicator plugins load here, and why not. */
static int cmd_dist(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        return usage_error("dist: unexpected argument '%s'", argv[i]);
    }
    size_t n = ferry_dist_backends();
    for (size_t i = 0; i < n; i++) {
        const char *name = ferry_dist_backend_name(i);
        const char *why = ferry_dist_backend_status(name);
        printf("%-8s %s\n", name, why ? why : "usable");
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("ferry %s\n", ferry_version());
        return 0;
    }

    int rc;
    if (!strcmp(cmd, "devices"))
        rc = cmd_devices(argc - 2, argv + 2);
    else if (!strcmp(cmd, "dist"))
        rc = cmd_dist(argc - 2, argv + 2);
    else if (!strcmp(cmd, "demo"))
        rc = cmd_demo(argc - 2, argv + 2);
    else if (cmd[0] == '-')
        return usage_error("unknown option '%s'", cmd);
    else
        return usage_error("unknown command '%s'", cmd);

    /* Output lost to a full disk or a closed file must not read as success. */
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        perror("ferry: writing output");
        rc = EXIT_FAILED;
    }
    ferry_shutdown();
    return rc;
}

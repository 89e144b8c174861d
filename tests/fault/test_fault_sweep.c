/* Fault-injection sweep: for one FERRY_FAULT_INJECT kind (argv[1]) and N = 1 .. 30,
 * fail the Nth call of that kind during one workload (creation, to() both ways through
 * sim:0 and opencl:0 and between them, sim:0 -> sim:1, clones on each device, ops,
 * reductions, matmul, repr, DLPack round trips). Each run must either succeed with the
 * right values everywhere or fail at one step with a status and the injected failure's
 * message; never return FERRY_OK with wrong data. After it, every device's live bytes
 * are back to zero, and the same workload run again (the fault fires once) succeeds.
 * LeakSanitizer checks at exit that the failures leaked nothing. */
#include <ferry/ferry.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_N 30

static int failures;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            printf(__VA_ARGS__);                                                          \
            printf("\n");                                                                 \
            failures++;                                                                   \
            return false;                                                                 \
        }                                                                                 \
    } while (0)

typedef struct run {
    const char *failed_step; /* NULL when every step succeeded */
    char message[512];
    ferry_status status;
} run;

/* Up to this many tensors are live at once; all are released at the end. */
#define MAX_LIVE 256
static ferry_tensor *live[MAX_LIVE];
static int nlive;

static ferry_tensor *keep(ferry_tensor *t)
{
    if (!t)
        return NULL;
    if (nlive == MAX_LIVE) {
        printf("FAIL: the workload keeps more than %d tensors; raise MAX_LIVE\n", MAX_LIVE);
        exit(1);
    }
    live[nlive++] = t;
    return t;
}

static void release_all(void)
{
    while (nlive)
        ferry_tensor_release(live[--nlive]);
}

/* A step that may fail: records the failure and ends the workload. */
#define STEP(r, name, ok_expr)                                                            \
    do {                                                                                  \
        if (!(ok_expr)) {                                                                 \
            (r)->failed_step = (name);                                                    \
            (r)->status = ferry_last_status();                                            \
            snprintf((r)->message, sizeof (r)->message, "%s", ferry_last_error());        \
            return true;                                                                  \
        }                                                                                 \
    } while (0)

/* Reads t back as float64 (to cpu, convert, copy); false with r filled on failure. */
static bool read_back(run *r, const char *name, ferry_tensor *t, double *out, int64_t n)
{
    ferry_tensor *c = keep(ferry_tensor_cpu(t));
    ferry_tensor *d = c ? keep(ferry_tensor_to_dtype(c, FERRY_FLOAT64)) : NULL;
    ferry_status st = d ? ferry_tensor_copy_to_host(d, out, (size_t)n * sizeof *out)
                        : ferry_last_status();
    if (!d || st != FERRY_OK) {
        r->failed_step = name;
        r->status = ferry_last_status();
        snprintf(r->message, sizeof r->message, "%s", ferry_last_error());
        return false;
    }
    return true;
}

#define EXPECT_VALUES(r, name, t, want, n)                                                \
    do {                                                                                  \
        double got_[16];                                                                  \
        if (!read_back((r), (name), (t), got_, (n)))                                      \
            return true;                                                                  \
        for (int64_t i_ = 0; i_ < (n); i_++)                                              \
            CHECK(got_[i_] == (want)[i_], "%s returned FERRY_OK with element %lld = %g, " \
                  "expected %g", (name), (long long)i_, got_[i_], (want)[i_]);            \
    } while (0)

/* Returns false on a wrong answer (a test failure); true otherwise, with r->failed_step
 * set when a step reported an error. */
static bool workload(run *r, bool opencl)
{
    memset(r, 0, sizeof *r);
    const float src[6] = {1, 2, 3, 4, 5, 6};
    const double x6[6] = {1, 2, 3, 4, 5, 6}, twice[6] = {2, 4, 6, 8, 10, 12};
    const double sum[1] = {21}, colmax[3] = {4, 5, 6};
    const double gram[4] = {14, 32, 32, 77}; /* x @ x.T for x = [[1,2,3],[4,5,6]] */
    int64_t shape[2] = {2, 3};
    const char *devs[3] = {"cpu", "sim:0", "opencl:0"};
    int ndev = opencl ? 3 : 2;
    ferry_tensor *on[3] = {0};

    ferry_tensor *x = keep(ferry_tensor_from_data(src, FERRY_FLOAT32, 2, shape, "cpu"));
    STEP(r, "from_data(cpu)", x);
    ferry_tensor *z = keep(ferry_zeros(FERRY_FLOAT64, 2, shape, "sim:0"));
    STEP(r, "zeros(sim:0)", z);
    on[0] = x;
    for (int d = 1; d < ndev; d++) {
        on[d] = keep(ferry_tensor_to(x, devs[d]));
        STEP(r, devs[d], on[d]);
        EXPECT_VALUES(r, "to(device)", on[d], x6, 6);
    }
    for (int d = 0; d < ndev; d++) {
        ferry_tensor *cl = keep(ferry_tensor_clone(on[d]));
        STEP(r, "clone", cl);
        EXPECT_VALUES(r, "clone", cl, x6, 6);
        ferry_tensor *tr = keep(ferry_transpose(on[d], 0, 1));
        STEP(r, "transpose", tr);
        ferry_tensor *tc = keep(ferry_tensor_contiguous(tr));
        STEP(r, "contiguous", tc);
        ferry_tensor *a = keep(ferry_add(on[d], on[d]));
        STEP(r, "add", a);
        EXPECT_VALUES(r, "add", a, twice, 6);
        ferry_tensor *s = keep(ferry_sum(on[d], 0, NULL, false));
        STEP(r, "sum", s);
        EXPECT_VALUES(r, "sum", s, sum, 1);
        int dim0 = 0;
        ferry_tensor *mx = keep(ferry_max(on[d], 1, &dim0, false));
        STEP(r, "max(dim=0)", mx);
        EXPECT_VALUES(r, "max(dim=0)", mx, colmax, 3);
        ferry_tensor *m = keep(ferry_matmul(on[d], tr));
        STEP(r, "matmul", m);
        EXPECT_VALUES(r, "matmul", m, gram, 4);
        char *text = ferry_tensor_repr(on[d]);
        STEP(r, "repr", text);
        bool shaped = strstr(text, "tensor(") && strstr(text, "6.");
        ferry_free(text);
        CHECK(shaped, "repr on %s returned text without the values", devs[d]);
        /* Back to the host, and into a float64 tensor of another device in place. */
        ferry_tensor *h = keep(ferry_tensor_cpu(tc));
        STEP(r, "to(cpu)", h);
        STEP(r, "copy_from", ferry_tensor_copy_from(z, on[d]) == FERRY_OK);
        EXPECT_VALUES(r, "copy_from", z, x6, 6);
    }
    /* Between devices of one backend (the peer path) and of two (staged). */
    ferry_tensor *s1 = keep(ferry_tensor_to(on[1], "sim:1"));
    STEP(r, "to(sim:1)", s1);
    EXPECT_VALUES(r, "sim:0 -> sim:1", s1, x6, 6);
    if (opencl) {
        ferry_tensor *so = keep(ferry_tensor_to(on[1], "opencl:0"));
        STEP(r, "sim:0 -> opencl:0", so);
        EXPECT_VALUES(r, "sim:0 -> opencl:0", so, x6, 6);
        ferry_tensor *os = keep(ferry_tensor_to(on[2], "sim:0"));
        STEP(r, "opencl:0 -> sim:0", os);
        EXPECT_VALUES(r, "opencl:0 -> sim:0", os, x6, 6);
    }
    /* DLPack both ways, on the host and (versioned) on opencl:0. */
    for (int d = 0; d < ndev; d += 2) {
        DLManagedTensorVersioned *v = ferry_tensor_to_dlpack(on[d]);
        STEP(r, "to_dlpack", v);
        ferry_tensor *back = keep(ferry_tensor_from_dlpack(v));
        if (!back)
            v->deleter(v); /* refused: still ours */
        STEP(r, "from_dlpack", back);
        EXPECT_VALUES(r, "DLPack round trip", back, x6, 6);
    }
    DLManagedTensor *l = ferry_tensor_to_dlpack_unversioned(x);
    STEP(r, "to_dlpack_unversioned", l);
    ferry_tensor *lb = keep(ferry_tensor_from_dlpack_unversioned(l));
    if (!lb)
        l->deleter(l);
    STEP(r, "from_dlpack_unversioned", lb);
    EXPECT_VALUES(r, "legacy DLPack round trip", lb, x6, 6);
    return true;
}

static bool memory_back(const char *const *devs, int ndev, const char *when)
{
    for (int d = 0; d < ndev; d++) {
        ferry_memory_stats s;
        CHECK(ferry_memory_stats_get(devs[d], &s) == FERRY_OK, "stats of %s: %s", devs[d],
              ferry_last_error());
        CHECK(s.allocated == 0, "%s: %llu bytes still allocated %s", devs[d],
              (unsigned long long)s.allocated, when);
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s KIND (alloc, copy_from_host, copy_to_host, copy_on_device, "
                        "copy_peer)\n", argv[0]);
        return 2;
    }
    const char *kind = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsetenv("FERRY_FAULT_INJECT");
    ferry_shutdown();
    if (ferry_device_count("sim") < 2) {
        printf("FAIL: sim:0 and sim:1 are needed (%s)\n", ferry_backend_status("sim"));
        return 1;
    }
    /* OpenCL is part of the workload wherever CI requires it; elsewhere its absence is
     * printed, never silent. */
    const char *require = getenv("FERRY_TEST_REQUIRE");
    bool opencl = ferry_device_count("opencl") > 0;
    if (!opencl && require && strstr(require, "opencl")) {
        printf("FAIL: FERRY_TEST_REQUIRE=%s but opencl is unavailable: %s\n", require,
               ferry_backend_status("opencl"));
        return 1;
    }
    if (!opencl)
        printf("NOTE: opencl unavailable (%s): the sweep covers cpu and sim only\n",
               ferry_backend_status("opencl"));
    const char *devs[3] = {"cpu", "sim:0", "opencl:0"};
    const char *all[4] = {"cpu", "sim:0", "sim:1", "opencl:0"};
    int ndev_all = opencl ? 4 : 3;
    (void)devs;

    /* Without injection the workload succeeds: the baseline the sweep is judged by. */
    run r;
    if (!workload(&r, opencl) || r.failed_step) {
        printf("FAIL: the workload fails without injection at %s: %s\n",
               r.failed_step ? r.failed_step : "(values)", r.message);
        return 1;
    }
    release_all();

    int fired = 0;
    for (int n = 1; n <= MAX_N && !failures; n++) {
        char spec[64];
        snprintf(spec, sizeof spec, "%s=%d", kind, n);
        setenv("FERRY_FAULT_INJECT", spec, 1);
        ferry_shutdown(); /* the next registry generation reads it */
        bool right = workload(&r, opencl);
        release_all();
        if (!right) {
            printf("FAIL: %s: wrong data returned with FERRY_OK\n", spec);
            break;
        }
        if (r.failed_step) {
            fired++;
            printf("%-20s failed at %-24s %s: %s\n", spec, r.failed_step,
                   ferry_status_name(r.status), r.message);
            if (r.status == FERRY_OK || !strstr(r.message, "injected failure of")) {
                printf("FAIL: %s: the failure at %s does not carry the injected error "
                       "(status %s, message '%s')\n",
                       spec, r.failed_step, ferry_status_name(r.status), r.message);
                failures++;
                break;
            }
        } else {
            printf("%-20s no such call: the workload succeeded\n", spec);
        }
        if (!memory_back(all, ndev_all, "after the run"))
            break;
        if (!r.failed_step)
            continue; /* armed still: a second run would meet the fault itself */
        /* The fault fired once; the same workload now succeeds in this generation. */
        if (!workload(&r, opencl)) {
            release_all();
            break;
        }
        release_all();
        if (r.failed_step) {
            printf("FAIL: %s: the run after the failure failed at %s: %s\n", spec,
                   r.failed_step, r.message);
            failures++;
            break;
        }
        if (!memory_back(all, ndev_all, "after the second run"))
            break;
    }
    unsetenv("FERRY_FAULT_INJECT");
    ferry_shutdown();
    if (!failures && fired == 0) {
        printf("FAIL: %s never fired in %d runs: the workload makes no such call\n", kind,
               MAX_N);
        failures++;
    }
    printf("%s: %d of %d runs hit an injected failure; %s\n", kind, fired, MAX_N,
           failures ? "FAILED" : "all clean");
    return failures ? 1 : 0;
}

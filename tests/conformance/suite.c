/* ferry-conformance: every conformance group on every device, or the groups and devices
 * named on the command line. Installed with ferry, so that a third-party plugin found on
 * FERRY_PLUGIN_PATH can be checked against the same tables as the built-in backends. */
#include "conformance.h"

typedef struct conf_group {
    const char *name;
    int (*run)(void);
    const char *what;
} conf_group;

static const conf_group groups[] = {
    {"ops", conf_group_ops, "elementwise ops, scalars, _out forms, promotion"},
    {"reduce", conf_group_reduce, "sum, mean, max, min, argmax over any dims"},
    {"matmul", conf_group_matmul, "1-D, 2-D, batched and broadcast matmul"},
    {"views", conf_group_views, "view ops: values, shared storage, refusals"},
    {"errors", conf_group_errors, "error paths: statuses and messages"},
    {"casts", conf_group_casts, "every dtype pair on edge values; 16-bit floats bit for bit"},
    {"reduce2", conf_group_reduce2, "prod, argmin, any, all, logsumexp, var, std, norm, max/min dim, scans, softmax"},
    {"index", conf_group_index, "gather, index_select, scatter, scatter_add"},
    {"index_adv", conf_group_index_adv, "advanced indexing: index, index_put"},
    {"select", conf_group_select, "nonzero, masked_select, masked_scatter"},
    {"elementwise2", conf_group_elementwise2, "floor .. logical_xor, where, masked_fill, clamp"},
    {"grad", conf_group_grad, "gradients against finite differences, second derivatives"},
    {"random", conf_group_random, "Philox known answers, bit-identical draws, distributions"},
    {"sort", conf_group_sort, "sort, argsort, topk: stable order, NaN, every dtype"},
    {"reflected", conf_group_reflected, "rsub .. rbitwise_right_shift: a scalar on the left"},
    {"shape", conf_group_shape, "cat, stack, flip, narrow, split, chunk, unbind, movedim"},
    {"shape2", conf_group_shape2, "tril, triu, diagonal, diag_embed, pad; cumprod grad at zeros, loss weights"},
};
#define NGROUPS (sizeof groups / sizeof groups[0])

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ferry-conformance [--devices LIST] [--group NAME]... [--list] [--help]\n"
            "\n"
            "Runs ferry's conformance groups against a double-precision reference on every\n"
            "usable device (cpu first, then each plugin's devices) and exits non-zero when\n"
            "any check fails.\n"
            "\n"
            "  --devices LIST  comma-separated device strings to run on instead, such as\n"
            "                  cpu,opencl:0 (the same as FERRY_TEST_DEVICES=LIST)\n"
            "  --group NAME    run only this group; may be repeated\n"
            "  --list          list the groups and exit\n"
            "  --help          show this text and exit\n"
            "\n"
            "Environment: FERRY_PLUGIN_PATH finds further plugins; FERRY_TEST_REQUIRE=a,b\n"
            "makes an unusable backend a failure instead of a skip; FERRY_KERNEL_INDEX64=1\n"
            "makes the OpenCL and CUDA kernels use 64-bit index arithmetic everywhere.\n");
}

int main(int argc, char **argv)
{
    bool chosen[NGROUPS] = {false};
    bool any_chosen = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--list") == 0) {
            for (size_t g = 0; g < NGROUPS; g++)
                printf("%-8s %s\n", groups[g].name, groups[g].what);
            return 0;
        }
        const char *value = NULL;
        bool devices = strcmp(a, "--devices") == 0, group = strcmp(a, "--group") == 0;
        if (devices || group) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ferry-conformance: %s needs a value\n", a);
                return 2;
            }
            value = argv[++i];
        } else if (strncmp(a, "--devices=", 10) == 0) {
            devices = true;
            value = a + 10;
        } else if (strncmp(a, "--group=", 8) == 0) {
            group = true;
            value = a + 8;
        } else {
            fprintf(stderr, "ferry-conformance: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (devices) {
            if (!value[0]) {
                fprintf(stderr, "ferry-conformance: --devices needs at least one device\n");
                return 2;
            }
            setenv("FERRY_TEST_DEVICES", value, 1);
            continue;
        }
        size_t g = 0;
        while (g < NGROUPS && strcmp(groups[g].name, value) != 0)
            g++;
        if (g == NGROUPS) {
            fprintf(stderr, "ferry-conformance: no group '%s' (--list shows them)\n", value);
            return 2;
        }
        chosen[g] = any_chosen = true;
    }
    /* The failure lists go to stdout; CMocka's verdicts must land in order among them. */
    setenv("CMOCKA_MESSAGE_OUTPUT", "stdout", 0);
    int failed = 0;
    for (size_t g = 0; g < NGROUPS; g++)
        if (!any_chosen || chosen[g])
            failed += groups[g].run();
    ferry_shutdown();
    return failed ? 1 : 0;
}

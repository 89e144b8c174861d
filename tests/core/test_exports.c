/* What the built shared objects expose: every plugin exports exactly one function,
 * its entry symbol, and libferry.so neither references nor needs any vendor library. */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/backend_v1.h>

#include <cmocka.h>

static const char *build_dir(void)
{
    const char *dir = getenv("FERRY_TEST_BUILD_DIR");
    if (!dir || dir[0] != '/')
        fail_msg("FERRY_TEST_BUILD_DIR must name the build folder (ctest sets it)");
    return dir;
}

/* Runs a command and returns its whole stdout (malloc'd), failing the test when it cannot
 * run or exits non-zero. The tools are binutils': a machine without them skips. */
static char *run(const char *fmt, const char *path)
{
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, fmt, path);
    FILE *p = popen(cmd, "r");
    if (!p)
        fail_msg("popen(%s) failed", cmd);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = '\0';
    int rc = pclose(p);
    if (rc != 0)
        fail_msg("`%s` exited with %d:\n%s", cmd, rc, out);
    return out;
}

static void require_tool(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    if (system(cmd) != 0) {
        print_message("%s not found: skipping\n", tool);
        skip();
    }
}

/* Checks that `nm -D --defined-only` lists `entry` (the 2.0 or the 1.x entry symbol) as
 * the one text symbol. */
static void check_plugin_exports(const char *path, const char *entry)
{
    char *out = run("nm -D --defined-only '%s'", path);
    int entries = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char addr[64], type[8], name[512];
        if (sscanf(line, "%63s %7s %511s", addr, type, name) != 3)
            continue;
        /* Text, weak and indirect functions are all callable from outside. */
        bool function = strcmp(type, "T") == 0 || strcmp(type, "W") == 0 ||
                        strcmp(type, "i") == 0;
        if (!function)
            continue;
        if (strcmp(name, entry) != 0)
            fail_msg("%s exports the function %s (%s); only %s may be exported", path, name,
                     type, entry);
        if (strcmp(type, "T") != 0)
            fail_msg("%s exports %s as '%s', expected 'T'", path, entry, type);
        entries++;
    }
    free(out);
    if (entries != 1)
        fail_msg("%s exports %s %d times, expected once", path, entry, entries);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void test_exports_every_built_plugin_exports_only_its_entry(void **state)
{
    (void)state;
    require_tool("nm");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/lib/ferry", build_dir());
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    int checked = 0;
    bool saw_cpu = false, saw_sim = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "libferry-backend-", 17) != 0 || !ends_with(e->d_name, ".so"))
            continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        check_plugin_exports(path, FERRY_BACKEND_ENTRY_SYMBOL);
        saw_cpu |= strcmp(e->d_name, "libferry-backend-cpu.so") == 0;
        saw_sim |= strcmp(e->d_name, "libferry-backend-sim.so") == 0;
        checked++;
    }
    closedir(d);
    assert_true(saw_cpu);
    assert_true(saw_sim);
    assert_true(checked >= 2);
}

static void test_exports_fake_plugins_export_only_their_entry(void **state)
{
    (void)state;
    require_tool("nm");
    static const struct {
        const char *file, *entry;
    } variants[] = {{"ok/libferry-backend-fake.so", FERRY_BACKEND_ENTRY_SYMBOL},
                    {"old_minor/libferry-backend-fakeold.so", FERRY_BACKEND_V1_ENTRY_SYMBOL},
                    {"init_fail/libferry-backend-fakeinit.so", FERRY_BACKEND_ENTRY_SYMBOL}};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/fake_plugins/%s", build_dir(), variants[i].file);
        check_plugin_exports(path, variants[i].entry);
    }
}

/* OpenCL (cl[A-Z]...), CUDA runtime and driver (cuda..., cu[A-Z]...), cuBLAS, NVRTC. */
static bool is_vendor_symbol(const char *name)
{
    if (strncmp(name, "cl", 2) == 0 && name[2] >= 'A' && name[2] <= 'Z')
        return true;
    if (strncmp(name, "cu", 2) == 0 && name[2] >= 'A' && name[2] <= 'Z')
        return true;
    return strncmp(name, "cuda", 4) == 0 || strncmp(name, "cublas", 6) == 0 ||
           strncmp(name, "nvrtc", 5) == 0 || strncmp(name, "CLBlast", 7) == 0;
}

static void libferry_path(char *path, size_t cap)
{
    snprintf(path, cap, "%s/lib/libferry.so", build_dir());
}

static void test_exports_libferry_references_no_vendor_symbol(void **state)
{
    (void)state;
    require_tool("nm");
    char path[PATH_MAX];
    libferry_path(path, sizeof path);
    char *out = run("nm -D --undefined-only '%s'", path);
    char *save = NULL;
    int undefined = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char type[8], name[512];
        if (sscanf(line, "%7s %511s", type, name) != 2)
            continue;
        char *at = strchr(name, '@'); /* versioned: dlopen@GLIBC_2.34 */
        if (at)
            *at = '\0';
        if (is_vendor_symbol(name))
            fail_msg("libferry.so references the vendor symbol %s", name);
        undefined++;
    }
    free(out);
    /* Sanity: the parse saw libc's symbols, so an empty listing cannot pass silently. */
    assert_true(undefined > 0);
}

static void test_exports_libferry_needs_no_vendor_library(void **state)
{
    (void)state;
    require_tool("readelf");
    char path[PATH_MAX];
    libferry_path(path, sizeof path);
    char *out = run("readelf -d '%s'", path);
    const char *banned[] = {"libOpenCL", "libcuda", "libcudart", "libcublas", "libnvrtc",
                            "libclblast"};
    int needed = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "(NEEDED)"))
            continue;
        needed++;
        for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
            if (strstr(line, banned[i]))
                fail_msg("libferry.so needs a vendor library: %s", line);
    }
    free(out);
    assert_true(needed > 0);
}

static void test_exports_libferry_exports_only_public_ferry_functions(void **state)
{
    (void)state;
    require_tool("nm");
    char path[PATH_MAX];
    libferry_path(path, sizeof path);
    char *out = run("nm -D --defined-only '%s'", path);
    int public_functions = 0;
    bool saw_to = false;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char addr[64], type[8], name[512];
        if (sscanf(line, "%63s %7s %511s", addr, type, name) != 3)
            continue;
        if (strcmp(type, "T") != 0 && strcmp(type, "W") != 0 && strcmp(type, "i") != 0)
            continue;
        /* Internals (ferry__x, helpers without a prefix) stay hidden: plugins must not
         * be able to bind to them, and the ABI is only what ferry.h declares. */
        if (strncmp(name, "ferry_", 6) != 0 || strncmp(name, "ferry__", 7) == 0)
            fail_msg("libferry.so exports the non-public function %s", name);
        saw_to |= strcmp(name, "ferry_tensor_to") == 0;
        public_functions++;
    }
    free(out);
    assert_true(saw_to);
    assert_true(public_functions > 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exports_every_built_plugin_exports_only_its_entry),
        cmocka_unit_test(test_exports_fake_plugins_export_only_their_entry),
        cmocka_unit_test(test_exports_libferry_references_no_vendor_symbol),
        cmocka_unit_test(test_exports_libferry_needs_no_vendor_library),
        cmocka_unit_test(test_exports_libferry_exports_only_public_ferry_functions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

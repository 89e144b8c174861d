/* The OpenCL program cache and the settings read at plugin init: a first run stores the
 * program binary under FERRY_OPENCL_CACHE_DIR, a later generation (ferry_shutdown(), so
 * the plugin is unloaded and loaded again) reuses it, and corrupt, truncated or stale
 * entries are rebuilt; FERRY_OPENCL_HIDE_FP64 refuses float64 naming the device, and a
 * program that fails to build reports the compiler's log. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

typedef struct cache_dir {
    char path[256];
} cache_dir;

static int setup_dir(void **state)
{
    cache_dir *d = calloc(1, sizeof *d);
    snprintf(d->path, sizeof d->path, "/tmp/ferry-opencl-cache-XXXXXX");
    if (!mkdtemp(d->path))
        return -1;
    setenv("FERRY_OPENCL_CACHE_DIR", d->path, 1);
    ferry_shutdown();
    *state = d;
    return 0;
}

static int teardown_dir(void **state)
{
    cache_dir *d = *state;
    ferry_shutdown();
    unsetenv("FERRY_OPENCL_CACHE_DIR");
    unsetenv("FERRY_OPENCL_CACHE_MB");
    DIR *dir = opendir(d->path);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", d->path, e->d_name);
        unlink(p);
    }
    if (dir)
        closedir(dir);
    rmdir(d->path);
    free(d);
    return 0;
}

/* Path of the one cache entry in the folder; the number of entries. */
static int find_entry(const cache_dir *d, char *out, size_t cap)
{
    DIR *dir = opendir(d->path);
    int n = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "opencl-", 7) == 0 && len > 4 &&
            strcmp(e->d_name + len - 4, ".bin") == 0) {
            snprintf(out, cap, "%s/%s", d->path, e->d_name);
            n++;
        }
    }
    if (dir)
        closedir(dir);
    return n;
}

/* One kernel launch in a fresh generation of the registry, checked, then the plugin is
 * unloaded again (nothing stays alive). */
static void run_kernel(void)
{
    int64_t n = 1000;
    ferry_tensor *a = ferry_full(FERRY_FLOAT32, 1, &n, 1.5, "opencl:0");
    assert_tensor(a);
    ferry_tensor *b = ferry_add(a, a);
    assert_tensor(b);
    float v[1000];
    assert_ok(ferry_tensor_copy_to_host(b, v, sizeof v));
    for (int i = 0; i < 1000; i++)
        assert_true(v[i] == 3.0f);
    ferry_tensor_release(b);
    ferry_tensor_release(a);
    ferry_shutdown();
}

static void test_cache_first_run_stores_the_program(void **state)
{
    require_backend("opencl");
    cache_dir *d = *state;
    char path[512];
    assert_int_equal(find_entry(d, path, sizeof path), 0);
    run_kernel();
    assert_int_equal(find_entry(d, path, sizeof path), 1);
    char magic[8];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, magic, 8), 8);
    close(fd);
    assert_memory_equal(magic, "FERRYCLB", 8);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 64);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_cache_later_generation_reuses_the_entry(void **state)
{
    require_backend("opencl");
    cache_dir *d = *state;
    char path[512];
    run_kernel();
    assert_int_equal(find_entry(d, path, sizeof path), 1);
    struct stat first, again;
    assert_int_equal(stat(path, &first), 0);
    /* As if last used a day ago: a hit marks it used now (pruning goes by that). */
    struct timespec old[2] = {{time(NULL) - 86400, 0}, {time(NULL) - 86400, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    run_kernel();
    /* A rebuilt entry is written to a new file and renamed over: a new inode. */
    assert_int_equal(stat(path, &again), 0);
    assert_int_equal(first.st_ino, again.st_ino);
    assert_int_equal(first.st_size, again.st_size);
    assert_true(again.st_mtime > time(NULL) - 3600);
    assert_int_equal(find_entry(d, path, sizeof path), 1);
}

/* A file of `kib` KiB in the cache folder, last modified `age_s` seconds ago. */
static void plant(const cache_dir *d, const char *name, size_t kib, time_t age_s)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)(kib << 10)), 0);
    struct timespec t[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    assert_int_equal(futimens(fd, t), 0);
    close(fd);
}

static bool planted(const cache_dir *d, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    return access(p, F_OK) == 0;
}

static void garbage(const char *path, off_t size);

/* Pruning runs after a store: the real entry is damaged so that the next generation
 * rebuilds and stores it. */
static void test_cache_prunes_the_least_recently_used_beyond_its_budget(void **state)
{
    require_backend("opencl");
    cache_dir *d = *state;
    char path[512];
    run_kernel();
    assert_int_equal(find_entry(d, path, sizeof path), 1);
    /* Over 2 MiB with any real entry; under it once the oldest is gone, for a real entry
     * of up to 1.6 MiB (PoCL's are 50-600 KiB). */
    setenv("FERRY_OPENCL_CACHE_MB", "2", 1);
    plant(d, "opencl-00000000000000a1.bin", 1900, 3000);
    plant(d, "opencl-00000000000000a2.bin", 300, 2000);
    plant(d, "opencl-00000000000000a3.bin", 100, 1000);
    plant(d, "opencl-00000000000000a4.bin.tmp.7.0", 10, 7200); /* its writer died */
    plant(d, "opencl-00000000000000a5.bin.tmp.7.1", 10, 10);   /* still being written */
    plant(d, "cpu-gemm.txt", 1, 9000);                          /* another cache's */
    garbage(path, 0);
    run_kernel(); /* rebuilds and stores the real entry, then prunes, oldest first */
    assert_false(planted(d, "opencl-00000000000000a1.bin"));
    assert_true(planted(d, "opencl-00000000000000a2.bin"));
    assert_true(planted(d, "opencl-00000000000000a3.bin"));
    assert_false(planted(d, "opencl-00000000000000a4.bin.tmp.7.0"));
    assert_true(planted(d, "opencl-00000000000000a5.bin.tmp.7.1"));
    assert_true(planted(d, "cpu-gemm.txt"));
    char any[512];
    assert_int_equal(find_entry(d, any, sizeof any), 3);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 64);

    /* A value that is no number of megabytes warns and keeps the default budget (128 MB):
     * nothing planted goes. */
    setenv("FERRY_OPENCL_CACHE_MB", " -1", 1);
    garbage(path, 0);
    run_kernel();
    assert_true(planted(d, "opencl-00000000000000a2.bin"));
    assert_true(planted(d, "opencl-00000000000000a3.bin"));
    plant(d, "opencl-00000000000000a7.bin", 1, 5000);
    setenv("FERRY_OPENCL_CACHE_MB", "abc", 1);
    garbage(path, 0);
    run_kernel();
    assert_true(planted(d, "opencl-00000000000000a7.bin"));

    /* A budget of 0 keeps only the entry just written. */
    setenv("FERRY_OPENCL_CACHE_MB", "0", 1);
    garbage(path, 0);
    run_kernel();
    assert_int_equal(find_entry(d, any, sizeof any), 1);
    assert_string_equal(any, path);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 64);
}

/* Damages the entry with `damage`, then checks the next generation still runs and writes
 * a fresh entry of the original size. */
static void check_rebuilt_after(cache_dir *d, void (*damage)(const char *path, off_t size))
{
    char path[512];
    run_kernel();
    assert_int_equal(find_entry(d, path, sizeof path), 1);
    struct stat first, damaged, rebuilt;
    assert_int_equal(stat(path, &first), 0);
    damage(path, first.st_size);
    assert_int_equal(stat(path, &damaged), 0);
    run_kernel();
    assert_int_equal(find_entry(d, path, sizeof path), 1);
    assert_int_equal(stat(path, &rebuilt), 0);
    assert_true(rebuilt.st_ino != damaged.st_ino);
    assert_int_equal(rebuilt.st_size, first.st_size);
    /* And the rebuilt entry is good: the generation after that reuses it. */
    run_kernel();
    struct stat last;
    assert_int_equal(stat(path, &last), 0);
    assert_int_equal(last.st_ino, rebuilt.st_ino);
}

static void scribble(const char *path, off_t size)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    unsigned char junk[256];
    memset(junk, 0xAB, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, size / 2), (ssize_t)sizeof junk);
    close(fd);
}

static void truncate_it(const char *path, off_t size)
{
    assert_int_equal(truncate(path, size / 3), 0);
}

static void make_stale(const char *path, off_t size)
{
    /* The header's key (bytes 16..23): as if built from another source or driver. */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint64_t other = 0x0123456789abcdefull;
    assert_int_equal(pwrite(fd, &other, sizeof other, 16), (ssize_t)sizeof other);
    close(fd);
}

static void garbage(const char *path, off_t size)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a program binary\n", f);
    fclose(f);
}

static void test_cache_corrupt_entry_is_rebuilt(void **state)
{
    require_backend("opencl");
    check_rebuilt_after(*state, scribble);
}

static void test_cache_truncated_entry_is_rebuilt(void **state)
{
    require_backend("opencl");
    check_rebuilt_after(*state, truncate_it);
}

static void test_cache_stale_entry_is_rebuilt(void **state)
{
    require_backend("opencl");
    check_rebuilt_after(*state, make_stale);
}

static void test_cache_garbage_entry_is_rebuilt(void **state)
{
    require_backend("opencl");
    check_rebuilt_after(*state, garbage);
}

static void test_cache_unwritable_folder_still_runs(void **state)
{
    (void)state;
    require_backend("opencl");
    setenv("FERRY_OPENCL_CACHE_DIR", "/proc/ferry-cannot-create-this", 1);
    ferry_shutdown();
    run_kernel();
}

static void test_cache_hidden_fp64_is_refused_naming_the_device(void **state)
{
    (void)state;
    require_backend("opencl");
    setenv("FERRY_OPENCL_HIDE_FP64", "1", 1);
    ferry_shutdown();
    float v[4] = {1.5f, -2.25f, 3.0f, 1e30f};
    int64_t n = 4;
    ferry_tensor *f = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, "opencl:0");
    assert_tensor(f);
    /* float64 bytes still live on the device; arithmetic on them is refused with
     * FERRY_ERR_UNSUPPORTED, and the core then converts on the cpu instead. */
    ferry_tensor *d = ferry_tensor_to_dtype(f, FERRY_FLOAT64);
    assert_tensor(d);
    assert_failed_with(FERRY_ERR_UNSUPPORTED, "opencl:0 does not support float64 (no cl_khr_fp64)");
    double got[4];
    assert_ok(ferry_tensor_copy_to_host(d, got, sizeof got));
    for (int i = 0; i < 4; i++)
        assert_true(got[i] == (double)v[i]);
    ferry_tensor_release(d);
    ferry_tensor_release(f);
    unsetenv("FERRY_OPENCL_HIDE_FP64");
    ferry_shutdown();
}

static void test_cache_failed_build_reports_the_log(void **state)
{
    (void)state;
    require_backend("opencl");
    setenv("FERRY_OPENCL_BUILD_OPTIONS", "-DFK_TEST_BUILD_FAILURE", 1);
    ferry_shutdown();
    int64_t n = 8;
    ferry_tensor *a = ferry_ones(FERRY_FLOAT32, 1, &n, "opencl:0");
    assert_tensor(a); /* a contiguous fill needs no program */
    assert_null(ferry_neg(a));
    assert_failed_with(FERRY_ERR_BACKEND, "opencl:0: clBuildProgram failed: "
                                          "CL_BUILD_PROGRAM_FAILURE (-11)");
    assert_non_null(strstr(ferry_last_error(), "build failure requested by FK_TEST_BUILD_FAILURE"));
    /* Remembered, not rebuilt on every launch. */
    assert_null(ferry_neg(a));
    assert_failed_with(FERRY_ERR_BACKEND, "CL_BUILD_PROGRAM_FAILURE");
    ferry_tensor_release(a);
    unsetenv("FERRY_OPENCL_BUILD_OPTIONS");
    ferry_shutdown();
    run_kernel();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_first_run_stores_the_program, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_later_generation_reuses_the_entry,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_cache_prunes_the_least_recently_used_beyond_its_budget, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_corrupt_entry_is_rebuilt, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_truncated_entry_is_rebuilt, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_stale_entry_is_rebuilt, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_garbage_entry_is_rebuilt, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_unwritable_folder_still_runs, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_hidden_fp64_is_refused_naming_the_device,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_cache_failed_build_reports_the_log, setup_dir,
                                        teardown_dir),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ferry_shutdown();
    return rc;
}

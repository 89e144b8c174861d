/* The CPU backend's advanced-indexing walk (ferry_index, ferry_index_put) on sizes the
 * conformance suite's (3, 4, 5) cases do not reach: lines longer than a block, blocks cut
 * at line ends and at thread boundaries, several index tensors of mixed dtypes, an index
 * after a slice, rows of merged trailing dims, a strided source, every element size, bad
 * indices met in a late block, and accumulation split by dim and by columns. References
 * are computed here from NumPy's rules for 1-D indices of one length. */
#include <stdlib.h>

#include "test_util.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A case: a source of nd dims, and which of them take an index of n entries. */
typedef struct icase {
    int nd;
    int64_t shape[3];
    bool indexed[3];
    ferry_dtype idt[3];
    int64_t n;
} icase;

typedef struct iplan {
    int nr;
    int64_t rshape[4];
    int64_t rnumel;
    int64_t *idx[3];       /* the entries, possibly negative */
    ferry_tensor *tidx[3]; /* as tensors of their dtype; NULL for a whole dim */
} iplan;

static bool adjacent(const icase *c)
{
    int first = -1, last = -1, k = 0;
    for (int d = 0; d < c->nd; d++)
        if (c->indexed[d]) {
            first = first < 0 ? d : first;
            last = d;
            k++;
        }
    return last - first + 1 == k;
}

/* The result's shape, and random entries in [-size, size). */
static void plan_make(const icase *c, iplan *p)
{
    memset(p, 0, sizeof *p);
    bool adj = adjacent(c);
    int first = 0;
    while (!c->indexed[first])
        first++;
    int bdim = adj ? first : 0;
    for (int d = 0; d < c->nd; d++) {
        if (d == bdim)
            p->rshape[p->nr++] = c->n;
        if (!c->indexed[d])
            p->rshape[p->nr++] = c->shape[d];
    }
    p->rnumel = 1;
    for (int i = 0; i < p->nr; i++)
        p->rnumel *= p->rshape[i];
    for (int d = 0; d < c->nd; d++) {
        if (!c->indexed[d])
            continue;
        p->idx[d] = malloc(sizeof(int64_t) * (size_t)c->n);
        assert_non_null(p->idx[d]);
        for (int64_t q = 0; q < c->n; q++)
            p->idx[d][q] = (int64_t)(rng_next() % (uint64_t)(2 * c->shape[d])) - c->shape[d];
    }
}

static void plan_tensors(const icase *c, iplan *p)
{
    for (int d = 0; d < c->nd; d++) {
        if (!c->indexed[d])
            continue;
        ferry_tensor_release(p->tidx[d]);
        if (c->idt[d] == FERRY_INT64) {
            p->tidx[d] = ferry_tensor_from_data(p->idx[d], FERRY_INT64, 1, &c->n, "cpu");
        } else {
            int32_t *v = malloc(sizeof(int32_t) * (size_t)c->n);
            assert_non_null(v);
            for (int64_t q = 0; q < c->n; q++)
                v[q] = (int32_t)p->idx[d][q];
            p->tidx[d] = ferry_tensor_from_data(v, FERRY_INT32, 1, &c->n, "cpu");
            free(v);
        }
        assert_tensor(p->tidx[d]);
    }
}

static void plan_free(iplan *p)
{
    for (int d = 0; d < 3; d++) {
        free(p->idx[d]);
        ferry_tensor_release(p->tidx[d]);
    }
}

/* The source's flat (row-major) position that result position `at` names. */
static int64_t source_of(const icase *c, const iplan *p, int64_t at)
{
    int64_t pos[4];
    for (int i = p->nr - 1; i >= 0; i--) {
        pos[i] = at % p->rshape[i];
        at /= p->rshape[i];
    }
    bool adj = adjacent(c);
    int first = 0;
    while (!c->indexed[first])
        first++;
    int bdim = adj ? first : 0, r = 0;
    int64_t q = pos[bdim], flat = 0;
    for (int d = 0; d < c->nd; d++) {
        if (r == bdim)
            r++;
        int64_t coord;
        if (c->indexed[d]) {
            int64_t i = p->idx[d][q];
            coord = i < 0 ? i + c->shape[d] : i;
        } else {
            coord = pos[r++];
        }
        flat = flat * c->shape[d] + coord;
    }
    return flat;
}

static int64_t numel_of(const icase *c)
{
    int64_t n = 1;
    for (int d = 0; d < c->nd; d++)
        n *= c->shape[d];
    return n;
}

/* A tensor of dtype dt holding v (exact in every dtype but bool). */
static ferry_tensor *from_doubles(const double *v, ferry_dtype dt, int nd, const int64_t *shape)
{
    ferry_tensor *d = ferry_tensor_from_data(v, FERRY_FLOAT64, nd, shape, "cpu");
    assert_tensor(d);
    ferry_tensor *t = ferry_tensor_to_dtype(d, dt);
    assert_tensor(t);
    ferry_tensor_release(d);
    return t;
}

static void assert_values(ferry_tensor *t, const double *want, int64_t n, const char *what)
{
    ferry_tensor *d = ferry_tensor_to_dtype(t, FERRY_FLOAT64);
    assert_tensor(d);
    ferry_tensor *c = ferry_tensor_contiguous(d);
    assert_tensor(c);
    double *got = malloc(sizeof(double) * (size_t)n);
    assert_non_null(got);
    assert_ok(ferry_tensor_copy_to_host(c, got, sizeof(double) * (size_t)n));
    for (int64_t q = 0; q < n; q++)
        if (got[q] != want[q])
            fail_msg("%s: element %lld is %g, not %g", what, (long long)q, got[q], want[q]);
    free(got);
    ferry_tensor_release(c);
    ferry_tensor_release(d);
}

static const ferry_tensor *const *index_list(const iplan *p)
{
    return (const ferry_tensor *const *)p->tidx;
}

/* t[indices] against the reference; transposed: the source is a transposed view of a
 * contiguous tensor (2-D cases only). */
static void check_gather(const icase *c, ferry_dtype dt, bool transposed, const char *what)
{
    iplan p;
    plan_make(c, &p);
    plan_tensors(c, &p);
    int64_t n = numel_of(c);
    double *v = malloc(sizeof(double) * (size_t)n), *want = NULL;
    assert_non_null(v);
    for (int64_t q = 0; q < n; q++)
        v[q] = (double)((q * 7) % 113);
    ferry_tensor *t;
    if (transposed) {
        /* Stored as the transpose, so that the view holds v. */
        double *u = malloc(sizeof(double) * (size_t)n);
        assert_non_null(u);
        int64_t R = c->shape[0], C = c->shape[1];
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < C; k++)
                u[k * R + r] = v[r * C + k];
        ferry_tensor *s = from_doubles(u, dt, 2, (int64_t[]){C, R});
        t = ferry_transpose(s, 0, 1);
        assert_tensor(t);
        ferry_tensor_release(s);
        free(u);
    } else {
        t = from_doubles(v, dt, c->nd, c->shape);
    }
    want = malloc(sizeof(double) * (size_t)p.rnumel);
    assert_non_null(want);
    for (int64_t q = 0; q < p.rnumel; q++)
        want[q] = v[source_of(c, &p, q)];
    ferry_tensor *r = ferry_index(t, c->nd, index_list(&p));
    assert_tensor(r);
    assert_int_equal(ferry_tensor_numel(r), p.rnumel);
    assert_values(r, want, p.rnumel, what);
    ferry_tensor_release(r);
    ferry_tensor_release(t);
    free(v);
    free(want);
    plan_free(&p);
}

static const icase c_ij = {2, {300, 200}, {true, true}, {FERRY_INT64, FERRY_INT32}, 100000};
static const icase c_ij_put = {2, {300, 200}, {true, true}, {FERRY_INT32, FERRY_INT64}, 50000};
static const icase c_cols = {2, {70, 1000}, {false, true}, {0, FERRY_INT32}, 300};
static const icase c_apart = {3, {50, 40, 60}, {true, false, true}, {FERRY_INT32, 0, FERRY_INT64},
                              100};
static const icase c_rows = {3, {100, 80, 16}, {true, true, false}, {FERRY_INT64, FERRY_INT64},
                             5000};
static const icase c_three = {3, {20, 30, 40}, {true, true, true},
                              {FERRY_INT32, FERRY_INT64, FERRY_INT32}, 70000};
static const icase c_mid = {3, {30, 500, 9}, {false, true, false}, {0, FERRY_INT64}, 200};

static void test_gather_layouts_match_reference(void **state)
{
    (void)state;
    check_gather(&c_ij, FERRY_FLOAT32, false, "t[i, j]");
    check_gather(&c_cols, FERRY_FLOAT32, false, "t[:, idx]");
    check_gather(&c_cols, FERRY_FLOAT32, true, "t[:, idx] of a transposed t");
    check_gather(&c_apart, FERRY_FLOAT32, false, "t[i, :, j]");
    check_gather(&c_rows, FERRY_FLOAT32, false, "t[i, j] of rows");
    check_gather(&c_three, FERRY_FLOAT32, false, "t[i, j, l]");
    check_gather(&c_mid, FERRY_FLOAT32, false, "t[:, idx, :]");
}

static void test_gather_every_element_size(void **state)
{
    (void)state;
    static const ferry_dtype dts[] = {FERRY_UINT8, FERRY_INT16, FERRY_FLOAT16, FERRY_INT32,
                                      FERRY_FLOAT64, FERRY_INT64};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        check_gather(&c_ij, dts[i], false, ferry_dtype_name(dts[i]));
        check_gather(&c_cols, dts[i], false, ferry_dtype_name(dts[i]));
        check_gather(&c_rows, dts[i], false, ferry_dtype_name(dts[i]));
    }
}

/* index_put of values 1 + (q % 5) at the plan's places: assign when every place is
 * distinct (the entries are redrawn from a permutation of the places), else accumulate. */
static void check_put(const icase *c, ferry_dtype dt, bool accumulate, const char *what)
{
    iplan p;
    plan_make(c, &p);
    int64_t n = numel_of(c);
    if (!accumulate) {
        /* Distinct places: the k indexed coordinates of n distinct cells of their grid. */
        int64_t cells = 1;
        for (int d = 0; d < c->nd; d++)
            cells *= c->indexed[d] ? c->shape[d] : 1;
        assert_true(c->n <= cells);
        int64_t *perm = malloc(sizeof(int64_t) * (size_t)cells);
        assert_non_null(perm);
        for (int64_t q = 0; q < cells; q++)
            perm[q] = q;
        for (int64_t q = cells - 1; q > 0; q--) {
            int64_t r = (int64_t)(rng_next() % (uint64_t)(q + 1)), x = perm[q];
            perm[q] = perm[r];
            perm[r] = x;
        }
        for (int64_t q = 0; q < c->n; q++) {
            int64_t cell = perm[q];
            for (int d = c->nd - 1; d >= 0; d--) {
                if (!c->indexed[d])
                    continue;
                int64_t i = cell % c->shape[d];
                cell /= c->shape[d];
                p.idx[d][q] = q % 2 ? i - c->shape[d] : i; /* some negative */
            }
        }
        free(perm);
    }
    plan_tensors(c, &p);
    double *v = malloc(sizeof(double) * (size_t)n);
    double *vals = malloc(sizeof(double) * (size_t)p.rnumel);
    assert_non_null(v);
    assert_non_null(vals);
    for (int64_t q = 0; q < n; q++)
        v[q] = (double)(q % 3);
    for (int64_t q = 0; q < p.rnumel; q++)
        vals[q] = (double)(1 + q % 5);
    ferry_tensor *t = from_doubles(v, dt, c->nd, c->shape);
    ferry_tensor *tv = from_doubles(vals, dt, p.nr, p.rshape);
    for (int64_t q = 0; q < p.rnumel; q++) {
        int64_t at = source_of(c, &p, q);
        v[at] = accumulate ? v[at] + vals[q] : vals[q];
    }
    assert_ok(ferry_index_put(t, c->nd, index_list(&p), tv, accumulate));
    assert_values(t, v, n, what);
    ferry_tensor_release(t);
    ferry_tensor_release(tv);
    free(v);
    free(vals);
    plan_free(&p);
}

/* t[idx] of rows of 128: accumulation splits the columns among threads. */
static const icase c_wide = {2, {1000, 128}, {true, false}, {FERRY_INT32}, 3000};

static void test_put_assign_and_accumulate_match_reference(void **state)
{
    (void)state;
    check_put(&c_ij_put, FERRY_FLOAT32, false, "t[i, j] = v");
    check_put(&c_ij, FERRY_FLOAT32, true, "t[i, j] += v");
    check_put(&c_cols, FERRY_FLOAT32, true, "t[:, idx] += v");
    check_put(&c_cols, FERRY_FLOAT32, false, "t[:, idx] = v");
    check_put(&c_rows, FERRY_FLOAT32, false, "t[i, j] = rows");
    check_put(&c_rows, FERRY_FLOAT32, true, "t[i, j] += rows");
    check_put(&c_apart, FERRY_FLOAT32, true, "t[i, :, j] += v");
    check_put(&c_three, FERRY_INT32, true, "t[i, j, l] += v");
    check_put(&c_wide, FERRY_FLOAT32, true, "t[idx] += wide rows");
    check_put(&c_wide, FERRY_FLOAT64, true, "t[idx] += wide rows, float64");
    check_put(&c_mid, FERRY_INT16, true, "t[:, idx, :] += v, int16");
    check_put(&c_ij, FERRY_UINT8, true, "t[i, j] += v, uint8");
    check_put(&c_ij_put, FERRY_BFLOAT16, false, "t[i, j] = v, bfloat16");
}

/* One bad entry late in the walk (past the first blocks, in the second thread's part):
 * PyTorch's message, naming the index tensor's place among the indices. */
static void test_bad_index_late_in_the_walk(void **state)
{
    (void)state;
    for (int put = 0; put < 2; put++) {
        iplan p;
        plan_make(&c_ij, &p);
        p.idx[1][90001] = 200;
        plan_tensors(&c_ij, &p);
        ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 2, c_ij.shape, "cpu");
        assert_tensor(t);
        if (put) {
            ferry_tensor *v = ferry_ones(FERRY_FLOAT32, 1, &c_ij.n, "cpu");
            assert_tensor(v);
            assert_status(ferry_index_put(t, 2, index_list(&p), v, true), FERRY_ERR_INDEX,
                          "index 200 is out of bounds for dimension 1 with size 200");
            ferry_tensor_release(v);
        } else {
            assert_null(ferry_index(t, 2, index_list(&p)));
            assert_failed_with(FERRY_ERR_INDEX,
                               "index 200 is out of bounds for dimension 1 with size 200");
        }
        ferry_tensor_release(t);
        plan_free(&p);
    }
    iplan p;
    plan_make(&c_cols, &p);
    p.idx[1][250] = -1001;
    plan_tensors(&c_cols, &p);
    ferry_tensor *t = ferry_zeros(FERRY_FLOAT32, 2, c_cols.shape, "cpu");
    assert_tensor(t);
    assert_null(ferry_index(t, 2, index_list(&p)));
    assert_failed_with(FERRY_ERR_INDEX,
                       "index -1001 is out of bounds for dimension 0 with size 1000");
    ferry_tensor_release(t);
    plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_layouts_match_reference),
        cmocka_unit_test(test_gather_every_element_size),
        cmocka_unit_test(test_put_assign_and_accumulate_match_reference),
        cmocka_unit_test(test_bad_index_late_in_the_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Matmul conformance: torch.matmul's shape rules (1-D dot, 2-D, 1-D with 2-D either way,
 * batched, broadcast batch dims) on every dtype, layout and device, and matmul_out,
 * against products accumulated in double (integers in int64, wrapped as PyTorch wraps). */
#include "conformance.h"

#define OPND(nd, ...) {nd, {__VA_ARGS__}, CONF_CONTIGUOUS, 0, {0}}
#define OPND_L(layout, nd, ...) {nd, {__VA_ARGS__}, layout, 0, {0}}

typedef struct mm_case {
    const char *name;
    conf_operand a, b;
} mm_case;

static const mm_case mm_cases[] = {
    {"1-D dot", OPND(1, 4), OPND(1, 4)},
    {"2-D", OPND(2, 3, 4), OPND(2, 4, 5)},
    {"1-D x 2-D", OPND(1, 4), OPND(2, 4, 5)},
    {"2-D x 1-D", OPND(2, 3, 4), OPND(1, 4)},
    {"batched 3-D", OPND(3, 2, 3, 4), OPND(3, 2, 4, 5)},
    {"broadcast batch [2,1,3,4] x [5,4,2]", OPND(4, 2, 1, 3, 4), OPND(3, 5, 4, 2)},
    {"transposed operands", OPND_L(CONF_TRANSPOSED, 2, 3, 4), OPND_L(CONF_TRANSPOSED, 2, 4, 5)},
    {"batched transposed x sliced", OPND_L(CONF_TRANSPOSED, 3, 2, 3, 4),
     OPND_L(CONF_SLICED, 3, 2, 4, 5)},
    {"expanded batch stride 0", {3, {2, 3, 4}, CONF_EXPANDED, 3, {1, 3, 4}}, OPND(3, 2, 4, 5)},
    {"permuted batch dims", OPND_L(CONF_PERMUTED, 4, 2, 3, 3, 4), OPND_L(CONF_PERMUTED, 4, 2, 3, 4, 2)},
    {"permuted batch x broadcast", OPND_L(CONF_PERMUTED, 4, 3, 2, 3, 4), OPND(3, 2, 4, 5)},
    {"1-D x batched 3-D", OPND(1, 4), OPND_L(CONF_TRANSPOSED, 3, 2, 4, 3)},
    {"batched 3-D x 1-D", OPND_L(CONF_SLICED, 3, 2, 3, 4), OPND(1, 4)},
    {"sliced 1-D dot", OPND_L(CONF_SLICED, 1, 5), OPND_L(CONF_SLICED, 1, 5)},
    {"negative strides", OPND_L(CONF_NEGATIVE, 2, 3, 4), OPND_L(CONF_NEGATIVE, 2, 4, 5)},
    {"negative strides 1-D x 2-D", OPND_L(CONF_NEGATIVE, 1, 4), OPND_L(CONF_NEGATIVE, 2, 4, 2)},
    {"zero inner dim", OPND(2, 3, 0), OPND(2, 0, 4)},
    {"zero rows", OPND(2, 0, 4), OPND(2, 4, 5)},
    {"zero batch", OPND(3, 0, 3, 4), OPND(2, 4, 2)},
    {"6-d broadcast batch", OPND(6, 2, 1, 2, 1, 3, 4), OPND_L(CONF_TRANSPOSED, 4, 2, 1, 4, 2)},
    {"larger 17x33x9", OPND(2, 17, 33), OPND_L(CONF_TRANSPOSED, 2, 33, 9)},
    {"long dot", OPND(1, 1000), OPND(1, 1000)},
    {"large batched 2x67x129 x 129x71", OPND(3, 2, 67, 129), OPND_L(CONF_TRANSPOSED, 2, 129, 71)},
    /* The cpu float16/bfloat16 path converts tiles of at most 1024 x 1024 x 512: partial
     * tiles along m and k, then along n and k with a column-major B. */
    /* ferry's small-product kernels (cpu_small_gemm.c): row blocks of 6, 8, 2 and one by
     * one or two column vectors with masked tails; 40 batches are split over the
     * threads, and products past 64^3 (AVX2: 40^3) split their rows in blocks of 24. */
    {"batched small 40x6x16 x 16x19", OPND(3, 40, 6, 16), OPND(3, 40, 16, 19)},
    {"small 13x100 x 100x37", OPND(2, 13, 100), OPND(2, 100, 37)},
    {"small 7x20 x 20x23", OPND(2, 7, 20), OPND(2, 20, 23)},
    {"small threaded 99x90 x 90x70", OPND(2, 99, 90), OPND(2, 90, 70)},
    {"small threaded on AVX2 50x60 x 60x50", OPND(2, 50, 60), OPND(2, 60, 50)},
    {"small threaded transposed 128x128 x 128x128", OPND_L(CONF_TRANSPOSED, 2, 128, 128),
     OPND(2, 128, 128)},
    /* ferry's packed kernels (cpu_pack_gemm.c, FERRY_CPU_GEMM=ferry): blocks of 384 or
     * 192 rows (several per thread), 256 along k, panels of 4096 or 2048 columns; a
     * 16-row product (the fewest they take) splits its columns over the threads. */
    {"packed tall 700x40 x 40x33", OPND(2, 700, 40), OPND_L(CONF_TRANSPOSED, 2, 40, 33)},
    {"packed wide 16x300 x 300x4100", OPND(2, 16, 300), OPND(2, 300, 4100)},
    /* The 16-bit floats convert as they are packed (past 128^3 multiply-adds), in output
     * tiles of 1024 x 1024: two along m here, strided A or B read element by element. */
    {"packed tiles 1030x300 x transposed 300x40", OPND(2, 1030, 300),
     OPND_L(CONF_TRANSPOSED, 2, 300, 40)},
    {"packed transposed 200x260 x 260x90", OPND_L(CONF_TRANSPOSED, 2, 200, 260),
     OPND(2, 260, 90)},
    {"tiled 1030x520 x 520x3", OPND(2, 1030, 520), OPND(2, 520, 3)},
    {"tiled 3x520 x transposed 520x1030", OPND(2, 3, 520), OPND_L(CONF_TRANSPOSED, 2, 520, 1030)},
};
#define N_MM_CASES (sizeof mm_cases / sizeof mm_cases[0])

/* Small integers keep int8 products exact; the long cases still wrap, as PyTorch's
 * integer matmul wraps in its own type. */
static const conf_domain mm_domain = {-2.0, 2.0, -3, 3, false};

/* PyTorch has no bool matmul ("addmm_impl_cpu_" not implemented for 'Bool'). */
static const char *mm_refusal(ferry_dtype dt)
{
    return dt == FERRY_BOOL ? "matmul" : NULL;
}

typedef struct mm_ref {
    int ndim;
    int64_t shape[CONF_MAX_DIMS];
    int64_t numel;
    double *v;
    double *tol;
} mm_ref;

static void mm_reference(const conf_array *a, const conf_array *b, mm_ref *r)
{
    int an = a->ndim, bn = b->ndim;
    int64_t m = an == 1 ? 1 : a->shape[an - 2], k = a->shape[an - 1];
    int64_t n = bn == 1 ? 1 : b->shape[bn - 1];
    /* Batch dims as arrays of their own, so conf_bcast_index maps batch positions. */
    conf_array ab = {a->dtype, an > 2 ? an - 2 : 0, {0}, 0, NULL};
    conf_array bb = {b->dtype, bn > 2 ? bn - 2 : 0, {0}, 0, NULL};
    for (int i = 0; i < ab.ndim; i++)
        ab.shape[i] = a->shape[i];
    for (int i = 0; i < bb.ndim; i++)
        bb.shape[i] = b->shape[i];
    int nbatch;
    int64_t batch[CONF_MAX_DIMS];
    assert_true(conf_bcast_shape(ab.ndim, ab.shape, bb.ndim, bb.shape, &nbatch, batch));
    int64_t nb = conf_numel(nbatch, batch);

    r->ndim = 0;
    for (int i = 0; i < nbatch; i++)
        r->shape[r->ndim++] = batch[i];
    if (an > 1)
        r->shape[r->ndim++] = m;
    if (bn > 1)
        r->shape[r->ndim++] = n;
    r->numel = nb * m * n;
    r->v = calloc((size_t)(r->numel ? r->numel : 1), sizeof *r->v);
    r->tol = calloc((size_t)(r->numel ? r->numel : 1), sizeof *r->tol);
    ferry_dtype dt = a->dtype;
    for (int64_t bi = 0; bi < nb; bi++) {
        int64_t ao = conf_bcast_index(&ab, nbatch, batch, bi) * m * k;
        int64_t bo = conf_bcast_index(&bb, nbatch, batch, bi) * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0, mag = 0;
                int64_t iacc = 0;
                for (int64_t p = 0; p < k; p++) {
                    double x = a->v[ao + i * k + p], y = b->v[bo + p * n + j];
                    acc += x * y;
                    mag += fabs(x * y);
                    /* Floats (NaN among them) never pass through an int64 conversion. */
                    if (!conf_is_float(dt))
                        iacc = (int64_t)((uint64_t)iacc + (uint64_t)((int64_t)x * (int64_t)y));
                }
                int64_t o = (bi * m + i) * n + j;
                if (conf_is_float(dt)) {
                    r->v[o] = acc;
                    r->tol[o] = (double)(k + 1) * conf_acc_eps(dt) * mag;
                } else {
                    r->v[o] = (double)conf_wrap(dt, iacc);
                }
            }
    }
}

typedef struct mm_ctx {
    ferry_tensor *a, *b;
} mm_ctx;

static ferry_status mm_write_out(ferry_tensor *out, void *ctx)
{
    mm_ctx *c = ctx;
    return ferry_matmul_out(out, c->a, c->b);
}

static void check_matmul(const conf_where *w, ferry_tensor *a, const conf_array *av,
                         ferry_tensor *b, const conf_array *bv)
{
    const char *refusal = mm_refusal(av->dtype);
    if (refusal) {
        ferry_tensor *t = ferry_matmul(a, b);
        conf_expect_error(w, "ferry_matmul", t == NULL, FERRY_ERR_UNSUPPORTED,
                          FERRY_ERR_INVALID_ARGUMENT, refusal);
        ferry_tensor_release(t);
        return;
    }
    mm_ref r;
    mm_reference(av, bv, &r);
    ferry_dtype dt = av->dtype;
    conf_array got;
    ferry_tensor *t = ferry_matmul(a, b);
    if (!t)
        conf_fail_call(w, "ferry_matmul");
    else if (conf_read(w, t, dt, r.ndim, r.shape, w->device, &got)) {
        conf_compare(w, &got, r.v, r.tol);
        conf_array_free(&got);
    }
    ferry_tensor_release(t);

    mm_ctx ctx = {a, b};
    conf_check_out_forms(w, "ferry_matmul_out", dt, r.ndim, r.shape, r.numel, r.v, r.tol,
                         mm_write_out, &ctx);
    free(r.v);
    free(r.tol);
}

static void test_matmul_matches_reference_on_every_dtype_case_and_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t d = 0; d < FERRY_NUM_DTYPES; d++)
            for (size_t c = 0; c < N_MM_CASES; c++) {
                const mm_case *mc = &mm_cases[c];
                if (!conf_layout_runs_on(mc->a.layout, dev) ||
                    !conf_layout_runs_on(mc->b.layout, dev))
                    continue;
                ferry_dtype dt = conf_all_dtypes[d];
                conf_where w = {"matmul", conf_dtype_name(dt), mc->name, dev};
                conf_rng r = conf_rng_seed("matmul", w.dtype, mc->name, 0);
                conf_array av, bv;
                ferry_tensor *a = conf_make(&w, &mc->a, dt, dev, &r, &mm_domain, &av);
                if (!a)
                    continue;
                ferry_tensor *b = conf_make(&w, &mc->b, dt, dev, &r, &mm_domain, &bv);
                if (b) {
                    check_matmul(&w, a, &av, b, &bv);
                    ferry_tensor_release(b);
                    conf_array_free(&bv);
                }
                ferry_tensor_release(a);
                conf_array_free(&av);
            }
    }
    conf_finish();
}

/* NaN and infinities flow through the products as IEEE says (inf * 0 is NaN). */
static void test_matmul_nan_and_inf_propagate(void **state)
{
    (void)state;
    int64_t sa[2] = {2, 2}, sb[2] = {2, 2};
    const conf_operand spec = {2, {2, 2}, CONF_CONTIGUOUS, 0, {0}};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t d = 0; d < FERRY_NUM_DTYPES; d++) {
            ferry_dtype dt = conf_all_dtypes[d];
            if (!conf_is_float(dt))
                continue;
            conf_where w = {"matmul", conf_dtype_name(dt), "NaN and inf", dev};
            conf_array x, y, av, bv;
            conf_array_init(&x, dt, 2, sa);
            conf_array_init(&y, dt, 2, sb);
            const double xs[4] = {NAN, 1.0, INFINITY, 2.0}, ys[4] = {1.0, 0.0, 0.0, 3.0};
            for (int i = 0; i < 4; i++) {
                x.v[i] = xs[i];
                y.v[i] = ys[i];
            }
            ferry_tensor *a = conf_build(&w, &spec, &x, dev, &av);
            ferry_tensor *b = a ? conf_build(&w, &spec, &y, dev, &bv) : NULL;
            if (b) {
                check_matmul(&w, a, &av, b, &bv);
                ferry_tensor_release(b);
                conf_array_free(&bv);
            }
            if (a) {
                ferry_tensor_release(a);
                conf_array_free(&av);
            }
            conf_array_free(&x);
            conf_array_free(&y);
        }
    }
    conf_finish();
}

/* float16 and bfloat16 products accumulate in float32: a dot of 4096 ones is 4096, where
 * their own types would stall at 2048 and 256. */
static void test_matmul_half_types_accumulate_in_float32(void **state)
{
    (void)state;
    static const ferry_dtype dts[] = {FERRY_FLOAT16, FERRY_BFLOAT16};
    int64_t ka[2] = {2, 4096}, kb[2] = {4096, 3}, rs[2] = {2, 3};
    CONF_FOR_EACH_DEVICE(dev) {
        for (size_t d = 0; d < 2; d++) {
            conf_where w = {"matmul", conf_dtype_name(dts[d]), "4096 ones", dev};
            ferry_tensor *a = ferry_ones(dts[d], 2, ka, dev);
            ferry_tensor *b = ferry_ones(dts[d], 2, kb, dev);
            ferry_tensor *c = a && b ? ferry_matmul(a, b) : NULL;
            conf_array got;
            if (!c)
                conf_fail_call(&w, "ferry_ones / ferry_matmul");
            else if (conf_read(&w, c, dts[d], 2, rs, dev, &got)) {
                double ref[6] = {4096, 4096, 4096, 4096, 4096, 4096};
                conf_compare(&w, &got, ref, NULL);
                conf_array_free(&got);
            }
            ferry_tensor_release(c);
            ferry_tensor_release(a);
            ferry_tensor_release(b);
        }
    }
    conf_finish();
}

int conf_group_matmul(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_matches_reference_on_every_dtype_case_and_device),
        cmocka_unit_test(test_matmul_nan_and_inf_propagate),
        cmocka_unit_test(test_matmul_half_types_accumulate_in_float32),
    };
    return cmocka_run_group_tests_name("matmul", tests, NULL, NULL);
}

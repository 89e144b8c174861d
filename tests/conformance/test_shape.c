/* Joining, splitting and shape conformance: cat, stack, flip, narrow, split, chunk,
 * unbind, movedim on every dtype, layout and device against index arithmetic done here,
 * PyTorch's refusals, and no CPU fallback on a device with kernels (the fallback counter
 * stays where it was on every device but sim, whose ops all run on the cpu). */
#include "conformance.h"

#define SHAPE(...) (int64_t[]){__VA_ARGS__}

static void unravel(int nd, const int64_t *shape, int64_t flat, int64_t *idx)
{
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
}

static int64_t ravel(int nd, const int64_t *shape, const int64_t *idx)
{
    int64_t flat = 0;
    for (int d = 0; d < nd; d++)
        flat = flat * shape[d] + idx[d];
    return flat;
}


/* ---- cat and stack ---- */

static void test_shape_cat_and_stack_match_index_arithmetic_on_every_dtype_and_device(void **state)
{
    (void)state;
    static const conf_layout layouts[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED, CONF_SLICED};
    CONF_FOR_EACH_DEVICE(dev) {
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            /* The second input has another dtype: cat promotes as torch.cat. */
            ferry_dtype dt2 = conf_all_dtypes[(di + 3) % FERRY_NUM_DTYPES];
            for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                for (int dim = -3; dim < 3; dim++) {
                    int d = dim < 0 ? dim + 3 : dim;
                    conf_where w = {"cat", conf_dtype_name(dt), conf_layout_name(layouts[li]), dev};
                    conf_rng r = conf_rng_seed("cat", w.dtype, w.kase, (unsigned)(dim + 3));
                    conf_operand sa = {3, {2, 3, 4}, layouts[li], 0, {0}};
                    conf_operand sb = sa;
                    sb.layout = CONF_CONTIGUOUS;
                    sb.shape[d] = d == 0 ? 1 : 2;
                    conf_array av, bv, got;
                    ferry_tensor *a = conf_make(&w, &sa, dt, dev, &r, &conf_default_domain, &av);
                    ferry_tensor *b =
                        a ? conf_make(&w, &sb, dt2, dev, &r, &conf_default_domain, &bv) : NULL;
                    if (!b) {
                        if (a) {
                            ferry_tensor_release(a);
                            conf_array_free(&av);
                        }
                        continue;
                    }
                    /* An empty 1-D tensor in the list is skipped, as in PyTorch. */
                    ferry_tensor *e = ferry_zeros(dt, 1, SHAPE(0), dev);
                    const ferry_tensor *in[3] = {a, e, b};
                    ferry_dtype rt = conf_promote(dt, dt2);
                    int64_t shape[3] = {2, 3, 4};
                    shape[d] += sb.shape[d];
                    uint64_t before = conf_fallbacks(dev);
                    ferry_tensor *c = ferry_cat(in, 3, dim);
                    conf_check_no_fallback(&w, before);
                    if (!c) {
                        conf_fail_call(&w, "ferry_cat");
                    } else if (conf_read(&w, c, rt, 3, shape, dev, &got)) {
                        double *ref = malloc((size_t)got.numel * sizeof *ref);
                        int64_t idx[3];
                        for (int64_t k = 0; k < got.numel; k++) {
                            unravel(3, shape, k, idx);
                            if (idx[d] < sa.shape[d]) {
                                ref[k] = av.v[ravel(3, sa.shape, idx)];
                            } else {
                                idx[d] -= sa.shape[d];
                                ref[k] = bv.v[ravel(3, sb.shape, idx)];
                            }
                            ref[k] = conf_round(rt, ref[k]);
                        }
                        conf_compare(&w, &got, ref, NULL);
                        free(ref);
                        conf_array_free(&got);
                    }
                    ferry_tensor_release(c);

                    /* stack of a with itself at each new dim. */
                    w.op = "stack";
                    const ferry_tensor *pair[2] = {a, a};
                    int sd = dim < 0 ? dim - 1 : dim + 1; /* -4 .. 3 over a 4-D result */
                    int sdw = sd < 0 ? sd + 4 : sd;
                    int64_t sshape[4];
                    for (int i = 0, j = 0; i < 4; i++)
                        sshape[i] = i == sdw ? 2 : sa.shape[j++];
                    before = conf_fallbacks(dev);
                    ferry_tensor *s = ferry_stack(pair, 2, sd);
                    conf_check_no_fallback(&w, before);
                    if (!s) {
                        conf_fail_call(&w, "ferry_stack");
                    } else if (conf_read(&w, s, dt, 4, sshape, dev, &got)) {
                        double *ref = malloc((size_t)got.numel * sizeof *ref);
                        int64_t idx[4], src[3];
                        for (int64_t k = 0; k < got.numel; k++) {
                            unravel(4, sshape, k, idx);
                            for (int i = 0, j = 0; i < 4; i++)
                                if (i != sdw)
                                    src[j++] = idx[i];
                            ref[k] = av.v[ravel(3, sa.shape, src)];
                        }
                        conf_compare(&w, &got, ref, NULL);
                        free(ref);
                        conf_array_free(&got);
                    }
                    ferry_tensor_release(s);
                    ferry_tensor_release(e);
                    ferry_tensor_release(a);
                    ferry_tensor_release(b);
                    conf_array_free(&av);
                    conf_array_free(&bv);
                }
            }
        }
    }
    conf_finish();
}

/* ---- flip ---- */

static void test_shape_flip_matches_index_arithmetic_on_every_dtype_and_device(void **state)
{
    (void)state;
    static const conf_layout layouts[] = {CONF_CONTIGUOUS, CONF_TRANSPOSED, CONF_SLICED,
                                          CONF_EXPANDED, CONF_NEGATIVE};
    static const int dimsets[][3] = {{0, -1, -1}, {2, -1, -1}, {0, 2, -1}, {-1, 1, 0}};
    static const int ndimsets[] = {1, 1, 2, 3};
    CONF_FOR_EACH_DEVICE(dev) {
        for (int di = 0; di < FERRY_NUM_DTYPES; di++) {
            ferry_dtype dt = conf_all_dtypes[di];
            for (size_t li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
                if (!conf_layout_runs_on(layouts[li], dev))
                    continue;
                for (int ds = 0; ds < 4; ds++) {
                    conf_where w = {"flip", conf_dtype_name(dt), conf_layout_name(layouts[li]), dev};
                    conf_rng r = conf_rng_seed("flip", w.dtype, w.kase, (unsigned)ds);
                    conf_operand sa = {3, {2, 3, 4}, layouts[li], 3, {2, 1, 4}};
                    conf_array av, got;
                    ferry_tensor *a = conf_make(&w, &sa, dt, dev, &r, &conf_default_domain, &av);
                    if (!a)
                        continue;
                    bool flipped[3] = {false};
                    for (int i = 0; i < ndimsets[ds]; i++)
                        flipped[(dimsets[ds][i] + 3) % 3] = true;
                    uint64_t before = conf_fallbacks(dev);
                    ferry_tensor *f = ferry_flip(a, ndimsets[ds], dimsets[ds]);
                    conf_check_no_fallback(&w, before);
                    if (!f) {
                        conf_fail_call(&w, "ferry_flip");
                    } else if (conf_read(&w, f, dt, 3, sa.shape, dev, &got)) {
                        double *ref = malloc((size_t)got.numel * sizeof *ref);
                        int64_t idx[3];
                        for (int64_t k = 0; k < got.numel; k++) {
                            unravel(3, sa.shape, k, idx);
                            for (int d = 0; d < 3; d++)
                                if (flipped[d])
                                    idx[d] = sa.shape[d] - 1 - idx[d];
                            ref[k] = av.v[ravel(3, sa.shape, idx)];
                        }
                        conf_compare(&w, &got, ref, NULL);
                        free(ref);
                        conf_array_free(&got);
                    }
                    ferry_tensor_release(f);
                    ferry_tensor_release(a);
                    conf_array_free(&av);
                }
            }
        }
    }
    conf_finish();
}

/* ---- views: narrow, split, chunk, unbind, movedim ---- */

/* A piece must be the slice [start, start + len) of av along dim (squeezed: unbind). */
static void check_piece(const conf_where *w, ferry_tensor *p, const conf_array *av, int dim,
                        int64_t start, int64_t len, bool squeezed)
{
    int64_t shape[3], pshape[3];
    memcpy(shape, av->shape, sizeof shape);
    shape[dim] = len;
    int pn = 0;
    for (int d = 0; d < 3; d++)
        if (!(squeezed && d == dim))
            pshape[pn++] = shape[d];
    conf_array got;
    if (!conf_read(w, p, av->dtype, pn, pshape, w->device, &got))
        return;
    double *ref = malloc((size_t)(got.numel + 1) * sizeof *ref);
    int64_t idx[3];
    for (int64_t k = 0; k < got.numel; k++) {
        unravel(3, shape, k, idx);
        idx[dim] += start;
        ref[k] = av->v[ravel(3, av->shape, idx)];
    }
    conf_compare(w, &got, ref, NULL);
    free(ref);
    conf_array_free(&got);
}

static void test_shape_split_family_views_match_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        static const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_INT64, FERRY_BOOL, FERRY_FLOAT16};
        for (int di = 0; di < 4; di++) {
            ferry_dtype dt = dts[di];
            conf_where w = {"split", conf_dtype_name(dt), "contiguous", dev};
            conf_rng r = conf_rng_seed("split", w.dtype, w.kase, 0);
            conf_operand sa = {3, {5, 3, 7}, CONF_TRANSPOSED, 0, {0}};
            conf_array av;
            ferry_tensor *a = conf_make(&w, &sa, dt, dev, &r, &conf_default_domain, &av);
            if (!a)
                continue;
            ferry_tensor *out[8] = {NULL};
            for (int dim = 0; dim < 3; dim++) {
                int64_t n = sa.shape[dim];
                /* split by 2: ceil(n / 2) pieces, the last shorter when n is odd. */
                w.op = "split";
                int cnt = ferry_split(a, 2, dim - 3, out, 8);
                if (cnt != (int)((n + 1) / 2))
                    conf_fail(&w, "split of %lld by 2 gave %d pieces", (long long)n, cnt);
                for (int i = 0; i < cnt && i < 8; i++) {
                    check_piece(&w, out[i], &av, dim, 2 * i, n - 2 * i < 2 ? n - 2 * i : 2, false);
                    ferry_tensor_release(out[i]);
                }
                /* chunk into 3 as torch: pieces of ceil(n / 3). */
                w.op = "chunk";
                cnt = ferry_chunk(a, 3, dim, out, 8);
                int64_t cs = (n + 2) / 3;
                if (cnt != (int)((n + cs - 1) / cs))
                    conf_fail(&w, "chunk of %lld into 3 gave %d pieces", (long long)n, cnt);
                for (int i = 0; i < cnt && i < 8; i++) {
                    check_piece(&w, out[i], &av, dim, cs * i, n - cs * i < cs ? n - cs * i : cs,
                                false);
                    ferry_tensor_release(out[i]);
                }
                /* unbind, with cap below the count: the count is still returned. */
                w.op = "unbind";
                cnt = ferry_unbind(a, dim, out, 2);
                if (cnt != (int)n)
                    conf_fail(&w, "unbind of %lld gave %d", (long long)n, cnt);
                for (int i = 0; i < 2; i++) {
                    check_piece(&w, out[i], &av, dim, i, 1, true);
                    ferry_tensor_release(out[i]);
                }
                w.op = "narrow";
                ferry_tensor *v = ferry_narrow(a, dim, -2, 2);
                if (!v)
                    conf_fail_call(&w, "ferry_narrow");
                else
                    check_piece(&w, v, &av, dim, n - 2, 2, false);
                ferry_tensor_release(v);
            }
            w.op = "split_sizes";
            int cnt = ferry_split_sizes(a, 3, SHAPE(1, 0, 6), -1, out, 8);
            if (cnt != 3)
                conf_fail(&w, "split_sizes gave %d", cnt);
            for (int i = 0; i < cnt && i < 3; i++) {
                static const int64_t st[3] = {0, 1, 1}, ln[3] = {1, 0, 6};
                check_piece(&w, out[i], &av, 2, st[i], ln[i], false);
                ferry_tensor_release(out[i]);
            }
            /* movedim((0, 2), (2, 0)) is permute (2, 1, 0); (0,) to (-1,) is (1, 2, 0). */
            w.op = "movedim";
            ferry_tensor *m = ferry_movedim(a, 1, (int[]){0}, (int[]){-1});
            conf_array got;
            int64_t mshape[3] = {3, 7, 5};
            if (!m) {
                conf_fail_call(&w, "ferry_movedim");
            } else if (conf_read(&w, m, dt, 3, mshape, dev, &got)) {
                double ref[105];
                int64_t idx[3], src[3];
                for (int64_t k = 0; k < got.numel; k++) {
                    unravel(3, mshape, k, idx);
                    src[0] = idx[2];
                    src[1] = idx[0];
                    src[2] = idx[1];
                    ref[k] = av.v[ravel(3, sa.shape, src)];
                }
                conf_compare(&w, &got, ref, NULL);
                conf_array_free(&got);
            }
            ferry_tensor_release(m);
            ferry_tensor_release(a);
            conf_array_free(&av);
        }
    }
    conf_finish();
}

/* ---- refusals ---- */

static void test_shape_refuses_with_pytorch_messages_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        conf_where w = {"shape", "float32", "refusal", dev};
        ferry_tensor *a = ferry_zeros(FERRY_FLOAT32, 2, SHAPE(2, 2), dev);
        ferry_tensor *b = ferry_zeros(FERRY_FLOAT32, 2, SHAPE(3, 3), dev);
        ferry_tensor *v = ferry_zeros(FERRY_FLOAT32, 1, SHAPE(2), dev);
        ferry_tensor *z = ferry_zeros(FERRY_FLOAT32, 0, NULL, dev);
        ferry_tensor *h = ferry_zeros(FERRY_FLOAT32, 2, SHAPE(2, 2), "cpu");
        assert_tensor(a);
        assert_tensor(b);
        assert_tensor(v);
        assert_tensor(z);
        assert_tensor(h);
        ferry_tensor *r, *out[4] = {NULL};
        const ferry_tensor *ab[2] = {a, b}, *av[2] = {a, v}, *zz[2] = {z, z}, *ah[2] = {a, h};

        w.kase = "cat of mismatched sizes";
        r = ferry_cat(ab, 2, 1);
        conf_expect_error(&w, "ferry_cat", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Sizes of tensors must match except in dimension 1. Expected size 2 but "
                          "got size 3 for tensor number 1 in the list.");
        w.kase = "cat dim out of range";
        r = ferry_cat(ab, 2, 2);
        conf_expect_error(&w, "ferry_cat", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-2, 1], but got 2)");
        w.kase = "cat of different ranks";
        r = ferry_cat(av, 2, 0);
        conf_expect_error(&w, "ferry_cat", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Tensors must have same number of dimensions: got 2 and 1");
        w.kase = "cat of 0-d tensors";
        r = ferry_cat(zz, 2, 0);
        conf_expect_error(&w, "ferry_cat", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "zero-dimensional tensor (at position 0) cannot be concatenated");
        w.kase = "cat of an empty list";
        r = ferry_cat(ab, 0, 0);
        conf_expect_error(&w, "ferry_cat", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "expected a non-empty list of Tensors");
        if (!conf_is_cpu(dev)) {
            w.kase = "cat across devices";
            r = ferry_cat(ah, 2, 0);
            conf_expect_error(&w, "ferry_cat", r == NULL, FERRY_ERR_WRONG_DEVICE,
                              FERRY_ERR_WRONG_DEVICE,
                              "Expected all tensors to be on the same device");
        }
        w.kase = "stack of unequal shapes";
        r = ferry_stack(ab, 2, 0);
        conf_expect_error(&w, "ferry_stack", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "stack expects each tensor to be equal size, but got [2, 2] at entry 0 "
                          "and [3, 3] at entry 1");
        w.kase = "stack dim out of range";
        r = ferry_stack(ab, 1, 3);
        conf_expect_error(&w, "ferry_stack", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "Dimension out of range (expected to be in range of [-3, 2], but got 3)");
        w.kase = "narrow past the end";
        r = ferry_narrow(a, 0, 1, 3);
        conf_expect_error(&w, "ferry_narrow", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "start (1) + length (3) exceeds dimension size (2).");
        w.kase = "narrow start out of range";
        r = ferry_narrow(a, 0, -3, 1);
        conf_expect_error(&w, "ferry_narrow", r == NULL, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "start out of range (expected to be in range of [-2, 2], but got -3)");
        w.kase = "narrow of an INT64_MAX length";
        r = ferry_narrow(a, 0, 1, INT64_MAX);
        conf_expect_error(&w, "ferry_narrow", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "exceeds dimension size (2).");
        w.kase = "narrow of a 0-d tensor";
        r = ferry_narrow(z, 0, 0, 1);
        conf_expect_error(&w, "ferry_narrow", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "narrow() cannot be applied to a 0-dim tensor.");
        w.kase = "split by 0";
        int n = ferry_split(a, 0, 0, out, 4);
        conf_expect_error(&w, "ferry_split", n < 0, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "split_size can only be 0 if dimension size is 0, but got dimension size "
                          "of 2");
        w.kase = "split by -1";
        n = ferry_split(a, -1, 0, out, 4);
        conf_expect_error(&w, "ferry_split", n < 0, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "split expects split_size be non-negative, but got split_size=-1");
        w.kase = "split sizes not summing";
        n = ferry_split_sizes(a, 2, SHAPE(1, 2), 0, out, 4);
        conf_expect_error(&w, "ferry_split_sizes", n < 0, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "split_with_sizes expects split_sizes to sum exactly to 2");
        w.kase = "chunk into 0";
        n = ferry_chunk(a, 0, 0, out, 4);
        conf_expect_error(&w, "ferry_chunk", n < 0, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "chunk expects `chunks` to be greater than 0, got: 0");
        w.kase = "unbind of a 0-d tensor";
        n = ferry_unbind(z, 0, out, 4);
        conf_expect_error(&w, "ferry_unbind", n < 0, FERRY_ERR_INDEX, FERRY_ERR_INDEX,
                          "Dimension specified as 0 but tensor has no dimensions");
        for (int i = 0; i < 4; i++)
            if (out[i])
                conf_fail(&w, "a failed call left a reference in out[%d]", i);
        w.kase = "flip with a repeated dim";
        r = ferry_flip(a, 2, (int[]){0, -2});
        conf_expect_error(&w, "ferry_flip", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "dim 0 appears multiple times in the list of dims");
        w.kase = "movedim with a repeated source";
        r = ferry_movedim(a, 2, (int[]){0, 0}, (int[]){0, 1});
        conf_expect_error(&w, "ferry_movedim", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "movedim: repeated dim in `source`");
        w.kase = "broadcast_to a smaller size";
        r = ferry_broadcast_to(b, 2, SHAPE(2, 3));
        conf_expect_error(&w, "ferry_broadcast_to", r == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "The expanded size of the tensor (2) must match the existing size (3) "
                          "at non-singleton dimension 0.  Target sizes: [2, 3].  Tensor sizes: "
                          "[3, 3]");
        ferry_tensor_release(a);
        ferry_tensor_release(b);
        ferry_tensor_release(v);
        ferry_tensor_release(z);
        ferry_tensor_release(h);
    }
    conf_finish();
}

/* ---- roll, repeat, linspace ---- */

static void test_shape_roll_repeat_linspace_match_on_every_device(void **state)
{
    (void)state;
    CONF_FOR_EACH_DEVICE(dev) {
        static const ferry_dtype dts[] = {FERRY_FLOAT32, FERRY_INT64, FERRY_BOOL, FERRY_BFLOAT16};
        for (int di = 0; di < 4; di++) {
            ferry_dtype dt = dts[di];
            conf_where w = {"roll", conf_dtype_name(dt), "transposed", dev};
            conf_rng r = conf_rng_seed("roll", w.dtype, w.kase, 0);
            conf_operand sa = {2, {3, 4}, CONF_TRANSPOSED, 0, {0}};
            conf_array av, got;
            ferry_tensor *a = conf_make(&w, &sa, dt, dev, &r, &conf_default_domain, &av);
            if (!a)
                continue;
            uint64_t before = conf_fallbacks(dev);
            /* shifts (-5, 2) over dims (0, -1); and 7 over the flattened tensor. */
            ferry_tensor *x = ferry_roll(a, 2, SHAPE(-5, 2), 2, (int[]){0, -1});
            ferry_tensor *y = ferry_roll(a, 1, SHAPE(7), 0, NULL);
            conf_check_no_fallback(&w, before);
            double ref[24];
            int64_t idx[2];
            if (!x || !y) {
                conf_fail_call(&w, "ferry_roll");
            } else {
                if (conf_read(&w, x, dt, 2, sa.shape, dev, &got)) {
                    for (int64_t k = 0; k < 12; k++) {
                        unravel(2, sa.shape, k, idx);
                        idx[0] = ((idx[0] + 5) % 3 + 3) % 3;
                        idx[1] = ((idx[1] - 2) % 4 + 4) % 4;
                        ref[k] = av.v[ravel(2, sa.shape, idx)];
                    }
                    conf_compare(&w, &got, ref, NULL);
                    conf_array_free(&got);
                }
                w.kase = "flattened";
                if (conf_read(&w, y, dt, 2, sa.shape, dev, &got)) {
                    for (int64_t k = 0; k < 12; k++)
                        ref[k] = av.v[((k - 7) % 12 + 12) % 12];
                    conf_compare(&w, &got, ref, NULL);
                    conf_array_free(&got);
                }
            }
            ferry_tensor_release(x);
            ferry_tensor_release(y);

            /* repeat (2, 1, 2) of a (3, 4): a leading dim and tiles. */
            w.op = "repeat";
            w.kase = "transposed";
            before = conf_fallbacks(dev);
            ferry_tensor *p = ferry_repeat(a, 3, SHAPE(2, 1, 2));
            conf_check_no_fallback(&w, before);
            int64_t pshape[3] = {2, 3, 8};
            if (!p) {
                conf_fail_call(&w, "ferry_repeat");
            } else if (conf_read(&w, p, dt, 3, pshape, dev, &got)) {
                double pref[48];
                int64_t pi[3];
                for (int64_t k = 0; k < 48; k++) {
                    unravel(3, pshape, k, pi);
                    idx[0] = pi[1];
                    idx[1] = pi[2] % 4;
                    pref[k] = av.v[ravel(2, sa.shape, idx)];
                }
                conf_compare(&w, &got, pref, NULL);
                conf_array_free(&got);
            }
            ferry_tensor_release(p);
            ferry_tensor_release(a);
            conf_array_free(&av);
        }
        static const ferry_dtype lts[] = {FERRY_FLOAT32, FERRY_FLOAT64, FERRY_INT32, FERRY_FLOAT16};
        static const struct { double s, e; int64_t n; } ls[] = {
            {0, 1, 5}, {-1, 7, 4}, {3, 3, 1}, {0, 1, 0}, {10, -2.5, 9}};
        for (int di = 0; di < 4; di++) {
            for (size_t k = 0; k < sizeof ls / sizeof ls[0]; k++) {
                conf_where w = {"linspace", conf_dtype_name(lts[di]), "steps", dev};
                ferry_tensor *l = ferry_linspace(ls[k].s, ls[k].e, ls[k].n, lts[di], dev);
                conf_array got;
                if (!l) {
                    conf_fail_call(&w, "ferry_linspace");
                    continue;
                }
                if (conf_read(&w, l, lts[di], 1, &ls[k].n, dev, &got)) {
                    double ref[16];
                    double step = ls[k].n > 1 ? (ls[k].e - ls[k].s) / (double)(ls[k].n - 1) : 0;
                    for (int64_t i = 0; i < ls[k].n; i++) {
                        double v = i < ls[k].n / 2 ? ls[k].s + step * (double)i
                                                   : ls[k].e - step * (double)(ls[k].n - 1 - i);
                        /* Integers truncate as torch's cast does. */
                        ref[i] = conf_is_int(lts[di]) ? trunc(v) : v;
                    }
                    conf_compare(&w, &got, ref, NULL);
                    conf_array_free(&got);
                }
                ferry_tensor_release(l);
            }
        }
        conf_where w = {"linspace", "float32", "refusal", dev};
        ferry_tensor *l = ferry_linspace(0, 1, -1, FERRY_FLOAT32, dev);
        conf_expect_error(&w, "ferry_linspace", l == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "number of steps must be non-negative");
        w.op = "repeat";
        ferry_tensor *z = ferry_zeros(FERRY_FLOAT32, 2, SHAPE(2, 3), dev);
        l = z ? ferry_repeat(z, 1, SHAPE(2)) : NULL;
        conf_expect_error(&w, "ferry_repeat", l == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT,
                          "Number of dimensions of repeat dims can not be smaller than number of "
                          "dimensions of tensor");
        w.op = "roll";
        l = z ? ferry_roll(z, 1, SHAPE(1), 2, (int[]){0, 1}) : NULL;
        conf_expect_error(&w, "ferry_roll", l == NULL, FERRY_ERR_INVALID_ARGUMENT,
                          FERRY_ERR_INVALID_ARGUMENT, "shifts and dimensions must align. shifts: 1, dims:2");
        ferry_tensor_release(z);
    }
    conf_finish();
}

int conf_group_shape(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_cat_and_stack_match_index_arithmetic_on_every_dtype_and_device),
        cmocka_unit_test(test_shape_flip_matches_index_arithmetic_on_every_dtype_and_device),
        cmocka_unit_test(test_shape_split_family_views_match_on_every_device),
        cmocka_unit_test(test_shape_refuses_with_pytorch_messages_on_every_device),
        cmocka_unit_test(test_shape_roll_repeat_linspace_match_on_every_device),
    };
    return cmocka_run_group_tests_name("shape", tests, NULL, NULL);
}

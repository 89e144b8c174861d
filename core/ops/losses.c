/* torch.nn.functional's linear, mse_loss, nll_loss and cross_entropy, composed of ops
 * that run on every device (the class pick is a one-hot mask from comparing the targets
 * with an iota, so no gather is needed), with gradients from their pieces. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_internal.h"

static void release_scope(scope *s)
{
    for (int i = 0; i < s->n; i++)
        ferry_tensor_release(s->t[i]);
}

static bool reduction_ok(ferry_reduction r, const char *fn)
{
    if (r == FERRY_REDUCTION_NONE || r == FERRY_REDUCTION_MEAN || r == FERRY_REDUCTION_SUM)
        return true;
    ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: %d is not a valid value for reduction", fn, (int)r);
    return false;
}

FERRY_API ferry_tensor *ferry_linear(ferry_tensor *x, ferry_tensor *w, ferry_tensor *b)
{
    if (ferry__check_tensor(x, "linear") != FERRY_OK || ferry__check_tensor(w, "linear") != FERRY_OK)
        return NULL;
    if (b && ferry__check_tensor(b, "linear") != FERRY_OK)
        return NULL;
    if (w->ndim != 1 && w->ndim != 2) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "linear: weight must be 1-D or 2-D, got %d-D",
                     (int)w->ndim);
        return NULL;
    }
    ferry_tensor *wt = w->ndim == 2 ? ferry_transpose(w, 0, 1) : ferry_tensor_retain(w);
    ferry_tensor *y = wt ? ferry_matmul(x, wt) : NULL;
    ferry_tensor_release(wt);
    if (!y || !b)
        return y;
    ferry_tensor *r = ferry_add(y, b);
    ferry_tensor_release(y);
    return r;
}

static ferry_tensor *reduce_loss(ferry_tensor *l, ferry_reduction r)
{
    if (r == FERRY_REDUCTION_NONE)
        return ferry_tensor_retain(l);
    return r == FERRY_REDUCTION_SUM ? ferry_sum(l, 0, NULL, false) : ferry_mean(l, 0, NULL, false);
}

FERRY_API ferry_tensor *ferry_mse_loss(ferry_tensor *input, ferry_tensor *target,
                                       ferry_reduction reduction)
{
    if (!reduction_ok(reduction, "mse_loss"))
        return NULL;
    scope s = {0};
    ferry_tensor *d = STEP(&s, ferry_sub(input, target));
    ferry_tensor *d2 = STEP(&s, ferry_mul(d, d));
    ferry_tensor *r = s.failed ? NULL : reduce_loss(d2, reduction);
    release_scope(&s);
    return r;
}

/* The class dim of an input to nll_loss: 1, or 0 for a single sample (1-D input). */
static ferry_status check_nll(const char *fn, ferry_tensor *logp, ferry_tensor *target, int *cdim)
{
    ferry_status st = ferry__check_tensor(logp, fn);
    if (st == FERRY_OK)
        st = ferry__check_tensor(target, fn);
    if (st != FERRY_OK)
        return st;
    if (logp->ndim < 1)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s: input must have at least 1 dim", fn);
    if (target->dtype != FERRY_INT64)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "expected scalar type Long but found %s",
                            ferry__torch_type_name(target->dtype));
    *cdim = logp->ndim == 1 ? 0 : 1;
    /* target has input's shape without the class dim. */
    bool ok = target->ndim == logp->ndim - 1;
    for (int d = 0, k = 0; ok && d < logp->ndim; d++) {
        if (d == *cdim)
            continue;
        ok = target->shape[k++] == logp->shape[d];
    }
    if (!ok) {
        if (logp->ndim == 2 && target->ndim == 1)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "Expected input batch_size (%lld) to match target batch_size (%lld).",
                                (long long)logp->shape[0], (long long)target->shape[0]);
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "%s: target must have the input's shape without its class dim", fn);
    }
    return FERRY_OK;
}

/* One-hot of the targets along the class dim (bool, input's shape), the valid mask
 * (target != ignore_index), and PyTorch's refusal of a class out of range. */
static ferry_status pick_masks(scope *s, ferry_tensor *logp, ferry_tensor *target, int cdim,
                               int64_t ignore_index, ferry_tensor **onehot, ferry_tensor **valid)
{
    int64_t c = logp->shape[cdim];
    char dev[32];
    ferry_device_format(ferry_tensor_device(logp), dev, sizeof dev);
    *valid = STEP(s, ferry_ne_scalar_ex(target, (ferry_scalar){.kind = FERRY_SCALAR_INT,
                                                                .value.i = ignore_index}));
    ferry_tensor *lo = STEP(s, ferry_lt_scalar(target, 0.0));
    ferry_tensor *hi = STEP(s, ferry_ge_scalar_ex(target, (ferry_scalar){.kind = FERRY_SCALAR_INT,
                                                                         .value.i = c}));
    ferry_tensor *out = STEP(s, ferry_add(lo, hi));
    ferry_tensor *bad = STEP(s, ferry_mul(out, *valid));
    ferry_tensor *nbad = STEP(s, ferry_sum(bad, 0, NULL, false));
    int64_t count = 0;
    if (s->failed || ferry_tensor_copy_to_host(nbad, &count, sizeof count) != FERRY_OK)
        return ferry_last_status();
    if (count > 0) {
        /* The first offending target, for PyTorch's message: one host copy, errors only. */
        ferry_tensor *tc = STEP(s, ferry_tensor_contiguous(target));
        ferry_tensor *bc = STEP(s, ferry_tensor_contiguous(bad));
        int64_t n = ferry_tensor_numel(target), first = 0;
        int64_t *tv = malloc((size_t)n * sizeof *tv);
        uint8_t *bv = malloc((size_t)n);
        if (tv && bv && !s->failed &&
            ferry_tensor_copy_to_host(tc, tv, (size_t)n * sizeof *tv) == FERRY_OK &&
            ferry_tensor_copy_to_host(bc, bv, (size_t)n) == FERRY_OK)
            for (int64_t i = 0; i < n; i++)
                if (bv[i]) {
                    first = tv[i];
                    break;
                }
        free(tv);
        free(bv);
        return ferry__error(FERRY_ERR_INDEX, "Target %lld is out of bounds.", (long long)first);
    }
    int64_t ishape[FERRY_MAX_DIMS];
    for (int d = 0; d < logp->ndim; d++)
        ishape[d] = d == cdim ? c : 1;
    ferry_tensor *iota = STEP(s, ferry_arange(0, (double)c, 1, FERRY_INT64, dev));
    ferry_tensor *io = STEP(s, ferry_reshape(iota, logp->ndim, ishape));
    ferry_tensor *tk = STEP(s, ferry_unsqueeze(target, cdim));
    *onehot = STEP(s, ferry_eq(io, tk));
    return s->failed ? ferry_last_status() : FERRY_OK;
}

/* PyTorch's check of class weights: one per class, on the input's device. */
static ferry_status check_weight(const char *fn, ferry_tensor *logp, ferry_tensor *weight, int cdim)
{
    ferry_status st = ferry__check_tensor(weight, fn);
    if (st != FERRY_OK)
        return st;
    int64_t c = logp->shape[cdim];
    if (weight->ndim != 1 || weight->shape[0] != c) {
        char shape[256];
        ferry__shape_str(weight->ndim, weight->shape, shape, sizeof shape);
        /* torch writes the shape in brackets: [2] */
        shape[0] = '[';
        shape[strlen(shape) - 1] = ']';
        if (weight->ndim == 0)
            snprintf(shape, sizeof shape, "[]");
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "weight tensor should be defined either for all %lld classes or no "
                            "classes but got weight tensor of shape: %s",
                            (long long)c, shape);
    }
    return FERRY_OK;
}

static ferry_tensor *nll_core(const char *fn, ferry_tensor *logp, ferry_tensor *target,
                              ferry_tensor *weight, int64_t ignore_index, double smoothing,
                              ferry_reduction reduction)
{
    int cdim;
    if (!reduction_ok(reduction, fn) || check_nll(fn, logp, target, &cdim) != FERRY_OK)
        return NULL;
    if (weight && check_weight(fn, logp, weight, cdim) != FERRY_OK)
        return NULL;
    if (!(smoothing >= 0 && smoothing <= 1)) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                     "label_smoothing must be between 0.0 and 1.0. Got: %g", smoothing);
        return NULL;
    }
    scope s = {0};
    ferry_tensor *onehot = NULL, *valid = NULL;
    if (pick_masks(&s, logp, target, cdim, ignore_index, &onehot, &valid) != FERRY_OK) {
        release_scope(&s);
        return NULL;
    }
    /* With class weights w: each target's loss is scaled by w[target], and the mean
     * divides by the sum of those weights (over the targets not ignored), as PyTorch. */
    ferry_tensor *wc = NULL, *wlogp = logp, *scale = valid;
    if (weight) {
        int64_t wshape[FERRY_MAX_DIMS];
        for (int d = 0; d < logp->ndim; d++)
            wshape[d] = d == cdim ? logp->shape[cdim] : 1;
        wc = STEP(&s, ferry_reshape(weight, logp->ndim, wshape));
        ferry_tensor *wo = STEP(&s, ferry_mul(onehot, wc));
        ferry_tensor *wt = STEP(&s, ferry_sum(wo, 1, &cdim, false)); /* w[target] */
        scale = STEP(&s, ferry_mul(wt, valid));
        wlogp = STEP(&s, ferry_mul(logp, wc));
    }
    ferry_tensor *picked = STEP(&s, ferry_mul(logp, onehot));
    ferry_tensor *ps = STEP(&s, ferry_sum(picked, 1, &cdim, false));
    ferry_tensor *nll = STEP(&s, ferry_neg(ps));
    ferry_tensor *loss = STEP(&s, ferry_mul(nll, scale));
    if (smoothing > 0) {
        /* (1 - e) * nll + e * (the mean over classes of -w logp), as PyTorch. */
        double c = (double)logp->shape[cdim];
        ferry_tensor *all = STEP(&s, ferry_sum(wlogp, 1, &cdim, false));
        ferry_tensor *sm = STEP(&s, ferry_mul_scalar(all, -smoothing / c));
        ferry_tensor *smv = STEP(&s, ferry_mul(sm, valid));
        ferry_tensor *l1 = STEP(&s, ferry_mul_scalar(loss, 1.0 - smoothing));
        loss = STEP(&s, ferry_add(l1, smv));
    }
    ferry_tensor *r = NULL;
    if (!s.failed) {
        if (reduction == FERRY_REDUCTION_MEAN) {
            /* Over the targets not ignored: all ignored gives NaN, as PyTorch. */
            ferry_tensor *tot = STEP(&s, ferry_sum(loss, 0, NULL, false));
            ferry_tensor *cnt = STEP(&s, ferry_sum(scale, 0, NULL, false));
            r = s.failed ? NULL : ferry_div(tot, cnt);
        } else {
            r = reduce_loss(loss, reduction);
        }
    }
    release_scope(&s);
    return r;
}

FERRY_API ferry_tensor *ferry_nll_loss(ferry_tensor *input, ferry_tensor *target,
                                       int64_t ignore_index, ferry_reduction reduction)
{
    return nll_core("nll_loss", input, target, NULL, ignore_index, 0.0, reduction);
}

FERRY_API ferry_tensor *ferry_nll_loss_weighted(ferry_tensor *input, ferry_tensor *target,
                                                ferry_tensor *weight, int64_t ignore_index,
                                                ferry_reduction reduction)
{
    return nll_core("nll_loss", input, target, weight, ignore_index, 0.0, reduction);
}

FERRY_API ferry_tensor *ferry_cross_entropy_weighted(ferry_tensor *logits, ferry_tensor *target,
                                                     ferry_tensor *weight, int64_t ignore_index,
                                                     double label_smoothing,
                                                     ferry_reduction reduction)
{
    if (ferry__check_tensor(logits, "cross_entropy") != FERRY_OK)
        return NULL;
    if (logits->ndim < 1) {
        ferry__error(FERRY_ERR_INVALID_ARGUMENT, "cross_entropy: input must have at least 1 dim");
        return NULL;
    }
    ferry_tensor *logp = ferry_log_softmax(logits, logits->ndim == 1 ? 0 : 1);
    if (!logp)
        return NULL;
    ferry_tensor *r = nll_core("cross_entropy", logp, target, weight, ignore_index,
                               label_smoothing, reduction);
    ferry_tensor_release(logp);
    return r;
}

FERRY_API ferry_tensor *ferry_cross_entropy_ex(ferry_tensor *logits, ferry_tensor *target,
                                               int64_t ignore_index, double label_smoothing,
                                               ferry_reduction reduction)
{
    return ferry_cross_entropy_weighted(logits, target, NULL, ignore_index, label_smoothing,
                                        reduction);
}

FERRY_API ferry_tensor *ferry_cross_entropy(ferry_tensor *logits, ferry_tensor *target,
                                            ferry_reduction reduction)
{
    return ferry_cross_entropy_ex(logits, target, -100, 0.0, reduction);
}

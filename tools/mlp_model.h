/* The MLP that tools/train_mlp.c and tools/train_mlp_dist.c train: x -> tanh(x W1 + b1)
 * W2 + b2, with a softmax cross-entropy written out in ferry's ops. One copy, so the
 * data-parallel run is compared with the very model the single-process one trains. */
#ifndef FERRY_TOOLS_MLP_MODEL_H
#define FERRY_TOOLS_MLP_MODEL_H

#include <ferry/ferry.h>

/* Releases its arguments; for chains of temporaries. */
static inline ferry_tensor *take(ferry_tensor *r, ferry_tensor *a, ferry_tensor *b)
{
    ferry_tensor_release(a);
    ferry_tensor_release(b);
    return r;
}

static inline ferry_tensor *forward(ferry_tensor *const *p, ferry_tensor *x)
{
    ferry_tensor *h = ferry_matmul(x, p[0]);
    h = h ? take(ferry_add(h, p[1]), h, NULL) : NULL;
    h = h ? take(ferry_tanh(h), h, NULL) : NULL;
    ferry_tensor *z = h ? take(ferry_matmul(h, p[2]), h, NULL) : NULL;
    return z ? take(ferry_add(z, p[3]), z, NULL) : NULL;
}

/* mean(-sum(log_softmax(logits) * onehot, 1)), the max subtracted (and detached). */
static inline ferry_tensor *cross_entropy(ferry_tensor *logits, ferry_tensor *onehot)
{
    int d = 1;
    ferry_tensor *m = ferry_max(logits, 1, &d, true);
    ferry_tensor *md = m ? take(ferry_tensor_detach(m), m, NULL) : NULL;
    ferry_tensor *z = md ? take(ferry_sub(logits, md), md, NULL) : NULL;
    ferry_tensor *e = z ? ferry_exp(z) : NULL;
    ferry_tensor *s = e ? take(ferry_sum(e, 1, &d, true), e, NULL) : NULL;
    ferry_tensor *l = s ? take(ferry_log(s), s, NULL) : NULL;
    ferry_tensor *lp = l ? take(ferry_sub(z, l), z, l) : take(NULL, z, NULL);
    ferry_tensor *pick = lp ? take(ferry_mul(lp, onehot), lp, NULL) : NULL;
    ferry_tensor *row = pick ? take(ferry_sum(pick, 1, &d, false), pick, NULL) : NULL;
    ferry_tensor *mean = row ? take(ferry_mean(row, 0, NULL, false), row, NULL) : NULL;
    return mean ? take(ferry_neg(mean), mean, NULL) : NULL;
}

#endif /* FERRY_TOOLS_MLP_MODEL_H */

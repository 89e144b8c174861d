/* matmul: batching, folding and its backward formula. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_internal.h"

/* ---- matmul ---- */

/* Whether dims [0, nb) of o fold into one batch dim. */
static bool batch_foldable(const operand *o, int nb)
{
    for (int i = 0; i + 1 < nb; i++)
        if (o->strides[i] != o->strides[i + 1] * o->shape[i + 1])
            return false;
    return true;
}

/* o's geometry [batch..., r, c] becomes [B, r, c]. */
static void fold_batch(operand *o, int nb)
{
    int64_t b = 1;
    for (int i = 0; i < nb; i++)
        b *= o->shape[i];
    int64_t bstride = nb > 0 ? o->strides[nb - 1] : 0;
    int64_t r = o->shape[nb], c = o->shape[nb + 1];
    int64_t rs = o->strides[nb], cs = o->strides[nb + 1];
    o->ndim = 3;
    o->shape[0] = b;
    o->shape[1] = r;
    o->shape[2] = c;
    o->strides[0] = b > 1 ? bstride : 0;
    o->strides[1] = rs;
    o->strides[2] = cs;
}

/* Copies the elements o describes into a new contiguous tensor on `like`'s device and
 * points o at it (kept alive through *keep). */
static ferry_status materialize(operand *o, const ferry_tensor *like, ferry_dtype dtype,
                                ferry_tensor **keep)
{
    *keep = ferry__new_like(like, dtype, o->ndim, o->shape);
    ferry_tensor *view = *keep ? ferry__tensor_restride(o->t, o->ndim, o->shape, o->strides) : NULL;
    if (!view)
        return ferry_last_status();
    ferry_status st = ferry__copy_into(*keep, view);
    ferry_tensor_release(view);
    if (st == FERRY_OK)
        ferry__operand_of(o, *keep);
    return st;
}

static ferry_status matmul_forward(ferry_tensor *out, ferry_tensor *a, ferry_tensor *b,
                                   ferry_tensor **result)
{
    ferry_status st;
    if ((st = ferry__check_tensor(a, "matmul")) != FERRY_OK ||
        (st = ferry__check_tensor(b, "matmul")) != FERRY_OK ||
        (st = ferry__check_same_device(a, b)) != FERRY_OK)
        return st;
    if (a->ndim == 0 || b->ndim == 0)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "both arguments to matmul need to be at least 1D, but they are %dD "
                            "and %dD",
                            a->ndim, b->ndim);
    ferry_dtype ct = ferry__promote(a->dtype, b->dtype);
    if (ct == FERRY_BOOL)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "matmul: bool tensors are not supported (cast to an integer or "
                            "floating dtype first)");
    /* 1-D operands become [1, K] and [K, 1]; those dims are dropped from the result. */
    int64_t m = a->ndim == 1 ? 1 : a->shape[a->ndim - 2];
    int64_t k = a->shape[a->ndim - 1];
    int64_t k2 = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    int64_t n = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    if (k != k2) {
        char as[512], bs[512];
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "matmul: shape mismatch %s x %s: inner dimensions %lld and %lld "
                            "differ",
                            ferry__shape_str(a->ndim, a->shape, as, sizeof as),
                            ferry__shape_str(b->ndim, b->shape, bs, sizeof bs), (long long)k,
                            (long long)k2);
    }
    int nba = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0;
    int nb = nba > nbb ? nba : nbb;
    int64_t batch[FERRY_MAX_DIMS];
    for (int i = 0; i < nb; i++) {
        int ia = nba - nb + i, ib = nbb - nb + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char as[512], bs[512];
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "matmul: batch dimensions of %s and %s cannot be broadcast "
                                "(%lld vs %lld at batch dim %d)",
                                ferry__shape_str(a->ndim, a->shape, as, sizeof as),
                                ferry__shape_str(b->ndim, b->shape, bs, sizeof bs),
                                (long long)sa, (long long)sb, i);
        }
        batch[i] = sa == 1 ? sb : sa;
    }
    /* A backend may pack any operand densely (an expanded one included): refuse products
     * whose dense operands could not be addressed, rather than let a size wrap. */
    int64_t nbatch = 1, dense;
    bool too_big = false;
    for (int i = 0; i < nb; i++)
        too_big |= __builtin_mul_overflow(nbatch, batch[i], &nbatch);
    const int64_t pairs[3][2] = {{m, k}, {k, n}, {m, n}};
    for (int i = 0; i < 3 && !too_big && nbatch > 0; i++)
        too_big = __builtin_mul_overflow(nbatch, pairs[i][0], &dense) ||
                  __builtin_mul_overflow(dense, pairs[i][1], &dense) ||
                  __builtin_mul_overflow(dense, (int64_t)sizeof(double), &dense);
    if (too_big) {
        char as[512], bs[512];
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                            "matmul: %s x %s needs operands of more bytes than fit in memory",
                            ferry__shape_str(a->ndim, a->shape, as, sizeof as),
                            ferry__shape_str(b->ndim, b->shape, bs, sizeof bs));
    }
    int rndim = 0;
    int64_t rshape[FERRY_MAX_DIMS];
    for (int i = 0; i < nb; i++)
        rshape[rndim++] = batch[i];
    if (a->ndim > 1)
        rshape[rndim++] = m;
    if (b->ndim > 1)
        rshape[rndim++] = n;
    if (out && (st = ferry__check_out("matmul", out, a, rndim, rshape, ct)) != FERRY_OK)
        return st;

    ferry_tensor *ca = ferry__as_dtype(a, ct);
    ferry_tensor *cb = ca ? ferry__as_dtype(b, ct) : NULL;
    /* matmul reads every input element many times: out may not share memory at all. */
    bool direct = out && out->dtype == ct && !ferry__shares_memory(out, a) &&
                  !ferry__shares_memory(out, b);
    ferry_tensor *dst = !cb ? NULL : direct ? ferry_tensor_retain(out) : ferry__new_like(a, ct, rndim, rshape);
    if (!dst) {
        ferry_tensor_release(ca);
        ferry_tensor_release(cb);
        return ferry_last_status();
    }
    st = FERRY_OK;
    ferry_tensor *xa = NULL, *xb = NULL, *xo = NULL;
    if (ferry__numel(rndim, rshape) > 0) {
        if (k == 0) {
            st = ferry__fill(dst, 0.0);
        } else {
            /* Full geometries [batch..., rows, cols]; missing dims get stride 0. */
            int64_t full_a[FERRY_MAX_DIMS], full_b[FERRY_MAX_DIMS], full_o[FERRY_MAX_DIMS];
            memcpy(full_a, batch, (size_t)nb * sizeof batch[0]);
            memcpy(full_b, batch, (size_t)nb * sizeof batch[0]);
            memcpy(full_o, batch, (size_t)nb * sizeof batch[0]);
            full_a[nb] = m, full_a[nb + 1] = k;
            full_b[nb] = k, full_b[nb + 1] = n;
            full_o[nb] = m, full_o[nb + 1] = n;
            operand oa, ob, oo;
            oa.t = ca;
            oa.ndim = nb + 2;
            memcpy(oa.shape, full_a, (size_t)(nb + 2) * sizeof full_a[0]);
            for (int i = 0; i < nb; i++) {
                int ia = nba - nb + i;
                oa.strides[i] = (ia >= 0 && ca->shape[ia] == batch[i]) ? ca->strides[ia] : 0;
            }
            oa.strides[nb] = ca->ndim == 1 ? 0 : ca->strides[ca->ndim - 2];
            oa.strides[nb + 1] = ca->strides[ca->ndim - 1];
            ob.t = cb;
            ob.ndim = nb + 2;
            memcpy(ob.shape, full_b, (size_t)(nb + 2) * sizeof full_b[0]);
            for (int i = 0; i < nb; i++) {
                int ib = nbb - nb + i;
                ob.strides[i] = (ib >= 0 && cb->shape[ib] == batch[i]) ? cb->strides[ib] : 0;
            }
            ob.strides[nb] = cb->ndim == 1 ? cb->strides[0] : cb->strides[cb->ndim - 2];
            ob.strides[nb + 1] = cb->ndim == 1 ? 0 : cb->strides[cb->ndim - 1];
            oo.t = dst;
            oo.ndim = nb + 2;
            memcpy(oo.shape, full_o, (size_t)(nb + 2) * sizeof full_o[0]);
            for (int i = 0; i < nb; i++)
                oo.strides[i] = dst->strides[i];
            oo.strides[nb] = a->ndim > 1 ? dst->strides[nb] : 0;
            oo.strides[nb + 1] = b->ndim > 1 ? dst->strides[rndim - 1] : 0;

            /* Batch dims that do not fold into one stride (a broadcast next to a real
             * dim, say) are materialised contiguously, once. */
            if (!batch_foldable(&oa, nb))
                st = materialize(&oa, a, ct, &xa);
            if (st == FERRY_OK && !batch_foldable(&ob, nb))
                st = materialize(&ob, b, ct, &xb);
            if (st == FERRY_OK && !batch_foldable(&oo, nb)) {
                xo = ferry__new_like(a, ct, nb + 2, full_o);
                if (xo)
                    ferry__operand_of(&oo, xo);
                else
                    st = ferry_last_status();
            }
            if (st == FERRY_OK) {
                fold_batch(&oa, nb);
                fold_batch(&ob, nb);
                fold_batch(&oo, nb);
                st = ferry__launch(K_MATMUL, 0, &oo, &oa, &ob);
            }
            if (st == FERRY_OK && xo) {
                ferry_tensor *back = ferry_reshape(xo, rndim, rshape);
                st = back ? ferry__copy_into(dst, back) : ferry_last_status();
                ferry_tensor_release(back);
            }
        }
    }
    ferry_tensor_release(xa);
    ferry_tensor_release(xb);
    ferry_tensor_release(xo);
    ferry_tensor_release(ca);
    ferry_tensor_release(cb);
    return ferry__deliver(out, dst, st, result);
}

/* ---- backward of matmul ---- */

/* grad_a = g @ b^T and grad_b = a^T @ g on operands promoted to >= 2-D (1-D ones as
 * [1, K] and [K, 1], as the forward does), summed over broadcast batch dims. */
static ferry_status matmul_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    scope s = {0};
    bool na = ferry__node_needs(n, 0), nb = ferry__node_needs(n, 1);
    ferry_tensor *a = ferry__saved_in(&s, n, 0), *b = ferry__saved_in(&s, n, 1);
    int and_ = ferry__node_input_ndim(n, 0), bnd = ferry__node_input_ndim(n, 1);
    if (and_ == 1 && bnd == 1) {
        if (na)
            grads[0] = keep(STEP(&s, ferry_mul(g, b)));
        if (nb)
            grads[1] = keep(STEP(&s, ferry_mul(g, a)));
        return ferry__scope_end(&s, grads, 2);
    }
    ferry_tensor *G = g;
    if (and_ == 1)
        G = STEP(&s, ferry_unsqueeze(G, -2));
    if (bnd == 1)
        G = STEP(&s, ferry_unsqueeze(G, -1));
    if (na) {
        ferry_tensor *B = bnd == 1 ? STEP(&s, ferry_unsqueeze(b, -1)) : b;
        ferry_tensor *bt = STEP(&s, ferry_transpose(B, -1, -2));
        ferry_tensor *ga = STEP(&s, ferry_matmul(G, bt));
        int64_t ashape[FERRY_MAX_DIMS];
        int A = and_ == 1 ? 2 : and_;
        const int64_t *as = ferry__node_input_shape(n, 0);
        if (and_ == 1)
            ashape[0] = 1, ashape[1] = as[0];
        else
            memcpy(ashape, as, (size_t)and_ * sizeof ashape[0]);
        ferry_tensor *sa = ga ? STEP(&s, ferry__sum_to(ga, A, ashape)) : NULL;
        grads[0] = keep(STEP(&s, ferry_reshape(sa, and_, as)));
    }
    if (nb) {
        ferry_tensor *Am = and_ == 1 ? STEP(&s, ferry_unsqueeze(a, 0)) : a;
        ferry_tensor *at = STEP(&s, ferry_transpose(Am, -1, -2));
        ferry_tensor *gb = STEP(&s, ferry_matmul(at, G));
        int64_t bshape[FERRY_MAX_DIMS];
        int B = bnd == 1 ? 2 : bnd;
        const int64_t *bs = ferry__node_input_shape(n, 1);
        if (bnd == 1)
            bshape[0] = bs[0], bshape[1] = 1;
        else
            memcpy(bshape, bs, (size_t)bnd * sizeof bshape[0]);
        ferry_tensor *sb = gb ? STEP(&s, ferry__sum_to(gb, B, bshape)) : NULL;
        grads[1] = keep(STEP(&s, ferry_reshape(sb, bnd, bs)));
    }
    return ferry__scope_end(&s, grads, 2);
}

static ferry_status matmul(ferry_tensor *out, ferry_tensor *a, ferry_tensor *b,
                           ferry_tensor **result)
{
    bool want = ferry__grad_wanted(a, b);
    ferry_status st;
    if (out) {
        if ((st = ferry__inplace_check("matmul", out, want)) != FERRY_OK)
            return st;
        st = matmul_forward(out, a, b, result);
        if (st == FERRY_OK)
            ferry__version_bump(out);
        return st;
    }
    if (!want)
        return matmul_forward(out, a, b, result);
    bool prev = pause_grad();
    st = matmul_forward(out, a, b, result);
    resume_grad(prev);
    if (st != FERRY_OK || !ferry_dtype_is_floating((*result)->dtype))
        return st;
    const char *name = a->ndim == 1 && b->ndim == 1   ? "DotBackward0"
                       : a->ndim == 2 && b->ndim == 1 ? "MvBackward0"
                       : a->ndim <= 2 && b->ndim <= 2 ? "MmBackward0"
                                                      : "BmmBackward0";
    ferry_tensor *inputs[2] = {a, b};
    ferry_node *n = ferry__node_create(name, matmul_backward, 2, inputs);
    if (!n)
        return ferry__attach_or_fail(NULL, ferry_last_status(), result);
    st = FERRY_OK;
    if (b->requires_grad)
        st = ferry__node_save(n, 0, a, false);
    if (st == FERRY_OK && a->requires_grad)
        st = ferry__node_save(n, 1, b, false);
    return ferry__attach_or_fail(n, st, result);
}

FERRY_API ferry_tensor *ferry_matmul(ferry_tensor *a, ferry_tensor *b)
{
    ferry_tensor *r = NULL;
    matmul(NULL, a, b, &r);
    return r;
}

FERRY_API ferry_status ferry_matmul_out(ferry_tensor *out, ferry_tensor *a, ferry_tensor *b)
{
    ferry_status st = ferry__check_tensor(out, "matmul_out");
    return st != FERRY_OK ? st : matmul(out, a, b, NULL);
}

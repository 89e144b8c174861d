/* Reduction kernels shared by the OpenCL and CUDA backends. One pass turns every
 * (output, chunk) pair into a partial; the host repeats passes over the partials until
 * one remains per output, so a full reduction is parallel and float sums are blocked
 * and pairwise (16M float32 ones sum to exactly 16777216). A chunk is one thread's run
 * (CPUs: its own cache lines, vector loads) or, for sums over one dim on a GPU, a
 * work-group's (ferry_sum_wg_*: neighbouring threads read neighbouring elements and meet
 * in a tree in local memory); a reduction over the outer dim numbers threads output
 * fastest, so neighbours read neighbouring columns. fk_plan.c picks per pass. */
#ifndef FERRY_KERNELS_H
#include "ferry_kernels.h"
#endif

/* Float sums: blocks of FK_SUM_BLOCK elements are added in order, and block sums are
 * combined pairwise through a binary-counter stack, as NumPy's pairwise sum does. */
#define FK_SUM_BLOCK 8
#define FK_PAIRWISE_DEPTH 24

/* Offsets of output o (row-major over the kept dims) in the input and the output. */
FK_FUNC void fk_kept_offsets(const fk_rgeom *g, fk_i64 o, fk_i64 *in_off, fk_i64 *out_off)
{
    fk_i64 a = 0, b = 0;
    for (int d = g->nkept - 1; d >= 0; d--) {
        fk_i64 q = o / g->kshape[d];
        fk_i64 c = o - q * g->kshape[d];
        a += c * g->kstride_in[d];
        b += c * g->kstride_out[d];
        o = q;
    }
    *in_off = a;
    *out_off = b;
}

/* Offset of reduced element r (row-major over rshape); idx receives its position. */
FK_FUNC fk_i64 fk_red_start(const fk_rgeom *g, fk_i64 r, fk_i64 *idx)
{
    fk_i64 off = 0;
    for (int d = g->nreduced - 1; d >= 0; d--) {
        fk_i64 q = r / g->rshape[d];
        idx[d] = r - q * g->rshape[d];
        off += idx[d] * g->rstride[d];
        r = q;
    }
    return off;
}

/* Advances idx to the next reduced element like an odometer; returns the offset change. */
FK_FUNC fk_i64 fk_red_step(const fk_rgeom *g, fk_i64 *idx)
{
    fk_i64 delta = 0;
    for (int d = g->nreduced - 1; d >= 0; d--) {
        delta += g->rstride[d];
        if (++idx[d] < g->rshape[d])
            return delta;
        delta -= g->rstride[d] * g->rshape[d];
        idx[d] = 0;
    }
    return delta;
}

/* Where thread w works: its output's kept offsets, its first reduced element and the
 * number of elements in its chunk. Declares o, part, ioff, ooff, idx, off, cnt and rs,
 * the stride of a reduction over one dim (the common case, walked without fk_red_step). */
#define FK_RED_SETUP(g, w)                                                                \
    fk_i64 o, part, ioff, ooff;                                                           \
    if ((g).flags & FK_RED_OUT_FAST) {                                                    \
        part = (w) / (g).nout;                                                            \
        o = (w) - part * (g).nout;                                                        \
    } else {                                                                              \
        o = (w) / (g).nparts;                                                             \
        part = (w) - o * (g).nparts;                                                      \
    }                                                                                     \
    fk_kept_offsets(&(g), o, &ioff, &ooff);                                               \
    fk_i64 idx[FK_MAX_DIMS];                                                              \
    fk_i64 r0 = part * (g).chunk;                                                         \
    fk_i64 cnt = (g).nred - r0 < (g).chunk ? (g).nred - r0 : (g).chunk;                   \
    fk_i64 off = fk_red_start(&(g), r0, idx);                                             \
    fk_i64 rs = (g).nreduced == 1 ? (g).rstride[0] : 0;                                   \
    ooff += part * (g).part_stride

/* The offset change to the next reduced element. */
#define FK_RED_NEXT(g, idx, rs) ((g).nreduced <= 1 ? (rs) : fk_red_step(&(g), idx))

/* A final pass of a float accumulator stores float16, bfloat16 or the accumulator. */
#define FK_STORE_FINAL(acc_t, out, i, v, kind)                                            \
    do {                                                                                  \
        if ((kind) == FK_OUT_F16)                                                         \
            FK_HALF_STORE((FK_GLOBAL fk_half *)(out), i, (float)(v));                     \
        else if ((kind) == FK_OUT_BF16)                                                   \
            ((FK_GLOBAL fk_u16 *)(out))[i] = fk_f32_to_bf16((float)(v));                  \
        else                                                                              \
            ((FK_GLOBAL acc_t *)(out))[i] = (v);                                          \
    } while (0)

/* ---- sum (and mean: a sum divided on its final pass) ------------------------------- */

/* Stores a float sum: the mean's division and the 16-bit rounding on a final pass. */
#define FK_SUM_STORE(acc_t, g, at, total)                                                 \
    do {                                                                                  \
        acc_t v_ = (total);                                                               \
        if ((g).nparts == 1) {                                                            \
            if ((g).mean_count > 0)                                                       \
                v_ = v_ / (acc_t)(g).mean_count;                                          \
            FK_STORE_FINAL(acc_t, out, at, v_, (g).out_kind);                             \
        } else {                                                                          \
            ((FK_GLOBAL acc_t *)out)[at] = v_;                                            \
        }                                                                                 \
    } while (0)

/* Pushes block sum s (an lvalue, consumed) as block number ++nblk: equal-sized neighbours
 * are added as they complete, a binary counter. */
#define FK_PAIRWISE_PUSH(stack, top, nblk, s)                                             \
    do {                                                                                  \
        for (fk_i64 c_ = ++(nblk); (c_ & 1) == 0; c_ >>= 1)                               \
            (s) = stack[--(top)] + (s);                                                   \
        stack[(top)++] = (s);                                                             \
    } while (0)

/* A dense or evenly strided run is added FK_SUM_WIDE elements at a time, in eight
 * accumulators of sixteen elements each (added in order) combined as a tree, as NumPy's
 * pairwise sum does its blocks of 128: the eight loads of a step are neighbours, which a
 * CPU compiler turns into one vector load. Each block sum is one entry of the pairwise
 * stack, so the error bound stays that of a pairwise sum. */
#define FK_SUM_WIDE 128
#define FK_SUM_WIDE_BLOCK(sfx, acc_t, p, STEP, s)                                         \
    do {                                                                                  \
        acc_t a0 = (acc_t)0, a1 = (acc_t)0, a2 = (acc_t)0, a3 = (acc_t)0;                 \
        acc_t a4 = (acc_t)0, a5 = (acc_t)0, a6 = (acc_t)0, a7 = (acc_t)0;                 \
        for (fk_i64 k_ = 0; k_ < FK_SUM_WIDE; k_ += 8) {                                  \
            a0 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 0) * (STEP));                      \
            a1 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 1) * (STEP));                      \
            a2 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 2) * (STEP));                      \
            a3 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 3) * (STEP));                      \
            a4 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 4) * (STEP));                      \
            a5 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 5) * (STEP));                      \
            a6 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 6) * (STEP));                      \
            a7 += (acc_t)FK_LOAD_##sfx(in, (p) + (k_ + 7) * (STEP));                      \
        }                                                                                 \
        s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));                            \
    } while (0)

/* ferry_sum_wg_*: lane t of L puts its sum v in sh[t], the lanes meet in a tree in local
 * memory, and lane 0 runs the store (the last argument, which reads sh[0]); the closing
 * barrier lets the group's next chunk reuse sh. */
#define FK_WG_TREE(sh, t, L, v, ...)                                                      \
    sh[t] = (v);                                                                          \
    FK_BARRIER();                                                                         \
    for (fk_i64 h_ = (L) / 2; h_ > 0; h_ >>= 1) {                                         \
        if ((t) < h_)                                                                     \
            sh[t] = sh[t] + sh[(t) + h_];                                                 \
        FK_BARRIER();                                                                     \
    }                                                                                     \
    if ((t) == 0) {                                                                       \
        __VA_ARGS__;                                                                      \
    }                                                                                     \
    FK_BARRIER()

/* bool and integers: int64, wrapping; the order of additions does not matter. */
#define FK_DEFINE_SUM_INT(sfx, st, vt)                                                    \
    FK_KERNEL ferry_sum_##sfx(FK_GLOBAL const st *in, FK_GLOBAL fk_u8 *out, fk_rgeom g)   \
    {                                                                                     \
        FK_FOR_EACH(w, g.nout * g.nparts)                                                 \
        {                                                                                 \
            FK_RED_SETUP(g, w);                                                           \
            off += g.in_offset + ioff;                                                    \
            fk_u64 acc = 0;                                                               \
            if (g.nreduced > 1) {                                                         \
                for (fk_i64 j = 0; j < cnt; j++) {                                        \
                    acc += (fk_u64)(fk_i64)FK_LOAD_##sfx(in, off);                        \
                    off += fk_red_step(&g, idx);                                          \
                }                                                                         \
            } else if (rs == 1) {                                                         \
                for (fk_i64 j = 0; j < cnt; j++)                                          \
                    acc += (fk_u64)(fk_i64)FK_LOAD_##sfx(in, off + j);                    \
            } else {                                                                      \
                for (fk_i64 j = 0; j < cnt; j++)                                          \
                    acc += (fk_u64)(fk_i64)FK_LOAD_##sfx(in, off + j * rs);               \
            }                                                                             \
            ((FK_GLOBAL fk_i64 *)out)[g.out_offset + ooff] = (fk_i64)acc;                 \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_sum_wg_##sfx(FK_GLOBAL const st *in, FK_GLOBAL fk_u8 *out, fk_rgeom g) \
    {                                                                                     \
        FK_SHARED_ARRAY(fk_u64, sh, FK_WG_MAX);                                           \
        fk_i64 t = FK_LOCAL_ID, L = g.lanes;                                              \
        for (fk_i64 w = FK_GROUP_ID; w < g.nout * g.nparts; w += FK_NUM_GROUPS) {         \
            FK_RED_SETUP(g, w);                                                           \
            off += g.in_offset + ioff;                                                    \
            fk_u64 acc = 0;                                                               \
            for (fk_i64 j = t; j < cnt; j += L)                                           \
                acc += (fk_u64)(fk_i64)FK_LOAD_##sfx(in, off + j * rs);                   \
            FK_WG_TREE(sh, t, L, acc,                                                     \
                       ((FK_GLOBAL fk_i64 *)out)[g.out_offset + ooff] = (fk_i64)sh[0]);   \
        }                                                                                 \
    }

/* Float sums: a thread's run is cut into blocks added in order (FK_SUM_WIDE at a time
 * where the run is one dim, FK_SUM_BLOCK otherwise) and the block sums are combined
 * pairwise through the stack. */
#define FK_DEFINE_SUM_FLOAT(sfx, st, vt, acc_t)                                           \
    FK_KERNEL ferry_sum_##sfx(FK_GLOBAL const st *in, FK_GLOBAL fk_u8 *out, fk_rgeom g)   \
    {                                                                                     \
        FK_FOR_EACH(w, g.nout * g.nparts)                                                 \
        {                                                                                 \
            FK_RED_SETUP(g, w);                                                           \
            off += g.in_offset + ioff;                                                    \
            acc_t stack[FK_PAIRWISE_DEPTH];                                               \
            int top = 0, inblk = 0;                                                       \
            fk_i64 nblk = 0, j = 0;                                                       \
            acc_t blk = (acc_t)0;                                                         \
            if (g.nreduced <= 1 && rs == 1) {                                             \
                for (; j + FK_SUM_WIDE <= cnt; j += FK_SUM_WIDE, off += FK_SUM_WIDE) {    \
                    acc_t s;                                                              \
                    FK_SUM_WIDE_BLOCK(sfx, acc_t, off, 1, s);                             \
                    FK_PAIRWISE_PUSH(stack, top, nblk, s);                                \
                }                                                                         \
            } else if (g.nreduced <= 1) {                                                 \
                for (; j + FK_SUM_WIDE <= cnt; j += FK_SUM_WIDE, off += FK_SUM_WIDE * rs) { \
                    acc_t s;                                                              \
                    FK_SUM_WIDE_BLOCK(sfx, acc_t, off, rs, s);                            \
                    FK_PAIRWISE_PUSH(stack, top, nblk, s);                                \
                }                                                                         \
            }                                                                             \
            for (; j < cnt; j++) {                                                        \
                blk += (acc_t)FK_LOAD_##sfx(in, off);                                     \
                off += FK_RED_NEXT(g, idx, rs);                                           \
                if (++inblk == FK_SUM_BLOCK) {                                            \
                    FK_PAIRWISE_PUSH(stack, top, nblk, blk);                              \
                    blk = (acc_t)0;                                                       \
                    inblk = 0;                                                            \
                }                                                                         \
            }                                                                             \
            acc_t total = blk;                                                            \
            while (top > 0)                                                               \
                total = stack[--top] + total;                                             \
            FK_SUM_STORE(acc_t, g, g.out_offset + ooff, total);                           \
        }                                                                                 \
    }                                                                                     \
    /* A work-group per (output, chunk), for GPUs: lane t takes elements t, t + L, ...    \
     * (neighbouring lanes read neighbouring elements), adds them in blocks through its   \
     * pairwise stack, and the lanes' sums meet in a tree in local memory. The planner    \
     * sends only reductions over one dim here. */                                        \
    FK_KERNEL ferry_sum_wg_##sfx(FK_GLOBAL const st *in, FK_GLOBAL fk_u8 *out, fk_rgeom g) \
    {                                                                                     \
        FK_SHARED_ARRAY(acc_t, sh, FK_WG_MAX);                                            \
        fk_i64 t = FK_LOCAL_ID, L = g.lanes;                                              \
        for (fk_i64 w = FK_GROUP_ID; w < g.nout * g.nparts; w += FK_NUM_GROUPS) {         \
            FK_RED_SETUP(g, w);                                                           \
            off += g.in_offset + ioff;                                                    \
            acc_t stack[FK_PAIRWISE_DEPTH];                                               \
            int top = 0, inblk = 0;                                                       \
            fk_i64 nblk = 0;                                                              \
            acc_t blk = (acc_t)0;                                                         \
            for (fk_i64 j = t; j < cnt; j += L) {                                         \
                blk += (acc_t)FK_LOAD_##sfx(in, off + j * rs);                            \
                if (++inblk == FK_SUM_BLOCK) {                                            \
                    FK_PAIRWISE_PUSH(stack, top, nblk, blk);                              \
                    blk = (acc_t)0;                                                       \
                    inblk = 0;                                                            \
                }                                                                         \
            }                                                                             \
            acc_t total = blk;                                                            \
            while (top > 0)                                                               \
                total = stack[--top] + total;                                             \
            FK_WG_TREE(sh, t, L, total, FK_SUM_STORE(acc_t, g, g.out_offset + ooff, sh[0])); \
        }                                                                                 \
    }

/* Depth of ferry_sum_cols_*'s pairwise stacks: FK_RED_COLS_MAX_CHUNK / FK_SUM_BLOCK
 * blocks need log2(128) + 1 entries. */
#define FK_COLS_DEPTH 8

/* Adds row `off` of nv (FK_RED_COLS_V, or fewer at the right edge) outputs into blk. */
#define FK_COLS_ADD(sfx, acc_t, blk, off, nv)                                             \
    for (int k_ = 0; k_ < (nv); k_++)                                                     \
        blk[k_] += (acc_t)FK_LOAD_##sfx(in, (off) + k_)

/* Column sums on CPUs (FK_RED_COLS): each of a thread's FK_RED_COLS_V outputs is summed
 * as ferry_sum_* sums one, in blocks of FK_SUM_BLOCK combined pairwise, the outputs side
 * by side so that every step is one run of neighbouring elements. */
#define FK_DEFINE_SUM_COLS(sfx, st, acc_t)                                                \
    FK_KERNEL ferry_sum_cols_##sfx(FK_GLOBAL const st *in, FK_GLOBAL fk_u8 *out,          \
                                   fk_rgeom g)                                            \
    {                                                                                     \
        fk_i64 ng = (g.nout + FK_RED_COLS_V - 1) / FK_RED_COLS_V;                         \
        FK_FOR_EACH(w, ng * g.nparts)                                                     \
        {                                                                                 \
            fk_i64 part = w / ng, o0 = (w - part * ng) * FK_RED_COLS_V;                   \
            int nv = g.nout - o0 < FK_RED_COLS_V ? (int)(g.nout - o0) : FK_RED_COLS_V;    \
            fk_i64 r0 = part * g.chunk;                                                   \
            fk_i64 cnt = g.nred - r0 < g.chunk ? g.nred - r0 : g.chunk;                   \
            fk_i64 rs = g.rstride[0];                                                     \
            fk_i64 off = g.in_offset + o0 * g.kstride_in[0] + r0 * rs;                    \
            acc_t stack[FK_COLS_DEPTH][FK_RED_COLS_V], blk[FK_RED_COLS_V];                \
            for (int k = 0; k < FK_RED_COLS_V; k++)                                       \
                blk[k] = (acc_t)0;                                                        \
            int top = 0, inblk = 0;                                                       \
            fk_i64 nblk = 0;                                                              \
            for (fk_i64 j = 0; j < cnt; j++, off += rs) {                                 \
                if (nv == FK_RED_COLS_V)                                                  \
                    FK_COLS_ADD(sfx, acc_t, blk, off, FK_RED_COLS_V);                     \
                else                                                                      \
                    FK_COLS_ADD(sfx, acc_t, blk, off, nv);                                \
                if (++inblk < FK_SUM_BLOCK)                                               \
                    continue;                                                             \
                for (fk_i64 c_ = ++nblk; (c_ & 1) == 0; c_ >>= 1) {                       \
                    --top;                                                                \
                    for (int k = 0; k < FK_RED_COLS_V; k++)                               \
                        blk[k] = stack[top][k] + blk[k];                                  \
                }                                                                         \
                for (int k = 0; k < FK_RED_COLS_V; k++) {                                 \
                    stack[top][k] = blk[k];                                               \
                    blk[k] = (acc_t)0;                                                    \
                }                                                                         \
                top++;                                                                    \
                inblk = 0;                                                                \
            }                                                                             \
            for (int k = 0; k < nv; k++) {                                                \
                acc_t total = blk[k];                                                     \
                for (int t = top; t > 0;)                                                 \
                    total = stack[--t][k] + total;                                        \
                FK_SUM_STORE(acc_t, g,                                                    \
                             g.out_offset + (o0 + k) * g.kstride_out[0] + part * g.part_stride, \
                             total);                                                      \
            }                                                                             \
        }                                                                                 \
    }

#define FK_DEFINE_SUM_INT_K(sfx, st, vt) FK_DEFINE_SUM_INT(sfx, st, vt)
#define FK_DEFINE_SUM_F32_K(sfx, st, vt)                                                  \
    FK_DEFINE_SUM_FLOAT(sfx, st, vt, float) FK_DEFINE_SUM_COLS(sfx, st, float)
#define FK_DEFINE_SUM_F64_K(sfx, st, vt)                                                  \
    FK_DEFINE_SUM_FLOAT(sfx, st, vt, double) FK_DEFINE_SUM_COLS(sfx, st, double)

/* ---- max and min: NaN propagates -------------------------------------------------- */

#define FK_DEFINE_MAXMIN(sfx, st, vt)                                                     \
    FK_KERNEL ferry_maxmin_##sfx(FK_GLOBAL const st *in, FK_GLOBAL fk_u8 *out, fk_rgeom g) \
    {                                                                                     \
        FK_FOR_EACH(w, g.nout * g.nparts)                                                 \
        {                                                                                 \
            FK_RED_SETUP(g, w);                                                           \
            off += g.in_offset + ioff;                                                    \
            vt acc = FK_LOAD_##sfx(in, off);                                              \
            bool is_max = g.op == FK_RED_MAX;                                             \
            for (fk_i64 j = 1; j < cnt; j++) {                                            \
                off += FK_RED_NEXT(g, idx, rs);                                           \
                vt x = FK_LOAD_##sfx(in, off);                                            \
                if (acc == acc && (x != x || (is_max ? x > acc : x < acc)))               \
                    acc = x;                                                              \
            }                                                                             \
            fk_i64 at = g.out_offset + ooff;                                              \
            if (g.nparts == 1)                                                            \
                FK_STORE_FINAL(vt, out, at, acc, g.out_kind);                             \
            else                                                                          \
                ((FK_GLOBAL vt *)out)[at] = acc;                                          \
        }                                                                                 \
    }

/* ---- argmax: the first maximum; NaN counts as maximal ------------------------------
 * Chunks are combined in order and a later candidate wins only when strictly greater,
 * so the first occurrence survives every pass. A first pass reads the tensor, later
 * passes (argmax_part) read the values and indices of the previous one. */
#define FK_ARGMAX_BETTER(best, x) ((best) == (best) && ((x) != (x) || (x) > (best)))

#define FK_DEFINE_ARGMAX(sfx, st, vt)                                                     \
    FK_KERNEL ferry_argmax_##sfx(FK_GLOBAL const st *in, FK_GLOBAL vt *vals,              \
                                 FK_GLOBAL fk_i64 *idxs, fk_rgeom g)                      \
    {                                                                                     \
        FK_FOR_EACH(w, g.nout * g.nparts)                                                 \
        {                                                                                 \
            FK_RED_SETUP(g, w);                                                           \
            off += g.in_offset + ioff;                                                    \
            vt best = FK_LOAD_##sfx(in, off);                                             \
            fk_i64 bi = r0;                                                               \
            for (fk_i64 j = 1; j < cnt; j++) {                                            \
                off += FK_RED_NEXT(g, idx, rs);                                           \
                vt x = FK_LOAD_##sfx(in, off);                                            \
                if (FK_ARGMAX_BETTER(best, x)) {                                          \
                    best = x;                                                             \
                    bi = r0 + j;                                                          \
                }                                                                         \
            }                                                                             \
            if (g.nparts > 1)                                                             \
                vals[g.out_offset + ooff] = best;                                         \
            idxs[g.idx_out_offset + ooff] = bi;                                           \
        }                                                                                 \
    }                                                                                     \
    FK_KERNEL ferry_argmax_part_##sfx(FK_GLOBAL const vt *in_vals,                        \
                                      FK_GLOBAL const fk_i64 *in_idxs, FK_GLOBAL vt *vals, \
                                      FK_GLOBAL fk_i64 *idxs, fk_rgeom g)                 \
    {                                                                                     \
        FK_FOR_EACH(w, g.nout * g.nparts)                                                 \
        {                                                                                 \
            FK_RED_SETUP(g, w);                                                           \
            off += ioff;                                                                  \
            vt best = in_vals[g.in_offset + off];                                         \
            fk_i64 bi = in_idxs[g.idx_in_offset + off];                                   \
            for (fk_i64 j = 1; j < cnt; j++) {                                            \
                off += FK_RED_NEXT(g, idx, rs);                                           \
                vt x = in_vals[g.in_offset + off];                                        \
                if (FK_ARGMAX_BETTER(best, x)) {                                          \
                    best = x;                                                             \
                    bi = in_idxs[g.idx_in_offset + off];                                  \
                }                                                                         \
            }                                                                             \
            if (g.nparts > 1)                                                             \
                vals[g.out_offset + ooff] = best;                                         \
            idxs[g.idx_out_offset + ooff] = bi;                                           \
        }                                                                                 \
    }

#define FK_DEFINE_REDUCE(sfx, st, vt, wt, kind)                                           \
    FK_CAT(FK_CAT(FK_DEFINE_SUM_, kind), _K)(sfx, st, vt)                                 \
    FK_DEFINE_MAXMIN(sfx, st, vt)                                                         \
    FK_DEFINE_ARGMAX(sfx, st, vt)
#define FK_SELECT_REDUCE(sfx, st, vt, wt, kind)                                           \
    FK_SELECTED(FK_DEFINE_REDUCE, sfx, st, vt, wt, kind)
#if FK_FAMILY_REDUCE
FK_DTYPES(FK_SELECT_REDUCE)
#endif

/* Sorting kernels of the named ops "ferry.sort" and "ferry.sort_scatter"
 * (ferry/ops/sort.h), shared by OpenCL and CUDA.
 *
 * Rows are sorted by a bitonic network in its "flip" form: stage kk first compares
 * element o of each block of kk with element kk - 1 - o, then half-cleans with distances
 * kk/4 .. 1, all ascending. Positions at or past the row's length act as the largest
 * elements and never move, so no padding is stored and comparisons that touch them are
 * skipped (a row just above a power of two costs little more than one just below).
 * Keys are order-preserving unsigned integers built from the element's bits (floats:
 * sign folded into order, -0.0 onto +0.0, every NaN onto one key above +inf; descending
 * complements the key). Comparing (key, index) makes the order PyTorch's stable one; when
 * key and index fit 64 bits together they are packed into one word (key above index),
 * which halves the traffic. Elements are moved as raw bits of their width, so one
 * program serves every dtype (no float arithmetic, float64 included on devices without
 * fp64).
 *
 * ferry_sort_tile sorts tiles of `tile` elements (four per thread of a work-group) in
 * local memory: all stages up to the tile in one launch, several short rows per tile,
 * or the half-cleaning steps below the tile of a longer stage; ferry_sort_step does one
 * step of a stage whose distance spans tiles in global memory, ferry_sort_step2 two.
 * topk with small k keeps the first k of each sorted tile and sorts those candidates
 * again, until one tile is left. */
#ifndef FERRY_SORT_KERNELS_H
#define FERRY_SORT_KERNELS_H

#ifndef FERRY_KERNELS_H /* concatenated after it in the OpenCL program */
#include "ferry_kernels.h"
#endif

/* fk_sort_launch.code: how a dtype's bits become a key. */
#define FK_SORT_BOOL 0
#define FK_SORT_UINT 1
#define FK_SORT_SINT 2
#define FK_SORT_F16 3
#define FK_SORT_BF16 4
#define FK_SORT_F32 5
#define FK_SORT_F64 6

/* fk_sort_launch.src: where ferry_sort_tile reads its elements. */
#define FK_SORT_FROM_INPUT 0
#define FK_SORT_FROM_SCRATCH 1
/* fk_sort_launch.dst: where it writes them. */
#define FK_SORT_TO_SCRATCH 0 /* every element, in place */
#define FK_SORT_TO_OUT 1     /* the first k of each row, to the op's results */
#define FK_SORT_TO_CAND 2    /* the first kc of each run, packed as rows of segs * kc */

/* One launch's geometry, shared with the host. Offsets and strides in elements:
 * "in" is the input (the gradient for scatter), "v" the values (the scatter's output),
 * "i" the indices. scr_idx is where the indices start in the scratch (u64 units). */
typedef struct fk_sort_launch {
    fk_i64 rows, n, P, k;
    fk_i64 in_off, in_rs, in_es;
    fk_i64 v_off, v_rs, v_es;
    fk_i64 i_off, i_rs, i_es;
    fk_i64 scr_idx; /* set by the planner; the kernels use src_* and dst_* instead */
    fk_i64 j, kk;   /* ferry_sort_step: distance and stage (P: the rows' power of two) */
    fk_i32 code, esize, flip, has_idx;
    /* Set by the backends. Scratch offsets in u64 units: keys and indices read (src_*)
     * and written (dst_*); len is the length of the rows there (n, or topk candidates). */
    fk_i64 src_k, src_i, dst_k, dst_i, len;
    fk_i64 tile;  /* elements of one work-group's tile: 4 times its threads, a power of 2 */
    fk_i64 seg;   /* ferry_sort_tile: length of the sorted runs, a power of two <= tile */
    fk_i64 segs;  /* runs per row: ceil(len / seg) */
    fk_i64 runs;  /* ferry_sort_tile: the first runs of each row it works on (<= segs) */
    fk_i64 limit; /* ferry_sort_step: blocks of the step starting at or past it are skipped */
    fk_i64 kc;    /* FK_SORT_TO_CAND: how many of each run are kept */
    fk_i32 src;   /* FK_SORT_FROM_* */
    fk_i32 dst;   /* FK_SORT_TO_* */
    fk_i32 clean; /* ferry_sort_tile: only the half-cleaning steps tile/2 .. 1 */
    fk_i32 ibits; /* packed: bits of the index below the key; 0: keys and indices apart */
    fk_i32 lseg, lhp; /* log2 of seg and of P / 2 */
    fk_i32 two;       /* step_fn: ferry_sort_step2 (distances j and j / 2) */
    fk_i32 merge;     /* set before fk_sort_prepare: runs longer than a tile are merged */
    fk_i32 raw;       /* fk_sort_prepare_raw: bare keys in the scratch, sorted there */
} fk_sort_launch;


#if defined(FK_HOST) || defined(FK_CUDA)
/* ---- the schedule, shared by the OpenCL and CUDA hosts ------------------------------ */

/* Called by fk_sort_drive for each launch: ferry_sort_tile over fk_sort_tiles(p)
 * work-groups of p->tile / 4 threads with 2 * p->tile u64 of local memory, and
 * ferry_sort_step over p->rows * p->P / 2 threads, or with p->two ferry_sort_step2
 * over p->rows * p->P / 4; with p->merge, ferry_sort_merge over fk_sort_merge_threads. */
typedef ferry_status (*fk_sort_launch_fn)(void *ctx, const fk_sort_launch *p);

static inline fk_i64 fk_sort_pow2(fk_i64 n)
{
    fk_i64 P = 1;
    while (P < n)
        P *= 2;
    return P;
}

/* Runs of topk's selection: at least 4k (each pass keeps a quarter or less), short, as
 * sorting a run costs log2(run)^2 / 2 steps an element. */
static inline fk_i64 fk_sort_sel_seg(const fk_sort_launch *p)
{
    fk_i64 seg = fk_sort_pow2(4 * p->k);
    seg = seg < 16 ? 16 : seg;
    return seg < p->tile ? seg : p->tile;
}

/* Sets the tile and the key packing; returns how many u64 of scratch the schedule needs
 * (0: one launch that reads the input and writes the results). */
static inline fk_i64 fk_sort_prepare(fk_sort_launch *p, fk_i64 tile)
{
    p->tile = tile;
    /* The index takes bits n does not fill, so a real element's packed key never
     * equals the all-ones key of the positions past the row. */
    fk_i32 ib = 1;
    while (ib < 62 && ((fk_i64)1 << ib) <= p->n)
        ib++;
    p->ibits = 8 * p->esize + ib <= 64 ? ib : 0;
    fk_i64 words = p->ibits ? 1 : 2;
    if (p->n <= tile)
        return 0;
    if (p->k <= tile / 2) {
        fk_i64 seg = fk_sort_sel_seg(p);
        return 2 * words * p->rows * ((p->n + seg - 1) / seg) * p->k;
    }
    return (p->merge ? 2 : 1) * words * p->rows * p->n;
}

/* Sets p up to sort n bare u64 keys at scr[0, n) ascending within the scratch, for
 * other ops (index_put's accumulation); returns the u64 of scratch it needs, the keys'
 * included. The keys must be distinct but for copies of ~0 (the largest: equal keys are
 * the same bits, so which comes first does not matter, and one word a key is the packed
 * layout with no index). After fk_sort_drive they lie at scr[p->dst_k, p->dst_k + n). */
static inline fk_i64 fk_sort_prepare_raw(fk_sort_launch *p, fk_i64 n, fk_i64 tile, fk_i32 merge)
{
    fk_sort_launch z = {0};
    *p = z;
    p->rows = 1;
    p->n = p->k = n;
    p->esize = 8;
    p->ibits = 1; /* packed; the key's low bit is never read as an index */
    p->merge = merge;
    p->raw = 1;
    p->tile = tile;
    return (merge && n > tile ? 2 : 1) * n;
}

/* Outputs a thread of ferry_sort_merge makes. */
#define FK_SORT_MERGE_CHUNK 32

static inline fk_i64 fk_sort_merge_threads(const fk_sort_launch *p)
{
    fk_i64 upto = p->dst == FK_SORT_TO_OUT && p->k < p->len ? p->k : p->len;
    return p->rows * ((upto + p->kc - 1) / p->kc);
}

/* Work-groups ferry_sort_tile needs for p (each loops over tiles when given fewer). */
static inline fk_i32 fk_sort_log2(fk_i64 P)
{
    fk_i32 l = 0;
    while (((fk_i64)1 << l) < P)
        l++;
    return l;
}

static inline fk_i64 fk_sort_tiles(const fk_sort_launch *p)
{
    fk_i64 per = p->tile / p->seg;
    return (p->rows * p->runs + per - 1) / per;
}

/* Runs the launches of a sort (after fk_sort_prepare). topk of k <= tile / 2 selects:
 * each run of fk_sort_sel_seg sorted keeps its first k, until the candidates fit one
 * tile. Otherwise
 * tiles are sorted, then each longer stage runs its steps of distance >= tile in global
 * memory and the rest in one tile launch (or with p->merge, sorted tiles are merged in
 * pairs); the last writes the results. */
static inline ferry_status fk_sort_drive(fk_sort_launch *p, void *ctx, fk_sort_launch_fn tile_fn,
                                         fk_sort_launch_fn step_fn, fk_sort_launch_fn merge_fn)
{
    fk_i64 T = p->tile, words = p->ibits ? 1 : 2;
    /* A raw sort reads and writes the scratch only: never the input, never results. */
    fk_i32 out = p->raw ? FK_SORT_TO_SCRATCH : FK_SORT_TO_OUT;
    p->len = p->n;
    p->src = p->raw ? FK_SORT_FROM_SCRATCH : FK_SORT_FROM_INPUT;
    p->clean = 0;
    p->src_k = p->dst_k = 0;
    if (p->n <= T) {
        p->seg = fk_sort_pow2(p->n);
        p->lseg = fk_sort_log2(p->seg);
        p->segs = p->runs = 1;
        p->dst = out;
        return tile_fn(ctx, p);
    }
    p->seg = T;
    p->lseg = fk_sort_log2(T);
    p->segs = p->runs = (p->n + T - 1) / T;
    ferry_status st;
    if (p->k <= T / 2) {
        p->seg = fk_sort_sel_seg(p);
        p->lseg = fk_sort_log2(p->seg);
        p->segs = p->runs = (p->n + p->seg - 1) / p->seg;
        fk_i64 m = p->rows * p->segs * p->k, region = 0;
        p->dst = FK_SORT_TO_CAND;
        p->kc = p->k;
        p->dst_k = 0;
        p->dst_i = m;
        st = tile_fn(ctx, p);
        p->len = p->segs * p->k;
        while (st == FERRY_OK && p->len > T) {
            p->src = FK_SORT_FROM_SCRATCH;
            p->src_k = p->dst_k;
            p->src_i = p->dst_i;
            region = region ? 0 : words * m;
            p->dst_k = region;
            p->dst_i = region + m;
            p->segs = p->runs = (p->len + p->seg - 1) / p->seg;
            st = tile_fn(ctx, p);
            p->len = p->segs * p->k;
        }
        if (st != FERRY_OK)
            return st;
        p->src = FK_SORT_FROM_SCRATCH;
        p->src_k = p->dst_k;
        p->src_i = p->dst_i;
        p->seg = fk_sort_pow2(p->len);
        p->lseg = fk_sort_log2(p->seg);
        p->segs = p->runs = 1;
        p->dst = FK_SORT_TO_OUT;
        return tile_fn(ctx, p);
    }
    p->dst = FK_SORT_TO_SCRATCH;
    p->dst_k = p->src_k = 0;
    p->dst_i = p->src_i = p->rows * p->n;
    st = tile_fn(ctx, p);
    if (p->merge) {
        /* Sorted tiles merged in pairs, between two regions, the last to the results. */
        p->kc = FK_SORT_MERGE_CHUNK;
        for (fk_i64 w = T; st == FERRY_OK && w < p->n; w *= 2) {
            p->seg = w;
            p->src_k = p->dst_k;
            p->src_i = p->dst_i;
            p->dst_k = p->src_k ? 0 : words * p->rows * p->n;
            p->dst_i = p->dst_k + p->rows * p->n;
            p->dst = 2 * w >= p->n ? out : FK_SORT_TO_SCRATCH;
            st = merge_fn(ctx, p);
        }
        return st;
    }
    p->P = fk_sort_pow2(p->n);
    p->lhp = fk_sort_log2(p->P / 2);
    p->src = FK_SORT_FROM_SCRATCH;
    for (fk_i64 kk = 2 * T; st == FERRY_OK && kk <= p->P; kk *= 2) {
        bool last = kk == p->P;
        p->kk = kk;
        /* The last stage only needs the blocks holding the first k. */
        p->limit = last ? p->k : p->n;
        for (fk_i64 j = kk / 2; st == FERRY_OK && j >= T; j /= p->two ? 4 : 2) {
            p->j = j;
            p->two = j >= 2 * T;
            st = step_fn(ctx, p);
        }
        p->two = 0;
        p->clean = 1;
        p->dst = last ? out : FK_SORT_TO_SCRATCH;
        /* Tiles wholly past the first k are not needed either. */
        if (last && (p->k + T - 1) / T < p->segs)
            p->runs = (p->k + T - 1) / T;
        if (st == FERRY_OK)
            st = tile_fn(ctx, p);
        p->clean = 0;
    }
    return st;
}
#endif /* FK_HOST || FK_CUDA */

#ifndef FK_HOST
#if FK_NAMED_FAMILY(SORT)

FK_FUNC fk_u64 fk_sort_load(FK_GLOBAL const fk_u8 *p, fk_i64 e, fk_i32 es)
{
    if (es == 1)
        return (fk_u64)p[e];
    if (es == 2)
        return (fk_u64)((FK_GLOBAL const fk_u16 *)p)[e];
    if (es == 4)
        return (fk_u64)((FK_GLOBAL const fk_u32 *)p)[e];
    return ((FK_GLOBAL const fk_u64 *)p)[e];
}

FK_FUNC void fk_sort_store(FK_GLOBAL fk_u8 *p, fk_i64 e, fk_i32 es, fk_u64 v)
{
    if (es == 1)
        p[e] = (fk_u8)v;
    else if (es == 2)
        ((FK_GLOBAL fk_u16 *)p)[e] = (fk_u16)v;
    else if (es == 4)
        ((FK_GLOBAL fk_u32 *)p)[e] = (fk_u32)v;
    else
        ((FK_GLOBAL fk_u64 *)p)[e] = v;
}

/* Order-preserving key of a float's bits: `sign` its sign bit, `inf` +inf's bits. */
FK_FUNC fk_u64 fk_sort_fkey(fk_u64 b, fk_u64 sign, fk_u64 inf)
{
    fk_u64 mag = b & (sign - 1);
    if (mag > inf)
        return sign | (sign - 1);
    if (mag == 0)
        b = 0;
    return (b & sign) ? (~b & (sign | (sign - 1))) : (b | sign);
}

FK_FUNC fk_u64 fk_sort_key(fk_u64 b, fk_i32 code, fk_i32 es)
{
    fk_u64 sign = (fk_u64)1 << (8 * es - 1);
    switch (code) {
    case FK_SORT_BOOL: return b != 0 ? 1 : 0;
    case FK_SORT_UINT: return b;
    case FK_SORT_SINT: return b ^ sign;
    case FK_SORT_F16: return fk_sort_fkey(b, sign, 0x7c00);
    case FK_SORT_BF16: return fk_sort_fkey(b, sign, 0x7f80);
    case FK_SORT_F32: return fk_sort_fkey(b, sign, 0x7f800000);
    default: return fk_sort_fkey(b, sign, (fk_u64)0x7ff0000000000000ul);
    }
}

#if defined(FK_OPENCL)
#define FK_SORT_LOCAL __local
/* The tile in local memory: a kernel argument, sized at launch from the device's limits. */
#define FK_SORT_SH_PARAM , __local fk_u64 *fk_sort_sh
#define FK_SORT_SH_DECL
#else
#define FK_SORT_LOCAL
#define FK_SORT_SH_PARAM
#define FK_SORT_SH_DECL extern __shared__ fk_u64 fk_sort_sh[];
#endif

/* Key of element e of row r of the input (index packed in when p.ibits). */
FK_FUNC fk_u64 fk_sort_in_key(FK_GLOBAL const fk_u8 *in, fk_i64 r, fk_i64 e, fk_sort_launch p)
{
    fk_u64 mask = p.esize == 8 ? ~(fk_u64)0 : (((fk_u64)1 << (8 * p.esize)) - 1);
    fk_u64 b = fk_sort_load(in, p.in_off + r * p.in_rs + e * p.in_es, p.esize);
    fk_u64 key = fk_sort_key(b, p.code, p.esize);
    if (p.flip)
        key ^= mask;
    return p.ibits ? (key << p.ibits) | (fk_u64)e : key;
}

/* Writes element `pos` of row r of the results: the input's element at index i. */
FK_FUNC void fk_sort_put(FK_GLOBAL fk_u8 *vals, FK_GLOBAL fk_i64 *idx, FK_GLOBAL const fk_u8 *in,
                         fk_i64 r, fk_i64 pos, fk_i64 i, fk_sort_launch p)
{
    fk_u64 b = fk_sort_load(in, p.in_off + r * p.in_rs + i * p.in_es, p.esize);
    fk_sort_store(vals, p.v_off + r * p.v_rs + pos * p.v_es, p.esize, b);
    if (p.has_idx)
        idx[p.i_off + r * p.i_rs + pos * p.i_es] = i;
}

/* Orders elements a < c held in registers. */
#define FK_SORT_CX_REG(ka, ia, kc, ic)                                                    \
    if (ka > kc || (ka == kc && ia > ic)) {                                               \
        fk_u64 tk = ka, ti = ia;                                                          \
        ka = kc;                                                                          \
        ia = ic;                                                                          \
        kc = tk;                                                                          \
        ic = ti;                                                                          \
    }

/* The two bitonic steps on four elements k0..k3 (with i0..i3) in registers: the far one
 * pairs 0 with 3 and 1 with 2 when `flip`, else 0 with 2 and 1 with 3; the near one 0
 * with 1 and 2 with 3. */
#define FK_SORT_CX4_FAR(flip)                                                             \
    if (flip) {                                                                           \
        FK_SORT_CX_REG(k0, i0, k3, i3)                                                    \
        FK_SORT_CX_REG(k1, i1, k2, i2)                                                    \
    } else {                                                                              \
        FK_SORT_CX_REG(k0, i0, k2, i2)                                                    \
        FK_SORT_CX_REG(k1, i1, k3, i3)                                                    \
    }
#define FK_SORT_CX4_NEAR                                                                  \
    FK_SORT_CX_REG(k0, i0, k1, i1)                                                        \
    FK_SORT_CX_REG(k2, i2, k3, i3)

/* Orders two pairs of elements of the local tile, then two more: steps of distances j
 * and j / 2 on four elements e0 < e1 < e2 < e3 (the first pairs e0 with e3 and e1 with
 * e2 when `flip`, else e0 with e2 and e1 with e3; the second e0 with e1, e2 with e3); with
 * `one`, only the pairs (e0, e1) and (e2, e3). */
FK_FUNC void fk_sort_quad_local(FK_SORT_LOCAL fk_u64 *sk, FK_SORT_LOCAL fk_u64 *si, fk_i32 e0,
                                fk_i32 e1, fk_i32 e2, fk_i32 e3, fk_i32 flip, fk_i32 one,
                                fk_i32 packed)
{
    fk_u64 k0 = sk[e0], k1 = sk[e1], k2 = sk[e2], k3 = sk[e3];
    fk_u64 i0 = 0, i1 = 0, i2 = 0, i3 = 0;
    if (!packed) {
        i0 = si[e0];
        i1 = si[e1];
        i2 = si[e2];
        i3 = si[e3];
    }
    if (!one) {
        FK_SORT_CX4_FAR(flip)
    }
    FK_SORT_CX4_NEAR
    sk[e0] = k0;
    sk[e1] = k1;
    sk[e2] = k2;
    sk[e3] = k3;
    if (!packed) {
        si[e0] = i0;
        si[e1] = i1;
        si[e2] = i2;
        si[e3] = i3;
    }
}

/* The network in local memory, thread q of tile/4 owning four elements of each pair of
 * steps (so one barrier per two steps): sorting each aligned run of `seg` ascending
 * (stages 2 .. seg), or with `clean` only the half-cleaning steps tile/2 .. 1 of a longer
 * stage. A stage of an odd number of steps ends with a lone step of distance 1. One
 * loop with one barrier, as PoCL wants barriers outside branches. */
FK_FUNC void fk_sort_net_local(FK_SORT_LOCAL fk_u64 *sk, FK_SORT_LOCAL fk_u64 *si, fk_i64 q,
                               fk_i64 tile, fk_i64 seg, fk_i32 clean, fk_i32 packed)
{
    /* 32-bit and no division: this is the inner loop of every sort. */
    fk_i32 top = (fk_i32)(clean ? tile : seg), kk = clean ? (fk_i32)tile : 2, j = kk / 2;
    fk_i32 qq = (fk_i32)q;
    while (kk <= top) {
        fk_i32 flip = !clean && 2 * j == kk;
        if (j >= 2) {
            fk_i32 h = j / 2, o = qq & (h - 1), blk = (qq - o) * 4;
            fk_i32 e0 = blk + o, e2 = flip ? blk + 3 * h - 1 - o : e0 + 2 * h;
            fk_sort_quad_local(sk, si, e0, e0 + h, e2, e2 + h, flip, 0, packed);
        } else {
            fk_sort_quad_local(sk, si, 4 * qq, 4 * qq + 1, 4 * qq + 2, 4 * qq + 3, 0, 1, packed);
        }
        FK_BARRIER();
        if (j <= 2) {
            kk *= 2;
            j = kk / 2;
        } else {
            j /= 4;
        }
    }
}

/* One work-group per tile (grid-stride over tiles). A tile holds tile / seg runs: run g
 * is run g % runs of row g / runs, its elements at positions (g % runs) * seg + s. It
 * sorts each run in local memory (or, with p.clean, only half-cleans the tile: the end
 * of a stage longer than the tile), then writes per p.dst. Positions past the row's
 * length are the largest element, (~0, ~0). */
FK_KERNEL ferry_sort_tile(FK_GLOBAL fk_u64 *scr, FK_GLOBAL fk_u8 *vals, FK_GLOBAL fk_i64 *idx,
                          FK_GLOBAL const fk_u8 *in, fk_sort_launch p FK_SORT_SH_PARAM)
{
    FK_SORT_SH_DECL
    FK_SORT_LOCAL fk_u64 *sk = fk_sort_sh;
    FK_SORT_LOCAL fk_u64 *si = fk_sort_sh + p.tile;
    fk_i32 packed = p.ibits != 0;
    fk_i64 lanes = p.tile / 4, q = FK_LOCAL_ID;
    fk_i64 per = p.tile / p.seg, nrun = p.rows * p.runs;
    fk_i64 ntiles = (nrun + per - 1) / per;
    for (fk_i64 w = FK_GROUP_ID; w < ntiles; w += FK_NUM_GROUPS) {
        for (fk_i64 s = q; s < p.tile; s += lanes) {
            fk_i64 g = w * per + (s >> p.lseg);
            fk_i64 r = g / p.runs, pos = (g - r * p.runs) * p.seg + (s & (p.seg - 1));
            fk_u64 key = ~(fk_u64)0, ix = ~(fk_u64)0;
            if (g < nrun && pos < p.len) {
                if (p.src == FK_SORT_FROM_INPUT) {
                    key = fk_sort_in_key(in, r, pos, p);
                    ix = (fk_u64)pos;
                } else {
                    key = scr[p.src_k + r * p.len + pos];
                    if (!packed)
                        ix = scr[p.src_i + r * p.len + pos];
                }
            }
            sk[s] = key;
            si[s] = ix;
        }
        FK_BARRIER();
        fk_sort_net_local(sk, si, q, p.tile, p.seg, p.clean, packed);
        for (fk_i64 s = q; s < p.tile; s += lanes) {
            fk_i64 g = w * per + (s >> p.lseg), ls = s & (p.seg - 1);
            fk_i64 r = g / p.runs, t = g - r * p.runs, pos = t * p.seg + ls;
            fk_u64 key = sk[s];
            fk_u64 ix = packed ? key & (((fk_u64)1 << p.ibits) - 1) : si[s];
            if (g >= nrun) {
                /* past the last run */
            } else if (p.dst == FK_SORT_TO_SCRATCH) {
                if (pos < p.len) {
                    scr[p.dst_k + r * p.len + pos] = key;
                    if (!packed)
                        scr[p.dst_i + r * p.len + pos] = ix;
                }
            } else if (p.dst == FK_SORT_TO_OUT) {
                if (pos < p.k)
                    fk_sort_put(vals, idx, in, r, pos, (fk_i64)ix, p);
            } else if (ls < p.kc) {
                fk_i64 at = r * p.segs * p.kc + t * p.kc + ls;
                scr[p.dst_k + at] = key;
                if (!packed)
                    scr[p.dst_i + at] = ix;
            }
        }
        FK_BARRIER();
    }
}

/* One step (stage p.kk, distance p.j) over the rows in the scratch, in place: the flip
 * step when j == kk / 2, else a half-cleaning one. */
FK_KERNEL ferry_sort_step(FK_GLOBAL fk_u64 *scr, fk_sort_launch p)
{
    fk_i64 hp = p.P / 2;
    fk_i32 packed = p.ibits != 0;
    FK_FOR_EACH(t, p.rows * hp)
    {
        fk_i64 r = t >> p.lhp, q = t & (hp - 1);
        fk_i64 o = q & (p.j - 1), blk = (q - o) * 2;
        fk_i64 a = blk + o, c = p.j * 2 == p.kk ? blk + p.kk - 1 - o : a + p.j;
        if (c >= p.len || blk >= p.limit)
            continue;
        a += r * p.len;
        c += r * p.len;
        fk_u64 ka = scr[p.dst_k + a], kc = scr[p.dst_k + c];
        if (packed) {
            if (ka > kc) {
                scr[p.dst_k + a] = kc;
                scr[p.dst_k + c] = ka;
            }
            continue;
        }
        fk_u64 ia = scr[p.dst_i + a], ic = scr[p.dst_i + c];
        if (ka > kc || (ka == kc && ia > ic)) {
            scr[p.dst_k + a] = kc;
            scr[p.dst_k + c] = ka;
            scr[p.dst_i + a] = ic;
            scr[p.dst_i + c] = ia;
        }
    }
}

/* Element n of ferry_sort_step2's four (en, kn, in), read from and written back to the
 * scratch when it lies within the row. */
#define FK_SORT_STEP2_LOAD(n)                                                             \
    if (e##n < p.len) {                                                                   \
        k##n = scr[p.dst_k + row + e##n];                                                 \
        i##n = packed ? 0 : scr[p.dst_i + row + e##n];                                    \
    }
#define FK_SORT_STEP2_STORE(n)                                                            \
    if (e##n < p.len) {                                                                   \
        scr[p.dst_k + row + e##n] = k##n;                                                 \
        if (!packed)                                                                      \
            scr[p.dst_i + row + e##n] = i##n;                                             \
    }

/* Two steps at once, distances p.j and p.j / 2 of stage p.kk: each thread orders four
 * elements in registers, one pass over memory instead of two. */
FK_KERNEL ferry_sort_step2(FK_GLOBAL fk_u64 *scr, fk_sort_launch p)
{
    fk_i64 qp = p.P / 4, h = p.j / 2;
    fk_i32 packed = p.ibits != 0, flip = p.j * 2 == p.kk;
    FK_FOR_EACH(t, p.rows * qp)
    {
        fk_i64 r = t >> (p.lhp - 1), q = t & (qp - 1);
        fk_i64 o = q & (h - 1), blk = (q - o) * 4;
        if (blk >= p.limit)
            continue;
        /* Flip: the first step pairs e0 with e3 and e1 with e2, else e0 with e2 and e1
         * with e3; the second pairs e0 with e1 and e2 with e3. */
        fk_i64 e0 = blk + o, e1 = e0 + h;
        fk_i64 e2 = flip ? blk + 3 * h - 1 - o : e0 + 2 * h, e3 = e2 + h;
        fk_i64 row = r * p.len;
        fk_u64 k0 = ~(fk_u64)0, k1 = k0, k2 = k0, k3 = k0;
        fk_u64 i0 = 0, i1 = 0, i2 = 0, i3 = 0;
        FK_SORT_STEP2_LOAD(0)
        FK_SORT_STEP2_LOAD(1)
        FK_SORT_STEP2_LOAD(2)
        FK_SORT_STEP2_LOAD(3)
        /* Past the row: the largest element (a real index is below ~0). */
        if (!packed) {
            i0 = e0 < p.len ? i0 : ~(fk_u64)0;
            i1 = e1 < p.len ? i1 : ~(fk_u64)0;
            i2 = e2 < p.len ? i2 : ~(fk_u64)0;
            i3 = e3 < p.len ? i3 : ~(fk_u64)0;
        }
        FK_SORT_CX4_FAR(flip)
        FK_SORT_CX4_NEAR
        FK_SORT_STEP2_STORE(0)
        FK_SORT_STEP2_STORE(1)
        FK_SORT_STEP2_STORE(2)
        FK_SORT_STEP2_STORE(3)
    }
}

/* (ka, ia) < (kb, ib) */
#define FK_SORT_LESS(ka, ia, kb, ib) ((ka) < (kb) || ((ka) == (kb) && (ia) < (ib)))

/* Merges pairs of sorted runs of p.seg (rows of p.len at src_*) into runs of 2 * seg (at
 * dst_*, or the results when one run covers the row): each thread makes p.kc outputs,
 * from where a binary search along the merge path says they start. Linear work a level
 * where the bitonic steps are log2 of the run, for devices without a GPU's lockstep. */
FK_KERNEL ferry_sort_merge(FK_GLOBAL fk_u64 *scr, FK_GLOBAL fk_u8 *vals, FK_GLOBAL fk_i64 *idx,
                           FK_GLOBAL const fk_u8 *in, fk_sort_launch p)
{
    fk_i32 packed = p.ibits != 0;
    fk_i64 C = p.kc, w = p.seg;
    fk_i64 upto = p.dst == FK_SORT_TO_OUT && p.k < p.len ? p.k : p.len;
    fk_i64 need = (upto + C - 1) / C;
    FK_FOR_EACH(t, p.rows * need)
    {
        fk_i64 r = t / need, pos = (t - r * need) * C;
        fk_i64 base = pos & ~(2 * w - 1), d0 = pos - base;
        fk_i64 la = p.len - base < w ? p.len - base : w;
        fk_i64 lb = p.len - base - w;
        lb = lb < 0 ? 0 : lb > w ? w : lb;
        fk_i64 ao = r * p.len + base, bo = ao + w;
        FK_GLOBAL const fk_u64 *ak = scr + p.src_k + ao, *bk = scr + p.src_k + bo;
        FK_GLOBAL const fk_u64 *ai = scr + p.src_i + ao, *bi = scr + p.src_i + bo;
        fk_i64 lo = d0 > lb ? d0 - lb : 0, hi = d0 < la ? d0 : la;
        while (lo < hi) {
            fk_i64 mid = (lo + hi) / 2, jb = d0 - 1 - mid;
            bool afirst = packed ? ak[mid] < bk[jb] : FK_SORT_LESS(ak[mid], ai[mid], bk[jb], bi[jb]);
            if (afirst)
                lo = mid + 1;
            else
                hi = mid;
        }
        fk_i64 i = lo, j = d0 - lo;
        fk_i64 end = upto - pos < C ? upto - pos : C;
        for (fk_i64 e = 0; e < end; e++) {
            bool takea = j >= lb || (i < la && (packed ? ak[i] < bk[j]
                                                       : FK_SORT_LESS(ak[i], ai[i], bk[j], bi[j])));
            fk_u64 key, ix = 0;
            if (takea) {
                key = ak[i];
                if (!packed)
                    ix = ai[i];
                i++;
            } else {
                key = bk[j];
                if (!packed)
                    ix = bi[j];
                j++;
            }
            if (p.dst == FK_SORT_TO_OUT) {
                if (packed)
                    ix = key & (((fk_u64)1 << p.ibits) - 1);
                fk_sort_put(vals, idx, in, r, pos + e, (fk_i64)ix, p);
            } else {
                scr[p.dst_k + r * p.len + pos + e] = key;
                if (!packed)
                    scr[p.dst_i + r * p.len + pos + e] = ix;
            }
        }
    }
}

/* The scatter's output zeroed (rows, n). */
FK_KERNEL ferry_sort_zero(FK_GLOBAL fk_u8 *out, fk_sort_launch p)
{
    FK_FOR_EACH(t, p.rows * p.n)
    {
        fk_i64 r = t / p.n, j = t - r * p.n;
        fk_sort_store(out, p.v_off + r * p.v_rs + j * p.v_es, p.esize, 0);
    }
}

/* out[r, idx[r, j]] = grad[r, j]; indices of a row are distinct (they come from a sort). */
FK_KERNEL ferry_sort_scatter(FK_GLOBAL fk_u8 *out, FK_GLOBAL const fk_u8 *g,
                             FK_GLOBAL const fk_i64 *idx, fk_sort_launch p)
{
    FK_FOR_EACH(t, p.rows * p.k)
    {
        fk_i64 r = t / p.k, j = t - r * p.k;
        fk_i64 i = idx[p.i_off + r * p.i_rs + j * p.i_es];
        if (i >= 0 && i < p.n) {
            fk_u64 b = fk_sort_load(g, p.in_off + r * p.in_rs + j * p.in_es, p.esize);
            fk_sort_store(out, p.v_off + r * p.v_rs + i * p.v_es, p.esize, b);
        }
    }
}

#endif /* FK_NAMED_FAMILY(SORT) */
#endif /* !FK_HOST */
#endif /* FERRY_SORT_KERNELS_H */

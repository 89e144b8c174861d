/* Sorting kernels of the named ops "ferry.sort" and "ferry.sort_scatter"
 * (ferry/ops/sort.h), shared by OpenCL and CUDA.
 *
 * Each row is padded to P, a power of two, and sorted by a bitonic network: one launch
 * per (k, j) step over rows * P / 2 compare-exchanges, on (key, index) pairs in a
 * scratch buffer. Keys are order-preserving unsigned integers built from the element's
 * bits (floats: sign folded into order, -0.0 onto +0.0, every NaN onto one key above
 * +inf; descending complements the key); padding is the largest key with an index >= n,
 * so it sorts after every element. Comparing (key, index) makes the order PyTorch's
 * stable one. Elements are moved as raw bits of their width, so one program serves
 * every dtype (no float arithmetic, float64 included on devices without fp64). */
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

/* One launch's geometry, shared with the host. Offsets and strides in elements:
 * "in" is the input (the gradient for scatter), "v" the values (the scatter's output),
 * "i" the indices. scr_idx is where the indices start in the scratch (u64 units). */
typedef struct fk_sort_launch {
    fk_i64 rows, n, P, k;
    fk_i64 in_off, in_rs, in_es;
    fk_i64 v_off, v_rs, v_es;
    fk_i64 i_off, i_rs, i_es;
    fk_i64 scr_idx;
    fk_i64 j, kk; /* the bitonic step */
    fk_i32 code, esize, flip, has_idx;
} fk_sort_launch;

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

/* Keys and indices of every padded row. */
FK_KERNEL ferry_sort_keys(FK_GLOBAL fk_u64 *scr, FK_GLOBAL const fk_u8 *in, fk_sort_launch p)
{
    fk_u64 mask = p.esize == 8 ? ~(fk_u64)0 : (((fk_u64)1 << (8 * p.esize)) - 1);
    FK_FOR_EACH(t, p.rows * p.P)
    {
        fk_i64 r = t / p.P, j = t - r * p.P;
        fk_u64 key = ~(fk_u64)0;
        if (j < p.n) {
            fk_u64 b = fk_sort_load(in, p.in_off + r * p.in_rs + j * p.in_es, p.esize);
            key = fk_sort_key(b, p.code, p.esize);
            if (p.flip)
                key ^= mask;
        }
        scr[t] = key;
        scr[p.scr_idx + t] = (fk_u64)j;
    }
}

/* One bitonic step (block size kk, distance j) over every row. */
FK_KERNEL ferry_sort_step(FK_GLOBAL fk_u64 *scr, fk_sort_launch p)
{
    fk_i64 hp = p.P / 2;
    FK_FOR_EACH(t, p.rows * hp)
    {
        fk_i64 r = t / hp, q = t - r * hp;
        fk_i64 lo = 2 * p.j * (q / p.j) + q % p.j;
        fk_i64 a = r * p.P + lo, b = a + p.j;
        bool up = (lo & p.kk) == 0;
        fk_u64 ka = scr[a], kb = scr[b];
        fk_u64 ia = scr[p.scr_idx + a], ib = scr[p.scr_idx + b];
        bool gt = ka > kb || (ka == kb && ia > ib);
        if (gt == up) {
            scr[a] = kb;
            scr[b] = ka;
            scr[p.scr_idx + a] = ib;
            scr[p.scr_idx + b] = ia;
        }
    }
}

/* The first k of each sorted row: values gathered from the input, and indices. */
FK_KERNEL ferry_sort_out(FK_GLOBAL fk_u8 *vals, FK_GLOBAL fk_i64 *idx,
                         FK_GLOBAL const fk_u8 *in, FK_GLOBAL const fk_u64 *scr, fk_sort_launch p)
{
    FK_FOR_EACH(t, p.rows * p.k)
    {
        fk_i64 r = t / p.k, j = t - r * p.k;
        fk_i64 i = (fk_i64)scr[p.scr_idx + r * p.P + j];
        fk_u64 b = fk_sort_load(in, p.in_off + r * p.in_rs + i * p.in_es, p.esize);
        fk_sort_store(vals, p.v_off + r * p.v_rs + j * p.v_es, p.esize, b);
        if (p.has_idx)
            idx[p.i_off + r * p.i_rs + j * p.i_es] = i;
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

/* The body of one vector build of the float32 samplers (cpu_random_vec.c includes it once
 * per instruction set, with the V* macros naming that set's intrinsics). It performs the
 * operations of ferry_random.h's fk_random_block_f32 lane by lane, in the same order and
 * on the same IEEE single-precision values (no fused multiply-adds: this file is built
 * with -ffp-contract=off, and only exact conversions are used), so each element is the
 * bit pattern the scalar code, OpenCL and CUDA produce.
 *
 * Philox runs on 64-bit lanes holding one 32-bit word each in their low half: vpmuludq
 * multiplies those halves into the full 64-bit product, so one multiply yields both the
 * high word (a shift) and the low word (the lane itself, whose high half is ignored by
 * every later multiply and dropped by the final pack). Two such chains (the even and the
 * odd blocks of a group) pack into one vector of 32-bit words, lane l holding block j + l. */

/* Philox4x32-10 of blocks base + 2i (a) and base + 2i + 1 (b), i < VW / 2: word k of
 * each in the low half of the 64-bit lanes of a[k], b[k]. */
VFUNC void VNAME(philox_chains)(uint64_t base, uint32_t k0, uint32_t k1, VI wa[4], VI wb[4])
{
    VI step = VI64_IOTA2();
    VI ba = VI64_ADD(VI64_SET1((long long)base), step);
    VI bb = VI64_ADD(ba, VI64_SET1(1));
    VI a0 = ba, a1 = VI64_SRL32(ba), a2 = VZERO(), a3 = VZERO();
    VI b0 = bb, b1 = VI64_SRL32(bb), b2 = VZERO(), b3 = VZERO();
    const VI m0 = VI64_SET1(FK_PHILOX_M0), m1 = VI64_SET1(FK_PHILOX_M1);
    for (int r = 0; r < 10; r++) {
        VI ka = VI64_SET1(k0), kb = VI64_SET1(k1);
        VI pa0 = VMULU(a0, m0), pa1 = VMULU(a2, m1);
        VI pb0 = VMULU(b0, m0), pb1 = VMULU(b2, m1);
        VI na0 = VXOR3(VI64_SRL32(pa1), a1, ka);
        VI na2 = VXOR3(VI64_SRL32(pa0), a3, kb);
        VI nb0 = VXOR3(VI64_SRL32(pb1), b1, ka);
        VI nb2 = VXOR3(VI64_SRL32(pb0), b3, kb);
        a1 = pa1;
        a3 = pa0;
        a0 = na0;
        a2 = na2;
        b1 = pb1;
        b3 = pb0;
        b0 = nb0;
        b2 = nb2;
        k0 += FK_PHILOX_W0;
        k1 += FK_PHILOX_W1;
    }
    wa[0] = a0;
    wa[1] = a1;
    wa[2] = a2;
    wa[3] = a3;
    wb[0] = b0;
    wb[1] = b1;
    wb[2] = b2;
    wb[3] = b3;
}

/* The same words packed: lane l of w[k] is word k of block base + l. */
VFUNC void VNAME(philox)(uint64_t base, uint32_t k0, uint32_t k1, VI w[4])
{
    VI wa[4], wb[4];
    VNAME(philox_chains)(base, k0, k1, wa, wb);
    for (int k = 0; k < 4; k++)
        w[k] = VPACK(wa[k], wb[k]);
}

/* fk_lnf */
VFUNC VF VNAME(lnf)(VF x)
{
    /* The scalar code's halving of m > 1.41421354f (bits 0x3fb504f3) and e + 1, in
     * integers: adding 0x3f800000 - 0x3f3504f4 carries into the exponent exactly when the
     * mantissa bits are at least 0x3504f4, and the mantissa then rebased on 0x3f3504f4
     * is m or m / 2. x is a normal float (>= 2^-24), so no borrow reaches the sign. */
    VI bits = VI32_ADD(VCAST_F2I(x), VI32_SET1(0x3f800000 - 0x3f3504f4));
    VI e = VI32_SUB(VI32_SRL(bits, 23), VI32_SET1(127));
    VF m = VCAST_I2F(VI32_ADD(VAND(bits, VI32_SET1(0x007fffff)), VI32_SET1(0x3f3504f4)));
    VF t = VSUB(m, VF_SET1(1.0f));
    VF q = VF_SET1(8.518540859e-02f);
    q = VADD(VMUL(q, t), VF_SET1(-1.420377493e-01f));
    q = VADD(VMUL(q, t), VF_SET1(1.494932920e-01f));
    q = VADD(VMUL(q, t), VF_SET1(-1.658683121e-01f));
    q = VADD(VMUL(q, t), VF_SET1(1.996066123e-01f));
    q = VADD(VMUL(q, t), VF_SET1(-2.500103116e-01f));
    q = VADD(VMUL(q, t), VF_SET1(3.333397210e-01f));
    q = VADD(VMUL(q, t), VF_SET1(-0.5f));
    q = VADD(VMUL(q, t), VF_SET1(1.0f));
    VF fe = VCVT_I2F(e);
    return VADD(VADD(VMUL(fe, VF_SET1(0.693145752f)), VMUL(t, q)),
                VMUL(fe, VF_SET1(1.42860677e-06f)));
}

/* fk_sqrtf (x >= 0; -0 and +0 give +0 as the scalar x == 0 test does) */
VFUNC VF VNAME(sqrtf)(VF x)
{
    VF y = VCAST_I2F(VI32_SUB(VI32_SET1(0x5f3759df), VI32_SRL(VCAST_F2I(x), 1)));
    VF h = VMUL(VF_SET1(0.5f), x);
    for (int k = 0; k < 2; k++)
        y = VMUL(y, VSUB(VF_SET1(1.5f), VMUL(VMUL(h, y), y)));
    VF s = VMUL(x, y);
    VF r = VADD(s, VMUL(VMUL(VSUB(x, VMUL(s, s)), y), VF_SET1(0.5f)));
    return VSELF(VCMPEQ(x, VF_SET1(0.0f)), r, VF_SET1(0.0f));
}

/* fk_cossin2pif: the quadrant's swap and sign flips as a select and sign-bit xors
 * (unary minus flips the sign bit, as the scalar code's negations do). */
VFUNC void VNAME(cossin)(VF u, VF *c, VF *s)
{
    VF v = VMUL(u, VF_SET1(4.0f));
    VI q = VCVTT_F2I(v);
    VF x = VMUL(VSUB(v, VCVT_I2F(q)), VF_SET1(1.57079637f));
    VF x2 = VMUL(x, x);
    VF sp = VF_SET1(2.600614835e-06f);
    sp = VADD(VMUL(sp, x2), VF_SET1(-1.980690286e-04f));
    sp = VADD(VMUL(sp, x2), VF_SET1(8.333021775e-03f));
    sp = VADD(VMUL(sp, x2), VF_SET1(-1.666665673e-01f));
    VF sn = VADD(x, VMUL(VMUL(x, x2), sp));
    VF cp = VF_SET1(-2.608913690e-07f);
    cp = VADD(VMUL(cp, x2), VF_SET1(2.476263398e-05f));
    cp = VADD(VMUL(cp, x2), VF_SET1(-1.388842007e-03f));
    cp = VADD(VMUL(cp, x2), VF_SET1(4.166664183e-02f));
    cp = VADD(VMUL(cp, x2), VF_SET1(-0.5f));
    VF cs = VADD(VF_SET1(1.0f), VMUL(x2, cp));
    VM odd = VTEST(q, 1);
    VF c0 = VSELF(odd, cs, sn), s0 = VSELF(odd, sn, cs);
    /* cos is negated in quadrants 1 and 2, sin in 2 and 3. */
    VI cneg = VI32_SLL(VAND(VI32_ADD(q, VI32_SET1(1)), VI32_SET1(2)), 30);
    VI sneg = VI32_SLL(VAND(q, VI32_SET1(2)), 30);
    *c = VCAST_I2F(VXOR(VCAST_F2I(c0), cneg));
    *s = VCAST_I2F(VXOR(VCAST_F2I(s0), sneg));
}

/* Blocks j0 .. j0 + groups * VW - 1 of a float32 draw into o (element 4 j0 first). */
VFUNC void VNAME(f32)(const fk_random *p, uint64_t j0, int64_t groups, float *o)
{
    uint32_t k0 = (uint32_t)p->seed, k1 = (uint32_t)(p->seed >> 32);
    VF a = VF_SET1(p->a32), b = VF_SET1(p->b32);
    int shift = 32 - p->fbits;
    VF scale = VF_SET1(fk_pow2m(p->fbits));
    const VF unit = VF_SET1(5.96046448e-08f);
    for (int64_t g = 0; g < groups; g++) {
        VI w[4];
        VNAME(philox)(p->block0 + j0 + (uint64_t)(g * VW), k0, k1, w);
        VF v[4];
        if (p->kind == FK_RNG_UNIFORM) {
            for (int k = 0; k < 4; k++)
                v[k] = VADD(a, VMUL(b, VMUL(VCVT_I2F(VI32_SRLV(w[k], shift)), scale)));
        } else {
            for (int k = 0; k < 4; k += 2) {
                VF u1 = VMUL(VCVT_I2F(VI32_ADD(VI32_SRL(w[k], 8), VI32_SET1(1))), unit);
                VF u2 = VMUL(VCVT_I2F(VI32_SRL(w[k + 1], 8)), unit);
                VF r = VNAME(sqrtf)(VMUL(VF_SET1(-2.0f), VNAME(lnf)(u1)));
                VF c, s;
                VNAME(cossin)(u2, &c, &s);
                v[k] = VADD(a, VMUL(b, VMUL(r, c)));
                v[k + 1] = VADD(a, VMUL(b, VMUL(r, s)));
            }
        }
        /* Lane l holds word k of block j0 + l; memory wants the blocks' 4 words in turn. */
        VSTORE4(o + 4 * VW * g, v[0], v[1], v[2], v[3]);
    }
}

/* Narrow randint (fk_random_int_narrow: range <= 2^32, one word per element) into int32
 * or int64: low + ((w * range) >> 32), w itself when range is 2^32. The int32 result is
 * the low word of the int64 one, as the scalar store's conversion keeps. */
VFUNC void VNAME(int_narrow)(const fk_random *p, uint64_t j0, int64_t groups, void *out,
                             int wide)
{
    uint32_t k0 = (uint32_t)p->seed, k1 = (uint32_t)(p->seed >> 32);
    int full = p->range == ((uint64_t)1 << 32);
    const VI range = VI64_SET1(p->range), low64 = VI64_SET1(p->low);
    for (int64_t g = 0; g < groups; g++) {
        VI wa[4], wb[4];
        VNAME(philox_chains)(p->block0 + j0 + (uint64_t)(g * VW), k0, k1, wa, wb);
        VI xa[4], xb[4];
        for (int k = 0; k < 4; k++) {
            xa[k] = VI64_ADD(low64, full ? VI64_LOW32(wa[k]) : VI64_SRL32(VMULU(wa[k], range)));
            xb[k] = VI64_ADD(low64, full ? VI64_LOW32(wb[k]) : VI64_SRL32(VMULU(wb[k], range)));
        }
        if (!wide) {
            VF v[4];
            for (int k = 0; k < 4; k++)
                v[k] = VCAST_I2F(VPACK(xa[k], xb[k]));
            /* Shuffles move bits as they are: no float arithmetic touches these. */
            VSTORE4((float *)out + 4 * VW * g, v[0], v[1], v[2], v[3]);
        } else {
            int64_t la[4][VW / 2], lb[4][VW / 2];
            for (int k = 0; k < 4; k++) {
                VSTOREI((void *)la[k], xa[k]);
                VSTOREI((void *)lb[k], xb[k]);
            }
            int64_t *o = (int64_t *)out + 4 * VW * g;
            for (int i = 0; i < VW / 2; i++)
                for (int k = 0; k < 4; k++) {
                    o[8 * i + k] = la[k][i];
                    o[8 * i + 4 + k] = lb[k][i];
                }
        }
    }
}

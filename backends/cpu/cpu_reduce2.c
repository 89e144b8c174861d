/* The reduce2 family on the cpu backend (ferry/ops/reduce2.h): products, scans and
 * softmax rows along one dim of a [outer, len, inner] view, any strides. The reference
 * for every device and their fallback: the same sequential order per line as the
 * portable kernels, float16/bfloat16 accumulating in float32. */
#include <math.h>

#include <ferry/half.h>
#include <ferry/ops/reduce2.h>

#include "cpu_internal.h"
#include "ferry_kernels.h"
#include "ferry_reduce2.h"

#define CPU_L2_ACC_INT uint64_t
#define CPU_L2_ACC_F32 float
#define CPU_L2_ACC_F64 double
#define CPU_L2_LD_INT(sfx, v) ((uint64_t)(int64_t)CPU_LD_##sfx(v))
#define CPU_L2_LD_F32(sfx, v) CPU_LD_##sfx(v)
#define CPU_L2_LD_F64(sfx, v) CPU_LD_##sfx(v)
#define CPU_L2_OT_INT(st) int64_t
#define CPU_L2_OT_F32(st) st
#define CPU_L2_OT_F64(st) st
#define CPU_L2_ST_INT(sfx, v) ((int64_t)(v))
#define CPU_L2_ST_F32(sfx, v) CPU_ST_##sfx(v)
#define CPU_L2_ST_F64(sfx, v) CPU_ST_##sfx(v)

/* X(sfx, stored type, kind) in ferry_dtype order; `boolean`, since <stdbool.h> makes
 * `bool` a macro that would expand on its way through. */
#define CPU_LD_boolean(x) CPU_LD_bool(x)
#define CPU_L2_DTYPES(X)                                                                  \
    X(boolean, uint8_t, INT) X(u8, uint8_t, INT) X(i8, int8_t, INT) X(i16, int16_t, INT)     \
    X(i32, int32_t, INT) X(i64, int64_t, INT) X(f16, uint16_t, F32) X(bf16, uint16_t, F32) \
    X(f32, float, F32) X(f64, double, F64)

#define CPU_L2_SCAN(sfx, st, kind)                                                        \
    static void cpu_l2_scan_##sfx(const fk_lgeom *g, void *outp, const void *inp,         \
                                  int64_t j0, int64_t j1)                                 \
    {                                                                                     \
        CPU_L2_OT_##kind(st) *out = outp;                                                 \
        const st *in = inp;                                                               \
        for (int64_t j = j0; j < j1; j++) {                                               \
            int64_t o = j / g->inner, i = j - o * g->inner;                               \
            const st *x = in + g->in_offset + o * g->in_s0 + i * g->in_s2;                \
            CPU_L2_OT_##kind(st) *y = out + g->out_offset + o * g->out_s0 + i * g->out_s2; \
            CPU_L2_ACC_##kind a = g->op == FK_L2_CUMSUM ? 0 : 1;                          \
            for (int64_t l = 0; l < g->len; l++) {                                        \
                CPU_L2_ACC_##kind v = CPU_L2_LD_##kind(sfx, x[l * g->in_s1]);             \
                a = g->op == FK_L2_CUMSUM ? a + v : a * v;                                \
                if (g->op != FK_L2_PROD)                                                  \
                    y[l * g->out_s1] = CPU_L2_ST_##kind(sfx, a);                          \
            }                                                                             \
            if (g->op == FK_L2_PROD)                                                      \
                y[0] = CPU_L2_ST_##kind(sfx, a);                                          \
        }                                                                                 \
    }
CPU_L2_DTYPES(CPU_L2_SCAN)

/* Softmax of one line: max (NaN wins), sum of exp(x - max), outputs. The dense float32
 * line keeps its exponentials in the output between the passes, one read of the input
 * fewer. */
#define CPU_L2_SOFTMAX(sfx, st, vt, EXP, LOG)                                             \
    static void cpu_l2_softmax_##sfx(const fk_lgeom *g, void *outp, const void *inp,      \
                                     int64_t j0, int64_t j1)                              \
    {                                                                                     \
        st *out = outp;                                                                   \
        const st *in = inp;                                                               \
        for (int64_t j = j0; j < j1; j++) {                                               \
            int64_t o = j / g->inner, i = j - o * g->inner;                               \
            const st *x = in + g->in_offset + o * g->in_s0 + i * g->in_s2;                \
            st *y = out + g->out_offset + o * g->out_s0 + i * g->out_s2;                  \
            int64_t n = g->len, sx = g->in_s1, sy = g->out_s1;                            \
            vt m = CPU_LD_##sfx(x[0]);                                                    \
            for (int64_t l = 1; l < n; l++) {                                             \
                vt v = CPU_LD_##sfx(x[l * sx]);                                           \
                if (v != v || v > m)                                                      \
                    m = m != m ? m : v;                                                   \
            }                                                                             \
            vt s = 0;                                                                     \
            for (int64_t l = 0; l < n; l++)                                               \
                s += EXP(CPU_LD_##sfx(x[l * sx]) - m);                                    \
            vt ls = LOG(s), r = 1 / s;                                                    \
            if (g->op == FK_L2_SOFTMAX)                                                   \
                for (int64_t l = 0; l < n; l++)                                           \
                    y[l * sy] = CPU_ST_##sfx(EXP(CPU_LD_##sfx(x[l * sx]) - m) * r);       \
            else                                                                          \
                for (int64_t l = 0; l < n; l++)                                           \
                    y[l * sy] = CPU_ST_##sfx(CPU_LD_##sfx(x[l * sx]) - m - ls);           \
        }                                                                                 \
    }
CPU_L2_SOFTMAX(f16, uint16_t, float, expf, logf)
CPU_L2_SOFTMAX(bf16, uint16_t, float, expf, logf)
CPU_L2_SOFTMAX(f32, float, float, expf, logf)
CPU_L2_SOFTMAX(f64, double, double, exp, log)

/* Dense float32 rows (the common case: softmax over the last dim). */
static void cpu_l2_softmax_rows_f32(const fk_lgeom *g, void *outp, const void *inp, int64_t j0,
                                    int64_t j1)
{
    float *out = outp;
    const float *in = inp;
    int64_t n = g->len;
    for (int64_t j = j0; j < j1; j++) {
        const float *x = in + g->in_offset + j * g->in_s0;
        float *y = out + g->out_offset + j * g->out_s0;
        float m = x[0];
        bool nan = false;
        for (int64_t l = 1; l < n; l++) {
            nan |= x[l] != x[l];
            m = x[l] > m ? x[l] : m;
        }
        if (nan || m != m)
            m = NAN;
        float s = 0;
        for (int64_t l = 0; l < n; l++) {
            float e = expf(x[l] - m);
            y[l] = e;
            s += e;
        }
        if (g->op == FK_L2_SOFTMAX) {
            float r = 1 / s;
            for (int64_t l = 0; l < n; l++)
                y[l] *= r;
        } else {
            float ls = logf(s);
            for (int64_t l = 0; l < n; l++)
                y[l] = x[l] - m - ls;
        }
    }
}

typedef void (*cpu_l2_fn)(const fk_lgeom *, void *, const void *, int64_t, int64_t);

#define CPU_L2_SCAN_FN(sfx, st, kind) cpu_l2_scan_##sfx,
static const cpu_l2_fn cpu_l2_scans[FERRY_NUM_DTYPES] = {CPU_L2_DTYPES(CPU_L2_SCAN_FN)};
static const cpu_l2_fn cpu_l2_softmaxes[FERRY_NUM_DTYPES] = {
    [FERRY_FLOAT16] = cpu_l2_softmax_f16, [FERRY_BFLOAT16] = cpu_l2_softmax_bf16,
    [FERRY_FLOAT32] = cpu_l2_softmax_f32, [FERRY_FLOAT64] = cpu_l2_softmax_f64};

static ferry_status cpu_l2_run(const char *name, const ferry_op_args *args)
{
    fk_lgeom g;
    if (fk_l2_geom(&g, fk_l2_op_of(name), args) != 0)
        return cpu_host->error(FERRY_ERR_UNSUPPORTED, "cpu: %s: operands not as ferry/ops/reduce2.h "
                                                      "describes",
                               name);
    const ferry_kernel_tensor *out = &args->tensors[0], *in = &args->tensors[1];
    int64_t lines = g.outer * g.inner;
    if (lines == 0 || (g.len == 0 && g.op != FK_L2_PROD))
        return FERRY_OK;
    cpu_l2_fn fn = g.op >= FK_L2_SOFTMAX ? cpu_l2_softmaxes[in->dtype] : cpu_l2_scans[in->dtype];
    if (in->dtype == FERRY_FLOAT32 && g.op >= FK_L2_SOFTMAX && g.inner == 1 && g.in_s1 == 1 &&
        g.out_s1 == 1)
        fn = cpu_l2_softmax_rows_f32;
    void *o = (char *)out->buffer, *i = (char *)in->buffer;
    int nt = cpu_threads_for(lines * (g.len > 0 ? g.len : 1), 32768);
    if (nt > lines)
        nt = (int)lines;
    if (nt <= 1) {
        fn(&g, o, i, 0, lines);
        return FERRY_OK;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        int64_t b = lines * t / nt, e = lines * (t + 1) / nt;
        fn(&g, o, i, b, e);
    }
    return FERRY_OK;
}

#define CPU_L2_ENTRY(fn, NAME)                                                            \
    static ferry_status fn(int32_t device, const ferry_op_args *args)                     \
    {                                                                                     \
        (void)device;                                                                     \
        return cpu_l2_run(NAME, args);                                                    \
    }
CPU_L2_ENTRY(cpu_l2_prod, FERRY_OP_PROD)
CPU_L2_ENTRY(cpu_l2_cumsum, FERRY_OP_CUMSUM)
CPU_L2_ENTRY(cpu_l2_cumprod, FERRY_OP_CUMPROD)
CPU_L2_ENTRY(cpu_l2_softmax, FERRY_OP_SOFTMAX)
CPU_L2_ENTRY(cpu_l2_log_softmax, FERRY_OP_LOG_SOFTMAX)

const ferry_named_entry cpu_named_reduce2[] = {
    {FERRY_OP_PROD, cpu_l2_prod},
    {FERRY_OP_CUMSUM, cpu_l2_cumsum},
    {FERRY_OP_CUMPROD, cpu_l2_cumprod},
    {FERRY_OP_SOFTMAX, cpu_l2_softmax},
    {FERRY_OP_LOG_SOFTMAX, cpu_l2_log_softmax},
    {NULL, NULL},
};

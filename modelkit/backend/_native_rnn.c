/* Fused LSTM and GRU steps for rnn_ops/lstm.py and gru.py (through modelkit/backend/
   native.py): each step's recurrent GEMM with the gate arithmetic done on its results while
   they are in L1 (AVX-512 intrinsics, x86-64 with GCC, the conditions of _native.c's AVX-512
   kernels: `modelkit_avx512_available` says whether they run here).

   LSTM forward, step t: z = h_t R + z_t (z_t: the input projection and bias, i, f, o
   halved as R's columns are), i, f, o = sigmoid(2 z), g = tanh(z), c' = f c + i g,
   h' = o tanh(c') (or, for hard sigmoid gates, unhalved z and the gates clip(slope z + 0.5,
   0, 1); the cell's tanh may be a sigmoid instead). Backward: the gate gradients from dh'
   and dc' (the arithmetic of _native.c's modelkit_lstm_bptt_step), then dh = dz R^T.
   GRU (reset_after, sigmoid gates, tanh candidate) forward: rec = h_t R + b_rec (z and r
   columns halved), z, r = sigmoid(2 (x + rec)), rh = rec_h, hh = tanh(x_h + r rh),
   h' = hh + z (h - hh). Backward: the gate gradients of _native.c's
   modelkit_gru_bptt_step, then dh = e z + drec R^T.
   GRU without reset_after: rec = h_t R_zr, z, r as above, q = r h, hh = tanh(x_h + q R_h)
   (a second GEMM on the block's rows), h' as above. Backward: dq = d hh R_h^T first, then
   dh = e z + dq r + (dz, dr) R_zr^T.
   With recurrent dropout each gate's GEMM takes h times its mask (h rd_g, kept for the
   weight gradient) and the backward's dh sums (dz_g R_g^T) rd_g. A masked sequence (keep:
   0 where a row's step is masked) has its masked rows keep their states after a step, and
   in the backward pass their state gradients pass the step by, their gate gradients 0.
   Batch rows are independent in both, so a block of rows goes through a whole step at a
   time: register blocks of 6 (LSTM) or 8 (GRU) rows by the gates' 4 or 3 vectors of 16
   units (24 accumulators), and 6 rows by 64 columns for dz R^T, the weights packed once a
   sequence into the order the blocks read them.

   Unlike the element-wise kernels of _native.c these are not numpy's numbers bit for bit:
   the GEMMs sum in their own order with fused multiply-adds, and tanh and sigmoid are this
   file's own (`v_tanh`, `v_sigmoid_of_half`: 1.3 and 2 ulp at most against float64).
   Tests compare them with float64. */

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define RNN_AVX512 1
#include <immintrin.h>
#include <stdlib.h>
#endif

#define RNN_ROWS 8   /* the most batch rows of a register block */
#define RNN_COLS 64  /* columns of dz R^T's register block: 4 vectors */

/* rp[jb][k][gate][16] = r[k][gate * U + 16 jb + l] (0 past U): a forward's recurrent kernel
   r (U, G U) by blocks of 16 units, the G gates' columns of each side by side. rp holds
   ceil(U / 16) * U * 16 G values. */
void modelkit_rnn_pack_forward(const float *restrict r, int64_t U, int64_t G,
                               float *restrict rp) {
    const int64_t nb = (U + 15) / 16;
    for (int64_t jb = 0; jb < nb; jb++)
        for (int64_t k = 0; k < U; k++)
            for (int64_t g = 0; g < G; g++)
                for (int64_t l = 0; l < 16; l++) {
                    const int64_t j = jb * 16 + l;
                    rp[((jb * U + k) * G + g) * 16 + l] = j < U ? r[k * G * U + g * U + j] : 0.0f;
                }
}

/* rtp[cb][k][l] = r[64 cb + l][k] (0 past U): the backward's r^T (G U, U) by blocks of 64
   columns. rtp holds ceil(U / 64) * G U * 64 values. */
void modelkit_rnn_pack_backward(const float *restrict r, int64_t U, int64_t G,
                                float *restrict rtp) {
    const int64_t nb = (U + RNN_COLS - 1) / RNN_COLS, K = G * U;
    for (int64_t cb = 0; cb < nb; cb++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t l = 0; l < RNN_COLS; l++) {
                const int64_t j = cb * RNN_COLS + l;
                rtp[(cb * K + k) * RNN_COLS + l] = j < U ? r[j * K + k] : 0.0f;
            }
}

#ifdef RNN_AVX512

#define INLINE static inline __attribute__((always_inline, target("avx512f")))

INLINE __m512 v_or_sign(__m512 t, __m512 x) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t),
                                               _mm512_and_si512(_mm512_castps_si512(x), sign)));
}

/* exp(y) for |y| <= 104: 2^n p(r), r = y - n ln 2 (Cody-Waite), p a degree-6 fit on
   [-ln2/2, ln2/2] (1 ulp); NaN stays NaN. */
INLINE __m512 v_exp(__m512 y) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), y);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-06f), r);
    __m512 p = _mm512_set1_ps(0.00138295f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.00837477f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.04166836f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.16666421f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.4999999f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* tanh, 1.3 ulp at most against float64 (NaN stays NaN, the sign of 0 kept):
   |x| < 0.625: |x| + |x|^3 q(x^2), q fitted (relative error weighted) on [0, 0.39];
   else 1 - 2 / (exp(2 |x|) + 1), |x| clamped at 9.1 (where tanh is 1 in float32). */
INLINE __m512 v_tanh(__m512 x) {
    const __m512 a = _mm512_abs_ps(x);
    const __m512 u = _mm512_mul_ps(a, a);
    __m512 q = _mm512_set1_ps(-0.00570422f);
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(0.02063804f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.05373922f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(0.13331433f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.3333328f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(a, u), q, a);
    const __m512 clamped = _mm512_min_ps(_mm512_set1_ps(9.1f), a);   /* NaN stays */
    const __m512 e = v_exp(_mm512_add_ps(clamped, clamped));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f),
                                                         _mm512_add_ps(e, one)));
    const __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return v_or_sign(_mm512_mask_blend_ps(is_small, large, small), x);
}

/* sigmoid(2 x) = 1 / (1 + exp(-2 x)) (x: a sigmoid gate's halved pre-activation), 2 ulp
   at most against float64; NaN stays NaN. */
INLINE __m512 v_sigmoid_of_half(__m512 x) {
    __m512 y = _mm512_mul_ps(x, _mm512_set1_ps(-2.0f));
    y = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(104.0f), y));
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, v_exp(y)));
}

/* A gate's value from its pre-activation x: sigmoid (slope 0: x is halved, see the
   header), or the hard sigmoid clip(slope x + 0.5, 0, 1) rounded as numpy's steps (a
   product, then a sum); NaN stays NaN. */
INLINE __m512 v_gate(__m512 x, float slope) {
    if (slope == 0.0f)
        return v_sigmoid_of_half(x);
    const __m512 y = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(slope)),
                                   _mm512_set1_ps(0.5f));
    return _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_setzero_ps(), y));
}

/* The gate's derivative from its value y: y (1 - y) for the sigmoid, the slope where
   0 < y < 1 (else 0) for the hard sigmoid. */
INLINE __m512 v_gate_grad(__m512 y, float slope) {
    const __m512 one = _mm512_set1_ps(1.0f);
    if (slope == 0.0f)
        return _mm512_mul_ps(_mm512_sub_ps(one, y), y);
    const __mmask16 inside = _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ) &
                             _mm512_cmp_ps_mask(y, one, _CMP_LT_OQ);
    return _mm512_maskz_mov_ps(inside, _mm512_set1_ps(slope));
}

/* A cell's activations: its gates' (gate_slope: 0 for sigmoid, else a hard sigmoid's
   slope) and its candidate's and output's (tanh, or sigmoid with sigmoid_cell). */
typedef struct {
    float gate_slope;
    int sigmoid_cell;
} rnn_acts;

/* The cell activation of x: tanh, or sigmoid (1 / (1 + exp(-x)), 2 ulp at most). */
INLINE __m512 v_cell(__m512 x, int sigmoid_cell) {
    return sigmoid_cell ? v_sigmoid_of_half(_mm512_mul_ps(x, _mm512_set1_ps(0.5f))) : v_tanh(x);
}

/* The cell activation's derivative from its value y: 1 - y y (tanh) or y (1 - y). */
INLINE __m512 v_cell_grad(__m512 y, int sigmoid_cell) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return sigmoid_cell ? _mm512_mul_ps(_mm512_sub_ps(one, y), y) : _mm512_fnmadd_ps(y, y, one);
}

/* acc[r][q] = sum_k a_q[r][k] b[k][16 q + l] for `rows` rows of a_q (lda apart) and the
   packed panel b of `nv` vectors a row (k rows): a_q = a, or with `per_gate` a + q a_gate
   (one operand a gate: the recurrent dropout's h rd_q). `rows`, `nv` and `per_gate` are
   constants where this is inlined (a branch in the k loop halved the GEMM's speed). */
INLINE void panel_gemm(const float *restrict a, int64_t lda, int64_t a_gate, int rows,
                       const float *restrict b, int64_t k, int nv, __m512 acc[RNN_ROWS][4],
                       int per_gate) {
    for (int r = 0; r < RNN_ROWS; r++)
        for (int q = 0; q < 4; q++)
            acc[r][q] = _mm512_setzero_ps();
    for (int64_t p = 0; p < k; p++) {
        const float *bk = b + p * 16 * nv;
        __m512 bv[4];
        for (int q = 0; q < nv; q++)
            bv[q] = _mm512_loadu_ps(bk + 16 * q);
        for (int r = 0; r < RNN_ROWS; r++)
            if (r < rows) {
                if (per_gate) {
                    for (int q = 0; q < nv; q++)
                        acc[r][q] = _mm512_fmadd_ps(_mm512_set1_ps(a[q * a_gate + r * lda + p]),
                                                    bv[q], acc[r][q]);
                } else {
                    const __m512 x = _mm512_set1_ps(a[r * lda + p]);
                    for (int q = 0; q < nv; q++)
                        acc[r][q] = _mm512_fmadd_ps(x, bv[q], acc[r][q]);
                }
            }
    }
}

/* out's `rows` rows (U values, U apart) = (add ? out : 0) + a's rows (K = G U values, lda
   apart) @ the packed r^T (modelkit_rnn_pack_backward); with the recurrent dropout's masks
   rd (G planes `rd_gate` apart, rows U apart) each gate's part a_g r_g^T times rd_g, added
   gate by gate. `tail`: the lanes of the last vector. */
INLINE void rows_times_rt(const float *restrict a, int64_t lda, int rows,
                          const float *restrict rtp, int64_t K, int64_t U, __mmask16 tail,
                          float *restrict out, int add, const float *restrict rd,
                          int64_t rd_gate) {
    const int64_t nb = (U + RNN_COLS - 1) / RNN_COLS, G = K / U;
    for (int64_t cb = 0; cb < nb; cb++)
        for (int64_t g = 0; g < (rd ? G : 1); g++) {
            __m512 acc[RNN_ROWS][4];
            const int64_t k0 = rd ? g * U : 0;
            panel_gemm(a + k0, lda, 0, rows, rtp + (cb * K + k0) * RNN_COLS, rd ? U : K, 4, acc,
                       0);
            for (int r = 0; r < RNN_ROWS; r++)
                if (r < rows)
                    for (int q = 0; q < 4; q++) {
                        const int64_t j = cb * RNN_COLS + q * 16;
                        if (j >= U)
                            break;
                        const __mmask16 m = U - j >= 16 ? (__mmask16)0xFFFF : tail;
                        float *o = out + r * U + j;
                        __m512 v = acc[r][q];
                        if (rd)
                            v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, rd + g * rd_gate +
                                                                          r * U + j));
                        _mm512_mask_storeu_ps(o, m, add || g ? _mm512_add_ps(
                                                  _mm512_maskz_loadu_ps(m, o), v) : v);
                    }
        }
}

/* The step's GEMM for `rows` rows of h (or of the dropped h, one plane a gate `h_gate`
   apart) into `pre` (rows x G x 16 nb values, in L1), block by block of 16 units: in the
   GEMM's registers the gate arithmetic spilled. */
INLINE void forward_gemm(const float *restrict h, int64_t h_gate, int rows,
                         const float *restrict rp, int64_t U, int G, float *restrict pre) {
    const int64_t nb = (U + 15) / 16;
    for (int64_t jb = 0; jb < nb; jb++) {
        __m512 acc[RNN_ROWS][4];
        if (h_gate)
            panel_gemm(h, U, h_gate, rows, rp + jb * U * 16 * G, U, G, acc, 1);
        else
            panel_gemm(h, U, 0, rows, rp + jb * U * 16 * G, U, G, acc, 0);
        for (int r = 0; r < RNN_ROWS; r++)
            if (r < rows)
                for (int g = 0; g < G; g++)
                    _mm512_storeu_ps(pre + ((r * nb + jb) * G + g) * 16, acc[r][g]);
    }
}

/* One LSTM forward step for batch rows [b0, b0 + rows): see the file's header; the GEMM
   reads `a` (h's rows, or h rd's, `a_gate` apart). `n` = B U (the gate blocks' distance in
   z), `tail` the lanes of the last unit block. */
INLINE void lstm_forward_rows(const float *restrict rp, float *restrict z,
                              const float *restrict c,
                              float *restrict c_new, float *restrict ac, float *restrict h_new,
                              int64_t b0, int rows, int64_t n, int64_t U, __mmask16 tail,
                              float *restrict pre, const float *restrict a, int64_t a_gate,
                              rnn_acts act) {
    const int64_t nb = (U + 15) / 16;
    forward_gemm(a, a_gate, rows, rp, U, 4, pre);
    for (int r = 0; r < rows; r++)
        for (int64_t jb = 0; jb < nb; jb++) {
            const __mmask16 m = jb == nb - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = (b0 + r) * U + jb * 16;
            const float *pr = pre + (r * nb + jb) * 64;
            __m512 t[4];
            for (int g = 0; g < 4; g++) {
                const __m512 x = _mm512_add_ps(_mm512_loadu_ps(pr + g * 16),
                                               _mm512_maskz_loadu_ps(m, z + g * n + e));
                t[g] = g < 3 ? v_gate(x, act.gate_slope) : v_cell(x, act.sigmoid_cell);
                _mm512_mask_storeu_ps(z + g * n + e, m, t[g]);
            }
            const __m512 cn = _mm512_fmadd_ps(t[1], _mm512_maskz_loadu_ps(m, c + e),
                                              _mm512_mul_ps(t[0], t[3]));
            const __m512 a = v_cell(cn, act.sigmoid_cell);
            _mm512_mask_storeu_ps(c_new + e, m, cn);
            _mm512_mask_storeu_ps(ac + e, m, a);
            _mm512_mask_storeu_ps(h_new + e, m, _mm512_mul_ps(t[2], a));
        }
}

/* One LSTM backward step for batch rows [b0, b0 + rows): the gate gradients into dz's
   rows (B, 4U) and dc, then dh's rows = those dz rows @ r^T. g: the step's output gradient
   rows (added to dh first; `gstride` apart) or NULL. */
INLINE void lstm_backward_rows(const float *restrict rtp, const float *restrict z,
                          const float *restrict ac, const float *restrict c,
                          const float *restrict g, int64_t gstride, float *restrict dh,
                          float *restrict dc, float *restrict dz, int64_t b0, int rows,
                          int64_t n, int64_t U, __mmask16 tail, const float *restrict rd,
                          rnn_acts act) {
    const int64_t nv = (U + 15) / 16, K = 4 * U;
    for (int r = 0; r < rows; r++) {
        const int64_t b = b0 + r;
        float *row = dz + b * K;
        for (int64_t v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = b * U + v * 16, j = v * 16;
            const __m512 i = _mm512_maskz_loadu_ps(m, z + e);
            const __m512 f = _mm512_maskz_loadu_ps(m, z + n + e);
            const __m512 o = _mm512_maskz_loadu_ps(m, z + 2 * n + e);
            const __m512 gg = _mm512_maskz_loadu_ps(m, z + 3 * n + e);
            const __m512 a = _mm512_maskz_loadu_ps(m, ac + e);
            __m512 hv = _mm512_maskz_loadu_ps(m, dh + e);
            if (g)
                hv = _mm512_add_ps(hv, _mm512_maskz_loadu_ps(m, g + b * gstride + j));
            const __m512 d_o = _mm512_mul_ps(hv, a);
            const __m512 t = _mm512_mul_ps(_mm512_mul_ps(hv, o), v_cell_grad(a, act.sigmoid_cell));
            const __m512 d_c = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dc + e), t);
            _mm512_mask_storeu_ps(dc + e, m, _mm512_mul_ps(d_c, f));
            const __m512 d_i = _mm512_mul_ps(d_c, gg);
            const __m512 d_f = _mm512_mul_ps(d_c, _mm512_maskz_loadu_ps(m, c + e));
            const __m512 d_g = _mm512_mul_ps(d_c, i);
            const float k = act.gate_slope;
            _mm512_mask_storeu_ps(row + j, m, _mm512_mul_ps(d_i, v_gate_grad(i, k)));
            _mm512_mask_storeu_ps(row + U + j, m, _mm512_mul_ps(d_f, v_gate_grad(f, k)));
            _mm512_mask_storeu_ps(row + 2 * U + j, m, _mm512_mul_ps(d_o, v_gate_grad(o, k)));
            _mm512_mask_storeu_ps(row + 3 * U + j, m,
                                  _mm512_mul_ps(d_g, v_cell_grad(gg, act.sigmoid_cell)));
        }
    }
    rows_times_rt(dz + b0 * K, K, rows, rtp, K, U, tail, dh + b0 * U, 0, rd ? rd + b0 * U : 0,
                  n);
}

/* One GRU forward step for batch rows [b0, b0 + rows): z (3, B, U) from the input
   projections (z and r halved) to the gate values z, r, hh; rh (B, U) = h R_h + b_rh;
   h_new. brec: the recurrent bias (3U, z and r halved) or NULL. */
INLINE void gru_forward_rows(const float *restrict rp, const float *restrict brec,
                             float *restrict z, const float *restrict h, float *restrict rh,
                             float *restrict h_new, int64_t b0, int rows, int64_t n, int64_t U,
                             __mmask16 tail, float *restrict pre, const float *restrict a,
                             int64_t a_gate, rnn_acts act) {
    const int64_t nb = (U + 15) / 16;
    forward_gemm(a, a_gate, rows, rp, U, 3, pre);
    for (int r = 0; r < rows; r++)
        for (int64_t jb = 0; jb < nb; jb++) {
            const __mmask16 m = jb == nb - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = (b0 + r) * U + jb * 16, j = jb * 16;
            const float *pr = pre + (r * nb + jb) * 48;
            __m512 rec[3];
            for (int g = 0; g < 3; g++) {
                rec[g] = _mm512_loadu_ps(pr + g * 16);
                if (brec)
                    rec[g] = _mm512_add_ps(rec[g], _mm512_maskz_loadu_ps(m, brec + g * U + j));
            }
            const __m512 zg = v_gate(_mm512_add_ps(_mm512_maskz_loadu_ps(m, z + e), rec[0]),
                                     act.gate_slope);
            const __m512 rg = v_gate(_mm512_add_ps(_mm512_maskz_loadu_ps(m, z + n + e),
                                                   rec[1]), act.gate_slope);
            const __m512 hh = v_cell(_mm512_fmadd_ps(rg, rec[2],
                                                     _mm512_maskz_loadu_ps(m, z + 2 * n + e)),
                                     act.sigmoid_cell);
            const __m512 hv = _mm512_maskz_loadu_ps(m, h + e);
            _mm512_mask_storeu_ps(z + e, m, zg);
            _mm512_mask_storeu_ps(z + n + e, m, rg);
            _mm512_mask_storeu_ps(z + 2 * n + e, m, hh);
            _mm512_mask_storeu_ps(rh + e, m, rec[2]);
            _mm512_mask_storeu_ps(h_new + e, m, _mm512_fmadd_ps(zg, _mm512_sub_ps(hv, hh), hh));
        }
}

/* One GRU backward step for batch rows [b0, b0 + rows): from the gate values z (3, B, U),
   the previous state h, rh and dh' (dh's rows, plus g's when given), the gate gradients into
   dz's and drec's rows (B, 3U: d z, d r, then d hh or d hh r) and dh's rows = dh' z +
   drec @ r^T. */
INLINE void gru_backward_rows(const float *restrict rtp, const float *restrict z,
                              const float *restrict h, const float *restrict rh,
                              const float *restrict g, int64_t gstride, float *restrict dh,
                              float *restrict dz, float *restrict drec, int64_t b0, int rows,
                              int64_t n, int64_t U, __mmask16 tail, const float *restrict rd,
                              rnn_acts act) {
    const int64_t nv = (U + 15) / 16, K = 3 * U;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int r = 0; r < rows; r++) {
        const int64_t b = b0 + r;
        float *dzr = dz + b * K, *drr = drec + b * K;
        for (int64_t v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = b * U + v * 16, j = v * 16;
            const __m512 zg = _mm512_maskz_loadu_ps(m, z + e);
            const __m512 rg = _mm512_maskz_loadu_ps(m, z + n + e);
            const __m512 hh = _mm512_maskz_loadu_ps(m, z + 2 * n + e);
            __m512 ev = _mm512_maskz_loadu_ps(m, dh + e);
            if (g)
                ev = _mm512_add_ps(ev, _mm512_maskz_loadu_ps(m, g + b * gstride + j));
            _mm512_mask_storeu_ps(dh + e, m, _mm512_mul_ps(ev, zg));
            __m512 d_z = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, h + e), hh), ev);
            const __m512 d_hh = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(one, zg), ev),
                                              v_cell_grad(hh, act.sigmoid_cell));
            __m512 d_r = _mm512_mul_ps(d_hh, _mm512_maskz_loadu_ps(m, rh + e));
            d_z = _mm512_mul_ps(d_z, v_gate_grad(zg, act.gate_slope));
            d_r = _mm512_mul_ps(d_r, v_gate_grad(rg, act.gate_slope));
            _mm512_mask_storeu_ps(dzr + j, m, d_z);
            _mm512_mask_storeu_ps(dzr + U + j, m, d_r);
            _mm512_mask_storeu_ps(dzr + 2 * U + j, m, d_hh);
            _mm512_mask_storeu_ps(drr + j, m, d_z);
            _mm512_mask_storeu_ps(drr + U + j, m, d_r);
            _mm512_mask_storeu_ps(drr + 2 * U + j, m, _mm512_mul_ps(d_hh, rg));
        }
    }
    rows_times_rt(drec + b0 * K, K, rows, rtp, K, U, tail, dh + b0 * U, 1,
                  rd ? rd + b0 * U : 0, n);
}

/* One GRU step without reset_after for batch rows [b0, b0 + rows): rec = h R_zr (z and r
   columns halved for sigmoid gates; the GEMM reads `a`: h's rows, or h rd's, `a_gate`
   apart) makes z, r; q = r h (times rd_h, the candidate's recurrent dropout mask, or NULL),
   kept in q's rows for the weight gradient; hh = tanh(x_h + q R_h) and h_new = hh +
   z (h - hh). z (3, B, U): from the projections to the gate values z, r, hh. */
INLINE void gru_before_forward_rows(const float *restrict rp, const float *restrict rp_h,
                                    float *restrict z, const float *restrict h,
                                    float *restrict q, float *restrict h_new, int64_t b0,
                                    int rows, int64_t n, int64_t U, __mmask16 tail,
                                    float *restrict pre, const float *restrict a, int64_t a_gate,
                                    const float *restrict rd_h, rnn_acts act) {
    const int64_t nb = (U + 15) / 16;
    forward_gemm(a, a_gate, rows, rp, U, 2, pre);
    for (int r = 0; r < rows; r++)
        for (int64_t jb = 0; jb < nb; jb++) {
            const __mmask16 m = jb == nb - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = (b0 + r) * U + jb * 16;
            const float *pr = pre + (r * nb + jb) * 32;
            const __m512 zg = v_gate(_mm512_add_ps(_mm512_maskz_loadu_ps(m, z + e),
                                                   _mm512_loadu_ps(pr)), act.gate_slope);
            const __m512 rg = v_gate(_mm512_add_ps(_mm512_maskz_loadu_ps(m, z + n + e),
                                                   _mm512_loadu_ps(pr + 16)), act.gate_slope);
            __m512 qv = _mm512_mul_ps(rg, _mm512_maskz_loadu_ps(m, h + e));
            if (rd_h)
                qv = _mm512_mul_ps(qv, _mm512_maskz_loadu_ps(m, rd_h + e));
            _mm512_mask_storeu_ps(z + e, m, zg);
            _mm512_mask_storeu_ps(z + n + e, m, rg);
            _mm512_mask_storeu_ps(q + e, m, qv);
        }
    forward_gemm(q + b0 * U, 0, rows, rp_h, U, 1, pre);
    for (int r = 0; r < rows; r++)
        for (int64_t jb = 0; jb < nb; jb++) {
            const __mmask16 m = jb == nb - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = (b0 + r) * U + jb * 16;
            const __m512 hh = v_cell(_mm512_add_ps(_mm512_maskz_loadu_ps(m, z + 2 * n + e),
                                                   _mm512_loadu_ps(pre + (r * nb + jb) * 16)),
                                     act.sigmoid_cell);
            const __m512 zg = _mm512_maskz_loadu_ps(m, z + e);
            _mm512_mask_storeu_ps(z + 2 * n + e, m, hh);
            _mm512_mask_storeu_ps(h_new + e, m, _mm512_fmadd_ps(
                zg, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, h + e), hh), hh));
        }
}

/* One GRU backward step without reset_after for batch rows [b0, b0 + rows): from the gate
   values z (3, B, U), the previous state h and dh' (dh's rows, plus g's when given), the
   gate gradients into dz's rows (B, 3U: d z, d r, d hh) and dh's rows = dh' z + dq r
   (times rd_h) + (d z, d r) @ R_zr^T, where dq = d hh @ R_h^T (into `dq`, rows x U). rd:
   the recurrent dropout's masks (3, B, U: z, r, then the candidate's rd_h) or NULL. */
INLINE void gru_before_backward_rows(const float *restrict rtp, const float *restrict rtp_h,
                                     const float *restrict z, const float *restrict h,
                                     const float *restrict g, int64_t gstride,
                                     float *restrict dh, float *restrict dz, int64_t b0,
                                     int rows, int64_t n, int64_t U, __mmask16 tail,
                                     const float *restrict rd, rnn_acts act,
                                     float *restrict dq) {
    const int64_t nv = (U + 15) / 16, K = 3 * U;
    const __m512 one = _mm512_set1_ps(1.0f);
    const float *rd_h = rd ? rd + 2 * n : 0;
    for (int r = 0; r < rows; r++) {
        const int64_t b = b0 + r;
        float *dzr = dz + b * K;
        for (int64_t v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = b * U + v * 16, j = v * 16;
            const __m512 zg = _mm512_maskz_loadu_ps(m, z + e);
            const __m512 hh = _mm512_maskz_loadu_ps(m, z + 2 * n + e);
            __m512 ev = _mm512_maskz_loadu_ps(m, dh + e);
            if (g)
                ev = _mm512_add_ps(ev, _mm512_maskz_loadu_ps(m, g + b * gstride + j));
            _mm512_mask_storeu_ps(dh + e, m, _mm512_mul_ps(ev, zg));
            _mm512_mask_storeu_ps(dzr + j, m, _mm512_mul_ps(             /* d z, ungated */
                _mm512_sub_ps(_mm512_maskz_loadu_ps(m, h + e), hh), ev));
            _mm512_mask_storeu_ps(dzr + 2 * U + j, m, _mm512_mul_ps(      /* d hh */
                _mm512_mul_ps(_mm512_sub_ps(one, zg), ev), v_cell_grad(hh, act.sigmoid_cell)));
        }
    }
    rows_times_rt(dz + b0 * K + 2 * U, K, rows, rtp_h, U, U, tail, dq, 0, 0, 0);
    for (int r = 0; r < rows; r++) {
        const int64_t b = b0 + r;
        float *dzr = dz + b * K;
        for (int64_t v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = b * U + v * 16, j = v * 16;
            const __m512 zg = _mm512_maskz_loadu_ps(m, z + e);
            const __m512 rg = _mm512_maskz_loadu_ps(m, z + n + e);
            __m512 dqv = _mm512_maskz_loadu_ps(m, dq + r * U + j);
            __m512 hdh = _mm512_maskz_loadu_ps(m, h + e);
            if (rd_h)
                hdh = _mm512_mul_ps(hdh, _mm512_maskz_loadu_ps(m, rd_h + e));
            _mm512_mask_storeu_ps(dzr + U + j, m, _mm512_mul_ps(_mm512_mul_ps(dqv, hdh),
                                                               v_gate_grad(rg, act.gate_slope)));
            _mm512_mask_storeu_ps(dzr + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dzr + j),
                                                           v_gate_grad(zg, act.gate_slope)));
            dqv = _mm512_mul_ps(dqv, rg);
            if (rd_h)
                dqv = _mm512_mul_ps(dqv, _mm512_maskz_loadu_ps(m, rd_h + e));
            _mm512_mask_storeu_ps(dh + e, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dh + e),
                                                          dqv));
        }
    }
    rows_times_rt(dz + b0 * K, K, rows, rtp, 2 * U, U, tail, dh + b0 * U, 1,
                  rd ? rd + b0 * U : 0, n);
}

static __mmask16 tail_mask(int64_t U) {
    return U % 16 ? (__mmask16)((1u << (U % 16)) - 1) : (__mmask16)0xFFFF;
}

/* The row-count dispatch: `rows` a constant in each inlined copy. */
#define BY_ROWS(rows, CALL)                                                                  \
    switch (rows) {                                                                          \
    case 8: CALL(8); break;                                                                  \
    case 7: CALL(7); break;                                                                  \
    case 6: CALL(6); break;                                                                  \
    case 5: CALL(5); break;                                                                  \
    case 4: CALL(4); break;                                                                  \
    case 3: CALL(3); break;                                                                  \
    case 2: CALL(2); break;                                                                  \
    default: CALL(1); break;                                                                 \
    }

/* Each row block of `per` rows (the last one shorter) of a B-row step. */
#define ROW_BLOCKS(per, B, CALL)                                                             \
    for (int64_t b0 = 0; b0 < (B); b0 += (per)) {                                            \
        const int64_t rows = (B) - b0 < (per) ? (B) - b0 : (per);                            \
        BY_ROWS(rows, CALL)                                                                  \
    }

#define LSTM_ROWS 6
#define GRU_ROWS 8

/* One sequence's arrays (see the exported functions below); `gates` 4 (LSTM) or 3 (GRU). */
typedef struct {
    int gates;
    const float *rp, *brec;               /* forward: packed kernel, GRU recurrent bias */
    const float *rtp, *gseq;              /* backward: packed R^T, output gradient */
    const float *rp_h, *rtp_h;            /* GRU without reset_after: R_h's packs (rp, rtp:
                                             R_zr's) */
    float *q;                             /* ... and its r h (rd_h) per step, (T, B, U) */
    float *z, *h, *c, *ac, *rh;           /* c, ac: LSTM's; rh: GRU's */
    float *dh, *dc, *dz, *drec;           /* dc: LSTM's; drec: GRU's */
    const float *rd;                      /* the recurrent dropout's (G, B, U) masks, or NULL */
    float *hd;                            /* forward with rd: h rd per gate, (G, T, B, U) */
    const uint8_t *keep;                  /* (T, B): 0 where a step is masked, or NULL */
    rnn_acts act;                         /* the cell's activations */
    int64_t T, B, U;
} rnn_seq;

/* A masked sequence's step t after the forward rows: the masked rows keep their states
   (h and, for the LSTM, c row t + 1 = row t). */
static void keep_masked_states(const rnn_seq *s, int64_t t) {
    const int64_t B = s->B, U = s->U, n = B * U;
    for (int64_t b = 0; b < B; b++) {
        if (s->keep[t * B + b])
            continue;
        memcpy(s->h + (t + 1) * n + b * U, s->h + t * n + b * U, (size_t)U * sizeof(float));
        if (s->gates == 4)
            memcpy(s->c + (t + 1) * n + b * U, s->c + t * n + b * U, (size_t)U * sizeof(float));
    }
}

/* A masked sequence's backward step t: before the rows (`after` 0), the masked rows' state
   gradients are kept in `saved` (B, 2U); after them, they pass the step by (plus the
   output's gradient g, as the rows added it: the output there is the state) and the
   masked rows' gate gradients are zero. */
static void pass_masked_rows(const rnn_seq *s, int64_t t, const float *g, int64_t gstride,
                             float *dzt, float *drt, float *saved, int after) {
    const int64_t B = s->B, U = s->U, G = s->gates;
    for (int64_t b = 0; b < B; b++) {
        if (s->keep[t * B + b])
            continue;
        float *dh = s->dh + b * U, *dc = s->gates == 4 ? s->dc + b * U : 0;
        float *keep_h = saved + 2 * b * U, *keep_c = keep_h + U;
        if (!after) {
            memcpy(keep_h, dh, (size_t)U * sizeof(float));
            if (dc)
                memcpy(keep_c, dc, (size_t)U * sizeof(float));
            continue;
        }
        for (int64_t j = 0; j < U; j++)
            dh[j] = g ? keep_h[j] + g[b * gstride + j] : keep_h[j];
        if (dc)
            memcpy(dc, keep_c, (size_t)U * sizeof(float));
        memset(dzt + b * G * U, 0, (size_t)(G * U) * sizeof(float));
        if (drt)
            memset(drt + b * G * U, 0, (size_t)(G * U) * sizeof(float));
    }
}

/* hd[g] = h rd[g] for the G planes (n values each) of rd and of hd (`hd_gate` apart). */
INLINE void drop_h(const float *restrict h, const float *restrict rd, float *restrict hd,
                   int64_t G, int64_t n, int64_t hd_gate) {
    for (int64_t g = 0; g < G; g++)
        for (int64_t e = 0; e < n; e++)
            hd[g * hd_gate + e] = h[e] * rd[g * n + e];
}

static __attribute__((target("avx512f"))) int forward_steps(const rnn_seq *s, int64_t t0,
                                                            int64_t t1) {
    const int64_t B = s->B, U = s->U, n = B * U;
    const __mmask16 tail = tail_mask(U);
    float *pre = malloc((size_t)(LSTM_ROWS * 64 * ((U + 15) / 16)) * sizeof(float));
    if (!pre)                             /* (GRU_ROWS * 48 the same) */
        return -1;
    for (int64_t t = t0; t < t1; t++) {
        float *zt = s->z + t * s->gates * n, *hn = s->h + (t + 1) * n;
        const float *ht = s->h + t * n, *a = ht;      /* the GEMM's operand */
        const int64_t a_gate = s->rd ? s->T * n : 0;
        if (s->rd) {                      /* (without reset_after: z and r only) */
            drop_h(ht, s->rd, s->hd + t * n, s->rp_h ? 2 : s->gates, n, a_gate);
            a = s->hd + t * n;
        }
        if (s->gates == 4) {
            const float *ct = s->c + t * n;
            float *cn = s->c + (t + 1) * n, *at = s->ac + t * n;
#define FORWARD(R) lstm_forward_rows(s->rp, zt, ct, cn, at, hn, b0, R, n, U, tail, pre, \
                                     a + b0 * U, a_gate, s->act)
            ROW_BLOCKS(LSTM_ROWS, B, FORWARD)
#undef FORWARD
        } else if (s->rp_h) {
            float *qt = s->q + t * n;
            const float *rd_h = s->rd ? s->rd + 2 * n : 0;
#define FORWARD(R) gru_before_forward_rows(s->rp, s->rp_h, zt, ht, qt, hn, b0, R, n, U, tail, \
                                           pre, a + b0 * U, a_gate, rd_h, s->act)
            ROW_BLOCKS(GRU_ROWS, B, FORWARD)
#undef FORWARD
        } else {
            float *rt = s->rh + t * n;
#define FORWARD(R) gru_forward_rows(s->rp, s->brec, zt, ht, rt, hn, b0, R, n, U, tail, pre, \
                                    a + b0 * U, a_gate, s->act)
            ROW_BLOCKS(GRU_ROWS, B, FORWARD)
#undef FORWARD
        }
        if (s->keep)
            keep_masked_states(s, t);
    }
    free(pre);
    return 0;
}

static __attribute__((target("avx512f"))) int backward_steps(const rnn_seq *s, int64_t t0,
                                                             int64_t t1) {
    const int64_t B = s->B, U = s->U, n = B * U, G = s->gates, gstride = s->T * U;
    const __mmask16 tail = tail_mask(U);
    float *saved = s->keep ? malloc((size_t)(2 * n) * sizeof(float)) : 0;
    float *dq = s->rtp_h ? malloc((size_t)(RNN_ROWS * U) * sizeof(float)) : 0;
    if ((s->keep && !saved) || (s->rtp_h && !dq)) {
        free(saved);
        free(dq);
        return -1;
    }
    for (int64_t t = t1 - 1; t >= t0; t--) {
        const float *zt = s->z + t * G * n, *g = s->gseq ? s->gseq + t * U : 0;
        float *dzt = s->dz + t * G * n, *drt = s->drec ? s->drec + t * G * n : 0;
        if (saved)
            pass_masked_rows(s, t, g, gstride, dzt, drt, saved, 0);
        if (G == 4) {
            const float *at = s->ac + t * n, *ct = s->c + t * n;
#define BACKWARD(R) lstm_backward_rows(s->rtp, zt, at, ct, g, gstride, s->dh, s->dc, dzt, b0, \
                                       R, n, U, tail, s->rd, s->act)
            ROW_BLOCKS(6, B, BACKWARD)
#undef BACKWARD
        } else if (s->rtp_h) {
            const float *ht = s->h + t * n;
#define BACKWARD(R) gru_before_backward_rows(s->rtp, s->rtp_h, zt, ht, g, gstride, s->dh, dzt, \
                                             b0, R, n, U, tail, s->rd, s->act, dq)
            ROW_BLOCKS(6, B, BACKWARD)
#undef BACKWARD
        } else {
            const float *ht = s->h + t * n, *rt = s->rh + t * n;
#define BACKWARD(R) gru_backward_rows(s->rtp, zt, ht, rt, g, gstride, s->dh, dzt, drt, b0, R, \
                                      n, U, tail, s->rd, s->act)
            ROW_BLOCKS(6, B, BACKWARD)
#undef BACKWARD
        }
        if (saved)
            pass_masked_rows(s, t, g, gstride, dzt, drt, saved, 1);
    }
    free(saved);
    free(dq);
    return 0;
}

#endif

/* The body of an exported steps function: its arguments as a sequence (rnn_seq's fields)
   through forward_steps or backward_steps; -1 without an AVX-512 build. */
#ifdef RNN_AVX512
#define RUN_STEPS(steps, ...)                                                                \
    do {                                                                                     \
        const rnn_seq s = {__VA_ARGS__};                                                     \
        return steps(&s, t0, t1);                                                            \
    } while (0)
#else
#define RUN_STEPS(steps, ...) return -1
#endif

/* LSTM forward steps [t0, t1) of a sequence: z (T, 4, B, U) holds each step's projection
   and is turned into its gate values; h, c (T + 1, B, U): step t reads row t and writes
   t + 1; ac (T, B, U) gets tanh(c'). rp: modelkit_rnn_pack_forward of the (halved)
   recurrent kernel, G = 4. With the recurrent dropout's masks rd (4, B, U) the GEMM takes
   h rd per gate, written to hd (4, T, B, U); else rd and hd are NULL. keep (T, B): 0 where
   a step of a row is masked (its h and c stay the previous step's), or NULL. gate_slope: 0
   for sigmoid gates (i, f, o halved in z and rp), else the hard sigmoid's slope (nothing
   halved); sigmoid_cell: the cell's candidate and output activation sigmoid instead of
   tanh. Returns 0, or -1 when its buffer could not be allocated. */
int modelkit_lstm_forward_steps(const float *rp, float *z, float *h, float *c, float *ac,
                                const float *rd, float *hd, const uint8_t *keep,
                                float gate_slope, int sigmoid_cell, int64_t T, int64_t t0,
                                int64_t t1, int64_t B, int64_t U) {
    RUN_STEPS(forward_steps, .gates = 4, .rp = rp, .z = z, .h = h, .c = c, .ac = ac, .rd = rd,
              .hd = hd, .keep = keep, .act = {gate_slope, sigmoid_cell}, .T = T, .B = B,
              .U = U);
}

/* LSTM backward steps t1 - 1 down to t0 of a sequence (gate values z (T, 4, B, U),
   ac (T, B, U), c (T + 1, B, U)): dh, dc (B, U) come in as d h_{t1}, d c_{t1} and leave as
   d h_{t0}, d c_{t0}; dz (T, B, 4U) gets each step's gate gradients. gseq: the output
   sequence's gradient (B, T, U), added to dh at each step, or NULL. rtp:
   modelkit_rnn_pack_backward of the recurrent kernel, G = 4; rd: the recurrent dropout's
   masks (4, B, U) or NULL; keep (T, B): 0 where a step of a row is masked (its dh, dc pass
   it by, dh plus that step's gseq; its gate gradients are 0), or NULL; gate_slope,
   sigmoid_cell: as for the forward steps. Returns 0, or -1 when its buffer could not be
   allocated (or no AVX-512 build). */
int modelkit_lstm_backward_steps(const float *rtp, const float *z, const float *ac,
                                 const float *c, const float *gseq, const float *rd,
                                 const uint8_t *keep, float gate_slope, int sigmoid_cell,
                                 int64_t T, float *dh, float *dc, float *dz, int64_t t0,
                                 int64_t t1, int64_t B, int64_t U) {
    RUN_STEPS(backward_steps, .gates = 4, .rtp = rtp, .gseq = gseq, .z = (float *)z,
              .c = (float *)c, .ac = (float *)ac, .dh = dh, .dc = dc, .dz = dz, .rd = rd,
              .keep = keep, .act = {gate_slope, sigmoid_cell}, .T = T, .B = B, .U = U);
}

/* GRU (reset_after) forward steps [t0, t1): z (T, 3, B, U) from each step's projection (z and r
   halved) to its gate values z, r, hh; h (T + 1, B, U): step t reads row t and writes t + 1; rh
   (T, B, U) gets h R_h + b_rh. rp: modelkit_rnn_pack_forward of the recurrent kernel (z and r
   columns halved), G = 3; brec: the recurrent bias (3U, z and r halved) or NULL; rd, hd, keep,
   gate_slope, sigmoid_cell: as for the LSTM, 3 gates. Returns 0, or -1 when its buffer could
   not be allocated. */
int modelkit_gru_forward_steps(const float *rp, const float *brec, float *z, float *h,
                               float *rh, const float *rd, float *hd, const uint8_t *keep,
                               float gate_slope, int sigmoid_cell, int64_t T, int64_t t0,
                               int64_t t1, int64_t B, int64_t U) {
    RUN_STEPS(forward_steps, .gates = 3, .rp = rp, .brec = brec, .z = z, .h = h, .rh = rh,
              .rd = rd, .hd = hd, .keep = keep, .act = {gate_slope, sigmoid_cell}, .T = T,
              .B = B, .U = U);
}

/* GRU (reset_after) backward steps t1 - 1 down to t0 (gate values z (T, 3, B, U), states h (T +
   1, B, U), rh (T, B, U)): dh (B, U) comes in as d h_{t1} and leaves as d h_{t0}; dz and drec
   (T, B, 3U) get each step's gradients of the projection and of h R + b_rec. gseq: the output
   sequence's gradient (B, T, U) or NULL. rtp: modelkit_rnn_pack_backward of the recurrent
   kernel, G = 3; rd: the recurrent dropout's masks (3, B, U) or NULL; keep, gate_slope,
   sigmoid_cell: as for the LSTM (a masked row's dz and drec 0). Returns 0, or -1 when its
   buffer could not be allocated (or no AVX-512 build). */
int modelkit_gru_backward_steps(const float *rtp, const float *z, const float *h,
                                const float *rh, const float *gseq, const float *rd,
                                const uint8_t *keep, float gate_slope, int sigmoid_cell,
                                int64_t T, float *dh, float *dz, float *drec, int64_t t0,
                                int64_t t1, int64_t B, int64_t U) {
    RUN_STEPS(backward_steps, .gates = 3, .rtp = rtp, .gseq = gseq, .z = (float *)z,
              .h = (float *)h, .rh = (float *)rh, .dh = dh, .dz = dz, .drec = drec, .rd = rd,
              .keep = keep, .act = {gate_slope, sigmoid_cell}, .T = T, .B = B, .U = U);
}

/* GRU forward steps without reset_after [t0, t1): z (T, 3, B, U) from each step's projection (z
   and r halved for sigmoid gates, the bias in it) to its gate values z, r, hh; h (T + 1, B, U):
   step t reads row t and writes t + 1; q (T, B, U) gets r h (times the candidate's recurrent
   dropout mask). rp: modelkit_rnn_pack_forward of R's z and r columns (halved for sigmoid
   gates), G = 2; rp_h: of its candidate columns, G = 1. rd: the recurrent dropout's masks (3,
   B, U) or NULL; hd: with rd, h rd for z and r, (2, T, B, U); keep, gate_slope, sigmoid_cell:
   as for the LSTM. Returns 0, or -1 when its buffer could not be allocated. */
int modelkit_gru_before_forward_steps(const float *rp, const float *rp_h, float *z, float *h,
                                      float *q, const float *rd, float *hd, const uint8_t *keep,
                                      float gate_slope, int sigmoid_cell, int64_t T, int64_t t0,
                                      int64_t t1, int64_t B, int64_t U) {
    RUN_STEPS(forward_steps, .gates = 3, .rp = rp, .rp_h = rp_h, .z = z, .h = h, .q = q,
              .rd = rd, .hd = hd, .keep = keep, .act = {gate_slope, sigmoid_cell}, .T = T,
              .B = B, .U = U);
}

/* GRU backward steps without reset_after t1 - 1 down to t0 (gate values z (T, 3, B, U), states
   h (T + 1, B, U)): dh (B, U) comes in as d h_{t1} and leaves as d h_{t0}; dz (T, B, 3U) gets
   each step's gradients of the projection. gseq: the output sequence's gradient (B, T, U) or
   NULL. rtp, rtp_h: modelkit_rnn_pack_backward of R's z and r columns (G = 2) and of its
   candidate columns (G = 1); rd: the recurrent dropout's masks (3, B, U) or NULL; keep,
   gate_slope, sigmoid_cell: as for the LSTM. Returns 0, or -1 when its buffer could not be
   allocated (or no AVX-512 build). */
int modelkit_gru_before_backward_steps(const float *rtp, const float *rtp_h, const float *z,
                                       const float *h, const float *gseq, const float *rd,
                                       const uint8_t *keep, float gate_slope, int sigmoid_cell,
                                       int64_t T, float *dh, float *dz, int64_t t0, int64_t t1,
                                       int64_t B, int64_t U) {
    RUN_STEPS(backward_steps, .gates = 3, .rtp = rtp, .rtp_h = rtp_h, .gseq = gseq,
              .z = (float *)z, .h = (float *)h, .dh = dh, .dz = dz, .rd = rd, .keep = keep,
              .act = {gate_slope, sigmoid_cell}, .T = T, .B = B, .U = U);
}

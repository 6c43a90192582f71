/* Fused LSTM steps for rnn_ops/lstm.py (through modelkit/backend/native.py): each step's
   recurrent GEMM, with the gate arithmetic done on its results while they are still in
   registers (AVX-512 intrinsics, x86-64 with GCC; `modelkit_lstm_fused_available` says
   whether they run here).

   Forward, step t: z = h_t R + z_t (z_t: the input projection and bias, i, f, o halved as
   R's columns are), i, f, o = sigmoid(2 z), g = tanh(z), c' = f c + i g,
   h' = o tanh(c'). Backward, step t: the gate gradients from dh' and dc' (the arithmetic
   of _native.c's modelkit_lstm_bptt_step), then dh = dz R^T on the same rows while they
   are still in L1. Batch rows are independent in both, so a block of 6 rows goes through
   a whole step at a time: 6 x 64 register blocks (24 accumulators), the weights packed
   once per sequence into the order the blocks read them.

   Unlike the element-wise kernels of _native.c these are not numpy's numbers bit for bit:
   the GEMM sums in its own order with fused multiply-adds, and tanh and sigmoid are this
   file's own (`v_tanh`, `v_sigmoid_of_half`: 1.3 and 2 ulp at most against float64). Tests compare them with float64. */

#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MODELKIT_RNN_FUSED 1
#include <immintrin.h>
#include <stdlib.h>
#endif

int modelkit_lstm_fused_available(void) {
#ifdef MODELKIT_RNN_FUSED
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

#define RNN_ROWS 6   /* batch rows per register block */
#define RNN_COLS 64  /* columns per register block: 4 vectors */

/* rp[jb][k][gate][16] = r[k][gate * U + 16 jb + l] (0 past U): the forward's recurrent
   kernel r (U, 4U) by blocks of 16 units, the four gates' columns of each side by side.
   rp holds ceil(U / 16) * U * 64 values. */
void modelkit_lstm_pack_forward(const float *restrict r, int64_t U, float *restrict rp) {
    const int64_t nb = (U + 15) / 16;
    for (int64_t jb = 0; jb < nb; jb++)
        for (int64_t k = 0; k < U; k++)
            for (int64_t g = 0; g < 4; g++)
                for (int64_t l = 0; l < 16; l++) {
                    const int64_t j = jb * 16 + l;
                    rp[((jb * U + k) * 4 + g) * 16 + l] = j < U ? r[k * 4 * U + g * U + j] : 0.0f;
                }
}

/* rtp[cb][k][l] = r[64 cb + l][k] (0 past U): the backward's r^T (4U, U) by blocks of 64
   columns. rtp holds ceil(U / 64) * 4U * 64 values. */
void modelkit_lstm_pack_backward(const float *restrict r, int64_t U, float *restrict rtp) {
    const int64_t nb = (U + RNN_COLS - 1) / RNN_COLS, K = 4 * U;
    for (int64_t cb = 0; cb < nb; cb++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t l = 0; l < RNN_COLS; l++) {
                const int64_t j = cb * RNN_COLS + l;
                rtp[(cb * K + k) * RNN_COLS + l] = j < U ? r[j * K + k] : 0.0f;
            }
}

#ifdef MODELKIT_RNN_FUSED

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

/* acc[r][q] = sum_k a[r][k] b[k][16 q + l] for `rows` (a constant where this is inlined)
   rows of a (lda apart) and the packed 64-column panel b (k rows of 64). */
INLINE void panel_gemm(const float *restrict a, int64_t lda, int rows,
                       const float *restrict b, int64_t k, __m512 acc[RNN_ROWS][4]) {
    for (int r = 0; r < RNN_ROWS; r++)
        for (int q = 0; q < 4; q++)
            acc[r][q] = _mm512_setzero_ps();
    for (int64_t p = 0; p < k; p++) {
        const float *bk = b + p * RNN_COLS;
        const __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);
        const __m512 b2 = _mm512_loadu_ps(bk + 32), b3 = _mm512_loadu_ps(bk + 48);
        for (int r = 0; r < RNN_ROWS; r++)
            if (r < rows) {
                const __m512 x = _mm512_set1_ps(a[r * lda + p]);
                acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
            }
    }
}

/* One forward step for batch rows [b0, b0 + rows): see the file's header. The GEMM's
   pre-activations for all units go to `pre` (rows x 4 x 16 nb values, L1) first and the gate
   arithmetic runs over them after: in the GEMM's register block they spilled. `n` = B U
   (the gate blocks' distance in z), `tail` the lanes of the last unit block. */
INLINE void forward_rows(const float *restrict rp, float *restrict z, const float *restrict h,
                         const float *restrict c, float *restrict c_new, float *restrict ac,
                         float *restrict h_new, int64_t b0, int rows, int64_t n, int64_t U,
                         __mmask16 tail, float *restrict pre) {
    const int64_t nb = (U + 15) / 16;
    for (int64_t jb = 0; jb < nb; jb++) {
        __m512 acc[RNN_ROWS][4];
        panel_gemm(h + b0 * U, U, rows, rp + jb * U * RNN_COLS, U, acc);
        for (int r = 0; r < RNN_ROWS; r++)
            if (r < rows)
                for (int g = 0; g < 4; g++)
                    _mm512_storeu_ps(pre + ((r * nb + jb) * 4 + g) * 16, acc[r][g]);
    }
    for (int r = 0; r < rows; r++)
        for (int64_t jb = 0; jb < nb; jb++) {
            const __mmask16 m = jb == nb - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = (b0 + r) * U + jb * 16;
            const float *pr = pre + (r * nb + jb) * 64;
            __m512 t[4];
            for (int g = 0; g < 4; g++) {
                const __m512 x = _mm512_add_ps(_mm512_loadu_ps(pr + g * 16),
                                               _mm512_maskz_loadu_ps(m, z + g * n + e));
                t[g] = g < 3 ? v_sigmoid_of_half(x) : v_tanh(x);
                _mm512_mask_storeu_ps(z + g * n + e, m, t[g]);
            }
            const __m512 cn = _mm512_fmadd_ps(t[1], _mm512_maskz_loadu_ps(m, c + e),
                                              _mm512_mul_ps(t[0], t[3]));
            const __m512 a = v_tanh(cn);
            _mm512_mask_storeu_ps(c_new + e, m, cn);
            _mm512_mask_storeu_ps(ac + e, m, a);
            _mm512_mask_storeu_ps(h_new + e, m, _mm512_mul_ps(t[2], a));
        }
}

/* One backward step for batch rows [b0, b0 + rows): the gate gradients into dz's rows
   (B, 4U) and dc, then dh's rows = those dz rows @ r^T. g: the step's output gradient rows
   (added to dh first; `gstride` apart) or NULL. */
INLINE void backward_rows(const float *restrict rtp, const float *restrict z,
                          const float *restrict ac, const float *restrict c,
                          const float *restrict g, int64_t gstride, float *restrict dh,
                          float *restrict dc, float *restrict dz, int64_t b0, int rows,
                          int64_t n, int64_t U, __mmask16 tail) {
    const int64_t nv = (U + 15) / 16, K = 4 * U;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int r = 0; r < rows; r++) {
        const int64_t b = b0 + r;
        float *row = dz + b * K;
        for (int64_t v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? tail : (__mmask16)0xFFFF;
            const int64_t e = b * U + v * 16, j = v * 16;
            const __m512 i = _mm512_maskz_loadu_ps(m, z + e), f = _mm512_maskz_loadu_ps(m, z + n + e);
            const __m512 o = _mm512_maskz_loadu_ps(m, z + 2 * n + e);
            const __m512 gg = _mm512_maskz_loadu_ps(m, z + 3 * n + e);
            const __m512 a = _mm512_maskz_loadu_ps(m, ac + e);
            __m512 hv = _mm512_maskz_loadu_ps(m, dh + e);
            if (g)
                hv = _mm512_add_ps(hv, _mm512_maskz_loadu_ps(m, g + b * gstride + j));
            const __m512 d_o = _mm512_mul_ps(hv, a);
            const __m512 t = _mm512_mul_ps(_mm512_mul_ps(hv, o), _mm512_fnmadd_ps(a, a, one));
            const __m512 d_c = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dc + e), t);
            _mm512_mask_storeu_ps(dc + e, m, _mm512_mul_ps(d_c, f));
            const __m512 d_i = _mm512_mul_ps(d_c, gg);
            const __m512 d_f = _mm512_mul_ps(d_c, _mm512_maskz_loadu_ps(m, c + e));
            const __m512 d_g = _mm512_mul_ps(d_c, i);
            _mm512_mask_storeu_ps(row + j, m, _mm512_mul_ps(d_i, _mm512_mul_ps(_mm512_sub_ps(one, i), i)));
            _mm512_mask_storeu_ps(row + U + j, m, _mm512_mul_ps(d_f, _mm512_mul_ps(_mm512_sub_ps(one, f), f)));
            _mm512_mask_storeu_ps(row + 2 * U + j, m, _mm512_mul_ps(d_o, _mm512_mul_ps(_mm512_sub_ps(one, o), o)));
            _mm512_mask_storeu_ps(row + 3 * U + j, m, _mm512_mul_ps(d_g, _mm512_fnmadd_ps(gg, gg, one)));
        }
    }
    const int64_t nb = (U + RNN_COLS - 1) / RNN_COLS;
    for (int64_t cb = 0; cb < nb; cb++) {
        __m512 acc[RNN_ROWS][4];
        panel_gemm(dz + b0 * K, K, rows, rtp + cb * K * RNN_COLS, K, acc);
        for (int r = 0; r < RNN_ROWS; r++)
            if (r < rows)
                for (int q = 0; q < 4; q++) {
                    const int64_t j = cb * RNN_COLS + q * 16;
                    if (j >= U)
                        break;
                    const __mmask16 m = U - j >= 16 ? (__mmask16)0xFFFF : tail;
                    _mm512_mask_storeu_ps(dh + (b0 + r) * U + j, m, acc[r][q]);
                }
    }
}

static __mmask16 tail_mask(int64_t U) {
    return U % 16 ? (__mmask16)((1u << (U % 16)) - 1) : (__mmask16)0xFFFF;
}

/* The row-count dispatch: `rows` a constant in each inlined copy. */
#define BY_ROWS(rows, CALL)                                                                  \
    switch (rows) {                                                                          \
    case 6: CALL(6); break;                                                                  \
    case 5: CALL(5); break;                                                                  \
    case 4: CALL(4); break;                                                                  \
    case 3: CALL(3); break;                                                                  \
    case 2: CALL(2); break;                                                                  \
    default: CALL(1); break;                                                                 \
    }

static __attribute__((target("avx512f"))) int forward_steps(
        const float *rp, float *z, float *h, float *c, float *ac, int64_t t0, int64_t t1,
        int64_t B, int64_t U) {
    const int64_t n = B * U;
    const __mmask16 tail = tail_mask(U);
    float *pre = malloc((size_t)(RNN_ROWS * RNN_COLS * ((U + 15) / 16)) * sizeof(float));
    if (!pre)
        return -1;
    for (int64_t t = t0; t < t1; t++) {
        float *zt = z + t * 4 * n;
        const float *ht = h + t * n, *ct = c + t * n;
        float *cn = c + (t + 1) * n, *hn = h + (t + 1) * n, *at = ac + t * n;
        for (int64_t b0 = 0; b0 < B; b0 += RNN_ROWS) {
            const int64_t rows = B - b0 < RNN_ROWS ? B - b0 : RNN_ROWS;
#define FORWARD(R) forward_rows(rp, zt, ht, ct, cn, at, hn, b0, R, n, U, tail, pre)
            BY_ROWS(rows, FORWARD)
#undef FORWARD
        }
    }
    free(pre);
    return 0;
}

static __attribute__((target("avx512f"))) void backward_steps(
        const float *rtp, const float *z, const float *ac, const float *c, const float *gseq,
        int64_t T, float *dh, float *dc, float *dz, int64_t t0, int64_t t1, int64_t B,
        int64_t U) {
    const int64_t n = B * U;
    const __mmask16 tail = tail_mask(U);
    for (int64_t t = t1 - 1; t >= t0; t--) {
        const float *zt = z + t * 4 * n, *at = ac + t * n, *ct = c + t * n;
        const float *g = gseq ? gseq + t * U : 0;
        float *dzt = dz + t * 4 * n;
        for (int64_t b0 = 0; b0 < B; b0 += RNN_ROWS) {
            const int64_t rows = B - b0 < RNN_ROWS ? B - b0 : RNN_ROWS;
#define BACKWARD(R) backward_rows(rtp, zt, at, ct, g, T * U, dh, dc, dzt, b0, R, n, U, tail)
            BY_ROWS(rows, BACKWARD)
#undef BACKWARD
        }
    }
}

#endif

/* Forward steps [t0, t1) of a sequence: z (T, 4, B, U) holds each step's projection and
   is turned into its gate values; h, c (T + 1, B, U): step t reads row t and writes t + 1;
   ac (T, B, U) gets tanh(c'). rp: modelkit_lstm_pack_forward of the (halved) recurrent
   kernel. Returns 0, or -1 when its buffer could not be allocated. */
int modelkit_lstm_forward_steps(const float *rp, float *z, float *h, float *c, float *ac,
                                int64_t t0, int64_t t1, int64_t B, int64_t U) {
#ifdef MODELKIT_RNN_FUSED
    return forward_steps(rp, z, h, c, ac, t0, t1, B, U);
#else
    return -1;
#endif
}

/* Backward steps t1 - 1 down to t0 of a sequence (gate values z (T, 4, B, U), ac (T, B, U),
   c (T + 1, B, U)): dh, dc (B, U) come in as d h_{t1}, d c_{t1} and leave as d h_{t0},
   d c_{t0}; dz (T, B, 4U) gets each step's gate gradients. gseq: the output sequence's
   gradient (B, T, U), added to dh at each step, or NULL. rtp: modelkit_lstm_pack_backward
   of the recurrent kernel. */
void modelkit_lstm_backward_steps(const float *rtp, const float *z, const float *ac,
                                  const float *c, const float *gseq, int64_t T, float *dh,
                                  float *dc, float *dz, int64_t t0, int64_t t1, int64_t B,
                                  int64_t U) {
#ifdef MODELKIT_RNN_FUSED
    backward_steps(rtp, z, ac, c, gseq, T, dh, dc, dz, t0, t1, B, U);
#endif
}

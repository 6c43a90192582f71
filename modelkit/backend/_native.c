/* Fused float32 kernels for modelkit/backend/native.py (loaded through ctypes): Adam, SGD
   with momentum,
   LSTM and GRU steps, tanh's gradient, batch normalization's input gradient, statistics
   and normalization, per-channel sums (batch normalization's backward, a conv's bias
   gradient), the 2x2 max pooling's gradient, and Winograd convolutions (F(2x2, 3x3) for
   the forward pass and the input gradient, F(3x3, 2x2) for the kernel gradient).

   The element-wise kernels make in one pass over memory what the numpy update makes in
   several, with the same float32 operations in the same order (every product, sum, square
   root and quotient rounded to float32; built with -ffp-contract=off so none is fused), so
   their numbers are the numpy path's bit for bit; `restrict` pointers let the loops
   vectorize. Where the compiler and C library allow it each such loop is compiled for
   AVX-512, AVX2 and the baseline and the CPU picks one at load time. The sums add in their
   own order (float32 lanes, float64 across rows) and the Winograd convolutions are another
   algorithm than MLAS's direct one (AVX-512 intrinsics, with fused multiply-adds): both are
   checked against float64. */

#include <math.h>
#include <stdint.h>
#include <string.h>

/* _native_pool.c: fn(args, lo, hi) over [0, n) split across the BLAS pool's threads */
typedef void (*pool_range_fn)(const void *args, int64_t lo, int64_t hi);
void modelkit_pool_for(pool_range_fn fn, const void *args, int64_t n, int64_t align,
                       int64_t grain);
#define POOL_GRAIN 16384            /* values: below 2 x this a kernel runs on one thread */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* Adam on one row of `width` values: m = m b1 (+ gm), v = v b2 (+ gv),
   p -= lr (m / (sqrt(v) + eps)). gm, gv: the row's gradient terms, or NULL for a zero
   gradient. */
CLONES static void adam_row(float *restrict p, float *restrict m, float *restrict v,
                            const float *restrict gm, const float *restrict gv,
                            int64_t width, float b1, float b2, float eps, float lr) {
    if (gm) {
        for (int64_t j = 0; j < width; j++) {
            float mj = m[j] * b1 + gm[j];
            float vj = v[j] * b2 + gv[j];
            m[j] = mj;
            v[j] = vj;
            p[j] = p[j] - (mj / (sqrtf(vj) + eps)) * lr;
        }
    } else {
        for (int64_t j = 0; j < width; j++) {
            float mj = m[j] * b1;
            float vj = v[j] * b2;
            m[j] = mj;
            v[j] = vj;
            p[j] = p[j] - (mj / (sqrtf(vj) + eps)) * lr;
        }
    }
}

/* Adam on rows [lo, hi) of a (rows, width) table whose gradient is zero except on the sorted,
   unique `rows[0..n)`; gm, gv (n, width): those rows' terms g (1 - b1) and g g (1 - b2). */
void modelkit_adam_rows(float *restrict p, float *restrict m, float *restrict v, int64_t width,
                        int64_t lo, int64_t hi,
                        const int64_t *restrict rows, const float *restrict gm,
                        const float *restrict gv, int64_t n,
                        float b1, float b2, float eps, float lr) {
    int64_t k = 0;
    while (k < n && rows[k] < lo)
        k++;
    for (int64_t r = lo; r < hi; r++) {
        int64_t at = r * width;
        if (k < n && rows[k] == r) {
            adam_row(p + at, m + at, v + at, gm + k * width, gv + k * width, width, b1, b2,
                     eps, lr);
            k++;
        } else {
            adam_row(p + at, m + at, v + at, 0, 0, width, b1, b2, eps, lr);
        }
    }
}

/* Adam on `size` values with a dense gradient g: m = m b1 + g c1, v = v b2 + (g g) c2,
   p -= lr (m / (sqrt(v) + eps)); c1 = 1 - b1, c2 = 1 - b2 (as float32). */
CLONES static void adam_dense(float *restrict p, float *restrict m, float *restrict v,
                              const float *restrict g, int64_t size,
                              float b1, float c1, float b2, float c2, float eps, float lr) {
    for (int64_t j = 0; j < size; j++) {
        float gj = g[j];
        float mj = m[j] * b1 + gj * c1;
        float vj = v[j] * b2 + (gj * gj) * c2;
        m[j] = mj;
        v[j] = vj;
        p[j] = p[j] - (mj / (sqrtf(vj) + eps)) * lr;
    }
}

typedef struct { float *p, *m, *v; const float *g; float b1, c1, b2, c2, eps, lr; } adam_args;

static void adam_dense_range(const void *args, int64_t lo, int64_t hi) {
    const adam_args *a = args;
    adam_dense(a->p + lo, a->m + lo, a->v + lo, a->g + lo, hi - lo, a->b1, a->c1, a->b2, a->c2,
               a->eps, a->lr);
}

void modelkit_adam_dense(float *p, float *m, float *v, const float *g, int64_t size, float b1,
                         float c1, float b2, float c2, float eps, float lr) {
    const adam_args args = {p, m, v, g, b1, c1, b2, c2, eps, lr};
    modelkit_pool_for(adam_dense_range, &args, size, 16, POOL_GRAIN);
}

/* One step of an unmasked LSTM's backward pass through time (rnn_ops/lstm.py), tanh cell and
   sigmoid gates, from the step's gate values z (4, B, U: i, f, o, g), a(c') = ac, the
   previous cell c and the incoming dh (B, U): writes the four gate gradients into the
   step's row of dz (B, 4U, the same gate order) and turns dc (B, U) into the previous
   step's. The operations and their order are _lstm_backward_unmasked's:
     do = dh ac;  t = (dh o)(1 - ac ac);  dc += t;
     di = dc g;  df = dc c;  dg = dc i;  dc = dc f;
     d{i,f,o} *= (1 - s) s;  dg *= 1 - g g. */
CLONES void modelkit_lstm_bptt_step(const float *restrict z, const float *restrict ac,
                                    const float *restrict c,
                                    const float *restrict dh, float *restrict dc,
                                    float *restrict dz, int64_t B,
                                    int64_t U) {
    const int64_t n = B * U;
    const float *zi = z, *zf = z + n, *zo = z + 2 * n, *zg = z + 3 * n;
    for (int64_t b = 0; b < B; b++) {
        float *row = dz + b * 4 * U;
        for (int64_t u = 0; u < U; u++) {
            int64_t e = b * U + u;
            float i = zi[e], f = zf[e], o = zo[e], g = zg[e], a = ac[e], h = dh[e];
            float d_o = h * a;
            float t = (h * o) * (1.0f - a * a);
            float d_c = dc[e] + t;
            float d_i = d_c * g;
            float d_f = d_c * c[e];
            float d_g = d_c * i;
            dc[e] = d_c * f;
            row[u] = d_i * ((1.0f - i) * i);
            row[U + u] = d_f * ((1.0f - f) * f);
            row[2 * U + u] = d_o * ((1.0f - o) * o);
            row[3 * U + u] = d_g * (1.0f - g * g);
        }
    }
}

/* One forward step of an LSTM with sigmoid gates computed as 0.5 tanh(z / 2) + 0.5 and a
   tanh cell, after tanh has been taken of all four gate blocks of t (4, B, U: i, f, o, g)
   in place: turns the i, f, o blocks into their sigmoids (t 0.5 + 0.5, as rnn_activations.
   tanh_to_sigmoid) and writes the new cell c' = f c + i g (B, U), as lstm.py's numpy
   step rounds them. */
CLONES void modelkit_lstm_cell_step(float *restrict t, const float *restrict c,
                                    float *restrict c_new, int64_t n) {
    float *ti = t, *tf = t + n, *to = t + 2 * n;
    const float *tg = t + 3 * n;
    for (int64_t e = 0; e < n; e++) {
        float i = ti[e] * 0.5f + 0.5f;
        float f = tf[e] * 0.5f + 0.5f;
        to[e] = to[e] * 0.5f + 0.5f;
        ti[e] = i;
        tf[e] = f;
        c_new[e] = f * c[e] + i * tg[e];
    }
}

/* tanh's gradient: out = g (1 - y y), as math_ops' numpy VJP rounds it. */
CLONES static void tanh_grad(const float *restrict g, const float *restrict y,
                             float *restrict out, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        out[j] = g[j] * (1.0f - y[j] * y[j]);
}

typedef struct { const float *g, *y; float *out; } tanh_grad_args;

static void tanh_grad_range(const void *args, int64_t lo, int64_t hi) {
    const tanh_grad_args *a = args;
    tanh_grad(a->g + lo, a->y + lo, a->out + lo, hi - lo);
}

void modelkit_tanh_grad(const float *g, const float *y, float *out, int64_t n) {
    const tanh_grad_args args = {g, y, out};
    modelkit_pool_for(tanh_grad_range, &args, n, 16, POOL_GRAIN);
}

/* Batch normalization's input gradient over `rows` rows of `width` values (norm_fast's
   pass 2): gx = g s + (x c + k) with the per-position factor rows s, c, k (width values),
   rounded as the numpy pass's four operations. */
CLONES void modelkit_bn_input_grad(const float *restrict g, const float *restrict x,
                                   const float *restrict s,
                                   const float *restrict c, const float *restrict k,
                                   float *restrict gx, int64_t rows,
                                   int64_t width) {
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = g + r * width, *xr = x + r * width;
        float *out = gx + r * width;
        for (int64_t p = 0; p < width; p++)
            out[p] = gr[p] * s[p] + (xr[p] * c[p] + k[p]);
    }
}

/* One step of an unmasked GRU's backward pass through time (reset_after, tanh candidate,
   sigmoid gates), from the step's gate values z, r, hh (zt: 3, B, U), the previous state h,
   the candidate's recurrent term rh = h R_h + b_rh and the incoming e = dh' (B, U): the
   direct path to h into dh = e z, the gate gradients into the step's rows of dz and drec
   (B, 3U each: d z, d r, then d hh for dz and d hh r for drec), as gru.py's numpy step:
     dz = (h - hh) e;  dhh = ((1 - z) e)(1 - hh hh);  dr = dhh rh;  drec_h = dhh r;
     dz *= (1 - z) z;  dr *= (1 - r) r. */
CLONES void modelkit_gru_bptt_step(const float *restrict zt, const float *restrict h,
                                   const float *restrict rh,
                                   const float *restrict e, float *restrict dh,
                                   float *restrict dz, float *restrict drec,
                                   int64_t B, int64_t U) {
    const int64_t n = B * U;
    const float *zz = zt, *zr = zt + n, *zh = zt + 2 * n;
    for (int64_t b = 0; b < B; b++) {
        float *dzr = dz + b * 3 * U, *drr = drec + b * 3 * U;
        for (int64_t u = 0; u < U; u++) {
            int64_t i = b * U + u;
            float z = zz[i], r = zr[i], hh = zh[i], ev = e[i];
            dh[i] = ev * z;
            float d_z = (h[i] - hh) * ev;
            float d_hh = ((1.0f - z) * ev) * (1.0f - hh * hh);
            float d_r = d_hh * rh[i];
            float d_rec = d_hh * r;
            d_z = d_z * ((1.0f - z) * z);
            d_r = d_r * ((1.0f - r) * r);
            dzr[u] = d_z;
            dzr[U + u] = d_r;
            dzr[2 * U + u] = d_hh;
            drr[u] = d_z;
            drr[U + u] = d_r;
            drr[2 * U + u] = d_rec;
        }
    }
}

/* ---- batch normalization's per-channel passes over (images, C, B) memory ----------------
   (channels-first: `images` rows of C channels of B positions). Unlike the kernels above
   these sum in their own order: float32 partial sums in LANES independent lanes per row of
   B values (the loops vectorize), rows added in float64. */

#define LANES 32

/* Sum of the B values at x in LANES float32 lanes, returned in float64. */
static inline double row_sum(const float *restrict x, int64_t B) {
    float acc[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= B; j += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += x[j + l];
    for (int l = 0; j < B; j++, l++)
        acc[l] += x[j];
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* Per row of B values (of `rows` rows in a row): sum[r] (float64 from float32 lanes) and
   dev2[r] = the sum of (x - m)^2, m = float32(sum / B) (float32 squares and lanes, added in
   float64): the row is read twice while in L1. */
CLONES void modelkit_bn_row_moments(const float *restrict x, int64_t rows, int64_t B,
                                    double *restrict sum, double *restrict dev2) {
    for (int64_t i = 0; i < rows; i++) {
        const float *restrict r = x + i * B;
        const double s = row_sum(r, B);
        const float m = (float)(s / (double)B);
        float acc[LANES] = {0};
        int64_t j = 0;
        for (; j + LANES <= B; j += LANES)
            for (int l = 0; l < LANES; l++) {
                float d = r[j + l] - m;
                acc[l] += d * d;
            }
        for (int l = 0; j < B; j++, l++) {
            float d = r[j] - m;
            acc[l] += d * d;
        }
        double d2 = 0.0;
        for (int l = 0; l < LANES; l++)
            d2 += acc[l];
        sum[i] = s;
        dev2[i] = d2;
    }
}

/* y = x scale[c] + shift[c] (rounded twice, as numpy's multiply then add) and, where
   relu is not NULL, relu = max(y, 0) as numpy's maximum makes it: NaN stays, -0.0 becomes
   +0.0. */
CLONES void modelkit_bn_normalize(const float *restrict x, int64_t images, int64_t C,
                                  int64_t B, const float *restrict scale,
                                  const float *restrict shift, float *restrict y,
                                  float *restrict relu) {
    for (int64_t i = 0; i < images; i++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t o = (i * C + c) * B;
            const float a = scale[c], b = shift[c];
            const float *restrict xr = x + o;
            float *restrict yr = y + o;
            for (int64_t j = 0; j < B; j++)
                yr[j] = xr[j] * a + b;
            if (relu) {
                float *restrict rr = relu + o;
                for (int64_t j = 0; j < B; j++)
                    rr[j] = (yr[j] > 0.0f || yr[j] != yr[j]) ? yr[j] : 0.0f;
            }
        }
}

/* Per-channel sums over `images` images: gsum[c] += the sum of g and, where x is not NULL,
   gdot[c] += the sum of g (x - centre[c]) (centre NULL: g x), both in float64 from float32
   lanes per row (batch normalization's backward sums; with x NULL a conv's bias gradient).
   With `mask` (a relu's output) g is first g * (mask > 0), numpy's multiply by the boolean,
   written to `masked`. */
CLONES void modelkit_channel_sums(const float *restrict g, const float *restrict x,
                                  const float *restrict mask, const float *restrict centre,
                                  int64_t images, int64_t C, int64_t B,
                                  float *restrict masked, double *restrict gsum,
                                  double *restrict gdot) {
    for (int64_t i = 0; i < images; i++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t o = (i * C + c) * B;
            const float *restrict gr = g + o;
            if (mask) {
                const float *restrict yr = mask + o;
                float *restrict mr = masked + o;
                for (int64_t j = 0; j < B; j++)
                    mr[j] = gr[j] * (yr[j] > 0.0f ? 1.0f : 0.0f);
                gr = mr;
            }
            if (!x) {
                gsum[c] += row_sum(gr, B);
                continue;
            }
            const float *restrict xr = x + o;
            const float m = centre ? centre[c] : 0.0f;
            float s[LANES] = {0}, d[LANES] = {0};
            int64_t j = 0;
            for (; j + LANES <= B; j += LANES)
                for (int l = 0; l < LANES; l++) {
                    float v = gr[j + l];
                    s[l] += v;
                    d[l] += v * (xr[j + l] - m);
                }
            for (int l = 0; j < B; j++, l++) {
                s[l] += gr[j];
                d[l] += gr[j] * (xr[j] - m);
            }
            double ss = 0.0, dd = 0.0;
            for (int l = 0; l < LANES; l++) {
                ss += s[l];
                dd += d[l];
            }
            gsum[c] += ss;
            gdot[c] += dd;
        }
}

/* The gradient of a 2x2 max pooling with stride 2 over `planes` planes of h x w values
   (NCHW memory, h and w even): each window's gradient g goes to its first cell (row-major)
   equal to the window's maximum y, g * 1 there and g * 0 in the others, as pool_fast's
   tiled numpy passes make it (a NaN maximum equals no cell). Branch-free, so the loop over
   a row's windows vectorizes. */
CLONES void modelkit_max_pool_2x2_grad(const float *restrict x, const float *restrict y,
                                       const float *restrict g, int64_t planes, int64_t h,
                                       int64_t w, float *restrict dx) {
    const int64_t ho = h / 2, wo = w / 2;
    for (int64_t r = 0; r < planes * ho; r++) {
        const float *restrict x0 = x + 2 * r * w, *restrict x1 = x0 + w;
        const float *restrict yr = y + r * wo, *restrict gr = g + r * wo;
        float *restrict d0 = dx + 2 * r * w, *restrict d1 = d0 + w;
        for (int64_t j = 0; j < wo; j++) {
            const float m = yr[j], gv = gr[j];
            const int a = x0[2 * j] == m;
            const int b = (x0[2 * j + 1] == m) & !a;
            const int c = (x1[2 * j] == m) & !(a | b);
            const int d = (x1[2 * j + 1] == m) & !(a | b | c);
            d0[2 * j] = gv * (float)a;
            d0[2 * j + 1] = gv * (float)b;
            d1[2 * j] = gv * (float)c;
            d1[2 * j + 1] = gv * (float)d;
        }
    }
}

/* ---- Winograd F(2x2, 3x3) convolution (stride 1, dilation 1), NCHW float32 -------------
   Each 2x2 block of outputs (a tile) comes from the 4x4 input patch under it:
   Y = A^T [ (G g G^T) . (B^T d B) ] A, 16 products per tile and channel pair instead of 36
   (Lavin and Gray, 2016). Per block of images: the patches' transforms V (16 planes of
   (C_in, tiles)), 16 GEMMs M = U V with the filter's transforms U (16 planes of (C_out,
   C_in)), then each tile's 2x2 outputs from M, plus bias and relu. The GEMMs run an AVX-512
   register-blocked kernel (8 output channels x 32 tiles); the library says with
   modelkit_avx512_available() whether this CPU has it (also for
   _native_rnn.c's kernels, built under the same conditions). */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MODELKIT_WINOGRAD 1
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#endif

int modelkit_avx512_available(void) {
#ifdef MODELKIT_WINOGRAD
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* U[xi][o][i] = (G w[o][i] G^T)[xi / 4][xi % 4] for the (C_out, C_in, 3, 3) kernel w,
   G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]. */
void modelkit_winograd_filter(const float *restrict w, int64_t cout, int64_t cin,
                              float *restrict u) {
    for (int64_t o = 0; o < cout; o++)
        for (int64_t i = 0; i < cin; i++) {
            const float *g = w + (o * cin + i) * 9;
            float t[4][3], v[4][4];
            for (int c = 0; c < 3; c++) {
                t[0][c] = g[c];
                t[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);
                t[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);
                t[3][c] = g[6 + c];
            }
            for (int r = 0; r < 4; r++) {
                v[r][0] = t[r][0];
                v[r][1] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
                v[r][2] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
                v[r][3] = t[r][2];
            }
            for (int xi = 0; xi < 16; xi++)
                u[(xi * cout + o) * cin + i] = v[xi / 4][xi % 4];
        }
}

#ifdef MODELKIT_WINOGRAD

/* Rows of at most 8 tiles go two to a vector (lanes 0-7 and 8-15, `wg_pair`): the keep
   mask of the lanes that hold tiles, or 0 when rows go one at a time. */
static inline unsigned wg_pair(int64_t tw_n) {
    return tw_n <= 8 ? ((1u << tw_n) - 1) | (((1u << tw_n) - 1) << 8) : 0;
}

/* V[xi][c][tile] of one image's channel plane (tiles th * tw_n + tw), 16 tiles a step (of
   one row, or of two rows of at most 8: their lanes packed together before the stores):
   each patch row's even and odd columns from two deinterleaved loads, B^T d B as adds
   (B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]; with `flip` the last
   row negated, F(3x3, 2x2)'s B^T). `pad`: the zero-padded plane in rows of wp values,
   readable 40 values past the last tile's patch and 4 rows past the last tile row. V's
   planes (xi) are `stride` apart; each step writes 16 values, past the row's tiles into
   what the next row (or image) writes over, or into 16 spare values. */
__attribute__((target("avx512f")))
static void wg_input_plane(const float *restrict pad, int64_t wp, int64_t th_n,
                           int64_t tw_n, float *restrict v, int64_t stride, int flip) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                          2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5,
                                         3, 1);
    const __mmask16 keep = (__mmask16)wg_pair(tw_n);
    const int64_t next = keep ? 2 * wp : 16;      /* where the second 16 columns are read */
    for (int64_t th = 0; th < th_n; th += keep ? 2 : 1)
        for (int64_t tw = 0; tw < tw_n; tw += 16) {
            const int64_t t = th * tw_n + tw;
            __m512 d[4][4];
            for (int i = 0; i < 4; i++) {
                const float *r = pad + (2 * th + i) * wp + 2 * tw;
                const __m512 a = _mm512_loadu_ps(r), b = _mm512_loadu_ps(r + next);
                const __m512 c = _mm512_loadu_ps(r + 2), e = _mm512_loadu_ps(r + 2 + next);
                d[i][0] = _mm512_permutex2var_ps(a, even, b);
                d[i][1] = _mm512_permutex2var_ps(a, odd, b);
                d[i][2] = _mm512_permutex2var_ps(c, even, e);
                d[i][3] = _mm512_permutex2var_ps(c, odd, e);
            }
            for (int j = 0; j < 4; j++) {          /* B^T d: rows */
                const __m512 a = d[0][j], b = d[1][j], c = d[2][j], e = d[3][j];
                d[0][j] = _mm512_sub_ps(a, c);
                d[1][j] = _mm512_add_ps(b, c);
                d[2][j] = _mm512_sub_ps(c, b);
                d[3][j] = flip ? _mm512_sub_ps(e, b) : _mm512_sub_ps(b, e);
            }
            for (int r = 0; r < 4; r++) {          /* (B^T d) B: columns */
                __m512 col[4] = {
                    _mm512_sub_ps(d[r][0], d[r][2]), _mm512_add_ps(d[r][1], d[r][2]),
                    _mm512_sub_ps(d[r][2], d[r][1]),
                    flip ? _mm512_sub_ps(d[r][3], d[r][1]) : _mm512_sub_ps(d[r][1], d[r][3])};
                for (int j = 0; j < 4; j++)
                    _mm512_storeu_ps(v + (4 * r + j) * stride + t,
                                     keep ? _mm512_maskz_compress_ps(keep, col[j]) : col[j]);
            }
        }
}

/* C (m x ldc-strided n) = A (m x k, row-major) @ B (k x n, rows of ldb), n a multiple of 16:
   8 x 32 register blocks. */
__attribute__((target("avx512f")))
static void wg_gemm(const float *restrict a, const float *restrict b, float *restrict c,
                    int64_t m, int64_t k, int64_t n, int64_t ldb, int64_t ldc) {
    int64_t r = 0;
    for (; r + 8 <= m; r += 8) {
        int64_t j = 0;
        for (; j + 32 <= n; j += 32) {
            __m512 c0[8], c1[8];
            for (int q = 0; q < 8; q++) {
                c0[q] = _mm512_setzero_ps();
                c1[q] = _mm512_setzero_ps();
            }
            for (int64_t p = 0; p < k; p++) {
                const __m512 b0 = _mm512_loadu_ps(b + p * ldb + j);
                const __m512 b1 = _mm512_loadu_ps(b + p * ldb + j + 16);
                for (int q = 0; q < 8; q++) {
                    const __m512 x = _mm512_set1_ps(a[(r + q) * k + p]);
                    c0[q] = _mm512_fmadd_ps(x, b0, c0[q]);
                    c1[q] = _mm512_fmadd_ps(x, b1, c1[q]);
                }
            }
            for (int q = 0; q < 8; q++) {
                _mm512_storeu_ps(c + (r + q) * ldc + j, c0[q]);
                _mm512_storeu_ps(c + (r + q) * ldc + j + 16, c1[q]);
            }
        }
        for (; j < n; j += 16) {
            __m512 c0[8];
            for (int q = 0; q < 8; q++)
                c0[q] = _mm512_setzero_ps();
            for (int64_t p = 0; p < k; p++) {
                const __m512 b0 = _mm512_loadu_ps(b + p * ldb + j);
                for (int q = 0; q < 8; q++)
                    c0[q] = _mm512_fmadd_ps(_mm512_set1_ps(a[(r + q) * k + p]), b0, c0[q]);
            }
            for (int q = 0; q < 8; q++)
                _mm512_storeu_ps(c + (r + q) * ldc + j, c0[q]);
        }
    }
    for (; r < m; r++)
        for (int64_t j = 0; j < n; j += 16) {
            __m512 c0 = _mm512_setzero_ps();
            for (int64_t p = 0; p < k; p++)
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[r * k + p]),
                                     _mm512_loadu_ps(b + p * ldb + j), c0);
            _mm512_storeu_ps(c + r * ldc + j, c0);
        }
}

/* One output channel plane of one image from M (16 planes `stride` apart, this image's
   tiles th * tw_n + tw): y = A^T m A + bias, relu'd (NaN kept), A^T = [[1, 1, 1, 0],
   [0, 1, -1, -1]], 16 tiles of a row a step, the two output columns of each interleaved
   into the output rows (masked past wo, the second row dropped past ho); with `pooled`
   (ho and wo even) also each tile's maximum: the 2x2 max pooling of y. */
__attribute__((target("avx512f")))
static void wg_output_plane(const float *restrict mm, int64_t stride, int64_t th_n,
                            int64_t tw_n, int64_t ho, int64_t wo, float bias, int relu,
                            float *restrict y, float *restrict pooled) {
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                        24, 8);
    const __m512 zero = _mm512_setzero_ps(), b = _mm512_set1_ps(bias);
    const __mmask16 keep = (__mmask16)wg_pair(tw_n);
    for (int64_t th = 0; th < th_n; th += keep ? 2 : 1)
        for (int64_t tw = 0; tw < tw_n; tw += 16) {
            const float *m = mm + th * tw_n + tw;
            __m512 s[2][4], o[2][2];
            for (int j = 0; j < 4; j++) {
                __m512 q[4];
                for (int i = 0; i < 4; i++) {
                    q[i] = _mm512_loadu_ps(m + (4 * i + j) * stride);
                    if (keep)                      /* two rows' tiles to lanes 0-7, 8-15 */
                        q[i] = _mm512_maskz_expand_ps(keep, q[i]);
                }
                s[0][j] = _mm512_add_ps(_mm512_add_ps(q[0], q[1]), q[2]);
                s[1][j] = _mm512_sub_ps(_mm512_sub_ps(q[1], q[2]), q[3]);
            }
            for (int r = 0; r < 2; r++) {
                o[r][0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][2]), b);
                o[r][1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[r][1], s[r][2]), s[r][3]), b);
                if (relu) {
                    o[r][0] = _mm512_max_ps(zero, o[r][0]);
                    o[r][1] = _mm512_max_ps(zero, o[r][1]);
                }
            }
            const int64_t col = 2 * tw, left = wo - col;       /* output columns from col */
            const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
            const __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 :
                                 (__mmask16)((1u << (left - 16)) - 1);
            for (int r = 0; r < 2 && 2 * th + r < ho; r++) {
                float *row = y + (2 * th + r) * wo + col;
                _mm512_mask_storeu_ps(row, m0, _mm512_permutex2var_ps(o[r][0], lo, o[r][1]));
                if (!keep)
                    _mm512_mask_storeu_ps(row + 16, m1,
                                          _mm512_permutex2var_ps(o[r][0], hi, o[r][1]));
                else if (2 * th + 2 + r < ho)      /* the second tile row's outputs */
                    _mm512_mask_storeu_ps(row + 2 * wo, m0,
                                          _mm512_permutex2var_ps(o[r][0], hi, o[r][1]));
            }
            if (pooled) {             /* a tile is a 2x2 pooling window (ho, wo even) */
                __m512 p = _mm512_max_ps(_mm512_max_ps(o[0][0], o[0][1]),
                                         _mm512_max_ps(o[1][0], o[1][1]));
                int64_t n = tw_n - tw < 16 ? tw_n - tw : 16;
                if (keep) {
                    p = _mm512_maskz_compress_ps(keep, p);
                    n = th + 1 < th_n ? 2 * tw_n : tw_n;
                }
                _mm512_mask_storeu_ps(pooled + th * tw_n + tw, (__mmask16)((1u << n) - 1), p);
            }
        }
}

/* F(3x3, 2x2) for the kernel gradient: U[xi][o][tile] = G g G^T of each 2x2 tile of one
   image's output-gradient plane `gp` (zero-padded to 2 th_n rows of wq values, readable 32
   values past the last tile and 2 rows past the last tile row), G = [[1, 0], [1/2, 1/2],
   [1/2, -1/2], [0, 1]]; 16 tiles a step and the same writes past a row's tiles as
   wg_input_plane. */
__attribute__((target("avx512f")))
static void wg_grad_plane(const float *restrict gp, int64_t wq, int64_t th_n, int64_t tw_n,
                          float *restrict u, int64_t stride) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                          2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5,
                                         3, 1);
    const __m512 half = _mm512_set1_ps(0.5f);
    const __mmask16 keep = (__mmask16)wg_pair(tw_n);
    const int64_t next = keep ? 2 * wq : 16;
    for (int64_t th = 0; th < th_n; th += keep ? 2 : 1)
        for (int64_t tw = 0; tw < tw_n; tw += 16) {
            __m512 g[2][2], t[4][2];
            for (int i = 0; i < 2; i++) {
                const float *r = gp + (2 * th + i) * wq + 2 * tw;
                const __m512 a = _mm512_loadu_ps(r), b = _mm512_loadu_ps(r + next);
                g[i][0] = _mm512_permutex2var_ps(a, even, b);
                g[i][1] = _mm512_permutex2var_ps(a, odd, b);
            }
            for (int j = 0; j < 2; j++) {          /* G g: rows */
                t[0][j] = g[0][j];
                t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(g[0][j], g[1][j]));
                t[2][j] = _mm512_mul_ps(half, _mm512_sub_ps(g[0][j], g[1][j]));
                t[3][j] = g[1][j];
            }
            for (int r = 0; r < 4; r++) {          /* (G g) G^T: columns */
                __m512 col[4] = {
                    t[r][0], _mm512_mul_ps(half, _mm512_add_ps(t[r][0], t[r][1])),
                    _mm512_mul_ps(half, _mm512_sub_ps(t[r][0], t[r][1])), t[r][1]};
                for (int j = 0; j < 4; j++)
                    _mm512_storeu_ps(u + (4 * r + j) * stride + th * tw_n + tw,
                                     keep ? _mm512_maskz_compress_ps(keep, col[j]) : col[j]);
            }
        }
}

/* c[i][j] (rows ldc apart) += the dot product of a's row i and b's row j over k values (k a
   multiple of 16), for m x n pairs: 4 x 4 blocks of pairs, 16 vector accumulators. */
__attribute__((target("avx512f")))
static void wg_gemm_nt(const float *restrict a, const float *restrict b, float *restrict c,
                       int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                       int64_t ldc) {
    for (int64_t r = 0; r < m; r += 4)
        for (int64_t j = 0; j < n; j += 4) {
            const float *ar[4], *br[4];
            for (int q = 0; q < 4; q++) {          /* rows past the end repeat the last */
                ar[q] = a + (r + q < m ? r + q : m - 1) * lda;
                br[q] = b + (j + q < n ? j + q : n - 1) * ldb;
            }
            __m512 acc[4][4];
            for (int q = 0; q < 4; q++)
                for (int e = 0; e < 4; e++)
                    acc[q][e] = _mm512_setzero_ps();
            for (int64_t p = 0; p < k; p += 16) {
                __m512 x[4], y[4];
                for (int q = 0; q < 4; q++) {
                    x[q] = _mm512_loadu_ps(ar[q] + p);
                    y[q] = _mm512_loadu_ps(br[q] + p);
                }
                for (int q = 0; q < 4; q++)
                    for (int e = 0; e < 4; e++)
                        acc[q][e] = _mm512_fmadd_ps(x[q], y[e], acc[q][e]);
            }
            for (int q = 0; q < 4 && r + q < m; q++)
                for (int e = 0; e < 4 && j + e < n; e++)
                    c[(r + q) * ldc + j + e] += _mm512_reduce_add_ps(acc[q][e]);
        }
}

/* `floats` float32 values, 64-byte aligned (the size rounded up as aligned_alloc wants). */
static float *wg_alloc(int64_t floats) {
    return aligned_alloc(64, (size_t)((floats * 4 + 63) / 64 * 64));
}

/* The geometry and blocking shared by the forward and kernel-gradient drivers. */
typedef struct {
    int64_t ho, wo;            /* output size */
    int64_t th_n, tw_n, tiles; /* 2x2 tiles: rows, per row, per image */
    int64_t wp, hp;            /* the zero-padded input plane (with room for tail reads) */
    int64_t per, tpad;         /* images per block; tiles per block, rounded up + 16 spare */
} wg_plan;

/* The plan for an h x w input padded by pt, pb, pl, pr: about `target` tiles a block
   (whole images), V and the other transforms (16 (cin + cout) values a tile) within
   `max_bytes` unless one image needs more. */
static wg_plan wg_make_plan(int64_t h, int64_t w, int64_t pt, int64_t pb, int64_t pl,
                            int64_t pr, int64_t cin, int64_t cout, int64_t target,
                            int64_t max_bytes) {
    wg_plan p;
    p.ho = h + pt + pb - 2;
    p.wo = w + pl + pr - 2;
    p.th_n = (p.ho + 1) / 2;
    p.tw_n = (p.wo + 1) / 2;
    p.tiles = p.th_n * p.tw_n;
    p.wp = 2 * p.tw_n + 2;
    p.hp = 2 * p.th_n + 2 + 40 / p.wp + 1;
    p.per = target / p.tiles;
    if (p.per < 1)
        p.per = 1;
    while (p.per > 1 && 16 * (cin + cout) * p.per * p.tiles * 4 > max_bytes)
        p.per--;
    p.tpad = ((p.per * p.tiles + 15) / 16) * 16 + 16;
    return p;
}

/* V[xi][c][im * tiles + tile] of image `im` of a block (x: its (cin, h, w) planes), each
   plane copied into `pad` (zero borders) at (pt, pl) first. Images of a block go in order:
   each overwrites the 16 values the one before wrote past its tiles. */
static void wg_input_image(const float *x, int64_t cin, int64_t h, int64_t w, int64_t pt,
                           int64_t pl, const wg_plan *p, float *pad, float *v, int64_t im,
                           int flip) {
    for (int64_t c = 0; c < cin; c++) {
        const float *src = x + c * h * w;
        for (int64_t r = 0; r < h; r++)
            memcpy(pad + (r + pt) * p->wp + pl, src + r * w, (size_t)(w * 4));
        wg_input_plane(pad, p->wp, p->th_n, p->tw_n, v + c * p->tpad + im * p->tiles,
                       cin * p->tpad, flip);
    }
}

#endif

/* Dropout's mask applied: out = x * (kept ? scale : 0) for n values, `raw` holding the
   random draws as nn_ops._keep_mask reads them: `bits` 1 (value i kept when bit 7 - i % 8
   of byte i / 8 is set: np.unpackbits' order), 8 (byte i below `below`) or 16 (the i-th
   16-bit word below `below`). The product with 0 keeps numpy's signs and NaNs. One bit a
   value goes 64 values a step on AVX-512 (one 64-bit word of draws, its bytes' bits
   reversed, as four lane masks); `raw` then holds whole 64-bit words. */
#ifdef MODELKIT_WINOGRAD
/* Each byte of w with its bits in reverse order (three swaps: bits, pairs, nibbles). */
static inline uint64_t reverse_bits_of_bytes(uint64_t w) {
    w = ((w >> 1) & 0x5555555555555555ULL) | ((w & 0x5555555555555555ULL) << 1);
    w = ((w >> 2) & 0x3333333333333333ULL) | ((w & 0x3333333333333333ULL) << 2);
    return ((w >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((w & 0x0F0F0F0F0F0F0F0FULL) << 4);
}

__attribute__((target("avx512f")))
static void dropout_bits_avx512(const float *restrict x, const uint8_t *restrict raw, int64_t n,
                                float scale, float *restrict out) {
    const __m512 vs = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 64) {
        uint64_t word;
        memcpy(&word, raw + (i >> 3), 8);
        const uint64_t kept = reverse_bits_of_bytes(word);     /* bit j: value i + j */
        if (n - i >= 64) {
            for (int q = 0; q < 4; q++) {
                const __m512 m = _mm512_maskz_mov_ps((__mmask16)(kept >> (16 * q)), vs);
                _mm512_storeu_ps(out + i + 16 * q,
                                 _mm512_mul_ps(_mm512_loadu_ps(x + i + 16 * q), m));
            }
            continue;
        }
        for (int64_t j = i; j < n; j += 16) {
            const int64_t left = n - j;
            const __mmask16 live = left >= 16 ? (__mmask16)0xFFFF
                                              : (__mmask16)((1u << left) - 1);
            const __m512 m = _mm512_maskz_mov_ps((__mmask16)(kept >> (j - i)), vs);
            _mm512_mask_storeu_ps(out + j, live,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(live, x + j), m));
        }
    }
}
#endif

CLONES static void dropout_apply(const float *restrict x, const uint8_t *restrict raw,
                                 int64_t n, int bits, uint32_t below, float scale,
                                 float *restrict out) {
    if (bits == 1) {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * ((raw[i >> 3] >> (7 - (i & 7))) & 1u ? scale : 0.0f);
    } else if (bits == 8) {
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * (raw[i] < below ? scale : 0.0f);
    } else {
        const uint16_t *w = (const uint16_t *)raw;
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * (w[i] < below ? scale : 0.0f);
    }
}

typedef struct { const float *x; const uint8_t *raw; int bits; uint32_t below; float scale;
                 float *out; } dropout_args;

static void dropout_range(const void *args, int64_t lo, int64_t hi) {
    const dropout_args *a = args;       /* lo: a multiple of 64 values, 8 bytes of bits */
    const uint8_t *raw = a->raw + (a->bits == 1 ? lo / 8 : a->bits == 8 ? lo : 2 * lo);
#ifdef MODELKIT_WINOGRAD
    if (a->bits == 1 && modelkit_avx512_available()) {
        dropout_bits_avx512(a->x + lo, raw, hi - lo, a->scale, a->out + lo);
        return;
    }
#endif
    dropout_apply(a->x + lo, raw, hi - lo, a->bits, a->below, a->scale, a->out + lo);
}

void modelkit_dropout_apply(const float *x, const uint8_t *raw, int64_t n, int bits,
                            uint32_t below, float scale, float *out) {
    const dropout_args args = {x, raw, bits, below, scale, out};
    modelkit_pool_for(dropout_range, &args, n, 64, POOL_GRAIN);
}

/* dst's n rows = src's rows idx[0 .. n) (each `row_bytes` bytes; idx checked by the
   caller), split across the pool: a training batch gathered from a shuffled dataset, its
   rows read from memory by two threads' loads at once. */
typedef struct { const char *src; const int64_t *idx; int64_t row_bytes; char *dst; } take_args;

static void take_rows_range(const void *args, int64_t lo, int64_t hi) {
    const take_args *a = args;
    for (int64_t i = lo; i < hi; i++)
        memcpy(a->dst + i * a->row_bytes, a->src + a->idx[i] * a->row_bytes,
               (size_t)a->row_bytes);
}

void modelkit_take_rows(const void *src, int64_t row_bytes, const int64_t *idx, int64_t n,
                        void *dst) {
    const take_args args = {src, idx, row_bytes, dst};
    const int64_t grain = row_bytes > 0 ? (POOL_GRAIN * 4 + row_bytes - 1) / row_bytes : n;
    modelkit_pool_for(take_rows_range, &args, n, 1, grain);
}

/* SGD with momentum on n values, AVX-512 (one rounding per multiply-add, as OpenBLAS's axpy
   makes the numpy path's steps): v = v m, v += -lr g (fused), then p += -lr g and p += m v
   (fused; nesterov) or p = p + v. Returns 0, or -1 without an AVX-512 build. */
#ifdef MODELKIT_WINOGRAD
__attribute__((target("avx512f")))
static void sgd_momentum(float *restrict p, float *restrict v, const float *restrict g,
                         int64_t n, float m, float neg_lr, int nesterov) {
    const __m512 vm = _mm512_set1_ps(m), vl = _mm512_set1_ps(neg_lr);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
        const __m512 vv = _mm512_fmadd_ps(vl, gv, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + i),
                                                                 vm));
        const __m512 pp = _mm512_maskz_loadu_ps(k, p + i);
        _mm512_mask_storeu_ps(v + i, k, vv);
        _mm512_mask_storeu_ps(p + i, k, nesterov ?
                              _mm512_fmadd_ps(vm, vv, _mm512_fmadd_ps(vl, gv, pp)) :
                              _mm512_add_ps(pp, vv));
    }
}
#endif

#ifdef MODELKIT_WINOGRAD
typedef struct { float *p, *v; const float *g; float m, neg_lr; int nesterov; } sgd_args;

static void sgd_momentum_range(const void *args, int64_t lo, int64_t hi) {
    const sgd_args *a = args;
    sgd_momentum(a->p + lo, a->v + lo, a->g + lo, hi - lo, a->m, a->neg_lr, a->nesterov);
}
#endif

int modelkit_sgd_momentum(float *restrict p, float *restrict v, const float *restrict g,
                          int64_t n, float m, float neg_lr, int nesterov) {
#ifdef MODELKIT_WINOGRAD
    const sgd_args args = {p, v, g, m, neg_lr, nesterov};
    modelkit_pool_for(sgd_momentum_range, &args, n, 16, POOL_GRAIN);
    return 0;
#else
    return -1;
#endif
}

/* y (n, C_out, ho, wo) = the 3x3 convolution (stride 1) of x (n, C_in, h, w) padded by pt, pb
   rows and pl, pr columns, with the filter's transforms u (modelkit_winograd_filter), plus
   bias (or NULL), relu'd when `relu`; where `pooled` is not NULL (ho and wo even) also its
   2x2 max pooling with stride 2, (n, C_out, ho / 2, wo / 2). Returns 0, or -1 when memory
   ran out (or no AVX-512 build, or an odd size to pool). */
int modelkit_winograd_conv(const float *restrict x, int64_t n, int64_t cin, int64_t h,
                           int64_t w, const float *restrict u, int64_t cout,
                           const float *restrict bias, int64_t pt, int64_t pb, int64_t pl,
                           int64_t pr, int relu, float *restrict y,
                           float *restrict pooled) {
#ifdef MODELKIT_WINOGRAD
    const wg_plan p = wg_make_plan(h, w, pt, pb, pl, pr, cin, cout, 256, 1 << 20);
    const int64_t ho = p.ho, wo = p.wo, tiles = p.tiles, tpad = p.tpad;
    if (pooled && (ho % 2 || wo % 2))
        return -1;
    float *v = wg_alloc(16 * cin * tpad);
    float *mm = wg_alloc(16 * cout * tpad);
    float *pad = wg_alloc(p.hp * p.wp);
    if (!v || !mm || !pad) {
        free(v);
        free(mm);
        free(pad);
        return -1;
    }
    memset(v, 0, (size_t)(16 * cin * tpad * 4));
    memset(pad, 0, (size_t)(p.hp * p.wp * 4));
    for (int64_t i0 = 0; i0 < n; i0 += p.per) {
        const int64_t imgs = n - i0 < p.per ? n - i0 : p.per;
        const int64_t cols = ((imgs * tiles + 15) / 16) * 16;
        for (int64_t im = 0; im < imgs; im++)
            wg_input_image(x + (i0 + im) * cin * h * w, cin, h, w, pt, pl, &p, pad, v, im, 0);
        for (int xi = 0; xi < 16; xi++)
            wg_gemm(u + xi * cout * cin, v + xi * cin * tpad, mm + xi * cout * tpad, cout, cin,
                    cols, tpad, tpad);
        for (int64_t im = 0; im < imgs; im++)
            for (int64_t o = 0; o < cout; o++)
                wg_output_plane(mm + o * tpad + im * tiles, cout * tpad, p.th_n, p.tw_n, ho, wo,
                                bias ? bias[o] : 0.0f, relu,
                                y + ((i0 + im) * cout + o) * ho * wo,
                                pooled ? pooled + ((i0 + im) * cout + o) * tiles : 0);
    }
    free(v);
    free(mm);
    free(pad);
    return 0;
#else
    (void)x; (void)n; (void)cin; (void)h; (void)w; (void)u; (void)cout; (void)bias;
    (void)pt; (void)pb; (void)pl; (void)pr; (void)relu; (void)y; (void)pooled;
    return -1;
#endif
}

#ifndef WG_GRAD_TILES
#define WG_GRAD_TILES 1024
#endif

/* The kernel gradient of the 3x3 stride-1 convolution of x (n, C_in, h, w), padded by pt,
   pb, pl, pr, whose output gradient is g (n, C_out, ho, wo): dw (3, 3, C_in, C_out) =
   the sum over images and outputs of g x (shifted), by F(3x3, 2x2): per 2x2 tile of g and
   4x4 patch of x, A^T [(G g G^T) . (B^T d B)] A, summed over the tiles in the transformed
   domain (16 GEMMs over the tiles, blocks of ~256 tiles), then A^T M A once, A^T =
   [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]]. Returns 0, or -1 when memory ran out (or no
   AVX-512 build). */
int modelkit_winograd_kernel_grad(const float *restrict x, const float *restrict g,
                                  int64_t n, int64_t cin, int64_t h, int64_t w,
                                  int64_t cout, int64_t pt, int64_t pb, int64_t pl,
                                  int64_t pr, float *restrict dw) {
#ifdef MODELKIT_WINOGRAD
    /* ~WG_GRAD_TILES tiles a block (each GEMM's rows stay in L2 while it runs, one plane
       of U and V at a time; fewer blocks, fewer horizontal sums) within 8 MiB */
    const wg_plan p = wg_make_plan(h, w, pt, pb, pl, pr, cin, cout, WG_GRAD_TILES, 8 << 20);
    const int64_t ho = p.ho, wo = p.wo, th_n = p.th_n, tw_n = p.tw_n, tiles = p.tiles;
    const int64_t tpad = p.tpad;
    const int64_t wq = 2 * tw_n, hq = 2 * th_n + 2 + 32 / wq + 1;
    float *v = wg_alloc(16 * cin * tpad);
    float *u = wg_alloc(16 * cout * tpad);
    float *mm = wg_alloc(16 * cout * cin);
    float *pad = wg_alloc(p.hp * p.wp);
    float *gp = wg_alloc(hq * wq);
    if (!v || !u || !mm || !pad || !gp) {
        free(v);
        free(u);
        free(mm);
        free(pad);
        free(gp);
        return -1;
    }
    memset(mm, 0, (size_t)(16 * cout * cin * 4));
    memset(pad, 0, (size_t)(p.hp * p.wp * 4));
    memset(gp, 0, (size_t)(hq * wq * 4));
    for (int64_t i0 = 0; i0 < n; i0 += p.per) {
        const int64_t imgs = n - i0 < p.per ? n - i0 : p.per;
        const int64_t used = imgs * tiles, cols = ((used + 15) / 16) * 16;
        for (int64_t im = 0; im < imgs; im++) {
            wg_input_image(x + (i0 + im) * cin * h * w, cin, h, w, pt, pl, &p, pad, v, im, 1);
            for (int64_t o = 0; o < cout; o++) {
                const float *src = g + ((i0 + im) * cout + o) * ho * wo;
                for (int64_t r = 0; r < ho; r++)
                    memcpy(gp + r * wq, src + r * wo, (size_t)(wo * 4));
                wg_grad_plane(gp, wq, th_n, tw_n, u + o * tpad + im * tiles, cout * tpad);
            }
        }
        for (int64_t q = 0; q < 16 * cin; q++)      /* the columns past the tiles: zero */
            memset(v + q * tpad + used, 0, (size_t)((cols - used) * 4));
        for (int64_t q = 0; q < 16 * cout; q++)
            memset(u + q * tpad + used, 0, (size_t)((cols - used) * 4));
        for (int xi = 0; xi < 16; xi++)
            wg_gemm_nt(u + xi * cout * tpad, v + xi * cin * tpad, mm + xi * cout * cin, cout,
                       cin, cols, tpad, tpad, cin);
    }
    for (int64_t o = 0; o < cout; o++)
        for (int64_t i = 0; i < cin; i++) {
            float m[4][4], t[3][4];
            for (int xi = 0; xi < 16; xi++)
                m[xi / 4][xi % 4] = mm[(xi * cout + o) * cin + i];
            for (int j = 0; j < 4; j++) {
                t[0][j] = m[0][j] + m[1][j] + m[2][j];
                t[1][j] = m[1][j] - m[2][j];
                t[2][j] = m[1][j] + m[2][j] + m[3][j];
            }
            for (int a = 0; a < 3; a++) {
                dw[((a * 3 + 0) * cin + i) * cout + o] = t[a][0] + t[a][1] + t[a][2];
                dw[((a * 3 + 1) * cin + i) * cout + o] = t[a][1] - t[a][2];
                dw[((a * 3 + 2) * cin + i) * cout + o] = t[a][1] + t[a][2] + t[a][3];
            }
        }
    free(v);
    free(u);
    free(mm);
    free(pad);
    free(gp);
    return 0;
#else
    (void)x; (void)g; (void)n; (void)cin; (void)h; (void)w; (void)cout; (void)pt; (void)pb;
    (void)pl; (void)pr; (void)dw;
    return -1;
#endif
}

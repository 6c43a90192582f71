/* Fused float32 optimizer kernels for modelkit/backend/native.py (loaded through ctypes).

   Each kernel makes in one pass over memory what the numpy update makes in several, with the
   same float32 operations in the same order (every product, sum, square root and quotient
   rounded to float32; built with -ffp-contract=off so none is fused), so its numbers are the
   numpy update's bit for bit. Where the compiler and C library allow it the loop is compiled
   for AVX-512, AVX2 and the baseline and the CPU picks one at load time. */

#include <math.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* Adam on one row of `width` values: m = m b1 (+ gm), v = v b2 (+ gv),
   p -= lr (m / (sqrt(v) + eps)). gm, gv: the row's gradient terms, or NULL for a zero
   gradient. */
CLONES static void adam_row(float *p, float *m, float *v, const float *gm, const float *gv,
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
void modelkit_adam_rows(float *p, float *m, float *v, int64_t width, int64_t lo, int64_t hi,
                        const int64_t *rows, const float *gm, const float *gv, int64_t n,
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
CLONES void modelkit_adam_dense(float *p, float *m, float *v, const float *g, int64_t size,
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

/* One step of an unmasked LSTM's backward pass through time (rnn_ops/lstm.py), tanh cell and
   sigmoid gates, from the step's gate values z (4, B, U: i, f, o, g), a(c') = ac, the
   previous cell c and the incoming dh (B, U): writes the four gate gradients into the
   step's row of dz (B, 4U, the same gate order) and turns dc (B, U) into the previous
   step's. The operations and their order are _lstm_backward_unmasked's:
     do = dh ac;  t = (dh o)(1 - ac ac);  dc += t;
     di = dc g;  df = dc c;  dg = dc i;  dc = dc f;
     d{i,f,o} *= (1 - s) s;  dg *= 1 - g g. */
CLONES void modelkit_lstm_bptt_step(const float *z, const float *ac, const float *c,
                                    const float *dh, float *dc, float *dz, int64_t B,
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
CLONES void modelkit_lstm_cell_step(float *t, const float *c, float *c_new, int64_t n) {
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

/* Inverted dropout of n values from raw random draws, as nn_ops' numpy dropout decodes
   them: `bits` = 1: value j is kept when bit 7 - j % 8 of byte j / 8 is set (numpy's
   unpackbits order); 8: when byte j < threshold; 16: when the native-endian uint16 j <
   threshold. mask = scale or 0, y = x mask. */
CLONES void modelkit_dropout(const float *x, const uint8_t *raw, int64_t n, int bits,
                             int threshold, float scale, float *mask, float *y) {
    const uint16_t *raw16 = (const uint16_t *)raw;
    for (int64_t j = 0; j < n; j++) {
        int keep = bits == 1 ? (raw[j >> 3] >> (7 - (j & 7))) & 1
                   : bits == 8 ? raw[j] < threshold
                   : raw16[j] < threshold;
        float m = keep ? scale : 0.0f;
        mask[j] = m;
        y[j] = x[j] * m;
    }
}

/* tanh's gradient: out = g (1 - y y), as math_ops' numpy VJP rounds it. */
CLONES void modelkit_tanh_grad(const float *g, const float *y, float *out, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        out[j] = g[j] * (1.0f - y[j] * y[j]);
}

/* Batch normalization's input gradient over `rows` rows of `width` values (norm_fast's
   pass 2): gx = g s + (x c + k) with the per-position factor rows s, c, k (width values),
   rounded as the numpy pass's four operations. */
CLONES void modelkit_bn_input_grad(const float *g, const float *x, const float *s,
                                   const float *c, const float *k, float *gx, int64_t rows,
                                   int64_t width) {
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = g + r * width, *xr = x + r * width;
        float *out = gx + r * width;
        for (int64_t p = 0; p < width; p++)
            out[p] = gr[p] * s[p] + (xr[p] * c[p] + k[p]);
    }
}

/* The gradient of a 2x2 max pooling with stride 2 over `planes` planes of h x w values
   (NCHW memory, h and w even): each window's gradient g goes to its first cell (row-major)
   equal to the window's maximum y, as pool_fast's tiled numpy passes give it:
   dx = gw * 1 there and gw * 0 in the window's other cells, gw = g (relu: g * (y > 0),
   written to gm). */
CLONES void modelkit_max_pool_2x2_grad(const float *x, const float *y, const float *g,
                                       int64_t planes, int64_t h, int64_t w, int relu,
                                       float *dx, float *gm) {
    const int64_t ho = h / 2, wo = w / 2;
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * h * w, *yp = y + p * ho * wo, *gp = g + p * ho * wo;
        float *dp = dx + p * h * w, *mp = relu ? gm + p * ho * wo : 0;
        for (int64_t i = 0; i < ho; i++) {
            const float *x0 = xp + 2 * i * w, *x1 = x0 + w;
            float *d0 = dp + 2 * i * w, *d1 = d0 + w;
            for (int64_t j = 0; j < wo; j++) {
                float m = yp[i * wo + j], gv = gp[i * wo + j];
                if (relu) {
                    gv = gv * (m > 0.0f ? 1.0f : 0.0f);
                    mp[i * wo + j] = gv;
                }
                int a = x0[2 * j] == m;
                int b = !a && x0[2 * j + 1] == m;
                int c = !a && !b && x1[2 * j] == m;
                int d = !a && !b && !c && x1[2 * j + 1] == m;
                d0[2 * j] = gv * (a ? 1.0f : 0.0f);
                d0[2 * j + 1] = gv * (b ? 1.0f : 0.0f);
                d1[2 * j] = gv * (c ? 1.0f : 0.0f);
                d1[2 * j + 1] = gv * (d ? 1.0f : 0.0f);
            }
        }
    }
}

/* One step of an unmasked GRU's backward pass through time (reset_after, tanh candidate,
   sigmoid gates), from the step's gate values z, r, hh (zt: 3, B, U), the previous state h,
   the candidate's recurrent term rh = h R_h + b_rh and the incoming e = dh' (B, U): the
   direct path to h into dh = e z, the gate gradients into the step's rows of dz and drec
   (B, 3U each: d z, d r, then d hh for dz and d hh r for drec), as gru.py's numpy step:
     dz = (h - hh) e;  dhh = ((1 - z) e)(1 - hh hh);  dr = dhh rh;  drec_h = dhh r;
     dz *= (1 - z) z;  dr *= (1 - r) r. */
CLONES void modelkit_gru_bptt_step(const float *zt, const float *h, const float *rh,
                                   const float *e, float *dh, float *dz, float *drec,
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

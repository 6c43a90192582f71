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

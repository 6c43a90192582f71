"""Speed of BatchNormalization / LayerNormalization training steps (forward + backward).

For each case the fused op (`batch_norm_moments`, one forward and one VJP) is timed against
(a) the same math composed from K primitives (mean, subtract, square, sqrt, ... each its own
tape record) and (b) a bare-numpy forward+backward written out in the same process, the
floor for this algorithm. Ratios: composed / fused (how much fusing saves) and
fused / numpy (the overhead left over the floor).

    python benchmarks/norm_ops.py [--repeats 20]
"""

import argparse
import time

import numpy as np

CASES = [   # (name, input shape, reduction axes, parameter broadcast shape)
    ("BN dense (256, 512)", (256, 512), (0,), (1, 512)),
    ("BN conv NHWC (32, 16, 16, 64)", (32, 16, 16, 64), (0, 1, 2), (1, 1, 1, 64)),
    ("LN seq (64, 50, 256)", (64, 50, 256), (2,), (1, 1, 256)),
]
EPS = 1e-3


def best_of(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def fused_step(x, g, b, axes, gy):
    from modelkit.backend.tape import apply
    from modelkit.backend.norm_ops import _batch_norm_moments
    from modelkit.backend.tensor import GradientTape
    with GradientTape() as tape:
        y, _, _ = apply(_batch_norm_moments, x, g, b, None, axes=axes, epsilon=EPS)
    return tape.gradient(y, [x, g, b], output_gradient=gy)


def composed_step(x, g, b, axes, gy):
    from modelkit import backend as K
    from modelkit.backend.tensor import GradientTape
    with GradientTape() as tape:
        mean = K.mean(x, axis=axes, keepdims=True)
        xc = x - mean
        var = K.mean(K.square(xc), axis=axes, keepdims=True)
        y = xc / K.sqrt(var + EPS) * g + b
    return tape.gradient(y, [x, g, b], output_gradient=gy)


def numpy_step(x, g, b, axes, gy):
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    var = np.mean(xc * xc, axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + EPS)
    xhat = xc * inv
    y = xhat * g + b
    gxhat = gy * g
    gx = inv * (gxhat - gxhat.mean(axis=axes, keepdims=True)
                - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
    red = tuple(i for i in range(x.ndim) if g.shape[i] == 1)
    return y, gx, (gy * xhat).sum(axis=red), gy.sum(axis=red)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from modelkit.backend.tensor import Variable
    rng = np.random.default_rng(0)
    print(f"{'case':34s} {'fused ms':>9s} {'composed ms':>12s} {'numpy ms':>9s} "
          f"{'composed/fused':>15s} {'fused/numpy':>12s}")
    for name, shape, axes, pshape in CASES:
        xa = rng.standard_normal(shape).astype(np.float32)
        ga = rng.random(pshape).astype(np.float32) + 0.5
        ba = rng.standard_normal(pshape).astype(np.float32)
        gy = rng.standard_normal(shape).astype(np.float32)
        x, g, b = Variable(xa), Variable(ga), Variable(ba)
        fused = best_of(lambda: fused_step(x, g, b, axes, gy), args.repeats)
        composed = best_of(lambda: composed_step(x, g, b, axes, gy), args.repeats)
        bare = best_of(lambda: numpy_step(xa, ga, ba, axes, gy), args.repeats)
        print(f"{name:34s} {fused * 1e3:9.2f} {composed * 1e3:12.2f} {bare * 1e3:9.2f} "
              f"{composed / fused:15.2f} {fused / bare:12.2f}")


if __name__ == "__main__":
    main()

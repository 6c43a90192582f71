"""Finite-difference gradient checking (float64), used by the test suite."""

import numpy as np

from .tensor import GradientTape, Variable


def numeric_vs_analytic(fn, arrays, seed=0, eps=1e-6):
    """Return (analytic, numeric) gradients of sum(fn(*vars) * w) for a fixed random w.

    `fn` receives `Variable`s made from `arrays` (cast to float64) and returns a Tensor.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    variables = [Variable(a, dtype="float64") for a in arrays]
    with GradientTape() as tape:
        out = fn(*variables)
    w = rng.standard_normal(out.shape)
    analytic = tape.gradient(out, variables, output_gradient=w)

    def objective():
        vals = [Variable(a, dtype="float64") for a in arrays]
        return float(np.sum(np.asarray(fn(*vals).value, dtype=np.float64) * w))

    numeric = []
    for a in arrays:
        g = np.zeros_like(a)
        flat = a.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            up = objective()
            flat[i] = orig - eps
            down = objective()
            flat[i] = orig
            g.reshape(-1)[i] = (up - down) / (2 * eps)
        numeric.append(g)
    return analytic, numeric


def assert_gradients_close(fn, arrays, rtol=1e-5, atol=1e-6, seed=0):
    analytic, numeric = numeric_vs_analytic(fn, arrays, seed=seed)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(a, n, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} differs from finite differences")

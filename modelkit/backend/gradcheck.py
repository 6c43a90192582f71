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


def assert_layer_gradients_close(layer, x, eps=1e-6, rtol=1e-5, atol=1e-6, training=None,
                                 before_call=None, wrt_input=True):
    """Finite differences of sum(layer(x) * w) w.r.t. x and each trainable weight (float64);
    a layer with several outputs: of all of them (flattened and joined).

    training: passed to every call when not None. before_call: run before every call (a
    noise layer re-seeds its generator there, so each call draws the same noise).
    wrt_input=False: the weights only (x holds indices, as an Embedding's does)."""
    from ..nesting import flatten_structure
    from .functions import concatenate, reshape
    from .tensor import StopRecording, Tensor
    kwargs = {} if training is None else {"training": training}

    def call(value):
        if before_call is not None:
            before_call()
        out = layer(value, **kwargs)
        if isinstance(out, (list, tuple)):          # several outputs (RNN return_state)
            out = concatenate([reshape(o, (o.shape[0], -1)) for o in flatten_structure(out)],
                              axis=1)
        return out

    x = np.asarray(x, np.float64)
    xv = Variable(x, dtype="float64")
    call(xv)                                        # builds the layer
    weights = layer.trainable_weights
    with GradientTape() as tape:
        out = call(xv)
    w = np.random.default_rng(0).standard_normal(out.shape)
    analytic = tape.gradient(out, [xv] + weights, output_gradient=w)
    for k, arr in enumerate([x] + [v.value for v in weights]):
        if k == 0 and not wrt_input:
            continue
        numeric = np.zeros(arr.shape)
        for i in np.ndindex(arr.shape):     # in place, whatever the strides (no reshape copy)
            orig = arr[i]
            vals = []
            for d in (eps, -eps):
                arr[i] = orig + d
                with StopRecording():
                    vals.append(float(np.sum(call(Tensor(x)).value * w)))
            arr[i] = orig
            numeric[i] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(analytic[k], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient {k} (0 = input) of {layer.name}")

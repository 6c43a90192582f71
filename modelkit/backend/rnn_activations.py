"""Activations usable inside the fused recurrent ops (`rnn_ops/`).

Each is an in-place forward paired with its derivative multiplied into a gradient
buffer, so the fused ops can apply them on preallocated arrays; `ACTIVATIONS` maps the
names a layer may pass and `get_activation(name)` looks one up.
"""

import numpy as np

from ..errors import ConfigError


class _Act:
    """An activation usable inside the fused ops.

    `fwd(x, out)` writes a(x) into `out` (which may be `x`); `grad(g, y, x, work=None)`
    multiplies `g` in place by a'(x), given the output `y` (and the input `x` where
    `needs_x`); `work`, shaped like `g`, is scratch space it may use."""

    __slots__ = ("name", "fwd", "grad", "needs_x", "hard_slope")

    def __init__(self, name, fwd, grad, needs_x=False, hard_slope=None):
        self.name, self.fwd, self.grad, self.needs_x = name, fwd, grad, needs_x
        self.hard_slope = hard_slope        # a hard sigmoid's slope (else None)


def _linear_fwd(x, out):
    if out is not x:
        np.copyto(out, x)
    return out


def _linear_grad(g, y, x, work=None):
    return g


def _tanh_fwd(x, out):
    return np.tanh(x, out=out)


def _tanh_grad(g, y, x, work=None):
    d = np.multiply(y, y, out=work)
    np.subtract(1, d, out=d)
    g *= d
    return g


def _sigmoid_fwd(x, out):
    # 0.5 * tanh(0.5 x) + 0.5: stable for any x, no overflow, 4 passes
    np.multiply(x, 0.5, out=out)
    return sigmoid_of_half(out)


def sigmoid_of_half(x_half):
    """sigmoid(x), in place on x_half = x / 2 (bit for bit what the "sigmoid" activation
    computes from x; the fused ops fold the halving into their weights)."""
    np.tanh(x_half, out=x_half)
    return tanh_to_sigmoid(x_half)


def tanh_to_sigmoid(t):
    """In place: tanh(x / 2) -> sigmoid(x) = 0.5 * tanh(x / 2) + 0.5."""
    t *= 0.5
    t += 0.5
    return t


def _sigmoid_grad(g, y, x, work=None):
    d = np.subtract(1, y, out=work)
    d *= y
    g *= d
    return g


def _hard_sigmoid(slope):
    def fwd(x, out):
        np.multiply(x, slope, out=out)
        out += 0.5
        return np.clip(out, 0.0, 1.0, out=out)

    def grad(g, y, x, work=None):
        inside = (y > 0) & (y < 1)
        np.multiply(g, inside, out=g)
        g *= slope
        return g
    return fwd, grad


def _relu_fwd(x, out):
    return np.maximum(x, 0, out=out)


def _relu_grad(g, y, x, work=None):
    np.multiply(g, y > 0, out=g)
    return g


def _elu_fwd(x, out):
    np.copyto(out, np.where(x > 0, x, np.expm1(np.minimum(x, 0))))
    return out


def _elu_grad(g, y, x, work=None):
    g *= np.where(y > 0, 1, y + 1).astype(g.dtype, copy=False)
    return g


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _selu_fwd(x, out):
    np.copyto(out, _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))))
    return out


def _selu_grad(g, y, x, work=None):
    g *= np.where(y > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA).astype(g.dtype, copy=False)
    return g


def _softplus_fwd(x, out):
    return np.logaddexp(0, x, out=out)


def _softplus_grad(g, y, x, work=None):
    g *= -np.expm1(-y)
    return g


def _softsign_fwd(x, out):
    d = np.abs(x)
    d += 1
    return np.divide(x, d, out=out)


def _softsign_grad(g, y, x, work=None):
    d = 1 - np.abs(y)
    g *= d * d
    return g


def _exp_fwd(x, out):
    return np.exp(x, out=out)


def _exp_grad(g, y, x, work=None):
    g *= y
    return g


def _swish_fwd(x, out):
    s = _sigmoid_fwd(x, np.empty_like(x))
    return np.multiply(x, s, out=out)


def _swish_grad(g, y, x, work=None):
    s = _sigmoid_fwd(x, np.empty_like(x))
    g *= s * (1 + x * (1 - s))
    return g


def _gelu_fwd(x, out):
    from .nn_ops import erf
    cdf = 0.5 * (1.0 + erf(x / np.asarray(np.sqrt(2.0), x.dtype)))
    return np.multiply(x, cdf, out=out)


def _gelu_grad(g, y, x, work=None):
    from .nn_ops import erf
    cdf = 0.5 * (1.0 + erf(x / np.asarray(np.sqrt(2.0), x.dtype)))
    pdf = np.exp(-0.5 * x * x) / np.asarray(np.sqrt(2.0 * np.pi), x.dtype)
    g *= cdf + x * pdf
    return g


ACTIVATIONS = {a.name: a for a in [
    _Act("linear", _linear_fwd, _linear_grad),
    _Act("tanh", _tanh_fwd, _tanh_grad),
    _Act("sigmoid", _sigmoid_fwd, _sigmoid_grad),
    _Act("hard_sigmoid", *_hard_sigmoid(0.2), hard_slope=0.2),                  # Keras 2
    _Act("keras3_hard_sigmoid", *_hard_sigmoid(1.0 / 6.0), hard_slope=1.0 / 6.0),  # Keras 3
    _Act("relu", _relu_fwd, _relu_grad),
    _Act("elu", _elu_fwd, _elu_grad),
    _Act("selu", _selu_fwd, _selu_grad),
    _Act("softplus", _softplus_fwd, _softplus_grad),
    _Act("softsign", _softsign_fwd, _softsign_grad),
    _Act("exponential", _exp_fwd, _exp_grad),
    _Act("swish", _swish_fwd, _swish_grad, needs_x=True),
    _Act("silu", _swish_fwd, _swish_grad, needs_x=True),
    _Act("gelu", _gelu_fwd, _gelu_grad, needs_x=True),
]}


def get_activation(name):
    """The fused-op activation called `name` (ConfigError listing the known ones)."""
    act = ACTIVATIONS.get(name)
    if act is None:
        raise ConfigError(f"activation {name!r} is not available inside the fused recurrent "
                          f"ops; use one of {sorted(ACTIVATIONS)}")
    return act


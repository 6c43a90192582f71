"""The user-facing Keras backend functions (`from modelkit import backend as K`).

Every function takes tensors, numpy arrays or scalars and returns a `Tensor`; anything
written with them is differentiable. Called on a symbolic tensor (from `Input` or a
layer), a function becomes a layer node of the functional graph, as in Keras: the backend
imports nothing above it, so the symbolic tensor's own type supplies that behaviour
(`__backend_function__(fn, args, kwargs)`, and `__backend_graph_function__(inputs, outputs)`
for `K.function`; the engine's `KerasTensor` implements both).
"""

import builtins
import functools

import numpy as np

from ..errors import ConfigError, ShapeError
from ..op_arguments import split_sizes
from . import array_ops, math_ops, nn_ops
from . import config, symbols
from .random_state import global_rng
from .tape import OPS, apply
from .tensor import Tensor, Variable, as_array, as_tensor
from .thread_stack import ThreadStack


# types whose instances can never carry `_keras_history` (no instance __dict__): the common
# arguments of a K function skip the attribute lookup, which costs a raised AttributeError
_CONCRETE = frozenset({Tensor, np.ndarray, float, int, bool, str, type(None), tuple, list,
                       np.float32, np.float64, np.int64, np.int32})


def is_symbolic(x):
    return type(x) not in _CONCRETE and hasattr(x, "_keras_history")


def _first_symbolic(items):
    """The first symbolic tensor in `items` (lists and tuples searched too): a graph tensor
    (from `Input` or a layer) if there is one, else a `K.placeholder` expression (`Symbol`),
    else None."""
    fallback = None
    for x in items:
        if is_symbolic(x):
            return x
        if isinstance(x, (list, tuple)):
            found = _first_symbolic(x)
            if found is not None and is_symbolic(found):
                return found
            fallback = fallback or found
        elif fallback is None and isinstance(x, symbols.Symbol):
            fallback = x
    return fallback


_RUNS = ThreadStack()      # the value tables of the graphs running on each thread


class graph_run:
    """Set by the engine while a model runs: a symbolic tensor of that graph met by a K
    function (a Keras 2 custom layer or loss closing over `z_mean`) stands for its value in
    this run."""

    def __init__(self, values):
        self.values = values           # id(symbolic tensor) -> (value, mask)

    def __enter__(self):
        _RUNS.items.append(self.values)

    def __exit__(self, *exc):
        _RUNS.items.pop()
        return False


def running_value(x):
    """The value of symbolic `x` in the graph running now, or None."""
    for values in reversed(_RUNS.items):
        hit = values.get(id(x))
        if hit is not None:
            return hit[0]
    return None


def _resolved(items):
    """`items` with every symbolic tensor replaced by its running value; None if one has none."""
    out = []
    for x in items:
        if isinstance(x, (list, tuple)):
            sub = _resolved(x)
            if sub is None:
                return None
            out.append(type(x)(sub))
        elif is_symbolic(x):
            value = running_value(x)
            if value is None:
                return None
            out.append(value)
        else:
            out.append(x)
    return out


class probe_scope:
    """Set while the engine probes a layer with dummy inputs: notes whether the call met
    symbolic tensors (it closes over graph tensors, so the dummy run means nothing)."""

    active = []

    def __init__(self):
        self.saw_symbolic = False

    def __enter__(self):
        probe_scope.active.append(self)
        return self

    def __exit__(self, *exc):
        probe_scope.active.pop()
        return False


def k_function(fn):
    """Make `fn` also accept symbolic tensors (it then becomes a graph node)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        symbolic = _first_symbolic(args + tuple(kwargs.values()))
        if symbolic is not None:
            if _RUNS.items and is_symbolic(symbolic):
                values = _resolved(list(args) + list(kwargs.values()))
                if values is not None:
                    return fn(*values[:len(args)], **dict(zip(kwargs, values[len(args):])))
            if probe_scope.active:
                probe_scope.active[-1].saw_symbolic = True
            return symbolic.__backend_function__(wrapper, args, kwargs)
        return fn(*args, **kwargs)
    wrapper.k_name = fn.__name__
    return wrapper


def _t(x):
    return as_tensor(x)


def _like(x, value):
    """A constant with x's float dtype (keeps float64 graphs float64)."""
    dt = x.dtype if np.issubdtype(np.asarray(x.value if isinstance(x, Tensor) else x).dtype,
                                  np.floating) else config.floatx()
    return np.asarray(value, dtype=dt)


# ---------------------------------------------------------------------------------------
# creation and inspection

def variable(value, dtype=None, name=None, constraint=None):
    return Variable(value, name=name or "variable", dtype=dtype or
                    (None if hasattr(value, "dtype") and not
                     np.issubdtype(np.asarray(value).dtype, np.floating) else config.floatx()),
                    constraint=constraint)


def constant(value, dtype=None, shape=None, name=None):
    arr = np.asarray(value, dtype=dtype or config.floatx())
    if shape is not None:
        arr = np.broadcast_to(arr, shape).copy()
    return Tensor(arr)


def zeros(shape, dtype=None, name=None):
    return Variable(np.zeros(shape, dtype=dtype or config.floatx()), name=name or "zeros")


def ones(shape, dtype=None, name=None):
    return Variable(np.ones(shape, dtype=dtype or config.floatx()), name=name or "ones")


def zeros_like(x, dtype=None, name=None):
    return Tensor(np.zeros_like(as_array(x), dtype=dtype))


def ones_like(x, dtype=None, name=None):
    return Tensor(np.ones_like(as_array(x), dtype=dtype))


def eye(size, dtype=None, name=None):
    return Variable(np.eye(size, dtype=dtype or config.floatx()), name=name or "eye")


def get_value(x):
    return np.array(as_array(x))


def batch_get_value(xs):
    return [get_value(x) for x in xs]


def set_value(x, value):
    if not isinstance(x, Variable):
        raise ConfigError(f"set_value needs a Variable, got {type(x).__name__}")
    x.assign(value)


def batch_set_value(pairs):
    for x, v in pairs:
        set_value(x, v)


def eval(x):  # noqa: A001 - Keras name
    return get_value(x)


def update(x, new_x):
    """Keras 2's K.update: assign `new_x` to the variable `x` now; returns `x`."""
    set_value(x, as_array(new_x))
    return x


def update_add(x, increment):
    return update(x, get_value(x) + as_array(increment))


def update_sub(x, decrement):
    return update(x, get_value(x) - as_array(decrement))


@k_function
def one_hot(indices, num_classes):
    """Keras's K.one_hot: integer indices of any shape -> (..., num_classes) floats."""
    idx = np.asarray(as_array(indices))
    return Tensor((idx[..., None] == np.arange(int(num_classes))).astype(config.floatx()))


@k_function
def shape(x):
    """The shape as a Tensor of ints (concrete here; symbolic tensors give a node)."""
    return Tensor(np.asarray(as_array(x).shape, dtype=np.int64))


def int_shape(x):
    """The shape as a tuple (None for unknown dims of symbolic tensors)."""
    if is_symbolic(x) or isinstance(x, (Variable, symbols.Symbol)):
        return tuple(x.shape)
    return tuple(as_array(x).shape)


def ndim(x):
    return len(int_shape(x))


def dtype(x):
    return str(x.dtype)


def count_params(x):
    return int(np.prod(int_shape(x)))


def is_tensor(x):
    return isinstance(x, Tensor) or is_symbolic(x)


def is_keras_tensor(x):
    return is_symbolic(x)


# ---------------------------------------------------------------------------------------
# elementwise math

@k_function
def cast(x, dtype):
    return apply(math_ops._cast, _t(x), dtype=np.dtype(dtype))


def _binary(opdef):
    @k_function
    def fn(x, y):
        x_t = x if isinstance(x, Tensor) else None
        y_t = y if isinstance(y, Tensor) else None
        ref = x_t if x_t is not None else y_t
        if ref is not None and np.issubdtype(ref.dtype, np.floating):
            if x_t is None:
                x = np.asarray(x, dtype=ref.dtype) if np.isscalar(x) else x
            if y_t is None:
                y = np.asarray(y, dtype=ref.dtype) if np.isscalar(y) else y
        return apply(opdef, x, y)
    fn.__name__ = fn.k_name = opdef.name
    return fn


add = _binary(math_ops._add)
subtract = _binary(math_ops._subtract)
multiply = _binary(math_ops._multiply)
divide = _binary(math_ops._divide)
pow_ = _binary(math_ops._power)
pow_.k_name = "pow_"
maximum = _binary(math_ops._maximum)
minimum = _binary(math_ops._minimum)
equal = _binary(math_ops._equal)
not_equal = _binary(math_ops._not_equal)
greater = _binary(math_ops._greater)
greater_equal = _binary(math_ops._greater_equal)
less = _binary(math_ops._less)
less_equal = _binary(math_ops._less_equal)
logical_and = _binary(math_ops._logical_and)
logical_or = _binary(math_ops._logical_or)


@k_function
def pow(x, a):  # noqa: A001 - Keras name
    return pow_(x, a)


def _unary(opdef, name=None):
    @k_function
    def fn(x):
        return apply(opdef, _t(x))
    fn.__name__ = fn.k_name = name or opdef.name
    return fn


negative = _unary(math_ops._negative)
exp = _unary(math_ops._exp)
log = _unary(math_ops._log)
log1p = _unary(math_ops._log1p)
expm1 = _unary(math_ops._expm1)
sqrt = _unary(math_ops._sqrt)
square = _unary(math_ops._square)
abs = _unary(math_ops._abs, "abs")  # noqa: A001
sin = _unary(math_ops._sin)
cos = _unary(math_ops._cos)
tanh = _unary(math_ops._tanh)
sign = _unary(math_ops._sign)
round = _unary(math_ops._round, "round")  # noqa: A001
floor = _unary(math_ops._floor)
ceil = _unary(math_ops._ceil)
logical_not = _unary(math_ops._logical_not)
rsqrt = _unary(math_ops._rsqrt)
reciprocal = _unary(math_ops._reciprocal)


def _shared_op(name):
    """An op the ONNX importer registers too (`onnx_ops.extra_ops`: erf, einsum)."""
    from .onnx_ops import extra_ops  # noqa: F401  (registers them)
    return OPS.get(name)


@k_function
def erf(x):
    """The error function (tf.math.erf, keras.ops.erf)."""
    return apply(_shared_op("erf"), _t(x))


@k_function
def einsum(equation, *operands):
    """np.einsum / tf.einsum / keras.ops.einsum, ellipses, broadcasting and repeated letters
    (diagonals) included; the gradients are einsums too."""
    from ..onnx_spec import einsum_parts
    from .onnx_ops.extra_ops import einsum_plan
    ins, _ = einsum_parts(equation)
    if len(ins) != len(operands):
        raise ConfigError(f"einsum {equation!r} names {len(ins)} operands, got {len(operands)}")
    xs = [_t(o) for o in operands]
    steps, plain = einsum_plan(equation, [x.shape for x in xs])
    for i, (shape, diagonal) in enumerate(steps):
        if shape is not None:
            xs[i] = apply(OPS.get("broadcast_to"), xs[i], shape=shape)
        if diagonal is not None:
            xs[i] = apply(_shared_op("diagonal"), xs[i], spec=diagonal[0], out=diagonal[1])
    return apply(_shared_op("einsum"), *xs, equation=plain)
@k_function
def sigmoid(x):
    x = _t(x)
    out = apply(nn_ops._sigmoid, x)
    out._logits = ("sigmoid", x, None)
    return out


hard_sigmoid = _unary(nn_ops._hard_sigmoid)
keras3_hard_sigmoid = _unary(nn_ops._keras3_hard_sigmoid)    # clip(x / 6 + 0.5, 0, 1)
softsign = _unary(nn_ops._softsign)
softplus = _unary(nn_ops._softplus)
selu = _unary(nn_ops._selu)
swish = _unary(nn_ops._swish)
silu = swish
stop_gradient = _unary(math_ops._stop_gradient)


@k_function
def clip(x, min_value=None, max_value=None):
    x = _t(x)
    lo = None if min_value is None else _like(x, min_value)
    hi = None if max_value is None else _like(x, max_value)
    return apply(math_ops._clip, x, lo=lo, hi=hi)


@k_function
def relu(x, alpha=0.0, max_value=None, threshold=0.0):
    return apply(nn_ops._relu, _t(x), negative_slope=alpha, max_value=max_value,
                 threshold=threshold)


@k_function
def elu(x, alpha=1.0):
    return apply(nn_ops._elu, _t(x), alpha=alpha)


@k_function
def gelu(x, approximate=False):
    return apply(nn_ops._gelu, _t(x), approximate=approximate)


@k_function
def softmax(x, axis=-1):
    x = _t(x)
    out = apply(nn_ops._softmax, x, axis=axis)
    out._logits = ("softmax", x, axis)
    return out


@k_function
def log_softmax(x, axis=-1):
    return apply(nn_ops._log_softmax, _t(x), axis=axis)


@k_function
def where(condition, x, y):
    cond = as_array(condition).astype(bool)
    return apply(math_ops._where, cond, x, y)


switch = where


@k_function
def dropout(x, level, noise_shape=None, seed=None, rng=None):
    if rng is None:
        rng = np.random.default_rng(seed) if seed is not None else global_rng()
    return apply(nn_ops._dropout, _t(x), rate=float(level), noise_shape=noise_shape, rng=rng)


def in_train_phase(x, alt, training=None):
    """`x` in training, `alt` otherwise (callables are called); `training` defaults to the
    phase of the running model, as Keras 2's learning phase does."""
    if training is None or isinstance(training, config.LearningPhase):
        training = config.current_phase()
    chosen = x if (training if not isinstance(training, Tensor) else bool(training.value)) \
        else alt
    return chosen() if callable(chosen) else chosen


def in_test_phase(x, alt, training=None):
    return in_train_phase(alt, x, training=training)


# ---------------------------------------------------------------------------------------
# random tensors (numpy's global random state unless `seed` is given, so np.random.seed
# makes them reproducible as in Keras 2)

def _random_state(seed):
    return np.random.RandomState(seed) if seed is not None else np.random.mtrand._rand


def _shape_tuple(shape, fn):
    values = as_array(shape).reshape(-1).tolist() if isinstance(shape, Tensor) else \
        [int(as_array(d)) for d in (shape if isinstance(shape, (list, tuple)) else [shape])]
    if builtins.any(int(d) < 0 for d in values):
        raise ShapeError(f"K.{fn}: shape must be non-negative dims, got {values}")
    return tuple(int(d) for d in values)


@k_function
def random_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    draws = _random_state(seed).normal(mean, stddev, _shape_tuple(shape, "random_normal"))
    return Tensor(draws.astype(config.dtype_of(dtype)))


@k_function
def random_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    draws = _random_state(seed).uniform(minval, maxval, _shape_tuple(shape, "random_uniform"))
    return Tensor(draws.astype(config.dtype_of(dtype)))


@k_function
def random_binomial(shape, p=0.0, dtype=None, seed=None):
    draws = _random_state(seed).uniform(0.0, 1.0, _shape_tuple(shape, "random_binomial")) < p
    return Tensor(draws.astype(config.dtype_of(dtype)))


@k_function
def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal draws redrawn until within two standard deviations of the mean."""
    rs = _random_state(seed)
    draws = rs.normal(0.0, 1.0, _shape_tuple(shape, "truncated_normal"))
    bad = np.abs(draws) > 2.0
    while bad.any():
        draws[bad] = rs.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(draws) > 2.0
    return Tensor((draws * stddev + mean).astype(config.dtype_of(dtype)))


# ---------------------------------------------------------------------------------------
# reductions

def _reduction(opdef):
    @k_function
    def fn(x, axis=None, keepdims=False):
        return apply(opdef, _t(x), axis=axis, keepdims=keepdims)
    fn.__name__ = fn.k_name = opdef.name
    return fn


sum = _reduction(math_ops._sum)  # noqa: A001
mean = _reduction(math_ops._mean)
max = _reduction(math_ops._max)  # noqa: A001
min = _reduction(math_ops._min)  # noqa: A001
prod = _reduction(math_ops._prod)
logsumexp = _reduction(math_ops._logsumexp)


@k_function
def var(x, axis=None, keepdims=False):
    x = _t(x)
    m = mean(x, axis=axis, keepdims=True)
    return mean(square(subtract(x, m)), axis=axis, keepdims=keepdims)


@k_function
def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


@k_function
def argmax(x, axis=-1):
    return apply(math_ops._argmax, _t(x), axis=axis)


@k_function
def argmin(x, axis=-1):
    return apply(math_ops._argmin, _t(x), axis=axis)


@k_function
def any(x, axis=None, keepdims=False):  # noqa: A001
    return Tensor(np.any(as_array(x), axis=axis, keepdims=keepdims))


@k_function
def all(x, axis=None, keepdims=False):  # noqa: A001
    return Tensor(np.all(as_array(x), axis=axis, keepdims=keepdims))


@k_function
def l2_normalize(x, axis=None):
    x = _t(x)
    sq = sum(square(x), axis=axis, keepdims=True)
    return multiply(x, apply(math_ops._reciprocal, sqrt(maximum(sq, _like(x, 1e-12)))))


# ---------------------------------------------------------------------------------------
# products

@k_function
def dot(x, y):
    """Keras K.dot: matrix product; for nd tensors, contracts x's last axis with y's
    second-to-last (y of rank 2: its first)."""
    x, y = _t(x), _t(y)
    if y.ndim <= 2:
        if x.ndim >= 2 and y.ndim == 2:
            return apply(math_ops._dense, x, y)
        return apply(math_ops._matmul, x, y)
    return apply(math_ops._tensordot, x, y, axes=([x.ndim - 1], [y.ndim - 2]))


@k_function
def dense(x, kernel, bias=None):
    """`x @ kernel + bias` over the last axis of x (any rank) as one fused op: what a Dense
    layer computes (the bias add is folded into the GEMM's gradient)."""
    if bias is None:
        return apply(math_ops._dense, _t(x), _t(kernel))
    return apply(math_ops._dense, _t(x), _t(kernel), _t(bias))


@k_function
def matmul(x, y):
    return apply(math_ops._matmul, _t(x), _t(y))


@k_function
def batch_dot(x, y, axes=None):
    """Keras batch_dot: per-sample dot over `axes` (default: x's last axis with y's
    last axis for rank-2 y, else y's second-to-last). Two rank-2 inputs give (batch, 1)."""
    x, y = _t(x), _t(y)
    if isinstance(axes, int):
        axes = (axes, axes)
    if axes is None:
        axes = (x.ndim - 1, y.ndim - 1 if y.ndim == 2 else y.ndim - 2)
    ax, ay = axes[0] % x.ndim, axes[1] % y.ndim
    if ax == 0 or ay == 0:
        raise ShapeError("batch_dot cannot contract the batch axis 0")
    if x.shape[ax] != y.shape[ay]:
        raise ShapeError(f"batch_dot: axis {ax} of x {x.shape} and axis {ay} of y {y.shape} "
                         "differ in size")
    xt = _move_axis(x, ax, x.ndim - 1)
    yt = _move_axis(y, ay, 1)
    b, k = x.shape[0], x.shape[ax]
    x_free, y_free = tuple(xt.shape[1:-1]), tuple(yt.shape[2:])
    out = matmul(reshape(xt, (b, -1, k)), reshape(yt, (b, k, -1)))
    if x.ndim == 2 and y.ndim == 2:
        return reshape(out, (b, 1))
    return reshape(out, (b,) + x_free + y_free)


def _move_axis(x, src, dst):
    order = [i for i in range(x.ndim) if i != src]
    order.insert(dst, src)
    return transpose(x, order) if order != list(range(x.ndim)) else x


# ---------------------------------------------------------------------------------------
# shapes

@k_function
def reshape(x, shape):
    return apply(array_ops._reshape, _t(x), shape=tuple(int(d) for d in shape))


@k_function
def transpose(x, axes=None):
    return apply(array_ops._transpose, _t(x), axes=axes)


permute_dimensions = transpose


@k_function
def expand_dims(x, axis=-1):
    x = _t(x)
    ax = axis % (x.ndim + 1)
    return reshape(x, x.shape[:ax] + (1,) + x.shape[ax:])


@k_function
def squeeze(x, axis):
    x = _t(x)
    ax = axis % x.ndim
    if x.shape[ax] != 1:
        raise ShapeError(f"squeeze: axis {axis} of shape {x.shape} is not 1")
    return reshape(x, x.shape[:ax] + x.shape[ax + 1:])


@k_function
def flatten(x):
    return reshape(x, (-1,))


@k_function
def batch_flatten(x):
    x = _t(x)
    return reshape(x, (x.shape[0], -1))


@k_function
def concatenate(tensors, axis=-1):
    return apply(array_ops._concatenate, *[_t(t) for t in tensors], axis=axis)


@k_function
def stack(tensors, axis=0):
    return apply(array_ops._stack, *[_t(t) for t in tensors], axis=axis)


@k_function
def unstack(x, axis=0):
    x = _t(x)
    return [gather_slice(x, i, axis) for i in range(x.shape[axis])]


@k_function
def split(x, num_or_size_splits, axis=0):
    """tf.split: the parts of x along `axis` (see `split_sizes`), a list of tensors."""
    x = _t(x)
    starts = np.cumsum([0] + split_sizes(x.shape[axis], num_or_size_splits))
    index = [builtins.slice(None)] * x.ndim
    parts = []
    for a, b in zip(starts[:-1], starts[1:]):
        index[axis] = builtins.slice(int(a), int(b))
        parts.append(apply(array_ops._getitem, x, index=tuple(index)))
    return parts


def gather_slice(x, i, axis):
    index = [builtins.slice(None)] * x.ndim
    index[axis] = i
    return apply(array_ops._getitem, x, index=tuple(index))


@k_function
def gather(reference, indices):
    return apply(array_ops._gather, _t(reference), as_array(indices).astype(np.intp), axis=0)


@k_function
def repeat_elements(x, rep, axis):
    return apply(array_ops._repeat, _t(x), repeats=int(rep), axis=axis)


@k_function
def repeat(x, n):
    """(batch, dim) -> (batch, n, dim)."""
    x = _t(x)
    return apply(array_ops._repeat, expand_dims(x, 1), repeats=int(n), axis=1)


@k_function
def tile(x, n):
    return apply(array_ops._tile, _t(x), reps=tuple(n) if isinstance(n, (list, tuple)) else (n,))


@k_function
def reverse(x, axes):
    return apply(array_ops._flip, _t(x), axis=axes)


@k_function
def pad(x, pad_width, constant=0.0):
    return apply(array_ops._pad, _t(x), pad_width=tuple(tuple(p) for p in pad_width),
                 constant=constant)


@k_function
def slice(x, start, size):  # noqa: A001 - Keras name
    index = tuple(builtins.slice(st, None if n == -1 else st + n) for st, n in zip(start, size))
    return apply(array_ops._getitem, _t(x), index=index)


def getitem(x, index):
    return apply(array_ops._getitem, _t(x), index=index)


# ---------------------------------------------------------------------------------------
# losses helpers used by modelkit.losses

def _logits_of(output, kind, axis):
    """The pre-activation tensor when `output` is a softmax/sigmoid output (tf.keras does
    the same: the loss is then computed from logits, exactly and stably)."""
    src = output._logits
    if src is None or src[0] != kind:
        return None
    if kind == "softmax" and (src[2] % output.ndim) != (axis % output.ndim):
        return None
    return src[1]


@k_function
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Keras semantics: probabilities are clipped to [eps, 1-eps] after renormalising.
    When `output` came straight from a softmax op, its logits are used (as tf.keras does)."""
    output = _t(output)
    target = _t(target)
    logits = output if from_logits else _logits_of(output, "softmax", axis)
    if logits is not None:
        if target.dtype != logits.dtype:
            target = cast(target, logits.dtype)
        return apply(nn_ops._softmax_cross_entropy, target, logits, axis=axis)
    output = divide(output, sum(output, axis=axis, keepdims=True))
    eps = config.epsilon()
    output = clip(output, eps, 1.0 - eps)
    return negative(sum(multiply(target, log(output)), axis=axis))


@k_function
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    output = _t(output)
    labels = as_array(target)
    if labels.ndim == output.ndim:
        labels = labels.reshape(labels.shape[:-1])
    logits = output if from_logits else _logits_of(output, "softmax", -1)
    if logits is not None:
        return apply(nn_ops._sparse_softmax_cross_entropy, labels.astype(np.intp), logits)
    eps = config.epsilon()
    output = clip(divide(output, sum(output, axis=-1, keepdims=True)), eps, 1.0 - eps)
    logp = log(output)
    idx = np.indices(labels.shape)
    picked = apply(array_ops._getitem, logp, index=tuple(idx) + (labels.astype(np.intp),))
    return negative(picked)


@k_function
def binary_crossentropy(target, output, from_logits=False):
    output = _t(output)
    target = cast(target, output.dtype) if as_array(target).dtype != output.dtype else _t(target)
    logits = output if from_logits else _logits_of(output, "sigmoid", None)
    if logits is not None:
        return apply(nn_ops._sigmoid_cross_entropy, target, logits)
    eps = config.epsilon()
    output = clip(output, eps, 1.0 - eps)
    one = _like(output, 1.0)
    return negative(add(multiply(target, log(output)),
                        multiply(subtract(one, target), log(subtract(one, output)))))


# ---------------------------------------------------------------------------------------
# gradients and functions

def gradients(loss, variables):
    """d sum(loss) / d each of `variables` (a tensor or a list).

    On symbolic tensors (Keras 2's idiom) the result is symbolic: gradients with respect to
    inputs, intermediate tensors or weights, evaluated by `K.function`; the symbolic tensor's
    type builds them (`__backend_gradients__(loss, sources)`). On concrete tensors the loss
    must have been computed inside a `GradientTape` that records it."""
    from .tensor import active_tape
    sources = list(variables) if isinstance(variables, (list, tuple)) else [variables]
    symbolic = _first_symbolic([loss, sources])
    if symbolic is not None:
        return symbolic.__backend_gradients__(loss, sources)
    tape = active_tape()
    if tape is None:
        raise ConfigError("K.gradients needs the loss to be computed inside a "
                          "GradientTape, or symbolic tensors passed to K.function")
    persistent, tape.persistent = tape.persistent, True    # the tape's owner still needs it
    try:
        return [Tensor(g) for g in tape.gradient(sum(_t(loss)), sources)]
    finally:
        tape.persistent = persistent


def function(inputs, outputs, updates=None, name=None):
    """Keras K.function: a callable mapping a list of input values to output values.

    `inputs` and `outputs` are symbolic tensors of a functional graph; their type (the
    engine's `KerasTensor`) builds the runner.
    """
    symbolic = _first_symbolic([inputs, outputs])
    if symbolic is None:
        raise ConfigError("K.function needs symbolic tensors (from Input or a layer) as "
                          "inputs and outputs")
    return symbolic.__backend_graph_function__(inputs, outputs)


__all__ = [n for n, v in list(globals().items())
           if not n.startswith("_") and callable(v) and getattr(v, "__module__", "") == __name__]

"""modelkit's backend: numpy tensors with tape-based reverse-mode autodiff.

Also the user-facing Keras backend module: `from modelkit import backend as K`.
Op implementations live in `math_ops`, `array_ops`, `nn_ops` (and the layer-specific
`conv_ops`, `rnn_ops` modules), all registered in `tape.OPS`; layers reach the layer
ops through public functions (`spatial_functions`: K.conv, K.max_pool, ...).
"""

from . import array_ops, math_ops, nn_ops  # noqa: F401  (registers the ops)
from . import rnn_ops  # noqa: F401
from . import conv_ops  # noqa: F401
from .norm_ops import batch_normalization, normalize_batch_in_training  # noqa: F401
from .spatial_functions import (average_pool, conv, conv1d, conv2d,  # noqa: F401
                                conv2d_transpose, conv3d, conv_transpose,
                                depthwise_conv, max_pool, normalize_moments, pool2d, pool3d,
                                resize, resize_images, resize_volumes, separable_conv,
                                upsample)
from .config import (clear_session, epsilon, floatx, get_uid,  # noqa: F401
                     image_data_format, image_dim_ordering, learning_phase,
                     normalize_data_format, reset_uids, set_epsilon, set_floatx,
                     set_image_data_format, set_image_dim_ordering, set_learning_phase)
from .tape import OPS, apply, defop  # noqa: F401
from .functions import *  # noqa: F401,F403
from .functions import abs, all, any, max, min, pow, round, slice, sum  # noqa: F401,A004
from .symbols import placeholder  # noqa: F401
from .tensor import GradientTape, StopRecording, Tensor, Variable  # noqa: F401
from . import functions as _f


def _install_operators():
    """Python operators on Tensor route through the differentiable K functions."""
    T = Tensor

    def swap(fn):
        return lambda a, b: fn(b, a)

    T.__add__ = lambda a, b: _f.add(a, b)
    T.__radd__ = swap(_f.add)
    T.__sub__ = lambda a, b: _f.subtract(a, b)
    T.__rsub__ = swap(_f.subtract)
    T.__mul__ = lambda a, b: _f.multiply(a, b)
    T.__rmul__ = swap(_f.multiply)
    T.__truediv__ = lambda a, b: _f.divide(a, b)
    T.__rtruediv__ = swap(_f.divide)
    T.__pow__ = lambda a, b: _f.pow_(a, b)
    T.__rpow__ = swap(_f.pow_)
    T.__matmul__ = lambda a, b: _f.matmul(a, b)
    T.__rmatmul__ = swap(_f.matmul)
    T.__neg__ = lambda a: _f.negative(a)
    T.__abs__ = lambda a: _f.abs(a)
    T.__getitem__ = lambda a, idx: _f.getitem(a, idx)
    T.__gt__ = lambda a, b: _f.greater(a, b)
    T.__ge__ = lambda a, b: _f.greater_equal(a, b)
    T.__lt__ = lambda a, b: _f.less(a, b)
    T.__le__ = lambda a, b: _f.less_equal(a, b)
    T.__hash__ = object.__hash__
    T.T = property(lambda a: _f.transpose(a))


_install_operators()

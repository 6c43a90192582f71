"""`keras.engine.topology`: the Keras 1/2 module custom-layer code imports from
(`from keras.engine.topology import Layer, InputSpec`; Keras 1's `Merge`, `merge`,
`Container`)."""

from .base_layer import Layer  # noqa: F401
from .functional import Model as Container  # noqa: F401
from .input_layer import Input, InputLayer  # noqa: F401
from .input_spec import InputSpec  # noqa: F401
from .keras_tensor import Node  # noqa: F401


def __getattr__(name):
    if name in ("Merge", "merge"):          # the Keras 1 merge layer lives with the layers
        from ..layers import legacy_merge
        return getattr(legacy_merge, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

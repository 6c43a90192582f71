"""The `<weight>_initializer` / `_regularizer` / `_constraint` arguments of weighted layers.

Dense, the convolutions and the Keras 1 dense layers take the same per-weight options and
write them back in the same (Keras) config order; these functions resolve and serialise
them so each layer only names its keys.
"""

from .. import constraints, initializers, regularizers

_ROLES = {"initializer": initializers, "regularizer": regularizers, "constraint": constraints}

# Keras's config order for a kernel and a bias (the activity regulariser sits among them).
KERNEL_BIAS_KEYS = ("kernel_initializer", "bias_initializer", "kernel_regularizer",
                    "bias_regularizer", "activity_regularizer", "kernel_constraint",
                    "bias_constraint")


def option_keys(*weights):
    """Keras's config order for weights' options: initializers, regularizers, constraints."""
    return tuple(f"{w}_{role}" for role in _ROLES for w in weights)


def _module(key):
    return _ROLES[key.rsplit("_", 1)[1]]


def set_options(layer, **options):
    """Store each `<weight>_<role>=value` on the layer, resolved by its role's `get`."""
    for key, value in options.items():
        setattr(layer, key, _module(key).get(value))


def options_config(layer, keys):
    """`{key: serialised layer.<key>}` for the given option keys, in their order."""
    return {key: _module(key).serialize(getattr(layer, key)) for key in keys}


def set_kernel_bias(layer, kernel_initializer, bias_initializer, kernel_regularizer,
                    bias_regularizer, kernel_constraint, bias_constraint):
    """The six kernel/bias options of Dense-like and conv layers."""
    set_options(layer, kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                bias_constraint=bias_constraint)


def kernel_bias_config(layer):
    """The kernel/bias options and the activity regulariser, in Keras's config order."""
    return options_config(layer, KERNEL_BIAS_KEYS)


def add_weight_for(layer, weight, shape, name=None):
    """`layer.add_weight` with the layer's `<weight>_initializer/_regularizer/_constraint`."""
    return layer.add_weight(name or weight, shape,
                            initializer=getattr(layer, f"{weight}_initializer"),
                            regularizer=getattr(layer, f"{weight}_regularizer"),
                            constraint=getattr(layer, f"{weight}_constraint"))


def add_bias(layer, shape):
    """The bias weight when `layer.use_bias`, else None."""
    return add_weight_for(layer, "bias", shape) if layer.use_bias else None

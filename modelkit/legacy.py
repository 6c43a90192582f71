"""Keras 1 spellings: accepted with a DeprecationWarning that names the Keras 2 spelling."""

import warnings

from .errors import ConfigError

# Argument names that changed everywhere (layer-specific ones live with their layer).
COMMON_RENAMES = {
    "init": "kernel_initializer",
    "inner_init": "recurrent_initializer",
    "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer",
    "U_regularizer": "recurrent_regularizer",
    "W_constraint": "kernel_constraint",
    "b_constraint": "bias_constraint",
    "U_constraint": "recurrent_constraint",
    "bias": "use_bias",
    "nb_filter": "filters",
    "border_mode": "padding",
    "subsample": "strides",
    "subsample_length": "strides",
    "dim_ordering": "data_format",
    "inner_activation": "recurrent_activation",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "pool_length": "pool_size",
    "stride": "strides",
    "atrous_rate": "dilation_rate",
    "filter_length": "kernel_size",
}


def warn_renamed(old, new, where):
    warnings.warn(f"{where}: the Keras 1 argument {old!r} is deprecated; use {new!r} instead",
                  DeprecationWarning, stacklevel=4)


def rename_kwargs(kwargs, where, renames=None, convert=None):
    """Rewrite Keras 1 names in `kwargs` (in place) to Keras 2 names, warning once each.

    `renames` maps old->new (defaults to COMMON_RENAMES); `convert` maps a new name to a
    function applied to the old value (e.g. 'th' -> 'channels_first').
    """
    renames = COMMON_RENAMES if renames is None else {**COMMON_RENAMES, **renames}
    for old, new in renames.items():
        if old in kwargs:
            if new in kwargs:
                raise ConfigError(f"{where}: both {old!r} (Keras 1) and {new!r} were given")
            value = kwargs.pop(old)
            if convert and new in convert:
                value = convert[new](value)
            warn_renamed(old, new, where)
            kwargs[new] = value
    return kwargs


def convert_border_mode(value):
    if value == "full":
        raise ConfigError("border_mode='full' was Theano-only in Keras 1 and has no Keras 2 "
                          "equivalent; pad explicitly with ZeroPadding and use 'valid'")
    return value


def convert_dim_ordering(value):
    from .backend.config import normalize_data_format
    return normalize_data_format(value)

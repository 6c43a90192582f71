"""modelkit.utils: Keras's utility names (to_categorical, normalize, Sequence, Progbar, get_file,
plot_model)."""

from modelkit.utils.data_utils import Sequence, get_file
from modelkit.utils.generic_utils import Progbar
from modelkit.utils.np_utils import normalize, to_categorical

__all__ = ["to_categorical", "normalize", "Sequence", "Progbar", "get_file", "set_random_seed",
           "plot_model", "model_to_dot", "get_custom_objects", "custom_object_scope",
           "CustomObjectScope"]


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=96, **kwargs):
    """Keras's `plot_model` (pydot + Graphviz): see `modelkit.utils.vis_utils`."""
    from modelkit.utils.vis_utils import plot_model as _plot_model
    return _plot_model(model, to_file=to_file, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi, **kwargs)


def __getattr__(name):
    from modelkit.utils import generic_utils
    if name in generic_utils._CUSTOM_OBJECT_NAMES:
        return getattr(generic_utils, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_to_dot(model, **kwargs):
    """Keras's `model_to_dot`: a pydot graph of the model (see `modelkit.utils.vis_utils`)."""
    from modelkit.utils.vis_utils import model_to_dot as _model_to_dot
    return _model_to_dot(model, **kwargs)


def set_random_seed(seed):
    """Seed every source of randomness modelkit uses (see modelkit.initializers)."""
    from modelkit.initializers import set_random_seed as _seed
    _seed(seed)

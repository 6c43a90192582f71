"""modelkit.utils: Keras's utility names (to_categorical, normalize, Sequence, Progbar, get_file)."""

from modelkit.utils.data_utils import Sequence, get_file
from modelkit.utils.generic_utils import Progbar
from modelkit.utils.np_utils import normalize, to_categorical

__all__ = ["to_categorical", "normalize", "Sequence", "Progbar", "get_file", "set_random_seed"]


def set_random_seed(seed):
    """Seed every source of randomness modelkit uses (see modelkit.initializers)."""
    from modelkit.initializers import set_random_seed as _seed
    _seed(seed)

"""A budget for what building a model from a file or config may allocate.

While `from_ir` builds a model (`build_budget(stored_shapes)`), every `add_weight` asks
`check_weight` before its initializer allocates anything: a weight whose shape matches a
weight stored in the file (each stored array matches once) costs nothing more than the file
already holds; any other weight is charged against `MAX_UNSTORED_BYTES` (a config without
weights, e.g. `model_from_json`, builds everything from that budget). So a config declaring
`units=10**9`, a 'U500000000' dtype or a kernel far larger than its stored weights is
refused with a ModelLoadError naming the layer before a byte of it is allocated.

Outside `build_budget` (models built in code) nothing is checked.
"""

import contextlib
from collections import Counter

import numpy as np

from ..errors import ModelLoadError

MAX_UNSTORED_BYTES = 1 << 30

_STACK = []


class _Budget:
    def __init__(self, stored_shapes, limit, source):
        self.shapes = Counter(tuple(s) for s in stored_shapes)
        self.left = limit
        self.limit = limit
        self.source = source


@contextlib.contextmanager
def build_budget(stored_shapes=(), limit=None, source="the model config"):
    """Check every weight created inside the block; `stored_shapes` lists the shapes of
    the weights the file holds."""
    _STACK.append(_Budget(stored_shapes, MAX_UNSTORED_BYTES if limit is None else limit,
                          source))
    try:
        yield
    finally:
        _STACK.pop()


def check_weight(layer_name, weight_name, shape, dtype):
    """Raise ModelLoadError if creating this weight would go over the active budget."""
    if not _STACK:
        return
    budget = _STACK[-1]
    where = f"{budget.source}: layer {layer_name!r} weight {weight_name!r}"
    try:
        shape = tuple(int(d) for d in shape)
        dt = np.dtype(dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ModelLoadError(f"{where}: bad shape {shape!r:.80} or dtype {dtype!r:.40}: {e}") \
            from None
    if any(d < 0 for d in shape):
        raise ModelLoadError(f"{where}: negative dimension in shape {shape}")
    if dt.kind not in "biuf" or dt.itemsize > 8:
        raise ModelLoadError(f"{where}: dtype {dt} is not a numeric weight dtype")
    if budget.shapes[shape] > 0:
        budget.shapes[shape] -= 1
        return
    nbytes = int(np.prod(shape, dtype=object) if shape else 1) * dt.itemsize
    if nbytes > budget.left:
        raise ModelLoadError(
            f"{where}: shape {shape} ({nbytes} bytes) is not stored in the file and is over "
            f"the {budget.limit}-byte budget for weights built from a config; refused before "
            f"allocating")
    budget.left -= nbytes

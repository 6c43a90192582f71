"""Nested lists of a model's outputs (Keras nests an RNN's states per cell): flatten them,
index them and pack flat items back into the same nesting."""


def flatten_structure(x):
    """The leaves of nested lists / tuples, in order."""
    if isinstance(x, (list, tuple)):
        return [i for item in x for i in flatten_structure(item)]
    return [x]


def pack_structure(structure, flat):
    """The items of `flat` in the nesting of lists of `structure` (flatten_structure's
    inverse; Keras's tf.nest.pack_sequence_as for lists)."""
    items = iter(flat)

    def pack(s):
        return [pack(i) for i in s] if isinstance(s, (list, tuple)) else next(items)
    return pack(structure)


def index_structure(nested, is_leaf=lambda x: not isinstance(x, (list, tuple))):
    """The nesting of `nested` with its leaves replaced by their flat indices
    ([a, [b, c], d] -> [0, [1, 2], 3]): a `structure` for pack_structure, as
    `Graph.metadata['output_structure']` holds it."""
    count = iter(range(1 << 62))

    def index(x):
        return next(count) if is_leaf(x) else [index(i) for i in x]
    return index(nested)

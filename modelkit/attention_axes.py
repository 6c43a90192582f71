"""MultiHeadAttention over chosen step axes (`attention_axes`), as index arithmetic that the
layer and the ONNX exporter share: Keras's einsum equations treat every other step axis as
a batch axis, so a projected (B, *steps, N, head) tensor is permuted to (B, *others, N,
*attention axes, head) and flattened to the default (B', N, T, head) computation."""

import numpy as np

from .errors import ConfigError


def attention_axes_of(axes, rank, where):
    """The attention axes of a rank-`rank` query as positive ints in the given order (Keras
    keeps it: the order of the scores' axes); None for the default, every axis between
    batch and features in order (the plain (B, N, T, S) computation)."""
    if axes is None:
        return None
    axes = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
    steps = list(range(1, rank - 1))
    out = [int(a) % rank if -rank <= int(a) < rank else int(a) for a in axes]
    if not out or any(a not in steps for a in out) or len(set(out)) != len(out):
        raise ConfigError(f"{where}: attention_axes must be distinct axes between the batch "
                          f"and the feature axis ({steps} for inputs of rank {rank}), got "
                          f"{axes}")
    return None if out == steps else out


class AxesLayout:
    """The permutations and shapes for attention over `attn` of rank-`rank` inputs."""

    def __init__(self, rank, attn):
        self.attn = list(attn)
        self.others = [a for a in range(1, rank - 1) if a not in self.attn]
        # a projected (B, *steps, N, head) tensor has rank + 1 axes: N at rank - 1
        self.perm = [0] + self.others + [rank - 1] + self.attn + [rank]
        self.inverse_perm = [int(i) for i in np.argsort(self.perm)]

    def flat_shape(self, shape, heads, head_dim):
        """The (B', N, T, head) target of a permuted projection of a (B, *steps, dim) input
        (-1 for B')."""
        return (-1, heads, int(np.prod([shape[a] for a in self.attn])), head_dim)

    def permuted_dims(self, q_shape, heads, head_dim):
        """(B, *others, N, *attention steps, head) of the query: the attention output before
        the inverse permutation."""
        return ((q_shape[0],) + tuple(q_shape[a] for a in self.others) + (heads,) +
                tuple(q_shape[a] for a in self.attn) + (head_dim,))

    def scores_shape(self, q_shape, v_shape, heads):
        """Keras's scores: (B, *others, N, *query attention steps, *key attention steps)."""
        return ((q_shape[0],) + tuple(q_shape[a] for a in self.others) + (heads,) +
                tuple(q_shape[a] for a in self.attn) + tuple(v_shape[a] for a in self.attn))

    @property
    def mask_axis(self):
        """Where Keras inserts the axes a mask lacks against the scores (before its last
        2 x attention-axes dims)."""
        return -2 * len(self.attn) - 1

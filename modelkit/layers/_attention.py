"""What the attention layers share: Keras's masked softmax over the last axis, the causal
mask, and dropout on the attention weights."""

import numpy as np

from ..backend import functions as F
from ..backend.tensor import as_array

# Keras (both versions) pushes masked scores down by 1e9 before the softmax
MASKED_SCORE = 1e9


def causal_mask(t, s):
    """(1, t, s) bool: query step i may attend to key steps j <= i (Keras's cumsum rule)."""
    return (np.arange(t)[:, None] >= np.arange(s)[None, :])[None]


def combine_masks(*masks):
    """Logical AND of the given bool arrays (None ones skipped), or None."""
    out = None
    for m in masks:
        if m is not None:
            m = np.asarray(as_array(m)).astype(bool)
            out = m if out is None else out & m
    return out


def attention_weights(scores, mask=None, dropout=0.0, training=None, subtract=False):
    """softmax(scores) over the last axis with masked positions (mask False, broadcast
    against scores) set to -1e9 as MultiHeadAttention does (a fully masked row: uniform
    weights), or lowered by 1e9 (`subtract`, as Attention/AdditiveAttention do); then
    dropout in training."""
    if mask is not None:
        mask = np.broadcast_to(mask, scores.shape)
        low = F.subtract(scores, np.asarray(MASKED_SCORE, scores.dtype)) if subtract else \
            np.full(scores.shape, -MASKED_SCORE, scores.dtype)
        scores = F.where(mask, scores, low)
    weights = F.softmax(scores, axis=-1)
    if training and dropout > 0:
        weights = F.dropout(weights, dropout)
    return weights

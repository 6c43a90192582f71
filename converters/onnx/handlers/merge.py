"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot.

Masks (Keras 2 `_Merge.compute_mask`): the output mask is the AND of the inputs' masks;
Concatenate along the time axis of masked inputs is not expressible and is reported.
"""

from __future__ import annotations

from ..context import LayerUnsupported, broadcast_shape
from ..registry import export_handler

VARIADIC = {"Add": "Sum", "Average": "Mean", "Maximum": "Max", "Minimum": "Min"}


def _merge_masks(ctx, inputs, out):
    masks = [ctx.masks[i.name] for i in inputs if i.name in ctx.masks]
    if not masks:
        return
    m = masks[0]
    for other in masks[1:]:
        m = ctx.op("And", [m, other], broadcast_shape(m.shape, other.shape), dtype="bool")
    ctx.masks[out.name] = m


def _align_ranks(ctx, inputs):
    """Keras 2 `_Merge`: a lower-rank input gets size-1 axes inserted at axis 1 (not
    numpy's right-aligned broadcasting) before the elementwise merge."""
    ranks = [i.rank for i in inputs]
    if None in ranks or len(set(ranks)) == 1:
        return list(inputs)
    top = max(ranks)
    return [x if x.rank == top else ctx.unsqueeze(x, list(range(1, 1 + top - x.rank)))
            for x in inputs]


@export_handler(*VARIADIC)
def variadic(node, ctx, inputs):
    masked = inputs
    inputs = _align_ranks(ctx, inputs)
    shape = broadcast_shape(*[i.shape for i in inputs])
    y = ctx.op(VARIADIC[node.op], list(inputs), shape, hint=node.name)
    _merge_masks(ctx, masked, y)
    return [y]


@export_handler("Subtract")
def subtract(node, ctx, inputs):
    if len(inputs) != 2:
        raise LayerUnsupported(f"Subtract takes exactly 2 inputs, got {len(inputs)}")
    masked, inputs = inputs, _align_ranks(ctx, inputs)
    y = ctx.op("Sub", list(inputs), broadcast_shape(inputs[0].shape, inputs[1].shape),
               hint=node.name)
    _merge_masks(ctx, masked, y)
    return [y]


@export_handler("Multiply")
def multiply(node, ctx, inputs):
    masked, inputs = inputs, _align_ranks(ctx, inputs)
    y = inputs[0]
    for k, x in enumerate(inputs[1:]):
        y = ctx.op("Mul", [y, x], broadcast_shape(y.shape, x.shape), hint=node.name)
    _merge_masks(ctx, masked, y)
    return [y]


@export_handler("Concatenate")
def concatenate(node, ctx, inputs):
    axis = int(node.config.get("axis", -1))
    rank = inputs[0].rank
    shape = None
    if all(i.shape is not None for i in inputs):
        a = axis % rank
        shape = list(inputs[0].shape)
        dims = [i.shape[a] for i in inputs]
        shape[a] = None if any(d is None for d in dims) else sum(dims)
        for k in range(rank):
            if k != a and shape[k] is None:
                shape[k] = next((i.shape[k] for i in inputs if i.shape[k] is not None), None)
    if any(i.name in ctx.masks for i in inputs) and rank is not None and axis % rank == 1:
        raise LayerUnsupported("concatenating masked sequences along the time axis cannot be "
                               "expressed as sequence lengths")
    y = ctx.op("Concat", list(inputs), shape, hint=node.name, axis=axis)
    _merge_masks(ctx, inputs, y)
    return [y]


def _l2_normalize(ctx, x, axis):
    sq = ctx.reduce("ReduceSum", ctx.op("Mul", [x, x], x.shape), [axis], True)
    sq = ctx.op("Max", [sq, ctx.scalar(1e-12)], sq.shape)
    return ctx.op("Mul", [x, ctx.op("Reciprocal", [ctx.op("Sqrt", [sq], sq.shape)], sq.shape)],
                  x.shape)


def _check_dot(node, opset):
    axes = node.config.get("axes", -1)
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    if any(a == 0 for a in axes):
        return "Dot over the batch axis is not supported"
    return None


@export_handler("Dot", check=_check_dot)
def dot(node, ctx, inputs):
    """Keras batch_dot: contract x's axis ax with y's axis ay, batch dim shared; a result of
    rank 1 becomes (batch, 1). normalize=True L2-normalizes both along their axes first."""
    x, y = inputs
    axes = node.config.get("axes", -1)
    ax, ay = (axes, axes) if isinstance(axes, int) else axes
    rx, ry = x.rank, y.rank
    ax, ay = ax % rx, ay % ry
    if node.config.get("normalize"):
        x = _l2_normalize(ctx, x, ax)
        y = _l2_normalize(ctx, y, ay)
    letters = iter("bcdefghijklmnopqrstuvwxyz")
    xs = ["a"] + [next(letters) for _ in range(rx - 1)]
    ys = ["a"] + [next(letters) for _ in range(ry - 1)]
    ys[ay] = xs[ax]
    out = [c for i, c in enumerate(xs) if i != ax] + [c for i, c in enumerate(ys) if i not in (0, ay)]
    eq = f"{''.join(xs)},{''.join(ys)}->{''.join(out)}"
    shape = None
    if x.shape is not None and y.shape is not None:
        shape = tuple(d for i, d in enumerate(x.shape) if i != ax) + \
            tuple(d for i, d in enumerate(y.shape) if i not in (0, ay))
    r = ctx.op("Einsum", [x, y], shape, hint=node.name, equation=eq)
    if len(out) == 1:
        r = ctx.unsqueeze(r, [1], hint=node.name)
    return [r]

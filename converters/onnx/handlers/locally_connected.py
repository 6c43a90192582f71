"""LocallyConnected1D / 2D (Keras 2, implementation 1): one Slice per output position,
each patch flattened as Keras does, then one batched MatMul with the per-position kernels
(positions, patch, filters), the bias and the activation."""

from __future__ import annotations

import itertools

import numpy as np

from ..context import LayerUnsupported
from ..registry import export_handler
from .activations import apply_activation


@export_handler("LocallyConnected1D", "LocallyConnected2D")
def locally_connected(node, ctx, inputs):
    cfg = node.config
    x = inputs[0]
    if x.dtype != "float32":
        x = ctx.cast(x, "float32", hint=node.name)
    cf = cfg.get("data_format") == "channels_first"
    rank = x.rank - 2
    spatial_axes = list(range(2, 2 + rank)) if cf else list(range(1, 1 + rank))
    ks = [int(k) for k in cfg["kernel_size"]]
    st = [int(s) for s in cfg["strides"]]
    sizes = [x.shape[a] for a in spatial_axes]
    if None in sizes:
        raise LayerUnsupported(f"{node.op} layer {node.name!r}: the input's spatial size must "
                               f"be known to export it")
    out = [(n - k) // s + 1 for n, k, s in zip(sizes, ks, st)]
    weights = ctx.weights(node)
    kernel = weights[0]
    patch = kernel.shape[1]
    rows = []
    for pos in itertools.product(*(range(o) for o in out)):
        p = x
        for a, i, s, k in zip(spatial_axes, pos, st, ks):
            p = ctx.slice(p, a, i * s, i * s + k)
        rows.append(ctx.reshape(p, [-1, 1, patch], (x.shape[0], 1, patch)))
    patches = ctx.op("Concat", rows, (x.shape[0], len(rows), patch), axis=1)
    pt = ctx.transpose(patches, [1, 0, 2])                               # (P, N, K)
    y = ctx.op("MatMul", [pt, ctx.const(kernel.astype(np.float32), "kernel")],
               (len(rows), x.shape[0], kernel.shape[2]))
    y = ctx.transpose(y, [1, 0, 2])                                      # (N, P, F)
    y = ctx.reshape(y, [-1] + out + [kernel.shape[2]], (x.shape[0],) + tuple(out) +
                    (kernel.shape[2],))
    if cfg.get("use_bias", True) and len(weights) > 1:
        y = ctx.op("Add", [y, ctx.const(weights[1].astype(np.float32), "bias")], y.shape)
    if cf:
        y = ctx.transpose(y, [0, rank + 1] + list(range(1, rank + 1)))
    return [apply_activation(ctx, y, cfg.get("activation"), hint=node.name)]

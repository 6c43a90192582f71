"""Attention layers: MultiHeadAttention, Attention and AdditiveAttention as
MatMul/Softmax, masked scores at (or lowered by) 1e9 as Keras does."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from modelkit.attention_axes import AxesLayout, attention_axes_of

from ..context import LayerUnsupported
from ..registry import export_handler

MASKED_SCORE = 1e9          # Keras pushes masked scores down by 1e9 before the softmax


def keep_mask(ctx, scores, query_mask=None, value_masks=(), attention_mask=None,
              causal=False):
    """The float (B or 1, T, S) product of every mask that applies (1 = attend), or None.
    `scores` is the (B, ..., T, S) score tensor (for the causal mask's dynamic size)."""
    parts = []
    if query_mask is not None:
        parts.append(ctx.unsqueeze(ctx.cast(query_mask, "float32"), [2]))
    for m in value_masks:
        parts.append(ctx.unsqueeze(ctx.cast(m, "float32"), [1]))
    if attention_mask is not None:
        parts.append(ctx.cast(ctx.cast(attention_mask, "bool"), "float32"))
    if causal:
        t, s = scores.shape[-2], scores.shape[-1]
        if t is not None and s is not None:
            parts.append(ctx.const(np.tril(np.ones((1, t, s), np.float32)), "causal_mask"))
        elif ctx.opset >= 14:
            size = ctx.shape_of(scores, start=-2)
            ones = ctx.op("ConstantOfShape", [size], (None, None), dtype="float32",
                          value=numpy_helper.from_array(np.ones(1, np.float32)))
            parts.append(ctx.unsqueeze(ctx.op("Trilu", [ones], (None, None), upper=0), [0]))
        else:
            raise LayerUnsupported("a causal mask over steps unknown at export needs "
                                   "opset >= 14 (Trilu)")
    if not parts:
        return None
    keep = parts[0]
    for p in parts[1:]:
        keep = ctx.op("Mul", [keep, p], None)
    return keep


def masked_softmax(ctx, scores, keep, head_axis=True, subtract=False):
    """softmax over the last axis of scores with -1e9 where keep is 0 (MultiHeadAttention),
    or the score lowered by 1e9 there (`subtract`: Attention, AdditiveAttention); keep
    (B, T, S) gains the head axis 1 when `head_axis`."""
    if keep is not None:
        keep = ctx.cast(keep, "bool")
        if head_axis:
            keep = ctx.unsqueeze(keep, [1])
        low = ctx.op("Sub", [scores, ctx.scalar(MASKED_SCORE)], scores.shape) if subtract \
            else ctx.scalar(-MASKED_SCORE)
        scores = ctx.op("Where", [keep, scores, low], scores.shape, dtype=scores.dtype)
    return ctx.op("Softmax", [scores], scores.shape, axis=-1)


def _static(dims, what):
    if any(d is None for d in dims):
        raise LayerUnsupported(f"{what} must be known at export for inputs of rank > 3")
    return [int(d) for d in dims]


@export_handler("MultiHeadAttention", keeps_mask=True)
def multi_head_attention(node, ctx, inputs):
    cfg = node.config
    n, kd = int(cfg["num_heads"]), int(cfg["key_dim"])
    vd = int(cfg.get("value_dim") or kd)
    use_bias = cfg.get("use_bias", True)
    ws = list(ctx.weights(node))
    per = 2 if use_bias else 1
    q_in, v_in = inputs[0], inputs[1]
    k_in = inputs[2] if len(inputs) > 2 else v_in
    rank = q_in.rank
    steps_q = q_in.shape[1:-1]
    steps_v = v_in.shape[1:-1]
    out_dims = tuple(ws[3 * per].shape[2:])
    attn = attention_axes_of(cfg.get("attention_axes"), rank,
                             f"MultiHeadAttention {node.name!r}")
    layout = None if attn is None else AxesLayout(rank, attn)

    def project(x, i, head, tag):
        kernel, bias = ws[i * per], (ws[i * per + 1] if use_bias else None)
        if layout is not None:                       # (B, *steps, dim): MatMul broadcasts
            return _project_over_axes(ctx, node, x, kernel, bias, n, head, tag, layout)
        if rank > 3:
            x = ctx.reshape(x, [0, -1, x.shape[-1]], None)
        y = ctx.op("MatMul", [x, ctx.param(node, f"{tag}_kernel", lambda: np.asarray(
            kernel, np.float32).reshape(kernel.shape[0], n * head))], None, hint=node.name)
        if bias is not None:
            y = ctx.op("Add", [y, ctx.param(node, f"{tag}_bias", lambda: np.asarray(
                bias, np.float32).reshape(-1))], None)
        y = ctx.reshape(y, [0, -1, n, head], None)
        return ctx.transpose(y, (0, 2, 1, 3))

    q = project(q_in, 0, kd, "query")
    k = project(k_in, 1, kd, "key")
    v = project(v_in, 2, vd, "value")
    q = ctx.op("Mul", [q, ctx.scalar(1.0 / np.sqrt(kd))], None)
    if layout is not None:
        t = int(np.prod(_static([q_in.shape[a] for a in attn], "the attention steps")))
        s = int(np.prod(_static([k_in.shape[a] for a in attn], "the attention steps")))
    else:
        t = int(np.prod(steps_q)) if None not in steps_q else None
        s = int(np.prod(steps_v)) if None not in steps_v else None
    scores = ctx.op("MatMul", [q, ctx.transpose(k, (0, 1, 3, 2))], (None, n, t, s))
    if layout is not None:
        return _attend_over_axes(node, ctx, inputs, scores, v, layout, ws, per, out_dims)
    value_masks = [ctx.masks[i.name] for i in inputs[1:3] if i.name in ctx.masks]
    if len(inputs) == 2 or inputs[2].name == inputs[1].name:
        value_masks = value_masks[:1]
    if rank > 3 and (value_masks or inputs[0].name in ctx.masks):
        raise LayerUnsupported("Keras masks on inputs of rank > 3")
    keep = keep_mask(ctx, scores, ctx.masks.get(q_in.name), value_masks,
                     inputs[3] if len(inputs) > 3 else None,
                     ctx.call_kwargs.get("use_causal_mask", False))
    weights = masked_softmax(ctx, scores, keep)
    out = ctx.transpose(ctx.op("MatMul", [weights, v], (None, n, t, vd)), (0, 2, 1, 3))
    out = ctx.reshape(out, [0, -1, n * vd], None)
    kernel = ws[3 * per]
    out = ctx.op("MatMul", [out, ctx.param(node, "output_kernel", lambda: np.asarray(
        kernel, np.float32).reshape(n * vd, -1))], None, hint=node.name)
    if use_bias:
        out = ctx.op("Add", [out, ctx.param(node, "output_bias", lambda: np.asarray(
            ws[3 * per + 1], np.float32).reshape(-1))], None)
    out_shape = (None,) + tuple(steps_q) + out_dims
    if rank > 3 or len(out_dims) != 1:
        out = ctx.reshape(out, [0] + _static(steps_q, "the query steps") + list(out_dims),
                          out_shape)
    out = ctx.op("Identity", [out], out_shape, hint=node.name)
    if not ctx.call_kwargs.get("return_attention_scores"):
        return [out]
    shape = (None, n) + tuple(steps_q) + tuple(steps_v)
    if rank > 3:
        weights = ctx.reshape(weights, [0, n] + _static(steps_q, "the query steps")
                              + _static(steps_v, "the value steps"), shape)
    return [out, ctx.op("Identity", [weights], shape, hint=node.name)]


def _project_over_axes(ctx, node, x, kernel, bias, n, head, tag, layout):
    """(B, *steps, dim) -> (B', N, T, head) for attention over `layout.attn`."""
    steps = _static(x.shape[1:-1], "the steps of attention over chosen axes")
    y = ctx.op("MatMul", [x, ctx.param(node, f"{tag}_kernel", lambda: np.asarray(
        kernel, np.float32).reshape(kernel.shape[0], n * head))], None, hint=node.name)
    if bias is not None:
        y = ctx.op("Add", [y, ctx.param(node, f"{tag}_bias", lambda: np.asarray(
            bias, np.float32).reshape(-1))], None)
    y = ctx.reshape(y, [0] + steps + [n, head], (None, *steps, n, head))
    y = ctx.transpose(y, layout.perm)
    target = layout.flat_shape((None, *steps), n, head)
    return ctx.reshape(y, list(target), (None,) + tuple(target[1:]))


def _attend_over_axes(node, ctx, inputs, scores, v, layout, ws, per, out_dims):
    """Masked softmax, weighted values and output projection of attention over chosen
    axes; masks as Keras builds them (attention_mask and the causal mask over axis 1,
    expanded before the last 2 x attention-axes dims and broadcast to the scores)."""
    q_in, v_in = inputs[0], inputs[1]
    n, vd = scores.shape[1], int(ws[2 * per].shape[-1])
    steps_q = _static(q_in.shape[1:-1], "the query steps")
    keras_scores = layout.scores_shape((1, *q_in.shape[1:]), (1, *v_in.shape[1:]), n)
    if any(i.name in ctx.masks for i in inputs[:3]):
        raise LayerUnsupported("Keras masks with attention over chosen axes (attention_axes)")
    parts = []
    if len(inputs) > 3:
        parts.append(ctx.cast(ctx.cast(inputs[3], "bool"), "float32"))
    if ctx.call_kwargs.get("use_causal_mask"):
        parts.append(ctx.const(np.tril(np.ones((1, q_in.shape[1], v_in.shape[1]),
                                               np.float32)), "causal_mask"))
    keep = None
    for p in parts:
        keep = p if keep is None else ctx.op("Mul", [keep, p], None)
    if keep is not None:
        for _ in range(len(keras_scores) - max(p.rank for p in parts)):
            keep = ctx.unsqueeze(keep, [layout.mask_axis])
        target = ctx.op("Concat", [ctx.shape_of(q_in, start=0, end=1),
                                   ctx.ints(list(keras_scores[1:]))], None, dtype="int64",
                        axis=0)                              # the batch: the query's
        keep = ctx.op("Expand", [keep, target], None)
        keep = ctx.cast(ctx.reshape(keep, [-1, n, scores.shape[2], scores.shape[3]], None),
                        "bool")
        scores = ctx.op("Where", [keep, scores, ctx.scalar(-MASKED_SCORE)], scores.shape,
                        dtype=scores.dtype)
    weights = ctx.op("Softmax", [scores], scores.shape, axis=-1)
    out = ctx.op("MatMul", [weights, v], None)
    dims = layout.permuted_dims((0, *steps_q), n, vd)
    out = ctx.transpose(ctx.reshape(out, [-1] + list(dims[1:]), None), layout.inverse_perm)
    out = ctx.reshape(out, [0] + steps_q + [n * vd], None)
    kernel = ws[3 * per]
    out = ctx.op("MatMul", [out, ctx.param(node, "output_kernel", lambda: np.asarray(
        kernel, np.float32).reshape(n * vd, -1))], None, hint=node.name)
    if per == 2:
        out = ctx.op("Add", [out, ctx.param(node, "output_bias", lambda: np.asarray(
            ws[3 * per + 1], np.float32).reshape(-1))], None)
    out_shape = (None, *steps_q) + out_dims
    out = ctx.op("Identity", [ctx.reshape(out, [0] + steps_q + list(out_dims), out_shape)],
                 out_shape, hint=node.name)
    if not ctx.call_kwargs.get("return_attention_scores"):
        return [out]
    shape = (None,) + tuple(keras_scores[1:])
    return [out, ctx.op("Identity", [ctx.reshape(weights, [-1] + list(keras_scores[1:]),
                                                  shape)], shape, hint=node.name)]


def _dense_attention_scores(node, ctx, q, k):
    """(B, Tq, Tv) scores of Attention ("dot" / "concat") and AdditiveAttention."""
    cfg = node.config
    ws = list(ctx.weights(node))
    t, s = q.shape[1], k.shape[1]
    if node.op == "Attention" and cfg.get("score_mode", "dot") == "dot":
        scores = ctx.op("MatMul", [q, ctx.transpose(k, (0, 2, 1))], (None, t, s))
        if cfg.get("use_scale"):
            scores = ctx.op("Mul", [scores, ctx.param(node, "scale", lambda: np.asarray(
                ws[0], np.float32))], scores.shape)
        return scores
    total = ctx.op("Add", [ctx.unsqueeze(q, [2]), ctx.unsqueeze(k, [1])],
                   (None, t, s, q.shape[-1]))
    scale = ctx.param(node, "scale", lambda: np.asarray(ws[0], np.float32)) \
        if cfg.get("use_scale", node.op == "AdditiveAttention") else None
    if node.op == "AdditiveAttention":
        total = ctx.op("Tanh", [total], total.shape)
        if scale is not None:
            total = ctx.op("Mul", [total, scale], total.shape)
        return ctx.reduce("ReduceSum", total, [-1], False)
    if scale is not None:
        total = ctx.op("Mul", [total, scale], total.shape)
    summed = ctx.reduce("ReduceSum", ctx.op("Tanh", [total], total.shape), [-1], False)
    return ctx.op("Mul", [summed, ctx.param(node, "concat_score_weight", lambda: np.asarray(
        ws[-1], np.float32))], summed.shape)


@export_handler("Attention", "AdditiveAttention", keeps_mask=True)
def dense_attention(node, ctx, inputs):
    q, v = inputs[0], inputs[1]
    k = inputs[2] if len(inputs) > 2 else v
    scores = _dense_attention_scores(node, ctx, q, k)
    value_mask = ctx.masks.get(v.name)
    keep = keep_mask(ctx, scores, None, [value_mask] if value_mask is not None else [],
                     causal=ctx.call_kwargs.get("use_causal_mask", False)
                     or bool(node.config.get("causal")))
    weights = masked_softmax(ctx, scores, keep, head_axis=False, subtract=True)
    out_shape = (None, q.shape[1], v.shape[-1])
    out = ctx.op("MatMul", [weights, v], out_shape, hint=node.name)
    if q.name in ctx.masks:
        qm = ctx.unsqueeze(ctx.cast(ctx.masks[q.name], "float32"), [2])
        out = ctx.op("Mul", [out, qm], out_shape, hint=node.name)
    if ctx.call_kwargs.get("return_attention_scores"):
        return [out, ctx.op("Identity", [weights], weights.shape, hint=node.name)]
    return [out]

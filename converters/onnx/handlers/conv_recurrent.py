"""ConvLSTM1D / ConvLSTM2D / ConvLSTM3D unrolled over a fixed number of timesteps.

ONNX has no convolutional LSTM, so the export spells the recurrence out: one Conv over every
frame at once for the input transform (the frames folded into the batch), then per step a
'same' Conv of h with the recurrent kernel, the four gates (i, f, c, o) as channel slices,
and the elementwise state update. The sequence length and frame size must be static (the
input shape the model was built with); otherwise the export names the layer and the reason.
Initial states (h, c) may be extra inputs. Dropout is the identity at inference; `stateful`
has no ONNX equivalent and is refused. A mask (Masking upstream) is applied as modelkit
does: a step whose whole frame is masked keeps h and c (`Where` per step), and the mask
goes on with the output sequence.
"""

from __future__ import annotations

import numpy as np

from modelkit.ir import Node

from .. import layout
from ..context import LayerUnsupported
from ..registry import export_handler
from .activations import activation_problem, apply_activation
from .conv import _out_len, _pad_attrs, _tuple


CONV_LSTM_OPS = ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def _check_conv_lstm(node, opset):
    cfg = node.config
    problems = []
    if cfg.get("stateful"):
        problems.append("stateful=True has no ONNX equivalent")
    for key, default in (("activation", "tanh"), ("recurrent_activation", "hard_sigmoid")):
        p = activation_problem(cfg.get(key, default))
        if p:
            problems.append(f"{key}: {p}")
    return "; ".join(problems) or None


@export_handler("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", check=_check_conv_lstm)
def conv_lstm(node, ctx, inputs):
    if len(inputs) not in (1, 3):
        raise LayerUnsupported(f"it has {len(inputs)} inputs; expected the sequence and "
                               "optionally two initial states (h, c)")
    cfg, x = node.config, inputs[0]
    channels_last = cfg.get("data_format", "channels_last") != "channels_first"
    ws = ctx.weights(node)
    n = ws[0].ndim - 2                       # spatial rank: 1, 2 or 3
    spatial_axes = list(range(2, n + 2))
    h = c = None                  # zero states: the first step has no recurrent term
    if len(inputs) == 3:
        h, c = (ctx.transpose(st, [0, n + 1] + list(range(1, n + 1)),
                              hint=f"{node.name}/state_nchw")
                if channels_last else st for st in inputs[1:])
    if x.shape is None or len(x.shape) != n + 3 or None in x.shape[1:]:
        raise LayerUnsupported(f"the export unrolls the recurrence, so it needs a fixed number "
                               f"of timesteps and frame size; the input shape is {x.shape} "
                               "(give the model input_shape=(timesteps, *frame, channels))")
    filters = int(ws[1].shape[-2])
    kernel = tuple(ws[0].shape[:n])
    strides = _tuple(cfg.get("strides", 1), n)
    dil = _tuple(cfg.get("dilation_rate", 1), n)
    padding = cfg.get("padding", "valid")
    hint = node.name
    # (B, T, C, *spatial): frames channels-first, processing order
    xf = ctx.transpose(x, [0, 1, n + 2] + spatial_axes, hint=f"{hint}/nchw") \
        if channels_last else x
    if cfg.get("go_backwards"):
        xf = ctx.reverse(xf, 1, hint=f"{hint}/backwards")
    _, steps, chans, *spatial = xf.shape
    mask = ctx.masks.get(x.name)
    keep = None if mask is None else _steps_kept(ctx, mask, steps, cfg.get("go_backwards"),
                                                 n, hint)
    out_hw = tuple(_out_len(m, k, s, d, padding)
                   for m, k, s, d in zip(spatial, kernel, strides, dil))
    frames = ctx.reshape(xf, [-1, chans] + list(spatial), (None, chans) + tuple(spatial),
                         hint=f"{hint}/frames")
    W = ctx.param(node, "W", lambda: layout.conv_kernel_to_onnx(ws[0]).astype(np.float32))
    R = ctx.param(node, "R", lambda: layout.conv_kernel_to_onnx(ws[1]).astype(np.float32))
    conv_in = [frames, W]
    if cfg.get("use_bias", True) and len(ws) > 2:
        conv_in.append(ctx.param(node, "B", lambda: np.asarray(ws[2], np.float32)))
    gates_shape = (None, 4 * filters) + out_hw
    xz = ctx.op("Conv", conv_in, gates_shape, hint=f"{hint}/input_conv",
                kernel_shape=list(kernel), strides=list(strides), dilations=list(dil),
                **_pad_attrs(padding, kernel, strides, dil, frames))
    xz = ctx.reshape(xz, [-1, steps, 4 * filters] + list(out_hw),
                     (None, steps, 4 * filters) + out_hw, hint=f"{hint}/by_step")
    act = cfg.get("activation", "tanh")
    rec_act = cfg.get("recurrent_activation", "hard_sigmoid")
    state_shape = (None, filters) + out_hw
    same = _pad_attrs("same", kernel, (1,) * n, (1,) * n)
    seq = []
    for t in range(steps):
        step = ctx.const(np.asarray(t, dtype=np.int64), hint=f"{hint}/t{t}")
        z = ctx.op("Gather", [xz, step], gates_shape, hint=f"{hint}/x{t}", axis=1)
        if h is not None:
            rec = ctx.op("Conv", [h, R], gates_shape, hint=f"{hint}/h{t}",
                         kernel_shape=list(kernel), **same)
            z = ctx.op("Add", [z, rec], gates_shape, hint=f"{hint}/z{t}")
        gate = [ctx.slice(z, 1, g * filters, (g + 1) * filters, hint=f"{hint}/gate{g}_{t}")
                for g in range(4)]
        i, f, o = (apply_activation(ctx, gate[g], rec_act, hint=f"{hint}/g{g}_{t}")
                   for g in (0, 1, 3))
        update = ctx.op("Mul", [i, apply_activation(ctx, gate[2], act, hint=f"{hint}/cand{t}")],
                        state_shape, hint=f"{hint}/update{t}")
        c_new = update if c is None else ctx.op(
            "Add", [ctx.op("Mul", [f, c], state_shape, hint=f"{hint}/keep{t}"), update],
            state_shape, hint=f"{hint}/c{t}")
        h_new = ctx.op("Mul", [o, apply_activation(ctx, c_new, act, hint=f"{hint}/act_c{t}")],
                       state_shape, hint=f"{hint}/h{t}")
        if keep is None:
            h, c = h_new, c_new
        else:                       # a masked step carries h and c (zeros before any step)
            k = ctx.op("Gather", [keep, step], (None,) + (1,) * (n + 1), dtype="bool",
                       hint=f"{hint}/run{t}", axis=1)
            h, c = (ctx.op("Where", [k, new, ctx.scalar(0.0) if old is None else old],
                           state_shape, dtype=new.dtype, hint=f"{hint}/{name}{t}_masked")
                    for new, old, name in ((h_new, h, "h"), (c_new, c, "c")))
        seq.append(h)
    to_last = [0] + spatial_axes + [1] if channels_last else list(range(n + 2))
    if cfg.get("return_sequences"):
        steps_out = [ctx.unsqueeze(s, [1], hint=f"{hint}/step") for s in seq]
        out = ctx.op("Concat", steps_out, (None, steps) + state_shape[1:], hint=f"{hint}/seq",
                     axis=1) if len(steps_out) > 1 else steps_out[0]
        out = ctx.transpose(out, [0, 1] + list(range(3, n + 3)) + [2] if channels_last
                            else list(range(n + 3)), hint=f"{hint}/out")
        if mask is not None:
            ctx.masks[out.name] = mask          # Keras returns the input mask unchanged
    else:
        out = ctx.transpose(h, to_last, hint=f"{hint}/out")
    if cfg.get("return_state"):
        return [out, ctx.transpose(h, to_last, hint=f"{hint}/h"),
                ctx.transpose(c, to_last, hint=f"{hint}/c")]
    return [out]


def _steps_kept(ctx, mask, steps, backwards, n, hint):
    """(B, T, 1, ..., 1) bool (n + 1 ones) in processing order: the steps to run. A mask with more dims
    than (batch, steps) (Masking's, per position) keeps a step where any position is kept."""
    keep = ctx.cast(mask, "float32", hint=f"{hint}/mask_f")
    if mask.rank is None or mask.rank != 2:
        flat = ctx.reshape(keep, [0, steps, -1], (None, steps, None), hint=f"{hint}/mask_flat")
        keep = ctx.reduce("ReduceMax", flat, [2], False, hint=f"{hint}/mask_any")
    if backwards:
        keep = ctx.reverse(keep, 1, hint=f"{hint}/mask_backwards")
    keep = ctx.reshape(keep, [0, steps] + [1] * (n + 1), (None, steps) + (1,) * (n + 1),
                       hint=f"{hint}/mask_steps")
    return ctx.cast(keep, "bool", hint=f"{hint}/mask_kept")


def conv_lstm_bidirectional_problem(node, cfg, opset):
    """Why Bidirectional(ConvLSTM*) cannot be exported, or None."""
    problems = [p for p in [_check_conv_lstm(Node(node.name, "ConvLSTM2D", cfg, [], []), opset)]
                if p]
    if cfg.get("return_state"):
        problems.append("return_state=True inside Bidirectional is not supported")
    back = node.config.get("backward_layer")
    if back:                       # Keras 3 writes it always: fine when it mirrors the layer
        skip = ("name", "go_backwards", "zero_output_for_mask", "trainable")
        bcfg = back.get("config") or {}
        if back.get("class_name") != node.config["layer"].get("class_name") or any(
                bcfg.get(k) != cfg.get(k) for k in set(bcfg) | set(cfg) if k not in skip):
            problems.append("a backward_layer that differs from the forward layer is not "
                            "supported")
    return "; ".join(problems) or None


def conv_lstm_both_ways(node, ctx, inputs, op, cfg):
    """The forward and backward ConvLSTM runs of Bidirectional (the backward sequence put
    back in input order, as Keras merges it)."""
    if len(inputs) != 1 or ctx.masks.get(inputs[0].name) is not None:
        raise LayerUnsupported("Bidirectional(ConvLSTM) is exported without initial states "
                               "or a mask")
    half = len(node.weights) // 2
    outs = []
    for part, keys, backwards in (("forward", node.weights[:half], False),
                                  ("backward", node.weights[half:], True)):
        sub = Node(f"{node.name}/{part}", op, dict(cfg, go_backwards=backwards), [], keys)
        outs.append(conv_lstm(sub, ctx, inputs)[0])
    if cfg.get("return_sequences"):
        outs[1] = ctx.reverse(outs[1], 1, hint=f"{node.name}/backward_in_order")
    return outs

"""ONNX LSTM / GRU / RNN -> Keras LSTM / GRU / SimpleRNN (Bidirectional for both
directions), with gate orders converted in layout.py.

Recognised as Keras when: weights are constants, there is no sequence_lens (or it is the full
length), the initial states are absent or zeros (including the Shape -> ConstantOfShape /
Expand chains exporters write for them), and the activations, clip, peepholes and
input_forget are the defaults. Otherwise the node stays a generic OnnxOp.

The Keras layer returns batch-major sequences (N, T, D*H); ONNX's Y is (T, D, N, H). Y, Y_h
and Y_c are held as `Lazy` values: the chains exporters write to get back to batch-major
(Squeeze/Transpose/Reshape) are resolved by `view_rule` without emitting anything, and only a
consumer that really needs ONNX's layout makes the converting ops.
"""

from __future__ import annotations

import numpy as np

from ... import layout
from ..context import Lazy
from ..registry import import_handler
from .keras_layers import attrs

KERAS_OP = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}
DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
                "RNN": ["Tanh"]}
ZERO_PRESERVING = {"Slice", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Tile", "Identity",
                   "Cast", "Expand", "Flatten"}


def is_zeros(ctx, name, depth=0):
    """Whether `name` is all zeros whatever the input (constants, ConstantOfShape chains)."""
    c = ctx.const(name)
    if c is not None:
        return not np.any(c)
    node = ctx.producer(name)
    if node is None or depth > 12:
        return False
    if node.op_type == "ConstantOfShape":
        value = attrs(node, ctx).get("value")
        return value is None or not np.any(value)
    if node.op_type in ZERO_PRESERVING:
        return is_zeros(ctx, node.input[0], depth + 1)
    if node.op_type == "Concat":         # tf2onnx stacks per-direction zero states
        return all(is_zeros(ctx, i, depth + 1) for i in node.input if i)
    return False


def _opt(node, i):
    return node.input[i] if len(node.input) > i and node.input[i] else None


def _keras_form(node, ctx):
    """(keras op, config, per-direction weights, directions) or None."""
    a = attrs(node, ctx)
    op = node.op_type
    W, R = ctx.const(node.input[1]), ctx.const(node.input[2])
    B = ctx.const(_opt(node, 3)) if _opt(node, 3) else None
    if W is None or R is None or (_opt(node, 3) and B is None):
        return None
    direction = a.get("direction", "forward")
    if direction not in ("forward", "bidirectional"):
        return None
    dirs = 2 if direction == "bidirectional" else 1
    acts = a.get("activations", DEFAULT_ACTS[op] * dirs)
    relu_rnn = op == "RNN" and acts == ["Relu"] * dirs
    if (acts != DEFAULT_ACTS[op] * dirs and not relu_rnn) or "clip" in a or \
            a.get("input_forget", 0) or "activation_alpha" in a or "activation_beta" in a:
        return None
    if op == "LSTM" and _opt(node, 7) and not is_zeros(ctx, _opt(node, 7)):
        return None
    for i in (5, 6):
        if _opt(node, i) and not is_zeros(ctx, _opt(node, i)):
            return None
    seq = _opt(node, 4)
    if seq is not None:
        lens, x_shape = ctx.const(seq), ctx.shape(node.input[0])
        t_axis = 1 if a.get("layout", 0) else 0
        if lens is None or x_shape is None or x_shape[t_axis] is None or \
                np.any(lens != x_shape[t_axis]):
            return None
    units = int(R.shape[-1])
    lbr = int(a.get("linear_before_reset", 0))
    try:
        weights = [layout.keras_rnn_weights_from_onnx(
            op, W[d], R[d], None if B is None else B[d], lbr) for d in range(dirs)]
    except ValueError:
        return None
    config = {"units": units, "activation": "relu" if relu_rnn else "tanh",
              "use_bias": True, "return_sequences": True, "return_state": True,
              "go_backwards": False, "stateful": False}
    if op != "RNN":
        config["recurrent_activation"] = "sigmoid"
    if op == "GRU":
        config["reset_after"] = bool(lbr)
    return KERAS_OP[op], config, weights, dirs


@import_handler("LSTM", "GRU", "RNN", since=1)
def recurrent(node, ctx):
    form = _keras_form(node, ctx)
    if form is None:
        return ctx.onnx_op(node)
    op, config, weights, dirs = form
    a = attrs(node, ctx)
    x = node.input[0]
    hint = node.name or op.lower()
    seq = batch_major_input(node, ctx, a, hint)
    if seq is None:
        return ctx.onnx_op(node)
    n_states = 2 if op == "LSTM" else 1
    names = ["kernel", "recurrent_kernel", "bias"]
    if dirs == 1:
        ws = [(n, w) for n, w in zip(names, weights[0])]
        outs = ctx.add_node(op, config, [seq], ws, hint=hint, n_outputs=1 + n_states)
        states = [[outs[1 + k]] for k in range(n_states)]
    else:
        layer = {"class_name": op, "config": dict(config, name=f"{op.lower()}")}
        ws = [(f"forward_{op.lower()}/{n}", w) for n, w in zip(names, weights[0])] + \
             [(f"backward_{op.lower()}/{n}", w) for n, w in zip(names, weights[1])]
        outs = ctx.add_node("Bidirectional", {"layer": layer, "merge_mode": "concat"}, [seq],
                            ws, hint=hint, n_outputs=1 + 2 * n_states)
        states = [[outs[1 + k], outs[1 + n_states + k]] for k in range(n_states)]
    units, batch_major = config["units"], bool(a.get("layout", 0))
    return [sequence_value(ctx, outs[0], dirs, units, hint, batch_major)] + \
        [states_value(ctx, refs, units, hint, batch_major) for refs in states]


def batch_major_input(node, ctx, a, hint):
    """The RNN's input as a batch-major (N, T, F) IR tensor with F known, or None."""
    x = node.input[0]
    v = ctx.values.get(x)
    if a.get("layout", 0):
        source = x
    elif isinstance(v, Lazy) and v.view[0] == "TM":        # a previous Keras RNN's output
        return v.view[1]
    else:
        producer = ctx.producer(x)
        if producer is not None and producer.op_type == "Transpose" and \
                attrs(producer, ctx).get("perm") == [1, 0, 2]:
            source = producer.input[0]
        else:
            s = ctx.shape(x)
            if s is None or s[-1] is None:
                return None
            return ctx.emit_onnx("Transpose", [x], {"perm": [1, 0, 2]}, [[s[1], s[0], s[2]]],
                                 ["float32"], hint=f"{hint}_batch_major")[0]
    s = ctx.shape(source)
    if s is None or len(s) != 3 or s[-1] is None:
        return None
    return ctx.ref(source)


# -- lazy ONNX-layout values and the rules that see through them ------------------------------

def sequence_value(ctx, bm, dirs, units, hint, batch_major=False):
    """Y of a Keras sequence `bm` (N, T, D*H): (T, D, N, H), or (N, T, D, H) for layout=1."""
    def make():
        r = ctx.emit_onnx("Reshape", [bm, np.array([0, 0, dirs, units], np.int64)], {},
                          [None], ["float32"], hint=f"{hint}_Y")[0]
        if batch_major:
            return r
        return ctx.emit_onnx("Transpose", [r], {"perm": [1, 2, 0, 3]}, [None], ["float32"],
                             hint=f"{hint}_Y")[0]
    return Lazy(make, ("Y1" if batch_major else "Y", bm, dirs, units, hint))


def time_major_value(ctx, bm, hint):
    """(T, N, D*H) of `bm` (N, T, D*H)."""
    def make():
        return ctx.emit_onnx("Transpose", [bm], {"perm": [1, 0, 2]}, [None], ["float32"],
                             hint=f"{hint}_time_major")[0]
    return Lazy(make, ("TM", bm, hint))


def tndh_value(ctx, bm, dirs, units, hint):
    """(T, N, D, H) of `bm`."""
    def make():
        r = ctx.emit_onnx("Reshape", [bm, np.array([0, 0, dirs, units], np.int64)], {},
                          [None], ["float32"], hint=f"{hint}_TNDH")[0]
        return ctx.emit_onnx("Transpose", [r], {"perm": [1, 0, 2, 3]}, [None], ["float32"],
                             hint=f"{hint}_TNDH")[0]
    return Lazy(make, ("TNDH", bm, dirs, units, hint))


def states_value(ctx, refs, units, hint, batch_major=False):
    """Y_h / Y_c of per-direction Keras states (N, H): (D, N, H), or (N, D, H) for layout=1."""
    axis = 1 if batch_major else 0

    def make():
        ups = [ctx.emit_onnx("Unsqueeze", [r, np.array([axis], np.int64)], {}, [None],
                             ["float32"], hint=f"{hint}_state")[0] for r in refs]
        if len(ups) == 1:
            return ups[0]
        return ctx.emit_onnx("Concat", ups, {"axis": axis}, [None], ["float32"],
                             hint=f"{hint}_state")[0]
    return Lazy(make, ("S1" if batch_major else "S", refs, units, hint))


# where each dim of a lazy value comes from in [N, T, D*H, D, H] (the sequence's shape + D, H)
SHAPE_ORDER = {"Y": [1, 3, 0, 4], "TNDH": [1, 0, 3, 4], "TM": [1, 0, 2]}


def _shape_of(ctx, v, a):
    """Shape(lazy value) from the Keras sequence's shape, without materialising the value."""
    bm = v.view[1]
    order = SHAPE_ORDER[v.view[0]]
    dims = v.view[2:4] if v.view[0] in ("Y", "TNDH") else (1, 1)
    start, end = int(a.get("start", 0)), a.get("end")
    order = order[slice(start, None if end is None else int(end))]
    hint = v.view[-1]
    shape = ctx.emit_onnx("Shape", [bm], {}, [[3]], ["int64"], hint=f"{hint}_shape")[0]
    full = ctx.emit_onnx("Concat", [shape, np.array(dims, np.int64)], {"axis": 0}, [[5]],
                         ["int64"], hint=f"{hint}_shape")[0]
    return ctx.emit_onnx("Gather", [full, np.array(order, np.int64)], {"axis": 0},
                         [[len(order)]], ["int64"], hint=f"{hint}_shape")[0]


def view_rule(node, ctx):
    """Outputs of `node` when it only re-lays-out a Lazy RNN value; None otherwise."""
    v = ctx.values.get(node.input[0]) if node.input else None
    if not isinstance(v, Lazy):
        return None
    kind, t = v.view[0], node.op_type
    a = attrs(node, ctx)
    if t == "Shape" and kind in SHAPE_ORDER:
        return [_shape_of(ctx, v, a)]
    axes = ctx.const(_opt(node, 1)) if _opt(node, 1) else a.get("axes")
    axes = None if axes is None else [int(i) for i in np.asarray(axes).reshape(-1)]
    if kind == "Y":
        _, bm, dirs, units, hint = v.view
        if t == "Squeeze" and dirs == 1 and axes == [1]:
            return [time_major_value(ctx, bm, hint)]
        if t == "Transpose" and a.get("perm") == [0, 2, 1, 3]:
            return [tndh_value(ctx, bm, dirs, units, hint)]
    if kind == "TNDH" and t == "Reshape":
        _, bm, dirs, units, hint = v.view
        target = ctx.const(node.input[1])
        out = ctx.shape(node.output[0])
        d_in, d_out = ctx.dims.get(node.input[0]), ctx.dims.get(node.output[0])
        same_lead = d_in is not None and d_out is not None and len(d_out) == 3 and \
            len(d_in) == 4 and None not in d_out[:2] and d_out[:2] == d_in[:2]
        flat = (target is not None and list(target) in ([0, 0, -1], [0, 0, dirs * units])) or \
            (out is not None and len(out) == 3 and out[2] == dirs * units) or same_lead
        if flat:
            return [time_major_value(ctx, bm, hint)]
    if kind == "TM" and t == "Transpose" and a.get("perm") == [1, 0, 2]:
        return [v.view[1]]
    if kind == "S":
        refs = v.view[1]
        index = ctx.const(_opt(node, 1)) if t == "Gather" else None
        if t == "Gather" and int(a.get("axis", 0)) == 0 and index is not None and \
                index.ndim == 0:
            return [refs[int(index) % len(refs)]]
        if t == "Squeeze" and len(refs) == 1 and axes == [0]:
            return [refs[0]]
    return None

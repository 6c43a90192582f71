"""SimpleRNN, GRU, LSTM and Bidirectional as single ONNX RNN / GRU / LSTM nodes; RNN(cell) and
RNN([cells]) (StackedRNNCells) as one such node per cell, each fed the previous one's outputs
(inside Bidirectional: a forward and a backward chain of them).

Keras tensors are batch-major (batch, time, features); onnxruntime only runs the ONNX
default layout (time, batch, features), so inputs are transposed in and outputs out.
Weight conversions live in `layout.py`.

Keras semantics kept:
* go_backwards=True -> direction "reverse"; with return_sequences the outputs stay in
  processing order (reversed in time), as Keras returns them.
* Bidirectional: the backward outputs are re-aligned with the input time steps (as Keras
  does), merge_mode concat/sum/mul/ave/None; return_state gives the forward states, then
  the backward states.
* initial_state: extra call inputs after the sequence (h, then c for LSTM; for
  Bidirectional the forward states then the backward ones).
* Masks (Masking, Embedding(mask_zero=True)), any pattern: a masked step carries the
  state and repeats the previous output (zeros with zero_output_for_mask, which
  Bidirectional forces for sequences), as modelkit's forward and Keras do. The unmasked
  steps are compacted to the front and fed with `sequence_lens` (see `rnn_mask.py`);
  go_backwards with a mask reverses the input and its mask and runs forward.
"""

from __future__ import annotations

import numpy as np

from .. import layout, rnn_mask
from ..context import LayerUnsupported, Tensor
from ..registry import export_handler
from .activations import rnn_activation_attrs, rnn_activation_problem
from .conv_recurrent import (CONV_LSTM_OPS, conv_lstm_bidirectional_problem,
                             conv_lstm_both_ways)

RNN_OPS = {"SimpleRNN": "RNN", "GRU": "GRU", "LSTM": "LSTM"}
N_STATES = {"SimpleRNN": 1, "GRU": 1, "LSTM": 2}


def rnn_config_problem(op, cfg):
    problems = []
    if op not in RNN_OPS:
        return f"recurrent layer {op!r} is not supported (SimpleRNN, GRU, LSTM are)"
    if cfg.get("stateful"):
        problems.append("stateful=True has no ONNX equivalent")
    if cfg.get("time_major"):
        problems.append("time_major=True is not supported")
    for key in ("activation", "recurrent_activation"):
        if key in cfg or (key == "activation"):
            if key == "recurrent_activation" and op == "SimpleRNN":
                continue
            p = rnn_activation_problem(cfg.get(key, "tanh" if key == "activation" else "sigmoid"))
            if p:
                problems.append(f"{key}: {p}")
    return "; ".join(problems) or None


def _check_rnn(node, opset):
    return rnn_config_problem(node.op, node.config)


def _direction_weights(op, cfg, arrays):
    """-> (W, R, B, extra attrs) for one direction from the layer's Keras weights."""
    use_bias = cfg.get("use_bias", True)
    kernel, rec = arrays[0], arrays[1]
    bias = arrays[2] if use_bias and len(arrays) > 2 else None
    if op == "LSTM":
        return (*layout.lstm_weights(kernel, rec, bias), {})
    if op == "GRU":
        W, R, B, lbr = layout.gru_weights(kernel, rec, bias, cfg.get("reset_after", True))
        return W, R, B, {"linear_before_reset": lbr}
    return (*layout.simple_rnn_weights(kernel, rec, bias), {})


def _activations(op, cfg):
    act = cfg.get("activation", "tanh")
    rec = cfg.get("recurrent_activation", "sigmoid")
    if op == "LSTM":
        return [rec, act, act]
    if op == "GRU":
        return [rec, act]
    return [act]


def _input_mask(ctx, x):
    mask = ctx.masks.get(x.name)
    if mask is not None and mask.rank is not None and mask.rank != 2:
        raise LayerUnsupported(f"its input mask has rank {mask.rank}; only (batch, steps) "
                               f"masks are supported")
    return mask


def run_rnn(ctx, node, op, cfg, dir_arrays, xt, lens, states, direction):
    """Emit one ONNX RNN/GRU/LSTM node on the time-major input xt (T, B, F).

    dir_arrays: per direction, the Keras weight arrays. states: per direction, a list of
    (batch, units) initial-state Tensors (or None). Returns (Y, Y_h, Y_c) with Y (T, D, B, u),
    Y_h/Y_c (D, B, u).
    """
    onnx_op = RNN_OPS[op]
    units = int(dir_arrays[0][1].shape[0])
    nd = len(dir_arrays)
    per_dir = [_direction_weights(op, cfg, a) for a in dir_arrays]
    W = ctx.param(node, "W", lambda: layout.stack_directions(*[p[0] for p in per_dir]).astype(np.float32))
    R = ctx.param(node, "R", lambda: layout.stack_directions(*[p[1] for p in per_dir]).astype(np.float32))
    B = ctx.param(node, "B", lambda: layout.stack_directions(*[p[2] for p in per_dir]).astype(np.float32))
    attrs = dict(per_dir[0][3])
    attrs.update(rnn_activation_attrs(_activations(op, cfg) * nd))
    steps = None if xt.shape is None else xt.shape[0]
    batch = None if xt.shape is None else xt.shape[1]
    init = [None, None]
    if states is not None:
        for k in range(N_STATES[op]):
            parts = [ctx.unsqueeze(states[d][k], [0]) for d in range(nd)]
            init[k] = parts[0] if nd == 1 else ctx.op("Concat", parts, (nd, batch, units), axis=0)
    ins = [xt, W, R, B, lens, init[0]]
    if op == "LSTM":
        ins.append(init[1])
    n_out = 3 if op == "LSTM" else 2
    outs = ctx.emit(onnx_op, ins, n_out, hint=node.name, hidden_size=units,
                    direction=direction, **attrs)
    Y = Tensor(outs[0], (steps, nd, batch, units))
    Y_h = Tensor(outs[1], (nd, batch, units))
    Y_c = Tensor(outs[2], (nd, batch, units)) if op == "LSTM" else None
    return Y, Y_h, Y_c


def _prepare(ctx, node, x, mask, hint):
    """-> (time-major input, sequence_lens, MaskPlan or None)."""
    if mask is None:
        return ctx.transpose(x, [1, 0, 2], hint=f"{hint}/time_major"), None, None
    plan = rnn_mask.compact(ctx, x, mask, hint)
    return plan.compacted, plan.lens, plan


def _final_states(ctx, plan, Y_h, Y_c, d, states, hint):
    """The (h[, c]) states of direction d as Keras returns them."""
    out = [_last(ctx, Y_h, d)] + ([_last(ctx, Y_c, d)] if Y_c is not None else [])
    if plan is None:
        return out
    init = states[d] if states is not None else [None] * len(out)
    return [rnn_mask.final_state(ctx, plan, s, s0, f"{hint}/state{k}")
            for k, (s, s0) in enumerate(zip(out, init))]


def _seq_out(ctx, node, Y, d, hint):
    """Direction d of Y (T, D, B, u) as a batch-major (B, T, u) tensor."""
    y = ctx.slice(Y, 1, d, d + 1) if Y.shape[1] > 1 else Y
    y = ctx.squeeze(y, [1])
    return ctx.transpose(y, [1, 0, 2], hint=hint)


def _last(ctx, Y_h, d):
    y = ctx.slice(Y_h, 0, d, d + 1) if Y_h.shape[0] > 1 else Y_h
    return ctx.squeeze(y, [0])


def _split_states(inputs, n_states, nd):
    extra = list(inputs[1:])
    if not extra:
        return None
    if len(extra) != n_states * nd:
        raise LayerUnsupported(f"the call passes {len(extra)} initial state tensor(s); "
                               f"{n_states * nd} expected")
    return [extra[d * n_states:(d + 1) * n_states] for d in range(nd)]


@export_handler("SimpleRNN", "GRU", "LSTM", check=_check_rnn)
def rnn_layer(node, ctx, inputs):
    return _recurrent(node, ctx, inputs, [(node.op, node.config, ctx.weights(node), node)])


# -- RNN over a cell, or a stack of cells (StackedRNNCells) ---------------------------------

_CELL_OPS = {"SimpleRNNCell": "SimpleRNN", "GRUCell": "GRU", "LSTMCell": "LSTM"}


def _cell_configs(node):
    """[(class name, config)] of an RNN node's cell, or of each cell of its StackedRNNCells."""
    cell = node.config.get("cell") or {}
    inner = [cell]
    if cell.get("class_name") == "StackedRNNCells":
        inner = (cell.get("config") or {}).get("cells") or []
    return [(c.get("class_name"), dict(c.get("config") or {})) for c in inner]


def _check_cells(node, opset):
    problems = []
    for cls, cfg in _cell_configs(node):
        op = _CELL_OPS.get(cls)
        if op is None:
            problems.append(f"cell {cls!r} is not supported (SimpleRNNCell, GRUCell, LSTMCell are)")
            continue
        p = rnn_config_problem(op, {**cfg, "stateful": node.config.get("stateful"),
                                    "time_major": node.config.get("time_major")})
        if p:
            problems.append(f"cell {cfg.get('name', cls)!r}: {p}")
    return "; ".join(problems) or None


@export_handler("RNN", check=_check_cells)
def rnn_of_cells(node, ctx, inputs):
    """One ONNX RNN/GRU/LSTM node per cell, each fed the previous one's output sequence."""
    return _recurrent(node, ctx, inputs, _cells(node, ctx.weights(node)))


def _cells(node, arrays):
    """[(op, cell config, its weight arrays, node for names)] of an RNN node, taking the
    cells' weights from the front of `arrays`."""
    cells = []
    for cls, cfg in _cell_configs(node):
        n = 3 if cfg.get("use_bias", True) else 2
        owner = _LayerNode(f"{node.name}/{cfg.get('name', cls)}")
        cells.append((_CELL_OPS[cls], cfg, arrays[:n], owner))
        arrays = arrays[n:]
    return cells


class _LayerNode:
    """What the emitters need of a node: a name for parameters and nodes (and a config)."""

    def __init__(self, name, config=None):
        self.name = name
        self.config = config or {}


def _recurrent(node, ctx, inputs, cells):
    """A recurrent layer of `cells` [(op, cell config, weight arrays, node for names)] run
    in turn per time step; the layer's own settings come from node.config."""
    cfg = node.config
    x = inputs[0]
    counts = [N_STATES[op] for op, *_ in cells]
    given = _split_states(inputs, sum(counts), 1)
    backwards = bool(cfg.get("go_backwards", False))
    zero_output = bool(cfg.get("zero_output_for_mask", False))
    mask = _input_mask(ctx, x)
    direction = "reverse" if backwards else "forward"
    if mask is not None and backwards:
        # processing order made explicit, so the mask plan sees the steps in Keras's order
        x, direction = ctx.reverse(x, 1, hint=f"{node.name}/reversed"), "forward"
        proc_mask = ctx.reverse(mask, 1, hint=f"{node.name}/mask_reversed")
    else:
        proc_mask = mask
    xt, lens, plan = _prepare(ctx, node, x, proc_mask, node.name)
    finals, at = [], 0
    for (op, ccfg, arrays, owner), n in zip(cells, counts):
        states = [given[0][at:at + n]] if given else None
        at += n
        # a reversed run's outputs stay aligned with the input steps, so the next cell
        # runs the same direction on them
        Y, Y_h, Y_c = run_rnn(ctx, owner, op, ccfg, [arrays], xt, lens, states, direction)
        finals += _final_states(ctx, plan, Y_h, Y_c, 0, states, owner.name)
        xt = ctx.squeeze(Y, [1])
    last_h = finals[len(finals) - counts[-1]]
    if cfg.get("return_sequences"):
        seq = _seq_out(ctx, node, Y, 0, node.name)
        if plan is not None:
            seq = rnn_mask.expand_outputs(ctx, plan, seq, zero_output, node.name)
        elif backwards:
            seq = ctx.reverse(seq, 1, hint=node.name)
        out = seq
        if mask is not None:
            ctx.masks[out.name] = mask     # Keras returns the input mask unchanged
    elif plan is not None:
        out = rnn_mask.last_output(ctx, plan, _last(ctx, Y_h, 0), zero_output, node.name)
    else:
        out = ctx.op("Identity", [last_h], last_h.shape, hint=node.name)
    outs = [out]
    if cfg.get("return_state"):
        outs.extend(finals)
    return outs


# -- Bidirectional ------------------------------------------------------------------------------

def _inner(node):
    layer = node.config.get("layer") or {}
    return layer.get("class_name"), dict(layer.get("config") or {})


def _check_bidirectional(node, opset):
    op, cfg = _inner(node)
    if op in CONV_LSTM_OPS:
        return conv_lstm_bidirectional_problem(node, cfg, opset)
    if op == "RNN":
        back = node.config.get("backward_layer") or {}
        return "; ".join(filter(None, (
            _check_cells(_LayerNode(node.name, c), opset)
            for c in (cfg, dict(back.get("config") or cfg))))) or None
    p = rnn_config_problem(op, cfg)
    if p:
        return p
    if cfg.get("go_backwards"):
        return "a wrapped layer with go_backwards=True is not supported"
    mode = node.config.get("merge_mode", "concat")
    if mode not in ("concat", "sum", "mul", "ave", None):
        return f"merge_mode {mode!r} is not supported"
    back = node.config.get("backward_layer")
    if back:
        bop, bcfg = back.get("class_name"), dict(back.get("config") or {})
        same = ("units", "activation", "recurrent_activation", "use_bias", "reset_after")
        if bop != op or any(bcfg.get(k) != cfg.get(k) for k in same):
            return "a backward_layer that differs from the forward layer is not supported"
    return None


@export_handler("Bidirectional", check=_check_bidirectional)
def bidirectional(node, ctx, inputs):
    op, cfg = _inner(node)
    if op in CONV_LSTM_OPS:
        fwd, bwd = conv_lstm_both_ways(node, ctx, inputs, op, cfg)
        return merge_directions(ctx, node, fwd, bwd)
    if op == "RNN":
        return _bidirectional_cells(node, ctx, inputs, cfg)
    x = inputs[0]
    ws = ctx.weights(node)
    half = len(ws) // 2
    states = _split_states(inputs, N_STATES[op], 2)
    mask = _input_mask(ctx, x)
    xt, lens, plan = _prepare(ctx, node, x, mask, node.name)
    Y, Y_h, Y_c = run_rnn(ctx, node, op, cfg, [ws[:half], ws[half:]], xt, lens, states,
                          "bidirectional")
    if cfg.get("return_sequences"):
        # Keras (2 and 3) forces zero_output_for_mask inside Bidirectional: masked steps
        # are zeros in both directions.
        fwd = _seq_out(ctx, node, Y, 0, f"{node.name}/forward")
        bwd = _seq_out(ctx, node, Y, 1, f"{node.name}/backward")
        if plan is not None:
            fwd = rnn_mask.expand_outputs(ctx, plan, fwd, True, f"{node.name}/forward")
            bwd = rnn_mask.expand_outputs(ctx, plan, bwd, True, f"{node.name}/backward")
    else:
        fwd, bwd = _last(ctx, Y_h, 0), _last(ctx, Y_h, 1)
        if plan is not None:
            fwd = rnn_mask.last_output(ctx, plan, fwd, False, f"{node.name}/forward")
            bwd = rnn_mask.last_output(ctx, plan, bwd, False, f"{node.name}/backward")
    merged = merge_directions(ctx, node, fwd, bwd)
    if cfg.get("return_sequences") and mask is not None:
        for m in merged:
            ctx.masks[m.name] = mask
    outs = list(merged)
    if cfg.get("return_state"):
        for d in range(2):
            outs.extend(_final_states(ctx, plan, Y_h, Y_c, d, states, node.name))
    return outs


def _bidirectional_cells(node, ctx, inputs, cfg):
    """Bidirectional over RNN(cell / cells): a forward and a backward chain of per-cell
    nodes (one ONNX node per cell and direction), merged as Keras does."""
    back = node.config.get("backward_layer") or {}
    seq = bool(cfg.get("return_sequences"))
    ws, given = ctx.weights(node), list(inputs[1:])
    half = len(given) // 2
    outs, finals = [], []
    for d, lcfg in enumerate((cfg, dict(back.get("config") or cfg))):
        # Keras forces zero_output_for_mask for returned sequences inside Bidirectional
        layer = _LayerNode(f"{node.name}/{'backward' if d else 'forward'}",
                           {**lcfg, "go_backwards": d == 1, "return_sequences": seq,
                            "return_state": True, "zero_output_for_mask": seq})
        cells = _cells(layer, ws)
        ws = ws[sum(len(c[2]) for c in cells):]
        out, *states = _recurrent(layer, ctx, [inputs[0]] + given[d * half:(d + 1) * half],
                                  cells)
        if seq and d == 1:          # the backward outputs re-aligned with the input steps
            out = ctx.reverse(out, 1, hint=f"{layer.name}/aligned")
        outs.append(out)
        finals += states
    merged = merge_directions(ctx, node, *outs)
    mask = _input_mask(ctx, inputs[0])
    if seq and mask is not None:
        for m in merged:
            ctx.masks[m.name] = mask
    return merged + (finals if cfg.get("return_state") else [])


def merge_directions(ctx, node, fwd, bwd):
    """Bidirectional's merge_mode applied to the two directions' outputs (a list)."""
    mode = node.config.get("merge_mode", "concat")
    shape = fwd.shape
    if mode == "concat":
        cshape = None if shape is None else shape[:-1] + (2 * shape[-1],)
        return [ctx.op("Concat", [fwd, bwd], cshape, hint=node.name, axis=-1)]
    if mode == "sum":
        return [ctx.op("Add", [fwd, bwd], shape, hint=node.name)]
    if mode == "mul":
        return [ctx.op("Mul", [fwd, bwd], shape, hint=node.name)]
    if mode == "ave":
        s = ctx.op("Add", [fwd, bwd], shape)
        return [ctx.op("Mul", [s, ctx.scalar(0.5)], shape, hint=node.name)]
    return [fwd, bwd]

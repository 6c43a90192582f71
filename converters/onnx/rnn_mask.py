"""Keras masking for ONNX recurrent nodes, exact for every mask pattern.

Keras (and modelkit's own forward, the reference) skips a masked step: the state is carried
unchanged and the output repeats the previous step's output (zeros before the first unmasked
step), or is zero with `zero_output_for_mask` (what Bidirectional forces for sequences).
ONNX's RNN/GRU/LSTM only understand `sequence_lens`, i.e. masks whose masked steps all come at
the end. So the graph here:

1. compacts every row's unmasked steps to the front, in order (a stable permutation built
   from CumSum of the mask, applied with ScatterElements: no ArgSort, no loops);
2. runs the native node on the compacted sequence with `sequence_lens` = the number of
   unmasked steps (at least 1, so no runtime sees a zero length; the rows with none are
   patched afterwards);
3. gathers the outputs back to the original steps: step t takes the compacted output of the
   last unmasked step at or before t (CumSum of the mask again), so masked steps repeat the
   previous output; Where() puts the zeros where Keras has them.

A reverse ONNX direction on the compacted sequence visits the unmasked steps last to first,
which is exactly Keras's backward layer, so Bidirectional uses the same plan. Everything is
standard ops of opset 11+ (CumSum, ScatterElements, GatherElements, Where).
"""

from __future__ import annotations

from dataclasses import dataclass

from .context import Tensor


@dataclass
class MaskPlan:
    """The tensors one masked RNN call shares between its steps."""
    mask: Tensor          # (B, T) bool, processing order
    count: Tensor         # (B, T) int64: unmasked steps at or before t (inclusive CumSum)
    lens: Tensor          # (B,) int32 sequence_lens for the ONNX node (>= 1)
    any_step: Tensor      # (B,) bool: the row has at least one unmasked step
    compacted: Tensor     # (T, B, F) time-major input, unmasked steps first


def _batch_time(x):
    return (None, None) if x.shape is None else (x.shape[0], x.shape[1])


def compact(ctx, x, mask, hint):
    """Plan for input x (B, T, F) batch-major and its (B, T) bool mask, both in processing
    order; the compacted input comes back time-major, ready for the ONNX node."""
    bt = _batch_time(x)
    m = ctx.cast(mask, "int64", hint=f"{hint}/mask_i64")
    one = ctx.ints([1])
    time_axis = one
    count = ctx.op("CumSum", [m, time_axis], bt, hint=f"{hint}/unmasked_count")
    masked = ctx.op("Sub", [one, m], bt)
    masked_count = ctx.op("CumSum", [masked, time_axis], bt, hint=f"{hint}/masked_count")
    total = ctx.reduce("ReduceSum", m, [1], True, hint=f"{hint}/n_unmasked")
    # destination of step t: unmasked steps keep their order at the front, masked ones follow
    front = ctx.op("Sub", [count, one], bt)
    back = ctx.op("Add", [total, ctx.op("Sub", [masked_count, one], bt)], bt)
    dest = ctx.op("Where", [mask, front, back], bt, dtype="int64", hint=f"{hint}/compact_index")
    dest3 = _expand_like(ctx, dest, x)
    xc = ctx.op("ScatterElements", [x, dest3, x], x.shape, hint=f"{hint}/compacted", axis=1)
    lens64 = ctx.squeeze(total, [1])
    any_step = ctx.op("Greater", [lens64, ctx.ints([0])], lens64.shape, dtype="bool")
    lens = ctx.cast(ctx.op("Max", [lens64, one], lens64.shape), "int32",
                    hint=f"{hint}/sequence_lens")
    xt = ctx.transpose(xc, [1, 0, 2], hint=f"{hint}/time_major")
    return MaskPlan(mask, count, lens, any_step, xt)


def _expand_like(ctx, idx, like):
    """(B, T) indices -> (B, T, F) to index `like` (B, T, F) along axis 1."""
    return ctx.op("Expand", [ctx.unsqueeze(idx, [2]), ctx.shape_of(like)], like.shape,
                  dtype="int64")


def expand_outputs(ctx, plan, ys, zero_output, hint):
    """Compacted outputs ys (B, T, u) batch-major -> the outputs at the original steps.

    An unmasked step gets its own output; a masked step the output of the last unmasked step
    before it (zeros if there is none), or zeros when `zero_output`."""
    one = ctx.ints([1])
    bt = plan.count.shape
    last = ctx.op("Max", [ctx.op("Sub", [plan.count, one], bt), ctx.ints([0])], bt,
                  hint=f"{hint}/last_unmasked")
    got = ctx.op("GatherElements", [ys, _expand_like(ctx, last, ys)], ys.shape,
                 hint=f"{hint}/expanded", axis=1)
    if zero_output:
        keep = plan.mask
    else:
        keep = ctx.op("Greater", [plan.count, ctx.ints([0])], bt, dtype="bool")
    return _where_rows(ctx, keep, got, hint)


def last_output(ctx, plan, h, zero_output, hint):
    """The output Keras returns without return_sequences: the final state of rows with an
    unmasked step (zeros for the others; with `zero_output`, zeros when the last step is
    masked)."""
    if zero_output:
        keep = ctx.squeeze(ctx.slice(plan.mask, 1, -1, 2 ** 62), [1])
    else:
        keep = plan.any_step
    return _where_rows(ctx, keep, h, hint)


def final_state(ctx, plan, h, h0, hint):
    """A final state: the ONNX one for rows with an unmasked step, the initial state (or
    zeros) for rows whose every step is masked."""
    return _where_rows(ctx, plan.any_step, h, hint, other=h0)


def _where_rows(ctx, keep, value, hint, other=None):
    """Where(keep, value, other or 0) with keep broadcast over value's trailing dims."""
    cond = keep
    while cond.rank is not None and value.rank is not None and cond.rank < value.rank:
        cond = ctx.unsqueeze(cond, [cond.rank])
    zero = other if other is not None else ctx.scalar(0.0, dtype=value.dtype)
    return ctx.op("Where", [cond, value, zero], value.shape, dtype=value.dtype, hint=hint)

"""ONNX sequences and optionals: a sequence is a plain Python list of Tensors, an optional
is None (empty) or its value (a Tensor or a list). SequenceConstruct/Empty/Insert/At/
Erase/Length, SplitToSequence, ConcatFromSequence, SequenceMap (its body run once per
element), Optional, OptionalHasElement, OptionalGetElement. Tensors taken from or put into a
sequence stay on the tape (Concat/Split are backend ops), so gradients flow through them.

Between layers a sequence or optional travels boxed (`onnx_spec.OnnxValue`): the functional
engine reads a list output as several outputs and None as a missing one.
"""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from ...onnx_spec import OnnxValue
from . import onnx_op, run_onnx_op
from ._util import axis_of, const, ints, values
from .control_flow import run_graph
from ..tensor import Tensor


def unbox(x):
    """A layer input as an ONNX op takes it: an OnnxValue (or the Tensor wrapping one, as
    the engine makes of a model input) -> its list of Tensors / None / Tensor."""
    if isinstance(x, OnnxValue):
        return _runtime(x.value)
    v = x.value if isinstance(x, Tensor) else x
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind == "O":
        item = v.item()
        if isinstance(item, (str, bytes)):
            return x                    # a 0-d string tensor
        return _runtime(item.value if isinstance(item, OnnxValue) else item)
    return x


def _runtime(v):
    if v is None or isinstance(v, Tensor):
        return v
    if isinstance(v, (list, tuple)):
        return [e if isinstance(e, Tensor) else Tensor(np.asarray(e)) for e in v]
    return Tensor(np.asarray(v))


def box(x):
    """An op output as it leaves a layer: lists and None boxed, Tensors as they are."""
    return OnnxValue(x) if x is None or isinstance(x, list) else x


def _sequence(x, op_type):
    if not isinstance(x, list):
        raise ShapeError(f"{op_type} takes a sequence, got "
                         f"{'a tensor' if hasattr(x, 'shape') else type(x).__name__}")
    return x


def _position(seq, pos, op_type, insert=False):
    n = len(seq)
    p = int(np.asarray(values(pos)).reshape(-1)[0])
    hi = n if insert else n - 1
    if not -n <= p <= hi:
        raise ShapeError(f"{op_type}: position {p} is out of range for a sequence of {n}")
    return p + n if p < 0 else p


@onnx_op("SequenceConstruct")
def sequence_construct(inputs, attrs, ctx):
    dtypes = {x.dtype for x in inputs}
    if len(dtypes) > 1:
        raise ShapeError(f"SequenceConstruct: tensors of one type expected, got "
                         f"{sorted(map(str, dtypes))}")
    return [list(inputs)]


@onnx_op("SequenceEmpty")
def sequence_empty(inputs, attrs, ctx):
    return [[]]


@onnx_op("SequenceInsert")
def sequence_insert(inputs, attrs, ctx):
    seq = list(_sequence(inputs[0], "SequenceInsert"))
    pos = len(seq) if len(inputs) < 3 or inputs[2] is None else \
        _position(seq, inputs[2], "SequenceInsert", insert=True)
    seq.insert(pos, inputs[1])
    return [seq]


@onnx_op("SequenceAt")
def sequence_at(inputs, attrs, ctx):
    seq = _sequence(inputs[0], "SequenceAt")
    return seq[_position(seq, inputs[1], "SequenceAt")]


@onnx_op("SequenceErase")
def sequence_erase(inputs, attrs, ctx):
    seq = list(_sequence(inputs[0], "SequenceErase"))
    if not seq:
        raise ShapeError("SequenceErase: the sequence is empty")
    pos = len(seq) - 1 if len(inputs) < 2 or inputs[1] is None else \
        _position(seq, inputs[1], "SequenceErase")
    del seq[pos]
    return [seq]


@onnx_op("SequenceLength")
def sequence_length(inputs, attrs, ctx):
    return const(np.asarray(len(_sequence(inputs[0], "SequenceLength")), np.int64))


@onnx_op("SplitToSequence")
def split_to_sequence(inputs, attrs, ctx):
    """Split along `axis` into parts of `split` (a length or a list), or into length-1
    parts (squeezed unless keepdims=1) when `split` is not given."""
    x = inputs[0]
    axis = axis_of(attrs.get("axis", 0), x.ndim)
    n = x.shape[axis]
    split = inputs[1] if len(inputs) > 1 else None
    if split is None:
        sizes, squeeze = [1] * n, not int(attrs.get("keepdims", 1))
    else:
        s = np.asarray(values(split))
        if s.ndim == 0:
            k = int(s)
            sizes = [k] * (n // k) + ([n % k] if n % k else [])
        else:
            sizes = ints(split)
        squeeze = False
        if sum(sizes) != n:
            raise ShapeError(f"SplitToSequence: parts {sizes} do not add up to the "
                             f"{n} elements of axis {axis}")
    if not sizes:
        return [[]]
    parts = run_onnx_op("Split", [x, const(np.asarray(sizes, np.int64))], {"axis": axis},
                        opset=max(ctx.opset, 13), num_outputs=len(sizes))
    if squeeze:
        parts = [run_onnx_op("Squeeze", [p, const(np.asarray([axis], np.int64))],
                             opset=max(ctx.opset, 13))[0] for p in parts]
    return [list(parts)]


@onnx_op("ConcatFromSequence")
def concat_from_sequence(inputs, attrs, ctx):
    """Concat along `axis`, or (new_axis=1) stack along a new axis."""
    seq = _sequence(inputs[0], "ConcatFromSequence")
    if not seq:
        raise ShapeError("ConcatFromSequence: the sequence is empty")
    new_axis = int(attrs.get("new_axis", 0))
    rank = seq[0].ndim + new_axis
    axis = axis_of(attrs["axis"], rank)
    if new_axis:
        seq = [run_onnx_op("Unsqueeze", [t, const(np.asarray([axis], np.int64))],
                           opset=max(ctx.opset, 13))[0] for t in seq]
    return run_onnx_op("Concat", seq, {"axis": axis}, opset=ctx.opset)[0]


@onnx_op("SequenceMap")
def sequence_map(inputs, attrs, ctx):
    """body(x_1[i], ..., tensor inputs) for each i; each body output gathered into a
    sequence. Sequence inputs must have the same length; tensor inputs are passed whole."""
    lengths = {len(x) for x in inputs if isinstance(x, list)}
    if len(lengths) != 1:
        raise ShapeError(f"SequenceMap: the sequence inputs have different lengths "
                         f"{sorted(lengths)}" if lengths else
                         "SequenceMap: the first input must be a sequence")
    (n,) = lengths
    results = None
    for i in range(n):
        feeds = [x[i] if isinstance(x, list) else x for x in inputs]
        outs = run_graph(attrs["body"], feeds, {}, ctx)
        results = [[] for _ in outs] if results is None else results
        for r, o in zip(results, outs):
            r.append(o)
    if results is None:         # an empty sequence: one empty sequence per body output
        from ...onnx_spec import GRAPH_KEY
        results = [[] for _ in attrs["body"][GRAPH_KEY]["outputs"]]
    return results


@onnx_op("Optional")
def optional(inputs, attrs, ctx):
    """An optional holding the input, or (no input) an empty one."""
    return [inputs[0] if inputs and inputs[0] is not None else None]


@onnx_op("OptionalHasElement")
def optional_has_element(inputs, attrs, ctx):
    x = inputs[0] if inputs else None
    return const(np.asarray(x is not None))


@onnx_op("OptionalGetElement")
def optional_get_element(inputs, attrs, ctx):
    x = inputs[0] if inputs else None
    if x is None:
        raise ShapeError("OptionalGetElement: the optional is empty")
    return [x]


"""The canonical intermediate representation: a layer graph, its weights and training config.

Plain data. Converters (HDF5, ONNX) read and write this, never the layer classes.

Conventions
-----------
* A graph input is a `TensorSpec`; nodes refer to it with `TensorRef(spec.name, 0, 0)`.
  Input layers are therefore not nodes.
* `Node.op` is the Keras layer class name ("Dense", "LSTM", "Bidirectional", ...) and
  `Node.config` its Keras-2 `get_config()` dict (wrappers hold `{"layer": {"class_name",
  "config"}}` as Keras does). ONNX ops with no layer equivalent use `op="OnnxOp"`.
* `Node.calls[i]` lists the input tensors of the node's i-th call (a shared layer has
  several calls); `TensorRef(node, call_index, tensor_index)` names one output.
* `Node.weights` lists keys of `Graph.weights` in the layer's own (Keras) weight order,
  spelled `"<node>/<variable>"` like Keras 2 variable names without ":0"
  (`"dense/kernel"`, `"lstm/lstm_cell/recurrent_kernel"`).
* A nested model is a node with `op` "Functional" or "Sequential" whose `subgraph` is a
  self-contained Graph (its own weights); such a node has no weights of its own. A wrapper
  of a whole model (`TimeDistributed(model)`) keeps its weights and also carries the wrapped
  model as `subgraph`, so converters need not parse the Keras config inside its config.
* Activation names are modelkit's: `"hard_sigmoid"` is Keras 2's clip(0.2x+0.5); Keras 3's
  clip(x/6+0.5) is `"keras3_hard_sigmoid"`. The HDF5 converter translates at the file boundary.
* `Graph.metadata` carries free-form facts (`"source"`, `"keras_version"`, ...).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import IRError
from .onnx_spec import LOW_PRECISION, dtype_named

IR_FORMAT_VERSION = 1
NESTED_MODEL_OPS = ("Functional", "Sequential", "Model")
# The boolean call keyword arguments a Node's call_kwargs keep (Keras inbound-node kwargs):
# the training phase, and the attention layers' causal mask and attention-score output.
CALL_FLAGS = ("training", "use_causal_mask", "return_attention_scores")


@dataclass(frozen=True)
class TensorRef:
    """One tensor: output `tensor_index` of call `call_index` of node (or input) `node`."""

    node: str
    call_index: int = 0
    tensor_index: int = 0

    def to_list(self):
        return [self.node, self.call_index, self.tensor_index]

    @classmethod
    def from_list(cls, item):
        node, call_index, tensor_index = item
        return cls(str(node), int(call_index), int(tensor_index))


MAX_RANK = 32
_TENSOR_KINDS = "biuf"          # bool, signed/unsigned integers, floats


# the dtype name of a graph input that is no tensor (an ONNX sequence or optional: a list /
# None at run time, boxed between layers)
NON_TENSOR = "object"


def tensor_dtype(dtype, where):
    """The canonical name of a tensor dtype (numeric or bool); IRError naming `where` for
    anything else (strings such as 'U500000000', objects, records)."""
    if dtype == NON_TENSOR:
        return NON_TENSOR
    try:
        dt = dtype_named(dtype) if isinstance(dtype, str) and dtype in LOW_PRECISION else \
            np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError, RecursionError):
        raise IRError(f"{where}: {dtype!r:.80} is not a dtype") from None
    if str(dt) in LOW_PRECISION:        # bfloat16, float8/float4, int4/int2 (ml_dtypes)
        return str(dt)
    if dt.kind not in _TENSOR_KINDS or dt.itemsize > 8 or dt.fields or dt.subdtype:
        raise IRError(f"{where}: dtype {dtype!r:.80} is not a numeric or bool tensor dtype")
    return str(dt)


@dataclass
class TensorSpec:
    """A graph input: name, shape (None for unknown dims, batch first) and dtype name."""

    name: str
    shape: tuple
    dtype: str = "float32"

    def __post_init__(self):
        try:
            shape = tuple(self.shape)
        except TypeError:
            raise IRError(f"input {self.name!r}: shape must be a list, got {self.shape!r:.80}") \
                from None
        if len(shape) > MAX_RANK or not all(
                d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                              and 0 <= d < 2 ** 62) for d in shape):
            raise IRError(f"input {self.name!r}: shape {shape!r:.120} must list at most "
                          f"{MAX_RANK} non-negative integers or None")
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = tensor_dtype(self.dtype, f"input {self.name!r}")

    def to_dict(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d):
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"))


@dataclass
class TrainingConfig:
    """What `compile` was given, plus the optimizer's state for exact resumption.

    `optimizer` is `{"class_name": ..., "config": {...}}`; `optimizer_state` is
    `{"iterations": int, "weights": {slot_name: array, ...}}` (insertion-ordered) or None.
    """

    optimizer: dict | None = None
    loss: Any = None
    metrics: Any = None
    loss_weights: Any = None
    optimizer_state: dict | None = None

    def to_dict(self):
        return {"optimizer": self.optimizer, "loss": self.loss, "metrics": self.metrics,
                "loss_weights": self.loss_weights}

    @classmethod
    def from_dict(cls, d):
        return cls(optimizer=d.get("optimizer"), loss=d.get("loss"),
                   metrics=d.get("metrics"), loss_weights=d.get("loss_weights"))


@dataclass
class Node:
    """One layer and every call made to it."""

    name: str
    op: str
    config: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)       # list[list[TensorRef]]
    weights: list = field(default_factory=list)     # list[str], keys of Graph.weights
    subgraph: "Graph | None" = None
    call_kwargs: list = field(default_factory=list)  # per call, e.g. {"training": True}

    def kwargs_of(self, call_index):
        """The keyword arguments of call `call_index` (Keras's inbound-node kwargs)."""
        kw = self.call_kwargs[call_index] if call_index < len(self.call_kwargs) else None
        return dict(kw or {})

    def to_dict(self):
        d = {"name": self.name, "op": self.op, "config": self.config,
             "calls": [[r.to_list() for r in call] for call in self.calls],
             "weights": list(self.weights)}
        if any(self.call_kwargs):
            d["call_kwargs"] = [dict(k or {}) for k in self.call_kwargs]
        if self.subgraph is not None:
            d["subgraph"] = self.subgraph.to_dict()
        return d

    @classmethod
    def from_dict(cls, d):
        sub = d.get("subgraph")
        return cls(name=d["name"], op=d["op"], config=d.get("config", {}),
                   calls=[[TensorRef.from_list(r) for r in call] for call in d.get("calls", [])],
                   weights=list(d.get("weights", [])),
                   subgraph=Graph.from_dict(sub) if sub is not None else None,
                   call_kwargs=[dict(k or {}) for k in d.get("call_kwargs", [])])


@dataclass
class Graph:
    """A model: inputs, nodes in topological order, outputs, weights, training config."""

    name: str
    inputs: list                                    # list[TensorSpec]
    outputs: list                                   # list[TensorRef]
    nodes: list                                     # list[Node]
    weights: dict = field(default_factory=dict)     # str -> np.ndarray
    training: TrainingConfig | None = None
    metadata: dict = field(default_factory=dict)

    # -- lookup -------------------------------------------------------------------------
    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise IRError(f"Graph {self.name!r} has no node {name!r}; "
                      f"nodes: {[n.name for n in self.nodes]}")

    def input_names(self):
        return [s.name for s in self.inputs]

    def node_weights(self, node):
        """The arrays of `node` (a Node or a name), in the layer's weight order."""
        if isinstance(node, str):
            node = self.node(node)
        return [self.weights[k] for k in node.weights]

    def is_chain(self):
        """Whether the graph is a Sequential chain: one input, each node called once on the
        previous node's only output, the last node's output the graph's only output."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            return False
        prev = TensorRef(self.inputs[0].name, 0, 0)
        for n in self.nodes:
            if len(n.calls) != 1 or n.calls[0] != [prev]:
                return False
            prev = TensorRef(n.name, 0, 0)
        return self.outputs[0] == prev

    # -- validation ---------------------------------------------------------------------
    def validate(self, weights=True):
        """Check internal consistency; raise IRError naming the node and the problem.

        weights=False checks the structure only (a config without weights: `get_config`)."""
        if not self.inputs:
            raise IRError(f"Graph {self.name!r} has no inputs")
        if not self.outputs:
            raise IRError(f"Graph {self.name!r} has no outputs")
        calls = {}
        for spec in self.inputs:
            if not isinstance(spec, TensorSpec):
                raise IRError(f"Graph {self.name!r}: input {spec!r} is not a TensorSpec")
            if spec.name in calls:
                raise IRError(f"Graph {self.name!r}: input name {spec.name!r} is used twice")
            calls[spec.name] = 1   # an input has one call with one tensor
        for node in self.nodes:
            if node.name in calls:
                raise IRError(f"Node {node.name!r}: name is used twice in graph {self.name!r}")
            calls[node.name] = len(node.calls)
        for node in self.nodes:
            self._validate_node(node, calls, weights)
        for ref in self.outputs:
            self._check_ref(ref, calls, f"Graph {self.name!r} output")
        self.call_order()          # raises on a cycle
        return self

    def _validate_node(self, node, calls, weights=True):
        if not isinstance(node.op, str) or not node.op:
            raise IRError(f"Node {node.name!r}: op must be a non-empty string, got {node.op!r}")
        if not isinstance(node.config, dict):
            raise IRError(f"Node {node.name!r}: config must be a dict, "
                          f"got {type(node.config).__name__}")
        if not node.calls:
            raise IRError(f"Node {node.name!r} ({node.op}) is never called")
        for ci, call in enumerate(node.calls):
            if not call:
                raise IRError(f"Node {node.name!r}: call {ci} has no inputs")
            for ref in call:
                self._check_ref(ref, calls, f"Node {node.name!r} call {ci}")
        for key in node.weights if weights else ():
            if key not in self.weights:
                raise IRError(f"Node {node.name!r}: weight {key!r} is missing from the graph")
            if not isinstance(self.weights[key], np.ndarray):
                raise IRError(f"Node {node.name!r}: weight {key!r} is not a numpy array")
        if node.op in NESTED_MODEL_OPS:
            if node.subgraph is None:
                raise IRError(f"Node {node.name!r}: nested {node.op} has no subgraph")
            node.subgraph.validate(weights)

    def call_order(self):
        """Every (node, call index) in an order where each call's inputs come first.

        Usually node order; a shared layer whose later call depends on a later node (or on
        its own earlier call, `d(d(x))`) is placed once its inputs exist.
        """
        produced = {(s.name, 0) for s in self.inputs}
        pending = [(n, ci) for n in self.nodes for ci in range(len(n.calls))]
        order = []
        while pending:
            waiting = []
            for node, ci in pending:
                if all((r.node, r.call_index) in produced for r in node.calls[ci]):
                    order.append((node, ci))
                    produced.add((node.name, ci))
                else:
                    waiting.append((node, ci))
            if len(waiting) == len(pending):
                stuck = sorted({n.name for n, _ in waiting})
                raise IRError(f"Graph {self.name!r}: the calls of nodes {stuck} depend on each "
                              "other in a cycle (or on outputs that are never produced)")
            pending = waiting
        return order

    @staticmethod
    def _check_ref(ref, calls, where):
        if not isinstance(ref, TensorRef):
            raise IRError(f"{where}: {ref!r} is not a TensorRef")
        if ref.node not in calls:
            raise IRError(f"{where}: refers to {ref.node!r}, which is not an input or a node")
        if not 0 <= ref.call_index < calls[ref.node]:
            raise IRError(f"{where}: {ref.node!r} has {calls[ref.node]} call(s), "
                          f"call index {ref.call_index} is out of range")
        if ref.tensor_index < 0:
            raise IRError(f"{where}: negative tensor index {ref.tensor_index} for {ref.node!r}")

    # -- (de)serialisation --------------------------------------------------------------
    def to_dict(self):
        """Everything except weight values (weight shapes and dtypes are recorded)."""
        return {
            "format_version": IR_FORMAT_VERSION,
            "name": self.name,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [r.to_list() for r in self.outputs],
            "nodes": [n.to_dict() for n in self.nodes],
            "weight_specs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                             for k, v in self.weights.items()},
            "training": self.training.to_dict() if self.training else None,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d, weights=None):
        try:
            g = cls(name=d["name"],
                    inputs=[TensorSpec.from_dict(s) for s in d["inputs"]],
                    outputs=[TensorRef.from_list(r) for r in d["outputs"]],
                    nodes=[Node.from_dict(n) for n in d["nodes"]],
                    weights=dict(weights or {}),
                    training=TrainingConfig.from_dict(d["training"]) if d.get("training") else None,
                    metadata=dict(d.get("metadata") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise IRError(f"Malformed IR dict: {type(e).__name__}: {e}") from None
        return g

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), default=json_default, **kwargs)

    @classmethod
    def from_json(cls, text, weights=None):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise IRError(f"IR JSON is not valid JSON: {e}") from None
        return cls.from_dict(d, weights)

    def copy(self):
        return copy.deepcopy(self)


def json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

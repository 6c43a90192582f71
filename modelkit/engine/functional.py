"""The functional `Model`: a graph of layer calls between `Input`s and outputs."""

import warnings

import numpy as np

from ..backend import config as backend_config
from ..backend import functions as F
from ..backend.tensor import GradientTape, StopRecording, Tensor, as_array
from ..errors import ConfigError, ModelkitError, ShapeError
from ..nesting import flatten_structure, pack_structure
from .backend_op_layer import SymbolicGradients
from .base_layer import Layer, _CallContext, to_list
from .input_layer import InputLayer
from .keras_tensor import KerasTensor
from .layer_order import keras_layer_order
from .placeholders import to_keras
from .summary import print_summary
from .training import TrainingMixin


class Model(TrainingMixin, Layer):
    """`Model(inputs, outputs)`; Keras 1's `Model(input=, output=)` is accepted too."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if "input" in kwargs or "output" in kwargs:
            for old, new in (("input", "inputs"), ("output", "outputs")):
                if old in kwargs:
                    warnings.warn(f"Model: the Keras 1 argument {old!r} is deprecated; use "
                                  f"{new!r} instead", DeprecationWarning, stacklevel=2)
            inputs = kwargs.pop("input", inputs)
            outputs = kwargs.pop("output", outputs)
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        TrainingMixin.__init__(self)
        self.inputs, self.outputs = [], []
        self._nodes_in_order = []
        self._symbolic_losses, self._loss_nodes = [], []
        self._layers = []
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ConfigError("Model needs both `inputs` and `outputs`")
            self._init_graph(inputs, outputs)

    # -- graph ------------------------------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self.inputs = to_list(to_keras(inputs))          # K.placeholder works as Input
        self.outputs = flatten_structure(to_keras(outputs))
        # nested outputs (e.g. an RNN's states per cell): predict returns them nested
        nested = not self._single_output and any(isinstance(o, (list, tuple)) for o in outputs)
        self._output_structure = outputs if nested else None
        for t in self.inputs + self.outputs:
            if not isinstance(t, KerasTensor):
                raise ConfigError(f"Model {self.name!r}: inputs and outputs must be symbolic "
                                  f"tensors from Input() and layer calls, got {type(t).__name__}")
        for t in self.inputs:
            if not isinstance(t._keras_history[0], InputLayer):
                raise ConfigError(f"Model {self.name!r}: input {t.name!r} does not come from "
                                  "Input(); a model's inputs must be Input tensors")
        self._nodes_in_order = self._topological_nodes()
        layers = keras_layer_order(self.inputs, self.outputs)
        self._layers = layers
        self._sublayers = [la for la in layers if not isinstance(la, InputLayer)]
        self.built = True

    def _topological_nodes(self, targets=None, known=()):
        """Nodes needed for `targets` (default: the outputs) in dependency order, skipping
        `known` nodes (already run): depth-first post-order with an explicit stack, so a
        model thousands of layers deep does not hit Python's recursion limit."""
        input_ids = {id(t) for t in self.inputs}
        order, state = [], {id(n): "done" for n in known}

        def enter(tensor, path):
            """The node to expand for `tensor`, or None if nothing is left to do."""
            layer, node_index, _ = tensor._keras_history
            node = layer._inbound_nodes[node_index]
            key = id(node)
            if state.get(key) == "done":
                return None
            if id(tensor) in input_ids:
                state[key] = "done"
                return None
            if isinstance(layer, InputLayer):
                names = [t.name for t in self.inputs]
                raise ConfigError(f"Graph disconnected: cannot obtain a value for input "
                                  f"{layer.name!r} needed by layer {path!r}; the model's "
                                  f"inputs are {names}")
            if state.get(key) == "visiting":
                raise ConfigError(f"Model {self.name!r}: cycle through layer {layer.name!r}")
            state[key] = "visiting"
            return node

        for out in (self.outputs if targets is None else targets):
            node = enter(out, "<output>")
            stack = [(node, iter(node.input_tensors))] if node is not None else []
            while stack:
                node, pending = stack[-1]
                for t in pending:
                    child = enter(t, node.layer.name)
                    if child is not None:
                        stack.append((child, iter(child.input_tensors)))
                        break
                else:
                    stack.pop()
                    state[id(node)] = "done"
                    order.append(node)
        return order

    # -- losses added as symbolic tensors (Keras 2's add_loss(tensor), the VAE pattern) ------
    def add_loss(self, loss, inputs=None):
        if not any(F.is_symbolic(t) for t in to_list(loss)):
            return super().add_loss(loss, inputs)
        for t in to_list(loss):
            if not F.is_symbolic(t):
                raise ConfigError(f"Model {self.name!r}: add_loss got a list mixing symbolic "
                                  "and concrete losses")
            self._symbolic_losses.append(t)
        self._loss_nodes = self._topological_nodes(self._symbolic_losses,
                                                   known=self._nodes_in_order)

    @property
    def has_added_losses(self):
        return bool(self._symbolic_losses or self._eager_losses)

    @property
    def layers(self):
        return list(self._layers)

    @property
    def input(self):
        if not self.inputs:
            raise ModelkitError(f"Model {self.name!r} has no inputs yet")
        return self.inputs[0] if len(self.inputs) == 1 else list(self.inputs)

    @property
    def output(self):
        if not self.outputs:
            raise ModelkitError(f"Model {self.name!r} has no outputs yet")
        return self.outputs[0] if len(self.outputs) == 1 else list(self.outputs)

    @property
    def input_names(self):
        return [t._keras_history[0].name for t in self.inputs]

    @property
    def output_names(self):
        """Output layer names, made unique as Keras does when two outputs come from one
        layer (e.g. both outputs of a nested model): 'model', 'model_1', ..."""
        names, seen, counts = [], set(), {}
        for t in self.outputs:
            base = proposal = t._keras_history[0].name
            while proposal in seen:
                counts[base] = counts.get(base, 0) + 1
                proposal = f"{base}_{counts[base]}"
            seen.add(proposal)
            names.append(proposal)
        return names

    def get_layer(self, name=None, index=None):
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ConfigError(f"Model {self.name!r} has {len(self.layers)} layers; "
                                  f"index {index} is out of range")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"Model {self.name!r} has no layer named {name!r}; layers: "
                          f"{[la.name for la in self.layers]}")

    # -- execution ----------------------------------------------------------------------------
    def __call__(self, inputs, *args, **kwargs):
        out = super().__call__(inputs, *args, **kwargs)
        structure = getattr(self, "_output_structure", None)
        return out if structure is None else pack_structure(structure, out)  # as Keras nests

    def call(self, inputs, training=None, mask=None):
        outs, _ = self._run_graph(to_list(inputs), training=training,
                                  masks=to_list(mask) if mask is not None else None)
        return outs[0] if self._single_output and len(outs) == 1 else outs

    def _run_graph(self, inputs, training=False, masks=None):
        """Run every node in order; return (outputs, output masks)."""
        if len(inputs) != len(self.inputs):
            raise ShapeError(f"Model {self.name!r} expects {len(self.inputs)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        values = {}
        for i, (sym, x) in enumerate(zip(self.inputs, inputs)):
            values[id(sym)] = (x, masks[i] if masks else None)
        with backend_config.phase_scope(training), F.graph_run(values):
            self._run_nodes(self._nodes_in_order, values, training)
            if self._symbolic_losses and _CallContext.current() is not None:
                self._run_nodes(self._loss_nodes, values, training)
                for t in self._symbolic_losses:
                    self.add_loss_value(values[id(t)][0])
        result = [values[id(t)] for t in self.outputs]
        return [r[0] for r in result], [r[1] for r in result]

    def add_loss_value(self, value):
        _CallContext.current().losses.append(value)

    def _run_nodes(self, nodes, values, training):
        for node in nodes:
            try:
                args = [values[id(t)] for t in node.input_tensors]
            except KeyError:
                raise ModelkitError(f"Model {self.name!r}: an input of layer "
                                    f"{node.layer.name!r} was not computed") from None
            multi = isinstance(node.inputs, (list, tuple))
            x = [a[0] for a in args] if multi else args[0][0]
            m = [a[1] for a in args] if multi else args[0][1]
            if multi and all(mm is None for mm in m):
                m = None
            layer = node.layer
            kwargs = node.call_kwargs
            phase = training
            if "training" in kwargs:          # layer(x, training=True) in the graph wins
                kwargs = dict(kwargs)
                phase = kwargs.pop("training")
            out = layer._call_with_options(x, training=phase, mask=m, **kwargs)
            out_mask = layer.compute_mask(x, m)
            outs = node.output_tensors
            if len(outs) == 1:
                values[id(outs[0])] = (out[0] if isinstance(out, (list, tuple)) else out,
                                       out_mask[0] if isinstance(out_mask, (list, tuple))
                                       else out_mask)
            else:
                om = out_mask if isinstance(out_mask, (list, tuple)) else [out_mask] * len(outs)
                for t, o, mm in zip(outs, out, om):
                    values[id(t)] = (o, mm)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) and input_shape and \
            isinstance(input_shape[0], (tuple, list)) else [input_shape]
        own = [t.shape for t in self.inputs]
        if len(shapes) == len(own) and all(tuple(a[1:]) == tuple(b[1:])
                                           for a, b in zip(shapes, own)):
            batch = shapes[0][0]
            outs = [(batch,) + tuple(t.shape[1:]) for t in self.outputs]
            return outs[0] if self._single_output else outs
        return super().compute_output_shape(input_shape)

    def _probe(self, input_shape, fill):
        saved = [(la, la._saved_states()) for la in self.layers if hasattr(la, "_saved_states")]
        try:
            return super()._probe(input_shape, fill)
        finally:
            for la, st in saved:
                la._restore_states(st)

    def _probe_dtypes(self, input_shape):
        dts = [t.dtype for t in self.inputs]
        return dts if len(dts) > 1 else dts[0]

    def reset_states(self):
        for layer in self.layers:
            if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
                layer.reset_states()

    @property
    def state_updates(self):
        return []

    # -- description ----------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None):
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    def get_config(self):
        from ..ir_bridge import model_to_keras_config
        return model_to_keras_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..ir_bridge import model_from_keras_config
        return model_from_keras_config(config, custom_objects=custom_objects)

    def to_ir(self, include_weights=True, include_optimizer=True):
        from ..ir_bridge import to_ir
        return to_ir(self, include_weights=include_weights, include_optimizer=include_optimizer)

    # -- persistence (modelkit.saving does the work) -------------------------------------------
    def save(self, filepath, overwrite=True, include_optimizer=True, **kwargs):
        from ..saving import save_model
        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer,
                   **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        from ..saving import save_weights
        save_weights(self, filepath, overwrite=overwrite, **kwargs)

    def load_weights(self, filepath, by_name=False, skip_mismatch=False, **kwargs):
        from ..saving import load_weights
        load_weights(self, filepath, by_name=by_name, skip_mismatch=skip_mismatch)

    def to_json(self, **kwargs):
        from ..ir_bridge import model_to_json
        return model_to_json(self, **kwargs)


def make_backend_function(inputs, outputs):
    """K.function(inputs, outputs): run the graph between symbolic tensors.

    `K.learning_phase()` may be one of the inputs (fed 0 or 1: inference or training);
    outputs may include symbolic `K.gradients`, then the run is recorded on a tape."""
    single = not isinstance(outputs, (list, tuple))
    inputs = to_list(inputs)
    phase_at = [i for i, t in enumerate(inputs) if isinstance(t, backend_config.LearningPhase)]
    graph_inputs = [t for i, t in enumerate(inputs) if i not in phase_at]
    model = Model(inputs=graph_inputs, outputs=to_list(outputs))
    differentiate = any(isinstance(n.layer, SymbolicGradients) or
                        getattr(n.layer, "differentiates_in_forward", False)
                        for n in model._nodes_in_order)

    def fn(values):
        values = to_list(values)
        if len(values) != len(inputs):
            raise ShapeError(f"K.function expects {len(inputs)} input value(s), got "
                             f"{len(values)}")
        fixed = backend_config.fixed_phase()
        training = bool(int(np.asarray(values[phase_at[0]]))) if phase_at else bool(fixed)
        feeds = [np.asarray(as_array(v)) for i, v in enumerate(values) if i not in phase_at]
        feeds = [Tensor(v.astype(sym.dtype) if v.dtype != sym.dtype else v,
                        tracked=differentiate) for v, sym in zip(feeds, graph_inputs)]
        if differentiate:
            with GradientTape(persistent=True):
                outs, _ = model._run_graph(feeds, training=training)
        else:
            with StopRecording():
                outs, _ = model._run_graph(feeds, training=training)
        arrays = [np.asarray(o.value) for o in outs]
        return arrays[0] if single else arrays
    return fn

"""`keras.utils.layer_utils`: `get_source_inputs`, `count_params`, `print_summary`."""


def get_source_inputs(tensor):
    """The `Input` tensors a symbolic tensor is computed from (a K.placeholder expression
    included), each once, in the order a depth-first walk meets them."""
    from modelkit.engine.input_layer import InputLayer
    from modelkit.engine.placeholders import to_keras
    found, seen, stack = [], set(), [to_keras(tensor)]
    while stack:
        t = stack.pop()
        layer, node_index, _ = t._keras_history
        if isinstance(layer, InputLayer):
            if id(t) not in seen:
                seen.add(id(t))
                found.append(t)
            continue
        stack.extend(reversed(layer._inbound_nodes[node_index].input_tensors))
    return found


def count_params(weights):
    """The number of scalars in a list of weights (variables or arrays)."""
    import numpy as np
    return int(sum(np.prod(getattr(w, "shape", ())) for w in weights))


def print_summary(model, line_length=None, positions=None, print_fn=None):
    return model.summary(line_length=line_length, positions=positions, print_fn=print_fn)

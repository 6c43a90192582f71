"""`model.layers` in Keras's order (tf-keras's `_map_graph_network`, Keras 3's `map_graph`).

Keras lists a functional model's layers by decreasing depth (the longest path to an output),
ties broken by the order in which a depth-first walk from the outputs first meets each layer.
User code indexes `model.layers[i]`, and Keras 3 `.weights.h5` files name layer groups by
position among layers of the same class, so the order must be Keras's, not any topological one.
"""


def _node_of(tensor):
    layer, node_index, _ = tensor._keras_history
    return layer._inbound_nodes[node_index]


def keras_layer_order(inputs, outputs):
    """The layers between `inputs` and `outputs` (KerasTensors) in Keras's order."""
    input_ids = {id(t) for t in inputs}
    layer_index, post_order, finished = {}, [], set()
    for out in outputs:                     # depth-first, pre-order layer indices
        stack = [(out, None)]
        while stack:
            tensor, pending = stack.pop()
            node = _node_of(tensor)
            if pending is None:
                if id(node) in finished:
                    continue
                layer_index.setdefault(id(node.layer), (len(layer_index), node.layer))
                pending = iter([] if id(tensor) in input_ids else node.input_tensors)
            child = next(pending, None)
            if child is None:
                if id(node) not in finished:
                    finished.add(id(node))
                    post_order.append(node)
                continue
            stack.append((tensor, pending))
            stack.append((child, None))
    node_depth, layer_depth = {}, {}
    in_graph = {id(n) for n in post_order}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for t in node.input_tensors:
            parent = _node_of(t)
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:                        # inputs no output depends on: depth 0, first
        layer = t._keras_history[0]
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            layer_index[id(layer)] = (-1, layer)
    ranked = sorted(layer_index.items(), key=lambda kv: (-layer_depth[kv[0]], kv[1][0]))
    return [layer for _, (_, layer) in ranked]

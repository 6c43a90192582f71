"""Keras-style `model.summary()` table."""


def _fmt_shape(shape):
    if isinstance(shape, list):
        return ", ".join(_fmt_shape(s) for s in shape) if len(shape) != 1 else _fmt_shape(shape[0])
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def print_summary(model, line_length=None, positions=None, print_fn=None):
    print_fn = print_fn or print
    sequential = type(model).__name__ == "Sequential"
    line_length = line_length or (65 if sequential else 98)
    positions = positions or ([0.45, 0.85, 1.0] if sequential else [0.33, 0.55, 0.67, 1.0])
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    headers = ["Layer (type)", "Output Shape", "Param #"]
    if not sequential:
        headers.append("Connected to")

    def row(fields):
        line = ""
        for i, f in enumerate(fields):
            if i > 0:
                line = line[:-1] + " "
            line += str(f)
            line = line[:positions[i]]
            line += " " * (positions[i] - len(line))
        print_fn(line.rstrip())

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    row(headers)
    print_fn("=" * line_length)
    layers = model.layers
    for i, layer in enumerate(layers):
        try:
            shapes = [n.outputs for n in layer._inbound_nodes]
            out = layer.output_shape if layer._inbound_nodes else "?"
        except Exception:  # noqa: BLE001 - a layer without output shape shows '?'
            out = "?"
        params = layer.count_params() if layer.built else 0
        name = f"{layer.name} ({type(layer).__name__})"
        if sequential:
            row([name, _fmt_shape(out) if out != "?" else out, params])
        else:
            connected = []
            for node in layer._inbound_nodes:
                if node not in getattr(model, "_nodes_in_order", []):
                    continue
                for t in node.input_tensors:
                    la, ni, ti = t._keras_history
                    connected.append(f"{la.name}[{ni}][{ti}]")
            row([name, _fmt_shape(out) if out != "?" else out, params,
                 connected[0] if connected else ""])
            for c in connected[1:]:
                row(["", "", "", c])
        del shapes
        print_fn(("=" if i == len(layers) - 1 else "_") * line_length)
    trainable = sum(int(_size(v)) for v in model.trainable_weights)
    total = sum(int(_size(v)) for v in model.weights)
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * line_length)


def _size(v):
    n = 1
    for d in v.shape:
        n *= d
    return n

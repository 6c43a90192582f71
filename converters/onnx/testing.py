"""Small helpers for tests of the ONNX exporter: one-layer IR graphs and running in onnxruntime."""

from __future__ import annotations

import numpy as np

from modelkit.ir import Graph, Node, TensorRef, TensorSpec


def layer_graph(op, config=None, weights=(), input_shapes=((None, 4),), n_outputs=1,
                name="layer", input_dtype="float32", subgraph=None):
    """A graph with inputs `input_1..n` feeding one call of one layer; outputs 0..n_outputs-1."""
    inputs = [TensorSpec(f"input_{i + 1}", s, input_dtype) for i, s in enumerate(input_shapes)]
    keys = [f"{name}/w{i}" for i in range(len(weights))]
    node = Node(name, op, dict(config or {}), [[TensorRef(s.name) for s in inputs]], keys,
                subgraph=subgraph)
    return Graph(f"{op.lower()}_model", inputs, [TensorRef(name, 0, k) for k in range(n_outputs)],
                 [node], {k: np.asarray(w) for k, w in zip(keys, weights)})


def run(model, feeds):
    """Run an ONNX ModelProto on onnxruntime's CPU provider -- or, with the environment
    variable MODELKIT_TEST_DEVICE=cuda (the test suite's GPU check), on CUDA with TF32 off,
    onnxruntime placing on the CPU the nodes CUDA lacks. `feeds` is a dict or a list
    matching the inputs."""
    import os

    import onnxruntime as ort
    providers = ["CPUExecutionProvider"]
    if os.environ.get("MODELKIT_TEST_DEVICE", "cpu").startswith("cuda"):
        providers = [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=providers)
    if not isinstance(feeds, dict):
        feeds = {i.name: np.asarray(v) for i, v in zip(sess.get_inputs(), feeds)}
    return sess.run(None, feeds)

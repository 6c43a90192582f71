"""Models converted by tf2onnx from tf-keras (tests/fixtures/onnx/tf2onnx/): NHWC graphs with
Transposes around the convolutions and Expand/Concat zero RNN states. Import -> predict
parity with onnxruntime and with tf-keras's own predictions, Keras layers recognised."""

import os

import numpy as np
import onnxruntime as ort
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.models import import_onnx

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "onnx", "tf2onnx")
EXPECTED = {"cnn": {"Conv2D", "BatchNormalization", "DepthwiseConv2D", "MaxPooling2D",
                    "GlobalAveragePooling2D", "Dense"},
            "lstm": {"LSTM", "GRU", "Dense"}, "embed": {"Embedding", "Bidirectional", "Dense"},
            "flat": {"Conv2D", "Dense"}}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tf2onnx_model_imports_with_parity(name):
    path = os.path.join(HERE, f"{name}.onnx")
    data = np.load(os.path.join(HERE, f"{name}.npz"))
    x, keras_out = data["in_0"], data["out_0"]
    graph = onnx_conv.import_graph(path)
    ops = {n.op for n in graph.nodes}
    assert EXPECTED[name] <= ops, sorted(ops)
    if name == "cnn":     # NHWC input into the trunk costs nothing; one Permute at most
        assert [n.op for n in graph.nodes].count("Permute") <= 1
    got = import_onnx(path).predict(x, verbose=0)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(got, keras_out, atol=2e-5, rtol=1e-4)

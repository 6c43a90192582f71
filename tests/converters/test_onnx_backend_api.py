"""modelkit as an `onnx.backend.base.Backend`: ONNX's own conformance runner
(`onnx.backend.test.BackendTest`) drives it on a few node-test families, real-model tests
and the PyTorch-exported cases shipped with onnx."""

import numpy as np
import onnx.backend.test
from onnx import helper

from modelkit.converters.onnx import backend

_bt = onnx.backend.test.BackendTest(backend.ModelkitBackend, __name__)
_bt.include(r"^test_(relu|gemm|conv|lstm|gru|averagepool_2d|maxpool_2d|softmax|"
            r"batchnorm_example|reduce_max|reshape|transpose|concat)_.*cpu$")
_bt.include(r"^test_operator_add_size1_singleton_broadcast_cpu$")
_bt.include(r"^test_(Conv2d_dilated|MaxPool2d_stride_padding_dilation|GLU|Embedding)_cpu$")
_bt.include(r"^test_PReLU_[123]d_multiparam_cpu$")          # PRelu-6 per-channel slopes
_bt.include(r"^test_(lppool_.*|attention_(?!.*_expanded).*|maxpool_with_argmax_.*)_cpu$")
_bt.exclude(r"_cuda$|test_lstm_with_peepholes")
for _name, _case in _bt.test_cases.items():        # only the included cases, no skips
    for _attr in [a for a in vars(_case) if a.startswith("test_")]:
        if getattr(getattr(_case, _attr), "__unittest_skip__", False):
            delattr(_case, _attr)
    if any(a.startswith("test_") for a in vars(_case)):
        globals()[_name] = _case


def test_run_node_and_dict_inputs():
    node = helper.make_node("Add", ["a", "b"], ["c"])
    a, b = np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32)
    (c,) = backend.run_node(node, [a, b])
    np.testing.assert_array_equal(c, a + b)
    x = helper.make_tensor_value_info("x", 1, ["N", 3])
    y = helper.make_tensor_value_info("y", 1, ["N", 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                                [x], [y]))
    rep = backend.prepare(model)
    v = np.array([[-1, 0, 2]], np.float32)
    np.testing.assert_array_equal(rep.run({"x": v})[0], [[0, 0, 2]])
    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")

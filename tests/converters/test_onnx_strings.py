"""ONNX string tensors (object arrays of str): StringNormalizer, StringConcat, StringSplit,
RegexFullMatch, Equal and Cast to/from STRING, checked against onnxruntime on the same
models. ONNX's own node cases run in test_onnx_import_conformance.py."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from modelkit.backend.onnx_ops import run_onnx_op
from modelkit.backend.tensor import Tensor
from modelkit.errors import ModelkitError
from modelkit.models import import_onnx
from modelkit.onnx_spec import to_numpy

WORDS = np.array(["Monday", "tuesday", "Café au lait", "the end", "monday"], dtype=object)


def _model(nodes, inputs, outputs, opset=20):
    graph = helper.make_graph(nodes, "strings", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _both(model, feeds):
    """(modelkit's outputs, onnxruntime's outputs) of `model` on `feeds`."""
    ours = import_onnx(model)
    args = [feeds[i.name] for i in model.graph.input]
    out = ours(args if len(args) > 1 else args[0])
    got = [to_numpy(o) for o in (out if isinstance(out, list) else [out])]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return got, sess.run(None, feeds)


def _s(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.STRING, shape)


@pytest.mark.parametrize("attrs", [
    {"case_change_action": "LOWER", "stopwords": ["monday"]},
    {"case_change_action": "UPPER", "is_case_sensitive": 1, "stopwords": ["monday"]},
    {"case_change_action": "NONE", "stopwords": ["the"]},
])
def test_string_normalizer_matches_onnxruntime(attrs):
    model = _model([helper.make_node("StringNormalizer", ["x"], ["y"], locale="C.UTF-8", **attrs)],
                   [_s("x", [5])], [_s("y", [None])])
    (got,), (want,) = _both(model, {"x": WORDS})
    assert got.dtype == object
    np.testing.assert_array_equal(got, want)


def test_everything_removed_leaves_one_empty_string():
    (y,) = run_onnx_op("StringNormalizer", [Tensor(np.array([["a", "b"]], dtype=object))],
                       {"stopwords": ["a", "b"]})
    assert y.value.shape == (1, 1) and y.value[0, 0] == ""


def test_concat_split_regex_equal_cast_match_onnxruntime():
    nodes = [helper.make_node("StringConcat", ["x", "suffix"], ["c"]),
             helper.make_node("StringSplit", ["x"], ["parts", "counts"], delimiter=" ",
                              maxsplit=1),
             helper.make_node("RegexFullMatch", ["x"], ["m"], pattern=r"[Mm]on\w*"),
             helper.make_node("Equal", ["x", "suffix"], ["eq"]),
             helper.make_node("Cast", ["n"], ["n_text"], to=TensorProto.STRING),
             helper.make_node("Cast", ["n_text"], ["n_back"], to=TensorProto.FLOAT)]
    model = _model(nodes, [_s("x", [5]), _s("suffix", [1]),
                           helper.make_tensor_value_info("n", TensorProto.FLOAT, [3])],
                   [_s("c", [5]), _s("parts", [5, None]),
                    helper.make_tensor_value_info("counts", TensorProto.INT64, [5]),
                    helper.make_tensor_value_info("m", TensorProto.BOOL, [5]),
                    helper.make_tensor_value_info("eq", TensorProto.BOOL, [5]),
                    _s("n_text", [3]), helper.make_tensor_value_info("n_back",
                                                                     TensorProto.FLOAT, [3])])
    feeds = {"x": WORDS, "suffix": np.array(["monday"], dtype=object),
             "n": np.array([1.5, -2.0, np.inf], np.float32)}
    got, want = _both(model, feeds)
    names = [o.name for o in model.graph.output]
    for name, g, w in zip(names, got, want):
        if name == "n_text":            # the same numbers, maybe spelled differently
            np.testing.assert_array_equal(np.asarray(g, np.float32), np.asarray(w, np.float32))
            continue
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)
    assert got[names.index("counts")].tolist() == [1, 1, 2, 2, 1]


def test_bad_pattern_is_named():
    with pytest.raises(ModelkitError, match=r"pattern '\(' is not a valid regular"):
        run_onnx_op("RegexFullMatch", [Tensor(WORDS)], {"pattern": "("})

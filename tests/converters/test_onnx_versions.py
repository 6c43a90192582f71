"""IR version / opset stamping against the installed onnxruntime (converters/onnx/versions.py)."""

import importlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx import versions
from modelkit.errors import ConfigError, UnsupportedError
from modelkit.layers import LSTM, Conv1D, Dense, GlobalAveragePooling1D, Input
from modelkit.models import Model

INSTALLED = versions.ort_limits()
export_mod = importlib.import_module("modelkit.converters.onnx.export")


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _relu(opset, ir):
    vi = helper.make_tensor_value_info
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                          [vi("x", TensorProto.FLOAT, [2])], [vi("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


@pytest.fixture(scope="module")
def model():
    x = Input((6, 3), name="seq")
    h = Conv1D(4, 3, padding="same", activation="gelu")(x)
    h = LSTM(5, return_sequences=True)(h)
    y = Dense(2, activation="softmax")(GlobalAveragePooling1D()(h))
    return Model(x, y)


def test_the_installed_runtime_is_in_the_table_and_loads_what_the_table_claims():
    assert INSTALLED is not None and INSTALLED.version == versions.installed_ort_version()
    assert versions.installed_ort_version() == versions.parse_version(ort.__version__)
    _session(_relu(INSTALLED.max_opset, INSTALLED.max_ir))        # the newest claimed loads
    if any(row.version == INSTALLED.version for row in versions.ORT_SUPPORT):
        for opset, ir in ((INSTALLED.max_opset + 1, INSTALLED.max_ir),
                          (INSTALLED.max_opset, INSTALLED.max_ir + 1)):
            if ir <= onnx.IR_VERSION and opset <= onnx.defs.onnx_opset_version():
                with pytest.raises(Exception):      # one past the row: refused
                    _session(_relu(opset, ir))


def test_ir_table_agrees_with_onnx():
    for opset, ir in versions.IR_VERSION_FOR_OPSET.items():
        assert ir == helper.find_min_ir_version_for([helper.make_opsetid("", opset)]), opset


@pytest.mark.parametrize("opset", versions.SUPPORTED_OPSETS)
def test_every_supported_opset_exports_and_loads_in_the_installed_runtime(model, opset):
    proto = onnx_conv.export(model, opset=opset)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == versions.IR_VERSION_FOR_OPSET[opset] <= INSTALLED.max_ir
    x = np.random.default_rng(opset).normal(size=(3, 6, 3)).astype(np.float32)
    got = _session(proto).run(None, {"seq": x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)


def test_table_lookup():
    assert versions.ort_limits("1.17") == versions.OrtSupport((1, 17), 20, 9)
    assert versions.ort_limits("1.17.3") == versions.ort_limits((1, 17))
    assert versions.ort_limits("1.20.1").max_opset == 21
    newest = versions.ORT_SUPPORT[-1]
    far = versions.ort_limits("1.99")
    assert (far.max_opset, far.max_ir) == (newest.max_opset, newest.max_ir)
    with pytest.raises(ConfigError, match="older than any"):
        versions.ort_limits("1.5")
    with pytest.raises(ConfigError, match="MAJOR.MINOR"):
        versions.ort_limits("latest")


def test_export_for_an_older_runtime(model):
    proto = onnx_conv.export(model, opset=None, target_ort="1.14")
    assert (proto.opset_import[0].version, proto.ir_version) == (17, 8)
    proto = onnx_conv.export(model, opset=None, target_ort="1.10")
    assert (proto.opset_import[0].version, proto.ir_version) == (15, 8)
    with pytest.raises(ConfigError, match=r"onnxruntime 1\.17 implements ONNX opsets up to 20"):
        onnx_conv.export(model, opset=21, target_ort="1.17")


def test_layers_needing_a_newer_opset_are_named(model, monkeypatch):
    real = export_mod.check_graph

    def needs_19(graph, opset, prefix=""):      # as if the LSTM handler needed opset 19
        return real(graph, opset, prefix) + (
            [f"LSTM layer {n.name!r}: needs opset 19" for n in graph.nodes if n.op == "LSTM"]
            if opset < 19 else [])
    monkeypatch.setattr(export_mod, "check_graph", needs_19)
    with pytest.raises(UnsupportedError) as e:
        onnx_conv.export(model, opset=None, target_ort="1.14")
    msg = str(e.value)
    assert "onnxruntime 1.14 implements ONNX opsets up to 18" in msg, msg
    assert "need a newer opset" in msg and "LSTM layer" in msg
    assert "LSTM layer" in str(e.value)
    for target, opset in (("1.15", 19), (None, 19)):     # not asked for: the next that works
        assert onnx_conv.export(model, opset=None, target_ort=target).opset_import[0].version \
            == opset
    with pytest.raises(UnsupportedError, match="LSTM layer"):      # asked for: refused
        onnx_conv.export(model, opset=17)


def test_retarget_converts_down_or_names_the_ops(model):
    proto = onnx_conv.export(model, opset=21)
    assert any(n.op_type == "Gelu" for n in proto.graph.node)     # Gelu exists from opset 20
    with pytest.raises(UnsupportedError, match=r"Gelu \(node .*needs opset 20\)"):
        versions.retarget(proto, "1.16", where="m.onnx")
    plain = _relu(21, 10)
    old = versions.retarget(plain, "1.17")
    assert (old.opset_import[0].version, old.ir_version) == (20, 9)
    _session(old)
    newest = versions.retarget(_relu(17, INSTALLED.max_ir + 1))   # too new: what 17 needs
    assert newest.ir_version == 8
    onnx.checker.check_model(newest)
    assert versions.retarget(_relu(17, 9), "1.17").ir_version == 9     # loadable: kept
    assert versions.retarget(_relu(17, 9), "1.14").ir_version == 8     # too new for 1.14
    assert versions.retarget(_relu(17, 7)).ir_version == 8             # too old for opset 17
    bare = _relu(17, 9)
    del bare.opset_import[:]
    assert versions.retarget(bare).ir_version == 9                     # no ai.onnx: untouched

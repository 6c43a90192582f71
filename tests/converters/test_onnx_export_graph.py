"""ONNX export of whole graphs: opsets and IR versions, naming, transpose elimination,
dynamic batch, nested models, shared layers, multi-input/output, errors."""

import numpy as np
import onnx
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import layer_graph, run
from modelkit.errors import ConfigError, UnsupportedError
from modelkit.ir import Graph, Node, TensorRef, TensorSpec

RNG = np.random.default_rng(99)


def nz(*shape):
    w = RNG.uniform(0.2, 1.0, size=shape) * RNG.choice([-1.0, 1.0], size=shape)
    return w.astype(np.float32)


def R(name, call=0, t=0):
    return TensorRef(name, call, t)


def conv_stack_graph():
    """channels_last Conv2D -> Conv2D -> MaxPooling2D -> Conv2D -> LayerNorm -> gelu -> GAP -> Dense."""
    ws = {"c1/k": nz(3, 3, 3, 4), "c1/b": nz(4), "c2/k": nz(3, 3, 4, 4), "c2/b": nz(4),
          "c3/k": nz(1, 1, 4, 2), "c3/b": nz(2), "ln/g": nz(2), "ln/b": nz(2),
          "d/k": nz(2, 3), "d/b": nz(3)}
    nodes = [
        Node("c1", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "padding": "same",
                              "activation": "relu"}, [[R("image")]], ["c1/k", "c1/b"]),
        Node("c2", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "padding": "valid"},
             [[R("c1")]], ["c2/k", "c2/b"]),
        Node("pool", "MaxPooling2D", {"pool_size": [2, 2], "padding": "same"}, [[R("c2")]], []),
        Node("c3", "Conv2D", {"filters": 2, "kernel_size": [1, 1]}, [[R("pool")]], ["c3/k", "c3/b"]),
        Node("ln", "LayerNormalization", {"axis": [-1]}, [[R("c3")]], ["ln/g", "ln/b"]),
        Node("act", "Activation", {"activation": "gelu"}, [[R("ln")]], []),
        Node("gap", "GlobalAveragePooling2D", {}, [[R("act")]], []),
        Node("d", "Dense", {"units": 3, "activation": "softmax"}, [[R("gap")]], ["d/k", "d/b"]),
    ]
    return Graph("convnet", [TensorSpec("image", (None, 8, 7, 3))], [R("d")], nodes, ws)


def ops_of(model):
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("opset", list(range(13, 27)))
def test_every_opset_exports_and_agrees(opset):
    g = conv_stack_graph()
    model = onnx_conv.export(g, opset=opset)
    assert model.ir_version == onnx_conv.IR_VERSION_FOR_OPSET[opset]
    assert model.opset_import[0].version == opset
    x = RNG.normal(size=(2, 8, 7, 3)).astype(np.float32)
    ref = run(onnx_conv.export(g, opset=17), [x])[0]
    np.testing.assert_allclose(run(model, [x])[0], ref, atol=1e-5)
    assert ("LayerNormalization" in ops_of(model)) == (opset >= 17)
    assert ("Gelu" in ops_of(model)) == (opset >= 20)


@pytest.mark.parametrize("opset", [12, 27, "17", 17.0])
def test_unsupported_opset_is_a_config_error(opset):
    with pytest.raises(ConfigError, match="opset"):
        onnx_conv.export(conv_stack_graph(), opset=opset)


def test_no_opset_means_the_default_one():
    assert onnx_conv.export(conv_stack_graph(), opset=None).opset_import[0].version == 17


def test_inverse_transposes_between_layers_are_removed():
    g = conv_stack_graph()
    optimized = onnx_conv.export(g)
    plain = onnx_conv.export(g, optimize=False)
    # 3 channels_last convs + 1 pool emit 4 pairs; between consecutive ones they cancel,
    # leaving one Transpose in (after the input) and one out (before LayerNormalization).
    assert ops_of(plain).count("Transpose") == 8
    assert ops_of(optimized).count("Transpose") == 2
    x = RNG.normal(size=(3, 8, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(run(optimized, [x])[0], run(plain, [x])[0], atol=1e-6)


def test_dynamic_batch_and_names():
    g = conv_stack_graph()
    model = onnx_conv.export(g)
    inp, out = model.graph.input[0], model.graph.output[0]
    assert inp.name == "image" and out.name == "d"
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert out.type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (1, 5):
        y = run(model, [RNG.normal(size=(batch, 8, 7, 3)).astype(np.float32)])[0]
        assert y.shape == (batch, 3)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)


def test_sequence_dim_is_symbolic():
    g = layer_graph("LSTM", {"units": 2}, [nz(3, 8), nz(2, 8), nz(8)], [(None, None, 3)])
    dims = onnx_conv.export(g).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[:2]] == ["batch", "sequence"] and dims[2].dim_value == 3


def test_metadata_and_ir_version_and_path(tmp_path):
    g = conv_stack_graph()
    g.metadata["source"] = "unit-test"
    path = tmp_path / "m.onnx"
    model = onnx_conv.export(g, path=path, opset=15)
    props = {p.key: p.value for p in model.metadata_props}
    import modelkit
    assert props["modelkit_version"] == modelkit.__version__
    assert props["source"] == "unit-test"
    loaded = onnx.load(str(path))
    assert loaded.ir_version == 8
    onnx.checker.check_model(loaded, full_check=True)


def test_accepts_object_with_to_ir():
    g = conv_stack_graph()

    class FakeModel:
        def to_ir(self):
            return g

    assert ops_of(onnx_conv.export(FakeModel())) == ops_of(onnx_conv.export(g))
    with pytest.raises(ConfigError, match="to_ir"):
        onnx_conv.export(object())


def test_multi_input_multi_output_and_shared_layer():
    """A Dense shared by two inputs (two calls, one set of weights), merged and split."""
    W, b = nz(4, 3), nz(3)
    nodes = [
        Node("shared", "Dense", {"units": 3, "activation": "tanh"},
             [[R("a")], [R("b")]], ["shared/kernel", "shared/bias"]),
        Node("sub", "Subtract", {}, [[R("shared", 0), R("shared", 1)]], []),
        Node("cat", "Concatenate", {"axis": -1}, [[R("shared", 0), R("shared", 1)]], []),
    ]
    g = Graph("siamese", [TensorSpec("a", (None, 4)), TensorSpec("b", (None, 4))],
              [R("sub"), R("cat"), R("shared", 1)], nodes,
              {"shared/kernel": W, "shared/bias": b})
    model = onnx_conv.export(g)
    assert [o.name for o in model.graph.output] == ["sub", "cat", "shared_call1"]
    assert len([i for i in model.graph.initializer if i.dims == [4, 3]]) == 1
    xa, xb = (RNG.normal(size=(2, 4)).astype(np.float32) for _ in range(2))
    ha, hb = np.tanh(xa @ W + b), np.tanh(xb @ W + b)
    got = run(model, {"a": xa, "b": xb})
    for g_, w in zip(got, [ha - hb, np.concatenate([ha, hb], -1), hb]):
        np.testing.assert_allclose(g_, w, atol=1e-5)


def test_output_that_is_an_input_or_repeated():
    nodes = [Node("drop", "Dropout", {"rate": 0.5}, [[R("x")]], [])]
    g = Graph("id", [TensorSpec("x", (None, 2))], [R("drop"), R("drop"), R("x")], nodes, {})
    model = onnx_conv.export(g)
    names = [o.name for o in model.graph.output]
    assert names[0] == "drop" and len(set(names)) == 3
    x = RNG.normal(size=(3, 2)).astype(np.float32)
    for y in run(model, [x]):
        np.testing.assert_array_equal(y, x)


def nested_graph():
    inner = Graph("encoder", [TensorSpec("enc_in", (None, 4))], [R("enc_d2")], [
        Node("enc_d1", "Dense", {"units": 5, "activation": "relu"}, [[R("enc_in")]],
             ["enc_d1/kernel", "enc_d1/bias"]),
        Node("enc_d2", "Dense", {"units": 3}, [[R("enc_d1")]], ["enc_d2/kernel", "enc_d2/bias"]),
    ], {"enc_d1/kernel": nz(4, 5), "enc_d1/bias": nz(5), "enc_d2/kernel": nz(5, 3),
        "enc_d2/bias": nz(3)})
    outer = Graph("outer", [TensorSpec("left", (None, 4)), TensorSpec("right", (None, 4))],
                  [R("dot")], [
        Node("encoder", "Functional", {"name": "encoder"}, [[R("left")], [R("right")]], [],
             subgraph=inner),
        Node("dot", "Dot", {"axes": 1, "normalize": True},
             [[R("encoder", 0), R("encoder", 1)]], []),
    ])
    return outer, inner


def test_nested_model_called_twice_is_inlined_with_shared_weights():
    outer, inner = nested_graph()
    model = onnx_conv.export(outer)
    assert len([i for i in model.graph.initializer if i.name.startswith("encoder/enc_d")]) == 4
    assert ops_of(model).count("MatMul") == 4
    w = inner.weights
    xl, xr = (RNG.normal(size=(3, 4)).astype(np.float32) for _ in range(2))

    def enc(x):
        h = np.maximum(x @ w["enc_d1/kernel"] + w["enc_d1/bias"], 0)
        h = h @ w["enc_d2/kernel"] + w["enc_d2/bias"]
        return h / np.linalg.norm(h, axis=1, keepdims=True)

    want = (enc(xl) * enc(xr)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(run(model, {"left": xl, "right": xr})[0], want, atol=1e-5)


def test_unsupported_error_lists_every_bad_layer():
    nodes = [
        Node("lam", "Lambda", {"function": "x * 2"}, [[R("x")]], []),
        Node("weird", "FancyLayer", {}, [[R("lam")]], []),
        Node("up", "UpSampling2D", {"interpolation": "bicubic"}, [[R("weird")]], []),
        Node("ok", "Dense", {"units": 1, "activation": "no_such_act"}, [[R("up")]],
             ["ok/k", "ok/b"]),
    ]
    g = Graph("bad", [TensorSpec("x", (None, 2, 2, 1))], [R("ok")], nodes,
              {"ok/k": nz(1, 1), "ok/b": nz(1)})
    with pytest.raises(UnsupportedError) as e:
        onnx_conv.export(g)
    msg = str(e.value)
    assert len(e.value.items) == 4
    assert "Lambda layer 'lam': " in msg and "Python" in msg
    assert "FancyLayer layer 'weird'" in msg and "no ONNX export handler" in msg
    assert "bicubic" in msg and "no_such_act" in msg


def test_unsupported_inside_nested_model_is_named_with_its_path():
    outer, inner = nested_graph()
    inner.nodes[0].config["activation"] = "bogus"
    with pytest.raises(UnsupportedError, match="Dense layer 'encoder/enc_d1'"):
        onnx_conv.export(outer)


def test_lambda_with_traced_form_is_still_reported_until_the_hook_exists():
    g = layer_graph("Lambda", {"function": "...", "traced": {"nodes": []}}, [], [(None, 2)])
    with pytest.raises(UnsupportedError, match="Lambda layer 'layer': .*traced"):
        onnx_conv.export(g)


def test_onnx_op_in_custom_domain_gets_an_opset_import():
    g = layer_graph("OnnxOp", {"op_type": "Inverse", "domain": "com.microsoft", "attributes": {}},
                    [], [(None, 3, 3)])
    model = onnx_conv.export(g, check=False)
    assert any(o.domain == "com.microsoft" for o in model.opset_import)
    a = (np.eye(3) * 2 + RNG.normal(size=(2, 3, 3)) * 0.1).astype(np.float32)
    np.testing.assert_allclose(run(model, [a])[0], np.linalg.inv(a), atol=1e-4)


def test_handler_registry_is_the_one_registry():
    from modelkit.converters.onnx.registry import EXPORT_HANDLERS
    for op in ("Dense", "LSTM", "Conv2D", "Bidirectional", "TimeDistributed", "OnnxOp",
               "Functional", "Sequential", "Highway", "MaxoutDense"):
        assert op in EXPORT_HANDLERS
    with pytest.raises(UnsupportedError, match="Did you mean 'Dense'"):
        EXPORT_HANDLERS.get("Dens")

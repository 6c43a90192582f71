"""Hostile and broken ONNX files: external data confined to the model's folder, declared
sizes checked against the bytes present before anything is allocated, every bad file a
ModelLoadError naming the file and the piece; version checks; one error listing every
unsupported op; a small fuzz of mutated files."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.converters import onnx as onnx_conv
from modelkit.errors import ModelkitError, ModelLoadError, UnsupportedError
from modelkit.models import import_onnx, load_model

RNG = np.random.default_rng(11)
W = RNG.normal(size=(4, 3)).astype(np.float32)


def mlp(opset=17, weight=None, nodes=None):
    weight = numpy_helper.from_array(W, "W") if weight is None else weight
    nodes = nodes or [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
                      helper.make_node("Relu", ["h"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def external_weight(location, offset=0, length=None):
    t = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 3])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)),
                 ("length", str(W.nbytes if length is None else length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def save(tmp_path, proto, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(proto.SerializeToString())
    return str(path)


def predict_ok(model):
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(x @ W, 0), atol=1e-6)


def test_external_data_inside_the_folder_loads(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8 + W.tobytes())
    predict_ok(load_model(save(tmp_path, mlp(weight=external_weight("weights.bin", 8)))))


@pytest.mark.parametrize("location,why", [
    ("/etc/passwd", "tensor 'W' .*outside the model's folder"),
    ("../outside.bin", "tensor 'W' .*outside the model's folder"),
    ("sub/../../outside.bin", "tensor 'W' .*outside the model's folder"),
    ("missing.bin", "missing.bin: no such file"),
])
def test_external_data_outside_or_missing_is_refused(tmp_path, location, why):
    (tmp_path.parent / "outside.bin").write_bytes(W.tobytes())
    path = save(tmp_path, mlp(weight=external_weight(location)))
    with pytest.raises(ModelLoadError, match=f"m.onnx: .*{why}"):
        import_onnx(path)


def test_symlink_escaping_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(W.tobytes())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(outside / "w.bin", model_dir / "w.bin")
    path = save(model_dir, mlp(weight=external_weight("w.bin")))
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        import_onnx(path)


@pytest.mark.parametrize("offset,length", [(0, 4), (40, None), (-1, None)])
def test_external_data_sizes_checked(tmp_path, offset, length):
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    path = save(tmp_path, mlp(weight=external_weight("w.bin", offset, length)))
    with pytest.raises(ModelLoadError, match="initializer 'W': external data needs 48 bytes"):
        import_onnx(path)


def test_external_data_needs_a_path(tmp_path):
    with pytest.raises(ModelLoadError, match="<bytes>.*only a model read from a path can use"):
        import_onnx(mlp(weight=external_weight("w.bin")).SerializeToString())


def test_declared_size_must_match_raw_data_before_allocating():
    t = numpy_helper.from_array(W, "W")
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20])             # declares 4 TiB, holds 48 bytes
    with pytest.raises(ModelLoadError, match="initializer 'W' declares .* bytes"):
        import_onnx(mlp(weight=t))
    t2 = numpy_helper.from_array(W, "W")
    t2.raw_data = t2.raw_data[:-4]
    with pytest.raises(ModelLoadError, match=r"initializer 'W' declares dims \[4, 3\] \(48 "
                                             r"bytes\) but holds 44"):
        import_onnx(mlp(weight=t2))
    t3 = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 3])
    t3.float_data.extend(W.reshape(-1).tolist()[:5])
    with pytest.raises(ModelLoadError, match="holds 5 in float_data"):
        import_onnx(mlp(weight=t3))


@pytest.mark.parametrize("data", [b"", b"not an onnx file at all", b"\x08\x07\x12"])
def test_garbage_is_a_model_load_error(tmp_path, data):
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        load_model(str(path))


def test_truncated_file(tmp_path):
    data = mlp().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelkitError, match="cut.onnx"):
        import_onnx(str(path))


def test_newer_opset_than_installed_onnx_is_refused():
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(UnsupportedError, match=f"opset {newest + 1}.*newer than the installed "
                                               f"onnx"):
        onnx_conv.import_graph(mlp(opset=newest + 1))


def test_old_opset_is_upgraded():
    graph = onnx_conv.import_graph(mlp(opset=9))
    assert graph.metadata["onnx_opset"] == 13
    predict_ok(import_onnx(mlp(opset=9)))


def test_every_unsupported_op_in_one_error():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
             helper.make_node("MaxRoiPool", ["h", "h"], ["mu"], name="roipool_1",
                              pooled_shape=[1, 1]),
             helper.make_node("Resize", ["h", "", "sc"], ["rs"], name="resize_1", mode="area"),
             helper.make_node("Resize", ["h", "", "sc"], ["rs2"], name="resize_2",
                              mode="linear", coordinate_transformation_mode="stretchy"),
             helper.make_node("Inverse", ["h"], ["inv"], name="inv_1", domain="com.microsoft"),
             helper.make_node("GlobalLpPool", ["h"], ["u"], name="lppool_1"),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]
    with pytest.raises(UnsupportedError) as e:
        onnx_conv.import_graph(mlp(nodes=nodes))
    msg = str(e.value)
    assert "5 unsupported" in msg
    for piece in ("MaxRoiPool node 'roipool_1' (opset 17)", "Inverse node 'inv_1'",
                  "Resize node 'resize_1' (opset 17): mode 'area' is not supported",
                  "Resize node 'resize_2' (opset 17): coordinate_transformation_mode 'stretchy'",
                  "custom domain 'com.microsoft'",
                  "GlobalLpPool node 'lppool_1' (opset 17)"):
        assert piece in msg
    assert len(e.value.items) == 5


FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "onnx")


@pytest.mark.parametrize("source,count", [("mlp", 150), ("cnn_bn.ts.onnx", 40),
                                          ("lstm.dynamo.onnx", 40)])
def test_fuzzed_files_fail_cleanly(source, count):
    if source == "mlp":
        data, x = bytearray(mlp().SerializeToString()), np.zeros((1, 4), np.float32)
    else:
        with open(os.path.join(FIXTURES, source), "rb") as f:
            data = bytearray(f.read())
        x = np.load(os.path.join(FIXTURES, source.split(".")[0] + ".npz"))["in_0"]
    rng = np.random.default_rng(5)
    outcomes = {"ok": 0, "error": 0}
    for i in range(count):
        mutated = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            mutated[rng.integers(0, len(mutated))] = int(rng.integers(0, 256))
        try:
            model = import_onnx(bytes(mutated))
            model.predict(x, verbose=0)
            outcomes["ok"] += 1
        except ModelkitError:
            outcomes["error"] += 1
    assert outcomes["error"] > 3 and sum(outcomes.values()) == count


def test_image_decoder_refuses_bytes_that_are_no_image():
    from modelkit.backend.onnx_ops import run_onnx_op
    from modelkit.backend.tensor import Tensor
    from modelkit.errors import ShapeError
    with pytest.raises(ShapeError, match="not an image"):
        run_onnx_op("ImageDecoder", [Tensor(np.frombuffer(b"GIF89a-not-really", np.uint8))])

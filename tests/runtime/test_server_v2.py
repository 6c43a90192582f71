"""KServe v2 (Open Inference Protocol) on the in-process app: JSON and the binary tensor
data extension framed byte for byte as tritonclient.http sends it."""

import json

import numpy as np
import pytest
from server_kit import DEVICE, InProcess, binary_request, models, parse_v2_response, serving  # noqa: F401

from modelkit.runtime.server import create_app

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def client(models):
    with serving(models) as app:
        yield InProcess(app)


def infer_json(name, arr, datatype, nested=False):
    data = arr.tolist() if nested else arr.ravel().tolist()
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}


def test_health_and_server_metadata(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert (r.status, r.json()) == (200, {"ready": True})
    meta = client.get("/v2").json()
    assert meta["name"] == "modelkit" and meta["version"]
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_has_datatypes_and_dynamic_dims(client):
    meta = client.get("/v2/models/mlp").json()
    assert meta["name"] == "mlp" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": meta["inputs"][0]["name"], "datatype": "FP32",
                               "shape": [-1, 4]}]
    assert meta["outputs"][0]["datatype"] == "FP32" and meta["outputs"][0]["shape"] == [-1, 3]
    emb = client.get("/v2/models/emb").json()
    assert emb["inputs"][0]["datatype"] == "INT32" and emb["inputs"][0]["shape"] == [-1, -1]
    lstm = client.get("/v2/models/lstm/versions/1").json()
    assert lstm["inputs"][0]["shape"] == [-1, -1, 3]
    assert lstm["outputs"][0]["shape"] == [-1, -1, 5]
    two = client.get("/v2/models/two").json()
    assert [t["name"] for t in two["inputs"]] == ["a", "b"]
    assert [t["name"] for t in two["outputs"]] == ["sum", "prod"]


def test_triton_model_configuration(client):
    cfg = client.get("/v2/models/two/config").json()
    assert cfg["name"] == "two" and cfg["platform"] == "onnxruntime_onnx"
    assert cfg["input"][0] == {"name": "a", "data_type": "TYPE_FP32", "dims": [-1, 3]}
    assert cfg["dynamic_batching"] == {"max_queue_delay_microseconds": 1000}
    emb = client.get("/v2/models/emb/versions/1/config").json()
    assert emb["input"][0]["data_type"] == "TYPE_INT32"
    assert client.get("/v2/models/nope/config").status == 404


def test_model_ready_with_and_without_version(client):
    assert client.get("/v2/models/mlp/ready").json() == {"name": "mlp", "ready": True}
    assert client.get("/v2/models/mlp/versions/1/ready").status == 200
    r = client.get("/v2/models/mlp/versions/2/ready")
    assert r.status == 404 and "version '2'" in r.json()["error"]


@pytest.mark.parametrize("nested", [False, True])
def test_json_infer_matches_predict(client, models, nested):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    name = client.get("/v2/models/mlp").json()["inputs"][0]["name"]
    r = client.post("/v2/models/mlp/infer",
                    {"id": "req-7", "inputs": [infer_json(name, x, "FP32", nested)]})
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model_name"] == "mlp" and body["model_version"] == "1"
    assert body["id"] == "req-7"
    (out,) = body["outputs"]
    assert out["datatype"] == "FP32" and out["shape"] == [3, 3]
    want = models["mlp"][1](x)
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 3), want, rtol=1e-5, atol=1e-6)


def test_int_input_with_dynamic_sequence_length(client, models):
    name = client.get("/v2/models/emb").json()["inputs"][0]["name"]
    for length in (1, 5, 9):
        ids = RNG.integers(0, 10, size=(2, length)).astype(np.int32)
        r = client.post("/v2/models/emb/infer", {"inputs": [infer_json(name, ids, "INT32")]})
        assert r.status == 200, r
        _, outs = parse_v2_response(r)
        np.testing.assert_allclose(next(iter(outs.values())), models["emb"][1](ids),
                                   rtol=1e-5, atol=1e-6)


def test_two_inputs_two_outputs_and_output_selection(client):
    a = RNG.standard_normal((2, 3)).astype(np.float32)
    b = RNG.standard_normal((2, 3)).astype(np.float32)
    body = {"inputs": [infer_json("a", a, "FP32"), infer_json("b", b, "FP32")]}
    head, outs = parse_v2_response(client.post("/v2/models/two/infer", body))
    assert [o["name"] for o in head["outputs"]] == ["sum", "prod"]
    np.testing.assert_allclose(outs["sum"], a + b, rtol=1e-6)
    np.testing.assert_allclose(outs["prod"], a * b, rtol=1e-6)
    body["outputs"] = [{"name": "prod"}]
    head, outs = parse_v2_response(client.post("/v2/models/two/versions/1/infer", body))
    assert list(outs) == ["prod"] and "id" not in head
    np.testing.assert_allclose(outs["prod"], a * b, rtol=1e-6)


def test_binary_inputs_and_outputs_as_tritonclient_frames_them(client):
    a = RNG.standard_normal((4, 3)).astype(np.float32)
    b = RNG.standard_normal((4, 3)).astype(np.float32)
    body, headers = binary_request({"a": a, "b": b}, request_id="bin-1")
    r = client.post("/v2/models/two/infer", body, headers)
    assert r.status == 200, r
    hl = int(r.headers["inference-header-content-length"])
    head = json.loads(r.body[:hl])
    assert head["id"] == "bin-1"
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert sizes == [48, 48] and len(r.body) == hl + 96 and "data" not in head["outputs"][0]
    raw = r.body[hl:]
    np.testing.assert_array_equal(np.frombuffer(raw[:48], "<f4").reshape(4, 3), a + b)
    np.testing.assert_array_equal(np.frombuffer(raw[48:], "<f4").reshape(4, 3), a * b)


def test_binary_and_json_mixed_per_tensor(client):
    a = RNG.standard_normal((2, 3)).astype(np.float32)
    b = RNG.standard_normal((2, 3)).astype(np.float32)
    head = {"inputs": [{"name": "a", "shape": [2, 3], "datatype": "FP32",
                        "parameters": {"binary_data_size": 24}},
                       infer_json("b", b, "FP32")],
            "outputs": [{"name": "sum", "parameters": {"binary_data": False}},
                        {"name": "prod", "parameters": {"binary_data": True}}]}
    text = json.dumps(head).encode()
    r = client.post("/v2/models/two/infer", text + a.tobytes(),
                    {"Inference-Header-Content-Length": len(text)})
    head, outs = parse_v2_response(r)
    assert "data" in head["outputs"][0] and "parameters" in head["outputs"][1]
    np.testing.assert_allclose(outs["sum"], a + b, rtol=1e-6)
    np.testing.assert_array_equal(outs["prod"], a * b)


def test_binary_output_requested_for_json_inputs(client, models):
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    name = client.get("/v2/models/mlp").json()["inputs"][0]["name"]
    body, headers = binary_request({name: x}, binary_inputs=False)
    assert headers == {}                               # no binary input: plain JSON body
    r = client.post("/v2/models/mlp/infer", body)
    assert "inference-header-content-length" in r.headers     # binary_data_output honoured
    _, outs = parse_v2_response(r)
    np.testing.assert_allclose(next(iter(outs.values())), models["mlp"][1](x), rtol=1e-5,
                               atol=1e-6)


def test_body_is_json_whatever_the_content_type(client):
    a = np.ones((1, 3), np.float32)
    body = {"inputs": [infer_json("a", a, "FP32"), infer_json("b", a, "FP32")]}
    for ctype in ("text/plain", "application/octet-stream", "application/x-www-form-urlencoded"):
        r = client.post("/v2/models/two/infer", body, {"Content-Type": ctype})
        assert r.status == 200, (ctype, r)


def test_sequence_model_keeps_each_length(client, models):
    name = client.get("/v2/models/lstm").json()["inputs"][0]["name"]
    for t in (2, 7):
        x = RNG.standard_normal((1, t, 3)).astype(np.float32)
        body, headers = binary_request({name: x})
        _, outs = parse_v2_response(client.post("/v2/models/lstm/infer", body, headers))
        out = next(iter(outs.values()))
        assert out.shape == (1, t, 5)
        np.testing.assert_allclose(out, models["lstm"][1](x), rtol=1e-5, atol=1e-6)


def test_large_request_and_response_are_handled_off_the_event_loop(client, models):
    from modelkit.runtime.server.app import OFFLOAD_BYTES, OFFLOAD_ELEMENTS
    x = RNG.standard_normal((OFFLOAD_ELEMENTS // 3 + 100, 4)).astype(np.float32)
    name = client.get("/v2/models/mlp").json()["inputs"][0]["name"]
    payload = json.dumps({"inputs": [infer_json(name, x, "FP32")]}).encode()
    assert len(payload) > OFFLOAD_BYTES
    r = client.post("/v2/models/mlp/infer", payload)
    assert r.status == 200, r
    _, outs = parse_v2_response(r)
    np.testing.assert_allclose(next(iter(outs.values())), models["mlp"][1](x), rtol=1e-4,
                               atol=1e-5)


def _mixed_model(path):
    """out = where(mask, x, -x) as float16 and count = int64 sum of mask per row."""
    import onnx
    from onnx import TensorProto, helper
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["nx"]),
         helper.make_node("Where", ["mask", "x", "nx"], ["out"]),
         helper.make_node("Cast", ["mask"], ["m64"], to=TensorProto.INT64),
         helper.make_node("ReduceSum", ["m64", "axes"], ["count"], keepdims=0)],
        "mixed",
        [vi("mask", TensorProto.BOOL, ["N", 3]), vi("x", TensorProto.FLOAT16, ["N", 3])],
        [vi("out", TensorProto.FLOAT16, ["N", 3]), vi("count", TensorProto.INT64, ["N"])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_bool_fp16_and_int64_tensors_in_json_and_binary(tmp_path):
    app = create_app({"mixed": _mixed_model(tmp_path / "mixed.onnx")}, device=DEVICE,
                     threads=1)
    c = InProcess(app)
    try:
        meta = c.get("/v2/models/mixed").json()
        assert [t["datatype"] for t in meta["inputs"]] == ["BOOL", "FP16"]
        assert [t["datatype"] for t in meta["outputs"]] == ["FP16", "INT64"]
        mask = np.array([[True, False, True], [False, False, True]])
        x = np.array([[1.5, 2, -3], [0.25, 4, 8]], np.float16)
        want_out, want_count = np.where(mask, x, -x), mask.sum(1)
        body, headers = binary_request({"mask": mask, "x": x})
        head, outs = parse_v2_response(c.post("/v2/models/mixed/infer", body, headers))
        assert [o["datatype"] for o in head["outputs"]] == ["FP16", "INT64"]
        np.testing.assert_array_equal(outs["out"], want_out)
        np.testing.assert_array_equal(outs["count"], want_count)
        body, _ = binary_request({"mask": mask, "x": x}, binary_inputs=False,
                                 outputs=[("out", False), ("count", False)])
        head, outs = parse_v2_response(c.post("/v2/models/mixed/infer", body))
        assert head["outputs"][1]["data"] == [2, 1]
        np.testing.assert_array_equal(outs["out"], want_out)
        bad = json.loads(body)
        bad["inputs"][0]["data"] = [1, 0, 1, 0, 0, 1]          # ints for BOOL: no casting
        r = c.post("/v2/models/mixed/infer", bad)
        assert r.status == 400 and "booleans" in r.json()["error"]
    finally:
        app.state.repository.close()


def test_inputs_a_node_cannot_compute_on_and_empty_inputs_are_400(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"])], "fold",
        [vi("x", TensorProto.FLOAT, ["N", "T"])], [vi("y", TensorProto.FLOAT, ["N", 2, 3])],
        [numpy_helper.from_array(np.array([-1, 2, 3], np.int64), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "fold.onnx"))
    app = create_app([str(tmp_path / "fold.onnx")], device=DEVICE, threads=1)
    c = InProcess(app)
    try:
        ok = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}]}
        assert c.post("/v2/models/fold/infer", ok).status == 200
        bad = {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]}
        r = c.post("/v2/models/fold/infer", bad)
        assert r.status == 400 and "cannot run on these inputs" in r.json()["error"], r
        empty = {"inputs": [{"name": "x", "shape": [0, 6], "datatype": "FP32", "data": []}]}
        r = c.post("/v2/models/fold/infer", empty)   # onnxruntime aborts on some empty tensors
        assert r.status == 400 and "'x' is empty" in r.json()["error"], r
        assert c.post("/v2/models/fold/infer", ok).status == 200
    finally:
        app.state.repository.close()
    r = InProcess(app).post("/v2/models/fold/infer", ok)
    assert r.status == 503 and "shutting down" in r.json()["error"]

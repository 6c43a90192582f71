"""TensorFlow Serving REST (`:predict`, status, metadata) on the in-process app."""

import numpy as np
import pytest
from server_kit import InProcess, models, serving  # noqa: F401 (models is a fixture)

RNG = np.random.default_rng(12)


@pytest.fixture(scope="module")
def client(models):
    with serving(models) as app:
        yield InProcess(app)


def test_row_format_single_input(client, models):
    x = RNG.standard_normal((3, 4))
    r = client.post("/v1/models/mlp:predict", {"instances": x.tolist()})
    assert r.status == 200, r
    np.testing.assert_allclose(r.json()["predictions"], models["mlp"][1](x.astype(np.float32)),
                               rtol=1e-5, atol=1e-6)


def test_columnar_format_single_input_and_version_path(client, models):
    x = RNG.standard_normal((2, 4))
    r = client.post("/v1/models/mlp/versions/1:predict", {"inputs": x.tolist()})
    assert list(r.json()) == ["outputs"]
    np.testing.assert_allclose(r.json()["outputs"], models["mlp"][1](x.astype(np.float32)),
                               rtol=1e-5, atol=1e-6)
    r = client.post("/v1/models/mlp/versions/3:predict", {"inputs": x.tolist()})
    assert r.status == 404


def test_row_format_two_inputs_two_outputs(client):
    a, b = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 3))
    instances = [{"a": a[i].tolist(), "b": b[i].tolist()} for i in range(2)]
    r = client.post("/v1/models/two:predict",
                    {"signature_name": "serving_default", "instances": instances})
    preds = r.json()["predictions"]
    assert len(preds) == 2 and all(set(p) == {"sum", "prod"} for p in preds)
    np.testing.assert_allclose([p["sum"] for p in preds], a + b, rtol=1e-6)
    np.testing.assert_allclose([p["prod"] for p in preds], a * b, rtol=1e-6)


def test_columnar_format_two_inputs_two_outputs(client):
    a, b = RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3))
    r = client.post("/v1/models/two:predict", {"inputs": {"a": a.tolist(), "b": b.tolist()}})
    outs = r.json()["outputs"]
    assert set(outs) == {"sum", "prod"}
    np.testing.assert_allclose(outs["sum"], a + b, rtol=1e-6)
    np.testing.assert_allclose(outs["prod"], a * b, rtol=1e-6)


def test_json_numbers_are_cast_to_the_input_type(client, models):
    ids = [[1, 2, 3], [4.0, 5.0, 9.0]]                # whole floats accepted for INT32
    r = client.post("/v1/models/emb:predict", {"instances": ids})
    assert r.status == 200, r
    want = models["emb"][1](np.array(ids, dtype=np.int32))
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-5, atol=1e-6)
    r = client.post("/v1/models/mlp:predict", {"instances": [[1, 2, 3, 4]]})   # ints -> FP32
    np.testing.assert_allclose(r.json()["predictions"],
                               models["mlp"][1](np.array([[1, 2, 3, 4]], np.float32)),
                               rtol=1e-5, atol=1e-6)
    r = client.post("/v1/models/emb:predict", {"instances": [[1.5, 2]]})
    assert r.status == 400 and "non-integer" in r.json()["error"]


def test_dynamic_sequence_length(client, models):
    x = RNG.standard_normal((2, 6, 3))
    r = client.post("/v1/models/lstm:predict", {"inputs": x.tolist()})
    out = np.array(r.json()["outputs"])
    assert out.shape == (2, 6, 5)
    np.testing.assert_allclose(out, models["lstm"][1](x.astype(np.float32)), rtol=1e-5,
                               atol=1e-6)


def test_status_and_metadata(client):
    status = client.get("/v1/models/mlp").json()
    assert status == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                "status": {"error_code": "OK",
                                                           "error_message": ""}}]}
    assert client.get("/v1/models/mlp/versions/1").status == 200
    assert client.get("/v1/models/mlp/versions/2").status == 404
    meta = client.get("/v1/models/two/metadata").json()
    assert meta["model_spec"]["name"] == "two" and meta["model_spec"]["version"] == "1"
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert set(sig["inputs"]) == {"a", "b"} and set(sig["outputs"]) == {"sum", "prod"}
    assert sig["inputs"]["a"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["a"]["tensor_shape"]["dim"]] == ["-1", "3"]
    emb = client.get("/v1/models/emb/versions/1/metadata").json()
    sig = emb["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert next(iter(sig["inputs"].values()))["dtype"] == "DT_INT32"


def test_nan_and_infinity_in_requests_and_responses(client):
    import orjson
    r = client.post("/v1/models/two:predict",
                    b'{"inputs": {"a": [[NaN, Infinity, 1]], "b": [[1, 1, -Infinity]]}}')
    assert r.status == 200, r
    outs = orjson.loads(r.body)["outputs"]           # strict JSON: NaN/inf written as null
    assert outs["sum"] == [[None, None, None]]
    assert outs["prod"] == [[None, None, None]]


def test_keras_archives_are_served(tmp_path):
    from modelkit.layers import Dense
    from modelkit.models import Sequential
    model = Sequential([Dense(3, activation="tanh", input_shape=(4,))])
    model.save(str(tmp_path / "k.keras"))
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    with serving({"k": (str(tmp_path / "k.keras"), None)}) as app:
        r = InProcess(app).post("/v1/models/k:predict", {"instances": x.tolist()})
    np.testing.assert_allclose(r.json()["predictions"], model.predict(x), rtol=1e-5, atol=1e-6)

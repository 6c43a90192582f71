"""Every bad request class answers 400/404/405/413 with {"error": "..."} naming the
problem; never 422 or 500, and the server keeps answering good requests afterwards."""

import gzip
import json
import zlib

import numpy as np
import pytest
from server_kit import InProcess, models, serving  # noqa: F401 (models is a fixture)

from modelkit.errors import ConfigError
from modelkit.runtime.server import create_app

A = {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
B = {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": [4, 5, 6]}


def body(*inputs, **extra):
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def framed(head, raw):
    text = json.dumps(head).encode()
    return text + raw, {"Inference-Header-Content-Length": str(len(text))}


def with_(tensor, **changes):
    out = dict(tensor)
    out.update(changes)
    return out


BIN_A = {"name": "a", "shape": [1, 3], "datatype": "FP32",
         "parameters": {"binary_data_size": 12}}
RAW = np.ones(3, np.float32).tobytes()
INFER = "/v2/models/two/infer"

# (id, method, path, body, headers, status, words the error must contain)
CASES = [
    # unknown model, version, route, method
    ("v2-infer-unknown-model", "POST", "/v2/models/nope/infer", body(A, B), None, 404, "nope"),
    ("v2-metadata-unknown-model", "GET", "/v2/models/nope", b"", None, 404, "nope"),
    ("v2-ready-unknown-model", "GET", "/v2/models/nope/ready", b"", None, 404, "nope"),
    ("v2-unknown-version", "POST", "/v2/models/two/versions/7/infer", body(A, B), None, 404,
     "version '7'"),
    ("tf-predict-unknown-model", "POST", "/v1/models/nope:predict", b'{"instances": [1]}',
     None, 404, "nope"),
    ("tf-status-unknown-model", "GET", "/v1/models/nope", b"", None, 404, "nope"),
    ("tf-metadata-unknown-model", "GET", "/v1/models/nope/metadata", b"", None, 404, "nope"),
    ("unknown-route", "GET", "/v3/whatever", b"", None, 404, "/v3/whatever"),
    ("wrong-method", "GET", INFER, b"", None, 405, "GET"),
    # body
    ("empty-body", "POST", INFER, b"", None, 400, "empty"),
    ("malformed-json", "POST", INFER, b'{"inputs": [', None, 400, "not valid JSON"),
    ("not-utf8", "POST", INFER, b'{"inputs": "\xff\xfe"}', None, 400, "UTF-8"),
    ("body-not-object", "POST", INFER, b"[1, 2]", None, 400, "JSON object"),
    ("missing-inputs", "POST", INFER, b'{"id": "1"}', None, 400, "no 'inputs'"),
    ("inputs-not-list", "POST", INFER, b'{"inputs": {"a": 1}}', None, 400, "'inputs'"),
    ("input-not-object", "POST", INFER, body(A, 5), None, 400, "inputs[1]"),
    # names and datatypes
    ("wrong-input-name", "POST", INFER, body(A, with_(B, name="c")), None, 400, "'c'"),
    ("missing-input", "POST", INFER, body(A), None, 400, "'b' is missing"),
    ("duplicate-input", "POST", INFER, body(A, A, B), None, 400, "twice"),
    ("unknown-datatype", "POST", INFER, body(A, with_(B, datatype="FLOAT32")), None, 400,
     "unknown datatype 'FLOAT32'"),
    ("missing-datatype", "POST", INFER, body(A, {"name": "b", "shape": [1, 3], "data": [1]}),
     None, 400, "no 'datatype'"),
    ("mismatched-datatype", "POST", INFER, body(A, with_(B, datatype="INT64")), None, 400,
     "input 'b' has datatype FP32"),
    ("mismatched-datatype-fp64", "POST", INFER, body(with_(A, datatype="FP64"), B), None, 400,
     "does not cast"),
    # shapes and data
    ("wrong-rank", "POST", INFER, body(A, with_(B, shape=[3])), None, 400, "rank 2"),
    ("wrong-fixed-dim", "POST", INFER, body(A, with_(B, shape=[3, 1])), None, 400,
     "dimension 1 must be 3"),
    ("negative-dim", "POST", INFER, body(A, with_(B, shape=[-1, 3])), None, 400, "negative"),
    ("shape-not-ints", "POST", INFER, body(A, with_(B, shape=[1, "3"])), None, 400, "'shape'"),
    ("missing-shape", "POST", INFER, body(A, {"name": "b", "datatype": "FP32", "data": [1]}),
     None, 400, "no 'shape'"),
    ("data-length-mismatch", "POST", INFER, body(A, with_(B, data=[1, 2])), None, 400,
     "2 values but shape [1, 3] needs 3"),
    ("ragged-data", "POST", INFER, body(A, with_(B, data=[[1, 2], [3]])), None, 400, "ragged"),
    ("non-numeric-data", "POST", INFER, body(A, with_(B, data=["x", "y", "z"])), None, 400,
     "non-numeric"),
    ("missing-data", "POST", INFER, body(A, {"name": "b", "shape": [1, 3], "datatype": "FP32"}),
     None, 400, "neither 'data'"),
    ("bool-for-float", "POST", INFER, body(A, with_(B, data=[True, False, True])), None, 400,
     "booleans"),
    # binary extension
    ("binary-extra-bytes", "POST", INFER, *framed({"inputs": [BIN_A, B]}, RAW + b"xx"), 400,
     "do not add up"),
    ("binary-past-end", "POST", INFER, *framed({"inputs": [BIN_A, B]}, RAW[:8]), 400,
     "runs past"),
    ("binary-size-vs-shape", "POST", INFER,
     *framed({"inputs": [with_(BIN_A, parameters={"binary_data_size": 8}), B]}, RAW[:8]), 400,
     "needs 12"),
    ("binary-header-too-long", "POST", INFER, body(A, B),
     {"Inference-Header-Content-Length": "99999"}, 400, "Inference-Header-Content-Length"),
    ("binary-header-not-int", "POST", INFER, body(A, B),
     {"Inference-Header-Content-Length": "ten"}, 400, "integer"),
    ("binary-and-data", "POST", INFER, *framed({"inputs": [with_(BIN_A, data=[1, 2, 3]), B]},
                                               RAW), 400, "both 'data'"),
    ("binary-size-negative", "POST", INFER,
     *framed({"inputs": [with_(BIN_A, parameters={"binary_data_size": -4}), B]}, RAW), 400,
     "non-negative"),
    ("shared-memory", "POST", INFER,
     body(A, with_(B, parameters={"shared_memory_region": "r"})), None, 400, "shared memory"),
    # outputs, id, parameters
    ("unknown-output", "POST", INFER, body(A, B, outputs=[{"name": "diff"}]), None, 400,
     "'diff'"),
    ("classification", "POST", INFER,
     body(A, B, outputs=[{"name": "sum", "parameters": {"classification": 2}}]), None, 400,
     "classification"),
    ("id-not-string", "POST", INFER, body(A, B, id=5), None, 400, "'id'"),
    ("binary-output-not-bool", "POST", INFER, body(A, B, parameters={"binary_data_output": 1}),
     None, 400, "binary_data_output"),
    # integer inputs (v2)
    ("float-for-int", "POST", "/v2/models/emb/infer",
     body({"name": "EMB", "shape": [1, 2], "datatype": "INT32", "data": [1.5, 2]}), None, 400,
     "non-integer"),
    ("int-out-of-range", "POST", "/v2/models/emb/infer",
     body({"name": "EMB", "shape": [1, 2], "datatype": "INT32", "data": [1, 2 ** 40]}), None,
     400, "do not fit int32"),
    ("index-out-of-table", "POST", "/v2/models/emb/infer",
     body({"name": "EMB", "shape": [1, 2], "datatype": "INT32", "data": [1, 100]}), None, 400,
     "holds index 100"),
    # TF Serving
    ("tf-both-formats", "POST", "/v1/models/two:predict", b'{"instances": [], "inputs": []}',
     None, 400, "both"),
    ("tf-no-format", "POST", "/v1/models/two:predict", b'{"x": 1}', None, 400, "neither"),
    ("tf-signature", "POST", "/v1/models/two:predict",
     b'{"signature_name": "other", "inputs": {}}', None, 400, "signature_name 'other'"),
    ("tf-plain-rows-for-two-inputs", "POST", "/v1/models/two:predict",
     b'{"instances": [[1, 2, 3]]}', None, 400, "keyed by input name"),
    ("tf-instance-missing-input", "POST", "/v1/models/two:predict",
     b'{"instances": [{"a": [1, 2, 3]}]}', None, 400, "no input 'b'"),
    ("tf-unknown-input", "POST", "/v1/models/two:predict",
     b'{"inputs": {"a": [[1, 2, 3]], "b": [[1, 2, 3]], "c": 1}}', None, 400, "'c'"),
    ("tf-wrong-rank", "POST", "/v1/models/two:predict",
     b'{"inputs": {"a": [1, 2, 3], "b": [1, 2, 3]}}', None, 400, "rank 2"),
    ("tf-empty-instances", "POST", "/v1/models/two:predict", b'{"instances": []}', None, 400,
     "non-empty"),
    ("tf-ragged", "POST", "/v1/models/two:predict",
     b'{"inputs": {"a": [[1, 2, 3], [1]], "b": [[1, 2, 3], [1, 2, 3]]}}', None, 400, "ragged"),
    ("tf-strings-for-numbers", "POST", "/v1/models/two:predict",
     b'{"inputs": {"a": [["1", "2", "3"]], "b": [[1, 2, 3]]}}', None, 400, "non-numeric"),
    # encodings
    ("bad-gzip", "POST", INFER, b"not gzip at all", {"Content-Encoding": "gzip"}, 400, "gzip"),
    ("unknown-encoding", "POST", INFER, body(A, B), {"Content-Encoding": "br"}, 400, "'br'"),
]


@pytest.fixture(scope="module")
def client(models):
    with serving(models, max_request_mb=0.01) as app:
        client = InProcess(app)
        client.emb_input = app.state.repository.get("emb").inputs[0].name
        yield client


def check_error(r, status, words):
    assert r.status == status, r
    assert r.headers["content-type"] == "application/json"
    message = r.json()["error"]
    assert isinstance(message, str) and words in message, message


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_answered_with_a_json_error(client, case):
    _, method, path, payload, headers, status, words = case
    payload = payload.replace(b'"EMB"', json.dumps(client.emb_input).encode())
    check_error(client.request(method, path, payload, headers), status, words)
    ok = client.post(INFER, body(A, B))                  # and the server is still fine
    assert ok.status == 200, ok


def test_client_values_are_quoted_briefly(client):
    r = client.post(INFER, body(A, B, id=["x" * 5000]))
    check_error(r, 400, "'id' must be a string")
    assert len(r.json()["error"]) < 200
    r = client.post(INFER, body(A, with_(B, name="n" * 5000)))
    assert r.status == 400 and len(r.json()["error"]) < 300


def test_body_over_the_limit_is_413(client):
    big = body(A, B) + b" " * 20000                       # limit is 0.01 MB = 10485 bytes
    check_error(client.post(INFER, big), 413, "--max-request-mb")
    check_error(client.post("/v1/models/two:predict", big), 413, "limit")


def test_compressed_bodies_are_read_and_bombs_are_413(client):
    r = client.post(INFER, gzip.compress(body(A, B)), {"Content-Encoding": "gzip"})
    assert r.status == 200, r
    r = client.post(INFER, zlib.compress(body(A, B)), {"Content-Encoding": "deflate"})
    assert r.status == 200, r
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    r = client.post(INFER, raw.compress(body(A, B)) + raw.flush(), {"Content-Encoding": "deflate"})
    assert r.status == 200, r
    check_error(client.post(INFER, b"\x00junk", {"Content-Encoding": "deflate"}), 400, "deflate")
    bomb = gzip.compress(b" " * 5_000_000)                # ~5 KB that inflates to 5 MB
    check_error(client.post(INFER, bomb, {"Content-Encoding": "gzip"}), 413,
                "decompressed request body")


def test_two_models_with_one_name_are_a_startup_error(models):
    with pytest.raises(ConfigError, match="Two models are named 'mlp'"):
        create_app([models["mlp"][0], f"mlp={models['two'][0]}"], device="cpu")
    with pytest.raises(ConfigError, match="not usable in a URL"):
        create_app({"a:b": models["two"][0]}, device="cpu")

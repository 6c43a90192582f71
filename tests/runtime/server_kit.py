"""Helpers for the server tests: small models, an in-process ASGI client, a real uvicorn
server on a free loopback port, and v2 binary requests framed as tritonclient.http does."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import threading

import numpy as np
import onnx
import pytest

ROWS = np.random.default_rng(7)
# The device the server tests serve on: cpu here; MODELKIT_TEST_DEVICE=cuda runs them on a GPU
# (see benchmarks/cuda_check.py).
DEVICE = os.environ.get("MODELKIT_TEST_DEVICE", "cpu")


def build_models(folder):
    """Write the test models into `folder`; return {name: (path, predict)} where predict
    is the reference (the modelkit model's own predict, or numpy)."""
    from test_runtime_session import two_io_model

    from modelkit.layers import LSTM, Dense, Embedding, GlobalAveragePooling1D
    from modelkit.models import Sequential

    mlp = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(3)])
    emb = Sequential([Embedding(10, 4), GlobalAveragePooling1D(), Dense(2)])
    emb.predict(np.zeros((1, 2), np.int32))            # build
    lstm = Sequential([LSTM(5, return_sequences=True, input_shape=(None, 3))])
    paths = {}
    for name, model in (("mlp", mlp), ("emb", emb), ("lstm", lstm)):
        path = folder / f"{name}.h5"
        model.save(str(path))
        paths[name] = (str(path), model.predict)
    two = folder / "two.onnx"
    onnx.save(two_io_model(), str(two))
    paths["two"] = (str(two), lambda ab: [ab[0] + ab[1], ab[0] * ab[1]])
    return paths


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The test models of `build_models`, written once per test module."""
    return build_models(tmp_path_factory.mktemp("models"))


@contextlib.contextmanager
def serving(models, **options):
    """An app serving every model of `models` on DEVICE with one thread; closed after."""
    from modelkit.runtime.server import create_app
    options = {"device": DEVICE, "threads": 1, "batch_timeout_ms": 1, **options}
    app = create_app({name: path for name, (path, _) in models.items()}, **options)
    try:
        yield app
    finally:
        app.state.repository.close()


# -- in-process ---------------------------------------------------------------------------

def asgi_call(app, method, path, body=b"", headers=None):
    """(status, {header: value}, body bytes) of one request to the ASGI `app`."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    raw_headers = [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "root_path": "", "headers": raw_headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent = False
    out = {"status": None, "headers": {}, "body": []}

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            out["body"].append(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return out["status"], out["headers"], b"".join(out["body"])


class InProcess:
    """Call an app in-process: .get(path) / .post(path, body, headers) -> Reply."""

    def __init__(self, app):
        self.app = app

    def get(self, path):
        return Reply(*asgi_call(self.app, "GET", path))

    def post(self, path, body=b"", headers=None):
        return Reply(*asgi_call(self.app, "POST", path, body, headers))

    def request(self, method, path, body=b"", headers=None):
        return Reply(*asgi_call(self.app, method, path, body, headers))


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Reply({self.status}, {self.body[:300]!r})"


# -- a real server ------------------------------------------------------------------------

@contextlib.contextmanager
def live_server(app, **kwargs):
    """Run `app` on uvicorn in a thread on a free 127.0.0.1 port; yield (host, port)."""
    from modelkit.runtime.server.host import bind, make_server
    sock = bind("127.0.0.1", 0)
    started = threading.Event()
    server = make_server(app, sock, on_ready=started.set, **kwargs)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert started.wait(20), "server did not start"
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive()


class Client:
    """A keep-alive HTTP/1.1 connection to a live server."""

    def __init__(self, address, timeout=30):
        self.conn = http.client.HTTPConnection(*address, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=b"", headers=None):
        return self.request("POST", path, body, headers)

    def close(self):
        self.conn.close()


# -- v2 binary framing, as tritonclient.http builds it -----------------------------------

V2_TYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
            np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
            np.dtype(np.bool_): "BOOL", np.dtype(np.float16): "FP16",
            np.dtype(np.uint8): "UINT8"}


def binary_request(inputs, outputs=None, request_id="", binary_inputs=True):
    """(body, headers) framed like tritonclient.http's InferenceServerClient.infer.

    `inputs`: {name: array}. `outputs`: None (the client then sets the request parameter
    binary_data_output) or [(name, binary)]. Mirrors tritonclient's _get_inference_request:
    inputs carry parameters.binary_data_size, json.dumps of the header (default separators),
    the raw tensors appended in input order, and Inference-Header-Content-Length.
    """
    request, params = {}, {}
    if request_id != "":
        request["id"] = request_id
    tensors, raws = [], []
    for name, arr in inputs.items():
        t = {"name": name, "shape": list(arr.shape), "datatype": V2_TYPES[arr.dtype]}
        if binary_inputs:
            raw = arr.tobytes()
            t["parameters"] = {"binary_data_size": len(raw)}
            raws.append(raw)
        else:
            t["parameters"] = {}
            t["data"] = [v.item() for v in arr.flatten()]
        tensors.append(t)
    request["inputs"] = tensors
    if outputs:
        request["outputs"] = [{"name": n, "parameters": {"binary_data": b}} for n, b in outputs]
    else:
        params["binary_data_output"] = True
    if params:
        request["parameters"] = params
    head = json.dumps(request)
    if not raws:
        return head.encode(), {}
    return head.encode() + b"".join(raws), {"Inference-Header-Content-Length": str(len(head))}


def parse_v2_response(reply):
    """{output name: array} from a v2 response, binary parts included (as tritonclient)."""
    hl = reply.headers.get("inference-header-content-length")
    if hl is None:
        head, rest = json.loads(reply.body), b""
    else:
        head, rest = json.loads(reply.body[:int(hl)]), reply.body[int(hl):]
    types = {v: k for k, v in V2_TYPES.items()}
    out, pos = {}, 0
    for o in head["outputs"]:
        dt = types[o["datatype"]]
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            arr = np.frombuffer(rest[pos:pos + size], dtype=dt)
            pos += size
        else:
            arr = np.array(o["data"], dtype=dt)
        out[o["name"]] = arr.reshape(o["shape"])
    assert pos == len(rest)
    return head, out

"""The server on a real uvicorn socket (127.0.0.1, free port): keep-alive, many concurrent
clients checked against model.predict, metrics, readiness, and the `modelkit serve` CLI."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_kit import (DEVICE, Client, binary_request, live_server, models,  # noqa: F401
                        parse_v2_response, serving)

from modelkit.runtime.server import create_app


@pytest.fixture(scope="module")
def server(models):
    with serving(models, max_batch_size=16, batch_timeout_ms=5) as app:
        with live_server(app) as address:
            yield app, address


def input_name(app, model):
    return app.state.repository.get(model).inputs[0].name


def test_keep_alive_and_every_protocol_on_one_connection(server, models):
    app, address = server
    c = Client(address)
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    want = models["mlp"][1](x)
    assert c.get("/v2/health/ready").status == 200
    sock = c.conn.sock
    name = input_name(app, "mlp")
    r = c.post("/v2/models/mlp/infer", {"inputs": [
        {"name": name, "shape": [2, 4], "datatype": "FP32", "data": x.ravel().tolist()}]})
    np.testing.assert_allclose(next(iter(parse_v2_response(r)[1].values())), want, rtol=1e-5,
                               atol=1e-6)
    body, headers = binary_request({name: x})
    r = c.post("/v2/models/mlp/infer", body, headers)
    np.testing.assert_allclose(next(iter(parse_v2_response(r)[1].values())), want, rtol=1e-5,
                               atol=1e-6)
    r = c.post("/v1/models/mlp:predict", {"instances": x.tolist()})
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-5, atol=1e-6)
    r = c.post("/v1/models/mlp:predict", b"{oops")
    assert r.status == 400 and "not valid JSON" in r.json()["error"]
    assert c.get("/v1/models/mlp").status == 200
    assert c.conn.sock is sock                      # one TCP connection throughout
    c.close()


def _one_client(app, address, models, seed, results):
    rng = np.random.default_rng(seed)
    c = Client(address)
    mlp_in, lstm_in, emb_in = (input_name(app, m) for m in ("mlp", "lstm", "emb"))
    try:
        for i in range(12):
            kind = (seed + i) % 6
            if kind == 0:                                     # v2 JSON, mlp
                x = rng.standard_normal((int(rng.integers(1, 4)), 4)).astype(np.float32)
                r = c.post("/v2/models/mlp/infer", {"id": f"{seed}-{i}", "inputs": [
                    {"name": mlp_in, "shape": list(x.shape), "datatype": "FP32",
                     "data": x.tolist()}]})
                head, outs = parse_v2_response(r)
                assert head["id"] == f"{seed}-{i}"
                results.append((next(iter(outs.values())), models["mlp"][1](x)))
            elif kind == 1:                                   # v2 binary, lstm, own length
                x = rng.standard_normal((1, int(rng.integers(1, 8)), 3)).astype(np.float32)
                body, headers = binary_request({lstm_in: x})
                _, outs = parse_v2_response(c.post("/v2/models/lstm/infer", body, headers))
                results.append((next(iter(outs.values())), models["lstm"][1](x)))
            elif kind == 2:                                   # TF rows, int input
                ids = rng.integers(0, 10, size=(2, int(rng.integers(1, 6)))).astype(np.int32)
                r = c.post("/v1/models/emb:predict", {"instances": ids.tolist()})
                assert r.status == 200, r
                results.append((np.array(r.json()["predictions"]), models["emb"][1](ids)))
            elif kind == 3:                                   # TF columnar, two in/out
                a, b = rng.standard_normal((2, 2, 3))
                r = c.post("/v1/models/two:predict", {"inputs": {"a": a.tolist(),
                                                                 "b": b.tolist()}})
                outs = r.json()["outputs"]
                results.append((np.array(outs["sum"]), a + b))
                results.append((np.array(outs["prod"]), a * b))
            elif kind == 4:                                   # bad values in a batch
                r = c.post("/v2/models/emb/infer", {"inputs": [
                    {"name": emb_in, "shape": [1, 2], "datatype": "INT32", "data": [1, 99]}]})
                assert r.status == 400, r
                results.append(None)
            else:                                             # malformed, shape mismatch
                r = c.post("/v2/models/mlp/infer", {"inputs": [
                    {"name": mlp_in, "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]})
                assert r.status == 400 and "dimension 1 must be 4" in r.json()["error"], r
                results.append(None)
    finally:
        c.close()


def test_concurrent_clients_each_get_their_own_answer(server, models):
    app, address = server
    results, errors = [], []

    def run(seed):
        try:
            _one_client(app, address, models, seed, results)
        except BaseException as e:                  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert len(results) >= 16 * 12
    for got, want in (r for r in results if r is not None):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _batch_runs(address, model):
    fams = {f.name: f for f in text_string_to_metric_families(
        Client(address).get("/metrics").body.decode())}
    return sum(s.value for s in fams["modelkit_batch_size"].samples
               if s.name == "modelkit_batch_size_count" and s.labels["model"] == model)


def test_concurrent_requests_share_runs(models):
    app = create_app({"two": models["two"][0]}, device=DEVICE, threads=1, max_batch_size=64,
                     batch_timeout_ms=300)
    with live_server(app) as address:
        barrier = threading.Barrier(8)
        replies = [None] * 8

        def send(i):
            c = Client(address)
            a = np.full((2, 3), i, np.float32)
            barrier.wait()
            replies[i] = c.post("/v1/models/two:predict", {"inputs": {"a": a.tolist(),
                                                                      "b": a.tolist()}})

        threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for i, r in enumerate(replies):
            assert r.json()["outputs"]["sum"] == [[2.0 * i] * 3] * 2
        assert _batch_runs(address, "two") < 8


def test_metrics_are_prometheus_text(server):
    app, address = server
    c = Client(address)
    c.get("/v2/models/nope")
    c.post("/v1/models/two:predict", {"inputs": {"a": [[1, 2, 3]], "b": [[1, 2, 3]]}})
    r = c.get("/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    for name in ("modelkit_requests", "modelkit_request_duration_seconds",
                 "modelkit_queue_wait_seconds", "modelkit_batch_size",
                 "modelkit_model_load_seconds", "modelkit_models_ready",
                 "modelkit_queue_depth", "modelkit_inference_duration_seconds"):
        assert name in fams, sorted(fams)
    samples = fams["modelkit_requests"].samples
    assert any(s.labels == {"model": "", "protocol": "v2", "code": "404"} for s in samples)
    assert any(s.labels == {"model": "two", "protocol": "tfserving", "code": "200"}
               for s in samples)
    sums = {s.labels["model"]: s.value for s in fams["modelkit_batch_size"].samples
            if s.name == "modelkit_batch_size_sum"}
    assert sums["two"] >= 1                          # the sum counts rows
    loads = {s.labels["model"] for s in fams["modelkit_model_load_seconds"].samples}
    assert loads == {"mlp", "emb", "lstm", "two"}


def test_body_over_the_limit_is_413_on_the_wire(models):
    app = create_app({"two": models["two"][0]}, device=DEVICE, threads=1, max_request_mb=0.5)
    with live_server(app) as address:
        c = Client(address)
        r = c.post("/v2/models/two/infer", b"x" * (1024 * 1024))
        assert r.status == 413 and "limit" in r.json()["error"]
        c.close()
        c = Client(address)                          # the server is unaffected
        assert c.get("/v2/health/live").status == 200


def test_ready_only_once_every_model_is_loaded(models, monkeypatch):
    from modelkit.runtime.server import models as served
    gate = threading.Event()
    real_open = served.open_session

    def slow_open(source, *args, **kwargs):
        if "lstm" in str(source):
            assert gate.wait(30)
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(served, "open_session", slow_open)
    app = create_app({"mlp": models["mlp"][0], "lstm": models["lstm"][0]}, device=DEVICE,
                     threads=1, background=True)
    with live_server(app) as address:
        c = Client(address)
        assert c.get("/v2/health/live").status == 200
        deadline = time.monotonic() + 20
        while "mlp" not in [m.name for m in app.state.repository.loaded()]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        r = c.get("/v2/health/ready")
        assert r.status == 503 and r.json()["ready"] is False and "lstm" in r.json()["error"]
        assert c.get("/v2/models/lstm/ready").status == 503
        assert c.get("/v2/models/mlp/ready").status == 200
        r = c.post("/v2/models/lstm/infer", b"{}")
        assert r.status == 503 and "loading" in r.json()["error"]
        assert r.headers["retry-after"] == "1"
        assert c.get("/v1/models/lstm").json()["model_version_status"][0]["state"] == "LOADING"
        gate.set()
        while c.get("/v2/health/ready").status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert c.get("/v2/models/lstm/ready").json() == {"name": "lstm", "ready": True}


# -- the CLI ------------------------------------------------------------------------------

def _modelkit():
    local = Path(sys.executable).parent / "modelkit"
    return [str(local)] if local.exists() else [sys.executable, "-m", "modelkit.cli.main"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_a_signal_and_finishes_requests_in_flight(models, sig, tmp_path):
    cmd = _modelkit() + ["serve", f"clf={models['mlp'][0]}", models["two"][0], "--port", "0",
                         "--device", DEVICE, "--threads", "1", "--batch-timeout-ms", "3000",
                         "--access-log"]
    log = tmp_path / "stdout.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "serving on http://" not in log.read_text():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        lines = log.read_text().splitlines()
        assert lines[0].startswith("model 'clf' ready") and "FP32" in lines[0]
        assert lines[1].startswith("model 'two' ready")
        url = next(ln for ln in lines if ln.startswith("serving on")).split()[2]
        host, port = url[len("http://"):].split(":")
        address = (host, int(port))
        reply = {}

        def in_flight():                          # waits 3 s in the batcher
            c = Client(address)
            reply["r"] = c.post("/v1/models/two:predict",
                                {"inputs": {"a": [[1, 2, 3]], "b": [[1, 1, 1]]}})

        t = threading.Thread(target=in_flight)
        t.start()
        probe = Client(address)
        waiting = 'modelkit_queue_depth{model="two"} 1.0'
        while waiting not in probe.get("/metrics").body.decode():
            assert time.monotonic() < deadline    # until the request waits in the batcher
            time.sleep(0.05)
        probe.close()
        proc.send_signal(sig)
        time.sleep(0.3)
        assert t.is_alive()                       # still in flight ...
        with pytest.raises(OSError):              # ... while new connections are refused
            Client(address, timeout=5).get("/v2/health/live")
        t.join(30)
        assert reply["r"].status == 200
        assert reply["r"].json()["outputs"]["sum"] == [[2, 3, 4]]
        assert proc.wait(30) == 0
        out = log.read_text()
        assert '"POST /v1/models/two:predict HTTP/1.1" 200' in out       # --access-log
        with pytest.raises(OSError):
            Client(address, timeout=5).get("/v2/health/live")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_two_models_with_one_name(models):
    proc = subprocess.run(_modelkit() + ["serve", models["mlp"][0], f"mlp={models['two'][0]}",
                                         "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Two models are named 'mlp'" in proc.stderr


def test_importing_the_server_does_not_load_the_trainer():
    code = ("import sys, modelkit.runtime.server; "
            "print(sorted(m for m in sys.modules if m.startswith(('modelkit.engine', "
            "'modelkit.layers'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


def test_many_clients_connecting_at_once(server):
    import socket
    app, address = server
    socks = [socket.create_connection(address, timeout=30) for _ in range(300)]
    try:
        for s in socks:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in socks:
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200") and b'{"live":true}' in data
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("args, code, words", [
    ([], 2, "the following arguments are required: MODEL"),
    (["m.onnx", "--max-batch-size", "0"], 2, "--max-batch-size must be at least 1"),
    (["m.onnx", "--port", "70000"], 2, "--port must be in 0..65535"),
    (["m.onnx", "--batch-timeout-ms", "-1"], 2, "--batch-timeout-ms must be >= 0"),
    (["missing.onnx", "--port", "0"], 1, "file not found: missing.onnx"),
    (["bad name=x.onnx"], 1, "not usable in a URL"),
])
def test_cli_errors_are_one_line(args, code, words):
    proc = subprocess.run(_modelkit() + ["serve"] + args, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelkit: error:") and words in lines[0], \
        lines


def test_cli_help_has_an_example():
    proc = subprocess.run(_modelkit() + ["serve", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    assert "example:\n  modelkit serve" in proc.stdout and "--max-batch-size" in proc.stdout


def test_inference_runs_off_the_event_loop(tmp_path):
    """While a slow inference runs, the server still answers other requests."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    vi = helper.make_tensor_value_info
    # ~0.1 TFLOP for a (256, 512) input on a CPU; ~27 TFLOP (about half a second) on a GPU
    rows, width = (2048, 4096) if DEVICE.startswith("cuda") else (256, 512)
    w = numpy_helper.from_array(np.full((width, width), 1e-3, np.float32), "w")
    nodes, prev = [], "x"
    for i in range(400):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(nodes, "slow", [vi("x", TensorProto.FLOAT, ["N", width])],
                              [vi("y", TensorProto.FLOAT, ["N", width])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "slow.onnx"))
    app = create_app([str(tmp_path / "slow.onnx")], device=DEVICE, threads=1)
    with live_server(app) as address:
        done = {}

        def slow():
            x = np.ones((rows, width), np.float32)
            body, headers = binary_request({"x": x})
            done["r"] = Client(address, timeout=120).post("/v2/models/slow/infer", body,
                                                          headers)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.2)
        c = Client(address)
        answered = 0
        while t.is_alive() and answered < 5:
            assert c.get("/v2/health/live").status == 200
            answered += 1
        still_running = t.is_alive()
        t.join(120)
        assert done["r"].status == 200
        assert answered == 5 and still_running        # answered while inference ran


def test_cli_port_in_use_is_one_error_line(models):
    import socket
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run(_modelkit() + ["serve", models["two"][0], "--port", str(port),
                                             "--device", DEVICE],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_bad_request_never_fails_its_batch_mates(models):
    app = create_app({"emb": models["emb"][0]}, device=DEVICE, threads=1, max_batch_size=64,
                     batch_timeout_ms=300)
    name = app.state.repository.get("emb").inputs[0].name
    with live_server(app) as address:
        barrier = threading.Barrier(9)
        replies = [None] * 9

        def send(i):
            ids = [[i % 10, (i + 3) % 10]] if i < 8 else [[1, 99]]    # 99: outside the table
            c = Client(address)
            barrier.wait()
            replies[i] = (ids, c.post("/v2/models/emb/infer", {"inputs": [
                {"name": name, "shape": [1, 2], "datatype": "INT32", "data": ids}]}))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for ids, r in replies[:8]:
            assert r.status == 200, r
            _, outs = parse_v2_response(r)
            np.testing.assert_allclose(next(iter(outs.values())),
                                       models["emb"][1](np.array(ids, np.int32)), rtol=1e-5,
                                       atol=1e-6)
        assert replies[8][1].status == 400 and "holds index 99" in replies[8][1].json()["error"]

"""Ray Serve replicas answer exactly as the single-process server: the same app
(`create_app`) runs in each of 2 replicas behind Ray's HTTP proxy."""

import socket
import threading

import numpy as np
import pytest
from distributed_kit import mlp_model, two_io_path
from server_kit import Client, InProcess, binary_request

pytestmark = pytest.mark.ray

X = [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]]
REQUESTS = [
    ("GET", "/v2", None, None),
    ("GET", "/v2/health/ready", None, None),
    ("GET", "/v2/models/clf", None, None),
    ("GET", "/v2/models/two/ready", None, None),
    ("POST", "/v2/models/clf/infer", {"id": "r1", "inputs": [
        {"name": "hidden_input", "shape": [2, 4], "datatype": "FP32", "data": sum(X, [])}]}, None),
    ("POST", "/v2/models/two/infer", {"inputs": [
        {"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "b", "shape": [1, 3], "datatype": "FP32", "data": [4, 5, 6]}],
        "outputs": [{"name": "prod"}]}, None),
    ("POST", "/v2/models/clf/infer", {"inputs": [
        {"name": "hidden_input", "shape": [2, 3], "datatype": "FP32", "data": [1] * 6}]}, None),
    ("POST", "/v2/models/nope/infer", {"inputs": []}, None),
    ("POST", "/v1/models/clf:predict", {"instances": X}, None),
    ("POST", "/v1/models/two:predict", {"inputs": {"a": [[1, 2, 3]], "b": [[1, 1, 1]]}}, None),
    ("POST", "/v1/models/clf:predict", {"instances": [[1, 2]]}, None),
    ("POST", "/v1/models/clf:predict", b"not json", None),
    ("GET", "/v1/models/clf", None, None),
    ("GET", "/v1/models/two/metadata", None, None),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_replicas_answer_like_the_single_process_server(ray_session, tmp_path):
    from ray import serve

    from modelkit.distributed import serve as ray_serving
    from modelkit.runtime.server import create_app
    models = {"clf": mlp_model(tmp_path / "clf.h5"), "two": two_io_path(str(tmp_path))}
    options = dict(device="cpu", max_batch_size=8, batch_timeout_ms=1.0)
    port, ready, stop, failed = _free_port(), threading.Event(), threading.Event(), []

    def run():
        try:
            ray_serving.run(models, host="127.0.0.1", port=port, replicas=2, num_cpus=0.5,
                            on_ready=ready.set, stop=stop, **options)
        except BaseException as e:      # noqa: BLE001 - reported by the test below
            failed.append(e)
            ready.set()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    local = create_app(models, threads=1, **options)
    try:
        assert ready.wait(180) and not failed, failed
        status = serve.status().applications["modelkit"].deployments["modelkit"]
        assert status.replica_states == {"RUNNING": 2}
        client, here = Client(("127.0.0.1", port)), InProcess(local)
        body, headers = binary_request({"hidden_input": np.asarray(X, np.float32)})
        for method, path, payload, extra in REQUESTS + [
                ("POST", "/v2/models/clf/infer", body, headers)]:
            want = here.request(method, path, payload, extra)
            for _ in range(3):                   # whichever replica answers
                got = client.request(method, path, payload, extra)
                assert (got.status, got.body) == (want.status, want.body), (method, path)
                if "inference-header-content-length" in want.headers:
                    assert got.headers["inference-header-content-length"] == \
                        want.headers["inference-header-content-length"]
        assert want.status == 200
        client.close()
    finally:
        local.state.repository.close()
        stop.set()
        thread.join(60)
        serve.shutdown()
    assert not thread.is_alive()
    assert not failed, failed

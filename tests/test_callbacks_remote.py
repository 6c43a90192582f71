"""RemoteMonitor (against a local HTTP server) and BaseLogger, in real fits."""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from modelkit import callbacks as cbks
from modelkit.layers import Dense
from modelkit.models import Sequential


@pytest.fixture
def server():
    """A local HTTP server recording (path, headers, body) of every POST."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def _fit(callbacks, epochs=2):
    rng = np.random.default_rng(0)
    model = Sequential([Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse", metrics=["mae"])
    return model.fit(rng.normal(size=(7, 3)), rng.normal(size=(7, 1)), batch_size=3,
                     epochs=epochs, verbose=0, callbacks=callbacks)


def test_remote_monitor_posts_form_encoded_logs(server):
    root, received = server
    history = _fit([cbks.RemoteMonitor(root=root, headers={"X-Run": "r1"})])
    assert [r[0] for r in received] == ["/publish/epoch/end/"] * 2
    for epoch, (_, headers, body) in enumerate(received):
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert headers["X-Run"] == "r1"
        sent = json.loads(urllib.parse.parse_qs(body.decode())["data"][0])
        assert sent["epoch"] == epoch
        assert sent["loss"] == pytest.approx(history.history["loss"][epoch])
        assert sent["mae"] == pytest.approx(history.history["mae"][epoch])


def test_remote_monitor_posts_json(server):
    root, received = server
    _fit([cbks.RemoteMonitor(root=root, path="/logs", send_as_json=True)], epochs=1)
    (path, headers, body), = received
    assert path == "/logs" and headers["Content-Type"] == "application/json"
    assert set(json.loads(body)) == {"epoch", "loss", "mae"}


def test_remote_monitor_unreachable_server_warns_and_training_goes_on():
    with pytest.warns(RuntimeWarning, match="could not reach RemoteMonitor root server"):
        history = _fit([cbks.RemoteMonitor(root="http://127.0.0.1:9", timeout=2)])
    assert len(history.history["loss"]) == 2


def test_base_logger_epoch_logs_are_the_epoch_means():
    """The epoch's loss is the sample-weighted mean of the batch losses (7 samples in
    batches of 3, 3, 1): what Keras 2's BaseLogger computed; no batch/size keys leak."""
    batches = []

    class Record(cbks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(dict(logs))

    seen = []

    class After(cbks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs))
    _fit([Record(), cbks.BaseLogger(stateful_metrics=["mae"]), After()], epochs=1)
    means = [b["loss"] for b in batches]          # running means after each batch
    per_batch = [means[0] * 3, means[1] * 6 - means[0] * 3, means[2] * 7 - means[1] * 6]
    assert seen[0]["loss"] == pytest.approx(sum(per_batch) / 7)
    assert "size" not in seen[0] and "batch" not in seen[0]

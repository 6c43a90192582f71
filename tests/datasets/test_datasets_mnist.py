"""mnist.load_data / get_file against a local HTTP server; never the internet."""

import hashlib
import io
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from modelkit.datasets import DatasetError, get_file, mnist
from modelkit.datasets import _download
from modelkit.errors import ConfigError, ModelkitError


def fake_mnist_bytes(seed=0, n_train=6, n_test=4):
    rng = np.random.RandomState(seed)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        x_train=rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8),
        y_train=rng.randint(0, 10, n_train).astype(np.uint8),
        x_test=rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8),
        y_test=rng.randint(0, 10, n_test).astype(np.uint8),
    )
    return buf.getvalue()


FAKE = fake_mnist_bytes()
FAKE_SHA = hashlib.sha256(FAKE).hexdigest()


class Server:
    """A tiny HTTP file server on 127.0.0.1 that honours Range and records requests."""

    def __init__(self):
        self.files = {"/mnist.npz": FAKE}
        self.requests = []  # (path, Range header or None)
        self.honour_range = True
        self.cut_after = None  # send only this many body bytes, then close
        self.stall = False  # accept, then never answer
        self.status = None  # force an HTTP error status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append((self.path, self.headers.get("Range")))
                if owner.stall:
                    time.sleep(3)
                    return
                if owner.status:
                    self.send_error(owner.status)
                    return
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and owner.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if owner.cut_after is not None:
                    self.wfile.write(chunk[: owner.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path="/mnist.npz"):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELKIT_HOME", str(tmp_path / "mkhome"))
    monkeypatch.delenv("MODELKIT_MNIST_URL", raising=False)
    return tmp_path / "mkhome"


def refused_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/mnist.npz"


def check_fake(result):
    (x_train, y_train), (x_test, y_test) = result
    with np.load(io.BytesIO(FAKE)) as f:
        np.testing.assert_array_equal(x_train, f["x_train"])
        np.testing.assert_array_equal(y_train, f["y_train"])
        np.testing.assert_array_equal(x_test, f["x_test"])
        np.testing.assert_array_equal(y_test, f["y_test"])
    assert x_train.shape == (6, 28, 28) and x_train.dtype == np.uint8


def test_defaults_are_kerass_file():
    assert mnist.MNIST_URL == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    assert mnist.MNIST_SHA256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def test_download_into_modelkit_home(server, home):
    check_fake(mnist.load_data(origin=server.url(), file_hash=FAKE_SHA))
    target = home / "datasets" / "mnist.npz"
    assert target.read_bytes() == FAKE
    assert not (home / "datasets" / "mnist.npz.part").exists()
    assert server.requests == [("/mnist.npz", None)]


def test_default_home_is_dot_modelkit(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MODELKIT_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = get_file("mnist.npz", server.url(), file_hash=FAKE_SHA)
    assert path == str(tmp_path / ".modelkit" / "datasets" / "mnist.npz")


def test_url_from_environment_and_cache_hit_without_network(server, home, monkeypatch):
    monkeypatch.setenv("MODELKIT_MNIST_URL", server.url())
    check_fake(mnist.load_data(file_hash=FAKE_SHA))
    assert len(server.requests) == 1
    # Cached now: works with a dead origin, no request made.
    monkeypatch.setenv("MODELKIT_MNIST_URL", refused_url())
    check_fake(mnist.load_data(file_hash=FAKE_SHA))
    check_fake(mnist.load_data(origin=refused_url(), file_hash=None))
    assert len(server.requests) == 1


def test_cache_dir_argument_and_absolute_path(server, tmp_path, home):
    path = get_file("m.npz", server.url(), cache_dir=tmp_path / "c", cache_subdir="sub")
    assert path == str(tmp_path / "c" / "sub" / "m.npz")
    own = tmp_path / "elsewhere" / "mine.npz"
    own.parent.mkdir()
    own.write_bytes(FAKE)
    check_fake(mnist.load_data(path=str(own), origin=refused_url(), file_hash=FAKE_SHA))


def test_checksum_failure_redownloads_once_then_errors(server, home):
    server.files["/mnist.npz"] = b"not the right bytes"
    with pytest.raises(DatasetError) as info:
        mnist.load_data(origin=server.url(), file_hash=FAKE_SHA)
    msg = str(info.value)
    assert "checksum" in msg and FAKE_SHA in msg and server.url() in msg
    assert len(server.requests) == 2
    assert not (home / "datasets" / "mnist.npz").exists()
    assert not (home / "datasets" / "mnist.npz.part").exists()
    assert isinstance(info.value, ModelkitError) and isinstance(info.value, OSError)


def test_real_mnist_hash_is_checked_by_default(server, home):
    with pytest.raises(DatasetError, match="731c5ac6"):
        mnist.load_data(origin=server.url())  # the fake is not the real mnist.npz


def test_corrupt_cached_file_is_replaced(server, home):
    target = home / "datasets" / "mnist.npz"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"garbage")
    check_fake(mnist.load_data(origin=server.url(), file_hash=FAKE_SHA))
    assert target.read_bytes() == FAKE
    assert len(server.requests) == 1


def test_unreadable_file_without_hash_redownloads_once_then_errors(server, home):
    server.files["/mnist.npz"] = b"PK\x03\x04 broken zip"
    with pytest.raises(DatasetError, match="downloaded again") as info:
        mnist.load_data(origin=server.url(), file_hash=None)
    assert "Cannot read" in str(info.value)
    assert len(server.requests) == 2


def test_wrong_keys_is_a_clear_error(server, home):
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    server.files["/mnist.npz"] = buf.getvalue()
    with pytest.raises(DatasetError, match="x_train, y_train, x_test, y_test"):
        mnist.load_data(origin=server.url(), file_hash=None)


def test_resume_from_part_file(server, home):
    part = home / "datasets" / "mnist.npz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(FAKE[:100])
    check_fake(mnist.load_data(origin=server.url(), file_hash=FAKE_SHA))
    assert server.requests == [("/mnist.npz", "bytes=100-")]
    assert not part.exists()


def test_resume_when_server_ignores_range(server, home):
    server.honour_range = False
    part = home / "datasets" / "mnist.npz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(FAKE[:100])
    check_fake(mnist.load_data(origin=server.url(), file_hash=FAKE_SHA))
    assert server.requests == [("/mnist.npz", "bytes=100-")]


def test_complete_part_file_gets_416_and_is_checked(server, home):
    part = home / "datasets" / "mnist.npz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(FAKE + b"extra")  # longer than the file: 416, start over
    check_fake(mnist.load_data(origin=server.url(), file_hash=FAKE_SHA))
    assert [r[1] for r in server.requests] == [f"bytes={len(FAKE) + 5}-", None]


def test_bad_part_prefix_is_caught_by_checksum(server, home):
    part = home / "datasets" / "mnist.npz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 100)
    check_fake(mnist.load_data(origin=server.url(), file_hash=FAKE_SHA))
    assert [r[1] for r in server.requests] == ["bytes=100-", None]


def test_interrupted_download_keeps_part_and_next_call_resumes(server, home):
    server.cut_after = 200
    with pytest.raises(DatasetError, match="stopped after 200") as info:
        mnist.load_data(origin=server.url(), file_hash=FAKE_SHA)
    assert "resumes" in str(info.value)
    part = home / "datasets" / "mnist.npz.part"
    assert part.read_bytes() == FAKE[:200]
    server.cut_after = None
    check_fake(mnist.load_data(origin=server.url(), file_hash=FAKE_SHA))
    assert server.requests[-1] == ("/mnist.npz", "bytes=200-")


def test_offline_error_names_url_cache_path_and_manual_step(home):
    url = refused_url()
    start = time.monotonic()
    with pytest.raises(DatasetError) as info:
        mnist.load_data(origin=url, timeout=5)
    assert time.monotonic() - start < 5
    msg = str(info.value)
    target = str(home / "datasets" / "mnist.npz")
    assert url in msg and target in msg and "by hand" in msg
    assert not os.path.exists(target)


def test_silent_server_times_out(server, home):
    server.stall = True
    start = time.monotonic()
    with pytest.raises(DatasetError, match="no answer within 0.3s"):
        mnist.load_data(origin=server.url(), timeout=0.3)
    assert time.monotonic() - start < 2.5


def test_http_error_status(server, home):
    with pytest.raises(DatasetError, match="HTTP 404"):
        mnist.load_data(origin=server.url("/nothing.npz"))


def test_get_file_argument_errors(home):
    with pytest.raises(ConfigError):
        get_file("", "http://127.0.0.1:1/x")
    with pytest.raises(ConfigError):
        get_file("x", "")
    with pytest.raises(ConfigError, match="file_hash"):
        get_file("x", "http://127.0.0.1:1/x", file_hash="abc")


def test_md5_hash_accepted(server, home):
    md5 = hashlib.md5(FAKE).hexdigest()
    assert _download.hash_file(get_file("mnist.npz", server.url(), file_hash=md5)) == FAKE_SHA


def test_get_file_reexported_in_utils():
    import modelkit.utils

    assert modelkit.utils.get_file.__doc__

"""RemoteMonitor: post each epoch's logs to an HTTP server (Keras 2's, on the standard
library's urllib instead of `requests`)."""

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings

import numpy as np

from .base import Callback


class RemoteMonitor(Callback):
    """At the end of every epoch, POST `{"epoch": n, **logs}` to `root + path`.

    `send_as_json=False` (Keras's default) sends it form-encoded as the field `field`
    (`data={"epoch": 0, "loss": ...}`), `True` as a JSON body (`application/json`).
    `headers` are added to the request. A server that cannot be reached (or answers with
    an error) gives a warning, never stops training, as in Keras. `timeout` (seconds) keeps
    a stalled server from holding training up.
    """

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data",
                 headers=None, send_as_json=False, timeout=10.0):
        super().__init__()
        self.root, self.path, self.field = root, path, field
        self.headers = dict(headers or {})
        self.send_as_json = bool(send_as_json)
        self.timeout = timeout

    def on_epoch_end(self, epoch, logs=None):
        send = {"epoch": epoch}
        for k, v in (logs or {}).items():
            send[k] = v.item() if isinstance(v, (np.ndarray, np.generic)) else v
        if self.send_as_json:
            body = json.dumps(send).encode("utf-8")
            content_type = "application/json"
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.root + self.path, data=body, method="POST",
                                         headers={"Content-Type": content_type, **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as e:
            warnings.warn(f"Warning: could not reach RemoteMonitor root server at "
                          f"{self.root} ({e})", RuntimeWarning, stacklevel=2)

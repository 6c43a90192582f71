"""Running the app on uvicorn: a listening socket with a real backlog, keep-alive, a
callback once the server accepts connections, and a clean stop on SIGINT/SIGTERM
(requests in flight finish, new connections are refused, queued batches drain)."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading

import uvicorn

BACKLOG = 2048
KEEP_ALIVE_S = 15
GRACEFUL_S = 30


def bind(host="127.0.0.1", port=8000, backlog=BACKLOG):
    """A listening TCP socket (port 0 picks a free port: see `sock.getsockname()`)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)


class _Server(uvicorn.Server):
    """uvicorn.Server that reports readiness and stops on signals without re-raising them
    afterwards (so a SIGTERM'd server exits with status 0)."""

    def __init__(self, config, on_ready=None):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._stop) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, sig, frame):
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True          # a second Ctrl-C: stop waiting for requests
        self.should_exit = True


def configure_access_log(enabled, stream=None):
    """One line per request on `stream` (stdout) from uvicorn's access logger, or none."""
    log = logging.getLogger("uvicorn.access")
    log.handlers.clear()
    log.propagate = False
    if enabled:
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    else:
        log.setLevel(logging.CRITICAL + 1)


def make_server(app, sock, access_log=False, on_ready=None, keep_alive_s=KEEP_ALIVE_S,
                graceful_s=GRACEFUL_S):
    """A uvicorn server for `app` on the listening socket `sock`."""
    configure_access_log(access_log)
    config = uvicorn.Config(app, log_config=None, access_log=access_log,
                            backlog=BACKLOG, timeout_keep_alive=keep_alive_s,
                            timeout_graceful_shutdown=graceful_s, lifespan="on",
                            server_header=False)
    return _Server(config, on_ready)


def serve(app, sock, **kwargs):
    """Run `app` on `sock` until SIGINT/SIGTERM (blocking)."""
    server = make_server(app, sock, **kwargs)
    server.run(sockets=[sock])

"""Serving replicas on Ray Serve: the same ASGI app as `modelkit serve` (create_app), N
replicas behind Ray's HTTP proxy, which spreads requests over them.

    from ray import serve
    from modelkit.distributed import serve_deployment
    serve.run(serve_deployment({"clf": "model.h5"}, replicas=2), route_prefix="/")

Each replica loads the models once (they travel as ONNX bytes, so nodes need no shared
filesystem), batches its own concurrent requests, and keeps its own /metrics.
"""

from __future__ import annotations

import signal
import threading

from modelkit.errors import ConfigError

from . import deps
from .cluster import connect
from .source import portable_model

DEFAULT_NAME = "modelkit"


def _named_models(models):
    """{name: portable model} from what `create_app` accepts (dict, or NAME=PATH strings)."""
    from modelkit.runtime.server import parse_models
    return {name: portable_model(source) for name, source in parse_models(models)}


def serve_deployment(models, *, replicas=1, device="auto", max_batch_size=32,
                     batch_timeout_ms=2.0, threads=None, max_request_mb=64, num_cpus=1,
                     num_gpus=None, name=DEFAULT_NAME):
    """A Ray Serve application (a bound deployment) serving `models` with `replicas`
    replicas; pass it to `serve.run`, or to another deployment's `.bind()`.

    models: as `modelkit.runtime.server.create_app` takes them; num_cpus / num_gpus: what
    each replica reserves (device='cuda' defaults to one GPU each); threads: onnxruntime
    threads per model in a replica (default: the replica's CPUs)."""
    serve = deps.ray_serve("serve_deployment")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise ConfigError(f"replicas must be a positive integer, got {replicas!r}")
    if num_gpus is None:
        num_gpus = 1 if device == "cuda" else 0
    if device == "auto" and not num_gpus:
        device = "cpu"             # Ray hides GPUs from actors that reserve none
    options = dict(device=device, max_batch_size=max_batch_size,
                   batch_timeout_ms=batch_timeout_ms, max_request_mb=max_request_mb,
                   threads=threads or max(1, int(num_cpus)))
    from .replica import ModelkitServer
    deployment = serve.deployment(ModelkitServer, name=name, num_replicas=replicas,
                                  ray_actor_options={"num_cpus": num_cpus,
                                                     "num_gpus": num_gpus})
    return deployment.bind(_named_models(models), options)


def run(models, *, address=None, host="127.0.0.1", port=8000, replicas=1, name=DEFAULT_NAME,
        on_ready=None, stop=None, **options):
    """Deploy `models` on Ray Serve (the cluster at `address`, or a local one) with its HTTP
    proxy on host:port, call `on_ready()`, and block until SIGINT/SIGTERM (or `stop`, a
    threading.Event, is set); then delete the application."""
    connect(address, feature="serve --engine ray")
    serve = deps.ray_serve("serve --engine ray")
    app = serve_deployment(models, replicas=replicas, name=name, **options)
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=name, route_prefix="/")
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        if on_ready is not None:
            on_ready()
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        serve.delete(name)

"""The ASGI application: routes for KServe v2, TensorFlow Serving and /metrics.

Every handler answers errors as ``{"error": "..."}`` with 400 (bad request), 404 (unknown
model, version or route), 405, 413 (body too large) or 503 (model not loaded yet); a 500
means a bug or a failing device, never a bad request.
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route

from . import tfserving, v2
from .binary import HEADER as BINARY_HEADER
from .errors import RequestError, brief
from .jsonio import dumps
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ServerMetrics
from .models import VERSION, ModelRepository

logger = logging.getLogger("modelkit.server")

SERVER_NAME = "modelkit"
EXTENSIONS = ["binary_tensor_data", "model_configuration"]
OFFLOAD_BYTES = 256 * 1024      # bodies larger than this are decoded off the event loop,
OFFLOAD_ELEMENTS = 64 * 1024    # and responses with more output values than this encoded
JSON = "application/json"


def _version():
    """modelkit's version, from the installed distribution (without importing the trainer)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("modelkit")
    except PackageNotFoundError:
        return "unknown"


def json_response(obj, status=200):
    return Response(dumps(obj), status_code=status, media_type=JSON)


def error_response(message, status):
    headers = {"retry-after": "1"} if status == 503 else None   # loading or shutting down
    return Response(dumps({"error": message}), status_code=status, media_type=JSON,
                    headers=headers)


class _Handlers:
    """Route handlers sharing one repository, one metrics registry and the body limit."""

    def __init__(self, repo, metrics, max_request_bytes):
        self.repo = repo
        self.metrics = metrics
        self.limit = max_request_bytes

    # -- plumbing -----------------------------------------------------------------------
    def endpoint(self, protocol, fn):
        """Wrap `fn(request) -> Response`: errors become JSON, every request is counted."""
        metrics, repo = self.metrics, self.repo

        async def handler(request):
            start = time.perf_counter()
            try:
                response = await fn(request)
            except RequestError as e:
                response = error_response(e.message, e.status)
            except ClientDisconnect:
                response = error_response("client disconnected", 400)
            except Exception as e:                      # a bug or a failing device
                logger.exception("internal error answering %s %s", request.method,
                                 request.url.path)
                response = error_response(f"internal server error: "
                                          f"{type(e).__name__}: {e}", 500)
            name = request.path_params.get("model", "")
            metrics.observe_request(name if repo.known(name) else "", protocol,
                                    response.status_code, time.perf_counter() - start)
            return response
        return handler

    async def read_body(self, request):
        limit = self.limit
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                raise RequestError(f"Content-Length {brief(declared)} is not a number") from None
            if n > limit:
                raise RequestError(self._too_large(n), 413)
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise RequestError(self._too_large(total, at_least=True), 413)
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "deflate"):
            return self._decompress(body, encoding)
        raise RequestError(f"Content-Encoding {brief(encoding)} is not supported (use gzip, "
                           f"deflate or none)")

    def _decompress(self, body, encoding):
        # gzip; deflate is zlib-wrapped (RFC 9110) or, from some clients, raw.
        tries = [16 + zlib.MAX_WBITS] if encoding == "gzip" else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
        for wbits in tries:
            try:
                out = zlib.decompressobj(wbits).decompress(body, self.limit + 1)
                break
            except zlib.error as e:
                error = e
        else:
            raise RequestError(f"request body is not valid {encoding} data: {error}")
        if len(out) > self.limit:
            raise RequestError(self._too_large(len(out), at_least=True, what="decompressed "
                                               "request body"), 413)
        return out

    def _too_large(self, n, at_least=False, what="request body"):
        mb = self.limit / (1024 * 1024)
        return (f"{what} is {'over ' if at_least else ''}{n} bytes, more than the "
                f"server's limit of {mb:g} MB (--max-request-mb)")

    # -- KServe v2 ----------------------------------------------------------------------
    async def server_metadata(self, request):
        return json_response({"name": SERVER_NAME, "version": _version(),
                              "extensions": EXTENSIONS})

    async def live(self, request):
        return json_response({"live": True})

    async def ready(self, request):
        if self.repo.ready:
            return json_response({"ready": True})
        waiting = [n for n in self.repo.names if n not in {m.name for m in self.repo.loaded()}]
        return Response(dumps({"ready": False, "error": f"models not loaded yet: {waiting}"}),
                        status_code=503, media_type=JSON)

    def _model(self, request):
        p = request.path_params
        return self.repo.get(p["model"], p.get("version"))

    async def model_metadata(self, request):
        return json_response(self._model(request).v2_metadata)

    async def model_config(self, request):
        return json_response(self._model(request).triton_config)

    async def model_ready(self, request):
        p = request.path_params
        try:
            model = self._model(request)
        except RequestError as e:
            if e.status != 503:
                raise
            return Response(dumps({"name": p["model"], "ready": False, "error": e.message}),
                            status_code=503, media_type=JSON)
        return json_response({"name": model.name, "ready": True})

    async def infer(self, request):
        model = self._model(request)
        body = await self.read_body(request)
        header_length = request.headers.get(BINARY_HEADER)
        if len(body) > OFFLOAD_BYTES:
            req = await run_in_threadpool(v2.decode, body, model, header_length)
        else:
            req = v2.decode(body, model, header_length)
        results = await model.infer(req.feeds)
        if sum(a.size for a in results.values()) > OFFLOAD_ELEMENTS:
            content, headers = await run_in_threadpool(v2.encode, model, req, results)
        else:
            content, headers = v2.encode(model, req, results)
        return Response(content, headers=headers)

    # -- TensorFlow Serving -------------------------------------------------------------
    async def tf_status(self, request):
        p = request.path_params
        try:
            self._model(request)
            state, code, message = "AVAILABLE", "OK", ""
        except RequestError as e:
            if e.status != 503:
                raise
            failed = "failed" in e.message
            state = "END" if failed else "LOADING"
            code, message = ("UNKNOWN", e.message) if failed else ("OK", "")
        return json_response({"model_version_status": [{
            "version": p.get("version", VERSION), "state": state,
            "status": {"error_code": code, "error_message": message}}]})

    async def tf_metadata(self, request):
        return json_response(self._model(request).tf_metadata)

    async def tf_predict(self, request):
        model = self._model(request)
        body = await self.read_body(request)
        if len(body) > OFFLOAD_BYTES:
            feeds, rows = await run_in_threadpool(tfserving.decode, body, model)
        else:
            feeds, rows = tfserving.decode(body, model)
        results = await model.infer(feeds)
        if sum(a.size for a in results.values()) > OFFLOAD_ELEMENTS:
            return await run_in_threadpool(json_response, tfserving.encode(model, results, rows))
        return json_response(tfserving.encode(model, results, rows))

    # -- metrics ------------------------------------------------------------------------
    async def metrics_text(self, request):
        return Response(self.metrics.render(self.repo), media_type=METRICS_CONTENT_TYPE)

    def routes(self):
        e = self.endpoint
        get, post = ["GET"], ["POST"]
        table = [              # inference first: routes are matched in this order
            ("/v2/models/{model}/infer", post, "v2", self.infer),
            ("/v1/models/{model}:predict", post, "tfserving", self.tf_predict),
            ("/v2", get, "v2", self.server_metadata),
            ("/v2/health/live", get, "v2", self.live),
            ("/v2/health/ready", get, "v2", self.ready),
            ("/v2/models/{model}", get, "v2", self.model_metadata),
            ("/v2/models/{model}/versions/{version}", get, "v2", self.model_metadata),
            ("/v2/models/{model}/ready", get, "v2", self.model_ready),
            ("/v2/models/{model}/config", get, "v2", self.model_config),
            ("/v2/models/{model}/versions/{version}/config", get, "v2", self.model_config),
            ("/v2/models/{model}/versions/{version}/ready", get, "v2", self.model_ready),
            ("/v2/models/{model}/versions/{version}/infer", post, "v2", self.infer),
            ("/v1/models/{model}/versions/{version}:predict", post, "tfserving",
             self.tf_predict),
            ("/v1/models/{model}", get, "tfserving", self.tf_status),
            ("/v1/models/{model}/versions/{version}", get, "tfserving", self.tf_status),
            ("/v1/models/{model}/metadata", get, "tfserving", self.tf_metadata),
            ("/v1/models/{model}/versions/{version}/metadata", get, "tfserving",
             self.tf_metadata),
            ("/metrics", get, "metrics", self.metrics_text),
        ]
        return [Route(path, e(proto, fn), methods=methods) for path, methods, proto, fn in table]


async def _http_error(request, exc):
    if exc.status_code == 404:
        message = (f"no route {request.url.path!r}; this server answers /v2/..., "
                   f"/v1/models/NAME[:predict|/metadata] and /metrics")
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return Response(dumps({"error": message}), status_code=exc.status_code,
                    media_type=JSON, headers=getattr(exc, "headers", None))


def create_app(models, *, device="auto", max_batch_size=32, batch_timeout_ms=2.0,
               threads=None, max_request_mb=64, background=False):
    """The server as an ASGI app (Starlette), for uvicorn or any ASGI host.

    models: a dict name -> model (a path to .onnx/.h5/.keras, or anything
        `InferenceSession` takes), or a list of 'NAME=PATH' / 'PATH' strings (the name
        defaults to the file stem). Two models with one name raise ConfigError.
    device: 'auto', 'cpu' or 'cuda' (see InferenceSession).
    max_batch_size: rows merged into one session run (1 turns batching off).
    batch_timeout_ms: longest a request waits for batch-mates.
    threads: onnxruntime intra-op threads per model (default: (usable CPUs - 1) / models,
        leaving a core to the event loop).
    max_request_mb: larger bodies are refused with 413.
    background: load models in a thread when the app starts (``/v2/health/ready`` says
        503 until all are loaded) instead of now, in this call.

    The app's `state.repository` holds the models and `state.metrics` the Prometheus
    registry; models are closed (queued requests finished) at ASGI shutdown.
    """
    from modelkit.errors import ConfigError
    if not isinstance(max_request_mb, (int, float)) or isinstance(max_request_mb, bool) \
            or max_request_mb <= 0:
        raise ConfigError(f"max_request_mb must be a positive number, got {max_request_mb!r}")
    metrics = ServerMetrics()
    repo = ModelRepository(models, device=device, threads=threads,
                           max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms,
                           metrics=metrics)
    if not background:
        repo.load_all()
    handlers = _Handlers(repo, metrics, int(max_request_mb * 1024 * 1024))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if background:
            repo.load_in_background()
        try:
            yield
        finally:
            await run_in_threadpool(repo.close)

    app = Starlette(routes=handlers.routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error})
    app.state.repository = repo
    app.state.metrics = metrics
    return app

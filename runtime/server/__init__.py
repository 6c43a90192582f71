"""`modelkit serve`'s HTTP server: KServe v2 (with Triton's binary tensor extension) and
TensorFlow Serving REST over onnxruntime, with adaptive batching and Prometheus metrics.

    from modelkit.runtime.server import create_app
    app = create_app({"mlp": "mlp.onnx"}, max_batch_size=32)   # an ASGI app
    # uvicorn.run(app) -- or `modelkit serve mlp=mlp.onnx`

Modules: `app` (routes, errors, body limits), `models` (names, loading, batchers), `v2`
and `binary` (the v2 codec), `tfserving` (TF Serving codec), `tensors` and `datatypes`
(JSON -> arrays, type names), `metrics` (Prometheus), `host` (uvicorn, signals).
Imports only the runtime and the converters, never the trainer.
"""

from .app import create_app
from .errors import RequestError
from .models import ModelRepository, ServedModel, parse_models

__all__ = ["create_app", "parse_models", "ModelRepository", "ServedModel", "RequestError"]

"""The Ray Serve deployment class: each replica runs `create_app` (the same ASGI app as
`modelkit serve`: endpoints, batching, metrics) behind Ray Serve's HTTP proxy.

Imports Ray at import time; `serve.serve_deployment` imports this module only when called.
"""

from __future__ import annotations

from ray import serve

from modelkit.runtime.server import create_app


@serve.ingress()
class ModelkitServer:
    """One replica: the models (name -> ONNX bytes or path) and create_app's options."""

    def __init__(self, models, options):
        self._models = models
        self._options = options

    def __serve_build_asgi_app__(self):
        # Models load here, in the replica, before it reports healthy; load errors surface
        # as a failed deployment naming the model.
        return create_app(self._models, **self._options)

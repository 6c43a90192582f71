"""The models a server holds: names, loading (eager or in the background), batchers.

`parse_models` turns what `create_app` is given into (name, source) pairs; a
`ServedModel` wraps one `InferenceSession` with its `DynamicBatcher` and the metadata the
protocols answer with; a `ModelRepository` holds them all and knows when every one is
loaded (which is what `/v2/health/ready` reports).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time

import numpy as np

from modelkit.errors import ConfigError, ModelLoadError

from ..batching import DynamicBatcher
from ..session import InferenceSession
from .datatypes import tf_name, v2_name
from .errors import RequestError, brief

logger = logging.getLogger("modelkit.server")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
VERSION = "1"                     # every model is served as version 1
PLATFORM = "onnxruntime_onnx"     # Triton's platform name for ONNX models


def _check_name(name, source):
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(f"Model name {name!r} (for {source}) is not usable in a URL: use "
                          f"letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    return name


def parse_models(models):
    """[(name, source), ...] from a dict name -> source, or a list of 'NAME=PATH' / paths.

    A path's name defaults to its file stem. Two models with one name are a ConfigError.
    Sources in a dict may also be anything `InferenceSession` accepts (or a session).
    """
    if isinstance(models, (str, os.PathLike)):
        models = [models]
    pairs = []
    if isinstance(models, dict):
        pairs = [(_check_name(name, src), src) for name, src in models.items()]
    elif isinstance(models, (list, tuple)):
        for item in models:
            if not isinstance(item, (str, os.PathLike)):
                raise ConfigError(f"Models are given as 'NAME=PATH' or 'PATH' strings (or a "
                                  f"dict name -> path), got {type(item).__name__}")
            text = os.fspath(item)
            head, sep, tail = text.partition("=")
            if sep and head and "/" not in head and os.sep not in head:
                pairs.append((_check_name(head, text), tail))
            else:
                stem = os.path.splitext(os.path.basename(text))[0]
                pairs.append((_check_name(stem, text), text))
    else:
        raise ConfigError(f"models must be a dict name -> path or a list of 'NAME=PATH' "
                          f"strings, got {type(models).__name__}")
    if not pairs:
        raise ConfigError("No models to serve: give at least one model path")
    seen = {}
    for name, src in pairs:
        if name in seen:
            raise ConfigError(f"Two models are named {name!r} ({_describe(seen[name])} and "
                              f"{_describe(src)}); name them apart with NAME=PATH")
        seen[name] = src
    for name, src in pairs:
        if isinstance(src, (str, os.PathLike)):
            path = os.fspath(src)
            if not os.path.isfile(path):
                raise ModelLoadError(f"Model {name!r}: file not found: {path}")
    return pairs


def _describe(src):
    return os.fspath(src) if isinstance(src, (str, os.PathLike)) else type(src).__name__


def default_threads(n_models):
    """Intra-op threads per model session: the usable CPUs but one (the event loop's),
    shared among the models, so all of them running at once do not oversubscribe the
    machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, (cpus - 1) // max(1, n_models))


class _ServingSession(InferenceSession):
    """An InferenceSession tuned for serving: one inter-op thread and no spinning intra-op
    threads, so idle workers leave the CPU to the event loop and the other models."""

    def _options(self, ort):
        so = super()._options(ort)
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 4     # a bad request is answered, not logged by onnxruntime
        return so


def open_session(source, device="auto", threads=None):
    """An InferenceSession for a served model (sessions given ready-made are kept)."""
    if isinstance(source, InferenceSession):
        return source
    path = os.fspath(source) if isinstance(source, os.PathLike) else source
    if isinstance(path, str) and path.lower().endswith(".keras"):
        path = _keras_to_onnx_bytes(path)
    return _ServingSession(path, device=device, intra_op_threads=threads)


def _keras_to_onnx_bytes(path):
    """A .keras archive as ONNX bytes, through the converters (IR, then ONNX export)."""
    from modelkit.converters import hdf5
    from modelkit.converters import onnx as onnx_conv
    return onnx_conv.export(hdf5.load_keras_archive(path)).SerializeToString()


def _io_meta(spec):
    return {"name": spec.name, "datatype": v2_name(spec.dtype, spec.onnx_type),
            "shape": [-1 if d is None else int(d) for d in spec.shape]}


def _triton_io(spec):
    name = v2_name(spec.dtype, spec.onnx_type)
    return {"name": spec.name, "data_type": "TYPE_" + ("STRING" if name == "BYTES" else name),
            "dims": [-1 if d is None else int(d) for d in spec.shape]}


def _tf_tensor_info(spec):
    return {"dtype": tf_name(spec.dtype), "name": spec.name,
            "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""}
                                     for d in spec.shape],
                             "unknown_rank": False}}


class ServedModel:
    """One model: its session, its batcher and what the protocols say about it."""

    def __init__(self, name, session, max_batch_size=32, batch_timeout_ms=2.0, metrics=None,
                 load_seconds=0.0):
        self.name = name
        self.session = session
        self.inputs = session.inputs
        self.outputs = session.outputs
        self.input_specs = {s.name: s for s in self.inputs}
        self.input_datatypes = {s.name: v2_name(s.dtype, s.onnx_type) for s in self.inputs}
        self.output_names = [s.name for s in self.outputs]
        self.output_set = frozenset(self.output_names)
        self.load_seconds = load_seconds
        observer = metrics.batch_observer(name) if metrics is not None else None
        self.batcher = DynamicBatcher(session, max_batch_size=max_batch_size,
                                      max_delay_ms=batch_timeout_ms, observer=observer)
        self.v2_metadata = {"name": name, "versions": [VERSION], "platform": PLATFORM,
                            "inputs": [_io_meta(s) for s in self.inputs],
                            "outputs": [_io_meta(s) for s in self.outputs]}
        # Triton's model configuration (GET .../config), for Triton tools; dims include
        # the batch dim, so max_batch_size is 0 in Triton's sense.
        self.triton_config = {"name": name, "platform": PLATFORM, "backend": "onnxruntime",
                              "max_batch_size": 0,
                              "input": [_triton_io(s) for s in self.inputs],
                              "output": [_triton_io(s) for s in self.outputs]}
        if self.batcher.merges_requests:
            self.triton_config["dynamic_batching"] = {
                "max_queue_delay_microseconds": int(batch_timeout_ms * 1000)}
        self.tf_metadata = {
            "model_spec": {"name": name, "signature_name": "", "version": VERSION},
            "metadata": {"signature_def": {"signature_def": {"serving_default": {
                "inputs": {s.name: _tf_tensor_info(s) for s in self.inputs},
                "outputs": {s.name: _tf_tensor_info(s) for s in self.outputs},
                "method_name": "tensorflow/serving/predict"}}}}}

    async def infer(self, feeds):
        """{output name: array} for `feeds` (validated arrays), through the batcher.

        A feed the session refuses raises RequestError 400 at once (before batching);
        onnxruntime refusing this request's values (run alone) is a 400 too.
        """
        from modelkit.errors import ModelkitError
        if self.batcher.closed:
            raise RequestError(f"model {self.name!r} is shutting down", 503)
        try:
            future = self.batcher.submit(feeds, loop=asyncio.get_running_loop())
        except ModelkitError as e:
            raise RequestError(f"model {self.name!r}: {e}") from None
        try:
            return await future
        except ModelkitError as e:
            if _is_request_fault(e):
                raise RequestError(f"model {self.name!r} cannot run on these inputs: "
                                   f"{e}") from None
            raise

    def describe(self):
        ins = ", ".join(f"{s.name} {v2_name(s.dtype, s.onnx_type)}{_dims(s)}"
                        for s in self.inputs)
        outs = ", ".join(f"{s.name} {v2_name(s.dtype, s.onnx_type)}{_dims(s)}"
                         for s in self.outputs)
        return f"inputs {ins}; outputs {outs}; on {self.session.device}"

    def close(self):
        self.batcher.close()


def _dims(spec):
    return "[" + ", ".join("-1" if d is None else str(d) for d in spec.shape) + "]"


def _is_request_fault(exc):
    """Whether onnxruntime failed because of this request's values or sizes (it ran
    alone): INVALID_ARGUMENT (a Gather index out of range), or a node that cannot compute
    on these inputs (a Reshape that does not fit); not a failure to allocate memory."""
    cause = exc.__cause__
    kind = type(cause).__name__ if cause is not None else ""
    text = str(exc)
    if "allocat" in text.lower():
        return False
    if kind == "InvalidArgument" or "INVALID_ARGUMENT" in text:
        return True
    return kind in ("Fail", "RuntimeException") and "while running" in text


class ModelRepository:
    """Every served model by name; loads them now or in a background thread.

    `ready` is True once every model is loaded. A model still loading answers 503; one
    that failed to load answers 503 with the load error.
    """

    def __init__(self, models, device="auto", threads=None, max_batch_size=32,
                 batch_timeout_ms=2.0, metrics=None):
        if not isinstance(max_batch_size, (int, np.integer)) or isinstance(max_batch_size, bool) \
                or max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        if not isinstance(batch_timeout_ms, (int, float)) or batch_timeout_ms < 0:
            raise ConfigError(f"batch_timeout_ms must be a non-negative number, "
                              f"got {batch_timeout_ms!r}")
        if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
            raise ConfigError(f"threads must be a positive integer, got {threads!r}")
        self.specs = parse_models(models)
        self.names = [n for n, _ in self.specs]
        self._device = device
        self._threads = threads or default_threads(len(self.specs))
        self._max_batch_size = int(max_batch_size)
        self._batch_timeout_ms = float(batch_timeout_ms)
        self._metrics = metrics
        self._models = {}
        self._errors = {}
        self._loader = None
        self._lock = threading.Lock()
        self._closed = False

    # -- loading ------------------------------------------------------------------------
    def load_all(self):
        """Load every model not loaded yet, in this thread; on the first failure close
        the models loaded so far and raise it."""
        for name, source in self.specs:
            if name in self._models:
                continue
            try:
                self._load(name, source)
            except Exception as e:
                self._errors[name] = e
                self.close()
                raise

    def load_in_background(self):
        """Start loading in a daemon thread (returns at once)."""
        if self._loader is None and not self.ready:
            self._loader = threading.Thread(target=self._load_quietly, daemon=True,
                                            name="modelkit-model-loader")
            self._loader.start()

    def _load_quietly(self):
        for name, source in self.specs:
            if name in self._models:
                continue
            try:
                self._load(name, source)
            except Exception as e:           # reported on the model's routes
                self._errors[name] = e
                logger.error("model %r failed to load: %s", name, e)

    def _load(self, name, source):
        start = time.perf_counter()
        session = open_session(source, self._device, self._threads)
        seconds = time.perf_counter() - start
        model = ServedModel(name, session, self._max_batch_size, self._batch_timeout_ms,
                            self._metrics, seconds)
        if self._metrics is not None:
            self._metrics.model_loaded(name, seconds)
        with self._lock:
            if self._closed:                  # shut down while this one was loading
                model.close()
                return model
            self._models[name] = model
        return model

    # -- lookups ------------------------------------------------------------------------
    @property
    def ready(self):
        return len(self._models) == len(self.specs)

    def loaded(self):
        """The loaded models, in the order given."""
        return [self._models[n] for n in self.names if n in self._models]

    def known(self, name):
        return name in self.names

    def get(self, name, version=None):
        """The ServedModel `name`; RequestError 404 when unknown, 503 while not loaded."""
        model = self._models.get(name)
        if model is None:
            if name not in self.names:
                raise RequestError(f"model {brief(name)} not found; this server has "
                                   f"{self.names}", 404)
            err = self._errors.get(name)
            if err is not None:
                raise RequestError(f"model {name!r} failed to load: {err}", 503)
            raise RequestError(f"model {name!r} is still loading", 503)
        if version is not None and version != VERSION:
            raise RequestError(f"model {name!r} has no version {brief(version)}; it is served "
                               f"as version {VERSION}", 404)
        return model

    def close(self):
        """Close every loaded model (queued requests finish); later loads are dropped."""
        with self._lock:
            self._closed = True
            models = self.loaded()
        for model in models:
            model.close()

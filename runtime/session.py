"""`InferenceSession`: run an ONNX model (or anything convertible to one) on onnxruntime.

Sources
-------
An ``.onnx`` path (handed to onnxruntime as a path, so external data works), any other model
file ``converters.formats`` reads (``.h5``/``.hdf5``, ``.keras``: read to the IR, then
``converters.onnx.export``), an
``onnx.ModelProto``, serialized ONNX ``bytes``, a ``modelkit.ir.Graph`` or any object with
``to_ir()`` (a modelkit model; exported through ``converters.onnx.export``).

Devices
-------
``"cpu"``: CPUExecutionProvider. ``"cuda"`` (or ``"cuda:N"``): CUDAExecutionProvider on
GPU N, and a ``RuntimeSessionError`` saying what is missing when it cannot actually start
(onnxruntime-gpu lists the CUDA provider even on machines with no GPU or no CUDA
libraries, and then silently runs on the CPU). ``"auto"``: CUDA when it starts, else the
CPU, with one INFO line on the ``modelkit.runtime`` logger saying why.

Before asking onnxruntime for CUDA, modelkit checks, once per process, that the NVIDIA
driver answers with at least one GPU and that onnxruntime's CUDA provider library loads
(after ``onnxruntime.preload_dlls()``, whose messages are captured, not printed), so a
machine without a GPU never sees onnxruntime's own C++ error print.

Input validation (before every run, cheap)
------------------------------------------
* Names: every model input must be given, and nothing else (``RuntimeSessionError``).
* Shapes (``ShapeError``): the rank must match; dims fixed in the model must match;
  inputs whose leading dim is dynamic share one batch size (unless the model names their
  leading dims with two different symbols, which makes them independent).
* Dtypes (``DTypeError``): an array whose dtype differs from the model's is cast when
  ``np.can_cast(given, expected, "same_kind")`` holds -- float64 -> float32 and
  float16 -> float32 (as Keras does), ints and bools -> floats, and int -> narrower int
  (int64 -> int32) only when every value fits the narrower type. Anything else is refused,
  notably float -> int and float -> bool: rounding is the caller's decision. String inputs
  accept str/bytes/object arrays.
* Indices (``RuntimeSessionError``): an integer input that indexes a constant table (an
  Embedding's ids reaching a ``Gather``) must lie in the table's range on every device;
  CUDA's Gather does not check and would answer with arbitrary numbers (`index_bounds`).
  OrtValues given to ``run_on_device`` are not read, so not checked.

Batching: ``predict(x, batch_size=n)`` runs consecutive slices of at most n rows (when the
model's batch dim is dynamic) and concatenates the outputs; the inputs are validated and
cast once for the whole array, not per batch.

Running: `run`/`predict` feed numpy arrays and return numpy arrays on every device
(onnxruntime copies to and from the GPU itself; measured on an H100 this beats per-call IO
binding by 8-20 us). `run_on_device` uses IO binding: inputs may be OrtValues already on
the device, and outputs stay there as OrtValues (no copy back) for chaining or serving.
On CUDA, TF32 is off so float32 results match the CPU's to ~1e-6.

Thread safety: one session may be used from many threads at once. Its state is fixed at
construction; per-run objects (the IO binding) are created per call.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass

import numpy as np

from modelkit.errors import (ConfigError, DTypeError, ModelkitError, ModelLoadError,
                             RuntimeSessionError, ShapeError)
from modelkit.converters.keras_to_onnx import convert_keras_file

from .batching import concat_batches, iter_batches
from .devices import cuda_status, parse_device
from .index_bounds import check_indices, index_bounds, load_for_bounds

__all__ = ["InferenceSession", "IOSpec", "cuda_status"]

logger = logging.getLogger("modelkit.runtime")

OPTIMIZATION_LEVELS = ("all", "extended", "basic", "disable")

_ONNX_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


@dataclass(frozen=True)
class IOSpec:
    """One model input or output.

    `shape` has None for dynamic dims; `dim_names` holds the model's symbolic name of each
    dynamic dim (or None); `dtype` is a numpy dtype (object for strings), or None for
    types numpy cannot hold (bfloat16, sequences, maps); `onnx_type` is onnxruntime's
    spelling, e.g. ``"tensor(float)"``.
    """

    name: str
    shape: tuple
    dtype: np.dtype | None
    onnx_type: str = ""
    dim_names: tuple = ()

    @property
    def rank(self):
        return len(self.shape)

    @property
    def batch_dynamic(self):
        """True when the leading (batch) dim is dynamic."""
        return bool(self.shape) and self.shape[0] is None

    def __str__(self):
        dt = self.dtype.name if self.dtype is not None else self.onnx_type
        return f"{self.name}: {_fmt_shape(self.shape)} {dt}"


def _fmt_shape(shape):
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _spec_from_nodearg(arg):
    shape, names = [], []
    for d in (arg.shape or []):
        if isinstance(d, int) and d >= 0:
            shape.append(d)
            names.append(None)
        else:
            shape.append(None)
            names.append(d if isinstance(d, str) and d else None)
    np_type = _ONNX_TYPES.get(arg.type)
    return IOSpec(arg.name, tuple(shape), np.dtype(np_type) if np_type else None,
                  arg.type, tuple(names))


def _ort():
    import onnxruntime
    return onnxruntime


# -- sources ----------------------------------------------------------------------------

def _load_source(source):
    """(model, description): model is a path str or serialized bytes for onnxruntime.
    Files are checked first (regular file, a real ONNX model); an .h5/.keras file is
    converted, and any failure on the way is a ModelLoadError naming the file."""
    from modelkit.converters.onnx.reading import check_model_proto, parse_model, read_model
    if isinstance(source, (str, os.PathLike)):
        from modelkit.converters import formats
        path = os.fspath(source)
        fmt = formats.format_of(path)
        if fmt is formats.ONNX:
            read_model(path)
            return path, path
        return convert_keras_file(path).SerializeToString(), path
    if isinstance(source, (bytes, bytearray, memoryview)):
        parse_model(source, "<onnx bytes>")
        return bytes(source), "<onnx bytes>"
    if type(source).__name__ == "ModelProto" and hasattr(source, "SerializeToString"):
        name = source.graph.name
        where = f"<ModelProto {name}>" if name else "<ModelProto>"
        check_model_proto(source, where)
        return source.SerializeToString(), where
    from modelkit.ir import Graph
    if isinstance(source, Graph) or hasattr(source, "to_ir"):
        from modelkit.converters import onnx as onnx_conv
        name = getattr(source, "name", "") or ""
        return onnx_conv.export(source).SerializeToString(), f"<{type(source).__name__} {name}>"
    raise ConfigError(f"InferenceSession source must be a model file path (.onnx, .h5, "
                      f".keras), an onnx.ModelProto, ONNX bytes, a modelkit.ir.Graph or a "
                      f"model with to_ir(); got {type(source).__name__}")


def _ort_error_is_load_error(ort, exc):
    C = ort.capi.onnxruntime_pybind11_state
    kinds = tuple(getattr(C, n) for n in ("InvalidProtobuf", "InvalidGraph", "NoSuchFile",
                                          "NotImplemented") if hasattr(C, n))
    return isinstance(exc, kinds)


# -- the session ------------------------------------------------------------------------

class InferenceSession:
    """An onnxruntime session with modelkit's input checks, batching and device choice.

    >>> sess = InferenceSession("m.onnx", device="cpu")
    >>> y = sess.predict(x)                     # one output -> array, several -> list
    >>> outs = sess.run({"input_1": x})         # -> {output name: array}
    """

    def __init__(self, source, device="auto", intra_op_threads=None, optimization_level="all"):
        ort = _ort()
        kind, device_id = parse_device(device)
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise ConfigError(f"optimization_level must be one of {OPTIMIZATION_LEVELS}, "
                              f"got {optimization_level!r}")
        if intra_op_threads is not None and (
                not isinstance(intra_op_threads, (int, np.integer))
                or isinstance(intra_op_threads, bool) or intra_op_threads < 0):
            raise ConfigError(f"intra_op_threads must be a non-negative int or None, "
                              f"got {intra_op_threads!r}")
        self._intra_op_threads = intra_op_threads
        self._optimization_level = optimization_level
        model, self.source = _load_source(source)

        sess = self._open(ort, model, kind, device_id)
        self._sess = sess
        with contextlib.suppress(Exception):
            sess.disable_fallback()   # never switch providers (and print) behind our back
        self._providers = list(sess.get_providers())
        self._device = "cuda" if self._providers[0] == "CUDAExecutionProvider" else "cpu"
        self._device_id = device_id
        self._inputs = [_spec_from_nodearg(a) for a in sess.get_inputs()]
        self._outputs = [_spec_from_nodearg(a) for a in sess.get_outputs()]
        self._input_names = [s.name for s in self._inputs]
        self._output_names = [s.name for s in self._outputs]
        self._input_set = frozenset(self._input_names)
        self._spec_by_name = {s.name: s for s in self._inputs}
        self._output_index = {n: i for i, n in enumerate(self._output_names)}
        # Inputs that index a table (an Embedding's ids): checked before running, as CUDA's
        # Gather does not check (see index_bounds.py).
        bounds = (index_bounds(load_for_bounds(model))
                  if any(s.dtype is not None and s.dtype.kind in "iu" for s in self._inputs)
                  else {})
        # Precomputed checks: (name, spec, rank, ((axis, size), ...) fixed dims, dtype,
        # IndexBound or None).
        self._checks = [(s.name, s, s.rank,
                         tuple((i, d) for i, d in enumerate(s.shape) if d is not None),
                         s.dtype, bounds.get(s.name)) for s in self._inputs]
        self._batch_inputs = [(s.name, s.dim_names[0]) for s in self._inputs if s.batch_dynamic]
        self._batch_dynamic = bool(self._inputs) and all(s.batch_dynamic for s in self._inputs)
        # Inputs are fully validated here, so plain runs call the C++ session directly:
        # onnxruntime's Python wrapper re-checks input names and OrtValue ownership on every
        # call (about 1 us, the whole overhead budget at batch 1). Falls back to the public
        # run() if a future onnxruntime drops the attribute.
        inner = getattr(sess, "_sess", None)
        self._fast_run = getattr(inner, "run", None) if inner is not None else None

    # -- construction helpers -----------------------------------------------------------
    def _open(self, ort, model, kind, device_id):
        """The onnxruntime session for device `kind` ('cpu', 'cuda' or 'auto')."""
        cpu = ["CPUExecutionProvider"]
        if kind == "cpu":
            return self._create(ort, model, cpu)
        problems = cuda_status()
        if kind == "cuda":
            if problems:
                raise RuntimeSessionError("device='cuda' cannot start: " + "; ".join(problems)
                                          + ". Use device='cpu' or device='auto' to run on the CPU")
            sess = self._create(ort, model, self._cuda_providers(device_id))
            if sess.get_providers()[0] != "CUDAExecutionProvider":
                raise RuntimeSessionError(
                    "device='cuda' cannot start: onnxruntime created the session without "
                    "CUDAExecutionProvider although a GPU and the CUDA libraries were found; "
                    "onnxruntime's log above says why (check CUDA/cuDNN versions)")
            return sess
        if problems:                                  # auto, without a usable GPU
            if "CUDAExecutionProvider" in ort.get_available_providers():
                logger.info("CUDA unavailable (%s); running on CPUExecutionProvider",
                            "; ".join(problems))
            return self._create(ort, model, cpu)
        sess = self._create(ort, model, self._cuda_providers(device_id))
        if sess.get_providers()[0] != "CUDAExecutionProvider":
            logger.info("CUDAExecutionProvider did not start (see onnxruntime's log); "
                        "running on CPUExecutionProvider")
        return sess

    def _options(self, ort):
        so = ort.SessionOptions()
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        so.graph_optimization_level = levels[self._optimization_level]
        so.log_severity_level = 4      # fatal only: errors reach the user as exceptions
        if self._intra_op_threads:
            so.intra_op_num_threads = int(self._intra_op_threads)
        return so

    @staticmethod
    def _cuda_providers(device_id):
        # TF32 off: float32 models give float32 results on CUDA too (TF32 matmuls differ
        # from the CPU by ~1e-3, far beyond the 1e-5 parity modelkit promises).
        # device_id only when not 0: onnxruntime 1.31 warns on stderr whenever it is given.
        options = {"use_tf32": "0"}
        if device_id:
            options["device_id"] = str(device_id)
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]

    def _create(self, ort, model, providers):
        try:
            # onnxruntime's wrapper prints "EP Error ... Falling back" on stdout before it
            # retries; the exception (if any) says it all, so that print is held back
            with contextlib.redirect_stdout(io.StringIO()):
                return ort.InferenceSession(model, self._options(ort), providers=providers)
        except Exception as e:
            msg = " ".join(str(e).split())
            if _ort_error_is_load_error(ort, e):
                raise ModelLoadError(f"Cannot load ONNX model {self.source}: {msg}") from e
            raise RuntimeSessionError(f"onnxruntime cannot create a session for "
                                      f"{self.source}: {msg}") from e

    # -- properties ---------------------------------------------------------------------
    @property
    def providers(self):
        """The execution providers actually in use, best first."""
        return list(self._providers)

    @property
    def device(self):
        """'cuda' or 'cpu': where the session runs."""
        return self._device

    @property
    def input_names(self):
        return list(self._input_names)

    @property
    def output_names(self):
        return list(self._output_names)

    @property
    def inputs(self):
        """IOSpec of each input, in the model's order."""
        return list(self._inputs)

    @property
    def outputs(self):
        """IOSpec of each output, in the model's order."""
        return list(self._outputs)

    @property
    def ort_session(self):
        """The underlying onnxruntime.InferenceSession."""
        return self._sess

    def __repr__(self):
        ins = ", ".join(map(str, self._inputs))
        outs = ", ".join(map(str, self._outputs))
        return (f"InferenceSession({self.source!r}, device={self._device!r}, "
                f"inputs=[{ins}], outputs=[{outs}])")

    # -- validation ---------------------------------------------------------------------
    def _name_error(self, feeds):
        given = list(feeds)
        for k in given:
            if k not in self._input_set:
                raise RuntimeSessionError(f"Unknown input {k!r}: the model's inputs are "
                                          f"{self._input_names}")
        missing = [n for n in self._input_names if n not in feeds]
        raise RuntimeSessionError(f"Missing input {missing[0]!r}: the model's inputs are "
                                  f"{self._input_names}, got {given}")

    def _prepare(self, feeds):
        """Validate `feeds` (a dict) and return {name: array} in the model's input order,
        cast where the dtype rules allow."""
        if not isinstance(feeds, dict):
            raise RuntimeSessionError(f"run() takes a dict of input name -> array, "
                                      f"got {type(feeds).__name__}")
        if len(feeds) != len(self._checks):
            self._name_error(feeds)
        out = {}
        for name, spec, rank, fixed, dtype, bound in self._checks:
            try:
                x = feeds[name]
            except KeyError:
                self._name_error(feeds)
            if type(x) is not np.ndarray:
                x = _as_array(name, x, dtype)
            if dtype is not None and x.dtype != dtype:
                x = _cast(spec, x)
            if x.ndim != rank:
                raise ShapeError(f"Input {name!r} must have rank {rank} (expected shape "
                                 f"{_fmt_shape(spec.shape)}), got rank {x.ndim} "
                                 f"(shape {_fmt_shape(x.shape)})")
            shape = x.shape
            for axis, size in fixed:
                if shape[axis] != size:
                    raise ShapeError(f"Input {name!r} dimension {axis} must be {size} (expected "
                                     f"shape {_fmt_shape(spec.shape)}), got {shape[axis]} "
                                     f"(shape {_fmt_shape(shape)})")
            if not x.size:     # onnxruntime aborts the process on empty tensors in some ops
                raise ShapeError(f"Input {name!r} is empty (shape {_fmt_shape(shape)}); "
                                 f"nothing to predict")
            if bound is not None:
                check_indices(name, x, bound)
            out[name] = x
        if len(self._batch_inputs) > 1:
            self._check_batch(out)
        return out

    def _check_batch(self, feeds):
        first, sym0 = self._batch_inputs[0]
        n0 = feeds[first].shape[0]
        for name, sym in self._batch_inputs[1:]:
            n = feeds[name].shape[0]
            if n != n0 and not (sym0 and sym and sym0 != sym):
                raise ShapeError(f"Inputs have different batch sizes: {first!r} has {n0}, "
                                 f"{name!r} has {n}")

    def _to_feeds(self, x):
        names = self._input_names
        if isinstance(x, dict):
            return x
        if isinstance(x, (list, tuple)):
            if len(names) > 1:
                if len(x) != len(names):
                    raise RuntimeSessionError(f"The model has {len(names)} inputs {names}, "
                                              f"got a list of {len(x)} items")
                return dict(zip(names, x))
            if len(x) == 1 and isinstance(x[0], np.ndarray):
                return {names[0]: x[0]}       # [array] for a single-input model, as Keras
            return {names[0]: x}              # a nested list is the array itself
        if len(names) == 1:
            return {names[0]: x}
        raise RuntimeSessionError(f"The model has {len(names)} inputs {names}; pass a list "
                                  f"(in that order) or a dict by name, not a single "
                                  f"{type(x).__name__}")

    @property
    def batch_dynamic(self):
        """True when every input's leading (batch) dim is dynamic, so rows can be batched."""
        return self._batch_dynamic

    def validate(self, x):
        """Check and cast inputs as `predict`/`run` do (array, list or dict); return
        {input name: array} in the model's input order, ready for `run`."""
        return self._prepare(self._to_feeds(x))

    # -- running ------------------------------------------------------------------------
    def _run_list(self, feeds, names):
        """Run validated feeds; return a list of arrays ordered like `names`."""
        try:
            if self._fast_run is not None:
                return self._fast_run(names, feeds, None)
            return self._sess.run(names, feeds)
        except (ModelkitError, MemoryError):
            raise
        except Exception as e:
            msg = " ".join(str(e).split())
            raise RuntimeSessionError(f"onnxruntime failed to run {self.source}: {msg}") from e

    def run(self, feeds, output_names=None):
        """Run once on a dict of name -> array; return {output name: array}.

        `output_names` limits the outputs computed and copied back (default: all).
        """
        names = self._check_output_names(output_names)
        outs = self._run_list(self._prepare(feeds), names)
        return dict(zip(names, outs))

    def _check_output_names(self, output_names):
        if output_names is None:
            return self._output_names
        names = list(output_names)
        for n in names:
            if n not in self._output_index:
                raise RuntimeSessionError(f"Unknown output {n!r}: the model's outputs are "
                                          f"{self._output_names}")
        return names

    def run_on_device(self, feeds, output_names=None):
        """Run once with IO binding; return {output name: onnxruntime.OrtValue} left on the
        session's device (GPU memory on CUDA), so nothing is copied back to the host.

        `feeds` values may be numpy arrays (validated and cast as in `run`, copied to the
        device once) or OrtValues (already anywhere; checked for shape and exact dtype).
        Chain outputs into another session's `run_on_device`, or call `.numpy()` on one to
        copy it to the host. For numpy in and numpy out, `run` is faster: measured on an
        H100, binding per call costs 8-20 us more than onnxruntime's own copies.
        """
        names = self._check_output_names(output_names)
        ort = _ort()
        if not isinstance(feeds, dict):
            raise RuntimeSessionError(f"run_on_device() takes a dict of input name -> array "
                                      f"or OrtValue, got {type(feeds).__name__}")
        device_values = {k: v for k, v in feeds.items() if isinstance(v, ort.OrtValue)}
        if device_values:
            proxies = dict(feeds)
            for k, v in device_values.items():
                proxies[k] = _ortvalue_proxy(k, v, self._spec_by_name.get(k))
            prepared = self._prepare(proxies)
            prepared.update((k, v) for k, v in device_values.items())
        else:
            prepared = self._prepare(feeds)
        # A fresh binding per call: IOBinding objects are not safe to share across threads.
        binding = self._sess.io_binding()
        try:
            for name, x in prepared.items():
                if name in device_values:
                    binding.bind_ortvalue_input(name, x)
                else:
                    binding.bind_cpu_input(name, np.ascontiguousarray(x))
            for name in names:
                binding.bind_output(name, self._device, self._device_id)
            self._sess.run_with_iobinding(binding)
            outs = binding.get_outputs()
        except (ModelkitError, MemoryError):
            raise
        except Exception as e:
            msg = " ".join(str(e).split())
            raise RuntimeSessionError(f"onnxruntime failed to run {self.source}: {msg}") from e
        return dict(zip(names, outs))

    def predict(self, x, batch_size=None):
        """Keras-style prediction.

        `x`: an array (single-input model), a list of arrays in input order, or a dict by
        input name. Returns one array for a single-output model, else a list in output
        order. With `batch_size`, inputs longer than it run in consecutive batches (when
        the model's batch dim is dynamic) and the outputs are concatenated.
        """
        feeds = self._prepare(self._to_feeds(x))
        names = self._output_names
        if batch_size is not None:
            if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
                    or batch_size < 1:
                raise ConfigError(f"batch_size must be a positive integer or None, "
                                  f"got {batch_size!r}")
            if self._batch_dynamic:
                total = next(iter(feeds.values())).shape[0]
                if total > batch_size:
                    results = [self._run_list(b, names)
                               for b in iter_batches(feeds, int(batch_size), total)]
                    outs = concat_batches(results, names)
                    return outs[0] if len(outs) == 1 else outs
        outs = self._run_list(feeds, names)
        return outs[0] if len(outs) == 1 else outs

    __call__ = predict


def _ortvalue_proxy(name, value, spec):
    """A zero-byte numpy stand-in with an OrtValue's shape and dtype, for validation."""
    np_type = _ONNX_TYPES.get(value.data_type())
    if np_type is None:
        raise DTypeError(f"Input {name!r}: OrtValue of type {value.data_type()} is not supported")
    dtype = np.dtype(np_type)
    if spec is not None and spec.dtype is not None and dtype != spec.dtype:
        raise DTypeError(f"Input {name!r} expects {spec.dtype.name}, got an OrtValue of "
                         f"{dtype.name}; OrtValues are not cast, convert before binding")
    shape = tuple(value.shape())
    return np.lib.stride_tricks.as_strided(np.zeros((), dtype), shape=shape,
                                           strides=(0,) * len(shape))


# -- dtype rules ------------------------------------------------------------------------

_cast_ok_cache = {}


def _as_array(name, x, dtype):
    try:
        if dtype is not None and dtype.kind == "O":
            return np.asarray(x, dtype=object)
        return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ShapeError(f"Input {name!r} cannot be made into an array: {e}") from None


def _cast(spec, x):
    src, dst = x.dtype, spec.dtype
    name = spec.name
    if dst.kind == "O":
        if src.kind in "OSU":
            return x.astype(object) if src.kind != "O" else x
        raise DTypeError(f"Input {name!r} expects strings, got {src.name}")
    key = (src, dst)
    ok = _cast_ok_cache.get(key)
    if ok is None:
        ok = src.kind in "biuf" and np.can_cast(src, dst, "same_kind")
        _cast_ok_cache[key] = ok
    if not ok:
        if src.kind == "f" and dst.kind in "iub":
            why = (f"floating-point values are not cast to {dst.name} implicitly; round and "
                   f"convert them first (e.g. x.astype('{dst.name}'))")
        elif src.kind in "OSU":
            why = "non-numeric values cannot be fed to a numeric input"
        else:
            why = f"{src.name} cannot be cast to {dst.name} safely ('same_kind' rule)"
        raise DTypeError(f"Input {name!r} expects {dst.name}, got {src.name}: {why}")
    if src.kind in "iu" and dst.kind in "iu" and not np.can_cast(src, dst, "safe") and x.size:
        info = np.iinfo(dst)
        lo, hi = x.min(), x.max()
        if lo < info.min or hi > info.max:
            raise DTypeError(f"Input {name!r} expects {dst.name}, got {src.name} with values "
                             f"in [{lo}, {hi}] outside {dst.name}'s range "
                             f"[{info.min}, {info.max}]")
    return x.astype(dst)

"""What `compile` was given, resolved per model output: losses, loss weights, metrics."""

import numpy as np

from ..backend import functions as F
from ..backend.tensor import Tensor
from ..errors import ConfigError


def _per_output(value, names, what, model_name, default=None):
    """A single value, a list (one per output) or a dict keyed by output name -> list."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ConfigError(f"Model {model_name!r}: {what} has keys {unknown} that are not "
                              f"output names; outputs are {names}")
        return [value.get(n, default) for n in names]
    if isinstance(value, (list, tuple)) and not (what == "metrics" and len(names) == 1):
        if len(value) != len(names):
            raise ConfigError(f"Model {model_name!r}: {what} is a list of {len(value)} but the "
                              f"model has {len(names)} output(s) {names}")
        return list(value)
    return [value] * len(names)


class CompiledLoss:
    """Per-output loss functions and weights; computes the total training loss."""

    def __init__(self, loss, loss_weights, output_names, model_name):
        from .. import losses
        self.output_names = list(output_names)
        specs = _per_output(loss, self.output_names, "loss", model_name)
        self.fns = [None if s is None else _per_sample(losses.get(s)) for s in specs]
        weights = _per_output(loss_weights, self.output_names, "loss_weights", model_name,
                              default=1.0) if loss_weights is not None else \
            [1.0] * len(self.output_names)
        self.weights = [1.0 if w is None else float(w) for w in weights]
        self.fn_names = [_fn_name(f) for f in self.fns]

    @property
    def needs_targets(self):
        return any(f is not None for f in self.fns)

    def output_loss_names(self):
        if len(self.output_names) == 1:
            return []
        return [f"{n}_loss" for n, f in zip(self.output_names, self.fns) if f is not None]

    def __call__(self, ys, outs, sample_weights=None):
        total = None
        per_output = []
        for i, (fn, w) in enumerate(zip(self.fns, self.weights)):
            if fn is None:
                continue
            y_pred = outs[i]
            if ys is None:
                raise ConfigError(f"Output {self.output_names[i]!r} has a loss but no target "
                                  "was given")
            y_true = ys[i]
            sw = None if sample_weights is None else sample_weights[i]
            value = reduce_loss(fn(y_true, y_pred), sw)
            per_output.append(float(value.value))
            weighted = value if w == 1.0 else F.multiply(value, np.asarray(w, value.dtype))
            total = weighted if total is None else F.add(total, weighted)
        return total, [None if total is None else float(total.value)] + per_output


def _per_sample(fn):
    """Loss instances reduce by themselves; the engine wants their per-sample values so
    that sample weights apply once (Keras does the same through `Loss.call`)."""
    from .. import losses
    if isinstance(fn, losses.Loss):
        return _Named(fn.call, getattr(fn, "fn", None), type(fn).__name__)
    return fn


class _Named:
    """A per-sample loss callable that remembers the function it wraps (for 'accuracy')."""

    def __init__(self, call, fn, name):
        self._call, self.fn, self.__name__ = call, fn, name

    def __call__(self, y_true, y_pred):
        return self._call(y_true, y_pred)


def reduce_loss(per_sample, sample_weight=None):
    """Mean over non-batch axes, weight per sample, then sum / batch size (Keras's
    SUM_OVER_BATCH_SIZE reduction)."""
    t = per_sample if isinstance(per_sample, Tensor) else Tensor(np.asarray(per_sample))
    if t.ndim > 1:
        t = F.mean(t, axis=tuple(range(1, t.ndim)))
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=t.dtype)
        if sw.ndim > 1:
            sw = sw.reshape(len(sw), -1).mean(axis=1)
        t = F.multiply(t, sw)
    if t.ndim == 0:
        return t
    return F.mean(t)


def _fn_name(fn):
    if fn is None:
        return None
    inner = getattr(fn, "fn", None)
    name = getattr(inner, "__name__", None) or getattr(fn, "__name__", None)
    return name or type(fn).__name__


class CompiledMetrics:
    """Stateful metrics per output, named as Keras names them in logs/History."""

    def __init__(self, metrics, weighted_metrics, output_names, output_shapes, compiled_loss):
        from .. import metrics as metrics_mod
        self.output_names = list(output_names)
        self.entries = []      # (output index, metric object, log name, weighted)
        multi = len(output_names) > 1
        for weighted, spec in ((False, metrics), (True, weighted_metrics)):
            if not spec:
                continue
            per_output = self._per_output_lists(spec, model_name="model")
            for i, items in enumerate(per_output):
                for item in items:
                    m = self._resolve(metrics_mod, item, compiled_loss.fn_names[i],
                                      output_shapes[i])
                    base = getattr(m, "name", str(item))
                    if weighted:
                        base = "weighted_" + base
                    name = f"{self.output_names[i]}_{base}" if multi else base
                    self.entries.append((i, m, name, weighted))

    def _per_output_lists(self, spec, model_name):
        names = self.output_names
        if isinstance(spec, dict):
            return [list(_as_list(spec.get(n, []))) for n in names]
        spec = list(_as_list(spec))
        if len(names) > 1 and spec and all(isinstance(s, (list, tuple)) for s in spec):
            if len(spec) != len(names):
                raise ConfigError(f"metrics is a list of {len(spec)} lists but the model has "
                                  f"{len(names)} outputs")
            return [list(s) for s in spec]
        return [list(spec) for _ in names]

    @staticmethod
    def _resolve(metrics_mod, item, loss_name, output_shape):
        if isinstance(item, str) and item in ("accuracy", "acc"):
            return metrics_mod.resolve_accuracy(item, loss_name, output_shape)
        return metrics_mod.get(item)

    def result_names(self):
        names = []
        for _, m, name, _ in self.entries:
            sub = getattr(m, "result_names", None)
            if sub is not None:
                prefix = name[: -len(m.name)] if name.endswith(m.name) else ""
                names.extend(prefix + s for s in sub())
            else:
                names.append(name)
        return names

    def reset(self):
        for _, m, _, _ in self.entries:
            m.reset_state()

    def update(self, ys, outs, sample_weights=None):
        if ys is None and self.entries:
            raise ConfigError("Metrics need targets: fit/evaluate was called without `y`")
        for i, m, _, weighted in self.entries:
            sw = sample_weights[i] if (weighted and sample_weights is not None) else None
            m.update_state(ys[i], outs[i], sample_weight=sw)

    def results(self):
        out = {}
        for _, m, name, _ in self.entries:
            value = m.result()
            if isinstance(value, dict):
                prefix = name[: -len(m.name)] if name.endswith(m.name) else ""
                for k, v in value.items():
                    out[prefix + k] = float(v)
            else:
                out[name] = float(value)
        return out


def _as_list(x):
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]

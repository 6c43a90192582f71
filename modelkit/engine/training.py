"""compile / fit / evaluate / predict and the *_on_batch methods (mixed into Model)."""

import contextlib
import warnings

import numpy as np

from ..backend import allocator, blas, blas_pool, conv_fast
from ..backend import config as backend_config
from ..backend import functions as F
from ..backend.sparse_grad import sparse_gradients
from ..backend.tensor import GradientTape, StopRecording, Tensor
from ..errors import ConfigError, NotCompiledError, ShapeError
from ..nesting import flatten_structure, pack_structure
from . import data_adapter as da
from .compile_utils import CompiledLoss, CompiledMetrics


class TrainingMixin:
    """Keras's training API. Relies on the functional graph of `Model`."""

    def __init__(self):
        self.optimizer = None
        self.compiled_loss = None
        self.compiled_metrics = None
        self.stop_training = False
        self.history = None
        self._compile_args = None
        self._rng = None

    # -- compile --------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                sample_weight_mode=None, weighted_metrics=None, run_eagerly=None,
                steps_per_execution=None, **kwargs):
        from .. import optimizers
        if "class_mode" in kwargs:
            warnings.warn("compile: the Keras 1 argument 'class_mode' is deprecated and "
                          "ignored; the loss decides", DeprecationWarning, stacklevel=2)
            kwargs.pop("class_mode")
        if kwargs:
            raise ConfigError(f"compile: unknown argument(s) {sorted(kwargs)}")
        self.optimizer = optimizers.get(optimizer)
        self._compile_args = dict(loss=loss, metrics=metrics, loss_weights=loss_weights,
                                  weighted_metrics=weighted_metrics)
        self.compiled_loss = None
        self.compiled_metrics = None
        if self.built:
            self._prepare_compiled()

    @property
    def loss(self):
        """The loss as given to `compile` (Keras's `model.loss`); None before compiling."""
        return None if self._compile_args is None else self._compile_args["loss"]

    @property
    def loss_weights(self):
        return None if self._compile_args is None else self._compile_args["loss_weights"]

    def _prepare_compiled(self):
        if self._compile_args is None:
            raise NotCompiledError(f"Model {self.name!r} must be compiled before training or "
                                   "evaluation: call model.compile(optimizer, loss)")
        if self.compiled_loss is None:
            args = self._compile_args
            names = self.output_names
            shapes = [t.shape for t in self.outputs]
            self.compiled_loss = CompiledLoss(args["loss"], args["loss_weights"], names,
                                              self.name)
            self.compiled_metrics = CompiledMetrics(args["metrics"], args["weighted_metrics"],
                                                    names, shapes, self.compiled_loss)
            # Keras 2: the weights to train are collected when compiling, so setting
            # `layer.trainable` afterwards takes effect at the next compile (the GAN recipe)
            self._collected_trainable_weights = self.trainable_weights

    @property
    def metrics_names(self):
        if self.compiled_loss is None:
            return []
        return ["loss"] + self.compiled_loss.output_loss_names() + \
            self.compiled_metrics.result_names()

    # -- data -----------------------------------------------------------------------------
    def _ensure_built_for(self, x):
        if not self.built and hasattr(self, "_build_from_data"):
            self._build_from_data(x)
        if not self.built:
            self._ensure_built()

    def _ensure_built(self):
        pass

    def _std_x(self, x):
        return da.standardize(x, self.input_names, [t.shape for t in self.inputs],
                              [t.dtype for t in self.inputs], "input", self.name)

    def _std_y(self, y):
        ys = da.standardize(y, self.output_names, None, [None] * len(self.outputs),
                            "target", self.name)
        return da.match_target_ranks(ys, [t.shape for t in self.outputs])

    def _std_sw(self, sample_weight, n):
        if sample_weight is None:
            return None
        if isinstance(sample_weight, dict):
            return [None if sample_weight.get(k) is None else
                    np.asarray(sample_weight[k], backend_config.floatx())
                    for k in self.output_names]
        if isinstance(sample_weight, (list, tuple)) and len(self.outputs) > 1:
            return [None if s is None else np.asarray(s, backend_config.floatx())
                    for s in sample_weight]
        sw = np.asarray(sample_weight, dtype=backend_config.floatx())
        return [sw] * len(self.outputs)

    def _rng_for_shuffle(self):
        if self._rng is None:
            from .. import initializers
            self._rng = initializers.global_rng()
        return self._rng

    # -- one step ---------------------------------------------------------------------------
    def _forward(self, xs, training):
        # a layer differentiating in its forward pass may ask for gradients w.r.t. inputs
        tracked = _differentiates_in_forward(self)
        tensors = [Tensor(a, tracked and a.dtype.kind == "f") for a in xs]
        fixed = backend_config.fixed_phase()      # K.set_learning_phase(0 or 1) decides
        outs, _ = self._run_graph(tensors, training=training if fixed is None else fixed)
        return outs

    def _inference_scope(self):
        """No tape in inference, except a throwaway one per batch when a layer may
        differentiate inside its forward pass (a Lambda calling K.gradients, as
        mnist_swwae's max-pooling switches do)."""
        return GradientTape() if _differentiates_in_forward(self) else StopRecording()

    def _train_step(self, xs, ys, sws):
        allocator.retain_freed_memory()   # reuse the last step's arrays, no page faults
        blas_pool.install()               # OpenBLAS's GEMMs and the kernels on one pool
        # a model whose last step ran the fast convolutions trains with numpy's BLAS on one
        # thread: its idle threads would spin on the cores the convolutions use
        pin = getattr(self, "_fast_conv_steps", False)
        runs = conv_fast.runs()
        with blas.single_threaded() if pin else contextlib.nullcontext():
            result = self._train_step_body(xs, ys, sws)
        self._fast_conv_steps = conv_fast.runs() != runs
        return result

    def _train_step_body(self, xs, ys, sws):
        from .base_layer import _CallContext
        variables = self._collected_trainable_weights
        with GradientTape() as tape, _CallContext() as ctx:
            outs = self._forward(xs, training=True)
            total, per_output = self.compiled_loss(ys, outs, sws)
            extra = [l for layer in self._layers_for_losses() for l in
                     layer.regularization_losses()] + ctx.losses
            total = self._with_added_losses(total, per_output, extra, outs)
        # the optimizer updates the variables whose gradients are final while the side
        # stream's still run (streams.py), unless a subclass has its own apply_gradients
        from ..optimizers.base import Optimizer
        pending = getattr(type(self.optimizer), "apply_gradients", None) is \
            Optimizer.apply_gradients
        with sparse_gradients():          # embedding gradients stay row-sparse
            grads = tape.gradient(total, variables, pending=pending)
        self.optimizer.apply_gradients(zip(grads, variables))
        return total, per_output, outs

    def _layers_for_losses(self):
        """Every layer whose weight regularisers count (nested models included)."""
        return [self]

    def regularization_losses(self):
        result = []
        for layer in self._sublayers:
            result.extend(layer.regularization_losses())
        return result

    def _test_step(self, xs, ys, sws):
        from .base_layer import _CallContext
        with self._inference_scope(), _CallContext() as ctx:
            outs = self._forward(xs, training=False)
            total, per_output = self.compiled_loss(ys, outs, sws)
            extra = [l for l in self.regularization_losses()] + ctx.losses
            total = self._with_added_losses(total, per_output, extra, outs)
        return total, per_output, outs

    def _with_added_losses(self, total, per_output, extra, outs):
        """The compiled loss plus regularisation and `add_loss` terms (per_output[0], the
        logged total, is updated in place)."""
        if extra:
            dtype = total.dtype if total is not None else outs[0].dtype
            added = _sum_scalars(extra, dtype)
            total = added if total is None else F.add(total, added)
        if total is None:
            raise ConfigError(f"Model {self.name!r} has nothing to train: compile was given "
                              "no loss and the model added none with add_loss()")
        per_output[0] = float(total.value)
        return total

    # -- public batch methods -------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, reset_metrics=True,
                       return_dict=False):
        self._ensure_built_for(x)
        self._prepare_compiled()
        xs, ys = self._std_x(x), self._std_y(y)
        da.check_lengths(xs, ys)
        sws = self._sample_weights(ys, sample_weight, class_weight)
        if reset_metrics:
            self.compiled_metrics.reset()
        total, per_output, outs = self._train_step(xs, ys, sws)
        return self._batch_result(total, per_output, ys, outs, sws, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, reset_metrics=True, return_dict=False):
        self._ensure_built_for(x)
        self._prepare_compiled()
        xs, ys = self._std_x(x), self._std_y(y)
        da.check_lengths(xs, ys)
        sws = self._std_sw(sample_weight, len(xs[0]))
        if reset_metrics:
            self.compiled_metrics.reset()
        total, per_output, outs = self._test_step(xs, ys, sws)
        return self._batch_result(total, per_output, ys, outs, sws, return_dict)

    def predict_on_batch(self, x):
        self._ensure_built_for(x)
        xs = self._std_x(x)
        with self._inference_scope():
            outs = self._forward(xs, training=False)
        return self._format_outputs([np.asarray(o.value) for o in outs])

    def _batch_result(self, total, per_output, ys, outs, sws, return_dict):
        self.compiled_metrics.update([y for y in ys], [np.asarray(o.value) for o in outs], sws)
        logs = {"loss": float(total.value)}
        for name, value in zip(self.compiled_loss.output_loss_names(), per_output[1:] if
                               len(per_output) > 1 else []):
            logs[name] = float(value)
        logs.update(self.compiled_metrics.results())
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _sample_weights(self, ys, sample_weight, class_weight):
        sws = self._std_sw(sample_weight, len(ys[0]) if ys else 0)
        if class_weight is not None:
            if len(self.outputs) > 1 and isinstance(class_weight, dict) and \
                    set(class_weight) <= set(self.output_names):
                cws = [class_weight.get(n) for n in self.output_names]
            else:
                cws = [class_weight] * len(self.outputs)
            sws = sws or [None] * len(self.outputs)
            sws = [s if cw is None else (da.class_weights_to_sample_weights(y, cw) *
                                         (1.0 if s is None else s))
                   for s, y, cw in zip(sws, ys, cws)]
        return sws

    # -- fit ------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, max_queue_size=10, workers=1,
            use_multiprocessing=False, **kwargs):
        if "nb_epoch" in kwargs:
            warnings.warn("fit: the Keras 1 argument 'nb_epoch' is deprecated; use 'epochs'",
                          DeprecationWarning, stacklevel=2)
            epochs = kwargs.pop("nb_epoch")
        if kwargs:
            raise ConfigError(f"fit: unknown argument(s) {sorted(kwargs)}")
        if da.is_generator_like(x):
            return self._fit_generator(x, steps_per_epoch, epochs, verbose, callbacks,
                                       validation_data, validation_steps, class_weight,
                                       initial_epoch, shuffle)
        self._ensure_built_for(x)
        self._prepare_compiled()
        batch_size = batch_size or 32
        xs, ys = self._std_x(x), self._std_y(y)
        if ys is None and self.compiled_loss.needs_targets:
            raise ConfigError(f"Model {self.name!r}: fit needs targets `y`")
        n = da.check_lengths(xs, ys)
        sws = self._sample_weights(ys, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            val = self._unpack_validation(validation_data)
        elif validation_split and 0.0 < validation_split < 1.0:
            split = int(n * (1.0 - validation_split))
            val = (da.slice_arrays(xs, slice(split, None)), da.slice_arrays(ys, slice(split, None)),
                   None if sws is None else [None if s is None else s[split:] for s in sws])
            xs, ys = da.slice_arrays(xs, slice(0, split)), da.slice_arrays(ys, slice(0, split))
            sws = None if sws is None else [None if s is None else s[:split] for s in sws]
            n = split
        rng = self._rng_for_shuffle()
        steps = int(np.ceil(n / batch_size))

        def epoch_batches(epoch):
            for idx in da.batch_indices(n, batch_size, shuffle, rng):
                yield (da.slice_arrays(xs, idx), da.slice_arrays(ys, idx),
                       None if sws is None else [None if s is None else s[idx] for s in sws])

        return self._fit_loop(epoch_batches, steps, epochs, verbose, callbacks, val,
                              validation_batch_size or batch_size, initial_epoch, n, batch_size,
                              validation_freq)

    def _unpack_validation(self, validation_data):
        if len(validation_data) == 2:
            vx, vy = validation_data
            vsw = None
        elif len(validation_data) == 3:
            vx, vy, vsw = validation_data
        else:
            raise ConfigError("validation_data must be (x, y) or (x, y, sample_weight)")
        vxs, vys = self._std_x(vx), self._std_y(vy)
        da.check_lengths(vxs, vys)
        return vxs, vys, self._std_sw(vsw, len(vxs[0]))

    def _fit_loop(self, epoch_batches, steps, epochs, verbose, callbacks, val, val_batch_size,
                  initial_epoch, n_samples, batch_size, validation_freq=1):
        from .. import callbacks as cbks
        history = cbks.History()
        cb_list = list(callbacks or [])
        if verbose:
            cb_list.insert(0, cbks.ProgbarLogger(count_mode="steps"))
        cb_list.append(history)
        params = {"epochs": epochs, "steps": steps, "verbose": verbose,
                  "samples": n_samples, "batch_size": batch_size, "do_validation": val is not None,
                  "metrics": self.metrics_names + (["val_" + m for m in self.metrics_names]
                                                   if val is not None else [])}
        for cb in cb_list:
            cb.set_model(self)
            cb.set_params(params)
        self.stop_training = False
        self.history = history
        _fire(cb_list, "on_train_begin", None)
        for epoch in range(initial_epoch, epochs):
            self.compiled_metrics.reset()
            _fire(cb_list, "on_epoch_begin", epoch, None)
            totals, count = {}, 0
            logs = {}
            for step, (bx, by, bsw) in enumerate(epoch_batches(epoch)):
                _fire(cb_list, "on_train_batch_begin", step, {"batch": step, "size": len(bx[0])})
                total, per_output, outs = self._train_step(bx, by, bsw)
                self.compiled_metrics.update(by, [np.asarray(o.value) for o in outs], bsw)
                bsize = len(bx[0])
                count += bsize
                batch_losses = {"loss": float(total.value)}
                for name, v in zip(self.compiled_loss.output_loss_names(), per_output[1:] if
                                   len(per_output) > 1 else []):
                    batch_losses[name] = float(v)
                for k, v in batch_losses.items():
                    totals[k] = totals.get(k, 0.0) + v * bsize
                logs = {k: v / count for k, v in totals.items()}
                logs.update(self.compiled_metrics.results())
                _fire(cb_list, "on_train_batch_end", step, dict(logs))
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(*val, batch_size=val_batch_size)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            _fire(cb_list, "on_epoch_end", epoch, epoch_logs)
            if self.stop_training:
                break
        _fire(cb_list, "on_train_end", None)
        return history

    def _fit_generator(self, gen, steps_per_epoch, epochs, verbose, callbacks, validation_data,
                       validation_steps, class_weight, initial_epoch, shuffle):
        from ..utils.data_utils import Sequence
        is_seq = isinstance(gen, Sequence)
        steps_per_epoch = da.whole_steps(steps_per_epoch)
        if steps_per_epoch is None:
            if not is_seq:
                raise ConfigError("fit with a Python generator needs steps_per_epoch")
            steps_per_epoch = len(gen)
        rng = self._rng_for_shuffle()
        iterator = None if is_seq else gen

        def epoch_batches(epoch):
            order = rng.permutation(len(gen)) if is_seq and shuffle else range(steps_per_epoch)
            for step in range(steps_per_epoch):
                item = gen[int(order[step % len(order)])] if is_seq else next(iterator)
                bx, by, bsw = da.unpack_batch(item)
                self._ensure_built_for(bx)
                self._prepare_compiled()
                xs, ys = self._std_x(bx), self._std_y(by)
                da.check_lengths(xs, ys)
                yield xs, ys, self._sample_weights(ys, bsw, class_weight)
            if is_seq:
                gen.on_epoch_end()

        val = None
        if validation_data is not None:
            if da.is_generator_like(validation_data):
                val = self._collect_generator(validation_data, validation_steps)
            else:
                val = self._unpack_validation(validation_data)
        if not self.built:
            # peek at a batch to build a deferred Sequential before callbacks see the model
            pass
        self._prepare_compiled() if self.built else None
        return self._fit_loop_lazy(epoch_batches, steps_per_epoch, epochs, verbose, callbacks,
                                   val, initial_epoch)

    def _fit_loop_lazy(self, epoch_batches, steps, epochs, verbose, callbacks, val, initial_epoch):
        if self.compiled_loss is None:
            first = epoch_batches(-1)
            bx, by, bsw = next(first)   # builds and prepares
            first.close()
        return self._fit_loop(epoch_batches, steps, epochs, verbose, callbacks, val, 32,
                              initial_epoch, None, None)

    def _collect_generator(self, gen, steps):
        from ..utils.data_utils import Sequence
        steps = da.whole_steps(steps) or (len(gen) if isinstance(gen, Sequence) else None)
        if steps is None:
            raise ConfigError("A validation/evaluation generator needs `steps`")
        xs_all, ys_all, sw_all = [], [], []
        for i in range(steps):
            item = gen[i] if isinstance(gen, Sequence) else next(gen)
            bx, by, bsw = da.unpack_batch(item)
            xs_all.append(self._std_x(bx))
            ys_all.append(self._std_y(by))
            sw_all.append(bsw)
        xs = [np.concatenate([b[i] for b in xs_all]) for i in range(len(xs_all[0]))]
        ys = [np.concatenate([b[i] for b in ys_all]) for i in range(len(ys_all[0]))]
        sws = None if any(s is None for s in sw_all) else self._std_sw(np.concatenate(sw_all), 0)
        return xs, ys, sws

    fit_generator = fit

    # -- evaluate / predict ------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose=1, sample_weight=None, steps=None,
                 callbacks=None, max_queue_size=10, workers=1, use_multiprocessing=False,
                 return_dict=False, **kwargs):
        # max_queue_size / workers / use_multiprocessing: Keras 2's generator-loading
        # options, accepted as fit accepts them (batches are drawn in this thread)
        if kwargs:
            raise ConfigError(f"evaluate: unknown argument(s) {sorted(kwargs)}")
        if da.is_generator_like(x):
            xs, ys, sws = self._collect_generator(x, steps)
        else:
            self._ensure_built_for(x)
            xs, ys = self._std_x(x), self._std_y(y)
            self._prepare_compiled()
            if ys is None and self.compiled_loss.needs_targets:
                raise ConfigError(f"Model {self.name!r}: evaluate needs targets `y`")
            da.check_lengths(xs, ys)
            sws = self._std_sw(sample_weight, len(xs[0]))
        self._prepare_compiled()
        logs = self._evaluate_arrays(xs, ys, sws, batch_size=batch_size or 32, verbose=verbose)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    evaluate_generator = evaluate

    def _evaluate_arrays(self, xs, ys, sws, batch_size=32, verbose=0):
        n = da.check_lengths(xs, ys)
        self.compiled_metrics.reset()
        totals, count = {}, 0
        for start in range(0, n, batch_size):
            idx = slice(start, start + batch_size)
            bx, by = da.slice_arrays(xs, idx), da.slice_arrays(ys, idx)
            bsw = None if sws is None else [None if s is None else s[idx] for s in sws]
            total, per_output, outs = self._test_step(bx, by, bsw)
            self.compiled_metrics.update(by, [np.asarray(o.value) for o in outs], bsw)
            size = len(bx[0])
            count += size
            values = {"loss": float(total.value)}
            for name, v in zip(self.compiled_loss.output_loss_names(), per_output[1:] if
                               len(per_output) > 1 else []):
                values[name] = float(v)
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v * size
        logs = {k: v / max(count, 1) for k, v in totals.items()}
        logs.update(self.compiled_metrics.results())
        return logs

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None, **kwargs):
        if da.is_generator_like(x):
            from ..utils.data_utils import Sequence
            steps = da.whole_steps(steps) or (len(x) if isinstance(x, Sequence) else None)
            if steps is None:
                raise ConfigError("predict with a Python generator needs `steps`")
            parts = []
            for i in range(steps):
                item = x[i] if isinstance(x, Sequence) else next(x)
                bx = da.unpack_batch(item)[0]
                parts.append(flatten_structure(self.predict_on_batch(bx)))
            return self._format_outputs([np.concatenate([p[i] for p in parts])
                                         for i in range(len(parts[0]))])
        self._ensure_built_for(x)
        xs = self._std_x(x)
        n = da.check_lengths(xs)
        batch_size = batch_size or 32
        chunks = []
        for start in range(0, n, batch_size):
            bx = da.slice_arrays(xs, slice(start, start + batch_size))
            with self._inference_scope():
                chunks.append([np.asarray(o.value) for o in self._forward(bx, training=False)])
        if not chunks:
            outs = [np.zeros((0,) + tuple(d or 0 for d in t.shape[1:]), backend_config.floatx())
                    for t in self.outputs]
        else:
            outs = [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
        return self._format_outputs(outs)

    predict_generator = predict

    def _format_outputs(self, outs):
        structure = getattr(self, "_output_structure", None)
        if structure is not None:
            return pack_structure(structure, outs)
        return outs[0] if len(outs) == 1 else outs

    def __call_check_compiled(self):
        if self.optimizer is None:
            raise NotCompiledError(f"Model {self.name!r} is not compiled")


def _differentiates_in_forward(model):
    for layer in getattr(model, "layers", []):
        if layer is not model and (getattr(layer, "differentiates_in_forward", False)
                                   or _differentiates_in_forward(layer)):
            return True
    return False


def _sum_scalars(items, dtype):
    total = None
    for item in items:
        t = item if isinstance(item, Tensor) else Tensor(np.asarray(item, dtype))
        if t.ndim:
            t = F.sum(t)
        total = t if total is None else F.add(total, t)
    return total


def _fire(callbacks, hook, *args):
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


_ = ShapeError


def __getattr__(name):
    if name == "Model":         # `from keras.engine.training import Model` (Keras 2)
        from .functional import Model
        return Model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

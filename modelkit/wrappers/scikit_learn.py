"""`keras.wrappers.scikit_learn`: a model-building function as a scikit-learn estimator
(`KerasClassifier`, `KerasRegressor`), usable in GridSearchCV / cross_val_score.

`KerasClassifier(build_fn=make_model, epochs=3, batch_size=32, dense_size=64)`: the keyword
arguments that `build_fn` takes build the model; those of `fit` / `predict` / `evaluate` are
passed to them. scikit-learn itself is not needed: the estimators follow its protocol
(`get_params`, `set_params`, `fit`, `predict`, `predict_proba`, `score`, `classes_`)."""

import copy
import inspect
import types

import numpy as np

from modelkit.errors import ConfigError


def _accepted(fn):
    return set(inspect.signature(fn).parameters)


class BaseWrapper:
    """Common part of the two estimators: the parameters and building the model."""

    def __init__(self, build_fn=None, **sk_params):
        self.build_fn = build_fn
        self.sk_params = sk_params
        self.check_params(sk_params)

    def _build_target(self):
        if self.build_fn is None:
            return self.__call__
        if isinstance(self.build_fn, types.FunctionType) or not hasattr(self.build_fn,
                                                                        "__call__"):
            return self.build_fn
        return self.build_fn.__call__

    def check_params(self, params):
        """Every parameter must be an argument of build_fn or of fit/predict/evaluate."""
        from modelkit.models import Sequential
        legal = _accepted(self._build_target()) if callable(self._build_target()) else set()
        for fn in (Sequential.fit, Sequential.predict, Sequential.evaluate):
            legal |= _accepted(fn)
        bad = sorted(p for p in params if p not in legal)
        if bad:
            raise ConfigError(f"{type(self).__name__}: {bad} are not arguments of build_fn "
                              "or of fit/predict/evaluate")

    def get_params(self, deep=True):
        params = copy.deepcopy(self.sk_params) if deep else dict(self.sk_params)
        params.update({"build_fn": self.build_fn})
        return params

    def set_params(self, **params):
        self.check_params(params)
        self.sk_params.update(params)
        return self

    def filter_sk_params(self, fn, override=None):
        """The parameters `fn` accepts, with `override` on top."""
        names = _accepted(fn)
        out = {k: v for k, v in self.sk_params.items() if k in names}
        out.update(override or {})
        return out

    def _build(self):
        target = self._build_target()
        self.model = target(**self.filter_sk_params(target))
        return self.model

    def fit(self, x, y, **kwargs):
        """Build a fresh model and train it; returns the History."""
        model = self._build()
        y = self._fit_targets(model, np.asarray(y))
        args = self.filter_sk_params(type(model).fit, kwargs)
        return model.fit(x, y, **args)

    def _fit_targets(self, model, y):
        return y


def _wants_one_hot(model, y):
    """Keras's rule: integer labels meet a categorical_crossentropy loss as one-hot rows."""
    names = getattr(getattr(model, "compiled_loss", None), "fn_names", None) or []
    return "categorical_crossentropy" in names and y.ndim == 1


class KerasClassifier(BaseWrapper):
    """Classifier: integer or string labels (or one-hot rows); `classes_` after fit."""

    def _fit_targets(self, model, y):
        if y.ndim == 2 and y.shape[1] > 1:
            self.classes_ = np.arange(y.shape[1])
        else:
            self.classes_ = np.unique(y)
            y = np.searchsorted(self.classes_, y.reshape(-1))
        self.n_classes_ = len(self.classes_)
        return self._one_hot(y)

    def _one_hot(self, y):
        if _wants_one_hot(self.model, y):
            from modelkit.utils import to_categorical
            return to_categorical(y, self.n_classes_)
        return y

    def predict_proba(self, x, **kwargs):
        probs = self.model.predict(x, **self.filter_sk_params(type(self.model).predict, kwargs))
        probs = np.asarray(probs)
        return np.hstack([1 - probs, probs]) if probs.shape[1] == 1 else probs

    def predict(self, x, **kwargs):
        probs = self.predict_proba(x, **kwargs)
        return self.classes_[np.argmax(probs, axis=-1)]

    def score(self, x, y, **kwargs):
        """The model's accuracy on (x, y) (it must be compiled with an accuracy metric)."""
        y = np.searchsorted(self.classes_, np.asarray(y).reshape(-1)) \
            if np.asarray(y).ndim < 2 or np.asarray(y).shape[1] == 1 else np.asarray(y)
        args = self.filter_sk_params(type(self.model).evaluate, kwargs)
        args.setdefault("verbose", 0)
        logs = self.model.evaluate(x, self._one_hot(y), return_dict=True, **args)
        for name in ("accuracy", "acc"):
            if name in logs:
                return float(logs[name])
        raise ConfigError("KerasClassifier.score needs the model compiled with "
                          f"metrics=['accuracy']; it reports {sorted(logs)}")


class KerasRegressor(BaseWrapper):
    """Regressor: `score` is minus the loss (greater is better, as scikit-learn expects)."""

    def predict(self, x, **kwargs):
        out = self.model.predict(x, **self.filter_sk_params(type(self.model).predict, kwargs))
        return np.squeeze(np.asarray(out), axis=-1) if np.ndim(out) > 1 and \
            np.shape(out)[-1] == 1 else np.asarray(out)

    def score(self, x, y, **kwargs):
        args = self.filter_sk_params(type(self.model).evaluate, kwargs)
        args.setdefault("verbose", 0)
        logs = self.model.evaluate(x, np.asarray(y), return_dict=True, **args)
        return -float(logs["loss"])

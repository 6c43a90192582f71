"""Optimizers (tf.keras 2.x legacy formulas), updating `K.Variable`s in place with numpy.

``opt.apply_gradients(zip(grads, variables))`` takes numpy gradients (not taped); each
update is vectorised and in place, with one scratch buffer per variable.

Common behaviour (base class `Optimizer`):
- ``learning_rate`` is a scalar `K.Variable`: ``K.set_value(opt.lr, 0.01)`` and
  ``K.get_value(opt.learning_rate)`` work (``lr`` is an alias; ``lr=`` as an argument is
  Keras 1 and warns). Assigning a number to ``opt.learning_rate`` sets the variable.
- ``decay``: ``lr_t = lr / (1 + decay * iterations)`` (iterations before the step).
- Clipping, in tf.keras's order: ``clipnorm`` (per gradient), ``global_clipnorm``, then
  ``clipvalue``.
- After updating a variable, its ``.constraint`` (if any) is applied.
- ``iterations`` is an int, incremented once per `apply_gradients`.

State: ``get_state() -> {"iterations": int, "weights": {slot_name: array}}`` with slot
names ``"<slot>/<variable name>"`` (e.g. ``"m/dense/kernel"``; the HDF5 converter writes
them as ``"Adam/m/dense/kernel:0"``, like tf.keras), ordered slot-major like tf.keras
(every ``m``, then every ``v``). Nadam's scalar schedule is ``"momentum_cache"``.
``set_state(state, variables)`` restores it exactly (it also accepts
``"<variable name>/<slot>"`` and Keras 3 slot names such as ``momentum``/``velocity``).
"""

from ..errors import ConfigError
from ..utils import serialization as _ser
from .adam import Adam, Adamax, Nadam
from .base import OPTIMIZERS, Optimizer
from .gradient_descent import SGD, Adadelta, Adagrad, RMSprop

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "Adamax", "Nadam",
           "OPTIMIZERS", "get", "serialize", "deserialize"]

_ser.register_all(OPTIMIZERS, {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad,
                               "adadelta": Adadelta, "adam": Adam, "adamax": Adamax,
                               "nadam": Nadam})


def _normalize(name):
    return name.lower() if isinstance(name, str) else name


def get(identifier):
    """An optimizer from a name ('adam', 'Adam'), a config dict, an instance, or a class."""
    if identifier is None:
        raise ConfigError("An optimizer is required (e.g. 'rmsprop' or optimizers.Adam())")
    return _ser.deserialize(identifier, OPTIMIZERS, "optimizer", base_class=Optimizer,
                            normalize=_normalize)


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    return _ser.deserialize(config, OPTIMIZERS, "optimizer", base_class=Optimizer,
                            custom_objects=custom_objects, normalize=_normalize)

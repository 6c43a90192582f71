"""Training callbacks (Keras 2 semantics).

The model interface callbacks use: ``model.stop_training`` (bool), ``model.get_weights()`` /
``model.set_weights(list)``, ``model.optimizer.learning_rate`` (a Variable: read and written
with ``K.get_value`` / ``K.set_value``), ``model.save(path, overwrite=True)`` and
``model.save_weights(path, overwrite=True)``.

Hooks: ``on_{train,test,predict}_{begin,end}(logs)``, ``on_epoch_{begin,end}(epoch, logs)``,
``on_{train,test,predict}_batch_{begin,end}(batch, logs)``. Keras 1's ``on_batch_begin`` /
``on_batch_end`` are called by the default ``on_train_batch_*`` hooks, so overriding either
spelling works.
"""

from .base import BaseLogger, Callback, CallbackList, History, LambdaCallback, ProgbarLogger
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .monitoring import CSVLogger, EarlyStopping, ModelCheckpoint, TensorBoard, TerminateOnNaN
from .remote import RemoteMonitor

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "LambdaCallback",
           "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN", "CSVLogger",
           "ReduceLROnPlateau", "LearningRateScheduler", "TensorBoard", "RemoteMonitor",
           "BaseLogger"]

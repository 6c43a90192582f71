"""`keras.wrappers`: `scikit_learn.KerasClassifier` / `KerasRegressor`."""

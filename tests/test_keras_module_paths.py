"""Keras 1/2 code imports layers from their old modules (`keras.layers.core.Highway`,
`keras.layers.convolutional.MaxPooling2D`, `keras.engine.topology.Layer`, ...); the same
paths under `modelkit` give the same classes, and `InputSpec` is checked as Keras checks it."""

import importlib

import numpy as np
import pytest

import modelkit.layers as L
from modelkit.errors import ShapeError
from modelkit.models import Model, Sequential

OLD_PATHS = {
    "modelkit.layers.core": ["Highway", "MaxoutDense", "SpatialDropout1D", "SpatialDropout2D",
                             "SpatialDropout3D", "Dense", "Masking", "Lambda"],
    "modelkit.layers.convolutional": [
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
        "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "MaxPooling1D",
        "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
        "AveragePooling3D", "Convolution2D", "AtrousConvolution1D"],
    "modelkit.engine.topology": ["Layer", "Input", "InputLayer", "InputSpec", "Merge", "merge"],
    "modelkit.engine": ["InputSpec"],
}


@pytest.mark.parametrize("module,names", OLD_PATHS.items())
def test_old_module_paths_give_the_same_classes(module, names):
    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is getattr(L, name), f"{module}.{name}"


def test_other_old_names():
    from modelkit.engine.topology import Container
    from modelkit.engine.training import Model as TrainingModel
    from modelkit.layers.convolutional import Deconvolution2D
    from modelkit.layers.recurrent import Recurrent
    assert Container is Model and TrainingModel is Model
    assert Deconvolution2D is L.Conv2DTranspose and Recurrent is L.RNN
    with pytest.raises(AttributeError):
        importlib.import_module("modelkit.layers.core").NoSuchLayer


def test_pooling_from_convolutional_module_in_a_keras1_model():
    from modelkit.layers.convolutional import Convolution2D, MaxPooling2D, ZeroPadding2D
    model = Sequential([ZeroPadding2D((1, 1), input_shape=(6, 6, 2)),
                        Convolution2D(3, 3, 3, border_mode="valid"),
                        MaxPooling2D(pool_size=(2, 2))])
    assert model.predict(np.ones((2, 6, 6, 2), np.float32)).shape == (2, 3, 3, 3)


class Doubler(L.Layer):
    """A custom layer written as the Keras 2 docs show (topology.Layer + InputSpec)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from modelkit.engine.topology import InputSpec
        self.input_spec = InputSpec(ndim=2, axes={-1: 4})

    def call(self, x):
        return x * 2.0


def test_input_spec_is_checked_on_symbolic_calls():
    ok = Doubler()(L.Input((4,)))
    assert tuple(ok.shape) == (None, 4)
    with pytest.raises(ShapeError, match="expected ndim=2, found ndim=3"):
        Doubler(name="anti")(L.Input((3, 4)))
    with pytest.raises(ShapeError, match="layer 'anti2'.*axis -1.*value 4"):
        Doubler(name="anti2")(L.Input((5,)))
    spec = L.InputSpec(min_ndim=3, max_ndim=4)
    spec.check((None, 2, 3), "x")
    with pytest.raises(ShapeError, match="min_ndim=3"):
        spec.check((None, 2), "x")
    with pytest.raises(ShapeError, match="max_ndim=4"):
        spec.check((None, 2, 3, 4, 5), "x")
    with pytest.raises(ShapeError, match=r"expected shape=\(None, 3\)"):
        L.InputSpec(shape=(None, 3)).check((None, 4), "x")
    assert L.InputSpec.from_config(spec.get_config()).get_config() == spec.get_config()

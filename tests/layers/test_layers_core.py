"""Core layers (Dense, Activation, Dropout, Flatten, Reshape, Permute, RepeatVector,
ActivityRegularization) as one case table through run_layer_test: shape, numpy formula,
config/IR/.h5/.keras/ONNX round trips and float64 gradients."""

import numpy as np
import pytest

from modelkit.layers import (Activation, ActivityRegularization, Dense, Dropout, Flatten,
                             Identity, Permute, RepeatVector, Rescaling, Reshape)

from layer_testing import run_layer_test


def _dense(activation):
    def reference(x, layer):
        kernel, bias = layer.get_weights()
        return activation(x @ kernel + bias)
    return reference


CASES = [   # (id, factory, input shape without batch, numpy reference(x, layer))
    ("dense_linear", lambda: Dense(3), (4,), _dense(lambda z: z)),
    ("dense_tanh_3d", lambda: Dense(5, activation="tanh"), (2, 4), _dense(np.tanh)),
    ("dense_no_bias", lambda: Dense(2, use_bias=False), (3,),
     lambda x, layer: x @ layer.get_weights()[0]),
    ("activation_sigmoid", lambda: Activation("sigmoid"), (4,),
     lambda x, layer: 1 / (1 + np.exp(-x))),
    ("dropout_inference", lambda: Dropout(0.5), (4,), lambda x, layer: x),
    ("flatten", lambda: Flatten(), (2, 3, 2), lambda x, layer: x.reshape(len(x), -1)),
    ("reshape", lambda: Reshape((3, -1)), (6,), lambda x, layer: x.reshape(len(x), 3, 2)),
    ("permute", lambda: Permute((2, 1)), (3, 4), lambda x, layer: x.transpose(0, 2, 1)),
    ("repeat_vector", lambda: RepeatVector(3), (4,),
     lambda x, layer: np.repeat(x[:, None, :], 3, axis=1)),
    ("activity_regularization", lambda: ActivityRegularization(l1=0.01), (4,),
     lambda x, layer: x),
    ("rescaling", lambda: Rescaling(1 / 255.0, offset=-0.5), (2, 4),
     lambda x, layer: x / 255.0 - 0.5),
    ("rescaling_per_channel", lambda: Rescaling([1.0, 2.0, 3.0], [0.0, 0.5, 1.0]), (2, 3),
     lambda x, layer: x * [1.0, 2.0, 3.0] + [0.0, 0.5, 1.0]),
    ("identity", lambda: Identity(), (3,), lambda x, layer: x),
]


@pytest.mark.parametrize("name,factory,shape,reference", CASES, ids=[c[0] for c in CASES])
def test_layer(name, factory, shape, reference, tmp_path):
    run_layer_test(factory, shape, tmp_path, reference=reference)

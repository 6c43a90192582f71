"""BatchNormalization and LayerNormalization, and the fused normalization ops
(modelkit.backend.norm_ops): numpy references, float64 gradients, moving statistics as
tf.keras 2 updates them, masks, configs, IR/HDF5 round trips, errors, real Keras fixtures."""

import pathlib
import warnings

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend.tape import apply
from modelkit.backend.gradcheck import assert_gradients_close, assert_layer_gradients_close
from modelkit.backend.norm_ops import _batch_norm_inference, _batch_norm_moments
from modelkit.backend.tensor import Tensor
from modelkit.errors import ConfigError, ShapeError, UnsupportedError
from modelkit.layers import BatchNormalization, Dense, Input, LayerNormalization, deserialize, \
    serialize
from modelkit.models import Sequential, load_model

from layer_testing import run_layer_test

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(11)


def r(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def bn_reference(x, axes_kept, gamma, beta, eps, mean=None, var=None):
    red = tuple(i for i in range(x.ndim) if i not in axes_kept)
    shape = [x.shape[i] if i in axes_kept else 1 for i in range(x.ndim)]
    if mean is None:
        mean = x.mean(axis=red)
        var = x.var(axis=red)
    m, v = np.reshape(mean, shape), np.reshape(var, shape)
    return (x - m) / np.sqrt(v + eps) * np.reshape(gamma, shape) + np.reshape(beta, shape)


# -- the ops -----------------------------------------------------------------------------------

def _op(x, g, b, w=None, axes=(0,), eps=1e-3):
    return apply(_batch_norm_moments, x, g, b, w, axes=axes, epsilon=eps)


OP_GRADS = [
    ("bn_2d", lambda x, g, b: _op(x, g, b)[0], [(6, 3), (1, 3), (1, 3)]),
    ("bn_4d", lambda x, g, b: _op(x, g, b, axes=(0, 1, 2))[0], [(2, 3, 2, 4), (1, 1, 1, 4),
                                                               (1, 1, 1, 4)]),
    ("ln_2axes", lambda x, g, b: _op(x, g, b, axes=(1, 2))[0], [(3, 2, 4), (1, 2, 4),
                                                               (1, 2, 4)]),
    ("no_affine", lambda x: _op(x, None, None, axes=(1,))[0], [(4, 5)]),
    ("stat_outputs", lambda x, g: K.add(K.add(_op(x, g, None)[0], _op(x, g, None)[1]),
                                        K.multiply(_op(x, g, None)[2], 3.0)),
     [(5, 3), (1, 3)]),
    ("masked", lambda x, g, b: _op(x, g, b, w=np.array([[[1.], [1.], [0.]], [[1.], [0.], [1.]]]),
                                   axes=(0, 1))[0], [(2, 3, 4), (1, 1, 4), (1, 1, 4)]),
    ("masked_stats", lambda x: K.add(_op(x, None, None, w=np.array([[1., 0., 1., 1.]]).T,
                                         axes=(0,))[1],
                                     _op(x, None, None, w=np.array([[1., 0., 1., 1.]]).T,
                                         axes=(0,))[2]), [(4, 3)]),
    ("inference", lambda x, m, v, g, b: apply(_batch_norm_inference, x, m, v, g, b,
                                              epsilon=1e-3), [(4, 3), (3,), "pos3", (3,),
                                                              (3,)]),
    ("inference_no_affine", lambda x, m, v: apply(_batch_norm_inference, x, m, v, None, None,
                                                  epsilon=1e-2), [(2, 3, 2), (1, 3, 1),
                                                                  "pos131"]),
]


@pytest.mark.parametrize("name,fn,shapes", OP_GRADS, ids=[o[0] for o in OP_GRADS])
def test_op_gradients_float64(name, fn, shapes):
    g = np.random.default_rng(5)
    arrays = []
    for s in shapes:
        if s == "pos3":
            arrays.append(g.random(3) + 0.5)
        elif s == "pos131":
            arrays.append(g.random((1, 3, 1)) + 0.5)
        else:
            arrays.append(g.standard_normal(s))
    assert_gradients_close(fn, arrays)


def test_op_forward_matches_numpy_including_weighted_moments():
    x = r(4, 3, 2, dtype=np.float64)
    y, mean, var = _op(x, np.full((1, 1, 2), 2.0), np.full((1, 1, 2), 0.5), axes=(0, 1))
    np.testing.assert_allclose(mean.value[0, 0], x.reshape(-1, 2).mean(0))
    np.testing.assert_allclose(var.value[0, 0], x.reshape(-1, 2).var(0))
    np.testing.assert_allclose(y.value, bn_reference(x, (2,), [2.0, 2.0], [0.5, 0.5], 1e-3))
    w = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    y, mean, var = _op(x, None, None, w=w[..., None], axes=(0, 1))
    kept = x[w.astype(bool)]
    np.testing.assert_allclose(mean.value.reshape(-1), kept.mean(0))
    np.testing.assert_allclose(var.value.reshape(-1), kept.var(0))
    np.testing.assert_allclose(y.value, (x - kept.mean(0)) / np.sqrt(kept.var(0) + 1e-3))


def test_keras_backend_functions():
    x = r(5, 3, 4, dtype=np.float64)
    gamma, beta = r(4, dtype=np.float64), r(4, dtype=np.float64)
    normed, mean, var = K.normalize_batch_in_training(x, gamma, beta, [0, 1], epsilon=1e-3)
    np.testing.assert_allclose(mean.value, x.reshape(-1, 4).mean(0))
    np.testing.assert_allclose(var.value, x.reshape(-1, 4).var(0))
    np.testing.assert_allclose(normed.value, bn_reference(x, (2,), gamma, beta, 1e-3))
    m, v = r(4, dtype=np.float64), np.abs(r(4, dtype=np.float64)) + 0.1
    got = K.batch_normalization(x, m, v, beta, gamma, axis=-1, epsilon=1e-3)
    np.testing.assert_allclose(got.value, bn_reference(x, (2,), gamma, beta, 1e-3, m, v))


# -- BatchNormalization -------------------------------------------------------------------------

BN_SHAPES = [   # (kwargs, input shape without batch, param shape)
    ({}, (4,), (4,)),
    ({}, (3, 4), (4,)),
    ({"axis": 1}, (3, 4), (3,)),
    ({"axis": -1}, (5, 5, 3), (3,)),            # channels_last image
    ({"axis": 1}, (3, 5, 5), (3,)),             # channels_first image
    ({"axis": [1, 2]}, (2, 3, 4), (1, 2, 3, 1)),  # several axes: full-rank params, as Keras 2
]


@pytest.mark.parametrize("kwargs,shape,param_shape", BN_SHAPES)
def test_batchnorm_shapes_and_weights(kwargs, shape, param_shape):
    layer = BatchNormalization(**kwargs)
    out = layer(Input(shape=shape))
    assert out.shape == (None,) + shape
    assert layer.compute_output_shape((None,) + shape) == (None,) + shape
    names = [v.name.split("/")[-1] for v in layer.weights]
    assert names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [v.trainable for v in layer.weights] == [True, True, False, False]
    assert all(v.shape == param_shape for v in layer.weights)
    assert len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 2


def test_batchnorm_center_scale_off_drops_weights():
    layer = BatchNormalization(center=False, scale=False)
    layer(Input((3,)))
    assert [v.name.split("/")[-1] for v in layer.weights] == ["moving_mean", "moving_variance"]
    x = r(4, 3)
    np.testing.assert_allclose(layer(Tensor(x), training=True).value,
                               (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs,shape,kept,bessel", [
    ({}, (6, 3), (1,), False),                        # non-fused path: biased variance
    ({"axis": 1}, (5, 3, 4), (1,), False),
    ({}, (2, 3, 3, 4), (3,), True),                   # tf.keras fused kernel: n / (n - 1)
    ({"axis": 1}, (2, 4, 3, 3), (1,), True),
    ({"axis": 1, "fused": False}, (2, 4, 3, 3), (1,), False),
    ({"axis": [1, 2]}, (4, 2, 3), (1, 2), False),
])
def test_batchnorm_training_step_and_moving_statistics(kwargs, shape, kept, bessel):
    layer = BatchNormalization(momentum=0.9, epsilon=1e-3, **kwargs)
    x = r(*shape) * 2 + 1
    layer(Input(shape=shape[1:]))
    gamma, beta = r(*layer.gamma.shape), r(*layer.beta.shape)
    mm, mv = r(*layer.gamma.shape), np.abs(r(*layer.gamma.shape)) + 0.5
    layer.set_weights([gamma, beta, mm, mv])
    y = layer(Tensor(x), training=True).value
    np.testing.assert_allclose(y, bn_reference(x, kept, gamma, beta, 1e-3), rtol=1e-4, atol=1e-4)
    red = tuple(i for i in range(x.ndim) if i not in kept)
    n = int(np.prod([x.shape[i] for i in red]))
    bmean = x.mean(axis=red).reshape(mm.shape)
    bvar = x.var(axis=red).reshape(mm.shape) * (n / (n - 1) if bessel else 1.0)
    np.testing.assert_allclose(layer.moving_mean.value, mm * 0.9 + bmean * 0.1, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, mv * 0.9 + bvar * 0.1, rtol=1e-5,
                               atol=1e-6)
    # inference uses the moving statistics
    got = layer(Tensor(x), training=False).value
    want = bn_reference(x, kept, gamma, beta, 1e-3, layer.moving_mean.value,
                        layer.moving_variance.value)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    model = Sequential([layer])
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-4)


def test_batchnorm_not_trainable_runs_in_inference_mode():
    layer = BatchNormalization(trainable=False)
    layer(Input((3,)))
    layer.set_weights([np.ones(3), np.zeros(3), np.full(3, 0.5), np.full(3, 4.0)])
    x = r(5, 3)
    y = layer(Tensor(x), training=True).value
    np.testing.assert_allclose(y, (x - 0.5) / np.sqrt(4.001), rtol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.value, np.full(3, 0.5, np.float32))


def test_batchnorm_mask_weights_the_batch_statistics():
    layer = BatchNormalization(momentum=0.0)
    x = r(2, 4, 3)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    layer(Input((4, 3)))
    y = layer(Tensor(x), training=True, mask=mask).value
    kept = x[mask]
    np.testing.assert_allclose(layer.moving_mean.value, kept.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, kept.var(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, (x - kept.mean(0)) / np.sqrt(kept.var(0) + 1e-3), rtol=1e-4,
                               atol=1e-4)
    assert layer.compute_mask(Tensor(x), mask) is mask


@pytest.mark.parametrize("kwargs,shape,training", [
    ({}, (5, 3), True), ({"axis": 1}, (3, 2, 2), True), ({}, (2, 2, 2, 3), True),
    ({"axis": [1, 2]}, (3, 2, 3), True), ({}, (4, 3), False),
])
def test_batchnorm_layer_gradients_float64(kwargs, shape, training):
    layer = BatchNormalization(dtype="float64", **kwargs)
    layer(Input(shape=shape[1:], dtype="float64"))
    layer.set_weights([rng.random(w.shape) + 0.5 for w in layer.get_weights()])
    assert_layer_gradients_close(layer, rng.standard_normal(shape), training=training)


def test_batchnorm_trains_in_a_model():
    model = Sequential([Dense(8, input_dim=4), BatchNormalization(), Dense(1)])
    model.compile("adam", "mse")
    g = np.random.default_rng(0)
    x = g.normal(3.0, 2.0, size=(64, 4))
    y = x.sum(axis=1, keepdims=True)
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    bn = model.layers[1]
    assert not np.allclose(bn.moving_mean.value, 0.0)


def test_batchnorm_config_and_keras_dialects():
    layer = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-4, center=False,
                               gamma_regularizer="l2", beta_constraint="non_neg")
    config = layer.get_config()
    assert config["axis"] == 1 and config["momentum"] == 0.9 and config["center"] is False
    assert BatchNormalization.from_config(config).get_config() == config
    assert deserialize(serialize(layer)).get_config() == config
    keras3 = {"name": "bn", "axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True,
              "scale": True, "synchronized": False, "renorm": False, "renorm_clipping": None,
              "renorm_momentum": 0.99}
    assert BatchNormalization.from_config(keras3).axis == -1
    with pytest.warns(DeprecationWarning, match="'gamma_init' is deprecated.*gamma_initializer"):
        BatchNormalization(gamma_init="zeros")
    with pytest.warns(DeprecationWarning, match="'mode' is deprecated"):
        BatchNormalization(mode=0)


def test_batchnorm_bad_arguments_and_inputs():
    with pytest.raises(UnsupportedError, match="'bn1'.*mode=2"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            BatchNormalization(mode=2, name="bn1")
    with pytest.raises(UnsupportedError, match="'bn2'.*renorm"):
        BatchNormalization(renorm=True, name="bn2")
    with pytest.raises(ConfigError, match="'bn3'.*momentum"):
        BatchNormalization(momentum=1.5, name="bn3")
    with pytest.raises(ConfigError, match="'bn4'.*axis must be an int"):
        BatchNormalization(axis="channels", name="bn4")
    with pytest.raises(ShapeError, match="'bn5'.*axis 3 is out of range.*rank 2"):
        BatchNormalization(axis=3, name="bn5")(Input((3,)))
    with pytest.raises(ShapeError, match="'bn6'.*axis 1 .*known size"):
        BatchNormalization(axis=1, name="bn6")(Input((None, 3)))
    with pytest.raises(ShapeError, match="'bn7'.*batch axis"):
        BatchNormalization(axis=0, name="bn7")(Input((3,)))
    layer = BatchNormalization(name="bn8")
    layer(Input((3,)))
    with pytest.raises(ShapeError, match="'bn8' expects axis 1 of size 3.*\\(2, 4\\)"):
        layer(Tensor(r(2, 4)))
    with pytest.raises(ShapeError, match="'bn8' was built for inputs of rank 2"):
        layer(Input((2, 3)))
    with pytest.raises(ConfigError, match="'bn9'.*epsilon"):
        BatchNormalization(epsilon=0, name="bn9")


# -- LayerNormalization -------------------------------------------------------------------------

LN_CASES = [   # (kwargs, input shape without batch, normalised axes, param shape)
    ({}, (4,), (1,), (4,)),
    ({}, (3, 4), (2,), (4,)),
    ({"axis": 1}, (3, 4), (1,), (3,)),
    ({"axis": [1, 2]}, (3, 4), (1, 2), (3, 4)),
    ({"axis": [-1, -3]}, (2, 3, 4), (1, 3), (2, 4)),
    ({"center": False, "epsilon": 1e-5}, (5,), (1,), (5,)),
]


def ln_reference(x, axes, gamma, beta, eps):
    m = x.mean(axis=axes, keepdims=True)
    v = x.var(axis=axes, keepdims=True)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    y = (x - m) / np.sqrt(v + eps) * np.reshape(gamma, shape)
    return y if beta is None else y + np.reshape(beta, shape)


@pytest.mark.parametrize("kwargs,shape,axes,param_shape", LN_CASES)
def test_layernorm_shape_numeric_gradients(kwargs, shape, axes, param_shape):
    layer = LayerNormalization(**kwargs)
    out = layer(Input(shape=shape))
    assert out.shape == (None,) + shape
    assert layer.compute_output_shape((7,) + shape) == (7,) + shape
    assert all(v.shape == param_shape for v in layer.weights)
    ws = [r(*param_shape) for _ in layer.weights]
    layer.set_weights(ws)
    x = r(3, *shape) * 3 + 1
    want = ln_reference(x, axes, ws[0], ws[1] if len(ws) > 1 else None, layer.epsilon)
    np.testing.assert_allclose(Sequential([layer]).predict(x), want, rtol=1e-4, atol=1e-4)
    layer64 = LayerNormalization(dtype="float64", **kwargs)
    layer64(Input(shape=shape, dtype="float64"))
    layer64.set_weights([rng.random(param_shape) + 0.5 for _ in layer64.weights])
    assert_layer_gradients_close(layer64, rng.standard_normal((2,) + shape))


def test_layernorm_config_and_errors():
    layer = LayerNormalization(axis=[1, 2], epsilon=1e-5, scale=False, beta_regularizer="l1")
    config = layer.get_config()
    assert config["axis"] == [1, 2] and config["scale"] is False
    assert LayerNormalization.from_config(config).get_config() == config
    assert deserialize(serialize(layer)).get_config() == config
    with pytest.raises(ShapeError, match="'ln1'.*batch axis"):
        LayerNormalization(axis=0, name="ln1")(Input((3,)))
    with pytest.raises(ConfigError, match="'ln2'.*axis must be"):
        LayerNormalization(axis=1.5, name="ln2")
    layer = LayerNormalization(name="ln3")
    layer(Input((4,)))
    with pytest.raises(ShapeError, match="'ln3' expects axis 1 of size 4"):
        layer(Tensor(r(2, 5)))


# -- round trips and fixtures --------------------------------------------------------------------

ROUND_TRIP = [
    (lambda: BatchNormalization(), (4,)),
    (lambda: BatchNormalization(axis=1, momentum=0.8), (3, 2, 2)),
    (lambda: BatchNormalization(axis=[1, 2], center=False), (2, 3)),
    (lambda: LayerNormalization(), (3, 4)),
    (lambda: LayerNormalization(axis=[1, 2], scale=False), (3, 4)),
]


@pytest.mark.parametrize("factory,shape", ROUND_TRIP)
def test_layer(factory, shape, tmp_path):
    """Config/IR/.h5/.keras/ONNX round trips and float64 gradients (inference mode)."""
    model, _ = run_layer_test(factory, shape, tmp_path, weights=lambda g, s: (
        np.abs(g.standard_normal(s)) + 0.3).astype(np.float32))
    again = load_model(tmp_path / f"{type(model.layers[-1]).__name__}.h5")
    assert [v.trainable for v in again.layers[-1].weights] == \
        [v.trainable for v in model.layers[-1].weights]


@pytest.mark.parametrize("version", ["keras2", "keras3"])
@pytest.mark.parametrize("name,cls", [("cnn", BatchNormalization),
                                      ("activations", LayerNormalization)])
def test_real_keras_fixtures(version, name, cls):
    data = np.load(FIXTURES / version / f"{name}.npz")
    model = load_model(FIXTURES / version / f"{name}.h5", compile=False)
    assert any(type(la) is cls for la in model.layers)
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5, rtol=0)

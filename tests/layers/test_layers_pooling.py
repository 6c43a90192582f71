"""Pooling layers: one table row per layer config.

For every row, through run_layer_test: the symbolic shape and compute_output_shape, the
numbers against a direct numpy loop, a float64 finite-difference gradient check, the config,
IR, .h5, .keras and ONNX round trips. Then masks (GlobalAveragePooling1D), bad arguments and
inputs, and the Keras 1 spellings.
"""

import itertools

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError, ShapeError
from modelkit.layers import (AveragePooling1D, AveragePooling2D, AveragePooling3D,
                             GlobalAveragePooling1D, GlobalAveragePooling2D,
                             GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                             GlobalMaxPooling3D, Input, Masking, MaxPool2D, MaxPooling1D,
                             MaxPooling2D, MaxPooling3D)
from modelkit.models import Model

from layer_testing import run_layer_test

rng = np.random.default_rng(99)


def same_pad(length, k, s):
    out = -(-length // s)
    total = max((out - 1) * s + k - length, 0)
    return total // 2, total - total // 2


def pool_loops(x, pool, strides, padding, kind, cf=False):
    """Pooling of (N, *S, C) (or channels-first) over windows clipped to the real cells."""
    xl = np.moveaxis(x, 1, -1) if cf else x
    pads = [same_pad(L, k, s) if padding == "same" else (0, 0)
            for L, k, s in zip(xl.shape[1:-1], pool, strides)]
    out = [(L + b + a - k) // s + 1 for L, (b, a), k, s in zip(xl.shape[1:-1], pads, pool, strides)]
    y = np.zeros([xl.shape[0]] + out + [xl.shape[-1]])
    for pos in itertools.product(*(range(o) for o in out)):
        window = []
        for i, p in enumerate(pos):
            lo = p * strides[i] - pads[i][0]
            window.append(slice(max(lo, 0), min(lo + pool[i], xl.shape[1 + i])))
        cells = xl[(slice(None),) + tuple(window)].reshape(xl.shape[0], -1, xl.shape[-1])
        y[(slice(None),) + pos] = cells.max(axis=1) if kind == "max" else cells.mean(axis=1)
    return np.moveaxis(y, -1, 1) if cf else y


def pool_ref(pool, strides, padding="valid", kind="max", cf=False):
    return lambda x, layer: pool_loops(x, pool, strides, padding, kind, cf)


def global_ref(kind, axes, keepdims=False):
    def ref(x, layer):
        return x.max(axis=axes, keepdims=keepdims) if kind == "max" else \
            x.mean(axis=axes, keepdims=keepdims)
    return ref


CF = {"data_format": "channels_first"}
ROWS = {
    "max1d": (lambda: MaxPooling1D(2), (7, 3), (3, 3), pool_ref((2,), (2,))),
    "max1d_same_stride1": (lambda: MaxPooling1D(3, strides=1, padding="same"),
                           (5, 2), (5, 2), pool_ref((3,), (1,), "same")),
    "max1d_channels_first": (lambda: MaxPooling1D(2, **CF), (3, 6), (3, 3),
                             pool_ref((2,), (2,), cf=True)),
    "avg1d": (lambda: AveragePooling1D(), (6, 2), (3, 2),
              pool_ref((2,), (2,), kind="avg")),
    "avg1d_same": (lambda: AveragePooling1D(3, strides=2, padding="same"), (6, 2),
                   (3, 2), pool_ref((3,), (2,), "same", "avg")),
    "max2d": (lambda: MaxPooling2D(), (6, 6, 3), (3, 3, 3), pool_ref((2, 2), (2, 2))),
    "max2d_odd_input": (lambda: MaxPooling2D(), (7, 5, 2), (3, 2, 2),
                        pool_ref((2, 2), (2, 2))),
    "max2d_same_overlap": (lambda: MaxPooling2D((3, 3), strides=2, padding="same"),
                           (5, 6, 2), (3, 3, 2), pool_ref((3, 3), (2, 2), "same")),
    "max2d_channels_first": (lambda: MaxPooling2D(2, **CF), (2, 4, 6), (2, 2, 3),
                             pool_ref((2, 2), (2, 2), cf=True)),
    "avg2d": (lambda: AveragePooling2D(), (6, 6, 3), (3, 3, 3),
              pool_ref((2, 2), (2, 2), kind="avg")),
    "avg2d_same_rect": (lambda: AveragePooling2D((3, 2), strides=(2, 3), padding="same"),
                        (5, 7, 2), (3, 3, 2), pool_ref((3, 2), (2, 3), "same", "avg")),
    "avg2d_channels_first_overlap": (lambda: AveragePooling2D(2, strides=1, **CF),
                                     (2, 4, 4), (2, 3, 3),
                                     pool_ref((2, 2), (1, 1), kind="avg", cf=True)),
    "max3d": (lambda: MaxPooling3D(), (4, 5, 4, 2), (2, 2, 2, 2),
              pool_ref((2, 2, 2), (2, 2, 2))),
    "max3d_same_channels_first": (lambda: MaxPooling3D((3, 2, 2), strides=(2, 1, 2),
                                                           padding="same", **CF),
                                  (2, 5, 3, 4), (2, 3, 3, 2),
                                  pool_ref((3, 2, 2), (2, 1, 2), "same", cf=True)),
    "avg3d": (lambda: AveragePooling3D((2, 1, 2)), (4, 3, 4, 2), (2, 3, 2, 2),
              pool_ref((2, 1, 2), (2, 1, 2), kind="avg")),
    "avg3d_same_channels_first": (lambda: AveragePooling3D(2, strides=1, padding="same",
                                                               **CF),
                                  (2, 3, 3, 2), (2, 3, 3, 2),
                                  pool_ref((2, 2, 2), (1, 1, 1), "same", "avg", cf=True)),
    "global_max1d": (lambda: GlobalMaxPooling1D(), (5, 3), (3,),
                     global_ref("max", (1,))),
    "global_avg1d": (lambda: GlobalAveragePooling1D(), (5, 3), (3,),
                     global_ref("avg", (1,))),
    "global_avg1d_channels_first_keepdims": (
        lambda: GlobalAveragePooling1D(keepdims=True, **CF), (3, 5), (3, 1),
        global_ref("avg", (2,), True)),
    "global_max2d": (lambda: GlobalMaxPooling2D(), (4, 5, 3), (3,),
                     global_ref("max", (1, 2))),
    "global_max2d_channels_first": (lambda: GlobalMaxPooling2D(**CF), (3, 4, 5), (3,),
                                    global_ref("max", (2, 3))),
    "global_avg2d_keepdims": (lambda: GlobalAveragePooling2D(keepdims=True),
                              (4, 5, 3), (1, 1, 3), global_ref("avg", (1, 2), True)),
    "global_max3d": (lambda: GlobalMaxPooling3D(), (2, 3, 2, 3), (3,),
                     global_ref("max", (1, 2, 3))),
    "global_avg3d_channels_first_keepdims": (
        lambda: GlobalAveragePooling3D(keepdims=True, **CF), (3, 2, 3, 2),
        (3, 1, 1, 1), global_ref("avg", (2, 3, 4), True)),
}


def distinct(shape):
    """Values far apart (no near-ties), so max pooling is differentiable at them."""
    return ((rng.permutation(int(np.prod(shape))).reshape(shape) - 20.0) * 0.1).astype("float32")


@pytest.mark.parametrize("row_id", sorted(ROWS))
def test_layer(row_id, tmp_path):
    """Shape, the numbers against direct numpy loops, config/IR/.h5/.keras/ONNX round trips,
    float64 gradients (at distinct values: no ties)."""
    factory, in_shape, out_shape, ref = ROWS[row_id]
    model, _ = run_layer_test(factory, in_shape, tmp_path, x=distinct((4,) + in_shape),
                              reference=ref, output_shape=out_shape)
    assert model.layers[-1].compute_output_shape((7,) + in_shape) == (7,) + out_shape


def test_keras_config_layout():
    assert MaxPooling2D(name="p").get_config() == {
        "name": "p", "trainable": True, "dtype": "float32", "pool_size": (2, 2),
        "padding": "valid", "strides": (2, 2), "data_format": "channels_last"}
    assert GlobalAveragePooling1D(name="g").get_config() == {
        "name": "g", "trainable": True, "dtype": "float32", "data_format": "channels_last",
        "keepdims": False}
    K.set_image_data_format("channels_first")
    try:
        assert MaxPooling2D().data_format == "channels_first"
        assert GlobalMaxPooling2D().data_format == "channels_first"
        assert MaxPooling1D().data_format == "channels_last"    # Keras: 1D defaults to last
    finally:
        K.set_image_data_format("channels_last")


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    layer = MaxPooling2D(dtype="float64")
    x = K.variable(np.ones((1, 2, 2, 1)), dtype="float64")
    with K.GradientTape() as tape:
        y = layer(x)
    np.testing.assert_array_equal(tape.gradient(y, x)[0, :, :, 0], [[1, 0], [0, 0]])


# ---------------------------------------------------------------------------------------
# masks


def test_global_average_pooling1d_averages_unmasked_steps_like_keras():
    x = rng.standard_normal((3, 5, 2)).astype("float32")
    x[1, 3:] = 0.0
    x[2, 1:] = 0.0
    inp = Input(shape=(5, 2))
    out = GlobalAveragePooling1D()(Masking(0.0)(inp))
    model = Model(inp, out)
    keep = np.any(x != 0, axis=-1).astype("float32")
    want = (x * keep[..., None]).sum(1) / keep.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-6)
    assert not np.allclose(want, x.mean(1))
    layer = GlobalAveragePooling1D()
    assert layer.compute_mask(None, keep.astype(bool)) is None     # the mask stops here


def test_global_average_pooling1d_mask_channels_first_and_gradient():
    layer = GlobalAveragePooling1D(data_format="channels_first", dtype="float64")
    mask = np.array([[True, True, False, False], [True, False, True, True]])
    x = rng.standard_normal((2, 3, 4))
    got = layer(x, mask=mask).value
    m = mask.astype(float)[:, None, :]
    np.testing.assert_allclose(got, (x * m).sum(2) / m.sum(2))
    K.set_floatx("float64")
    try:
        assert_gradients_close(lambda v: layer(v, mask=mask), [x])
    finally:
        K.set_floatx("float32")
    with pytest.raises(ShapeError, match=r"mask must have shape \(batch, steps\)"):
        layer(x, mask=mask[:, :3])


# ---------------------------------------------------------------------------------------
# bad arguments, bad inputs, Keras 1 spellings


@pytest.mark.parametrize("make_layer,match", [
    (lambda: MaxPooling2D(pool_size=0), "pool_size must be positive"),
    (lambda: MaxPooling2D(pool_size=(2, 2, 2)), "pool_size must be an int or a tuple of 2"),
    (lambda: AveragePooling1D(strides=-1), "strides must be positive"),
    (lambda: MaxPooling2D(padding="causal"), "padding must be 'valid' or 'same'"),
    (lambda: GlobalMaxPooling2D(data_format="nchw_wrong"), "data_format must be"),
])
def test_bad_arguments_raise_config_error(make_layer, match):
    with pytest.raises(ConfigError, match=match):
        make_layer()


def test_bad_inputs_name_the_layer():
    with pytest.raises(ShapeError, match=r"'pool'.*rank 4.*\(None, 4, 3\)"):
        MaxPooling2D(name="pool")(Input(shape=(4, 3)))
    with pytest.raises(ShapeError, match=r"'pool1'.*rank 3.*\(2, 4, 3, 1\)"):
        MaxPooling1D(name="pool1")(np.zeros((2, 4, 3, 1), "float32"))
    with pytest.raises(ShapeError, match=r"'small'.*smaller than pool_size"):
        MaxPooling2D((3, 3), name="small")(Input(shape=(2, 5, 1)))
    with pytest.raises(ShapeError, match=r"'g'.*rank 3"):
        GlobalAveragePooling1D(name="g")(np.zeros((2, 3), "float32"))


def test_keras1_spellings():
    with pytest.warns(DeprecationWarning) as record:
        p2 = MaxPooling2D(pool_size=(2, 2), border_mode="same", dim_ordering="th")
        p1 = MaxPooling1D(pool_length=3, stride=1)
        a1 = AveragePooling1D(pool_length=2, border_mode="valid")
        g2 = GlobalAveragePooling2D(dim_ordering="tf")
        d = MaxPooling2D(dim_ordering="default")
    assert (p2.padding, p2.data_format) == ("same", "channels_first")
    assert (p1.pool_size, p1.strides) == ((3,), (1,))
    assert a1.pool_size == (2,) and g2.data_format == "channels_last"
    assert d.data_format == K.image_data_format()
    text = " ".join(str(w.message) for w in record)
    for old, new in [("border_mode", "padding"), ("dim_ordering", "data_format"),
                     ("pool_length", "pool_size"), ("stride", "strides")]:
        assert old in text and new in text
    with pytest.raises(ConfigError, match="Theano-only"):
        MaxPooling2D(border_mode="full")


def test_keras2_short_aliases_are_the_same_classes():
    assert MaxPool2D is MaxPooling2D

"""The public K functions for convolution, pooling, upsampling and normalization moments
(modelkit.backend.spatial_functions) against direct numpy formulas, the adjoint identity
of conv_transpose, `data_format=None`, and symbolic inputs."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.layers import Input
from modelkit.models import Model, load_model

rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


def conv2d_numpy(x, k, stride=1, dilation=1):
    """Valid 2-D cross-correlation, channels last, by its definition."""
    kh, kw, _, cout = k.shape
    eh, ew = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    oh, ow = (x.shape[1] - eh) // stride + 1, (x.shape[2] - ew) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + eh:dilation, j * stride:j * stride + ew:dilation]
            y[:, i, j] = np.einsum("nhwc,hwcf->nf", patch, k)
    return y


def test_conv_with_bias_fused_relu_strides_dilation_and_channels_first():
    x, k, b = r(2, 7, 6, 3), r(3, 2, 3, 4), r(4)
    want = conv2d_numpy(x, k, stride=2, dilation=1) + b
    got = K.conv(x, k, strides=2, data_format="channels_last", bias=b).value
    np.testing.assert_allclose(got, want, rtol=1e-10)
    got = K.conv(x, k, strides=(2, 2), data_format="channels_last", bias=b,
                 fused_relu=True).value
    np.testing.assert_allclose(got, np.maximum(want, 0), rtol=1e-10)
    got = K.conv(x.transpose(0, 3, 1, 2), k, dilation_rate=2, data_format="channels_first").value
    np.testing.assert_allclose(got, conv2d_numpy(x, k, dilation=2).transpose(0, 3, 1, 2),
                               rtol=1e-10)
    same = K.conv(x, k, padding="same", data_format="channels_last").value
    assert same.shape == (2, 7, 6, 4)


def test_conv_groups_split_the_channels():
    x, k = r(2, 5, 5, 4), r(3, 3, 2, 6)
    got = K.conv(x, k, groups=2, data_format="channels_last").value
    want = np.concatenate([conv2d_numpy(x[..., :2], k[..., :3]),
                           conv2d_numpy(x[..., 2:], k[..., 3:])], axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("padding,strides,output_padding", [
    ("valid", 2, None), ("same", 2, None), ("valid", 2, 1), ("same", 1, None)])
def test_conv_transpose_is_the_adjoint_of_conv(padding, strides, output_padding):
    """<conv(z, k), y> == <z, conv_transpose(y, k)> where z has conv_transpose's shape."""
    y, k = r(2, 4, 3, 5), r(3, 3, 2, 5)            # kernel (kh, kw, filters, in_channels)
    t = K.conv_transpose(y, k, strides, padding, output_padding,
                         data_format="channels_last").value
    z = r(*t.shape)
    c = K.conv(z, k, strides, padding, data_format="channels_last").value
    assert c.shape == y.shape
    np.testing.assert_allclose(np.vdot(c, y), np.vdot(z, t), rtol=1e-10)
    b = r(2)
    np.testing.assert_allclose(K.conv_transpose(y, k, strides, padding, output_padding,
                                                data_format="channels_last", bias=b).value,
                               t + b, rtol=1e-10)


def test_depthwise_and_separable_conv():
    x, dk, pk, b = r(2, 6, 5, 3), r(3, 3, 3, 2), r(1, 1, 6, 4), r(4)
    d = K.depthwise_conv(x, dk, data_format="channels_last").value
    want = np.stack([conv2d_numpy(x[..., c:c + 1], dk[:, :, c:c + 1, j:j + 1])[..., 0]
                     for c in range(3) for j in range(2)], axis=-1)
    np.testing.assert_allclose(d, want, rtol=1e-10)
    s = K.separable_conv(x, dk, pk, data_format="channels_last", bias=b).value
    np.testing.assert_allclose(s, want @ pk[0, 0] + b, rtol=1e-10)


def test_pools_as_numpy_windows():
    x = r(2, 6, 4, 3)
    win = x.reshape(2, 3, 2, 2, 2, 3)
    for fn, red in ((K.max_pool, np.max), (K.average_pool, np.mean)):
        np.testing.assert_allclose(fn(x, 2, data_format="channels_last").value,
                                   red(win, axis=(2, 4)), rtol=1e-12)
    np.testing.assert_allclose(K.pool2d(x, (2, 2), (2, 2), data_format="channels_last",
                                        pool_mode="avg").value, win.mean(axis=(2, 4)))
    v = r(1, 4, 2, 2, 2)                           # channels_first volume
    got = K.pool3d(v, (2, 2, 2), (2, 2, 2), data_format="channels_first").value
    np.testing.assert_allclose(got, v.reshape(1, 4, 1, 2, 1, 2, 1, 2).max(axis=(3, 5, 7)))
    same = K.max_pool(r(1, 5, 5, 1), 2, padding="same", data_format="channels_last")
    assert same.shape == (1, 3, 3, 1)


def test_resize_and_upsample():
    x = r(2, 3, 2, 4)
    want = np.repeat(np.repeat(x, 2, axis=1), 3, axis=2)
    np.testing.assert_array_equal(K.resize_images(x, 2, 3, "channels_last").value, want)
    np.testing.assert_array_equal(K.upsample(x, (2, 3), (1, 2)).value, want)
    v = r(1, 2, 2, 3, 2)
    np.testing.assert_array_equal(
        K.resize_volumes(v, 1, 2, 3, "channels_first").value,
        np.repeat(np.repeat(v, 2, axis=3), 3, axis=4))
    lin = K.resize_images(np.array([[[[0.0], [2.0]]]]), 1, 2, "channels_last",
                          interpolation="bilinear").value
    np.testing.assert_allclose(lin[0, 0, :, 0], [0.0, 0.5, 1.5, 2.0])   # half-pixel centres


def test_normalize_moments_with_weights():
    x, g, b = r(4, 3, 2), r(1, 1, 2), r(1, 1, 2)
    w = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], float)[..., None]
    y, mean, var = K.normalize_moments(x, (0, 1), g, b, epsilon=1e-3, weights=w)
    kept = x[w[..., 0].astype(bool)]
    np.testing.assert_allclose(mean.value.reshape(-1), kept.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var.value.reshape(-1), kept.var(0), rtol=1e-12)
    np.testing.assert_allclose(y.value, (x - kept.mean(0)) / np.sqrt(kept.var(0) + 1e-3) * g + b,
                               rtol=1e-10)


def test_data_format_none_follows_image_data_format():
    x = r(1, 2, 4, 4)
    K.set_image_data_format("channels_first")
    try:
        got = K.max_pool(x, 2).value
    finally:
        K.set_image_data_format("channels_last")
    np.testing.assert_allclose(got, x.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5)))
    assert K.max_pool(x, 2).shape == (1, 1, 2, 4)      # channels_last again


def test_symbolic_inputs_make_a_graph_node_that_saves(tmp_path):
    inp = Input((4, 4, 2))
    model = Model(inp, K.average_pool(inp, 2, data_format="channels_last"))
    x = r(3, 4, 4, 2).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), x.reshape(3, 2, 2, 2, 2, 2).mean(axis=(2, 4)),
                               rtol=1e-6)
    model.save(tmp_path / "m.h5")
    np.testing.assert_array_equal(load_model(tmp_path / "m.h5").predict(x), model.predict(x))

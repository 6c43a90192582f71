"""Convolution, padding, cropping and upsampling layers: one table row per layer config.

For every row, through run_layer_test: the symbolic shape and compute_output_shape, the
numbers against a direct numpy loop written out here, a float64 finite-difference gradient
check (input and every weight), the config, IR, .h5, .keras and ONNX round trips; and a
training step. Then bad arguments and inputs, the Keras 1 spellings and the real Keras
fixture files (the spec's samples: tests/test_spec_samples.py).
"""

import itertools

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ConfigError, ShapeError
from modelkit.layers import (LAYERS, AtrousConvolution1D, AtrousConvolution2D, Conv1D,
                             Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose,
                             Convolution1D, Convolution2D, Convolution3D, Cropping1D,
                             Cropping2D, Cropping3D, DepthwiseConv1D, DepthwiseConv2D, Input,
                             SeparableConv1D, SeparableConv2D, UpSampling1D,
                             UpSampling2D, UpSampling3D, ZeroPadding1D, ZeroPadding2D,
                             ZeroPadding3D)
from modelkit.models import Model, load_model

from layer_testing import run_layer_test

rng = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------
# direct numpy references (loops over output positions and kernel offsets)


def same_pad(length, k, s, d=1):
    """TF 'SAME': pad total max((ceil(L/s)-1)*s + (k-1)*d + 1 - L, 0), odd pixel at the end."""
    out = -(-length // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - length, 0)
    return total // 2, total - total // 2


def to_cl(x, cf):
    return np.moveaxis(x, 1, -1) if cf else x


def from_cl(y, cf):
    return np.moveaxis(y, -1, 1) if cf else y


def conv_loops(x, w, b=None, strides=1, dilation=1, padding="valid", groups=1):
    """Channels-last convolution of x (N, *S, C) with w (*k, C/groups, F)."""
    n = w.ndim - 2
    ks = w.shape[:n]
    st = (strides,) * n if isinstance(strides, int) else strides
    dl = (dilation,) * n if isinstance(dilation, int) else dilation
    if padding == "same":
        pads = [same_pad(L, k, s, d) for L, k, s, d in zip(x.shape[1:-1], ks, st, dl)]
    elif padding == "causal":
        pads = [((k - 1) * d, 0) for k, d in zip(ks, dl)]
    else:
        pads = [(0, 0)] * n
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    out = [(xp.shape[1 + i] - (ks[i] - 1) * dl[i] - 1) // st[i] + 1 for i in range(n)]
    cg, f = w.shape[-2:]
    fg = f // groups
    y = np.zeros([x.shape[0]] + out + [f])
    for pos in itertools.product(*(range(o) for o in out)):
        for off in itertools.product(*(range(k) for k in ks)):
            v = xp[(slice(None),) + tuple(p * s + o * d for p, s, o, d in zip(pos, st, off, dl))]
            for g in range(groups):
                y[(slice(None),) + pos + (slice(g * fg, (g + 1) * fg),)] += \
                    v[:, g * cg:(g + 1) * cg] @ w[off][:, g * fg:(g + 1) * fg]
    return y if b is None else y + b


def conv_transpose_loops(x, w, b, strides, out_shape, padding, dilation=1):
    """Scatter every input pixel times the kernel (w: (*k, F, C)), then cut TF's window."""
    n = w.ndim - 2
    ks = w.shape[:n]
    st = (strides,) * n if isinstance(strides, int) else strides
    dl = (dilation,) * n if isinstance(dilation, int) else dilation
    full = [(L - 1) * s + (k - 1) * d + 1 for L, s, k, d in zip(x.shape[1:-1], st, ks, dl)]
    before = [same_pad(o, k, s, d)[0] if padding == "same" else 0
              for o, k, s, d in zip(out_shape, ks, st, dl)]
    ext = [max(f, p + o) for f, p, o in zip(full, before, out_shape)]
    y = np.zeros([x.shape[0]] + ext + [w.shape[-2]])
    for pos in itertools.product(*(range(L) for L in x.shape[1:-1])):
        for off in itertools.product(*(range(k) for k in ks)):
            idx = tuple(p * s + o * d for p, s, o, d in zip(pos, st, off, dl))
            y[(slice(None),) + idx] += x[(slice(None),) + pos] @ w[off].T
    y = y[(slice(None),) + tuple(slice(p, p + o) for p, o in zip(before, out_shape))]
    return y + b


def depthwise_loops(x, w, strides=1, padding="valid", dilation=1):
    """Depthwise conv = grouped conv with one group per input channel."""
    cin, dm = w.shape[-2:]
    full = np.zeros(w.shape[:-2] + (1, cin * dm))
    for c in range(cin):
        full[..., 0, c * dm:(c + 1) * dm] = w[..., c, :]
    return conv_loops(x, full, None, strides, dilation, padding, groups=cin)


def bilinear_loops(x, sizes):
    """TF2 resize (half-pixel centres) of a channels-last (N, H, W, C) image, pixel by pixel."""
    n, h, w, c = x.shape
    oh, ow = h * sizes[0], w * sizes[1]
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            si = min(max((i + 0.5) / sizes[0] - 0.5, 0), h - 1)
            sj = min(max((j + 0.5) / sizes[1] - 0.5, 0), w - 1)
            i0, j0 = int(np.floor(si)), int(np.floor(sj))
            i1, j1 = min(i0 + 1, h - 1), min(j0 + 1, w - 1)
            fi, fj = si - i0, sj - j0
            y[:, i, j] = ((1 - fi) * (1 - fj) * x[:, i0, j0] + (1 - fi) * fj * x[:, i0, j1]
                          + fi * (1 - fj) * x[:, i1, j0] + fi * fj * x[:, i1, j1])
    return y


ACT = {None: lambda v: v, "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh}


def conv_ref(strides=1, padding="valid", dilation=1, groups=1, activation=None, cf=False):
    def ref(x, ws):
        b = ws[1] if len(ws) > 1 else None
        y = conv_loops(to_cl(x, cf), ws[0], b, strides, dilation, padding, groups)
        return from_cl(ACT[activation](y), cf)
    return ref


def conv_t_ref(strides, out_shape, padding="valid", dilation=1, cf=False):
    def ref(x, ws):
        return from_cl(conv_transpose_loops(to_cl(x, cf), ws[0], ws[1], strides, out_shape,
                                            padding, dilation), cf)
    return ref


def depthwise_ref(strides=1, padding="valid", activation=None, cf=False):
    def ref(x, ws):
        return from_cl(ACT[activation](depthwise_loops(to_cl(x, cf), ws[0], strides, padding)
                                       + ws[1]), cf)
    return ref


def separable_ref(strides=1, padding="valid", dilation=1, activation=None, cf=False):
    def ref(x, ws):
        d = depthwise_loops(to_cl(x, cf), ws[0], strides, padding, dilation)
        return from_cl(ACT[activation](conv_loops(d, ws[1], ws[2])), cf)
    return ref


def pad_ref(pads, cf=False):
    def ref(x, ws):
        return from_cl(np.pad(to_cl(x, cf), [(0, 0)] + pads + [(0, 0)]), cf)
    return ref


def crop_ref(crops, cf=False):
    def ref(x, ws):
        xl = to_cl(x, cf)
        idx = (slice(None),) + tuple(slice(b, xl.shape[1 + i] - e) for i, (b, e) in
                                     enumerate(crops))
        return from_cl(xl[idx], cf)
    return ref


def repeat_ref(sizes, cf=False):
    def ref(x, ws):
        y = to_cl(x, cf)
        for i, s in enumerate(sizes):
            y = np.repeat(y, s, axis=1 + i)
        return from_cl(y, cf)
    return ref


# ---------------------------------------------------------------------------------------
# the table: id -> (layer factory, input shape without batch, expected output shape, reference)

CF = {"data_format": "channels_first"}
ROWS = {
    "conv1d_valid": (lambda **k: Conv1D(4, 3, **k), (7, 3), (5, 4), conv_ref()),
    "conv1d_same_stride2_tanh": (lambda **k: Conv1D(4, 3, strides=2, padding="same",
                                                    activation="tanh", **k),
                                 (7, 3), (4, 4), conv_ref(2, "same", activation="tanh")),
    "conv1d_causal_dilated": (lambda **k: Conv1D(4, 3, padding="causal", dilation_rate=2, **k),
                              (8, 2), (8, 4), conv_ref(1, "causal", 2)),
    "conv1d_groups_no_bias": (lambda **k: Conv1D(4, 2, groups=2, padding="same", use_bias=False,
                                                 **k),
                              (6, 4), (6, 4), conv_ref(1, "same", groups=2)),
    "conv1d_channels_first": (lambda **k: Conv1D(3, 3, **CF, **k), (2, 7), (3, 5),
                              conv_ref(cf=True)),
    "conv2d_valid": (lambda **k: Conv2D(4, 3, **k), (6, 5, 3), (4, 3, 4), conv_ref()),
    "conv2d_same_stride2_relu": (lambda **k: Conv2D(4, (3, 2), strides=2, padding="same",
                                                    activation="relu", **k),
                                 (6, 5, 3), (3, 3, 4), conv_ref(2, "same", activation="relu")),
    "conv2d_dilated_same": (lambda **k: Conv2D(3, 3, dilation_rate=2, padding="same", **k),
                            (7, 7, 2), (7, 7, 3), conv_ref(1, "same", 2)),
    "conv2d_groups": (lambda **k: Conv2D(6, 3, groups=2, **k), (5, 6, 4), (3, 4, 6),
                      conv_ref(groups=2)),
    "conv2d_stride3_relu": (lambda **k: Conv2D(1, 3, strides=3, activation="relu", **k),
                            (6, 6, 1), (2, 2, 1), conv_ref(3, activation="relu")),
    "conv2d_rect_stride_relu": (lambda **k: Conv2D(1, (2, 3), strides=(2, 3), activation="relu",
                                                   **k),
                                (4, 4, 1), (2, 1, 1), conv_ref((2, 3), activation="relu")),
    "conv2d_same_even_kernel": (lambda **k: Conv2D(2, 4, strides=2, padding="same", **k),
                                (6, 6, 2), (3, 3, 2), conv_ref(2, "same")),
    "conv2d_channels_first_relu": (lambda **k: Conv2D(4, 3, strides=2, padding="same",
                                                      activation="relu", **CF, **k),
                                   (3, 6, 5), (4, 3, 3),
                                   conv_ref(2, "same", activation="relu", cf=True)),
    "conv1d_transpose": (lambda **k: Conv1DTranspose(3, 3, strides=2, **k), (4, 2), (9, 3),
                         conv_t_ref((2,), (9,))),
    "conv2d_transpose_same": (lambda **k: Conv2DTranspose(3, 3, strides=2, padding="same", **k),
                              (3, 4, 2), (6, 8, 3), conv_t_ref((2, 2), (6, 8), "same")),
    "conv2d_transpose_valid_rect": (lambda **k: Conv2DTranspose(2, (3, 2), strides=(2, 1), **k),
                                    (3, 3, 2), (7, 4, 2), conv_t_ref((2, 1), (7, 4))),
    "conv2d_transpose_output_padding": (
        lambda **k: Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, **k),
        (3, 3, 2), (6, 6, 3), conv_t_ref((2, 2), (6, 6), "same")),
    "conv2d_transpose_stride_gt_kernel": (lambda **k: Conv2DTranspose(2, 2, strides=3, **k),
                                          (2, 2, 2), (6, 6, 2), conv_t_ref((3, 3), (6, 6))),
    "conv2d_transpose_dilated": (lambda **k: Conv2DTranspose(2, 3, dilation_rate=2, **k),
                                 (3, 3, 2), (7, 7, 2), conv_t_ref((1, 1), (7, 7), dilation=2)),
    "conv2d_transpose_channels_first": (
        lambda **k: Conv2DTranspose(2, 3, strides=2, padding="same", **CF, **k),
        (2, 3, 3), (2, 6, 6), conv_t_ref((2, 2), (6, 6), "same", cf=True)),
    "depthwise2d_multiplier": (lambda **k: DepthwiseConv2D(3, depth_multiplier=2, **k),
                               (5, 5, 3), (3, 3, 6), depthwise_ref()),
    "depthwise2d_same_stride2_relu": (lambda **k: DepthwiseConv2D(3, strides=2, padding="same",
                                                                  activation="relu", **k),
                                      (5, 6, 2), (3, 3, 2),
                                      depthwise_ref(2, "same", activation="relu")),
    "depthwise2d_channels_first": (lambda **k: DepthwiseConv2D(3, padding="same", **CF, **k),
                                   (2, 5, 5), (2, 5, 5), depthwise_ref(1, "same", cf=True)),
    "depthwise1d_causal": (lambda **k: DepthwiseConv1D(3, depth_multiplier=2, padding="causal",
                                                       **k),
                           (6, 2), (6, 4), depthwise_ref(1, "causal")),
    "separable2d_same_relu": (lambda **k: SeparableConv2D(4, 3, padding="same",
                                                          depth_multiplier=2,
                                                          activation="relu", **k),
                              (6, 6, 3), (6, 6, 4), separable_ref(1, "same", activation="relu")),
    "separable2d_channels_first": (lambda **k: SeparableConv2D(4, 3, strides=2, **CF, **k),
                                   (3, 7, 7), (4, 3, 3), separable_ref(2, cf=True)),
    "separable1d_dilated": (lambda **k: SeparableConv1D(3, 3, dilation_rate=2, padding="same",
                                                        **k),
                            (8, 2), (8, 3), separable_ref(1, "same", 2)),
    "zero_padding1d": (lambda **k: ZeroPadding1D((1, 3), **k), (4, 3), (8, 3),
                       pad_ref([(1, 3)])),
    "zero_padding2d": (lambda **k: ZeroPadding2D(((1, 2), (0, 1)), **k), (3, 4, 2), (6, 5, 2),
                       pad_ref([(1, 2), (0, 1)])),
    "zero_padding2d_channels_first": (lambda **k: ZeroPadding2D(1, **CF, **k), (2, 3, 3),
                                      (2, 5, 5), pad_ref([(1, 1), (1, 1)], cf=True)),
    "cropping1d": (lambda **k: Cropping1D((1, 2), **k), (6, 3), (3, 3), crop_ref([(1, 2)])),
    "cropping2d": (lambda **k: Cropping2D(((1, 0), (2, 1)), **k), (5, 6, 2), (4, 3, 2),
                   crop_ref([(1, 0), (2, 1)])),
    "cropping2d_channels_first": (lambda **k: Cropping2D(1, **CF, **k), (2, 5, 5), (2, 3, 3),
                                  crop_ref([(1, 1), (1, 1)], cf=True)),
    "upsampling1d": (lambda **k: UpSampling1D(3, **k), (3, 2), (9, 2), repeat_ref([3])),
    "upsampling2d": (lambda **k: UpSampling2D((2, 3), **k), (2, 3, 2), (4, 9, 2),
                     repeat_ref([2, 3])),
    "upsampling2d_channels_first": (lambda **k: UpSampling2D(2, **CF, **k), (2, 2, 3),
                                    (2, 4, 6), repeat_ref([2, 2], cf=True)),
    "conv3d_valid": (lambda **k: Conv3D(3, (2, 3, 2), **k), (4, 5, 3, 2), (3, 3, 2, 3),
                     conv_ref()),
    "conv3d_same_stride2_relu": (lambda **k: Conv3D(2, 3, strides=(2, 1, 2), padding="same",
                                                    activation="relu", **k),
                                 (5, 3, 4, 2), (3, 3, 2, 2),
                                 conv_ref((2, 1, 2), "same", activation="relu")),
    "conv3d_dilated_channels_first": (lambda **k: Conv3D(2, 2, dilation_rate=2, **CF, **k),
                                      (2, 4, 4, 3), (2, 2, 2, 1), conv_ref(1, dilation=2, cf=True)),
    "conv3d_transpose_same": (lambda **k: Conv3DTranspose(2, 3, strides=2, padding="same", **k),
                              (2, 3, 2, 2), (4, 6, 4, 2), conv_t_ref((2, 2, 2), (4, 6, 4), "same")),
    "conv3d_transpose_valid_channels_first": (
        lambda **k: Conv3DTranspose(2, (2, 3, 2), strides=(1, 2, 2), **CF, **k),
        (2, 2, 2, 3), (2, 3, 5, 6), conv_t_ref((1, 2, 2), (3, 5, 6), cf=True)),
    "zero_padding3d": (lambda **k: ZeroPadding3D(((1, 0), (0, 2), (1, 1)), **k), (2, 3, 2, 2),
                       (3, 5, 4, 2), pad_ref([(1, 0), (0, 2), (1, 1)])),
    "zero_padding3d_channels_first": (lambda **k: ZeroPadding3D(1, **CF, **k), (2, 2, 3, 2),
                                      (2, 4, 5, 4), pad_ref([(1, 1)] * 3, cf=True)),
    "cropping3d": (lambda **k: Cropping3D(((1, 0), (0, 1), (1, 1)), **k), (3, 4, 4, 2),
                   (2, 3, 2, 2), crop_ref([(1, 0), (0, 1), (1, 1)])),
    "cropping3d_channels_first": (lambda **k: Cropping3D(1, **CF, **k), (2, 3, 4, 5),
                                  (2, 1, 2, 3), crop_ref([(1, 1)] * 3, cf=True)),
    "upsampling3d": (lambda **k: UpSampling3D((2, 1, 3), **k), (2, 2, 2, 2), (4, 2, 6, 2),
                     repeat_ref([2, 1, 3])),
    "upsampling3d_channels_first": (lambda **k: UpSampling3D(2, **CF, **k), (2, 2, 1, 2),
                                    (2, 4, 2, 4), repeat_ref([2, 2, 2], cf=True)),
    "upsampling2d_bilinear": (lambda **k: UpSampling2D((2, 3), interpolation="bilinear", **k),
                              (3, 4, 2), (6, 12, 2),
                              lambda x, ws: bilinear_loops(x, (2, 3))),
}
IDS = sorted(ROWS)


def make(row_id, **kw):
    factory, in_shape, out_shape, ref = ROWS[row_id]
    return factory(**kw), in_shape, out_shape, ref


def randomize(layer, scale=0.5):
    """Random weights everywhere (biases too, so the bias path is tested)."""
    layer.set_weights([rng.standard_normal(w.shape) * scale for w in layer.get_weights()])


def one_layer_model(layer, in_shape):
    inp = Input(shape=in_shape)
    return Model(inp, layer(inp))


def signed(r, shape):
    """Weights of both signs (relu's two sides, the bias path)."""
    return (r.standard_normal(shape) * 0.5).astype("float32")


# ---------------------------------------------------------------------------------------
# the quality bars, row by row


@pytest.mark.parametrize("row_id", IDS)
def test_layer(row_id, tmp_path):
    """Shape, the numbers against the numpy loops, config/IR/.h5/.keras/ONNX round trips,
    float64 gradients w.r.t. the input and every weight."""
    factory, in_shape, out_shape, ref = ROWS[row_id]
    model, _ = run_layer_test(factory, in_shape, tmp_path, output_shape=out_shape,
                              weights=signed, rtol=1e-5, atol=1e-5,
                              reference=lambda x, layer: ref(x, layer.get_weights()))
    layer = model.layers[-1]
    assert layer.compute_output_shape((5,) + in_shape) == (5,) + out_shape


@pytest.mark.parametrize("row_id", IDS)
def test_training_step_runs_in_float32(row_id):
    """The layer trains inside a compiled model; float32 in, float32 out."""
    layer, in_shape, _, _ = make(row_id)
    model = one_layer_model(layer, in_shape)
    model.compile(loss="mse", optimizer="sgd")
    x = rng.standard_normal((4,) + in_shape).astype("float32")
    y = model.predict(x)
    assert y.dtype == np.float32
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, np.zeros_like(y) + 1)
    after = model.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert not before or any(not np.array_equal(a, b) for a, b in zip(before, after))


# ---------------------------------------------------------------------------------------
# kernel layouts (Keras's, so weights move between Keras and modelkit)


def test_weight_shapes_are_keras_layouts():
    def shapes(layer, in_shape):
        layer(Input(shape=in_shape))
        return [tuple(w.shape) for w in layer.weights]
    assert shapes(Conv2D(8, (3, 2), groups=2), (9, 9, 4)) == [(3, 2, 2, 8), (8,)]
    assert shapes(Conv2D(8, 3, data_format="channels_first"), (4, 9, 9)) == [(3, 3, 4, 8), (8,)]
    assert shapes(Conv1D(5, 4), (9, 3)) == [(4, 3, 5), (5,)]
    assert shapes(Conv2DTranspose(8, 3), (5, 5, 4)) == [(3, 3, 8, 4), (8,)]
    assert shapes(DepthwiseConv2D(3, depth_multiplier=2), (5, 5, 4)) == [(3, 3, 4, 2), (8,)]
    assert shapes(SeparableConv2D(6, 3, depth_multiplier=2), (5, 5, 4)) == \
        [(3, 3, 4, 2), (1, 1, 8, 6), (6,)]
    assert shapes(SeparableConv1D(6, 3), (5, 4)) == [(3, 4, 1), (1, 4, 6), (6,)]
    layer = SeparableConv2D(2, 3, name="sep")
    layer(Input(shape=(4, 4, 1)))
    assert [w.name for w in layer.weights] == ["sep/depthwise_kernel", "sep/pointwise_kernel",
                                               "sep/bias"]


def test_default_data_format_follows_the_global_setting():
    K.set_image_data_format("channels_first")
    try:
        assert Conv2D(2, 3).data_format == "channels_first"
        assert ZeroPadding2D().data_format == "channels_first"
        assert Conv1D(2, 3).data_format == "channels_last"      # Keras: 1D defaults to last
    finally:
        K.set_image_data_format("channels_last")
    assert Conv2D(2, 3).data_format == "channels_last"


def test_channels_first_and_last_agree():
    x = rng.standard_normal((2, 6, 7, 3)).astype("float32")
    for make_layer in (lambda **k: Conv2D(4, 3, strides=2, padding="same", **k),
                       lambda **k: SeparableConv2D(4, 3, padding="same", **k),
                       lambda **k: DepthwiseConv2D(3, depth_multiplier=2, **k),
                       lambda **k: Conv2DTranspose(3, 3, strides=2, padding="same", **k)):
        last, first = make_layer(), make_layer(data_format="channels_first")
        last(x)
        first(np.moveaxis(x, -1, 1))
        randomize(last)
        first.set_weights(last.get_weights())
        np.testing.assert_allclose(np.moveaxis(first(np.moveaxis(x, -1, 1)).value, 1, -1),
                                   last(x).value, rtol=1e-5, atol=1e-5)


def test_fused_relu_equals_relu_after_linear_conv():
    x = rng.standard_normal((2, 5, 5, 3)).astype("float32")
    fused, plain = Conv2D(4, 3, activation="relu"), Conv2D(4, 3)
    fused(x)
    plain(x)
    randomize(fused)
    plain.set_weights(fused.get_weights())
    np.testing.assert_array_equal(fused(x).value, np.maximum(plain(x).value, 0))


# ---------------------------------------------------------------------------------------
# bad arguments and bad inputs: modelkit errors naming the layer, expected vs actual


@pytest.mark.parametrize("make_layer,match", [
    (lambda: Conv2D(0, 3), "filters must be a positive integer"),
    (lambda: Conv2D(4, (3, 3, 3)), "kernel_size must be an int or a tuple of 2"),
    (lambda: Conv2D(4, 3, strides=0), "strides must be positive"),
    (lambda: Conv2D(4, 3, padding="causal"), "'causal' is only for 1D"),
    (lambda: Conv2D(4, 3, padding="reflect"), "padding must be one of"),
    (lambda: Conv2D(4, 3, strides=2, dilation_rate=2), "strides > 1 cannot be combined"),
    (lambda: Conv2D(5, 3, groups=2), "divisible by groups"),
    (lambda: Conv2D(4, 3, data_format="nhcw"), "data_format must be"),
    (lambda: Conv2DTranspose(4, 3, strides=2, output_padding=2), "output_padding"),
    (lambda: Conv2DTranspose(4, 3, padding="causal"), "padding must be one of"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: UpSampling2D(interpolation="bicubic"), "interpolation"),
    (lambda: UpSampling2D(size=(2, 0)), "size must be positive"),
    (lambda: ZeroPadding2D(padding=(1, 2, 3)), "padding must be an int"),
    (lambda: Cropping2D(cropping=-1), "non-negative"),
    (lambda: Conv2D(4, 3, border_mode="full"), "Theano"),
])
def test_bad_arguments_raise_config_error(make_layer, match):
    with pytest.raises(ConfigError, match=match):
        make_layer()


def test_wrong_rank_names_the_layer_and_both_shapes():
    layer = Conv2D(4, 3, name="my_conv")
    with pytest.raises(ShapeError, match=r"'my_conv'.*rank 4.*\(None, 5, 3\)"):
        layer(Input(shape=(5, 3)))
    with pytest.raises(ShapeError, match=r"'my_conv'.*rank 4.*\(2, 5, 3\)"):
        layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ShapeError, match=r"'pad'.*rank 4"):
        ZeroPadding2D(name="pad")(np.zeros((2, 5, 3), "float32"))


def test_wrong_channel_count_after_build_is_a_shape_error():
    layer = Conv2D(4, 3, name="c")
    layer(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ShapeError, match=r"'c'.*built for inputs with 3 channels.*with 2"):
        layer(np.zeros((1, 5, 5, 2), "float32"))
    with pytest.raises(ShapeError, match="channel dimension of the input must be known"):
        Conv2D(4, 3)(Input(shape=(5, 5, None)))


def test_input_smaller_than_kernel_and_over_cropping():
    with pytest.raises(ShapeError, match=r"'c'.*smaller than the kernel"):
        Conv2D(4, 3, name="c")(Input(shape=(2, 5, 1)))
    with pytest.raises(ShapeError, match=r"'crop'.*removes all"):
        Cropping2D(((2, 2), (0, 0)), name="crop")(Input(shape=(4, 5, 1)))


def test_groups_must_divide_input_channels():
    with pytest.raises(ShapeError, match="divisible by groups"):
        Conv2D(4, 3, groups=2)(Input(shape=(5, 5, 3)))


# ---------------------------------------------------------------------------------------
# Keras 1 spellings


def test_convolution2d_keras1_arguments_map_to_conv2d():
    with pytest.warns(DeprecationWarning) as record:
        layer = Convolution2D(8, 3, 5, border_mode="same", subsample=(2, 1), init="he_normal",
                              W_regularizer="l2", b_regularizer="l1", W_constraint="max_norm",
                              bias=False, dim_ordering="th", activation="relu")
    assert type(layer) is Conv2D
    assert (layer.filters, layer.kernel_size, layer.padding, layer.strides) == \
        (8, (3, 5), "same", (2, 1))
    assert layer.data_format == "channels_first" and layer.use_bias is False
    config = layer.get_config()
    assert config["kernel_initializer"]["class_name"] == "HeNormal"
    assert config["kernel_regularizer"] is not None and config["bias_regularizer"] is not None
    assert config["kernel_constraint"]["class_name"] == "MaxNorm"
    text = " ".join(str(w.message) for w in record)
    for old, new in [("Convolution2D", "Conv2D"), ("border_mode", "padding"),
                     ("subsample", "strides"), ("init", "kernel_initializer"),
                     ("W_regularizer", "kernel_regularizer"), ("dim_ordering", "data_format"),
                     ("bias", "use_bias"), ("nb_row, nb_col", "kernel_size")]:
        assert old in text and new in text, (old, new)


def test_convolution_keras1_variants():
    with pytest.warns(DeprecationWarning):
        c1 = Convolution1D(nb_filter=6, filter_length=3, subsample_length=2, input_dim=4)
        a1 = AtrousConvolution1D(6, 3, atrous_rate=2, border_mode="same")
        a2 = AtrousConvolution2D(6, 3, 3, atrous_rate=(2, 2))
        keras2_names = Convolution2D(filters=1, kernel_size=(3, 3), strides=(3, 3),
                                     activation="relu", name="conv1_1")
        c2_kw = Convolution2D(nb_filter=2, nb_row=2, nb_col=3)
        dim_default = Convolution2D(2, 3, 3, dim_ordering="default")
    assert type(c1) is Conv1D and (c1.filters, c1.kernel_size, c1.strides) == (6, (3,), (2,))
    assert c1._batch_input_shape == (None, 4)
    assert a1.dilation_rate == (2,) and a1.padding == "same"
    assert type(a2) is Conv2D and a2.dilation_rate == (2, 2)
    assert keras2_names.name == "conv1_1" and keras2_names.strides == (3, 3)
    assert c2_kw.kernel_size == (2, 3)
    assert dim_default.data_format == K.image_data_format()


def test_convolution3d_keras1_arguments_map_to_conv3d():
    with pytest.warns(DeprecationWarning) as record:
        layer = Convolution3D(4, 3, 2, 1, border_mode="same", subsample=(2, 1, 1),
                              dim_ordering="th")
        kw = Convolution3D(nb_filter=2, kernel_dim1=1, kernel_dim2=2, kernel_dim3=3)
    assert type(layer) is Conv3D and type(kw) is Conv3D
    assert (layer.filters, layer.kernel_size, layer.padding, layer.strides) == \
        (4, (3, 2, 1), "same", (2, 1, 1))
    assert layer.data_format == "channels_first" and kw.kernel_size == (1, 2, 3)
    assert "kernel_dim1, kernel_dim2, kernel_dim3" in " ".join(str(w.message) for w in record)
    with pytest.warns(DeprecationWarning):
        with pytest.raises(ConfigError, match="kernel_dim1, kernel_dim2 and kernel_dim3"):
            Convolution3D(2, kernel_dim1=3)


def test_keras1_border_mode_full_is_a_config_error_saying_theano_only():
    with pytest.warns(DeprecationWarning):
        with pytest.raises(ConfigError, match="Theano-only"):
            Convolution2D(4, 3, 3, border_mode="full")
        with pytest.raises(ConfigError, match="Theano-only"):
            Convolution1D(4, 3, border_mode="full")


def test_keras1_class_names_are_in_the_layer_registry():
    for old, new in [("Convolution1D", Conv1D), ("Convolution2D", Conv2D),
                     ("AtrousConvolution1D", Conv1D), ("AtrousConvolution2D", Conv2D)]:
        cls = LAYERS.get(old)
        with pytest.warns(DeprecationWarning):
            layer = cls.from_config({"nb_filter": 2, "filter_length": 3} if "1D" in old else
                                    {"nb_filter": 2, "nb_row": 3, "nb_col": 3,
                                     "border_mode": "same", "name": f"x_{old}"})
        assert type(layer) is new


def test_keras1_spellings_of_the_shape_layers():
    with pytest.warns(DeprecationWarning) as record:
        pad = ZeroPadding2D(padding=(1, 2), dim_ordering="th")
        up1 = UpSampling1D(length=3)
        up2 = UpSampling2D(size=(2, 2), dim_ordering="th")
        crop = Cropping2D(cropping=((1, 1), (0, 0)), dim_ordering="tf")
    assert pad.data_format == "channels_first" and pad.padding == ((1, 1), (2, 2))
    assert up1.size == (3,) and up2.data_format == "channels_first"
    assert crop.data_format == "channels_last"
    text = " ".join(str(w.message) for w in record)
    assert "dim_ordering" in text and "data_format" in text and "'length'" in text


def test_integer_images_and_integral_float_filters():
    layer = Conv2D(2.0, 3)
    assert layer.filters == 2
    y = layer(np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5, 1))
    assert y.dtype == np.float32 and y.shape == (2, 3, 3, 2)
    with pytest.raises(ConfigError, match="filters"):
        Conv2D(2.5, 3)


def test_keras1_positional_arguments_are_checked():
    with pytest.warns(DeprecationWarning):
        with pytest.raises(ConfigError, match="too many positional"):
            Convolution2D(2, 3, 3, "glorot_uniform")
        with pytest.raises(ConfigError, match="nb_row and nb_col"):
            Convolution2D(2, nb_row=3)


# ---------------------------------------------------------------------------------------
# real Keras files

FIXTURES = ["cnn", "cnn_channels_first", "cnn_channels_first_flatten_cf", "conv1d_misc",
            "conv2d_misc"]


@pytest.mark.parametrize("version", ["keras2", "keras3"])
@pytest.mark.parametrize("name", FIXTURES)
def test_real_keras_fixture_predictions(version, name):
    from pathlib import Path
    base = Path(__file__).resolve().parents[1] / "fixtures" / version
    model = load_model(base / f"{name}.h5")
    data = np.load(base / f"{name}.npz")
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], rtol=1e-5, atol=1e-5)


def test_loaded_fixture_uses_keras_layer_classes():
    from pathlib import Path
    model = load_model(Path(__file__).resolve().parents[1] / "fixtures" / "keras2" / "conv2d_misc.h5")
    assert [type(la).__name__ for la in model.layers] == [
        "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose", "Cropping2D",
        "GlobalMaxPooling2D"]


def test_every_public_layer_has_a_row():
    import modelkit.layers.convolutional as conv
    covered = {type(make(r)[0]).__name__ for r in ROWS}
    keras1 = {"Convolution1D", "Convolution2D", "Convolution3D", "AtrousConvolution1D",
              "AtrousConvolution2D", "Convolution2DTranspose", "Convolution3DTranspose",
              "SeparableConvolution1D", "SeparableConvolution2D", "Deconvolution2D",
              "Deconvolution3D"}           # aliases of classes with rows
    assert set(conv.__all__) - keras1 <= covered, set(conv.__all__) - keras1 - covered


def test_keras1_spellings_of_the_3d_layers():
    from modelkit.layers import AveragePooling3D, MaxPooling3D
    with pytest.warns(DeprecationWarning):
        pad = ZeroPadding3D(padding=(1, 2, 1), dim_ordering="th")
        up = UpSampling3D(size=(2, 2, 1), dim_ordering="tf")
        pool = MaxPooling3D(pool_size=(2, 2, 2), border_mode="same", dim_ordering="th")
        avg = AveragePooling3D((1, 2, 2), border_mode="valid")
    assert pad.data_format == "channels_first" and pad.padding == ((1, 1), (2, 2), (1, 1))
    assert up.data_format == "channels_last" and up.size == (2, 2, 1)
    assert pool.padding == "same" and pool.data_format == "channels_first"
    assert avg.pool_size == (1, 2, 2) and avg.padding == "valid"

"""ConvLSTM2D: one case table through run_layer_test (numbers against a direct numpy
recurrence, float64 gradients, config/IR/.h5/.keras/ONNX round trips; go_backwards,
channels_first, return_state), then dropout, stateful, initial states, masks, real Keras 2 and
Keras 3 files (also the Conv3D family's), and the conv_lstm example in miniature."""

from pathlib import Path

import numpy as np
import pytest

from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run
from modelkit.errors import ConfigError, ShapeError, UnsupportedError
from modelkit.layers import (BatchNormalization, Conv3D, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, Input,
                             Masking)
from modelkit.models import Model, Sequential, load_model

from layer_testing import run_layer_test

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(77)


def convnd_np(x, w, strides, padding, dilation):
    """Channels-last N-d convolution by explicit window sums (TF 'same' pads)."""
    import itertools
    n = w.ndim - 2
    pads = []
    for size, k, s, d in zip(x.shape[1:1 + n], w.shape[:n], strides, dilation):
        if padding == "same":
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        else:
            pads.append((0, 0))
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    outs = [(xp.shape[1 + a] - (w.shape[a] - 1) * dilation[a] - 1) // strides[a] + 1
            for a in range(n)]
    y = np.zeros((x.shape[0], *outs, w.shape[-1]))
    for pos in itertools.product(*map(range, outs)):
        for off in itertools.product(*map(range, w.shape[:n])):
            idx = tuple(p * s + o * d for p, o, s, d in zip(pos, off, strides, dilation))
            y[(slice(None),) + pos] += xp[(slice(None),) + idx] @ w[off]
    return y


def hard_sigmoid(v):
    return np.clip(0.2 * v + 0.5, 0.0, 1.0)


def conv_lstm_np(x, kernel, rec, bias, strides=(1, 1), padding="valid", dilation=None,
                 go_backwards=False, cf=False, act=np.tanh, rec_act=hard_sigmoid, h=None, c=None,
                 mask=None):
    """The Keras 2 ConvLSTM recurrence at any rank (the kernel's), written out; returns
    (sequence, h, c). `mask` (batch, time): a masked step keeps h and c (Keras 2's K.rnn)."""
    rank = kernel.ndim - 2
    ones = (1,) * rank
    if cf:
        x = np.moveaxis(x, 2, -1)
    if go_backwards:
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    n = rec.shape[-2]
    seq = []
    for t in range(x.shape[1]):
        z = convnd_np(x[:, t], kernel, strides, padding, dilation or ones) + bias
        if h is None:
            h = np.zeros(z.shape[:-1] + (n,))
            c = np.zeros_like(h)
        z = z + convnd_np(h, rec, ones, "same", ones)
        i, f, o = rec_act(z[..., :n]), rec_act(z[..., n:2 * n]), rec_act(z[..., 3 * n:])
        c_new = f * c + i * act(z[..., 2 * n:3 * n])
        h_new = o * act(c_new)
        keep = (np.ones(len(x), bool) if mask is None else mask[:, t]).reshape(
            (-1,) + ones + (1,))
        h = np.where(keep, h_new, h)
        c = np.where(keep, c_new, c)
        seq.append(h)
    seq = np.stack(seq, axis=1)
    if cf:
        return np.moveaxis(seq, -1, 2), np.moveaxis(h, -1, 1), np.moveaxis(c, -1, 1)
    return seq, h, c


ROWS = {
    "same_sequences": (dict(filters=3, kernel_size=3, padding="same", return_sequences=True),
                       (3, 5, 4, 2), {}),
    "valid_strides_last": (dict(filters=2, kernel_size=(2, 3), strides=(1, 2)), (4, 5, 7, 2),
                           dict(strides=(1, 2))),
    "dilated_backwards": (dict(filters=2, kernel_size=2, dilation_rate=2, go_backwards=True,
                               return_sequences=True), (3, 6, 5, 1),
                          dict(dilation=(2, 2), go_backwards=True)),
    "channels_first_state": (dict(filters=2, kernel_size=3, padding="same",
                                  data_format="channels_first", return_state=True),
                             (3, 2, 4, 5), dict(padding="same", cf=True)),
    "sigmoid_relu_no_bias": (dict(filters=2, kernel_size=1, use_bias=False,
                                  activation="relu", recurrent_activation="sigmoid"),
                             (2, 3, 3, 2), dict(act=lambda v: np.maximum(v, 0),
                                                rec_act=lambda v: 1 / (1 + np.exp(-v)))),
}


def _randomize(layer, scale=0.4):
    layer.set_weights([rng.standard_normal(w.shape) * scale for w in layer.get_weights()])


def _row(row):
    """(config, input shape, layer with random weights, input, numpy reference kwargs)."""
    kw, in_shape, ref_kw = ROWS[row]
    layer = ConvLSTM2D(dtype="float64", **kw)
    x = rng.standard_normal((2,) + in_shape)
    layer(x)
    _randomize(layer)
    ref_kw = dict(ref_kw)
    if "padding" not in ref_kw and kw.get("padding") == "same":
        ref_kw["padding"] = "same"
    return kw, in_shape, layer, x, ref_kw


CASES = {   # id -> (ConvLSTM2D kwargs, input shape without batch, numpy reference kwargs)
    "same_sequences": (dict(filters=2, kernel_size=3, padding="same", return_sequences=True),
                       (3, 4, 3, 1), dict(padding="same")),
    "valid_strides_last": (dict(filters=2, kernel_size=(2, 3), strides=(1, 2)), (3, 4, 5, 1),
                           dict(strides=(1, 2))),
    "valid_strides_backwards": (dict(filters=1, kernel_size=(2, 2), strides=(1, 2),
                                     go_backwards=True), (3, 3, 4, 2),
                                dict(strides=(1, 2), go_backwards=True)),
    "dilated_backwards_sigmoid": (dict(filters=2, kernel_size=2, dilation_rate=2,
                                       go_backwards=True, return_sequences=True,
                                       recurrent_activation="sigmoid"), (3, 5, 5, 1),
                                  dict(dilation=(2, 2), go_backwards=True,
                                       rec_act=lambda v: 1 / (1 + np.exp(-v)))),
    "dilated_channels_first": (dict(filters=2, kernel_size=2, dilation_rate=2,
                                    data_format="channels_first", return_sequences=True),
                               (2, 1, 4, 4), dict(dilation=(2, 2), cf=True)),
    "channels_first_state": (dict(filters=2, kernel_size=3, padding="same",
                                  data_format="channels_first", return_state=True),
                             (2, 1, 4, 3), dict(padding="same", cf=True)),
    "relu_no_bias_sigmoid": (dict(filters=2, kernel_size=1, use_bias=False, activation="relu",
                                  recurrent_activation="sigmoid"), (2, 3, 3, 2),
                             dict(act=lambda v: np.maximum(v, 0),
                                  rec_act=lambda v: 1 / (1 + np.exp(-v)))),
    "one_step": (dict(filters=2, kernel_size=1, return_sequences=True), (1, 3, 3, 2), {}),
}


def case_reference(kw, ref_kw):
    def reference(x, layer):
        ws = layer.get_weights()
        seq, h, c = conv_lstm_np(x.astype(float), ws[0], ws[1], ws[2] if len(ws) > 2 else 0.0,
                                 **ref_kw)
        out = seq if kw.get("return_sequences") else h
        return [out, h, c] if kw.get("return_state") else out
    return reference


def signed(r, shape):
    return (r.standard_normal(shape) * 0.4).astype("float32")


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer(case, tmp_path):
    """Shapes, the numpy recurrence, config/IR/.h5/.keras/ONNX (unrolled) round trips,
    float64 gradients of every output w.r.t. the input and every weight."""
    kw, in_shape, ref_kw = CASES[case]
    keras2_only = ConvLSTM2D(**kw).get_config()["recurrent_activation"] == "hard_sigmoid"
    run_layer_test(lambda: ConvLSTM2D(**kw), in_shape, tmp_path, weights=signed, atol=1e-5,
                   reference=case_reference(kw, ref_kw),
                   formats=(".h5",) if keras2_only else (".h5", ".keras"))   # Keras 2's default
    # hard_sigmoid gates have no Keras 3 spelling: saving them as .keras raises


def test_dropout_masks_are_per_gate_and_shared_by_every_step():
    layer = ConvLSTM2D(2, 1, dropout=0.5, recurrent_dropout=0.5, return_sequences=True,
                       dtype="float64")
    x = np.ones((2, 3, 4, 4, 1))
    layer(x)
    np.testing.assert_array_equal(layer(x, training=False).value, layer(x).value)
    masks = []
    orig = layer._gate_masks
    layer._gate_masks = lambda *a: masks.append(orig(*a)) or masks[-1]
    a = layer(x, training=True).value
    assert len(masks) == 2 and all(len(m) == 4 for m in masks)
    for m in masks[0] + masks[1]:
        assert set(np.unique(m)) <= {0.0, 2.0}
    assert not np.allclose(a, layer(x, training=False).value)


def test_stateful_carries_states_between_batches_and_resets():
    x = rng.standard_normal((2, 3, 4, 4, 1)).astype("float32")
    layer = ConvLSTM2D(2, 3, padding="same", stateful=True, batch_input_shape=(2, None, 4, 4, 1))
    model = Sequential([layer])
    first = model.predict(x, batch_size=2)
    second = model.predict(x, batch_size=2)
    assert not np.allclose(first, second)
    model.reset_states()
    np.testing.assert_allclose(model.predict(x, batch_size=2), first, atol=1e-6)
    whole = ConvLSTM2D.from_config({**layer.get_config(), "stateful": False,
                                    "batch_input_shape": [None, None, 4, 4, 1]})
    whole(x)
    whole.set_weights(layer.get_weights())
    np.testing.assert_allclose(whole(np.concatenate([x, x], axis=1)).value, second, atol=1e-5)
    with pytest.raises(ShapeError, match="batch size 2"):
        layer(np.zeros((3, 3, 4, 4, 1), "float32"))
    with pytest.raises(ConfigError, match="fixed batch size"):
        ConvLSTM2D(2, 3, stateful=True)(Input(shape=(3, 4, 4, 1)))


def test_weight_names_survive_a_round_trip_in_a_stack(tmp_path):
    inp = Input(shape=(3, 5, 5, 2))
    out = ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="conv_lstm2d_x")(inp)
    model = Model(inp, Conv3D(1, 3, padding="same")(out))
    model.save(tmp_path / "m.h5")
    layer = load_model(tmp_path / "m.h5").get_layer("conv_lstm2d_x")
    assert [w.name for w in layer.weights] == ["conv_lstm2d_x/kernel",
                                               "conv_lstm2d_x/recurrent_kernel",
                                               "conv_lstm2d_x/bias"]


def test_keras_name_weights_and_errors():
    layer = ConvLSTM2D(4, (3, 2))
    layer(np.zeros((1, 2, 5, 5, 3), "float32"))
    assert layer.name.startswith("conv_lstm2d")
    assert [w.shape for w in layer.weights] == [(3, 2, 3, 16), (3, 2, 4, 16), (16,)]
    np.testing.assert_array_equal(layer.get_weights()[2][4:8], 1.0)     # unit_forget_bias
    with pytest.raises(ShapeError, match="rank 5"):
        layer(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ConfigError, match="padding"):
        ConvLSTM2D(2, 3, padding="causal")
    with pytest.raises(ConfigError, match="dropout"):
        ConvLSTM2D(2, 3, dropout=1.5)


@pytest.mark.parametrize("version", ["keras2", "keras3"])
@pytest.mark.parametrize("name", ["conv_lstm2d", "conv_lstm2d_channels_first", "conv3d_misc",
                                  "conv3d_channels_first"])
def test_real_keras_files_predict_the_same(version, name):
    model = load_model(FIXTURES / version / f"{name}.h5")
    data = np.load(FIXTURES / version / f"{name}.npz")
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], rtol=1e-4, atol=1e-5)


def test_conv_lstm_example_learns_next_frames():
    """keras/examples/conv_lstm.py in miniature: predict the next frame of moving squares."""
    rs = np.random.RandomState(0)
    n, frames, size = 32, 5, 8
    movies = np.zeros((n, frames + 1, size, size, 1), "float32")
    for i in range(n):
        x0, y0, dx, dy = rs.randint(1, 6), rs.randint(1, 6), rs.randint(-1, 2), rs.randint(-1, 2)
        for t in range(frames + 1):
            xx, yy = int(np.clip(x0 + dx * t, 1, 6)), int(np.clip(y0 + dy * t, 1, 6))
            movies[i, t, xx - 1:xx + 1, yy - 1:yy + 1, 0] = 1
    seq = Sequential()
    seq.add(ConvLSTM2D(filters=4, kernel_size=(3, 3), input_shape=(None, size, size, 1),
                       padding="same", return_sequences=True))
    seq.add(BatchNormalization())
    seq.add(ConvLSTM2D(filters=4, kernel_size=(3, 3), padding="same", return_sequences=True))
    seq.add(BatchNormalization())
    seq.add(Conv3D(filters=1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same",
                   data_format="channels_last"))
    seq.compile(loss="binary_crossentropy", optimizer="adadelta")
    hist = seq.fit(movies[:, :-1], movies[:, 1:], batch_size=8, epochs=8, verbose=0).history
    assert hist["loss"][-1] < 0.82 * hist["loss"][0]
    assert seq.predict(movies[:2, :-1]).shape == (2, frames, size, size, 1)


# -- ONNX: unrolled for the fixed sequence length -------------------------------------------

def test_onnx_export_of_return_state_and_the_conv_lstm_stack():
    inp = Input(shape=(3, 5, 5, 1))
    seq, h, c = ConvLSTM2D(2, 3, padding="same", return_sequences=True,
                           return_state=True)(inp)
    out = Conv3D(1, 3, padding="same", activation="sigmoid")(
        BatchNormalization()(ConvLSTM2D(2, 3, padding="same", return_sequences=True)(seq)))
    model = Model(inp, [out, h, c])
    for w in model.weights:
        w.assign(np.abs(rng.standard_normal(w.shape)) * 0.3 + 0.1 if "variance" in w.name
                 else rng.standard_normal(w.shape) * 0.3)
    x = rng.standard_normal((2, 3, 5, 5, 1)).astype("float32")
    got = run(onnx_conv.export(model), [x])
    for g, w in zip(got, model.predict(x), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


def test_onnx_export_refuses_unknown_length_and_stateful_with_the_reason():
    inp = Input(shape=(None, 5, 5, 1))
    model = Model(inp, ConvLSTM2D(2, 3, name="clstm")(inp))
    with pytest.raises(UnsupportedError, match="clstm.*fixed number of timesteps"):
        onnx_conv.export(model)
    stateful = Sequential([ConvLSTM2D(2, 3, stateful=True, batch_input_shape=(2, 3, 5, 5, 1),
                                      name="clstm_s")])
    with pytest.raises(UnsupportedError, match="clstm_s.*stateful"):
        onnx_conv.export(stateful)


@pytest.mark.parametrize("cf", [False, True])
def test_initial_state_numbers_symbolic_and_onnx(cf, tmp_path):
    kw = dict(filters=2, kernel_size=3, padding="same", return_sequences=True,
              data_format="channels_first" if cf else "channels_last")
    seq_shape = (3, 2, 4, 5) if cf else (3, 4, 5, 2)
    state_shape = (2, 4, 5) if cf else (4, 5, 2)
    x = rng.standard_normal((2,) + seq_shape)
    h0, c0 = rng.standard_normal((2, 2) + state_shape[1:] if cf else (2,) + state_shape), \
        rng.standard_normal((2,) + state_shape)
    layer = ConvLSTM2D(dtype="float64", **kw)
    layer(x)
    _randomize(layer)
    ws = layer.get_weights()
    to_last = (lambda a: np.moveaxis(a, 1, -1)) if cf else (lambda a: a)
    want, _, _ = conv_lstm_np(x, ws[0], ws[1], ws[2], padding="same", cf=cf,
                              h=to_last(h0), c=to_last(c0))
    np.testing.assert_allclose(layer(x, initial_state=[h0, c0]).value, want, atol=1e-10)
    np.testing.assert_allclose(layer([x, h0, c0]).value, want, atol=1e-10)
    # a functional graph with the states as inputs (the seq2seq pattern), and its ONNX export
    xs, hs, cs = Input(shape=seq_shape), Input(shape=state_shape), Input(shape=state_shape)
    sym = ConvLSTM2D(**kw)
    model = Model([xs, hs, cs], sym(xs, initial_state=[hs, cs]))
    sym.set_weights(ws)
    feeds = [a.astype("float32") for a in (x, h0, c0)]
    np.testing.assert_allclose(model.predict(feeds), want, atol=1e-5)
    np.testing.assert_allclose(run(onnx_conv.export(model), feeds)[0], want, atol=1e-5)
    with pytest.raises(ShapeError, match="initial states must have shape"):
        layer(x, initial_state=[h0[:, :1], c0])
    if not cf:
        model.save(tmp_path / "m.h5")
        np.testing.assert_allclose(load_model(tmp_path / "m.h5").predict(feeds),
                                   model.predict(feeds), atol=1e-6)


@pytest.mark.parametrize("version", ["keras2", "keras3"])
def test_optimizer_slots_of_real_files_are_restored(version):
    """Keras 3 names a ConvLSTM2D weight (and its Adadelta slots) `conv_lstm2d/conv_lstm_cell/
    kernel`, modelkit `conv_lstm2d/kernel`: every slot still lands on its weight."""
    import warnings

    from modelkit.converters import hdf5
    path = FIXTURES / version / "conv_lstm2d.h5"
    stored = hdf5.load_graph(str(path)).training.optimizer_state["weights"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no fallback to a fresh optimizer
        model = load_model(path)
    state = model.optimizer.get_state()["weights"]
    cell = "conv_lstm_cell/" if version == "keras3" else ""
    for layer in ("conv_lstm2d", "conv_lstm2d_1"):
        for var in ("kernel", "recurrent_kernel", "bias"):
            np.testing.assert_array_equal(state[f"accum_grad/{layer}/{var}"],
                                          stored[f"accumulated_grad/{layer}/{cell}{var}"])


MASK = np.array([[True, False, True], [False, False, True]])      # (batch, time)


@pytest.mark.parametrize("row", ["same_sequences", "dilated_backwards", "channels_first_state"])
def test_masked_steps_keep_the_states_as_keras_2_does(row):
    kw, _, layer, x, ref_kw = _row(row)
    ws = layer.get_weights()
    seq, h, c = conv_lstm_np(x, ws[0], ws[1], ws[2], mask=MASK, **ref_kw)
    out = layer(x, mask=MASK)
    if kw.get("return_state"):
        out, oh, oc = out
        np.testing.assert_allclose(oc.value, c, atol=1e-10)
    np.testing.assert_allclose(out.value, seq if kw.get("return_sequences") else h, atol=1e-10)
    unmasked, *_ = conv_lstm_np(x, ws[0], ws[1], ws[2], **ref_kw)
    assert not np.allclose(seq, unmasked)            # the mask did change the numbers
    assert_gradients_close(lambda v: layer(v, mask=MASK)[0] if kw.get("return_state")
                           else layer(v, mask=MASK), [x])


def test_masking_layer_skips_whole_zero_frames_and_the_mask_flows_on():
    x = rng.standard_normal((2, 4, 5, 5, 2)).astype("float32")
    x[0, 1] = 0.0                                    # a fully masked frame
    x[1, 3] = 0.0
    x[1, 0, :2] = 0.0                                # partly zero: still a step
    model = Sequential([Masking(0.0, input_shape=(4, 5, 5, 2)),
                        ConvLSTM2D(3, 3, padding="same", return_sequences=True),
                        ConvLSTM2D(2, 2, return_sequences=True)])
    first, second = model.layers[1], model.layers[2]
    keep = np.array([[True, False, True, True], [True, True, True, False]])
    ws1, ws2 = first.get_weights(), second.get_weights()
    seq1, _, _ = conv_lstm_np(x, *ws1, padding="same", mask=keep)
    seq2, _, _ = conv_lstm_np(seq1, *ws2, mask=keep)          # the same mask reaches it
    np.testing.assert_allclose(model.predict(x), seq2, rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError, match="mask has shape"):
        first(x, mask=np.ones((2, 3), bool))


def test_masked_conv_lstm_exports_to_onnx():
    x = rng.standard_normal((3, 4, 4, 5, 2)).astype("float32")
    x[0, 0] = x[1, 2] = x[2, 3] = 0.0
    for backwards in (False, True):
        model = Sequential([Masking(0.0, input_shape=(4, 4, 5, 2)),
                            ConvLSTM2D(2, 3, padding="same", return_sequences=True,
                                       go_backwards=backwards),
                            ConvLSTM2D(2, (2, 3), strides=(1, 2), go_backwards=backwards)])
        got = run(onnx_conv.export(model), [x])[0]
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-5)


# -- ConvLSTM1D / ConvLSTM3D: the same layer code at rank 1 and 3 -------------------------

def conv_lstm_nd_np(x, kernel, rec, bias, **kw):
    """conv_lstm_np with sigmoid gates (the rank-1/3 cases use them)."""
    return conv_lstm_np(x, kernel, rec, bias, rec_act=lambda v: 1 / (1 + np.exp(-v)), **kw)


ND_CASES = {   # id -> (class, kwargs, input shape without batch, reference kwargs)
    "1d_same_sequences": (ConvLSTM1D, dict(filters=2, kernel_size=3, padding="same",
                                           return_sequences=True), (3, 5, 2),
                          dict(strides=(1,), padding="same")),
    "1d_strided_backwards_state": (ConvLSTM1D, dict(filters=2, kernel_size=2, strides=2,
                                                    go_backwards=True, return_state=True),
                                   (3, 6, 1), dict(strides=(2,), go_backwards=True)),
    "1d_dilated_channels_first": (ConvLSTM1D, dict(filters=1, kernel_size=2, dilation_rate=2,
                                                   data_format="channels_first"),
                                  (2, 2, 5), dict(strides=(1,), dilation=(2,), cf=True)),
    "3d_same_sequences": (ConvLSTM3D, dict(filters=2, kernel_size=2, padding="same",
                                           return_sequences=True), (2, 3, 2, 3, 1),
                          dict(strides=(1, 1, 1), padding="same")),
    "3d_valid_channels_first": (ConvLSTM3D, dict(filters=1, kernel_size=(2, 1, 2),
                                                 strides=(1, 1, 2),
                                                 data_format="channels_first"),
                                (2, 2, 3, 2, 4), dict(strides=(1, 1, 2), cf=True)),
}


@pytest.mark.parametrize("case", sorted(ND_CASES))
def test_conv_lstm_1d_3d(case, tmp_path):
    """ConvLSTM1D/3D through run_layer_test: the numpy recurrence, float64 gradients,
    IR/.h5/.keras/ONNX (unrolled) round trips."""
    cls, kw, in_shape, ref_kw = ND_CASES[case]
    kw = dict(kw, recurrent_activation="sigmoid")

    def reference(x, layer):
        ws = layer.get_weights()
        seq, h, c = conv_lstm_nd_np(x.astype(float), ws[0], ws[1], ws[2], **ref_kw)
        out = seq if kw.get("return_sequences") else h
        return [out, h, c] if kw.get("return_state") else out
    run_layer_test(lambda: cls(**kw), in_shape, tmp_path, weights=signed, atol=1e-5,
                   reference=reference)


@pytest.mark.parametrize("cls, rank", [(ConvLSTM1D, 1), (ConvLSTM3D, 3)])
def test_conv_lstm_nd_refuses_other_ranks(cls, rank):
    with pytest.raises(ShapeError, match=f"{cls.__name__}.*rank {rank + 3}"):
        Sequential([cls(2, 2, input_shape=(3,) + (4,) * (rank + 1) + (1,))])


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_conv_lstm2d(merge_mode, tmp_path):
    """Bidirectional(ConvLSTM2D): the forward run and the backward run (put back in input
    order), merged; run_layer_test's numpy, gradient, file and ONNX checks."""
    from modelkit.layers import Bidirectional
    kw = dict(filters=2, kernel_size=2, padding="same", return_sequences=True,
              recurrent_activation="sigmoid")

    def reference(x, layer):
        ws = layer.get_weights()
        fwd = conv_lstm_nd_np(x.astype(float), *ws[:3], strides=(1, 1), padding="same")[0]
        bwd = conv_lstm_nd_np(x.astype(float), *ws[3:], strides=(1, 1), padding="same",
                              go_backwards=True)[0][:, ::-1]
        return np.concatenate([fwd, bwd], -1) if merge_mode == "concat" else fwd + bwd
    run_layer_test(lambda: Bidirectional(ConvLSTM2D(**kw), merge_mode=merge_mode),
                   (3, 3, 4, 1), tmp_path, weights=signed, atol=1e-5, reference=reference)


@pytest.mark.parametrize("writer", ["tfk", "k3"])
@pytest.mark.parametrize("name", ["lstm1d", "lstm3d", "bidir_convlstm"])
def test_real_keras_conv_lstm_files(name, writer, tmp_path):
    """ConvLSTM1D, ConvLSTM3D and Bidirectional(ConvLSTM2D) models saved by tf-keras 2.21
    (.h5) and Keras 3.15 (.keras): Keras's predictions, in modelkit, after a round trip
    through both formats, and in onnxruntime (fixtures/conv_lstm_nd/make_conv_lstm_nd.py)."""
    folder = FIXTURES / "conv_lstm_nd"
    data = np.load(folder / f"{name}_{writer}.npz")
    model = load_model(folder / (f"tfk_{name}.h5" if writer == "tfk" else f"k3_{name}.keras"))
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-6, rtol=0)
    # tf-keras's ConvLSTM default gates are Keras 2's hard_sigmoid: no Keras 3 spelling
    for ext in (".h5",) if writer == "tfk" else (".h5", ".keras"):
        model.save(tmp_path / f"m{ext}")
        np.testing.assert_allclose(load_model(tmp_path / f"m{ext}").predict(data["x0"]),
                                   data["y0"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(run(onnx_conv.export(model), [data["x0"]])[0], data["y0"],
                               atol=1e-5, rtol=0)

"""TimeDistributed and Bidirectional: shapes, numbers against numpy, float64 gradients,
configs, weight names and order, IR/HDF5 round trips, masks, states, bad input, fixtures
and the spec's `TimeDistributed(model)` video sample."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError, ShapeError
from modelkit.layers import (GRU, LSTM, Bidirectional, Conv2D, Dense, Embedding, Flatten, Input,
                             Masking, MaxPooling2D, SimpleRNN, TimeDistributed)
from modelkit.models import Model, Sequential, from_ir, load_model

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(3)
B, T, F_IN = 2, 4, 3


def randomize(layer_or_model, scale=0.5):
    for w in layer_or_model.weights:
        w.assign(rng.standard_normal(w.shape).astype(w.dtype) * scale)


def as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def sigmoid(x):
    """The layers' default recurrent activation (Keras >= 2.3, Keras 3, PyTorch)."""
    return 1 / (1 + np.exp(-x))


def np_lstm(x, kernel, rec, bias, backwards=False, mask=None, zero_output=False):
    """Keras 2 LSTM over x; returns (outputs in processing order, h, c)."""
    u = rec.shape[0]
    h = c = np.zeros((x.shape[0], u))
    prev, outs = np.zeros_like(h), []
    for t in (range(x.shape[1] - 1, -1, -1) if backwards else range(x.shape[1])):
        zi, zf, zc, zo = np.split(x[:, t] @ kernel + h @ rec + bias, 4, axis=-1)
        c2 = sigmoid(zf) * c + sigmoid(zi) * np.tanh(zc)
        h2 = sigmoid(zo) * np.tanh(c2)
        out = h2
        if mask is not None:
            m = mask[:, t][:, None]
            out = np.where(m, h2, 0 if zero_output else prev)
            h2, c2 = np.where(m, h2, h), np.where(m, c2, c)
        h, c, prev = h2, c2, out
        outs.append(out)
    return np.stack(outs, 1), h, c


# --------------------------------------------------------------------------------------
# TimeDistributed

def small_model():
    return Sequential([Dense(4, activation="tanh", input_shape=(F_IN,)), Dense(2)])


TD_ROWS = {   # name -> (factory, input shape without batch, output shape without batch)
    "dense": (lambda: TimeDistributed(Dense(5)), (T, F_IN), (T, 5)),
    "dense_rank4": (lambda: TimeDistributed(Dense(2, activation="relu")), (T, 2, F_IN),
                    (T, 2, 2)),
    "model": (lambda: TimeDistributed(small_model()), (T, F_IN), (T, 2)),
    "conv_stack": (lambda: TimeDistributed(Conv2D(2, 2)), (T, 4, 4, 1), (T, 3, 3, 2)),
}


def td_reference(layer, x):
    inner = layer.layer
    flat = x.reshape((-1,) + x.shape[2:])
    y = inner.predict(flat) if hasattr(inner, "predict") else inner(flat).value
    return y.reshape(x.shape[:2] + y.shape[1:])


@pytest.mark.parametrize("row", list(TD_ROWS))
def test_time_distributed_shapes(row):
    make, in_shape, out_shape = TD_ROWS[row]
    layer = make()
    assert layer(Input(in_shape)).shape == (None,) + out_shape
    assert layer.compute_output_shape((None,) + in_shape) == (None,) + out_shape
    assert layer(np.zeros((B,) + in_shape, "float32")).shape == (B,) + out_shape


@pytest.mark.parametrize("row", list(TD_ROWS))
def test_time_distributed_is_the_inner_layer_on_every_step(row):
    make, in_shape, _ = TD_ROWS[row]
    layer = make()
    x = rng.standard_normal((B,) + in_shape).astype("float32")
    layer(x)
    randomize(layer)
    got = layer(x).value
    inner = layer.layer
    for t in range(in_shape[0]):          # the inner layer alone, one timestep at a time
        step = inner.predict(x[:, t]) if hasattr(inner, "predict") else inner(x[:, t]).value
        np.testing.assert_allclose(got[:, t], step, atol=1e-6)


def test_time_distributed_gradients_float64():
    layer = TimeDistributed(Dense(3, activation="tanh", dtype="float64"), dtype="float64")
    x = rng.standard_normal((B, T, F_IN))
    layer(x)

    def fn(xv, k, b):
        layer.layer.kernel, layer.layer.bias = k, b
        return layer(xv)

    assert_gradients_close(fn, [x, rng.standard_normal((F_IN, 3)), rng.standard_normal(3)])


@pytest.mark.parametrize("row", list(TD_ROWS))
def test_time_distributed_config_and_round_trips(row, tmp_path):
    make, in_shape, _ = TD_ROWS[row]
    layer = make()
    inp = Input(in_shape)
    model = Model(inp, layer(inp))
    randomize(model)
    config = layer.get_config()
    assert set(config["layer"]) == {"class_name", "config"}
    clone = TimeDistributed.from_config(config)
    assert clone.get_config() == config
    x = rng.standard_normal((B,) + in_shape).astype("float32")
    want = model.predict(x)
    path = tmp_path / "m.h5"
    model.save(path)
    for other in (from_ir(model.to_ir()), load_model(path)):
        np.testing.assert_allclose(other.predict(x), want, atol=1e-6)


def test_time_distributed_weight_names_follow_tf_keras():
    layer = TimeDistributed(Dense(2))
    layer(Input((T, F_IN)))
    assert [w.name for w in layer.weights] == [f"{layer.name}/kernel", f"{layer.name}/bias"]
    nested = TimeDistributed(small_model())
    nested(Input((T, F_IN)))
    assert [w.name for w in nested.weights] == [w.name for w in nested.layer.weights]


def test_time_distributed_passes_masks_through():
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    x[0, 2:] = 0
    model = Sequential([Masking(input_shape=(T, F_IN)), TimeDistributed(Dense(F_IN)),
                        LSTM(2)])
    randomize(model)
    td = model.layers[1]
    mask = x.any(-1)
    assert td.compute_mask(K.constant(x), mask) is mask
    # the LSTM after TimeDistributed still skips the masked steps
    short = Sequential([TimeDistributed(Dense(F_IN), input_shape=(2, F_IN)), LSTM(2)])
    short.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x)[0], short.predict(x[:1, :2])[0], atol=1e-6)
    # an inner layer that makes masks: TimeDistributed(Embedding(mask_zero=True))
    emb = TimeDistributed(Embedding(5, 2, mask_zero=True))
    ids = np.array([[[1, 0], [0, 0]], [[3, 4], [2, 0]]])
    emb(ids)
    np.testing.assert_array_equal(emb.compute_mask(K.constant(ids)), ids != 0)


def test_spec_video_sample_time_distributed_model():
    inputs = Input(shape=(784,))
    x = Dense(64, activation="relu")(inputs)
    x = Dense(64, activation="relu")(x)
    predictions = Dense(10, activation="softmax")(x)
    model = Model(inputs=inputs, outputs=predictions)
    input_sequences = Input(shape=(20, 784))
    processed_sequences = TimeDistributed(model)(input_sequences)
    assert processed_sequences.shape == (None, 20, 10)
    video = Model(input_sequences, processed_sequences)
    frames = rng.random((2, 20, 784)).astype("float32")
    out = video.predict(frames)
    np.testing.assert_allclose(out[1, 7], model.predict(frames[1:2, 7])[0], atol=1e-6)
    np.testing.assert_allclose(out.sum(-1), 1, atol=1e-5)
    # weights are the model's, shared
    assert [id(w) for w in video.layers[1].weights] == [id(w) for w in model.weights]


def test_spec_video_sample_vision_model_then_lstm():
    vision = Sequential([Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)),
                         MaxPooling2D((2, 2)), Flatten()])
    video_input = Input(shape=(5, 6, 6, 1))
    encoded_frames = TimeDistributed(vision)(video_input)
    encoded_video = LSTM(4)(encoded_frames)
    model = Model(video_input, encoded_video)
    assert encoded_frames.shape == (None, 5, 8)
    assert model.predict(rng.random((2, 5, 6, 6, 1)).astype("float32")).shape == (2, 4)


def test_time_distributed_bad_input():
    with pytest.raises(ShapeError, match=r"TimeDistributed 'time_distributed.*rank >= 3"):
        TimeDistributed(Dense(2))(Input((3,)))
    with pytest.raises(ConfigError, match="expected a layer"):
        TimeDistributed("dense")


# --------------------------------------------------------------------------------------
# Bidirectional

BI_ROWS = {
    "concat_seq": lambda: Bidirectional(LSTM(3, return_sequences=True)),
    "sum_last": lambda: Bidirectional(LSTM(3), merge_mode="sum"),
    "mul_seq": lambda: Bidirectional(LSTM(3, return_sequences=True), merge_mode="mul"),
    "ave_last": lambda: Bidirectional(LSTM(3), merge_mode="ave"),
    "none_seq": lambda: Bidirectional(LSTM(3, return_sequences=True), merge_mode=None),
    "concat_state": lambda: Bidirectional(LSTM(3, return_state=True)),
    "gru_concat": lambda: Bidirectional(GRU(3, return_sequences=True)),
    "simple_rnn_sum_state": lambda: Bidirectional(SimpleRNN(3, return_sequences=True,
                                                            return_state=True), merge_mode="sum"),
}


def bi_expected(layer, batch):
    inner = layer.forward_layer
    u = inner.cell.units
    out = (batch, T, u) if inner.return_sequences else (batch, u)
    outs = [out[:-1] + (2 * u,)] if layer.merge_mode == "concat" else \
        [out, out] if layer.merge_mode is None else [out]
    if inner.return_state:
        outs += [(batch, u)] * (2 * inner._n_states)
    return outs


@pytest.mark.parametrize("row", list(BI_ROWS))
def test_bidirectional_shapes(row):
    layer = BI_ROWS[row]()
    outs = as_list(layer(Input((T, F_IN))))
    assert [o.shape for o in outs] == bi_expected(layer, None)
    shape = layer.compute_output_shape((None, T, F_IN))
    assert (shape if isinstance(shape, list) else [shape]) == bi_expected(layer, None)
    eager = as_list(layer(np.zeros((B, T, F_IN), "float32")))
    assert [tuple(o.shape) for o in eager] == bi_expected(layer, B)


def bi_reference(layer, x, mask=None):
    """numpy: forward over x, backward over reversed x (outputs re-reversed), merged."""
    if not isinstance(layer.forward_layer, LSTM):
        return None
    ws = [w.value.astype(float) for w in layer.weights]
    seq = layer.return_sequences
    zero = seq          # Keras forces zero_output_for_mask = return_sequences
    fs, fh, fc = np_lstm(x, *ws[:3], mask=mask, zero_output=zero)
    bs, bh, bc = np_lstm(x, *ws[3:], backwards=True, mask=mask, zero_output=zero)
    y, y_rev = (fs, bs[:, ::-1]) if seq else (fs[:, -1], bs[:, -1])
    merged = {"concat": lambda: [np.concatenate([y, y_rev], -1)], "sum": lambda: [y + y_rev],
              "mul": lambda: [y * y_rev], "ave": lambda: [(y + y_rev) / 2],
              None: lambda: [y, y_rev]}[layer.merge_mode]()
    if layer.return_state:
        merged += [fh, fc, bh, bc]
    return merged


@pytest.mark.parametrize("row", list(BI_ROWS))
def test_bidirectional_matches_numpy(row):
    layer = BI_ROWS[row]()
    inp = Input((T, F_IN))
    model = Model(inp, layer(inp))
    randomize(model)
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    want = bi_reference(layer, x.astype(float))
    if want is None:        # GRU / SimpleRNN: both directions against the layers alone
        fwd, bwd = layer.forward_layer, layer.backward_layer
        f = as_list(fwd(x))
        b = as_list(bwd(x))
        y, y_rev = f[0].value, b[0].value
        if layer.return_sequences:
            y_rev = y_rev[:, ::-1]
        merged = [np.concatenate([y, y_rev], -1)] if layer.merge_mode == "concat" else [y + y_rev]
        want = merged + [s.value for s in f[1:]] + [s.value for s in b[1:]]
    for g, w in zip(as_list(model.predict(x)), want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_bidirectional_with_mask_zeroes_masked_steps_like_keras():
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    x[0, 2:] = 0
    x[1, 3:] = 0
    model = Sequential([Masking(input_shape=(T, F_IN)),
                        Bidirectional(LSTM(3, return_sequences=True))])
    randomize(model)
    layer = model.layers[1]
    want = bi_reference(layer, x.astype(float), mask=x.any(-1))
    np.testing.assert_allclose(model.predict(x), want[0], atol=1e-5)
    np.testing.assert_array_equal(model.predict(x)[0, 2:], 0)
    last = Sequential([Masking(input_shape=(T, F_IN)), Bidirectional(LSTM(3))])
    last.set_weights(model.get_weights())
    want_last = bi_reference(last.layers[1], x.astype(float), mask=x.any(-1))
    np.testing.assert_allclose(last.predict(x), want_last[0], atol=1e-5)


def test_bidirectional_gradients_float64():
    layer = Bidirectional(GRU(2, return_sequences=True, dtype="float64"), merge_mode="sum",
                          dtype="float64")
    x = rng.standard_normal((B, 3, F_IN))
    layer(x)
    randomize(layer)
    cells = [layer.forward_layer.cell, layer.backward_layer.cell]
    names = ["kernel", "recurrent_kernel", "bias"]

    def fn(xv, *ws):
        for i, cell in enumerate(cells):
            for n, w in zip(names, ws[3 * i:3 * i + 3]):
                setattr(cell, n, w)
        return layer(xv)

    arrays = [x] + [getattr(c, n).value.copy() for c in cells for n in names]
    assert_gradients_close(fn, arrays, rtol=1e-5, atol=1e-7)


def test_bidirectional_weights_names_and_backward_copy():
    layer = Bidirectional(LSTM(3, name="lstm"), name="bidirectional")
    layer(Input((T, F_IN)))
    names = [w.name for w in layer.weights]
    assert names == [f"bidirectional/{d}_lstm/lstm_cell/{v}" for d in ("forward", "backward")
                     for v in ("kernel", "recurrent_kernel", "bias")]
    assert layer.forward_layer.name == "forward_lstm"
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    assert layer.forward_layer.zero_output_for_mask is False
    seq = Bidirectional(LSTM(3, return_sequences=True))
    assert seq.forward_layer.zero_output_for_mask and seq.backward_layer.zero_output_for_mask
    w = [rng.standard_normal(v.shape).astype("float32") for v in layer.weights]
    layer.set_weights(w)
    np.testing.assert_array_equal(layer.backward_layer.get_weights()[0], w[3])


@pytest.mark.parametrize("row", list(BI_ROWS))
def test_bidirectional_config_and_round_trips(row, tmp_path):
    layer = BI_ROWS[row]()
    inp = Input((T, F_IN))
    model = Model(inp, layer(inp))
    randomize(model)
    config = layer.get_config()
    assert set(config["layer"]) == {"class_name", "config"}
    assert Bidirectional.from_config(config).get_config() == config
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    want = as_list(model.predict(x))
    path = tmp_path / "m.h5"
    model.save(path)
    for other in (from_ir(model.to_ir()), load_model(path)):
        for a, b in zip(want, as_list(other.predict(x))):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_bidirectional_explicit_backward_layer_and_initial_state():
    fwd = LSTM(3, return_sequences=True)
    bwd = LSTM(3, return_sequences=True, go_backwards=True, name="back")
    layer = Bidirectional(fwd, backward_layer=bwd)
    assert layer.backward_layer.name == "backward_back"
    config = layer.get_config()
    assert config["backward_layer"]["config"]["name"] == "back"
    clone = Bidirectional.from_config(config)
    assert clone.backward_layer.name == "backward_back"
    inp = Input((T, F_IN))
    states = [Input((3,)) for _ in range(4)]
    out = Bidirectional(LSTM(3))(inp, initial_state=states)
    model = Model([inp] + states, out)
    randomize(model)
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    s = [rng.standard_normal((B, 3)).astype("float32") for _ in range(4)]
    y = model.predict([x] + s)
    bl = model.layers[-1]
    f = bl.forward_layer([x, s[0], s[1]]).value
    b = bl.backward_layer([x, s[2], s[3]]).value
    np.testing.assert_allclose(y, np.concatenate([f, b], -1), atol=1e-6)
    np.testing.assert_allclose(from_ir(model.to_ir()).predict([x] + s), y, atol=1e-7)


def test_bidirectional_stateful_and_reset():
    layer = Bidirectional(GRU(2, stateful=True), batch_input_shape=(2, 3, F_IN))
    model = Sequential([layer])
    x = rng.standard_normal((2, 3, F_IN)).astype("float32")
    first = model.predict(x, batch_size=2)
    second = model.predict(x, batch_size=2)
    assert not np.allclose(first, second)
    model.reset_states()
    np.testing.assert_allclose(model.predict(x, batch_size=2), first, atol=1e-6)


def test_bidirectional_bad_arguments():
    with pytest.raises(ConfigError, match="merge_mode must be one of"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(ConfigError, match="must be a recurrent layer"):
        Bidirectional(Dense(2))
    with pytest.raises(ConfigError, match="opposite directions"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2))
    with pytest.raises(ConfigError, match="must agree on return_sequences"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_sequences=True))
    with pytest.raises(ShapeError, match="rank 3"):
        Bidirectional(LSTM(2))(Input((4,)))
    with pytest.raises(ShapeError, match="expects 4 initial state"):
        Bidirectional(LSTM(2))([np.zeros((1, 3, 2)), np.zeros((1, 2))])


@pytest.mark.parametrize("version", ["keras2", "keras3"])
def test_real_keras_bidirectional_fixture(version):
    model = load_model(FIXTURES / version / "bidirectional.h5")
    bi = model.layers[0]
    assert [w.shape for w in bi.weights] == [(2, 12), (3, 12), (12,)] * 2
    data = np.load(FIXTURES / version / "bidirectional.npz")
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5)


def test_time_distributed_forwards_states_of_a_stateful_inner_layer():
    inner = Sequential([GRU(2, stateful=True, batch_input_shape=(4, 3, F_IN))])
    model = Sequential([TimeDistributed(inner, batch_input_shape=(2, 2, 3, F_IN))])
    x = rng.standard_normal((2, 2, 3, F_IN)).astype("float32")
    first = model.predict(x, batch_size=2)
    assert model.layers[0].stateful
    assert not np.allclose(model.predict(x, batch_size=2), first)
    model.reset_states()
    saved = model.layers[0]._saved_states()
    np.testing.assert_allclose(model.predict(x, batch_size=2), first, atol=1e-6)
    model.layers[0]._restore_states(saved)
    np.testing.assert_allclose(model.predict(x, batch_size=2), first, atol=1e-6)

"""TimeDistributed and Bidirectional: case tables through run_layer_test (shapes, numbers
against numpy or the inner layer step by step, float64 gradients, config/IR/.h5/.keras/ONNX
round trips); weight names and order, masks, states, bad input, fixtures (the spec's
`TimeDistributed(model)` video samples: tests/test_spec_samples.py)."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ConfigError, ShapeError
from modelkit.layers import (GRU, LSTM, Bidirectional, Conv2D, Dense, Embedding, Input,
                             Masking, SimpleRNN, TimeDistributed)
from modelkit.models import Model, Sequential, from_ir, load_model

from layer_testing import run_layer_test

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


def td_reference(x, layer):
    """The inner layer alone, one timestep at a time."""
    inner = layer.layer
    steps = [inner.predict(x[:, t]) if hasattr(inner, "predict") else inner(x[:, t]).value
             for t in range(x.shape[1])]
    return np.stack(steps, axis=1)


def signed(r, shape):
    return (r.standard_normal(shape) * 0.5).astype("float32")


@pytest.mark.parametrize("row", list(TD_ROWS))
def test_time_distributed_layer(row, tmp_path):
    """Shapes, the inner layer on every step, config/IR/.h5/.keras/ONNX round trips, float64
    gradients."""
    make, in_shape, out_shape = TD_ROWS[row]
    model, _ = run_layer_test(make, in_shape, tmp_path, weights=signed, atol=1e-6,
                              output_shape=out_shape, reference=td_reference)
    assert set(model.layers[-1].get_config()["layer"]) == {"class_name", "config"}


def test_time_distributed_weight_names_follow_tf_keras():
    layer = TimeDistributed(Dense(2))
    layer(Input((T, F_IN)))
    assert [w.name for w in layer.weights] == [f"{layer.name}/kernel", f"{layer.name}/bias"]
    nested = TimeDistributed(small_model())
    nested(Input((T, F_IN)))
    assert [w.name for w in nested.weights] == [w.name for w in nested.layer.weights]
    assert [id(w) for w in nested.weights] == [id(w) for w in nested.layer.weights]   # shared


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


def bi_expected(layer):
    inner = layer.forward_layer
    u = inner.cell.units
    out = (T, u) if inner.return_sequences else (u,)
    outs = [out[:-1] + (2 * u,)] if layer.merge_mode == "concat" else \
        [out, out] if layer.merge_mode is None else [out]
    if inner.return_state:
        outs += [(u,)] * (2 * inner._n_states)
    return outs


def bi_reference(layer, x, mask=None):
    """numpy: forward over x, backward over reversed x (outputs re-reversed), merged."""
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


def bi_of_the_directions(layer, x):
    """GRU / SimpleRNN: both directions against the layers alone, merged."""
    f, b = as_list(layer.forward_layer(x)), as_list(layer.backward_layer(x))
    y, y_rev = f[0].value, b[0].value
    if layer.return_sequences:
        y_rev = y_rev[:, ::-1]
    merged = [np.concatenate([y, y_rev], -1)] if layer.merge_mode == "concat" else [y + y_rev]
    return merged + [s.value for s in f[1:]] + [s.value for s in b[1:]]


@pytest.mark.parametrize("row", list(BI_ROWS))
def test_bidirectional_layer(row, tmp_path):
    """Shapes, numpy (LSTM) or the two directions alone, config/IR/.h5/.keras/ONNX round
    trips, float64 gradients of every output."""
    layer = BI_ROWS[row]()
    model, _ = run_layer_test(
        BI_ROWS[row], (T, F_IN), tmp_path, weights=signed, atol=1e-5,
        output_shape=bi_expected(layer),
        reference=lambda x, la: bi_reference(la, x.astype(float))
        if isinstance(la.forward_layer, LSTM) else bi_of_the_directions(la, x))
    assert set(model.layers[-1].get_config()["layer"]) == {"class_name", "config"}


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

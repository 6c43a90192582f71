"""SimpleRNN, GRU, LSTM (and RNN over their cells): one case table through run_layer_test
(shapes, numbers against the Keras 2 step equations written out in numpy, float64 gradients,
config/IR/.h5/.keras/ONNX round trips); masks, states, dropout, Keras 1 spellings, bad input,
real Keras fixtures (the spec's samples: tests/test_spec_samples.py)."""

import warnings

import numpy as np
import pytest

import modelkit
from modelkit.errors import ConfigError, ModelkitError, ShapeError, UnsupportedError
from modelkit.layers import (GRU, LSTM, RNN, Dense, Embedding, GRUCell,
                             Input, InputLayer, LSTMCell, Masking, SimpleRNN, SimpleRNNCell)
from modelkit.models import Model, Sequential, from_ir, load_model

from layer_testing import run_layer_test

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(11)
B, T, F_IN, U = 2, 4, 3, 3


# --------------------------------------------------------------------------------------
# numpy reference: Keras 2 cell equations, one timestep at a time

def sigmoid(x):
    return 1 / (1 + np.exp(-x))


ACTS = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda x: np.maximum(x, 0),
        "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1), "linear": lambda x: x}


def reference(layer, x, weights, mask=None, initial=None):
    """Outputs of `layer` (its config decides) for x, the Keras 2 way."""
    cfg = layer.get_config()
    kind = type(layer).__name__
    a = ACTS[cfg["activation"]]
    ra = ACTS[cfg.get("recurrent_activation", "sigmoid")]
    units = cfg["units"]
    kernel, rec = weights[0], weights[1]
    bias = weights[2] if cfg["use_bias"] else None
    n_states = 2 if kind == "LSTM" else 1
    states = [np.zeros((x.shape[0], units))] * n_states if initial is None else list(initial)
    order = range(x.shape[1] - 1, -1, -1) if cfg["go_backwards"] else range(x.shape[1])
    prev_out = np.zeros((x.shape[0], units))
    outs = []
    for t in order:
        xt = x[:, t]
        if kind == "LSTM":
            h, c = states
            z = xt @ kernel + h @ rec + (0 if bias is None else bias)
            zi, zf, zc, zo = np.split(z, 4, axis=-1)
            c2 = ra(zf) * c + ra(zi) * a(zc)
            new = [ra(zo) * a(c2), c2]
        elif kind == "GRU":
            (h,) = states
            if cfg["reset_after"]:
                bi, br = (0, 0) if bias is None else (bias[0], bias[1])
                xz, xr, xh = np.split(xt @ kernel + bi, 3, axis=-1)
                rz, rr, rh = np.split(h @ rec + br, 3, axis=-1)
                z, r = ra(xz + rz), ra(xr + rr)
                hh = a(xh + r * rh)
            else:
                xz, xr, xh = np.split(xt @ kernel + (0 if bias is None else bias), 3, axis=-1)
                z = ra(xz + h @ rec[:, :units])
                r = ra(xr + h @ rec[:, units:2 * units])
                hh = a(xh + (r * h) @ rec[:, 2 * units:])
            new = [z * h + (1 - z) * hh]
        else:
            (h,) = states
            new = [a(xt @ kernel + h @ rec + (0 if bias is None else bias))]
        out = new[0]
        if mask is not None:
            m = mask[:, t][:, None]
            out = np.where(m, out, prev_out)
            new = [np.where(m, n, s) for n, s in zip(new, states)]
        states, prev_out = new, out
        outs.append(out)
    seq = np.stack(outs, axis=1)
    result = seq if cfg["return_sequences"] else seq[:, -1]
    return [result] + states if cfg["return_state"] else result


def randomize(layer_or_model, scale=0.5):
    for w in layer_or_model.weights:
        w.assign(rng.standard_normal(w.shape).astype(w.dtype) * scale)


def _saved_and_loaded(model, tmp_path):
    path = tmp_path / "m.h5"
    model.save(path)
    return load_model(path)


def as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


ROWS = {
    "simple_rnn": lambda **kw: SimpleRNN(U, **kw),
    "simple_rnn_seq_back_relu": lambda **kw: SimpleRNN(U, return_sequences=True, go_backwards=True,
                                                       activation="relu", **kw),
    "gru": lambda **kw: GRU(U, **kw),
    "gru_reset_before_seq": lambda **kw: GRU(U, reset_after=False, return_sequences=True, **kw),
    "gru_state_back_nobias": lambda **kw: GRU(U, return_state=True, go_backwards=True,
                                              use_bias=False, **kw),
    "lstm": lambda **kw: LSTM(U, **kw),
    "lstm_seq_state": lambda **kw: LSTM(U, return_sequences=True, return_state=True, **kw),
    "lstm_hard_sigmoid_nobias": lambda **kw: LSTM(U, recurrent_activation="hard_sigmoid",
                                                  use_bias=False, **kw),
    "lstm_back_seq": lambda **kw: LSTM(U, go_backwards=True, return_sequences=True, **kw),
    "rnn_of_lstm_cell": lambda **kw: RNN(LSTMCell(U, dtype=kw.get("dtype")),
                                         return_sequences=True, **kw),
}


def expected_shapes(layer):
    out = (T, U) if layer.return_sequences else (U,)
    if layer.return_state:
        return [out] + [(U,)] * (2 if isinstance(layer.cell, LSTMCell) else 1)
    return out


def reference_for(layer, x, weights, **kw):
    if type(layer).__name__ == "RNN":     # RNN(LSTMCell) is an LSTM with the cell's settings
        proxy = LSTM(U, return_sequences=layer.return_sequences,
                     return_state=layer.return_state, go_backwards=layer.go_backwards)
        return reference(proxy, x, weights, **kw)
    return reference(layer, x, weights, **kw)


def signed(r, shape):
    return (r.standard_normal(shape) * 0.5).astype("float32")


@pytest.mark.parametrize("row", list(ROWS))
def test_layer(row, tmp_path):
    """Shapes (symbolic, compute_output_shape, predict), the Keras 2 step equations,
    config/IR/.h5/.keras/ONNX round trips, float64 gradients of every output w.r.t. the
    input and every weight."""
    layer = ROWS[row]()
    # Keras 3 has no clip(0.2x + 0.5) gate: saving one as .keras raises (tested below)
    keras2_only = layer.get_config().get("recurrent_activation") == "hard_sigmoid"
    run_layer_test(ROWS[row], (T, F_IN), tmp_path, weights=signed, atol=1e-5,
                   output_shape=expected_shapes(layer),
                   formats=(".h5",) if keras2_only else (".h5", ".keras"),
                   reference=lambda x, la: reference_for(
                       la, x.astype(float), [w.astype(float) for w in la.get_weights()]))


# --------------------------------------------------------------------------------------
# weights: Keras layout and names

def test_weight_shapes_names_and_unit_forget_bias():
    cases = [(LSTM(5), [(3, 20), (5, 20), (20,)], "lstm_cell"),
             (GRU(5), [(3, 15), (5, 15), (2, 15)], "gru_cell"),
             (GRU(5, reset_after=False), [(3, 15), (5, 15), (15,)], "gru_cell"),
             (SimpleRNN(5), [(3, 5), (5, 5), (5,)], "simple_rnn_cell")]
    for layer, shapes, cell in cases:
        layer(Input((4, 3)))
        assert [w.shape for w in layer.weights] == shapes
        assert [w.name for w in layer.weights] == [
            f"{layer.name}/{cell}/{n}" for n in ("kernel", "recurrent_kernel", "bias")]
    lstm = cases[0][0]
    bias = lstm.cell.bias.value
    np.testing.assert_array_equal(bias[5:10], 1)
    np.testing.assert_array_equal(np.r_[bias[:5], bias[10:]], 0)
    no_ufb = LSTM(5, unit_forget_bias=False)
    no_ufb(Input((4, 3)))
    np.testing.assert_array_equal(no_ufb.cell.bias.value, 0)


def test_keras2_defaults_in_config():
    cfg = LSTM(4).get_config()
    # every Keras since 2.3 (tf.keras 2.x, Keras 3) and PyTorch: sigmoid gates by default
    assert cfg["recurrent_activation"] == "sigmoid" and cfg["activation"] == "tanh"
    assert GRU(4).get_config()["recurrent_activation"] == "sigmoid"
    assert LSTMCell(4).get_config()["recurrent_activation"] == "sigmoid"
    assert GRUCell(4).get_config()["recurrent_activation"] == "sigmoid"
    assert cfg["unit_forget_bias"] is True and cfg["implementation"] == 2
    assert cfg["time_major"] is False and "zero_output_for_mask" not in cfg
    assert GRU(4).get_config()["reset_after"] is True
    assert "implementation" not in SimpleRNN(4).get_config()
    assert LSTM(4, recurrent_dropout=0.2).get_config()["implementation"] == 1


# --------------------------------------------------------------------------------------
# masks

MASK = np.array([[True, True, False, True], [False, True, True, False]])


@pytest.mark.parametrize("row", ["simple_rnn_seq_back_relu", "gru_reset_before_seq",
                                 "gru_state_back_nobias", "lstm_seq_state", "lstm"])
def test_explicit_mask_matches_keras_semantics(row):
    layer = ROWS[row]()
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    layer(x)
    randomize(layer)
    got = as_list(layer(x, mask=MASK))
    want = as_list(reference_for(layer, x.astype(float), [w.value.astype(float)
                                                            for w in layer.weights], mask=MASK))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.value, w, atol=1e-5)


def test_masking_layer_feeds_the_mask_and_padding_changes_nothing():
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    x[0, 4:] = 0          # right padding
    x[1, :2] = 0          # left padding
    model = Sequential([Masking(mask_value=0.0, input_shape=(6, 3)), LSTM(4)])
    randomize(model)
    y = model.predict(x)
    lstm = model.layers[1]
    single = Sequential([InputLayer(input_shape=(None, 3)), LSTM(4)])
    single.set_weights(lstm.get_weights())
    np.testing.assert_allclose(y[0], single.predict(x[:1, :4])[0], atol=1e-6)
    np.testing.assert_allclose(y[1], single.predict(x[1:, 2:])[0], atol=1e-6)


def test_embedding_mask_propagates_through_return_sequences():
    ids = np.array([[3, 5, 2, 0, 0], [4, 1, 0, 0, 0]], "int32")
    model = Sequential([Embedding(8, 3, mask_zero=True, input_length=5),
                        LSTM(4, return_sequences=True), GRU(2)])
    randomize(model)
    y = model.predict(ids)
    trimmed = Sequential([Embedding(8, 3, input_length=3), LSTM(4, return_sequences=True),
                          GRU(2)])
    trimmed.set_weights(model.get_weights())
    np.testing.assert_allclose(y[0], trimmed.predict(ids[:1, :3])[0], atol=1e-6)
    lstm = model.layers[1]
    assert lstm.compute_mask(None, MASK) is MASK
    assert LSTM(2).compute_mask(None, MASK) is None
    assert LSTM(2, return_state=True).compute_mask(None, MASK) == [None, None, None]
    seq_state = LSTM(2, return_sequences=True, return_state=True)
    assert seq_state.compute_mask(None, [MASK, None, None])[0] is MASK


def test_masked_sequence_repeats_previous_output_and_starts_at_zero():
    layer = SimpleRNN(2, return_sequences=True)
    x = rng.standard_normal((1, 4, 3)).astype("float32")
    layer(x)
    randomize(layer)
    out = layer(x, mask=np.array([[False, True, False, True]])).value[0]
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_array_equal(out[2], out[1])


# --------------------------------------------------------------------------------------
# states: initial_state, return_state, stateful

def test_initial_state_symbolic_is_folded_into_the_inputs(tmp_path):
    inp, h, c = Input((T, F_IN)), Input((U,)), Input((U,))
    layer = LSTM(U, return_state=True)
    outs = layer(inp, initial_state=[h, c])
    model = Model([inp, h, c], outs)
    assert len(layer._inbound_nodes[0].input_tensors) == 3
    randomize(model)
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    h0, c0 = (rng.standard_normal((B, U)).astype("float32") for _ in range(2))
    got = model.predict([x, h0, c0])
    want = reference(layer, x.astype(float), [w.value.astype(float) for w in layer.weights],
                     initial=[h0.astype(float), c0.astype(float)])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)
    for other in (from_ir(model.to_ir()), _saved_and_loaded(model, tmp_path)):
        for a, b in zip(got, other.predict([x, h0, c0])):
            np.testing.assert_allclose(a, b, atol=1e-7)
    # a list input is the same thing, eagerly too
    direct = layer([x, h0, c0])
    np.testing.assert_allclose(direct[0].value, got[0], atol=1e-6)
    gru_in, gru_h = Input((T, F_IN)), Input((U,))
    assert GRU(U)(gru_in, initial_state=gru_h).shape == (None, U)


def test_stateful_carries_states_across_batches_and_resets():
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    stateful = Sequential([LSTM(4, stateful=True, batch_input_shape=(2, 3, 3))])
    randomize(stateful)
    whole = Sequential([LSTM(4, input_shape=(6, 3))])
    whole.set_weights(stateful.get_weights())
    stateful.predict(x[:, :3], batch_size=2)
    second = stateful.predict(x[:, 3:], batch_size=2)
    np.testing.assert_allclose(second, whole.predict(x), atol=1e-6)
    lstm = stateful.layers[0]
    assert all(np.abs(s).sum() > 0 for s in lstm.states)
    stateful.reset_states()
    assert all(np.all(s == 0) for s in lstm.states)
    np.testing.assert_allclose(stateful.predict(x[:, :3], batch_size=2),
                               whole.layers[0](x[:, :3]).value, atol=1e-6)
    lstm.reset_states([np.ones((2, 4)), np.zeros((2, 4))])
    np.testing.assert_array_equal(lstm.states[0], 1)
    with pytest.raises(ShapeError, match="state must have shape"):
        lstm.reset_states([np.ones((3, 4)), np.zeros((3, 4))])
    with pytest.raises(ShapeError, match="stateful with batch size 2"):
        lstm(x[:1, :3])
    with pytest.raises(ConfigError, match="not stateful"):
        LSTM(2).reset_states()


def test_stateful_needs_a_batch_size():
    with pytest.raises(ConfigError, match="needs to know its batch size"):
        Sequential([LSTM(4, stateful=True, input_shape=(3, 3))])


def test_probing_a_model_keeps_stateful_states():
    model = Sequential([GRU(3, stateful=True, return_sequences=True,
                            batch_input_shape=(2, 4, 3)), Dense(2)])
    randomize(model)
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    model.predict(x, batch_size=2)
    before = [s.copy() for s in model.layers[0].states]
    inp = Input(batch_shape=(2, 4, 3))
    Model(inp, model(inp))      # calling the model symbolically must not touch the states
    for a, b in zip(before, model.layers[0].states):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# dropout

def test_dropout_masks_follow_keras():
    lstm = LSTM(4, dropout=0.5)
    gru_rec = GRU(4, dropout=0.3, recurrent_dropout=0.25)
    rnn = SimpleRNN(4, dropout=0.5, recurrent_dropout=0.5)
    for layer in (lstm, gru_rec, rnn):
        layer(Input((T, F_IN)))
    idrop, rdrop = lstm.cell._dropout_masks(5, 3, np.float32, True)
    assert idrop.shape == (5, 3) and rdrop is None          # implementation 2: one mask
    assert set(np.unique(idrop)) <= {0.0, 2.0}
    idrop, rdrop = gru_rec.cell._dropout_masks(5, 3, np.float32, True)
    assert gru_rec.implementation == 1                      # forced by recurrent dropout
    assert idrop.shape == (3, 5, 3) and rdrop.shape == (3, 5, 4)
    idrop, rdrop = rnn.cell._dropout_masks(5, 3, np.float32, True)
    assert idrop.shape == (5, 3) and rdrop.shape == (5, 4)
    assert lstm.cell._dropout_masks(5, 3, np.float32, False) == (None, None)


def test_dropout_only_in_training_and_with_the_drawn_masks():
    layer = GRU(U, dropout=0.4, recurrent_dropout=0.4, return_sequences=True,
                recurrent_activation="sigmoid")
    x = rng.standard_normal((B, T, F_IN)).astype("float32")
    layer(x)
    randomize(layer)
    plain = GRU(U, return_sequences=True, recurrent_activation="sigmoid")
    plain(x)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x, training=False).value, plain(x).value, atol=1e-7)
    masks = layer.cell._dropout_masks(B, F_IN, np.float32, True)
    layer.cell._dropout_masks = lambda *a: masks
    got = layer(x, training=True).value
    W, R, b = (w.value.astype(float) for w in layer.weights)
    idrop, rdrop = masks
    h = np.zeros((B, U))
    outs = []
    for t in range(T):        # Keras implementation 1: one mask per gate
        xs = [x[:, t] * idrop[g] for g in range(3)]
        hs = [h * rdrop[g] for g in range(3)]
        blk = [slice(g * U, (g + 1) * U) for g in range(3)]
        z = sigmoid(xs[0] @ W[:, blk[0]] + b[0, blk[0]] + hs[0] @ R[:, blk[0]] + b[1, blk[0]])
        r = sigmoid(xs[1] @ W[:, blk[1]] + b[0, blk[1]] + hs[1] @ R[:, blk[1]] + b[1, blk[1]])
        hh = np.tanh(xs[2] @ W[:, blk[2]] + b[0, blk[2]] + r * (hs[2] @ R[:, blk[2]] + b[1, blk[2]]))
        h = z * h + (1 - z) * hh
        outs.append(h)
    np.testing.assert_allclose(got, np.stack(outs, 1), atol=1e-5)


# --------------------------------------------------------------------------------------
# Keras 1 spellings

@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras1_lstm_spelling_warns_and_means_the_keras2_layer():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = LSTM(output_dim=4, init="he_normal", inner_init="orthogonal",
                   forget_bias_init="one", inner_activation="hard_sigmoid",
                   W_regularizer="l2", dropout_W=0.1, dropout_U=0.2, consume_less="gpu",
                   input_dim=3, input_length=5, name="old")
    messages = " ".join(str(w.message) for w in caught
                        if issubclass(w.category, DeprecationWarning))
    for word in ("output_dim", "inner_init", "inner_activation", "forget_bias_init",
                 "dropout_W", "dropout_U", "consume_less", "input_dim"):
        assert word in messages
    new = LSTM(4, kernel_initializer="he_normal", recurrent_activation="hard_sigmoid",
               unit_forget_bias=True, kernel_regularizer="l2", dropout=0.1,
               recurrent_dropout=0.2, input_shape=(5, 3), name="old")
    assert old.get_config() == new.get_config()
    with pytest.warns(DeprecationWarning):
        assert LSTM(output_dim=2, forget_bias_init="zero").unit_forget_bias is False
    with pytest.warns(DeprecationWarning, match="inner_activation"):
        gru = GRU(output_dim=3, inner_activation="hard_sigmoid", dropout_W=0.2)
    assert gru.units == 3 and gru.dropout == 0.2
    with pytest.warns(DeprecationWarning, match="output_dim"):
        assert SimpleRNN(output_dim=3, U_regularizer="l1").recurrent_regularizer is not None


# --------------------------------------------------------------------------------------
# bad input

def test_bad_input_and_arguments_raise_modelkit_errors():
    layer = LSTM(3)
    with pytest.raises(ShapeError, match=r"LSTM 'lstm.*rank 3.*got shape \(None, 5\)"):
        layer(Input((5,)))
    built = GRU(3)
    built(Input((4, 2)))
    with pytest.raises(ShapeError, match="built for 2 input features"):
        built(np.zeros((1, 4, 5), "float32"))
    with pytest.raises(ShapeError, match="mask has shape"):
        built(np.zeros((1, 4, 2), "float32"), mask=np.ones((1, 3), bool))
    with pytest.raises(ShapeError, match="expects 2 initial state"):
        LSTM(3)([np.zeros((1, 4, 2)), np.zeros((1, 3))])
    with pytest.raises(ShapeError, match="initial state must have shape"):
        LSTM(3)(Input((4, 2)), initial_state=[Input((4,)), Input((4,))])
    with pytest.raises(ConfigError, match="units must be a positive integer"):
        LSTM(0)
    with pytest.raises(ConfigError, match="dropout must be in"):
        GRU(3, dropout=1.5)
    with pytest.raises(ConfigError, match="cannot run inside the fused recurrent op"):
        SimpleRNN(3, activation=lambda x: x * 2)
    with pytest.raises(ConfigError, match="time_major"):
        LSTM(3, time_major=True)
    with pytest.raises(ConfigError, match="cell must be"):
        RNN(Dense(3))
    with pytest.raises(ConfigError, match="custom cells are not supported"):
        RNN({"class_name": "MyCell", "config": {}})
    with pytest.raises(ConfigError, match="initial state must be symbolic"):
        LSTM(3)(Input((4, 2)), initial_state=[np.zeros((1, 3)), np.zeros((1, 3))])
    with pytest.raises(ModelkitError):
        SimpleRNN(3)(np.zeros((2, 0, 3), "float32"))


def test_cells_run_one_step():
    for cell in (SimpleRNNCell(3), GRUCell(3), LSTMCell(3)):
        x = rng.standard_normal((2, 4)).astype("float32")
        states = cell.get_initial_state(batch_size=2)
        out, new = cell(x, states if isinstance(states, list) else [states])
        assert out.shape == (2, 3) and len(new) == len(cell.state_names)
        layer = RNN(type(cell).from_config(cell.get_config()))
        layer(x[:, None])
        layer.set_weights(cell.get_weights())
        np.testing.assert_allclose(layer(x[:, None]).value, out.value, atol=1e-6)


# --------------------------------------------------------------------------------------
# real Keras files

@pytest.mark.parametrize("version", ["keras2", "keras3"])
@pytest.mark.parametrize("name", ["lstm", "rnn_variants"])
def test_real_keras_fixtures_predict_the_same(version, name):
    model = load_model(FIXTURES / version / f"{name}.h5")
    data = np.load(FIXTURES / version / f"{name}.npz")
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5)


# --------------------------------------------------------------------------------------
# a shared layer, the default gates in both dialects

def test_shared_lstm_two_calls_one_set_of_weights(tmp_path):
    tweet_a, tweet_b = Input(shape=(6, 5)), Input(shape=(6, 5))
    shared_lstm = LSTM(4)
    encoded_a, encoded_b = shared_lstm(tweet_a), shared_lstm(tweet_b)
    model = Model([tweet_a, tweet_b], Dense(1, activation="sigmoid")(
        modelkit.layers.concatenate([encoded_a, encoded_b], axis=-1)))
    assert len(shared_lstm._inbound_nodes) == 2 and len(model.weights) == 5
    randomize(model)
    a, b = (rng.standard_normal((3, 6, 5)).astype("float32") for _ in range(2))
    want = model.predict([a, b])
    for other in (from_ir(model.to_ir()), _saved_and_loaded(model, tmp_path)):
        np.testing.assert_allclose(other.predict([a, b]), want, atol=1e-7)


def test_default_gates_are_sigmoid_and_write_in_both_keras_dialects(tmp_path):
    """Sigmoid gates by default, so a default model has a Keras 3 spelling too (Keras 2's
    hard_sigmoid has none); explicit hard_sigmoid keeps Keras 2's clip(0.2x + 0.5)."""
    from modelkit.converters import hdf5
    x = np.random.default_rng(2).standard_normal((3, 4, 2)).astype("float32")
    model = Sequential([LSTM(3, return_sequences=True, input_shape=(4, 2)), GRU(2)])
    lstm = model.layers[0]
    kernel, rec, bias = [w.value for w in lstm.cell.weights]
    want_seq = reference(lstm, x, [kernel, rec, bias])
    z = x[:, 0] @ kernel + bias
    np.testing.assert_allclose(np.asarray(lstm(x))[:, 0, :],
                               sigmoid(z[:, 9:]) * np.tanh(sigmoid(z[:, :3]) * np.tanh(z[:, 6:9])),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(lstm(x)), want_seq, rtol=1e-5, atol=1e-6)
    want = model.predict(x)
    for dialect in ("keras2", "keras3"):
        hdf5.save_graph(model.to_ir(), tmp_path / f"{dialect}.h5", dialect=dialect)
        back = load_model(tmp_path / f"{dialect}.h5")
        assert back.layers[0].get_config()["recurrent_activation"] == "sigmoid"
        np.testing.assert_allclose(back.predict(x), want, rtol=1e-6, atol=1e-7)
    hard = LSTM(3, recurrent_activation="hard_sigmoid")
    hard(Input((4, 2)))
    hard.set_weights([kernel, rec, bias])
    np.testing.assert_allclose(np.asarray(hard(x)), reference(hard, x, [kernel, rec, bias]),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(hard(x)), np.asarray(lstm(x))[:, -1], atol=1e-3)
    inp = Input((4, 2))
    with pytest.raises(UnsupportedError, match="'hard'.*hard_sigmoid.*no Keras 3 equivalent"):
        Model(inp, LSTM(3, recurrent_activation="hard_sigmoid", name="hard")(inp)).save(
            tmp_path / "hard.keras")

"""ONNX export parity for the recurrent group: one row per layer configuration,
onnxruntime's output vs `model.predict` on the same random weights, max abs diff <= 1e-5.

A row is skipped only when the exporter raises UnsupportedError for it (so rows start
passing as handlers land)."""

import numpy as np
import pytest

from modelkit.errors import UnsupportedError
from modelkit.layers import (GRU, LSTM, Bidirectional, Dense, Embedding, Input, Masking,
                             SimpleRNN, TimeDistributed)
from modelkit.models import Model, Sequential

onnx_conv = pytest.importorskip("modelkit.converters.onnx")
pytest.importorskip("onnxruntime")

rng = np.random.default_rng(17)
T, F_IN = 5, 3


def seq(first_layer, *rest, shape=(T, F_IN)):
    return lambda: Sequential([first_layer(shape)] + [f() for f in rest])


def first(make_layer):
    """The first layer of a Sequential, given its input shape."""
    return lambda shape: make_layer(input_shape=shape)


def with_initial_state(layer_factory, units, n_states):
    def make():
        inp = Input((T, F_IN))
        states = [Input((units,)) for _ in range(n_states)]
        return Model([inp] + states, layer_factory()(inp, initial_state=states))
    return make


def td_model():
    inner = Sequential([Dense(4, activation="tanh", input_shape=(F_IN,)), Dense(2)])
    inp = Input((T, F_IN))
    return Model(inp, TimeDistributed(inner)(inp))


def floats(n_states=0, units=3):
    def make(batch):
        x = rng.standard_normal((batch, T, F_IN)).astype("float32")
        return [x] + [rng.standard_normal((batch, units)).astype("float32")
                      for _ in range(n_states)]
    return make


def right_padded(batch):
    x = rng.standard_normal((batch, T, F_IN)).astype("float32")
    for i in range(batch):
        x[i, T - i % T:] = 0           # sample i ends with i padded steps
    return [x]


def padded_ids(batch):
    ids = rng.integers(1, 9, (batch, T)).astype("int32")
    for i in range(batch):
        ids[i, T - i % T:] = 0
    return [ids]


ROWS = {   # name -> (model factory, input maker, xfail reason or None)
    "SimpleRNN": (seq(first(lambda **k: SimpleRNN(3, **k))), floats(), None),
    "SimpleRNN_seq_back_relu": (seq(first(lambda **k: SimpleRNN(
        3, return_sequences=True, go_backwards=True, activation="relu", **k))), floats(), None),
    "GRU": (seq(first(lambda **k: GRU(3, **k))), floats(), None),
    "GRU_reset_before_seq": (seq(first(lambda **k: GRU(3, reset_after=False,
                                                       return_sequences=True, **k))),
                             floats(), None),
    "GRU_back_seq": (seq(first(lambda **k: GRU(3, go_backwards=True, return_sequences=True,
                                               **k))), floats(), None),
    "GRU_initial_state": (with_initial_state(lambda: GRU(3, return_state=True), 3, 1),
                          floats(1), None),
    "LSTM": (seq(first(lambda **k: LSTM(3, **k))), floats(), None),
    "LSTM_seq_hard_sigmoid": (seq(first(lambda **k: LSTM(
        3, return_sequences=True, recurrent_activation="hard_sigmoid", **k))), floats(), None),
    "LSTM_back_seq_nobias": (seq(first(lambda **k: LSTM(3, go_backwards=True, use_bias=False,
                                                        return_sequences=True, **k))),
                             floats(), None),
    "LSTM_initial_state": (with_initial_state(lambda: LSTM(3, return_state=True), 3, 2),
                           floats(2), None),
    "LSTM_stacked": (seq(first(lambda **k: LSTM(4, return_sequences=True, **k)),
                         lambda: LSTM(3)), floats(), None),
    "Masking_LSTM_seq": (seq(first(lambda **k: Masking(**k)),
                             lambda: LSTM(3, return_sequences=True)), right_padded, None),
    "Masking_GRU_last": (seq(first(lambda **k: Masking(**k)), lambda: GRU(3)), right_padded,
                         None),
    "Embedding": (lambda: Sequential([Embedding(9, 3, input_length=T)]), padded_ids, None),
    "Embedding_mask_LSTM_seq": (lambda: Sequential([Embedding(9, 3, mask_zero=True,
                                                              input_length=T),
                                                    LSTM(3, return_sequences=True), GRU(2)]),
                                padded_ids, None),
    "Bidirectional_concat_seq": (seq(first(lambda **k: Bidirectional(
        LSTM(3, return_sequences=True), **k))), floats(), None),
    "Bidirectional_sum": (seq(first(lambda **k: Bidirectional(GRU(3), merge_mode="sum", **k))),
                          floats(), None),
    "Bidirectional_ave_seq": (seq(first(lambda **k: Bidirectional(
        SimpleRNN(3, return_sequences=True), merge_mode="ave", **k))), floats(), None),
    "Bidirectional_mul": (seq(first(lambda **k: Bidirectional(LSTM(3), merge_mode="mul", **k))),
                          floats(), None),
    "Bidirectional_none_state": (lambda: (lambda i: Model(i, Bidirectional(
        LSTM(3, return_state=True), merge_mode=None)(i)))(Input((T, F_IN))), floats(), None),
    "Bidirectional_mask_last": (seq(first(lambda **k: Masking(**k)),
                                    lambda: Bidirectional(LSTM(3))), right_padded, None),
    "Bidirectional_mask_seq": (seq(first(lambda **k: Masking(**k)),
                                   lambda: Bidirectional(LSTM(3, return_sequences=True))),
                               right_padded, None),
    "TimeDistributed_Dense": (seq(first(lambda **k: TimeDistributed(Dense(2), **k))), floats(),
                              None),
    "TimeDistributed_model": (td_model, floats(), None),
}


def randomize(model):
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype(w.dtype) * 0.6)


@pytest.mark.parametrize("row", list(ROWS))
def test_onnx_matches_predict(row, request):
    make, inputs, _ = ROWS[row]
    model = make()
    randomize(model)
    batch = model.inputs[0].shape[0] or 4
    xs = inputs(batch)
    want = model.predict(xs if len(xs) > 1 else xs[0], batch_size=batch)
    want = want if isinstance(want, list) else [want]
    proto = onnx_conv.export(model)
    from modelkit.converters.onnx.testing import run
    got = run(proto, xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.abs(g - w).max() <= 1e-5


def test_stateful_recurrent_layers_are_refused_with_a_clear_error():
    """A stateful RNN carries state between calls, which an ONNX graph cannot hold."""
    model = Sequential([LSTM(3, stateful=True, batch_input_shape=(4, T, F_IN), name="keeper")])
    with pytest.raises(UnsupportedError, match="LSTM layer 'keeper'.*stateful"):
        onnx_conv.export(model)

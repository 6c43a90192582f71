"""RNN([cells]) / RNN(StackedRNNCells(cells)): cells stacked per time step, checked against a
numpy reference that steps the whole stack one timestep at a time (each cell's Keras 2 step
equations from test_layers_recurrent.reference), through run_layer_test (config, IR, .h5,
.keras round trips, float64 gradients), with masks, initial / returned states, stateful use,
the real tf-keras 2.21 and Keras 3.15 files and the ONNX refusal."""

import numpy as np
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.errors import ConfigError, ShapeError, UnsupportedError
from modelkit.layers import (GRU, LSTM, RNN, Bidirectional, Dense, GRUCell, Input, LSTMCell,
                             Masking, SimpleRNN, SimpleRNNCell, StackedRNNCells, deserialize,
                             serialize)
from modelkit.models import Model, Sequential, load_model
from modelkit.nesting import flatten_structure

from layer_testing import run_layer_test
from test_layers_recurrent import reference, signed

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "stacked_rnn"
T, F_IN = 4, 3

ROWS = {
    "lstm_gru_seq": lambda **kw: RNN([LSTMCell(4, dtype=kw.get("dtype")),
                                      GRUCell(3, dtype=kw.get("dtype"))],
                                     return_sequences=True, **kw),
    "simple_lstm_state_back": lambda **kw: RNN([SimpleRNNCell(3, dtype=kw.get("dtype")),
                                                LSTMCell(2, dtype=kw.get("dtype"))],
                                               return_state=True, go_backwards=True, **kw),
    "stacked_cells_gru_gru_back_seq": lambda **kw: RNN(
        StackedRNNCells([GRUCell(2, dtype=kw.get("dtype")),
                         GRUCell(3, reset_after=False, use_bias=False, dtype=kw.get("dtype"))],
                        dtype=kw.get("dtype")),
        return_sequences=True, go_backwards=True, **kw),
}

_PROXY = {"LSTMCell": LSTM, "GRUCell": GRU, "SimpleRNNCell": SimpleRNN}


def _proxies(layer):
    """One single-step Keras-2 layer per cell (return_state, the cell's settings)."""
    out = []
    for c in layer.cell.cells:
        kw = {"reset_after": c.reset_after} if isinstance(c, GRUCell) else {}
        out.append((_PROXY[type(c).__name__](c.units, use_bias=c.use_bias, return_state=True,
                                             **kw), len(c.state_names), len(c.weights)))
    return out


def stacked_reference(layer, x, weights, mask=None, initial=None):
    """Step the whole stack: at each timestep cell k's output is cell k+1's input."""
    x = x.astype(float)
    weights = [w.astype(float) for w in weights]
    proxies = _proxies(layer)
    states, at = [], 0
    for proxy, n, _ in proxies:
        states.append([np.zeros((x.shape[0], proxy.units))] * n if initial is None
                      else list(initial[at:at + n]))
        at += n
    order = range(T - 1, -1, -1) if layer.go_backwards else range(T)
    prev, outs = np.zeros((x.shape[0], layer.cell.units)), []
    for t in order:
        inp, ws = x[:, t:t + 1], list(weights)
        m = None if mask is None else mask[:, t:t + 1]
        for k, (proxy, n, nw) in enumerate(proxies):
            out, *states[k] = reference(proxy, inp, ws[:nw], mask=m, initial=states[k])
            inp, ws = out[:, None], ws[nw:]
        if m is not None:
            out = np.where(m, out, prev)
        prev = out
        outs.append(out)
    seq = np.stack(outs, axis=1)
    result = seq if layer.return_sequences else seq[:, -1]
    flat = [s for st in states for s in st]
    return [result] + flat if layer.return_state else result


def expected_shapes(layer):
    out = (T, layer.cell.units) if layer.return_sequences else (layer.cell.units,)
    if layer.return_state:
        return [out] + [(u,) for u in layer.cell.state_units]
    return out


@pytest.mark.parametrize("row", list(ROWS))
def test_layer(row, tmp_path):
    layer = ROWS[row]()
    run_layer_test(ROWS[row], (T, F_IN), tmp_path, weights=signed, atol=1e-5,
                   output_shape=expected_shapes(layer),
                   reference=lambda x, la: stacked_reference(la, x, la.get_weights()))


def test_weight_names_states_and_config():
    layer = RNN(StackedRNNCells([LSTMCell(4, name="lstm_cell"), GRUCell(3, name="gru_cell")],
                                name="stacked_rnn_cells"), name="rnn")
    layer(Input(shape=(T, F_IN)))
    assert [w.name for w in layer.weights] == [
        "rnn/stacked_rnn_cells/lstm_cell/kernel", "rnn/stacked_rnn_cells/lstm_cell/recurrent_kernel",
        "rnn/stacked_rnn_cells/lstm_cell/bias", "rnn/stacked_rnn_cells/gru_cell/kernel",
        "rnn/stacked_rnn_cells/gru_cell/recurrent_kernel", "rnn/stacked_rnn_cells/gru_cell/bias"]
    assert RNN([LSTMCell(2), GRUCell(2)]).cell.name.startswith("stacked_rnn_cells")
    assert layer.weights[3].shape == (4, 9)
    assert layer.cell.state_size == [[4, 4], 3] and layer.units == 3
    cfg = layer.get_config()["cell"]
    assert cfg["class_name"] == "StackedRNNCells"
    assert [c["class_name"] for c in cfg["config"]["cells"]] == ["LSTMCell", "GRUCell"]
    again = deserialize(serialize(layer))
    assert isinstance(again.cell, StackedRNNCells) and again.cell.state_units == [4, 4, 3]


@pytest.mark.parametrize("backwards", [False, True])
def test_mask_keeps_every_cells_states_and_the_previous_output(backwards):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, T, F_IN)).astype("float32")
    x[1, 2:] = 0.0
    x[2, :1] = 0.0
    inp = Input(shape=(T, F_IN))
    model = Model(inp, RNN([GRUCell(3), LSTMCell(2)], return_sequences=True, return_state=True,
                           go_backwards=backwards)(Masking(0.0)(inp)))
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype("float32") * 0.5)
    got = model.predict(x)
    want = stacked_reference(model.layers[-1], x, model.get_weights(),
                             mask=np.any(x != 0, axis=-1))
    assert [np.shape(g) for g in got[:2]] == [(3, T, 2), (3, 3)]   # [seq, h1, [h2, c2]]
    got = flatten_structure(got)
    assert len(got) == 4
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_initial_states_are_every_cells_states_in_order(tmp_path):
    rng = np.random.default_rng(4)
    inp, h1, c1, h2 = (Input(shape=(T, F_IN)), Input(shape=(4,)), Input(shape=(4,)),
                       Input(shape=(3,)))
    layer = RNN([LSTMCell(4), GRUCell(3)], return_state=True)
    model = Model([inp, h1, c1, h2], layer(inp, initial_state=[h1, c1, h2]))
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype("float32") * 0.5)
    xs = [rng.standard_normal((2,) + s).astype("float32") for s in ((T, F_IN), (4,), (4,), (3,))]
    want = stacked_reference(layer, xs[0], model.get_weights(), initial=xs[1:])
    for g, w in zip(flatten_structure(model.predict(xs)), want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)
    model.save(tmp_path / "m.h5")
    for g, w in zip(flatten_structure(load_model(tmp_path / "m.h5").predict(xs)), want,
                    strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)
    with pytest.raises(ShapeError, match="3 initial state"):
        layer(inp, initial_state=[h1, c1])
    with pytest.raises(ShapeError, match=r"\(batch, 3\)"):
        layer(inp, initial_state=[h1, c1, h1])


def test_stateful_stack_carries_all_states_across_batches():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2 * T, F_IN)).astype("float32")
    whole = Sequential([RNN([LSTMCell(3), SimpleRNNCell(2)], input_shape=(2 * T, F_IN))])
    split = Sequential([RNN([LSTMCell(3), SimpleRNNCell(2)], stateful=True,
                            batch_input_shape=(2, T, F_IN))])
    split.set_weights(whole.get_weights())
    split.predict(x[:, :T])
    np.testing.assert_allclose(split.predict(x[:, T:]), whole.predict(x), atol=1e-5)
    assert [s.shape for s in split.layers[0].states] == [(2, 3), (2, 3), (2, 2)]
    split.layers[0].reset_states()
    assert all(not s.any() for s in split.layers[0].states)


@pytest.mark.parametrize("name,data", [("tfk_stacked.h5", "tfk_stacked.npz"),
                                       ("k3_stacked.keras", "k3_stacked.npz"),
                                       ("tfk_bidir.h5", "tfk_bidir.npz"),
                                       ("k3_bidir.keras", "k3_bidir.npz")])
def test_real_keras_files_load_predict_and_resave(name, data, tmp_path):
    """tf-keras 2.21 / Keras 3.15 files of Masking -> RNN([LSTMCell(4), GRUCell(3)]) -> Dense
    and Masking -> Bidirectional(RNN([LSTMCell(3), GRUCell(2)])) (make_stacked_rnn.py): same
    predictions, and modelkit's own saves reload the same."""
    d = np.load(FIXTURES / data)
    model = load_model(FIXTURES / name)
    y = model.predict(d["x0"])
    np.testing.assert_allclose(y, d["y0"], atol=1e-5)
    for ext in (".h5", ".keras"):
        model.save(tmp_path / f"m{ext}")
        np.testing.assert_allclose(load_model(tmp_path / f"m{ext}").predict(d["x0"]), y, atol=0)


def test_keras3_archive_keeps_the_cells_under_cell_cells(tmp_path):
    import io, zipfile
    import h5py
    model = Sequential([RNN([LSTMCell(2), LSTMCell(3), GRUCell(2)], name="rnn",
                            input_shape=(T, F_IN))])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        f = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
        shapes = {p: f[f"layers/rnn/cell/cells/{p}/vars/0"].shape
                  for p in ("lstm_cell", "lstm_cell_1", "gru_cell")}
    assert shapes == {"lstm_cell": (3, 8), "lstm_cell_1": (2, 12), "gru_cell": (3, 6)}
    x = np.random.default_rng(6).standard_normal((2, T, F_IN)).astype("float32")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x), model.predict(x),
                               atol=0)


def test_h5_config_names_the_cells_module_for_keras3(tmp_path):
    """Keras 3 loads a Keras-2 .h5 stack only when every cell names its module."""
    import json
    import h5py
    Sequential([RNN([LSTMCell(2), GRUCell(2)], name="rnn", input_shape=(T, F_IN))]).save(
        tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
    rnn = config["config"]["layers"][-1]["config"]
    assert "time_major" not in rnn
    assert rnn["cell"]["module"] == "keras.layers"
    assert [(c["module"], c["class_name"]) for c in rnn["cell"]["config"]["cells"]] == [
        ("keras.layers", "LSTMCell"), ("keras.layers", "GRUCell")]


@pytest.mark.parametrize("backwards", [False, True])
def test_onnx_with_a_mask_and_initial_states_matches_predict(backwards):
    """One ONNX LSTM/GRU/RNN node per cell; masks and initial states as in predict."""
    from modelkit.converters.onnx.testing import run
    rng = np.random.default_rng(7)
    inp, h1, c1, h2 = (Input(shape=(T, F_IN)), Input(shape=(4,)), Input(shape=(4,)),
                       Input(shape=(3,)))
    layer = RNN([LSTMCell(4), GRUCell(3, reset_after=False), SimpleRNNCell(2)],
                return_sequences=True, return_state=True, go_backwards=backwards)
    h3 = Input(shape=(2,))
    model = Model([inp, h1, c1, h2, h3],
                  layer(Masking(0.0)(inp), initial_state=[h1, c1, h2, h3]))
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype("float32") * 0.5)
    xs = [rng.standard_normal((3,) + s).astype("float32")
          for s in ((T, F_IN), (4,), (4,), (3,), (2,))]
    xs[0][1, 2:] = 0.0
    xs[0][2, :1] = 0.0
    proto = onnx_conv.export(model)
    kinds = [n.op_type for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    assert kinds == ["LSTM", "GRU", "RNN"]
    got = run(proto, xs)
    want = flatten_structure(model.predict(xs))
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_onnx_export_refuses_a_stateful_stack_naming_the_layer():
    model = Sequential([RNN([LSTMCell(2), GRUCell(2)], name="stack", stateful=True,
                            batch_input_shape=(2, T, F_IN)), Dense(1)])
    with pytest.raises(UnsupportedError, match="stack.*stateful"):
        onnx_conv.export(model)


def test_bad_cells_raise_config_errors():
    with pytest.raises(ConfigError, match="StackedRNNCells"):
        RNN([LSTMCell(2), Dense(3)])
    with pytest.raises(ConfigError, match="at least one cell"):
        RNN([])


@pytest.mark.parametrize("seq,masked", [(True, True), (False, True), (True, False)])
def test_onnx_bidirectional_over_cells_matches_predict(seq, masked):
    """A forward and a backward chain of per-cell ONNX nodes; states and merge as Keras."""
    from modelkit.converters.onnx.testing import run
    rng = np.random.default_rng(8)
    inp, states = Input(shape=(T, F_IN)), [Input(shape=(u,)) for u in (3, 3, 2, 3, 3, 2)]
    h = Masking(0.0)(inp) if masked else inp
    layer = Bidirectional(RNN([LSTMCell(3), GRUCell(2)], return_sequences=seq,
                              return_state=True), merge_mode="sum")
    model = Model([inp] + states, layer(h, initial_state=states))
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype("float32") * 0.5)
    xs = [rng.standard_normal((3,) + tuple(t.shape[1:])).astype("float32")
          for t in [inp] + states]
    xs[0][1, 2:] = 0.0
    proto = onnx_conv.export(model)
    assert [n.op_type for n in proto.graph.node if n.op_type in ("LSTM", "GRU")] == \
        ["LSTM", "GRU", "LSTM", "GRU"]
    got, want = run(proto, xs), flatten_structure(model.predict(xs))
    assert len(got) == len(want) == 7
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_onnx_of_the_real_bidirectional_file_matches_keras():
    from modelkit.converters.onnx.testing import run
    d = np.load(FIXTURES / "tfk_bidir.npz")
    proto = onnx_conv.export(load_model(FIXTURES / "tfk_bidir.h5"))
    np.testing.assert_allclose(run(proto, [d["x0"]])[0], d["y0"], atol=1e-5)


def test_stacked_cells_run_one_step_as_a_cell():
    """`StackedRNNCells(cells)(x, states)`: one step of the stack (Keras's cell API)."""
    rng = np.random.default_rng(9)
    stack = StackedRNNCells([LSTMCell(3), GRUCell(2)])
    x = rng.standard_normal((2, F_IN)).astype("float32")
    states = stack.get_initial_state(batch_size=2)
    assert [s.shape for s in states] == [(2, 3), (2, 3), (2, 2)]
    states = [rng.standard_normal(s.shape).astype("float32") for s in states]
    out, new = stack(x, states)
    layer = RNN(StackedRNNCells.from_config(stack.get_config()), return_state=True)
    layer(x[:, None], initial_state=states)
    layer.set_weights(stack.get_weights())
    want = layer(x[:, None], initial_state=states)
    assert out.shape == (2, 2) and len(new) == 3
    np.testing.assert_allclose(out.value, want[0].value, atol=1e-6)
    for n, w in zip(new, flatten_structure(want[1:]), strict=True):
        np.testing.assert_allclose(n.value, w.value, atol=1e-6)


@pytest.mark.parametrize("kind", ["tfk", "k3"])
def test_return_state_nests_per_cell_as_the_real_kerases(kind, tmp_path):
    """RNN([LSTMCell(4), GRUCell(3)], return_state=True) -> [out, [h1, c1], h2] as tf-keras
    2.21 and Keras 3.15 return it; their files (output_layers nested the same way) load
    with that structure, predict equal, and modelkit writes the nesting back."""
    path = FIXTURES / ("tfk_state.h5" if kind == "tfk" else "k3_state.keras")
    d = np.load(path.with_suffix(".npz"))
    model = load_model(path)
    got = model.predict(d["x0"])
    assert len(got) == 3 and isinstance(got[1], list) and len(got[1]) == 2
    for g, i in zip(flatten_structure(got), range(4), strict=True):
        np.testing.assert_allclose(g, d[f"y{i}"], atol=1e-6)
    assert model.get_config()["output_layers"] == \
        [["rnn", 0, 0], [["rnn", 0, 1], ["rnn", 0, 2]], ["rnn", 0, 3]]
    for ext in (".h5", ".keras"):
        model.save(tmp_path / ("m" + ext))
        again = load_model(tmp_path / ("m" + ext)).predict(d["x0"])
        assert isinstance(again[1], list)
        for g, w in zip(flatten_structure(again), flatten_structure(got), strict=True):
            np.testing.assert_array_equal(g, w)


def test_return_state_structure_of_each_stack_and_nested_initial_states():
    """Keras's nesting: a one-state cell gives its tensor, an LSTM cell [h, c]; RNN(cell)
    stays flat; Bidirectional nests each direction's; initial_state nested or flat."""
    x = Input(shape=(T, F_IN))

    def shapes(o):
        return [shapes(i) for i in o] if isinstance(o, list) else tuple(o.shape)
    assert shapes(RNN([SimpleRNNCell(2), LSTMCell(3)], return_state=True)(x)) == \
        [(None, 3), (None, 2), [(None, 3), (None, 3)]]
    assert shapes(RNN([GRUCell(2)], return_state=True)(x)) == [(None, 2), (None, 2)]
    assert shapes(RNN(LSTMCell(2), return_state=True)(x)) == [(None, 2)] * 3
    assert shapes(Bidirectional(RNN([LSTMCell(4), GRUCell(2)], return_state=True))(x)) == \
        [(None, 4), [(None, 4), (None, 4)], (None, 2), [(None, 4), (None, 4)], (None, 2)]
    rng = np.random.default_rng(10)
    layer = RNN([LSTMCell(4), GRUCell(2)], return_state=True)
    xv = rng.standard_normal((2, T, F_IN)).astype("float32")
    states = [rng.standard_normal((2, u)).astype("float32") for u in (4, 4, 2)]
    nested = layer(xv, initial_state=[states[:2], states[2]])
    flat = layer(xv, initial_state=states)
    assert isinstance(nested[1], list) and len(nested) == 3
    for a, b in zip(flatten_structure(nested), flatten_structure(flat), strict=True):
        np.testing.assert_array_equal(a.value, b.value)
    with pytest.raises(ShapeError, match="expects 3 initial state"):
        layer(xv, initial_state=[states[:2]])


def test_a_model_with_nested_outputs_called_as_a_layer_nests_them(tmp_path):
    """Model(x, RNN([cells], return_state=True)(x)) called on a tensor returns Keras's
    nesting, symbolic and eager; an outer model over a nested state saves and reloads."""
    x, y = Input(shape=(T, F_IN)), Input(shape=(T, F_IN))
    inner = Model(x, RNN([LSTMCell(4), GRUCell(3)], return_state=True)(x))
    out = inner(y)
    assert len(out) == 3 and [tuple(t.shape) for t in out[1]] == [(None, 4), (None, 4)]
    outer = Model(y, [out[0], out[1][1]])
    xv = np.random.default_rng(15).standard_normal((2, T, F_IN)).astype("float32")
    eager = inner(xv)
    got = outer.predict(xv)
    np.testing.assert_allclose(got[1], eager[1][1].value, atol=1e-6)
    np.testing.assert_allclose(got[0], eager[0].value, atol=1e-6)
    outer.save(tmp_path / "m.h5")
    for g, w in zip(load_model(tmp_path / "m.h5").predict(xv), got, strict=True):
        np.testing.assert_array_equal(g, w)

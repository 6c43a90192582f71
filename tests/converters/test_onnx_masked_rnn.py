"""Masked recurrent layers in ONNX give modelkit's (= Keras's) numbers for every mask pattern.

A masked step keeps the state and repeats the previous output (zeros before the first
unmasked step); Bidirectional forces zeros at masked steps of a returned sequence. The batch
holds one row per pattern: masked steps at the start, a single hole in the middle, a run in
the middle, at the end, every other step, every step, and none. Each model has several
outputs (sequences, last outputs, states, stacked layers, go_backwards, Bidirectional) so one
onnxruntime session checks them all. The reference is `model.predict`; the real-Keras
fixtures `masked_holes` / `embed_holes` (tests/converters/test_hdf5_fixtures.py) tie it to Keras.
"""

import os

import numpy as np
import pytest

from modelkit.layers import (GRU, LSTM, Bidirectional, Embedding, Input, Masking, SimpleRNN)
from modelkit.models import Model, load_model
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run

T, F = 7, 3
PATTERNS = {            # name -> masked steps of that row
    "start": [0, 1],
    "middle_one": [3],
    "middle_run": [2, 3, 4],
    "end": [5, 6],
    "every_other": [0, 2, 4, 6],
    "all": list(range(T)),
    "none": [],
}
CELLS = {"LSTM": lambda u, **k: LSTM(u, **k),
         "GRU": lambda u, **k: GRU(u, **k),
         "GRU_reset_before": lambda u, **k: GRU(u, reset_after=False, **k),
         "SimpleRNN": lambda u, **k: SimpleRNN(u, **k)}
N_STATES = {"LSTM": 2}


def holey_frames(rng):
    x = rng.standard_normal((len(PATTERNS), T, F)).astype("float32")
    for row, steps in enumerate(PATTERNS.values()):
        x[row, steps] = 0.0
    return x


def randomize(model, rng):
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype(w.dtype) * 0.6)


def masked_model(cell):
    """Every way a masked RNN is used, as outputs of one functional model."""
    make = CELLS[cell]
    inp = Input((T, F))
    m = Masking(0.0)(inp)
    seq = make(4, return_sequences=True)(m)
    stacked = make(3, return_sequences=True)(seq)
    outs = [seq, stacked, make(2)(stacked),
            make(3, return_sequences=True, zero_output_for_mask=True)(m),
            make(2, zero_output_for_mask=True)(m)]
    outs += make(3, go_backwards=True, return_sequences=True, return_state=True)(m)
    outs += make(2, go_backwards=True, return_state=True)(m)
    outs.append(Bidirectional(make(3, return_sequences=True))(seq))
    outs += Bidirectional(make(2, return_state=True), merge_mode="sum")(m)
    outs += Bidirectional(make(2, return_sequences=True), merge_mode=None)(m)
    return inp, outs


def with_initial_state(cell):
    """Initial states with a mask: a fully masked row keeps them as its states."""
    make = CELLS[cell]
    inp = Input((T, F))
    states = [Input((3,)) for _ in range(N_STATES.get(cell, 1))]
    m = Masking(0.0)(inp)
    outs = make(3, return_sequences=True, return_state=True)(m, initial_state=states)
    outs += make(3, return_state=True, go_backwards=True)(m, initial_state=states)
    return Model([inp] + states, outs)


def onnx_vs_predict(model, xs):
    want = model.predict(xs if len(xs) > 1 else xs[0], batch_size=len(xs[0]))
    want = want if isinstance(want, list) else [want]
    got = run(onnx_conv.export(model), xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
    return got, want


def per_pattern_diff(got, want):
    """Max abs difference per batch row (= mask pattern) over all outputs."""
    return {name: max(float(np.abs(g[row] - w[row]).max()) for g, w in zip(got, want))
            for row, name in enumerate(PATTERNS)}


@pytest.mark.parametrize("cell", list(CELLS))
def test_every_mask_pattern_matches_predict(cell):
    rng = np.random.default_rng(3)
    inp, outs = masked_model(cell)
    model = Model(inp, outs)
    randomize(model, rng)
    got, want = onnx_vs_predict(model, [holey_frames(rng)])
    diffs = per_pattern_diff(got, want)
    assert max(diffs.values()) <= 1e-5, diffs
    # the check is not vacuous: masked steps change the numbers and repeat outputs
    seq = want[0]
    assert np.array_equal(seq[1, 3], seq[1, 2])             # the hole repeats step 2
    assert not np.array_equal(seq[1, 4], seq[1, 3])
    assert np.all(seq[0, :2] == 0) and np.all(seq[5] == 0)  # nothing before: zeros


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_initial_states_survive_fully_masked_rows(cell):
    rng = np.random.default_rng(4)
    model = with_initial_state(cell)
    randomize(model, rng)
    x = holey_frames(rng)
    states = [rng.standard_normal((len(x), 3)).astype("float32") for _ in model.inputs[1:]]
    got, want = onnx_vs_predict(model, [x] + states)
    diffs = per_pattern_diff(got, want)
    assert max(diffs.values()) <= 1e-5, diffs
    row = list(PATTERNS).index("all")
    np.testing.assert_allclose(got[1][row], states[0][row], atol=1e-6)   # h kept


def test_embedding_mask_zero_with_holes():
    rng = np.random.default_rng(5)
    inp = Input((T,), dtype="int32")
    e = Embedding(10, 3, mask_zero=True)(inp)
    a = GRU(4, return_sequences=True)(e)
    b = LSTM(3, return_sequences=True, go_backwards=True)(a)
    model = Model(inp, [a, b, SimpleRNN(2)(b), Bidirectional(LSTM(2))(a)])
    randomize(model, rng)
    ids = rng.integers(1, 10, (len(PATTERNS), T)).astype("int32")
    for row, steps in enumerate(PATTERNS.values()):
        ids[row, steps] = 0
    got, want = onnx_vs_predict(model, [ids])
    diffs = per_pattern_diff(got, want)
    assert max(diffs.values()) <= 1e-5, diffs


def test_masked_steps_are_skipped_wherever_they_are():
    """The reference itself: leading masked steps change nothing (the row equals the same
    row without them, or with them moved to the end), and ONNX agrees."""
    rng = np.random.default_rng(6)
    inp = Input((None, F))
    model = Model(inp, LSTM(3)(Masking(0.0)(inp)))
    randomize(model, rng)
    x = holey_frames(rng)
    want = model.predict(x)
    row = list(PATTERNS).index("start")
    naive = model.predict(x[row:row + 1, 2:])             # the right-padded reading
    shifted = model.predict(np.concatenate([x[row:row + 1, 2:], np.zeros((1, 2, F), "f")], 1))
    np.testing.assert_allclose(naive, want[row:row + 1], atol=1e-6)
    np.testing.assert_allclose(shifted, want[row:row + 1], atol=1e-6)
    got = run(onnx_conv.export(model), [x])[0]
    assert np.abs(got - want).max() <= 1e-5


@pytest.mark.parametrize("version", ["keras2", "keras3"])
@pytest.mark.parametrize("name", ["masked_holes", "embed_holes"])
def test_real_keras_masked_models_export_with_keras_numbers(version, name):
    """tf-keras 2.21 / Keras 3.15 files with holes in their masks (tests/fixtures/README.md):
    the ONNX export reproduces the predictions Keras stored."""
    base = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", version, name)
    model = load_model(base + ".h5")
    data = np.load(base + ".npz")
    x = data["x0"]
    ys = [data[k] for k in sorted(k for k in data.files if k.startswith("y"))]
    proto = onnx_conv.export(model)
    dtype = {1: "float32", 6: "int32", 7: "int64"}[proto.graph.input[0].type.tensor_type.elem_type]
    got = run(proto, [x.astype(dtype)])
    assert len(got) == len(ys)
    for g, y in zip(got, ys):
        assert np.abs(g - y).max() <= 1e-5


@pytest.mark.parametrize("opset", [13, 21])
def test_mask_graph_works_at_every_supported_opset(opset):
    rng = np.random.default_rng(7)
    inp, outs = masked_model("GRU")
    model = Model(inp, outs)
    randomize(model, rng)
    x = holey_frames(rng)
    want = model.predict(x)
    got = run(onnx_conv.export(model, opset=opset), [x])
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want)) <= 1e-5

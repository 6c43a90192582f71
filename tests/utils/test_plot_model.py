"""modelkit.utils.plot_model / model_to_dot / plot_history: real PNG and SVG files."""

import json
import re
import shutil
import struct
import sys

import numpy as np
import pytest

from modelkit.errors import ConfigError, MissingDependencyError
from modelkit.layers import LSTM, Dense, Input, TimeDistributed, concatenate
from modelkit.models import Model, Sequential
from modelkit.utils import model_to_dot, plot_model
from modelkit.utils import vis_utils

pydot = pytest.importorskip("pydot", reason="pydot is not installed (pip install 'modelkit[plot]')")
needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None,
                                    reason="Graphviz's 'dot' program is not installed "
                                           "(apt-get install graphviz)")


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def svg_texts(path):
    text = path.read_text()
    assert "<svg" in text
    return [re.sub(r"&#160;", " ", t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", text)]


@pytest.fixture
def nested():
    a, b = Input((4,), name="a"), Input((5, 3), name="b")
    inner = Sequential([Dense(6, activation="relu", input_shape=(4,), name="hidden"),
                        Dense(2, name="proj")], name="inner")
    h = concatenate([inner(a), LSTM(3, name="lstm")(b)], name="concatenate")
    return Model([a, b], Dense(1, name="head")(h), name="two_inputs")


def test_model_to_dot_has_a_box_per_layer_and_an_arrow_per_connection(nested):
    dot = model_to_dot(nested)
    labels = sorted(n.get("label").strip('"') for n in dot.get_nodes() if n.get("label"))
    assert labels == ["a: InputLayer", "b: InputLayer", "concatenate: Concatenate",
                      "head: Dense", "inner: Sequential", "lstm: LSTM"]
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in dot.get_edges()}
    assert edges == {("a", "inner"), ("b", "lstm"), ("inner", "concatenate"),
                     ("lstm", "concatenate"), ("concatenate", "head")}
    assert dot.get("rankdir") == "TB" and dot.get("dpi") == "96"
    expanded = model_to_dot(nested, expand_nested=True, show_layer_names=False, rankdir="LR")
    cluster, = expanded.get_subgraphs()
    inner_labels = sorted(n.get("label").strip('"') for n in cluster.get_nodes())
    assert inner_labels == ["Dense", "Dense", "InputLayer"]
    with pytest.raises(ConfigError, match="rankdir"):
        model_to_dot(nested, rankdir="XY")


def _labels(dot):
    nodes = list(dot.get_nodes()) + [n for g in dot.get_subgraphs() for n in g.get_nodes()]
    return sorted(n.get("label").strip('"') for n in nodes if n.get("label"))


def test_layer_range_and_wrapped_models(nested):
    dot = model_to_dot(nested, layer_range=["inn.*", "concat"])
    assert _labels(dot) == ["concatenate: Concatenate", "inner: Sequential", "lstm: LSTM"]
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in dot.get_edges()}
    assert edges == {("inner", "concatenate"), ("lstm", "concatenate")}
    with pytest.raises(ConfigError, match=r"matches no run of layers.*'head'"):
        model_to_dot(nested, layer_range=["head", "a"])
    step = Sequential([Dense(3, input_shape=(4,), name="step_dense")], name="step")
    x = Input((5, 4), name="x")
    td = Model(x, Dense(2, name="out")(TimeDistributed(step, name="td")(x)))
    assert _labels(model_to_dot(td)) == ["out: Dense", "td: TimeDistributed", "x: InputLayer"]
    assert _labels(model_to_dot(td, expand_nested=True)) == [
        "out: Dense", "step_dense: Dense", "step_dense_input: InputLayer", "x: InputLayer"]


@needs_graphviz
def test_plot_model_png_and_svg_with_shapes(nested, tmp_path):
    plot_model(nested, to_file=str(tmp_path / "m.png"))
    w, h = png_size(tmp_path / "m.png")
    assert 150 < w < 2000 and 150 < h < 2000
    plot_model(nested, tmp_path / "big.png", dpi=192)
    w2, h2 = png_size(tmp_path / "big.png")
    assert w2 == pytest.approx(2 * w, rel=0.05) and h2 == pytest.approx(2 * h, rel=0.05)
    plot_model(nested, tmp_path / "m.svg", show_shapes=True, show_dtype=True)
    texts = svg_texts(tmp_path / "m.svg")
    for label in ("a: InputLayer", "inner: Sequential", "lstm: LSTM", "head: Dense",
                  "input: [(None, 2), (None, 3)]  |  output: (None, 5)", "dtype: float32"):
        assert label in texts, (label, texts)
    plot_model(nested, tmp_path / "n.svg", expand_nested=True)
    assert {"inner: Sequential", "hidden: Dense", "proj: Dense"} <= set(svg_texts(tmp_path / "n.svg"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_pieces_are_named(nested, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"image format of .*\.bmp"):
        plot_model(nested, tmp_path / "m.bmp")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"Graphviz's 'dot' program.*apt-get install "
                                                     r"graphviz"):
        plot_model(nested, tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()
    plot_model(nested, tmp_path / "m.dot")            # the DOT text needs no Graphviz
    assert "digraph" in (tmp_path / "m.dot").read_text()
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(MissingDependencyError, match=r"pydot package.*modelkit\[plot\]") as e:
        plot_model(nested, tmp_path / "m.png")
    assert isinstance(e.value, ImportError)


def test_plot_history_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (modelkit[plot])")
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    history = model.fit(x, x[:, :2], epochs=3, validation_split=0.25, verbose=0)
    vis_utils.plot_history(history, tmp_path / "h.png")
    w, h = png_size(tmp_path / "h.png")
    assert (w, h) == (1000, 360)                        # two panels: loss and mae
    (tmp_path / "h.json").write_text(json.dumps(history.history))
    vis_utils.plot_history(json.loads((tmp_path / "h.json").read_text()), tmp_path / "h.svg",
                           title="run 1")
    text = (tmp_path / "h.svg").read_text()
    assert "<svg" in text and text.count("<g id=\"line2d_") >= 4
    with pytest.raises(ConfigError, match="non-empty"):
        vis_utils.plot_history({}, tmp_path / "e.png")
    with pytest.raises(ConfigError, match=r"\.png, \.svg or \.pdf"):
        vis_utils.plot_history(history, tmp_path / "h.gif")


def test_missing_matplotlib_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"matplotlib.*modelkit\[plot\]"):
        vis_utils.plot_history({"loss": [1.0, 0.5]}, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()

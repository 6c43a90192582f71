"""ONNX export of SimpleRNN / GRU / LSTM / Bidirectional / TimeDistributed and masks, against
numpy step equations written with Keras's gate orders (LSTM i,f,c,o; GRU z,r,h)."""

import numpy as np
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import layer_graph, run
from modelkit.errors import UnsupportedError
from modelkit.ir import Graph, Node, TensorRef, TensorSpec

RNG = np.random.default_rng(7)


def nz(*shape):
    w = RNG.uniform(0.1, 0.7, size=shape) * RNG.choice([-1.0, 1.0], size=shape)
    return w.astype(np.float32)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


ACTS = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda x: np.maximum(x, 0),
        "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1),
        "keras3_hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
        "linear": lambda x: x, "softsign": lambda x: x / (1 + np.abs(x))}


def rnn_weights(kind, n_in, u, cfg):
    gates = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[kind]
    ws = [nz(n_in, gates * u), nz(u, gates * u)]
    if cfg.get("use_bias", True):
        ws.append(nz(2, 3 * u) if kind == "GRU" and cfg.get("reset_after", True) else nz(gates * u))
    return ws


def rnn_ref(kind, cfg, ws, x, init=None, mask=None):
    """Keras 2 recurrent layer on x (B, T, F): returns [output] + states if return_state."""
    act = ACTS[cfg.get("activation", "tanh")]
    ract = ACTS[cfg.get("recurrent_activation", "sigmoid")]
    kernel, rec = ws[0].astype(np.float64), ws[1].astype(np.float64)
    bias = ws[2].astype(np.float64) if len(ws) > 2 else None
    u = rec.shape[0]
    B, T, _ = x.shape
    h = np.zeros((B, u)) if init is None else init[0].astype(np.float64)
    c = np.zeros((B, u)) if (init is None or kind != "LSTM") else init[1].astype(np.float64)
    steps = range(T - 1, -1, -1) if cfg.get("go_backwards") else range(T)
    prev, outs = np.zeros((B, u)), []
    for t in steps:
        xt = x[:, t]
        if kind == "SimpleRNN":
            h_new = act(xt @ kernel + h @ rec + (0 if bias is None else bias))
            c_new = c
        elif kind == "LSTM":
            z = xt @ kernel + h @ rec + (0 if bias is None else bias)
            i, f, cc, o = np.split(z, 4, axis=1)
            c_new = ract(f) * c + ract(i) * act(cc)
            h_new = ract(o) * act(c_new)
        else:
            reset_after = cfg.get("reset_after", True)
            bi = 0 if bias is None else (bias[0] if reset_after else bias)
            br = 0 if bias is None or not reset_after else bias[1]
            xz, xr, xh = np.split(xt @ kernel + bi, 3, axis=1)
            if reset_after:
                rz, rr, rh = np.split(h @ rec + br, 3, axis=1)
                z, r = ract(xz + rz), ract(xr + rr)
                hh = act(xh + r * rh)
            else:
                z = ract(xz + h @ rec[:, :u])
                r = ract(xr + h @ rec[:, u:2 * u])
                hh = act(xh + (r * h) @ rec[:, 2 * u:])
            h_new = z * h + (1 - z) * hh
            c_new = c
        if mask is not None:
            m = mask[:, t][:, None]
            out = np.where(m, h_new, 0.0 if cfg.get("zero_output_for_mask") else prev)
            h, c = np.where(m, h_new, h), np.where(m, c_new, c)
        else:
            out, h, c = h_new, h_new, c_new
        prev = out
        outs.append(out)
    result = [np.stack(outs, axis=1) if cfg.get("return_sequences") else outs[-1]]
    if cfg.get("return_state"):
        result += [h, c] if kind == "LSTM" else [h]
    return result


def bidirectional_ref(kind, cfg, ws, x, merge_mode, init=None, mask=None):
    half = len(ws) // 2
    ns = 2 if kind == "LSTM" else 1
    # Keras forces zero_output_for_mask=return_sequences inside Bidirectional
    cfg = dict(cfg, zero_output_for_mask=bool(cfg.get("return_sequences")))
    f = rnn_ref(kind, dict(cfg, go_backwards=False), ws[:half], x,
                None if init is None else init[:ns], mask)
    b = rnn_ref(kind, dict(cfg, go_backwards=True), ws[half:], x,
                None if init is None else init[ns:], mask)
    fo, bo = f[0], b[0]
    if cfg.get("return_sequences"):
        bo = bo[:, ::-1]
    merged = {"concat": lambda: [np.concatenate([fo, bo], -1)], "sum": lambda: [fo + bo],
              "mul": lambda: [fo * bo], "ave": lambda: [(fo + bo) / 2],
              None: lambda: [fo, bo]}[merge_mode]()
    return merged + f[1:] + b[1:]


def check(model, inputs, want):
    got = run(model, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


# -- single recurrent layers -------------------------------------------------------------------

ROWS = []
for kind, extra in (("SimpleRNN", {}), ("SimpleRNN", {"activation": "relu"}),
                    ("GRU", {"reset_after": True}), ("GRU", {"reset_after": False}),
                    ("GRU", {"reset_after": True, "use_bias": False}),
                    ("LSTM", {}), ("LSTM", {"recurrent_activation": "hard_sigmoid"}),
                    ("LSTM", {"recurrent_activation": "keras3_hard_sigmoid",
                              "activation": "softsign"}),
                    ("GRU", {"recurrent_activation": "hard_sigmoid", "activation": "linear"})):
    for rs, gb, st in ((False, False, False), (True, False, True), (True, True, False),
                       (False, True, True)):
        cfg = dict(extra, units=3, return_sequences=rs, go_backwards=gb, return_state=st)
        ROWS.append(pytest.param(kind, cfg, id=f"{kind}-{'-'.join(f'{k}={v}' for k, v in cfg.items() if k != 'units')}"))


@pytest.mark.parametrize("kind,cfg", ROWS)
def test_recurrent_layer(kind, cfg):
    ws = rnn_weights(kind, 2, 3, cfg)
    n_out = 1 + (cfg["return_state"] and (2 if kind == "LSTM" else 1))
    g = layer_graph(kind, cfg, ws, [(None, None, 2)], n_outputs=n_out)
    model = onnx_conv.export(g)
    for T in (5, 2):     # dynamic batch and sequence length
        x = RNG.normal(size=(4 if T == 5 else 1, T, 2)).astype(np.float32)
        check(model, [x], rnn_ref(kind, cfg, ws, x.astype(np.float64)))


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM"])
@pytest.mark.parametrize("backwards", [False, True])
def test_initial_state(kind, backwards):
    cfg = {"units": 3, "return_sequences": True, "go_backwards": backwards, "return_state": True}
    ws = rnn_weights(kind, 2, 3, cfg)
    ns = 2 if kind == "LSTM" else 1
    g = layer_graph(kind, cfg, ws, [(None, None, 2)] + [(None, 3)] * ns, n_outputs=1 + ns)
    model = onnx_conv.export(g)
    x = RNG.normal(size=(2, 4, 2)).astype(np.float32)
    states = [RNG.normal(size=(2, 3)).astype(np.float32) for _ in range(ns)]
    check(model, [x] + states, rnn_ref(kind, cfg, ws, x, init=states))


BIDI = []
for kind in ("SimpleRNN", "GRU", "LSTM"):
    for mode in ("concat", "sum", "mul", "ave", None):
        BIDI.append(pytest.param(kind, mode, True, False, id=f"{kind}-{mode}-seq"))
    BIDI.append(pytest.param(kind, "concat", False, True, id=f"{kind}-concat-last-state"))
    BIDI.append(pytest.param(kind, None, False, False, id=f"{kind}-None-last"))


@pytest.mark.parametrize("kind,mode,rs,st", BIDI)
def test_bidirectional(kind, mode, rs, st):
    inner = {"units": 3, "return_sequences": rs, "return_state": st}
    ws = rnn_weights(kind, 2, 3, inner) + rnn_weights(kind, 2, 3, inner)
    ns = (2 if kind == "LSTM" else 1) if st else 0
    n_out = (2 if mode is None else 1) + 2 * ns
    g = layer_graph("Bidirectional", {"layer": {"class_name": kind, "config": inner},
                                      "merge_mode": mode}, ws, [(None, None, 2)], n_outputs=n_out)
    model = onnx_conv.export(g)
    x = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    check(model, [x], bidirectional_ref(kind, inner, ws, x, mode))


def test_bidirectional_initial_state():
    inner = {"units": 3, "return_sequences": True}
    ws = rnn_weights("LSTM", 2, 3, inner) + rnn_weights("LSTM", 2, 3, inner)
    g = layer_graph("Bidirectional", {"layer": {"class_name": "LSTM", "config": inner},
                                      "merge_mode": "concat"}, ws,
                    [(None, None, 2)] + [(None, 3)] * 4)
    model = onnx_conv.export(g)
    x = RNG.normal(size=(2, 4, 2)).astype(np.float32)
    states = [RNG.normal(size=(2, 3)).astype(np.float32) for _ in range(4)]
    check(model, [x] + states, bidirectional_ref("LSTM", inner, ws, x, "concat", init=states))


# -- masks ----------------------------------------------------------------------------------

def two_layer_graph(first, second, input_shape, input_dtype="float32", n_outputs=1):
    """input -> first -> second; first/second are (op, config, weights)."""
    spec = TensorSpec("tokens", input_shape, input_dtype)
    weights, nodes, prev = {}, [], TensorRef("tokens")
    for name, (op, cfg, ws) in zip(("first", "second"), (first, second)):
        keys = [f"{name}/w{i}" for i in range(len(ws))]
        weights.update(zip(keys, ws))
        nodes.append(Node(name, op, cfg, [[prev]], keys))
        prev = TensorRef(name)
    return Graph("masked", [spec], [TensorRef("second", 0, k) for k in range(n_outputs)], nodes,
                 weights)


def right_padded_ids(B=3, T=6, vocab=9):
    ids = RNG.integers(1, vocab, size=(B, T))
    lens = [T, 3, 1][:B]
    for b, L in enumerate(lens):
        ids[b, L:] = 0
    return ids


MASK_ROWS = []
for kind in ("SimpleRNN", "GRU", "LSTM"):
    for rs, gb in ((False, False), (True, False), (True, True), (False, True)):
        MASK_ROWS.append(pytest.param(kind, rs, gb, id=f"{kind}-seq={rs}-backwards={gb}"))


@pytest.mark.parametrize("kind,rs,gb", MASK_ROWS)
def test_embedding_mask_zero_feeds_rnn(kind, rs, gb):
    E = nz(9, 2)
    cfg = {"units": 3, "return_sequences": rs, "go_backwards": gb, "return_state": True}
    ws = rnn_weights(kind, 2, 3, cfg)
    ns = 2 if kind == "LSTM" else 1
    g = two_layer_graph(("Embedding", {"input_dim": 9, "output_dim": 2, "mask_zero": True}, [E]),
                        (kind, cfg, ws), (None, None), "int64", n_outputs=1 + ns)
    model = onnx_conv.export(g)
    ids = right_padded_ids()
    x = E[ids].astype(np.float64)
    check(model, [ids], rnn_ref(kind, cfg, ws, x, mask=ids != 0))


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_masking_layer_feeds_bidirectional(kind):
    inner = {"units": 3, "return_sequences": True}
    ws = rnn_weights(kind, 2, 3, inner) + rnn_weights(kind, 2, 3, inner)
    g = two_layer_graph(("Masking", {"mask_value": 0.0}, []),
                        ("Bidirectional", {"layer": {"class_name": kind, "config": inner},
                                           "merge_mode": "concat"}, ws), (None, None, 2))
    model = onnx_conv.export(g)
    x = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    x[1, 3:] = 0.0
    x[2, 1:] = 0.0
    mask = np.any(x != 0, axis=-1)
    check(model, [x], bidirectional_ref(kind, inner, ws, x.astype(np.float64), "concat", mask=mask))


def test_mask_reaches_global_average_pooling():
    E = nz(9, 2)
    g = two_layer_graph(("Embedding", {"input_dim": 9, "output_dim": 2, "mask_zero": True}, [E]),
                        ("GlobalAveragePooling1D", {}, []), (None, None), "int64")
    ids = right_padded_ids()
    m = (ids != 0)[..., None]
    want = (E[ids] * m).sum(1) / m.sum(1)
    check(onnx_conv.export(g), [ids], [want])


def test_mask_of_wrong_rank_is_reported():
    E = nz(9, 2)
    td = {"layer": {"class_name": "Flatten", "config": {}}}
    spec = TensorSpec("tokens", (None, 4, 3), "int64")
    nodes = [Node("emb", "Embedding", {"mask_zero": True}, [[TensorRef("tokens")]], ["emb/e"]),
             Node("td", "TimeDistributed", td, [[TensorRef("emb")]], []),
             Node("lstm", "LSTM", {"units": 2}, [[TensorRef("td")]],
                  ["lstm/k", "lstm/r", "lstm/b"])]
    ws = {"emb/e": E, "lstm/k": nz(6, 8), "lstm/r": nz(2, 8), "lstm/b": nz(8)}
    g = Graph("bad", [spec], [TensorRef("lstm")], nodes, ws)
    with pytest.raises(UnsupportedError, match="LSTM layer 'lstm'.*mask has rank 3"):
        onnx_conv.export(g)


# -- TimeDistributed ----------------------------------------------------------------------------

def test_time_distributed_dense():
    W, b = nz(3, 4), nz(4)
    g = layer_graph("TimeDistributed", {"layer": {"class_name": "Dense",
                                                  "config": {"units": 4, "activation": "tanh"}}},
                    [W, b], [(None, None, 3)])
    model = onnx_conv.export(g)
    for shape in ((2, 5, 3), (1, 2, 3)):
        x = RNG.normal(size=shape).astype(np.float32)
        check(model, [x], [np.tanh(x @ W + b)])


def test_time_distributed_conv2d():
    K, b = nz(2, 2, 3, 2), nz(2)
    g = layer_graph("TimeDistributed", {"layer": {"class_name": "Conv2D",
                                                  "config": {"filters": 2, "kernel_size": [2, 2]}}},
                    [K, b], [(None, None, 4, 4, 3)])
    model = onnx_conv.export(g)
    x = RNG.normal(size=(2, 3, 4, 4, 3)).astype(np.float32)
    want = np.zeros((2, 3, 3, 3, 2))
    for i in range(3):
        for j in range(3):
            want[:, :, i, j] = np.einsum("btxyc,xyco->bto", x[:, :, i:i + 2, j:j + 2], K) + b
    check(model, [x], [want])


def test_rnn_unsupported_configs_are_listed_together():
    g = Graph("bad", [TensorSpec("x", (None, None, 2))], [TensorRef("b")], [
        Node("a", "LSTM", {"units": 2, "stateful": True, "return_sequences": True},
             [[TensorRef("x")]], ["a/k", "a/r", "a/b"]),
        Node("b", "GRU", {"units": 2, "activation": "gelu"}, [[TensorRef("a")]],
             ["b/k", "b/r", "b/b"])],
        {"a/k": nz(2, 8), "a/r": nz(2, 8), "a/b": nz(8), "b/k": nz(2, 6), "b/r": nz(2, 6),
         "b/b": nz(2, 6)})
    with pytest.raises(UnsupportedError) as e:
        onnx_conv.export(g)
    assert len(e.value.items) == 2
    assert "stateful" in str(e.value) and "gelu" in str(e.value)

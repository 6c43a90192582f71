"""MultiHeadAttention (attention_axes too), Attention and AdditiveAttention: numpy references
(einsum, as Keras computes it), float64 gradients,
the standard round trips and onnxruntime parity, masks (Keras masks, attention_mask,
use_causal_mask), the call flags through every format, and real tf-keras / Keras 3 files
(tests/fixtures/keras_attention_norm, made by make_attention_norm.py)."""

import json
import pathlib

import h5py
import numpy as np
import pytest

from modelkit.backend.gradcheck import assert_gradients_close, assert_layer_gradients_close
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run
from modelkit.errors import ConfigError, ShapeError, UnsupportedError
from modelkit.layers import AdditiveAttention, Attention, Embedding, Input, MultiHeadAttention
from modelkit.models import Model, from_ir, load_model

from layer_testing import run_layer_test

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "keras_attention_norm"


def mha_reference(layer, q, v, k=None, keep=None, causal=False):
    """Keras's einsum formulation, straight from the weights; keep: (B, T, S) bool."""
    ws = [np.asarray(w, np.float64) for w in layer.get_weights()]
    per = 2 if layer.use_bias else 1
    k = v if k is None else k
    b = q.shape[0]
    sq, sv = q.shape[1:-1], v.shape[1:-1]
    q2, v2, k2 = (a.reshape(b, -1, a.shape[-1]).astype(np.float64) for a in (q, v, k))

    def proj(x, i):
        y = np.einsum("btd,dnh->btnh", x, ws[i * per])
        return y + ws[i * per + 1] if per == 2 else y

    qp, kp, vp = proj(q2, 0), proj(k2, 1), proj(v2, 2)
    scores = np.einsum("bsnh,btnh->bnts", kp, qp / np.sqrt(layer.key_dim))
    mask = np.ones(scores.shape[:1] + scores.shape[2:], bool) if keep is None else keep
    if causal:
        mask = mask & np.tril(np.ones(scores.shape[2:], bool))[None]
    scores = np.where(mask[:, None], scores, -1e9)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = np.einsum("bnts,bsnh->btnh", p, vp)
    out = np.einsum("btnh,nh...->bt...", out, ws[3 * per])
    if per == 2:
        out = out + ws[3 * per + 1]
    return out.reshape((b,) + sq + out.shape[2:]), p.reshape((b, p.shape[1]) + sq + sv)


CASES = [   # (kwargs, input shapes, output shape)
    ({"num_heads": 2, "key_dim": 3}, [(5, 6), (4, 6)], (5, 6)),
    ({"num_heads": 2, "key_dim": 3}, [(5, 6), (4, 6), (4, 3)], (5, 6)),          # key given
    ({"num_heads": 3, "key_dim": 2, "value_dim": 4, "use_bias": False, "output_shape": 7},
     [(3, 5), (6, 4)], (3, 7)),
    ({"num_heads": 1, "key_dim": 4, "output_shape": [2, 3]}, [(3, 5), (2, 5)], (3, 2, 3)),
    ({"num_heads": 2, "key_dim": 2}, [(2, 3, 4), (3, 2, 4)], (2, 3, 4)),       # 2 attention axes
]


@pytest.mark.parametrize("kwargs,shapes,out", CASES)
def test_layer(kwargs, shapes, out, tmp_path):
    """Shapes, numpy reference, config/IR/.h5/.keras round trips, onnxruntime parity."""
    model, _ = run_layer_test(
        lambda: MultiHeadAttention(**kwargs), shapes, tmp_path, output_shape=out,
        reference=lambda x, layer: mha_reference(layer, *x)[0], gradients=False,
        weights=lambda g, s: g.normal(0, 0.5, s).astype(np.float32))
    layer = model.layers[-1]
    names = [w.name.split("/", 1)[1] for w in layer.weights]
    parts = ["kernel", "bias"] if layer.use_bias else ["kernel"]
    assert names == [f"{p}/{v}" for p in ("query", "key", "value", "attention_output")
                     for v in parts]                                  # Keras's order


class _SelfAttention(MultiHeadAttention):
    """mha(x, x, ...): one input, so the layer gradient checker can drive it."""

    def __init__(self, causal=False, **kwargs):
        super().__init__(**kwargs)
        self._causal = causal

    def __call__(self, x, **kw):
        return super().__call__(x, x, use_causal_mask=self._causal, **kw)


@pytest.mark.parametrize("kwargs", [{"num_heads": 2, "key_dim": 3},
                                    {"num_heads": 2, "key_dim": 2, "value_dim": 3,
                                     "use_bias": False, "output_shape": 4, "causal": True}])
def test_gradients_float64(kwargs):
    layer = _SelfAttention(dtype="float64", **kwargs)
    x = np.random.default_rng(1).standard_normal((2, 4, 5))
    layer(Input((4, 5), dtype="float64"))
    layer.set_weights([np.random.default_rng(2).normal(0, 0.5, w.shape)
                       for w in layer.get_weights()])
    assert_layer_gradients_close(layer, x)


def test_cross_attention_input_gradients_float64():
    layer = MultiHeadAttention(2, 3, dtype="float64")
    layer([Input((3, 4), dtype="float64"), Input((5, 2), dtype="float64")])
    rng = np.random.default_rng(3)
    assert_gradients_close(lambda q, v: layer([q, v]),
                           [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 2))])


def _flagged_model():
    q, v = Input((4, 6), name="q"), Input((3, 6), name="v")
    m = Input((4, 3), name="m")
    a = MultiHeadAttention(2, 3, name="causal")(q, q, use_causal_mask=True)
    b, scores = MultiHeadAttention(2, 2, value_dim=3, name="scored")(
        a, v, attention_mask=m, return_attention_scores=True)
    model = Model([q, v, m], [b, scores])
    rng = np.random.default_rng(4)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    x = [rng.standard_normal((2, 4, 6)).astype(np.float32),
         rng.standard_normal((2, 3, 6)).astype(np.float32),
         (rng.random((2, 4, 3)) > 0.4).astype(np.float32)]
    x[2][:, :, 0] = 1.0                                  # every query sees something
    return model, x


def test_causal_mask_attention_mask_and_scores_match_numpy():
    model, x = _flagged_model()
    got = model.predict(x)
    a, _ = mha_reference(model.get_layer("causal"), x[0], x[0], causal=True)
    b, p = mha_reference(model.get_layer("scored"), a, x[1], keep=x[2] > 0)
    np.testing.assert_allclose(got[0], b, atol=1e-5)
    np.testing.assert_allclose(got[1], p, atol=1e-6)
    assert got[1].shape == (2, 2, 4, 3)
    assert np.all(got[1][x[2][:, None].repeat(2, 1) == 0] < 1e-8)


@pytest.mark.parametrize("ext", [".h5", ".keras"])
def test_call_flags_and_named_tensors_survive_files(ext, tmp_path):
    model, x = _flagged_model()
    want = model.predict(x)
    path = tmp_path / f"m{ext}"
    model.save(path)
    again = load_model(path)
    for g, w in zip(again.predict(x), want):
        np.testing.assert_array_equal(g, w)
    for g, w in zip(from_ir(model.to_ir()).predict(x), want):
        np.testing.assert_array_equal(g, w)
    if ext == ".h5":                   # the Keras 2 spelling: query first, the rest by name
        with h5py.File(path) as f:
            layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        node = {la["name"]: la for la in layers}["scored"]["inbound_nodes"][0]
        assert node == [["causal", 0, 0, {"value": ["v", 0, 0], "key": ["v", 0, 0],
                                          "attention_mask": ["m", 0, 0],
                                          "return_attention_scores": True}]]


def test_onnx_parity_with_flags_and_masks():
    model, x = _flagged_model()
    for r, g in zip(run(onnx_conv.export(model), x), model.predict(x)):
        np.testing.assert_allclose(r, g, atol=1e-5, rtol=0)


def test_keras_masks_of_the_inputs():
    ids = Input((5,), dtype="int32")
    e = Embedding(7, 4, mask_zero=True)(ids)
    model = Model(ids, MultiHeadAttention(2, 3, name="mha")(e, e))
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    x = np.array([[1, 2, 3, 0, 0], [4, 0, 5, 6, 1]], np.int32)
    got = model.predict(x)
    emb = model.layers[1].get_weights()[0][x]
    keep = (x > 0)[:, :, None] & (x > 0)[:, None, :]
    want, _ = mha_reference(model.get_layer("mha"), emb, emb, keep=keep)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(run(onnx_conv.export(model), [x])[0], got, atol=1e-5, rtol=0)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="'bad'.*num_heads"):
        MultiHeadAttention(0, 3, name="bad")
    with pytest.raises(ConfigError, match="dropout"):
        MultiHeadAttention(2, 3, dropout=1.5)
    with pytest.raises(UnsupportedError, match="use_gate"):
        MultiHeadAttention(2, 3, use_gate=True)
    with pytest.raises(ConfigError, match="'ax'.*attention_axes must be distinct axes"):
        MultiHeadAttention(2, 3, attention_axes=[3], name="ax")(Input((2, 3, 4)),
                                                                 Input((2, 3, 4)))
    with pytest.raises(ShapeError, match="axis 1 is not an attention axis"):
        MultiHeadAttention(2, 3, attention_axes=2)(Input((2, 3, 4)), Input((5, 3, 4)))
    with pytest.raises(ShapeError, match="same rank"):
        MultiHeadAttention(2, 3)(Input((2, 3, 4)), Input((3, 4)))
    with pytest.raises(ConfigError, match="value"):
        MultiHeadAttention(2, 3)(Input((3, 4)))


def test_dropout_only_in_training():
    layer = MultiHeadAttention(2, 3, dropout=0.5)
    x = np.random.default_rng(6).standard_normal((2, 4, 3)).astype(np.float32)
    a, b = layer(x, x), layer(x, x)
    np.testing.assert_array_equal(a.value, b.value)
    assert not np.allclose(layer(x, x, training=True).value, a.value)


MHA_FILES = ["tfk_mha.h5", "k3_mha.h5", "k3_mha.keras",
             "tfk_mha_scores.h5", "k3_mha_scores.h5", "k3_mha_scores.keras",
             # an encoder block on padded ids: Embedding(mask_zero) -> MHA -> Add -> LN -> pool
             "tfk_mha_masked.h5", "k3_mha_masked.h5", "k3_mha_masked.keras"]


@pytest.mark.parametrize("name", MHA_FILES)
def test_real_keras_files(name):
    """Files written by tf-keras 2.21 and Keras 3.15 predict Keras's numbers, in modelkit and
    in onnxruntime (the causal call flag and the scores output come from the files)."""
    data = np.load(FIXTURES / f"{name.split('.')[0]}.npz")
    model = load_model(FIXTURES / name, compile=False)
    xs = [data[f"x{i}"] for i in range(len(model.inputs))]
    ys = [data[f"y{i}"] for i in range(len(model.outputs))]
    got = model.predict(xs)
    got = got if isinstance(got, list) else [got]
    ran = run(onnx_conv.export(model), xs)
    for g, r, y in zip(got, ran, ys, strict=True):
        np.testing.assert_allclose(g, y, atol=1e-5, rtol=0)
        np.testing.assert_allclose(r, y, atol=1e-5, rtol=0)


# -- Attention and AdditiveAttention -------------------------------------------------------------

def dense_attention_reference(layer, q, v, k=None, q_mask=None, v_mask=None, causal=False):
    """Keras's BaseDenseAttention in numpy: scores, masked ones lowered by 1e9, softmax."""
    q, v = q.astype(np.float64), v.astype(np.float64)
    k = v if k is None else k.astype(np.float64)
    ws = [np.asarray(w, np.float64) for w in layer.get_weights()]
    if isinstance(layer, AdditiveAttention):
        t = np.tanh(q[:, :, None] + k[:, None])
        scores = (t * ws[0] if layer.use_scale else t).sum(-1)
    elif layer.score_mode == "dot":
        scores = q @ k.transpose(0, 2, 1) * (ws[0] if layer.use_scale else 1.0)
    else:
        t = q[:, :, None] + k[:, None]
        scores = ws[-1] * np.tanh(t * ws[0] if layer.use_scale else t).sum(-1)
    keep = np.ones(scores.shape, bool)
    if v_mask is not None:
        keep &= v_mask[:, None]
    if causal:
        keep &= np.tril(np.ones(scores.shape[1:], bool))
    scores = np.where(keep, scores, scores - 1e9)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = p @ v
    if q_mask is not None:
        out = out * q_mask[..., None]
    return out, p


DENSE_CASES = [
    (lambda: Attention(), [(3, 4), (5, 4)]),
    (lambda: Attention(use_scale=True), [(3, 4), (5, 2), (5, 4)]),              # key given
    (lambda: Attention(score_mode="concat"), [(3, 4), (5, 4)]),
    (lambda: Attention(use_scale=True, score_mode="concat"), [(2, 3), (4, 3)]),
    (lambda: AdditiveAttention(), [(3, 4), (5, 4)]),
    (lambda: AdditiveAttention(use_scale=False), [(3, 4), (5, 6), (5, 4)]),
]


@pytest.mark.parametrize("factory,shapes", DENSE_CASES)
def test_dense_attention_layer(factory, shapes, tmp_path):
    out = (shapes[0][0], shapes[1][1])
    model, _ = run_layer_test(
        factory, shapes, tmp_path, output_shape=out, gradients=False,
        reference=lambda x, layer: dense_attention_reference(layer, *x)[0],
        weights=lambda g, s: g.normal(0, 0.7, s).astype(np.float32))
    layer = model.layers[-1]
    names = [w.name.split("/")[-1] for w in layer.weights]
    want = (["scale"] if layer.use_scale else []) + \
        (["concat_score_weight"] if getattr(layer, "score_mode", "") == "concat" else [])
    assert names == want


class _SelfDense:
    """layer([x, x]) for the layer gradient checker (one input)."""

    @staticmethod
    def make(cls, **kwargs):
        class SelfAttending(cls):
            def __call__(self, x, **kw):
                return super().__call__([x, x], **kw)
        return SelfAttending(dtype="float64", **kwargs)


@pytest.mark.parametrize("cls,kwargs", [(Attention, {"use_scale": True}),
                                        (Attention, {"use_scale": True, "score_mode": "concat"}),
                                        (Attention, {"causal": True}),
                                        (AdditiveAttention, {})])
def test_dense_attention_gradients_float64(cls, kwargs):
    layer = _SelfDense.make(cls, **kwargs)
    layer(Input((4, 3), dtype="float64"))
    layer.set_weights([np.random.default_rng(7).normal(0, 0.7, w.shape)
                       for w in layer.get_weights()])
    assert_layer_gradients_close(layer, np.random.default_rng(8).standard_normal((2, 4, 3)))


def _masked_dense_model(cls, **kwargs):
    qi, vi = Input((4,), dtype="int32", name="qi"), Input((5,), dtype="int32", name="vi")
    emb = Embedding(9, 3, mask_zero=True, name="emb")
    layer = cls(name="att", **kwargs)
    out, scores = layer([emb(qi), emb(vi)], use_causal_mask=True,
                        return_attention_scores=True)
    model = Model([qi, vi], [out, scores])
    model.set_weights([np.random.default_rng(9).normal(0, 0.7, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    x = [np.array([[1, 2, 0, 0], [3, 4, 5, 6]], np.int32),
         np.array([[1, 0, 2, 3, 0], [4, 5, 0, 0, 0]], np.int32)]
    return model, x


@pytest.mark.parametrize("cls", [Attention, AdditiveAttention])
def test_dense_attention_masks_causal_and_scores(cls, tmp_path):
    """Keras masks (value mask on the scores, query mask zeroing the output), the causal
    flag and the scores output: numpy, IR/.h5/.keras round trips, onnxruntime."""
    model, x = _masked_dense_model(cls)
    got = model.predict(x)
    table = model.get_layer("emb").get_weights()[0]
    want = dense_attention_reference(model.get_layer("att"), table[x[0]], table[x[1]],
                                     q_mask=x[0] > 0, v_mask=x[1] > 0, causal=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-6)
    for ext in (".h5", ".keras"):
        model.save(tmp_path / f"m{ext}")
        for g, w in zip(load_model(tmp_path / f"m{ext}").predict(x), got):
            np.testing.assert_array_equal(g, w)
    for g, w in zip(from_ir(model.to_ir()).predict(x), got):
        np.testing.assert_array_equal(g, w)
    for r, g in zip(run(onnx_conv.export(model), x), got):
        np.testing.assert_allclose(r, g, atol=1e-6, rtol=0)


def test_dense_attention_errors_and_dropout():
    with pytest.raises(ConfigError, match="'a1'.*score_mode"):
        Attention(score_mode="bilinear", name="a1")
    with pytest.raises(ConfigError, match="dropout"):
        AdditiveAttention(dropout=-0.1)
    with pytest.raises(ShapeError, match=r"\[query, value\]"):
        Attention()(Input((3, 4)))
    layer = Attention(dropout=0.5)
    q = np.random.default_rng(10).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(layer([q, q]).value, layer([q, q]).value)
    assert not np.allclose(layer([q, q], training=True).value, layer([q, q]).value)


@pytest.mark.parametrize("name", ["tfk_attention.h5", "k3_attention.h5", "k3_attention.keras"])
def test_real_keras_dense_attention_files(name):
    """Attention (dot with scale, concat) and AdditiveAttention (with key, without scale)
    written by tf-keras 2.21 and Keras 3.15: Keras's numbers in modelkit and onnxruntime."""
    test_real_keras_files(name)


def test_onnx_steps_unknown_at_export_with_causal_masks():
    """Steps of unknown length: the causal mask is built in the graph (Trilu)."""
    q = Input((None, 6))
    a = MultiHeadAttention(2, 3)(q, q, use_causal_mask=True)
    model = Model(q, [a, Attention()([a, q], use_causal_mask=True)])
    proto = onnx_conv.export(model)
    assert "Trilu" in {n.op_type for n in proto.graph.node}
    for steps in (5, 2):
        x = np.random.default_rng(steps).standard_normal((2, steps, 6)).astype(np.float32)
        for r, g in zip(run(proto, [x]), model.predict(x)):
            np.testing.assert_allclose(r, g, atol=1e-6, rtol=0)


def test_initial_kernels_have_einsum_dense_fans():
    """Glorot limits from Keras's EinsumDense fans: (dim, heads*key_dim) and
    (heads*value_dim, out), not a convolution's receptive field."""
    layer = MultiHeadAttention(4, 16)
    layer(Input((5, 32)), Input((5, 32)))
    w = layer.get_weights()
    limit = np.sqrt(6 / (32 + 64))
    assert 0.9 * limit < np.abs(w[0]).max() <= limit
    assert 0.9 * limit < np.abs(w[6]).max() <= limit


def _keras_tensor_shapes(obj, out):
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            out.append(obj["config"]["shape"])
        for v in obj.values():
            _keras_tensor_shapes(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _keras_tensor_shapes(v, out)
    return out


def test_written_configs_are_what_real_keras_reads(tmp_path):
    """tf-keras's MultiHeadAttention.from_config needs query/key/value_shape (the .h5);
    Keras 3 refuses them and needs a shape on every `__keras_tensor__` (the .keras).
    verify_written_in_keras.py loads such files in real tf-keras and Keras 3."""
    import zipfile
    model, _ = _flagged_model()
    model.save(tmp_path / "m.h5")
    model.save(tmp_path / "m.keras")
    with h5py.File(tmp_path / "m.h5") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    cfg = {la["name"]: la["config"] for la in layers}["scored"]
    assert (cfg["query_shape"], cfg["key_shape"], cfg["value_shape"]) == \
        ([None, 4, 6], [None, 3, 6], [None, 3, 6])
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        config = json.loads(z.read("config.json"))
    layers = config["config"]["layers"]
    assert "query_shape" not in {la["name"]: la["config"] for la in layers}["scored"]
    shapes = _keras_tensor_shapes(layers, [])
    assert shapes and all(isinstance(s, list) for s in shapes)


@pytest.mark.parametrize("opset", [13, 18, 21])
@pytest.mark.parametrize("name", ["tfk_mha_masked.h5", "tfk_mha_scores.h5", "tfk_attention.h5",
                                  "tfk_normalization.h5", "tfk_groupnorm.h5"])
def test_onnx_opsets(name, opset):
    """Every opset modelkit exports (axes as attributes or inputs): Keras's numbers."""
    data = np.load(FIXTURES / f"{name.split('.')[0]}.npz")
    model = load_model(FIXTURES / name, compile=False)
    xs = [data[f"x{i}"] for i in range(len(model.inputs))]
    for i, r in enumerate(run(onnx_conv.export(model, opset=opset), xs)):
        np.testing.assert_allclose(r, data[f"y{i}"], atol=1e-5, rtol=0)


def axes_reference(layer, q, v, k=None, mask=None):
    """Keras's einsum equations for attention over `attention_axes` (tf-keras's
    _build_attention_equation, written out) in float64: (output, scores)."""
    import string
    ws = [np.asarray(w, np.float64) for w in layer.get_weights()]
    per = 2 if layer.use_bias else 1
    k = v if k is None else k

    def proj(x, i):
        y = np.einsum("...d,dnh->...nh", np.asarray(x, np.float64), ws[i * per])
        return y + ws[i * per + 1] if per == 2 else y
    qp, kp, vp = proj(q, 0), proj(k, 1), proj(v, 2)
    rank = qp.ndim                                       # the input's rank + 1 (heads)
    attn = [a % (rank - 1) for a in layer.attention_axes]
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch = [i for i in range(rank - 1) if i not in attn]
    source, extra = "", iter(letters[rank:])
    for i in range(rank):
        source += target[i] if i in batch or i == rank - 1 else next(extra)
    product = "".join([target[i] for i in batch] + [target[i] for i in attn] +
                      [source[i] for i in attn])
    scores = np.einsum(f"{source},{target}->{product}", kp, qp / np.sqrt(layer.key_dim))
    if mask is not None:
        while mask.ndim < scores.ndim:
            mask = np.expand_dims(mask, -2 * len(attn) - 1)
        scores = np.where(mask, scores, -1e9)
    flat = scores.reshape(scores.shape[:scores.ndim - len(attn)] + (-1,))
    p = np.exp(flat - flat.max(-1, keepdims=True))
    p = (p / p.sum(-1, keepdims=True)).reshape(scores.shape)
    out = np.einsum(f"{product},{source}->{target}", p, vp)
    out = np.einsum("...nh,nho->...o", out, ws[3 * per].reshape(ws[3 * per].shape[:2] + (-1,)))
    if per == 2:
        out = out + ws[3 * per + 1].reshape(-1)
    return out.reshape(out.shape[:-1] + ws[3 * per].shape[2:]), p


AXES_CASES = [   # (kwargs, input shapes, output shape): attention over some step axes only
    ({"num_heads": 2, "key_dim": 3, "attention_axes": [2]}, [(3, 4, 6), (3, 5, 6)], (3, 4, 6)),
    ({"num_heads": 2, "key_dim": 3, "attention_axes": 1}, [(3, 4, 6), (5, 4, 6)], (3, 4, 6)),
    ({"num_heads": 1, "key_dim": 2, "value_dim": 3, "use_bias": False, "output_shape": 5,
      "attention_axes": (3, 1)}, [(3, 2, 4, 4), (2, 2, 3, 4), (2, 2, 3, 3)], (3, 2, 4, 5)),
    ({"num_heads": 2, "key_dim": 2, "attention_axes": [-2]}, [(2, 3, 4), (2, 5, 4)],
     (2, 3, 4)),
]


@pytest.mark.parametrize("kwargs,shapes,out", AXES_CASES)
def test_attention_axes_layer(kwargs, shapes, out, tmp_path):
    """attention_axes: Keras's einsum reference, config/IR/.h5/.keras round trips (the axes
    kept as given), onnxruntime parity, the scores' shape."""
    model, _ = run_layer_test(
        lambda: MultiHeadAttention(**kwargs), shapes, tmp_path, output_shape=out,
        reference=lambda x, layer: axes_reference(layer, *x)[0], gradients=False,
        weights=lambda g, s: g.normal(0, 0.5, s).astype(np.float32))
    layer = model.layers[-1]
    given = kwargs["attention_axes"]
    assert layer.get_config()["attention_axes"] == ([given] if isinstance(given, int)
                                                    else list(given))
    rng = np.random.default_rng(11)
    x = [rng.standard_normal((2,) + s).astype(np.float32) for s in shapes]
    got, scores = layer(*x[:2], key=x[2] if len(x) > 2 else None,
                        return_attention_scores=True)
    want, want_scores = axes_reference(layer, *x)
    assert scores.shape == want_scores.shape
    np.testing.assert_allclose(scores.value, want_scores, atol=1e-6)
    np.testing.assert_allclose(got.value, want, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"num_heads": 2, "key_dim": 3, "attention_axes": [2]},
                                    {"num_heads": 2, "key_dim": 2, "value_dim": 3,
                                     "use_bias": False, "attention_axes": [1],
                                     "causal": True}])
def test_attention_axes_gradients_float64(kwargs):
    layer = _SelfAttention(dtype="float64", **kwargs)
    x = np.random.default_rng(12).standard_normal((2, 3, 4, 5))
    layer(Input((3, 4, 5), dtype="float64"))
    layer.set_weights([np.random.default_rng(13).normal(0, 0.5, w.shape)
                       for w in layer.get_weights()])
    assert_layer_gradients_close(layer, x)


def test_attention_axes_masks_match_keras_broadcasting():
    """attention_mask / use_causal_mask expanded as Keras expands them (before the last
    2 x attention-axes dims), in modelkit and in onnxruntime."""
    q, v, m = Input((3, 4, 6)), Input((3, 5, 6)), Input((4, 5))
    layer = MultiHeadAttention(2, 3, attention_axes=[2])
    model = Model([q, v, m], layer(q, v, attention_mask=m))
    rng = np.random.default_rng(14)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    x = [rng.standard_normal((2, 3, 4, 6)).astype(np.float32),
         rng.standard_normal((2, 3, 5, 6)).astype(np.float32),
         (rng.random((2, 4, 5)) > 0.4).astype(np.float32)]
    want = axes_reference(layer, x[0], x[1], mask=x[2].astype(bool))[0]
    np.testing.assert_allclose(model.predict(x), want, atol=1e-5)
    np.testing.assert_allclose(run(onnx_conv.export(model), x)[0], want, atol=1e-5)
    causal = MultiHeadAttention(2, 3, attention_axes=[1])
    c = Model(q, causal(q, q, use_causal_mask=True))
    c.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in c.get_weights()])
    xq = x[0]
    # Keras's causal mask is over axis 1 (query steps x value steps there); Keras 3.15 on
    # this layer and input: 3.6e-07 from modelkit
    keep = np.tril(np.ones((3, 3), bool))[None]
    np.testing.assert_allclose(c.predict(xq), axes_reference(causal, xq, xq, mask=keep)[0],
                               atol=1e-5)
    np.testing.assert_allclose(run(onnx_conv.export(c), [xq])[0], c.predict(xq), atol=1e-5)


@pytest.mark.parametrize("name", ["tfk_mha_axes.h5", "k3_mha_axes.keras", "tfk_mha_axes2.h5",
                                  "k3_mha_axes2.keras"])
def test_real_keras_attention_axes_files(name, tmp_path):
    """tf-keras 2.21 / Keras 3.15 models with attention_axes=(2,) and (3, 1) + an
    attention_mask (make_mha_axes.py): Keras's outputs and scores in modelkit and in
    onnxruntime, and after modelkit re-saves them."""
    d = np.load(FIXTURES / name.replace(".h5", ".npz").replace(".keras", ".npz"))
    xs = [d[k] for k in sorted(d.files) if k.startswith("x")]
    model = load_model(FIXTURES / name)
    got = model.predict(xs)
    onnx_out = run(onnx_conv.export(model), xs)
    for i, (g, r) in enumerate(zip(got, onnx_out, strict=True)):
        np.testing.assert_allclose(g, d[f"y{i}"], atol=2e-6)
        np.testing.assert_allclose(r, d[f"y{i}"], atol=2e-6)
    for ext in (".h5", ".keras"):
        model.save(tmp_path / ("m" + ext))
        for g, w in zip(load_model(tmp_path / ("m" + ext)).predict(xs), got, strict=True):
            np.testing.assert_array_equal(g, w)

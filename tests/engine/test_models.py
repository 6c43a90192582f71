"""Models: Sequential and functional construction, shared layers, nesting, weights, summary."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ConfigError, ModelkitError, ShapeError
from modelkit.layers import (Activation, Dense, Dropout, Flatten, Input, Lambda, Permute,
                             RepeatVector, Reshape)
from modelkit.models import Model, Sequential

rng = np.random.default_rng(0)


def relu(x):
    return np.maximum(x, 0)


@pytest.mark.parametrize("first", [
    lambda: Dense(32, input_dim=784),
    lambda: Dense(32, input_shape=(784,)),
    lambda: Dense(32, batch_input_shape=(None, 784)),
])
def test_sequential_input_shape_spellings(first):
    model = Sequential()
    model.add(first())
    model.add(Activation("relu"))
    assert model.output_shape == (None, 32)
    assert model.input_shape == (None, 784)
    assert [la.name for la in model.layers][1].startswith("activation")


def test_sequential_list_constructor_matches_numpy():
    model = Sequential([Dense(4, input_shape=(3,)), Activation("relu"), Dense(2)])
    x = rng.random((5, 3)).astype("float32")
    w1, b1, w2, b2 = model.get_weights()
    expected = relu(x @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert model.predict(x).dtype == np.float32


def test_sequential_deferred_build_from_data():
    model = Sequential([Dense(3), Dense(1)])
    assert not model.built
    model.compile("sgd", "mse")
    model.fit(rng.random((8, 5)), rng.random((8, 1)), epochs=1, verbose=0)
    assert model.built and model.input_shape == (None, 5)


def test_sequential_pop():
    model = Sequential([Dense(4, input_dim=3), Dense(2), Dense(1)])
    model.pop()
    assert model.output_shape == (None, 2)
    assert len(model.layers) == 2


def test_functional_multi_input_output_and_numpy_parity():
    a = Input(shape=(3,), name="a")
    b = Input(shape=(2,), name="b")
    da = Dense(4, name="da")(a)
    from modelkit.backend import functions as F
    merged = Lambda(lambda t: F.concatenate(t, axis=-1))([da, b])
    out1 = Dense(1, name="out1")(merged)
    out2 = Dense(2, activation="softmax", name="out2")(merged)
    model = Model(inputs=[a, b], outputs=[out1, out2])
    xa, xb = rng.random((4, 3)), rng.random((4, 2))
    y1, y2 = model.predict([xa, xb])
    w = {la.name: la.get_weights() for la in model.layers if la.weights}
    h = np.concatenate([xa @ w["da"][0] + w["da"][1], xb], -1)
    np.testing.assert_allclose(y1, h @ w["out1"][0] + w["out1"][1], rtol=1e-5, atol=1e-6)
    logits = h @ w["out2"][0] + w["out2"][1]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(y2, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    y1d, _ = model.predict({"a": xa, "b": xb})
    np.testing.assert_allclose(y1d, y1)


def test_shared_layer_keeps_several_nodes_and_one_set_of_weights():
    shared = Dense(3, name="shared")
    a, b = Input(shape=(4,)), Input(shape=(4,))
    model = Model([a, b], [shared(a), shared(b)])
    assert len(shared._inbound_nodes) == 2
    assert len(model.weights) == 2
    xa, xb = rng.random((2, 4)), rng.random((2, 4))
    ya, yb = model.predict([xa, xb])
    k, bias = shared.get_weights()
    np.testing.assert_allclose(ya, xa @ k + bias, rtol=1e-5)
    np.testing.assert_allclose(yb, xb @ k + bias, rtol=1e-5)


def test_nested_model_called_like_a_layer():
    inner_in = Input(shape=(784,))
    x = Dense(64, activation="relu")(inner_in)
    inner = Model(inputs=inner_in, outputs=Dense(10, activation="softmax")(x))
    outer_in = Input(shape=(784,))
    outer = Model(outer_in, inner(outer_in))
    data = rng.random((3, 784)).astype("float32")
    np.testing.assert_allclose(outer.predict(data), inner.predict(data), rtol=1e-6)
    assert len(outer.weights) == 4


def test_keras1_model_input_output_keywords():
    inputs = Input(shape=(5,))
    with pytest.warns(DeprecationWarning, match="inputs"):
        model = Model(input=inputs, output=Dense(2)(inputs))
    assert model.output_shape == (None, 2)


def test_get_layer_by_name_and_index_and_errors():
    model = Sequential([Dense(2, input_dim=3, name="first"), Dense(1, name="second")])
    assert model.get_layer("second") is model.layers[1]
    assert model.get_layer(index=0).name == "first"
    with pytest.raises(ConfigError, match="no layer named 'third'"):
        model.get_layer("third")


def test_trainable_flags_split_weights_and_freeze_training():
    model = Sequential([Dense(3, input_dim=2, name="frozen"), Dense(1)])
    model.get_layer("frozen").trainable = False
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    before = model.get_layer("frozen").get_weights()
    model.compile("sgd", "mse")
    model.fit(rng.random((16, 2)), rng.random((16, 1)), epochs=2, verbose=0)
    for b, a in zip(before, model.get_layer("frozen").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_with_wrong_count_names_layer_and_counts():
    model = Sequential([Dense(2, input_dim=3, name="d1"), Dense(1, name="d2")])
    with pytest.raises(ShapeError, match=r"expects 4 weight array\(s\).*got 1"):
        model.set_weights([np.zeros((3, 2))])
    with pytest.raises(ShapeError, match="d1"):
        model.get_layer("d1").set_weights([np.zeros((3, 2))])
    with pytest.raises(ShapeError, match=r"shape \(3, 2\).*\(2, 2\)"):
        model.get_layer("d1").set_weights([np.zeros((2, 2)), np.zeros(2)])


def test_count_params_and_summary(capsys):
    model = Sequential([Dense(32, input_dim=784), Activation("relu"), Dense(10)])
    assert model.count_params() == 784 * 32 + 32 + 32 * 10 + 10
    model.summary()
    out = capsys.readouterr().out
    assert "Layer (type)" in out and "Output Shape" in out and "Param #" in out
    assert "(None, 32)" in out and "25120" in out
    assert "Total params: 25,450" in out


def test_functional_summary_shows_connections(capsys):
    a = Input(shape=(3,), name="inp")
    Model(a, Dense(2, name="d")(a)).summary()
    out = capsys.readouterr().out
    assert "Connected to" in out and "inp[0][0]" in out


def test_core_shape_layers_match_numpy():
    x = rng.random((2, 3, 4)).astype("float32")
    cases = [
        (Reshape((4, -1)), x.reshape(2, 4, 3)),
        (Permute((2, 1)), x.transpose(0, 2, 1)),
        (Flatten(), x.reshape(2, -1)),
    ]
    for layer, expected in cases:
        inp = Input(shape=(3, 4))
        model = Model(inp, layer(inp))
        assert model.output_shape == (None,) + expected.shape[1:]
        np.testing.assert_array_equal(model.predict(x), expected)
    inp = Input(shape=(4,))
    rep = Model(inp, RepeatVector(3)(inp))
    np.testing.assert_array_equal(rep.predict(x[:, 0]), np.repeat(x[:, 0:1], 3, axis=1))


def test_flatten_channels_first_reads_hwc_order():
    x = rng.random((2, 3, 4, 5)).astype("float32")       # (batch, C, H, W)
    inp = Input(shape=(3, 4, 5))
    model = Model(inp, Flatten(data_format="channels_first")(inp))
    np.testing.assert_array_equal(model.predict(x), x.transpose(0, 2, 3, 1).reshape(2, -1))


def test_lambda_with_arguments_and_output_shape_inference():
    inp = Input(shape=(4,))
    out = Lambda(lambda t, scale: K.square(t) * scale, arguments={"scale": 3.0})(inp)
    model = Model(inp, out)
    x = rng.random((2, 4)).astype("float32")
    np.testing.assert_allclose(model.predict(x), 3 * x ** 2, rtol=1e-6)
    inp = Input(shape=(None, 6))
    assert Lambda(lambda t: t[:, :, :2])(inp).shape == (None, None, 2)


def test_backend_functions_on_symbolic_tensors_build_graph_nodes():
    inp = Input(shape=(3, 4))
    out = K.mean(inp, axis=1) * 2 + 1
    model = Model(inp, out)
    x = rng.random((2, 3, 4)).astype("float32")
    np.testing.assert_allclose(model.predict(x), x.mean(1) * 2 + 1, rtol=1e-6)
    assert out.shape == (None, 4)


def test_k_function_evaluates_symbolic_graph():
    inp = Input(shape=(3,))
    hidden = Dense(2, name="h")(inp)
    f = K.function([inp], [hidden])
    x = rng.random((4, 3)).astype("float32")
    k, b = hidden._keras_history[0].get_weights()
    np.testing.assert_allclose(f([x])[0], x @ k + b, rtol=1e-6)


def test_dropout_is_identity_at_inference_and_scales_in_training():
    layer = Dropout(0.5, seed=3)
    x = K.constant(np.ones((1000, 10)))
    np.testing.assert_array_equal(layer(x).value, 1)
    y = layer(x, training=True).value
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6


def test_graph_disconnected_and_bad_calls_raise_clear_errors():
    a, b = Input(shape=(2,), name="a"), Input(shape=(2,), name="b")
    with pytest.raises(ConfigError, match="Graph disconnected.*'b'"):
        Model(a, Dense(1)(b))
    dense = Dense(3, name="d3")
    dense(Input(shape=(4,)))
    with pytest.raises(ShapeError, match="d3.*last dimension 4"):
        dense(Input(shape=(5,)))
    with pytest.raises(ConfigError, match="unknown argument"):
        Dense(3, bogus=1)
    with pytest.raises(ConfigError, match="Unknown activation"):
        Dense(3, activation="nope")
    with pytest.raises(ModelkitError):
        Sequential([Dense(2)]).count_params()


def test_clone_model_has_the_architecture_and_fresh_weights():
    from modelkit.models import clone_model
    model = Sequential([Dense(4, input_dim=3, name="a"), Dense(2, name="b")])
    clone = clone_model(model)
    assert clone.get_config() == model.get_config()
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert not np.allclose(clone.get_weights()[0], model.get_weights()[0])


def test_get_config_to_json_and_back_never_copy_weights(monkeypatch):
    """get_config/to_json describe the graph without its weights (they go straight through
    modelkit.keras_config); from_config/model_from_json give the same architecture."""
    import json

    from modelkit import ir_bridge
    from modelkit.models import model_from_json
    inp = Input((6,))
    model = Model(inp, Dense(2, name="head")(Dense(5, activation="relu", name="hidden")(inp)))
    seen = []
    real = ir_bridge.to_ir
    monkeypatch.setattr(ir_bridge, "to_ir",
                        lambda m, **kw: seen.append(kw["include_weights"]) or real(m, **kw))
    config, text = model.get_config(), model.to_json()
    assert seen == [False, False]
    assert [layer["class_name"] for layer in config["layers"]] == ["InputLayer", "Dense", "Dense"]
    assert json.loads(text)["config"] == config
    for clone in (Model.from_config(config), model_from_json(text)):
        assert [type(layer).__name__ for layer in clone.layers] == \
            [type(layer).__name__ for layer in model.layers]
        assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]

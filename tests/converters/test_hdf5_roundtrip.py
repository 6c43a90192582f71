"""IR <-> Keras HDF5 / JSON / .keras round trips on hand-built graphs (no layer classes)."""

import json

import h5py
import numpy as np
import pytest

from modelkit.converters import hdf5
from modelkit.errors import ModelLoadError
from modelkit.ir import Graph, Node, TensorRef, TensorSpec, TrainingConfig

R = TensorRef
GLOROT = {"class_name": "GlorotUniform", "config": {"seed": None}}
ZEROS = {"class_name": "Zeros", "config": {}}


def dense_cfg(name, units, activation="linear"):
    return {"name": name, "trainable": True, "dtype": "float32", "units": units,
            "activation": activation, "use_bias": True, "kernel_initializer": GLOROT,
            "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}


def lstm_cfg(name, units, **kw):
    cfg = {"name": name, "trainable": True, "dtype": "float32", "return_sequences": False,
           "return_state": False, "go_backwards": False, "stateful": False, "unroll": False,
           "units": units, "activation": "tanh", "recurrent_activation": "sigmoid",
           "use_bias": True, "kernel_initializer": GLOROT,
           "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
           "bias_initializer": ZEROS, "unit_forget_bias": True, "dropout": 0.0,
           "recurrent_dropout": 0.0, "implementation": 2}
    cfg.update(kw)
    return cfg


class B:
    """Tiny graph builder with random weights."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.weights = {}

    def w(self, key, shape):
        self.weights[key] = self.rng.normal(size=shape).astype(np.float32)
        return key

    def dense(self, name, n_in, units, calls, activation="linear"):
        return Node(name, "Dense", dense_cfg(name, units, activation), calls,
                    [self.w(f"{name}/kernel", (n_in, units)), self.w(f"{name}/bias", (units,))])

    def lstm(self, name, n_in, units, calls, prefix=None, **kw):
        p = prefix or name
        ws = [self.w(f"{p}/lstm_cell/kernel", (n_in, 4 * units)),
              self.w(f"{p}/lstm_cell/recurrent_kernel", (units, 4 * units)),
              self.w(f"{p}/lstm_cell/bias", (4 * units,))]
        return Node(name, "LSTM", lstm_cfg(name, units, **kw), calls, ws)


def dense_chain(seed=0, sizes=(4, 8, 3), sequential=True):
    b = B(seed)
    nodes, prev = [], R("x", 0, 0)
    for i, (a, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        name = "dense" if i == 0 else f"dense_{i}"
        nodes.append(b.dense(name, a, o, [[prev]], "relu"))
        prev = R(name, 0, 0)
    nodes.insert(1, Node("dropout", "Dropout", {"name": "dropout", "trainable": True,
                                                 "dtype": "float32", "rate": 0.5,
                                                 "noise_shape": None, "seed": None},
                         [[R("dense", 0, 0)]], []))
    nodes[2].calls = [[R("dropout", 0, 0)]]
    g = Graph("mlp", [TensorSpec("x", (None, sizes[0]))], [prev], nodes, b.weights,
              metadata={"model_class": "Sequential" if sequential else "Functional"})
    return g.validate()


def multi_io(seed=1):
    b = B(seed)
    nodes = [b.dense("dense_a", 4, 3, [[R("in_a")]]), b.dense("dense_b", 6, 3, [[R("in_b")]]),
             Node("concat", "Concatenate", {"name": "concat", "trainable": True,
                                            "dtype": "float32", "axis": -1},
                  [[R("dense_a"), R("dense_b")]], []),
             b.dense("out_reg", 6, 2, [[R("concat")]]),
             b.dense("out_cls", 6, 1, [[R("concat")]], "sigmoid")]
    return Graph("multi", [TensorSpec("in_a", (None, 4)), TensorSpec("in_b", (None, 6))],
                 [R("out_reg"), R("out_cls")], nodes, b.weights,
                 metadata={"model_class": "Functional"}).validate()


def shared_nested(seed=2):
    b = B(seed)
    inner = Graph("vision", [TensorSpec("vision_in", (None, 3))], [R("vision_dense")],
                  [b.dense("vision_dense", 3, 4, [[R("vision_in")]], "tanh")],
                  dict(b.weights), metadata={"model_class": "Functional"})
    b.weights = {}
    nodes = [Node("vision", "Functional", {"name": "vision", "trainable": True},
                  [[R("left")], [R("right")]], [], subgraph=inner),
             b.dense("shared_dense", 4, 4, [[R("vision", 0)], [R("vision", 1)]], "relu"),
             Node("add", "Add", {"name": "add", "trainable": True, "dtype": "float32"},
                  [[R("shared_dense", 0), R("shared_dense", 1)]], []),
             b.dense("head", 4, 1, [[R("add")]])]
    return Graph("shared_nested", [TensorSpec("left", (None, 3)), TensorSpec("right", (None, 3))],
                 [R("head")], nodes, b.weights, metadata={"model_class": "Functional"}).validate()


def bidir_td(seed=3):
    b = B(seed)
    fw = [b.w(f"bidirectional/forward_lstm/lstm_cell/{k}", s)
          for k, s in (("kernel", (2, 12)), ("recurrent_kernel", (3, 12)), ("bias", (12,)))]
    bw = [b.w(f"bidirectional/backward_lstm/lstm_cell/{k}", s)
          for k, s in (("kernel", (2, 12)), ("recurrent_kernel", (3, 12)), ("bias", (12,)))]
    bi = Node("bidirectional", "Bidirectional",
              {"name": "bidirectional", "trainable": True, "dtype": "float32",
               "layer": {"class_name": "LSTM",
                         "config": lstm_cfg("lstm", 3, return_sequences=True)},
               "merge_mode": "concat"}, [[R("x")]], fw + bw)
    td = Node("time_distributed", "TimeDistributed",
              {"name": "time_distributed", "trainable": True, "dtype": "float32",
               "layer": {"class_name": "Dense", "config": dense_cfg("dense", 2)}},
              [[R("bidirectional")]],
              [b.w("time_distributed/kernel", (6, 2)), b.w("time_distributed/bias", (2,))])
    return Graph("bidir", [TensorSpec("x", (None, 5, 2))], [R("time_distributed")], [bi, td],
                 b.weights, metadata={"model_class": "Sequential"}).validate()


def embed_lstm_state(seed=4):
    """Embedding(mask_zero) -> LSTM(return_state) using tensor_index for the states."""
    b = B(seed)
    emb = Node("embedding", "Embedding",
               {"name": "embedding", "trainable": True, "dtype": "float32", "input_dim": 20,
                "output_dim": 4, "embeddings_initializer": {"class_name": "RandomUniform",
                                                            "config": {"minval": -0.05, "maxval": 0.05, "seed": None}},
                "embeddings_regularizer": None, "activity_regularizer": None,
                "embeddings_constraint": None, "mask_zero": True, "input_length": None},
               [[R("tokens")]], [b.w("embedding/embeddings", (20, 4))])
    lstm = b.lstm("lstm", 4, 5, [[R("embedding")]], return_state=True)
    head = b.dense("head", 5, 2, [[R("lstm", 0, 2)]])
    return Graph("seq", [TensorSpec("tokens", (None, 7), "int32")],
                 [R("head"), R("lstm", 0, 0), R("lstm", 0, 1)], [emb, lstm, head], b.weights,
                 metadata={"model_class": "Functional"}).validate()


def cnn_bn(seed=5):
    b = B(seed)
    conv = Node("conv2d", "Conv2D",
                {"name": "conv2d", "trainable": True, "dtype": "float32", "filters": 4,
                 "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
                 "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                 "activation": "relu", "use_bias": True, "kernel_initializer": GLOROT,
                 "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
                 "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
                [[R("image")]], [b.w("conv2d/kernel", (3, 3, 3, 4)), b.w("conv2d/bias", (4,))])
    bn = Node("batch_normalization", "BatchNormalization",
              {"name": "batch_normalization", "trainable": True, "dtype": "float32", "axis": -1,
               "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True,
               "beta_initializer": ZEROS, "gamma_initializer": {"class_name": "Ones", "config": {}},
               "moving_mean_initializer": ZEROS,
               "moving_variance_initializer": {"class_name": "Ones", "config": {}},
               "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
               "gamma_constraint": None},
              [[R("conv2d")]], [b.w(f"batch_normalization/{k}", (4,)) for k in
                                ("gamma", "beta", "moving_mean", "moving_variance")])
    flat = Node("flatten", "Flatten", {"name": "flatten", "trainable": True, "dtype": "float32",
                                        "data_format": "channels_last"}, [[R("batch_normalization")]], [])
    d = b.dense("dense", 4 * 8 * 8, 3, [[R("flatten")]], "softmax")
    return Graph("cnn", [TensorSpec("image", (None, 8, 8, 3))], [R("dense")], [conv, bn, flat, d],
                 b.weights, metadata={"model_class": "Sequential"}).validate()


def nested_bn_in_sequential(seed=6):
    """A Sequential nested in a Functional; the nested model holds a BatchNormalization so
    its stored weight order (trainable first) differs from the per-layer order."""
    g = cnn_bn(seed)
    b = B(seed + 1)
    top = b.dense("top", 3, 1, [[R("cnn")]])
    outer = Graph("outer", [TensorSpec("img", (None, 8, 8, 3))], [R("top")],
                  [Node("cnn", "Sequential", {"name": "cnn", "trainable": True}, [[R("img")]], [],
                        subgraph=g), top], b.weights, metadata={"model_class": "Functional"})
    return outer.validate()


ALL = {"dense_chain": dense_chain, "functional_chain": lambda: dense_chain(sequential=False),
       "multi_io": multi_io, "shared_nested": shared_nested, "bidir_td": bidir_td,
       "embed_lstm_state": embed_lstm_state, "cnn_bn": cnn_bn,
       "nested_bn": nested_bn_in_sequential}


def structure(g):
    """Everything but weight values, comparable across round trips."""
    return {"inputs": [s.to_dict() for s in g.inputs],
            "outputs": [r.to_list() for r in g.outputs],
            "nodes": [(n.name, n.op, n.config, [[r.to_list() for r in c] for c in n.calls],
                       n.weights, structure(n.subgraph) if n.subgraph else None) for n in g.nodes]}


def assert_same(a, b):
    assert structure(a) == structure(b)
    assert_same_weights(a, b)
    assert a.metadata.get("model_class") == b.metadata.get("model_class")


def assert_same_weights(a, b):
    assert list(a.weights) == list(b.weights) or set(a.weights) == set(b.weights)
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])
        assert a.weights[k].dtype == b.weights[k].dtype
    for na, nb in zip(a.nodes, b.nodes):
        if na.subgraph is not None:
            assert_same_weights(na.subgraph, nb.subgraph)


@pytest.mark.parametrize("name", sorted(ALL))
def test_h5_round_trip(tmp_path, name):
    g = ALL[name]()
    p = tmp_path / "m.h5"
    hdf5.save_graph(g, p)
    back = hdf5.load_graph(p)
    assert_same(g, back)
    assert back.metadata["keras_version"].startswith("2.")


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("dialect", ["keras2", "keras3"])
def test_json_round_trip(name, dialect):
    g = ALL[name]()
    cfg = hdf5.graph_to_keras_config(g, dialect=dialect)
    text = json.dumps(cfg)
    back = hdf5.keras_config_to_graph(json.loads(text), keras_version="3.5.0" if dialect == "keras3" else "2.15.0")
    def no_weights(s):
        for n in s["nodes"]:
            n[4].clear()      # no weights through JSON
            if n[5]:
                no_weights(n[5])
        return s
    assert no_weights(structure(g)) == no_weights(structure(back))


@pytest.mark.parametrize("name", sorted(ALL))
def test_keras_archive_round_trip(tmp_path, name):
    g = ALL[name]()
    p = tmp_path / "m.keras"
    hdf5.save_keras_archive(g, p)
    back = hdf5.load_keras_archive(p)
    assert structure(g)["inputs"] == structure(back)["inputs"]
    assert [n.name for n in g.nodes] == [n.name for n in back.nodes]
    flat = lambda gr: [a for n in gr.nodes for a in (flat(n.subgraph) if n.subgraph else
                                                      [gr.weights[k] for k in n.weights])]
    for x, y in zip(flat(g), flat(back)):
        np.testing.assert_array_equal(x, y)
    assert len(flat(g)) == len(flat(back))


def test_h5_layout_is_keras2(tmp_path):
    g = shared_nested()
    p = tmp_path / "m.h5"
    hdf5.save_graph(g, p)
    with h5py.File(p, "r") as f:
        assert f.attrs["keras_version"].startswith("2.")
        cfg = json.loads(f.attrs["model_config"])
        assert cfg["class_name"] == "Functional"
        mw = f["model_weights"]
        assert list(mw.attrs["layer_names"]) == ["vision", "shared_dense", "add", "head"]
        assert list(mw["shared_dense"].attrs["weight_names"]) == ["shared_dense/kernel:0",
                                                                  "shared_dense/bias:0"]
        assert list(mw["vision"].attrs["weight_names"]) == ["vision_dense/kernel:0",
                                                            "vision_dense/bias:0"]
        assert mw["vision/vision_dense/kernel:0"].shape == (3, 4)
        assert len(mw["add"].attrs["weight_names"]) == 0
        assert "top_level_model_weights" in mw
        # nested model calls are numbered from 1, as tf-keras does
        shared = [l for l in cfg["config"]["layers"] if l["name"] == "shared_dense"][0]
        assert shared["inbound_nodes"] == [[["vision", 1, 0, {}]], [["vision", 2, 0, {}]]]


def test_sequential_config_shape(tmp_path):
    cfg = hdf5.graph_to_keras_config(dense_chain())
    assert cfg["class_name"] == "Sequential"
    layers = cfg["config"]["layers"]
    assert layers[0]["class_name"] == "InputLayer"
    assert layers[0]["config"]["batch_input_shape"] == [None, 4]
    assert layers[1]["config"]["batch_input_shape"] == [None, 4]
    assert "inbound_nodes" not in layers[1]
    # a non-chain marked Sequential is written as Functional
    g = multi_io()
    g.metadata["model_class"] = "Sequential"
    assert hdf5.graph_to_keras_config(g)["class_name"] == "Functional"


def test_keras2_dialect_omits_time_major_and_keras3_maps_hard_sigmoid():
    g = bidir_td()
    g.nodes[0].config["layer"]["config"]["time_major"] = False
    g.nodes[0].config["layer"]["config"]["recurrent_activation"] = "keras3_hard_sigmoid"
    k2 = hdf5.graph_to_keras_config(g, "keras2")
    assert "time_major" not in json.dumps(k2)
    k3 = hdf5.graph_to_keras_config(g, "keras3")
    inner = k3["config"]["layers"][1]["config"]["layer"]["config"]
    assert inner["recurrent_activation"] == "hard_sigmoid"
    assert k3["config"]["layers"][0]["config"]["batch_shape"] == [None, 5, 2]
    back = hdf5.keras_config_to_graph(k3, keras_version="3.5.0")
    assert back.nodes[0].config["layer"]["config"]["recurrent_activation"] == "keras3_hard_sigmoid"
    # a Keras 2 hard_sigmoid cannot be written as Keras 3
    from modelkit.errors import UnsupportedError
    g = bidir_td()
    g.nodes[0].config["layer"]["config"]["recurrent_activation"] = "hard_sigmoid"
    with pytest.raises(UnsupportedError):
        hdf5.graph_to_keras_config(g, "keras3")
    # ... but round-trips through the Keras 2 dialect unchanged
    back = hdf5.keras_config_to_graph(hdf5.graph_to_keras_config(g), keras_version="2.15.0")
    assert back.nodes[0].config["layer"]["config"]["recurrent_activation"] == "hard_sigmoid"


def test_optimizer_state_round_trip(tmp_path):
    g = dense_chain()
    rng = np.random.default_rng(0)
    slots = {}
    for k, v in g.weights.items():
        slots[f"m/{k}"] = rng.normal(size=v.shape).astype(np.float32)
        slots[f"v/{k}"] = rng.random(size=v.shape).astype(np.float32)
    g.training = TrainingConfig(optimizer={"class_name": "Adam",
                                           "config": {"name": "Adam", "learning_rate": 0.001}},
                                loss="categorical_crossentropy", metrics=["accuracy"],
                                optimizer_state={"iterations": 7, "weights": slots})
    p = tmp_path / "m.h5"
    hdf5.save_graph(g, p)
    with h5py.File(p, "r") as f:
        names = list(f["optimizer_weights"].attrs["weight_names"])
        assert names[0] == "iteration:0" and names[1] == "Adam/m/dense/kernel:0"
        tc = json.loads(f.attrs["training_config"])
        assert tc["optimizer_config"]["class_name"] == "Adam"
    back = hdf5.load_graph(p)
    assert back.training.loss == "categorical_crossentropy"
    assert back.training.metrics == ["accuracy"]
    st = back.training.optimizer_state
    assert st["iterations"] == 7 and list(st["weights"]) == list(slots)
    for k in slots:
        np.testing.assert_array_equal(st["weights"][k], slots[k])
    hdf5.save_graph(g, tmp_path / "noopt.h5", include_optimizer=False)
    with h5py.File(tmp_path / "noopt.h5", "r") as f:
        assert "optimizer_weights" not in f and "training_config" not in f.attrs


def _write_legacy_optimizer(path, g, names_values, training):
    hdf5.save_graph(g, path, include_optimizer=False)
    with h5py.File(path, "a") as f:
        f.attrs["training_config"] = json.dumps(training).encode()
        og = f.create_group("optimizer_weights")
        og.attrs["weight_names"] = np.array([n.encode() for n, _ in names_values])
        for n, v in names_values:
            og.create_dataset(n, data=v)


def test_optimizer_state_legacy_and_keras3_names(tmp_path):
    g = dense_chain()
    k = g.weights["dense/kernel"]
    tc = {"loss": "mse", "metrics": [], "optimizer_config": {"class_name": "Adam",
                                                             "config": {"name": "Adam"}}}
    _write_legacy_optimizer(tmp_path / "a.h5", g, [("Adam/iter:0", np.int64(3)),
                                                   ("training/Adam/dense/kernel/m:0", k)], tc)
    st = hdf5.load_graph(tmp_path / "a.h5").training.optimizer_state
    assert st["iterations"] == 3 and list(st["weights"]) == ["m/dense/kernel"]
    tc3 = {"loss": "mse", "optimizer_config": {"class_name": "Adam", "config": {"name": "adam"}}}
    _write_legacy_optimizer(tmp_path / "b.h5", g, [("adam/iteration", np.int64(5)),
                                                   ("adam/learning_rate", np.float32(0.1)),
                                                   ("adam/mlp_dense_kernel_momentum", k)], tc3)
    st = hdf5.load_graph(tmp_path / "b.h5").training.optimizer_state
    assert st["iterations"] == 5 and list(st["weights"]) == ["momentum/dense/kernel"]


def test_bytes_attributes_like_old_tf_keras(tmp_path):
    g = multi_io()
    p = tmp_path / "old.h5"
    hdf5.save_graph(g, p)
    with h5py.File(p, "a") as f:
        cfg = f.attrs["model_config"]
        f.attrs["model_config"] = np.bytes_(cfg.encode())
        f.attrs["keras_version"] = np.bytes_(b"2.4.0")
        mw = f["model_weights"]
        names = [n.encode() for n in mw.attrs["layer_names"]]
        del mw.attrs["layer_names"]
        mw.attrs["layer_names0"] = np.array(names[:2])      # split form
        mw.attrs["layer_names1"] = np.array(names[2:])
        for ln in names:
            wn = [w.encode() for w in mw[ln.decode()].attrs["weight_names"]]
            if wn:
                mw[ln.decode()].attrs["weight_names"] = np.array(wn)
    assert_same(g, hdf5.load_graph(p))


def test_weights_only_round_trip(tmp_path):
    g = ALL["nested_bn"]()
    p = tmp_path / "w.h5"
    hdf5.save_weights(g, p)
    with h5py.File(p, "r") as f:
        assert "model_config" not in f.attrs and "layer_names" in f.attrs
        # the nested model's group lists trainable weights first
        names = list(f["cnn"].attrs["weight_names"])
        assert names.index("batch_normalization/moving_mean:0") > names.index("dense/bias:0")
    blank = g.copy()
    for gr in (blank, blank.nodes[0].subgraph):
        for k in gr.weights:
            gr.weights[k] = np.zeros_like(gr.weights[k])
    back = hdf5.load_weights_into(blank, p)
    assert_same_weights(g, back)
    assert not blank.weights["top/kernel"].any()     # input graph untouched
    with pytest.raises(ModelLoadError, match="weights-only"):
        hdf5.load_graph(p)
    # a full-model file also serves as a weights file
    hdf5.save_graph(g, tmp_path / "m.h5")
    assert_same_weights(g, hdf5.load_weights_into(blank, tmp_path / "m.h5"))


def test_weights_by_name_and_mismatch(tmp_path):
    g = multi_io()
    p = tmp_path / "w.h5"
    hdf5.save_weights(g, p)
    other = multi_io(seed=9)
    other.nodes = [other.nodes[i] for i in (1, 0, 2, 3, 4)]      # different layer order
    back = hdf5.load_weights_into(other, p, by_name=True)
    for k in g.weights:
        np.testing.assert_array_equal(back.weights[k], g.weights[k])
    # a shape mismatch names layer, weight and both shapes
    bad = multi_io()
    bad.weights["out_reg/kernel"] = np.zeros((6, 5), np.float32)
    bad.weights["out_reg/bias"] = np.zeros((5,), np.float32)
    with pytest.raises(ModelLoadError, match=r"out_reg.*kernel.*\(6, 5\).*\(6, 2\)"):
        hdf5.load_weights_into(bad, p)
    with pytest.warns(UserWarning, match="out_reg"):
        back = hdf5.load_weights_into(bad, p, by_name=True, skip_mismatch=True)
    assert back.weights["out_reg/kernel"].shape == (6, 5)
    np.testing.assert_array_equal(back.weights["dense_a/kernel"], g.weights["dense_a/kernel"])
    # a layer count mismatch by position
    fewer = dense_chain()
    with pytest.raises(ModelLoadError, match="layer count"):
        hdf5.load_weights_into(fewer, p)


def test_keras3_new_weights_layout(tmp_path):
    g = bidir_td()
    p = tmp_path / "m.weights.h5"
    with h5py.File(p, "w") as f:
        for sub in ("forward_layer", "backward_layer"):
            prefix = "bidirectional/forward_lstm" if sub == "forward_layer" else "bidirectional/backward_lstm"
            for i, k in enumerate(("kernel", "recurrent_kernel", "bias")):
                f[f"layers/bidirectional/{sub}/cell/vars/{i}"] = g.weights[f"{prefix}/lstm_cell/{k}"] + 1
        f["layers/time_distributed/layer/vars/0"] = g.weights["time_distributed/kernel"] + 1
        f["layers/time_distributed/layer/vars/1"] = g.weights["time_distributed/bias"] + 1
        f.create_group("vars")
    back = hdf5.load_weights_into(g, p)
    for k in g.weights:
        np.testing.assert_array_equal(back.weights[k], g.weights[k] + 1)

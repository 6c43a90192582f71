"""Models exported by real PyTorch (both exporters; tests/fixtures/onnx/make_torch_fixtures.py):
import -> predict parity with onnxruntime and PyTorch, Keras layers where they exist,
re-export -> onnxruntime parity, and fine-tuning with `fit`."""

import glob
import os

import numpy as np
import onnxruntime as ort
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.models import import_onnx, load_model

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "onnx")
FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "*.onnx")))
# Keras layers each fixture must import as (the rest may be OnnxOp nodes)
EXPECTED_LAYERS = {
    "mlp": {"Dense"}, "cnn": {"Conv2D", "DepthwiseConv2D", "MaxPooling2D", "Dense"},
    "cnn_bn": {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "Flatten", "Dense"},
    "resnet_block": {"Conv2D", "MaxPooling2D", "Add", "Dense"},
    "two_in_two_out": {"Dense", "Concatenate"}, "embed_lstm": {"Embedding", "LSTM", "Dense"},
    "lstm": {"LSTM", "Dense"}, "gru": {"GRU", "Dense"}, "bilstm": {"Bidirectional", "Dense"},
    "bigru": {"Bidirectional", "Dense"},
    "mobile": {"Conv2D", "DepthwiseConv2D", "ReLU", "GlobalAveragePooling2D", "Dense"},
    "unet": {"Conv2D", "Conv2DTranspose", "UpSampling2D", "Concatenate", "MaxPooling2D"},
    "encoder": {"Embedding", "Dense"}, "textcnn": {"Conv1D", "MaxPooling1D", "Dense"},
    "stacked": {"LSTM", "Bidirectional", "Concatenate", "Dense"},
    "lnmlp": {"LayerNormalization", "Dense"},
}
# ...and files that must have no OnnxOp node at all
PURE_KERAS = {"mlp", "cnn", "cnn_bn", "resnet_block", "two_in_two_out", "embed_lstm", "lstm",
              "gru", "rnn.ts", "unet", "stacked"}


def data_of(fname):
    data = np.load(os.path.join(HERE, fname.split(".")[0] + ".npz"))
    ins = [data[k] for k in sorted(data) if k.startswith("in_")]
    outs = [data[k] for k in sorted(data) if k.startswith("out_")]
    return ins, outs


def ort_run(model_or_path, ins):
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), ins)})


def as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def test_fixtures_cover_both_exporters():
    assert len(FILES) == 35
    assert sum(f.endswith(".dynamo.onnx") for f in FILES) == 17


@pytest.mark.parametrize("fname", FILES)
def test_import_predict_matches_onnxruntime_and_torch(fname):
    ins, torch_outs = data_of(fname)
    path = os.path.join(HERE, fname)
    model = load_model(path)
    got = as_list(model.predict(ins if len(ins) > 1 else ins[0], verbose=0))
    ref = ort_run(path, ins)
    assert len(got) == len(ref) == len(torch_outs)
    for g, r, t in zip(got, ref, torch_outs):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(g, t, atol=1e-5, rtol=1e-4)
    # the ONNX input contract is kept: same input names, dtypes and non-batch dims
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for spec, t in zip(model.inputs, sess.get_inputs()):
        assert spec.shape[1:] == tuple(d if isinstance(d, int) else None for d in t.shape[1:])
    assert [t._keras_history[0].name for t in model.inputs] == [i.name for i in sess.get_inputs()]


@pytest.mark.parametrize("fname", FILES)
def test_keras_layers_recognised(fname):
    graph = onnx_conv.import_graph(os.path.join(HERE, fname))
    ops = {n.op for n in graph.nodes}
    want = EXPECTED_LAYERS.get(fname.split(".")[0], {"Dense"})
    assert want <= ops, f"{fname}: missing {want - ops}; got {sorted(ops)}"
    if fname.split(".")[0] in PURE_KERAS or fname[:-5] in PURE_KERAS:
        assert "OnnxOp" not in ops, [n.config["op_type"] for n in graph.nodes if n.op == "OnnxOp"]


@pytest.mark.parametrize("fname", FILES)
def test_reexport_matches_onnxruntime(fname):
    ins, _ = data_of(fname)
    path = os.path.join(HERE, fname)
    model = import_onnx(path)
    proto = onnx_conv.export(model)
    src = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [o.name for o in proto.graph.output] == [o.name for o in src.get_outputs()]
    assert [i.name for i in proto.graph.input] == [i.name for i in src.get_inputs()]
    for a, b in zip(ort_run(proto, ins), ort_run(path, ins)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fname", ["mlp.ts.onnx", "cnn.ts.onnx", "cnn.dynamo.onnx",
                                   "lstm.ts.onnx", "embed_lstm.dynamo.onnx",
                                   "two_in_two_out.ts.onnx", "encoder.ts.onnx",
                                   "unet.dynamo.onnx", "stacked.ts.onnx", "mobile.ts.onnx"])
def test_fine_tuning_lowers_the_loss(fname):
    ins, outs = data_of(fname)
    model = import_onnx(os.path.join(HERE, fname))
    reps = [np.concatenate([x] * 8) for x in ins]
    targets = [np.concatenate([o] * 8) * 0.5 + 0.5 for o in outs]     # reachable targets
    x = reps if len(reps) > 1 else reps[0]
    y = targets if len(targets) > 1 else targets[0]
    from modelkit.optimizers import Adam
    model.compile(optimizer=Adam(learning_rate=0.01), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    weights_before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=20, batch_size=8, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    before = before if np.isscalar(before) else before[0]
    after = after if np.isscalar(after) else after[0]
    assert after < before * 0.5
    assert any(not np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights()))


def test_batchnorm_statistics_update_in_training():
    ins, _ = data_of("cnn_bn.ts.onnx")
    model = import_onnx(os.path.join(HERE, "cnn_bn.ts.onnx"))
    bn = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(bn) == 3
    mean_before = bn[0].get_weights()[2].copy()
    model.compile(optimizer="sgd", loss="mse")
    x = np.concatenate([ins[0]] * 4)
    model.fit(x, np.zeros((len(x), 5), np.float32), epochs=1, batch_size=12, verbose=0)
    assert not np.allclose(bn[0].get_weights()[2], mean_before)


def test_dropout_active_in_training_only():
    from onnx import TensorProto, helper, numpy_helper
    w = np.eye(6, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Dropout", ["h", "ratio"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0.5, np.float32),
                                                                  "ratio")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = import_onnx(proto)
    assert [type(layer).__name__ for layer in model.layers][-1] == "Dropout"
    x = np.ones((64, 6), np.float32)
    y = np.asarray(model(x, training=True).value)
    assert 0.3 < np.mean(y == 0) < 0.7 and set(np.unique(y)) <= {0.0, 2.0}
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)

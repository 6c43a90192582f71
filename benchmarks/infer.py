"""Overhead of modelkit's InferenceSession over raw onnxruntime, same model, same process.

For an MLP, a CNN and an LSTM at batch 1 and 128, times `InferenceSession.predict(x)`
against `onnxruntime.InferenceSession.run(None, {name: x})` on the *same* underlying
onnxruntime session (so only modelkit's Python layer differs: input checks, dict building,
output unpacking) and prints the ratio. Goal: <= 1.05.

Models: when `modelkit.models` offers Sequential with Dense/Conv2D/LSTM and
`modelkit.converters.onnx.export` works, the three models are modelkit models exported
to ONNX; otherwise (or with --onnx-helper) equivalent graphs are built with onnx.helper.

    python benchmarks/infer.py [--device cpu|cuda|auto] [--seconds 1] [--onnx-helper]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


# -- models built with onnx.helper ------------------------------------------------------------

def _helper_models():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape, scale=0.1):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    def model(nodes, x_shape, y_shape, inits, name):
        vi = helper.make_tensor_value_info
        g = helper.make_graph(nodes, name, [vi("x", TensorProto.FLOAT, x_shape)],
                              [vi("y", TensorProto.FLOAT, y_shape)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m

    n = helper.make_node
    mlp = model([n("Gemm", ["x", "w1", "b1"], ["h1"]), n("Relu", ["h1"], ["a1"]),
                 n("Gemm", ["a1", "w2", "b2"], ["h2"]), n("Relu", ["h2"], ["a2"]),
                 n("Gemm", ["a2", "w3", "b3"], ["h3"]), n("Softmax", ["h3"], ["y"], axis=-1)],
                ["N", 784], ["N", 10],
                [init("w1", 784, 256), init("b1", 256), init("w2", 256, 256), init("b2", 256),
                 init("w3", 256, 10), init("b3", 10)], "mlp")
    cnn = model([n("Conv", ["x", "k1", "c1"], ["h1"], pads=[1, 1, 1, 1]), n("Relu", ["h1"], ["a1"]),
                 n("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
                 n("Conv", ["p1", "k2", "c2"], ["h2"], pads=[1, 1, 1, 1]), n("Relu", ["h2"], ["a2"]),
                 n("GlobalAveragePool", ["a2"], ["g"]), n("Flatten", ["g"], ["f"]),
                 n("Gemm", ["f", "w", "b"], ["z"]), n("Softmax", ["z"], ["y"], axis=-1)],
                ["N", 1, 28, 28], ["N", 10],
                [init("k1", 32, 1, 3, 3), init("c1", 32), init("k2", 64, 32, 3, 3), init("c2", 64),
                 init("w", 64, 10), init("b", 10)], "cnn")
    lstm = model([n("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),     # batch-first -> time-first
                  n("LSTM", ["xt", "W", "R", "B"], ["", "h"], hidden_size=64),
                  n("Squeeze", ["h", "axis0"], ["f"]), n("Gemm", ["f", "w", "b"], ["y"])],
                 ["N", 20, 32], ["N", 10],
                 [init("W", 1, 256, 32), init("R", 1, 256, 64), init("B", 1, 512),
                  init("w", 64, 10), init("b", 10),
                  numpy_helper.from_array(np.array([0], np.int64), "axis0")], "lstm")
    return {"mlp": (mlp, (784,)), "cnn": (cnn, (1, 28, 28)), "lstm": (lstm, (20, 32))}


# -- the same models as modelkit models ---------------------------------------------------------

def _modelkit_models():
    from modelkit.converters import onnx as onnx_conv
    from modelkit.layers import (LSTM, Conv2D, Dense, Flatten, GlobalAveragePooling2D,
                                 MaxPooling2D)
    from modelkit.models import Sequential

    mlp = Sequential([Dense(256, activation="relu", input_shape=(784,)),
                      Dense(256, activation="relu"), Dense(10, activation="softmax")])
    cnn = Sequential([Conv2D(32, 3, padding="same", activation="relu", input_shape=(28, 28, 1)),
                      MaxPooling2D(2), Conv2D(64, 3, padding="same", activation="relu"),
                      GlobalAveragePooling2D(), Flatten(), Dense(10, activation="softmax")])
    lstm = Sequential([LSTM(64, input_shape=(20, 32)), Dense(10)])
    return {"mlp": (onnx_conv.export(mlp), (784,), mlp),
            "cnn": (onnx_conv.export(cnn), (28, 28, 1), cnn),
            "lstm": (onnx_conv.export(lstm), (20, 32), lstm)}


def build_models(force_helper=False):
    if not force_helper:
        try:
            return _modelkit_models(), "modelkit models exported with converters.onnx.export"
        except Exception as e:   # layers or exporter not there (yet), or not for these layers
            why = f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"
            return ({k: _with_model(v) for k, v in _helper_models().items()},
                    f"onnx.helper graphs (modelkit models unavailable: {why})")
    return ({k: _with_model(v) for k, v in _helper_models().items()},
            "onnx.helper graphs (--onnx-helper)")


def _with_model(entry):
    return entry if len(entry) == 3 else (entry[0], entry[1], None)


# -- timing ---------------------------------------------------------------------------------------

def numpy_predict_seconds(model, sample_shape, batch, seconds):
    """Median seconds of modelkit's own numpy `model.predict` on the same input. Timed before
    any onnxruntime session exists: its spinning worker threads would compete for the cores."""
    if model is None:
        return None
    x = np.random.default_rng(1).standard_normal((batch,) + sample_shape).astype(np.float32)
    model.predict(x, batch_size=batch)
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < seconds and len(times) < 200):
        t = time.perf_counter()
        model.predict(x, batch_size=batch)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def measure(proto, sample_shape, batch, device, seconds):
    """(ours, raw, device): median seconds per call of InferenceSession.predict and of raw
    onnxruntime run, timed call by call in alternation (A B B A ...) so that load from
    other processes hits both alike, for about `seconds` in all."""
    from modelkit.runtime import InferenceSession
    sess = InferenceSession(proto, device=device)
    raw = sess.ort_session                        # the very same onnxruntime session
    name = sess.input_names[0]
    x = np.random.default_rng(1).standard_normal((batch,) + sample_shape).astype(np.float32)
    feed = {name: x}
    np.testing.assert_allclose(sess.predict(x), raw.run(None, feed)[0], rtol=1e-5, atol=1e-5)
    clock = time.perf_counter
    t0 = clock()
    for _ in range(10):                           # warm-up, and a first estimate
        raw.run(None, feed)
        sess.predict(x)
    pairs = max(50, int(seconds / max((clock() - t0) / 10, 1e-7)))
    ours, theirs = np.empty(pairs), np.empty(pairs)
    for i in range(pairs):
        if i % 2:
            a = clock(); sess.predict(x); b = clock(); raw.run(None, feed); c = clock()  # noqa: E702
            ours[i], theirs[i] = b - a, c - b
        else:
            a = clock(); raw.run(None, feed); b = clock(); sess.predict(x); c = clock()  # noqa: E702
            theirs[i], ours[i] = b - a, c - b
    return float(np.median(ours)), float(np.median(theirs)), sess.device


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--seconds", type=float, default=1.0,
                   help="timing budget per model and batch size (default 1 s)")
    p.add_argument("--batches", default="1,128")
    p.add_argument("--onnx-helper", action="store_true",
                   help="use the onnx.helper graphs even when modelkit models are available")
    args = p.parse_args(argv)
    models, origin = build_models(args.onnx_helper)
    import onnxruntime
    print(f"onnxruntime {onnxruntime.__version__}, numpy {np.__version__}; models: {origin}")
    print(f"{'model':<6} {'batch':>5} {'device':<6} {'raw run (us)':>13} {'predict (us)':>13} "
          f"{'ratio':>7} {'numpy predict (us)':>19} {'onnx speed-up':>13}")
    worst = 0.0
    batches = [int(b) for b in args.batches.split(",")]
    numpy_times = {(name, b): numpy_predict_seconds(model, shape, b, args.seconds)
                   for name, (_, shape, model) in models.items() for b in batches}
    for name, (proto, shape, _) in models.items():
        for batch in batches:
            ours, raw, dev = measure(proto, shape, batch, args.device, args.seconds)
            ratio = ours / raw
            worst = max(worst, ratio)
            t_np = numpy_times[(name, batch)]
            np_cols = (f"{t_np * 1e6:>19.1f} {t_np / ours:>12.1f}x" if t_np is not None
                       else f"{'-':>19} {'-':>13}")
            print(f"{name:<6} {batch:>5} {dev:<6} {raw * 1e6:>13.1f} {ours * 1e6:>13.1f} "
                  f"{ratio:>7.3f} {np_cols}")
    print(f"worst overhead ratio {worst:.3f} (goal <= 1.05); times are medians of single "
          f"calls, predict and raw run alternating; numpy predict is modelkit's own engine")
    return 0


if __name__ == "__main__":
    sys.exit(main())

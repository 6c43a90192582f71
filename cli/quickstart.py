"""`modelkit quickstart`: the README's main job, end to end on real data.

Trains the spec's MNIST MLP (Dense/tanh/Dropout/softmax, SGD with Nesterov momentum) on
the bundled 8x8 digits, prints the test accuracy, saves it as Keras HDF5, converts that
file to ONNX, predicts the test set through onnxruntime and compares with model.predict
(agreement and speed), then quantizes the ONNX model to int8 and reports the accuracy change.

Everything is kept in `--out DIR` (default: a new folder ./modelkit-quickstart[-N], printed):
the .h5, the .onnx, the int8 .onnx, the training history JSON, a few test images to predict
(digits_sample.npy) and, with the plot extra (pydot + Graphviz, matplotlib), model.png and
history.png; the last lines print the commands to run on them next.
"""

import json
import os
import time

from .commands import register


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--out", "--output-dir", dest="out", default=None, metavar="DIR",
                        help="folder to keep the files in (default: a new folder "
                             "./modelkit-quickstart[-N])")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras fit verbosity: 1 progress bar, 2 one line per epoch")


def build_model(input_dim, num_classes):
    """The spec's MLP (784-500-500-10 there), sized for the digits input."""
    from modelkit.layers import Activation, Dense, Dropout
    from modelkit.models import Sequential
    from modelkit.optimizers import SGD

    model = Sequential()
    model.add(Dense(500, input_shape=(input_dim,)))
    model.add(Activation("tanh"))
    model.add(Dropout(0.5))
    model.add(Dense(500))
    model.add(Activation("tanh"))
    model.add(Dropout(0.5))
    model.add(Dense(num_classes))
    model.add(Activation("softmax"))
    sgd = SGD(learning_rate=0.01, decay=1e-6, momentum=0.9, nesterov=True)
    model.compile(loss="categorical_crossentropy", optimizer=sgd, metrics=["accuracy"])
    return model


def run(args):
    import numpy as np

    from modelkit.datasets import digits
    from modelkit.initializers import set_random_seed
    from modelkit.models import load_model
    from modelkit.runtime import InferenceSession
    from modelkit.utils import to_categorical

    set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train = x_train.reshape(len(x_train), -1).astype("float32") / 16.0
    x_test = x_test.reshape(len(x_test), -1).astype("float32") / 16.0
    y_train_1h, y_test_1h = to_categorical(y_train, 10), to_categorical(y_test, 10)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels")

    out_dir = _out_dir(args.out)
    model = build_model(x_train.shape[1], 10)
    model.summary()
    start = time.perf_counter()
    history = model.fit(x_train, y_train_1h, batch_size=args.batch_size, epochs=args.epochs,
                        shuffle=True, verbose=args.verbose, validation_split=0.1)
    train_s = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test_1h, batch_size=200, verbose=0)
    print(f"trained in {train_s:.1f}s; test loss {loss:.4f}, test accuracy {acc:.4f}")

    h5_path = os.path.join(out_dir, "digits_mlp.h5")
    onnx_path = os.path.join(out_dir, "digits_mlp.onnx")
    model.save(h5_path)
    reloaded = load_model(h5_path)
    same = np.abs(reloaded.predict(x_test) - model.predict(x_test)).max()
    print(f"saved {h5_path} (Keras HDF5); reloaded model differs by at most {same:.2e}")

    from modelkit.converters import formats
    formats.write_graph(formats.read_graph(h5_path), onnx_path)
    print(f"converted {h5_path} -> {onnx_path}")

    # time modelkit's numpy predict before onnxruntime's thread pool exists: its spinning
    # worker threads would otherwise compete with numpy for the same cores
    y_np = model.predict(x_test, batch_size=200)
    t_np = _best_time(lambda: model.predict(x_test, batch_size=200))
    session = InferenceSession(onnx_path, device="auto")
    y_ort = session.predict(x_test, batch_size=200)
    agree = float(np.mean(y_ort.argmax(-1) == y_np.argmax(-1)))
    print(f"onnxruntime ({', '.join(session.providers)}) vs model.predict: max abs diff "
          f"{np.abs(y_ort - y_np).max():.2e}, class agreement {agree:.4f}")
    t_ort = _best_time(lambda: session.predict(x_test, batch_size=200))
    print(f"predict {len(x_test)} images: modelkit numpy {t_np * 1e3:.2f} ms, onnxruntime "
          f"{t_ort * 1e3:.2f} ms (onnxruntime runs at {t_np / t_ort:.1f}x the speed of numpy)")

    q_path = os.path.join(out_dir, "digits_mlp.int8.onnx")
    import onnx

    from modelkit.converters import onnx as onnx_conv
    onnx_conv.save_proto(onnx_conv.quantize_dynamic(onnx.load(onnx_path)), q_path)
    q_acc = float(np.mean(InferenceSession(q_path, device="cpu").predict(x_test).argmax(-1)
                          == y_test))
    print(f"int8 dynamic quantization: test accuracy {q_acc:.4f} ({q_acc - acc:+.4f}), "
          f"{os.path.getsize(onnx_path) // 1024} KB -> {os.path.getsize(q_path) // 1024} KB")
    _keep_extras(out_dir, model, history.history, x_test[:5])
    _print_next_steps(out_dir)
    return 0


def _out_dir(requested):
    """`requested` (created if needed), or a new ./modelkit-quickstart[-N] folder."""
    if requested:
        os.makedirs(requested, exist_ok=True)
        return requested
    base = "modelkit-quickstart"
    for n in range(1, 1000):
        path = base if n == 1 else f"{base}-{n}"
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            continue
    raise OSError(f"Cannot create a new {base}-N folder in {os.getcwd()}")


def _keep_extras(out_dir, model, history, sample):
    """The history JSON, a sample input and, with the plot extra, the two pictures."""
    import numpy as np

    from modelkit.converters.atomic import atomic_write
    from modelkit.errors import MissingDependencyError
    from modelkit.utils import vis_utils
    with atomic_write(os.path.join(out_dir, "history.json"), mode="w") as f:
        json.dump({k: [float(v) for v in vs] for k, vs in history.items()}, f, indent=1)
    with atomic_write(os.path.join(out_dir, "digits_sample.npy"), mode="wb") as f:
        np.save(f, sample, allow_pickle=False)
    for name, draw in (("model.png", lambda p: vis_utils.plot_model(model, p, show_shapes=True)),
                       ("history.png", lambda p: vis_utils.plot_history(history, p))):
        try:
            draw(os.path.join(out_dir, name))
        except MissingDependencyError as e:
            print(f"(no {name}: {e})")


def _print_next_steps(out_dir):
    print(f"\nkept in {out_dir}/:")
    for name in sorted(os.listdir(out_dir)):
        if not name.startswith("."):
            print(f"  {name:24s} {os.path.getsize(os.path.join(out_dir, name)):>9,} bytes")
    d = out_dir.rstrip("/")
    print("next:")
    print(f"  modelkit summary {d}/digits_mlp.h5")
    print(f"  modelkit predict {d}/digits_mlp.onnx --input {d}/digits_sample.npy")
    print(f"  modelkit serve {d}/digits_mlp.onnx --port 8000")


def _best_time(fn, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


register("quickstart", add_arguments, run,
         example="modelkit quickstart --epochs 20 --out ./quickstart")

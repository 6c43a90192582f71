"""The CUDA path end to end: modelkit models exported to ONNX, run on CPU and CUDA.

For an MLP, a CNN and an LSTM: max abs difference between the CUDA and CPU outputs,
IO binding (`run_on_device`, outputs left on the GPU) against plain runs, and the speed of
both devices at batch 128 (median of timed runs after warm-up). Needs onnxruntime-gpu and a
GPU; prints why not otherwise.

    python benchmarks/cuda_check.py [--runs 50]
"""

import argparse
import statistics
import sys
import time

import numpy as np


def models():
    from modelkit.layers import (LSTM, Conv2D, Dense, Dropout, Embedding, Flatten,
                                 MaxPooling2D)
    from modelkit.models import Sequential
    rng = np.random.default_rng(0)
    mlp = Sequential([Dense(500, activation="tanh", input_shape=(784,)), Dropout(0.5),
                      Dense(500, activation="tanh"), Dense(10, activation="softmax")])
    cnn = Sequential([Conv2D(32, 3, padding="same", activation="relu", input_shape=(28, 28, 1)),
                      Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(),
                      Conv2D(64, 3, padding="same", activation="relu"), MaxPooling2D(),
                      Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")])
    lstm = Sequential([Embedding(20000, 128, input_length=80), LSTM(128),
                       Dense(1, activation="sigmoid")])
    inputs = {"mlp": rng.random((128, 784), dtype=np.float32),
              "cnn": rng.random((128, 28, 28, 1), dtype=np.float32),
              "lstm": rng.integers(1, 20000, (128, 80)).astype(np.int32)}
    return {"mlp": mlp, "cnn": cnn, "lstm": lstm}, inputs


def median_ms(fn, runs):
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    from modelkit.converters import onnx as onnx_conv
    from modelkit.runtime import InferenceSession, cuda_status

    problems = cuda_status()
    if problems:
        print("CUDA unavailable: " + "; ".join(problems))
        return 1
    built, inputs = models()
    print(f"{'model':6} {'max|cuda-cpu|':>14} {'max|cuda-numpy|':>16} {'iobind==run':>11} "
          f"{'cpu ms':>8} {'cuda ms':>8} {'speed-up':>8}")
    ok = True
    for name, model in built.items():
        x = inputs[name]
        proto = onnx_conv.export(model)
        cpu = InferenceSession(proto, device="cpu")
        gpu = InferenceSession(proto, device="cuda")
        assert gpu.providers[0] == "CUDAExecutionProvider", gpu.providers
        y_cpu, y_gpu = cpu.predict(x), gpu.predict(x)
        y_np = model.predict(x, batch_size=128)
        bound = gpu.run_on_device({gpu.input_names[0]: x})
        y_bound = next(iter(bound.values())).numpy()
        d_cpu = float(np.abs(y_gpu - y_cpu).max())
        d_np = float(np.abs(y_gpu - y_np).max())
        same = bool(np.array_equal(y_bound, y_gpu))
        t_cpu = median_ms(lambda: cpu.predict(x), args.runs)
        t_gpu = median_ms(lambda: gpu.predict(x), args.runs)
        ok &= d_cpu <= 1e-5 and d_np <= 1e-5 and same
        print(f"{name:6} {d_cpu:14.2e} {d_np:16.2e} {str(same):>11} {t_cpu:8.3f} {t_gpu:8.3f} "
              f"{t_cpu / t_gpu:7.1f}x")
    print("parity within 1e-5 on every model:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Training speed of the spec's MNIST MLP against numpy's own float32 GEMM rate.

784-500-500-10, tanh, Dropout(0.5), softmax, batch 200, SGD(lr=0.01, momentum=0.9,
nesterov=True), float32, random data. The reference runs exactly the GEMMs one training
step needs (forward, input gradient and weight gradient of each Dense) with bare numpy in
the same process; the ratio says how much of the hardware's GEMM rate training reaches.

    python benchmarks/train_mlp.py [--steps 60] [--blas-threads 1]

`--blas-threads N` pins the BLAS thread count for both sides (set before numpy loads). On
this 2-vCPU machine the multithreaded reference runs its GEMMs back to back with the BLAS
worker hot, while a training step interleaves them with elementwise work, so with the
default two threads the ratio measures thread hand-over as much as Python overhead; one
thread compares like with like.

`--vs-torch` (needs PyTorch importable; never a modelkit dependency) builds the identical
model in PyTorch with the same initial weights, optimizer and batches and prints both
frameworks' samples/s in alternating epochs, their ratio, the losses after the same steps
and each one's peak RSS over an epoch (see benchmarks/vs_torch.py); `--threads N` pins
both sides' thread counts.
"""

import argparse
import os
import sys
import time

if "--blas-threads" in sys.argv:          # must happen before numpy is imported
    _n = sys.argv[sys.argv.index("--blas-threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402  (pins --threads before numpy loads)

import numpy as np  # noqa: E402

SIZES = [784, 500, 500, 10]
BATCH = 200


def gemm_shapes(batch=BATCH, sizes=SIZES):
    """(m, k, n) of every GEMM in one training step."""
    shapes = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes.append((batch, fan_in, fan_out))           # forward x @ W
        shapes.append((fan_in, batch, fan_out))           # dW = x.T @ g
        if i > 0:
            shapes.append((batch, fan_out, fan_in))       # dx = g @ W.T (not for the input)
    return shapes


def flops_per_step():
    return sum(2 * m * k * n for m, k, n in gemm_shapes())


def numpy_gemm_epoch(steps):
    """A callable running one step's GEMMs `steps` times with bare numpy."""
    rng = np.random.default_rng(0)
    mats = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32))
            for m, k, n in gemm_shapes()]

    def run():
        for _ in range(steps):
            for a, b in mats:
                a @ b
    return run


def build_model(dropout=True):
    from modelkit.layers import Activation, Dense, Dropout
    from modelkit.models import Sequential
    from modelkit.optimizers import SGD

    model = Sequential()
    model.add(Dense(500, input_shape=(784,)))
    model.add(Activation("tanh"))
    model.add(Dropout(0.5 if dropout else 0.0))
    model.add(Dense(500))
    model.add(Activation("tanh"))
    model.add(Dropout(0.5 if dropout else 0.0))
    model.add(Dense(10))
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy",
                  optimizer=SGD(learning_rate=0.01, momentum=0.9, nesterov=True))
    return model


class MlpBench(vs_torch.Bench):
    """The --vs-torch description (see benchmarks/vs_torch.py)."""

    def __init__(self, steps=60):
        self.name = "MLP 784-500-500-10"
        self.batch, self.steps = BATCH, steps
        self.script = __file__

    def data(self, n):
        rng = np.random.default_rng(0)
        x = rng.random((n, 784), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
        return x, y

    def build_modelkit(self, dropout=True):
        return build_model(dropout)

    def torch_inputs(self, x, y):
        import torch
        return torch.from_numpy(x), torch.from_numpy(y.argmax(axis=1))

    def torch_loss(self, out, y):
        import torch.nn.functional as F
        return F.cross_entropy(out, y)

    def build_torch(self, mk, dropout=True):
        import torch
        from torch import nn
        p = 0.5 if dropout else 0.0
        lins = [nn.Linear(784, 500), nn.Linear(500, 500), nn.Linear(500, 10)]
        net = nn.Sequential(lins[0], nn.Tanh(), nn.Dropout(p), lins[1], nn.Tanh(),
                            nn.Dropout(p), lins[2])
        dense = [layer for layer in mk.layers if type(layer).__name__ == "Dense"]
        for a, b in zip(dense, lins):
            vs_torch.copy_dense(a, b)
        # Keras nesterov SGD (v = m v - lr g; p += m v - lr g) == torch's with buf = -v / lr
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        return net, opt


def main():
    if vs_torch.main_hook(lambda: MlpBench(int(vs_torch.arg("--steps", 60)))):
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    vs_torch.add_arguments(parser)
    parser.add_argument("--steps", type=int, default=60, help="training steps per epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs (best is kept)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads for model and reference (default: library default)")
    args = parser.parse_args()
    if args.vs_torch:
        vs_torch.run(args, MlpBench(args.steps), args.repeats, ("steps",))
        return

    rng = np.random.default_rng(0)
    x = rng.random((BATCH * args.steps, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    model = build_model()
    model.fit(x[:BATCH * 3], y[:BATCH * 3], batch_size=BATCH, epochs=1, verbose=0)  # warm up

    reference = numpy_gemm_epoch(args.steps)
    reference()
    # interleave model and reference epochs and keep the best of each, so both see the same
    # machine (a shared 2-core box swings a lot)
    best_model = best_ref = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        best_model = min(best_model, time.perf_counter() - t)
        t = time.perf_counter()
        reference()
        best_ref = min(best_ref, time.perf_counter() - t)
    step_s = best_model / args.steps
    ref_s = best_ref / args.steps
    flops = flops_per_step()
    model_gflops = flops / step_s / 1e9
    numpy_gflops = flops / ref_s / 1e9
    print(f"MLP 784-500-500-10, batch {BATCH}, {args.steps} steps per epoch, BLAS threads: "
          f"{args.blas_threads or 'library default'}")
    print(f"  modelkit training:     {BATCH / step_s:10.0f} samples/s  {step_s * 1e3:7.2f} ms/step"
          f"  {model_gflops:7.1f} GFLOP/s")
    print(f"  numpy GEMMs (same shapes): {ref_s * 1e3:7.2f} ms/step  {numpy_gflops:7.1f} GFLOP/s")
    print(f"  ratio (modelkit GFLOP/s / numpy GEMM GFLOP/s): {model_gflops / numpy_gflops:.2f}"
          "  (goal >= 0.7)")


if __name__ == "__main__":
    main()

"""Training speed of a small VGG-like CNN (or a small ResNet) against numpy's float32 GEMM
rate, or side by side with PyTorch (`--vs-torch`).

`--model vgg` (default): 28x28x1 input: Conv2D(32, 3, relu, same) x2 -> MaxPooling2D ->
Conv2D(64, 3, relu, same) x2 -> MaxPooling2D -> Flatten -> Dense(256, relu) -> Dropout(0.5)
-> Dense(10, softmax); batch 64, RMSprop(lr=0.001), categorical cross-entropy, float32,
random data.

`--model resnet`: 32x32x3 input: Conv2D(16, 3, same) -> BatchNormalization -> ReLU, then two
residual blocks [Conv2D(16, 3, same) -> BN -> ReLU -> Conv2D(16, 3, same) -> BN] + shortcut
-> ReLU, then GlobalAveragePooling2D -> Dense(10, softmax); batch 64, SGD(lr=0.01,
momentum=0.9).

`--vs-torch` (needs PyTorch importable; never a modelkit dependency) builds the identical
model in PyTorch with the same initial weights, optimizer and batches, and prints both
frameworks' samples/s in alternating epochs, their ratio, the losses after the same steps
and each one's peak RSS over an epoch (see benchmarks/vs_torch.py).

Prints
- samples/s of `model.fit`;
- the GFLOP/s of the conv/dense GEMMs one training step needs, achieved by training
  (GEMM FLOPs / step time), as a ratio to numpy's own float32 GEMM rate on exactly the same
  GEMM shapes (forward, weight gradient, input gradient), measured in this run;
- a cProfile breakdown of a few training steps: cumulative time inside each group of ops
  (conv kernels = GEMMs plus im2col copies, padding, bias, fused relu; dense; pooling;
  other ops) and the framework around them (tape, layers, optimizer loop, data), and the
  share of the step that the pure GEMMs (the numpy reference) account for.

    python benchmarks/train_cnn.py [--model vgg|resnet] [--steps 20] [--rounds 5]
                                   [--channels-first] [--no-profile] [--vs-torch]
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402  (pins --threads before numpy loads)

import numpy as np  # noqa: E402

from modelkit.backend import conv_fast  # noqa: E402

BATCH = 64
H = W = 28
# (in_channels, out_channels, spatial size) of each 3x3 'same' conv
CONVS = [(1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14)]
DENSES = [(7 * 7 * 64, 256), (256, 10)]


def gemm_shapes(batch=BATCH):
    """(m, k, n) of every GEMM in one training step (im2col convs: k = 9 * in_channels)."""
    shapes = []
    for i, (cin, cout, size) in enumerate(CONVS):
        m, k = batch * size * size, 9 * cin
        shapes.append((m, k, cout))               # forward: cols @ kernel
        shapes.append((k, m, cout))               # kernel gradient: cols.T @ g
        if i > 0:
            shapes.append((m, cout, k))           # input gradient: g @ kernel.T (modelkit
            #                                       does these FLOPs as a full convolution,
            #                                       (m, 9*cout) @ (9*cout, cin), when stride 1)
    for fan_in, fan_out in DENSES:
        shapes.append((batch, fan_in, fan_out))
        shapes.append((fan_in, batch, fan_out))
        shapes.append((batch, fan_out, fan_in))
    return shapes


def flops_per_step():
    return sum(2 * m * k * n for m, k, n in gemm_shapes())


def gemm_operands():
    rng = np.random.default_rng(0)
    return [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32))
            for m, k, n in gemm_shapes()]


def numpy_gemm_seconds(mats):
    """Time of one training step's GEMMs in bare numpy (C-contiguous operands)."""
    t = time.perf_counter()
    for a, b in mats:
        a @ b
    return time.perf_counter() - t


def build_model(data_format="channels_last", dropout=True):
    from modelkit.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from modelkit.models import Sequential
    from modelkit.optimizers import RMSprop

    shape = (H, W, 1) if data_format == "channels_last" else (1, H, W)
    model = Sequential([
        Conv2D(32, 3, activation="relu", padding="same", input_shape=shape,
               data_format=data_format),
        Conv2D(32, 3, activation="relu", padding="same", data_format=data_format),
        MaxPooling2D(data_format=data_format),
        Conv2D(64, 3, activation="relu", padding="same", data_format=data_format),
        Conv2D(64, 3, activation="relu", padding="same", data_format=data_format),
        MaxPooling2D(data_format=data_format),
        Flatten(data_format=data_format),
        Dense(256, activation="relu"),
        Dropout(0.5 if dropout else 0.0),
        Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=RMSprop(learning_rate=0.001))
    return model


RES_H = 32


def build_resnet(data_format="channels_last"):
    """The small ResNet of the module docstring (functional API)."""
    from modelkit.layers import (Activation, Add, BatchNormalization, Conv2D, Dense,
                                 GlobalAveragePooling2D, Input)
    from modelkit.models import Model
    from modelkit.optimizers import SGD

    axis = -1 if data_format == "channels_last" else 1
    shape = (RES_H, RES_H, 3) if data_format == "channels_last" else (3, RES_H, RES_H)

    def conv_bn(t):
        t = Conv2D(16, 3, padding="same", data_format=data_format)(t)
        return BatchNormalization(axis=axis)(t)

    inp = Input(shape)
    x = Activation("relu")(conv_bn(inp))
    for _ in range(2):
        y = Activation("relu")(conv_bn(x))
        y = conv_bn(y)
        x = Activation("relu")(Add()([x, y]))
    x = GlobalAveragePooling2D(data_format=data_format)(x)
    out = Dense(10, activation="softmax")(x)
    model = Model(inp, out)
    model.compile(loss="categorical_crossentropy",
                  optimizer=SGD(learning_rate=0.01, momentum=0.9))
    return model


class CnnBench(vs_torch.Bench):
    """The --vs-torch description of either model (see benchmarks/vs_torch.py)."""

    def __init__(self, model="vgg", steps=20):
        self.model = model
        self.name = ("VGG-like CNN 28x28x1" if model == "vgg" else "small ResNet 32x32x3")
        self.batch, self.steps = BATCH, steps
        self.script = __file__

    def data(self, n):
        rng = np.random.default_rng(0)
        h, c = (H, 1) if self.model == "vgg" else (RES_H, 3)
        x = rng.random((n, h, h, c), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
        return x, y

    def build_modelkit(self, dropout=True):
        return build_model(dropout=dropout) if self.model == "vgg" else build_resnet()

    def torch_inputs(self, x, y):
        import torch
        return (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
                torch.from_numpy(y.argmax(axis=1)))

    def torch_loss(self, out, y):
        import torch.nn.functional as F
        return F.cross_entropy(out, y)

    def build_torch(self, mk, dropout=True):
        import torch
        from torch import nn
        import vs_torch as vt

        convs = [layer for layer in mk.layers if type(layer).__name__ == "Conv2D"]
        dense = [layer for layer in mk.layers if type(layer).__name__ == "Dense"]
        if self.model == "vgg":
            tconvs = [nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1),
                      nn.Conv2d(32, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)]
            fc1, fc2 = nn.Linear(7 * 7 * 64, 256), nn.Linear(256, 10)
            net = nn.Sequential(tconvs[0], nn.ReLU(), tconvs[1], nn.ReLU(), nn.MaxPool2d(2),
                                tconvs[2], nn.ReLU(), tconvs[3], nn.ReLU(), nn.MaxPool2d(2),
                                nn.Flatten(), fc1, nn.ReLU(),
                                nn.Dropout(0.5 if dropout else 0.0), fc2)
            for a, b in zip(convs, tconvs):
                vt.copy_conv(a, b)
            vt.copy_dense(dense[0], fc1, row_perm=vt.flatten_perm(64, 7, 7))
            vt.copy_dense(dense[1], fc2)
            opt = torch.optim.RMSprop(net.parameters(), lr=0.001, alpha=0.9,
                                      eps=mk.optimizer.epsilon)
            return net, opt
        bns = [layer for layer in mk.layers if type(layer).__name__ == "BatchNormalization"]
        net = _TorchResNet()
        for a, b in zip(convs, net.convs):
            vt.copy_conv(a, b)
        for a, b in zip(bns, net.bns):
            vt.copy_batchnorm(a, b)
        vt.copy_dense(dense[0], net.fc)
        return net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)


def _TorchResNet():
    import torch
    from torch import nn

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(3 if i == 0 else 16, 16, 3, padding=1)
                                        for i in range(5)])
            # Keras BatchNormalization: momentum 0.99 (torch counts 1 - that), epsilon 1e-3
            self.bns = nn.ModuleList([nn.BatchNorm2d(16, eps=1e-3, momentum=0.01)
                                      for _ in range(5)])
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.bns[0](self.convs[0](x)))
            for i in (1, 3):
                y = torch.relu(self.bns[i](self.convs[i](x)))
                y = self.bns[i + 1](self.convs[i + 1](y))
                x = torch.relu(x + y)
            return self.fc(x.mean(dim=(2, 3)))
    return ResNet()


def _op_functions():
    """cProfile key (file, line, name) of every op's forward and VJP -> (op name, phase)."""
    from modelkit.backend.tape import OPS
    keys = {}
    for name in OPS.names():
        op = OPS.get(name)
        for phase, fn in (("forward", op.forward), ("backward", op.vjp)):
            code = getattr(fn, "__code__", None)
            if code is not None:
                keys[(code.co_filename, code.co_firstlineno, code.co_name)] = (name, phase)
    return keys


GROUPS = {"conv": "conv kernels (im2col + GEMM + col2im, bias, fused relu)",
          "dense": "dense kernels (GEMM + bias)",
          "pool_max": "pooling", "pool_avg": "pooling"}


def profile_steps(model, x, y, steps):
    """Run `steps` training steps under cProfile; cumulative time of each op's forward and
    VJP (numpy work included: `@` and copies are not Python calls, so they land in the op
    function that ran them), grouped; the remainder is the framework (tape, layers,
    optimizer, loss bookkeeping, data slicing)."""
    prof = cProfile.Profile()
    prof.enable()
    model.fit(x[:BATCH * steps], y[:BATCH * steps], batch_size=BATCH, epochs=1, verbose=0,
              shuffle=False)
    prof.disable()
    stats = pstats.Stats(prof)
    ops = _op_functions()
    total = sum(tt for (cc, nc, tt, ct, callers) in stats.stats.values())
    buckets = {}
    for key, (cc, nc, tt, ct, callers) in stats.stats.items():
        if key in ops:
            name, phase = ops[key]
            label = GROUPS.get(name, "other ops (relu, softmax/cross-entropy, dropout, "
                                     "reshape, optimizer math)")
            buckets[label] = buckets.get(label, 0.0) + ct
    buckets["framework (tape, layers, optimizer loop, data)"] = total - sum(buckets.values())
    return buckets, total, stats


def main():
    if vs_torch.main_hook(lambda: CnnBench(vs_torch.arg("--model", "vgg"),
                                           int(vs_torch.arg("--steps", 20)))):
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("vgg", "resnet"), default="vgg")
    vs_torch.add_arguments(parser)
    parser.add_argument("--steps", type=int, default=20, help="training steps to time")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs (best is kept)")
    parser.add_argument("--channels-first", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--top", type=int, default=0, help="also print the top N functions")
    args = parser.parse_args()
    if not conv_fast.enabled():
        print("note: onnxruntime is not importable here (or MODELKIT_FAST_CONV=0): the convolutions "
              "run on the exact numpy path, not the fast kernels; run with the project's own "
              "environment and make torch importable there", file=sys.stderr)
    if args.vs_torch:
        vs_torch.run(args, CnnBench(args.model, args.steps), args.rounds, ("model", "steps"))
        return
    if args.model != "vgg":
        parser.error("--model resnet is measured with --vs-torch")
    fmt = "channels_first" if args.channels_first else "channels_last"

    rng = np.random.default_rng(0)
    shape = (BATCH * args.steps, H, W, 1) if fmt == "channels_last" else \
        (BATCH * args.steps, 1, H, W)
    x = rng.random(shape, dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    model = build_model(fmt)
    model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, epochs=1, verbose=0)  # warm up

    # Interleave the two measurements and keep the best of each: on a shared machine the
    # speed changes from second to second, and the ratio must compare like with like.
    mats = gemm_operands()
    numpy_gemm_seconds(mats)
    best, ref_s = float("inf"), float("inf")
    for _ in range(args.rounds):
        t = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        best = min(best, time.perf_counter() - t)
        for _ in range(3):
            ref_s = min(ref_s, numpy_gemm_seconds(mats))
    step_s = best / args.steps
    flops = flops_per_step()
    model_gflops = flops / step_s / 1e9
    numpy_gflops = flops / ref_s / 1e9
    print(f"VGG-like CNN on 28x28x1 ({fmt}), batch {BATCH}, {args.steps} steps per epoch, "
          f"{flops / 1e9:.2f} GFLOP of GEMMs per step")
    print(f"  modelkit training:          {BATCH / step_s:8.0f} samples/s  "
          f"{step_s * 1e3:7.1f} ms/step  {model_gflops:6.1f} GFLOP/s")
    print(f"  numpy GEMMs (same shapes):  {ref_s * 1e3:25.1f} ms/step  {numpy_gflops:6.1f} GFLOP/s")
    print(f"  ratio (modelkit GFLOP/s / numpy GEMM GFLOP/s): {model_gflops / numpy_gflops:.2f}"
          "  (goal >= 0.5)")
    if args.no_profile:
        return
    nprof = min(args.steps, 8)
    buckets, total, stats = profile_steps(model, x, y, nprof)
    print(f"  cProfile of {nprof} steps ({total / nprof * 1e3:.0f} ms/step under the profiler):")
    for label, t in sorted(buckets.items(), key=lambda kv: -kv[1]):
        print(f"    {100 * t / total:5.1f}%  {label}")
    print(f"  pure GEMM time (the numpy reference) is {100 * ref_s / step_s:.0f}% of a step; "
          "the rest of the conv kernels' share is im2col/col2im copies, padding, bias and relu")
    if args.top:
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()

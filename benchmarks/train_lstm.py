"""Training speed of an LSTM (or GRU) text classifier against numpy's own float32 GEMM rate,
or side by side with PyTorch (`--vs-torch`).

Embedding(20000, 128) -> LSTM(128) -> Dense(1, sigmoid), sequences of 80 tokens, batch 64,
binary_crossentropy, Adam, random data (the spec's IMDB LSTM setting); `--model gru` uses
GRU(128) (reset_after=True, torch's formulation). Both use recurrent_activation='sigmoid'
(torch's gates). `--vs-torch` builds the identical PyTorch model with the same initial
weights, optimizer and batches and prints alternating epochs' samples/s, their ratio, the
losses after the same steps and each framework's peak RSS over an epoch (see
benchmarks/vs_torch.py). Without it, prints:

* samples/s of `model.fit`;
* where one training step's time goes: the GEMMs of the fused LSTM op (every product goes
  through `_gemm` of `modelkit/backend/rnn_ops/`), the rest of the LSTM op (elementwise gate math, BPTT
  bookkeeping), and everything outside it (embedding lookup and its scatter-add gradient,
  Adam, Dense, loss, the framework's Python). Measured twice: with wall-clock timers around
  the op and `_gemm` (unprofiled steps), and with cProfile (which also ranks the functions
  outside the op; under the profiler OpenBLAS's worker threads fall asleep between the
  slower-running calls, so cProfile overstates the GEMM share);
* the GEMM-rate ratio: the LSTM's GEMM FLOPs divided by the wall time of the fused op
  (forward + backward), against numpy's float32 GEMM rate on exactly the same GEMM shapes
  run bare in the same process. 1.0 would mean the op is nothing but its GEMMs.

* `--phases` (needs torch): where one training step's time goes in each framework, both in
  this process, alternating epochs: modelkit's RNN op forward and backward, the embedding
  lookup and its sparse gradient, the optimizer update, the rest; torch's forward, backward
  and optimizer step.

    python benchmarks/train_lstm.py [--model lstm|gru] [--steps 30] [--blas-threads 1]
                                    [--vs-torch | --phases] [--threads N]

`--blas-threads N` pins the BLAS thread count (set before numpy loads). On a shared machine
one thread gives far steadier numbers: a multithreaded BLAS stalls whenever another process
holds one of its cores, and an LSTM makes hundreds of small GEMM calls per step.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time


def _pin_blas_threads(argv):
    if "--blas-threads" in argv:
        n = argv[argv.index("--blas-threads") + 1]
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n


_pin_blas_threads(sys.argv)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402  (pins --threads before numpy loads)

import numpy as np  # noqa: E402  (after the BLAS thread count is pinned)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

VOCAB, EMBED, UNITS, STEPS_T, BATCH = 20000, 128, 128, 80, 64


def lstm_gemm_shapes(b=BATCH, t=STEPS_T, i=EMBED, u=UNITS):
    """(m, k, n, count) of every GEMM one forward + backward of the fused LSTM op runs."""
    g = 4 * u
    return [
        (t * b, i, g, 1),      # forward: input projection of all timesteps
        (b, u, g, t),          # forward: h @ recurrent_kernel, once per step
        (b, g, u, t),          # backward: dz @ recurrent_kernel.T, once per step
        (u, t * b, g, 1),      # backward: d recurrent_kernel = H.T @ DZ
        (i, t * b, g, 1),      # backward: d kernel = X.T @ DZ
        (t * b, g, i, 1),      # backward: d x = DZ @ kernel.T (the Embedding needs it)
    ]


def lstm_flops():
    return sum(2 * m * k * n * c for m, k, n, c in lstm_gemm_shapes())


def numpy_gemm_reference():
    """Bare numpy, same shapes, same counts, preallocated outputs: the hardware reference.
    Returns a function that runs them once and returns the seconds it took."""
    rng = np.random.default_rng(0)
    mats = [(rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32),
             np.empty((m, n), np.float32), c) for m, k, n, c in lstm_gemm_shapes()]

    def run():
        t0 = time.perf_counter()
        for a, b, out, c in mats:
            for _ in range(c):
                np.matmul(a, b, out=out)
        return time.perf_counter() - t0
    return run


def build_model(kind="lstm"):
    from modelkit.layers import GRU, LSTM, Dense, Embedding
    from modelkit.models import Sequential

    rnn = (LSTM if kind == "lstm" else GRU)(UNITS, recurrent_activation="sigmoid")
    model = Sequential([Embedding(VOCAB, EMBED, input_length=STEPS_T), rnn,
                        Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam")
    return model


class RnnBench(vs_torch.Bench):
    """The --vs-torch description (see benchmarks/vs_torch.py)."""

    def __init__(self, kind="lstm", steps=30):
        self.kind = kind
        self.name = f"Embedding({VOCAB}, {EMBED}) + {kind.upper()}({UNITS}), {STEPS_T} steps"
        self.batch, self.steps = BATCH, steps
        self.script = __file__

    def data(self, n):
        rng = np.random.default_rng(0)
        x = rng.integers(1, VOCAB, (n, STEPS_T)).astype(np.int32)
        y = rng.integers(0, 2, (n, 1)).astype(np.float32)
        return x, y

    def build_modelkit(self, dropout=True):
        return build_model(self.kind)

    def torch_inputs(self, x, y):
        import torch
        return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y)

    def before_torch_step(self, opt):
        vs_torch.keras_adam_epsilon(opt, 1e-7)

    def torch_loss(self, out, y):
        import torch.nn.functional as F
        return F.binary_cross_entropy_with_logits(out, y)

    def build_torch(self, mk, dropout=True):
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self, kind):
                super().__init__()
                self.emb = nn.Embedding(VOCAB, EMBED)
                self.rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(EMBED, UNITS,
                                                                   batch_first=True)
                self.fc = nn.Linear(UNITS, 1)

            def forward(self, x):
                seq, _ = self.rnn(self.emb(x))
                return self.fc(seq[:, -1])

        net = Net(self.kind)
        emb, rnn, dense = mk.layers
        vs_torch.copy_embedding(emb, net.emb)
        (vs_torch.copy_lstm if self.kind == "lstm" else vs_torch.copy_gru)(rnn, net.rnn)
        vs_torch.copy_dense(dense, net.fc)
        # tf.keras's Adam epsilon: see before_torch_step
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.001,
                               betas=(0.9, 0.999), eps=1e-7)
        return net, opt


def compare_with_numpy(model, rounds=7):
    """Forward + backward of the LSTM op alone (on the model's weights) and the bare numpy
    GEMMs, interleaved round by round so both see the same machine. Returns per round
    (op seconds, seconds inside its GEMMs, numpy seconds)."""
    from modelkit.backend import GradientTape, Variable, rnn_ops

    gemm_homes = _gemm_homes()
    cell = model.layers[1].cell
    rng = np.random.default_rng(1)
    x = Variable(rng.standard_normal((BATCH, STEPS_T, EMBED)).astype(np.float32) * 0.1)
    weights = [cell.kernel, cell.recurrent_kernel, cell.bias]
    gemm_time = [0.0]
    original = gemm_homes[0]._gemm

    def timed_gemm(a, b, out=None):
        t0 = time.perf_counter()
        r = original(a, b, out=out)
        gemm_time[0] += time.perf_counter() - t0
        return r

    def op_once():
        t0 = time.perf_counter()
        with GradientTape() as tape:
            seq, h, c = rnn_ops.lstm_sequence(x, *weights)
        tape.gradient(h, [x] + weights)
        return time.perf_counter() - t0

    reference = numpy_gemm_reference()
    op_once(), reference()                                  # warm up
    results = []
    for _ in range(rounds):
        t_op = op_once()
        _set_gemm(gemm_homes, timed_gemm)
        gemm_time[0] = 0.0
        try:
            op_once()
        finally:
            _set_gemm(gemm_homes, original)
        results.append((t_op, gemm_time[0], reference()))
    return results


def _gemm_homes():
    """The modules of the fused LSTM op that call `_gemm` (patched together to time it)."""
    from modelkit.backend.rnn_ops import lstm, steps
    return (steps, lstm)


def _set_gemm(homes, fn):
    for module in homes:
        module._gemm = fn


def _timer(acc):
    """timed(fn, key): fn wrapped to add its wall time to acc[key]."""
    def timed(fn, key):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[key] += time.perf_counter() - t0
        return wrapper
    return timed


def timed_steps(model, x, y, steps):
    """Wall-clock shares of unprofiled training steps: LSTM GEMMs, the rest of the LSTM op,
    everything else."""
    from modelkit.backend import OPS

    gemm_homes = _gemm_homes()
    opdef = OPS.get("lstm_sequence")
    acc = {"gemm": 0.0, "op": 0.0}
    original = (gemm_homes[0]._gemm, opdef.forward, opdef.vjp)

    timed = _timer(acc)

    _set_gemm(gemm_homes, timed(original[0], "gemm"))
    opdef.forward, opdef.vjp = timed(original[1], "op"), timed(original[2], "op")
    try:
        t0 = time.perf_counter()
        for s in range(steps):
            sl = slice(s * BATCH, (s + 1) * BATCH)
            model.train_on_batch(x[sl], y[sl])
        total = time.perf_counter() - t0
    finally:
        _set_gemm(gemm_homes, original[0])
        opdef.forward, opdef.vjp = original[1], original[2]
    return total, {"LSTM GEMMs (rnn_ops._gemm)": acc["gemm"],
                   "LSTM op, not GEMM (gate math, BPTT bookkeeping)": acc["op"] - acc["gemm"],
                   "outside the LSTM op (embedding, Adam, Dense, loss, framework)":
                       total - acc["op"]}


def profile_steps(model, x, y, steps):
    """cProfile a few train_on_batch calls: -> (total, {bucket: seconds}, top functions)."""
    prof = cProfile.Profile()
    prof.enable()
    for s in range(steps):
        sl = slice(s * BATCH, (s + 1) * BATCH)
        model.train_on_batch(x[sl], y[sl])
    prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt
    buckets = {"LSTM GEMMs (rnn_ops._gemm)": 0.0}
    cum = {}
    for (fname, _, func), (_, _, tt, ct, _) in st.stats.items():
        in_rnn_ops = f"rnn_ops{os.sep}" in fname
        if in_rnn_ops and func == "_gemm":
            buckets["LSTM GEMMs (rnn_ops._gemm)"] += tt
        if in_rnn_ops and func in ("_lstm_sequence", "_lstm_sequence_vjp"):
            cum[func] = ct
    lstm_total = sum(cum.values())
    buckets["LSTM op, not GEMM (gate math, BPTT bookkeeping)"] = \
        lstm_total - buckets["LSTM GEMMs (rnn_ops._gemm)"]
    buckets["outside the LSTM op (embedding, Adam, Dense, loss, framework)"] = \
        total - lstm_total
    rows = sorted(((tt, f"{os.path.basename(fn)}:{ln}({func})")
                   for (fn, ln, func), (_, _, tt, _, _) in st.stats.items()), reverse=True)
    return total, buckets, rows[:12]


def phases(kind, steps, rounds):
    """Print per-phase ms per training step, modelkit and torch alternating (see --phases)."""
    import collections

    import modelkit
    from modelkit.backend import OPS

    bench = RnnBench(kind, steps)
    modelkit.initializers.set_random_seed(0)
    mk = bench.build_modelkit()
    x, y = bench.data(BATCH * steps)
    tm, opt = bench.build_torch(mk)
    acc, tacc = collections.defaultdict(float), collections.defaultdict(float)

    timed = _timer(acc)

    for name, label in ((f"{kind}_sequence", kind.upper()), ("gather", "embedding")):
        opdef = OPS.get(name)
        opdef.forward = timed(opdef.forward, f"{label} forward")
        opdef.vjp = timed(opdef.vjp, f"{label} backward")
    mk.optimizer.apply_gradients = timed(mk.optimizer.apply_gradients, "optimizer")

    def batches():
        for s in range(steps):
            yield x[s * BATCH:(s + 1) * BATCH], y[s * BATCH:(s + 1) * BATCH]

    def torch_epoch():
        for xb, yb in batches():
            xt, yt = bench.torch_inputs(xb, yb)
            bench.before_torch_step(opt)
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = bench.torch_loss(tm(xt), yt)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            tacc["forward"] += t1 - t0
            tacc["backward"] += t2 - t1
            tacc["optimizer"] += t3 - t2

    mk.fit(x[:2 * BATCH], y[:2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)
    torch_epoch()
    print(f"{bench.name}: ms per training step, both frameworks in this process, alternating")
    for r in range(rounds):
        acc.clear()
        tacc.clear()
        t0 = time.perf_counter()
        for xb, yb in batches():
            mk.train_on_batch(xb, yb)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        torch_epoch()
        ttotal = time.perf_counter() - t0
        parts = ", ".join(f"{k} {v / steps * 1e3:.1f}" for k, v in acc.items())
        print(f"  round {r + 1}: modelkit {total / steps * 1e3:5.1f}: {parts}, rest "
              f"{(total - sum(acc.values())) / steps * 1e3:.1f}")
        parts = ", ".join(f"{k} {v / steps * 1e3:.1f}" for k, v in tacc.items())
        print(f"           torch    {ttotal / steps * 1e3:5.1f}: {parts}, rest "
              f"{(ttotal - sum(tacc.values())) / steps * 1e3:.1f}   (ratio {ttotal / total:.2f})")


def main():
    if vs_torch.main_hook(lambda: RnnBench(vs_torch.arg("--model", "lstm"),
                                           int(vs_torch.arg("--steps", 30)))):
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps to time")
    parser.add_argument("--profile-steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (best is shown)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads (default: the library's own choice)")
    parser.add_argument("--model", choices=("lstm", "gru"), default="lstm")
    vs_torch.add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=5, help="--vs-torch: timed rounds")
    parser.add_argument("--phases", action="store_true",
                        help="per-phase times of a training step, modelkit and torch "
                             "(needs torch)")
    args = parser.parse_args()
    if args.phases:
        try:
            import torch  # noqa: F401
        except ImportError:
            parser.error("--phases needs PyTorch (install it in a scratch environment)")
        phases(args.model, args.steps, args.rounds)
        return
    if args.vs_torch:
        vs_torch.run(args, RnnBench(args.model, args.steps), args.rounds, ("model", "steps"))
        return
    if args.model != "lstm":
        parser.error("--model gru is measured with --vs-torch")

    import modelkit
    modelkit.initializers.set_random_seed(0)
    print(f"BLAS threads: {args.blas_threads or 'library default'}; "
          f"{os.cpu_count()} CPUs visible")
    rng = np.random.default_rng(0)
    n = BATCH * args.steps
    x = rng.integers(1, VOCAB, (n, STEPS_T)).astype(np.int32)
    y = rng.integers(0, 2, (n, 1)).astype(np.float32)
    model = build_model()
    model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, epochs=1, verbose=0)  # warm up

    walls = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        walls.append(time.perf_counter() - t0)
    wall = min(walls)
    print(f"modelkit LSTM training: {n / wall:,.0f} samples/s "
          f"({wall / args.steps * 1e3:.1f} ms per batch of {BATCH}; best of {args.repeats} "
          f"epochs of {args.steps} steps, median {n / np.median(walls):,.0f} samples/s)")

    total, buckets = timed_steps(model, x, y, args.profile_steps)
    print(f"\nwhere a training step's time goes (wall-clock timers, {args.profile_steps} steps, "
          f"{total / args.profile_steps * 1e3:.1f} ms/step):")
    for k, v in buckets.items():
        print(f"  {v / total:6.1%}  {k}")
    total, buckets, top = profile_steps(model, x, y, args.profile_steps)
    print(f"\nthe same by cProfile ({total / args.profile_steps * 1e3:.1f} ms/step under the "
          "profiler):")
    for k, v in buckets.items():
        print(f"  {v / total:6.1%}  {k}")
    print("  top functions by own time:")
    for tt, name in top:
        print(f"    {tt / total:6.1%}  {name}")

    rounds = compare_with_numpy(model)
    op_time = min(r[0] for r in rounds)
    op_gemm_time = min(r[1] for r in rounds)
    ref = min(r[2] for r in rounds)
    ratios = [r[2] / r[0] for r in rounds]
    flops = lstm_flops()
    print(f"\nfused LSTM op, forward + backward, batch {BATCH} x {STEPS_T} steps, "
          f"{EMBED} -> {UNITS} units ({flops / 1e9:.2f} GFLOP of GEMMs), best of "
          f"{len(rounds)} interleaved rounds:")
    print(f"  op wall time           {op_time * 1e3:8.1f} ms  -> {flops / op_time / 1e9:6.1f} "
          "GFLOP/s effective")
    print(f"  its GEMMs, summed      {op_gemm_time * 1e3:8.1f} ms  -> "
          f"{flops / op_gemm_time / 1e9:6.1f} GFLOP/s  (both threads: the worker's GEMMs "
          "overlap the recurrence)")
    print(f"  numpy, same GEMMs bare {ref * 1e3:8.1f} ms  -> {flops / ref / 1e9:6.1f} GFLOP/s")
    print(f"  GEMM-rate ratio (numpy time / op time): best {ref / op_time:.2f}, median of "
          f"rounds {np.median(ratios):.2f}  (goal >= 0.5)")
    print(f"  GEMM time summed over threads / op wall time: {op_gemm_time / op_time:.0%} "
          "(over 100%: the worker thread's GEMMs overlap the recurrence)")

if __name__ == "__main__":
    main()

"""Side-by-side training benchmarks against PyTorch (`--vs-torch` in the train_* scripts).

PyTorch is never a dependency of modelkit: it is imported only here, only when a benchmark
runs with `--vs-torch` (install it in a scratch environment: `pip install torch`).

A benchmark describes itself as a `Bench`: how to build the modelkit model, how to build
the identical PyTorch model from the modelkit model's weights (Keras -> torch layouts: dense
kernels transposed, conv kernels (kh, kw, in, out) -> (out, in, kh, kw), RNN gate blocks
reordered), its data, and one PyTorch training step. `compare(bench)` then

1. checks that both frameworks run the same computation: two fresh models with the same
   initial weights (dropout off) train on the same batches, and the loss after every step
   is printed side by side (the largest relative difference must stay small);
2. times whole epochs, alternating modelkit (in this process) and PyTorch (in a child
   process this one drives epoch by epoch, so that modelkit's process-wide malloc tuning
   and thread pools leave torch as its users run it; `--same-process` keeps both here), so
   both see the same machine (this one is shared: single timings swing, ratios of
   neighbours do not), and prints samples/s of each, the ratio per round and its median;
3. measures the peak resident memory of one training epoch for each framework in its own
   child process (`ru_maxrss` mixes both otherwise): the child builds the model, loads the
   data, then resets the kernel's high-water mark (/proc/self/clear_refs) and trains one
   epoch; it reports the RSS before the epoch and the peak during it.
"""

import json
import os
import subprocess
import sys
import time


def pin_threads(argv=None):
    """`--threads N`: pin BLAS/OpenMP/onnxruntime and torch to N threads (done when this module is
    imported, so import it before numpy; torch is pinned in `compare`)."""
    argv = sys.argv if argv is None else argv
    if "--threads" in argv:
        n = argv[argv.index("--threads") + 1]
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "MODELKIT_NUM_THREADS"):
            os.environ[var] = n


pin_threads()

import numpy as np  # noqa: E402  (after the thread count is pinned)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


class Bench:
    """What a benchmark provides; see the module docstring. Subclasses set `name`,
    `batch`, `steps` and implement the methods."""

    name = "?"
    batch = 64
    steps = 20
    script = None            # path of the benchmark script (children re-run it)

    def data(self, n):
        """(x, y) numpy arrays with n samples (deterministic)."""
        raise NotImplementedError

    def build_modelkit(self, dropout=True):
        """A compiled modelkit model (dropout layers at rate 0 when dropout=False)."""
        raise NotImplementedError

    def build_torch(self, mk_model, dropout=True):
        """(torch module, torch optimizer) with mk_model's weights."""
        raise NotImplementedError

    def torch_loss(self, out, y):
        raise NotImplementedError

    def before_torch_step(self, opt):
        """Hook run before every torch step (e.g. to match Keras's Adam epsilon)."""

    def torch_inputs(self, x, y):
        """numpy batch -> torch tensors (override for integer inputs etc.)."""
        import torch
        return torch.from_numpy(x), torch.from_numpy(y)


def torch_step(bench, model, opt, xb, yb):
    bench.before_torch_step(opt)
    opt.zero_grad(set_to_none=True)
    loss = bench.torch_loss(model(xb), yb)
    loss.backward()
    opt.step()
    return loss


def keras_adam_epsilon(opt, epsilon):
    """Make torch.optim.Adam take tf.keras's step: Keras divides by sqrt(v) + eps with the
    bias corrections folded into the learning rate, torch by sqrt(v / (1 - b2^t)) + eps;
    torch's eps = eps / sqrt(1 - b2^t) at step t makes the two identical."""
    t = getattr(opt, "_keras_t", 0) + 1
    opt._keras_t = t
    for group in opt.param_groups:
        group["eps"] = epsilon / np.sqrt(1.0 - group["betas"][1] ** t)


def torch_epoch(bench, model, opt, x, y):
    model.train()
    b = bench.batch
    for i in range(0, len(x), b):
        xb, yb = bench.torch_inputs(x[i:i + b], y[i:i + b])
        loss = torch_step(bench, model, opt, xb, yb)
    return loss.item()


def modelkit_epoch(bench, model, x, y):
    model.fit(x, y, batch_size=bench.batch, epochs=1, verbose=0, shuffle=False)


# ---------------------------------------------------------------------------------------
# weight transfer, Keras layout -> torch layout

def _set(param, array):
    import torch
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def copy_dense(layer, linear, row_perm=None):
    """Dense kernel (in, out) -> Linear weight (out, in); `row_perm` reorders the inputs
    (a Flatten of channels_last maps differs from torch's channels-first flatten)."""
    kernel, bias = layer.get_weights()
    if row_perm is not None:
        kernel = kernel[row_perm]
    _set(linear.weight, kernel.T)
    _set(linear.bias, bias)


def flatten_perm(c, h, w):
    """Row order of a Keras channels_last Flatten for torch's (c, h, w) flatten order."""
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def copy_conv(layer, conv):
    weights = layer.get_weights()
    _set(conv.weight, weights[0].transpose(3, 2, 0, 1))
    if len(weights) > 1:
        _set(conv.bias, weights[1])


def copy_batchnorm(layer, bn):
    gamma, beta, mean, var = layer.get_weights()
    _set(bn.weight, gamma)
    _set(bn.bias, beta)
    _set(bn.running_mean, mean)
    _set(bn.running_var, var)


def copy_embedding(layer, emb):
    _set(emb.weight, layer.get_weights()[0])


def copy_lstm(layer, lstm):
    """Keras gates i, f, c, o == torch's i, f, g, o: transpose, keep the order. Keras has one
    bias; torch's second (bias_hh) is zero and frozen, or the optimizer would move the sum
    of the two twice as fast."""
    kernel, recurrent, bias = layer.get_weights()
    _set(lstm.weight_ih_l0, kernel.T)
    _set(lstm.weight_hh_l0, recurrent.T)
    _set(lstm.bias_ih_l0, bias)
    _set(lstm.bias_hh_l0, np.zeros_like(bias))
    lstm.bias_hh_l0.requires_grad_(False)


def copy_gru(layer, gru):
    """Keras GRU (reset_after=True) gates z, r, h -> torch r, z, n; bias (2, 3u) is
    (input bias, recurrent bias) like torch's bias_ih / bias_hh."""
    kernel, recurrent, bias = layer.get_weights()
    u = recurrent.shape[0]

    def reorder(a):
        return np.concatenate([a[..., u:2 * u], a[..., :u], a[..., 2 * u:]], axis=-1)

    _set(gru.weight_ih_l0, reorder(kernel).T)
    _set(gru.weight_hh_l0, reorder(recurrent).T)
    _set(gru.bias_ih_l0, reorder(bias[0]))
    _set(gru.bias_hh_l0, reorder(bias[1]))


# ---------------------------------------------------------------------------------------
# the three measurements

def loss_agreement(bench, steps=5):
    """Losses of both frameworks after each of `steps` identical training steps."""
    import modelkit
    modelkit.initializers.set_random_seed(1)
    mk = bench.build_modelkit(dropout=False)
    tm, opt = bench.build_torch(mk, dropout=False)
    x, y = bench.data(bench.batch * steps)
    b = bench.batch
    rows = []
    tm.train()
    for s in range(steps):
        sl = slice(s * b, (s + 1) * b)
        lm = mk.train_on_batch(x[sl], y[sl])
        lm = float(lm[0] if isinstance(lm, (list, tuple)) else lm)
        xb, yb = bench.torch_inputs(x[sl], y[sl])
        lt = float(torch_step(bench, tm, opt, xb, yb).detach())
        rows.append((lm, lt))
    return rows


# Pause before each timed epoch: the thread pools of the side that just ran go idle first.
# OpenBLAS's workers spin for a while after a GEMM; straight after a modelkit MLP epoch they
# slowed the torch epoch that followed (same run, alternating rounds with and without the
# pause: torch 8.10 -> 7.65 and 10.11 -> 9.54 ms/step, modelkit unchanged).
SETTLE_S = 0.3


def alternate(bench, rounds, extra_args=(), same_process=False):
    """Alternate one modelkit epoch and one torch epoch `rounds` times (after a warm-up
    of each); -> list of (modelkit seconds, torch seconds, modelkit CPU seconds, torch CPU
    seconds). CPU time (all threads of the process) is steadier than wall time when other
    processes compete for the cores, but counts BLAS threads spinning while they wait.

    Torch trains in a child process (`torch_child`) that the parent drives epoch by epoch,
    so each framework runs as its users run it: modelkit's process-wide malloc tuning
    (backend/allocator.py) would otherwise speed up torch too, and the two thread pools
    would compete between epochs; each epoch starts after a pause (SETTLE_S) that lets the
    other side's idle threads stop spinning. `same_process=True` runs both here."""
    import modelkit
    modelkit.initializers.set_random_seed(0)
    mk = bench.build_modelkit()
    x, y = bench.data(bench.batch * bench.steps)
    w = 2 * bench.batch
    if same_process:
        tm, opt = bench.build_torch(mk)
        torch_epoch(bench, tm, opt, x[:w], y[:w])

        def run_torch():
            t, c = time.perf_counter(), time.process_time()
            torch_epoch(bench, tm, opt, x, y)
            return time.perf_counter() - t, time.process_time() - c
        child = None
    else:
        child = subprocess.Popen([sys.executable, bench.script, "--torch-child"]
                                 + list(extra_args), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, bufsize=1)

        def run_torch():
            child.stdin.write("epoch\n")
            got = json.loads(_child_line(child, "EPOCH "))
            return got["wall"], got["cpu"]
        _child_line(child, "READY")
    modelkit_epoch(bench, mk, x[:w], y[:w])
    times = []
    try:
        for r in range(rounds):
            pair = [0.0, 0.0, 0.0, 0.0]
            order = (0, 1) if r % 2 == 0 else (1, 0)      # neither side always goes first
            for side in order:
                time.sleep(SETTLE_S)
                if side == 0:
                    t, c = time.perf_counter(), time.process_time()
                    modelkit_epoch(bench, mk, x, y)
                    pair[0], pair[2] = time.perf_counter() - t, time.process_time() - c
                else:
                    pair[1], pair[3] = run_torch()
            times.append(tuple(pair))
    finally:
        if child is not None:
            child.stdin.close()
            child.wait(timeout=60)
    return times


def _child_line(child, prefix):
    """The rest of the child's next stdout line starting with `prefix`."""
    for line in child.stdout:
        if line.startswith(prefix):
            return line[len(prefix):]
    raise RuntimeError(f"the torch child exited (status {child.wait()}) before '{prefix}'")


def torch_child(bench):
    """Child process body of `alternate`: build the torch model from the same initial
    weights, warm up, then run one timed epoch per 'epoch' line on stdin."""
    import torch
    import modelkit
    if os.environ.get("MODELKIT_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["MODELKIT_NUM_THREADS"]))
    modelkit.initializers.set_random_seed(0)
    tm, opt = bench.build_torch(bench.build_modelkit())
    x, y = bench.data(bench.batch * bench.steps)
    torch_epoch(bench, tm, opt, x[:2 * bench.batch], y[:2 * bench.batch])
    print("READY", flush=True)
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        t, c = time.perf_counter(), time.process_time()
        torch_epoch(bench, tm, opt, x, y)
        print("EPOCH " + json.dumps({"wall": time.perf_counter() - t,
                                     "cpu": time.process_time() - c}), flush=True)


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_child(bench, side):
    """Child process body: build, load data, reset the peak, train one epoch; print JSON."""
    import modelkit
    modelkit.initializers.set_random_seed(0)
    mk = bench.build_modelkit()
    x, y = bench.data(bench.batch * bench.steps)
    if side == "torch":
        tm, opt = bench.build_torch(mk)
        del mk
        torch_epoch(bench, tm, opt, x[:bench.batch], y[:bench.batch])
    else:
        modelkit_epoch(bench, mk, x[:bench.batch], y[:bench.batch])
    import gc
    gc.collect()
    before = _rss_kib("VmRSS")
    reset = _reset_peak()
    if side == "torch":
        torch_epoch(bench, tm, opt, x, y)
    else:
        modelkit_epoch(bench, mk, x, y)
    peak = _rss_kib("VmHWM")
    print("RSS " + json.dumps({"before_mib": before / 1024, "peak_mib": peak / 1024,
                               "reset": reset}))


def peak_rss(bench, side, extra_args=()):
    """Run the benchmark script as a child measuring `side`; -> dict or None."""
    cmd = [sys.executable, bench.script, "--rss-child", side] + list(extra_args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    for line in res.stdout.splitlines():
        if line.startswith("RSS "):
            return json.loads(line[4:])
    print(f"  (RSS child for {side} failed: {res.stderr.strip()[-400:]})")
    return None


def gemm_rate(n=1024, repeats=5):
    """numpy's float32 GEMM rate (GFLOP/s) on n x n, best of `repeats`: the machine's
    yardstick, printed with every comparison."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def compare(bench, rounds=5, extra_args=(), rss=True, same_process=False):
    """Run the three measurements and print them; returns the median speed ratio."""
    import torch
    if os.environ.get("MODELKIT_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["MODELKIT_NUM_THREADS"]))
    print(f"{bench.name}: batch {bench.batch}, {bench.steps} steps per epoch; torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
          f"numpy float32 GEMM {gemm_rate():.0f} GFLOP/s (1024^3)")
    rows = loss_agreement(bench)
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in rows)
    print("  loss after each of the same training steps (dropout off), modelkit vs torch:")
    print("    " + "  ".join(f"{a:.5f}/{b:.5f}" for a, b in rows))
    print(f"    largest relative difference {worst:.2e}")
    times = alternate(bench, rounds, extra_args, same_process)
    print("  timed epochs, alternating: " + ("both in this process" if same_process else
                                           "torch in its own process, driven from this one"))
    n = bench.batch * bench.steps
    ratios = [t / m for m, t, _, _ in times]
    for i, (m, t, mc, tc) in enumerate(times):
        print(f"  round {i + 1}: modelkit {n / m:8.0f} samples/s   torch {n / t:8.0f} samples/s"
              f"   ratio {t / m:.2f}   (CPU-time ratio {tc / mc:.2f})")
    med = float(np.median(ratios))
    mk_med = n / float(np.median([m for m, _, _, _ in times]))
    t_med = n / float(np.median([t for _, t, _, _ in times]))
    cpu_med = float(np.median([tc / mc for _, _, mc, tc in times]))
    print(f"  median: modelkit {mk_med:.0f} samples/s, torch {t_med:.0f} samples/s, "
          f"ratio (modelkit speed / torch speed) {med:.2f}; CPU-time ratio {cpu_med:.2f}")
    if rss:
        got = {side: peak_rss(bench, side, extra_args) for side in ("modelkit", "torch")}
        for side, r in got.items():
            if r:
                print(f"  peak RSS of one epoch, {side:8s}: {r['peak_mib']:7.0f} MiB "
                      f"(before the epoch {r['before_mib']:.0f} MiB, growth "
                      f"{r['peak_mib'] - r['before_mib']:.0f} MiB)")
    print("  (timings from a shared machine: compare the ratios, not the absolute numbers)")
    return med


def add_arguments(parser):
    """The --vs-torch and --threads options every train_* script shares."""
    parser.add_argument("--vs-torch", action="store_true",
                        help="compare with the identical PyTorch model (needs torch)")
    parser.add_argument("--threads", type=int, default=None,
                        help="pin BLAS, onnxruntime and torch threads (default: theirs)")
    parser.add_argument("--same-process", action="store_true",
                        help="time torch in this process too (default: its own process)")


def run(args, bench, rounds, forward=()):
    """`compare` for a parsed command line; `forward` names the options (dest names) the
    RSS children must see again."""
    extra = []
    for dest in tuple(forward) + ("threads",):
        value = getattr(args, dest)
        if value is not None:
            extra += ["--" + dest.replace("_", "-"), str(value)]
    return compare(bench, rounds=rounds, extra_args=extra,
                   same_process=getattr(args, "same_process", False))


def arg(flag, default):
    """The value after `flag` on the command line (before argparse runs), or `default`."""
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default


def main_hook(bench_factory, argv=None):
    """Handle `--rss-child SIDE` (the child half of `peak_rss`) and `--torch-child` (the
    child half of `alternate`) before anything else; returns True when it did."""
    argv = sys.argv if argv is None else argv
    if "--torch-child" in argv:
        torch_child(bench_factory())
        return True
    if "--rss-child" in argv:
        side = argv[argv.index("--rss-child") + 1]
        rss_child(bench_factory(), side)
        return True
    return False

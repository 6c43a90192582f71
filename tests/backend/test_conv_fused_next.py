"""What an NCHWc conv's session computes for the op after it (conv_fast's "what the next
op reads", asked for through backend/ahead.py): a max pooling of its output, its output's
(or that pooling's) blocked form for the next conv, learnt at the first steps and fused
from then on. The values and every gradient must be the same numbers as with
MODELKIT_AHEAD=0 (the separate MaxPool session and the next conv's own ReorderInput), step
after step."""

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, ahead, array_tags, conv_fast
from modelkit.backend.tape import OPS, apply

CONV, POOL = OPS.get("conv"), OPS.get("pool_max")


@pytest.fixture(autouse=True)
def taken(monkeypatch):
    """Each test learns from scratch; counts the extras readers found computed ahead, by
    kind ("max_pool", "nchwc")."""
    if not conv_fast._block_size():
        pytest.skip("no MLAS NCHWc kernels here")
    monkeypatch.setattr(ahead, "_REQUESTS", {})
    monkeypatch.delenv("MODELKIT_AHEAD", raising=False)
    monkeypatch.setenv("MODELKIT_WINOGRAD", "0")      # the 3x3 convs on MLAS's NCHWc kernel
    count = {"max_pool": 0, "nchwc": 0}
    real = ahead.take

    def counted(x, request):
        got = real(x, request)
        if got is not None:
            kind = request if isinstance(request, str) else request[0]
            count[kind] += 1
        return got
    monkeypatch.setattr(ahead, "take", counted)
    return count


def _params(rng, cin, widths, bias=True):
    ws, bs = [], []
    for cout in widths:
        ws.append((rng.standard_normal((3, 3, cin, cout)) * 0.3).astype(np.float32))
        bs.append((rng.standard_normal(cout) * 0.1).astype(np.float32) if bias else None)
        cin = cout
    return ws, bs


def _net(x, ws, bs, plan, channels_first, relu=True):
    """Run `plan` (conv widths and ("pool", window, strides)) with gradients of all inputs
    and parameters -> (output, gradients)."""
    xv = Variable(x)
    vs = [Variable(w) for w in ws] + [Variable(b) for b in bs if b is not None]
    with GradientTape() as tape:
        h, k = xv, 0
        for step in plan:
            if step[0] == "pool":
                h = apply(POOL, h, pool=step[1], strides=step[2],
                          channels_first=channels_first)
            else:
                args = (h, vs[k]) + ((vs[len(ws) + k],) if bs[k] is not None else ())
                h = apply(CONV, *args, padding=step[1], channels_first=channels_first,
                          relu=relu)
                k += 1
        gy = np.random.default_rng(9).standard_normal(h.shape).astype(np.float32)
    grads = tape.gradient(h, [xv] + vs, output_gradient=gy)
    return h.value, [np.asarray(g) for g in grads]


PLANS = [
    # VGG: conv conv pool conv conv pool
    ((16, 16), [("conv", "same"), ("conv", "same"), ("pool", (2, 2), (2, 2)),
                ("conv", "same"), ("conv", "same"), ("pool", (2, 2), (2, 2))], (16, 16, 32, 32)),
    ((11, 9), [("conv", "valid"), ("conv", "same"), ("pool", (3, 3), (2, 2))], (16, 32)),
    ((10, 12), [("conv", "same"), ("pool", (2, 3), (1, 2)), ("conv", "valid")], (16, 16)),
]


@pytest.mark.parametrize("plan", range(len(PLANS)), ids=str)
@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("relu,bias", [(True, True), (False, False)], ids=["relu", "linear"])
def test_fused_next_gives_the_same_numbers(monkeypatch, taken, plan, channels_first, relu,
                                           bias):
    size, steps, widths = PLANS[plan]
    rng = np.random.default_rng(plan)
    x = rng.standard_normal((3,) + size + (3,)).astype(np.float32)
    if channels_first:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    ws, bs = _params(rng, 3, widths, bias)
    monkeypatch.setenv("MODELKIT_AHEAD", "0")
    want = _net(x, ws, bs, steps, channels_first, relu)
    monkeypatch.delenv("MODELKIT_AHEAD")
    counts = []
    for _ in range(4):      # learns the pool, then the pooled blocked form; fuses both
        before = dict(taken)
        got = _net(x, ws, bs, steps, channels_first, relu)
        counts.append({k: taken[k] - before[k] for k in taken})
        assert np.array_equal(got[0], want[0])
        for a, e in zip(got[1], want[1]):
            assert np.array_equal(a, e)
    pools = sum(s[0] == "pool" for s in steps)
    convs_after = sum(b[0] == "conv" and (a[0] == "conv" or i and steps[i - 1][0] == "conv")
                      for i, (a, b) in enumerate(zip(steps, steps[1:])))
    assert counts[0] == {"max_pool": 0, "nchwc": 0}
    assert counts[2:] == [{"max_pool": pools, "nchwc": convs_after}] * 2


def test_shared_outputs_stay_right_and_untaken_extras_stop(monkeypatch, taken):
    """Four convs of one geometry, one before a pool, one output read by two convs: it
    hands its blocked form to the first only (the second reorders it itself); the numbers
    stay the same throughout. Once the pool is gone its conv stops computing it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    w = Variable((rng.standard_normal((3, 3, 16, 16)) * 0.3).astype(np.float32))

    def conv(h):
        return apply(CONV, h, w, padding="same", channels_first=True, relu=True)

    def run(pool=True):
        with GradientTape():
            h = conv(x)
            a, b = conv(h), conv(h)                   # two readers of h
            c = conv(a)
            if pool:
                c = apply(POOL, c, pool=(2, 2), channels_first=True)
            return c.value, b.value

    monkeypatch.setenv("MODELKIT_AHEAD", "0")
    want = run()
    monkeypatch.delenv("MODELKIT_AHEAD")
    for _ in range(4):
        got = run()
        assert all(np.array_equal(g, e) for g, e in zip(got, want))
    assert taken == {"max_pool": 3, "nchwc": 6}      # from the second step: 1 and 2 a step
    made = []
    real = conv_fast._run_conv
    monkeypatch.setattr(conv_fast, "_run_conv",
                        lambda *a, **k: made.append(k.get("fused")) or real(*a, **k))
    for _ in range(3):
        run(pool=False)
    pools = [sum(f is not None and f.pool is not None for f in made[i:i + 4])
             for i in range(0, 12, 4)]
    assert pools == [1, 0, 0]                          # computed once more, then not


def test_extras_are_matched_by_memory_and_forgotten_when_freed(taken):
    x = np.ones((1, 16, 6, 6), np.float32)
    w = Variable(np.ones((3, 3, 16, 16), np.float32))

    def step(reader):
        with GradientTape():
            y = apply(CONV, x, w, padding="same", channels_first=True, relu=True)
            return y, reader(y.value)

    pool = ("max_pool", (2, 2), (2, 2), False)
    assert step(lambda y: ahead.take(y, pool))[1] is None          # learns
    y, (p, pb) = step(lambda y: ahead.take(y, pool))
    assert pb is None
    assert np.array_equal(p, y.value.reshape(1, 16, 3, 2, 3, 2).max(axis=(3, 5)))
    y, got = step(lambda y: (ahead.take(y.copy(), pool), ahead.take(y[:, :8], pool)))
    assert got == (None, None)
    key = array_tags.key(y.value)
    del y, p, got
    assert key not in ahead._OUTPUTS

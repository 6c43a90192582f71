"""What an NCHWc conv's session computes for the op after it (conv_fast: `pooled`,
`_blocked_input`): a max pooling of its output, its output's (or that pooling's) blocked
form for the next conv, learnt at the first calls and fused from then on. The values and
every gradient must be the same numbers as with MODELKIT_FUSED_NEXT=0 (the separate
MaxPool session and the next conv's own ReorderInput), step after step."""

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, array_tags, conv_fast
from modelkit.backend.tape import OPS, apply

CONV, POOL = OPS.get("conv"), OPS.get("pool_max")


@pytest.fixture(autouse=True)
def fresh_learning(monkeypatch):
    """Each test learns from scratch (what other tests' convs taught or dropped is kept
    aside)."""
    for name in ("_WANTED", "_STATS"):
        monkeypatch.setattr(conv_fast, name, {})
    monkeypatch.setattr(conv_fast, "_DROPPED", set())


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
def test_fused_next_gives_the_same_numbers(monkeypatch, plan, channels_first, relu, bias):
    if not conv_fast._block_size():
        pytest.skip("no MLAS NCHWc kernels here")
    size, steps, widths = PLANS[plan]
    rng = np.random.default_rng(plan)
    x = rng.standard_normal((3,) + size + (3,)).astype(np.float32)
    if channels_first:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    ws, bs = _params(rng, 3, widths, bias)
    monkeypatch.setenv("MODELKIT_FUSED_NEXT", "0")
    want = _net(x, ws, bs, steps, channels_first, relu)
    monkeypatch.setenv("MODELKIT_FUSED_NEXT", "1")
    taken = []
    for _ in range(4):      # learns the pool, then the pooled blocked form; fuses both
        before = {g: list(v) for g, v in conv_fast._STATS.items()}
        got = _net(x, ws, bs, steps, channels_first, relu)
        taken.append(sum(v[1] + v[2] - sum(before.get(g, [0, 0, 0])[1:])
                         for g, v in conv_fast._STATS.items()))
        assert np.array_equal(got[0], want[0])
        for a, e in zip(got[1], want[1]):
            assert np.array_equal(a, e)
    pools = sum(s[0] == "pool" for s in steps)
    convs_after = sum(b[0] == "conv" and (a[0] == "conv" or i and steps[i - 1][0] == "conv")
                      for i, (a, b) in enumerate(zip(steps, steps[1:])))
    assert taken[2:] == [pools + convs_after] * 2     # pooled, blocked handed over


def test_unused_extras_stop_and_shared_outputs_stay_right(monkeypatch):
    """Four convs of one geometry, one before a pool, three before convs, one output read
    by two convs: it hands its blocked form to the first only (the second reorders it
    itself). The fused pool, taken by one conv in four, is dropped for good; the blocked
    forms, taken by two in four, stay. The numbers stay the same throughout."""
    if not conv_fast._block_size():
        pytest.skip("no MLAS NCHWc kernels here")
    monkeypatch.setenv("MODELKIT_FUSED_NEXT", "1")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 16, 16)) * 0.3).astype(np.float32)

    def conv(h):
        return apply(CONV, h, w, padding="same", channels_first=True, relu=True)

    def run():
        h = conv(x)
        a, b = conv(h), conv(h)                       # two readers of h
        return apply(POOL, conv(a), pool=(2, 2), channels_first=True).value, b.value

    monkeypatch.setenv("MODELKIT_FUSED_NEXT", "0")
    want = run()
    monkeypatch.setenv("MODELKIT_FUSED_NEXT", "1")
    for _ in range(12):
        got = run()
        assert all(np.array_equal(g, e) for g, e in zip(got, want))
    geometry = ((2, 16, 8, 8), (16, 16, 3, 3), ((1, 1), (1, 1)), (1, 1), (1, 1), False, True)
    fused = conv_fast._WANTED[geometry]
    assert fused.pool is None and fused.blocked_out


def test_extras_are_matched_by_memory_and_forgotten_when_freed(monkeypatch):
    if not conv_fast._block_size():
        pytest.skip("no MLAS NCHWc kernels here")
    monkeypatch.setenv("MODELKIT_FUSED_NEXT", "1")
    x = np.ones((1, 16, 6, 6), np.float32)
    w = np.ones((3, 3, 16, 16), np.float32)
    y, s = conv_fast.conv(x, w, None, (1, 1), (1, 1), ((1, 1), (1, 1)), (6, 6), True, True)
    assert conv_fast.pooled(y, (2, 2), (2, 2)) is None        # learns
    y, s = conv_fast.conv(x, w, None, (1, 1), (1, 1), ((1, 1), (1, 1)), (6, 6), True, True)
    p = conv_fast.pooled(y, (2, 2), (2, 2))
    assert np.array_equal(p, y.reshape(1, 16, 3, 2, 3, 2).max(axis=(3, 5)))
    assert conv_fast.pooled(y.copy(), (2, 2), (2, 2)) is None
    assert conv_fast.pooled(y[:, :8], (2, 2), (2, 2)) is None
    key = array_tags.key(y)
    del y, s, p
    assert key not in conv_fast._CONV_OUTPUTS

"""The Winograd convolution (native.winograd_conv, F(2x2, 3x3), and its kernel gradient
native.winograd_kernel_grad, F(3x3, 2x2), dispatched by conv_fast for 3x3 stride-1 2D
convolutions with 8+ input channels on AVX-512 CPUs) against the exact numpy path in
float64: forward values (bias, relu), the input gradient (the "full" convolution with the
flipped kernel, pads up to 2) and the kernel and bias gradients; odd and even sizes, uneven
pads, channel counts off the kernels' register blocks, tile rows longer than one vector,
several images per block and parts on two threads."""

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, conv_fast, native
from modelkit.backend.tape import OPS, apply

CONV = OPS.get("conv")

pytestmark = pytest.mark.skipif(not native.winograd_available(),
                                reason="the Winograd kernel needs an AVX-512 CPU and the C "
                                       "kernels built")


def _direct(x, w, bias, pads, relu):
    """float64 reference: x (N, C, H, W), w (O, C, 3, 3), pads ((t, b), (l, r))."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0)) + tuple(pads))
    n, c, hp, wp = xp.shape
    ho, wo = hp - 2, wp - 2
    y = np.zeros((n, w.shape[0], ho, wo))
    for i in range(3):
        for j in range(3):
            y += np.einsum("nchw,oc->nohw", xp[:, :, i:i + ho, j:j + wo], w[:, :, i, j])
    if bias is not None:
        y += bias[None, :, None, None]
    return np.maximum(y, 0) if relu else y


@pytest.mark.parametrize("n, cin, cout, h, w, pads", [
    (2, 8, 8, 6, 6, ((1, 1), (1, 1))),
    (3, 9, 5, 7, 9, ((1, 1), (1, 1))),           # odd sizes, 5 output channels (< 8 rows)
    (2, 16, 13, 5, 40, ((0, 0), (0, 0))),        # 19 tiles a row: two vectors, a tail
    (5, 8, 16, 4, 4, ((2, 2), (2, 2))),          # the input gradient's pads of a valid conv
    (3, 12, 24, 9, 8, ((0, 2), (2, 1))),         # uneven pads
    (11, 8, 8, 3, 3, ((1, 1), (1, 1))),          # many images a block, a short last block
    (1, 32, 32, 28, 28, ((1, 1), (1, 1))),       # VGG's second conv, one image
])
@pytest.mark.parametrize("relu", [False, True])
def test_winograd_conv_matches_direct(n, cin, cout, h, w, pads, relu):
    rng = np.random.default_rng(n * 100 + cin + cout + h)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    k = (rng.standard_normal((cout, cin, 3, 3)) * 0.3).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    want = _direct(x, k, b, pads, relu)
    y = np.full(want.shape, np.nan, np.float32)
    native.winograd_conv(x, native.winograd_filter(k), b, pads, relu, y)
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5 * np.abs(want).max())
    got = conv_fast._winograd(x, k, b, pads, relu, threads=2)[0]        # images in parts
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("n, cin, cout, h, w, pads", [
    (3, 8, 5, 7, 9, ((1, 1), (1, 1))),
    (2, 9, 13, 6, 40, ((0, 0), (0, 0))),
    (5, 12, 8, 5, 5, ((0, 2), (2, 1))),
    (300, 8, 3, 4, 4, ((1, 1), (1, 1))),         # two blocks of images, a short last one
    (2, 32, 32, 28, 28, ((1, 1), (1, 1))),
])
def test_winograd_kernel_gradient_matches_direct(n, cin, cout, h, w, pads):
    rng = np.random.default_rng(n + cin + cout)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    ho, wo = h + sum(pads[0]) - 2, w + sum(pads[1]) - 2
    g = rng.standard_normal((n, cout, ho, wo)).astype(np.float32)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0)) + pads)
    want = np.stack([np.stack([np.einsum("nihw,nohw->io", xp[:, :, a:a + ho, b:b + wo],
                                         g.astype(np.float64)) for b in range(3)])
                     for a in range(3)])
    got = native.winograd_kernel_grad(x, g, pads)
    assert got.shape == (3, 3, cin, cout) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_filter_transforms():
    """U = G g G^T per (o, i) pair, stacked by the 16 (row, column) positions."""
    rng = np.random.default_rng(1)
    k = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    want = np.einsum("ab,oibc,dc->adoi", G, k.astype(np.float64), G).reshape(16, 3, 2)
    np.testing.assert_allclose(native.winograd_filter(k), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("relu", [False, True])
def test_training_gradients_through_winograd_match_exact(monkeypatch, padding, relu):
    """A conv layer's forward and input gradient through Winograd (counted), kernel and bias
    gradients as before: all match the float64 exact path."""
    calls, forms = [], []
    pick = conv_fast._form
    monkeypatch.setattr(conv_fast, "_form", lambda s: forms.append(pick(s).__name__) or pick(s))
    real = native.winograd_conv
    monkeypatch.setattr(native, "winograd_conv", lambda *a: calls.append(a[0].shape) or
                        real(*a))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 10, 11, 8))
    k = rng.standard_normal((3, 3, 8, 16)) * 0.3
    b = rng.standard_normal(16)
    gy = None
    results = []
    for dtype in (np.float32, np.float64):
        xs = [Variable(v.astype(dtype)) for v in (x, k, b)]
        with GradientTape() as tape:
            y = apply(CONV, *xs, strides=(1, 1), dilation=(1, 1), padding=padding,
                      channels_first=False, relu=relu)
        if gy is None:
            gy = rng.standard_normal(y.shape)
        grads = tape.gradient(y, xs, output_gradient=gy.astype(dtype))
        results.append([np.asarray(y.value)] + [np.asarray(g) for g in grads])
        if dtype == np.float32:
            # forward on the images in parts, then the input gradient (16 -> 8 channels)
            assert len(calls) >= 2 and calls[-1][1] == 16
            assert set(forms) == {"_WinogradGrad"}   # the kernel gradient: F(3x3, 2x2)
    for name, a, e in zip(("y", "x", "kernel", "bias"), *results):
        np.testing.assert_allclose(a, e, rtol=0, atol=3e-5 * max(np.abs(e).max(), 1.0),
                                   err_msg=name)


def test_switch_and_shapes_it_leaves_to_mlas(monkeypatch):
    x = np.zeros((2, 8, 6, 6), np.float32)
    w = np.zeros((4, 8, 3, 3), np.float32)
    same = ((1, 1), (1, 1))
    assert conv_fast._winograd_applies(x, w, (1, 1), (1, 1), same)
    assert not conv_fast._winograd_applies(x, w, (2, 2), (1, 1), same)          # strided
    assert not conv_fast._winograd_applies(x, w, (1, 1), (2, 2), same)          # dilated
    assert not conv_fast._winograd_applies(x[:, :4], w[:, :4], (1, 1), (1, 1), same)
    assert not conv_fast._winograd_applies(x, np.zeros((4, 8, 5, 5), np.float32), (1, 1),
                                           (1, 1), same)
    assert not conv_fast._winograd_applies(x, w, (1, 1), (1, 1), ((3, 3), (1, 1)))
    big = np.zeros((1, 64, 224, 224), np.float32)                        # 98 MiB a map
    assert not conv_fast._winograd_applies(big, np.zeros((64, 64, 3, 3), np.float32), (1, 1),
                                           (1, 1), same)
    forms = []
    for cin, cout in ((8, 16), (128, 129)):        # the kernel gradient: up to 256 channels
        xc = np.zeros((2, 6, 6, cin), np.float32)
        _, s = conv_fast.conv(xc, np.zeros((3, 3, cin, cout), np.float32), None, (1, 1),
                              (1, 1), same, (6, 6), False, False)
        forms.append(conv_fast._form(s).__name__)
    assert forms == ["_WinogradGrad", "_Shifted"]
    monkeypatch.setenv("MODELKIT_WINOGRAD", "0")
    assert not conv_fast._winograd_applies(x, w, (1, 1), (1, 1), same)


@pytest.mark.parametrize("h, w", [(10, 38), (10, 14), (6, 4)])   # 19 tiles a row; 7, 2: two
def test_pooled_output_is_the_max_pooling_of_y(h, w):                 # rows a vector, odd count
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, h, w)).astype(np.float32)
    k = (rng.standard_normal((5, 8, 3, 3)) * 0.3).astype(np.float32)
    y = np.empty((3, 5, h, w), np.float32)
    pooled = np.full((3, 5, h // 2, w // 2), np.nan, np.float32)
    native.winograd_conv(x, native.winograd_filter(k), None, ((1, 1), (1, 1)), True, y, pooled)
    np.testing.assert_allclose(y, _direct(x, k, None, ((1, 1), (1, 1)), True), rtol=0,
                               atol=2e-5 * np.abs(y).max())
    want = y.reshape(3, 5, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(pooled, want)
    with pytest.raises(ValueError, match="even sizes"):
        native.winograd_conv(x[:, :, :-1], native.winograd_filter(k), None, ((1, 1), (1, 1)),
                             True, y[:, :, :-1], pooled)


def test_conv_computes_the_max_pooling_after_it_from_the_second_step(monkeypatch):
    """conv(relu) -> MaxPooling 2x2: from the second step on the Winograd conv hands the
    pooling its maxima (ahead.py); values and gradients are those of MODELKIT_AHEAD=0."""
    from modelkit.backend import ahead
    monkeypatch.setattr(ahead, "_REQUESTS", {})
    taken = []
    real = ahead.take
    monkeypatch.setattr(ahead, "take", lambda x, r: (lambda got: taken.append(
        got is not None) or got)(real(x, r)))
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 12, 12, 8)).astype(np.float32)
    k = (rng.standard_normal((3, 3, 8, 16)) * 0.3).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    gy = rng.standard_normal((4, 6, 6, 16)).astype(np.float32)

    def step():
        xs = [Variable(v) for v in (x, k, b)]
        with GradientTape() as tape:
            y = apply(CONV, *xs, strides=(1, 1), dilation=(1, 1), padding="same",
                      channels_first=False, relu=True)
            p = apply(OPS.get("pool_max"), y, pool=(2, 2), strides=(2, 2),
                      padding="valid", channels_first=False)
        grads = tape.gradient(p, xs, output_gradient=gy)
        return [np.asarray(p.value)] + [np.asarray(g) for g in grads]

    got = [step() for _ in range(3)]
    assert any(taken) and taken[-1]
    monkeypatch.setenv("MODELKIT_AHEAD", "0")
    want = step()
    for g in got:
        for a, e in zip(g, want):
            np.testing.assert_array_equal(a, e)

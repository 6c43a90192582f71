"""Conv/pool/upsample backend ops: numeric checks against direct loops, and float64
finite-difference gradient checks of every op in modelkit/backend/conv_ops.py."""

import itertools

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import conv_ops
from modelkit.backend.tape import OPS, apply
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ShapeError

rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


# ---------------------------------------------------------------------------------------
# direct references (nested loops over output positions, only in the tests)


def ref_conv(x, w, b=None, strides=(1, 1), dilation=(1, 1), padding="valid", groups=1):
    """Channels-last 1D/2D convolution by explicit loops (TF padding rules)."""
    n = w.ndim - 2
    pads = conv_ops.conv_pads(x.shape[1:-1], w.shape[:n], strides, dilation, padding)
    xp = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)])
    ksize = w.shape[:n]
    out = [(xp.shape[1 + i] - ((ksize[i] - 1) * dilation[i] + 1)) // strides[i] + 1
           for i in range(n)]
    cg, cout = w.shape[-2], w.shape[-1]
    cog = cout // groups
    y = np.zeros([x.shape[0]] + out + [cout])
    for pos in itertools.product(*(range(o) for o in out)):
        for off in itertools.product(*(range(k) for k in ksize)):
            idx = tuple(p * s + o * d for p, s, o, d in zip(pos, strides, off, dilation))
            v = xp[(slice(None),) + idx]                                  # (N, C)
            for g in range(groups):
                y[(slice(None),) + pos + (slice(g * cog, (g + 1) * cog),)] += \
                    v[:, g * cg:(g + 1) * cg] @ w[off][:, g * cog:(g + 1) * cog]
    if b is not None:
        y += b
    return y


def ref_depthwise(x, w, strides=(1, 1), padding="valid"):
    cin, dm = w.shape[-2:]
    full = np.zeros(w.shape[:-2] + (cin, cin * dm))
    for c in range(cin):
        full[..., c, c * dm:(c + 1) * dm] = w[..., c, :]
    return ref_conv(x, full, strides=strides, padding=padding)


def ref_conv_transpose_2d(x, w, strides, out_shape, pad_before):
    """Scatter each input pixel times the kernel into the output (definition of the adjoint)."""
    n, h, wd, cin = x.shape
    kh, kw, cout, _ = w.shape
    full = ((h - 1) * strides[0] + kh, (wd - 1) * strides[1] + kw)
    ext = (max(full[0], pad_before[0] + out_shape[0]), max(full[1], pad_before[1] + out_shape[1]))
    y = np.zeros((n,) + ext + (cout,))
    for i in range(h):
        for j in range(wd):
            for a in range(kh):
                for b in range(kw):
                    y[:, i * strides[0] + a, j * strides[1] + b, :] += x[:, i, j, :] @ w[a, b].T
    return y[:, pad_before[0]:pad_before[0] + out_shape[0],
             pad_before[1]:pad_before[1] + out_shape[1], :]


def ref_pool(x, pool, strides, padding, kind):
    pads = conv_ops.conv_pads(x.shape[1:-1], pool, strides, (1,) * len(pool), padding)
    n = len(pool)
    out = [(x.shape[1 + i] + sum(pads[i]) - pool[i]) // strides[i] + 1 for i in range(n)]
    y = np.zeros([x.shape[0]] + out + [x.shape[-1]])
    for pos in itertools.product(*(range(o) for o in out)):
        sl = []
        for i, p in enumerate(pos):
            lo = p * strides[i] - pads[i][0]
            sl.append(slice(max(lo, 0), min(lo + pool[i], x.shape[1 + i])))
        win = x[(slice(None),) + tuple(sl)]
        axes = tuple(range(1, 1 + n))
        y[(slice(None),) + pos] = win.max(axis=axes) if kind == "max" else win.mean(axis=axes)
    return y


# ---------------------------------------------------------------------------------------
# forward numerics

CONV_ROWS = [
    # (x shape, kernel shape, strides, dilation, padding, groups)
    ((2, 7, 3), (3, 3, 4), (1,), (1,), "valid", 1),
    ((2, 7, 3), (3, 3, 4), (2,), (1,), "same", 1),
    ((2, 8, 2), (3, 2, 4), (1,), (2,), "causal", 1),
    ((2, 6, 4), (2, 2, 6), (1,), (1,), "same", 2),
    ((2, 6, 5, 3), (3, 3, 3, 4), (1, 1), (1, 1), "valid", 1),
    ((2, 6, 5, 3), (3, 2, 3, 4), (2, 2), (1, 1), "same", 1),
    ((1, 4, 4, 1), (3, 3, 1, 1), (3, 3), (1, 1), "same", 1),
    ((2, 7, 7, 2), (3, 3, 2, 3), (1, 1), (2, 2), "same", 1),
    ((2, 5, 6, 4), (3, 3, 2, 6), (2, 1), (1, 1), "valid", 2),
    ((1, 5, 5, 2), (4, 4, 2, 2), (3, 3), (1, 1), "same", 1),
]


@pytest.mark.parametrize("row", CONV_ROWS, ids=[str(i) for i in range(len(CONV_ROWS))])
@pytest.mark.parametrize("channels_first", [False, True])
def test_conv_matches_loops(row, channels_first):
    xs, ws, st, dil, pad, groups = row
    x, w, b = r(*xs), r(*ws), r(ws[-1])
    want = ref_conv(x, w, b, st, dil, pad, groups)
    xin = np.moveaxis(x, -1, 1) if channels_first else x
    got = apply(OPS.get("conv"), xin, w, b, strides=st, dilation=dil, padding=pad,
                groups=groups, channels_first=channels_first).value
    if channels_first:
        got = np.moveaxis(got, 1, -1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("xs,ks,st,pad", [((2, 6, 6, 3), (3, 3, 3, 2), (1, 1), "valid"),
                                          ((2, 5, 6, 2), (3, 3, 2, 1), (2, 2), "same"),
                                          ((2, 7, 3), (3, 3, 2), (2,), "same")])
def test_depthwise_matches_grouped_conv_reference(xs, ks, st, pad):
    x, w = r(*xs), r(*ks)
    got = apply(OPS.get("depthwise_conv"), x, w, strides=st, padding=pad).value
    np.testing.assert_allclose(got, ref_depthwise(x, w, st, pad), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("xs,ks,st,out,pb", [((2, 3, 4, 2), (3, 3, 5, 2), (2, 2), (6, 8), (0, 0)),
                                             ((2, 3, 3, 2), (3, 3, 4, 2), (2, 2), (7, 7), (0, 0)),
                                             ((1, 3, 3, 2), (3, 2, 2, 2), (1, 2), (3, 6), (1, 0)),
                                             ((1, 2, 2, 1), (2, 2, 1, 1), (3, 3), (6, 6), (0, 0))])
def test_conv_transpose_matches_scatter_definition(xs, ks, st, out, pb):
    x, w = r(*xs), r(*ks)
    got = apply(OPS.get("conv_transpose"), x, w, strides=st, output_shape=out,
                pad_before=pb).value
    np.testing.assert_allclose(got, ref_conv_transpose_2d(x, w, st, out, pb), rtol=1e-10,
                               atol=1e-12)


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> for 'same' padding with stride 2."""
    x, w, y = r(2, 6, 5, 3), r(3, 3, 3, 4), r(2, 3, 3, 4)
    cx = apply(OPS.get("conv"), x, w, strides=(2, 2), padding="same").value
    pads = conv_ops.conv_pads((6, 5), (3, 3), (2, 2), (1, 1), "same")
    ty = apply(OPS.get("conv_transpose"), y, w, strides=(2, 2),
               output_shape=(6, 5), pad_before=tuple(p[0] for p in pads)).value
    np.testing.assert_allclose(np.sum(cx * y), np.sum(x * ty), rtol=1e-10)


POOL_ROWS = [((2, 6, 6, 3), (2, 2), (2, 2), "valid"), ((2, 5, 7, 2), (3, 3), (2, 2), "same"),
             ((2, 5, 5, 2), (2, 2), (1, 1), "valid"), ((2, 7, 3), (2,), (2,), "same"),
             ((1, 4, 4, 1), (3, 2), (1, 3), "same")]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("row", POOL_ROWS, ids=[str(i) for i in range(len(POOL_ROWS))])
@pytest.mark.parametrize("channels_first", [False, True])
def test_pool_matches_loops(kind, row, channels_first):
    xs, pool, st, pad = row
    x = r(*xs)
    xin = np.moveaxis(x, -1, 1) if channels_first else x
    got = apply(OPS.get(f"pool_{kind}"), xin, pool=pool, strides=st, padding=pad,
                channels_first=channels_first).value
    if channels_first:
        got = np.moveaxis(got, 1, -1)
    np.testing.assert_allclose(got, ref_pool(x, pool, st, pad, kind), rtol=1e-12)


def test_max_pool_gradient_goes_to_first_maximum_like_tf():
    x = np.zeros((1, 2, 2, 1))
    with K.GradientTape() as tape:
        v = K.variable(x, dtype="float64")
        y = apply(OPS.get("pool_max"), v, pool=(2, 2), strides=(2, 2))
    g = tape.gradient(y, v)
    np.testing.assert_array_equal(g[0, :, :, 0], [[1, 0], [0, 0]])


def test_upsample_nearest_matches_repeat():
    x = r(2, 3, 4, 2)
    got = apply(OPS.get("upsample_nearest"), x, axes=(1, 2), sizes=(2, 3)).value
    np.testing.assert_array_equal(got, np.repeat(np.repeat(x, 2, axis=1), 3, axis=2))


def test_bilinear_matrix_matches_half_pixel_formula():
    # TF2 resize bilinear, 2 -> 4: sources -0.25, 0.25, 0.75, 1.25 clamped to [0, 1]
    np.testing.assert_allclose(conv_ops.bilinear_matrix(2, 4),
                               [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])


def test_conv_rejects_mismatched_channels_and_small_inputs():
    with pytest.raises(ShapeError, match="channels"):
        apply(OPS.get("conv"), r(1, 5, 5, 3), r(3, 3, 2, 4))
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        apply(OPS.get("conv"), r(1, 2, 5, 2), r(3, 3, 2, 4))


def test_conv_output_length_helpers_match_keras():
    assert conv_ops.conv_output_length(7, 3, "same", 2) == 4
    assert conv_ops.conv_output_length(7, 3, "valid", 2) == 3
    assert conv_ops.conv_output_length(10, 3, "causal", 1, 2) == 10
    assert conv_ops.conv_output_length(None, 3, "valid", 1) is None
    assert conv_ops.deconv_output_length(4, 3, "same", None, 2) == 8
    assert conv_ops.deconv_output_length(4, 3, "valid", None, 2) == 9
    assert conv_ops.deconv_output_length(4, 1, "valid", None, 3) == 12
    assert conv_ops.deconv_output_length(4, 3, "same", 1, 2) == 8
    assert conv_ops.same_pads(4, 3, 3, 1) == (1, 1)
    assert conv_ops.same_pads(4, 2, 1, 1) == (0, 1)     # the odd pixel goes at the end
    assert conv_ops.same_pads(5, 4, 1, 1) == (1, 2)


# ---------------------------------------------------------------------------------------
# float64 finite-difference gradient checks (one row per op configuration)

def op(name, **attrs):
    def fn(*a):
        return apply(OPS.get(name), *a, **attrs)
    fn.op_name = name
    return fn


GRAD_CASES = {
    "conv2d_same_stride2": (op("conv", strides=(2, 2), padding="same"),
                            [r(2, 5, 4, 3), r(3, 3, 3, 2), r(2)]),
    "conv2d_valid_dilated": (op("conv", dilation=(2, 1), padding="valid"),
                             [r(1, 6, 4, 2), r(2, 2, 2, 3), r(3)]),
    "conv2d_groups": (op("conv", groups=2, padding="same"), [r(1, 4, 4, 4), r(2, 2, 2, 4), r(4)]),
    "conv2d_channels_first": (op("conv", strides=(1, 2), padding="same", channels_first=True),
                              [r(2, 3, 4, 5), r(3, 3, 3, 2), r(2)]),
    "conv2d_fused_relu": (op("conv", padding="same", relu=True),
                          [r(2, 4, 4, 2), r(3, 3, 2, 3), r(3)]),
    "conv2d_fused_relu_cf": (op("conv", padding="valid", relu=True, channels_first=True),
                             [r(2, 2, 4, 4), r(2, 2, 2, 3), r(3)]),
    "conv2d_no_bias": (op("conv", padding="valid"), [r(1, 4, 4, 2), r(2, 2, 2, 2)]),
    "conv1d_causal": (op("conv", dilation=(2,), padding="causal"), [r(2, 6, 2), r(3, 2, 3), r(3)]),
    "conv_transpose2d": (op("conv_transpose", strides=(2, 2), output_shape=(6, 5),
                            pad_before=(1, 0)), [r(1, 3, 3, 2), r(3, 2, 2, 2), r(2)]),
    "conv_transpose2d_cf": (op("conv_transpose", strides=(2, 1), channels_first=True),
                            [r(1, 2, 3, 2), r(2, 3, 3, 2), r(3)]),
    "depthwise_conv2d": (op("depthwise_conv", strides=(2, 1), padding="same"),
                         [r(2, 5, 4, 2), r(3, 3, 2, 2), r(4)]),
    "depthwise_conv2d_cf": (op("depthwise_conv", padding="valid", channels_first=True),
                            [r(1, 3, 4, 4), r(2, 2, 3, 1), r(3)]),
    "pool_max_same": (op("pool_max", pool=(3, 3), strides=(2, 2), padding="same"),
                      [rng.permutation(2 * 5 * 5 * 2).reshape(2, 5, 5, 2) * 0.1]),
    "pool_max_overlap_cf": (op("pool_max", pool=(2, 2), strides=(1, 1), channels_first=True),
                            [rng.permutation(2 * 4 * 4 * 2).reshape(2, 2, 4, 4) * 0.1]),
    "pool_avg_same": (op("pool_avg", pool=(2, 3), strides=(2, 2), padding="same"),
                      [r(2, 5, 5, 2)]),
    "pool_avg_1d": (op("pool_avg", pool=(2,), strides=(1,)), [r(2, 5, 3)]),
    "upsample_nearest": (op("upsample_nearest", axes=(1, 2), sizes=(2, 3)), [r(2, 2, 3, 2)]),
    "upsample_bilinear": (op("upsample_bilinear", axes=(2, 3), sizes=(2, 3)), [r(1, 2, 3, 2)]),
}


@pytest.fixture
def float64():
    K.set_floatx("float64")
    yield
    K.set_floatx("float32")


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradient_matches_finite_differences(name, float64):
    fn, arrays = GRAD_CASES[name]
    assert_gradients_close(fn, arrays, rtol=1e-5, atol=1e-6)


def test_every_conv_op_has_a_gradient_check():
    mine = {n for n in OPS.names() if OPS.get(n).forward.__module__ == conv_ops.__name__}
    covered = {fn.op_name for fn, _ in GRAD_CASES.values()}
    assert mine and mine <= covered, f"conv ops without a gradient check: {mine - covered}"

"""modelkit.preprocessing.image transforms against keras_preprocessing 1.1 + scipy fixtures.

modelkit resamples in numpy; Keras calls scipy.ndimage.affine_transform. Both interpolate in
float64 and store float32, so they agree to float32 rounding (checked at 1e-4 on 0..255 data).
"""

import json
import os

import numpy as np
import pytest

from modelkit.errors import ConfigError, ModelkitError, ShapeError
from modelkit.preprocessing import image
from modelkit.preprocessing.image.resample import affine_resample

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "preprocessing")
REF = np.load(os.path.join(FIXTURES, "image_affine.npz"))

CASES = json.loads(str(REF["cases"]))
AFFINE_PARAMS, FILLS = CASES["affine_params"], CASES["fills"]
ATOL = 1e-4   # float32 rounding of values up to 255


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fill", range(len(FILLS)), ids=[f"{m}{c}" for m, c in FILLS])
@pytest.mark.parametrize("pi", range(len(AFFINE_PARAMS)), ids=[str(p) for p in AFFINE_PARAMS])
def test_apply_affine_transform_equals_keras(pi, fill, order):
    mode, cval = FILLS[fill]
    out = image.apply_affine_transform(REF["x"], **AFFINE_PARAMS[pi], fill_mode=mode, cval=cval,
                                       order=order)
    expected = REF[f"last_{pi}_{fill}_{order}"]
    assert out.dtype == np.float32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("pi", range(len(AFFINE_PARAMS)))
def test_apply_affine_transform_channels_first_equals_keras(pi):
    xf = np.transpose(REF["x"], (2, 0, 1))
    out = image.apply_affine_transform(xf, **AFFINE_PARAMS[pi], row_axis=1, col_axis=2,
                                       channel_axis=0, fill_mode="reflect")
    np.testing.assert_allclose(out, REF[f"first_{pi}"], rtol=0, atol=ATOL)


def test_random_functions_draw_and_transform_as_keras():
    x = REF["x"]
    axes = {"row_axis": 0, "col_axis": 1, "channel_axis": 2}
    np.random.seed(3)
    outs = {
        "random_rotation": image.random_rotation(x, 40, **axes),
        "random_shift": image.random_shift(x, 0.2, 0.3, **axes, fill_mode="wrap"),
        "random_shear": image.random_shear(x, 25, **axes, fill_mode="constant", cval=7),
        "random_zoom": image.random_zoom(x, (0.6, 1.4), **axes, fill_mode="reflect"),
        "random_channel_shift": image.random_channel_shift(x, 50.0, 2),
        "random_brightness": image.random_brightness(x, (0.5, 1.5)),
    }
    xf = np.transpose(x, (2, 0, 1))
    outs["random_rotation_first"] = image.random_rotation(xf, 40)
    outs["random_shift_first"] = image.random_shift(xf, 0.2, 0.3)
    outs["random_shear_first"] = image.random_shear(xf, 25)
    outs["random_zoom_first"] = image.random_zoom(xf, (0.6, 1.4))
    for name, out in outs.items():
        np.testing.assert_allclose(out, REF[name], rtol=0, atol=ATOL, err_msg=name)
    np.testing.assert_array_equal(np.random.uniform(size=3), REF["after_draws"])
    np.testing.assert_array_equal(image.flip_axis(x, 1), REF["flip_axis_1"])
    np.testing.assert_allclose(image.apply_channel_shift(np.transpose(x, (2, 0, 1)), 80.0, 0),
                               REF["channel_shift_first"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", ["constant", "nearest", "reflect", "wrap"])
def test_resample_equals_scipy_far_outside_the_image(mode, order):
    # coordinates reach several periods beyond the 6x7 input on every side
    out = affine_resample(REF["probe"][None], REF["probe_matrix"], REF["probe_offset"],
                          order=order, mode=mode, cval=-7.0)
    np.testing.assert_allclose(out[0], REF[f"probe_{mode}_{order}"], rtol=0, atol=1e-12)


def test_identity_transform_returns_the_input_and_quarter_turn_is_a_permutation():
    x = REF["x"]
    assert image.apply_affine_transform(x) is x
    # Keras turns about (h/2 + 0.5, w/2 + 0.5): for 5x5 that is (3, 3), so output (i, j)
    # reads input row 6 - j (clamped to 4 by 'nearest'), column i; whole pixels, exact
    sq = np.arange(25, dtype="float32").reshape(5, 5, 1)
    out = image.apply_affine_transform(sq, theta=90, order=1)
    expected = [[sq[min(6 - j, 4), i, 0] for j in range(5)] for i in range(5)]
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-5)


def test_resample_against_direct_bilinear_formula():
    rs = np.random.RandomState(4)
    img = rs.rand(1, 6, 5)
    m = np.array([[0.9, 0.2], [-0.1, 1.1]])
    off = np.array([0.3, -0.4])
    out = affine_resample(img, m, off, order=1, mode="nearest")
    for i in range(6):
        for j in range(5):
            r = np.clip(m[0, 0] * i + m[0, 1] * j + off[0], 0, 5)
            c = np.clip(m[1, 0] * i + m[1, 1] * j + off[1], 0, 4)
            r0, c0 = int(np.floor(r)), int(np.floor(c))
            r1, c1 = min(r0 + 1, 5), min(c0 + 1, 4)
            tr, tc = r - r0, c - c0
            v = ((1 - tr) * (1 - tc) * img[0, r0, c0] + (1 - tr) * tc * img[0, r0, c1]
                 + tr * (1 - tc) * img[0, r1, c0] + tr * tc * img[0, r1, c1])
            assert out[0, i, j] == pytest.approx(v, abs=1e-12)


def test_integer_images_are_rounded_as_scipy_does():
    img = np.array([[[0, 10], [20, 30]]], dtype=np.uint8)
    out = affine_resample(img, np.eye(2), [0.25, 0.25], order=1, mode="nearest")
    assert out.dtype == np.uint8
    # (0*.75+10*.25)*.75 + (20*.75+30*.25)*.25 = 7.5 -> 8 (half away from zero)
    assert out[0, 0, 0] == 8


def test_transform_errors_name_the_problem():
    with pytest.raises(ConfigError, match="fill_mode 'mirror'"):
        image.apply_affine_transform(REF["x"], theta=10, fill_mode="mirror")
    with pytest.raises(ConfigError, match="order 3"):
        image.apply_affine_transform(REF["x"], theta=10, order=3)
    with pytest.raises(ShapeError, match="rank 3"):
        image.apply_affine_transform(REF["x"][0], theta=10)
    with pytest.raises(ModelkitError, match="zoom_range"):
        image.random_zoom(REF["x"], (0.5,))
    with pytest.raises(ValueError, match="brightness_range"):
        image.random_brightness(REF["x"], 0.5)

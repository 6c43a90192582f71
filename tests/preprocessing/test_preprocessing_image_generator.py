"""ImageDataGenerator against keras_preprocessing 1.1 fixtures: random draws, transforms,
flow batches (seeded and by global seed), fit statistics, standardize, subsets."""

import json
import os

import numpy as np
import pytest

from modelkit.errors import ConfigError, ModelkitError, ShapeError
from modelkit.preprocessing.image import ImageDataGenerator, NumpyArrayIterator
from modelkit.utils import Sequence

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "preprocessing")
REF = np.load(os.path.join(FIXTURES, "image_generator.npz"))
ATOL = 1e-4

CASES = json.loads(str(REF["cases"]))
GENERATOR_CASES, FIT_CASES = CASES["generator"], CASES["fit"]


def _images():
    return REF["x"], REF["y"]


def _fmt(x, data_format):
    return x if data_format != "channels_first" else np.transpose(x, (0, 3, 1, 2))


def _close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=ATOL, err_msg=what)


@pytest.mark.filterwarnings("ignore:This ImageDataGenerator")
@pytest.mark.parametrize("ci", range(len(GENERATOR_CASES)),
                         ids=[str(c) for c in GENERATOR_CASES])
def test_generator_draws_transforms_and_batches_equal_keras(ci):
    kw = GENERATOR_CASES[ci]
    gen = ImageDataGenerator(**kw)
    x, y = _images()
    xs = _fmt(x, kw.get("data_format"))
    params = gen.get_random_transform(xs[0].shape, seed=11)
    expected = json.loads(str(REF[f"gen{ci}_params"]))
    for key, value in expected.items():
        if value is None:
            assert params[key] is None, key
        else:
            assert float(params[key]) == pytest.approx(value, rel=1e-12), key
    _close(gen.random_transform(xs[1], seed=11), REF[f"gen{ci}_random_transform"], "random")
    it = gen.flow(xs, y, batch_size=4, seed=21)
    assert isinstance(it, Sequence) and isinstance(it, NumpyArrayIterator) and len(it) == 2
    for b in (0, 1):
        bx, by = it[b]
        _close(bx, REF[f"gen{ci}_flow_x{b}"], f"flow x{b}")
        np.testing.assert_array_equal(by, REF[f"gen{ci}_flow_y{b}"])
    np.random.seed(4)
    it = gen.flow(xs, batch_size=5, shuffle=True)
    _close(next(it), REF[f"gen{ci}_next0"], "next 0")
    _close(next(it), REF[f"gen{ci}_next1"], "next 1")


@pytest.mark.filterwarnings("ignore:This ImageDataGenerator")
@pytest.mark.parametrize("ci", range(len(FIT_CASES)), ids=[str(c) for c in FIT_CASES])
def test_fit_statistics_and_standardize_equal_keras(ci):
    kw = FIT_CASES[ci]
    gen = ImageDataGenerator(**kw)
    x, _ = _images()
    xs = _fmt(x, kw.get("data_format"))
    gen.fit(xs, augment=kw.get("rotation_range") is not None, rounds=2, seed=8)
    for attr in ("mean", "std"):
        key = f"fit{ci}_{attr}"
        if key in REF:
            _close(getattr(gen, attr), REF[key], attr)
        else:
            assert getattr(gen, attr) is None
    batch = np.copy(xs[:2])
    _close(gen.standardize(batch), REF[f"fit{ci}_standardize"], "standardize")


def test_zca_whitening_decorrelates_the_fitted_data():
    rs = np.random.RandomState(0)
    base = rs.rand(40, 2, 2, 1).astype("float32")
    x = np.concatenate([base, base * 0.5 + 0.1 * rs.rand(40, 2, 2, 1), rs.rand(40, 2, 2, 1)],
                       axis=3)
    with pytest.warns(UserWarning, match="overrides setting of `featurewise_center`"):
        gen = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e-9)
    gen.fit(x)
    white = gen.standardize(np.copy(x)).reshape(40, -1).astype(np.float64)
    cov = white.T @ white / 40
    np.testing.assert_allclose(cov, np.eye(12), atol=2e-3)


def test_flow_subsets_misc_inputs_and_sample_weights_equal_keras():
    x, _ = _images()
    y = np.array([0, 1, 2, 0, 1, 2])
    w = np.arange(6, dtype="float32") / 2
    misc = np.arange(12).reshape(6, 2)
    gen = ImageDataGenerator(validation_split=0.5, horizontal_flip=True)
    for subset in ("training", "validation"):
        it = gen.flow((x, misc), y, batch_size=2, sample_weight=w, seed=3, subset=subset)
        assert len(it) == REF[f"subset_{subset}"][0]
        (bx, bm), by, bw = it[1]
        _close(bx, REF[f"subset_{subset}_x"], subset)
        np.testing.assert_array_equal(bm, REF[f"subset_{subset}_misc"])
        np.testing.assert_array_equal(by, REF[f"subset_{subset}_y"])
        np.testing.assert_array_equal(bw, REF[f"subset_{subset}_w"])


def test_flow_without_shuffle_walks_the_data_in_order_and_wraps():
    x = np.arange(5 * 2 * 2 * 1, dtype="float32").reshape(5, 2, 2, 1)
    it = ImageDataGenerator().flow(x, None, batch_size=2, shuffle=False)
    assert len(it) == 3
    np.testing.assert_array_equal(it[2], x[4:])
    assert iter(it) is it
    got = [next(it) for _ in range(4)]
    np.testing.assert_array_equal(got[0], x[:2])
    np.testing.assert_array_equal(got[2], x[4:])
    np.testing.assert_array_equal(got[3], x[:2])   # endless: a new epoch starts


def test_standardize_rescale_and_preprocessing_function_order():
    calls = []

    def prep(img):
        calls.append(img.copy())
        return img + 1

    gen = ImageDataGenerator(rescale=0.5, preprocessing_function=prep)
    out = gen.standardize(np.full((2, 2, 1), 3.0, dtype="float32"))
    np.testing.assert_array_equal(out, np.full((2, 2, 1), 2.0))   # (3 + 1) * 0.5
    assert calls[0][0, 0, 0] == 3.0


def test_unfitted_featurewise_warns_and_passes_data_through():
    gen = ImageDataGenerator(featurewise_center=True)
    x = np.ones((1, 2, 2, 3), dtype="float32")
    with pytest.warns(UserWarning, match="hasn't been fit"):
        out = gen.standardize(x)
    np.testing.assert_array_equal(out, 1.0)


def test_generator_errors_name_the_problem():
    with pytest.raises(ConfigError, match="data_format"):
        ImageDataGenerator(data_format="channels_middle")
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator(validation_split=1.5)
    with pytest.raises(ModelkitError, match="zoom_range"):
        ImageDataGenerator(zoom_range=(0.1, 0.2, 0.3))
    with pytest.raises(ConfigError, match="brightness_range"):
        ImageDataGenerator(brightness_range=0.5)
    with pytest.raises(ConfigError, match="fill_mode"):
        ImageDataGenerator(fill_mode="mirror")
    gen = ImageDataGenerator()
    with pytest.raises(ShapeError, match="rank 4"):
        gen.fit(np.zeros((2, 3, 3)))
    with pytest.raises(ShapeError, match="rank 4"):
        gen.flow(np.zeros((2, 3, 3)))
    with pytest.raises(ShapeError, match="same length"):
        gen.flow(np.zeros((2, 3, 3, 1)), np.zeros(3))
    with pytest.raises(ShapeError, match="sample_weight"):
        gen.flow(np.zeros((2, 3, 3, 1)), np.zeros(2), sample_weight=np.zeros(5))
    with pytest.raises(ConfigError, match="subset"):
        ImageDataGenerator(validation_split=0.5).flow(np.zeros((2, 3, 3, 1)), subset="test")
    with pytest.raises(ConfigError, match="different number of classes"):
        ImageDataGenerator(validation_split=0.5).flow(np.zeros((4, 3, 3, 1)), [0, 0, 1, 1],
                                                      subset="training")
    it = gen.flow(np.zeros((3, 3, 3, 1)), batch_size=2)
    with pytest.raises(ValueError, match="has length 2"):
        it[2]


def test_data_format_none_follows_the_backend_setting():
    from modelkit import backend as K
    from modelkit.preprocessing.image import img_to_array
    previous = K.image_data_format()
    K.set_image_data_format("channels_first")
    try:
        gen = ImageDataGenerator(data_format=None, horizontal_flip=True)
        assert gen.data_format == "channels_first" and gen.channel_axis == 1
        x = np.arange(2 * 3 * 4 * 5, dtype="float32").reshape(2, 3, 4, 5)
        np.testing.assert_array_equal(gen.apply_transform(x[0], {"flip_horizontal": True}),
                                      x[0][:, :, ::-1])
        assert img_to_array(np.zeros((4, 5, 3), "uint8"), data_format=None).shape == (3, 4, 5)
    finally:
        K.set_image_data_format(previous)

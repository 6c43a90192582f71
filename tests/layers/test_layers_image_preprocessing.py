"""Image preprocessing layers (Resizing, CenterCrop, RandomCrop and the augmentation layers):
shapes, numpy references of TensorFlow's half-pixel resize, float64 gradients, config /
IR / .h5 / .keras round trips, onnxruntime parity, training-time transforms, bad arguments."""

import numpy as np
import pytest

from modelkit.errors import ConfigError
from modelkit.layers import (CenterCrop, Input, RandomBrightness, RandomContrast, RandomCrop,
                             RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
                             Resizing)
from modelkit.models import Model

from layer_testing import run_layer_test


def tf_resize(x, h, w, interpolation="bilinear"):
    """TensorFlow's resize with half-pixel centres, one output pixel at a time (NHWC)."""
    n, rows, cols, ch = x.shape
    out = np.zeros((n, h, w, ch), np.float64)

    def taps(i, n_in, n_out):
        centre = (i + 0.5) * n_in / n_out
        if interpolation == "nearest":
            k = min(int(np.floor(centre)), n_in - 1)
            return [(k, 1.0)]
        p = centre - 0.5
        lo = int(np.floor(p))
        frac = p - lo
        return [(min(max(lo, 0), n_in - 1), 1 - frac), (min(max(lo + 1, 0), n_in - 1), frac)]

    for i in range(h):
        for j in range(w):
            for a, wa in taps(i, rows, h):
                for b, wb in taps(j, cols, w):
                    out[:, i, j] += wa * wb * x[:, a, b]
    return out


def aspect_crop(x, h, w):
    rows, cols = x.shape[1:3]
    ch = min(rows, int(cols * h / w))
    cw = min(cols, int(rows * w / h))
    t, l = (rows - ch) // 2, (cols - cw) // 2
    return x[:, t:t + ch, l:l + cw]


@pytest.mark.parametrize("size,interp", [((7, 3), "bilinear"), ((3, 9), "bilinear"),
                                         ((2, 2), "bilinear"), ((7, 3), "nearest"),
                                         ((4, 11), "nearest")])
def test_resizing(tmp_path, size, interp):
    h, w = size
    run_layer_test(lambda: Resizing(h, w, interpolation=interp), (5, 6, 2), tmp_path,
                   output_shape=(h, w, 2),
                   reference=lambda x, layer: tf_resize(x, h, w, interp), atol=1e-5)


def test_resizing_crop_to_aspect_ratio(tmp_path):
    run_layer_test(lambda: Resizing(4, 2, crop_to_aspect_ratio=True), (5, 6, 3), tmp_path,
                   reference=lambda x, layer: tf_resize(aspect_crop(x, 4, 2), 4, 2), atol=1e-5)


def test_resizing_channels_first(tmp_path):
    def ref(x, layer):
        return np.moveaxis(tf_resize(np.moveaxis(x, 1, -1), 3, 8), -1, 1)
    run_layer_test(lambda: Resizing(3, 8, data_format="channels_first"), (2, 5, 6), tmp_path,
                   output_shape=(2, 3, 8), reference=ref, atol=1e-5)


@pytest.mark.parametrize("in_shape,size", [((6, 7, 2), (3, 4)), ((5, 5, 1), (4, 2)),
                                           ((3, 4, 2), (6, 6))])
def test_center_crop(tmp_path, in_shape, size):
    h, w = size

    def ref(x, layer):
        rows, cols = x.shape[1:3]
        if rows >= h and cols >= w:
            t, l = (rows - h) // 2, (cols - w) // 2
            return x[:, t:t + h, l:l + w]
        return tf_resize(aspect_crop(x, h, w), h, w)
    run_layer_test(lambda: CenterCrop(h, w), in_shape, tmp_path, output_shape=(h, w, 2 if
                   in_shape[-1] == 2 else 1), reference=ref, atol=1e-5)


def test_random_crop_inference_is_aspect_resize(tmp_path):
    run_layer_test(lambda: RandomCrop(3, 5, seed=1), (6, 7, 2), tmp_path,
                   reference=lambda x, layer: tf_resize(aspect_crop(x, 3, 5), 3, 5), atol=1e-5)


AUGMENTATION = [lambda: RandomFlip("horizontal", seed=1), lambda: RandomRotation(0.2, seed=1),
                lambda: RandomZoom(0.3, seed=1), lambda: RandomZoom((-0.2, 0.4), (0.1, 0.2)),
                lambda: RandomTranslation(0.2, (-0.1, 0.3), seed=1),
                lambda: RandomContrast(0.5, seed=1), lambda: RandomBrightness(0.2, seed=1)]


@pytest.mark.parametrize("factory", AUGMENTATION)
def test_augmentation_is_identity_at_inference(tmp_path, factory):
    run_layer_test(factory, (6, 5, 3), tmp_path, reference=lambda x, layer: x)


def _t(x):
    from modelkit.backend.tensor import Tensor
    return Tensor(x)


def images(n=8, h=6, w=5, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, c)).astype(np.float32)


def test_random_flip_training():
    x = images()
    y = np.asarray(RandomFlip("horizontal", seed=3).call(_t(x), training=True).value)
    flipped = [np.array_equal(a, b[:, ::-1]) for a, b in zip(y, x)]
    kept = [np.array_equal(a, b) for a, b in zip(y, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    y = np.asarray(RandomFlip("vertical", seed=3).call(_t(x), training=True).value)
    assert all(np.array_equal(a, b) or np.array_equal(a, b[::-1]) for a, b in zip(y, x))


def test_geometric_training_transforms_match_affine_reference():
    from modelkit.preprocessing.image.affine import apply_affine_transform
    x = images()
    for layer, draw in [
            (RandomRotation(0.1, seed=5), lambda r: {"theta": r.uniform(-0.1, 0.1) * 360}),
            (RandomZoom(0.3, seed=5), lambda r: (lambda z: {"zx": z, "zy": z})(
                1 + r.uniform(-0.3, 0.3))),
            (RandomTranslation(0.2, 0.1, seed=5), lambda r: {
                "tx": -r.uniform(-0.2, 0.2) * 6, "ty": -r.uniform(-0.1, 0.1) * 5})]:
        y = np.asarray(layer.call(_t(x), training=True).value)
        r = np.random.default_rng(5)
        want = np.stack([apply_affine_transform(img, **draw(r), fill_mode="reflect")
                         for img in x])
        np.testing.assert_allclose(y, want, atol=1e-4)
        assert not np.allclose(y, x)


def test_contrast_and_brightness_training():
    x = images()
    y = np.asarray(RandomContrast(0.5, seed=2).call(_t(x), training=True).value)
    r = np.random.default_rng(2)
    c = r.uniform(0.5, 1.5, size=(8, 1, 1, 1))
    m = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, np.clip((x - m) * c + m, 0, 255), rtol=1e-5, atol=1e-3)
    y = np.asarray(RandomBrightness(0.2, seed=2).call(_t(x), training=True).value)
    d = np.random.default_rng(2).uniform(-0.2, 0.2, size=(8, 1, 1, 1)) * 255
    np.testing.assert_allclose(y, np.clip(x + d, 0, 255), rtol=1e-5, atol=1e-3)


def test_random_crop_training_takes_a_window():
    x = images(h=8, w=7)
    y = np.asarray(RandomCrop(4, 3, seed=0).call(_t(x), training=True).value)
    assert y.shape == (8, 4, 3, 3)
    hits = [(t, l) for t in range(5) for l in range(5) if np.array_equal(y, x[:, t:t + 4,
                                                                              l:l + 3])]
    assert len(hits) == 1


def test_training_through_fit_changes_nothing_at_inference():
    x = images(n=4)
    inp = Input((6, 5, 3))
    out = RandomFlip(seed=0)(RandomContrast(0.3, seed=0)(inp))
    m = Model(inp, Resizing(3, 3)(out))
    y = m.predict(x)
    np.testing.assert_allclose(y, tf_resize(x, 3, 3), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("factory,words", [
    (lambda: Resizing(0, 3), "height"), (lambda: Resizing(3, 3, interpolation="lanczos5"),
                                         "lanczos5"),
    (lambda: Resizing(3, 3, pad_to_aspect_ratio=True), "pad_to_aspect_ratio"),
    (lambda: CenterCrop(2, "3"), "width"), (lambda: RandomFlip("diagonal"), "mode"),
    (lambda: RandomRotation("big"), "factor"), (lambda: RandomZoom((0.5, 0.1)), "height_factor"),
    (lambda: RandomRotation(0.1, fill_mode="mirror"), "fill_mode"),
    (lambda: RandomContrast(1.5), "factor"), (lambda: RandomBrightness(2.0), "factor"),
    (lambda: RandomBrightness(0.1, value_range=(1, 0)), "value_range")])
def test_bad_arguments(factory, words):
    with pytest.raises(ConfigError, match=words):
        factory()


FIX = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / \
    "image_preprocessing"


@pytest.mark.parametrize("name", ["augment_resize", "crops"])
@pytest.mark.parametrize("prefix,ext", [("tfk", "h5"), ("k3", "keras")])
def test_real_keras_files(tmp_path, name, prefix, ext):
    """tf-keras 2.21 and Keras 3.15 files (make_image_preprocessing_fixtures.py): Keras's
    inference numbers (pixel values up to 255: float32 resize taps differ by ~1e-4), in
    modelkit, after an .h5 round trip and in onnxruntime."""
    from modelkit.models import load_model
    from modelkit.runtime import InferenceSession
    d = np.load(FIX / f"{name}.npz")
    want = d[f"y_{prefix}"]
    m = load_model(FIX / f"{prefix}_{name}.{ext}")
    np.testing.assert_allclose(m.predict(d["x"]), want, rtol=1e-5, atol=2e-4)
    m.save(tmp_path / "m.h5")
    np.testing.assert_allclose(load_model(tmp_path / "m.h5").predict(d["x"]), want,
                               rtol=1e-5, atol=2e-4)
    m.save(tmp_path / "m.onnx")
    np.testing.assert_allclose(InferenceSession(str(tmp_path / "m.onnx")).predict(d["x"]), want,
                               rtol=1e-5, atol=2e-4)


@pytest.mark.parametrize("size", [(9, 4), (3, 11), (2, 2), (5, 13)])
def test_bicubic_resizing_matches_tensorflow(tmp_path, size):
    """TensorFlow's bicubic resize (its 1024-entry Keys kernel table, outside taps dropped),
    numbers from tf.image.resize (tf_bicubic.npz): here, in onnxruntime (MatMuls with the
    interpolation matrices) and through every round trip, with float64 gradients."""
    d = np.load(FIX / "tf_bicubic.npz")
    want = d[f"y_{size[0]}_{size[1]}"]
    run_layer_test(lambda: Resizing(*size, interpolation="bicubic"), (5, 6, 2), tmp_path,
                   x=d["x"], reference=lambda x, layer: want, atol=1e-6)


def test_bicubic_channels_first(tmp_path):
    d = np.load(FIX / "tf_bicubic.npz")
    x = np.moveaxis(d["x"], -1, 1)
    run_layer_test(lambda: Resizing(9, 4, interpolation="bicubic", data_format="channels_first"),
                   (2, 5, 6), tmp_path, x=x,
                   reference=lambda x, layer: np.moveaxis(d["y_9_4"], -1, 1), atol=1e-6)


@pytest.mark.parametrize("size", [(9, 4), (3, 11), (2, 2), (5, 13)])
def test_area_resizing_matches_tensorflow(tmp_path, size):
    """TensorFlow's area resize (box average), numbers from tf.image.resize."""
    d = np.load(FIX / "tf_bicubic.npz")
    want = d[f"area_{size[0]}_{size[1]}"]
    run_layer_test(lambda: Resizing(*size, interpolation="area"), (5, 6, 2), tmp_path,
                   x=d["x"], reference=lambda x, layer: want, atol=2e-6)

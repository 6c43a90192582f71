"""flow_from_directory and the Pillow helpers against keras_preprocessing 1.1 fixtures.

The tests write the same PNG files the fixture script wrote (PNG is lossless) and compare
file lists, classes and the augmented batches.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from modelkit.errors import ConfigError, MissingDependencyError, ShapeError
from modelkit.preprocessing import image
from modelkit.preprocessing.image import DirectoryIterator, ImageDataGenerator
from modelkit.utils import Sequence

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "preprocessing")
REF = np.load(os.path.join(FIXTURES, "image_directory.npz"))

DIRECTORY_CASES = json.loads(str(REF["cases"]))


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for key in REF.files:
        if key.startswith("png/"):        # png/<class>/<file>: the pixels Keras read
            _, cls, name = key.split("/")
            os.makedirs(root / cls, exist_ok=True)
            Image.fromarray(REF[key], "RGB").save(root / cls / name)
    (root / "cats" / "notes.txt").write_text("not an image")
    return str(root)


@pytest.mark.parametrize("ci", range(len(DIRECTORY_CASES)), ids=[str(c) for c in DIRECTORY_CASES])
def test_flow_from_directory_equals_keras(ci, image_root, capsys):
    gen = ImageDataGenerator(rotation_range=15, horizontal_flip=True, rescale=1 / 255.0,
                             validation_split=0.34)
    it = gen.flow_from_directory(image_root, batch_size=3, seed=5, **DIRECTORY_CASES[ci])
    assert capsys.readouterr().out == str(REF[f"dir{ci}_printed"])
    assert isinstance(it, Sequence) and isinstance(it, DirectoryIterator)
    assert it.filenames == REF[f"dir{ci}_filenames"].tolist()
    np.testing.assert_array_equal(it.classes, REF[f"dir{ci}_classes"])
    assert it.class_indices == json.loads(str(REF[f"dir{ci}_class_indices"]))
    assert len(it) == REF[f"dir{ci}_len"][0]
    batch = it[len(it) - 1]
    if f"dir{ci}_y" in REF:
        bx, by = batch
        np.testing.assert_allclose(by, REF[f"dir{ci}_y"], rtol=1e-5, atol=1e-6)
    else:
        bx = batch
    np.testing.assert_allclose(bx, REF[f"dir{ci}_x"], rtol=1e-5, atol=1e-6)


def test_load_img_and_array_helpers_equal_keras(image_root):
    img = image.load_img(os.path.join(image_root, "dogs", "img1.png"), target_size=(4, 9),
                         interpolation="bicubic")
    np.testing.assert_array_equal(image.img_to_array(img), REF["load_img_bicubic"])
    gray = image.load_img(os.path.join(image_root, "dogs", "img0.png"), color_mode="grayscale")
    np.testing.assert_array_equal(image.img_to_array(gray, data_format="channels_first"),
                                  REF["load_img_gray_first"])
    x = np.random.RandomState(0).uniform(0, 255, size=(7, 9, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(image.array_to_img(x - 100.0)),
                                  REF["array_to_img_scaled"])
    np.testing.assert_array_equal(
        np.asarray(image.array_to_img(np.transpose(x, (2, 0, 1)) / 2,
                                      data_format="channels_first", scale=False)),
        REF["array_to_img_first"])


def test_save_img_load_img_round_trip(tmp_path):
    x = np.random.RandomState(3).randint(0, 256, size=(5, 4, 3)).astype("float32")
    path = tmp_path / "x.png"
    image.save_img(path, x, scale=False)
    np.testing.assert_array_equal(image.img_to_array(image.load_img(path)), x)
    rgba = np.concatenate([x, np.full((5, 4, 1), 255.0)], axis=2)
    image.save_img(tmp_path / "y.png", rgba, scale=False)
    back = image.img_to_array(image.load_img(tmp_path / "y.png", color_mode="rgba"))
    np.testing.assert_array_equal(back, rgba)
    assert sorted(os.path.basename(p) for p in image.list_pictures(str(tmp_path))) == \
        ["x.png", "y.png"]


def test_flow_save_to_dir_writes_the_augmented_images(tmp_path):
    x = np.random.RandomState(0).rand(3, 4, 4, 3).astype("float32")
    it = ImageDataGenerator(horizontal_flip=True).flow(x, np.arange(3), batch_size=2,
                                                       save_to_dir=str(tmp_path),
                                                       save_prefix="aug", save_format="png")
    it[0]
    saved = sorted(os.listdir(tmp_path))
    assert len(saved) == 2 and all(n.startswith("aug_") and n.endswith(".png") for n in saved)


def test_follow_links_false_skips_linked_folders(image_root, tmp_path, capsys):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((3, 3, 3), "uint8")).save(root / "a" / "x.png")
    os.symlink(os.path.join(image_root, "dogs"), root / "a" / "linked")
    it = ImageDataGenerator().flow_from_directory(str(root), target_size=(3, 3))
    assert it.filenames == [os.path.join("a", "x.png")]
    it = ImageDataGenerator().flow_from_directory(str(root), target_size=(3, 3),
                                                  follow_links=True)
    assert len(it.filenames) == 3
    capsys.readouterr()


def test_directory_errors_name_the_problem(image_root, tmp_path):
    gen = ImageDataGenerator()
    with pytest.raises(ConfigError, match="not a directory"):
        gen.flow_from_directory(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="class_mode"):
        gen.flow_from_directory(image_root, class_mode="multi")
    with pytest.raises(ConfigError, match="color mode"):
        gen.flow_from_directory(image_root, color_mode="cmyk")
    with pytest.raises(ConfigError, match="interpolation"):
        image.load_img(os.path.join(image_root, "dogs", "img0.png"), target_size=(2, 2),
                       interpolation="cubic-ish")
    with pytest.raises(ConfigError, match="notes.txt"):
        image.load_img(os.path.join(image_root, "cats", "notes.txt"))
    with pytest.raises(ShapeError, match="channel number 2"):
        image.array_to_img(np.zeros((2, 2, 2)))
    with pytest.raises(ShapeError, match="rank 3"):
        image.array_to_img(np.zeros((2, 2)))


def test_missing_pillow_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(MissingDependencyError, match=r"modelkit\[image\]"):
        image.array_to_img(np.zeros((2, 2, 3)))
    with pytest.raises(ImportError, match="load_img needs Pillow"):
        image.load_img("whatever.png")

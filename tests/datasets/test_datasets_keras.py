"""Keras's other data sets (`keras.datasets` paths and `load_data` arguments) on tiny files in
the layout of Keras's downloads, against what real tf-keras returns for the same files
(tests/fixtures/datasets/make_keras_datasets.py); no network: origins are file:// URLs."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

import modelkit.datasets as ds
from modelkit.datasets import DatasetError

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                    "datasets")


def url(name):
    return "file://" + os.path.join(HERE, name)


def expected(name):
    with np.load(os.path.join(HERE, f"expected_{name}.npz")) as f:
        return {k: f[k] for k in f.files}


def check(result, want):
    (xa, ya), (xb, yb) = result
    for key, got in (("x_train", xa), ("y_train", ya), ("x_test", xb), ("y_test", yb)):
        if got.dtype == object:         # sequences: compare lengths and the flat indices
            np.testing.assert_array_equal([len(s) for s in got], want[key + "_lengths"])
            got = np.concatenate([np.asarray(s, np.int64) for s in got])
        np.testing.assert_array_equal(got, want[key], err_msg=key)
        assert got.shape == want[key].shape


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path)


def test_boston_housing(cache):
    check(ds.boston_housing.load_data(cache_dir=cache, origin=url("boston_housing.npz"),
                                      file_hash=None), expected("boston_housing"))


def test_imdb_and_its_arguments(cache):
    kw = dict(cache_dir=cache, origin=url("imdb.npz"), file_hash=None)
    check(ds.imdb.load_data(**kw), expected("imdb"))
    check(ds.imdb.load_data(num_words=20, skip_top=2, maxlen=9, **kw),
          expected("imdb_num_words_maxlen"))
    with pytest.raises(DatasetError, match="maxlen=2 leaves no sequence"):
        ds.imdb.load_data(maxlen=2, **kw)


def test_reuters_and_its_arguments(cache):
    kw = dict(cache_dir=cache, origin=url("reuters.npz"), file_hash=None)
    check(ds.reuters.load_data(test_split=0.25, **kw), expected("reuters"))
    check(ds.reuters.load_data(num_words=25, oov_char=None, start_char=None, **kw),
          expected("reuters_no_oov"))


def test_fashion_mnist(cache):
    for name in ds.fashion_mnist.FILES:         # the cache holds Keras's file names
        os.makedirs(os.path.join(cache, "datasets", "fashion-mnist"), exist_ok=True)
        with open(os.path.join(HERE, "fashion-" + name), "rb") as src, \
                open(os.path.join(cache, "datasets", "fashion-mnist", name), "wb") as dst:
            dst.write(src.read())
    check(ds.fashion_mnist.load_data(cache_dir=cache, origin_folder="file:///nonexistent/"),
          expected("fashion_mnist"))


def test_cifar100_coarse_and_cifar10_batch_order(cache):
    check(ds.cifar100.load_data("coarse", cache_dir=cache,
                                origin=url("cifar-100-python.tar.gz"), file_hash=None),
          expected("cifar100_coarse"))
    (x, y), (xt, yt) = ds.cifar10.load_data(cache_dir=cache,
                                            origin=url("cifar-10-python.tar.gz"), file_hash=None)
    assert x.shape == (10, 32, 32, 3) and y.shape == (10, 1) and xt.shape == (3, 32, 32, 3)
    with tarfile.open(os.path.join(HERE, "cifar-10-python.tar.gz")) as t:
        third = pickle.load(t.extractfile("cifar-10-batches-py/data_batch_3"), encoding="bytes")
    np.testing.assert_array_equal(x[4:6], third[b"data"].reshape(2, 3, 32, 32)
                                  .transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y[4:6, 0], third[b"labels"])


def test_cifar_pickles_may_only_hold_arrays(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    path = tmp_path / "evil.tar.gz"
    data = pickle.dumps({b"data": Boom(), b"labels": [1]}, protocol=2)
    with tarfile.open(path, "w:gz") as t:
        for name in ["cifar-10-batches-py/data_batch_1"]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    with pytest.raises(DatasetError, match="only numpy arrays"):
        ds.cifar10.load_data(cache_dir=str(tmp_path), origin="file://" + str(path),
                             file_hash=None)
    assert not (tmp_path / "pwned").exists()


def test_defaults_are_kerass_files():
    assert ds.imdb.SHA256.startswith("69664113") and ds.reuters.SHA256.startswith("d6586e69")
    assert ds.boston_housing.URL.endswith("tf-keras-datasets/boston_housing.npz")
    assert ds.cifar10.URL == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    with pytest.raises(DatasetError):           # a damaged file is named, not a numpy error
        ds.boston_housing.load_data(cache_dir="/tmp/x", origin=url("imdb.npz"),
                                    file_hash=None, path="not_boston.npz")


def test_word_index(tmp_path):
    (tmp_path / "wi.json").write_text('{"the": 1, "movie": 17}')
    for module in (ds.imdb, ds.reuters):
        index = module.get_word_index(path=f"{module.__name__}.json", cache_dir=str(tmp_path),
                                      origin="file://" + str(tmp_path / "wi.json"),
                                      file_hash=None)
        assert index == {"the": 1, "movie": 17}

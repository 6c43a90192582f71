"""What the Keras data sets share: Keras's file locations, one download helper, and the
word-index sequence processing of imdb and reuters (Keras's `load_data` arguments)."""

import json

import numpy as np

from modelkit.datasets._download import DatasetError, get_file

KERAS_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_DEFAULT = object()


def fetch(path, origin, file_hash, default_hash, cache_dir=None, timeout=30):
    """The local path of a Keras data file (downloaded once into modelkit's cache);
    `file_hash=None` skips the check (your own copy), the default is the real file's."""
    return get_file(path, origin, file_hash=default_hash if file_hash is _DEFAULT else file_hash,
                    cache_dir=cache_dir, timeout=timeout)


def read_npz(local, keys, allow_pickle=False):
    """{key: array} of an .npz file, DatasetError naming the file when it is not one."""
    try:
        with np.load(local, allow_pickle=allow_pickle) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DatasetError(f"{local} lacks the arrays {missing} (has {f.files})")
            return {k: f[k] for k in keys}
    except DatasetError:
        raise
    except Exception as e:      # noqa: BLE001 - a damaged download, named
        raise DatasetError(f"{local} is not a readable .npz file: {e}") from None


def word_index_getter(dataset, md5):
    """The `get_word_index(path=...)` of Keras's imdb / reuters: the word -> index dict."""
    def get_word_index(path=f"{dataset}_word_index.json", cache_dir=None,
                       origin=KERAS_FOLDER + f"{dataset}_word_index.json", file_hash=_DEFAULT):
        return read_word_index(fetch(path, origin, file_hash, md5, cache_dir))
    return get_word_index


def read_word_index(local):
    try:
        with open(local, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{local} is not a readable word index: {e}") from None


def shuffled(rng, *arrays):
    """The arrays in one random order drawn from `rng` (Keras shuffles with RandomState)."""
    order = np.arange(len(arrays[0]))
    rng.shuffle(order)
    return [a[order] for a in arrays]


def encode_sequences(groups, labels, num_words=None, skip_top=0, maxlen=None, start_char=1,
                     oov_char=2, index_from=3):
    """Keras's imdb/reuters word-index processing of several groups of sequences (train,
    test) with their labels: shift indices by `index_from`, prefix `start_char`, drop
    sequences of `maxlen` words or more, map words outside [skip_top, num_words) to
    `oov_char` (or drop them when it is None). -> [(object array of lists, labels)]."""
    out = []
    for seqs, labs in zip(groups, labels):
        seqs = [[w + index_from for w in s] for s in seqs]
        if start_char is not None:
            seqs = [[start_char] + s for s in seqs]
        if maxlen:
            keep = [i for i, s in enumerate(seqs) if len(s) < maxlen]
            seqs, labs = [seqs[i] for i in keep], labs[keep]
            if not seqs:
                raise DatasetError(f"maxlen={maxlen} leaves no sequence; raise maxlen")
        out.append((seqs, labs))
    if not num_words:
        num_words = max(max(s) for seqs, _ in out for s in seqs if s)
    result = []
    for seqs, labs in out:
        if oov_char is not None:
            seqs = [[w if skip_top <= w < num_words else oov_char for w in s] for s in seqs]
        else:
            seqs = [[w for w in s if skip_top <= w < num_words] for s in seqs]
        arr = np.empty(len(seqs), dtype=object)
        arr[:] = seqs
        result.append((arr, labs))
    return result

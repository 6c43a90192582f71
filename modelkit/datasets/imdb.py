"""IMDB movie reviews as word-index sequences (25,000 train / 25,000 test, labels 0/1), as
`keras.datasets.imdb`: `load_data(num_words=None, skip_top=0, maxlen=None, seed=113,
start_char=1, oov_char=2, index_from=3)` and `get_word_index()`. Keras's files, downloaded
once (see `modelkit.datasets.get_file`)."""

import numpy as np

from modelkit.datasets._keras_files import (_DEFAULT, KERAS_FOLDER, encode_sequences, fetch,
                                            read_npz, shuffled, word_index_getter)

URL = KERAS_FOLDER + "imdb.npz"
SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3, cache_dir=None, origin=URL,
              file_hash=_DEFAULT, **kwargs):
    # Keras's file stores lists of word indices (object arrays): np.load needs pickles, so
    # the download is checked against the real file's sha256 unless file_hash=None
    data = read_npz(fetch(path, origin, file_hash, SHA256, cache_dir),
                    ("x_train", "y_train", "x_test", "y_test"), allow_pickle=True)
    rng = np.random.RandomState(seed)
    x_train, y_train = shuffled(rng, data["x_train"], data["y_train"])
    x_test, y_test = shuffled(rng, data["x_test"], data["y_test"])
    train, test = encode_sequences([x_train, x_test], [y_train, y_test], num_words, skip_top,
                                   maxlen, start_char, oov_char, index_from)
    return train, test


get_word_index = word_index_getter("imdb", "bfafd718b763782e994055a2d397834f")

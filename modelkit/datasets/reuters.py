"""Reuters newswire topics as word-index sequences (11,228 articles, 46 topics), as
`keras.datasets.reuters`: `load_data(num_words=None, skip_top=0, maxlen=None,
test_split=0.2, seed=113, start_char=1, oov_char=2, index_from=3)` and `get_word_index()`.
Keras's files, downloaded once (see `modelkit.datasets.get_file`)."""

import numpy as np

from modelkit.datasets._keras_files import (_DEFAULT, KERAS_FOLDER, encode_sequences, fetch,
                                            read_npz, shuffled, word_index_getter)

URL = KERAS_FOLDER + "reuters.npz"
SHA256 = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3, cache_dir=None, origin=URL,
              file_hash=_DEFAULT, **kwargs):
    data = read_npz(fetch(path, origin, file_hash, SHA256, cache_dir), ("x", "y"),
                    allow_pickle=True)         # object arrays; the sha256 is checked
    xs, labels = shuffled(np.random.RandomState(seed), data["x"], data["y"])
    ((seqs, labels),) = encode_sequences([xs], [labels], num_words, skip_top, maxlen,
                                         start_char, oov_char, index_from)
    n = int(len(seqs) * (1 - test_split))
    return (seqs[:n], labels[:n]), (seqs[n:], labels[n:])


get_word_index = word_index_getter("reuters", "4d44cc38712099c9e383dc6e5f11a921")

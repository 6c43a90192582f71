"""Text preprocessing with `keras.preprocessing.text`'s names and numbers.

`Tokenizer` builds the same vocabulary, indices, counts (in the same order) and matrices as
Keras 2.3 (keras_preprocessing 1.1), and its `to_json` is Keras's format both ways.
"""

import json
import warnings
from collections import OrderedDict, defaultdict
from hashlib import md5

import numpy as np

from modelkit.errors import ConfigError

__all__ = ["text_to_word_sequence", "one_hot", "hashing_trick", "Tokenizer",
           "tokenizer_from_json"]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
MATRIX_MODES = ("binary", "count", "tfidf", "freq")


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Split a text into words: lower-case it, turn every `filters` character into `split`,
    split on `split` and drop empty pieces."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


def _md5_hash(word):
    return int(md5(word.encode()).hexdigest(), 16)


def hashing_trick(text, n, hash_function=None, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Word indices in `[1, n-1]` by hashing each word: `hash_function(w) % (n - 1) + 1`.

    `hash_function` is Python's `hash` by default (salted per process unless PYTHONHASHSEED is
    set), `'md5'` for a stable hash, or any callable from str to int.
    """
    if hash_function is None:
        hash_function = hash
    elif hash_function == "md5":
        hash_function = _md5_hash
    words = text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    return [hash_function(w) % (n - 1) + 1 for w in words]


def one_hot(text, n, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """`hashing_trick` with Python's `hash`: word indices in `[1, n-1]` (collisions possible)."""
    return hashing_trick(text, n, hash_function=hash, filters=filters, lower=lower, split=split)


class Tokenizer:
    """Turn texts into sequences of word indices or into count/tf-idf matrices, as Keras does.

    Index 0 is never a word. Words are indexed by falling count (ties: first seen first);
    `oov_token`, if given, takes index 1 and replaces unknown words. `num_words` keeps
    the `num_words - 1` most frequent words when converting (the vocabulary keeps all).
    """

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ",
                 char_level=False, oov_token=None, document_count=0, **kwargs):
        if "nb_words" in kwargs:
            warnings.warn("The `nb_words` argument in `Tokenizer` has been renamed `num_words`.")
            num_words = kwargs.pop("nb_words")
        if kwargs:
            raise TypeError(f"Tokenizer: unrecognized keyword arguments: {sorted(kwargs)}")
        self.word_counts = OrderedDict()
        self.word_docs = defaultdict(int)
        self.filters = filters
        self.split = split
        self.lower = lower
        self.num_words = num_words
        self.document_count = document_count
        self.char_level = char_level
        self.oov_token = oov_token
        self.index_docs = defaultdict(int)
        self.word_index = {}
        self.index_word = {}

    def _tokens(self, text):
        """The tokens of one text: characters, the items of a list, or its words."""
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return text
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts):
        """Count words over `texts` (strings, or lists of tokens) and rebuild `word_index`."""
        for text in texts:
            self.document_count += 1
            seq = self._tokens(text)
            for w in seq:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in set(seq):
                self.word_docs[w] += 1
        wcounts = sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)
        vocabulary = [] if self.oov_token is None else [self.oov_token]
        vocabulary.extend(w for w, _ in wcounts)
        self.word_index = dict(zip(vocabulary, range(1, len(vocabulary) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        for w, c in list(self.word_docs.items()):
            self.index_docs[self.word_index[w]] = c

    def fit_on_sequences(self, sequences):
        """Count document frequencies of indices (for `sequences_to_matrix`'s tf-idf)."""
        self.document_count += len(sequences)
        for seq in sequences:
            for i in set(seq):
                self.index_docs[i] += 1

    def texts_to_sequences(self, texts):
        """Each text as a list of word indices (unknown or rare words dropped, or `oov_token`)."""
        return list(self.texts_to_sequences_generator(texts))

    def _kept_index(self, i, oov_index):
        """Index `i` as converted: itself, the OOV index (unknown or beyond `num_words`,
        when there is an `oov_token`), or None to drop it."""
        if i is None:
            return oov_index if self.oov_token is not None else None
        if self.num_words and i >= self.num_words:
            return oov_index
        return i

    def texts_to_sequences_generator(self, texts):
        """Yield `texts_to_sequences`'s lists one text at a time."""
        oov_index = self.word_index.get(self.oov_token)
        for text in texts:
            kept = (self._kept_index(self.word_index.get(w), oov_index) for w in self._tokens(text))
            yield [i for i in kept if i is not None]

    def sequences_to_texts(self, sequences):
        """Each sequence of indices back to a space-joined text."""
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences):
        """Yield `sequences_to_texts`'s strings one sequence at a time."""
        oov_index = self.word_index.get(self.oov_token)
        for seq in sequences:
            kept = (self._kept_index(num if num in self.index_word else None, oov_index)
                    for num in seq)
            yield " ".join(self.index_word[i] for i in kept if i is not None)

    def texts_to_matrix(self, texts, mode="binary"):
        """`sequences_to_matrix(texts_to_sequences(texts), mode)`."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences, mode="binary"):
        """A `(len(sequences), num_words)` float64 matrix; `mode` is one of
        'binary', 'count', 'tfidf' (Keras's `(1 + log tf) * log(1 + N / (1 + df))`) or 'freq'."""
        if mode not in MATRIX_MODES:
            raise ConfigError(f"Tokenizer: unknown vectorization mode {mode!r}; expected one "
                              f"of {list(MATRIX_MODES)}")
        if self.num_words:
            num_words = self.num_words
        elif self.word_index:
            num_words = len(self.word_index) + 1
        else:
            raise ConfigError("Tokenizer: specify a dimension (`num_words` argument), "
                              "or fit on some text data first.")
        if mode == "tfidf" and not self.document_count:
            raise ConfigError("Tokenizer: fit the Tokenizer on some data before using tfidf mode.")
        x = np.zeros((len(sequences), num_words))
        for i, seq in enumerate(sequences):
            if not seq:
                continue
            counts = defaultdict(int)
            for j in seq:
                if j < num_words:
                    counts[j] += 1
            for j, c in list(counts.items()):
                if mode == "count":
                    x[i][j] = c
                elif mode == "freq":
                    x[i][j] = c / len(seq)
                elif mode == "binary":
                    x[i][j] = 1
                else:
                    tf = 1 + np.log(c)
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[i][j] = tf * idf
        return x

    def get_config(self):
        """The settings and counts as a dict; the dictionaries are JSON strings, as in Keras."""
        return {
            "num_words": self.num_words, "filters": self.filters, "lower": self.lower,
            "split": self.split, "char_level": self.char_level, "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs):
        """Keras's JSON for the tokenizer; read back with `tokenizer_from_json`."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()},
                          **kwargs)


def tokenizer_from_json(json_string):
    """A `Tokenizer` from `to_json()`'s string (written by modelkit or Keras)."""
    try:
        config = dict(json.loads(json_string)["config"])
        word_counts = json.loads(config.pop("word_counts"))
        word_docs = json.loads(config.pop("word_docs"))
        index_docs = {int(k): v for k, v in json.loads(config.pop("index_docs")).items()}
        index_word = {int(k): v for k, v in json.loads(config.pop("index_word")).items()}
        word_index = json.loads(config.pop("word_index"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"tokenizer_from_json: not a Tokenizer JSON string ({exc})") from None
    tokenizer = Tokenizer(**config)
    tokenizer.word_counts = word_counts
    tokenizer.word_docs = word_docs
    tokenizer.index_docs = index_docs
    tokenizer.word_index = word_index
    tokenizer.index_word = index_word
    return tokenizer

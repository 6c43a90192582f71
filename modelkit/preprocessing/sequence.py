"""Sequence preprocessing with `keras.preprocessing.sequence`'s names and numbers.

`pad_sequences`, `make_sampling_table`, `skipgrams` and `TimeseriesGenerator` behave as in
Keras 2.3 (keras_preprocessing 1.1): the same outputs, the same draws from Python's `random`
and numpy's global generator, so seeded runs give Keras's results.
"""

import json
import random

import numpy as np

from modelkit.errors import ConfigError, ShapeError
from modelkit.utils.data_utils import Sequence

__all__ = ["pad_sequences", "make_sampling_table", "skipgrams", "TimeseriesGenerator",
           "timeseries_generator_from_json"]

_SIDES = ("pre", "post")


def _check_side(name, value):
    if value not in _SIDES:
        raise ConfigError(f'pad_sequences: {name} type "{value}" not understood; '
                          f"expected 'pre' or 'post'")


def _is_str_dtype(dtype):
    try:
        return np.issubdtype(dtype, np.str_)
    except TypeError:
        return False


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad (and truncate) sequences to one length; returns an array `(len(sequences), maxlen, ...)`.

    `maxlen=None` uses the longest sequence. `padding`/`truncating` ('pre' or 'post') say which
    end gets the `value` fill or loses elements. Elements may themselves be arrays: their shape
    is taken from the first non-empty sequence and every other one must match. For strings
    use `dtype=object` (or a numpy string dtype) with a string `value`.
    """
    if not hasattr(sequences, "__len__"):
        raise ConfigError("pad_sequences: `sequences` must be iterable (a list of sequences), "
                          f"got {type(sequences).__name__}")
    _check_side("Padding", padding)
    _check_side("Truncating", truncating)
    lengths, sample_shape, seen = [], (), False
    for x in sequences:
        try:
            lengths.append(len(x))
        except TypeError:
            raise ConfigError("pad_sequences: `sequences` must be a list of iterables. "
                              f"Found non-iterable: {x!r}") from None
        if not seen and len(x):
            sample_shape, seen = np.asarray(x).shape[1:], True
    if maxlen is None:
        if not lengths:
            raise ConfigError("pad_sequences: cannot infer `maxlen` from an empty list of "
                              "sequences; pass maxlen")
        maxlen = int(np.max(lengths))
    if isinstance(value, str) and dtype != object and not _is_str_dtype(dtype):
        raise ConfigError(f"pad_sequences: `dtype` {dtype} is not compatible with `value`'s "
                          f"type: {type(value)}\nYou should set `dtype=object` for variable "
                          "length strings.")
    out = np.full((len(lengths), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    for idx, s in enumerate(sequences):
        if not len(s):
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ShapeError(f"pad_sequences: shape of sample {trunc.shape[1:]} of sequence at "
                             f"position {idx} is different from expected shape {sample_shape}")
        if padding == "post":
            out[idx, :len(trunc)] = trunc
        else:
            out[idx, -len(trunc):] = trunc
    return out


def make_sampling_table(size, sampling_factor=1e-5):
    """Word2vec's rank-based sampling probabilities (Zipf approximation) for `skipgrams`."""
    gamma = 0.577
    rank = np.arange(size)
    rank[0] = 1
    inv_fq = rank * (np.log(rank) + gamma) + 0.5 - 1.0 / (12.0 * rank)
    f = sampling_factor * inv_fq
    return np.minimum(1.0, f / np.sqrt(f))


def skipgrams(sequence, vocabulary_size, window_size=4, negative_samples=1.0, shuffle=True,
              categorical=False, sampling_table=None, seed=None):
    """Skipgram pairs `(couples, labels)`: window neighbours (label 1) and random words (label 0).

    Index 0 is a non-word and is skipped. Draws come from Python's `random` module in Keras's
    order, so `random.seed(s)` (or `seed=`) reproduces Keras's pairs.
    """
    couples, labels = [], []
    for i, wi in enumerate(sequence):
        if not wi:
            continue
        if sampling_table is not None and sampling_table[wi] < random.random():
            continue
        start, end = max(0, i - window_size), min(len(sequence), i + window_size + 1)
        for j in range(start, end):
            wj = sequence[j]
            if j == i or not wj:
                continue
            couples.append([wi, wj])
            labels.append([0, 1] if categorical else 1)

    if negative_samples > 0:
        num_negative = int(len(labels) * negative_samples)
        words = [c[0] for c in couples]
        random.shuffle(words)
        couples += [[words[i % len(words)], random.randint(1, vocabulary_size - 1)]
                    for i in range(num_negative)]
        labels += ([[1, 0]] if categorical else [0]) * num_negative

    if shuffle:
        if seed is None:
            seed = random.randint(0, 10000000)
        random.seed(seed)
        random.shuffle(couples)
        random.seed(seed)
        random.shuffle(labels)
    return couples, labels


def _remove_long_seq(maxlen, seq, label):
    """Keep the (sequence, label) pairs whose sequence is shorter than `maxlen`."""
    kept = [(x, y) for x, y in zip(seq, label) if len(x) < maxlen]
    return [x for x, _ in kept], [y for _, y in kept]


class TimeseriesGenerator(Sequence):
    """Batches of sliding windows over a time series, as a `Sequence` for `fit`.

    Sample `k` of the series ends just before row `start_index + length + k * stride` and holds
    every `sampling_rate`-th step of the `length` steps before it; its target is that row's target.
    """

    def __init__(self, data, targets, length, sampling_rate=1, stride=1, start_index=0,
                 end_index=None, shuffle=False, reverse=False, batch_size=128):
        if len(data) != len(targets):
            raise ShapeError("TimeseriesGenerator: data and targets have to be of same length. "
                             f"Data length is {len(data)} while target length is {len(targets)}")
        self.data = data
        self.targets = targets
        self.length = length
        self.sampling_rate = sampling_rate
        self.stride = stride
        self.start_index = start_index + length
        self.end_index = len(data) - 1 if end_index is None else end_index
        self.shuffle = shuffle
        self.reverse = reverse
        self.batch_size = batch_size
        if self.start_index > self.end_index:
            raise ConfigError(f"TimeseriesGenerator: `start_index+length={self.start_index} > "
                              f"end_index={self.end_index}` is disallowed, as no part of the "
                              "sequence would be left to be used as current step.")

    def __len__(self):
        span = self.batch_size * self.stride
        return (self.end_index - self.start_index + span) // span

    def __getitem__(self, index):
        if self.shuffle:
            rows = np.random.randint(self.start_index, self.end_index + 1, size=self.batch_size)
        else:
            i = self.start_index + self.batch_size * self.stride * index
            rows = np.arange(i, min(i + self.batch_size * self.stride, self.end_index + 1),
                             self.stride)
        samples = np.array([self.data[row - self.length:row:self.sampling_rate] for row in rows])
        targets = np.array([self.targets[row] for row in rows])
        if self.reverse:
            return samples[:, ::-1, ...], targets
        return samples, targets

    def get_config(self):
        """The generator's arguments as a dict (data and targets as JSON strings), as Keras."""
        def as_json(name, values):
            if type(values).__module__ == np.__name__:
                values = values.tolist()
            try:
                return json.dumps(values)
            except TypeError:
                raise ConfigError(f"TimeseriesGenerator: {name} not JSON serializable") from None

        return {"data": as_json("data", self.data), "targets": as_json("targets", self.targets),
                "length": self.length, "sampling_rate": self.sampling_rate,
                "stride": self.stride, "start_index": self.start_index,
                "end_index": self.end_index, "shuffle": self.shuffle, "reverse": self.reverse,
                "batch_size": self.batch_size}

    def to_json(self, **kwargs):
        """A JSON string `{"class_name": ..., "config": ...}`; read back with
        `timeseries_generator_from_json`."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()},
                          **kwargs)


def timeseries_generator_from_json(json_string):
    """Rebuild a `TimeseriesGenerator` from `to_json()`'s string (Keras's format).

    The stored `start_index` already includes `length` (Keras stores it so); it is taken back
    off here, so the rebuilt generator yields the same batches (Keras 2.3 added it twice).
    """
    config = dict(json.loads(json_string).get("config"))
    config["data"] = json.loads(config.pop("data"))
    config["targets"] = json.loads(config.pop("targets"))
    config["start_index"] = config.get("start_index", 0) - config["length"]
    return TimeseriesGenerator(**config)

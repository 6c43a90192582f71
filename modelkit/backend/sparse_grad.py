"""Row-sparse gradients (tf.IndexedSlices' role): the gradient of an embedding lookup.

An embedding lookup of 5,120 tokens into a 20000 x 128 table has a gradient that is zero on
all but the looked-up rows. Materialized, it is a 10 MB array that the optimizer then reads
back in several passes. Inside `sparse_gradients()` (the training step opens it around
`tape.gradient`), the `gather` op's VJP returns an `IndexedRows` instead: the unique rows
and their summed gradients. Optimizers whose dense update leaves untouched rows exactly as
a zero gradient would (SGD with or without momentum, Adam: see their `_update_sparse`)
apply it row-wise, with numbers identical to the dense update; everything else sees a dense
array (`np.asarray(g)`, `g.dense()`, adding two gradients, the tape handing it to another
op's VJP).
"""

import contextlib

import numpy as np

_ALLOWED = [0]


@contextlib.contextmanager
def sparse_gradients():
    """Let `gather` return row-sparse gradients inside this block."""
    _ALLOWED[0] += 1
    try:
        yield
    finally:
        _ALLOWED[0] -= 1


def allowed():
    return _ALLOWED[0] > 0


class IndexedRows:
    """Gradient equal to zeros(dense_shape) with rows `indices` (unique, sorted) = values."""

    __slots__ = ("indices", "values", "dense_shape")
    __array_priority__ = 200

    def __init__(self, indices, values, dense_shape):
        self.indices = indices
        self.values = values
        self.dense_shape = tuple(dense_shape)

    @classmethod
    def from_scatter(cls, shape, indices, g):
        """Rows `indices[j]` += g[j] (repeats summed) of zeros(shape), kept sparse."""
        idx = np.asarray(indices).reshape(-1)
        rows, where = _flat_rows(np.asarray(g), np.shape(indices), tuple(shape[1:]))
        if idx.size == 0:
            return cls(idx.astype(np.intp), rows, shape)
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        first = np.concatenate(([True], sidx[1:] != sidx[:-1]))
        starts = np.flatnonzero(first)
        return cls(sidx[starts].astype(np.intp, copy=False),
                   _segment_sums(rows, order if where is None else where[order], starts,
                                 first), shape)

    shape = property(lambda self: self.dense_shape)
    dtype = property(lambda self: self.values.dtype)
    ndim = property(lambda self: len(self.dense_shape))

    def dense(self):
        out = np.zeros(self.dense_shape, dtype=self.values.dtype)
        out[self.indices] = self.values
        return out

    def astype(self, dtype):
        return IndexedRows(self.indices, self.values.astype(dtype), self.dense_shape)

    def __array__(self, dtype=None, copy=None):
        d = self.dense()
        return d if dtype is None else d.astype(dtype)

    def __add__(self, other):
        if isinstance(other, IndexedRows):
            return IndexedRows.from_scatter(self.dense_shape,
                                            np.concatenate([self.indices, other.indices]),
                                            np.concatenate([self.values, other.values]))
        return self.dense() + other

    __radd__ = __add__

    def __repr__(self):
        return (f"<IndexedRows {len(self.indices)} of {self.dense_shape[0]} rows, "
                f"dtype={self.values.dtype}>")


def _flat_rows(g, index_shape, row_shape):
    """g (index_shape + row_shape) as rows (n, *row_shape) without copying where it can,
    and where[j] = the row holding index j (None: row j): a (batch, time, ...) gradient
    stored time-major (a recurrent op's input gradient, the (time, batch, ...) array
    swapped) is read in place instead of through a transposing copy."""
    n = int(np.prod(index_shape, dtype=np.int64))
    if len(index_shape) == 2 and not g.flags.c_contiguous and \
            g.swapaxes(0, 1).flags.c_contiguous:
        b, t = index_shape
        j = np.arange(n)
        return g.swapaxes(0, 1).reshape((n,) + row_shape), (j % t) * b + j // t
    return g.reshape((n,) + row_shape), None


_MAX_RANKS = 8      # a row repeated more often than this: its sum through np.add.reduceat


def _segment_sums(rows, order, starts, first):
    """Sum of rows[order] over the segments beginning at `starts` (`first` marks them), in
    segment order. Most embedding rows occur once or twice in a batch: the sums are taken
    as the first row of each segment plus, for k = 1, 2, ..., every segment's k-th repeat
    (one gather and add per k, no two rows of one add in the same segment), which is far
    faster than np.add.reduceat's per-segment loop. The few rows repeated more than
    _MAX_RANKS times (a padding token, "the" in text) are summed apart, by np.add.reduceat
    over their segments alone (64 x 80 tokens, half of them padding, 128 wide: 2.55 ->
    0.69 ms, against all segments through reduceat)."""
    n = len(order)
    seg = np.cumsum(first) - 1                         # segment of each sorted position
    rank = np.arange(n) - starts[seg]                  # position inside its segment
    counts = np.diff(starts, append=n)
    out = rows[order[starts]]
    heavy = np.flatnonzero(counts > _MAX_RANKS + 1)
    if len(heavy):
        in_heavy = np.repeat(np.isin(np.arange(len(starts)), heavy), counts)
        out[heavy] = np.add.reduceat(rows[order[in_heavy]],
                                     np.cumsum(counts[heavy]) - counts[heavy], axis=0)
        rank[in_heavy] = 0                             # (done: left out of the ranks)
    for k in range(1, min(int(rank.max()), _MAX_RANKS) + 1):
        at = np.flatnonzero(rank == k)
        out[seg[at]] += rows[order[at]]
    return out


def densify(g):
    """A dense array for any gradient (IndexedRows or array-like)."""
    return g.dense() if isinstance(g, IndexedRows) else g

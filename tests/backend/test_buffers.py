"""backend/buffers.py: BufferPool hands an array out again only when nobody else holds it;
`zeros` buffers keep every cell their users do not write at zero."""

import numpy as np

from modelkit.backend.buffers import BufferPool


def test_empty_recycles_only_free_arrays():
    pool = BufferPool()
    a = pool.empty((128, 256), np.float32)
    b = pool.empty((128, 256), np.float32)
    assert b is not a                       # `a` is still held
    del a
    c = pool.empty((128, 256), np.float32)
    assert c is not b and c.shape == (128, 256)


def test_zeros_come_back_only_for_the_same_cells():
    pool = BufferPool()
    a = pool.zeros((4, 130, 130), np.float32, "interior")
    assert not a.any()
    a[:, 1:-1, 1:-1] = 7.0                  # a user writes the interior only
    ident = id(a)
    del a
    again = pool.zeros((4, 130, 130), np.float32, "interior")
    assert id(again) == ident               # recycled, its border still zero
    assert not again[:, 0].any() and not again[:, :, -1].any()
    other = pool.zeros((4, 130, 130), np.float32, "other cells")
    assert id(other) != ident and not other.any()
    plain = pool.empty((4, 130, 130), np.float32)
    assert id(plain) not in (ident, id(other))

"""Memory-layout helpers: allocate arrays ordered in memory like another array.

The fast convolutions keep channels-first memory behind channels-last views (see
`conv_fast`); an op that allocates its result with plain `np.empty(shape)` would hand the
next op the other order, and every elementwise pass between the two would then stride
through memory. These helpers allocate in a given array's axis order instead.
"""

import numpy as np


def empty_ordered_like(shape, strides, dtype, zero=False):
    """np.empty(shape) (np.zeros when `zero`) whose axes are ordered in memory as `strides`
    (of an array with the same number of axes) orders them."""
    order = sorted(range(len(shape)), key=lambda i: -abs(strides[i]))
    alloc = np.zeros if zero else np.empty
    base = alloc([shape[i] for i in order], dtype)
    return base.transpose(np.argsort(order))

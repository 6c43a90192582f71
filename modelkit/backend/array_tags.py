"""Values attached to numpy arrays by their memory while the arrays are alive.

One op tells the next something about an array it made (a fused relu's output, a gradient
already masked, a batch norm's output and its backward sums) in a plain dict `table`:
`remember(table, a, value)`, and `recall(table, a)` gives the value back for exactly that
array -- same address, shape and strides -- while it is alive. A copy, a reshaped view or a
sum with another array is another array and finds nothing. The entry goes when the array is
freed (a weak reference's callback, which may run on the side stream's thread).
"""

import weakref


def key(a):
    """The memory an array is: (address, shape, strides)."""
    return (a.__array_interface__["data"][0], a.shape, a.strides)


def remember(table, a, value):
    """Attach `value` to the array `a` in `table` until `a` is freed."""
    k = key(a)

    def forget(ref, k=k):
        entry = table.get(k)
        if entry is not None and entry[0] is ref:
            table.pop(k, None)
    table[k] = (weakref.ref(a, forget), value)


def recall(table, a):
    """The value attached to exactly the array `a` in `table`, else None."""
    entry = table.get(key(a))
    if entry is None or entry[0]() is None:
        return None
    return entry[1]

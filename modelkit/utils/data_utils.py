"""Data helpers with Keras's names: the `Sequence` base class and `get_file`."""

__all__ = ["Sequence", "get_file"]


class Sequence:
    """Base class for fitting to a sequence of data batches, such as a dataset on disk.

    Like `keras.utils.Sequence`: implement `__getitem__(index)` (return one whole batch,
    e.g. `(x, y)` or `(x, y, sample_weight)`) and `__len__()` (the number of batches per
    epoch); `on_epoch_end()` is called after every epoch (shuffle there if you like).
    Subclasses need not call `super().__init__()`.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__()")

    def on_epoch_end(self):
        """Called at the end of every epoch; does nothing by default."""

    def __iter__(self):
        """Yield the batches of one epoch, in order."""
        for i in range(len(self)):
            yield self[i]


def get_file(*args, **kwargs):
    """Download a file into the cache unless it is there already; see modelkit.datasets.get_file."""
    from modelkit.datasets._download import get_file as _get_file

    return _get_file(*args, **kwargs)

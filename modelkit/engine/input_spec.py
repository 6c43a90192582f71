"""Keras's `InputSpec`: what a custom layer declares about its inputs (`self.input_spec`),
checked when the layer is called on symbolic tensors, as Keras checks it."""

from ..errors import ShapeError


class InputSpec:
    """`InputSpec(dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None)`;
    `axes` maps an axis to the size it must have, `None` in `shape` is any size."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None,
                 axes=None):
        self.dtype = dtype
        self.shape = None if shape is None else tuple(shape)
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim, self.min_ndim = max_ndim, min_ndim
        self.axes = {int(k): v for k, v in (axes or {}).items()}

    def __repr__(self):
        parts = [f"{k}={v!r}" for k, v in (("dtype", self.dtype), ("shape", self.shape),
                                            ("ndim", self.ndim), ("max_ndim", self.max_ndim),
                                            ("min_ndim", self.min_ndim), ("axes", self.axes))
                 if v]
        return f"InputSpec({', '.join(parts)})"

    def get_config(self):
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim,
                "max_ndim": self.max_ndim, "min_ndim": self.min_ndim, "axes": self.axes}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def check(self, shape, layer_name, index=0):
        """Raise ShapeError naming the layer when `shape` (batch included) breaks the spec."""
        rank = len(shape)
        where = f"Input {index} of layer {layer_name!r} is incompatible with the layer"
        if self.ndim is not None and rank != self.ndim:
            raise ShapeError(f"{where}: expected ndim={self.ndim}, found ndim={rank} "
                             f"(shape {tuple(shape)})")
        if self.max_ndim is not None and rank > self.max_ndim:
            raise ShapeError(f"{where}: expected max_ndim={self.max_ndim}, found ndim={rank}")
        if self.min_ndim is not None and rank < self.min_ndim:
            raise ShapeError(f"{where}: expected min_ndim={self.min_ndim}, found ndim={rank}")
        for axis, size in self.axes.items():
            have = shape[axis] if -rank <= axis < rank else None
            if size is not None and have not in (size, None):
                raise ShapeError(f"{where}: expected axis {axis} of input shape to have value "
                                 f"{size}, got shape {tuple(shape)}")
        if self.shape is not None:
            for want, have in zip(self.shape, shape):
                if want is not None and have is not None and want != have:
                    raise ShapeError(f"{where}: expected shape={self.shape}, found shape="
                                     f"{tuple(shape)}")

"""Keras's image preprocessing layers at inference: Resizing, CenterCrop and RandomCrop
(a centred crop, then TensorFlow's half-pixel resize as ONNX `Resize`); the random
augmentation layers are the identity (core.IDENTITY_OPS)."""

from __future__ import annotations

import numpy as np

from modelkit.image_geometry import INTERPOLATIONS, aspect_crop_box, center_crop_box, resize_matrix

from ..context import LayerUnsupported
from ..registry import export_handler
from .conv import from_cf, to_cf


def _spatial_axes(cfg, rank):
    return (rank - 2, rank - 1) if cfg.get("data_format") == "channels_first" else \
        (rank - 3, rank - 2)


def _crop_box(node, rows, cols):
    cfg, th, tw = node.config, int(node.config["height"]), int(node.config["width"])
    if node.op == "CenterCrop" and rows >= th and cols >= tw:
        return center_crop_box(rows, cols, th, tw)
    if node.op == "Resizing" and not cfg.get("crop_to_aspect_ratio"):
        return 0, 0, rows, cols
    return aspect_crop_box(rows, cols, th, tw)


def _check(node, opset):
    if node.config.get("interpolation", "bilinear") not in INTERPOLATIONS:
        return f"interpolation {node.config.get('interpolation')!r} has no ONNX mapping"
    return None


@export_handler("Resizing", "CenterCrop", "RandomCrop", check=_check)
def resize_crop(node, ctx, inputs):
    cfg = node.config
    x = inputs[0]
    if x.dtype != "float32":
        x = ctx.cast(x, "float32", hint=node.name)
    r, c = _spatial_axes(cfg, x.rank)
    rows, cols = x.shape[r], x.shape[c]
    if rows is None or cols is None:
        raise LayerUnsupported(f"{node.op} layer {node.name!r}: the input's height and width "
                               f"must be known to export it")
    top, left, h, w = _crop_box(node, rows, cols)
    if (h, w) != (rows, cols):
        x = ctx.slice(x, r, top, top + h)
        x = ctx.slice(x, c, left, left + w)
    th, tw = int(cfg["height"]), int(cfg["width"])
    if (h, w) == (th, tw):
        return [ctx.op("Identity", [x], x.shape, hint=node.name)]
    xc = to_cf(ctx, x, cfg, node.name)
    if cfg.get("interpolation") in ("bicubic", "area"):
        y = _matrix_resize(ctx, xc, h, w, th, tw, cfg["interpolation"])
        return [from_cf(ctx, y, cfg, node.name)]
    sizes = ctx.op("Concat", [ctx.shape_of(xc, 0, 2), ctx.ints([th, tw])], (4,),
                   dtype="int64", axis=0)
    nearest = cfg.get("interpolation", "bilinear") == "nearest"
    attrs = {"mode": "nearest", "nearest_mode": "round_prefer_ceil"} if nearest else \
        {"mode": "linear"}
    y = ctx.op("Resize", [xc, "", "", sizes], xc.shape[:2] + (th, tw), hint=node.name,
               coordinate_transformation_mode="half_pixel", **attrs)
    return [from_cf(ctx, y, cfg, node.name)]


def _matrix_resize(ctx, xc, h, w, th, tw, interpolation):
    """(N, C, h, w) -> (N, C, th, tw) as two MatMuls with the interpolation matrices (bicubic:
    TensorFlow's tabulated kernel, which ONNX Resize's exact cubic does not reproduce; area:
    TensorFlow's box average, which ONNX Resize has no mode for)."""
    mw = resize_matrix(w, tw, interpolation).T.astype(np.float32)
    mh = resize_matrix(h, th, interpolation).T.astype(np.float32)
    n, c = xc.shape[:2]
    y = ctx.op("MatMul", [xc, ctx.const(mw, "resize_cols")], (n, c, h, tw))
    y = ctx.transpose(y, [0, 1, 3, 2])
    y = ctx.op("MatMul", [y, ctx.const(mh, "resize_rows")], (n, c, tw, th))
    return ctx.transpose(y, [0, 1, 3, 2])

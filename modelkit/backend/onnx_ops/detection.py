"""Detection-model ONNX ops: NonMaxSuppression (integer output) and RoiAlign
(differentiable in the feature map)."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from . import onnx_op
from ...onnx_spec import text
from ._util import const, op, values


def _corners(boxes, center_point_box):
    """(N, 4) boxes as (y1, x1, y2, x2) with y1 <= y2, x1 <= x2."""
    b = boxes.astype(np.float64)
    if center_point_box:
        xc, yc, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)
    return np.stack([np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3]),
                     np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3])], axis=1)


def _iou(box, others):
    ih = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iw = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ih * iw
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@onnx_op("NonMaxSuppression")
def non_max_suppression(inputs, attrs, ctx):
    """Per batch entry and class: boxes by descending score (above score_threshold), each
    kept unless its IoU with a kept one exceeds iou_threshold, at most
    max_output_boxes_per_class of them. Output rows: (batch, class, box index)."""
    boxes, scores = (np.asarray(values(t)) for t in inputs[:2])
    arg = list(inputs[2:]) + [None] * 3
    limit = int(np.asarray(values(arg[0])).reshape(-1)[0]) if arg[0] is not None else 0
    iou_max = float(np.asarray(values(arg[1])).reshape(-1)[0]) if arg[1] is not None else 0.0
    floor = float(np.asarray(values(arg[2])).reshape(-1)[0]) if arg[2] is not None else None
    if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or \
            scores.shape[0] != boxes.shape[0] or scores.shape[2] != boxes.shape[1]:
        raise ShapeError(f"NonMaxSuppression: boxes {boxes.shape} and scores {scores.shape} "
                         "must be (B, N, 4) and (B, C, N)")
    center = int(attrs.get("center_point_box", 0))
    rows = []
    for b in range(boxes.shape[0]):
        corners = _corners(boxes[b], center)
        for c in range(scores.shape[1]):
            s = scores[b, c].astype(np.float64)
            order = [i for i in np.argsort(-s, kind="stable") if floor is None or s[i] > floor]
            kept = []
            for i in order:
                if len(kept) >= limit:
                    break
                if not kept or np.all(_iou(corners[i], corners[kept]) <= iou_max):
                    kept.append(i)
            rows.extend((b, c, i) for i in kept)
    return const(np.array(rows, np.int64).reshape(-1, 3))


def _roi_taps(roi, scale, half_pixel, out_h, out_w, ratio, height, width):
    """Bilinear taps of RoiAlign's sample points for one region: positions (cells, samples,
    4) into the flattened H*W map, their weights, and the samples per cell."""
    offset = 0.5 if half_pixel else 0.0
    x0, y0, x1, y1 = (float(v) * scale - offset for v in roi)
    rw, rh = x1 - x0, y1 - y0
    if not half_pixel:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bh, bw = rh / out_h, rw / out_w
    gh = int(ratio) if ratio > 0 else int(np.ceil(rh / out_h))
    gw = int(ratio) if ratio > 0 else int(np.ceil(rw / out_w))
    ph, pw, iy, ix = np.meshgrid(np.arange(out_h), np.arange(out_w), np.arange(gh),
                                 np.arange(gw), indexing="ij")
    y = y0 + ph * bh + (iy + 0.5) * bh / gh
    x = x0 + pw * bw + (ix + 0.5) * bw / gw
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y, x = np.maximum(y, 0), np.maximum(x, 0)
    y_lo, x_lo = y.astype(np.int64), x.astype(np.int64)
    top, right = y_lo >= height - 1, x_lo >= width - 1
    y_lo, x_lo = np.where(top, height - 1, y_lo), np.where(right, width - 1, x_lo)
    y, x = np.where(top, y_lo, y), np.where(right, x_lo, x)
    y_hi, x_hi = np.where(top, y_lo, y_lo + 1), np.where(right, x_lo, x_lo + 1)
    ly, lx = y - y_lo, x - x_lo
    hy, hx = 1.0 - ly, 1.0 - lx
    pos = np.stack([y_lo * width + x_lo, y_lo * width + x_hi, y_hi * width + x_lo,
                    y_hi * width + x_hi], axis=-1)
    w = np.stack([hy * hx, hy * lx, ly * hx, ly * lx], axis=-1)
    pos, w = np.where(outside[..., None], 0, pos), np.where(outside[..., None], 0.0, w)
    cells = out_h * out_w
    return pos.reshape(cells, gh * gw, 4), w.reshape(cells, gh * gw, 4), max(gh * gw, 1)


@onnx_op("RoiAlign")
def roi_align(inputs, attrs, ctx):
    """Each region of interest pooled to (output_height, output_width) from bilinear samples
    (avg, or the max of the weighted taps); differentiable in X."""
    x, rois, batch = inputs
    boxes = np.asarray(values(rois), np.float64)
    which = np.asarray(values(batch)).astype(np.int64).reshape(-1)
    n, c, height, width = x.shape
    out_h, out_w = int(attrs.get("output_height", 1)), int(attrs.get("output_width", 1))
    ratio = int(attrs.get("sampling_ratio", 0))
    scale = float(attrs.get("spatial_scale", 1.0))
    half_pixel = text(attrs.get("coordinate_transformation_mode"), "half_pixel") == "half_pixel"
    mode = text(attrs.get("mode"), "avg")
    flat = op("reshape", x, shape=(n, c, height * width))
    pooled = []
    for roi, b in zip(boxes, which):
        pos, w, count = _roi_taps(roi, scale, half_pixel, out_h, out_w, ratio, height, width)
        taps = op("take", op("getitem", flat, index=(int(b),)), pos, axis=1)  # (C, cells, S, 4)
        weighted = op("multiply", taps, const(w.astype(x.dtype)))
        if mode == "avg":
            cell = op("divide", op("sum", weighted, axis=(2, 3)),
                      const(np.asarray(count, x.dtype)))
        else:
            cell = op("max", op("max", weighted, axis=3), axis=2)
        pooled.append(op("reshape", cell, shape=(c, out_h, out_w)))
    if not pooled:
        return const(np.zeros((0, c, out_h, out_w), x.dtype))
    return op("stack", *pooled, axis=0)

"""Detection-model ONNX ops (forward only: integer outputs): NonMaxSuppression."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from . import onnx_op
from ._util import const, values


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

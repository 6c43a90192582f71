"""Crop boxes of Keras's image preprocessing layers, shared by the layers and the ONNX
exporter (plain integer arithmetic, no imports)."""


def aspect_crop_box(height, width, target_height, target_width):
    """The centred box of the target aspect ratio that Keras crops before resizing
    (`crop_to_aspect_ratio=True`, `smart_resize`, CenterCrop/RandomCrop on a small image):
    (top, left, crop_height, crop_width)."""
    crop_h = min(height, int(float(width * target_height) / target_width))
    crop_w = min(width, int(float(height * target_width) / target_height))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def center_crop_box(height, width, target_height, target_width):
    """CenterCrop's box when the image is at least the target size: (top, left, h, w)."""
    return (height - target_height) // 2, (width - target_width) // 2, target_height, \
        target_width

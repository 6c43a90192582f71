"""Image preprocessing with `keras.preprocessing.image`'s names and numbers.

Transforms and `ImageDataGenerator` work on numpy arrays; reading, writing and brightness
shifts use Pillow, an optional extra (`pip install modelkit[image]`).
"""

from modelkit.preprocessing.image.affine import (apply_affine_transform, apply_brightness_shift,
                                                 apply_channel_shift, flip_axis,
                                                 random_brightness, random_channel_shift,
                                                 random_rotation, random_shear, random_shift,
                                                 random_zoom, transform_matrix_offset_center)
from modelkit.preprocessing.image.generator import ImageDataGenerator
from modelkit.preprocessing.image.iterators import (DirectoryIterator, Iterator,
                                                    NumpyArrayIterator)
from modelkit.preprocessing.image.utils import (array_to_img, img_to_array, list_pictures,
                                                load_img, save_img)

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "DirectoryIterator",
           "array_to_img", "img_to_array", "load_img", "save_img", "list_pictures",
           "apply_affine_transform", "apply_brightness_shift", "apply_channel_shift",
           "flip_axis", "random_brightness", "random_channel_shift", "random_rotation",
           "random_shear", "random_shift", "random_zoom", "transform_matrix_offset_center"]

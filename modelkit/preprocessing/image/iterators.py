"""Batch iterators behind `ImageDataGenerator.flow` and `flow_from_directory`.

Each is a modelkit `Sequence` (so `fit`/`fit_generator` index it by batch) and also an endless
iterator (`next(it)`, `for x, y in it`), with Keras's order of random draws: the index shuffle
at each epoch start, then each image's transform, seeded by `seed + batches seen` if `seed`.
"""

import os
import threading
import warnings

import numpy as np

from modelkit.errors import ConfigError, ShapeError
from modelkit.preprocessing.image.utils import (COLOR_MODES, array_to_img, check_data_format,
                                                img_to_array, load_img)
from modelkit.utils.data_utils import Sequence

__all__ = ["Iterator", "NumpyArrayIterator", "DirectoryIterator"]

SUBSETS = ("training", "validation")


class Iterator(Sequence):
    """Base class: batches of `batch_size` of `n` samples, reshuffled every epoch if `shuffle`.

    Subclasses implement `_get_batches_of_transformed_samples(index_array)`.
    """

    white_list_formats = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")

    def __init__(self, n, batch_size, shuffle, seed):
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_array = None
        self.index_generator = self._flow_index()

    def _set_index_array(self):
        self.index_array = np.arange(self.n)
        if self.shuffle:
            self.index_array = np.random.permutation(self.n)

    def __getitem__(self, idx):
        if idx >= len(self):
            raise ConfigError(f"{type(self).__name__}: asked to retrieve element {idx}, but the "
                              f"Sequence has length {len(self)}")
        if self.seed is not None:
            np.random.seed(self.seed + self.total_batches_seen)
        self.total_batches_seen += 1
        if self.index_array is None:
            self._set_index_array()
        index_array = self.index_array[self.batch_size * idx:self.batch_size * (idx + 1)]
        return self._get_batches_of_transformed_samples(index_array)

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def on_epoch_end(self):
        self._set_index_array()

    def reset(self):
        self.batch_index = 0

    def _flow_index(self):
        self.reset()
        while True:
            if self.seed is not None:
                np.random.seed(self.seed + self.total_batches_seen)
            if self.batch_index == 0:
                self._set_index_array()
            current = (self.batch_index * self.batch_size) % self.n if self.n else 0
            if self.n > current + self.batch_size:
                self.batch_index += 1
            else:
                self.batch_index = 0
            self.total_batches_seen += 1
            yield self.index_array[current:current + self.batch_size]

    def __iter__(self):
        """Endless, as in Keras: `for x, y in it` runs until you break."""
        return self

    def __next__(self):
        with self.lock:
            index_array = next(self.index_generator)
        return self._get_batches_of_transformed_samples(index_array)

    next = __next__

    def _get_batches_of_transformed_samples(self, index_array):
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  "_get_batches_of_transformed_samples")

    def _transform(self, generator, x):
        """One image through the generator's random transform and standardisation."""
        if generator is None:
            return x
        params = generator.get_random_transform(x.shape)
        x = generator.apply_transform(x, params)
        return generator.standardize(x)

    def _save_batch(self, batch_x, index_array, hash_range):
        if not self.save_to_dir:
            return
        for i, j in enumerate(index_array):
            img = array_to_img(batch_x[i], self.data_format, scale=True)
            fname = (f"{self.save_prefix}_{j}_{np.random.randint(hash_range)}."
                     f"{self.save_format}")
            img.save(os.path.join(self.save_to_dir, fname))


def _split_bounds(generator, subset):
    """(start, stop) fractions of the samples for `subset`, or None without a subset."""
    if subset is None:
        return None
    if subset not in SUBSETS:
        raise ConfigError(f"Invalid subset name: {subset!r}; expected 'training' or 'validation'")
    split = generator._validation_split
    return (0, split) if subset == "validation" else (split, 1)


class NumpyArrayIterator(Iterator):
    """Batches `(x, y[, sample_weight])` of augmented images from arrays (`flow`).

    `x` may be a tuple `(images, extra)` whose extra array(s) ride along untransformed;
    with `y=None` the batches are the images alone.
    """

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False,
                 sample_weight=None, seed=None, data_format="channels_last", save_to_dir=None,
                 save_prefix="", save_format="png", subset=None, dtype="float32"):
        self.dtype = dtype
        if type(x) in (tuple, list):
            x_misc = ([np.asarray(x[1])] if type(x[1]) is not list
                      else [np.asarray(xx) for xx in x[1]])
            x = x[0]
            for xx in x_misc:
                if len(x) != len(xx):
                    raise ShapeError("flow: all of the arrays in `x` should have the same "
                                     f"length. Found a pair with: len(x[0]) = {len(x)}, "
                                     f"len(x[?]) = {len(xx)}")
        else:
            x_misc = []
        if y is not None and len(x) != len(y):
            raise ShapeError("flow: `x` (images tensor) and `y` (labels) should have the same "
                             f"length. Found: x.shape = {np.asarray(x).shape}, "
                             f"y.shape = {np.asarray(y).shape}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ShapeError("flow: `x` (images tensor) and `sample_weight` should have the "
                             f"same length. Found: x.shape = {np.asarray(x).shape}, "
                             f"sample_weight.shape = {np.asarray(sample_weight).shape}")
        bounds = _split_bounds(image_data_generator, subset)
        if bounds is not None:
            split_idx = int(len(x) * image_data_generator._validation_split)
            if y is not None and not np.array_equal(np.unique(y[:split_idx]),
                                                    np.unique(y[split_idx:])):
                raise ConfigError("flow: training and validation subsets have different number "
                                  "of classes after the split. If your numpy arrays are sorted "
                                  "by the label, you might want to shuffle them.")
            part = slice(None, split_idx) if subset == "validation" else slice(split_idx, None)
            x = x[part]
            x_misc = [np.asarray(xx[part]) for xx in x_misc]
            if y is not None:
                y = y[part]
        self.x = np.asarray(x, dtype=self.dtype)
        self.x_misc = x_misc
        if self.x.ndim != 4:
            raise ShapeError("flow: input data should have rank 4 (images, rows, cols, "
                             f"channels); you passed an array with shape {self.x.shape}")
        data_format = check_data_format(data_format, "flow")
        channels_axis = 3 if data_format == "channels_last" else 1
        if self.x.shape[channels_axis] not in {1, 3, 4}:
            warnings.warn(f'NumpyArrayIterator is set to use the data format convention '
                          f'"{data_format}" (channels on axis {channels_axis}), i.e. expected '
                          f"either 1, 3, or 4 channels on axis {channels_axis}. However, it was "
                          f"passed an array with shape {self.x.shape} "
                          f"({self.x.shape[channels_axis]} channels).")
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        super().__init__(self.x.shape[0], batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array):
        batch_x = np.zeros((len(index_array),) + self.x.shape[1:], dtype=self.dtype)
        for i, j in enumerate(index_array):
            batch_x[i] = self._transform(self.image_data_generator,
                                         self.x[j].astype(self.dtype))
        self._save_batch(batch_x, index_array, 10000)
        misc = [xx[index_array] for xx in self.x_misc]
        inputs = [batch_x] + misc if misc else batch_x
        if self.y is None:
            return inputs
        output = (inputs, self.y[index_array])
        if self.sample_weight is not None:
            output += (self.sample_weight[index_array],)
        return output


def _iter_valid_files(directory, formats, follow_links):
    """(root, filename) of the image files under `directory`, sorted, recursively."""
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links),
                                 key=lambda entry: entry[0]):
        for fname in sorted(files):
            if fname.lower().endswith(".tiff"):
                warnings.warn('Using ".tiff" files with multiple bands will cause distortion. '
                              "Please verify your output.")
            if fname.lower().endswith(formats):
                yield root, fname


def _class_files(directory, formats, split, follow_links):
    """Paths of one class folder's images relative to its parent, within the `split` slice."""
    dirname = os.path.basename(directory)
    files = list(_iter_valid_files(directory, formats, follow_links))
    if split:
        files = files[int(split[0] * len(files)):int(split[1] * len(files))]
    return [os.path.join(dirname, os.path.relpath(os.path.join(root, fname), directory))
            for root, fname in files]


class DirectoryIterator(Iterator):
    """Batches of augmented images read from class sub-folders (`flow_from_directory`).

    Classes are the sub-folder names in alphanumeric order (or `classes`), their indices in
    `class_indices`; `class_mode` is 'categorical' (one-hot), 'binary', 'sparse' (class
    numbers), 'input' (the images again) or None (images only).
    """

    allowed_class_modes = ("categorical", "binary", "sparse", "input", None)

    def __init__(self, directory, image_data_generator, target_size=(256, 256),
                 color_mode="rgb", classes=None, class_mode="categorical", batch_size=32,
                 shuffle=True, seed=None, data_format="channels_last", save_to_dir=None,
                 save_prefix="", save_format="png", follow_links=False, subset=None,
                 interpolation="nearest", dtype="float32"):
        if color_mode not in COLOR_MODES:
            raise ConfigError(f"flow_from_directory: invalid color mode {color_mode!r}; "
                              'expected "rgb", "rgba", or "grayscale".')
        if class_mode not in self.allowed_class_modes:
            raise ConfigError(f"flow_from_directory: invalid class_mode {class_mode!r}; "
                              f"expected one of {list(self.allowed_class_modes)}")
        data_format = check_data_format(data_format, "flow_from_directory")
        if not os.path.isdir(directory):
            raise ConfigError(f"flow_from_directory: {os.fspath(directory)!r} is not a "
                              "directory (expected one sub-folder per class)")
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        self.color_mode = color_mode
        self.data_format = data_format
        channels = {"rgb": 3, "rgba": 4, "grayscale": 1}[color_mode]
        self.image_shape = (self.target_size + (channels,) if data_format == "channels_last"
                            else (channels,) + self.target_size)
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.interpolation = interpolation
        self.split = _split_bounds(image_data_generator, subset)
        self.subset = subset
        self.directory = directory
        self.class_mode = class_mode
        self.dtype = dtype
        if not classes:
            classes = [d for d in sorted(os.listdir(directory))
                       if os.path.isdir(os.path.join(directory, d))]
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))
        self.filenames, labels = [], []
        for name in classes:
            files = _class_files(os.path.join(directory, name), self.white_list_formats,
                                 self.split, follow_links)
            self.filenames += files
            labels += [self.class_indices[name]] * len(files)
        self.samples = len(self.filenames)
        self.classes = np.array(labels, dtype="int32")
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, f) for f in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def filepaths(self):
        return self._filepaths

    @property
    def labels(self):
        return self.classes

    @property
    def sample_weight(self):
        return None

    def _get_batches_of_transformed_samples(self, index_array):
        batch_x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        for i, j in enumerate(index_array):
            img = load_img(self._filepaths[j], color_mode=self.color_mode,
                           target_size=self.target_size, interpolation=self.interpolation)
            x = img_to_array(img, data_format=self.data_format)
            img.close()
            batch_x[i] = self._transform(self.image_data_generator, x)
        self._save_batch(batch_x, index_array, int(1e7))
        if self.class_mode == "input":
            batch_y = batch_x.copy()
        elif self.class_mode in ("binary", "sparse"):
            batch_y = self.classes[index_array].astype(self.dtype)
        elif self.class_mode == "categorical":
            batch_y = np.zeros((len(batch_x), self.num_classes), dtype=self.dtype)
            batch_y[np.arange(len(batch_x)), self.classes[index_array]] = 1.0
        else:
            return batch_x
        return batch_x, batch_y

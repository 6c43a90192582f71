"""What the `keras.applications` networks share (argument checks, input, classifier head,
Keras's ImageNet weight files), and VGG16/VGG19 built from one table of blocks (same layer
names and shapes as Keras, so its weight files load into them)."""

from modelkit.applications.imagenet_utils import preprocess_input as _preprocess
from modelkit.backend import config as backend_config
from modelkit.errors import ConfigError

WEIGHTS_FOLDER = "https://storage.googleapis.com/tensorflow/keras-applications/"


def model_input(name, include_top, weights, input_tensor, input_shape, pooling, classes,
                side=224, min_size=32):
    """Check the Keras arguments; -> (the image tensor, the model's inputs). side: the
    default input side; min_size: the smallest side Keras accepts in `input_shape`."""
    from modelkit.layers import Input
    from modelkit.utils.layer_utils import get_source_inputs
    if not (weights in ("imagenet", None) or isinstance(weights, str)):
        raise ConfigError(f"{name}: weights must be 'imagenet', None or a file path, got "
                          f"{weights!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ConfigError(f"{name}: weights='imagenet' with include_top=True needs "
                          f"classes=1000, got {classes}")
    if pooling not in (None, "avg", "max"):
        raise ConfigError(f"{name}: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if input_tensor is not None:
        from modelkit.engine.placeholders import to_keras
        img_input = to_keras(input_tensor)
        inputs = get_source_inputs(img_input)
        return img_input, inputs[0] if len(inputs) == 1 else inputs
    channels_first = backend_config.image_data_format() == "channels_first"
    if input_shape is None:
        size = side if include_top else None
        input_shape = (3, size, size) if channels_first else (size, size, 3)
    elif len(input_shape) == 3:
        rows_cols = input_shape[1:] if channels_first else input_shape[:2]
        if any(d is not None and d < min_size for d in rows_cols):
            raise ConfigError(f"{name}: input size must be at least {min_size}x{min_size}, "
                              f"got input_shape={tuple(input_shape)}")
    img_input = Input(shape=tuple(input_shape))
    return img_input, img_input


def keras_weight_files(name, top_md5, notop_md5):
    """{include_top: (file name, md5)} of Keras's usual ImageNet weight file names."""
    return {True: (f"{name}_weights_tf_dim_ordering_tf_kernels.h5", top_md5),
            False: (f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5", notop_md5)}


def spatial_size(x):
    """(rows, cols) of an image tensor in the image data format (None where unknown)."""
    from modelkit import backend as K
    shape = K.int_shape(x)
    return shape[2:4] if backend_config.image_data_format() == "channels_first" else shape[1:3]


def make_divisible(v, divisor=8):
    """The nearest multiple of `divisor` to v, at least divisor and not 10% below v."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def correct_pad(size, kernel_size=3):
    """Keras's `imagenet_utils.correct_pad`: the zero padding before a stride-2 'valid'
    convolution for a spatial size (None: unknown)."""
    adjust = (1, 1) if size[0] is None else (1 - size[0] % 2, 1 - size[1] % 2)
    half = kernel_size // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


def weights_side(x, weights, sizes):
    """The input side in Keras's model and weight file names: the image's rows, but for
    weights='imagenet' 224 (the file Keras falls back to) unless the image is square and
    its side is one of `sizes`."""
    rows, cols = spatial_size(x)
    return 224 if weights == "imagenet" and not (rows == cols and rows in sizes) else rows


def finish_application(name, x, inputs, include_top, weights, pooling, classes,
                       classifier_activation, weight_files, flatten, folder=None,
                       pool_names=(None, None), head=None, url_folder=None):
    """The classifier head (VGG's flatten + fc1/fc2, or global average pooling), or the
    `pooling` of a headless model; then the weights (Keras's ImageNet file or a path).
    folder: Keras's download folder (default: the file name up to '_weights');
    pool_names: the names of the average / max pooling layers (ResNet names them);
    head: a function building another classifier on x (MobileNet's 1x1 convolution);
    url_folder: the whole download folder, for files outside Keras's usual one."""
    from modelkit.layers import Dense, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D
    from modelkit.models import Model
    if include_top and head is not None:
        x = head(x)
    elif include_top:
        if flatten:
            x = Flatten(name="flatten")(x)
            x = Dense(4096, activation="relu", name="fc1")(x)
            x = Dense(4096, activation="relu", name="fc2")(x)
        else:
            x = GlobalAveragePooling2D(name=pool_names[0] or "avg_pool")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = GlobalAveragePooling2D(name=pool_names[0])(x)
    elif pooling == "max":
        x = GlobalMaxPooling2D(name=pool_names[1])(x)
    model = Model(inputs, x, name=name)
    if weights == "imagenet":
        from modelkit.datasets import get_file
        fname, md5 = weight_files[bool(include_top)]
        url_folder = url_folder or WEIGHTS_FOLDER + (folder or fname.split("_weights")[0]) + "/"
        weights = get_file(fname, url_folder + fname, file_hash=md5, cache_subdir="models")
    if weights is not None:
        model.load_weights(weights)
    return model


def build_vgg(name, convs_per_block, weight_files, include_top=True, weights="imagenet",
              input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax"):
    """weight_files: {include_top: (file name, md5)} of Keras's ImageNet weights."""
    from modelkit.layers import Conv2D, MaxPooling2D
    x, inputs = model_input(name, include_top, weights, input_tensor, input_shape, pooling,
                            classes)
    for block, (n, f) in enumerate(zip(convs_per_block, (64, 128, 256, 512, 512)), start=1):
        for i in range(1, n + 1):
            x = Conv2D(f, (3, 3), activation="relu", padding="same",
                       name=f"block{block}_conv{i}")(x)
        x = MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    return finish_application(name, x, inputs, include_top, weights, pooling, classes,
                              classifier_activation, weight_files, flatten=True)


def vgg_application(name, convs_per_block, top_md5, notop_md5):
    """The `VGG16`/`VGG19` function of Keras's signature, for Keras's weight files."""
    files = keras_weight_files(name, top_md5, notop_md5)

    def application(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                    pooling=None, classes=1000, classifier_activation="softmax"):
        return build_vgg(name, convs_per_block, files, include_top, weights, input_tensor,
                         input_shape, pooling, classes, classifier_activation)
    application.__name__ = application.__qualname__ = name.upper()
    return application


def application_function(build, name, public_name):
    """The Keras-signature function (`ResNet50`, `DenseNet121`, ...) calling
    `build(name, include_top, weights, ...)` for one network of a family."""
    def application(include_top=True, weights="imagenet", input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax"):
        return build(name, include_top, weights, input_tensor, input_shape, pooling,
                     classes, classifier_activation)
    application.__name__ = application.__qualname__ = public_name
    return application


def preprocess_input(x, data_format=None):
    """VGG's input: Keras's 'caffe' mode (RGB -> BGR, minus the ImageNet channel means)."""
    return _preprocess(x, data_format=data_format, mode="caffe")

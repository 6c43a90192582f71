"""keras.applications' networks (layer names and parameter counts as
tf-keras 2.21 builds them, so Keras's weight files load), imagenet_utils against tf-keras's
numbers, and the two Keras 2 examples that use them (conv_filter_visualization,
neural_style_transfer).

Offline parity (tests/fixtures/applications/keras_parity.py: tf-keras 2.21 with random
weights and batch-norm statistics at 64x64, its .h5 loaded here by path; max |diff| / max
|output| on a random batch), include_top=False with pooling='avg' / include_top=True
(logits): ResNet50 6.3e-07 / 7.0e-07, MobileNetV2 2.5e-07 (alpha=0.35: 1.9e-07) /
3.3e-07, MobileNet 1.4e-07 (alpha=0.5: 1.4e-07) / 5.2e-07, Xception (71x71) 2.0e-07 /
2.1e-07, ResNet50V2 3.7e-07 / 4.1e-07, DenseNet121 1.4e-07 / 2.6e-07, EfficientNetB0 (its
Normalization's int64 count included) 2.6e-07 / 1.9e-07.

Xception, ResNet50V2/101V2/152V2, DenseNet121/169/201 and EfficientNetB0-B7 are also checked
here against committed tf-keras fixtures (tests/fixtures/applications/keras_architectures.py):
every layer's name and class in order, parameter counts, and outputs with the same random
weights."""

import gzip
import json
import pathlib

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.applications import (VGG16, VGG19, DenseNet121, DenseNet201, EfficientNetB0,
                                   EfficientNetB7, MobileNet, MobileNetV2, ResNet50,
                                   ResNet50V2, ResNet101, ResNet152, ResNet152V2, Xception,
                                   densenet, efficientnet, imagenet_utils, mobilenet,
                                   mobilenet_v2, resnet, resnet50, resnet_v2, vgg16, vgg19,
                                   xception)
from modelkit.errors import ConfigError

# (name, include_top) -> (parameters, last layer names, layer count, first layers after the
# input) from tf-keras 2.21
VGG_FIRST = ["block1_conv1", "block1_conv2"]
RESNET_FIRST = ["conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu", "pool1_pad", "pool1_pool",
                "conv2_block1_1_conv", "conv2_block1_1_bn", "conv2_block1_1_relu",
                "conv2_block1_2_conv", "conv2_block1_2_bn", "conv2_block1_2_relu",
                "conv2_block1_0_conv", "conv2_block1_3_conv", "conv2_block1_0_bn",
                "conv2_block1_3_bn", "conv2_block1_add", "conv2_block1_out"]
MOBILENET_V2_FIRST = ["Conv1", "bn_Conv1", "Conv1_relu", "expanded_conv_depthwise",
                      "expanded_conv_depthwise_BN", "expanded_conv_depthwise_relu",
                      "expanded_conv_project", "expanded_conv_project_BN", "block_1_expand",
                      "block_1_expand_BN", "block_1_expand_relu", "block_1_pad",
                      "block_1_depthwise"]
MOBILENET_FIRST = ["conv1", "conv1_bn", "conv1_relu", "conv_dw_1", "conv_dw_1_bn",
                   "conv_dw_1_relu", "conv_pw_1", "conv_pw_1_bn", "conv_pw_1_relu", "conv_pad_2",
                   "conv_dw_2"]
KERAS = {(VGG16, True): (138357544, ["flatten", "fc1", "fc2", "predictions"], 23, VGG_FIRST),
         (VGG16, False): (14714688, ["block5_conv1", "block5_conv2", "block5_conv3",
                                     "block5_pool"], 19, VGG_FIRST),
         (VGG19, True): (143667240, ["flatten", "fc1", "fc2", "predictions"], 26, VGG_FIRST),
         (VGG19, False): (20024384, ["block5_conv2", "block5_conv3", "block5_conv4",
                                     "block5_pool"], 22, VGG_FIRST),
         (ResNet50, True): (25636712, ["conv5_block3_add", "conv5_block3_out", "avg_pool",
                                       "predictions"], 177, RESNET_FIRST),
         (ResNet50, False): (23587712, ["conv5_block3_3_conv", "conv5_block3_3_bn",
                                        "conv5_block3_add", "conv5_block3_out"], 175,
                             RESNET_FIRST),
         (MobileNetV2, True): (3538984, ["Conv_1_bn", "out_relu", "avg_pool", "predictions"],
                               156, MOBILENET_V2_FIRST),
         (MobileNetV2, False): (2257984, ["block_16_project_BN", "Conv_1", "Conv_1_bn",
                                          "out_relu"], 154, MOBILENET_V2_FIRST),
         (MobileNet, True): (4253864, ["dropout", "conv_preds", "reshape_2", "predictions"],
                             91, MOBILENET_FIRST),
         (MobileNet, False): (3228864, ["conv_dw_13_relu", "conv_pw_13", "conv_pw_13_bn",
                                        "conv_pw_13_relu"],
                              86, MOBILENET_FIRST)}


@pytest.mark.parametrize("factory,top", KERAS)
def test_architecture_matches_keras(factory, top):
    params, last, count, first = KERAS[(factory, top)]
    model = factory(weights=None, include_top=top, input_shape=None if top else (32, 32, 3))
    assert model.count_params() == params
    names = [la.name for la in model.layers]
    assert names[-4:] == last and len(model.layers) == count
    assert names[1:1 + len(first)] == first


def test_weights_from_a_file_and_pooling(tmp_path):
    a = VGG16(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="avg")
    a.save_weights(str(tmp_path / "w.h5"))
    b = VGG16(weights=str(tmp_path / "w.h5"), include_top=False, input_shape=(32, 32, 3),
              pooling="avg")
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(b.predict(x), a.predict(x), rtol=1e-6)
    assert b.output_shape == (None, 512)
    assert VGG19(weights=None, include_top=False, pooling="max").output_shape == (None, 512)
    with pytest.raises(ConfigError, match="classes=1000"):
        VGG16(weights="imagenet", classes=10)
    with pytest.raises(ConfigError, match="pooling"):
        VGG16(weights=None, include_top=False, pooling="sum")


def test_preprocess_input_equals_tf_keras():
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    caffe = vgg16.preprocess_input(x)
    np.testing.assert_allclose(caffe[0, 0, 0], [-101.939, -115.779, -123.68], rtol=1e-6)
    np.testing.assert_allclose(caffe, x[..., ::-1] - [103.939, 116.779, 123.68], rtol=1e-6)
    np.testing.assert_allclose(vgg19.preprocess_input(x), caffe)
    cf = imagenet_utils.preprocess_input(x.transpose(0, 3, 1, 2), data_format="channels_first")
    np.testing.assert_allclose(cf, caffe.transpose(0, 3, 1, 2), rtol=1e-6)
    np.testing.assert_allclose(imagenet_utils.preprocess_input(x, mode="tf"), x / 127.5 - 1)
    torch = imagenet_utils.preprocess_input(x, mode="torch")
    np.testing.assert_allclose(torch[0, 0, 1], [-2.0665298, -1.9656862, -1.7172985], rtol=1e-6)
    assert x[0, 0, 0, 0] == 0                     # the input is not changed in place
    with pytest.raises(ConfigError, match="mode"):
        imagenet_utils.preprocess_input(x, mode="bgr")


def test_decode_predictions_with_a_class_index():
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    preds = np.zeros((2, 1000), "float32")
    preds[0, [7, 3]] = [0.6, 0.3]
    preds[1, 999] = 1.0
    out = vgg16.decode_predictions(preds, top=2, class_index=index)
    assert out[0] == [("n00000007", "class_7", pytest.approx(0.6)),
                      ("n00000003", "class_3", pytest.approx(0.3))]
    assert out[1][0][:2] == ("n00000999", "class_999")
    with pytest.raises(ConfigError, match=r"\(samples, 1000\)"):
        vgg16.decode_predictions(np.zeros((2, 10)), class_index=index)


def test_conv_filter_visualization_pattern():
    model = vgg16.VGG16(weights=None, include_top=False)
    layer_dict = {layer.name: layer for layer in model.layers[1:]}
    input_img = model.input
    loss = K.mean(layer_dict["block2_conv1"].output[:, :, :, 3])
    grads = K.gradients(loss, input_img)[0]
    iterate = K.function([input_img], [loss, grads])
    value, g = iterate([np.random.default_rng(1).random((1, 16, 16, 3)) * 20 + 128.0])
    assert np.isfinite(value) and g.shape == (1, 16, 16, 3) and np.abs(g).sum() > 0


def test_neural_style_transfer_input_tensor_pattern():
    h = w = 32
    rng = np.random.default_rng(2)
    base = K.variable(vgg19.preprocess_input(rng.random((1, h, w, 3)) * 255))
    style = K.variable(vgg19.preprocess_input(rng.random((1, h, w, 3)) * 255))
    combination = K.placeholder((1, h, w, 3))
    model = vgg19.VGG19(input_tensor=K.concatenate([base, style, combination], axis=0),
                        weights=None, include_top=False)
    feats = {layer.name: layer.output for layer in model.layers}["block2_conv1"]
    loss = K.sum(K.square(feats[2] - feats[0]))
    grads = K.gradients(loss, combination)
    value, g = K.function([combination], [loss] + grads)([rng.random((1, h, w, 3))])
    assert np.isfinite(value) and value > 0 and g.shape == (1, h, w, 3)


def test_inception_v3_matches_keras_and_its_blocks_differentiate():
    from modelkit.applications import InceptionV3, inception_v3
    model = InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    # tf-keras 2.21: 21,802,784 parameters, 311 layers + pooling; its layer classes in this
    # order (so Keras's weight file loads by position)
    assert model.count_params() == 21802784 and len(model.layers) == 311
    assert [la.name for la in model.layers if la.name.startswith("mixed")] == \
        [f"mixed{i}" for i in range(9)] + ["mixed9_0", "mixed9", "mixed9_1", "mixed10"]
    kinds = [type(la).__name__ for la in model.layers]
    assert kinds[:5] == ["InputLayer", "Conv2D", "BatchNormalization", "Activation", "Conv2D"]
    assert kinds.count("Conv2D") == 94 and kinds.count("Concatenate") == 15
    assert InceptionV3(weights=None).count_params() == 23851784
    x = np.random.default_rng(3).uniform(0, 255, (1, 75, 75, 3)).astype("float32")
    np.testing.assert_allclose(inception_v3.preprocess_input(x), x / 127.5 - 1, rtol=1e-6)
    # deep_dream reads the mixed blocks' outputs and differentiates them w.r.t. the image
    # (its loss itself: tests/test_keras2_examples.py::test_deep_dream_loss_...)
    mixed3 = {layer.name: layer for layer in model.layers}["mixed3"].output
    loss = K.mean(K.square(mixed3))
    value, g = K.function([model.input], [loss, K.gradients(loss, model.input)[0]])(
        [inception_v3.preprocess_input(x)])
    assert np.isfinite(value) and value > 0 and g.shape == x.shape


def test_resnet_family_and_its_keras_details(tmp_path):
    model = ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="max")
    bn = {layer.name: layer for layer in model.layers}["conv1_bn"]
    assert bn.get_config()["epsilon"] == pytest.approx(1.001e-5)
    assert model.layers[-1].name == "max_pool" and model.output_shape == (None, 2048)
    model.save_weights(str(tmp_path / "w.h5"))
    again = resnet50.ResNet50(weights=str(tmp_path / "w.h5"), include_top=False,
                              input_shape=(32, 32, 3), pooling="max")
    x = np.random.default_rng(4).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(again.predict(resnet50.preprocess_input(x)),
                               model.predict(resnet50.preprocess_input(x)), rtol=1e-5)
    np.testing.assert_allclose(resnet.preprocess_input(x), vgg16.preprocess_input(x))
    assert resnet.decode_predictions is imagenet_utils.decode_predictions
    # tf-keras 2.21: ResNet101 44,707,176 parameters and 347 layers with its top, ResNet152
    # 60,419,944 with it (58,370,944 without)
    big = ResNet101(weights=None)
    assert big.count_params() == 44707176 and len(big.layers) == 347
    assert ResNet152(weights=None, include_top=False,
                     input_shape=(32, 32, 3)).count_params() == 58370944
    with pytest.raises(ConfigError, match="resnet50: weights='imagenet'.*classes=1000"):
        ResNet50(weights="imagenet", classes=10)


def test_mobilenet_v2_alpha_padding_and_preprocessing(tmp_path):
    # tf-keras 2.21, include_top=False: 410,208 parameters at alpha=0.35
    small = MobileNetV2(weights=None, alpha=0.35, include_top=False, input_shape=(64, 64, 3))
    assert small.count_params() == 410208 and small.output_shape == (None, 2, 2, 1280)
    assert {la.name: la for la in small.layers}["Conv1"].get_config()["filters"] == 16
    layers = {la.name: la for la in small.layers}
    assert layers["block_1_pad"].get_config()["padding"] == ((0, 1), (0, 1))
    bn = layers["block_16_project_BN"].get_config()
    assert bn["epsilon"] == pytest.approx(1e-3) and bn["momentum"] == pytest.approx(0.999)
    odd = MobileNetV2(weights=None, alpha=0.35, include_top=False, input_shape=(33, 33, 3))
    assert {la.name: la for la in odd.layers}["block_1_pad"].get_config()["padding"] == \
        ((1, 1), (1, 1))                       # Keras's correct_pad for an odd size
    assert MobileNetV2(weights=None, alpha=1.4, include_top=False,
                       input_shape=(32, 32, 3)).output_shape == (None, 1, 1, 1792)
    x = np.random.default_rng(5).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(mobilenet_v2.preprocess_input(x), x / 127.5 - 1, rtol=1e-6)
    small.save_weights(str(tmp_path / "w.h5"))
    again = mobilenet_v2.MobileNetV2(weights=str(tmp_path / "w.h5"), alpha=0.35,
                                     include_top=False, input_shape=(64, 64, 3))
    np.testing.assert_allclose(again.predict(mobilenet_v2.preprocess_input(x)),
                               small.predict(mobilenet_v2.preprocess_input(x)), rtol=1e-5)
    with pytest.raises(ConfigError, match="mobilenet_v2: weights='imagenet' needs alpha"):
        MobileNetV2(alpha=0.6, include_top=False)
    with pytest.raises(ConfigError, match="mobilenet_v2: weights='imagenet'.*classes=1000"):
        MobileNetV2(classes=10)


def test_mobilenet_alpha_depth_multiplier_and_its_head(tmp_path):
    # tf-keras 2.21, include_top=False: 829,536 parameters at alpha=0.5
    small = MobileNet(weights=None, alpha=0.5, include_top=False, input_shape=(64, 64, 3))
    assert small.count_params() == 829536 and small.output_shape == (None, 2, 2, 512)
    layers = {la.name: la for la in small.layers}
    assert layers["conv_pad_2"].get_config()["padding"] == ((0, 1), (0, 1))
    assert layers["conv_dw_13_bn"].get_config()["momentum"] == pytest.approx(0.99)
    deep = MobileNet(weights=None, alpha=0.25, depth_multiplier=2, include_top=False,
                     input_shape=(32, 32, 3))
    assert [w.shape for w in {la.name: la for la in deep.layers}["conv_dw_1"].get_weights()] \
        == [(3, 3, 8, 2)]
    top = MobileNet(weights=None, alpha=0.25, classes=7, input_shape=(32, 32, 3),
                    classifier_activation=None)
    assert top.output_shape == (None, 7) and top.layers[-3].name == "conv_preds"
    top.save_weights(str(tmp_path / "w.h5"))
    again = mobilenet.MobileNet(weights=str(tmp_path / "w.h5"), alpha=0.25, classes=7,
                                input_shape=(32, 32, 3), classifier_activation=None)
    x = mobilenet.preprocess_input(
        np.random.default_rng(6).uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
    np.testing.assert_allclose(again.predict(x), top.predict(x), rtol=1e-5, atol=1e-6)
    assert np.abs(top.predict(x)).max() > 0
    with pytest.raises(ConfigError, match="mobilenet: weights='imagenet' needs depth_mult"):
        MobileNet(depth_multiplier=2, include_top=False)


@pytest.mark.parametrize("build,url,md5", [
    (lambda: ResNet50(include_top=False), "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_"
     "notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
    (lambda: MobileNetV2(alpha=0.35, include_top=False, input_shape=(96, 96, 3)),
     "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5", None),
    (lambda: MobileNet(alpha=0.5, input_shape=(100, 100, 3)),
     "mobilenet/mobilenet_5_0_224_tf.h5", None),
    (lambda: Xception(), "xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
     "0a58e3b7378bc2990ea3b43d5981f1f6"),
    (lambda: Xception(include_top=False), "xception/xception_weights_tf_dim_ordering_tf_"
     "kernels_notop.h5", "b0042744bf5b25fce3cb969f33bebb97"),
    (lambda: ResNet152V2(), "resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels.h5",
     "a49b44d1979771252814e80f8ec446f9"),
    (lambda: ResNet50V2(include_top=False), "resnet/resnet50v2_weights_tf_dim_ordering_tf_"
     "kernels_notop.h5", "fac2f116257151a9d068a22e544a4917"),
    (lambda: DenseNet121(), "densenet/densenet121_weights_tf_dim_ordering_tf_kernels.h5",
     "9d60b8095a5708f2dcce2bca79d332c7"),
    (lambda: DenseNet201(include_top=False), "densenet/densenet201_weights_tf_dim_ordering_"
     "tf_kernels_notop.h5", "c13680b51ded0fb44dff2d8f86ac8bb1"),
    (lambda: EfficientNetB0(), "efficientnetb0.h5", "902e53a9f72be733fc0bcb005b3ebbac"),
    (lambda: EfficientNetB7(include_top=False, input_shape=(64, 64, 3)),
     "efficientnetb7_notop.h5", "cbcfe4450ddf6f3ad90b1b398090fe4a")])
def test_imagenet_weights_come_from_keras_files(monkeypatch, build, url, md5):
    import modelkit.datasets

    class Asked(Exception):
        pass

    def get_file(fname, origin, file_hash=None, **kwargs):
        raise Asked(fname, origin, file_hash)
    monkeypatch.setattr(modelkit.datasets, "get_file", get_file)
    with pytest.raises(Asked) as asked:
        build()
    fname, origin, file_hash = asked.value.args
    if "/" in url:
        assert origin == "https://storage.googleapis.com/tensorflow/keras-applications/" + url
    else:                                        # EfficientNet's files sit elsewhere
        assert origin == "https://storage.googleapis.com/keras-applications/" + url
    assert fname == url.split("/")[-1] and file_hash == md5



FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "applications"


def _keras_fixture_script():
    """tests/fixtures/applications/keras_architectures.py (its tables and weight drawing)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("keras_architectures",
                                                  FIXTURES / "keras_architectures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KERAS_FIXTURES = _keras_fixture_script()
with gzip.open(FIXTURES / "architectures.json.gz", "rt") as _f:
    KERAS_ARCHITECTURES = json.load(_f)


@pytest.mark.parametrize("key", sorted(KERAS_ARCHITECTURES))
def test_layers_and_parameters_equal_tf_keras(key):
    """Every layer's name and class in tf-keras's order (unnamed layers included, so Keras's
    weight files load by name and by position) and the parameter count."""
    import modelkit.applications as apps
    attr, top = key.split("/")
    keras = KERAS_ARCHITECTURES[key]
    K.clear_session()
    model = getattr(apps, attr)(weights=None, include_top=top == "True",
                                input_shape=None if top == "True" else
                                KERAS_FIXTURES.NETWORKS[attr])
    assert model.count_params() == keras["params"]
    ours = [[la.name, type(la).__name__] for la in model.layers]
    assert ours[0][1] == keras["layers"][0][1] == "InputLayer"
    assert ours[1:] == keras["layers"][1:]


@pytest.mark.parametrize("attr", KERAS_FIXTURES.PARITY)
def test_outputs_equal_tf_keras_with_the_same_weights(attr):
    """tf-keras's outputs (random weights and batch-norm statistics drawn in its weight
    order) at a small input; measured max |diff| / max |y|: Xception 1.7e-07, ResNet50V2
    5.4e-07, DenseNet121 2.3e-07, EfficientNetB0 3.8e-07 (tf-keras's own .h5 files of them:
    keras_parity.py)."""
    import modelkit.applications as apps
    ref = np.load(FIXTURES / "parity.npz")
    shape = KERAS_FIXTURES.NETWORKS[attr]
    K.clear_session()
    model = getattr(apps, attr)(weights=None, include_top=False, input_shape=shape,
                                pooling="avg")
    names = [w.name for w in model.weights]
    assert names == list(ref[attr + "/names"])
    model.set_weights(KERAS_FIXTURES.random_weights(
        names, [w.shape for w in model.get_weights()]))
    y = model.predict(KERAS_FIXTURES.random_batch(shape))
    expected = ref[attr + "/y"]
    rel = np.abs(y - expected).max() / np.abs(expected).max()
    print(f"{attr}: max |diff| / max |y| = {rel:.1e}")
    assert y.shape == expected.shape and rel < 2e-6


def test_new_families_preprocess_load_by_path_and_classes(tmp_path):
    """Keras's preprocessing modes per module (xception, resnet_v2: 'tf'; densenet:
    'torch'); a weight file saved by modelkit (DenseNet's 'conv1/conv' names nest groups in
    HDF5 as Keras's do) loads by path; classes and pooling as Keras."""
    x = np.random.default_rng(7).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(xception.preprocess_input(x), x / 127.5 - 1, rtol=1e-6)
    np.testing.assert_allclose(resnet_v2.preprocess_input(x), x / 127.5 - 1, rtol=1e-6)
    np.testing.assert_allclose(densenet.preprocess_input(x),
                               imagenet_utils.preprocess_input(x, mode="torch"))
    assert densenet.decode_predictions is imagenet_utils.decode_predictions
    model = DenseNet121(weights=None, classes=5, input_shape=(32, 32, 3),
                        classifier_activation=None)
    assert model.output_shape == (None, 5) and model.name == "densenet121"
    model.save_weights(str(tmp_path / "w.h5"))
    import h5py
    with h5py.File(tmp_path / "w.h5", "r") as f:
        group = f["conv1"]["conv"]                         # Keras's nested groups
        assert list(group.attrs["weight_names"]) == ["conv1/conv/kernel:0"]
        assert group["conv1/conv/kernel:0"].shape == (7, 7, 3, 64)
    again = densenet.DenseNet121(weights=str(tmp_path / "w.h5"), classes=5,
                                 input_shape=(32, 32, 3), classifier_activation=None)
    np.testing.assert_allclose(again.predict(densenet.preprocess_input(x)),
                               model.predict(densenet.preprocess_input(x)), rtol=1e-5,
                               atol=1e-6)
    assert ResNet50V2(weights=None, include_top=False, input_shape=(32, 32, 3),
                      pooling="max").layers[-1].name == "max_pool"
    headless = Xception(weights=None, include_top=False, input_shape=(71, 71, 3))
    assert headless.output_shape == (None, 3, 3, 2048) and headless.name == "xception"
    with pytest.raises(ConfigError, match="xception: weights='imagenet'.*classes=1000"):
        Xception(classes=10)
    # Keras's smallest inputs: 71x71 for Xception, 32x32 for the others
    with pytest.raises(ConfigError, match=r"xception: input size must be at least 71x71"):
        Xception(weights=None, include_top=False, input_shape=(70, 80, 3))
    with pytest.raises(ConfigError, match=r"densenet121: input size must be at least 32x32"):
        DenseNet121(weights=None, include_top=False, input_shape=(16, 16, 3))


def test_efficientnet_input_scaling_head_and_imagenet_multiply(monkeypatch, tmp_path):
    """Pixels in [0, 255] go in (preprocess_input passes them through); the head's dropout
    is B0's 0.2; weights='imagenet' adds tf-keras's division by the ImageNet standard
    deviations after the Normalization layer (here identity: mean 0, variance 1), so that
    model on x equals the plain one on x / sqrt(std) per channel."""
    import modelkit.datasets
    x = np.random.default_rng(8).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert efficientnet.preprocess_input(x) is x
    assert efficientnet.decode_predictions is imagenet_utils.decode_predictions
    plain = EfficientNetB0(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    layers = {la.name: la for la in plain.layers}
    assert layers["top_dropout"].get_config()["rate"] == pytest.approx(0.2)
    assert layers["block2b_drop"].get_config()["noise_shape"] in ([None, 1, 1, 1],
                                                                  (None, 1, 1, 1))
    assert layers["block1a_activation"].get_config()["activation"] == "swish"
    plain.layers[2].set_weights([np.zeros(3, "float32"), np.ones(3, "float32"),
                                 np.asarray(0, "int64")])
    plain.save_weights(str(tmp_path / "w.h5"))
    monkeypatch.setattr(modelkit.datasets, "get_file", lambda *a, **k: str(tmp_path / "w.h5"))
    with pytest.raises(ConfigError, match="classes=1000"):
        EfficientNetB0(input_shape=(32, 32, 3), classes=4)
    scaled = efficientnet.build_efficientnet("efficientnetb0", True, "imagenet", None,
                                             (32, 32, 3), None, 1000, None)
    assert scaled.count_params() == EfficientNetB0(weights=None, input_shape=(32, 32, 3),
                                                   classifier_activation=None).count_params()
    std = np.sqrt(np.array([0.229, 0.224, 0.225], "float32"))
    ref = EfficientNetB0(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    ref.set_weights(scaled.get_weights())
    np.testing.assert_allclose(scaled.predict(x), ref.predict(x / std), rtol=1e-4, atol=1e-5)

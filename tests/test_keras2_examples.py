"""The classic Keras 2.3.1 examples in miniature: their idioms, small synthetic data, a few
epochs and a loss that must fall (or a number that must match numpy)."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.layers import Dense, Dropout, Flatten, Input, Lambda
from modelkit.models import Model
from modelkit.optimizers import Adam, RMSprop


# -- mnist_siamese: contrastive loss on a 1-D target against an (N, 1) distance -----------------

def _euclidean_distance(vects):
    x, y = vects
    sum_square = K.sum(K.square(x - y), axis=1, keepdims=True)
    return K.sqrt(K.maximum(sum_square, K.epsilon()))


def _contrastive_loss(y_true, y_pred):
    margin = 1
    square_pred = K.square(y_pred)
    margin_square = K.square(K.maximum(margin - y_pred, 0))
    return K.mean(y_true * square_pred + (1 - y_true) * margin_square)


def _siamese_pairs(n=400, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.normal(size=(5, 8, 8)).astype("float32")
    labels = rng.randint(5, size=(n, 2))
    same = rng.rand(n) < 0.5
    labels[same, 1] = labels[same, 0]
    x = centers[labels] + 0.3 * rng.normal(size=(n, 2, 8, 8)).astype("float32")
    return x, (labels[:, 0] == labels[:, 1]).astype("float32")


def test_mnist_siamese_contrastive_loss_sees_keras_shapes():
    seen = []

    def loss(y_true, y_pred):
        seen.append((tuple(y_true.shape), tuple(y_pred.shape)))
        return _contrastive_loss(y_true, y_pred)

    def accuracy(y_true, y_pred):
        return K.mean(K.equal(y_true, K.cast(y_pred < 0.5, y_true.dtype)))

    x, y = _siamese_pairs()
    inp = Input(shape=(8, 8))
    h = Dense(64, activation="relu")(Flatten()(inp))
    base = Model(inp, Dense(64, activation="relu")(Dropout(0.1)(h)))
    a, b = Input(shape=(8, 8)), Input(shape=(8, 8))
    distance = Lambda(_euclidean_distance, output_shape=lambda s: (s[0][0], 1))(
        [base(a), base(b)])
    model = Model([a, b], distance)
    model.compile(loss=loss, optimizer=RMSprop(), metrics=[accuracy])
    hist = model.fit([x[:, 0], x[:, 1]], y, batch_size=128, epochs=20, verbose=0).history
    assert seen[0] == ((128, 1), (128, 1))
    assert hist["loss"][-1] < 0.3 * hist["loss"][0]
    pred = model.predict([x[:, 0], x[:, 1]]).ravel() < 0.5
    assert np.mean(pred == y) > 0.9
    assert hist["accuracy"][-1] > 0.85


def test_one_dimensional_target_is_reshaped_for_builtin_losses_and_metrics():
    x = np.random.RandomState(1).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")                      # (64,) for a (64, 1) output
    inp = Input(shape=(3,))
    model = Model(inp, Dense(1, activation="sigmoid")(inp))
    model.compile("sgd", "mse", metrics=["mae", "binary_accuracy"])
    loss, mae, acc = model.evaluate(x, y, verbose=0)
    pred = model.predict(x)[:, 0]
    np.testing.assert_allclose(loss, np.mean((pred - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(mae, np.mean(np.abs(pred - y)), rtol=1e-5)
    np.testing.assert_allclose(acc, np.mean((pred > 0.5) == y), rtol=1e-6)


# -- variational_autoencoder: add_loss(symbolic tensor), compile(optimizer) without a loss ------

def _sampling(args):
    z_mean, z_log_var = args
    batch = K.shape(z_mean)[0]
    dim = K.int_shape(z_mean)[1]
    epsilon = K.random_normal(shape=(batch, dim))
    return z_mean + K.exp(0.5 * z_log_var) * epsilon


def test_variational_autoencoder_add_loss_without_compiled_loss(tmp_path):
    from modelkit.losses import binary_crossentropy
    original_dim, latent_dim = 32, 2
    x_train = (np.random.RandomState(0).rand(256, original_dim) < 0.3).astype("float32")
    inputs = Input(shape=(original_dim,), name="encoder_input")
    x = Dense(16, activation="relu")(inputs)
    z_mean = Dense(latent_dim, name="z_mean")(x)
    z_log_var = Dense(latent_dim, name="z_log_var")(x)
    z = Lambda(_sampling, output_shape=(latent_dim,), name="z")([z_mean, z_log_var])
    encoder = Model(inputs, [z_mean, z_log_var, z], name="encoder")
    latent_inputs = Input(shape=(latent_dim,), name="z_sampling")
    decoded = Dense(original_dim, activation="sigmoid")(Dense(16, activation="relu")(latent_inputs))
    decoder = Model(latent_inputs, decoded, name="decoder")
    outputs = decoder(encoder(inputs)[2])
    vae = Model(inputs, outputs, name="vae_mlp")
    reconstruction_loss = binary_crossentropy(inputs, outputs)
    reconstruction_loss *= original_dim
    kl_loss = 1 + z_log_var - K.square(z_mean) - K.exp(z_log_var)
    kl_loss = K.sum(kl_loss, axis=-1)
    kl_loss *= -0.5
    vae.add_loss(K.mean(reconstruction_loss + kl_loss))
    vae.compile(optimizer="adam")
    hist = vae.fit(x_train, epochs=6, batch_size=32, validation_data=(x_train, None),
                   verbose=0).history
    assert hist["loss"][-1] < 0.98 * hist["loss"][0]
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    assert vae.predict(x_train[:4]).shape == (4, original_dim)
    vae.save_weights(tmp_path / "vae_mlp.h5")
    vae.load_weights(tmp_path / "vae_mlp.h5")
    vae.save(tmp_path / "vae.h5")         # the sampling Lambda is stored as bytecode, as in Keras
    from modelkit.models import load_model
    again = load_model(tmp_path / "vae.h5", safe_mode=False, compile=False)
    np.testing.assert_allclose(again.get_layer("encoder").predict(x_train[:4])[0],
                               encoder.predict(x_train[:4])[0], atol=1e-6)


def test_added_symbolic_loss_value_matches_numpy():
    inp = Input(shape=(3,))
    dense = Dense(2)
    out = dense(inp)
    model = Model(inp, out)
    model.add_loss(K.mean(K.square(out)) * 0.5)
    model.compile("sgd", loss="mse")
    x = np.random.RandomState(2).normal(size=(8, 3)).astype("float32")
    y = np.zeros((8, 2), "float32")
    pred = model.predict(x)
    total = model.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_allclose(total, np.mean(pred ** 2) * 1.5, rtol=1e-5)
    model.compile("sgd")
    np.testing.assert_allclose(model.evaluate(x, None, batch_size=8, verbose=0),
                               np.mean(pred ** 2) * 0.5, rtol=1e-5)


def test_compile_without_loss_and_nothing_added_says_so():
    from modelkit.errors import ConfigError
    inp = Input(shape=(3,))
    model = Model(inp, Dense(1)(inp))
    model.compile("sgd")
    with pytest.raises(ConfigError, match="no loss"):
        model.train_on_batch(np.zeros((2, 3), "float32"), None)


# -- conv_filter_visualization / saliency: K.gradients + K.function ----------------------------

def test_conv_filter_visualization_gradient_ascent():
    from modelkit.layers import Conv2D, MaxPooling2D
    inp = Input(shape=(12, 12, 3))
    x = MaxPooling2D()(Conv2D(4, 3, activation="relu", name="block1_conv1")(inp))
    model = Model(inp, Conv2D(8, 3, activation="relu", name="block2_conv1")(x))
    draw = np.random.RandomState(3)         # weights for which filter 0 is alive
    for w in model.weights:
        w.assign(draw.normal(size=w.shape) * 0.3 + (0.05 if w.ndim == 1 else 0.0))
    layer_output = model.get_layer("block2_conv1").output
    loss = K.mean(layer_output[:, :, :, 0])
    grads = K.gradients(loss, model.input)[0]
    grads = grads / (K.sqrt(K.mean(K.square(grads))) + K.epsilon())
    iterate = K.function([model.input], [loss, grads])
    img = np.random.RandomState(0).random_sample((1, 12, 12, 3)).astype("float32")
    values = []
    for _ in range(8):
        loss_value, grads_value = iterate([img])
        assert grads_value.shape == img.shape and grads_value.dtype == np.float32
        np.testing.assert_allclose(np.sqrt(np.mean(grads_value ** 2)), 1.0, rtol=1e-3)
        img += grads_value * 0.1
        values.append(float(loss_value))
    assert values[-1] > values[0] and np.all(np.diff(values) > 0)


def test_symbolic_gradients_match_numpy_for_inputs_intermediates_and_weights():
    inp = Input(shape=(3,))
    dense = Dense(4, activation="tanh")
    hidden = dense(inp)
    out = Dense(1, use_bias=False)(hidden)
    loss = K.sum(K.square(out))
    model = Model(inp, out)
    kernel = dense.weights[0]
    g_in, g_hidden, g_kernel = K.gradients(loss, [inp, hidden, kernel])
    fn = K.function([inp], [loss, g_in, g_hidden, g_kernel])
    x = np.random.RandomState(3).normal(size=(5, 3)).astype("float32")
    value, gi, gh, gk = fn([x])
    w1, b1, w2 = model.get_weights()
    h = np.tanh(x @ w1 + b1)
    o = h @ w2
    dh = 2 * o @ w2.T
    dz = dh * (1 - h ** 2)
    np.testing.assert_allclose(value, np.sum(o ** 2), rtol=1e-5)
    np.testing.assert_allclose(gh, dh, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gi, dz @ w1.T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gk, x.T @ dz, rtol=1e-4, atol=1e-6)


def test_learning_phase_is_a_k_function_input():
    inp = Input(shape=(200,))
    out = Dropout(0.5)(inp)
    fn = K.function([inp, K.learning_phase()], [out])
    ones = np.ones((4, 200), "float32")
    train, = fn([ones, 1])
    test, = fn([ones, 0])
    np.testing.assert_array_equal(test, ones)
    assert set(np.unique(train)) <= {0.0, 2.0} and 0.3 < np.mean(train == 0) < 0.7
    assert K.in_train_phase(1.0, 2.0, training=1) == 1.0
    assert K.in_train_phase(lambda: 1.0, lambda: 2.0, training=0) == 2.0


def test_random_tensors_concrete_and_symbolic():
    np.random.seed(5)
    a = K.get_value(K.random_normal((2000,), mean=1.0, stddev=2.0))
    np.random.seed(5)
    b = K.get_value(K.random_normal((2000,), mean=1.0, stddev=2.0))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and abs(a.mean() - 1.0) < 0.2 and abs(a.std() - 2.0) < 0.2
    u = K.get_value(K.random_uniform((2000,), minval=-1.0, maxval=3.0, seed=1))
    assert u.min() >= -1.0 and u.max() < 3.0 and abs(u.mean() - 1.0) < 0.1
    k = K.get_value(K.random_binomial((2000,), p=0.25, seed=2))
    assert set(np.unique(k)) == {0.0, 1.0} and abs(k.mean() - 0.25) < 0.05
    inp = Input(shape=(3,))
    noisy = inp + K.random_normal(K.shape(inp), stddev=0.0)
    assert noisy.shape == (None, 3)
    np.testing.assert_allclose(Model(inp, noisy).predict(np.ones((2, 3))), np.ones((2, 3)))
    eps = K.random_normal(shape=(K.shape(inp)[0], 5))          # the VAE's sampling, inline
    assert eps.shape == (None, 5)
    draws = Model(inp, eps).predict(np.ones((400, 3)))
    assert draws.shape == (400, 5) and abs(draws.std() - 1.0) < 0.1


def test_losses_on_symbolic_tensors_are_graph_nodes():
    from modelkit import losses
    a, b = Input(shape=(4,)), Input(shape=(4,))
    model = Model([a, b], losses.mean_squared_error(a, b))
    x, y = np.ones((2, 4), "float32"), np.zeros((2, 4), "float32")
    np.testing.assert_allclose(model.predict([x, y]), np.ones(2))


def test_loss_objects_on_symbolic_tensors_and_add_loss():
    from modelkit import losses
    a = Input(shape=(4,))
    out = Dense(4)(a)
    model = Model(a, out)
    model.add_loss(losses.MeanSquaredError()(a, out))
    model.compile("sgd")
    x = np.random.RandomState(7).normal(size=(16, 4)).astype("float32")
    pred = model.predict(x)
    np.testing.assert_allclose(model.evaluate(x, None, batch_size=16, verbose=0),
                               np.mean((pred - x) ** 2), rtol=1e-5)
    hist = model.fit(x, None, batch_size=8, epochs=5, verbose=0).history
    assert hist["loss"][-1] < hist["loss"][0]


def test_k_in_train_phase_follows_the_running_phase():
    from modelkit.engine.base_layer import Layer

    class TrainOnlyNoise(Layer):
        preserves_shape = True

        def call(self, inputs):
            return K.in_train_phase(lambda: inputs * 0.0, inputs)

    inp = Input(shape=(3,))
    model = Model(inp, TrainOnlyNoise()(inp))
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(model.predict(x), x)
    model.compile("sgd", "mse")
    assert model.train_on_batch(x, x) == pytest.approx(1.0)       # zeros in training
    assert model.test_on_batch(x, x) == pytest.approx(0.0)
    assert not K.learning_phase() and int(K.learning_phase()) == 0


def test_set_learning_phase_fixes_the_phase_of_every_run():
    inp = Input(shape=(300,))
    model = Model(inp, Dropout(0.5)(inp))
    x = np.ones((2, 300), "float32")
    try:
        K.set_learning_phase(1)
        assert int(K.learning_phase()) == 1
        assert 0.3 < np.mean(model.predict(x) == 0) < 0.7
        assert 0.3 < np.mean(K.function([inp], [model.output])([x])[0] == 0) < 0.7
        K.set_learning_phase(0)
        model.compile("sgd", "mse")
        assert model.train_on_batch(x, x) == pytest.approx(0.0)      # dropout off in fit
    finally:
        K.clear_session()                   # as in Keras: the phase is free again
    np.testing.assert_array_equal(model.predict(x), x)
    assert Dense(2).name == "dense"         # and layer names start again


def test_layer_names_come_from_k_get_uid():
    K.clear_session()
    assert [Dense(1).name, Dense(1).name] == ["dense", "dense_1"]
    assert K.get_uid("dense") == 3            # Keras 2: the count handed out so far, plus one
    assert Dense(1).name == "dense_3"
    K.reset_uids()
    assert K.get_uid("dense") == 1 and Dense(1).name == "dense_1"


def test_lambda_returning_a_one_element_list_is_unpacked():
    inp = Input(shape=(4,))
    out = Lambda(lambda x: [x * 2])(inp)
    assert not isinstance(out, list) and out.shape == (None, 4)
    np.testing.assert_allclose(Model(inp, out).predict(np.ones((1, 4))), 2 * np.ones((1, 4)))


def test_training_true_in_the_functional_api():
    inp = Input(shape=(400,))
    model = Model(inp, Dropout(0.5)(inp, training=True))
    out = model.predict(np.ones((2, 400), "float32"))
    assert 0.3 < np.mean(out == 0) < 0.7


# -- mnist_acgan: discriminator.trainable = False after compiling it; two outputs of one model --

def test_mnist_acgan_trainable_collected_at_compile_and_unique_output_names():
    from modelkit.layers import Embedding, Reshape, multiply
    from modelkit.models import Sequential
    from modelkit.optimizers import Adam
    latent_size = 6
    cnn = Sequential([Dense(16, input_dim=latent_size, activation="relu"),
                      Dense(16, activation="tanh"), Reshape((4, 4, 1))])
    latent, image_class = Input(shape=(latent_size,)), Input(shape=(1,), dtype="int32")
    cls = Flatten()(Embedding(3, latent_size)(image_class))
    generator = Model([latent, image_class], cnn(multiply([latent, cls])))
    image = Input(shape=(4, 4, 1))
    features = Dense(8, activation="relu")(Flatten()(image))
    discriminator = Model(image, [Dense(1, activation="sigmoid", name="generation")(features),
                                  Dense(3, activation="softmax", name="auxiliary")(features)])
    discriminator.compile(optimizer=Adam(0.01), loss=["binary_crossentropy",
                                                      "sparse_categorical_crossentropy"])
    fake = generator([latent, image_class])
    discriminator.trainable = False
    fake, aux = discriminator(fake)
    combined = Model([latent, image_class], [fake, aux])
    combined.compile(optimizer=Adam(0.01), loss=["binary_crossentropy",
                                                 "sparse_categorical_crossentropy"])
    name = discriminator.name
    assert combined.output_names == [name, f"{name}_1"]
    assert combined.metrics_names == ["loss", f"{name}_loss", f"{name}_1_loss"]
    rng = np.random.RandomState(0)
    images = rng.normal(size=(16, 4, 4, 1)).astype("float32")
    labels = rng.randint(3, size=16)
    noise = rng.uniform(-1, 1, (16, latent_size))
    before = [w.copy() for w in discriminator.get_weights()]
    d_losses = [discriminator.train_on_batch(images, [np.ones(16), labels]) for _ in range(6)]
    assert len(d_losses[0]) == 3 and d_losses[-1][0] < d_losses[0][0]
    trained = [w.copy() for w in discriminator.get_weights()]
    assert not all(np.array_equal(a, b) for a, b in zip(before, trained))
    g_before = [w.copy() for w in generator.get_weights()]
    g_losses = [combined.train_on_batch([noise, labels.reshape(-1, 1)], [np.ones(16), labels])
                for _ in range(6)]
    assert len(g_losses[0]) == 3 and g_losses[-1][0] < g_losses[0][0]
    assert all(np.array_equal(a, b) for a, b in zip(trained, discriminator.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(g_before, generator.get_weights()))


# -- mnist_swwae: K.gradients inside a Lambda (max-pooling switches), a one-element list -------

def _getwhere(x):
    y_prepool, y_postpool = x
    return K.gradients(K.sum(y_postpool), y_prepool)


def test_swwae_getwhere_switches_match_numpy_in_predict_and_training():
    from modelkit.layers import MaxPooling2D
    inp = Input(shape=(4, 4, 2))
    pooled = MaxPooling2D()(inp)
    where = Lambda(_getwhere, output_shape=lambda s: s[0])([inp, pooled])
    model = Model(inp, where)
    x = np.random.RandomState(4).permutation(64).reshape(2, 4, 4, 2).astype("float32")
    blocks = x.reshape(2, 2, 2, 2, 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(2, 2, 2, 2, 4)
    want = (blocks == blocks.max(-1, keepdims=True)).astype("float32")
    want = want.reshape(2, 2, 2, 2, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(2, 4, 4, 2)
    np.testing.assert_array_equal(model.predict(x), want)
    np.testing.assert_array_equal(K.function([inp], [where])([x])[0], want)


def test_mnist_swwae_trains_with_switches():
    from modelkit import layers
    from modelkit.layers import Activation, BatchNormalization, Conv2D, ELU, MaxPooling2D, \
        UpSampling2D

    def convresblock(x, nfeats=8, ksize=3, nskipped=2):
        y0 = Conv2D(nfeats, ksize, padding="same")(x)
        y = y0
        for _ in range(nskipped):
            y = Conv2D(nfeats, ksize, padding="same")(ELU()(BatchNormalization(axis=-1)(y)))
        return layers.add([y0, y])

    nlayers, nfeats = 2, [1, 4, 8]
    img_input = Input(shape=(8, 8, 1))
    wheres, y = [None] * nlayers, img_input
    for i in range(nlayers):
        y_prepool = convresblock(y, nfeats=nfeats[i + 1])
        y = MaxPooling2D(pool_size=(2, 2))(y_prepool)
        wheres[i] = layers.Lambda(_getwhere, output_shape=lambda s: s[0])([y_prepool, y])
    for i in range(nlayers):
        ind = nlayers - 1 - i
        y = layers.multiply([UpSampling2D(size=(2, 2))(y), wheres[ind]])
        y = convresblock(y, nfeats=nfeats[ind])
    model = Model(img_input, Activation("sigmoid")(y))
    model.compile("adam", "mse")
    x = np.random.RandomState(0).rand(48, 8, 8, 1).astype("float32")
    hist = model.fit(x, x, batch_size=16, epochs=4, verbose=0, validation_data=(x, x)).history
    assert hist["loss"][-1] < hist["loss"][0] and hist["val_loss"][-1] < hist["val_loss"][0]
    assert model.predict(x[:3]).shape == (3, 8, 8, 1)


# -- antirectifier: a custom layer written with K functions ------------------------------------

def test_antirectifier_custom_layer_learns():
    from modelkit.engine.base_layer import Layer

    class Antirectifier(Layer):
        def compute_output_shape(self, input_shape):
            shape = list(input_shape)
            shape[-1] *= 2
            return tuple(shape)

        def call(self, inputs):
            inputs -= K.mean(inputs, axis=1, keepdims=True)
            inputs = K.l2_normalize(inputs, axis=1)
            return K.concatenate([K.relu(inputs), K.relu(-inputs)], axis=1)

    from modelkit.layers import Activation
    from modelkit.models import Sequential
    rs = np.random.RandomState(0)
    x = rs.rand(256, 20).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, :5].sum(1) > x[:, 5:10].sum(1)).astype(int)]
    model = Sequential([Dense(32, input_shape=(20,)), Antirectifier(), Dropout(0.1), Dense(32),
                        Antirectifier(), Dense(2), Activation("softmax")])
    assert model.output_shape == (None, 2) and model.layers[1].output_shape == (None, 64)
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=32, epochs=8, verbose=0).history
    assert hist["loss"][-1] < 0.9 * hist["loss"][0] and hist["accuracy"][-1] > 0.7


# -- mnist_transfer_cnn: freeze the feature layers, recompile, train the classifier -------------

def test_mnist_transfer_cnn_frozen_layers_after_recompile():
    from modelkit.layers import Activation, Conv2D, MaxPooling2D
    from modelkit.models import Sequential
    rs = np.random.RandomState(1)
    x = rs.rand(64, 8, 8, 1).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, :4].mean((1, 2, 3)) > x[:, 4:].mean((1, 2, 3))) * 1]
    feature_layers = [Conv2D(4, (3, 3), input_shape=(8, 8, 1)), Activation("relu"),
                      Conv2D(4, (3, 3)), Activation("relu"), MaxPooling2D(pool_size=2),
                      Dropout(0.25), Flatten()]
    classification_layers = [Dense(16), Activation("relu"), Dropout(0.5), Dense(2),
                             Activation("softmax")]
    model = Sequential(feature_layers + classification_layers)
    model.compile(loss="categorical_crossentropy", optimizer="adadelta", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for layer in feature_layers:
        layer.trainable = False
    frozen = [w.copy() for layer in feature_layers for w in layer.get_weights()]
    head = [w.copy() for w in classification_layers[0].get_weights()]
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)       # not recompiled: still trains
    assert not all(np.array_equal(a, b) for a, b in
                   zip(frozen, [w for la in feature_layers for w in la.get_weights()]))
    frozen = [w.copy() for layer in feature_layers for w in layer.get_weights()]
    model.compile(loss="categorical_crossentropy", optimizer="adadelta", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in
               zip(frozen, [w for la in feature_layers for w in la.get_weights()]))
    assert not np.array_equal(head[0], classification_layers[0].get_weights()[0])


# -- babi_memnn: merges of Sequential encoders -------------------------------------------------

def test_babi_memnn_merges_train():
    from modelkit.layers import (LSTM, Activation, Embedding, Permute, add, concatenate,
                                 dot)
    from modelkit.models import Sequential
    story_maxlen, query_maxlen, vocab = 8, 3, 10
    input_sequence, question = Input((story_maxlen,)), Input((query_maxlen,))
    enc_m = Sequential([Embedding(input_dim=vocab, output_dim=8), Dropout(0.3)])
    enc_c = Sequential([Embedding(input_dim=vocab, output_dim=query_maxlen), Dropout(0.3)])
    enc_q = Sequential([Embedding(input_dim=vocab, output_dim=8, input_length=query_maxlen),
                        Dropout(0.3)])
    m, c, q = enc_m(input_sequence), enc_c(input_sequence), enc_q(question)
    match = Activation("softmax")(dot([m, q], axes=(2, 2)))
    response = Permute((2, 1))(add([match, c]))
    answer = Activation("softmax")(Dense(vocab)(Dropout(0.3)(LSTM(16)(
        concatenate([response, q])))))
    model = Model([input_sequence, question], answer)
    model.compile(optimizer=RMSprop(0.005), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rs = np.random.RandomState(2)
    xs, xq = rs.randint(1, vocab, (96, story_maxlen)), rs.randint(1, vocab, (96, query_maxlen))
    hist = model.fit([xs, xq], xq[:, 0], batch_size=16, epochs=8, verbose=0).history
    assert hist["loss"][-1] < 0.9 * hist["loss"][0]


# -- lstm_seq2seq: encoder states as the decoder's initial_state; inference models -------------

def test_lstm_seq2seq_training_and_inference_models():
    from modelkit.layers import LSTM
    n_in, n_out, latent = 5, 6, 16
    rs = np.random.RandomState(3)
    enc_data = np.eye(n_in, dtype="float32")[rs.randint(n_in, size=(64, 4))]
    dec_tokens = enc_data.argmax(-1)[:, ::-1] + 1              # the reversed input, shifted
    dec_target = np.eye(n_out, dtype="float32")[dec_tokens]
    dec_data = np.concatenate([np.eye(n_out, dtype="float32")[np.zeros((64, 1), int)],
                               dec_target[:, :-1]], axis=1)
    encoder_inputs = Input(shape=(None, n_in))
    _, state_h, state_c = LSTM(latent, return_state=True)(encoder_inputs)
    decoder_inputs = Input(shape=(None, n_out))
    decoder_lstm = LSTM(latent, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_dense = Dense(n_out, activation="softmax")
    model = Model([encoder_inputs, decoder_inputs], decoder_dense(decoder_outputs))
    model.compile(optimizer=RMSprop(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit([enc_data, dec_data], dec_target, batch_size=16, epochs=10, verbose=0,
                     validation_split=0.2).history
    assert hist["loss"][-1] < 0.8 * hist["loss"][0]
    encoder_model = Model(encoder_inputs, [state_h, state_c])
    h_in, c_in = Input(shape=(latent,)), Input(shape=(latent,))
    out, h, c = decoder_lstm(decoder_inputs, initial_state=[h_in, c_in])
    decoder_model = Model([decoder_inputs, h_in, c_in], [decoder_dense(out), h, c])
    states = encoder_model.predict(enc_data[:2])
    step_out, h1, c1 = decoder_model.predict([dec_data[:2, :1]] + states)
    np.testing.assert_allclose(step_out[:, 0], model.predict([enc_data[:2], dec_data[:2]])[:, 0],
                               atol=1e-5)
    assert h1.shape == (2, latent) and c1.shape == (2, latent)


# -- addition_rnn and cifar10_cnn ------------------------------------------------------------

def test_addition_rnn_repeat_vector_time_distributed():
    from modelkit.layers import LSTM, RepeatVector, TimeDistributed
    from modelkit.models import Sequential
    chars, maxlen, digits = 6, 5, 3
    rs = np.random.RandomState(5)
    tokens = rs.randint(chars, size=(128, maxlen))
    x = np.eye(chars, dtype="float32")[tokens]
    y = np.eye(chars, dtype="float32")[tokens[:, :digits + 1]]
    model = Sequential([LSTM(32, input_shape=(maxlen, chars)), RepeatVector(digits + 1),
                        LSTM(32, return_sequences=True),
                        TimeDistributed(Dense(chars, activation="softmax"))])
    model.compile(loss="categorical_crossentropy", optimizer=Adam(0.01), metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=32, epochs=8, validation_data=(x, y), verbose=0).history
    assert hist["loss"][-1] < 0.85 * hist["loss"][0]
    assert model.predict(x[:2]).shape == (2, digits + 1, chars)


def test_cifar10_cnn_rmsprop_with_decay_learns():
    from modelkit.layers import Activation, Conv2D, MaxPooling2D
    from modelkit.models import Sequential
    from modelkit.optimizers import Adam, RMSprop
    rs = np.random.RandomState(6)
    x = rs.rand(96, 12, 12, 3).astype("float32")
    labels = (x[:, :6].mean((1, 2, 3)) > x[:, 6:].mean((1, 2, 3))).astype(int)
    y = np.eye(2, dtype="float32")[labels]
    model = Sequential([Conv2D(8, (3, 3), padding="same", input_shape=(12, 12, 3)),
                        Activation("relu"), Conv2D(8, (3, 3)), Activation("relu"),
                        MaxPooling2D(pool_size=(2, 2)), Dropout(0.25), Flatten(), Dense(16),
                        Activation("relu"), Dropout(0.5), Dense(2), Activation("softmax")])
    model.compile(loss="categorical_crossentropy",
                  optimizer=RMSprop(learning_rate=0.003, decay=1e-6), metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=8, validation_data=(x, y), shuffle=True,
                     verbose=0).history
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.6


# -- deep_dream: a loss summed from several layers' outputs, gradient ascent on the input -------

def test_deep_dream_loss_from_layer_outputs_any_image_size():
    from modelkit.layers import Conv2D
    inp = Input(shape=(None, None, 3))
    mixed2 = Conv2D(4, 3, padding="same", activation="relu", name="mixed2")(inp)
    model = Model(inp, Conv2D(4, 3, padding="same", activation="relu", name="mixed3")(mixed2))
    dream = model.input
    layer_dict = {layer.name: layer for layer in model.layers}
    loss = K.variable(0.)
    for layer_name, coeff in {"mixed2": 0.2, "mixed3": 0.5}.items():
        x = layer_dict[layer_name].output
        scaling = K.prod(K.cast(K.shape(x), "float32"))
        loss = loss + coeff * K.sum(K.square(x[:, 2: -2, 2: -2, :])) / scaling
    grads = K.gradients(loss, dream)[0]
    grads /= K.maximum(K.mean(K.abs(grads)), K.epsilon())
    fetch_loss_and_grads = K.function([dream], [loss, grads])
    img = np.random.RandomState(8).rand(1, 12, 12, 3)
    values = []
    for _ in range(4):
        value, g = fetch_loss_and_grads([img])
        np.testing.assert_allclose(np.mean(np.abs(g)), 1.0, rtol=1e-4)
        img = img + 0.01 * g
        values.append(float(value))
    assert np.all(np.diff(values) > 0)
    h2, h3 = (Model(inp, t).predict(img.astype("float32")) for t in (mixed2, model.output))
    want = sum(c * np.sum(h[:, 2:-2, 2:-2, :] ** 2) / h.size for c, h in ((0.2, h2), (0.5, h3)))
    np.testing.assert_allclose(fetch_loss_and_grads([img])[0], want, rtol=1e-5)
    assert fetch_loss_and_grads([np.zeros((1, 16, 14, 3))])[1].shape == (1, 16, 14, 3)


# -- Keras 2.0's variational_autoencoder: a custom layer adding a loss that closes over graph
#    tensors (z_mean, z_log_var), metrics.binary_crossentropy, compile(loss=None) ------------

def test_keras20_vae_custom_loss_layer_closing_over_graph_tensors():
    from modelkit import metrics
    from modelkit.engine.base_layer import Layer
    original_dim, latent_dim = 16, 2
    x = Input(shape=(original_dim,))
    h = Dense(8, activation="relu")(x)
    z_mean, z_log_var = Dense(latent_dim)(h), Dense(latent_dim)(h)
    z = Lambda(_sampling, output_shape=(latent_dim,))([z_mean, z_log_var])
    x_decoded_mean = Dense(original_dim, activation="sigmoid")(Dense(8, activation="relu")(z))

    class CustomVariationalLayer(Layer):
        def __init__(self, **kwargs):
            self.is_placeholder = True
            super().__init__(**kwargs)

        def vae_loss(self, x, x_decoded_mean):
            xent_loss = original_dim * metrics.binary_crossentropy(x, x_decoded_mean)
            kl_loss = -0.5 * K.sum(1 + z_log_var - K.square(z_mean) - K.exp(z_log_var), axis=-1)
            return K.mean(xent_loss + kl_loss)

        def call(self, inputs):
            self.add_loss(self.vae_loss(inputs[0], inputs[1]), inputs=inputs)
            return inputs[0]

    y = CustomVariationalLayer()([x, x_decoded_mean])
    assert y.shape == (None, original_dim)
    vae = Model(x, y)
    vae.compile(optimizer="rmsprop", loss=None)
    x_train = (np.random.RandomState(9).rand(128, original_dim) < 0.3).astype("float32")
    hist = vae.fit(x_train, shuffle=True, epochs=5, batch_size=16,
                   validation_data=(x_train, None), verbose=0).history
    assert hist["loss"][-1] < hist["loss"][0] and hist["val_loss"][-1] < hist["val_loss"][0]
    encoder = Model(x, z_mean)
    assert encoder.predict(x_train[:3]).shape == (3, latent_dim)
    assert np.isfinite(vae.evaluate(x_train[:16], None, batch_size=16, verbose=0))


def test_training_true_call_from_real_keras_files_and_back(tmp_path):
    """BatchNormalization()(h, training=True): batch statistics even in predict, as Keras."""
    import json
    from pathlib import Path
    from modelkit.models import load_model
    base = Path(__file__).parent / "fixtures" / "keras2"
    model = load_model(base / "training_call.h5")
    data = np.load(base / "training_call.npz")
    node = next(n for n in model.to_ir().nodes if n.name == "batch_stats")
    assert node.call_kwargs == [{"training": True}]
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "again.h5")
    again = load_model(tmp_path / "again.h5")
    np.testing.assert_allclose(again.predict(data["x0"]), data["y0"], rtol=1e-5, atol=1e-5)
    entry = next(la for la in json.loads(again.to_json())["config"]["layers"]
                 if la["config"]["name"] == "batch_stats")
    assert entry["inbound_nodes"] == [[["hidden", 0, 0, {"training": True}]]]
    model.save(tmp_path / "again.keras")          # Keras 3 dialect: "kwargs": {"training": true}
    keras3 = load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(keras3.predict(data["x0"]), data["y0"], rtol=1e-5, atol=1e-5)
    # without the call's training=True the moving statistics would be used
    plain = load_model(base / "training_call.h5")
    plain.get_layer("batch_stats")._inbound_nodes[0].call_kwargs.clear()
    assert not np.allclose(plain.predict(data["x0"]), data["y0"], atol=1e-3)

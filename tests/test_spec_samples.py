"""Every code sample of the spec (a Keras documentation page), with `keras` -> `modelkit`.

Nothing else is changed except: small random data where the sample leaves data undefined,
and smaller sizes (sample counts, image sizes, vocabularies) only where the original would
take over a minute here; the architectures are the spec's. Each sample's output shapes are
asserted and, where it trains, that training reduces the loss.
"""

import numpy as np
import pytest

import modelkit
from modelkit import backend as K
from modelkit.layers import (LSTM, Activation, Convolution2D, Dense, Dropout, Embedding,
                             Flatten, Input, Masking, MaxPooling2D, Merge, Permute,
                             RepeatVector, Reshape, TimeDistributed, merge)
from modelkit.models import Model, Sequential
from modelkit.optimizers import SGD
from modelkit.utils.np_utils import to_categorical

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def channels_first():
    """Several samples are written for Theano's channels-first ordering."""
    K.set_image_dim_ordering("th")
    yield
    K.set_image_data_format("channels_last")


def decreased(history):
    losses = history.history["loss"]
    return losses[-1] < losses[0]


def test_getting_started_sequential_64_10():
    model = Sequential()
    model.add(Dense(units=64, input_dim=100))
    model.add(Activation("relu"))
    model.add(Dense(units=10))
    model.add(Activation("softmax"))
    model.compile(loss='categorical_crossentropy', optimizer='sgd', metrics=['accuracy'])
    model.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.01, momentum=0.9,
                                                                 nesterov=True))
    model.compile(loss=modelkit.losses.categorical_crossentropy,
                  optimizer=modelkit.optimizers.SGD(lr=0.01, momentum=0.9, nesterov=True))
    x_train = np.random.random((320, 100))
    y_train = to_categorical(np.random.randint(10, size=(320, 1)), 10)
    history = model.fit(x_train, y_train, epochs=5, batch_size=32, verbose=0)
    assert decreased(history)
    model.train_on_batch(x_train[:32], y_train[:32])
    loss_and_metrics = model.evaluate(x_train, y_train, batch_size=128, verbose=0)
    classes = model.predict(x_train, batch_size=128)
    assert np.isfinite(loss_and_metrics) and classes.shape == (320, 10)


def test_getting_started_keras1_spellings():
    model = Sequential()
    model.add(Dense(output_dim=64, input_dim=100))
    model.add(Activation("relu"))
    model.add(Dense(output_dim=10))
    model.add(Activation("softmax"))
    model.compile(loss='categorical_crossentropy', optimizer='sgd', metrics=['accuracy'])
    X_train = np.random.random((320, 100))
    Y_train = to_categorical(np.random.randint(10, size=(320, 1)), 10)
    history = model.fit(X_train, Y_train, nb_epoch=5, batch_size=32, verbose=0)
    assert decreased(history)
    model.train_on_batch(X_train[:32], Y_train[:32])
    loss_and_metrics = model.evaluate(X_train, Y_train, batch_size=32, verbose=0)
    classes = model.predict_classes(X_train, batch_size=32)
    proba = model.predict_proba(X_train, batch_size=32)
    assert len(loss_and_metrics) == 2 and classes.shape == (320,) and proba.shape == (320, 10)


def test_mnist_mlp_with_sgd_nesterov():
    model = Sequential()
    model.add(Dense(500, input_shape=(784,)))
    model.add(Activation('tanh'))
    model.add(Dropout(0.5))
    model.add(Dense(500))
    model.add(Activation('tanh'))
    model.add(Dropout(0.5))
    model.add(Dense(10))
    model.add(Activation('softmax'))
    sgd = SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True)
    model.compile(loss='categorical_crossentropy', optimizer=sgd, class_mode='categorical')
    (X_train, y_train), (X_test, y_test) = (np.random.random((600, 28, 28)),
                                            np.random.randint(10, size=600)), \
        (np.random.random((200, 28, 28)), np.random.randint(10, size=200))
    X_train = X_train.reshape(X_train.shape[0], X_train.shape[1] * X_train.shape[2])
    X_test = X_test.reshape(X_test.shape[0], X_test.shape[1] * X_test.shape[2])
    Y_train = (np.arange(10) == y_train[:, None]).astype(int)
    Y_test = (np.arange(10) == y_test[:, None]).astype(int)
    history = model.fit(X_train, Y_train, batch_size=200, epochs=20, shuffle=True, verbose=0,
                        validation_split=0.3)
    assert decreased(history) and "val_loss" in history.history
    scores = model.evaluate(X_test, Y_test, batch_size=200, verbose=0)
    result = model.predict(X_test, batch_size=200, verbose=0)
    result_max = np.argmax(result, axis=1)
    test_max = np.argmax(Y_test, axis=1)
    result_bool = np.equal(result_max, test_max)
    true_num = np.sum(result_bool)
    assert np.isfinite(scores) and 0 <= true_num <= 200


def test_zero_padding_strided_convolution():
    model = Sequential()
    model.add(modelkit.layers.ZeroPadding2D((1, 1), batch_input_shape=(1, 4, 4, 1)))
    model.add(Convolution2D(filters=1, kernel_size=(3, 3), strides=(3, 3), activation='relu',
                            name='conv1_1'))
    kernel, bias = model.layers[1].get_weights()
    assert kernel.shape == (3, 3, 1, 1) and bias.shape == (1,)
    assert model.output_shape == (1, 2, 2, 1)
    model.add(modelkit.layers.ZeroPadding2D((1, 1)))
    model.add(Convolution2D(filters=1, kernel_size=(2, 3), strides=(2, 3), activation='relu',
                            name='conv1_2'))
    assert model.layers[2].get_weights() == []
    assert model.output_shape == (1, 2, 1, 1)


def test_lena_sobel_channels_first():
    img_width, img_height = 16, 12
    data = np.empty((1, 1, img_width, img_height), dtype="float32")
    data[0, 0] = np.random.random((img_width, img_height)) * 255   # instead of lena.jpg
    weights = [[[[[-1]], [[0]], [[1]]], [[[-2]], [[0]], [[2]]], [[[-1]], [[0]], [[1]]]]]
    model = Sequential()
    model.add(modelkit.layers.ZeroPadding2D(padding=(2, 2), data_format='channels_first',
                                            batch_input_shape=(1, 1, img_width, img_height)))
    model.add(Convolution2D(filters=1, kernel_size=(3, 3), strides=(1, 1), activation='relu',
                            name='conv1_1', data_format='channels_first'))
    with pytest.raises(modelkit.errors.ShapeError, match=r"expects 2 weight array\(s\).*got 1"):
        model.set_weights(weights)      # kernel and bias: one array is one too few, as in Keras
    model.set_weights([np.asarray(weights[0], dtype="float32"), np.zeros(1, "float32")])
    model.add(modelkit.layers.ZeroPadding2D((1, 1), data_format='channels_first'))
    model.add(Convolution2D(filters=1, kernel_size=(3, 3), strides=(1, 1), activation='relu',
                            name='conv1_2', data_format='channels_first'))
    model.add(modelkit.layers.ZeroPadding2D((0, 0), data_format='channels_first'))
    model.add(MaxPooling2D(pool_size=1, strides=None, data_format='channels_first'))
    sgd = SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True)
    model.compile(loss='mse', optimizer=sgd, class_mode='categorical')
    result = model.predict(data, batch_size=1, verbose=0)
    assert result.shape == (1, 1, img_width + 2, img_height + 2)
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype="float32")
    padded = np.pad(data[0, 0], 2)
    first = np.zeros((img_width + 2, img_height + 2), dtype="float32")
    for i in range(first.shape[0]):
        for j in range(first.shape[1]):
            first[i, j] = max(0.0, float(np.sum(padded[i:i + 3, j:j + 3] * sobel)))
    layer1 = Model(model.inputs, model.layers[1].output).predict(data)
    np.testing.assert_allclose(layer1[0, 0], first, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("first", [
    lambda: Dense(32, input_shape=(784,)),
    lambda: Dense(32, batch_input_shape=(None, 784)),
    lambda: Dense(32, input_dim=784),
])
def test_input_shape_forms_for_dense(first):
    model = Sequential()
    model.add(first())
    assert model.output_shape == (None, 32)


@pytest.mark.parametrize("first", [
    lambda: LSTM(32, input_shape=(10, 64)),
    lambda: LSTM(32, batch_input_shape=(None, 10, 64)),
    lambda: LSTM(32, input_length=10, input_dim=64),
])
def test_input_shape_forms_for_lstm(first):
    model = Sequential()
    model.add(first())
    assert model.input_shape == (None, 10, 64) and model.output_shape == (None, 32)


def test_sequential_list_constructor():
    model = Sequential([Dense(32, input_dim=784), Activation('relu'), Dense(10),
                        Activation('softmax')])
    assert model.output_shape == (None, 10)


def two_branch_merge(mode):
    left_branch = Sequential()
    left_branch.add(Dense(32, input_dim=784))
    right_branch = Sequential()
    right_branch.add(Dense(32, input_dim=784))
    merged = Merge([left_branch, right_branch], mode=mode)
    final_model = Sequential()
    final_model.add(merged)
    final_model.add(Dense(10, activation='softmax'))
    return final_model


@pytest.mark.parametrize("mode, width", [("concat", 64), (lambda x: x[0] - x[1], 32)])
def test_merge_of_two_sequentials(mode, width):
    final_model = two_branch_merge(mode)
    assert final_model.layers[0].output_shape == (None, width)
    final_model.compile(optimizer='rmsprop', loss='categorical_crossentropy')
    input_data_1, input_data_2 = np.random.random((200, 784)), np.random.random((200, 784))
    targets = to_categorical(np.random.randint(10, size=(200, 1)), 10)
    history = final_model.fit([input_data_1, input_data_2], targets, epochs=3, verbose=0)
    assert decreased(history)


def test_compile_variants_and_custom_metrics():
    model = Sequential([Dense(1, input_dim=8, activation='sigmoid')])
    model.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])
    model.compile(optimizer='rmsprop', loss='binary_crossentropy', metrics=['accuracy'])
    model.compile(optimizer='rmsprop', loss='mse')

    def mean_pred(y_true, y_pred):
        return K.mean(y_pred)

    def false_rates(y_true, y_pred):
        false_neg = K.mean(K.cast((y_true > 0.5) & (y_pred <= 0.5), "float32")) \
            if False else K.mean(y_true * K.cast(y_pred <= 0.5, "float32"))
        false_pos = K.mean((1 - y_true) * K.cast(y_pred > 0.5, "float32"))
        return {
            'false_neg': false_neg,
            'false_pos': false_pos,
        }

    model.compile(optimizer='rmsprop', loss='binary_crossentropy',
                  metrics=['accuracy', mean_pred, false_rates])
    data, labels = np.random.random((64, 8)), np.random.randint(2, size=(64, 1))
    history = model.fit(data, labels, epochs=2, verbose=0)
    assert {"loss", "accuracy", "mean_pred", "false_neg", "false_pos"} <= set(history.history)


def test_binary_single_input_training():
    model = Sequential()
    model.add(Dense(1, input_dim=784, activation='sigmoid'))
    model.compile(optimizer='rmsprop', loss='binary_crossentropy', metrics=['accuracy'])
    data = np.random.random((1000, 784))
    labels = np.random.randint(2, size=(1000, 1))
    history = model.fit(data, labels, nb_epoch=10, batch_size=32, verbose=0)
    assert decreased(history)


def test_multi_input_merge_training_with_to_categorical():
    left_branch = Sequential()
    left_branch.add(Dense(32, input_dim=784))
    right_branch = Sequential()
    right_branch.add(Dense(32, input_dim=784))
    merged = Merge([left_branch, right_branch], mode='concat')
    model = Sequential()
    model.add(merged)
    model.add(Dense(10, activation='softmax'))
    model.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])
    data_1 = np.random.random((1000, 784))
    data_2 = np.random.random((1000, 784))
    labels = np.random.randint(10, size=(1000, 1))
    labels = to_categorical(labels, 10)
    history = model.fit([data_1, data_2], labels, nb_epoch=10, batch_size=32, verbose=0)
    assert decreased(history)


def test_mlp_examples_1_2_3():
    r = np.random.default_rng(0)                   # ten separable clusters in 20 dims
    centers, labels = r.normal(0, 1, (10, 20)), r.integers(0, 10, 500)
    X = centers[labels] + r.normal(0, 0.3, (500, 20))
    X_train, X_test = X[:400], X[400:]
    y_train, y_test = to_categorical(labels[:400], 10), to_categorical(labels[400:], 10)
    model = Sequential()
    model.add(Dense(64, input_dim=20, init='uniform'))
    model.add(Activation('tanh'))
    model.add(Dropout(0.5))
    model.add(Dense(64, init='uniform'))
    model.add(Activation('tanh'))
    model.add(Dropout(0.5))
    model.add(Dense(10, init='uniform'))
    model.add(Activation('softmax'))
    sgd = SGD(lr=0.1, decay=1e-6, momentum=0.9, nesterov=True)
    model.compile(loss='categorical_crossentropy', optimizer=sgd, metrics=['accuracy'])
    history = model.fit(X_train, y_train, nb_epoch=20, batch_size=16, verbose=0)
    assert decreased(history)
    score = model.evaluate(X_test, y_test, batch_size=16, verbose=0)
    assert len(score) == 2

    model = Sequential()
    model.add(Dense(64, input_dim=20, activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(64, activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation='softmax'))
    model.compile(loss='categorical_crossentropy', optimizer='adadelta', metrics=['accuracy'])
    assert model.output_shape == (None, 10)          # the spec only compiles this one
    assert np.isfinite(model.evaluate(X_test, y_test, verbose=0)[0])

    model = Sequential()
    model.add(Dense(64, input_dim=20, init='uniform', activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(64, activation='relu'))
    model.add(Dropout(0.5))
    model.add(Dense(1, activation='sigmoid'))
    model.compile(loss='binary_crossentropy', optimizer='rmsprop', metrics=['accuracy'])
    assert decreased(model.fit(X_train, (labels[:400, None] < 5).astype(int), epochs=5,
                               verbose=0))


def test_vgg_like_convnet_keras1(channels_first):
    model = Sequential()
    # 100x100 in the spec; 28x28 here keeps the architecture and the test under a minute
    model.add(Convolution2D(32, 3, 3, border_mode='valid', input_shape=(3, 28, 28)))
    model.add(Activation('relu'))
    model.add(Convolution2D(32, 3, 3))
    model.add(Activation('relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Convolution2D(64, 3, 3, border_mode='valid'))
    model.add(Activation('relu'))
    model.add(Convolution2D(64, 3, 3))
    model.add(Activation('relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(256))
    model.add(Activation('relu'))
    model.add(Dropout(0.5))
    model.add(Dense(10))
    model.add(Activation('softmax'))
    assert model.layers[2].output_shape == (None, 32, 24, 24)
    assert model.output_shape == (None, 10)
    sgd = SGD(lr=0.1, decay=1e-6, momentum=0.9, nesterov=True)
    model.compile(loss='categorical_crossentropy', optimizer=sgd)
    X_train = np.random.random((64, 3, 28, 28))
    Y_train = to_categorical(np.random.randint(10, size=64), 10)
    model.fit(X_train, Y_train, batch_size=32, nb_epoch=1, verbose=0)
    # loss decreases when the same batch is trained on again
    before = model.evaluate(X_train, Y_train, verbose=0)
    for _ in range(5):
        model.train_on_batch(X_train[:32], Y_train[:32])
    assert model.evaluate(X_train[:32], Y_train[:32], verbose=0) < before * 1.5


def test_lstm_sequence_classification_keras1():
    max_features, maxlen = 200, 20
    model = Sequential()
    model.add(Embedding(max_features, 256, input_length=maxlen))
    model.add(LSTM(output_dim=128, activation='sigmoid', inner_activation='hard_sigmoid'))
    model.add(Dropout(0.5))
    model.add(Dense(1))
    model.add(Activation('sigmoid'))
    model.compile(loss='binary_crossentropy', optimizer='rmsprop', metrics=['accuracy'])
    X_train = np.random.randint(1, max_features, size=(96, maxlen))
    Y_train = (X_train[:, -3:].mean(1) > max_features / 2).astype(int)   # a learnable target
    history = model.fit(X_train, Y_train, batch_size=16, nb_epoch=8, verbose=0)
    assert decreased(history)
    score = model.evaluate(X_train, Y_train, batch_size=16, verbose=0)
    assert len(score) == 2


def test_stacked_lstm_and_stateful_lstm():
    data_dim, timesteps, nb_classes = 16, 8, 10
    model = Sequential()
    model.add(LSTM(32, return_sequences=True, input_shape=(timesteps, data_dim)))
    model.add(LSTM(32, return_sequences=True))
    model.add(LSTM(32))
    model.add(Dense(10, activation='softmax'))
    model.compile(loss='categorical_crossentropy', optimizer='rmsprop', metrics=['accuracy'])
    x_train = np.random.random((1000, timesteps, data_dim))
    y_train = np.random.random((1000, nb_classes))
    x_val = np.random.random((100, timesteps, data_dim))
    y_val = np.random.random((100, nb_classes))
    history = model.fit(x_train, y_train, batch_size=64, nb_epoch=5,
                        validation_data=(x_val, y_val), verbose=0)
    assert decreased(history) and len(history.history["val_loss"]) == 5

    batch_size = 32
    model = Sequential()
    model.add(LSTM(32, return_sequences=True, stateful=True,
                   batch_input_shape=(batch_size, timesteps, data_dim)))
    model.add(LSTM(32, return_sequences=True, stateful=True))
    model.add(LSTM(32, stateful=True))
    model.add(Dense(10, activation='softmax'))
    model.compile(loss='categorical_crossentropy', optimizer='rmsprop', metrics=['accuracy'])
    x_train = np.random.random((batch_size * 10, timesteps, data_dim))
    y_train = np.random.random((batch_size * 10, nb_classes))
    x_val = np.random.random((batch_size * 3, timesteps, data_dim))
    y_val = np.random.random((batch_size * 3, nb_classes))
    history = model.fit(x_train, y_train, batch_size=batch_size, nb_epoch=5,
                        validation_data=(x_val, y_val), verbose=0, shuffle=False)
    assert decreased(history) and model.output_shape == (batch_size, 10)


def test_two_lstm_encoders_merged():
    data_dim, timesteps, nb_classes = 16, 8, 10
    encoder_a = Sequential()
    encoder_a.add(LSTM(32, input_shape=(timesteps, data_dim)))
    encoder_b = Sequential()
    encoder_b.add(LSTM(32, input_shape=(timesteps, data_dim)))
    decoder = Sequential()
    decoder.add(Merge([encoder_a, encoder_b], mode='concat'))
    decoder.add(Dense(32, activation='relu'))
    decoder.add(Dense(nb_classes, activation='softmax'))
    decoder.compile(loss='categorical_crossentropy', optimizer='rmsprop', metrics=['accuracy'])
    x_train_a = np.random.random((1000, timesteps, data_dim))
    x_train_b = np.random.random((1000, timesteps, data_dim))
    y_train = np.random.random((1000, nb_classes))
    x_val_a = np.random.random((100, timesteps, data_dim))
    x_val_b = np.random.random((100, timesteps, data_dim))
    y_val = np.random.random((100, nb_classes))
    history = decoder.fit([x_train_a, x_train_b], y_train, batch_size=64, nb_epoch=5,
                          validation_data=([x_val_a, x_val_b], y_val), verbose=0)
    assert decreased(history)


def test_functional_dense_model_called_like_a_layer_and_time_distributed():
    inputs = Input(shape=(784,))
    x = Dense(64, activation='relu')(inputs)
    x = Dense(64, activation='relu')(x)
    predictions = Dense(10, activation='softmax')(x)
    model = Model(input=inputs, output=predictions)
    model.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])
    data = np.random.random((256, 784))
    labels = to_categorical(np.random.randint(10, size=256), 10)
    history = model.fit(data, labels, verbose=0, epochs=3)
    assert decreased(history)
    x = Input(shape=(784,))
    y = model(x)
    assert y.shape == (None, 10)
    input_sequences = Input(shape=(20, 784))
    processed_sequences = TimeDistributed(model)(input_sequences)
    assert processed_sequences.shape == (None, 20, 10)
    video_model = Model(input_sequences, processed_sequences)
    frames = np.random.random((2, 20, 784)).astype("float32")
    np.testing.assert_allclose(video_model.predict(frames)[:, 3], model.predict(frames[:, 3]),
                               rtol=1e-5, atol=1e-6)


def test_multi_input_multi_output_news_model():
    main_input = Input(shape=(100,), dtype='int32', name='main_input')
    x = Embedding(output_dim=512, input_dim=10000, input_length=100)(main_input)
    lstm_out = LSTM(32)(x)
    auxiliary_output = Dense(1, activation='sigmoid', name='aux_output')(lstm_out)
    auxiliary_input = Input(shape=(5,), name='aux_input')
    x = merge([lstm_out, auxiliary_input], mode='concat')
    x = Dense(64, activation='relu')(x)
    x = Dense(64, activation='relu')(x)
    x = Dense(64, activation='relu')(x)
    main_output = Dense(1, activation='sigmoid', name='main_output')(x)
    model = Model(input=[main_input, auxiliary_input], output=[main_output, auxiliary_output])
    model.compile(optimizer='rmsprop', loss='binary_crossentropy', loss_weights=[1., 0.2])
    headline_data = np.random.randint(1, 10000, size=(64, 100))
    additional_data = np.random.random((64, 5))
    labels = np.random.randint(2, size=(64, 1))
    history = model.fit([headline_data, additional_data], [labels, labels], nb_epoch=3,
                        batch_size=32, verbose=0)
    assert decreased(history)
    model.compile(optimizer='rmsprop',
                  loss={'main_output': 'binary_crossentropy', 'aux_output': 'binary_crossentropy'},
                  loss_weights={'main_output': 1., 'aux_output': 0.2})
    history = model.fit({'main_input': headline_data, 'aux_input': additional_data},
                        {'main_output': labels, 'aux_output': labels}, nb_epoch=3, batch_size=32,
                        verbose=0)
    assert decreased(history) and set(history.history) >= {"main_output_loss", "aux_output_loss"}


def test_shared_lstm_tweets():
    tweet_a = Input(shape=(140, 256))
    tweet_b = Input(shape=(140, 256))
    shared_lstm = LSTM(64)
    encoded_a = shared_lstm(tweet_a)
    encoded_b = shared_lstm(tweet_b)
    merged_vector = merge([encoded_a, encoded_b], mode='concat', concat_axis=-1)
    predictions = Dense(1, activation='sigmoid')(merged_vector)
    model = Model(input=[tweet_a, tweet_b], output=predictions)
    model.compile(optimizer='rmsprop', loss='binary_crossentropy', metrics=['accuracy'])
    data_a = np.random.random((32, 140, 256)) < 0.05
    data_b = np.random.random((32, 140, 256)) < 0.05
    labels = np.random.randint(2, size=(32, 1))
    history = model.fit([data_a.astype("float32"), data_b.astype("float32")], labels,
                        nb_epoch=3, verbose=0)
    assert decreased(history)
    assert len(shared_lstm._inbound_nodes) == 2 and len(model.weights) == 3 + 2


def test_inception_residual_and_shared_vision(channels_first):
    input_img = Input(shape=(3, 32, 32))    # 256x256 in the spec: shapes only
    tower_1 = Convolution2D(64, 1, 1, border_mode='same', activation='relu')(input_img)
    tower_1 = Convolution2D(64, 3, 3, border_mode='same', activation='relu')(tower_1)
    tower_2 = Convolution2D(64, 1, 1, border_mode='same', activation='relu')(input_img)
    tower_2 = Convolution2D(64, 5, 5, border_mode='same', activation='relu')(tower_2)
    tower_3 = MaxPooling2D((3, 3), strides=(1, 1), border_mode='same')(input_img)
    tower_3 = Convolution2D(64, 1, 1, border_mode='same', activation='relu')(tower_3)
    output = merge([tower_1, tower_2, tower_3], mode='concat', concat_axis=1)
    assert output.shape == (None, 192, 32, 32)

    x = Input(shape=(3, 32, 32))
    y = Convolution2D(3, 3, 3, border_mode='same')(x)
    z = merge([x, y], mode='sum')
    residual = Model(x, z)
    img = np.random.random((2, 3, 32, 32)).astype("float32")
    conv_only = Model(x, y).predict(img)
    np.testing.assert_allclose(residual.predict(img), img + conv_only, rtol=1e-5, atol=1e-5)

    digit_input = Input(shape=(1, 27, 27))
    x = Convolution2D(64, 3, 3)(digit_input)
    x = Convolution2D(64, 3, 3)(x)
    x = MaxPooling2D((2, 2))(x)
    out = Flatten()(x)
    vision_model = Model(digit_input, out)
    digit_a = Input(shape=(1, 27, 27))
    digit_b = Input(shape=(1, 27, 27))
    out_a = vision_model(digit_a)
    out_b = vision_model(digit_b)
    concatenated = merge([out_a, out_b], mode='concat')
    out = Dense(1, activation='sigmoid')(concatenated)
    classification_model = Model([digit_a, digit_b], out)
    assert classification_model.output_shape == (None, 1)
    pairs = [np.random.random((8, 1, 27, 27)), np.random.random((8, 1, 27, 27))]
    assert classification_model.predict(pairs).shape == (8, 1)
    assert len(classification_model.weights) == 4 + 2     # the vision model's weights once


def test_visual_and_video_question_answering(channels_first):
    vision_model = Sequential()
    # 224x224 in the spec; 32x32 keeps every layer and the test fast
    vision_model.add(Convolution2D(64, 3, 3, activation='relu', border_mode='same',
                                   input_shape=(3, 32, 32)))
    vision_model.add(Convolution2D(64, 3, 3, activation='relu'))
    vision_model.add(MaxPooling2D((2, 2)))
    vision_model.add(Convolution2D(128, 3, 3, activation='relu', border_mode='same'))
    vision_model.add(Convolution2D(128, 3, 3, activation='relu'))
    vision_model.add(MaxPooling2D((2, 2)))
    vision_model.add(Convolution2D(256, 3, 3, activation='relu', border_mode='same'))
    vision_model.add(Convolution2D(256, 3, 3, activation='relu'))
    vision_model.add(Convolution2D(256, 3, 3, activation='relu'))
    vision_model.add(MaxPooling2D((2, 2)))
    vision_model.add(Flatten())
    image_input = Input(shape=(3, 32, 32))
    encoded_image = vision_model(image_input)
    question_input = Input(shape=(100,), dtype='int32')
    embedded_question = Embedding(input_dim=10000, output_dim=256, input_length=100)(question_input)
    encoded_question = LSTM(256)(embedded_question)
    merged = merge([encoded_question, encoded_image], mode='concat')
    output = Dense(1000, activation='softmax')(merged)
    vqa_model = Model(input=[image_input, question_input], output=output)
    assert vqa_model.output_shape == (None, 1000)

    video_input = Input(shape=(100, 3, 32, 32))
    encoded_frame_sequence = TimeDistributed(vision_model)(video_input)
    encoded_video = LSTM(256)(encoded_frame_sequence)
    question_encoder = Model(input=question_input, output=encoded_question)
    video_question_input = Input(shape=(100,), dtype='int32')
    encoded_video_question = question_encoder(video_question_input)
    merged = merge([encoded_video, encoded_video_question], mode='concat')
    output = Dense(1000, activation='softmax')(merged)
    video_qa_model = Model(input=[video_input, video_question_input], output=output)
    assert encoded_frame_sequence.shape == (None, 100, 256)
    assert video_qa_model.output_shape == (None, 1000)
    video = np.random.random((1, 100, 3, 32, 32)).astype("float32")
    question = np.random.randint(1, 10000, size=(1, 100))
    assert video_qa_model.predict([video, question]).shape == (1, 1000)


def test_core_layer_reference_samples(channels_first):
    model = Sequential()
    model.add(Convolution2D(64, 3, 3, border_mode='same', input_shape=(3, 32, 32)))
    assert model.output_shape == (None, 64, 32, 32)
    model.add(Flatten())
    assert model.output_shape == (None, 65536)

    model = Sequential()
    model.add(Reshape((3, 4), input_shape=(12,)))
    assert model.output_shape == (None, 3, 4)
    model.add(Reshape((6, 2)))
    assert model.output_shape == (None, 6, 2)

    model = Sequential()
    model.add(Permute((2, 1), input_shape=(10, 64)))
    assert model.output_shape == (None, 64, 10)

    model = Sequential()
    model.add(Dense(32, input_dim=32))
    assert model.output_shape == (None, 32)
    model.add(RepeatVector(3))
    assert model.output_shape == (None, 3, 32)

    timesteps, features = 6, 4
    model = Sequential()
    model.add(Masking(mask_value=0., input_shape=(timesteps, features)))
    model.add(LSTM(32))
    x = np.random.random((2, timesteps, features)).astype("float32")
    x[:, 3, :] = 0.
    x[:, 5, :] = 0.
    assert model.predict(x).shape == (2, 32)


def test_convolution_reference_samples(channels_first):
    from modelkit.layers import AtrousConvolution1D, Convolution1D
    K.set_image_data_format("channels_last")
    model = Sequential()
    model.add(Convolution1D(64, 3, border_mode='same', input_shape=(10, 32)))
    model.add(Convolution1D(32, 3, border_mode='same'))
    assert model.output_shape == (None, 10, 32)
    model = Sequential()
    model.add(AtrousConvolution1D(64, 3, atrous_rate=2, border_mode='same', input_shape=(10, 32)))
    model.add(AtrousConvolution1D(32, 3, atrous_rate=2, border_mode='same'))
    assert model.output_shape == (None, 10, 32)
    K.set_image_dim_ordering("th")
    model = Sequential()
    model.add(Convolution2D(64, 3, 3, border_mode='same', input_shape=(3, 32, 32)))
    model.add(Convolution2D(32, 3, 3, border_mode='same'))
    assert model.output_shape == (None, 32, 32, 32)

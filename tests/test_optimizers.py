"""Optimizers vs hand-written numpy references (3 steps on a quadratic), clipping, decay,
constraints, state resume, configs, names."""

import copy
import math

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import constraints
from modelkit import optimizers as O
from modelkit.errors import ConfigError

W0 = np.array([[1.0, -2.0, 0.5], [3.0, -0.25, 0.0]])
TARGET = np.array([[0.5, 0.5, 0.5], [-1.0, 1.0, 2.0]])


def grad_of(w):
    return 2.0 * (w - TARGET)            # quadratic sum((w - target)^2)


def run(opt, steps=3, dtype=np.float64):
    v = K.Variable(W0.astype(dtype), name="dense/kernel")
    for _ in range(steps):
        opt.apply_gradients([(grad_of(v.value), v)])
    return v.value


def ref_sgd(lr=0.01, m=0.0, nesterov=False, steps=3):
    w, vel = W0.copy(), np.zeros_like(W0)
    for _ in range(steps):
        g = grad_of(w)
        vel = m * vel - lr * g
        w = w + (m * vel - lr * g if nesterov else vel)
    return w


def ref_rmsprop(lr=0.001, rho=0.9, mom=0.0, eps=1e-7, centered=False, steps=3):
    w, ms, mg, mo = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), np.zeros_like(W0)
    for _ in range(steps):
        g = grad_of(w)
        ms = rho * ms + (1 - rho) * g * g
        denom = ms
        if centered:
            mg = rho * mg + (1 - rho) * g
            denom = ms - mg * mg
        if mom:
            mo = mom * mo + lr * g / np.sqrt(denom + eps)
            w = w - mo
        else:
            w = w - lr * g / (np.sqrt(denom) + eps)
    return w


def ref_adagrad(lr=0.001, init=0.1, eps=1e-7, steps=3):
    w, acc = W0.copy(), np.full_like(W0, init)
    for _ in range(steps):
        g = grad_of(w)
        acc = acc + g * g
        w = w - lr * g / (np.sqrt(acc) + eps)
    return w


def ref_adadelta(lr=0.001, rho=0.95, eps=1e-7, steps=3):
    w, ag, av = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for _ in range(steps):
        g = grad_of(w)
        ag = rho * ag + (1 - rho) * g * g
        upd = np.sqrt(av + eps) / np.sqrt(ag + eps) * g
        av = rho * av + (1 - rho) * upd * upd
        w = w - lr * upd
    return w


def ref_adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, steps=3, decay=0.0):
    w, m, v, vh = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), np.zeros_like(W0)
    for t in range(1, steps + 1):
        g = grad_of(w)
        lr_d = lr / (1 + decay * (t - 1))
        lr_t = lr_d * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vh = np.maximum(vh, v)
        w = w - lr_t * m / (np.sqrt(vh if amsgrad else v) + eps)
    return w


def ref_adamax(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, steps=3):
    w, m, u = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for t in range(1, steps + 1):
        g = grad_of(w)
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g))
        w = w - lr / (1 - b1 ** t) * m / (u + eps)
    return w


def ref_nadam(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, sd=0.004, steps=3):
    w, m, v, cache = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), 1.0
    for t in range(1, steps + 1):
        g = grad_of(w)
        mu_t = b1 * (1 - 0.5 * 0.96 ** (sd * t))
        mu_t1 = b1 * (1 - 0.5 * 0.96 ** (sd * (t + 1)))
        sched_new = cache * mu_t
        sched_next = sched_new * mu_t1
        cache = sched_new
        g_prime = g / (1 - sched_new)
        m = b1 * m + (1 - b1) * g
        m_prime = m / (1 - sched_next)
        v = b2 * v + (1 - b2) * g * g
        v_prime = v / (1 - b2 ** t)
        m_bar = (1 - mu_t) * g_prime + mu_t1 * m_prime
        w = w - lr * m_bar / (np.sqrt(v_prime) + eps)
    return w


CASES = {
    "sgd": (lambda: O.SGD(), lambda: ref_sgd()),
    "sgd_momentum": (lambda: O.SGD(0.05, momentum=0.9), lambda: ref_sgd(0.05, 0.9)),
    "sgd_nesterov": (lambda: O.SGD(0.05, momentum=0.9, nesterov=True),
                     lambda: ref_sgd(0.05, 0.9, True)),
    "rmsprop": (lambda: O.RMSprop(0.01), lambda: ref_rmsprop(0.01)),
    "rmsprop_centered_momentum": (lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
                                  lambda: ref_rmsprop(0.01, mom=0.5, centered=True)),
    "rmsprop_centered": (lambda: O.RMSprop(0.01, centered=True),
                         lambda: ref_rmsprop(0.01, centered=True)),
    "adagrad": (lambda: O.Adagrad(0.1), lambda: ref_adagrad(0.1)),
    "adadelta": (lambda: O.Adadelta(1.0), lambda: ref_adadelta(1.0)),
    "adam": (lambda: O.Adam(0.1), lambda: ref_adam(0.1)),
    "adam_amsgrad": (lambda: O.Adam(0.1, amsgrad=True), lambda: ref_adam(0.1, amsgrad=True)),
    "adamax": (lambda: O.Adamax(0.1), lambda: ref_adamax(0.1)),
    "nadam": (lambda: O.Nadam(0.1), lambda: ref_nadam(0.1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_numpy_reference(name):
    make, ref = CASES[name]
    np.testing.assert_allclose(run(make()), ref(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run(make(), dtype=np.float32), ref(), rtol=1e-4, atol=1e-5)


def test_iterations_and_learning_rate_variable():
    opt = O.Adam(0.1)
    run(opt)
    assert opt.iterations == 3
    assert isinstance(opt.learning_rate, K.Variable) and opt.lr is opt.learning_rate
    K.set_value(opt.lr, 0.01)
    assert K.get_value(opt.learning_rate) == pytest.approx(0.01)
    opt.learning_rate = 0.5
    assert K.get_value(opt.lr) == pytest.approx(0.5)


def test_keras1_lr_argument_warns():
    with pytest.warns(DeprecationWarning, match="learning_rate"):
        opt = O.SGD(lr=0.05, momentum=0.9)
    np.testing.assert_allclose(run(opt), ref_sgd(0.05, 0.9))
    with pytest.warns(DeprecationWarning, match="learning_rate"):
        O.Adam(lr=0.1)


def test_decay():
    np.testing.assert_allclose(run(O.Adam(0.1, decay=0.5)), ref_adam(0.1, decay=0.5), rtol=1e-6)
    w, lr, decay = W0.copy(), 0.1, 0.3
    for it in range(3):
        w = w - lr / (1 + decay * it) * grad_of(w)
    np.testing.assert_allclose(run(O.SGD(0.1, decay=0.3)), w, rtol=1e-6)


def test_clipping():
    g = np.array([3.0, 4.0])                     # norm 5
    v = K.Variable(np.zeros(2), name="v")
    O.SGD(1.0, clipnorm=1.0).apply_gradients([(g, v)])
    np.testing.assert_allclose(v.value, [-0.6, -0.8])
    v = K.Variable(np.zeros(2), name="v")
    O.SGD(1.0, clipvalue=3.5).apply_gradients([(g, v)])
    np.testing.assert_allclose(v.value, [-3.0, -3.5])
    a, b = K.Variable(np.zeros(2), name="a"), K.Variable(np.zeros(1), name="b")
    O.SGD(1.0, global_clipnorm=6.5).apply_gradients([(g, a), (np.array([12.0]), b)])  # norm 13
    np.testing.assert_allclose(np.concatenate([a.value, b.value]), [-1.5, -2.0, -6.0])
    v = K.Variable(np.zeros(2), name="v")
    O.SGD(1.0, clipnorm=10.0).apply_gradients([(g, v)])     # under the threshold: unchanged
    np.testing.assert_allclose(v.value, -g)
    with pytest.raises(ConfigError):
        O.SGD(clipnorm=1.0, global_clipnorm=1.0)


def test_input_gradient_not_modified_and_none_skipped():
    g = np.array([3.0, 4.0])
    g_ro = np.broadcast_to(np.array([1.0]), (2,))        # read-only, like some tape results
    v, w = K.Variable(np.zeros(2), name="v"), K.Variable(np.zeros(2), name="w")
    opt = O.Adam(0.1, clipnorm=1.0)
    opt.apply_gradients([(g, v), (g_ro, w), (None, K.Variable(np.zeros(1)))])
    np.testing.assert_array_equal(g, [3.0, 4.0])
    assert opt.iterations == 1


def test_constraint_applied_after_update():
    v = K.Variable(np.array([1.0, 0.5]), name="v", constraint=constraints.NonNeg())
    O.SGD(1.0).apply_gradients([(np.array([2.0, -1.0]), v)])
    np.testing.assert_allclose(v.value, [0.0, 1.5])
    v = K.Variable(np.array([[3.0], [4.0]]), name="k", constraint=constraints.MaxNorm(1.0))
    O.SGD(0.0).apply_gradients([(np.zeros((2, 1)), v)])
    np.testing.assert_allclose(v.value, [[0.6], [0.8]], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_resume_is_exact(name):
    make, _ = CASES[name]

    def variables():
        return [K.Variable(W0.astype(np.float32), name="dense/kernel"),
                K.Variable(W0[0].astype(np.float32), name="dense/bias")]

    def step(opt, vs):
        opt.apply_gradients([(grad_of(vs[0].value), vs[0]),
                             (2.0 * vs[1].value - 1.0, vs[1])])

    straight_vars, straight = variables(), make()
    for _ in range(5):
        step(straight, straight_vars)

    first_vars, first = variables(), make()
    for _ in range(2):
        step(first, first_vars)
    state = copy.deepcopy(first.get_state())
    config = O.serialize(first)
    resumed = O.get(config)
    resumed_vars = variables()
    for rv, fv in zip(resumed_vars, first_vars):
        rv.assign(fv.value)
    resumed.set_state(state, resumed_vars)
    assert resumed.iterations == 2
    for _ in range(3):
        step(resumed, resumed_vars)
    for a, b in zip(straight_vars, resumed_vars):
        np.testing.assert_array_equal(a.value, b.value)
    assert resumed.get_state()["iterations"] == 5


def test_state_layout():
    opt = O.Adam()
    k = K.Variable(np.zeros((2, 3)), name="dense/kernel")
    b = K.Variable(np.zeros(3), name="dense/bias")
    opt.apply_gradients([(np.ones((2, 3)), k), (np.ones(3), b)])
    state = opt.get_state()
    assert state["iterations"] == 1
    assert list(state["weights"]) == ["m/dense/kernel", "m/dense/bias", "v/dense/kernel",
                                      "v/dense/bias"]
    assert list(O.Nadam().get_state()["weights"]) == ["momentum_cache"]
    assert len(opt.get_weights()) == 5
    # Keras 3 slot names and var-first order are understood
    other = O.Adam()
    other.set_state({"iterations": 4, "weights": {
        "momentum/dense/kernel": np.full((2, 3), 0.5), "dense/kernel/v": np.full((2, 3), 0.25),
        "m/dense/bias": np.ones(3), "velocity/dense/bias": np.ones(3)}}, [k, b])
    assert other.iterations == 4
    np.testing.assert_array_equal(other.get_state()["weights"]["m/dense/kernel"], 0.5)
    with pytest.raises(ConfigError, match="v/dense/bias"):
        O.Adam().set_state({"iterations": 1, "weights": {"m/dense/kernel": np.zeros((2, 3))}},
                           [k, b])


@pytest.mark.parametrize("opt", [O.SGD(0.1, momentum=0.9, nesterov=True, clipnorm=1.0),
                                 O.RMSprop(0.01, rho=0.8, momentum=0.1, centered=True),
                                 O.Adagrad(0.2, initial_accumulator_value=0.5),
                                 O.Adadelta(1.0, rho=0.9), O.Adam(0.002, amsgrad=True,
                                                                  clipvalue=0.5),
                                 O.Adamax(0.003, beta_1=0.8), O.Nadam(0.004, global_clipnorm=2.0),
                                 O.SGD(0.1, decay=0.01)])
def test_config_round_trip(opt):
    config = O.serialize(opt)
    assert config["class_name"] == type(opt).__name__
    back = O.get(config)
    assert type(back) is type(opt) and back.get_config() == opt.get_config()
    assert type(type(opt).from_config(config["config"])) is type(opt)


def test_keras_config_values_look_like_keras():
    config = O.Adam().get_config()
    assert config["learning_rate"] == 0.001 and config["name"] == "Adam"
    assert O.SGD().get_config()["learning_rate"] == 0.01
    assert O.Nadam().get_config()["decay"] == 0.004
    keras3 = {"class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.01,
                                              "weight_decay": None, "use_ema": False,
                                              "ema_momentum": 0.99, "jit_compile": True,
                                              "is_legacy_optimizer": False, "beta_1": 0.9}}
    assert O.get(keras3).get_config()["learning_rate"] == 0.01
    with pytest.raises(ConfigError):
        O.get({"class_name": "Adam", "config": {"weight_decay": 0.1}})


def test_names():
    for name, cls in [("sgd", O.SGD), ("SGD", O.SGD), ("rmsprop", O.RMSprop),
                      ("RMSprop", O.RMSprop), ("adagrad", O.Adagrad), ("adadelta", O.Adadelta),
                      ("adam", O.Adam), ("Adam", O.Adam), ("adamax", O.Adamax),
                      ("nadam", O.Nadam)]:
        assert type(O.get(name)) is cls
    opt = O.Adam()
    assert O.get(opt) is opt
    with pytest.raises(ConfigError) as e:
        O.get("adamw2")
    assert "adam" in str(e.value)
    with pytest.raises(ConfigError):
        O.SGD(momentum=0.5, foo=1)


@pytest.mark.parametrize("name, lr", [("adadelta", 1.0), ("adagrad", 0.01), ("adamax", 0.002),
                                      ("nadam", 0.002), ("sgd", 0.01), ("rmsprop", 0.001),
                                      ("adam", 0.001)])
def test_keras2_default_learning_rates(name, lr):
    """Keras 2.0-2.3's defaults (DESIGN.md: Adadelta 1.0, Adagrad 0.01, Adamax/Nadam 0.002)."""
    opt = O.get(name)
    assert opt.get_config()["learning_rate"] == pytest.approx(lr)
    if name == "adadelta":
        assert opt.get_config()["rho"] == pytest.approx(0.95)


def test_adadelta_string_learns_a_classifier():
    """mnist_cnn's optimizer='adadelta' must learn in a few epochs (lr 1e-3 barely moved)."""
    from modelkit.layers import Dense
    from modelkit.models import Sequential
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = np.eye(3, dtype="float32")[np.argmax(x[:, :3], axis=1)]
    hists = {}
    for opt in ("adadelta", O.Adadelta(learning_rate=0.001)):
        np.random.seed(1)
        model = Sequential([Dense(16, activation="relu", input_shape=(8,)),
                            Dense(3, activation="softmax")])
        model.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])
        hists[str(opt)] = model.fit(x, y, epochs=10, batch_size=8, verbose=0).history
    keras2, tiny = hists["adadelta"], hists[str(opt)]
    assert keras2["loss"][-1] < 0.7 * keras2["loss"][0]
    assert keras2["accuracy"][-1] > 0.6
    assert tiny["loss"][0] - tiny["loss"][-1] < 0.1 * (keras2["loss"][0] - keras2["loss"][-1])

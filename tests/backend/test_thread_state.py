"""The autodiff state is per thread: a model predicting or training on one thread does not
pause, feed or switch the phase of another thread's step (a server predicting on worker
threads while a training loop runs, a data generator calling the model)."""

import threading

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import config as backend_config
from modelkit.backend.tensor import StopRecording
from modelkit.engine.base_layer import _CallContext

TIMEOUT = 10


def _hold_in_other_thread(context):
    """Start a thread that enters `context()` and stays in it until released; -> release
    function (joins the thread)."""
    inside, release = threading.Event(), threading.Event()

    def run():
        with context():
            inside.set()
            release.wait(TIMEOUT)

    t = threading.Thread(target=run)
    t.start()
    assert inside.wait(TIMEOUT)

    def done():
        release.set()
        t.join(TIMEOUT)
    return done


def test_inference_on_another_thread_does_not_pause_this_threads_tape():
    a = K.variable(np.array([1.0, 2.0, 3.0]))
    with K.GradientTape() as tape:
        done = _hold_in_other_thread(StopRecording)     # predict() pauses *its* tapes
        try:
            y = K.sum(a * a)
        finally:
            done()
    (g,) = tape.gradient(y, [a])
    np.testing.assert_allclose(g, 2 * np.array([1.0, 2.0, 3.0]))


def test_a_tape_on_another_thread_records_nothing_of_this_one():
    a = K.variable(np.array([1.0, -2.0]))
    tapes = []
    ready, release = threading.Event(), threading.Event()

    def run():
        with K.GradientTape() as tape:
            tapes.append(tape)
            ready.set()
            release.wait(TIMEOUT)
    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(TIMEOUT)
    try:
        K.sum(a * 3.0)                      # no tape on this thread: nothing recorded
    finally:
        release.set()
        t.join(TIMEOUT)
    assert tapes[0].records == []


@pytest.mark.parametrize("here,there", [(True, False), (False, True)])
def test_learning_phase_of_a_model_running_elsewhere_stays_there(here, there):
    with backend_config.phase_scope(here):
        done = _hold_in_other_thread(lambda: backend_config.phase_scope(there))
        try:
            assert backend_config.current_phase() == int(here)
        finally:
            done()


def test_add_loss_goes_to_the_context_of_its_own_thread():
    from modelkit.engine.base_layer import Layer
    layer = Layer()
    with _CallContext() as ctx:
        done = _hold_in_other_thread(_CallContext)
        try:
            layer.add_loss(1.5)
        finally:
            done()
    assert ctx.losses == [1.5]

import io
import sys

import pytest

from modelkit.errors import ConfigError
from modelkit.utils import Progbar, generic_utils


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(generic_utils, "_now", c)
    return c


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class Captured:
    """Everything written to sys.stdout so far (pytest owns sys.stdout during the test)."""

    def __init__(self, capsys):
        self.capsys = capsys
        self.text = ""

    def getvalue(self):
        self.text += self.capsys.readouterr().out
        return self.text


@pytest.fixture
def tty(monkeypatch, capsys):
    monkeypatch.setattr(generic_utils, "_is_dynamic_display", lambda: True)
    return Captured(capsys)


@pytest.fixture
def pipe(monkeypatch, capsys):
    monkeypatch.setattr(generic_utils, "_is_dynamic_display", lambda: False)
    return Captured(capsys)


def test_dynamic_display_follows_isatty(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    monkeypatch.setattr(sys, "stdout", FakeTTY())
    assert Progbar(3)._dynamic_display is True
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert Progbar(3)._dynamic_display is False


def test_writes_to_current_sys_stdout(monkeypatch, clock):
    out = FakeTTY()
    monkeypatch.setattr(sys, "stdout", out)
    Progbar(2).update(2)
    assert out.getvalue() == "\r2/2 [==============================] - 0s 0s/step\n"


def run_epoch(clock, bar):
    # 50 steps of 20 ms; loss falls from 0.5, acc rises; updates at 12, 30, 50.
    clock.t += 0.24
    bar.update(12, [("loss", 0.5), ("acc", 0.9)])
    clock.t += 0.36
    bar.update(30, [("loss", 0.2), ("acc", 1.0)])
    clock.t += 0.40
    bar.update(50, [("loss", 0.1), ("acc", 0.95)])


def test_verbose1_tty_redraws_one_line(clock, tty):
    bar = Progbar(50)
    run_epoch(clock, bar)
    out = tty.getvalue()
    assert out == (
        "\r12/50 [======>.......................] - ETA: 0s - loss: 0.5000 - acc: 0.9000"
        "\r30/50 [=================>............] - ETA: 0s - loss: 0.3200 - acc: 0.9600"
        "\r50/50 [==============================] - 1s 20ms/step - loss: 0.2320 - acc: 0.9560\n"
    )


def test_eta_and_exact_brief_example(clock, tty):
    bar = Progbar(50)
    clock.t += 12 * 0.25
    bar.update(12, [("loss", 0.1234), ("acc", 0.9)])
    assert tty.getvalue() == "\r12/50 [======>.......................] - ETA: 9s - loss: 0.1234 - acc: 0.9000"


def test_weighted_average(clock, tty):
    bar = Progbar(10, interval=0)
    bar.update(2, [("loss", 1.0)])
    bar.update(10, [("loss", 0.0)])  # 8 steps of 0.0 against 2 of 1.0
    assert tty.getvalue().endswith("- loss: 0.2000\n")


def test_stateful_metrics_shown_as_given(clock, tty):
    bar = Progbar(4, stateful_metrics=["acc"], interval=0)
    bar.update(2, [("acc", 0.5), ("loss", 2.0)])
    bar.update(4, [("acc", 0.75), ("loss", 0.0)])
    assert tty.getvalue().endswith("- acc: 0.7500 - loss: 1.0000\n")


def test_interval_throttles_redraws(clock, tty):
    bar = Progbar(10, interval=1.0)
    for step in range(1, 11):
        clock.t += 0.1
        bar.update(step)
    lines = tty.getvalue().split("\r")[1:]
    # drawn at step 1 (first), step 10 (t=1.0 after step 1: 0.9s, no; finalize: yes)
    assert [line.split("/")[0].strip() for line in lines] == ["1", "10"]


def test_shorter_line_pads_previous(clock, tty):
    bar = Progbar(3, interval=0)
    bar.update(1, [("a_long_metric_name", 1.0)])
    first = tty.getvalue()
    bar2_line_len = len(first) - 1
    bar.update(3, finalize=True)
    last = tty.getvalue()[len(first):]
    assert last.startswith("\r") and last.endswith("\n")
    assert len(last) - 2 >= bar2_line_len


def test_small_values_use_exponent_and_strings(clock, tty):
    bar = Progbar(2, interval=0)
    bar.update(2, [("loss", 0.0001), ("note", "ok")])
    assert tty.getvalue().endswith("- loss: 1.0000e-04 - note: ok\n")


def test_not_a_tty_prints_only_final_line(clock, pipe):
    bar = Progbar(50)
    run_epoch(clock, bar)
    assert pipe.getvalue() == (
        "50/50 [==============================] - 1s 20ms/step - loss: 0.2320 - acc: 0.9560\n"
    )


def test_verbose2_prints_final_line_only(clock, tty):
    bar = Progbar(50, verbose=2)
    run_epoch(clock, bar)
    assert tty.getvalue() == "50/50 - 1s 20ms/step - loss: 0.2320 - acc: 0.9560\n"


def test_verbose0_silent(clock, tty):
    bar = Progbar(50, verbose=0)
    run_epoch(clock, bar)
    assert tty.getvalue() == ""


def test_add_and_unknown_target(clock, tty):
    bar = Progbar(None, interval=0, unit_name="sample")
    clock.t += 2.5
    bar.add(5, [("loss", 1.0)])
    assert tty.getvalue() == "\r      5/Unknown - 2s 500ms/sample - loss: 1.0000"
    bar.add(5)
    assert bar._seen_so_far == 10
    bar.update(10, finalize=True)
    assert tty.getvalue().endswith("\n")


def test_slow_steps_and_long_eta(clock, tty):
    bar = Progbar(5000, interval=0)
    clock.t += 2.0
    bar.update(1)
    assert "ETA: 2:46:38" in tty.getvalue()
    clock.t += 2.0
    bar.update(2)
    assert "ETA: 2:46:36" in tty.getvalue()
    bar.update(5000)  # 4999 steps after step 1 took 2 s
    assert tty.getvalue().endswith("5000/5000 [==============================] - 4s 400us/step\n")


def test_bad_arguments():
    with pytest.raises(ConfigError):
        Progbar(-1)
    with pytest.raises(ConfigError):
        Progbar(10, verbose=3)
    with pytest.raises(ConfigError):
        Progbar(10, width=0)

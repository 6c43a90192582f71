"""Generic helpers with Keras's names: the `Progbar` progress bar; `get_custom_objects`,
`custom_object_scope` / `CustomObjectScope` (from modelkit.layers.serialization)."""

import os
import sys
import time

import numpy as np

from modelkit.errors import ConfigError

__all__ = ["Progbar"]


def _now():
    # One place to read the clock, so tests can fix it (monkeypatch `_now` or `time.time`).
    return time.time()


def _is_dynamic_display():
    """Whether stdout can redraw a line in place (a terminal or a notebook)."""
    stream = sys.stdout
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def _format_value(avg):
    if abs(avg) > 1e-3:
        return " %.4f" % avg
    return " %.4e" % avg


class Progbar:
    """A Keras-2-style text progress bar.

    Arguments (as Keras):
        target: total number of steps expected, or None if unknown.
        width: width of the bar in characters.
        verbose: 0 silent, 1 a bar redrawn on one line, 2 one line when finished.
        interval: minimum seconds between two redraws (verbose=1).
        stateful_metrics: names of values shown as given instead of averaged over steps.
        unit_name: the unit in the time-per-unit display ("step", "sample", ...).

    verbose=1 on a terminal redraws one line with "\\r", e.g.
    ``12/50 [======>.......................] - ETA: 3s - loss: 0.1234 - acc: 0.9000``
    and finishes with
    ``50/50 [==============================] - 1s 20ms/step - loss: 0.1234 - acc: 0.9000``
    and a newline. When stdout is not a terminal (a log file, a pipe) nothing is drawn
    until the end, which prints the final line once. verbose=2 prints only the final line,
    without the bar: ``50/50 - 1s 20ms/step - loss: 0.1234``.

    Values that are not stateful are averaged weighted by the number of steps each
    update covers (an update from step 10 to 12 counts twice), as Keras does.
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None, unit_name="step"):
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or target < 0:
                raise ConfigError(f"Progbar: target must be a non-negative integer or None, got {target!r}")
            target = int(target)
        if verbose not in (0, 1, 2):
            raise ConfigError(f"Progbar: verbose must be 0, 1 or 2, got {verbose!r}")
        if not isinstance(width, (int, np.integer)) or width < 1:
            raise ConfigError(f"Progbar: width must be a positive integer, got {width!r}")
        self.target = target
        self.width = int(width)
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics) if stateful_metrics else set()

        self._dynamic_display = _is_dynamic_display()
        self._total_width = 0
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = _now()
        self._last_update = 0
        self._time_after_first_step = None

    # -- public API --------------------------------------------------------------

    def update(self, current, values=None, finalize=None):
        """Move the bar to step `current`.

        values: list of (name, value) pairs; non-stateful values are averaged over steps.
        finalize: whether this is the last update; by default `current >= target`.
        """
        if finalize is None:
            finalize = False if self.target is None else current >= self.target

        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            if k not in self.stateful_metrics and _is_number(v):
                # An update covering several steps weighs that many times; at least 1, so
                # a repeated `current` (e.g. an epoch-end call) still counts.
                value_base = max(current - self._seen_so_far, 1)
                if k not in self._values or not isinstance(self._values[k], list):
                    self._values[k] = [v * value_base, value_base]
                else:
                    self._values[k][0] += v * value_base
                    self._values[k][1] += value_base
            elif _is_number(v):
                self._values[k] = [v, 1]
            else:
                self._values[k] = v  # shown as str(v)
        self._seen_so_far = current

        now = _now()
        time_per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            if self._dynamic_display:
                self._draw(current, now, time_per_unit, finalize)
            elif finalize:
                line = self._bar(current) + self._info(now, current, time_per_unit, finalize)
                _write(line + "\n")
        elif self.verbose == 2 and finalize:
            if self.target is not None:
                count = "%*d/%d" % (len(str(self.target)), current, self.target)
            else:
                count = "%d" % current
            _write(count + self._info(now, current, time_per_unit, True) + "\n")
        self._last_update = now

    def add(self, n, values=None):
        """Advance the bar by `n` steps."""
        self.update(self._seen_so_far + n, values)

    # -- drawing -----------------------------------------------------------------

    def _draw(self, current, now, time_per_unit, finalize):
        prev_total_width = self._total_width
        line = self._bar(current) + self._info(now, current, time_per_unit, finalize)
        self._total_width = len(line)
        if prev_total_width > self._total_width:
            line += " " * (prev_total_width - self._total_width)
        _write("\r" + line + ("\n" if finalize else ""))

    def _bar(self, current):
        if self.target is None:
            return "%7d/Unknown" % current
        bar = "%*d/%d [" % (len(str(self.target)), current, self.target)
        prog = float(current) / self.target if self.target else 1.0
        prog_width = min(int(self.width * prog), self.width)
        if prog_width > 0:
            bar += "=" * (prog_width - 1)
            bar += ">" if current < self.target else "="
        bar += "." * (self.width - prog_width)
        return bar + "]"

    def _info(self, now, current, time_per_unit, finalize):
        if self.target is None or finalize:
            info = " - %.0fs" % (now - self._start)
            info += _format_time_per_unit(time_per_unit, self.unit_name)
        else:
            eta = time_per_unit * (self.target - current)
            if eta > 3600:
                eta_format = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
            elif eta > 60:
                eta_format = "%d:%02d" % (eta // 60, eta % 60)
            else:
                eta_format = "%ds" % eta
            info = " - ETA: %s" % eta_format
        for k in self._values_order:
            info += " - %s:" % k
            value = self._values[k]
            if isinstance(value, list):
                info += _format_value(float(np.mean(value[0] / max(1, value[1]))))
            else:
                info += " %s" % value
        return info

    def _estimate_step_duration(self, current, now):
        """Seconds per step; after step 1, step 1 (often slow: warm-up) is left out."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit


def _is_number(v):
    if isinstance(v, (bool, np.bool_)):
        return True
    if isinstance(v, (int, float, np.number)):
        return True
    return isinstance(v, np.ndarray) and v.dtype.kind in "biuf"


def _format_time_per_unit(time_per_unit, unit_name):
    if time_per_unit >= 1 or time_per_unit == 0:
        return " %.0fs/%s" % (time_per_unit, unit_name)
    if time_per_unit >= 1e-3:
        return " %.0fms/%s" % (time_per_unit * 1e3, unit_name)
    return " %.0fus/%s" % (time_per_unit * 1e6, unit_name)


def _write(text):
    stream = sys.stdout
    if stream is None:
        return
    stream.write(text)
    stream.flush()


_CUSTOM_OBJECT_NAMES = ("get_custom_objects", "custom_object_scope", "CustomObjectScope")


def __getattr__(name):
    if name in _CUSTOM_OBJECT_NAMES:        # resolved on use: the layers load lazily
        from modelkit.layers import serialization
        return getattr(serialization, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

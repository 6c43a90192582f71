"""A side stream for the backward pass: gradients nothing else in the pass reads.

In a backward pass the chain of input gradients is the critical path: each op's input
gradient feeds the next VJP. The gradient of a leaf (a variable such as a kernel, a bias)
feeds nothing in the pass, so it can be computed on a second thread while the main thread
carries the chain on. `GradientTape.gradient` does this when `enabled()`:

- it passes `SIDE` (truthy, so every VJP that tests `needs[i]` works unchanged) instead of
  True in `needs` for each input that is a leaf of the tape;
- a VJP may then return `Deferred(fn)` for that input instead of the array: `fn()` computes
  it and must give the same numbers as the VJP would have returned (the same function,
  called later on another thread); it may read the VJP's arrays (saved values, the output
  gradient), which nothing writes to once the VJP has returned;
- the tape submits it to the `SideStream` (one worker thread, first in, first out) and
  sums a leaf's contributions in the order of the sequential pass when the pass ends, so
  the gradients are bit-identical to the sequential order for any thread count.

The worker runs its nested `parallel` calls inline (one thread) and, while it runs, holds
one core: the main thread's parallel calls then use one thread fewer (on 2 cores: the chain
on one, the side on the other, instead of three threads on two cores). MODELKIT_SIDE_STREAM=0 switches the stream off; it is off when
`parallel.threads()` is 1.
"""

import os
import threading
from concurrent.futures import Future

from . import parallel


class _Side:
    """The `needs` marker for a leaf's gradient that may come back as a `Deferred`."""

    __slots__ = ()

    def __bool__(self):
        return True

    def __repr__(self):
        return "SIDE"


SIDE = _Side()


class Deferred:
    """A gradient a VJP returns unevaluated (only where `needs[i] is SIDE`): fn() makes it."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self):
        return self.fn()


def leaf_gradient(need, fn):
    """For a VJP: None when not `need`, `Deferred(fn)` when `need is SIDE`, else fn()."""
    if not need:
        return None
    return Deferred(fn) if need is SIDE else fn()


def resolve(g):
    """An array from a gradient that may be a `Deferred` or a `Future` of one."""
    if isinstance(g, Deferred):
        return g()
    if isinstance(g, Future):
        return g.result()
    return g


def enabled():
    """Whether backward passes use a side stream: more than one thread, not switched off,
    and not on the side worker itself (a deferred gradient that runs a tape of its own
    runs that one sequentially)."""
    return (os.environ.get("MODELKIT_SIDE_STREAM", "1") != "0" and parallel.threads() > 1
            and not getattr(_WORKER, "on", False))


class SideStream:
    """One worker thread running submitted functions in order. A context manager: leaving
    it waits for everything submitted (also when the pass fails), so no side work outlives
    the pass that asked for it."""

    def __init__(self):
        self._futures = []

    def submit(self, fn):
        """A Future of fn(), run on the worker after what was submitted before."""
        future = _executor().submit(_run_inline, fn)
        self._futures.append(future)
        return future

    def join(self):
        """Wait for every submitted function; raise the first one's error, if any."""
        futures, self._futures = self._futures, []
        for f in futures:
            f.exception()
        for f in futures:
            f.result()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.join()
        else:                       # the pass failed: wait for the side, keep that error
            for f in self._futures:
                f.exception()
        return False


_EXECUTOR = {}                  # by process id: a forked child starts its own worker
_WORKER = threading.local()     # .on: this thread is the side worker


def _executor():
    from concurrent.futures import ThreadPoolExecutor
    ex = _EXECUTOR.get(os.getpid())
    if ex is None:
        ex = _EXECUTOR[os.getpid()] = ThreadPoolExecutor(1, thread_name_prefix="modelkit-side")
    return ex


def _run_inline(fn):
    """fn() with the `parallel` helpers running inline on this thread."""
    _WORKER.on = True
    with parallel.inline(), parallel.reserved():
        return fn()

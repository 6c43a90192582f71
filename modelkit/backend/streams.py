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
- `Deferred.in_parts(part, count, combine)` splits one into parts (the fast conv's kernel
  gradient by images): the worker runs them in order, and a thread that waits for the
  result (the main thread at the end of the pass) runs those not started instead of
  idling; combined in part order, so the same numbers whoever ran which;
- the tape submits it to the `SideStream` (one worker thread, first in, first out) and
  sums a leaf's contributions in the order of the sequential pass when the pass ends, so
  the gradients are bit-identical to the sequential order for any thread count;
- `GradientTape.gradient(..., pending=True)` (the training step) returns the leaves'
  gradients still on the stream as Futures instead of waiting for them, and
  `Optimizer.apply_gradients` updates the variables whose gradients are final first (an
  embedding's table while an LSTM's weight gradients run; exact: the updates are
  independent); `resolve` waits for one (sharing its parts);
- a VJP may return a `Deferred` for its other inputs too: the tape submits a VJP's side
  work first and then runs those on this thread, so the side starts before the VJP's own
  chain work (the fast conv defers its input gradient when its kernel's goes to the side).

The worker runs its nested `parallel` calls inline (one thread) and, while it runs, holds
one core: the main thread's parallel calls then use one thread fewer (on 2 cores: the chain
on one, the side on the other, instead of three threads on two cores). When its queue runs
empty, the worker joins the parallel calls that started without its core
(`parallel.help_waiting`; MODELKIT_SIDE_JOIN=0 switches that off). MODELKIT_SIDE_STREAM=0
switches the stream off; it is off when `parallel.threads()` is 1.
"""

import itertools
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
    """A gradient a VJP returns unevaluated (only where `needs[i] is SIDE`): fn() makes it.
    `Deferred.in_parts` makes one of independent parts that the main thread can share."""

    __slots__ = ("fn", "parts")

    def __init__(self, fn, parts=None):
        self.fn = fn
        self.parts = parts          # (part, count, combine) or None

    @classmethod
    def in_parts(cls, part, count, combine):
        """combine([part(0), ..., part(count - 1)]). On the side stream the worker runs
        the parts in order, and a thread that waits for the result (the main thread at
        the end of the pass) runs the parts not started yet instead of idling: a long
        last item on the side (the first layer's kernel gradient) is shared. The parts
        are combined in part order, so the numbers do not depend on who ran which."""
        return cls(lambda: combine([part(j) for j in range(count)]), (part, count, combine))

    def __call__(self):
        return self.fn()


class _PartsFuture(Future):
    """The Future of a `Deferred.in_parts` on the side stream: `work()` (the worker)
    claims parts in order; `result()` and `exception()` claim the rest on the calling
    thread, wait for the parts others run, and combine them once."""

    def __init__(self, part, count, combine):
        super().__init__()
        self._part, self._count, self._combine = part, count, combine
        self._out = [None] * count
        self._claim = itertools.count()          # next() is atomic under the GIL
        self._done = [threading.Event() for _ in range(count)]
        self._error = None
        self._lock = threading.Lock()
        self._combined = False
        self._value = None

    def work(self):
        for j in iter(self._claim.__next__, None):
            if j >= self._count:
                return
            try:
                self._out[j] = self._part(j)
            except BaseException as e:           # noqa: BLE001 - raised by result()
                if self._error is None:
                    self._error = e
            finally:
                self._done[j].set()

    def _finish(self):
        with parallel.inline():
            self.work()
        for done in self._done:
            done.wait()

    def exception(self, timeout=None):
        self._finish()
        return self._error

    def result(self, timeout=None):
        self._finish()
        if self._error is not None:
            raise self._error
        with self._lock:
            if not self._combined:
                self._value, self._out = self._combine(self._out), None
                self._combined = True
        return self._value


MIN_SIDE_FLOPS = 400e6


def worth_side(needs, flops):
    """`needs` with `SIDE` turned into True when the leaves' gradients would cost less than
    MIN_SIDE_FLOPS: handing small GEMMs to the worker costs more than it overlaps, as the
    worker then holds a core the chain's own GEMMs and blocked passes would have used
    (measured, 2 cores: the MLP 784-500-500-10's dense kernel gradients, 100-160 MFLOP, on
    the side made its step 10% slower; VGG convolutions' 460-920 MFLOP made it 5% faster)."""
    if flops >= MIN_SIDE_FLOPS or not any(n is SIDE for n in needs):
        return needs
    return tuple(True if n is SIDE else n for n in needs)


class Later(Future):
    """A gradient that is not final yet (`GradientTape.gradient(..., pending=True)`, a
    leaf with several contributions, some on the side stream): `result()` makes it once,
    on the thread that asks."""

    def __init__(self, fn):
        super().__init__()
        self._fn = fn
        self._lock = threading.Lock()
        self._value = None

    def exception(self, timeout=None):
        try:
            self.result()
        except BaseException as e:               # noqa: BLE001 - reported, not raised
            return e
        return None

    def result(self, timeout=None):
        with self._lock:
            if self._value is None:
                self._value = (self._fn(),)
        return self._value[0]


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
        """A Future of fn(), run on the worker after what was submitted before (the parts
        of a `Deferred.in_parts` shared with whoever waits for it)."""
        executor = _executor()
        with _QUEUE_LOCK:
            _QUEUED[0] += 1
        if isinstance(fn, Deferred) and fn.parts is not None:
            future = _PartsFuture(*fn.parts)
            executor.submit(_run_inline, future.work)
        else:
            future = executor.submit(_run_inline, fn)
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
        _QUEUED[0] = 0              # a forked child: nothing of its parent's is queued here
    return ex


_QUEUED = [0]                   # functions submitted to the worker and not finished
_QUEUE_LOCK = threading.Lock()


def busy():
    """Whether the side stream's worker has work submitted and not finished."""
    return _QUEUED[0] > 0


def _run_inline(fn):
    """fn() with the `parallel` helpers running inline on this thread; when nothing else is
    queued, this thread then joins the parallel calls that started without its core
    (`parallel.help_waiting`)."""
    _WORKER.on = True
    try:
        with parallel.inline(), parallel.reserved():
            return fn()
    finally:
        with _QUEUE_LOCK:
            _QUEUED[0] -= 1
            idle = _QUEUED[0] == 0
        if idle:
            parallel.help_waiting()

"""Batch splitting and concatenation for inference.

Feeds are dicts of name -> array whose first axis is the batch axis. `iter_batches` cuts
them into consecutive slices of at most `batch_size` rows (views, no copies); `concat_batches`
joins per-batch results back along the batch axis. Both are plain numpy and know nothing
about onnxruntime, so the HTTP server can use them too. `DynamicBatcher` groups concurrent
requests (a server's) into one session run.
"""

from __future__ import annotations

import time

import numpy as np

from modelkit.errors import ConfigError, ShapeError

__all__ = ["batch_size_of", "num_batches", "iter_batches", "concat_batches", "DynamicBatcher",
           "rows_can_be_batched"]


def batch_size_of(feeds):
    """The common length of axis 0 of every array in `feeds` (a dict).

    Raises ShapeError naming the inputs when they disagree or when one is a scalar.
    """
    size = None
    first = None
    for name, arr in feeds.items():
        if np.ndim(arr) == 0:
            raise ShapeError(f"Input {name!r} is a scalar and has no batch axis")
        n = len(arr)
        if size is None:
            size, first = n, name
        elif n != size:
            raise ShapeError(f"Inputs have different batch sizes: {first!r} has {size}, "
                             f"{name!r} has {n}")
    if size is None:
        raise ShapeError("No inputs were given, so there is no batch size")
    return size


def num_batches(total, batch_size):
    """How many batches of at most `batch_size` rows cover `total` rows."""
    return -(-total // batch_size) if total else 0


def iter_batches(feeds, batch_size, total=None):
    """Yield dicts holding consecutive row slices of every array in `feeds`.

    `batch_size` must be a positive int; the last batch may be smaller. Slices of
    C-contiguous arrays along axis 0 are C-contiguous views, so nothing is copied.
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if total is None:
        total = batch_size_of(feeds)
    for start in range(0, total, batch_size):
        stop = start + batch_size
        yield {name: arr[start:stop] for name, arr in feeds.items()}


def concat_batches(results, names):
    """Join per-batch results along axis 0.

    `results` is a list of lists (one list of arrays per batch, ordered like `names`);
    returns a list with one array per name. A single batch is returned as is (no copy).
    """
    if not results:
        raise ShapeError("There are no batches to concatenate")
    if len(results) == 1:
        return list(results[0])
    joined = []
    for i, name in enumerate(names):
        parts = [r[i] for r in results]
        if any(np.ndim(p) == 0 for p in parts):
            raise ShapeError(f"Output {name!r} is a scalar and has no batch axis, so batches "
                             f"cannot be concatenated; predict without batch_size")
        try:
            joined.append(np.concatenate(parts, axis=0))
        except ValueError:
            shapes = ", ".join(str(tuple(np.shape(p))) for p in parts[:4])
            raise ShapeError(f"Output {name!r} has shapes that cannot be concatenated along "
                             f"the batch axis: {shapes}") from None
    return joined


class _Request:
    __slots__ = ("key", "feeds", "rows", "future", "queued", "loop")

    def __init__(self, key, feeds, rows, future, queued, loop):
        self.key, self.feeds, self.rows, self.future = key, feeds, rows, future
        self.queued, self.loop = queued, loop

    def claim(self):
        """True when the caller still wants the result (marks a thread future running)."""
        if self.loop is None:
            return self.future.set_running_or_notify_cancel()
        return not self.future.cancelled()


def rows_can_be_batched(session):
    """True when requests for `session` may be stacked along axis 0 and split back.

    Every input's leading dim must be dynamic; where the model names those dims, inputs
    share one name and every output's leading dim carries it too (an output without the
    batch axis, or with a fixed leading dim, cannot be split per request).
    """
    inputs = list(getattr(session, "inputs", None) or [])
    if not getattr(session, "batch_dynamic", False):
        return False
    if not inputs:
        return True
    names = {s.dim_names[0] if s.dim_names else None for s in inputs}
    named = names - {None}
    if len(named) > 1:
        return False
    for out in getattr(session, "outputs", None) or []:
        if not out.shape:             # unknown rank (or a scalar): checked per run
            continue
        if out.shape[0] is not None:
            return False
        out_name = out.dim_names[0] if out.dim_names else None
        if named and out_name is not None and out_name not in named:
            return False
    return True


class DynamicBatcher:
    """Groups concurrent requests into one session run (for servers).

    Callers in any thread `submit(feeds)` (or block on `run(feeds)`); a worker thread takes
    the oldest request, waits at most `max_delay_ms` for more requests with the same
    per-row shapes and dtypes, concatenates up to `max_batch_size` rows, runs the session
    once and hands each caller its own rows of every output. The wait is adaptive: it is
    counted from the oldest request's arrival, so under load (requests queued while the
    previous batch ran) the next batch starts at once, and the worker stops waiting as
    soon as the batch is full. Inputs are validated (and
    cast) in the caller's thread, so a bad request fails alone and at once; if a batched
    run fails (say one request's values are out of range), every request of the batch is
    run again alone, so only the culprit sees the error. A request larger than
    `max_batch_size` runs alone. Models whose batch dim is fixed, or whose outputs have no
    batch axis (see `rows_can_be_batched`), run one request at a time.

    `observer`, if given, is called in the worker after every session run with
    ``(rows, queue_waits, run_seconds)``: the rows run, the seconds each request waited
    in the queue, and the run's duration (for metrics).

        with DynamicBatcher(sess, max_batch_size=64, max_delay_ms=2) as batcher:
            outputs = batcher.run({"x": row})          # {output name: array}

    `session` needs `validate(feeds) -> dict`, `run(feeds) -> dict`, `batch_dynamic` and
    (to tell whether outputs keep the batch axis) `inputs`/`outputs` IOSpecs, as
    `modelkit.runtime.InferenceSession` has.
    """

    def __init__(self, session, max_batch_size=32, max_delay_ms=2.0, observer=None):
        if not isinstance(max_batch_size, (int, np.integer)) or max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        if not isinstance(max_delay_ms, (int, float)) or max_delay_ms < 0:
            raise ConfigError(f"max_delay_ms must be a non-negative number, got {max_delay_ms!r}")
        import collections
        import threading
        self.session = session
        self.max_batch_size = int(max_batch_size)
        self.max_delay = float(max_delay_ms) / 1000.0
        self._groupable = rows_can_be_batched(session)
        self._observer = observer
        self._pending = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._waiting = 0        # submitted, not yet running (queued or gathering mates)
        self.runs = 0            # session runs so far (for monitoring and tests)
        self._thread = threading.Thread(target=self._loop, name="modelkit-dynamic-batcher",
                                        daemon=True)
        self._thread.start()

    # -- callers ------------------------------------------------------------------------
    def submit(self, feeds, loop=None):
        """Queue one request; return a future of {output name: array}.

        Without `loop`, a concurrent.futures.Future (wait on it from any thread). With
        `loop` (the running asyncio loop; call from its thread), an asyncio.Future to
        await: results reach the loop with one callback per batch, not one per request.
        """
        prepared = self.session.validate(feeds)
        rows = batch_size_of(prepared) if self._groupable else 0
        key = tuple((k, v.shape[1:], v.dtype.str) for k, v in prepared.items()) \
            if self._groupable else None
        if loop is None:
            from concurrent.futures import Future
            future = Future()
        else:
            future = loop.create_future()
        with self._cond:
            if self._closed:
                from modelkit.errors import RuntimeSessionError
                raise RuntimeSessionError("DynamicBatcher is closed")
            self._pending.append(_Request(key, prepared, rows, future, _now(), loop))
            self._waiting += 1
            self._cond.notify()
        return future

    def run(self, feeds, timeout=None):
        """Submit and wait: {output name: array} for these inputs alone."""
        return self.submit(feeds).result(timeout)

    @property
    def closed(self):
        return self._closed

    @property
    def merges_requests(self):
        """True when requests can share a run (see `rows_can_be_batched`)."""
        return self._groupable and self.max_batch_size > 1

    @property
    def queued(self):
        """Requests submitted and not yet running (a snapshot): in the queue, or held by
        the worker while it waits for batch-mates."""
        return self._waiting

    def close(self):
        """Finish the queued requests, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- worker -------------------------------------------------------------------------
    def _take_group(self):
        """Under the lock: the next group of compatible requests, or None when closed."""
        cond, pending = self._cond, self._pending
        while not pending:
            if self._closed:
                return None
            cond.wait()
        first = pending.popleft()
        group, rows = [first], first.rows
        if first.key is None or rows >= self.max_batch_size:
            return group
        deadline = first.queued + self.max_delay       # no request waits longer to be batched
        while True:
            for req in list(pending):
                if req.key == first.key and rows + req.rows <= self.max_batch_size:
                    pending.remove(req)
                    group.append(req)
                    rows += req.rows
            remaining = deadline - _now()
            if rows >= self.max_batch_size or remaining <= 0 or self._closed:
                return group
            cond.wait(remaining)

    def _loop(self):
        while True:
            with self._cond:
                group = self._take_group()
                if group is not None:
                    self._waiting -= len(group)
            if group is None:
                return
            group = [r for r in group if r.claim()]
            if group:
                _deliver(self._execute(group))

    def _execute(self, group):
        """[(request, result, exception)] for a group of compatible requests."""
        if len(group) == 1:
            return [self._run_alone(group[0])]
        names = list(group[0].feeds)
        feeds = {n: np.concatenate([r.feeds[n] for r in group], axis=0) for n in names}
        total = sum(r.rows for r in group)
        try:
            outs = self._timed_run(feeds, total, group)
        except Exception:               # never mix fates: each request runs again alone
            return [self._run_alone(r) for r in group]
        if any(np.ndim(v) == 0 or len(v) != total for v in outs.values()):
            return [self._run_alone(r) for r in group]   # outputs without a batch axis
        done, start = [], 0
        for r in group:
            stop = start + r.rows
            done.append((r, {k: v[start:stop] for k, v in outs.items()}, None))
            start = stop
        return done

    def _run_alone(self, req):
        try:
            return req, self._timed_run(req.feeds, req.rows, [req]), None
        except Exception as e:
            return req, None, e

    def _timed_run(self, feeds, rows, group):
        start = _now()
        result = self.session.run(feeds)
        self.runs += 1
        if self._observer is not None:
            end = _now()
            try:
                self._observer(rows, [start - r.queued for r in group], end - start)
            except Exception:           # pragma: no cover - metrics must never fail a run
                pass
        return result


def _deliver(outcomes):
    """Hand each request its result: thread futures directly, asyncio futures through
    one call_soon_threadsafe per event loop."""
    by_loop = {}
    for req, result, exc in outcomes:
        if req.loop is None:
            if exc is None:
                req.future.set_result(result)
            else:
                req.future.set_exception(exc)
        else:
            by_loop.setdefault(req.loop, []).append((req.future, result, exc))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:            # the loop is closed: nobody is waiting any more
            pass


def _resolve(items):
    for future, result, exc in items:
        if not future.done():
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)


_now = time.perf_counter

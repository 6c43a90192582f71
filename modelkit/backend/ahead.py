"""Work an op does for the op that reads its output, in its own pass, learnt from the step
before.

An op that writes a feature map can often produce what its reader computes next for a
fraction of that reader's cost, while the output is still in cache or still in the op's
own layout: a batch norm or a residual add the relu of its output (onnxruntime's Relu node
in the batch norm's session; each block's relu right after its sum), an NCHWc convolution
the max pooling of its output (from its channel-blocked result) or that blocked result
itself for the next convolution (which then needs no reorder of its input). The producer
cannot know whether such a reader follows, so it asks what happened at the same *site*
the last time: a site is the op's name and its position on the active gradient tape (how
many ops the tape had recorded before it). A training step records the same ops in the
same order every time, so the readers of step n tell the producers of step n + 1.

A *request* names one such extra and its parameters, hashable: "relu",
("max_pool", window, strides), "nchwc".

- `tape.apply` sets the site of the op it runs (`running`); outside a tape there is none
  and nothing here does anything (inference is unchanged).
- A producer asks `wanted()` for the requests of its site and computes those it can; it
  hands its output and what it computed ({request: array}) to `produced`, which tags the
  output with its site (`array_tags`: the same memory, while alive).
- A reader calls `take(x, request)`: the extra computed for `request` when `x` is exactly
  such an output, else None; either way the request is made at x's site for the next
  step. An extra is given once (a second reader computes its own), and a request is
  dropped once computed and made again only by a reader taking it: an extra that no
  reader took is computed at most once more (a changed graph costs one wasted extra).

The extras are the same numbers their readers would compute (their own arrays); only
where the work runs changes. MODELKIT_AHEAD=0 switches all of it off.
"""

import os
import threading

from . import array_tags

_LOCAL = threading.local()       # .site: the site of the op that runs on this thread
_REQUESTS = {}                   # site -> set of requests its readers made
_OUTPUTS = {}                    # array_tags: producers' outputs -> (site, {request: extra})
_MAX_SITES = 4096


def enabled():
    return os.environ.get("MODELKIT_AHEAD", "1") != "0"


def running(name, tape):
    """Set the site of the op `name` that is about to run (None without a tape); returns
    the previous site for `restore` (ops may run ops)."""
    before = getattr(_LOCAL, "site", None)
    _LOCAL.site = None if tape is None else (name, len(tape.records))
    return before


def restore(site):
    _LOCAL.site = site


def wanted():
    """The requests made at the site of the op now running (an empty set when none)."""
    site = getattr(_LOCAL, "site", None)
    if site is None or not enabled():
        return frozenset()
    return frozenset(_REQUESTS.get(site, ()))


def produced(out, extras=None):
    """`out` is the output of the op now running, `extras` {request: array} what it
    computed besides for the readers of `out`."""
    site = getattr(_LOCAL, "site", None)
    if site is None or not enabled():
        return
    extras = dict(extras or {})
    if extras:
        _REQUESTS.get(site, set()).difference_update(extras)   # made again when taken
    array_tags.remember(_OUTPUTS, out, (site, extras))


def take(x, request):
    """The extra computed for `request` by the op that made the array `x`, else None;
    the request is made at x's site from then on."""
    if not _OUTPUTS:
        return None
    entry = array_tags.recall(_OUTPUTS, x)
    if entry is None:
        return None
    site, extras = entry
    if len(_REQUESTS) >= _MAX_SITES:
        _REQUESTS.clear()
    _REQUESTS.setdefault(site, set()).add(request)
    return extras.pop(request, None)

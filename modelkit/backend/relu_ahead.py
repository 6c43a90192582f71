"""A relu computed by the op whose output it reads, in that op's own pass over the data.

A plain relu over a float32 feature map is one more pass through memory (the small
ResNet's five relus: 2.3 ms of a 74 ms step on one core, 0.46 ms each, most of it
streaming 4 MiB in and out). An op that writes such an output can produce its relu for a
fraction of that while the output is still in cache (batch norm: onnxruntime's Relu node
in the same session; the residual add: per block, right after the sum). It cannot know at
that point whether a relu will read the output, so it asks what happened at the same
*site* the last time: a site is the op's name and its position on the active gradient
tape (how many ops the tape had recorded before it). A training step records the same ops
in the same order every time, so the relu of step n tells the producer of step n + 1.

- `tape.apply` sets the site of the op it runs (`running`); outside a tape there is none
  and nothing here does anything (inference is unchanged).
- A producer asks `wanted()`; when True it computes the relu as well and hands both to
  `produced(out, relu)`; otherwise `produced(out)` only marks `out` with its site.
- The relu op calls `take(x)`: the precomputed relu when `x` is exactly such an output
  (the same memory, while alive: `array_tags`), else None, and then it marks the site
  wanted. A site's precomputed relu that no relu takes is not asked for again until a
  relu reads that site's output once more (a changed graph costs one wasted relu).

The relu computed ahead is the same max(x, 0) of the same values (its own array; NaN stays
NaN, only a -0.0 may keep its sign), so the numbers never change, only where the pass runs.
MODELKIT_RELU_AHEAD=0 switches it off.
"""

import os
import threading

from . import array_tags

_LOCAL = threading.local()       # .site: the site of the op that runs on this thread
_WANTED = {}                     # site -> True once a relu read the site's output
_OUTPUTS = {}                    # array_tags: producers' outputs -> [site, relu or None]
_MAX_SITES = 4096


def enabled():
    return os.environ.get("MODELKIT_RELU_AHEAD", "1") != "0"


def running(name, tape):
    """Set the site of the op `name` that is about to run (None without a tape); returns
    the previous site for `restore` (ops may run ops)."""
    before = getattr(_LOCAL, "site", None)
    _LOCAL.site = None if tape is None else (name, len(tape.records))
    return before


def restore(site):
    _LOCAL.site = site


def wanted():
    """Whether the op now running should compute the relu of its output too."""
    site = getattr(_LOCAL, "site", None)
    return site is not None and _WANTED.get(site, False) and enabled()


def produced(out, relu=None):
    """`out` is the output of the op now running; `relu` (or None) is max(out, 0) as its
    own array of out's shape and memory order."""
    site = getattr(_LOCAL, "site", None)
    if site is None or not enabled():
        return
    if relu is not None:
        _WANTED[site] = False            # asked again when a relu takes it
    array_tags.remember(_OUTPUTS, out, [site, relu])


def take(x):
    """The relu computed ahead of the array `x`, else None (then the relu of x is wanted
    at x's site from now on). Given once: a second relu of x makes its own array."""
    if not _OUTPUTS:
        return None
    entry = array_tags.recall(_OUTPUTS, x)
    if entry is None:
        return None
    site, relu = entry
    entry[1] = None
    if len(_WANTED) >= _MAX_SITES:
        _WANTED.clear()
    _WANTED[site] = True
    return relu

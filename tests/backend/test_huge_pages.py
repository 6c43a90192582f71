"""Variables and optimizer slots of 512 KiB or more live in memory advised for huge pages,
cut from shared blocks: the same values, dtype and shape as numpy's copy; small, strided or
object arrays, and MODELKIT_HUGE_PAGES=0, keep numpy's memory."""

import mmap

import numpy as np
import pytest

from modelkit.backend import Variable, huge_pages
from modelkit.optimizers import SGD, Adam

LINUX_MADVISE = hasattr(mmap, "MADV_HUGEPAGE")


def _block(a):
    """The memory map `a`'s memory is cut from, or None."""
    while a is not None and not isinstance(a, mmap.mmap):
        a = a.obj if isinstance(a, memoryview) else getattr(a, "base", None)
    return a


def _mapped(a):
    """Whether `a`'s memory is one of huge_pages' memory maps."""
    return _block(a) is not None


@pytest.mark.parametrize("shape,dtype", [((784, 500), np.float32), ((400, 400), np.float64),
                                         ((3, 300, 300), np.float32), ((1 << 20,), np.int8)])
def test_large_arrays_are_copied_onto_huge_pages(shape, dtype, monkeypatch):
    monkeypatch.delenv("MODELKIT_HUGE_PAGES", raising=False)
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    b = huge_pages.copy(a)
    assert b.shape == a.shape and b.dtype == a.dtype and b.flags.c_contiguous
    assert b.flags.writeable and not np.shares_memory(a, b)
    np.testing.assert_array_equal(b, a)
    assert _mapped(b) == LINUX_MADVISE
    b[...] = 0                                       # its own memory
    assert a.any()


@pytest.mark.parametrize("make", [lambda: np.ones((10, 10), np.float32),          # small
                                  lambda: np.ones((1000, 800), np.float32).T,     # strided
                                  lambda: np.full((70000, 2), None, object)])     # objects
def test_other_arrays_keep_numpy_memory(make):
    a = make()
    b = huge_pages.copy(a)
    assert not _mapped(b) and not np.shares_memory(a, b)
    assert b.shape == a.shape and b.dtype == a.dtype
    assert b.flags.f_contiguous == a.flags.f_contiguous      # the layout kept
    assert (b == a).all()


def test_switched_off(monkeypatch):
    monkeypatch.setenv("MODELKIT_HUGE_PAGES", "0")
    assert not _mapped(huge_pages.copy(np.ones((1000, 1000), np.float32)))


@pytest.mark.skipif(not LINUX_MADVISE, reason="needs Linux's madvise")
@pytest.mark.parametrize("optimizer", [SGD(momentum=0.9), Adam()], ids=["SGD", "Adam"])
def test_variables_and_slots_of_a_training_step(optimizer, monkeypatch):
    monkeypatch.delenv("MODELKIT_HUGE_PAGES", raising=False)
    big = Variable(np.random.default_rng(1).standard_normal((784, 500)).astype(np.float32))
    small = Variable(np.zeros(500, np.float32))
    assert _mapped(big.value) and not _mapped(small.value)
    before = big.value.copy()
    g = np.full(big.value.shape, 0.5, np.float32)
    optimizer.apply_gradients([(g, big), (np.ones(500, np.float32), small)])
    assert not np.array_equal(big.value, before) and _mapped(big.value)
    slots = optimizer._slots[id(big)]
    assert slots and all(_mapped(s) for s in slots.values())
    big.assign(before)                               # assigned in place: still mapped
    assert _mapped(big.value)
    np.testing.assert_array_equal(big.value, before)


@pytest.mark.skipif(not LINUX_MADVISE, reason="needs Linux's madvise")
def test_arrays_are_cut_from_shared_blocks(monkeypatch):
    """Two 1 MiB arrays share a block (no 2 MiB page each), disjoint and independent; an
    array larger than a block gets one of its own."""
    monkeypatch.delenv("MODELKIT_HUGE_PAGES", raising=False)
    monkeypatch.setattr(huge_pages, "_BLOCK", {"map": None, "used": 0})
    a = huge_pages.copy(np.ones((512, 512), np.float32))
    b = huge_pages.copy(np.full((512, 512), 2.0, np.float32))
    assert _block(a) is _block(b)
    assert not np.shares_memory(a, b) and a.ctypes.data % 64 == b.ctypes.data % 64 == 0
    a[...] = 5
    assert (b == 2).all() and (a == 5).all()
    big = huge_pages.copy(np.zeros(huge_pages.BLOCK_BYTES // 4 + 1, np.float32))
    assert _block(big) is not _block(a) and len(_block(big)) >= big.nbytes
    c = huge_pages.copy(np.ones((512, 512), np.float32))
    assert _block(c) is _block(a)                    # the shared block goes on

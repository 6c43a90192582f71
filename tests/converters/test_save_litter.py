"""Saves leave no litter: real child processes saving a ~40 MB model are SIGKILLed mid-save;
the previous file stays intact, and the next save of the same target removes the dead
saves' temporary files, never those of a save still running (a stopped child)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from modelkit.converters import hdf5
from modelkit.ir import Graph, Node, TensorRef, TensorSpec
from modelkit.converters.atomic import atomic_write, remove_stale_temporaries

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock and signals")

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from modelkit.converters import hdf5
    from modelkit.ir import Graph, Node, TensorRef, TensorSpec
    fill = float(sys.argv[2])
    w = {"big/kernel": np.full((3200, 3200), fill, np.float32),
         "big/bias": np.zeros(3200, np.float32)}
    g = Graph("m", [TensorSpec("x", (None, 3200))], [TensorRef("big")],
              [Node("big", "Dense", {"name": "big", "units": 3200}, [[TensorRef("x")]],
                    ["big/kernel", "big/bias"])], w, metadata={"model_class": "Sequential"})
    print("ready", flush=True)
    sys.stdin.readline()
    hdf5.save_graph(g, sys.argv[1])
""")


def small_graph(fill):
    w = {"d/kernel": np.full((3, 2), fill, np.float32), "d/bias": np.zeros(2, np.float32)}
    return Graph("m", [TensorSpec("x", (None, 3))], [TensorRef("d")],
                 [Node("d", "Dense", {"name": "d", "units": 2}, [[TensorRef("x")]],
                       ["d/kernel", "d/bias"])], w, metadata={"model_class": "Sequential"}).validate()


def litter(folder, target="m.h5"):
    return sorted(n for n in os.listdir(folder) if n.startswith(f".{target}."))


def start_save(target, fill):
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(fill)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def wait_for_temporary(folder, proc, timeout=30):
    """Wait until the child's temporary file holds data; True if seen before it ended."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        tmps = [n for n in litter(folder) if n.endswith(".tmp")]
        if tmps and os.path.getsize(os.path.join(folder, tmps[0])) > 0:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def test_killed_saves_leave_previous_file_and_next_save_cleans(tmp_path):
    target = tmp_path / "m.h5"
    hdf5.save_graph(small_graph(1.0), target)
    killed = 0
    for attempt in range(12):
        proc = start_save(target, 5.0)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        seen = wait_for_temporary(tmp_path, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        if not (seen and proc.returncode == -signal.SIGKILL):
            continue
        killed += 1
        # the previous file is intact, and only the last dead save's files are left: each
        # save removed what the one killed before it left
        np.testing.assert_array_equal(hdf5.load_graph(target).weights["d/kernel"],
                                      np.full((3, 2), 1.0))
        left = litter(tmp_path)
        assert len(left) == 2 and {n.rsplit(".", 1)[1] for n in left} == {"tmp", "lock"}, left
        assert os.path.getsize(tmp_path / next(n for n in left if n.endswith(".tmp"))) > 0
        if killed == 3:
            break
    assert killed == 3, "the children finished before they could be killed mid-save"
    hdf5.save_graph(small_graph(2.0), target)                         # the next save
    assert litter(tmp_path) == []
    np.testing.assert_array_equal(hdf5.load_graph(target).weights["d/kernel"],
                                  np.full((3, 2), 2.0))


def test_a_live_save_keeps_its_temporary(tmp_path):
    target = tmp_path / "m.h5"
    hdf5.save_graph(small_graph(1.0), target)
    proc = start_save(target, 7.0)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    try:
        assert wait_for_temporary(tmp_path, proc), "the child finished too early"
        proc.send_signal(signal.SIGSTOP)              # alive, mid-save
        theirs = litter(tmp_path)
        assert len(theirs) == 2                       # its lock file and temporary file
        hdf5.save_graph(small_graph(3.0), target)     # another save of the same target
        assert litter(tmp_path) == theirs             # ... leaves the live one alone
        np.testing.assert_array_equal(hdf5.load_graph(target).weights["d/kernel"],
                                      np.full((3, 2), 3.0))
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.stdin.close()
        assert proc.wait(60) == 0
        proc.stdout.close()
    assert litter(tmp_path) == []                     # it finished and cleaned after itself
    assert float(hdf5.load_graph(target).weights["big/kernel"][0, 0]) == 7.0


def test_temporary_without_lock_uses_the_pid(tmp_path):
    target = tmp_path / "m.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".m.json.{dead}-0123abcd.tmp"
    live = tmp_path / f".m.json.{os.getpid()}-89abcdef.tmp"
    other = tmp_path / ".m.json.user-notes.tmp"           # not ours: never touched
    for p in (stale, live, other):
        p.write_text("x")
    assert remove_stale_temporaries(target) == [stale.name]
    with atomic_write(target, mode="w") as f:
        f.write("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "m.json"])

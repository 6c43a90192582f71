"""backend/allocator.py: after the training loop's call, a repeated large allocation is
served from memory the process keeps (no page faults), and the switch turns it off."""

import platform
import resource
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

PROBE = """
import resource, sys
import numpy as np
from modelkit.backend import allocator
print(allocator.retain_freed_memory())
def step():
    a = np.ones(4 << 20, np.float32)     # 16 MiB: above glibc's default mmap threshold
    b = np.ones(4 << 20, np.float32)
    del a, b
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(env_value):
    import os
    env = dict(os.environ, MODELKIT_MALLOC_TUNING=env_value)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@glibc
def test_freed_arrays_are_reused_without_page_faults():
    tuned, faults = _probe("1")
    assert tuned and faults < 100          # 5 steps x 32 MiB: 40 000 pages
    untuned, faults_off = _probe("0")
    assert not untuned and faults_off > 1000    # glibc returns and refaults them


def test_training_loop_calls_it(monkeypatch):
    from modelkit.backend import allocator
    from modelkit.layers import Dense
    from modelkit.models import Sequential
    import numpy as np
    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(1))
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(loss="mse", optimizer="sgd")
    model.train_on_batch(np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32))
    assert calls

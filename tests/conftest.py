"""Shared test setup: every test starts from the same random state (`--seed`, default 0),
so a run is repeatable; `--seed N` reruns the suite on other draws.

The tests mirror the packages (tests/backend, tests/layers, tests/converters, ...; tests of
modelkit's top-level modules sit here); every test folder is importable by module name, so a
test reuses another's builders with `from test_hdf5_roundtrip import dense_chain`."""

import pathlib
import sys

import pytest

_HERE = pathlib.Path(__file__).resolve().parent
for _folder in [_HERE] + sorted(d for d in _HERE.iterdir()
                                if d.is_dir() and d.name not in ("fixtures", "__pycache__")):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def pytest_addoption(parser):
    parser.addoption("--seed", default="0", help="random seed set before each test (default 0)")


@pytest.fixture(autouse=True)
def _seed_everything(request):
    from modelkit.utils import set_random_seed
    set_random_seed(int(request.config.getoption("--seed")))

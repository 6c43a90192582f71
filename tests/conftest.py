"""Shared test setup: every test starts from the same random state (`--seed`, default 0),
so a run is repeatable; `--seed N` reruns the suite on other draws."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--seed", default="0", help="random seed set before each test (default 0)")


@pytest.fixture(autouse=True)
def _seed_everything(request):
    from modelkit.utils import set_random_seed
    set_random_seed(int(request.config.getoption("--seed")))

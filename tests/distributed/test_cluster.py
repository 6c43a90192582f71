"""Sizing the worker actors from a cluster's resources: no oversubscribed cores, one GPU per
actor for CUDA."""

import pytest

from modelkit.distributed.cluster import Workers, plan_workers
from modelkit.errors import ConfigError


class FakeRay:
    def __init__(self, **resources):
        self.resources = resources

    def cluster_resources(self):
        return self.resources


@pytest.mark.parametrize("resources, workers, device, plan", [
    ({"CPU": 8.0}, None, "auto", Workers(8, "cpu", 1, {"num_cpus": 1})),
    ({"CPU": 8.0}, 2, "cpu", Workers(2, "cpu", 4, {"num_cpus": 4})),
    ({"CPU": 8.0}, 3, "auto", Workers(3, "cpu", 2, {"num_cpus": 2})),
    ({"CPU": 2.0}, 4, "cpu", Workers(4, "cpu", 1, {"num_cpus": 0.5})),
    ({"CPU": 16.0, "GPU": 2.0}, None, "auto", Workers(2, "cuda", 1, {"num_gpus": 1, "num_cpus": 1})),
    ({"CPU": 16.0, "GPU": 2.0}, 1, "cuda", Workers(1, "cuda", 1, {"num_gpus": 1, "num_cpus": 1})),
    ({"CPU": 16.0, "GPU": 2.0}, None, "cpu", Workers(16, "cpu", 1, {"num_cpus": 1})),
])
def test_worker_plans(resources, workers, device, plan):
    got = plan_workers(FakeRay(**resources), workers, device)
    assert got == plan
    if got.device == "cpu":          # the actors together reserve no more than the CPUs
        assert got.count * got.remote_args["num_cpus"] <= resources["CPU"]


@pytest.mark.parametrize("workers, device, match", [
    (None, "cuda", "the Ray cluster has no GPU"),
    (None, "tpu", "device must be"),
    (0, "cpu", "num_workers must be a positive integer"),
    (True, "cpu", "num_workers must be a positive integer"),
])
def test_worker_plan_errors(workers, device, match):
    with pytest.raises(ConfigError, match=match):
        plan_workers(FakeRay(CPU=4.0), workers, device)

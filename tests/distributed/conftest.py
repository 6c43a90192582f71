"""The Ray tests share one local Ray instance (2 CPUs, loopback only), started once per
session on first use."""

import logging

import pytest


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from modelkit.distributed.cluster import local_only
    if not ray.is_initialized():
        local_only()
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()

"""Connecting to Ray and sizing the worker actors for a cluster's CPUs and GPUs."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from modelkit.errors import ConfigError

from . import deps


def connect(address=None, feature="modelkit.distributed"):
    """The `ray` module, initialised: the running Ray of this process if there is one, else
    `ray.init(address)` (None starts a local instance on loopback; 'auto' joins the
    cluster this machine belongs to; 'ray://host:10001' connects through Ray Client)."""
    ray = deps.ray(feature)
    if ray.is_initialized():
        return ray
    kwargs = dict(address=address, logging_level=logging.WARNING, include_dashboard=False)
    if address is None:
        local_only()
        kwargs["_node_ip_address"] = "127.0.0.1"
    ray.init(**kwargs)
    return ray


def local_only():
    """Make a Ray instance started by this process keep to loopback: its workers (which
    inherit the environment) then report 127.0.0.1 instead of the address of the
    default-route interface."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@dataclass(frozen=True)
class Workers:
    """How many actors, what each reserves from Ray, and its onnxruntime threads."""
    count: int
    device: str
    threads: int
    remote_args: dict


def plan_workers(ray, num_workers=None, device="auto"):
    """One GPU per actor for device='cuda' (and for 'auto' when the cluster has GPUs; actors
    default to one per GPU); on CPUs, actors default to one per CPU and each runs
    CPUs // actors onnxruntime threads, reserving as many CPUs, so the actors together
    never oversubscribe the cores."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if num_workers is not None and (not isinstance(num_workers, int) or isinstance(
            num_workers, bool) or num_workers < 1):
        raise ConfigError(f"num_workers must be a positive integer or None, got {num_workers!r}")
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    if device == "cuda" and not gpus:
        raise ConfigError("device='cuda' but the Ray cluster has no GPU; use device='cpu' "
                          "or 'auto'")
    if device == "cuda" or (device == "auto" and gpus):
        count = num_workers or gpus
        return Workers(count, "cuda", 1, {"num_gpus": 1, "num_cpus": 1})
    count = num_workers or cpus
    threads = max(1, cpus // count)
    reserve = threads if count <= cpus else cpus / count
    return Workers(count, "cpu", threads, {"num_cpus": reserve})

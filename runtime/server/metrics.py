"""Prometheus metrics of one server (its own registry, so several apps can coexist).

    modelkit_requests_total{model,protocol,code}      requests answered
    modelkit_request_duration_seconds{model}          request latency, body read to response
    modelkit_queue_wait_seconds{model}                time a request waited for its batch
    modelkit_batch_size{model}                        rows per session run (the sum counts rows)
    modelkit_inference_duration_seconds{model}        session run time
    modelkit_model_load_seconds{model}                how long each model took to load
    modelkit_queue_depth{model}                       requests waiting for the batcher (at scrape)
    modelkit_models_ready                             1 once every model is loaded

Requests for unknown models are counted under model="" so a client cannot grow the label
set without bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    def __init__(self):
        self._children = {}      # labelled metrics by label values (labels() is slow)
        self.registry = r = CollectorRegistry()
        self.requests = Counter("modelkit_requests", "Requests answered, by model, protocol "
                                "and HTTP status code", ["model", "protocol", "code"],
                                registry=r)
        self.duration = Histogram("modelkit_request_duration_seconds", "Request latency",
                                  ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("modelkit_queue_wait_seconds", "Time requests waited "
                                    "to be batched and run", ["model"],
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("modelkit_batch_size", "Rows per session run",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.inference = Histogram("modelkit_inference_duration_seconds", "Session run "
                                   "time", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.load = Gauge("modelkit_model_load_seconds", "Seconds each model took to load",
                          ["model"], registry=r)
        self.queue_depth = Gauge("modelkit_queue_depth", "Requests waiting for the batcher",
                                 ["model"], registry=r)
        self.ready = Gauge("modelkit_models_ready", "1 once every model is loaded",
                           registry=r)

    def observe_request(self, model, protocol, code, seconds):
        key = (model, protocol, code)
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = self.requests.labels(model, protocol, str(code))
        counter.inc()
        if model:
            hist = self._children.get(model)
            if hist is None:
                hist = self._children[model] = self.duration.labels(model)
            hist.observe(seconds)

    def batch_observer(self, model):
        """A DynamicBatcher observer recording batch size, queue waits and run time."""
        batch = self.batch_size.labels(model)
        wait = self.queue_wait.labels(model)
        run = self.inference.labels(model)

        def observe(rows, waits, seconds):
            batch.observe(rows)
            run.observe(seconds)
            for w in waits:
                wait.observe(w)
        return observe

    def model_loaded(self, model, seconds):
        self.load.labels(model).set(seconds)

    def render(self, repository):
        """The exposition text, with the gauges read from `repository` now."""
        self.ready.set(1 if repository.ready else 0)
        for model in repository.loaded():
            self.queue_depth.labels(model.name).set(model.batcher.queued)
        return generate_latest(self.registry)

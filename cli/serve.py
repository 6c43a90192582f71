"""`modelkit serve MODEL [MODEL ...]`: serve models over HTTP (KServe v2 and TF Serving)."""

from __future__ import annotations

import sys

from .commands import UsageError, register

EXAMPLE = """  modelkit serve mlp.onnx
  modelkit serve clf=model.h5 emb=encoder.onnx --port 8080 --max-batch-size 64
  modelkit serve mlp.onnx --engine ray --replicas 4 --address auto
  curl -s localhost:8000/v1/models/mlp:predict -d '{"instances": [[0.1, 0.2, 0.3, 0.4]]}'"""

DESCRIPTION = """MODEL is a path (.onnx, .h5, .keras) or NAME=PATH; the name defaults to the file
stem. Endpoints (per model NAME):
  KServe v2:   GET /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME[/ready]
               POST /v2/models/NAME/infer   (JSON, or Triton's binary tensor extension)
  TF Serving:  POST /v1/models/NAME:predict  {"instances": [...]} or {"inputs": ...}
               GET /v1/models/NAME, /v1/models/NAME/metadata
  Prometheus:  GET /metrics
Concurrent requests are batched into one onnxruntime run (--max-batch-size 1 turns this
off). Ctrl-C or SIGTERM stops the server after the requests in flight.
--engine ray runs the same app as a Ray Serve deployment of --replicas replicas behind
Ray's HTTP proxy on --host:--port (pip install 'modelkit[ray]'); each replica loads the
models, batches its own requests and keeps its own /metrics."""


def add_arguments(p):
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="model file (.onnx, .h5, .keras) or NAME=PATH")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                   "127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a "
                   "free one)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run (default: auto = CUDA when it works, else CPU)")
    p.add_argument("--max-batch-size", type=int, default=32, metavar="N",
                   help="most rows merged into one run (default: 32; 1 = no batching)")
    p.add_argument("--batch-timeout-ms", type=float, default=2.0, metavar="MS",
                   help="longest a request waits for batch-mates (default: 2)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="onnxruntime threads per model (default: (CPUs - 1) / number of models)")
    p.add_argument("--max-request-mb", type=float, default=64, metavar="MB",
                   help="larger request bodies are refused with 413 (default: 64)")
    p.add_argument("--access-log", action="store_true",
                   help="log one line per request on stdout")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="this process (default) or Ray Serve replicas")
    p.add_argument("--replicas", type=int, default=1, metavar="N",
                   help="Ray Serve replicas (default: 1)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster: auto, ray://HOST:10001 or HOST:6379 (default: start a "
                        "local Ray)")


def _check(args):
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    if args.max_batch_size < 1:
        raise UsageError(f"--max-batch-size must be at least 1, got {args.max_batch_size}")
    if args.batch_timeout_ms < 0:
        raise UsageError(f"--batch-timeout-ms must be >= 0, got {args.batch_timeout_ms}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.max_request_mb <= 0:
        raise UsageError(f"--max-request-mb must be positive, got {args.max_request_mb}")
    if args.engine == "ray":
        if args.replicas < 1:
            raise UsageError(f"--replicas must be at least 1, got {args.replicas}")
        if args.port == 0:
            raise UsageError("--engine ray needs a fixed --port (Ray's proxy cannot pick one)")
    elif args.replicas != 1 or args.address:
        raise UsageError("--replicas and --address need --engine ray")


def _run_ray(args):
    from modelkit.distributed.serve import run as run_replicas

    def on_ready():
        print(f"serving {args.replicas} Ray Serve replica{'s' * (args.replicas != 1)} on "
              f"http://{args.host}:{args.port} (KServe v2 at /v2, TF Serving at /v1); "
              f"Ctrl-C stops", flush=True)

    run_replicas(args.models, address=args.address, host=args.host, port=args.port,
                 replicas=args.replicas, on_ready=on_ready, device=args.device,
                 max_batch_size=args.max_batch_size, batch_timeout_ms=args.batch_timeout_ms,
                 threads=args.threads, max_request_mb=args.max_request_mb)
    print("server stopped", file=sys.stderr, flush=True)
    return 0


def run(args):
    _check(args)
    if args.engine == "ray":
        return _run_ray(args)
    from modelkit.runtime.server import create_app
    from modelkit.runtime.server.host import bind, serve
    app = create_app(args.models, device=args.device, max_batch_size=args.max_batch_size,
                     batch_timeout_ms=args.batch_timeout_ms, threads=args.threads,
                     max_request_mb=args.max_request_mb)
    repo = app.state.repository
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        repo.close()
        raise OSError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host

    sources = dict(repo.specs)

    def on_ready():
        for model in repo.loaded():
            print(f"model {model.name!r} ready ({sources[model.name]}): "
                  f"{model.describe()}", flush=True)
        batching = ("off" if args.max_batch_size == 1 else
                    f"up to {args.max_batch_size} rows, {args.batch_timeout_ms:g} ms")
        print(f"serving on http://{shown}:{port} (KServe v2 at /v2, TF Serving at /v1, "
              f"metrics at /metrics; batching {batching}); Ctrl-C stops", flush=True)

    serve(app, sock, access_log=args.access_log, on_ready=on_ready)
    print("server stopped", file=sys.stderr, flush=True)
    return 0


register("serve", add_arguments, run, example=EXAMPLE, description=DESCRIPTION)

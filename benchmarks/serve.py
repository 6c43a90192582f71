"""Load test of `modelkit serve` on loopback: 32 concurrent keep-alive clients for a bounded
time, 1% malformed requests mixed in, for an MLP and a CNN, v2 JSON and v2 binary.

For each case it prints throughput (valid requests answered correctly per second), p50 and
p99 latency of valid requests, lost valid requests (no 200 or a wrong answer: must be 0),
malformed requests answered 4xx (must be all), 5xx answers (must be 0), with batching on
(--max-batch-size 32) and off (--max-batch-size 1), and the ratio of the two.

With `--vs-mlserver PYTHON` (a Python that has `mlserver` and `onnxruntime` installed, e.g. a
scratch venv) it also serves the same .onnx files with MLServer through a minimal
onnxruntime runtime with MLServer's adaptive batching (max_batch_size 32, max_batch_time
2 ms) and drives it with the same clients (v2 JSON; MLServer has no binary extension),
and prints modelkit/MLServer throughput ratios. All servers of a model run at once and
take turns, round by round, so load from elsewhere on the machine hits them alike. MLServer 1.7.1 needs uvloop < 0.22 (with 0.22+ its inference worker dies at start).

All traffic goes to 127.0.0.1; every server is started and stopped by this script.

    python benchmarks/serve.py [--seconds 6] [--rounds 3] [--clients 32]
                               [--vs-mlserver /path/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MALFORMED_EVERY = 100           # 1% of requests


# -- models and payloads ---------------------------------------------------------------------

def write_models(folder):
    """{name: (path, sample shape)} for the MLP and CNN of benchmarks/infer.py."""
    import onnx
    sys.path.insert(0, HERE)
    from infer import _helper_models
    out = {}
    for name, (proto, shape) in _helper_models().items():
        if name in ("mlp", "cnn"):
            path = os.path.join(folder, f"{name}.onnx")
            onnx.save(proto, path)
            out[name] = (path, shape)
    return out


def payloads(path, shape, fmt, count=16):
    """[(body, headers, expected output)] valid requests of one row each, and the
    malformed ones [(body, headers)]."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    rng = np.random.default_rng(0)
    good = []
    for _ in range(count):
        x = rng.standard_normal((1,) + tuple(shape)).astype(np.float32)
        want = sess.run(None, {in_name: x})[0]
        good.append(_request(in_name, x, fmt) + (want,))
    x = np.zeros((1,) + tuple(shape), np.float32)
    n = x.size
    short = {"name": in_name, "shape": [1, n - 1], "datatype": "FP32", "data": [0.0] * (n - 1)}
    ints = {"name": in_name, "shape": list(x.shape), "datatype": "INT64", "data": [0] * n}
    named = {"name": "nope", "shape": list(x.shape), "datatype": "FP32", "data": [0.0] * n}
    head = json.dumps({"inputs": [{"name": in_name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": 4 * n}}]}).encode()
    bad = [(b'{"inputs": [{"name": ', {}),
           (json.dumps({"inputs": [short]}).encode(), {}),
           (json.dumps({"inputs": [ints]}).encode(), {}),
           (json.dumps({"inputs": [named]}).encode(), {}),
           (head + x.tobytes()[:-4], {"Inference-Header-Content-Length": str(len(head))})]
    return good, bad


def _request(in_name, x, fmt):
    if fmt == "json":
        body = {"inputs": [{"name": in_name, "shape": list(x.shape), "datatype": "FP32",
                            "data": x.ravel().tolist()}]}
        return json.dumps(body).encode(), {}
    head = json.dumps({"inputs": [{"name": in_name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]})
    return head.encode() + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


def answer_ok(status, headers, body, want):
    if status != 200:
        return False
    try:
        hl = headers.get("inference-header-content-length")
        if hl is None:
            out = json.loads(body)["outputs"][0]
            got = np.asarray(out["data"], np.float32).reshape(out["shape"])
        else:
            head = json.loads(body[:int(hl)])
            got = np.frombuffer(body[int(hl):], np.float32).reshape(head["outputs"][0]["shape"])
        return got.shape == want.shape and np.allclose(got, want, rtol=1e-4, atol=1e-5)
    except (ValueError, KeyError, IndexError, TypeError):
        return False


# -- the load generator (asyncio, raw HTTP/1.1 keep-alive) -------------------------------------

async def _exchange(reader, writer, host, path, body, headers):
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {}
    for line in header_lines:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    data = await reader.readexactly(int(hdrs.get("content-length", 0)))
    return status, hdrs, data


async def _client(port, path, good, bad, deadline, offset, stats):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            i += 1
            malformed = i % MALFORMED_EVERY == 0
            if malformed:
                body, headers = bad[(i // MALFORMED_EVERY) % len(bad)]
            else:
                body, headers, want = good[i % len(good)]
            t = time.perf_counter()
            try:
                status, hdrs, data = await _exchange(reader, writer, "127.0.0.1", path, body,
                                                     headers)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                stats["lost" if not malformed else "bad_unanswered"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            if status >= 500:
                stats["5xx"] += 1
            if malformed:
                stats["bad"] += 1
                stats["bad_4xx"] += 400 <= status < 500
            elif answer_ok(status, hdrs, data, want):
                stats["ok"] += 1
                stats["lat"].append(time.perf_counter() - t)
            else:
                stats["lost"] += 1
    finally:
        writer.close()


def _worker(args):
    port, path, good, bad, seconds, clients, index = args
    stats = {"ok": 0, "lost": 0, "bad": 0, "bad_4xx": 0, "bad_unanswered": 0, "5xx": 0,
             "lat": []}

    async def run():
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*[_client(port, path, good, bad, deadline,
                                       (index * clients + c) * 37, stats)
                               for c in range(clients)])
    asyncio.run(run())
    return stats


def merge(parts):
    """Stats of several client processes (or rounds) as one."""
    return {k: (sum((p[k] for p in parts), []) if k == "lat" else sum(p[k] for p in parts))
            for k in parts[0]}


def drive(port, path, good, bad, seconds, clients, processes):
    """Run `clients` connections spread over `processes` for `seconds`; merged stats."""
    per = [clients // processes + (i < clients % processes) for i in range(processes)]
    jobs = [(port, path, good, bad, seconds, n, i) for i, n in enumerate(per) if n]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(len(jobs)) as pool:
        parts = pool.map(_worker, jobs)
    total = merge(parts)
    total["seconds"] = seconds
    return total


# -- servers ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_modelkit(name, path, max_batch, args):
    port = free_port()
    cmd = [sys.executable, "-m", "modelkit.cli.main", "serve", f"{name}={path}", "--port",
           str(port), "--device", args.device, "--max-batch-size", str(max_batch),
           "--batch-timeout-ms", str(args.batch_timeout_ms)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(port, f"/v2/models/{name}/ready", proc)
    return proc, port


MLSERVER_RUNTIME = '''
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse


class OnnxModel(MLModel):
    async def load(self):
        self.sess = ort.InferenceSession(self.settings.parameters.uri,
                                         providers=["CPUExecutionProvider"])
        self.input_name = self.sess.get_inputs()[0].name
        self.output_names = [o.name for o in self.sess.get_outputs()]
        return True

    async def predict(self, payload):
        x = NumpyCodec.decode_input(payload.inputs[0])
        outs = self.sess.run(None, {self.input_name: x})
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output(n, y) for n, y in zip(self.output_names, outs)])
'''


def start_mlserver(python, name, path, folder):
    root = os.path.join(folder, f"mlserver-{name}")
    os.makedirs(os.path.join(root, name), exist_ok=True)
    with open(os.path.join(root, "onnx_runtime.py"), "w") as f:
        f.write(textwrap.dedent(MLSERVER_RUNTIME))
    port = free_port()
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
                "host": "127.0.0.1", "debug": False}
    with open(os.path.join(root, "settings.json"), "w") as f:
        json.dump(settings, f)
    model_settings = {"name": name, "implementation": "onnx_runtime.OnnxModel",
                      "parameters": {"uri": path}, "max_batch_size": 32,
                      "max_batch_time": 0.002}
    with open(os.path.join(root, name, "model-settings.json"), "w") as f:
        json.dump(model_settings, f)
    env = {**os.environ, "PYTHONPATH": root}
    bindir = os.path.dirname(python)
    exe = os.path.join(bindir, "mlserver")
    proc = subprocess.Popen([exe, "start", root], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, f"/v2/models/{name}/ready", proc)
    return proc, port


# -- report ----------------------------------------------------------------------------------

def summarize(stats):
    lat = np.array(stats["lat"]) * 1000 if stats["lat"] else np.array([np.nan])
    return {"rps": stats["ok"] / stats["seconds"], "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "lost": stats["lost"], "bad": stats["bad"],
            "bad_4xx": stats["bad_4xx"], "5xx": stats["5xx"]}


def row(server, model, fmt, batching, s):
    bad = f"{s['bad_4xx']}/{s['bad']}"
    return (f"{server:<9} {model:<4} {fmt:<6} {batching:<9} {s['rps']:>9.0f} {s['p50']:>8.2f} "
            f"{s['p99']:>8.2f} {s['lost']:>5} {bad:>8} {s['5xx']:>4}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=6.0,
                   help="load time per case, split into rounds (default 6)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds per case; servers take turns round by round (default 3)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=None, help="server --threads")
    p.add_argument("--batch-timeout-ms", type=float, default=2.0)
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--formats", default="json,binary")
    p.add_argument("--vs-mlserver", metavar="PYTHON", default=None,
                   help="a python with mlserver + onnxruntime installed")
    args = p.parse_args(argv)
    import onnxruntime
    print(f"onnxruntime {onnxruntime.__version__}; {os.cpu_count()} CPUs; {args.clients} "
          f"clients in {args.processes} processes; {args.seconds:g} s per case in "
          f"{args.rounds} rounds, servers alternating; 1 row per request; 1 in "
          f"{MALFORMED_EVERY} requests malformed; loopback only")
    print(f"{'server':<9} {'model':<4} {'format':<6} {'batching':<9} {'req/s':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'lost':>5} {'bad 4xx':>8} {'5xx':>4}")
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        models = write_models(folder)
        for name in args.models.split(","):
            path, shape = models[name]
            requests = {fmt: payloads(path, shape, fmt) for fmt in args.formats.split(",")}
            servers = {}                      # (server, batching) -> (process, port)
            try:
                servers["modelkit", 32] = start_modelkit(name, path, 32, args)
                servers["modelkit", 1] = start_modelkit(name, path, 1, args)
                if args.vs_mlserver:
                    servers["MLServer", 32] = start_mlserver(args.vs_mlserver, name, path,
                                                             folder)
                results = {}
                for fmt, (good, bad) in requests.items():
                    cases = [k for k in servers if k[0] == "modelkit" or fmt == "json"]
                    parts = {k: [] for k in cases}
                    for _ in range(args.rounds):
                        for key in cases:
                            parts[key].append(drive(servers[key][1], f"/v2/models/{name}/infer",
                                                    good, bad, args.seconds / args.rounds,
                                                    args.clients, args.processes))
                    for (server, batch), stats in parts.items():
                        s = results[server, batch, fmt] = summarize(merge(stats))
                        label = "on (32)" if batch == 32 else "off (1)"
                        print(row(server, name, fmt, label, s), flush=True)
                        if server == "modelkit" and (s["lost"] or s["5xx"]
                                                     or s["bad_4xx"] != s["bad"]):
                            failures.append(f"modelkit {name} {fmt} batching {label}")
            finally:
                for proc, _ in servers.values():
                    stop(proc)
            for fmt in requests:
                on, off = results["modelkit", 32, fmt], results["modelkit", 1, fmt]
                print(f"  {name} {fmt}: batching on/off throughput "
                      f"{on['rps'] / max(off['rps'], 1e-9):.2f}x, p99 {on['p99']:.2f} vs "
                      f"{off['p99']:.2f} ms")
            theirs = results.get(("MLServer", 32, "json"))
            if theirs is not None:
                for fmt in requests:
                    ours = results["modelkit", 32, fmt]
                    print(f"  {name} modelkit {fmt} / MLServer json: throughput "
                          f"{ours['rps'] / max(theirs['rps'], 1e-9):.2f}x, p99 "
                          f"{ours['p99']:.2f} vs {theirs['p99']:.2f} ms")
    print("modelkit: lost valid = 0, every malformed request answered 4xx, no 5xx"
          if not failures else "FAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

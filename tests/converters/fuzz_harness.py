"""Structure-aware fuzzing of modelkit's readers over .h5, .keras and .onnx files.

    from fuzz_harness import Campaign
    with Campaign(workdir) as c:
        report = c.run(cases=300, seed=0)      # {"outcomes": Counter, "findings": [...]}

Seeds are small real models saved by modelkit in every format. Each case applies one
structure-aware mutation to a seed (HDF5: external/soft/hard links, resized or
declared-only datasets, swapped dtypes, virtual/external storage, deleted objects and
attributes, mangled JSON at any nesting level of the configs; .keras: the same inside the
archive plus zip tricks; .onnx: mutated attributes, op types, initializers, opsets, external
data; and raw byte flips and truncations) and loads the result the way users do
(`load_model`, `InferenceSession` + predict, `modelkit summary`).

Every case runs in a child forked from a clean zygote process (started with `spawn`, so it
never holds onnxruntime threads) with `RLIMIT_AS` = the zygote's address space plus
`MEMORY_BUDGET`, and `alarm(CASE_SECONDS)`. Outcomes:

* ok / refused       : loaded, or a modelkit error (ModelkitError)
* foreign            : any other exception escaped (a bug)
* over_budget        : MemoryError anywhere (even wrapped): an allocation beyond the budget
* hang               : killed by the alarm
* crash              : the child died of a signal or exited without reporting
"""

from __future__ import annotations

import collections
import copy
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import tempfile
import time
import zipfile

import numpy as np

CASE_SECONDS = 10
MEMORY_BUDGET = 1 << 30
FORMATS = ("h5", "keras", "onnx")
BAD_OUTCOMES = ("foreign", "over_budget", "hang", "crash")


# ---------------------------------------------------------------------------------------
# seeds

def make_seeds(folder):
    """{format: [paths]} of small valid models (built with modelkit, saved in every format)."""
    from modelkit import backend as K
    from modelkit import layers as L
    from modelkit.models import Model, Sequential
    from modelkit.utils import set_random_seed
    set_random_seed(0)
    cnn = Sequential([L.Conv2D(3, 3, input_shape=(6, 6, 2), activation="relu", name="conv"),
                      L.BatchNormalization(name="bn"), L.MaxPooling2D(name="pool"),
                      L.Flatten(name="flat"), L.Dense(4, activation="softmax", name="out")],
                     name="cnn")
    cnn.compile("adam", "categorical_crossentropy")
    cnn.train_on_batch(np.ones((2, 6, 6, 2), np.float32), np.eye(4, dtype=np.float32)[:2])
    tok = L.Input((5,), dtype="int32", name="tokens")
    other = L.Input((3,), name="side")
    e = L.Embedding(10, 4, name="emb")(tok)
    h = L.LSTM(3, recurrent_activation="sigmoid", name="lstm")(e)
    shared = L.Dense(3, name="shared")
    h = L.Add(name="add")([shared(h), shared(other)])
    h = K.tanh(h) * 2.0
    inner = Sequential([L.Dense(2, input_shape=(3,), name="inner_dense")], name="inner")
    func = Model([tok, other], [inner(h), L.Dense(1, name="reg")(h)], name="func")
    seeds = {f: [] for f in FORMATS}
    for name, model in (("cnn", cnn), ("func", func)):
        for fmt in FORMATS:
            p = os.path.join(folder, f"seed_{name}.{fmt}")
            model.save(p)
            seeds[fmt].append(p)
    outside = os.path.join(folder, "outside.h5")      # a file links must never reach
    import h5py
    with h5py.File(outside, "w") as f:
        f["x"] = np.full((3, 3), 7.0, np.float32)
        f.create_group("g")["x"] = np.ones(4, np.float32)
    with open(os.path.join(folder, "outside.bin"), "wb") as f:
        f.write(b"\x07" * 4096)
    return seeds


# ---------------------------------------------------------------------------------------
# JSON: mangle one node at any nesting level

_VALUES = [None, True, 0, -1, 1.5, 2 ** 31, 10 ** 12, -10 ** 9, float("nan"), "", "x",
           "U500000000", [], {}, [[["nowhere", 0, 0, {}]]], [None, None], {"class_name": None},
           {"class_name": "__lambda__", "config": {"code": "AAAA"}}, [0, 0], [-1, -1]]


def _json_nodes(obj, path=(), out=None):
    out = [] if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(path + (k,))
            _json_nodes(v, path + (k,), out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append(path + (i,))
            _json_nodes(v, path + (i,), out)
    return out


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def mangle_json(text, rng):
    """One mutation of a JSON document, at a nesting level drawn uniformly."""
    kind = rng.randrange(10)
    if kind == 0:
        return text[: rng.randrange(len(text))]
    if kind == 1:
        chars = list(text)
        for _ in range(rng.choice([1, 3, 10])):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0-a ')
        return "".join(chars)
    if kind == 2:
        return rng.choice(["[" * 100000, '{"a":' * 50000, "null", "[]", "1e999"])
    doc = json.loads(text)
    nodes = _json_nodes(doc)
    if not nodes:
        return text
    depth = rng.randrange(max(len(p) for p in nodes)) + 1
    at_depth = [p for p in nodes if len(p) == depth] or nodes
    path = rng.choice(at_depth)
    parent = _get(doc, path[:-1])
    key = path[-1]
    if kind in (3, 4, 5):
        parent[key] = copy.deepcopy(rng.choice(_VALUES))
    elif kind == 6:
        del parent[key]
    elif kind == 7 and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))           # a repeated entry
    elif kind == 8:
        other = rng.choice(nodes)                                # type confusion
        try:
            parent[key] = copy.deepcopy(_get(doc, other))
        except (KeyError, IndexError, TypeError):
            pass
    else:
        value = parent[key]
        if isinstance(value, int) and not isinstance(value, bool):
            parent[key] = rng.choice([0, -value, value * 1000003, str(value)])
        elif isinstance(value, str):
            parent[key] = rng.choice([value + "_", value.upper(), "", 5])
        else:
            parent[key] = rng.choice(_VALUES)
    return json.dumps(doc)


# ---------------------------------------------------------------------------------------
# HDF5

def _h5_objects(f):
    import h5py
    dsets, groups = [], []
    f.visititems(lambda n, o: (dsets if isinstance(o, h5py.Dataset) else groups).append(n))
    return dsets, groups


def _replace(f, name, make):
    parent, _, leaf = name.rpartition("/")
    g = f[parent] if parent else f
    del g[leaf]
    make(g, leaf)


def mutate_h5(path, rng, folder):
    """One structural mutation of the HDF5 file at `path`, in place; returns its label."""
    import h5py
    outside = os.path.join(folder, "outside.h5")
    with h5py.File(path, "a") as f:
        dsets, groups = _h5_objects(f)
        objs = dsets + groups
        kinds = ["external_link", "soft_out", "soft_loop", "hard_dup", "hard_loop", "resize",
                 "declared", "dtype", "virtual", "external_raw", "delete", "del_attr",
                 "attr_type", "repeat_names", "json", "json", "json", "training_json"]
        kind = rng.choice(kinds)
        if not dsets and kind in ("hard_dup", "resize", "declared", "dtype", "virtual",
                                  "external_raw"):
            kind = "json"
        if kind == "external_link" and objs:
            _replace(f, rng.choice(objs),
                     lambda g, leaf: g.__setitem__(leaf, h5py.ExternalLink(outside, "/x")))
        elif kind == "soft_out" and objs:
            _replace(f, rng.choice(objs), lambda g, leaf: g.__setitem__(
                leaf, h5py.SoftLink(rng.choice(["/", "/model_weights", "..", "/layers"]))))
        elif kind == "soft_loop" and objs:
            n = rng.choice(objs)
            _replace(f, n, lambda g, leaf: g.__setitem__(leaf, h5py.SoftLink("/" + n)))
        elif kind == "hard_dup":
            a, b = rng.choice(dsets), rng.choice(dsets)
            if a != b:
                _replace(f, a, lambda g, leaf: g.__setitem__(leaf, f[b]))
            else:
                f[f"dup_{rng.randrange(99)}"] = f[a]
        elif kind == "hard_loop" and groups:
            g = f[rng.choice(groups)]
            g[f"loop{rng.randrange(9)}"] = g
        elif kind == "resize":
            n = rng.choice(dsets)
            shape = tuple(rng.choice([0, 1, 2, 5, 7]) for _ in range(rng.randrange(4)))
            _replace(f, n, lambda g, leaf: g.create_dataset(leaf, data=np.ones(shape, "f4")))
        elif kind == "declared":
            n = rng.choice(dsets)
            shape = tuple(rng.choice([1 << 20, 1 << 30, 3]) for _ in range(rng.randrange(1, 4)))
            _replace(f, n, lambda g, leaf: g.create_dataset(leaf, shape=shape, dtype="f4"))
        elif kind == "dtype":
            n = rng.choice(dsets)
            data = f[n][()]
            dt = rng.choice(["f2", "f8", "i4", "u1", "?", "S5", "c8", "compound", "vlen"])
            if dt == "compound":
                new = np.zeros(np.shape(data), dtype=[("a", "f4"), ("b", "i2")])
            elif dt == "vlen":
                new = np.array(["abc"] * max(1, int(np.size(data))), dtype=h5py.string_dtype())
            else:
                new = np.asarray(data).astype(dt)
            _replace(f, n, lambda g, leaf: g.__setitem__(leaf, new))
        elif kind == "virtual":
            n = rng.choice(dsets)
            layout = h5py.VirtualLayout(shape=(3, 3), dtype="f4")
            layout[:] = h5py.VirtualSource(outside, "x", shape=(3, 3))
            _replace(f, n, lambda g, leaf: g.create_virtual_dataset(leaf, layout))
        elif kind == "external_raw":
            n = rng.choice(dsets)
            raw = os.path.join(folder, "outside.bin")
            _replace(f, n, lambda g, leaf: g.create_dataset(leaf, shape=(16,), dtype="f4",
                                                             external=[(raw, 0, 64)]))
        elif kind == "delete" and objs:
            n = rng.choice(objs)
            if n in f:
                del f[n]
        elif kind in ("del_attr", "attr_type", "repeat_names", "json", "training_json"):
            holders = [f] + [f[g] for g in groups]
            with_attrs = [h for h in holders if len(h.attrs)]
            if kind in ("json", "training_json"):
                key = "model_config" if kind == "json" else "training_config"
                if key in f.attrs:
                    text = f.attrs[key]
                    text = text.decode() if isinstance(text, bytes) else str(text)
                    f.attrs[key] = mangle_json(text, rng)
            elif with_attrs:
                h = rng.choice(with_attrs)
                a = rng.choice(list(h.attrs))
                if kind == "del_attr":
                    del h.attrs[a]
                elif kind == "repeat_names":
                    v = h.attrs[a]
                    if isinstance(v, np.ndarray) and v.ndim == 1 and v.size:
                        h.attrs[a] = np.concatenate([v] * rng.choice([2, 50]))
                else:
                    h.attrs[a] = rng.choice([np.int64(3), np.zeros((2, 2)), "x",
                                             np.array([b"a", b"b"]), np.array([], "f8")])
        return f"h5:{kind}"


def mutate_bytes(data, rng):
    b = bytearray(data)
    if rng.random() < 0.3:
        return bytes(b[: rng.randrange(len(b))]), "bytes:truncate"
    for _ in range(rng.choice([1, 4, 32])):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b), "bytes:flip"


# ---------------------------------------------------------------------------------------
# .keras archives

def mutate_keras(path, rng, folder):
    with zipfile.ZipFile(path) as z:
        members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    kind = rng.choice(["config", "config", "weights", "weights", "weights", "drop", "dup",
                       "bzip2", "rename", "metadata"])
    method = zipfile.ZIP_DEFLATED
    names = [n for n, _ in members]
    if kind in ("config", "metadata"):
        target = "config.json" if kind == "config" else "metadata.json"
        members = [(n, mangle_json(d.decode(), rng).encode() if n == target else d)
                   for n, d in members]
    elif kind == "weights":
        tmp = os.path.join(folder, "inner.weights.h5")
        data = dict(members)["model.weights.h5"]
        with open(tmp, "wb") as f:
            f.write(data)
        sub = mutate_h5(tmp, rng, folder)
        with open(tmp, "rb") as f:
            data = f.read()
        members = [(n, data if n == "model.weights.h5" else d) for n, d in members]
        kind = f"weights/{sub}"
    elif kind == "drop":
        drop = rng.choice(names)
        members = [(n, d) for n, d in members if n != drop]
    elif kind == "dup":
        members.append(rng.choice(members))
    elif kind == "bzip2":
        method = rng.choice([zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
    elif kind == "rename":
        i = rng.randrange(len(members))
        members[i] = ("../" + members[i][0], members[i][1])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(path, "w", compression=method) as z:
            for n, d in members:
                z.writestr(n, d)
    return f"keras:{kind}"


# ---------------------------------------------------------------------------------------
# ONNX

def mutate_onnx(path, rng, folder):
    import onnx
    from onnx import TensorProto
    model = onnx.load(path)
    g = model.graph
    kind = rng.choice(["attr", "attr", "op_type", "del_node", "rename_input", "init_dims",
                       "init_type", "no_outputs", "opset", "ir_version", "input_dims",
                       "external_data", "graph_only"])
    if kind == "attr":
        nodes = [n for n in g.node if n.attribute]
        if nodes:
            a = rng.choice(rng.choice(nodes).attribute)
            if a.ints:
                a.ints[rng.randrange(len(a.ints))] = rng.choice([0, -1, 1 << 40, -(1 << 40)])
            elif a.type == onnx.AttributeProto.INT:
                a.i = rng.choice([0, -1, 1 << 40, 7])
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rng.choice([float("nan"), float("inf"), -1.0])
            else:
                a.type = rng.choice([1, 2, 3, 7])
    elif kind == "op_type" and g.node:
        rng.choice(g.node).op_type = rng.choice(["Relu", "Conv", "Loop", "Nope", "Reshape", ""])
    elif kind == "del_node" and g.node:
        del g.node[rng.randrange(len(g.node))]
    elif kind == "rename_input":
        nodes = [n for n in g.node if n.input]
        if nodes:
            n = rng.choice(nodes)
            n.input[rng.randrange(len(n.input))] = rng.choice(["ghost", "", n.output[0]])
    elif kind == "init_dims" and g.initializer:
        t = rng.choice(g.initializer)
        t.dims[:] = [rng.choice([0, 1, 3, 1 << 40]) for _ in range(rng.randrange(1, 4))]
    elif kind == "init_type" and g.initializer:
        rng.choice(g.initializer).data_type = rng.choice(
            [TensorProto.STRING, TensorProto.INT64, TensorProto.DOUBLE, 0, 99])
    elif kind == "no_outputs":
        del g.output[:]
    elif kind == "opset":
        model.opset_import[0].version = rng.choice([1, 5, 99, 0])
    elif kind == "ir_version":
        model.ir_version = rng.choice([0, 1, 100])
    elif kind == "input_dims" and g.input:
        dims = g.input[0].type.tensor_type.shape.dim
        if dims:
            dims[rng.randrange(len(dims))].dim_value = rng.choice([0, 1 << 40])
    elif kind == "external_data" and g.initializer:
        t = rng.choice(g.initializer)
        t.ClearField("raw_data")
        del t.float_data[:]
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for k, v in (("location", rng.choice(["../../../etc/passwd", "/etc/passwd",
                                              os.path.join(folder, "outside.bin")])),
                     ("offset", "0"), ("length", "64")):
            e = t.external_data.add()
            e.key, e.value = k, v
    elif kind == "graph_only":
        with open(path, "wb") as f:
            f.write(g.SerializeToString())
        return "onnx:graph_only"
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return f"onnx:{kind}"


# ---------------------------------------------------------------------------------------
# targets (run in the child)

def _target(fmt, path, variant):
    if fmt == "onnx":
        from modelkit.cli.summary import onnx_summary
        from modelkit.runtime import InferenceSession
        if variant % 2:
            onnx_summary(path)
            return
        sess = InferenceSession(path, device="cpu", intra_op_threads=1)
        feeds = []
        for spec in sess.inputs:
            shape = [2 if d is None else d for d in spec.shape]
            if np.prod(shape, dtype=float) > 1e6:
                return              # the file declares an input nobody could feed
            feeds.append(np.zeros(shape, spec.dtype or np.float32))
        sess.predict(feeds if len(feeds) > 1 else feeds[0])
        return
    if fmt == "h5" and variant % 2:
        from modelkit.converters.keras_to_onnx import convert_keras_file
        convert_keras_file(path)
        return
    from modelkit.models import load_model
    load_model(path)


def _classify(exc):
    from modelkit.errors import ModelkitError
    if exc is None:
        return "ok", ""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "MemoryError" in text or "Unable to allocate" in text \
            or "std::bad_alloc" in text:
        return "over_budget", text
    if isinstance(exc, ModelkitError):
        return "refused", ""
    return "foreign", text


def _run_child(fmt, path, variant, wfd, mem_limit):
    os.setpgid(0, 0) if hasattr(os, "setpgid") else None
    resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.alarm(CASE_SECONDS)
    import warnings
    warnings.simplefilter("ignore")
    err = None
    try:
        _target(fmt, path, variant)
    except BaseException as e:  # noqa: BLE001 - that is what we are looking for
        err = e
    outcome, text = _classify(err)
    os.write(wfd, json.dumps([outcome, text[:500]]).encode()[:60000])
    os._exit(0)


def _address_space():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _zygote(conn, budget, warm):
    """Import everything and warm up once (never creating onnxruntime sessions: the zygote
    must hold no threads of its own), then fork one limited child per case."""
    import h5py  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import modelkit.cli.summary  # noqa: F401
    import modelkit.converters.keras_to_onnx  # noqa: F401
    import modelkit.layers  # noqa: F401
    import modelkit.models  # noqa: F401
    import modelkit.runtime  # noqa: F401
    from modelkit.cli.summary import onnx_summary
    from modelkit.converters.keras_to_onnx import convert_keras_file
    from modelkit.models import load_model
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt, path in warm:
            if fmt == "onnx":
                onnx_summary(path)
            else:
                load_model(path)
                convert_keras_file(path)
    mem_limit = _address_space() + budget
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        fmt, path, variant = msg
        r, w = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _run_child(fmt, path, variant, w, mem_limit)
            finally:
                os._exit(3)
        os.close(w)
        deadline = start + CASE_SECONDS + 5
        status = None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                status = os.waitpid(pid, 0)[1]
            else:
                time.sleep(0.002)
        data = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(r)
        if data:
            outcome, text = json.loads(data)
        elif os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGALRM, signal.SIGKILL):
            outcome, text = "hang", f"killed after {time.monotonic() - start:.1f} s"
        elif os.WIFSIGNALED(status):
            outcome, text = "crash", f"signal {os.WTERMSIG(status)}"
        else:
            outcome, text = "crash", f"exit status {os.WEXITSTATUS(status)} without a report"
        conn.send((outcome, text, time.monotonic() - start))


# ---------------------------------------------------------------------------------------
# the campaign

class Campaign:
    """Seeds + a zygote; `run(cases, seed)` fuzzes and returns the report."""

    def __init__(self, folder=None, budget=MEMORY_BUDGET):
        self._own = folder is None
        self.folder = folder or tempfile.mkdtemp(prefix="modelkit-fuzz-")
        self.budget = budget
        self.seeds = make_seeds(self.folder)
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        warm = [(fmt, paths[0]) for fmt, paths in self.seeds.items()]
        self._proc = ctx.Process(target=_zygote, args=(child, budget, warm), daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(120) or self._conn.recv() != "ready":
            raise RuntimeError("fuzz zygote did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    def make_case(self, rng, fmt, path):
        seed = rng.choice(self.seeds[fmt])
        shutil.copyfile(seed, path)
        if rng.random() < 0.15:
            with open(path, "rb") as f:
                data, label = mutate_bytes(f.read(), rng)
            with open(path, "wb") as f:
                f.write(data)
            return f"{fmt}/{label}"
        mutate = {"h5": mutate_h5, "keras": mutate_keras, "onnx": mutate_onnx}[fmt]
        return f"{fmt}/{mutate(path, rng, self.folder)}"

    def run(self, cases, seed=0, formats=FORMATS, keep_failures=None, progress=None):
        rng = random.Random(seed)
        outcomes = collections.Counter()
        by_kind = collections.defaultdict(collections.Counter)
        findings = []
        slowest = (0.0, None)
        start = time.monotonic()
        for i in range(cases):
            fmt = formats[i % len(formats)]
            path = os.path.join(self.folder, f"case.{fmt}")
            try:
                label = self.make_case(rng, fmt, path)
            except Exception as e:   # noqa: BLE001 - a mutation the writer could not make
                outcomes["skipped"] += 1
                by_kind[f"{fmt}/unmade"][type(e).__name__] += 1
                continue
            self._conn.send((fmt, path, i))
            outcome, text, seconds = self._conn.recv()
            outcomes[outcome] += 1
            by_kind[label][outcome] += 1
            slowest = max(slowest, (seconds, label))
            if outcome in BAD_OUTCOMES:
                findings.append({"case": i, "kind": label, "outcome": outcome, "detail": text})
                if keep_failures:
                    os.makedirs(keep_failures, exist_ok=True)
                    shutil.copyfile(path, os.path.join(keep_failures, f"case{i}.{fmt}"))
            if progress and (i + 1) % progress == 0:
                print(f"  {i + 1}/{cases} cases, {dict(outcomes)}", flush=True)
        return {"cases": cases, "seconds": time.monotonic() - start, "outcomes": outcomes,
                "by_kind": by_kind, "findings": findings, "slowest": slowest}


def bad(report):
    return {k: report["outcomes"][k] for k in BAD_OUTCOMES if report["outcomes"][k]}

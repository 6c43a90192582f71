"""Fuzz `load_graph`: mangled files must raise ModelLoadError (or load), never anything
else, never crash the interpreter, never hang. Each case runs in a forked child with a
time bound; the whole test stays well under ~20 s."""

import json
import multiprocessing as mp
import random
import time

import h5py
import numpy as np

from modelkit.converters import hdf5
from modelkit.errors import ModelLoadError

from test_hdf5_roundtrip import shared_nested

# libhdf5 itself can take a few seconds on a corrupt variable-length string attribute
# (a bounded slow path, not a hang), so the bound per case is generous.
CASE_TIMEOUT = 15.0
N_TRUNCATE, N_FLIP, N_STRUCT, N_JSON = 40, 60, 30, 30


def _child(path, conn):
    try:
        hdf5.load_graph(path)
        conn.send("ok")
    except ModelLoadError:
        conn.send("ModelLoadError")
    except BaseException as e:       # noqa: BLE001 - that is the bug we are looking for
        conn.send(f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def _run_case(path):
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(path, child))
    p.start()
    child.close()
    result = parent.recv() if parent.poll(CASE_TIMEOUT) else None
    p.join(1.0)
    if p.is_alive():
        p.kill()
        p.join()
        return "hang"
    if result is None:
        return f"crash (exit code {p.exitcode})"
    return result


def _struct_mutations(path, rng):
    """One random structural edit of a valid file."""
    with h5py.File(path, "a") as f:
        dsets, groups = [], []
        f.visititems(lambda n, o: (dsets if isinstance(o, h5py.Dataset) else groups).append(n))
        kind = rng.choice(["del_dset", "reshape", "del_group", "del_attr", "attr_type", "dtype"])
        if kind == "del_dset" and dsets:
            del f[rng.choice(dsets)]
        elif kind == "reshape" and dsets:
            n = rng.choice(dsets)
            del f[n]
            f[n] = np.zeros((rng.randint(0, 5), rng.randint(1, 3)), np.float32)
        elif kind == "dtype" and dsets:
            n = rng.choice(dsets)
            del f[n]
            f[n] = np.array([b"text"])
        elif kind == "del_group" and groups:
            del f[rng.choice(groups)]
        else:
            objs = [f] + [f[g] for g in groups]
            o = rng.choice([o for o in objs if len(o.attrs)] or [f])
            if len(o.attrs):
                a = rng.choice(list(o.attrs))
                if kind == "del_attr":
                    del o.attrs[a]
                else:
                    o.attrs[a] = rng.choice([np.int64(3), np.zeros((2, 2)), "x", np.array([b"a", b"b"])])


def _json_mutations(text, rng):
    kind = rng.randrange(6)
    if kind == 0:
        i = rng.randrange(len(text))
        return text[:i]
    if kind == 1:
        cfg = json.loads(text)
        layers = cfg["config"]["layers"]
        layers.pop(rng.randrange(len(layers)))
        return json.dumps(cfg)
    if kind == 2:
        cfg = json.loads(text)
        layer = rng.choice(cfg["config"]["layers"])
        key = rng.choice(list(layer))
        layer[key] = rng.choice([None, 1, "x", [], {}, [[["nowhere", 9, 9, {}]]]])
        return json.dumps(cfg)
    if kind == 3:
        cfg = json.loads(text)
        cfg["config"][rng.choice(["input_layers", "output_layers", "layers", "name"])] = \
            rng.choice([None, 5, [["x", 0, 0]], [], "s"])
        return json.dumps(cfg)
    if kind == 4:
        return "[" * 100000        # deep nesting
    chars = list(text)
    for _ in range(5):
        chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0a ')
    return "".join(chars)


def test_fuzz_load_graph(tmp_path):
    start = time.monotonic()
    good = tmp_path / "good.h5"
    hdf5.save_graph(shared_nested(), good)
    data = good.read_bytes()
    text = json.loads(json.dumps(h5py.File(good, "r").attrs["model_config"]))
    rng = random.Random(1234)
    bad = tmp_path / "case.h5"
    failures = []

    def check(label):
        r = _run_case(str(bad))
        if r not in ("ok", "ModelLoadError"):
            failures.append((label, r))

    for i in range(N_TRUNCATE):
        bad.write_bytes(data[: rng.randrange(len(data))])
        check(f"truncate#{i}")
    for i in range(N_FLIP):
        b = bytearray(data)
        for _ in range(rng.choice([1, 4, 32])):
            b[rng.randrange(len(b))] = rng.randrange(256)
        bad.write_bytes(bytes(b))
        check(f"flip#{i}")
    for i in range(N_STRUCT):
        bad.write_bytes(data)
        _struct_mutations(str(bad), rng)
        check(f"struct#{i}")
    for i in range(N_JSON):
        bad.write_bytes(data)
        with h5py.File(bad, "a") as f:
            f.attrs["model_config"] = _json_mutations(text, rng)
        check(f"json#{i}")
    elapsed = time.monotonic() - start
    assert not failures, failures[:10]
    assert elapsed < 60

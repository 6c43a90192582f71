"""Hostile HDF5 files and .keras archives, crafted here with h5py and zipfile: links and
storage that leave the file, memory bombs, archive tricks, non-regular paths. Every one is
refused with a ModelLoadError naming the file and the piece, before data is read."""

import io
import json
import os
import threading
import zipfile

import h5py
import numpy as np
import pytest

from modelkit.converters import hdf5
from modelkit.errors import ModelLoadError

from test_hdf5_roundtrip import dense_chain, multi_io

SECRET = np.arange(12, dtype=np.float32).reshape(3, 4) + 1000.0


@pytest.fixture
def secret(tmp_path):
    """Another HDF5 file the process can read: data must never flow from it."""
    p = tmp_path / "secret.h5"
    with h5py.File(p, "w") as f:
        f["grp/kernel:0"] = SECRET
        f["grp/bias:0"] = np.zeros(4, np.float32)
        f["kernel"] = SECRET
    return p


@pytest.fixture
def model_h5(tmp_path):
    p = tmp_path / "m.h5"
    hdf5.save_graph(dense_chain(sizes=(3, 4, 2)), p)
    return p


def _layer(f):
    """The first Dense layer group of a dense_chain file and its weight names."""
    names = [n.decode() if isinstance(n, bytes) else n
             for n in f["model_weights"].attrs["layer_names"]]
    lname = next(n for n in names if len(f["model_weights"][n].attrs["weight_names"]))
    return lname, f["model_weights"][lname]


def _names(values):
    return np.array([v.encode() if isinstance(v, str) else bytes(v) for v in values])


def _refused(path, *match):
    with pytest.raises(ModelLoadError) as ei:
        hdf5.load_graph(path)
    msg = str(ei.value)
    assert str(path) in msg
    for m in match:
        assert m in msg, msg
    return msg


# --- 1. links and storage that leave the file -------------------------------------------

def _replace_with_external(target, secret_path, secret_obj):
    def edit(f):
        parent, _, leaf = target.rpartition("/")
        del f[target]
        f[parent or "/"][leaf] = h5py.ExternalLink(str(secret_path), secret_obj)
    return edit


@pytest.mark.parametrize("level", ["dataset", "layer_group", "inner_group", "model_weights"])
def test_external_link_at_every_level(model_h5, secret, level):
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        if level == "dataset":
            target, obj = f"model_weights/{lname}/{lname}/kernel:0", "/kernel"
        elif level == "layer_group":
            target, obj = f"model_weights/{lname}", "/grp"
        elif level == "inner_group":
            target, obj = f"model_weights/{lname}/{lname}", "/grp"
        else:
            target, obj = "model_weights", "/"
        _replace_with_external(target, secret, obj)(f)
    _refused(model_h5, "external link", str(secret))


def test_external_link_in_optimizer_weights_and_unrelated_group(model_h5, secret):
    with h5py.File(model_h5, "a") as f:
        f.create_group("optimizer_weights")["x"] = h5py.ExternalLink(str(secret), "/kernel")
    _refused(model_h5, "optimizer_weights/x", "external link")


def test_soft_links_escaping_or_looping(model_h5):
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        inner = g[lname]
        inner["up"] = h5py.SoftLink("/model_weights")                  # escapes its group
    _refused(model_h5, "soft link", "outside its group")


def test_soft_link_to_own_group_is_a_loop(model_h5):
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        g["self"] = h5py.SoftLink(f"/model_weights/{lname}/{lname}")   # group inside: refused
    _refused(model_h5, "soft link", "group")


def test_soft_link_dangling_and_chained(model_h5):
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        g[lname]["a"] = h5py.SoftLink(f"/model_weights/{lname}/{lname}/nothing")
    _refused(model_h5, "does not exist")


def test_hard_link_loop_and_repeated_dataset(model_h5, tmp_path):
    other = tmp_path / "other.h5"
    other.write_bytes(model_h5.read_bytes())
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        g[lname]["loop"] = g                      # a group hard-linked below itself
    _refused(model_h5, "second hard link")
    with h5py.File(other, "a") as f:
        lname, g = _layer(f)
        f["copy"] = g[lname]["kernel:0"]           # same dataset twice
    _refused(other, "second hard link")


def test_virtual_dataset_and_external_storage(model_h5, secret, tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(SECRET.tobytes())
    other = tmp_path / "other.h5"
    other.write_bytes(model_h5.read_bytes())
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        inner = g[lname]
        shape = inner["kernel:0"].shape
        del inner["kernel:0"]
        layout = h5py.VirtualLayout(shape=shape, dtype="f4")
        layout[:] = h5py.VirtualSource(str(secret), "kernel", shape=(3, 4))[:shape[0], :shape[1]]
        inner.create_virtual_dataset("kernel:0", layout)
    _refused(model_h5, "virtual dataset")
    with h5py.File(other, "a") as f:
        lname, g = _layer(f)
        inner = g[lname]
        shape = inner["kernel:0"].shape
        del inner["kernel:0"]
        inner.create_dataset("kernel:0", shape=shape, dtype="f4",
                             external=[(str(raw), 0, int(np.prod(shape)) * 4)])
    _refused(other, "external raw files")


def test_links_inside_keras_archive(tmp_path, secret):
    p = tmp_path / "m.keras"
    hdf5.save_keras_archive(dense_chain(sizes=(3, 4, 2)), p)
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "a") as f:
        first = sorted(f["layers"].keys())[0]
        del f[f"layers/{first}/vars/0"]
        f[f"layers/{first}/vars"]["0"] = h5py.ExternalLink(str(secret), "/kernel")
    members["model.weights.h5"] = buf.getvalue()
    _write_zip(p, members)
    with pytest.raises(ModelLoadError, match="model.weights.h5.*external link"):
        hdf5.load_keras_archive(p)


def test_weights_file_and_full_file_checked_before_load_weights(model_h5, secret):
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        _replace_with_external(f"model_weights/{lname}/{lname}/bias:0", secret, "/grp/bias:0")(f)
    with pytest.raises(ModelLoadError, match="external link"):
        hdf5.load_weights_into(dense_chain(sizes=(3, 4, 2)), model_h5)


def test_a_soft_link_to_a_dataset_in_its_group_loads(model_h5):
    """In-group soft links to datasets leave nothing: allowed, and read like the target."""
    want = hdf5.load_graph(model_h5)
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        inner = g[lname]
        inner["kernel_copy"] = inner["kernel:0"][()]
        del inner["kernel:0"]
        inner["kernel:0"] = h5py.SoftLink(f"/model_weights/{lname}/{lname}/kernel_copy")
    got = hdf5.load_graph(model_h5)
    for k, v in want.weights.items():
        np.testing.assert_array_equal(got.weights[k], v)


# --- 2. memory bombs --------------------------------------------------------------------

def test_declared_shape_without_storage(model_h5):
    with h5py.File(model_h5, "a") as f:
        lname, g = _layer(f)
        del g[lname]["kernel:0"]
        g[lname].create_dataset("kernel:0", shape=(1 << 20, 1 << 12), dtype="f4")   # 16 GiB
    _refused(model_h5, "declares shape", "kernel:0")


def test_compressed_bomb_beyond_deflate_ratio(tmp_path):
    p = tmp_path / "z.h5"
    hdf5.save_graph(dense_chain(sizes=(3, 4, 2)), p)
    with h5py.File(p, "a") as f:
        # a chunked dataset whose chunks are mostly unwritten: no storage, huge shape
        f.create_dataset("pad", shape=(1 << 16, 1 << 14), dtype="f4", chunks=(64, 1 << 14),
                         compression="gzip")[:64] = 0
    _refused(p, "declares shape", "pad")


def test_repeated_layer_and_weight_names(model_h5, tmp_path):
    other = tmp_path / "o.h5"
    other.write_bytes(model_h5.read_bytes())
    with h5py.File(model_h5, "a") as f:
        names = list(f["model_weights"].attrs["layer_names"])
        f["model_weights"].attrs["layer_names"] = _names(names * 1000)
    _refused(model_h5, "more than once")
    with h5py.File(other, "a") as f:
        lname, g = _layer(f)
        wn = list(g.attrs["weight_names"])
        g.attrs["weight_names"] = _names(wn * 1000)
    _refused(other, "more than once", lname)


def test_weights_of_layers_the_config_lacks_are_not_read(model_h5, monkeypatch):
    with h5py.File(model_h5, "a") as f:
        names = list(f["model_weights"].attrs["layer_names"])
        ghost = f["model_weights"].create_group("ghost")
        ghost.attrs["weight_names"] = np.array([b"ghost/kernel:0"])
        ghost["ghost/kernel:0"] = np.zeros((4, 4), np.float32)
        f["model_weights"].attrs["layer_names"] = _names(names + ["ghost"])
    from modelkit.converters.hdf5 import h5io
    reads = []
    real = h5io._read_dataset
    monkeypatch.setattr(h5io, "_read_dataset", lambda *a: reads.append(a[1]) or real(*a))
    _refused(model_h5, "ghost", "config does not have")
    assert reads == []


def test_budget_counts_every_read():
    from modelkit.converters.hdf5.h5guard import Budget
    b = Budget("f.h5", 1000)
    b.charge(1000 + (64 << 10), "a")
    with pytest.raises(ModelLoadError, match="f.h5.*b"):
        b.charge(1, "b")


def test_many_variables_in_a_keras_weights_file(tmp_path):
    g = dense_chain(sizes=(3, 4, 2))
    w = tmp_path / "m.weights.h5"
    with h5py.File(w, "w") as f:
        for i, node in enumerate(n for n in g.nodes):
            v = f.create_group(f"layers/{'dense' if i == 0 else f'dense_{i}'}/vars")
            for j in range(300):
                v[str(j)] = np.zeros(1, np.float32)
    with pytest.raises(ModelLoadError, match="variables"):
        hdf5.load_weights_into(g, w)


# --- archives ---------------------------------------------------------------------------

def _write_zip(path, members, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in (members.items() if isinstance(members, dict) else members):
            z.writestr(name, data)


@pytest.fixture
def archive_members(tmp_path):
    p = tmp_path / "good.keras"
    hdf5.save_keras_archive(multi_io(), p)
    with zipfile.ZipFile(p) as z:
        return {n: z.read(n) for n in z.namelist()}


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_archive_foreign_compression_refused(tmp_path, archive_members, method):
    p = tmp_path / "m.keras"
    _write_zip(p, archive_members, method)
    with pytest.raises(ModelLoadError, match="compression method"):
        hdf5.load_keras_archive(p)


def test_archive_deflate_bomb_refused_before_inflating(tmp_path, archive_members, monkeypatch):
    p = tmp_path / "m.keras"
    members = dict(archive_members)
    members["assets/pad.bin"] = b"\0" * (64 << 20)          # 64 MiB -> ~64 KB deflated
    _write_zip(p, members)
    assert p.stat().st_size < 1 << 20
    opened = []
    real = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open",
                        lambda self, name, *a, **k: opened.append(name) or real(self, name, *a, **k))
    with pytest.raises(ModelLoadError, match="pad.bin.*200:1"):
        hdf5.load_keras_archive(p)
    assert opened == []


def test_archive_lying_about_its_size(tmp_path, archive_members):
    """A member whose header declares fewer bytes than it inflates to stops at the
    declared size (and fails its checksum) instead of reading on."""
    p = tmp_path / "m.keras"
    _write_zip(p, archive_members)
    data = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("config.json")
    # patch the uncompressed size in the central directory entry to 10 bytes
    cd = data.rfind(b"PK\x01\x02" + data[data.find(b"PK\x01\x02") + 4:data.find(b"PK\x01\x02") + 6])
    i = data.find(b"config.json", data.find(b"PK\x01\x02")) - 46
    assert data[i:i + 4] == b"PK\x01\x02", cd
    data[i + 24:i + 28] = (10).to_bytes(4, "little")
    p.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="config.json"):
        hdf5.load_keras_archive(p)
    assert info.file_size > 10


def test_archive_duplicate_members_refused(tmp_path, archive_members):
    p = tmp_path / "m.keras"
    items = list(archive_members.items()) + [("config.json", b'{"class_name": "Sequential"}')]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # zipfile warns about the duplicate
        _write_zip(p, items)
    with pytest.raises(ModelLoadError, match="two members named 'config.json'"):
        hdf5.load_keras_archive(p)


def test_archive_without_weights_refused(tmp_path, archive_members):
    p = tmp_path / "m.keras"
    _write_zip(p, {k: v for k, v in archive_members.items() if k != "model.weights.h5"})
    with pytest.raises(ModelLoadError, match="no model.weights.h5"):
        hdf5.load_keras_archive(p)


def test_archive_deep_json_refused(tmp_path, archive_members):
    p = tmp_path / "m.keras"
    _write_zip(p, {**archive_members, "config.json": b"[" * 200000})
    with pytest.raises(ModelLoadError, match="config.json"):
        hdf5.load_keras_archive(p)


# --- non-regular files --------------------------------------------------------------------

@pytest.mark.parametrize("loader", [hdf5.load_graph, hdf5.load_keras_archive])
def test_fifo_refused_without_blocking(tmp_path, loader):
    fifo = tmp_path / "m.h5"
    os.mkfifo(fifo)
    done = []

    def run():
        try:
            loader(fifo)
        except ModelLoadError as e:
            done.append(str(e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():                 # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert done and "FIFO" in done[0] and str(fifo) in done[0]


def test_device_and_folder_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="character device"):
        hdf5.load_graph("/dev/urandom")
    link = tmp_path / "m.h5"
    link.symlink_to("/dev/zero")
    with pytest.raises(ModelLoadError, match="character device"):
        hdf5.load_keras_archive(link)
    with pytest.raises(ModelLoadError, match="folder"):
        hdf5.load_graph(tmp_path)


def test_clean_files_still_load(tmp_path):
    """The checks refuse nothing a real writer makes: h5, weights, .keras, compressed."""
    g = multi_io()
    for name, save, load in [("m.h5", hdf5.save_graph, hdf5.load_graph),
                             ("m.keras", hdf5.save_keras_archive, hdf5.load_keras_archive)]:
        p = tmp_path / name
        save(g, p)
        back = load(p)
        for k, v in g.weights.items():
            np.testing.assert_array_equal(back.weights[k], v)
    p = tmp_path / "gz.h5"
    hdf5.save_graph(g, p)
    with h5py.File(p, "a") as f:                 # recompress every dataset with gzip
        items = []
        f.visititems(lambda n, o: items.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in items:
            data = f[n][()]
            del f[n]
            if data.shape:
                f.create_dataset(n, data=data, compression="gzip")
            else:
                f[n] = data
    back = hdf5.load_graph(p)
    for k, v in g.weights.items():
        np.testing.assert_array_equal(back.weights[k], v)
    assert json.loads(json.dumps(back.metadata))

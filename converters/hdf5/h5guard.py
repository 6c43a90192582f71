"""Check an open HDF5 file's structure before any data is read from it.

`inspect_file(h5file, where)` walks the link structure once with the low-level link info
(`H5Lget_info`, never by following a link) and refuses, with a `ModelLoadError` naming the
file and the path:

* external links and user-defined links (they pull data from other files);
* soft links that leave the group holding them, dangle, or point at a group (a way to
  make loops); soft links to a dataset in their own group are allowed;
* a group or dataset reached twice through hard links (loops, and one dataset repeated to
  multiply what a reader allocates);
* datasets with virtual or external raw storage, or with filters other than the standard
  ones (unknown filter ids make libhdf5 search for plugins);
* datasets declaring more bytes than their storage in the file can hold: uncompressed data
  must be present in full, compressed data may not exceed `MAX_COMPRESSION_RATIO` (deflate
  tops out near 1032:1);
* more than `MAX_OBJECTS` links or nesting deeper than `MAX_DEPTH`.

It returns a `Budget`: the bytes the file's datasets really hold. Readers charge every
dataset they read against it (`Budget.charge`), so reading the same weights repeatedly, or
reading weights of layers that are not there, cannot allocate more than the file holds.
"""

from __future__ import annotations

import posixpath

from modelkit.errors import ModelLoadError

__all__ = ["inspect_file", "Budget", "MAX_COMPRESSION_RATIO", "MAX_OBJECTS", "MAX_DEPTH"]

MAX_COMPRESSION_RATIO = 1100
MAX_OBJECTS = 200_000
MAX_DEPTH = 64
SMALL = 64 << 10          # a dataset this small may live on fill values (no storage)

# deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf: built into libhdf5 or h5py
_STANDARD_FILTERS = {1, 2, 3, 4, 5, 6, 32000}


class Budget:
    """The bytes the walked datasets hold in the file; readers charge what they read."""

    def __init__(self, where, total):
        self.where = where
        self.total = int(total) + SMALL
        self.used = 0

    def charge(self, nbytes, what):
        self.used += int(nbytes)
        if self.used > self.total:
            raise ModelLoadError(
                f"{self.where}: reading {what} brings the weights read to {self.used} bytes, "
                f"more than the {self.total} bytes of datasets the file holds (a dataset "
                f"read repeatedly?)")


def _fail(where, path, msg):
    raise ModelLoadError(f"{where}: {path!r}: {msg}")


def _declared_bytes(dsid):
    n = 1
    for d in dsid.shape or ():
        n *= int(d)
    return n * int(dsid.get_type().get_size())


def _check_dataset(h5py, dsid, where, path):
    plist = dsid.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        _fail(where, path, "is a virtual dataset (data from other files); not allowed")
    if plist.get_external_count() > 0:
        _fail(where, path, "stores its data in external raw files; not allowed")
    nfilters = plist.get_nfilters()
    for i in range(nfilters):
        fid = plist.get_filter(i)[0]
        if fid not in _STANDARD_FILTERS:
            _fail(where, path, f"uses HDF5 filter {fid}, not a standard one; not allowed")
    declared = _declared_bytes(dsid)
    stored = int(dsid.get_storage_size())
    limit = stored * (MAX_COMPRESSION_RATIO if nfilters else 1) + SMALL
    if declared > limit:
        _fail(where, path, f"declares shape {tuple(dsid.shape)} ({declared} bytes) but holds "
                           f"{stored} bytes in the file")
    return declared


def _check_soft_link(group_path, name, target, where):
    path = posixpath.join(group_path, name)
    target = target.decode("utf-8", "replace") if isinstance(target, bytes) else str(target)
    resolved = posixpath.normpath(posixpath.join(group_path, target))
    inside = group_path.rstrip("/") + "/"
    if not resolved.startswith(inside) or resolved == path:
        _fail(where, path, f"is a soft link to {target!r}, outside its group; not allowed")
    return resolved


def inspect_file(f, where):
    """Walk `f` (an open h5py File) once; refuse what leaves the file; return a Budget."""
    import h5py
    seen = set()
    soft = []
    total = 0
    count = 0
    stack = [("/", f.id, 0)]
    while stack:
        gpath, gid, depth = stack.pop()
        if depth > MAX_DEPTH:
            _fail(where, gpath, f"groups nest deeper than {MAX_DEPTH} levels")
        names = []
        gid.links.iterate(names.append)
        for raw in names:
            count += 1
            if count > MAX_OBJECTS:
                _fail(where, gpath, f"the file has more than {MAX_OBJECTS} objects")
            name = raw.decode("utf-8", "replace")
            path = posixpath.join(gpath, name)
            info = gid.links.get_info(raw)
            if info.type == h5py.h5l.TYPE_SOFT:
                soft.append((path, _check_soft_link(gpath, name, gid.links.get_val(raw), where)))
                continue
            if info.type == h5py.h5l.TYPE_EXTERNAL:
                ext_file, ext_path = gid.links.get_val(raw)
                _fail(where, path, f"is an external link to {ext_file!r}:{ext_path!r}; "
                                   f"not allowed")
            if info.type != h5py.h5l.TYPE_HARD:
                _fail(where, path, f"is a user-defined link (type {info.type}); not allowed")
            oid = h5py.h5o.open(gid, raw)
            addr = h5py.h5o.get_info(oid).addr
            if addr in seen:
                _fail(where, path, "is a second hard link to an object already in the file "
                                   "(a loop or a repeated dataset); not allowed")
            seen.add(addr)
            if isinstance(oid, h5py.h5g.GroupID):
                stack.append((path, oid, depth + 1))
            elif isinstance(oid, h5py.h5d.DatasetID):
                total += _check_dataset(h5py, oid, where, path)
    for path, target in soft:
        _check_soft_target(f, h5py, path, target, where)
    return Budget(where, total)


def _check_soft_target(f, h5py, path, target, where):
    """The target of an in-group soft link must be a dataset reached by hard links only."""
    node = f.id
    parts = [p for p in target.split("/") if p]
    for i, p in enumerate(parts):
        raw = p.encode("utf-8")
        if not node.links.exists(raw):
            _fail(where, path, f"is a soft link to {target!r}, which does not exist")
        if node.links.get_info(raw).type != h5py.h5l.TYPE_HARD:
            _fail(where, path, f"is a soft link to {target!r} through another link; not allowed")
        node = h5py.h5o.open(node, raw)
        if i < len(parts) - 1 and not isinstance(node, h5py.h5g.GroupID):
            _fail(where, path, f"is a soft link to {target!r}, which does not exist")
    if not isinstance(node, h5py.h5d.DatasetID):
        _fail(where, path, f"is a soft link to the group {target!r}; not allowed")

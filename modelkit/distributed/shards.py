"""Input and output shards of `modelkit predict --input ... --output DIR/`: finding them,
counting and reading their rows, and writing one output shard per input shard atomically.

Shards are ``.npy`` files (one array: column ``data``), ``.npz`` files (one column per array)
or ``.parquet`` files (its columns; numbers, fixed- or equal-length lists and tensor
extension columns become numpy arrays). The output of ``data/part-3.npy`` is
``DIR/part-3.npy`` (``.npz`` by output name for a model with several outputs), of
``part-3.npz`` ``DIR/part-3.npz``, of ``part-3.parquet`` ``DIR/part-3.parquet`` (a column
per output; 2-D and larger outputs as nested fixed-size lists).

Both engines (local and Ray) read and write through this module, so their files are the same.
"""

from __future__ import annotations

import glob
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from modelkit.converters.atomic import atomic_write
from modelkit.errors import ConfigError, ModelLoadError, ShapeError

from . import deps

KINDS = (".npy", ".npz", ".parquet")
NUMPY_COLUMN = "data"          # the one column of a .npy shard (as in ray.data.read_numpy)
PIECE_ROWS = 16384             # rows one worker call reads and predicts, at most (about)


@dataclass(frozen=True)
class Shard:
    index: int
    path: str
    rows: int
    columns: tuple

    @property
    def kind(self):
        return _kind(self.path)

    @property
    def splittable(self):
        """True when a row range reads without reading the whole file."""
        return self.kind != ".npz"


def _kind(path):
    return os.path.splitext(path)[1].lower()


def _has_magic(text):
    return any(ch in text for ch in "*?[")


def find_paths(inputs):
    """The shard files `inputs` names (a glob, a file, a folder, or a list of these), in order:
    each glob and folder sorted by name, the items of a list in the order given."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise ConfigError("no input shards given")
    paths = []
    for item in items:
        item = os.fspath(item)
        if _has_magic(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise ModelLoadError(f"no input file matches {item!r}")
        elif os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item)
                           if _kind(n) in KINDS and not n.startswith((".", "_"))
                           and os.path.isfile(os.path.join(item, n)))
            if not found:
                raise ModelLoadError(f"folder {item!r} holds no {', '.join(KINDS)} file")
        elif os.path.isfile(item):
            found = [item]
        else:
            raise ModelLoadError(f"input file not found: {item}")
        paths.extend(found)
    bad = [p for p in paths if _kind(p) not in KINDS]
    if bad:
        raise ConfigError(f"input shard {bad[0]!r} must end in {', '.join(KINDS)}")
    kinds = sorted({_kind(p) for p in paths})
    if len(kinds) > 1:
        raise ConfigError(f"input shards must all be of one kind, got {kinds}")
    seen = {}
    for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0]
        if stem in seen:
            raise ConfigError(f"input shards {seen[stem]!r} and {p!r} would write the same "
                              f"output file; give shards distinct names")
        seen[stem] = p
    return paths


# -- reading -----------------------------------------------------------------------------

def _npy_header(f, where):
    try:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    except (ValueError, OSError, EOFError) as e:
        raise ModelLoadError(f"Cannot read {where}: not a valid .npy array ({e})") from None
    if dtype.hasobject:
        raise ModelLoadError(f"Cannot read {where}: object arrays are not supported")
    if not shape:
        raise ShapeError(f"{where} holds a scalar; a shard needs one row per example")
    return shape


def _npz_headers(path):
    try:
        with zipfile.ZipFile(path) as z:
            out = {}
            for info in z.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as f:
                    out[name] = _npy_header(f, f"{path} (array {name!r})")
            return out
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelLoadError(f"Cannot read {path}: not a valid .npz file ({e})") from None


def _parquet_file(path):
    _, pq = deps.parquet("reading .parquet shards")
    try:
        return pq.ParquetFile(path)
    except Exception as e:      # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise ModelLoadError(f"Cannot read {path}: not a valid Parquet file "
                             f"({' '.join(str(e).split())})") from None


def describe(index, path):
    """The `Shard` at `path`: row count and column names, from the file's header only."""
    kind = _kind(path)
    if kind == ".npy":
        with open(path, "rb") as f:
            shape = _npy_header(f, path)
        return Shard(index, path, int(shape[0]), (NUMPY_COLUMN,))
    if kind == ".npz":
        headers = _npz_headers(path)
        if not headers:
            raise ModelLoadError(f"Cannot read {path}: the .npz file holds no array")
        rows = {name: shape[0] for name, shape in headers.items()}
        if len(set(rows.values())) != 1:
            raise ShapeError(f"{path}: the arrays have different row counts {rows}")
        return Shard(index, path, int(next(iter(rows.values()))), tuple(headers))
    meta = _parquet_file(path)
    return Shard(index, path, int(meta.metadata.num_rows), tuple(meta.schema_arrow.names))


def _arrow_to_numpy(column, name, path):
    pa, _ = deps.parquet("reading .parquet shards")
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    where = f"{path}: column {name!r}"
    if column.null_count:
        raise ShapeError(f"{where} has {column.null_count} missing values")
    typ = column.type
    if isinstance(typ, pa.BaseExtensionType):
        if hasattr(column, "to_numpy_ndarray"):             # arrow.fixed_shape_tensor
            return column.to_numpy_ndarray()
        try:
            return np.asarray(column.to_numpy(zero_copy_only=False))  # e.g. Ray's tensors
        except Exception:       # noqa: BLE001 - an unregistered extension: use its storage
            column = column.storage
            typ = column.type
    if pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ):
        n = len(column)
        if pa.types.is_fixed_size_list(typ):
            size = typ.list_size
            column = column.flatten()   # respects slicing
        else:
            lengths = column.value_lengths().to_numpy(zero_copy_only=False)
            if n and (lengths != lengths[0]).any():
                raise ShapeError(f"{where} holds lists of different lengths "
                                 f"({int(lengths.min())}..{int(lengths.max())}); a model "
                                 f"input needs one shape for every row")
            size = int(lengths[0]) if n else 0
            column = column.flatten()
        inner = _arrow_to_numpy(column, name, path)
        return inner.reshape((n, size) + inner.shape[1:])
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)):
        raise ShapeError(f"{where} has type {typ}; model inputs need numbers")
    return column.to_numpy(zero_copy_only=False)


def read_rows(shard, start=0, stop=None, columns=None):
    """{column: array} of rows [start, stop) of `shard` (all columns, or `columns`)."""
    stop = shard.rows if stop is None else stop
    kind = shard.kind
    if kind == ".npy":
        arr = np.load(shard.path, mmap_mode="r", allow_pickle=False)
        return {NUMPY_COLUMN: np.array(arr[start:stop])}
    if kind == ".npz":
        wanted = columns or shard.columns
        with np.load(shard.path, allow_pickle=False) as z:
            return {c: z[c][start:stop] for c in wanted}
    meta = _parquet_file(shard.path)
    groups, first, offset = [], None, 0
    for g in range(meta.num_row_groups):
        n = meta.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    wanted = list(columns or shard.columns)
    if not groups:
        return {c: np.zeros((0,)) for c in wanted}
    table = meta.read_row_groups(groups, columns=wanted).slice(start - first, stop - start)
    return {c: _arrow_to_numpy(table.column(c), c, shard.path) for c in wanted}


def pieces(shard, batch_size, workers):
    """[(start, stop)] row ranges of `shard` for the workers: whole multiples of
    `batch_size` (so onnxruntime sees the same batches as the local engine), about four
    per worker for an even spread, at most ~PIECE_ROWS rows each."""
    if not shard.splittable or shard.rows == 0:
        return [(0, shard.rows)]
    per_worker = -(-shard.rows // (4 * workers * batch_size))
    k = max(1, min(per_worker, PIECE_ROWS // batch_size))
    step = k * batch_size
    return [(a, min(a + step, shard.rows)) for a in range(0, shard.rows, step)]


# -- writing -----------------------------------------------------------------------------

def output_path(folder, shard, n_outputs):
    stem = os.path.splitext(os.path.basename(shard.path))[0]
    ext = ".npz" if shard.kind == ".npy" and n_outputs > 1 else shard.kind
    return os.path.join(folder, stem + ext)


def _arrow_column(arr):
    pa, _ = deps.parquet("writing .parquet shards")
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 1:
        return pa.array(arr)
    flat = pa.array(arr.reshape(-1))
    for size in reversed(arr.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


def write_shard(path, outputs):
    """Write {output name: array} to `path` (.npy, .npz or .parquet) atomically."""
    kind = _kind(path)
    with atomic_write(path, mode="wb") as f:
        if kind == ".npy":
            (arr,) = outputs.values()
            np.save(f, arr, allow_pickle=False)
        elif kind == ".npz":
            np.savez(f, **outputs)
        else:
            pa, pq = deps.parquet("writing .parquet shards")
            table = pa.table({name: _arrow_column(a) for name, a in outputs.items()})
            pq.write_table(table, f)


def is_finished(path, rows, names):
    """True when `path` is a complete output shard: `rows` rows of every output in `names`.
    (Outputs are written atomically, so a file that exists was written whole; the check
    also catches a folder left by another model or other inputs.)"""
    if not os.path.isfile(path):
        return False
    try:
        shard = describe(0, path)
    except (ModelLoadError, ShapeError, OSError):
        return False
    if shard.rows != rows:
        return False
    return _kind(path) == ".npy" or set(shard.columns) == set(names)

"""`modelkit predict MODEL --input X [--output Y]`: run a model on arrays from files or stdin,
or on a set of shard files into an output folder (`--engine local|ray`)."""

from __future__ import annotations

import os
import sys

from .arrays import check_input_path, check_output_path, read_inputs, write_outputs
from .commands import UsageError, register

EXAMPLE = """  modelkit predict model.onnx --input x.npy --output y.npy
  echo '{"instances": [[0.1, 0.2, 0.3, 0.4]]}' | modelkit predict model.onnx --input -
  modelkit predict model.onnx --input 'data/*.npy' --output preds/
  modelkit predict model.onnx --input data.parquet --output preds/ --engine ray --num-workers 4"""

DESCRIPTION = """inputs:  .npy (single-input models), .npz (arrays named after the inputs, or one per
         input in order), .json or '-' (JSON on stdin): a list, {"inputs": ...} or
         {"instances": [...]}
outputs: .npy (single-output models), .npz (by output name), .json or '-' (JSON on
         stdout, the default): {"outputs": {name: values}}
shards:  with a glob, a folder or .parquet files as --input, or a folder (DIR/) as
         --output, each input shard (.npy, .npz, .parquet) gives one output shard of the
         same name, rows and order in DIR (.npz for several outputs of a .npy shard;
         parquet: a column per output). Each shard is written atomically when done; run
         again to resume: finished shards are skipped. --engine ray spreads the rows over
         a Ray cluster's workers (pip install 'modelkit[ray]'); files must be readable
         by every node."""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="model file (.onnx, .h5, .hdf5, .keras)")
    p.add_argument("-i", "--input", required=True, metavar="X",
                   help="input file: x.npy, x.npz, x.json, or '-' for JSON on stdin; or shards: "
                        "'data/*.npy', data.parquet, a folder")
    p.add_argument("-o", "--output", default="-", metavar="Y",
                   help="output file: y.npy, y.npz, y.json, or '-' for JSON on stdout (default); "
                        "or a folder DIR/ for shards")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run (default: auto = CUDA when it works, else CPU)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="run in batches of N rows (default: all rows at once; 256 for shards)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="shards: this process (default) or a Ray cluster")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster: auto, ray://HOST:10001 or HOST:6379 (default: start a "
                        "local Ray)")
    p.add_argument("--num-workers", type=int, default=None, metavar="N",
                   help="Ray worker actors (default: one per CPU, or per GPU with --device cuda)")
    p.add_argument("--input-columns", default=None, metavar="COLS",
                   help="shards: comma-separated columns feeding the model (stacked into a "
                        "one-input model, else one per input in order; default: columns "
                        "named after the inputs, or the only column)")


def _is_folder(path):
    return path.endswith(("/", os.sep)) or os.path.isdir(path)


def _shard_mode(args):
    """True when the command reads shards into an output folder."""
    src = args.input
    many = (src != "-" and (any(c in src for c in "*?[") or os.path.isdir(src)
                            or src.lower().endswith(".parquet")))
    return many or (args.output != "-" and _is_folder(args.output))


def _check(args, shards):
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.num_workers is not None and args.num_workers < 1:
        raise UsageError(f"--num-workers must be a positive integer, got {args.num_workers}")
    if shards:
        if args.engine == "local" and (args.address or args.num_workers):
            raise UsageError("--address and --num-workers need --engine ray")
        if args.output == "-" or not _is_folder(args.output) and os.path.splitext(
                args.output)[1]:
            raise UsageError(f"--input {args.input!r} names shards, so --output must be a "
                             f"folder (e.g. preds/), got {args.output!r}")
        return
    if args.engine != "local" or args.address or args.num_workers or args.input_columns:
        raise UsageError("--engine ray, --address, --num-workers and --input-columns work on "
                         "shards: give --output a folder (e.g. preds/)")
    check_input_path(args.input)          # fail on a bad extension before loading the model
    check_output_path(args.output)


def _progress(total, skipped):
    if skipped:
        print(f"resuming: {skipped} of {total} shards already done", file=sys.stderr, flush=True)

    def show(report, shard, path):
        n = len(report.written) + len(report.skipped)
        rate = report.rows / report.seconds if report.seconds > 0 else 0.0
        print(f"[{n}/{total}] {shard.path}: {shard.rows} rows -> {path} "
              f"({rate:,.0f} rows/s)", file=sys.stderr, flush=True)
    return show


def _run_shards(args):
    from modelkit.distributed import predict_files
    from modelkit.distributed.shards import find_paths
    total = len(find_paths(args.input))
    state = {}

    def progress(report, shard, path):
        if "show" not in state:
            state["show"] = _progress(total, len(report.skipped))
        state["show"](report, shard, path)

    if args.engine == "ray" and not getattr(args, "debug", False):
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")    # our progress lines suffice
    columns = args.input_columns.split(",") if args.input_columns else None
    report = predict_files(args.model, args.input, args.output, engine=args.engine,
                           input_columns=columns, batch_size=args.batch_size or 256,
                           device=args.device, num_workers=args.num_workers,
                           address=args.address, progress=progress)
    if not report.written:
        print(f"nothing to do: all {total} output shards in {args.output} are complete",
              file=sys.stderr, flush=True)
    else:
        n = len(report.written)
        print(f"wrote {n} shard{'s' * (n != 1)} ({report.rows} rows) to {args.output} in "
              f"{report.seconds:.1f} s", file=sys.stderr, flush=True)
    return 0


def run(args):
    shards = _shard_mode(args)
    _check(args, shards)
    if shards:
        return _run_shards(args)
    from modelkit.runtime import InferenceSession
    sess = InferenceSession(args.model, device=args.device)
    feeds = read_inputs(args.input, sess.input_names)
    result = sess.predict(feeds, batch_size=args.batch_size)
    outs = result if isinstance(result, list) else [result]
    write_outputs(args.output, dict(zip(sess.output_names, outs)))
    return 0


register("predict", add_arguments, run, example=EXAMPLE, description=DESCRIPTION)

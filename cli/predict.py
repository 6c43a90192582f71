"""`modelkit predict MODEL --input X [--output Y]`: run a model on arrays from files or stdin."""

from __future__ import annotations

from .arrays import check_input_path, check_output_path, read_inputs, write_outputs
from .commands import register

EXAMPLE = """  modelkit predict model.onnx --input x.npy --output y.npy
  echo '{"instances": [[0.1, 0.2, 0.3, 0.4]]}' | modelkit predict model.onnx --input -"""

DESCRIPTION = """inputs:  .npy (single-input models), .npz (arrays named after the inputs, or one per
         input in order), .json or '-' (JSON on stdin): a list, {"inputs": ...} or
         {"instances": [...]}
outputs: .npy (single-output models), .npz (by output name), .json or '-' (JSON on
         stdout, the default): {"outputs": {name: values}}"""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="model file (.onnx, .h5, .hdf5, .keras)")
    p.add_argument("-i", "--input", required=True, metavar="X",
                   help="input file: x.npy, x.npz, x.json, or '-' for JSON on stdin")
    p.add_argument("-o", "--output", default="-", metavar="Y",
                   help="output file: y.npy, y.npz, y.json, or '-' for JSON on stdout (default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run (default: auto = CUDA when it works, else CPU)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="run in batches of N rows (default: all rows at once)")


def run(args):
    check_input_path(args.input)          # fail on a bad extension before loading the model
    check_output_path(args.output)
    if args.batch_size is not None and args.batch_size < 1:
        from .commands import UsageError
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}")
    from modelkit.runtime import InferenceSession
    sess = InferenceSession(args.model, device=args.device)
    feeds = read_inputs(args.input, sess.input_names)
    result = sess.predict(feeds, batch_size=args.batch_size)
    outs = result if isinstance(result, list) else [result]
    write_outputs(args.output, dict(zip(sess.output_names, outs)))
    return 0


register("predict", add_arguments, run, example=EXAMPLE, description=DESCRIPTION)

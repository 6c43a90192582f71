"""`modelkit` console script: argparse with lazily imported subcommands.

Errors print one line, ``modelkit: error: <message>``, to stderr and exit with status 2
(usage) or 1 (anything else); ``--debug`` (anywhere on the line) also prints the traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import commands

USAGE_EXIT = 2
ERROR_EXIT = 1

_DESCRIPTION = "modelkit: Keras-style models, Keras HDF5 and ONNX files, fast onnxruntime inference."
_EPILOG = """examples:
  modelkit train model.h5 --data train.npz --loss mse --optimizer adam --epochs 5 --out trained.h5
  modelkit convert model.h5 model.onnx
  modelkit predict model.onnx --input x.npy --output y.npy
  modelkit summary model.onnx
  modelkit bench model.onnx --batch-size 32
  modelkit serve model.onnx --port 8000
  modelkit plot model.h5 model.png

Run 'modelkit COMMAND --help' for a command's options and an example."""


class _UsageExit(Exception):
    def __init__(self, message, prog):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors reach `main` instead of printing usage and exiting."""

    def error(self, message):
        raise _UsageExit(message, self.prog)


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _selected_command(argv):
    """The subcommand named on the command line (first non-option token), or None."""
    known = set(commands.names())
    for tok in argv:
        if tok == "--":
            return None
        if tok.startswith("-"):
            continue
        return tok if tok in known else None
    return None


def build_parser(selected=None):
    """The full parser; only `selected`'s module is imported and its arguments added."""
    parser = _Parser(prog="modelkit", description=_DESCRIPTION, epilog=_EPILOG,
                     formatter_class=_formatter)
    from modelkit._version import __version__
    parser.add_argument("--version", action="version", version=f"modelkit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback when a command fails")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                parser_class=_Parser)
    for name in commands.names():
        help_ = commands.help_of(name)
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=_formatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print the full traceback when the command fails")
        if name == selected:
            cmd = commands.load(name)
            if cmd.description:
                p.description = f"{help_}\n\n{cmd.description}"
            if cmd.example:
                lines = [ln.strip() for ln in cmd.example.strip().splitlines()]
                p.epilog = "example:\n" + "\n".join(f"  {ln}" for ln in lines if ln)
            cmd.add_arguments(p)
            p.set_defaults(_command=cmd)
    return parser


def _one_line(exc):
    from modelkit.errors import ModelkitError
    msg = " ".join(str(exc).split())
    if isinstance(exc, (ModelkitError, OSError)):
        return msg or type(exc).__name__
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _fail(message, code):
    print(f"modelkit: error: {message}", file=sys.stderr)
    return code


def _run_quietly(cmd, args):
    """Run a command with Python warnings and onnxruntime's own log held back: when the
    command fails its one error line is all that is printed; when it succeeds the warnings
    follow as `modelkit: warning: ...` lines."""
    import warnings
    try:
        import onnxruntime
        onnxruntime.set_default_logger_severity(4)
    except Exception:   # noqa: BLE001 - onnxruntime missing or odd: nothing to silence
        pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        status = int(cmd.run(args) or 0)
    for w in caught:
        if not issubclass(w.category, DeprecationWarning):
            print(f"modelkit: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    return status


def main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
    try:
        parser = build_parser(_selected_command(argv))
        args = parser.parse_args(argv)
        cmd = getattr(args, "_command", None)
        if cmd is None:
            return _fail("no command given (run 'modelkit --help' to list them)", USAGE_EXIT)
        return _run_quietly(cmd, args)
    except _UsageExit as e:
        return _fail(f"{' '.join(str(e).split())} (see '{e.prog} --help')", USAGE_EXIT)
    except commands.UsageError as e:
        if debug:
            import traceback
            traceback.print_exc()
        return _fail(_one_line(e), USAGE_EXIT)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`modelkit predict ... | head`); say nothing more.
        import os
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return ERROR_EXIT
    except Exception as e:
        if debug:
            import traceback
            traceback.print_exc()
        return _fail(_one_line(e), ERROR_EXIT)


if __name__ == "__main__":   # python -m modelkit.cli.main
    sys.exit(main())

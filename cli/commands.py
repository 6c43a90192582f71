"""The registry of `modelkit` subcommands.

A command lives in its own module and registers itself when imported::

    # cli/quickstart.py
    from modelkit.cli.commands import register

    def add_arguments(parser):            # an argparse.ArgumentParser
        parser.add_argument("--epochs", type=int, default=1)

    def run(args):                        # the parsed argparse.Namespace; returns an exit code
        ...
        return 0

    register("quickstart", add_arguments, run,
             help="Train a small model end to end", example="modelkit quickstart --epochs 2")

`modelkit --help` must stay fast, so command modules are imported lazily: `COMMAND_MODULES`
maps each command name to its module and its one-line help, which is all `--help` needs.
Only the module of the command being run is imported. To add a command, add a line to
`COMMAND_MODULES` (or call `declare` before `main` runs) and call `register` in the module.

Raise `UsageError` from `run` for a bad combination of arguments (exit status 2); any
other `modelkit.errors.ModelkitError` (or OSError/ValueError) exits with status 1. Either
way `main` prints one line, `modelkit: error: <message>`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from modelkit.errors import ConfigError
from modelkit.registry import Registry

__all__ = ["Command", "COMMANDS", "COMMAND_MODULES", "UsageError", "CommandUnavailable",
           "register", "declare", "load", "names"]


class UsageError(ConfigError):
    """The command line is wrong (exit status 2)."""


class CommandUnavailable(ConfigError):
    """A declared command's module is not installed (yet)."""


@dataclass(frozen=True)
class Command:
    name: str
    add_arguments: Callable
    run: Callable
    help: str
    example: str = ""
    description: str = ""


# name -> Command, filled as command modules are imported.
COMMANDS = Registry("command")

# name -> (module, one-line help). The order here is the order of `modelkit --help`.
COMMAND_MODULES = {
    "train": ("modelkit.cli.train", "Train a model file on .npz arrays (checkpoints, resume, early stopping)"),
    "convert": ("modelkit.cli.convert", "Convert a model between .h5, .keras and .onnx (optionally quantized)"),
    "predict": ("modelkit.cli.predict", "Run a model on inputs from .npy/.npz/.json files or stdin"),
    "summary": ("modelkit.cli.summary", "Describe a model: inputs, outputs, layers or ops, parameters"),
    "bench": ("modelkit.cli.bench", "Measure inference latency and throughput"),
    "serve": ("modelkit.cli.serve", "Serve models over HTTP (KServe v2, TF Serving REST)"),
    "plot": ("modelkit.cli.plot", "Draw a model's graph (.h5/.keras/.onnx) as PNG or SVG"),
    "quickstart": ("modelkit.cli.quickstart", "Build, train, save and run a small model end to end"),
}


def declare(name, module, help):
    """Declare a lazily imported command (before `main` builds its parser)."""
    if name in COMMAND_MODULES:
        raise ConfigError(f"command {name!r} is declared twice")
    COMMAND_MODULES[name] = (module, help)


def register(name, add_arguments, run, help=None, example="", description=""):
    """Register a command's argument builder and runner; returns the Command.

    `help` defaults to the one-line help given in `COMMAND_MODULES`.
    """
    if help is None:
        help = COMMAND_MODULES.get(name, (None, ""))[1]
    cmd = Command(name, add_arguments, run, help, example, description)
    COMMANDS.register(name, cmd)
    return cmd


def names():
    """All command names: declared ones in order, then any registered only eagerly."""
    return list(COMMAND_MODULES) + [n for n in COMMANDS if n not in COMMAND_MODULES]


def help_of(name):
    if name in COMMAND_MODULES:
        return COMMAND_MODULES[name][1]
    return COMMANDS.get(name).help


def load(name):
    """The Command for `name`, importing its module if needed."""
    if name in COMMANDS:
        return COMMANDS.get(name)
    if name not in COMMAND_MODULES:
        return COMMANDS.get(name)   # raises, listing the known commands
    module = COMMAND_MODULES[name][0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise CommandUnavailable(f"the '{name}' command is not available in this "
                                     f"installation yet (module {module} is missing)") from None
        raise
    return COMMANDS.get(name, context=f"module {module} did not register it")

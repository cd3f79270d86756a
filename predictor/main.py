"""The ``flopcast`` command: composes each stage's subcommands; user errors become one line and exit code 2.

It lives in ``predictor`` because the predictor is the top of the dependency chain (it imports
features and calibration), so the entry can compose every stage without an upward import.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1

STAGE_COMMANDS = (("flopcast.calibration.cli", "add_calibrate_parser", ("calibrate", "hardware")),
                  ("flopcast.predictor.cli", "add_predict_parser", ("predict", "fit")),
                  ("flopcast.predictor.card", "add_card_parser", ("card",)),
                  ("flopcast.predictor.suggest", "add_suggest_parser", ("suggest",)),
                  ("flopcast.predictor.report", "add_report_parser", ("report",)))
"""The stages' modules that register subcommands, their registering function and the commands they add."""

OPTIONAL_EXTRAS = {"tensorflow": "tf", "keras": "tf", "tf_keras": "tf", "onnx": "onnx", "matplotlib": "plots"}
"""Modules of optional dependencies and the ``flopcast[extra]`` that installs them."""

USER_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
"""File-system errors on paths the user named: one line, exit 2."""


def install_hint(e: ModuleNotFoundError) -> str:
    """How to install the module whose import failed: its ``flopcast[extra]``, else flopcast's own dependencies."""
    root = (e.name or "").split(".")[0]
    extra = OPTIONAL_EXTRAS.get(root)
    if extra:
        return f"{root} is not installed: pip install 'flopcast[{extra}]'"
    return f"{root or e} is not installed, but flopcast depends on it: reinstall flopcast (pip install flopcast)"


def is_user_error(e: BaseException) -> bool:
    """Whether ``e`` is the user's to fix.

    User errors are the error classes flopcast defines (each a ``ValueError`` carrying one actionable line: a
    bad option, target, file or device) and file-system errors on a path. A bare ``ValueError``,
    ``KeyError`` or ``RuntimeError`` from flopcast's code or a library is a bug.
    """
    own = isinstance(e, ValueError) and type(e).__module__.startswith("flopcast.")
    return own or isinstance(e, USER_OS_ERRORS)


def _unavailable(sub: argparse._SubParsersAction, command: str, error: ModuleNotFoundError) -> None:
    """A subcommand whose stage cannot be imported: it parses anything and reports the missing module."""
    # no prefix character: every argument (--quick included) is taken as one of the rest
    p = sub.add_parser(command, help=f"(unavailable: {install_hint(error)})", add_help=False, prefix_chars="\0")
    p.add_argument("rest", nargs="*")

    def fail(_: argparse.Namespace) -> int:
        raise error

    p.set_defaults(func=fail)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every stage's subcommands (a stage that cannot be imported says why when used)."""
    from flopcast.features.cli import add_analyze_parser

    parser = argparse.ArgumentParser(
        prog="flopcast",
        description="Predict what a training or inference step costs (FLOPs, memory, time, energy, CO2) "
                    "from model code, before the run.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also accepted after the subcommand)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_analyze_parser(sub)
    for module, fn, commands in STAGE_COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            for command in commands:
                _unavailable(sub, command, e)
            continue
        getattr(mod, fn)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flopcast`` command line; returns the process exit code.

    User errors (:func:`is_user_error`) print one line and return 2; a missing module names what to install
    (exit 2); anything else is an internal error: one line saying so and how to see the traceback (exit 1).
    ``--debug``, before or after the subcommand, re-raises instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("flopcast: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        if debug:
            raise
        print(f"flopcast: error: {install_hint(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:
        if debug:
            raise
        if is_user_error(e):
            print(f"flopcast: error: {_one_line(e)}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"flopcast: internal error: {type(e).__name__}: {_one_line(e)} (a bug in flopcast; rerun with "
              "--debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


FAST_EXIT_COMMANDS = ("analyze", "predict", "card", "suggest", "report")
"""Commands whose process ends without the interpreter's teardown (see :func:`entry`)."""


def entry() -> None:
    """The ``flopcast`` executable: :func:`main`, then exit with its code.

    After ``analyze``, ``predict`` and the commands built on it (``card``, ``suggest``, ``report``: every file
    they write is closed before they return) the process ends at once (``os._exit``, output flushed first):
    tearing down torch, transformers and the fake-tensor state adds 1-2 s to a command of a few seconds,
    and those commands leave nothing that needs exit handlers. Other commands (``calibrate``, with
    MLflow and CodeCarbon) exit normally.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if next((a for a in argv if not a.startswith("-")), None) in FAST_EXIT_COMMANDS:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe downstream: nothing left to write to
            pass
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()

"""The ``flopcast`` command: composes each stage's subcommands; errors become one line and exit code 2.

It lives in ``predictor`` because the predictor is the top of the dependency chain (it imports
features and calibration), so the entry can compose every stage without an upward import.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every stage's subcommands."""
    from flopcast.features.cli import add_analyze_parser

    parser = argparse.ArgumentParser(
        prog="flopcast",
        description="Predict what a training or inference step costs (FLOPs, memory, time, energy, CO2) "
                    "from model code, before the run.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_analyze_parser(sub)
    for module, fn in (("flopcast.calibration.cli", "add_calibrate_parser"),
                       ("flopcast.predictor.cli", "add_predict_parser")):
        try:
            mod = __import__(module, fromlist=[fn])
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        getattr(mod, fn)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flopcast`` command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("flopcast: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as e:
        if debug:
            raise
        print(f"flopcast: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:
        if debug:
            raise
        print(f"flopcast: internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


FAST_EXIT_COMMANDS = ("analyze", "predict")
"""Commands whose process ends without the interpreter's teardown (see :func:`entry`)."""


def entry() -> None:
    """The ``flopcast`` executable: :func:`main`, then exit with its code.

    After ``analyze`` and ``predict`` the process ends at once (``os._exit``, output flushed first):
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

"""Errors the user can act on: each carries one clear line; the CLI prints it and exits with code 2."""

from __future__ import annotations


class AnalysisError(ValueError):
    """Base of the analyser's user-facing errors."""


class TargetError(AnalysisError):
    """The target cannot be loaded: missing file, no such callable, not a module, unknown hf type."""


class OptionError(AnalysisError):
    """Command-line options that are out of range or need another option."""


class OutputError(AnalysisError):
    """An output cannot be written as asked (a file type the writer does not know)."""


class TraceError(AnalysisError):
    """The model cannot be traced with shape-only tensors."""


class DataDependentError(TraceError):
    """The model needs tensor values (``.item()``, ``nonzero``, Python branching on a tensor)."""


class ModelRaisedError(TraceError):
    """The model's own code raised an exception while being traced."""


class TooLargeError(TraceError):
    """A tensor of the step would exceed the size limit (1 PB)."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (empty when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""

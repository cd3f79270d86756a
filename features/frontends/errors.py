"""Errors of the NumPy, TensorFlow and ONNX front ends: one clear line each (the CLI exits with 2)."""

from __future__ import annotations

from flopcast.features.errors import AnalysisError


class FrontendError(AnalysisError):
    """A front end cannot analyse the target; the message is one line the user can act on."""


class ValueDependentError(FrontendError):
    """Traced code needs array values (a computed mask, ``if arr.sum() > 0``, ``float(x)``)."""

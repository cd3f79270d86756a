"""The installed flopcast version, readable without importing the tracer (and torch)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def flopcast_version() -> str:
    """Installed flopcast version (``0+unknown`` when running from a bare checkout)."""
    try:
        return version("flopcast")
    except PackageNotFoundError:
        return "0+unknown"

"""Writing a command's output files: a path that cannot be written is one clear line (exit 2), not a traceback."""

from __future__ import annotations

import os
from pathlib import Path


class OutputPathError(ValueError):
    """An output path that cannot be written (missing folder, a folder in the way, no permission)."""


def writable(path: Path, what: str) -> Path:
    """``path`` after checking that a file can be created there, before any work is done.

    Args:
        path: the output file.
        what: what will be written, for the message (``card``, ``#SBATCH script``).

    Raises:
        OutputPathError: the parent folder is missing or not writable, or ``path`` is a folder.
    """
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputPathError(f"cannot write the {what} to {path}: it is a folder")
    if not parent.is_dir():
        raise OutputPathError(f"cannot write the {what} to {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputPathError(f"cannot write the {what} to {path}: permission denied")
    return path


def write_text(path: Path, text: str, what: str) -> Path:
    """Write ``text`` to ``path`` (see :func:`writable` for the errors)."""
    writable(path, what).write_text(text)
    return path


def writable_folder(folder: Path, what: str) -> Path:
    """``folder``, created if needed (parents too).

    Raises:
        OutputPathError: it cannot be created (a file in the way, no permission).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputPathError(f"cannot write the {what} to {folder}: a file is in the way") from None
    except OSError as e:
        raise OutputPathError(f"cannot write the {what} to {folder}: {e.strerror}") from None
    return folder

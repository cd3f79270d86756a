"""The end of ``flopcast calibrate``: file the campaign in the per-user store, say how ``predict`` uses it."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

from flopcast.calibration.identity import same_device
from flopcast.calibration.probe import probe_local
from flopcast.calibration.user_store import CalibrationStoreError, StoredCalibration, save_campaign

EXAMPLE_ARGS = "--batch-size 512"
"""Arguments of the bundled example model in the printed command."""


def example_target() -> str:
    """The bundled example model as a ``file.py:build`` target, relative to the working directory when under it."""
    from flopcast import features

    path = Path(features.__file__).resolve().parent / "examples" / "tabular_mlp.py"
    with contextlib.suppress(ValueError):  # not under the working directory: the absolute path
        path = path.relative_to(Path.cwd().resolve())
    return f"{path}:build"


def predict_command(entry: StoredCalibration, local_is_it: bool) -> str:
    """The ``flopcast predict`` command line that uses ``entry`` (on the bundled example model).

    Args:
        entry: the filed campaign.
        local_is_it: whether ``--hardware local`` resolves to the campaign's device (on a GPU machine
            ``local`` is the first GPU, so a CPU campaign is named explicitly).
    """
    hardware = "--hardware local" if local_is_it else (
        f"--hardware {shlex.quote(entry.name)} --calibration {shlex.quote(str(entry.path))}")
    return f"flopcast predict {shlex.quote(example_target())} {EXAMPLE_ARGS} {hardware}"


def file_campaign(out_dir: Path, home: Path | None = None) -> str:
    """File a finished campaign in the store; the lines that say where it went and how to predict with it.

    A campaign that cannot be filed (nothing trusted, an unwritable home) is said in one line, with the
    ``--calibration`` command that uses the folder as it is.

    Args:
        out_dir: the campaign folder.
        home: the store's home (``None``: ``$FLOPCAST_HOME`` or the user data dir).
    """
    try:
        entry = save_campaign(out_dir, home)
    except CalibrationStoreError as e:
        command = (f"flopcast predict {shlex.quote(example_target())} {EXAMPLE_ARGS} --hardware local "
                   f"--calibration {shlex.quote(str(out_dir))}")
        return f"not filed as this machine's calibration: {e}\npredict with it: {command}"
    local_is_it = same_device(probe_local()[0], entry.name, entry.descriptor)
    return (f"filed as this machine's calibration in {entry.path}\n"
            f"predict with it: {predict_command(entry, local_is_it)}")

"""Suite-wide fixtures: no test reads or writes the real per-user calibration store."""

from __future__ import annotations

import pytest

from flopcast.calibration.user_store import HOME_ENV


@pytest.fixture(autouse=True, scope="session")
def _private_flopcast_home(tmp_path_factory):
    """``$FLOPCAST_HOME`` in a temporary folder for the whole session (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(HOME_ENV, str(tmp_path_factory.mktemp("flopcast-home")))
        yield

"""The machine's load, printed beside timings measured on a shared VM."""

from __future__ import annotations

import os


def load() -> str:
    """The 1-minute load average and the core count."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"

"""The shape cells of op tables: ``input_shapes`` / ``output_shapes`` hold JSON lists of shapes."""

from __future__ import annotations

import json
from typing import Any


def parse_shapes(text: str | None) -> list[Any]:
    """The shapes of one cell, as stored (an empty list for an empty or unreadable cell)."""
    try:
        return json.loads(text) if text else []
    except (TypeError, json.JSONDecodeError):
        return []

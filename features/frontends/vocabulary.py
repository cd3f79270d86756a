"""Import the front ends' own cost vocabulary (operators with no ATen counterpart) into the registry."""

from __future__ import annotations

from flopcast.features.frontends import numpy_formulas, tf_formulas

__all__ = ["numpy_formulas", "tf_formulas"]

from __future__ import annotations

import pytest
from rich.console import Console

from flopcast.calibration.catalog import load_catalog
from flopcast.calibration.hardware_cli import CATALOG_DROP_ORDER, hardware_table


def rendered(width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(hardware_table(list(load_catalog().values()), "catalog", console))
    return console.export_text()


@pytest.mark.parametrize("width", [40, 50, 60, 72, 80, 100, 120, 160, 220])
def test_names_are_never_cut_at_any_width(width):
    text = rendered(width)
    lines = text.splitlines()
    assert "…" not in text and max(len(line) for line in lines) <= width
    for d in load_catalog().values():
        assert any(f"│ {d.name} " in line for line in lines), d.name  # the whole name on one line of its cell


def test_the_widest_layout_keeps_every_column_and_the_vendor_name_beside_the_name():
    text = rendered(220)
    assert "vendor name" in text and "NVIDIA H100 80GB HBM3" in text and "not shown" not in text
    assert all(h.split()[0] in text for h in CATALOG_DROP_ORDER)


def test_at_80_columns_the_vendor_name_moves_under_the_name_and_dropped_columns_are_named():
    text = rendered(80)
    assert "vendor name" not in text and "NVIDIA H100 80GB" in text
    if "not shown at this width" in text:
        shown = text[text.index("not shown at this width"):]
        assert "fp8 TF/s" in shown and "hardware show NAME" in " ".join(shown.split())

"""shape_cells: reading the shape cells of op tables."""

from __future__ import annotations

from flopcast.predictor.shape_cells import parse_shapes


def test_a_cell_reads_as_its_list_of_shapes_and_an_unreadable_one_as_none():
    assert parse_shapes("[[8, 512], [512]]") == [[8, 512], [512]]
    assert parse_shapes("[]") == []
    assert parse_shapes("") == []
    assert parse_shapes("not json") == []
    assert parse_shapes(None) == []  # a missing cell

"""Rich tables that never cut a name: the first layout whose narrowest rendering fits the terminal.

Rich shrinks a table wider than the terminal by taking width from its widest columns, below what their
words need, and cutting what no longer fits with an ellipsis (``h100-…``). Here every column's width is
chosen before rich sees it: never below its longest word (a name, a number), wider where there is room.
When even that does not fit, a second column (the vendor name) moves under the name in the same cell,
then the least useful columns are left out one at a time, and the caption says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

T = TypeVar("T")
UNBOUNDED_WIDTH = 100_000
"""Width a cell is measured at, characters: wider than any terminal (a measurement is capped at its width)."""
PADDING = 2
"""Characters of padding per column (one each side, rich's default)."""


@dataclass(frozen=True)
class Column(Generic[T]):
    """One column: its header and how a row's item becomes its cell text.

    Attributes:
        header: column title (wraps at spaces when narrow).
        cell: the text of an item's cell (rich markup).
        numeric: right-justified.
    """

    header: str
    cell: Callable[[T], str]
    numeric: bool = False


@dataclass(frozen=True)
class Layout:
    """One way to show the rows: the cell texts by column, before widths are chosen.

    Attributes:
        title: table title.
        caption: table caption (``None``: none).
        headers: one per column.
        right: whether each column is right-justified.
        rows: cell texts, one list per row.
    """

    title: str
    caption: str | None
    headers: tuple[str, ...]
    right: tuple[bool, ...]
    rows: tuple[tuple[str, ...], ...]

    def ranges(self, console: Console) -> list[tuple[int, int]]:
        """Per column, the narrowest width that cuts no word and the width of its longest line (padding included)."""
        unbounded = console.options.update_width(UNBOUNDED_WIDTH)
        out = []
        for i, header in enumerate(self.headers):
            texts = [Text.from_markup(header), *(Text.from_markup(r[i]) for r in self.rows)]
            m = [Measurement.get(console, unbounded, t) for t in texts]
            out.append((max(x.minimum for x in m) + PADDING, max(x.maximum for x in m) + PADDING))
        return out

    def min_width(self, console: Console) -> int:
        """Narrowest rendering without a cut word, borders included, characters."""
        return sum(lo for lo, _ in self.ranges(console)) + len(self.headers) + 1

    def table(self, console: Console) -> Table:
        """The rich table, its column widths chosen here.

        Each column is as wide as its longest line or, where the terminal is narrower, as wide as can be
        shared out with no column below its longest word (the widest columns give first, as rich does).
        """
        ranges = self.ranges(console)
        widths = [hi for _, hi in ranges]
        for _ in range(sum(widths) + len(widths) + 1 - console.width):  # one character at a time
            slack = [i for i, w in enumerate(widths) if w > ranges[i][0]]
            if not slack:
                break
            widths[max(slack, key=lambda i: widths[i])] -= 1  # from the widest column that can give
        table = Table(title=self.title, caption=self.caption)
        for header, right, width in zip(self.headers, self.right, widths, strict=True):
            table.add_column(header, justify="right" if right else "left", width=max(width - PADDING, 1),
                             overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        return table


def layout(title: str, items: Sequence[T], columns: Sequence[Column[T]], under_name: Column[T] | None = None,
           left_out: Sequence[str] = ()) -> Layout:
    """One layout: ``columns`` (the first is the name), ``under_name``'s text as a second line of each name.

    Args:
        title: the table title.
        items: one row each.
        columns: the columns shown.
        under_name: a column shown inside the name cell instead of its own (``None``: none).
        left_out: headers of the columns not shown, said in the caption.
    """
    caption = (f"not shown at this width: {', '.join(left_out)} (`flopcast hardware show NAME` has every field)"
               if left_out else None)
    rows = []
    for x in items:
        cells = [c.cell(x) for c in columns]
        if under_name is not None and under_name.cell(x):
            cells[0] = f"{cells[0]}\n[dim]{under_name.cell(x)}[/dim]"
        rows.append(tuple(cells))
    return Layout(title, caption, tuple(c.header for c in columns), tuple(c.numeric for c in columns), tuple(rows))


def layouts(title: str, items: Sequence[T], columns: Sequence[Column[T]], under_name: str,
            drop_order: Sequence[str]) -> Iterator[Layout]:
    """Layouts from the widest to the narrowest.

    All columns; then ``under_name`` inside the name cell; then the columns of ``drop_order`` left out one
    by one.
    """
    yield layout(title, items, columns)
    moved = next(c for c in columns if c.header == under_name)
    kept = [c for c in columns if c is not moved]
    for n in range(len(drop_order) + 1):
        gone = set(drop_order[:n])
        yield layout(title, items, [c for c in kept if c.header not in gone], moved, drop_order[:n])


def fitted(console: Console, candidates: Iterator[Layout]) -> Table:
    """The first candidate whose narrowest rendering fits ``console``'s width (else the narrowest one), as a table.

    Raises:
        ValueError: when there is no candidate.
    """
    chosen = None
    for chosen in candidates:
        if chosen.min_width(console) <= console.width:
            break
    if chosen is None:
        raise ValueError("no table layout to choose from")
    return chosen.table(console)

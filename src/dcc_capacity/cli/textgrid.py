"""Plain-text grids for the terminal tables of ``plan`` (Tables A5-A7, the mix, CP mode): one look for all."""

from __future__ import annotations

__all__ = ["grid", "per_day", "per_second"]


def per_day(value: float) -> str:
    return f"{value:,.0f}"


def per_second(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:,.2f}"


def grid(title: str, first: str, rows: list[tuple[str, list[str]]], columns: list[tuple[str, str]]) -> list[str]:
    """A text grid with two heading lines per column (what, unit); labels left, numbers right."""
    widths = [max(len(first), *(len(label) for label, _ in rows))]
    for i, (top, unit) in enumerate(columns):
        widths.append(max(len(top), len(unit), *(len(cells[i]) for _, cells in rows)))

    def line(label: str, cells: list[str]) -> str:
        text = label.ljust(widths[0]) + "".join("  " + c.rjust(w) for c, w in zip(cells, widths[1:], strict=True))
        return text.rstrip()

    head = [line("", [top for top, _ in columns]), line(first, [unit for _, unit in columns])]
    rule = "-" * max(len(h) for h in head)
    return [title, "", *head, rule, *(line(label, cells) for label, cells in rows), ""]

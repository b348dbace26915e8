"""The one markdown renderer of the report: a header and rows of texts become a pipe table, and values become texts
the same way in every table."""

from __future__ import annotations

from collections.abc import Sequence

from .cells import MISSING, format_number


def value_text(value: float | str | None) -> str:
    """A table entry: the number, "failed", or — for a cell that did not run."""
    if value is None:
        return MISSING
    return value if isinstance(value, str) else format_number(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a pipe table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


__all__ = ["markdown_table", "value_text"]

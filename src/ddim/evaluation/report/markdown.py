"""The one markdown renderer of the report: a header and rows of texts become a pipe table, and values become texts
the same way in every table."""

from __future__ import annotations

from collections.abc import Sequence

from .cells import MISSING, Cell, cell_value, format_number


def value_text(value: float | str | None) -> str:
    """A table entry: the number, "failed", or — for a cell that did not run."""
    if value is None:
        return MISSING
    return value if isinstance(value, str) else format_number(value)


def spread_text(x: float, like: float) -> str:
    """An interval bound or half-width with the decimals its value `like` gets (format_number): two where |like| ≥ 1,
    else three significant digits."""
    return f"{x:.2f}" if abs(like) >= 1 else f"{x:.3g}"


def entry_text(cell: Cell | None) -> str:
    """A cell's table entry with its error bar: "13.45 ± 0.61 (4 seeds)" over seeds (Student t, 95 %), "13.45 [12.90,
    14.02]" from one seed's bootstrap (95 %), and "; ∞ 12.80" where FD∞ was extrapolated."""
    value = cell_value(cell) if cell else None
    text = value_text(value)
    if not isinstance(value, float):
        return text
    failed = len(cell.get("failed_seeds") or [])
    ci = cell.get("value_ci")
    if cell.get("num_seeds", 1) > 1:
        text += f" ± {spread_text(float(cell['value_half_width']), value)} ({cell['num_seeds']} seeds"
        text += f", {failed} failed)" if failed else ")"
    else:
        if ci:
            text += f" [{spread_text(float(ci[0]), value)}, {spread_text(float(ci[1]), value)}]"
        if failed:
            text += f" (1 seed, {failed} failed)"
    if cell.get("value_infinity") is not None:
        text += f"; ∞ {format_number(float(cell['value_infinity']))}"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a pipe table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


__all__ = ["entry_text", "markdown_table", "spread_text", "value_text"]

"""results.md's table of the metrics beside the Fréchet distance (fid.metrics: kid, isc, prc), one row per cell, and
the names those metrics go by."""

from __future__ import annotations

from collections.abc import Sequence

from .cells import Cell, cell_method, eta_label, eta_sort_key, format_number, is_finished, normalize_eta
from .markdown import markdown_table
from .replicates import seeds_in

# metrics.json fields beside value, in results.csv's order
OTHER_FIELDS = ["kid_mean", "kid_std", "isc_mean", "isc_std", "precision", "recall"]


def score_name(cells: Sequence[Cell]) -> str:
    """The Inception Score on Inception's logits (FID cells); the same formula on the digits classifier's 10 logits
    is that classifier's score, at most 10."""
    return "IS" if any(c.get("metric") == "fid" for c in cells) else "IS (digits classifier, ≤ 10)"


def _mean_std(cell: Cell, name: str) -> str:
    mean, std = cell.get(f"{name}_mean"), cell.get(f"{name}_std")
    if mean is None:
        return "—"
    return format_number(float(mean)) + (f" ± {format_number(float(std))}" if std is not None else "")


def format_other_metrics(cells: Sequence[Cell]) -> str:
    """The table, or "" when no cell has the Inception Score or precision/recall (KID alone stays in results.csv)."""
    chosen = [c for c in cells if is_finished(c) and (c.get("isc_mean") is not None or c.get("precision") is not None)]
    if not chosen:
        return ""
    chosen.sort(key=lambda c: (cell_method(c), c.get("skip") or "", int(c.get("steps") or 0),
                               eta_sort_key(normalize_eta(c.get("eta", 0.0))), c.get("seed") or 0))
    by_seed = len(seeds_in(chosen)) > 1
    kid = any(c.get("kid_mean") is not None for c in chosen)
    header = ["S", "sampler", *(["seed"] if by_seed else []), *(["KID"] if kid else []),
              f"{score_name(chosen)} (mean ± std over splits)", "precision", "recall"]
    rows = []
    for c in chosen:
        method = cell_method(c)
        sampler = eta_label(normalize_eta(c["eta"])) if method == "ddim" else method
        rows.append([str(c.get("steps")), sampler, *([str(c.get("seed"))] if by_seed else []),
                     *([_mean_std(c, "kid")] if kid else []), _mean_std(c, "isc"),
                     *("—" if c.get(k) is None else f"{float(c[k]):.3f}" for k in ("precision", "recall"))])
    lines = ["## KID, Inception Score, precision and recall per cell", "", *markdown_table(header, rows), "",
             "Precision and recall: Kynkäänniemi et al. (2019), k-NN balls (fid.prc_neighborhood) on the same features "
             "as the Fréchet distance, the larger set subsampled to the smaller's size. KID: mean ± std over subsets."]
    return "\n".join(lines) + "\n"


__all__ = ["OTHER_FIELDS", "format_other_metrics", "score_name"]

"""python -m ddim.evaluation.export_reference SOURCE OUT.npz: reference statistics as pytorch-fid's and EDM's mu/sigma
file (float64), for scoring our samples with their tools or theirs with fid.reference=OUT.npz.

SOURCE is one of our reference caches (<cache>/reference_stats/*.npz; a cell's metrics.json names its file under
"reference_stats"), that metrics.json itself, or any file fid.reference reads (metrics/reference_files.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ddim.errors import InputError


def reference_file(source: Path) -> Path:
    """The .npz SOURCE names: itself, or the reference_stats a cell's metrics.json records."""
    if source.suffix != ".json":
        return source
    try:
        path = json.loads(source.read_text()).get("reference_stats")
    except (OSError, json.JSONDecodeError, AttributeError) as error:
        raise InputError(f"{source}: not a readable metrics.json ({type(error).__name__}: {error})") from None
    if not path:
        raise InputError(f"{source} names no reference_stats file (a cell scored before they were recorded)")
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddim.evaluation.export_reference",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a reference .npz (ours or another tool's) or a cell's metrics.json")
    parser.add_argument("out", type=Path, help="where to write mu and sigma (.npz)")
    args = parser.parse_args(argv)

    from .metrics.reference_files import export_reference, read_reference

    try:
        stats, found = read_reference(reference_file(args.source), what="SOURCE")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = export_reference(stats, args.out)
    count = f" of {stats.num_samples:,} images" if stats.num_samples else ""
    print(f"wrote {out}: mu ({stats.dim},) and sigma ({stats.dim}, {stats.dim}){count}, from {found} {stats.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

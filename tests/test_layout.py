"""The package layout: imports run one way (core ← models/data ← evaluation ← training), and modules stay short.

Imports are read with `ast`, not by importing, so a lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "ddim"
MAX_LINES = 300
# a module may be longer if its docstring says why, in a sentence starting with these words
LONG_MODULE_MARK = "over 300 lines"

# importer package → the project packages it must never import (prefixes of module names)
FORBIDDEN_PROJECT_IMPORTS: dict[str, tuple[str, ...]] = {
    "ddim.diffusion": ("ddim.models", "ddim.data", "ddim.training", "ddim.evaluation", "ddim.utils", "ddim.convert"),
    "ddim.models": ("ddim.training", "ddim.evaluation"),
    "ddim.data": ("ddim.training", "ddim.evaluation"),
    "ddim.evaluation": ("ddim.training",),
}
# the core is plain torch on tensors (GUIDE: no Lightning, Hydra, wandb or torchvision there)
FORBIDDEN_LIBRARIES: dict[str, tuple[str, ...]] = {
    "ddim.diffusion": ("lightning", "pytorch_lightning", "hydra", "omegaconf", "wandb", "torchvision"),
}


def module_name(path: Path, src: Path) -> str:
    """The dotted name of a source file: a package's __init__.py is the package itself."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, src: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved; `from x import y` yields x and x.y,
    since y may be a submodule."""
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def import_violations(src: Path, package: str = PACKAGE) -> list[str]:
    """One line per import that runs against FORBIDDEN_PROJECT_IMPORTS or FORBIDDEN_LIBRARIES."""
    # keyed by (file, line, rule): `from x import y` yields x and x.y, and should be reported once
    problems: dict[tuple[str, int, str], str] = {}
    for path in sorted((src / package).rglob("*.py")):
        importer = module_name(path, src)
        rules = [(prefix, banned) for prefix, banned in FORBIDDEN_PROJECT_IMPORTS.items() if _within(importer, prefix)]
        rules += [(prefix, banned) for prefix, banned in FORBIDDEN_LIBRARIES.items() if _within(importer, prefix)]
        where = str(path.relative_to(src))
        for line, target in imported_modules(path, src):
            for prefix, banned in rules:
                for forbidden in banned:
                    if _within(target, forbidden) and not _within(target, prefix):
                        problems.setdefault((where, line, forbidden), f"{where}:{line}: {importer} imports {target} "
                                                                      f"({prefix} must not import {forbidden})")
    return [problems[key] for key in sorted(problems)]


def long_modules(src: Path, package: str = PACKAGE) -> list[str]:
    """Modules over MAX_LINES whose docstring does not say why."""
    problems = []
    for path in sorted((src / package).rglob("*.py")):
        text = path.read_text()
        count = len(text.splitlines())
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if count > MAX_LINES and LONG_MODULE_MARK not in docstring.lower():
            problems.append(f"{path.relative_to(src)}: {count} lines; split it, or say why in its docstring "
                            f"(a sentence starting '{LONG_MODULE_MARK.capitalize()}: ...')")
    return problems


def test_imports_run_one_way():
    assert import_violations(SRC) == []


def test_modules_stay_short_or_say_why():
    assert long_modules(SRC) == []


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("module, source", [
    ("ddim/evaluation/cell.py", "from ddim.training.module import DiffusionModule\n"),
    ("ddim/evaluation/cell.py", "from ..training import module\n"),
    ("ddim/evaluation/cell.py", "def f():\n    import ddim.training\n"),
    ("ddim/evaluation/__init__.py", "from ..training import DiffusionModule\n"),
    ("ddim/evaluation/__init__.py", "from ddim import training\n"),
    ("ddim/models/checkpoints/ours.py", "from ...evaluation import cell\n"),
    ("ddim/data/datasets.py", "from ddim.training import train\n"),
    ("ddim/diffusion/sampling.py", "from ..utils import atomic_path\n"),
    ("ddim/diffusion/sampling.py", "import torchvision.utils\n"),
])
def test_a_wrong_import_is_caught(tmp_path, module, source):
    _write(tmp_path, module, source)
    _write(tmp_path, "ddim/diffusion/schedule.py", "from .trajectory import make_timesteps\nimport torch\n")
    _write(tmp_path, "ddim/training/module.py", "from ddim.evaluation.generate import generate\n")
    problems = import_violations(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(module), problems


def test_a_long_module_needs_a_reason(tmp_path):
    body = "x = 1\n" * (MAX_LINES + 1)
    _write(tmp_path, "ddim/long.py", '"""Long."""\n' + body)
    _write(tmp_path, "ddim/explained.py", '"""Long.\n\nOver 300 lines: one table.\n"""\n' + body)
    assert [re.sub(r":.*", "", p) for p in long_modules(tmp_path)] == ["ddim/long.py"]

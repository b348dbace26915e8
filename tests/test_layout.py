"""The package layout: imports run one way (core ← models, data ← sampling ← training | evaluation), no module
imports itself back through others, and modules stay short.

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

# importer package → the only other project packages it may import (the longest matching prefix decides).
# ddim.errors is the one leaf every layer but the pure core may import.
ALLOWED_PROJECT_IMPORTS: dict[str, tuple[str, ...]] = {
    "ddim.diffusion": (),
    "ddim.errors": (),
    "ddim.utils": ("ddim.errors",),
    "ddim.models": ("ddim.errors",),
    "ddim.data": ("ddim.errors",),
    "ddim.sampling": ("ddim.diffusion", "ddim.models", "ddim.utils", "ddim.errors"),
    "ddim.training": ("ddim.diffusion", "ddim.models", "ddim.data", "ddim.sampling", "ddim.utils", "ddim.errors"),
    "ddim.evaluation": ("ddim.diffusion", "ddim.models", "ddim.data", "ddim.sampling", "ddim.utils", "ddim.errors"),
    # the report is plain functions over metrics.json records; metrics know features, not the pipeline
    "ddim.evaluation.report": ("ddim.diffusion", "ddim.utils", "ddim.errors"),
    "ddim.evaluation.metrics": ("ddim.data", "ddim.sampling", "ddim.utils", "ddim.errors"),
    "ddim.convert": ("ddim.models", "ddim.utils", "ddim.errors"),
    # an entry point like evaluate.py, on the sampling layer only: model in, trajectory file out
    "ddim.trajectory_search": ("ddim.diffusion", "ddim.models", "ddim.sampling", "ddim.errors"),
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


def _rule(importer: str) -> tuple[str, tuple[str, ...]] | None:
    matches = [prefix for prefix in ALLOWED_PROJECT_IMPORTS if _within(importer, prefix)]
    if not matches:
        return None
    prefix = max(matches, key=len)
    return prefix, ALLOWED_PROJECT_IMPORTS[prefix]


def import_violations(src: Path, package: str = PACKAGE) -> list[str]:
    """One line per import that runs against ALLOWED_PROJECT_IMPORTS or FORBIDDEN_LIBRARIES."""
    # keyed by (file, line, what): `from x import y` yields x and x.y, and should be reported once
    problems: dict[tuple[str, int, str], str] = {}
    for path in sorted((src / package).rglob("*.py")):
        importer = module_name(path, src)
        where = str(path.relative_to(src))
        rule = _rule(importer)
        libraries = [banned for prefix, banned in FORBIDDEN_LIBRARIES.items() if _within(importer, prefix)]
        for line, target in imported_modules(path, src):
            if rule and _within(target, package) and target != package:
                prefix, allowed = rule
                top = ".".join(target.split(".")[:2])
                if not _within(target, prefix) and not any(_within(target, a) for a in allowed):
                    problems.setdefault((where, line, top), f"{where}:{line}: {importer} imports {target} ({prefix} "
                                                            f"may import only {', '.join(allowed) or 'itself'})")
            for banned in libraries:
                for library in banned:
                    if _within(target, library):
                        problems.setdefault((where, line, library), f"{where}:{line}: {importer} imports {target}")
    return [problems[key] for key in sorted(problems)]


def import_graph(src: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """module → the project modules it imports (a name that is no module of the tree, e.g. a function in
    `from x import f`, counts as its module x)."""
    modules = {module_name(path, src): path for path in (src / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for _, target in imported_modules(path, src):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def import_cycles(src: Path, package: str = PACKAGE) -> list[list[str]]:
    """Every strongly connected group of modules that import each other (Tarjan), each sorted. A package's
    __init__ that imports its own submodules is no cycle unless one of them imports the package back."""
    graph = import_graph(src, package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


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


def test_no_module_imports_itself_back_through_others():
    assert import_cycles(SRC) == []


def test_modules_stay_short_or_say_why():
    assert long_modules(SRC) == []


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("module, source", [
    ("ddim/training/callbacks.py", "from ddim.evaluation.pipeline.cell import run_cell\n"),
    ("ddim/training/callbacks.py", "def f():\n    import ddim.evaluation\n"),
    ("ddim/evaluation/pipeline/cell.py", "from ddim.training.module import DiffusionModule\n"),
    ("ddim/evaluation/pipeline/cell.py", "from ...training import module\n"),
    ("ddim/evaluation/__init__.py", "from ddim import training\n"),
    ("ddim/evaluation/report/tables.py", "from ..pipeline import cell\n"),
    ("ddim/sampling/generate.py", "from ddim.data import build_dataset\n"),
    ("ddim/models/checkpoints/ours.py", "from ...sampling import generate\n"),
    ("ddim/data/datasets.py", "from ddim.training import train\n"),
    ("ddim/diffusion/sampling.py", "from ..utils import atomic_path\n"),
    ("ddim/diffusion/sampling.py", "from ddim.errors import InputError\n"),
    ("ddim/diffusion/sampling.py", "import torchvision.utils\n"),
])
def test_a_wrong_import_is_caught(tmp_path, module, source):
    _write(tmp_path, module, source)
    _write(tmp_path, "ddim/diffusion/schedule.py", "from .trajectory import make_timesteps\nimport torch\n")
    _write(tmp_path, "ddim/sampling/grids.py", "from ddim.diffusion import slerp\nfrom ddim.utils import atomic_path\n")
    problems = import_violations(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(module), problems


def test_a_planted_circle_is_caught(tmp_path):
    _write(tmp_path, "ddim/evaluation/report/__init__.py", "")
    _write(tmp_path, "ddim/evaluation/report/tables.py", "from .plots import plot\n")
    _write(tmp_path, "ddim/evaluation/report/plots.py", "from .pivot import pivot\n")
    _write(tmp_path, "ddim/evaluation/report/pivot.py", "def f():\n    from .tables import format_number\n")
    _write(tmp_path, "ddim/evaluation/report/cells.py", "from ddim.diffusion import nfe\n")
    assert import_cycles(tmp_path) == [["ddim.evaluation.report.pivot", "ddim.evaluation.report.plots",
                                        "ddim.evaluation.report.tables"]]
    (tmp_path / "ddim/evaluation/report/pivot.py").write_text("from .cells import nfe\n")
    assert import_cycles(tmp_path) == []


def test_a_long_module_needs_a_reason(tmp_path):
    body = "x = 1\n" * (MAX_LINES + 1)
    _write(tmp_path, "ddim/long.py", '"""Long."""\n' + body)
    _write(tmp_path, "ddim/explained.py", '"""Long.\n\nOver 300 lines: one table.\n"""\n' + body)
    assert [re.sub(r":.*", "", p) for p in long_modules(tmp_path)] == ["ddim/long.py"]

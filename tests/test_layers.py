"""The packages form layers: each imports only itself, the layers below it and the ground floor.

Read from the source (every import statement, also those inside functions), so an upward import
fails here before it can become an import loop or a lazy `__init__` written to survive one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: bottom to top; the ground floor under all of them: `settings` (the typed settings machinery)
#: and `runtime` (the process set-up), which import no project module
LAYERS = ("datasets", "cluster_prep", "model", "tuning", "results")
GROUND = ("settings", "runtime")
PROJECT = (*GROUND, *LAYERS, "launch")


def _modules() -> list[tuple[str, Path]]:
    found = [(module, REPO / f"{module}.py") for module in GROUND]
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def _imported(module: str, path: Path) -> set[str]:
    """Top-level names of every module `path` imports (relative imports resolved)."""
    names = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                names.add((base or [node.module or ""])[0])
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


def _allowed(module: str) -> set[str]:
    top = module.split(".")[0]
    if top in GROUND:
        return set()
    return {*GROUND, *LAYERS[: LAYERS.index(top) + 1]}


@pytest.mark.parametrize("module,path", _modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_upward_import(module, path):
    upward = sorted((_imported(module, path) & set(PROJECT)) - _allowed(module))
    assert not upward, f"{module} imports {upward}; allowed: {sorted(_allowed(module))}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    code = "def f():\n    from results.load import best_row\n    import tuning.config\n"
    (tmp_path / "x.py").write_text(code)
    assert _imported("model.x", tmp_path / "x.py") == {"results", "tuning"}
    assert not {"results", "tuning"} <= _allowed("model.x")


def test_every_package_is_a_layer():
    """A new top-level package has to be placed in LAYERS (and so in the order) to be checked."""
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"bench", "tests", "mutants"}
    assert packages == set(LAYERS), sorted(packages ^ set(LAYERS))

"""The packages form layers: each imports only itself, the layers below it and the ground floor;
inside results/, the reading and reporting modules never import the orchestration above them.

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
#: results' top floor: it starts searches and trains (study, confirmation, reproduce, dose) and
#: reads through the modules beside it, which must never import it (reading never trains)
ORCHESTRATION = "results.orchestration"
PROJECT = (*GROUND, *LAYERS, "launch")


def _modules() -> list[tuple[str, Path]]:
    found = [(module, REPO / f"{module}.py") for module in GROUND]
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def _imported_modules(module: str, path: Path) -> set[str]:
    """Dotted names of every module `path` imports (relative imports resolved; `from a import b`
    gives both a and a.b, since b may be a module)."""
    names = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            if base:
                names |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return names


def _imported(module: str, path: Path) -> set[str]:
    """Top-level names of every module `path` imports (relative imports resolved)."""
    return {name.split(".")[0] for name in _imported_modules(module, path)}


def _allowed(module: str) -> set[str]:
    top = module.split(".")[0]
    if top in GROUND:
        return set()
    return {*GROUND, *LAYERS[: LAYERS.index(top) + 1]}


@pytest.mark.parametrize("module,path", _modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_upward_import(module, path):
    upward = sorted((_imported(module, path) & set(PROJECT)) - _allowed(module))
    assert not upward, f"{module} imports {upward}; allowed: {sorted(_allowed(module))}"


@pytest.mark.parametrize("module,path", [(m, p) for m, p in _modules() if not m.startswith(ORCHESTRATION)],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_reading_never_imports_the_orchestration(module, path):
    found = sorted(n for n in _imported_modules(module, path) if f"{n}.".startswith(ORCHESTRATION + "."))
    assert not found, f"{module} imports {found}: only launch.py and the orchestration itself may"


def test_the_orchestration_is_seen_however_it_is_imported(tmp_path):
    code = "def f():\n    from results.orchestration.study import run_study\n    from results import orchestration\n"
    (tmp_path / "x.py").write_text(code)
    assert {"results.orchestration.study", "results.orchestration"} <= _imported_modules("results.x", tmp_path / "x.py")


def test_the_checker_sees_imports_inside_functions(tmp_path):
    code = "def f():\n    from results.load import best_row\n    import tuning.config\n"
    (tmp_path / "x.py").write_text(code)
    assert _imported("model.x", tmp_path / "x.py") == {"results", "tuning"}
    assert not {"results", "tuning"} <= _allowed("model.x")


def test_every_package_is_a_layer():
    """A new top-level package has to be placed in LAYERS (and so in the order) to be checked."""
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"bench", "tests", "mutants"}
    assert packages == set(LAYERS), sorted(packages ^ set(LAYERS))


def test_no_import_cycle_between_project_modules():
    """No module imports, even inside a function, one that imports it back (directly or around a
    circle): a cycle held together by imports inside functions breaks as soon as one of them
    moves to the top, and says the two modules are one concern cut in the wrong place."""
    modules = dict(_modules())
    graph = {module: sorted(n for n in _imported_modules(module, path) if n in modules and n != module)
             for module, path in modules.items()}
    state: dict[str, int] = {}                      # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))

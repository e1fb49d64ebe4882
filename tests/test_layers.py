"""The package's shape (ARCHITECTURE.md): a folder per layer, short modules, and imports that only go down, with no
cycles, lazy imports inside functions included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fgvc"
LAYERS = ("core", "data", "models", "runs", "evaluation", "training", "studies", "apps")  # lowest first
MAX_LINES = 350


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its code (``from fgvc.x import y`` counts
    ``fgvc.x.y`` when that is a module, else ``fgvc.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(named or ({node.module} & modules))
    return found - {module_name(path, package)}


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of ``package`` and the package modules it imports."""
    paths = {module_name(p, package): p for p in package.rglob("*.py")}
    return {name: imported_modules(path, package, set(paths)) for name, path in paths.items()}


def layer(module: str) -> int:
    """The rank of a module's layer; -1 for the package's root (``fgvc``, ``fgvc.__main__``)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else -1


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a higher layer by a lower one (the root's ``__main__`` may import apps)."""
    return sorted(f"{a} -> {b}" for a, imported in graph.items() for b in imported
                  if layer(a) >= 0 and layer(b) > layer(a))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``, each as the path that closes it."""
    found, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state[nxt] == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    return found


def test_the_package_is_a_folder_per_layer() -> None:
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries == {"__init__.py", "__main__.py", *LAYERS}
    for name in LAYERS:
        docstring = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
        rooms = {p.stem for p in (PACKAGE / name).iterdir() if p.suffix == ".py" and p.stem != "__init__"}
        rooms |= {p.name for p in (PACKAGE / name).iterdir() if (p / "__init__.py").is_file()}
        unmapped = {room for room in rooms if not re.search(rf"^\s*{room}\s", docstring, re.M)}
        assert rooms and not unmapped, f"fgvc/{name}/__init__.py's map of its rooms lacks {sorted(unmapped)}"


def test_no_module_is_over_350_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long


def test_imports_only_go_down_and_never_round() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 40 and "fgvc.training.engine" in graph
    assert not upward_imports(graph)
    assert not cycles(graph)


def write_package(root: Path, sources: dict[str, str]) -> Path:
    for name, source in sources.items():
        path = root / "fgvc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "fgvc"


@pytest.mark.parametrize(("sources", "upward", "cycle"), [
    ({"data/loaders.py": "def f():\n    from fgvc.training import engine\n", "training/engine.py": ""},
     ["fgvc.data.loaders -> fgvc.training.engine"], []),
    ({"models/a.py": "import fgvc.models.b\n", "models/b.py": "from fgvc.models.a import x\n"},
     [], [["fgvc.models.a", "fgvc.models.b", "fgvc.models.a"]]),
    ({"apps/cli.py": "from fgvc.core import config\n", "core/config.py": "", "__main__.py": "import fgvc.apps.cli\n"},
     [], []),
])
def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path: Path, sources: dict[str, str], upward: list[str],
                                                       cycle: list[list[str]]) -> None:
    graph = import_graph(write_package(tmp_path, {"__init__.py": "", **sources}))
    assert upward_imports(graph) == upward
    assert cycles(graph) == cycle

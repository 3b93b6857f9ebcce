"""The import floors (README "Architecture"), read from the source with `ast`: no module
imports one of a higher floor, not even inside a function or under TYPE_CHECKING; no
import cycle among the project's modules; the run's vocabulary (w2s_base/config.py,
w2s_base/protocols.py) loads without torch, so a config error can be reported before
the heavy libraries are imported; and `pip install` puts only the project's own names
into site-packages. Nothing here imports a model or the project's modules, except
w2s_base.config in a fresh subprocess."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own floor or a lower one.
FLOORS = {"w2s_base": 1, "data": 2, "debate": 3, "weak": 4, "strong": 5, "w2s_run": 6, "run": 7,
          "bench": 8, "scripts": 8}
# The names `pip install` may put into site-packages: the user's folders and the two rooms.
INSTALLED = {"debate", "weak", "strong", "data", "run", "w2s_base", "w2s_run"}
# the run's vocabulary and the extension registries: read by the config, so light
VOCABULARY = ("w2s_base/config.py", "w2s_base/protocols.py", "w2s_base/losses.py", "w2s_base/backend_specs.py",
              "w2s_base/registry.py", "w2s_base/decision.py")
HEAVY = ("torch", "transformers", "vllm", "peft", "accelerate")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    """Every non-test module of the project: {dotted name: file}."""
    files = list(ROOT.glob("*.py"))
    for top in FLOORS:
        if (ROOT / top).is_dir():
            files += [p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts]
    return {_module_name(p): p for p in files}


SOURCES = _sources()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, runs when the module is imported) for every import
    statement of the file: at module level (class bodies and module-level if/try
    included), in functions and under `if TYPE_CHECKING:` (these two: False).
    `from a import b` names the module a.b when the project has one, else a;
    relative imports are resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def record(node: ast.Import | ast.ImportFrom, at_import: bool) -> None:
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno, at_import) for a in node.names)
            return
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - (node.level - 1)] + ([base] if base else []))
        for a in node.names:
            sub = f"{base}.{a.name}"
            out.append((sub if sub in SOURCES else base, node.lineno, at_import))

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                record(child, at_import)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for n in child.body:
                    visit(ast.Module(body=[n], type_ignores=[]), False)
                for n in child.orelse:
                    visit(ast.Module(body=[n], type_ignores=[]), at_import)
            else:
                visit(child, at_import)

    visit(tree, True)
    return out


IMPORTS = {name: _imports(name, path) for name, path in SOURCES.items()}


def _floor(module: str) -> int | None:
    return FLOORS.get(module.split(".")[0])


def _where(name: str, line: int) -> str:
    return f"{SOURCES[name].relative_to(ROOT)}:{line}"


def test_every_project_folder_has_a_floor():
    """A new top-level package must be given its floor here (and in the README)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages <= set(FLOORS), f"packages without a floor: {sorted(packages - set(FLOORS))}"
    loose = sorted(name for name in SOURCES if _floor(name) is None)
    assert not loose, f"modules without a floor: {loose}"
    assert "w2s_base.config" in SOURCES and "run" in SOURCES  # the walk found the project


def test_no_import_goes_up_a_floor():
    up = [f"{_where(name, line)}: {name} (floor {_floor(name)}) imports {mod} (floor {_floor(mod)})"
          for name, imports in IMPORTS.items() for mod, line, _ in imports
          if _floor(mod) is not None and _floor(mod) > (_floor(name) or 0)]
    assert not up, "\n".join(up)


def test_the_vocabulary_imports_no_training_and_no_heavy_library():
    """config.py and protocols.py: nothing from w2s_base/training at all, and no
    torch/transformers/vllm/peft/accelerate at module level."""
    bad = []
    for rel in VOCABULARY:
        name = _module_name(ROOT / rel)
        for mod, line, top in IMPORTS[name]:
            if mod.startswith("w2s_base.training") or (top and mod.split(".")[0] in HEAVY):
                bad.append(f"{_where(name, line)}: {mod}")
    assert not bad, "\n".join(bad)


def _cycle(ignore: tuple[str, str] | None = None) -> list[str] | None:
    """One import cycle among the project's modules (every import counted, but the edge
    `ignore`), or None."""
    graph = {name: sorted({mod for mod, _, _ in imports
                           if mod in SOURCES and mod != name and (name, mod) != ignore})
             for name, imports in IMPORTS.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node], _ = 2, path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    """The check above can fail: a cycle put into the graph is found."""
    IMPORTS["w2s_base.protocols"].append(("w2s_base.config", 0, True))
    try:
        cycle = _cycle()
    finally:
        IMPORTS["w2s_base.protocols"].pop()
    assert cycle is not None and {"w2s_base.config", "w2s_base.protocols"} <= set(cycle)


def test_config_loads_without_torch():
    """Loading a config must not import the heavy libraries (config errors come first)."""
    code = ("import sys; import w2s_base.config, w2s_base.protocols; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"w2s_base.config imports {out.stdout.strip()}"


def test_only_the_project_names_are_installed():
    tomllib = pytest.importorskip("tomllib")
    setuptools = pytest.importorskip("setuptools")
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    names = set(tool.get("py-modules", []))
    find = tool.get("packages", {})
    if isinstance(find, list):
        names |= {p.split(".")[0] for p in find}
    else:
        opts = find.get("find", {})
        found = setuptools.find_packages(where=str(ROOT / opts.get("where", ["."])[0]),
                                         include=opts.get("include", ["*"]),
                                         exclude=opts.get("exclude", []))
        names |= {p.split(".")[0] for p in found}
    assert names <= INSTALLED, f"installed top-level names beyond the project's: {sorted(names - INSTALLED)}"
    assert {"w2s_base", "run"} <= names

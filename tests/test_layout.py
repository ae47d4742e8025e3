"""The import graph of chains, fedenv, agents and the scripts: no cycles, layers point down.

Every ``import`` statement counts, wherever it stands (a lazy import inside a function that
closes a cycle is still a cycle); only ``if TYPE_CHECKING:`` blocks are left out, since they never
run.  The layers are those of shared/design.md and the README's Layout section.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chains", "fedenv", "agents", "studies")
SCRIPTS = ("train_agents", "evaluate")
# studies/ are commands at the scripts' level: they may import fedenv, agents and the scripts,
# and nothing imports them.

# fedenv's sub-packages, bottom to top: a module may import its own layer and the ones below.
FEDENV_LAYERS = (
    (
        "fedenv.errors",
        "fedenv.settings",
        "fedenv.device",
        "fedenv.seeding",
        "fedenv.disk",
        "fedenv.folder_lock",
    ),
    ("fedenv.data",),
    ("fedenv.engine",),
    ("fedenv.scoring",),
    ("fedenv.scenario",),
    (
        "fedenv.ledgers",
        "fedenv.run_folder",
        "fedenv.folder_copies",
        "fedenv.budgets",
        "fedenv.actions",
        "fedenv.records",
        "fedenv.render",
        "fedenv.round",
        "fedenv.unlearning",
    ),
    ("fedenv.fedorg", "fedenv.fedorg_v0", "fedenv"),
    ("fedenv.evaluation", "fedenv.integrations"),
)
# What each top-level package may import of the others (and of heavy libraries).
FORBIDDEN = {
    "chains": ("fedenv", "agents", "studies", "torch", "transformers", "peft", *SCRIPTS),
    "agents": ("fedenv", "chains", "studies", *SCRIPTS),
    "fedenv": ("agents", "studies", *SCRIPTS),
    **{script: ("studies",) for script in SCRIPTS},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    for script in SCRIPTS:
        found[script] = ROOT / f"{script}.py"
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports at run time (resolved to a known module where one exists)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return targets


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _top(name: str) -> str:
    return name.split(".")[0]


def _layer(name: str) -> int | None:
    """The layer of the longest prefix in FEDENV_LAYERS that names ``name`` or a parent of it."""
    matches = [
        (len(prefix), index)
        for index, layer in enumerate(FEDENV_LAYERS)
        for prefix in layer
        if name == prefix or name.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    internal = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(internal[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(internal):
        if module not in index:
            connect(module)
    assert not cycles, f"import cycles: {cycles}"


def test_packages_import_only_what_their_layer_allows(graph: dict[str, set[str]]) -> None:
    violations = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if _top(target) in FORBIDDEN.get(_top(module), ())
    ]
    assert not violations, "\n".join(sorted(violations))


def test_fedenv_layers_point_down(graph: dict[str, set[str]]) -> None:
    violations = []
    for module, targets in graph.items():
        if _top(module) != "fedenv":
            continue
        own = _layer(module)
        assert own is not None, f"{module} is in no layer of FEDENV_LAYERS"
        for target in targets:
            theirs = _layer(target) if _top(target) == "fedenv" else None
            if theirs is not None and theirs > own:
                violations.append(f"{module} (layer {own}) imports {target} (layer {theirs})")
    assert not violations, "\n".join(sorted(violations))


def test_the_graph_sees_lazy_imports(graph: dict[str, set[str]]) -> None:
    """A function-level import is an edge too (the walk must not stop at module level)."""
    assert "fedenv.fedorg" in graph["fedenv.evaluation.play"]


def test_one_config_error_per_package() -> None:
    """fedenv and agents each define one ConfigError (same field/problem/source shape)."""
    defined: dict[str, list[str]] = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name == "ConfigError":
                defined.setdefault(_top(name), []).append(name)
    assert defined.get("fedenv") == ["fedenv.errors"], defined
    assert defined.get("agents") == ["agents.config"], defined

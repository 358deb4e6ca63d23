"""The rooms of `lav` (README "Layout") import downwards only, read from the source with `ast`.

Every import counts, also inside a function; only ``if TYPE_CHECKING:`` imports are left out (a
type hint may look up). A registry's entries (`lav.registries.load`, ``"edge:Edge"``) count as
imports too: each names the module it loads and the name it takes. A room is a top-level module or
sub-package of `lav`; the package's face (``lav/__init__.py``) is none, it only hands names on.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lav

SRC = Path(lav.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ["lav", *path.relative_to(SRC).with_suffix("").parts]
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


MODULES = _modules()


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, name taken from it or None, line) for every import of ``module`` outside
    ``if TYPE_CHECKING:``; ``from .x import y`` names module ``x.y`` where that is a module."""
    path, package = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    out = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            out.extend((a.name, None, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - (0 if package else 1)]
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for a in node.names:
                sub = f"{source}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (source, a.name, node.lineno))
    if any(target == "lav.registries" for target, _, _ in out):
        out.extend(_registry_entries(module, tree))
    return [i for i in out if i[0] == "lav" or i[0].startswith("lav.")]


def _registry_entries(module: str, tree: ast.Module) -> list[tuple[str, str | None, int]]:
    """The imports a registry's ``load("lav.pkg", ENTRIES)`` makes: one per entry of the tuple
    ``ENTRIES`` that the module binds (`lav.registries`). A call this cannot read fails the test,
    so no registry loads what the graph does not see."""
    tuples = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) in ("load", "registries.load")):
            continue
        package, entries = (node.args + [None, None])[:2]
        assert isinstance(package, ast.Constant) and isinstance(package.value, str), (
            f"{module}:{node.lineno}: a registry names its package as a string"
        )
        value = tuples.get(entries.id) if isinstance(entries, ast.Name) else None
        assert isinstance(value, ast.Tuple) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
        ), f"{module}:{node.lineno}: a registry's entries are a tuple of strings bound in the module"
        for e in value.elts:
            name, _, attribute = e.value.partition(":")
            out.append((f"{package.value}.{name}", attribute or None, e.lineno))
    return out


def _owner(name: str) -> str | None:
    """The module of `lav` that ``name`` (a module path) is, or lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _room_arrows() -> dict[str, dict[str, list[str]]]:
    """room -> room it imports -> the imports that make the arrow ("module:line -> module")."""
    arrows: dict[str, dict[str, list[str]]] = {}
    for module in MODULES:
        for target, _, line in _imports(module):
            owner = _owner(target)
            a, b = _room(module), owner and _room(owner)
            if a and b and a != b:
                arrows.setdefault(a, {}).setdefault(b, []).append(f"{module}:{line} -> {owner}")
    return arrows


def _loops(arrows: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected groups of more than one room (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in arrows.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for room in sorted(arrows):
        if room not in index:
            visit(room)
    return found


def test_the_rooms_import_each_other_in_no_loop_counting_imports_inside_functions():
    arrows = _room_arrows()
    loops = _loops(arrows)
    detail = [
        f"{a} -> {b}: {arrows[a][b]}" for group in loops for a in group for b in group if b in arrows[a]
    ]
    assert loops == [], detail


def test_nothing_below_the_command_line_imports_it():
    up = [
        f"{module}:{line}"
        for module in MODULES
        if _room(module) != "cli"
        for t, _, line in _imports(module)
        if _room(t) == "cli"
    ]
    assert up == []


def test_no_module_imports_another_modules_private_name():
    private = [
        f"{module}:{line} takes {name} from {target}"
        for module in sorted(MODULES)
        for target, name, line in _imports(module)
        if name is not None and name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_a_loop_is_seen():
    # The check itself: two rooms importing each other, as the import graph gives them.
    assert _loops({"a": {"b": ["x"]}, "b": {"a": ["y"]}, "c": {"a": ["z"]}}) == [["a", "b"]]


def test_the_graph_sees_every_entry_of_the_three_registries():
    import lav.cli.commands
    import lav.eval.formats
    import lav.methods

    for registry, package in (
        (lav.methods, "lav.methods"),
        (lav.eval.formats, "lav.eval.formats"),
        (lav.cli.commands, "lav.cli"),
    ):
        seen = [(t, n) for t, n, _ in _imports(registry.__name__) if t != "lav.registries"]
        for entry in registry.ENTRIES:
            name, _, attribute = entry.partition(":")
            assert (f"{package}.{name}", attribute or None) in seen, (registry.__name__, entry)


def test_a_registry_entry_is_an_import_the_private_name_check_sees():
    # The check itself, on a registry as lav writes one: its entries are imports of their modules.
    source = 'from ..registries import load\nENTRIES = (\n    "edge:_Hidden",\n)\nX = load("lav.methods", ENTRIES)\n'
    entries = _registry_entries("lav.methods", ast.parse(source))
    assert entries == [("lav.methods.edge", "_Hidden", 3)]

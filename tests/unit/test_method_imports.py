"""The map methods stay below the pipeline: no module of `lav.methods` imports `lav.stages` or
`lav.analysis` (also inside a function), nor another package's private name; a method that needs
another pass gets a `lav.methods.Runner` handed to it instead."""

from __future__ import annotations

import ast
from pathlib import Path

import lav.methods

METHODS = Path(lav.methods.__file__).parent


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import of the file, at any depth: (module as written, with leading dots; names)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            out.append(("." * node.level + (node.module or ""), [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def test_methods_import_neither_the_stages_nor_the_analysis():
    files = sorted(METHODS.glob("*.py"))
    assert len(files) > 5
    upward = [
        (path.name, module)
        for path in files
        for module, _ in _imports(path)
        if module.lstrip(".").split(".")[0] in ("stages", "analysis")
        and module.startswith("..")
        or module in ("lav.stages", "lav.analysis")
    ]
    assert upward == []


def test_methods_import_no_private_name_of_another_package():
    private = [
        (path.name, module, name)
        for path in sorted(METHODS.glob("*.py"))
        for module, names in _imports(path)
        if module.startswith("..") or module.startswith("lav.")
        for name in names
        if name.startswith("_") and name != "__future__"
    ]
    assert private == []

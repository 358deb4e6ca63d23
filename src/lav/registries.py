"""What lav's three registries (map methods, benchmark formats, commands) are read from: a tuple of
entries, one a line, each naming a module of the registry's package and optionally a name in it.

``"edge:Edge"`` is the class ``Edge`` of ``lav.methods.edge``; ``"run"`` is the module
``lav.cli.run`` itself. A new map method, format or command is therefore one new module and one
line. An entry that names no module, or no such name in its module, fails the import of the
registry with one line naming the entry; nothing is skipped or found by scanning folders.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any


def load(package: str, entries: Sequence[str]) -> tuple[Any, ...]:
    """The objects ``entries`` name in ``package`` (a dotted package name), in their order.

    Each entry is ``"module"`` or ``"module:name"``, ``module`` relative to ``package``. Raises
    ImportError naming the entry when the module or the name does not exist; an error raised while
    the module itself imports (a dependency it lacks) goes up unchanged.
    """
    out = []
    for entry in entries:
        module_name, _, attribute = entry.partition(":")
        full = f"{package}.{module_name}"
        try:
            module = importlib.import_module(full)
        except ModuleNotFoundError as error:
            if error.name != full:
                raise
            raise ImportError(
                f"{package} registry entry {entry!r}: there is no module {full}; "
                f"add {module_name}.py to {package} or fix the entry"
            ) from None
        if not attribute:
            out.append(module)
            continue
        try:
            out.append(getattr(module, attribute))
        except AttributeError:
            raise ImportError(
                f"{package} registry entry {entry!r}: module {full} has no {attribute}; "
                "fix the entry or define it there"
            ) from None
    return tuple(out)

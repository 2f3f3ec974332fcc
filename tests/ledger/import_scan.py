"""What a module imports, read statically: the import-rule tests' one scanner."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


def imported_modules(
    path: Path, *, with_names: bool = False, strings_under: Iterable[str] = ()
) -> list[str]:
    """The absolute module names `path` imports. `with_names`: each name of a `from package
    import name` also as `package.name` (it may be a module). `strings_under`: string
    constants naming a module under one of these packages count too (a module named in a
    string, as `importlib.import_module("api.x")`, reaches in as well)."""
    packages = tuple(strings_under)
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if with_names:
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif packages and isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if any(text == p or text.startswith(p + ".") for p in packages):
                names.append(text)
    return names

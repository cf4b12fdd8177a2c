"""Imports point one way: from the estimators down to the math."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sksoftmax"
ESTIMATORS = {"sksoftmax._classifier", "sksoftmax._cv"}
# Modules that may import an estimator: they wrap or refit one.
FRONT = {"sksoftmax", "sksoftmax._cv", "sksoftmax._cli", "sksoftmax._onnx"}


def _module_imports():
    """Each module of the package and the package modules it imports."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        package = name.split(".") if is_package else name.split(".")[:-1]
        imports = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                imports.add(".".join(base + ([node.module] if node.module else [])))
        graph[name] = imports
    return graph


def test_only_front_modules_import_an_estimator():
    graph = _module_imports()
    offenders = {
        name: sorted(imports & ESTIMATORS)
        for name, imports in graph.items()
        if imports & ESTIMATORS and name not in FRONT
    }
    assert offenders == {}


def test_no_import_cycle():
    graph = _module_imports()

    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for target in graph.get(stack.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return seen

    assert [name for name in graph if name in reachable(name)] == []

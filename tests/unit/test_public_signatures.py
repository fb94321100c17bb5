"""No public signature hides its options behind `**options: Any`: mypy must see every keyword a caller passes."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# stores/s3 forwards botocore's own request parameters (typed by botocore's stubs, not ours); dev/ is tooling.
OUTSIDE = (("stores", "s3"), ("dev",))


def public_functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found.extend(n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    return [f for f in found if not f.name.startswith("_") or f.name == "__init__"]


def test_no_public_function_takes_untyped_keyword_options() -> None:
    loose = []
    for source in sorted((REPO / "reconciler").rglob("*.py")):
        parts = source.relative_to(REPO / "reconciler").parts
        if any(parts[: len(prefix)] == prefix for prefix in OUTSIDE):
            continue
        for function in public_functions(ast.parse(source.read_text(encoding="utf-8"))):
            kwargs = function.args.kwarg
            if kwargs is not None and (kwargs.annotation is None or ast.unparse(kwargs.annotation) == "Any"):
                loose.append(f"{source.relative_to(REPO)}:{function.lineno} {function.name}(**{kwargs.arg})")
    assert loose == []

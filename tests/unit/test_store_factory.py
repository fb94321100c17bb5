"""One store factory: the CLI, the service, the Dask workers and the loader build a Store the same way."""

from __future__ import annotations

import ast
from pathlib import Path

from reconciler.loader.storeset import StoreSet
from reconciler.model import LocalStoreSpec
from reconciler.stores.factory import build_store
from reconciler.stores.local import LocalStore

REPO = Path(__file__).resolve().parents[2]
CLASSES = {"S3Store", "LocalStore", "MemoryStore"}


def test_no_store_is_constructed_outside_stores() -> None:
    """A second factory drifts (the loader's had its own pool size and imported boto3 at a different time)."""
    found = []
    for source in sorted((REPO / "reconciler").rglob("*.py")):
        inside = source.relative_to(REPO / "reconciler").parts
        if inside[0] in ("stores", "dev"):
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CLASSES:
                found.append(f"{source.relative_to(REPO)}:{node.lineno}")
    assert found == []


def test_the_loader_and_the_workflow_get_the_same_local_store(tmp_path: Path) -> None:
    spec = LocalStoreSpec("disk", str(tmp_path))
    (tmp_path / "a.txt").write_bytes(b"a")
    built, lazy = build_store(spec), StoreSet({"disk": spec})["disk"]
    assert isinstance(built, LocalStore) and isinstance(lazy, LocalStore)
    assert [e.key for e in built.list("")] == [e.key for e in lazy.list("")] == ["a.txt"]

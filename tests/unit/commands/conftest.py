"""The command functions of `reconciler.commands`, called in this process on a small world: specs and a local
tree on disk, the S3 store in memory (a MemoryStore keeps S3's preconditions). No server, no child process:
what `pixel` adds around a command (click's parsing, `_exits`) is what tests/cli/ is for."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from reconciler import progress
from reconciler.choices import LogFormat
from reconciler.logs import configure_logging
from reconciler.model import Entry, S3StoreSpec, StoreSpec
from reconciler.stores.base import Store
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore

SPECS = """\
stores:
  lake:
    type: s3
    bucket: pixel-data
    endpoint: http://127.0.0.1:9
    region: us-east-1
    addressing_style: path
  disk:
    type: local
    root: {root}
mappings:
  - name: raw
    from: disk:raw
    to: lake:datasets/raw/
    include: ["**/*.json"]
    authority: local
    prune: true
"""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class RecordingStore(MemoryStore):
    """A MemoryStore that keeps the md5 it was given at write apart from the bytes, as S3 keeps it in metadata
    and a single-part ETag: `rot` then changes the bytes under the records, as a bad disk or a foreign tool would."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._recorded: dict[str, str] = {}

    def write(self, key: str, source: Any, **kwargs: Any) -> Entry:
        entry = super().write(key, source, **kwargs)
        self._recorded[key] = md5(self.get(key))
        return entry

    def recorded_md5s(self, key: str) -> tuple[Entry, str | None, str | None] | None:
        entry = self.stat(key)
        if entry is None:
            return None
        recorded = self._recorded.get(key)
        return entry, recorded, recorded

    def rot(self, key: str, data: bytes) -> None:
        self._objects[key] = dataclasses.replace(self._objects[key], data=data)
        self._recorded.setdefault(key, md5(self.get(key)))


class _CurrentStderr:
    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


@dataclass
class World:
    """`specs` (a spec directory) pushing `root/raw/**.json` to `lake:datasets/raw/`; the bucket is `lake`."""

    specs: Path
    root: Path
    lake: RecordingStore
    capsys: pytest.CaptureFixture[str]

    def local(self, name: str, data: bytes) -> Path:
        path = self.root / "raw" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def output(self) -> tuple[str, str]:
        captured = self.capsys.readouterr()
        return captured.out, captured.err

    def json(self) -> Any:
        return json.loads(self.output()[0])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[World]:
    """Every S3 store a command builds is the one RecordingStore; PIXEL_CACHE_DIR is the test's own; log lines go
    to stderr, as under `pixel`, so stdout holds only what the command prints."""
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(SPECS.format(root=root))
    lake = RecordingStore("lake")

    def build_store(spec: StoreSpec, **_: object) -> Store:
        if isinstance(spec, S3StoreSpec):
            lake.spec = spec  # lists as the S3Store of that spec would: pixel's own space (the lock) left out
            return lake
        return LocalStore(spec.name, spec.root)

    # The two places a command builds its stores: the workflow's and the loader's store set.
    monkeypatch.setattr("reconciler.workflow.build_store", build_store)
    monkeypatch.setattr("reconciler.loader.storeset.build_store", build_store)
    monkeypatch.setenv("PIXEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    with monkeypatch.context() as patch:
        # Bound to whatever sys.stderr is when each line is written: capsys swaps it between set-up and the test.
        patch.setattr(sys, "stderr", _CurrentStderr())
        configure_logging(LogFormat.CONSOLE)
    progress.configure(quiet=False)
    try:
        yield World(specs, root, lake, capsys)
    finally:
        # The loggers were bound to this test's captured stderr, which closes with it.
        structlog.reset_defaults()
        progress.configure(quiet=False)

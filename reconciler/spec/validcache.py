"""Which spec documents passed the JSON Schema already: a warm `pixel plan` neither validates nor imports jsonschema.

A document is known valid by the sha256 of its interpolated data (canonical JSON)
together with the sha256 of the schema file: a changed spec, or a changed
schema, is validated again. Only documents without a single schema problem are
remembered, so every error message still comes from the validator. The file
lives in the pixel cache directory beside the hash cache; anything unreadable
or unexpected in it counts as an empty cache (the specs are then just validated),
and it keeps the most recent `KEEP` digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from reconciler.schemas import schema_path

KEEP = 512


def document_digest(data: object) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def schema_digest(name: str) -> str:
    return hashlib.sha256(schema_path(name).read_bytes()).hexdigest()


class ValidCache:
    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema_digest(schema)
        self._known: dict[str, None] = dict.fromkeys(self._read())  # insertion-ordered, oldest first
        self._added = False

    def _read(self) -> list[str]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return []
        if not isinstance(data, dict) or data.get("schema") != self._schema:
            return []
        valid = data.get("valid")
        if not isinstance(valid, list):
            return []
        return [d for d in valid if isinstance(d, str) and len(d) == 64]

    def known_valid(self, digest: str) -> bool:
        return digest in self._known

    def remember(self, digest: str) -> None:
        if digest not in self._known:
            self._known[digest] = None
            self._added = True

    def save(self) -> None:
        """Write atomically (a concurrent run sees the old file or the new one); failures only cost speed."""
        if not self._added:
            return
        keep = list(self._known)[-KEEP:]
        payload = json.dumps({"schema": self._schema, "valid": keep}).encode()
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".specs-valid-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(payload)
                os.replace(tmp, self.path)
            except OSError:
                os.unlink(tmp)
                raise
        self._added = False

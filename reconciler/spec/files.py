"""Which files of a spec directory are specs, and their bytes as the loader reads them.

The loader and the cached Desired (`desiredcache.py`) both go through here, so a warm run hashes exactly the
files, and exactly the bytes, a cold run would parse. Nothing here imports YAML.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SPEC_SUFFIXES = (".yaml", ".yml")
# Far above any real spec (the example world is 8 KiB), far below what the YAML parser digests quickly:
# a 50 MB spec took it 106 s and 3.9 GB.
MAX_SPEC_BYTES = 5 * 1024 * 1024


def spec_entries(entries: list[Path]) -> list[Path]:
    """The spec files among a directory's sorted entries. Dotfiles are skipped like Terraform does: editors
    leave `.#name.yaml` locks and `.name.yaml.swp`-style copies that are not specs."""
    return [
        entry
        for entry in entries
        if entry.suffix.lower() in SPEC_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
    ]


def read_capped(file: Path) -> tuple[bytes, int]:
    """(bytes, size): the whole file, or b"" when it is over MAX_SPEC_BYTES (then `size` says how big). At most
    one byte past the limit is read: the size a stat reports can lie (a FIFO, /proc). Raises OSError."""
    with file.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        raw = b"" if size > MAX_SPEC_BYTES else handle.read(MAX_SPEC_BYTES + 1)
    return raw, max(size, len(raw))


@dataclass(frozen=True, slots=True)
class SpecFiles:
    """A spec directory's spec files and their bytes, read once: a cold load parses the very bytes a warm run
    hashed, so a file edited in between cannot leave a Desired filed under the other version's digest."""

    directory: Path  # absolute
    files: tuple[tuple[Path, bytes], ...]


def read_spec_files(spec_dir: Path) -> SpecFiles | None:
    """Every spec file's bytes, or None wherever the loader would report a problem (no such directory, no spec
    files, a file unreadable or over the limit): the loader reads again then, to say what is wrong."""
    directory = Path(os.path.abspath(spec_dir))
    try:
        files = spec_entries(sorted(directory.iterdir()))
        read = tuple((file, read_capped(file)) for file in files)
    except OSError:
        return None
    if not read or any(size > MAX_SPEC_BYTES for _, (_, size) in read):
        return None
    return SpecFiles(directory, tuple((file, raw) for file, (raw, _) in read))

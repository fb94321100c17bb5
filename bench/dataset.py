"""The benchmark's dataset, generated deterministically from a seed.

The default shape is the one the peer figures in the issue were measured on:
10,000 small files (1-8 KiB) in 100 directories plus 5 files of 64 MiB.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class Shape:
    small_files: int = 10_000
    dirs: int = 100
    big_files: int = 5
    big_size: int = 64 * MIB
    seed: int = 20261123
    edits: int = 100  # same-size edits per edit case

    @property
    def objects(self) -> int:
        return self.small_files + self.big_files


def small_name(i: int, shape: Shape) -> str:
    return f"shard{i % shape.dirs:03d}/part-{i:06d}.jsonl"


def generate(root: Path, shape: Shape) -> int:
    """Write the tree under `root`; returns its total size in bytes. Same seed, same bytes."""
    rng = random.Random(shape.seed)
    total = 0
    for d in range(shape.dirs):
        (root / f"shard{d:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(shape.small_files):
        data = rng.randbytes(rng.randint(1024, 8 * 1024))
        (root / small_name(i, shape)).write_bytes(data)
        total += len(data)
    if shape.big_files:
        (root / "big").mkdir(parents=True, exist_ok=True)
    for i in range(shape.big_files):
        with open(root / "big" / f"blob-{i}.bin", "wb") as out:
            left = shape.big_size
            while left:
                chunk = rng.randbytes(min(left, 8 * MIB))
                out.write(chunk)
                left -= len(chunk)
        total += shape.big_size
    return total


def edit_same_size(root: Path, shape: Shape, *, count: int, restore_mtime: bool, salt: int) -> dict[str, str]:
    """Rewrite `count` small files in place with other bytes of the same length.

    With `restore_mtime` the old atime/mtime are put back (the case size+mtime sync misses).
    Returns {relative path: new md5}. `salt` picks a different set of files per call.
    """
    rng = random.Random(shape.seed * 31 + salt)
    picked = rng.sample(range(shape.small_files), count)
    edited: dict[str, str] = {}
    for i in picked:
        rel = small_name(i, shape)
        path = root / rel
        st = path.stat()
        data = bytearray(path.read_bytes())
        # Flip every byte of a stretch so the md5 surely changes while the size does not.
        for j in range(min(64, len(data))):
            data[j] ^= 0xFF
        path.write_bytes(bytes(data))
        if restore_mtime:
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        edited[rel] = hashlib.md5(data).hexdigest()
    return edited

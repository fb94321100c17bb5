"""A directory tree as a Store: temp-then-rename writes, symlinks confined to the root.

Keys come from S3 too (a pull maps S3 keys to local paths), and S3 accepts keys such as
`a/../../x`: every key is checked before it is turned into a path, and every method that
touches the filesystem also resolves symlinks, so nothing is read, written or deleted
outside the root.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat as stat_mod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from reconciler.model import Entry, Problem
from reconciler.stores.base import (
    ConfirmHeld,
    FileIdentity,
    ObjectChanged,
    OpenSource,
    PermanentStoreError,
    StoreError,
    check_precondition,
)

CHUNK = 8 * 1024 * 1024
TEMP_MARKER = ".pixel-tmp-"
# A file a release has renamed aside: `.{name}.pixel-release-{token}`. Not a temp file: if pixel dies
# before it is deleted or renamed back, the walk reports it (the user's bytes are in it).
RELEASE_MARKER = ".pixel-release-"
KEPT_MARKER = ".pixel-kept-"  # a release's bytes kept beside a file re-created under the same name


def version_token(st: os.stat_result) -> str:
    """What a local file's 'ETag' is: enough to notice it changed since the plan.

    Size and mtime, then ctime, inode and device: a same-size edit with its mtime put back still moves
    ctime, and the hash cache keys its md5s on exactly these five, so the walk's stat is all it needs.
    """
    return f"{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}-{st.st_ino}-{st.st_dev}"


def _identity_of_token(token: str | None) -> tuple[int, int, int, int, int] | None:
    """(dev, ino, size, mtime_ns, ctime_ns) from a version_token; None for any other string."""
    parts = (token or "").split("-")
    if len(parts) != 5:
        return None
    try:
        size, mtime_ns, ctime_ns, ino, dev = map(int, parts)
    except ValueError:
        return None
    return dev, ino, size, mtime_ns, ctime_ns


def is_temp_name(name: str) -> bool:
    return TEMP_MARKER in name


class LocalStore:
    def __init__(
        self, name: str, root: str | Path
    ) -> None:
        self.name = name
        self.root = Path(root)
        self._real_root = Path(os.path.realpath(self.root))
        self._abs_root = os.path.abspath(self.root)
        self._plain_dirs: set[str] = set()  # relative directories known to hold no symlink below the root
        # What listing met and could not observe (unreadable directories, escaping symlinks...), in order:
        # read through `problems` once the listing is done. list.append is atomic: listings may run in threads.
        self._problems: list[Problem] = []


    @property
    def problems(self) -> tuple[Problem, ...]:
        """Every problem the listings so far met: keys under them were not observed."""
        return tuple(self._problems)
    def _refuse(self, key: str, why: str) -> PermanentStoreError:
        return PermanentStoreError(
            f"local store {json.dumps(self.name)}: key {json.dumps(key)} {why}; refused, nothing was touched",
            code="KeyOutsideRoot",
            key=key,
        )

    def _lexical(self, key: str, *, allow_root: bool = False) -> Path:
        self._check_key(key, allow_root=allow_root)
        return self.root / key

    def _check_key(self, key: str, *, allow_root: bool = False) -> None:
        if "\0" in key:
            raise self._refuse(key, "cannot be a local path (it contains a NUL byte)")
        if key.startswith("/"):
            raise self._refuse(key, f"leaves the local root {self.root} (it is an absolute path)")
        parts = key.split("/")
        if ".." in parts:
            raise self._refuse(key, f'leaves the local root {self.root} (it has a ".." segment)')
        if not allow_root and all(part in ("", ".") for part in parts):
            raise self._refuse(key, f"names the local root {self.root} itself, not a file in it")

    def path(self, key: str) -> Path:
        """The path of `key` under the root, after lexical checks only (no symlink is resolved: list()
        never yields a key through a symlink that leaves the root). Methods that touch the file go
        through _resolve()."""
        return self._lexical(key)

    @property
    def root_path(self) -> str:
        return self._abs_root

    def file_path(self, key: str) -> str:
        """path(key) made absolute: the name the hash cache files the key's md5 under. Called for every
        file a plan looks at, where resolving symlinks would cost a syscall per path component."""
        self._check_key(key)
        if _plain_key(key):
            return f"{self._abs_root}/{key}"  # what abspath would return, without building a Path
        return os.path.abspath(self.root / key)

    def walked_identity(self, entry: Entry) -> FileIdentity | None:
        """(file_path, dev, ino, size, mtime_ns, ctime_ns) as the listing that made `entry` stat()ed it.

        No syscall: a warm plan's cache check of 10,000 files paid a second stat and a pathlib path for
        each. The md5 the cache returns then belongs to exactly the version `entry.etag` names, which
        every later action checks before it acts.
        """
        identity = _identity_of_token(entry.etag)
        if identity is None or identity[2] != entry.size:
            return None
        return (self.file_path(entry.key), *identity)

    def _resolve(self, key: str, *, allow_root: bool = False) -> Path:
        """path(key), refused if symlinks of its existing parents (or of the file itself) lead out of the root."""
        path = self._lexical(key, allow_root=allow_root)
        parent, _, _ = key.rstrip("/").rpartition("/")
        # realpath costs an lstat per component from /: an upload of 10,000 files paid more for it than for
        # the upload. A directory seen once to be a plain directory under the root (no symlink on the way)
        # is not resolved again; the file itself, the one component left, costs one lstat.
        if parent not in self._plain_dirs:
            real_parent = os.path.realpath(self.root / parent)
            if not self._inside_root(real_parent):
                real = os.path.realpath(path)
                raise self._refuse(key, f"leaves the local root {self.root} (through a symlink, it resolves to {real})")
            if real_parent == os.path.join(str(self._real_root), parent).rstrip("/"):
                self._plain_dirs.add(parent)
        try:
            is_link = stat_mod.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            is_link = False  # not there (yet): nothing to follow
        if is_link:
            real = os.path.realpath(path)
            if not self._inside_root(real) or (real == str(self._real_root) and not allow_root):
                raise self._refuse(key, f"leaves the local root {self.root} (through a symlink, it resolves to {real})")
        return path

    def _entry(self, key: str, st: os.stat_result) -> Entry:
        return Entry(key=key, size=st.st_size, md5=None, mtime_ns=st.st_mtime_ns, etag=version_token(st))

    def list(self, prefix: str) -> Iterator[Entry]:
        base = prefix.rstrip("/")
        start = self._resolve(base, allow_root=True) if base else self.root
        if not start.is_dir():
            return
        visited: set[str] = set()
        yield from self._walk(start, base, visited)

    def _report(self, key: str, message: str) -> None:
        """What the walk could not see: `key` and everything under it are unknown, not absent."""
        self._problems.append(Problem(f"{self.name}:{key}", message, store=self.name, key=key))

    def _inside_root(self, real: str) -> bool:
        root = str(self._real_root)
        return real == root or real.startswith(os.path.join(root, ""))

    def _walk(self, directory: Path, rel: str, visited: set[str]) -> Iterator[Entry]:
        real_dir = os.path.realpath(directory)
        if real_dir in visited:  # a symlink loop inside the root
            return
        visited.add(real_dir)
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            self._report(rel, f"cannot list directory: {exc.strerror}")
            return
        for child in children:
            if is_temp_name(child.name):
                continue
            key = f"{rel}/{child.name}" if rel else child.name
            if RELEASE_MARKER in child.name:
                original = child.name.split(RELEASE_MARKER, 1)[0].removeprefix(".")
                self._report(
                    f"{rel}/{original}" if rel else original,
                    f"a release of this file was interrupted: its bytes are in {child.name}; "
                    "rename that file back (pixel leaves this key alone until then)",
                )
                continue
            try:
                if child.is_symlink():
                    real = os.path.realpath(child.path)
                    if not self._inside_root(real):
                        self._report(key, f"symlink leaves the store root (-> {real}); not followed")
                        continue
                st = os.stat(child.path)
            except OSError as exc:
                self._report(key, f"cannot stat: {exc.strerror}")
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                yield from self._walk(Path(child.path), key, visited)
            elif stat_mod.S_ISREG(st.st_mode):
                yield self._entry(key, st)

    def stat(self, key: str) -> Entry | None:
        try:
            st = os.stat(self._resolve(key))
        except FileNotFoundError:
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return self._entry(key, st)

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        handle = open(self._resolve(key), "rb")  # noqa: SIM115  # the caller's context manager closes it
        if if_match is not None and version_token(os.fstat(handle.fileno())) != if_match:
            handle.close()
            raise ObjectChanged(f"{self.name}:{key} changed since it was looked at", code="412", key=key)
        return handle

    def _check(self, key: str, *, if_match: str | None, if_absent: bool) -> None:
        current = self.stat(key)
        held = None if current is None else current.etag or ""
        check_precondition(self.name, key, held, if_match=if_match, if_absent=if_absent)

    def write(
        self, key: str, source: OpenSource, *, size: int, md5: str | None, if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        final = self._resolve(key)  # before _check: a refused key is not even stat()ed
        self._check(key, if_match=if_match, if_absent=if_absent)
        final.parent.mkdir(parents=True, exist_ok=True)
        self._resolve(key)  # a parent swapped for a symlink meanwhile: refuse before any byte is written
        tmp = final.with_name(f".{final.name}{TEMP_MARKER}{secrets.token_hex(4)}")
        digest = hashlib.md5()
        written = 0
        try:
            with source() as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    written += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if written != size or (md5 is not None and digest.hexdigest() != md5):
                raise PermanentStoreError(
                    f"{self.name}:{key}: received {written} bytes md5 {digest.hexdigest()}, "
                    f"expected {size} bytes md5 {md5}; nothing was written",
                    code="BadDigest",
                    key=key,
                )
            self._check(key, if_match=if_match, if_absent=if_absent)
            if if_absent:
                try:
                    os.link(tmp, final)  # atomic create-if-absent
                except FileExistsError as exc:
                    raise ObjectChanged(
                        f"{self.name}:{key} appeared during the write", code="412", key=key
                    ) from exc
                os.unlink(tmp)
            else:
                os.replace(tmp, final)
            _fsync_dir(final.parent)
        finally:
            if tmp.exists():
                tmp.unlink()
        entry = self.stat(key)
        if entry is None:
            raise PermanentStoreError(f"{self.name}:{key} vanished right after it was written", key=key)
        return Entry(entry.key, entry.size, digest.hexdigest(), entry.mtime_ns, entry.etag)

    def copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None = None,
        if_match: str | None = None, if_absent: bool = False,
    ) -> Entry:
        self._resolve(dst_key)  # refuse a bad destination before reading anything
        src = self.stat(src_key)
        if src is None or (src_etag is not None and src.etag != src_etag):
            raise ObjectChanged(
                f"{self.name}:{src_key} changed since the plan was made", code="412", key=src_key
            )
        return self.write(
            dst_key,
            lambda: self.open(src_key),
            size=src.size,
            md5=md5,
            if_match=if_match,
            if_absent=if_absent,
        )

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        path = self._resolve(key)
        self._check(key, if_match=if_match, if_absent=False)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def release(self, key: str, *, if_match: str | None, confirm: ConfirmHeld) -> None:
        """Delete the local file `key` only if the bytes deleted are bytes `confirm` accepts.

        A same-size edit with its mtime put back passes any stat check, so the bytes themselves are
        checked, and checked where no writer can reach them: the file is renamed aside (atomic, same
        directory), hashed through one descriptor, confirmed (S3 holds that md5 and size), then unlinked.
        A writer that opens the path meanwhile creates a new file, which is never touched. Any doubt
        (changed while hashed, not what S3 holds, written to after the unlink) puts the bytes back.
        """
        path = self._resolve(key)
        self._check(key, if_match=if_match, if_absent=False)
        aside = path.with_name(f".{path.name}{RELEASE_MARKER}{secrets.token_hex(4)}")
        try:
            os.rename(path, aside)
        except FileNotFoundError as exc:
            raise ObjectChanged(f"{self.name}:{key} vanished before its release", code="412", key=key) from exc
        with open(aside, "rb") as held:
            before = _identity(os.fstat(held.fileno()))
            digest = hashlib.md5()
            while chunk := held.read(CHUNK):
                digest.update(chunk)
            checked = _identity(os.fstat(held.fileno()))
            try:
                if checked != before:
                    raise ObjectChanged(f"{self.name}:{key} was written to while its release checked it", code="412")
                confirm(digest.hexdigest(), checked[0])
            except StoreError as exc:
                raise type(exc)(f"{exc}; {self._put_back(aside, path)}", code=exc.code, key=key) from exc
            except BaseException:
                self._put_back(aside, path)
                raise
            os.unlink(aside)
            # The unlink itself moves ctime: from here on a write shows as a new size or mtime.
            if _identity(os.fstat(held.fileno()))[:2] != checked[:2]:
                # A writer that held the file open wrote after the check: its bytes live only in this descriptor.
                kept = self._restore_from(held, path)
                raise ObjectChanged(
                    f"{self.name}:{key} was written to during its release; {kept}", code="412", key=key
                )
        _fsync_dir(path.parent)

    def _put_back(self, aside: Path, path: Path) -> str:
        """Give the bytes renamed aside their name back; beside it if a writer re-created the name meanwhile."""
        try:
            os.link(aside, path)  # create-if-absent: a file re-created at `path` meanwhile is not clobbered
        except FileExistsError:
            kept = path.with_name(f"{path.name}{KEPT_MARKER}{secrets.token_hex(4)}")
            os.rename(aside, kept)
            _fsync_dir(path.parent)
            return f"the local file was re-created meanwhile; the released bytes are kept at {kept}"
        os.unlink(aside)
        _fsync_dir(path.parent)
        return "the local file is kept"

    def _restore_from(self, held: BinaryIO, path: Path) -> str:
        # Named like a file set aside, not a temp file: a kill right here leaves it reported, not hidden.
        tmp = path.with_name(f".{path.name}{RELEASE_MARKER}{secrets.token_hex(4)}")
        held.seek(0)
        with open(tmp, "wb") as out:
            while chunk := held.read(CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return self._put_back(tmp, path)


def _plain_key(key: str) -> bool:
    """A key abspath would leave as it is: no empty, "." or ".." segment (the walk yields only these)."""
    parts = key.split("/")
    return "" not in parts and "." not in parts and ".." not in parts


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    """Size, mtime and ctime: a write (even one whose mtime is put back) moves ctime."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)

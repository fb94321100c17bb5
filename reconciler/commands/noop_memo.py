"""The memo of a verified no-op: `pixel plan` answered from a digest of its raw inputs when nothing changed.

A warm no-op spends most of its time turning inputs that did not change into a plan that says so. Here the
inputs are read as they arrive and hashed: the local walk's stat of every file (the identity the hash cache
keys md5s on), the walk's problems, each ListObjectsV2 body as received, the `Server` header and the bucket's
default encryption, with the loaded specs, the command's options and pixel's code. When a full plan over
exactly those inputs found nothing to do, what it printed is kept under that digest; the same digest later
prints it again, with no Entry built, no hash cache asked and no planner run.

Exact by construction: on a miss the full plan runs on the very walk and listing that were hashed (replayed
through `_Walked` and `_Listed`), so the digest recorded is of what that plan saw. Only specs of stores and
mappings alone are in scope, every S3 store on the direct transport, listed live, all of the specs: anything
the digest does not cover (tiers, datasets, actors, the final dataset, inventories, `--target`, HEADs for
ETags that are no md5) turns the memo off or keeps it from being written.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson

from reconciler import paths
from reconciler.choices import OutputFormat
from reconciler.logs import get_logger
from reconciler.model import Desired, Entry, LocalStoreSpec, Plan, Problem, S3StoreSpec
from reconciler.observe.hashcache import racy
from reconciler.plan.guards import GuardLimits
from reconciler.spec.desiredcache import _encode as encoded_desired
from reconciler.stores.base import FileIdentity, Store
from reconciler.stores.factory import build_store
from reconciler.stores.local import LocalStore
from reconciler.stores.s3.direct.raw import DirectTransport, page_of
from reconciler.stores.s3.objects import KMS_ALGORITHMS, md5_from_etag
from reconciler.stores.s3.store import S3Store
from reconciler.workspace import Workspace

FORMAT = 1
NO_MEMO_ENV = "PIXEL_NO_MEMO"
_PACKAGE = Path(__file__).resolve().parents[1]
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_TRUNCATED = re.compile(rb"<IsTruncated>\s*true\s*</IsTruncated>")

# The clock the racy window is judged by; a test moves it.
clock: Callable[[], int] = time.time_ns


@dataclass(frozen=True)
class Options:
    """Every option of `pixel plan` that can change what it prints or its exit code."""

    output_format: OutputFormat
    detailed_exitcode: bool
    compact: bool
    limits: GuardLimits | None  # its repr names every field
    parallelism: int

    def printing(self) -> tuple[object, ...]:
        """The options that can change the plan or what is printed of it: all but parallelism, which only says
        how many requests are in flight (a memo made at one parallelism answers another)."""
        return (self.output_format, self.detailed_exitcode, self.compact, self.limits)


def in_scope(ws: Workspace) -> bool:
    """Specs of stores and mappings alone, each S3 store on the direct transport, nothing discovered."""
    desired = ws.desired
    if (
        desired.tiers or desired.datasets or desired.registry is not None or desired.inventory is not None
        or desired.actor_layout is not None or desired.actors or desired.final is not None or desired.targets
        or ws.discovered or ws.observed_through
    ):
        return False
    for name, spec in desired.stores.items():
        store = ws.stores.get(name)
        if isinstance(spec, S3StoreSpec):
            if spec.inventory is not None or not isinstance(store, S3Store):
                return False
            if not isinstance(store.transport, DirectTransport):
                return False
        elif not (isinstance(spec, LocalStoreSpec) and type(store) is LocalStore):
            return False
    return True


def wanted(env: Mapping[str, str]) -> bool:
    return not env.get(NO_MEMO_ENV)


class Memo:
    """The inputs of one plan, read and hashed; `answer` when a recorded no-op matches, else `replaying`."""

    def __init__(self, ws: Workspace, specs: Path, options: Options) -> None:
        self.ws = ws
        self.path = _memo_file(ws.desired, specs)
        digest = hashlib.sha256(f"pixel no-op memo {FORMAT}\0".encode())
        digest.update(_code_key())
        digest.update(orjson.dumps(encoded_desired(ws.desired), option=orjson.OPT_SORT_KEYS))
        digest.update(repr((str(specs.resolve()), os.getcwd(), options.printing())).encode())
        # What the text renderer reads besides the plan: whether stdout is a terminal, NO_COLOR.
        digest.update(repr((sys.stdout.isatty(), "NO_COLOR" in os.environ)).encode())
        remote = sorted({(m.s3_store, m.s3_prefix) for m in ws.desired.mappings})
        encryption: dict[str, _Background] = {}
        for store_name in sorted({name for name, _ in remote}):
            transport = cast(S3Store, ws.stores[store_name]).transport
            assert isinstance(transport, DirectTransport)
            encryption[store_name] = _Background(transport.bucket_encryption)
        lister = _Background(lambda: [_raw_listing(cast(S3Store, ws.stores[s]), p) for s, p in remote])
        self.walks: dict[tuple[str, str], list[Entry]] = {}
        self.problems: dict[str, tuple[Problem, ...]] = {}
        walkers: dict[str, LocalStore] = {}
        for mapping in ws.desired.mappings:
            store = walkers.get(mapping.local_store)
            if store is None:
                # A store of its own: the walk's problems are this walk's, whatever else walked the store.
                store = walkers[mapping.local_store] = cast(
                    LocalStore, build_store(ws.desired.stores[mapping.local_store])
                )
            where = (mapping.local_store, mapping.local_base)
            if where not in self.walks:
                self.walks[where] = list(store.list(mapping.local_base))
        self.newest = 0
        for (store_name, base), entries in sorted(self.walks.items()):
            digest.update(repr((store_name, base)).encode())
            for entry in entries:
                digest.update(f"{entry.key}\0{entry.etag}\n".encode())
                self.newest = max(self.newest, _changed(entry))
        for store_name, store in sorted(walkers.items()):
            self.problems[store_name] = store.problems
            digest.update(repr((store_name, [(p.key, p.message) for p in store.problems])).encode())
        listings: list[list[bytes]] = lister.result()
        self.bodies = dict(zip(remote, listings, strict=True))
        self.no_kms = True
        self.encryption: dict[str, frozenset[str] | None] = {}
        for store_name, answer in sorted(encryption.items()):
            algorithms = self.encryption[store_name] = answer.result()
            self.no_kms = self.no_kms and not (algorithms or frozenset()) & KMS_ALGORITHMS
            transport = cast(S3Store, ws.stores[store_name]).transport
            digest.update(repr((store_name, transport.server, sorted(algorithms or ()))).encode())
        for (store_name, prefix), bodies in sorted(self.bodies.items()):
            digest.update(repr((store_name, prefix, len(bodies))).encode())
            for body in bodies:
                digest.update(hashlib.sha256(body).digest())
        self.key = digest.hexdigest()

    def answer(self) -> Recorded | None:
        """The no-op recorded under this very digest, or None (none, another digest, unreadable, racy now)."""
        if racy(self.newest, self.newest, clock()):
            return None
        try:
            data = orjson.loads(self.path.read_bytes())
            if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != self.key:
                return None
            stdout, code, hashed = data["stdout"], data["exit"], data["hashed"]
        except (OSError, ValueError, KeyError):
            return None  # a corrupt or foreign file is no memo: the full plan runs and writes it again
        if not (
            isinstance(stdout, str) and type(code) is int and isinstance(hashed, dict)
            and all(isinstance(k, str) and type(v) is int for k, v in hashed.items())
        ):
            return None
        recorded = Recorded(stdout, code, hashed)
        get_logger("pixel.plan").debug("no-op memo answered", memo=str(self.path))
        return recorded

    def replaying(self, ws: Workspace) -> Workspace:
        """`ws` observed through the walk and the listing hashed here: the full plan sees what the digest covers."""
        views: dict[str, Store] = {}
        for name in {m.local_store for m in ws.desired.mappings}:
            store = cast(LocalStore, ws.stores[name])
            walks = {base: entries for (where, base), entries in self.walks.items() if where == name}
            views[name] = cast(Store, _Walked(store, walks, self.problems.get(name, ())))
        for name in {m.s3_store for m in ws.desired.mappings}:
            bodies = {prefix: found for (where, prefix), found in self.bodies.items() if where == name}
            remote = cast(S3Store, ws.stores[name])
            remote.knows_encryption(self.encryption[name])  # the answer digested, not one asked again
            views[name] = cast(Store, _Listed(remote, bodies))
        return Workspace(ws.declared, ws.stores, observed_through=views, discovered=ws.discovered)

    def record(self, plan: Plan, stdout: str, code: int, hashed: Mapping[str, int], replayed: Workspace) -> bool:
        """Keep `stdout` under the digest when the plan found nothing at all and every input was covered."""
        if plan.actions or plan.findings or plan.errors or not self.no_kms:
            return False
        if racy(self.newest, self.newest, clock()):
            return False  # a file so fresh that a same-tick rewrite keeps its stat: not vouched for
        for view in replayed.observed_through.values():
            if isinstance(view, _Listed) and not view.all_md5s:
                return False  # an md5 a HEAD answered is an input the digest does not hold
        body = {"format": FORMAT, "key": self.key, "stdout": stdout, "exit": code, "hashed": dict(hashed)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with paths.atomic_file(self.path, refuse=OSError, what="no-op memo") as out:
                out.write(orjson.dumps(body))
        except OSError:
            return False  # a cache that cannot be written costs speed, never the plan
        return True


@dataclass(frozen=True)
class Recorded:
    stdout: str
    exit: int
    hashed: Mapping[str, int]


class _Background:
    """`call()` run in a daemon thread, its answer (or its exception) taken by `result()`."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._answer: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._answer = call()
            except BaseException as exc:  # handed to the caller of result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="pixel-memo", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._answer


def _raw_listing(store: S3Store, prefix: str) -> list[bytes]:
    """Every ListObjectsV2 body of `prefix`, one after another; only the continuation token is read."""
    transport = store.transport
    assert isinstance(transport, DirectTransport)
    bodies: list[bytes] = []
    token: str | None = None
    while True:
        body = transport.list_body(prefix, {} if token is None else {"ContinuationToken": token})
        bodies.append(body)
        token = _token(body)
        if token is None:
            return bodies


def _token(body: bytes) -> str | None:
    """The continuation token of a truncated page, read without parsing the page; None on the last one."""
    found = _TOKEN.search(body)
    if not _TRUNCATED.search(body) or found is None:
        return None
    return _unescaped(found.group(1).decode())


def _unescaped(text: str) -> str:
    """XML's five entities undone (xml.sax.saxutils would import urllib.request, which a warm plan never needs);
    a token read wrong only lists another way, which `_Listed` finds out before the plan sees it."""
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return text


class ReplayMismatch(Exception):
    """The bodies hashed do not parse into the listing they were taken for: the full plan lists again."""


class _Listed:
    """An S3 store whose listing of each prefix is the bodies the memo hashed, parsed as `list` parses them."""

    def __init__(self, store: S3Store, bodies: Mapping[str, list[bytes]]) -> None:
        self._store = store
        self._bodies = bodies
        self.name = store.name
        self.all_md5s = True

    def list(self, prefix: str, known: object = None) -> Iterator[Entry]:
        for entry in self._store.entries_of(self._pages(prefix)):
            if entry.md5 is None or entry.md5 != md5_from_etag(entry.etag):
                self.all_md5s = False
            yield entry

    def list_expecting(self, prefix: str, known: object) -> Iterator[Entry]:
        return self.list(prefix)

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        bodies = self._bodies[prefix]
        for at, body in enumerate(bodies):
            page = page_of(body)
            followed = None if at == len(bodies) - 1 else _token(body)
            # The token the memo followed must be the one the parser reads, or the listing is not this one.
            if followed != (page.get("NextContinuationToken") if page.get("IsTruncated") else None):
                raise ReplayMismatch(f"{self.name}: page {at} of {prefix!r} does not continue as it was listed")
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _Walked:
    """A local store whose walk of each base already happened (the memo's), reading files as the store does."""

    def __init__(self, store: LocalStore, walks: Mapping[str, list[Entry]], problems: tuple[Problem, ...]) -> None:
        self._store = store
        self._walks = walks
        self.name = store.name
        self.problems = problems

    @property
    def root_path(self) -> str:
        return self._store.root_path

    def file_path(self, key: str) -> str:
        return self._store.file_path(key)

    def walked_identity(self, entry: Entry) -> FileIdentity | None:
        return self._store.walked_identity(entry)

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        return self._store.open(key, if_match=if_match)

    def list(self, prefix: str) -> Iterator[Entry]:
        return iter(self._walks[prefix])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _changed(entry: Entry) -> int:
    """When the walked file last changed (its mtime or ctime, the later), from its version token
    (stores/local.version_token: size-mtime-ctime-ino-dev); an unreadable token counts as changed now."""
    parts = (entry.etag or "").split("-")
    try:
        return max(int(parts[1]), int(parts[2]))
    except (IndexError, ValueError):
        return clock()


def _memo_file(desired: Desired, specs: Path) -> Path:
    """One memo per workspace: the spec directory, the working directory and the buckets it lists."""
    buckets = sorted(
        (spec.endpoint or "", spec.bucket) for spec in desired.stores.values() if isinstance(spec, S3StoreSpec)
    )
    name = hashlib.sha256(repr((str(specs.resolve()), os.getcwd(), buckets)).encode()).hexdigest()[:32]
    return paths.cache_dir() / "memo" / f"{name}.json"


def _code_key() -> bytes:
    """pixel's code as installed: every module's name, size and mtime (an upgrade or an edit is another key)."""
    found: list[str] = []
    for directory, _, files in os.walk(_PACKAGE):
        for file in files:
            if file.endswith((".py", ".json")):
                path = os.path.join(directory, file)
                st = os.stat(path)
                found.append(f"{os.path.relpath(path, _PACKAGE)}\0{st.st_size}\0{st.st_mtime_ns}")
    return "\n".join(sorted(found)).encode()

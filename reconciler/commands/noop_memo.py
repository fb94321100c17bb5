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

The listing's pages all at once. A listing by continuation token is one round trip per page, one after
another: 100 pages, 5 s at 25 ms each way. So each page is asked at a cut that needs no page before it: the
first page from the prefix's start, page i+1 after the marker that ends page i (`_cut_after`: S3 lists in
UTF-8 byte order and StartAfter=K lists what follows K, so the cut is StartAfter page i's last key; SeaweedFS
lists a tree and its NextContinuationToken is the plain marker it continues from, so the cut is that
ContinuationToken, asked again: the very request a listing page after page makes. As StartAfter it would not
be: StartAfter=K skips K's subtree where K is a key and a directory alike. A cut names its parameter, so the
pages asked before any answer has said which server this is are asked as they were recorded, and a page asked
in the other form breaks the chain.) The memo keeps its listing's cuts;
the next plan asks every recorded page at once (`PAGES_IN_FLIGHT`) and keeps them only while they chain:
page i truncated and its marker the cut page i+1 was asked at. Such a chain is a listing: page 0 shows the
prefix's first keys up to its marker and that more follow, each page i+1 every key after page i's marker up
to its own, the last one that none follows; the pages tile the prefix with nothing left out and nothing twice,
as a listing by continuation token does (whose pages are no snapshot of one instant either). Where the chain
breaks (a key inserted or deleted moves a marker; keys added at the end leave the last page truncated) the
pages from there on are dropped and the listing goes on one page after another from the last page that
chained, so the plan is always made over a whole listing and its cuts are recorded for the next one. The
digest holds every page's cut and its body's sha256: identical cuts and bodies are the listing the memo was
made over, and any body that differs (an ETag, a size, a key) is another digest, a miss.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
from reconciler.stores.s3.listing import order_of, tree_order, tree_resumes_at
from reconciler.stores.s3.objects import KMS_ALGORITHMS, md5_from_etag
from reconciler.stores.s3.store import S3Store
from reconciler.workspace import Workspace

FORMAT = 3
NO_MEMO_ENV = "PIXEL_NO_MEMO"
# Recorded pages asked at once: one round trip for a 32,000-object prefix; the connections are the pool's.
PAGES_IN_FLIGHT = 32
_PACKAGE = Path(__file__).resolve().parents[1]
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_TRUNCATED = re.compile(rb"<IsTruncated>\s*true\s*</IsTruncated>")
_MAX_KEYS = re.compile(rb"<MaxKeys>\s*(\d+)\s*</MaxKeys>")
_CUT_PARAMETERS = ("StartAfter", "ContinuationToken")

# Where a page starts: (ListObjectsV2 parameter, value), StartAfter in S3's byte order, ContinuationToken in
# SeaweedFS's tree order.
Cut = tuple[str, str]

# Keys per ListObjectsV2 page the memo asks for: None leaves it to the server (1,000 on S3); a test sets a few.
page_keys: int | None = None

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
        self._recorded = _read(self.path)
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
        cuts = _recorded_cuts(self._recorded)
        lister = _Background(lambda: _listings([(cast(S3Store, ws.stores[s]), p) for s, p in remote], cuts))
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
        listings: list[list[ListedPage]] = lister.result()
        self.bodies = dict(zip(remote, listings, strict=True))
        self.no_kms = True
        self.encryption: dict[str, frozenset[str] | None] = {}
        for store_name, answer in sorted(encryption.items()):
            algorithms = self.encryption[store_name] = answer.result()
            self.no_kms = self.no_kms and not (algorithms or frozenset()) & KMS_ALGORITHMS
            transport = cast(S3Store, ws.stores[store_name]).transport
            digest.update(repr((store_name, transport.server, sorted(algorithms or ()))).encode())
        for (store_name, prefix), pages in sorted(self.bodies.items()):
            digest.update(repr((store_name, prefix, len(pages))).encode())
            for page in pages:
                digest.update(repr(page.after).encode() + b"\0" + hashlib.sha256(page.body).digest())
        self.key = digest.hexdigest()

    def answer(self) -> Recorded | None:
        """The no-op recorded under this very digest, or None (none, another digest, unreadable, racy now)."""
        if racy(self.newest, self.newest, clock()):
            return None
        data = self._recorded
        if data is None or data.get("key") != self.key:
            return None
        try:
            stdout, code, hashed = data["stdout"], data["exit"], data["hashed"]
        except KeyError:
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
        # The cuts the next plan asks its pages at, all at once (the digest holds them with the bodies).
        cuts = [[store_name, prefix, [list(page.after) for page in pages[1:] if page.after is not None]]
                for (store_name, prefix), pages in sorted(self.bodies.items())]
        body = {"format": FORMAT, "key": self.key, "stdout": stdout, "exit": code, "hashed": dict(hashed),
                "cuts": cuts}
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


@dataclass(frozen=True)
class ListedPage:
    """One ListObjectsV2 body as received, and the cut it was asked at (None: the prefix's start)."""

    after: Cut | None
    body: bytes


def _read(path: Path) -> dict[str, Any] | None:
    """The memo file when it is one of this format; None for none, unreadable, corrupt or foreign."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _recorded_cuts(data: Mapping[str, Any] | None) -> dict[tuple[str, str], list[Cut | None]]:
    """(store, prefix) -> the cut of each page the memo's listing had, the first None; what is not that shape
    is no record (its listing then goes one page after another, as with no memo)."""
    found: dict[tuple[str, str], list[Cut | None]] = {}
    recorded = data.get("cuts") if data is not None else None
    for item in recorded if isinstance(recorded, list) else ():
        if (
            isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[1], str)
            and isinstance(item[2], list) and all(
                isinstance(cut, list) and len(cut) == 2 and cut[0] in _CUT_PARAMETERS and isinstance(cut[1], str)
                for cut in item[2]
            )
        ):
            found[(item[0], item[1])] = [None, *((str(cut[0]), str(cut[1])) for cut in item[2])]
    return found


def _listings(
    remote: Sequence[tuple[S3Store, str]], recorded: Mapping[tuple[str, str], list[Cut | None]]
) -> list[list[ListedPage]]:
    """Each (store, prefix)'s whole listing: its recorded pages asked all at once and kept while they chain
    (`_chained`), else (no record) one page after another from the prefix's start."""
    asked = [(store, prefix, recorded.get((store.name, prefix), [None])) for store, prefix in remote]
    workers = max(1, min(PAGES_IN_FLIGHT, sum(len(cuts) for _, _, cuts in asked)))
    with ThreadPoolExecutor(workers, thread_name_prefix="pixel-memo-page") as pool:
        sent: list[list[Future[bytes]]] = [
            [pool.submit(_page, _transport(store), prefix, cut) for cut in cuts] for store, prefix, cuts in asked
        ]
        return [
            _chained(_transport(store), prefix, [ListedPage(cut, answer.result()) for cut, answer in zip(
                cuts, answers, strict=True)])
            for (store, prefix, cuts), answers in zip(asked, sent, strict=True)
        ]


def _transport(store: S3Store) -> DirectTransport:
    transport = store.transport
    assert isinstance(transport, DirectTransport)
    return transport


def _page(transport: DirectTransport, prefix: str, after: Cut | None) -> bytes:
    params: dict[str, Any] = {} if after is None else {after[0]: after[1]}
    if page_keys is not None:
        params["MaxKeys"] = page_keys
    return transport.list_body(prefix, params)


def _chained(transport: DirectTransport, prefix: str, pages: list[ListedPage]) -> list[ListedPage]:
    """The pages asked at once up to the first that was not asked where the one before ends, then the listing
    continued one page after another from the last kept: always the whole prefix, in order."""
    tree = order_of(transport.server or "") is tree_order
    kept = pages[:1]
    for page in pages[1:]:
        if _cut_after(kept[-1].body, tree) != page.after:
            break
        kept.append(page)
    while (after := _cut_after(kept[-1].body, tree)) is not None:
        if after == kept[-1].after:  # a server that does not move on would be asked for ever
            raise ReplayMismatch(f"the listing of {prefix!r} does not move past {after!r}")
        kept.append(ListedPage(after, _page(transport, prefix, after)))
    return kept


def _cut_after(body: bytes, tree: bool) -> Cut | None:
    """Where the page after this one starts, read without parsing the page; None when this one is the last.
    In S3's byte order, StartAfter this page's last key; in SeaweedFS's tree order, its continuation token."""
    if not _TRUNCATED.search(body):
        if not tree or b"<CommonPrefixes>" in body:
            return None
        # A full page that says it is the last: asked on under its last key, as the store's listing does
        # (`listing.tree_resumes_at`: SeaweedFS hides such a key's subtree). That rule read off the raw bytes:
        # parsing the page (~10 ms at 1,000 keys) would cost a hit what it otherwise never pays, and a replay
        # checks each cut against the parsed rule (`_parsed_cut`), so the two cannot disagree unnoticed.
        full = _MAX_KEYS.search(body)
        last = _last_key(body)
        if full is None or last is None or body.count(b"<Contents>") < int(full.group(1)):
            return None
        return ("ContinuationToken", last if last.endswith("/") else last + "/")
    if tree:
        token = _token(body)
        return None if token is None else ("ContinuationToken", token)
    last = _last_key(body)
    return None if last is None else ("StartAfter", last)


def _last_key(body: bytes) -> str | None:
    start = body.rfind(b"<Key>")
    end = body.find(b"</Key>", start)
    if start < 0 or end < 0:
        return None
    return urllib.parse.unquote_plus(_unescaped(body[start + len(b"<Key>"):end].decode()))


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

    def __init__(self, store: S3Store, bodies: Mapping[str, list[ListedPage]]) -> None:
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
        """The pages parsed, each checked to start where the parser reads the one before it ends, the last to
        end the listing: the raw reading the memo cut them by (`_cut_after`) must be the parser's, or this is
        not the whole listing."""
        tree = order_of(self._store.transport.server or "") is tree_order
        pages = self._bodies[prefix]
        follows: Cut | None = None
        for at, listed in enumerate(pages):
            page = page_of(listed.body)
            if listed.after != follows:
                raise ReplayMismatch(f"{self.name}: page {at} of {prefix!r} does not start where the one before ends")
            follows = _parsed_cut(page, tree)
            if at == len(pages) - 1 and (page.get("IsTruncated") or follows is not None):
                raise ReplayMismatch(f"{self.name}: the listing of {prefix!r} stops at a truncated page")
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _parsed_cut(page: Mapping[str, Any], tree: bool) -> Cut | None:
    """`_cut_after` of a parsed page (keys decoded as the store decodes them)."""
    if not page.get("IsTruncated"):
        resume = tree_resumes_at(page) if tree else None
        return None if resume is None else ("ContinuationToken", resume)
    if tree:
        token = page.get("NextContinuationToken")
        return ("ContinuationToken", token) if isinstance(token, str) else None
    contents = page.get("Contents") or [{}]
    key = contents[-1].get("Key")
    return ("StartAfter", key) if isinstance(key, str) else None


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

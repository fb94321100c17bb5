"""What the service reads: the specs and stores (a Workspace), the actor manifests, and a status snapshot.

Everything goes through the same code as the CLI: `load` and `open_stores` for
the specs, `guarded_plan` for observation, `status_document` for counts. The
service keeps no state of its own beyond caches: a manifest's API document is
rebuilt when the file's stat changes, the status snapshot after `status_ttl`
seconds.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from starlette.concurrency import run_in_threadpool

from reconciler.actor_layout import MAPPING_PREFIX, discover
from reconciler.apply.session import LockOptions, locked
from reconciler.errors import UserError
from reconciler.manifests.actors import render_actor_manifest
from reconciler.manifests.common import s3_uri
from reconciler.manifests.registry import resolves_to
from reconciler.model import (
    ActorLayout,
    ActorSpec,
    DatasetSpec,
    Desired,
    DiscoveredActor,
    Entry,
    LocalStoreSpec,
    ObjectRef,
    Observed,
    Plan,
    S3StoreSpec,
)
from reconciler.observe.world import read_generated
from reconciler.plan.datasets import tier_entry
from reconciler.plan.generated import state_for
from reconciler.plan.status import status_document
from reconciler.service.documents import BadManifest, training_data
from reconciler.service.health import Down, Health
from reconciler.service.models import DatasetEntry, Resolution, TrainingData
from reconciler.spec import load_specs
from reconciler.stores.base import Store, StoreError
from reconciler.stores.factory import build_store
from reconciler.targets import find_actor
from reconciler.workflow import guarded_plan, open_stores
from reconciler.workspace import Workspace

# An unknown actor id re-reads the actor directories (a new actor may have appeared), at most this often.
RELOAD_INTERVAL = 5.0


class ServiceError(Exception):
    """An answer other than 2xx: the HTTP status and one clear message, sent as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unreachable(ServiceError):
    """S3 cannot be used now (degraded mode): what needs it answers 503 with why; what reads disk answers from it."""

    def __init__(self, down: dict[str, Down], what: str) -> None:
        stores = "; ".join(f"{d.reason} (since {d.since_iso})" for d in down.values())
        super().__init__(503, f"S3 is unreachable: {stores}; {what}")
        self.down = down


# The header on an answer served from disk alone while S3 is unreachable: the S3 side was not observed.
OBSERVED_HEADER = "X-Pixel-Observed"
MANIFEST_ONLY = "manifest-only; s3=unreachable"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A JSON body ready to send, with its strong ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One full observation and plan, as `pixel status` makes it, and what the page and the API derive from it."""

    desired: Desired
    observed: Observed
    plan: Plan
    status: dict[str, Any]
    taken: float


def _local_root(desired: Desired, store: str) -> Path:
    spec = desired.stores[store]
    assert isinstance(spec, LocalStoreSpec)
    return Path(spec.root)


def discovered_locally(desired: Desired, stores: dict[str, Store]) -> tuple[DiscoveredActor, ...]:
    """The actors discovery finds without S3: local directory names, and the names in the manifests on disk (an
    actor whose images are only in S3 still has its manifest here)."""
    layout = desired.actor_layout
    if layout is None or layout.discover is None:
        return ()
    base = f"{layout.local_root}/" if layout.local_root else ""
    rests = (e.key[len(base) :] for e in stores[layout.local_store].list(base))
    names = {rest.split("/", 1)[0] for rest in rests if "/" in rest}
    manifests = f"{layout.manifest_dir}/" if layout.manifest_dir else ""
    for entry in stores[layout.manifest_store].list(manifests):
        if "/" in entry.key[len(manifests) :] or not entry.key.endswith("_manifest.json"):
            continue
        try:
            name = json.loads((_local_root(desired, layout.manifest_store) / entry.key).read_bytes())["character_name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a manifest edited by hand names no actor; the next apply rewrites it
        if isinstance(name, str):
            names.add(name)
    return tuple(DiscoveredActor(actor_id, actor_name) for actor_id, actor_name in discover(layout, names))


def parse_actor_id(raw: str) -> str:
    """The digits of `42` or `0042`; anything else is a 400 naming the expected form."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise ServiceError(400, f"actor_id must be a number such as 42 or 0042, got {raw[:40]!r}")
    return raw


T = TypeVar("T")


class Coalescer:
    """At most one run of a piece of work per key at a time; callers arriving while it runs await its result.

    What keeps `?refresh=true` from queueing unbounded work: however many callers ask, one observation per
    actor (and one of the status) runs, in the thread pool, and the others wait on the event loop without a
    thread. Only the loop's thread touches this, so it needs no lock. A caller that goes away does not cancel
    the run the others wait for.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}
        self._waiting: dict[str, int] = {}

    def waiting(self, key: str) -> int:
        """How many callers are waiting for a run of `key` that another caller started."""
        return self._waiting.get(key, 0)

    async def run(self, key: str, work: Callable[[], T]) -> T:
        running = self._running.get(key)
        if running is None or running.done():  # done: finished before this caller asked, its result is older
            running = asyncio.ensure_future(run_in_threadpool(work))
            self._running[key] = running
            running.add_done_callback(functools.partial(self._done, key))
            return cast(T, await asyncio.shield(running))
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            return cast(T, await asyncio.shield(running))
        finally:
            self._waiting[key] -= 1

    def _done(self, key: str, future: asyncio.Future[Any]) -> None:
        if self._running.get(key) is future:  # not a newer run that started between its end and this callback
            del self._running[key]
        if not future.cancelled():
            future.exception()  # retrieved here: every caller may have gone, and the loop would log it as lost


class Service:
    def __init__(
        self,
        specs: Path,
        *,
        status_ttl: float = 10.0,
        lock_timeout: float = 30.0,
        parallelism: int = 8,
        health: Health | None = None,
    ) -> None:
        self.specs = specs
        self.health = health or Health()
        self._live = False  # whether the open workspace has the S3 stores (False: degraded, or not opened yet)
        self.status_ttl = status_ttl
        self.lock_timeout = lock_timeout  # how long a mutation waits for another apply's bucket lock
        self.parallelism = parallelism
        self._lock = threading.Lock()  # guards the caches below
        self.mutation_lock = threading.Lock()  # one mutation at a time in this process; the bucket lock across
        self._snapshot_lock = threading.Lock()
        self._ws: Workspace | None = None
        self._loaded_at = 0.0
        self._open_lock = threading.Lock()  # one open() at a time; callers that waited take its workspace
        self._opens_started = 0
        self._ws_open = 0  # which open (1-based) made self._ws
        self._documents: dict[Path, tuple[tuple[int, int, int], Rendered, TrainingData]] = {}
        self._snapshot: Snapshot | None = None
        self._derived: tuple[Snapshot | None, dict[str, Any]] = (None, {})
        self.refreshes = Coalescer()  # ?refresh=true: one observation per actor (and of the status) at a time

    # --- specs and stores -----------------------------------------------------------------------------

    def open(self) -> Workspace:
        """Load the specs and open the stores afresh (the CLI's `load` + `open_stores`).

        The S3 stores are probed first (each within a deadline) unless they were found down and the next probe
        is not due yet; while any is down the workspace holds only the local stores (degraded mode).

        Callers at once share: an open that began after this call asked is as fresh as one of its own, so it is
        taken instead. Anyone can make the service open (a GET of an unknown actor id does); this way however
        many ask at once, at most two opens run, one after the other.
        """
        with self._lock:
            asked = self._opens_started
        with self._open_lock:
            with self._lock:
                if self._ws is not None and self._ws_open > asked:
                    return self._ws
                self._opens_started += 1
                number = self._opens_started
            ws, live = self._open()
            with self._lock:
                self._ws, self._loaded_at, self._live, self._ws_open = ws, time.monotonic(), live, number
            return ws

    def _open(self) -> tuple[Workspace, bool]:
        desired = load_specs(self.specs, os.environ)
        if not isinstance(desired, Desired):
            problems = "; ".join(desired.messages)
            raise ServiceError(503, f"the specs in {self.specs} cannot be used: {problems}") from desired
        buckets = [spec for spec in desired.stores.values() if isinstance(spec, S3StoreSpec)]
        down = self.health.down()
        if not down or self.health.due():
            # Live so far: wait for a probe another request runs, rather than open stores it may find down.
            probed = self.health.probe(buckets, wait=not down)
            down = probed if probed is not None else down
        if down:
            ws, live = self._local_workspace(desired), False
        else:
            try:
                ws, live = open_stores(desired, parallelism=self.parallelism), True
            except UserError as exc:
                raise ServiceError(503, f"the specs in {self.specs} cannot be used: {exc}") from exc
        return ws, live

    def _local_workspace(self, desired: Desired) -> Workspace:
        stores = {n: build_store(s) for n, s in desired.stores.items() if isinstance(s, LocalStoreSpec)}
        try:
            return Workspace(desired, stores, discovered=discovered_locally(desired, stores))
        except StoreError as exc:
            raise ServiceError(503, f"could not list the actor directories: {exc}") from exc

    @property
    def live(self) -> bool:
        """Whether the open workspace reaches S3; False in degraded mode (its answers come from disk alone)."""
        with self._lock:
            return self._live

    def recheck_due(self) -> bool:
        """Degraded, and the next probe is due: the caller should `open()` (cheap; no I/O)."""
        return not self.live and self.health.due()

    def unreachable(self, what: str) -> Unreachable:
        # Empty only while another request's probe has just found S3 back and is opening the stores.
        down = self.health.down() or {"S3": Down(time.time(), "S3 was unreachable and is being opened again")}
        return Unreachable(down, what)

    def require_live(self, what: str) -> None:
        """Raise the 503 of degraded mode unless the open workspace reaches S3."""
        if not self.live:
            raise self.unreachable(what)

    def failed(self, exc: UserError, status: int, message: str) -> ServiceError:
        """The error for an observation or apply that failed: when a probe now finds S3 down, degraded mode's 503
        (and the service is degraded from here on), else `status` with `message`."""
        self.open()
        if not self.live:
            return self.unreachable("nothing was changed; answers come from the manifests on disk until it is back")
        return ServiceError(status, f"{message}: {exc}")

    def workspace(self, *, max_age: float | None = None) -> Workspace:
        """The open workspace; opened afresh when there is none or it is older than `max_age` seconds."""
        with self._lock:
            ws, age = self._ws, time.monotonic() - self._loaded_at
        if ws is None or (max_age is not None and age > max_age):
            return self.open()
        return ws

    def known_actor(self, raw_id: str) -> tuple[Workspace, ActorSpec] | None:
        """The actor from the open workspace without any I/O (for the event loop); None when that needs loading."""
        actor_id = parse_actor_id(raw_id)
        with self._lock:
            ws = self._ws
        actor = find_actor(ws.desired, actor_id) if ws is not None else None
        if ws is None or actor is None or not actor.actor_id.isdigit():
            return None
        return ws, actor

    def actor(self, raw_id: str, *, fresh: bool = False) -> tuple[Workspace, ActorSpec]:
        """The actor `raw_id` addresses (42 or 0042), from freshly opened stores when `fresh`; 404 if none."""
        actor_id = parse_actor_id(raw_id)
        ws = self.open() if fresh else self.workspace()
        actor = find_actor(ws.desired, actor_id)
        if actor is None and not fresh and time.monotonic() - self._loaded_at > RELOAD_INTERVAL:
            ws = self.open()
            actor = find_actor(ws.desired, actor_id)
        if actor is None:
            known = ", ".join(a.actor_id for a in ws.desired.actors) or "none"
            raise ServiceError(404, f"no actor {actor_id} in the specs or the actor directories (actors: {known})")
        if not actor.actor_id.isdigit():
            raise ServiceError(404, f"actor {actor.actor_id!r} has no numeric id; the API addresses actors by number")
        return ws, actor

    # --- training data --------------------------------------------------------------------------------

    def manifest_path(self, desired: Desired, actor: ActorSpec) -> Path:
        return _local_root(desired, actor.manifest.store) / actor.manifest.key

    def training_data(self, desired: Desired, actor: ActorSpec) -> tuple[Rendered, TrainingData] | None:
        """The API document from the actor's manifest on disk, cached by the file's stat; None without one."""
        path = self.manifest_path(desired, actor)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            cached = self._documents.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        try:
            manifest = json.loads(path.read_bytes())
            root = _local_root(desired, self.actor_layout(desired).local_store)
            document = training_data(actor.actor_id, manifest, root)
        except (OSError, ValueError, BadManifest) as exc:
            raise ServiceError(
                500, f"the manifest {path} cannot be read ({exc}); `pixel apply` rewrites it from the stores"
            ) from exc
        rendered = Rendered.of(document.model_dump_json().encode())
        with self._lock:
            self._documents[path] = (stamp, rendered, document)
        return rendered, document

    def manifest_document(self, ws: Workspace, actor: ActorSpec) -> Rendered:
        found = self.training_data(ws.desired, actor)
        if found is None:
            raise ServiceError(
                404,
                f"actor {actor.actor_id} has no manifest yet at {self.manifest_path(ws.desired, actor)}: "
                "`pixel apply` writes it (or ask with ?refresh=true for the live state)",
            )
        return found[0]

    def _live_manifest(self, ws: Workspace, actor: ActorSpec) -> bytes:
        """The manifest's bytes as a targeted apply would write them now: this actor observed alone (read only)."""
        self.require_live("the actor cannot be observed live")
        try:
            observed, _ = guarded_plan(ws, targets=[MAPPING_PREFIX + actor.actor_id])
        except UserError as exc:
            raise self.failed(exc, 502, f"could not observe actor {actor.actor_id}") from exc
        state = state_for(ws.desired, observed, actor)
        current = observed.generated.get(actor.manifest)
        previous = current.content if current is not None else None
        return render_actor_manifest(state, actor, previous, None)

    def _document(self, ws: Workspace, actor: ActorSpec, manifest: bytes) -> Rendered:
        root = _local_root(ws.desired, self.actor_layout(ws.desired).local_store)
        return Rendered.of(training_data(actor.actor_id, json.loads(manifest), root).model_dump_json().encode())

    def live_training_data(self, ws: Workspace, actor: ActorSpec) -> Rendered:
        """`?refresh=true`: observe only this actor's directory and S3 prefix (read only, no lock), answer from that."""
        return self._document(ws, actor, self._live_manifest(ws, actor))

    def initialize_manifest(self, ws: Workspace, actor: ActorSpec) -> Rendered:
        """Seed 004's auto-initialisation, for an actor with no manifest yet: observe it and write the manifest.

        A manifest another writer made meanwhile is kept and served, never overwritten (`write_manifest`).
        """
        return self.write_manifest(ws, actor, replace=False)

    def write_manifest(self, ws: Workspace, actor: ActorSpec, *, replace: bool) -> Rendered:
        """The actor observed alone and its manifest written from that, as the targeted apply would write it.

        Only the manifest is written, under the bucket lock (the targeted apply's own), with a precondition the
        store enforces: created only where no file is, or (`replace`) only over the exact file read. Nothing is
        uploaded or downloaded; that stays the job of an apply.
        """
        self.require_live("the actor cannot be observed to write its manifest")
        store = ws.stores[actor.manifest.store]
        key = actor.manifest.key
        with self.mutation_lock, locked(ws, LockOptions(timeout=self.lock_timeout)) as (ws, _):
            found = self.training_data(ws.desired, actor)
            if found is not None and not replace:
                return found[0]
            manifest = self._live_manifest(ws, actor)
            try:
                current = store.stat(key)
                if current is not None and self.manifest_path(ws.desired, actor).read_bytes() == manifest:
                    return self._document(ws, actor, manifest)
                store.write(
                    key,
                    lambda: io.BytesIO(manifest),
                    size=len(manifest),
                    md5=hashlib.md5(manifest).hexdigest(),
                    if_match=current.etag if current is not None else None,
                    if_absent=current is None,
                )
            except (OSError, StoreError) as exc:
                raise ServiceError(500, f"could not write the manifest of actor {actor.actor_id}: {exc}") from exc
        return self._document(ws, actor, manifest)

    @staticmethod
    def actor_layout(desired: Desired) -> ActorLayout:
        layout = desired.actor_layout
        if layout is None:
            raise ServiceError(404, "the specs declare no actors section")
        return layout

    # --- degraded mode --------------------------------------------------------------------------------

    def degraded_status(self) -> dict[str, Any]:
        """/api/status while S3 is unreachable: which S3 stores are down, since when and why; nothing observed."""
        down = self.health.down()
        desired = self.workspace().desired
        stores: dict[str, dict[str, Any]] = {}
        for name, spec in sorted(desired.stores.items()):
            if isinstance(spec, S3StoreSpec):
                gone = down.get(name)
                stores[name] = (
                    {"reachable": False, "since": gone.since_iso, "reason": gone.reason}
                    if gone is not None
                    else {"reachable": True}
                )
        return {"observed": False, "degraded": True, "stores": stores}

    # --- the status snapshot --------------------------------------------------------------------------

    def fresh_snapshot(self) -> Snapshot | None:
        """The last observation while it is younger than status_ttl, without waiting on one being taken."""
        current = self._snapshot
        if current is not None and time.monotonic() - current.taken < self.status_ttl:
            return current
        return None

    def snapshot(self, *, refresh: bool = False) -> Snapshot:
        """The last full observation if younger than status_ttl, else a new one (one at a time)."""
        with self._snapshot_lock:
            current = self._snapshot
            if current is not None and not refresh and time.monotonic() - current.taken < self.status_ttl:
                return current
            ws = self.open()
            self.require_live("the stores cannot be observed")
            try:
                observed, plan = guarded_plan(ws)
            except UserError as exc:
                raise self.failed(exc, 502, "could not observe the stores") from exc
            snap = Snapshot(ws.desired, observed, plan, status_document(ws.desired, observed, plan), time.monotonic())
            self._snapshot = snap
            return snap


    async def per_snapshot(self, snap: Snapshot, name: str, build: Callable[[], T]) -> T:
        """What `build` derives from `snap` (a rendered answer), built once per snapshot in a worker thread: every
        request between two observations would build the same bytes. Two racing builders build it twice, never a
        mix; the answer for an older snapshot is never kept once a newer one was asked for."""
        memo = self._derived
        if memo[0] is not snap:
            memo = (snap, {})
            self._derived = memo
        if name not in memo[1]:
            memo[1][name] = await run_in_threadpool(build)
        return cast(T, memo[1][name])


def dataset_entries(snap: Snapshot) -> list[DatasetEntry]:
    desired, observed = snap.desired, snap.observed

    def lookup(store: str, key: str) -> Entry | None:
        return tier_entry(desired, observed, store, key) or observed.sources.get(ObjectRef(store, key))

    states = snap.status.get("datasets", {}).get("by_name", {})
    out = []
    for d in desired.datasets:
        found = resolves_to(d, lookup)
        resolution = None
        if found is not None:
            ref, via = found
            where = desired.stores[ref.store]
            uri = s3_uri(where, ref.key) if isinstance(where, S3StoreSpec) else str(ref)
            resolution = Resolution(
                store=ref.store, key=ref.key, uri=uri, via="canonical" if via == "canonical" else "source"
            )
        out.append(_dataset_entry(desired, d, states.get(d.name, "unknown"), resolution))
    return out


def unobserved_dataset_entries(desired: Desired) -> list[DatasetEntry]:
    """Every registered dataset while S3 is unreachable: what the specs say, its state unknown, resolved nowhere."""
    return [_dataset_entry(desired, d, "unknown", None) for d in desired.datasets]


def _dataset_entry(desired: Desired, d: DatasetSpec, state: str, resolution: Resolution | None) -> DatasetEntry:
    """One dataset as the API shows it: what the specs declare, with its observed state and resolution."""
    spec = desired.stores[d.store]
    assert isinstance(spec, S3StoreSpec)
    return DatasetEntry(
        name=d.name,
        tier=d.tier,
        category=d.category,
        format=d.format,
        stages=list(d.stages),
        canonical=s3_uri(spec, d.key),
        source=str(d.source) if d.source is not None else None,
        state=state,
        resolves_to=resolution,
    )


def read_registry(desired: Desired) -> dict[str, Any] | None:
    ref = desired.registry
    if ref is None:
        return None
    try:
        document = json.loads((_local_root(desired, ref.store) / ref.key).read_bytes())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def final_dataset_manifest(ws: Workspace) -> dict[str, Any]:
    """The published final dataset's manifest.json: the one place the final dataset is looked up.

    Read from S3, where it is published (the local copy may lag a publish that was interrupted); from the local
    copy only while S3 is unreachable, and the route says so.
    """
    if ws.desired.final is None:
        raise ServiceError(404, "no final dataset is declared in the specs")
    ref = ws.desired.final.manifest
    if ref.store not in ws.stores:  # degraded mode: the copy the last publish kept on disk
        ref = ws.desired.final.manifest_local
    try:
        current = read_generated(ws.stores, ref)
        document = json.loads(current.content) if current.content is not None else None
    except (StoreError, ValueError) as exc:
        raise ServiceError(500, f"the final dataset manifest {ref} cannot be read: {exc}") from exc
    if document is None:
        raise ServiceError(404, f"the final dataset is declared but not published yet ({ref})")
    if not isinstance(document, dict):
        raise ServiceError(500, f"the final dataset manifest {ref} is not a JSON object")
    return document

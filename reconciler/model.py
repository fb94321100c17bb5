"""Frozen data shared by every layer: what is desired, what was observed, what to do.

Nothing here performs I/O. The planner consumes `Desired` and `Observed` and
produces a `Plan`; the executor consumes the `Plan`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import field
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(field_specifiers=(field,))
def dataclass(*, frozen: bool = False, slots: bool = False) -> Callable[[type[_T]], type[_T]]:
    """`dataclasses.dataclass`, but its `__eq__` and `__hash__` are compiled on their first call and `__repr__`
    is shared. dataclasses compiles Python source for each method of each class at import: this module's 78 were
    a third of its import on every `pixel` run, most of them never called by it. The methods are the ones
    dataclasses writes (fields compared and hashed as one tuple, `Name(field=value, ...)`), so once compiled
    they cost what they cost before."""

    def make(cls: type[_T]) -> type[_T]:
        made = dataclasses.dataclass(frozen=frozen, slots=slots, eq=False, repr=False)(cls)
        names = tuple(f.name for f in dataclasses.fields(made))  # type: ignore[arg-type]
        # As dataclasses does, a method the class body defines is kept; eq with frozen hashes the fields, eq
        # without it makes instances unhashable.
        own = cls.__dict__
        if "__repr__" not in own:
            made.__repr__ = _repr(names)  # type: ignore[method-assign]
        if "__eq__" not in own:
            made.__eq__ = _compiled_when_called(made, "__eq__", names)  # type: ignore[method-assign]
            if "__hash__" not in own:
                hashed = _compiled_when_called(made, "__hash__", names) if frozen else None
                made.__hash__ = hashed  # type: ignore[method-assign,assignment]
        return made

    return make


_SOURCE = {
    "__eq__": (
        "def __eq__(self, other):\n"
        "    if other.__class__ is self.__class__:\n"
        "        return {mine} == {theirs}\n"
        "    return NotImplemented\n"
    ),
    "__hash__": "def __hash__(self):\n    return hash({mine})\n",
}


def _compiled_when_called(cls: type[Any], name: str, names: tuple[str, ...]) -> Callable[..., Any]:
    """A stand-in for `cls.name` that compiles the real method, puts it on the class and calls it."""

    def first_call(self: Any, *args: Any) -> Any:
        mine = "(" + "".join(f"self.{field_name}," for field_name in names) + ")"
        theirs = "(" + "".join(f"other.{field_name}," for field_name in names) + ")"
        made: dict[str, Any] = {}
        # The field names are identifiers (dataclasses checked them), so the source is the fixed text above.
        exec(_SOURCE[name].format(mine=mine, theirs=theirs), {}, made)
        method = made[name]
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)
        return method(self, *args)

    first_call.__qualname__ = f"{cls.__qualname__}.{name}"
    return first_call


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    return __repr__


class Authority(enum.StrEnum):
    """Which side of a mapping is the truth."""

    LOCAL = "local"  # push: S3 is made to match the local tree
    S3 = "s3"  # pull: the local tree is made to match S3
    NONE = "none"  # report only: differences become findings


# pixel's own space in every bucket: the lock, move scratch (TEMP_PREFIX) and multipart upload records.
PIXEL_PREFIX = ".pixel/"


@dataclass(frozen=True, slots=True)
class InventorySource:
    """Where S3 Inventory delivers a bucket's reports: {prefix}/{bucket}/{config-id}/{timestamp}/manifest.json."""

    bucket: str
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class S3StoreSpec:
    name: str
    bucket: str
    endpoint: str | None = None
    region: str | None = None
    addressing_style: str = "auto"  # auto | path | virtual
    # botocore's request_checksum_calculation: some S3-compatible endpoints
    # reject the checksums boto3 >= 1.36 sends by default.
    checksum: str = "when_supported"  # when_supported | when_required
    profile: str | None = None
    lock_key: str = ".pixel/lock"
    # (boto3 credential field, environment variable NAME) pairs, e.g. ("aws_access_key_id", "OVH_ACCESS_KEY").
    credentials_env: tuple[tuple[str, str], ...] = ()
    # Seconds to connect, and to wait for each next byte of an answer (None: the default, see stores/s3/deadlines.py).
    connect_timeout: float | None = None
    read_timeout: float | None = None

    def reserved_prefixes(self) -> tuple[str, ...]:
        """pixel's own space in the bucket: `.pixel/` (lock, move scratch, upload records) and the lock's folder."""
        folder = self.lock_key.rpartition("/")[0]
        if not folder or f"{folder}/".startswith(PIXEL_PREFIX):
            return (PIXEL_PREFIX,)
        return (PIXEL_PREFIX, f"{folder}/")

    def reserves(self, key: str) -> bool:
        """`key` is pixel's bookkeeping, never data: not synced, pruned, inventoried or reported."""
        return key == self.lock_key or key.startswith(self.reserved_prefixes())

    inventory: InventorySource | None = None  # read by `--observe inventory`


@dataclass(frozen=True, slots=True)
class LocalStoreSpec:
    name: str
    root: str  # absolute path, resolved against the spec directory


StoreSpec = S3StoreSpec | LocalStoreSpec


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """One declared local directory <-> S3 prefix pairing."""

    name: str
    local_store: str
    local_path: str  # relative to the local store root, "" for the root itself
    s3_store: str
    s3_prefix: str  # "" or ending in "/"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    authority: Authority = Authority.LOCAL
    prune: bool = False  # push: delete S3 objects the local tree does not have
    protect: bool = False
    release_local: bool = False
    prune_local: bool = False  # pull: delete local files the bucket does not have (never implied by prune)
    source_file: str = ""  # spec file that declared it, for messages
    # Files smaller than this are not the mapping's (seed 003: "large (> 1 MB) files"), except those
    # matching `min_size_except` (its .jsonl files go whatever their size).
    min_size: int = 0
    min_size_except: tuple[str, ...] = ()
    keep_local: tuple[str, ...] = ()  # globs uploaded but never released (release_local), e.g. a manifest

    @property
    def local_base(self) -> str:
        """The local store key every local key of the mapping starts with: "" for the store's root."""
        return f"{self.local_path}/" if self.local_path else ""

    def local_key(self, rel: str) -> str:
        """The local store key of relative key `rel`."""
        return f"{self.local_path}/{rel}" if self.local_path else rel

    def remote_key(self, rel: str) -> str:
        """The S3 key of relative key `rel`."""
        return self.s3_prefix + rel

    def rel_of_remote(self, key: str) -> str | None:
        """The relative key of S3 key `key`; None outside the prefix (or the prefix itself)."""
        return key[len(self.s3_prefix) :] or None if key.startswith(self.s3_prefix) else None

    def rel_of_local(self, key: str) -> str | None:
        """The relative key of local store key `key`; None outside the mapping's directory."""
        base = self.local_base
        return key[len(base) :] or None if key.startswith(base) else None


class Ownership(enum.StrEnum):
    """Whose a tier is: pixel prunes only where it is exclusively its own."""

    EXCLUSIVE = "exclusive"
    SHARED = "shared"


@dataclass(frozen=True, slots=True)
class TierSpec:
    """A named area of a bucket (raw, processed, ...) that the inventory and status report on."""

    name: str
    store: str  # an S3 store
    prefix: str  # "" or ending in "/"
    categories: tuple[str, ...] = ()
    ownership: Ownership = Ownership.EXCLUSIVE
    protect: bool = False

    def holds(self, store: str, key: str) -> bool:
        return self.store == store and key.startswith(self.prefix)


def tier_of(tiers: Sequence[TierSpec], store: str, key: str) -> TierSpec | None:
    """The first of `tiers` that holds `store:key`, in the order the specs declare them."""
    return next((tier for tier in tiers if tier.holds(store, key)), None)


class Organise(enum.StrEnum):
    """What happens to a dataset's S3 source once it is organised into its canonical path."""

    COPY = "copy"  # the source stays (raw stays a backup)
    MOVE = "move"  # the source is deleted once the copy is verified


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One registry entry: where the dataset must live, and where its bytes come from."""

    name: str
    tier: str
    category: str
    format: str  # json | jsonl
    store: str  # S3 store of the canonical path
    key: str  # canonical key
    stages: tuple[str, ...] = ()
    source: ObjectRef | None = None  # a local file, or an object in another tier of `store`
    organise: Organise = Organise.COPY
    source_file: str = ""


@dataclass(frozen=True, slots=True)
class ActorLayout:
    """Where every actor's images and manifest live; actors are listed or discovered from directory names."""

    local_store: str
    local_root: str  # holds {actor_name}/training_data/
    s3_store: str
    s3_prefix: str  # holds {actor_name}/; "" or ending in "/"
    manifest_store: str  # a local store
    manifest_dir: str  # holds {actor_id}_manifest.json
    authority: Authority = Authority.LOCAL
    images: str = "{actor_name}_{index}.jpg"  # expected names, {index} a decimal index; other files are orphans
    discover: str | None = None  # regex over directory names; its group "id" is the actor id
    prune: bool = False
    source_file: str = ""
    legacy_response_json: str = "report"  # report | delete: seed 004's training_data/response.json
    adopt_orphans: bool = False  # seed 004: orphans "should be detected and added"


@dataclass(frozen=True, slots=True)
class ActorSpec:
    actor_id: str
    actor_name: str
    mapping: str  # the MappingSpec that syncs this actor's images
    manifest: ObjectRef
    count: int | None = None  # images {actor_name}_0 .. _{count-1} are declared: absent on both sides = missing


@dataclass(frozen=True, slots=True)
class FinalSource:
    """One registry dataset the final dataset is compiled from: its canonical object."""

    name: str
    store: str
    key: str
    format: str  # json | jsonl | jsonl.gz


@dataclass(frozen=True, slots=True)
class FinalDatasetSpec:
    """The final training dataset: what it is compiled from, how, and where it is published.

    `recipe` is the canonical JSON of everything that decides its bytes; the published manifest
    records it, so a plan can say which part changed.
    """

    sources: tuple[FinalSource, ...]  # sorted by name: the order records are read in
    splits: tuple[tuple[str, float], ...]  # declared order; ratios sum to 1
    store: str  # the S3 store it is published to
    prefix: str  # "final_dataset/": shards at {prefix}{split}/{shard_id}.jsonl
    compiled_key: str
    manifest_key: str
    manifest_local: ObjectRef  # the local copy that is kept
    workdir: ObjectRef  # local staging directory, emptied after upload
    split_key: str | None = None  # a record field; None: the canonical JSON of the whole record
    shard_records: int | None = None
    shard_bytes: int | None = None
    dedupe: bool = False
    recipe: str = ""
    recipe_digest: str = ""
    source_file: str = ""

    @property
    def manifest(self) -> ObjectRef:
        return ObjectRef(self.store, self.manifest_key)


@dataclass(frozen=True, slots=True)
class Desired:
    stores: MappingABC[str, StoreSpec]
    mappings: tuple[MappingSpec, ...]
    spec_digest: str = ""
    tiers: tuple[TierSpec, ...] = ()
    datasets: tuple[DatasetSpec, ...] = ()
    registry: ObjectRef | None = None  # where dataset_registry.json is generated
    inventory: ObjectRef | None = None  # where s3_manifest.json is generated
    actor_layout: ActorLayout | None = None
    actors: tuple[ActorSpec, ...] = ()  # listed in the specs, plus those discovered at the edge
    # `--target`: this Desired is narrowed to these parts (reconciler/targets.py); () is everything.
    targets: tuple[str, ...] = ()

    def reserves(self, ref: ObjectRef) -> bool:
        """`ref` lies in pixel's own space of its S3 store (see S3StoreSpec.reserves)."""
        store = self.stores.get(ref.store)
        return isinstance(store, S3StoreSpec) and store.reserves(ref.key)

    final: FinalDatasetSpec | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One file or object as observed. `key` is relative to the mapping root."""

    key: str
    size: int
    md5: str | None  # hex; None when unknown (multipart ETag, SSE-KMS, foreign tool)
    mtime_ns: int | None = None
    etag: str | None = None  # S3 only, without quotes


@dataclass(frozen=True, slots=True)
class Problem:
    """Something observation found that the user must hear about.

    `store` and `key` name what could not be observed (a directory, a file): with a store, the
    observation of that key and of everything under `key/` is incomplete.
    """

    where: str
    message: str
    store: str = ""
    key: str = ""


@dataclass(frozen=True, slots=True)
class Gap:
    """Part of one side of a mapping that could not be observed: `rel` and everything under `rel/`."""

    rel: str  # relative to the mapping root; "" is the whole side
    reason: str

    def covers(self, rel: str) -> bool:
        return not self.rel or rel == self.rel or rel.startswith(self.rel + "/")


@dataclass(frozen=True, slots=True)
class MappingObservation:
    local: MappingABC[str, Entry]
    remote: MappingABC[str, Entry]
    # Where a side's listing is incomplete: what is absent there is unknown, not absent.
    local_gaps: tuple[Gap, ...] = ()
    remote_gaps: tuple[Gap, ...] = ()


@dataclass(frozen=True, slots=True)
class ExcludedImage:
    """An actor image taken out of its manifest with S3 kept (`delete_from_s3=false`), as recorded then and now.

    `md5`/`etag`/`size`: the S3 object's when it was excluded; `remote`/`local`: what the sides hold now (relative
    keys), which the planner compares with the record instead of acting on them.
    """

    rel: str
    md5: str | None
    etag: str | None
    size: int | None
    excluded_at: str
    remote: Entry | None = None
    local: Entry | None = None

    @property
    def changed(self) -> bool:
        """The S3 object is no longer the one excluded: other bytes must not be hidden under the old decision."""
        if self.remote is None:
            return False
        if self.md5 is not None and self.remote.md5 is not None:
            return self.md5 != self.remote.md5
        return self.etag != self.remote.etag or self.size != self.remote.size


@dataclass(frozen=True, slots=True)
class ActorExclusions:
    """One actor's exclusion record as observed; `problem` says why it could not be read (then nothing of the
    actor is acted on: what it excludes is unknown)."""

    images: tuple[ExcludedImage, ...] = ()
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """A generated file (manifest, registry, inventory) as it is on disk now: the planner compares it."""

    entry: Entry | None = None  # None: absent
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class FinalObserved:
    """What the final-dataset pass compares: the published manifest, the objects beside it, the sources."""

    manifest: GeneratedFile  # the published manifest in S3, bytes included
    objects: MappingABC[str, Entry]  # full key -> entry, everything under the final dataset's prefix
    sources: MappingABC[str, Entry | None]  # source name -> its canonical object (None: absent)
    local_manifest: GeneratedFile  # the kept local copy


@dataclass(frozen=True, slots=True)
class DiscoveredActor:
    """An actor directory the layout's `discover` pattern matched, in the local store or S3."""

    actor_id: str
    actor_name: str


@dataclass(frozen=True, slots=True)
class Observed:
    mappings: MappingABC[str, MappingObservation]
    problems: tuple[Problem, ...] = ()
    tiers: MappingABC[str, MappingABC[str, Entry]] = field(default_factory=dict)  # tier -> full key -> entry
    sources: MappingABC[ObjectRef, Entry] = field(default_factory=dict)  # local dataset sources that exist
    generated: MappingABC[ObjectRef, GeneratedFile] = field(default_factory=dict)
    strays: MappingABC[str, tuple[Entry, ...]] = field(default_factory=dict)  # actor mapping -> unexpected files
    final: FinalObserved | None = None
    # Actor directories listed; the planner derives their actors and mappings (`actor_layout.with_discovered`).
    discovered: tuple[DiscoveredActor, ...] = ()
    # With an inventory to write: every object of each S3 store a tier lies in (store -> full key -> entry).
    buckets: MappingABC[str, MappingABC[str, Entry]] = field(default_factory=dict)
    # Actor mapping -> the images its exclusion record keeps out of the manifest (taken out of `mappings`).
    excluded: MappingABC[str, ActorExclusions] = field(default_factory=dict)
    # The record indexes apply wrote for the datasets' objects as they are now (ref -> the index object).
    record_indexes: MappingABC[ObjectRef, Entry] = field(default_factory=dict)


# pixel's scratch space in a bucket: a swap parks one side here. A MOVE whose source lies
# here removes that source itself once the copy is verified (it is never user data).
TEMP_PREFIX = f"{PIXEL_PREFIX}tmp/"


class ActionKind(enum.StrEnum):
    UPLOAD = "upload"
    DOWNLOAD = "download"
    COPY = "copy"
    MOVE = "move"  # server-side copy whose source is deleted (or overwritten) by a later node
    DELETE = "delete"
    REHASH = "rehash"
    VERIFY = "verify"  # re-read the object's recorded md5 before a release-local trusts it
    RELEASE_LOCAL = "release-local"
    WRITE_MANIFEST = "write-manifest"
    COMPILE = "compile"  # build the final dataset: shards, export, manifest last (reconciler/apply/final.py)


class Change(enum.StrEnum):
    """How the action reads in a review: Terraform's + ~ -."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    READ = "read"  # rehash: learns, does not change content


@dataclass(frozen=True, slots=True)
class ObjectRef:
    store: str
    key: str  # full key in the store (S3 key, or path relative to the local root)

    def __str__(self) -> str:
        return f"{self.store}:{self.key}"


@dataclass(frozen=True, slots=True)
class Precondition:
    """What must still hold when the action runs; checked by the server where it can be."""

    target_etag: str | None = None  # If-Match on overwrite/delete of an S3 object
    target_absent: bool = False  # If-None-Match: * on create
    source_etag: str | None = None  # CopySourceIfMatch / If-Match on read
    source_size: int | None = None  # local source re-checked before upload
    source_mtime_ns: int | None = None
    source_md5: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    kind: ActionKind
    change: Change
    mapping: str
    target: ObjectRef
    reason: str
    source: ObjectRef | None = None
    size: int = 0
    md5: str | None = None  # the content the target will hold afterwards
    precondition: Precondition = field(default_factory=Precondition)


class FindingKind(enum.StrEnum):
    CONFLICT = "conflict"  # both sides differ and neither is authoritative
    ORPHAN = "orphan"
    MISSING = "missing"
    UNMANAGED = "unmanaged"  # extra object where pixel may not prune
    PROBLEM = "problem"  # observation trouble (escaping symlink, unreadable file)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    mapping: str
    key: str
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    edges: tuple[tuple[str, str], ...]  # (before, after): `after` depends on `before`
    findings: tuple[Finding, ...] = ()
    spec_digest: str = ""
    errors: tuple[str, ...] = ()  # guard violations that make the plan unapplyable
    # Objects on each mapping's pruned side when the plan was made: the mass-delete rule's denominator,
    # recorded so that `pixel apply FILE` derives that rule again instead of trusting `errors`.
    object_counts: MappingABC[str, int] = field(default_factory=dict)
    targets: tuple[str, ...] = ()  # `--target` names it was narrowed to; () when it covers all the specs

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def extended(
        self,
        actions: Sequence[Action] = (),
        edges: Iterable[tuple[str, str]] = (),
        findings: Sequence[Finding] = (),
    ) -> Plan:
        """This plan with a pass's actions and findings after its own, edges merged and sorted; itself when
        the pass added no action and no finding."""
        if not actions and not findings:
            return self
        return dataclasses.replace(
            self,
            actions=(*self.actions, *actions),
            edges=tuple(sorted({*self.edges, *edges})),
            findings=(*self.findings, *findings),
        )

    @property
    def applyable(self) -> bool:
        return not self.errors


def inventoried_stores(desired: Desired) -> list[str]:
    """The S3 stores the inventory lists in full: every one a tier lies in, in declaration order."""
    names: list[str] = []
    for tier in desired.tiers:
        if tier.store not in names and isinstance(desired.stores.get(tier.store), S3StoreSpec):
            names.append(tier.store)
    return names

"""The compile action: the final dataset built from its sources, streamed, and published safely.

    sources (sorted by name), each streamed through the Store protocol and decoded by
    reconciler.loader.formats
      -> every record written as canonical JSON (sorted keys) to its split's open shard in the workdir,
         and to the single-file export
      -> a full shard is closed and handed to the uploader while compilation goes on: upload
         (If-None-Match: a shard's key carries its md5, so nothing is ever overwritten; a shard already
         there with that md5 is not uploaded again), verify (HEAD: S3's md5 and size), then the local
         file is released; a failed upload keeps it
      -> the export (multipart above the store's threshold), verified, released
      -> the manifest last, If-Match the ETag the plan saw (If-None-Match for the first), then the kept
         local copy

A record's split is decided by the sha256 of its split key alone (the field's canonical JSON, or the
whole record's), so the same record lands in the same split whatever else is compiled with it, and
dedupe drops a record whose hash was already seen. The previous build's shards are deleted by the
plan's delete actions, which run after this one; the new manifest's `history` lists those still in S3,
so a delete interrupted there still knows them for this dataset's own.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from reconciler.loader.formats import DatasetFormatError, HashingReader, format_of, iter_records
from reconciler.logs import get_logger
from reconciler.manifests import final as manifest_format
from reconciler.model import Action, Desired, FinalDatasetSpec, S3StoreSpec
from reconciler.stores.base import ObjectChanged, PermanentStoreError, Store
from reconciler.stores.local import LocalStore

PART_SUFFIX = ".part"
_PENDING_SHARDS = 4  # closed shards waiting for upload at most: bounds the workdir's size
_UPLOADERS = 2
_WRITE_BUFFER = 1024 * 1024

Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def canonical_line(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def split_hash(record: Mapping[str, Any], line: bytes, split_key: str | None) -> bytes:
    """sha256 of what decides a record's split and its duplicates: the split key's value, or the whole record."""
    if split_key is None:
        return hashlib.sha256(line).digest()
    if split_key not in record:
        raise ValueError(f"record has no split_key field {split_key!r}")
    value = json.dumps(record[split_key], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(value.encode("utf-8")).digest()


def split_of(digest: bytes, bounds: list[tuple[str, float]]) -> str:
    """The split whose cumulative ratio range holds the hash read as a fraction in [0, 1)."""
    point = int.from_bytes(digest[:8], "big") / 2.0**64
    for name, upper in bounds:
        if point < upper:
            return name
    return bounds[-1][0]


def cumulative(splits: tuple[tuple[str, float], ...]) -> list[tuple[str, float]]:
    bounds, total = [], 0.0
    for name, ratio in splits:
        total += ratio
        bounds.append((name, total))
    return bounds


@dataclass(slots=True)
class _OpenShard:
    split: str
    index: int
    path: Path
    handle: IO[bytes]
    md5: Any = field(default_factory=hashlib.md5)
    size: int = 0
    records: int = 0


@dataclass(frozen=True, slots=True)
class _Closed:
    split: str
    index: int
    path: Path
    key: str
    md5: str
    size: int
    records: int


@dataclass(slots=True)
class CompileStats:
    read: int = 0
    duplicates: int = 0
    written: dict[str, int] = field(default_factory=dict)
    uploaded: int = 0
    reused: int = 0
    bytes_uploaded: int = 0


class FinalCompiler:
    """Runs the compile action (ActionRunner hands it every action of kind compile)."""

    def __init__(
        self,
        desired: Desired,
        stores: Mapping[str, Store],
        *,
        clock: Clock = _utc_now,
        on_shard: Callable[[str], None] | None = None,
    ) -> None:
        self.final = desired.final
        spec = desired.stores.get(self.final.store) if self.final is not None else None
        self.bucket = spec.bucket if isinstance(spec, S3StoreSpec) else ""
        self.stores = stores
        self.clock = clock
        self.on_shard = on_shard  # told of each shard key once it is safely in S3 (tests and progress)
        self.last: CompileStats | None = None
        self._lock = threading.Lock()  # the uploader threads count into one CompileStats
        self._log = get_logger("pixel.final")

    def __call__(self, action: Action) -> None:
        final = self.final
        if final is None or action.target != final.manifest:
            raise PermanentStoreError(f"{action.id}: the specs declare no final dataset with this manifest")
        store = self.stores[final.store]
        md5s = self._sources_unchanged(final, action)
        published = store.stat(final.manifest_key)
        pre = action.precondition
        if (published is None) != pre.target_absent or (published is not None and published.etag != pre.target_etag):
            raise ObjectChanged(
                f"{final.manifest} changed since the plan was made; re-run pixel plan",
                code="412",
                key=final.manifest_key,
            )
        earlier = self._written_before(store, final, pre.target_etag)
        workdir = self._workdir(final)
        stats = CompileStats(written={name: 0 for name, _ in final.splits})
        shards, compiled = self._compile(final, store, workdir, md5s, stats)
        document = self._document(final, md5s, shards, compiled, stats)
        document["history"] = self._history(store, final, earlier, [*shards, compiled])
        body = manifest_format.render(document)
        md5 = hashlib.md5(body).hexdigest()
        # Last: until this PUT lands, readers follow the previous manifest, whose shards are all still there.
        store.write(
            final.manifest_key,
            lambda: contextlib.nullcontext(_bytes_io(body)),
            size=len(body),
            md5=md5,
            if_match=pre.target_etag,
            if_absent=pre.target_absent,
        )
        self._verify(store, final.manifest_key, md5, len(body))
        local = self.stores[final.manifest_local.store]
        kept = local.stat(final.manifest_local.key)
        local.write(
            final.manifest_local.key,
            lambda: contextlib.nullcontext(_bytes_io(body)),
            size=len(body),
            md5=md5,
            if_match=kept.etag if kept is not None else None,
            if_absent=kept is None,
        )
        self.last = stats
        self._log.info(
            "final dataset published",
            manifest=str(final.manifest),
            records_read=stats.read,
            duplicates=stats.duplicates,
            written=stats.written,
            shards_uploaded=stats.uploaded,
            shards_unchanged=stats.reused,
        )

    # --- before: the inputs are the plan's, the workdir is clean -------------------------------------------

    def _sources_unchanged(self, final: FinalDatasetSpec, action: Action) -> dict[str, str]:
        md5s: dict[str, str] = {}
        for source in final.sources:
            entry = self.stores[source.store].stat(source.key)
            if entry is None or entry.md5 is None:
                raise ObjectChanged(
                    f"final dataset source {source.store}:{source.key} is gone or has no md5", code="412"
                )
            md5s[source.name] = entry.md5
        if manifest_format.build_id(final, md5s) != action.precondition.source_md5:
            raise ObjectChanged(
                "a source of the final dataset changed since the plan was made; re-run pixel plan", code="412"
            )
        return md5s

    @staticmethod
    def _written_before(store: Store, final: FinalDatasetSpec, etag: str | None) -> frozenset[str]:
        """The keys the manifest being replaced says this dataset wrote; none when there is none to follow."""
        if etag is None:
            return frozenset()
        with store.open(final.manifest_key, if_match=etag) as body:
            content = body.read()
        try:
            return manifest_format.parse(content).written()
        except manifest_format.ManifestError:
            return frozenset()  # the plan said it cannot be followed; its keys are only known by their names

    @staticmethod
    def _history(store: Store, final: FinalDatasetSpec, earlier: frozenset[str], now: list[_Closed]) -> list[str]:
        """Keys earlier builds wrote that this one does not name and S3 still holds: the plan's deletes of them
        run after this manifest lands, and one interrupted there must still find them the dataset's own."""
        if not earlier:
            return []
        superseded = earlier - {c.key for c in now} - {final.manifest_key}
        return sorted(e.key for e in store.list(final.prefix) if e.key in superseded)

    def _workdir(self, final: FinalDatasetSpec) -> Path:
        local = self.stores[final.workdir.store]
        if not isinstance(local, LocalStore):
            raise PermanentStoreError(f"workdir {final.workdir}: expected a local store")
        workdir = local.path(final.workdir.key)
        workdir.mkdir(parents=True, exist_ok=True)
        # A killed compile leaves its part files: only this compiler writes them, and only here.
        for leftover in workdir.glob(f"*{PART_SUFFIX}"):
            leftover.unlink()
        return workdir

    # --- the build ---------------------------------------------------------------------------------------------

    def _compile(
        self, final: FinalDatasetSpec, store: Store, workdir: Path, md5s: dict[str, str], stats: CompileStats
    ) -> tuple[list[_Closed], _Closed]:
        bounds = cumulative(final.splits)
        seen: set[int] = set()
        open_shards: dict[str, _OpenShard] = {}
        closed: list[_Closed] = []
        futures: list[Future[None]] = []
        slots = threading.BoundedSemaphore(_PENDING_SHARDS)
        export_path = workdir / f"compiled{PART_SUFFIX}"
        export = _OpenShard("", 0, export_path, open(export_path, "wb", buffering=_WRITE_BUFFER))  # noqa: SIM115
        next_index = {name: 0 for name, _ in final.splits}

        with ThreadPoolExecutor(max_workers=_UPLOADERS, thread_name_prefix="pixel-shard") as uploads:

            def close(shard: _OpenShard) -> None:
                shard.handle.close()
                md5 = shard.md5.hexdigest()
                done = _Closed(
                    shard.split,
                    shard.index,
                    shard.path,
                    manifest_format.shard_key(final, shard.split, shard.index, md5),
                    md5,
                    shard.size,
                    shard.records,
                )
                closed.append(done)
                slots.acquire()  # a full window: compilation waits for an upload to finish

                def upload() -> None:
                    try:
                        self._publish(store, done, stats)
                    finally:
                        slots.release()

                futures.append(uploads.submit(upload))
                for future in futures:
                    if future.done() and future.exception() is not None:
                        raise future.exception()  # type: ignore[misc]

            def shard_for(split: str, size: int) -> _OpenShard:
                shard = open_shards.get(split)
                if shard is not None and final.shard_bytes and shard.records and shard.size + size > final.shard_bytes:
                    close(shard)
                    shard = None
                if shard is None:
                    index = next_index[split]
                    next_index[split] += 1
                    path = workdir / f"{split}-{index:05d}{PART_SUFFIX}"
                    shard = _OpenShard(split, index, path, open(path, "wb", buffering=_WRITE_BUFFER))  # noqa: SIM115
                    open_shards[split] = shard
                return shard

            try:
                for source in final.sources:
                    for number, (record, line) in enumerate(self._records(final, source.name, md5s[source.name]), 1):
                        stats.read += 1
                        try:
                            digest = split_hash(record, line, final.split_key)
                        except ValueError as exc:
                            raise PermanentStoreError(
                                f"{source.store}:{source.key}: record {number}: {exc}; nothing was published",
                                code="BadRecord",
                                key=source.key,
                            ) from exc
                        if final.dedupe:
                            short = int.from_bytes(digest[:8], "big")
                            if short in seen:
                                stats.duplicates += 1
                                continue
                            seen.add(short)
                        split = split_of(digest, bounds)
                        shard = shard_for(split, len(line))
                        _append(shard, line)
                        _append(export, line)
                        stats.written[split] += 1
                        if final.shard_records and shard.records >= final.shard_records:
                            close(shard)
                            del open_shards[split]
                for name, _ in final.splits:
                    if name in open_shards:
                        close(open_shards.pop(name))
            except BaseException:
                for shard in open_shards.values():
                    shard.handle.close()
                export.handle.close()
                raise
            finally:
                for future in futures:
                    future.exception()  # wait for every upload in flight before deciding
            export.handle.close()
            failed = [f.exception() for f in futures if f.exception() is not None]
            if failed:
                raise failed[0]  # type: ignore[misc]
        md5 = export.md5.hexdigest()
        compiled = _Closed("", 0, export_path, final.compiled_key, md5, export.size, export.records)
        self._publish(store, compiled, stats, overwrite=True)
        order = {name: i for i, (name, _) in enumerate(final.splits)}
        closed.sort(key=lambda c: (order[c.split], c.index))
        return closed, compiled

    def _records(self, final: FinalDatasetSpec, name: str, md5: str) -> Iterator[tuple[dict[str, Any], bytes]]:
        source = next(s for s in final.sources if s.name == name)
        store = self.stores[source.store]
        with store.open(source.key) as body:
            reader = HashingReader(body)
            fmt = format_of(source.key, source.format)
            label = f"{source.store}:{source.key}"
            for number, record in enumerate(iter_records(reader, key=label, fmt=fmt), 1):  # type: ignore[arg-type]
                try:
                    line = canonical_line(record)
                except UnicodeEncodeError:
                    # A lone surrogate read from a JSON document (JSON Lines refuse it while decoding).
                    raise DatasetFormatError(label, number, "a string holds a lone surrogate", unit="record") from None
                yield record, line
            reader.drain()  # the rest (trailing whitespace): the md5 covers the whole object
        if reader.digest.hexdigest() != md5:
            raise ObjectChanged(
                f"final dataset source {source.store}:{source.key} read as md5 {reader.digest.hexdigest()}, "
                f"expected {md5}: it changed during the compile",
                code="BadDigest",
                key=source.key,
            )

    # --- publication -------------------------------------------------------------------------------------------

    def _publish(self, store: Store, shard: _Closed, stats: CompileStats, *, overwrite: bool = False) -> None:
        """Upload unless S3 already holds these bytes there, verify, then release the local file."""
        there = store.stat(shard.key)
        if there is not None and there.md5 == shard.md5 and there.size == shard.size:
            with self._lock:
                stats.reused += 1
        else:
            if there is not None and not overwrite:
                # Same index and md5 prefix, other bytes: never write over what a manifest may point to.
                raise PermanentStoreError(
                    f"{store.name}:{shard.key} exists with md5 {there.md5}, not this build's {shard.md5}; kept",
                    code="PreconditionFailed",
                    key=shard.key,
                )
            path = shard.path
            store.write(
                shard.key,
                lambda: path.open("rb"),
                size=shard.size,
                md5=shard.md5,
                if_match=there.etag if there is not None else None,
                if_absent=there is None,
            )
            self._verify(store, shard.key, shard.md5, shard.size)
            with self._lock:
                stats.uploaded += 1
                stats.bytes_uploaded += shard.size
        shard.path.unlink()  # only now: S3 verifiably holds these bytes
        if self.on_shard is not None:
            self.on_shard(shard.key)

    @staticmethod
    def _verify(store: Store, key: str, md5: str, size: int) -> None:
        found = store.stat(key)
        if found is None or found.md5 != md5 or found.size != size:
            got = "nothing" if found is None else f"{found.size} bytes md5 {found.md5}"
            raise PermanentStoreError(
                f"verify {store.name}:{key}: expected {size} bytes md5 {md5}, S3 records {got}; the local copy is kept",
                code="BadDigest",
                key=key,
            )

    def _document(
        self,
        final: FinalDatasetSpec,
        md5s: dict[str, str],
        shards: list[_Closed],
        compiled: _Closed,
        stats: CompileStats,
    ) -> dict[str, Any]:
        sizes = {s.name: self.stores[s.store].stat(s.key) for s in final.sources}
        splits = {
            name: {
                "shards": sum(1 for s in shards if s.split == name),
                "records": sum(s.records for s in shards if s.split == name),
                "bytes": sum(s.size for s in shards if s.split == name),
            }
            for name, _ in final.splits
        }
        recipe = json.loads(final.recipe)
        recipe["digest"] = final.recipe_digest
        return {
            "format": manifest_format.FORMAT,
            "version": manifest_format.VERSION,
            "build": manifest_format.build_id(final, md5s),
            "created": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "recipe": recipe,
            "sources": [
                {
                    "name": s.name,
                    "key": s.key,
                    "s3_url": manifest_format.s3_url(self.bucket, s.key),
                    "md5": md5s[s.name],
                    "size": entry.size if (entry := sizes[s.name]) is not None else 0,
                }
                for s in final.sources
            ],
            "splits": splits,
            "shards": [
                {
                    "split": s.split,
                    "id": s.key.rsplit("/", 1)[-1].removesuffix(".jsonl"),
                    "key": s.key,
                    "s3_url": manifest_format.s3_url(self.bucket, s.key),
                    "md5": s.md5,
                    "size": s.size,
                    "records": s.records,
                }
                for s in shards
            ],
            "compiled": {
                "key": compiled.key,
                "s3_url": manifest_format.s3_url(self.bucket, compiled.key),
                "md5": compiled.md5,
                "size": compiled.size,
                "records": compiled.records,
            },
            "counts": {"read": stats.read, "duplicates": stats.duplicates, "written": dict(stats.written)},
        }


def _append(shard: _OpenShard, line: bytes) -> None:
    shard.handle.write(line)
    shard.md5.update(line)
    shard.size += len(line)
    shard.records += 1


def _bytes_io(body: bytes) -> BinaryIO:
    return io.BytesIO(body)

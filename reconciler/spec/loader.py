"""Spec directory -> `Desired`: read, interpolate, validate, check meaning, build.

Every phase keeps going after a problem so one run reports everything wrong, in file
and line order; nothing is returned unless the whole directory is sound.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.globs import glob_problem
from reconciler.keys import segment_problem
from reconciler.model import (
    Authority,
    Desired,
    InventorySource,
    LocalStoreSpec,
    MappingSpec,
    S3StoreSpec,
    StoreSpec,
)
from reconciler.spec.document import DeclaredStore, Report, SpecDocument, as_prefix, declarations, store_ref
from reconciler.spec.errors import SpecError, SpecErrors, YamlPath, format_path

# Re-exported: `pixel validate` and `pixel fmt` read the same files under the same limit.
from reconciler.spec.files import MAX_SPEC_BYTES as MAX_SPEC_BYTES
from reconciler.spec.files import SPEC_SUFFIXES as SPEC_SUFFIXES
from reconciler.spec.files import SpecFiles, read_capped, spec_entries
from reconciler.spec.final import build_final
from reconciler.spec.interpolate import interpolate_tree
from reconciler.spec.validate import schema_problems, show
from reconciler.spec.validcache import ValidCache, document_digest
from reconciler.spec.world import build_world
from reconciler.spec.yamlnodes import YamlSyntaxError, parse_yaml
from reconciler.units import parse_size


def load_desired(
    spec_dir: Path, env: Mapping[str, str], valid: ValidCache | None = None, *, read: SpecFiles | None = None
) -> Desired:
    """Load every *.yaml / *.yml file directly in `spec_dir` into one `Desired`.

    `env` supplies ${VAR} values (pass os.environ from the CLI). Raises SpecErrors
    listing every problem found; local store roots are not required to exist.
    `valid`: documents that passed the schema before, which are not validated again. `read`: the directory's
    spec files already read (`files.read_spec_files`), parsed instead of reading the directory again.
    """
    spec_dir = Path(os.path.abspath(spec_dir))
    report = Report()
    if read is None:
        files = _spec_files(spec_dir)
        known: list[bytes | None] = [None] * len(files)
    else:
        files, known = [file for file, _ in read.files], [raw for _, raw in read.files]
    documents = [doc for index, file in enumerate(files) if (doc := _read(file, index, known[index], env, report))]
    for doc in documents:
        # A value already reported by the YAML or ${...} step holds a stand-in; the
        # schema's view of that stand-in would only be a confusing echo.
        earlier = set(doc.broken)
        digest = document_digest(doc.data) if valid is not None else ""
        if valid is not None and not earlier and valid.known_valid(digest):
            continue
        problems = list(schema_problems(doc.data))
        for path, message in problems:
            if not any(path[: len(bad)] == bad for bad in earlier):
                report.add(doc, path, message)
        if valid is not None and not problems and not earlier:
            valid.remember(digest)
    stores = _build_stores(documents, spec_dir, report)
    mappings = _build_mappings(documents, stores, report)
    world = build_world(documents, stores, mappings, report)
    final = build_final(documents, stores, mappings, world, report)
    if not report and not stores and not mappings:
        # Valid YAML that says nothing (comments only, `{}`) would otherwise plan "No changes" forever.
        names = ", ".join(file.name for file in files)
        report.add_file(spec_dir, -1, None, f"no stores or mappings declared in spec directory (read {names})")
    if report:
        raise SpecErrors(report.errors())
    if valid is not None:
        valid.save()  # only for specs that load: a refused spec directory leaves nothing behind
    built = {name: store.spec for name, store in stores.items() if store.spec is not None}
    return Desired(
        stores=built,
        mappings=(*mappings, *world.actor_mappings),
        spec_digest=spec_digest(documents),
        tiers=tuple(world.tiers),
        datasets=tuple(world.datasets),
        registry=world.registry,
        inventory=world.inventory,
        actor_layout=world.actor_layout,
        actors=tuple(world.actors),
        final=final,
    )


def spec_digest(documents: Iterable[SpecDocument]) -> str:
    """sha256 of the interpolated documents keyed by file name: comments and layout do not count."""
    canonical = json.dumps(
        {doc.file.name: doc.data for doc in documents},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _spec_files(spec_dir: Path) -> list[Path]:
    def fail(message: str) -> SpecErrors:
        return SpecErrors([SpecError(spec_dir, None, "", message)])

    if not spec_dir.exists():
        # The absolute path: a CI step run from the wrong directory shows where it looked.
        raise fail(
            f"spec directory does not exist (looked for {spec_dir.absolute()}); run pixel from the directory "
            "that holds it, or name it with --specs DIR"
        )
    if not spec_dir.is_dir():
        raise fail("not a directory; expected a directory of *.yaml spec files")
    try:
        entries = sorted(spec_dir.iterdir())
    except OSError as exc:
        raise fail(f"cannot list spec directory: {exc.strerror or exc}") from None
    files = spec_entries(entries)
    if not files:
        raise fail("no spec files (*.yaml, *.yml) in spec directory")
    return files


def _read(
    file: Path, index: int, known: bytes | None, env: Mapping[str, str], report: Report
) -> SpecDocument | None:
    try:
        raw, size = read_capped(file) if known is None else (known, len(known))
        if size > MAX_SPEC_BYTES:
            report.add_file(
                file, index, None,
                f"the file is {size:,} bytes, more than the limit on a spec file's size "
                f"({MAX_SPEC_BYTES // (1024 * 1024)} MiB, {MAX_SPEC_BYTES:,} bytes); split it into several files",
            )
            return None
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.add_file(file, index, None, f"not UTF-8 text (byte {exc.start})")
        return None
    except OSError as exc:
        report.add_file(file, index, None, f"cannot read: {exc.strerror or exc}")
        return None
    try:
        parsed = parse_yaml(text)
    except YamlSyntaxError as exc:
        report.add_file(file, index, exc.line, exc.message)
        return None
    doc = SpecDocument(file=file, index=index, data=None, positions=parsed.positions)
    for problem in parsed.problems:
        report.add(doc, problem.path, problem.message, position=problem.position)
    doc.data = interpolate_tree(parsed.data, env, lambda path, message: report.add(doc, path, message))
    return doc


def _build_stores(documents: list[SpecDocument], spec_dir: Path, report: Report) -> dict[str, DeclaredStore]:
    stores: dict[str, DeclaredStore] = {}
    seen: dict[str, str] = {}
    for doc in documents:
        for name, body, path in declarations(doc, "stores", "store", seen, report):
            kind = body.get("type") if isinstance(body, dict) else None
            store = DeclaredStore(doc, path, kind if kind in ("s3", "local") else None, None, ("store", name))
            stores[name] = store
            if isinstance(body, dict) and not doc.is_broken(path):
                store.spec = _store_spec(name, body, doc, path, spec_dir, report)
            if isinstance(store.spec, S3StoreSpec):
                store.identity = ("bucket", store.spec.endpoint or "", store.spec.bucket)
    return stores


def _store_spec(
    name: str, body: dict[str, object], doc: SpecDocument, path: YamlPath, spec_dir: Path, report: Report
) -> StoreSpec | None:
    if body["type"] == "local":
        root = str(body["root"])
        if root.startswith("~"):
            # Not expanded: ~ depends on who runs pixel, which a reviewed spec should not.
            report.add(doc, (*path, "root"), f"expected a directory path, got {show(root)} (write ${{HOME}} for ~)")
            return None
        return LocalStoreSpec(name=name, root=os.path.normpath(spec_dir / root))
    lock_key = str(body.get("lock_key", ".pixel/lock"))
    inventory = body.get("inventory")
    inventory = inventory if isinstance(inventory, dict) else None  # the schema checked its shape
    problem = segment_problem(lock_key)
    if problem:
        report.add(doc, (*path, "lock_key"), f"key {problem}, got {show(lock_key)}")
        return None
    return S3StoreSpec(
        name=name,
        bucket=str(body["bucket"]),
        # Empty means "not set" so that ${VAR:-} can leave an endpoint to the AWS default.
        endpoint=str(body.get("endpoint", "")) or None,
        region=str(body.get("region", "")) or None,
        addressing_style=str(body.get("addressing_style", "auto")),
        checksum=str(body.get("checksum", "when_supported")),
        profile=str(body.get("profile", "")) or None,
        lock_key=lock_key,
        credentials_env=_credentials_env(body.get("credentials_env")),
        connect_timeout=_seconds(body.get("connect_timeout")),
        read_timeout=_seconds(body.get("read_timeout")),
        inventory=(
            InventorySource(str(inventory["bucket"]), str(inventory.get("prefix", "")).strip("/"))
            if inventory
            else None
        ),
    )


def _seconds(value: object) -> float | None:
    """A deadline in seconds (the schema checked it is a number above 0), or None when not given."""
    return float(value) if isinstance(value, int | float) else None


_CREDENTIAL_FIELDS = {
    "access_key_id": "aws_access_key_id",
    "secret_access_key": "aws_secret_access_key",
    "session_token": "aws_session_token",
}


def _credentials_env(value: object) -> tuple[tuple[str, str], ...]:
    """The variable names a store's keys are read from (validated by the schema), in boto3's terms."""
    if not isinstance(value, dict):
        return ()
    return tuple((_CREDENTIAL_FIELDS[field], str(name)) for field, name in sorted(value.items()))


@dataclass(frozen=True, slots=True)
class _Target:
    identity: tuple[str, ...]
    prefix: str
    label: str
    store: str
    shown: str
    where: str


def _build_mappings(
    documents: list[SpecDocument], stores: dict[str, DeclaredStore], report: Report
) -> list[MappingSpec]:
    built: list[MappingSpec] = []
    names: dict[str, str] = {}
    targets: list[_Target] = []
    for doc in documents:
        section = doc.section("mappings")
        if not isinstance(section, list):
            continue
        for index, body in enumerate(section):
            path: YamlPath = ("mappings", index)
            if not isinstance(body, dict):
                continue
            # Checked field by field rather than skipping a mapping with any schema error,
            # so a typo in one key does not hide an undefined store in another.
            name = _valid_string(doc, path, body, "name")
            if name is not None:
                if name in names:
                    report.add(
                        doc, (*path, "name"), f'duplicate mapping name "{name}" (first defined at {names[name]})'
                    )
                else:
                    names[name] = doc.where((*path, "name"))
            from_value = _valid_string(doc, path, body, "from")
            to_value = _valid_string(doc, path, body, "to")
            source = None if from_value is None else _endpoint(doc, path, "from", from_value, "local", stores, report)
            target = None if to_value is None else _endpoint(doc, path, "to", to_value, "s3", stores, report)
            include = _patterns(doc, (*path, "include"), body.get("include"), report)
            exclude = _patterns(doc, (*path, "exclude"), body.get("exclude"), report)
            authority = body.get("authority", "local")
            release_local = body.get("release_local", False) is True
            keep_local = _patterns(doc, (*path, "keep_local"), body.get("keep_local"), report)
            min_size, min_size_except = _min_size(doc, (*path, "min_size"), body.get("min_size"), report)
            if keep_local and not release_local and not doc.is_broken((*path, "keep_local")):
                report.add(doc, (*path, "keep_local"), "keep_local only means something with release_local: true")
            if release_local and authority in ("s3", "none") and not doc.is_broken((*path, "release_local")):
                report.add(
                    doc,
                    (*path, "release_local"),
                    f"release_local needs authority local (got {show(authority)}): "
                    "local files are only released after pixel has uploaded them",
                )
            prune_local = body.get("prune_local", False) is True
            if prune_local and authority != "s3" and not doc.is_broken((*path, "prune_local")):
                report.add(
                    doc,
                    (*path, "prune_local"),
                    f"prune_local needs authority s3 (got {show(authority)}): it lets a pull delete "
                    "local files the bucket does not have",
                )
            if target is not None:
                store, prefix = target
                prefix = as_prefix(prefix)
                target = (store, prefix)
                label = f"mapping {show(name)}" if name is not None else format_path(path)
                shown = f"{store}:{prefix}"
                _check_overlap(
                    _Target(stores[store].identity, prefix, label, store, shown, doc.where((*path, "to"))),
                    targets,
                    doc,
                    (*path, "to"),
                    report,
                )
            if name is None or source is None or target is None or doc.is_broken(path):
                continue
            built.append(
                MappingSpec(
                    name=name,
                    local_store=source[0],
                    local_path=source[1].rstrip("/"),
                    s3_store=target[0],
                    s3_prefix=target[1],
                    include=include,
                    exclude=exclude,
                    authority=Authority(str(authority)),
                    prune=body.get("prune", False) is True,
                    protect=body.get("protect", False) is True,
                    release_local=release_local,
                    prune_local=prune_local,
                    source_file=doc.display,
                    min_size=min_size,
                    min_size_except=min_size_except,
                    keep_local=keep_local,
                )
            )
    return built


def _valid_string(doc: SpecDocument, path: YamlPath, body: dict[str, object], key: str) -> str | None:
    """The field's value when it is present and passed the schema, else None (already reported)."""
    value = body.get(key)
    if not isinstance(value, str) or doc.is_broken((*path, key)):
        return None
    return value


def _endpoint(
    doc: SpecDocument,
    path: YamlPath,
    key: str,
    value: str,
    want: str,
    stores: dict[str, DeclaredStore],
    report: Report,
) -> tuple[str, str] | None:
    """Split "store:path" and check it names a store of the wanted kind and a clean path."""
    shape = '"store:path"' if key == "from" else '"store:prefix"'
    what = "path" if key == "from" else "prefix"
    return store_ref(doc, (*path, key), value, want, stores, report, shape=shape, what=what)


def _patterns(doc: SpecDocument, path: YamlPath, value: object, report: Report) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    for index, pattern in enumerate(value):
        if not isinstance(pattern, str) or doc.is_broken((*path, index)):
            continue
        problem = segment_problem(pattern)
        # Patterns match keys below the mapping root, so one that climbs out can never match.
        if problem and "empty segments" not in problem:
            report.add(doc, (*path, index), f"pattern {problem}, got {show(pattern)}")
        elif bad_glob := glob_problem(pattern):
            report.add(doc, (*path, index), f"invalid glob {show(pattern)}: {bad_glob}")
    return tuple(str(pattern) for pattern in value)


def _min_size(doc: SpecDocument, path: YamlPath, value: object, report: Report) -> tuple[int, tuple[str, ...]]:
    """(bytes, exempt globs) of a mapping's min_size: a size, or {size, except}."""
    if value is None or doc.is_broken(path):
        return 0, ()
    if isinstance(value, dict):
        exempt = _patterns(doc, (*path, "except"), value.get("except"), report)
        return parse_size(value["size"]), exempt
    assert isinstance(value, int | str)
    return parse_size(value), ()


def _check_overlap(target: _Target, earlier: list[_Target], doc: SpecDocument, path: YamlPath, report: Report) -> None:
    # Two mappings writing (and pruning) the same keys would undo each other's work.
    for other in earlier:
        if other.identity == target.identity and (
            target.prefix.startswith(other.prefix) or other.prefix.startswith(target.prefix)
        ):
            # Different store names can still share a bucket; say so, or the overlap looks wrong.
            same_bucket = f", the same bucket {show(target.identity[-1])}" if other.store != target.store else ""
            report.add(
                doc,
                path,
                f"S3 target {show(target.shown)} overlaps {other.label} "
                f"({show(other.shown)} at {other.where}{same_bucket})",
            )
    earlier.append(target)

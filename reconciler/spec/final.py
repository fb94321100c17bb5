"""The `final_dataset` section: which registry datasets, how they are split and sharded, where it is published.

Built after the registry (its sources are registry names or stages), with the
same located errors as the other sections. The recipe (every setting that
decides the bytes of the shards) is kept as canonical JSON with its digest:
the published manifest records both, and the planner compares them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reconciler.model import DatasetSpec, FinalDatasetSpec, FinalSource, MappingSpec, ObjectRef
from reconciler.spec.document import (
    DeclaredStore,
    Report,
    SpecDocument,
    as_prefix,
    declared_once,
    file_ref,
    section_ref,
)
from reconciler.spec.errors import YamlPath
from reconciler.spec.validate import show
from reconciler.spec.world import World, owners_overlapping
from reconciler.units import parse_size

SECTION = "final_dataset"
RECIPE_VERSION = 1


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def build_final(
    documents: list[SpecDocument],
    stores: dict[str, DeclaredStore],
    mappings: list[MappingSpec],
    world: World,
    report: Report,
) -> FinalDatasetSpec | None:
    seen: dict[str, str] = {}
    built = None
    for doc in documents:
        section = doc.section(SECTION)
        if isinstance(section, dict) and declared_once(doc, SECTION, seen, report):
            built = _final(doc, section, stores, mappings, world, report)
    return built


def _sources(
    doc: SpecDocument, value: list[object], datasets: list[DatasetSpec], report: Report
) -> list[FinalSource] | None:
    by_name = {d.name: d for d in datasets}
    chosen: dict[str, DatasetSpec] = {}
    sound = True
    for index, item in enumerate(value):
        path: YamlPath = (SECTION, "sources", index)
        if doc.is_broken(path):
            sound = False
            continue
        if isinstance(item, str):
            dataset = by_name.get(item)
            if dataset is None:
                known = ", ".join(sorted(by_name)) or "none in the registry"
                report.add(doc, path, f"expected a dataset of the registry, got {show(item)} (datasets: {known})")
                sound = False
                continue
            chosen[dataset.name] = dataset
            continue
        assert isinstance(item, dict)
        stages = [str(s) for s in item["stages"]]
        selected = [d for d in datasets if set(d.stages) & set(stages)]
        if not selected:
            report.add(doc, (*path, "stages"), f"no dataset of the registry is in stage(s) {', '.join(stages)}")
            sound = False
        chosen.update((d.name, d) for d in selected)
    if not sound:
        return None
    return [FinalSource(d.name, d.store, d.key, d.format) for _, d in sorted(chosen.items())]


def _under(doc: SpecDocument, path: YamlPath, key: object, prefix: str, report: Report) -> str | None:
    if not isinstance(key, str) or doc.is_broken(path):
        return None
    if not key.startswith(prefix) or key == prefix or key.endswith("/") or ".." in key.split("/"):
        report.add(doc, path, f"expected the key of one object under {show(prefix)}, got {show(key)}")
        return None
    return key


def _final(
    doc: SpecDocument,
    section: dict[str, Any],
    stores: dict[str, DeclaredStore],
    mappings: list[MappingSpec],
    world: World,
    report: Report,
) -> FinalDatasetSpec | None:
    if doc.is_broken((SECTION,)) and not all(k in section for k in ("sources", "splits", "to")):
        return None
    listed = section.get("sources")
    sources = _sources(doc, listed, world.datasets, report) if isinstance(listed, list) else None
    splits = section.get("splits")
    splits = splits if isinstance(splits, dict) else {}
    if isinstance(splits, dict) and not doc.is_broken((SECTION, "splits")):
        total = sum(float(r) for r in splits.values())
        if abs(total - 1.0) > 1e-9:
            report.add(doc, (SECTION, "splits"), f"expected ratios summing to 1, got {total:g}")
    to = section_ref(doc, (SECTION, "to"), section.get("to"), "s3", stores, report)
    prefix = as_prefix(to[1]) if to is not None else ""
    if to is not None and prefix == "":
        report.add(doc, (SECTION, "to"), "expected a prefix of its own (such as final_dataset/), not the whole bucket")
        to = None
    compiled = _under(doc, (SECTION, "compiled"), section.get("compiled"), prefix, report) if to else None
    manifest = section.get("manifest")
    manifest = manifest if isinstance(manifest, dict) else {}
    manifest_key = _under(doc, (SECTION, "manifest", "key"), manifest.get("key"), prefix, report) if to else None
    local = file_ref(doc, (SECTION, "manifest", "local"), manifest.get("local"), stores, report)
    workdir = section_ref(doc, (SECTION, "workdir"), section.get("workdir"), "local", stores, report)
    if to is not None and (owners := owners_overlapping(to[0], prefix, stores, mappings, world)):
        more = f" and {len(owners) - 3} more" if len(owners) > 3 else ""
        report.add(
            doc,
            (SECTION, "to"),
            f"{to[0]}:{prefix} overlaps {', '.join(owners[:3])}{more}: the final dataset's prefix must be its "
            "own, since a rebuild deletes the shards it supersedes there",
        )
        to = None
    if workdir is not None and workdir[1].rstrip("/") == "":
        report.add(doc, (SECTION, "workdir"), "expected a directory of its own under the store root, not the root")
        workdir = None
    shard = section.get("shard")
    shard = shard if isinstance(shard, dict) else {}
    if sources is None or to is None or compiled is None or manifest_key is None or local is None or workdir is None:
        return None
    if doc.is_broken((SECTION,)):
        return None
    if manifest_key == compiled:
        report.add(doc, (SECTION, "manifest", "key"), "the manifest and the compiled export need keys of their own")
        return None
    split_pairs = tuple((str(name), float(ratio)) for name, ratio in splits.items())
    for name, _ in split_pairs:
        if f"{prefix}{name}/" in (f"{compiled.rsplit('/', 1)[0]}/", f"{manifest_key.rsplit('/', 1)[0]}/"):
            report.add(doc, (SECTION, "splits", name), f"split {show(name)} would share a directory with the export")
            return None
    shard_bytes = parse_size(shard["bytes"]) if "bytes" in shard else None
    shard_records = int(shard["records"]) if "records" in shard else None
    split_key = str(section["split_key"]) if "split_key" in section else None
    dedupe = section.get("dedupe", False) is True
    recipe = {
        "version": RECIPE_VERSION,
        "sources": [{"name": s.name, "store": s.store, "key": s.key} for s in sources],
        "splits": dict(split_pairs),
        "split_key": split_key,
        "shard": {"records": shard_records, "bytes": shard_bytes},
        "dedupe": dedupe,
        "to": f"{to[0]}:{prefix}",
        "compiled": compiled,
    }
    text = canonical(recipe)
    return FinalDatasetSpec(
        sources=tuple(sources),
        splits=split_pairs,
        store=to[0],
        prefix=prefix,
        compiled_key=compiled,
        manifest_key=manifest_key,
        manifest_local=local,
        workdir=ObjectRef(workdir[0], workdir[1].rstrip("/")),
        split_key=split_key,
        shard_records=shard_records,
        shard_bytes=shard_bytes,
        dedupe=dedupe,
        recipe=text,
        recipe_digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        source_file=doc.display,
    )

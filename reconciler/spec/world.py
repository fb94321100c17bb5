"""The training-data sections of the specs: tiers, the inventory, the dataset registry, actors.

Built after stores and mappings, whose names they refer to; the same located
errors as the rest of the loader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reconciler.actor_layout import build_actor
from reconciler.globs import glob_problem
from reconciler.model import (
    ActorLayout,
    ActorSpec,
    Authority,
    DatasetSpec,
    MappingSpec,
    ObjectRef,
    Organise,
    Ownership,
    S3StoreSpec,
    TierSpec,
    tier_of,
)
from reconciler.rules import covers, owned_rel, prefixes_overlap
from reconciler.spec.document import (
    DeclaredStore,
    Report,
    SpecDocument,
    as_prefix,
    declarations,
    declared_once,
    file_ref,
    section_ref,
)
from reconciler.spec.errors import YamlPath
from reconciler.spec.validate import show


@dataclass(slots=True)
class World:
    tiers: list[TierSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    registry: ObjectRef | None = None
    inventory: ObjectRef | None = None
    actor_layout: ActorLayout | None = None
    actors: list[ActorSpec] = field(default_factory=list)
    actor_mappings: list[MappingSpec] = field(default_factory=list)


def _dir(rest: str) -> str:
    return rest.rstrip("/")


def build_world(
    documents: list[SpecDocument], stores: dict[str, DeclaredStore], mappings: list[MappingSpec], report: Report
) -> World:
    world = World()
    seen: dict[str, str] = {}
    tier_where: dict[str, str] = {}
    for doc in documents:
        _tiers(doc, stores, mappings, world, tier_where, report)
    for doc in documents:
        section = doc.section("inventory")
        if isinstance(section, dict) and declared_once(doc, "inventory", seen, report):
            world.inventory = file_ref(doc, ("inventory", "path"), section.get("path"), stores, report)
    for doc in documents:
        section = doc.section("datasets")
        if isinstance(section, dict):
            _datasets(doc, section, stores, mappings, world, seen, report)
    for doc in documents:
        section = doc.section("actors")
        if isinstance(section, dict) and declared_once(doc, "actors", seen, report):
            _actors(doc, section, stores, world, report)
    return world


def _tiers(
    doc: SpecDocument,
    stores: dict[str, DeclaredStore],
    mappings: list[MappingSpec],
    world: World,
    where: dict[str, str],
    report: Report,
) -> None:
    for name, body, path in declarations(doc, "tiers", "tier", where, report):
        if not isinstance(body, dict) or doc.is_broken(path):
            continue
        at = section_ref(doc, (*path, "at"), body.get("at"), "s3", stores, report)
        if at is None:
            continue
        tier = TierSpec(
            name=str(name),
            store=at[0],
            prefix=as_prefix(at[1]),
            categories=tuple(str(c) for c in body.get("categories", [])),
            ownership=Ownership(str(body.get("ownership", "exclusive"))),
            protect=body.get("protect", False) is True,
        )
        for other in world.tiers:
            if other.store == tier.store and prefixes_overlap(tier.prefix, other.prefix):
                report.add(doc, (*path, "at"), f"tier overlaps tier {show(other.name)} ({other.store}:{other.prefix})")
        if tier.ownership is Ownership.SHARED:
            for mapping in mappings:
                if mapping.prune and _overlaps(mapping.s3_store, mapping.s3_prefix, tier):
                    report.add(
                        doc,
                        (*path, "ownership"),
                        f"tier is shared, so pixel never deletes there, but mapping {show(mapping.name)} "
                        f"prunes {mapping.s3_store}:{mapping.s3_prefix}",
                    )
        world.tiers.append(tier)


def _overlaps(store: str, prefix: str, tier: TierSpec) -> bool:
    return store == tier.store and prefixes_overlap(prefix, tier.prefix)


def _datasets(
    doc: SpecDocument,
    section: dict[str, object],
    stores: dict[str, DeclaredStore],
    mappings: list[MappingSpec],
    world: World,
    seen: dict[str, str],
    report: Report,
) -> None:
    if "registry" in section and declared_once(doc, "datasets.registry", seen, report):
        world.registry = file_ref(doc, ("datasets", "registry"), section.get("registry"), stores, report)
    items = section.get("items")
    if not isinstance(items, list):
        return
    tiers = {t.name: t for t in world.tiers}
    for index, body in enumerate(items):
        path: YamlPath = ("datasets", "items", index)
        if not isinstance(body, dict) or doc.is_broken(path):
            continue
        name = str(body["name"])
        if any(d.name == name for d in world.datasets):
            report.add(doc, (*path, "name"), f"duplicate dataset name {show(name)}")
            continue
        tier = tiers.get(str(body["tier"]))
        if tier is None:
            report.add(
                doc,
                (*path, "tier"),
                f"expected a defined tier, got {show(body['tier'])} "
                f"(tiers: {', '.join(sorted(tiers)) or 'none defined'})",
            )
            continue
        category = str(body["category"])
        if tier.categories and category not in tier.categories:
            report.add(
                doc,
                (*path, "category"),
                f"expected one of tier {show(tier.name)}'s categories "
                f"({', '.join(tier.categories)}), got {show(category)}",
            )
            continue
        fmt = str(body["format"])
        file = str(body.get("file", name if name.endswith(f".{fmt}") else f"{name}.{fmt}"))
        key = f"{tier.prefix}{category}/{file}"
        organise = Organise(str(body.get("organise", "copy")))
        ok, source = _dataset_source(doc, path, body.get("source"), tier, key, organise, stores, world, report)
        if not ok:
            continue
        for mapping in mappings:
            if (
                organise is Organise.MOVE
                and source is not None
                and mapping.s3_store == source.store
                and mapping.authority is Authority.LOCAL
                and owned_rel(mapping, source.store, source.key) is not None
            ):
                report.add(
                    doc,
                    (*path, "organise"),
                    f"organise: move would delete {source}, which mapping {show(mapping.name)} uploads "
                    "from its local directory: the next apply would upload it again; use organise: copy",
                )
            # By prefix, as the delete guards judge an overlap: the mapping's globs may change, the registry's key not.
            if mapping.s3_store == tier.store and mapping.prune and covers(mapping, tier.store, key):
                report.add(
                    doc,
                    path,
                    f"dataset path {tier.store}:{key} lies under mapping {show(mapping.name)}, "
                    "which prunes: it would delete what the registry organises there",
                )
        world.datasets.append(
            DatasetSpec(
                name=name,
                tier=tier.name,
                category=category,
                format=fmt,
                store=tier.store,
                key=key,
                stages=tuple(str(s) for s in body.get("stages", [])),
                source=source,
                organise=organise,
                source_file=doc.display,
            )
        )


def _dataset_source(
    doc: SpecDocument,
    path: YamlPath,
    value: object,
    tier: TierSpec,
    key: str,
    organise: Organise,
    stores: dict[str, DeclaredStore],
    world: World,
    report: Report,
) -> tuple[bool, ObjectRef | None]:
    """(sound, the source ref or None when there is none); not sound when a problem was reported."""
    where = (*path, "source")
    if value is None:
        if organise is Organise.MOVE:
            report.add(doc, (*path, "organise"), "organise: move needs a source to move from")
            return False, None
        return True, None
    if not isinstance(value, str) or doc.is_broken(where):
        return False, None
    store = stores.get(value.partition(":")[0])
    if store is not None and store.kind == "local":
        ref = file_ref(doc, where, value, stores, report)
        if ref is not None and organise is Organise.MOVE:
            report.add(doc, (*path, "organise"), "organise: move applies to S3 sources; a local source is uploaded")
            return False, None
        return ref is not None, ref
    pair = section_ref(doc, where, value, "s3", stores, report)
    if pair is None:
        return False, None
    if pair[0] != tier.store:
        report.add(
            doc,
            where,
            f"an S3 source must be in the dataset's bucket (store {show(tier.store)}) "
            "so that organising it is a server-side copy",
        )
        return False, None
    source_tier = tier_of(world.tiers, pair[0], pair[1])
    if source_tier is None or source_tier.name == tier.name:
        report.add(doc, where, f"expected an object in another tier than {show(tier.name)}, got {show(value)}")
        return False, None
    if pair[1] == key or pair[1].endswith("/"):
        report.add(doc, where, f"expected the key of one object, got {show(value)}")
        return False, None
    if organise is Organise.MOVE and (source_tier.ownership is Ownership.SHARED or source_tier.protect):
        why = "shared" if source_tier.ownership is Ownership.SHARED else "protected"
        report.add(
            doc,
            (*path, "organise"),
            f"organise: move would delete in tier {show(source_tier.name)}, which is {why}: use organise: copy",
        )
        return False, None
    return True, ObjectRef(*pair)


def _actors(
    doc: SpecDocument, section: dict[str, object], stores: dict[str, DeclaredStore], world: World, report: Report
) -> None:
    path: YamlPath = ("actors",)
    if doc.is_broken(path) and not isinstance(section.get("list", []), list):
        return
    local = section_ref(doc, (*path, "local"), section.get("local"), "local", stores, report)
    s3 = section_ref(doc, (*path, "s3"), section.get("s3"), "s3", stores, report)
    manifests = section_ref(doc, (*path, "manifests"), section.get("manifests"), "local", stores, report)
    discover = section.get("discover")
    if isinstance(discover, str) and not doc.is_broken((*path, "discover")):
        try:
            compiled = re.compile(discover)
        except re.error as exc:
            report.add(doc, (*path, "discover"), f"not a regular expression: {exc}")
            return
        if "id" not in compiled.groupindex:
            report.add(
                doc,
                (*path, "discover"),
                "expected a regular expression with a group named id, e.g. "
                r'"^(?P<id>\d{4})_.+$"',
            )
            return
    images = str(section.get("images", "{actor_name}_{index}.jpg"))
    as_glob = images.replace("{actor_name}", "name").replace("{index}", "0")
    if (bad_glob := glob_problem(as_glob)) and not doc.is_broken((*path, "images")):
        report.add(doc, (*path, "images"), f"invalid glob {show(images)}: {bad_glob}")
    if local is None or s3 is None or manifests is None or doc.is_broken(path):
        return
    layout = ActorLayout(
        local_store=local[0],
        local_root=_dir(local[1]),
        s3_store=s3[0],
        s3_prefix=as_prefix(s3[1]),
        manifest_store=manifests[0],
        manifest_dir=_dir(manifests[1]),
        authority=Authority(str(section.get("authority", "local"))),
        images=images,
        discover=discover if isinstance(discover, str) else None,
        prune=section.get("prune", False) is True,
        source_file=doc.display,
        legacy_response_json="delete" if section.get("legacy_response_json") == "delete" else "report",
        adopt_orphans=section.get("adopt_orphans", False) is True,
    )
    shared = [t for t in world.tiers if t.ownership is Ownership.SHARED and _overlaps(s3[0], layout.s3_prefix, t)]
    if layout.prune and shared:
        report.add(
            doc,
            (*path, "prune"),
            f"actors prune {s3[0]}:{layout.s3_prefix}, which lies in tier {show(shared[0].name)}, a shared tier "
            "where pixel never deletes",
        )
        return
    world.actor_layout = layout
    listed = section.get("list", [])
    assert isinstance(listed, list)
    ids: dict[str, str] = {}
    for index, body in enumerate(listed):
        where: YamlPath = (*path, "list", index)
        if not isinstance(body, dict) or doc.is_broken(where):
            continue
        actor_id, actor_name = str(body["id"]), str(body["name"])
        if actor_id in ids or actor_name in ids.values():
            report.add(doc, where, f"actor {show(actor_id)} / {show(actor_name)} is listed twice")
            continue
        ids[actor_id] = actor_name
        authority = body.get("authority")
        count = body.get("count")
        actor, mapping = build_actor(
            layout,
            actor_id,
            actor_name,
            authority=Authority(str(authority)) if authority is not None else None,
            count=count if isinstance(count, int) else None,
        )
        world.actors.append(actor)
        world.actor_mappings.append(mapping)


def owners_overlapping(
    store: str, prefix: str, stores: dict[str, DeclaredStore], mappings: list[MappingSpec], world: World
) -> list[str]:
    """Everything the specs own in the same bucket as `store:prefix` that lies under it or holds it, described.

    A prefix pixel writes and prunes alone (the final dataset's `to`) must overlap none of these: the
    mappings, the tiers, the registry's objects (dataset keys and S3 sources), the
    inventory and registry files, the actor layout, where S3 Inventory delivers a store's reports, and
    pixel's own space (`.pixel/`, the lock's folder).
    Compared by bucket identity, so two store names for one bucket still overlap.
    """
    declared = stores.get(store)
    if declared is None:
        return []
    identity = declared.identity

    def same(other: str) -> bool:
        found = stores.get(other)
        return found is not None and found.identity == identity

    def holds(other: str) -> bool:  # a prefix under ours, or ours under it
        return prefixes_overlap(other, prefix)

    found: list[str] = []
    spec = declared.spec
    if isinstance(spec, S3StoreSpec):
        # Only the lock's folder can lie under a prefix: one inside pixel's space is refused where it is parsed.
        found += [f"pixel's own space {show(space)}" for space in spec.reserved_prefixes() if space.startswith(prefix)]
    for mapping in mappings:  # the actors' own mappings lie under the actor layout, checked below
        if same(mapping.s3_store) and holds(mapping.s3_prefix):
            found.append(f"mapping {show(mapping.name)} ({mapping.s3_store}:{mapping.s3_prefix})")
    for tier in world.tiers:
        if same(tier.store) and holds(tier.prefix):
            found.append(f"tier {show(tier.name)} ({tier.store}:{tier.prefix})")
    for dataset in world.datasets:
        refs = [ObjectRef(dataset.store, dataset.key), *([dataset.source] if dataset.source is not None else [])]
        found += [
            f"dataset {show(dataset.name)} ({ref})" for ref in refs if same(ref.store) and ref.key.startswith(prefix)
        ]
    for what, ref in (("the dataset registry", world.registry), ("the inventory", world.inventory)):
        if ref is not None and same(ref.store) and ref.key.startswith(prefix):
            found.append(f"{what} ({ref})")
    layout = world.actor_layout
    if layout is not None and same(layout.s3_store) and holds(layout.s3_prefix):
        found.append(f"the actors ({layout.s3_store}:{layout.s3_prefix})")
    for name, other in sorted(stores.items()):
        held = other.spec
        if not isinstance(held, S3StoreSpec) or held.inventory is None:
            continue
        source = held.inventory
        # S3 Inventory delivers to {prefix}/{source bucket}/{configuration}/...
        reports = f"{as_prefix(source.prefix)}{held.bucket}/"
        if ("bucket", held.endpoint or "", source.bucket) == identity and holds(reports):
            found.append(f"store {show(name)}'s S3 Inventory reports ({source.bucket}:{reports})")
    return list(dict.fromkeys(found))

"""Apply-time half of write-manifest: observe what the file describes again, render, write atomically.

Runs after every action the plan made it depend on, so it records what is
true now, not what the plan predicted. Writes go through the local store's
temp-file-then-rename with the plan's precondition, and are skipped when the
rendered bytes equal the file: an unchanged manifest keeps its mtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from collections.abc import Callable, Mapping

from reconciler.actor_layout import exclusions_ref
from reconciler.apply.record_index import write_record_index
from reconciler.manifests.actors import actor_state, render_actor_manifest
from reconciler.manifests.exclusions import split
from reconciler.manifests.final import summary_of
from reconciler.manifests.inventory import render_inventory
from reconciler.manifests.record_index import INDEX_PREFIX
from reconciler.manifests.registry import render_registry, unreadable
from reconciler.model import (
    Action,
    ActorSpec,
    Desired,
    Entry,
    MappingObservation,
    MappingSpec,
    ObjectRef,
    S3StoreSpec,
    inventoried_stores,
)
from reconciler.observe.hashing import Hasher, StreamingHasher
from reconciler.observe.world import list_tier, read_generated, strays
from reconciler.plan.record_index import SCOPE as RECORD_INDEX_SCOPE
from reconciler.rules import OwnSpace, Selection, mapping_own_space
from reconciler.stores.base import PermanentStoreError, Store

Clock = Callable[[], int]  # nanoseconds since the epoch


def _side(store: Store, base: str, spec: MappingSpec, own: OwnSpace) -> dict[str, Entry]:
    """The entries under `base` the mapping owns, by relative key: what the observer would have listed."""
    return {
        rel: dataclasses.replace(entry, key=rel) for rel, entry in Selection(spec, own).select(base, store.list(base))
    }


class ManifestWriter:
    def __init__(
        self,
        desired: Desired,
        stores: Mapping[str, Store],
        *,
        clock: Clock = time.time_ns,
        hasher: Hasher | None = None,
    ) -> None:
        self.desired = desired
        self.stores = stores
        self.clock = clock
        self.hasher = hasher or StreamingHasher()
        self.written: list[ObjectRef] = []  # for the summary and the tests

    def render(self, ref: ObjectRef, previous: bytes | None) -> bytes:
        for actor in self.desired.actors:
            if actor.manifest == ref:
                return self._actor(actor, previous)
        if ref == self.desired.registry:
            if unreadable(previous):
                raise PermanentStoreError(
                    f"write-manifest {ref}: the registry is not a JSON object; left as written", key=ref.key
                )
            return render_registry(self.desired, lambda store, key: self.stores[store].stat(key), previous)
        if ref == self.desired.inventory:
            buckets = {
                name: list_tier(self.stores[name], "", self.desired.stores.get(name))
                for name in inventoried_stores(self.desired)
            }
            final = self.desired.final
            published = read_generated(self.stores, final.manifest).content if final is not None else None
            return render_inventory(self.desired, buckets, summary_of(published), previous, self.clock())
        raise PermanentStoreError(f"write-manifest {ref}: the specs no longer generate this file", key=ref.key)

    def _actor(self, actor: ActorSpec, previous: bytes | None) -> bytes:
        layout = self.desired.actor_layout
        assert layout is not None
        mapping = next(m for m in self.desired.mappings if m.name == actor.mapping)
        s3 = self.desired.stores[mapping.s3_store]
        assert isinstance(s3, S3StoreSpec)
        local_store = self.stores[mapping.local_store]
        own = mapping_own_space(self.desired, mapping)
        local = _side(local_store, mapping.local_base, mapping, own)
        local = {
            rel: dataclasses.replace(
                e, md5=self.hasher.md5(local_store, dataclasses.replace(e, key=mapping.local_key(rel)))
            )
            for rel, e in local.items()
        }
        remote = _side(self.stores[mapping.s3_store], mapping.s3_prefix, mapping, own)
        stray = strays(
            dataclasses.replace(self.desired, actors=(actor,)), self.stores, {actor.mapping: local.keys()}, self.hasher
        ).get(actor.mapping, ())
        # The images the actor's exclusion record keeps out stay out, as the plan saw them.
        ref = exclusions_ref(layout, actor.actor_id)
        kept, excluded = split(MappingObservation(local, remote), read_generated(self.stores, ref).content)
        if excluded.problem is not None:
            raise PermanentStoreError(
                f"write-manifest {actor.manifest}: the exclusion record {ref} cannot be read ({excluded.problem})",
                key=actor.manifest.key,
            )
        state = actor_state(layout, actor, mapping, s3, kept.local, kept.remote, stray)
        return render_actor_manifest(state, actor, previous, self.clock())

    def __call__(self, action: Action) -> None:
        if action.mapping == RECORD_INDEX_SCOPE and action.target.key.startswith(INDEX_PREFIX):
            if write_record_index(self.stores, action):
                self.written.append(action.target)
            return
        ref = action.target
        store = self.stores[ref.store]
        current = read_generated(self.stores, ref)
        content = self.render(ref, current.content)
        if current.content == content:
            return
        pre = action.precondition
        store.write(
            ref.key,
            lambda: io.BytesIO(content),
            size=len(content),
            md5=hashlib.md5(content).hexdigest(),
            if_match=pre.target_etag,
            if_absent=pre.target_absent,
        )
        self.written.append(ref)

"""pixel's own space is never observed as data, whatever observes it.

The lock, the move scratch and the upload records live under `.pixel/` (and an S3 store's lock folder, see
`S3StoreSpec.reserves`); `.pixel/` at a local store's root is pixel's too, as the delete guards have it. A
live S3 listing leaves them out, but an S3 Inventory report lists every object of the bucket, and a local walk
lists every file: so the observer drops them here, for every mapping side and every tier, from whatever
listed them. A key dropped on one side of a mapping is dropped on the other too, so a local file cannot be
uploaded over the lock or an upload record, and a record is never pulled into a local tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reconciler.model import PIXEL_PREFIX, Desired, Entry, MappingSpec, S3StoreSpec, StoreSpec


@dataclass(frozen=True, slots=True)
class OwnSpace:
    """pixel's own keys below one base key, relative to it: the prefixes they start with, and single keys."""

    prefixes: tuple[str, ...] = ()
    keys: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.keys)

    def holds(self, rel: str) -> bool:
        return rel.startswith(self.prefixes) or rel in self.keys

    def __or__(self, other: OwnSpace) -> OwnSpace:
        return OwnSpace(tuple(sorted({*self.prefixes, *other.prefixes})), self.keys | other.keys)


def own_space(spec: StoreSpec | None, base: str) -> OwnSpace:
    """pixel's own keys under `base` in the store of `spec`, relative to `base` ("" when all of it is pixel's)."""
    prefixes: tuple[str, ...] = (PIXEL_PREFIX,)
    keys: tuple[str, ...] = ()
    if isinstance(spec, S3StoreSpec):
        prefixes, keys = spec.reserved_prefixes(), (spec.lock_key,)
    rel_prefixes = set()
    for prefix in prefixes:
        if prefix.startswith(base):
            rel_prefixes.add(prefix[len(base) :])
        elif base.startswith(prefix):
            rel_prefixes.add("")
    return OwnSpace(tuple(sorted(rel_prefixes)), frozenset(k[len(base) :] for k in keys if k.startswith(base)))


def mapping_own_space(desired: Desired, spec: MappingSpec) -> OwnSpace:
    """The relative keys of a mapping that lie in pixel's own space on either of its sides."""
    local = own_space(desired.stores.get(spec.local_store), spec.local_base)
    return local | own_space(desired.stores.get(spec.s3_store), spec.s3_prefix)


def without_own(entries: Iterable[Entry], spec: StoreSpec | None, base: str) -> Iterator[Entry]:
    """`entries` (full keys, all under `base`) without those in pixel's own space."""
    own = own_space(spec, base)
    if not own:
        yield from entries
        return
    skip = len(base)
    for entry in entries:
        if not own.holds(entry.key[skip:]):
            yield entry

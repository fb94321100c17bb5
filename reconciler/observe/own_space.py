"""pixel's own space is never observed as data, whatever observes it.

The lock, the move scratch and the upload records live under `.pixel/` (and an S3 store's lock folder, see
`S3StoreSpec.reserves`); `.pixel/` at a local store's root is pixel's too, as the delete guards have it. A
live S3 listing leaves them out, but an S3 Inventory report lists every object of the bucket, and a local walk
lists every file: so the observer drops them here, for every mapping side and every tier, from whatever
listed them. A key dropped on one side of a mapping is dropped on the other too, so a local file cannot be
uploaded over the lock or an upload record, and a record is never pulled into a local tree.

Which keys are pixel's is the ownership rule's (`rules.own_space`, `rules.mapping_own_space`); this module
filters a listing by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from reconciler.model import Entry, StoreSpec
from reconciler.rules import own_space


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

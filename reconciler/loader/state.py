"""What a loader state must be before it is resumed from, and what identifies the objects it was taken over.

`load_state_dict` takes input from a checkpoint file, often hand-carried between jobs: anything that is
not a state this loader wrote is one ValueError saying what is wrong, before any of it is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.loader.resolve import SourceObject
from reconciler.loader.sharding import PARTITIONS, STATE_VERSION, Generation, objects_digest


class _Bad(ValueError):
    def __init__(self, what: str) -> None:
        super().__init__(f"not a valid pixel loader state: {what}")


def identity(obj: SourceObject) -> str:
    """What pins an object's bytes for a resume: its md5; without one, its size and version (ETag)."""
    if obj.md5 is not None:
        return f"{obj.store}:{obj.key}:{obj.md5}"
    return f"{obj.store}:{obj.key}:{obj.size}:{obj.etag or ''}"


def digest(objects: Iterable[SourceObject]) -> str:
    return objects_digest(identity(o) for o in objects)


def _int(value: Any, what: str, *, least: int = 0) -> int:
    # bool is an int to Python, not to a checkpoint: True consumed records is a damaged state.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{what} must be an integer, got {value!r}")
    if value < least:
        raise _Bad(f"{what} must be at least {least}, got {value}")
    return value


def generation(data: Any, where: str) -> Generation:
    if not isinstance(data, Mapping):
        raise _Bad(f"{where} must be an object with world, workers and counts, got {data!r}")
    for field in ("world", "workers"):
        if field not in data:
            raise _Bad(f"{where} has no {field}")
    world = _int(data["world"], f"{where}.world", least=1)
    workers = _int(data["workers"], f"{where}.workers", least=1)
    consumers = world * workers
    counts = data.get("counts", {})
    if not isinstance(counts, Mapping):
        raise _Bad(f"{where}.counts must be an object of consumer -> records yielded, got {counts!r}")
    parsed: dict[int, int] = {}
    for consumer, count in counts.items():
        try:
            index = int(consumer)
        except (TypeError, ValueError):
            raise _Bad(f"{where}.counts has a consumer {consumer!r} that is not a number") from None
        if not 0 <= index < consumers:
            raise _Bad(f"{where}.counts names consumer {index}, outside 0..{consumers - 1} (world x workers)")
        parsed[index] = _int(count, f"{where}.counts[{consumer!r}]")
    return Generation(world, workers, parsed)


def check(state: Any) -> tuple[int, list[Generation]]:
    """(epoch, generations) of a state, or a ValueError saying what is wrong with it."""
    if not isinstance(state, Mapping):
        raise _Bad(f"expected an object (a dict from state_dict()), got {type(state).__name__}")
    version = state.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and 0 < version < STATE_VERSION:
        # Older states count positions in units cut another way (version 3: the record index's v2 spans), so
        # resuming one would skip or repeat records: say so, and the two ways out, rather than only "invalid".
        raise _Bad(
            f"it was saved by an older pixel (state version {version}; this pixel reads version {STATE_VERSION}), "
            "whose positions count records in another order: start the epoch afresh (do not load this state), "
            "or finish the epoch with the pixel that saved it"
        )
    if version != STATE_VERSION:
        raise _Bad(f"version {version!r}, this loader writes version {STATE_VERSION}")
    if "epoch" not in state:
        raise _Bad("it has no epoch")
    epoch = _int(state["epoch"], "epoch")
    if state.get("partition") not in PARTITIONS:
        raise _Bad(f"partition must be one of {', '.join(PARTITIONS)}, got {state.get('partition')!r}")
    if "shuffle_block" not in state:
        raise _Bad("it has no shuffle_block")
    _int(state["shuffle_block"], "shuffle_block", least=1)
    generations = state.get("generations", [])
    if not isinstance(generations, list):
        raise _Bad(f"generations must be a list, got {type(generations).__name__}")
    return epoch, [generation(g, f"generations[{i}]") for i, g in enumerate(generations)]

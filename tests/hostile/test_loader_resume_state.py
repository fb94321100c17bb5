"""Issue 23 item 10 and the `load_state_dict` "Also": what a saved loader state may be resumed over.

A state taken over version A of an md5-less object (a multipart upload) must not load over a same-size
version B; malformed state input is a ValueError saying what is wrong, never an AttributeError, TypeError
or KeyError; a state claiming more progress than the epoch holds is refused, not silently "finished".
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.loader import load_dataset
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import RecordFormat
from reconciler.loader.resolve import SourceObject
from reconciler.stores.memory import MemoryStore
from tests.hostile.loader_world import PROCESSED, loader_world, opener


def memory_dataset(counts: list[int], **options: Any) -> StreamingDataset:
    store = MemoryStore("m")
    objects = []
    for i, n in enumerate(counts):
        body = b"".join(b'{"o": %d, "r": %d}\n' % (i, r) for r in range(n))
        store.write(f"o{i}.jsonl", opener(body), size=len(body),
                    md5=None)
        entry = store.stat(f"o{i}.jsonl")
        assert entry is not None
        objects.append(SourceObject("m", entry.key, entry.md5, entry.size, RecordFormat.JSONL, entry.etag))
    return StreamingDataset(objects, {"m": store}, **options)


# --- 10: resume over an md5-less object ---------------------------------------------------------------------


def test_a_state_over_one_version_of_an_md5_less_object_does_not_load_over_a_same_size_other() -> None:
    a = SourceObject("s", "k.jsonl", None, 100, RecordFormat.JSONL, "etag-a-2")
    b = SourceObject("s", "k.jsonl", None, 100, RecordFormat.JSONL, "etag-b-2")
    state = StreamingDataset([a], {}).state_dict()
    with pytest.raises(ValueError, match="other objects"):
        StreamingDataset([b], {}).load_state_dict(state)
    StreamingDataset([a], {}).load_state_dict(state)  # the same version resumes


def multipart_put(client: Any, bucket: str, key: str, body: bytes) -> None:
    """An upload whose ETag is no md5 and which records none: the loader knows only its size and ETag."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})


@pytest.mark.integration
def test_a_resume_state_from_version_a_is_refused_over_a_same_size_version_b_on_s3(
    tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]
) -> None:
    world = loader_world(tmp_path, seaweed.endpoint, seaweed.client(), bucket, aws_env)
    key = f"{PROCESSED}cot/multi.jsonl"
    multipart_put(world.client, bucket, key, b"".join(b'{"v": "a", "i": %d}\n' % i for i in range(10)))
    first = load_dataset("multi.jsonl", specs=world.specs, cache_dir=world.cache)
    assert first.objects[0].md5 is None  # what makes this case: no md5 to tell the versions apart
    records = iter(first)
    assert [next(records)["i"] for _ in range(4)] == [0, 1, 2, 3]
    state = first.state_dict()

    multipart_put(world.client, bucket, key, b"".join(b'{"v": "b", "i": %d}\n' % i for i in range(10)))
    second = load_dataset("multi.jsonl", specs=world.specs, cache_dir=world.cache)
    assert second.objects[0].size == first.objects[0].size
    with pytest.raises(ValueError, match="other objects"):
        second.load_state_dict(state)


# --- load_state_dict: malformed input ---------------------------------------------------------------------


def valid_state() -> dict[str, Any]:
    ds = memory_dataset([3, 4])
    it = iter(ds)
    next(it)
    return ds.state_dict()


MALFORMED: list[tuple[str, Any]] = [
    ("not a mapping", ["version", 1]),
    ("no version", {"version": None}),
    ("epoch a string", {"epoch": "one"}),
    ("epoch negative", {"epoch": -1}),
    ("epoch missing", {"epoch": None}),
    ("version 1", {"version": 1}),
    ("generations not a list", {"generations": {"world": 1, "workers": 1}}),
    ("generation not a mapping", {"generations": [7]}),
    ("world missing", {"generations": [{"workers": 1, "counts": {"0": 1}}]}),
    ("workers missing", {"generations": [{"world": 1, "counts": {"0": 1}}]}),
    ("version 1 generation", {"generations": [{"consumers": 1, "counts": {"0": 1}}]}),
    ("world a list", {"generations": [{"world": [1], "workers": 1, "counts": {}}]}),
    ("world zero", {"generations": [{"world": 0, "workers": 1, "counts": {}}]}),
    ("workers zero", {"generations": [{"world": 1, "workers": 0, "counts": {}}]}),
    ("workers a string", {"generations": [{"world": 1, "workers": "2", "counts": {}}]}),
    ("world a bool", {"generations": [{"world": True, "workers": 1, "counts": {}}]}),
    ("counts a list", {"generations": [{"world": 1, "workers": 1, "counts": [1]}]}),
    ("count negative", {"generations": [{"world": 1, "workers": 1, "counts": {"0": -1}}]}),
    ("count a float", {"generations": [{"world": 1, "workers": 1, "counts": {"0": 1.5}}]}),
    ("consumer out of range", {"generations": [{"world": 2, "workers": 1, "counts": {"2": 1}}]}),
    ("consumer beyond world x workers", {"generations": [{"world": 2, "workers": 2, "counts": {"4": 1}}]}),
    ("consumer not a number", {"generations": [{"world": 2, "workers": 1, "counts": {"x": 1}}]}),
    ("count a bool", {"generations": [{"world": 1, "workers": 1, "counts": {"0": True}}]}),
    ("partition unknown", {"partition": "even"}),
    ("partition missing", {"partition": None}),
    ("partition a list", {"partition": ["drop"]}),
    ("shuffle_block zero", {"shuffle_block": 0}),
    ("shuffle_block a string", {"shuffle_block": "16384"}),
    ("shuffle_block missing", {"shuffle_block": None}),
]


@pytest.mark.parametrize(("what", "change"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_state_is_a_value_error_saying_what_is_wrong(what: str, change: Any) -> None:
    state: Any = change
    if isinstance(change, dict):  # a change to a valid state; None removes the field
        state = {**valid_state(), **change}
        state = {k: v for k, v in state.items() if v is not None}
    with pytest.raises(ValueError, match=r"loader state"):
        memory_dataset([3, 4]).load_state_dict(state)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**20) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def damaged_states(draw: st.DrawFn) -> Any:
    state: Any = copy.deepcopy(valid_state())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(["", "epoch", "generations", "generations.0", "generations.0.world",
                                     "generations.0.workers", "generations.0.counts", "generations.0.counts.0",
                                     "seed", "shuffle", "partition", "shuffle_block"]))
        value = draw(JSON)
        if not path:
            return value
        target: Any = state
        parts = path.split(".")
        try:
            for part in parts[:-1]:
                target = target[int(part)] if isinstance(target, list) else target[part]
            if isinstance(target, list):
                target[int(parts[-1])] = value
            elif isinstance(target, dict):
                target[parts[-1]] = value
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return state


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(damaged_states())
def test_any_damaged_state_is_loaded_or_refused_with_a_value_error_and_a_loaded_one_iterates(state: Any) -> None:
    ds = memory_dataset([3, 4])
    try:
        ds.load_state_dict(state)
    except ValueError:
        return
    # Accepted: then it is a real resume, which yields the records not consumed, or refuses with a ValueError.
    try:
        got = [(r["o"], r["r"]) for r in ds]
    except ValueError:
        return
    assert len(got) == len(set(got)) and len(got) <= 7


# --- a state claiming more progress than exists ---------------------------------------------------------------


@pytest.mark.parametrize("consumers", [1, 3])
def test_a_state_claiming_more_progress_than_the_epoch_holds_is_refused(consumers: int) -> None:
    state = memory_dataset([3, 4]).state_dict()
    state["generations"] = [{"world": consumers, "workers": 1, "counts": {str(c): 1000 for c in range(consumers)}}]
    ds = memory_dataset([3, 4])
    ds.load_state_dict(state)
    with pytest.raises(ValueError, match="claims 1000 records"):
        list(ds)


@given(st.lists(st.integers(0, 6), min_size=1, max_size=4), st.integers(1, 3), st.integers(1, 3), st.data())
def test_a_state_claiming_at_most_what_exists_resumes_to_the_rest(counts: list[int], world: int, workers: int,
                                                                  data: st.DataObject) -> None:
    total = sum(counts)
    # Each rank's share is total // world (partition="drop"), its workers' parts within one of each other.
    base, extra = divmod(total // world, workers)
    shares = [base + (c % workers < extra) for c in range(world * workers)]
    claimed = {str(c): data.draw(st.integers(0, shares[c])) for c in range(world * workers)}
    state = memory_dataset(counts).state_dict()
    state["generations"] = [{"world": world, "workers": workers, "counts": claimed}]
    ds = memory_dataset(counts)
    ds.load_state_dict(state)
    assert len(list(ds)) == total - sum(claimed.values())
    # One record more than a consumer's share is what no run of this dataset could have saved.
    over = data.draw(st.integers(0, world * workers - 1))
    state["generations"] = [{"world": world, "workers": workers, "counts": {**claimed, str(over): shares[over] + 1}}]
    ds = memory_dataset(counts)
    ds.load_state_dict(state)
    with pytest.raises(ValueError, match="claims"):
        list(ds)

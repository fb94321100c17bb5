"""Seed 003's upload_local_datasets_to_s3 as one mapping: .jsonl of any size, other files from 1 MB, manifests kept."""

from __future__ import annotations

from reconciler.apply import ActionRunner, execute
from reconciler.model import ActionKind, Desired, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.plan.graph import build_graph
from reconciler.stores.memory import MemoryStore


def test_min_size_selects_large_files_and_exempt_names_and_keep_local_is_never_released() -> None:
    mapping = MappingSpec(
        "training_ready", "disk", "data", "s3", "datasets/local/ai/training_ready/",
        release_local=True, min_size=1000, min_size_except=("**/*.jsonl",),
        keep_local=("final_dataset/manifest.json", "s3_manifest.json"),
    )
    d = Desired(stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
                mappings=(mapping,))
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("data/generated/a.jsonl", b"{}\n")  # small, but .jsonl
    disk.put("data/packages/big.bin", b"x" * 1500)  # over min_size
    disk.put("data/packages/small.txt", b"small")  # neither: not the mapping's
    disk.put("data/s3_manifest.json", b"y" * 2000)  # large, kept locally
    s3.put("datasets/local/ai/training_ready/tiny.txt", b"old")  # below min_size in S3: not the mapping's either
    stores = {"disk": disk, "s3": s3}
    observed = observe(d, stores, StreamingHasher())
    assert sorted(observed.mappings["training_ready"].local) == [
        "generated/a.jsonl", "packages/big.bin", "s3_manifest.json"]
    assert list(observed.mappings["training_ready"].remote) == []
    p = plan(d, observed)
    released = sorted(a.target.key for a in p.actions if a.kind is ActionKind.RELEASE_LOCAL)
    assert released == ["data/generated/a.jsonl", "data/packages/big.bin"]
    assert execute(build_graph(p), ActionRunner(stores)).ok
    assert disk.keys() == ["data/packages/small.txt", "data/s3_manifest.json"]
    assert s3.get("datasets/local/ai/training_ready/s3_manifest.json") == b"y" * 2000
